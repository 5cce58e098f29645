//! Registry targets and the one trait every registry token provider implements.

use std::fmt;

use irsa_core::arn::RoleArn;
use irsa_core::registry::{self, Registry};
use thiserror::Error;

use crate::chainguard::{ChainguardError, ChainguardMethod};
use crate::credentials::{AwsCredentials, BoxFuture, RegistryCredential};
use crate::ecr::EcrError;
use crate::ecr_public::EcrPublicError;

/// A registry irsa is asked to mint a credential for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryTarget {
    /// The registry host as the client will use it (with port, if given), e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub host: String,
    /// What kind of registry it is.
    pub registry: Registry,
    /// For Chainguard: the id of the assumable identity to exchange the AWS identity for.
    pub chainguard_identity: Option<String>,
    /// For Chainguard: how the AWS identity is proven (ignored for other registries).
    pub chainguard_method: ChainguardMethod,
}

/// Why a registry target was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// The image reference or host does not parse.
    #[error("invalid registry or image {input:?}: {source}")]
    Parse {
        /// The input.
        input: String,
        /// Why.
        source: registry::RegistryError,
    },
    /// irsa cannot mint credentials for the registry.
    #[error(
        "irsa cannot mint credentials for registry {host}: it is not Amazon ECR, ECR Public or \
         Chainguard (cgr.dev), so it does not accept AWS identities; use that registry's own \
         credentials (for an ECR host, check the spelling: <account>.dkr.ecr.<region>.amazonaws.com)"
    )]
    Unsupported {
        /// The host.
        host: String,
    },
    /// A Chainguard registry without an identity id.
    #[error(
        "registry {host} is Chainguard's: give the id of a Chainguard assumable identity that \
         trusts this AWS role (created with `chainctl iam identities create … --aws-account … \
         --aws-user-id …`), e.g. --chainguard-identity <group id>/<identity id>"
    )]
    MissingChainguardIdentity {
        /// The host.
        host: String,
    },
}

impl RegistryTarget {
    /// Parses an image reference or a registry host. `chainguard_identity` is required for
    /// Chainguard hosts and ignored for others.
    pub fn parse(
        image_or_host: &str,
        chainguard_identity: Option<&str>,
    ) -> Result<Self, TargetError> {
        let image = registry::parse(image_or_host).map_err(|source| TargetError::Parse {
            input: image_or_host.to_owned(),
            source,
        })?;
        let chainguard_identity = match image.registry {
            Registry::Other => return Err(TargetError::Unsupported { host: image.host }),
            Registry::Chainguard => Some(
                chainguard_identity
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| TargetError::MissingChainguardIdentity {
                        host: image.host.clone(),
                    })?
                    .to_owned(),
            ),
            _ => None,
        };
        Ok(Self {
            host: image.host,
            registry: image.registry,
            chainguard_identity,
            chainguard_method: ChainguardMethod::default(),
        })
    }

    /// The same target, proving the AWS identity to Chainguard by `method`.
    pub fn with_chainguard_method(mut self, method: ChainguardMethod) -> Self {
        self.chainguard_method = method;
        self
    }

    /// The key of the group this target is fetched with: targets in one group share one
    /// upstream call (ECR: one `GetAuthorizationToken` per partition, region and endpoint
    /// variant; ECR Public: one; Chainguard: one per identity).
    pub fn group_key(&self) -> String {
        let mut key = String::with_capacity(48);
        self.write_group_key(&mut key);
        key
    }

    /// Appends [`RegistryTarget::group_key`] to `out` (no allocation of its own).
    pub fn write_group_key(&self, out: &mut String) {
        match &self.registry {
            Registry::Ecr(e) => {
                out.push_str("ecr|");
                out.push_str(e.partition.id());
                out.push('|');
                out.push_str(&e.region);
                out.push_str(if e.fips { "|true" } else { "|false" });
                out.push_str(if e.dual_stack { "|true" } else { "|false" });
            }
            Registry::EcrPublic => out.push_str("ecr-public"),
            Registry::Chainguard => {
                out.push_str("chainguard|");
                out.push_str(self.chainguard_method.as_str());
                out.push('|');
                out.push_str(self.chainguard_identity.as_deref().unwrap_or_default());
            }
            Registry::Other => out.push_str("other"),
        }
    }

    /// Whether two targets are fetched with one upstream call ([`RegistryTarget::group_key`]).
    pub fn same_group(&self, other: &RegistryTarget) -> bool {
        match (&self.registry, &other.registry) {
            (Registry::Ecr(a), Registry::Ecr(b)) => {
                a.partition == b.partition
                    && a.region == b.region
                    && a.fips == b.fips
                    && a.dual_stack == b.dual_stack
            }
            (Registry::EcrPublic, Registry::EcrPublic) | (Registry::Other, Registry::Other) => true,
            (Registry::Chainguard, Registry::Chainguard) => {
                self.chainguard_identity == other.chainguard_identity
                    && self.chainguard_method == other.chainguard_method
            }
            _ => false,
        }
    }
}

impl fmt::Display for RegistryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

/// What a provider gets besides the targets.
#[derive(Debug, Clone)]
pub struct FetchContext {
    /// The AWS credentials of the identity.
    pub credentials: AwsCredentials,
    /// Who they belong to, for error messages (`role arn:…`).
    pub principal: String,
    /// The role they belong to, when known ([`crate::Identity::role_in`]: bare ambient
    /// credentials have one only when they come from the IRSA variables): its partition decides
    /// which STS a provider calls on their behalf.
    pub role: Option<RoleArn>,
}

/// A failure of one of the registry token providers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// Amazon ECR private.
    #[error(transparent)]
    Ecr(#[from] EcrError),
    /// Amazon ECR Public.
    #[error(transparent)]
    EcrPublic(#[from] EcrPublicError),
    /// Chainguard.
    #[error(transparent)]
    Chainguard(#[from] ChainguardError),
}

/// Mints registry credentials from AWS credentials.
pub trait RegistryTokenProvider: Send + Sync {
    /// One credential per target, in the order of `targets`. Every target belongs to the same
    /// group ([`RegistryTarget::group_key`]) and to this provider's kind of registry.
    fn fetch<'a>(
        &'a self,
        ctx: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        let t = RegistryTarget::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1", None)
            .unwrap();
        assert_eq!(t.host, "123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(t.group_key(), "ecr|aws|eu-west-1|false|false");
        let other_account =
            RegistryTarget::parse("210987654321.dkr.ecr.eu-west-1.amazonaws.com", None).unwrap();
        let other_region =
            RegistryTarget::parse("123456789012.dkr.ecr.eu-west-2.amazonaws.com", None).unwrap();
        assert!(t.same_group(&other_account) && !t.same_group(&other_region));
        assert_eq!(
            RegistryTarget::parse("public.ecr.aws/nginx/nginx", None)
                .unwrap()
                .group_key(),
            "ecr-public"
        );
        let cg = RegistryTarget::parse("cgr.dev/chainguard/static", Some("org/id")).unwrap();
        assert_eq!(cg.chainguard_identity.as_deref(), Some("org/id"));
        let by_jwt = cg
            .clone()
            .with_chainguard_method(ChainguardMethod::WebIdentityToken);
        assert!(!cg.same_group(&by_jwt), "one exchange per method");
        assert_ne!(cg.group_key(), by_jwt.group_key());
        let err = RegistryTarget::parse("cgr.dev/chainguard/static", None).unwrap_err();
        assert!(err.to_string().contains("--chainguard-identity"), "{err}");
        let err = RegistryTarget::parse("ghcr.io/org/app", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("irsa cannot mint credentials for registry ghcr.io"),
            "{err}"
        );
        assert!(matches!(
            RegistryTarget::parse("", None),
            Err(TargetError::Parse { .. })
        ));
    }
}
