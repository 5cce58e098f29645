//! A small typed IAM client: the reads `irsa doctor` makes (OIDC providers, roles, their inline
//! and attached policies, managed policy versions, the policy simulator's decisions) and the writes `irsa iam setup` makes (create
//! an OIDC provider or add a client id to it, create a role or replace its trust policy, put an
//! inline policy), on IAM's Query API ([`crate::query`]: a signed form POST answered with XML).
//!
//! IAM is one global service per partition: its endpoint is `iam.amazonaws.com` (signed for
//! us-east-1) in `aws`, `iam.us-gov.amazonaws.com` (us-gov-west-1) in `aws-us-gov` and
//! `iam.cn-north-1.amazonaws.com.cn` (cn-north-1) in `aws-cn`: the client signs for
//! [`signing_region`] of the partition and calls [`iam_endpoint`], the host the SDKs' endpoint
//! rules pick. An endpoint URL (`AWS_ENDPOINT_URL_IAM`, then `AWS_ENDPOINT_URL`) wins over the rules.
//!
//! IAM returns policy documents URL-encoded (RFC 3986): [`decode_policy_document`] (irsa-core's)
//! turns them back into JSON text, and [`same_document`] compares a document with the one wanted as JSON
//! values, never byte for byte (IAM keeps the whitespace and key order it was sent, so another
//! tool's document of the same meaning must not count as a change).
//!
//! Errors name the IAM action and the resource, and for `AccessDenied` the permission the
//! caller lacks. `NoSuchEntity` on a `Get…` call is not an error: the call answers `None`.

use std::fmt;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::ProvideCredentials as _;
use irsa_core::aws_xml::Element;
use irsa_core::partition::{EndpointVariant, Partition, sts_endpoint};
use irsa_core::secret::SecretString;
use serde_json::Value;
use thiserror::Error;

pub use irsa_core::iam_simulation::{SimulatedDecision, SimulatedResult};
pub use irsa_core::trust_policy::{DocumentError, decode_policy_document, same_document};

use crate::credentials::AwsCredentials;
use crate::env::{Env, url_for_logs};
use crate::query::QueryApi;
use crate::retry::{CallFailure, FailureKind, RetryPolicy, is_access_denied, with_retry};

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
    /// The IAM endpoint URL cannot be used.
    #[error(
        "the IAM endpoint URL {url} cannot be used ({reason}): set AWS_ENDPOINT_URL_IAM (or \
         AWS_ENDPOINT_URL) to an https:// URL such as https://iam.amazonaws.com, or unset it"
    )]
    Endpoint {
        /// The URL as logs show it.
        url: String,
        /// What is wrong with it.
        reason: String,
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

    /// Whether IAM said the entity does not exist: `NoSuchEntity` with HTTP 404, IAM's status
    /// for it (review L3: the code at any other status, say after retried 5xx answers, is an
    /// error, never "absent").
    pub fn is_no_such_entity(&self) -> bool {
        self.code() == Some("NoSuchEntity") && self.failure().is_some_and(|f| f.status == Some(404))
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
            IamError::Credentials { .. } | IamError::Endpoint { .. } => None,
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
    /// Its tags (`Key`, `Value`), in IAM's order (`GetRole` answers them; IAM caps them at 50).
    pub tags: Vec<(String, String)>,
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

/// The IAM endpoint of `partition`, as the SDKs' endpoint rules give it (IPv4; FIPS where the
/// partition has it: GovCloud's one endpoint is FIPS validated already).
pub fn iam_endpoint(partition: Partition, fips: bool) -> &'static str {
    match (partition, fips) {
        (Partition::Aws, false) => "https://iam.amazonaws.com",
        (Partition::Aws, true) => "https://iam-fips.amazonaws.com",
        (Partition::AwsCn, false) => "https://iam.cn-north-1.amazonaws.com.cn",
        (Partition::AwsCn, true) => "https://iam-fips.amazonaws.com.cn",
        (Partition::AwsUsGov, _) => "https://iam.us-gov.amazonaws.com",
        (Partition::AwsIso, false) => "https://iam.us-iso-east-1.c2s.ic.gov",
        (Partition::AwsIso, true) => "https://iam-fips.us-iso-east-1.c2s.ic.gov",
        (Partition::AwsIsoB, false) => "https://iam.us-isob-east-1.sc2s.sgov.gov",
        (Partition::AwsIsoB, true) => "https://iam-fips.us-isob-east-1.sc2s.sgov.gov",
        (Partition::AwsIsoE, false) => "https://iam.eu-isoe-west-1.cloud.adc-e.uk",
        (Partition::AwsIsoE, true) => "https://iam-fips.cloud.adc-e.uk",
        (Partition::AwsIsoF, false) => "https://iam.us-isof-south-1.csp.hci.ic.gov",
        (Partition::AwsIsoF, true) => "https://iam-fips.csp.hci.ic.gov",
        (Partition::AwsEusc, false) => "https://iam.eusc-de-east-1.amazonaws.eu",
        (Partition::AwsEusc, true) => "https://iam-fips.amazonaws.eu",
    }
}

/// The IAM client.
pub struct IamClient {
    iam: QueryApi,
    /// STS, for `GetCallerIdentity`; why it cannot be called when its endpoint is unusable.
    sts: Result<QueryApi, String>,
    settings: IamSettings,
}

impl fmt::Debug for IamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

const IAM_VERSION: &str = "2010-05-08";
const STS_VERSION: &str = "2011-06-15";

impl IamClient {
    /// A client signing with `credentials`; an error when the endpoint URL cannot be used.
    pub fn with_credentials(
        settings: IamSettings,
        credentials: &AwsCredentials,
    ) -> Result<Self, IamError> {
        let region = signing_region(settings.partition);
        let endpoint = settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| iam_endpoint(settings.partition, settings.use_fips).to_owned());
        let iam = QueryApi::new(&endpoint, "iam", IAM_VERSION, region, credentials).map_err(
            |reason| IamError::Endpoint {
                url: url_for_logs(&endpoint),
                reason,
            },
        )?;
        let sts = match &settings.sts_endpoint_url {
            Some(url) => Ok(url.clone()),
            None => sts_endpoint(
                region,
                EndpointVariant {
                    fips: settings.use_fips,
                    dual_stack: false,
                },
            )
            .map(|host| format!("https://{host}"))
            .map_err(|e| e.to_string()),
        }
        .and_then(|url| {
            QueryApi::new(&url, "sts", STS_VERSION, region, credentials)
                .map_err(|reason| format!("the STS endpoint URL {}: {reason}", url_for_logs(&url)))
        });
        Ok(Self { iam, sts, settings })
    }

    /// A client for `partition` with the caller's own credentials and the endpoint settings of
    /// `env` ([`IamSettings::from_env`]). For the process environment the credentials come from
    /// the SDK's default chain (variables, profiles, IRSA, Pod Identity, instance role); for a
    /// map environment only from its `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`. They are resolved once, here, so that missing credentials are one
    /// clear error before any call.
    pub async fn from_env(env: &Env, partition: Partition) -> Result<Self, IamError> {
        let settings = IamSettings::from_env(env, partition);
        let credentials = match env {
            Env::Process => {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(crate::pipeline::shared_http_client())
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
        Self::with_credentials(settings, &credentials)
    }

    /// The partition this client calls.
    pub fn partition(&self) -> Partition {
        self.settings.partition
    }

    /// The settings this client was made with.
    pub fn settings(&self) -> &IamSettings {
        &self.settings
    }

    /// `action` on `resource` with `params`, bounded by the retry policy, its failure
    /// classified.
    async fn call(
        &self,
        action: &'static str,
        resource: &str,
        params: &[(&str, &str)],
    ) -> Result<Element, IamError> {
        tracing::debug!(action, resource, endpoint = %self.iam.endpoint(), "calling IAM");
        with_retry(&self.settings.retry, action, || {
            self.iam.call(action, params)
        })
        .await
        .map_err(|failure| classify(action, resource, failure))
    }

    /// [`Self::call`] of a `Get…` action: `None` when IAM says there is no such entity.
    async fn get(
        &self,
        action: &'static str,
        resource: &str,
        params: &[(&str, &str)],
    ) -> Result<Option<Element>, IamError> {
        match self.call(action, resource, params).await {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.is_no_such_entity() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every page of the `List…` action `action`: `each` takes the items of a page.
    async fn list(
        &self,
        action: &'static str,
        resource: &str,
        params: &[(&str, &str)],
        mut each: impl FnMut(&Element),
    ) -> Result<(), IamError> {
        let mut marker: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut page_params = params.to_vec();
            if let Some(m) = &marker {
                page_params.push(("Marker", m));
            }
            let out = self.call(action, resource, &page_params).await?;
            each(&out);
            match (
                out.text_of("IsTruncated").map(str::trim),
                out.text_of("Marker"),
            ) {
                (Some("true"), Some(next)) if !next.is_empty() => {
                    // Review L5: a Marker answered twice would page forever (as the SDKs'
                    // paginators, stop at a repeated token).
                    if !seen.insert(next.to_owned()) {
                        return Err(malformed(
                            action,
                            resource,
                            "IAM answered the same Marker twice",
                        ));
                    }
                    marker = Some(next.to_owned());
                }
                _ => return Ok(()),
            }
        }
        Err(malformed(
            action,
            resource,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }

    // ---- reads

    /// `sts:GetCallerIdentity` with the same credentials: the account IAM calls act in. It needs
    /// no permission, so it answers for any valid credentials, before anything is written.
    pub async fn caller_account(&self) -> Result<String, IamError> {
        const ACTION: &str = "GetCallerIdentity";
        let sts = self.sts.as_ref().map_err(|reason| IamError::Caller {
            failure: CallFailure::new(FailureKind::Rejected, reason.clone()),
        })?;
        tracing::debug!(action = ACTION, endpoint = %sts.endpoint(), "calling STS");
        let out = with_retry(&self.settings.retry, ACTION, || sts.call(ACTION, &[]))
            .await
            .map_err(|failure| IamError::Caller { failure })?;
        out.text_of("Account")
            .map(str::trim)
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
        let Some(out) = self
            .get(ACTION, arn, &[("OpenIDConnectProviderArn", arn)])
            .await?
        else {
            return Ok(None);
        };
        let url = out
            .text_of("Url")
            .ok_or_else(|| malformed(ACTION, arn, "the answer holds no Url"))?;
        Ok(Some(OidcProvider {
            arn: arn.to_owned(),
            url: url.to_owned(),
            client_ids: out.member_texts("ClientIDList"),
            thumbprints: out.member_texts("ThumbprintList"),
        }))
    }

    /// `ListOpenIDConnectProviders`: the ARNs of every OIDC provider of the account.
    pub async fn list_open_id_connect_providers(&self) -> Result<Vec<String>, IamError> {
        const ACTION: &str = "ListOpenIDConnectProviders";
        let out = self.call(ACTION, "*", &[]).await?;
        Ok(out
            .members("OpenIDConnectProviderList")
            .filter_map(|p| p.text_of("Arn").map(str::to_owned))
            .collect())
    }

    /// `GetRole`; `None` when there is no role of this name.
    pub async fn get_role(&self, name: &str) -> Result<Option<Role>, IamError> {
        const ACTION: &str = "GetRole";
        let Some(out) = self.get(ACTION, name, &[("RoleName", name)]).await? else {
            return Ok(None);
        };
        let role = out
            .child("Role")
            .ok_or_else(|| malformed(ACTION, name, "the answer holds no Role"))?;
        role_from_xml(ACTION, name, role).map(Some)
    }

    /// `ListRolePolicies`: the names of the role's inline policies, every page.
    pub async fn list_role_policies(&self, role_name: &str) -> Result<Vec<String>, IamError> {
        let mut names = Vec::new();
        self.list(
            "ListRolePolicies",
            role_name,
            &[("RoleName", role_name)],
            |page| names.extend(page.member_texts("PolicyNames")),
        )
        .await?;
        Ok(names)
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
        let params = [("RoleName", role_name), ("PolicyName", policy_name)];
        let Some(out) = self.get(ACTION, &resource, &params).await? else {
            return Ok(None);
        };
        let raw = out
            .text_of("PolicyDocument")
            .ok_or_else(|| malformed(ACTION, &resource, "the answer holds no PolicyDocument"))?;
        let document = decode_policy_document(raw)
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
        let mut policies = Vec::new();
        self.list(
            "ListAttachedRolePolicies",
            role_name,
            &[("RoleName", role_name)],
            |page| {
                for p in page.members("AttachedPolicies") {
                    if let (Some(name), Some(arn)) =
                        (p.text_of("PolicyName"), p.text_of("PolicyArn"))
                    {
                        policies.push(AttachedPolicy {
                            name: name.to_owned(),
                            arn: arn.to_owned(),
                        });
                    }
                }
            },
        )
        .await?;
        Ok(policies)
    }

    /// `GetPolicy`; `None` when no managed policy has this ARN.
    pub async fn get_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
        const ACTION: &str = "GetPolicy";
        let Some(out) = self.get(ACTION, arn, &[("PolicyArn", arn)]).await? else {
            return Ok(None);
        };
        let policy = out
            .child("Policy")
            .ok_or_else(|| malformed(ACTION, arn, "the answer holds no Policy"))?;
        Ok(Some(ManagedPolicy {
            arn: policy.text_of("Arn").unwrap_or(arn).to_owned(),
            name: policy.text_of("PolicyName").unwrap_or_default().to_owned(),
            default_version_id: policy.text_of("DefaultVersionId").map(str::to_owned),
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
        let params = [("PolicyArn", arn), ("VersionId", version_id)];
        let Some(out) = self.get(ACTION, &resource, &params).await? else {
            return Ok(None);
        };
        let version = out
            .child("PolicyVersion")
            .ok_or_else(|| malformed(ACTION, &resource, "the answer holds no PolicyVersion"))?;
        let raw = version
            .text_of("Document")
            .ok_or_else(|| malformed(ACTION, &resource, "the answer holds no Document"))?;
        let document = decode_policy_document(raw)
            .map_err(|e| malformed(ACTION, &resource, &format!("Document: {e}")))?;
        Ok(Some(PolicyVersion {
            policy_arn: arn.to_owned(),
            version_id: version
                .text_of("VersionId")
                .unwrap_or(version_id)
                .to_owned(),
            is_default: version.text_of("IsDefaultVersion").map(str::trim) == Some("true"),
            document,
        }))
    }

    /// `GetOutboundWebIdentityFederationInfo`: the account's outbound issuer URL
    /// (`https://<id>.tokens.sts.global.api.aws`), `None` when outbound identity federation is
    /// not enabled.
    pub async fn outbound_web_identity_issuer(&self) -> Result<Option<String>, IamError> {
        const ACTION: &str = "GetOutboundWebIdentityFederationInfo";
        match self.call(ACTION, "*", &[]).await {
            Ok(out) if out.text_of("JwtVendingEnabled").map(str::trim) == Some("true") => {
                Ok(out.text_of("IssuerIdentifier").map(str::to_owned))
            }
            Ok(_) => Ok(None),
            Err(e) if e.code() == Some("FeatureDisabled") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `SimulatePrincipalPolicy` of `policy_source_arn` (a role ARN): IAM's own decision for
    /// each of `actions` on each of `resources` (the role's identity policies and permissions
    /// boundary; `*` when `resources` is empty), every page. It is read-only and needs
    /// `iam:SimulatePrincipalPolicy` on the role.
    pub async fn simulate_principal_policy(
        &self,
        policy_source_arn: &str,
        actions: &[&str],
        resources: &[String],
    ) -> Result<Vec<SimulatedResult>, IamError> {
        const ACTION: &str = "SimulatePrincipalPolicy";
        let action_keys: Vec<String> = (1..=actions.len())
            .map(|i| format!("ActionNames.member.{i}"))
            .collect();
        let resource_keys: Vec<String> = (1..=resources.len())
            .map(|i| format!("ResourceArns.member.{i}"))
            .collect();
        let mut params: Vec<(&str, &str)> = vec![("PolicySourceArn", policy_source_arn)];
        params.extend(
            action_keys
                .iter()
                .map(String::as_str)
                .zip(actions.iter().copied()),
        );
        params.extend(
            resource_keys
                .iter()
                .map(String::as_str)
                .zip(resources.iter().map(String::as_str)),
        );
        let mut results = Vec::new();
        let mut bad = None;
        self.list(ACTION, policy_source_arn, &params, |page| {
            match irsa_core::iam_simulation::results(page) {
                Ok(r) => results.extend(r),
                Err(e) => bad = bad.take().or(Some(e)),
            }
        })
        .await?;
        if let Some(reason) = bad {
            return Err(malformed(ACTION, policy_source_arn, &reason));
        }
        Ok(results)
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
        let client_keys: Vec<String> = (1..=client_ids.len())
            .map(|i| format!("ClientIDList.member.{i}"))
            .collect();
        let thumbprint_keys: Vec<String> = (1..=thumbprints.len())
            .map(|i| format!("ThumbprintList.member.{i}"))
            .collect();
        let mut params = vec![("Url", issuer_url)];
        params.extend(
            client_keys
                .iter()
                .map(String::as_str)
                .zip(client_ids.iter().map(String::as_str)),
        );
        params.extend(
            thumbprint_keys
                .iter()
                .map(String::as_str)
                .zip(thumbprints.iter().map(String::as_str)),
        );
        let out = match self.call(ACTION, issuer_url, &params).await {
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
        out.text_of("OpenIDConnectProviderArn")
            .filter(|a| !a.is_empty())
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
        let params = [("OpenIDConnectProviderArn", arn), ("ClientID", client_id)];
        self.call(ACTION, arn, &params).await.map(|_| ())
    }

    /// `CreateRole` with `trust_policy` as its AssumeRolePolicyDocument, and `tags`.
    pub async fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &Value,
        description: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Result<Role, IamError> {
        const ACTION: &str = "CreateRole";
        let document = trust_policy.to_string();
        let mut params = vec![
            ("RoleName", name),
            ("Path", path),
            ("AssumeRolePolicyDocument", document.as_str()),
        ];
        if let Some(description) = description {
            params.push(("Description", description));
        }
        let tag_keys: Vec<(String, String)> = (1..=tags.len())
            .map(|i| {
                (
                    format!("Tags.member.{i}.Key"),
                    format!("Tags.member.{i}.Value"),
                )
            })
            .collect();
        for ((key_param, value_param), &(key, value)) in tag_keys.iter().zip(tags) {
            params.push((key_param.as_str(), key));
            params.push((value_param.as_str(), value));
        }
        let out = match self.call(ACTION, name, &params).await {
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
            .child("Role")
            .ok_or_else(|| malformed(ACTION, name, "the answer holds no Role"))?;
        role_from_xml(ACTION, name, role)
    }

    /// `UpdateAssumeRolePolicy`: replaces the role's trust policy.
    pub async fn update_assume_role_policy(
        &self,
        role_name: &str,
        trust_policy: &Value,
    ) -> Result<(), IamError> {
        const ACTION: &str = "UpdateAssumeRolePolicy";
        let document = trust_policy.to_string();
        let params = [
            ("RoleName", role_name),
            ("PolicyDocument", document.as_str()),
        ];
        self.call(ACTION, role_name, &params).await.map(|_| ())
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
        let params = [
            ("RoleName", role_name),
            ("PolicyName", policy_name),
            ("PolicyDocument", document.as_str()),
        ];
        self.call(ACTION, &resource, &params).await.map(|_| ())
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

fn role_from_xml(action: &'static str, resource: &str, role: &Element) -> Result<Role, IamError> {
    let field = |name: &str| {
        role.text_of(name)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| malformed(action, resource, &format!("the Role holds no {name}")))
    };
    let trust_policy = role
        .text_of("AssumeRolePolicyDocument")
        .map(decode_policy_document)
        .transpose()
        .map_err(|e| malformed(action, resource, &format!("AssumeRolePolicyDocument: {e}")))?;
    let max_session_duration = role
        .text_of("MaxSessionDuration")
        .map(|t| t.trim().parse::<i32>())
        .transpose()
        .map_err(|_| malformed(action, resource, "MaxSessionDuration is not a number"))?;
    Ok(Role {
        name: field("RoleName")?,
        arn: field("Arn")?,
        path: role.text_of("Path").unwrap_or("/").to_owned(),
        role_id: field("RoleId")?,
        trust_policy,
        max_session_duration,
        permissions_boundary: role
            .child("PermissionsBoundary")
            .and_then(|b| b.text_of("PermissionsBoundaryArn"))
            .map(str::to_owned),
        tags: role
            .members("Tags")
            .filter_map(|m| {
                let key = m.text_of("Key")?;
                Some((key.to_owned(), m.text_of("Value").unwrap_or("").to_owned()))
            })
            .collect(),
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
    fn iam_endpoints_are_the_sdks() {
        // From aws-sdk-iam's endpoint rule tests (IPv4).
        for (partition, fips, url) in [
            (Partition::Aws, false, "https://iam.amazonaws.com"),
            (Partition::Aws, true, "https://iam-fips.amazonaws.com"),
            (
                Partition::AwsCn,
                false,
                "https://iam.cn-north-1.amazonaws.com.cn",
            ),
            (
                Partition::AwsUsGov,
                true,
                "https://iam.us-gov.amazonaws.com",
            ),
            (
                Partition::AwsEusc,
                false,
                "https://iam.eusc-de-east-1.amazonaws.eu",
            ),
            (Partition::AwsIsoF, true, "https://iam-fips.csp.hci.ic.gov"),
        ] {
            assert_eq!(
                iam_endpoint(partition, fips),
                url,
                "{partition} fips={fips}"
            );
        }
    }

    #[test]
    fn an_unusable_endpoint_url_is_one_clear_error() {
        let settings = IamSettings {
            endpoint_url: Some("ftp://iam.example".into()),
            ..IamSettings::from_env(&Env::from_pairs([("X", "y")]), Partition::Aws)
        };
        let creds = AwsCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: SecretString::new("s".into()),
            session_token: None,
            expires_at: None,
        };
        let err = IamClient::with_credentials(settings, &creds).unwrap_err();
        assert!(
            matches!(err, IamError::Endpoint { .. })
                && err.to_string().contains("AWS_ENDPOINT_URL_IAM"),
            "{err}"
        );
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
