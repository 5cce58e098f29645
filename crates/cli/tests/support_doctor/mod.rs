//! `irsa sandbox` as a separate process with ci/builder created by the real kubectl, and
//! `irsa doctor` run against it: shared by tests/doctor.rs and benches/doctor.rs.
#![allow(dead_code)]

pub mod installed;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TempDir};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "111122223333";
pub const ISSUER: &str = "https://oidc.sandbox.irsa.test/id/DOCTOR";
pub const PROVIDER: &str = "oidc.sandbox.irsa.test/id/DOCTOR";
pub const NS: &str = "ci";
pub const SA: &str = "builder";

pub fn provider_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}")
}

pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// The trust policy `irsa policy trust` writes for ci/builder, with `conditions` instead.
pub fn trust_with(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

pub fn allow(conditions: Value) -> Value {
    json!({
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn()},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": conditions
    })
}

pub fn trust_for(sub: &str, aud: &str) -> Value {
    trust_with(vec![allow(json!({"StringEquals": {
        format!("{PROVIDER}:sub"): sub,
        format!("{PROVIDER}:aud"): aud
    }}))])
}

pub fn good_trust() -> Value {
    trust_for(
        &format!("system:serviceaccount:{NS}:{SA}"),
        "sts.amazonaws.com",
    )
}

pub fn role(name: &str, trust: Value, actions: &[&str]) -> Value {
    json!({
        "name": name,
        "trustPolicy": trust,
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}
        ]}]
    })
}

pub fn ecr_role(trust: Value) -> Value {
    role(
        "puller",
        trust,
        &[
            "ecr:GetAuthorizationToken",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
    )
}

pub struct Sandbox {
    child: Child,
    pub env: Vec<(String, String)>,
    pub dir: TempDir,
}

impl Sandbox {
    /// `irsa sandbox` with these roles, and ci/builder created with kubectl (annotated with
    /// `annotations`).
    pub fn start(name: &str, roles: Vec<Value>, annotations: &[(&str, &str)]) -> Self {
        Self::start_with(name, roles, annotations, false)
    }

    /// [`Sandbox::start`] with Debian's docker-registry (its `host:port` in the env file as
    /// `IRSA_SANDBOX_REGISTRY`), where installed.
    pub fn start_with_registry(
        name: &str,
        roles: Vec<Value>,
        annotations: &[(&str, &str)],
    ) -> Self {
        Self::start_with(name, roles, annotations, true)
    }

    fn start_with(
        name: &str,
        roles: Vec<Value>,
        annotations: &[(&str, &str)],
        registry: bool,
    ) -> Self {
        let dir = TempDir::new(&format!("doctor-{name}"));
        let config = json!({"accountId": ACCOUNT, "issuerUrl": ISSUER, "roles": roles});
        let state = dir.0.join("state");
        let mut child = Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--aws-listen",
                "127.0.0.1:0",
            ])
            .args((!registry).then_some("--no-registry"))
            .arg("--state-dir")
            .arg(&state)
            .arg("--config")
            .arg(dir.write("sandbox.json", &config.to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("irsa sandbox starts");
        let env_file = state.join("env");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !env_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
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
        let sandbox = Sandbox { child, env, dir };
        sandbox.kubectl(&["create", "namespace", NS]);
        sandbox.kubectl(&["create", "serviceaccount", SA, "-n", NS]);
        if !annotations.is_empty() {
            let mut args = vec![
                "annotate".to_owned(),
                "serviceaccount".into(),
                SA.into(),
                "-n".into(),
                NS.into(),
            ];
            args.extend(annotations.iter().map(|(k, v)| format!("{k}={v}")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sandbox.kubectl(&args);
        }
        sandbox
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // HOME in the scratch directory: kubectl keeps its discovery cache under $HOME/.kube.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir.0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self
            .command(&irsa_test_peers::kubectl())
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

    pub fn get(&self, key: &str) -> &str {
        &self
            .env
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} not in env"))
            .1
    }

    /// A pod of ci/builder running `image`, as the pod identity webhook leaves it (its env,
    /// projected token volume and mount for role puller).
    pub fn create_injected_pod(&self, name: &str, image: &str) {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": {
            "serviceAccountName": SA,
            "containers": [{
                "name": "app",
                "image": image,
                "env": [
                    {"name": "AWS_ROLE_ARN", "value": role_arn("puller")},
                    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}
                ],
                "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}]
            }],
            "volumes": [{"name": "aws-iam-token", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
            ]}}]
        }});
        let file = self.dir.write(&format!("{name}.json"), &pod.to_string());
        self.kubectl(&["create", "--validate=false", "-f", &file]);
    }

    /// A TokenRequest token for ci/builder with audience sts.amazonaws.com (`kubectl create
    /// token`).
    pub fn token(&self) -> String {
        self.kubectl(&[
            "create",
            "token",
            SA,
            "-n",
            NS,
            "--audience",
            "sts.amazonaws.com",
        ])
        .trim()
        .to_owned()
    }

    /// A session of `role` for ci/builder's token (boto3's AssumeRoleWithWebIdentity), as the
    /// AWS SDKs' environment: the key id, the secret and the session token.
    pub fn session_env(&self, role: &str) -> [(&'static str, String); 3] {
        let creds = self.boto3(&format!(
            "sts = boto3.client('sts', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')\n\
             c = sts.assume_role_with_web_identity(RoleArn='{}', RoleSessionName='caller', WebIdentityToken='{}')['Credentials']\n\
             print(c['AccessKeyId'], c['SecretAccessKey'], c['SessionToken'])\n",
            self.get("AWS_ENDPOINT_URL"),
            role_arn(role),
            self.token()
        ));
        let parts: Vec<&str> = creds.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "{creds}");
        [
            ("AWS_ACCESS_KEY_ID", parts[0].to_owned()),
            ("AWS_SECRET_ACCESS_KEY", parts[1].to_owned()),
            ("AWS_SESSION_TOKEN", parts[2].to_owned()),
        ]
    }

    /// A boto3 script against the sandbox's AWS endpoint (its IAM Query API); `iam` is a client.
    pub fn boto3(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3\niam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='{}', aws_secret_access_key='{}')\n",
            self.get("AWS_ENDPOINT_URL"),
            self.get("AWS_ACCESS_KEY_ID"),
            self.get("AWS_SECRET_ACCESS_KEY"),
        );
        let out = Command::new(irsa_test_peers::venv().join("bin/python"))
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn doctor(&self, extra: &[&str]) -> common::Run {
        let out = self
            .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args(["doctor", "--service-account", &format!("{NS}/{SA}")])
            .args(extra)
            .output()
            .expect("irsa doctor runs");
        common::Run {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8(out.stdout).expect("utf-8"),
            stderr: String::from_utf8(out.stderr).expect("utf-8"),
        }
    }

    /// Doctor's JSON report, asserting that `broken` is the first and only failing check
    /// (every later check that needs it skipped), with exit code 1.
    pub fn expect_broken(&self, broken: &str) -> Value {
        let run = self.doctor(&["-o", "json"]);
        let report = run.json();
        assert_eq!(run.code, 1, "{report:#}\n{}", run.stderr);
        assert_eq!(report["first_failure"], broken, "{report:#}");
        let failing: Vec<&str> = checks(&report)
            .filter(|c| c["status"] == "fail" || c["status"] == "error")
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(failing, [broken], "only {broken} fails: {report:#}");
        assert!(
            check(&report, broken)["fix"].is_object() || broken == "role",
            "{broken} carries a fix: {report:#}"
        );
        report
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
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

pub fn checks(report: &Value) -> impl Iterator<Item = &Value> {
    report["checks"].as_array().expect("checks").iter()
}

pub fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    checks(report)
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

pub const ALL_CHECKS: &[&str] = &[
    "service-account",
    "role-annotation",
    "issuer",
    "jwks",
    "token",
    "partition",
    "oidc-provider",
    "oidc-audience",
    "role",
    "session-tags",
    "trust-policy",
    "permissions",
    "assume-role",
    "ecr",
];

pub fn annotated() -> Vec<(&'static str, String)> {
    vec![("eks.amazonaws.com/role-arn", role_arn("puller"))]
}

pub fn start(name: &str, roles: Vec<Value>) -> Sandbox {
    let a = annotated();
    let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Sandbox::start(name, roles, &a)
}
