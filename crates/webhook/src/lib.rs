//! irsa's pod identity webhook, a drop-in for aws/amazon-eks-pod-identity-webhook: the same
//! annotations, flags, ConfigMap and container-credentials file, the same resulting pods.
//!
//! - [`config`]: the flags and upstream's constants;
//! - [`identity`]: what is known about a pod's service account and how the sources merge;
//! - [`mutate`]: the pure mutation, `mutate(&pod, &ServiceAccountInfo, &Config) -> Result<Vec<PatchOp>, Oversized>`;
//! - [`review`]: AdmissionReview `admission.k8s.io/v1` in and out;
//! - [`cache`]: the service-account index fed by a metadata-only watch;
//! - [`admission`]: one request end to end, failing open;
//! - [`certs`]: a CA and serving certificate for the Service;
//! - [`provision`]: `irsa webhook certs`, the certificate in its Secret and the `caBundle`;
//! - [`server`]: HTTPS with certificate reload, `/healthz`, `/readyz`, `/metrics`;
//! - [`run`]: the watches, the container-credentials file and the API-server fallback.

pub mod admission;
pub mod cache;
#[cfg(feature = "certs")]
pub mod certs;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod mutate;
#[cfg(feature = "server")]
pub mod provision;
pub mod review;
#[cfg(feature = "server")]
pub mod run;
#[cfg(feature = "server")]
pub mod server;

pub use config::{Config, ContainerCredentialsConfig};
pub use identity::{ConfigMapEntry, ServiceAccountInfo};
pub use mutate::{Oversized, PatchOp, mutate, mutate_with_jitter};
