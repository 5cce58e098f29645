//! irsa's pure domain logic: no I/O, no Kubernetes client, no AWS SDK.
//!
//! Every component of irsa (controller, webhook, credential provider, doctor) stands on these
//! modules: recognising registries ([`registry`], [`partition`]), reading ARNs ([`arn`]) and
//! web-identity tokens ([`token`]), deciding what an IAM trust policy allows ([`trust_policy`]),
//! and writing docker config ([`docker_config`]). Every token and password is held in a
//! [`secret::SecretString`], which never prints its value.
#![warn(missing_docs)]

pub mod arn;
pub mod docker_config;
pub mod partition;
pub mod registry;
pub mod secret;
pub mod time;
pub mod token;
pub mod trust_policy;
