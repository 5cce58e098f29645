//! The registry token service with Debian's `docker-registry` (CNCF distribution 2.8) and
//! `skopeo`: a sandbox-issued dockerconfigjson pulls; an expired or tampered one does not.

mod common_cloud;

use std::path::Path;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common_cloud::*;
use irsa_sandbox::cloud::{Cloud, RegistryProcess, push_image};
use serde_json::json;

async fn ecr_password(url: &str, cloud: &Cloud, role: &str) -> String {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .build(),
    );
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn(role))
        .role_session_name("skopeo")
        .web_identity_token(sa_token(cloud, "team-a", "puller", AUDIENCE))
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "t",
    );
    let ecr = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_ecr::config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(creds)
            .build(),
    );
    let token = ecr.get_authorization_token().send().await.unwrap();
    let decoded = STANDARD
        .decode(token.authorization_data()[0].authorization_token().unwrap())
        .unwrap();
    String::from_utf8(decoded)
        .unwrap()
        .strip_prefix("AWS:")
        .unwrap()
        .to_owned()
}

fn write_authfile(path: &Path, registry: &str, user: &str, password: &str) {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        path,
        json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

/// Runs `skopeo inspect` off the runtime (the cloud keeps serving meanwhile).
async fn skopeo_inspect(authfile: &Path, image: &str) -> std::process::Output {
    let authfile = authfile.to_owned();
    let image = image.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--retry-times=0", "--authfile"])
            .arg(&authfile)
            .arg(format!("docker://{image}"))
            .env("HOME", authfile.parent().unwrap())
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("skopeo could not run ({e}): install it with `apt-get install skopeo` (./scripts/test does)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_pulls_with_sandbox_credentials_only() {
    let env = start().await;
    let url = env.url();
    let registry = RegistryProcess::start(
        &url,
        &env.cloud.registry_token_certificate_pem(),
        env.cloud.registry_auth_config(),
        Duration::from_secs(30),
    )
    .await
    .expect("docker-registry starts (Debian: apt-get install docker-registry)");

    // Seed an image with a push token from the sandbox.
    let push = env
        .cloud
        .registry_bearer_token("seed", &["repository:team-a/app:pull,push"])
        .unwrap();
    push_image(&registry.url(), "team-a/app", "v1", &push)
        .await
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log_tail()));
    let image = format!("{}/team-a/app:v1", registry.host());

    // The registry checks the token's signature: a token from another sandbox (another
    // signing certificate) is refused, the sandbox's own is accepted.
    let manifest_url = format!("{}/v2/team-a/app/manifests/v1", registry.url());
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let other = Cloud::new(config())
        .unwrap()
        .registry_bearer_token("x", &["repository:team-a/app:pull"])
        .unwrap();
    let foreign = irsa_sandbox::cloud::http_request(
        "GET",
        &manifest_url,
        &[
            ("authorization", &format!("Bearer {other}")),
            ("accept", accept),
        ],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(foreign.status, 401, "{}", foreign.text());
    let own = env
        .cloud
        .registry_bearer_token("x", &["repository:team-a/app:pull"])
        .unwrap();
    let ok = irsa_sandbox::cloud::http_request(
        "GET",
        &manifest_url,
        &[
            ("authorization", &format!("Bearer {own}")),
            ("accept", accept),
        ],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());

    let dir = TempDir::new("irsa-skopeo");
    let authfile = dir.0.join("config.json");

    // Without credentials: refused.
    std::fs::write(&authfile, r#"{"auths": {}}"#).unwrap();
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(!out.status.success(), "anonymous pull succeeded");

    // A sandbox-issued ECR password: pulls.
    let password = ecr_password(&url, &env.cloud, "puller").await;
    write_authfile(&authfile, &registry.host(), "AWS", &password);
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(
        out.status.success(),
        "skopeo failed: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log_tail()
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Labels"]["dev.irsa.sandbox"], "true");
    assert!(env.cloud.counters().get("registry-auth", "GetToken", "ok") >= 1);

    // A role that may get a token but not ecr:BatchGetImage: the token service grants nothing.
    let token_only = ecr_password(&url, &env.cloud, "token-only").await;
    write_authfile(&authfile, &registry.host(), "AWS", &token_only);
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(!out.status.success(), "pulled without ecr:BatchGetImage");

    // A Chainguard token (username `_token`) pulls too.
    let session = web_identity_session(&url, &env.cloud, "puller").await;
    let (status, body) = chainguard_exchange(
        &url,
        CHAINGUARD_IDENTITY,
        &chainguard_proof(&session, &ProofSpec::default()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    write_authfile(
        &authfile,
        &registry.host(),
        "_token",
        body["token"].as_str().unwrap(),
    );
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(
        out.status.success(),
        "chainguard token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut forged = body["token"].as_str().unwrap().to_owned();
    forged.pop();
    write_authfile(&authfile, &registry.host(), "_token", &forged);
    assert!(
        !skopeo_inspect(&authfile, &image).await.status.success(),
        "truncated chainguard token pulled"
    );

    // Tampered: one character changed.
    let mut tampered: Vec<char> = password.chars().collect();
    tampered[5] = if tampered[5] == 'a' { 'b' } else { 'a' };
    write_authfile(
        &authfile,
        &registry.host(),
        "AWS",
        &tampered.into_iter().collect::<String>(),
    );
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(!out.status.success(), "tampered password pulled");
    assert!(
        env.cloud
            .counters()
            .get("registry-auth", "GetToken", "InvalidCredentials")
            >= 1
    );

    // Wrong username for an ECR password.
    write_authfile(&authfile, &registry.host(), "_token", &password);
    assert!(
        !skopeo_inspect(&authfile, &image).await.status.success(),
        "wrong username pulled"
    );

    // Expired: the ECR password lives 12 hours.
    env.cloud.advance(Duration::from_secs(12 * 3600 + 1));
    write_authfile(&authfile, &registry.host(), "AWS", &password);
    let out = skopeo_inspect(&authfile, &image).await;
    assert!(!out.status.success(), "expired password pulled");
    assert!(
        env.cloud
            .counters()
            .get("registry-auth", "GetToken", "ExpiredCredentials")
            >= 1
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&password),
        "password echoed by the token service"
    );
}
