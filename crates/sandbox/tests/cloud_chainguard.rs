//! Chainguard's token exchange: a correctly signed GetCallerIdentity proof passes; each
//! violated rule fails with the right status.

mod common_cloud;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common_cloud::*;
use irsa_sandbox::cloud::sigv4::{RequestParts, sign_request};
use serde_json::Value;

const PATH: &str = "/?Action=GetCallerIdentity&Version=2011-06-15";

async fn session(url: &str, cloud: &irsa_sandbox::cloud::Cloud, role: &str) -> Credentials {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .assume_role_with_web_identity()
        .role_arn(role_arn(role))
        .role_session_name("cg")
        .web_identity_token(sa_token(cloud, "team-a", "puller", AUDIENCE))
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "t",
    )
}

struct ProofSpec<'a> {
    host: &'a str,
    path: &'a str,
    audience: &'a str,
    identity: &'a str,
    time: SystemTime,
    /// Headers added after signing (unsigned).
    after: Vec<(&'a str, &'a str)>,
    /// Sign without the identity header, then add it unsigned.
    identity_unsigned: bool,
}

impl Default for ProofSpec<'_> {
    fn default() -> Self {
        Self {
            host: "sts.amazonaws.com",
            path: PATH,
            audience: "cgr.dev",
            identity: CHAINGUARD_IDENTITY,
            time: SystemTime::now(),
            after: vec![],
            identity_unsigned: false,
        }
    }
}

fn proof(creds: &Credentials, spec: &ProofSpec<'_>) -> String {
    let mut headers = vec![
        ("Host".to_owned(), spec.host.to_owned()),
        ("Chainguard-Audience".to_owned(), spec.audience.to_owned()),
    ];
    if !spec.identity_unsigned {
        headers.push(("Chainguard-Identity".to_owned(), spec.identity.to_owned()));
    }
    let parts = RequestParts {
        method: "POST",
        path_and_query: spec.path,
        headers: &headers,
        body: b"",
    };
    let added = sign_request(&parts, creds, "us-east-1", "sts", spec.time).unwrap();
    headers.extend(added);
    if spec.identity_unsigned {
        headers.push(("Chainguard-Identity".to_owned(), spec.identity.to_owned()));
    }
    for (k, v) in &spec.after {
        headers.push(((*k).to_owned(), (*v).to_owned()));
    }
    let mut raw = format!("POST {} HTTP/1.1\r\n", spec.path);
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    URL_SAFE_NO_PAD.encode(raw)
}

async fn exchange(url: &str, identity: &str, bearer: &str) -> (u16, Value) {
    let target = format!(
        "{url}/sts/exchange?aud=cgr.dev&identity={}",
        identity.replace('/', "%2F")
    );
    let auth = format!("Bearer {bearer}");
    let r =
        irsa_sandbox::cloud::http_request("POST", &target, &[("authorization", &auth)], Vec::new())
            .await
            .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn chainguard_exchange_verifies_every_rule() {
    let env = start().await;
    let url = env.url();
    let good = session(&url, &env.cloud, "puller").await;

    let (status, body) = exchange(
        &url,
        CHAINGUARD_IDENTITY,
        &proof(&good, &ProofSpec::default()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);
    let expiry = body["expiry"].as_str().unwrap();
    assert!(expiry.ends_with('Z') && expiry.contains('T'), "{expiry}");

    let wrong_secret = Credentials::new(
        good.access_key_id(),
        "z".repeat(40),
        good.session_token().map(str::to_owned),
        None,
        "t",
    );
    let not_allowed = session(&url, &env.cloud, "no-ecr").await;
    let twenty_minutes_ago = SystemTime::now() - Duration::from_secs(20 * 60);
    let six_minutes_ahead = SystemTime::now() + Duration::from_secs(6 * 60);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "identity differs from query",
            "group/other",
            proof(&good, &ProofSpec::default()),
            401,
            "WrongIdentity",
        ),
        (
            "audience",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    audience: "other.dev",
                    ..Default::default()
                },
            ),
            401,
            "WrongAudience",
        ),
        (
            "host",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    host: "sts.us-east-1.amazonaws.com",
                    ..Default::default()
                },
            ),
            401,
            "WrongRequest",
        ),
        (
            "path",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    path: "/?Action=GetSessionToken&Version=2011-06-15",
                    ..Default::default()
                },
            ),
            401,
            "WrongRequest",
        ),
        (
            "stale",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    time: twenty_minutes_ago,
                    ..Default::default()
                },
            ),
            401,
            "StaleProof",
        ),
        (
            "ahead",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    time: six_minutes_ahead,
                    ..Default::default()
                },
            ),
            401,
            "StaleProof",
        ),
        (
            "duplicate audience",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    after: vec![("Chainguard-Audience", "cgr.dev")],
                    ..Default::default()
                },
            ),
            401,
            "UnboundProof",
        ),
        (
            "unsigned identity",
            CHAINGUARD_IDENTITY,
            proof(
                &good,
                &ProofSpec {
                    identity_unsigned: true,
                    ..Default::default()
                },
            ),
            401,
            "UnboundProof",
        ),
        (
            "wrong secret",
            CHAINGUARD_IDENTITY,
            proof(&wrong_secret, &ProofSpec::default()),
            401,
            "InvalidSignature",
        ),
        (
            "not base64",
            CHAINGUARD_IDENTITY,
            "%%%".to_owned(),
            401,
            "MalformedProof",
        ),
        (
            "role not allowed",
            CHAINGUARD_IDENTITY,
            proof(&not_allowed, &ProofSpec::default()),
            403,
            "Forbidden",
        ),
        (
            "unknown identity",
            "group/unknown",
            proof(
                &good,
                &ProofSpec {
                    identity: "group/unknown",
                    ..Default::default()
                },
            ),
            403,
            "Forbidden",
        ),
    ];
    for (name, identity, bearer, status, code) in cases {
        let (got, body) = exchange(&url, identity, &bearer).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        assert!(
            env.cloud.counters().get("chainguard", "Exchange", code) > 0,
            "{name}"
        );
    }

    // Once the session expires, its proofs fail.
    env.cloud.advance(Duration::from_secs(3601));
    let (status, body) = exchange(
        &url,
        CHAINGUARD_IDENTITY,
        &proof(&good, &ProofSpec::default()),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(env.cloud.counters().get("chainguard", "Exchange", "ok"), 1);
}
