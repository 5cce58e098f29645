//! The HTTPS server on loopback, as kube-apiserver meets it: TLS verified against the CA for
//! the Service's name, keep-alive, AdmissionReview v1 answers with the request's uid, garbage
//! refused without harm, probes and metrics, and a rotated certificate served without restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use irsa_webhook::Config;
use irsa_webhook::admission::{Timing, Webhook};
use irsa_webhook::cache::ServiceAccountCache;
use irsa_webhook::certs::{self, Certificates};
use irsa_webhook::server::{Limits, TlsFiles, serve, serve_with};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const NAME: &str = "irsa-webhook.irsa-system.svc";

struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

async fn connect(addr: std::net::SocketAddr, ca_pem: &str) -> Result<Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(NAME).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Client { sender })
}

impl Client {
    async fn send(&mut self, method: &str, path: &str, ct: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", NAME)
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }
}

fn review(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "namespace": "ns", "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": {"metadata": {"name": "p"}, "spec": {"serviceAccountName": "app", "containers": [{"name": "a"}]}}}
    }))
    .unwrap()
}

struct Files {
    dir: std::path::PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("irsa-webhook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }
    fn write(&self, c: &Certificates) {
        // Written aside and renamed, as a kubelet-updated Secret volume swaps its files.
        for (name, pem) in [("tls.crt", &c.cert_pem), ("tls.key", &c.key_pem)] {
            let tmp = self.dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, pem).unwrap();
            std::fs::rename(&tmp, self.dir.join(name)).unwrap();
        }
    }
    fn tls(&self) -> Arc<TlsFiles> {
        Arc::new(TlsFiles::new(self.dir.join("tls.crt"), self.dir.join("tls.key")).unwrap())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(
    tls: Arc<TlsFiles>,
) -> (
    std::net::SocketAddr,
    Arc<Webhook>,
    tokio::sync::oneshot::Sender<()>,
) {
    start_with(tls, None).await
}

async fn start_with(
    tls: Arc<TlsFiles>,
    limits: Option<Limits>,
) -> (
    std::net::SocketAddr,
    Arc<Webhook>,
    tokio::sync::oneshot::Sender<()>,
) {
    let timing = Timing {
        grace_period: Duration::ZERO,
        ..Timing::default()
    };
    start_timed(tls, limits, timing).await
}

async fn start_timed(
    tls: Arc<TlsFiles>,
    limits: Option<Limits>,
    timing: Timing,
) -> (
    std::net::SocketAddr,
    Arc<Webhook>,
    tokio::sync::oneshot::Sender<()>,
) {
    let config = Config::default();
    let cache = Arc::new(ServiceAccountCache::new(&config));
    let webhook = Arc::new(Webhook::new(config, cache, None, timing));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let stopped = async {
        let _ = stopped.await;
    };
    match limits {
        None => tokio::spawn(serve(listener, tls, webhook.clone(), stopped)),
        Some(l) => tokio::spawn(serve_with(listener, tls, webhook.clone(), l, stopped)),
    };
    (addr, webhook, stop)
}

#[tokio::test]
async fn answers_reviews_probes_and_metrics_over_one_keep_alive_connection() {
    let files = Files::new("serve");
    let certs = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    files.write(&certs);
    let (addr, webhook, _stop) = start(files.tls()).await;
    let mut c = connect(addr, &certs.ca_pem).await.unwrap();

    assert_eq!(c.send("GET", "/healthz", "text/plain", vec![]).await.0, 200);
    assert_eq!(
        c.send("GET", "/readyz", "text/plain", vec![]).await.0,
        503,
        "not synced yet"
    );
    webhook.cache().reset([]);
    assert_eq!(c.send("GET", "/readyz", "text/plain", vec![]).await.0, 200);

    webhook.cache().apply(
        "ns",
        "app",
        &[(
            "eks.amazonaws.com/role-arn".to_owned(),
            "arn:aws:iam::111122223333:role/a".to_owned(),
        )]
        .into(),
    );
    let (status, body) = c
        .send("POST", "/mutate", "application/json", review("uid-7"))
        .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "uid-7");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    for garbage in [
        b"\x00\xff garbage".to_vec(),
        b"{\"apiVersion\":\"admission.k8s.io/v1\"}".to_vec(),
        vec![],
    ] {
        let (status, body) = c.send("POST", "/mutate", "application/json", garbage).await;
        assert_eq!(status, 400);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["allowed"], false);
        assert!(
            answer["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .len()
                > 5
        );
    }
    assert_eq!(
        c.send("POST", "/mutate", "application/yaml", review("u"))
            .await
            .0,
        415
    );
    assert_eq!(c.send("GET", "/nope", "text/plain", vec![]).await.0, 404);
    // Still serving after the garbage, on the same connection.
    assert_eq!(
        c.send("POST", "/mutate", "application/json", review("uid-8"))
            .await
            .0,
        200
    );

    let (status, body) = c.send("GET", "/metrics", "text/plain", vec![]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("irsa_webhook_mutations_total 2"), "{text}");
    assert!(text.contains("irsa_webhook_bad_requests_total 3"), "{text}");
    assert!(
        text.contains("irsa_webhook_admission_duration_seconds_count 5"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "irsa_webhook_service_accounts 1"),
        "the cached accounts, as a gauge: {text}"
    );
    assert!(
        expiry(&text) > 0,
        "the serving certificate's remaining lifetime, as a gauge: {text}"
    );
}

/// The value of the serving certificate's expiry gauge in a /metrics text.
fn expiry(text: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix("irsa_webhook_serving_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("no expiry gauge in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let files = Files::new("rotate");
    let names = certs::service_names("irsa-webhook", "irsa-system");
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    let first = certs::generate_valid(&names, now - day, now + day * 10).unwrap();
    files.write(&first);
    let (addr, _webhook, _stop) = start(files.tls()).await;
    let mut c = connect(addr, &first.ca_pem).await.unwrap();
    assert_eq!(c.send("GET", "/healthz", "text/plain", vec![]).await.0, 200);

    let (_, metrics) = c.send("GET", "/metrics", "text/plain", vec![]).await;
    let ten_days = expiry(&String::from_utf8(metrics).unwrap());
    assert!(
        (10 * 86_400 - 60..=10 * 86_400).contains(&ten_days),
        "{ten_days}"
    );

    let second = certs::generate_valid(&names, now - day, now + day * 20).unwrap();
    files.write(&second);
    let mut c2 = connect(addr, &second.ca_pem)
        .await
        .expect("the new certificate is served");
    assert_eq!(
        c2.send("GET", "/healthz", "text/plain", vec![]).await.0,
        200
    );
    // The gauge follows the certificate now served.
    let (_, metrics) = c2.send("GET", "/metrics", "text/plain", vec![]).await;
    let twenty_days = expiry(&String::from_utf8(metrics).unwrap());
    assert!(
        (20 * 86_400 - 60..=20 * 86_400).contains(&twenty_days),
        "{twenty_days}"
    );
    let old = connect(addr, &first.ca_pem).await;
    assert!(
        old.is_err(),
        "the old CA no longer verifies new connections"
    );

    // A half-written pair keeps the last good one in service.
    std::fs::write(files.dir.join("tls.key"), "not a key").unwrap();
    let mut c3 = connect(addr, &second.ca_pem)
        .await
        .expect("the previous pair still serves");
    assert_eq!(
        c3.send("GET", "/healthz", "text/plain", vec![]).await.0,
        200
    );
}

/// A valid review padded past kube-apiserver's 3 MiB request limit: nothing the API server sends
/// is that large, so it is refused before it is parsed (a parsed JSON value takes many times
/// its size in memory).
#[tokio::test]
async fn a_body_over_the_api_servers_limit_is_refused_before_it_is_parsed() {
    let files = Files::new("big");
    let ca = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    files.write(&ca);
    let (addr, _webhook, _stop) = start(files.tls()).await;
    let mut client = connect(addr, &ca.ca_pem).await.unwrap();
    let mut body: Value = serde_json::from_slice(&review("big")).unwrap();
    body["request"]["object"]["metadata"]["annotations"] =
        json!({"padding": "x".repeat(3 * 1024 * 1024 + 1)});
    let (status, answer) = client
        .send(
            "POST",
            "/mutate",
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["status"]["code"], 413, "{answer}");
}

/// A client that opens a connection and never finishes the TLS handshake is dropped after the
/// client timeout instead of holding the connection (and its memory) open.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_the_handshake_is_dropped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let files = Files::new("slow");
    let ca = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    files.write(&ca);
    let (addr, _webhook, _stop) = start(files.tls()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16]).await.unwrap(); // the first byte of a ClientHello, then nothing
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(120), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the server still holds the connection after {:?}: {read:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() <= Duration::from_secs(11),
        "{:?}",
        started.elapsed()
    );
}

/// Connections beyond the cap are closed at accept, and a slot freed by a closed connection is
/// served again. (With the cap not enforced the third connection would be served.)
#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_accept() {
    let files = Files::new("cap");
    let ca = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    files.write(&ca);
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (addr, _webhook, _stop) = start_with(files.tls(), Some(limits)).await;
    let mut first = connect(addr, &ca.ca_pem).await.unwrap();
    let mut second = connect(addr, &ca.ca_pem).await.unwrap();
    // Both are being served (their handshakes done, a request answered on each).
    for c in [&mut first, &mut second] {
        assert_eq!(c.send("GET", "/healthz", "text/plain", vec![]).await.0, 200);
    }
    for _ in 0..3 {
        let third = tokio::time::timeout(Duration::from_secs(5), connect(addr, &ca.ca_pem))
            .await
            .expect("closed at once, not left hanging");
        assert!(
            third.is_err(),
            "a third connection was served over a cap of 2"
        );
    }
    // Still serving the two it holds.
    assert_eq!(
        second.send("GET", "/healthz", "text/plain", vec![]).await.0,
        200
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut c) = connect(addr, &ca.ca_pem).await {
            assert_eq!(c.send("GET", "/healthz", "text/plain", vec![]).await.0, 200);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot of the closed connection was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn review_for(uid: &str, namespace: &str, service_account: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "namespace": namespace, "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": {"metadata": {"name": "p"},
                "spec": {"serviceAccountName": service_account, "containers": [{"name": "a"}]}}}
    }))
    .unwrap()
}

/// Review finding M1: forged reviews (anything that reaches the port can send them) for pods
/// whose service account does not exist each held one of the few review permits for the whole
/// grace period, so a real review from the API server queued behind them and timed out (the
/// pod admitted without credentials). A review now holds its permit only while it decodes,
/// mutates and encodes; waiting for an account costs none.
#[tokio::test]
async fn forged_reviews_for_missing_accounts_do_not_hold_up_a_real_one() {
    let files = Files::new("forged");
    let ca = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    files.write(&ca);
    let grace = Duration::from_secs(4);
    let timing = Timing {
        grace_period: grace,
        deadline: Duration::from_secs(8),
        ..Timing::default()
    };
    let (addr, webhook, _stop) = start_timed(files.tls(), None, timing).await;
    webhook.cache().apply(
        "ns",
        "app",
        &[(
            "eks.amazonaws.com/role-arn".to_owned(),
            "arn:aws:iam::111122223333:role/a".to_owned(),
        )]
        .into(),
    );
    // Twice as many forged reviews as there are permits, each on its own connection, each for
    // an account that does not exist, in namespaces of the forger's choosing.
    let forgers = 2 * irsa_webhook::server::MAX_REVIEWS_IN_FLIGHT;
    let mut forged = Vec::new();
    for i in 0..forgers {
        let mut c = connect(addr, &ca.ca_pem).await.unwrap();
        let body = review_for(
            &format!("forged-{i}"),
            &format!("ns-{}", i % 2),
            &format!("ghost-{i}"),
        );
        forged.push(tokio::spawn(async move {
            c.send("POST", "/mutate", "application/json", body).await
        }));
    }
    // At least as many as there are permits are waiting for their accounts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while webhook.cache().waiting() < irsa_webhook::server::MAX_REVIEWS_IN_FLIGHT {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forged reviews never reached the grace wait ({} waiting)",
            webhook.cache().waiting()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let mut real = connect(addr, &ca.ca_pem).await.unwrap();
    let (status, body) = tokio::time::timeout(
        grace * 2,
        real.send("POST", "/mutate", "application/json", review("real")),
    )
    .await
    .expect("an answer");
    let took = started.elapsed();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "real");
    assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "the real review waited {took:?} behind forged ones"
    );
    for f in forged {
        let (status, body) = f.await.unwrap();
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["allowed"], true);
        assert!(answer["response"].get("patch").is_none(), "{answer}");
    }
}
