//! irsa's Kubernetes API: the `irsa.dev/v1alpha1` custom resources [`ClusterPullSecret`] and
//! [`PullSecret`], their validation ([`validation`]) and their CustomResourceDefinitions
//! ([`crds()`], committed as `deploy/crds.yaml`), service-account tokens from the TokenRequest
//! API ([`KubeTokenRequester`]), and the manifests that install irsa ([`manifests_yaml`],
//! committed as `deploy/install.yaml`).
//!
//! The types are plain data with no client attached: the controller reads them from the API
//! server, calls [`ClusterPullSecret::validate`] / [`PullSecret::validate`] and plans from the
//! result.
#![warn(missing_docs)]

pub mod crds;
pub mod install;
pub mod resources;
pub mod token_request;
pub mod validation;

pub use crds::{crds, crds_yaml};
pub use install::{
    InstallError, InstallOptions, LogFormat, Part, WebhookCerts, kustomize_files, manifests,
    manifests_yaml,
};
pub use resources::{
    AmbientIdentity, ChainguardMethod, ChainguardSpec, ClusterPullSecret, ClusterPullSecretSpec,
    DEFAULT_REFRESH, DeletionPolicy, GROUP, IdentitySpec, NamespaceSelection, PullSecret,
    PullSecretSpec, PullSecretStatus, RegistrySpec, SecretSpec, ServiceAccountRef, TargetCounts,
    TargetProblem, VERSION,
};
pub use token_request::KubeTokenRequester;
pub use validation::{Validated, ValidationError, ValidationErrors};
