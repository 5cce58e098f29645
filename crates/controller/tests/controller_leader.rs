//! Two replicas of the controller with leader election on one Lease: exactly one writes, and
//! the other takes over when the leader stops (released Lease) or crashes (expired Lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use irsa_lab::harness::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const LEASE: &str = "irsa-controller";

fn options(env: &Env, identity: &str) -> ControllerOptions {
    ControllerOptions {
        lease: Some(LeaseConfig {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(200),
            ..LeaseConfig::new(IDENTITY_NAMESPACE, LEASE, identity)
        }),
        instance: identity.to_owned(),
        ..env.lab.controller_options()
    }
}

async fn holder(env: &Env) -> Option<String> {
    Api::<Lease>::namespaced(env.lab.client.clone(), IDENTITY_NAMESPACE)
        .get_opt(LEASE)
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_and_a_standby_takes_over() {
    let env = Env::start().await;
    env.lab
        .namespace("lead-0", &[("pull", "ecr")])
        .await
        .unwrap();
    let a = env.controller_with(options(&env, "replica-a")).await;
    let b = env.controller_with(options(&env, "replica-b")).await;

    // Watch for two leaders at once for the whole test.
    let both = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (ha, hb, both) = (a.handle.clone(), b.handle.clone(), both.clone());
        tokio::spawn(async move {
            loop {
                if ha.is_leader() && hb.is_leader() {
                    both.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let a_leads = eventually("exactly one leader", || async {
        (a.handle.is_leader() != b.handle.is_leader()).then_some(a.handle.is_leader())
    })
    .await;
    let (leader, standby, standby_id) = if a_leads {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    let leader_id = if a_leads { "replica-a" } else { "replica-b" };
    assert_eq!(holder(&env).await.as_deref(), Some(leader_id));

    env.apply_cps(
        "ecr",
        cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}})),
    )
    .await;
    let auth = env.auth_in("lead-0").await;
    env.wait_ready("ecr", "1/1").await;
    standby.handle.resync_all();
    for _ in 0..3 {
        resync_and_wait(&leader).await;
    }
    assert!(leader.handle.metrics().writes() > 0);
    assert_eq!(
        standby.handle.metrics().writes(),
        0,
        "the standby never writes"
    );
    assert_eq!(standby.handle.metrics().exchanges(), 0);
    assert!(!standby.handle.is_leader());

    // A graceful stop releases the Lease: the standby leads within a few seconds.
    leader.stop().await.unwrap();
    let start = tokio::time::Instant::now();
    eventually("the standby takes over", || async {
        standby.handle.is_leader().then_some(())
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "released, so no wait for expiry: {:?}",
        start.elapsed()
    );
    assert_eq!(holder(&env).await.as_deref(), Some(standby_id));
    env.lab
        .namespace("lead-1", &[("pull", "ecr")])
        .await
        .unwrap();
    assert_eq!(
        env.auth_in("lead-1").await,
        auth,
        "the new leader reuses the written credential"
    );
    env.wait_ready("ecr", "2/2").await;
    assert!(standby.handle.metrics().writes() > 0);
    assert_eq!(standby.handle.metrics().exchanges(), 0);
    monitor.abort();
    assert!(!both.load(Ordering::Relaxed), "never two leaders at once");

    // A crash releases nothing: a new standby takes over once the Lease expires.
    let third = env.controller_with(options(&env, "replica-c")).await;
    assert!(!third.handle.is_leader());
    standby.kill().await;
    let start = tokio::time::Instant::now();
    assert_eq!(
        holder(&env).await.as_deref(),
        Some(standby_id),
        "a crash releases nothing"
    );
    eventually("replica-c takes over after expiry", || async {
        third.handle.is_leader().then_some(())
    })
    .await;
    let waited = start.elapsed();
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(10)).contains(&waited),
        "taken over once the 3 s Lease expired: {waited:?}"
    );
    assert_eq!(holder(&env).await.as_deref(), Some("replica-c"));
    env.lab
        .namespace("lead-2", &[("pull", "ecr")])
        .await
        .unwrap();
    env.wait_secret("lead-2", "regcred").await;
    env.wait_ready("ecr", "3/3").await;
    third.stop().await.unwrap();
}

/// A stopping leader finishes the reconcile it is running before it hands the Lease over: the
/// fan-out in flight at SIGTERM is complete when it has stopped, and the standby wrote nothing
/// by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_drains_its_writes_before_releasing() {
    let env = Env::start().await;
    let targets = names("drain", 30);
    for ns in &targets {
        env.lab.namespace(ns, &[("drain", "yes")]).await.unwrap();
    }
    let slow = |id: &str| ControllerOptions {
        write_concurrency: 1,
        ..options(&env, id)
    };
    let leader = env.controller_with(slow("replica-a")).await;
    eventually("replica-a leads", || async {
        leader.handle.is_leader().then_some(())
    })
    .await;
    let standby = env.controller_with(slow("replica-b")).await;
    // Every request now takes 40 ms: the fan-out of 30 secrets, one at a time, takes over a
    // second.
    env.lab
        .stack
        .api
        .faults()
        .set_latency(Duration::from_millis(40));
    env.apply_cps(
        "drain",
        cps_spec(&env, json!({"selector": {"matchLabels": {"drain": "yes"}}})),
    )
    .await;
    eventually("the fan-out under way", || async {
        (leader.handle.metrics().writes() > 2).then_some(())
    })
    .await;
    leader.stop().await.unwrap();
    let standby_writes = standby.handle.metrics().writes();
    let mut written = 0;
    for ns in &targets {
        if env.secret(ns, "regcred").await.is_some() {
            written += 1;
        }
    }
    assert_eq!(
        written,
        targets.len(),
        "the stopping leader finished its fan-out"
    );
    assert_eq!(
        standby_writes, 0,
        "the standby wrote nothing before the leader had stopped"
    );
    env.lab.stack.api.faults().clear();
    standby.stop().await.unwrap();
}
