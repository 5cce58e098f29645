//! The committed `deploy/crds.yaml` matches the types, and the real Kubernetes OpenAPI schema
//! (PyPI `kubernetes-validate`, `--strict`) accepts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use irsa_k8s::{crds, crds_yaml};

const REGENERATE: &str = "cargo run -p irsa-k8s --example gen-crds > deploy/crds.yaml";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_crds_match_the_types() {
    let path = workspace_root().join("deploy/crds.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with `{REGENERATE}`",
            path.display()
        )
    });
    let generated = crds_yaml();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "deploy/crds.yaml is out of date with the Rust types (first difference at {line}); \
             regenerate it from the workspace root with `{REGENERATE}` and commit it"
        );
    }
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

/// The venv holding `kubernetes-validate`; tests fail (never skip) without it.
fn validator() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv-k8s-validate"));
    let bin = venv.join("bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: install the validator from the workspace root with\n  \
         python3 -m venv target/venv-k8s-validate && target/venv-k8s-validate/bin/pip install -r tests/requirements-validate.txt\n\
         or point IRSA_TEST_VENV_VALIDATE at a venv that has it",
        bin.display()
    );
    bin
}

fn validate(name: &str, yaml: &str) -> (bool, String) {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn crds_pass_the_kubernetes_openapi_schema_strictly() {
    let (ok, out) = validate("crds.yaml", &crds_yaml());
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
    let (ok, out) = validate("bad-crds.yaml", &bad);
    assert!(!ok, "kubernetes-validate accepted an unknown field:\n{out}");
    assert!(out.contains("'scopes' was unexpected"), "{out}");
}
