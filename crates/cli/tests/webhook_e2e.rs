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

    // Every request from here to the Secret's read below is the init container's.
    let requests = stack.api.requests().clone();
    requests.clear();
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

    let mut records = requests.records();
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
    // From here on, every request but the Python client's is the webhook's or its init
    // container's: the ones RBAC must grant.
    requests.clear();

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
    let python_kubeconfig = kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(format!("https://127.0.0.1:{port}/readyz"))
            .arg(certs.join("ca.crt"))
            .arg(ROLE)
            .env("KUBECONFIG", &python_kubeconfig)
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

    // The init container again, near expiry (the 730-day pair is inside an 800-day window):
    // it renews, using the update and patch grants.
    let renew: Vec<String> = init
        .iter()
        .cloned()
        .chain([
            "--validity=1000d".to_owned(),
            "--renew-before=800d".to_owned(),
        ])
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(&renew)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("renewed the certificate"), "{stdout}");

    // The ConfigMap watch starts with the server; wait for its list (with a deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !requests
        .records()
        .iter()
        .any(|r| r.resource == "configmaps" && r.verb == "watch")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook never watched its ConfigMap"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    records.extend(requests.records());
    assert_requests_are_granted(&records);
}

/// Every request of the webhook and its init container is granted by `irsa install --webhook`'s
/// RBAC in the namespace the grant applies to, and every grant is used (except the get of a
/// service account, sent only on a cache miss: crates/webhook's sandbox tests cover that path).
fn assert_requests_are_granted(records: &[irsa_sandbox::apiserver::requests::RequestRecord]) {
    use irsa_k8s::install::{WEBHOOK_GRANTS, WebhookScope};
    let sent: std::collections::BTreeSet<(String, String, String, Option<String>)> = records
        .iter()
        .filter(|r| !r.user_agent.starts_with("OpenAPI-Generator"))
        .map(|r| {
            (
                r.group.clone(),
                r.rbac_resource(),
                r.verb.clone(),
                r.namespace.clone(),
            )
        })
        .collect();
    let granted = |g: &str, r: &str, v: &str, ns: Option<&str>| {
        WEBHOOK_GRANTS.iter().any(|w| {
            w.grant.group == g
                && w.grant.resources.contains(&r)
                && w.grant.verbs.contains(&v)
                && match w.scope {
                    WebhookScope::Own(_) => ns == Some("irsa-system"),
                    WebhookScope::Cluster(_) => true,
                }
        })
    };
    let ungranted: Vec<_> = sent
        .iter()
        .filter(|(g, r, v, ns)| !granted(g, r, v, ns.as_deref()))
        .collect();
    assert!(
        ungranted.is_empty(),
        "the webhook sent requests its RBAC does not grant: {ungranted:?}"
    );
    let mut unused = Vec::new();
    for w in WEBHOOK_GRANTS {
        for r in w.grant.resources {
            for v in w.grant.verbs {
                if (*r, *v) == ("serviceaccounts", "get") {
                    continue;
                }
                if !sent
                    .iter()
                    .any(|(g, rr, vv, _)| g == w.grant.group && rr == r && vv == v)
                {
                    unused.push(format!("{}/{r} {v}", w.grant.group));
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "grants the webhook never used: {unused:?}\nrequests: {sent:#?}"
    );
}
