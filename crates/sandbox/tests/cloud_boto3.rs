//! boto3 (the venv in IRSA_TEST_VENV_AWS) against the sandbox's STS, ECR and ECR Public, with
//! the environment a pod with IRSA has.

mod common_cloud;

use common_cloud::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_web_identity_sts_ecr_and_refusals() {
    let python = venv_python();
    let env = start().await;
    let cloud = &env.cloud;
    let now = cloud.clock().now();
    let dir = TempDir::new("irsa-boto3");
    let good = sa_token(cloud, "team-a", "puller", AUDIENCE);
    let token_file = dir.0.join("token");
    std::fs::write(&token_file, &good).unwrap();
    let cases = json!([
        {"name": "allowed", "role": role_arn("puller"), "token": good},
        {"name": "denied_by_sub", "role": role_arn("puller"), "token": sa_token(cloud, "team-b", "puller", AUDIENCE)},
        {"name": "denied_by_aud", "role": role_arn("puller"), "token": sa_token(cloud, "team-a", "puller", OTHER_CLIENT_ID)},
        {"name": "aud_not_client_id", "role": role_arn("puller"), "token": sa_token(cloud, "team-a", "puller", "https://kubernetes.default.svc")},
        {"name": "unknown_issuer", "role": role_arn("puller"), "token": signed_claims(cloud, &claims(cloud, json!({"iss": "https://unknown.example.test"})))},
        {"name": "expired", "role": role_arn("puller"), "token": signed_claims(cloud, &claims(cloud, json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 600})))},
        {"name": "bad_signature", "role": role_arn("puller"), "token": tamper_signature(&good)},
        {"name": "bad_role_arn", "role": "arn:aws:iam::111122223333:group/x", "token": good},
    ]);
    let spec = json!({"cases": cases, "no_ecr_role": role_arn("no-ecr"), "good_token": good});
    let spec_file = dir.0.join("spec.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_cloud/sts_ecr.py");
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
            .env("AWS_ROLE_ARN", role_arn("puller"))
            .env("AWS_ROLE_SESSION_NAME", "boto3-pod")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
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
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        results["caller_arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/puller/boto3-pod")
    );
    assert_eq!(results["caller_account"], ACCOUNT);
    assert_eq!(results["ecr_username"], "AWS");
    assert_eq!(results["ecr_public_username"], "AWS");
    let cases = &results["cases"];
    for (name, code, status) in [
        ("allowed", "ok", None),
        ("denied_by_sub", "AccessDenied", Some(403)),
        ("denied_by_aud", "AccessDenied", Some(403)),
        ("aud_not_client_id", "InvalidIdentityToken", Some(400)),
        ("unknown_issuer", "InvalidIdentityToken", Some(400)),
        ("expired", "ExpiredTokenException", Some(400)),
        ("bad_signature", "InvalidIdentityToken", Some(400)),
        ("bad_role_arn", "ValidationError", Some(400)),
    ] {
        assert_eq!(cases[name]["code"], code, "{name}: {}", cases[name]);
        if let Some(status) = status {
            assert_eq!(cases[name]["status"], status, "{name}");
        }
    }
    assert_eq!(
        cases["denied_by_sub"]["message"],
        "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    );
    assert_eq!(
        results["ecr_without_permission"]["code"],
        "AccessDeniedException"
    );
    assert_eq!(results["ecr_without_permission"]["status"], 400);
    assert_eq!(
        results["ecr-public_without_permission"]["code"],
        "AccessDeniedException"
    );
    assert_eq!(
        results["ecr_wrong_secret"]["code"],
        "InvalidSignatureException"
    );
    let counters = cloud.counters();
    assert_eq!(counters.get("ecr", "GetAuthorizationToken", "ok"), 1);
    assert_eq!(counters.get("sts", "GetCallerIdentity", "ok"), 1);
}
