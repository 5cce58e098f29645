//! irsa's pull-secret controller. Pure foundations: [`plan`] decides which secrets to write,
//! delete or leave alone and which service accounts to patch, [`status`] the conditions to
//! report, [`index`] holds the watched cluster. The async shell: [`reconcile`] fetches
//! credentials and applies plans, [`runtime`] runs the watches, the controllers, leader
//! election ([`lease`]) and the admin server.
#![warn(missing_docs)]

pub mod credentials;
pub mod health;
pub mod index;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod ratelimit;
pub mod reconcile;
pub mod runtime;
pub mod status;

pub use runtime::{Controller, ControllerOptions, Handle, RunError};
