//! The pod identity webhook's figures, measured against the `irsa webhook` process as a user
//! runs it (the defaults of `irsa webhook --help`, `--bind 127.0.0.1 --port P` and a serving
//! certificate) against an `irsa sandbox` process, both children of this bench on loopback:
//!
//! 1. admission latency p50 / p99 and achieved throughput at a fixed offered rate (default
//!    1,000 requests/s) over TLS with keep-alive (default 4 connections), for a realistic pod
//!    (two containers and an init container, a service account with a role ARN, cached), goal
//!    p99 < 1 ms. Open loop: a pacing thread releases request `i` at `start + i / rate` into a
//!    queue the connections take from, and latency counts from that scheduled time, so a slow
//!    answer delays the requests behind it in the measurement too (no coordinated omission).
//!    The first seconds are warm-up and not counted. Measured again with 10,000 accounts cached;
//! 2. the webhook's RSS (VmRSS / VmHWM) right after `/readyz`, and with 10,000 more service
//!    accounts (created through the API, 32 in flight) once `/metrics` counts every account the
//!    API lists and a pod of the last one is admitted from the cache, goal < 32 MiB;
//! 3. service account created (the API's answer) → a pod using it admitted with credentials,
//!    p50 / p99: the pod is sent at once, and the webhook waits up to its lookup grace period
//!    (default 100 ms) for the watch, so the answer comes when the watch delivered the account.
//!    Answers that needed the API-server fallback instead are counted
//!    (`irsa_webhook_service_account_api_lookups_total`);
//! 4. for comparison, the in-process cost of one review (decode, mutate, encode) of the same
//!    pod, without TLS or HTTP.
//!
//! `cargo bench -p irsa --bench webhook` measures (sizes from `IRSA_BENCH_RATE`,
//! `IRSA_BENCH_SECONDS`, `IRSA_BENCH_WARMUP_SECONDS`, `IRSA_BENCH_CONNECTIONS`,
//! `IRSA_BENCH_SERVICE_ACCOUNTS`, `IRSA_BENCH_SERVABLE_SAMPLES`; `IRSA_BENCH_WRAP`, e.g.
//! `heaptrack`, runs the webhook under a profiler). Under `cargo test` (no `--bench` argument)
//! it runs a small smoke version. Both fail when an answer is wrong (not allowed, no patch, the
//! wrong uid, a fail-open); the timing and memory goals are reported as met or missed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
/// The name the serving certificate is for, and the client verifies.
const SERVER_NAME: &str = "irsa-webhook.irsa-system.svc";
/// The uid in the request template, replaced per request.
const UID_MARK: &str = "@@UID@@";

struct Sizes {
    rate: u32,
    seconds: f64,
    warmup: f64,
    connections: usize,
    service_accounts: usize,
    servable: usize,
    in_process: usize,
    deadline: Duration,
}

impl Sizes {
    fn new(measuring: bool) -> Self {
        fn var<T: std::str::FromStr>(name: &str, bench: T, smoke: T, measuring: bool) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if measuring { bench } else { smoke })
        }
        Self {
            rate: var("IRSA_BENCH_RATE", 1_000, 200, measuring),
            seconds: var("IRSA_BENCH_SECONDS", 10.0, 1.0, measuring),
            warmup: var("IRSA_BENCH_WARMUP_SECONDS", 2.0, 0.2, measuring),
            connections: var("IRSA_BENCH_CONNECTIONS", 4, 2, measuring),
            service_accounts: var("IRSA_BENCH_SERVICE_ACCOUNTS", 10_000, 200, measuring),
            servable: var("IRSA_BENCH_SERVABLE_SAMPLES", 200, 10, measuring),
            in_process: if measuring { 20_000 } else { 200 },
            deadline: Duration::from_secs(if measuring { 300 } else { 60 }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child killed (SIGTERM, then SIGKILL) on drop.
struct Process {
    child: Child,
    log: PathBuf,
    /// Under `IRSA_BENCH_WRAP`, the `irsa` process the wrapper started.
    wrapped: Option<u32>,
}

impl Process {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The `irsa` process itself (under a wrapper, the one whose command line holds `needle`).
    fn pid(&self) -> u32 {
        self.wrapped.unwrap_or(self.child.id())
    }

    /// Under a wrapper, find the `irsa` process it started: the one whose command line runs the
    /// bench's `irsa` binary with `needle` among its arguments.
    fn find_wrapped(&mut self, needle: &str) {
        let bin = env!("CARGO_BIN_EXE_irsa");
        let found = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != self.child.id())
            .find(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| *a == bin.as_bytes())
                    && args.contains(&needle.as_bytes())
            });
        self.wrapped = found;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn irsa_command() -> Command {
    command(env!("CARGO_BIN_EXE_irsa"))
}

/// `program` with a clean environment and warnings-only logs.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("IRSA_LOG", "warn")
        .stdout(Stdio::null());
    c
}

/// `irsa sandbox` on loopback; returns it and its kubeconfig.
fn start_sandbox(dir: &Path, deadline: Duration) -> (Process, PathBuf) {
    let state = dir.join("state");
    let log = dir.join("sandbox.log");
    let child = irsa_command()
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--aws-listen",
            "127.0.0.1:0",
            "--no-registry",
        ])
        .arg("--state-dir")
        .arg(&state)
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("irsa sandbox starts");
    let mut sandbox = Process {
        child,
        log,
        wrapped: None,
    };
    let env_file = state.join("env");
    let start = Instant::now();
    while !env_file.exists() {
        if let Ok(Some(status)) = sandbox.child.try_wait() {
            panic!("irsa sandbox exited with {status}:\n{}", sandbox.log_tail());
        }
        assert!(start.elapsed() < deadline, "the sandbox wrote no env file");
        std::thread::sleep(Duration::from_millis(20));
    }
    (sandbox, state.join("kubeconfig"))
}

async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("the sandbox's kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
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

// ---------------------------------------------------------------------------------------------
// The HTTPS client

#[derive(Clone)]
struct Tls {
    addr: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

impl Tls {
    fn new(addr: std::net::SocketAddr, ca_pem: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            addr,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// One keep-alive connection, as kube-apiserver holds them.
    async fn connect(&self) -> std::io::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(SERVER_NAME).expect("server name");
        let tls = self.connector.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    /// `GET path` on a new connection; `None` while the server is not up.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut c = self.connect().await.ok()?;
        let (status, body) = c.send("GET", path, Bytes::new()).await.ok()?;
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some((200, body)) => body,
            other => panic!("GET /metrics: {other:?}"),
        }
    }
}

struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), hyper::Error> {
        self.sender.ready().await?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", SERVER_NAME)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A counter or gauge from Prometheus text.
fn prom(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

// ---------------------------------------------------------------------------------------------
// The pod and its review

/// A pod as kube-apiserver sends it after its own admission: two containers and an init
/// container with resources, ports, probes and env, the API-access volume already mounted.
fn pod(namespace: &str, service_account: &str) -> Value {
    let access = json!({"name": "kube-api-access-x7k2p", "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
    let resources =
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}});
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": "app-7d9f8c6b5-", "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "app", "pod-template-hash": "7d9f8c6b5"},
            "annotations": {"kubectl.kubernetes.io/default-container": "app"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-7d9f8c6b5",
                "uid": "0b6c2a8e-1f0d-4a3b-9c5e-2d7f8e9a1b3c", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "serviceAccountName": service_account, "serviceAccount": service_account,
            "initContainers": [{
                "name": "migrate", "image": "registry.example.com/app:1.4.2",
                "command": ["/app", "migrate"], "env": [{"name": "DB_HOST", "value": "db"}],
                "resources": resources, "volumeMounts": [access],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }],
            "containers": [
                {
                    "name": "app", "image": "registry.example.com/app:1.4.2",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                    "resources": resources,
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                        "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "volumeMounts": [access],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                },
                {
                    "name": "proxy", "image": "registry.example.com/proxy:2.0.1",
                    "args": ["--upstream", "127.0.0.1:8080"],
                    "ports": [{"name": "https", "containerPort": 8443, "protocol": "TCP"}],
                    "resources": resources, "volumeMounts": [access],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                },
            ],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0, "securityContext": {},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    })
}

/// The AdmissionReview kube-apiserver sends for `pod`, with [`UID_MARK`] as its uid.
fn review_template(pod: &Value) -> String {
    let namespace = pod["metadata"]["namespace"].clone();
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": UID_MARK,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5e3c1f2a-7b8d-4e6f-a1c2-3d4e5f6a7b8c",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
    .to_string()
}

/// A review body from the template, with its own uid.
struct Reviews {
    before: String,
    after: String,
}

impl Reviews {
    fn new(pod: &Value) -> Self {
        let template = review_template(pod);
        let (before, after) = template.split_once(UID_MARK).expect("uid mark");
        Self {
            before: before.to_owned(),
            after: after.to_owned(),
        }
    }

    fn body(&self, uid: &str) -> Bytes {
        Bytes::from(format!("{}{uid}{}", self.before, self.after))
    }
}

/// JSON-patch operations of a full answer check: allowed, the uid, a patch.
fn patch_ops(answer: &[u8], uid: &str) -> Result<usize, String> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
    let r = &v["response"];
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview v1: {v}"));
    }
    if r["uid"] != uid || r["allowed"] != true || r["patchType"] != "JSONPatch" {
        return Err(format!("unexpected response: {r}"));
    }
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap_or_default())
        .map_err(|e| format!("patch not base64: {e}"))?;
    let ops: Vec<Value> =
        serde_json::from_slice(&patch).map_err(|e| format!("patch not JSON: {e}"))?;
    Ok(ops.len())
}

/// The cheap check of every answer under load: the uid echoed, a patch.
fn quick_check(answer: &[u8], uid: &str) -> bool {
    let text = String::from_utf8_lossy(answer);
    text.contains(&format!("\"uid\":\"{uid}\"")) && text.contains("\"patchType\":\"JSONPatch\"")
}

// ---------------------------------------------------------------------------------------------
// Figures

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let n = sorted.len();
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
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
        println!("{:<84} {:<10} {:<48} verdict", "figure", "goal", "measured");
        for r in &self.0 {
            let verdict = match r.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            };
            println!("{:<84} {:<10} {:<48} {verdict}", r.what, r.goal, r.measured);
        }
    }
}

struct Load {
    /// Scheduled send → answer, of the counted requests, sorted.
    latency: Vec<Duration>,
    /// Actual send → answer, of the counted requests, sorted.
    service: Vec<Duration>,
    /// Counted requests per second: answers / (last answer − first counted scheduled time).
    achieved: f64,
    /// Most the pacing thread released a request after its scheduled time.
    pacer_late: Duration,
    wrong: Vec<String>,
}

/// The open-loop load: `rate` requests/s for `warmup + seconds` over `connections` keep-alive
/// connections; the warm-up's requests are not counted.
async fn open_loop(tls: &Tls, reviews: Arc<Reviews>, sizes: &Sizes) -> Load {
    let interval = Duration::from_secs_f64(1.0 / f64::from(sizes.rate));
    let warm = (sizes.warmup * f64::from(sizes.rate)).round() as usize;
    let counted = (sizes.seconds * f64::from(sizes.rate)).round() as usize;
    let total = warm + counted;
    let mut conns = Vec::new();
    for _ in 0..sizes.connections {
        conns.push(tls.connect().await.expect("connect"));
    }
    // A full check of one answer before the load.
    let (status, body) = conns[0]
        .send("POST", "/mutate", reviews.body("check"))
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let ops = patch_ops(&body, "check").expect("a full answer");
    println!("  (the pod's patch has {ops} operations)");

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    // The pacer: a thread, because tokio's timer wheel has a 1 ms granularity.
    let pacer = std::thread::spawn(move || {
        let mut late = Duration::ZERO;
        for i in 0..total {
            let at = start + interval * i as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            late = late.max(Instant::now().saturating_duration_since(at));
            if tx.send((i, at)).is_err() {
                break;
            }
        }
        late
    });
    let mut workers = tokio::task::JoinSet::new();
    for mut conn in conns {
        let rx = rx.clone();
        let reviews = reviews.clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            let mut wrong = Vec::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some((i, at)) = next else { break };
                let uid = format!("bench-{i}");
                let body = reviews.body(&uid);
                let sent = Instant::now();
                match conn.send("POST", "/mutate", body).await {
                    Ok((200, answer)) if quick_check(&answer, &uid) => {
                        let done = Instant::now();
                        out.push((i, at, sent, done));
                    }
                    Ok((status, answer)) => wrong.push(format!(
                        "request {i}: {status} {}",
                        String::from_utf8_lossy(&answer)
                    )),
                    Err(e) => {
                        wrong.push(format!("request {i}: {e}"));
                        break;
                    }
                }
            }
            (out, wrong)
        });
    }
    let mut samples = Vec::new();
    let mut wrong = Vec::new();
    while let Some(r) = workers.join_next().await {
        let (s, w) = r.expect("worker");
        samples.extend(s);
        wrong.extend(w);
    }
    let pacer_late = pacer.join().expect("pacer");
    let counted: Vec<_> = samples.into_iter().filter(|s| s.0 >= warm).collect();
    let first = start + interval * warm as u32;
    let last = counted.iter().map(|s| s.3).max().unwrap_or(first);
    let achieved = counted.len() as f64 / last.saturating_duration_since(first).as_secs_f64();
    let mut latency: Vec<Duration> = counted.iter().map(|s| s.3 - s.1).collect();
    let mut service: Vec<Duration> = counted.iter().map(|s| s.3 - s.2).collect();
    latency.sort();
    service.sort();
    Load {
        latency,
        service,
        achieved,
        pacer_late,
        wrong,
    }
}

fn load_row(table: &mut Table, failures: &mut Vec<String>, load: &Load, what: &str, s: &Sizes) {
    if !load.wrong.is_empty() {
        failures.push(format!(
            "{what}: {} wrong answers, first: {}",
            load.wrong.len(),
            load.wrong[0]
        ));
    }
    if load.latency.is_empty() {
        failures.push(format!("{what}: no answers"));
        return;
    }
    let (p50, p99) = (
        percentile(&load.latency, 0.5),
        percentile(&load.latency, 0.99),
    );
    table.row(
        format!(
            "{what}: p50 / p99 from scheduled send, {} req/s offered, {} conns, {} s",
            s.rate, s.connections, s.seconds
        ),
        "p99 < 1 ms",
        format!(
            "{} / {} (max {})",
            ms(p50),
            ms(p99),
            ms(*load.latency.last().expect("samples"))
        ),
        Some(p99 < Duration::from_millis(1)),
    );
    table.row(
        format!("{what}: throughput achieved; send → answer p50 / p99"),
        "",
        format!(
            "{:.0} req/s; {} / {}",
            load.achieved,
            ms(percentile(&load.service, 0.5)),
            ms(percentile(&load.service, 0.99))
        ),
        None,
    );
    println!(
        "  ({} answers counted; the pacing thread was at most {} late)",
        load.latency.len(),
        ms(load.pacer_late)
    );
}

async fn wait_for(what: &str, deadline: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

fn service_account(name: &str) -> ServiceAccount {
    serde_json::from_value(json!({"metadata": {
        "name": name,
        "labels": {"app.kubernetes.io/name": name},
        "annotations": {
            "eks.amazonaws.com/role-arn": format!("{ROLE}-{name}"),
            "eks.amazonaws.com/token-expiration": "3600",
        },
    }}))
    .expect("service account")
}

async fn all_service_accounts(client: &kube::Client) -> u64 {
    Api::<ServiceAccount>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("list service accounts")
        .items
        .len() as u64
}

/// The in-process cost of one review, without TLS or HTTP.
async fn in_process(sizes: &Sizes, table: &mut Table) {
    use irsa_webhook::admission::{Timing, Webhook};
    use irsa_webhook::cache::ServiceAccountCache;
    let config = irsa_webhook::Config::default();
    let cache = Arc::new(ServiceAccountCache::new(&config));
    cache.apply(
        "team",
        "app",
        &[("eks.amazonaws.com/role-arn".to_owned(), ROLE.to_owned())].into(),
    );
    let webhook = Webhook::new(config, cache, None, Timing::default());
    let reviews = Reviews::new(&pod("team", "app"));
    let body = reviews.body("in-process");
    let (status, answer) = webhook.review(&body).await;
    assert_eq!(status, 200);
    patch_ops(&serde_json::to_vec(&answer).expect("json"), "in-process").expect("a full answer");
    let mut samples = Vec::with_capacity(sizes.in_process);
    for _ in 0..sizes.in_process {
        let start = Instant::now();
        let (_, answer) = webhook.review(&body).await;
        let bytes = serde_json::to_vec(&answer).expect("json");
        samples.push(start.elapsed());
        std::hint::black_box(bytes);
    }
    samples.sort();
    table.row(
        format!(
            "4. in-process review (decode, mutate, encode), same pod: p50 / p99 ({} runs)",
            sizes.in_process
        ),
        "",
        format!(
            "{:.1} µs / {:.1} µs",
            percentile(&samples, 0.5).as_secs_f64() * 1e6,
            percentile(&samples, 0.99).as_secs_f64() * 1e6
        ),
        None,
    );
}

async fn process_figures(sizes: &Sizes, table: &mut Table, failures: &mut Vec<String>) {
    let dir = std::env::temp_dir().join(format!("irsa-bench-webhook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let (_sandbox, kubeconfig) = start_sandbox(&dir, sizes.deadline);
    let client = kube_client(&kubeconfig).await;

    // The serving certificate, as `irsa webhook certs` makes one.
    let certs = irsa_webhook::certs::generate(&irsa_webhook::certs::service_names(
        "irsa-webhook",
        "irsa-system",
    ))
    .expect("certificates");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &certs.cert_pem).expect("tls.crt");
    std::fs::write(&key, &certs.key_pem).expect("tls.key");

    let port = free_port();
    let mut command = match std::env::var_os("IRSA_BENCH_WRAP") {
        Some(wrap) => {
            let mut c = command(wrap);
            c.arg(env!("CARGO_BIN_EXE_irsa"));
            c
        }
        None => irsa_command(),
    };
    let log = dir.join("webhook.log");
    let args = [
        "webhook".to_owned(),
        "--bind".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    println!("  irsa {}", args.join(" "));
    let child = command
        .args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("irsa webhook starts");
    let mut webhook = Process {
        child,
        log,
        wrapped: None,
    };
    let tls = Tls::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &certs.ca_pem,
    );
    let start = Instant::now();
    loop {
        if let Some((200, _)) = tls.get("/readyz").await {
            break;
        }
        assert!(
            start.elapsed() < sizes.deadline,
            "irsa webhook not ready in time:\n{}",
            webhook.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_after = start.elapsed();
    if std::env::var_os("IRSA_BENCH_WRAP").is_some() {
        webhook.find_wrapped(&port.to_string());
        assert!(
            webhook.wrapped.is_some(),
            "the wrapped irsa webhook process"
        );
    }
    let pid = webhook.pid();
    let cached = prom(&tls.metrics().await, "irsa_webhook_service_accounts");
    let (rss, hwm) = memory(pid);
    table.row(
        format!("2a. `irsa webhook` RSS after /readyz, {cached} accounts cached (VmRSS / VmHWM)"),
        "",
        format!(
            "{rss:.1} / {hwm:.1} MiB (ready {} after start)",
            ms(ready_after)
        ),
        None,
    );

    // 1. Latency at the offered rate, one account cached with its role.
    create_namespace(&client, "team").await;
    Api::<ServiceAccount>::namespaced(client.clone(), "team")
        .create(&PostParams::default(), &service_account("app"))
        .await
        .expect("create service account");
    wait_for("the account in the cache", sizes.deadline, async || {
        let m = tls.metrics().await;
        prom(&m, "irsa_webhook_service_accounts") > cached
    })
    .await;
    let reviews = Arc::new(Reviews::new(&pod("team", "app")));
    let before = tls.metrics().await;
    let load = open_loop(&tls, reviews.clone(), sizes).await;
    load_row(table, failures, &load, "1. admission over TLS", sizes);
    let after = tls.metrics().await;
    for counter in [
        "irsa_webhook_fail_open_total",
        "irsa_webhook_service_account_api_lookups_total",
    ] {
        let n = prom(&after, counter) - prom(&before, counter);
        if n != 0 {
            failures.push(format!("1: {counter} rose by {n} under load"));
        }
    }

    // 3. Created → servable.
    create_namespace(&client, "fresh").await;
    let fresh = Api::<ServiceAccount>::namespaced(client.clone(), "fresh");
    let mut conn = tls.connect().await.expect("connect");
    let lookups_before = prom(
        &tls.metrics().await,
        "irsa_webhook_service_account_api_lookups_total",
    );
    let mut servable = Vec::new();
    for i in 0..sizes.servable {
        let name = format!("fresh-{i:04}");
        let reviews = Reviews::new(&pod("fresh", &name));
        let uid = format!("fresh-{i}");
        fresh
            .create(&PostParams::default(), &service_account(&name))
            .await
            .expect("create service account");
        let created = Instant::now();
        let (status, answer) = conn
            .send("POST", "/mutate", reviews.body(&uid))
            .await
            .expect("answer");
        let answered = Instant::now();
        match patch_ops(&answer, &uid) {
            Ok(_) if status == 200 => servable.push(answered - created),
            other => failures.push(format!("3: {name}: {status} {other:?}")),
        }
    }
    let fallbacks = prom(
        &tls.metrics().await,
        "irsa_webhook_service_account_api_lookups_total",
    ) - lookups_before;
    if !servable.is_empty() {
        servable.sort();
        table.row(
            format!(
                "3. account created → pod admitted with credentials, p50 / p99 ({} accounts)",
                servable.len()
            ),
            "",
            format!(
                "{} / {} (max {}; {fallbacks} via the API fallback)",
                ms(percentile(&servable, 0.5)),
                ms(percentile(&servable, 0.99)),
                ms(*servable.last().expect("samples"))
            ),
            None,
        );
    }

    // 2b. Many accounts cached.
    let n = sizes.service_accounts;
    let per_namespace = 100;
    let namespaces = n.div_ceil(per_namespace);
    for k in 0..namespaces {
        create_namespace(&client, &format!("bulk-{k:03}")).await;
    }
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let api: Api<ServiceAccount> =
                Api::namespaced(client.clone(), &format!("bulk-{:03}", i / per_namespace));
            async move {
                api.create(
                    &PostParams::default(),
                    &service_account(&format!("sa-{i:05}")),
                )
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create service accounts");
    let created_in = started.elapsed();
    // Every account the API lists (the bulk ones and the namespaces' `default`) is cached.
    let mut listed = 0;
    wait_for(
        "the cache to hold every account",
        sizes.deadline,
        async || {
            listed = all_service_accounts(&client).await;
            prom(&tls.metrics().await, "irsa_webhook_service_accounts") == listed
        },
    )
    .await;
    let cached_in = started.elapsed();
    // A pod of the last account, from the cache.
    let last = Reviews::new(&pod(
        &format!("bulk-{:03}", (n - 1) / per_namespace),
        &format!("sa-{:05}", n - 1),
    ));
    let lookups = prom(
        &tls.metrics().await,
        "irsa_webhook_service_account_api_lookups_total",
    );
    let (status, answer) = conn
        .send("POST", "/mutate", last.body("last"))
        .await
        .expect("answer");
    assert_eq!(status, 200);
    patch_ops(&answer, "last").expect("the last account's pod gets credentials");
    assert_eq!(
        prom(
            &tls.metrics().await,
            "irsa_webhook_service_account_api_lookups_total"
        ),
        lookups,
        "the last account came from the cache"
    );
    let (rss, hwm) = memory(pid);
    table.row(
        format!("2b. `irsa webhook` RSS, {listed} accounts cached (VmRSS / VmHWM)"),
        "< 32 MiB",
        format!(
            "{rss:.1} / {hwm:.1} MiB ({n} created in {}, all cached after {})",
            ms(created_in),
            ms(cached_in)
        ),
        Some(rss < 32.0 && hwm < 32.0),
    );

    // 1 again, with the many accounts cached.
    let load = open_loop(&tls, reviews, sizes).await;
    load_row(
        table,
        failures,
        &load,
        &format!("1b. admission over TLS, {listed} accounts cached"),
        sizes,
    );
    let (rss, hwm) = memory(pid);
    println!("  (RSS after the second load: {rss:.1} / {hwm:.1} MiB)");
    drop(webhook);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes = Sizes::new(measuring);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Table(Vec::new());
    let mut failures = Vec::new();
    runtime.block_on(async {
        println!("webhook figures (`irsa webhook` process against an `irsa sandbox` process):");
        process_figures(&sizes, &mut table, &mut failures).await;
        println!("webhook figures (in-process review):");
        in_process(&sizes, &mut table).await;
    });
    table.print();
    assert!(failures.is_empty(), "figures violated: {failures:#?}");
}
