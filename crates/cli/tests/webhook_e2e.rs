//! `irsa install --webhook` end to end through the sandbox, as a cluster would run it: the
//! install's MutatingWebhookConfiguration is created, its init container's `irsa webhook certs`
//! (the install's own arguments) writes the Secret and the caBundle, the webhook container (the
//! install's own arguments) serves the Secret's pair, and the official Python `kubernetes`
//! client creates pods that the sandbox API server sends through it (AdmissionReview v1 over
//! HTTPS, verified against the caBundle for `irsa-webhook.irsa-system.svc`).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::TempDir;
use irsa_k8s::install::webhook::CERT_DIR;
use irsa_k8s::{InstallOptions, Part, manifests};
use irsa_sandbox::stack::{Stack, StackConfig};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::Value;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_pods_are_mutated_by_the_installed_webhook() {
    let python = irsa_test_peers::kubectl().with_file_name("python");
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = Stack::start(StackConfig::default(), api, aws)
        .await
        .expect("sandbox starts");
    let dir = TempDir::new("webhook-e2e");
    let kubeconfig = dir.write("kubeconfig", &stack.kubeconfig());
    let kc = kube::config::Kubeconfig::from_yaml(&stack.kubeconfig()).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "irsa-system"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    let docs = manifests(&InstallOptions {
        parts: vec![Part::Webhook],
        ..InstallOptions::default()
    })
    .unwrap();
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap().clone();
    let configuration: MutatingWebhookConfiguration =
        serde_json::from_value(find("MutatingWebhookConfiguration")).unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &configuration)
        .await
        .unwrap();
    let pod = find("Deployment")["spec"]["template"]["spec"].clone();

    // The init container, as the Deployment runs it (no kubelet here to wait for).
    let init: Vec<String> = strings(&pod["initContainers"][0]["args"])
        .into_iter()
        .filter(|a| !a.starts_with("--wait-for-mount="))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(&init)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "irsa {init:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The Secret volume: the Secret's files in a directory.
    let certs = dir.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let secret = Api::<Secret>::namespaced(client.clone(), "irsa-system")
        .get("irsa-webhook-tls")
        .await
        .unwrap();
    for (key, value) in secret.data.unwrap() {
        std::fs::write(certs.join(key), value.0).unwrap();
    }

    // The webhook container, with the install's arguments, on a loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args: Vec<String> = strings(&pod["containers"][0]["args"])
        .into_iter()
        .map(|a| {
            if a.starts_with("--port=") {
                format!("--port={port}")
            } else {
                a.replace(CERT_DIR, certs.to_str().unwrap())
            }
        })
        .chain(["--bind=127.0.0.1".to_owned()])
        .collect();
    let _webhook = Killed(
        Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", "irsa-system")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    stack.api.admission().map_service(
        "irsa-system",
        "irsa-webhook",
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/webhook_pod.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(format!("https://127.0.0.1:{port}/readyz"))
            .arg(certs.join("ca.crt"))
            .arg(ROLE)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "python client failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
