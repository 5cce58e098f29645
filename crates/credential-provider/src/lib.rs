//! irsa's kubelet image credential provider, run as `irsa credential-provider`: the kubelet
//! writes a `CredentialProviderRequest` to its stdin for every image it pulls from a matching
//! registry, and reads the registry credential from its stdout.
//!
//! - [`protocol`]: the wire types of `credentialprovider.kubelet.k8s.io/v1`.
//! - [`plan`]: the pure decision — the registry, whose identity (the pod's service-account
//!   role from KEP-4412's token and annotations, or the node's credentials) and, for cgr.dev,
//!   which Chainguard identity.
//! - [`run`]: the effects — STS, ECR, ECR Public, Chainguard through `irsa-aws`, and the
//!   on-disk cache that lets 50 processes started at once make one exchange.
//! - [`config`]: the kubelet `CredentialProviderConfig` that runs it, held to the kubelet's
//!   own validation rules.
//! - [`explain`]: what the provider would do for an image, for people.
#![warn(missing_docs)]

pub mod config;
pub mod explain;
pub mod plan;
pub mod protocol;
#[cfg(feature = "aws")]
pub mod run;

pub use plan::{DEFAULT_ROLE_ANNOTATIONS, Fallback, Plan, PlanError, Policy};
pub use protocol::{ProtocolError, Request, Response, decode_request};
#[cfg(feature = "aws")]
pub use run::{Options, ProviderError, respond};
