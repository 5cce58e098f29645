//! irsa's credential pipeline: a web-identity token is exchanged at STS for temporary AWS
//! credentials, and those at a registry (ECR, ECR Public, Chainguard) for a pull password.
//!
//! - [`token_source`]: where the service-account token comes from (projected file, TokenRequest).
//! - [`sts`]: `AssumeRoleWithWebIdentity`, the ambient chain and chained `AssumeRole`.
//! - [`ecr`], [`ecr_public`], [`chainguard`]: registry token providers.
//! - [`cache`]: the credential cache with single-flight; [`retry`]: timeouts and backoff.
#![warn(missing_docs)]

pub mod cache;
pub mod chainguard;
pub mod credentials;
pub mod ecr;
pub mod ecr_public;
pub mod retry;
pub mod sts;
pub mod token_source;

pub use credentials::{AwsCredentials, BoxFuture, RegistryCredential};
