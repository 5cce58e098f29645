//! Amazon ECR private: `GetAuthorizationToken` in the registry's own region and partition, for
//! several accounts of that region in one call (`registryIds`).

use std::time::SystemTime;

use aws_sdk_ecr::config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use irsa_core::partition::{EndpointVariant, ecr_api_endpoint_in};
use irsa_core::registry::Registry;
use thiserror::Error;

use crate::credentials::{BoxFuture, RegistryCredential};
use crate::provider::{FetchContext, ProviderError, RegistryTarget, RegistryTokenProvider};
use crate::retry::{CallFailure, RetryPolicy, is_access_denied, with_retry};
use crate::sts::{SdkSendExt as _, sdk_credentials};

/// Why ECR gave no credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EcrError {
    /// The principal may not call `ecr:GetAuthorizationToken`.
    #[error(
        "ecr:GetAuthorizationToken in {region} (registries {accounts}) was denied for {principal} \
         ({message}): attach a permissions policy that allows \"ecr:GetAuthorizationToken\" on \
         resource \"*\" (and ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on the repositories) to \
         that role; `irsa policy ecr-pull` writes one"
    )]
    AccessDenied {
        /// Who asked.
        principal: String,
        /// The region.
        region: String,
        /// The registry ids, comma separated.
        accounts: String,
        /// ECR's message.
        message: String,
    },
    /// Any other failure of the call.
    #[error("ecr:GetAuthorizationToken in {region} for {principal} failed: {failure}")]
    Call {
        /// Who asked.
        principal: String,
        /// The region.
        region: String,
        /// What happened.
        failure: CallFailure,
    },
    /// The answer had no authorization data for a registry.
    #[error(
        "ecr:GetAuthorizationToken in {region} returned no authorization data for registry \
         {registry}; the endpoint is not Amazon ECR or is misbehaving"
    )]
    MissingAuthorization {
        /// The region.
        region: String,
        /// The registry host.
        registry: String,
    },
    /// The authorization token is not base64 of `user:password`.
    #[error("the ECR authorization token for {registry} is malformed: {reason}")]
    MalformedToken {
        /// The registry host.
        registry: String,
        /// Why (never the token).
        reason: String,
    },
    /// No endpoint for the registry's region.
    #[error("no ECR API endpoint for registry {registry}: {reason}")]
    Endpoint {
        /// The registry host.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A target that is not an ECR private registry was routed here.
    #[error("registry {registry} is not an Amazon ECR private registry")]
    NotEcr {
        /// The registry host.
        registry: String,
    },
}

pub use irsa_core::registry_token::decode_ecr_authorization_token as decode_authorization_token;

/// Converts an SDK timestamp.
pub(crate) fn system_time(t: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// The ECR private provider.
#[derive(Debug, Clone)]
pub struct EcrProvider {
    http_client: Option<SharedHttpClient>,
    endpoint_url: Option<String>,
    retry: RetryPolicy,
}

impl EcrProvider {
    /// A provider. `endpoint_url` overrides the regional endpoint (`AWS_ENDPOINT_URL_ECR`).
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
    ) -> Result<Vec<RegistryCredential>, EcrError> {
        let mut ecrs = Vec::with_capacity(targets.len());
        for t in targets {
            match &t.registry {
                Registry::Ecr(e) => ecrs.push(e),
                _ => {
                    return Err(EcrError::NotEcr {
                        registry: t.host.clone(),
                    });
                }
            }
        }
        let Some(first) = ecrs.first() else {
            return Ok(Vec::new());
        };
        let region = first.region.clone();
        let variant = EndpointVariant {
            fips: first.fips,
            dual_stack: first.dual_stack,
        };
        let url = match &self.endpoint_url {
            Some(url) => url.clone(),
            None => format!(
                "https://{}",
                ecr_api_endpoint_in(first.partition, &region, variant).map_err(|e| {
                    EcrError::Endpoint {
                        registry: targets[0].host.clone(),
                        reason: e.to_string(),
                    }
                })?
            ),
        };
        let mut accounts: Vec<String> = ecrs.iter().map(|e| e.account.clone()).collect();
        accounts.sort();
        accounts.dedup();

        let mut config = aws_sdk_ecr::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .endpoint_url(&url)
            .credentials_provider(sdk_credentials(&ctx.credentials))
            .retry_config(RetryConfig::disabled());
        if let Some(http) = &self.http_client {
            config = config.http_client(http.clone());
        }
        let client = aws_sdk_ecr::Client::from_conf(config.build());
        tracing::debug!(region = %region, endpoint = %crate::env::url_for_logs(&url), accounts = ?accounts, "getting ECR authorization token");
        let out = with_retry(&self.retry, "ecr:GetAuthorizationToken", || {
            // registryIds is deprecated (the token covers every registry the principal may use),
            // but it is how moto, and older ECR answers, name one entry per account.
            #[allow(deprecated)]
            client
                .get_authorization_token()
                .set_registry_ids(Some(accounts.clone()))
                .send()
                .map_ok_or_failure()
        })
        .await
        .map_err(|failure| {
            if is_access_denied(&failure) {
                EcrError::AccessDenied {
                    principal: ctx.principal.clone(),
                    region: region.clone(),
                    accounts: accounts.join(","),
                    message: failure.message,
                }
            } else {
                EcrError::Call {
                    principal: ctx.principal.clone(),
                    region: region.clone(),
                    failure,
                }
            }
        })?;
        let data = out.authorization_data();
        targets
            .iter()
            .zip(&ecrs)
            .map(|(target, ecr)| {
                let account_host = format!("{}.", ecr.account);
                // Real ECR answers with one token valid for every registry of the region; moto
                // (and older ECR) with one entry per registry id, told apart by proxyEndpoint.
                let entry = data
                    .iter()
                    .find(|d| {
                        d.proxy_endpoint().is_some_and(|p| {
                            p.trim_start_matches("https://")
                                .trim_start_matches("http://")
                                .starts_with(&account_host)
                        })
                    })
                    .or_else(|| (data.len() == 1).then(|| &data[0]))
                    .ok_or_else(|| EcrError::MissingAuthorization {
                        region: region.clone(),
                        registry: target.host.clone(),
                    })?;
                let token =
                    entry
                        .authorization_token()
                        .ok_or_else(|| EcrError::MissingAuthorization {
                            region: region.clone(),
                            registry: target.host.clone(),
                        })?;
                let (username, password) = decode_authorization_token(token).map_err(|reason| {
                    EcrError::MalformedToken {
                        registry: target.host.clone(),
                        reason,
                    }
                })?;
                Ok(RegistryCredential {
                    registry: target.host.clone(),
                    username,
                    password,
                    expires_at: system_time(entry.expires_at()),
                })
            })
            .collect()
    }
}

impl RegistryTokenProvider for EcrProvider {
    fn fetch<'a>(
        &'a self,
        ctx: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
        Box::pin(async move { Ok(self.fetch_group(ctx, targets).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn decodes_tokens_at_the_first_colon() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let (u, p) = decode_authorization_token(&enc("AWS:pass:with:colons")).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("AWS", "pass:with:colons"));
        for bad in [enc("nocolon"), enc(":p"), enc("u:"), "***".to_owned()] {
            let reason = decode_authorization_token(&bad).unwrap_err();
            assert!(!reason.contains("nocolon"), "{reason}");
        }
    }
}
