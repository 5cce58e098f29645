//! aws-sdk-rust against the sandbox's STS, ECR and ECR Public: allowed, and each refusal with
//! AWS's error code.

mod common_cloud;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata as _;
use base64::Engine as _;
use common_cloud::*;
use serde_json::json;

#[tokio::test]
async fn allowed_web_identity_then_caller_identity_ecr_and_ecr_public() {
    let env = start().await;
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let out = assume(&env.url(), &role_arn("puller"), &token)
        .await
        .expect("assume allowed");
    let c = out.credentials().unwrap();
    assert!(c.access_key_id().starts_with("ASIA") && c.access_key_id().len() == 20);
    assert_eq!(c.secret_access_key().len(), 40);
    let expires = c.expiration().secs();
    let now = env.cloud.clock().now();
    assert!(
        (now + 3590..=now + 3610).contains(&expires),
        "expiration {expires} vs now {now}"
    );
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/puller/irsa-test")
    );
    assert!(
        user.assumed_role_id().starts_with("AROA")
            && user.assumed_role_id().ends_with(":irsa-test")
    );
    assert_eq!(
        out.subject_from_web_identity_token(),
        Some("system:serviceaccount:team-a:puller")
    );
    assert_eq!(out.audience(), Some(AUDIENCE));
    assert_eq!(
        out.provider(),
        Some(format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}").as_str())
    );

    let who = signed_sts_client(&env.url(), creds(&out))
        .get_caller_identity()
        .send()
        .await
        .expect("caller identity");
    assert_eq!(who.account(), Some(ACCOUNT));
    assert_eq!(who.arn(), Some(user.arn()));
    assert_eq!(who.user_id(), Some(user.assumed_role_id()));

    let ecr = ecr_client(&env.url(), creds(&out));
    let auth = ecr
        .get_authorization_token()
        .send()
        .await
        .expect("ecr token");
    let data = auth.authorization_data();
    assert_eq!(data.len(), 1);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data[0].authorization_token().unwrap())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(decoded.starts_with("AWS:") && decoded.len() > 40);
    assert_eq!(
        data[0].proxy_endpoint(),
        Some(format!("https://{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com").as_str())
    );
    let expires = data[0].expires_at().unwrap().secs();
    assert!((now + 12 * 3600 - 10..=now + 12 * 3600 + 10).contains(&expires));

    #[allow(deprecated)]
    let two = ecr
        .get_authorization_token()
        .registry_ids("111111111111")
        .registry_ids("222222222222")
        .send()
        .await
        .unwrap();
    let endpoints: Vec<_> = two
        .authorization_data()
        .iter()
        .map(|d| d.proxy_endpoint().unwrap().to_owned())
        .collect();
    assert_eq!(
        endpoints,
        vec![
            "https://111111111111.dkr.ecr.us-east-1.amazonaws.com",
            "https://222222222222.dkr.ecr.us-east-1.amazonaws.com"
        ]
    );

    let public = ecr_public_client(&env.url(), creds(&out))
        .get_authorization_token()
        .send()
        .await
        .expect("ecr public token");
    let data = public.authorization_data().unwrap();
    assert!(data.authorization_token().is_some() && data.expires_at().is_some());

    let counters = env.cloud.counters();
    assert_eq!(counters.get("sts", "AssumeRoleWithWebIdentity", "ok"), 1);
    assert_eq!(counters.get("sts", "GetCallerIdentity", "ok"), 1);
    assert_eq!(counters.get("ecr", "GetAuthorizationToken", "ok"), 2);
    assert_eq!(counters.get("ecr-public", "GetAuthorizationToken", "ok"), 1);
    let metrics = irsa_sandbox::cloud::http_request(
        "GET",
        &format!("{}/metrics", env.url()),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(metrics.text().contains("irsa_sandbox_requests_total{service=\"ecr\",action=\"GetAuthorizationToken\",outcome=\"ok\"} 2"), "{}", metrics.text());
}

#[tokio::test]
async fn web_identity_refusals_carry_aws_error_codes() {
    let env = start().await;
    let url = env.url();
    let cloud = &env.cloud;
    let now = cloud.clock().now();
    let other_key = irsa_sandbox::cloud::OidcIssuer::new(ISSUER, "x", None).unwrap();
    let cases: Vec<(&str, String, String, &str, &str)> = vec![
        (
            "denied by sub",
            role_arn("puller"),
            sa_token(cloud, "team-b", "puller", AUDIENCE),
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
        (
            "denied by aud (trust policy)",
            role_arn("puller"),
            sa_token(cloud, "team-a", "puller", OTHER_CLIENT_ID),
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ),
        (
            "aud not a client id",
            role_arn("puller"),
            sa_token(cloud, "team-a", "puller", "https://kubernetes.default.svc"),
            "InvalidIdentityToken",
            "Incorrect token audience",
        ),
        (
            "unknown issuer",
            role_arn("puller"),
            signed_claims(
                cloud,
                &claims(cloud, json!({"iss": "https://unknown.example.test"})),
            ),
            "InvalidIdentityToken",
            "No OpenIDConnect provider found in your account for https://unknown.example.test",
        ),
        (
            "expired beyond grace",
            role_arn("puller"),
            signed_claims(
                cloud,
                &claims(
                    cloud,
                    json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 301}),
                ),
            ),
            "ExpiredTokenException",
            "Token expired",
        ),
        (
            "bad signature",
            role_arn("puller"),
            tamper_signature(&sa_token(cloud, "team-a", "puller", AUDIENCE)),
            "InvalidIdentityToken",
            "could not be validated",
        ),
        (
            "signed by another key",
            role_arn("puller"),
            other_key.sign_claims(&claims(cloud, json!({}))).unwrap(),
            "InvalidIdentityToken",
            "verification key",
        ),
        (
            "not a jwt",
            role_arn("puller"),
            "not-a-jwt".into(),
            "InvalidIdentityToken",
            "could not be validated",
        ),
        (
            "unknown role",
            role_arn("nobody"),
            sa_token(cloud, "team-a", "puller", AUDIENCE),
            "AccessDenied",
            "Not authorized",
        ),
        (
            "other account",
            "arn:aws:iam::999999999999:role/puller".to_owned(),
            sa_token(cloud, "team-a", "puller", AUDIENCE),
            "AccessDenied",
            "Not authorized",
        ),
        (
            "bad role arn",
            "arn:aws:iam::111122223333:user/puller".into(),
            sa_token(cloud, "team-a", "puller", AUDIENCE),
            "ValidationError",
            "Request ARN is invalid",
        ),
    ];
    for (name, role, token, code, message) in cases {
        let (got_code, got_message) = assume(&url, &role, &token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: unexpectedly allowed"));
        assert_eq!(got_code.as_deref(), Some(code), "{name}: {got_message:?}");
        let got_message = got_message.unwrap_or_default();
        assert!(got_message.contains(message), "{name}: {got_message}");
        assert!(!got_message.contains(&token), "{name}: token echoed");
    }
    // Within IAM's 5-minute grace an expired token is still accepted.
    let grace = signed_claims(
        cloud,
        &claims(
            cloud,
            json!({"iat": now - 3700, "nbf": now - 3700, "exp": now - 100}),
        ),
    );
    assert!(assume(&url, &role_arn("puller"), &grace).await.is_ok());
    let counters = cloud.counters();
    assert_eq!(
        counters.get("sts", "AssumeRoleWithWebIdentity", "AccessDenied"),
        4
    );
    assert_eq!(
        counters.get("sts", "AssumeRoleWithWebIdentity", "ExpiredTokenException"),
        1
    );
    assert_eq!(
        counters.get("sts", "AssumeRoleWithWebIdentity", "ValidationError"),
        1
    );
}

#[tokio::test]
async fn session_name_and_duration_are_validated() {
    let env = start().await;
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let client = sts_client(&env.url());
    for (session, duration, message) in [
        ("has space", None, "roleSessionName"),
        ("ok-session", Some(600), "greater than or equal to 900"),
        ("ok-session", Some(7200), "exceeds the MaxSessionDuration"),
    ] {
        let err = client
            .assume_role_with_web_identity()
            .role_arn(role_arn("puller"))
            .role_session_name(session)
            .set_duration_seconds(duration)
            .web_identity_token(&token)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(err.code(), Some("ValidationError"));
        assert!(
            err.message().unwrap().contains(message),
            "{:?}",
            err.message()
        );
    }
}

#[tokio::test]
async fn ecr_refusals_carry_aws_error_codes() {
    let env = start().await;
    let url = env.url();
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let ecr_code = |r: Result<
        aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput,
        aws_sdk_ecr::error::SdkError<
            aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenError,
        >,
    >| {
        let e = r.unwrap_err().into_service_error();
        (
            e.code().map(str::to_owned),
            e.message().map(str::to_owned).unwrap_or_default(),
        )
    };

    let no_ecr = creds(&assume(&url, &role_arn("no-ecr"), &token).await.unwrap());
    let (code, message) = ecr_code(
        ecr_client(&url, no_ecr.clone())
            .get_authorization_token()
            .send()
            .await,
    );
    assert_eq!(code.as_deref(), Some("AccessDeniedException"));
    assert!(
        message.contains(
            "assumed-role/no-ecr/irsa-test is not authorized to perform: ecr:GetAuthorizationToken"
        ),
        "{message}"
    );
    let err = ecr_public_client(&url, no_ecr)
        .get_authorization_token()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"));

    let denied = creds(&assume(&url, &role_arn("denied-ecr"), &token).await.unwrap());
    let (code, message) = ecr_code(
        ecr_client(&url, denied)
            .get_authorization_token()
            .send()
            .await,
    );
    assert_eq!(code.as_deref(), Some("AccessDeniedException"));
    assert!(message.contains("explicit deny"), "{message}");

    let good = creds(&assume(&url, &role_arn("puller"), &token).await.unwrap());
    let wrong_secret = Credentials::new(
        good.access_key_id(),
        "x".repeat(40),
        good.session_token().map(str::to_owned),
        None,
        "t",
    );
    assert_eq!(
        ecr_code(
            ecr_client(&url, wrong_secret)
                .get_authorization_token()
                .send()
                .await
        )
        .0
        .as_deref(),
        Some("InvalidSignatureException")
    );
    let unknown_key = Credentials::new(
        "ASIAUNKNOWNUNKNOWN00",
        good.secret_access_key(),
        good.session_token().map(str::to_owned),
        None,
        "t",
    );
    assert_eq!(
        ecr_code(
            ecr_client(&url, unknown_key)
                .get_authorization_token()
                .send()
                .await
        )
        .0
        .as_deref(),
        Some("UnrecognizedClientException")
    );
    let wrong_session = Credentials::new(
        good.access_key_id(),
        good.secret_access_key(),
        Some("forged".into()),
        None,
        "t",
    );
    assert_eq!(
        ecr_code(
            ecr_client(&url, wrong_session)
                .get_authorization_token()
                .send()
                .await
        )
        .0
        .as_deref(),
        Some("UnrecognizedClientException")
    );

    // The session expires with the sandbox clock.
    env.cloud.advance(Duration::from_secs(3601));
    assert_eq!(
        ecr_code(
            ecr_client(&url, good.clone())
                .get_authorization_token()
                .send()
                .await
        )
        .0
        .as_deref(),
        Some("ExpiredTokenException")
    );
    let err = signed_sts_client(&url, good)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ExpiredToken"));

    let counters = env.cloud.counters();
    assert_eq!(
        counters.get("ecr", "GetAuthorizationToken", "AccessDeniedException"),
        2
    );
    assert_eq!(
        counters.get(
            "ecr-public",
            "GetAuthorizationToken",
            "AccessDeniedException"
        ),
        1
    );
    assert_eq!(counters.get("ecr", "GetAuthorizationToken", "ok"), 0);
}

#[tokio::test]
async fn admin_api_registers_roles_and_providers() {
    let env = start_with(irsa_sandbox::cloud::CloudConfig {
        issuer_url: ISSUER.into(),
        account_id: ACCOUNT.into(),
        ..Default::default()
    })
    .await;
    let url = env.url();
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let (code, _) = assume(&url, &role_arn("puller"), &token).await.unwrap_err();
    assert_eq!(code.as_deref(), Some("InvalidIdentityToken"));
    let post = |path: &'static str, body: serde_json::Value| {
        let url = format!("{url}{path}");
        async move {
            irsa_sandbox::cloud::http_request(
                "POST",
                &url,
                &[("content-type", "application/json")],
                body.to_string().into_bytes(),
            )
            .await
            .unwrap()
        }
    };
    let r = post(
        "/admin/iam/oidc-providers",
        json!({"url": ISSUER, "clientIds": [AUDIENCE]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post("/admin/iam/roles", json!({"name": "puller", "trustPolicy": trust_policy("team-a", "puller"), "permissionPolicies": [pull_policy()]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&role_arn("puller")));
    let r = post(
        "/admin/iam/roles",
        json!({"name": "bad", "trustPolicy": {"Statement": "nope"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(assume(&url, &role_arn("puller"), &token).await.is_ok());
    let roles = irsa_sandbox::cloud::http_request(
        "GET",
        &format!("{url}/admin/iam/roles"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(roles.text().contains("AROA"));
    assert_eq!(env.cloud.counters().get("iam-admin", "PutRole", "ok"), 1);
    // The issuer's discovery and keys are served too.
    let discovery = irsa_sandbox::cloud::http_request(
        "GET",
        &format!("{url}/.well-known/openid-configuration"),
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    let discovery: serde_json::Value = serde_json::from_slice(&discovery.body).unwrap();
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(discovery["jwks_uri"], format!("{ISSUER}/openid/v1/jwks"));
    let jwks =
        irsa_sandbox::cloud::http_request("GET", &format!("{url}/openid/v1/jwks"), &[], Vec::new())
            .await
            .unwrap();
    let jwks: serde_json::Value = serde_json::from_slice(&jwks.body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], env.cloud.oidc_issuer().key_id());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(
        env.cloud
            .counters()
            .get("iam-admin", "PutRole", "InvalidInput"),
        1
    );
}

#[tokio::test]
async fn assume_role_chains_from_a_web_identity_session() {
    let env = start().await;
    let url = env.url();
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let puller = creds(&assume(&url, &role_arn("puller"), &token).await.unwrap());
    let out = signed_sts_client(&url, puller.clone())
        .assume_role()
        .role_arn(role_arn("chained"))
        .role_session_name("chain")
        .send()
        .await
        .expect("chained assume");
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/chained/chain")
    );
    let c = out.credentials().unwrap();
    let chained = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "t",
    );
    let who = signed_sts_client(&url, chained.clone())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.arn(), Some(user.arn()));
    assert!(
        ecr_client(&url, chained)
            .get_authorization_token()
            .send()
            .await
            .is_ok()
    );

    let err = signed_sts_client(&url, puller.clone())
        .assume_role()
        .role_arn(role_arn("chained"))
        .role_session_name("chain")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"));
    assert!(err.message().unwrap().contains("role chaining"));

    let no_ecr = creds(&assume(&url, &role_arn("no-ecr"), &token).await.unwrap());
    let err = signed_sts_client(&url, no_ecr)
        .assume_role()
        .role_arn(role_arn("chained"))
        .role_session_name("chain")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(
        err.message(),
        Some(format!("User: arn:aws:sts::{ACCOUNT}:assumed-role/no-ecr/irsa-test is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{ACCOUNT}:role/chained").as_str())
    );
    // Unsigned: refused as AWS does.
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=chain",
        role_arn("chained")
    );
    let raw = irsa_sandbox::cloud::http_request(
        "POST",
        &format!("{url}/"),
        &[("content-type", "application/x-www-form-urlencoded")],
        body.into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(raw.status, 403);
    assert!(
        raw.text()
            .contains("<Code>MissingAuthenticationToken</Code>"),
        "{}",
        raw.text()
    );
    assert_eq!(env.cloud.counters().get("sts", "AssumeRole", "ok"), 1);
    assert_eq!(
        env.cloud
            .counters()
            .get("sts", "AssumeRole", "AccessDenied"),
        1
    );
}

/// Keys the sandbox did not issue are the account's administrator (as in its IAM Query API):
/// GetCallerIdentity answers with the account root, so `irsa iam setup` knows the account before
/// it writes. A session's key with a forged token is still refused.
#[tokio::test]
async fn caller_identity_of_admin_keys_is_the_account_root() {
    let env = start().await;
    let url = env.url();
    let admin = Credentials::new("AKIAADMINDOUBLE", "admin-secret", None, None, "t");
    let who = signed_sts_client(&url, admin)
        .get_caller_identity()
        .send()
        .await
        .expect("admin keys are answered");
    assert_eq!(who.account(), Some(ACCOUNT));
    assert_eq!(
        who.arn(),
        Some(format!("arn:aws:iam::{ACCOUNT}:root").as_str())
    );

    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let puller = creds(&assume(&url, &role_arn("puller"), &token).await.unwrap());
    let forged = Credentials::new(
        puller.access_key_id(),
        puller.secret_access_key(),
        Some("forged-session-token".to_owned()),
        None,
        "t",
    );
    let err = signed_sts_client(&url, forged)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
}
