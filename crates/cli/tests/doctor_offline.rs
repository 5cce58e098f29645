//! `irsa doctor --trust-policy FILE --token FILE [--provider-arn ARN]`: the trust checks with no
//! cluster and no AWS. Expected verdicts from the IAM User Guide ("Condition operators":
//! StringEquals is exact, StringLike takes * and ?; "Policy evaluation logic": implicit deny by
//! default, an explicit deny wins), independent of irsa's evaluator.

mod common;

use common::{PROVIDER, PROVIDER_ARN, TempDir, irsa, sa_claims, sign};
use serde_json::{Value, json};

fn trust(op: &str, sub: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {op: {
            format!("{PROVIDER}:sub"): sub,
            format!("{PROVIDER}:aud"): "sts.amazonaws.com"
        }}
    }]})
}

fn doctor(dir: &TempDir, policy: &Value, claims: &Value, extra: &[&str]) -> common::Run {
    let p = dir.write("trust.json", &policy.to_string());
    let t = dir.write("token", &sign(claims));
    let mut args = vec!["doctor", "--trust-policy", &p, "--token", &t, "-o", "json"];
    args.extend_from_slice(extra);
    irsa(&args)
}

#[test]
fn an_allowed_token_passes_both_checks_and_is_never_printed() {
    let dir = TempDir::new("doctor-offline-ok");
    let claims = sa_claims("prod", "app");
    let run = doctor(
        &dir,
        &trust("StringEquals", "system:serviceaccount:prod:app"),
        &claims,
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["checks"][0]["id"], "token-claims");
    assert_eq!(report["checks"][1]["id"], "trust-policy");
    assert_eq!(report["checks"][1]["status"], "pass");
    assert!(
        !run.stdout.contains(&sign(&claims)[..40]),
        "the token was printed"
    );
    assert!(!run.stdout.contains("eyJ"), "{}", run.stdout);
}

#[test]
fn another_namespace_fails_the_trust_policy_on_sub_with_its_fix() {
    // StringEquals is exact: "…:dev:app" is not "…:prod:app" → implicit deny on :sub.
    let dir = TempDir::new("doctor-offline-ns");
    let run = doctor(
        &dir,
        &trust("StringEquals", "system:serviceaccount:dev:app"),
        &sa_claims("prod", "app"),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["first_failure"], "trust-policy");
    let c = &report["checks"][1];
    assert_eq!(
        c["expected"]["values"],
        json!(["system:serviceaccount:dev:app"])
    );
    assert_eq!(
        c["actual"]["values"],
        json!(["system:serviceaccount:prod:app"])
    );
    // The policy trusts another subject: the fix names it and is the statement to add for
    // prod/app, not a replacement of the policy.
    assert!(
        c["fix"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("the role trusts system:serviceaccount:dev:app: "),
        "{c:#}"
    );
    assert_eq!(
        c["fix"]["document"]["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
        "system:serviceaccount:prod:app",
        "{c:#}"
    );
}

#[test]
fn string_like_matches_the_wildcard_string_equals_does_not() {
    let dir = TempDir::new("doctor-offline-like");
    let claims = sa_claims("ci", "runner-7");
    let like = doctor(
        &dir,
        &trust("StringLike", "system:serviceaccount:ci:runner-*"),
        &claims,
        &[],
    );
    assert_eq!(like.code, 0, "{}", like.stdout);
    let equals = doctor(
        &dir,
        &trust("StringEquals", "system:serviceaccount:ci:runner-*"),
        &claims,
        &[],
    );
    assert_eq!(equals.code, 1, "{}", equals.stdout);
    assert!(
        equals.stdout.contains("use StringLike"),
        "{}",
        equals.stdout
    );
}

#[test]
fn an_expired_token_fails_first_and_the_trust_policy_is_skipped() {
    let dir = TempDir::new("doctor-offline-expired");
    let mut claims = sa_claims("prod", "app");
    claims["exp"] = json!(common::now() - 600);
    let run = doctor(
        &dir,
        &trust("StringEquals", "system:serviceaccount:prod:app"),
        &claims,
        &[],
    );
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["first_failure"], "token-claims");
    assert!(
        report["checks"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{report:#}"
    );
    assert_eq!(report["checks"][1]["status"], "skip");
    assert_eq!(
        report["checks"][1]["summary"],
        "skipped: needs token-claims"
    );
}

#[test]
fn the_text_report_is_a_tree_with_the_fix() {
    let dir = TempDir::new("doctor-offline-text");
    let p = dir.write(
        "trust.json",
        &trust("StringEquals", "system:serviceaccount:dev:app").to_string(),
    );
    let t = dir.write("token", &sign(&sa_claims("prod", "app")));
    let run = irsa(&["doctor", "--trust-policy", &p, "--token", &t]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("✓ token-claims"), "{}", run.stdout);
    assert!(run.stdout.contains("✗ trust-policy"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("fix: the role trusts system:serviceaccount:dev:app"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("the first link that is broken: trust-policy"),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_files_exit_2_naming_the_flag() {
    let dir = TempDir::new("doctor-offline-bad");
    let good = dir.write("trust.json", &trust("StringEquals", "x").to_string());
    let bad = dir.write("bad.json", "{\"Statement\": 3}");
    let token = dir.write("token", &sign(&sa_claims("prod", "app")));
    let junk = dir.write("junk", "not a jwt");
    for (args, flag) in [
        (
            vec!["doctor", "--trust-policy", &bad, "--token", &token],
            "--trust-policy",
        ),
        (
            vec!["doctor", "--trust-policy", &good, "--token", &junk],
            "--token",
        ),
        (
            vec![
                "doctor",
                "--trust-policy",
                &good,
                "--token",
                &token,
                "--provider-arn",
                "arn:nope",
            ],
            "--provider-arn",
        ),
    ] {
        let run = irsa(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(flag), "{}", run.stderr);
    }
}

#[test]
fn the_audience_the_workload_needs_must_be_in_the_token() {
    let dir = TempDir::new("doctor-offline-aud");
    let run = doctor(
        &dir,
        &trust("StringEquals", "system:serviceaccount:prod:app"),
        &sa_claims("prod", "app"),
        &["--audience", "api://irsa"],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let report = run.json();
    assert_eq!(report["first_failure"], "token-claims");
    assert!(
        report["checks"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("does not include \"api://irsa\""),
        "{report:#}"
    );
}

#[test]
fn a_token_with_session_tags_needs_sts_tag_session() {
    // IAM User Guide, "Passing session tags using AssumeRoleWithWebIdentity": a token with the
    // https://aws.amazon.com/tags claim makes STS tag the session, which the trust policy must
    // allow with sts:TagSession besides sts:AssumeRoleWithWebIdentity.
    let dir = TempDir::new("doctor-offline-tags");
    let mut claims = sa_claims("prod", "app");
    claims["https://aws.amazon.com/tags"] =
        json!({"principal_tags": {"team": ["a"]}, "transitive_tag_keys": []});
    let policy = trust("StringEquals", "system:serviceaccount:prod:app");
    let run = doctor(&dir, &policy, &claims, &["--provider-arn", PROVIDER_ARN]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["first_failure"], "session-tags", "{report:#}");
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "session-tags")
        .unwrap();
    assert!(
        c["summary"].as_str().unwrap().contains("sts:TagSession"),
        "{c:#}"
    );
    // With sts:TagSession in the statement's actions, it passes.
    let mut allowed = policy.clone();
    allowed["Statement"][0]["Action"] = json!(["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]);
    let run = doctor(&dir, &allowed, &claims, &["--provider-arn", PROVIDER_ARN]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // A token no statement allows (another namespace) is the trust policy's failure, not a
    // missing sts:TagSession (doctor5 review L7): session-tags does not fail on it.
    let other = trust("StringEquals", "system:serviceaccount:dev:app");
    let run = doctor(&dir, &other, &claims, &["--provider-arn", PROVIDER_ARN]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["first_failure"], "trust-policy", "{report:#}");
    let tags = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "session-tags")
        .unwrap();
    assert_eq!(tags["status"], "pass", "{tags:#}");
}
