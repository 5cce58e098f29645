//! `irsa doctor --fix` against `irsa sandbox` as a process (and moto for the IAM wire format):
//! each test breaks one link, lets `--fix --yes` mend it, and asserts that every check then
//! passes, that a real pull works (STS, ECR's GetAuthorizationToken, the registry token
//! service's pull grant), that a second run changes nothing, and that without a terminal and
//! without --yes nothing changes. Roles are made by `irsa iam setup` (tagged as irsa's, for
//! ci/builder), then broken through the IAM Query API with boto3.

mod common;
mod support_doctor;

use std::io::{Read as _, Write as _};
use std::path::Path;

use base64::Engine as _;
use irsa_core::docker_config::DockerConfig;
use serde_json::{Value, json};
use support_doctor::*;

const REPOSITORY: &str = "arn:aws:ecr:us-east-1:111122223333:repository/*";

fn irsa(sandbox: &Sandbox, args: &[&str], extra: &[(&str, &str)]) -> common::Run {
    let out = sandbox
        .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(args)
        .envs(extra.iter().copied())
        .output()
        .expect("irsa runs");
    common::Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

/// `irsa iam setup` for ci/builder as role `puller`: the role is irsa's (tagged).
fn setup_role(sandbox: &Sandbox, extra: &[&str]) {
    let mut args = vec![
        "iam",
        "setup",
        "--issuer",
        ISSUER,
        "--service-account",
        "ci/builder",
        "--role-name",
        "puller",
        "--repository",
        REPOSITORY,
    ];
    args.extend(extra);
    let run = irsa(sandbox, &args, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

fn sandbox_with_setup(name: &str) -> Sandbox {
    let sandbox = start(name, vec![]);
    setup_role(&sandbox, &[]);
    let report = sandbox.doctor(&["-o", "json"]).json();
    assert_eq!(report["ok"], true, "set up, the chain holds: {report:#}");
    // setup tagged the role as irsa's, for ci/builder (what lets --yes mend it).
    assert_eq!(
        iam_state(&sandbox)["tags"],
        json!([
            {"Key": "irsa.dev/managed-by", "Value": "irsa-iam-setup"},
            {"Key": "irsa.dev/service-account", "Value": "ci/builder"}
        ])
    );
    sandbox
}

/// The role's trust policy, inline policy irsa-ecr-pull and the provider's client IDs, as
/// boto3 reads them.
fn iam_state(sandbox: &Sandbox) -> Value {
    let out = sandbox.boto3(&format!(
        "import json, urllib.parse\n\
         role = iam.get_role(RoleName='puller')['Role']\n\
         doc = role['AssumeRolePolicyDocument']\n\
         doc = json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc\n\
         try:\n    pull = iam.get_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull')['PolicyDocument']\n\
         except iam.exceptions.NoSuchEntityException:\n    pull = None\n\
         try:\n    ids = iam.get_open_id_connect_provider(OpenIDConnectProviderArn='{}')['ClientIDList']\n\
         except iam.exceptions.NoSuchEntityException:\n    ids = None\n\
         print(json.dumps({{'trust': doc, 'pull': pull, 'clientIds': ids, 'tags': role.get('Tags', [])}}))\n",
        provider_arn()
    ));
    serde_json::from_str(out.trim()).expect("json")
}

/// The pull a workload makes once the chain holds: `irsa login` (STS with the service
/// account's token, then ecr:GetAuthorizationToken) and the registry token service's grant of
/// `pull` on a repository for that password (it decides with the role's permissions).
fn real_pull(sandbox: &Sandbox) {
    real_pull_with(sandbox, "sts.amazonaws.com");
}

/// [`real_pull`] with a token for `audience`.
fn real_pull_with(sandbox: &Sandbox, audience: &str) {
    let token = sandbox.kubectl(&["create", "token", SA, "-n", NS, "--audience", audience]);
    let token_file = sandbox.dir.write("pull-token", token.trim());
    let registry = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com");
    let cache = sandbox.dir.0.join("cache");
    let login = irsa(
        sandbox,
        &["login", "--no-cache", &registry],
        &[
            ("AWS_ROLE_ARN", &role_arn("puller")),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
            ("XDG_CACHE_HOME", cache.to_str().unwrap()),
        ],
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let config = DockerConfig::parse(login.stdout.trim().as_bytes()).expect("a dockerconfigjson");
    let auth = config.get(&registry).expect("an entry for the registry");
    let (code, body) = registry_token(sandbox, "team/app", &auth.username, auth.password.expose());
    assert_eq!(
        code, 200,
        "the registry token service grants the pull: {body}"
    );
    let token = body["token"]
        .as_str()
        .or(body["access_token"].as_str())
        .expect("a token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]), "{claims}");
}

/// What a registry client asks the token service after the registry's 401 challenge.
fn registry_token(sandbox: &Sandbox, repository: &str, user: &str, password: &str) -> (u16, Value) {
    let authority = sandbox
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "GET /registry/token?service=irsa-sandbox-registry&scope=repository:{repository}:pull \
         HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(&authority).expect("connect");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// `doctor --fix --yes` mends `broken` with changes of `kinds`, ends with every check ✓ and
/// a real pull; a second run changes nothing.
fn fix_mends(sandbox: &Sandbox, broken: &str, kinds: &[&str], extra: &[&str]) -> Value {
    let before = sandbox.expect_broken(broken);
    let change = &check(&before, broken)["fix"]["change"];
    assert_eq!(
        change["kind"], kinds[0],
        "the check carries its change as data: {before:#}"
    );
    let mut args = vec!["--fix", "--yes", "-o", "json"];
    args.extend(extra);
    let run = sandbox.doctor(&args);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    let changes = report["fix"]["rounds"][0]["changes"]
        .as_array()
        .expect("changes");
    let made: Vec<&str> = changes
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(made, kinds, "{report:#}");
    for c in changes {
        assert_eq!(c["status"], "applied", "{c:#}");
        assert!(
            c["diff"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().starts_with('+')),
            "each change is shown as a diff: {c:#}"
        );
    }
    assert_eq!(report["fix"]["applied"], json!(kinds.len()), "{report:#}");
    real_pull(sandbox);

    let again = sandbox.doctor(&args);
    let second = again.json();
    assert_eq!(again.code, 0, "{second:#}");
    assert_eq!(
        second["fix"]["applied"], 0,
        "a second run changes nothing: {second:#}"
    );
    assert_eq!(second["fix"]["rounds"], json!([]), "{second:#}");
    report
}

#[test]
fn a_missing_annotation_is_set_from_role_arn() {
    let sandbox = Sandbox::start("fix-annotation", vec![], &[]);
    setup_role(&sandbox, &[]);
    // Without --role-arn there is nothing to annotate with: no change, and the check says
    // how to give one.
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    assert_eq!(report["fix"]["rounds"], json!([]), "{report:#}");
    assert!(
        check(&report, "role-annotation")["details"]
            .to_string()
            .contains("--role-arn"),
        "{report:#}"
    );
    let role = role_arn("puller");
    let before = sandbox
        .doctor(&["--fix", "--role-arn", &role, "-o", "json"])
        .json();
    assert_eq!(
        check(&before, "role-annotation")["fix"]["change"]["value"],
        json!(role),
        "{before:#}"
    );
    let report = fix_mends_with(
        &sandbox,
        "role-annotation",
        &["annotate"],
        &["--role-arn", &role],
    );
    assert_eq!(report["first_failure"], Value::Null);
    let annotations = sandbox.kubectl(&[
        "get",
        "serviceaccount",
        SA,
        "-n",
        NS,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(annotations.contains(&role), "{annotations}");
}

/// [`fix_mends`] for a broken link that the first plain run already shows (the annotation
/// scenario's change needs --role-arn, so its first check runs without one).
fn fix_mends_with(sandbox: &Sandbox, broken: &str, kinds: &[&str], extra: &[&str]) -> Value {
    let mut args = vec!["--fix", "--yes", "-o", "json"];
    args.extend(extra);
    let run = sandbox.doctor(&args);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}\n{}", run.stderr);
    assert_eq!(
        report["fix"]["rounds"][0]["first_failure"], broken,
        "{report:#}"
    );
    let made: Vec<&str> = report["fix"]["rounds"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(made, kinds, "{report:#}");
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    real_pull(sandbox);
    let again = sandbox.doctor(&args).json();
    assert_eq!(again["fix"]["applied"], 0, "{again:#}");
    report
}

#[test]
fn a_missing_oidc_provider_is_created() {
    let sandbox = sandbox_with_setup("fix-provider");
    sandbox.boto3(&format!(
        "iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n",
        provider_arn()
    ));
    fix_mends(&sandbox, "oidc-provider", &["create-oidc-provider"], &[]);
    assert_eq!(
        iam_state(&sandbox)["clientIds"],
        json!(["sts.amazonaws.com"])
    );
}

#[test]
fn an_audience_missing_from_the_client_ids_is_added() {
    let sandbox = Sandbox::start(
        "fix-audience",
        vec![],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            ("eks.amazonaws.com/audience", "api://irsa"),
        ],
    );
    setup_role(&sandbox, &["--audience", "api://irsa"]);
    // The provider again, with only sts.amazonaws.com.
    sandbox.boto3(&format!(
        "iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n\
         iam.create_open_id_connect_provider(Url='{ISSUER}', ClientIDList=['sts.amazonaws.com'], ThumbprintList=[])\n",
        provider_arn()
    ));
    let before = sandbox.expect_broken("oidc-audience");
    assert_eq!(
        check(&before, "oidc-audience")["fix"]["change"]["clientId"],
        "api://irsa"
    );
    // The audience is the service account's annotation, a tenant's: `--yes` alone does not
    // take it into the account's provider (review M3), the role's name confirmed does.
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(change["kind"], "add-client-id", "{report:#}");
    assert_eq!(change["status"], "needs-confirmation", "{report:#}");
    assert!(
        change["message"]
            .as_str()
            .unwrap()
            .contains("--confirm-role puller"),
        "{change:#}"
    );
    assert_eq!(
        iam_state(&sandbox)["clientIds"],
        json!(["sts.amazonaws.com"])
    );
    let run = sandbox.doctor(&["--fix", "--yes", "--confirm-role", "puller", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}");
    assert_eq!(
        report["fix"]["rounds"][0]["changes"][0]["kind"], "add-client-id",
        "{report:#}"
    );
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    assert_eq!(
        iam_state(&sandbox)["clientIds"],
        json!(["sts.amazonaws.com", "api://irsa"])
    );
    real_pull_with(&sandbox, "api://irsa");
    let again = sandbox.doctor(&["--fix", "--yes", "-o", "json"]).json();
    assert_eq!(again["fix"]["applied"], 0, "{again:#}");
}

fn break_trust(sandbox: &Sandbox, trust: &Value) {
    sandbox.boto3(&format!(
        "iam.update_assume_role_policy(RoleName='puller', PolicyDocument={:?})\n",
        trust.to_string()
    ));
}

/// `irsa policy trust`'s document for ci/builder.
fn policy_trust() -> Value {
    common::irsa(&[
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--service-account",
        "ci/builder",
        "--account",
        ACCOUNT,
        "-o",
        "json",
    ])
    .json()
}

#[test]
fn a_trust_policy_for_another_namespace_is_put_back() {
    let sandbox = sandbox_with_setup("fix-trust-ns");
    break_trust(
        &sandbox,
        &trust_for("system:serviceaccount:prod:builder", "sts.amazonaws.com"),
    );
    fix_mends(&sandbox, "trust-policy", &["put-trust-policy"], &[]);
    assert_eq!(iam_state(&sandbox)["trust"], policy_trust());
}

#[test]
fn a_trust_policy_for_another_service_account_is_put_back() {
    let sandbox = sandbox_with_setup("fix-trust-sa");
    break_trust(
        &sandbox,
        &trust_for("system:serviceaccount:ci:runner", "sts.amazonaws.com"),
    );
    fix_mends(&sandbox, "trust-policy", &["put-trust-policy"], &[]);
    assert_eq!(iam_state(&sandbox)["trust"], policy_trust());
}

#[test]
fn string_equals_with_a_wildcard_is_put_back() {
    let sandbox = sandbox_with_setup("fix-trust-like");
    break_trust(
        &sandbox,
        &trust_for("system:serviceaccount:ci:*", "sts.amazonaws.com"),
    );
    let report = fix_mends(&sandbox, "trust-policy", &["put-trust-policy"], &[]);
    let diff = report["fix"]["rounds"][0]["changes"][0]["diff"].to_string();
    assert!(
        diff.contains("- ") && diff.contains("system:serviceaccount:ci:*"),
        "{diff}"
    );
    assert_eq!(iam_state(&sandbox)["trust"], policy_trust());
}

#[test]
fn permissions_without_get_authorization_token_get_the_pull_policy() {
    let sandbox = sandbox_with_setup("fix-permissions");
    sandbox.boto3(
        "import json\niam.put_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'ecr:BatchGetImage', 'Resource': '*'}]}))\n",
    );
    let report = fix_mends(&sandbox, "permissions", &["put-role-policy"], &[]);
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(
        change["before"]["Statement"][0]["Action"], "ecr:BatchGetImage",
        "{change:#}"
    );
    let mut expected = common::irsa(&[
        "policy",
        "ecr-pull",
        "--repository",
        REPOSITORY,
        "-o",
        "json",
    ])
    .json();
    // What irsa-ecr-pull allowed is kept, ecr-pull's statements are added (review M4).
    expected["Statement"].as_array_mut().unwrap().insert(
        0,
        json!({"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}),
    );
    assert_eq!(iam_state(&sandbox)["pull"], expected);
}

#[test]
fn without_a_terminal_and_without_yes_nothing_changes() {
    let sandbox = sandbox_with_setup("fix-no-terminal");
    break_trust(
        &sandbox,
        &trust_for("system:serviceaccount:ci:runner", "sts.amazonaws.com"),
    );
    let state = iam_state(&sandbox);
    let run = sandbox.doctor(&["--fix", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    assert!(
        run.stderr
            .contains("no terminal to ask on and no --yes, so nothing was changed"),
        "{}",
        run.stderr
    );
    assert_eq!(report["fix"]["refused"], true);
    assert_eq!(
        report["fix"]["rounds"][0]["changes"][0]["status"], "not-asked",
        "{report:#}"
    );
    assert_eq!(iam_state(&sandbox), state, "nothing was written");
    // The text form prints the plan, as a diff.
    let text = sandbox.doctor(&["--fix"]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("+++ after the fix"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("not changed (no terminal to ask on, no --yes)"),
        "{}",
        text.stdout
    );
    assert_eq!(iam_state(&sandbox), state, "nothing was written");
}

#[test]
fn a_role_irsa_did_not_create_is_changed_only_once_its_name_is_confirmed() {
    // The role comes from the sandbox's configuration: no irsa.dev tags. It trusts ci/runner;
    // the service account's annotation (the tenant's) names it for ci/builder.
    let sandbox = start(
        "fix-foreign",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    let state = iam_state(&sandbox);
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(change["status"], "needs-confirmation", "{change:#}");
    assert!(
        change["message"]
            .as_str()
            .unwrap()
            .contains("--confirm-role puller"),
        "{change:#}"
    );
    assert_eq!(change["consent"], "role-name", "{change:#}");
    assert_eq!(iam_state(&sandbox), state, "--yes alone changed nothing");
    // Another name confirmed is not this one.
    let run = sandbox.doctor(&["--fix", "--yes", "--confirm-role", "other", "-o", "json"]);
    assert_eq!(run.code, 1);
    assert_eq!(iam_state(&sandbox), state);

    let run = sandbox.doctor(&["--fix", "--yes", "--confirm-role", "puller", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}");
    // The statement is added: ci/runner keeps the role.
    let trust = &iam_state(&sandbox)["trust"];
    let subjects: Vec<&Value> = trust["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["Condition"]["StringEquals"][format!("{PROVIDER}:sub")])
        .collect();
    assert_eq!(
        subjects,
        [
            &json!("system:serviceaccount:ci:runner"),
            &json!("system:serviceaccount:ci:builder")
        ],
        "{trust:#}"
    );
    real_pull(&sandbox);
}

/// The IAM fixes on moto's wire format (its STS accepts any token, so this proves the calls,
/// not the trust): a missing provider, a trust policy for another service account and no
/// permissions, then a provider without the audience.
#[test]
fn against_moto_the_iam_fixes_are_made_on_the_real_wire_format() {
    const MOTO_ACCOUNT: &str = "123456789012";
    let moto = irsa_test_peers::Moto::start(&[]);
    let role = format!("arn:aws:iam::{MOTO_ACCOUNT}:role/puller");
    let sandbox = Sandbox::start("fix-moto", vec![], &[("eks.amazonaws.com/role-arn", &role)]);
    let provider = format!("arn:aws:iam::{MOTO_ACCOUNT}:oidc-provider/{PROVIDER}");
    let mut trust = trust_for("system:serviceaccount:ci:runner", "sts.amazonaws.com");
    trust["Statement"][0]["Principal"]["Federated"] = json!(provider);
    moto.python(&format!(
        "client('iam').create_role(RoleName='puller', AssumeRolePolicyDocument={trust:?}, Tags=[{{'Key': 'irsa.dev/managed-by', 'Value': 'irsa-iam-setup'}}, {{'Key': 'irsa.dev/service-account', 'Value': 'ci/builder'}}])\n",
        trust = trust.to_string()
    ));
    let env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let doctor = |args: &[&str]| {
        let mut all = vec!["doctor", "--service-account", "ci/builder", "-o", "json"];
        all.extend(args);
        let run = irsa(&sandbox, &all, &env);
        (run.code, run.json())
    };
    let (code, report) = doctor(&["--fix", "--yes"]);
    assert_eq!(code, 0, "{report:#}");
    let made: Vec<&str> = report["fix"]["rounds"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        made,
        [
            "create-oidc-provider",
            "put-trust-policy",
            "put-role-policy"
        ],
        "{report:#}"
    );
    let state = moto.python(&format!(
        "import json\niam = client('iam')\n\
         p = iam.get_open_id_connect_provider(OpenIDConnectProviderArn='{provider}')\n\
         r = iam.get_role(RoleName='puller')['Role']\n\
         pol = iam.get_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull')['PolicyDocument']\n\
         print(json.dumps({{'ids': p['ClientIDList'], 'trust': r['AssumeRolePolicyDocument'], 'pull': pol}}))\n"
    ));
    let state: Value = serde_json::from_str(state.trim()).expect("json");
    assert_eq!(state["ids"], json!(["sts.amazonaws.com"]), "{state:#}");
    assert_eq!(
        state["trust"]["Statement"][0]["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
        "system:serviceaccount:ci:builder",
        "{state:#}"
    );
    assert_eq!(
        state["pull"]["Statement"][0]["Action"], "ecr:GetAuthorizationToken",
        "{state:#}"
    );
    let (code, again) = doctor(&["--fix", "--yes"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(again["fix"]["applied"], 0, "{again:#}");

    // The provider again, with another client ID only. moto (5.2) has no
    // AddClientIDToOpenIDConnectProvider (it answers HTTP 500, to boto3 too; the sandbox test
    // above makes that change): doctor reports the change as failed, names the call, and
    // exits 1 with the link still broken.
    moto.python(&format!(
        "iam = client('iam')\n\
         iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{provider}')\n\
         iam.create_open_id_connect_provider(Url='{ISSUER}', ClientIDList=['other'], ThumbprintList=[])\n"
    ));
    let (code, report) = doctor(&["--fix", "--yes"]);
    assert_eq!(code, 1, "{report:#}");
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(change["kind"], "add-client-id", "{change:#}");
    assert_eq!(change["clientId"], "sts.amazonaws.com", "{change:#}");
    assert_eq!(change["status"], "failed", "{change:#}");
    assert!(
        change["message"]
            .as_str()
            .unwrap()
            .contains("iam:AddClientIDToOpenIDConnectProvider"),
        "{change:#}"
    );
    assert_eq!(report["first_failure"], "oidc-audience", "{report:#}");
}

/// `script` runs doctor on a pseudo-terminal, as a person would: the diff, the question, and
/// the answer typed (n, then y) decide; for a role irsa did not create, only its name typed
/// does.
fn on_a_terminal(sandbox: &Sandbox, args: &str, typed: &str) -> common::Run {
    use std::process::Stdio;
    let command = format!(
        "{} doctor --service-account {NS}/{SA} {args}",
        env!("CARGO_BIN_EXE_irsa")
    );
    let mut child = sandbox
        .command(Path::new("script"))
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("script runs");
    common::Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn on_a_terminal_each_change_is_asked_for_and_a_foreign_roles_name_must_be_typed() {
    let sandbox = sandbox_with_setup("fix-terminal");
    break_trust(
        &sandbox,
        &trust_for("system:serviceaccount:ci:runner", "sts.amazonaws.com"),
    );
    let state = iam_state(&sandbox);
    let no = on_a_terminal(&sandbox, "--fix", "n\n");
    assert_eq!(no.code, 1, "{}", no.stdout);
    assert!(no.stdout.contains("+++ after the fix"), "{}", no.stdout);
    assert!(
        no.stdout.contains("apply this change? [y/N]"),
        "{}",
        no.stdout
    );
    assert!(no.stdout.contains("declined, not changed"), "{}", no.stdout);
    assert_eq!(iam_state(&sandbox), state, "a no changed nothing");
    // The report on stdout goes elsewhere: the change is shown beside the question on the
    // terminal, never asked for blind (review M5).
    let blind = on_a_terminal(&sandbox, "--fix > /dev/null", "n\n");
    assert_eq!(blind.code, 1, "{}", blind.stdout);
    assert!(
        blind.stdout.contains("apply this change? [y/N]")
            && blind.stdout.contains("system:serviceaccount:ci:builder")
            && blind.stdout.contains("trust policy"),
        "{}",
        blind.stdout
    );
    assert_eq!(iam_state(&sandbox), state, "a no changed nothing");
    let yes = on_a_terminal(&sandbox, "--fix", "y\n");
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert!(
        yes.stdout.contains("all 14 checks passed"),
        "{}",
        yes.stdout
    );
    assert_eq!(iam_state(&sandbox)["trust"], policy_trust());

    // A role the sandbox's configuration made (no irsa tags): "y" is not enough.
    let foreign = start(
        "fix-terminal-foreign",
        vec![ecr_role(trust_for(
            "system:serviceaccount:ci:runner",
            "sts.amazonaws.com",
        ))],
    );
    let state = iam_state(&foreign);
    let y = on_a_terminal(&foreign, "--fix", "y\n");
    assert_eq!(y.code, 1, "{}", y.stdout);
    assert!(
        y.stdout.contains("type the role's name (puller)"),
        "{}",
        y.stdout
    );
    assert_eq!(iam_state(&foreign), state, "y is not the role's name");
    let typed = on_a_terminal(&foreign, "--fix", "puller\n");
    assert_eq!(typed.code, 0, "{}", typed.stdout);
    real_pull(&foreign);
}

#[test]
fn a_change_left_unmade_is_not_asked_for_again_in_the_next_round() {
    // Round 1 plans two changes: the tenant's audience for the shared OIDC provider (needs the
    // role's name confirmed, so --yes alone leaves it) and the pull permissions of the role
    // irsa iam setup made (applied). Round 2 must not offer the first one again (review L6).
    let sandbox = Sandbox::start(
        "fix-not-again",
        vec![],
        &[
            ("eks.amazonaws.com/role-arn", &role_arn("puller")),
            ("eks.amazonaws.com/audience", "api://irsa"),
        ],
    );
    setup_role(&sandbox, &["--audience", "api://irsa"]);
    sandbox.boto3(&format!(
        "iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n\
         iam.create_open_id_connect_provider(Url='{ISSUER}', ClientIDList=['sts.amazonaws.com'], ThumbprintList=[])\n\
         iam.delete_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull')\n",
        provider_arn()
    ));
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    let rounds = report["fix"]["rounds"].as_array().unwrap();
    assert!(!rounds.is_empty(), "{report:#}");
    let kinds = |round: &Value| -> Vec<(String, String)> {
        round["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&rounds[0]),
        [
            ("add-client-id".to_owned(), "needs-confirmation".to_owned()),
            ("put-role-policy".to_owned(), "applied".to_owned())
        ],
        "{report:#}"
    );
    for round in &rounds[1..] {
        assert!(
            !kinds(round).iter().any(|(k, _)| k == "add-client-id"),
            "asked again: {report:#}"
        );
    }
    assert_eq!(report["fix"]["applied"], 1, "{report:#}");
}

#[test]
fn an_oidc_provider_is_not_created_in_an_account_that_is_not_the_roles() {
    // The annotation names a role in another account than the one the credentials act in:
    // IAM would create the provider in the caller's account (doctor5 review L1).
    let other = "arn:aws:iam::444455556666:role/puller";
    let sandbox = Sandbox::start(
        "fix-other-account",
        vec![],
        &[("eks.amazonaws.com/role-arn", other)],
    );
    sandbox.boto3(&format!(
        "iam.delete_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n",
        provider_arn()
    ));
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    let changes = report["fix"]["rounds"][0]["changes"].as_array().unwrap();
    let create = changes
        .iter()
        .find(|c| c["kind"] == "create-oidc-provider")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(create["account"], "444455556666", "{create:#}");
    assert_eq!(create["status"], "failed", "{create:#}");
    assert!(
        create["message"]
            .as_str()
            .unwrap()
            .contains("act in account 111122223333, the role is in account 444455556666"),
        "{create:#}"
    );
    let providers = sandbox.boto3(
        "print([p['Arn'] for p in iam.list_open_id_connect_providers()['OpenIDConnectProviderList']])\n",
    );
    assert!(!providers.contains("111122223333"), "{providers}");
}

#[test]
fn a_deny_in_the_trust_policy_is_removed_and_only_it_once_the_role_is_confirmed() {
    // IAM User Guide, "Policy evaluation logic": an explicit deny overrides any allow, so no
    // added or replaced Allow mends it; the Deny statement that matches the token must go.
    // Another team's statement in the same policy stays as it was.
    let sandbox = sandbox_with_setup("fix-deny");
    let mut trust = iam_state(&sandbox)["trust"].clone();
    let statements = trust["Statement"].as_array_mut().unwrap();
    statements.push(json!({
        "Sid": "NoCi",
        "Effect": "Deny",
        "Principal": {"Federated": provider_arn()},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {format!("{PROVIDER}:sub"): "system:serviceaccount:ci:*"}}
    }));
    let other = json!({
        "Sid": "Batch",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/batch")},
        "Action": "sts:AssumeRole"
    });
    statements.push(other.clone());
    break_trust(&sandbox, &trust);
    let before = sandbox.expect_broken("trust-policy");
    assert_eq!(
        check(&before, "trust-policy")["data"]["deny_statements"],
        json!([1])
    );

    // --yes alone does not remove a Deny, even from the role irsa iam setup made.
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 1, "{report:#}");
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(change["status"], "needs-confirmation", "{change:#}");
    assert!(
        change["summary"]
            .as_str()
            .unwrap()
            .starts_with("remove the Deny"),
        "{change:#}"
    );

    let run = sandbox.doctor(&["--fix", "--yes", "--confirm-role", "puller", "-o", "json"]);
    let report = run.json();
    assert_eq!(run.code, 0, "{report:#}");
    for c in checks(&report) {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    let after = iam_state(&sandbox)["trust"].clone();
    let kept = after["Statement"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{after:#}");
    assert_eq!(
        kept[1], other,
        "another team's statement is kept: {after:#}"
    );
    assert!(kept.iter().all(|s| s["Effect"] == "Allow"), "{after:#}");
    real_pull(&sandbox);
}

#[test]
fn the_pull_fix_keeps_a_narrower_irsa_ecr_pull_and_adds_only_the_repositories_in_use() {
    // Review M4: the fix put `irsa policy ecr-pull`'s account-wide document in place of an
    // irsa-ecr-pull that allowed one repository, dropping it. Now it keeps the statement and
    // adds only what the repositories in use lack.
    const APP: &str = "arn:aws:ecr:us-east-1:111122223333:repository/team/app";
    const TOOLS: &str = "arn:aws:ecr:us-east-1:111122223333:repository/team/tools";
    let sandbox = sandbox_with_setup("fix-merge");
    let narrow = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "PullImages", "Effect": "Allow",
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": APP
    }]});
    sandbox.boto3(&format!(
        "iam.put_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull', PolicyDocument={:?})\n",
        narrow.to_string()
    ));
    let report = fix_mends_with(
        &sandbox,
        "permissions",
        &["put-role-policy"],
        &["--repository", APP, "--repository", TOOLS],
    );
    let pull = iam_state(&sandbox)["pull"].clone();
    let statements = pull["Statement"].as_array().expect("statements");
    assert_eq!(statements[0], narrow["Statement"][0], "kept: {pull:#}");
    assert_eq!(
        statements[1],
        json!({"Sid": "GetAuthorizationToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}),
        "{pull:#}"
    );
    assert_eq!(statements[2]["Sid"], "PullImages2", "{pull:#}");
    assert_eq!(statements[2]["Resource"], json!([TOOLS]), "{pull:#}");
    assert_eq!(statements.len(), 3, "{pull:#}");
    assert!(
        !pull.to_string().contains("repository/*"),
        "no account-wide grant: {pull:#}"
    );
    let change = &report["fix"]["rounds"][0]["changes"][0];
    assert_eq!(change["before"], narrow, "{change:#}");
}

#[test]
fn a_pull_allowed_only_through_a_vpc_endpoint_is_left_to_its_condition() {
    // Review M1: a conditional Allow (pull only through a VPC endpoint) was a near miss, and
    // --fix --yes added an unconditional Allow next to it (account-wide: no repository is
    // known), bypassing the restriction. Now the check says the condition decides, prints
    // it, and no change is made.
    let sandbox = sandbox_with_setup("fix-conditional");
    let vpce = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "ViaVpce", "Effect": "Allow", "Action": "ecr:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0123"}}
    }]});
    sandbox.boto3(&format!(
        "iam.put_role_policy(RoleName='puller', PolicyName='irsa-ecr-pull', PolicyDocument={:?})\n",
        vpce.to_string()
    ));
    let run = sandbox.doctor(&["--fix", "--yes", "-o", "json"]);
    let report = run.json();
    assert_ne!(run.code, 0, "{report:#}");
    assert_eq!(report["fix"]["applied"], 0, "{report:#}");
    assert_eq!(report["fix"]["rounds"], json!([]), "{report:#}");
    let c = check(&report, "permissions");
    assert_eq!(c["status"], "error", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(summary.contains("the condition decides"), "{c:#}");
    assert!(summary.contains("aws:SourceVpce"), "{c:#}");
    assert!(c["fix"]["change"].is_null(), "{c:#}");
    assert_eq!(
        iam_state(&sandbox)["pull"],
        vpce,
        "irsa-ecr-pull is as it was"
    );
}
