//! `irsa controller`: the pull-secret controller for ClusterPullSecret and PullSecret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use irsa_aws::{Pipeline, PipelineOptions};
use irsa_controller::lease::LeaseConfig;
use irsa_controller::{Controller, ControllerOptions};
use irsa_k8s::token_request::KubeTokenRequester;

use crate::{Invalid, Verdict};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    irsa controller                                   # KUBECONFIG or in-cluster config; metrics on 127.0.0.1:8080\n  \
    irsa controller --leader-elect --metrics-listen 0.0.0.0:8080   # as `irsa install` deploys it\n  \
    irsa install | kubectl apply --server-side -f -   # the manifests that run it in a cluster\n  \
    irsa controller --argocd-namespace argocd         # also fill Argo CD's ECR repository secrets\n\n\
    It watches ClusterPullSecrets and PullSecrets (irsa.dev/v1alpha1), namespaces (metadata only),\n\
    its own secrets (label app.kubernetes.io/managed-by=irsa) and service accounts, and writes one\n\
    kubernetes.io/dockerconfigjson secret per target namespace from one upstream exchange.\n\
    /metrics (Prometheus), /healthz (503 naming the loop that stopped making progress: the lease\n\
    loop, a watch, a reconcile running past max(--resync, 5m)) and /readyz (true once every watch\n\
    has listed) are served on --metrics-listen. SIGTERM or Ctrl-C stops it gracefully: running\n\
    reconciles finish (within 15 s; past that they are cancelled and the lease is left to expire),\n\
    then the lease is released.")]
pub(crate) struct ControllerArgs {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "IRSA_METRICS_LISTEN"
    )]
    metrics_listen: SocketAddr,
    /// Elect one writing replica over a coordination.k8s.io Lease (run several replicas).
    #[arg(long, env = "IRSA_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease and of the credential key Secret irsa-credential-key (default:
    /// $POD_NAMESPACE, else irsa-system).
    #[arg(long, value_name = "NS", env = "IRSA_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "irsa-controller",
        env = "IRSA_LEASE_NAME"
    )]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (default: $POD_NAME, else host-pid).
    #[arg(long, value_name = "ID", env = "IRSA_LEADER_IDENTITY")]
    identity: Option<String>,
    /// How long a Lease stays valid without renewal (e.g. 15s).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_period)]
    lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops writing; below the lease
    /// duration.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_period)]
    renew_deadline: Duration,
    /// How often the leader renews and the others try to acquire; below the renew deadline.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_period)]
    retry_period: Duration,
    /// Requests per second to the API server (watches excluded), at least 0.01; 0 for no limit.
    #[arg(
        long,
        value_name = "QPS",
        default_value_t = 100.0,
        env = "IRSA_KUBE_QPS"
    )]
    kube_qps: f64,
    /// Requests allowed at once above --kube-qps.
    #[arg(long, value_name = "N", default_value_t = 200, env = "IRSA_KUBE_BURST",
          value_parser = clap::value_parser!(u32).range(1..))]
    kube_burst: u32,
    /// Look at every resource at least this often, even without events (writes only what
    /// drifted).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_period, env = "IRSA_RESYNC")]
    resync: Duration,
    /// Resources reconciled at once, per kind.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Secret writes in flight at once within one resource's fan-out.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = parse_count)]
    write_concurrency: usize,
    /// Lifetime of the service-account tokens requested with TokenRequest (at least 10m).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_token_expiration)]
    token_expiration: Duration,
    /// Chainguard's token issuer.
    #[arg(
        long,
        value_name = "URL",
        env = "IRSA_CHAINGUARD_ISSUER",
        default_value = "https://issuer.enforce.dev"
    )]
    chainguard_issuer: String,
    /// One-namespace mode, for a controller bound by a Role (`irsa install --watch-namespace`):
    /// serve PullSecrets in NS only and write only there; no namespace watch, no
    /// ClusterPullSecrets.
    #[arg(long, value_name = "NS", env = "IRSA_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Fill Argo CD repository secrets in NS (the Argo CD namespace) from workload identity:
    /// secrets labelled argocd.argoproj.io/secret-type=repository or repo-creds whose data says
    /// workloadIdentityProvider: aws (what Argo CD's pending PR #28217 reads) or
    /// useWorkloadIdentity: "true" (the guide), for an ECR OCI repository (type: oci, type: helm
    /// with enableOCI: "true", or an oci:// url). The identity is the service account
    /// argocd-project-<project> in NS (or the one named by the irsa.dev/service-account
    /// annotation, or without a project argocd-repo-server), with its
    /// eks.amazonaws.com/role-arn; irsa writes only username and password (server-side apply,
    /// never forced) and reports in the irsa.dev/status annotation and Events. The annotation
    /// may name only the project's own account, argocd-repo-server, or an account that
    /// consents (its irsa.dev/argocd-projects annotation lists the secret's project). Keep NS
    /// admin-only. A repo-creds template is not per project in Argo CD: it serves every
    /// repository under its URL prefix, whatever the repository's project, so a template with
    /// project: P hands P's registry credentials to all of them; give templates no project
    /// (argocd-repo-server's role) and keep project-scoped credentials in repository secrets.
    /// Needs the RBAC of `irsa install --argocd-namespace NS`.
    /// Example: --argocd-namespace argocd
    #[arg(long, value_name = "NS", env = "IRSA_ARGOCD_NAMESPACE")]
    argocd_namespace: Option<String>,
    /// With --argocd-namespace: a workloadIdentityTokenURL that repository secrets may use
    /// besides AWS STS hosts (sts.amazonaws.com, sts[-fips].<region>.amazonaws.com[.cn],
    /// sts[-fips].<region>.api.aws, <endpoint>.sts.<region>.vpce.amazonaws.com, https only).
    /// The service-account token is sent to it, so it must match exactly; the only way to a
    /// loopback or test STS. Repeatable. Example: --argocd-token-url http://127.0.0.1:4566
    #[arg(long = "argocd-token-url", value_name = "URL")]
    argocd_token_urls: Vec<String>,
    /// With --argocd-namespace: a workloadIdentityAudience that repository secrets may ask
    /// for besides sts.amazonaws.com (a token for it is minted). Repeatable.
    /// Example: --argocd-audience sts.amazonaws.com.cn
    #[arg(long = "argocd-audience", value_name = "AUD")]
    argocd_audiences: Vec<String>,
}

/// The longest duration any flag takes: a year. Longer values are typos, and a year still
/// fits every internal conversion (Lease seconds, `Instant` arithmetic).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `500ms`, `30s`, `10m`, `1h` or a bare number of seconds, at most [`MAX_DURATION`].
/// clap names the flag in the error (and exits 2).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let too_long = || format!("{s:?} is too long: at most 8760h (a year)");
    if number.is_empty() {
        return Err(format!(
            "{s:?} is not a duration: use e.g. 500ms, 30s, 10m or 1h"
        ));
    }
    // All digits: a parse failure can only be an overflow.
    let n: u64 = number.parse().map_err(|_| too_long())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_long)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_long)?),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

/// A [`parse_duration`] that must be more than zero (a zero period would spin).
fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than 0, e.g. 2s"));
    }
    Ok(d)
}

/// The API server refuses TokenRequests shorter than 10 minutes.
const MIN_TOKEN_EXPIRATION: Duration = Duration::from_secs(600);

fn parse_token_expiration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_TOKEN_EXPIRATION {
        return Err(format!(
            "{s:?}: at least 10m (the API server refuses shorter service-account tokens)"
        ));
    }
    Ok(d)
}

/// A count of at least 1.
fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// Below this (one request every 100 s) a client-side limit is a typo; 0 means no limit.
const MIN_KUBE_QPS: f64 = 0.01;

pub(crate) fn run(args: ControllerArgs) -> anyhow::Result<Verdict> {
    if args.leader_elect && args.renew_deadline >= args.lease_duration {
        return Err(Invalid(format!(
            "--renew-deadline ({:?}) must be shorter than --lease-duration ({:?}), or two replicas could write at once",
            args.renew_deadline, args.lease_duration
        ))
        .into());
    }
    if let Some(ns) = &args.watch_namespace {
        irsa_k8s::validation::check_dns_label(ns)
            .map_err(|e| Invalid(format!("--watch-namespace: {e}")))?;
    }
    if let Some(ns) = &args.argocd_namespace {
        irsa_k8s::validation::check_dns_label(ns)
            .map_err(|e| Invalid(format!("--argocd-namespace: {e}")))?;
    }
    if args.argocd_namespace.is_none()
        && !(args.argocd_token_urls.is_empty() && args.argocd_audiences.is_empty())
    {
        return Err(Invalid(
            "--argocd-token-url and --argocd-audience need --argocd-namespace NS".to_owned(),
        )
        .into());
    }
    for url in &args.argocd_token_urls {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('@') {
            return Err(Invalid(format!(
                "--argocd-token-url {url:?}: give an http:// or https:// URL without user \
                 information, e.g. http://127.0.0.1:4566"
            ))
            .into());
        }
    }
    if let Some(a) = args.argocd_audiences.iter().find(|a| a.trim().is_empty()) {
        return Err(Invalid(format!(
            "--argocd-audience {a:?}: give a non-empty audience, e.g. sts.amazonaws.com.cn"
        ))
        .into());
    }
    if args.leader_elect && args.retry_period >= args.renew_deadline {
        return Err(Invalid(format!(
            "--retry-period ({:?}) must be shorter than --renew-deadline ({:?}), or the leader cannot renew in time",
            args.retry_period, args.renew_deadline
        ))
        .into());
    }
    // NaN is not finite, so this refuses it too.
    if !args.kube_qps.is_finite()
        || args.kube_qps < 0.0
        || (args.kube_qps > 0.0 && args.kube_qps < MIN_KUBE_QPS)
    {
        return Err(Invalid(format!(
            "--kube-qps {}: give at least {MIN_KUBE_QPS} requests per second, or 0 for no limit",
            args.kube_qps
        ))
        .into());
    }
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "irsa".to_owned());
            format!("{host}-{}", std::process::id())
        });
    // The controller's own namespace: the Lease and the credential key Secret live there.
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "irsa-system".to_owned());
    let lease = args.leader_elect.then(|| LeaseConfig {
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
        ..LeaseConfig::new(&namespace, &args.lease_name, &identity)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.metrics_listen)
            .await
            .map_err(|e| {
                Invalid(format!(
                    "cannot listen on {} for metrics: {e} (pick another with --metrics-listen)",
                    args.metrics_listen
                ))
            })?;
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "failed to set up the Kubernetes client: {e} (set KUBECONFIG, or run in a pod with a service account)"
            )
        })?;
        let pipeline_options = PipelineOptions {
            chainguard_issuer: args.chainguard_issuer.clone(),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::new(pipeline_options.clone()).await?;
        let argocd = args.argocd_namespace.clone().map(|namespace| {
            irsa_controller::argocd::ArgoCdOptions {
                namespace,
                pipeline: pipeline_options,
                allowed: irsa_controller::argocd::Allowed {
                    token_urls: args.argocd_token_urls.clone(),
                    audiences: args.argocd_audiences.clone(),
                },
            }
        });
        let options = ControllerOptions {
            resync: args.resync,
            concurrency: args.concurrency,
            write_concurrency: args.write_concurrency,
            qps: args.kube_qps,
            burst: args.kube_burst,
            token_expiration: args.token_expiration,
            lease,
            instance: identity,
            key_namespace: namespace,
            watch_namespace: args.watch_namespace.clone(),
            argocd,
            ..ControllerOptions::default()
        };
        tracing::info!(metrics = %args.metrics_listen, ?options, "starting the controller");
        let requester = Arc::new(KubeTokenRequester::new(client.clone()));
        let controller = Controller::new(client, pipeline, requester, options);
        controller.run(Some(listener), shutdown_signal()).await?;
        Ok(Verdict::Ok)
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(
            parse_duration("-1s")
                .unwrap_err()
                .contains("not a duration")
        );
        for long in [
            "5124095576030432h",
            "99999999999999999999",
            "8761h",
            "307445734561825861m",
        ] {
            assert!(
                parse_duration(long).unwrap_err().contains("too long"),
                "{long}"
            );
        }
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_period("0s").unwrap_err().contains("more than 0"));
        assert!(parse_period("0ms").is_err());
        assert!(parse_token_expiration("9m").unwrap_err().contains("10m"));
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
    }
}
