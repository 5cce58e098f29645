//! Principal, action and statement-level evaluation, and the explanation text.

use irsa_core::trust_policy::{
    ConditionFailure, Mismatch, Outcome, PolicyDocument, RequestContext, evaluate,
};
use serde_json::{Map, Value, json};

const ACCOUNT: &str = "111122223333";
const PROVIDER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";

fn arn(account: &str, provider: &str) -> String {
    format!("arn:aws:iam::{account}:oidc-provider/{provider}")
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn eks_request(sub: &str, aud: Value) -> RequestContext {
    RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"sub": sub, "aud": aud, "iss": format!("https://{PROVIDER}")})),
    )
}

fn parse(v: Value) -> PolicyDocument {
    PolicyDocument::parse(&v.to_string()).expect("test policy parses")
}

fn classic_eks() -> PolicyDocument {
    parse(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{PROVIDER}:sub"): "system:serviceaccount:prod:app",
                format!("{PROVIDER}:aud"): "sts.amazonaws.com",
            }}
        }]
    }))
}

fn statement(principal: Value, action: Value) -> PolicyDocument {
    parse(json!({"Statement": {"Effect": "Allow", "Principal": principal, "Action": action}}))
}

#[test]
fn classic_eks_policy_allows_the_service_account() {
    let d = evaluate(
        &classic_eks(),
        &eks_request("system:serviceaccount:prod:app", json!("sts.amazonaws.com")),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        d.to_string(),
        "allowed by Statement[0]\n  Statement[0] (Allow) applies: allows sts:AssumeRoleWithWebIdentity for \
         arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC: principal and action \
         match and all 2 conditions hold.\n"
    );
}

#[test]
fn classic_eks_policy_denied_by_sub() {
    let d = evaluate(
        &classic_eks(),
        &eks_request("system:serviceaccount:dev:app", json!("sts.amazonaws.com")),
    );
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    let r = &d.reasons[0];
    assert!(!r.applies);
    assert_eq!(
        r.message,
        "StringEquals oidc.eks.us-east-1.amazonaws.com/id/ABC:sub expected \"system:serviceaccount:prod:app\", \
         token has \"system:serviceaccount:dev:app\"."
    );
    assert_eq!(
        r.failed,
        Some(Mismatch::Condition(ConditionFailure {
            operator: "StringEquals".into(),
            key: format!("{PROVIDER}:sub"),
            expected: vec!["system:serviceaccount:prod:app".into()],
            actual: vec!["system:serviceaccount:dev:app".into()],
            key_present: true,
            claim: Some("sub".into()),
            other_provider: None,
        }))
    );
    assert_eq!(
        d.to_string(),
        "denied: no statement allows this request\n  Statement[0] (Allow) does not apply: StringEquals \
         oidc.eks.us-east-1.amazonaws.com/id/ABC:sub expected \"system:serviceaccount:prod:app\", token has \
         \"system:serviceaccount:dev:app\".\n"
    );
}

#[test]
fn classic_eks_policy_denied_by_aud() {
    let d = evaluate(
        &classic_eks(),
        &eks_request("system:serviceaccount:prod:app", json!("vault")),
    );
    assert!(!d.allowed());
    assert_eq!(
        d.reasons[0].message,
        "StringEquals oidc.eks.us-east-1.amazonaws.com/id/ABC:aud expected \"sts.amazonaws.com\", token has \"vault\"."
    );
    // a list aud containing the expected audience matches (any value)
    let d = evaluate(
        &classic_eks(),
        &eks_request(
            "system:serviceaccount:prod:app",
            json!(["vault", "sts.amazonaws.com"]),
        ),
    );
    assert!(d.allowed(), "{d}");
}

#[test]
fn missing_claim_is_named() {
    let ctx = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"aud": "sts.amazonaws.com"})),
    );
    let d = evaluate(&classic_eks(), &ctx);
    assert_eq!(
        d.reasons[0].message,
        "StringEquals oidc.eks.us-east-1.amazonaws.com/id/ABC:sub expected \"system:serviceaccount:prod:app\", \
         but the token has no \"sub\" claim."
    );
}

#[test]
fn claims_iam_does_not_pass_are_explained() {
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{PROVIDER}:groups"): "admins"}}}}),
    );
    let ctx = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"groups": ["admins"]})),
    );
    let d = evaluate(&p, &ctx);
    assert!(!d.allowed());
    assert!(
        d.reasons[0]
            .message
            .contains("IAM does not pass the token's \"groups\" claim"),
        "{d}"
    );
}

#[test]
fn condition_for_another_cluster_is_called_out() {
    let other = "oidc.eks.eu-west-1.amazonaws.com/id/XYZ";
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{other}:sub"): "system:serviceaccount:prod:app"}}}}),
    );
    let d = evaluate(
        &p,
        &eks_request("system:serviceaccount:prod:app", json!("sts.amazonaws.com")),
    );
    assert!(!d.allowed());
    let msg = &d.reasons[0].message;
    assert!(
        msg.contains("belongs to provider oidc.eks.eu-west-1.amazonaws.com/id/XYZ"),
        "{msg}"
    );
    assert!(
        msg.contains("issued by oidc.eks.us-east-1.amazonaws.com/id/ABC"),
        "{msg}"
    );
    assert!(msg.contains("another cluster"), "{msg}");
    match &d.reasons[0].failed {
        Some(Mismatch::Condition(f)) => {
            assert_eq!(f.other_provider.as_deref(), Some(other));
            assert!(!f.key_present);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn aud_reads_azp_when_present_and_oaud_holds_aud() {
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{PROVIDER}:aud"): "client-123"}}}}),
    );
    let with_azp = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"aud": "https://api.example.com", "azp": "client-123"})),
    );
    assert!(evaluate(&p, &with_azp).allowed());
    assert_eq!(
        with_azp.get(&format!("{PROVIDER}:oaud")),
        Some(&["https://api.example.com".to_string()][..])
    );
    assert_eq!(
        with_azp.get(&format!("{PROVIDER}:azp")),
        Some(&["client-123".to_string()][..])
    );

    let aud_only = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"aud": "client-123"})),
    );
    assert!(evaluate(&p, &aud_only).allowed());
    assert_eq!(aud_only.get(&format!("{PROVIDER}:oaud")), None);

    // the aud claim no longer matches :aud once azp is present; the message says why
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{PROVIDER}:aud"): "https://api.example.com"}}}}),
    );
    let d = evaluate(&p, &with_azp);
    assert!(!d.allowed());
    assert!(
        d.reasons[0].message.contains("from the token's azp claim"),
        "{d}"
    );
}

#[test]
fn amr_email_and_global_keys() {
    let ctx = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        PROVIDER,
        &claims(json!({"amr": ["authenticated", "mfa"], "email": "a@example.com", "sub": 42})),
    );
    assert_eq!(
        ctx.get(&format!("{PROVIDER}:AMR")).map(<[String]>::len),
        Some(2)
    );
    assert_eq!(
        ctx.get(&format!("{PROVIDER}:email")),
        Some(&["a@example.com".to_string()][..])
    );
    assert_eq!(
        ctx.get(&format!("{PROVIDER}:sub")),
        Some(&["42".to_string()][..])
    );
    assert_eq!(
        ctx.get("aws:federatedprovider"),
        Some(&[arn(ACCOUNT, PROVIDER)][..])
    );
    let ctx = ctx.with_value("sts:RoleSessionName", vec!["s".into()]);
    assert_eq!(ctx.get("STS:rolesessionname"), Some(&["s".to_string()][..]));
}

#[test]
fn principal_mismatch_names_both_arns() {
    let req = eks_request("s", json!("sts.amazonaws.com"));
    let cases = [
        (
            json!({"Federated": arn("999999999999", PROVIDER)}),
            "account 999999999999 instead of 111122223333",
        ),
        (
            json!({"Federated": arn(ACCOUNT, "oidc.eks.us-east-1.amazonaws.com/id/OTHER")}),
            "it trusts provider oidc.eks.us-east-1.amazonaws.com/id/OTHER, the token comes from oidc.eks.us-east-1.amazonaws.com/id/ABC",
        ),
        (
            json!({"Federated": arn(ACCOUNT, "oidc.eks.us-east-1.amazonaws.com/id/abc")}),
            "differs only in case",
        ),
        (
            json!({"AWS": "arn:aws:iam::111122223333:root"}),
            "only a Federated principal",
        ),
        (
            json!({"Service": "ec2.amazonaws.com"}),
            "only a Federated principal",
        ),
    ];
    for (principal, hint) in cases {
        let d = evaluate(
            &statement(principal.clone(), json!("sts:AssumeRoleWithWebIdentity")),
            &req,
        );
        assert!(!d.allowed(), "{principal}");
        let msg = &d.reasons[0].message;
        assert!(msg.contains(hint), "{principal}: {msg}");
        assert!(msg.contains(&arn(ACCOUNT, PROVIDER)), "{msg}");
        if let Some(f) = principal.get("Federated") {
            assert!(msg.contains(f.as_str().unwrap()), "{msg}");
        }
        assert!(matches!(
            d.reasons[0].failed,
            Some(Mismatch::Principal { .. })
        ));
    }
}

#[test]
fn wildcard_principals() {
    let req = eks_request("s", json!("a"));
    for p in [
        json!("*"),
        json!({"AWS": "*"}),
        json!({"Federated": "*"}),
        json!({"Federated": ["x", arn(ACCOUNT, PROVIDER)]}),
    ] {
        assert!(
            evaluate(
                &statement(p.clone(), json!("sts:AssumeRoleWithWebIdentity")),
                &req
            )
            .allowed(),
            "{p}"
        );
    }
    // no partial wildcards in principals
    let p = json!({"Federated": "arn:aws:iam::*:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"});
    assert!(!evaluate(&statement(p, json!("sts:AssumeRoleWithWebIdentity")), &req).allowed());
}

#[test]
fn not_principal() {
    let req = eks_request("s", json!("a"));
    let other = json!({"NotPrincipal": {"Federated": arn("999999999999", PROVIDER)}});
    let doc = |np: Value| {
        parse(
            json!({"Statement": {"Effect": "Allow", "NotPrincipal": np["NotPrincipal"], "Action": "sts:*"}}),
        )
    };
    assert!(evaluate(&doc(other), &req).allowed());
    let d = evaluate(
        &doc(json!({"NotPrincipal": {"Federated": arn(ACCOUNT, PROVIDER)}})),
        &req,
    );
    assert!(!d.allowed());
    assert!(
        d.reasons[0].message.starts_with("NotPrincipal Federated:"),
        "{d}"
    );
}

#[test]
fn any_account_mode_matches_provider_only() {
    let req =
        RequestContext::web_identity("(unknown account)", PROVIDER, &claims(json!({"sub": "s"})))
            .with_any_account();
    let d = evaluate(
        &statement(
            json!({"Federated": arn("999999999999", PROVIDER)}),
            json!("sts:AssumeRoleWithWebIdentity"),
        ),
        &req,
    );
    assert!(d.allowed(), "{d}");
    assert!(
        d.reasons[0].message.contains("(account not checked)"),
        "{d}"
    );
    let d = evaluate(
        &statement(
            json!({"Federated": arn("999999999999", "other.example.com")}),
            json!("sts:AssumeRoleWithWebIdentity"),
        ),
        &req,
    );
    assert!(!d.allowed());
}

#[test]
fn wildcard_and_case_insensitive_actions() {
    let req = eks_request("s", json!("a"));
    let p = json!({"Federated": arn(ACCOUNT, PROVIDER)});
    for (action, want) in [
        (json!("sts:AssumeRoleWithWebIdentity"), true),
        (json!("STS:assumerolewithwebidentity"), true),
        (json!("sts:*"), true),
        (json!("*"), true),
        (json!("sts:AssumeRole*"), true),
        (json!("STS:AssumeRoleWith*"), true),
        (json!("sts:AssumeRoleWith?ebIdentity"), true),
        (json!("sts:AssumeRole"), false),
        (json!("sts:AssumeRoleWithSAML"), false),
        (json!("ec2:*"), false),
        (
            json!([
                "sts:AssumeRole",
                "sts:TagSession",
                "sts:AssumeRoleWithWebIdentity"
            ]),
            true,
        ),
    ] {
        let d = evaluate(&statement(p.clone(), action.clone()), &req);
        assert_eq!(d.allowed(), want, "{action}: {d}");
        if !want {
            assert!(
                d.reasons[0]
                    .message
                    .contains("does not match sts:AssumeRoleWithWebIdentity"),
                "{d}"
            );
        }
    }
    // with_action evaluates other actions, e.g. sts:TagSession
    let d = evaluate(
        &statement(p.clone(), json!("sts:AssumeRoleWithWebIdentity")),
        &req.clone().with_action("sts:TagSession"),
    );
    assert!(!d.allowed());
}

#[test]
fn not_action() {
    let req = eks_request("s", json!("a"));
    let doc = |na: Value| {
        parse(json!({"Statement": {"Effect": "Allow", "Principal": "*", "NotAction": na}}))
    };
    assert!(evaluate(&doc(json!("sts:AssumeRole")), &req).allowed());
    let d = evaluate(&doc(json!(["sts:AssumeRoleWith*"])), &req);
    assert!(!d.allowed());
    assert_eq!(
        d.reasons[0].message,
        "NotAction \"sts:AssumeRoleWith*\" excludes sts:AssumeRoleWithWebIdentity."
    );
}

#[test]
fn explicit_deny_wins_over_allow() {
    let p = parse(json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AllowCluster", "Effect": "Allow", "Principal": {"Federated": arn(ACCOUNT, PROVIDER)},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringLike": {format!("{PROVIDER}:sub"): "system:serviceaccount:*:*"}}},
            {"Sid": "DenyKubeSystem", "Effect": "Deny", "Principal": "*", "Action": "sts:*",
             "Condition": {"StringLike": {format!("{PROVIDER}:sub"): "system:serviceaccount:kube-system:*"}}}
        ]
    }));
    let d = evaluate(
        &p,
        &eks_request(
            "system:serviceaccount:kube-system:coredns",
            json!("sts.amazonaws.com"),
        ),
    );
    assert_eq!(d.outcome, Outcome::ExplicitDeny);
    assert!(d.reasons.iter().all(|r| r.applies));
    assert!(
        d.to_string()
            .starts_with("denied explicitly by DenyKubeSystem\n"),
        "{d}"
    );
    let d = evaluate(
        &p,
        &eks_request("system:serviceaccount:prod:app", json!("sts.amazonaws.com")),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        d.reasons[1].message,
        "StringLike oidc.eks.us-east-1.amazonaws.com/id/ABC:sub expected \"system:serviceaccount:kube-system:*\", token has \"system:serviceaccount:prod:app\"."
    );
    // a Deny alone never allows
    let deny_only =
        parse(json!({"Statement": {"Effect": "Deny", "Principal": "*", "Action": "*"}}));
    assert_eq!(
        evaluate(&deny_only, &eks_request("s", json!("a"))).outcome,
        Outcome::ExplicitDeny
    );
    let empty = parse(json!({"Statement": []}));
    assert_eq!(
        evaluate(&empty, &eks_request("s", json!("a"))).outcome,
        Outcome::ImplicitDeny
    );
}

#[test]
fn negated_and_ignorecase_messages() {
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:*",
        "Condition": {"StringNotEquals": {format!("{PROVIDER}:sub"): ["system:serviceaccount:a:b", "system:serviceaccount:c:d"]}}}}),
    );
    let d = evaluate(&p, &eks_request("system:serviceaccount:c:d", json!("a")));
    assert_eq!(
        d.reasons[0].message,
        format!(
            "StringNotEquals {PROVIDER}:sub expected none of \"system:serviceaccount:a:b\", \"system:serviceaccount:c:d\", token has \"system:serviceaccount:c:d\"."
        )
    );
    let p = parse(
        json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:*",
        "Condition": {"Null": {"sts:RoleSessionName": "false"}}}}),
    );
    let d = evaluate(&p, &eks_request("s", json!("a")));
    assert_eq!(
        d.reasons[0].message,
        "Null sts:RoleSessionName expected the key to be present, but the request has no sts:RoleSessionName."
    );
}

#[test]
fn decision_serializes_for_json_output() {
    let d = evaluate(
        &classic_eks(),
        &eks_request("system:serviceaccount:dev:app", json!("sts.amazonaws.com")),
    );
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["outcome"], "implicit-deny");
    assert_eq!(v["reasons"][0]["effect"], "allow");
    assert_eq!(v["reasons"][0]["failed"]["kind"], "condition");
    assert_eq!(
        v["reasons"][0]["failed"]["actual"][0],
        "system:serviceaccount:dev:app"
    );
}

#[test]
fn issuer_given_with_scheme_is_normalised() {
    let ctx = RequestContext::web_identity(
        &arn(ACCOUNT, PROVIDER),
        &format!("https://{PROVIDER}"),
        &claims(json!({"sub": "system:serviceaccount:prod:app", "aud": "sts.amazonaws.com"})),
    );
    assert_eq!(ctx.provider(), PROVIDER);
    assert!(evaluate(&classic_eks(), &ctx).allowed());
}
