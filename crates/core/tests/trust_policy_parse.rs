//! Parse errors name the JSON path, the problem and the fix.

use irsa_core::trust_policy::{PolicyDocument, PolicyError};
use serde_json::{Value, json};

fn with_statement(st: Value) -> String {
    json!({"Version": "2012-10-17", "Statement": st}).to_string()
}

fn ok_statement() -> Value {
    json!({"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"}, "Action": "sts:AssumeRoleWithWebIdentity"})
}

fn with(field: &str, value: Value) -> String {
    let mut st = ok_statement();
    st[field] = value;
    with_statement(json!([ok_statement(), st]))
}

fn err(doc: &str) -> String {
    PolicyDocument::parse(doc)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn error_messages() {
    let cases: Vec<(String, &str)> = vec![
        (
            with("Condition", json!({"StringEqualz": {"a:sub": "x"}})),
            "Statement[1].Condition.StringEqualz: unknown condition operator \"StringEqualz\"; did you mean \"StringEquals\"?",
        ),
        (
            with("Condition", json!({"stringlike": {"a:sub": "x"}})),
            "Statement[1].Condition.stringlike: unknown condition operator \"stringlike\"; did you mean \"StringLike\"?",
        ),
        (
            with("Condition", json!({"Frobnicate": {"a:sub": "x"}})),
            "Statement[1].Condition.Frobnicate: unknown condition operator \"Frobnicate\"",
        ),
        (
            with(
                "Condition",
                json!({"ForSomeValues:StringEquals": {"a:sub": "x"}}),
            ),
            "Statement[1].Condition.ForSomeValues:StringEquals: unknown condition qualifier \"ForSomeValues\"; use \"ForAnyValue\" or \"ForAllValues\"",
        ),
        (
            with(
                "Condition",
                json!({"ForAnyValue:StringEqualz": {"a:sub": "x"}}),
            ),
            "Statement[1].Condition.ForAnyValue:StringEqualz: unknown condition operator \"ForAnyValue:StringEqualz\"; did you mean \"StringEquals\"?",
        ),
        (
            with("Condition", json!({"NullIfExists": {"a:sub": "true"}})),
            "Statement[1].Condition.NullIfExists: Null has no IfExists form; use \"Null\"",
        ),
        (
            with("Condition", json!({"Null": {"a:sub": "yes"}})),
            "Statement[1].Condition.Null.a:sub: must be \"true\" (key absent) or \"false\" (key present), found \"yes\"",
        ),
        (
            with(
                "Condition",
                json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}),
            ),
            "Statement[1].Condition.DateGreaterThan: condition operator \"DateGreaterThan\" is valid IAM but irsa cannot evaluate it; check this statement by hand",
        ),
        (
            with("Condition", json!({"StringEquals": {"a:sub": {"x": 1}}})),
            "Statement[1].Condition.StringEquals.a:sub: expected a string, number or boolean, found an object",
        ),
        (
            with("Condition", json!({"StringEquals": {"a:sub": ["x", null]}})),
            "Statement[1].Condition.StringEquals.a:sub[1]: expected a string, number or boolean, found null",
        ),
        (
            with("Condition", json!({"StringEquals": "a:sub"})),
            "Statement[1].Condition.StringEquals: expected an object of condition keys",
        ),
        (
            with("Condition", json!(["StringEquals"])),
            "Statement[1].Condition: expected an object of operators",
        ),
        (
            with("Effect", json!("allow")),
            "Statement[1].Effect: must be \"Allow\" or \"Deny\" (case-sensitive), found \"allow\"",
        ),
        (
            with("Effect", json!(true)),
            "Statement[1].Effect: expected \"Allow\" or \"Deny\", found a boolean",
        ),
        (
            with_statement(json!({"Principal": "*", "Action": "sts:*"})),
            "Statement: missing Effect; add \"Effect\": \"Allow\" or \"Deny\"",
        ),
        (
            with_statement(json!([{"Effect": "Allow", "Action": "sts:*"}])),
            "Statement[0]: missing Principal",
        ),
        (
            with_statement(json!([{"Effect": "Allow", "Principal": "*"}])),
            "Statement[0]: missing Action; add \"Action\": \"sts:AssumeRoleWithWebIdentity\"",
        ),
        (
            with("Resource", json!("*")),
            "Statement[1].Resource: a trust policy must not have Resource; the role itself is the resource, remove it",
        ),
        (
            with("NotResource", json!("*")),
            "Statement[1].NotResource: a trust policy must not have NotResource",
        ),
        (
            with("NotAction", json!("sts:TagSession")),
            "Statement[1].NotAction: a statement has either Action or NotAction, not both",
        ),
        (
            with("NotPrincipal", json!("*")),
            "Statement[1].Principal: a statement has either Principal or NotPrincipal, not both",
        ),
        (
            with("Action", json!("AssumeRoleWithWebIdentity")),
            "Statement[1].Action: \"AssumeRoleWithWebIdentity\" is not an action; actions are written service:Action, e.g. \"sts:AssumeRoleWithWebIdentity\"",
        ),
        (
            with("Action", json!(["sts:TagSession", 3])),
            "Statement[1].Action[1]: expected a string, found a number",
        ),
        (
            with("Principal", json!("arn:aws:iam::1:root")),
            "Statement[1].Principal: \"arn:aws:iam::1:root\" is not a principal",
        ),
        (
            with("Principal", json!({"Federate": "x"})),
            "Statement[1].Principal.Federate: unknown field \"Federate\"; allowed: Federated, AWS, Service, CanonicalUser",
        ),
        (
            with("Principal", json!({"Federated": 1})),
            "Statement[1].Principal.Federated: expected a string or a list of strings, found a number",
        ),
        (
            with("Condtion", json!({})),
            "Statement[1].Condtion: unknown field \"Condtion\"; allowed: Sid, Effect, Principal, NotPrincipal, Action, NotAction, Condition",
        ),
        (
            json!({"Version": "2012-10-18", "Statement": []}).to_string(),
            "Version: must be \"2012-10-17\" (or the legacy \"2008-10-17\"), found \"2012-10-18\"",
        ),
        (
            json!({"Version": 2012, "Statement": []}).to_string(),
            "Version: expected a string, found a number",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": "Allow"}).to_string(),
            "Statement: expected an object or a list of objects, found a string",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": ["x"]}).to_string(),
            "Statement[0]: expected an object, found a string",
        ),
        (
            json!({"Version": "2012-10-17"}).to_string(),
            "(document): missing Statement",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [], "Statements": []}).to_string(),
            "Statements: unknown field \"Statements\"; allowed: Version, Id, Statement",
        ),
        (
            json!([1]).to_string(),
            "(document): expected an object, found a list",
        ),
        (
            "{\"Version\": ".to_string(),
            "policy document is not valid JSON at line 1, column 12",
        ),
    ];
    for (doc, want) in cases {
        let got = err(&doc);
        assert!(
            got.starts_with(want),
            "\n doc: {doc}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn structured_errors() {
    let e = PolicyDocument::parse(&with("Condition", json!({"StringEqualz": {"a:sub": "x"}})))
        .unwrap_err();
    assert_eq!(
        e,
        PolicyError::UnknownOperator {
            path: "Statement[1].Condition.StringEqualz".into(),
            operator: "StringEqualz".into(),
            suggestion: Some("StringEquals"),
        }
    );
}

#[test]
fn oversized_documents_are_refused() {
    let big = format!(
        "{{\"Id\": \"{}\", \"Statement\": []}}",
        "x".repeat(128 * 1024)
    );
    assert!(matches!(
        PolicyDocument::parse(&big),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn accepted_shapes() {
    let doc = json!({
        "Id": "trust",
        "Statement": {
            "Sid": "One",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": ["arn:aws:iam::1:root"], "Service": "ec2.amazonaws.com", "CanonicalUser": "abc"},
            "NotAction": ["sts:TagSession"],
            "Condition": {
                "ForAllValues:StringLikeIfExists": {"a:amr": ["x", true, 3.5]},
                "Null": {"a:email": false}
            }
        }
    });
    let p = PolicyDocument::parse(&doc.to_string()).unwrap();
    assert_eq!(p.version, None);
    assert_eq!(p.id.as_deref(), Some("trust"));
    assert_eq!(p.statements.len(), 1);
    let st = &p.statements[0];
    assert_eq!(st.sid.as_deref(), Some("One"));
    assert_eq!(st.conditions.len(), 2);
    let like = st.conditions.iter().find(|c| c.key == "a:amr").unwrap();
    assert_eq!(like.values, ["x", "true", "3.5"]);
    assert_eq!(like.operator.to_string(), "ForAllValues:StringLikeIfExists");
    for v in ["2008-10-17", "2012-10-17"] {
        assert!(PolicyDocument::parse(&json!({"Version": v, "Statement": []}).to_string()).is_ok());
    }
}

#[test]
fn garbage_never_panics() {
    for doc in [
        "",
        "null",
        "[]",
        "\"x\"",
        "{\"Statement\": [null]}",
        "{\"Statement\": {\"Condition\": null}}",
        "{\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"*\", \"Condition\": {\"StringLike\": {\"k\": \"${\"}}}}",
        "{\"Version\":\"2012-10-17\",\"Statement\": {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"*\", \"Condition\": {\"StringLike\": {\"k\": \"${a}${\"}}}}",
    ] {
        let _ = PolicyDocument::parse(doc);
    }
}
