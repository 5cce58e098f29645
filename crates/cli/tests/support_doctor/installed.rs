//! irsa as `irsa install` deploys it, beside `irsa sandbox`: the CRDs applied with the real
//! kubectl, `irsa controller` as a process with the Deployment's arguments, pull secrets and
//! their status. Shared by tests/doctor_pull_secret.rs and benches/doctor.rs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::common;
use serde_json::{Value, json};

pub fn ecr_host() -> String {
    format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")
}

/// `kubectl ARGS` with `stdin`.
pub fn kubectl_in(sandbox: &Sandbox, args: &[&str], stdin: &str) -> String {
    let mut child = sandbox
        .command(&irsa_test_peers::kubectl())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

pub fn apply(sandbox: &Sandbox, object: &Value) {
    kubectl_in(
        sandbox,
        &["apply", "--validate=false", "-f", "-"],
        &object.to_string(),
    );
}

/// irsa's CRDs as a user installs them: `irsa install --only crds | kubectl apply --server-side -f -`.
pub fn install_crds(sandbox: &Sandbox) {
    let run = common::irsa(&["install", "--only", "crds"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    kubectl_in(
        sandbox,
        &["apply", "--server-side", "--validate=false", "-f", "-"],
        &run.stdout,
    );
}

/// The controller container's arguments in `irsa install INSTALL`'s Deployment, with the
/// metrics listener moved to a free loopback port (the only change).
pub fn installed_controller_args(install: &[&str], metrics: std::net::SocketAddr) -> Vec<String> {
    let mut command = vec!["install"];
    command.extend(install);
    let run = common::irsa(&command);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deployment = run
        .stdout
        .split("\n---\n")
        .find(|d| d.contains("kind: Deployment\n"))
        .expect("a Deployment in the install");
    let mut lines = deployment
        .lines()
        .skip_while(|l| l.trim().trim_start_matches("- ") != "args:");
    lines.next();
    let mut args = Vec::new();
    for line in lines {
        let Some(arg) = line.trim().strip_prefix("- ") else {
            break;
        };
        args.push(arg.trim_matches(|c| c == '\'' || c == '"').to_owned());
    }
    assert_eq!(
        args.first().map(String::as_str),
        Some("controller"),
        "{args:?}"
    );
    args.into_iter()
        .map(|a| {
            if a.starts_with("--metrics-listen=") {
                format!("--metrics-listen={metrics}")
            } else {
                a
            }
        })
        .collect()
}

/// `irsa controller` as installed, SIGTERMed at [`Controller::stop`] or killed at drop.
pub struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    /// As `irsa install` deploys it.
    pub fn start(sandbox: &Sandbox) -> Self {
        Self::start_with(sandbox, &[])
    }

    /// As `irsa install INSTALL` deploys it, e.g. `["--argocd-namespace", "argocd"]`.
    pub fn start_with(sandbox: &Sandbox, install: &[&str]) -> Self {
        Self::spawn(sandbox, install, "info", &[])
    }

    /// [`Controller::start_with`] logging at `log_level` (IRSA_LOG), with `extra` environment.
    pub fn spawn(
        sandbox: &Sandbox,
        install: &[&str],
        log_level: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let log = sandbox.dir.0.join("controller.log");
        // The Deployment's environment: POD_NAME/POD_NAMESPACE from the downward API, the
        // sandbox's AWS endpoint instead of AWS's, no static AWS key.
        let child = Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args(installed_controller_args(install, metrics))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &sandbox.dir.0)
            .env("KUBECONFIG", sandbox.get("KUBECONFIG"))
            .env("AWS_ENDPOINT_URL", sandbox.get("AWS_ENDPOINT_URL"))
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("POD_NAME", "irsa-controller-7d9f8b6c5-x2k4q")
            .env("POD_NAMESPACE", "irsa-system")
            .env("IRSA_LOG", log_level)
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("irsa controller starts");
        Controller { child, log }
    }

    /// The process id (for its /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 60 lines of its log.
    pub fn log(&self) -> String {
        let text = self.full_log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Its whole log (stderr).
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as the kubelet stops it; asserts a clean exit and returns its whole log.
    pub fn stop_cleanly(mut self) -> String {
        self.stop();
        let status = self.child.try_wait().expect("wait").expect("exited");
        assert!(
            status.success(),
            "exited with {status}:\n{}",
            self.full_log()
        );
        self.full_log()
    }

    /// SIGTERM, and waits for the exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The sandbox (role puller trusting ci/builder, which names it), irsa's CRDs, the namespace
/// irsa-system and the controller as installed; namespaces `targets` labelled team=pull.
pub fn start_all(name: &str, roles: Vec<Value>, targets: &[&str]) -> (Sandbox, Controller) {
    let a = annotated();
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sandbox = Sandbox::start(name, roles, &a);
    install_crds(&sandbox);
    sandbox.kubectl(&["create", "namespace", "irsa-system"]);
    for ns in targets {
        target_namespace(&sandbox, ns);
    }
    let controller = Controller::start(&sandbox);
    (sandbox, controller)
}

pub fn target_namespace(sandbox: &Sandbox, ns: &str) {
    sandbox.kubectl(&["create", "namespace", ns]);
    sandbox.kubectl(&["label", "namespace", ns, "team=pull"]);
}

/// A ClusterPullSecret for the sandbox's ECR with ci/builder's identity (and `identity`'s
/// extra fields), into the namespaces labelled team=pull.
pub fn cluster_pull_secret(sandbox: &Sandbox, name: &str, identity: Value) {
    let mut id = json!({"serviceAccount": {"namespace": NS, "name": SA}});
    if let Value::Object(extra) = identity {
        id.as_object_mut().unwrap().extend(extra);
    }
    apply(
        sandbox,
        &json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
            "metadata": {"name": name},
            "spec": {
                "registries": [{"host": ecr_host()}],
                "identity": id,
                "secretName": "regcred",
                "namespaces": {"selector": {"matchLabels": {"team": "pull"}}},
            },
        }),
    );
}

/// Waits until the controller's status describes the current generation, with Ready `ready`.
pub fn wait_status(sandbox: &Sandbox, c: &Controller, args: &[&str], ready: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut get = vec!["get"];
        get.extend(args);
        get.extend(["-o", "json"]);
        let obj: Value = serde_json::from_str(&sandbox.kubectl(&get)).expect("JSON");
        let status = &obj["status"];
        let current = status["observedGeneration"] == obj["metadata"]["generation"];
        let is = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == ready);
        if current && is {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {args:?} Ready={ready}: {status:#}\ncontroller log:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
