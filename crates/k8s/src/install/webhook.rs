//! The opt-in pod identity webhook of `irsa install --webhook` ([`Part::Webhook`]): its
//! ServiceAccount and least-privilege RBAC ([`WEBHOOK_GRANTS`]), the Deployment, its
//! PodDisruptionBudget, the Service, a NetworkPolicy and the MutatingWebhookConfiguration.
//!
//! The NetworkPolicy admits ingress to the webhook's pods on its one port only (9443: the
//! AdmissionReviews, the probes and `/metrics`). By default it names no sources, because the
//! addresses kube-apiserver calls from differ per distribution (the control-plane nodes'
//! addresses on kubeadm and k3s, a managed range elsewhere, the host network or a proxy);
//! anything that can reach that port can still POST an AdmissionReview (it learns what
//! service-account annotations already say, and its lookups and waits take their turn with
//! everyone's). The defence that holds everywhere is in the webhook itself (review findings
//! M1, M2): a review waiting for a service account holds no review slot, and the number waiting
//! is bounded, per peer address and fairly between peers (the excess fails open at once).
//! `--webhook-api-server CIDR` ([`InstallOptions::webhook_api_server`]) narrows `from` to the
//! API server's addresses where you know them, and `--webhook-allow-from CIDR`
//! ([`InstallOptions::webhook_allow_from`]) adds others (a metrics scraper's): then nothing
//! else reaches the port at all. Only the API server's blocks become the webhook's
//! `--trusted-peer`s, whose reviews are never evicted from their wait places by another
//! address's (review 24a M2): a scraper's range is often the whole pod network. Probes need no block: NetworkPolicy always admits traffic from the
//! pod's own node.
//!
//! Who makes the certificate ([`WebhookCerts`]): by default `irsa webhook certs` runs as a Job
//! of the install and again every week from a CronJob (well inside its 180-day renewal
//! window), under its own ServiceAccount [`WEBHOOK_CERTS`] (review finding L4): get and
//! update of its one Secret, get and patch of its one MutatingWebhookConfiguration, all by
//! name. No create (review finding L3): RBAC cannot limit a create by name, and a create of
//! Secrets in its namespace would let the step mint a service-account token for any account
//! there. The install applies the Secret itself, empty ([`placeholder_secret`]: no type, no
//! data, so applying the install again names none of the fields the step writes and can
//! neither wipe the certificate nor conflict with the step's writes), and the step fills it.
//! The serving pods' ServiceAccount [`WEBHOOK`] holds none of that, only what the server sends
//! (service accounts get/list/watch, its ConfigMap list/watch): the pod that answers the
//! network cannot write Secrets. The serving pods mount `tls.crt` and `tls.key` of the Secret
//! as (required) items of a volume: the kubelet holds them in ContainerCreating until the step
//! has filled it, then starts them with the files in place, and a rotation reaches the running
//! ones without a restart (the server re-reads the files). The Job and CronJob come after the MutatingWebhookConfiguration in apply order (the
//! step patches it; if it is not there yet the Job's pod fails and is retried with backoff).
//! The step is idempotent (a valid pair is kept, nothing written), so re-running the Job, a
//! CronJob run or `kubectl create job --from=cronjob/irsa-webhook-certs` is always safe; the
//! Job is deleted 10 minutes after it finishes, so a later `kubectl apply` (an upgrade that
//! changes its image: a Job's template cannot be changed) creates it afresh instead of failing.
//! With cert-manager, a self-signed Issuer and a Certificate make the Secret and cert-manager's
//! CA injector fills `caBundle`: no cert step, no certificate grants at all.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, KeyToPath, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretVolumeSource, SecurityContext,
    Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{
    Grant, InstallOptions, Object, RUN_AS_USER, field_env, labels, meta, non_root_pod, quantities,
    role_ref, rule, runtime_default, spread_across_nodes,
};

/// The webhook's Deployment, Service, ServiceAccount, roles and bindings.
pub const WEBHOOK: &str = "irsa-webhook";
/// The certificate step's ServiceAccount, roles, bindings, Job and CronJob.
pub const WEBHOOK_CERTS: &str = "irsa-webhook-certs";
/// When the CronJob renews: weekly (Monday 03:17), against a 180-day renewal window.
pub const WEBHOOK_CERTS_SCHEDULE: &str = "17 3 * * 1";
/// A finished Job is deleted after this, so that applying the install again recreates it.
const JOB_TTL_SECONDS: i32 = 600;
/// The MutatingWebhookConfiguration.
pub const WEBHOOK_CONFIGURATION: &str = "irsa-pod-identity-webhook";
pub use irsa_core::names::WEBHOOK_NAME;
/// The Secret holding the serving pair and `ca.crt`.
pub const WEBHOOK_TLS_SECRET: &str = "irsa-webhook-tls";
/// The ConfigMap the webhook follows (`--watch-config-map`; upstream's name).
pub const WEBHOOK_CONFIG_MAP: &str = irsa_core::names::WEBHOOK_CONFIG_MAP;
pub use irsa_core::names::SKIP_POD_LABEL;
/// The HTTPS port the webhook listens on (unprivileged: it runs as 65532).
pub const WEBHOOK_PORT: i32 = 9443;
/// The cert-manager self-signed Issuer (`--webhook-cert-manager`).
pub const WEBHOOK_ISSUER: &str = "irsa-webhook-selfsigned";
/// Where the Secret is mounted in the webhook's containers.
pub const CERT_DIR: &str = "/etc/webhook/certs";
/// The webhook's replicas: one survives a node drain (with the PodDisruptionBudget).
const REPLICAS: i32 = 2;
/// kube-apiserver waits this long for an answer before admitting the pod unchanged.
const TIMEOUT_SECONDS: i32 = 3;
/// The webhook's own `--deadline`: a second under [`TIMEOUT_SECONDS`], so it answers (failing
/// open with a warning) before the API server gives up on it.
const DEADLINE_MS: i32 = TIMEOUT_SECONDS * 1000 - 1000;

/// Who makes the webhook's serving certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookCerts {
    /// A Job and a weekly CronJob run `irsa webhook certs` under their own ServiceAccount.
    #[default]
    Irsa,
    /// cert-manager: a self-signed Issuer, a Certificate and CA injection.
    CertManager,
}

/// Where a webhook grant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookScope {
    /// Cluster-wide (a ClusterRole), optionally limited to named objects.
    Cluster(&'static [&'static str]),
    /// The install namespace only (a Role), optionally limited to named objects.
    Own(&'static [&'static str]),
}

/// One grant of the webhook: where, what, and whether it is the certificate step's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookGrant {
    /// Where it applies.
    pub scope: WebhookScope,
    /// The grant and its reason.
    pub grant: Grant,
    /// Held by the certificate step's ServiceAccount [`WEBHOOK_CERTS`] (its Job and CronJob),
    /// not by the serving pods; absent with cert-manager.
    pub certs: bool,
}

/// Why the certificate step has its own ServiceAccount (review finding L4): `irsa install
/// --help` and the README print it.
///
/// Its grants are all limited by name: get and update of the one Secret, get and patch of the
/// one MutatingWebhookConfiguration. It holds no create of Secrets (review finding L3), which
/// RBAC cannot limit by name (it checks `resourceNames` against the name in the URL, and a
/// create has none) and which would let it create a `kubernetes.io/service-account-token`
/// Secret for any service account of its namespace: the install applies the Secret empty and
/// the step fills it. Those grants live only with the short-lived Job and CronJob pods, which
/// serve no network port, and never with the serving pods that answer whoever reaches port
/// 9443.
pub const WEBHOOK_CERTS_GRANTS_NOTE: &str = "the certificate step (a Job of the install and a \
    weekly CronJob, ServiceAccount irsa-webhook-certs) holds the Secret and caBundle grants, each \
    limited to its one object by name; the serving pods (ServiceAccount irsa-webhook) hold none \
    of them. It needs no create of Secrets (which RBAC cannot limit by name): the install applies \
    the Secret irsa-webhook-tls empty (no type, no data, so applying the install again never \
    touches the certificate) and the step fills it with an update";

/// Every grant of the webhook and why; `irsa install --help` prints them.
pub const WEBHOOK_GRANTS: &[WebhookGrant] = &[
    WebhookGrant {
        scope: WebhookScope::Cluster(&[]),
        grant: Grant {
            group: "",
            resources: &["serviceaccounts"],
            verbs: &["get", "list", "watch"],
            why: "the role annotations of every pod's service account: a metadata-only watch, \
                  and a get for one not yet cached",
        },
        certs: false,
    },
    WebhookGrant {
        // list and watch can be limited by name because the watch selects metadata.name; no
        // get: the watch never sends one.
        scope: WebhookScope::Own(&[WEBHOOK_CONFIG_MAP]),
        grant: Grant {
            group: "",
            resources: &["configmaps"],
            verbs: &["list", "watch"],
            why: "--watch-config-map: follow its pod-identity-webhook ConfigMap (a watch by name)",
        },
        certs: false,
    },
    WebhookGrant {
        // No create: the install applies the Secret empty (review finding L3).
        scope: WebhookScope::Own(&[WEBHOOK_TLS_SECRET]),
        grant: Grant {
            group: "",
            resources: &["secrets"],
            verbs: &["get", "update"],
            why: "irsa webhook certs: read its serving certificate, fill the install's empty \
                  Secret and replace the pair near expiry (an update conditional on the \
                  version read)",
        },
        certs: true,
    },
    WebhookGrant {
        scope: WebhookScope::Cluster(&[WEBHOOK_CONFIGURATION]),
        grant: Grant {
            group: "admissionregistration.k8s.io",
            resources: &["mutatingwebhookconfigurations"],
            verbs: &["get", "patch"],
            why: "irsa webhook certs: set caBundle in its own MutatingWebhookConfiguration",
        },
        certs: true,
    },
];

/// The rules of the serving ServiceAccount (`certs == false`) or the certificate step's
/// (`certs == true`), cluster-wide or in the install namespace.
fn webhook_rules(certs: bool, cluster: bool) -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    WEBHOOK_GRANTS
        .iter()
        .filter(|g| g.certs == certs)
        .filter_map(|g| match (g.scope, cluster) {
            (WebhookScope::Cluster(names), true) | (WebhookScope::Own(names), false) => {
                Some(rule(&g.grant, names))
            }
            _ => None,
        })
        .collect()
}

fn webhook_selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "irsa".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "webhook".to_owned(),
        ),
    ])
}

fn wmeta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    meta(name, namespace, Some("webhook"))
}

fn subjects(o: &InstallOptions, account: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: account.to_owned(),
        namespace: Some(o.namespace.clone()),
        ..Subject::default()
    }]
}

fn https_probe(path: &str, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("https".to_owned()),
            scheme: Some("HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn security_context() -> SecurityContext {
    SecurityContext {
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
    }
}

fn cert_mount() -> VolumeMount {
    VolumeMount {
        name: "certs".to_owned(),
        mount_path: CERT_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn log_env(o: &InstallOptions) -> EnvVar {
    EnvVar {
        name: "IRSA_LOG_FORMAT".to_owned(),
        value: Some(o.log_format.as_str().to_owned()),
        ..EnvVar::default()
    }
}

/// `irsa webhook certs` as the Job and the CronJob run it.
pub fn certs_args(namespace: &str) -> Vec<String> {
    vec![
        "webhook".to_owned(),
        "certs".to_owned(),
        format!("--namespace={namespace}"),
        format!("--secret={WEBHOOK_TLS_SECRET}"),
        format!("--service={WEBHOOK}"),
        format!("--webhook-configuration={WEBHOOK_CONFIGURATION}"),
    ]
}

fn certs_container(o: &InstallOptions) -> Container {
    Container {
        name: "certs".to_owned(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(certs_args(&o.namespace)),
        env: Some(vec![log_env(o)]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "10m"), ("memory", "16Mi")])),
            limits: Some(quantities(&[("memory", "64Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security_context()),
        ..Container::default()
    }
}

/// The certificate step's pod: its own ServiceAccount, no volumes, no ports.
fn certs_pod(o: &InstallOptions) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(Some("webhook-certs"))),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(WEBHOOK_CERTS.to_owned()),
            automount_service_account_token: Some(true),
            containers: vec![certs_container(o)],
            // Retried in place (with the kubelet's backoff) until the configuration exists.
            restart_policy: Some("OnFailure".to_owned()),
            security_context: Some(non_root_pod()),
            ..PodSpec::default()
        }),
    }
}

fn certs_job_spec(o: &InstallOptions, ttl: Option<i32>) -> JobSpec {
    JobSpec {
        backoff_limit: Some(6),
        ttl_seconds_after_finished: ttl,
        template: certs_pod(o),
        ..JobSpec::default()
    }
}

/// The Job of the install and the CronJob that renews before expiry.
fn certs_jobs(o: &InstallOptions) -> [Object; 2] {
    [
        Object::Job(Box::new(Job {
            metadata: meta(WEBHOOK_CERTS, Some(&o.namespace), Some("webhook-certs")),
            spec: Some(certs_job_spec(o, Some(JOB_TTL_SECONDS))),
            ..Job::default()
        })),
        Object::CronJob(Box::new(CronJob {
            metadata: meta(WEBHOOK_CERTS, Some(&o.namespace), Some("webhook-certs")),
            spec: CronJobSpec {
                schedule: WEBHOOK_CERTS_SCHEDULE.to_owned(),
                concurrency_policy: Some("Forbid".to_owned()),
                successful_jobs_history_limit: Some(1),
                failed_jobs_history_limit: Some(1),
                job_template: JobTemplateSpec {
                    metadata: None,
                    spec: Some(certs_job_spec(o, None)),
                },
                ..CronJobSpec::default()
            },
            ..CronJob::default()
        })),
    ]
}

fn webhook_container(o: &InstallOptions) -> Container {
    Container {
        name: "webhook".to_owned(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(
            vec![
                "webhook".to_owned(),
                format!("--port={WEBHOOK_PORT}"),
                format!("--tls-cert={CERT_DIR}/tls.crt"),
                format!("--tls-key={CERT_DIR}/tls.key"),
                "--watch-config-map".to_owned(),
                format!("--deadline={DEADLINE_MS}ms"),
            ]
            .into_iter()
            // The API server's addresses (review 24a M2): its waiting reviews are never evicted.
            // Not the other allowed blocks: a scraper's range is often the whole pod network.
            .chain(
                o.webhook_api_server
                    .iter()
                    .map(|block| format!("--trusted-peer={block}")),
            )
            .collect(),
        ),
        env: Some(vec![
            // The namespace of its ConfigMap.
            field_env("POD_NAMESPACE", "metadata.namespace"),
            log_env(o),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("https".to_owned()),
            container_port: WEBHOOK_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(https_probe("/healthz", 10)),
        readiness_probe: Some(https_probe("/readyz", 2)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "32Mi")])),
            limits: Some(quantities(&[("memory", "128Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security_context()),
        volume_mounts: Some(vec![cert_mount()]),
        ..Container::default()
    }
}

fn deployment(o: &InstallOptions) -> Deployment {
    let mut pod_labels = labels(Some("webhook"));
    pod_labels.extend(webhook_selector());
    Deployment {
        metadata: wmeta(WEBHOOK, Some(&o.namespace)),
        spec: DeploymentSpec {
            replicas: Some(REPLICAS),
            selector: LabelSelector {
                match_labels: Some(webhook_selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(WEBHOOK.to_owned()),
                    automount_service_account_token: Some(true),
                    containers: vec![webhook_container(o)],
                    security_context: Some(non_root_pod()),
                    affinity: Some(spread_across_nodes(webhook_selector())),
                    termination_grace_period_seconds: Some(30),
                    volumes: Some(vec![Volume {
                        name: "certs".to_owned(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(WEBHOOK_TLS_SECRET.to_owned()),
                            // Required keys: the pods wait (ContainerCreating) until the step
                            // has filled the install's empty Secret, or cert-manager has
                            // created its own.
                            items: Some(
                                ["tls.crt", "tls.key"]
                                    .map(|key| KeyToPath {
                                        key: key.to_owned(),
                                        path: key.to_owned(),
                                        ..KeyToPath::default()
                                    })
                                    .to_vec(),
                            ),
                            ..SecretVolumeSource::default()
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

fn configuration(o: &InstallOptions) -> MutatingWebhookConfiguration {
    let mut metadata = wmeta(WEBHOOK_CONFIGURATION, None);
    if o.webhook_certs == WebhookCerts::CertManager {
        metadata.annotations = Some(BTreeMap::from([(
            "cert-manager.io/inject-ca-from".to_owned(),
            format!("{}/{WEBHOOK_TLS_SECRET}", o.namespace),
        )]));
    }
    MutatingWebhookConfiguration {
        metadata,
        webhooks: Some(vec![MutatingWebhook {
            name: WEBHOOK_NAME.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: WebhookClientConfig {
                service: Some(ServiceReference {
                    name: WEBHOOK.to_owned(),
                    namespace: o.namespace.clone(),
                    path: Some("/mutate".to_owned()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            },
            failure_policy: Some("Ignore".to_owned()),
            reinvocation_policy: Some("IfNeeded".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            object_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: SKIP_POD_LABEL.to_owned(),
                    operator: "DoesNotExist".to_owned(),
                    ..LabelSelectorRequirement::default()
                }]),
                ..LabelSelector::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![String::new()]),
                api_versions: Some(vec!["v1".to_owned()]),
                operations: Some(vec!["CREATE".to_owned()]),
                resources: Some(vec!["pods".to_owned()]),
                ..RuleWithOperations::default()
            }]),
            ..MutatingWebhook::default()
        }]),
    }
}

fn cert_manager(o: &InstallOptions) -> [serde_json::Value; 2] {
    let label_map = labels(Some("webhook"));
    let names: Vec<String> = [
        WEBHOOK.to_owned(),
        format!("{WEBHOOK}.{}", o.namespace),
        format!("{WEBHOOK}.{}.svc", o.namespace),
        format!("{WEBHOOK}.{}.svc.cluster.local", o.namespace),
    ]
    .to_vec();
    [
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": WEBHOOK_ISSUER, "namespace": o.namespace, "labels": label_map},
            "spec": {"selfSigned": {}},
        }),
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": WEBHOOK_TLS_SECRET, "namespace": o.namespace, "labels": label_map},
            "spec": {
                "secretName": WEBHOOK_TLS_SECRET,
                "dnsNames": names,
                "issuerRef": {"name": WEBHOOK_ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
                "privateKey": {"rotationPolicy": "Always"},
            },
        }),
    ]
}

/// A block of the API server's addresses (`--webhook-api-server`, `irsa webhook
/// --trusted-peer`): a [`check_cidr`] block that does not trust every address (prefix 0) and
/// is not written IPv4-mapped (`::ffff:10.0.0.0/104` would never match: peers are compared as
/// IPv4). Reviews from trusted addresses are never evicted (review 24c M1, L1).
pub fn check_trusted_block(block: &str) -> Result<(), String> {
    check_cidr(block)?;
    let (address, prefix) = block.split_once('/').unwrap_or((block, ""));
    if prefix == "0" {
        return Err(
            "a prefix of 0 would trust every address, tenants' pods too: list the API server's \
             addresses (e.g. 10.0.0.0/24, or 192.0.2.7/32 for one address)"
                .to_owned(),
        );
    }
    if let Ok(IpAddr::V6(v6)) = address.parse::<IpAddr>()
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return Err(format!(
            "an IPv4-mapped block never matches (peers are compared as IPv4): write it as IPv4, \
             e.g. {v4}/N"
        ));
    }
    Ok(())
}

/// A `--webhook-allow-from` (or `irsa webhook --trusted-peer`) block: an IPv4 or IPv6 address,
/// a slash and a prefix length, with no host bits set (Kubernetes warns about such blocks, and they usually mean a typo).
pub fn check_cidr(block: &str) -> Result<(), String> {
    let Some((address, prefix)) = block.split_once('/') else {
        return Err(
            "a CIDR block: an address, a slash and a prefix length, e.g. 10.0.0.0/24 or \
             192.0.2.7/32 for one address"
                .to_owned(),
        );
    };
    let address: IpAddr = address.parse().map_err(|_| {
        format!("{address:?} is not an IP address (no host names: NetworkPolicy matches addresses)")
    })?;
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| format!("{prefix:?} is not a prefix length"))?;
    let (bits, family) = match address {
        IpAddr::V4(_) => (32, "IPv4"),
        IpAddr::V6(_) => (128, "IPv6"),
    };
    if prefix > bits {
        return Err(format!(
            "the prefix length of an {family} block is 0 to {bits}"
        ));
    }
    let network = match address {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    if network != address {
        return Err(format!("host bits set: did you mean {network}/{prefix}?"));
    }
    Ok(())
}

/// Ingress to the webhook's pods on [`WEBHOOK_PORT`] only (review finding M1): whatever else
/// listens in them is unreachable, and a cluster whose default is deny-all still lets the API
/// server in. From the `--webhook-api-server` and `--webhook-allow-from` blocks only when
/// there are some; else from anywhere: see the module documentation.
fn network_policy(o: &InstallOptions) -> NetworkPolicy {
    let blocks: Vec<&String> = o
        .webhook_api_server
        .iter()
        .chain(&o.webhook_allow_from)
        .collect();
    let from = (!blocks.is_empty()).then(|| {
        blocks
            .into_iter()
            .map(|cidr| NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: cidr.clone(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            })
            .collect()
    });
    NetworkPolicy {
        metadata: wmeta(WEBHOOK, Some(&o.namespace)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(webhook_selector()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(WEBHOOK_PORT)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
                from,
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// The Secret the certificate step fills (review finding L3), applied by the install so that
/// the step needs no create. Only its name and labels: a type or data here would be applied
/// again by every re-install, and `kubernetes.io/tls` cannot be created without `tls.crt` and
/// `tls.key`, whose (empty) values a client-side apply would then write over the certificate
/// and a server-side apply would fight the step for. So it is created `Opaque`, and a Secret of
/// type `kubernetes.io/tls` from an earlier install keeps its type and its pair.
pub fn placeholder_secret(o: &InstallOptions) -> Secret {
    Secret {
        metadata: wmeta(WEBHOOK_TLS_SECRET, Some(&o.namespace)),
        ..Secret::default()
    }
}

/// The webhook's objects in apply order: the ServiceAccount and RBAC first, the
/// configuration last, so kube-apiserver calls the webhook only once it can run.
pub(super) fn objects(o: &InstallOptions) -> Vec<Object> {
    let irsa_certs = o.webhook_certs == WebhookCerts::Irsa;
    let mut out = account_and_rbac(o, WEBHOOK, false, Some("webhook"));
    if irsa_certs {
        out.extend(account_and_rbac(
            o,
            WEBHOOK_CERTS,
            true,
            Some("webhook-certs"),
        ));
        out.push(Object::Secret(Box::new(placeholder_secret(o))));
    }
    if o.webhook_certs == WebhookCerts::CertManager {
        out.extend(cert_manager(o).map(|v| Object::Raw(Box::new(v))));
    }
    out.push(Object::Service(Box::new(Service {
        metadata: wmeta(WEBHOOK, Some(&o.namespace)),
        spec: Some(ServiceSpec {
            selector: Some(webhook_selector()),
            ports: Some(vec![ServicePort {
                name: Some("https".to_owned()),
                port: 443,
                target_port: Some(IntOrString::String("https".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })));
    out.push(Object::NetworkPolicy(Box::new(network_policy(o))));
    out.push(Object::Deployment(Box::new(deployment(o))));
    out.push(Object::PodDisruptionBudget(Box::new(PodDisruptionBudget {
        metadata: wmeta(WEBHOOK, Some(&o.namespace)),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(webhook_selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })));
    out.push(Object::MutatingWebhookConfiguration(Box::new(
        configuration(o),
    )));
    if irsa_certs {
        out.extend(certs_jobs(o));
    }
    out
}

/// A ServiceAccount, its ClusterRole and Role (the serving or the certificate step's grants)
/// and their bindings.
fn account_and_rbac(
    o: &InstallOptions,
    account: &str,
    certs: bool,
    component: Option<&str>,
) -> Vec<Object> {
    let m = |namespace: Option<&str>| meta(account, namespace, component);
    vec![
        Object::ServiceAccount(Box::new(ServiceAccount {
            metadata: m(Some(&o.namespace)),
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        })),
        Object::ClusterRole(Box::new(ClusterRole {
            metadata: m(None),
            rules: Some(webhook_rules(certs, true)),
            ..ClusterRole::default()
        })),
        Object::ClusterRoleBinding(Box::new(ClusterRoleBinding {
            metadata: m(None),
            role_ref: role_ref("ClusterRole", account),
            subjects: Some(subjects(o, account)),
        })),
        Object::Role(Box::new(Role {
            metadata: m(Some(&o.namespace)),
            rules: Some(webhook_rules(certs, false)),
        })),
        Object::RoleBinding(Box::new(RoleBinding {
            metadata: m(Some(&o.namespace)),
            role_ref: role_ref("Role", account),
            subjects: Some(subjects(o, account)),
        })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{Part, manifests};

    fn docs(certs: WebhookCerts) -> Vec<serde_json::Value> {
        manifests(&InstallOptions {
            parts: vec![Part::Webhook],
            webhook_certs: certs,
            ..InstallOptions::default()
        })
        .unwrap()
    }

    fn find<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    }

    fn named<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    /// (group, resource, sorted verbs, resourceNames) per rule.
    fn rows(role: &serde_json::Value) -> Vec<(String, String, String, serde_json::Value)> {
        let mut out: Vec<_> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut verbs: Vec<&str> = r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                verbs.sort_unstable();
                (
                    r["apiGroups"][0].as_str().unwrap().to_owned(),
                    r["resources"][0].as_str().unwrap().to_owned(),
                    verbs.join(" "),
                    r["resourceNames"].clone(),
                )
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        out
    }

    fn row(
        g: &str,
        r: &str,
        v: &str,
        names: serde_json::Value,
    ) -> (String, String, String, serde_json::Value) {
        (g.to_owned(), r.to_owned(), v.to_owned(), names)
    }

    #[test]
    fn the_webhook_is_opt_in_and_in_apply_order() {
        let default = manifests(&InstallOptions::default()).unwrap();
        assert!(!default.iter().any(|d| d["metadata"]["name"] == WEBHOOK));
        let kinds: Vec<_> = docs(WebhookCerts::Irsa)
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Secret",
                "Service",
                "NetworkPolicy",
                "Deployment",
                "PodDisruptionBudget",
                "MutatingWebhookConfiguration",
                "Job",
                "CronJob"
            ]
        );
        let e = manifests(&InstallOptions {
            watch_namespace: Some("team-a".into()),
            parts: vec![Part::Webhook],
            ..InstallOptions::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--webhook cannot be combined with --watch-namespace"),
            "{e}"
        );
    }

    /// Review finding L4: the serving pods' ServiceAccount holds only what the server sends;
    /// the certificate step's grants are its own ServiceAccount's, bound to nothing else.
    #[test]
    fn rbac_is_exactly_what_the_webhook_and_its_certs_step_send() {
        let serving = |d: &[serde_json::Value]| {
            assert_eq!(
                rows(named(d, "ClusterRole", WEBHOOK)),
                [row(
                    "",
                    "serviceaccounts",
                    "get list watch",
                    serde_json::Value::Null
                )]
            );
            assert_eq!(
                rows(named(d, "Role", WEBHOOK)),
                [row(
                    "",
                    "configmaps",
                    "list watch",
                    serde_json::json!([WEBHOOK_CONFIG_MAP])
                )]
            );
        };
        let d = docs(WebhookCerts::Irsa);
        serving(&d);
        assert_eq!(
            rows(named(&d, "ClusterRole", WEBHOOK_CERTS)),
            [row(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                "get patch",
                serde_json::json!([WEBHOOK_CONFIGURATION])
            )]
        );
        // No create (review finding L3): the install applies the Secret, the step fills it.
        assert_eq!(
            rows(named(&d, "Role", WEBHOOK_CERTS)),
            [row(
                "",
                "secrets",
                "get update",
                serde_json::json!([WEBHOOK_TLS_SECRET])
            )]
        );
        for account in [WEBHOOK, WEBHOOK_CERTS] {
            assert_eq!(
                named(&d, "Role", account)["metadata"]["namespace"],
                "irsa-system"
            );
            for kind in ["RoleBinding", "ClusterRoleBinding"] {
                let binding = named(&d, kind, account);
                assert_eq!(binding["roleRef"]["name"], account);
                assert_eq!(
                    binding["subjects"],
                    serde_json::json!([{"kind": "ServiceAccount", "name": account, "namespace": "irsa-system"}])
                );
            }
        }
        // Who runs as which: the serving pods as irsa-webhook, the cert step as its own.
        let serving_pod = &find(&d, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(serving_pod["serviceAccountName"], WEBHOOK);
        assert_eq!(
            find(&d, "Job")["spec"]["template"]["spec"]["serviceAccountName"],
            WEBHOOK_CERTS
        );
        assert_eq!(
            find(&d, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"],
            WEBHOOK_CERTS
        );
        // cert-manager makes the certificate: no cert step, no certificate grants at all.
        let cm = docs(WebhookCerts::CertManager);
        serving(&cm);
        assert!(
            !cm.iter()
                .any(|d| d["metadata"]["name"] == WEBHOOK_CERTS || d["kind"] == "Job"),
            "{cm:?}"
        );
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("\"*\""), "{text}");
    }

    /// Review finding L4: a Job of the install and a weekly CronJob run the step, idempotent
    /// and re-runnable; the serving pods wait for the Secret (a required volume) and serve it.
    #[test]
    fn the_cert_step_is_a_job_and_a_cronjob_and_the_deployment_serves_what_it_stored() {
        let d = docs(WebhookCerts::Irsa);
        let want_args = serde_json::json!([
            "webhook",
            "certs",
            "--namespace=irsa-system",
            "--secret=irsa-webhook-tls",
            "--service=irsa-webhook",
            "--webhook-configuration=irsa-pod-identity-webhook"
        ]);
        let job = find(&d, "Job");
        let cron = find(&d, "CronJob");
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 600);
        assert_eq!(cron["spec"]["schedule"], WEBHOOK_CERTS_SCHEDULE);
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
        for spec in [&job["spec"], &cron["spec"]["jobTemplate"]["spec"]] {
            let pod = &spec["template"]["spec"];
            assert_eq!(pod["restartPolicy"], "OnFailure");
            assert!(pod.get("volumes").is_none(), "{pod}");
            let c = &pod["containers"][0];
            assert_eq!(c["args"], want_args);
            assert!(c.get("ports").is_none());
            // Not selected by the Service, the PodDisruptionBudget or the NetworkPolicy.
            assert_eq!(
                spec["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
                "webhook-certs"
            );
        }
        // The configuration exists before the step patches it.
        let position = |kind: &str| d.iter().position(|x| x["kind"] == kind).unwrap();
        assert!(position("MutatingWebhookConfiguration") < position("Job"));
        let deploy = find(&d, "Deployment");
        assert_eq!(deploy["spec"]["replicas"], 2);
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], WEBHOOK);
        assert!(pod.get("initContainers").is_none());
        let c = &pod["containers"][0];
        assert_eq!(
            c["args"],
            serde_json::json!([
                "webhook",
                "--port=9443",
                "--tls-cert=/etc/webhook/certs/tls.crt",
                "--tls-key=/etc/webhook/certs/tls.key",
                "--watch-config-map",
                "--deadline=2000ms"
            ])
        );
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["volumeMounts"][0]["mountPath"], CERT_DIR);
        for container in [c, &job["spec"]["template"]["spec"]["containers"][0]] {
            let sc = &container["securityContext"];
            assert_eq!(sc["runAsNonRoot"], true);
            assert_eq!(sc["runAsUser"], 65532);
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(container["resources"]["requests"]["memory"].is_string());
            assert!(container["resources"]["limits"]["memory"].is_string());
        }
        // Required keys: the kubelet starts the pods once the step has filled the placeholder.
        assert_eq!(pod["volumes"][0]["secret"], certs_volume());
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
        let pdb = find(&d, "PodDisruptionBudget");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(pdb["spec"]["selector"], deploy["spec"]["selector"]);
        let service = find(&d, "Service");
        assert_eq!(
            service["spec"]["selector"],
            deploy["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(service["spec"]["ports"][0]["port"], 443);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
        // With cert-manager: the same pods, waiting for its Secret.
        let cm = docs(WebhookCerts::CertManager);
        let pod = &find(&cm, "Deployment")["spec"]["template"]["spec"];
        assert!(pod.get("initContainers").is_none());
        assert_eq!(pod["volumes"][0]["secret"], certs_volume());
    }

    fn certs_volume() -> serde_json::Value {
        serde_json::json!({"secretName": WEBHOOK_TLS_SECRET, "items": [
            {"key": "tls.crt", "path": "tls.crt"},
            {"key": "tls.key", "path": "tls.key"},
        ]})
    }

    /// Review finding L3: the certificate step needs no create of Secrets (which RBAC cannot
    /// limit by name): the install applies the Secret empty. Without a type or data, so that
    /// applying the install again (client-side or server-side apply, any GitOps tool) names no
    /// field the step writes and cannot wipe the certificate, nor conflict with its writes; a
    /// Secret of type kubernetes.io/tls could not be created without tls.crt and tls.key.
    #[test]
    fn the_install_applies_an_empty_placeholder_secret_before_the_pods_and_the_step() {
        let d = docs(WebhookCerts::Irsa);
        let secret = named(&d, "Secret", WEBHOOK_TLS_SECRET);
        let mut fields: Vec<&str> = secret
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["apiVersion", "kind", "metadata"], "{secret}");
        assert_eq!(secret["apiVersion"], "v1");
        assert_eq!(secret["metadata"]["namespace"], "irsa-system");
        let mut meta: Vec<&str> = secret["metadata"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        meta.sort_unstable();
        assert_eq!(meta, ["labels", "name", "namespace"], "{secret}");
        let position = |kind: &str| d.iter().position(|x| x["kind"] == kind).unwrap();
        assert!(position("Secret") < position("Deployment"));
        assert!(position("Secret") < position("Job"));
        // cert-manager creates its own Secret.
        let cm = docs(WebhookCerts::CertManager);
        assert!(!cm.iter().any(|d| d["kind"] == "Secret"), "{cm:?}");
    }

    /// Review finding M1: only the webhook's port is reachable in its pods, whoever asks.
    #[test]
    fn a_network_policy_admits_ingress_on_the_webhook_port_only() {
        for certs in [WebhookCerts::Irsa, WebhookCerts::CertManager] {
            let d = docs(certs);
            let policy = find(&d, "NetworkPolicy");
            assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
            assert_eq!(policy["metadata"]["namespace"], "irsa-system");
            let deploy = find(&d, "Deployment");
            assert_eq!(
                policy["spec"]["podSelector"]["matchLabels"],
                deploy["spec"]["selector"]["matchLabels"]
            );
            assert_eq!(
                policy["spec"]["policyTypes"],
                serde_json::json!(["Ingress"])
            );
            assert_eq!(
                policy["spec"]["ingress"],
                serde_json::json!([{"ports": [{"port": WEBHOOK_PORT, "protocol": "TCP"}]}])
            );
            // The one port the pods listen on, and where the Service sends the API server.
            let c = &deploy["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                c["ports"],
                serde_json::json!([{"name": "https", "containerPort": WEBHOOK_PORT, "protocol": "TCP"}])
            );
            assert_eq!(
                find(&d, "Service")["spec"]["ports"][0]["targetPort"],
                "https"
            );
        }
    }

    fn webhook_args(d: &[serde_json::Value]) -> Vec<String> {
        find(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }

    /// Only `--webhook-api-server` blocks are trusted peers of the webhook; `--webhook-allow-from`
    /// blocks (a metrics scraper's range, often the whole pod network) are admitted by the
    /// NetworkPolicy but never trusted, or every pod there could evict the API server's waiting
    /// reviews. Both narrow the policy's `from`.
    #[test]
    fn only_the_api_servers_blocks_are_trusted_peers() {
        let d = manifests(&InstallOptions {
            parts: vec![Part::Webhook],
            webhook_api_server: vec!["192.0.2.7/32".into()],
            webhook_allow_from: vec!["10.244.0.0/16".into()],
            ..InstallOptions::default()
        })
        .unwrap();
        let trusted: Vec<String> = webhook_args(&d)
            .into_iter()
            .filter(|a| a.starts_with("--trusted-peer"))
            .collect();
        assert_eq!(trusted, ["--trusted-peer=192.0.2.7/32"]);
        assert_eq!(
            find(&d, "NetworkPolicy")["spec"]["ingress"][0]["from"],
            serde_json::json!([
                {"ipBlock": {"cidr": "192.0.2.7/32"}},
                {"ipBlock": {"cidr": "10.244.0.0/16"}},
            ])
        );
        let bad = manifests(&InstallOptions {
            parts: vec![Part::Webhook],
            webhook_api_server: vec!["192.0.2.7/24".into()],
            ..InstallOptions::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("--webhook-api-server") && bad.contains("192.0.2.0/24"),
            "{bad}"
        );
        // Review 24c M1, L1: a block trusting every address, or one that never matches, is
        // refused for the API server (an allow-from /0 only opens the policy, as no block does).
        for (block, want) in [
            ("0.0.0.0/0", "would trust every address"),
            ("::/0", "would trust every address"),
            ("::ffff:10.0.0.0/104", "write it as IPv4, e.g. 10.0.0.0/N"),
        ] {
            let e = manifests(&InstallOptions {
                parts: vec![Part::Webhook],
                webhook_api_server: vec![block.into()],
                ..InstallOptions::default()
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{block}: {e}");
        }
        assert!(
            manifests(&InstallOptions {
                parts: vec![Part::Webhook],
                webhook_allow_from: vec!["0.0.0.0/0".into()],
                ..InstallOptions::default()
            })
            .is_ok()
        );
    }

    /// `--webhook-allow-from`: the policy's ingress narrowed to the API server's addresses (and
    /// whatever else the user lists), still on the one port; bad blocks are refused precisely.
    #[test]
    fn allow_from_narrows_the_network_policy_to_those_blocks() {
        let with = |blocks: &[&str]| {
            manifests(&InstallOptions {
                parts: vec![Part::Webhook],
                webhook_allow_from: blocks.iter().map(|b| (*b).to_owned()).collect(),
                ..InstallOptions::default()
            })
        };
        let d = with(&["10.0.0.0/24", "fd00:10::/64", "192.0.2.7/32"]).unwrap();
        assert_eq!(
            find(&d, "NetworkPolicy")["spec"]["ingress"],
            serde_json::json!([{
                "from": [
                    {"ipBlock": {"cidr": "10.0.0.0/24"}},
                    {"ipBlock": {"cidr": "fd00:10::/64"}},
                    {"ipBlock": {"cidr": "192.0.2.7/32"}},
                ],
                "ports": [{"port": WEBHOOK_PORT, "protocol": "TCP"}],
            }])
        );
        // Allowed, not trusted: only `--webhook-api-server` blocks are.
        assert!(
            [d, with(&[]).unwrap()]
                .iter()
                .all(|d| !webhook_args(d).iter().any(|a| a.contains("--trusted-peer")))
        );
        for (bad, want) in [
            ("10.0.0.1/24", "host bits set: did you mean 10.0.0.0/24?"),
            (
                "10.0.0.0/33",
                "the prefix length of an IPv4 block is 0 to 32",
            ),
            (
                "fd00::1/129",
                "the prefix length of an IPv6 block is 0 to 128",
            ),
            (
                "10.0.0.0",
                "a CIDR block: an address, a slash and a prefix length",
            ),
            ("api.example/24", "not an IP address"),
            ("10.0.0.0/", "not a prefix length"),
        ] {
            let e = with(&[bad]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid --webhook-allow-from {bad:?}: "))
                    && e.contains(want),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_webhook_answers_before_the_api_server_gives_up() {
        // Its own --deadline must expire before timeoutSeconds, or the API server always gives
        // up first and the fail-open answer (with its warning) never reaches anyone.
        let d = docs(WebhookCerts::Irsa);
        let timeout_ms = find(&d, "MutatingWebhookConfiguration")["webhooks"][0]["timeoutSeconds"]
            .as_i64()
            .unwrap()
            * 1000;
        let pod = &find(&d, "Deployment")["spec"]["template"]["spec"];
        let deadline = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a.as_str().unwrap().strip_prefix("--deadline="))
            .expect("the webhook container passes --deadline");
        let deadline_ms: i64 = deadline.strip_suffix("ms").unwrap().parse().unwrap();
        assert!(
            deadline_ms > 0 && deadline_ms < timeout_ms,
            "{deadline_ms} vs {timeout_ms}"
        );
    }

    #[test]
    fn the_configuration_fails_open_skips_labelled_pods_and_reinvokes() {
        let d = docs(WebhookCerts::Irsa);
        let config = find(&d, "MutatingWebhookConfiguration");
        assert_eq!(config["metadata"]["name"], WEBHOOK_CONFIGURATION);
        assert!(config["metadata"].get("annotations").is_none());
        let w = &config["webhooks"][0];
        assert_eq!(w["name"], WEBHOOK_NAME);
        assert_eq!(w["failurePolicy"], "Ignore");
        assert_eq!(w["reinvocationPolicy"], "IfNeeded");
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(w["timeoutSeconds"], 3);
        assert_eq!(
            w["objectSelector"],
            serde_json::json!({"matchExpressions": [{"key": SKIP_POD_LABEL, "operator": "DoesNotExist"}]})
        );
        assert_eq!(
            w["rules"],
            serde_json::json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}])
        );
        assert_eq!(
            w["clientConfig"],
            serde_json::json!({"service": {"name": WEBHOOK, "namespace": "irsa-system", "path": "/mutate", "port": 443}})
        );
        let cm = docs(WebhookCerts::CertManager);
        let config = find(&cm, "MutatingWebhookConfiguration");
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "irsa-system/irsa-webhook-tls"
        );
        let certificate = find(&cm, "Certificate");
        assert_eq!(certificate["spec"]["secretName"], WEBHOOK_TLS_SECRET);
        assert_eq!(certificate["spec"]["issuerRef"]["name"], WEBHOOK_ISSUER);
        assert!(
            certificate["spec"]["dnsNames"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("irsa-webhook.irsa-system.svc"))
        );
        assert_eq!(
            find(&cm, "Issuer")["spec"],
            serde_json::json!({"selfSigned": {}})
        );
    }

    #[test]
    fn another_namespace_reaches_every_name_that_holds_it() {
        let d = manifests(&InstallOptions {
            namespace: "platform".into(),
            parts: vec![Part::Webhook],
            webhook_certs: WebhookCerts::Irsa,
            ..InstallOptions::default()
        })
        .unwrap();
        let config = find(&d, "MutatingWebhookConfiguration");
        assert_eq!(
            config["webhooks"][0]["clientConfig"]["service"]["namespace"],
            "platform"
        );
        for pod in [
            &find(&d, "Job")["spec"]["template"]["spec"],
            &find(&d, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        ] {
            assert_eq!(pod["containers"][0]["args"][2], "--namespace=platform");
        }
        for doc in &d {
            let cluster = matches!(
                doc["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding" | "MutatingWebhookConfiguration")
            );
            if !cluster {
                assert_eq!(doc["metadata"]["namespace"], "platform", "{doc}");
            }
        }
        let cm = manifests(&InstallOptions {
            namespace: "platform".into(),
            parts: vec![Part::Webhook],
            webhook_certs: WebhookCerts::CertManager,
            ..InstallOptions::default()
        })
        .unwrap();
        assert_eq!(
            find(&cm, "MutatingWebhookConfiguration")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "platform/irsa-webhook-tls"
        );
    }
}
