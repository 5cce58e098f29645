//! `irsa demo` as a user runs it: the real binary, every step verified, the pull step included
//! (./scripts/test installs skopeo and docker-registry, so it must not be skipped).

use std::process::{Command, Output};

fn irsa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(args)
        .env_remove("IRSA_LOG")
        .env_remove("IRSA_DEMO_NAMESPACES")
        .output()
        .expect("run irsa")
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
}

#[test]
fn demo_verifies_every_step() {
    for peer in ["skopeo", "docker-registry"] {
        assert!(
            on_path(peer),
            "{peer} is not installed: `apt-get install skopeo docker-registry` (./scripts/test does)"
        );
    }
    let out = irsa(&["demo", "--namespaces", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for (step, expect) in [
        ("0 set-up", "20 namespaces labelled irsa.dev/pull=ecr"),
        ("1 fan-out", "secrets 20/20"),
        ("2 new namespace", "got its secret"),
        (
            "3 refresh",
            "21/21 secrets have a new password, 1 more exchange",
        ),
        ("4 outage", "Degraded=True (RefreshFailed"),
        ("5 recovery", "21/21 secrets refreshed, Degraded=False"),
        ("6 pull", "skopeo inspect + copy"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no line for step {step}:\n{stdout}"));
        assert!(
            line.starts_with(&format!("✓ {step}")),
            "step {step} not verified: {line}"
        );
        assert!(line.contains(expect), "step {step}: {line}");
        assert!(
            line.ends_with(" ms)"),
            "step {step} has no elapsed time: {line}"
        );
    }
    assert!(stdout.contains("Ready=True 20/20"), "{stdout}");
    assert!(stdout.contains("1 upstream exchange"), "{stdout}");
    assert!(stdout.contains("trust policy"), "{stdout}");
    assert!(stdout.contains("oidc-provider/"), "{stdout}");
    assert!(stdout.contains("every step verified"), "{stdout}");
    // Not a terminal: plain lines, no in-place progress.
    assert!(
        !stdout.contains('\x1b'),
        "escape codes on a pipe: {stdout:?}"
    );
}

#[test]
fn bad_namespace_counts_exit_2() {
    for bad in ["0", "10001", "many"] {
        let out = irsa(&["demo", "--namespaces", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--namespaces {bad}: {stderr}");
        assert!(stderr.contains("--namespaces"), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing started for {bad}");
    }
}

#[test]
fn argocd_demo_verifies_every_step_and_prints_no_secret() {
    assert!(
        on_path("docker-registry"),
        "docker-registry is not installed: `apt-get install docker-registry` (./scripts/test does)"
    );
    let out = irsa(&["demo", "--argocd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for (step, expect) in [
        (
            "0 set-up",
            "service accounts argocd/argocd-project-production and argocd/argocd-project-staging",
        ),
        ("1 filled", "2 upstream exchanges (one per project role)"),
        (
            "2 refresh",
            "2/2 Secrets have a new password, 2 more exchanges",
        ),
        (
            "3 isolated",
            "staging's reads staging/app:v1 and is refused production/app:v1",
        ),
        (
            "4 outage",
            "keep their last good credentials (still accepted)",
        ),
        ("5 recovery", "2 fresh exchanges, 2/2 Secrets Ready"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no line for step {step}:\n{stdout}"));
        assert!(
            line.starts_with(&format!("✓ {step}")),
            "step {step} not verified: {line}"
        );
        assert!(line.contains(expect), "step {step}: {line}");
        assert!(
            line.ends_with(" ms)"),
            "step {step} has no elapsed time: {line}"
        );
    }
    assert!(stdout.contains("every step verified"), "{stdout}");
    assert!(stdout.contains("IAM roles"), "{stdout}");
    // No credential on the console: no JWT, no ECR password (the sandbox's are 64 characters
    // of base64url-ish text), no STS session token.
    for (what, found) in [
        ("a JWT", stdout.contains("eyJ")),
        ("an STS session token", stdout.contains("IQoJb3JpZ2lu")),
        (
            "a password-like word",
            stdout
                .split(|c: char| c.is_whitespace() || "()\"',".contains(c))
                .any(|w| {
                    w.len() >= 40
                        && w.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c))
                }),
        ),
    ] {
        assert!(!found, "{what} in the output:\n{stdout}");
    }
    assert!(
        !stdout.contains('\x1b'),
        "escape codes on a pipe: {stdout:?}"
    );
}

#[test]
fn argocd_and_namespaces_exclude_each_other() {
    let out = irsa(&["demo", "--argocd", "--namespaces", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--namespaces"), "{stderr}");
    let help = irsa(&["demo", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("irsa demo --argocd") && help.contains("argocd-project-<p>"),
        "--help shows the Argo CD demo: {help}"
    );
}
