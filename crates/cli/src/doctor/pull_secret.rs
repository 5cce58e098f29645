//! `irsa doctor --pull-secret NAME` (a ClusterPullSecret) or `NAMESPACE/NAME` (a PullSecret):
//! the resource and its spec, the status the controller wrote, the secret in every target
//! namespace, then the identity chain of the service account it uses (with the role its spec
//! names instead of the annotation, when it names one), the registry checked being its own.
//!
//! Everything read here was written by someone else, often a tenant: a PullSecret's spec, the
//! status (whoever may write the status subresource), the target secrets' labels and
//! annotations. Values are shown through the report's escaping and cut short, counts are
//! summarised (a ClusterPullSecret may serve 10,000 namespaces), and of a secret's data only
//! the registry hosts of its `.dockerconfigjson` are read, never a credential.
//!
//! A stale status (its `observedGeneration` below the resource's `metadata.generation`) fails
//! `pull-secret-status`: it describes a spec that is no longer the one in force, so it can
//! vouch for nothing; a working controller catches up within seconds of an edit, so a stale
//! status that stays says the controller is not running, not leading or not watching.

use std::collections::{BTreeMap, BTreeSet};

use irsa_controller::plan::{
    DOCKER_CONFIG_JSON_KEY, DOCKER_CONFIG_JSON_TYPE, NamespaceState, Owner, selects,
};
use irsa_core::arn::RoleArn;
use irsa_core::names::{EXPIRES_AT_ANNOTATION, ROLE_ARN_ANNOTATION};
use irsa_core::seal::CREDENTIAL_MAC_ANNOTATION;
use irsa_k8s::validation::{RegistryTarget as SpecTarget, Validated, ValidatedIdentity};
use irsa_k8s::{ClusterPullSecret, NamespaceSelection, PullSecret, PullSecretStatus, SecretSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::FixInputs;
use super::cluster::{self, Annotated, kube_error};
use super::report::{Check, Fix, Group, Report, Status, cut_to};
use crate::Invalid;
use crate::shell::sh;

/// The pull secret named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullSecretRef {
    /// `--pull-secret NAME`.
    Cluster(String),
    /// `--pull-secret NAMESPACE/NAME`.
    Namespaced { namespace: String, name: String },
}

impl PullSecretRef {
    /// `ClusterPullSecret ecr`, `PullSecret team-a/ecr`.
    pub(crate) fn title(&self) -> String {
        match self {
            Self::Cluster(name) => format!("ClusterPullSecret {name}"),
            Self::Namespaced { namespace, name } => format!("PullSecret {namespace}/{name}"),
        }
    }

    fn owner(&self) -> Owner {
        match self {
            Self::Cluster(name) => Owner::Cluster { name: name.clone() },
            Self::Namespaced { namespace, name } => Owner::Namespaced {
                namespace: namespace.clone(),
                name: name.clone(),
            },
        }
    }

    /// `kubectl … clusterpullsecret ecr` / `kubectl … pullsecret -n team-a ecr`.
    fn kubectl(&self, verb: &str) -> String {
        match self {
            Self::Cluster(name) => format!("kubectl {verb} clusterpullsecret {}", sh(name)),
            Self::Namespaced { namespace, name } => {
                format!(
                    "kubectl {verb} pullsecret -n {} {}",
                    sh(namespace),
                    sh(name)
                )
            }
        }
    }
}

/// `--pull-secret NAME` or `NAMESPACE/NAME`.
pub(crate) fn parse_flag(value: &str) -> Result<PullSecretRef, Invalid> {
    let usage = |why: &str| {
        Invalid(format!(
            "--pull-secret {value:?} {why}: give NAME for a ClusterPullSecret or NAMESPACE/NAME for a PullSecret, e.g. ecr or team-a/ecr (a namespace is 1-63 lowercase letters, digits or '-'; a name 1-253 of those or '.')"
        ))
    };
    let label = |s: &str, max: usize, dots: bool| {
        !s.is_empty()
            && s.len() <= max
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
    };
    match value.split('/').collect::<Vec<_>>()[..] {
        [name] if label(name, 253, true) => Ok(PullSecretRef::Cluster(name.to_owned())),
        [_] => Err(usage("is not a Kubernetes name")),
        [ns, name] if label(ns, 63, false) && label(name, 253, true) => {
            Ok(PullSecretRef::Namespaced {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })
        }
        [ns, _] if !label(ns, 63, false) => Err(usage("does not start with a namespace")),
        [_, _] => Err(usage("does not end in a Kubernetes name")),
        ref parts => Err(usage(&format!("has {} '/' (at most one)", parts.len() - 1))),
    }
}

/// The role a pull secret's `spec.identity.roleArn` names: it, not the service account's
/// annotation, is the role the controller assumes with the account's token.
pub(crate) struct RoleOverride {
    pub role: RoleArn,
    /// Where it comes from, for people: `ClusterPullSecret ecr's spec.identity.roleArn`.
    pub source: String,
}

/// The pull secret's own checks, before its identity's chain.
pub(crate) const OWN_CHECKS: &[&str] =
    &["pull-secret", "pull-secret-status", "pull-secret-targets"];

/// The identity chain's checks, as `online` records them: skipped together when the pull
/// secret cannot say whose chain it is.
const CHAIN: &[(&str, Group)] = &[
    ("service-account", Group::Kubernetes),
    ("role-annotation", Group::Kubernetes),
    ("issuer", Group::Kubernetes),
    ("jwks", Group::Kubernetes),
    ("token", Group::Kubernetes),
    ("partition", Group::Aws),
    ("oidc-provider", Group::Aws),
    ("oidc-audience", Group::Aws),
    ("role", Group::Aws),
    ("session-tags", Group::Aws),
    ("trust-policy", Group::Aws),
    ("permissions", Group::Aws),
    ("assume-role", Group::Exchange),
    ("ecr", Group::Exchange),
];

/// At most this many names (namespaces, registries, problems) are listed per line; the counts
/// cover the rest.
const MAX_LISTED: usize = 10;
/// At most this many characters of one tenant-written value are shown.
const MAX_VALUE: usize = 200;
/// Target namespaces without irsa's secret that are looked at one by one (to tell a
/// same-named secret of someone else's from none at all).
const MAX_PROBES: usize = 20;
/// Page size of the namespace list.
const PAGE: u32 = 500;
/// Page size of the secret list (a secret can be 1 MiB).
const SECRET_PAGE: u32 = 50;

/// `a, b, c` of the first [`MAX_LISTED`], then `… and N more`.
fn listed<S: AsRef<str>>(items: &[S]) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_LISTED)
        .map(|s| cut_to(s.as_ref(), MAX_VALUE))
        .collect();
    if items.len() > MAX_LISTED {
        out.push(format!("… and {} more", items.len() - MAX_LISTED));
    }
    out.join(", ")
}

/// The resource as read, with what the checks need of it.
struct Found {
    spec: SecretSpec,
    /// A ClusterPullSecret's namespace selection; `None` for a PullSecret.
    selection: Option<NamespaceSelection>,
    validated: Validated,
    generation: Option<i64>,
    status: Option<PullSecretStatus>,
}

/// Runs the pull secret's checks, then its identity's chain.
pub(crate) async fn check(
    report: &mut Report,
    target: &PullSecretRef,
    inputs: &FixInputs,
) -> anyhow::Result<()> {
    let now = crate::token::now();
    report.ready("pull-secret", Group::Kubernetes, &[]);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            report.record(
                Check::error(
                    "pull-secret",
                    Group::Kubernetes,
                    format!("cannot reach the cluster: {e}"),
                )
                .detail("doctor reads the cluster from KUBECONFIG (or ~/.kube/config, or the in-cluster service account)"),
                &[],
            );
            skip_rest(report);
            return Ok(());
        }
    };
    let (check, found) = read(&client, target).await;
    report.record(check, &[]);
    let Some(found) = found else {
        skip_rest(report);
        return Ok(());
    };

    const NEEDS: &[&str] = &["pull-secret"];
    if report.ready("pull-secret-status", Group::Kubernetes, NEEDS) {
        let check = status_check(target, found.generation, found.status.as_ref());
        report.record(check, NEEDS);
    }
    if report.ready("pull-secret-targets", Group::Kubernetes, NEEDS) {
        let hosts: Vec<String> = found
            .validated
            .registries
            .iter()
            .map(|r| r.host.clone())
            .collect();
        let check = targets(&client, target, &found, &hosts, now).await;
        report.record(check, NEEDS);
    }

    // The identity's chain, as the controller walks it.
    match &found.validated.identity {
        ValidatedIdentity::ServiceAccount {
            namespace,
            name,
            role_arn,
        } => {
            let role = role_arn.as_ref().map(|r| RoleOverride {
                role: r.clone(),
                source: format!("{}'s spec.identity.roleArn", target.title()),
            });
            let registry = found.validated.registries.first().map(aws_target);
            super::online(
                report,
                namespace,
                name,
                super::Scope {
                    role_override: role.as_ref(),
                    client: Some(&client),
                    ..super::Scope::default()
                },
                registry,
                inputs,
            )
            .await?;
            if let Some(role) = &role {
                name_the_roles_source(report, target, role);
            }
        }
        ValidatedIdentity::Ambient { role_arn } => {
            let role = role_arn
                .as_ref()
                .map(|r| format!(", assuming {r}"))
                .unwrap_or_default();
            for (id, group) in CHAIN {
                let mut check = Check::pass(
                    id,
                    *group,
                    format!("not applicable: spec.identity.ambient uses the controller's own credentials{role}"),
                )
                .detail("doctor cannot use them from here; check the controller's service account instead, e.g. irsa doctor --service-account irsa-system/irsa-controller");
                check.status = Status::Skip;
                report.record(check, NEEDS);
            }
        }
    }
    name_the_chains_break(report);
    // `--fix` is not offered for a pull secret (the controller's status lags any change):
    // the fixes below say what to run, and `--service-account NS/NAME --fix` makes them.
    // What `--fix` would have asked before changing a role stays, as a warning beside the
    // printed commands (review M2: a PullSecret's roleArn is a tenant's to choose).
    let tenant_role = match (&found.validated.identity, target) {
        (
            ValidatedIdentity::ServiceAccount {
                role_arn: Some(role),
                ..
            },
            PullSecretRef::Namespaced { .. },
        ) => Some(role.to_string()),
        _ => None,
    };
    for c in &mut report.checks {
        let Some(change) = c.fix.as_mut().and_then(|f| f.change.take()) else {
            continue;
        };
        if let Some(confirm) = &change.confirm {
            c.details.push(format!(
                "before running the fix: {} (doctor --fix would change it only once its name, {}, is confirmed)",
                confirm.reason, confirm.role_name
            ));
        }
        if let Some(role) = &tenant_role {
            c.details.push(format!(
                "the role {role} is named by {}'s spec.identity.roleArn, a tenant's resource: make sure the role is meant for it before changing the role's trust or permissions",
                target.title()
            ));
        }
    }
    Ok(())
}

/// The chain's `role` check speaks of the annotation; with spec.identity.roleArn the role
/// is the pull secret's to correct.
fn name_the_roles_source(report: &mut Report, target: &PullSecretRef, role: &RoleOverride) {
    let Some(check) = report
        .checks
        .iter_mut()
        .find(|c| c.id == "role" && c.status == Status::Fail)
    else {
        return;
    };
    check.details.push(format!(
        "the role is the one {} names, not the service account's annotation: correct it there, or create the role",
        role.source
    ));
    if let Some(fix) = &mut check.fix {
        fix.commands.insert(0, target.kubectl("edit"));
    }
}

/// The chain's checks, skipped: nothing says whose chain it is.
fn skip_rest(report: &mut Report) {
    for id in ["pull-secret-status", "pull-secret-targets"] {
        report.ready(id, Group::Kubernetes, &["pull-secret"]);
    }
    for (id, group) in CHAIN {
        report.ready(id, *group, &["pull-secret"]);
    }
}

/// A failing status is a symptom; the chain's first failing check is its cause: named on the
/// status check, so that whoever reads only the first failure is led to it.
fn name_the_chains_break(report: &mut Report) {
    let broken = report
        .checks
        .iter()
        .find(|c| {
            CHAIN.iter().any(|(id, _)| *id == c.id)
                && matches!(c.status, Status::Fail | Status::Error)
        })
        .map(|c| c.id);
    if let (Some(broken), Some(status)) = (
        broken,
        report
            .checks
            .iter_mut()
            .find(|c| c.id == "pull-secret-status" && c.status == Status::Fail),
    ) {
        status.details.push(format!(
            "the identity chain below breaks first at {broken}: fix that link, then the controller's next retry succeeds"
        ));
        status
            .data
            .insert("chain_first_failure".to_owned(), json!(broken));
    }
}

/// A validated registry as the exchange takes it.
fn aws_target(r: &irsa_k8s::validation::ValidatedRegistry) -> irsa_aws::RegistryTarget {
    use irsa_core::registry::Registry;
    let (registry, chainguard_identity, chainguard_method) = match &r.target {
        SpecTarget::Ecr(e) => (Registry::Ecr(e.clone()), None, Default::default()),
        SpecTarget::EcrPublic => (Registry::EcrPublic, None, Default::default()),
        SpecTarget::Chainguard { identity, method } => (
            Registry::Chainguard,
            Some(identity.clone()),
            match method {
                irsa_k8s::ChainguardMethod::GetCallerIdentity => {
                    irsa_aws::ChainguardMethod::GetCallerIdentity
                }
                irsa_k8s::ChainguardMethod::WebIdentityToken => {
                    irsa_aws::ChainguardMethod::WebIdentityToken
                }
            },
        ),
    };
    irsa_aws::RegistryTarget {
        host: r.host.clone(),
        registry,
        chainguard_identity,
        chainguard_method,
    }
}

/// The `pull-secret` check: the resource exists and its spec is what the controller accepts.
async fn read(client: &kube::Client, target: &PullSecretRef) -> (Check, Option<Found>) {
    const ID: &str = "pull-secret";
    let title = target.title();
    let got = match target {
        PullSecretRef::Cluster(name) => Api::<ClusterPullSecret>::all(client.clone())
            .get_opt(name)
            .await
            .map(|o| {
                o.map(|c| {
                    let validated = c.validate();
                    (
                        c.spec.secret,
                        Some(c.spec.namespaces),
                        validated,
                        c.metadata.generation,
                        c.status,
                    )
                })
            }),
        PullSecretRef::Namespaced { namespace, name } => {
            Api::<PullSecret>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map(|o| {
                    o.map(|p| {
                        let validated = p.validate();
                        (
                            p.spec.secret,
                            None,
                            validated,
                            p.metadata.generation,
                            p.status,
                        )
                    })
                })
        }
    };
    let (spec, selection, validated, generation, status) = match got {
        Ok(Some(found)) => found,
        Ok(None) => return (missing(client, target).await, None),
        Err(kube::Error::SerdeError(e)) => {
            return (
                Check::fail(
                    ID,
                    Group::Kubernetes,
                    format!(
                        "{title} cannot be read as irsa.dev/v1alpha1: {}",
                        cut_to(&e.to_string(), MAX_VALUE)
                    ),
                )
                .fix(Fix::new("correct the resource to the CRD's schema (irsa install --only crds installs it)").command(target.kubectl("edit"))),
                None,
            );
        }
        Err(e) => {
            return (
                Check::error(
                    ID,
                    Group::Kubernetes,
                    format!("could not read {title}: {}", kube_error(&e)),
                ),
                None,
            );
        }
    };
    let validated = match validated {
        Ok(v) => v,
        Err(errors) => {
            let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            return (
                Check::fail(
                    ID,
                    Group::Kubernetes,
                    format!(
                        "{title}'s spec is invalid ({} problem(s)): the controller writes nothing for it",
                        lines.len()
                    ),
                )
                .details(lines.iter().take(MAX_LISTED).map(|l| cut_to(l, MAX_VALUE)))
                .details(
                    (lines.len() > MAX_LISTED)
                        .then(|| format!("… and {} more", lines.len() - MAX_LISTED)),
                )
                .fix(Fix::new("correct the fields named").command(target.kubectl("edit"))),
                None,
            );
        }
    };
    let hosts: Vec<&str> = validated
        .registries
        .iter()
        .map(|r| r.host.as_str())
        .collect();
    let mut details = vec![format!(
        "registries: {} (written into secret {})",
        listed(&hosts),
        cut_to(&spec.secret_name, MAX_VALUE)
    )];
    if hosts.len() > 1 {
        details.push(format!(
            "the ecr check below asks {} for a password; the other registries use the same session",
            hosts[0]
        ));
    }
    let (identity, service_account, role) = match &validated.identity {
        ValidatedIdentity::ServiceAccount {
            namespace,
            name,
            role_arn,
        } => (
            format!("service account {namespace}/{name}"),
            json!(format!("{namespace}/{name}")),
            role_arn.as_ref(),
        ),
        ValidatedIdentity::Ambient { role_arn } => (
            "the controller's own credentials (ambient)".to_owned(),
            Value::Null,
            role_arn.as_ref(),
        ),
    };
    details.push(match role {
        Some(r) => format!(
            "identity: {identity}, role {r} (spec.identity.roleArn, instead of the {ROLE_ARN_ANNOTATION} annotation)"
        ),
        None => format!("identity: {identity}"),
    });
    if let Some(s) = &selection {
        details.push(format!("namespaces: {}", selection_text(s)));
    }
    if !spec.service_accounts.is_empty() {
        details.push(format!(
            "imagePullSecrets added to service accounts: {}",
            listed(&spec.service_accounts)
        ));
    }
    let check = Check::pass(
        ID,
        Group::Kubernetes,
        format!("{title} exists; its spec is valid"),
    )
    .details(details)
    .data(
        "kind",
        json!(match target {
            PullSecretRef::Cluster(_) => "ClusterPullSecret",
            PullSecretRef::Namespaced { .. } => "PullSecret",
        }),
    )
    .data(
        "registries",
        json!(hosts.iter().take(MAX_LISTED).collect::<Vec<_>>()),
    )
    .data("secret_name", json!(cut_to(&spec.secret_name, MAX_VALUE)))
    .data("service_account", service_account)
    .data("role_arn", json!(role.map(ToString::to_string)));
    let found = Found {
        spec,
        selection,
        validated,
        generation,
        status,
    };
    (check, Some(found))
}

/// How a ClusterPullSecret's selection reads, bounded.
fn selection_text(s: &NamespaceSelection) -> String {
    let mut parts = Vec::new();
    if let Some(sel) = &s.selector {
        let labels: Vec<String> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(
                sel.match_expressions
                    .iter()
                    .flatten()
                    .map(|e| format!("{} {}", e.key, e.operator)),
            )
            .collect();
        parts.push(format!("selector {}", listed(&labels)));
    }
    if !s.include.is_empty() {
        parts.push(format!("include {}", listed(&s.include)));
    }
    if !s.exclude.is_empty() {
        parts.push(format!("exclude {}", listed(&s.exclude)));
    }
    if parts.is_empty() {
        "every namespace".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The resource is not there: says whether irsa's CRDs are, and which ones exist.
async fn missing(client: &kube::Client, target: &PullSecretRef) -> Check {
    const ID: &str = "pull-secret";
    let title = target.title();
    let params = ListParams::default().limit(MAX_LISTED as u32);
    let names: Result<Vec<String>, kube::Error> = match target {
        PullSecretRef::Cluster(_) => Api::<ClusterPullSecret>::all(client.clone())
            .list_metadata(&params)
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            }),
        PullSecretRef::Namespaced { namespace, .. } => {
            Api::<PullSecret>::namespaced(client.clone(), namespace)
                .list_metadata(&params)
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .collect()
                })
        }
    };
    match names {
        Err(kube::Error::Api(e)) if e.code == 404 => Check::fail(
            ID,
            Group::Kubernetes,
            format!("{title} does not exist: irsa's CRDs are not installed in this cluster"),
        )
        .fix(
            Fix::new("install the CRDs (and the controller), then create the pull secret")
                .command("irsa install --only crds | kubectl apply --server-side -f -"),
        ),
        Ok(names) if !names.is_empty() => {
            let where_ = match target {
                PullSecretRef::Cluster(_) => "ClusterPullSecrets".to_owned(),
                PullSecretRef::Namespaced { namespace, .. } => {
                    format!("PullSecrets in {namespace}")
                }
            };
            Check::fail(ID, Group::Kubernetes, format!("{title} does not exist"))
                .detail(format!("{where_}: {}", listed(&names)))
                .fix(
                    Fix::new("name one that exists, or create it").command(match target {
                        PullSecretRef::Cluster(_) => "kubectl get clusterpullsecrets".to_owned(),
                        PullSecretRef::Namespaced { namespace, .. } => {
                            format!("kubectl get pullsecrets -n {}", sh(namespace))
                        }
                    }),
                )
        }
        _ => Check::fail(ID, Group::Kubernetes, format!("{title} does not exist")).fix(
            Fix::new("create it (irsa's README has examples), or name one that exists").command(
                match target {
                    PullSecretRef::Cluster(_) => "kubectl get clusterpullsecrets".to_owned(),
                    PullSecretRef::Namespaced { .. } => {
                        "kubectl get pullsecrets --all-namespaces".to_owned()
                    }
                },
            ),
        ),
    }
}

/// The `pull-secret-status` check: what the controller last reported, for the current spec.
fn status_check(
    target: &PullSecretRef,
    generation: Option<i64>,
    status: Option<&PullSecretStatus>,
) -> Check {
    const ID: &str = "pull-secret-status";
    let logs = "kubectl logs -n irsa-system deploy/irsa-controller";
    let fix = || {
        Fix::new("read the controller's own account of it (irsa install's namespace irsa-system)")
            .command(target.kubectl("describe"))
            .command(logs)
    };
    let Some(status) = status.filter(|s| !s.conditions.is_empty()) else {
        return Check::fail(
            ID,
            Group::Kubernetes,
            "no status: the controller has not reconciled it (not running, not leading, not watching this namespace, or without RBAC for it)",
        )
        .fix(fix().command("kubectl get deploy -n irsa-system irsa-controller"));
    };
    let condition = |t: &str| status.conditions.iter().find(|c| c.type_ == t);
    // `(REASON): MESSAGE`, bounded.
    let said = |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
        format!(
            "({}): {}",
            cut_to(&c.reason, 80),
            cut_to(&c.message, MAX_VALUE)
        )
    };
    let line = |c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
        format!(
            "{}={} {}",
            cut_to(&c.type_, 40),
            cut_to(&c.status, 20),
            said(c)
        )
    };
    // The Ready condition is the summary, unless the summary is about something else.
    let ready_line = condition("Ready").map(line);
    let mut details: Vec<String> = condition("Degraded").map(line).into_iter().collect();
    if let Some(t) = &status.targets {
        details.push(format!(
            "targets: {} desired, {} ready, {} failed, {} conflicted",
            t.desired, t.ready, t.failed, t.conflicted
        ));
    }
    if let Some(e) = &status.expires_at {
        details.push(format!("credentials expire {}", e.0));
    }
    if let Some(n) = &status.next_refresh_time {
        details.push(format!("next refresh {}", n.0));
    }
    for p in status.problems.iter().take(5) {
        details.push(format!(
            "problem in {}: {} ({})",
            cut_to(&p.namespace, 63),
            cut_to(&p.message, MAX_VALUE),
            cut_to(&p.reason, 40)
        ));
    }
    if status.problems.len() > 5 {
        details.push(format!("… and {} more problems", status.problems.len() - 5));
    }
    let observed = status
        .observed_generation
        .or_else(|| condition("Ready").and_then(|c| c.observed_generation));
    let data = json!({
        "ready": condition("Ready").map(|c| cut_to(&c.status, 20)),
        "reason": condition("Ready").map(|c| cut_to(&c.reason, 80)),
        "observed_generation": observed,
        "generation": generation,
    });
    let check = |c: Check, with_ready: bool| {
        c.details(ready_line.clone().filter(|_| with_ready))
            .details(details.clone())
            .data("status", data.clone())
    };
    if let (Some(g), observed) = (generation, observed)
        && observed.is_none_or(|o| o < g)
    {
        let seen = observed.map_or_else(|| "none".to_owned(), |o| o.to_string());
        return check(Check::fail(
            ID,
            Group::Kubernetes,
            format!(
                "stale: the status describes generation {seen}, the spec is at {g}: the controller has not reconciled the current spec (a working one does within seconds; it is not running, not leading, or stuck)"
            ),
        ), true)
        .fix(fix());
    }
    // What irsa's controller never writes (review L4): someone else wrote this status, and
    // its Ready is no evidence of anything.
    let forged = |why: String| {
        check(
            Check::fail(
                ID,
                Group::Kubernetes,
                format!(
                    "{why}: irsa's controller never writes that, so someone else wrote this status"
                ),
            ),
            false,
        )
        .fix(fix())
    };
    let beyond = status
        .conditions
        .iter()
        .filter_map(|c| c.observed_generation)
        .chain(observed)
        .max();
    if let (Some(g), Some(o)) = (generation, beyond)
        && o > g
    {
        return forged(format!(
            "the status describes generation {o}, beyond the spec's {g}"
        ));
    }
    for t in ["Ready", "Degraded"] {
        let n = status.conditions.iter().filter(|c| c.type_ == t).count();
        if n > 1 {
            return forged(format!("{n} {t} conditions"));
        }
    }
    match (condition("Ready"), condition("Degraded")) {
        (Some(r), degraded) if r.status == "True" => match degraded {
            Some(d) if d.status == "True" => check(
                Check::fail(
                    ID,
                    Group::Kubernetes,
                    format!("Ready, but Degraded {}", said(d)),
                ),
                true,
            )
            .fix(fix()),
            _ => check(
                Check::pass(ID, Group::Kubernetes, format!("Ready {}", said(r))),
                false,
            ),
        },
        (Some(r), _) => check(
            Check::fail(ID, Group::Kubernetes, format!("not Ready {}", said(r))),
            false,
        )
        .fix(fix()),
        (None, _) => check(
            Check::fail(
                ID,
                Group::Kubernetes,
                "the status has no Ready condition: it was not written by irsa's controller",
            ),
            true,
        )
        .fix(fix()),
    }
}

/// What one target namespace holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// irsa's secret with credentials for every registry, valid until then (Unix seconds).
    Current(i64),
    /// No secret of that name.
    Missing,
    /// A same-named secret irsa does not own (another's, or not irsa's type): why.
    Conflict(String),
    /// Its `.dockerconfigjson` is absent or cannot be read.
    Unreadable,
    /// No auth for these registries.
    NoAuth(Vec<String>),
    /// Without irsa's seal (irsa.dev/credential-mac): not as the controller writes it.
    Unsealed,
    /// Without a readable irsa.dev/expires-at.
    NoExpiry,
    /// Expired then (Unix seconds).
    Expired(i64),
}

impl Held {
    /// The category's place and words in the summary.
    fn category(&self) -> (usize, &'static str) {
        match self {
            Held::Current(_) => (0, "current"),
            Held::Missing => (1, "missing"),
            Held::Conflict(_) => (2, "held by a secret irsa does not own"),
            Held::Unreadable => (3, "without a readable .dockerconfigjson"),
            Held::NoAuth(_) => (4, "without credentials for every registry"),
            Held::Unsealed => (5, "not sealed by irsa (no irsa.dev/credential-mac)"),
            Held::NoExpiry => (6, "without a readable irsa.dev/expires-at"),
            Held::Expired(_) => (7, "expired"),
        }
    }
}

/// What irsa's secret in one namespace holds, from its labels' owner and its annotations:
/// only the registry hosts of its data are read.
/// A secret whose labels say it is not this pull secret's: whose it is.
fn not_owned(labels: &BTreeMap<String, String>, owner: &Owner) -> Option<Held> {
    if owner.owns(labels) {
        return None;
    }
    let why = if irsa_controller::plan::is_managed(labels) {
        "written for another irsa resource".to_owned()
    } else {
        "not managed by irsa (no label app.kubernetes.io/managed-by=irsa)".to_owned()
    };
    Some(Held::Conflict(why))
}

fn held(secret: &Secret, owner: &Owner, hosts: &[String], now: i64) -> Held {
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    if let Some(conflict) = not_owned(&labels, owner) {
        return conflict;
    }
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != DOCKER_CONFIG_JSON_TYPE {
        return Held::Conflict(format!(
            "of type {}, which irsa never writes",
            cut_to(kind, 60)
        ));
    }
    let Some(config) = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DOCKER_CONFIG_JSON_KEY))
        .and_then(|b| irsa_core::docker_config::DockerConfig::parse(&b.0).ok())
    else {
        return Held::Unreadable;
    };
    let have: BTreeSet<String> = config
        .auths
        .keys()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let lacking: Vec<String> = hosts
        .iter()
        .filter(|h| !have.contains(&h.to_ascii_lowercase()))
        .cloned()
        .collect();
    if !lacking.is_empty() {
        return Held::NoAuth(lacking);
    }
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    if !annotations.contains_key(CREDENTIAL_MAC_ANNOTATION) {
        return Held::Unsealed;
    }
    match annotations
        .get(EXPIRES_AT_ANNOTATION)
        .and_then(|e| irsa_core::time::parse_rfc3339(e))
    {
        None => Held::NoExpiry,
        Some(at) if at <= now => Held::Expired(at),
        Some(at) => Held::Current(at),
    }
}

/// The `pull-secret-targets` check, from what every target namespace holds (pure, bounded).
fn targets_check(
    target: &PullSecretRef,
    secret_name: &str,
    targets: &BTreeMap<String, Held>,
    probed_all: bool,
) -> Check {
    const ID: &str = "pull-secret-targets";
    // Cut for the text only: the commands name it whole (review L5).
    let full_name = secret_name;
    let secret_name = cut_to(secret_name, 63);
    if targets.is_empty() {
        return Check::fail(
            ID,
            Group::Kubernetes,
            match target {
                PullSecretRef::Cluster(_) => {
                    "it selects no namespace: no secret is written anywhere".to_owned()
                }
                PullSecretRef::Namespaced { namespace, .. } => {
                    format!("its namespace {namespace} is being deleted")
                }
            },
        )
        .fix(
            Fix::new("select the namespaces whose pods pull (spec.namespaces: selector, include, exclude)")
                .command(target.kubectl("edit")),
        );
    }
    let mut by: BTreeMap<(usize, &'static str), Vec<&str>> = BTreeMap::new();
    for (ns, h) in targets {
        by.entry(h.category()).or_default().push(ns.as_str());
    }
    let total = targets.len();
    let current: Vec<i64> = targets
        .values()
        .filter_map(|h| match h {
            Held::Current(at) => Some(*at),
            _ => None,
        })
        .collect();
    let counts: serde_json::Map<String, Value> = by
        .iter()
        .map(|((_, what), nss)| {
            (
                (*what).to_owned(),
                json!({"count": nss.len(), "namespaces": nss.iter().take(MAX_LISTED).collect::<Vec<_>>()}),
            )
        })
        .collect();
    let earliest = current.iter().min().map(|t| irsa_core::time::rfc3339(*t));
    if current.len() == total {
        let mut check = Check::pass(
            ID,
            Group::Kubernetes,
            format!(
                "{total}/{total} target namespace(s) hold secret {secret_name}, valid until {} at the earliest",
                earliest.clone().unwrap_or_default()
            ),
        )
        .detail(format!("namespaces: {}", listed(&by.values().flatten().collect::<Vec<_>>())))
        .detail("read from the secrets' labels and irsa.dev/expires-at: the seal (irsa.dev/credential-mac) is present, not verified (its key is the controller's)");
        check = check.data("targets", Value::Object(counts));
        return check;
    }
    let mut summary = vec![format!(
        "{}/{total} target namespace(s) hold a current secret {secret_name}",
        current.len()
    )];
    let mut details = Vec::new();
    for ((_, what), nss) in by.iter().filter(|((rank, _), _)| *rank > 0) {
        summary.push(format!("{} {what}", nss.len()));
        details.push(format!("{what}: {}", listed(nss)));
    }
    // Why, for the first few of the categories that carry one.
    for (ns, h) in targets.iter() {
        let why = match h {
            Held::Conflict(why) => format!("{ns}: {secret_name} is {why}"),
            Held::NoAuth(lacking) => format!("{ns}: no auth for {}", listed(lacking)),
            Held::Expired(at) => format!("{ns}: expired {}", irsa_core::time::rfc3339(*at)),
            _ => continue,
        };
        if details.len() >= 2 * MAX_LISTED {
            break;
        }
        details.push(why);
    }
    if !probed_all {
        details.push(format!(
            "only the first {MAX_PROBES} namespaces without irsa's secret were looked at for a same-named secret of someone else's; the others count as missing"
        ));
    }
    let first_conflict = targets.iter().find(|(_, h)| matches!(h, Held::Conflict(_)));
    let fix = match first_conflict {
        Some((ns, _)) => Fix::new(
            "irsa never overwrites a secret it does not own: delete or rename it (the controller then writes its own), or choose another spec.secretName",
        )
        .command(format!("kubectl get secret -n {} {} -o yaml", sh(ns), sh(full_name))),
        None => Fix::new("the controller writes and refreshes them: pull-secret-status and its logs say why it did not")
            .command(target.kubectl("describe"))
            .command("kubectl logs -n irsa-system deploy/irsa-controller"),
    };
    Check::fail(ID, Group::Kubernetes, summary.join(", "))
        .details(details)
        .data("targets", Value::Object(counts))
        .fix(fix)
}

/// Every item of a list, page by page: `each` sees them as they come, so that 10,000 secrets
/// (with their data) are never all held at once.
async fn list_each<K>(
    api: &Api<K>,
    params: ListParams,
    mut each: impl FnMut(K),
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = params;
    if params.limit.is_none() {
        params = params.limit(PAGE);
    }
    loop {
        let page = api.list(&params).await?;
        page.items.into_iter().for_each(&mut each);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => params = params.continue_token(&next),
            None => return Ok(()),
        }
    }
}

/// The list of irsa's secrets for the pull secret: by its owner labels and by name, so that
/// other secrets carrying forged owner labels (any size, in any namespace a tenant can write)
/// are not downloaded (review: a few thousand 1 MiB decoys made each page hundreds of MiB),
/// and in small pages (one secret can be 1 MiB).
fn secrets_params(owner: &Owner, secret_name: &str) -> ListParams {
    ListParams::default()
        .labels(&owner.label_selector())
        .fields(&format!("metadata.name={secret_name}"))
        .limit(SECRET_PAGE)
}

/// Reads the target namespaces and irsa's secrets in them.
async fn targets(
    client: &kube::Client,
    target: &PullSecretRef,
    found: &Found,
    hosts: &[String],
    now: i64,
) -> Check {
    const ID: &str = "pull-secret-targets";
    let owner = target.owner();
    let error = |what: &str, e: kube::Error| {
        Check::error(
            ID,
            Group::Kubernetes,
            format!("could not list {what}: {}", kube_error(&e)),
        )
        .detail(
            "doctor needs to list namespaces and the pull secrets irsa wrote (secrets, by label)",
        )
    };
    // The target namespaces, as the controller selects them.
    let namespaces: Vec<String> = match target {
        PullSecretRef::Cluster(_) => {
            let every = NamespaceSelection::default();
            let selection = found.selection.as_ref().unwrap_or(&every);
            let mut selected = Vec::new();
            let listed = list_each(
                &Api::<Namespace>::all(client.clone()),
                ListParams::default(),
                |ns| {
                    if let Some(state) = namespace_state(&ns).filter(|s| selects(selection, s)) {
                        selected.push(state.name);
                    }
                },
            )
            .await;
            if let Err(e) = listed {
                return error("namespaces", e);
            }
            selected
        }
        PullSecretRef::Namespaced { namespace, .. } => {
            match Api::<Namespace>::all(client.clone())
                .get_opt(namespace)
                .await
            {
                Ok(Some(ns)) => namespace_state(&ns)
                    .filter(|s| !s.terminating)
                    .map(|s| vec![s.name])
                    .unwrap_or_default(),
                Ok(None) => Vec::new(),
                // A tenant may read its own namespace's objects without the right to read the
                // Namespace itself: the PullSecret lives there, so the namespace exists.
                Err(kube::Error::Api(e)) if e.code == 403 => vec![namespace.clone()],
                Err(e) => return error("namespaces", e),
            }
        }
    };
    let secrets_api: Api<Secret> = match target {
        PullSecretRef::Cluster(_) => Api::all(client.clone()),
        PullSecretRef::Namespaced { namespace, .. } => Api::namespaced(client.clone(), namespace),
    };
    let secret_name = found.spec.secret_name.as_str();
    let wanted: BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let mut held_by: BTreeMap<String, Held> = BTreeMap::new();
    let params = secrets_params(&owner, secret_name);
    let listed = list_each(&secrets_api, params, |s: Secret| {
        if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name)
            && name == secret_name
            && wanted.contains(ns.as_str())
        {
            held_by.insert(ns.clone(), held(&s, &owner, hosts, now));
        }
    })
    .await;
    if let Err(e) = listed {
        return error("secrets", e);
    }
    // The others: none at all, or someone else's secret of that name.
    let mut probes = 0;
    let mut probed_all = true;
    for ns in &namespaces {
        if held_by.contains_key(ns) {
            continue;
        }
        if probes == MAX_PROBES {
            probed_all = false;
            held_by.insert(ns.clone(), Held::Missing);
            continue;
        }
        probes += 1;
        // Its metadata first: someone else's secret is told by its labels, and its data (a
        // user's own registry password) is not read (review L3).
        let api = Api::<Secret>::namespaced(client.clone(), ns);
        let state = match api.get_metadata_opt(secret_name).await {
            Ok(Some(m)) => {
                let labels = m.metadata.labels.unwrap_or_default();
                match not_owned(&labels, &owner) {
                    Some(conflict) => conflict,
                    None => match api.get_opt(secret_name).await {
                        Ok(Some(s)) => held(&s, &owner, hosts, now),
                        Ok(None) => Held::Missing,
                        Err(e) => return error(&format!("secrets in {ns}"), e),
                    },
                }
            }
            Ok(None) => Held::Missing,
            Err(e) => return error(&format!("secrets in {ns}"), e),
        };
        held_by.insert(ns.clone(), state);
    }
    targets_check(target, secret_name, &held_by, probed_all)
}

fn namespace_state(ns: &Namespace) -> Option<NamespaceState> {
    let meta = &ns.metadata;
    let terminating = meta.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    Some(NamespaceState {
        name: meta.name.clone()?,
        labels: meta
            .labels
            .as_ref()
            .map(irsa_controller::plan::Labels::from)
            .unwrap_or_default(),
        terminating,
        uid: meta.uid.clone(),
    })
}

/// The `role-annotation` check when the pull secret names the role: the annotation's role is
/// not used, its audience and token lifetime still are.
pub(crate) fn override_annotation_check(
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
    role: &RoleOverride,
) -> (Check, Option<Annotated>) {
    let mut with_role = annotations.clone();
    let previous = with_role.insert(ROLE_ARN_ANNOTATION.to_owned(), role.role.to_string());
    let (mut check, a) = cluster::annotation_check(namespace, name, &with_role, None);
    if check.passed() {
        check.summary = format!("role {} from {}", role.role, role.source);
        check.details.insert(
            0,
            match previous {
                Some(v) => format!(
                    "the service account's {ROLE_ARN_ANNOTATION} ({}) is not used",
                    cut_to(&v, MAX_VALUE)
                ),
                None => format!("the service account needs no {ROLE_ARN_ANNOTATION}"),
            },
        );
    }
    (check, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Quiet;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

    /// Review M1: the secrets are listed by name as well as by the owner labels (anyone can
    /// set those on a secret of any size), in small pages.
    #[test]
    fn irsas_secrets_are_listed_by_name_and_owner_in_small_pages() {
        let owner = Owner::Cluster { name: "ecr".into() };
        let params = secrets_params(&owner, "regcred");
        assert_eq!(
            params.field_selector.as_deref(),
            Some("metadata.name=regcred")
        );
        assert_eq!(params.label_selector, Some(owner.label_selector()));
        assert!(params.limit.is_some_and(|l| l <= 50), "{:?}", params.limit);
    }

    #[test]
    fn the_flag_is_a_name_or_a_namespace_and_a_name() {
        assert_eq!(
            parse_flag("ecr").unwrap(),
            PullSecretRef::Cluster("ecr".into())
        );
        assert_eq!(
            parse_flag("team-a/ecr.v2").unwrap(),
            PullSecretRef::Namespaced {
                namespace: "team-a".into(),
                name: "ecr.v2".into()
            }
        );
        for (bad, why) in [
            ("a/b/c", "has 2 '/' (at most one)"),
            ("", "is not a Kubernetes name"),
            ("Ecr", "is not a Kubernetes name"),
            ("team.a/ecr", "does not start with a namespace"),
            ("/ecr", "does not start with a namespace"),
            ("team-a/", "does not end in a Kubernetes name"),
            ("team-a/-x", "does not end in a Kubernetes name"),
        ] {
            let e = parse_flag(bad).unwrap_err().0;
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("NAMESPACE/NAME for a PullSecret"), "{e}");
        }
    }

    const HOST: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
    const NOW: i64 = 1_800_000_000;

    fn owner() -> Owner {
        Owner::Cluster { name: "ecr".into() }
    }

    fn secret(
        labels: BTreeMap<String, String>,
        annotations: &[(&str, &str)],
        config: &str,
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                labels: Some(labels),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            type_: Some(DOCKER_CONFIG_JSON_TYPE.into()),
            data: Some(BTreeMap::from([(
                DOCKER_CONFIG_JSON_KEY.to_owned(),
                ByteString(config.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn config(host: &str) -> String {
        // "AWS:pw", base64.
        format!(r#"{{"auths":{{"{host}":{{"auth":"QVdTOnB3"}}}}}}"#)
    }

    #[test]
    fn a_secret_is_current_only_when_owned_for_every_registry_sealed_and_unexpired() {
        let ours = owner().labels();
        let (exp, past) = (
            irsa_core::time::rfc3339(NOW + 3600),
            irsa_core::time::rfc3339(NOW - 1),
        );
        let (exp, past) = (exp.as_str(), past.as_str());
        let mac = (CREDENTIAL_MAC_ANNOTATION, "v1:00");
        let hosts = [HOST.to_owned()];
        let good = secret(
            ours.clone(),
            &[mac, (EXPIRES_AT_ANNOTATION, exp)],
            &config(HOST),
        );
        assert_eq!(
            held(&good, &owner(), &hosts, NOW),
            Held::Current(NOW + 3600)
        );
        let cases = [
            (
                secret(
                    BTreeMap::new(),
                    &[mac, (EXPIRES_AT_ANNOTATION, exp)],
                    &config(HOST),
                ),
                "not managed",
            ),
            (
                secret(
                    Owner::Cluster {
                        name: "other".into(),
                    }
                    .labels(),
                    &[mac, (EXPIRES_AT_ANNOTATION, exp)],
                    &config(HOST),
                ),
                "another irsa resource",
            ),
            (
                secret(ours.clone(), &[mac, (EXPIRES_AT_ANNOTATION, exp)], "{"),
                "Unreadable",
            ),
            (
                secret(
                    ours.clone(),
                    &[mac, (EXPIRES_AT_ANNOTATION, exp)],
                    &config("cgr.dev"),
                ),
                "NoAuth",
            ),
            (
                secret(ours.clone(), &[(EXPIRES_AT_ANNOTATION, exp)], &config(HOST)),
                "Unsealed",
            ),
            (
                secret(
                    ours.clone(),
                    &[mac, (EXPIRES_AT_ANNOTATION, "tomorrow")],
                    &config(HOST),
                ),
                "NoExpiry",
            ),
            (
                secret(
                    ours.clone(),
                    &[mac, (EXPIRES_AT_ANNOTATION, past)],
                    &config(HOST),
                ),
                "Expired",
            ),
        ];
        for (s, want) in cases {
            let got = format!("{:?}", held(&s, &owner(), &hosts, NOW));
            assert!(got.contains(want), "{want}: {got}");
        }
        let mut opaque = good;
        opaque.type_ = Some("Opaque".into());
        assert!(
            matches!(held(&opaque, &owner(), &hosts, NOW), Held::Conflict(w) if w.contains("Opaque"))
        );
    }

    #[test]
    fn ten_thousand_targets_are_summarised_not_listed() {
        let mut targets = BTreeMap::new();
        for i in 0..10_000 {
            let h = match i % 4 {
                0 => Held::Current(NOW + 60),
                1 => Held::Missing,
                2 => Held::Expired(NOW - 60),
                _ => Held::Conflict("not managed by irsa".into()),
            };
            targets.insert(format!("ns-{i:05}"), h);
        }
        let c = targets_check(
            &PullSecretRef::Cluster("ecr".into()),
            "regcred",
            &targets,
            false,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary.starts_with("2500/10000 target namespace(s) hold a current secret regcred, 2500 missing, 2500 held by a secret irsa does not own"),
            "{}",
            c.summary
        );
        assert!(c.details.len() <= 2 * MAX_LISTED + 1, "{:?}", c.details);
        assert!(c.details.iter().all(|d| d.len() < 4096), "{:?}", c.details);
        assert!(
            c.details
                .iter()
                .any(|d| d.starts_with("missing: ns-00001, ns-00005")
                    && d.ends_with("… and 2490 more")),
            "{:?}",
            c.details
        );
        assert_eq!(c.data["targets"]["missing"]["count"], 2500);
        assert_eq!(
            c.data["targets"]["expired"]["namespaces"]
                .as_array()
                .unwrap()
                .len(),
            MAX_LISTED
        );
        let text = {
            let mut r = Report::new("ClusterPullSecret ecr", Box::new(Quiet));
            r.ready("pull-secret-targets", Group::Kubernetes, &[]);
            r.record(c, &[]);
            r.to_text()
        };
        assert!(text.lines().count() < 40, "{text}");
        assert!(text.len() < 8192, "{}", text.len());
    }

    #[test]
    fn no_target_at_all_fails() {
        let c = targets_check(
            &PullSecretRef::Cluster("ecr".into()),
            "regcred",
            &BTreeMap::new(),
            true,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("selects no namespace"), "{}", c.summary);
    }

    /// Review L5: a long spec.secretName is cut in the text, never in the command.
    #[test]
    fn a_long_secret_name_is_whole_in_the_command() {
        let name = format!("reg{}", "x".repeat(100));
        let held: BTreeMap<String, Held> = [(
            "team-a".to_owned(),
            Held::Conflict("not managed by irsa".into()),
        )]
        .into();
        let c = targets_check(&PullSecretRef::Cluster("ecr".into()), &name, &held, true);
        assert!(c.summary.contains('…'), "{}", c.summary);
        assert_eq!(
            c.fix.unwrap().commands[0],
            format!("kubectl get secret -n team-a {name} -o yaml")
        );
    }

    fn condition(t: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(2),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn status(conditions: Vec<Condition>, observed: Option<i64>) -> PullSecretStatus {
        PullSecretStatus {
            conditions,
            observed_generation: observed,
            ..PullSecretStatus::default()
        }
    }

    #[test]
    fn the_status_passes_only_ready_not_degraded_and_current() {
        let t = PullSecretRef::Namespaced {
            namespace: "team-a".into(),
            name: "ecr".into(),
        };
        let ready = condition("Ready", "True", "SecretsCurrent", "1/1 namespaces");
        let fine = condition("Degraded", "False", "AsExpected", "no problems");
        let c = status_check(
            &t,
            Some(2),
            Some(&status(vec![ready.clone(), fine.clone()], Some(2))),
        );
        assert!(c.passed(), "{c:?}");
        let cases = [
            (None, "no status"),
            (
                Some(status(vec![ready.clone(), fine.clone()], Some(1))),
                "stale: the status describes generation 1, the spec is at 2",
            ),
            // Review L4: a status irsa's controller cannot have written.
            (
                Some(status(vec![ready.clone(), fine.clone()], Some(3))),
                "the status describes generation 3, beyond the spec's 2: irsa's controller never writes that",
            ),
            (
                Some(status(
                    vec![
                        Condition {
                            observed_generation: Some(5),
                            ..ready.clone()
                        },
                        fine.clone(),
                    ],
                    Some(2),
                )),
                "the status describes generation 5, beyond the spec's 2",
            ),
            (
                Some(status(
                    vec![
                        ready.clone(),
                        condition("Ready", "False", "Pending", "no"),
                        fine.clone(),
                    ],
                    Some(2),
                )),
                "2 Ready conditions: irsa's controller never writes that",
            ),
            (
                Some(status(
                    vec![
                        condition(
                            "Ready",
                            "False",
                            "Pending",
                            "no credentials obtained yet: sts said no",
                        ),
                        fine,
                    ],
                    Some(2),
                )),
                "not Ready (Pending): no credentials obtained yet: sts said no",
            ),
            (
                Some(status(
                    vec![
                        ready,
                        condition(
                            "Degraded",
                            "True",
                            "RefreshFailed",
                            "the last refresh failed",
                        ),
                    ],
                    Some(2),
                )),
                "Ready, but Degraded (RefreshFailed)",
            ),
        ];
        for (s, want) in cases {
            let c = status_check(&t, Some(2), s.as_ref());
            assert_eq!(c.status, Status::Fail, "{want}");
            assert!(c.summary.starts_with(want), "{want}: {}", c.summary);
            assert!(
                c.fix.as_ref().unwrap().commands[0] == "kubectl describe pullsecret -n team-a ecr",
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_status_message_with_control_characters_is_escaped_and_cut() {
        let t = PullSecretRef::Cluster("ecr".into());
        let forged = format!("\u{1b}[1A\r✓ all fine\u{202e}{}", "x".repeat(5000));
        let s = status(
            vec![condition("Ready", "False", "Pending", &forged)],
            Some(2),
        );
        let c = status_check(&t, Some(2), Some(&s));
        assert!(c.summary.chars().count() < 400, "{}", c.summary.len());
        let mut r = Report::new("ClusterPullSecret ecr", Box::new(Quiet));
        r.ready("pull-secret-status", Group::Kubernetes, &[]);
        r.record(c, &[]);
        let text = r.to_text();
        assert!(
            !text.chars().any(|ch| ch.is_control() && ch != '\n'),
            "{text:?}"
        );
        assert!(!text.contains('\u{202e}'), "{text:?}");
        assert!(text.contains("\\u{1b}[1A\\r"), "{text}");
    }

    #[test]
    fn a_role_override_replaces_the_annotation_but_keeps_the_audience() {
        let role = RoleOverride {
            role: "arn:aws:iam::111122223333:role/other".parse().unwrap(),
            source: "ClusterPullSecret ecr's spec.identity.roleArn".into(),
        };
        let annotations = BTreeMap::from([
            (
                ROLE_ARN_ANNOTATION.to_owned(),
                "arn:aws:iam::111122223333:role/puller".to_owned(),
            ),
            (
                "eks.amazonaws.com/audience".to_owned(),
                "api://irsa".to_owned(),
            ),
        ]);
        let (c, a) = override_annotation_check("ci", "builder", &annotations, &role);
        assert!(c.passed(), "{c:?}");
        assert!(
            c.summary
                .contains("role/other from ClusterPullSecret ecr's spec.identity.roleArn"),
            "{}",
            c.summary
        );
        assert!(c.details[0].contains("role/puller) is not used"), "{c:?}");
        let a = a.unwrap();
        assert_eq!(a.role.name, "other");
        assert_eq!(a.audience, "api://irsa");
        // No annotation at all: the override is enough.
        let (c, a) = override_annotation_check("ci", "builder", &BTreeMap::new(), &role);
        assert!(c.passed() && a.is_some(), "{c:?}");
    }
}
