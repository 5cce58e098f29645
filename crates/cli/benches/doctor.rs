//! The whole `irsa doctor --service-account` run against `irsa sandbox` (a separate process:
//! Kubernetes API server, OIDC issuer, IAM, STS, ECR), every check passing: twelve checks, a
//! TokenRequest, the IAM reads, a real AssumeRoleWithWebIdentity and GetAuthorizationToken.
//! Goal: < 1 s. Also one broken chain (the trust policy), which stops before the exchange.
//!
//! `cargo bench -p irsa --bench doctor` measures (median of 15 runs); under `cargo test` it
//! runs each case twice as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_doctor/mod.rs"]
mod support_doctor;

use std::time::{Duration, Instant};

use support_doctor::{Sandbox, ecr_role, good_trust, start, trust_for};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(name: &str, runs: usize, sandbox: &Sandbox, want: i32) {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let run = sandbox.doctor(&["-o", "json"]);
            let took = t.elapsed();
            assert_eq!(run.code, want, "{}\n{}", run.stdout, run.stderr);
            took
        })
        .collect();
    let median = median(samples);
    println!(
        "{name:<58} median {:>9.2} ms  ({runs} runs)",
        median.as_secs_f64() * 1e3
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let runs = if measuring { 15 } else { 2 };
    let healthy = start("bench-healthy", vec![ecr_role(good_trust())]);
    measure(
        "irsa doctor, healthy chain, sandbox (goal < 1 s)",
        runs,
        &healthy,
        0,
    );
    let broken = start(
        "bench-broken",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    measure(
        "irsa doctor, trust policy for another service account",
        runs,
        &broken,
        1,
    );
}
