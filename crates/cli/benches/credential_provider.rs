//! Whole-process figures for `irsa credential-provider`, one kubelet pull per process:
//! - cold (no disk cache) against moto: STS `AssumeRoleWithWebIdentity` + ECR per process;
//! - warm disk cache against the sandbox (goal < 5 ms): one small file read, no network;
//! - 50 processes started at once with one shared, empty disk cache against the sandbox: the
//!   upstream calls they make between them (goal 1 STS + 1 ECR).
//!
//! `cargo bench -p irsa --bench credential_provider` measures; under `cargo test` it runs each
//! case a few times as a smoke test, with the same assertions.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_cloud/mod.rs"]
mod support_cloud;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use irsa_test_peers::Moto;
use serde_json::json;
use support_cloud::{ACCOUNT, SandboxCloud};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, runs: usize, median: Duration) {
    println!(
        "{name:<66} median {:>9.2} ms  ({runs} runs)",
        median.as_secs_f64() * 1e3
    );
}

/// A kubelet request for `image`, in token mode when `token` is given.
fn request(image: &str, token: Option<&str>, role: &str) -> String {
    let mut r = json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": image,
    });
    if let Some(t) = token {
        r["serviceAccountToken"] = json!(t);
        r["serviceAccountAnnotations"] = json!({"eks.amazonaws.com/role-arn": role});
    }
    r.to_string()
}

/// One provider process as the kubelet runs it; panics unless it answers with a credential.
/// Returns its wall-clock time, start to exit.
fn pull(binary: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .arg("credential-provider")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("irsa starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("request written");
    let out = child.wait_with_output().expect("irsa runs");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"password\""),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let runs = if measuring { 25 } else { 3 };
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_irsa"));
    let dir = common::TempDir::new("bench-credential-provider");

    // Cold against moto (its ECR tokens claim to be expired, so nothing would be cached).
    let moto = Moto::start(&[]);
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6YnVpbGRlciIsImF1ZCI6WyJzdHMuYW1hem9uYXdzLmNvbSJdLCJleHAiOjQwMDAwMDAwMDAsImt1YmVybmV0ZXMuaW8iOnsibmFtZXNwYWNlIjoiY2kiLCJzZXJ2aWNlYWNjb3VudCI6eyJuYW1lIjoiYnVpbGRlciIsInVpZCI6InUxIn19fQ.c2ln";
    let moto_env = [("AWS_ENDPOINT_URL", moto.url.as_str())];
    let moto_req = request(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1",
        Some(token),
        "arn:aws:iam::123456789012:role/puller",
    );
    let cold = median(
        (0..runs)
            .map(|_| pull(&binary, &moto_env, &[], &moto_req))
            .collect(),
    );
    report(
        "credential-provider, cold, moto (STS + ECR per process)",
        runs,
        cold,
    );

    // The sandbox: verifies the pod's token and the trust policy, issues 12-hour ECR tokens.
    let cloud = SandboxCloud::start();
    let pod_token = cloud.token();
    let sandbox_env = [("AWS_ENDPOINT_URL", cloud.url.as_str())];
    let sandbox_req = request(
        &format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/team/app:1"),
        Some(&pod_token),
        &format!("arn:aws:iam::{ACCOUNT}:role/puller"),
    );
    let calls = || {
        (
            cloud.calls("sts", "AssumeRoleWithWebIdentity"),
            cloud.calls("ecr", "GetAuthorizationToken"),
        )
    };

    // Warm: one process fills the cache, the measured ones read it.
    let warm_dir = dir.0.join("warm");
    let warm_args = ["--cache-dir", warm_dir.to_str().expect("utf-8")];
    pull(&binary, &sandbox_env, &warm_args, &sandbox_req);
    let before = calls();
    let warm = median(
        (0..runs * 4)
            .map(|_| pull(&binary, &sandbox_env, &warm_args, &sandbox_req))
            .collect(),
    );
    assert_eq!(calls(), before, "warm runs made no upstream call");
    report(
        "credential-provider, warm disk cache (goal < 5 ms)",
        runs * 4,
        warm,
    );

    // 50 at once, one empty shared cache: single flight across processes.
    let burst_dir = dir.0.join("burst");
    let burst_args = ["--cache-dir", burst_dir.to_str().expect("utf-8")];
    let before = calls();
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| pull(&binary, &sandbox_env, &burst_args, &sandbox_req)))
            .collect();
        for h in handles {
            h.join().expect("a pull");
        }
    });
    let burst = start.elapsed();
    let after = calls();
    let upstream = (after.0 - before.0, after.1 - before.1);
    println!(
        "{:<66} {} STS + {} ECR calls (goal 1 + 1), all done in {:.1} ms",
        "credential-provider, 50 concurrent processes, sandbox",
        upstream.0,
        upstream.1,
        burst.as_secs_f64() * 1e3
    );
    assert_eq!(upstream, (1, 1), "50 pulls share one exchange");
}
