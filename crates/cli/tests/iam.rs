//! `irsa iam setup` and `irsa iam chainguard`, running the real binary: against moto's IAM (the
//! real wire format; its request recorder proves which IAM calls were made), against the
//! sandbox (whose STS then really exchanges the service account's token and whose ECR answers,
//! so the set-up is proven effective), and its Terraform output parsed by python-hcl2.

mod common;
mod support_cloud;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::{Run, TempDir};
use irsa_core::docker_config::DockerConfig;
use irsa_test_peers::Moto;
use serde_json::{Value, json};
use support_cloud::{ACCOUNT, ISSUER, SandboxCloud};

/// moto's default account.
const MOTO_ACCOUNT: &str = "123456789012";
const MOTO_ISSUER: &str = "https://oidc.example.com/id/IRSATEST";
const MOTO_PROVIDER: &str = "oidc.example.com/id/IRSATEST";
const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app";

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_irsa"))
}

/// `irsa ARGS` with exactly `env` (and PATH, and HOME in `home` so that no profile on this
/// machine is read; instance metadata off).
fn irsa_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("irsa runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// moto with its request recorder on: every request it receives is appended to a file.
struct MotoIam {
    moto: Moto,
    dir: TempDir,
    recording: PathBuf,
}

impl MotoIam {
    fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let recording = dir.0.join("recording.jsonl");
        let moto = Moto::start(&[
            ("MOTO_ENABLE_RECORDING", "True"),
            (
                "MOTO_RECORDER_FILEPATH",
                recording.to_str().expect("utf-8 path"),
            ),
        ]);
        let iam = Self {
            moto,
            dir,
            recording,
        };
        iam.take_iam_actions();
        iam
    }

    fn irsa(&self, args: &[&str]) -> Run {
        irsa_env(
            &self.dir.0,
            args,
            &[
                ("AWS_ENDPOINT_URL", &self.moto.url),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
            ],
        )
    }

    /// The IAM actions moto received since the last call, in order; the recording is cleared.
    fn take_iam_actions(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        std::fs::write(&self.recording, "").expect("clear the recording");
        let mut actions = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).expect("a recorded request is JSON");
            let signed_for_iam = entry["headers"]
                .as_object()
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                })
                .and_then(|(_, v)| v.as_str())
                .is_some_and(|v| v.contains("/iam/aws4_request"));
            if !signed_for_iam {
                continue;
            }
            let body = entry["body"].as_str().unwrap_or_default();
            let body = if entry["body_encoded"] == json!(true) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .expect("base64 body");
                String::from_utf8(bytes).expect("utf-8 body")
            } else {
                body.to_owned()
            };
            let action = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or_else(|| panic!("an IAM request without Action: {body}"));
            actions.push(action.to_owned());
        }
        actions
    }

    /// What moto holds, read with boto3: the provider's client ids, the role's trust policy
    /// and its inline policy (null where missing).
    fn state(&self, role: &str, policy: &str) -> Value {
        let out = self.moto.python(&format!(
            r#"
iam = client('iam')
out = {{"providers": [], "clientIds": None, "trust": None, "policy": None}}
for p in iam.list_open_id_connect_providers()['OpenIDConnectProviderList']:
    out["providers"].append(p['Arn'])
    out["clientIds"] = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=p['Arn'])['ClientIDList']
try:
    out["trust"] = iam.get_role(RoleName='{role}')['Role']['AssumeRolePolicyDocument']
    out["policy"] = iam.get_role_policy(RoleName='{role}', PolicyName='{policy}')['PolicyDocument']
except iam.exceptions.NoSuchEntityException:
    pass
print(json.dumps(out))
"#
        ));
        let state = serde_json::from_str(out.trim()).expect("state JSON");
        // boto3's own calls are recorded too: they are not irsa's.
        self.take_iam_actions();
        state
    }
}

fn is_write(action: &str) -> bool {
    !(action.starts_with("Get") || action.starts_with("List"))
}

fn writes(actions: &[String]) -> Vec<&str> {
    actions
        .iter()
        .map(String::as_str)
        .filter(|a| is_write(a))
        .collect()
}

fn setup_args<'a>(sa: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "iam",
        "setup",
        "--issuer",
        MOTO_ISSUER,
        "--service-account",
        sa,
        "--repository",
        REPO,
    ];
    args.extend_from_slice(extra);
    args
}

/// What `irsa policy trust` prints for `sa` in moto's account.
fn expected_trust(sa: &str) -> Value {
    let run = common::irsa(&[
        "policy",
        "trust",
        "--issuer",
        MOTO_ISSUER,
        "--service-account",
        sa,
        "--account",
        MOTO_ACCOUNT,
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

/// What `irsa policy ecr-pull` prints for the repositories.
fn expected_pull(repositories: &[&str], list_tags: bool) -> Value {
    let mut args = vec!["policy", "ecr-pull", "-o", "json"];
    for r in repositories {
        args.extend(["--repository", r]);
    }
    if list_tags {
        args.push("--list-tags");
    }
    let run = common::irsa(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

fn line_with<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stdout}"))
}

#[test]
fn moto_setup_creates_all_three_and_a_second_run_makes_no_iam_write() {
    let iam = MotoIam::start("iam-moto-twice");
    let run = iam.irsa(&setup_args("prod/app", &[]));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let provider_arn = format!("arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/{MOTO_PROVIDER}");
    let role_arn = format!("arn:aws:iam::{MOTO_ACCOUNT}:role/irsa-prod-app");
    assert!(line_with(&run.stdout, &format!("OIDC provider {provider_arn}:")).contains("created"));
    assert!(line_with(&run.stdout, &format!("role {role_arn}:")).contains("created"));
    assert!(
        line_with(&run.stdout, "inline policy irsa-prod-app/irsa-ecr-pull:").contains("created")
    );
    assert!(run.stdout.contains(&format!(
        "kubectl annotate serviceaccount --overwrite -n prod app eks.amazonaws.com/role-arn={role_arn}"
    )));
    let first = iam.take_iam_actions();
    assert_eq!(
        writes(&first),
        ["CreateOpenIDConnectProvider", "CreateRole", "PutRolePolicy"],
        "{first:?}"
    );

    let state = iam.state("irsa-prod-app", "irsa-ecr-pull");
    assert_eq!(state["providers"], json!([provider_arn]));
    assert_eq!(state["clientIds"], json!(["sts.amazonaws.com"]));
    assert_eq!(state["trust"], expected_trust("prod/app"));
    assert_eq!(state["policy"], expected_pull(&[REPO], false));

    let again = iam.irsa(&setup_args("prod/app", &[]));
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    for needle in ["OIDC provider ", "role ", "inline policy "] {
        assert!(
            line_with(&again.stdout, needle).contains(": unchanged"),
            "{}",
            again.stdout
        );
    }
    assert!(
        again.stdout.contains("no IAM write was made"),
        "{}",
        again.stdout
    );
    let second = iam.take_iam_actions();
    assert!(
        second.iter().any(|a| a == "GetRole") && second.iter().any(|a| a == "GetRolePolicy"),
        "the recorder saw the reads: {second:?}"
    );
    assert_eq!(writes(&second), Vec::<&str>::new(), "{second:?}");
    assert_eq!(iam.state("irsa-prod-app", "irsa-ecr-pull"), state);
}

/// Review M2: with nothing in the account yet, no ARN names the account; the caller's account
/// (sts:GetCallerIdentity) is checked against `--account` before the first write.
#[test]
fn moto_a_wrong_account_is_refused_before_any_iam_write() {
    let iam = MotoIam::start("iam-moto-account");
    let run = iam.irsa(&setup_args("prod/app", &["--account", "111122223333"]));
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "--account 111122223333 but the AWS credentials reach account {MOTO_ACCOUNT}"
        )),
        "{}",
        run.stderr
    );
    let actions = iam.take_iam_actions();
    assert_eq!(writes(&actions), Vec::<&str>::new(), "{actions:?}");
    assert_eq!(
        iam.state("irsa-prod-app", "irsa-ecr-pull")["providers"],
        json!([])
    );

    let dry = iam.irsa(&setup_args(
        "prod/app",
        &["--account", "111122223333", "--dry-run"],
    ));
    assert_eq!(dry.code, 2, "{}\n{}", dry.stdout, dry.stderr);

    let right = iam.irsa(&setup_args("prod/app", &["--account", MOTO_ACCOUNT]));
    assert_eq!(right.code, 0, "{}\n{}", right.stdout, right.stderr);
}

#[test]
fn moto_a_changed_namespace_updates_only_the_trust_policy() {
    let iam = MotoIam::start("iam-moto-namespace");
    let role = ["--role-name", "shared-puller"];
    let run = iam.irsa(&setup_args("prod/app", &role));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    iam.take_iam_actions();
    let before = iam.state("shared-puller", "irsa-ecr-pull");

    let run = iam.irsa(&setup_args("staging/app", &role));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(line_with(&run.stdout, "OIDC provider ").contains(": unchanged"));
    assert!(line_with(&run.stdout, "role ").contains(": updated"));
    assert!(line_with(&run.stdout, "inline policy ").contains(": unchanged"));
    let actions = iam.take_iam_actions();
    assert_eq!(writes(&actions), ["UpdateAssumeRolePolicy"], "{actions:?}");

    let after = iam.state("shared-puller", "irsa-ecr-pull");
    assert_eq!(after["trust"], expected_trust("staging/app"));
    assert_eq!(after["policy"], before["policy"]);
    assert_eq!(after["clientIds"], before["clientIds"]);

    // (Adding an audience to the provider is tested against the sandbox: moto 5.2.5 does
    // not implement AddClientIDToOpenIDConnectProvider and answers HTTP 500.)
}

#[test]
fn moto_dry_run_prints_the_plan_and_commands_and_writes_nothing() {
    let iam = MotoIam::start("iam-moto-dry-run");
    let run = iam.irsa(&setup_args("prod/app", &["--dry-run"]));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Plan (dry run: nothing is written):"));
    for needle in ["OIDC provider ", "role ", "inline policy "] {
        assert!(
            line_with(&run.stdout, needle).contains(": create ("),
            "{}",
            run.stdout
        );
    }
    let create_provider = format!(
        "aws iam create-open-id-connect-provider --url {MOTO_ISSUER} --client-id-list sts.amazonaws.com"
    );
    assert!(run.stdout.contains(&create_provider), "{}", run.stdout);
    assert!(run.stdout.contains(
        "aws iam create-role --role-name irsa-prod-app --tags Key=irsa.dev/managed-by,Value=irsa-iam-setup Key=irsa.dev/service-account,Value=prod/app --assume-role-policy-document '{"
    ));
    assert!(run.stdout.contains("aws iam put-role-policy --role-name irsa-prod-app --policy-name irsa-ecr-pull --policy-document '{"));
    let actions = iam.take_iam_actions();
    assert!(
        actions.iter().any(|a| a == "ListOpenIDConnectProviders"),
        "{actions:?}"
    );
    assert_eq!(writes(&actions), Vec::<&str>::new(), "{actions:?}");
    let state = iam.state("irsa-prod-app", "irsa-ecr-pull");
    assert_eq!(state["providers"], json!([]));
    assert_eq!(state["trust"], Value::Null);

    // The printed create-role document is the trust policy, with the caller's account
    // (sts:GetCallerIdentity) filled in even though nothing exists yet.
    let create_role = line_with(&run.stdout, "aws iam create-role");
    let document = create_role
        .split_once("--assume-role-policy-document '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("a quoted document");
    let mut expected = expected_trust("prod/app");
    expected["Statement"][0]["Principal"]["Federated"] = json!(format!(
        "arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/{MOTO_PROVIDER}"
    ));
    assert_eq!(serde_json::from_str::<Value>(document).unwrap(), expected);

    // After a real setup the dry run finds everything in place.
    assert_eq!(iam.irsa(&setup_args("prod/app", &[])).code, 0);
    iam.take_iam_actions();
    let run = iam.irsa(&setup_args("prod/app", &["--dry-run", "-o", "json"]));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let plan = run.json();
    assert_eq!(plan["dryRun"], json!(true));
    assert_eq!(plan["account"], json!(MOTO_ACCOUNT));
    assert_eq!(plan["writes"], json!(0));
    assert_eq!(plan["commands"], json!([]));
    let changes: Vec<&Value> = plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["change"])
        .collect();
    assert_eq!(changes, [&json!("unchanged"); 3]);
    assert_eq!(writes(&iam.take_iam_actions()), Vec::<&str>::new());

    // A changed repository list: the dry run names the one update and its command.
    let other = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/other";
    let run = iam.irsa(&[
        "iam",
        "setup",
        "--dry-run",
        "--issuer",
        MOTO_ISSUER,
        "--service-account",
        "prod/app",
        "--repository",
        REPO,
        "--repository",
        other,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(line_with(&run.stdout, "inline policy ").contains(": update ("));
    assert_eq!(
        run.stdout.matches("aws iam ").count(),
        1,
        "only put-role-policy: {}",
        run.stdout
    );
    assert_eq!(writes(&iam.take_iam_actions()), Vec::<&str>::new());
}

#[test]
fn dry_run_without_credentials_plans_from_nothing() {
    let dir = TempDir::new("iam-no-creds");
    let run = irsa_env(
        &dir.0,
        &setup_args("prod/app", &["--dry-run"]),
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        line_with(&run.stdout, "note:").contains("no AWS credentials"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches(": create (").count(),
        3,
        "{}",
        run.stdout
    );
    // Without --dry-run the same is an error naming the missing credentials.
    let run = irsa_env(
        &dir.0,
        &setup_args("prod/app", &[]),
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("no AWS credentials to call IAM"),
        "{}",
        run.stderr
    );
}

#[test]
fn moto_access_denied_names_the_action_and_the_permission() {
    let iam = MotoIam::start("iam-moto-denied");
    // A user who may only read: setup's first write is refused.
    let keys = iam.moto.python(
        r#"
iam = client('iam')
iam.create_user(UserName='reader')
iam.put_user_policy(UserName='reader', PolicyName='read', PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}]}))
k = iam.create_access_key(UserName='reader')['AccessKey']
print(k['AccessKeyId'], k['SecretAccessKey'])
"#,
    );
    let (id, secret) = keys.trim().split_once(' ').expect("two keys");
    iam.moto.enable_access_control(0);
    let run = irsa_env(
        &iam.dir.0,
        &setup_args("prod/app", &[]),
        &[
            ("AWS_ENDPOINT_URL", &iam.moto.url),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("iam:CreateOpenIDConnectProvider")
            && run.stderr.contains("need a permissions policy that allows"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(secret),
        "the secret key is never printed"
    );
}

#[test]
fn terraform_output_parses_with_a_real_hcl_parser_and_holds_the_same_documents() {
    let dir = TempDir::new("iam-terraform");
    let repos = [
        REPO,
        "arn:aws:ecr:us-east-1:123456789012:repository/charts/*",
    ];
    let run = irsa_env(
        &dir.0,
        &[
            "iam",
            "setup",
            "--output",
            "terraform",
            "--issuer",
            MOTO_ISSUER,
            "--service-account",
            "ci/runner-*",
            "--role-name",
            "ci-runners",
            "--repository",
            repos[0],
            "--repository",
            repos[1],
            "--list-tags",
        ],
        // An unreachable endpoint and no credentials: Terraform output calls nothing.
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = dir.write("irsa.tf", &run.stdout);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/hcl_to_json.py");
    let out = Command::new(irsa_test_peers::venv().join("bin/python"))
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run python-hcl2");
    assert!(
        out.status.success(),
        "python-hcl2 (tests/requirements-aws.txt) refused the output: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.stdout
    );
    let tf: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let provider_label = "oidc_example_com_id_IRSATEST";
    let providers = tf["resource"]["aws_iam_openid_connect_provider"]
        .as_object()
        .unwrap();
    assert_eq!(providers.len(), 1);
    let provider = &providers[provider_label];
    assert_eq!(provider["url"], json!(MOTO_ISSUER));
    assert_eq!(provider["client_id_list"], json!(["sts.amazonaws.com"]));

    let role = &tf["resource"]["aws_iam_role"]["ci_runners"];
    assert_eq!(role["name"], json!("ci-runners"));
    let mut trust = expected_trust("ci/runner-*");
    trust["Statement"][0]["Principal"]["Federated"] = json!(format!(
        "${{aws_iam_openid_connect_provider.{provider_label}.arn}}"
    ));
    assert_eq!(role["assume_role_policy"]["jsonencode"], trust);
    assert!(trust["Statement"][0]["Condition"]["StringLike"].is_object());

    let policies = tf["resource"]["aws_iam_role_policy"].as_object().unwrap();
    assert_eq!(policies.len(), 1);
    let policy = policies.values().next().unwrap();
    assert_eq!(policy["name"], json!("irsa-ecr-pull"));
    assert_eq!(policy["role"], json!("${aws_iam_role.ci_runners.name}"));
    assert_eq!(policy["policy"]["jsonencode"], expected_pull(&repos, true));
    assert_eq!(
        tf["output"]["ci_runners_role_arn"]["value"],
        json!("${aws_iam_role.ci_runners.arn}")
    );
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    for (args, needle) in [
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                "http://oidc.example.com",
                "--service-account",
                "a/b",
                "--repository",
                REPO,
            ],
            "https",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                MOTO_ISSUER,
                "--service-account",
                "nonamespace",
                "--repository",
                REPO,
            ],
            "NAMESPACE/NAME",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                MOTO_ISSUER,
                "--service-account",
                "a/b",
                "--repository",
                "docker.io/library/nginx",
            ],
            "not an ECR repository",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                MOTO_ISSUER,
                "--service-account",
                "a/b",
                "--repository",
                "arn:aws:ecr:us-east-1:1:repository/x",
            ],
            "--repository",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                MOTO_ISSUER,
                "--service-account",
                "a/b*",
                "--repository",
                REPO,
            ],
            "--role-name",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                MOTO_ISSUER,
                "--service-account",
                "a/b",
                "--repository",
                REPO,
                "--account",
                "12345",
            ],
            "--account",
        ),
        (
            vec![
                "iam",
                "setup",
                "--issuer",
                "https://oidc.eks.us-gov-west-1.amazonaws.com/id/X",
                "--service-account",
                "a/b",
                "--repository",
                REPO,
            ],
            "partition",
        ),
        (
            vec![
                "iam",
                "chainguard",
                "--role-arn",
                "arn:aws:sts::111122223333:assumed-role/app/s",
            ],
            "--role-arn",
        ),
        (
            vec![
                "iam",
                "chainguard",
                "--role-arn",
                "arn:aws:iam::111122223333:role/app",
                "--outbound-issuer",
                "https://evil.example.com",
            ],
            "--outbound-issuer",
        ),
        (
            vec![
                "iam",
                "chainguard",
                "--role-arn",
                "arn:aws:iam::111122223333:role/app",
                "--role-id",
                "AIDAEXAMPLEEXAMPLE",
            ],
            "--role-id",
        ),
    ] {
        let run = common::irsa(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn chainguard_prints_both_methods_with_their_chainctl_commands() {
    let issuer = "https://0123abcd-4567-89ef-0123-456789abcdef.tokens.sts.global.api.aws";
    let group = "720909c9f5279097d847ad02a2f24ba8f59de36a";
    let run = common::irsa(&[
        "iam",
        "chainguard",
        "--role-arn",
        "arn:aws:iam::111122223333:role/team/puller",
        "--parent",
        group,
        "--role-id",
        "AROAEXAMPLEC2UL7LUB",
        "--outbound-issuer",
        issuer,
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json();
    let legacy = &out["getCallerIdentity"];
    assert_eq!(legacy["method"], json!("get-caller-identity"));
    assert_eq!(
        legacy["command"],
        json!(format!(
            "chainctl iam identities create aws role puller --aws-account-id=111122223333 --aws-role-name=puller --aws-role-id=AROAEXAMPLEC2UL7LUB --parent={group} --role=registry.pull"
        ))
    );
    let aws_identity = &legacy["identity"]["awsIdentity"];
    assert_eq!(aws_identity["aws_account"], json!("111122223333"));
    // The pattern matches the role's sessions, and nothing else.
    let pattern = aws_identity["arnPattern"].as_str().unwrap();
    assert_eq!(
        pattern,
        r"^arn:aws:sts::111122223333:assumed-role/puller/.+$"
    );
    assert_eq!(
        aws_identity["userIdPattern"],
        json!("^AROAEXAMPLEC2UL7LUB:.+$")
    );

    let outbound = &out["webIdentityToken"];
    assert_eq!(outbound["method"], json!("web-identity-token"));
    assert_eq!(outbound["issuer"], json!(issuer));
    assert_eq!(
        outbound["subject"],
        json!("arn:aws:iam::111122223333:role/team/puller")
    );
    assert_eq!(
        outbound["command"],
        json!(format!(
            "chainctl iam identities create puller --identity-issuer={issuer} --subject=arn:aws:iam::111122223333:role/team/puller --parent={group} --role=registry.pull"
        ))
    );
    let statement = &outbound["permissionsPolicy"]["Statement"][0];
    assert_eq!(statement["Action"], json!("sts:GetWebIdentityToken"));
    assert_eq!(
        statement["Condition"]["ForAnyValue:StringEquals"]["sts:IdentityTokenAudience"],
        json!("https://issuer.enforce.dev")
    );
    assert_eq!(
        statement["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"],
        json!(300)
    );
    // The permission is a valid policy for put-role-policy, printed as such.
    let steps: Vec<&str> = outbound["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(steps[0].starts_with("aws iam put-role-policy --role-name puller --policy-name irsa-chainguard-web-identity-token --policy-document '{"));

    // Text, without the optional facts: placeholders and how to find them.
    let run = common::irsa(&[
        "iam",
        "chainguard",
        "--role-arn",
        "arn:aws-us-gov:iam::111122223333:role/app",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("--aws-partition=aws-us-gov"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("--identity-issuer='https://<id>.tokens.sts.global.api.aws'"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("aws iam get-outbound-web-identity-federation-info")
    );
    assert!(run.stdout.contains("--role-id"));
}

#[test]
fn sandbox_setup_makes_the_web_identity_exchange_and_the_ecr_login_work() {
    // The sandbox's account starts without an OIDC provider or a role for team/app.
    let cloud = SandboxCloud::start_with(irsa_sandbox::cloud::CloudConfig {
        oidc_providers: Vec::new(),
        ..SandboxCloud::default_config()
    });
    let dir = TempDir::new("iam-sandbox");
    let token_file = PathBuf::from(dir.write("token", &cloud.token_for("team", "app")));
    let cache = dir.0.join("cache");
    let registry = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com");
    let login = || {
        cloud.irsa(
            &binary(),
            "irsa-team-app",
            &token_file,
            &cache,
            &["login", "--no-cache", &registry],
            "",
        )
    };
    let before = login();
    assert_eq!(before.code, 1, "no role yet: {}", before.stderr);

    let admin = [
        ("AWS_ENDPOINT_URL", cloud.url.as_str()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    ];
    let args = [
        "iam",
        "setup",
        "--issuer",
        ISSUER,
        "--service-account",
        "team/app",
        "--repository",
        &format!("{registry}/team/app"),
    ];
    let run = irsa_env(&dir.0, &args, &admin);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.matches(": created (").count(),
        3,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("arn:aws:iam::{ACCOUNT}:role/irsa-team-app"))
    );

    let after = login();
    assert_eq!(after.code, 0, "{}", after.stderr);
    let config = DockerConfig::parse(after.stdout.trim().as_bytes()).expect("a dockerconfigjson");
    assert_eq!(config.auths[&registry].username, "AWS");
    assert_eq!(cloud.calls("sts", "AssumeRoleWithWebIdentity"), 2);

    // Another service account's token is refused by the trust policy setup wrote.
    let other = dir.write("other-token", &cloud.token_for("team", "other"));
    let refused = cloud.irsa(
        &binary(),
        "irsa-team-app",
        Path::new(&other),
        &cache,
        &["login", "--no-cache", &registry],
        "",
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("system:serviceaccount:team:other"),
        "{}",
        refused.stderr
    );

    let write_actions = [
        "CreateOpenIDConnectProvider",
        "AddClientIDToOpenIDConnectProvider",
        "CreateRole",
        "UpdateAssumeRolePolicy",
        "PutRolePolicy",
    ];
    let count = |actions: &[&str]| -> u64 { actions.iter().map(|a| cloud.calls("iam", a)).sum() };
    assert_eq!(count(&write_actions), 3);
    let reads = cloud.calls("iam", "GetRole");
    let again = irsa_env(&dir.0, &args, &admin);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("no IAM write was made"),
        "{}",
        again.stdout
    );
    assert_eq!(count(&write_actions), 3, "the second run wrote nothing");
    assert_eq!(cloud.calls("iam", "GetRole"), reads + 1, "it did read");

    // Another audience: added to the provider's client ids (the first is kept), and the trust
    // policy now asks for it, so the sts.amazonaws.com token no longer works.
    let mut other_audience = args.to_vec();
    other_audience.extend(["--audience", "irsa.example"]);
    let run = irsa_env(&dir.0, &other_audience, &admin);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        line_with(&run.stdout, "OIDC provider ").contains(": updated ("),
        "{}",
        run.stdout
    );
    assert!(
        line_with(&run.stdout, "role ").contains(": updated ("),
        "{}",
        run.stdout
    );
    assert!(
        line_with(&run.stdout, "inline policy ").contains(": unchanged ("),
        "{}",
        run.stdout
    );
    assert_eq!(cloud.calls("iam", "AddClientIDToOpenIDConnectProvider"), 1);
    assert_eq!(cloud.calls("iam", "UpdateAssumeRolePolicy"), 1);
    let run = irsa_env(
        &dir.0,
        &[&other_audience[..], &["--dry-run", "-o", "json"]].concat(),
        &admin,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["writes"], json!(0), "{}", run.stdout);
    let denied = login();
    assert_eq!(denied.code, 1, "{}", denied.stderr);
}
