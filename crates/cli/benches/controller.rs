//! The pull-secret controller's figures, measured in one run against the sandbox on loopback:
//!
//! 1. upstream exchanges during one refresh of 1,000 target namespaces (goal: exactly 1);
//! 2. API writes during steady-state resyncs (goal: 0);
//! 3. new namespace → secret visible through a watch, p50 / p99, nothing else going on
//!    (goal: p99 < 1 s);
//! 6. reconciles triggered by creating 1,000 namespaces with 50 ClusterPullSecrets, one of which
//!    selects them (goal: ≤ 2 per namespace for that one, 0 for the other 49);
//! 7. at the flags `irsa install` deploys (`--leader-elect`, default `--kube-qps 100`, burst
//!    200, write concurrency 16): new namespace → secret while a refresh of 10,000 secrets of
//!    the same ClusterPullSecret is in flight, p50 / p99 (goal: p99 < 1 s), and the process RSS
//!    with 10,000 namespaces and secrets afterwards (goal: < 64 MiB). The refresh is made by
//!    seeding every namespace with a secret of the resource whose content hash is outdated, so
//!    that the first reconcile updates all of them, as a refresh does;
//! 4. fan-out to 10,000 namespaces, controller at `--kube-qps 0`, against as many bare
//!    server-side-apply writes of equal secrets by a minimal kube-rs client (no rate limit
//!    either) at the same concurrency (goal: ≤ 1.3×): the median ratio of
//!    `IRSA_BENCH_FANOUT_ROUNDS` rounds (default 5), the first from cold, each later one a new
//!    ClusterPullSecret writing a new secret name into the same namespaces;
//! 5. RSS of that `--kube-qps 0` process too (for comparison).
//!
//! 1–3 and 6 run the controller in this process (`irsa_lab`), so the sandbox clock can be
//! moved past the refresh point; 4, 5 and 7 run the `irsa` binary of this package as a child
//! process (Cargo builds it for benches: `CARGO_BIN_EXE_irsa`) against fresh sandboxes.
//! `IRSA_BENCH_WRAP` (e.g. `heaptrack`) runs the child under a profiler, and
//! `IRSA_BENCH_CHILD_LOG` is the child's `IRSA_LOG` (default `warn`; e.g.
//! `irsa_controller=debug` logs each round of a fan-out with its timings).
//! `IRSA_BENCH_FIGURES` (e.g. `4`, or `4,7`) runs only the groups of figures that include one
//! of those named (1–3, 6, 7 and 4–5 run together); every figure by default.
//! Secrets are observed through one kube-rs watch on all secrets, which timestamps each
//! object when it is first seen and hashes its content.
//!
//! `cargo bench -p irsa --bench controller` measures (sizes from `IRSA_BENCH_NAMESPACES`,
//! `IRSA_BENCH_REFRESH_NAMESPACES`, `IRSA_BENCH_LATENCY_SAMPLES`, `IRSA_BENCH_RESYNCS`,
//! `IRSA_BENCH_TRIGGER_NAMESPACES`, `IRSA_BENCH_TRIGGER_RESOURCES`, `IRSA_BENCH_FANOUT_ROUNDS`).
//! Under `cargo test` (no `--bench` argument) it runs a small smoke version. Both fail when a
//! deterministic figure is wrong (exchanges ≠ 1, steady-state writes ≠ 0, a reconcile of a
//! resource that selects none of the new namespaces); the timing and memory goals are
//! reported as met or missed.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _};
use irsa_lab::{IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, Lab, LabConfig};
use irsa_sandbox::metrics::Counters;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET_NAME: &str = "regcred";
const BARE_NAME: &str = "bare";

struct Sizes {
    fanout: usize,
    refresh: usize,
    latency: usize,
    resyncs: usize,
    trigger_namespaces: usize,
    trigger_resources: usize,
    fanout_rounds: usize,
    deadline: Duration,
}

impl Sizes {
    fn new(measuring: bool) -> Self {
        let var = |name: &str, bench: usize, smoke: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if measuring { bench } else { smoke })
        };
        Self {
            fanout: var("IRSA_BENCH_NAMESPACES", 10_000, 200),
            refresh: var("IRSA_BENCH_REFRESH_NAMESPACES", 1_000, 20),
            latency: var("IRSA_BENCH_LATENCY_SAMPLES", 200, 10),
            resyncs: var("IRSA_BENCH_RESYNCS", 5, 2),
            trigger_namespaces: var("IRSA_BENCH_TRIGGER_NAMESPACES", 1_000, 30),
            trigger_resources: var("IRSA_BENCH_TRIGGER_RESOURCES", 50, 10),
            fanout_rounds: var("IRSA_BENCH_FANOUT_ROUNDS", 5, 2).max(1),
            deadline: Duration::from_secs(if measuring { 300 } else { 60 }),
        }
    }
}

/// When each secret was first seen, and a hash of its content as last seen.
#[derive(Clone, Copy)]
struct Seen {
    first: Instant,
    content: u64,
}

/// One watch on every secret of the sandbox.
#[derive(Clone, Default)]
struct Observer {
    seen: Arc<Mutex<HashMap<(String, String), Seen>>>,
}

impl Observer {
    fn start(client: kube::Client) -> (Observer, tokio::task::JoinHandle<()>) {
        let observer = Observer::default();
        let seen = observer.seen.clone();
        let task = tokio::spawn(async move {
            let api: Api<Secret> = Api::all(client);
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let mut seen = seen.lock().unwrap();
                match event {
                    Ok(Event::Apply(s) | Event::InitApply(s)) => {
                        let key = key(&s);
                        let content = content_hash(&s);
                        seen.entry(key)
                            .and_modify(|e| e.content = content)
                            .or_insert(Seen {
                                first: now,
                                content,
                            });
                    }
                    Ok(Event::Delete(s)) => {
                        seen.remove(&key(&s));
                    }
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => eprintln!("observer watch error (retrying): {e}"),
                }
            }
        });
        (observer, task)
    }

    fn get(&self, ns: &str, name: &str) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap()
            .get(&(ns.to_owned(), name.to_owned()))
            .copied()
    }

    /// Polls the in-memory map (not the server) until `done` holds.
    async fn wait(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&HashMap<(String, String), Seen>) -> bool,
    ) {
        assert!(
            self.try_wait(deadline, done).await,
            "timed out waiting for {what}"
        );
    }

    /// [`Observer::wait`] that returns `false` on timeout.
    async fn try_wait(
        &self,
        deadline: Duration,
        done: impl Fn(&HashMap<(String, String), Seen>) -> bool,
    ) -> bool {
        let start = Instant::now();
        loop {
            if done(&self.seen.lock().unwrap()) {
                return true;
            }
            if start.elapsed() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until `name` exists in every namespace of `namespaces`; returns the last time one
    /// was first seen.
    async fn wait_all(&self, namespaces: &[String], name: &str, deadline: Duration) -> Instant {
        self.wait(
            &format!("{} secrets {name}", namespaces.len()),
            deadline,
            |m| {
                namespaces
                    .iter()
                    .all(|ns| m.contains_key(&(ns.clone(), name.to_owned())))
            },
        )
        .await;
        let m = self.seen.lock().unwrap();
        namespaces
            .iter()
            .map(|ns| m[&(ns.clone(), name.to_owned())].first)
            .max()
            .expect("at least one namespace")
    }
}

fn key(s: &Secret) -> (String, String) {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

fn content_hash(s: &Secret) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(data) = &s.data {
        for (k, v) in data {
            k.hash(&mut h);
            v.0.hash(&mut h);
        }
    }
    h.finish()
}

/// Requests by verb class from the sandbox API server's counters.
struct ApiRequests {
    writes: u64,
    token_requests: u64,
}

fn api_requests(counters: &Counters) -> ApiRequests {
    let mut r = ApiRequests {
        writes: 0,
        token_requests: 0,
    };
    for line in counters.render().lines() {
        let Some(rest) = line.strip_prefix("irsa_sandbox_requests_total{service=\"kubernetes\",")
        else {
            continue;
        };
        let Some(action) = rest
            .strip_prefix("action=\"")
            .and_then(|a| a.split('"').next())
        else {
            continue;
        };
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let verb = action.split(' ').next().unwrap_or_default();
        if action.ends_with("/token") {
            r.token_requests += n;
        } else if matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            r.writes += n;
        }
    }
    r
}

/// A counter from Prometheus text: the sum of every series whose line starts with `prefix`.
fn prom(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until `value` has not changed for `quiet`.
async fn settle<F, Fut>(what: &str, quiet: Duration, deadline: Duration, mut value: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let start = Instant::now();
    let mut last = value().await;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = value().await;
        if v != last {
            last = v;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let n = sorted.len();
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn cps(lab: &Lab, name: &str, labels: Value) -> Value {
    cps_writing(lab, name, SECRET_NAME, labels)
}

/// A ClusterPullSecret writing `secret` into the namespaces labelled `labels`.
fn cps_writing(lab: &Lab, name: &str, secret: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
        "metadata": {"name": name},
        "spec": {
            "registries": [{"host": lab.ecr_host()}],
            "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
            "secretName": secret,
            "namespaces": {"selector": {"matchLabels": labels}},
        },
    })
}

async fn apply_cps(lab: &Lab, obj: &Value) {
    let name = obj["metadata"]["name"].as_str().expect("name");
    Api::<irsa_k8s::ClusterPullSecret>::all(lab.client.clone())
        .patch(
            name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(obj),
        )
        .await
        .expect("apply ClusterPullSecret");
}

/// Waits until the resource's status reports `ready/desired` as `summary`.
async fn wait_summary(lab: &Lab, name: &str, summary: &str, deadline: Duration) {
    let api = Api::<irsa_k8s::ClusterPullSecret>::all(lab.client.clone());
    let start = Instant::now();
    loop {
        let cps = api.get(name).await.expect("get ClusterPullSecret");
        let s = cps
            .status
            .as_ref()
            .and_then(|s| s.targets.as_ref())
            .and_then(|t| t.summary.clone());
        if s.as_deref() == Some(summary) {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out waiting for {name} to report {summary} (last: {s:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates labelled namespaces straight in the sandbox store (set-up, not measured).
fn namespaces(lab: &Lab, prefix: &str, n: usize, labels: &Value) -> Vec<String> {
    let store = lab.stack.api.store();
    (0..n)
        .map(|i| {
            let name = format!("{prefix}-{i:05}");
            store
                .create_object(json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels},
                }))
                .expect("create namespace");
            name
        })
        .collect()
}

async fn start_lab(config: LabConfig) -> Lab {
    let lab = Lab::start(config).await.expect("lab");
    let role = lab
        .register_role(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT)
        .expect("role");
    lab.identity(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, &role)
        .await
        .expect("identity");
    lab
}

struct Row {
    what: String,
    goal: &'static str,
    measured: String,
    met: Option<bool>,
}

struct Table(Vec<Row>);

impl Table {
    fn row(&mut self, what: String, goal: &'static str, measured: String, met: Option<bool>) {
        println!("  {what}: {measured}");
        self.0.push(Row {
            what,
            goal,
            measured,
            met,
        });
    }

    fn print(&self) {
        println!();
        println!("{:<72} {:<10} {:<40} verdict", "figure", "goal", "measured");
        for r in &self.0 {
            let verdict = match r.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            };
            println!("{:<72} {:<10} {:<40} {verdict}", r.what, r.goal, r.measured);
        }
    }
}

/// Figures 1–3: the controller in this process, on the sandbox clock.
async fn in_process(sizes: &Sizes, table: &mut Table, failures: &mut Vec<String>) {
    // ECR tokens of 30 minutes, so that the refresh point (15 min ±10 %) comes before the
    // 1-hour STS session from the first exchange expires on the sandbox clock: the pipeline's
    // AWS credentials cache judges expiry by the system clock, so with 12-hour tokens the
    // refresh's ECR call would present a session the sandbox already considers expired.
    let config = LabConfig {
        ecr_token_lifetime_seconds: 1800,
        ..LabConfig::default()
    };
    let lifetime = config.ecr_token_lifetime_seconds as f64;
    let lab = start_lab(config).await;
    let (observer, watch) = Observer::start(lab.new_client().expect("client"));
    let targets = namespaces(&lab, "team", sizes.refresh, &json!({"pull": "ecr"}));
    let controller = lab
        .spawn_controller(lab.controller_options(), None)
        .await
        .expect("controller");
    assert!(
        tokio::time::timeout(sizes.deadline, controller.handle.wait_ready())
            .await
            .expect("controller ready in time"),
        "controller ready"
    );
    let metrics = controller.handle.metrics().clone();
    let cloud = lab.stack.cloud.counters();
    let api = lab.stack.api.counters().clone();
    let sts = || cloud.total("sts", "AssumeRoleWithWebIdentity");
    let ecr = || cloud.total("ecr", "GetAuthorizationToken");

    // The first fan-out.
    apply_cps(&lab, &cps(&lab, "ecr", json!({"pull": "ecr"}))).await;
    observer
        .wait_all(&targets, SECRET_NAME, sizes.deadline)
        .await;
    let n = sizes.refresh;
    wait_summary(&lab, "ecr", &format!("{n}/{n}"), sizes.deadline).await;
    let writes = || {
        let m = metrics.clone();
        async move { m.writes() }
    };
    settle(
        "writes to settle after the fan-out",
        Duration::from_millis(500),
        sizes.deadline,
        writes,
    )
    .await;

    // 1. One refresh: past the refresh point (0.5 of the lifetime, ±10 %), then a resync.
    let old: HashMap<String, u64> = targets
        .iter()
        .map(|ns| {
            (
                ns.clone(),
                observer.get(ns, SECRET_NAME).expect("seen").content,
            )
        })
        .collect();
    let (ex0, sts0, ecr0) = (metrics.exchanges(), sts(), ecr());
    lab.stack
        .cloud
        .advance(Duration::from_secs_f64(lifetime * 0.6));
    let started = Instant::now();
    controller.handle.resync_all();
    let refreshed = observer
        .try_wait(sizes.deadline.min(Duration::from_secs(60)), |m| {
            old.iter().all(|(ns, h)| {
                m.get(&(ns.clone(), SECRET_NAME.to_owned()))
                    .is_some_and(|s| s.content != *h)
            })
        })
        .await;
    let refresh_time = started.elapsed();
    if !refreshed {
        let updated = observer
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|((ns, name), s)| {
                name == SECRET_NAME && old.get(ns).is_some_and(|h| *h != s.content)
            })
            .count();
        let status = Api::<irsa_k8s::ClusterPullSecret>::all(lab.client.clone())
            .get("ecr")
            .await
            .map(|c| serde_json::to_string(&c.status).unwrap_or_default())
            .unwrap_or_default();
        failures.push(format!(
            "refresh: only {updated}/{n} secrets got new content within {}; status: {status}",
            ms(refresh_time)
        ));
    }
    settle(
        "writes to settle after the refresh",
        Duration::from_millis(500),
        sizes.deadline,
        writes,
    )
    .await;
    let (ex, st, ec) = (metrics.exchanges() - ex0, sts() - sts0, ecr() - ecr0);
    // STS is called at most once: the 1-hour session of the first exchange is still valid at
    // the refresh point, and the pipeline reuses it.
    let ok = refreshed && ex == 1 && st <= 1 && ec == 1;
    if !ok {
        failures.push(format!(
            "refresh of {n} namespaces: {ex} exchanges, {st} STS, {ec} ECR calls (want 1, ≤ 1, 1)"
        ));
    }
    table.row(
        format!("1. upstream exchanges, one refresh of {n} namespaces (controller / STS / ECR)"),
        "1",
        format!("{ex} / {st} / {ec} (all updated in {})", ms(refresh_time)),
        Some(ok),
    );

    // 2. Steady state: resyncs with nothing to do write nothing.
    let reconciles = || {
        prom(
            &metrics.render(0),
            "irsa_reconciles_total{kind=\"ClusterPullSecret\"}",
        )
    };
    let (api0, ctl0) = (api_requests(&api), metrics.writes());
    let ex0 = metrics.exchanges();
    let started = Instant::now();
    for _ in 0..sizes.resyncs {
        let before = reconciles();
        controller.handle.resync_all();
        let start = Instant::now();
        while reconciles() <= before {
            assert!(
                start.elapsed() < sizes.deadline,
                "timed out waiting for a resync"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    settle(
        "reconciles to settle after the resyncs",
        Duration::from_millis(300),
        sizes.deadline,
        || {
            let r = reconciles();
            async move { r }
        },
    )
    .await;
    let resync_time = started.elapsed();
    let api1 = api_requests(&api);
    let (api_w, ctl_w) = (api1.writes - api0.writes, metrics.writes() - ctl0);
    let tokens = api1.token_requests - api0.token_requests;
    let ex = metrics.exchanges() - ex0;
    let ok = api_w == 0 && ctl_w == 0;
    if !ok {
        failures.push(format!(
            "{} steady-state resyncs wrote: {api_w} API server writes, {ctl_w} controller writes (want 0)",
            sizes.resyncs
        ));
    }
    table.row(
        format!(
            "2. API writes, {} steady-state resyncs of {n} namespaces (server / controller)",
            sizes.resyncs
        ),
        "0",
        format!(
            "{api_w} / {ctl_w} ({tokens} TokenRequests, {ex} exchanges; {} per resync)",
            ms(resync_time / sizes.resyncs.max(1) as u32)
        ),
        Some(ok),
    );

    // 3. A new namespace, one at a time: create returned → secret seen by the watch.
    let ns_api: Api<Namespace> = Api::all(lab.client.clone());
    let mut samples = Vec::with_capacity(sizes.latency);
    for i in 0..sizes.latency {
        let name = format!("late-{i:04}");
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pull": "ecr"}},
        }))
        .expect("namespace");
        ns_api
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let created = Instant::now();
        observer
            .wait(&format!("secret in {name}"), sizes.deadline, |m| {
                m.contains_key(&(name.clone(), SECRET_NAME.to_owned()))
            })
            .await;
        let seen = observer.get(&name, SECRET_NAME).expect("seen").first;
        samples.push(seen.saturating_duration_since(created));
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    table.row(
        format!(
            "3. new namespace → secret (watch), {} namespaces one at a time: p50 / p99",
            sizes.latency
        ),
        "p99 < 1 s",
        format!(
            "{} / {} (max {})",
            ms(p50),
            ms(p99),
            ms(*samples.last().expect("samples"))
        ),
        Some(p99 < Duration::from_secs(1)),
    );

    controller.stop().await.expect("controller stops");
    watch.abort();
    lab.stack.shutdown().await;
}

/// Figure 6: reconciles per resource when namespaces arrive that one of many resources selects.
async fn triggered(sizes: &Sizes, table: &mut Table, failures: &mut Vec<String>) {
    let lab = start_lab(LabConfig::default()).await;
    let (observer, watch) = Observer::start(lab.new_client().expect("client"));
    let controller = lab
        .spawn_controller(lab.controller_options(), None)
        .await
        .expect("controller");
    assert!(
        tokio::time::timeout(sizes.deadline, controller.handle.wait_ready())
            .await
            .expect("controller ready in time"),
        "controller ready"
    );
    let metrics = controller.handle.metrics().clone();
    let r = sizes.trigger_resources.max(1);
    let names: Vec<String> = (0..r)
        .map(|i| {
            if i == 0 {
                "wave".to_owned()
            } else {
                format!("idle-{i:02}")
            }
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let labels = if i == 0 {
            json!({"wave": "yes"})
        } else {
            json!({"wave": format!("no-{i}")})
        };
        apply_cps(&lab, &cps(&lab, name, labels)).await;
    }
    for name in &names {
        wait_summary(&lab, name, "0/0", sizes.deadline).await;
    }
    let of = |name: &str| {
        metrics.reconciles_of(&irsa_controller::plan::Owner::Cluster {
            name: name.to_owned(),
        })
    };
    let total = || {
        let names = names.clone();
        let m = metrics.clone();
        async move {
            names
                .iter()
                .map(|n| {
                    m.reconciles_of(&irsa_controller::plan::Owner::Cluster { name: n.clone() })
                })
                .sum::<u64>()
        }
    };
    settle(
        "reconciles to settle before the namespaces",
        Duration::from_millis(500),
        sizes.deadline,
        total,
    )
    .await;
    let before: Vec<u64> = names.iter().map(|n| of(n)).collect();
    let n = sizes.trigger_namespaces;
    let ns_api: Api<Namespace> = Api::all(lab.client.clone());
    let created: Vec<String> = (0..n).map(|i| format!("wave-{i:05}")).collect();
    futures_util::stream::iter(created.iter())
        .map(|name| {
            let ns: Namespace = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"wave": "yes"}},
            }))
            .expect("namespace");
            let api = ns_api.clone();
            async move { api.create(&PostParams::default(), &ns).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("create namespaces");
    observer
        .wait_all(&created, SECRET_NAME, sizes.deadline)
        .await;
    wait_summary(&lab, "wave", &format!("{n}/{n}"), sizes.deadline).await;
    settle(
        "reconciles to settle after the namespaces",
        Duration::from_millis(1000),
        sizes.deadline,
        total,
    )
    .await;
    let after: Vec<u64> = names.iter().map(|n| of(n)).collect();
    let selecting = after[0] - before[0];
    let others: u64 = after[1..]
        .iter()
        .zip(&before[1..])
        .map(|(a, b)| a - b)
        .sum();
    if others != 0 {
        failures.push(format!(
            "creating {n} namespaces reconciled the {} resources that select none of them {others} times (want 0)",
            r - 1
        ));
    }
    table.row(
        format!(
            "6. reconciles from creating {n} namespaces, {r} ClusterPullSecrets, 1 selecting (selecting / others)"
        ),
        "≤ 2/ns, 0",
        format!(
            "{selecting} ({:.2}/ns) / {others}",
            selecting as f64 / n.max(1) as f64
        ),
        Some(others == 0 && selecting <= 2 * n as u64),
    );
    controller.stop().await.expect("controller stops");
    watch.abort();
    lab.stack.shutdown().await;
}

/// GET `path` from the child's admin server; (status, body).
async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// (VmRSS, VmHWM) in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let m = Memory::of(pid);
    (m.rss, m.hwm)
}

/// A process's resident memory in MiB, and where it is: `anon` is the heap and stacks, `file`
/// the pages of the binary (and libraries) it touched.
struct Memory {
    rss: f64,
    hwm: f64,
    anon: f64,
    file: f64,
}

impl Memory {
    fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        Self {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }

    fn split(&self) -> String {
        format!("anon {:.1} + file {:.1}", self.anon, self.file)
    }
}

struct ChildController {
    child: Child,
    log: PathBuf,
}

impl ChildController {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ChildController {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `irsa controller` child and its admin address.
struct Spawned {
    /// Killed on drop.
    _child: ChildController,
    admin: String,
    pid: u32,
}

/// Starts `irsa controller ARGS --metrics-listen=…` against `lab` and waits until ready.
async fn spawn_child(
    lab: &Lab,
    dir: &std::path::Path,
    args: &[&str],
    deadline: Duration,
) -> Spawned {
    let state = lab.stack.write_state(dir).expect("write state");
    let admin = format!("127.0.0.1:{}", free_port());
    let log = dir.join("controller.log");
    let bin = env!("CARGO_BIN_EXE_irsa");
    let mut command = match std::env::var_os("IRSA_BENCH_WRAP") {
        Some(wrap) => {
            let mut c = Command::new(wrap);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let child = command
        .arg("controller")
        .args(args)
        .arg(format!("--metrics-listen={admin}"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &state.kubeconfig)
        .env("AWS_ENDPOINT_URL", &lab.stack.aws_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("POD_NAME", "irsa-bench")
        .env("POD_NAMESPACE", LEASE_NAMESPACE)
        .env(
            "IRSA_LOG",
            std::env::var_os("IRSA_BENCH_CHILD_LOG").unwrap_or_else(|| "warn".into()),
        )
        // As `irsa install` deploys it.
        .env(
            "GLIBC_TUNABLES",
            irsa_k8s::install::CONTROLLER_GLIBC_TUNABLES,
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("irsa controller starts");
    let child = ChildController { child, log };
    let pid = child.child.id();
    let start = Instant::now();
    loop {
        if let Some((200, _)) = http_get(&admin, "/readyz").await {
            break;
        }
        assert!(
            start.elapsed() < deadline,
            "irsa controller not ready in time:\n{}",
            child.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Spawned {
        _child: child,
        admin,
        pid,
    }
}

/// The namespace of the controller's Lease in the child runs (the lab creates it).
const LEASE_NAMESPACE: &str = "irsa-system";

/// Figure 7: `irsa controller` at the flags `irsa install` deploys, a refresh of every secret
/// in flight while new namespaces arrive, then its RSS.
async fn child_install_defaults(sizes: &Sizes, table: &mut Table, failures: &mut Vec<String>) {
    let lab = start_lab(LabConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("irsa-bench-defaults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let store = lab.stack.api.store();
    let n = sizes.fanout;
    let targets = namespaces(&lab, "ns", n, &json!({"tier": "big"}));
    // Every namespace already holds the resource's secret, with an outdated content hash: the
    // first reconcile updates all of them, as a refresh does.
    for ns in &targets {
        store
            .create_object(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {
                    "name": SECRET_NAME, "namespace": ns,
                    "labels": {
                        "app.kubernetes.io/managed-by": "irsa",
                        "irsa.dev/owner-kind": "ClusterPullSecret",
                        "irsa.dev/owner-name": "big",
                    },
                    "annotations": {"irsa.dev/content-hash": "sha256:outdated"},
                },
                "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},
            }))
            .expect("outdated secret");
    }
    let (observer, watch) = Observer::start(lab.new_client().expect("client"));
    observer
        .wait("the outdated secrets", sizes.deadline, |m| m.len() >= n)
        .await;
    let old: HashMap<String, u64> = targets
        .iter()
        .map(|ns| {
            (
                ns.clone(),
                observer.get(ns, SECRET_NAME).expect("seen").content,
            )
        })
        .collect();
    let refreshed = |m: &HashMap<(String, String), Seen>| {
        old.iter()
            .filter(|(ns, h)| {
                m.get(&((*ns).clone(), SECRET_NAME.to_owned()))
                    .is_some_and(|s| s.content != **h)
            })
            .count()
    };
    let spawned = spawn_child(&lab, &dir, &["--leader-elect"], sizes.deadline).await;

    let started = Instant::now();
    apply_cps(&lab, &cps(&lab, "big", json!({"tier": "big"}))).await;
    // New namespaces, one at a time, while the refresh runs.
    let ns_api: Api<Namespace> = Api::all(lab.client.clone());
    let mut samples = Vec::new();
    let mut late = Vec::new();
    for i in 0..sizes.latency {
        if refreshed(&observer.seen.lock().unwrap()) >= n {
            break;
        }
        let name = format!("late-{i:04}");
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"tier": "big"}},
        }))
        .expect("namespace");
        ns_api
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let created = Instant::now();
        observer
            .wait(&format!("secret in {name}"), sizes.deadline, |m| {
                m.contains_key(&(name.clone(), SECRET_NAME.to_owned()))
            })
            .await;
        let seen = observer.get(&name, SECRET_NAME).expect("seen").first;
        samples.push(seen.saturating_duration_since(created));
        late.push(name);
        // Spread the samples over the refresh.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_refreshed = observer
        .try_wait(sizes.deadline, |m| refreshed(m) >= n)
        .await;
    let refresh_time = started.elapsed();
    if !all_refreshed {
        failures.push(format!(
            "install defaults: only {}/{n} secrets refreshed within {}",
            refreshed(&observer.seen.lock().unwrap()),
            ms(refresh_time)
        ));
    }
    let total = n + late.len();
    wait_summary(&lab, "big", &format!("{total}/{total}"), sizes.deadline).await;
    let sampled = samples.len();
    if sampled > 0 {
        samples.sort();
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        table.row(
            format!(
                "7a. new namespace → secret during a refresh of {n} secrets, install flags: p50 / p99 ({sampled} samples)"
            ),
            "p99 < 1 s",
            format!(
                "{} / {} (max {}; refresh took {})",
                ms(p50),
                ms(p99),
                ms(*samples.last().expect("samples")),
                ms(refresh_time)
            ),
            Some(p99 < Duration::from_secs(1)),
        );
    } else {
        println!("  (the refresh of {n} secrets finished before a new namespace could be sampled)");
    }
    let writes = || {
        let admin = spawned.admin.clone();
        async move {
            let (_, body) = http_get(&admin, "/metrics").await.unwrap_or_default();
            prom(&body, "irsa_api_writes_total")
        }
    };
    settle(
        "the child's writes to settle",
        Duration::from_secs(2),
        sizes.deadline,
        writes,
    )
    .await;
    let mem = Memory::of(spawned.pid);
    let (rss, hwm) = (mem.rss, mem.hwm);
    table.row(
        format!("7b. `irsa controller` RSS, {total} namespaces and secrets, install flags (VmRSS / VmHWM)"),
        "< 64 MiB",
        format!("{rss:.1} / {hwm:.1} MiB ({})", mem.split()),
        Some(rss < 64.0 && hwm < 64.0),
    );
    drop(spawned);
    watch.abort();
    lab.stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Figures 4–5: the `irsa controller` process at `--kube-qps 0` against a fresh sandbox.
async fn child_process(sizes: &Sizes, table: &mut Table) {
    let lab = start_lab(LabConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("irsa-bench-controller-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let (observer, watch) = Observer::start(lab.new_client().expect("client"));
    let n = sizes.fanout;
    let targets = namespaces(&lab, "ns", n, &json!({"tier": "big"}));

    let concurrency = irsa_controller::ControllerOptions::default().write_concurrency;
    let concurrency_arg = concurrency.to_string();
    let spawned = spawn_child(
        &lab,
        &dir,
        &["--kube-qps", "0", "--write-concurrency", &concurrency_arg],
        sizes.deadline,
    )
    .await;
    let (admin, pid) = (spawned.admin.clone(), spawned.pid);
    let (idle_rss, _) = memory(pid);

    // 4a. The controller's fan-out from cold.
    let started = Instant::now();
    apply_cps(&lab, &cps(&lab, "big", json!({"tier": "big"}))).await;
    let done = observer
        .wait_all(&targets, SECRET_NAME, sizes.deadline)
        .await;
    let controller_time = done.saturating_duration_since(started);
    wait_summary(&lab, "big", &format!("{n}/{n}"), sizes.deadline).await;

    // 5. Memory in steady state: the fan-out done, no write for 2 s.
    let writes = || {
        let admin = admin.clone();
        async move {
            let (_, body) = http_get(&admin, "/metrics").await.unwrap_or_default();
            prom(&body, "irsa_api_writes_total")
        }
    };
    let ctl_writes = settle(
        "the child's writes to settle",
        Duration::from_secs(2),
        sizes.deadline,
        writes,
    )
    .await;
    let mem = Memory::of(pid);
    let (rss, hwm) = (mem.rss, mem.hwm);
    let (_, body) = http_get(&admin, "/metrics").await.unwrap_or_default();
    let exchanges = prom(&body, "irsa_upstream_exchanges_total");
    table.row(
        format!(
            "5. `irsa controller` RSS, {n} namespaces and secrets, --kube-qps 0 (VmRSS / VmHWM)"
        ),
        "< 64 MiB",
        format!(
            "{rss:.1} / {hwm:.1} MiB ({}; idle before: {idle_rss:.1} MiB)",
            mem.split()
        ),
        Some(rss < 64.0 && hwm < 64.0),
    );

    // 4b. The same number of bare server-side applies of an equal secret, same concurrency.
    // Then more rounds of both (a new ClusterPullSecret writing a new secret name, new bare
    // names; the credential is cached by then): the ratio is the median of the rounds'.
    let model = Api::<Secret>::namespaced(lab.client.clone(), &targets[0])
        .get(SECRET_NAME)
        .await
        .expect("a controller-written secret");
    let client = lab.new_client().expect("client");
    let mut rounds = Vec::new();
    for round in 0..sizes.fanout_rounds {
        let controller_time = if round == 0 {
            controller_time
        } else {
            let (name, secret) = (format!("big-{round}"), format!("{SECRET_NAME}-{round}"));
            let started = Instant::now();
            apply_cps(
                &lab,
                &cps_writing(&lab, &name, &secret, json!({"tier": "big"})),
            )
            .await;
            let done = observer.wait_all(&targets, &secret, sizes.deadline).await;
            wait_summary(&lab, &name, &format!("{n}/{n}"), sizes.deadline).await;
            done.saturating_duration_since(started)
        };
        let bare = format!("{BARE_NAME}-{round}");
        let (bare_time, returned) = bare_fanout(
            &client,
            &observer,
            &model,
            &targets,
            &bare,
            concurrency,
            sizes.deadline,
        )
        .await;
        rounds.push((controller_time, bare_time, returned));
    }
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|(c, b, _)| c.as_secs_f64() / b.as_secs_f64())
        .collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let ratio = sorted[sorted.len() / 2];
    let median = |pick: fn(&(Duration, Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = rounds.iter().map(pick).collect();
        v.sort();
        v[v.len() / 2]
    };
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    table.row(
        format!("4. fan-out to {n} namespaces, both --kube-qps 0: controller / bare SSA ({concurrency} in flight), median of {} rounds (first from cold)", rounds.len()),
        "≤ 1.3×",
        format!(
            "{} / {} = {ratio:.2}× (rounds: {}; bare writes returned in {})",
            ms(median(|r| r.0)),
            ms(median(|r| r.1)),
            each.join(", "),
            ms(median(|r| r.2))
        ),
        Some(ratio <= 1.3),
    );
    println!("  child: {ctl_writes} API writes, {exchanges} upstream exchanges in all");

    drop(spawned);
    watch.abort();
    lab.stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Server-side applies of a copy of `model` named `name` into every target, `concurrency` in
/// flight, by a minimal kube-rs client: until every copy is seen by the watch, and until the
/// last write returned.
async fn bare_fanout(
    client: &kube::Client,
    observer: &Observer,
    model: &Secret,
    targets: &[String],
    name: &str,
    concurrency: usize,
    deadline: Duration,
) -> (Duration, Duration) {
    let mut labels = model.metadata.labels.clone().unwrap_or_default();
    labels.insert("app.kubernetes.io/managed-by".into(), "bench".into());
    let mut body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": model.type_,
        "data": model.data,
    });
    if let Some(annotations) = &model.metadata.annotations {
        body["metadata"]["annotations"] = json!(annotations);
    }
    let started = Instant::now();
    futures_util::stream::iter(targets.iter())
        .map(|ns| {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let mut body = body.clone();
            body["metadata"]["namespace"] = json!(ns);
            async move {
                api.patch(
                    name,
                    &PatchParams::apply("bench-bare"),
                    &Patch::Apply(&body),
                )
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await
        .expect("bare server-side applies");
    let returned = started.elapsed();
    let done = observer.wait_all(targets, name, deadline).await;
    (done.saturating_duration_since(started), returned)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = Sizes::new(measuring);
    if std::env::var_os("IRSA_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("IRSA_LOG"))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Table(Vec::new());
    let mut failures = Vec::new();
    let figures: Option<Vec<u32>> = std::env::var("IRSA_BENCH_FIGURES").ok().map(|v| {
        v.split(',')
            .map(|f| {
                f.trim().parse().unwrap_or_else(|_| {
                    panic!("IRSA_BENCH_FIGURES={v:?}: want figure numbers, e.g. 4 or 4,7")
                })
            })
            .collect()
    });
    let runs = |group: &[u32]| {
        figures
            .as_ref()
            .is_none_or(|f| f.iter().any(|n| group.contains(n)))
    };
    runtime.block_on(async {
        if runs(&[1, 2, 3]) {
            println!("controller figures (in-process controller, sandbox clock):");
            in_process(&sizes, &mut table, &mut failures).await;
        }
        if runs(&[6]) {
            println!("controller figures (reconciles triggered, in-process controller):");
            triggered(&sizes, &mut table, &mut failures).await;
        }
        if runs(&[7]) {
            println!("controller figures (`irsa controller` process, install flags):");
            child_install_defaults(&sizes, &mut table, &mut failures).await;
        }
        if runs(&[4, 5]) {
            println!("controller figures (`irsa controller` process, --kube-qps 0):");
            child_process(&sizes, &mut table).await;
        }
    });
    table.print();
    assert!(failures.is_empty(), "figures violated: {failures:#?}");
}
