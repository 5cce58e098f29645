//! `irsa login` for cgr.dev against the sandbox's STS and Chainguard exchange, by both methods:
//! the signed `GetCallerIdentity` proof and STS `GetWebIdentityToken` (IAM outbound identity
//! federation). The real binary, the IRSA environment, logging at trace.

mod common;
mod support_cloud;

use std::path::PathBuf;

use common::TempDir;
use irsa_core::docker_config::DockerConfig;
use support_cloud::{CHAINGUARD_IDENTITY, SandboxCloud};

const IMAGE: &str = "cgr.dev/chainguard/static:latest";

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_irsa"))
}

struct Workload {
    cloud: SandboxCloud,
    _dir: TempDir,
    token_file: PathBuf,
    cache: PathBuf,
}

impl Workload {
    fn new(name: &str) -> Self {
        let cloud = SandboxCloud::start();
        let dir = TempDir::new(name);
        let token_file = PathBuf::from(dir.write("token", &cloud.token()));
        let cache = dir.0.join("cache");
        Self {
            cloud,
            _dir: dir,
            token_file,
            cache,
        }
    }

    fn login(&self, role: &str, extra: &[&str]) -> common::Run {
        let issuer = self.cloud.url.clone();
        let mut args = vec![
            "login",
            "--no-cache",
            "--chainguard-identity",
            CHAINGUARD_IDENTITY,
            "--chainguard-issuer",
            &issuer,
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        self.cloud
            .irsa(&binary(), role, &self.token_file, &self.cache, &args, "")
    }
}

/// The password, the web-identity token and anything JWT-shaped stay out of stderr.
fn assert_no_secret_in(stderr: &str, w: &Workload, config: Option<&DockerConfig>) {
    let token = std::fs::read_to_string(&w.token_file).expect("token");
    assert!(!stderr.contains(token.trim()), "the SA token leaked");
    if let Some(config) = config {
        for auth in config.auths.values() {
            assert!(
                !stderr.contains(auth.password.expose()),
                "the Chainguard token leaked: {stderr}"
            );
        }
    }
    // Every JWT starts with base64url of `{"`: none may reach the logs, whatever its origin.
    assert!(
        !stderr.contains("eyJ"),
        "a JWT-shaped string leaked: {stderr}"
    );
}

#[test]
fn login_by_get_caller_identity_proof() {
    let w = Workload::new("cg-gci");
    let run = w.login("puller", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config = DockerConfig::parse(run.stdout.trim().as_bytes()).expect("dockerconfigjson");
    let auth = config.auths.get("cgr.dev").expect("an auth for cgr.dev");
    assert_eq!(auth.username, "_token");
    assert_eq!(
        w.cloud.cloud.counters().get("chainguard", "Exchange", "ok"),
        1
    );
    assert_no_secret_in(&run.stderr, &w, Some(&config));
}

#[test]
fn login_by_web_identity_token() {
    let w = Workload::new("cg-jwt");
    let run = w.login("puller", &["--chainguard-method", "web-identity-token"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config = DockerConfig::parse(run.stdout.trim().as_bytes()).expect("dockerconfigjson");
    assert_eq!(config.auths["cgr.dev"].username, "_token");
    assert_eq!(w.cloud.calls("sts", "GetWebIdentityToken"), 1);
    assert_eq!(
        w.cloud.cloud.counters().get("chainguard", "Exchange", "ok"),
        1
    );
    assert_no_secret_in(&run.stderr, &w, Some(&config));
}

/// The identity is checked as the credential provider and the CRDs check it (chainctl's shape),
/// before any upstream call, for `login`, `argocd-credentials` and `docker-credential-irsa` alike.
#[test]
fn an_identity_not_of_chainctls_shape_is_refused_before_any_call() {
    let w = Workload::new("cg-bad-id");
    let issuer = w.cloud.url.clone();
    for id in [
        "org/id",
        "720909c9f5279097d847ad02a2f24ba8f59de36a",
        "x/../y",
    ] {
        let args = [
            "login",
            "--no-cache",
            "--chainguard-identity",
            id,
            "--chainguard-issuer",
            issuer.as_str(),
            IMAGE,
        ];
        let run = w
            .cloud
            .irsa(&binary(), "puller", &w.token_file, &w.cache, &args, "");
        assert_eq!(run.code, 2, "{id}: {}", run.stderr);
        assert!(
            run.stderr.contains("--chainguard-identity")
                && run.stderr.contains("chainctl iam identities create"),
            "{id}: {}",
            run.stderr
        );
    }
    let argocd = w.cloud.irsa_with_env(
        &binary(),
        "puller",
        &w.token_file,
        &w.cache,
        &[
            "argocd-credentials",
            "--no-cache",
            "--chainguard-issuer",
            issuer.as_str(),
            "cgr.dev",
        ],
        "",
        &[("IRSA_CHAINGUARD_IDENTITY", "org/id")],
    );
    assert_eq!(argocd.code, 2, "{}", argocd.stderr);
    assert!(
        argocd.stderr.contains("--chainguard-identity"),
        "{}",
        argocd.stderr
    );
    // Only cgr.dev needs the identity: a malformed one in a shared environment (Argo CD's
    // repo-server) must not break an ECR login.
    let ecr = w.cloud.irsa_with_env(
        &binary(),
        "puller",
        &w.token_file,
        &w.cache,
        &[
            "login",
            "--no-cache",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com",
        ],
        "",
        &[("IRSA_CHAINGUARD_IDENTITY", "org/id")],
    );
    assert_eq!(ecr.code, 0, "{}", ecr.stderr);
    // The docker helper answers on stdout, and only for cgr.dev: a malformed identity in the
    // environment must not break its ECR answers.
    let docker = w.cloud.irsa_with_env(
        &binary(),
        "puller",
        &w.token_file,
        &w.cache,
        &["docker-credential", "get"],
        "https://cgr.dev\n",
        &[("IRSA_CHAINGUARD_IDENTITY", "org/id")],
    );
    assert_eq!(docker.code, 1, "{}", docker.stderr);
    assert!(
        docker.stdout.starts_with("irsa: --chainguard-identity"),
        "{}",
        docker.stdout
    );
    assert_eq!(
        w.cloud.calls("sts", "AssumeRoleWithWebIdentity"),
        1,
        "the ECR login"
    );
    for (service, action) in [("sts", "GetWebIdentityToken"), ("chainguard", "Exchange")] {
        assert_eq!(w.cloud.calls(service, action), 0, "{service} {action}");
    }
}

#[test]
fn the_method_also_comes_from_the_environment_and_is_checked() {
    let w = Workload::new("cg-env");
    let issuer = w.cloud.url.clone();
    let args = [
        "login",
        "--no-cache",
        "--chainguard-identity",
        CHAINGUARD_IDENTITY,
        "--chainguard-issuer",
        issuer.as_str(),
        IMAGE,
    ];
    let run = w.cloud.irsa_with_env(
        &binary(),
        "puller",
        &w.token_file,
        &w.cache,
        &args,
        "",
        &[("IRSA_CHAINGUARD_METHOD", "web-identity-token")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.cloud.calls("sts", "GetWebIdentityToken"), 1);
    let bad = w.login("puller", &["--chainguard-method", "oidc"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--chainguard-method") && bad.stderr.contains("web-identity-token"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_role_without_get_web_identity_token_is_told_what_to_enable() {
    let w = Workload::new("cg-deny");
    let run = w.login("no-ecr", &["--chainguard-method", "web-identity-token"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("sts:GetWebIdentityToken")
            && run.stderr.contains("outbound identity federation"),
        "{}",
        run.stderr
    );
    assert_no_secret_in(&run.stderr, &w, None);
}
