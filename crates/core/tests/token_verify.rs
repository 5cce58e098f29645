//! `verify` and `check_claims` against the committed test keys, with tokens signed at test time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use irsa_core::token::{
    DEFAULT_LEEWAY_SECONDS, Expectations, Jwks, TokenError, check_claims, decode_unverified, verify,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const NOW: i64 = 1_764_000_000;
const ISSUER: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const STS: &str = "sts.amazonaws.com";

const RSA_DER: &[u8] = include_bytes!("fixtures/test-rsa.pkcs1.der");
const EC_DER: &[u8] = include_bytes!("fixtures/test-ec.pkcs8.der");
const OTHER_RSA_DER: &[u8] = include_bytes!("fixtures/other-rsa.pkcs1.der");
const JWKS: &[u8] = include_bytes!("fixtures/jwks.json");
const JWKS_OTHER: &[u8] = include_bytes!("fixtures/jwks-other.json");

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_DER)
}
fn ec() -> EncodingKey {
    EncodingKey::from_ec_der(EC_DER)
}

/// Signs `claims` the way the kube-apiserver does: compact JWS with `alg` and `kid`.
fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign test token")
}

/// A token with any header, unsigned (empty signature unless given).
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", enc(header), enc(claims))
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "system:serviceaccount:ci:builder",
        "aud": [STS],
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "u-1"}},
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn jwks() -> Jwks {
    Jwks::parse(JWKS).expect("fixtures/jwks.json parses")
}

/// The same keys without their `alg` member, so that every RSA / EC algorithm may use them.
fn jwks_without_alg() -> Jwks {
    let mut doc: Value = serde_json::from_slice(JWKS).unwrap();
    for key in doc["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
    }
    Jwks::parse(&serde_json::to_vec(&doc).unwrap()).unwrap()
}

fn only_key(kid: &str) -> Jwks {
    let mut doc: Value = serde_json::from_slice(JWKS).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] == kid);
    Jwks::parse(&serde_json::to_vec(&doc).unwrap()).unwrap()
}

fn expect() -> Expectations {
    Expectations::new(NOW)
        .with_issuer(ISSUER)
        .with_audience(STS)
}

/// Replaces the first character of a segment with another valid base64url character.
fn flip_first(segment: &str) -> String {
    let first = if segment.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &segment[1..])
}

struct Case {
    name: &'static str,
    token: String,
    jwks: Jwks,
    expect: Expectations,
    /// `None`: must verify. `Some(words)`: must fail with a message containing every word.
    error: Option<&'static [&'static str]>,
}

fn ok(name: &'static str, token: String) -> Case {
    Case {
        name,
        token,
        jwks: jwks(),
        expect: expect(),
        error: None,
    }
}

fn err(name: &'static str, token: String, words: &'static [&'static str]) -> Case {
    Case {
        name,
        token,
        jwks: jwks(),
        expect: expect(),
        error: Some(words),
    }
}

fn cases() -> Vec<Case> {
    let rs = |c: &Value| sign(Algorithm::RS256, &rsa(), Some("test-rsa"), c);
    let valid = rs(&claims());
    let segs: Vec<&str> = valid.split('.').collect();
    let leeway = DEFAULT_LEEWAY_SECONDS;

    let tampered_payload = {
        let evil = with(
            claims(),
            "sub",
            json!("system:serviceaccount:kube-system:admin"),
        );
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        format!("{}.{body}.{}", segs[0], segs[2])
    };
    let tampered_signature = format!("{}.{}.{}", segs[0], segs[1], flip_first(segs[2]));

    vec![
        ok("RS256 valid", valid.clone()),
        ok(
            "ES256 valid",
            sign(Algorithm::ES256, &ec(), Some("test-ec"), &claims()),
        ),
        ok("token file with trailing newline", format!("{valid}\n")),
        Case {
            jwks: jwks_without_alg(),
            ..ok(
                "RS384 valid (key without alg)",
                sign(Algorithm::RS384, &rsa(), Some("test-rsa"), &claims()),
            )
        },
        Case {
            jwks: jwks_without_alg(),
            ..ok(
                "RS512 valid (key without alg)",
                sign(Algorithm::RS512, &rsa(), Some("test-rsa"), &claims()),
            )
        },
        Case {
            jwks: jwks_without_alg(),
            ..ok(
                "PS256 valid (key without alg)",
                sign(Algorithm::PS256, &rsa(), Some("test-rsa"), &claims()),
            )
        },
        Case {
            jwks: only_key("test-rsa"),
            ..ok(
                "no kid, JWKS with one key",
                sign(Algorithm::RS256, &rsa(), None, &claims()),
            )
        },
        err(
            "no kid, JWKS with two keys",
            sign(Algorithm::RS256, &rsa(), None, &claims()),
            &["no kid", "2 keys"],
        ),
        Case {
            jwks: Jwks::parse(JWKS_OTHER).unwrap(),
            ..err(
                "wrong key under the same kid",
                valid.clone(),
                &["signature does not verify", "\"test-rsa\"", "RS256"],
            )
        },
        err(
            "signed by a key the JWKS does not hold",
            sign(
                Algorithm::RS256,
                &EncodingKey::from_rsa_der(OTHER_RSA_DER),
                Some("test-rsa"),
                &claims(),
            ),
            &["signature does not verify"],
        ),
        err(
            "kid not in JWKS",
            sign(Algorithm::RS256, &rsa(), Some("rotated-away"), &claims()),
            &[
                "kid \"rotated-away\"",
                "not in the JWKS",
                "test-rsa",
                "test-ec",
            ],
        ),
        err(
            "alg none",
            forge(&json!({"alg": "none", "kid": "test-rsa"}), &claims(), ""),
            &["alg", "\"none\"", "unsigned"],
        ),
        err(
            "alg NONE (case variant)",
            forge(&json!({"alg": "NONE"}), &claims(), ""),
            &["alg", "\"none\""],
        ),
        err(
            "HS256 signed with the RSA public key bytes",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(JWKS),
                Some("test-rsa"),
                &claims(),
            ),
            &["alg HS256", "HMAC", "public keys"],
        ),
        err(
            "EdDSA unsupported",
            forge(
                &json!({"alg": "EdDSA", "kid": "test-rsa"}),
                &claims(),
                "AAAA",
            ),
            &["alg \"EdDSA\"", "not supported", "RS256"],
        ),
        err(
            "ES256 header pointing at the RSA key",
            sign(Algorithm::ES256, &ec(), Some("test-rsa"), &claims()),
            &["key \"test-rsa\"", "ES256", "RSA key", "EC key"],
        ),
        err(
            "RS384 against a key whose alg is RS256",
            sign(Algorithm::RS384, &rsa(), Some("test-rsa"), &claims()),
            &["key \"test-rsa\"", "RS384", "RS256"],
        ),
        err(
            "crit header",
            forge(
                &json!({"alg": "RS256", "kid": "test-rsa", "crit": ["exp"]}),
                &claims(),
                "AAAA",
            ),
            &["header", "crit"],
        ),
        err(
            "tampered payload",
            tampered_payload,
            &["signature does not verify", "altered"],
        ),
        err(
            "tampered signature",
            tampered_signature,
            &["signature does not verify", "altered"],
        ),
        err(
            "expired just beyond leeway",
            rs(&with(claims(), "exp", json!(NOW - leeway - 1))),
            &["`exp`", "in the past", "leeway 60s", "1m 1s"],
        ),
        ok(
            "expired just within leeway",
            rs(&with(claims(), "exp", json!(NOW - leeway))),
        ),
        err(
            "nbf in the future",
            rs(&with(claims(), "nbf", json!(NOW + leeway + 1))),
            &["`nbf`", "in the future", "not valid yet"],
        ),
        ok(
            "nbf just within leeway",
            rs(&with(claims(), "nbf", json!(NOW + leeway))),
        ),
        err(
            "iat in the future",
            rs(&with(claims(), "iat", json!(NOW + leeway + 1))),
            &["`iat`", "in the future", "clocks"],
        ),
        err(
            "iss mismatch",
            rs(&with(
                claims(),
                "iss",
                json!("https://kubernetes.default.svc"),
            )),
            &[
                "`iss` \"https://kubernetes.default.svc\"",
                "does not match",
                ISSUER,
            ],
        ),
        err(
            "iss differs by a trailing slash",
            rs(&with(claims(), "iss", json!(format!("{ISSUER}/")))),
            &["`iss`", "does not match", "only by a trailing '/'"],
        ),
        err(
            "iss missing",
            rs(&without(claims(), "iss")),
            &["no `iss`", ISSUER],
        ),
        ok("aud as a string", rs(&with(claims(), "aud", json!(STS)))),
        ok(
            "aud list with the expected audience second",
            rs(&with(
                claims(),
                "aud",
                json!(["https://kubernetes.default.svc", STS]),
            )),
        ),
        err(
            "aud string not expected",
            rs(&with(claims(), "aud", json!("api"))),
            &[
                "audience [\"api\"] does not include \"sts.amazonaws.com\"",
                "serviceAccountToken.audience",
            ],
        ),
        err(
            "aud missing",
            rs(&without(claims(), "aud")),
            &["no `aud`", "\"sts.amazonaws.com\""],
        ),
        err(
            "exp missing",
            rs(&without(claims(), "exp")),
            &["no `exp`", "STS"],
        ),
        err(
            "claims is an array",
            forge(
                &json!({"alg": "RS256", "kid": "test-rsa"}),
                &json!([1, 2]),
                "AAAA",
            ),
            &["claims", "an array", "not a JSON object"],
        ),
        err(
            "one segment",
            "eyJhbGciOiJSUzI1NiJ9".into(),
            &["1 dot-separated segment", "3"],
        ),
        err(
            "four segments",
            format!("{valid}.AAAA"),
            &["4 dot-separated segment"],
        ),
        err(
            "bad base64 in the claims",
            format!("{}.!!not-base64!!.{}", segs[0], segs[2]),
            &["claims", "not valid base64url"],
        ),
        err(
            "bad base64 in the signature",
            format!("{}.{}.abc$", segs[0], segs[1]),
            &["signature", "not valid base64url"],
        ),
        err(
            "non-JSON header",
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                segs[1],
                segs[2]
            ),
            &["header", "not valid JSON"],
        ),
        err(
            "huge token",
            format!("{}.{}.{}", segs[0], "A".repeat(70_000), segs[2]),
            &["bytes", "65536-byte limit"],
        ),
        err("empty", "  \n".into(), &["empty"]),
    ]
}

#[test]
fn verify_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = verify(&case.token, &case.jwks, &case.expect);
        match (&case.error, got) {
            (None, Ok(verified)) => {
                assert_eq!(
                    verified.claims.sub.as_deref(),
                    Some("system:serviceaccount:ci:builder")
                );
                assert!(!verified.key_id.is_empty(), "{}: key id", case.name);
            }
            (None, Err(e)) => failures.push(format!("{}: expected Ok, got: {e}", case.name)),
            (Some(_), Ok(_)) => failures.push(format!("{}: expected an error, got Ok", case.name)),
            (Some(words), Err(e)) => {
                let msg = e.to_string();
                for w in *words {
                    if !msg.contains(w) {
                        failures.push(format!("{}: message lacks {w:?}: {msg}", case.name));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn no_error_output_contains_the_token_or_its_segments() {
    for case in cases().into_iter().filter(|c| c.error.is_some()) {
        let e = verify(&case.token, &case.jwks, &case.expect).unwrap_err();
        let shown = format!("{e}\n{e:?}\n{e:#?}");
        let token = case.token.trim();
        if token.len() >= 16 {
            assert!(!shown.contains(token), "{}: token leaked", case.name);
        }
        for segment in token.split('.').filter(|s| s.len() >= 16) {
            assert!(
                !shown.contains(segment),
                "{}: a token segment leaked: {shown}",
                case.name
            );
        }
    }
    // The successful path: the verified token's Debug carries claims, never the signature.
    let token = sign(Algorithm::RS256, &rsa(), Some("test-rsa"), &claims());
    let verified = verify(&token, &jwks(), &expect()).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!format!("{verified:?}").contains(signature));
    assert!(!format!("{:?}", decode_unverified(&token).unwrap()).contains(signature));
}

#[test]
fn check_claims_reports_every_problem() {
    let token = sign(
        Algorithm::RS256,
        &rsa(),
        Some("test-rsa"),
        &json!({"iss": "https://other", "aud": "api", "exp": NOW - 3600, "iat": NOW + 3600}),
    );
    let claims = decode_unverified(&token).unwrap().claims;
    let problems = check_claims(&claims, &expect());
    let kinds: Vec<&str> = problems
        .iter()
        .map(|p| match p {
            TokenError::IssuerMismatch { .. } => "iss",
            TokenError::AudienceMismatch { .. } => "aud",
            TokenError::Expired { .. } => "exp",
            TokenError::IssuedInFuture { .. } => "iat",
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(kinds, ["iss", "aud", "exp", "iat"]);
    // verify reports the first of them.
    let first = verify(&token, &jwks(), &expect()).unwrap_err();
    assert!(
        matches!(first, TokenError::IssuerMismatch { .. }),
        "{first}"
    );
}

#[test]
fn check_claims_skips_what_is_not_expected() {
    let token = sign(
        Algorithm::RS256,
        &rsa(),
        Some("test-rsa"),
        &json!({"iss": "https://other", "aud": "api", "exp": NOW + 10}),
    );
    let claims = decode_unverified(&token).unwrap().claims;
    assert!(check_claims(&claims, &Expectations::new(NOW)).is_empty());
    let any_of = Expectations::new(NOW)
        .with_audience(STS)
        .with_audience("api");
    assert!(check_claims(&claims, &any_of).is_empty());
    let neither = Expectations::new(NOW)
        .with_audience(STS)
        .with_audience("vault");
    let msg = check_claims(&claims, &neither)[0].to_string();
    assert!(
        msg.contains("does not include any of [\"sts.amazonaws.com\", \"vault\"]"),
        "{msg}"
    );
}

#[test]
fn signature_failures_come_before_claim_failures() {
    let expired = with(claims(), "exp", json!(NOW - 3600));
    let token = sign(Algorithm::RS256, &rsa(), Some("test-rsa"), &expired);
    let e = verify(&token, &Jwks::parse(JWKS_OTHER).unwrap(), &expect()).unwrap_err();
    assert!(matches!(e, TokenError::BadSignature { .. }), "{e}");
}

#[test]
fn extreme_times_do_not_overflow() {
    let token = sign(
        Algorithm::RS256,
        &rsa(),
        Some("test-rsa"),
        &json!({"exp": i64::MAX, "nbf": i64::MIN, "iat": i64::MIN}),
    );
    let claims = decode_unverified(&token).unwrap().claims;
    assert!(check_claims(&claims, &Expectations::new(i64::MAX)).is_empty());
    assert_eq!(check_claims(&claims, &Expectations::new(i64::MIN)).len(), 0);
}

#[test]
fn jwks_fixture_lists_both_keys() {
    let jwks = jwks();
    assert_eq!(jwks.len(), 2);
    assert_eq!(jwks.key_ids(), ["test-rsa", "test-ec"]);
    assert_eq!(
        format!("{jwks:?}"),
        r#"Jwks { key_ids: ["test-rsa", "test-ec"] }"#
    );
}

#[test]
fn jwks_parse_errors_say_what_to_fetch() {
    for (doc, words) in [
        (
            &b"not json"[..],
            &["JWKS", "not a valid JSON Web Key Set", "jwks_uri"][..],
        ),
        (br#"{"kid": "x"}"#, &["JWKS", "keys"]),
        (br#"{"keys": []}"#, &["JWKS has no keys"]),
    ] {
        let msg = Jwks::parse(doc).unwrap_err().to_string();
        for w in words {
            assert!(msg.contains(w), "{msg} lacks {w}");
        }
    }
}
