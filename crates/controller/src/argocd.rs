//! Argo CD repository secrets with workload identity, as Argo CD's workload-identity guide
//! writes them, on any Argo CD version (`irsa controller --argocd-namespace argocd`).
//!
//! Secrets in the Argo CD namespace labelled `argocd.argoproj.io/secret-type: repository` or
//! `repo-creds` are watched as metadata only; one is read (GET) when its metadata changed, and
//! only the keys irsa needs are kept ([`RepoKeys`]): a Git SSH key or token in another
//! repository's secret never stays in this process. A secret opts in with
//! `workloadIdentityProvider: aws` (what Argo CD's pending change, argoproj/argo-cd PR #28217,
//! reads) or `useWorkloadIdentity: "true"` (what the guide also writes), for an OCI repository
//! (`type: oci`, `type: helm` with `enableOCI: "true"`, or an `oci://` URL) on Amazon ECR.
//!
//! The identity is a service account **of the Argo CD namespace**, never of another:
//! `argocd-project-<project>`, else Argo CD's repo-server account; the
//! `irsa.dev/service-account` annotation may name another only if that account consents (its
//! `irsa.dev/argocd-projects` annotation lists the secret's project). A service account's
//! change re-reconciles the secrets using it, so consent given later is picked up.
//!
//! irsa fills `username` and `password` only, with server-side apply under its own field
//! manager ([`DATA_MANAGER`]) **without force**: a `username`/`password` someone else set is a
//! conflict, reported and left alone. The status of each secret is the `irsa.dev/status`
//! annotation (under [`STATUS_MANAGER`]) and an Event on change. Credentials come from
//! [`CredentialStore`]s (one per STS region and endpoint): one exchange per (service account,
//! audience, registry), however many repositories use it, refreshed from the token's real
//! expiry. After a restart nothing found in these secrets is trusted: every secret is
//! exchanged for afresh. A secret that stops opting in loses the fields irsa owns (an apply of
//! nothing under irsa's managers), and nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use irsa_aws::{
    ChainguardMethod, Clock, Identity, Pipeline, PipelineOptions, RegistryTarget,
    TokenRequestSource, TokenRequester,
};
use irsa_core::arn::RoleArn;
use irsa_core::names::ROLE_ARN_ANNOTATION;
use irsa_core::registry::Registry;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller as KubeController};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};

pub use irsa_core::argocd::*;

use crate::credentials::{self, CredentialStore, Obtained};
use crate::lease::Leadership;
use crate::metrics::Metrics;
use crate::writer::{WriteError, Writer};

/// The role of service account `namespace/name`, from its annotation.
pub fn role_of(
    namespace: &str,
    name: &str,
    sa: Option<&ServiceAccount>,
) -> Result<RoleArn, String> {
    let Some(sa) = sa else {
        return Err(format!(
            "service account {namespace}/{name} does not exist: create it with the annotation \
             {ROLE_ARN_ANNOTATION}: <the project's IAM role> (`irsa policy trust --argocd-project \
             <project>` prints the role's trust policy)"
        ));
    };
    let role = sa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLE_ARN_ANNOTATION))
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            format!(
                "service account {namespace}/{name} has no {ROLE_ARN_ANNOTATION} annotation: \
                 annotate it with the project's IAM role (kubectl -n {namespace} annotate \
                 serviceaccount {name} {ROLE_ARN_ANNOTATION}=arn:aws:iam::<account>:role/<role>)"
            )
        })?;
    role.parse::<RoleArn>().map_err(|e| {
        format!(
            "service account {namespace}/{name}: annotation {ROLE_ARN_ANNOTATION} {role:?} is not \
             an IAM role ARN ({e})"
        )
    })
}

/// How `irsa controller` serves Argo CD.
#[derive(Clone)]
pub struct ArgoCdOptions {
    /// The Argo CD namespace (repository secrets and their service accounts).
    pub namespace: String,
    /// The pipeline's options, to build one per STS region and token URL.
    pub pipeline: PipelineOptions,
    /// Token URLs and audiences the operator allows beyond AWS STS and `sts.amazonaws.com`
    /// (`--argocd-token-url`, `--argocd-audience`).
    pub allowed: Allowed,
}

impl std::fmt::Debug for ArgoCdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoCdOptions")
            .field("namespace", &self.namespace)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// What is kept per repository secret: no data, no credential.
#[derive(Debug, Default, Clone)]
struct Tracked {
    /// The resourceVersion after irsa's last write (its own watch event needs no GET).
    written_rv: Option<String>,
    /// When to look again without a change (Unix seconds).
    next_at: i64,
    /// The service account it uses, for service-account changes.
    service_account: Option<String>,
    /// When the credential irsa wrote expires.
    wrote_expiry: Option<i64>,
    /// The resourceVersion of a secret that does not opt in: not read again while unchanged.
    not_opted_in_rv: Option<String>,
    /// The credential store it is served from: a store no tracked secret names is freed.
    store_key: Option<StoreKey>,
}

/// A credential store per (STS region, `workloadIdentityTokenURL`).
type StoreKey = (String, Option<String>);

/// The reconciler's state.
struct Shared {
    namespace: String,
    allowed: Allowed,
    base: PipelineOptions,
    stores: tokio::sync::Mutex<HashMap<StoreKey, Arc<CredentialStore>>>,
    /// The stores that have produced a credential once (review 2 M1): only these are kept
    /// at the cap; one that never worked (a made-up region) gives way to a new one.
    worked: Mutex<HashSet<StoreKey>>,
    writer: Writer,
    requester: Arc<dyn TokenRequester>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    token_expiration: Duration,
    resync: Duration,
    tracked: Mutex<HashMap<String, Tracked>>,
    service_accounts: Store<ServiceAccount>,
    /// Set once `service_accounts` has listed (after the store took the list, before the
    /// secrets that use an account are looked at again).
    service_accounts_listed: AtomicBool,
    /// The status last written or seen per secret, to publish an Event on change only.
    reported: Mutex<HashMap<String, String>>,
}

impl Shared {
    fn now(&self) -> i64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn store(&self, wanted: &Wanted) -> Result<Arc<CredentialStore>, String> {
        let key = (wanted.registry.region.clone(), wanted.token_url.clone());
        {
            let mut stores = self.stores.lock().await;
            if let Some(s) = stores.get(&key) {
                return Ok(s.clone());
            }
            if stores.len() >= MAX_PIPELINES {
                // Only stores in use count (review M2).
                let used = self.stores_in_use();
                stores.retain(|k, _| used.contains(k));
                self.worked().retain(|k| stores.contains_key(k));
                self.metrics.set_argocd_stores(stores.len());
            }
            if stores.len() >= MAX_PIPELINES && !self.evict_one_that_never_worked(&mut stores) {
                return Err(cap_error());
            }
        }
        // Built without the lock (review M2): one slow set-up never stalls the other secrets.
        let mut options = self.base.clone();
        options.region = Some(wanted.registry.region.clone());
        if let Some(url) = &wanted.token_url {
            options.sts_endpoint_url = Some(url.clone());
        }
        let pipeline = Pipeline::new(options).await.map_err(|e| {
            format!(
                "failed to set up the AWS client for region {}: {e}",
                wanted.registry.region
            )
        })?;
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(&key) {
            // Another reconcile built it meanwhile: one store per key, whoever came first.
            return Ok(s.clone());
        }
        if stores.len() >= MAX_PIPELINES && !self.evict_one_that_never_worked(&mut stores) {
            return Err(cap_error());
        }
        let store = Arc::new(CredentialStore::new(pipeline, self.metrics.clone()));
        stores.insert(key.clone(), store.clone());
        let used = self.stores_in_use();
        stores.retain(|k, _| *k == key || used.contains(k));
        self.worked().retain(|k| stores.contains_key(k));
        self.metrics.set_argocd_stores(stores.len());
        Ok(store)
    }

    fn worked(&self) -> std::sync::MutexGuard<'_, HashSet<StoreKey>> {
        self.worked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// At the cap: frees one store that has never produced a credential (review 2 M1), so a
    /// tenant's secrets naming made-up regions never keep a working project out. Its secrets
    /// build it again on their next attempt. False when every store has worked.
    fn evict_one_that_never_worked(
        &self,
        stores: &mut HashMap<StoreKey, Arc<CredentialStore>>,
    ) -> bool {
        let worked = self.worked();
        let Some(key) = stores.keys().find(|k| !worked.contains(*k)).cloned() else {
            return false;
        };
        drop(worked);
        stores.remove(&key);
        tracing::info!(
            region = %key.0,
            "Argo CD credential store that never produced a credential freed for another"
        );
        self.metrics.set_argocd_stores(stores.len());
        true
    }

    /// Notes that `store` (the one held under `key`, not an evicted one) produced a credential.
    async fn mark_worked(&self, key: &StoreKey, store: &Arc<CredentialStore>) {
        let stores = self.stores.lock().await;
        if stores.get(key).is_some_and(|s| Arc::ptr_eq(s, store)) {
            self.worked().insert(key.clone());
        }
    }

    /// The store keys tracked secrets are served from.
    fn stores_in_use(&self) -> HashSet<StoreKey> {
        self.tracked()
            .values()
            .filter_map(|t| t.store_key.clone())
            .collect()
    }

    /// Frees the credential stores no tracked secret is served from (review M2): their
    /// pipeline, cached credentials and backoff go, and they no longer count toward
    /// [`MAX_PIPELINES`].
    async fn prune_stores(&self) {
        let mut stores = self.stores.lock().await;
        let used = self.stores_in_use();
        let before = stores.len();
        stores.retain(|k, _| used.contains(k));
        self.worked().retain(|k| stores.contains_key(k));
        if stores.len() != before {
            tracing::debug!(
                freed = before - stores.len(),
                held = stores.len(),
                "Argo CD credential stores no secret uses freed"
            );
        }
        self.metrics.set_argocd_stores(stores.len());
    }

    /// Notes that `name` is served from no store any more, and frees what nothing uses.
    async fn unserved(&self, name: &str) {
        if let Some(t) = self.tracked().get_mut(name) {
            t.store_key = None;
        }
        self.prune_stores().await;
    }

    fn secret_ref(&self, name: &str, uid: Option<&str>) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Secret".to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            uid: uid.map(str::to_owned),
            ..ObjectReference::default()
        }
    }

    /// An apply of nothing yet to `name`, conditional on `rv` (the version irsa read: a
    /// change since makes it a 409, and the secret is read again) and on `uid` (the secret
    /// irsa read: an apply never creates a Secret, review L5 — kube-apiserver refuses to create
    /// one from an apply that names a uid, while a resourceVersion alone does not stop it).
    fn apply_body(&self, name: &str, uid: Option<&str>, rv: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                uid: uid.map(str::to_owned),
                resource_version: rv.map(str::to_owned),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    /// Writes the status annotation when it changed, and an Event when it is new; returns the
    /// resourceVersion after the write, if one was made.
    async fn report(
        &self,
        name: &str,
        at: &At<'_>,
        current: Option<&str>,
        status: &str,
    ) -> Result<Option<String>, Stale> {
        let uid = at.uid;
        // An Event for a new failure or conflict, and for the first success after none or a
        // failure (not for every refresh: the expiry in the text changes each time).
        let kind = status.split(':').next().unwrap_or("").to_owned();
        let new = {
            let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let previous = reported.insert(name.to_owned(), status.to_owned());
            match kind.as_str() {
                "Ready" => !previous.is_some_and(|p| p.starts_with("Ready")),
                _ => previous.as_deref() != Some(status),
            }
        };
        let mut rv = None;
        let mut held_by: Option<String> = None;
        if current != Some(status) {
            let mut body = self.apply_body(name, at.uid, at.rv);
            body.metadata.annotations =
                Some([(STATUS_ANNOTATION.to_owned(), status.to_owned())].into());
            match self
                .writer
                .apply_foreign_secret(&body, STATUS_MANAGER)
                .await
            {
                Ok(s) => rv = s.metadata.resource_version,
                Err(WriteError::NotLeader) => return Ok(None),
                Err(e) if is_stale(&e) => return Err(Stale),
                Err(e) if is_field_conflict(&e) => {
                    // Another field manager applied irsa.dev/status first (review L4): irsa
                    // does not force, so it says so in an Event (once per status change).
                    let owners = conflicting_managers(&e);
                    tracing::warn!(secret = %name, owners, "irsa.dev/status is held by another field manager");
                    held_by = Some(owners);
                }
                Err(error) => {
                    tracing::warn!(secret = %name, %error, "failed to write the status annotation");
                }
            }
        }
        if new && let Some(owners) = held_by {
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: "StatusConflict".to_owned(),
                note: Some(truncate(
                    &format!(
                        "{STATUS_ANNOTATION} is held by field manager {owners}, so irsa cannot \
                         write it; free it with kubectl -n {ns} annotate secret {name} \
                         {STATUS_ANNOTATION}- (and drop it from the manifest that sets it). \
                         The status is: {status}",
                        ns = self.namespace
                    ),
                    1000,
                )),
                action: "Reconcile".to_owned(),
                secondary: None,
            };
            if let Err(error) = self
                .writer
                .publish(&event, &self.secret_ref(name, uid))
                .await
                && !matches!(error, WriteError::NotLeader)
            {
                tracing::warn!(secret = %name, %error, "failed to publish an Event");
            }
        }
        if new && kind != "Ready" {
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: if kind == "Conflict" {
                    "Conflict"
                } else {
                    "CredentialsFailed"
                }
                .to_owned(),
                note: Some(truncate(status, 1000)),
                action: "Reconcile".to_owned(),
                secondary: None,
            };
            if let Err(error) = self
                .writer
                .publish(&event, &self.secret_ref(name, uid))
                .await
                && !matches!(error, WriteError::NotLeader)
            {
                tracing::warn!(secret = %name, %error, "failed to publish an Event");
            }
            tracing::warn!(namespace = %self.namespace, secret = %name, status, "repository secret not served");
        } else if new {
            let event = KubeEvent {
                type_: EventType::Normal,
                reason: "CredentialsWritten".to_owned(),
                note: Some(truncate(status, 1000)),
                action: "Reconcile".to_owned(),
                secondary: None,
            };
            if let Err(error) = self
                .writer
                .publish(&event, &self.secret_ref(name, uid))
                .await
                && !matches!(error, WriteError::NotLeader)
            {
                tracing::warn!(secret = %name, %error, "failed to publish an Event");
            }
        }
        Ok(rv)
    }
}

fn cap_error() -> String {
    format!(
        "more than {MAX_PIPELINES} distinct (region, workloadIdentityTokenURL) pairs in use that \
         have produced credentials; remove unused workloadIdentityTokenURL values"
    )
}

/// The secret was changed since irsa read it: read it again.
#[derive(Debug)]
struct Stale;

/// Which version of which secret a write is conditional on.
struct At<'a> {
    uid: Option<&'a str>,
    rv: Option<&'a str>,
}

/// A 409 for a changed resourceVersion, not for another field manager's fields.
fn is_stale(e: &WriteError) -> bool {
    e.code() == Some(409) && !is_field_conflict(e)
}

/// The field managers a 409 apply conflict names (`"kubectl"`, …), escaped: from its causes,
/// else from its message. kube-apiserver words each as `conflict with "<manager>"`, with
/// ` using <apiVersion>` (and ` at <time>`) after the quoted name for an Update's manager; the
/// name is Go-quoted (`%q`), so it may hold escaped quotes (review L2).
fn conflicting_managers(e: &WriteError) -> String {
    let status = e.status();
    let from_causes: Vec<String> = status
        .and_then(|s| s.details.as_ref())
        .map(|d| {
            d.causes
                .iter()
                .filter(|c| c.reason == "FieldManagerConflict")
                .filter_map(|c| managers_in(&c.message).into_iter().next())
                .collect()
        })
        .unwrap_or_default();
    let named = if from_causes.is_empty() {
        status.map(|s| managers_in(&s.message)).unwrap_or_default()
    } else {
        from_causes
    };
    // A tenant-chosen name: shortened, quoted and escaped.
    let mut names: Vec<String> = named
        .iter()
        .map(|m| format!("{:?}", truncate(m, 100)))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        "another field manager".to_owned()
    } else {
        names.join(", ")
    }
}

/// Every manager named by `conflict with <manager>` in `text`, unquoted: a Go-quoted name
/// (`"kube\"ctl"` is `kube"ctl`), else the word up to ` using `, `:` or `,`.
fn managers_in(text: &str) -> Vec<String> {
    const MARK: &str = "conflict with ";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let (name, used) = go_unquote(quoted);
            found.push(name);
            rest = &quoted[used..];
        } else {
            let end = [" using ", ":", ","]
                .iter()
                .filter_map(|s| rest.find(s))
                .min()
                .unwrap_or(rest.len());
            let name = rest[..end].trim();
            if !name.is_empty() {
                found.push(name.to_owned());
            }
            rest = &rest[end..];
        }
    }
    found
}

/// A Go `%q` string's content up to its closing quote (the opening one already taken), and
/// how many bytes of `s` it took. `\"`, `\\`, `\n`, `\t`, `\xNN`, `\uNNNN`, `\UNNNNNNNN` are
/// decoded; anything else is kept as written. Unterminated: the rest of `s`.
fn go_unquote(s: &str) -> (String, usize) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, i + 1),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let hex = |n: usize, chars: &mut std::str::CharIndices<'_>| {
                    let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                };
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'x' => out.push(hex(2, &mut chars).unwrap_or('\u{fffd}')),
                    'u' => out.push(hex(4, &mut chars).unwrap_or('\u{fffd}')),
                    'U' => out.push(hex(8, &mut chars).unwrap_or('\u{fffd}')),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    (out, s.len())
}

fn is_field_conflict(e: &WriteError) -> bool {
    e.status().is_some_and(|s| {
        s.details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "FieldManagerConflict"))
    })
}

/// What a reconcile that met a newer version does: forget that it wrote, read again soon.
fn again(shared: &Shared, name: &str) -> Action {
    if let Some(t) = shared.tracked().get_mut(name) {
        t.written_rv = None;
        t.next_at = 0;
    }
    Action::requeue(Duration::from_millis(100))
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Why a reconcile of a repository secret failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ArgoCdError {
    /// Reading the secret failed.
    #[error("failed to read a repository secret: {0}")]
    Read(#[source] WriteError),
}

/// When a secret reconciled before the service accounts' first list comes back.
const SERVICE_ACCOUNTS_WAIT: Duration = Duration::from_secs(1);

/// One reconcile of repository secret `meta`.
async fn reconcile(
    meta: Arc<PartialObjectMeta<Secret>>,
    shared: Arc<Shared>,
) -> Result<Action, ArgoCdError> {
    let name = meta.metadata.name.clone().unwrap_or_default();
    let now = shared.now();
    let rv = meta.metadata.resource_version.clone();
    shared.metrics.argocd_reconciled();
    {
        let tracked = shared.tracked();
        if let Some(t) = tracked.get(&name)
            && rv.is_some()
            && t.not_opted_in_rv == rv
        {
            // Not opted in, unchanged since it was read: not read again (review M3).
            return Ok(Action::await_change());
        }
        if let Some(t) = tracked.get(&name)
            && t.written_rv.is_some()
            && t.written_rv == rv
            && now < t.next_at
        {
            // Irsa's own write, seen back: nothing changed since.
            return Ok(Action::requeue(Duration::from_secs(
                u64::try_from(t.next_at - now).unwrap_or(1).max(1),
            )));
        }
    }
    if !shared.writer.leads() {
        return Ok(Action::await_change());
    }
    // Whether a project's service account exists is the store's to say only once it has
    // listed: before, an empty store called an existing account missing (Error status and
    // Event, the credential released), and the re-check when the list landed could run
    // before this secret was remembered, leaving it unserved until the resync (stop 26's CI:
    // the bench's first secret unfilled for 120 s). Until then the secret comes back later,
    // unread, holding no worker (the replica is not ready meanwhile: /readyz says so).
    if !shared.service_accounts_listed.load(Ordering::SeqCst) {
        return Ok(Action::requeue(SERVICE_ACCOUNTS_WAIT));
    }
    let Some(secret) = shared
        .writer
        .get_secret(&shared.namespace, &name)
        .await
        .map_err(ArgoCdError::Read)?
    else {
        shared.tracked().remove(&name);
        shared.prune_stores().await;
        return Ok(Action::await_change());
    };
    // Only what is needed survives this block: the keys, irsa's ownership, the status, and
    // whether the secret already holds the credential (compared, not kept).
    let uid = secret.metadata.uid.clone();
    let read_rv = secret.metadata.resource_version.clone();
    let keys = RepoKeys::read(
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SERVICE_ACCOUNT_ANNOTATION))
            .map(String::as_str),
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice())),
    );
    let serves_label = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SECRET_TYPE_LABEL))
        .is_some_and(|v| SECRET_TYPES.contains(&v.as_str()));
    let managers: HashSet<String> = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.as_object().is_some_and(|o| !o.is_empty()))
        })
        .filter_map(|m| m.manager.clone())
        .collect();
    let current_status = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .cloned();
    let foreign = foreign_owners(&secret);
    let decision = if serves_label {
        decide(&shared.namespace, &name, &keys, &shared.allowed)
    } else {
        Decision::NotOptedIn
    };
    // A copy of username/password (for comparison) only of a secret irsa serves: a Git
    // token in a secret that does not opt in is never copied (review M3).
    let held = matches!(decision, Decision::Serve(_))
        .then(|| {
            secret.data.as_ref().map(|d| {
                (
                    d.get("username").map(|b| zeroize_on_drop(b.0.clone())),
                    d.get("password").map(|b| zeroize_on_drop(b.0.clone())),
                )
            })
        })
        .flatten();
    drop(secret);
    let at = At {
        uid: uid.as_deref(),
        rv: read_rv.as_deref(),
    };

    let wanted = match decision {
        Decision::NotOptedIn => {
            if release(
                &shared,
                &name,
                uid.as_deref(),
                read_rv.as_deref(),
                &managers,
            )
            .await
            .is_err()
            {
                return Ok(again(&shared, &name));
            }
            let released = managers.contains(DATA_MANAGER) || managers.contains(STATUS_MANAGER);
            {
                let mut tracked = shared.tracked();
                tracked.remove(&name);
                // After a release the next version is irsa's own apply: read that once more.
                if !released && read_rv.is_some() {
                    tracked.insert(
                        name.clone(),
                        Tracked {
                            not_opted_in_rv: read_rv.clone(),
                            ..Tracked::default()
                        },
                    );
                }
            }
            shared
                .reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            shared.prune_stores().await;
            return Ok(Action::await_change());
        }
        Decision::Invalid(cause) => {
            shared.unserved(&name).await;
            // Not an upstream failure: the credential irsa wrote goes (review 2 L7).
            let released = match release_data(&shared, &name, &at, &managers).await {
                Ok(r) => r,
                Err(Stale) => return Ok(again(&shared, &name)),
            };
            let status = error_status(&cause, None);
            let at = At {
                uid: uid.as_deref(),
                rv: released.as_deref().or(read_rv.as_deref()),
            };
            let rv = match shared
                .report(&name, &at, current_status.as_deref(), &status)
                .await
            {
                Ok(rv) => rv,
                Err(Stale) => return Ok(again(&shared, &name)),
            };
            remember(&shared, &name, rv, now + secs(shared.resync), None);
            return Ok(Action::requeue(shared.resync));
        }
        Decision::Serve(w) => w,
    };
    let sa = shared
        .service_accounts
        .get(&ObjectRef::new(&wanted.service_account).within(&shared.namespace));
    let consent = match (&wanted.needs_consent, sa.as_deref()) {
        (Some(project), Some(account)) => check_consent(
            &shared.namespace,
            &name,
            &wanted.service_account,
            project.as_deref(),
            account
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PROJECTS_ANNOTATION))
                .map(String::as_str),
        ),
        _ => Ok(()),
    };
    let role = match consent
        .and_then(|()| role_of(&shared.namespace, &wanted.service_account, sa.as_deref()))
    {
        Ok(r) => r,
        Err(cause) => {
            shared.unserved(&name).await;
            // Consent withdrawn, or the identity gone: the authorisation is no more, so the
            // credential irsa wrote goes at once (review 2 L7); only an upstream failure keeps
            // the last good one.
            let released = match release_data(&shared, &name, &at, &managers).await {
                Ok(r) => r,
                Err(Stale) => return Ok(again(&shared, &name)),
            };
            let status = error_status(&cause, None);
            let at = At {
                uid: uid.as_deref(),
                rv: released.as_deref().or(read_rv.as_deref()),
            };
            let rv = match shared
                .report(&name, &at, current_status.as_deref(), &status)
                .await
            {
                Ok(rv) => rv,
                Err(Stale) => return Ok(again(&shared, &name)),
            };
            remember(
                &shared,
                &name,
                rv,
                now + secs(shared.resync),
                Some(wanted.service_account.clone()),
            );
            return Ok(Action::requeue(shared.resync));
        }
    };
    // Someone else's username/password: reported before any token is minted (review L2).
    if let Some(owners) = foreign {
        // Someone else's username/password: never sent over, whatever the server would say.
        drop(held);
        // Not served: the store it was served from is freed if nothing else uses it (review L5).
        shared.unserved(&name).await;
        let status = conflict_status(&shared.namespace, &name, &owners);
        let rv = match shared
            .report(&name, &at, current_status.as_deref(), &status)
            .await
        {
            Ok(rv) => rv,
            Err(Stale) => return Ok(again(&shared, &name)),
        };
        remember(
            &shared,
            &name,
            rv.or(read_rv),
            now + secs(shared.resync),
            Some(wanted.service_account.clone()),
        );
        return Ok(Action::requeue(shared.resync));
    }
    let identity = Identity::WebIdentity {
        role_arn: role.clone(),
        token_source: Arc::new(
            TokenRequestSource::new(
                shared.requester.clone(),
                &shared.namespace,
                &wanted.service_account,
            )
            .with_audiences(vec![wanted.audience.clone()])
            .with_expiration(shared.token_expiration),
        ),
        session_name: irsa_aws::sts::session_name_for(&shared.namespace, &wanted.service_account),
        session_duration: None,
    };
    let targets = vec![RegistryTarget {
        host: wanted.host.clone(),
        registry: Registry::Ecr(wanted.registry.clone()),
        chainguard_identity: None,
        chainguard_method: ChainguardMethod::default(),
    }];
    let key = format!(
        "{}\u{1f}aud={}",
        credentials::key(&identity, &targets),
        wanted.audience
    );
    // Named before the store is looked up, so that no prune frees it meanwhile.
    shared.tracked().entry(name.clone()).or_default().store_key =
        Some((wanted.registry.region.clone(), wanted.token_url.clone()));
    let store_key = (wanted.registry.region.clone(), wanted.token_url.clone());
    let obtained = match shared.store(&wanted).await {
        Ok(store) => {
            let clock = shared.clock.clone();
            let now_fn = move || {
                clock
                    .now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            };
            let obtained = store
                .get(&key, &identity, &targets, REFRESH_FRACTION, &now_fn)
                .await;
            if matches!(obtained, Obtained::Refreshed(_) | Obtained::Current(_)) {
                shared.mark_worked(&store_key, &store).await;
            }
            obtained
        }
        Err(error) => Obtained::Failed {
            error,
            last_good: None,
            retry_in: Duration::from_secs(60),
            attempted: false,
        },
    };
    let sa_name = Some(wanted.service_account.clone());
    let credential = match obtained {
        Obtained::Refreshed(c) | Obtained::Current(c) => c,
        Obtained::Failed {
            error, retry_in, ..
        } => {
            let last_good = shared.tracked().get(&name).and_then(|t| t.wrote_expiry);
            let status = error_status(&error, last_good.filter(|t| *t > now));
            let rv = match shared
                .report(&name, &at, current_status.as_deref(), &status)
                .await
            {
                Ok(rv) => rv,
                Err(Stale) => return Ok(again(&shared, &name)),
            };
            let next = now + secs(retry_in).max(1);
            remember(&shared, &name, rv, next, sa_name);
            return Ok(Action::requeue(retry_in.max(Duration::from_secs(1))));
        }
    };
    let Some(auth) = credential.config.get(&wanted.host) else {
        // The pipeline answers one credential per target; a missing one is a bug upstream.
        let status = error_status(
            &format!("the registry answered no credential for {}", wanted.host),
            None,
        );
        let _ = match shared
            .report(&name, &at, current_status.as_deref(), &status)
            .await
        {
            Ok(rv) => rv,
            Err(Stale) => return Ok(again(&shared, &name)),
        };
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let matches = held.as_ref().is_some_and(|(u, p)| {
        u.as_deref().map(|v| v.as_slice()) == Some(auth.username.as_bytes())
            && p.as_deref().map(|v| v.as_slice()) == Some(auth.password.expose().as_bytes())
    });
    drop(held);
    let mut rv = None;
    let status = if matches {
        ready_status(&wanted, &role, &shared.namespace, credential.expires_at)
    } else {
        let mut body = shared.apply_body(&name, uid.as_deref(), read_rv.as_deref());
        body.data = Some(
            [
                (
                    "username".to_owned(),
                    ByteString(auth.username.clone().into_bytes()),
                ),
                (
                    "password".to_owned(),
                    ByteString(auth.password.expose().as_bytes().to_vec()),
                ),
            ]
            .into(),
        );
        let written = shared
            .writer
            .apply_foreign_secret(&body, DATA_MANAGER)
            .await;
        if let Some(d) = body.data.as_mut() {
            for v in d.values_mut() {
                zeroize_bytes(&mut v.0);
            }
        }
        match written {
            Ok(s) => {
                rv = s.metadata.resource_version;
                tracing::info!(namespace = %shared.namespace, secret = %name, registry = %wanted.host, "repository credentials written");
                ready_status(&wanted, &role, &shared.namespace, credential.expires_at)
            }
            Err(WriteError::NotLeader) => return Ok(Action::await_change()),
            Err(e) if is_stale(&e) => return Ok(again(&shared, &name)),
            Err(e) if e.code() == Some(409) => {
                let detail = e
                    .status()
                    .map_or_else(|| e.to_string(), |s| s.message.clone());
                conflict_status(&shared.namespace, &name, &truncate(&detail, 300))
            }
            Err(e) => {
                let last_good = shared.tracked().get(&name).and_then(|t| t.wrote_expiry);
                let status = error_status(&e.to_string(), last_good.filter(|t| *t > now));
                let rv = match shared
                    .report(&name, &at, current_status.as_deref(), &status)
                    .await
                {
                    Ok(rv) => rv,
                    Err(Stale) => return Ok(again(&shared, &name)),
                };
                remember(&shared, &name, rv, now + 5, sa_name);
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
        }
    };
    let conflict = status.starts_with("Conflict");
    let after_write = At {
        uid: uid.as_deref(),
        rv: rv.as_deref().or(read_rv.as_deref()),
    };
    match shared
        .report(&name, &after_write, current_status.as_deref(), &status)
        .await
    {
        Ok(Some(after)) => rv = Some(after),
        Ok(None) => {}
        Err(Stale) => return Ok(again(&shared, &name)),
    }
    if conflict {
        // Another manager took username/password between the read and the apply: not served
        // until that is resolved, so no store is held for it (review L5).
        shared.unserved(&name).await;
    }
    let refresh_at = credential.refresh_at(REFRESH_FRACTION).max(now + 1);
    let next = if conflict {
        now + secs(shared.resync)
    } else {
        refresh_at
    };
    let rv = rv.or(read_rv);
    {
        let mut tracked = shared.tracked();
        let t = tracked.entry(name).or_default();
        t.not_opted_in_rv = None;
        t.written_rv = rv;
        t.next_at = next;
        t.service_account = sa_name;
        if !conflict {
            t.wrote_expiry = Some(credential.expires_at);
        }
    }
    Ok(Action::requeue(Duration::from_secs(
        u64::try_from(next - now).unwrap_or(1).max(1),
    )))
}

/// Who set `data.username` / `data.password` if not irsa: `Some(managers)` when either key is
/// there and irsa's [`DATA_MANAGER`] does not own it by apply (a user's own value, or one
/// without a recorded field manager), `None` when the keys are absent or irsa's.
fn foreign_owners(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?;
    let entries = secret
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    let owns = |entry: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry,
                key: &str| {
        entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:data"))
            .and_then(|d| d.get(format!("f:{key}")))
            .is_some()
    };
    let mut others = Vec::new();
    for key in ["username", "password"] {
        if !data.contains_key(key) {
            continue;
        }
        let ours = entries.iter().any(|e| {
            e.manager.as_deref() == Some(DATA_MANAGER)
                && e.operation.as_deref() == Some("Apply")
                && owns(e, key)
        });
        if ours {
            continue;
        }
        let mut by: Vec<String> = entries
            .iter()
            .filter(|e| e.manager.as_deref() != Some(DATA_MANAGER) && owns(e, key))
            .map(|e| format!("{:?}", e.manager.as_deref().unwrap_or("")))
            .collect();
        if by.is_empty() {
            by.push("no recorded field manager".to_owned());
        }
        others.push(format!("data.{key} set by {}", by.join(", ")));
    }
    (!others.is_empty()).then(|| others.join("; "))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn remember(shared: &Shared, name: &str, rv: Option<String>, next_at: i64, sa: Option<String>) {
    let mut tracked = shared.tracked();
    let t = tracked.entry(name.to_owned()).or_default();
    t.not_opted_in_rv = None;
    if rv.is_some() {
        t.written_rv = rv;
    } else {
        t.written_rv = None;
    }
    t.next_at = next_at;
    if sa.is_some() {
        t.service_account = sa;
    }
}

/// Removes what irsa owns in a secret that no longer opts in: an apply of nothing under each
/// of its managers (the API server drops the fields no other manager holds).
async fn release(
    shared: &Shared,
    name: &str,
    uid: Option<&str>,
    rv: Option<&str>,
    managers: &HashSet<String>,
) -> Result<(), Stale> {
    let mut rv = rv.map(str::to_owned);
    for manager in [DATA_MANAGER, STATUS_MANAGER] {
        if !managers.contains(manager) {
            continue;
        }
        let body = shared.apply_body(name, uid, rv.as_deref());
        match shared.writer.apply_foreign_secret(&body, manager).await {
            Err(e) if is_stale(&e) => return Err(Stale),
            Ok(s) => {
                rv = s.metadata.resource_version;
                tracing::info!(namespace = %shared.namespace, secret = %name, manager, "released the fields irsa owned");
            }
            Err(WriteError::NotLeader) => {}
            Err(error) => {
                tracing::warn!(secret = %name, %error, "failed to release the fields irsa owned");
            }
        }
    }
    Ok(())
}

/// Releases `username`/`password` irsa wrote to `name` (an apply of nothing under
/// [`DATA_MANAGER`]), when irsa holds them; returns the resourceVersion after the release.
/// The last good credential is forgotten: it is no longer in the secret.
async fn release_data(
    shared: &Shared,
    name: &str,
    at: &At<'_>,
    managers: &HashSet<String>,
) -> Result<Option<String>, Stale> {
    if let Some(t) = shared.tracked().get_mut(name) {
        t.wrote_expiry = None;
    }
    if !managers.contains(DATA_MANAGER) {
        return Ok(None);
    }
    let body = shared.apply_body(name, at.uid, at.rv);
    match shared
        .writer
        .apply_foreign_secret(&body, DATA_MANAGER)
        .await
    {
        Ok(s) => {
            tracing::info!(namespace = %shared.namespace, secret = %name, "released the credential irsa wrote");
            Ok(s.metadata.resource_version)
        }
        Err(e) if is_stale(&e) => Err(Stale),
        Err(WriteError::NotLeader) => Ok(None),
        Err(error) => {
            tracing::warn!(secret = %name, %error, "failed to release the credential irsa wrote");
            Ok(None)
        }
    }
}

/// After a Delete from the label-filtered watch: if the secret still exists without a served
/// label, removes what irsa owns in it (read once; only its managers are kept).
async fn release_if_unlabelled(shared: &Shared, name: &str) {
    if !shared.writer.leads() {
        return;
    }
    let secret = match shared.writer.get_secret(&shared.namespace, name).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(secret = %name, %error, "failed to read a secret that lost its label");
            return;
        }
    };
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SECRET_TYPE_LABEL))
        .is_some_and(|v| SECRET_TYPES.contains(&v.as_str()));
    let rv = secret.metadata.resource_version.clone();
    let uid = secret.metadata.uid.clone();
    let managers: HashSet<String> = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .filter(|m| m == DATA_MANAGER || m == STATUS_MANAGER)
        .collect();
    drop(secret);
    if labelled || managers.is_empty() {
        return;
    }
    if release(shared, name, uid.as_deref(), rv.as_deref(), &managers)
        .await
        .is_err()
    {
        tracing::info!(secret = %name, "a secret that lost its label changed meanwhile; not released");
    }
}

/// Bytes zeroized when dropped (a copy of a secret's username or password, for comparison).
fn zeroize_on_drop(bytes: Vec<u8>) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(bytes)
}

fn zeroize_bytes(bytes: &mut Vec<u8>) {
    zeroize::Zeroize::zeroize(bytes);
}

/// Everything the Argo CD reconciler needs from the controller.
pub struct Parts {
    /// The client.
    pub client: kube::Client,
    /// What to serve.
    pub options: ArgoCdOptions,
    /// The writer (leadership, rate limit, timeouts).
    pub writer: Writer,
    /// TokenRequest.
    pub requester: Arc<dyn TokenRequester>,
    /// The metrics (exchanges are counted there).
    pub metrics: Arc<Metrics>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Lifetime of requested tokens.
    pub token_expiration: Duration,
    /// Periodic look at failed secrets.
    pub resync: Duration,
    /// Leadership, to forget what is held when it ends.
    pub leadership: Leadership,
    /// Resources reconciled at once.
    pub concurrency: u16,
    /// Called once for each watch when it first listed (the controller's readiness waits for
    /// both, and `/readyz` names the one that has not).
    pub listed: Arc<dyn Fn(Watch) + Send + Sync>,
}

/// The Argo CD reconciler's watches, each reported to [`Parts::listed`] once listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Watch {
    /// The repository secrets (metadata, by label) of the Argo CD namespace.
    RepositorySecrets,
    /// The service accounts of the Argo CD namespace.
    ServiceAccounts,
}

/// Runs the Argo CD reconciler until `stop`, reconciling every secret again on `resync_all`.
pub async fn run(
    parts: Parts,
    resync_all: impl futures_util::Stream<Item = ()> + Send + 'static,
    stop: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
    drain: Duration,
) {
    let Parts {
        client,
        options,
        writer,
        requester,
        metrics,
        clock,
        token_expiration,
        resync,
        leadership,
        concurrency,
        listed,
    } = parts;
    let list_done = move |watch: Watch| {
        tracing::info!(?watch, "Argo CD watch listed");
        listed(watch);
    };
    let ns = options.namespace.clone();
    tracing::info!(namespace = %ns, "serving Argo CD repository secrets with workload identity");
    let (sa_store, sa_writer) = reflector::store::<ServiceAccount>();
    let shared = Arc::new(Shared {
        namespace: ns.clone(),
        allowed: options.allowed.clone(),
        base: options.pipeline.clone(),
        stores: tokio::sync::Mutex::new(HashMap::new()),
        worked: Mutex::new(HashSet::new()),
        writer,
        requester,
        metrics,
        clock,
        token_expiration,
        resync,
        tracked: Mutex::new(HashMap::new()),
        service_accounts: sa_store,
        service_accounts_listed: AtomicBool::new(false),
        reported: Mutex::new(HashMap::new()),
    });
    // A service account that changes re-reconciles the secrets that use it.
    let (refs_tx, refs_rx) =
        tokio::sync::mpsc::unbounded_channel::<ObjectRef<PartialObjectMeta<Secret>>>();
    let sa_task = {
        let list_done = list_done.clone();
        let shared = shared.clone();
        let stop = stop.clone();
        let ns = ns.clone();
        let stream = reflector::reflector(
            sa_writer,
            watcher::watcher(
                Api::<ServiceAccount>::namespaced(client.clone(), &ns),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|s| {
                s.metadata.managed_fields = None;
                s.secrets = None;
            }),
        );
        tokio::spawn(async move {
            tokio::pin!(stream);
            tokio::pin!(stop);
            loop {
                let event = tokio::select! {
                    () = &mut stop => break,
                    e = stream.next() => match e { Some(e) => e, None => break },
                };
                let changed: Option<String> = match event {
                    Ok(Event::Apply(sa)) | Ok(Event::Delete(sa)) => sa.metadata.name.clone(),
                    Ok(Event::InitDone) => {
                        shared.service_accounts_listed.store(true, Ordering::SeqCst);
                        list_done(Watch::ServiceAccounts);
                        Some(String::new())
                    }
                    Ok(_) => None,
                    Err(error) => {
                        tracing::warn!(%error, "Argo CD service accounts watch failed; retrying");
                        None
                    }
                };
                let Some(changed) = changed else { continue };
                let hit: Vec<String> = {
                    let mut tracked = shared.tracked();
                    tracked
                        .iter_mut()
                        .filter(|(_, t)| {
                            changed.is_empty() || t.service_account.as_deref() == Some(&changed)
                        })
                        .map(|(name, t)| {
                            t.written_rv = None;
                            name.clone()
                        })
                        .collect()
                };
                for name in hit {
                    let _ = refs_tx.send(ObjectRef::new(&name).within(&ns));
                }
            }
        })
    };
    // Leadership lost: forget every credential and what was written (a later term starts
    // from nothing, re-exchanging).
    let lead_task = {
        let shared = shared.clone();
        let stop = stop.clone();
        let mut rx = leadership.subscribe();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    changed = rx.changed() => {
                        if changed.is_err() { break; }
                        if !*rx.borrow_and_update() {
                            shared.stores.lock().await.clear();
                            shared.worked().clear();
                            shared.metrics.set_argocd_stores(0);
                            shared.tracked().clear();
                            shared.reported.lock().unwrap_or_else(|p| p.into_inner()).clear();
                        }
                    }
                }
            }
        })
    };
    let selector = format!("{SECRET_TYPE_LABEL} in ({})", SECRET_TYPES.join(","));
    let (store, store_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let events = {
        let shared = shared.clone();
        reflector::reflector(
            store_writer,
            watcher::watcher(
                Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), &ns),
                watcher::Config::default().labels(&selector),
            )
            .default_backoff()
            .modify(|m| m.metadata.managed_fields = None),
        )
        .map(move |event| {
            if let Ok(Event::InitDone) = &event {
                list_done(Watch::RepositorySecrets);
            }
            if let Ok(Event::Delete(m)) = &event
                && let Some(name) = &m.metadata.name
            {
                shared.tracked().remove(name);
                shared
                    .reported
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
                // The label-filtered watch also says Delete when only the label went: then
                // the secret is still there, and irsa's fields are released (review L1).
                let shared = shared.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    release_if_unlabelled(&shared, &name).await;
                    shared.prune_stores().await;
                });
            }
            event
        })
    };
    let controller = KubeController::for_stream(events.applied_objects(), store)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(resync_all)
        .reconcile_on(futures_util::stream::unfold(refs_rx, |mut rx| async move {
            let r = rx.recv().await?;
            Some((r, rx))
        }))
        .graceful_shutdown_on(stop.clone())
        .run(
            reconcile,
            |meta, error, _| {
                tracing::warn!(secret = ?meta.metadata.name, %error, "repository secret reconcile failed; retrying");
                Action::requeue(Duration::from_secs(5))
            },
            shared,
        )
        .for_each(|_| async {});
    let bounded = async move {
        stop.await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        () = controller => {}
        () = bounded => tracing::warn!("Argo CD reconciler cut at the drain timeout"),
    }
    let _ = sa_task.await;
    let _ = lead_task.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 409 of server-side apply as kube-apiserver words it.
    fn apply_conflict(message: &str, causes: &[&str]) -> WriteError {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
            "reason": "Conflict", "message": message,
            "details": {"name": "charts", "kind": "secrets", "causes": causes.iter().map(|m| {
                serde_json::json!({"reason": "FieldManagerConflict", "message": m,
                                   "field": ".metadata.annotations.irsa.dev/status"})
            }).collect::<Vec<_>>()},
        }))
        .unwrap();
        WriteError::Api {
            action: "apply".to_owned(),
            source: kube::Error::Api(status.boxed()),
        }
    }

    /// Review L2: the real API server names an Update's manager `"kubectl" using v1` (and
    /// ` at <time>`), Go-quoted; the Event names the manager alone, still escaped.
    #[test]
    fn conflicting_managers_as_the_api_server_words_them() {
        for (causes, message, want) in [
            (
                vec![r#"conflict with "kubectl""#],
                r#"Apply failed with 1 conflict: conflict with "kubectl": .metadata.annotations.irsa.dev/status"#,
                r#""kubectl""#,
            ),
            (
                vec![r#"conflict with "kubectl-annotate" using v1"#],
                r#"Apply failed with 1 conflict: conflict with "kubectl-annotate" using v1: .metadata.annotations.irsa.dev/status"#,
                r#""kubectl-annotate""#,
            ),
            (
                vec![r#"conflict with "argocd" using v1 at 2026-12-04T01:02:03Z"#],
                "Apply failed with 1 conflict",
                r#""argocd""#,
            ),
            (
                // Go's %q escapes a quote in the name; irsa shows it escaped again, once.
                vec![r#"conflict with "evil\" using v1\nfake" using v1"#],
                "Apply failed with 1 conflict",
                r#""evil\" using v1\nfake""#,
            ),
            (
                // No causes: the message's own list.
                vec![],
                r#"Apply failed with 2 conflicts: conflict with "helm" using v1: .metadata.annotations.irsa.dev/status, conflict with "kubectl": .data.password"#,
                r#""helm", "kubectl""#,
            ),
            (vec![], "Conflict", "another field manager"),
        ] {
            let e = apply_conflict(message, &causes);
            assert_eq!(conflicting_managers(&e), want, "{causes:?} / {message}");
        }
    }

    #[test]
    fn missing_service_account_and_annotation_are_named() {
        let e = role_of("argocd", "argocd-project-production", None).unwrap_err();
        assert!(
            e.contains("service account argocd/argocd-project-production does not exist"),
            "{e}"
        );
        let sa = ServiceAccount::default();
        let e = role_of("argocd", "argocd-project-production", Some(&sa)).unwrap_err();
        assert!(
            e.starts_with(
                "service account argocd/argocd-project-production has no eks.amazonaws.com/role-arn annotation"
            ),
            "{e}"
        );
    }
}
