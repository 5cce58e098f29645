//! `decode_unverified`, claim parsing and the service account a token names.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use irsa_core::token::{Claims, ObjectRef, ServiceAccountName, TokenError, decode_unverified};
use proptest::prelude::*;
use serde_json::{Value, json};

const EKS_CLAIMS: &[u8] = include_bytes!("fixtures/eks-projected-claims.json");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned token around raw header and claims bytes (decode_unverified ignores signatures).
fn token(header: &[u8], claims: &[u8]) -> String {
    format!("{}.{}.c2ln", b64(header), b64(claims))
}

fn token_with_claims(claims: &Value) -> String {
    token(
        br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
        &serde_json::to_vec(claims).unwrap(),
    )
}

#[test]
fn decodes_a_realistic_eks_projected_token() {
    let raw = format!("{}\n", token(br#"{"alg":"RS256","kid":"k1"}"#, EKS_CLAIMS));
    let t = decode_unverified(&raw).expect("decodes");
    assert_eq!(t.header.alg, "RS256");
    assert_eq!(t.header.kid.as_deref(), Some("k1"));
    assert_eq!(t.header.typ, None);

    let c = &t.claims;
    assert_eq!(
        c.iss.as_deref(),
        Some("https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE")
    );
    assert_eq!(c.aud, ["sts.amazonaws.com"]);
    assert_eq!(
        (c.iat, c.nbf, c.exp),
        (Some(1764000000), Some(1764000000), Some(1764086400))
    );
    assert_eq!(
        c.jti.as_deref(),
        Some("3c5d2a04-7d3b-4b1e-9f2e-0a8f6c1d9e11")
    );

    let k = c.kubernetes.as_ref().expect("kubernetes.io claim");
    assert_eq!(k.namespace.as_deref(), Some("ci"));
    assert_eq!(
        k.service_account,
        Some(ObjectRef {
            name: "builder".into(),
            uid: Some("a1b2c3d4-e5f6-4a5b-9c8d-7e6f5a4b3c2d".into())
        })
    );
    assert_eq!(k.pod.as_ref().unwrap().name, "builder-7c9f8d6b5-x2x7q");
    assert_eq!(
        k.node.as_ref().unwrap().name,
        "ip-10-0-12-34.eu-west-1.compute.internal"
    );
    assert_eq!(k.secret, None);
    assert_eq!(k.warn_after, Some(1764003607));

    // Every claim stays available for trust-policy condition keys.
    assert_eq!(
        c.raw["kubernetes.io"]["pod"]["uid"],
        "d2a1c3b4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    );
    assert_eq!(c.raw.len(), 8);

    assert_eq!(
        c.service_account(),
        Some(ServiceAccountName {
            namespace: "ci".into(),
            name: "builder".into()
        })
    );
    assert_eq!(Claims::from_json(EKS_CLAIMS).unwrap(), *c);
}

#[test]
fn aud_is_normalized_to_a_list() {
    for (aud, want) in [
        (json!("sts.amazonaws.com"), vec!["sts.amazonaws.com"]),
        (json!(["a", "b"]), vec!["a", "b"]),
        (json!([]), vec![]),
        (Value::Null, vec![]),
    ] {
        let t = decode_unverified(&token_with_claims(&json!({"aud": aud}))).unwrap();
        assert_eq!(t.claims.aud, want, "aud {aud}");
    }
    let t = decode_unverified(&token_with_claims(&json!({"sub": "x"}))).unwrap();
    assert!(t.claims.aud.is_empty());
}

#[test]
fn fractional_numeric_dates_are_truncated() {
    let t = decode_unverified(&token_with_claims(&json!({"exp": 1764000000.75}))).unwrap();
    assert_eq!(t.claims.exp, Some(1764000000));
}

#[test]
fn alg_none_decodes_for_inspection() {
    let t = decode_unverified(&token(br#"{"alg":"none"}"#, b"{}")).unwrap();
    assert_eq!(t.header.alg, "none");
}

#[test]
fn malformed_inputs_are_rejected_with_the_part_and_problem() {
    let header = br#"{"alg":"RS256"}"#;
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("empty", String::new(), &["token is empty"]),
        ("whitespace only", " \n\t".into(), &["token is empty"]),
        (
            "one segment",
            "abc".into(),
            &["1 dot-separated segment", "header.claims.signature"],
        ),
        (
            "two segments",
            "abc.def".into(),
            &["2 dot-separated segment"],
        ),
        (
            "four segments",
            "a.b.c.d".into(),
            &["4 dot-separated segment"],
        ),
        (
            "JWE (five segments)",
            "a.b.c.d.e".into(),
            &["5 dot-separated segment", "JWE"],
        ),
        (
            "bad base64 header",
            format!("@@@.{}.c2ln", b64(b"{}")),
            &["header", "base64url"],
        ),
        (
            "padded base64 claims",
            format!("{}.e30=.c2ln", b64(header)),
            &["claims", "base64url"],
        ),
        (
            "bad base64 signature",
            format!("{}.{}.c2l*", b64(header), b64(b"{}")),
            &["signature", "base64url"],
        ),
        (
            "non-JSON header",
            token(b"RS256", b"{}"),
            &["header", "not valid JSON"],
        ),
        (
            "non-JSON claims",
            token(header, b"{\"exp\":"),
            &["claims", "not valid JSON"],
        ),
        (
            "header an array",
            token(b"[]", b"{}"),
            &["header", "an array", "not a JSON object"],
        ),
        (
            "claims an array",
            token(header, b"[\"sub\"]"),
            &["claims", "an array", "not a JSON object"],
        ),
        (
            "claims a string",
            token(header, b"\"sub\""),
            &["claims", "a string", "not a JSON object"],
        ),
        (
            "header without alg",
            token(br#"{"kid":"k"}"#, b"{}"),
            &["header", "no `alg`"],
        ),
        (
            "alg a number",
            token(br#"{"alg":256}"#, b"{}"),
            &["header", "`alg`", "a string", "a number"],
        ),
        (
            "exp a string",
            token(header, br#"{"exp":"tomorrow"}"#),
            &["claims", "`exp`", "NumericDate", "a string"],
        ),
        (
            "exp out of range",
            token(header, br#"{"exp":1e300}"#),
            &["claims", "`exp`", "out of range"],
        ),
        (
            "aud an object",
            token(header, br#"{"aud":{"a":1}}"#),
            &["claims", "`aud`", "array of strings", "an object"],
        ),
        (
            "aud list with a number",
            token(header, br#"{"aud":["a",1]}"#),
            &["`aud`", "a number"],
        ),
        (
            "sub a boolean",
            token(header, br#"{"sub":true}"#),
            &["`sub`", "a string", "a boolean"],
        ),
        (
            "kubernetes.io a string",
            token(header, br#"{"kubernetes.io":"ci"}"#),
            &["`kubernetes.io`", "an object"],
        ),
        (
            "kubernetes.io pod without name",
            token(header, br#"{"kubernetes.io":{"pod":{"uid":"u"}}}"#),
            &["`kubernetes.io.pod.name`"],
        ),
        (
            "huge",
            "a".repeat(64 * 1024 + 1),
            &["65537 bytes", "65536-byte limit"],
        ),
    ];
    for (name, raw, words) in cases {
        let msg = match decode_unverified(&raw) {
            Ok(t) => panic!("{name}: decoded: {t:?}"),
            Err(e) => e.to_string(),
        };
        for w in words {
            assert!(msg.contains(w), "{name}: message lacks {w:?}: {msg}");
        }
    }
}

#[test]
fn service_account_subjects() {
    let long_ns = "n".repeat(64);
    let long_name = "n".repeat(254);
    let max_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".");
    assert_eq!(max_name.len(), 253);
    let good: [(&str, &str, &str); 4] = [
        ("system:serviceaccount:ci:builder", "ci", "builder"),
        (
            "system:serviceaccount:kube-system:aws-node",
            "kube-system",
            "aws-node",
        ),
        ("system:serviceaccount:a1:my.sa-2", "a1", "my.sa-2"),
        ("system:serviceaccount:0:9", "0", "9"),
    ];
    for (sub, ns, name) in good {
        let sa = ServiceAccountName::from_subject(sub).unwrap();
        assert_eq!((sa.namespace.as_str(), sa.name.as_str()), (ns, name));
        assert_eq!(sa.subject(), sub, "round trip");
        assert_eq!(sa.to_string(), format!("{ns}/{name}"));
    }
    let sa = ServiceAccountName::from_subject(&format!("system:serviceaccount:ci:{max_name}"));
    assert!(sa.is_ok(), "253-character name is allowed");

    let bad: Vec<(String, &[&str])> = vec![
        (
            "ci:builder".into(),
            &["does not start with \"system:serviceaccount:\""],
        ),
        ("system:serviceaccounts:ci".into(), &["does not start with"]),
        ("system:node:ip-10-0-0-1".into(), &["does not start with"]),
        ("system:serviceaccount:ci".into(), &["no \":<name>\""]),
        (
            "system:serviceaccount:ci:builder:extra".into(),
            &["more than two parts"],
        ),
        (
            "system:serviceaccount::builder".into(),
            &["namespace is empty"],
        ),
        ("system:serviceaccount:ci:".into(), &["name is empty"]),
        (
            "system:serviceaccount:CI:builder".into(),
            &["namespace contains 'C'", "lowercase"],
        ),
        (
            "system:serviceaccount:ci:Builder".into(),
            &["name contains 'B'"],
        ),
        (
            "system:serviceaccount:c.i:builder".into(),
            &["namespace contains '.'"],
        ),
        (
            "system:serviceaccount:-ci:builder".into(),
            &["namespace starts or ends with '-'"],
        ),
        (
            "system:serviceaccount:ci:a..b".into(),
            &["name has an empty dot-separated part"],
        ),
        (
            format!("system:serviceaccount:{long_ns}:builder"),
            &["namespace is 64 characters, more than 63"],
        ),
        (
            format!("system:serviceaccount:ci:{long_name}"),
            &["name is 254 characters, more than 253"],
        ),
    ];
    for (sub, words) in bad {
        let msg = ServiceAccountName::from_subject(&sub)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("`sub` {sub:?}")),
            "names the sub: {msg}"
        );
        assert!(
            msg.contains("system:serviceaccount:<namespace>:<name>"),
            "{msg}"
        );
        for w in words {
            assert!(msg.contains(w), "{sub}: message lacks {w:?}: {msg}");
        }
    }
}

#[test]
fn sub_and_kubernetes_claim_must_agree() {
    let mut claims: Value = serde_json::from_slice(EKS_CLAIMS).unwrap();
    let parse = |v: &Value| Claims::from_json(&serde_json::to_vec(v).unwrap()).unwrap();

    claims["kubernetes.io"]["namespace"] = json!("prod");
    let c = parse(&claims);
    let msg = c.check_service_account().unwrap_err().to_string();
    assert!(
        msg.contains("`sub` names ci/builder but the `kubernetes.io` claim names prod/builder"),
        "{msg}"
    );
    assert_eq!(c.service_account(), None);

    claims["kubernetes.io"]["namespace"] = json!("ci");
    claims["kubernetes.io"]["serviceaccount"]["name"] = json!("deployer");
    let msg = parse(&claims)
        .check_service_account()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("the `kubernetes.io` claim names ci/deployer"),
        "{msg}"
    );

    // Without the kubernetes.io claim (another issuer), sub alone decides.
    claims.as_object_mut().unwrap().remove("kubernetes.io");
    assert_eq!(
        parse(&claims).service_account().unwrap().to_string(),
        "ci/builder"
    );

    // Without sub there is no service account, and that is not an error.
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(parse(&claims).check_service_account(), Ok(None));

    // A sub that is not a service account is an error for check_service_account.
    claims["sub"] = json!("repo:org/app:ref:refs/heads/main");
    let c = parse(&claims);
    assert!(matches!(
        c.check_service_account(),
        Err(TokenError::Subject { .. })
    ));
    assert_eq!(c.service_account(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decode_unverified_never_panics(s in "\\PC{0,300}") {
        let _ = decode_unverified(&s);
    }

    #[test]
    fn decode_unverified_never_panics_on_three_segments(
        h in "[A-Za-z0-9_-]{0,60}", c in "[A-Za-z0-9_-]{0,120}", sig in "[A-Za-z0-9_.-]{0,40}",
    ) {
        let _ = decode_unverified(&format!("{h}.{c}.{sig}"));
    }

    #[test]
    fn decode_unverified_never_panics_on_arbitrary_json(claims in "[ -~]{0,200}") {
        let _ = decode_unverified(&token(br#"{"alg":"RS256"}"#, claims.as_bytes()));
    }

    #[test]
    fn subject_round_trips(ns in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name in "[a-z0-9]([a-z0-9.-]{0,40}[a-z0-9])?") {
        prop_assume!(!name.contains(".."));
        prop_assume!(!name.contains(".-") && !name.contains("-."));
        let sa = ServiceAccountName::from_subject(&format!("system:serviceaccount:{ns}:{name}")).unwrap();
        prop_assert_eq!(ServiceAccountName::from_subject(&sa.subject()).unwrap(), sa);
    }
}
