//! Shared test harness: a test token issuer (signs with the core test RSA key), an API server
//! on 127.0.0.1:0 over HTTPS with a kubeconfig in a temp dir, and the Python/kubectl venv.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use irsa_core::secret::SecretString;
use irsa_sandbox::apiserver::{ApiServer, ApiServerConfig, Tls, serve_tls};
use irsa_sandbox::token_issuer::{IssuedToken, ServiceAccountTokenRequest, TokenIssuer};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures")
}

/// Signs RS256 tokens with `test-rsa.pkcs1.der` (kid `test-rsa`).
pub struct TestIssuer {
    pub issuer: String,
    key: jsonwebtoken::EncodingKey,
}

impl TestIssuer {
    pub fn new(issuer: &str) -> Self {
        let der = std::fs::read(fixtures().join("test-rsa.pkcs1.der")).expect("test key");
        Self {
            issuer: issuer.to_owned(),
            key: jsonwebtoken::EncodingKey::from_rsa_der(&der),
        }
    }
}

impl TokenIssuer for TestIssuer {
    fn issue(&self, r: &ServiceAccountTokenRequest) -> Result<IssuedToken, String> {
        let exp = r.now + r.expiration_seconds;
        let aud = if r.audiences.is_empty() {
            vec![self.issuer.clone()]
        } else {
            r.audiences.clone()
        };
        let mut k8s = json!({
            "namespace": r.namespace,
            "serviceaccount": {"name": r.service_account, "uid": r.service_account_uid},
        });
        if let Some(b) = &r.bound_object {
            k8s[b.kind.to_lowercase()] = json!({"name": b.name, "uid": b.uid});
        }
        if let Some(n) = &r.node {
            k8s["node"] = json!({"name": n.name, "uid": n.uid});
        }
        let claims = json!({
            "iss": self.issuer,
            "sub": format!("system:serviceaccount:{}:{}", r.namespace, r.service_account),
            "aud": aud,
            "exp": exp,
            "iat": r.now,
            "nbf": r.now,
            "kubernetes.io": k8s,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("test-rsa".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())?;
        Ok(IssuedToken {
            token: SecretString::new(token),
            expires_at: exp,
        })
    }

    fn issuer_url(&self) -> String {
        self.issuer.clone()
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    fn jwks(&self) -> Value {
        let all: Value =
            serde_json::from_slice(&std::fs::read(fixtures().join("jwks.json")).expect("jwks"))
                .expect("jwks json");
        let keys: Vec<Value> = all["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| k["kid"] == "test-rsa")
            .cloned()
            .collect();
        json!({"keys": keys})
    }
}

/// A running API server.
pub struct Sandbox {
    pub api: ApiServer,
    pub url: String,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Sandbox {
    pub async fn start() -> Self {
        Self::start_with(ApiServerConfig::default()).await
    }

    pub async fn start_with(config: ApiServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let issuer = Arc::new(TestIssuer::new(&url));
        let api = ApiServer::new(config, issuer);
        let tls = Tls::generate().expect("tls");
        let dir = std::env::temp_dir().join(format!(
            "irsa-apiserver-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, tls.kubeconfig(&url, api.token())).expect("kubeconfig");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = api.router();
        let task = tokio::spawn(async move {
            serve_tls(listener, &tls, app, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Self {
            api,
            url,
            dir,
            kubeconfig,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config")
    }

    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("client")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The venv with the `kubernetes` client, PyJWT and kubectl; fails loudly when missing.
pub fn venv_k8s() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s"));
    assert!(
        venv.join("bin/python").exists() && venv.join("bin/kubectl").exists(),
        "the Kubernetes test venv is missing at {}: run ./scripts/test, or from the workspace root: \
         python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install -r tests/requirements-k8s.txt",
        venv.display()
    );
    venv
}

/// Output of a finished command.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a blocking command (Python, kubectl) off the async runtime with KUBECONFIG set.
pub async fn run(mut cmd: Command, kubeconfig: &Path) -> Output {
    cmd.env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().expect("dir"));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("spawn"))
        .await
        .expect("join");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `check` until it returns Some or the deadline passes.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
