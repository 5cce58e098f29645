//! `irsa credential-provider`: the kubelet's exec image credential provider (KEP-2133, with the
//! pod's service-account token of KEP-4412). The protocol is on stdin/stdout; every diagnostic,
//! and the one-line reason of a refusal, is on stderr.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
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
    #[arg(long, value_enum, env = "IRSA_FALLBACK")]
    fallback: Option<FallbackArg>,
    /// In node mode, a role to assume with the node's credentials (cross-account).
    #[arg(long, value_name = "ARN", env = "IRSA_ASSUME_ROLE")]
    assume_role: Option<String>,
    /// Keep credentials on disk here (a root-only directory) so that the kubelet's processes,
    /// one per pull, share one exchange. Unset: no disk cache.
    #[arg(long, value_name = "DIR", env = "IRSA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Fraction of a credential's lifetime the kubelet and the disk cache keep it.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    refresh_fraction: f64,
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
    })
}

pub(crate) fn run(args: CredentialProviderArgs) -> anyhow::Result<Verdict> {
    let policy = policy(&args)?;
    if let Some(image) = &args.explain {
        let text = explain(image, &policy).map_err(|e| Invalid(e.to_string()))?;
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
