//! The reconciler: for one ClusterPullSecret or PullSecret, keep irsa's finalizer on it, then
//! [`resolve`] the spec and identity, [`obtain`] the shared credential (refreshing it when
//! due), [`converge`] the cluster to the plan made against the [`Index`], and [`report`]
//! (status, Events, metrics) when to come back. Every request that changes the cluster goes
//! through the [`Writer`], which refuses to write unless this replica leads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use irsa_aws::{
    ChainguardMethod, Clock, Identity, RegistryTarget, TokenRequestSource, TokenRequester,
};
use irsa_core::registry::Registry;
use irsa_core::time::rfc3339;
use irsa_k8s::validation::{RegistryTarget as SpecTarget, Validated, ValidatedIdentity};
use irsa_k8s::{ClusterPullSecret, PullSecret, PullSecretStatus, TargetProblem};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::credentials::{self, Credential, CredentialStore, Obtained};
use crate::index::Index;
use crate::lease::Leadership;
use crate::metrics::Metrics;
use crate::plan::{self, Owner, Plan, Subject, View, failure_backoff};
use crate::provenance::{
    self, CREDENTIAL_MAC_ANNOTATION, CredentialKey, EXPIRES_AT_ANNOTATION, ISSUED_AT_ANNOTATION,
    KEY_SECRET_NAME, KeyError, Sealed,
};
use crate::ratelimit::RateLimiter;
use crate::status::{self, Observation};
use crate::writer::{Outcome, WriteError, Writer, note_existing};

pub use irsa_core::names::FINALIZER;
/// How long after a failure to load the credential key irsa tries again.
const KEY_RETRY: Duration = Duration::from_secs(30);
/// How many of a resource's written secrets are looked at for a credential to adopt.
const ADOPT_CANDIDATES: usize = 3;
/// The audience of service-account tokens when the service account names none.
pub const DEFAULT_AUDIENCE: &str = irsa_core::names::STS_AUDIENCE;

/// Why a reconciliation failed (it is retried with backoff). Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error(transparent)]
    Write(WriteError),
    /// Some targets could not be written; the rest were.
    #[error("{failed} of the resource's writes failed, first: {first}")]
    Writes {
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
    /// This replica does not lead (any more): nothing is written.
    #[error("not the leader: writes are left to the replica holding the lease")]
    NotLeader,
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader => Error::NotLeader,
            e => Error::Write(e),
        }
    }
}

/// Settings of the reconciler.
#[derive(Clone)]
pub struct ReconcilerConfig {
    /// How often every resource is looked at even without events (no write unless needed).
    pub resync: Duration,
    /// Parallel writes within one resource's fan-out.
    pub write_concurrency: usize,
    /// Lifetime requested for TokenRequest tokens.
    pub token_expiration: Duration,
    /// The wall clock (injectable so tests and the demo can move time).
    pub clock: Arc<dyn Clock>,
    /// The controller's own namespace, where the credential key Secret lives.
    pub key_namespace: String,
    /// Client-side requests per second (0: unlimited), which bounds a round of writes.
    pub qps: f64,
}

/// Longest a round of secret writes should take at the rate limit: a new namespace waits at
/// most about this long behind a refresh of the same resource.
const ROUND: Duration = Duration::from_millis(400);
/// Most changes in one round at a client-side rate limit, and in the first round at an
/// unlimited rate.
const MAX_ROUND_WRITES: usize = 500;
/// Most changes in one round at an unlimited rate once the pace of the resource's writes is
/// known ([`ReconcilerConfig::chunk_at`]).
const MAX_UNLIMITED_ROUND_WRITES: usize = 5_000;

impl ReconcilerConfig {
    /// Changes (urgent secret writes, ServiceAccount patches, routine secret writes, then
    /// deletions) per round:
    /// [`ROUND`] worth at `qps`, at least two batches in flight, at
    /// most [`MAX_ROUND_WRITES`].
    pub fn chunk(&self) -> usize {
        self.chunk_at(None)
    }

    /// [`ReconcilerConfig::chunk`], given the pace of the resource's last round. It counts
    /// only without a rate limit (`qps` 0): a round is then [`ROUND`] worth at that pace,
    /// between [`MAX_ROUND_WRITES`] (also the first round's size) and
    /// [`MAX_UNLIMITED_ROUND_WRITES`], and at most twice the round measured (a round of cheap
    /// answers cannot make the next one many times longer). Each round plans over every
    /// namespace the resource serves, so rounds as small as at a rate limit would spend more
    /// time planning a large fan-out than writing it; a new namespace still waits for about
    /// one [`ROUND`].
    pub fn chunk_at(&self, pace: Option<Pace>) -> usize {
        let floor = self.write_concurrency.max(1).saturating_mul(2);
        // Truncation is intended: a whole number of writes.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let worth = |per_second: f64| (per_second * ROUND.as_secs_f64()) as usize;
        if self.qps > 0.0 {
            worth(self.qps).clamp(floor.min(MAX_ROUND_WRITES), MAX_ROUND_WRITES)
        } else {
            let first = MAX_ROUND_WRITES.max(floor);
            match pace {
                Some(p) if p.per_second.is_finite() && p.per_second > 0.0 => worth(p.per_second)
                    .clamp(first, MAX_UNLIMITED_ROUND_WRITES.max(first))
                    .min(p.changes.saturating_mul(2).max(first)),
                _ => first,
            }
        }
    }
}

/// How fast a resource's last round of changes went, all of them answered and none failed
/// ([`ReconcilerConfig::chunk_at`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Changes per second.
    pub per_second: f64,
    /// Changes in that round.
    pub changes: usize,
}

impl std::fmt::Debug for ReconcilerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcilerConfig")
            .field("resync", &self.resync)
            .field("write_concurrency", &self.write_concurrency)
            .field("token_expiration", &self.token_expiration)
            .field("key_namespace", &self.key_namespace)
            .finish_non_exhaustive()
    }
}

/// What the reconciler last reported for a resource, so that a resync repeats no Event.
#[derive(Debug, Default)]
struct Reported {
    conflicts: BTreeSet<String>,
    invalid: Option<String>,
    refresh_error: Option<String>,
    failures: u32,
    /// Secrets written by the rounds of the current fan-out so far.
    written: usize,
    /// When `report` last wrote the status (wall-clock seconds).
    status_written_at: Option<i64>,
    /// Namespaces whose writes failed, each retried on its own schedule.
    backoff: NamespaceBackoff,
    /// The namespaces this replica wrote the current content into ([`plan::Written`]): their
    /// rewrites (a tenant's edits) wait behind other namespaces' writes.
    wrote: plan::Written,
    /// What the last round of the finalizer's cleanup left for the next.
    cleanup_left: Option<usize>,
    /// The pace of the current fan-out's last round of at least two batches of changes, all
    /// answered and none failed ([`ReconcilerConfig::chunk_at`]); none between fan-outs.
    pace: Option<Pace>,
}

/// A namespace whose last write failed: when to try it again, and why it failed.
#[derive(Debug, Clone)]
struct Failing {
    failures: u32,
    retry_at: tokio::time::Instant,
    message: String,
}

/// Per-namespace backoff of one resource's writes: a namespace whose writes fail (a tenant's
/// object in the way, an admission webhook's denial, a quota) is held back on its own
/// exponential schedule and reported by name, while every other namespace of the resource is
/// written as usual. Backing the whole resource off instead would let one tenant stop the
/// refreshes of every other namespace.
#[derive(Debug, Default)]
struct NamespaceBackoff {
    failing: BTreeMap<String, Failing>,
}

impl NamespaceBackoff {
    /// Namespaces not to write into at `now`.
    fn held_back(&self, now: tokio::time::Instant) -> BTreeSet<String> {
        self.failing
            .iter()
            .filter(|(_, f)| now < f.retry_at)
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// Records a round: the namespaces in `failed` back off once more, the other `attempted`
    /// ones (written, or found not to need it) are cleared.
    fn record(
        &mut self,
        attempted: &BTreeSet<String>,
        failed: &[(String, String)],
        now: tokio::time::Instant,
    ) {
        let failed_ns: BTreeSet<&str> = failed.iter().map(|(ns, _)| ns.as_str()).collect();
        self.failing
            .retain(|ns, _| !attempted.contains(ns) || failed_ns.contains(ns.as_str()));
        for (ns, message) in failed {
            let entry = self.failing.entry(ns.clone()).or_insert_with(|| Failing {
                failures: 0,
                retry_at: now,
                message: String::new(),
            });
            if entry.retry_at > now {
                // Several failures of one namespace in one round count once.
                continue;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.retry_at = now + failure_backoff(entry.failures, fastrand::f64());
            entry.message.clone_from(message);
        }
    }

    /// The failing namespaces.
    fn namespaces(&self) -> BTreeSet<String> {
        self.failing.keys().cloned().collect()
    }

    /// Keeps only namespaces that are still targets.
    fn retain_targets(&mut self, is_target: impl Fn(&str) -> bool) {
        self.failing.retain(|ns, _| is_target(ns));
    }

    /// How long until the first held-back namespace is due again.
    fn next_retry(&self, now: tokio::time::Instant) -> Option<Duration> {
        self.failing
            .values()
            .map(|f| f.retry_at.saturating_duration_since(now))
            .min()
    }

    /// The failing namespaces, as problems for the status.
    fn problems(&self, now: tokio::time::Instant) -> Vec<TargetProblem> {
        self.failing
            .iter()
            .map(|(ns, f)| TargetProblem {
                namespace: ns.clone(),
                reason: "WriteFailed".to_owned(),
                message: format!(
                    "{} (this namespace is retried in {}s; the others are written as usual)",
                    f.message,
                    f.retry_at.saturating_duration_since(now).as_secs()
                ),
            })
            .collect()
    }
}

/// Least seconds between status writes while rounds of a fan-out are left: the counts and
/// problems move every round, and a write per round competes for the rate limit with the
/// urgent writes of the next one.
const PROGRESS_STATUS_EVERY: i64 = 5;

/// Whether `status` is worth a request over `previous`. When the fan-out is complete
/// (`left == 0`), any change is; while rounds are left, only a change of the generation, the
/// credential's times or a condition's status or reason is at once, anything else (counts,
/// problems, messages, next refresh) at most every [`PROGRESS_STATUS_EVERY`] seconds.
fn status_due(
    previous: &PullSecretStatus,
    status: &PullSecretStatus,
    left: usize,
    last_written: Option<i64>,
    now: i64,
) -> bool {
    if status == previous {
        return false;
    }
    if left == 0 {
        return true;
    }
    let shape = |s: &PullSecretStatus| {
        let conditions: Vec<_> = s
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        (
            s.observed_generation,
            s.expires_at.clone(),
            s.last_refresh_time.clone(),
            conditions,
        )
    };
    if shape(previous) != shape(status) {
        return true;
    }
    last_written.is_none_or(|at| now.saturating_sub(at) >= PROGRESS_STATUS_EVERY)
}

/// Everything reconciliations share.
pub struct Context {
    index: Arc<RwLock<Index>>,
    credentials: CredentialStore,
    metrics: Arc<Metrics>,
    writer: Writer,
    config: ReconcilerConfig,
    requester: Arc<dyn TokenRequester>,
    key: tokio::sync::Mutex<KeySlot>,
    /// What is kept per resource, behind one lock.
    tracking: Arc<Mutex<Tracking>>,
}

/// What is kept per resource: what was reported, the credential-store key it uses, and the
/// reconciles in flight. A resource forgotten (deleted) while a reconcile of it runs is
/// marked in its flight, so that the reconcile's later reports, credential use and metric
/// series are dropped instead of kept forever for a resource that is gone.
#[derive(Default)]
struct Tracking {
    reported: HashMap<Owner, Reported>,
    /// The credential-store key each live resource last used, so that slots of deleted
    /// resources (or of identities no longer used) are freed.
    store_keys: HashMap<Owner, String>,
    /// Numbers each set of `store_keys` handed to the credential store, in the order taken.
    store_keys_taken: u64,
    flights: HashMap<Owner, Flight>,
}

/// The reconciles of one resource in flight (kube-runtime runs one per object at a time; a
/// new uid under the same name replaces the entry).
struct Flight {
    uid: Option<String>,
    running: usize,
    /// The resource was forgotten since the flight began: keep nothing for it.
    forgotten: bool,
}

impl Tracking {
    /// Whether state for `owner` may be kept: not while a reconcile of a forgotten resource is
    /// in flight.
    fn may_keep(&self, owner: &Owner) -> bool {
        self.flights.get(owner).is_none_or(|f| !f.forgotten)
    }
}

/// A reconcile in flight ([`Context::begin`]); ends when dropped.
pub struct InFlight {
    tracking: Arc<Mutex<Tracking>>,
    owner: Owner,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut t = self.tracking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = t.flights.get_mut(&self.owner) {
            f.running = f.running.saturating_sub(1);
            if f.running == 0 {
                t.flights.remove(&self.owner);
            }
        }
    }
}

/// The credential key once loaded, or when loading it last failed.
#[derive(Default)]
struct KeySlot {
    key: Option<Arc<CredentialKey>>,
    failed_at: Option<Instant>,
}

/// Why the credential key is not available.
#[derive(Debug, thiserror::Error)]
enum KeyLoadError {
    #[error("failed to read or create secret {namespace}/{KEY_SECRET_NAME}: {source}")]
    Api {
        namespace: String,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl Context {
    /// A context; its [`Writer`] writes through `client`, limited by `limiter`, while
    /// `leadership` is held.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        index: Arc<RwLock<Index>>,
        credentials: CredentialStore,
        metrics: Arc<Metrics>,
        leadership: Leadership,
        config: ReconcilerConfig,
        limiter: impl Into<Arc<RateLimiter>>,
        requester: Arc<dyn TokenRequester>,
        recorder: Recorder,
    ) -> Self {
        Self {
            index,
            credentials,
            writer: Writer::new(client, limiter, metrics.clone(), leadership, recorder),
            metrics,
            config,
            // A hanging TokenRequest would hold up every namespace sharing the credential.
            requester: Arc::new(credentials::BoundedTokenRequester::new(
                requester,
                credentials::TOKEN_REQUEST_TIMEOUT,
            )),
            key: tokio::sync::Mutex::new(KeySlot::default()),
            tracking: Arc::default(),
        }
    }

    /// Runs for the life of the controller: each time `leading` turns false (the Lease lost
    /// or released, or its deadline passed), drops the credentials and the credential key this
    /// replica held, so that a later term starts clean. Returns when the sender is gone
    /// (dropping them then too). A wake-up that sees `true` while `true` was seen before
    /// means a drop was merged into it (a watch keeps only the latest value): dropped too.
    pub async fn forget_when_leadership_ends(
        &self,
        mut leading: tokio::sync::watch::Receiver<bool>,
    ) {
        // Not marked seen: a change sent before this task ran is still acted on.
        let mut was = *leading.borrow();
        loop {
            if leading.changed().await.is_err() {
                self.forget().await;
                return;
            }
            let leads = *leading.borrow_and_update();
            if !leads || was {
                self.forget().await;
            }
            if leads {
                self.credentials.resume();
            }
            was = leads;
        }
    }

    async fn forget(&self) {
        self.credentials.clear();
        *self.key.lock().await = KeySlot::default();
        for r in self.tracking().reported.values_mut() {
            r.pace = None;
        }
        tracing::info!("not leading: dropped the cached registry credentials");
    }

    fn tracking(&self) -> std::sync::MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reconcile of `owner` (of `uid`) begins: counted, and watched for the resource being
    /// forgotten meanwhile. Call it when the reconcile is dispatched, and keep the guard until
    /// the reconcile's future ends: its last step, [`Context::finished`], is the last that
    /// keeps anything for the resource. kube-runtime calls [`error_policy`] only after that
    /// future, when the guard is gone; that is sound because the error policy only reads (the
    /// failure count) and keeps nothing.
    pub fn begin(&self, owner: &Owner, uid: Option<&str>) -> InFlight {
        let mut t = self.tracking();
        let flight = t.flights.entry(owner.clone()).or_insert_with(|| Flight {
            uid: uid.map(str::to_owned),
            running: 0,
            forgotten: false,
        });
        if flight.uid.as_deref() != uid {
            // A new object under the same name: it starts afresh.
            flight.uid = uid.map(str::to_owned);
            flight.forgotten = false;
        }
        flight.running += 1;
        if t.may_keep(owner) {
            self.metrics.reconciling(owner);
        }
        InFlight {
            tracking: self.tracking.clone(),
            owner: owner.clone(),
        }
    }

    /// Records the credential-store key `owner` uses now (`None`: it is gone) and frees the
    /// credential slots no live resource uses any more.
    fn use_store_key(&self, owner: &Owner, key: Option<&str>) {
        let mut t = self.tracking();
        let key = key.filter(|_| t.may_keep(owner));
        let changed = match key {
            Some(k) => t.store_keys.insert(owner.clone(), k.to_owned()).as_deref() != Some(k),
            None => t.store_keys.remove(owner).is_some(),
        };
        if changed {
            let keep: std::collections::HashSet<String> = t.store_keys.values().cloned().collect();
            t.store_keys_taken += 1;
            let taken = t.store_keys_taken;
            drop(t);
            // Another reconcile may hand over a newer set first: the store keeps the newest.
            self.credentials.retain(taken, keep);
        }
    }

    /// Forgets what is kept for a deleted resource: what was reported, its credential slot
    /// (unless another resource uses it) and its metric series; a reconcile of it still in
    /// flight keeps none of them afterwards.
    pub fn forget_resource(&self, owner: &Owner) {
        let mut t = self.tracking();
        if let Some(f) = t.flights.get_mut(owner) {
            f.forgotten = true;
        }
        t.reported.remove(owner);
        self.metrics.forget(owner);
        drop(t);
        self.use_store_key(owner, None);
    }

    /// Forgets every resource for which `live` is false (see [`Self::forget_resource`]): after
    /// a watch's re-list, what was deleted meanwhile without a delete event.
    pub fn retain_resources(&self, live: impl Fn(&Owner) -> bool) {
        let mut owners = self.owners();
        // A resource with a reconcile in flight but nothing kept yet is marked too.
        owners.extend(self.tracking().flights.keys().cloned());
        for owner in owners.iter().filter(|o| !live(o)) {
            self.forget_resource(owner);
        }
    }

    /// How many resources have state kept here (reported, a credential slot, metric series).
    pub fn tracked(&self) -> usize {
        self.owners().len()
    }

    fn owners(&self) -> BTreeSet<Owner> {
        let t = self.tracking();
        let mut owners: BTreeSet<Owner> = self.metrics.owners().into_iter().collect();
        owners.extend(t.reported.keys().cloned());
        owners.extend(t.store_keys.keys().cloned());
        owners
    }

    /// Sets the expiry series of `owner` (unless it was forgotten meanwhile).
    fn set_expiry(&self, owner: &Owner, expires_at: i64) {
        let t = self.tracking();
        if t.may_keep(owner) {
            self.metrics.set_expiry(owner, expires_at);
        }
    }

    /// A reconcile of `owner` ended: counted, and its failures counted for the backoff
    /// ([`error_policy`] reads them).
    fn finished(&self, owner: &Owner, result: &Result<Action, Error>) {
        self.metrics.reconciled(owner, result.is_ok());
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, Error::NotLeader))
        {
            self.reported(owner, |r| r.failures = r.failures.saturating_add(1));
        }
    }

    /// The failures of `owner` in a row so far.
    fn failures(&self, owner: &Owner) -> u32 {
        self.tracking()
            .reported
            .get(owner)
            .map_or(0, |r| r.failures)
    }

    /// The credential key: loaded from (or, first, created as) the key Secret in the
    /// controller's namespace. `None` (logged, retried after [`KEY_RETRY`]) when it cannot be
    /// had: then nothing is adopted, and secrets are written unsealed.
    async fn credential_key(&self) -> Option<Arc<CredentialKey>> {
        let mut slot = self.key.lock().await;
        if let Some(key) = &slot.key {
            return Some(key.clone());
        }
        if slot.failed_at.is_some_and(|t| t.elapsed() < KEY_RETRY) {
            return None;
        }
        match self.load_key().await {
            Ok(key) => {
                let key = Arc::new(key);
                // Not kept once the term ended: the next term loads it again.
                if !self.credentials.ended() {
                    *slot = KeySlot {
                        key: Some(key.clone()),
                        failed_at: None,
                    };
                }
                Some(key)
            }
            Err(error) => {
                slot.failed_at = Some(Instant::now());
                if !matches!(
                    error,
                    KeyLoadError::Api {
                        source: WriteError::NotLeader,
                        ..
                    }
                ) {
                    tracing::warn!(%error, "no credential key: credentials in written secrets are not reused but exchanged afresh, and secrets are written without a seal");
                }
                None
            }
        }
    }

    async fn load_key(&self) -> Result<CredentialKey, KeyLoadError> {
        let namespace = &self.config.key_namespace;
        let api = |source| KeyLoadError::Api {
            namespace: namespace.clone(),
            source,
        };
        if let Some(secret) = self
            .writer
            .get_secret(namespace, KEY_SECRET_NAME)
            .await
            .map_err(api)?
        {
            return Ok(CredentialKey::from_secret(&secret, namespace)?);
        }
        let (key, secret) = CredentialKey::generate(namespace)?;
        match self.writer.create_secret(&secret).await {
            Ok(_) => {
                tracing::info!(namespace = %namespace, name = KEY_SECRET_NAME, "created the credential key");
                Ok(key)
            }
            // Another replica was first: use its key.
            Err(e) if e.code() == Some(409) => {
                let secret = self
                    .writer
                    .get_secret(namespace, KEY_SECRET_NAME)
                    .await
                    .map_err(api)?
                    .ok_or(KeyError::Invalid {
                        namespace: namespace.clone(),
                    })?;
                Ok(CredentialKey::from_secret(&secret, namespace)?)
            }
            Err(e) => Err(api(e)),
        }
    }

    fn now(&self) -> i64 {
        self.config
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on what was reported for `owner`; on a throwaway when `owner` was forgotten
    /// while a reconcile of it is in flight.
    fn reported<T>(&self, owner: &Owner, f: impl FnOnce(&mut Reported) -> T) -> T {
        let mut t = self.tracking();
        if !t.may_keep(owner) {
            return f(&mut Reported::default());
        }
        f(t.reported.entry(owner.clone()).or_default())
    }
}

/// Reconciles a ClusterPullSecret.
pub async fn reconcile_cluster(
    obj: Arc<ClusterPullSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    reconcile(&ctx, &*obj, Some(Subject::cluster(&obj)), || obj.validate()).await
}

/// Reconciles a PullSecret.
pub async fn reconcile_namespaced(
    obj: Arc<PullSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    reconcile(&ctx, &*obj, Subject::namespaced(&obj), || obj.validate()).await
}

/// Where a resource stands with irsa's finalizer.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Live without the finalizer: add it with this patch first (the patch's own event
    /// triggers the next reconciliation).
    AddFinalizer(json_patch::Patch),
    /// Live with the finalizer.
    Apply,
    /// Being deleted with the finalizer: clean up, then remove it with this patch.
    Cleanup(json_patch::Patch),
    /// Being deleted, the finalizer gone: nothing to do.
    Done,
}

/// The phase of an object with `meta`. The patches test the list they change, so that a
/// concurrent change to the finalizers fails the patch (retried) instead of clobbering it.
fn phase(meta: &ObjectMeta) -> Phase {
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let ours = finalizers.iter().position(|f| f == FINALIZER);
    let patch = |ops: serde_json::Value| {
        // Built from literals of the right shape: cannot fail.
        serde_json::from_value::<json_patch::Patch>(ops).unwrap_or(json_patch::Patch(Vec::new()))
    };
    match (ours, meta.deletion_timestamp.is_some()) {
        (Some(_), false) => Phase::Apply,
        (Some(i), true) => {
            let path = format!("/metadata/finalizers/{i}");
            Phase::Cleanup(patch(json!([
                {"op": "test", "path": path, "value": FINALIZER},
                {"op": "remove", "path": path},
            ])))
        }
        (None, false) if finalizers.is_empty() => Phase::AddFinalizer(patch(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]))),
        (None, false) => Phase::AddFinalizer(patch(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]))),
        (None, true) => Phase::Done,
    }
}

async fn reconcile<K>(
    ctx: &Context,
    obj: &K,
    subject: Option<Subject<'_>>,
    validate: impl FnOnce() -> Result<Validated, irsa_k8s::ValidationErrors>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !ctx.writer.leads() {
        return Ok(Action::await_change());
    }
    // The API server always sets a PullSecret's namespace.
    let Some(subject) = subject else {
        return Ok(Action::await_change());
    };
    let result = match phase(obj.meta()) {
        Phase::AddFinalizer(patch) => ctx
            .writer
            .patch_finalizers(obj, patch)
            .await
            .map(|()| Action::await_change())
            .map_err(Error::from),
        Phase::Apply => apply(ctx, obj, &subject, validate()).await,
        Phase::Cleanup(patch) => match cleanup(ctx, obj.meta(), &subject).await {
            // Rounds are left: the finalizer stays, and the next round follows at once, or
            // after a pause when the round found more than the last one left.
            Ok(Cleanup::Left { grew: false }) => Ok(Action::requeue(Duration::ZERO)),
            Ok(Cleanup::Left { grew: true }) => Ok(Action::requeue(CLEANUP_PAUSE)),
            Ok(Cleanup::Done) => ctx
                .writer
                .patch_finalizers(obj, patch)
                .await
                .map(|()| Action::await_change())
                .map_err(Error::from),
            Err(e) => Err(e),
        },
        Phase::Done => {
            // Deleted with the finalizer gone (removed by hand): nothing of it is kept.
            ctx.forget_resource(&subject.owner);
            Ok(Action::await_change())
        }
    };
    ctx.finished(&subject.owner, &result);
    result
}

/// How long to wait after a failed reconciliation: exponential per resource, reset on success.
pub fn error_policy<K: Resource>(obj: &K, error: &Error, ctx: &Context) -> Action {
    if matches!(error, Error::NotLeader) {
        return Action::await_change();
    }
    let owner = owner_of(obj);
    // Counted as the reconcile ended (`Context::finished`), while it was still in flight.
    let failures = ctx.failures(&owner).max(1);
    let wait = failure_backoff(failures, fastrand::f64());
    tracing::warn!(resource = %owner, %error, retry_in = ?wait, "reconciliation failed");
    Action::requeue(wait)
}

/// The resource `obj` as an [`Owner`].
pub(crate) fn owner_of<K: Resource>(obj: &K) -> Owner {
    let name = obj.meta().name.clone().unwrap_or_default();
    match &obj.meta().namespace {
        Some(namespace) => Owner::Namespaced {
            namespace: namespace.clone(),
            name,
        },
        None => Owner::Cluster { name },
    }
}

async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    match ctx.writer.publish(&event, &obj.object_ref(&())).await {
        Ok(()) | Err(WriteError::NotLeader) => {}
        Err(error) => tracing::warn!(%error, reason, "failed to publish an Event"),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Converts a validated registry into the pipeline's target.
fn pipeline_target(r: &irsa_k8s::validation::ValidatedRegistry) -> RegistryTarget {
    let (registry, chainguard_identity, chainguard_method) = match &r.target {
        SpecTarget::Ecr(e) => (Registry::Ecr(e.clone()), None, ChainguardMethod::default()),
        SpecTarget::EcrPublic => (Registry::EcrPublic, None, ChainguardMethod::default()),
        SpecTarget::Chainguard { identity, method } => (
            Registry::Chainguard,
            Some(identity.clone()),
            match method {
                irsa_k8s::ChainguardMethod::GetCallerIdentity => {
                    ChainguardMethod::GetCallerIdentity
                }
                irsa_k8s::ChainguardMethod::WebIdentityToken => ChainguardMethod::WebIdentityToken,
            },
        ),
    };
    RegistryTarget {
        host: r.host.clone(),
        registry,
        chainguard_identity,
        chainguard_method,
    }
}

/// The identity a validated spec names, resolved against the indexed service account; the
/// string is the token audience (empty for the ambient identity).
fn resolve_identity(
    ctx: &Context,
    validated: &irsa_k8s::validation::Validated,
) -> Result<(Identity, String), String> {
    let session_duration = validated.session_duration;
    match &validated.identity {
        ValidatedIdentity::Ambient { role_arn } => Ok((
            Identity::Ambient {
                chained_role: role_arn.clone(),
                session_duration,
            },
            String::new(),
        )),
        ValidatedIdentity::ServiceAccount {
            namespace,
            name,
            role_arn,
        } => {
            let index = ctx.index();
            let sa = index.service_account(namespace, name).ok_or_else(|| {
                format!(
                    "service account {namespace}/{name} (spec.identity.serviceAccount) does not exist: \
                     create it with the annotation eks.amazonaws.com/role-arn, or name another"
                )
            })?;
            let role = match role_arn {
                Some(r) => r.clone(),
                None => {
                    let annotations: BTreeMap<String, String> = sa
                        .role_arn
                        .iter()
                        .map(|r| (crate::index::ROLE_ARN_ANNOTATION.to_owned(), r.clone()))
                        .collect();
                    irsa_aws::sts::role_from_annotations(namespace, name, &annotations)
                        .map_err(|e| format!("{e}; or set spec.identity.roleArn"))?
                }
            };
            let audience = sa
                .audience
                .clone()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
            let source = TokenRequestSource::new(ctx.requester.clone(), namespace, name)
                .with_audiences(vec![audience.clone()])
                .with_expiration(ctx.config.token_expiration);
            Ok((
                Identity::WebIdentity {
                    role_arn: role,
                    token_source: Arc::new(source),
                    session_name: irsa_aws::sts::session_name_for(namespace, name),
                    session_duration,
                },
                audience,
            ))
        }
    }
}

/// A valid spec, resolved.
struct Resolved {
    targets: Vec<RegistryTarget>,
    /// The identity and its credential-store key (identity, audience and registries), or why
    /// it cannot be used.
    identity: Result<(Identity, String), String>,
}

/// What the credential came to.
struct Fresh {
    /// The credential to write, if one is held and unexpired.
    credential: Option<Arc<Credential>>,
    /// Why the refresh failed, if it did.
    refresh_error: Option<String>,
    /// When to look again.
    requeue: Duration,
}

/// What converging did, and the plan as it stands after it.
struct Converged {
    outcome: Outcome,
    after: Plan,
    /// Writes left for the next round.
    left: usize,
}

/// One reconciliation of a live resource.
async fn apply<K>(
    ctx: &Context,
    obj: &K,
    subject: &Subject<'_>,
    validated: Result<Validated, irsa_k8s::ValidationErrors>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
{
    let now = ctx.now();
    let Some(resolved) = resolve(ctx, obj, subject, validated, now).await? else {
        return Ok(Action::await_change());
    };
    let fresh = obtain(ctx, obj, subject, &resolved, now).await;
    let store_key = resolved.identity.as_ref().ok().map(|(_, key)| key.as_str());
    let converged = converge(ctx, subject, fresh.credential.as_deref(), store_key).await;
    report(ctx, obj, subject, &fresh, converged, now).await
}

/// Validates the spec and resolves its identity. An invalid spec is reported (status and one
/// Event per distinct error) and yields `None`: nothing is written until it changes.
async fn resolve<K>(
    ctx: &Context,
    obj: &K,
    subject: &Subject<'_>,
    validated: Result<Validated, irsa_k8s::ValidationErrors>,
    now: i64,
) -> Result<Option<Resolved>, Error>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
{
    let owner = &subject.owner;
    let validated = match validated {
        Ok(v) => v,
        Err(errors) => {
            let message = errors.to_string();
            let new = ctx.reported(owner, |r| {
                let new = r.invalid.as_deref() != Some(message.as_str());
                r.invalid = Some(message.clone());
                new
            });
            if new {
                publish(ctx, obj, EventType::Warning, "InvalidSpec", message.clone()).await;
            }
            let previous = obj.status().cloned().unwrap_or_default();
            let generation = obj.meta().generation;
            let counts = irsa_k8s::TargetCounts::new(0, 0, 0, 0);
            let status = PullSecretStatus {
                conditions: status::conditions(
                    &previous.conditions,
                    &Observation {
                        now,
                        generation,
                        expires_at: None,
                        refresh_error: None,
                        invalid: Some(&message),
                        counts: &counts,
                    },
                ),
                observed_generation: generation,
                ..previous.clone()
            };
            write_status(ctx, obj, &previous, status).await?;
            return Ok(None);
        }
    };
    ctx.reported(owner, |r| r.invalid = None);
    let targets: Vec<RegistryTarget> = validated.registries.iter().map(pipeline_target).collect();
    let identity = resolve_identity(ctx, &validated).map(|(identity, audience)| {
        let key = format!("{}\u{1f}{audience}", credentials::key(&identity, &targets));
        ctx.use_store_key(owner, Some(&key));
        (identity, key)
    });
    Ok(Some(Resolved { targets, identity }))
}

/// The shared credential for the resolved identity and registries: held, adopted from the
/// written secrets, or refreshed; a failed refresh is reported (one Event per upstream attempt
/// or new error, none while backing off).
async fn obtain<K>(
    ctx: &Context,
    obj: &K,
    subject: &Subject<'_>,
    resolved: &Resolved,
    now: i64,
) -> Fresh
where
    K: Resource<DynamicType = ()>,
{
    let owner = &subject.owner;
    let obtained = match &resolved.identity {
        Ok((identity, key)) => {
            if !ctx.credentials.holds(key).await
                && let Some(c) = adopt(ctx, subject, key, &resolved.targets, now).await
            {
                tracing::info!(resource = %owner, expires_at = %rfc3339(c.expires_at), "reusing the credential in the written secrets");
                ctx.credentials.adopt(key, c).await;
            }
            ctx.credentials
                .get(
                    key,
                    identity,
                    &resolved.targets,
                    subject.spec.refresh,
                    &|| ctx.now(),
                )
                .await
        }
        Err(error) => Obtained::Failed {
            error: error.clone(),
            last_good: None,
            retry_in: failure_backoff(1, fastrand::f64()).max(Duration::from_secs(5)),
            // Not an upstream call: reported once per distinct error.
            attempted: false,
        },
    };
    // The store may have waited for an exchange: what follows is decided on the time after it.
    let now = ctx.now();
    let fresh = match &obtained {
        Obtained::Refreshed(c) | Obtained::Current(c) => {
            let due = c.refresh_at(subject.spec.refresh) - now;
            Fresh {
                credential: Some(c.clone()),
                refresh_error: None,
                requeue: Duration::from_secs(u64::try_from(due.max(1)).unwrap_or(1)),
            }
        }
        Obtained::Failed {
            error,
            last_good,
            retry_in,
            ..
        } => Fresh {
            credential: last_good.clone().filter(|c| c.expires_at > now),
            refresh_error: Some(error.clone()),
            requeue: *retry_in,
        },
    };
    match &obtained {
        Obtained::Refreshed(c) => {
            ctx.reported(owner, |r| r.refresh_error = None);
            ctx.metrics.refreshed(owner, true);
            tracing::info!(resource = %owner, expires_at = %rfc3339(c.expires_at), "credentials refreshed");
        }
        Obtained::Failed {
            error, attempted, ..
        } => {
            let new = ctx.reported(owner, |r| {
                let new = r.refresh_error.as_deref() != Some(error.as_str());
                r.refresh_error = Some(error.clone());
                new
            });
            if *attempted {
                ctx.metrics.refreshed(owner, false);
            }
            if *attempted || new {
                let retry_in = fresh.requeue;
                tracing::warn!(resource = %owner, %error, ?retry_in, "credential refresh failed; written secrets are kept");
                publish(
                    ctx,
                    obj,
                    EventType::Warning,
                    "RefreshFailed",
                    format!(
                        "{error} (written secrets are kept; retrying in {}s)",
                        retry_in.as_secs()
                    ),
                )
                .await;
            }
        }
        Obtained::Current(_) => ctx.reported(owner, |r| r.refresh_error = None),
    }
    fresh
}

/// The annotations stamped on every secret `plan` writes that the content hash leaves out:
/// the credential's times and, with the key, its seal for `store_key`.
fn stamp(
    plan: &Plan,
    credential: Option<&Credential>,
    seal: Option<(&CredentialKey, &str)>,
) -> BTreeMap<String, String> {
    let Some(c) = credential else {
        return BTreeMap::new();
    };
    let mut stamp = BTreeMap::from([
        (ISSUED_AT_ANNOTATION.to_owned(), rfc3339(c.issued_at)),
        (EXPIRES_AT_ANNOTATION.to_owned(), rfc3339(c.expires_at)),
    ]);
    // Every write of a plan shares one rendered document: seal exactly those bytes.
    if let (Some((key, store_key)), Some(w)) = (seal, plan.writes.first()) {
        let mac = key.seal(&Sealed {
            store_key,
            docker_config_json: w.secret.docker_config_json.expose().as_bytes(),
            issued_at: c.issued_at,
            expires_at: c.expires_at,
        });
        stamp.insert(CREDENTIAL_MAC_ANNOTATION.to_owned(), mac);
    }
    stamp
}

/// Plans against the index and executes the plan; then plans again to see where it stands.
async fn converge(
    ctx: &Context,
    subject: &Subject<'_>,
    credential: Option<&Credential>,
    store_key: Option<&str>,
) -> Converged {
    recheck_foreign(ctx, subject).await;
    let config = credential.map(|c| &c.config);
    // Namespaces whose writes failed wait for their own retry time; the others go ahead. The
    // failing ones' states are planned for the report.
    let started = tokio::time::Instant::now();
    // The record of irsa's own writes is taken out while the round plans and writes, and put
    // back with this round's writes (kube-runtime never reconciles one resource twice at once;
    // a round cancelled meanwhile loses the record, which only costs a round in name order).
    let (held_back, watched, mut wrote) = ctx.reported(&subject.owner, |r| {
        (
            r.backoff.held_back(started),
            r.backoff.namespaces(),
            std::mem::take(&mut r.wrote),
        )
    });
    // One bounded round of changes: creates and the writes of secrets expired or within
    // `plan::URGENT_MARGIN_SECS` of it first, then patches,
    // then routine refreshes, then deletions; the rest in the next round, at once.
    // Only this round's writes are built: a fan-out of N namespaces builds N writes in all,
    // not N per round.
    let pace = ctx.reported(&subject.owner, |r| r.pace);
    let round = plan::Round {
        max_writes: ctx.config.chunk_at(pace),
        now: ctx.now(),
        held_back: &held_back,
        watched: &watched,
        written: Some(&wrote),
    };
    // The uids of the namespaces written into, as planned: the record tells a namespace made
    // again under its name (while the round ran, too) from the one written into.
    let (plan, uids) = {
        let index = ctx.index();
        let plan = plan::plan_round(subject, &index.view(subject), config, round);
        let uids: HashMap<String, Option<String>> = plan
            .writes
            .iter()
            .map(|w| {
                let ns = &w.secret.namespace;
                (ns.clone(), index.namespace(ns).and_then(|n| n.uid.clone()))
            })
            .collect();
        (plan, uids)
    };
    let planned_in = started.elapsed();
    let left = plan.left;
    let attempted = attempted(&plan);
    let key = match (&plan.writes.is_empty(), store_key) {
        (false, Some(_)) => ctx.credential_key().await,
        _ => None,
    };
    let seal = key.as_deref().zip(store_key);
    let outcome = ctx
        .writer
        .execute(
            &ctx.index,
            &plan,
            &stamp(&plan, credential, seal),
            ctx.config.write_concurrency,
        )
        .await;
    log_outcome(subject, &plan, &outcome);
    let executed_in = started.elapsed().saturating_sub(planned_in);
    if !plan.is_noop() {
        tracing::debug!(
            resource = %subject.owner,
            left,
            planned_in = ?planned_in,
            executed_in = ?executed_in,
            "round"
        );
    }
    // Only a round whose every change was answered and none failed tells how fast changes
    // go: writes refused without a request (leadership ending) or failing fast would make
    // the next round look cheap.
    let changes = plan.writes.len() + plan.service_account_patches.len() + plan.deletions.len();
    let pace = (changes >= ctx.config.write_concurrency.max(1).saturating_mul(2)
        && !executed_in.is_zero()
        && !outcome.not_leader
        && outcome.failed.is_empty())
    .then(|| {
        // Precision is of no concern: a round's size.
        #[allow(clippy::cast_precision_loss)]
        let per_second = changes as f64 / executed_in.as_secs_f64();
        Pace {
            per_second,
            changes,
        }
    });
    if let Some(w) = plan.writes.first() {
        // Every write of a round carries the same content.
        wrote.record(
            &w.secret.content_hash,
            outcome
                .written
                .iter()
                .map(|ns| (ns.as_str(), uids.get(ns).and_then(Option::as_deref))),
        );
    }
    ctx.reported(&subject.owner, |r| {
        r.backoff
            .record(&attempted, &outcome.failed, tokio::time::Instant::now());
        r.wrote = wrote;
        // A fan-out's next round starts from what this one measured; the next fan-out starts
        // afresh (the API server may be busier by then).
        if left == 0 {
            r.pace = None;
        } else if pace.is_some() {
            r.pace = pace;
        }
    });
    // While rounds are left, the plan of this round stands for where it is (a write in
    // flight counts as ready, a failed one is reported from the outcome), and the next round
    // plans anyway: planning all namespaces twice per round doubled the fan-out's cost.
    let after = if left > 0 {
        plan
    } else {
        drop(plan);
        // Where it stands: counts, conflicts and the failing namespaces' states; no writes.
        let watched = ctx.reported(&subject.owner, |r| r.backoff.namespaces());
        let round = plan::Round {
            max_writes: 0,
            watched: &watched,
            ..plan::Round::unbounded()
        };
        let index = ctx.index();
        plan::plan_round(subject, &index.view(subject), config, round)
    };
    Converged {
        outcome,
        after,
        left,
    }
}

/// The namespaces `plan` changes something in.
fn attempted(plan: &Plan) -> BTreeSet<String> {
    plan.writes
        .iter()
        .map(|w| w.secret.namespace.clone())
        .chain(plan.deletions.iter().map(|d| d.namespace.clone()))
        .chain(
            plan.service_account_patches
                .iter()
                .map(|p| p.namespace.clone()),
        )
        .collect()
}

fn log_outcome(subject: &Subject<'_>, plan: &Plan, outcome: &Outcome) {
    if !plan.is_noop() {
        tracing::debug!(
            resource = %subject.owner,
            writes = plan.writes.len(),
            deletions = plan.deletions.len(),
            patches = plan.service_account_patches.len(),
            failed = outcome.failed.len(),
            "applied plan"
        );
    }
}

/// Reports a reconciliation: Events for new conflicts and for written secrets, the status,
/// the metrics; then says when to come back (or fails, to back off).
async fn report<K>(
    ctx: &Context,
    obj: &K,
    subject: &Subject<'_>,
    fresh: &Fresh,
    converged: Converged,
    now: i64,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
{
    let owner = &subject.owner;
    let Converged {
        outcome,
        after,
        left,
    } = converged;
    // New conflicts get an Event; known ones are not repeated on resync.
    let conflicts: BTreeSet<String> = after
        .conflicts
        .iter()
        .map(|c| c.secret.namespace.clone())
        .collect();
    let new_conflicts: Vec<_> = ctx.reported(owner, |r| {
        let new: Vec<_> = after
            .conflicts
            .iter()
            .filter(|c| !r.conflicts.contains(&c.secret.namespace))
            .cloned()
            .collect();
        r.conflicts = conflicts.clone();
        new
    });
    for c in &new_conflicts {
        ctx.metrics.conflicted();
        tracing::warn!(resource = %owner, namespace = %c.secret.namespace, "same-named secret not owned by irsa: left untouched");
        publish(ctx, obj, EventType::Warning, "SecretConflict", c.message()).await;
    }
    // One Event per fan-out, not per round.
    let written = ctx.reported(owner, |r| {
        r.written += outcome.written.len();
        if left == 0 {
            std::mem::take(&mut r.written)
        } else {
            0
        }
    });
    if written > 0 {
        publish(
            ctx,
            obj,
            EventType::Normal,
            "SecretsWritten",
            format!(
                "wrote secret {} in {written} namespace(s)",
                subject.spec.secret_name
            ),
        )
        .await;
    }

    let mut counts = after.counts();
    // Failing namespaces (failed now, or held back since) are counted failed, not ready.
    let mono = tokio::time::Instant::now();
    // `after` holds the state of every failing namespace that is a target.
    let (backoff_problems, next_retry) = ctx.reported(owner, |r| {
        r.backoff.retain_targets(|ns| after.states.contains_key(ns));
        (r.backoff.problems(mono), r.backoff.next_retry(mono))
    });
    let failing: BTreeSet<&str> = backoff_problems
        .iter()
        .map(|p| p.namespace.as_str())
        .filter(|ns| {
            after
                .states
                .get(*ns)
                .is_some_and(plan::TargetState::has_secret)
        })
        .collect();
    let failing_count = i32::try_from(failing.len()).unwrap_or(0);
    counts = irsa_k8s::TargetCounts::new(
        counts.desired,
        (counts.ready - failing_count).max(0),
        counts.failed + failing_count,
        counts.conflicted,
    );
    let mut problems = backoff_problems;
    problems.extend(after.problems());
    problems.truncate(TargetProblem::MAX_REPORTED);
    // Messages may quote API errors and tenant-written values: bounded, each of them.
    for p in &mut problems {
        p.message = TargetProblem::capped(std::mem::take(&mut p.message));
    }

    let credential = &fresh.credential;
    let expires_at = credential.as_ref().map(|c| c.expires_at);
    let counts = status::consistent_counts(counts, expires_at, now);
    if let Some(exp) = expires_at {
        ctx.set_expiry(owner, exp);
    }
    let previous = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let status = PullSecretStatus {
        conditions: status::conditions(
            &previous.conditions,
            &Observation {
                now,
                generation,
                expires_at,
                refresh_error: fresh.refresh_error.as_deref(),
                invalid: None,
                counts: &counts,
            },
        ),
        observed_generation: generation,
        expires_at: expires_at.map(status::time),
        last_refresh_time: credential.as_ref().map(|c| status::time(c.issued_at)),
        next_refresh_time: match (credential, &fresh.refresh_error) {
            (Some(c), None) => Some(status::time(c.refresh_at(subject.spec.refresh))),
            _ => Some(status::time(
                now + i64::try_from(fresh.requeue.as_secs()).unwrap_or(0),
            )),
        },
        targets: Some(counts),
        problems,
    };
    let last_written = ctx.reported(owner, |r| r.status_written_at);
    if status_due(&previous, &status, left, last_written, now) {
        match write_status(ctx, obj, &previous, status).await {
            Ok(()) => ctx.reported(owner, |r| r.status_written_at = Some(now)),
            // While rounds are left, a status the API server refuses must not hold back the
            // fan-out (error_policy would back the whole resource off): the next round follows
            // and writes the status again.
            Err(error) if left > 0 && !matches!(error, Error::NotLeader) => {
                tracing::warn!(resource = %owner, %error, "status not written; the fan-out goes on");
            }
            Err(error) => return Err(error),
        }
    }

    if outcome.not_leader {
        return Err(Error::NotLeader);
    }
    // Failed writes back off per namespace (above), never the whole resource.
    for (ns, error) in &outcome.failed {
        tracing::warn!(resource = %owner, namespace = %ns, %error, "write failed; this namespace is retried on its own schedule");
    }
    ctx.reported(owner, |r| r.failures = 0);
    if left > 0 {
        return Ok(Action::requeue(Duration::ZERO));
    }
    // Conflicted targets are looked at again at each resync.
    let mut requeue = fresh.requeue.min(ctx.config.resync);
    if let Some(retry) = next_retry {
        requeue = requeue.min(retry.max(Duration::from_millis(100)));
    }
    Ok(Action::requeue(requeue))
}

/// Statuses of both kinds.
pub trait HasStatus {
    /// The status, if any.
    fn status(&self) -> Option<&PullSecretStatus>;
}

impl HasStatus for ClusterPullSecret {
    fn status(&self) -> Option<&PullSecretStatus> {
        self.status.as_ref()
    }
}

impl HasStatus for PullSecret {
    fn status(&self) -> Option<&PullSecretStatus> {
        self.status.as_ref()
    }
}

async fn write_status<K>(
    ctx: &Context,
    obj: &K,
    previous: &PullSecretStatus,
    status: PullSecretStatus,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    if &status == previous {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    ctx.writer.write_status(obj, &patch).await?;
    Ok(())
}

/// Reads the credential back from one of the resource's written secrets (after a restart, a
/// leader change or an identity change) when its seal proves that irsa wrote it for
/// `store_key` (this identity, audience and registries) and it is not due for refresh: no
/// upstream exchange and no rewrite of secrets that are still good. Anything else, or no
/// credential key, means a fresh exchange.
async fn adopt(
    ctx: &Context,
    subject: &Subject<'_>,
    store_key: &str,
    targets: &[RegistryTarget],
    now: i64,
) -> Option<Credential> {
    let candidates: Vec<_> = {
        let index = ctx.index();
        index
            .view(subject)
            .secrets()
            .filter(|s| s.is_written_by(&subject.owner) && s.name == subject.spec.secret_name)
            .take(ADOPT_CANDIDATES)
            .cloned()
            .collect()
    };
    if candidates.is_empty() {
        return None;
    }
    let key = ctx.credential_key().await?;
    let hosts: BTreeSet<&str> = targets.iter().map(|t| t.host.as_str()).collect();
    for candidate in candidates {
        let (ns, name) = (&candidate.namespace, &candidate.name);
        let secret = match ctx.writer.get_secret(ns, name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => continue,
            Err(error) => {
                tracing::debug!(%error, "failed to read a written secret back");
                continue;
            }
        };
        let read = match provenance::read_back(&key, store_key, &hosts, &secret) {
            Ok(read) => read,
            Err(why) => {
                tracing::info!(resource = %subject.owner, namespace = %ns, secret = %name, reason = %why, "not reusing the credential in a written secret");
                continue;
            }
        };
        let credential = Credential {
            config: read.config,
            issued_at: read.issued_at,
            expires_at: read.expires_at,
            jitter: fastrand::f64(),
        };
        if now < credential.refresh_at(subject.spec.refresh) && now < credential.expires_at {
            return Some(credential);
        }
        // Genuine but due: another copy may be newer (an interrupted fan-out).
    }
    None
}

/// Looks again at same-named foreign secrets last checked more than a resync ago: one GET
/// each (no write); a deleted one clears the way for irsa's secret.
async fn recheck_foreign(ctx: &Context, subject: &Subject<'_>) {
    let due = {
        let index = ctx.index();
        index.foreign_due(
            subject,
            Instant::now()
                .checked_sub(ctx.config.resync)
                .unwrap_or_else(Instant::now),
        )
    };
    for s in due {
        // `foreign_due` keeps to the namespaces the subject may touch; so does this, whatever
        // the index holds.
        if !subject.may_touch(&s.namespace) {
            continue;
        }
        match ctx.writer.get_secret(&s.namespace, &s.name).await {
            Ok(None) => ctx.index_mut().forget_foreign(&s.namespace, &s.name),
            Ok(Some(secret)) => note_existing(&ctx.index, &secret),
            Err(error) => tracing::debug!(%error, "failed to re-read a conflicting secret"),
        }
    }
}

/// Where a round of the finalizer's cleanup left it.
#[derive(Debug, PartialEq, Eq)]
enum Cleanup {
    /// Everything is removed: the finalizer may go.
    Done,
    /// Changes are left for the next round. `grew`: this round found more to do than the
    /// last one left (new Secrets carrying the resource's labels, or new entries).
    Left {
        /// Whether more work appeared since the last round.
        grew: bool,
    },
}

/// How long a cleanup that found new work waits before its next round. Work the last round
/// left follows at once; new work (Secrets labelled as the resource's that appeared meanwhile)
/// only after this pause, so that whoever keeps making it cannot have irsa spend the shared
/// write rate limit on it back to back.
const CLEANUP_PAUSE: Duration = Duration::from_secs(1);

/// One round of the finalizer's cleanup: remove the resource's secrets and service-account
/// entries unless `deletionPolicy: Retain`, at most a chunk of them, as a round of writes does
/// ([`ReconcilerConfig::chunk`]).
///
/// Secrets carrying the resource's labels but made after its deletion are not irsa's and are
/// left alone ([`plan::CleanupRound::deleted_at`]).
async fn cleanup(
    ctx: &Context,
    meta: &ObjectMeta,
    subject: &Subject<'_>,
) -> Result<Cleanup, Error> {
    let deleted_at = meta.deletion_timestamp.as_ref().map(|t| t.0.as_second());
    let last_left = ctx.reported(&subject.owner, |r| r.cleanup_left);
    let plan = {
        let index = ctx.index();
        let round = plan::CleanupRound {
            max: ctx.config.chunk(),
            deleted_at,
        };
        plan::cleanup_round(subject, &index.view(subject), round)
    };
    let found = plan.deletions.len() + plan.service_account_patches.len() + plan.left;
    let grew = last_left.is_some_and(|left| found > left);
    ctx.reported(&subject.owner, |r| {
        r.cleanup_left = Some(plan.left);
    });
    let outcome = ctx
        .writer
        .execute(
            &ctx.index,
            &plan,
            &BTreeMap::new(),
            ctx.config.write_concurrency,
        )
        .await;
    log_outcome(subject, &plan, &outcome);
    if outcome.not_leader {
        return Err(Error::NotLeader);
    }
    if let Some((_, first)) = outcome.failed.first() {
        return Err(Error::Writes {
            failed: outcome.failed.len(),
            first: first.clone(),
        });
    }
    if plan.left > 0 {
        tracing::debug!(resource = %subject.owner, deleted = plan.deletions.len(), left = plan.left, "cleaning up");
        return Ok(Cleanup::Left { grew });
    }
    tracing::info!(resource = %subject.owner, deleted = plan.deletions.len(), policy = ?subject.spec.deletion_policy, "cleaned up");
    ctx.forget_resource(&subject.owner);
    Ok(Cleanup::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_at(qps: f64, write_concurrency: usize) -> ReconcilerConfig {
        ReconcilerConfig {
            resync: Duration::from_secs(300),
            write_concurrency,
            token_expiration: Duration::from_secs(3600),
            clock: Arc::new(irsa_aws::SystemClock),
            key_namespace: "irsa-system".into(),
            qps,
        }
    }

    #[test]
    fn a_round_is_a_round_worth_at_the_rate_limit_or_at_the_pace_of_the_last_round() {
        // At a rate limit: 400 ms worth at that rate, at least two batches, at most 500; the
        // pace of earlier rounds does not count.
        let pace = |per_second: f64, changes: usize| {
            Some(Pace {
                per_second,
                changes,
            })
        };
        let limited = config_at(100.0, 16);
        assert_eq!(limited.chunk(), 40);
        assert_eq!(limited.chunk_at(pace(50_000.0, 5_000)), 40);
        assert_eq!(config_at(5.0, 16).chunk(), 32, "two batches at least");
        assert_eq!(config_at(10_000.0, 16).chunk(), 500);
        // Unlimited: the first round is 500; then 400 ms worth at the last round's pace,
        // between 500 and 5,000 and at most twice the round measured (the fan-out bench's
        // 10,000 namespaces then plan 6 rounds instead of 20: planning had become a third of
        // the controller's time).
        let unlimited = config_at(0.0, 16);
        assert_eq!(unlimited.chunk(), 500);
        assert_eq!(unlimited.chunk_at(pace(6_000.0, 2_000)), 2_400);
        assert_eq!(
            unlimited.chunk_at(pace(6_000.0, 500)),
            1_000,
            "at most twice the round measured"
        );
        assert_eq!(
            unlimited.chunk_at(pace(100.0, 500)),
            500,
            "never below the first round"
        );
        assert_eq!(unlimited.chunk_at(pace(1e9, 5_000)), 5_000);
        assert_eq!(unlimited.chunk_at(pace(1e9, usize::MAX)), 5_000);
        for odd in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            assert_eq!(unlimited.chunk_at(pace(odd, 500)), 500, "pace {odd}");
        }
        assert_eq!(
            config_at(0.0, 400).chunk_at(None),
            800,
            "two batches at least"
        );
    }

    fn meta(finalizers: &[&str], deleting: bool) -> ObjectMeta {
        ObjectMeta {
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.iter().map(|f| (*f).to_owned()).collect()),
            deletion_timestamp: deleting.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            ),
            ..ObjectMeta::default()
        }
    }

    fn ops(patch: &json_patch::Patch) -> serde_json::Value {
        serde_json::to_value(patch).unwrap()
    }

    fn progress(ready: i32, reason: &str, message: &str) -> PullSecretStatus {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        PullSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".to_owned(),
                status: "True".to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: Some(1),
            }],
            observed_generation: Some(1),
            targets: Some(irsa_k8s::TargetCounts::new(100, ready, 0, 0)),
            ..PullSecretStatus::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_namespace_backs_off_alone_and_is_named() {
        use crate::fixtures::{cps, credential};
        use crate::plan::{NamespaceState, Observed, SecretState};
        let cps = cps();
        let subject = Subject::cluster(&cps);
        // Ten namespaces with an outdated secret; "poisoned" refuses every write.
        let names: Vec<String> = (0..10).map(|i| format!("ns-{i}")).collect();
        let mut observed = Observed::default().namespace(NamespaceState::new("poisoned"));
        observed = observed.secret(SecretState::owned(
            "poisoned",
            &subject.spec.secret_name,
            &subject.owner,
            "sha256:old",
        ));
        for ns in &names {
            observed = observed
                .namespace(NamespaceState::new(ns))
                .secret(SecretState::owned(
                    ns,
                    &subject.spec.secret_name,
                    &subject.owner,
                    "sha256:old",
                ));
        }
        let mut backoff = NamespaceBackoff::default();
        let start = tokio::time::Instant::now();
        let mut poisoned_attempts = Vec::new();
        // Rounds every second for ten minutes, a refresh due in each (a new credential).
        for round in 0..600u64 {
            let now = tokio::time::Instant::now();
            let held_back = backoff.held_back(now);
            let bounds = plan::Round {
                held_back: &held_back,
                ..plan::Round::unbounded()
            };
            let p = plan::plan_round(&subject, &observed, Some(&credential()), bounds);
            let attempted = attempted(&p);
            let others: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            for ns in &others {
                assert!(
                    attempted.contains(*ns),
                    "round {round}: {ns} was not written while one namespace fails"
                );
            }
            let failed: Vec<(String, String)> = if attempted.contains("poisoned") {
                poisoned_attempts.push(now.duration_since(start).as_secs());
                vec![(
                    "poisoned".into(),
                    "failed to update secret poisoned/regcred: refused (422 Invalid)".into(),
                )]
            } else {
                vec![]
            };
            backoff.record(&attempted, &failed, now);
            let problems = backoff.problems(now);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].namespace, "poisoned");
            assert_eq!(problems[0].reason, "WriteFailed");
            let retry = backoff.next_retry(now).unwrap();
            assert!(retry <= plan::BACKOFF_CAP, "{retry:?}");
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Retried on its own, ever more rarely, never less often than the cap.
        assert!(poisoned_attempts.len() >= 3, "{poisoned_attempts:?}");
        assert!(poisoned_attempts.len() < 30, "{poisoned_attempts:?}");
        for gap in poisoned_attempts.windows(2) {
            assert!(
                gap[1] - gap[0] <= plan::BACKOFF_CAP.as_secs() + 1,
                "{poisoned_attempts:?}"
            );
        }
        // A success clears it.
        let now = tokio::time::Instant::now() + plan::BACKOFF_CAP;
        backoff.record(&BTreeSet::from(["poisoned".to_owned()]), &[], now);
        assert!(backoff.problems(now).is_empty());
        assert!(backoff.next_retry(now).is_none());
    }

    type Api = tower_test::mock::Handle<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >;

    /// A context over a mock API server, always leading, with `ecr`'s credentials in `store`.
    fn mock_context(store: CredentialStore) -> (Arc<Context>, Api) {
        mock_context_with(store, |_| {})
    }

    /// [`mock_context`] with the reconciler's settings changed by `settings`.
    fn mock_context_with(
        store: CredentialStore,
        settings: impl FnOnce(&mut ReconcilerConfig),
    ) -> (Arc<Context>, Api) {
        let (service, api) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "default");
        let recorder = Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: "irsa".into(),
                instance: None,
            },
        );
        let metrics = Arc::new(Metrics::default());
        let mut config = ReconcilerConfig {
            resync: Duration::from_secs(300),
            write_concurrency: 4,
            token_expiration: Duration::from_secs(3600),
            clock: Arc::new(irsa_aws::SystemClock),
            key_namespace: "irsa-system".into(),
            qps: 0.0,
        };
        settings(&mut config);
        let ctx = Arc::new(Context::new(
            client,
            Arc::new(RwLock::new(Index::new())),
            store,
            metrics,
            Leadership::always(),
            config,
            RateLimiter::new(0.0, 1),
            Arc::new(NoTokens),
            recorder,
        ));
        (ctx, api)
    }

    /// A Secret of `cps()`'s in `ns`, as the secrets watch shows it.
    fn watched_secret(
        ns: &str,
        content_hash: &str,
        expires_at: i64,
        rv: u64,
    ) -> k8s_openapi::api::core::v1::Secret {
        use k8s_openapi::api::core::v1::Secret;
        let subject_cps = crate::fixtures::cps();
        let owner = Subject::cluster(&subject_cps).owner;
        Secret {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some("regcred".into()),
                uid: Some(format!("uid-{ns}")),
                resource_version: Some(rv.to_string()),
                labels: Some(owner.labels()),
                annotations: Some(BTreeMap::from([
                    (
                        plan::CONTENT_HASH_ANNOTATION.to_owned(),
                        content_hash.to_owned(),
                    ),
                    (EXPIRES_AT_ANNOTATION.to_owned(), rfc3339(expires_at)),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(plan::DOCKER_CONFIG_JSON_TYPE.into()),
            ..Secret::default()
        }
    }

    #[tokio::test]
    async fn a_tenant_reforging_its_secrets_every_round_never_starves_another_namespace() {
        // Review finding L1, through `converge`: the chunk is four, a tenant's namespaces
        // `a-0`..`a-4` are forged again (content changed, expiry in the past) after every
        // round, `z`'s Secret genuinely expired. `z` is written in the second round.
        use crate::credentials::tests as c;
        let (ctx, mut api) = mock_context_with(c::store(Arc::new(c::Ecr::default())), |c| {
            c.write_concurrency = 2;
            c.qps = 10.0;
        });
        assert_eq!(ctx.config.chunk(), 4);
        let now = ctx.now();
        let tenant: Vec<String> = (0..5).map(|i| format!("a-{i}")).collect();
        let mut rv = 1;
        {
            let mut index = ctx.index_mut();
            for ns in tenant.iter().map(String::as_str).chain(["z"]) {
                index.apply_namespace(&ObjectMeta {
                    name: Some(ns.into()),
                    resource_version: Some("1".into()),
                    ..ObjectMeta::default()
                });
            }
            index.apply_secret(&watched_secret("z", "sha256:old", now - 10, rv));
        }
        // The API server: answers every apply of a Secret with what was applied, stored.
        let server = tokio::spawn(async move {
            let mut rv = 1000_u64;
            while let Some((req, send)) = api.next_request().await {
                assert_eq!(req.method(), http::Method::PATCH, "{}", req.uri());
                let body = req.into_body().collect_bytes().await.unwrap();
                let mut secret: serde_json::Value = serde_json::from_slice(&body).unwrap();
                rv += 1;
                let ns = secret["metadata"]["namespace"].as_str().unwrap().to_owned();
                secret["metadata"]["uid"] = json!(format!("uid-{ns}"));
                secret["metadata"]["resourceVersion"] = json!(rv.to_string());
                send.send_response(
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(
                            serde_json::to_vec(&secret).unwrap(),
                        ))
                        .unwrap(),
                );
            }
        });
        let cps = crate::fixtures::cps();
        let subject = Subject::cluster(&cps);
        let credential = Credential {
            config: crate::fixtures::credential(),
            issued_at: now,
            expires_at: now + 3600,
            jitter: 0.5,
        };
        let mut z_written_in = None;
        for round in 1..=5 {
            // The tenant forges its copies (again).
            rv += 10_000;
            {
                let mut index = ctx.index_mut();
                for ns in &tenant {
                    let forged = format!("sha256:forged-{round}");
                    index.apply_secret(&watched_secret(ns, &forged, 0, rv));
                }
            }
            let converged = converge(&ctx, &subject, Some(&credential), None).await;
            assert!(
                converged.outcome.failed.is_empty(),
                "{:?}",
                converged.outcome
            );
            assert!(converged.outcome.written.len() <= 4);
            if converged.outcome.written.iter().any(|ns| ns == "z") {
                z_written_in = Some(round);
                break;
            }
        }
        assert_eq!(z_written_in, Some(2));
        drop(ctx);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_deleted_resources_cleanup_is_bounded_by_the_chunk_and_the_finalizer_goes_last() {
        // A deleted ClusterPullSecret with ten Secrets to delete and a chunk of four: each
        // reconcile deletes at most four and requeues at once; the finalizer is removed only
        // by the reconcile that finds nothing left.
        use crate::credentials::tests as c;
        let (ctx, mut api) = mock_context_with(c::store(Arc::new(c::Ecr::default())), |c| {
            c.write_concurrency = 2;
            c.qps = 10.0;
        });
        assert_eq!(ctx.config.chunk(), 4);
        let mut cps = crate::fixtures::cps();
        cps.metadata.uid = Some("uid-cps".into());
        cps.metadata.resource_version = Some("7".into());
        cps.metadata.finalizers = Some(vec![FINALIZER.into()]);
        cps.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let namespaces: Vec<String> = (0..10).map(|i| format!("ns-{i}")).collect();
        let stored: Arc<Mutex<BTreeMap<String, serde_json::Value>>> = Arc::default();
        {
            let mut index = ctx.index_mut();
            let mut stored = stored.lock().unwrap();
            for ns in &namespaces {
                index.apply_namespace(&ObjectMeta {
                    name: Some(ns.clone()),
                    resource_version: Some("1".into()),
                    ..ObjectMeta::default()
                });
                let secret = watched_secret(ns, "sha256:current", ctx.now() + 3600, 2);
                index.apply_secret(&secret);
                stored.insert(ns.clone(), serde_json::to_value(&secret).unwrap());
            }
        }
        // The API server: Secrets are read and deleted as stored; the finalizer patch is
        // recorded (and answered with the resource, its finalizer gone).
        #[derive(Debug, Default)]
        struct Seen {
            deletes: usize,
            finalizer_patches: usize,
        }
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let server = tokio::spawn({
            let (seen, stored) = (seen.clone(), stored.clone());
            let mut answer = serde_json::to_value(&cps).unwrap();
            answer["metadata"]["finalizers"] = json!([]);
            async move {
                let respond = |code: u16, body: &serde_json::Value| {
                    http::Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
                        .unwrap()
                };
                let not_found = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "code": 404, "reason": "NotFound", "message": "gone"});
                let deleted = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "code": 200});
                while let Some((req, send)) = api.next_request().await {
                    let path = req.uri().path().to_owned();
                    let ns = path
                        .strip_prefix("/api/v1/namespaces/")
                        .and_then(|p| p.strip_suffix("/secrets/regcred"))
                        .map(str::to_owned);
                    let mut stored = stored.lock().unwrap();
                    let mut seen = seen.lock().unwrap();
                    let response = match (req.method().clone(), ns) {
                        (http::Method::GET, Some(ns)) => match stored.get(&ns) {
                            Some(secret) => respond(200, secret),
                            None => respond(404, &not_found),
                        },
                        (http::Method::DELETE, Some(ns)) => {
                            seen.deletes += 1;
                            match stored.remove(&ns) {
                                Some(_) => respond(200, &deleted),
                                None => respond(404, &not_found),
                            }
                        }
                        (http::Method::PATCH, None)
                            if path.ends_with("/clusterpullsecrets/ecr") =>
                        {
                            seen.finalizer_patches += 1;
                            respond(200, &answer)
                        }
                        (method, _) => panic!("unexpected request {method} {path}"),
                    };
                    send.send_response(response);
                }
            }
        });
        let cps = Arc::new(cps);
        let mut reconciles = 0;
        loop {
            reconciles += 1;
            assert!(reconciles <= 10, "the cleanup never ends");
            let before = seen.lock().unwrap().deletes;
            let action = reconcile_cluster(cps.clone(), ctx.clone()).await;
            let action = action.map_err(|e| e.to_string());
            let seen = seen.lock().unwrap();
            assert!(
                seen.deletes - before <= 4,
                "reconcile {reconciles} deleted {}",
                seen.deletes - before
            );
            if seen.finalizer_patches > 0 {
                assert!(
                    stored.lock().unwrap().is_empty(),
                    "the finalizer was removed with Secrets left"
                );
                assert_eq!(action, Ok(Action::await_change()));
                break;
            }
            assert_eq!(
                action,
                Ok(Action::requeue(Duration::ZERO)),
                "reconcile {reconciles}"
            );
        }
        assert_eq!(seen.lock().unwrap().deletes, 10);
        assert_eq!(seen.lock().unwrap().finalizer_patches, 1);
        assert_eq!(reconciles, 3);
        drop(ctx);
        server.await.unwrap();
    }

    /// What [`secrets_api`] saw: the Secrets deleted (`ns/name`) and the finalizer patches.
    #[derive(Debug, Default)]
    struct CleanupSeen {
        deleted: Vec<String>,
        finalizer_patches: usize,
    }

    /// A mock API server holding `stored` Secrets (by `ns/name`): reads and deletes them, and
    /// answers the finalizer patch of `cps` with the resource, its finalizer gone.
    fn secrets_api(
        mut api: Api,
        stored: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
        cps: &ClusterPullSecret,
    ) -> (tokio::task::JoinHandle<()>, Arc<Mutex<CleanupSeen>>) {
        let seen: Arc<Mutex<CleanupSeen>> = Arc::default();
        let mut answer = serde_json::to_value(cps).unwrap();
        answer["metadata"]["finalizers"] = json!([]);
        let server = tokio::spawn({
            let seen = seen.clone();
            async move {
                let respond = |code: u16, body: &serde_json::Value| {
                    http::Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
                        .unwrap()
                };
                let not_found = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "code": 404, "reason": "NotFound", "message": "gone"});
                let deleted = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "code": 200});
                while let Some((req, send)) = api.next_request().await {
                    let path = req.uri().path().to_owned();
                    let secret = path
                        .strip_prefix("/api/v1/namespaces/")
                        .and_then(|p| p.split_once("/secrets/"))
                        .map(|(ns, name)| format!("{ns}/{name}"));
                    let mut stored = stored.lock().unwrap();
                    let mut seen = seen.lock().unwrap();
                    let response = match (req.method().clone(), secret) {
                        (http::Method::GET, Some(k)) => match stored.get(&k) {
                            Some(secret) => respond(200, secret),
                            None => respond(404, &not_found),
                        },
                        (http::Method::DELETE, Some(k)) => {
                            seen.deleted.push(k.clone());
                            match stored.remove(&k) {
                                Some(_) => respond(200, &deleted),
                                None => respond(404, &not_found),
                            }
                        }
                        (http::Method::PATCH, None)
                            if path.ends_with("/clusterpullsecrets/ecr") =>
                        {
                            seen.finalizer_patches += 1;
                            respond(200, &answer)
                        }
                        (method, _) => panic!("unexpected request {method} {path}"),
                    };
                    send.send_response(response);
                }
            }
        });
        (server, seen)
    }

    fn at(t: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(t).unwrap(),
        )
    }

    /// `cps()` deleted at `deleted_at`, with irsa's finalizer.
    fn deleted_cps(deleted_at: i64) -> ClusterPullSecret {
        let mut cps = crate::fixtures::cps();
        cps.metadata.uid = Some("uid-cps".into());
        cps.metadata.resource_version = Some("7".into());
        cps.metadata.finalizers = Some(vec![FINALIZER.into()]);
        cps.metadata.deletion_timestamp = Some(at(deleted_at));
        cps
    }

    /// Puts a Secret named `name` in `ns`, carrying `cps()`'s labels and made at `created`,
    /// into the index and into `stored`.
    fn put_labelled(
        ctx: &Context,
        stored: &Mutex<BTreeMap<String, serde_json::Value>>,
        ns: &str,
        name: &str,
        created: i64,
    ) {
        let mut secret = watched_secret(ns, "sha256:current", ctx.now() + 3600, 2);
        secret.metadata.name = Some(name.into());
        secret.metadata.uid = Some(format!("uid-{ns}-{name}"));
        secret.metadata.creation_timestamp = Some(at(created));
        ctx.index_mut().apply_namespace(&ObjectMeta {
            name: Some(ns.into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        });
        ctx.index_mut().apply_secret(&secret);
        stored.lock().unwrap().insert(
            format!("{ns}/{name}"),
            serde_json::to_value(&secret).unwrap(),
        );
    }

    #[tokio::test]
    async fn a_tenant_recreating_labelled_secrets_after_the_deletion_cannot_hold_the_finalizer() {
        // Review finding M2: a tenant labels Secrets of its own as the deleted resource's and
        // makes twice a chunk of new ones after every cleanup round. They were made after the
        // deletion, when irsa writes nothing for the resource: irsa leaves them alone (never
        // deletes them), and the finalizer goes once irsa's own Secrets are gone.
        use crate::credentials::tests as c;
        let (ctx, api) = mock_context_with(c::store(Arc::new(c::Ecr::default())), |c| {
            c.write_concurrency = 2;
            c.qps = 10.0;
        });
        assert_eq!(ctx.config.chunk(), 4);
        let deleted_at = 1_000_000;
        let cps = deleted_cps(deleted_at);
        let stored: Arc<Mutex<BTreeMap<String, serde_json::Value>>> = Arc::default();
        // irsa's own Secrets, in six namespaces, made before the deletion.
        for i in 0..6 {
            put_labelled(
                &ctx,
                &stored,
                &format!("ns-{i}"),
                "regcred",
                deleted_at - 600,
            );
        }
        // The tenant's: in ns-0, any name, made an hour after the deletion.
        let tenant_round = |round: usize| {
            for i in 0..8 {
                let name = format!("forged-{round}-{i}");
                put_labelled(&ctx, &stored, "ns-0", &name, deleted_at + 3600);
            }
        };
        tenant_round(0);
        let (server, seen) = secrets_api(api, stored.clone(), &cps);
        let cps = Arc::new(cps);
        let mut reconciles = 0;
        loop {
            reconciles += 1;
            assert!(
                reconciles <= 4,
                "the finalizer is still held after {} reconciles",
                reconciles - 1
            );
            let action = reconcile_cluster(cps.clone(), ctx.clone()).await;
            let action = action.map_err(|e| e.to_string());
            if seen.lock().unwrap().finalizer_patches > 0 {
                assert_eq!(action, Ok(Action::await_change()));
                break;
            }
            assert!(action.is_ok(), "reconcile {reconciles}: {action:?}");
            tenant_round(reconciles);
        }
        {
            let seen = seen.lock().unwrap();
            assert!(
                seen.deleted.iter().all(|k| k.ends_with("/regcred")),
                "irsa deleted a tenant's Secret: {:?}",
                seen.deleted
            );
            assert_eq!(seen.deleted.len(), 6);
            assert_eq!(seen.finalizer_patches, 1);
        }
        let left: Vec<String> = stored.lock().unwrap().keys().cloned().collect();
        assert_eq!(left.len(), 8 * reconciles, "{left:?}");
        assert!(left.iter().all(|k| k.starts_with("ns-0/forged-")));
        drop(ctx);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_cleanup_round_that_finds_new_work_pauses_before_the_next() {
        // Labelled Secrets appearing within the grace after the deletion may be irsa's (a round
        // in flight) and are deleted, but the round that finds them waits a little before the
        // next: whoever keeps making them cannot have irsa spend the write rate limit back to
        // back. Work the last round left follows at once.
        use crate::credentials::tests as c;
        let (ctx, api) = mock_context_with(c::store(Arc::new(c::Ecr::default())), |c| {
            c.write_concurrency = 2;
            c.qps = 10.0;
        });
        assert_eq!(ctx.config.chunk(), 4);
        let deleted_at = 1_000_000;
        let cps = deleted_cps(deleted_at);
        let stored: Arc<Mutex<BTreeMap<String, serde_json::Value>>> = Arc::default();
        for i in 0..6 {
            put_labelled(
                &ctx,
                &stored,
                &format!("ns-{i}"),
                "regcred",
                deleted_at - 600,
            );
        }
        let (server, seen) = secrets_api(api, stored.clone(), &cps);
        let cps = Arc::new(cps);
        let mut actions = Vec::new();
        for round in 0..4 {
            actions.push(reconcile_cluster(cps.clone(), ctx.clone()).await.unwrap());
            if round == 0 {
                for i in 0..8 {
                    put_labelled(&ctx, &stored, "ns-0", &format!("x{i}"), deleted_at + 10);
                }
            }
        }
        // 6 found, 2 left; 2 + 8 found (more): pause; 6 left, 6 found; the last 2, done.
        assert_eq!(
            actions,
            vec![
                Action::requeue(Duration::ZERO),
                Action::requeue(CLEANUP_PAUSE),
                Action::requeue(Duration::ZERO),
                Action::await_change(),
            ]
        );
        assert_eq!(seen.lock().unwrap().deleted.len(), 14);
        assert!(stored.lock().unwrap().is_empty());
        drop(ctx);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_status_write_while_rounds_are_left_still_requeues_at_once() {
        use crate::credentials::tests as c;
        // A status the API server refuses (too large, or failing): the fan-out's next round
        // still follows at once, instead of the whole resource backing off.
        for code in [413_u16, 500] {
            let (ctx, mut api) = mock_context(c::store(Arc::new(c::Ecr::default())));
            let server = tokio::spawn(async move {
                let mut seen = 0;
                while let Some((req, send)) = api.next_request().await {
                    assert_eq!(req.method(), http::Method::PATCH, "{}", req.uri());
                    assert!(req.uri().path().ends_with("/status"), "{}", req.uri());
                    seen += 1;
                    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "code": code, "reason": "InternalError",
                        "message": "refused"});
                    send.send_response(
                        http::Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                            .unwrap(),
                    );
                }
                seen
            });
            let cps = crate::fixtures::cps();
            let subject = Subject::cluster(&cps);
            let fresh = Fresh {
                credential: None,
                refresh_error: None,
                requeue: Duration::from_secs(3600),
            };
            let converged = Converged {
                outcome: Outcome::default(),
                after: Plan::default(),
                left: 3,
            };
            let now = ctx.now();
            let action = report(ctx.as_ref(), &cps, &subject, &fresh, converged, now).await;
            assert_eq!(
                action.map_err(|e| e.to_string()),
                Ok(Action::requeue(Duration::ZERO)),
                "status answered {code}"
            );
            drop(ctx);
            assert!(server.await.unwrap() >= 1, "no status write was tried");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_in_flight_keeps_nothing_of_a_resource_forgotten_meanwhile() {
        use crate::credentials::tests as c;
        let (ctx, _api) = mock_context(c::store(Arc::new(c::Ecr::default())));
        let key = credentials::key(&c::identity(), &c::targets());
        let held = || Credential {
            config: irsa_core::docker_config::DockerConfig::new(),
            issued_at: c::NOW,
            expires_at: c::NOW + 3600,
            jitter: 0.5,
        };
        let owner = Owner::Cluster { name: "ecr".into() };
        // A reconcile of uid u-1 starts, and uses its credential.
        let flight = ctx.begin(&owner, Some("u-1"));
        ctx.use_store_key(&owner, Some(&key));
        ctx.credentials.adopt(&key, held()).await;
        ctx.reported(&owner, |r| r.written = 3);
        // Deleted while it runs.
        ctx.forget_resource(&owner);
        assert!(!ctx.credentials.holds(&key).await);
        // What the reconcile does afterwards keeps nothing.
        ctx.use_store_key(&owner, Some(&key));
        ctx.reported(&owner, |r| r.written = 4);
        ctx.set_expiry(&owner, c::NOW + 3600);
        ctx.finished(
            &owner,
            &Err(Error::Writes {
                failed: 1,
                first: "refused".into(),
            }),
        );
        drop(flight);
        // kube-runtime runs the error policy after the reconcile's future (and its guard):
        // it keeps nothing either.
        let error = Error::Writes {
            failed: 1,
            first: "refused".into(),
        };
        let _ = error_policy(&crate::fixtures::cps(), &error, &ctx);
        assert_eq!(
            ctx.tracked(),
            0,
            "state re-inserted for a forgotten resource"
        );
        assert_eq!(ctx.failures(&owner), 0);
        // Re-created under the same name (a new uid): tracked as usual.
        let flight = ctx.begin(&owner, Some("u-2"));
        ctx.use_store_key(&owner, Some(&key));
        ctx.reported(&owner, |r| r.written = 1);
        ctx.finished(
            &owner,
            &Err(Error::Writes {
                failed: 1,
                first: "refused".into(),
            }),
        );
        drop(flight);
        assert_eq!(ctx.tracked(), 1);
        assert_eq!(ctx.failures(&owner), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drop_merged_into_one_wake_up_or_a_gone_sender_still_forgets() {
        use crate::credentials::tests as c;
        let (ctx, _api) = mock_context(c::store(Arc::new(c::Ecr::default())));
        let key = credentials::key(&c::identity(), &c::targets());
        let held = || Credential {
            config: irsa_core::docker_config::DockerConfig::new(),
            issued_at: c::NOW,
            expires_at: c::NOW + 3600,
            jitter: 0.5,
        };
        let (leading, rx) = tokio::sync::watch::channel(true);
        let watcher = tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.forget_when_leadership_ends(rx).await }
        });
        tokio::task::yield_now().await;
        ctx.credentials.adopt(&key, held()).await;
        // Lost and won again before the watcher runs: it wakes once, to `true`.
        leading.send(false).unwrap();
        leading.send(true).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ctx.credentials.holds(&key).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a merged drop was missed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while ctx.credentials.ended() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new term never began"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The elector gone: whatever was held is dropped as the watcher ends.
        ctx.credentials.adopt(&key, held()).await;
        assert!(ctx.credentials.holds(&key).await);
        drop(leading);
        watcher.await.unwrap();
        assert!(
            !ctx.credentials.holds(&key).await,
            "kept after the elector ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_lease_drops_every_held_credential() {
        use crate::credentials::tests as c;
        let (ctx, _api) = mock_context(c::store(Arc::new(c::Ecr::default())));
        let key = credentials::key(&c::identity(), &c::targets());
        let held = || Credential {
            config: irsa_core::docker_config::DockerConfig::new(),
            issued_at: c::NOW,
            expires_at: c::NOW + 3600,
            jitter: 0.5,
        };
        ctx.credentials.adopt(&key, held()).await;
        assert!(ctx.credentials.holds(&key).await);
        let (leading, rx) = tokio::sync::watch::channel(true);
        let watcher = tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.forget_when_leadership_ends(rx).await }
        });
        leading.send(false).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ctx.credentials.holds(&key).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the credential outlived the lease"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Not leading: a reconcile still running refills nothing.
        ctx.credentials.adopt(&key, held()).await;
        assert!(!ctx.credentials.holds(&key).await);
        // Leading again: the next term fills the store afresh.
        leading.send(true).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ctx.credentials.ended() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new term never began"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ctx.credentials.adopt(&key, held()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(ctx.credentials.holds(&key).await);
        drop(leading);
        watcher.await.unwrap();
    }

    /// A requester that is never asked here.
    struct NoTokens;
    impl TokenRequester for NoTokens {
        fn request_token<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a [String],
            _: Duration,
        ) -> irsa_core::token_request::BoxFuture<
            'a,
            Result<irsa_core::secret::SecretString, irsa_core::token_request::TokenSourceError>,
        > {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn a_round_in_progress_does_not_rewrite_the_status() {
        let before = progress(40, "Ready", "40/100 ready");
        let moved = progress(80, "Ready", "80/100 ready");
        // Rounds left, counts moved, written a second ago: not yet.
        assert!(!status_due(&before, &moved, 20, Some(99), 100));
        // Rounds left and never written by this process: once.
        assert!(status_due(&before, &moved, 20, None, 100));
        // Rounds left but a while since the last write: once more.
        assert!(status_due(&before, &moved, 20, Some(95), 100));
        // A condition's reason changed: at once, rounds left or not.
        let failing = progress(80, "RefreshFailed", "80/100 ready");
        assert!(status_due(&before, &failing, 20, Some(99), 100));
        // The fan-out completed: any change at once.
        assert!(status_due(&before, &moved, 0, Some(99), 100));
        // No change: never.
        assert!(!status_due(&moved, &moved.clone(), 0, None, 100));
    }

    #[test]
    fn finalizer_phases_and_their_guarded_patches() {
        let Phase::AddFinalizer(p) = phase(&meta(&[], false)) else {
            panic!("no finalizer: add it")
        };
        assert_eq!(
            ops(&p),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        );
        let Phase::AddFinalizer(p) = phase(&meta(&["other"], false)) else {
            panic!("another finalizer only: add ours")
        };
        assert_eq!(
            ops(&p),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ])
        );
        assert_eq!(phase(&meta(&["other", FINALIZER], false)), Phase::Apply);
        let Phase::Cleanup(p) = phase(&meta(&["other", FINALIZER], true)) else {
            panic!("deleting with ours: clean up")
        };
        assert_eq!(
            ops(&p),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert_eq!(phase(&meta(&["other"], true)), Phase::Done);
    }
}
