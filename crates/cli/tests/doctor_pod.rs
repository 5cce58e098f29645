//! `irsa doctor --pod` against `irsa sandbox` run as a separate process, the cluster set up with
//! the real kubectl: the pod checks after the webhook's injection — `token-readable`,
//! `node-audience-rbac` (`--credential-provider`), `pull-secrets` and `image-pulls` — each seen
//! passing and failing, naming the field that breaks it.
//!
//! Expected verdicts come from Kubernetes' own rules, not from doctor's code:
//! - [PROJ] kubernetes.io "Projected Volumes", SecurityContext interactions: when all containers
//!   have the same runAsUser the token file is owned by that user with mode 0600; otherwise it
//!   has the volume's defaultMode (kubelet projected.go), and with fsGroup it is group fsGroup,
//!   0640.
//! - [KEP-4412] the NodeRestriction audience check: verb request-serviceaccounts-token-audience,
//!   resource = the audience, name = the service account, namespace = its namespace; the KEP's
//!   example rules.

mod common;
mod support_doctor;

use std::path::Path;

use serde_json::{Value, json};
use support_doctor::*;

const TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
const IMAGE: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1";

/// A container as the webhook leaves it, with `security_context`.
fn container(name: &str, security_context: Value) -> Value {
    json!({"name": name, "image": IMAGE,
        "securityContext": security_context,
        "env": [{"name": "AWS_ROLE_ARN", "value": role_arn("puller")},
                {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token")}],
        "volumeMounts": [{"name": "aws-iam-token", "mountPath": TOKEN_DIR, "readOnly": true}]})
}

/// An injected pod of ci/builder; `spec` is merged over the defaults.
fn create_pod(sandbox: &Sandbox, name: &str, containers: Value, extra: Value) {
    let mut spec = json!({
        "serviceAccountName": SA,
        "containers": containers,
        "volumes": [{"name": "aws-iam-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
        ]}}]
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec});
    let file = sandbox
        .dir
        .write(&format!("pod-{name}.json"), &pod.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
}

fn plain_pod(sandbox: &Sandbox, name: &str) {
    create_pod(
        sandbox,
        name,
        json!([container("app", json!({}))]),
        json!({}),
    );
}

fn doctor_pod(sandbox: &Sandbox, pod: &str, extra: &[&str]) -> (common::Run, Value) {
    let out = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["doctor", "--pod", &format!("{NS}/{pod}"), "-o", "json"])
        .args(extra)
        .output()
        .expect("irsa doctor runs");
    let run = common::Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    };
    let report = run.json();
    (run, report)
}

/// Asserts `id` is the one failing check, and returns it.
fn only_failure<'a>(run: &common::Run, report: &'a Value, id: &str) -> &'a Value {
    assert_eq!(run.code, 1, "{report:#}\n{}", run.stderr);
    assert_eq!(report["first_failure"], id, "{report:#}");
    let failing: Vec<&str> = checks(report)
        .filter(|c| c["status"] == "fail" || c["status"] == "error")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failing, [id], "{report:#}");
    let c = check(report, id);
    assert!(c["fix"].is_object(), "{id} carries a fix: {c:#}");
    c
}

fn passes(run: &common::Run, report: &Value, id: &str) {
    assert_eq!(check(report, id)["status"], "pass", "{report:#}");
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
}

#[test]
fn a_token_every_container_can_read_and_one_a_second_user_cannot() {
    let sandbox = start("pod-readable", vec![ecr_role(good_trust())]);
    // [PROJ] every container runs as 1000: the kubelet makes 1000 the file's owner.
    create_pod(
        &sandbox,
        "same-user",
        json!([container("app", json!({})), container("sidecar", json!({}))]),
        json!({"securityContext": {"runAsUser": 1000}}),
    );
    let (run, report) = doctor_pod(&sandbox, "same-user", &[]);
    passes(&run, &report, "token-readable");
    assert_eq!(checks(&report).count(), ALL_CHECKS.len() + 5, "{report:#}");

    // [PROJ] two users, so no FsUser; no fsGroup; defaultMode 0600 (384): root's, owner-only.
    let two_users = |name: &str, pod_sc: Value| {
        create_pod(
            &sandbox,
            name,
            json!([
                container("app", json!({"runAsUser": 1000, "runAsGroup": 3000})),
                container("sidecar", json!({"runAsUser": 1001}))
            ]),
            json!({"securityContext": pod_sc, "volumes": [{"name": "aws-iam-token", "projected": {"defaultMode": 384, "sources": [
                {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}
            ]}}]}),
        );
    };
    two_users("two-users", json!({}));
    let (run, report) = doctor_pod(&sandbox, "two-users", &[]);
    let c = only_failure(&run, &report, "token-readable");
    let details = c["details"].to_string();
    assert!(
        details.contains("container app: uid 1000; token in volume aws-iam-token is 0600 owned by 0:0: uid 1000 cannot read it"),
        "{c:#}"
    );
    assert!(details.contains("container sidecar: uid 1001"), "{c:#}");
    assert_eq!(c["data"]["fs_group"], Value::Null, "{c:#}");
    assert_eq!(
        c["fix"]["document"],
        json!({"spec": {"securityContext": {"fsGroup": 3000}}}),
        "{c:#}"
    );
    // The fix: fsGroup makes it 0640, group 3000, and every container is in that group.
    two_users("two-users-fixed", json!({"fsGroup": 3000}));
    let (run, report) = doctor_pod(&sandbox, "two-users-fixed", &[]);
    passes(&run, &report, "token-readable");
    assert!(
        check(&report, "token-readable")["details"]
            .to_string()
            .contains("0640 owned by 0:3000: readable (readable by its group)"),
        "{report:#}"
    );
}

#[test]
fn an_irsa_pull_secret_past_its_expiry_fails_and_a_fresh_one_passes() {
    let sandbox = start("pod-pull-secret", vec![ecr_role(good_trust())]);
    for (name, expires) in [
        ("ecr-old", "2020-01-01T00:00:00Z"),
        ("ecr-new", "2099-01-01T00:00:00Z"),
    ] {
        sandbox.kubectl(&[
            "create",
            "secret",
            "docker-registry",
            name,
            "-n",
            NS,
            "--docker-server=111122223333.dkr.ecr.us-east-1.amazonaws.com",
            "--docker-username=AWS",
            "--docker-password=not-a-real-password",
        ]);
        sandbox.kubectl(&[
            "label",
            "secret",
            name,
            "-n",
            NS,
            "app.kubernetes.io/managed-by=irsa",
        ]);
        sandbox.kubectl(&[
            "annotate",
            "secret",
            name,
            "-n",
            NS,
            &format!("irsa.dev/expires-at={expires}"),
        ]);
    }
    for (pod, secret) in [("old", "ecr-old"), ("new", "ecr-new")] {
        create_pod(
            &sandbox,
            pod,
            json!([container("app", json!({}))]),
            json!({"imagePullSecrets": [{"name": secret}]}),
        );
    }
    let (run, report) = doctor_pod(&sandbox, "old", &[]);
    let c = only_failure(&run, &report, "pull-secrets");
    assert!(
        c["summary"].as_str().unwrap().contains(
            "ecr-old is kept by irsa and expired at 2020-01-01T00:00:00Z (irsa.dev/expires-at)"
        ),
        "{c:#}"
    );
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .contains("pullsecrets"),
        "{c:#}"
    );
    assert!(
        !run.stdout.contains("not-a-real-password"),
        "{}",
        run.stdout
    );

    let (run, report) = doctor_pod(&sandbox, "new", &[]);
    passes(&run, &report, "pull-secrets");
    let c = check(&report, "pull-secrets");
    assert_eq!(c["data"]["secrets"][0]["irsa_owned"], true, "{c:#}");
    // Review low (d): the labels are all that says so, and they are forgeable.
    assert_eq!(c["data"]["secrets"][0]["owned_by"], "labels", "{c:#}");
    assert!(
        c["details"].to_string().contains("only its labels"),
        "{c:#}"
    );
    assert_eq!(
        c["data"]["secrets"][0]["expires_at"], "2099-01-01T00:00:00Z",
        "{c:#}"
    );
    assert!(
        c["details"][0]
            .as_str()
            .unwrap()
            .starts_with("ecr-new: 111122223333.dkr.ecr.us-east-1.amazonaws.com, kept by irsa, expires 2099-01-01T00:00:00Z (in "),
        "{c:#}"
    );
    assert!(
        !run.stdout.contains("not-a-real-password"),
        "{}",
        run.stdout
    );
}

fn pod_uid(sandbox: &Sandbox, pod: &str) -> String {
    sandbox.kubectl(&[
        "get",
        "pod",
        pod,
        "-n",
        NS,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
}

/// A core/v1 Event about `pod`, as the kubelet writes one.
fn create_event(sandbox: &Sandbox, name: &str, pod: &str, uid: &str, reason: &str, message: &str) {
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": NS, "uid": uid,
                           "fieldPath": "spec.containers{app}"},
        "reason": reason, "message": message, "type": "Warning", "count": 4,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-12-01T00:00:00Z", "lastTimestamp": "2026-12-01T00:05:00Z"});
    let file = sandbox
        .dir
        .write(&format!("event-{name}.json"), &event.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
}

#[test]
fn the_kubelets_pull_failures_are_shown_escaped_and_mapped_to_their_link() {
    let sandbox = start("pod-events", vec![ecr_role(good_trust())]);
    plain_pod(&sandbox, "denied");
    plain_pod(&sandbox, "missing-tag");
    plain_pod(&sandbox, "healthy");
    let uid = pod_uid(&sandbox, "denied");
    assert!(!uid.is_empty());
    // A hostile registry (or tenant) controls part of the message: an ESC sequence, and size.
    let message = format!(
        "Failed to pull image \"{IMAGE}\": failed to resolve reference: unexpected status from HEAD request: 401 Unauthorized \u{1b}[2K\u{1b}[1G✓forged {}",
        "x".repeat(5000)
    );
    create_event(&sandbox, "denied.1", "denied", &uid, "Failed", &message);
    create_event(
        &sandbox,
        "denied.2",
        "denied",
        &uid,
        "BackOff",
        &format!("Back-off pulling image \"{IMAGE}\""),
    );
    let (run, report) = doctor_pod(&sandbox, "denied", &[]);
    let c = only_failure(&run, &report, "image-pulls");
    assert_eq!(c["data"]["likely"], "pull-secrets", "{c:#}");
    let failures = c["data"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{c:#}");
    let shown = failures[0]["message"].as_str().unwrap();
    assert!(shown.contains("401 Unauthorized \\u{1b}[2K"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    assert!(
        shown.chars().count() < 400,
        "bounded: {} chars",
        shown.chars().count()
    );
    assert_eq!(failures[0]["count"], 4);
    assert!(
        c["summary"].as_str().unwrap().contains("unauthenticated"),
        "{c:#}"
    );
    // The text report shows it escaped too.
    let text = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["doctor", "--pod", &format!("{NS}/denied")])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("✗ image-pulls"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    // Not found: not an identity problem. An event of another pod of the same name (an old
    // uid) and the events of other pods are not this pod's.
    let uid = pod_uid(&sandbox, "missing-tag");
    create_event(
        &sandbox,
        "missing-tag.1",
        "missing-tag",
        &uid,
        "Failed",
        &format!(
            "Failed to pull image \"{IMAGE}\": rpc error: code = NotFound desc = failed to resolve reference: not found"
        ),
    );
    create_event(
        &sandbox,
        "missing-tag.old",
        "missing-tag",
        "0000-old",
        "Failed",
        "Failed to pull image: 403 Forbidden",
    );
    let (run, report) = doctor_pod(&sandbox, "missing-tag", &[]);
    let c = only_failure(&run, &report, "image-pulls");
    assert_eq!(c["data"]["likely"], "image", "{c:#}");
    assert_eq!(c["data"]["failures"].as_array().unwrap().len(), 1, "{c:#}");

    // The kubelet's waiting reason in the container's status counts too (events expire).
    plain_pod(&sandbox, "backoff");
    let status = json!({"status": {"containerStatuses": [{"name": "app", "image": IMAGE, "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff",
            "message": format!("Back-off pulling image \"{IMAGE}\": ErrImagePull: failed to get service account token for credential provider: serviceaccounts \"builder\" is forbidden: audience \"sts.amazonaws.com\" not found in pod spec volume, system:node:node-1 is not authorized to request tokens for this audience")}}}]}});
    sandbox.kubectl(&[
        "patch",
        "pod",
        "backoff",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    let (run, report) = doctor_pod(&sandbox, "backoff", &[]);
    let c = only_failure(&run, &report, "image-pulls");
    assert_eq!(c["data"]["likely"], "node-audience-rbac", "{c:#}");
    assert_eq!(c["data"]["failures"][0]["source"], "status", "{c:#}");
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .ends_with("--credential-provider"),
        "{c:#}"
    );

    // A pod whose events say it pulled passes.
    let uid = pod_uid(&sandbox, "healthy");
    create_event(
        &sandbox,
        "healthy.1",
        "healthy",
        &uid,
        "Pulled",
        &format!("Successfully pulled image \"{IMAGE}\""),
    );
    let (run, report) = doctor_pod(&sandbox, "healthy", &[]);
    passes(&run, &report, "image-pulls");
    assert!(
        check(&report, "image-pulls")["details"][0]
            .as_str()
            .unwrap()
            .contains("read 1 event(s)"),
        "{report:#}"
    );
}

#[test]
fn the_node_rbac_for_the_credential_providers_audience_is_read_and_its_fix_applies() {
    let sandbox = start("pod-node-rbac", vec![ecr_role(good_trust())]);
    plain_pod(&sandbox, "app");
    // Off by default.
    let (run, report) = doctor_pod(&sandbox, "app", &[]);
    assert_eq!(run.code, 0, "{report:#}");
    assert!(!checks(&report).any(|c| c["id"] == "node-audience-rbac"));

    // The default audience (sts.amazonaws.com) is the one the webhook's projected volume names:
    // NodeRestriction allows a pod's own audiences without RBAC, and doctor says the RBAC a pod
    // without that volume would need is missing.
    let (run, report) = doctor_pod(&sandbox, "app", &["--credential-provider"]);
    passes(&run, &report, "node-audience-rbac");
    let c = check(&report, "node-audience-rbac");
    assert_eq!(c["data"]["allowed_by"], "pod-volume", "{c:#}");
    assert_eq!(c["data"]["audience"], "sts.amazonaws.com", "{c:#}");
    assert!(
        c["details"][0].as_str().unwrap().contains("has none"),
        "{c:#}"
    );

    // A ClusterRole with the verb for another audience, bound to the nodes: a near miss.
    let other = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "other-audience"},
         "rules": [{"apiGroups": [""], "resources": ["api://other"], "verbs": ["request-serviceaccounts-token-audience"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "other-audience"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "other-audience"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]}
    ]});
    let file = sandbox.dir.write("other.json", &other.to_string());
    sandbox.kubectl(&["apply", "--validate=false", "-f", &file]);

    let registry = ["--credential-provider=api://registry"];
    let (run, report) = doctor_pod(&sandbox, "app", &registry);
    let c = only_failure(&run, &report, "node-audience-rbac");
    assert_eq!(c["data"]["audience"], "api://registry", "{c:#}");
    // [KEP-4412] the attributes of the authorization check.
    assert_eq!(
        c["expected"],
        json!({"verb": "request-serviceaccounts-token-audience", "apiGroup": "", "resource": "api://registry",
               "resourceName": SA, "namespace": NS, "subject": "Group system:nodes"}),
        "{c:#}"
    );
    assert!(
        c["details"].to_string().contains(
            "ClusterRole/other-audience allows request-serviceaccounts-token-audience on resources [\\\"api://other\\\"]"
        ),
        "{c:#}"
    );
    // The fix document is applied with kubectl as it is.
    assert_eq!(
        c["fix"]["document"]["items"][0]["rules"][0]["resources"][0],
        "api://registry"
    );
    let fix = sandbox
        .dir
        .write("fix.json", &c["fix"]["document"].to_string());
    sandbox.kubectl(&["apply", "--validate=false", "-f", &fix]);
    let (run, report) = doctor_pod(&sandbox, "app", &registry);
    passes(&run, &report, "node-audience-rbac");
    assert!(
        check(&report, "node-audience-rbac")["summary"]
            .as_str()
            .unwrap()
            .contains("ClusterRoleBinding/irsa-credential-provider-audience -> ClusterRole/irsa-credential-provider-audience"),
        "{report:#}"
    );
    // It is the RBAC `irsa install credential-provider --print rbac` prints, for its audience.
    let rules = |sandbox: &Sandbox| {
        sandbox.kubectl(&[
            "get",
            "clusterrole",
            "irsa-credential-provider-audience",
            "-o",
            "jsonpath={.rules}",
        ])
    };
    let from_doctor = rules(&sandbox);
    assert!(from_doctor.contains("api://registry"), "{from_doctor}");
    let printed =
        common::irsa_with_stdin(&["install", "credential-provider", "--print", "rbac"], "");
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    let yaml = sandbox.dir.write("printed.yaml", &printed.stdout);
    sandbox.kubectl(&["apply", "--validate=false", "-f", &yaml]);
    assert_eq!(
        rules(&sandbox),
        from_doctor.replace("api://registry", "sts.amazonaws.com")
    );
    let bindings = sandbox.kubectl(&["get", "clusterrolebindings", "-o", "name"]);
    assert_eq!(
        bindings
            .lines()
            .filter(|l| l.contains("irsa-credential-provider-audience"))
            .count(),
        1,
        "{bindings}"
    );

    // [KEP-4412] the check carries the namespace, so a RoleBinding in ci to a Role naming the
    // service account grants it; one naming another account does not.
    let ns_registry = ["--credential-provider=api://ns-registry"];
    let role = |names: &[&str]| {
        json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "registry-audience", "namespace": NS},
             "rules": [{"apiGroups": [""], "resources": ["api://ns-registry"], "resourceNames": names, "verbs": ["request-serviceaccounts-token-audience"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "registry-audience", "namespace": NS},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "registry-audience"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]}
        ]})
    };
    let file = sandbox
        .dir
        .write("role-other.json", &role(&["someone-else"]).to_string());
    sandbox.kubectl(&["apply", "--validate=false", "-f", &file]);
    let (run, report) = doctor_pod(&sandbox, "app", &ns_registry);
    let c = only_failure(&run, &report, "node-audience-rbac");
    assert!(
        c["details"]
            .to_string()
            .contains("resourceNames [\\\"someone-else\\\"]"),
        "{c:#}"
    );
    assert_eq!(
        c["fix"]["commands"][0],
        "kubectl apply -f rbac.json   # the document below"
    );
    let file = sandbox
        .dir
        .write("role-builder.json", &role(&[SA]).to_string());
    sandbox.kubectl(&["apply", "--validate=false", "-f", &file]);
    let (run, report) = doctor_pod(&sandbox, "app", &ns_registry);
    passes(&run, &report, "node-audience-rbac");
    assert!(
        check(&report, "node-audience-rbac")["summary"]
            .as_str()
            .unwrap()
            .contains("RoleBinding/ci/registry-audience -> Role/registry-audience"),
        "{report:#}"
    );
}

#[test]
fn a_bad_credential_provider_audience_or_target_is_bad_input() {
    for args in [
        vec!["doctor", "--pod", "ci/app", "--credential-provider="],
        vec!["doctor", "--pod", "ci/app", "--credential-provider=a b"],
        vec![
            "doctor",
            "--service-account",
            "ci/builder",
            "--credential-provider",
        ],
    ] {
        let run = common::irsa_with_stdin(&args, "");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("--credential-provider"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// Patches `pod`'s status: one container `name` in `state`.
fn set_status(sandbox: &Sandbox, pod: &str, name: &str, state: Value) {
    let status = json!({"status": {"containerStatuses": [{"name": name, "image": IMAGE, "imageID": "",
        "ready": false, "restartCount": 0, "state": state}]}});
    sandbox.kubectl(&[
        "patch",
        "pod",
        pod,
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// Review M1 and M2: the containers' statuses (the kubelet's) decide; Events that are not this
/// pod's (no uid) are dropped; an Event alone fails only saying so; a container's name and
/// an image's name are not read as causes.
#[test]
fn the_containers_statuses_decide_and_events_are_marked_and_tied_by_uid() {
    let sandbox = start("pod-forged", vec![ecr_role(good_trust())]);
    // An Event without a uid (anyone's) about a pod that pulled fine.
    plain_pod(&sandbox, "quiet");
    let forged = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "quiet.forged", "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "quiet", "namespace": NS},
        "reason": "Failed", "message": "Failed to pull image: 401 Unauthorized", "type": "Warning",
        "source": {"component": "kubelet"}});
    let file = sandbox.dir.write("event-forged.json", &forged.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (run, report) = doctor_pod(&sandbox, "quiet", &[]);
    passes(&run, &report, "image-pulls");

    // A running pod: its status shows no failure, so an Event (even with its uid) does not fail
    // it; the Event is shown, marked.
    plain_pod(&sandbox, "running");
    set_status(
        &sandbox,
        "running",
        "app",
        json!({"running": {"startedAt": "2026-12-01T00:00:00Z"}}),
    );
    let uid = pod_uid(&sandbox, "running");
    create_event(
        &sandbox,
        "running.1",
        "running",
        &uid,
        "Failed",
        "Failed to pull image \"x\": 401 Unauthorized",
    );
    let (run, report) = doctor_pod(&sandbox, "running", &[]);
    passes(&run, &report, "image-pulls");
    let details = check(&report, "image-pulls")["details"].to_string();
    assert!(
        details.contains("(from an Event: anyone who may create events can write one)"),
        "{details}"
    );

    // Events alone fail, saying they are all it rests on.
    plain_pod(&sandbox, "events-only");
    let uid = pod_uid(&sandbox, "events-only");
    create_event(
        &sandbox,
        "events-only.1",
        "events-only",
        &uid,
        "Failed",
        "Failed to pull image \"x\": 403 Forbidden",
    );
    // Another component's Event (a 401) does not outrank the kubelet's (a 403).
    let other = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "events-only.other", "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "events-only", "namespace": NS, "uid": uid},
        "reason": "Failed", "message": "Failed to pull image: 401 Unauthorized", "type": "Warning",
        "source": {"component": "tenant-bot"}});
    let file = sandbox.dir.write("event-other.json", &other.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (run, report) = doctor_pod(&sandbox, "events-only", &[]);
    let c = only_failure(&run, &report, "image-pulls");
    assert_eq!(c["data"]["likely"], "permissions", "{c:#}");
    assert_eq!(c["data"]["failures"][1]["component"], "tenant-bot", "{c:#}");
    assert!(
        c["details"][1]
            .as_str()
            .unwrap()
            .contains("(source tenant-bot, not the kubelet)"),
        "{c:#}"
    );
    assert_eq!(c["data"]["rests_on"], "events", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("rests on Events alone"),
        "{c:#}"
    );

    // The status picks the cause: its container's name (`auth-401`) and its image's name
    // (`audience-api`, an account id with 403 in it) are not read as causes; a 401 Event adds.
    create_pod(
        &sandbox,
        "named",
        json!([container("auth-401", json!({}))]),
        json!({}),
    );
    let image = "140312345678.dkr.ecr.us-east-1.amazonaws.com/audience-api:1";
    set_status(
        &sandbox,
        "named",
        "auth-401",
        json!({"waiting": {"reason": "ErrImagePull", "message": format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
        )}}),
    );
    let uid = pod_uid(&sandbox, "named");
    create_event(
        &sandbox,
        "named.1",
        "named",
        &uid,
        "Failed",
        "Failed to pull image \"x\": 401 Unauthorized",
    );
    let (run, report) = doctor_pod(&sandbox, "named", &[]);
    let c = only_failure(&run, &report, "image-pulls");
    assert_eq!(c["data"]["likely"], "image", "{c:#}");
    assert_eq!(c["data"]["rests_on"], "statuses", "{c:#}");
    assert_eq!(c["data"]["failures"][0]["container"], "auth-401", "{c:#}");
    assert_eq!(c["data"]["failures"].as_array().unwrap().len(), 2, "{c:#}");
}

/// Review M3: the RBAC is read a page at a time, up to a bound that is said.
#[test]
fn rbac_is_paged_and_a_bound_is_said() {
    let sandbox = start("pod-many-roles", vec![ecr_role(good_trust())]);
    plain_pod(&sandbox, "builder-pod");
    let items: Vec<Value> = (0..5001)
        .map(|i| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("filler-{i:05}")}, "rules": []})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = sandbox.dir.write("roles-many.json", &list.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (_, report) = doctor_pod(&sandbox, "builder-pod", &["--credential-provider"]);
    let details = check(&report, "node-audience-rbac")["details"].to_string();
    assert!(
        details.contains("read the first 5000 clusterroles only (250 a page)"),
        "{details}"
    );
}

/// Review M3: Events are read a page at a time, up to a bound that is said.
#[test]
fn events_are_paged_and_a_bound_is_said() {
    let sandbox = start("pod-many-events", vec![ecr_role(good_trust())]);
    plain_pod(&sandbox, "noisy");
    let uid = pod_uid(&sandbox, "noisy");
    let items: Vec<Value> = (0..1001)
        .map(|i| json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("noisy.{i}"), "namespace": NS},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "noisy", "namespace": NS, "uid": uid},
            "reason": "Pulled", "message": "Successfully pulled image", "type": "Normal",
            "source": {"component": "kubelet"}}))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = sandbox.dir.write("events-noisy.json", &list.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (run, report) = doctor_pod(&sandbox, "noisy", &[]);
    passes(&run, &report, "image-pulls");
    let details = check(&report, "image-pulls")["details"].to_string();
    assert!(
        details.contains("read the first 1000 event(s) only"),
        "{details}"
    );
}

/// Review M4: an imagePullSecret name that cannot name a Secret is never read (`regcred#x`
/// must not read `regcred`); names are read once, at most 16.
#[test]
fn pull_secret_names_are_valid_secret_names_read_once_and_bounded() {
    let sandbox = start("pod-secret-names", vec![ecr_role(good_trust())]);
    sandbox.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        NS,
        "--docker-server=111122223333.dkr.ecr.us-east-1.amazonaws.com",
        "--docker-username=AWS",
        "--docker-password=not-a-real-password",
    ]);
    create_pod(
        &sandbox,
        "hashed",
        json!([container("app", json!({}))]),
        json!({"imagePullSecrets": [{"name": "regcred#x"}, {"name": "regcred#x"}, {"name": "../regcred"}]}),
    );
    let (run, report) = doctor_pod(&sandbox, "hashed", &[]);
    let c = only_failure(&run, &report, "pull-secrets");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("imagePullSecret regcred#x cannot exist: not a valid Secret name"),
        "{c:#}"
    );
    assert_eq!(summary.matches("regcred#x").count(), 1, "{c:#}");
    assert!(summary.contains("../regcred cannot exist"), "{c:#}");
    assert!(
        summary.contains("no imagePullSecret holds credentials for 111122223333"),
        "{c:#}"
    );
    assert_eq!(c["data"]["secrets"][0]["valid_name"], false, "{c:#}");

    let many: Vec<Value> = (0..20).map(|i| json!({"name": format!("s{i}")})).collect();
    create_pod(
        &sandbox,
        "many",
        json!([container("app", json!({}))]),
        json!({"imagePullSecrets": many}),
    );
    let (run, report) = doctor_pod(&sandbox, "many", &[]);
    let c = only_failure(&run, &report, "pull-secrets");
    assert_eq!(c["data"]["secrets"].as_array().unwrap().len(), 16, "{c:#}");
    assert!(
        c["details"]
            .to_string()
            .contains("and 4 more imagePullSecret(s), not read"),
        "{c:#}"
    );
}

/// Review low (e): the kubelet reads a kubernetes.io/dockercfg secret's `.dockercfg`.
#[test]
fn a_legacy_dockercfg_secret_counts() {
    let sandbox = start("pod-dockercfg", vec![ecr_role(good_trust())]);
    let cfg = json!({"111122223333.dkr.ecr.us-east-1.amazonaws.com": {"auth": "QVdTOm5vdC1hLXJlYWwtcGFzc3dvcmQ="}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockercfg",
        "metadata": {"name": "legacy", "namespace": NS},
        "data": {".dockercfg": base64(&cfg.to_string())}});
    let file = sandbox.dir.write("secret-legacy.json", &secret.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    create_pod(
        &sandbox,
        "legacy",
        json!([container("app", json!({}))]),
        json!({"imagePullSecrets": [{"name": "legacy"}]}),
    );
    let (run, report) = doctor_pod(&sandbox, "legacy", &[]);
    passes(&run, &report, "pull-secrets");
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
