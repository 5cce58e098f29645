//! The Kubernetes TokenRequest API as a trait, and why a token could not be obtained: the
//! seam between the AWS side (which needs web-identity tokens) and the Kubernetes client (which
//! mints them), kept here so that neither crate has to depend on the other.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;

use crate::secret::SecretString;

/// A boxed, sendable future: the return type of object-safe async traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a token could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenSourceError {
    /// The token file could not be read.
    #[error(
        "failed to read the web-identity token file {path}: {reason}; check the projected \
         service-account token volume (and AWS_WEB_IDENTITY_TOKEN_FILE)"
    )]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The token file was empty.
    #[error(
        "the web-identity token file {path} is empty; the kubelet has not written the projected \
         token yet, or the volume is not a service-account token projection"
    )]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The service account named by the TokenRequest does not exist.
    #[error(
        "service account {namespace}/{service_account} does not exist: create it with \
         `kubectl create serviceaccount -n {namespace} {service_account}` (and annotate it with \
         the IAM role), or point irsa at an existing one"
    )]
    ServiceAccountNotFound {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        service_account: String,
    },
    /// The API server refused the TokenRequest for lack of permission.
    #[error(
        "not allowed to request a token for service account {namespace}/{service_account}: \
         {reason}; irsa's ClusterRole needs `create` on `serviceaccounts/token` (see the RBAC \
         printed by `irsa install`)"
    )]
    Forbidden {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        service_account: String,
        /// The API server's message.
        reason: String,
    },
    /// The TokenRequest API refused or failed.
    #[error(
        "failed to request a token for service account {namespace}/{service_account}: {reason}"
    )]
    TokenRequest {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        service_account: String,
        /// What went wrong (never the token).
        reason: String,
    },
}

/// The Kubernetes TokenRequest API (`POST …/serviceaccounts/<name>/token`), implemented by the
/// Kubernetes client crate.
pub trait TokenRequester: Send + Sync {
    /// Requests a token for `namespace/service_account` with the given audiences and lifetime.
    fn request_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        audiences: &'a [String],
        expiration: Duration,
    ) -> BoxFuture<'a, Result<SecretString, TokenSourceError>>;
}
