//! `irsa login` against moto, the AWS wire protocol peer: the IRSA environment → STS
//! AssumeRoleWithWebIdentity → ECR GetAuthorizationToken for several accounts, exactly as a pod
//! on EKS would run it.

mod common;

use irsa_core::docker_config::DockerConfig;
use irsa_test_peers::Moto;

#[test]
fn login_through_moto_sts_and_ecr() {
    let moto = Moto::start(&[]);
    let dir = common::TempDir::new("moto");
    // moto accepts any token; the trust logic is the sandbox's job (see login.rs).
    let token = dir.write(
        "token",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6YnVpbGRlciJ9.c2ln\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args([
            "login",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "210987654321.dkr.ecr.us-east-1.amazonaws.com/team/app:1",
            "--no-cache",
        ])
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/builder")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env_remove("IRSA_LOG")
        .output()
        .expect("irsa runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let config = DockerConfig::parse(&out.stdout).expect("a dockerconfigjson");
    for account in ["123456789012", "210987654321"] {
        let auth = &config.auths[&format!("{account}.dkr.ecr.us-east-1.amazonaws.com")];
        assert_eq!(auth.username, "AWS");
        // moto's token is base64("AWS:<registryId>-auth-token"): the password is what follows "AWS:".
        assert_eq!(auth.password.expose(), format!("{account}-auth-token"));
    }
}
