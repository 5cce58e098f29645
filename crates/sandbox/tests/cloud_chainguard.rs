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
            "the registry audience instead of the exchange's URL",
            CHAINGUARD_IDENTITY,
            chainguard_proof(
                &good,
                &ProofSpec {
                    audience: "cgr.dev",
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
                    after: vec![("Chainguard-Audience", CHAINGUARD_EXCHANGE_URL)],
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

/// `GetWebIdentityToken` through the real aws-sdk-sts, signed with a sandbox session.
async fn outbound_jwt(url: &str, session: &Credentials, audience: &str) -> Result<String, String> {
    signed_sts_client(url, session.clone())
        .get_web_identity_token()
        .audience(audience)
        .signing_algorithm("RS256")
        .duration_seconds(300)
        .send()
        .await
        .map(|o| o.web_identity_token().unwrap_or_default().to_owned())
        .map_err(|e| {
            use aws_sdk_sts::error::ProvideErrorMetadata as _;
            format!("{:?}: {:?}", e.code(), e.message())
        })
}

#[tokio::test]
async fn outbound_web_identity_tokens_verify_by_discovery_and_pass_the_exchange() {
    let env = start().await;
    let url = env.url();
    let puller = web_identity_session(&url, &env.cloud, "puller").await;
    let jwt = outbound_jwt(&url, &puller, CHAINGUARD_EXCHANGE_URL)
        .await
        .unwrap();

    // A relying party's view: discovery, then the JWKS it names, then the signature and claims.
    let get = |path: String| async move {
        let r = irsa_sandbox::cloud::http_request("GET", &path, &[], Vec::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path}");
        r.body
    };
    let discovery: serde_json::Value = serde_json::from_slice(
        &get(format!("{url}/outbound/.well-known/openid-configuration")).await,
    )
    .unwrap();
    let issuer = discovery["issuer"].as_str().unwrap().to_owned();
    assert_eq!(issuer, format!("{url}/outbound"));
    let jwks = irsa_core::token::Jwks::parse(
        &get(discovery["jwks_uri"].as_str().unwrap().to_owned()).await,
    )
    .unwrap();
    let now = env.cloud.clock().now();
    let verified = irsa_core::token::verify(
        &jwt,
        &jwks,
        &irsa_core::token::Expectations::new(now)
            .with_issuer(&issuer)
            .with_audience(CHAINGUARD_EXCHANGE_URL),
    )
    .unwrap();
    assert_eq!(verified.header.alg, "RS256");
    assert_eq!(
        verified.claims.sub.as_deref(),
        Some(format!("arn:aws:iam::{ACCOUNT}:role/puller").as_str())
    );
    assert_eq!(verified.claims.exp, Some(now + 300));

    let (status, body) = chainguard_exchange(&url, CHAINGUARD_IDENTITY, &jwt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.cloud.counters().get("sts", "GetWebIdentityToken", "ok"),
        1
    );

    // Refusals, each with its code.
    let for_other_issuer = outbound_jwt(&url, &puller, "https://other-issuer.example")
        .await
        .unwrap();
    let not_allowed = web_identity_session(&url, &env.cloud, "no-ecr").await;
    let not_allowed_err = outbound_jwt(&url, &not_allowed, CHAINGUARD_EXCHANGE_URL)
        .await
        .unwrap_err();
    assert!(
        not_allowed_err.contains("AccessDenied")
            && not_allowed_err.contains("sts:GetWebIdentityToken"),
        "{not_allowed_err}"
    );
    // Not the last character: its low bits are padding, and a JWT ending in 'A' became a
    // non-canonical signature ("MalformedJwt", about one run in four), not a wrong one.
    let tampered = tamper_signature(&jwt);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "audience of another issuer",
            CHAINGUARD_IDENTITY,
            for_other_issuer,
            401,
            "WrongJwtAudience",
        ),
        (
            "tampered signature",
            CHAINGUARD_IDENTITY,
            tampered,
            401,
            "InvalidJwtSignature",
        ),
        (
            "identity not trusting the role",
            "group/unknown",
            jwt.clone(),
            403,
            "Forbidden",
        ),
    ];
    for (name, identity, bearer, status, code) in cases {
        let (got, body) = chainguard_exchange(&url, identity, &bearer).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
    }
    // After its 300 s, the JWT is refused.
    env.cloud.advance(Duration::from_secs(301 + 60));
    let (status, body) = chainguard_exchange(&url, CHAINGUARD_IDENTITY, &jwt).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("ExpiredJwt")),
        "{body}"
    );
}

#[tokio::test]
async fn get_web_identity_token_validates_its_inputs() {
    let env = start().await;
    let url = env.url();
    let puller = web_identity_session(&url, &env.cloud, "puller").await;
    let client = signed_sts_client(&url, puller);
    let err = |r: Result<_, aws_sdk_sts::error::SdkError<_, _>>| {
        use aws_sdk_sts::error::ProvideErrorMetadata as _;
        let e = r
            .map(|_: aws_sdk_sts::operation::get_web_identity_token::GetWebIdentityTokenOutput| ())
            .unwrap_err();
        format!("{:?} {:?}", e.code(), e.message())
    };
    let too_long = err(client
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("RS256")
        .duration_seconds(3601)
        .send()
        .await);
    assert!(
        too_long.contains("ValidationError") && too_long.contains("durationSeconds"),
        "{too_long}"
    );
    let bad_alg = err(client
        .get_web_identity_token()
        .audience("a")
        .signing_algorithm("HS256")
        .send()
        .await);
    assert!(bad_alg.contains("signingAlgorithm"), "{bad_alg}");
    let eleven = err(client
        .get_web_identity_token()
        .set_audience(Some((0..11).map(|i| format!("a{i}")).collect()))
        .signing_algorithm("RS256")
        .send()
        .await);
    assert!(eleven.contains("'audience'"), "{eleven}");
}
