//! Whole-process figures for the CLI, one run of each, medians reported:
//! - `irsa login` cold (no disk cache) against moto and against the sandbox's STS/ECR;
//! - `irsa argocd-credentials` with a warm disk cache (goal < 10 ms: Image Updater's limit is 10 s).
//!
//! `cargo bench -p irsa --bench cli` measures; under `cargo test` it runs each case twice as a
//! smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_cloud/mod.rs"]
mod support_cloud;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use irsa_test_peers::Moto;
use support_cloud::{ACCOUNT, SandboxCloud};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    let samples = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn report(name: &str, runs: usize, median: Duration) {
    println!(
        "{name:<58} median {:>9.2} ms  ({runs} runs)",
        median.as_secs_f64() * 1e3
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let runs = if measuring { 25 } else { 2 };
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_irsa"));
    let dir = common::TempDir::new("bench-cli");

    // moto: the real AWS wire protocol; its ECR tokens claim to be expired, so nothing is cached.
    let moto = Moto::start(&[]);
    let token = dir.write(
        "moto-token",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6YnVpbGRlciJ9.c2ln",
    );
    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let cold_moto = time(runs, || {
        let out = Command::new(&binary)
            .args(["login", ecr, "--no-cache"])
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/builder")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .output()
            .expect("irsa login");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    report("irsa login, cold, moto (STS + ECR)", runs, cold_moto);

    // The sandbox: verifies the token and every signature, and issues 12-hour ECR tokens.
    let cloud = SandboxCloud::start();
    let token_file = PathBuf::from(dir.write("sandbox-token", &cloud.token()));
    let cache = dir.0.join("cache");
    let sandbox_ecr = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com");
    let run = |args: &[&str]| {
        let out = cloud.irsa(&binary, "puller", &token_file, &cache, args, "");
        assert_eq!(out.code, 0, "{}", out.stderr);
    };
    let cold_sandbox = time(runs, || run(&["login", &sandbox_ecr, "--no-cache"]));
    report(
        "irsa login, cold, sandbox (STS + ECR, verified)",
        runs,
        cold_sandbox,
    );

    run(&["argocd-credentials", &sandbox_ecr]);
    let calls = cloud.calls("ecr", "GetAuthorizationToken");
    let warm = time(runs * 4, || run(&["argocd-credentials", &sandbox_ecr]));
    assert_eq!(
        cloud.calls("ecr", "GetAuthorizationToken"),
        calls,
        "warm runs made no ECR call"
    );
    report(
        "irsa argocd-credentials, warm disk cache (goal < 10 ms)",
        runs * 4,
        warm,
    );
}
