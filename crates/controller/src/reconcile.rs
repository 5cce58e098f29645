//! The reconciler: for one ClusterPullSecret or PullSecret, validate, resolve the identity, get
//! the shared credential (refreshing it when due), plan against the [`Index`], write, report
//! (status, Events, metrics) and say when to come back. Every write goes through [`Writer`], which
//! refuses to write unless this replica leads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures_util::StreamExt;
use irsa_aws::{Clock, Identity, RegistryTarget, TokenRequestSource, TokenRequester};
use irsa_core::docker_config::DockerConfig;
use irsa_core::registry::Registry;
use irsa_core::time::rfc3339;
use irsa_k8s::validation::{RegistryTarget as SpecTarget, Validated, ValidatedIdentity};
use irsa_k8s::{ClusterPullSecret, PullSecret, PullSecretStatus, TargetProblem};
use k8s_openapi::api::core::v1::{ObjectReference, Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::credentials::{self, Credential, CredentialStore, Obtained};
use crate::index::Index;
use crate::lease::Leadership;
use crate::metrics::{Metrics, Write};
use crate::plan::{
    self, DOCKER_CONFIG_JSON_KEY, Owner, Plan, SecretState, SecretWrite, ServiceAccountPatch,
    Subject, WriteKind, failure_backoff,
};
use crate::ratelimit::RateLimiter;
use crate::status::{self, Observation};

/// The finalizer irsa puts on its resources, so that it can remove their secrets.
pub const FINALIZER: &str = "irsa.dev/cleanup";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "irsa";
/// Annotation: when the written credential was obtained (RFC 3339).
pub const ISSUED_AT_ANNOTATION: &str = "irsa.dev/issued-at";
/// Annotation: when the written credential expires (RFC 3339).
pub const EXPIRES_AT_ANNOTATION: &str = "irsa.dev/expires-at";
/// The audience of service-account tokens when the service account names none.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// Why a reconciliation failed (it is retried with backoff). Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("failed to {action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
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
    /// The finalizer machinery failed.
    #[error("{0}")]
    Finalizer(String),
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
    /// Client-side requests per second (0: unlimited), which bounds a round of writes.
    pub qps: f64,
}

/// Longest a round of secret writes should take at the rate limit: a new namespace waits at
/// most about this long behind a refresh of the same resource.
const ROUND: Duration = Duration::from_millis(400);
/// Most secret writes in one round (unlimited rate).
const MAX_ROUND_WRITES: usize = 500;

impl ReconcilerConfig {
    /// Secret writes per round: [`ROUND`] worth at `qps`, at least two batches in flight, at
    /// most [`MAX_ROUND_WRITES`].
    pub fn chunk(&self) -> usize {
        let floor = self.write_concurrency.max(1).saturating_mul(2);
        if self.qps > 0.0 {
            // Truncation is intended: a whole number of writes.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let at_rate = (self.qps * ROUND.as_secs_f64()) as usize;
            at_rate.clamp(floor.min(MAX_ROUND_WRITES), MAX_ROUND_WRITES)
        } else {
            MAX_ROUND_WRITES.max(floor)
        }
    }
}

impl std::fmt::Debug for ReconcilerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcilerConfig")
            .field("resync", &self.resync)
            .field("write_concurrency", &self.write_concurrency)
            .field("token_expiration", &self.token_expiration)
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
}

/// Everything reconciliations share.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The cluster as watched.
    pub index: Arc<RwLock<Index>>,
    /// Shared credentials.
    pub credentials: CredentialStore,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica writes.
    pub leadership: Leadership,
    /// Settings.
    pub config: ReconcilerConfig,
    /// Client-side rate limit of API requests.
    pub limiter: RateLimiter,
    /// TokenRequest.
    pub requester: Arc<dyn TokenRequester>,
    /// Events.
    pub recorder: Recorder,
    reported: Mutex<HashMap<Owner, Reported>>,
    /// The credential-store key each live resource last used, so that slots of deleted
    /// resources (or of identities no longer used) are freed.
    keys: Mutex<HashMap<Owner, String>>,
}

impl Context {
    /// A context.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        index: Arc<RwLock<Index>>,
        credentials: CredentialStore,
        metrics: Arc<Metrics>,
        leadership: Leadership,
        config: ReconcilerConfig,
        limiter: RateLimiter,
        requester: Arc<dyn TokenRequester>,
        recorder: Recorder,
    ) -> Self {
        Self {
            client,
            index,
            credentials,
            metrics,
            leadership,
            config,
            limiter,
            requester,
            recorder,
            reported: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Records the credential key `owner` uses now (`None`: it is gone) and frees the
    /// credential slots no live resource uses any more.
    fn use_key(&self, owner: &Owner, key: Option<&str>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match key {
            Some(k) => keys.insert(owner.clone(), k.to_owned()).as_deref() != Some(k),
            None => keys.remove(owner).is_some(),
        };
        if changed {
            let keep: std::collections::HashSet<String> = keys.values().cloned().collect();
            drop(keys);
            self.credentials.retain(&keep);
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

    fn reported<T>(&self, owner: &Owner, f: impl FnOnce(&mut Reported) -> T) -> T {
        let mut map = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(owner.clone()).or_default())
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Reconciles a ClusterPullSecret.
pub async fn reconcile_cluster(
    obj: Arc<ClusterPullSecret>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<Error>> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let api: Api<ClusterPullSecret> = Api::all(ctx.client.clone());
    ctx.limiter.acquire().await;
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(cps) => {
                let subject = Subject::cluster(&cps);
                apply(&ctx, &api, &*cps, &subject, cps.validate()).await
            }
            finalizer::Event::Cleanup(cps) => cleanup(&ctx, &Subject::cluster(&cps)).await,
        }
    })
    .await;
    record(
        &ctx,
        Owner::Cluster {
            name: String::new(),
        },
        result,
    )
}

/// Reconciles a PullSecret.
pub async fn reconcile_namespaced(
    obj: Arc<PullSecret>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<Error>> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<PullSecret> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.limiter.acquire().await;
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(ps) => match Subject::namespaced(&ps) {
                Some(subject) => apply(&ctx, &api, &*ps, &subject, ps.validate()).await,
                None => Ok(Action::await_change()),
            },
            finalizer::Event::Cleanup(ps) => match Subject::namespaced(&ps) {
                Some(subject) => cleanup(&ctx, &subject).await,
                None => Ok(Action::await_change()),
            },
        }
    })
    .await;
    record(
        &ctx,
        Owner::Namespaced {
            namespace: String::new(),
            name: String::new(),
        },
        result,
    )
}

fn record(
    ctx: &Context,
    kind: Owner,
    result: Result<Action, finalizer::Error<Error>>,
) -> Result<Action, finalizer::Error<Error>> {
    ctx.metrics.reconciled(&kind, result.is_ok());
    if let Err(finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_)) = &result {
        // Counted as a write attempt either way.
        ctx.metrics.wrote(Write::Finalizer);
    }
    result
}

/// How long to wait after a failed reconciliation: exponential per resource, reset on success.
pub fn error_policy<K: Resource>(
    obj: &K,
    error: &finalizer::Error<Error>,
    ctx: &Context,
) -> Action {
    if matches!(error, finalizer::Error::ApplyFailed(Error::NotLeader)) {
        return Action::await_change();
    }
    let owner = owner_of(obj);
    let failures = ctx.reported(&owner, |r| {
        r.failures = r.failures.saturating_add(1);
        r.failures
    });
    let wait = failure_backoff(failures, fastrand::f64());
    tracing::warn!(resource = %owner, %error, retry_in = ?wait, "reconciliation failed");
    Action::requeue(wait)
}

fn owner_of<K: Resource>(obj: &K) -> Owner {
    let name = obj.meta().name.clone().unwrap_or_default();
    match &obj.meta().namespace {
        Some(namespace) => Owner::Namespaced {
            namespace: namespace.clone(),
            name,
        },
        None => Owner::Cluster { name },
    }
}

fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    if !ctx.leadership.is_leader() {
        return;
    }
    ctx.limiter.acquire().await;
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    ctx.metrics.wrote(Write::Event);
    if let Err(error) = ctx.recorder.publish(&event, &object_ref(obj)).await {
        tracing::warn!(%error, reason, "failed to publish an Event");
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
    let (registry, chainguard_identity) = match &r.target {
        SpecTarget::Ecr(e) => (Registry::Ecr(e.clone()), None),
        SpecTarget::EcrPublic => (Registry::EcrPublic, None),
        SpecTarget::Chainguard { identity } => (Registry::Chainguard, Some(identity.clone())),
    };
    RegistryTarget {
        host: r.host.clone(),
        registry,
        chainguard_identity,
    }
}

/// The identity a validated spec names, resolved against the indexed service account; the
/// string is the credential-store key suffix (the token audience).
fn resolve_identity(
    ctx: &Context,
    identity: &ValidatedIdentity,
) -> Result<(Identity, String), String> {
    match identity {
        ValidatedIdentity::Ambient { role_arn } => Ok((
            Identity::Ambient {
                chained_role: role_arn.clone(),
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
                },
                audience,
            ))
        }
    }
}

/// One reconciliation of a live resource.
async fn apply<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    subject: &Subject<'_>,
    validated: Result<Validated, irsa_k8s::ValidationErrors>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>
        + HasStatus
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let owner = &subject.owner;
    let now = ctx.now();
    let generation = obj.meta().generation;
    let previous = obj.status().cloned().unwrap_or_default();
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
            write_status(ctx, api, obj, &previous, status).await?;
            return Ok(Action::await_change());
        }
    };
    ctx.reported(owner, |r| r.invalid = None);
    let targets: Vec<RegistryTarget> = validated.registries.iter().map(pipeline_target).collect();

    let (obtained, _key) = match resolve_identity(ctx, &validated.identity) {
        Ok((identity, audience)) => {
            let key = format!("{}\u{1f}{audience}", credentials::key(&identity, &targets));
            ctx.use_key(owner, Some(&key));
            if !ctx.credentials.holds(&key).await
                && let Some(c) = adopt(ctx, subject, &targets, now).await
            {
                tracing::info!(resource = %owner, expires_at = %rfc3339(c.expires_at), "reusing the credential in the written secrets");
                ctx.credentials.adopt(&key, c).await;
            }
            (
                ctx.credentials
                    .get(&key, &identity, &targets, subject.spec.refresh, now)
                    .await,
                Some(key),
            )
        }
        Err(error) => (
            Obtained::Failed {
                error,
                last_good: None,
                retry_in: failure_backoff(1, fastrand::f64()).max(Duration::from_secs(5)),
                // Not an upstream call: reported once per distinct error.
                attempted: false,
            },
            None,
        ),
    };
    let (credential, refresh_error, mut requeue) = match &obtained {
        Obtained::Refreshed(c) | Obtained::Current(c) => {
            let due = c.refresh_at(subject.spec.refresh) - now;
            (
                Some(c.clone()),
                None,
                Duration::from_secs(u64::try_from(due.max(1)).unwrap_or(1)),
            )
        }
        Obtained::Failed {
            error,
            last_good,
            retry_in,
            ..
        } => (
            last_good.clone().filter(|c| c.expires_at > now),
            Some(error.clone()),
            *retry_in,
        ),
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
            // One Event per upstream attempt or new error; none while backing off.
            let new = ctx.reported(owner, |r| {
                let new = r.refresh_error.as_deref() != Some(error.as_str());
                r.refresh_error = Some(error.clone());
                new
            });
            if *attempted {
                ctx.metrics.refreshed(owner, false);
            }
            if *attempted || new {
                tracing::warn!(resource = %owner, %error, retry_in = ?requeue, "credential refresh failed; written secrets are kept");
                publish(
                    ctx,
                    obj,
                    EventType::Warning,
                    "RefreshFailed",
                    format!(
                        "{error} (written secrets are kept; retrying in {}s)",
                        requeue.as_secs()
                    ),
                )
                .await;
            }
        }
        Obtained::Current(_) => ctx.reported(owner, |r| r.refresh_error = None),
    }

    recheck_foreign(ctx, subject, now).await;
    let mut plan = {
        let index = ctx.index();
        plan::plan(
            subject,
            &index.view(subject),
            credential.as_ref().map(|c| &c.config),
        )
    };
    // One bounded round of writes, urgent ones first; the rest in the next round, at once.
    let left = plan::urgent_first(&mut plan.writes, ctx.config.chunk());
    let outcome = execute(ctx, subject, &plan, credential.as_deref()).await;
    drop(plan);

    // New conflicts get an Event; known ones are not repeated on resync.
    let after = {
        let index = ctx.index();
        plan::plan(
            subject,
            &index.view(subject),
            credential.as_ref().map(|c| &c.config),
        )
    };
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
        r.written += outcome.written;
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
    let failed_ns: BTreeSet<&str> = outcome.failed.iter().map(|(ns, _)| ns.as_str()).collect();
    counts.ready -= i32::try_from(failed_ns.len()).unwrap_or(0);
    counts.failed += i32::try_from(failed_ns.len()).unwrap_or(0);
    counts = irsa_k8s::TargetCounts::new(
        counts.desired,
        counts.ready.max(0),
        counts.failed,
        counts.conflicted,
    );
    let mut problems: Vec<TargetProblem> = outcome
        .failed
        .iter()
        .map(|(ns, message)| TargetProblem {
            namespace: ns.clone(),
            reason: "WriteFailed".to_owned(),
            message: message.clone(),
        })
        .collect();
    problems.extend(after.problems());
    problems.truncate(TargetProblem::MAX_REPORTED);

    let expires_at = credential.as_ref().map(|c| c.expires_at);
    if let Some(exp) = expires_at {
        ctx.metrics.set_expiry(owner, exp);
    }
    let status = PullSecretStatus {
        conditions: status::conditions(
            &previous.conditions,
            &Observation {
                now,
                generation,
                expires_at,
                refresh_error: refresh_error.as_deref(),
                invalid: None,
                counts: &counts,
            },
        ),
        observed_generation: generation,
        expires_at: expires_at.map(status::time),
        last_refresh_time: credential.as_ref().map(|c| status::time(c.issued_at)),
        next_refresh_time: match (&credential, &refresh_error) {
            (Some(c), None) => Some(status::time(c.refresh_at(subject.spec.refresh))),
            _ => Some(status::time(
                now + i64::try_from(requeue.as_secs()).unwrap_or(0),
            )),
        },
        targets: Some(counts),
        problems,
    };
    write_status(ctx, api, obj, &previous, status).await?;

    if let Some((_, first)) = outcome.failed.first() {
        return Err(Error::Writes {
            failed: outcome.failed.len(),
            first: first.clone(),
        });
    }
    if outcome.not_leader {
        return Err(Error::NotLeader);
    }
    ctx.reported(owner, |r| r.failures = 0);
    if left > 0 {
        return Ok(Action::requeue(Duration::ZERO));
    }
    if !after.conflicts.is_empty() {
        // Conflicted targets are looked at again at each resync.
        requeue = requeue.min(ctx.config.resync);
    }
    Ok(Action::requeue(requeue.min(ctx.config.resync)))
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
    api: &Api<K>,
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
    if !ctx.leadership.is_leader() {
        return Err(Error::NotLeader);
    }
    let name = obj.name_any();
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    ctx.limiter.acquire().await;
    ctx.metrics.wrote(Write::Status);
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube_err(format!("write the status of {name}")))?;
    Ok(())
}

/// Reads the credential back from one of the resource's written secrets (after a restart or
/// a leader change) when it covers exactly the wanted registries and is not due for refresh:
/// no upstream exchange and no rewrite of secrets that are still good.
async fn adopt(
    ctx: &Context,
    subject: &Subject<'_>,
    targets: &[RegistryTarget],
    now: i64,
) -> Option<Credential> {
    let candidate = {
        let index = ctx.index();
        index
            .observed(subject)
            .secrets
            .into_iter()
            .find(|s| subject.owner.owns(&s.labels) && s.name == subject.spec.secret_name)?
    };
    ctx.limiter.acquire().await;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &candidate.namespace);
    let secret = api.get_opt(&candidate.name).await.ok()??;
    let annotations = secret.metadata.annotations.as_ref()?;
    let parse = |k: &str| {
        annotations
            .get(k)
            .and_then(|v| Timestamp::from_str(v).ok())
            .map(|t| t.as_second())
    };
    let (issued_at, expires_at) = (parse(ISSUED_AT_ANNOTATION)?, parse(EXPIRES_AT_ANNOTATION)?);
    let data = secret.data.as_ref()?.get(DOCKER_CONFIG_JSON_KEY)?;
    let config = DockerConfig::parse(&data.0).ok()?;
    let wanted: BTreeSet<&str> = targets.iter().map(|t| t.host.as_str()).collect();
    let held: BTreeSet<&str> = wanted
        .iter()
        .copied()
        .filter(|h| config.get(h).is_some())
        .collect();
    if held != wanted || config.len() != wanted.len() {
        return None;
    }
    let credential = Credential {
        config,
        issued_at,
        expires_at,
        jitter: fastrand::f64(),
    };
    (now < credential.refresh_at(subject.spec.refresh) && now < expires_at).then_some(credential)
}

/// Looks again at same-named foreign secrets last checked more than a resync ago: one GET
/// each (no write); a deleted one clears the way for irsa's secret.
async fn recheck_foreign(ctx: &Context, subject: &Subject<'_>, _now: i64) {
    let due = {
        let index = ctx.index();
        index.foreign_due(
            &subject.spec.secret_name,
            Instant::now()
                .checked_sub(ctx.config.resync)
                .unwrap_or_else(Instant::now),
        )
    };
    for s in due {
        ctx.limiter.acquire().await;
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &s.namespace);
        match api.get_opt(&s.name).await {
            Ok(None) => ctx.index_mut().forget_foreign(&s.namespace, &s.name),
            Ok(Some(secret)) => note_existing(ctx, &secret),
            Err(error) => tracing::debug!(%error, "failed to re-read a conflicting secret"),
        }
    }
}

/// Indexes a Secret found in the way: ours (label) or foreign.
fn note_existing(ctx: &Context, secret: &Secret) {
    let Some(state) = SecretState::from_secret(secret) else {
        return;
    };
    let mut index = ctx.index_mut();
    if plan::is_managed(&state.labels) {
        index.apply_secret(secret);
    } else {
        index.record_foreign(state, Instant::now());
    }
}

/// What executing a plan did.
#[derive(Debug, Default)]
struct Outcome {
    written: usize,
    failed: Vec<(String, String)>,
    not_leader: bool,
}

enum Step {
    Done,
    Failed(String, String),
    NotLeader,
}

async fn execute(
    ctx: &Context,
    subject: &Subject<'_>,
    plan: &Plan,
    credential: Option<&Credential>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let tally = |step: Step, outcome: &mut Outcome| match step {
        Step::Done => {}
        Step::Failed(ns, message) => outcome.failed.push((ns, message)),
        Step::NotLeader => outcome.not_leader = true,
    };
    // Futures are made as slots free up, never all at once (each holds a request in flight).
    // By index: a closure over borrowed items inside a stream held across an await trips the
    // compiler's higher-ranked lifetime inference (rust-lang/rust#102211).
    let writes = futures_util::stream::iter(0..plan.writes.len())
        .map(|i| write_secret(ctx, &plan.writes[i], credential))
        .buffer_unordered(ctx.config.write_concurrency.max(1));
    let results: Vec<(bool, Step)> = writes.collect().await;
    for (wrote, step) in results {
        if wrote {
            outcome.written += 1;
        }
        tally(step, &mut outcome);
    }
    for p in &plan.service_account_patches {
        let step = patch_service_account(ctx, p).await;
        tally(step, &mut outcome);
    }
    let deletions = futures_util::stream::iter(0..plan.deletions.len())
        .map(|i| delete_secret(ctx, &plan.deletions[i].namespace, &plan.deletions[i].name))
        .buffer_unordered(ctx.config.write_concurrency.max(1));
    for step in deletions.collect::<Vec<_>>().await {
        tally(step, &mut outcome);
    }
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
    outcome
}

async fn write_secret(
    ctx: &Context,
    w: &SecretWrite,
    credential: Option<&Credential>,
) -> (bool, Step) {
    if !ctx.leadership.is_leader() {
        return (false, Step::NotLeader);
    }
    let ns = w.secret.namespace.clone();
    let mut secret = w.secret.to_secret();
    if let (Some(c), Some(a)) = (credential, secret.metadata.annotations.as_mut()) {
        a.insert(ISSUED_AT_ANNOTATION.to_owned(), rfc3339(c.issued_at));
        a.insert(EXPIRES_AT_ANNOTATION.to_owned(), rfc3339(c.expires_at));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = w.secret.name.clone();
    let fail = |action: &str, e: &kube::Error| {
        Step::Failed(
            ns.clone(),
            format!("failed to {action} secret {ns}/{name}: {}", describe(e)),
        )
    };
    if w.kind == WriteKind::Replace
        && let Step::Failed(a, b) = delete_secret(ctx, &ns, &name).await
    {
        return (false, Step::Failed(a, b));
    }
    ctx.limiter.acquire().await;
    match w.kind {
        WriteKind::Create | WriteKind::Replace => {
            ctx.metrics.wrote(Write::Create);
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            match api.create(&pp, &secret).await {
                Ok(created) => {
                    ctx.index_mut().apply_secret(&created);
                    (true, Step::Done)
                }
                // Someone else's secret of that name (or ours, not yet seen): look at it.
                Err(e) if status_code(&e) == Some(409) => {
                    ctx.limiter.acquire().await;
                    match api.get_opt(&name).await {
                        Ok(Some(existing)) => {
                            note_existing(ctx, &existing);
                            (false, Step::Done)
                        }
                        Ok(None) => (false, fail("create", &e)),
                        Err(e) => (false, fail("read", &e)),
                    }
                }
                // The namespace is going away.
                Err(e) if matches!(status_code(&e), Some(404 | 403)) && is_namespace_gone(&e) => {
                    (false, Step::Done)
                }
                Err(e) => (false, fail("create", &e)),
            }
        }
        WriteKind::Update => {
            ctx.metrics.wrote(Write::Apply);
            match api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&secret),
                )
                .await
            {
                Ok(updated) => {
                    ctx.index_mut().apply_secret(&updated);
                    (true, Step::Done)
                }
                Err(e) => (false, fail("update", &e)),
            }
        }
    }
}

fn is_namespace_gone(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            let m = s.message.to_ascii_lowercase();
            m.contains("namespace") && (m.contains("not found") || m.contains("terminat"))
        }
        _ => false,
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

async fn delete_secret(ctx: &Context, ns: &str, name: &str) -> Step {
    if !ctx.leadership.is_leader() {
        return Step::NotLeader;
    }
    ctx.limiter.acquire().await;
    ctx.metrics.wrote(Write::Delete);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(404) => {}
        Err(e) => {
            return Step::Failed(
                ns.to_owned(),
                format!("failed to delete secret {ns}/{name}: {}", describe(&e)),
            );
        }
    }
    ctx.index_mut().delete_secret(ns, name);
    Step::Done
}

async fn patch_service_account(ctx: &Context, p: &ServiceAccountPatch) -> Step {
    if !ctx.leadership.is_leader() {
        return Step::NotLeader;
    }
    let patch: json_patch::Patch = match serde_json::from_value(p.json_patch()) {
        Ok(patch) => patch,
        Err(e) => {
            return Step::Failed(p.namespace.clone(), format!("bug: invalid JSON patch: {e}"));
        }
    };
    ctx.limiter.acquire().await;
    ctx.metrics.wrote(Write::PatchServiceAccount);
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &p.namespace);
    match api
        .patch(
            &p.name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(sa) => {
            ctx.index_mut().apply_service_account(&sa);
            Step::Done
        }
        Err(e) if status_code(&e) == Some(404) => Step::Done,
        Err(e) => Step::Failed(
            p.namespace.clone(),
            format!(
                "failed to update imagePullSecrets of service account {}/{}: {} (retried)",
                p.namespace,
                p.name,
                describe(&e)
            ),
        ),
    }
}

/// The finalizer's cleanup: remove the resource's secrets and service-account entries unless
/// `deletionPolicy: Retain`.
async fn cleanup(ctx: &Context, subject: &Subject<'_>) -> Result<Action, Error> {
    let plan = {
        let index = ctx.index();
        plan::cleanup(subject, &index.view(subject))
    };
    let outcome = execute(ctx, subject, &plan, None).await;
    if outcome.not_leader {
        return Err(Error::NotLeader);
    }
    if let Some((_, first)) = outcome.failed.first() {
        return Err(Error::Writes {
            failed: outcome.failed.len(),
            first: first.clone(),
        });
    }
    tracing::info!(resource = %subject.owner, deleted = plan.deletions.len(), policy = ?subject.spec.deletion_policy, "cleaned up");
    ctx.metrics.forget(&subject.owner);
    ctx.use_key(&subject.owner, None);
    ctx.reported
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&subject.owner);
    Ok(Action::await_change())
}
