//! `irsa controller` as a process with `IRSA_LOG=trace`, against the sandbox: the service-account
//! token it requested, the STS session credentials and the registry password it wrote never
//! reach its stderr, although its dependencies would dump them at trace level.

use std::process::{Command, Stdio};

use base64::Engine as _;
use irsa_lab::harness::*;

/// The `eyJ…` JSON Web Tokens (three base64url segments, header first) in `text`.
fn jwts(text: &str) -> Vec<&str> {
    let segment = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !(segment(c) || c == '.'))
            .unwrap_or(candidate.len());
        let token = &candidate[..end];
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() >= 3 && parts[..3].iter().all(|p| p.len() > 8) {
            found.push(token);
        }
        rest = &candidate[3..];
    }
    found
}

/// The markers of sandbox (and real) STS credentials: every session token starts with this
/// (base64 of its version header), and the secret travels in this XML element.
const SESSION_TOKEN_PREFIX: &str = "IQoJb3JpZ2luX2Vj";
const SECRET_KEY_ELEMENT: &str = "SecretAccessKey>";

/// What the controller logged at `IRSA_LOG=trace` (with `extra` environment) while it wrote one
/// pull secret, and the `username:password` it wrote.
async fn controller_stderr(env: &Env, namespace: &str, extra: &[(&str, &str)]) -> (String, String) {
    let dir = std::env::temp_dir().join(format!(
        "irsa-controller-logs-{namespace}-{}",
        std::process::id()
    ));
    let state = env.lab.stack.write_state(&dir).expect("write state");
    let log = dir.join("controller.log");
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(["controller", "--metrics-listen", &admin.to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &state.kubeconfig)
        .env("AWS_ENDPOINT_URL", &env.lab.stack.aws_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("IRSA_LOG", "trace")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("irsa controller starts");
    env.lab
        .namespace(namespace, &[("logs", namespace)])
        .await
        .unwrap();
    env.apply_cps(
        namespace,
        cps_spec(
            env,
            json!({"selector": {"matchLabels": {"logs": namespace}}}),
        ),
    )
    .await;
    let auth = env.auth_in(namespace).await;
    // SIGTERM, as the kubelet stops it; then wait for it to exit within the deadline.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let exited = eventually("the controller exits on SIGTERM", || {
        let status = child.try_wait().expect("wait");
        async move { status }
    })
    .await;
    assert!(exited.success(), "the controller exited with {exited}");
    let stderr = std::fs::read_to_string(&log).expect("log");
    let _ = std::fs::remove_dir_all(&dir);
    (stderr, auth)
}

fn leaks(stderr: &str, auth: &str) -> Vec<String> {
    let password = auth.strip_prefix("AWS:").expect("AWS:password");
    let mut found = Vec::new();
    if stderr.contains(password) {
        found.push("the registry password".to_owned());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(auth);
    if stderr.contains(&encoded) {
        found.push("the base64 registry auth".to_owned());
    }
    if stderr.contains(SESSION_TOKEN_PREFIX) {
        found.push("an STS session token".to_owned());
    }
    if stderr.contains(SECRET_KEY_ELEMENT) {
        found.push("an STS secret access key".to_owned());
    }
    for jwt in jwts(stderr) {
        found.push(format!("a JWT ({}…)", &jwt[..12]));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_the_controller_hold_no_secret() {
    let env = Env::start().await;
    let (stderr, auth) = controller_stderr(&env, "logs-capped", &[]).await;
    drop(env);
    assert!(
        stderr.contains("DEBUG"),
        "verbose logging is on (else this test proves nothing):\n{stderr}"
    );
    let leaks = leaks(&stderr, &auth);
    assert!(
        leaks.is_empty(),
        "secrets in the controller's logs: {leaks:?}"
    );

    // The same run with the documented override (a fresh sandbox, so that the controller
    // exchanges again): aws-smithy-runtime's dump of the ECR response is back, so the check
    // above is what catches it.
    let env = Env::start().await;
    let (unsafe_stderr, unsafe_auth) = controller_stderr(
        &env,
        "logs-unsafe",
        &[("IRSA_LOG_UNSAFE_DEPENDENCIES", "1")],
    )
    .await;
    let found = self::leaks(&unsafe_stderr, &unsafe_auth);
    assert!(
        found.iter().any(|l| l == "the base64 registry auth"),
        "without the cap the dumps show the registry password: {found:?}"
    );
}
