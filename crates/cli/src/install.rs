//! `irsa install`: print the manifests that deploy irsa (Namespace, CRDs, ServiceAccount, RBAC,
//! controller Deployment) as YAML, for `kubectl apply --server-side -f -` or a GitOps repository.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use irsa_k8s::install::{DEFAULT_NAMESPACE, DEFAULT_REPLICAS, Scope, default_image, rbac_grants};
use irsa_k8s::install::{WEBHOOK_CERTS_GRANTS_NOTE, WEBHOOK_GRANTS, WebhookScope};
use irsa_k8s::{InstallOptions, LogFormat, Part, WebhookCerts};

use crate::{Invalid, Verdict};

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// What to print instead of the cluster's manifests.
    #[command(subcommand)]
    other: Option<crate::credential_provider::InstallCommand>,
    /// Namespace for the controller, its ServiceAccount, its leader-election Lease and its
    /// credential key [default: irsa-system; with --watch-namespace, that namespace].
    #[arg(long, short = 'n', value_name = "NAME", env = "IRSA_NAMESPACE")]
    namespace: Option<String>,
    /// Controller image: a repository with a tag or digest. To pull from a mirror, copy the
    /// release there (`skopeo copy --all docker://ghcr.io/irsa-dev/irsa:<version>
    /// docker://<mirror>/irsa:<version>`, which keeps the signatures' digest) and pass
    /// `--image <mirror>/irsa:<version>` or, to pin it, `--image <mirror>/irsa@sha256:<digest>`.
    /// Pods pull it with their node's credentials (or the namespace's imagePullSecrets).
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
    /// One-namespace mode, for teams without cluster-admin: the controller serves only
    /// PullSecrets in NS (no ClusterPullSecrets, no namespace watch) and is bound by a Role and
    /// RoleBinding there instead of a ClusterRole; no Namespace object is printed. The CRDs are
    /// cluster-scoped: an admin installs them once (`--only crds`), so pair this with --no-crds.
    #[arg(long, value_name = "NS", env = "IRSA_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Let the controller fill Argo CD repository secrets in NS (the Argo CD namespace) from
    /// workload identity: passes --argocd-namespace NS to the controller and adds a Role and
    /// RoleBinding `irsa-controller-argocd` in NS only (secrets get/list/watch/patch, service
    /// accounts list/watch, serviceaccounts/token create, events). Anyone who may write
    /// secrets in NS may then use any role-annotated service account there: keep NS
    /// admin-only. Example: irsa install --argocd-namespace argocd
    #[arg(long, value_name = "NS", env = "IRSA_ARGOCD_NAMESPACE")]
    argocd_namespace: Option<String>,
    /// Add a ValidatingAdmissionPolicy (Kubernetes 1.30+) that refuses a PullSecret whose
    /// author may not create tokens for the service account it names (create
    /// serviceaccounts/token; for `identity.ambient`, for irsa's own service account), so that
    /// nobody borrows a more privileged identity of their namespace through irsa. The check
    /// applies to whoever sends the request: under GitOps (Argo CD, Flux) that is the GitOps
    /// tool's service account, not the commit's author.
    #[arg(long)]
    admission_policy: bool,
    /// Add the pod identity webhook (`irsa webhook`), which gives pods the IAM role of their
    /// service account (`eks.amazonaws.com/role-arn`): for kind, k3s, kubeadm and other
    /// clusters without EKS's own (do not add it on EKS). Two replicas behind a Service, a
    /// PodDisruptionBudget and a MutatingWebhookConfiguration that fails open (pods are
    /// admitted unchanged when it is down) and skips pods labelled
    /// eks.amazonaws.com/skip-pod-identity-webhook. A Job of the install, and a CronJob every
    /// week, run `irsa webhook certs` under their own ServiceAccount irsa-webhook-certs: it
    /// stores (or, near expiry, renews) the CA and serving certificate in the Secret
    /// irsa-webhook-tls and sets the configuration's caBundle. The install applies that Secret
    /// empty (no type, no data: applying the install again never touches the certificate), so
    /// the step needs no create of Secrets. The webhook's pods (ServiceAccount irsa-webhook,
    /// which may only read service accounts and its ConfigMap) mount its tls.crt and tls.key
    /// and start once the Job has filled it.
    /// A NetworkPolicy admits ingress to the webhook's pods on port 9443 only (reviews,
    /// probes and /metrics). By default it restricts the port, not the sources: the addresses
    /// the API server calls from differ per distribution (control-plane node addresses on
    /// kubeadm and k3s, a managed range on hosted control planes). Where you know them, pass
    /// --webhook-api-server.
    #[arg(long)]
    webhook: bool,
    /// With --webhook: the API server calls the webhook from this CIDR block (repeatable;
    /// control-plane node addresses on kubeadm and k3s, the provider's range on hosted
    /// control planes; 192.0.2.7/32 for one address). The NetworkPolicy then admits ingress
    /// only from these blocks and the --webhook-allow-from ones, and the webhook trusts them
    /// (`irsa webhook --trusted-peer`): reviews from them waiting for a service account are
    /// never evicted by other addresses'. Why: anything else that reaches the webhook's port
    /// can send it forged AdmissionReviews, which share its bounded places for reviews waiting
    /// for service accounts with the API server's (those of a pod whose account is not cached
    /// yet then fail open, without credentials). List every API server replica's address (one
    /// left out is an untrusted peer, the first to lose places), and no block a tenant's pods
    /// can send from (on GKE or AKS the API server may call through agent pods in the pod
    /// network: then leave this out).
    /// Without it (and --webhook-allow-from), the policy stays open to every source.
    #[arg(long, value_name = "CIDR", requires = "webhook")]
    webhook_api_server: Vec<String>,
    /// With --webhook: also admit ingress from this CIDR block (repeatable), e.g. your metrics
    /// scraper's range, or it loses /metrics once --webhook-api-server narrows the policy.
    /// These blocks are admitted, never trusted (a scraper's range is often the whole pod
    /// network). The kubelet's probes are always admitted from the pod's own node.
    #[arg(long, value_name = "CIDR", requires = "webhook")]
    webhook_allow_from: Vec<String>,
    /// With --webhook: let cert-manager (installed separately) make the certificate instead —
    /// a self-signed Issuer, a Certificate and the cert-manager.io/inject-ca-from annotation;
    /// no Job, no CronJob and no certificate grants.
    #[arg(long, requires = "webhook")]
    webhook_cert_manager: bool,
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
    /// The opt-in ValidatingAdmissionPolicy and its binding (see --admission-policy).
    AdmissionPolicy,
    /// The opt-in pod identity webhook (see --webhook).
    Webhook,
}

impl From<PartArg> for Part {
    fn from(p: PartArg) -> Self {
        match p {
            PartArg::Namespace => Part::Namespace,
            PartArg::Crds => Part::Crds,
            PartArg::Rbac => Part::Rbac,
            PartArg::Controller => Part::Controller,
            PartArg::AdmissionPolicy => Part::AdmissionPolicy,
            PartArg::Webhook => Part::Webhook,
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
        if self.admission_policy && !parts.contains(&Part::AdmissionPolicy) {
            parts.push(Part::AdmissionPolicy);
        }
        if self.webhook && !parts.contains(&Part::Webhook) {
            parts.push(Part::Webhook);
        }
        let namespace = self
            .namespace
            .or_else(|| self.watch_namespace.clone())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        InstallOptions {
            namespace,
            watch_namespace: self.watch_namespace,
            argocd_namespace: self.argocd_namespace,
            image: self.image,
            replicas: self.replicas,
            role_arn: self.role_arn,
            log_format: match self.log_format {
                LogFormatArg::Json => LogFormat::Json,
                LogFormatArg::Plain => LogFormat::Plain,
            },
            parts,
            webhook_certs: if self.webhook_cert_manager {
                WebhookCerts::CertManager
            } else {
                WebhookCerts::Irsa
            },
            webhook_allow_from: self.webhook_allow_from,
            webhook_api_server: self.webhook_api_server,
        }
    }
}

pub(crate) fn run(args: InstallArgs) -> anyhow::Result<Verdict> {
    if let Some(other) = args.other {
        return crate::credential_provider::install(other);
    }
    let yaml = irsa_k8s::manifests_yaml(&args.options()).map_err(|e| Invalid(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush())
        .context("failed to write the manifests to stdout")?;
    Ok(Verdict::Ok)
}

/// `irsa install -h`'s epilogue.
pub(crate) const EXAMPLES: &str = "Examples:\n  \
    irsa install --role-arn arn:aws:iam::123456789012:role/irsa | kubectl apply --server-side -f -\n  \
    irsa install --namespace platform --replicas 1 --image registry.example.com/irsa:0.1.0 > irsa.yaml\n  \
    irsa install --only crds | kubectl apply --server-side -f -     # CRDs first, e.g. in CI\n  \
    irsa install --no-crds > deploy/irsa.yaml                        # CRDs managed elsewhere\n  \
    irsa install --watch-namespace team-a --no-crds | kubectl apply --server-side -f -   # Roles only\n  \
    irsa install --webhook | kubectl apply --server-side -f -        # + the pod identity webhook (not on EKS)\n  \
    irsa install --webhook --webhook-cert-manager > irsa.yaml        # its certificate from cert-manager\n  \
    irsa install --webhook --webhook-api-server 10.0.0.0/24 > irsa.yaml   # only the API server reaches it\n  \
    kubectl apply -k deploy/base                                     # the same objects as `irsa install`\n  \
    # deploy/components/webhook: a kustomize Component holding what --webhook adds";

/// `irsa install --help`'s epilogue: the examples and every grant with its reason.
pub(crate) fn after_long_help() -> String {
    format!("{EXAMPLES}\n\n{}", grants_help())
}

/// A grant's resources as `kubectl auth can-i` names them (`secrets`, `leases.coordination.k8s.io`).
fn resources_of(grant: &irsa_k8s::install::Grant) -> String {
    let named = grant.resources.iter().map(|r| {
        if grant.group.is_empty() {
            (*r).to_owned()
        } else {
            format!("{r}.{}", grant.group)
        }
    });
    named.collect::<Vec<_>>().join(",")
}

/// `irsa install --help`'s account of every RBAC grant and why it exists, from the same table
/// the manifests are built from.
pub(crate) fn grants_help() -> String {
    let mut out =
        String::from("RBAC (least privilege; every grant is one the controller uses, and why):\n");
    for (scope, grant) in rbac_grants() {
        let resources = resources_of(grant);
        let scope = match scope {
            Scope::Served => "served namespaces".to_owned(),
            Scope::ClusterOnly => "cluster (not in --watch-namespace mode)".to_owned(),
            Scope::Own([]) => "own namespace".to_owned(),
            Scope::Own(names) => format!("own namespace, only {}", names.join(",")),
        };
        out.push_str(&format!(
            "  {resources} [{verbs}] ({scope}): {why}\n",
            verbs = grant.verbs.join(" "),
            why = grant.why
        ));
    }
    out.push_str("  with --argocd-namespace NS, a Role in NS only:\n");
    for grant in irsa_k8s::install::ARGOCD_GRANTS {
        out.push_str(&format!(
            "  {resources} [{verbs}] (the Argo CD namespace): {why}\n",
            resources = resources_of(grant),
            verbs = grant.verbs.join(" "),
            why = grant.why
        ));
    }
    for (certs, heading) in [
        (
            false,
            "The webhook's serving pods (--webhook; ServiceAccount irsa-webhook):\n",
        ),
        (
            true,
            "Its certificate step (--webhook, not with --webhook-cert-manager; the Job and CronJob \
             irsa-webhook-certs, ServiceAccount irsa-webhook-certs):\n",
        ),
    ] {
        out.push_str(heading);
        for g in WEBHOOK_GRANTS.iter().filter(|g| g.certs == certs) {
            let grant = g.grant;
            let resources = resources_of(&grant);
            let scope = match g.scope {
                WebhookScope::Cluster([]) => "cluster".to_owned(),
                WebhookScope::Cluster(names) => format!("cluster, only {}", names.join(",")),
                WebhookScope::Own([]) => "own namespace".to_owned(),
                WebhookScope::Own(names) => format!("own namespace, only {}", names.join(",")),
            };
            out.push_str(&format!(
                "  {resources} [{verbs}] ({scope}): {why}\n",
                verbs = grant.verbs.join(" "),
                why = grant.why
            ));
        }
    }
    out.push_str(&format!("  Note: {WEBHOOK_CERTS_GRANTS_NOTE}.\n"));
    out
}
