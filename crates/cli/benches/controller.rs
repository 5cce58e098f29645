//! The pull-secret controller's figures, measured in one run against the sandbox on loopback:
//!
//! 1. upstream exchanges during one refresh of 1,000 target namespaces (goal: exactly 1);
//! 2. API writes during steady-state resyncs (goal: 0);
//! 3. new namespace → secret visible through a watch, p50 / p99 (goal: p99 < 1 s);
//! 4. fan-out to 10,000 namespaces from cold, against as many bare server-side-apply writes of
//!    equal secrets by a minimal kube-rs client at the same concurrency (goal: ≤ 1.3×);
//! 5. RSS of the real `irsa controller` process holding 10,000 namespaces and secrets
//!    (goal: < 64 MiB).
//!
//! 1–3 run the controller in this process (`irsa::lab`), so the sandbox clock can be moved
//! past the refresh point; 4–5 run the `irsa` binary of this package as a child process
//! (Cargo builds it for benches: `CARGO_BIN_EXE_irsa`) against a second, fresh sandbox.
//! Secrets are observed through one kube-rs watch on all secrets, which timestamps each
//! object when it is first seen and hashes its content.
//!
//! `cargo bench -p irsa --bench controller` measures (sizes from `IRSA_BENCH_NAMESPACES`,
//! `IRSA_BENCH_REFRESH_NAMESPACES`, `IRSA_BENCH_LATENCY_SAMPLES`, `IRSA_BENCH_RESYNCS`).
//! Under `cargo test` (no `--bench` argument) it runs a small smoke version. Both fail when a
//! deterministic figure is wrong (exchanges ≠ 1, steady-state writes ≠ 0); the timing and
//! memory goals are reported as met or missed.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt as _, TryStreamExt as _};
use irsa::lab::{IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, Lab, LabConfig};
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
    json!({
        "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
        "metadata": {"name": name},
        "spec": {
            "registries": [{"host": lab.ecr_host()}],
            "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
            "secretName": SECRET_NAME,
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
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

/// Figures 4–5: the `irsa controller` process against a fresh sandbox.
async fn child_process(sizes: &Sizes, table: &mut Table) {
    let lab = start_lab(LabConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("irsa-bench-controller-{}", std::process::id()));
    let state = lab.stack.write_state(&dir).expect("write state");
    let (observer, watch) = Observer::start(lab.new_client().expect("client"));
    let n = sizes.fanout;
    let targets = namespaces(&lab, "ns", n, &json!({"tier": "big"}));

    let concurrency = irsa_controller::ControllerOptions::default().write_concurrency;
    let admin = format!("127.0.0.1:{}", free_port());
    let log = dir.join("controller.log");
    let child = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(["controller", "--metrics-listen", &admin, "--kube-qps", "0"])
        .args(["--write-concurrency", &concurrency.to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &state.kubeconfig)
        .env("AWS_ENDPOINT_URL", &lab.stack.aws_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("IRSA_LOG", "warn")
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
            start.elapsed() < sizes.deadline,
            "irsa controller not ready in time:\n{}",
            child.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let (rss, hwm) = memory(pid);
    let (_, body) = http_get(&admin, "/metrics").await.unwrap_or_default();
    let exchanges = prom(&body, "irsa_upstream_exchanges_total");
    table.row(
        format!("5. `irsa controller` process RSS, {n} namespaces and {n} secrets (VmRSS / VmHWM)"),
        "< 64 MiB",
        format!("{rss:.1} / {hwm:.1} MiB (idle before: {idle_rss:.1} MiB)"),
        Some(rss < 64.0 && hwm < 64.0),
    );

    // 4b. The same number of bare server-side applies of an equal secret, same concurrency.
    let model = Api::<Secret>::namespaced(lab.client.clone(), &targets[0])
        .get(SECRET_NAME)
        .await
        .expect("a controller-written secret");
    let mut labels = model.metadata.labels.clone().unwrap_or_default();
    labels.insert("app.kubernetes.io/managed-by".into(), "bench".into());
    let mut body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": BARE_NAME, "labels": labels},
        "type": model.type_,
        "data": model.data,
    });
    if let Some(annotations) = model.metadata.annotations {
        body["metadata"]["annotations"] = json!(annotations);
    }
    let client = lab.new_client().expect("client");
    let started = Instant::now();
    futures_util::stream::iter(targets.iter())
        .map(|ns| {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let mut body = body.clone();
            body["metadata"]["namespace"] = json!(ns);
            async move {
                api.patch(
                    BARE_NAME,
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
    let done = observer.wait_all(&targets, BARE_NAME, sizes.deadline).await;
    let bare_time = done.saturating_duration_since(started);
    let ratio = controller_time.as_secs_f64() / bare_time.as_secs_f64();
    table.row(
        format!("4. fan-out to {n} namespaces from cold: controller / bare SSA ({concurrency} in flight)"),
        "≤ 1.3×",
        format!(
            "{} / {} = {ratio:.2}× (bare writes returned in {})",
            ms(controller_time),
            ms(bare_time),
            ms(returned)
        ),
        Some(ratio <= 1.3),
    );
    println!("  child: {ctl_writes} API writes, {exchanges} upstream exchanges in all");

    drop(child);
    watch.abort();
    lab.stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
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
    runtime.block_on(async {
        println!("controller figures (in-process controller, sandbox clock):");
        in_process(&sizes, &mut table, &mut failures).await;
        println!("controller figures (`irsa controller` process):");
        child_process(&sizes, &mut table).await;
    });
    table.print();
    assert!(failures.is_empty(), "figures violated: {failures:#?}");
}
