//! `irsa credential-provider` run as the kubelet runs it: one process per pull, a
//! CredentialProviderRequest on stdin, against the sandbox's STS and ECR (which verify the
//! service-account token, the trust policy and every SigV4 signature) and against moto.

mod common;
mod support_cloud;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Run, TempDir};
use irsa_sandbox::token_issuer::ServiceAccountTokenRequest;
use serde_json::{Value, json};
use support_cloud::{ACCOUNT, SandboxCloud};

const ECR: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
const V1: &str = "credentialprovider.kubelet.k8s.io/v1";

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// Runs `irsa ARGS` with exactly `env` (and PATH), `stdin` on its stdin.
fn provider(env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
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
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

fn request(image: &str, token: Option<&str>, annotations: &[(&str, &str)]) -> String {
    let mut r = json!({"apiVersion": V1, "kind": "CredentialProviderRequest", "image": image});
    if let Some(t) = token {
        r["serviceAccountToken"] = json!(t);
        r["serviceAccountAnnotations"] = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    r.to_string()
}

/// The sandbox as AWS; the node's own identity is the IRSA environment for `node_role`.
struct Node {
    cloud: SandboxCloud,
    dir: TempDir,
    node_token: PathBuf,
}

impl Node {
    fn new(name: &str) -> Self {
        let cloud = SandboxCloud::start();
        let dir = TempDir::new(name);
        let node_token = PathBuf::from(dir.write("node-token", &cloud.token()));
        Self {
            cloud,
            dir,
            node_token,
        }
    }

    /// A pod's token for `namespace/name` (only ci/builder is trusted by the sandbox's roles).
    fn pod_token(&self, namespace: &str, name: &str, uid: &str) -> String {
        self.cloud
            .cloud
            .issuer()
            .issue(&ServiceAccountTokenRequest {
                namespace: namespace.into(),
                service_account: name.into(),
                service_account_uid: uid.into(),
                audiences: vec!["sts.amazonaws.com".into()],
                expiration_seconds: 3600,
                bound_object: None,
                node: None,
                now: self.cloud.cloud.clock().now(),
            })
            .expect("token issued")
            .token
            .expose()
            .to_owned()
    }

    fn cache(&self) -> String {
        self.dir.0.join("cache").to_str().expect("utf-8").to_owned()
    }

    /// `irsa credential-provider ARGS` as the kubelet starts it, the node's role `node_role`.
    fn run(&self, node_role: &str, args: &[&str], stdin: &str) -> Run {
        let mut full = vec!["credential-provider"];
        full.extend_from_slice(args);
        let role = role(node_role);
        provider(
            &[
                ("AWS_ENDPOINT_URL", &self.cloud.url),
                ("AWS_ROLE_ARN", &role),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    self.node_token.to_str().unwrap(),
                ),
            ],
            &full,
            stdin,
        )
    }

    fn calls(&self) -> (u64, u64) {
        (
            self.cloud.calls("sts", "AssumeRoleWithWebIdentity"),
            self.cloud.calls("ecr", "GetAuthorizationToken"),
        )
    }
}

/// The response, checked against the Go types' field names, and its one auth entry.
fn auth_of(run: &Run) -> (String, String, String) {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let v = run.json();
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "apiVersion",
            "auth",
            "cacheDuration",
            "cacheKeyType",
            "kind"
        ]
    );
    assert_eq!(v["kind"], "CredentialProviderResponse");
    assert_eq!(v["cacheKeyType"], "Registry");
    let auth = v["auth"].as_object().expect("auth");
    assert_eq!(auth.len(), 1, "{auth:?}");
    let (host, entry) = auth.iter().next().unwrap();
    let mut fields: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["password", "username"]);
    (
        host.clone(),
        entry["username"].as_str().unwrap().to_owned(),
        entry["password"].as_str().unwrap().to_owned(),
    )
}

fn cache_duration_secs(run: &Run) -> u64 {
    let d = run.json()["cacheDuration"]
        .as_str()
        .expect("duration")
        .to_owned();
    // Go's form: [Nh][Nm]Ns.
    let mut total = 0;
    let mut n = 0;
    for c in d.chars() {
        match c {
            '0'..='9' => n = n * 10 + c.to_digit(10).unwrap() as u64,
            'h' => (total, n) = (total + n * 3600, 0),
            'm' => (total, n) = (total + n * 60, 0),
            's' => (total, n) = (total + n, 0),
            _ => panic!("not a Go duration: {d}"),
        }
    }
    total
}

#[test]
fn node_mode_pulls_with_the_nodes_role() {
    let node = Node::new("cp-node");
    let run = node.run(
        "puller",
        &[],
        &request(&format!("{ECR}/team/app:1"), None, &[]),
    );
    let (host, user, password) = auth_of(&run);
    assert_eq!((host.as_str(), user.as_str()), (ECR, "AWS"));
    assert!(!password.is_empty());
    assert_eq!(node.calls(), (1, 1));
    // 12-hour ECR token, half of it: the kubelet keeps it about 6 hours.
    let d = cache_duration_secs(&run);
    assert!((6 * 3600 - 120..=6 * 3600).contains(&d), "{d}");
    assert!(!run.stderr.contains(&password), "{}", run.stderr);
}

#[test]
fn token_mode_takes_the_role_from_each_annotation_key_in_order() {
    let node = Node::new("cp-token");
    let token = node.pod_token("ci", "builder", "uid-builder");
    // The node's own role cannot call ECR: a success proves the pod's role was used.
    for annotations in [
        vec![("eks.amazonaws.com/ecr-role-arn", role("puller"))],
        vec![("eks.amazonaws.com/role-arn", role("puller"))],
        vec![
            ("eks.amazonaws.com/ecr-role-arn", role("puller")),
            ("eks.amazonaws.com/role-arn", role("no-ecr")),
        ],
    ] {
        let ann: Vec<(&str, &str)> = annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = node.run("no-ecr", &[], &request(ECR, Some(&token), &ann));
        let (host, _, password) = auth_of(&run);
        assert_eq!(host, ECR, "{ann:?}");
        assert_ne!(
            password, token,
            "the password is never the service-account token"
        );
        assert!(!run.stderr.contains(&token), "{}", run.stderr);
    }
    // Nothing secret reaches stderr, even at trace level.
    let role_arn = role("puller");
    let traced = provider(
        &[("AWS_ENDPOINT_URL", &node.cloud.url), ("IRSA_LOG", "trace")],
        &["credential-provider"],
        &request(
            ECR,
            Some(&token),
            &[("eks.amazonaws.com/role-arn", &role_arn)],
        ),
    );
    let (_, _, password) = auth_of(&traced);
    assert!(traced.stderr.contains("DEBUG"), "verbose logging is on");
    for (what, secret) in [
        ("token", token.as_str()),
        ("password", password.as_str()),
        ("session token", "IQoJb3JpZ2luX2Vj"),
    ] {
        assert!(!traced.stderr.contains(secret), "the {what} is in stderr");
    }
    // The ECR-specific key wins: with it naming no-ecr, ECR refuses.
    let run = node.run(
        "puller",
        &[],
        &request(
            ECR,
            Some(&token),
            &[
                ("eks.amazonaws.com/ecr-role-arn", &role("no-ecr")),
                ("eks.amazonaws.com/role-arn", &role("puller")),
            ],
        ),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("no-ecr") && run.stderr.contains("ecr:GetAuthorizationToken"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "nothing on stdout when refusing");
    // A custom list.
    let run = node.run(
        "no-ecr",
        &["--role-annotations", "example.com/pull-role"],
        &request(
            ECR,
            Some(&token),
            &[("example.com/pull-role", &role("puller"))],
        ),
    );
    auth_of(&run);
}

#[test]
fn a_service_account_without_a_role_follows_the_explicit_fallback() {
    let node = Node::new("cp-fallback");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let req = request(ECR, Some(&token), &[]);
    let deny = node.run("puller", &["--fallback", "deny"], &req);
    assert_eq!(deny.code, 1);
    assert_eq!(deny.stdout, "");
    let line = deny.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.contains("ci/builder")
            && line.contains("--fallback deny")
            && line.contains("eks.amazonaws.com/ecr-role-arn"),
        "{line}"
    );
    assert_eq!(node.calls(), (0, 0), "refused before any AWS call");
    let unset = node.run("puller", &[], &req);
    assert_eq!(unset.code, 1);
    assert!(unset.stderr.contains("--fallback node"), "{}", unset.stderr);
    let fallback = node.run("puller", &["--fallback", "node"], &req);
    let (host, ..) = auth_of(&fallback);
    assert_eq!(host, ECR);
}

#[test]
fn ports_accounts_regions_and_ecr_public_are_keyed_as_the_kubelet_matches() {
    let node = Node::new("cp-hosts");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let ann = [("eks.amazonaws.com/role-arn", role("puller"))];
    let ann: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (image, key) in [
        (format!("{ECR}:443/team/app:1"), format!("{ECR}:443")),
        ("444455556666.dkr.ecr.eu-west-1.amazonaws.com/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(), "444455556666.dkr.ecr.eu-west-1.amazonaws.com".to_owned()),
        ("public.ecr.aws/nginx/nginx:latest".to_owned(), "public.ecr.aws".to_owned()),
    ] {
        let run = node.run("no-ecr", &[], &request(&image, Some(&token), &ann));
        assert_eq!(auth_of(&run).0, key, "{image}");
    }
}

#[test]
fn other_registries_get_no_credentials_and_garbage_gets_one_line() {
    let node = Node::new("cp-garbage");
    for image in [
        "ghcr.io/org/app:1",
        "nginx",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.example/x",
    ] {
        let run = node.run("puller", &[], &request(image, None, &[]));
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.json()["auth"], json!({}), "{image}");
    }
    assert_eq!(node.calls(), (0, 0));
    for (stdin, want) in [
        ("", "no request on stdin"),
        ("\u{0}\u{1}\u{2}", "not JSON"),
        ("{\"kind\":", "not JSON"),
        (
            r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v9","image":"x"}"#,
            "apiVersion",
        ),
        (
            r#"{"kind":"Pod","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x"}"#,
            "field kind",
        ),
        (
            r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}"#,
            "field image",
        ),
    ] {
        let run = node.run("puller", &[], stdin);
        assert_eq!(run.code, 1, "{stdin:?}: {}", run.stdout);
        assert_eq!(run.stdout, "", "{stdin:?}");
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{stdin:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(want), "{stdin:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

fn shared_cache_run(node: &Node, token: &str, sa_role: &str) -> Run {
    node.run(
        "no-ecr",
        &["--cache-dir", &node.cache()],
        &request(ECR, Some(token), &[("eks.amazonaws.com/role-arn", sa_role)]),
    )
}

#[test]
fn fifty_concurrent_processes_share_one_sts_and_one_ecr_call() {
    let node = Node::new("cp-fifty");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let puller = role("puller");
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| shared_cache_run(&node, &token, &puller)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let first = auth_of(&runs[0]);
    for run in &runs {
        assert_eq!(
            auth_of(run),
            first,
            "every process hands out the same credential"
        );
    }
    assert_eq!(
        node.calls(),
        (1, 1),
        "one STS and one ECR call for 50 pulls"
    );
    // The cache is private: the directory 0700, entries 0600.
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(&node.cache()).to_owned();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            p.display()
        );
    }
}

#[test]
fn two_service_accounts_naming_one_role_never_share_a_cache_entry() {
    let node = Node::new("cp-tenants");
    let puller = role("puller");
    let builder = node.pod_token("ci", "builder", "uid-builder");
    auth_of(&shared_cache_run(&node, &builder, &puller));
    assert_eq!(node.calls(), (1, 1));
    // Another tenant's service account names the same role: STS judges it (and the trust
    // policy, which trusts ci/builder only, refuses), it is not served builder's credential.
    let intruder = node.pod_token("ci", "intruder", "uid-intruder");
    let run = shared_cache_run(&node, &intruder, &puller);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("system:serviceaccount:ci:intruder"),
        "{}",
        run.stderr
    );
    assert_eq!(node.calls().0, 2, "STS was asked");
    // builder re-created (new uid): a miss too.
    let recreated = node.pod_token("ci", "builder", "uid-builder-2");
    auth_of(&shared_cache_run(&node, &recreated, &puller));
    assert_eq!(node.calls(), (3, 2));
    // And the original is still a hit.
    auth_of(&shared_cache_run(&node, &builder, &puller));
    assert_eq!(node.calls(), (3, 2));
}

#[test]
fn expired_cache_entries_are_ignored() {
    let node = Node::new("cp-expired");
    let puller = role("puller");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let (_, _, fresh) = auth_of(&shared_cache_run(&node, &token, &puller));
    let now = common::now();
    let file = std::fs::read_dir(node.cache())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("an entry");
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    entry["password"] = json!("stale-password");
    for (expires_at, refresh_at) in [(now - 10, now - 20), (now + 3600, now - 1)] {
        entry["expires_at"] = json!(expires_at);
        entry["refresh_at"] = json!(refresh_at);
        std::fs::write(&file, entry.to_string()).unwrap();
        let before = node.calls();
        let (_, _, password) = auth_of(&shared_cache_run(&node, &token, &puller));
        assert_ne!(password, "stale-password");
        assert_eq!(node.calls(), (before.0 + 1, before.1 + 1), "went upstream");
        let _ = &fresh;
    }
}

/// `irsa credential-provider` is parsed on its own, without the rest of the command tree (it
/// is most of a warm pull's time): its help, its errors and `irsa --help` stay what clap gives
/// for the whole tree.
#[test]
fn the_provider_parses_alone_as_it_would_in_the_whole_tree() {
    // `irsa help credential-provider` goes through the whole tree.
    let whole = provider(&[], &["help", "credential-provider"], "");
    let alone = provider(&[], &["credential-provider", "--help"], "");
    assert_eq!((whole.code, alone.code), (0, 0), "{}", alone.stderr);
    assert_eq!(alone.stdout, whole.stdout);
    for want in [
        "The kubelet's image credential provider",
        "Usage: irsa credential-provider [OPTIONS]",
        "--fallback <FALLBACK>",
        "[env: IRSA_CACHE_DIR=]",
        "--chainguard-method <METHOD>",
    ] {
        assert!(alone.stdout.contains(want), "{want}: {}", alone.stdout);
    }
    let short = provider(&[], &["credential-provider", "-h"], "");
    assert_eq!(short.code, 0, "{}", short.stderr);
    assert!(
        short
            .stdout
            .contains("Usage: irsa credential-provider [OPTIONS]")
    );
    assert!(short.stdout.len() < alone.stdout.len(), "{}", short.stdout);

    // The top-level help still lists every subcommand, this one with its summary.
    let top = provider(&[], &["--help"], "");
    assert_eq!(top.code, 0, "{}", top.stderr);
    for want in [
        "  registry ",
        "  login ",
        "  doctor ",
        "  install ",
        "  webhook ",
        "  credential-provider  The kubelet's image credential provider",
        "Exit codes: 0 success",
    ] {
        assert!(top.stdout.contains(want), "{want}: {}", top.stdout);
    }

    // Bad input is clap's error, exit 2, with the subcommand's usage.
    for (args, want) in [
        (
            &["credential-provider", "--bogus"][..],
            "error: unexpected argument '--bogus' found",
        ),
        (
            &["credential-provider", "extra"][..],
            "unexpected argument 'extra'",
        ),
        (
            &["credential-provider", "--fallback", "maybe"][..],
            "invalid value 'maybe' for '--fallback <FALLBACK>'",
        ),
        (
            &["credential-provider", "--version"][..],
            "unexpected argument '--version' found",
        ),
        (
            &["credential-provider", "--explain"][..],
            "a value is required",
        ),
        // Out of (0, 1]: refused when parsed (it was exit 1 at the first request, and
        // `--explain` never checked it).
        (
            &["credential-provider", "--refresh-fraction", "0"][..],
            "invalid value '0' for '--refresh-fraction <F>': 0 is not in (0, 1]",
        ),
        (
            &[
                "credential-provider",
                "--refresh-fraction",
                "1.5",
                "--explain",
                "public.ecr.aws/x/y",
            ][..],
            "invalid value '1.5' for '--refresh-fraction <F>'",
        ),
        (
            &["credential-provider", "--refresh-fraction", "NaN"][..],
            "invalid value 'NaN' for '--refresh-fraction <F>'",
        ),
        (
            &["credential-provider", "--refresh-fraction", "half"][..],
            "invalid value 'half' for '--refresh-fraction <F>': not a number",
        ),
    ] {
        let run = provider(&[], args, "");
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("For more information, try '--help'."),
            "{args:?}: {}",
            run.stderr
        );
        // clap prints the usage with an unexpected argument (not with an invalid value).
        if want.contains("unexpected argument") {
            assert!(
                run.stderr.contains("Usage: irsa credential-provider"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    // A subcommand name it only resembles goes to the whole tree, which suggests the real one.
    let near = provider(&[], &["credential-provide"], "");
    assert_eq!(near.code, 2, "{}", near.stderr);
    assert!(
        near.stderr
            .contains("unrecognized subcommand 'credential-provide'")
            && near.stderr.contains("'credential-provider'")
            && near.stderr.contains("Usage: irsa <COMMAND>"),
        "{}",
        near.stderr
    );
    // Flags from the environment are still read: an invalid one is refused, naming it.
    let env = provider(&[("IRSA_FALLBACK", "maybe")], &["credential-provider"], "");
    assert_eq!(env.code, 2, "{}", env.stderr);
    assert!(env.stderr.contains("'maybe'"), "{}", env.stderr);
}

#[test]
fn explain_says_which_role_and_region() {
    let run = provider(
        &[],
        &[
            "credential-provider",
            "--explain",
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/app",
            "--fallback",
            "deny",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for want in [
        "account 111122223333 in region eu-west-1",
        "eks.amazonaws.com/ecr-role-arn, then eks.amazonaws.com/role-arn",
        "refused (--fallback deny)",
        "STS region: eu-west-1",
    ] {
        assert!(run.stdout.contains(want), "{want}: {}", run.stdout);
    }
}

#[test]
fn moto_node_mode_and_token_mode_across_accounts_and_regions() {
    let moto = irsa_test_peers::Moto::start(&[]);
    let env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    for (image, key, account) in [
        (format!("{ECR}/a:1"), ECR.to_owned(), "111122223333"),
        (
            "444455556666.dkr.ecr.eu-west-1.amazonaws.com:5000/b".to_owned(),
            "444455556666.dkr.ecr.eu-west-1.amazonaws.com:5000".to_owned(),
            "444455556666",
        ),
        (
            "777788889999.dkr.ecr.ap-southeast-2.amazonaws.com/c".to_owned(),
            "777788889999.dkr.ecr.ap-southeast-2.amazonaws.com".to_owned(),
            "777788889999",
        ),
        // A region irsa does not know yet, under AWS's own domain.
        (
            "121212121212.dkr.ecr.lala-land-1.amazonaws.com/d".to_owned(),
            "121212121212.dkr.ecr.lala-land-1.amazonaws.com".to_owned(),
            "121212121212",
        ),
    ] {
        let run = provider(&env, &["credential-provider"], &request(&image, None, &[]));
        let (host, user, password) = auth_of(&run);
        assert_eq!((host, user.as_str()), (key, "AWS"));
        assert_eq!(
            password,
            format!("{account}-auth-token"),
            "moto's token for the registry id"
        );
        // moto's ECR tokens expired in 2015: the kubelet is told not to keep them.
        assert_eq!(run.json()["cacheDuration"], "0s");
    }
    // Node mode with a chained AssumeRole (cross-account) through moto's STS.
    let run = provider(
        &env,
        &[
            "credential-provider",
            "--assume-role",
            "arn:aws:iam::444455556666:role/cross-account-puller",
        ],
        &request(ECR, None, &[]),
    );
    assert_eq!(auth_of(&run).2, "111122223333-auth-token");
    let bad = provider(
        &env,
        &["credential-provider", "--assume-role", "puller"],
        &request(ECR, None, &[]),
    );
    assert_eq!(bad.code, 2, "a bad flag is a usage error: {}", bad.stderr);
    assert!(bad.stderr.contains("--assume-role"), "{}", bad.stderr);
    // Token mode through moto's STS (which accepts any token: the wire format, not the trust).
    let token = {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64(&json!({"sub":"system:serviceaccount:team:app","aud":["sts.amazonaws.com"],"exp":4_000_000_000i64,"kubernetes.io":{"namespace":"team","serviceaccount":{"name":"app","uid":"u1"}}}).to_string()), b64("sig"))
    };
    let run = provider(
        &[("AWS_ENDPOINT_URL", moto.url.as_str())],
        &["credential-provider"],
        &request(
            ECR,
            Some(&token),
            &[(
                "eks.amazonaws.com/ecr-role-arn",
                "arn:aws:iam::111122223333:role/r",
            )],
        ),
    );
    assert_eq!(auth_of(&run).2, "111122223333-auth-token");
}

/// The printed config, read back by Python's YAML parser (as the kubelet's YAML decoder would
/// read it) and the RBAC validated against Kubernetes' schema.
#[test]
fn install_prints_a_config_the_kubelet_accepts_and_the_rbac_it_needs() {
    let run = common::irsa(&["install", "credential-provider", "--fallback", "deny"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("# kubelet flags: --image-credential-provider-config="),
        "{}",
        run.stdout
    );
    let venv = std::env::var("IRSA_TEST_VENV_VALIDATE")
        .expect("IRSA_TEST_VENV_VALIDATE (kubernetes-validate venv) must be set");
    let python = Path::new(&venv).join("bin/python");
    assert!(python.exists(), "{} missing", python.display());
    let check = |script: &str, stdin: &str| {
        let mut child = Command::new(&python)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let summary = check(
        "import sys, yaml, json\nd = yaml.safe_load(sys.stdin)\np = d['providers'][0]\nprint(json.dumps({'kind': d['kind'], 'apiVersion': d['apiVersion'], 'name': p['name'], 'pav': p['apiVersion'], 'dcd': p['defaultCacheDuration'], 'args': p['args'], 'ta': p['tokenAttributes'], 'n': len(p['matchImages']), 'mi': p['matchImages']}))",
        &run.stdout,
    );
    let v: Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(v["kind"], "CredentialProviderConfig");
    assert_eq!(v["apiVersion"], "kubelet.config.k8s.io/v1");
    assert_eq!(v["pav"], V1);
    assert_eq!(v["name"], "irsa");
    assert_eq!(v["ta"]["cacheType"], "ServiceAccount");
    assert_eq!(v["ta"]["requireServiceAccount"], false);
    assert_eq!(v["ta"]["serviceAccountTokenAudience"], "sts.amazonaws.com");
    assert_eq!(
        v["ta"]["optionalServiceAccountAnnotationKeys"],
        json!([
            "eks.amazonaws.com/ecr-role-arn",
            "eks.amazonaws.com/role-arn",
            "irsa.dev/chainguard-identity",
            "irsa.dev/chainguard-method"
        ])
    );
    assert!(
        v["mi"].as_array().unwrap().contains(&json!("cgr.dev")),
        "{}",
        v["mi"]
    );
    assert!(
        v["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--fallback=deny"))
    );
    assert!(
        v["mi"]
            .as_array()
            .unwrap()
            .contains(&json!("*.dkr.ecr.*.amazonaws.com"))
    );
    // The printed args run: the provider parses them.
    let args: Vec<String> = v["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let mut explain: Vec<&str> = args.iter().map(String::as_str).collect();
    explain.extend(["--explain", "public.ecr.aws/x/y"]);
    let ran = provider(&[], &explain, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let rbac = common::irsa(&["install", "credential-provider", "--print", "rbac"]);
    assert_eq!(rbac.code, 0, "{}", rbac.stderr);
    check(
        "import sys, yaml, kubernetes_validate\nfor d in yaml.safe_load_all(sys.stdin):\n    kubernetes_validate.validate(d, '1.34.0', strict=True)\n    print(d['kind'])",
        &rbac.stdout,
    );
    assert!(
        rbac.stdout
            .contains("request-serviceaccounts-token-audience")
    );
}

/// A request without a service-account token (a static pod, `requireServiceAccount: false`)
/// follows `--fallback` too: `deny` never hands out the node's credentials.
#[test]
fn a_request_without_a_token_follows_the_fallback() {
    let node = Node::new("cp-notoken");
    let req = request(ECR, None, &[]);
    let deny = node.run("puller", &["--fallback", "deny"], &req);
    assert_eq!(deny.code, 1, "{}", deny.stdout);
    assert_eq!(deny.stdout, "");
    let line = deny.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.contains("no service-account token") && line.contains("--fallback deny"),
        "{line}"
    );
    assert_eq!(node.calls(), (0, 0), "refused before any AWS call");
    let fallback = node.run("puller", &["--fallback", "node"], &req);
    assert_eq!(auth_of(&fallback).0, ECR);
    assert_eq!(node.calls(), (1, 1));
}

/// `irsa install credential-provider` prints `--fallback=deny` unless told otherwise, and says so.
#[test]
fn the_printed_config_denies_unless_the_user_chooses_node() {
    let run = common::irsa(&["install", "credential-provider"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("  - \"--fallback=deny\"\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("# --fallback=deny:") && run.stdout.contains("--fallback node"),
        "the choice is explained in the output: {}",
        run.stdout
    );
    let node = common::irsa(&["install", "credential-provider", "--fallback", "node"]);
    assert_eq!(node.code, 0, "{}", node.stderr);
    assert!(
        node.stdout.contains("  - \"--fallback=node\"\n"),
        "{}",
        node.stdout
    );
    let help = common::irsa(&["install", "credential-provider", "--help"]);
    assert!(help.stdout.contains("[default: deny]"), "{}", help.stdout);
}

/// The disk cache's key holds the environment that changes credentials: a changed endpoint
/// style or session name is a miss, not another configuration's credential.
#[test]
fn a_changed_sts_environment_is_a_cache_miss() {
    let node = Node::new("cp-keyenv");
    let args = ["--cache-dir", &node.cache()];
    let req = request(ECR, None, &[]);
    let run = |extra: &[(&str, &str)]| {
        let role = role("puller");
        let mut env = vec![
            ("AWS_ENDPOINT_URL", node.cloud.url.as_str()),
            ("AWS_ROLE_ARN", role.as_str()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                node.node_token.to_str().unwrap(),
            ),
        ];
        env.extend_from_slice(extra);
        let mut full = vec!["credential-provider"];
        full.extend_from_slice(&args);
        auth_of(&provider(&env, &full, &req))
    };
    run(&[]);
    run(&[]);
    assert_eq!(node.calls(), (1, 1), "the second run is a hit");
    for (i, extra) in [
        [("AWS_STS_REGIONAL_ENDPOINTS", "legacy")],
        [("AWS_ROLE_SESSION_NAME", "node-7")],
        [("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false")],
    ]
    .iter()
    .enumerate()
    {
        run(extra);
        assert_eq!(
            node.calls(),
            (2 + i as u64, 2 + i as u64),
            "{extra:?} is a miss"
        );
    }
}

/// A cache directory others can write to is refused with one warning; the pull still works.
#[test]
fn a_shared_cache_directory_is_refused_with_one_warning() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new("cp-shared-dir");
    let dir = node.cache();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let req = request(ECR, None, &[]);
    for round in 1..=2 {
        let run = node.run("puller", &["--cache-dir", &dir], &req);
        assert_eq!(auth_of(&run).0, ECR);
        let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{}", run.stderr);
        assert!(
            warnings[0].contains("writable by group or others") && warnings[0].contains(&dir),
            "{}",
            warnings[0]
        );
        assert_eq!(
            node.calls(),
            (round, round),
            "no cache: upstream every time"
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written to a shared directory"
    );
}

/// `--session-duration` reaches STS: the sandbox's role allows one hour, as AWS would refuse more.
#[test]
fn the_session_duration_is_sent_to_sts() {
    let node = Node::new("cp-duration");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let puller = role("puller");
    let req = request(
        ECR,
        Some(&token),
        &[("eks.amazonaws.com/role-arn", &puller)],
    );
    auth_of(&node.run("no-ecr", &["--session-duration", "15m"], &req));
    let long = node.run("no-ecr", &["--session-duration", "2h"], &req);
    assert_eq!(long.code, 1, "{}", long.stdout);
    assert!(
        long.stderr.contains("MaxSessionDuration"),
        "{}",
        long.stderr
    );
    let bad = node.run("no-ecr", &["--session-duration", "5m"], &req);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--session-duration") && bad.stderr.contains("15m"),
        "{}",
        bad.stderr
    );
}

/// Session names as STS and CloudTrail see them, read back from moto's own records: the
/// service account's unambiguous name in token mode, `AWS_ROLE_SESSION_NAME` for the node's own
/// web identity.
#[test]
fn moto_sees_the_session_names() {
    let moto = irsa_test_peers::Moto::start(&[]);
    let dir = TempDir::new("cp-moto-sessions");
    let jwt = |ns: &str, name: &str| {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64(&json!({"sub": format!("system:serviceaccount:{ns}:{name}"),"aud":["sts.amazonaws.com"],"exp":4_000_000_000i64,"kubernetes.io":{"namespace":ns,"serviceaccount":{"name":name,"uid":"u1"}}}).to_string()), b64("sig"))
    };
    for (ns, name) in [("a-b", "c"), ("a", "b-c")] {
        let run = provider(
            &[("AWS_ENDPOINT_URL", moto.url.as_str())],
            &["credential-provider"],
            &request(
                ECR,
                Some(&jwt(ns, name)),
                &[(
                    "eks.amazonaws.com/role-arn",
                    "arn:aws:iam::111122223333:role/r",
                )],
            ),
        );
        auth_of(&run);
    }
    let node_token = dir.write("node-token", &jwt("kube-system", "node"));
    let run = provider(
        &[
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/node"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", node_token.as_str()),
            ("AWS_ROLE_SESSION_NAME", "node-7"),
        ],
        &["credential-provider"],
        &request(ECR, None, &[]),
    );
    auth_of(&run);
    let sessions = moto.python(
        "import json, urllib.request\nd = json.load(urllib.request.urlopen(client('sts').meta.endpoint_url + '/moto-api/data.json'))\nprint(json.dumps(sorted(r['session_name'] for r in d['sts']['AssumedRole'])))",
    );
    let sessions: Vec<String> = serde_json::from_str(sessions.trim()).unwrap();
    assert_eq!(sessions, ["irsa-a-b.c", "irsa-a.b-c", "node-7"]);
}

const CGR: &str = "cgr.dev/chainguard/static:latest";
const CG_ID_KEY: &str = "irsa.dev/chainguard-identity";
const CG_METHOD_KEY: &str = "irsa.dev/chainguard-method";

impl Node {
    /// `irsa credential-provider ARGS` with this cloud as Chainguard's issuer.
    fn run_cg(&self, node_role: &str, args: &[&str], stdin: &str) -> Run {
        let mut full = vec!["--chainguard-issuer", self.cloud.url.as_str()];
        full.extend_from_slice(args);
        self.run(node_role, &full, stdin)
    }

    fn exchanges(&self, outcome: &str) -> u64 {
        self.cloud
            .cloud
            .counters()
            .get("chainguard", "Exchange", outcome)
    }
}

/// cgr.dev in token mode: the pod's role (the node's, no-ecr, is trusted by no Chainguard
/// identity) exchanged for the identity its service account names, by both methods.
#[test]
fn chainguard_in_token_mode_by_both_methods() {
    let node = Node::new("cp-cgr");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let puller = role("puller");
    let base = [
        ("eks.amazonaws.com/role-arn", puller.as_str()),
        (CG_ID_KEY, support_cloud::CHAINGUARD_IDENTITY),
    ];
    let run = node.run_cg("no-ecr", &[], &request(CGR, Some(&token), &base));
    let (host, user, password) = auth_of(&run);
    assert_eq!((host.as_str(), user.as_str()), ("cgr.dev", "_token"));
    assert!(!password.is_empty() && password != token);
    assert!(!run.stderr.contains(&password) && !run.stderr.contains(&token));
    // The sandbox's Chainguard tokens live an hour: the kubelet keeps it half of that.
    let d = cache_duration_secs(&run);
    assert!((1800 - 120..=1800).contains(&d), "{d}");
    assert_eq!(node.exchanges("ok"), 1);
    assert_eq!(node.cloud.calls("sts", "GetWebIdentityToken"), 0);
    // The method from the service account's annotation.
    let mut by_jwt = base.to_vec();
    by_jwt.push((CG_METHOD_KEY, "web-identity-token"));
    let run = node.run_cg("no-ecr", &[], &request(CGR, Some(&token), &by_jwt));
    assert_eq!(auth_of(&run).1, "_token");
    assert_eq!(node.cloud.calls("sts", "GetWebIdentityToken"), 1);
    assert_eq!(node.exchanges("ok"), 2);
    // The method from the flag, the port kept in the auth key.
    let run = node.run_cg(
        "no-ecr",
        &["--chainguard-method", "web-identity-token"],
        &request("cgr.dev:443/chainguard/static", Some(&token), &base),
    );
    assert_eq!(auth_of(&run).0, "cgr.dev:443");
    assert_eq!(node.cloud.calls("sts", "GetWebIdentityToken"), 2);
    // The identity from the flag when the service account names none.
    let run = node.run_cg(
        "no-ecr",
        &["--chainguard-identity", support_cloud::CHAINGUARD_IDENTITY],
        &request(CGR, Some(&token), &base[..1]),
    );
    assert_eq!(auth_of(&run).0, "cgr.dev");
    assert_eq!(node.exchanges("ok"), 4);
    // Nothing secret reaches stderr at trace level, by either method.
    for method in ["get-caller-identity", "web-identity-token"] {
        let traced = provider(
            &[("AWS_ENDPOINT_URL", &node.cloud.url), ("IRSA_LOG", "trace")],
            &[
                "credential-provider",
                "--chainguard-issuer",
                &node.cloud.url,
                "--chainguard-method",
                method,
            ],
            &request(CGR, Some(&token), &base),
        );
        let (_, _, password) = auth_of(&traced);
        assert!(traced.stderr.contains("DEBUG"), "verbose logging is on");
        assert!(
            !traced.stderr.contains(&password),
            "the Chainguard token leaked"
        );
        assert!(!traced.stderr.contains(&token), "the pod's token leaked");
        assert!(
            !traced.stderr.contains("eyJ"),
            "a JWT-shaped string leaked: {}",
            traced.stderr
        );
    }
}

/// Node mode: the node's role with the configured identity; without one, a precise refusal.
#[test]
fn chainguard_in_node_mode_and_without_an_identity() {
    let node = Node::new("cp-cgr-node");
    let run = node.run_cg(
        "puller",
        &["--chainguard-identity", support_cloud::CHAINGUARD_IDENTITY],
        &request(CGR, None, &[]),
    );
    assert_eq!(auth_of(&run).0, "cgr.dev");
    assert_eq!(node.exchanges("ok"), 1);
    // The node's own IRSA role (AWS_ROLE_ARN), proven by a GetWebIdentityToken JWT.
    let run = node.run_cg(
        "puller",
        &[
            "--chainguard-identity",
            support_cloud::CHAINGUARD_IDENTITY,
            "--chainguard-method",
            "web-identity-token",
        ],
        &request(CGR, None, &[]),
    );
    assert_eq!(auth_of(&run).1, "_token");
    assert_eq!(node.cloud.calls("sts", "GetWebIdentityToken"), 1);
    assert_eq!(node.exchanges("ok"), 2);
    let refused = node.run_cg("puller", &[], &request(CGR, None, &[]));
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_eq!(refused.stdout, "");
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--chainguard-identity")
            && refused.stderr.contains("no service-account token"),
        "{}",
        refused.stderr
    );
    // Token mode: the message names the annotation and the flag; nothing reached AWS.
    let token = node.pod_token("ci", "builder", "uid-builder");
    let puller = role("puller");
    let before = node.cloud.calls("sts", "AssumeRoleWithWebIdentity");
    let refused = node.run_cg(
        "no-ecr",
        &[],
        &request(
            CGR,
            Some(&token),
            &[("eks.amazonaws.com/role-arn", puller.as_str())],
        ),
    );
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    for want in ["ci/builder", CG_ID_KEY, "--chainguard-identity"] {
        assert!(refused.stderr.contains(want), "{want}: {}", refused.stderr);
    }
    assert_eq!(node.cloud.calls("sts", "AssumeRoleWithWebIdentity"), before);
    assert_eq!(node.exchanges("ok"), 2);
    // A malformed identity, from the annotation or the flag.
    let bad = node.run_cg(
        "no-ecr",
        &[],
        &request(
            CGR,
            Some(&token),
            &[
                ("eks.amazonaws.com/role-arn", puller.as_str()),
                (CG_ID_KEY, "org/id"),
            ],
        ),
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("not a Chainguard identity id") && bad.stderr.contains(CG_ID_KEY),
        "{}",
        bad.stderr
    );
    let bad_flag = node.run_cg(
        "puller",
        &["--chainguard-identity", "org/id"],
        &request(CGR, None, &[]),
    );
    assert_eq!(bad_flag.code, 2, "a usage error: {}", bad_flag.stderr);
    assert!(
        bad_flag.stderr.contains("--chainguard-identity"),
        "{}",
        bad_flag.stderr
    );
}

/// The Chainguard identity is in the disk cache's key: one service account and role, another
/// identity, is not served the first identity's token.
#[test]
fn chainguard_identities_never_share_a_cache_entry() {
    let node = Node::new("cp-cgr-cache");
    let token = node.pod_token("ci", "builder", "uid-builder");
    let puller = role("puller");
    let cache = node.cache();
    let run = |identity: &str| {
        node.run_cg(
            "no-ecr",
            &["--cache-dir", &cache],
            &request(
                CGR,
                Some(&token),
                &[
                    ("eks.amazonaws.com/role-arn", puller.as_str()),
                    (CG_ID_KEY, identity),
                ],
            ),
        )
    };
    let first = auth_of(&run(support_cloud::CHAINGUARD_IDENTITY));
    assert_eq!(auth_of(&run(support_cloud::CHAINGUARD_IDENTITY)), first);
    assert_eq!(node.exchanges("ok"), 1, "the second pull is a hit");
    // An identity the sandbox's Chainguard does not know: upstream, and refused.
    let other = "720909c9f5279097d847ad02a2f24ba8f59de36a/0123456789abcdef";
    let refused = run(other);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains(other), "{}", refused.stderr);
    assert_eq!(node.exchanges("ok"), 1);
}

#[test]
fn explain_says_what_happens_for_cgr_dev() {
    let run = provider(
        &[],
        &[
            "credential-provider",
            "--explain",
            CGR,
            "--chainguard-identity",
            support_cloud::CHAINGUARD_IDENTITY,
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for want in [
        "Chainguard's registry (cgr.dev)",
        CG_ID_KEY,
        support_cloud::CHAINGUARD_IDENTITY,
        "https://issuer.enforce.dev/sts/exchange",
        "username _token",
        "auth key \"cgr.dev\"",
    ] {
        assert!(run.stdout.contains(want), "{want}: {}", run.stdout);
    }
}

/// Startup review L4: with `IRSA_LOG` unset (the kubelet sets nothing), the plain level filter
/// of the fast start-up path lets nothing below warn through; `IRSA_LOG=info` (the `EnvFilter`
/// path) shows the same run's info line, so the first check is not blind.
#[test]
fn an_unset_irsa_log_prints_nothing_below_warn() {
    // An image irsa does not serve: answered with no credentials, and an info line says why.
    let stdin = request("docker.io/library/busybox:1", None, &[]);
    let quiet = provider(&[], &["credential-provider"], &stdin);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(
        quiet.stdout.contains("CredentialProviderResponse"),
        "{}",
        quiet.stdout
    );
    assert_eq!(quiet.stderr, "", "nothing below warn with IRSA_LOG unset");
    let told = provider(&[("IRSA_LOG", "info")], &["credential-provider"], &stdin);
    assert_eq!(told.code, 0, "{}", told.stderr);
    assert_eq!(told.stdout, quiet.stdout);
    assert!(
        told.stderr.contains("no credentials for this image"),
        "{}",
        told.stderr
    );
}
