//! `irsa controller` refuses numbers it cannot work with before it starts: exit 2 and an
//! error naming the flag, never a panic or a controller that spins.

use std::process::{Command, Stdio};

struct Refused {
    code: Option<i32>,
    stderr: String,
}

/// Runs `irsa ARGS` with no cluster configuration at all: should a bad value get past the
/// checks, the run fails later with another exit code (no kubeconfig), never hangs.
fn irsa(args: &[&str]) -> Refused {
    let out = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("irsa runs");
    Refused {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn bad_numbers_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--resync", "0"], "--resync"),
        (&["--resync", "0ms"], "--resync"),
        (&["--resync", "5124095576030432h"], "--resync"),
        (&["--resync", "99999999999999999999s"], "--resync"),
        (&["--resync", "307445734561825861m"], "--resync"),
        (&["--leader-elect", "--retry-period", "0"], "--retry-period"),
        (
            &[
                "--leader-elect",
                "--retry-period",
                "10s",
                "--renew-deadline",
                "10s",
            ],
            "--retry-period",
        ),
        (
            &["--leader-elect", "--renew-deadline", "0s"],
            "--renew-deadline",
        ),
        (
            &["--leader-elect", "--lease-duration", "0"],
            "--lease-duration",
        ),
        (&["--lease-duration", "600000000h"], "--lease-duration"),
        (&["--kube-qps", "1e-300"], "--kube-qps"),
        (&["--kube-qps", "0.001"], "--kube-qps"),
        (&["--kube-qps=-1"], "--kube-qps"),
        (&["--kube-qps", "NaN"], "--kube-qps"),
        (&["--kube-qps", "inf"], "--kube-qps"),
        (&["--kube-burst", "0"], "--kube-burst"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--write-concurrency", "0"], "--write-concurrency"),
        (&["--token-expiration", "0"], "--token-expiration"),
        (&["--token-expiration", "1m"], "--token-expiration"),
        (
            &["--token-expiration", "9999999999999h"],
            "--token-expiration",
        ),
    ];
    for (flags, flag) in cases {
        let mut args = vec!["controller", "--metrics-listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let run = irsa(&args);
        assert_eq!(run.code, Some(2), "{flags:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(flag),
            "{flags:?}: the error names {flag}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("panicked"),
            "{flags:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_negative_token_leeway_is_bad_input() {
    let run = irsa(&["token", "inspect", "-", "--leeway=-5"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--leeway"), "{}", run.stderr);
}
