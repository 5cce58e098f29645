//! The controller end to end when things break: a cloud outage longer than the refresh point,
//! API errors and lost watches, a crash in the middle of a fan-out, and what can be observed
//! of a run with failures (no password or token anywhere).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use irsa_lab::harness::*;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;

const MANAGED: &str = "app.kubernetes.io/managed-by=irsa";

fn selector() -> Value {
    json!({"selector": {"matchLabels": {"pull": "ecr"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_outage_keeps_the_last_good_secrets_and_recovers() {
    let env = Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await;
    let namespaces = names("out", 3);
    for ns in &namespaces {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    env.wait_ready("ecr", "3/3").await;
    let mut before = BTreeMap::new();
    for ns in &namespaces {
        before.insert(ns.clone(), env.wait_secret(ns, "regcred").await.data);
    }
    let good = env.auth_in("out-0").await;

    // STS and ECR down past the refresh point (0.5 ± 10 % of 3600 s), before expiry.
    let faults = env.lab.stack.cloud.faults();
    faults.set_outage(CloudService::Sts, true);
    faults.set_outage(CloudService::Ecr, true);
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    let message = env
        .wait_condition("ecr", "Degraded", "True", "RefreshFailed")
        .await;
    assert!(!message.is_empty());
    let (ready, reason, _) = env.condition("ecr", "Ready").await.unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("True", "SecretsCurrent"),
        "the written secrets still work"
    );
    eventually("a RefreshFailed Event", || async {
        env.events_about("ecr")
            .await
            .iter()
            .any(|(r, _)| r == "RefreshFailed")
            .then_some(())
    })
    .await;
    for _ in 0..3 {
        resync_and_wait(&controller).await;
    }
    for ns in &namespaces {
        let now = env.secret(ns, "regcred").await.expect("not removed").data;
        assert_eq!(now, before[ns], "{ns}: byte-identical through the outage");
    }

    // A namespace created during the outage gets the last good credential.
    env.lab
        .namespace("out-new", &[("pull", "ecr")])
        .await
        .unwrap();
    assert_eq!(env.auth_in("out-new").await, good);
    env.wait_ready("ecr", "4/4").await;

    // The cloud is back: the retry (backoff in sandbox-clock seconds) refreshes everything.
    faults.clear();
    env.lab.stack.cloud.advance(Duration::from_secs(600));
    eventually("Degraded=False after the outage", || async {
        controller.handle.resync_all();
        let (s, _, _) = env.condition("ecr", "Degraded").await?;
        (s == "False").then_some(())
    })
    .await;
    for ns in namespaces.iter().map(String::as_str).chain(["out-new"]) {
        let auth = eventually(&format!("{ns} refreshed"), || async {
            let a = env.auth_in(ns).await;
            (a != good).then_some(a)
        })
        .await;
        assert!(auth.starts_with("AWS:"));
    }
    let (ready, _, _) = env.condition("ecr", "Ready").await.unwrap();
    assert_eq!(ready, "True");
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_lost_watches_do_not_lose_writes() {
    let env = Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await;
    let namespaces = names("f", 6);
    for ns in &namespaces {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let api = env.lab.stack.api.faults();
    let rule = |verb: &str, code: u16, count: u64| ErrorRule {
        verb: Some(verb.into()),
        resource: Some("secrets".into()),
        code,
        rate: 1.0,
        count: Some(count),
        retry_after_seconds: None,
        message: None,
    };
    api.add_error(rule("create", 409, 2));
    api.add_error(rule("create", 500, 3));
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    for ns in &namespaces {
        env.wait_secret(ns, "regcred").await;
    }
    env.wait_ready("ecr", "6/6").await;
    let counters = env.lab.stack.api.counters();
    assert_eq!(counters.get("kubernetes", "create secrets", "409"), 2);
    assert_eq!(counters.get("kubernetes", "create secrets", "500"), 3);

    // Refresh with failing patches: retried until every secret holds the new credential.
    let old = env.auth_in("f-0").await;
    api.add_error(rule("patch", 409, 2));
    api.add_error(rule("patch", 503, 3));
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    for ns in &namespaces {
        eventually(
            &format!("{ns} refreshed despite failing patches"),
            || async { (env.auth_in(ns).await != old).then_some(()) },
        )
        .await;
    }
    assert_eq!(counters.get("kubernetes", "patch secrets", "409"), 2);
    assert_eq!(counters.get("kubernetes", "patch secrets", "503"), 3);
    env.wait_ready("ecr", "6/6").await;
    env.wait_condition("ecr", "Degraded", "False", "AsExpected")
        .await;

    // Every watch ends: the controller resumes and still sees new namespaces.
    let lists = counters.total("kubernetes", "list namespaces");
    let watches = counters.total("kubernetes", "watch namespaces");
    api.drop_watches();
    env.lab
        .namespace("after-drop", &[("pull", "ecr")])
        .await
        .unwrap();
    env.wait_secret("after-drop", "regcred").await;
    assert!(counters.total("kubernetes", "watch namespaces") > watches);
    assert_eq!(
        counters.total("kubernetes", "list namespaces"),
        lists,
        "a dropped watch resumes from its resourceVersion without a new list"
    );

    // The history is compacted under a dropped watch: resuming gets 410 Gone, so the watches
    // list again, and the controller still sees new namespaces.
    let lists = counters.total("kubernetes", "list namespaces");
    env.lab.stack.api.store().compact();
    api.drop_watches();
    eventually("namespaces listed again after 410 Gone", || async {
        (counters.total("kubernetes", "list namespaces") > lists).then_some(())
    })
    .await;
    env.lab
        .namespace("after-gone", &[("pull", "ecr")])
        .await
        .unwrap();
    env.wait_secret("after-gone", "regcred").await;
    env.wait_ready("ecr", "8/8").await;
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_fan_out_is_finished_by_the_next_controller() {
    const N: usize = 200;
    let env = Env::start().await;
    let namespaces = names("crash", N);
    for ns in &namespaces {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let all: Api<Secret> = Api::all(env.lab.client.clone());
    let written = || async {
        all.list(&ListParams::default().labels(MANAGED))
            .await
            .unwrap()
            .items
    };
    // A slow API server and few parallel writes: the fan-out takes seconds.
    env.lab
        .stack
        .api
        .faults()
        .set_latency(Duration::from_millis(100));
    let first = env
        .controller_with(ControllerOptions {
            write_concurrency: 2,
            ..env.lab.controller_options()
        })
        .await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    eventually("50 secrets written", || async {
        (written().await.len() >= 50).then_some(())
    })
    .await;
    first.kill().await;
    env.lab.stack.api.faults().clear();
    let before: BTreeMap<String, String> = written()
        .await
        .into_iter()
        .map(|s| {
            (
                s.metadata.namespace.unwrap(),
                s.metadata.resource_version.unwrap(),
            )
        })
        .collect();
    assert!(
        before.len() < N,
        "killed before the fan-out finished ({} written)",
        before.len()
    );
    assert_eq!(env.ecr_tokens(), 1);

    let second = env.controller().await;
    env.wait_ready("ecr", &format!("{N}/{N}")).await;
    let after = written().await;
    assert_eq!(after.len(), N);
    assert_eq!(
        second.handle.metrics().exchanges(),
        0,
        "the credential in the written secrets is reused"
    );
    assert_eq!(env.ecr_tokens(), 1, "no new ECR token");
    let host = env.lab.ecr_host();
    let auths: std::collections::BTreeSet<String> =
        after.iter().map(|s| docker_auth(s, &host)).collect();
    assert_eq!(auths.len(), 1, "one password in all {N} secrets");
    for s in &after {
        let ns = s.metadata.namespace.as_deref().unwrap();
        if let Some(rv) = before.get(ns) {
            assert_eq!(
                s.metadata.resource_version.as_ref(),
                Some(rv),
                "{ns}: written before the crash and still valid, so not rewritten"
            );
        }
    }
    second.stop().await.unwrap();
}

/// Captured log output of everything in this test's thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// One thread, so that the thread's default subscriber sees every task (controller, clients).
#[tokio::test(flavor = "current_thread")]
async fn no_password_or_token_is_ever_observable() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        // Everything irsa logs, at every level; the sandbox (the fake cloud) is not irsa.
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,irsa=trace,irsa_controller=trace,irsa_aws=trace,irsa_k8s=trace,irsa_core=trace,irsa_sandbox=off",
        ))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await;
    for ns in ["leak-a", "leak-b"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let controller = env
        .lab
        .spawn_controller(env.lab.controller_options(), Some(admin))
        .await
        .unwrap();
    assert!(controller.handle.wait_ready().await);
    // Failures: first STS refuses (nothing obtained yet), later ECR refuses (errors go to
    // the status, Events and logs).
    let faults = env.lab.stack.cloud.faults();
    faults.set_outage(CloudService::Sts, true);
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    let pending = eventually("Pending with the STS error", || async {
        let (s, r, m) = env.condition("ecr", "Ready").await?;
        (s == "False" && r == "Pending" && m.contains("AssumeRoleWithWebIdentity")).then_some(m)
    })
    .await;
    assert!(
        pending.contains("role/irsa-puller"),
        "names the role: {pending}"
    );
    let mut observed = vec![status_json(&env).await];
    faults.clear();
    env.lab.stack.cloud.advance(Duration::from_secs(60));
    eventually("ready after STS is back", || async {
        controller.handle.resync_all();
        let t = env.cps("ecr").await.status?.targets?;
        (t.ready == 2).then_some(())
    })
    .await;
    let mut auths = vec![env.auth_in("leak-a").await];
    faults.set_outage(CloudService::Ecr, true);
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    env.wait_condition("ecr", "Degraded", "True", "RefreshFailed")
        .await;
    observed.push(status_json(&env).await);
    faults.clear();
    env.lab.stack.cloud.advance(Duration::from_secs(600));
    eventually("recovered", || async {
        controller.handle.resync_all();
        let (s, _, _) = env.condition("ecr", "Degraded").await?;
        (s == "False").then_some(())
    })
    .await;
    auths.push(env.auth_in("leak-a").await);
    assert_ne!(auths[0], auths[1], "refreshed");

    observed.push(status_json(&env).await);
    for (reason, note) in env.events_about("ecr").await {
        observed.push(format!("{reason}: {note}"));
    }
    observed.push(controller.handle.metrics().render(0));
    observed.push(http_get(admin_addr, "/metrics").await);
    controller.stop().await.unwrap();
    drop(env);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("credential refresh failed"),
        "the capture holds the controller's logs"
    );
    observed.push(logs);

    let mut secrets = Vec::new();
    for auth in &auths {
        let (_, password) = auth.split_once(':').unwrap();
        use base64::Engine as _;
        secrets.push(password.to_owned());
        secrets.push(base64::engine::general_purpose::STANDARD.encode(auth));
    }
    for text in &observed {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a registry password leaked into: {text}"
            );
        }
        // Service-account tokens (and any other JWT) start with the base64 of `{"`.
        assert!(!text.contains("eyJ"), "a token leaked into: {text}");
    }
}

async fn status_json(env: &Env) -> String {
    serde_json::to_string(&env.cps("ecr").await.status).unwrap()
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    body
}
