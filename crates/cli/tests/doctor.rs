//! `irsa doctor --service-account` against `irsa sandbox` run as a separate process, with the
//! real kubectl setting the cluster up: each test breaks one link of the chain on purpose and
//! asserts that doctor names that link as the first failing check, and only it.
//!
//! The expected verdicts of the trust-policy scenarios are written down from AWS's
//! documentation, not from irsa's evaluator (which the sandbox's STS shares):
//! - [OPS] IAM User Guide, "IAM JSON policy elements: Condition operators"
//!   (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
//!   `StringEquals` is "exact matching, case sensitive"; `StringLike` is case-sensitive matching
//!   where "the values can include multi-character match wildcards (*) and single-character
//!   match wildcards (?)"; so `*` is a wildcard for StringLike only.
//! - [EVAL] IAM User Guide, "Policy evaluation logic"
//!   (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
//!   by default every request is implicitly denied; an explicit deny in any applicable
//!   statement overrides any allow.
//! - [IRSA] EKS User Guide, "Assign IAM roles to Kubernetes service accounts"
//!   (https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html): the
//!   token's `sub` is `system:serviceaccount:<namespace>:<name>` and the trust policy conditions
//!   `<issuer host/path>:sub` and `:aud` (`sts.amazonaws.com`).
//! - [ECR] ECR User Guide, "Private registry authentication": `ecr:GetAuthorizationToken` is
//!   granted on resource `*` (it has no resource ARN).

mod common;
mod support_doctor;

use serde_json::{Value, json};
use support_doctor::*;

#[test]
fn a_healthy_chain_passes_every_check_and_prints_no_secret() {
    let sandbox = start("healthy", vec![ecr_role(good_trust())]);
    let run = sandbox.doctor(&["-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    let ids: Vec<&str> = checks(&report).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ALL_CHECKS);
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    assert_eq!(
        check(&report, "token")["data"]["claims"]["sub"],
        "system:serviceaccount:ci:builder"
    );
    assert_eq!(
        check(&report, "oidc-provider")["data"]["arn"],
        provider_arn()
    );

    // The text tree, and no secret in either form: no JWT (every JWT starts with eyJ, base64
    // of `{"`), no STS session token (their common prefix), no secret key, no ECR password.
    let text = sandbox.doctor(&[]);
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(text.stdout.contains("✓ trust-policy"), "{}", text.stdout);
    assert!(
        text.stdout.contains("all 14 checks passed"),
        "{}",
        text.stdout
    );
    for out in [&run.stdout, &run.stderr, &text.stdout, &text.stderr] {
        assert!(!out.contains("eyJ"), "a JWT was printed: {out}");
        assert!(
            !out.contains("IQoJb3JpZ2luX2Vj"),
            "a session token was printed: {out}"
        );
        assert!(!out.contains("SecretAccessKey"), "{out}");
    }
}

#[test]
fn a_service_account_without_the_role_annotation() {
    let sandbox = Sandbox::start("no-annotation", vec![ecr_role(good_trust())], &[]);
    let report = sandbox.expect_broken("role-annotation");
    let fix = &check(&report, "role-annotation")["fix"]["commands"][0];
    assert!(
        fix.as_str().unwrap().starts_with(
            "kubectl annotate serviceaccount -n ci builder --overwrite eks.amazonaws.com/role-arn="
        ),
        "{fix}"
    );
    assert_eq!(check(&report, "role")["status"], "skip");
    assert_eq!(check(&report, "assume-role")["status"], "skip");
}

#[test]
fn a_typo_in_the_role_arn() {
    let sandbox = Sandbox::start(
        "typo",
        vec![ecr_role(good_trust())],
        &[("eks.amazonaws.com/role-arn", &role_arn("pullr"))],
    );
    let report = sandbox.expect_broken("role");
    assert!(
        check(&report, "role")["summary"]
            .as_str()
            .unwrap()
            .contains("no role named pullr"),
        "{report:#}"
    );
    // The links that need the role are skipped, the others still pass.
    assert_eq!(check(&report, "trust-policy")["status"], "skip");
    assert_eq!(check(&report, "oidc-provider")["status"], "pass");
}

#[test]
fn the_oidc_provider_is_missing_and_another_clusters_is_named() {
    let sandbox = start("no-provider", vec![ecr_role(good_trust())]);
    // Through the IAM Query API, with boto3: the cluster's provider goes, another cluster's
    // provider on the same host stays.
    sandbox.boto3(&format!(
        "iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n\
         iam.create_open_id_connect_provider(Url='https://oidc.sandbox.irsa.test/id/OTHER', ClientIDList=['sts.amazonaws.com'], ThumbprintList=[])\n",
        provider_arn()
    ));
    let report = sandbox.expect_broken("oidc-provider");
    let c = check(&report, "oidc-provider");
    let details = c["details"].to_string();
    assert!(
        details.contains("oidc-provider/oidc.sandbox.irsa.test/id/OTHER"),
        "{c:#}"
    );
    assert!(details.contains("another cluster"), "{c:#}");
    assert!(
        c["fix"]["commands"][0].as_str().unwrap().starts_with(&format!("aws iam create-open-id-connect-provider --url {ISSUER} --client-id-list sts.amazonaws.com")),
        "{c:#}"
    );
    assert_eq!(check(&report, "oidc-audience")["status"], "skip");
}

#[test]
fn the_audience_is_not_among_the_providers_client_ids() {
    // The service account asks for another audience, which the trust policy accepts too: only
    // the provider's client IDs (sts.amazonaws.com) miss it.
    let sandbox = Sandbox::start(
        "audience",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:builder",
            "api://irsa",
        ))],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            ("eks.amazonaws.com/audience", "api://irsa"),
        ],
    );
    let report = sandbox.expect_broken("oidc-audience");
    let c = check(&report, "oidc-audience");
    assert_eq!(c["expected"], "api://irsa");
    assert_eq!(c["actual"], json!(["sts.amazonaws.com"]));
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .contains("add-client-id-to-open-id-connect-provider"),
        "{c:#}"
    );
}

/// The trust-policy check failed on `key` with `operator`, the policy expecting `expected` and
/// the token having `actual`.
fn assert_condition(report: &Value, operator: &str, key: &str, expected: &str, actual: &str) {
    let c = check(report, "trust-policy");
    assert_eq!(
        c["expected"]["condition"],
        format!("{operator} {key}"),
        "{c:#}"
    );
    assert_eq!(c["expected"]["values"], json!([expected]), "{c:#}");
    assert_eq!(c["actual"]["values"], json!([actual]), "{c:#}");
    // The fix is a trust statement for the token's own service account: the whole policy
    // when the policy's own statement is broken (a wildcard in StringEquals), only the
    // statement to add when the role trusts another subject (the annotation may be wrong).
    let document = &c["fix"]["document"];
    let statement = if document["Statement"].is_array() {
        &document["Statement"][0]
    } else {
        document
    };
    assert_eq!(
        statement["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
        "system:serviceaccount:ci:builder",
        "{c:#}"
    );
}

/// The trust-policy fix for a role that trusts `other`: names it, warns that the annotation
/// may name another team's role, and adds a statement, never replacing the policy.
fn assert_trusts_another(report: &Value, other: &str) {
    let fix = &check(report, "trust-policy")["fix"];
    let summary = fix["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("the role trusts {other}"))
            && summary.contains("may name another team's role")
            && summary.contains("ADD"),
        "{fix:#}"
    );
    assert!(
        fix["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c.as_str().unwrap().contains("update-assume-role-policy --")),
        "{fix:#}"
    );
    assert_eq!(fix["document"]["Effect"], "Allow", "{fix:#}");
}

#[test]
fn a_trust_policy_for_another_namespace() {
    // [IRSA] sub names the namespace; [OPS] StringEquals is exact: "…:prod:builder" does not
    // equal "…:ci:builder", so the only Allow does not apply and [EVAL] the request is
    // implicitly denied, on the :sub condition.
    let sandbox = start(
        "other-ns",
        vec![ecr_role(trust_for(
            "system:serviceaccount:prod:builder",
            "sts.amazonaws.com",
        ))],
    );
    let report = sandbox.expect_broken("trust-policy");
    assert_condition(
        &report,
        "StringEquals",
        &format!("{PROVIDER}:sub"),
        "system:serviceaccount:prod:builder",
        "system:serviceaccount:ci:builder",
    );
    assert_trusts_another(&report, "system:serviceaccount:prod:builder");
}

#[test]
fn a_trust_policy_for_another_service_account() {
    // As above, with the name: "…:ci:runner" is not "…:ci:builder" [OPS][IRSA][EVAL].
    let sandbox = start(
        "other-sa",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    let report = sandbox.expect_broken("trust-policy");
    assert_condition(
        &report,
        "StringEquals",
        &format!("{PROVIDER}:sub"),
        "system:serviceaccount:ci:runner",
        "system:serviceaccount:ci:builder",
    );
    assert_trusts_another(&report, "system:serviceaccount:ci:runner");
}

#[test]
fn string_equals_where_string_like_is_needed() {
    // [OPS] StringEquals matches exactly, so the `*` is a literal character there and
    // "…:ci:*" does not match "…:ci:builder"; StringLike would. Implicit deny on :sub.
    let sandbox = start(
        "equals-wildcard",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:*",
            "sts.amazonaws.com",
        ))],
    );
    let report = sandbox.expect_broken("trust-policy");
    assert_condition(
        &report,
        "StringEquals",
        &format!("{PROVIDER}:sub"),
        "system:serviceaccount:ci:*",
        "system:serviceaccount:ci:builder",
    );
    assert!(
        check(&report, "trust-policy")["details"]
            .to_string()
            .contains("use StringLike"),
        "{report:#}"
    );
}

#[test]
fn a_deny_statement_wins_over_the_allow() {
    // [EVAL] an explicit deny overrides the allow: the Allow statement matches this token and
    // so does the Deny (StringLike "system:serviceaccount:ci:*" [OPS] matches ci:builder).
    let deny = json!({
        "Sid": "NoCi",
        "Effect": "Deny",
        "Principal": {"Federated": provider_arn()},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {format!("{PROVIDER}:sub"): "system:serviceaccount:ci:*"}}
    });
    let mut trust = good_trust();
    trust["Statement"].as_array_mut().unwrap().push(deny);
    let sandbox = start("deny", vec![ecr_role(trust)]);
    let report = sandbox.expect_broken("trust-policy");
    let c = check(&report, "trust-policy");
    assert_eq!(c["data"]["outcome"], "explicit-deny", "{c:#}");
    assert!(c["summary"].as_str().unwrap().contains("NoCi"), "{c:#}");
}

#[test]
fn permissions_without_ecr_get_authorization_token() {
    // [ECR] a pull needs ecr:GetAuthorizationToken on "*"; [EVAL] nothing allows it here, so
    // it is implicitly denied.
    let sandbox = start(
        "no-ecr",
        vec![role(
            "puller",
            good_trust(),
            &["ecr:BatchGetImage", "s3:GetObject"],
        )],
    );
    let report = sandbox.expect_broken("permissions");
    let c = check(&report, "permissions");
    assert_eq!(c["data"]["outcome"], "implicit-deny", "{c:#}");
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .starts_with("irsa policy ecr-pull"),
        "{c:#}"
    );
    // And the real call is not made: its link is already known to be broken.
    assert_eq!(check(&report, "ecr")["status"], "skip");
}

#[test]
fn a_fix_made_through_the_iam_api_is_seen_by_the_next_run() {
    let sandbox = start(
        "fixed",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    let report = sandbox.expect_broken("trust-policy");
    // The role trusts ci:runner: the fix is a statement to add to its policy, as its owner
    // would (read the policy, append, write it back), keeping ci:runner's statement.
    assert_trusts_another(&report, "system:serviceaccount:ci:runner");
    let statement = check(&report, "trust-policy")["fix"]["document"].to_string();
    sandbox.boto3(&format!(
        "import json\ndoc = iam.get_role(RoleName='puller')['Role']['AssumeRolePolicyDocument']\nif isinstance(doc, str):\n    import urllib.parse\n    doc = json.loads(urllib.parse.unquote(doc))\ndoc['Statement'].append(json.loads({statement:?}))\niam.update_assume_role_policy(RoleName='puller', PolicyDocument=json.dumps(doc))\nprint(len(doc['Statement']))\n"
    ));
    let run = sandbox.doctor(&["-o", "json"]);
    assert_eq!(run.code, 0, "{:#}", run.json());
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    for args in [
        vec!["doctor", "--service-account", "no-slash"],
        vec!["doctor", "--service-account", "Bad/Name"],
        // --audience is for the offline mode; online, the annotation says it.
        vec![
            "doctor",
            "--service-account",
            "ci/builder",
            "--audience",
            "x",
        ],
    ] {
        let run = common::irsa(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("--service-account") || run.stderr.contains("--trust-policy"),
            "{}",
            run.stderr
        );
    }
}

/// doctor with the sandbox's cluster and moto as AWS (IAM, STS, ECR): the IAM reads on the
/// real wire format, an attached managed policy (not only inline ones), and a link broken
/// through moto's API. moto's STS accepts any token, so this proves the wire, not the trust.
#[test]
fn against_moto_the_chain_holds_and_a_detached_policy_breaks_permissions() {
    const MOTO_ACCOUNT: &str = "123456789012";
    let moto = irsa_test_peers::Moto::start(&[]);
    let sandbox = Sandbox::start(
        "moto",
        vec![],
        &[(
            "eks.amazonaws.com/role-arn",
            &format!("arn:aws:iam::{MOTO_ACCOUNT}:role/puller"),
        )],
    );
    let mut trust = good_trust();
    trust["Statement"][0]["Principal"]["Federated"] = json!(format!(
        "arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/{PROVIDER}"
    ));
    let pull = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage"], "Resource": "*"}
    ]});
    let policy_arn = moto.python(&format!(
        "iam = client('iam')\n\
         iam.create_open_id_connect_provider(Url='{ISSUER}', ClientIDList=['sts.amazonaws.com'], ThumbprintList=['9e99a48a9960b14926bb7f3b02e22da2b0ab7280'])\n\
         iam.create_role(RoleName='puller', AssumeRolePolicyDocument={trust:?})\n\
         arn = iam.create_policy(PolicyName='pull', PolicyDocument={pull:?})['Policy']['Arn']\n\
         iam.attach_role_policy(RoleName='puller', PolicyArn=arn)\n\
         print(arn)\n",
        trust = trust.to_string(),
        pull = pull.to_string(),
    ));
    let policy_arn = policy_arn.trim();
    let doctor = || {
        let out = sandbox
            .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args(["doctor", "--service-account", "ci/builder", "-o", "json"])
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("irsa doctor");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (code, report) = doctor();
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        check(&report, "permissions")["details"]
            .to_string()
            .contains(&format!("attached {policy_arn}")),
        "{report:#}"
    );
    moto.python(&format!(
        "client('iam').detach_role_policy(RoleName='puller', PolicyArn='{policy_arn}')\n"
    ));
    let (code, report) = doctor();
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["first_failure"], "permissions", "{report:#}");
}

#[test]
fn iam_reads_the_caller_may_not_make_are_reported_as_not_checked_naming_the_permission() {
    // The caller's own credentials are a session of `puller`, which may not read IAM: the
    // sandbox's IAM evaluates that session's identity policies, as AWS does.
    let sandbox = start("iam-denied", vec![ecr_role(good_trust())]);
    let env = sandbox.session_env("puller");
    let out = sandbox
        .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["doctor", "--service-account", "ci/builder", "-o", "json"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("irsa doctor");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["first_failure"], "oidc-provider", "{report:#}");
    let c = check(&report, "oidc-provider");
    assert_eq!(c["status"], "error", "{c:#}");
    assert!(
        c["details"]
            .to_string()
            .contains("iam:GetOpenIDConnectProvider"),
        "{c:#}"
    );
    // Nothing of the caller's session reaches the report.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(&env[1].1) && !stdout.contains(&env[2].1),
        "{stdout}"
    );
}

/// A pod of ci/builder pulling an ECR image: as the webhook leaves it when `injected`, else
/// as created (no env, volume or mount).
fn create_pod(sandbox: &Sandbox, name: &str, injected: bool) {
    const IMAGE: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1";
    if injected {
        return sandbox.create_injected_pod(name, IMAGE);
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"serviceAccountName": SA, "containers": [{"name": "app", "image": IMAGE}]}});
    let file = sandbox.dir.write(&format!("{name}.json"), &pod.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
}

fn doctor_pod(sandbox: &Sandbox, pod: &str) -> (i32, Value) {
    let out = sandbox
        .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["doctor", "--pod", &format!("{NS}/{pod}"), "-o", "json"])
        .output()
        .expect("irsa doctor");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().expect("exit code"), report)
}

#[test]
fn a_pod_the_webhook_did_not_inject_is_the_broken_link_and_an_injected_one_passes() {
    let sandbox = start("pod", vec![ecr_role(good_trust())]);
    create_pod(&sandbox, "bare", false);
    create_pod(&sandbox, "injected", true);
    let (code, report) = doctor_pod(&sandbox, "bare");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "pod-injection", "{report:#}");
    let failing: Vec<&Value> = checks(&report).filter(|c| c["status"] == "fail").collect();
    assert_eq!(failing.len(), 1, "{report:#}");
    assert_eq!(
        check(&report, "pod-injection")["fix"]["commands"][0],
        "kubectl delete pod -n ci bare"
    );
    assert_eq!(check(&report, "pod")["data"]["service_account"], SA);

    let (code, report) = doctor_pod(&sandbox, "injected");
    assert_eq!(code, 0, "{report:#}");
    // pod, pod-injection, token-readable, pull-secrets, image-pulls
    assert_eq!(checks(&report).count(), ALL_CHECKS.len() + 5, "{report:#}");
    assert!(
        check(&report, "pull-secrets")["details"]
            .to_string()
            .contains("111122223333.dkr.ecr.us-east-1.amazonaws.com"),
        "{report:#}"
    );

    let (code, report) = doctor_pod(&sandbox, "missing");
    assert_eq!(code, 1);
    assert_eq!(report["first_failure"], "pod", "{report:#}");
}

#[test]
fn an_image_pull_secret_that_does_not_exist_is_named() {
    let sandbox = start("pull-secret", vec![ecr_role(good_trust())]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "puller", "namespace": NS}, "spec": {
        "serviceAccountName": SA,
        "imagePullSecrets": [{"name": "ecr-creds"}],
        "containers": [{"name": "app", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1",
            "env": [{"name": "AWS_ROLE_ARN", "value": role_arn("puller")},
                    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
            "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]}],
        "volumes": [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]}}]
    }});
    let file = sandbox.dir.write("pod.json", &pod.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (code, report) = doctor_pod(&sandbox, "puller");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "pull-secrets", "{report:#}");
    let summary = check(&report, "pull-secrets")["summary"].to_string();
    assert!(summary.contains("ecr-creds does not exist"), "{summary}");
    assert!(
        summary.contains(
            "no imagePullSecret holds credentials for 111122223333.dkr.ecr.us-east-1.amazonaws.com"
        ),
        "{summary}"
    ); // A broken pull secret does not hide the AWS side: the exchange still runs.
    assert_eq!(
        check(&report, "assume-role")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(check(&report, "ecr")["status"], "pass", "{report:#}");
}

#[test]
fn a_public_image_without_a_secret_is_not_a_failure() {
    // The pod's ECR image has its secret (keyed the way docker writes Docker Hub's too); its
    // docker.io image has none, which is normal for a public image irsa does not serve.
    let sandbox = start("public-image", vec![ecr_role(good_trust())]);
    let config = json!({"auths": {"111122223333.dkr.ecr.us-east-1.amazonaws.com": {"auth": "QVdTOnNlY3JldA=="}}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "ecr-creds", "namespace": NS},
        "data": {".dockerconfigjson": base64(&config.to_string())}});
    let file = sandbox.dir.write("secret.json", &secret.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mixed", "namespace": NS}, "spec": {
        "serviceAccountName": SA,
        "imagePullSecrets": [{"name": "ecr-creds"}],
        "containers": [
            {"name": "app", "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1",
             "env": [{"name": "AWS_ROLE_ARN", "value": role_arn("puller")},
                     {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
             "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]},
            {"name": "proxy", "image": "nginx:1.27",
             "env": [{"name": "AWS_ROLE_ARN", "value": role_arn("puller")},
                     {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
             "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]}],
        "volumes": [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]}}]
    }});
    let file = sandbox.dir.write("pod.json", &pod.to_string());
    sandbox.kubectl(&["create", "--validate=false", "-f", &file]);
    let (code, report) = doctor_pod(&sandbox, "mixed");
    assert_eq!(code, 0, "{report:#}");
    let c = check(&report, "pull-secrets");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(c["details"].to_string().contains("docker.io"), "{c:#}");
}

fn base64(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every fix command doctor printed (text `$ ` lines and JSON `fix.commands`).
fn fix_commands(text: &str, json: &Value) -> Vec<String> {
    let mut commands: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .map(str::to_owned)
        .collect();
    for c in checks(json) {
        if let Some(list) = c["fix"]["commands"].as_array() {
            commands.extend(list.iter().map(|v| v.as_str().unwrap().to_owned()));
        }
    }
    commands
}

#[test]
fn a_hostile_audience_annotation_is_refused_and_never_reaches_a_shell() {
    // The audience annotation is the tenant's: one with shell syntax in it must not become a
    // command an admin pastes. Each printed command is run by sh with `printf` in front of it
    // (so it only prints its words) in an empty directory: the payload would create `pwned`.
    let payload = "x;touch${IFS}pwned";
    let sandbox = Sandbox::start(
        "hostile-audience",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:builder",
            payload,
        ))],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            ("eks.amazonaws.com/audience", payload),
        ],
    );
    let text = sandbox.doctor(&[]);
    let json = sandbox.doctor(&["-o", "json"]);
    let report = json.json();
    let commands = fix_commands(&text.stdout, &report);
    assert!(!commands.is_empty(), "{}", text.stdout);
    let shell_dir = sandbox.dir.0.join("shell");
    std::fs::create_dir_all(&shell_dir).unwrap();
    for cmd in &commands {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '[%s]\\n' {cmd}"))
            .current_dir(&shell_dir)
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{cmd}");
        assert!(
            !shell_dir.join("pwned").exists(),
            "the printed command ran the tenant's payload: {cmd}"
        );
    }
    assert_eq!(json.code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "role-annotation", "{report:#}");
    let c = check(&report, "role-annotation");
    assert!(
        c["summary"].as_str().unwrap().contains("shell"),
        "the refusal names why: {c:#}"
    );
    assert!(c["fix"].is_object(), "{c:#}");
}

#[test]
fn control_characters_in_tenant_values_do_not_reach_the_terminal_raw() {
    // An ESC sequence or a CR in an annotation could repaint the report (a forged ✓ line).
    let sandbox = Sandbox::start(
        "control-chars",
        vec![ecr_role(good_trust())],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            (
                "eks.amazonaws.com/audience",
                "api://x\u{1b}[2K\u{1b}[1G✓forged",
            ),
        ],
    );
    let run = sandbox.doctor(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\r'),
        "raw control character on stdout: {:?}",
        run.stdout
    );
    assert!(run.stdout.contains("\\u{1b}"), "{}", run.stdout);
}

#[test]
fn a_govcloud_role_with_an_sts_region_of_the_aws_partition() {
    // A GovCloud role (arn:aws-us-gov:…) is assumed through GovCloud's STS; the sandbox's env
    // says AWS_REGION=us-east-1 (partition aws). The partition check names that, before any
    // IAM call is made against the wrong partition.
    let sandbox = Sandbox::start(
        "govcloud",
        vec![ecr_role(good_trust())],
        &[(
            "eks.amazonaws.com/role-arn",
            &format!("arn:aws-us-gov:iam::{ACCOUNT}:role/puller"),
        )],
    );
    assert_eq!(sandbox.get("AWS_REGION"), "us-east-1");
    let report = sandbox.expect_broken("partition");
    let c = check(&report, "partition");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("partition aws-us-gov")
            && summary.contains("AWS_REGION us-east-1 is in aws"),
        "{c:#}"
    );
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .starts_with("AWS_REGION=us-gov-west-1"),
        "{c:#}"
    );
    assert_eq!(check(&report, "oidc-provider")["status"], "skip");
    assert_eq!(check(&report, "role")["status"], "skip");
}

#[test]
fn a_china_token_audience_for_a_role_of_the_aws_partition() {
    // sts.amazonaws.com.cn is China's STS: the provider and trust policy accept it here (so
    // only the partition link breaks), but it is a China configuration copied into aws.
    let sandbox = Sandbox::start(
        "china-audience",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:builder",
            "sts.amazonaws.com.cn",
        ))],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            ("eks.amazonaws.com/audience", "sts.amazonaws.com.cn"),
        ],
    );
    sandbox.boto3(&format!(
        "iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn='{}', ClientID='sts.amazonaws.com.cn')\n",
        provider_arn()
    ));
    let report = sandbox.expect_broken("partition");
    let summary = check(&report, "partition")["summary"].to_string();
    assert!(
        summary.contains("names the STS of partition aws-cn, the role is in aws"),
        "{report:#}"
    );
}

#[test]
fn a_role_set_up_for_eks_pod_identity_is_the_session_tags_trap() {
    // EKS Pod Identity's trust statement: the pods.eks.amazonaws.com service principal with
    // sts:AssumeRole and sts:TagSession (EKS User Guide, "Create an IAM role for EKS Pod
    // Identity"). It trusts no web identity: STS would answer AccessDenied to IRSA.
    let trust = trust_with(vec![json!({
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]
    })]);
    let sandbox = start("pod-identity", vec![ecr_role(trust)]);
    let report = sandbox.expect_broken("session-tags");
    let c = check(&report, "session-tags");
    assert!(
        c["summary"].as_str().unwrap().contains("EKS Pod Identity"),
        "{c:#}"
    );
    assert_eq!(
        c["fix"]["document"]["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
        "system:serviceaccount:ci:builder",
        "{c:#}"
    );
    assert_eq!(check(&report, "trust-policy")["status"], "skip");
}

#[test]
fn an_argocd_project_is_checked_as_its_service_account() {
    // irsa's Argo CD integration gives project P the identity argocd/argocd-project-P.
    let sa = "argocd-project-production";
    let sandbox = Sandbox::start(
        "argocd-project",
        vec![ecr_role(trust_for(
            &format!("system:serviceaccount:argocd:{sa}"),
            "sts.amazonaws.com",
        ))],
        &[],
    );
    sandbox.kubectl(&["create", "namespace", "argocd"]);
    sandbox.kubectl(&["create", "serviceaccount", sa, "-n", "argocd"]);
    sandbox.kubectl(&[
        "annotate",
        "serviceaccount",
        sa,
        "-n",
        "argocd",
        &format!("eks.amazonaws.com/role-arn={}", role_arn("puller")),
    ]);
    let doctor = |project: &str| {
        let out = sandbox
            .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args(["doctor", "--argocd-project", project, "-o", "json"])
            .output()
            .expect("irsa doctor");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().expect("exit code"), report)
    };
    let (code, report) = doctor("production");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["target"],
        "Argo CD project production (service account argocd/argocd-project-production)"
    );
    assert_eq!(
        check(&report, "token")["data"]["claims"]["sub"],
        "system:serviceaccount:argocd:argocd-project-production"
    );
    let (code, report) = doctor("staging");
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "service-account", "{report:#}");
    let bad = common::irsa(&["doctor", "--argocd-project", "Bad_Name"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--argocd-project"), "{}", bad.stderr);
}
