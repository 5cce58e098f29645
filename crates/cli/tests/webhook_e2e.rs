//! `irsa install --webhook` end to end through the sandbox, as a cluster would run it: the
//! install's MutatingWebhookConfiguration is created, its Job's `irsa webhook certs` (the
//! install's own arguments) writes the Secret and the caBundle, the webhook container (the
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
    // The install's empty Secret (review finding L3): the step fills it, creating nothing.
    let placeholder: Secret = serde_json::from_value(find("Secret")).unwrap();
    Api::<Secret>::namespaced(client.clone(), "irsa-system")
        .create(&PostParams::default(), &placeholder)
        .await
        .unwrap();
    let pod = find("Deployment")["spec"]["template"]["spec"].clone();
    let job = find("Job")["spec"]["template"]["spec"].clone();
    let cron = find("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone();
    assert_eq!(job["containers"][0]["args"], cron["containers"][0]["args"]);

    // Every request from here to the Secret's read below is the certificate step's.
    let requests = stack.api.requests().clone();
    requests.clear();
    // The Job, as the install runs it.
    let init: Vec<String> = strings(&job["containers"][0]["args"]);
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

    // The CronJob's run near expiry (the 730-day pair is inside an 800-day window): it renews,
    // using the update and patch grants.
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
    let cert_step = requests.records();
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
    // From here on, every request but the Python client's is the serving container's.
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
    let serving: Vec<_> = requests
        .records()
        .into_iter()
        .filter(|r| !r.user_agent.starts_with("OpenAPI-Generator"))
        .collect();
    // The service-account get is sent only on a cache miss: crates/webhook's sandbox tests
    // cover that path.
    assert_requests_are_granted(
        "serving container",
        &serving,
        &bound_rules(&docs, "irsa-webhook"),
        &[("serviceaccounts", "get")],
    );
    assert_requests_are_granted(
        "certificate step",
        &cert_step,
        &bound_rules(&docs, "irsa-webhook-certs"),
        &[],
    );
}

/// A rule bound to a ServiceAccount: its namespace (a Role's) or `None` (a ClusterRole's).
struct BoundRule {
    namespace: Option<String>,
    rule: Value,
}

/// Every rule the install's bindings give ServiceAccount `account` of irsa-system.
fn bound_rules(docs: &[Value], account: &str) -> Vec<BoundRule> {
    let mut out = Vec::new();
    for binding in docs
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
    {
        let subject = serde_json::json!({"kind": "ServiceAccount", "name": account, "namespace": "irsa-system"});
        if !binding["subjects"].as_array().unwrap().contains(&subject) {
            continue;
        }
        let kind = &binding["roleRef"]["kind"];
        let role = docs
            .iter()
            .find(|d| &d["kind"] == kind && d["metadata"]["name"] == binding["roleRef"]["name"])
            .unwrap_or_else(|| panic!("{binding} refers to a role the install lacks"));
        let namespace = (kind == "Role").then(|| "irsa-system".to_owned());
        for rule in role["rules"].as_array().unwrap() {
            out.push(BoundRule {
                namespace: namespace.clone(),
                rule: rule.clone(),
            });
        }
    }
    assert!(!out.is_empty(), "nothing is bound to {account}");
    out
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str() == Some(item))
}

/// Every request `who` sent is allowed by `rules` (the roles bound to its ServiceAccount, in
/// the namespace a Role applies to; the log holds no object names, so `resourceNames` are
/// checked by the install's unit tests), and every verb of every rule was sent (but the
/// `(resource, verb)` pairs of `unexercised`): the ServiceAccount holds nothing its code does
/// not call (review finding L4).
fn assert_requests_are_granted(
    who: &str,
    records: &[irsa_sandbox::apiserver::requests::RequestRecord],
    rules: &[BoundRule],
    unexercised: &[(&str, &str)],
) {
    let sent: std::collections::BTreeSet<(String, String, String, Option<String>)> = records
        .iter()
        .map(|r| {
            (
                r.group.clone(),
                r.rbac_resource(),
                r.verb.clone(),
                r.namespace.clone(),
            )
        })
        .collect();
    assert!(!sent.is_empty(), "the {who} sent nothing");
    let allows = |b: &BoundRule, g: &str, r: &str, v: &str, ns: Option<&str>| {
        has(&b.rule["apiGroups"], g)
            && has(&b.rule["resources"], r)
            && has(&b.rule["verbs"], v)
            && (b.namespace.is_none() || b.namespace.as_deref() == ns)
    };
    let ungranted: Vec<_> = sent
        .iter()
        .filter(|(g, r, v, ns)| !rules.iter().any(|b| allows(b, g, r, v, ns.as_deref())))
        .collect();
    assert!(
        ungranted.is_empty(),
        "the {who} sent requests its ServiceAccount's RBAC does not grant: {ungranted:?}"
    );
    let mut unused = Vec::new();
    for b in rules {
        let group = b.rule["apiGroups"][0].as_str().unwrap();
        for r in b.rule["resources"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            for v in b.rule["verbs"].as_array().unwrap() {
                let v = v.as_str().unwrap();
                if unexercised.contains(&(r, v)) {
                    continue;
                }
                if !sent.iter().any(|(g, rr, vv, ns)| {
                    g == group
                        && rr == r
                        && vv == v
                        && (b.namespace.is_none() || b.namespace == *ns)
                }) {
                    unused.push(format!("{group}/{r} {v}"));
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "the {who}'s ServiceAccount holds grants it never used: {unused:?}\nrequests: {sent:#?}"
    );
}
