//! A small typed IAM client: the reads `irsa doctor` makes (OIDC providers, roles, their inline
//! and attached policies, managed policy versions) and the writes `irsa iam setup` makes (create
//! an OIDC provider or add a client id to it, create a role or replace its trust policy, put an
//! inline policy), on aws-sdk-iam.
//!
//! IAM is one global service per partition: its endpoint is `iam.amazonaws.com` (signed for
//! us-east-1) in `aws`, `iam.us-gov.amazonaws.com` (us-gov-west-1) in `aws-us-gov` and
//! `iam.cn-north-1.amazonaws.com.cn` (cn-north-1) in `aws-cn`: the client signs for
//! [`signing_region`] of the partition and lets the SDK's endpoint rules pick the host. An
//! endpoint URL (`AWS_ENDPOINT_URL_IAM`, then `AWS_ENDPOINT_URL`) wins over the rules.
//!
//! IAM returns policy documents URL-encoded (RFC 3986): [`decode_policy_document`] (irsa-core's)
//! turns them back into JSON text, and [`same_document`] compares a document with the one wanted as JSON
//! values, never byte for byte (IAM keeps the whitespace and key order it was sent, so another
//! tool's document of the same meaning must not count as a change).
//!
//! Errors name the IAM action and the resource, and for `AccessDenied` the permission the
//! caller lacks. `NoSuchEntity` on a `Get…` call is not an error: the call answers `None`.

use std::fmt;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_iam::config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use irsa_core::partition::Partition;
use irsa_core::secret::SecretString;
use serde_json::Value;
use thiserror::Error;

pub use irsa_core::trust_policy::{DocumentError, decode_policy_document, same_document};

use crate::credentials::AwsCredentials;
use crate::env::Env;
use crate::retry::{CallFailure, FailureKind, RetryPolicy, is_access_denied, with_retry};
use crate::sts::{SdkSendExt as _, sdk_credentials};

/// Most pages a `List…` call follows (IAM pages hold up to 1000 items).
const MAX_PAGES: usize = 100;

/// The region IAM requests of `partition` are signed for: us-east-1 (`aws`), us-gov-west-1
/// (`aws-us-gov`), cn-north-1 (`aws-cn`), else the partition's default region.
pub fn signing_region(partition: Partition) -> &'static str {
    match partition {
        Partition::Aws => "us-east-1",
        Partition::AwsUsGov => "us-gov-west-1",
        Partition::AwsCn => "cn-north-1",
        other => other.implicit_global_region(),
    }
}

/// Where IAM calls go and how they are bounded.
#[derive(Debug, Clone)]
pub struct IamSettings {
    /// The partition whose IAM is called.
    pub partition: Partition,
    /// An endpoint URL that wins over the partition's (a VPC endpoint, a test server).
    pub endpoint_url: Option<String>,
    /// Use the FIPS endpoint (`iam-fips.amazonaws.com`).
    pub use_fips: bool,
    /// An STS endpoint URL for [`IamClient::caller_account`] (`GetCallerIdentity`).
    pub sts_endpoint_url: Option<String>,
    /// Timeouts and retries.
    pub retry: RetryPolicy,
}

impl IamSettings {
    /// The settings `env` gives for `partition`: `AWS_ENDPOINT_URL_IAM`, then
    /// `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), and
    /// `AWS_USE_FIPS_ENDPOINT`.
    pub fn from_env(env: &Env, partition: Partition) -> Self {
        Self {
            partition,
            endpoint_url: env.endpoint_url("IAM"),
            use_fips: env.flag("AWS_USE_FIPS_ENDPOINT").unwrap_or(false),
            sts_endpoint_url: env.endpoint_url("STS"),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why an IAM call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IamError {
    /// The caller may not make the call.
    #[error(
        "iam:{action} on {resource} was denied ({message}): the AWS credentials irsa runs with \
         need a permissions policy that allows \"iam:{action}\" on \"{resource}\"; attach one to \
         that user or role, or run with credentials that have it"
    )]
    AccessDenied {
        /// The IAM action, e.g. `CreateRole`.
        action: &'static str,
        /// The resource the call was about (an ARN, or a role name).
        resource: String,
        /// IAM's message.
        message: String,
    },
    /// Any other failure of the call.
    #[error("iam:{action} on {resource} failed: {failure}")]
    Call {
        /// The IAM action.
        action: &'static str,
        /// The resource the call was about.
        resource: String,
        /// What happened (IAM's code and message).
        failure: CallFailure,
    },
    /// The answer lacked a field irsa needs, or held a policy document that is not JSON.
    #[error(
        "iam:{action} on {resource} answered with something irsa cannot use ({reason}); is the \
         endpoint IAM?"
    )]
    Malformed {
        /// The IAM action.
        action: &'static str,
        /// The resource the call was about.
        resource: String,
        /// What was wrong (never a credential).
        reason: String,
    },
    /// No AWS credentials were found for IAM.
    #[error(
        "no AWS credentials to call IAM with ({message}): set AWS_PROFILE, AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or run where a role provides them (IRSA, EKS Pod Identity, an \
         instance role)"
    )]
    Credentials {
        /// The credential chain's explanation.
        message: String,
    },
    /// `sts:GetCallerIdentity` failed: the account the credentials act in is unknown.
    #[error(
        "sts:GetCallerIdentity failed ({failure}): irsa asks STS which account the AWS \
         credentials act in before it writes to IAM; check that they are valid and that STS \
         (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL) is reachable"
    )]
    Caller {
        /// What happened.
        failure: CallFailure,
    },
}

impl IamError {
    /// The failed call's error, when IAM answered with one.
    pub fn failure(&self) -> Option<&CallFailure> {
        match self {
            IamError::Call { failure, .. } | IamError::Caller { failure } => Some(failure),
            _ => None,
        }
    }

    /// IAM's error code (`NoSuchEntity`, `EntityAlreadyExists`, `AccessDenied`, …), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            IamError::AccessDenied { .. } => Some("AccessDenied"),
            IamError::Call { failure, .. } | IamError::Caller { failure } => {
                failure.code.as_deref()
            }
            _ => None,
        }
    }

    /// Whether IAM said the entity does not exist.
    pub fn is_no_such_entity(&self) -> bool {
        self.code() == Some("NoSuchEntity")
    }

    /// Whether IAM said the entity exists already.
    pub fn is_already_exists(&self) -> bool {
        self.code() == Some("EntityAlreadyExists")
    }

    /// Whether the caller lacks the permission.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, IamError::AccessDenied { .. })
    }

    /// The IAM action that failed, when a call was made.
    pub fn action(&self) -> Option<&'static str> {
        match self {
            IamError::AccessDenied { action, .. }
            | IamError::Call { action, .. }
            | IamError::Malformed { action, .. } => Some(action),
            IamError::Credentials { .. } => None,
            IamError::Caller { .. } => Some("GetCallerIdentity"),
        }
    }
}

/// An IAM OIDC identity provider (`GetOpenIDConnectProvider`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// Its ARN (as asked for).
    pub arn: String,
    /// The issuer as IAM stores it: host and path without `https://`.
    pub url: String,
    /// The audiences tokens may carry (`ClientIDList`).
    pub client_ids: Vec<String>,
    /// The certificate thumbprints (`ThumbprintList`; may be empty).
    pub thumbprints: Vec<String>,
}

/// An IAM role (`GetRole`, `CreateRole`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its path (`/` by default).
    pub path: String,
    /// Its unique id (`AROA…`).
    pub role_id: String,
    /// The trust policy as JSON text, URL-decoded (`None` when the answer holds none).
    pub trust_policy: Option<String>,
    /// The longest session, in seconds.
    pub max_session_duration: Option<i32>,
    /// The ARN of the permissions boundary, if any.
    pub permissions_boundary: Option<String>,
}

/// An inline policy of a role (`GetRolePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    /// The role's name.
    pub role_name: String,
    /// The policy's name.
    pub name: String,
    /// The document as JSON text, URL-decoded.
    pub document: String,
}

/// A managed policy attached to a role (`ListAttachedRolePolicies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// The policy's name.
    pub name: String,
    /// The policy's ARN.
    pub arn: String,
}

/// A managed policy (`GetPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// The version in force (`v1`, …).
    pub default_version_id: Option<String>,
}

/// One version of a managed policy (`GetPolicyVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// The policy's ARN.
    pub policy_arn: String,
    /// The version id.
    pub version_id: String,
    /// Whether it is the version in force.
    pub is_default: bool,
    /// The document as JSON text, URL-decoded.
    pub document: String,
}

/// The IAM client.
#[derive(Clone)]
pub struct IamClient {
    client: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    settings: IamSettings,
}

impl fmt::Debug for IamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl IamClient {
    /// A client signing with `credentials`.
    pub fn with_credentials(
        settings: IamSettings,
        credentials: &AwsCredentials,
        http_client: Option<SharedHttpClient>,
    ) -> Self {
        let mut config = aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(signing_region(settings.partition)))
            .credentials_provider(sdk_credentials(credentials))
            .use_fips(settings.use_fips)
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &settings.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        let mut sts = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new(signing_region(
                settings.partition,
            )))
            .credentials_provider(sdk_credentials(credentials))
            .use_fips(settings.use_fips)
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &settings.sts_endpoint_url {
            sts = sts.endpoint_url(url.clone());
        }
        if let Some(http) = http_client {
            config = config.http_client(http.clone());
            sts = sts.http_client(http);
        }
        Self {
            client: aws_sdk_iam::Client::from_conf(config.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            settings,
        }
    }

    /// A client for `partition` with the caller's own credentials and the endpoint settings of
    /// `env` ([`IamSettings::from_env`]). For the process environment the credentials come from
    /// the SDK's default chain (variables, profiles, IRSA, Pod Identity, instance role); for a
    /// map environment only from its `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`. They are resolved once, here, so that missing credentials are one
    /// clear error before any call.
    pub async fn from_env(env: &Env, partition: Partition) -> Result<Self, IamError> {
        let settings = IamSettings::from_env(env, partition);
        let http = crate::pipeline::shared_http_client();
        let credentials = match env {
            Env::Process => {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http.clone())
                    .region(Region::new(signing_region(partition)))
                    .load()
                    .await;
                let provider =
                    config
                        .credentials_provider()
                        .ok_or_else(|| IamError::Credentials {
                            message: "no AWS credential provider is configured".to_owned(),
                        })?;
                let timeout = settings.retry.attempt_timeout;
                let creds = tokio::time::timeout(timeout, provider.provide_credentials())
                    .await
                    .map_err(|_| IamError::Credentials {
                        message: format!("the credential chain gave no answer within {timeout:?}"),
                    })?
                    .map_err(|e| IamError::Credentials {
                        message: aws_smithy_types::error::display::DisplayErrorContext(&e)
                            .to_string(),
                    })?;
                AwsCredentials {
                    access_key_id: creds.access_key_id().to_owned(),
                    secret_access_key: SecretString::from(creds.secret_access_key()),
                    session_token: creds.session_token().map(SecretString::from),
                    expires_at: creds.expiry(),
                }
            }
            Env::Map(_) => match (
                env.get("AWS_ACCESS_KEY_ID"),
                env.get("AWS_SECRET_ACCESS_KEY"),
            ) {
                (Some(id), Some(secret)) => AwsCredentials {
                    access_key_id: id,
                    secret_access_key: SecretString::new(secret),
                    session_token: env.get("AWS_SESSION_TOKEN").map(SecretString::new),
                    expires_at: None,
                },
                _ => {
                    return Err(IamError::Credentials {
                        message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
                            .to_owned(),
                    });
                }
            },
        };
        Ok(Self::with_credentials(settings, &credentials, Some(http)))
    }

    /// The partition this client calls.
    pub fn partition(&self) -> Partition {
        self.settings.partition
    }

    /// The settings this client was made with.
    pub fn settings(&self) -> &IamSettings {
        &self.settings
    }

    /// Bounds `call` by the retry policy and classifies its failure.
    async fn call<T, F, Fut>(
        &self,
        action: &'static str,
        resource: &str,
        call: F,
    ) -> Result<T, IamError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallFailure>>,
    {
        tracing::debug!(action, resource, "calling IAM");
        with_retry(&self.settings.retry, action, call)
            .await
            .map_err(|failure| classify(action, resource, failure))
    }

    // ---- reads

    /// `sts:GetCallerIdentity` with the same credentials: the account IAM calls act in. It needs
    /// no permission, so it answers for any valid credentials, before anything is written.
    pub async fn caller_account(&self) -> Result<String, IamError> {
        const ACTION: &str = "GetCallerIdentity";
        tracing::debug!(action = ACTION, "calling STS");
        let out = with_retry(&self.settings.retry, ACTION, || {
            self.sts.get_caller_identity().send().map_ok_or_failure()
        })
        .await
        .map_err(|failure| IamError::Caller { failure })?;
        out.account()
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| malformed(ACTION, "the caller", "the answer holds no Account"))
    }

    /// `GetOpenIDConnectProvider`; `None` when no provider has this ARN.
    pub async fn get_open_id_connect_provider(
        &self,
        arn: &str,
    ) -> Result<Option<OidcProvider>, IamError> {
        const ACTION: &str = "GetOpenIDConnectProvider";
        let out = self
            .call(ACTION, arn, || {
                self.client
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.is_no_such_entity() => return Ok(None),
            Err(e) => return Err(e),
        };
        let url = out
            .url()
            .ok_or_else(|| malformed(ACTION, arn, "the answer holds no Url"))?;
        Ok(Some(OidcProvider {
            arn: arn.to_owned(),
            url: url.to_owned(),
            client_ids: out.client_id_list().to_vec(),
            thumbprints: out.thumbprint_list().to_vec(),
        }))
    }

    /// `ListOpenIDConnectProviders`: the ARNs of every OIDC provider of the account.
    pub async fn list_open_id_connect_providers(&self) -> Result<Vec<String>, IamError> {
        const ACTION: &str = "ListOpenIDConnectProviders";
        let out = self
            .call(ACTION, "*", || {
                self.client
                    .list_open_id_connect_providers()
                    .send()
                    .map_ok_or_failure()
            })
            .await?;
        Ok(out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn().map(str::to_owned))
            .collect())
    }

    /// `GetRole`; `None` when there is no role of this name.
    pub async fn get_role(&self, name: &str) -> Result<Option<Role>, IamError> {
        const ACTION: &str = "GetRole";
        let out = self
            .call(ACTION, name, || {
                self.client
                    .get_role()
                    .role_name(name)
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.is_no_such_entity() => return Ok(None),
            Err(e) => return Err(e),
        };
        let role = out
            .role()
            .ok_or_else(|| malformed(ACTION, name, "the answer holds no Role"))?;
        role_from_sdk(ACTION, name, role).map(Some)
    }

    /// `ListRolePolicies`: the names of the role's inline policies, every page.
    pub async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>, IamError> {
        const ACTION: &str = "ListRolePolicies";
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .call(ACTION, role_name, || {
                    self.client
                        .list_role_policies()
                        .role_name(role_name)
                        .set_marker(marker.clone())
                        .send()
                        .map_ok_or_failure()
                })
                .await?;
            names.extend(out.policy_names().iter().cloned());
            match (out.is_truncated(), out.marker()) {
                (true, Some(next)) => marker = Some(next.to_owned()),
                _ => return Ok(names),
            }
        }
        Err(malformed(
            ACTION,
            role_name,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }

    /// `GetRolePolicy`; `None` when the role has no inline policy of this name (or no such
    /// role exists).
    pub async fn get_role_policy(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<Option<InlinePolicy>, IamError> {
        const ACTION: &str = "GetRolePolicy";
        let resource = format!("{role_name} (inline policy {policy_name})");
        let out = self
            .call(ACTION, &resource, || {
                self.client
                    .get_role_policy()
                    .role_name(role_name)
                    .policy_name(policy_name)
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.is_no_such_entity() => return Ok(None),
            Err(e) => return Err(e),
        };
        let document = decode_policy_document(out.policy_document())
            .map_err(|e| malformed(ACTION, &resource, &format!("PolicyDocument: {e}")))?;
        Ok(Some(InlinePolicy {
            role_name: role_name.to_owned(),
            name: policy_name.to_owned(),
            document,
        }))
    }

    /// `ListAttachedRolePolicies`: the managed policies attached to the role, every page.
    pub async fn list_attached_role_policies(
        &self,
        role_name: &str,
    ) -> Result<Vec<AttachedPolicy>, IamError> {
        const ACTION: &str = "ListAttachedRolePolicies";
        let mut policies = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .call(ACTION, role_name, || {
                    self.client
                        .list_attached_role_policies()
                        .role_name(role_name)
                        .set_marker(marker.clone())
                        .send()
                        .map_ok_or_failure()
                })
                .await?;
            for p in out.attached_policies() {
                if let (Some(name), Some(arn)) = (p.policy_name(), p.policy_arn()) {
                    policies.push(AttachedPolicy {
                        name: name.to_owned(),
                        arn: arn.to_owned(),
                    });
                }
            }
            match (out.is_truncated(), out.marker()) {
                (true, Some(next)) => marker = Some(next.to_owned()),
                _ => return Ok(policies),
            }
        }
        Err(malformed(
            ACTION,
            role_name,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }

    /// `GetPolicy`; `None` when no managed policy has this ARN.
    pub async fn get_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
        const ACTION: &str = "GetPolicy";
        let out = self
            .call(ACTION, arn, || {
                self.client
                    .get_policy()
                    .policy_arn(arn)
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.is_no_such_entity() => return Ok(None),
            Err(e) => return Err(e),
        };
        let policy = out
            .policy()
            .ok_or_else(|| malformed(ACTION, arn, "the answer holds no Policy"))?;
        Ok(Some(ManagedPolicy {
            arn: policy.arn().unwrap_or(arn).to_owned(),
            name: policy.policy_name().unwrap_or_default().to_owned(),
            default_version_id: policy.default_version_id().map(str::to_owned),
        }))
    }

    /// `GetPolicyVersion`; `None` when the policy or the version does not exist.
    pub async fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, IamError> {
        const ACTION: &str = "GetPolicyVersion";
        let resource = format!("{arn} (version {version_id})");
        let out = self
            .call(ACTION, &resource, || {
                self.client
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(version_id)
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.is_no_such_entity() => return Ok(None),
            Err(e) => return Err(e),
        };
        let version = out
            .policy_version()
            .ok_or_else(|| malformed(ACTION, &resource, "the answer holds no PolicyVersion"))?;
        let raw = version
            .document()
            .ok_or_else(|| malformed(ACTION, &resource, "the answer holds no Document"))?;
        let document = decode_policy_document(raw)
            .map_err(|e| malformed(ACTION, &resource, &format!("Document: {e}")))?;
        Ok(Some(PolicyVersion {
            policy_arn: arn.to_owned(),
            version_id: version.version_id().unwrap_or(version_id).to_owned(),
            is_default: version.is_default_version(),
            document,
        }))
    }

    /// `GetOutboundWebIdentityFederationInfo`: the account's outbound issuer URL
    /// (`https://<id>.tokens.sts.global.api.aws`), `None` when outbound identity federation is
    /// not enabled.
    pub async fn outbound_web_identity_issuer(&self) -> Result<Option<String>, IamError> {
        const ACTION: &str = "GetOutboundWebIdentityFederationInfo";
        let out = self
            .call(ACTION, "*", || {
                self.client
                    .get_outbound_web_identity_federation_info()
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        match out {
            Ok(out) if out.jwt_vending_enabled() => Ok(out.issuer_identifier().map(str::to_owned)),
            Ok(_) => Ok(None),
            Err(e) if e.code() == Some("FeatureDisabled") => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- writes

    /// `CreateOpenIDConnectProvider` for `issuer_url` (`https://…`): its ARN.
    pub async fn create_open_id_connect_provider(
        &self,
        issuer_url: &str,
        client_ids: &[String],
        thumbprints: &[String],
    ) -> Result<String, IamError> {
        const ACTION: &str = "CreateOpenIDConnectProvider";
        let out = self
            .call(ACTION, issuer_url, || {
                self.client
                    .create_open_id_connect_provider()
                    .url(issuer_url)
                    .set_client_id_list(Some(client_ids.to_vec()))
                    .set_thumbprint_list((!thumbprints.is_empty()).then(|| thumbprints.to_vec()))
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if retried_already_exists(&e) => {
                // An earlier attempt created it and its answer was lost (a 5xx after the write):
                // the provider of this URL with these client IDs is the one asked for.
                let host_path = issuer_url
                    .strip_prefix("https://")
                    .unwrap_or(issuer_url)
                    .trim_end_matches('/');
                let suffix = format!(":oidc-provider/{host_path}");
                for arn in self.list_open_id_connect_providers().await? {
                    if !arn.ends_with(&suffix) {
                        continue;
                    }
                    if let Some(p) = self.get_open_id_connect_provider(&arn).await?
                        && client_ids.iter().all(|c| p.client_ids.contains(c))
                    {
                        return Ok(arn);
                    }
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        out.open_id_connect_provider_arn()
            .map(str::to_owned)
            .ok_or_else(|| {
                malformed(
                    ACTION,
                    issuer_url,
                    "the answer holds no OpenIDConnectProviderArn",
                )
            })
    }

    /// `AddClientIDToOpenIDConnectProvider`.
    pub async fn add_client_id_to_open_id_connect_provider(
        &self,
        arn: &str,
        client_id: &str,
    ) -> Result<(), IamError> {
        const ACTION: &str = "AddClientIDToOpenIDConnectProvider";
        self.call(ACTION, arn, || {
            self.client
                .add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .client_id(client_id)
                .send()
                .map_ok_or_failure()
        })
        .await
        .map(|_| ())
    }

    /// `CreateRole` with `trust_policy` as its AssumeRolePolicyDocument.
    pub async fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &Value,
        description: Option<&str>,
    ) -> Result<Role, IamError> {
        const ACTION: &str = "CreateRole";
        let document = trust_policy.to_string();
        let out = self
            .call(ACTION, name, || {
                self.client
                    .create_role()
                    .role_name(name)
                    .path(path)
                    .assume_role_policy_document(document.clone())
                    .set_description(description.map(str::to_owned))
                    .send()
                    .map_ok_or_failure()
            })
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if retried_already_exists(&e) => {
                // An earlier attempt created it and its answer was lost (a 5xx after the write):
                // the role is taken as created only if it is the one asked for.
                return match self.get_role(name).await? {
                    Some(role)
                        if role.path == path
                            && role
                                .trust_policy
                                .as_deref()
                                .is_some_and(|t| same_document(t, trust_policy)) =>
                    {
                        Ok(role)
                    }
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let role = out
            .role()
            .ok_or_else(|| malformed(ACTION, name, "the answer holds no Role"))?;
        role_from_sdk(ACTION, name, role)
    }

    /// `UpdateAssumeRolePolicy`: replaces the role's trust policy.
    pub async fn update_assume_role_policy(
        &self,
        role_name: &str,
        trust_policy: &Value,
    ) -> Result<(), IamError> {
        const ACTION: &str = "UpdateAssumeRolePolicy";
        let document = trust_policy.to_string();
        self.call(ACTION, role_name, || {
            self.client
                .update_assume_role_policy()
                .role_name(role_name)
                .policy_document(document.clone())
                .send()
                .map_ok_or_failure()
        })
        .await
        .map(|_| ())
    }

    /// `PutRolePolicy`: creates or replaces the role's inline policy `policy_name`.
    pub async fn put_role_policy(
        &self,
        role_name: &str,
        policy_name: &str,
        document: &Value,
    ) -> Result<(), IamError> {
        const ACTION: &str = "PutRolePolicy";
        let resource = format!("{role_name} (inline policy {policy_name})");
        let document = document.to_string();
        self.call(ACTION, &resource, || {
            self.client
                .put_role_policy()
                .role_name(role_name)
                .policy_name(policy_name)
                .policy_document(document.clone())
                .send()
                .map_ok_or_failure()
        })
        .await
        .map(|_| ())
    }
}

/// `EntityAlreadyExists` on a retried create: an earlier attempt may have made the object.
fn retried_already_exists(e: &IamError) -> bool {
    e.is_already_exists() && e.failure().is_some_and(|f| f.attempts > 1)
}

fn malformed(action: &'static str, resource: &str, reason: &str) -> IamError {
    IamError::Malformed {
        action,
        resource: resource.to_owned(),
        reason: reason.to_owned(),
    }
}

fn classify(action: &'static str, resource: &str, failure: CallFailure) -> IamError {
    if is_access_denied(&failure) {
        IamError::AccessDenied {
            action,
            resource: resource.to_owned(),
            message: failure.message,
        }
    } else if failure.kind == FailureKind::Malformed {
        malformed(action, resource, &failure.message)
    } else {
        IamError::Call {
            action,
            resource: resource.to_owned(),
            failure,
        }
    }
}

fn role_from_sdk(
    action: &'static str,
    resource: &str,
    role: &aws_sdk_iam::types::Role,
) -> Result<Role, IamError> {
    let trust_policy = role
        .assume_role_policy_document()
        .map(decode_policy_document)
        .transpose()
        .map_err(|e| malformed(action, resource, &format!("AssumeRolePolicyDocument: {e}")))?;
    Ok(Role {
        name: role.role_name().to_owned(),
        arn: role.arn().to_owned(),
        path: role.path().to_owned(),
        role_id: role.role_id().to_owned(),
        trust_policy,
        max_session_duration: role.max_session_duration(),
        permissions_boundary: role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_is_signed_for_the_partitions_own_region() {
        assert_eq!(signing_region(Partition::Aws), "us-east-1");
        assert_eq!(signing_region(Partition::AwsUsGov), "us-gov-west-1");
        assert_eq!(signing_region(Partition::AwsCn), "cn-north-1");
        assert_eq!(signing_region(Partition::AwsIso), "us-iso-east-1");
    }

    #[test]
    fn endpoints_come_from_the_iam_variable_then_the_general_one() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_ENDPOINT_URL_IAM", "http://iam"),
        ]);
        let s = IamSettings::from_env(&env, Partition::Aws);
        assert_eq!(s.endpoint_url.as_deref(), Some("http://iam"));
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
        ]);
        let s = IamSettings::from_env(&env, Partition::AwsUsGov);
        assert_eq!(s.endpoint_url.as_deref(), Some("http://general"));
        assert!(s.use_fips);
    }

    #[test]
    fn access_denied_names_the_action_resource_and_fix() {
        let e = classify(
            "CreateRole",
            "app",
            CallFailure::from_status(
                403,
                Some("AccessDenied".into()),
                "User: arn:aws:iam::1:user/u is not authorized to perform: iam:CreateRole",
            ),
        );
        assert!(e.is_access_denied());
        let msg = e.to_string();
        assert!(
            msg.contains("\"iam:CreateRole\"") && msg.contains("on \"app\""),
            "{msg}"
        );
        let missing = classify(
            "GetRole",
            "app",
            CallFailure::from_status(404, Some("NoSuchEntity".into()), "not found"),
        );
        assert!(missing.is_no_such_entity() && !missing.is_access_denied());
        assert_eq!(missing.action(), Some("GetRole"));
    }
}
