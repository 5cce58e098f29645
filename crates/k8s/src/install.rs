//! Everything needed to run irsa in a cluster, as objects and as the YAML `irsa install` prints
//! (the defaults are committed as `deploy/install.yaml`).
//!
//! The output, in apply order: the Namespace, the CRDs, the `irsa` ServiceAccount, the
//! controller's least-privilege RBAC (a ClusterRole and binding for what it reconciles, a Role
//! and binding for its leader-election Lease and its credential key in its own namespace), the
//! controller Deployment and, with more than one replica, a PodDisruptionBudget. Opt-in: a
//! `ValidatingAdmissionPolicy` that lets only those who may act as a service account name it in
//! a PullSecret ([`Part::AdmissionPolicy`]). With [`InstallOptions::watch_namespace`] the
//! controller serves one namespace and needs only Roles there ([`rbac_grants`] lists every
//! grant and why it exists).
//!
//! Regenerate the committed files with
//! `cargo run -p irsa-k8s --example gen-install > deploy/install.yaml` and
//! `cargo run -p irsa-k8s --example gen-deploy` (the kustomize bases, [`kustomize_files`]); a
//! test fails when they drift from this code.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use irsa_core::arn::{ArnError, RoleArn};
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccount, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use thiserror::Error;

use crate::resources::{GROUP, VERSION};

pub mod webhook;
use crate::validation::check_dns_label;
pub use webhook::{
    WEBHOOK_CERTS, WEBHOOK_CERTS_GRANTS_NOTE, WEBHOOK_GRANTS, WebhookCerts, WebhookGrant,
    WebhookScope,
};

/// The namespace irsa is installed into unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "irsa-system";
/// The controller's replicas unless told otherwise: one leads, one stands by.
pub const DEFAULT_REPLICAS: u32 = 2;
/// The name of irsa's ServiceAccount.
pub const SERVICE_ACCOUNT: &str = "irsa";
/// The name of the Deployment, the ClusterRole and their bindings.
pub const CONTROLLER: &str = "irsa-controller";
/// The annotation that gives a ServiceAccount an IAM role (EKS IRSA, `irsa webhook`).
pub use irsa_core::names::ROLE_ARN_ANNOTATION;
/// The metrics and health port of the controller.
pub const METRICS_PORT: i32 = 8080;
/// The name of that port.
pub const METRICS_PORT_NAME: &str = "http-metrics";
/// The uid and gid the controller runs as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// The Lease the replicas elect a leader with (`irsa controller --lease-name`'s default).
pub const LEASE_NAME: &str = "irsa-controller";
/// The Secret in the controller's namespace holding the key that signs what irsa writes, so
/// that a credential read back from the cluster is trusted only when irsa wrote it.
pub const CREDENTIAL_KEY_SECRET: &str = "irsa-credential-key";
/// The name of the opt-in admission policy and its binding.
pub const ADMISSION_POLICY: &str = "irsa-pullsecret-identity";
/// glibc's allocator settings for the controller's container (`GLIBC_TUNABLES`; the image's
/// base is glibc): two arenas instead of eight per core, blocks of 64 KiB and more mapped on
/// their own and the heap's free top returned from 64 KiB. A (re-)list of 10,000 objects
/// otherwise leaves its transient peak resident; with these the controller's RSS at 10,000
/// namespaces and Secrets drops by about a sixth (`cargo bench -p irsa --bench controller`,
/// figure 7b, which runs the controller with this same value).
pub const CONTROLLER_GLIBC_TUNABLES: &str =
    "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=65536";
/// Replicas beyond this only wait for a lease: a mistake, not a choice.
const MAX_REPLICAS: u32 = 10;

/// The default image: irsa's release of the same version as this crate.
pub fn default_image() -> String {
    format!("ghcr.io/irsa-dev/irsa:{}", env!("CARGO_PKG_VERSION"))
}

/// The log format the controller writes (`IRSA_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
    /// Human-readable lines.
    Plain,
}

impl LogFormat {
    /// The value of `IRSA_LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Plain => "plain",
        }
    }
}

/// A group of objects that `irsa install --only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The Namespace.
    Namespace,
    /// The CustomResourceDefinitions.
    Crds,
    /// The ServiceAccount, ClusterRole, Role and their bindings.
    Rbac,
    /// The Deployment and its PodDisruptionBudget.
    Controller,
    /// Opt-in: the ValidatingAdmissionPolicy (and binding) that refuses a PullSecret naming a
    /// service account its author may not create tokens for.
    AdmissionPolicy,
    /// Opt-in: the pod identity webhook ([`webhook`]): its RBAC, Deployment, Service and
    /// MutatingWebhookConfiguration.
    Webhook,
}

impl Part {
    /// The parts installed by default, in apply order.
    pub const ALL: [Part; 4] = [Part::Namespace, Part::Crds, Part::Rbac, Part::Controller];
    /// Every part, the opt-in ones included, in apply order.
    pub const EVERY: [Part; 6] = [
        Part::Namespace,
        Part::Crds,
        Part::Rbac,
        Part::Controller,
        Part::AdmissionPolicy,
        Part::Webhook,
    ];

    /// The part's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Namespace => "namespace",
            Part::Crds => "crds",
            Part::Rbac => "rbac",
            Part::Controller => "controller",
            Part::AdmissionPolicy => "admission-policy",
            Part::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Part::EVERY
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown part {s:?}: use namespace, crds, rbac, controller, admission-policy or webhook"
                )
            })
    }
}

/// What to install. `Default` is what `deploy/install.yaml` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// The namespace of the controller, its ServiceAccount and its Lease (a DNS label).
    pub namespace: String,
    /// The controller's container image.
    pub image: String,
    /// Controller replicas (1 to 10); they elect a leader, so only one writes at a time.
    pub replicas: u32,
    /// The IAM role for irsa's own ServiceAccount (`eks.amazonaws.com/role-arn`), used for
    /// resources that ask for the controller's ambient identity.
    pub role_arn: Option<String>,
    /// The controller's log format.
    pub log_format: LogFormat,
    /// Which parts to print, in apply order whatever the order here.
    pub parts: Vec<Part>,
    /// One-namespace mode: the controller serves only PullSecrets in this namespace, bound by
    /// Roles there and in [`InstallOptions::namespace`] (no ClusterRole, no Namespace object:
    /// for teams without cluster-admin, once an admin has installed the CRDs).
    pub watch_namespace: Option<String>,
    /// Who makes the webhook's certificate ([`Part::Webhook`] only).
    pub webhook_certs: WebhookCerts,
    /// CIDR blocks the webhook's NetworkPolicy admits ingress from besides
    /// [`InstallOptions::webhook_api_server`] (a metrics scraper's range); with both empty:
    /// from anywhere, on the webhook's port only ([`Part::Webhook`] only). Never trusted peers.
    pub webhook_allow_from: Vec<String>,
    /// The API server's CIDR blocks: admitted by the NetworkPolicy and passed to the webhook as
    /// `--trusted-peer` (its reviews waiting for service accounts are never evicted).
    pub webhook_api_server: Vec<String>,
    /// Serve Argo CD repository secrets in this namespace (`irsa controller
    /// --argocd-namespace`): a Role and RoleBinding there with [`ARGOCD_GRANTS`], nowhere else.
    pub argocd_namespace: Option<String>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: default_image(),
            replicas: DEFAULT_REPLICAS,
            role_arn: None,
            log_format: LogFormat::default(),
            parts: Part::ALL.to_vec(),
            watch_namespace: None,
            webhook_certs: WebhookCerts::default(),
            webhook_allow_from: Vec::new(),
            webhook_api_server: Vec::new(),
            argocd_namespace: None,
        }
    }
}

/// Why the options cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstallError {
    /// The namespace is not a DNS label.
    #[error("invalid namespace: {0}")]
    Namespace(String),
    /// The image is not an image reference.
    #[error("invalid image {image:?}: {reason}")]
    Image {
        /// The image as given.
        image: String,
        /// Why.
        reason: String,
    },
    /// Too few or too many replicas.
    #[error(
        "invalid replicas {0}: run 1 to {MAX_REPLICAS} (replicas elect a leader; 2 survive a node drain)"
    )]
    Replicas(u32),
    /// The role ARN is not an IAM role ARN.
    #[error(transparent)]
    RoleArn(ArnError),
    /// The watched namespace is not a DNS label.
    #[error("invalid --watch-namespace: {0}")]
    WatchNamespace(String),
    /// The Argo CD namespace is not a DNS label.
    #[error("invalid --argocd-namespace: {0}")]
    ArgoCdNamespace(String),
    /// The webhook cannot run in one-namespace mode.
    #[error(
        "--webhook cannot be combined with --watch-namespace: the webhook watches every \
         service account and registers a cluster-wide MutatingWebhookConfiguration, which needs \
         a ClusterRole; install it separately as a cluster admin (`irsa install --only webhook \
         --webhook`)"
    )]
    WebhookNeedsCluster,
    /// No part was selected.
    #[error("nothing to install: the selected parts are empty (check --only and --no-crds)")]
    NothingSelected,
    /// A `--webhook-allow-from` or `--webhook-api-server` block is not a canonical CIDR block.
    #[error("invalid {flag} {block:?}: {reason}")]
    AllowFrom {
        /// The flag that gave it.
        flag: &'static str,
        /// The block as given.
        block: String,
        /// Why.
        reason: String,
    },
}

impl InstallOptions {
    /// Checks every option, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), InstallError> {
        check_dns_label(&self.namespace).map_err(InstallError::Namespace)?;
        check_image(&self.image).map_err(|reason| InstallError::Image {
            image: self.image.clone(),
            reason,
        })?;
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(InstallError::Replicas(self.replicas));
        }
        if let Some(arn) = &self.role_arn {
            RoleArn::from_str(arn).map_err(InstallError::RoleArn)?;
        }
        if let Some(ns) = &self.watch_namespace {
            check_dns_label(ns).map_err(InstallError::WatchNamespace)?;
        }
        if let Some(ns) = &self.argocd_namespace {
            check_dns_label(ns).map_err(InstallError::ArgoCdNamespace)?;
        }
        if self.parts.is_empty() {
            return Err(InstallError::NothingSelected);
        }
        if self.watch_namespace.is_some() && self.parts.contains(&Part::Webhook) {
            return Err(InstallError::WebhookNeedsCluster);
        }
        let blocks = (self.webhook_allow_from.iter())
            .map(|b| ("--webhook-allow-from", b))
            .chain((self.webhook_api_server.iter()).map(|b| ("--webhook-api-server", b)));
        for (flag, block) in blocks {
            let check = if flag == "--webhook-api-server" {
                webhook::check_trusted_block
            } else {
                webhook::check_cidr
            };
            check(block).map_err(|reason| InstallError::AllowFrom {
                flag,
                block: block.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    fn wants(&self, part: Part) -> bool {
        // One-namespace mode is for those who cannot create namespaces: the namespace exists.
        self.parts.contains(&part) && !(part == Part::Namespace && self.watch_namespace.is_some())
    }
}

/// An image for a Pod: a repository with an optional tag or digest, no scheme.
fn check_image(image: &str) -> Result<(), String> {
    if image.contains("://") {
        return Err("a container image has no scheme: drop the `…://` prefix".to_owned());
    }
    let parsed = irsa_core::registry::parse(image).map_err(|e| e.to_string())?;
    if parsed.repository.is_none() {
        return Err(format!(
            "this is a registry host, not an image: add the repository, e.g. {image}/irsa:{}",
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(())
}

/// One object of the install, serialized as its own kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Object {
    Namespace(Box<Namespace>),
    Crd(Box<CustomResourceDefinition>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    Secret(Box<k8s_openapi::api::core::v1::Secret>),
    Deployment(Box<Deployment>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    AdmissionPolicy(Box<ValidatingAdmissionPolicy>),
    AdmissionPolicyBinding(Box<ValidatingAdmissionPolicyBinding>),
    Service(Box<k8s_openapi::api::core::v1::Service>),
    NetworkPolicy(Box<k8s_openapi::api::networking::v1::NetworkPolicy>),
    MutatingWebhookConfiguration(
        Box<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>,
    ),
    Job(Box<k8s_openapi::api::batch::v1::Job>),
    CronJob(Box<k8s_openapi::api::batch::v1::CronJob>),
    /// Kinds k8s-openapi has no type for (cert-manager's).
    Raw(Box<serde_json::Value>),
}

/// Every object of the install as JSON, in apply order.
pub fn manifests(options: &InstallOptions) -> Result<Vec<serde_json::Value>, InstallError> {
    Ok(objects(options)?
        .iter()
        // Kubernetes objects are maps of strings, numbers and lists: serialization cannot fail.
        .map(|o| serde_json::to_value(o).expect("a Kubernetes object serializes to JSON"))
        .collect())
}

/// Every object of the install as one multi-document YAML stream, with a header saying how it
/// was made.
pub fn manifests_yaml(options: &InstallOptions) -> Result<String, InstallError> {
    let header = format!(
        "# irsa {version}: generated by `irsa install`; do not edit.\n\
         # deploy/install.yaml: `cargo run -p irsa-k8s --example gen-install > deploy/install.yaml`\n",
        version = env!("CARGO_PKG_VERSION")
    );
    Ok(yaml_stream(header, &objects(options)?))
}

fn yaml_stream(mut out: String, objects: &[Object]) -> String {
    for object in objects {
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(object).expect("a Kubernetes object serializes to YAML"),
        );
    }
    out
}

/// The kustomize tree committed under `deploy/`, as (path relative to `deploy/`, content):
/// `base/` holds what `irsa install` prints with default flags, one file per part;
/// `components/admission-policy/` is the opt-in admission policy as a kustomize Component.
pub fn kustomize_files() -> Vec<(String, String)> {
    let header = |what: &str| {
        format!(
            "# irsa {version}: {what}; generated by `cargo run -p irsa-k8s --example gen-deploy`; do not edit.\n",
            version = env!("CARGO_PKG_VERSION")
        )
    };
    let part = |p: Part| {
        let options = InstallOptions {
            parts: vec![p],
            ..InstallOptions::default()
        };
        // The default options are valid (a unit test holds them to it).
        let objects = objects(&options).expect("the default install options are valid");
        yaml_stream(
            header(&format!("the {p} part of `irsa install --only {p}`")),
            &objects,
        )
    };
    let mut files: Vec<(String, String)> = Part::ALL
        .iter()
        .map(|p| (format!("base/{p}.yaml"), part(*p)))
        .collect();
    let resources: String = Part::ALL.iter().map(|p| format!("- {p}.yaml\n")).collect();
    files.push((
        "base/kustomization.yaml".to_owned(),
        format!(
            "{}\
             # `kubectl apply -k deploy/base` installs what `irsa install` prints with default flags.\n\
             # In an overlay: `images: [{{name: ghcr.io/irsa-dev/irsa, newName: <mirror>/irsa}}]` for a\n\
             # mirror, `components: [<path>/deploy/components/admission-policy]` for the admission policy,\n\
             # `components: [<path>/deploy/components/webhook]` for the pod identity webhook.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\n\
             kind: Kustomization\n\
             resources:\n{resources}",
            header("the default install")
        ),
    ));
    files.push((
        "components/admission-policy/admission-policy.yaml".to_owned(),
        part(Part::AdmissionPolicy),
    ));
    files.push((
        "components/webhook/webhook.yaml".to_owned(),
        part(Part::Webhook),
    ));
    files.push((
        "components/webhook/kustomization.yaml".to_owned(),
        format!(
            "{}\
             # Opt-in (`irsa install --webhook`): the pod identity webhook, which gives pods the IAM role\n\
             # of their service account (not on EKS, which runs its own). A Job (and a weekly CronJob)\n\
             # runs `irsa webhook certs` under its own ServiceAccount irsa-webhook-certs: it makes the\n\
             # Secret irsa-webhook-tls and the caBundle; the webhook's pods start once the Secret exists.\n\
             # Its NetworkPolicy admits ingress on port 9443 only, from anywhere: the API server's\n\
             # addresses differ per distribution; patch in `from` (ipBlock, namespaceSelector) for yours.\n\
             apiVersion: kustomize.config.k8s.io/v1alpha1\n\
             kind: Component\n\
             resources:\n\
             - webhook.yaml\n",
            header("the pod identity webhook component")
        ),
    ));
    files.push((
        "components/admission-policy/kustomization.yaml".to_owned(),
        format!(
            "{}\
             # Opt-in (`irsa install --admission-policy`): refuses a PullSecret whose author may not\n\
             # create tokens for the service account it names. Needs Kubernetes 1.30 or newer.\n\
             apiVersion: kustomize.config.k8s.io/v1alpha1\n\
             kind: Component\n\
             resources:\n\
             - admission-policy.yaml\n",
            header("the admission policy component")
        ),
    ));
    files
}

fn objects(o: &InstallOptions) -> Result<Vec<Object>, InstallError> {
    o.validate()?;
    let mut out = Vec::new();
    if o.wants(Part::Namespace) {
        out.push(Object::Namespace(Box::new(namespace(o))));
    }
    if o.wants(Part::Crds) {
        out.extend(crate::crds().into_iter().map(|c| Object::Crd(Box::new(c))));
    }
    if o.wants(Part::Rbac) {
        out.push(Object::ServiceAccount(Box::new(service_account(o))));
        match &o.watch_namespace {
            None => {
                out.push(Object::ClusterRole(Box::new(cluster_role())));
                out.push(Object::ClusterRoleBinding(Box::new(cluster_role_binding(
                    o,
                ))));
                out.push(Object::Role(Box::new(own_namespace_role(o, false))));
                out.push(Object::RoleBinding(Box::new(role_binding(o, &o.namespace))));
            }
            Some(watched) if *watched == o.namespace => {
                out.push(Object::Role(Box::new(own_namespace_role(o, true))));
                out.push(Object::RoleBinding(Box::new(role_binding(o, &o.namespace))));
            }
            Some(watched) => {
                out.push(Object::Role(Box::new(watched_namespace_role(watched))));
                out.push(Object::RoleBinding(Box::new(role_binding(o, watched))));
                out.push(Object::Role(Box::new(own_namespace_role(o, false))));
                out.push(Object::RoleBinding(Box::new(role_binding(o, &o.namespace))));
            }
        }
        if let Some(argocd) = &o.argocd_namespace {
            out.push(Object::Role(Box::new(argocd_role(argocd))));
            out.push(Object::RoleBinding(Box::new(argocd_role_binding(
                o, argocd,
            ))));
        }
    }
    if o.wants(Part::Controller) {
        out.push(Object::Deployment(Box::new(deployment(o))));
        if o.replicas > 1 {
            out.push(Object::PodDisruptionBudget(Box::new(
                pod_disruption_budget(o),
            )));
        }
    }
    if o.wants(Part::AdmissionPolicy) {
        out.push(Object::AdmissionPolicy(Box::new(admission_policy(o))));
        out.push(Object::AdmissionPolicyBinding(Box::new(
            admission_policy_binding(),
        )));
    }
    if o.wants(Part::Webhook) {
        out.extend(webhook::objects(o));
    }
    Ok(out)
}

fn labels(component: Option<&str>) -> BTreeMap<String, String> {
    // No `app.kubernetes.io/managed-by: irsa`: that label marks what the controller writes.
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "irsa".to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "irsa".to_owned()),
    ]);
    if let Some(c) = component {
        labels.insert("app.kubernetes.io/component".to_owned(), c.to_owned());
    }
    labels
}

/// The Deployment's selector: stable across versions, so upgrades never orphan pods.
fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "irsa".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "controller".to_owned(),
        ),
    ])
}

fn meta(name: &str, namespace: Option<&str>, component: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels(component)),
        ..ObjectMeta::default()
    }
}

fn namespace(o: &InstallOptions) -> Namespace {
    Namespace {
        metadata: meta(&o.namespace, None, None),
        ..Namespace::default()
    }
}

fn service_account(o: &InstallOptions) -> ServiceAccount {
    let mut metadata = meta(SERVICE_ACCOUNT, Some(&o.namespace), Some("controller"));
    if let Some(arn) = &o.role_arn {
        metadata.annotations = Some(BTreeMap::from([(
            ROLE_ARN_ANNOTATION.to_owned(),
            arn.clone(),
        )]));
    }
    ServiceAccount {
        metadata,
        // The controller reads its token through the Pod's own setting below.
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// One RBAC grant of the controller and the reason it exists (for `irsa install --help`, the
/// README and the test that compares the grants with the requests the controller makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// API group, `""` for core.
    pub group: &'static str,
    /// Resources (`secrets`, `pullsecrets/status`).
    pub resources: &'static [&'static str],
    /// Verbs, nothing more than the controller sends.
    pub verbs: &'static [&'static str],
    /// Why the controller needs it.
    pub why: &'static str,
}

/// Where a grant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace the controller serves (the ClusterRole; in one-namespace mode a Role in
    /// the watched namespace).
    Served,
    /// Cluster-wide only (ClusterPullSecrets, namespaces): absent in one-namespace mode.
    ClusterOnly,
    /// Only the controller's own namespace (a Role), optionally limited to named objects.
    Own(&'static [&'static str]),
}

/// Every grant of the controller, the scope it applies to and why. Verbs follow the requests
/// the controller sends: writes are server-side applies and merge patches (`patch`), never
/// whole-object replacements (`update`), except for the Lease (client-go's protocol: read,
/// then replace with the resourceVersion read).
pub const GRANTS: &[(Scope, Grant)] = &[
    (
        Scope::ClusterOnly,
        Grant {
            group: GROUP,
            resources: &["clusterpullsecrets"],
            verbs: &["list", "watch", "patch"],
            why: "reconcile ClusterPullSecrets; patch adds and removes the cleanup finalizer",
        },
    ),
    (
        Scope::ClusterOnly,
        Grant {
            group: GROUP,
            resources: &["clusterpullsecrets/status"],
            verbs: &["patch"],
            why: "report Ready, targets and expiry (server-side apply of the status)",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: GROUP,
            resources: &["pullsecrets"],
            verbs: &["list", "watch", "patch"],
            why: "reconcile PullSecrets; patch adds and removes the cleanup finalizer",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: GROUP,
            resources: &["pullsecrets/status"],
            verbs: &["patch"],
            why: "report Ready, targets and expiry (server-side apply of the status)",
        },
    ),
    (
        Scope::ClusterOnly,
        Grant {
            group: "",
            resources: &["namespaces"],
            verbs: &["list", "watch"],
            why: "select target namespaces by name and label (metadata only)",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: "",
            resources: &["secrets"],
            verbs: &["get", "list", "watch", "create", "patch", "delete"],
            why: "write the dockerconfigjson secrets: watch its own (by label, metadata only), \
                  create, patch on refresh, read one back before adopting it, delete on \
                  deselection and cleanup",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: "",
            resources: &["serviceaccounts"],
            verbs: &["list", "watch", "patch"],
            why: "find the identity's role annotation; add the secret to imagePullSecrets",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: "",
            resources: &["serviceaccounts/token"],
            verbs: &["create"],
            why: "TokenRequest: the named service account's token, exchanged at STS for its role",
        },
    ),
    (
        Scope::Served,
        Grant {
            group: "events.k8s.io",
            resources: &["events"],
            verbs: &["create", "patch"],
            why: "Events on the resources it reconciles (patch counts a repeated Event)",
        },
    ),
    (
        Scope::Own(&[LEASE_NAME]),
        Grant {
            group: "coordination.k8s.io",
            resources: &["leases"],
            verbs: &["get", "update"],
            why: "leader election: renew and hand back the Lease",
        },
    ),
    (
        Scope::Own(&[]),
        Grant {
            group: "coordination.k8s.io",
            resources: &["leases"],
            verbs: &["create"],
            why: "leader election: create the Lease the first time (create takes no name)",
        },
    ),
    (
        Scope::Own(&[CREDENTIAL_KEY_SECRET]),
        Grant {
            group: "",
            resources: &["secrets"],
            verbs: &["get"],
            why: "read the key that signs the secrets irsa writes",
        },
    ),
    (
        Scope::Own(&[]),
        Grant {
            group: "",
            resources: &["secrets"],
            verbs: &["create"],
            why: "create that key on first start (create takes no name)",
        },
    ),
];

/// The grants of `irsa controller --argocd-namespace NS`, in a Role of NS only (Argo CD's
/// repository secrets and the projects' service accounts live there).
pub const ARGOCD_GRANTS: &[Grant] = &[
    Grant {
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "watch", "patch"],
        why: "Argo CD repository secrets: watch them by label (metadata only), read one when it \
              changed, apply username, password and the irsa.dev/status annotation",
    },
    Grant {
        group: "",
        resources: &["serviceaccounts"],
        verbs: &["list", "watch"],
        why: "find each project's service account (argocd-project-<project>) and its role",
    },
    Grant {
        group: "",
        resources: &["serviceaccounts/token"],
        verbs: &["create"],
        why: "TokenRequest: the project's token, exchanged at STS for its role",
    },
    Grant {
        group: "events.k8s.io",
        resources: &["events"],
        verbs: &["create", "patch"],
        why: "Events on the repository secrets",
    },
];

/// The name of the Argo CD Role and RoleBinding (apart from the controller's own Role, which
/// may share the namespace).
pub const ARGOCD_ROLE: &str = "irsa-controller-argocd";

fn argocd_role(namespace: &str) -> Role {
    Role {
        metadata: meta(ARGOCD_ROLE, Some(namespace), Some("controller")),
        rules: Some(ARGOCD_GRANTS.iter().map(|g| rule(g, &[])).collect()),
    }
}

fn argocd_role_binding(o: &InstallOptions, namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(ARGOCD_ROLE, Some(namespace), Some("controller")),
        role_ref: role_ref("Role", ARGOCD_ROLE),
        subjects: Some(subject(o)),
    }
}

/// The controller's grants with their scope and reason, for documentation.
pub fn rbac_grants() -> &'static [(Scope, Grant)] {
    GRANTS
}

fn rule(grant: &Grant, names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![grant.group.to_owned()]),
        resources: Some(grant.resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: grant.verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: (!names.is_empty())
            .then(|| names.iter().map(|n| (*n).to_owned()).collect()),
        ..PolicyRule::default()
    }
}

fn rules(wanted: impl Fn(Scope) -> bool) -> Vec<PolicyRule> {
    GRANTS
        .iter()
        .filter(|(scope, _)| wanted(*scope))
        .map(|(scope, grant)| match scope {
            Scope::Own(names) => rule(grant, names),
            _ => rule(grant, &[]),
        })
        .collect()
}

/// What the controller reconciles and writes in every namespace, and nothing more.
fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(CONTROLLER, None, Some("controller")),
        rules: Some(rules(|s| matches!(s, Scope::Served | Scope::ClusterOnly))),
        ..ClusterRole::default()
    }
}

fn subject(o: &InstallOptions) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: SERVICE_ACCOUNT.to_owned(),
        namespace: Some(o.namespace.clone()),
        ..Subject::default()
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn cluster_role_binding(o: &InstallOptions) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(CONTROLLER, None, Some("controller")),
        role_ref: role_ref("ClusterRole", CONTROLLER),
        subjects: Some(subject(o)),
    }
}

/// The Lease and the credential key live in the install namespace, so those grants stay there;
/// `and_served` adds the served grants when that namespace is also the one watched.
fn own_namespace_role(o: &InstallOptions, and_served: bool) -> Role {
    Role {
        metadata: meta(CONTROLLER, Some(&o.namespace), Some("controller")),
        rules: Some(rules(|s| {
            matches!(s, Scope::Own(_)) || (and_served && s == Scope::Served)
        })),
    }
}

/// One-namespace mode, watched namespace apart from the install namespace.
fn watched_namespace_role(watched: &str) -> Role {
    Role {
        metadata: meta(CONTROLLER, Some(watched), Some("controller")),
        rules: Some(rules(|s| s == Scope::Served)),
    }
}

fn role_binding(o: &InstallOptions, namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(CONTROLLER, Some(namespace), Some("controller")),
        role_ref: role_ref("Role", CONTROLLER),
        subjects: Some(subject(o)),
    }
}

/// The CEL check "may the author create tokens for service account NAME in NAMESPACE".
fn may_create_token(namespace: &str, name: &str) -> String {
    format!(
        "authorizer.group('').resource('serviceaccounts').subresource('token')\
         .namespace({namespace}).name({name}).check('create').allowed()"
    )
}

/// Opt-in: a PullSecret makes irsa act as a service account (or as irsa itself, `ambient`), so
/// its author must be allowed to do that directly. Checked for whoever sends the request: under
/// GitOps, the GitOps tool's service account.
fn admission_policy(o: &InstallOptions) -> ValidatingAdmissionPolicy {
    let sa = "object.spec.identity.serviceAccount.name";
    let irsa = format!("'{}'", o.namespace);
    ValidatingAdmissionPolicy {
        metadata: meta(ADMISSION_POLICY, None, Some("admission-policy")),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".to_owned()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![GROUP.to_owned()]),
                    api_versions: Some(vec![VERSION.to_owned()]),
                    resources: Some(vec!["pullsecrets".to_owned()]),
                    operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            validations: Some(vec![
                Validation {
                    expression: format!(
                        "!has(object.spec.identity.serviceAccount) || {}",
                        may_create_token("object.metadata.namespace", sa)
                    ),
                    message_expression: Some(format!(
                        "'you may not create tokens for service account ' + \
                         object.metadata.namespace + '/' + {sa} + \
                         ' (create serviceaccounts/token), so a PullSecret may not use its \
                         identity: ask for that permission or name another service account'"
                    )),
                    reason: Some("Forbidden".to_owned()),
                    ..Validation::default()
                },
                Validation {
                    expression: format!(
                        "!has(object.spec.identity.ambient) || {}",
                        may_create_token(&irsa, &format!("'{SERVICE_ACCOUNT}'"))
                    ),
                    message_expression: Some(format!(
                        "'identity.ambient acts as the controller itself ({ns}/{SERVICE_ACCOUNT}), \
                         and you may not create tokens for it (create serviceaccounts/token): \
                         name a service account instead'",
                        ns = o.namespace
                    )),
                    reason: Some("Forbidden".to_owned()),
                    ..Validation::default()
                },
            ]),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        ..ValidatingAdmissionPolicy::default()
    }
}

fn admission_policy_binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(ADMISSION_POLICY, None, Some("admission-policy")),
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: ADMISSION_POLICY.to_owned(),
            validation_actions: vec!["Deny".to_owned()],
            ..ValidatingAdmissionPolicyBindingSpec::default()
        },
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(METRICS_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// The pod-level security context of every irsa Deployment: non-root 65532, RuntimeDefault seccomp.
fn non_root_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// Prefer replicas on different nodes, so that one node's loss leaves another replica running.
fn spread_across_nodes(match_labels: BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(match_labels),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

fn controller_args(o: &InstallOptions) -> Vec<String> {
    let mut args = [
        "controller",
        "--leader-elect",
        &format!("--metrics-listen=0.0.0.0:{METRICS_PORT}"),
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(ns) = &o.watch_namespace {
        args.push(format!("--watch-namespace={ns}"));
    }
    if let Some(ns) = &o.argocd_namespace {
        args.push(format!("--argocd-namespace={ns}"));
    }
    args
}

fn controller_container(o: &InstallOptions) -> Container {
    Container {
        name: "controller".to_owned(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(controller_args(o)),
        env: Some(vec![
            // The Lease holder identity and the Lease's namespace.
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "IRSA_LOG_FORMAT".to_owned(),
                value: Some(o.log_format.as_str().to_owned()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "GLIBC_TUNABLES".to_owned(),
                value: Some(CONTROLLER_GLIBC_TUNABLES.to_owned()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.to_owned()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(http_probe("/healthz", 10)),
        readiness_probe: Some(http_probe("/readyz", 5)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            limits: Some(quantities(&[("memory", "256Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        // The root filesystem is read-only; anything that wants a scratch file gets /tmp.
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

fn deployment(o: &InstallOptions) -> Deployment {
    let mut pod_labels = labels(Some("controller"));
    pod_labels.extend(selector_labels());
    Deployment {
        metadata: meta(CONTROLLER, Some(&o.namespace), Some("controller")),
        spec: DeploymentSpec {
            // Replicas at most MAX_REPLICAS (validated), so the cast cannot truncate.
            replicas: Some(o.replicas as i32),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(SERVICE_ACCOUNT.to_owned()),
                    automount_service_account_token: Some(true),
                    containers: vec![controller_container(o)],
                    security_context: Some(non_root_pod()),
                    affinity: Some(spread_across_nodes(selector_labels())),
                    termination_grace_period_seconds: Some(30),
                    volumes: Some(vec![Volume {
                        name: "tmp".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(Quantity("16Mi".to_owned())),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn pod_disruption_budget(o: &InstallOptions) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(CONTROLLER, Some(&o.namespace), Some("controller")),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(options: &InstallOptions) -> Vec<String> {
        manifests(options)
            .unwrap()
            .iter()
            .map(|m| m["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    fn find<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    }

    #[test]
    fn default_install_has_every_object_in_apply_order() {
        assert_eq!(
            kinds(&InstallOptions::default()),
            [
                "Namespace",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Deployment",
                "PodDisruptionBudget",
            ]
        );
    }

    #[test]
    fn one_replica_has_no_disruption_budget_and_parts_select() {
        let one = InstallOptions {
            replicas: 1,
            parts: vec![Part::Controller],
            ..InstallOptions::default()
        };
        assert_eq!(kinds(&one), ["Deployment"]);
        let crds_only = InstallOptions {
            parts: vec![Part::Crds],
            ..InstallOptions::default()
        };
        assert_eq!(kinds(&crds_only), ["CustomResourceDefinition"; 2]);
    }

    #[test]
    fn the_controller_contract_holds() {
        let options = InstallOptions {
            namespace: "platform".into(),
            image: "registry.example.com/irsa:dev".into(),
            replicas: 3,
            role_arn: Some("arn:aws:iam::123456789012:role/irsa".into()),
            ..InstallOptions::default()
        };
        let docs = manifests(&options).unwrap();
        let sa = find(&docs, "ServiceAccount");
        assert_eq!(sa["metadata"]["namespace"], "platform");
        assert_eq!(
            sa["metadata"]["annotations"][ROLE_ARN_ANNOTATION],
            "arn:aws:iam::123456789012:role/irsa"
        );
        let deploy = find(&docs, "Deployment");
        assert_eq!(deploy["spec"]["replicas"], 3);
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "irsa");
        assert_eq!(pod["automountServiceAccountToken"], true);
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "registry.example.com/irsa:dev");
        assert_eq!(
            c["args"],
            json!([
                "controller",
                "--leader-elect",
                "--metrics-listen=0.0.0.0:8080"
            ])
        );
        assert_eq!(
            c["env"],
            json!([
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IRSA_LOG_FORMAT", "value": "json"},
                {"name": "GLIBC_TUNABLES", "value": CONTROLLER_GLIBC_TUNABLES},
            ])
        );
        assert_eq!(c["ports"][0]["name"], "http-metrics");
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["runAsUser"], 65532);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(
            anti["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname"
        );
        assert_eq!(
            anti["podAffinityTerm"]["labelSelector"]["matchLabels"],
            deploy["spec"]["selector"]["matchLabels"]
        );
        let pdb = find(&docs, "PodDisruptionBudget");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(pdb["spec"]["selector"], deploy["spec"]["selector"]);
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            assert_eq!(
                find(&docs, kind)["subjects"],
                json!([{"kind": "ServiceAccount", "name": "irsa", "namespace": "platform"}])
            );
        }
        assert_eq!(find(&docs, "Role")["metadata"]["namespace"], "platform");
    }

    /// (apiGroup, resource, verbs) granted by a role, one row per resource.
    fn grants(role: &serde_json::Value) -> Vec<(String, String, Vec<String>)> {
        let mut rows = Vec::new();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    let mut verbs: Vec<String> = rule["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_owned())
                        .collect();
                    verbs.sort();
                    rows.push((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verbs,
                    ));
                }
            }
        }
        rows.sort();
        rows
    }

    fn row(g: &str, r: &str, verbs: &str) -> (String, String, Vec<String>) {
        let mut verbs: Vec<String> = verbs.split(' ').map(str::to_owned).collect();
        verbs.sort();
        (g.to_owned(), r.to_owned(), verbs)
    }

    #[test]
    fn rbac_is_exactly_what_the_controller_needs() {
        let docs = manifests(&InstallOptions::default()).unwrap();
        let mut expected = vec![
            row("irsa.dev", "clusterpullsecrets", "list watch patch"),
            row("irsa.dev", "pullsecrets", "list watch patch"),
            row("irsa.dev", "clusterpullsecrets/status", "patch"),
            row("irsa.dev", "pullsecrets/status", "patch"),
            row("", "namespaces", "list watch"),
            row("", "secrets", "get list watch create patch delete"),
            row("", "serviceaccounts", "list watch patch"),
            row("", "serviceaccounts/token", "create"),
            row("events.k8s.io", "events", "create patch"),
        ];
        expected.sort();
        assert_eq!(grants(find(&docs, "ClusterRole")), expected);
        let role = find(&docs, "Role");
        let mut own = vec![
            row("coordination.k8s.io", "leases", "get update"),
            row("coordination.k8s.io", "leases", "create"),
            row("", "secrets", "get"),
            row("", "secrets", "create"),
        ];
        own.sort();
        assert_eq!(grants(role), own);
        // Reads and renewals are limited by name; create cannot be (RBAC has no name then).
        let names: Vec<_> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["resourceNames"].clone())
            .collect();
        assert_eq!(
            names,
            [
                json!(["irsa-controller"]),
                serde_json::Value::Null,
                json!(["irsa-credential-key"]),
                serde_json::Value::Null
            ]
        );
        // Nothing anywhere may grant a wildcard, nor `update` outside the Lease.
        let text = serde_json::to_string(&docs).unwrap();
        assert!(!text.contains("\"*\""), "{text}");
        for (scope, grant) in rbac_grants() {
            assert!(
                !grant.verbs.contains(&"update") || grant.resources == ["leases"],
                "{scope:?} {grant:?}"
            );
            assert!(!grant.why.is_empty());
        }
    }

    #[test]
    fn argocd_namespace_adds_a_role_there_only_and_the_flag() {
        let o = InstallOptions {
            argocd_namespace: Some("argocd".into()),
            ..InstallOptions::default()
        };
        let docs = manifests(&o).unwrap();
        let in_argocd: Vec<&serde_json::Value> = docs
            .iter()
            .filter(|d| d["metadata"]["namespace"] == "argocd")
            .collect();
        let kinds: Vec<&str> = in_argocd
            .iter()
            .map(|d| d["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Role", "RoleBinding"], "nothing else in argocd");
        assert_eq!(in_argocd[0]["metadata"]["name"], ARGOCD_ROLE);
        assert_eq!(
            grants(in_argocd[0]),
            [
                row("", "secrets", "get list watch patch"),
                row("", "serviceaccounts", "list watch"),
                row("", "serviceaccounts/token", "create"),
                row("events.k8s.io", "events", "create patch"),
            ]
        );
        let binding = in_argocd[1];
        assert_eq!(binding["roleRef"]["name"], ARGOCD_ROLE);
        assert_eq!(binding["subjects"][0]["namespace"], DEFAULT_NAMESPACE);
        let args = &find(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(
            args.as_array()
                .unwrap()
                .contains(&serde_json::json!("--argocd-namespace=argocd")),
            "{args}"
        );
        // Without the option: no Argo CD Role, no flag.
        let plain = manifests(&InstallOptions::default()).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains(ARGOCD_ROLE) && !text.contains("--argocd-namespace"));
        let bad = InstallOptions {
            argocd_namespace: Some("Argo CD".into()),
            ..InstallOptions::default()
        };
        assert!(
            manifests(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("invalid --argocd-namespace")
        );
    }

    #[test]
    fn one_namespace_mode_binds_roles_only() {
        let o = InstallOptions {
            namespace: "team-a".into(),
            watch_namespace: Some("team-a".into()),
            parts: vec![Part::Rbac, Part::Controller],
            ..InstallOptions::default()
        };
        assert_eq!(
            kinds(&o),
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Deployment",
                "PodDisruptionBudget"
            ]
        );
        let docs = manifests(&o).unwrap();
        let role = find(&docs, "Role");
        assert_eq!(role["metadata"]["namespace"], "team-a");
        let rows = grants(role);
        assert!(
            rows.contains(&row("irsa.dev", "pullsecrets", "list watch patch")),
            "{rows:?}"
        );
        assert!(
            rows.contains(&row("coordination.k8s.io", "leases", "get update")),
            "{rows:?}"
        );
        for (_, resource, _) in &rows {
            assert!(
                !resource.starts_with("clusterpullsecrets") && resource != "namespaces",
                "{rows:?}"
            );
        }
        let args = &find(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[3], "--watch-namespace=team-a");

        // Watching another namespace: the served grants there, the Lease and key at home;
        // even with every default part asked for, no Namespace and no ClusterRole.
        let apart = InstallOptions {
            namespace: "irsa".into(),
            watch_namespace: Some("team-b".into()),
            ..InstallOptions::default()
        };
        assert_eq!(
            kinds(&apart),
            [
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding",
                "Deployment",
                "PodDisruptionBudget"
            ]
        );
        let docs = manifests(&apart).unwrap();
        let namespaces: Vec<_> = docs
            .iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "RoleBinding")
            .map(|d| d["metadata"]["namespace"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["team-b", "team-b", "irsa", "irsa"]);
        let bad = InstallOptions {
            watch_namespace: Some("Team B".into()),
            ..InstallOptions::default()
        };
        assert!(
            manifests(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("invalid --watch-namespace: \"Team B\""),
        );
    }

    #[test]
    fn the_admission_policy_is_opt_in_and_asks_the_authorizer() {
        assert!(
            !kinds(&InstallOptions::default())
                .iter()
                .any(|k| k.contains("Admission"))
        );
        let o = InstallOptions {
            parts: [&Part::ALL[..], &[Part::AdmissionPolicy]].concat(),
            ..InstallOptions::default()
        };
        let all = kinds(&o);
        assert_eq!(
            all[all.len() - 2..],
            [
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
        let docs = manifests(&o).unwrap();
        let policy = find(&docs, "ValidatingAdmissionPolicy");
        let rules = &policy["spec"]["matchConstraints"]["resourceRules"][0];
        assert_eq!(rules["resources"], json!(["pullsecrets"]));
        assert_eq!(rules["operations"], json!(["CREATE", "UPDATE"]));
        let checks = policy["spec"]["validations"].as_array().unwrap();
        let sa = checks[0]["expression"].as_str().unwrap();
        assert_eq!(
            sa,
            "!has(object.spec.identity.serviceAccount) || authorizer.group('').resource('serviceaccounts')\
             .subresource('token').namespace(object.metadata.namespace)\
             .name(object.spec.identity.serviceAccount.name).check('create').allowed()"
        );
        let ambient = checks[1]["expression"].as_str().unwrap();
        assert!(
            ambient.contains(".namespace('irsa-system').name('irsa').check('create')"),
            "{ambient}"
        );
        assert_eq!(policy["spec"]["failurePolicy"], "Fail");
        let binding = find(&docs, "ValidatingAdmissionPolicyBinding");
        assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    }

    #[test]
    fn the_kustomize_base_holds_each_default_object_once() {
        let docs = |yaml: &str| -> Vec<String> {
            yaml.split("\n---\n")
                .skip(1)
                .map(|d| d.trim_end().to_owned())
                .collect()
        };
        let files = kustomize_files();
        let base: Vec<String> = Part::ALL
            .iter()
            .flat_map(|p| {
                let path = format!("base/{p}.yaml");
                docs(&files.iter().find(|(f, _)| *f == path).unwrap().1)
            })
            .collect();
        assert_eq!(
            base,
            docs(&manifests_yaml(&InstallOptions::default()).unwrap())
        );
        let kustomization = &files
            .iter()
            .find(|(p, _)| p == "base/kustomization.yaml")
            .unwrap()
            .1;
        assert!(kustomization.ends_with(
            "resources:\n- namespace.yaml\n- crds.yaml\n- rbac.yaml\n- controller.yaml\n"
        ));
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let with = |f: fn(&mut InstallOptions)| {
            let mut o = InstallOptions::default();
            f(&mut o);
            manifests(&o).unwrap_err().to_string()
        };
        let e = with(|o| o.namespace = "Irsa_System".into());
        assert!(
            e.starts_with("invalid namespace: \"Irsa_System\" is not a valid name"),
            "{e}"
        );
        let e = with(|o| o.replicas = 0);
        assert!(e.starts_with("invalid replicas 0: run 1 to 10"), "{e}");
        let e = with(|o| o.role_arn = Some("arn:aws:iam::123:role/x".into()));
        assert!(
            e.starts_with("invalid role ARN \"arn:aws:iam::123:role/x\""),
            "{e}"
        );
        assert!(e.contains("account"), "{e}");
        let e = with(|o| o.image = "ghcr.io".into());
        assert!(e.contains("registry host, not an image"), "{e}");
        let e = with(|o| o.image = "oci://ghcr.io/irsa-dev/irsa:1".into());
        assert!(e.contains("no scheme"), "{e}");
        let e = with(|o| o.image = "ghcr.io/irsa dev".into());
        assert!(e.starts_with("invalid image \"ghcr.io/irsa dev\""), "{e}");
        let e = with(|o| o.parts.clear());
        assert!(e.starts_with("nothing to install"), "{e}");
    }

    #[test]
    fn parts_parse_and_print() {
        for p in Part::EVERY {
            assert_eq!(p.as_str().parse::<Part>(), Ok(p));
        }
        assert!(
            "deployments"
                .parse::<Part>()
                .unwrap_err()
                .contains("namespace, crds, rbac, controller, admission-policy or webhook")
        );
    }

    #[test]
    fn yaml_has_a_header_and_one_document_per_object() {
        let yaml = manifests_yaml(&InstallOptions::default()).unwrap();
        assert!(yaml.starts_with("# irsa "), "{yaml}");
        assert_eq!(yaml.matches("\n---\n").count(), 10);
        assert!(!yaml.contains("managed-by"), "{yaml}");
    }
}
