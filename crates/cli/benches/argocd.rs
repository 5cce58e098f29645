//! Argo CD repository secrets against `irsa sandbox` and `irsa controller --argocd-namespace
//! argocd` as separate processes (the controller with the args `irsa install --argocd-namespace
//! argocd` deploys): how long from a new opted-in Secret to its filled `username`/`password`
//! (p50/p99, one Secret at a time, polled every 5 ms), and the controller's VmRSS / VmHWM with
//! N repository Secrets served. Goal: p99 < 1 s.
//!
//! First, with the controller in the bench process on the sandbox clock (the in-process lab, so
//! that the clock can be moved past the refresh point): the upstream exchanges for one refresh
//! of 100 repository Secrets over 3 projects, each project's in one ECR registry (goal 3).
//!
//! `cargo bench -p irsa --bench argocd` measures (100 Secrets for the exchanges, 200 for the
//! latency, 1,000 for the memory); under `cargo test` it runs 12, 5 and 20 as a smoke test.
//! The three figures of the Argo CD issue come out of one run.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_doctor/mod.rs"]
mod support_doctor;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use support_doctor::installed::Controller;
use support_doctor::*;

const ARGOCD: &str = "argocd";

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
    repo_secret_for(
        name,
        &format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"),
        "production",
    )
}

/// The guide's repository Secret for `project`'s charts at `host`.
fn repo_secret_for(name: &str, host: &str, project: &str) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        ("type", "helm"),
        ("url", host),
        ("enableOCI", "true"),
        ("useWorkloadIdentity", "true"),
        ("workloadIdentityProvider", "aws"),
        ("project", project),
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

/// Upstream exchanges (controller / ECR / STS) for the first fill and for one refresh of `n`
/// repository Secrets spread over 3 projects, with the controller in this process on the
/// sandbox clock.
fn exchanges_per_refresh(n: usize) -> ((u64, u64, u64), (u64, u64, u64)) {
    use irsa_controller::argocd::{Allowed, ArgoCdOptions};
    use irsa_lab::{Lab, LabConfig};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        // ECR tokens of 1 hour: the refresh is due past half of it, while the TokenRequest
        // tokens (on the wall clock) are still valid at STS (on the sandbox clock).
        let lab = Lab::start(LabConfig {
            ecr_token_lifetime_seconds: 3600,
            ..LabConfig::default()
        })
        .await
        .expect("lab");
        lab.namespace(ARGOCD, &[]).await.expect("namespace");
        let projects = ["alpha", "beta", "gamma"];
        for p in projects {
            let sa = format!("argocd-project-{p}");
            let role = lab
                .register_role_named(&format!("argocd-{p}"), ARGOCD, &sa)
                .expect("role");
            lab.identity(ARGOCD, &sa, &role).await.expect("identity");
        }
        let options = irsa_controller::ControllerOptions {
            argocd: Some(ArgoCdOptions {
                namespace: ARGOCD.to_owned(),
                pipeline: lab.pipeline_options(),
                allowed: Allowed::default(),
            }),
            ..lab.controller_options()
        };
        let controller = lab
            .spawn_controller(options, None)
            .await
            .expect("controller");
        assert!(
            tokio::time::timeout(Duration::from_secs(60), controller.handle.wait_ready())
                .await
                .unwrap_or(false),
            "the controller is ready"
        );
        let api: Api<Secret> = Api::namespaced(lab.client.clone(), ARGOCD);
        let names: Vec<String> = (0..n).map(|i| format!("repo-{i:03}")).collect();
        for (i, name) in names.iter().enumerate() {
            let secret = repo_secret_for(name, &lab.ecr_host(), projects[i % projects.len()]);
            api.create(&PostParams::default(), &secret)
                .await
                .expect("create");
        }
        let counted = |lab: &Lab, c: &irsa_lab::RunningController| {
            let counters = lab.stack.cloud.counters();
            (
                c.handle.metrics().exchanges(),
                counters.get("ecr", "GetAuthorizationToken", "ok"),
                counters.get("sts", "AssumeRoleWithWebIdentity", "ok"),
            )
        };
        let first = wait_passwords(&api, &names, &BTreeMap::new()).await;
        let filled = counted(&lab, &controller);
        lab.stack.cloud.advance(Duration::from_secs(2000));
        controller.handle.resync_all();
        wait_passwords(&api, &names, &first).await;
        let refreshed = counted(&lab, &controller);
        controller.stop().await.expect("stop");
        lab.stack.shutdown().await;
        (
            filled,
            (
                refreshed.0 - filled.0,
                refreshed.1 - filled.1,
                refreshed.2 - filled.2,
            ),
        )
    })
}

/// Waits until every Secret of `names` holds a password other than the one in `old`; returns
/// them.
async fn wait_passwords(
    api: &Api<Secret>,
    names: &[String],
    old: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = BTreeMap::new();
    for name in names {
        loop {
            let password = api
                .get(name)
                .await
                .ok()
                .and_then(|s| s.data?.remove("password"))
                .map(|b| b.0);
            if let Some(p) = password
                && old.get(name) != Some(&p)
            {
                seen.insert(name.clone(), p);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not (re)filled within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    seen
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (exchange_n, latency_n, memory_n) = if measuring {
        (100, 200, 1000)
    } else {
        (12, 5, 20)
    };
    let (first_fill, refresh) = exchanges_per_refresh(exchange_n);
    println!(
        "exchanges, first fill of {exchange_n} Secrets in 3 projects (controller / ECR / STS)   {} / {} / {}",
        first_fill.0, first_fill.1, first_fill.2
    );
    println!(
        "exchanges, one refresh of {exchange_n} Secrets in 3 projects (controller / ECR / STS)  {} / {} / {}  (goal 3)",
        refresh.0, refresh.1, refresh.2
    );
    assert_eq!(
        first_fill.0, 3,
        "one exchange per project for the first fill"
    );
    assert_eq!(refresh.0, 3, "one exchange per project for a refresh");
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
    // As `irsa install --argocd-namespace argocd` deploys it; its log is shown when a wait
    // times out.
    let controller = Controller::start_with(&sandbox, &["--argocd-namespace", ARGOCD]);
    let log = sandbox.dir.0.join("controller.log");
    let pid = controller.pid();
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
            let log = log.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if let Ok(s) = api.get(&name).await
                        && filled(&s)
                    {
                        return;
                    }
                    if Instant::now() >= deadline {
                        let log = std::fs::read_to_string(&log).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(40).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        panic!(
                            "{name} not filled within 120 s; the controller's log ends:\n{}",
                            tail.join("\n")
                        );
                    }
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
