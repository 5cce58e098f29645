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
        parts: [&irsa_k8s::Part::ALL[..], &[irsa_k8s::Part::AdmissionPolicy]].concat(),
        ..InstallOptions::default()
    };
    assert_eq!(names(&apart).len(), 11);
    assert_valid("one-namespace-apart-with-policy", &apart);
}

#[test]
fn the_webhook_install_passes_the_kubernetes_schemas_strictly() {
    let options = InstallOptions {
        parts: irsa_k8s::Part::EVERY.to_vec(),
        ..InstallOptions::default()
    };
    // The default ten, the policy's two, the webhook's eighteen (its NetworkPolicy, the empty
    // Secret the certificate step fills, and that step's ServiceAccount, RBAC, Job and CronJob
    // included).
    assert_eq!(names(&options).len(), 30);
    assert_valid("webhook", &options);
}

/// `--webhook-allow-from`: the narrowed NetworkPolicy passes the schemas too.
#[test]
fn the_webhook_install_allowing_only_given_blocks_passes_the_kubernetes_schemas_strictly() {
    let options = InstallOptions {
        parts: vec![irsa_k8s::Part::Webhook],
        webhook_allow_from: vec!["10.0.0.0/24".into(), "fd00:10::/64".into()],
        ..InstallOptions::default()
    };
    let docs = manifests(&options).unwrap();
    let policy = docs.iter().find(|d| d["kind"] == "NetworkPolicy").unwrap();
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][1]["ipBlock"]["cidr"],
        "fd00:10::/64"
    );
    assert_valid("webhook-allow-from", &options);
}

/// cert-manager's Issuer and Certificate are custom resources: kubernetes-validate has no
/// schema for them (an unknown kind passes with a warning, so validating them proves nothing).
/// The core objects of that install are validated strictly; the cert-manager ones are checked
/// for the shape cert-manager v1 documents.
#[test]
fn the_cert_manager_webhook_install_validates_its_core_objects_strictly() {
    let options = InstallOptions {
        parts: vec![irsa_k8s::Part::Webhook],
        webhook_certs: irsa_k8s::WebhookCerts::CertManager,
        ..InstallOptions::default()
    };
    let docs = manifests(&options).unwrap();
    let (core, custom): (Vec<_>, Vec<_>) = docs.iter().partition(|d| {
        !d["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("cert-manager.io/")
    });
    assert_eq!(core.len(), 10);
    let mut yaml = String::new();
    for d in &core {
        yaml.push_str("---\n");
        yaml.push_str(&serde_json::to_string(d).unwrap());
        yaml.push('\n');
    }
    for version in VERSIONS {
        let (ok, out) = validate(
            &format!("install-cert-manager-{version}.yaml"),
            &yaml,
            version,
        );
        assert!(ok, "Kubernetes {version} refused:\n{out}");
        assert!(
            out.contains(
                "passed for resource mutatingwebhookconfiguration/irsa-pod-identity-webhook"
            ),
            "{out}"
        );
        assert!(!out.contains("WARN"), "{out}");
    }
    let kinds: Vec<_> = custom.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Issuer", "Certificate"]);
    for d in &custom {
        assert_eq!(d["apiVersion"], "cert-manager.io/v1");
        assert_eq!(d["metadata"]["namespace"], "irsa-system");
        let spec = d["spec"].as_object().unwrap();
        let allowed: &[&str] = if d["kind"] == "Issuer" {
            &["selfSigned"]
        } else {
            &["secretName", "dnsNames", "issuerRef", "privateKey"]
        };
        for key in spec.keys() {
            assert!(allowed.contains(&key.as_str()), "{key} in {d}");
        }
    }
    let certificate = custom[1];
    assert_eq!(
        certificate["spec"]["issuerRef"],
        serde_json::json!({"name": custom[0]["metadata"]["name"], "kind": "Issuer", "group": "cert-manager.io"})
    );
    let config = core
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!(
            "irsa-system/{}",
            certificate["metadata"]["name"].as_str().unwrap()
        )
    );
}

/// The cert-manager objects against cert-manager's documented `cert-manager.io/v1` API
/// (<https://cert-manager.io/docs/usage/certificate/>): the Certificate's required `secretName`
/// and `issuerRef.name`, a `selfSigned` Issuer, and that they fit the rest of the install: the
/// Secret is the one the serving pods mount, the names are the Service's, the CA injection
/// names the Certificate, and no irsa certificate step (Job, CronJob, its account and Role) is
/// emitted. In a namespace of the user's choosing, so nothing is the default by accident.
#[test]
fn the_cert_manager_objects_fit_cert_managers_v1_api_and_the_install() {
    let namespace = "pod-identity";
    let options = InstallOptions {
        parts: vec![irsa_k8s::Part::Webhook],
        webhook_certs: irsa_k8s::WebhookCerts::CertManager,
        namespace: namespace.into(),
        ..InstallOptions::default()
    };
    let docs = manifests(&options).unwrap();
    let find = |kind: &str| -> &serde_json::Value {
        let all: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(all.len(), 1, "one {kind}: {docs:?}");
        all[0]
    };
    let issuer = find("Issuer");
    let certificate = find("Certificate");
    for d in [issuer, certificate] {
        assert_eq!(d["apiVersion"], "cert-manager.io/v1");
        assert_eq!(d["metadata"]["namespace"], namespace);
        assert!(
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{d}"
        );
    }
    // Issuer: exactly one issuer type, `selfSigned`, an object.
    assert!(issuer["spec"]["selfSigned"].is_object(), "{issuer}");
    assert_eq!(issuer["spec"].as_object().unwrap().len(), 1, "{issuer}");
    // Certificate: required fields, types and enums as documented.
    let spec = &certificate["spec"];
    let secret = spec["secretName"].as_str().expect("secretName is required");
    assert_eq!(spec["issuerRef"]["name"], issuer["metadata"]["name"]);
    assert_eq!(spec["issuerRef"]["kind"], "Issuer");
    assert_eq!(spec["issuerRef"]["group"], "cert-manager.io");
    assert!(
        ["Never", "Always"].contains(&spec["privateKey"]["rotationPolicy"].as_str().unwrap()),
        "{spec}"
    );
    // The Secret cert-manager writes is the one the serving pods mount.
    let pod = &find("Deployment")["spec"]["template"]["spec"];
    let secrets: Vec<_> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(secrets, [secret], "{pod}");
    // Its names are the Service's, as the API server dials it.
    let service = find("Service")["metadata"]["name"].as_str().unwrap();
    let names: Vec<_> = spec["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for want in [
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ] {
        assert!(names.contains(&want.as_str()), "{want} not in {names:?}");
    }
    for name in &names {
        assert!(
            name.starts_with(service),
            "{name} is not a name of the Service"
        );
    }
    // cert-manager's CA injector fills the caBundle from that Certificate.
    let config = find("MutatingWebhookConfiguration");
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!(
            "{namespace}/{}",
            certificate["metadata"]["name"].as_str().unwrap()
        )
    );
    // No irsa certificate step: no Job, no CronJob, no account, Role or binding for it, and
    // nobody is granted anything on Secrets or the webhook configuration.
    for kind in ["Job", "CronJob"] {
        assert!(!docs.iter().any(|d| d["kind"] == kind), "{kind} emitted");
    }
    for d in &docs {
        let name = d["metadata"]["name"].as_str().unwrap();
        assert!(!name.contains("certs"), "{} {name}", d["kind"]);
    }
    let rules: Vec<_> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    for rule in &rules {
        let resources = rule["resources"].to_string();
        let verbs = rule["verbs"].to_string();
        assert!(
            !(resources.contains("mutatingwebhookconfigurations")
                || resources.contains("secrets") && verbs.contains("update")
                || resources.contains("secrets") && verbs.contains("patch")),
            "{rule}"
        );
    }
}

/// Runs cert-manager's own v1 CRD schemas (npm `@kubernetes-models/cert-manager`, installed by
/// `scripts/test` at `$IRSA_TEST_NPM_CERT_MANAGER`) over `docs`: (passed, output).
fn cert_manager_validate(docs: &[serde_json::Value]) -> (bool, String) {
    use std::io::Write as _;
    let dir = std::env::var_os("IRSA_TEST_NPM_CERT_MANAGER").expect(
        "IRSA_TEST_NPM_CERT_MANAGER is not set: run ./scripts/test, which installs cert-manager's \
         schemas (npm @kubernetes-models/cert-manager) into target/npm-cert-manager",
    );
    let dir = std::path::PathBuf::from(dir);
    let mut child = std::process::Command::new("node")
        .arg(dir.join("validate.mjs"))
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test installs nodejs where it is missing)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(docs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The install's cert-manager Issuer and Certificate pass cert-manager's own v1 CRD schemas
/// (kubernetes-validate has none for them), and the validator does refuse a broken one.
#[test]
fn the_cert_manager_objects_pass_cert_managers_own_schemas() {
    let options = InstallOptions {
        parts: vec![irsa_k8s::Part::Webhook],
        webhook_certs: irsa_k8s::WebhookCerts::CertManager,
        ..InstallOptions::default()
    };
    let docs: Vec<serde_json::Value> = manifests(&options)
        .unwrap()
        .into_iter()
        .filter(|d| d["apiVersion"] == "cert-manager.io/v1")
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&"Issuer") && kinds.contains(&"Certificate"),
        "{kinds:?}"
    );
    let (ok, out) = cert_manager_validate(&docs);
    assert!(
        ok,
        "cert-manager's schemas refused the install's objects:\n{out}"
    );
    assert_eq!(out.matches("ok ").count(), 2, "{out}");
    // A Certificate without its required secretName is refused: the check can fail.
    let mut broken = docs.clone();
    for d in &mut broken {
        if d["kind"] == "Certificate" {
            d["spec"].as_object_mut().unwrap().remove("secretName");
        }
    }
    let (ok, out) = cert_manager_validate(&broken);
    assert!(!ok && out.contains("secretName"), "{out}");
}
