//! irsa's credential pipeline: a web-identity token is exchanged at STS for temporary AWS
//! credentials, and those at a registry (ECR, ECR Public, Chainguard) for a pull password.
//!
//! - [`pipeline`]: the facade, [`Pipeline::registry_credentials`].
//! - [`token_source`]: where the service-account token comes from (projected file, TokenRequest).
//! - [`sts`]: `AssumeRoleWithWebIdentity`, the ambient chain and chained `AssumeRole`.
//! - [`provider`], [`ecr`], [`ecr_public`], [`chainguard`]: registry token providers.
//! - [`cache`]: the credential cache; [`flight`]: its single-flight slots and [`last_good`]:
//!   its refresh and backoff policy (both the controller's store's too); [`retry`]: timeouts
//!   and backoff of single requests.
//! - [`iam`]: a typed IAM client (OIDC providers, roles, policies) for `irsa iam` and doctor.
//! - [`disk_cache`]: the on-disk cache of short-lived processes, with a lock across processes.
#![warn(missing_docs)]

pub mod cache;
pub mod chainguard;
pub mod clock;
pub mod credentials;
pub mod disk_cache;
pub mod ecr;
pub mod ecr_public;
pub mod env;
pub mod flight;
pub mod iam;
pub mod last_good;
pub mod pipeline;
pub mod provider;
mod query;
pub mod retry;
pub mod sts;
pub mod token_source;

pub use cache::{CacheOptions, CacheStats};
pub use chainguard::ChainguardMethod;
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{AwsCredentials, BoxFuture, RegistryCredential};
pub use disk_cache::DiskCache;
pub use env::Env;
pub use pipeline::{ConfigError, Pipeline, PipelineError, PipelineOptions, Providers};
pub use provider::{RegistryTarget, RegistryTokenProvider, TargetError};
pub use retry::RetryPolicy;
pub use sts::{Identity, StsEndpointChoice, StsError};
pub use token_source::{
    FileTokenSource, StaticTokenSource, TokenRequestSource, TokenRequester, TokenSource,
    TokenSourceError,
};
