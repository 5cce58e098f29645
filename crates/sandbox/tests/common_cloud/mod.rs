//! Shared set-up for the cloud tests: a sandbox cloud on 127.0.0.1:0 with one OIDC provider
//! (the sandbox's own issuer) and roles with and without ECR permissions.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use irsa_sandbox::cloud::{
    ChainguardConfig, ChainguardIdentity, Cloud, CloudConfig, OidcProviderConfig, RoleConfig,
};
use irsa_sandbox::token_issuer::{BoundObject, ServiceAccountTokenRequest};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::ProvideErrorMetadata as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use irsa_sandbox::cloud::sigv4::{RequestParts, sign_request};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ISSUER: &str = "https://oidc.sandbox.irsa.test/id/CLOUDTEST";
pub const PROVIDER: &str = "oidc.sandbox.irsa.test/id/CLOUDTEST";
pub const ACCOUNT: &str = "111122223333";
pub const AUDIENCE: &str = "sts.amazonaws.com";
pub const OTHER_CLIENT_ID: &str = "other-client";
pub const PROOF_PATH: &str = "/?Action=GetCallerIdentity&Version=2011-06-15";
pub const CHAINGUARD_IDENTITY: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";

pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

pub fn trust_policy(namespace: &str, service_account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{PROVIDER}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                format!("{PROVIDER}:aud"): AUDIENCE,
            }}
        }]
    })
}

pub fn pull_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": "sts:GetWebIdentityToken", "Resource": "*"}
    ]})
}

pub fn config() -> CloudConfig {
    CloudConfig {
        issuer_url: ISSUER.to_owned(),
        account_id: ACCOUNT.to_owned(),
        oidc_providers: vec![OidcProviderConfig {
            url: ISSUER.to_owned(),
            client_ids: vec![AUDIENCE.to_owned(), OTHER_CLIENT_ID.to_owned()],
            jwks: None,
        }],
        roles: vec![
            RoleConfig {
                name: "puller".into(),
                path: "/".into(),
                trust_policy: trust_policy("team-a", "puller"),
                permission_policies: vec![pull_policy()],
                max_session_duration: 3600,
            },
            RoleConfig {
                name: "no-ecr".into(),
                path: "/".into(),
                trust_policy: trust_policy("team-a", "puller"),
                permission_policies: vec![
                    json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
                ],
                max_session_duration: 3600,
            },
            RoleConfig {
                name: "denied-ecr".into(),
                path: "/".into(),
                trust_policy: trust_policy("team-a", "puller"),
                permission_policies: vec![
                    pull_policy(),
                    json!({"Statement": [{"Effect": "Deny", "Action": "ecr*:GetAuthorizationToken", "Resource": "*"}]}),
                ],
                max_session_duration: 3600,
            },
            RoleConfig {
                name: "chained".into(),
                path: "/".into(),
                trust_policy: json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/puller")},
                    "Action": "sts:AssumeRole"
                }]}),
                permission_policies: vec![pull_policy()],
                max_session_duration: 3600,
            },
            RoleConfig {
                name: "token-only".into(),
                path: "/".into(),
                trust_policy: trust_policy("team-a", "puller"),
                permission_policies: vec![
                    json!({"Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}),
                ],
                max_session_duration: 3600,
            },
        ],
        chainguard: ChainguardConfig {
            url: Some(CHAINGUARD_EXCHANGE_URL.to_owned()),
            identities: vec![ChainguardIdentity {
                id: CHAINGUARD_IDENTITY.to_owned(),
                allowed_roles: vec![format!("arn:aws:iam::{ACCOUNT}:role/pull*")],
            }],
            ..ChainguardConfig::default()
        },
        ..CloudConfig::default()
    }
}

/// A running cloud; the server stops when this is dropped.
pub struct Running {
    pub cloud: Cloud,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn start() -> Running {
    start_with(config()).await
}

pub async fn start_with(config: CloudConfig) -> Running {
    let cloud = Cloud::new(config).expect("cloud starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = cloud.clone();
    tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("cloud serves");
    });
    Running {
        cloud,
        addr,
        _stop: stop,
    }
}

/// A projected service-account token as the API server would issue it, at the sandbox's now.
pub fn sa_token(cloud: &Cloud, namespace: &str, name: &str, audience: &str) -> String {
    let issued = cloud
        .issuer()
        .issue(&ServiceAccountTokenRequest {
            namespace: namespace.into(),
            service_account: name.into(),
            service_account_uid: "0d9e5c4a-1111-2222-3333-444455556666".into(),
            audiences: vec![audience.into()],
            expiration_seconds: 3600,
            bound_object: Some(BoundObject {
                kind: "Pod".into(),
                name: "app-0".into(),
                uid: "pod-uid".into(),
            }),
            node: None,
            now: cloud.clock().now(),
        })
        .expect("token issued");
    issued.token.expose().to_owned()
}

/// A token with arbitrary claims, signed by the sandbox issuer's key.
pub fn signed_claims(cloud: &Cloud, claims: &Value) -> String {
    cloud.oidc_issuer().sign_claims(claims).unwrap()
}

/// Standard claims for `team-a:puller` with overrides.
pub fn claims(cloud: &Cloud, overrides: Value) -> Value {
    let now = cloud.clock().now();
    let mut c = json!({
        "iss": ISSUER,
        "sub": "system:serviceaccount:team-a:puller",
        "aud": [AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "puller", "uid": "u"}},
    });
    if let (Some(c), Some(o)) = (c.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// Flips a character in the token's signature.
pub fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python venv with boto3; fails loudly when missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_AWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv-aws"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "boto3 venv not found at {}: run ./scripts/test (it creates it), or `python3 -m venv target/venv-aws && target/venv-aws/bin/pip install boto3`, or set IRSA_TEST_VENV_AWS",
        venv.display()
    );
    python
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (n as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn web_identity_session(
    url: &str,
    cloud: &irsa_sandbox::cloud::Cloud,
    role: &str,
) -> Credentials {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .assume_role_with_web_identity()
        .role_arn(role_arn(role))
        .role_session_name("cg")
        .web_identity_token(sa_token(cloud, "team-a", "puller", AUDIENCE))
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "t",
    )
}

/// The URL the test cloud's Chainguard exchange answers as (its `url`): what proofs name in
/// `Chainguard-Audience`, as Chainguard's own clients name `https://issuer.enforce.dev`.
pub const CHAINGUARD_EXCHANGE_URL: &str = "https://issuer.enforce.dev";

pub struct ProofSpec<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub audience: &'a str,
    pub identity: &'a str,
    pub time: SystemTime,
    /// Headers added after signing (unsigned).
    pub after: Vec<(&'a str, &'a str)>,
    /// Sign without the identity header, then add it unsigned.
    pub identity_unsigned: bool,
}

impl Default for ProofSpec<'_> {
    fn default() -> Self {
        Self {
            host: "sts.amazonaws.com",
            path: PROOF_PATH,
            audience: CHAINGUARD_EXCHANGE_URL,
            identity: CHAINGUARD_IDENTITY,
            time: SystemTime::now(),
            after: vec![],
            identity_unsigned: false,
        }
    }
}

pub fn chainguard_proof(creds: &Credentials, spec: &ProofSpec<'_>) -> String {
    let mut headers = vec![
        ("Host".to_owned(), spec.host.to_owned()),
        ("Chainguard-Audience".to_owned(), spec.audience.to_owned()),
    ];
    if !spec.identity_unsigned {
        headers.push(("Chainguard-Identity".to_owned(), spec.identity.to_owned()));
    }
    let parts = RequestParts {
        method: "POST",
        path_and_query: spec.path,
        headers: &headers,
        body: b"",
    };
    let added = sign_request(&parts, creds, "us-east-1", "sts", spec.time).unwrap();
    headers.extend(added);
    if spec.identity_unsigned {
        headers.push(("Chainguard-Identity".to_owned(), spec.identity.to_owned()));
    }
    for (k, v) in &spec.after {
        headers.push(((*k).to_owned(), (*v).to_owned()));
    }
    let mut raw = format!("POST {} HTTP/1.1\r\n", spec.path);
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    URL_SAFE_NO_PAD.encode(raw)
}

/// Exchanges a proof at the sandbox's Chainguard endpoint: (status, JSON body).
pub async fn chainguard_exchange(url: &str, identity: &str, bearer: &str) -> (u16, Value) {
    let target = format!(
        "{url}/sts/exchange?aud=cgr.dev&identity={}",
        identity.replace('/', "%2F")
    );
    let auth = format!("Bearer {bearer}");
    let r =
        irsa_sandbox::cloud::http_request("POST", &target, &[("authorization", &auth)], Vec::new())
            .await
            .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

// ---- aws-sdk-rust clients for the sandbox's STS, ECR and ECR Public

pub fn sts_client(url: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

pub fn signed_sts_client(url: &str, creds: Credentials) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

pub fn ecr_client(url: &str, creds: Credentials) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_ecr::config::Region::new("eu-west-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

pub fn ecr_public_client(url: &str, creds: Credentials) -> aws_sdk_ecrpublic::Client {
    let config = aws_sdk_ecrpublic::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    aws_sdk_ecrpublic::Client::from_conf(config)
}

pub async fn assume(
    url: &str,
    role: &str,
    token: &str,
) -> Result<
    aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
    (Option<String>, Option<String>),
> {
    sts_client(url)
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name("irsa-test")
        .web_identity_token(token)
        .send()
        .await
        .map_err(|e| {
            let se = e.into_service_error();
            (
                se.code().map(str::to_owned),
                se.message().map(str::to_owned),
            )
        })
}

pub fn creds(
    out: &aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
) -> Credentials {
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "test",
    )
}
