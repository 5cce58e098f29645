//! Argo CD repository secrets against `irsa sandbox` and `irsa controller --argocd-namespace
//! argocd` as separate processes (the controller with the args `irsa install --argocd-namespace
//! argocd` deploys): how long from a new opted-in Secret to its filled `username`/`password`
//! (p50/p99, one Secret at a time, polled every 5 ms), and the controller's VmRSS / VmHWM with
//! N repository Secrets served. Goal: p99 < 1 s.
//!
//! `cargo bench -p irsa --bench argocd` measures (200 Secrets for the latency, 1,000 for the
//! memory); under `cargo test` it runs 5 and 20 as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_doctor/mod.rs"]
mod support_doctor;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use support_doctor::*;

const ARGOCD: &str = "argocd";

fn installed_controller_args(metrics: std::net::SocketAddr) -> Vec<String> {
    let run = common::irsa(&["install", "--argocd-namespace", ARGOCD]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deployment = run
        .stdout
        .split("\n---\n")
        .find(|d| d.contains("kind: Deployment\n"))
        .expect("a Deployment");
    let mut lines = deployment
        .lines()
        .skip_while(|l| l.trim().trim_start_matches("- ") != "args:");
    lines.next();
    lines
        .map_while(|l| l.trim().strip_prefix("- ").map(str::to_owned))
        .map(|a| {
            if a.starts_with("--metrics-listen=") {
                format!("--metrics-listen={metrics}")
            } else {
                a
            }
        })
        .collect()
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .expect("a VmRSS/VmHWM line")
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

fn repo_secret(name: &str) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        ("type", "helm"),
        ("url", &format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")),
        ("enableOCI", "true"),
        ("useWorkloadIdentity", "true"),
        ("workloadIdentityProvider", "aws"),
        ("project", "production"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ARGOCD.to_owned()),
            labels: Some(
                [(
                    "argocd.argoproj.io/secret-type".to_owned(),
                    "repository".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    }
}

fn filled(s: &Secret) -> bool {
    s.data
        .as_ref()
        .is_some_and(|d| d.contains_key("username") && d.contains_key("password"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (latency_n, memory_n) = if measuring { (200, 1000) } else { (5, 20) };
    let sandbox = Sandbox::start(
        "argocd-bench",
        vec![role(
            "argocd-production",
            trust_for(
                "system:serviceaccount:argocd:argocd-project-production",
                "sts.amazonaws.com",
            ),
            &["ecr:GetAuthorizationToken", "ecr:BatchGetImage"],
        )],
        &[],
    );
    sandbox.kubectl(&["create", "namespace", ARGOCD]);
    sandbox.kubectl(&["create", "namespace", "irsa-system"]);
    sandbox.kubectl(&[
        "create",
        "serviceaccount",
        "argocd-project-production",
        "-n",
        ARGOCD,
    ]);
    sandbox.kubectl(&[
        "annotate",
        "serviceaccount",
        "argocd-project-production",
        "-n",
        ARGOCD,
        &format!(
            "eks.amazonaws.com/role-arn={}",
            role_arn("argocd-production")
        ),
    ]);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let child = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(installed_controller_args(metrics))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &sandbox.dir.0)
        .env("KUBECONFIG", sandbox.get("KUBECONFIG"))
        .env("AWS_ENDPOINT_URL", sandbox.get("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("POD_NAME", "irsa-controller-bench")
        .env("POD_NAMESPACE", "irsa-system")
        .env("IRSA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("irsa controller starts");
    let controller = Controller(child);
    let pid = controller.0.id();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let kubeconfig = sandbox.get("KUBECONFIG").to_owned();
    runtime.block_on(async move {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<Secret> = Api::namespaced(client, ARGOCD);
        let wait_filled = |name: String| {
            let api = api.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if let Ok(s) = api.get(&name).await
                        && filled(&s)
                    {
                        return;
                    }
                    assert!(Instant::now() < deadline, "{name} not filled within 120 s");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        // Warm-up: the first Secret pays the exchange (STS + ECR), later ones the cache.
        api.create(&PostParams::default(), &repo_secret("warm-up"))
            .await
            .expect("create");
        let first = Instant::now();
        wait_filled("warm-up".to_owned()).await;
        let first = first.elapsed();
        let mut samples = Vec::new();
        for i in 0..latency_n {
            let name = format!("latency-{i}");
            let t = Instant::now();
            api.create(&PostParams::default(), &repo_secret(&name))
                .await
                .expect("create");
            wait_filled(name).await;
            samples.push(t.elapsed());
        }
        samples.sort();
        println!(
            "new opted-in Secret -> filled (first, with the exchange)   {:>9.1} ms",
            first.as_secs_f64() * 1e3
        );
        println!(
            "new opted-in Secret -> filled, p50 / p99 ({latency_n} Secrets)   {:>9.1} / {:.1} ms",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3
        );
        let (rss, hwm) = memory(pid);
        println!(
            "controller VmRSS / VmHWM with {} Secrets                 {rss:>9.1} / {hwm:.1} MiB",
            latency_n + 1
        );
        let more = memory_n - latency_n - 1;
        for i in 0..more {
            api.create(&PostParams::default(), &repo_secret(&format!("memory-{i}")))
                .await
                .expect("create");
        }
        wait_filled(format!("memory-{}", more - 1)).await;
        for i in 0..more {
            wait_filled(format!("memory-{i}")).await;
        }
        let (rss, hwm) = memory(pid);
        println!(
            "controller VmRSS / VmHWM with {memory_n} Secrets               {rss:>9.1} / {hwm:.1} MiB"
        );
        assert!(
            percentile(&samples, 0.99) < Duration::from_secs(if measuring { 1 } else { 10 }),
            "p99 goal"
        );
    });
    drop(controller);
}
