//! `irsa login`, `argocd-credentials` and the docker credential helper, run as a workload would:
//! the IRSA environment, the real binary, and the sandbox's STS/ECR (which verify the token, the
//! trust policy and every SigV4 signature) as AWS.

mod common;
mod support_cloud;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::TempDir;
use irsa_core::docker_config::DockerConfig;
use support_cloud::{ACCOUNT, SandboxCloud};

const ECR_A: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
const ECR_B: &str = "444455556666.dkr.ecr.us-east-1.amazonaws.com";
const ECR_EU: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com";

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_irsa"))
}

struct Workload {
    cloud: SandboxCloud,
    dir: TempDir,
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
            dir,
            token_file,
            cache,
        }
    }

    fn run(&self, role: &str, args: &[&str]) -> common::Run {
        self.run_with(&binary(), role, args, "")
    }

    fn run_with(&self, bin: &Path, role: &str, args: &[&str], stdin: &str) -> common::Run {
        self.cloud
            .irsa(bin, role, &self.token_file, &self.cache, args, stdin)
    }

    fn sts_calls(&self) -> u64 {
        self.cloud.calls("sts", "AssumeRoleWithWebIdentity")
    }

    fn ecr_calls(&self) -> u64 {
        self.cloud.calls("ecr", "GetAuthorizationToken")
    }
}

#[test]
fn login_writes_one_auth_per_registry_with_one_sts_and_one_ecr_call_per_region() {
    let w = Workload::new("login");
    let run = w.run(
        "puller",
        &[
            "login",
            ECR_A,
            &format!("{ECR_B}/team/app:1.0"),
            ECR_EU,
            "public.ecr.aws/x/y",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let config =
        DockerConfig::parse(run.stdout.trim().as_bytes()).expect("stdout is a dockerconfigjson");
    for host in [ECR_A, ECR_B, ECR_EU, "public.ecr.aws"] {
        let auth = config
            .auths
            .get(host)
            .unwrap_or_else(|| panic!("{host} missing: {:?}", config.auths.keys()));
        assert_eq!(auth.username, "AWS");
        assert!(!auth.password.is_empty());
    }
    assert_eq!(w.sts_calls(), 1, "one STS exchange for the identity");
    assert_eq!(
        w.ecr_calls(),
        2,
        "us-east-1 (both accounts in one call) and eu-west-1"
    );
    assert_eq!(w.cloud.calls("ecr-public", "GetAuthorizationToken"), 1);
    // Nothing secret reached the (trace-level) logs.
    let leaks = leaks(&w, &run.stderr, &config);
    assert!(leaks.is_empty(), "secrets in the logs: {leaks:?}");
}

/// The markers of sandbox (and real) STS credentials: every session token starts with this
/// (base64 of its version header), and the secret key travels in this XML element.
const SESSION_TOKEN_PREFIX: &str = "IQoJb3JpZ2luX2Vj";
const SECRET_KEY_ELEMENT: &str = "SecretAccessKey>";

/// Which secrets of this run appear in `stderr`: the web-identity token, the STS session, the
/// registry passwords (bare, and as ECR returns them: base64 of `AWS:password`).
fn leaks(w: &Workload, stderr: &str, config: &DockerConfig) -> Vec<String> {
    use base64::Engine as _;
    let mut found = Vec::new();
    let token = std::fs::read_to_string(&w.token_file).expect("token");
    if stderr.contains(token.trim()) {
        found.push("the web-identity token".to_owned());
    }
    if stderr.contains(SESSION_TOKEN_PREFIX) {
        found.push("an STS session token".to_owned());
    }
    if stderr.contains(SECRET_KEY_ELEMENT) {
        found.push("an STS secret access key".to_owned());
    }
    for (host, auth) in &config.auths {
        let password = auth.password.expose();
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", auth.username));
        if stderr.contains(password) || stderr.contains(&encoded) {
            found.push(format!("the password for {host}"));
        }
    }
    found
}

#[test]
fn trace_logs_leak_only_with_the_documented_override() {
    let w = Workload::new("login-unsafe");
    let args = ["login", "--no-cache", ECR_A];
    let capped = w.run("puller", &args);
    assert_eq!(capped.code, 0, "{}", capped.stderr);
    assert!(capped.stderr.contains("DEBUG"), "verbose logging is on");
    let config = DockerConfig::parse(capped.stdout.trim().as_bytes()).expect("dockerconfigjson");
    assert_eq!(leaks(&w, &capped.stderr, &config), Vec::<String>::new());
    // IRSA_LOG_UNSAFE_DEPENDENCIES=1 lifts the cap: aws-smithy-runtime dumps the ECR response
    // body (base64 of AWS:password) at trace, so the check above is what keeps it out. (It
    // redacts the STS bodies itself, unless LOG_SENSITIVE_BODIES=true.)
    let lifted = w.cloud.irsa_with_env(
        &binary(),
        "puller",
        &w.token_file,
        &w.cache,
        &args,
        "",
        &[("IRSA_LOG_UNSAFE_DEPENDENCIES", "1")],
    );
    assert_eq!(lifted.code, 0, "{}", lifted.stderr);
    let config = DockerConfig::parse(lifted.stdout.trim().as_bytes()).expect("dockerconfigjson");
    let found = leaks(&w, &lifted.stderr, &config);
    assert_eq!(found, [format!("the password for {ECR_A}")]);
}

#[test]
fn a_warm_disk_cache_answers_without_calling_aws() {
    let w = Workload::new("warm");
    let first = w.run("puller", &["argocd-credentials", ECR_A]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let line = first.stdout.trim();
    assert!(
        line.starts_with("AWS:") && line.len() > 10,
        "username:password expected"
    );
    let (sts, ecr) = (w.sts_calls(), w.ecr_calls());
    let second = w.run("puller", &["argocd-credentials", ECR_A]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(
        (w.sts_calls(), w.ecr_calls()),
        (sts, ecr),
        "served from disk"
    );
    // The cached file is private to the user.
    let dir = w.cache.join("irsa").join("credentials");
    let file = std::fs::read_dir(&dir)
        .expect("cache dir")
        .next()
        .expect("a file")
        .expect("entry")
        .path();
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777,
        0o700
    );
    // --no-cache goes upstream again.
    let third = w.run("puller", &["argocd-credentials", ECR_A, "--no-cache"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(w.ecr_calls(), ecr + 1);
}

#[test]
fn password_output_is_one_bare_line_for_one_registry() {
    let w = Workload::new("password");
    let run = w.run("puller", &["login", ECR_A, "-o", "password"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1);
    assert!(!run.stdout.contains(':') && !run.stdout.contains('{'));
    let two = w.run("puller", &["login", ECR_A, ECR_B, "-o", "password"]);
    assert_eq!(two.code, 2);
    assert!(two.stderr.contains("--output password"), "{}", two.stderr);
}

#[test]
fn json_output_lists_registry_username_password_and_expiry() {
    let w = Workload::new("json");
    let run = w.run("puller", &["login", ECR_A, "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json();
    assert_eq!(rows[0]["registry"], ECR_A);
    assert_eq!(rows[0]["username"], "AWS");
    assert!(rows[0]["password"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(
        rows[0]["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[test]
fn a_role_without_ecr_permission_exits_1_pointing_at_the_permissions_policy() {
    let w = Workload::new("denied");
    let run = w.run("no-ecr", &["login", ECR_A]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("permissions policy"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ecr:GetAuthorizationToken"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("arn:aws:iam::{ACCOUNT}:role/no-ecr"))
            || run.stderr.contains("no-ecr"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_registry_irsa_cannot_serve_is_bad_input() {
    let w = Workload::new("other");
    let run = w.run("puller", &["login", "quay.io/org/app"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("quay.io") && run.stderr.contains("cannot mint"),
        "{}",
        run.stderr
    );
}

#[test]
fn docker_credential_helper_protocol_through_its_own_name() {
    let w = Workload::new("helper");
    let helper = w.dir.0.join("docker-credential-irsa");
    std::os::unix::fs::symlink(binary(), &helper).expect("symlink");
    let url = format!("https://{ECR_A}");
    let get = w.run_with(&helper, "puller", &["get"], &format!("{url}\n"));
    assert_eq!(get.code, 0, "{}", get.stderr);
    let body = get.json();
    assert_eq!(body["ServerURL"], url);
    assert_eq!(body["Username"], "AWS");
    assert!(body["Secret"].as_str().is_some_and(|s| !s.is_empty()));
    // Nothing secret in the helper's (trace-level) stderr.
    let config = DockerConfig::parse(
        serde_json::json!({"auths": {ECR_A: {"username": "AWS", "password": body["Secret"]}}})
            .to_string()
            .as_bytes(),
    )
    .expect("auths");
    let leaks = leaks(&w, &get.stderr, &config);
    assert!(leaks.is_empty(), "secrets in the helper's logs: {leaks:?}");

    let list = w.run_with(&helper, "puller", &["list"], "");
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.json()[&url], "AWS");
    let uncached = w.run_with(&helper, "puller", &["--no-cache", "list"], "");
    assert_eq!(
        uncached.json(),
        serde_json::json!({}),
        "--no-cache lists nothing cached"
    );

    let unknown = w.run_with(&helper, "puller", &["get"], "https://quay.io\n");
    assert_eq!(unknown.code, 1);
    assert_eq!(
        unknown.stdout.trim(),
        "credentials not found in native keychain"
    );

    let store = w.run_with(
        &helper,
        "puller",
        &["store"],
        r#"{"ServerURL":"x","Username":"u","Secret":"s3cr3t-value"}"#,
    );
    assert_eq!(store.code, 1);
    assert!(!store.stderr.contains("s3cr3t-value"));

    let erase = w.run_with(&helper, "puller", &["erase"], &url);
    assert_eq!(erase.code, 0, "{}", erase.stderr);
    let list = w.run_with(&helper, "puller", &["list"], "");
    assert_eq!(list.json(), serde_json::json!({}));
}

#[test]
fn half_an_identity_names_the_missing_half() {
    let run = common::irsa(&[
        "login",
        ECR_A,
        "--role-arn",
        "arn:aws:iam::111122223333:role/x",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{}",
        run.stderr
    );
    let run = common::irsa(&[
        "login",
        ECR_A,
        "--role-arn",
        "arn:aws:iam::1:role/x",
        "--token-file",
        "/dev/null",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--role-arn") && run.stderr.contains("account"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_different_token_at_the_same_path_is_judged_by_sts_not_served_from_cache() {
    let w = Workload::new("rotated");
    let first = w.run("puller", &["argocd-credentials", ECR_A]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    // Same file, another (here: invalid) token: the cache must not vouch for it.
    std::fs::write(&w.token_file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
        .expect("rewrite token");
    let second = w.run("puller", &["argocd-credentials", ECR_A]);
    assert_eq!(
        second.code, 1,
        "served from cache for a token STS never saw:\n{}",
        second.stdout
    );
    assert!(second.stdout.is_empty());
}

#[test]
fn the_docker_helper_shows_why_it_failed_instead_of_not_found() {
    let w = Workload::new("helper-denied");
    let run = w.run_with(
        &binary(),
        "no-ecr",
        &["docker-credential", "get"],
        &format!("https://{ECR_A}\n"),
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("irsa: "), "{}", run.stdout);
    assert!(run.stdout.contains("permissions policy"), "{}", run.stdout);
}

/// `--session-duration` reaches STS (the sandbox's role allows one hour, as AWS would refuse
/// more) and is part of the disk cache's key.
#[test]
fn login_sends_the_session_duration() {
    let w = Workload::new("login-duration");
    let ok = w.run("puller", &["login", ECR_A, "--session-duration", "15m"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let long = w.run("puller", &["login", ECR_A, "--session-duration", "2h"]);
    assert_eq!(
        long.code, 1,
        "not served from the 15m entry: {}",
        long.stdout
    );
    assert!(
        long.stderr.contains("MaxSessionDuration"),
        "{}",
        long.stderr
    );
    let bad = w.run("puller", &["login", ECR_A, "--session-duration", "13h"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--session-duration"), "{}", bad.stderr);
}
