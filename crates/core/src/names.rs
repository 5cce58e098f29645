//! Names that more than one crate writes or reads: annotation keys, labels, the STS audience.
//! Each has its home here so that the controller, the webhook, the CLI and the sandbox cannot
//! drift apart (a renamed annotation would otherwise silently stop matching).

/// Service-account annotation naming the IAM role to assume (the EKS convention).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// Service-account annotation overriding the token audience (the EKS convention).
pub const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
/// Service-account annotation naming the Chainguard assumable identity (`<group>/<id>`) the
/// pod's role is exchanged for when it pulls from cgr.dev (`irsa credential-provider`).
pub const CHAINGUARD_IDENTITY_ANNOTATION: &str = "irsa.dev/chainguard-identity";
/// Service-account annotation choosing how the pod's role is proven to Chainguard:
/// `get-caller-identity` or `web-identity-token` ([`crate::chainguard::ChainguardMethod`]).
pub const CHAINGUARD_METHOD_ANNOTATION: &str = "irsa.dev/chainguard-method";
/// The audience AWS STS expects in web-identity tokens.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The global STS endpoint's host: a Chainguard proof (a signed `GetCallerIdentity`) is
/// addressed to it, and its verifier accepts no other.
pub const STS_HOST: &str = "sts.amazonaws.com";
/// EKS Pod Identity's service principal, also the audience of its tokens.
pub const POD_IDENTITY_PRINCIPAL: &str = "pods.eks.amazonaws.com";
/// The service-account annotation for the projected token's lifetime (seconds).
pub const TOKEN_EXPIRATION_ANNOTATION: &str = "eks.amazonaws.com/token-expiration";
/// Pods with this label (any value) are never mutated by the pod identity webhook, and its
/// `objectSelector` keeps them away from it (upstream's name; its domain is hard-coded).
pub const SKIP_POD_LABEL: &str = "eks.amazonaws.com/skip-pod-identity-webhook";
/// The ConfigMap the pod identity webhook follows with `--watch-config-map` (upstream's name).
pub const WEBHOOK_CONFIG_MAP: &str = "pod-identity-webhook";

/// The name of irsa's one webhook in its MutatingWebhookConfiguration (a fully qualified name,
/// as the API requires): the entry `irsa webhook certs` reads and patches.
pub const WEBHOOK_NAME: &str = "pod-identity.irsa.dev";

/// Prefix of every label and annotation key irsa reserves for itself.
pub const RESERVED_PREFIX: &str = "irsa.dev/";
/// Label on every object irsa writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on irsa's objects.
pub const MANAGED_BY_VALUE: &str = "irsa";
/// Owner label: `ClusterPullSecret` or `PullSecret`.
pub const OWNER_KIND_LABEL: &str = "irsa.dev/owner-kind";
/// Owner label: the owning resource's name.
pub const OWNER_NAME_LABEL: &str = "irsa.dev/owner-name";
/// Owner label: the owning PullSecret's namespace (absent for a ClusterPullSecret).
pub const OWNER_NAMESPACE_LABEL: &str = "irsa.dev/owner-namespace";
/// Secret annotation: hash of the written content, so unchanged secrets are not rewritten.
pub const CONTENT_HASH_ANNOTATION: &str = "irsa.dev/content-hash";
/// Secret annotation: when the written credential was obtained (RFC 3339).
pub const ISSUED_AT_ANNOTATION: &str = "irsa.dev/issued-at";
/// Secret annotation: when the written credential expires (RFC 3339).
pub const EXPIRES_AT_ANNOTATION: &str = "irsa.dev/expires-at";
/// IAM role tag `irsa iam setup` puts on the roles it creates, with [`IAM_SETUP_TAG_VALUE`]:
/// `irsa doctor --fix` changes such a role (with [`SERVICE_ACCOUNT_TAG`] naming the service
/// account checked) on `--yes`; any other role's name must be confirmed.
pub const MANAGED_BY_TAG: &str = "irsa.dev/managed-by";
/// Value of [`MANAGED_BY_TAG`] on roles `irsa iam setup` created.
pub const IAM_SETUP_TAG_VALUE: &str = "irsa-iam-setup";
/// IAM role tag: the service account (`NAMESPACE/NAME`) `irsa iam setup` created the role for
/// (absent when the name has a wildcard, which a tag value cannot hold).
pub const SERVICE_ACCOUNT_TAG: &str = "irsa.dev/service-account";
/// Finalizer irsa puts on its resources to clean up their secrets.
pub const FINALIZER: &str = "irsa.dev/cleanup";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irsa_keys_carry_the_reserved_prefix() {
        for key in [
            OWNER_KIND_LABEL,
            OWNER_NAME_LABEL,
            OWNER_NAMESPACE_LABEL,
            CONTENT_HASH_ANNOTATION,
            ISSUED_AT_ANNOTATION,
            EXPIRES_AT_ANNOTATION,
            FINALIZER,
            CHAINGUARD_IDENTITY_ANNOTATION,
            CHAINGUARD_METHOD_ANNOTATION,
        ] {
            assert!(key.starts_with(RESERVED_PREFIX), "{key}");
        }
    }
}
