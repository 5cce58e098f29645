//! Table-driven tests of every condition operator, qualifier and `IfExists` form.

use irsa_core::trust_policy::{PolicyDocument, RequestContext, evaluate};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC";
const PROVIDER: &str = "oidc.example.com/id/ABC";

fn policy(condition: Value) -> PolicyDocument {
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }]
    });
    PolicyDocument::parse(&doc.to_string()).expect("test policy parses")
}

fn request(key: &str, values: Option<&[&str]>) -> RequestContext {
    let ctx = RequestContext::web_identity(ARN, PROVIDER, &serde_json::Map::new());
    match values {
        Some(v) => ctx.with_value(key, v.iter().map(|s| s.to_string()).collect()),
        None => ctx,
    }
}

/// (operator, policy value(s), request values (None = key absent), expected allow)
type Row = (&'static str, Value, Option<&'static [&'static str]>, bool);

fn run(rows: &[Row]) {
    for (i, (op, value, req, want)) in rows.iter().enumerate() {
        let p = policy(json!({ *op: { "test:Key": value } }));
        let d = evaluate(&p, &request("test:key", *req));
        assert_eq!(d.allowed(), *want, "row {i}: {op} {value} vs {req:?}\n{d}");
    }
}

#[test]
fn string_equals() {
    run(&[
        ("StringEquals", json!("a"), Some(&["a"]), true),
        ("StringEquals", json!("a"), Some(&["A"]), false),
        ("StringEquals", json!("a"), Some(&["b"]), false),
        ("StringEquals", json!("a"), None, false),
        ("StringEquals", json!("a*"), Some(&["abc"]), false),
        ("StringEquals", json!("a*"), Some(&["a*"]), true),
        ("StringEquals", json!(["x", "a"]), Some(&["a"]), true),
        ("StringEquals", json!(["x", "y"]), Some(&["a"]), false),
        ("StringEquals", json!(true), Some(&["true"]), true),
        ("StringEquals", json!(12), Some(&["12"]), true),
        ("StringEqualsIfExists", json!("a"), None, true),
        ("StringEqualsIfExists", json!("a"), Some(&["a"]), true),
        ("StringEqualsIfExists", json!("a"), Some(&["b"]), false),
    ]);
}

#[test]
fn string_not_equals() {
    run(&[
        ("StringNotEquals", json!("a"), Some(&["a"]), false),
        ("StringNotEquals", json!("a"), Some(&["b"]), true),
        ("StringNotEquals", json!("a"), None, true),
        // several values: the request value must match none of them
        ("StringNotEquals", json!(["a", "b"]), Some(&["b"]), false),
        ("StringNotEquals", json!(["a", "b"]), Some(&["c"]), true),
        ("StringNotEqualsIfExists", json!("a"), None, true),
        ("StringNotEqualsIfExists", json!("a"), Some(&["a"]), false),
        ("StringNotEqualsIfExists", json!("a"), Some(&["c"]), true),
    ]);
}

#[test]
fn string_equals_ignore_case() {
    run(&[
        (
            "StringEqualsIgnoreCase",
            json!("Prod"),
            Some(&["pROD"]),
            true,
        ),
        (
            "StringEqualsIgnoreCase",
            json!("Prod"),
            Some(&["dev"]),
            false,
        ),
        ("StringEqualsIgnoreCase", json!("Prod"), None, false),
        ("StringEqualsIgnoreCase", json!("ÉTÉ"), Some(&["été"]), true),
        ("StringEqualsIgnoreCaseIfExists", json!("a"), None, true),
        (
            "StringEqualsIgnoreCaseIfExists",
            json!("a"),
            Some(&["A"]),
            true,
        ),
        (
            "StringNotEqualsIgnoreCase",
            json!("Prod"),
            Some(&["PROD"]),
            false,
        ),
        (
            "StringNotEqualsIgnoreCase",
            json!("Prod"),
            Some(&["dev"]),
            true,
        ),
        ("StringNotEqualsIgnoreCase", json!("Prod"), None, true),
        (
            "StringNotEqualsIgnoreCase",
            json!(["a", "B"]),
            Some(&["b"]),
            false,
        ),
        ("StringNotEqualsIgnoreCaseIfExists", json!("a"), None, true),
        (
            "StringNotEqualsIgnoreCaseIfExists",
            json!("a"),
            Some(&["A"]),
            false,
        ),
    ]);
}

#[test]
fn string_like() {
    run(&[
        (
            "StringLike",
            json!("system:serviceaccount:prod:*"),
            Some(&["system:serviceaccount:prod:app"]),
            true,
        ),
        (
            "StringLike",
            json!("system:serviceaccount:prod:*"),
            Some(&["system:serviceaccount:dev:app"]),
            false,
        ),
        ("StringLike", json!("a?c"), Some(&["abc"]), true),
        ("StringLike", json!("a?c"), Some(&["ac"]), false),
        ("StringLike", json!("A*"), Some(&["abc"]), false),
        ("StringLike", json!("a*"), None, false),
        ("StringLike", json!(["x*", "a*"]), Some(&["abc"]), true),
        ("StringLikeIfExists", json!("a*"), None, true),
        ("StringLikeIfExists", json!("a*"), Some(&["b"]), false),
        ("StringNotLike", json!("a*"), Some(&["abc"]), false),
        ("StringNotLike", json!("a*"), Some(&["bcd"]), true),
        ("StringNotLike", json!("a*"), None, true),
        ("StringNotLike", json!(["a*", "b*"]), Some(&["bcd"]), false),
        ("StringNotLike", json!(["a*", "b*"]), Some(&["cde"]), true),
        ("StringNotLikeIfExists", json!("a*"), None, true),
        ("StringNotLikeIfExists", json!("a*"), Some(&["abc"]), false),
    ]);
}

#[test]
fn glob_edge_cases() {
    run(&[
        ("StringLike", json!("*"), Some(&["anything"]), true),
        ("StringLike", json!("*"), Some(&[""]), true),
        ("StringLike", json!("?"), Some(&[""]), false),
        ("StringLike", json!("?"), Some(&["é"]), true),
        ("StringLike", json!("??"), Some(&["é"]), false),
        ("StringLike", json!("a**b"), Some(&["ab"]), true),
        ("StringLike", json!("a***b"), Some(&["axxb"]), true),
        ("StringLike", json!("*a*b*"), Some(&["xxaxxbxx"]), true),
        ("StringLike", json!("*a*b*"), Some(&["xxbxxaxx"]), false),
        ("StringLike", json!("abcdef"), Some(&["abc"]), false),
        ("StringLike", json!("abc*def"), Some(&["abcde"]), false),
        ("StringLike", json!("a*"), Some(&[""]), false),
        ("StringLike", json!("*c"), Some(&["abcabc"]), true),
        ("StringLike", json!("*?"), Some(&[""]), false),
        ("StringLike", json!(""), Some(&[""]), true),
        ("StringLike", json!(""), Some(&["a"]), false),
    ]);
}

#[test]
fn numeric_bool_arn() {
    run(&[
        ("NumericEquals", json!(3), Some(&["3"]), true),
        ("NumericEquals", json!("3"), Some(&["3.0"]), true),
        ("NumericEquals", json!(3), Some(&["x"]), false),
        ("NumericNotEquals", json!(3), Some(&["4"]), true),
        ("NumericNotEquals", json!(3), None, true),
        ("NumericLessThan", json!(3600), Some(&["900"]), true),
        ("NumericLessThan", json!(3600), Some(&["3600"]), false),
        ("NumericLessThanEquals", json!(3600), Some(&["3600"]), true),
        ("NumericGreaterThan", json!(1), Some(&["2"]), true),
        ("NumericGreaterThanEquals", json!(2), Some(&["1"]), false),
        ("NumericLessThanIfExists", json!(1), None, true),
        ("Bool", json!(true), Some(&["true"]), true),
        ("Bool", json!("true"), Some(&["TRUE"]), true),
        ("Bool", json!(true), Some(&["false"]), false),
        ("Bool", json!(true), None, false),
        ("BoolIfExists", json!(true), None, true),
        (
            "ArnLike",
            json!("arn:aws:iam::*:role/app-*"),
            Some(&["arn:aws:iam::111122223333:role/app-x"]),
            true,
        ),
        (
            "ArnLike",
            json!("arn:aws:iam::*:role/app-*"),
            Some(&["arn:aws:iam::111122223333:user/app-x"]),
            false,
        ),
        // a star never spans a colon in ARN operators, unlike StringLike
        (
            "ArnLike",
            json!("arn:*:role/x"),
            Some(&["arn:aws:iam::1:role/x"]),
            false,
        ),
        (
            "StringLike",
            json!("arn:*:role/x"),
            Some(&["arn:aws:iam::1:role/x"]),
            true,
        ),
        (
            "ArnEquals",
            json!("arn:aws:iam::1:role/x"),
            Some(&["arn:aws:iam::1:role/x"]),
            true,
        ),
        (
            "ArnNotEquals",
            json!("arn:aws:iam::1:role/x"),
            Some(&["arn:aws:iam::1:role/y"]),
            true,
        ),
        (
            "ArnNotLike",
            json!("arn:aws:iam::*:role/x"),
            Some(&["arn:aws:iam::1:role/x"]),
            false,
        ),
        ("ArnNotLike", json!("arn:aws:iam::*:role/x"), None, true),
    ]);
}

#[test]
fn null() {
    run(&[
        ("Null", json!("true"), None, true),
        ("Null", json!("true"), Some(&["a"]), false),
        ("Null", json!("false"), Some(&["a"]), true),
        ("Null", json!("false"), None, false),
        ("Null", json!(true), None, true),
        ("Null", json!(false), Some(&["a"]), true),
        // an empty value list is an absent key
        ("Null", json!("true"), Some(&[]), true),
    ]);
}

#[test]
fn set_qualifiers() {
    run(&[
        // ForAnyValue: at least one request value matches; absent or empty → false
        (
            "ForAnyValue:StringEquals",
            json!("b"),
            Some(&["a", "b"]),
            true,
        ),
        (
            "ForAnyValue:StringEquals",
            json!("c"),
            Some(&["a", "b"]),
            false,
        ),
        ("ForAnyValue:StringEquals", json!("c"), None, false),
        ("ForAnyValue:StringEquals", json!("c"), Some(&[]), false),
        (
            "ForAnyValue:StringLike",
            json!(["x", "auth*"]),
            Some(&["unauth", "authenticated"]),
            true,
        ),
        ("ForAnyValue:StringEqualsIfExists", json!("c"), None, true),
        // ForAllValues: every request value matches; absent or empty → true
        (
            "ForAllValues:StringEquals",
            json!(["a", "b"]),
            Some(&["a", "b"]),
            true,
        ),
        (
            "ForAllValues:StringEquals",
            json!(["a", "b"]),
            Some(&["a", "c"]),
            false,
        ),
        ("ForAllValues:StringEquals", json!(["a"]), None, true),
        ("ForAllValues:StringEquals", json!(["a"]), Some(&[]), true),
        (
            "ForAllValues:StringLike",
            json!("team-*"),
            Some(&["team-a", "team-b"]),
            true,
        ),
        // negated with qualifiers: the operator is applied to each request value
        (
            "ForAnyValue:StringNotEquals",
            json!(["a"]),
            Some(&["a", "b"]),
            true,
        ),
        (
            "ForAnyValue:StringNotEquals",
            json!(["a", "b"]),
            Some(&["a", "b"]),
            false,
        ),
        ("ForAnyValue:StringNotEquals", json!(["a"]), None, false),
        (
            "ForAllValues:StringNotEquals",
            json!(["a"]),
            Some(&["b", "c"]),
            true,
        ),
        (
            "ForAllValues:StringNotEquals",
            json!(["a"]),
            Some(&["a", "c"]),
            false,
        ),
        ("ForAllValues:StringNotEquals", json!(["a"]), None, true),
        (
            "ForAllValues:StringNotLike",
            json!(["adm*"]),
            Some(&["dev", "admin"]),
            false,
        ),
    ]);
}

#[test]
fn unqualified_operator_on_multivalued_key() {
    run(&[
        // positive: any request value matching any policy value
        (
            "StringEquals",
            json!("sts.amazonaws.com"),
            Some(&["other", "sts.amazonaws.com"]),
            true,
        ),
        (
            "StringEquals",
            json!("sts.amazonaws.com"),
            Some(&["other", "x"]),
            false,
        ),
        // negated: exact negation, so no request value may match
        (
            "StringNotEquals",
            json!("sts.amazonaws.com"),
            Some(&["other", "sts.amazonaws.com"]),
            false,
        ),
        (
            "StringNotEquals",
            json!("sts.amazonaws.com"),
            Some(&["other", "x"]),
            true,
        ),
    ]);
}

#[test]
fn several_keys_and_operators_are_anded() {
    let p = policy(json!({
        "StringEquals": {"test:a": "1", "test:b": "2"},
        "StringLike": {"test:c": "x*"},
    }));
    let base = || {
        RequestContext::web_identity(ARN, PROVIDER, &serde_json::Map::new())
            .with_value("test:a", vec!["1".into()])
            .with_value("test:b", vec!["2".into()])
            .with_value("test:c", vec!["xyz".into()])
    };
    assert!(evaluate(&p, &base()).allowed());
    assert!(!evaluate(&p, &base().with_value("test:b", vec!["3".into()])).allowed());
    assert!(!evaluate(&p, &base().with_value("test:c", vec!["y".into()])).allowed());
    assert!(!evaluate(&p, &base().with_value("test:a", vec![])).allowed());
}

#[test]
fn condition_keys_are_case_insensitive_values_are_not() {
    let p = policy(json!({"StringEquals": {"TEST:KEY": "Value"}}));
    assert!(evaluate(&p, &request("test:key", Some(&["Value"]))).allowed());
    assert!(!evaluate(&p, &request("test:key", Some(&["value"]))).allowed());
}

#[test]
fn policy_variables() {
    let p = policy(json!({"StringLike": {"test:key": "${sts:RoleSessionName}-*"}}));
    let ctx = request("test:key", Some(&["alice-1"]));
    assert!(
        evaluate(
            &p,
            &ctx.clone()
                .with_value("sts:RoleSessionName", vec!["alice".into()])
        )
        .allowed()
    );
    assert!(
        !evaluate(
            &p,
            &ctx.clone()
                .with_value("sts:RoleSessionName", vec!["bob".into()])
        )
        .allowed()
    );
    // no value and no default: matches nothing
    assert!(!evaluate(&p, &ctx).allowed());

    let p = policy(json!({"StringEquals": {"test:key": "${sts:RoleSessionName, 'alice'}-1"}}));
    assert!(evaluate(&p, &request("test:key", Some(&["alice-1"]))).allowed());

    // ${*} is a literal star, and substituted text is literal too
    let p = policy(json!({"StringLike": {"test:key": "a${*}"}}));
    assert!(evaluate(&p, &request("test:key", Some(&["a*"]))).allowed());
    assert!(!evaluate(&p, &request("test:key", Some(&["ab"]))).allowed());
    let p = policy(json!({"StringLike": {"test:key": "${sts:RoleSessionName}"}}));
    let ctx =
        request("test:key", Some(&["abc"])).with_value("sts:RoleSessionName", vec!["*".into()]);
    assert!(!evaluate(&p, &ctx).allowed());

    // Version 2008-10-17 has no variables: the text is literal
    let doc = json!({"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Principal": {"Federated": ARN},
        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {"test:key": "${x}"}}}});
    let p = PolicyDocument::parse(&doc.to_string()).unwrap();
    assert!(evaluate(&p, &request("test:key", Some(&["${x}"]))).allowed());
}
