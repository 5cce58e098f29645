//! The whole sandbox in one process: the Kubernetes API server over HTTPS (its own CA, bearer
//! token) whose TokenRequest tokens the cloud's OIDC issuer signs, the cloud (STS, ECR, ECR
//! Public, Chainguard, registry token service) over HTTP, and, where Debian's `docker-registry`
//! is installed, a real registry that trusts the sandbox's tokens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apiserver::{ApiServer, ApiServerConfig, Tls, TlsError, serve_tls};
use crate::cloud::{
    Cloud, CloudConfig, CloudError, OidcProviderConfig, RegistryError, RegistryProcess,
};

/// The audience STS expects of web-identity tokens unless a provider says otherwise.
pub use irsa_core::names::STS_AUDIENCE;

/// What to start. `Debug` leaves the token out.
#[derive(Clone, Default)]
pub struct StackConfig {
    /// The cloud: IAM roles and providers, token lifetimes, the OIDC issuer URL. The issuer is
    /// registered as an IAM OIDC provider (audience `sts.amazonaws.com`) unless the config does.
    pub cloud: CloudConfig,
    /// The API server's bearer token (default: a random one).
    pub api_token: Option<String>,
    /// Start Debian's `docker-registry` with token auth against the sandbox.
    pub registry: bool,
}

impl std::fmt::Debug for StackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackConfig")
            .field("cloud", &self.cloud)
            .field("api_token", &self.api_token.as_ref().map(|_| "[redacted]"))
            .field("registry", &self.registry)
            .finish()
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A listener has no local address.
    #[error("failed to read the listener address: {0}")]
    Listener(#[source] std::io::Error),
    /// TLS material could not be generated.
    #[error("failed to set up the API server's TLS: {0}")]
    Tls(#[from] TlsError),
    /// The cloud's configuration was refused.
    #[error("failed to start the sandbox cloud: {0}")]
    Cloud(#[from] CloudError),
    /// The registry did not start.
    #[error("failed to start docker-registry: {0}")]
    Registry(#[from] RegistryError),
    /// The state directory could not be written.
    #[error("failed to write {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A running sandbox; servers stop on [`Stack::shutdown`] or when this is dropped.
pub struct Stack {
    /// The Kubernetes API server (store and fault injection for in-process set-up).
    pub api: ApiServer,
    /// The cloud (IAM set-up, counters, clock).
    pub cloud: Cloud,
    /// The API server's CA and certificate.
    pub tls: Tls,
    /// `https://127.0.0.1:<port>`.
    pub api_url: String,
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub aws_url: String,
    /// The registry, when started.
    pub registry: Option<RegistryProcess>,
    region: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Where [`Stack::write_state`] put its files.
#[derive(Debug, Clone)]
pub struct StatePaths {
    /// The kubeconfig (server, CA, token).
    pub kubeconfig: PathBuf,
    /// Shell `export` lines: `AWS_ENDPOINT_URL`, `AWS_REGION`, placeholder credentials, …
    pub env: PathBuf,
}

impl Stack {
    /// Starts the API server on `api_listener` (HTTPS) and the cloud on `aws_listener` (HTTP).
    pub async fn start(
        mut config: StackConfig,
        api_listener: TcpListener,
        aws_listener: TcpListener,
    ) -> Result<Stack, StackError> {
        let api_addr = api_listener.local_addr().map_err(StackError::Listener)?;
        let aws_addr = aws_listener.local_addr().map_err(StackError::Listener)?;
        let api_url = format!("https://{api_addr}");
        let aws_url = format!("http://{aws_addr}");
        // As on EKS, the issuer is a port-less https URL of its own (IAM refuses providers with a
        // port); the API server serves its discovery document and JWKS all the same.
        let issuer = config.cloud.issuer_url.clone();
        if !config.cloud.oidc_providers.iter().any(|p| p.url == issuer) {
            config.cloud.oidc_providers.push(OidcProviderConfig {
                url: issuer,
                client_ids: vec![STS_AUDIENCE.to_owned()],
                jwks: None,
            });
        }
        let region = config.cloud.region.clone();
        let cloud = Cloud::new(config.cloud)?;
        let tls = Tls::generate()?;
        let api_config = ApiServerConfig {
            token: config.api_token.unwrap_or_else(random_token),
            counters: cloud.counters(),
            ..ApiServerConfig::default()
        };
        let api = ApiServer::new(api_config, cloud.issuer());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        {
            let app = api.router();
            let tls = tls.clone();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(error) = serve_tls(api_listener, &tls, app, shutdown).await {
                    tracing::error!(%error, "sandbox API server stopped");
                }
            }));
        }
        {
            let cloud = cloud.clone();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(error) = cloud.serve(aws_listener, shutdown).await {
                    tracing::error!(%error, "sandbox cloud stopped");
                }
            }));
        }
        let registry = if config.registry {
            Some(
                RegistryProcess::start(
                    &aws_url,
                    &cloud.registry_token_certificate_pem(),
                    cloud.registry_auth_config(),
                    Duration::from_secs(30),
                )
                .await?,
            )
        } else {
            None
        };
        Ok(Stack {
            api,
            cloud,
            tls,
            api_url,
            aws_url,
            registry,
            region,
            stop,
            tasks,
        })
    }

    /// A kubeconfig for kubectl, kube-rs and the Python client.
    pub fn kubeconfig(&self) -> String {
        self.tls.kubeconfig(&self.api_url, self.api.token())
    }

    /// Shell `export` lines that point AWS SDKs and CLIs at the sandbox; values single-quoted.
    pub fn env_file(&self, kubeconfig: &Path) -> String {
        let mut vars = vec![
            ("AWS_ENDPOINT_URL", self.aws_url.clone()),
            ("AWS_REGION", self.region.clone()),
            // Placeholders so SDKs do not probe an instance metadata service; the sandbox
            // accepts only the temporary credentials its own STS issued.
            ("AWS_ACCESS_KEY_ID", "AKIAIRSASANDBOX00000".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "irsa-sandbox-placeholder-not-a-credential".to_owned(),
            ),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("IRSA_SANDBOX_ISSUER", self.cloud.issuer().issuer_url()),
            ("IRSA_SANDBOX_ACCOUNT", self.cloud.account_id().to_owned()),
        ];
        if let Some(registry) = &self.registry {
            vars.push(("IRSA_SANDBOX_REGISTRY", registry.host()));
        }
        let mut env = String::from(
            "# Point AWS SDKs, the AWS CLI, kubectl and irsa at the irsa sandbox: source this file.\n",
        );
        for (name, value) in vars {
            env.push_str(&format!("export {name}={}\n", shell_quote(&value)));
        }
        env
    }

    /// Writes `kubeconfig` and `env` into `dir` (created if absent), both mode 0600: the
    /// kubeconfig holds the API server's admin token.
    pub fn write_state(&self, dir: &Path) -> Result<StatePaths, StackError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StackError::State { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        // The cloud may have created it first (for its key) with the default mode.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        // Absolute, so the env file works from any directory.
        let dir = dir.canonicalize().map_err(io(dir))?;
        let kubeconfig = dir.join("kubeconfig");
        let env = dir.join("env");
        for (path, contents) in [
            (&kubeconfig, self.kubeconfig()),
            (&env, self.env_file(&kubeconfig)),
        ] {
            use std::io::Write;
            // A new 0600 file renamed over the old one: never readable by others, never half.
            let tmp = path.with_extension(format!("tmp.{}", random_token()));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(contents.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            };
            write()
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
                .map_err(io(path))?;
        }
        Ok(StatePaths { kubeconfig, env })
    }

    /// Stops both servers and the registry, and waits for the servers to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.registry = None;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// 32 lowercase alphanumerics from the system's CSPRNG: the API server's admin token.
fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // aws-lc's RNG does not fail on Linux; if it ever did, refuse to make a weak token.
        panic!("the system random number generator failed");
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// `value` as one single-quoted shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_spaces_quotes_and_substitutions() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn tokens_are_random_and_debug_hides_them() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let config = StackConfig {
            api_token: Some(a.clone()),
            ..StackConfig::default()
        };
        assert!(!format!("{config:?}").contains(&a));
        let api = ApiServerConfig {
            token: b.clone(),
            ..ApiServerConfig::default()
        };
        assert!(!format!("{api:?}").contains(&b));
    }
}
