//! `irsa webhook mutate`, run as a user asking "why has my pod no credentials?": the patch (or
//! the mutated pod) the webhook would answer, and precise refusals (exit 2) for bad input.

mod common;

use common::{TempDir, irsa, irsa_with_stdin};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

fn write(dir: &TempDir, name: &str, value: &Value) -> String {
    let path = dir.0.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team"},
        "spec": {"serviceAccountName": "app", "containers": [
            {"name": "app", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]}})
}

fn sa(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "team", "annotations": annotations}})
}

#[test]
fn mutate_prints_the_patch_by_index() {
    let dir = TempDir::new("webhook-patch");
    let pod = write(&dir, "pod.json", &pod());
    let sa = write(
        &dir,
        "sa.json",
        &sa(json!({"eks.amazonaws.com/role-arn": ROLE})),
    );
    let run = irsa(&[
        "webhook",
        "mutate",
        "--pod",
        &pod,
        "--service-account",
        &sa,
        "--aws-default-region",
        "eu-west-1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let patch = run.json();
    let paths: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/volumes",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/volumeMounts"
        ]
    );
    assert_eq!(
        patch[3]["value"],
        json!({"name": "AWS_ROLE_ARN", "value": ROLE})
    );
}

#[test]
fn mutate_prints_the_mutated_pod_and_an_already_mutated_pod_needs_nothing() {
    let dir = TempDir::new("webhook-pod");
    let pod = write(&dir, "pod.json", &pod());
    let sa = write(
        &dir,
        "sa.json",
        &sa(
            json!({"eks.amazonaws.com/role-arn": ROLE, "eks.amazonaws.com/token-expiration": "3600"}),
        ),
    );
    let run = irsa(&[
        "webhook",
        "mutate",
        "--pod",
        &pod,
        "--service-account",
        &sa,
        "--output",
        "pod",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mutated = run.json();
    let env = &mutated["spec"]["containers"][0]["env"];
    assert_eq!(env[0], json!({"name": "A", "value": "1"}));
    assert_eq!(env[1]["name"], "AWS_ROLE_ARN");
    assert_eq!(
        env[2]["value"],
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    );
    assert_eq!(
        mutated["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
    // Fed back through stdin: nothing left to add.
    let again = irsa_with_stdin(
        &["webhook", "mutate", "--pod", "-", "--service-account", &sa],
        &mutated.to_string(),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json(), json!([]));
}

#[test]
fn mutate_without_a_role_or_service_account_prints_an_empty_patch() {
    let dir = TempDir::new("webhook-empty");
    let pod = write(&dir, "pod.json", &pod());
    let sa = write(&dir, "sa.json", &sa(json!({})));
    for args in [
        vec!["webhook", "mutate", "--pod", &pod, "--service-account", &sa],
        vec!["webhook", "mutate", "--pod", &pod],
    ] {
        let run = irsa(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.json(), json!([]));
    }
}

#[test]
fn mutate_without_a_service_account_says_why_the_patch_is_empty() {
    let dir = TempDir::new("webhook-no-sa");
    let pod = write(&dir, "pod.json", &pod());
    let run = irsa(&["webhook", "mutate", "--pod", &pod]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!([]));
    assert!(
        run.stderr.contains("no --service-account") && run.stderr.contains("team/app"),
        "stderr should say why the patch is empty: {:?}",
        run.stderr
    );
}

#[test]
fn mutate_refuses_a_service_account_that_is_not_the_pods() {
    let dir = TempDir::new("webhook-other-sa");
    let pod = write(&dir, "pod.json", &pod());
    let role = json!({"eks.amazonaws.com/role-arn": ROLE});
    let mut other_name = sa(role.clone());
    other_name["metadata"]["name"] = json!("other");
    let mut other_ns = sa(role.clone());
    other_ns["metadata"]["namespace"] = json!("elsewhere");
    let mut default_pod = pod_value_without_account();
    default_pod["metadata"]["namespace"] = json!("team");
    let default_pod = write(&dir, "default.json", &default_pod);
    let cases = [
        (
            &pod,
            write(&dir, "name.json", &other_name),
            "team/other",
            "team/app",
        ),
        (
            &pod,
            write(&dir, "ns.json", &other_ns),
            "elsewhere/app",
            "team/app",
        ),
        // No serviceAccountName: the pod runs as `default`.
        (
            &default_pod,
            write(&dir, "sa.json", &sa(role)),
            "team/app",
            "team/default",
        ),
    ];
    for (pod, sa, file, runs_as) in cases {
        let run = irsa(&["webhook", "mutate", "--pod", pod, "--service-account", &sa]);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "{file}: {}", run.stdout);
        assert!(
            run.stderr.contains(file) && run.stderr.contains(runs_as),
            "{file}: {}",
            run.stderr
        );
    }
}

fn pod_value_without_account() -> Value {
    let mut pod = pod();
    pod["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountName");
    pod
}

#[test]
fn mutate_help_names_the_input_format_plainly() {
    let run = irsa(&["webhook", "mutate", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("YAML-free"), "{}", run.stdout);
    assert!(run.stdout.contains("kubectl get"), "{}", run.stdout);
}

#[test]
fn mutate_follows_the_flags_and_pod_identity_file() {
    let dir = TempDir::new("webhook-flags");
    let pod = write(&dir, "pod.json", &pod());
    let sa = write(&dir, "sa.json", &sa(json!({"irsa.dev/role-arn": ROLE})));
    let cc = write(
        &dir,
        "cc.json",
        &json!({"identities": [{"namespace": "team", "serviceAccount": "app"}]}),
    );
    let run = irsa(&[
        "webhook",
        "mutate",
        "--pod",
        &pod,
        "--service-account",
        &sa,
        "--annotation-prefix",
        "irsa.dev",
        "--token-audience",
        "irsa",
        "--sts-regional-endpoint",
        "--output",
        "pod",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json();
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "irsa"
    );
    assert_eq!(
        out["spec"]["containers"][0]["env"][1],
        json!({"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"})
    );
    let run = irsa(&[
        "webhook",
        "mutate",
        "--pod",
        &pod,
        "--service-account",
        &sa,
        "--container-credentials-config",
        &cc,
        "--container-credentials-full-uri",
        "http://[fd00:ec2::23]/v1/credentials",
        "--output",
        "pod",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json();
    assert_eq!(
        out["spec"]["containers"][0]["env"][1],
        json!({"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://[fd00:ec2::23]/v1/credentials"})
    );
    assert_eq!(
        out["metadata"]["labels"]["eks.amazonaws.com/pod-identity"],
        "enabled"
    );
}

#[test]
fn mutate_refuses_bad_input_naming_the_flag() {
    let dir = TempDir::new("webhook-bad");
    let pod = write(&dir, "pod.json", &pod());
    let not_json = dir.0.join("x.json");
    std::fs::write(&not_json, "apiVersion: v1").unwrap();
    let not_json = not_json.to_str().unwrap();
    let deployment = write(&dir, "d.json", &json!({"kind": "Deployment"}));
    let bad_cc = write(&dir, "cc.json", &json!({"identities": 5}));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--pod", not_json], "--pod"),
        (vec!["--pod", "/nonexistent/pod.json"], "--pod"),
        (vec!["--pod", &deployment], "not a Pod"),
        (
            vec!["--pod", &pod, "--service-account", &deployment],
            "not a ServiceAccount",
        ),
        (
            vec!["--pod", &pod, "--container-credentials-config", &bad_cc],
            "--container-credentials-config",
        ),
        (
            vec!["--pod", &pod, "--annotation-prefix", "a/b"],
            "--annotation-prefix",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["webhook", "mutate"];
        all.extend(&args);
        let run = irsa(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn serving_without_a_certificate_fails_with_the_flag_to_fix() {
    let dir = TempDir::new("webhook-serve");
    let cert = dir.0.join("missing.crt");
    let run = irsa(&[
        "webhook",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("missing.crt"), "{}", run.stderr);
}

/// `--trusted-peer` takes canonical CIDR blocks only, checked as `--webhook-allow-from` is, and
/// a bad one is refused (exit 2) naming the flag; good ones (and the env list) get as far as
/// the certificate.
#[test]
fn a_trusted_peer_that_is_not_a_canonical_block_is_refused_naming_the_flag() {
    let dir = TempDir::new("webhook-trusted");
    let cert = dir.0.join("missing.crt");
    let cert = cert.to_str().unwrap();
    for (bad, want) in [
        ("10.0.0.1/24", "host bits set: did you mean 10.0.0.0/24?"),
        ("10.0.0.0", "a CIDR block"),
        ("fd00::/129", "0 to 128"),
    ] {
        let run = irsa(&["webhook", "--trusted-peer", bad, "--tls-cert", cert]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(
            run.stderr.contains("'--trusted-peer <CIDR>'") && run.stderr.contains(want),
            "{bad}: {}",
            run.stderr
        );
    }
    let run = irsa(&[
        "webhook",
        "--trusted-peer",
        "10.0.0.0/24",
        "--trusted-peer",
        "fd00::/8",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--tls-cert",
        cert,
        "--tls-key",
        cert,
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("missing.crt"), "{}", run.stderr);
}
