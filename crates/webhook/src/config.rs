//! The webhook's settings (its flags), with upstream's names and defaults.

/// The longest annotation value the webhook keeps or reads (bytes): an IAM role ARN's maximum,
/// and far above any audience, boolean or expiration. A longer value is treated as absent where
/// it enters the process, so tenant-written annotations cannot grow memory or patches unbounded.
pub const MAX_ANNOTATION_VALUE: usize = 2048;
/// Upstream's annotation domain, also the default `--annotation-prefix`.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "eks.amazonaws.com";
/// Default audience of the projected token (`--token-audience`).
pub const DEFAULT_TOKEN_AUDIENCE: &str = irsa_core::names::STS_AUDIENCE;
/// Default mount path of the token volume (`--token-mount-path`).
pub const DEFAULT_TOKEN_MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
/// Default token lifetime in seconds (`--token-expiration`); 24 hours, the most EKS allows.
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 86_400;
/// The shortest token lifetime kube-apiserver accepts for a projected token (10 minutes).
pub const MIN_TOKEN_EXPIRATION: i64 = 600;
/// Lower end of the jittered lifetime given to Pod Identity tokens that would get the default.
pub const POD_IDENTITY_MIN_JITTERED_EXPIRATION: i64 = 79_200;
/// Name of the web-identity token volume and of its mounts.
pub const TOKEN_VOLUME_NAME: &str = "aws-iam-token";
/// File name of the web-identity token inside its volume.
pub const TOKEN_PATH: &str = "token";
pub use irsa_core::names::SKIP_POD_LABEL;
/// Label put on pods given Pod Identity credentials; upstream hard-codes the domain.
pub const POD_IDENTITY_LABEL: &str = "eks.amazonaws.com/pod-identity";
/// Name of the ConfigMap read in `--watch-config-map` mode.
pub const CONFIG_MAP_NAME: &str = irsa_core::names::WEBHOOK_CONFIG_MAP;
/// Key of that ConfigMap holding `{"namespace/serviceaccount": {...}}`.
pub const CONFIG_MAP_KEY: &str = "config";

/// Service-account annotation (under the prefix) naming the role; it enables injection.
pub const ROLE_ARN_ANNOTATION: &str = "role-arn";
/// Service-account annotation (under the prefix) overriding the token audience.
pub const AUDIENCE_ANNOTATION: &str = "audience";
/// Service-account annotation (under the prefix): `true`/`false`, overrides the flag both ways.
pub const REGIONAL_STS_ANNOTATION: &str = "sts-regional-endpoints";
/// Service-account or pod annotation (under the prefix): token lifetime in seconds.
pub const TOKEN_EXPIRATION_ANNOTATION: &str = "token-expiration";
/// Pod annotation (under the prefix): comma-separated names of containers left alone.
pub const SKIP_CONTAINERS_ANNOTATION: &str = "skip-containers";

/// How the mutation is configured: what upstream takes from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--annotation-prefix`: the domain of the service-account and pod annotations.
    pub annotation_prefix: String,
    /// `--token-audience`: the audience when the service account names none.
    pub token_audience: String,
    /// `--token-mount-path`: where the web-identity token volume is mounted.
    pub token_mount_path: String,
    /// `--token-expiration`: token lifetime when no annotation sets one (at least 600).
    pub token_expiration: i64,
    /// `--sts-regional-endpoints`: add `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub sts_regional_endpoints: bool,
    /// `--aws-default-region`: `AWS_REGION` and `AWS_DEFAULT_REGION`, when set and non-empty.
    pub aws_default_region: Option<String>,
    /// The `--container-credentials-*` flags (Pod Identity mode).
    pub container_credentials: ContainerCredentialsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            annotation_prefix: DEFAULT_ANNOTATION_PREFIX.into(),
            token_audience: DEFAULT_TOKEN_AUDIENCE.into(),
            token_mount_path: DEFAULT_TOKEN_MOUNT_PATH.into(),
            token_expiration: DEFAULT_TOKEN_EXPIRATION,
            sts_regional_endpoints: false,
            aws_default_region: None,
            container_credentials: ContainerCredentialsConfig::default(),
        }
    }
}

impl Config {
    /// The full key of an annotation under `--annotation-prefix`.
    pub fn annotation(&self, name: &str) -> String {
        format!("{}/{name}", self.annotation_prefix)
    }
}

/// Pod Identity mode: where the EKS Pod Identity agent is and how its token is projected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCredentialsConfig {
    /// `--container-credentials-audience`.
    pub audience: String,
    /// `--container-credentials-mount-path`.
    pub mount_path: String,
    /// `--container-credentials-volume-name`.
    pub volume_name: String,
    /// `--container-credentials-token-path`: file name inside the volume.
    pub token_path: String,
    /// `--container-credentials-full-uri`: the agent (`http://[fd00:ec2::23]/v1/credentials` on IPv6).
    pub full_uri: String,
}

impl Default for ContainerCredentialsConfig {
    fn default() -> Self {
        Self {
            audience: irsa_core::names::POD_IDENTITY_PRINCIPAL.into(),
            mount_path: "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount".into(),
            volume_name: "eks-pod-identity-token".into(),
            token_path: "eks-pod-identity-token".into(),
            full_uri: "http://169.254.170.23/v1/credentials".into(),
        }
    }
}

/// A token lifetime raised to the minimum kube-apiserver accepts.
pub fn clamp_expiration(seconds: i64) -> i64 {
    seconds.max(MIN_TOKEN_EXPIRATION)
}
