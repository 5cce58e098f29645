//! `irsa credential-provider`: the kubelet's exec image credential provider (KEP-2133, with the
//! pod's service-account token of KEP-4412). The protocol is on stdin/stdout; every diagnostic,
//! and the one-line reason of a refusal, is on stderr.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use irsa_aws::ChainguardMethod;
use irsa_credential_provider::config::{
    ConfigOptions, fallback_comment, irsa_provider, kubelet_flags_comment, render_config,
    render_rbac, validate,
};
use irsa_credential_provider::plan::{DEFAULT_ROLE_ANNOTATIONS, Fallback, Policy};
use irsa_credential_provider::protocol::MAX_REQUEST_BYTES;
use irsa_credential_provider::{Options, explain::explain, respond};

use crate::{Invalid, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FallbackArg {
    /// Pull with the node's credentials.
    Node,
    /// Refuse the pull.
    Deny,
}

#[derive(Debug, Args)]
pub(crate) struct CredentialProviderArgs {
    /// Print, for people, what the provider would do for IMAGE (registry, role, region), and exit.
    #[arg(long, value_name = "IMAGE")]
    explain: Option<String>,
    /// Service-account annotation keys naming the IAM role, in order (the first present wins).
    #[arg(
        long,
        value_name = "KEY,…",
        value_delimiter = ',',
        env = "IRSA_ROLE_ANNOTATIONS",
        default_values_t = DEFAULT_ROLE_ANNOTATIONS.map(str::to_owned)
    )]
    role_annotations: Vec<String>,
    /// When the kubelet sends a service-account token but the service account names no role:
    /// `node` pulls with the node's credentials, `deny` refuses. Unset: refuse and say so.
    /// `deny` also refuses requests without a token (static pods, `requireServiceAccount:
    /// false`, a kubelet config without tokenAttributes): it never uses the node's
    /// credentials. `node`, or unset, pulls those with the node's credentials (node mode).
    #[arg(long, value_enum, env = "IRSA_FALLBACK")]
    fallback: Option<FallbackArg>,
    /// In node mode, a role to assume with the node's credentials (cross-account).
    #[arg(long, value_name = "ARN", env = "IRSA_ASSUME_ROLE")]
    assume_role: Option<String>,
    /// Keep credentials on disk here (a root-only directory) so that the kubelet's processes,
    /// one per pull, share one exchange. Unset: no disk cache.
    #[arg(long, value_name = "DIR", env = "IRSA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Fraction of a credential's lifetime the kubelet and the disk cache keep it, in (0, 1].
    #[arg(long, value_name = "F", default_value_t = 0.5, value_parser = parse_refresh_fraction)]
    refresh_fraction: f64,
    /// The role session's duration asked of STS (15m to 12h, at most the role's maximum
    /// session duration; a chained --assume-role at most 1h). Unset: STS's default, 1h.
    #[arg(long, value_name = "DURATION", env = "IRSA_SESSION_DURATION", value_parser = crate::login::parse_session_duration)]
    session_duration: Option<Duration>,
    #[command(flatten)]
    chainguard: ChainguardArgs,
}

/// Chainguard (cgr.dev): whose Chainguard identity the pulling AWS identity is exchanged for.
#[derive(Debug, Args)]
pub(crate) struct ChainguardArgs {
    /// For cgr.dev images: the Chainguard assumable identity (<group id>/<identity id>) that
    /// trusts the pulling role, used when the pod's service account names none in its
    /// irsa.dev/chainguard-identity annotation, and always for the node's credentials (no
    /// service-account token, or --fallback node; the annotations then do not count). Unset:
    /// such cgr.dev pulls are refused.
    #[arg(long, value_name = "ID", env = "IRSA_CHAINGUARD_IDENTITY")]
    chainguard_identity: Option<String>,
    /// How the AWS identity is proven to Chainguard, unless the irsa.dev/chainguard-method
    /// annotation of a service account whose own role is used says: get-caller-identity (a signed
    /// sts:GetCallerIdentity request) or web-identity-token (an STS GetWebIdentityToken JWT, IAM
    /// outbound identity federation).
    #[arg(
        long,
        value_name = "METHOD",
        env = "IRSA_CHAINGUARD_METHOD",
        default_value = "get-caller-identity",
        value_parser = str::parse::<ChainguardMethod>
    )]
    chainguard_method: ChainguardMethod,
    /// Chainguard's token issuer (the exchange endpoint and the proof's audience).
    #[arg(
        long,
        value_name = "URL",
        env = "IRSA_CHAINGUARD_ISSUER",
        default_value = irsa_aws::chainguard::DEFAULT_ISSUER
    )]
    chainguard_issuer: String,
}

fn policy(args: &CredentialProviderArgs) -> anyhow::Result<Policy> {
    let node_assume_role = match &args.assume_role {
        Some(arn) => Some(
            arn.parse()
                .map_err(|e| Invalid(format!("--assume-role: {e}")))?,
        ),
        None => None,
    };
    let role_annotations: Vec<String> = args
        .role_annotations
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if role_annotations.is_empty() {
        return Err(Invalid(
            "--role-annotations is empty: name at least one service-account annotation key".into(),
        )
        .into());
    }
    Ok(Policy {
        role_annotations,
        fallback: args.fallback.map(|f| match f {
            FallbackArg::Node => Fallback::Node,
            FallbackArg::Deny => Fallback::Deny,
        }),
        node_assume_role,
        chainguard_identity: crate::input::chainguard_identity(
            args.chainguard.chainguard_identity.as_deref(),
        )?,
        chainguard_method: args.chainguard.chainguard_method,
    })
}

pub(crate) fn run(args: CredentialProviderArgs) -> anyhow::Result<Verdict> {
    let policy = policy(&args)?;
    if let Some(image) = &args.explain {
        let text = explain(image, &policy, &args.chainguard.chainguard_issuer)
            .map_err(|e| Invalid(e.to_string()))?;
        print!("{text}");
        return Ok(Verdict::Ok);
    }
    let mut stdin = Vec::with_capacity(4096);
    std::io::stdin()
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut stdin)?;
    let options = Options {
        policy,
        cache_dir: args.cache_dir,
        refresh_fraction: args.refresh_fraction,
        lock_wait: Duration::from_secs(30),
        session_duration: args.session_duration,
        chainguard_issuer: args.chainguard.chainguard_issuer,
    };
    match respond(&options, &stdin) {
        Ok(response) => {
            let mut out = std::io::stdout().lock();
            out.write_all(response.render().expose().as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(Verdict::Ok)
        }
        Err(error) => {
            // The kubelet logs this line with the failed pull.
            eprintln!("irsa credential-provider: {error}");
            Ok(Verdict::No)
        }
    }
}

/// `irsa install …` targets other than the cluster's manifests.
#[derive(Debug, Subcommand)]
pub(crate) enum InstallCommand {
    /// Print the kubelet's CredentialProviderConfig that runs `irsa credential-provider` (for
    /// the file named by --image-credential-provider-config on every node), or with
    /// `--print rbac` the RBAC that lets the nodes request its token audience.
    #[command(name = "credential-provider")]
    CredentialProvider(InstallProviderArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InstallPrint {
    /// The kubelet's CredentialProviderConfig, with the kubelet flags as a comment.
    Config,
    /// The ClusterRole and ClusterRoleBinding for `request-serviceaccounts-token-audience`.
    Rbac,
}

#[derive(Debug, Args)]
pub(crate) struct InstallProviderArgs {
    /// What to print.
    #[arg(long, value_enum, default_value = "config")]
    print: InstallPrint,
    /// The printed --fallback: `deny` (the default) refuses pods whose service account names
    /// no role and pods without a service-account token (static pods); `node` pulls those with
    /// the node's credentials, so every such pod can pull what the node's role can.
    #[arg(long, value_enum, default_value = "deny")]
    fallback: FallbackArg,
    /// Service-account annotation keys naming the role, in order.
    #[arg(
        long,
        value_name = "KEY,…",
        value_delimiter = ',',
        default_values_t = DEFAULT_ROLE_ANNOTATIONS.map(str::to_owned)
    )]
    role_annotations: Vec<String>,
    /// The provider's disk cache on the node; `none` for no disk cache.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/irsa/credential-provider"
    )]
    cache_dir: String,
    /// Where the config file goes on the node (for the printed kubelet flags).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/kubernetes/image-credential-provider-config.yaml"
    )]
    config_path: String,
    /// The kubelet's credential-provider binary directory, holding the irsa binary.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec"
    )]
    bin_dir: String,
    /// The printed --chainguard-identity: the Chainguard identity (<group id>/<identity id>)
    /// for cgr.dev pulls of service accounts without the irsa.dev/chainguard-identity
    /// annotation, and of pods without a token. Unset: those are refused.
    #[arg(long, value_name = "ID")]
    chainguard_identity: Option<String>,
    /// The printed --chainguard-method (get-caller-identity or web-identity-token). Unset: the
    /// provider's default, get-caller-identity.
    #[arg(long, value_name = "METHOD", value_parser = str::parse::<ChainguardMethod>)]
    chainguard_method: Option<ChainguardMethod>,
}

pub(crate) fn install(cmd: InstallCommand) -> anyhow::Result<Verdict> {
    let InstallCommand::CredentialProvider(args) = cmd;
    let options = ConfigOptions {
        role_annotations: args.role_annotations.clone(),
        fallback: match args.fallback {
            FallbackArg::Node => Fallback::Node,
            FallbackArg::Deny => Fallback::Deny,
        },
        cache_dir: (args.cache_dir != "none").then(|| args.cache_dir.clone()),
        chainguard_identity: crate::input::chainguard_identity(
            args.chainguard_identity.as_deref(),
        )?,
        chainguard_method: args.chainguard_method,
        ..ConfigOptions::default()
    };
    let provider = irsa_provider(&options);
    // Held to the kubelet's own rules: a config the kubelet would refuse stops it from starting.
    if let Err(errors) = validate(std::slice::from_ref(&provider)) {
        return Err(Invalid(format!(
            "the kubelet would refuse this CredentialProviderConfig: {}",
            errors.join("; ")
        ))
        .into());
    }
    let text = match args.print {
        InstallPrint::Config => format!(
            "{}{}{}",
            kubelet_flags_comment(&args.config_path, &args.bin_dir),
            fallback_comment(options.fallback),
            render_config(std::slice::from_ref(&provider))
        ),
        InstallPrint::Rbac => render_rbac(&options.audience),
    };
    print!("{text}");
    Ok(Verdict::Ok)
}

/// `--refresh-fraction`: a number in (0, 1].
fn parse_refresh_fraction(value: &str) -> Result<f64, String> {
    let fraction: f64 = value
        .trim()
        .parse()
        .map_err(|_| "not a number; 0.5 keeps a credential half its lifetime".to_owned())?;
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(fraction)
    } else {
        Err(format!(
            "{value} is not in (0, 1]; 0.5 keeps a credential half its lifetime"
        ))
    }
}
