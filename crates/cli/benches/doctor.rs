//! The whole `irsa doctor` run against `irsa sandbox` (a separate process: Kubernetes API
//! server, OIDC issuer, IAM, STS, ECR), every check passing: a TokenRequest, the IAM reads, a
//! real AssumeRoleWithWebIdentity and GetAuthorizationToken, for `--service-account`, `--pod`
//! (the pod's checks too) and `--pull-secret` (a ClusterPullSecret `irsa controller`, run as
//! installed, keeps in two namespaces: its status and target secrets too). Goal: < 1 s.
//! Also one broken chain (the trust policy), which stops before the exchange.
//!
//! `cargo bench -p irsa --bench doctor` measures (median of 15 runs); under `cargo test` it
//! runs each case twice as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_doctor/mod.rs"]
mod support_doctor;

use std::time::{Duration, Instant};

use serde_json::json;
use support_doctor::installed::{cluster_pull_secret, start_all, wait_status};
use support_doctor::{NS, SA, Sandbox, ecr_role, good_trust, start, trust_for};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `runs` runs of `irsa doctor TARGET -o json` (TARGET as `target`, e.g.
/// `["--service-account", "prod/app"]`), each exiting `want`.
fn measure(name: &str, runs: usize, sandbox: &Sandbox, target: &[&str], want: i32) {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = sandbox
                .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
                .arg("doctor")
                .args(target)
                .args(["-o", "json"])
                .output()
                .expect("irsa doctor runs");
            let took = t.elapsed();
            assert_eq!(
                out.status.code(),
                Some(want),
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            took
        })
        .collect();
    let median = median(samples);
    println!(
        "{name:<76} median {:>9.2} ms  ({runs} runs)",
        median.as_secs_f64() * 1e3
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let runs = if measuring { 15 } else { 2 };
    let sa = format!("{NS}/{SA}");
    let healthy = start("bench-healthy", vec![ecr_role(good_trust())]);
    measure(
        "irsa doctor --service-account, healthy chain, sandbox (goal < 1 s)",
        runs,
        &healthy,
        &["--service-account", &sa],
        0,
    );
    healthy.create_injected_pod("app", "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1");
    measure(
        "irsa doctor --pod, healthy chain, sandbox (goal < 1 s)",
        runs,
        &healthy,
        &["--pod", &format!("{NS}/app")],
        0,
    );
    // A ClusterPullSecret the controller (as installed) serves into two namespaces, Ready.
    let (installed, controller) = start_all(
        "bench-pull-secret",
        vec![ecr_role(good_trust())],
        &["team-a", "team-b"],
    );
    cluster_pull_secret(&installed, "ecr", json!({}));
    wait_status(
        &installed,
        &controller,
        &["clusterpullsecret", "ecr"],
        "True",
    );
    measure(
        "irsa doctor --pull-secret, Ready in 2 namespaces, sandbox (goal < 1 s)",
        runs,
        &installed,
        &["--pull-secret", "ecr"],
        0,
    );
    drop(controller);
    drop(installed);
    let broken = start(
        "bench-broken",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    measure(
        "irsa doctor --service-account, trust policy for another service account",
        runs,
        &broken,
        &["--service-account", &sa],
        1,
    );
}
