//! `KubeTokenRequester` against the sandbox API server over HTTPS: real TokenRequest round trips
//! with kube-rs, and the errors a user meets when the service account or the RBAC is missing.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use irsa_aws::{TokenRequestSource, TokenRequester, TokenSource, TokenSourceError};
use irsa_core::token::decode_unverified;
use irsa_k8s::KubeTokenRequester;
use irsa_sandbox::apiserver::ErrorRule;
use irsa_sandbox::stack::{Stack, StackConfig};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

async fn start() -> (Stack, kube::Client) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = Stack::start(StackConfig::default(), api, aws)
        .await
        .expect("sandbox starts");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&stack.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let pp = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
        )
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), "team")
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "puller"}})).unwrap(),
        )
        .await
        .unwrap();
    (stack, client)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_expires_in(exp: Option<i64>, seconds: i64) {
    let exp = exp.expect("the token has exp");
    let expected = now() + seconds;
    assert!(
        (expected - 60..=expected + 5).contains(&exp),
        "exp {exp} is not about {seconds}s from now ({expected})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_an_existing_service_account_has_the_requested_claims() {
    let (stack, client) = start().await;
    let requester = KubeTokenRequester::new(client);
    let token = requester
        .request_token(
            "team",
            "puller",
            &["sts.amazonaws.com".to_owned()],
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let claims = decode_unverified(token.expose()).unwrap().claims;
    assert_eq!(claims.aud, ["sts.amazonaws.com"]);
    assert_eq!(
        claims.sub.as_deref(),
        Some("system:serviceaccount:team:puller")
    );
    assert_expires_in(claims.exp, 900);
    assert!(!format!("{requester:?}").contains(token.expose()));

    // Several audiences, all carried into the token.
    let audiences = ["sts.amazonaws.com".to_owned(), "cgr.dev".to_owned()];
    let token = requester
        .request_token("team", "puller", &audiences, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        decode_unverified(token.expose()).unwrap().claims.aud,
        audiences
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_source_gets_an_sts_token_for_an_hour() {
    let (stack, client) = start().await;
    let source =
        TokenRequestSource::new(Arc::new(KubeTokenRequester::new(client)), "team", "puller");
    let token = source.token().await.unwrap();
    let claims = decode_unverified(token.expose()).unwrap().claims;
    assert_eq!(claims.aud, ["sts.amazonaws.com"]);
    assert_eq!(
        claims.sub.as_deref(),
        Some("system:serviceaccount:team:puller")
    );
    assert_expires_in(claims.exp, 3600);
    // Every call is a new request to the API server.
    let again = source.token().await.unwrap();
    assert!(decode_unverified(again.expose()).is_ok());
    assert!(!source.describe().contains(token.expose()));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_service_account_says_how_to_create_it() {
    let (stack, client) = start().await;
    let source =
        TokenRequestSource::new(Arc::new(KubeTokenRequester::new(client)), "team", "nobody");
    let err = source.token().await.unwrap_err();
    assert_eq!(
        err,
        TokenSourceError::ServiceAccountNotFound {
            namespace: "team".into(),
            service_account: "nobody".into(),
        }
    );
    let text = err.to_string();
    assert!(
        text.starts_with("service account team/nobody does not exist: create it with `kubectl create serviceaccount -n team nobody`"),
        "{text}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_rbac_rule_and_other_failures_keep_the_server_message() {
    let (stack, client) = start().await;
    let requester = KubeTokenRequester::new(client);
    let sts = ["sts.amazonaws.com".to_owned()];
    stack.api.faults().add_error(ErrorRule {
        verb: Some("create".into()),
        resource: Some("serviceaccounts".into()),
        code: 403,
        rate: 1.0,
        count: Some(1),
        retry_after_seconds: None,
        message: None,
    });
    let err = requester
        .request_token("team", "puller", &sts, Duration::from_secs(3600))
        .await
        .unwrap_err();
    assert!(matches!(err, TokenSourceError::Forbidden { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("not allowed to request a token for service account team/puller: "),
        "{text}"
    );
    assert!(
        text.contains("irsa's ClusterRole needs `create` on `serviceaccounts/token`"),
        "{text}"
    );

    // The API server refuses lifetimes under 10 minutes (422): its reason is passed on.
    let err = requester
        .request_token("team", "puller", &sts, Duration::from_secs(60))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, TokenSourceError::TokenRequest { .. }),
        "{err:?}"
    );
    assert!(
        text.starts_with("failed to request a token for service account team/puller: the API server answered 422 Invalid"),
        "{text}"
    );
    stack.shutdown().await;
}
