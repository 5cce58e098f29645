//! `irsa webhook`: the pod identity webhook (a drop-in for amazon-eks-pod-identity-webhook),
//! and `irsa webhook mutate`, which prints offline the patch it would answer for a pod.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use irsa_webhook::admission::{IpBlock, Timing};
use irsa_webhook::config::{
    DEFAULT_ANNOTATION_PREFIX, DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_EXPIRATION,
    DEFAULT_TOKEN_MOUNT_PATH, clamp_expiration,
};
use irsa_webhook::identity::{parse_config_map, parse_container_credentials};
use irsa_webhook::run::RunOptions;
use irsa_webhook::{Config, ContainerCredentialsConfig, ServiceAccountInfo, mutate};
use serde_json::Value;

use crate::input::read_text;
use crate::output::print_json;
use crate::{Invalid, Verdict};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:\n  \
    irsa webhook --tls-cert /etc/webhook/certs/tls.crt --tls-key /etc/webhook/certs/tls.key\n  \
    irsa webhook mutate --pod pod.json --service-account sa.json --aws-default-region eu-west-1\n\n\
    Serves POST /mutate (AdmissionReview admission.k8s.io/v1), /healthz, /readyz (after the\n\
    service-account cache synced) and /metrics over HTTPS on --port. The certificate and key are\n\
    re-read when they change. Any internal error or timeout admits the pod unchanged, with a\n\
    warning and a metric. SIGTERM or Ctrl-C stops it. With IRSA_LOG=info it logs the address it\n\
    listens on and when its service-account cache synced (and how many accounts it holds).")]
pub(crate) struct WebhookArgs {
    #[command(subcommand)]
    command: Option<WebhookCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Print the JSON patch (or the mutated pod) the webhook would answer for a pod, offline:
    /// "why has my pod no credentials?".
    ///
    /// Reads the pod and its service account as JSON files (`kubectl get -o json`; YAML is not
    /// read), applies the same flags as the server, and prints the patch. An empty patch `[]`
    /// means the webhook would admit the pod unchanged; without --service-account stderr says
    /// why. A service-account file that is not the pod's (its spec.serviceAccountName, or
    /// `default`, in the pod's namespace) is refused.
    #[command(after_help = "Examples:\n  \
        kubectl get sa app -o json > sa.json; irsa webhook mutate --pod pod.json --service-account sa.json\n  \
        irsa webhook mutate --pod pod.json --service-account sa.json --output pod | jq .spec.containers[0].env")]
    Mutate(MutateArgs),
    /// Create (or renew) the webhook's CA and serving certificate in a Secret and set the
    /// caBundle of its MutatingWebhookConfiguration.
    ///
    /// What: a new CA and a certificate for <service>.<namespace>.svc signed by it, stored in
    /// the Secret (tls.crt, tls.key and ca.crt; type kubernetes.io/tls, or an empty Opaque one
    /// such as the one `irsa install --webhook` applies, which it fills), and the CA in
    /// the caBundle of every webhook of the configuration. Idempotent: a stored certificate
    /// that verifies for that name and does not expire within --renew-before is kept and
    /// nothing is written; otherwise it is replaced, and caBundle holds the new and the
    /// previous CA until the next renewal, so replicas still serving the previous one stay
    /// trusted until their mounted Secret catches up.
    ///
    /// When: `irsa install --webhook` runs it as a Job of the install and every week from a
    /// CronJob, under their own ServiceAccount irsa-webhook-certs (the webhook's serving pods
    /// hold none of its grants), so a certificate is renewed well before it expires
    /// (`kubectl create job --from=cronjob/irsa-webhook-certs irsa-webhook-certs-now -n
    /// irsa-system` renews on demand; running it again is always safe). Run it yourself for a
    /// webhook deployed some other way. It needs get and update of that Secret and get and
    /// patch of that MutatingWebhookConfiguration, nothing else; create of Secrets only when the
    /// Secret does not exist (the install applies it empty, so its step never creates one).
    #[command(after_help = "Examples:\n  \
        irsa webhook certs --namespace irsa-system --secret irsa-webhook-tls --service irsa-webhook \\\n      \
        --webhook-configuration irsa-pod-identity-webhook\n  \
        irsa webhook certs ... --validity 90d --renew-before 30d\n  \
        kubectl get secret irsa-webhook-tls -n irsa-system -o jsonpath='{.data.ca\\.crt}' | base64 -d")]
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
struct CertsArgs {
    /// Namespace of the webhook's Service and of the Secret.
    #[arg(long, short = 'n', value_name = "NS", env = "POD_NAMESPACE")]
    namespace: String,
    /// The Secret for tls.crt, tls.key and ca.crt (filled when empty, created when missing).
    #[arg(long, value_name = "NAME")]
    secret: String,
    /// The webhook's Service: the certificate is for <service>.<namespace>.svc.
    #[arg(long, value_name = "NAME")]
    service: String,
    /// The MutatingWebhookConfiguration whose webhooks get the caBundle (it must exist).
    #[arg(long, value_name = "NAME")]
    webhook_configuration: String,
    /// The webhook of that configuration whose caBundle is kept: only this entry is read
    /// and patched.
    #[arg(long, value_name = "NAME", default_value = irsa_core::names::WEBHOOK_NAME)]
    webhook_name: String,
    /// Lifetime of a new CA and certificate (e.g. 730d, 2160h).
    #[arg(long, value_name = "DURATION", default_value = "730d", value_parser = parse_duration)]
    validity: Duration,
    /// Replace a stored certificate that expires within this (shorter than --validity).
    #[arg(long, value_name = "DURATION", default_value = "180d", value_parser = parse_duration)]
    renew_before: Duration,
    /// Then wait until the Secret, mounted at DIR in this pod (a Secret volume), shows the
    /// stored certificate: for running it as an init container of the webhook's own pods, so
    /// that the webhook container starts with its files in place (`irsa install` runs it as
    /// a Job instead and needs no wait).
    #[arg(long, value_name = "DIR")]
    wait_for_mount: Option<PathBuf>,
    /// How long --wait-for-mount waits (the kubelet refreshes Secret volumes about every
    /// minute).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    wait_timeout: Duration,
}

/// The mutation's flags, with upstream's names and defaults.
#[derive(Debug, Args)]
struct MutationFlags {
    /// The service-account (and pod) annotation domain.
    #[arg(long, value_name = "DOMAIN", default_value = DEFAULT_ANNOTATION_PREFIX, env = "IRSA_WEBHOOK_ANNOTATION_PREFIX")]
    annotation_prefix: String,
    /// The token audience when the service account's `<prefix>/audience` names none.
    #[arg(long, value_name = "AUDIENCE", default_value = DEFAULT_TOKEN_AUDIENCE)]
    token_audience: String,
    /// Where the token volume is mounted in each container.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_TOKEN_MOUNT_PATH)]
    token_mount_path: String,
    /// Token lifetime in seconds when no annotation sets one (at least 600).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TOKEN_EXPIRATION)]
    token_expiration: i64,
    /// Set AWS_DEFAULT_REGION and AWS_REGION in containers that set neither.
    #[arg(long, value_name = "REGION", env = "IRSA_WEBHOOK_AWS_DEFAULT_REGION")]
    aws_default_region: Option<String>,
    /// Add AWS_STS_REGIONAL_ENDPOINTS=regional (the annotation overrides it both ways).
    #[arg(long, alias = "sts-regional-endpoints", value_name = "BOOL", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    sts_regional_endpoint: bool,
    /// Pod Identity: the token audience.
    #[arg(
        long,
        value_name = "AUDIENCE",
        default_value = irsa_core::names::POD_IDENTITY_PRINCIPAL
    )]
    container_credentials_audience: String,
    /// Pod Identity: the token mount path.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
    )]
    container_credentials_token_mount_path: String,
    /// Pod Identity: the token volume's name.
    #[arg(long, value_name = "NAME", default_value = "eks-pod-identity-token")]
    container_credentials_token_volume_name: String,
    /// Pod Identity: the token's file name in its volume.
    #[arg(long, value_name = "NAME", default_value = "eks-pod-identity-token")]
    container_credentials_token_path: String,
    /// Pod Identity: the agent (on IPv6 clusters http://[fd00:ec2::23]/v1/credentials).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://169.254.170.23/v1/credentials"
    )]
    container_credentials_full_uri: String,
}

impl MutationFlags {
    fn config(&self) -> Result<Config, Invalid> {
        if self.annotation_prefix.is_empty() || self.annotation_prefix.contains('/') {
            return Err(Invalid(format!(
                "--annotation-prefix {:?}: give a DNS domain such as eks.amazonaws.com, without a slash",
                self.annotation_prefix
            )));
        }
        Ok(Config {
            annotation_prefix: self.annotation_prefix.clone(),
            token_audience: self.token_audience.clone(),
            token_mount_path: self.token_mount_path.clone(),
            token_expiration: clamp_expiration(self.token_expiration),
            sts_regional_endpoints: self.sts_regional_endpoint,
            aws_default_region: self.aws_default_region.clone().filter(|r| !r.is_empty()),
            container_credentials: ContainerCredentialsConfig {
                audience: self.container_credentials_audience.clone(),
                mount_path: self.container_credentials_token_mount_path.clone(),
                volume_name: self.container_credentials_token_volume_name.clone(),
                token_path: self.container_credentials_token_path.clone(),
                full_uri: self.container_credentials_full_uri.clone(),
            },
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Port to listen on (HTTPS).
    #[arg(long, default_value_t = 443, env = "IRSA_WEBHOOK_PORT")]
    port: u16,
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0",
        env = "IRSA_WEBHOOK_BIND"
    )]
    bind: std::net::IpAddr,
    /// PEM certificate chain (re-read when it changes).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/webhook/certs/tls.crt"
    )]
    tls_cert: PathBuf,
    /// PEM private key (re-read when it changes).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/webhook/certs/tls.key"
    )]
    tls_key: PathBuf,
    /// Follow the pod-identity-webhook ConfigMap in --namespace.
    #[arg(long)]
    watch_config_map: bool,
    /// Namespace of the ConfigMap.
    #[arg(long, value_name = "NS", default_value = "eks", env = "POD_NAMESPACE")]
    namespace: String,
    /// The container-credentials file ({"identities":[{"namespace","serviceAccount"}]}),
    /// reloaded on change: those service accounts get Pod Identity credentials.
    #[arg(long, value_name = "FILE")]
    watch_container_credentials_config: Option<PathBuf>,
    /// How long a pod waits for its service account to reach the cache before the webhook asks
    /// the API server (e.g. 100ms; 0 asks at once).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    service_account_lookup_grace_period: Duration,
    /// Answer (admitting the pod unchanged) no later than this.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    deadline: Duration,
    /// Service-account lookups at the API server per second (cache misses only), granted
    /// round-robin between the namespaces of the reviewed pods; a namespace with QPS lookups
    /// already waiting has the next one admitted at once without credentials (and a warning).
    #[arg(long, value_name = "QPS", default_value_t = 20)]
    lookup_qps: u32,
    /// A block of the API server's addresses (repeatable; canonical CIDR, e.g. 10.0.0.0/24 or
    /// 192.0.2.7/32). Reviews from these that wait for a service account not cached yet are
    /// never evicted, and take the place of another peer's when all 64 are taken. Without any,
    /// the API server shares the places fairly with every other address that reaches the
    /// port, and a tenant with k pod addresses sending forged reviews can push it down to
    /// 64/(k+1) of them (to none from 64 addresses). Each address, trusted or not, waits in at
    /// most 32 places. List no block a tenant's pods can send from (on GKE or AKS the API
    /// server may call through agent pods in the pod network: then do not trust that range);
    /// a prefix of 0 is refused. `irsa install --webhook-api-server` passes its blocks here.
    #[arg(
        long = "trusted-peer",
        value_name = "CIDR",
        env = "IRSA_WEBHOOK_TRUSTED_PEERS",
        value_delimiter = ',',
        value_parser = parse_trusted_peer
    )]
    trusted_peers: Vec<IpBlock>,
    #[command(flatten)]
    flags: MutationFlags,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputKind {
    /// The JSON patch the webhook answers.
    Patch,
    /// The pod with the patch applied.
    Pod,
}

#[derive(Debug, Args)]
struct MutateArgs {
    /// The pod, as JSON (`kubectl get pod -o json`, or the manifest as JSON); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pod: String,
    /// Its service account, as JSON; leave out to see what happens when it is not found.
    #[arg(long, value_name = "FILE")]
    service_account: Option<String>,
    /// The pod-identity-webhook ConfigMap, as JSON (its data.config is read).
    #[arg(long, value_name = "FILE")]
    config_map: Option<String>,
    /// The container-credentials file (Pod Identity mode).
    #[arg(long, value_name = "FILE")]
    container_credentials_config: Option<String>,
    /// Namespace of the pod when its manifest names none.
    #[arg(long, value_name = "NS", default_value = "default")]
    namespace: String,
    /// What to print.
    #[arg(long, value_enum, default_value = "patch")]
    output: OutputKind,
    #[command(flatten)]
    flags: MutationFlags,
}

/// A `--trusted-peer` block: canonical CIDR, checked as `--webhook-api-server` is (no prefix
/// 0, no IPv4-mapped form).
fn parse_trusted_peer(s: &str) -> Result<IpBlock, String> {
    irsa_k8s::install::webhook::check_trusted_block(s)?;
    s.parse()
}

/// Parses `100ms`, `30s`, `10m`, `1h` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 100ms, 5s or 1m"))?;
    let seconds = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        other => Err(format!(
            "unknown unit {other:?} in {s:?}: use ms, s, m, h or d"
        )),
    }
}

pub(crate) fn run(args: WebhookArgs) -> anyhow::Result<Verdict> {
    match args.command {
        Some(WebhookCommand::Mutate(m)) => mutate_offline(m),
        Some(WebhookCommand::Certs(c)) => certs(c),
        None => serve(args.serve),
    }
}

fn read_json(path: &str, what: &str) -> anyhow::Result<Value> {
    let text = read_text(path, what)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Invalid(format!(
            "{what} {path:?} is not JSON: {e} (use `kubectl get ... -o json`)"
        ))
    })?;
    if !value.is_object() {
        return Err(Invalid(format!("{what} {path:?} is not a JSON object")).into());
    }
    Ok(value)
}

fn mutate_offline(args: MutateArgs) -> anyhow::Result<Verdict> {
    let config = args.flags.config()?;
    let pod = read_json(&args.pod, "--pod")?;
    if let Some(kind) = pod.get("kind").and_then(Value::as_str)
        && kind != "Pod"
    {
        return Err(Invalid(format!("--pod {:?} is a {kind}, not a Pod", args.pod)).into());
    }
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&args.namespace)
        .to_owned();
    let sa_name = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned();
    let annotations = match &args.service_account {
        None => None,
        Some(path) => {
            let sa = read_json(path, "--service-account")?;
            if let Some(kind) = sa.get("kind").and_then(Value::as_str)
                && kind != "ServiceAccount"
            {
                return Err(Invalid(format!(
                    "--service-account {path:?} is a {kind}, not a ServiceAccount"
                ))
                .into());
            }
            // The server looks up the pod's own account: answering for another one would show
            // a patch the webhook never sends.
            let name = sa.pointer("/metadata/name").and_then(Value::as_str);
            let sa_namespace = sa.pointer("/metadata/namespace").and_then(Value::as_str);
            if name.is_some_and(|n| n != sa_name) || sa_namespace.is_some_and(|n| n != namespace) {
                return Err(Invalid(format!(
                    "--service-account {path:?} is {}/{}, but the pod runs as {namespace}/{sa_name} \
                     (its spec.serviceAccountName, or default, in its namespace): pass that \
                     account's file (`kubectl get sa {sa_name} -n {namespace} -o json`)",
                    sa_namespace.unwrap_or(&namespace),
                    name.unwrap_or(&sa_name),
                ))
                .into());
            }
            let annotations: BTreeMap<String, String> = sa
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Some(annotations)
        }
    };
    let key = (namespace, sa_name);
    let config_map = match &args.config_map {
        None => None,
        Some(path) => {
            let cm = read_json(path, "--config-map")?;
            let data = cm
                .pointer("/data/config")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let entries = parse_config_map(data)
                .map_err(|e| Invalid(format!("--config-map {path:?}: {e}")))?;
            entries.get(&key).cloned()
        }
    };
    let pod_identity = match &args.container_credentials_config {
        None => false,
        Some(path) => {
            let text = read_text(path, "--container-credentials-config")?;
            parse_container_credentials(text.as_bytes())
                .map_err(|e| Invalid(format!("--container-credentials-config {path:?}: {e}")))?
                .contains(&key)
        }
    };
    let info = ServiceAccountInfo {
        annotations,
        config_map,
        pod_identity,
    };
    let no_account = info.annotations.is_none();
    let ops = mutate(&pod, &info, &config)?;
    if no_account && ops.is_empty() {
        eprintln!(
            "no --service-account given: the webhook would find no service account {}/{}, so no \
             role and nothing to inject (pass its file: `kubectl get sa {} -n {} -o json > sa.json; \
             ... --service-account sa.json`)",
            key.0, key.1, key.1, key.0
        );
    }
    let patch = serde_json::to_value(&ops)?;
    match args.output {
        OutputKind::Patch => print_json(&patch, true)?,
        OutputKind::Pod => {
            let patch: json_patch::Patch = serde_json::from_value(patch)?;
            let mut pod = pod;
            json_patch::patch(&mut pod, &patch)
                .map_err(|e| anyhow::anyhow!("the patch does not apply to the pod: {e}"))?;
            print_json(&pod, true)?;
        }
    }
    Ok(Verdict::Ok)
}

fn serve(args: ServeArgs) -> anyhow::Result<Verdict> {
    let config = args.flags.config()?;
    let options = RunOptions {
        config,
        timing: Timing {
            grace_period: args.service_account_lookup_grace_period,
            deadline: args.deadline,
            lookup_qps: args.lookup_qps.max(1),
            ..Timing::default()
        },
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        config_map_namespace: args.watch_config_map.then(|| args.namespace.clone()),
        container_credentials_file: args.watch_container_credentials_config.clone(),
        trusted_peers: args.trusted_peers.clone(),
    };
    // Refuse an unreadable pair before anything else; the server reads it again per change.
    irsa_webhook::server::TlsFiles::new(&args.tls_cert, &args.tls_key)
        .map_err(|e| Invalid(format!("{e} (--tls-cert, --tls-key)")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let addr = std::net::SocketAddr::new(args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Invalid(format!(
                "cannot listen on {addr}: {e} (pick another with --port or --bind)"
            ))
        })?;
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "failed to set up the Kubernetes client: {e} (set KUBECONFIG, or run in a pod with a service account)"
            )
        })?;
        irsa_webhook::run::run(options, client, listener, shutdown_signal())
            .await?;
        Ok(Verdict::Ok)
    })
}

fn certs(args: CertsArgs) -> anyhow::Result<Verdict> {
    use irsa_webhook::provision::{CertOutcome, CertsRequest, ProvisionError, ensure};
    for (flag, value) in [
        ("--namespace", &args.namespace),
        ("--secret", &args.secret),
        ("--service", &args.service),
        ("--webhook-configuration", &args.webhook_configuration),
        ("--webhook-name", &args.webhook_name),
    ] {
        if value.is_empty() {
            return Err(Invalid(format!("{flag} is empty: name the object")).into());
        }
    }
    // Refused before connecting: the same checks `ensure` makes first.
    if args.validity > irsa_webhook::provision::MAX_VALIDITY {
        return Err(Invalid(ProvisionError::TooLong.to_string()).into());
    }
    let request = CertsRequest {
        namespace: args.namespace.clone(),
        secret: args.secret.clone(),
        service: args.service.clone(),
        webhook_configuration: args.webhook_configuration.clone(),
        webhook_name: args.webhook_name.clone(),
        validity: args.validity,
        renew_before: args.renew_before,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "failed to set up the Kubernetes client: {e} (set KUBECONFIG, or run in a pod with a service account)"
            )
        })?;
        let report = match ensure(client, &request, std::time::SystemTime::now()).await {
            Ok(r) => r,
            Err(
                e @ (ProvisionError::ConfigurationNotFound(_)
                | ProvisionError::NoWebhooks { .. }
                | ProvisionError::SecretType { .. }
                | ProvisionError::Window { .. }
                | ProvisionError::TooLong),
            ) => return Err(Invalid(e.to_string()).into()),
            Err(e) => return Err(e.into()),
        };
        let secret = format!("secret {}/{}", request.namespace, request.secret);
        let what = match &report.certificate {
            CertOutcome::Kept => format!("kept the certificate in {secret}"),
            CertOutcome::Created => format!("created {secret}"),
            CertOutcome::Filled => format!("stored the first certificate in {secret}"),
            CertOutcome::Rotated(why) => format!("renewed the certificate in {secret} ({why})"),
        };
        // Only the named webhook is touched: it was either patched or already held the CA.
        let bundle = if report.webhooks_patched == 0 {
            "already current on"
        } else {
            "set on"
        };
        println!(
            "{what} for {}.{}.svc; caBundle {bundle} {} of {} webhook(s) of mutatingwebhookconfiguration {}",
            request.service,
            request.namespace,
            report.webhooks_patched.max(1),
            report.webhooks,
            request.webhook_configuration
        );
        if let Some(dir) = &args.wait_for_mount {
            irsa_webhook::provision::wait_for_mount(
                dir,
                &report.cert_pem,
                Duration::from_secs(1),
                args.wait_timeout,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        }
        Ok(Verdict::Ok)
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
