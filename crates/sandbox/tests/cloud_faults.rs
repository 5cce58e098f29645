//! Cloud outages seen through the real clients: aws-sdk-rust's STS, ECR and ECR Public get a
//! service error (and retry it as transient), Chainguard's exchange and the registry token
//! service get 503, and everything works again after `clear`.

mod common_cloud;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::ProvideErrorMetadata as _;
use common_cloud::*;
use irsa_sandbox::cloud::CloudService;

/// Three attempts with a short backoff, so that a test sees the SDK's retries quickly.
fn quick_retries() -> aws_sdk_sts::config::retry::RetryConfig {
    aws_sdk_sts::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
}

fn retrying_sts_client(url: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .retry_config(quick_retries())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

fn retrying_ecr_client(url: &str, creds: Credentials) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_ecr::config::Region::new("eu-west-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .retry_config(quick_retries())
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

fn retrying_ecr_public_client(url: &str, creds: Credentials) -> aws_sdk_ecrpublic::Client {
    let config = aws_sdk_ecrpublic::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .retry_config(quick_retries())
        .build();
    aws_sdk_ecrpublic::Client::from_conf(config)
}

#[tokio::test]
async fn sts_outage_is_a_retried_service_error_until_cleared() {
    let env = start().await;
    let url = env.url();
    let faults = env.cloud.faults();
    let counters = env.cloud.counters();
    let client = retrying_sts_client(&url);
    let call = || {
        client
            .assume_role_with_web_identity()
            .role_arn(role_arn("puller"))
            .role_session_name("outage")
            .web_identity_token(sa_token(&env.cloud, "team-a", "puller", AUDIENCE))
            .send()
    };

    faults.set_outage(CloudService::Sts, true);
    assert!(faults.is_out(CloudService::Sts));
    let err = call().await.unwrap_err();
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(503), "{err:?}");
    let service_error = err.into_service_error();
    assert_eq!(service_error.code(), Some("ServiceUnavailable"));
    assert!(
        service_error
            .message()
            .is_some_and(|m| m.contains("unable to handle request")),
        "{service_error:?}"
    );
    assert_eq!(
        counters.get("sts", "AssumeRoleWithWebIdentity", "ServiceUnavailable"),
        3,
        "the SDK retried the 503 as transient: {}",
        counters.render()
    );
    assert_eq!(counters.get("sts", "AssumeRoleWithWebIdentity", "ok"), 0);

    faults.clear();
    let out = call().await.unwrap();
    assert!(out.credentials().is_some());
    assert_eq!(counters.get("sts", "AssumeRoleWithWebIdentity", "ok"), 1);
}

#[tokio::test]
async fn ecr_and_ecr_public_outages_are_server_exceptions_until_cleared() {
    let env = start().await;
    let url = env.url();
    let faults = env.cloud.faults();
    let counters = env.cloud.counters();
    let session = web_identity_session(&url, &env.cloud, "puller").await;
    let ecr = retrying_ecr_client(&url, session.clone());
    let ecr_public = retrying_ecr_public_client(&url, session);

    // One service out, the other still up.
    faults.set_outage(CloudService::Ecr, true);
    let err = ecr.get_authorization_token().send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
    let service_error = err.into_service_error();
    assert!(service_error.is_server_exception(), "{service_error:?}");
    assert_eq!(service_error.code(), Some("ServerException"));
    assert_eq!(
        counters.get("ecr", "GetAuthorizationToken", "ServerException"),
        3,
        "the SDK retried the 500 as transient: {}",
        counters.render()
    );
    ecr_public
        .get_authorization_token()
        .send()
        .await
        .expect("ECR Public is not out");

    // Everything out.
    for service in CloudService::ALL {
        faults.set_outage(service, true);
    }
    let err = ecr_public
        .get_authorization_token()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_server_exception(), "{err:?}");
    assert_eq!(
        counters.get("ecr-public", "GetAuthorizationToken", "ServerException"),
        3
    );

    faults.clear();
    assert!(faults.outages().is_empty());
    let token = ecr.get_authorization_token().send().await.unwrap();
    assert_eq!(token.authorization_data().len(), 1);
    ecr_public.get_authorization_token().send().await.unwrap();
}

#[tokio::test]
async fn chainguard_and_registry_token_outages_are_503_until_cleared() {
    let env = start().await;
    let url = env.url();
    let faults = env.cloud.faults();
    let counters = env.cloud.counters();
    let session = web_identity_session(&url, &env.cloud, "puller").await;
    let proof = chainguard_proof(&session, &ProofSpec::default());

    faults.set_outage(CloudService::Chainguard, true);
    let (status, body) = chainguard_exchange(&url, CHAINGUARD_IDENTITY, &proof).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "Unavailable");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(counters.get("chainguard", "Exchange", "Unavailable"), 1);
    faults.clear();
    let (status, body) = chainguard_exchange(&url, CHAINGUARD_IDENTITY, &proof).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());

    // The registry token service: 503 before any credential check, 401 again after clear.
    let token_url = format!("{url}/registry/token?service=irsa-sandbox-registry");
    faults.set_outage(CloudService::RegistryToken, true);
    let r = irsa_sandbox::cloud::http_request("GET", &token_url, &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    assert_eq!(counters.get("registry-auth", "GetToken", "Unavailable"), 1);
    faults.set_outage(CloudService::RegistryToken, false);
    let r = irsa_sandbox::cloud::http_request("GET", &token_url, &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}
