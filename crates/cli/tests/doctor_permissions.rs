//! doctor's `permissions` check against `irsa sandbox` as a process: the pull actions on the
//! repositories in use (a pod's ECR images, `--repository`), a permissions boundary that caps
//! the role's policies, and IAM's policy simulator (SimulatePrincipalPolicy) with the fallback
//! to reading the policies when the caller may not call it.
//!
//! Expected verdicts, from AWS's documentation rather than irsa's evaluator:
//! - [PULL] ECR User Guide, "Private repository policies" / "Pulling an image": a pull needs
//!   `ecr:GetAuthorizationToken` (resource `*`), and `ecr:BatchGetImage` and
//!   `ecr:GetDownloadUrlForLayer` on the repository.
//! - [BOUNDARY] IAM User Guide, "Permissions boundaries for IAM entities": the effective
//!   permissions are what both the identity-based policies and the boundary allow; an action
//!   the boundary does not allow is denied however the policies allow it.

mod common;
mod support_doctor;

use std::path::Path;

use serde_json::{Value, json};
use support_doctor::*;

const APP: &str = "arn:aws:ecr:us-east-1:111122223333:repository/team/app";
const TOOLS: &str = "arn:aws:ecr:us-east-1:111122223333:repository/team/tools";

/// `puller` with the token action on `*` and the pull actions on team/app only.
fn app_puller() -> Value {
    json!({
        "name": "puller",
        "trustPolicy": good_trust(),
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": APP}
        ]}]
    })
}

fn doctor(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .arg("doctor")
        .args(args)
        .args(["-o", "json"])
        .envs(env.iter().copied())
        .output()
        .expect("irsa doctor");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().expect("exit code"), report)
}

fn details(c: &Value) -> String {
    c["details"].to_string()
}

#[test]
fn a_role_lacking_pull_on_the_pods_repository_is_the_broken_link_naming_it() {
    // [PULL]: team/tools is in use by the pod and no statement allows pulling it.
    let sandbox = start("perm-pod", vec![app_puller()]);
    sandbox.create_injected_pod(
        "tools",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/tools:1",
    );
    sandbox.create_injected_pod(
        "app",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app:1",
    );
    let (code, report) = doctor(&sandbox, &["--pod", "ci/tools"], &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "permissions", "{report:#}");
    let c = check(&report, "permissions");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "no policy of the role allows ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on {TOOLS}"
        )),
        "{c:#}"
    );
    assert_eq!(c["data"]["outcome"], "implicit-deny", "{c:#}");
    assert!(
        c["fix"]["commands"][0]
            .as_str()
            .unwrap()
            .contains(&format!("irsa policy ecr-pull --repository {TOOLS}")),
        "{c:#}"
    );
    assert_eq!(check(&report, "ecr")["status"], "skip");
    // The pod that pulls team/app holds.
    let (code, report) = doctor(&sandbox, &["--pod", "ci/app"], &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        check(&report, "permissions")["summary"]
            .as_str()
            .unwrap()
            .contains("on the 1 repositories in use"),
        "{report:#}"
    );
}

#[test]
fn a_repository_flag_lacking_pull_is_named() {
    let sandbox = start("perm-flag", vec![app_puller()]);
    let (code, report) = doctor(
        &sandbox,
        &["--service-account", "ci/builder", "--repository", TOOLS],
        &[],
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["first_failure"], "permissions", "{report:#}");
    let c = check(&report, "permissions");
    assert!(c["summary"].as_str().unwrap().contains(TOOLS), "{c:#}");
    assert!(!c["summary"].as_str().unwrap().contains(APP), "{c:#}");
    let (code, report) = doctor(
        &sandbox,
        &[
            "--service-account",
            "ci/builder",
            "--repository",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app",
        ],
        &[],
    );
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_boundary_lacking_get_authorization_token_is_named_and_only_its_fix_printed() {
    // [BOUNDARY]: the role's policy allows every pull action; the boundary only the
    // repository ones, so ecr:GetAuthorizationToken is denied.
    let sandbox = start(
        "perm-boundary",
        vec![role(
            "puller",
            good_trust(),
            &[
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
        )],
    );
    let boundary = sandbox.boto3(
        "import json\n\
         arn = iam.create_policy(PolicyName='cap', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'sts:*'], 'Resource': '*'}]}))['Policy']['Arn']\n\
         iam.put_role_permissions_boundary(RoleName='puller', PermissionsBoundary=arn)\n\
         print(iam.get_role(RoleName='puller')['Role']['PermissionsBoundary']['PermissionsBoundaryArn'])\n",
    );
    let boundary = boundary.trim();
    assert_eq!(boundary, format!("arn:aws:iam::{ACCOUNT}:policy/cap"));
    let report = sandbox.expect_broken("permissions");
    let c = check(&report, "permissions");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("permissions boundary {boundary}")),
        "{c:#}"
    );
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("ecr:GetAuthorizationToken on *"),
        "{c:#}"
    );
    assert!(
        c["fix"]["summary"]
            .as_str()
            .unwrap()
            .contains("doctor does not change a permissions boundary"),
        "{c:#}"
    );
    assert!(c["fix"]["change"].is_null(), "no change to make: {c:#}");
    // --fix --yes has nothing to change, and says the chain is still broken.
    let (code, fixed) = doctor(
        &sandbox,
        &["--service-account", "ci/builder", "--fix", "--yes"],
        &[],
    );
    assert_eq!(code, 1, "{fixed:#}");
    assert_eq!(fixed["first_failure"], "permissions", "{fixed:#}");
    // boto3 reads the sandbox's simulator answer (the wire format), which says the boundary
    // decided.
    let simulated = sandbox.boto3(&format!(
        "r = iam.simulate_principal_policy(PolicySourceArn='{}', ActionNames=['ecr:GetAuthorizationToken', 'ecr:BatchGetImage'])['EvaluationResults']\n\
         print([(x['EvalActionName'], x['EvalDecision'], x['PermissionsBoundaryDecisionDetail']['AllowedByPermissionsBoundary']) for x in r])\n",
        role_arn("puller")
    ));
    assert_eq!(
        simulated.trim(),
        "[('ecr:GetAuthorizationToken', 'implicitDeny', False), ('ecr:BatchGetImage', 'allowed', True)]"
    );
    // And the sandbox's ECR decides as the boundary says: the session may not get a token.
    let [(_, id), (_, secret), (_, session)] = sandbox.session_env("puller");
    let out = sandbox.boto3(&format!(
        "import botocore\n\
         ecr = boto3.client('ecr', endpoint_url='{url}', region_name='us-east-1', aws_access_key_id='{id}', aws_secret_access_key='{secret}', aws_session_token='{session}')\n\
         try:\n    ecr.get_authorization_token()\n    print('granted')\n\
         except botocore.exceptions.ClientError as e:\n    print(e.response['Error']['Code'], e.response['Error']['Message'])\n",
        url = sandbox.get("AWS_ENDPOINT_URL"),
    ));
    assert!(
        out.contains("AccessDenied")
            && out.contains(
                "because no permissions boundary allows the ecr:GetAuthorizationToken action"
            ),
        "{out}"
    );
}

#[test]
fn simulate_principal_policy_denied_falls_back_to_reading_the_policies() {
    // The caller is a session of `inspector`, which may read IAM but not simulate.
    let inspector = json!({
        "name": "inspector",
        "trustPolicy": good_trust(),
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}
        ]}]
    });
    let sandbox = start(
        "perm-no-simulate",
        vec![
            role(
                "puller",
                good_trust(),
                &[
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
            ),
            inspector,
        ],
    );
    let session = sandbox.session_env("inspector");
    let env: Vec<(&str, &str)> = session.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["--service-account", "ci/builder", "--repository", APP];
    let (code, report) = doctor(&sandbox, &args, &env);
    assert_eq!(code, 0, "{report:#}");
    let c = check(&report, "permissions");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert!(
        details(c).contains("your credentials may not call iam:SimulatePrincipalPolicy (AccessDenied): decided from the role's policies as read"),
        "{c:#}"
    );
    // With the account's own keys, the simulator decides too.
    let (code, report) = doctor(&sandbox, &args, &[]);
    assert_eq!(code, 0, "{report:#}");
    let c = check(&report, "permissions");
    assert!(
        details(c)
            .contains("decided by iam:SimulatePrincipalPolicy and by reading the role's policies"),
        "{c:#}"
    );
    let stdout = report.to_string();
    assert!(
        !stdout.contains(env[1].1) && !stdout.contains(env[2].1),
        "{stdout}"
    );
}

#[test]
fn a_healthy_pod_chain_passes_with_the_simulator() {
    let sandbox = start(
        "perm-healthy",
        vec![role(
            "puller",
            good_trust(),
            &[
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
        )],
    );
    sandbox.create_injected_pod(
        "app",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app:1",
    );
    let (code, report) = doctor(&sandbox, &["--pod", "ci/app"], &[]);
    assert_eq!(code, 0, "{report:#}");
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    let c = check(&report, "permissions");
    assert!(
        details(c)
            .contains("decided by iam:SimulatePrincipalPolicy and by reading the role's policies"),
        "{c:#}"
    );
    assert!(!details(c).contains("disagree"), "{c:#}");
}

#[test]
fn a_pods_image_written_as_a_wildcard_arn_is_no_repository_and_no_grant() {
    // Review H1: a pod's image `arn:…:repository/*?` became a repository "in use", and the
    // fix proposed pull on every repository of the account (or of another account). A pod's
    // image is a tenant's text: only real ECR image references count.
    let sandbox = start("perm-wild", vec![app_puller()]);
    for (name, image) in [
        ("wild", "arn:aws:ecr:us-east-1:111122223333:repository/*?"),
        (
            "wild-path",
            "arn:aws:ecr:us-east-1:111122223333:repository/*/x",
        ),
        (
            "other-account",
            "arn:aws:ecr:us-east-1:444455556666:repository/?",
        ),
        (
            "host-wild",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/te?m/*:1",
        ),
    ] {
        sandbox.create_injected_pod(name, image);
        let (_, report) = doctor(&sandbox, &["--pod", &format!("ci/{name}")], &[]);
        let c = check(&report, "permissions");
        let text = c.to_string();
        assert!(
            !text.contains("repository/*") && !text.contains("repository/?"),
            "{image}: no wildcard is in use, nor proposed: {c:#}"
        );
        assert!(c["fix"]["change"].is_null(), "{image}: {c:#}");
        assert_eq!(
            c["status"], "pass",
            "{image}: only the token action is checked: {c:#}"
        );
    }
}

#[test]
fn a_deny_the_simulator_skips_for_want_of_context_is_no_pass() {
    // Review M2: the simulator, given no context, skips a Deny conditioned on a key and says
    // "allowed" (naming the key in MissingContextValues); the policies read say explicit
    // deny, and the simulator won: a pass while the real pull is denied.
    let puller = json!({
        "name": "puller",
        "trustPolicy": good_trust(),
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"},
            {"Sid": "NotFromThatVpce", "Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0bad"}}}
        ]}]
    });
    let sandbox = start("perm-context", vec![puller]);
    // The sandbox's simulator answers as IAM's does: allowed, the key missing.
    let simulated = sandbox.boto3(&format!(
        "r = iam.simulate_principal_policy(PolicySourceArn='{}', ActionNames=['ecr:BatchGetImage'], ResourceArns=['{APP}'])['EvaluationResults'][0]['ResourceSpecificResults'][0]\n\
         print(r['EvalResourceDecision'], r['MissingContextValues'])\n",
        role_arn("puller")
    ));
    assert_eq!(simulated.trim(), "allowed ['aws:SourceVpce']");
    let (code, report) = doctor(
        &sandbox,
        &["--service-account", "ci/builder", "--repository", APP],
        &[],
    );
    assert_eq!(code, 1, "{report:#}");
    let c = check(&report, "permissions");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().contains(&format!(
            "denied explicitly by the role's policies: ecr:BatchGetImage on {APP}"
        )),
        "{c:#}"
    );
    assert!(
        details(c).contains("without the context keys aws:SourceVpce"),
        "{c:#}"
    );
    assert!(c["fix"]["change"].is_null(), "{c:#}");
}
