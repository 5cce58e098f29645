//! The STS exchange: `AssumeRoleWithWebIdentity` with a service-account token, the ambient
//! credential chain (the process's own IRSA, EKS Pod Identity or node role), and an optional
//! chained `AssumeRole` for cross-account access.
//!
//! Endpoints: the regional STS endpoint of the role's partition by default (computed by
//! [`irsa_core::partition::sts_endpoint`]), the partition's global endpoint on request, and an
//! explicit URL (option, `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL`) above both. When the
//! configured region belongs to another partition than the role (a GovCloud role, a commercial
//! `AWS_REGION`), the partition's own default region is used.
//!
//! `AssumeRoleWithWebIdentity` is sent unsigned (the token is the proof), so no ambient
//! credential is looked up for it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use irsa_core::arn::{RoleArn, SessionName};
use irsa_core::partition::{EndpointVariant, Partition, sts_endpoint, sts_global_endpoint};
use irsa_core::secret::SecretString;
use thiserror::Error;

use crate::credentials::{AwsCredentials, BoxFuture};
use crate::env::Env;
use crate::retry::{CallFailure, RetryPolicy, is_access_denied, with_retry};
use crate::token_source::{FileTokenSource, TokenSource, TokenSourceError};

/// The service-account annotation naming the IAM role (the EKS convention).
pub use irsa_core::names::ROLE_ARN_ANNOTATION;

/// Whose AWS credentials the pipeline uses.
#[derive(Clone)]
pub enum Identity {
    /// A Kubernetes service-account token exchanged with `AssumeRoleWithWebIdentity`.
    WebIdentity {
        /// The role to assume.
        role_arn: RoleArn,
        /// Where the token comes from (re-read at every exchange).
        token_source: Arc<dyn TokenSource>,
        /// The role session name (appears in CloudTrail).
        session_name: SessionName,
        /// `DurationSeconds` of the session; `None`: the pipeline's default.
        session_duration: Option<Duration>,
    },
    /// The process's own credentials (IRSA variables, EKS Pod Identity, container or instance
    /// role), optionally followed by `AssumeRole` into another role.
    Ambient {
        /// The role to assume with the ambient credentials, for cross-account access.
        chained_role: Option<RoleArn>,
        /// `DurationSeconds` of the chained session, or without one of the IRSA variables'
        /// exchange (credentials of the SDK's chain have the lifetime their source gives);
        /// `None`: the pipeline's default.
        session_duration: Option<Duration>,
    },
}

impl Identity {
    /// A stable key for the cache: the role, session, token source (never the token) and the
    /// session duration when one is set.
    pub fn cache_key(&self) -> String {
        let mut key = String::with_capacity(96);
        self.write_cache_key(&mut key);
        key
    }

    /// Appends [`Identity::cache_key`] to `out`.
    pub fn write_cache_key(&self, out: &mut String) {
        match self {
            Identity::WebIdentity {
                role_arn,
                token_source,
                session_name,
                ..
            } => {
                use std::fmt::Write as _;
                let _ = write!(out, "web|{role_arn}|{session_name}|");
                out.push_str(&token_source.describe());
            }
            Identity::Ambient {
                chained_role: None, ..
            } => out.push_str("ambient"),
            Identity::Ambient {
                chained_role: Some(role),
                ..
            } => {
                use std::fmt::Write as _;
                let _ = write!(out, "ambient|{role}");
            }
        }
        // Two resources with one role but different durations get different sessions. Absent
        // when unset, so keys of identities without one are unchanged. `\u{1e}` is in no DNS
        // name, so the controller's TokenRequest descriptions cannot end with a forged one.
        if let Some(d) = self.session_duration() {
            use std::fmt::Write as _;
            let _ = write!(out, "\u{1e}duration={}", d.as_secs());
        }
    }

    /// The session duration this identity asks of STS, when it sets one.
    pub fn session_duration(&self) -> Option<Duration> {
        match self {
            Identity::WebIdentity {
                session_duration, ..
            }
            | Identity::Ambient {
                session_duration, ..
            } => *session_duration,
        }
    }

    /// The role whose credentials this identity yields, when irsa knows it: the web-identity
    /// role or the chained role; `None` for bare ambient credentials.
    pub fn role(&self) -> Option<&RoleArn> {
        match self {
            Identity::WebIdentity { role_arn, .. } => Some(role_arn),
            Identity::Ambient { chained_role, .. } => chained_role.as_ref(),
        }
    }

    /// [`Identity::role`], knowing the environment the ambient credentials come from: for bare
    /// ambient credentials, the role of the IRSA variables (`AWS_ROLE_ARN` with
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`, which [`StsExchange`] exchanges itself) when `env` sets
    /// both; `None` when the SDK's chain (Pod Identity, instance role) supplies them.
    pub fn role_in(&self, env: &Env) -> Option<RoleArn> {
        match self {
            Identity::Ambient {
                chained_role: None, ..
            } => irsa_variables(env).and_then(|(role, _)| role.trim().parse().ok()),
            _ => self.role().cloned(),
        }
    }

    /// A description for messages: `role arn:aws:iam::…:role/x (token from file …)`.
    pub fn describe(&self) -> String {
        match self {
            Identity::WebIdentity {
                role_arn,
                token_source,
                ..
            } => format!("role {role_arn} (token from {})", token_source.describe()),
            Identity::Ambient {
                chained_role: None, ..
            } => "the ambient AWS credentials".to_owned(),
            Identity::Ambient {
                chained_role: Some(role),
                ..
            } => format!("role {role} (assumed with the ambient AWS credentials)"),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The deterministic session name irsa uses for a service account (see
/// [`SessionName::for_service_account`]: `irsa-<namespace>.<name>`, unambiguous).
pub fn session_name_for(namespace: &str, service_account: &str) -> SessionName {
    SessionName::for_service_account(namespace, service_account)
}

/// The role named by a service account's `eks.amazonaws.com/role-arn` annotation.
pub fn role_from_annotations(
    namespace: &str,
    service_account: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<RoleArn, StsError> {
    let value =
        annotations
            .get(ROLE_ARN_ANNOTATION)
            .ok_or_else(|| StsError::MissingRoleAnnotation {
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
            })?;
    value.trim().parse().map_err(
        |e: irsa_core::arn::ArnError| StsError::InvalidRoleAnnotation {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            reason: e.to_string(),
        },
    )
}

/// Which STS endpoint to call when no URL is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StsEndpointChoice {
    /// The regional endpoint of the role's partition (`sts.<region>.amazonaws.com`).
    #[default]
    Regional,
    /// The partition's global endpoint (`sts.amazonaws.com` in the commercial partition).
    Global,
    /// `AWS_STS_REGIONAL_ENDPOINTS=legacy`, as the AWS SDKs read it: the global endpoint for
    /// the commercial partition's [`LEGACY_GLOBAL_REGIONS`] (plain endpoints only; FIPS and
    /// dual-stack stay regional), the regional endpoint everywhere else.
    Legacy,
}

/// The regions `AWS_STS_REGIONAL_ENDPOINTS=legacy` sends to `sts.amazonaws.com` (the SDKs' list:
/// the regions that existed before regional STS endpoints became the default).
pub const LEGACY_GLOBAL_REGIONS: &[&str] = &[
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "aws-global",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

impl StsEndpointChoice {
    /// The choice `AWS_STS_REGIONAL_ENDPOINTS` makes: `regional` (the default, also when unset)
    /// or `legacy`; anything else is refused with the variable's name.
    pub fn from_env(env: &Env) -> Result<Self, String> {
        match env
            .get("AWS_STS_REGIONAL_ENDPOINTS")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => Ok(StsEndpointChoice::Regional),
            Some(v) if v == "regional" => Ok(StsEndpointChoice::Regional),
            Some(v) if v == "legacy" => Ok(StsEndpointChoice::Legacy),
            Some(v) => Err(format!(
                "AWS_STS_REGIONAL_ENDPOINTS is {v:?}: it must be regional (the default) or legacy"
            )),
        }
    }
}

/// Why AWS credentials could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StsError {
    /// `AssumeRoleWithWebIdentity` was refused with AccessDenied: the trust policy.
    #[error(
        "sts:AssumeRoleWithWebIdentity for role {role} was denied ({message}): the role's trust \
         policy does not allow this token (sub {sub:?}, aud {aud:?}, issuer {issuer:?}); the trust \
         policy needs a statement with Principal {{\"Federated\": \"<the IAM OIDC provider of the \
         issuer>\"}}, Action sts:AssumeRoleWithWebIdentity and conditions \"<issuer host>:sub\" = \
         {sub:?} and \"<issuer host>:aud\" = {aud:?} (`irsa policy trust` writes one)"
    )]
    WebIdentityDenied {
        /// The role.
        role: String,
        /// The token's `sub`.
        sub: String,
        /// The token's `aud`, comma separated.
        aud: String,
        /// The token's `iss`.
        issuer: String,
        /// STS's message.
        message: String,
    },
    /// `AssumeRoleWithWebIdentity` said InvalidIdentityToken: the issuer, provider or JWKS.
    #[error(
        "sts:AssumeRoleWithWebIdentity for role {role} refused the token as invalid ({message}): \
         check that the token's issuer {issuer:?} is registered as an IAM OIDC provider in account \
         {account} with exactly that URL, that {issuer}/.well-known/openid-configuration and the \
         JWKS it names are reachable from AWS and contain the key that signed the token, and that \
         the provider's audiences include the token's aud"
    )]
    InvalidIdentityToken {
        /// The role.
        role: String,
        /// The role's account.
        account: String,
        /// The token's `iss`.
        issuer: String,
        /// STS's message.
        message: String,
    },
    /// The web-identity token had expired.
    #[error(
        "sts:AssumeRoleWithWebIdentity for role {role} refused the token as expired ({message}): \
         {source_desc} must supply a fresh token (the kubelet rotates projected tokens; check the \
         volume's expirationSeconds and the node's clock)"
    )]
    ExpiredToken {
        /// The role.
        role: String,
        /// The token source.
        source_desc: String,
        /// STS's message.
        message: String,
    },
    /// Chained `AssumeRole` was refused.
    #[error(
        "sts:AssumeRole of role {role} with the ambient AWS credentials was denied ({message}): \
         the role's trust policy must trust the ambient principal and that principal's permissions \
         must allow sts:AssumeRole on {role}"
    )]
    AssumeRoleDenied {
        /// The role.
        role: String,
        /// STS's message.
        message: String,
    },
    /// Any other failure of an STS call.
    #[error("{operation} for role {role} failed: {failure}")]
    Call {
        /// `sts:AssumeRoleWithWebIdentity` or `sts:AssumeRole`.
        operation: &'static str,
        /// The role.
        role: String,
        /// What happened.
        failure: CallFailure,
    },
    /// STS answered without credentials.
    #[error(
        "{operation} for role {role} returned no credentials; the STS endpoint is not AWS STS or is misbehaving"
    )]
    NoCredentials {
        /// The operation.
        operation: &'static str,
        /// The role.
        role: String,
    },
    /// The token could not be obtained.
    #[error("failed to get a web-identity token for role {role}: {source}")]
    Token {
        /// The role.
        role: String,
        /// Why.
        source: TokenSourceError,
    },
    /// The service account has no role annotation.
    #[error(
        "service account {namespace}/{service_account} has no annotation \
         eks.amazonaws.com/role-arn: annotate it with the IAM role to assume, e.g. \
         `kubectl annotate serviceaccount -n {namespace} {service_account} \
         eks.amazonaws.com/role-arn=arn:aws:iam::<account>:role/<name>`"
    )]
    MissingRoleAnnotation {
        /// Namespace.
        namespace: String,
        /// Service account.
        service_account: String,
    },
    /// The role annotation is not a role ARN.
    #[error(
        "service account {namespace}/{service_account} has an invalid \
         eks.amazonaws.com/role-arn annotation: {reason}"
    )]
    InvalidRoleAnnotation {
        /// Namespace.
        namespace: String,
        /// Service account.
        service_account: String,
        /// Why.
        reason: String,
    },
    /// No STS endpoint can be formed for the region.
    #[error("no STS endpoint for role {role}: {reason}")]
    Endpoint {
        /// The role.
        role: String,
        /// Why.
        reason: String,
    },
    /// `GetWebIdentityToken` (IAM outbound identity federation) failed.
    #[error(
        "sts:GetWebIdentityToken for {principal} (audience {audience}) failed: {failure}; the \
         account must have outbound identity federation enabled (`aws iam \
         enable-outbound-web-identity-federation`) and the principal's permissions must allow \
         sts:GetWebIdentityToken"
    )]
    WebIdentityToken {
        /// Whose credentials signed the call.
        principal: String,
        /// The audience asked for.
        audience: String,
        /// What happened.
        failure: CallFailure,
    },
    /// The ambient chain found no credentials.
    #[error(
        "failed to load the ambient AWS credentials ({message}): run with a service-account role \
         (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity or an instance role, or \
         pass a role and token explicitly"
    )]
    Ambient {
        /// The chain's explanation.
        message: String,
    },
    /// The exchange ended without an answer (its runtime shut down).
    #[error(transparent)]
    Exchange(#[from] crate::flight::Ended),
}

/// The IRSA variables, `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`, when `env` sets both:
/// then they, not the SDK's chain, are the ambient identity.
fn irsa_variables(env: &Env) -> Option<(String, String)> {
    Some((
        env.get("AWS_ROLE_ARN")?,
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE")?,
    ))
}

/// Where an STS call goes and how it is bounded.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// The configured region (`AWS_REGION`), if any.
    pub region: Option<String>,
    /// Regional or global endpoint when no URL is configured.
    pub choice: StsEndpointChoice,
    /// An endpoint URL that wins over both (VPC endpoint, test server).
    pub endpoint_url: Option<String>,
    /// FIPS / dual-stack.
    pub variant: EndpointVariant,
    /// Requested session duration.
    pub duration: Option<Duration>,
    /// Timeouts and retries.
    pub retry: RetryPolicy,
}

/// Lifetime asked of `GetWebIdentityToken`, seconds: AWS's default, and ample for one exchange.
pub const WEB_IDENTITY_TOKEN_SECONDS: i32 = 300;

/// Mints outbound web-identity tokens (STS `GetWebIdentityToken`) with AWS credentials.
pub trait WebIdentityTokens: Send + Sync {
    /// A JWT for `audience` naming the principal of `credentials` (`principal` describes it for
    /// messages; `role`, when known, is the role they belong to and picks the STS partition).
    fn web_identity_token<'a>(
        &'a self,
        credentials: &'a AwsCredentials,
        principal: &'a str,
        role: Option<&'a RoleArn>,
        audience: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, StsError>>;
}

impl WebIdentityTokens for StsExchange {
    fn web_identity_token<'a>(
        &'a self,
        credentials: &'a AwsCredentials,
        principal: &'a str,
        role: Option<&'a RoleArn>,
        audience: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, StsError>> {
        Box::pin(self.get_web_identity_token(credentials, principal, role, audience))
    }
}

/// Exchanges identities for AWS credentials.
pub trait CredentialExchange: Send + Sync {
    /// Temporary credentials for `identity`.
    fn credentials<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> BoxFuture<'a, Result<AwsCredentials, StsError>>;
}

/// The real exchange, with aws-sdk-sts.
pub struct StsExchange {
    settings: StsSettings,
    env: Env,
    http_client: Option<SharedHttpClient>,
    ambient: Option<SharedCredentialsProvider>,
}

impl fmt::Debug for StsExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsExchange")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl StsExchange {
    /// An exchange. `ambient` is the SDK's default credential chain, used for
    /// [`Identity::Ambient`] when the IRSA variables are not set.
    pub fn new(
        settings: StsSettings,
        env: Env,
        http_client: Option<SharedHttpClient>,
        ambient: Option<SharedCredentialsProvider>,
    ) -> Self {
        Self {
            settings,
            env,
            http_client,
            ambient,
        }
    }

    /// The region and endpoint URL for a call on behalf of `role`.
    pub fn target(&self, role: &RoleArn) -> Result<(String, String), StsError> {
        let endpoint_err = |reason: String| StsError::Endpoint {
            role: role.to_string(),
            reason,
        };
        let partition = Partition::from_id(&role.partition).ok_or_else(|| {
            endpoint_err(format!(
                "partition {} has no known STS endpoint",
                role.partition
            ))
        })?;
        let region = match &self.settings.region {
            Some(r) if Partition::from_region(r) == Some(partition) => r.clone(),
            _ => partition.implicit_global_region().to_owned(),
        };
        let plain = self.settings.variant == EndpointVariant::PLAIN;
        let global = match self.settings.choice {
            StsEndpointChoice::Global => true,
            StsEndpointChoice::Legacy => {
                plain
                    && partition == Partition::Aws
                    && LEGACY_GLOBAL_REGIONS.contains(&region.as_str())
            }
            StsEndpointChoice::Regional => false,
        };
        let url = match &self.settings.endpoint_url {
            Some(url) => url.clone(),
            None if global => {
                // The global endpoint is signed for the partition's default region
                // (us-east-1 for sts.amazonaws.com), whatever the configured region.
                let url = format!("https://{}", sts_global_endpoint(partition));
                return Ok((partition.implicit_global_region().to_owned(), url));
            }
            None => format!(
                "https://{}",
                sts_endpoint(&region, self.settings.variant)
                    .map_err(|e| endpoint_err(e.to_string()))?
            ),
        };
        Ok((region, url))
    }

    fn client(
        &self,
        region: String,
        url: String,
        creds: Option<&AwsCredentials>,
    ) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(url)
            .retry_config(RetryConfig::disabled());
        if let Some(http) = &self.http_client {
            config = config.http_client(http.clone());
        }
        if let Some(creds) = creds {
            config = config.credentials_provider(sdk_credentials(creds));
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// `AssumeRoleWithWebIdentity`, unsigned.
    pub async fn assume_role_with_web_identity(
        &self,
        role: &RoleArn,
        session: &SessionName,
        token: &SecretString,
        source_desc: &str,
        duration: Option<Duration>,
    ) -> Result<AwsCredentials, StsError> {
        const OP: &str = "sts:AssumeRoleWithWebIdentity";
        let (region, url) = self.target(role)?;
        tracing::debug!(role = %role, session = %session, endpoint = %crate::env::url_for_logs(&url), "assuming role with web identity");
        let client = self.client(region, url, None);
        let duration = duration.or(self.settings.duration).map(duration_seconds);
        let out = with_retry(&self.settings.retry, OP, || {
            client
                .assume_role_with_web_identity()
                .role_arn(role.to_string())
                .role_session_name(session.as_str())
                .web_identity_token(token.expose())
                .set_duration_seconds(duration)
                .send()
                .map_ok_or_failure()
        })
        .await
        .map_err(|failure| web_identity_error(role, token, source_desc, failure))?;
        let creds = out.credentials().ok_or_else(|| StsError::NoCredentials {
            operation: OP,
            role: role.to_string(),
        })?;
        Ok(from_sts(creds))
    }

    /// `AssumeRole`, signed with `base`.
    pub async fn assume_role(
        &self,
        base: &AwsCredentials,
        role: &RoleArn,
        session: &SessionName,
        duration: Option<Duration>,
    ) -> Result<AwsCredentials, StsError> {
        const OP: &str = "sts:AssumeRole";
        let (region, url) = self.target(role)?;
        tracing::debug!(role = %role, session = %session, endpoint = %crate::env::url_for_logs(&url), "assuming chained role");
        let client = self.client(region, url, Some(base));
        let duration = duration.or(self.settings.duration).map(duration_seconds);
        let out = with_retry(&self.settings.retry, OP, || {
            client
                .assume_role()
                .role_arn(role.to_string())
                .role_session_name(session.as_str())
                .set_duration_seconds(duration)
                .send()
                .map_ok_or_failure()
        })
        .await
        .map_err(|failure| {
            if is_access_denied(&failure) {
                StsError::AssumeRoleDenied {
                    role: role.to_string(),
                    message: failure.message,
                }
            } else {
                StsError::Call {
                    operation: OP,
                    role: role.to_string(),
                    failure,
                }
            }
        })?;
        let creds = out.credentials().ok_or_else(|| StsError::NoCredentials {
            operation: OP,
            role: role.to_string(),
        })?;
        Ok(from_sts(creds))
    }

    /// The region and URL of `GetWebIdentityToken` for credentials of `role`: the configured
    /// endpoint URL, else the regional endpoint of the configured region when it lies in the
    /// role's partition, else of the partition's default region (us-gov-west-1 for
    /// `aws-us-gov`, cn-northwest-1 for `aws-cn`, us-east-1 for `aws`). Without a known role,
    /// the configured region, else us-east-1. Never the global endpoint, where AWS does not offer
    /// the API, whatever `AWS_STS_REGIONAL_ENDPOINTS` says.
    pub fn web_identity_token_target(
        &self,
        role: Option<&RoleArn>,
    ) -> Result<(String, String), StsError> {
        let endpoint_err = |reason: String| StsError::Endpoint {
            role: role.map_or_else(|| "(sts:GetWebIdentityToken)".to_owned(), |r| r.to_string()),
            reason,
        };
        let configured = self.settings.region.as_deref();
        let region = match role {
            Some(role) => {
                let partition = Partition::from_id(&role.partition).ok_or_else(|| {
                    endpoint_err(format!(
                        "partition {} has no known STS endpoint",
                        role.partition
                    ))
                })?;
                match configured {
                    Some(r) if Partition::from_region(r) == Some(partition) => r.to_owned(),
                    _ => partition.implicit_global_region().to_owned(),
                }
            }
            None => configured.unwrap_or("us-east-1").to_owned(),
        };
        let url = match &self.settings.endpoint_url {
            Some(url) => url.clone(),
            None => format!(
                "https://{}",
                sts_endpoint(&region, self.settings.variant)
                    .map_err(|e| endpoint_err(e.to_string()))?
            ),
        };
        Ok((region, url))
    }

    /// `GetWebIdentityToken` (IAM outbound identity federation), signed with `credentials`: a
    /// JWT for `audience`, RS256, valid [`WEB_IDENTITY_TOKEN_SECONDS`].
    pub async fn get_web_identity_token(
        &self,
        credentials: &AwsCredentials,
        principal: &str,
        role: Option<&RoleArn>,
        audience: &str,
    ) -> Result<SecretString, StsError> {
        const OP: &str = "sts:GetWebIdentityToken";
        let (region, url) = self.web_identity_token_target(role)?;
        tracing::debug!(principal, audience, endpoint = %crate::env::url_for_logs(&url), "getting an outbound web-identity token");
        let client = self.client(region, url, Some(credentials));
        let err = |failure| StsError::WebIdentityToken {
            principal: principal.to_owned(),
            audience: audience.to_owned(),
            failure,
        };
        let out = with_retry(&self.settings.retry, OP, || {
            client
                .get_web_identity_token()
                .audience(audience)
                .signing_algorithm("RS256")
                .duration_seconds(WEB_IDENTITY_TOKEN_SECONDS)
                .send()
                .map_ok_or_failure()
        })
        .await
        .map_err(err)?;
        match out.web_identity_token() {
            Some(token) if !token.is_empty() => Ok(SecretString::from(token)),
            _ => Err(err(CallFailure::new(
                crate::retry::FailureKind::Malformed,
                "the answer holds no WebIdentityToken",
            ))),
        }
    }

    /// The process's own credentials: the IRSA variables through this exchange (so the same
    /// endpoints and explanations apply), else the SDK's default chain.
    pub async fn ambient_credentials(&self) -> Result<AwsCredentials, StsError> {
        self.ambient_credentials_for(None).await
    }

    /// [`Self::ambient_credentials`], the IRSA variables' session lasting `duration` (`None`:
    /// the settings' default).
    async fn ambient_credentials_for(
        &self,
        duration: Option<Duration>,
    ) -> Result<AwsCredentials, StsError> {
        if let Some((role, file)) = irsa_variables(&self.env) {
            let role: RoleArn =
                role.trim()
                    .parse()
                    .map_err(|e: irsa_core::arn::ArnError| StsError::Ambient {
                        message: format!("AWS_ROLE_ARN is not a role ARN: {e}"),
                    })?;
            let session = self
                .env
                .get("AWS_ROLE_SESSION_NAME")
                .map(|s| SessionName::derive(&s))
                .unwrap_or_else(|| SessionName::derive("irsa"));
            let source = FileTokenSource::new(file);
            let token = source.token().await.map_err(|source| StsError::Token {
                role: role.to_string(),
                source,
            })?;
            return self
                .assume_role_with_web_identity(
                    &role,
                    &session,
                    &token,
                    &source.describe(),
                    duration,
                )
                .await;
        }
        let provider = self.ambient.as_ref().ok_or_else(|| StsError::Ambient {
            message: "no AWS credential provider is configured".to_owned(),
        })?;
        let timeout = self.settings.retry.attempt_timeout * self.settings.retry.max_attempts.max(1);
        let creds = tokio::time::timeout(timeout, provider.provide_credentials())
            .await
            .map_err(|_| StsError::Ambient {
                message: format!("the credential chain gave no answer within {timeout:?}"),
            })?
            .map_err(|e| StsError::Ambient {
                message: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(AwsCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: SecretString::from(creds.secret_access_key()),
            session_token: creds.session_token().map(SecretString::from),
            expires_at: creds.expiry(),
        })
    }
}

impl CredentialExchange for StsExchange {
    fn credentials<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
        Box::pin(async move {
            match identity {
                Identity::WebIdentity {
                    role_arn,
                    token_source,
                    session_name,
                    session_duration,
                } => {
                    let token = token_source
                        .token()
                        .await
                        .map_err(|source| StsError::Token {
                            role: role_arn.to_string(),
                            source,
                        })?;
                    self.assume_role_with_web_identity(
                        role_arn,
                        session_name,
                        &token,
                        &token_source.describe(),
                        *session_duration,
                    )
                    .await
                }
                Identity::Ambient {
                    chained_role,
                    session_duration,
                } => {
                    // The duration is the chained session's when there is one; the base
                    // session keeps the settings' default.
                    let base = match chained_role {
                        None => self.ambient_credentials_for(*session_duration).await?,
                        Some(_) => self.ambient_credentials().await?,
                    };
                    match chained_role {
                        None => Ok(base),
                        Some(role) => {
                            let session = self
                                .env
                                .get("AWS_ROLE_SESSION_NAME")
                                .map(|s| SessionName::derive(&s))
                                .unwrap_or_else(|| SessionName::derive("irsa-chained"));
                            self.assume_role(&base, role, &session, *session_duration)
                                .await
                        }
                    }
                }
            }
        })
    }
}

/// The SDK's credentials for a client signed with `creds`.
pub(crate) fn sdk_credentials(creds: &AwsCredentials) -> Credentials {
    Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_owned(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        creds.expires_at,
        "irsa",
    )
}

/// `DurationSeconds` for STS, saturating: a duration past `i32::MAX` seconds asks for the
/// longest session, which STS then refuses with a message naming the role's maximum.
fn duration_seconds(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn from_sts(c: &aws_sdk_sts::types::Credentials) -> AwsCredentials {
    AwsCredentials {
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: SecretString::from(c.secret_access_key()),
        session_token: Some(SecretString::from(c.session_token())),
        expires_at: SystemTime::try_from(*c.expiration()).ok(),
    }
}

fn web_identity_error(
    role: &RoleArn,
    token: &SecretString,
    source_desc: &str,
    failure: CallFailure,
) -> StsError {
    let claims = irsa_core::token::decode_unverified(token.expose())
        .ok()
        .map(|t| t.claims);
    let iss = claims
        .as_ref()
        .and_then(|c| c.iss.clone())
        .unwrap_or_else(|| "(token has no readable iss)".to_owned());
    match failure.code.as_deref() {
        _ if is_access_denied(&failure) => StsError::WebIdentityDenied {
            role: role.to_string(),
            sub: claims
                .as_ref()
                .and_then(|c| c.sub.clone())
                .unwrap_or_else(|| "(token has no readable sub)".to_owned()),
            aud: claims
                .as_ref()
                .map(|c| c.aud.join(","))
                .unwrap_or_else(|| "(token has no readable aud)".to_owned()),
            issuer: iss,
            message: failure.message,
        },
        Some("InvalidIdentityToken") => StsError::InvalidIdentityToken {
            role: role.to_string(),
            account: role.account.clone(),
            issuer: iss,
            message: failure.message,
        },
        Some("ExpiredTokenException" | "ExpiredToken") => StsError::ExpiredToken {
            role: role.to_string(),
            source_desc: source_desc.to_owned(),
            message: failure.message,
        },
        _ => StsError::Call {
            operation: "sts:AssumeRoleWithWebIdentity",
            role: role.to_string(),
            failure,
        },
    }
}

/// Turns an SDK send future into one whose error is a classified [`CallFailure`].
pub(crate) trait SdkSendExt<T> {
    fn map_ok_or_failure(self) -> BoxFuture<'static, Result<T, CallFailure>>;
}

impl<F, T, E> SdkSendExt<T> for F
where
    F: std::future::Future<
            Output = Result<
                T,
                aws_smithy_runtime_api::client::result::SdkError<
                    E,
                    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
                >,
            >,
        > + Send
        + 'static,
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    T: Send + 'static,
{
    fn map_ok_or_failure(self) -> BoxFuture<'static, Result<T, CallFailure>> {
        Box::pin(async move { self.await.map_err(|e| CallFailure::from_sdk(&e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_durations_saturate() {
        use std::time::Duration;
        assert_eq!(duration_seconds(Duration::from_secs(3600)), 3600);
        assert_eq!(duration_seconds(Duration::from_secs(1 << 31)), i32::MAX);
        assert_eq!(duration_seconds(Duration::MAX), i32::MAX);
    }

    #[test]
    fn the_session_duration_is_in_the_cache_key_only_when_set() {
        let role: RoleArn = "arn:aws:iam::123456789012:role/puller".parse().unwrap();
        let ambient = |chained_role: Option<RoleArn>, secs: Option<u64>| Identity::Ambient {
            chained_role,
            session_duration: secs.map(Duration::from_secs),
        };
        // Unset: the keys irsa always used (on-disk caches stay valid).
        assert_eq!(ambient(None, None).cache_key(), "ambient");
        assert_eq!(
            ambient(Some(role.clone()), None).cache_key(),
            format!("ambient|{role}")
        );
        assert_eq!(
            ambient(Some(role.clone()), Some(900)).cache_key(),
            format!("ambient|{role}\u{1e}duration=900")
        );
        assert_ne!(
            ambient(None, Some(900)).cache_key(),
            ambient(None, Some(901)).cache_key()
        );
        let web = |secs: Option<u64>| Identity::WebIdentity {
            role_arn: role.clone(),
            token_source: Arc::new(crate::StaticTokenSource::new(SecretString::from("t"), "x")),
            session_name: SessionName::derive("s"),
            session_duration: secs.map(Duration::from_secs),
        };
        assert_ne!(web(None).cache_key(), web(Some(3600)).cache_key());
        assert_eq!(
            web(Some(3600)).session_duration(),
            Some(Duration::from_secs(3600))
        );
    }

    fn settings(region: Option<&str>, choice: StsEndpointChoice) -> StsSettings {
        StsSettings {
            region: region.map(str::to_owned),
            choice,
            endpoint_url: None,
            variant: EndpointVariant::PLAIN,
            duration: None,
            retry: RetryPolicy::default(),
        }
    }

    fn target(s: StsSettings, role: &str) -> (String, String) {
        StsExchange::new(s, Env::from_pairs::<&str, &str>([]), None, None)
            .target(&role.parse().unwrap())
            .unwrap()
    }

    #[test]
    fn regional_endpoint_of_the_roles_partition() {
        let role = "arn:aws:iam::123456789012:role/r";
        assert_eq!(
            target(
                settings(Some("eu-west-1"), StsEndpointChoice::Regional),
                role
            ),
            (
                "eu-west-1".into(),
                "https://sts.eu-west-1.amazonaws.com".into()
            )
        );
        assert_eq!(
            target(settings(None, StsEndpointChoice::Regional), role).1,
            "https://sts.us-east-1.amazonaws.com"
        );
        assert_eq!(
            target(settings(Some("eu-west-1"), StsEndpointChoice::Global), role).1,
            "https://sts.amazonaws.com"
        );
        // A GovCloud role with a commercial region goes to GovCloud.
        let gov = "arn:aws-us-gov:iam::123456789012:role/r";
        assert_eq!(
            target(
                settings(Some("us-east-1"), StsEndpointChoice::Regional),
                gov
            ),
            (
                "us-gov-west-1".into(),
                "https://sts.us-gov-west-1.amazonaws.com".into()
            )
        );
        let cn = "arn:aws-cn:iam::123456789012:role/r";
        assert_eq!(
            target(
                settings(Some("cn-north-1"), StsEndpointChoice::Regional),
                cn
            )
            .1,
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        let mut vpce = settings(Some("eu-west-1"), StsEndpointChoice::Global);
        vpce.endpoint_url = Some("https://vpce-1.sts.eu-west-1.vpce.amazonaws.com".into());
        assert_eq!(
            target(vpce, role).1,
            "https://vpce-1.sts.eu-west-1.vpce.amazonaws.com"
        );
    }

    fn web_identity_token_target(s: StsSettings, role: Option<&str>) -> (String, String) {
        let role: Option<RoleArn> = role.map(|r| r.parse().unwrap());
        StsExchange::new(s, Env::from_pairs::<&str, &str>([]), None, None)
            .web_identity_token_target(role.as_ref())
            .unwrap()
    }

    #[test]
    fn web_identity_tokens_come_from_the_roles_partition() {
        let none = || settings(None, StsEndpointChoice::Regional);
        let gov = Some("arn:aws-us-gov:iam::123456789012:role/r");
        let cn = Some("arn:aws-cn:iam::123456789012:role/r");
        let aws = Some("arn:aws:iam::123456789012:role/r");
        // No region configured: the partition's default region, never us-east-1 outside `aws`.
        assert_eq!(
            web_identity_token_target(none(), gov),
            (
                "us-gov-west-1".into(),
                "https://sts.us-gov-west-1.amazonaws.com".into()
            )
        );
        assert_eq!(
            web_identity_token_target(none(), cn),
            (
                "cn-northwest-1".into(),
                "https://sts.cn-northwest-1.amazonaws.com.cn".into()
            )
        );
        assert_eq!(
            web_identity_token_target(none(), aws).1,
            "https://sts.us-east-1.amazonaws.com"
        );
        // Without a known role (bare ambient credentials): the configured region, else us-east-1.
        assert_eq!(
            web_identity_token_target(none(), None).1,
            "https://sts.us-east-1.amazonaws.com"
        );
        assert_eq!(
            web_identity_token_target(
                settings(Some("cn-north-1"), StsEndpointChoice::Regional),
                None
            )
            .1,
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        // A region of the role's partition is kept; one of another partition is not.
        assert_eq!(
            web_identity_token_target(
                settings(Some("cn-north-1"), StsEndpointChoice::Regional),
                cn
            ),
            (
                "cn-north-1".into(),
                "https://sts.cn-north-1.amazonaws.com.cn".into()
            )
        );
        assert_eq!(
            web_identity_token_target(
                settings(Some("us-east-1"), StsEndpointChoice::Regional),
                gov
            )
            .1,
            "https://sts.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            web_identity_token_target(settings(Some("eu-west-1"), StsEndpointChoice::Global), aws)
                .1,
            "https://sts.eu-west-1.amazonaws.com",
            "never the global endpoint"
        );
        // An explicit endpoint URL wins, signed for the partition's region.
        let mut vpce = none();
        vpce.endpoint_url = Some("https://vpce-1.sts.us-gov-west-1.vpce.amazonaws.com".into());
        assert_eq!(
            web_identity_token_target(vpce, gov),
            (
                "us-gov-west-1".into(),
                "https://vpce-1.sts.us-gov-west-1.vpce.amazonaws.com".into()
            )
        );
    }

    #[test]
    fn role_annotation_errors_name_the_service_account_and_annotation() {
        let mut ann = BTreeMap::new();
        let err = role_from_annotations("team", "puller", &ann).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("team/puller") && msg.contains(ROLE_ARN_ANNOTATION),
            "{msg}"
        );
        ann.insert(ROLE_ARN_ANNOTATION.to_owned(), "not-an-arn".to_owned());
        let msg = role_from_annotations("team", "puller", &ann)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid eks.amazonaws.com/role-arn"), "{msg}");
        ann.insert(
            ROLE_ARN_ANNOTATION.to_owned(),
            "arn:aws:iam::123456789012:role/puller".to_owned(),
        );
        assert_eq!(
            role_from_annotations("team", "puller", &ann).unwrap().name,
            "puller"
        );
        assert_eq!(
            session_name_for("team", "puller").as_str(),
            "irsa-team.puller"
        );
    }

    #[test]
    fn access_denied_names_sub_and_aud_but_not_the_token() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = SecretString::new(format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256"}"#),
            b64(
                r#"{"iss":"https://oidc.example","sub":"system:serviceaccount:team:puller","aud":["sts.amazonaws.com"],"exp":1}"#
            ),
            b64("signature-bytes")
        ));
        let role: RoleArn = "arn:aws:iam::123456789012:role/r".parse().unwrap();
        let denied = web_identity_error(
            &role,
            &token,
            "file /t",
            CallFailure::from_status(403, Some("AccessDenied".into()), "Not authorized"),
        );
        let msg = denied.to_string();
        assert!(msg.contains("system:serviceaccount:team:puller"), "{msg}");
        assert!(
            msg.contains("sts.amazonaws.com") && msg.contains("trust policy"),
            "{msg}"
        );
        assert!(!msg.contains(token.expose()), "{msg}");
        let invalid = web_identity_error(
            &role,
            &token,
            "file /t",
            CallFailure::from_status(
                400,
                Some("InvalidIdentityToken".into()),
                "No OpenIDConnect provider found",
            ),
        )
        .to_string();
        assert!(
            invalid.contains("IAM OIDC provider") && invalid.contains("JWKS"),
            "{invalid}"
        );
        assert!(invalid.contains("https://oidc.example/.well-known/openid-configuration"));
    }

    #[test]
    fn legacy_sends_only_the_legacy_regions_to_the_global_endpoint() {
        use StsEndpointChoice::{Global, Legacy};
        let role = "arn:aws:iam::123456789012:role/r";
        let global = (
            "us-east-1".to_owned(),
            "https://sts.amazonaws.com".to_owned(),
        );
        for region in [
            "us-east-1",
            "us-west-2",
            "eu-west-1",
            "eu-north-1",
            "ap-southeast-2",
            "sa-east-1",
            "ca-central-1",
        ] {
            assert_eq!(
                target(settings(Some(region), Legacy), role),
                global,
                "{region}"
            );
        }
        for region in [
            "eu-south-1",
            "ap-east-1",
            "me-south-1",
            "af-south-1",
            "il-central-1",
        ] {
            assert_eq!(
                target(settings(Some(region), Legacy), role),
                (
                    region.to_owned(),
                    format!("https://sts.{region}.amazonaws.com")
                ),
                "{region} is not a legacy region"
            );
        }
        // No region: the partition's default, us-east-1, a legacy region.
        assert_eq!(target(settings(None, Legacy), role), global);
        // FIPS and dual-stack have no global endpoint: regional, as in the SDKs.
        let mut fips = settings(Some("us-east-1"), Legacy);
        fips.variant = EndpointVariant {
            fips: true,
            dual_stack: false,
        };
        assert_eq!(
            target(fips, role).1,
            "https://sts-fips.us-east-1.amazonaws.com"
        );
        // Other partitions: regional.
        assert_eq!(
            target(
                settings(Some("us-gov-west-1"), Legacy),
                "arn:aws-us-gov:iam::123456789012:role/r"
            )
            .1,
            "https://sts.us-gov-west-1.amazonaws.com"
        );
        // The global endpoint is signed for us-east-1 (a chained AssumeRole is signed).
        assert_eq!(target(settings(Some("eu-west-1"), Global), role), global);
    }
}
