//! boto3 (the venv in IRSA_TEST_VENV_AWS) against the sandbox's IAM Query API: what it creates
//! and updates is what the sandbox's STS and ECR decide from.

mod common_cloud;

use common_cloud::*;
use irsa_sandbox::cloud::{CloudConfig, RoleConfig};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_iam_query_api_drives_sts() {
    let python = venv_python();
    // No provider and no role for the issuer: boto3 creates them.
    let env = start_with(CloudConfig {
        issuer_url: ISSUER.to_owned(),
        account_id: ACCOUNT.to_owned(),
        roles: vec![RoleConfig {
            name: "irsa-seeded".into(),
            path: "/".into(),
            trust_policy: trust_policy("team-a", "puller"),
            permission_policies: vec![pull_policy()],
            max_session_duration: 3600,
        }],
        ..CloudConfig::default()
    })
    .await;
    let cloud = &env.cloud;
    let dir = TempDir::new("irsa-boto3-iam");
    let trust_a = trust_policy("team-a", "puller");
    let spec = json!({
        "url": env.url(),
        "issuer": ISSUER,
        "team_a_token": sa_token(cloud, "team-a", "puller", AUDIENCE),
        "team_b_token": sa_token(cloud, "team-b", "puller", AUDIENCE),
        "trust_a": trust_a,
        "trust_b": trust_policy("team-b", "puller"),
        "pull": pull_policy(),
    });
    let spec_file = dir.0.join("spec.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_cloud/iam_query.py");
    let url = env.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(spec_file)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", url)
            .env("AWS_ACCESS_KEY_ID", "AKIASANDBOXADMIN0000")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "the-sandbox-does-not-check-admin-secrets",
            )
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(
        output.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r: Value = serde_json::from_slice(&output.stdout).unwrap();
    let provider_arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/irsa/iam-puller");

    // What boto3 created reads back as it was written (documents decoded by boto3).
    assert_eq!(r["provider_arn"], provider_arn);
    assert_eq!(r["provider"]["url"], PROVIDER);
    assert_eq!(
        r["provider"]["client_ids"],
        json!([AUDIENCE, "other"]),
        "{}",
        r["provider"]
    );
    assert_eq!(
        r["provider"]["thumbprints"],
        json!(["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
    );
    assert_eq!(r["providers"], json!([provider_arn]));
    assert_eq!(r["role_arn"], role_arn);
    assert_eq!(r["role_created_doc"], trust_a);
    assert_eq!(r["role_doc"], trust_a);
    assert_eq!(r["role"]["Path"], "/irsa/");
    assert_eq!(r["role"]["Description"], "made by boto3");
    assert_eq!(r["role"]["MaxSessionDuration"], 3600);
    assert!(r["role"]["RoleId"].as_str().unwrap().starts_with("AROA"));
    assert_eq!(r["inline"], pull_policy());
    assert_eq!(r["inline_names"], json!(["pull"]));
    assert_eq!(
        r["attached"],
        json!([format!("arn:aws:iam::{ACCOUNT}:policy/ecr-pull")])
    );
    assert_eq!(r["policy_attachments"], 1);
    assert_eq!(r["policy_version_doc"], pull_policy());
    // Paginated one by one (Marker), every role comes back, seeded and created.
    assert_eq!(r["roles"], json!(["iam-puller", "irsa-seeded"]));

    // STS and ECR decide from that state.
    assert_eq!(r["assume_a"]["code"], "ok", "{}", r["assume_a"]);
    assert_eq!(r["ecr_with_role"]["code"], "ok", "{}", r["ecr_with_role"]);
    assert_eq!(r["assume_a_after_update"]["code"], "AccessDenied");
    assert_eq!(r["assume_a_after_update"]["status"], 403);
    assert_eq!(r["assume_b_after_update"]["code"], "ok");
    assert_eq!(r["ecr_after_detach"]["code"], "AccessDeniedException");
    assert_eq!(
        r["assume_b_without_provider"]["code"],
        "InvalidIdentityToken"
    );
    // A role session may call IAM only as its policies allow.
    assert_eq!(r["iam_as_role"]["code"], "AccessDenied");
    assert_eq!(r["iam_as_role"]["status"], 403);
    assert!(
        r["iam_as_role"]["message"]
            .as_str()
            .unwrap()
            .contains("iam:GetRole"),
        "{}",
        r["iam_as_role"]
    );

    // Errors as boto3 sees them.
    for (name, code, status) in [
        ("provider_again", "EntityAlreadyExists", 409),
        ("provider_http", "ValidationError", 400),
        ("role_again", "EntityAlreadyExists", 409),
        ("role_missing", "NoSuchEntity", 404),
        ("role_bad_trust", "MalformedPolicyDocument", 400),
        ("inline_missing", "NoSuchEntity", 404),
        ("inline_malformed", "MalformedPolicyDocument", 400),
        ("policy_again", "EntityAlreadyExists", 409),
        ("attach_missing", "NoSuchEntity", 404),
        ("delete_conflict", "DeleteConflict", 409),
        ("role_after_delete", "NoSuchEntity", 404),
    ] {
        assert_eq!(r[name]["code"], code, "{name}: {}", r[name]);
        assert_eq!(r[name]["status"], status, "{name}: {}", r[name]);
        assert!(
            !r[name]["message"].as_str().unwrap_or_default().is_empty(),
            "{name}"
        );
    }
    assert!(
        r["role_missing"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    assert!(
        r["provider_http"]["message"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{}",
        r["provider_http"]
    );
    assert!(
        r["inline_malformed"]["message"]
            .as_str()
            .unwrap()
            .contains("Statement[0]: Effect"),
        "{}",
        r["inline_malformed"]
    );

    // Garbage and unknown actions: 400 with IAM's ErrorResponse and a message.
    let garbage = &r["garbage"];
    assert_eq!(garbage["status"], 400, "{garbage}");
    assert_eq!(
        garbage["root"],
        "{https://iam.amazonaws.com/doc/2010-05-08/}ErrorResponse"
    );
    assert_eq!(garbage["type"], "Sender");
    assert_eq!(garbage["code"], "MissingAction");
    assert!(garbage["message"].as_str().unwrap().contains("Action="));
    let unknown = &r["unknown_action"];
    assert_eq!(unknown["status"], 400, "{unknown}");
    assert_eq!(unknown["code"], "InvalidAction");
    assert!(unknown["message"].as_str().unwrap().contains("CreateUser"));

    let counters = cloud.counters();
    assert_eq!(counters.get("iam", "CreateRole", "ok"), 1);
    assert_eq!(counters.get("iam", "UpdateAssumeRolePolicy", "ok"), 1);
    assert_eq!(counters.get("iam", "unknown", "InvalidAction"), 1);
}
