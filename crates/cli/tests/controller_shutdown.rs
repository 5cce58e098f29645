//! `irsa controller` as a process against the sandbox: SIGTERM ends it within a bound whatever
//! it is doing — standing by for a Lease it never gets, watching CRDs that are not installed,
//! or leading while the API server hangs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use irsa_lab::harness::*;
use irsa_sandbox::stack::{Stack, StackConfig};

/// A running `irsa controller` process, killed at drop if still running.
struct Process {
    child: Child,
    log: PathBuf,
    admin: std::net::SocketAddr,
    _dir: Scratch,
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(stack: &Stack, name: &str, args: &[&str]) -> Process {
        let dir = std::env::temp_dir().join(format!(
            "irsa-controller-shutdown-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let state = stack.write_state(&dir).expect("write state");
        let log = dir.join("controller.log");
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args(["controller", "--metrics-listen", &admin.to_string()])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &state.kubeconfig)
            .env("AWS_ENDPOINT_URL", &stack.aws_url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("IRSA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("irsa controller starts");
        Process {
            child,
            log,
            admin,
            _dir: Scratch(dir),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `text`.
    async fn wait_log(&mut self, text: &str) {
        let log = self.log.clone();
        let exited = self.child.try_wait().expect("wait");
        assert!(exited.is_none(), "exited early:\n{}", self.log());
        eventually(&format!("{text:?} in the log"), || {
            let log = log.clone();
            async move { read(&log).contains(text).then_some(()) }
        })
        .await;
    }

    /// `/metrics` of the process.
    async fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").await.unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit, at most `bound`; how long it took.
    fn terminate(&mut self, bound: Duration) -> Duration {
        let sent = Instant::now();
        let status = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exited with {status}:\n{}", self.log());
                return sent.elapsed();
            }
            assert!(
                sent.elapsed() < bound,
                "still running {bound:?} after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// Fast Lease timings, so that the bounds below are short.
const LEASE_FLAGS: [&str; 7] = [
    "--leader-elect",
    "--lease-duration",
    "3s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "500ms",
];

/// A standby that never got the Lease (its namespace does not exist, so every create fails)
/// stops on SIGTERM, with and without the CRDs installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_never_got_the_lease_stops_on_sigterm() {
    let env = Env::start().await;
    let mut args = LEASE_FLAGS.to_vec();
    args.extend(["--lease-namespace", "no-such-namespace"]);
    let mut p = Process::start(&env.lab.stack, "standby", &args);
    p.wait_log("failed to acquire or renew the lease").await;
    eventually("the standby ready", || async {
        p.metrics().await.contains("irsa_ready 1").then_some(())
    })
    .await;
    let took = p.terminate(Duration::from_secs(10));
    assert!(
        !p.metrics().await.contains("irsa"),
        "the admin server is gone"
    );
    eprintln!("standby stopped {took:?} after SIGTERM");

    // A sandbox without irsa's CRDs: the PullSecret and ClusterPullSecret watches never list.
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = Stack::start(
        StackConfig {
            cloud: Default::default(),
            api_token: None,
            registry: false,
        },
        api,
        aws,
    )
    .await
    .expect("sandbox");
    let mut p = Process::start(&bare, "no-crds", &args);
    p.wait_log("failed to acquire or renew the lease").await;
    p.wait_log("install the CRDs").await;
    let took = p.terminate(Duration::from_secs(10));
    eprintln!("standby without CRDs stopped {took:?} after SIGTERM");
}

/// A leader whose API server hangs stops on SIGTERM within the renew deadline plus the drain
/// timeout, and leaves the Lease to expire rather than release it (a write may be in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_api_server_hangs_stops_within_the_drain_bound() {
    let env = Env::start().await;
    for ns in names("hang", 5) {
        env.lab.namespace(&ns, &[("hang", "yes")]).await.unwrap();
    }
    let mut p = Process::start(&env.lab.stack, "hang", &LEASE_FLAGS);
    eventually("the process leads", || async {
        p.metrics().await.contains("irsa_leader 1").then_some(())
    })
    .await;
    env.apply_cps(
        "hang",
        cps_spec(&env, json!({"selector": {"matchLabels": {"hang": "yes"}}})),
    )
    .await;
    env.wait_secret("hang-0", "regcred").await;
    // Every request now hangs (an hour), also the Lease's renewals; then a resync-sized fan-out
    // is under way: a new target namespace.
    env.lab
        .namespace("hang-late", &[("hang", "yes")])
        .await
        .unwrap();
    env.lab
        .stack
        .api
        .faults()
        .set_latency(Duration::from_secs(3600));
    // Drain timeout (15 s) + the Lease's renew deadline (2 s) + the admin server's (2 s).
    let took = p.terminate(Duration::from_secs(25));
    eprintln!("hung leader stopped {took:?} after SIGTERM");
    env.lab.stack.api.faults().clear();
}
