//! In-process doubles for what moto cannot do: throttling, 5xx, timeouts, malformed answers,
//! expired tokens, STS's explanatory errors, and ECR Public (moto answers it with HTTP 500).

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use irsa_aws::{
    Env, Identity, Pipeline, PipelineError, PipelineOptions, RegistryTarget, RetryPolicy,
    StaticTokenSource, StsError,
};
use irsa_core::secret::SecretString;
use support::{
    Double, Reply, assert_logs_free_of, capture_logs, ecr_success, fake_jwt, sts_success,
};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const SECRET: &str = "double-secret-access-key";
const SESSION: &str = "double-session-token";
const PASSWORD: &str = "double-ecr-password";

fn far_future() -> i64 {
    (SystemTime::now() + Duration::from_secs(12 * 3600))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sts_ok() -> Reply {
    sts_success("ASIADOUBLE", SECRET, SESSION, "2099-01-01T00:00:00Z")
}

async fn pipeline(url: &str) -> Pipeline {
    Pipeline::new(PipelineOptions {
        env: Env::from_pairs([("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", url)]),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            attempt_timeout: Duration::from_millis(500),
        },
        ..PipelineOptions::default()
    })
    .await
    .unwrap()
}

fn token() -> String {
    fake_jwt(
        "system:serviceaccount:team:puller",
        "sts.amazonaws.com",
        4_000_000_000,
    )
}

fn identity() -> Identity {
    Identity::WebIdentity {
        role_arn: "arn:aws:iam::123456789012:role/puller".parse().unwrap(),
        token_source: Arc::new(StaticTokenSource::new(
            SecretString::from(token()),
            "double",
        )),
        session_name: irsa_aws::sts::session_name_for("team", "puller"),
        session_duration: None,
    }
}

fn target(host: &str) -> Vec<RegistryTarget> {
    vec![RegistryTarget::parse(host, Some("org/identity")).unwrap()]
}

#[tokio::test]
async fn throttling_then_success_is_retried() {
    capture_logs();
    // A counter per operation: the first two ECR calls are throttled.
    let ecr_calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = ecr_calls.clone();
    let double = Double::start(move |req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        "GetAuthorizationToken" => {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                Reply::json_error(400, "ThrottlingException", "Rate exceeded")
            } else {
                ecr_success("123456789012", &format!("AWS:{PASSWORD}"), far_future())
            }
        }
        other => panic!("unexpected {other}"),
    })
    .await;
    let p = pipeline(&double.url).await;
    let creds = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap();
    assert_eq!(creds[0].password.expose(), PASSWORD);
    assert_eq!(double.count_op("GetAuthorizationToken"), 3);
    assert_eq!(double.count_op("AssumeRoleWithWebIdentity"), 1);
    // Cached now: no further upstream call.
    p.registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap();
    assert_eq!(double.count(), 4);
    assert_logs_free_of(&[PASSWORD, SECRET, SESSION, &token()]);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => Reply::json(503, "<html>Service Unavailable</html>"),
    })
    .await;
    let p = pipeline(&double.url).await;
    let err = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ecr:GetAuthorizationToken in us-east-1"),
        "{msg}"
    );
    assert!(
        msg.contains("HTTP 503") && msg.contains("after 3 attempt(s)"),
        "{msg}"
    );
    assert_eq!(double.count_op("GetAuthorizationToken"), 3);
    // Errors are not cached: the next call tries again.
    p.registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err();
    assert_eq!(double.count_op("GetAuthorizationToken"), 6);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_without_retry() {
    let double = Double::start(|_, _| Reply::hang()).await;
    let p = pipeline(&double.url).await;
    let started = std::time::Instant::now();
    let err = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, PipelineError::Sts(StsError::Call { .. })),
        "{err:?}"
    );
    assert!(msg.contains("no answer in time"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(double.count(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn malformed_answers_are_reported_without_echoing_them() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => Reply::json(200, r#"{"authorizationData":[{"authorizationToken":"!!!not-base64-SECRETISH!!!","expiresAt":1}]}"#),
    })
    .await;
    let p = pipeline(&double.url).await;
    let msg = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("authorization token for") && msg.contains("malformed"),
        "{msg}"
    );
    assert!(!msg.contains("SECRETISH"), "{msg}");

    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => Reply::xml(200, "<html>captive portal</html>"),
        _ => unreachable!(),
    })
    .await;
    let p = pipeline(&double.url).await;
    let msg = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("sts:AssumeRoleWithWebIdentity for role"),
        "{msg}"
    );

    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => Reply::json(200, "{not json"),
    })
    .await;
    let p = pipeline(&double.url).await;
    let msg = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("malformed response"), "{msg}");
}

#[tokio::test]
async fn sts_errors_say_what_to_fix() {
    capture_logs();
    for (code, status, expect) in [
        (
            "AccessDenied",
            403,
            vec![
                "system:serviceaccount:team:puller",
                "sts.amazonaws.com",
                "trust policy",
            ],
        ),
        (
            "InvalidIdentityToken",
            400,
            vec![
                "IAM OIDC provider",
                "JWKS",
                "https://oidc.example.test/id/ABC",
            ],
        ),
        (
            "ExpiredTokenException",
            400,
            vec!["expired", "in-memory token double"],
        ),
    ] {
        let double = Double::start(move |_, _| {
            Reply::sts_error(
                status,
                code,
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            )
        })
        .await;
        let p = pipeline(&double.url).await;
        let msg = p
            .registry_credentials(&identity(), &target(ECR_HOST))
            .await
            .unwrap_err()
            .to_string();
        for e in expect {
            assert!(msg.contains(e), "{code}: {msg}");
        }
        assert!(!msg.contains(&token()), "{msg}");
        assert_eq!(double.count(), 1, "{code} is not retried");
    }
    assert_logs_free_of(&[&token()]);
}

#[tokio::test]
async fn expired_registry_tokens_are_served_but_not_cached() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => ecr_success("123456789012", "AWS:old-password", 1_420_070_400),
    })
    .await;
    let p = pipeline(&double.url).await;
    for _ in 0..3 {
        let c = p
            .registry_credentials(&identity(), &target(ECR_HOST))
            .await
            .unwrap();
        assert_eq!(c[0].password.expose(), "old-password");
    }
    assert_eq!(double.count_op("GetAuthorizationToken"), 3);
    assert_eq!(double.count_op("AssumeRoleWithWebIdentity"), 1);
}

#[tokio::test]
async fn ecr_public_in_us_east_1() {
    capture_logs();
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        "GetAuthorizationToken" => {
            assert!(req.headers["x-amz-target"].to_str().unwrap().starts_with("SpencerFrontendService."));
            let auth = req.headers["authorization"].to_str().unwrap();
            assert!(auth.contains("/us-east-1/ecr-public/aws4_request"), "{auth}");
            Reply::json(200, format!(
                r#"{{"authorizationData":{{"authorizationToken":"QVdTOnB1YmxpYy1wYXNzd29yZA==","expiresAt":{}}}}}"#,
                far_future()
            ))
        }
        other => panic!("unexpected {other}"),
    })
    .await;
    let p = pipeline(&double.url).await;
    let c = p
        .registry_credentials(&identity(), &target("public.ecr.aws/nginx/nginx:latest"))
        .await
        .unwrap();
    assert_eq!(
        (c[0].registry.as_str(), c[0].username.as_str()),
        ("public.ecr.aws", "AWS")
    );
    assert_eq!(c[0].password.expose(), "public-password");
    assert!(c[0].expires_at.unwrap() > SystemTime::now());

    let denied = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => Reply::json_error(400, "AccessDeniedException", "not authorized"),
    })
    .await;
    let msg = pipeline(&denied.url)
        .await
        .registry_credentials(&identity(), &target("public.ecr.aws"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("ecr-public:GetAuthorizationToken")
            && msg.contains("sts:GetServiceBearerToken"),
        "{msg}"
    );
    assert_logs_free_of(&["public-password", SECRET, SESSION]);
}

#[tokio::test]
async fn unsupported_registries_are_refused_up_front() {
    let err = RegistryTarget::parse("docker.io/library/nginx", None).unwrap_err();
    assert!(
        err.to_string()
            .contains("irsa cannot mint credentials for registry docker.io")
    );
    let mut t = target(ECR_HOST);
    t[0].registry = irsa_core::registry::Registry::Other;
    let p = pipeline("http://127.0.0.1:9").await;
    let err = p.registry_credentials(&identity(), &t).await.unwrap_err();
    assert!(matches!(err, PipelineError::Target(_)), "{err:?}");
}

#[tokio::test]
async fn endpoint_precedence_option_then_service_variable_then_general_variable() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        _ => ecr_success("123456789012", &format!("AWS:{PASSWORD}"), far_future()),
    })
    .await;
    // Port 9 (discard) is closed on loopback: a call that went there would fail.
    let dead = "http://127.0.0.1:9";
    let p = Pipeline::new(PipelineOptions {
        env: Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", dead),
            ("AWS_ENDPOINT_URL_STS", double.url.as_str()),
            ("AWS_ENDPOINT_URL_ECR", dead),
        ]),
        ecr_endpoint_url: Some(double.url.clone()),
        ..PipelineOptions::default()
    })
    .await
    .unwrap();
    let c = p
        .registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap();
    assert_eq!(c[0].password.expose(), PASSWORD);
    assert_eq!(double.count(), 2);

    // AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns the variables off: the real regional STS host
    // would be called, so point the option at the double to prove only the option is used.
    let p = Pipeline::new(PipelineOptions {
        env: Env::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", dead),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]),
        sts_endpoint_url: Some(double.url.clone()),
        ecr_endpoint_url: Some(double.url.clone()),
        ..PipelineOptions::default()
    })
    .await
    .unwrap();
    p.registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap();
    assert_eq!(double.count(), 4);
}

#[tokio::test]
async fn endpoint_credentials_never_reach_the_logs() {
    // An operator's endpoint URL may carry a user and password (a proxy in front of STS and
    // ECR): the debug lines that name the endpoint show it without them.
    capture_logs();
    let double = Double::start(|req, _| match req.operation().as_str() {
        "AssumeRoleWithWebIdentity" => sts_ok(),
        "GetAuthorizationToken" => {
            ecr_success("123456789012", &format!("AWS:{PASSWORD}"), far_future())
        }
        other => panic!("unexpected {other}"),
    })
    .await;
    let url = double
        .url
        .replacen("://", "://proxy-user:endpoint-pass-2718@", 1);
    let p = pipeline(&url).await;
    p.registry_credentials(&identity(), &target(ECR_HOST))
        .await
        .unwrap();
    assert!(
        support::logs().contains("endpoint"),
        "the endpoint is logged at debug"
    );
    assert_logs_free_of(&["endpoint-pass-2718", PASSWORD, SECRET, SESSION]);
}

// ---- IAM creates retried after a lost answer (review: with_retry and Create*)

fn iam_client(url: &str) -> irsa_aws::iam::IamClient {
    let settings = irsa_aws::iam::IamSettings {
        partition: irsa_core::partition::Partition::Aws,
        endpoint_url: Some(url.to_owned()),
        use_fips: false,
        sts_endpoint_url: Some(url.to_owned()),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            attempt_timeout: Duration::from_millis(2000),
        },
    };
    let creds = irsa_aws::AwsCredentials {
        access_key_id: "AKIADOUBLE".to_owned(),
        secret_access_key: SecretString::new(SECRET.to_owned()),
        session_token: None,
        expires_at: None,
    };
    irsa_aws::iam::IamClient::with_credentials(settings, &creds).expect("a usable endpoint URL")
}

fn iam_xml(action: &str, result: &str) -> Reply {
    Reply::xml(
        200,
        format!(
            "<{action}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{action}Result>{result}</{action}Result>\
             <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRoleWithWebIdentity","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/o.example"}}]}"#;

fn role_xml(trust: &str) -> String {
    format!(
        "<Role><Path>/</Path><RoleName>app</RoleName><RoleId>AROADOUBLE</RoleId>\
         <Arn>arn:aws:iam::123456789012:role/app</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate>\
         <AssumeRolePolicyDocument>{}</AssumeRolePolicyDocument></Role>",
        trust
            .replace('"', "%22")
            .replace('{', "%7B")
            .replace('}', "%7D")
    )
}

/// The first CreateRole answers 500 (its write happened), the retry EntityAlreadyExists: the
/// role is re-read and taken as created when it is the one asked for, else the error stands.
#[tokio::test]
async fn a_retried_create_role_whose_first_attempt_wrote_is_the_role() {
    // The scripted sequence: 500, then 409, then GetRole.
    for (stored, ok) in [
        (TRUST.to_owned(), true),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(),
            false,
        ),
    ] {
        let double = Double::start(move |req, index| match (req.operation().as_str(), index) {
            ("CreateRole", 0) => Reply::sts_error(500, "ServiceFailure", "lost answer"),
            ("CreateRole", _) => Reply::sts_error(
                409,
                "EntityAlreadyExists",
                "Role with name app already exists.",
            ),
            ("GetRole", _) => iam_xml("GetRole", &role_xml(&stored)),
            (other, _) => Reply::sts_error(400, "InvalidAction", other),
        })
        .await;
        let client = iam_client(&double.url);
        let trust: serde_json::Value = serde_json::from_str(TRUST).unwrap();
        let result = client.create_role("app", "/", &trust, None, &[]).await;
        assert_eq!(double.count_op("CreateRole"), 2);
        assert_eq!(double.count_op("GetRole"), 1);
        if ok {
            let role = result.expect("the role the first attempt created");
            assert_eq!(role.arn, "arn:aws:iam::123456789012:role/app");
        } else {
            let err = result.expect_err("another trust policy is not ours");
            assert!(err.is_already_exists(), "{err:?}");
        }
    }
}

/// EntityAlreadyExists on the first attempt (no retry): the object was there before; an error.
#[tokio::test]
async fn a_create_role_refused_at_once_as_existing_stays_an_error() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "CreateRole" => Reply::sts_error(
            409,
            "EntityAlreadyExists",
            "Role with name app already exists.",
        ),
        other => Reply::sts_error(400, "InvalidAction", other),
    })
    .await;
    let client = iam_client(&double.url);
    let trust: serde_json::Value = serde_json::from_str(TRUST).unwrap();
    let err = client
        .create_role("app", "/", &trust, None, &[])
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err:?}");
    assert_eq!(double.count(), 1);
}

/// The same for CreateOpenIDConnectProvider: after a lost answer the provider of the URL with
/// the client IDs asked for is found by listing.
#[tokio::test]
async fn a_retried_create_provider_whose_first_attempt_wrote_is_the_provider() {
    let arn = "arn:aws:iam::123456789012:oidc-provider/o.example/id/X";
    let double = Double::start(move |req, index| match (req.operation().as_str(), index) {
        ("CreateOpenIDConnectProvider", 0) => Reply::sts_error(500, "ServiceFailure", "lost answer"),
        ("CreateOpenIDConnectProvider", _) => {
            Reply::sts_error(409, "EntityAlreadyExists", "Provider with url already exists.")
        }
        ("ListOpenIDConnectProviders", _) => iam_xml(
            "ListOpenIDConnectProviders",
            &format!(
                "<OpenIDConnectProviderList><member><Arn>arn:aws:iam::123456789012:oidc-provider/other.example</Arn></member>\
                 <member><Arn>{arn}</Arn></member></OpenIDConnectProviderList>"
            ),
        ),
        ("GetOpenIDConnectProvider", _) => iam_xml(
            "GetOpenIDConnectProvider",
            "<Url>o.example/id/X</Url><ClientIDList><member>sts.amazonaws.com</member></ClientIDList>\
             <ThumbprintList></ThumbprintList><CreateDate>2026-01-01T00:00:00Z</CreateDate>",
        ),
        (other, _) => Reply::sts_error(400, "InvalidAction", other),
    })
    .await;
    let client = iam_client(&double.url);
    let got = client
        .create_open_id_connect_provider(
            "https://o.example/id/X",
            &["sts.amazonaws.com".to_owned()],
            &[],
        )
        .await
        .expect("the provider the first attempt created");
    assert_eq!(got, arn);
    assert_eq!(double.count_op("CreateOpenIDConnectProvider"), 2);
}

// ---- IAM paging and absence (review of the Query client: L3, L5)

/// `ListRolePolicies` follows `Marker` over every page, and stops with an error when IAM
/// answers the same Marker twice instead of paging forever.
#[tokio::test]
async fn list_calls_follow_markers_and_stop_at_a_repeated_one() {
    for repeat in [false, true] {
        let double = Double::start(move |req, _| {
            let page = if req.body.contains("Marker=m2") {
                if repeat {
                    "<PolicyNames><member>c</member></PolicyNames><IsTruncated>true</IsTruncated><Marker>m2</Marker>"
                } else {
                    "<PolicyNames><member>c</member></PolicyNames><IsTruncated>false</IsTruncated>"
                }
            } else if req.body.contains("Marker=m1") {
                "<PolicyNames><member>b</member></PolicyNames><IsTruncated>true</IsTruncated><Marker>m2</Marker>"
            } else {
                "<PolicyNames><member>a</member></PolicyNames><IsTruncated>true</IsTruncated><Marker>m1</Marker>"
            };
            iam_xml("ListRolePolicies", page)
        })
        .await;
        let client = iam_client(&double.url);
        let got = client.list_role_policies("app").await;
        if repeat {
            let err = got.expect_err("a repeated Marker is an error");
            assert!(err.to_string().contains("same Marker twice"), "{err}");
            // a (→ m1), b (→ m2), c (→ m2 again): stopped there.
            assert_eq!(double.count_op("ListRolePolicies"), 3);
        } else {
            assert_eq!(got.unwrap(), ["a", "b", "c"]);
            assert_eq!(double.count_op("ListRolePolicies"), 3);
        }
    }
}

/// `NoSuchEntity` means "absent" only with IAM's 404: the code on a 5xx (a proxy's or a
/// broken endpoint's answer) is an error, not a missing role that setup would then create.
#[tokio::test]
async fn no_such_entity_on_a_server_error_is_no_answer_of_absence() {
    let double = Double::start(|req, _| match req.operation().as_str() {
        "GetRole" => Reply::sts_error(
            500,
            "NoSuchEntity",
            "The role with name app cannot be found.",
        ),
        other => Reply::sts_error(400, "InvalidAction", other),
    })
    .await;
    let client = iam_client(&double.url);
    let err = client
        .get_role("app")
        .await
        .expect_err("a 5xx is no answer");
    assert!(!err.is_no_such_entity(), "{err:?}");
    let double = Double::start(|req, _| match req.operation().as_str() {
        "GetRole" => Reply::sts_error(
            404,
            "NoSuchEntity",
            "The role with name app cannot be found.",
        ),
        other => Reply::sts_error(400, "InvalidAction", other),
    })
    .await;
    assert_eq!(iam_client(&double.url).get_role("app").await.unwrap(), None);
}
