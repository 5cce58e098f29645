//! The controller with moto as AWS (STS and ECR over the real wire protocol) and the sandbox as
//! the cluster. moto's ECR says every token expired on 2015-01-01: the controller must serve it
//! with a short clamped lifetime, not exchange again at every event, and report a status whose
//! conditions agree with its target counts.

use irsa_lab::harness::*;
use irsa_test_peers::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_moto_namespace_creations_cost_no_exchanges_and_the_status_is_consistent() {
    let moto = Moto::start(&[]);
    let env = Env::start().await;
    let namespaces = names("app", 5);
    for ns in &namespaces {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let mut pipeline = env.lab.pipeline_options();
    pipeline.sts_endpoint_url = Some(moto.url.clone());
    pipeline.ecr_endpoint_url = Some(moto.url.clone());
    let controller = env
        .lab
        .spawn_controller_with(env.lab.controller_options(), pipeline, None)
        .await
        .expect("controller");
    assert!(
        tokio::time::timeout(DEADLINE, controller.handle.wait_ready())
            .await
            .expect("ready in time"),
        "controller ready"
    );
    env.apply_cps(
        "ecr",
        cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}})),
    )
    .await;
    let cps = env.wait_ready("ecr", "5/5").await;
    let secret = env.wait_secret("app-0", "regcred").await;
    let auth = docker_auth(&secret, &env.lab.ecr_host());
    assert!(
        auth.ends_with("-auth-token"),
        "moto's ECR token was written"
    );
    let status = cps.status.expect("status");
    let expires = status.expires_at.expect("expiresAt").0.as_second();
    let now = env.lab.stack.cloud.clock().now();
    assert!(
        expires > now && expires <= now + 300,
        "moto's 2015 expiry is served with a short clamped lifetime: {expires} vs now {now}"
    );
    let after_fan_out = controller.handle.metrics().exchanges();
    assert_eq!(after_fan_out, 1, "one exchange for the fan-out");

    // 20 unrelated namespaces: events, reconciles, but no upstream exchange.
    for ns in names("unrelated", 20) {
        env.lab.namespace(&ns, &[]).await.unwrap();
    }
    resync_and_wait(&controller).await;
    resync_and_wait(&controller).await;
    let exchanges = controller.handle.metrics().exchanges();
    assert!(
        exchanges <= 2,
        "20 namespace creations caused {} exchanges",
        exchanges - after_fan_out
    );
    let (ready, reason, message) = env.condition("ecr", "Ready").await.expect("Ready");
    let summary = env
        .cps("ecr")
        .await
        .status
        .unwrap()
        .targets
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str(), summary.as_str()),
        ("True", "SecretsCurrent", "5/5"),
        "{message}"
    );
    controller.stop().await.unwrap();
    drop(moto);
}
