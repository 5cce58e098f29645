//! Chainguard through the controller, end to end against the sandbox: a ClusterPullSecret for
//! cgr.dev gets a `_token` credential by either method, the Secret holds what the sandbox's
//! exchange issued, and the method decides which upstream calls are made.

use irsa_lab::ROLE_NAME;
use irsa_lab::harness::*;

const CG_IDENTITY: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";

async fn env() -> Env {
    Env::start_with(LabConfig {
        chainguard_identities: vec![ChainguardIdentity {
            id: CG_IDENTITY.to_owned(),
            allowed_roles: vec![format!("arn:aws:iam::*:role/{ROLE_NAME}")],
        }],
        ..LabConfig::default()
    })
    .await
}

fn spec(method: Option<&str>) -> Value {
    let mut chainguard = json!({"identity": CG_IDENTITY});
    if let Some(m) = method {
        chainguard["method"] = json!(m);
    }
    json!({
        "registries": [{"host": "cgr.dev", "chainguard": chainguard}],
        "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
        "secretName": "cgr",
        "namespaces": {"include": ["team-a"]},
    })
}

fn count(env: &Env, service: &str, action: &str) -> u64 {
    env.lab.stack.cloud.counters().get(service, action, "ok")
}

/// The Secret's cgr.dev auth is `_token:<a token the sandbox exchange issued>`.
fn assert_chainguard_auth(secret: &k8s_openapi::api::core::v1::Secret) {
    let auth = docker_auth(secret, "cgr.dev");
    let (user, token) = auth.split_once(':').expect("user:password");
    assert_eq!(user, "_token");
    assert_eq!(token.split('.').count(), 3, "a JWT from the exchange");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_token_method_writes_a_chainguard_pull_secret() {
    let env = env().await;
    env.lab.namespace("team-a", &[]).await.unwrap();
    let _c = env.controller().await;
    env.apply_cps("cg-jwt", spec(Some("web-identity-token")))
        .await;
    let secret = env.wait_secret("team-a", "cgr").await;
    assert_chainguard_auth(&secret);
    env.wait_ready("cg-jwt", "1/1").await;
    assert_eq!(count(&env, "sts", "GetWebIdentityToken"), 1);
    assert_eq!(count(&env, "chainguard", "Exchange"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_caller_identity_is_the_default_method() {
    let env = env().await;
    env.lab.namespace("team-a", &[]).await.unwrap();
    let _c = env.controller().await;
    env.apply_cps("cg-proof", spec(None)).await;
    let secret = env.wait_secret("team-a", "cgr").await;
    assert_chainguard_auth(&secret);
    env.wait_ready("cg-proof", "1/1").await;
    assert_eq!(count(&env, "sts", "GetWebIdentityToken"), 0);
    assert_eq!(count(&env, "chainguard", "Exchange"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_not_trusting_the_role_degrades_with_the_exchange_refusal() {
    let env = Env::start().await; // no Chainguard identities at all
    env.lab.namespace("team-a", &[]).await.unwrap();
    let _c = env.controller().await;
    env.apply_cps("cg-denied", spec(Some("web-identity-token")))
        .await;
    let (status, _reason, message) = eventually("a Degraded condition", || async {
        env.condition("cg-denied", "Degraded")
            .await
            .filter(|(s, _, _)| s == "True")
    })
    .await;
    assert_eq!(status, "True");
    assert!(message.contains("refused the exchange"), "{message}");
    assert!(
        !message.contains("eyJ"),
        "no token in the status: {message}"
    );
    assert!(env.secret("team-a", "cgr").await.is_none());
}
