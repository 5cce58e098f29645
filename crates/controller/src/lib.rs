//! irsa's pull-secret controller: for each ClusterPullSecret and PullSecret, which secrets to
//! write, delete or leave alone, and which service accounts to patch ([`plan`]), and the
//! conditions to report ([`status`]). Pure foundations: the reconciler calls them.
#![warn(missing_docs)]

pub mod plan;
pub mod status;
