//! Service-account tokens from the Kubernetes TokenRequest API
//! (`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`), the
//! [`TokenRequester`] behind irsa-aws's `TokenRequestSource`.
//!
//! The controller uses it to act as a user's service account without mounting its token: the
//! API server signs a short-lived token for the requested audience (`sts.amazonaws.com`), which
//! STS then exchanges for the role in the account's `eks.amazonaws.com/role-arn` annotation.

use std::fmt;
use std::time::Duration;

use irsa_core::secret::SecretString;
use irsa_core::token_request::{BoxFuture, TokenRequester, TokenSourceError};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// Requests service-account tokens from the API server with a [`kube::Client`].
///
/// Needs `create` on `serviceaccounts/token` in the service account's namespace. `Debug` and
/// every error leave the token out.
#[derive(Clone)]
pub struct KubeTokenRequester {
    client: kube::Client,
}

impl KubeTokenRequester {
    /// A requester that talks to the API server behind `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl fmt::Debug for KubeTokenRequester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeTokenRequester").finish_non_exhaustive()
    }
}

impl TokenRequester for KubeTokenRequester {
    fn request_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        audiences: &'a [String],
        expiration: Duration,
    ) -> BoxFuture<'a, Result<SecretString, TokenSourceError>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            let request = token_request(audiences, expiration);
            let response = api
                .create_token_request(service_account, &PostParams::default(), &request)
                .await
                .map_err(|e| map_error(namespace, service_account, &e))?;
            let token = response
                .status
                .and_then(|s| s.token)
                .map(SecretString::new)
                .filter(|t| !t.expose().is_empty());
            token.ok_or_else(|| TokenSourceError::TokenRequest {
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
                reason: "the API server answered without a token".to_owned(),
            })
        })
    }
}

/// The request body: empty `audiences` leaves the API server's default (its own issuer).
fn token_request(audiences: &[String], expiration: Duration) -> TokenRequest {
    TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            expiration_seconds: Some(i64::try_from(expiration.as_secs()).unwrap_or(i64::MAX)),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    }
}

/// Maps a failed request to the error a user can act on. The request carries no token and a
/// failed response has none, so the text is safe to show.
fn map_error(namespace: &str, service_account: &str, error: &kube::Error) -> TokenSourceError {
    let (namespace, service_account) = (namespace.to_owned(), service_account.to_owned());
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            TokenSourceError::ServiceAccountNotFound {
                namespace,
                service_account,
            }
        }
        kube::Error::Api(status) if status.code == 403 => TokenSourceError::Forbidden {
            namespace,
            service_account,
            reason: status.message.clone(),
        },
        kube::Error::Api(status) => TokenSourceError::TokenRequest {
            namespace,
            service_account,
            reason: format!(
                "the API server answered {} {}: {}",
                status.code, status.reason, status.message
            ),
        },
        // The response could not be read: say so without echoing the body.
        kube::Error::SerdeError(_) => TokenSourceError::TokenRequest {
            namespace,
            service_account,
            reason: "the API server's answer is not a TokenRequest".to_owned(),
        },
        other => TokenSourceError::TokenRequest {
            namespace,
            service_account,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_audiences_and_lifetime() {
        let r = token_request(&["sts.amazonaws.com".to_owned()], Duration::from_secs(900));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "metadata": {},
                "spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 900},
            })
        );
    }
}
