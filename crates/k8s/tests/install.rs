//! The committed `deploy/install.yaml` matches the generator, and the real Kubernetes OpenAPI
//! schemas (PyPI `kubernetes-validate`, `--strict`) of the newest and the oldest supported
//! Kubernetes accept every document of it, with and without the optional objects.

mod common;

use common::{assert_committed, validate};
use irsa_k8s::{InstallOptions, manifests, manifests_yaml};

const REGENERATE: &str = "cargo run -p irsa-k8s --example gen-install > deploy/install.yaml";

/// Newest (k8s-openapi `latest`) and oldest Kubernetes irsa supports: 1.30 is the oldest minor
/// still in EKS extended support when the `events.k8s.io/v1`, `policy/v1` and `coordination/v1`
/// APIs the install uses have long been GA.
const VERSIONS: [&str; 2] = ["1.37.0", "1.30.0"];

#[test]
fn committed_install_matches_the_generator() {
    let yaml = manifests_yaml(&InstallOptions::default()).unwrap();
    assert_committed("deploy/install.yaml", &yaml, REGENERATE);
}

/// `kind/name` of every document, the way kubernetes-validate names them.
fn names(options: &InstallOptions) -> Vec<String> {
    manifests(options)
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["kind"].as_str().unwrap().to_lowercase(),
                m["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn assert_valid(label: &str, options: &InstallOptions) {
    let yaml = manifests_yaml(options).unwrap();
    let expected = names(options);
    for version in VERSIONS {
        let (ok, out) = validate(&format!("install-{label}-{version}.yaml"), &yaml, version);
        assert!(
            ok,
            "kubernetes-validate --strict (Kubernetes {version}) refused the {label} install:\n{out}"
        );
        // Every document was checked against a real schema (an unknown kind is only a warning).
        for name in &expected {
            assert!(
                out.contains(&format!("passed for resource {name}")),
                "{name} was not validated against Kubernetes {version}'s schema:\n{out}"
            );
        }
        assert!(!out.contains("WARN"), "{out}");
    }
}

#[test]
fn the_default_install_passes_the_kubernetes_schemas_strictly() {
    let options = InstallOptions::default();
    assert_eq!(names(&options).len(), 10);
    assert_valid("default", &options);
}

#[test]
fn a_single_replica_install_with_a_role_passes_the_kubernetes_schemas_strictly() {
    let options = InstallOptions {
        namespace: "platform".into(),
        image: "registry.example.com/team/irsa@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        replicas: 1,
        role_arn: Some("arn:aws-us-gov:iam::123456789012:role/path/irsa".into()),
        log_format: irsa_k8s::LogFormat::Plain,
        ..InstallOptions::default()
    };
    assert_eq!(names(&options).len(), 9);
    assert_valid("single", &options);
}

#[test]
fn the_validator_refuses_an_unknown_field_in_the_deployment() {
    // Proves the checks above have teeth for the objects built here, not only for CRDs.
    let good = manifests_yaml(&InstallOptions::default()).unwrap();
    let bad = good.replacen(
        "  terminationGracePeriodSeconds: 30\n",
        "  terminationGracePeriodSeconds: 30\n      terminationGraceSeconds: 30\n",
        1,
    );
    assert_ne!(bad, good, "the replacement did not apply:\n{good}");
    for version in VERSIONS {
        let (ok, out) = validate(&format!("bad-install-{version}.yaml"), &bad, version);
        assert!(!ok, "kubernetes-validate accepted an unknown field:\n{out}");
        assert!(
            out.contains("'terminationGraceSeconds' was unexpected"),
            "{out}"
        );
    }
}

#[test]
fn one_namespace_mode_and_the_admission_policy_pass_the_kubernetes_schemas_strictly() {
    let same = InstallOptions {
        namespace: "team-a".into(),
        watch_namespace: Some("team-a".into()),
        parts: vec![irsa_k8s::Part::Rbac, irsa_k8s::Part::Controller],
        ..InstallOptions::default()
    };
    assert_eq!(names(&same).len(), 5);
    assert_valid("one-namespace", &same);
    let apart = InstallOptions {
        watch_namespace: Some("team-b".into()),
        parts: irsa_k8s::Part::EVERY.to_vec(),
        ..InstallOptions::default()
    };
    assert_eq!(names(&apart).len(), 11);
    assert_valid("one-namespace-apart-with-policy", &apart);
}
