//! `irsa sandbox` end to end, as a user runs it: start it, `source` its env file, use the real
//! kubectl to create a service account and a token, and `irsa login` with that token.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use irsa_core::docker_config::DockerConfig;

const ACCOUNT: &str = "111122223333";
const ISSUER: &str = "https://oidc.sandbox.irsa.test/id/E2E";
const PROVIDER: &str = "oidc.sandbox.irsa.test/id/E2E";

fn kubectl() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s"));
    let kubectl = venv.join("bin/kubectl");
    assert!(
        kubectl.exists(),
        "kubectl is not installed at {} (set IRSA_TEST_VENV_K8S, or from the workspace root: \
         python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install -r tests/requirements-k8s.txt)",
        kubectl.display()
    );
    kubectl
}

struct Sandbox {
    child: Child,
    env: Vec<(String, String)>,
}

impl Sandbox {
    fn start(dir: &TempDir) -> Self {
        Self::start_with(dir, Some(Self::config()))
    }

    fn config() -> serde_json::Value {
        serde_json::json!({
            "accountId": ACCOUNT,
            "issuerUrl": ISSUER,
            "roles": [{
                "name": "puller",
                "trustPolicy": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}")},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        format!("{PROVIDER}:sub"): "system:serviceaccount:ci:builder",
                        format!("{PROVIDER}:aud"): "sts.amazonaws.com"
                    }}
                }]},
                "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
                ]}]
            }]
        })
    }

    fn start_with(dir: &TempDir, config: Option<serde_json::Value>) -> Self {
        let state = dir.0.join("state");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_irsa"));
        cmd.args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--aws-listen",
            "127.0.0.1:0",
            "--no-registry",
        ])
        .arg("--state-dir")
        .arg(&state);
        if let Some(config) = config {
            cmd.arg("--config")
                .arg(dir.write("sandbox.json", &config.to_string()));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("irsa sandbox starts");
        let env_file = state.join("env");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !env_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let pipe = child.stderr.as_mut().expect("stderr");
                std::io::Read::read_to_string(pipe, &mut stderr).expect("read stderr");
                panic!("irsa sandbox exited with {status}: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "the sandbox wrote no env file within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let env = std::fs::read_to_string(&env_file)
            .expect("env file")
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Sandbox { child, env }
    }

    fn get(&self, key: &str) -> &str {
        &self
            .env
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} not in env file"))
            .1
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = self
            .command(&kubectl())
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SIGTERM, as a user's Ctrl-C or a supervisor would stop it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kubectl_token_then_irsa_login_through_the_sandbox() {
    let dir = TempDir::new("sandbox-e2e");
    let sandbox = Sandbox::start(&dir);
    let issuer = sandbox.get("IRSA_SANDBOX_ISSUER").to_owned();
    assert_eq!(issuer, ISSUER);
    let kubeconfig = sandbox.get("KUBECONFIG").to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig)
            .expect("kubeconfig")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the admin token");

    sandbox.kubectl(&["create", "namespace", "ci"]);
    sandbox.kubectl(&["create", "serviceaccount", "builder", "-n", "ci"]);
    sandbox.kubectl(&["create", "serviceaccount", "intruder", "-n", "ci"]);
    let token = sandbox.kubectl(&[
        "create",
        "token",
        "builder",
        "-n",
        "ci",
        "--audience",
        "sts.amazonaws.com",
    ]);
    let intruder = sandbox.kubectl(&[
        "create",
        "token",
        "intruder",
        "-n",
        "ci",
        "--audience",
        "sts.amazonaws.com",
    ]);
    let token_file = dir.write("token", token.trim());
    let intruder_file = dir.write("intruder", intruder.trim());

    // The issued token says what the sandbox says it is.
    let inspect = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args([
            "token",
            "inspect",
            &token_file,
            "--issuer",
            &issuer,
            "--audience",
            "sts.amazonaws.com",
            "-o",
            "json",
        ])
        .output()
        .expect("irsa token inspect");
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(report["service_account"]["name"], "builder", "{report}");
    assert_eq!(report["verification"]["valid"], true, "{report}");

    let login = |file: &str| {
        sandbox
            .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args([
                "login",
                &format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"),
                "--no-cache",
            ])
            .env(
                "AWS_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/puller"),
            )
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", file)
            .output()
            .expect("irsa login")
    };
    let ok = login(&token_file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let config = DockerConfig::parse(&ok.stdout).expect("dockerconfigjson");
    assert_eq!(
        config.auths[&format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")].username,
        "AWS"
    );

    // Another service account of the same namespace is refused by the trust policy, and told why.
    let denied = login(&intruder_file);
    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("system:serviceaccount:ci:intruder"),
        "{stderr}"
    );
    assert!(stderr.contains("trust policy"), "{stderr}");
}

#[test]
fn the_default_sandbox_issues_tokens_its_issuer_verifies() {
    let dir = TempDir::new("sandbox-default");
    let sandbox = Sandbox::start_with(&dir, None);
    let issuer = sandbox.get("IRSA_SANDBOX_ISSUER").to_owned();
    sandbox.kubectl(&["create", "namespace", "team"]);
    sandbox.kubectl(&["create", "serviceaccount", "app", "-n", "team"]);
    let token = sandbox.kubectl(&[
        "create",
        "token",
        "app",
        "-n",
        "team",
        "--audience",
        "sts.amazonaws.com",
    ]);
    let jwks = sandbox.kubectl(&["get", "--raw", "/openid/v1/jwks"]);
    let jwks_file = dir.write("jwks.json", &jwks);
    let token_file = dir.write("token", token.trim());
    let out = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args([
            "token",
            "inspect",
            &token_file,
            "--jwks",
            &jwks_file,
            "--issuer",
            &issuer,
        ])
        .args(["--audience", "sts.amazonaws.com", "-o", "json"])
        .output()
        .expect("irsa token inspect");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verification"]["valid"], true, "{report}");
    assert_eq!(report["service_account"]["namespace"], "team");
}
