//! irsa's pull-secret controller. Pure foundations: [`plan`] decides which secrets to write,
//! delete or leave alone and which service accounts to patch, [`status`] the conditions to
//! report, [`index`] holds the watched cluster. The async shell: [`reconcile`] fetches
//! credentials and applies plans, [`runtime`] runs the watches, the controllers, leader
//! election ([`lease`]) and the admin server.
#![warn(missing_docs)]

pub mod affects;
pub mod argocd;
pub mod credentials;
#[cfg(test)]
mod fixtures;
pub mod health;
pub mod index;
pub mod labels;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod provenance;
pub mod ratelimit;
pub mod reconcile;
pub mod runtime;
pub mod status;
pub mod writer;

/// Annotation keys, labels and the STS audience shared with the other crates (one home).
pub use irsa_core::names;
pub use runtime::{Controller, ControllerOptions, Handle, RunError};
