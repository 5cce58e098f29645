//! irsa's pure domain logic: no I/O, no Kubernetes client, no AWS SDK.
//!
//! Every component of irsa (controller, webhook, credential provider, doctor) stands on these
//! modules: recognising registries ([`registry`], [`partition`]), reading ARNs ([`arn`]) and
//! web-identity tokens ([`token`]), deciding what an IAM trust policy allows ([`trust_policy`]),
//! when credentials are refreshed and retried ([`refresh`], [`lifetime`]),
//! writing docker config ([`docker_config`]), and reading back what irsa wrote into tenant-editable
//! objects ([`seal`], [`pull_secret_record`]). Every token and password is held in a
//! [`secret::SecretString`], which never prints its value.
#![warn(missing_docs)]

pub mod argocd;
pub mod arn;
pub mod aws_xml;
pub mod cache_entry;
pub mod chainguard;
pub mod docker_config;
pub mod iam_simulation;
pub mod lifetime;
pub mod names;
pub mod partition;
pub mod permission_policy;
pub mod pull_secret_record;
pub mod refresh;
pub mod registry;
pub mod registry_token;
pub mod seal;
pub mod secret;
pub mod time;
pub mod token;
pub mod token_request;
pub mod trust_policy;
