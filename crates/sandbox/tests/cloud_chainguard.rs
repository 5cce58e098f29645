//! Chainguard's token exchange: a correctly signed GetCallerIdentity proof passes; each
//! violated rule fails with the right status.

mod common_cloud;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use common_cloud::*;

#[tokio::test]
async fn chainguard_exchange_verifies_every_rule() {
    let env = start().await;
    let url = env.url();
    let good = web_identity_session(&url, &env.cloud, "puller").await;

    let (status, body) = chainguard_exchange(
        &url,
        CHAINGUARD_IDENTITY,
        &chainguard_proof(&good, &ProofSpec::default()),
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
    let not_allowed = web_identity_session(&url, &env.cloud, "no-ecr").await;
    let twenty_minutes_ago = SystemTime::now() - Duration::from_secs(20 * 60);
    let six_minutes_ahead = SystemTime::now() + Duration::from_secs(6 * 60);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "identity differs from query",
            "group/other",
            chainguard_proof(&good, &ProofSpec::default()),
            401,
            "WrongIdentity",
        ),
        (
            "audience",
            CHAINGUARD_IDENTITY,
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(
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
            chainguard_proof(&wrong_secret, &ProofSpec::default()),
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
            chainguard_proof(&not_allowed, &ProofSpec::default()),
            403,
            "Forbidden",
        ),
        (
            "unknown identity",
            "group/unknown",
            chainguard_proof(
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
        let (got, body) = chainguard_exchange(&url, identity, &bearer).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        assert!(
            env.cloud.counters().get("chainguard", "Exchange", code) > 0,
            "{name}"
        );
    }

    // Once the session expires, its proofs fail.
    env.cloud.advance(Duration::from_secs(3601));
    let (status, body) = chainguard_exchange(
        &url,
        CHAINGUARD_IDENTITY,
        &chainguard_proof(&good, &ProofSpec::default()),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(env.cloud.counters().get("chainguard", "Exchange", "ok"), 1);
}
