//! The only place the controller sends requests that change the cluster. A [`Writer`] holds the
//! client, the client-side rate limit, the metrics and the leadership claim: every write waits
//! for the rate limiter, then checks leadership right before the request leaves (a replica
//! that lost the Lease while queued sends nothing), and is bounded by a per-call timeout (kube's
//! client has no read timeout, and a client-wide one would cut idle watches) and by the
//! leadership deadline: a write is not sent with less than [`MIN_WRITE_WINDOW`] of the term
//! left, and one in flight is abandoned at the deadline. Reads of single
//! objects go through it too, for the rate limit and the timeout.
//!
//! It also executes a [`Plan`]: secret writes, then service-account patches, then secret
//! deletions, keeping the [`Index`] in step with its own answers.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, Recorder};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::index::Index;
use crate::lease::{Leadership, Term};
use crate::metrics::{Metrics, Write};
use crate::plan::{
    self, Checked, Deletion, Plan, SecretState, SecretWrite, ServiceAccountPatch, WriteKind,
};
use crate::ratelimit::RateLimiter;

/// The field manager of every server-side apply and patch.
pub const FIELD_MANAGER: &str = "irsa";
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time left of the leadership term for a write to be sent at all: one that could not
/// finish before the deadline would reach the API server after another replica may lead.
pub const MIN_WRITE_WINDOW: Duration = Duration::from_secs(1);

/// Why a request through the [`Writer`] did not succeed. Never holds a secret: API errors
/// carry the server's `Status`, which names objects, never their data.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This replica does not lead (any more): nothing was sent.
    #[error("not the leader: writes are left to the replica holding the lease")]
    NotLeader,
    /// No answer in time.
    #[error("failed to {action}: no answer within {}s (retried)", timeout.as_secs())]
    TimedOut {
        /// What was being done.
        action: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The API server (or the connection) refused.
    #[error("failed to {action}: {}", describe(source))]
    Api {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

impl WriteError {
    /// The API server's `Status`, if it answered with one.
    pub fn status(&self) -> Option<&kube::core::Status> {
        match self {
            WriteError::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    /// The HTTP code of the API server's answer, if any.
    pub fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }
}

/// A kube error for a message: the server's message, code and reason.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// Whether the API server refused a write into `namespace` because the namespace is gone
/// (404 NotFound naming the namespace in its details) or going (403 Forbidden with the cause
/// `NamespaceTerminating`), as kube-apiserver's NamespaceLifecycle admission answers. Decided
/// from the `Status` reason and details only: a message that merely mentions a namespace (an
/// admission webhook's denial, a quota) is a failed write.
fn is_namespace_gone(e: &WriteError, namespace: &str) -> bool {
    let Some(s) = e.status() else { return false };
    let Some(details) = s.details.as_ref() else {
        return false;
    };
    match (s.code, s.reason.as_str()) {
        (404, "NotFound") => {
            details.kind == "namespaces" && details.group.is_empty() && details.name == namespace
        }
        (403, "Forbidden") => details
            .causes
            .iter()
            .any(|c| c.reason == "NamespaceTerminating"),
        _ => false,
    }
}

/// See the [module docs](self).
#[derive(Clone)]
pub struct Writer {
    client: kube::Client,
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    claim: Arc<dyn Fn() -> Term + Send + Sync>,
    recorder: Recorder,
    timeout: Duration,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What executing a plan did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The namespaces whose Secret was written.
    pub written: Vec<String>,
    /// Failed writes: (namespace, message).
    pub failed: Vec<(String, String)>,
    /// Whether a write was skipped because this replica does not lead.
    pub not_leader: bool,
}

/// What one planned write came to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    Failed(String, String),
    NotLeader,
}

impl Outcome {
    fn tally(&mut self, step: Step) {
        match step {
            Step::Done => {}
            Step::Failed(ns, message) => self.failed.push((ns, message)),
            Step::NotLeader => self.not_leader = true,
        }
    }
}

impl Writer {
    /// A writer that writes only while `leadership` is held, at the pace `limiter` allows
    /// (shared with the process's other writers: `--kube-qps` is one budget).
    pub fn new(
        client: kube::Client,
        limiter: impl Into<Arc<RateLimiter>>,
        metrics: Arc<Metrics>,
        leadership: Leadership,
        recorder: Recorder,
    ) -> Self {
        Self::with_claim(client, limiter, metrics, recorder, move || {
            leadership.term()
        })
    }

    /// A writer that writes only within the term `claim()` says.
    fn with_claim(
        client: kube::Client,
        limiter: impl Into<Arc<RateLimiter>>,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        claim: impl Fn() -> Term + Send + Sync + 'static,
    ) -> Self {
        Self {
            client,
            limiter: limiter.into(),
            metrics,
            claim: Arc::new(claim),
            recorder,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Whether this replica leads now (a cheap early exit; every write checks again).
    pub fn leads(&self) -> bool {
        (self.claim)() != Term::Ended
    }

    /// Sends one write: rate limit, then leadership, then the request under the timeout.
    async fn write<T, F, Fut>(
        &self,
        kind: Write,
        action: impl FnOnce() -> String,
        request: F,
    ) -> Result<T, WriteError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.limiter.acquire().await;
        // After the wait: leadership may have ended while this request queued. The request
        // must also be over by the leadership deadline: it is not sent when too little of the
        // term is left, and one in flight is abandoned at the deadline (the API server may
        // still apply it, but never after another replica may have taken over: its lease
        // duration is longer than our renew deadline) — unless the term was renewed
        // meanwhile: then it goes on to the new deadline (never past the request timeout),
        // rather than be reported as failed although it may well succeed.
        let (deadline, term) = match (self.claim)() {
            Term::Ended => return Err(WriteError::NotLeader),
            Term::Unbounded => (None, None),
            Term::Until(t, term) => (Some(t), Some(term)),
        };
        let now = tokio::time::Instant::now();
        if let Some(t) = deadline
            && t.saturating_duration_since(now) < MIN_WRITE_WINDOW
        {
            return Err(WriteError::NotLeader);
        }
        let overall = now + self.timeout;
        let mut cut = deadline.map_or(overall, |t| t.min(overall));
        self.metrics.wrote(kind);
        let request = request();
        tokio::pin!(request);
        loop {
            match tokio::time::timeout_at(cut, &mut request).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(source)) => {
                    return Err(WriteError::Api {
                        action: action(),
                        source,
                    });
                }
                Err(_) if cut >= overall => {
                    return Err(WriteError::TimedOut {
                        action: action(),
                        timeout: self.timeout,
                    });
                }
                // Cut at the leadership deadline: renewed in the same term, it goes on; else
                // the lease is someone else's to use.
                Err(_) => match (self.claim)() {
                    Term::Until(t, now_term) if Some(now_term) == term && t > cut => {
                        cut = t.min(overall);
                    }
                    _ => return Err(WriteError::NotLeader),
                },
            }
        }
    }

    /// Sends one read: rate limit, then the request under the timeout.
    async fn read<T>(
        &self,
        action: impl FnOnce() -> String,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        self.limiter.acquire().await;
        self.bounded(action, request).await
    }

    async fn bounded<T>(
        &self,
        action: impl FnOnce() -> String,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(WriteError::Api {
                action: action(),
                source,
            }),
            Err(_) => Err(WriteError::TimedOut {
                action: action(),
                timeout: self.timeout,
            }),
        }
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Reads a Secret (`None`: not found).
    pub async fn get_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Secret>, WriteError> {
        let api = self.secrets(namespace);
        self.read(
            || format!("read secret {namespace}/{name}"),
            api.get_opt(name),
        )
        .await
    }

    /// Creates a Secret.
    pub async fn create_secret(&self, secret: &Secret) -> Result<Secret, WriteError> {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let api = self.secrets(&ns);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.write(
            Write::Create,
            || format!("create secret {ns}/{name}"),
            || api.create(&pp, secret),
        )
        .await
    }

    /// Server-side applies a Secret under [`FIELD_MANAGER`]; with `metadata.resourceVersion`
    /// set, the API server refuses it (409 Conflict) unless the Secret is still that version.
    pub async fn apply_secret(&self, secret: &Secret) -> Result<Secret, WriteError> {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let api = self.secrets(&ns);
        let (pp, patch) = (
            PatchParams::apply(FIELD_MANAGER).force(),
            Patch::Apply(secret),
        );
        self.write(
            Write::Apply,
            || format!("update secret {ns}/{name}"),
            || api.patch(&name, &pp, &patch),
        )
        .await
    }

    /// Server-side applies fields of a Secret irsa does not own (an Argo CD repository secret)
    /// under `manager`, **without force**: a field another manager set to another value is a
    /// 409 Conflict, never taken over.
    pub async fn apply_foreign_secret(
        &self,
        secret: &Secret,
        manager: &str,
    ) -> Result<Secret, WriteError> {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let api = self.secrets(&ns);
        let (pp, patch) = (PatchParams::apply(manager), Patch::Apply(secret));
        self.write(
            Write::Apply,
            || format!("apply fields of secret {ns}/{name} as {manager}"),
            || api.patch(&name, &pp, &patch),
        )
        .await
    }

    /// Deletes a Secret if it still has the uid and resourceVersion irsa checked (409
    /// Conflict otherwise): never an object that replaced the one irsa looked at.
    pub async fn delete_secret(
        &self,
        namespace: &str,
        name: &str,
        checked: &Checked,
    ) -> Result<(), WriteError> {
        let api = self.secrets(namespace);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: checked.uid.clone(),
                resource_version: checked.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        self.write(
            Write::Delete,
            || format!("delete secret {namespace}/{name}"),
            || api.delete(name, &dp),
        )
        .await
        .map(|_| ())
    }

    /// Applies an RFC 6902 patch to a ServiceAccount.
    pub async fn patch_service_account(
        &self,
        namespace: &str,
        name: &str,
        patch: json_patch::Patch,
    ) -> Result<ServiceAccount, WriteError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = Patch::<()>::Json(patch);
        self.write(
            Write::PatchServiceAccount,
            || format!("update imagePullSecrets of service account {namespace}/{name}"),
            || api.patch(name, &pp, &patch),
        )
        .await
    }

    /// Sends a patch of `obj` (or of its `subresource`) and reads the answer back as a `K`.
    async fn patch_object<K, P>(
        &self,
        kind: Write,
        action: impl FnOnce() -> String,
        obj: &K,
        subresource: Option<&str>,
        pp: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<K, WriteError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
        P: serde::Serialize + fmt::Debug,
    {
        let name = obj.name_any();
        // Either scope: the URL comes from the object's own namespace (if any).
        let url = kube::core::Request::new(K::url_path(&(), obj.meta().namespace.as_deref()));
        let request = match subresource {
            Some(sub) => url.patch_subresource(sub, &name, pp, patch),
            None => url.patch(&name, pp, patch),
        }
        .map_err(kube::Error::BuildRequest);
        let client = &self.client;
        self.write(kind, action, || async move {
            client.request::<K>(request?).await
        })
        .await
    }

    /// Server-side applies `status` (a JSON object with apiVersion, kind and status) to `obj`.
    pub async fn write_status<K>(
        &self,
        obj: &K,
        status: &serde_json::Value,
    ) -> Result<(), WriteError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let name = obj.name_any();
        self.patch_object(
            Write::Status,
            || format!("write the status of {name}"),
            obj,
            Some("status"),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(status),
        )
        .await
        .map(|_| ())
    }

    /// Applies an RFC 6902 patch to `obj` itself (its finalizers).
    pub async fn patch_finalizers<K>(
        &self,
        obj: &K,
        patch: json_patch::Patch,
    ) -> Result<(), WriteError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let name = obj.name_any();
        self.patch_object(
            Write::Finalizer,
            || format!("update the finalizers of {name}"),
            obj,
            None,
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
        .map(|_| ())
    }

    /// Publishes an Event about `regarding`.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), WriteError> {
        self.write(
            Write::Event,
            || format!("publish a {} Event", event.reason),
            || self.recorder.publish(event, regarding),
        )
        .await
    }

    /// Executes `plan` (secret writes, then service-account patches, then secret deletions,
    /// each up to `concurrency` at once), stamping written secrets with `stamp` (annotations
    /// that are not part of the content hash), and records its own answers in `index`.
    pub async fn execute(
        &self,
        index: &RwLock<Index>,
        plan: &Plan,
        stamp: &BTreeMap<String, String>,
        concurrency: usize,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        // Futures are made as slots free up, never all at once (each holds a request in flight).
        // By index: a closure over borrowed items inside a stream held across an await trips the
        // compiler's higher-ranked lifetime inference (rust-lang/rust#102211).
        let writes = futures_util::stream::iter(0..plan.writes.len())
            .map(|i| self.write_one(index, &plan.writes[i], stamp))
            .buffer_unordered(concurrency.max(1));
        for (wrote, step) in writes.collect::<Vec<_>>().await {
            outcome.written.extend(wrote);
            outcome.tally(step);
        }
        // Each patch is of another ServiceAccount (one per ServiceAccount in a plan), guarded
        // by its own resourceVersion: they need no order among themselves.
        let patches = futures_util::stream::iter(0..plan.service_account_patches.len())
            .map(|i| self.patch_one(index, &plan.service_account_patches[i]))
            .buffer_unordered(concurrency.max(1));
        for step in patches.collect::<Vec<_>>().await {
            outcome.tally(step);
        }
        let deletions = futures_util::stream::iter(0..plan.deletions.len())
            .map(|i| self.delete_one(index, &plan.deletions[i]))
            .buffer_unordered(concurrency.max(1));
        for step in deletions.collect::<Vec<_>>().await {
            outcome.tally(step);
        }
        outcome
    }

    /// Writes one planned Secret; its namespace when it was written.
    async fn write_one(
        &self,
        index: &RwLock<Index>,
        w: &SecretWrite,
        stamp: &BTreeMap<String, String>,
    ) -> (Option<String>, Step) {
        let ns = w.secret.namespace.clone();
        let name = w.secret.name.clone();
        let mut secret = w.secret.to_secret();
        if let Some(a) = secret.metadata.annotations.as_mut() {
            a.extend(stamp.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let failed = |e: &WriteError| match e {
            WriteError::NotLeader => Step::NotLeader,
            e => Step::Failed(ns.clone(), e.to_string()),
        };
        match w.kind {
            WriteKind::Create => match self.create_secret(&secret).await {
                Ok(created) => {
                    write_index(index).apply_secret(&created);
                    (Some(ns), Step::Done)
                }
                // Someone else's secret of that name (or ours, not yet seen): look at it.
                Err(e) if e.code() == Some(409) => match self.get_secret(&ns, &name).await {
                    Ok(Some(existing)) => {
                        note_existing(index, &existing);
                        (None, Step::Done)
                    }
                    Ok(None) => (None, failed(&e)),
                    Err(e) => (None, failed(&e)),
                },
                Err(e) if is_namespace_gone(&e, &ns) => (None, Step::Done),
                Err(e) => (None, failed(&e)),
            },
            WriteKind::Update => {
                // Conditional on the version checked: never takes over a secret that replaced
                // irsa's since.
                let Some(rv) = &w.existing.resource_version else {
                    return (None, unchecked(&ns, &name));
                };
                secret.metadata.resource_version = Some(rv.clone());
                match self.apply_secret(&secret).await {
                    Ok(updated) => {
                        write_index(index).apply_secret(&updated);
                        (Some(ns), Step::Done)
                    }
                    // 409: it changed since it was checked. 422: the API server refuses the
                    // update itself, as it does when the Secret's type is not the one irsa
                    // writes (the type is immutable). Either way, look again at what is
                    // there, and judge whether it is irsa's.
                    Err(e) if matches!(e.code(), Some(409 | 422)) => {
                        let owns =
                            |l: &BTreeMap<String, String>| plan::same_owner(&w.secret.labels, l);
                        (
                            None,
                            self.recheck(index, &ns, &name, &owns, failed(&e)).await,
                        )
                    }
                    Err(e) => (None, failed(&e)),
                }
            }
        }
    }

    /// Deletes one of irsa's secrets, conditional on what was checked. A secret that changed
    /// since is read again: if it is no longer irsa's, it is left alone (and forgotten);
    /// if it still is, the deletion is retried against what is there now.
    ///
    /// The plan judged it from the metadata-only watch, which cannot see a Secret's type: it
    /// is read in full first, and deleted only if it is still `d.owner`'s and of the type irsa
    /// writes, conditional on what that read saw. Anything else is indexed as it is (its
    /// type learnt) and left alone.
    async fn delete_one(&self, index: &RwLock<Index>, d: &Deletion) -> Step {
        let (ns, name) = (d.namespace.as_str(), d.name.as_str());
        if d.checked.uid.is_none() || d.checked.resource_version.is_none() {
            return unchecked(ns, name);
        }
        let now = match self.get_secret(ns, name).await {
            Ok(Some(now)) => now,
            Ok(None) => {
                write_index(index).delete_secret(ns, name);
                return Step::Done;
            }
            Err(WriteError::NotLeader) => return Step::NotLeader,
            Err(e) => return Step::Failed(ns.to_owned(), e.to_string()),
        };
        let ours = now
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| d.owner.owns(l))
            && now.type_.as_deref() == Some(plan::DOCKER_CONFIG_JSON_TYPE);
        // Another object than the one the plan judged (its age, its labels) was made since:
        // left for the next round to judge (review 24a L2).
        if !ours || now.metadata.uid != d.checked.uid {
            note_existing(index, &now);
            return Step::Done;
        }
        let checked = Checked {
            uid: now.metadata.uid.clone(),
            resource_version: now.metadata.resource_version.clone(),
        };
        if checked.uid.is_none() || checked.resource_version.is_none() {
            return unchecked(ns, name);
        }
        match self.delete_secret(ns, name, &checked).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(404) => {}
            Err(WriteError::NotLeader) => return Step::NotLeader,
            Err(e) if e.code() == Some(409) => {
                let failed = Step::Failed(ns.to_owned(), e.to_string());
                let owns = |l: &BTreeMap<String, String>| d.owner.owns(l);
                return self.recheck(index, ns, name, &owns, failed).await;
            }
            Err(e) => return Step::Failed(ns.to_owned(), e.to_string()),
        }
        write_index(index).delete_secret(ns, name);
        Step::Done
    }

    /// After a conditional write or delete was refused: reads the secret again and indexes
    /// what is there. Done when it is gone or is not this owner's (`owns` judges its labels)
    /// of irsa's type (nothing of this owner's to change: a Secret without irsa's label, of
    /// another irsa owner, or of a type irsa never creates, which the next plan reports as a
    /// conflict), `failed` (retried) when it still is.
    async fn recheck(
        &self,
        index: &RwLock<Index>,
        ns: &str,
        name: &str,
        owns: &(dyn Fn(&BTreeMap<String, String>) -> bool + Sync),
        failed: Step,
    ) -> Step {
        match self.get_secret(ns, name).await {
            Ok(None) => {
                write_index(index).delete_secret(ns, name);
                Step::Done
            }
            Ok(Some(now)) => {
                note_existing(index, &now);
                let ours = now.metadata.labels.as_ref().is_some_and(owns)
                    && now.type_.as_deref() == Some(plan::DOCKER_CONFIG_JSON_TYPE);
                if ours { failed } else { Step::Done }
            }
            Err(WriteError::NotLeader) => Step::NotLeader,
            Err(e) => Step::Failed(ns.to_owned(), e.to_string()),
        }
    }

    async fn patch_one(&self, index: &RwLock<Index>, p: &ServiceAccountPatch) -> Step {
        let patch: json_patch::Patch = match serde_json::from_value(p.json_patch()) {
            Ok(patch) => patch,
            Err(e) => {
                return Step::Failed(p.namespace.clone(), format!("bug: invalid JSON patch: {e}"));
            }
        };
        match self
            .patch_service_account(&p.namespace, &p.name, patch)
            .await
        {
            Ok(sa) => {
                write_index(index).apply_service_account(&sa);
                Step::Done
            }
            Err(e) if e.code() == Some(404) => {
                // Gone: forgotten now, not when the watch's delete event comes, so that the
                // next round does not plan the patch again. Unless the index holds a newer one
                // (made again under the name since), which the watch already brought.
                let mut index = write_index(index);
                let held = index
                    .service_account(&p.namespace, &p.name)
                    .map(|sa| sa.state.resource_version.clone());
                if held.is_some_and(|rv| rv == p.resource_version) {
                    index.delete_service_account(&p.namespace, &p.name);
                }
                Step::Done
            }
            Err(WriteError::NotLeader) => Step::NotLeader,
            Err(e) => Step::Failed(p.namespace.clone(), format!("{e} (retried)")),
        }
    }
}

/// A write irsa refuses to send: it would not be conditional.
fn unchecked(ns: &str, name: &str) -> Step {
    Step::Failed(
        ns.to_owned(),
        format!(
            "secret {ns}/{name} not changed: its uid and resourceVersion are not known yet (retried)"
        ),
    )
}

fn write_index(index: &RwLock<Index>) -> std::sync::RwLockWriteGuard<'_, Index> {
    index.write().unwrap_or_else(|p| p.into_inner())
}

/// Indexes a Secret found in the way, read in full: labelled as irsa's (with its real type,
/// which the plan judges) or foreign.
pub(crate) fn note_existing(index: &RwLock<Index>, secret: &Secret) {
    let Some(state) = SecretState::from_secret(secret) else {
        return;
    };
    let mut index = write_index(index);
    if plan::is_managed(&state.labels) {
        index.learn_type(secret);
        index.apply_secret(secret);
    } else {
        // Not irsa's (any more): whatever irsa held under that name is gone.
        index.delete_secret(&state.namespace, &state.name);
        index.record_foreign(state, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use http::{Method, Request, Response};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::client::Body;
    use kube::runtime::events::Reporter;
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle};

    use super::*;
    use crate::plan::Subject;

    type Api = Handle<Request<Body>, Response<Body>>;

    /// A writer over a mock API server, leading while `leads` is true.
    fn writer(limiter: impl Into<Arc<RateLimiter>>, leads: Arc<AtomicBool>) -> (Writer, Api) {
        let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "irsa".into(),
                instance: None,
            },
        );
        let writer = Writer::with_claim(
            client,
            limiter,
            Arc::new(Metrics::default()),
            recorder,
            move || {
                if leads.load(Ordering::SeqCst) {
                    Term::Unbounded
                } else {
                    Term::Ended
                }
            },
        );
        (writer, api)
    }

    /// A writer over a mock API server whose leadership ends at `until` (monotonic).
    fn writer_until(until: tokio::time::Instant) -> (Writer, Api) {
        let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "irsa".into(),
                instance: None,
            },
        );
        let writer = Writer::with_claim(
            client,
            RateLimiter::new(0.0, 1),
            Arc::new(Metrics::default()),
            recorder,
            move || {
                if tokio::time::Instant::now() < until {
                    Term::Until(until, 1)
                } else {
                    Term::Ended
                }
            },
        );
        (writer, api)
    }

    fn leading() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(true))
    }

    use crate::fixtures::{cps, credential};

    /// A plan writing `regcred` into namespace `a` the way `kind` says.
    fn plan_for(kind: WriteKind, existing: Checked) -> Plan {
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let secret = plan::desired_secret(&subject.owner, subject.spec, "a", &credential());
        Plan {
            writes: vec![SecretWrite {
                kind,
                secret,
                existing,
                expires_at: None,
            }],
            ..Plan::default()
        }
    }

    fn respond(code: u16, body: &Value) -> Response<Body> {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap()
    }

    fn status(code: u16, reason: &str, message: &str, details: Value) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "code": code, "reason": reason, "message": message, "details": details})
    }

    /// The secret the API server answers with: `secret` with a uid and resourceVersion.
    fn stored(secret: &Value, uid: &str, rv: &str) -> Value {
        let mut s = secret.clone();
        s["metadata"]["uid"] = json!(uid);
        s["metadata"]["resourceVersion"] = json!(rv);
        s
    }

    /// Expects one request with `method` on `path`; returns its JSON body and answers `answer`.
    async fn expect(api: &mut Api, method: Method, path: &str, answer: Response<Body>) -> Value {
        let (req, send) = api.next_request().await.expect("a request");
        assert_eq!(
            (req.method(), req.uri().path()),
            (&method, path),
            "{}",
            req.uri()
        );
        let body = req.into_body().collect_bytes().await.unwrap();
        send.send_response(answer);
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        }
    }

    /// Drops the writer and checks that the mock saw no further request.
    async fn no_more_requests(writer: Writer, mut api: Api) {
        drop(writer);
        assert!(api.next_request().await.is_none(), "no request expected");
    }

    #[tokio::test]
    async fn a_409_on_create_looks_up_the_foreign_secret_and_records_it() {
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        index.write().unwrap().apply_namespace(&ObjectMeta {
            name: Some("a".into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        });
        let plan = plan_for(WriteKind::Create, Checked::default());
        let no_stamp = BTreeMap::new();
        let server = async {
            let created = expect(
                &mut api,
                Method::POST,
                "/api/v1/namespaces/a/secrets",
                respond(
                    409,
                    &status(
                        409,
                        "AlreadyExists",
                        "secrets \"regcred\" already exists",
                        json!({"name": "regcred", "kind": "secrets"}),
                    ),
                ),
            )
            .await;
            assert_eq!(created["metadata"]["name"], "regcred");
            let users = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "regcred", "namespace": "a", "uid": "u-user", "resourceVersion": "5"}});
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(200, &users),
            )
            .await;
        };
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.written.is_empty());
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let again = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert!(again.writes.is_empty(), "{again:?}");
        assert_eq!(
            again.conflicts.len(),
            1,
            "the user's secret is a conflict now"
        );
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_create_refused_because_the_namespace_is_gone_is_not_a_failure() {
        let gone = [
            status(
                404,
                "NotFound",
                "namespaces \"a\" not found",
                json!({"name": "a", "kind": "namespaces"}),
            ),
            status(
                403,
                "Forbidden",
                "secrets \"regcred\" is forbidden: unable to create new content in namespace a because it is being terminated",
                json!({"name": "regcred", "kind": "secrets", "causes": [
                    {"reason": "NamespaceTerminating", "message": "namespace a is being terminated", "field": "metadata.namespace"}
                ]}),
            ),
        ];
        for answer in gone {
            let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
            let index = RwLock::new(Index::new());
            let plan = plan_for(WriteKind::Create, Checked::default());
            let no_stamp = BTreeMap::new();
            let code = answer["code"].as_u64().unwrap() as u16;
            let server = expect(
                &mut api,
                Method::POST,
                "/api/v1/namespaces/a/secrets",
                respond(code, &answer),
            );
            let (outcome, _) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
            assert!(outcome.failed.is_empty(), "{answer}: {:?}", outcome.failed);
            assert!(outcome.written.is_empty());
            no_more_requests(writer, api).await;
        }
    }

    #[tokio::test]
    async fn an_error_that_only_mentions_a_namespace_is_a_failed_write() {
        let not_gone = [
            // An admission webhook's denial.
            status(
                403,
                "Forbidden",
                "admission webhook \"policy.example.com\" denied the request: namespace \"a\" not found in the allow list",
                json!({"name": "regcred", "kind": "secrets"}),
            ),
            // Without details at all.
            status(
                403,
                "Forbidden",
                "namespace a is terminating (says a proxy)",
                Value::Null,
            ),
            // Some other object not found.
            status(
                404,
                "NotFound",
                "namespace quota \"a\" not found",
                json!({"name": "a", "kind": "resourcequotas"}),
            ),
            // Another namespace.
            status(
                404,
                "NotFound",
                "namespaces \"b\" not found",
                json!({"name": "b", "kind": "namespaces"}),
            ),
        ];
        for answer in not_gone {
            let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
            let index = RwLock::new(Index::new());
            let plan = plan_for(WriteKind::Create, Checked::default());
            let no_stamp = BTreeMap::new();
            let code = answer["code"].as_u64().unwrap() as u16;
            let server = expect(
                &mut api,
                Method::POST,
                "/api/v1/namespaces/a/secrets",
                respond(code, &answer),
            );
            let (outcome, _) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
            assert_eq!(outcome.failed.len(), 1, "{answer}");
            assert!(
                outcome.failed[0]
                    .1
                    .contains("failed to create secret a/regcred"),
                "{:?}",
                outcome.failed
            );
            assert!(outcome.written.is_empty());
            no_more_requests(writer, api).await;
        }
    }

    #[tokio::test]
    async fn a_422_on_update_of_a_labelled_secret_of_another_type_makes_it_a_conflict() {
        // A tenant's Opaque secret carrying the resource's labels: the watch (metadata only)
        // took it for irsa's, the update is refused (the type is immutable).
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        index.write().unwrap().apply_namespace(&ObjectMeta {
            name: Some("a".into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        });
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let labels = serde_json::to_value(subject.owner.labels()).unwrap();
        let forged = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "regcred", "namespace": "a", "uid": "u-tenant",
                         "resourceVersion": "7", "labels": labels}});
        // As the metadata-only watch delivers it.
        let mut seen: Secret = serde_json::from_value(forged.clone()).unwrap();
        seen.type_ = Some(plan::DOCKER_CONFIG_JSON_TYPE.into());
        index.write().unwrap().apply_secret(&seen);
        let first = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert_eq!(first.writes.len(), 1);
        assert_eq!(first.writes[0].kind, WriteKind::Update);
        let server = async {
            expect(
                &mut api,
                Method::PATCH,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(
                    422,
                    &status(
                        422,
                        "Invalid",
                        "Secret \"regcred\" is invalid: type: Invalid value: \"kubernetes.io/dockerconfigjson\": field is immutable",
                        json!({"name": "regcred", "kind": "Secret", "causes": [
                            {"reason": "FieldValueInvalid", "message": "field is immutable", "field": "type"}
                        ]}),
                    ),
                ),
            )
            .await;
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(200, &forged),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        // Bounded: without the re-read, the mock would wait for the GET forever.
        let (outcome, ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(writer.execute(&index, &first, &no_stamp, 4), server)
        })
        .await
        .expect("the refused update was not re-read");
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(outcome.written.is_empty());
        let again = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert!(again.is_noop(), "never overwritten or deleted: {again:?}");
        assert_eq!(again.conflicts.len(), 1, "{again:?}");
        // The watch's next event (metadata only) does not make it irsa's again.
        let mut echo = seen.clone();
        echo.metadata.resource_version = Some("8".into());
        index.write().unwrap().apply_secret(&echo);
        let later = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert!(later.is_noop(), "{later:?}");
        assert_eq!(later.conflicts.len(), 1);
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_labelled_secret_of_another_type_is_read_before_and_never_deleted() {
        // The metadata-only watch takes every labelled Secret for one of irsa's: here an
        // Opaque copy carrying `ecr`'s labels under another name, which the plan deletes.
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let desired = plan::desired_secret(&subject.owner, subject.spec, "a", &credential());
        let mut copy = serde_json::to_value(desired.to_secret()).unwrap();
        copy["metadata"]["name"] = json!("other");
        let watched: Secret = serde_json::from_value(stored(&copy, "u-1", "3")).unwrap();
        let index = RwLock::new(Index::new());
        index.write().unwrap().apply_namespace(&ObjectMeta {
            name: Some("a".into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        });
        index.write().unwrap().apply_secret(&watched);
        let plan = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert_eq!(plan.deletions.len(), 1, "{plan:?}");
        let mut opaque = stored(&copy, "u-1", "3");
        opaque["type"] = json!("Opaque");
        let server = async {
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/a/secrets/other",
                respond(200, &opaque),
            )
            .await;
        };
        let plan = Plan {
            writes: vec![],
            ..plan
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        // Learnt: the next plan reports nothing to delete.
        let again = plan::plan(
            &subject,
            &index.read().unwrap().observed(&subject),
            Some(&credential()),
        );
        assert!(again.deletions.is_empty(), "{again:?}");
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_secret_replaced_since_the_plan_is_not_deleted() {
        // Review 24a L2: the plan judged the Secret of uid u-1 (its age, its labels); the one
        // read back is another object (u-2) carrying the same labels, made since. It is left
        // alone for the next round to judge, not deleted on the strength of the first.
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let plan = Plan {
            deletions: vec![Deletion {
                namespace: "b".into(),
                name: "regcred".into(),
                checked: Checked {
                    uid: Some("u-1".into()),
                    resource_version: Some("3".into()),
                },
                owner: subject.owner.clone(),
            }],
            ..Plan::default()
        };
        let server = async {
            let other = plan::desired_secret(&subject.owner, subject.spec, "b", &credential());
            let other = stored(
                &serde_json::to_value(other.to_secret()).unwrap(),
                "u-2",
                "9",
            );
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/b/secrets/regcred",
                respond(200, &other),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_deletion_is_conditional_on_the_uid_and_resource_version_read() {
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let plan = Plan {
            deletions: vec![Deletion {
                namespace: "b".into(),
                name: "regcred".into(),
                checked: Checked {
                    uid: Some("u-1".into()),
                    resource_version: Some("3".into()),
                },
                owner: Subject::cluster(&cps()).owner,
            }],
            ..Plan::default()
        };
        let server = async {
            // Read in full first: still ecr's, of irsa's type, at the version checked.
            let cps = cps();
            let subject = Subject::cluster(&cps);
            let ours = plan::desired_secret(&subject.owner, subject.spec, "b", &credential());
            let ours = stored(&serde_json::to_value(ours.to_secret()).unwrap(), "u-1", "3");
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/b/secrets/regcred",
                respond(200, &ours),
            )
            .await;
            let options = expect(
                &mut api,
                Method::DELETE,
                "/api/v1/namespaces/b/secrets/regcred",
                respond(
                    409,
                    &status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on secrets \"regcred\": Precondition failed: UID in precondition: u-1, UID in object meta: u-2",
                        json!({"name": "regcred", "kind": "secrets"}),
                    ),
                ),
            )
            .await;
            assert_eq!(
                options["preconditions"],
                json!({"uid": "u-1", "resourceVersion": "3"})
            );
            // What is there now is a user's secret: forgotten, not retried.
            let users = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "regcred", "namespace": "b", "uid": "u-2", "resourceVersion": "9"}});
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/b/secrets/regcred",
                respond(200, &users),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(index.read().unwrap().secret("b", "regcred").is_none());
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn an_update_is_conditional_on_the_checked_version() {
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let checked = Checked {
            uid: Some("u-ours".into()),
            resource_version: Some("7".into()),
        };
        let plan = plan_for(WriteKind::Update, checked);
        let server = async {
            let applied = expect(
                &mut api,
                Method::PATCH,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(
                    409,
                    &status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on secrets \"regcred\": the object has been modified; please apply your changes to the latest version and try again",
                        json!({"name": "regcred", "kind": "secrets"}),
                    ),
                ),
            )
            .await;
            assert_eq!(applied["metadata"]["resourceVersion"], "7");
            let users = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "regcred", "namespace": "a", "uid": "u-user", "resourceVersion": "9"}});
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(200, &users),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(
            outcome.written.is_empty(),
            "the user's secret is not taken over"
        );
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_secret_relabelled_to_another_owner_before_an_update_is_left_alone() {
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let checked = Checked {
            uid: Some("u-ours".into()),
            resource_version: Some("7".into()),
        };
        let plan = plan_for(WriteKind::Update, checked);
        let server = async {
            expect(
                &mut api,
                Method::PATCH,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(
                    409,
                    &status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on secrets \"regcred\": the object has been modified",
                        json!({"name": "regcred", "kind": "secrets"}),
                    ),
                ),
            )
            .await;
            // Now irsa's, of irsa's type, but written for another ClusterPullSecret.
            let other = irsa_k8s::ClusterPullSecret::new("other", cps().spec);
            let subject = Subject::cluster(&other);
            let theirs = plan::desired_secret(&subject.owner, subject.spec, "a", &credential());
            let theirs = stored(
                &serde_json::to_value(theirs.to_secret()).unwrap(),
                "u-2",
                "9",
            );
            expect(
                &mut api,
                Method::GET,
                "/api/v1/namespaces/a/secrets/regcred",
                respond(200, &theirs),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(outcome.written.is_empty());
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_service_account_gone_when_patched_is_forgotten_by_the_index() {
        // A patch answered 404: the ServiceAccount is gone. The index forgets it at once, so
        // that the next round (a bounded cleanup requeues at once) does not plan the same patch
        // again while the watch's delete event is still on its way.
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let sa: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "default", "namespace": "a", "resourceVersion": "3"},
            "imagePullSecrets": [{"name": "regcred"}],
        }))
        .unwrap();
        index.write().unwrap().apply_service_account(&sa);
        let patch = plan::ServiceAccountPatch {
            namespace: "a".into(),
            name: "default".into(),
            add: vec![],
            remove: vec!["regcred".into()],
            observed: vec!["regcred".into()],
            resource_version: Some("3".into()),
            added: None,
            has_annotations: false,
            has_record: false,
        };
        let plan = Plan {
            service_account_patches: vec![patch],
            ..Plan::default()
        };
        let server = async {
            expect(
                &mut api,
                Method::PATCH,
                "/api/v1/namespaces/a/serviceaccounts/default",
                respond(
                    404,
                    &status(
                        404,
                        "NotFound",
                        "serviceaccounts \"default\" not found",
                        json!({"name": "default", "kind": "serviceaccounts"}),
                    ),
                ),
            )
            .await;
        };
        let no_stamp = BTreeMap::new();
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), server);
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(
            index
                .read()
                .unwrap()
                .service_account("a", "default")
                .is_none(),
            "the index still holds a ServiceAccount the API server said is gone"
        );
        // One made again under the name, already indexed at a newer version, stays.
        let mut again = sa.clone();
        again.metadata.resource_version = Some("5".into());
        index.write().unwrap().apply_service_account(&again);
        let (outcome, ()) = tokio::join!(writer.execute(&index, &plan, &no_stamp, 4), async {
            expect(
                &mut api,
                Method::PATCH,
                "/api/v1/namespaces/a/serviceaccounts/default",
                respond(404, &status(404, "NotFound", "gone", json!({}))),
            )
            .await;
        });
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert!(
            index
                .read()
                .unwrap()
                .service_account("a", "default")
                .is_some()
        );
        no_more_requests(writer, api).await;
    }

    /// A plan patching the ServiceAccount `default` of each of `namespaces`.
    fn patches_in(namespaces: &[&str]) -> Plan {
        let service_account_patches = namespaces
            .iter()
            .map(|ns| plan::ServiceAccountPatch {
                namespace: (*ns).to_owned(),
                name: "default".into(),
                add: vec!["regcred".into()],
                remove: vec![],
                observed: vec![],
                resource_version: Some("3".into()),
                added: None,
                has_annotations: false,
                has_record: false,
            })
            .collect();
        Plan {
            service_account_patches,
            ..Plan::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn service_account_patches_go_out_write_concurrency_at_a_time() {
        // A round patching a tenant's many ServiceAccounts one at a time took one round trip
        // per ServiceAccount. They go out `concurrency` at a time: the mock holds every answer
        // back until that many requests are in flight (one at a time, the second would never
        // come), and sees no more than that many before it answers.
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let index = RwLock::new(Index::new());
        let namespaces = ["a", "b", "c", "d", "e", "f"];
        let plan = patches_in(&namespaces);
        let no_stamp = BTreeMap::new();
        let concurrency = 3;
        let server = async {
            let mut seen = Vec::new();
            while seen.len() < namespaces.len() {
                let mut batch = Vec::new();
                while batch.len() < concurrency {
                    let (req, send) =
                        tokio::time::timeout(Duration::from_secs(5), api.next_request())
                            .await
                            .unwrap_or_else(|_| {
                                panic!(
                                    "only {} patch(es) in flight, want {concurrency} at once",
                                    batch.len()
                                )
                            })
                            .expect("a request");
                    assert_eq!(req.method(), Method::PATCH);
                    batch.push((req.uri().path().to_owned(), send));
                }
                assert!(
                    tokio::time::timeout(Duration::from_secs(5), api.next_request())
                        .await
                        .is_err(),
                    "more than {concurrency} patches in flight"
                );
                for (path, send) in batch {
                    let ns = path
                        .strip_prefix("/api/v1/namespaces/")
                        .and_then(|p| p.split('/').next())
                        .expect("a namespaced path")
                        .to_owned();
                    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns, "resourceVersion": "4"},
                        "imagePullSecrets": [{"name": "regcred"}]});
                    send.send_response(respond(200, &sa));
                    seen.push(ns);
                }
            }
            seen.sort();
            seen
        };
        let (outcome, seen) = tokio::join!(
            writer.execute(&index, &plan, &no_stamp, concurrency),
            server
        );
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert_eq!(seen, namespaces);
        for ns in namespaces {
            let index = index.read().unwrap();
            let sa = index.service_account(ns, "default").expect("indexed");
            assert_eq!(sa.state.image_pull_secrets, ["regcred"]);
        }
        no_more_requests(writer, api).await;
    }

    #[tokio::test]
    async fn a_replica_that_does_not_lead_sends_nothing() {
        let (writer, api) = writer(RateLimiter::new(0.0, 1), Arc::new(AtomicBool::new(false)));
        let index = RwLock::new(Index::new());
        let plan = plan_for(WriteKind::Create, Checked::default());
        let outcome = writer.execute(&index, &plan, &BTreeMap::new(), 4).await;
        assert!(outcome.not_leader);
        assert!(outcome.written.is_empty());
        assert!(outcome.failed.is_empty());
        let e = writer
            .write_status(&cps(), &json!({"status": {}}))
            .await
            .unwrap_err();
        assert!(matches!(e, WriteError::NotLeader), "{e}");
        no_more_requests(writer, api).await;
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_is_checked_after_waiting_for_the_rate_limiter() {
        let leads = leading();
        // One request at once, then one per second.
        let (writer, mut api) = writer(RateLimiter::new(1.0, 1), leads.clone());
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        let answered = stored(&serde_json::to_value(&secret).unwrap(), "u", "1");
        let first = expect(
            &mut api,
            Method::POST,
            "/api/v1/namespaces/a/secrets",
            respond(201, &answered),
        );
        let (created, _) = tokio::join!(writer.create_secret(&secret), first);
        created.unwrap();
        // The second waits a second for the limiter; the lease is lost meanwhile.
        let lose = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            leads.store(false, Ordering::SeqCst);
        };
        let (second, ()) = tokio::join!(writer.create_secret(&secret), lose);
        assert!(matches!(second, Err(WriteError::NotLeader)), "{second:?}");
        no_more_requests(writer, api).await;
    }

    #[tokio::test(start_paused = true)]
    async fn writers_sharing_a_limiter_share_one_budget() {
        // The pull-secret and Argo CD reconcilers each have a writer; `--kube-qps` is one
        // budget for both (it was one each: twice the rate asked for).
        let limiter = Arc::new(RateLimiter::new(1.0, 1));
        let (pull_secrets, mut api_a) = writer(limiter.clone(), leading());
        let (argocd, mut api_b) = writer(limiter, leading());
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        let answered = stored(&serde_json::to_value(&secret).unwrap(), "u", "1");
        let start = tokio::time::Instant::now();
        let first = expect(
            &mut api_a,
            Method::POST,
            "/api/v1/namespaces/a/secrets",
            respond(201, &answered),
        );
        let (created, _) = tokio::join!(pull_secrets.create_secret(&secret), first);
        created.unwrap();
        let second = async {
            let sent = expect(
                &mut api_b,
                Method::POST,
                "/api/v1/namespaces/a/secrets",
                respond(201, &answered),
            )
            .await;
            (sent, tokio::time::Instant::now())
        };
        let (created, (_, sent_at)) = tokio::join!(argocd.create_secret(&secret), second);
        created.unwrap();
        assert!(
            sent_at.duration_since(start) >= Duration::from_millis(990),
            "the other writer's request went after {:?}, within the first's second",
            sent_at.duration_since(start)
        );
        no_more_requests(pull_secrets, api_a).await;
        no_more_requests(argocd, api_b).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_without_an_answer_times_out() {
        let (writer, mut api) = writer(RateLimiter::new(0.0, 1), leading());
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        // The server takes the request and never answers.
        let hang = async {
            let pending = api.next_request().await.expect("a request");
            tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
            drop(pending);
        };
        let (result, ()) = tokio::join!(writer.create_secret(&secret), hang);
        let e = result.unwrap_err();
        assert!(matches!(e, WriteError::TimedOut { .. }), "{e}");
        assert!(e.to_string().contains("secret a/regcred"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_in_flight_is_abandoned_at_the_leadership_deadline() {
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs(5);
        let (writer, mut api) = writer_until(deadline);
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        // The server takes the request and answers only long after the lease is gone.
        let hang = async {
            let pending = api.next_request().await.expect("a request");
            tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
            drop(pending);
        };
        let write = async {
            let result = writer.create_secret(&secret).await;
            (result, tokio::time::Instant::now())
        };
        let ((result, ended), ()) = tokio::join!(write, hang);
        assert!(matches!(result, Err(WriteError::NotLeader)), "{result:?}");
        assert!(
            ended <= deadline,
            "the write was given up {:?} after the deadline",
            ended - deadline
        );
    }

    /// A writer over a mock API server whose claim is `claim` (deadline, term number; `None`:
    /// not leading), changeable while a write is in flight.
    fn writer_with(
        claim: Arc<std::sync::Mutex<Option<(tokio::time::Instant, u64)>>>,
    ) -> (Writer, Api) {
        let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "irsa".into(),
                instance: None,
            },
        );
        let writer = Writer::with_claim(
            client,
            RateLimiter::new(0.0, 1),
            Arc::new(Metrics::default()),
            recorder,
            move || match *claim.lock().unwrap() {
                Some((t, term)) if tokio::time::Instant::now() < t => Term::Until(t, term),
                _ => Term::Ended,
            },
        );
        (writer, api)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_in_flight_goes_on_when_the_term_is_renewed() {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        let answered = stored(&serde_json::to_value(&secret).unwrap(), "u", "1");
        for (renewed_term, expect_ok) in [(1, true), (2, false)] {
            let start = tokio::time::Instant::now();
            let claim = Arc::new(std::sync::Mutex::new(Some((
                start + Duration::from_secs(5),
                1,
            ))));
            let (writer, mut api) = writer_with(claim.clone());
            // The server answers after 8 s; at 3 s the lease is renewed to 15 s (in the same
            // term, or, the second time, in a new one after a loss nobody saw here).
            let server = async {
                let (_req, send) = api.next_request().await.expect("a request");
                tokio::time::sleep(Duration::from_secs(8)).await;
                send.send_response(respond(201, &answered));
            };
            let renew = async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                *claim.lock().unwrap() = Some((start + Duration::from_secs(15), renewed_term));
            };
            let (result, (), ()) = tokio::join!(writer.create_secret(&secret), server, renew);
            if expect_ok {
                assert!(result.is_ok(), "renewed in the same term: {result:?}");
                assert_eq!(start.elapsed(), Duration::from_secs(8));
            } else {
                assert!(matches!(result, Err(WriteError::NotLeader)), "{result:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_cannot_finish_before_the_deadline_is_not_sent() {
        let deadline = tokio::time::Instant::now() + MIN_WRITE_WINDOW / 2;
        let (writer, api) = writer_until(deadline);
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "a"}
        }))
        .unwrap();
        let result = writer.create_secret(&secret).await;
        assert!(matches!(result, Err(WriteError::NotLeader)), "{result:?}");
        no_more_requests(writer, api).await;
    }
}
