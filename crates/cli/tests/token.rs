//! `irsa token inspect`, run as a user would, with tokens signed by the test keys.

mod common;

use common::{ISSUER, TempDir, fixture, irsa, irsa_with_stdin, now, sa_claims, sign};

fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().expect("signature segment")
}

#[test]
fn inspect_shows_the_service_account_and_expiry_and_never_the_token() {
    let mut claims = sa_claims("prod", "app");
    claims["exp"] = serde_json::json!(now() + 2 * 3600 + 20 * 60 - 30);
    let token = sign(&claims);
    let dir = TempDir::new("inspect");
    let file = dir.write("token", &format!("{token}\n"));
    let run = irsa(&["token", "inspect", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for want in [
        "alg RS256, kid test-rsa",
        "service account  prod/app",
        "audience         sts.amazonaws.com",
        "bound to pod     app-7d9f8b6c5-x2k4q",
        "bound to node    ip-10-0-1-23.ec2.internal",
        "(in 2h 19m)",
        "verification     not requested",
    ] {
        assert!(
            run.stdout.contains(want),
            "{want:?} not in:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains(signature_of(&token)));
    assert!(!run.stdout.contains(&token));
}

#[test]
fn inspect_verifies_against_a_jwks() {
    let token = sign(&sa_claims("prod", "app"));
    let jwks = fixture("jwks.json");
    let run = irsa_with_stdin(
        &[
            "token",
            "inspect",
            "-",
            "--jwks",
            &jwks,
            "--issuer",
            ISSUER,
            "--audience",
            "sts.amazonaws.com",
            "-o",
            "json",
        ],
        &token,
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["verification"]["valid"], true);
    assert_eq!(report["verification"]["signature_checked"], true);
    assert_eq!(report["service_account"]["namespace"], "prod");
    assert_eq!(report["service_account"]["name"], "app");
    assert_eq!(report["header"]["kid"], "test-rsa");
    assert_eq!(report["claims"]["sub"], "system:serviceaccount:prod:app");
    assert_eq!(report["expired"], false);
    let left = report["expires_in_seconds"].as_i64().expect("seconds");
    assert!((3500..=3600).contains(&left), "{left}");
}

#[test]
fn inspect_reports_every_failed_check_and_exits_1() {
    let mut claims = sa_claims("prod", "app");
    claims["aud"] = serde_json::json!("api");
    claims["exp"] = serde_json::json!(now() - 3600);
    let token = sign(&claims);
    let run = irsa_with_stdin(
        &[
            "token",
            "inspect",
            "-",
            "--jwks",
            &fixture("jwks.json"),
            "--issuer",
            ISSUER,
            "--audience",
            "sts.amazonaws.com",
        ],
        &token,
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("verification     FAILED"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("EXPIRED"), "{}", run.stdout);
    assert!(
        run.stdout.contains("\"sts.amazonaws.com\""),
        "the missing audience is named:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("exp"), "{}", run.stdout);
}

#[test]
fn inspect_with_the_wrong_key_fails_on_the_signature() {
    let token = sign(&sa_claims("prod", "app"));
    let run = irsa_with_stdin(
        &[
            "token",
            "inspect",
            "-",
            "--jwks",
            &fixture("jwks-other.json"),
            "-o",
            "json",
        ],
        &token,
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let problems = run.json()["verification"]["problems"].to_string();
    assert!(problems.contains("signature"), "{problems}");
    assert!(!run.stdout.contains(signature_of(&token)));
    assert!(!run.stderr.contains(signature_of(&token)));
}

#[test]
fn inspect_checks_claims_without_a_jwks() {
    let token = sign(&sa_claims("prod", "app"));
    let run = irsa_with_stdin(
        &[
            "token",
            "inspect",
            "-",
            "--issuer",
            "https://other.example.com",
        ],
        &token,
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("other.example.com"), "{}", run.stdout);
}

#[test]
fn malformed_tokens_exit_2_naming_the_part() {
    for (input, want) in [
        ("", "token"),
        ("not-a-jwt", "segment"),
        ("a.b", "segment"),
        ("e30.e30.e30.e30", "segment"),
        ("!!!.e30.sig", "header"),
    ] {
        let run = irsa_with_stdin(&["token", "inspect", "-"], input);
        assert_eq!(run.code, 2, "{input:?}: {}", run.stdout);
        assert!(
            run.stderr.to_lowercase().contains(want),
            "{input:?}: {want:?} not in {}",
            run.stderr
        );
    }
}

#[test]
fn a_missing_file_names_the_path() {
    let run = irsa(&["token", "inspect", "/nonexistent/token"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/token"), "{}", run.stderr);
}
