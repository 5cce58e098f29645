//! The custom resource types, in group `irsa.dev`, version `v1alpha1`.
//!
//! [`ClusterPullSecret`] (cluster-scoped) writes one `kubernetes.io/dockerconfigjson` Secret into
//! every selected namespace; [`PullSecret`] (namespaced) writes it into its own namespace only.
//! Both share [`SecretSpec`]: which registries, with which identity, into which secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of irsa's custom resources.
pub const GROUP: &str = "irsa.dev";
/// The API version of irsa's custom resources.
pub const VERSION: &str = "v1alpha1";
/// Default [`SecretSpec::refresh`]: refresh when half of the token's lifetime has passed.
pub const DEFAULT_REFRESH: f64 = irsa_core::refresh::DEFAULT_REFRESH_FRACTION;

/// Writes registry credentials, obtained with one identity, as a pull secret into every
/// selected namespace.
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "irsa.dev",
    version = "v1alpha1",
    kind = "ClusterPullSecret",
    status = "PullSecretStatus",
    shortname = "cps",
    category = "irsa",
    doc = "Writes registry credentials, obtained with one workload identity, as a kubernetes.io/dockerconfigjson Secret into every selected namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".status.targets.summary"
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPullSecretSpec {
    /// Registries, identity and secret shape.
    #[serde(flatten)]
    pub secret: SecretSpec,
    /// Which namespaces receive the secret. Empty selects every namespace.
    #[serde(default)]
    pub namespaces: NamespaceSelection,
}

/// Writes registry credentials, obtained with a service account of its own namespace, as a pull
/// secret into that namespace.
// Each printcolumn(...) repeats `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "irsa.dev",
    version = "v1alpha1",
    kind = "PullSecret",
    namespaced,
    status = "PullSecretStatus",
    shortname = "ps",
    category = "irsa",
    doc = "Writes registry credentials, obtained with a service account of its own namespace, as a kubernetes.io/dockerconfigjson Secret into that namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".status.targets.summary"
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretSpec {
    /// Registries, identity and secret shape.
    #[serde(flatten)]
    pub secret: SecretSpec,
}

/// What both resources share: registries, identity, the secret's name and shape, and timing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSpec {
    /// Registries whose credentials go into the secret, all into one secret.
    pub registries: Vec<RegistrySpec>,
    /// The identity whose credentials are exchanged for registry tokens.
    pub identity: IdentitySpec,
    /// Name of the Secret written into each target namespace.
    pub secret_name: String,
    /// Extra labels on each written Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_labels: BTreeMap<String, String>,
    /// Extra annotations on each written Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_annotations: BTreeMap<String, String>,
    /// Data key of an extra field, next to `.dockerconfigjson`, holding `username:password` of
    /// the single registry: what Argo CD Image Updater's `secret:<namespace>/<name>#<key>`
    /// credentials read. Allowed with exactly one registry. Absent: no extra field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_password_key: Option<String>,
    /// Service accounts in each target namespace whose `imagePullSecrets` get the secret added
    /// (`"*"` for all of them). The list is patched, never replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Fraction of the token's lifetime after which it is refreshed, in (0, 1), jittered.
    #[serde(default = "default_refresh")]
    #[schemars(range(min = 0.0, max = 1.0), extend("exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub refresh: f64,
    /// What happens to written secrets when the resource is deleted or a namespace deselected.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_refresh() -> f64 {
    DEFAULT_REFRESH
}

/// One registry to write credentials for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// Registry host: an ECR private registry (`<account>.dkr.ecr.<region>.amazonaws.com`),
    /// ECR Public (`public.ecr.aws`) or Chainguard (`cgr.dev`).
    pub host: String,
    /// Chainguard settings; required for `cgr.dev`, refused for other hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chainguard: Option<ChainguardSpec>,
}

/// How to reach Chainguard's registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainguardSpec {
    /// The Chainguard assumable identity id (`<group>/<id>`) that trusts the AWS role.
    pub identity: String,
    /// How the AWS identity is proven to Chainguard: `get-caller-identity` (a signed
    /// sts:GetCallerIdentity request; the identity's `aws_identity`, the default) or
    /// `web-identity-token` (an STS GetWebIdentityToken JWT, IAM outbound identity federation;
    /// the identity trusts the account's outbound issuer and the role ARN as subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<ChainguardMethod>,
}

/// How the AWS identity is proven to Chainguard.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChainguardMethod {
    /// A signed, never-sent sts:GetCallerIdentity request.
    #[default]
    GetCallerIdentity,
    /// An STS GetWebIdentityToken JWT for the issuer's audience.
    WebIdentityToken,
}

/// The identity used upstream: exactly one of `serviceAccount` or `ambient`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// A service account: its role comes from the `eks.amazonaws.com/role-arn` annotation, its
    /// token from TokenRequest with the audience of `eks.amazonaws.com/audience` or
    /// `sts.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
    /// The controller's own credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient: Option<AmbientIdentity>,
    /// Role to assume instead of the service account's annotation (with `ambient`: the role
    /// assumed with the controller's credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// How long each role session lasts, asked of STS as `DurationSeconds`: a number with a
    /// unit, `s`, `m` or `h` (`15m`, `1h`, `12h`; a bare number is seconds), in whole seconds
    /// from 15m to 12h. STS refuses more than the role's own `MaxSessionDuration` (1h unless
    /// raised), which irsa cannot know in advance: a longer value fails the refresh with STS's
    /// message in the status. A role assumed with `ambient` credentials that are themselves a
    /// role session (role chaining) is held to 1h; with `ambient` and no `roleArn` it applies
    /// only when the controller's credentials come from the IRSA variables (not EKS Pod Identity
    /// or a node role). Unset: STS's default, 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The API server refuses what cannot be a duration at admission (review 24b L7); the
    // controller's validation still checks the range and reports it in the status.
    #[schemars(regex(pattern = r"^[0-9]{1,12}(ms|s|m|h)?$"), length(max = 14))]
    pub session_duration: Option<String>,
}

/// A service account. `namespace` is required for a ClusterPullSecret; a PullSecret may omit
/// it (its own namespace) and may not name another.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// Namespace of the service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the service account.
    pub name: String,
}

/// The controller's own (ambient) credentials; no settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AmbientIdentity {}

/// Which namespaces a ClusterPullSecret serves: those matching `selector` (all when absent)
/// whose name matches one of `include` (all when empty) and none of `exclude`. Exclude wins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelection {
    /// Label selector on namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Name globs (`*`, `?`) of namespaces to serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Name globs (`*`, `?`) of namespaces never to serve; wins over `include` and `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// What happens to written secrets (and service-account entries) on deletion or deselection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove them (the default).
    #[default]
    Delete,
    /// Leave them in place; they expire with their token.
    Retain,
}

/// Status of a ClusterPullSecret or PullSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretStatus {
    /// `Ready` (secrets written and valid) and `Degraded` (the last refresh or write failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the credentials in the written secrets expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the credentials were last obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,
    /// When the next refresh is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_time: Option<Time>,
    /// Target namespaces by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<TargetCounts>,
    /// Failing or conflicted namespaces with reasons, at most 20 (the counts cover all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = TargetProblem::MAX_REPORTED))]
    pub problems: Vec<TargetProblem>,
}

/// Target namespaces by state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetCounts {
    /// Namespaces that should hold the secret.
    pub desired: i32,
    /// Namespaces whose secret is written and current.
    pub ready: i32,
    /// Namespaces whose secret could not be written.
    pub failed: i32,
    /// Namespaces holding a same-named secret irsa does not own (never touched).
    pub conflicted: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl TargetCounts {
    /// Counts with their `ready/desired` summary filled in.
    pub fn new(desired: i32, ready: i32, failed: i32, conflicted: i32) -> Self {
        Self {
            desired,
            ready,
            failed,
            conflicted,
            summary: Some(format!("{ready}/{desired}")),
        }
    }
}

/// A namespace that is failing or conflicted, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetProblem {
    /// The namespace.
    pub namespace: String,
    /// A CamelCase reason, e.g. `Conflict`.
    pub reason: String,
    /// What happened and what to do (at most 1 KiB).
    #[schemars(length(max = TargetProblem::MAX_MESSAGE))]
    pub message: String,
}

impl TargetProblem {
    /// Most problems listed in a status; the counts in [`TargetCounts`] cover the rest.
    pub const MAX_REPORTED: usize = 20;
    /// Most bytes of one problem's message: messages may quote what tenants wrote, and the
    /// whole status must stay far below what one write to the API server may carry.
    pub const MAX_MESSAGE: usize = 1024;

    /// `message` cut to at most [`Self::MAX_MESSAGE`] bytes, on a character boundary, with an
    /// ellipsis when cut.
    pub fn capped(message: String) -> String {
        cap(message, Self::MAX_MESSAGE)
    }
}

/// `s` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn cap(mut s: String, max: usize) -> String {
    const MORE: &str = "…";
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub(MORE.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(MORE);
    s
}

impl SecretSpec {
    /// A spec with the given registries, identity and secret name, and defaults elsewhere.
    pub fn new(registries: Vec<RegistrySpec>, identity: IdentitySpec, secret_name: &str) -> Self {
        Self {
            registries,
            identity,
            secret_name: secret_name.to_owned(),
            secret_labels: BTreeMap::new(),
            secret_annotations: BTreeMap::new(),
            username_password_key: None,
            service_accounts: Vec::new(),
            refresh: DEFAULT_REFRESH,
            deletion_policy: DeletionPolicy::Delete,
        }
    }
}
