//! Against moto, the real AWS wire protocol: IRSA environment → STS → ECR, several accounts and
//! regions, chained AssumeRole, and moto's IAM access-control mode (signatures and policies).

mod support;

use std::sync::Arc;

use irsa_aws::ecr::EcrError;
use irsa_aws::provider::ProviderError;
use irsa_aws::{
    Env, FileTokenSource, Identity, Pipeline, PipelineError, PipelineOptions, RegistryTarget,
    StaticTokenSource,
};
use irsa_core::secret::SecretString;
use support::{Moto, assert_logs_free_of, capture_logs, fake_jwt, temp_path};

const ROLE: &str = "arn:aws:iam::111111111111:role/puller";

fn targets(hosts: &[&str]) -> Vec<RegistryTarget> {
    hosts
        .iter()
        .map(|h| RegistryTarget::parse(h, None).unwrap())
        .collect()
}

async fn pipeline(env: Env) -> Pipeline {
    Pipeline::new(PipelineOptions {
        env,
        ..PipelineOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn irsa_environment_to_sts_to_ecr_for_several_accounts_and_regions() {
    capture_logs();
    let moto = Moto::start(&[]);
    let token = fake_jwt(
        "system:serviceaccount:team:puller",
        "sts.amazonaws.com",
        4_000_000_000,
    );
    let file = temp_path("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let p = pipeline(Env::from_pairs([
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
    ]))
    .await;
    let hosts = [
        "222222222222.dkr.ecr.us-east-1.amazonaws.com/app:1",
        "333333333333.dkr.ecr.us-east-1.amazonaws.com",
        "444444444444.dkr.ecr.eu-west-1.amazonaws.com/charts/x",
    ];
    let identity = Identity::Ambient {
        chained_role: None,
        session_duration: None,
    };
    let creds = p
        .registry_credentials(&identity, &targets(&hosts))
        .await
        .unwrap();
    assert_eq!(creds.len(), 3);
    for (cred, account) in creds
        .iter()
        .zip(["222222222222", "333333333333", "444444444444"])
    {
        assert!(cred.registry.starts_with(account), "{}", cred.registry);
        assert_eq!(cred.username, "AWS");
        assert_eq!(cred.password.expose(), format!("{account}-auth-token"));
        // moto's expiresAt is fixed in 2015: carried as is.
        assert!(cred.expires_at.is_some());
    }
    // One STS exchange, one GetAuthorizationToken per region.
    let stats = p.stats();
    assert_eq!(stats.exchanges, 3, "{stats:?}");

    // The moto token is already "expired": it is served but not cached, so a second call asks
    // ECR again while the STS credentials come from the cache.
    let again = p
        .registry_credentials(&identity, &targets(&hosts[..1]))
        .await
        .unwrap();
    assert_eq!(again[0].password.expose(), "222222222222-auth-token");
    let stats = p.stats();
    assert_eq!(stats.exchanges, 4, "{stats:?}");
    assert!(stats.hits >= 1, "{stats:?}");

    let aws = p.aws_credentials(&identity).await.unwrap();
    let mut secrets = vec![token.clone(), aws.secret_access_key.expose().to_owned()];
    secrets.push(aws.session_token.unwrap().expose().to_owned());
    secrets.extend(creds.iter().map(|c| c.password.expose().to_owned()));
    assert_logs_free_of(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    // The capture really covers the SDK's own TRACE output and ours.
    let logs = support::logs();
    assert!(
        logs.contains("aws_smithy_runtime"),
        "SDK logs were not captured"
    );
    assert!(logs.contains("minted registry credentials"));
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn in_memory_token_and_chained_assume_role() {
    capture_logs();
    let moto = Moto::start(&[]);
    let token = fake_jwt(
        "system:serviceaccount:team:puller",
        "sts.amazonaws.com",
        4_000_000_000,
    );
    let p = pipeline(Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
    ]))
    .await;
    let identity = Identity::WebIdentity {
        role_arn: ROLE.parse().unwrap(),
        token_source: Arc::new(StaticTokenSource::new(
            SecretString::from(token.as_str()),
            "test",
        )),
        session_name: irsa_aws::sts::session_name_for("team", "puller"),
        session_duration: None,
    };
    let aws = p.aws_credentials(&identity).await.unwrap();
    assert!(
        aws.access_key_id.starts_with("ASIA"),
        "{}",
        aws.access_key_id
    );
    assert!(aws.expires_at.is_some());
    let creds = p
        .registry_credentials(
            &identity,
            &targets(&["555555555555.dkr.ecr.us-east-1.amazonaws.com"]),
        )
        .await
        .unwrap();
    assert_eq!(creds[0].password.expose(), "555555555555-auth-token");

    // Ambient (IRSA variables) then AssumeRole into another account's role, signed.
    let file = temp_path("token");
    std::fs::write(&file, &token).unwrap();
    let chained = pipeline(Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_STS", moto.url.as_str()),
        ("AWS_ENDPOINT_URL_ECR", moto.url.as_str()),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
    ]))
    .await;
    let identity = Identity::Ambient {
        chained_role: Some(
            "arn:aws:iam::666666666666:role/cross-account"
                .parse()
                .unwrap(),
        ),
        session_duration: None,
    };
    let creds = chained
        .registry_credentials(
            &identity,
            &targets(&["666666666666.dkr.ecr.us-east-1.amazonaws.com"]),
        )
        .await
        .unwrap();
    assert_eq!(creds[0].password.expose(), "666666666666-auth-token");
    assert_logs_free_of(&[&token, aws.secret_access_key.expose()]);
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn file_token_source_is_reread_at_every_exchange() {
    let moto = Moto::start(&[]);
    let file = temp_path("rotating");
    std::fs::write(
        &file,
        fake_jwt(
            "system:serviceaccount:a:b",
            "sts.amazonaws.com",
            4_000_000_000,
        ),
    )
    .unwrap();
    let p = pipeline(Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
    ]))
    .await;
    let identity = Identity::WebIdentity {
        role_arn: ROLE.parse().unwrap(),
        token_source: Arc::new(FileTokenSource::new(&file)),
        session_name: irsa_aws::sts::session_name_for("a", "b"),
        session_duration: None,
    };
    p.aws_credentials(&identity).await.unwrap();
    std::fs::remove_file(&file).unwrap();
    p.clear();
    let err = p.aws_credentials(&identity).await.unwrap_err().to_string();
    assert!(
        err.contains("failed to read the web-identity token file"),
        "{err}"
    );
}

/// moto's access-control mode: the calls made with the assumed credentials are checked for a
/// valid SigV4 signature and session token, and against the role's permissions.
#[tokio::test]
async fn access_control_accepts_our_signatures_and_denies_a_role_without_permission() {
    capture_logs();
    let moto = Moto::start(&[]);
    moto.python(
        r#"
iam = client('iam')
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.test/id/ABC"},
    "Action": "sts:AssumeRoleWithWebIdentity"}]})
iam.create_role(RoleName='puller', AssumeRolePolicyDocument=trust)
iam.put_role_policy(RoleName='puller', PolicyName='pull', PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"}]}))
iam.create_role(RoleName='nothing', AssumeRolePolicyDocument=trust)
iam.put_role_policy(RoleName='nothing', PolicyName='other', PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": ["s3:GetObject"], "Resource": "*"}]}))
"#,
    );
    let p = pipeline(Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
    ]))
    .await;
    let token = fake_jwt(
        "system:serviceaccount:team:puller",
        "sts.amazonaws.com",
        4_000_000_000,
    );
    let identity = |role: &str| Identity::WebIdentity {
        role_arn: format!("arn:aws:iam::123456789012:role/{role}")
            .parse()
            .unwrap(),
        token_source: Arc::new(StaticTokenSource::new(
            SecretString::from(token.as_str()),
            role,
        )),
        session_name: irsa_aws::sts::session_name_for("team", role),
        session_duration: None,
    };
    let (allowed, denied) = (identity("puller"), identity("nothing"));
    // Unsigned AssumeRoleWithWebIdentity must fall within moto's free requests (see
    // TESTING-NOTES): exchange both tokens first, then turn checking on.
    moto.enable_access_control(2);
    let allowed_creds = p.aws_credentials(&allowed).await.unwrap();
    p.aws_credentials(&denied).await.unwrap();

    let registry = targets(&["123456789012.dkr.ecr.us-east-1.amazonaws.com"]);
    let creds = p.registry_credentials(&allowed, &registry).await.unwrap();
    assert_eq!(creds[0].password.expose(), "123456789012-auth-token");

    let err = p
        .registry_credentials(&denied, &registry)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::Provider(ProviderError::Ecr(EcrError::AccessDenied { .. }))
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("ecr:GetAuthorizationToken"), "{msg}");
    assert!(msg.contains("role/nothing"), "{msg}");
    assert!(msg.contains("permissions policy"), "{msg}");
    assert!(!msg.contains(&token));

    // A wrong secret is refused as a bad signature: the acceptance above was not a rubber stamp.
    let mut forged = allowed_creds.clone();
    forged.secret_access_key = SecretString::from("wrong-secret");
    let ecr = irsa_aws::ecr::EcrProvider::new(None, Some(moto.url.clone()), Default::default());
    let ctx = irsa_aws::provider::FetchContext {
        credentials: forged,
        principal: "forged".into(),
        role: None,
    };
    use irsa_aws::RegistryTokenProvider as _;
    let err = ecr.fetch(&ctx, &registry).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 403"), "{err}");
    assert_logs_free_of(&[&token, allowed_creds.secret_access_key.expose()]);
}

/// Each identity's session duration reaches STS as `DurationSeconds` (moto sets the expiry from
/// it), over the pipeline's default; two identities of one role that differ only in it get a
/// session each; chained `AssumeRole` takes it too.
#[tokio::test]
async fn each_identitys_session_duration_reaches_sts() {
    use std::time::{Duration, SystemTime};
    capture_logs();
    let moto = Moto::start(&[]);
    let token = fake_jwt(
        "system:serviceaccount:team:puller",
        "sts.amazonaws.com",
        4_000_000_000,
    );
    let p = Pipeline::new(PipelineOptions {
        env: Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ]),
        // The default an identity without a duration gets.
        session_duration: Some(Duration::from_secs(1800)),
        ..PipelineOptions::default()
    })
    .await
    .unwrap();
    let identity = |d: Option<u64>| Identity::WebIdentity {
        role_arn: ROLE.parse().unwrap(),
        token_source: Arc::new(StaticTokenSource::new(
            SecretString::from(token.as_str()),
            "test",
        )),
        session_name: irsa_aws::sts::session_name_for("team", "puller"),
        session_duration: d.map(Duration::from_secs),
    };
    // Seconds from now to the expiry, within a few seconds of slack for the round trip.
    let lifetime = |c: &irsa_aws::AwsCredentials| {
        c.expires_at
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs()
    };
    let near = |got: u64, want: u64| got <= want && got + 30 >= want;

    let long = p.aws_credentials(&identity(Some(43_200))).await.unwrap();
    let short = p.aws_credentials(&identity(Some(900))).await.unwrap();
    let default = p.aws_credentials(&identity(None)).await.unwrap();
    assert!(near(lifetime(&long), 43_200), "{}", lifetime(&long));
    assert!(near(lifetime(&short), 900), "{}", lifetime(&short));
    assert!(near(lifetime(&default), 1800), "{}", lifetime(&default));
    assert_ne!(long.access_key_id, short.access_key_id, "one session each");
    assert_ne!(
        identity(Some(900)).cache_key(),
        identity(Some(43_200)).cache_key()
    );
    assert_eq!(identity(None).cache_key(), identity(None).cache_key());
    // The same identity again is the cached session.
    let again = p.aws_credentials(&identity(Some(900))).await.unwrap();
    assert_eq!(again.access_key_id, short.access_key_id);

    // Chained AssumeRole: the chained session gets the duration.
    let file = temp_path("token");
    std::fs::write(&file, &token).unwrap();
    let chained = pipeline(Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
    ]))
    .await;
    let cross = chained
        .aws_credentials(&Identity::Ambient {
            chained_role: Some(
                "arn:aws:iam::666666666666:role/cross-account"
                    .parse()
                    .unwrap(),
            ),
            session_duration: Some(Duration::from_secs(1200)),
        })
        .await
        .unwrap();
    assert!(near(lifetime(&cross), 1200), "{}", lifetime(&cross));
    std::fs::remove_file(file).unwrap();
}
