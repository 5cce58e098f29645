//! `spec.identity.sessionDuration` end to end against the sandbox: the duration reaches STS as
//! `DurationSeconds` (the sandbox refuses one beyond the role's `MaxSessionDuration`, 1 hour
//! for the lab's role, as STS does), resources differing only in it get a credential each, and
//! an out-of-range value is refused before any call.

use irsa_lab::harness::*;

fn spec(env: &Env, secret: &str, duration: &str) -> serde_json::Value {
    let mut spec = cps_spec(env, json!({"selector": {"matchLabels": {"pull": "ecr"}}}));
    spec["secretName"] = json!(secret);
    spec["identity"]["sessionDuration"] = json!(duration);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_duration_reaches_sts_and_is_part_of_the_credential() {
    let env = Env::start().await;
    env.lab.namespace("app", &[("pull", "ecr")]).await.unwrap();
    let _controller = env.controller().await;

    // 2h is a valid STS duration, but more than the role allows: STS's refusal is reported.
    env.apply_cps("long", spec(&env, "long", "2h")).await;
    let message = env
        .wait_condition("long", "Degraded", "True", "RefreshFailed")
        .await;
    assert!(message.contains("MaxSessionDuration"), "{message}");
    assert_eq!(env.ecr_tokens(), 0, "STS refused before any ECR call");

    // Within the role's maximum: served.
    env.apply_cps("short", spec(&env, "short", "15m")).await;
    env.wait_ready("short", "1/1").await;
    env.wait_secret("app", "short").await;
    assert_eq!(env.ecr_tokens(), 1);

    // Same identity and registries, another duration: a session and a credential of its own.
    env.apply_cps("medium", spec(&env, "medium", "1800s")).await;
    env.wait_ready("medium", "1/1").await;
    assert_eq!(
        env.ecr_tokens(),
        2,
        "a duration is part of the credential's key"
    );
    // The same duration again shares the credential held.
    env.apply_cps("short-too", spec(&env, "short-too", "900"))
        .await;
    env.wait_ready("short-too", "1/1").await;
    assert_eq!(env.ecr_tokens(), 2, "900 is 15m: one credential");

    // Outside STS's range: refused with the field and the range, no call made.
    env.apply_cps("bad", spec(&env, "bad", "10m")).await;
    let message = env.wait_condition("bad", "Ready", "False", "Invalid").await;
    assert!(
        message.contains("spec.identity.sessionDuration: \"10m\" is out of range"),
        "{message}"
    );
    assert!(message.contains("15m to 12h"), "{message}");
    assert!(env.secret("app", "bad").await.is_none());
}
