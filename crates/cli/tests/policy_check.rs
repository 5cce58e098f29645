//! `irsa policy check`: the decision STS would make, and the reason a user needs, end to end.

mod common;

use common::{
    ISSUER, PROVIDER, PROVIDER_ARN, TempDir, irsa, irsa_with_stdin, now, sa_claims, sign,
};

/// The trust policy `irsa policy trust` writes for prod/app, as a file.
fn trust_policy_for(dir: &TempDir, service_account: &str) -> String {
    trust_policy_with(dir, &["--service-account", service_account])
}

/// The trust policy `irsa policy trust` writes with these identity flags, as a file.
fn trust_policy_with(dir: &TempDir, identity: &[&str]) -> String {
    let mut args = vec![
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--account",
        "111122223333",
    ];
    args.extend_from_slice(identity);
    let run = irsa(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    dir.write("trust.json", &run.stdout)
}

fn check(policy: &str, token: &str, extra: &[&str]) -> common::Run {
    let mut args = vec!["policy", "check", "--trust-policy", policy, "--token", "-"];
    args.extend_from_slice(extra);
    irsa_with_stdin(&args, token)
}

#[test]
fn the_service_account_the_policy_names_is_allowed() {
    let dir = TempDir::new("check-allow");
    let policy = trust_policy_for(&dir, "prod/app");
    let run = check(
        &policy,
        &sign(&sa_claims("prod", "app")),
        &["--provider-arn", PROVIDER_ARN, "-o", "json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let out = run.json();
    assert_eq!(out["decision"], "allow");
    assert!(out["reasons"].as_array().is_some_and(|r| !r.is_empty()));
}

#[test]
fn another_namespace_is_denied_with_expected_and_actual_sub() {
    let dir = TempDir::new("check-sub");
    let policy = trust_policy_for(&dir, "prod/app");
    let run = check(
        &policy,
        &sign(&sa_claims("dev", "app")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.starts_with("DENY"), "{}", run.stdout);
    for want in [
        format!("{PROVIDER}:sub"),
        "system:serviceaccount:prod:app".into(),
        "system:serviceaccount:dev:app".into(),
    ] {
        assert!(
            run.stdout.contains(&want),
            "{want:?} not in:\n{}",
            run.stdout
        );
    }
}

#[test]
fn a_wrong_audience_is_denied_naming_aud() {
    let dir = TempDir::new("check-aud");
    let policy = trust_policy_for(&dir, "prod/app");
    let mut claims = sa_claims("prod", "app");
    claims["aud"] = serde_json::json!(["vault"]);
    let run = check(
        &policy,
        &sign(&claims),
        &["--provider-arn", PROVIDER_ARN, "-o", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.json();
    assert_eq!(out["decision"], "deny");
    let reasons = out["reasons"].to_string();
    assert!(reasons.contains(&format!("{PROVIDER}:aud")), "{reasons}");
    assert!(reasons.contains("vault"), "{reasons}");
}

#[test]
fn a_wildcard_policy_allows_matching_names_only() {
    let dir = TempDir::new("check-wild");
    let policy = trust_policy_for(&dir, "ci/runner-*");
    let ok = check(
        &policy,
        &sign(&sa_claims("ci", "runner-7")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    let no = check(
        &policy,
        &sign(&sa_claims("ci", "builder")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(no.code, 1, "{}", no.stdout);
}

#[test]
fn with_only_the_issuer_the_principal_matches_in_any_account() {
    let dir = TempDir::new("check-issuer");
    let policy = trust_policy_for(&dir, "prod/app");
    let run = check(
        &policy,
        &sign(&sa_claims("prod", "app")),
        &["--issuer", ISSUER],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn a_provider_in_another_account_is_a_principal_mismatch() {
    let dir = TempDir::new("check-account");
    let policy = trust_policy_for(&dir, "prod/app");
    let other = PROVIDER_ARN.replace("111122223333", "999999999999");
    let run = check(
        &policy,
        &sign(&sa_claims("prod", "app")),
        &["--provider-arn", &other],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("999999999999"), "{}", run.stdout);
    assert!(run.stdout.contains("111122223333"), "{}", run.stdout);
}

#[test]
fn a_token_from_another_issuer_is_refused_before_the_policy() {
    let dir = TempDir::new("check-iss");
    let policy = trust_policy_for(&dir, "prod/app");
    let mut claims = sa_claims("prod", "app");
    claims["iss"] = serde_json::json!("https://oidc.eks.eu-west-1.amazonaws.com/id/OTHER");
    let run = check(&policy, &sign(&claims), &["--provider-arn", PROVIDER_ARN]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("InvalidIdentityToken"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_expired_token_is_refused() {
    let dir = TempDir::new("check-exp");
    let policy = trust_policy_for(&dir, "prod/app");
    let mut claims = sa_claims("prod", "app");
    claims["exp"] = serde_json::json!(now() - 600);
    let run = check(&policy, &sign(&claims), &["--provider-arn", PROVIDER_ARN]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("ExpiredTokenException"),
        "{}",
        run.stdout
    );
}

#[test]
fn explicit_deny_wins() {
    let dir = TempDir::new("check-deny");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AllowCluster", "Effect": "Allow", "Principal": {"Federated": PROVIDER_ARN},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringLike": {format!("{PROVIDER}:sub"): "system:serviceaccount:*"}}},
            {"Sid": "NoKubeSystem", "Effect": "Deny", "Principal": {"Federated": PROVIDER_ARN},
             "Action": "sts:*",
             "Condition": {"StringEquals": {format!("{PROVIDER}:sub"): "system:serviceaccount:kube-system:default"}}}
        ]
    });
    let policy = dir.write("policy.json", &policy.to_string());
    let run = check(
        &policy,
        &sign(&sa_claims("kube-system", "default")),
        &["--provider-arn", PROVIDER_ARN, "-o", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = run.json();
    assert_eq!(out["outcome"], "explicit-deny");
    assert!(out["reasons"].to_string().contains("NoKubeSystem"), "{out}");
}

#[test]
fn invalid_policies_exit_2_naming_the_path() {
    let dir = TempDir::new("check-invalid");
    let token = sign(&sa_claims("prod", "app"));
    for (policy, want) in [
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEqualz":{"a":"b"}}}]}"#,
            "StringEqualz",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"*"}}"#,
            "Effect",
        ),
        ("not json", "--trust-policy"),
    ] {
        let path = dir.write("bad.json", policy);
        let run = check(&path, &token, &["--provider-arn", PROVIDER_ARN]);
        assert_eq!(run.code, 2, "{policy}: {}", run.stdout);
        assert!(run.stderr.contains(want), "{want:?} not in {}", run.stderr);
    }
}

#[test]
fn provider_or_issuer_is_required() {
    let run = irsa(&["policy", "check", "--trust-policy", "x", "--token", "y"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--provider-arn") && run.stderr.contains("--issuer"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_argocd_projects_role_admits_that_projects_service_account_only() {
    let dir = TempDir::new("check-argocd-project");
    let policy = trust_policy_with(&dir, &["--argocd-project", "production"]);
    let run = check(
        &policy,
        &sign(&sa_claims("argocd", "argocd-project-production")),
        &["--provider-arn", PROVIDER_ARN, "-o", "json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["decision"], "allow");

    // another project's service account (staging reading production's repositories)
    let run = check(
        &policy,
        &sign(&sa_claims("argocd", "argocd-project-staging")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.starts_with("DENY"), "{}", run.stdout);
    for want in [
        "system:serviceaccount:argocd:argocd-project-production",
        "system:serviceaccount:argocd:argocd-project-staging",
    ] {
        assert!(run.stdout.contains(want), "{want} not in {}", run.stdout);
    }

    // the same project in another Argo CD namespace is another service account
    let policy = trust_policy_with(
        &dir,
        &[
            "--argocd-project",
            "production",
            "--argocd-namespace",
            "gitops",
        ],
    );
    let run = check(
        &policy,
        &sign(&sa_claims("argocd", "argocd-project-production")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let run = check(
        &policy,
        &sign(&sa_claims("gitops", "argocd-project-production")),
        &["--provider-arn", PROVIDER_ARN],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
