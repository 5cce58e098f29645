//! A sandbox cloud (STS, ECR, ECR Public, Chainguard) running in the test process on
//! 127.0.0.1:0, for running the real `irsa` binary against it with `AWS_ENDPOINT_URL`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use irsa_sandbox::cloud::{
    ChainguardConfig, ChainguardIdentity, Cloud, CloudConfig, OidcProviderConfig, RoleConfig,
};
use irsa_sandbox::token_issuer::ServiceAccountTokenRequest;
use serde_json::{Value, json};

pub const ISSUER: &str = "https://oidc.sandbox.irsa.test/id/CLITEST";
pub const PROVIDER: &str = "oidc.sandbox.irsa.test/id/CLITEST";
pub const ACCOUNT: &str = "111122223333";
pub const CHAINGUARD_IDENTITY: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";

fn trust(namespace: &str, name: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{PROVIDER}:sub"): format!("system:serviceaccount:{namespace}:{name}"),
            format!("{PROVIDER}:aud"): "sts.amazonaws.com"
        }}
    }]})
}

fn role(name: &str, actions: &[&str]) -> RoleConfig {
    RoleConfig {
        name: name.into(),
        path: "/".into(),
        trust_policy: trust("ci", "builder"),
        permission_policies: vec![json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}
        ]})],
        max_session_duration: 3600,
    }
}

/// The sandbox cloud, served by its own runtime thread until dropped.
pub struct SandboxCloud {
    pub cloud: Cloud,
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SandboxCloud {
    pub fn start() -> Self {
        Self::start_with(Self::default_config())
    }

    /// The cloud [`SandboxCloud::start`] serves: the OIDC provider of [`ISSUER`], the roles
    /// `puller` and `no-ecr`, a Chainguard identity.
    pub fn default_config() -> CloudConfig {
        CloudConfig {
            issuer_url: ISSUER.into(),
            account_id: ACCOUNT.into(),
            oidc_providers: vec![OidcProviderConfig {
                url: ISSUER.into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                jwks: None,
            }],
            roles: vec![
                role(
                    "puller",
                    &[
                        "ecr:GetAuthorizationToken",
                        "ecr-public:GetAuthorizationToken",
                        "sts:GetServiceBearerToken",
                        "sts:GetWebIdentityToken",
                    ],
                ),
                role("no-ecr", &["s3:GetObject"]),
            ],
            chainguard: ChainguardConfig {
                identities: vec![ChainguardIdentity {
                    id: CHAINGUARD_IDENTITY.into(),
                    allowed_roles: vec![format!("arn:aws:iam::{ACCOUNT}:role/puller")],
                }],
                ..ChainguardConfig::default()
            },
            ..CloudConfig::default()
        }
    }

    /// A sandbox cloud with `config`.
    pub fn start_with(config: CloudConfig) -> Self {
        let cloud = Cloud::new(config).expect("sandbox cloud");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = cloud.clone();
        runtime.spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            cloud,
            url,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }

    /// A service-account token for ci/builder from the sandbox's OIDC issuer.
    pub fn token(&self) -> String {
        self.token_for("ci", "builder")
    }

    /// A service-account token for `namespace`/`service_account` (audience sts.amazonaws.com).
    pub fn token_for(&self, namespace: &str, service_account: &str) -> String {
        let issued = self
            .cloud
            .issuer()
            .issue(&ServiceAccountTokenRequest {
                namespace: namespace.into(),
                service_account: service_account.into(),
                service_account_uid: "0d9e5c4a-1111-2222-3333-444455556666".into(),
                audiences: vec!["sts.amazonaws.com".into()],
                expiration_seconds: 3600,
                bound_object: None,
                node: None,
                now: self.cloud.clock().now(),
            })
            .expect("token issued");
        issued.token.expose().to_owned()
    }

    pub fn calls(&self, service: &str, action: &str) -> u64 {
        self.cloud.counters().total(service, action)
    }

    /// `irsa ARGS` as a workload with the IRSA environment for `role` and this cloud as AWS,
    /// logging at trace level (so that tests see whether anything secret reaches stderr).
    pub fn irsa(
        &self,
        binary: &Path,
        role: &str,
        token_file: &Path,
        cache: &Path,
        args: &[&str],
        stdin: &str,
    ) -> crate::common::Run {
        self.irsa_with_env(binary, role, token_file, cache, args, stdin, &[])
    }

    /// [`SandboxCloud::irsa`] with `extra` environment variables.
    #[allow(clippy::too_many_arguments)]
    pub fn irsa_with_env(
        &self,
        binary: &Path,
        role: &str,
        token_file: &Path,
        cache: &Path,
        args: &[&str],
        stdin: &str,
        extra: &[(&str, &str)],
    ) -> crate::common::Run {
        use std::io::Write;
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_REGION", "us-east-1")
            .env(
                "AWS_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
            )
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
            .env("XDG_CACHE_HOME", cache)
            .env("IRSA_LOG", "trace")
            .envs(extra.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("irsa starts");
        if let Err(e) = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
        {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        }
        let out = child.wait_with_output().expect("irsa runs");
        crate::common::Run {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8(out.stdout).expect("utf-8"),
            stderr: String::from_utf8(out.stderr).expect("utf-8"),
        }
    }
}

impl Drop for SandboxCloud {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}
