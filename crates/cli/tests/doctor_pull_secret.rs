//! `irsa doctor --pull-secret` against `irsa sandbox` and `irsa controller` run as separate
//! processes, the controller with exactly the arguments `irsa install` deploys and the CRDs
//! `irsa install --only crds` prints, applied with the real kubectl. Each scenario breaks one
//! thing (the resource, its status, a target's secret, the role it names) and asserts the first
//! failing check; the healthy ones pass every check.

mod common;
mod support_doctor;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support_doctor::installed::*;
use support_doctor::*;

/// The checks of a pull secret's run, in order: its own three, then the chain.
fn pull_secret_checks() -> Vec<&'static str> {
    let mut ids = vec!["pull-secret", "pull-secret-status", "pull-secret-targets"];
    ids.extend(ALL_CHECKS);
    ids
}

/// `irsa doctor --pull-secret TARGET ARGS` against the sandbox.
fn doctor(sandbox: &Sandbox, target: &str, extra: &[&str]) -> common::Run {
    let out = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["doctor", "--pull-secret", target])
        .args(extra)
        .output()
        .expect("irsa doctor runs");
    common::Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

/// The JSON report, asserting exit 1 and `first` as the first failing check.
fn broken(sandbox: &Sandbox, target: &str, first: &str) -> Value {
    let run = doctor(sandbox, target, &["-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}\n{}", run.stderr);
    assert_eq!(report["first_failure"], first, "{report:#}");
    report
}

fn failing(report: &Value) -> Vec<&str> {
    checks(report)
        .filter(|c| c["status"] == "fail" || c["status"] == "error")
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

fn summary<'a>(report: &'a Value, id: &str) -> &'a str {
    check(report, id)["summary"].as_str().unwrap()
}

/// No web-identity JWT, STS session token, secret key or registry password (the sandbox's ECR
/// passwords, as every ECR token, are base64 of `AWS:`…) in what doctor printed.
fn assert_no_secret(outputs: &[&str]) {
    for out in outputs {
        assert!(!out.contains("eyJ"), "a JWT was printed: {out}");
        assert!(
            !out.contains("IQoJb3JpZ2luX2Vj"),
            "a session token was printed: {out}"
        );
        assert!(!out.contains("SecretAccessKey"), "{out}");
        assert!(!out.contains("QVdTO"), "a registry auth was printed: {out}");
    }
}

#[test]
fn a_healthy_cluster_pull_secret_passes_every_check() {
    let (sandbox, c) = start_all(
        "ps-healthy",
        vec![ecr_role(good_trust())],
        &["app-a", "app-b"],
    );
    cluster_pull_secret(&sandbox, "ecr", json!({}));
    wait_status(&sandbox, &c, &["clusterpullsecret", "ecr"], "True");

    let run = doctor(&sandbox, "ecr", &["-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    let ids: Vec<&str> = checks(&report).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, pull_secret_checks());
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    // The JSON's shape: the target, the counts, each check's data.
    assert_eq!(report["target"], "ClusterPullSecret ecr");
    assert_eq!(report["ok"], true);
    assert_eq!(report["first_failure"], Value::Null);
    assert_eq!(
        report["counts"],
        json!({"pass": 17, "fail": 0, "error": 0, "skip": 0})
    );
    let ps = &check(&report, "pull-secret")["data"];
    assert_eq!(ps["kind"], "ClusterPullSecret");
    assert_eq!(ps["registries"], json!([ecr_host()]));
    assert_eq!(ps["service_account"], "ci/builder");
    assert_eq!(ps["secret_name"], "regcred");
    assert_eq!(ps["role_arn"], Value::Null);
    let status = &check(&report, "pull-secret-status")["data"]["status"];
    assert_eq!(status["ready"], "True");
    assert_eq!(status["observed_generation"], status["generation"]);
    let targets = &check(&report, "pull-secret-targets")["data"]["targets"];
    assert_eq!(
        targets["current"],
        json!({"count": 2, "namespaces": ["app-a", "app-b"]})
    );
    assert!(
        summary(&report, "pull-secret-targets")
            .starts_with("2/2 target namespace(s) hold secret regcred"),
        "{report:#}"
    );
    assert_eq!(check(&report, "ecr")["data"]["registry"], ecr_host());
    assert_eq!(
        check(&report, "token")["data"]["claims"]["sub"],
        "system:serviceaccount:ci:builder"
    );

    let text = doctor(&sandbox, "ecr", &[]);
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(
        text.stdout
            .starts_with("irsa doctor: ClusterPullSecret ecr\n"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("✓ pull-secret-targets"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("all 17 checks passed"),
        "{}",
        text.stdout
    );
    assert_no_secret(&[&run.stdout, &run.stderr, &text.stdout, &text.stderr]);
}

#[test]
fn a_healthy_namespaced_pull_secret_passes_every_check() {
    let (sandbox, c) = start_all("ps-namespaced", vec![ecr_role(good_trust())], &[]);
    // The service account's namespace left out: a PullSecret's own.
    apply(
        &sandbox,
        &json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "PullSecret",
            "metadata": {"name": "ecr", "namespace": NS},
            "spec": {
                "registries": [{"host": ecr_host()}],
                "identity": {"serviceAccount": {"name": SA}},
                "secretName": "regcred",
            },
        }),
    );
    wait_status(&sandbox, &c, &["pullsecret", "-n", NS, "ecr"], "True");
    let run = doctor(&sandbox, "ci/ecr", &["-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    let ids: Vec<&str> = checks(&report).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, pull_secret_checks());
    assert!(failing(&report).is_empty(), "{report:#}");
    assert_eq!(report["target"], "PullSecret ci/ecr");
    assert_eq!(check(&report, "pull-secret")["data"]["kind"], "PullSecret");
    assert_eq!(
        check(&report, "pull-secret-targets")["data"]["targets"]["current"]["namespaces"],
        json!(["ci"])
    );
    assert_no_secret(&[&run.stdout, &run.stderr]);
}

#[test]
fn a_missing_pull_secret_is_named_and_the_chain_skipped() {
    let sandbox = start("ps-missing", vec![ecr_role(good_trust())]);
    // Before the CRDs: doctor says they are not installed.
    let report = broken(&sandbox, "ecr", "pull-secret");
    assert!(
        summary(&report, "pull-secret").contains("irsa's CRDs are not installed"),
        "{report:#}"
    );
    assert_eq!(
        check(&report, "pull-secret")["fix"]["commands"][0],
        "irsa install --only crds | kubectl apply --server-side -f -"
    );

    install_crds(&sandbox);
    cluster_pull_secret(&sandbox, "other", json!({}));
    let report = broken(&sandbox, "nope", "pull-secret");
    assert_eq!(
        summary(&report, "pull-secret"),
        "ClusterPullSecret nope does not exist"
    );
    assert!(
        check(&report, "pull-secret")["details"][0] == "ClusterPullSecrets: other",
        "the ones that exist are named: {report:#}"
    );
    let ids: Vec<&str> = checks(&report).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, pull_secret_checks(), "every check is accounted for");
    assert_eq!(failing(&report), ["pull-secret"]);
    for c in checks(&report).skip(1) {
        assert_eq!(c["status"], "skip", "{c:#}");
        assert_eq!(c["summary"], "skipped: needs pull-secret", "{c:#}");
    }

    // The controller's own credentials (ambient): no service account's chain to walk. No
    // controller runs here, so no status either, and no namespace is labelled for it.
    apply(
        &sandbox,
        &json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
            "metadata": {"name": "ambient"},
            "spec": {
                "registries": [{"host": ecr_host()}],
                "identity": {"ambient": {}},
                "secretName": "regcred",
                "namespaces": {"selector": {"matchLabels": {"team": "pull"}}},
            },
        }),
    );
    let report = broken(&sandbox, "ambient", "pull-secret-status");
    assert!(
        summary(&report, "pull-secret-status")
            .starts_with("no status: the controller has not reconciled it"),
        "{report:#}"
    );
    assert_eq!(
        summary(&report, "pull-secret-targets"),
        "it selects no namespace: no secret is written anywhere"
    );
    assert_eq!(
        failing(&report),
        ["pull-secret-status", "pull-secret-targets"]
    );
    for id in ALL_CHECKS {
        let c = check(&report, id);
        assert_eq!(c["status"], "skip", "{c:#}");
        assert!(
            c["summary"].as_str().unwrap().starts_with(
                "not applicable: spec.identity.ambient uses the controller's own credentials"
            ),
            "{c:#}"
        );
    }

    let report = broken(&sandbox, "ci/nope", "pull-secret");
    assert_eq!(
        summary(&report, "pull-secret"),
        "PullSecret ci/nope does not exist"
    );
    let text = doctor(&sandbox, "ci/nope", &[]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .contains("the first link that is broken: pull-secret (1 of 17 checks failed"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_role_that_does_not_exist_fails_the_status_and_the_chain_names_role() {
    // spec.identity.roleArn overrides the annotation (role puller, which exists and would
    // pass): the chain is checked with the pull secret's role.
    let (sandbox, c) = start_all("ps-no-role", vec![ecr_role(good_trust())], &["app-a"]);
    let nosuch = role_arn("nosuch");
    cluster_pull_secret(&sandbox, "bad-role", json!({"roleArn": nosuch}));
    wait_status(&sandbox, &c, &["clusterpullsecret", "bad-role"], "False");

    let report = broken(&sandbox, "bad-role", "pull-secret-status");
    let status = check(&report, "pull-secret-status");
    assert!(
        summary(&report, "pull-secret-status").starts_with("not Ready (Pending)"),
        "{status:#}"
    );
    assert_eq!(status["data"]["chain_first_failure"], "role", "{status:#}");
    assert!(
        status["details"]
            .to_string()
            .contains("breaks first at role"),
        "{status:#}"
    );
    assert_eq!(check(&report, "pull-secret")["data"]["role_arn"], nosuch);
    assert_eq!(
        summary(&report, "role-annotation"),
        format!("role {nosuch} from ClusterPullSecret bad-role's spec.identity.roleArn")
    );
    assert!(
        summary(&report, "role").contains("no role named nosuch"),
        "{report:#}"
    );
    let role = check(&report, "role");
    assert!(
        role["details"].to_string().contains(
            "the role is the one ClusterPullSecret bad-role's spec.identity.roleArn names"
        ),
        "{role:#}"
    );
    assert_eq!(
        role["fix"]["commands"][0],
        "kubectl edit clusterpullsecret bad-role"
    );
    // The targets never got a secret; the links before the role hold.
    assert!(
        summary(&report, "pull-secret-targets").contains("1 missing"),
        "{report:#}"
    );
    assert_eq!(
        failing(&report),
        ["pull-secret-status", "pull-secret-targets", "role"]
    );
    assert_eq!(check(&report, "oidc-provider")["status"], "pass");
    assert_eq!(check(&report, "assume-role")["status"], "skip");
    // No `--fix` change is offered for a pull secret.
    for c in checks(&report) {
        assert!(c["fix"]["change"].is_null(), "{c:#}");
    }
}

#[test]
fn a_target_whose_secret_is_missing_expired_or_someone_elses_is_named() {
    let (sandbox, mut c) = start_all(
        "ps-targets",
        vec![ecr_role(good_trust())],
        &["t-a", "t-b", "t-c"],
    );
    cluster_pull_secret(&sandbox, "ecr", json!({}));
    let obj = wait_status(&sandbox, &c, &["clusterpullsecret", "ecr"], "True");
    assert_eq!(obj["status"]["targets"]["summary"], "3/3", "{obj:#}");
    // The controller stops (it would mend all of it); then one secret goes, one expires, and a
    // new target namespace holds a user's secret of that name.
    c.stop();
    sandbox.kubectl(&["delete", "secret", "regcred", "-n", "t-a"]);
    sandbox.kubectl(&[
        "annotate",
        "secret",
        "regcred",
        "-n",
        "t-b",
        "--overwrite",
        "irsa.dev/expires-at=2020-01-01T00:00:00Z",
    ]);
    target_namespace(&sandbox, "t-d");
    sandbox.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "-n",
        "t-d",
        &format!("--docker-server={}", ecr_host()),
        "--docker-username=someone",
        "--docker-password=hunter2-not-irsas",
    ]);

    let report = broken(&sandbox, "ecr", "pull-secret-targets");
    assert_eq!(failing(&report), ["pull-secret-targets"], "{report:#}");
    // The targets are the controller's output, not a link of the identity chain: the real
    // exchange still runs.
    assert_eq!(
        check(&report, "assume-role")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(check(&report, "ecr")["status"], "pass", "{report:#}");
    assert_eq!(
        summary(&report, "pull-secret-targets"),
        "1/4 target namespace(s) hold a current secret regcred, 1 missing, 1 held by a secret irsa does not own, 1 expired"
    );
    let t = check(&report, "pull-secret-targets");
    let details: Vec<&str> = t["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for want in [
        "missing: t-a",
        "held by a secret irsa does not own: t-d",
        "expired: t-b",
        "t-d: regcred is not managed by irsa (no label app.kubernetes.io/managed-by=irsa)",
        "t-b: expired 2020-01-01T00:00:00Z",
    ] {
        assert!(details.contains(&want), "{want:?} in {details:#?}");
    }
    assert_eq!(
        t["data"]["targets"]["current"]["namespaces"],
        json!(["t-c"])
    );
    assert_eq!(
        t["fix"]["commands"][0],
        "kubectl get secret -n t-d regcred -o yaml"
    );
    let text = doctor(&sandbox, "ecr", &[]);
    assert!(!text.stdout.contains("hunter2"), "{}", text.stdout);
    assert_no_secret(&[&text.stdout, &text.stderr]);

    // A spec changed while no controller runs: the status describes an older generation.
    sandbox.kubectl(&[
        "patch",
        "clusterpullsecret",
        "ecr",
        "--type=merge",
        "-p",
        r#"{"spec":{"secretLabels":{"changed":"yes"}}}"#,
    ]);
    let report = broken(&sandbox, "ecr", "pull-secret-status");
    assert!(
        summary(&report, "pull-secret-status")
            .starts_with("stale: the status describes generation 1, the spec is at 2"),
        "{report:#}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    for (args, want) in [
        (
            &["doctor", "--pull-secret", "a/b/c"][..],
            "--pull-secret \"a/b/c\" has 2 '/' (at most one): give NAME for a ClusterPullSecret or NAMESPACE/NAME for a PullSecret",
        ),
        (
            &["doctor", "--pull-secret", "Team_A/ecr"][..],
            "--pull-secret \"Team_A/ecr\" does not start with a namespace",
        ),
        (
            &[
                "doctor",
                "--pull-secret",
                "ecr",
                "--service-account",
                "ci/builder",
            ][..],
            "cannot be used with",
        ),
        (
            &["doctor", "--pull-secret", "ecr", "--fix"][..],
            "cannot be used with",
        ),
    ] {
        let run = common::irsa(args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn the_help_names_the_flag_and_its_checks() {
    let run = common::irsa(&["doctor", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for want in [
        "--pull-secret <NAME|NAMESPACE/NAME>",
        "irsa doctor --pull-secret team-a/ecr",
        "pull-secret-status",
        "pull-secret-targets",
    ] {
        assert!(run.stdout.contains(want), "{want}: {}", run.stdout);
    }
}

#[test]
fn many_targets_are_counted_and_only_a_few_listed() {
    // No controller: 25 selected namespaces, none with a secret.
    let sandbox = start("ps-many", vec![ecr_role(good_trust())]);
    install_crds(&sandbox);
    let namespaces: Vec<Value> = (0..25)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": format!("n-{i:02}"), "labels": {"team": "pull"}}})
        })
        .collect();
    apply(
        &sandbox,
        &json!({"apiVersion": "v1", "kind": "List", "items": namespaces}),
    );
    cluster_pull_secret(&sandbox, "ecr", json!({}));
    let report = broken(&sandbox, "ecr", "pull-secret-status");
    let t = check(&report, "pull-secret-targets");
    assert_eq!(
        t["summary"], "0/25 target namespace(s) hold a current secret regcred, 25 missing",
        "{t:#}"
    );
    assert_eq!(t["data"]["targets"]["missing"]["count"], 25);
    assert_eq!(
        t["data"]["targets"]["missing"]["namespaces"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let details = t["details"].to_string();
    assert!(
        details.contains(
            "missing: n-00, n-01, n-02, n-03, n-04, n-05, n-06, n-07, n-08, n-09, … and 15 more"
        ),
        "{t:#}"
    );
    assert!(
        details.contains("only the first 20 namespaces without irsa's secret were looked at"),
        "{t:#}"
    );
}

#[test]
fn a_users_secret_in_the_way_degrades_the_status_and_is_named() {
    // The controller runs: it leaves the user's secret alone and reports the conflict.
    let (sandbox, c) = start_all(
        "ps-conflict",
        vec![ecr_role(good_trust())],
        &["own", "taken"],
    );
    sandbox.kubectl(&[
        "create",
        "secret",
        "generic",
        "regcred",
        "-n",
        "taken",
        "--from-literal=password=hunter2-not-irsas",
    ]);
    cluster_pull_secret(&sandbox, "ecr", json!({}));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let obj = wait_status(&sandbox, &c, &["clusterpullsecret", "ecr"], "True");
        if obj["status"]["targets"]["conflicted"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no conflict reported: {obj:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = broken(&sandbox, "ecr", "pull-secret-status");
    assert!(
        summary(&report, "pull-secret-status").starts_with("Ready, but Degraded (Conflict)"),
        "{report:#}"
    );
    assert_eq!(
        failing(&report),
        ["pull-secret-status", "pull-secret-targets"]
    );
    assert_eq!(
        summary(&report, "pull-secret-targets"),
        "1/2 target namespace(s) hold a current secret regcred, 1 held by a secret irsa does not own"
    );
    assert!(
        check(&report, "pull-secret-targets")["details"]
            .to_string()
            .contains("taken: regcred is not managed by irsa"),
        "{report:#}"
    );
    // The identity chain holds: the exchange runs.
    assert_eq!(check(&report, "ecr")["status"], "pass", "{report:#}");
    let text = doctor(&sandbox, "ecr", &[]);
    assert!(!text.stdout.contains("hunter2"), "{}", text.stdout);
}

/// Review M2: a PullSecret's spec.identity.roleArn is the tenant's choice. The trust-policy fix
/// doctor prints for it (no `--fix` with `--pull-secret`) keeps what `--fix` would have asked
/// first (the role's name confirmed, and why) and says that a tenant's resource names the role.
#[test]
fn a_tenants_role_override_keeps_the_confirmation_warning_beside_the_printed_fix() {
    let other = role(
        "other",
        trust_for("system:serviceaccount:prod:app", "sts.amazonaws.com"),
        &[
            "ecr:GetAuthorizationToken",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
    );
    let (sandbox, c) = start_all("ps-tenant-role", vec![ecr_role(good_trust()), other], &[]);
    apply(
        &sandbox,
        &json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "PullSecret",
            "metadata": {"name": "ecr", "namespace": NS},
            "spec": {
                "registries": [{"host": ecr_host()}],
                "identity": {"serviceAccount": {"name": SA}, "roleArn": role_arn("other")},
                "secretName": "regcred",
            },
        }),
    );
    wait_status(&sandbox, &c, &["pullsecret", "-n", NS, "ecr"], "False");
    let run = doctor(&sandbox, "ci/ecr", &["-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}\n{}", run.stderr);
    let trust = check(&report, "trust-policy");
    assert_eq!(trust["status"], "fail", "{trust:#}");
    assert!(
        trust["fix"]["change"].is_null(),
        "no --fix change: {trust:#}"
    );
    let details = trust["details"].to_string();
    assert!(
        details.contains("doctor --fix would change it only once its name, other, is confirmed"),
        "{trust:#}"
    );
    assert!(
        details.contains("named by PullSecret ci/ecr's spec.identity.roleArn, a tenant's resource"),
        "{trust:#}"
    );
}
