//! The real calls a workload makes — `AssumeRoleWithWebIdentity` with the TokenRequest token,
//! then `GetAuthorizationToken` with the session — through irsa-aws's pipeline, the code the
//! controller and `irsa login` run. When AWS refuses, its error code is mapped to the link
//! that explains it. Neither the session nor the registry password is ever shown.

use crate::shell::sh;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use irsa_aws::pipeline::PipelineError;
use irsa_aws::provider::ProviderError;
use irsa_aws::{
    AwsCredentials, Identity, Pipeline, PipelineOptions, RegistryTarget, StaticTokenSource,
    StsError,
};
use irsa_core::arn::RoleArn;
use irsa_core::partition::{EndpointVariant, ecr_registry_host};
use irsa_core::secret::SecretString;
use serde_json::json;

use super::report::{Check, Fix, Group};

/// The AWS calls doctor makes with the caller's environment.
pub(crate) struct Exchange {
    pipeline: Result<Pipeline, String>,
    region: Option<String>,
}

impl Exchange {
    pub(crate) async fn new() -> Self {
        let env = irsa_aws::Env::Process;
        Self {
            region: env.region(),
            pipeline: Pipeline::new(PipelineOptions::default())
                .await
                .map_err(|e| e.to_string()),
        }
    }

    fn identity(role: &RoleArn, namespace: &str, name: &str, token: SecretString) -> Identity {
        Identity::WebIdentity {
            role_arn: role.clone(),
            token_source: Arc::new(StaticTokenSource::new(
                token,
                format!("the TokenRequest token of {namespace}/{name}"),
            )),
            session_name: irsa_aws::sts::session_name_for(namespace, name),
            session_duration: None,
        }
    }

    /// `sts:AssumeRoleWithWebIdentity`, as the workload would call it.
    pub(crate) async fn assume_role(
        &self,
        role: &RoleArn,
        namespace: &str,
        name: &str,
        token: SecretString,
    ) -> (Check, Option<Identity>) {
        const ID: &str = "assume-role";
        let pipeline = match &self.pipeline {
            Ok(p) => p,
            Err(e) => {
                return (
                    Check::error(
                        ID,
                        Group::Exchange,
                        format!("cannot set up the AWS clients: {e}"),
                    ),
                    None,
                );
            }
        };
        let identity = Self::identity(role, namespace, name, token);
        match pipeline.aws_credentials(&identity).await {
            Ok(creds) => (
                Check::pass(
                    ID,
                    Group::Exchange,
                    format!("STS issued a session for {role}"),
                )
                .details(session_lines(&creds)),
                Some(identity),
            ),
            Err(e) => (sts_failure(&e, role), None),
        }
    }

    /// `ecr:GetAuthorizationToken` with the session, for `registry` or the role's own account.
    pub(crate) async fn ecr(
        &self,
        role: &RoleArn,
        identity: &Identity,
        registry: Option<RegistryTarget>,
    ) -> Check {
        const ID: &str = "ecr";
        let Ok(pipeline) = &self.pipeline else {
            return Check::error(ID, Group::Exchange, "no AWS clients");
        };
        let target = match registry {
            Some(t) => t,
            None => {
                let region = self
                    .region
                    .clone()
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let host = match ecr_registry_host(&role.account, &region, EndpointVariant::PLAIN) {
                    Ok(h) => h,
                    Err(e) => {
                        return Check::error(
                            ID,
                            Group::Exchange,
                            format!(
                                "no ECR registry for account {} in {region}: {e}; pass --registry",
                                role.account
                            ),
                        );
                    }
                };
                match RegistryTarget::parse(&host, None) {
                    Ok(t) => t,
                    Err(e) => return Check::error(ID, Group::Exchange, e.to_string()),
                }
            }
        };
        match pipeline.fresh_registry_credentials(identity, std::slice::from_ref(&target)).await {
            Ok(creds) => {
                let expires = creds
                    .first()
                    .and_then(|c| c.expires_at)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| irsa_core::time::rfc3339(d.as_secs() as i64));
                let mut check = Check::pass(
                    ID,
                    Group::Exchange,
                    format!("{} gave a pull password (not shown)", target.host),
                )
                .data("registry", json!(target.host));
                if let Some(e) = expires {
                    check = check.detail(format!("expires {e}"));
                }
                check
            }
            Err(PipelineError::Provider(ProviderError::Ecr(e @ irsa_aws::ecr::EcrError::AccessDenied { .. }))) => {
                Check::fail(ID, Group::Exchange, format!("ECR answered AccessDenied: {e}"))
                    .detail("the link that explains it: permissions (the role's policies, a permissions boundary or an organization SCP)")
                    .fix(pull_fix(role))
            }
            Err(e) => Check::error(ID, Group::Exchange, e.to_string()),
        }
    }
}

fn session_lines(creds: &AwsCredentials) -> Vec<String> {
    let mut lines = vec![format!(
        "access key {}… (secret and session token not shown)",
        creds.access_key_id.chars().take(4).collect::<String>()
    )];
    if let Some(exp) = creds
        .expires_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    {
        lines.push(format!(
            "expires {}",
            irsa_core::time::rfc3339(exp.as_secs() as i64)
        ));
    }
    lines
}

/// The permissions fix: `irsa policy ecr-pull`, put as an inline policy.
pub(crate) fn pull_fix(role: &RoleArn) -> Fix {
    Fix::new(format!("give role {} the ECR pull permissions (ecr:GetAuthorizationToken on \"*\", the pull actions on the repositories)", role.name))
        .command(format!(
            "irsa policy ecr-pull --repository {} > pull.json",
            sh(&format!("arn:{}:ecr:REGION:{}:repository/*", role.partition, role.account))
        ))
        .command(format!(
            "aws iam put-role-policy --role-name {} --policy-name irsa-ecr-pull --policy-document file://pull.json",
            sh(&role.name)
        ))
}

/// STS's refusal, mapped to the link that explains it.
fn sts_failure(e: &PipelineError, role: &RoleArn) -> Check {
    const ID: &str = "assume-role";
    let (summary, link) = match e {
        PipelineError::Sts(StsError::WebIdentityDenied { message, .. }) => (
            format!("STS answered AccessDenied ({message})"),
            "trust-policy: the role's trust policy does not allow this token (doctor's own reading allowed it: look for a second condition key, a session-tag or source-identity requirement, or a role changed since it was read)",
        ),
        PipelineError::Sts(StsError::InvalidIdentityToken { message, .. }) => (
            format!("STS answered InvalidIdentityToken ({message})"),
            "oidc-provider or jwks: AWS found no IAM OIDC provider for the token's issuer, the audience is not among its client IDs, or AWS could not fetch the JWKS from the issuer's jwks_uri (it must be reachable from the internet, over HTTPS)",
        ),
        PipelineError::Sts(StsError::ExpiredToken { message, .. }) => (
            format!("STS answered ExpiredToken ({message})"),
            "token: the token expired before STS saw it (check this machine's and the API server's clocks)",
        ),
        other => (
            other.to_string(),
            "the STS endpoint (network, region, AWS_ENDPOINT_URL)",
        ),
    };
    Check::fail(ID, Group::Exchange, summary)
        .detail(format!("the link that explains it: {link}"))
        .data("role_arn", json!(role.to_string()))
}
