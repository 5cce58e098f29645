//! Amazon ECR Public: `ecr-public:GetAuthorizationToken`, always in us-east-1.

use aws_sdk_ecrpublic::config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use thiserror::Error;

use crate::credentials::{BoxFuture, RegistryCredential};
use crate::ecr::{decode_authorization_token, system_time};
use crate::provider::{FetchContext, ProviderError, RegistryTarget, RegistryTokenProvider};
use crate::retry::{CallFailure, RetryPolicy, is_access_denied, with_retry};
use crate::sts::{SdkSendExt as _, sdk_credentials};

/// The only region ECR Public issues tokens in.
pub const ECR_PUBLIC_REGION: &str = "us-east-1";

/// Why ECR Public gave no credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EcrPublicError {
    /// The principal may not get an ECR Public token.
    #[error(
        "ecr-public:GetAuthorizationToken was denied for {principal} ({message}): attach a \
         permissions policy that allows \"ecr-public:GetAuthorizationToken\" and \
         \"sts:GetServiceBearerToken\" on resource \"*\" to that role"
    )]
    AccessDenied {
        /// Who asked.
        principal: String,
        /// ECR Public's message.
        message: String,
    },
    /// Any other failure of the call.
    #[error("ecr-public:GetAuthorizationToken (us-east-1) for {principal} failed: {failure}")]
    Call {
        /// Who asked.
        principal: String,
        /// What happened.
        failure: CallFailure,
    },
    /// The answer had no token.
    #[error(
        "ecr-public:GetAuthorizationToken returned no authorization data; the endpoint is not \
         Amazon ECR Public or is misbehaving"
    )]
    MissingAuthorization,
    /// The token is not base64 of `user:password`.
    #[error("the ECR Public authorization token is malformed: {reason}")]
    MalformedToken {
        /// Why (never the token).
        reason: String,
    },
}

/// The ECR Public provider.
#[derive(Debug, Clone)]
pub struct EcrPublicProvider {
    http_client: Option<SharedHttpClient>,
    endpoint_url: Option<String>,
    retry: RetryPolicy,
}

impl EcrPublicProvider {
    /// A provider. `endpoint_url` overrides the endpoint (`AWS_ENDPOINT_URL_ECR_PUBLIC`).
    pub fn new(
        http_client: Option<SharedHttpClient>,
        endpoint_url: Option<String>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            http_client,
            endpoint_url,
            retry,
        }
    }

    async fn fetch_group(
        &self,
        ctx: &FetchContext,
        targets: &[RegistryTarget],
    ) -> Result<Vec<RegistryCredential>, EcrPublicError> {
        let mut config = aws_sdk_ecrpublic::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(ECR_PUBLIC_REGION))
            .credentials_provider(sdk_credentials(&ctx.credentials))
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &self.endpoint_url {
            config = config.endpoint_url(url);
        }
        if let Some(http) = &self.http_client {
            config = config.http_client(http.clone());
        }
        let client = aws_sdk_ecrpublic::Client::from_conf(config.build());
        tracing::debug!("getting ECR Public authorization token");
        let out = with_retry(&self.retry, "ecr-public:GetAuthorizationToken", || {
            client.get_authorization_token().send().map_ok_or_failure()
        })
        .await
        .map_err(|failure| {
            if is_access_denied(&failure) {
                EcrPublicError::AccessDenied {
                    principal: ctx.principal.clone(),
                    message: failure.message,
                }
            } else {
                EcrPublicError::Call {
                    principal: ctx.principal.clone(),
                    failure,
                }
            }
        })?;
        let data = out
            .authorization_data()
            .ok_or(EcrPublicError::MissingAuthorization)?;
        let token = data
            .authorization_token()
            .ok_or(EcrPublicError::MissingAuthorization)?;
        let (username, password) = decode_authorization_token(token)
            .map_err(|reason| EcrPublicError::MalformedToken { reason })?;
        let expires_at = system_time(data.expires_at());
        Ok(targets
            .iter()
            .map(|t| RegistryCredential {
                registry: t.host.clone(),
                username: username.clone(),
                password: password.clone(),
                expires_at,
            })
            .collect())
    }
}

impl RegistryTokenProvider for EcrPublicProvider {
    fn fetch<'a>(
        &'a self,
        ctx: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
        Box::pin(async move { Ok(self.fetch_group(ctx, targets).await?) })
    }
}
