//! The sandbox: one process that plays the cluster and the cloud, faithfully enough that real
//! clients (kube-rs, the Python `kubernetes` client, kubectl, aws-sdk-rust, boto3, skopeo) work
//! against it unchanged, and strictly enough that a wrong token, trust policy or signature fails
//! exactly as it would in AWS.
//!
//! - [`apiserver`]: a Kubernetes API server (discovery, CRUD, patches, server-side apply, watch,
//!   CRDs, TokenRequest, OIDC discovery).
//! - [`cloud`]: the OIDC issuer's keys, IAM (roles, OIDC providers), STS, ECR, ECR Public,
//!   Chainguard and the registry token service.
//! - [`metrics`]: request counters by service, action and outcome.
//! - [`stack`]: all of it in one process, with a kubeconfig and an env file: `irsa sandbox`.
#![warn(missing_docs)]

pub mod apiserver;
pub mod cloud;
pub mod metrics;
pub mod stack;
pub mod token_issuer;

pub use cloud::{Cloud, CloudConfig};
