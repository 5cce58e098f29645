//! The IAM client against moto's IAM (the real Query wire format): every read doctor makes and
//! every write `irsa iam setup` makes, with what boto3 wrote or reads back as the reference.

mod support;

use irsa_aws::Env;
use irsa_aws::iam::{AttachedPolicy, IamClient, IamError, same_document};
use irsa_core::partition::Partition;
use serde_json::{Value, json};
use support::Moto;

async fn client(moto: &Moto) -> IamClient {
    IamClient::from_env(
        &Env::from_pairs([
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]),
        Partition::Aws,
    )
    .await
    .expect("a client")
}

fn trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.example.com/id/X:sub": "system:serviceaccount:a:b"}}
    }]})
}

#[tokio::test]
async fn reads_see_what_boto3_wrote() {
    let moto = Moto::start(&[]);
    // Documents with spaces, '+' and '%' survive IAM's URL encoding.
    moto.python(
        r#"
iam = client('iam')
iam.create_open_id_connect_provider(Url='https://oidc.example.com/id/X', ClientIDList=['sts.amazonaws.com', 'other'], ThumbprintList=['9e99a48a9960b14926bb7f3b02e22da2b0ab7280'])
iam.create_role(RoleName='app', Path='/team/', AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {"oidc.example.com/id/X:sub": "system:serviceaccount:a:b"}}}]}, indent=2))
iam.put_role_policy(RoleName='app', PolicyName='pull', PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "a b+c%20", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}))
arn = iam.create_policy(PolicyName='managed', PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}]}))['Policy']['Arn']
iam.attach_role_policy(RoleName='app', PolicyArn=arn)
"#,
    );
    let iam = client(&moto).await;
    let providers = iam.list_open_id_connect_providers().await.unwrap();
    let provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X";
    assert_eq!(providers, [provider_arn]);
    let provider = iam
        .get_open_id_connect_provider(provider_arn)
        .await
        .unwrap()
        .expect("the provider");
    assert_eq!(provider.url, "oidc.example.com/id/X");
    assert_eq!(provider.client_ids, ["sts.amazonaws.com", "other"]);
    assert_eq!(
        provider.thumbprints,
        ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    );
    let missing = "arn:aws:iam::123456789012:oidc-provider/elsewhere.example.com";
    assert_eq!(
        iam.get_open_id_connect_provider(missing).await.unwrap(),
        None
    );

    let role = iam.get_role("app").await.unwrap().expect("the role");
    assert_eq!(role.arn, "arn:aws:iam::123456789012:role/team/app");
    assert_eq!(role.path, "/team/");
    assert!(role.role_id.starts_with("AROA"), "{}", role.role_id);
    assert!(
        same_document(role.trust_policy.as_deref().unwrap(), &trust()),
        "{:?}",
        role.trust_policy
    );
    assert_eq!(iam.get_role("nobody").await.unwrap(), None);

    assert_eq!(iam.list_role_policies("app").await.unwrap(), ["pull"]);
    let inline = iam
        .get_role_policy("app", "pull")
        .await
        .unwrap()
        .expect("inline");
    let doc: Value = serde_json::from_str(&inline.document).unwrap();
    assert_eq!(doc["Statement"][0]["Sid"], json!("a b+c%20"));
    assert_eq!(iam.get_role_policy("app", "nothing").await.unwrap(), None);

    let attached = iam.list_attached_role_policies("app").await.unwrap();
    let managed_arn = "arn:aws:iam::123456789012:policy/managed";
    assert_eq!(
        attached,
        [AttachedPolicy {
            name: "managed".into(),
            arn: managed_arn.into()
        }]
    );
    let policy = iam.get_policy(managed_arn).await.unwrap().expect("managed");
    let version_id = policy.default_version_id.expect("a default version");
    let version = iam
        .get_policy_version(managed_arn, &version_id)
        .await
        .unwrap()
        .expect("the version");
    assert!(version.is_default);
    let doc: Value = serde_json::from_str(&version.document).unwrap();
    assert_eq!(doc["Statement"][0]["Action"], json!("ecr:BatchGetImage"));
    assert_eq!(
        iam.get_policy("arn:aws:iam::123456789012:policy/none")
            .await
            .unwrap(),
        None
    );

    // A list call on a role that does not exist is an error that says so.
    let err = iam.list_role_policies("nobody").await.unwrap_err();
    assert!(err.is_no_such_entity(), "{err}");
    assert!(
        err.to_string().contains("iam:ListRolePolicies on nobody"),
        "{err}"
    );
}

#[tokio::test]
async fn writes_are_what_boto3_reads_back() {
    let moto = Moto::start(&[]);
    let iam = client(&moto).await;
    let arn = iam
        .create_open_id_connect_provider(
            "https://oidc.example.com/id/X",
            &["sts.amazonaws.com".to_owned()],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        arn,
        "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"
    );
    let again = iam
        .create_open_id_connect_provider(
            "https://oidc.example.com/id/X",
            &["sts.amazonaws.com".to_owned()],
            &[],
        )
        .await
        .unwrap_err();
    assert!(again.is_already_exists(), "{again}");

    let role = iam
        .create_role(
            "app",
            "/",
            &trust(),
            Some("irsa test"),
            &[("irsa.dev/managed-by", "irsa-iam-setup"), ("team", "a b")],
        )
        .await
        .unwrap();
    assert_eq!(role.arn, "arn:aws:iam::123456789012:role/app");
    // The tags are sent as Tags.member.N and read back from GetRole.
    let read = iam.get_role("app").await.unwrap().expect("the role");
    assert_eq!(
        read.tags,
        [
            (
                "irsa.dev/managed-by".to_owned(),
                "irsa-iam-setup".to_owned()
            ),
            ("team".to_owned(), "a b".to_owned())
        ]
    );
    let mut other = trust();
    other["Statement"][0]["Condition"]["StringEquals"]["oidc.example.com/id/X:sub"] =
        json!("system:serviceaccount:c:d");
    iam.update_assume_role_policy("app", &other).await.unwrap();
    let pull = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
    iam.put_role_policy("app", "pull", &pull).await.unwrap();

    let out = moto.python(
        r#"
iam = client('iam')
print(json.dumps({
  "trust": iam.get_role(RoleName='app')['Role']['AssumeRolePolicyDocument'],
  "description": iam.get_role(RoleName='app')['Role'].get('Description'),
  "pull": iam.get_role_policy(RoleName='app', PolicyName='pull')['PolicyDocument'],
  "clientIds": iam.get_open_id_connect_provider(OpenIDConnectProviderArn='arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X')['ClientIDList'],
}))
"#,
    );
    let state: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(state["trust"], other);
    assert_eq!(state["description"], json!("irsa test"));
    assert_eq!(state["pull"], pull);
    assert_eq!(state["clientIds"], json!(["sts.amazonaws.com"]));

    let err = iam
        .update_assume_role_policy("nobody", &other)
        .await
        .unwrap_err();
    assert!(err.is_no_such_entity(), "{err}");
}

#[tokio::test]
async fn access_denied_names_the_action_and_the_missing_permission() {
    let moto = Moto::start(&[]);
    let keys = moto.python(
        r#"
iam = client('iam')
iam.create_user(UserName='nobody')
k = iam.create_access_key(UserName='nobody')['AccessKey']
print(k['AccessKeyId'], k['SecretAccessKey'])
"#,
    );
    let (id, secret) = keys.trim().split_once(' ').unwrap();
    moto.enable_access_control(0);
    let iam = IamClient::from_env(
        &Env::from_pairs([
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]),
        Partition::Aws,
    )
    .await
    .unwrap();
    let err = iam.get_role("app").await.unwrap_err();
    assert!(
        matches!(
            err,
            IamError::AccessDenied {
                action: "GetRole",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("allows \"iam:GetRole\" on \"app\""), "{msg}");
    assert!(!msg.contains(secret));
}

#[tokio::test]
async fn no_credentials_is_one_clear_error() {
    let err = IamClient::from_env(
        &Env::from_pairs([("AWS_REGION", "us-east-1")]),
        Partition::Aws,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, IamError::Credentials { .. }), "{err:?}");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
}
