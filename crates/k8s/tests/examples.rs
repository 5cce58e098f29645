//! The example resources in `tests/examples/` are accepted by the Rust types, by validation and
//! by the CRD's own OpenAPI schema (as the API server would check them); broken variants are
//! refused by the schema. The schema check uses `jsonschema` from the kubernetes-validate venv
//! (Draft 4, the dialect of OpenAPI 3.0 schemas, with `nullable` honoured).

use std::path::{Path, PathBuf};
use std::process::Command;

use irsa_k8s::{ClusterPullSecret, PullSecret, crds};
use serde_json::{Value, json};

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn examples_deserialize_and_validate() {
    for name in [
        "cluster-pull-secret.yaml",
        "cluster-pull-secret-ambient.yaml",
    ] {
        let cps: ClusterPullSecret = serde_json::from_value(example(name)).unwrap();
        cps.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let cps: ClusterPullSecret =
        serde_json::from_value(example("cluster-pull-secret.yaml")).unwrap();
    assert_eq!(
        cps.spec.secret.registries[3]
            .chainguard
            .as_ref()
            .unwrap()
            .method,
        Some(irsa_k8s::ChainguardMethod::WebIdentityToken)
    );
    let mut bad = example("cluster-pull-secret.yaml");
    bad["spec"]["registries"][3]["chainguard"]["method"] = json!("oidc");
    let err = serde_json::from_value::<ClusterPullSecret>(bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown variant `oidc`") && err.contains("web-identity-token"),
        "{err}"
    );
    let ps: PullSecret = serde_json::from_value(example("pull-secret.yaml")).unwrap();
    ps.validate().unwrap();
}

fn python() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s-validate")
        });
    let bin = venv.join("bin/python");
    assert!(
        bin.is_file(),
        "{} is missing: install the validator from the workspace root with\n  \
         python3 -m venv target/venv-k8s-validate && target/venv-k8s-validate/bin/pip install -r tests/requirements-validate.txt\n\
         or point IRSA_TEST_VENV_VALIDATE at a venv that has it",
        bin.display()
    );
    bin
}

const CHECK: &str = r#"
import json, sys
from jsonschema import Draft4Validator
def nullable(s):
    if isinstance(s, dict):
        if s.get("nullable") and "type" in s:
            s["type"] = [s["type"], "null"]
        for v in s.values(): nullable(v)
    elif isinstance(s, list):
        for v in s: nullable(v)
    return s
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    v = Draft4Validator(nullable(c["schema"]))
    out.append(sorted(e.message for e in v.iter_errors(c["doc"])))
print(json.dumps(out))
"#;

/// Schema errors for each document, checked against its kind's CRD schema.
fn schema_errors(docs: &[Value]) -> Vec<Vec<String>> {
    let crds = crds();
    let cases: Vec<Value> = docs
        .iter()
        .map(|doc| {
            let crd = crds
                .iter()
                .find(|c| c.spec.names.kind == doc["kind"])
                .unwrap();
            let schema = &crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema;
            json!({"schema": schema, "doc": doc})
        })
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let input = dir.join("schema-cases.json");
    std::fs::write(&input, serde_json::to_vec(&cases).unwrap()).unwrap();
    let out = Command::new(python())
        .args(["-c", CHECK])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_crd_schemas_accept_the_examples_and_refuse_broken_ones() {
    let good = [
        example("cluster-pull-secret.yaml"),
        example("cluster-pull-secret-ambient.yaml"),
        example("pull-secret.yaml"),
    ];
    let errors = schema_errors(&good);
    assert!(errors.iter().all(Vec::is_empty), "{errors:?}");

    let broken = |edit: fn(&mut Value)| {
        let mut doc = example("cluster-pull-secret-ambient.yaml");
        edit(&mut doc);
        doc
    };
    let bad = [
        broken(|d| d["spec"]["refresh"] = json!(1.0)),
        broken(|d| d["spec"]["refresh"] = json!(0)),
        broken(|d| d["spec"]["deletionPolicy"] = json!("Orphan")),
        broken(|d| {
            d["spec"]
                .as_object_mut()
                .unwrap()
                .remove("secretName")
                .map(drop)
                .unwrap()
        }),
        broken(|d| d["spec"]["registries"] = json!([{"chainguard": {"identity": "x"}}])),
        broken(|d| d["spec"]["serviceAccounts"] = json!("default")),
        broken(|d| {
            d["spec"]["registries"] =
                json!([{"host": "cgr.dev", "chainguard": {"identity": "x", "method": "oidc"}}])
        }),
    ];
    let errors = schema_errors(&bad);
    let want = [
        "1.0 is greater than or equal to the maximum of 1.0",
        "0 is less than or equal to the minimum of 0.0",
        "'Orphan' is not one of ['Delete', 'Retain']",
        "'secretName' is a required property",
        "'host' is a required property",
        "'default' is not of type 'array'",
        "'oidc' is not one of ['get-caller-identity', 'web-identity-token']",
    ];
    assert_eq!(errors.len(), want.len());
    for (got, want) in errors.iter().zip(want) {
        assert_eq!(got, &[want.to_owned()], "want {want:?}");
    }
}
