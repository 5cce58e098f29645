//! The committed `deploy/crds.yaml` matches the types, and the real Kubernetes OpenAPI schema
//! (PyPI `kubernetes-validate`, `--strict`) accepts it.

mod common;

use common::{assert_committed, validate};
use irsa_k8s::{crds, crds_yaml};

const REGENERATE: &str = "cargo run -p irsa-k8s --example gen-crds > deploy/crds.yaml";

#[test]
fn committed_crds_match_the_types() {
    assert_committed("deploy/crds.yaml", &crds_yaml(), REGENERATE);
}

#[test]
fn crds_have_names_columns_and_scopes() {
    let crds = crds();
    let summary: Vec<_> = crds
        .iter()
        .map(|c| {
            let v = &c.spec.versions[0];
            let columns: Vec<_> = v
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            (
                c.metadata.name.clone().unwrap(),
                c.spec.scope.as_str(),
                c.spec.names.short_names.clone().unwrap_or_default(),
                v.name.as_str(),
                columns,
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "clusterpullsecrets.irsa.dev".to_owned(),
                "Cluster",
                vec!["cps".to_owned()],
                "v1alpha1",
                vec!["Ready", "Targets", "Expires", "Age"],
                true
            ),
            (
                "pullsecrets.irsa.dev".to_owned(),
                "Namespaced",
                vec!["ps".to_owned()],
                "v1alpha1",
                vec!["Ready", "Targets", "Expires", "Age"],
                true
            ),
        ]
    );
}

#[test]
fn crds_pass_the_kubernetes_openapi_schema_strictly() {
    let (ok, out) = validate("crds.yaml", &crds_yaml(), "1.37.0");
    assert!(ok, "kubernetes-validate --strict refused the CRDs:\n{out}");
    for name in ["clusterpullsecrets.irsa.dev", "pullsecrets.irsa.dev"] {
        assert!(
            out.contains(&format!(
                "passed for resource customresourcedefinition/{name}"
            )),
            "{name} was not validated as a CustomResourceDefinition:\n{out}"
        );
    }
}

#[test]
fn the_validator_refuses_an_unknown_field_in_a_crd() {
    // Proves the check above has teeth: a CRD is a built-in kind, validated field by field.
    let bad = crds_yaml().replacen(
        "  scope: Cluster\n",
        "  scope: Cluster\n  scopes: Cluster\n",
        1,
    );
    assert_ne!(bad, crds_yaml());
    let (ok, out) = validate("bad-crds.yaml", &bad, "1.37.0");
    assert!(!ok, "kubernetes-validate accepted an unknown field:\n{out}");
    assert!(out.contains("'scopes' was unexpected"), "{out}");
}

/// The status's limits in the schema are the ones the controller enforces: the API server then
/// refuses what no irsa writes, and readers of the CRD see the bounds.
#[test]
fn status_problem_limits_match_the_code() {
    use irsa_k8s::TargetProblem;
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let problems = schema
            .pointer("/openAPIV3Schema/properties/status/properties/problems")
            .unwrap_or_else(|| panic!("{name}: status.problems in the schema"));
        assert_eq!(
            problems["maxItems"].as_u64(),
            Some(TargetProblem::MAX_REPORTED as u64),
            "{name}: status.problems maxItems"
        );
        assert_eq!(
            problems["items"]["properties"]["message"]["maxLength"].as_u64(),
            Some(TargetProblem::MAX_MESSAGE as u64),
            "{name}: status.problems[].message maxLength"
        );
    }
}
