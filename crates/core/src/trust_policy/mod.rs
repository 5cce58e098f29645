//! IAM role trust policies: the model, an evaluator that decides as STS does for
//! `AssumeRoleWithWebIdentity`, explanations people can act on, and generators.
//!
//! ```
//! use irsa_core::trust_policy::{PolicyDocument, RequestContext, evaluate};
//!
//! let policy = PolicyDocument::parse(r#"{
//!   "Version": "2012-10-17",
//!   "Statement": [{
//!     "Effect": "Allow",
//!     "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC"},
//!     "Action": "sts:AssumeRoleWithWebIdentity",
//!     "Condition": {"StringEquals": {"oidc.example.com/id/ABC:sub": "system:serviceaccount:prod:app"}}
//!   }]
//! }"#).unwrap();
//! let claims = serde_json::json!({"sub": "system:serviceaccount:dev:app", "aud": "sts.amazonaws.com"});
//! let request = RequestContext::web_identity(
//!     "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC",
//!     "oidc.example.com/id/ABC",
//!     claims.as_object().unwrap(),
//! );
//! let decision = evaluate(&policy, &request);
//! assert!(!decision.allowed());
//! assert!(decision.to_string().contains(
//!     r#"expected "system:serviceaccount:prod:app", token has "system:serviceaccount:dev:app""#
//! ));
//! ```
//!
//! Decisions a reviewer should know (from the IAM User Guide):
//! - Element names, `Effect` values and operator names are case-sensitive; condition keys are
//!   not; values are, except for the `…IgnoreCase` operators. Actions match case-insensitively.
//! - Principal ARNs are compared exactly (case-sensitive, no wildcards); `"*"`, `{"AWS": "*"}`
//!   and `{"Federated": "*"}` match every caller.
//! - `:aud` comes from the token's `azp` claim when present, else from `aud`; `:oaud` then holds
//!   `aud`. Only `amr`, `aud`, `azp`, `email`, `oaud`, `sub` reach a trust policy.
//! - Policy variables (`${aws:username}`, `${key, 'default'}`, `${*}` `${?}` `${$}`) are
//!   substituted in string and ARN operators when `Version` is `2012-10-17`; substituted text
//!   is literal; a variable without a (single) value and without default matches nothing.
//! - Date, IP address and binary operators are refused at parse time instead of guessed.

mod condition;
mod document;
mod eval;
mod generate;
mod model;

pub use condition::{ConditionOperator, OperatorKind, SetQualifier};
pub use document::{DocumentError, decode_policy_document, same_document};
pub use eval::{
    ASSUME_ROLE_WITH_WEB_IDENTITY, ConditionFailure, Decision, Mismatch, OIDC_CLAIM_KEYS, Outcome,
    Reason, RequestContext, evaluate,
};
pub use generate::{
    ARGOCD_PROJECT_SERVICE_ACCOUNT_PREFIX, ECR_PULL_ACTIONS, ECR_PULL_REQUIRED_ACTIONS,
    argocd_project_service_account, ecr_pull_policy, service_account_trust_policy,
};
pub use model::{
    ActionMatch, Condition, Effect, MAX_POLICY_BYTES, PolicyDocument, PolicyError, PrincipalMatch,
    Principals, Statement,
};
