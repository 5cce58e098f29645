//! `irsa sandbox`: the cluster and the cloud on one machine, for trying trust policies and the
//! whole chain without an EKS cluster or an AWS account.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use irsa_sandbox::cloud::CloudConfig;
use irsa_sandbox::stack::{Stack, StackConfig};

use crate::{Invalid, Verdict};

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    irsa sandbox --state-dir .sandbox --config sandbox.json &\n  \
    source .sandbox/env            # AWS_ENDPOINT_URL, AWS_REGION, KUBECONFIG, …\n  \
    kubectl create namespace ci && kubectl create serviceaccount builder -n ci\n  \
    kubectl create token builder -n ci --audience sts.amazonaws.com > token\n  \
    AWS_ROLE_ARN=arn:aws:iam::111122223333:role/puller AWS_WEB_IDENTITY_TOKEN_FILE=token \\\n      \
    irsa login 111122223333.dkr.ecr.us-east-1.amazonaws.com")]
pub(crate) struct SandboxArgs {
    /// Where the Kubernetes API server listens (HTTPS). Port 0 picks a free port.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:6443",
        env = "IRSA_SANDBOX_LISTEN"
    )]
    listen: SocketAddr,
    /// Where STS, ECR, ECR Public, Chainguard and the registry token service listen (HTTP).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:4566",
        env = "IRSA_SANDBOX_AWS_LISTEN"
    )]
    aws_listen: SocketAddr,
    /// Where to write `kubeconfig` and `env` (and keep the OIDC signing key across restarts).
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".irsa-sandbox",
        env = "IRSA_SANDBOX_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// The cloud's IAM set-up: JSON with `roles`, `oidcProviders`, `chainguard`, `accountId`, …
    #[arg(long, value_name = "FILE", env = "IRSA_SANDBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Do not start Debian's docker-registry even when it is installed.
    #[arg(long)]
    no_registry: bool,
    /// Where an admission webhook's Service listens, as NAMESPACE/NAME=IP:PORT (repeatable):
    /// the sandbox has no Services or DNS, so a MutatingWebhookConfiguration's
    /// `clientConfig.service` is called at that address (the Service's port is ignored),
    /// with TLS verified against its caBundle for NAME.NAMESPACE.svc. E.g.
    /// irsa-system/irsa-webhook=127.0.0.1:9443 for `irsa install --webhook`'s configuration.
    /// `clientConfig.url` needs no mapping.
    #[arg(long, value_name = "NAMESPACE/NAME=IP:PORT", value_parser = parse_webhook_service)]
    webhook_service: Vec<WebhookService>,
}

/// One `--webhook-service` mapping.
#[derive(Debug, Clone)]
struct WebhookService {
    namespace: String,
    name: String,
    addr: SocketAddr,
}

fn parse_webhook_service(s: &str) -> Result<WebhookService, String> {
    let usage = "use NAMESPACE/NAME=IP:PORT, e.g. irsa-system/irsa-webhook=127.0.0.1:9443";
    let (service, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} has no '=': {usage}"))?;
    let (namespace, name) = service
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("{service:?} is not NAMESPACE/NAME: {usage}"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not IP:PORT (the sandbox resolves no names): {usage}"))?;
    if addr.port() == 0 {
        return Err(format!("{addr}: port 0 cannot be called: {usage}"));
    }
    Ok(WebhookService {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        addr,
    })
}

pub(crate) fn run(args: SandboxArgs) -> anyhow::Result<Verdict> {
    for addr in [args.listen, args.aws_listen] {
        if !addr.ip().is_loopback() {
            return Err(Invalid(format!(
                "{addr}: the sandbox listens on loopback only (127.0.0.1 or ::1); it is a test stack with an admin token"
            ))
            .into());
        }
    }
    let mut cloud = match &args.config {
        Some(path) => CloudConfig::from_file(path)
            .map_err(|e| Invalid(format!("--config {}: {e}", path.display())))?,
        None => CloudConfig::default(),
    };
    if cloud.state_dir.is_none() {
        cloud.state_dir = Some(args.state_dir.clone());
    }
    let registry = !args.no_registry && on_path("docker-registry");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Invalid(format!("cannot listen on {addr}: {e} (pick another with --listen / --aws-listen, or port 0)")))
        };
        let api = bind(args.listen).await?;
        let aws = bind(args.aws_listen).await?;
        let stack = Stack::start(StackConfig { cloud, api_token: None, registry }, api, aws).await?;
        for service in &args.webhook_service {
            stack
                .api
                .admission()
                .map_service(&service.namespace, &service.name, service.addr);
        }
        let paths = stack.write_state(&args.state_dir)?;
        println!("irsa sandbox is running (Ctrl-C to stop)");
        println!("  Kubernetes API  {}", stack.api_url);
        println!("  OIDC issuer     {}", stack.cloud.issuer().issuer_url());
        println!("  AWS endpoint    {}  (STS, ECR, ECR Public, Chainguard /sts/exchange)", stack.aws_url);
        match &stack.registry {
            Some(r) => println!("  registry        {}", r.host()),
            None if args.no_registry => {}
            None => println!("  registry        not started: install Debian's docker-registry to pull with skopeo"),
        }
        for service in &args.webhook_service {
            println!("  webhook service {}/{} -> {}", service.namespace, service.name, service.addr);
        }
        println!("  kubeconfig      {}", paths.kubeconfig.display());
        println!("  env             {}  (source it)", paths.env.display());
        wait_for_signal().await;
        eprintln!("stopping");
        stack.shutdown().await;
        Ok::<_, anyhow::Error>(Verdict::Ok)
    })
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

pub(crate) fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
}
