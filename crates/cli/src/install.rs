//! `irsa install`: print the manifests that deploy irsa (Namespace, CRDs, ServiceAccount, RBAC,
//! controller Deployment) as YAML, for `kubectl apply --server-side -f -` or a GitOps repository.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use irsa_k8s::install::{DEFAULT_NAMESPACE, DEFAULT_REPLICAS, default_image};
use irsa_k8s::{InstallOptions, LogFormat, Part};

use crate::{Invalid, Verdict};

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// Namespace for the controller, its ServiceAccount and its leader-election Lease.
    #[arg(long, short = 'n', value_name = "NAME", env = "IRSA_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Controller image: a repository with a tag or digest.
    #[arg(long, value_name = "IMAGE", env = "IRSA_IMAGE", default_value_t = default_image())]
    image: String,
    /// Controller replicas (1 to 10). They elect a leader through a Lease, so one writes at a
    /// time; with more than one a PodDisruptionBudget keeps one running through node drains.
    #[arg(long, value_name = "N", env = "IRSA_REPLICAS", default_value_t = DEFAULT_REPLICAS)]
    replicas: u32,
    /// IAM role for irsa's own ServiceAccount (annotation eks.amazonaws.com/role-arn), used by
    /// pull secrets that ask for the controller's ambient identity.
    #[arg(long, value_name = "ARN", env = "IRSA_ROLE_ARN")]
    role_arn: Option<String>,
    /// Log format of the controller.
    #[arg(long, value_name = "FORMAT", default_value = "json")]
    log_format: LogFormatArg,
    /// Leave the CustomResourceDefinitions out (when they are managed separately).
    #[arg(long)]
    no_crds: bool,
    /// Print only these parts (comma-separated or repeated), in apply order.
    #[arg(long, value_name = "PART", value_delimiter = ',')]
    only: Vec<PartArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// JSON lines, for log collectors.
    Json,
    /// Human-readable lines.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PartArg {
    /// The Namespace.
    Namespace,
    /// The CustomResourceDefinitions.
    Crds,
    /// ServiceAccount, ClusterRole, Role for the Lease, and their bindings.
    Rbac,
    /// The Deployment (and its PodDisruptionBudget).
    Controller,
}

impl From<PartArg> for Part {
    fn from(p: PartArg) -> Self {
        match p {
            PartArg::Namespace => Part::Namespace,
            PartArg::Crds => Part::Crds,
            PartArg::Rbac => Part::Rbac,
            PartArg::Controller => Part::Controller,
        }
    }
}

impl InstallArgs {
    fn options(self) -> InstallOptions {
        let mut parts: Vec<Part> = if self.only.is_empty() {
            Part::ALL.to_vec()
        } else {
            self.only.into_iter().map(Part::from).collect()
        };
        if self.no_crds {
            parts.retain(|p| *p != Part::Crds);
        }
        InstallOptions {
            namespace: self.namespace,
            image: self.image,
            replicas: self.replicas,
            role_arn: self.role_arn,
            log_format: match self.log_format {
                LogFormatArg::Json => LogFormat::Json,
                LogFormatArg::Plain => LogFormat::Plain,
            },
            parts,
        }
    }
}

pub(crate) fn run(args: InstallArgs) -> anyhow::Result<Verdict> {
    let yaml = irsa_k8s::manifests_yaml(&args.options()).map_err(|e| Invalid(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush())
        .context("failed to write the manifests to stdout")?;
    Ok(Verdict::Ok)
}
