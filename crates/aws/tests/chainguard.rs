//! A Chainguard exchange double that checks what Chainguard's verifier checks, and the client
//! passing it: one copy of each binding header, POST, host sts.amazonaws.com, the binding
//! headers signed, audience, identity equal to the query parameter, signing date no older than
//! 15 minutes and no more than 5 minutes ahead, and a valid signature (re-signed here with the
//! known test secret).

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use irsa_aws::{
    Env, Identity, ManualClock, Pipeline, PipelineOptions, RegistryTarget, RetryPolicy,
    StaticTokenSource,
};
use irsa_core::secret::SecretString;
use support::{Double, Recorded, Reply, assert_logs_free_of, capture_logs, fake_jwt, sts_success};

const SECRET: &str = "chainguard-test-secret-key";
const SESSION: &str = "chainguard-test-session-token";
const IDENTITY: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";
const CG_TOKEN_MARK: &str = "cgr-registry-token-SECRET";

/// What Chainguard's verifier checks, on the decoded proof.
fn verify(
    proof: &str,
    query_identity: &str,
    audience: &str,
    now: SystemTime,
) -> Result<(), String> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(proof)
        .map_err(|e| format!("not padded base64url: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "not text")?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !body.is_empty() {
        return Err("body is not empty".into());
    }
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or("no request line")?;
    let parts: Vec<&str> = request_line.split(' ').collect();
    if parts.len() != 3 || parts[2] != "HTTP/1.1" {
        return Err(format!("bad request line {request_line:?}"));
    }
    if parts[0] != "POST" {
        return Err(format!("method {} is not POST", parts[0]));
    }
    if parts[1] != "/?Action=GetCallerIdentity&Version=2011-06-15" {
        return Err(format!("path {} is not GetCallerIdentity", parts[1]));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(": ").ok_or("bad header line")?;
        let name = name.to_ascii_lowercase();
        if headers.iter().any(|(n, _)| *n == name) {
            return Err(format!("header {name} appears more than once"));
        }
        headers.push((name, value.to_owned()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if get("host") != Some("sts.amazonaws.com") {
        return Err(format!("host is {:?}", get("host")));
    }
    if get("chainguard-audience") != Some(audience) {
        return Err(format!("audience is {:?}", get("chainguard-audience")));
    }
    if get("chainguard-identity") != Some(query_identity) {
        return Err("identity header differs from the identity parameter".into());
    }
    let amz_date = get("x-amz-date").ok_or("no x-amz-date")?;
    let signed_at = parse_amz_date(amz_date)?;
    if signed_at + Duration::from_secs(15 * 60) < now {
        return Err("signature is older than 15 minutes".into());
    }
    if signed_at > now + Duration::from_secs(5 * 60) {
        return Err("signature is more than 5 minutes in the future".into());
    }
    let auth = get("authorization").ok_or("no authorization")?;
    let field = |key: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.strip_prefix(key))
            .ok_or(format!("authorization has no {key}"))
    };
    let credential = field("Credential=")?;
    let signed_headers: Vec<&str> = field("SignedHeaders=")?.split(';').collect();
    let signature = field("Signature=")?;
    if !credential.ends_with("/us-east-1/sts/aws4_request") {
        return Err(format!("credential scope {credential}"));
    }
    for required in [
        "host",
        "accept",
        "chainguard-audience",
        "chainguard-identity",
        "x-amz-date",
    ] {
        if !signed_headers.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    // Re-sign with the known secret: the signature must match.
    let access_key = credential.split('/').next().unwrap();
    let token = get("x-amz-security-token").map(str::to_owned);
    let identity =
        aws_credential_types::Credentials::new(access_key, SECRET, token, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(signed_at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let to_sign: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| signed_headers.contains(&n.as_str()))
        .filter(|(n, _)| n != "x-amz-date" && n != "x-amz-security-token")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        to_sign.into_iter(),
        SignableBody::Bytes(b""),
    )
    .unwrap();
    let (_, expected) = sign(signable, &params).unwrap().into_parts();
    if expected != signature {
        return Err("signature does not match".into());
    }
    Ok(())
}

fn parse_amz_date(s: &str) -> Result<SystemTime, String> {
    use aws_smithy_types::date_time::{DateTime, Format};
    if s.len() != 16 {
        return Err(format!("bad x-amz-date {s}"));
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    DateTime::from_str(&iso, Format::DateTime)
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
        .ok_or(format!("bad x-amz-date {s}"))
}

fn query_param(uri: &str, key: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%2F", "/"))
    })
}

/// The double: STS for the pipeline's web identity, and Chainguard's `/sts/exchange`.
/// The issuer's `expiry`: an hour after the first use, as a real issuer says (an expiry years
/// away is refused as absurd).
fn expiry_secs() -> u64 {
    static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    })
}

fn expiry_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| irsa_core::time::rfc3339(expiry_secs() as i64))
}

/// The token's own `exp`, distinct from `expiry` so that the fallback is visible.
fn jwt_exp() -> u64 {
    expiry_secs() + 600
}

async fn double(expiry: Option<&'static str>, fail_first: usize) -> Double {
    let audience: Arc<std::sync::OnceLock<String>> = Arc::default();
    let aud = audience.clone();
    let d = Double::start(move |req: &Recorded, index| {
        if !req.uri.starts_with("/sts/exchange") {
            return sts_success("ASIACHAINGUARD", SECRET, SESSION, "2099-01-01T00:00:00Z");
        }
        if index <= fail_first {
            return Reply::json(503, r#"{"code":"unavailable","message":"try again"}"#);
        }
        assert_eq!(req.method, "POST");
        assert_eq!(query_param(&req.uri, "aud").as_deref(), Some("cgr.dev"));
        let identity = query_param(&req.uri, "identity").unwrap_or_default();
        let bearer = req.headers["authorization"].to_str().unwrap();
        let proof = bearer.strip_prefix("Bearer ").unwrap();
        match verify(proof, &identity, aud.get().unwrap(), SystemTime::now()) {
            Ok(()) => {
                let jwt = fake_jwt(CG_TOKEN_MARK, "cgr.dev", jwt_exp() as i64);
                let body = match expiry {
                    Some(e) => format!(r#"{{"token":"{jwt}","expiry":"{e}"}}"#),
                    None => format!(r#"{{"token":"{jwt}"}}"#),
                };
                Reply::json(200, body)
            }
            Err(reason) => Reply::json(
                401,
                format!(r#"{{"code":"unauthenticated","message":"{reason}"}}"#),
            ),
        }
    })
    .await;
    audience.set(d.url.clone()).unwrap();
    d
}

async fn pipeline(url: &str, clock_skew: Option<(bool, Duration)>) -> Pipeline {
    let mut options = PipelineOptions {
        env: Env::from_pairs([("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", url)]),
        chainguard_issuer: url.to_owned(),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            attempt_timeout: Duration::from_secs(5),
        },
        ..PipelineOptions::default()
    };
    if let Some((ahead, by)) = clock_skew {
        let now = SystemTime::now();
        options.clock = Arc::new(ManualClock::new(if ahead { now + by } else { now - by }));
    }
    Pipeline::new(options).await.unwrap()
}

fn identity() -> Identity {
    Identity::WebIdentity {
        role_arn: "arn:aws:iam::123456789012:role/cg".parse().unwrap(),
        token_source: Arc::new(StaticTokenSource::new(
            SecretString::from(fake_jwt(
                "system:serviceaccount:a:b",
                "sts.amazonaws.com",
                4_000_000_000,
            )),
            "cg",
        )),
        session_name: irsa_aws::sts::session_name_for("a", "b"),
        session_duration: None,
    }
}

fn cgr() -> Vec<RegistryTarget> {
    vec![RegistryTarget::parse("cgr.dev/chainguard/static:latest", Some(IDENTITY)).unwrap()]
}

#[tokio::test]
async fn client_passes_the_verifier_and_gets_a_token() {
    capture_logs();
    let d = double(Some(expiry_text()), 0).await;
    let p = pipeline(&d.url, None).await;
    let c = p.registry_credentials(&identity(), &cgr()).await.unwrap();
    assert_eq!(
        (c[0].registry.as_str(), c[0].username.as_str()),
        ("cgr.dev", "_token")
    );
    assert!(c[0].password.expose().contains('.'), "a JWT");
    assert_eq!(
        c[0].expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(expiry_secs()))
    );
    // Cached: a second call exchanges nothing.
    let before = d.count();
    p.registry_credentials(&identity(), &cgr()).await.unwrap();
    assert_eq!(d.count(), before);
    let proof = d
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.uri.starts_with("/sts/exchange"))
        .unwrap()
        .headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_logs_free_of(&[
        c[0].password.expose(),
        SECRET,
        SESSION,
        proof.trim_start_matches("Bearer "),
    ]);
}

#[tokio::test]
async fn lifetime_falls_back_to_the_jwt_exp_and_5xx_is_retried() {
    let d = double(None, 1).await; // index 0 is STS, index 1 the first exchange: 503
    let p = pipeline(&d.url, None).await;
    let c = p.registry_credentials(&identity(), &cgr()).await.unwrap();
    assert_eq!(
        c[0].expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(jwt_exp()))
    );
    assert_eq!(
        d.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri.starts_with("/sts/exchange"))
            .count(),
        2
    );
}

#[tokio::test]
async fn stale_or_future_signatures_are_refused_with_a_clear_error() {
    for (ahead, by, reason) in [
        (false, Duration::from_secs(16 * 60), "older than 15 minutes"),
        (
            true,
            Duration::from_secs(6 * 60),
            "more than 5 minutes in the future",
        ),
    ] {
        let d = double(Some(expiry_text()), 0).await;
        let p = pipeline(&d.url, Some((ahead, by))).await;
        let msg = p
            .registry_credentials(&identity(), &cgr())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("refused the exchange") && msg.contains(reason),
            "{msg}"
        );
        assert!(msg.contains("aws_identity"), "{msg}");
    }
    // Within the window on both sides.
    for (ahead, by) in [
        (false, Duration::from_secs(14 * 60)),
        (true, Duration::from_secs(4 * 60)),
    ] {
        let d = double(Some(expiry_text()), 0).await;
        let p = pipeline(&d.url, Some((ahead, by))).await;
        p.registry_credentials(&identity(), &cgr()).await.unwrap();
    }
}

#[test]
fn the_verifier_rejects_tampering() {
    let creds = irsa_aws::AwsCredentials {
        access_key_id: "ASIATEST".into(),
        secret_access_key: SECRET.into(),
        session_token: Some(SESSION.into()),
        expires_at: None,
    };
    let now = SystemTime::now();
    let aud = "https://issuer.enforce.dev";
    let proof = irsa_aws::chainguard::caller_identity_proof(&creds, aud, IDENTITY, now).unwrap();
    let proof = proof.expose();
    verify(proof, IDENTITY, aud, now).unwrap();
    assert!(
        verify(proof, "other/identity", aud, now)
            .unwrap_err()
            .contains("identity")
    );
    assert!(
        verify(proof, IDENTITY, "https://evil.example", now)
            .unwrap_err()
            .contains("audience")
    );
    let decode = |p: &str| {
        String::from_utf8(base64::engine::general_purpose::URL_SAFE.decode(p).unwrap()).unwrap()
    };
    let encode = |t: &str| base64::engine::general_purpose::URL_SAFE.encode(t);
    let text = decode(proof);
    let tampered = encode(&text.replace("Accept: application/json", "Accept: text/plain"));
    assert_eq!(
        verify(&tampered, IDENTITY, aud, now).unwrap_err(),
        "signature does not match"
    );
    let doubled = encode(&text.replacen(
        "Host: sts.amazonaws.com\r\n",
        "Host: sts.amazonaws.com\r\nHost: evil\r\n",
        1,
    ));
    assert!(
        verify(&doubled, IDENTITY, aud, now)
            .unwrap_err()
            .contains("more than once")
    );
    let get = encode(&text.replacen("POST ", "GET ", 1));
    assert!(
        verify(&get, IDENTITY, aud, now)
            .unwrap_err()
            .contains("not POST")
    );
    let wrong_secret = irsa_aws::AwsCredentials {
        secret_access_key: "other".into(),
        ..creds
    };
    let forged =
        irsa_aws::chainguard::caller_identity_proof(&wrong_secret, aud, IDENTITY, now).unwrap();
    assert_eq!(
        verify(forged.expose(), IDENTITY, aud, now).unwrap_err(),
        "signature does not match"
    );
    // base64url with padding, as Chainguard decodes it.
    assert_eq!(proof.len() % 4, 0);
    assert!(!proof.contains(['+', '/']));
}

#[tokio::test]
async fn one_exchange_per_chainguard_identity_and_each_caller_gets_its_own() {
    let d = double(Some(expiry_text()), 0).await;
    let p = pipeline(&d.url, None).await;
    let targets = vec![
        RegistryTarget::parse("cgr.dev/org-a/app", Some("org-a/identity-1")).unwrap(),
        RegistryTarget::parse("cgr.dev/org-b/app", Some("org-b/identity-2")).unwrap(),
        RegistryTarget::parse("cgr.dev/org-a/other", Some("org-a/identity-1")).unwrap(),
    ];
    let c = p.registry_credentials(&identity(), &targets).await.unwrap();
    assert_eq!(c.len(), 3);
    let exchanges: Vec<String> = d
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.uri.starts_with("/sts/exchange"))
        .map(|r| query_param(&r.uri, "identity").unwrap())
        .collect();
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    assert!(exchanges.contains(&"org-a/identity-1".to_owned()));
    assert!(exchanges.contains(&"org-b/identity-2".to_owned()));
    assert_eq!(c[0].password, c[2].password);
}

/// An issuer that echoes the bearer in its refusals: once in a 4xx JSON `message`, once in a
/// 5xx plain-text body with the bearer straddling the 200-character cut.
async fn echoing_issuer(status: u16, json: bool) -> Double {
    Double::start(move |req: &Recorded, _| {
        if !req.uri.starts_with("/sts/exchange") {
            return sts_success("ASIACHAINGUARD", SECRET, SESSION, "2099-01-01T00:00:00Z");
        }
        let bearer = req.headers["authorization"].to_str().unwrap();
        let bearer = bearer.trim_start_matches("Bearer ");
        if json {
            Reply::json(
                status,
                format!(r#"{{"code":"unauthenticated","message":"cannot verify {bearer}"}}"#),
            )
        } else {
            Reply::json(status, format!("{} {bearer}", "x".repeat(150)))
        }
    })
    .await
}

#[tokio::test]
async fn an_issuer_echoing_the_proof_never_gets_it_into_the_error_or_logs() {
    capture_logs();
    for (status, json) in [(401, true), (503, false), (401, false), (503, true)] {
        let d = echoing_issuer(status, json).await;
        let p = pipeline(&d.url, None).await;
        let msg = p
            .registry_credentials(&identity(), &cgr())
            .await
            .unwrap_err()
            .to_string();
        let proof = d
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.uri.starts_with("/sts/exchange"))
            .unwrap()
            .headers["authorization"]
            .to_str()
            .unwrap()
            .trim_start_matches("Bearer ")
            .to_owned();
        // Not the proof, nor any 24-character piece of it (a cut proof is still a credential).
        let pieces: Vec<&str> = (0..proof.len() - 24)
            .step_by(8)
            .map(|i| &proof[i..i + 24])
            .collect();
        assert!(
            !pieces.iter().any(|p| msg.contains(p)),
            "HTTP {status} (json {json}): the proof leaked into: {msg}"
        );
        assert!(msg.contains("[redacted]"), "{msg}");
        assert_logs_free_of(&pieces);
    }
}

const OUTBOUND_JWT_SUB: &str = "arn:aws:iam::123456789012:role/cg";

fn form_value(body: &str, key: &str) -> Option<String> {
    let decode = |v: &str| {
        let bytes = v.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (decode(k) == key).then(|| decode(v))
    })
}

/// STS that also answers `GetWebIdentityToken` (a JWT whose `aud` is the asked audience), and
/// an exchange that accepts exactly that JWT as the bearer.
async fn outbound_double() -> Double {
    Double::start(move |req: &Recorded, _| {
        if req.uri.starts_with("/sts/exchange") {
            let bearer = req.headers["authorization"].to_str().unwrap();
            let bearer = bearer.trim_start_matches("Bearer ");
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("outbound-SIG");
            return if bearer.split('.').count() == 3 && bearer.ends_with(&sig) {
                let jwt = fake_jwt(CG_TOKEN_MARK, "cgr.dev", jwt_exp() as i64);
                Reply::json(200, format!(r#"{{"token":"{jwt}"}}"#))
            } else {
                Reply::json(401, r#"{"message":"not an outbound token"}"#)
            };
        }
        if form_value(&req.body, "Action").as_deref() == Some("GetWebIdentityToken") {
            let aud = form_value(&req.body, "Audience.member.1").unwrap_or_default();
            let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let jwt = format!(
                "{}.{}.{}",
                b64(r#"{"alg":"RS256","kid":"o1"}"#),
                b64(&format!(
                    r#"{{"iss":"https://x.tokens.sts.global.api.aws","sub":"{OUTBOUND_JWT_SUB}","aud":"{aud}","exp":{}}}"#,
                    jwt_exp()
                )),
                b64("outbound-SIG")
            );
            return Reply::xml(
                200,
                format!(
                    "<GetWebIdentityTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                     <GetWebIdentityTokenResult><WebIdentityToken>{jwt}</WebIdentityToken>\
                     <Expiration>2099-01-01T00:00:00Z</Expiration></GetWebIdentityTokenResult>\
                     <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>\
                     </GetWebIdentityTokenResponse>"
                ),
            );
        }
        sts_success("ASIACHAINGUARD", SECRET, SESSION, "2099-01-01T00:00:00Z")
    })
    .await
}

fn cgr_by_jwt() -> Vec<RegistryTarget> {
    vec![
        RegistryTarget::parse("cgr.dev/chainguard/static:latest", Some(IDENTITY))
            .unwrap()
            .with_chainguard_method(irsa_aws::ChainguardMethod::WebIdentityToken),
    ]
}

async fn pipeline_with_issuer(sts_url: &str, issuer: &str) -> Pipeline {
    Pipeline::new(PipelineOptions {
        env: Env::from_pairs([("AWS_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", sts_url)]),
        chainguard_issuer: issuer.to_owned(),
        retry: RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            attempt_timeout: Duration::from_secs(5),
        },
        ..PipelineOptions::default()
    })
    .await
    .unwrap()
}

fn web_identity_token_calls(d: &Double) -> Vec<Recorded> {
    d.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| form_value(&r.body, "Action").as_deref() == Some("GetWebIdentityToken"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn web_identity_method_sends_an_outbound_jwt_for_the_issuer_it_calls() {
    capture_logs();
    let d = outbound_double().await;
    let p = pipeline_with_issuer(&d.url, &d.url).await;
    let c = p
        .registry_credentials(&identity(), &cgr_by_jwt())
        .await
        .unwrap();
    assert_eq!(c[0].username, "_token");
    let calls = web_identity_token_calls(&d);
    assert_eq!(calls.len(), 1);
    let body = &calls[0].body;
    // The audience is the issuer actually called, never a fixed issuer.enforce.dev.
    assert_eq!(
        form_value(body, "Audience.member.1").as_deref(),
        Some(d.url.as_str())
    );
    assert_eq!(
        form_value(body, "SigningAlgorithm").as_deref(),
        Some("RS256")
    );
    assert_eq!(form_value(body, "DurationSeconds").as_deref(), Some("300"));
    assert!(
        calls[0].headers["authorization"]
            .to_str()
            .unwrap()
            .contains("/eu-west-1/sts/aws4_request"),
        "signed with the session, for the regional endpoint"
    );
    let jwt = d
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.uri.starts_with("/sts/exchange"))
        .unwrap()
        .headers["authorization"]
        .to_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    assert_logs_free_of(&[&jwt, c[0].password.expose(), SECRET, SESSION]);
}

#[tokio::test]
async fn an_overridden_issuer_gets_a_token_only_it_accepts() {
    let d = outbound_double().await;
    // An https issuer other than Chainguard's: the JWT must name it (the exchange then fails
    // to connect, which does not matter here).
    let issuer = "https://issuer.example.invalid";
    let p = pipeline_with_issuer(&d.url, issuer).await;
    let _ = p.registry_credentials(&identity(), &cgr_by_jwt()).await;
    let calls = web_identity_token_calls(&d);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        form_value(&calls[0].body, "Audience.member.1").as_deref(),
        Some(issuer)
    );
}

#[tokio::test]
async fn a_clear_text_issuer_off_loopback_never_gets_a_web_identity_token() {
    let d = outbound_double().await;
    for issuer in ["http://issuer.example.test", "http://10.0.0.1:8080"] {
        let p = pipeline_with_issuer(&d.url, issuer).await;
        let msg = p
            .registry_credentials(&identity(), &cgr_by_jwt())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("refusing to send an AWS web-identity token") && msg.contains(issuer),
            "{msg}"
        );
    }
    assert!(web_identity_token_calls(&d).is_empty());
    // The proof method is unchanged for such an issuer (its proof names the issuer).
}
