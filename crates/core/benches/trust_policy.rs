//! Parse and evaluation time of a realistic multi-cluster trust policy.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use irsa_core::trust_policy::{PolicyDocument, RequestContext, evaluate};
use serde_json::json;

const PROD: &str = "oidc.eks.us-east-1.amazonaws.com/id/PROD0123456789ABCDEF";
const STAGING: &str = "oidc.eks.eu-west-1.amazonaws.com/id/STAGING0123456789ABC";
const GITHUB: &str = "token.actions.githubusercontent.com";
const KIND: &str = "kind.example.com/clusters/dev";

fn arn(p: &str) -> String {
    format!("arn:aws:iam::111122223333:oidc-provider/{p}")
}

fn policy_text() -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DenyKubeSystem", "Effect": "Deny", "Principal": "*", "Action": "sts:*",
             "Condition": {"StringLike": {format!("{PROD}:sub"): "system:serviceaccount:kube-system:*"}}},
            {"Sid": "Staging", "Effect": "Allow", "Principal": {"Federated": arn(STAGING)},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {format!("{STAGING}:aud"): "sts.amazonaws.com",
                                            format!("{STAGING}:sub"): "system:serviceaccount:ci:puller"}}},
            {"Sid": "GitHub", "Effect": "Allow", "Principal": {"Federated": arn(GITHUB)},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {format!("{GITHUB}:aud"): "sts.amazonaws.com"},
                           "StringLike": {format!("{GITHUB}:sub"): ["repo:irsa-dev/irsa:ref:refs/heads/main", "repo:irsa-dev/irsa:environment:*"]}}},
            {"Sid": "Kind", "Effect": "Allow", "Principal": {"Federated": arn(KIND)},
             "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
             "Condition": {"StringEquals": {format!("{KIND}:aud"): "sts.amazonaws.com"}}},
            {"Sid": "Prod", "Effect": "Allow", "Principal": {"Federated": [arn(PROD), arn(STAGING)]},
             "Action": "sts:AssumeRoleWith*",
             "Condition": {"StringEquals": {format!("{PROD}:aud"): "sts.amazonaws.com"},
                           "StringLike": {format!("{PROD}:sub"): "system:serviceaccount:prod:app-*"},
                           "Null": {format!("{PROD}:email"): "true"}}}
        ]
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let text = policy_text();
    let policy = PolicyDocument::parse(&text).expect("bench policy parses");
    let claims = json!({"sub": "system:serviceaccount:prod:app-web", "aud": ["sts.amazonaws.com"],
                        "iss": format!("https://{PROD}"), "exp": 1_900_000_000});
    let request =
        RequestContext::web_identity(&arn(PROD), PROD, claims.as_object().expect("object"));
    let decision = evaluate(&policy, &request);
    assert!(decision.allowed(), "{decision}");
    assert!(decision.reasons[..4].iter().all(|r| !r.applies));

    c.bench_function("trust_policy/parse_5_statements", |b| {
        b.iter(|| PolicyDocument::parse(black_box(&text)))
    });
    c.bench_function("trust_policy/evaluate_5_statements", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&request)))
    });
    c.bench_function("trust_policy/web_identity_context", |b| {
        b.iter(|| {
            RequestContext::web_identity(
                black_box(&arn(PROD)),
                PROD,
                claims.as_object().expect("object"),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
