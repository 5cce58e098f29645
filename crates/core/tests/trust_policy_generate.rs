//! Generated policies parse, and allow exactly what they promise.

use irsa_core::trust_policy::{
    PolicyDocument, RequestContext, argocd_project_service_account, ecr_pull_policy, evaluate,
    service_account_trust_policy,
};
use serde_json::json;

const ARN: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
const PROVIDER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";

fn token(sub: &str, aud: &str) -> RequestContext {
    let claims = json!({"sub": sub, "aud": aud});
    RequestContext::web_identity(ARN, PROVIDER, claims.as_object().unwrap())
}

fn allows(policy: &PolicyDocument, sub: &str, aud: &str) -> bool {
    evaluate(policy, &token(sub, aud)).allowed()
}

#[test]
fn exact_service_account_round_trip() {
    let v = service_account_trust_policy(ARN, PROVIDER, "prod", "app", "sts.amazonaws.com");
    let text = serde_json::to_string_pretty(&v).unwrap();
    let p = PolicyDocument::parse(&text).unwrap();
    assert!(allows(
        &p,
        "system:serviceaccount:prod:app",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:prod:app2",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:dev:app",
        "sts.amazonaws.com"
    ));
    assert!(!allows(&p, "system:serviceaccount:prod:app", "other"));
    assert_eq!(
        v["Statement"][0]["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
        "system:serviceaccount:prod:app"
    );
    // another cluster's token is refused at the principal
    let other = RequestContext::web_identity(
        "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/XYZ",
        "oidc.eks.us-east-1.amazonaws.com/id/XYZ",
        json!({"sub": "system:serviceaccount:prod:app", "aud": "sts.amazonaws.com"})
            .as_object()
            .unwrap(),
    );
    assert!(!evaluate(&p, &other).allowed());
}

#[test]
fn wildcard_service_account_uses_string_like() {
    let v = service_account_trust_policy(
        ARN,
        &format!("https://{PROVIDER}"),
        "prod",
        "app-*",
        "sts.amazonaws.com",
    );
    assert!(v["Statement"][0]["Condition"]["StringLike"][format!("{PROVIDER}:sub")].is_string());
    assert!(v["Statement"][0]["Condition"]["StringEquals"][format!("{PROVIDER}:aud")].is_string());
    let p = PolicyDocument::parse(&v.to_string()).unwrap();
    assert!(allows(
        &p,
        "system:serviceaccount:prod:app-web",
        "sts.amazonaws.com"
    ));
    assert!(allows(
        &p,
        "system:serviceaccount:prod:app-",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:prod:app",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:dev:app-web",
        "sts.amazonaws.com"
    ));
    assert!(!allows(&p, "system:serviceaccount:prod:app-web", "vault"));

    let v = service_account_trust_policy(ARN, PROVIDER, "team-?", "puller", "sts.amazonaws.com");
    let p = PolicyDocument::parse(&v.to_string()).unwrap();
    assert!(allows(
        &p,
        "system:serviceaccount:team-a:puller",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:team-ab:puller",
        "sts.amazonaws.com"
    ));
}

#[test]
fn ecr_pull_policy_has_the_four_actions() {
    let repos = vec![
        "arn:aws:ecr:us-east-1:111122223333:repository/app".to_string(),
        "arn:aws:ecr:us-east-1:111122223333:repository/base/*".to_string(),
    ];
    let v = ecr_pull_policy(&repos, false);
    let text = serde_json::to_string_pretty(&v).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["Version"], "2012-10-17");
    let st = back["Statement"].as_array().unwrap();
    assert_eq!(st[0]["Action"], "ecr:GetAuthorizationToken");
    assert_eq!(st[0]["Resource"], "*");
    let pull: Vec<&str> = st[1]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        pull,
        [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer"
        ]
    );
    assert_eq!(st[1]["Resource"], json!(repos));
    // an identity policy has Resource, so it is not a trust policy
    assert!(PolicyDocument::parse(&text).is_err());
    // no repositories: token statement only, never an empty Resource list
    assert_eq!(
        ecr_pull_policy(&[], true)["Statement"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn ecr_pull_policy_with_list_tags_adds_list_images_on_the_same_repositories() {
    let repos = vec!["arn:aws:ecr:us-east-1:111122223333:repository/team/*".to_string()];
    let v = ecr_pull_policy(&repos, true);
    assert_eq!(
        v["Statement"],
        json!([
            {
                "Sid": "GetAuthorizationToken",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "PullImages",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                "Resource": repos,
            },
            {
                "Sid": "ListImageTags",
                "Effect": "Allow",
                "Action": "ecr:ListImages",
                "Resource": repos,
            },
        ])
    );
    // without it, nothing lists tags
    assert!(
        !ecr_pull_policy(&repos, false)
            .to_string()
            .contains("ListImages")
    );
}

#[test]
fn argocd_project_trust_policy_admits_that_project_only() {
    let sa = argocd_project_service_account("production");
    assert_eq!(sa, "argocd-project-production");
    let v = service_account_trust_policy(ARN, PROVIDER, "argocd", &sa, "sts.amazonaws.com");
    let p = PolicyDocument::parse(&v.to_string()).unwrap();
    assert!(allows(
        &p,
        "system:serviceaccount:argocd:argocd-project-production",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:argocd:argocd-project-staging",
        "sts.amazonaws.com"
    ));
    assert!(!allows(
        &p,
        "system:serviceaccount:argocd:argocd-repo-server",
        "sts.amazonaws.com"
    ));
}
