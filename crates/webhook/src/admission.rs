//! One admission request, end to end: decode, find the service account (cache, grace period,
//! then the API server), mutate, answer. Fails open: an internal error or a timeout admits the
//! pod unchanged with a warning and a metric; only a body that is not an AdmissionReview v1
//! gets an error answer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::cache::ServiceAccountCache;
use crate::config::Config;
use crate::identity::{ConfigMapEntry, ServiceAccountInfo};
use crate::metrics::{Metrics, Outcome};
use crate::mutate::{Oversized, PatchOp, mutate};
use crate::review::{self, AdmissionRequest};

/// Reviews decoded, mutated and encoded at once. A review waiting for its service account
/// gives its permit (and its parsed pod) back until the account is known, so such reviews
/// cannot hold up the others; the server's own timeout covers a review waiting for a permit.
pub const MAX_REVIEWS_IN_FLIGHT: usize = 4;

/// Reviews whose body is at most this large are mutated on the async worker: a pod of that
/// size (a few dozen containers) mutates in microseconds, less than the blocking pool's two
/// thread hand-offs would add to every review. Larger pods go to the blocking pool, so that one
/// cannot stall other requests or `/healthz`.
pub const INLINE_MUTATION_MAX_BODY: usize = 64 * 1024;

/// A service-account lookup at the API server failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to get service account {namespace}/{name} from the API server: {message}")]
pub struct LookupError {
    /// Namespace of the account.
    pub namespace: String,
    /// Name of the account.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

/// Why a pod gets no patch although it may need one; either way it is admitted unchanged.
#[derive(Debug)]
enum Refusal {
    /// An internal error (the text goes to the logs only).
    Failed(String),
    /// The pod is too large to patch.
    Oversized(Oversized),
}

/// The warning to whoever created the pod when the webhook fails open. Generic on purpose: the
/// error text can name the API server, the webhook's identity and RBAC denials. The detail is
/// logged.
const FAIL_OPEN_WARNING: &str = "irsa webhook admitted this pod without AWS credentials (see the webhook's logs); recreate the pod once the webhook is healthy";

/// The warning for a pod too large to patch.
const OVERSIZED_WARNING: &str = "irsa webhook admitted this pod without AWS credentials: it has too many containers, or their patch would be too large (see the webhook's logs)";

/// The account's annotations, `None` when it does not exist.
pub type LookupResult = Result<Option<BTreeMap<String, String>>, LookupError>;

/// Asks the API server for one service account (the fallback when the cache lacks it).
pub trait ServiceAccountLookup: Send + Sync {
    /// Get the account's annotations.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = LookupResult> + Send + 'a>>;
}

/// Reviews waiting at once for service accounts the cache lacks. A waiting review holds no
/// review permit, only its connection and its body; a real burst (a Deployment scaled up with a
/// new account) waits for the grace period only, so few wait at once.
pub const MAX_WAITING: usize = 64;

/// As many in one namespace of one peer: a flood in one namespace leaves places for the others.
pub const MAX_WAITING_PER_NAMESPACE: usize = 16;

/// As many from one peer address (review finding M2). The namespace comes from the review body,
/// so a forger names as many as it likes; its TCP peer address it cannot choose. kube-apiserver
/// calls from few addresses (one per API server instance), a forger from its own pod's, so a
/// forger that fills its share leaves the other half to the API server.
///
/// The trade-off: where the API server and a forger reach the webhook from one address (both
/// behind one proxy or NAT, a konnectivity agent, a forger on a control-plane node's host
/// network), they share that address's share, and a forger can fill it: real pods whose
/// account is not cached yet then fail open at once, as before this bound. With one API server
/// instance the bound also halves what a real burst (a new account, many pods at once) may
/// have waiting: 32 reviews within the grace period, far above what one rollout sends. Several
/// forgers (pods of their own) that fill every place within their shares give places back to a
/// peer holding less than its fair share ([`WaitSlots`]). A trusted peer (`--trusted-peer`, the
/// API server's addresses) is bounded by this too: a forger inside a trusted block holds at
/// most half the places, and each API server replica calls from its own address. The NetworkPolicy's `from`, narrowed to the API server's addresses (`irsa
/// install --webhook-api-server`, which also passes them as `--trusted-peer`), is what closes
/// the port to forgers altogether.
pub const MAX_WAITING_PER_PEER: usize = MAX_WAITING / 2;

/// How long an account the API server said does not exist is not asked for again by reviews
/// from the same peer address (review findings M2, L5): forged reviews repeating a name cost
/// one lookup per second, not one each, and what a forger's lookup learnt is not believed for
/// the API server's reviews (an account about to be created, named by a forger first). A
/// real account created within that second after such a lookup is still served once the watch
/// delivers it (the cache is asked first, and a review waits the grace period for it), or by
/// a lookup after the second has passed. Entries exist only after lookups, which the limiter
/// bounds to `lookup_qps` a second, so at most about that many are held. They do not decide
/// who gives up a wait place ([`WaitSlots`] says why).
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(1);

/// Timing of the service-account lookup and of the whole answer.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `--service-account-lookup-grace-period`: wait this long for the watch to deliver an
    /// account before asking the API server.
    pub grace_period: Duration,
    /// Answer (failing open) no later than this, well inside kube-apiserver's timeout.
    pub deadline: Duration,
    /// Lookups at the API server per second (and burst), shared round-robin between the
    /// namespaces of the reviewed pods; each namespace may have as many waiting.
    pub lookup_qps: u32,
    /// Reviews that may wait at once for service accounts the cache lacks (grace period,
    /// limiter, lookup); more fail open at once.
    pub max_waiting: usize,
    /// As many of them in one namespace from one peer address.
    pub max_waiting_per_namespace: usize,
    /// As many of them from one peer address ([`MAX_WAITING_PER_PEER`]).
    pub max_waiting_per_peer: usize,
    /// How long a "not found" from the API server is remembered ([`NOT_FOUND_TTL`]).
    pub not_found_ttl: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_millis(100),
            deadline: Duration::from_secs(5),
            lookup_qps: 20,
            max_waiting: MAX_WAITING,
            max_waiting_per_namespace: MAX_WAITING_PER_NAMESPACE,
            max_waiting_per_peer: MAX_WAITING_PER_PEER,
            not_found_ttl: NOT_FOUND_TTL,
        }
    }
}

/// Lookups at the API server, at most `per_second` (with a burst as large), shared fairly
/// between the namespaces of the reviewed pods: waiting lookups are granted round-robin by
/// namespace, so a flood of reviews in one namespace (or forged reviews naming it) takes its
/// turn like any other and cannot starve the rest (review finding M1). A namespace may have at
/// most `per_second` lookups waiting; more are refused at once (the pod fails open) instead of
/// queueing without bound. A waiter that gives up (the deadline) is skipped, not charged.
#[derive(Debug)]
struct FairLimiter {
    per_second: f64,
    max_waiting: usize,
    state: Arc<Mutex<LimiterState>>,
}

#[derive(Debug)]
struct LimiterState {
    tokens: f64,
    refilled: Instant,
    /// Waiters by namespace, first come first served within one.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Namespaces with waiters, in turn order.
    turns: VecDeque<String>,
    /// Whether a task is handing out tokens to waiters.
    dispatching: bool,
}

impl LimiterState {
    fn refill(&mut self, per_second: f64) {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * per_second;
        self.tokens = (self.tokens + earned).min(per_second);
        self.refilled = now;
    }

    /// Grant tokens to waiters in turn; the time until the next token when some still wait.
    fn grant(&mut self, per_second: f64) -> Option<Duration> {
        self.refill(per_second);
        while let Some(ns) = self.turns.pop_front() {
            if self.tokens < 1.0 {
                self.turns.push_front(ns);
                return Some(Duration::from_secs_f64((1.0 - self.tokens) / per_second));
            }
            let Some(queue) = self.waiting.get_mut(&ns) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                self.waiting.remove(&ns);
            } else {
                self.turns.push_back(ns);
            }
            if let Some(tx) = next
                && tx.send(()).is_ok()
            {
                self.tokens -= 1.0;
            }
        }
        None
    }
}

/// A lookup refused because its namespace already has as many waiting as the limit allows.
#[derive(Debug)]
struct Busy;

impl FairLimiter {
    fn new(qps: u32) -> Self {
        let qps = qps.max(1);
        Self {
            per_second: f64::from(qps),
            max_waiting: usize::try_from(qps).unwrap_or(usize::MAX),
            state: Arc::new(Mutex::new(LimiterState {
                tokens: f64::from(qps),
                refilled: Instant::now(),
                waiting: HashMap::new(),
                turns: VecDeque::new(),
                dispatching: false,
            })),
        }
    }

    async fn acquire(&self, namespace: &str) -> Result<(), Busy> {
        let rx = {
            let Ok(mut s) = self.state.lock() else {
                return Err(Busy);
            };
            s.refill(self.per_second);
            if s.turns.is_empty() && s.tokens >= 1.0 {
                s.tokens -= 1.0;
                return Ok(());
            }
            let queue = s.waiting.entry(namespace.to_owned()).or_default();
            // Waiters that gave up still hold a place until their turn: drop them first.
            queue.retain(|tx| !tx.is_closed());
            if queue.len() >= self.max_waiting {
                return Err(Busy);
            }
            let first = queue.is_empty();
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            if first && !s.turns.iter().any(|n| n == namespace) {
                s.turns.push_back(namespace.to_owned());
            }
            if !s.dispatching {
                s.dispatching = true;
                let state = Arc::clone(&self.state);
                let per_second = self.per_second;
                tokio::spawn(async move {
                    loop {
                        let wait = {
                            let Ok(mut s) = state.lock() else { return };
                            match s.grant(per_second) {
                                Some(wait) => wait,
                                None => {
                                    s.dispatching = false;
                                    return;
                                }
                            }
                        };
                        tokio::time::sleep(wait).await;
                    }
                });
            }
            rx
        };
        rx.await.map_err(|_| Busy)
    }
}

/// A "not found" is remembered by the peer whose review asked, the namespace and the name.
type NotFoundKey = (Option<IpAddr>, String, String);

/// The webhook's state: settings, the service-account cache, the ConfigMap entries, the Pod
/// Identity accounts and the metrics.
pub struct Webhook {
    /// Shared with the blocking task that computes a large pod's patch.
    config: Arc<Config>,
    cache: Arc<ServiceAccountCache>,
    config_map: RwLock<BTreeMap<(String, String), ConfigMapEntry>>,
    pod_identities: RwLock<HashSet<(String, String)>>,
    metrics: Metrics,
    lookup: Option<Arc<dyn ServiceAccountLookup>>,
    limiter: FairLimiter,
    waiting: WaitSlots,
    /// Accounts the API server said do not exist, by the peer whose review asked, until when
    /// that is believed ([`NOT_FOUND_TTL`]).
    not_found: Mutex<HashMap<NotFoundKey, Instant>>,
    /// Bounds [`Self::review`]; the server passes its own to [`Self::answer`].
    permits: Semaphore,
    timing: Timing,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("config", &self.config)
            .field("cached_service_accounts", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook answering with `config`, reading `cache`, asking `lookup` for missing accounts.
    pub fn new(
        config: Config,
        cache: Arc<ServiceAccountCache>,
        lookup: Option<Arc<dyn ServiceAccountLookup>>,
        timing: Timing,
    ) -> Self {
        Self {
            config: Arc::new(config),
            cache,
            config_map: RwLock::new(BTreeMap::new()),
            pod_identities: RwLock::new(HashSet::new()),
            metrics: Metrics::default(),
            lookup,
            limiter: FairLimiter::new(timing.lookup_qps),
            waiting: WaitSlots::new(
                timing.max_waiting,
                timing.max_waiting_per_peer,
                timing.max_waiting_per_namespace,
            ),
            not_found: Mutex::new(HashMap::new()),
            permits: Semaphore::new(MAX_REVIEWS_IN_FLIGHT),
            timing,
        }
    }

    /// Trust reviews from `peers` (`--trusted-peer`, the API server's addresses): their waiting
    /// reviews are never evicted, and take the place of an untrusted peer's when all are taken
    /// ([`WaitSlots`]).
    #[must_use]
    pub fn with_trusted_peers(mut self, peers: Vec<IpBlock>) -> Self {
        self.waiting.trusted = peers;
        self
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The service-account cache.
    pub fn cache(&self) -> &Arc<ServiceAccountCache> {
        &self.cache
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Replace the ConfigMap entries (`--watch-config-map`).
    pub fn set_config_map(&self, entries: BTreeMap<(String, String), ConfigMapEntry>) {
        if let Ok(mut m) = self.config_map.write() {
            *m = entries;
        }
    }

    /// Replace the Pod Identity accounts (`--watch-container-credentials-config`).
    pub fn set_pod_identities(&self, identities: HashSet<(String, String)>) {
        if let Ok(mut m) = self.pod_identities.write() {
            *m = identities;
        }
    }

    /// Answer one AdmissionReview body: the HTTP status and the response document. At most
    /// [`MAX_REVIEWS_IN_FLIGHT`] of these decode and mutate at once; the server bounds its own
    /// reviews with [`Self::answer`].
    pub async fn review(&self, body: &[u8]) -> (u16, Value) {
        let (status, answer, _permit) = self.respond(body, &self.permits, None).await;
        (status, answer)
    }

    /// [`Self::review`] of a body that came from `peer`: waits for accounts are bounded per
    /// peer address too ([`MAX_WAITING_PER_PEER`]).
    pub async fn review_from(&self, body: &[u8], peer: IpAddr) -> (u16, Value) {
        let (status, answer, _permit) = self.respond(body, &self.permits, Some(peer)).await;
        (status, answer)
    }

    /// Answer one AdmissionReview body with the encoded response, holding one of `permits` only
    /// while decoding, mutating and encoding: a review waiting for its service account (the
    /// grace period, the lookup limiter, the API server) holds none, so reviews for accounts
    /// that do not exist, forged or not, cannot keep others from being answered (review
    /// finding M1). `peer` is the connection's remote address: reviews waiting for accounts
    /// are bounded per peer (review finding M2).
    pub async fn answer(&self, body: &[u8], permits: &Semaphore, peer: IpAddr) -> (u16, Vec<u8>) {
        let (status, answer, permit) = self.respond(body, permits, Some(peer)).await;
        let encoded = serde_json::to_vec(&answer).unwrap_or_default();
        drop(permit);
        (status, encoded)
    }

    async fn respond<'p>(
        &self,
        body: &[u8],
        permits: &'p Semaphore,
        peer: Option<IpAddr>,
    ) -> (u16, Value, Option<SemaphorePermit<'p>>) {
        let start = Instant::now();
        let Ok(permit) = permits.acquire().await else {
            return (503, review::error(None, 503, "shutting down"), None);
        };
        let mut permit = Some(permit);
        let (status, outcome, answer) = match review::decode(body) {
            Err(e) => {
                tracing::warn!(error = %e, "refused a body that is not an AdmissionReview v1");
                let uid = review::uid_of(body);
                let answer = review::error(uid.as_deref(), 400, &e.to_string());
                (400, Outcome::BadRequest, answer)
            }
            Ok(req) if !req.kind.is_empty() && req.kind != "Pod" => {
                (200, Outcome::Skipped, review::allow(&req.uid, &[], &[]))
            }
            Ok(req) => {
                let subject = Subject::of(&req);
                let decided = tokio::time::timeout(
                    self.timing.deadline,
                    self.decide(req, &subject, peer, body, permits, &mut permit),
                )
                .await;
                match decided {
                    Ok(Ok(ops)) => {
                        let outcome = if ops.is_empty() {
                            Outcome::Skipped
                        } else {
                            Outcome::Mutated
                        };
                        tracing::debug!(
                            namespace = %subject.namespace,
                            pod = %subject.pod,
                            service_account = %subject.service_account,
                            operations = ops.len(),
                            "answered"
                        );
                        (200, outcome, review::allow(&subject.uid, &ops, &[]))
                    }
                    Ok(Err(Refusal::Failed(message))) => {
                        self.fail_open(&subject, &message, FAIL_OPEN_WARNING)
                    }
                    Ok(Err(Refusal::Oversized(o))) => {
                        self.metrics.oversized_pod();
                        self.fail_open(&subject, &o.to_string(), OVERSIZED_WARNING)
                    }
                    Err(_) => self.fail_open(
                        &subject,
                        &format!("no decision within {:?}", self.timing.deadline),
                        FAIL_OPEN_WARNING,
                    ),
                }
            }
        };
        self.metrics.observe(outcome, start.elapsed());
        (status, answer, permit)
    }

    fn fail_open(&self, subject: &Subject, message: &str, warning: &str) -> (u16, Outcome, Value) {
        tracing::warn!(
            namespace = %subject.namespace,
            pod = %subject.pod,
            service_account = %subject.service_account,
            error = %message,
            "admitted the pod without credentials (failing open)"
        );
        (
            200,
            Outcome::FailedOpen,
            review::allow(&subject.uid, &[], &[warning.to_owned()]),
        )
    }

    /// The patch for `req`. `permit` is held on entry; it is given up (and the decoded pod with
    /// it, so that a waiting review keeps only its body) while the account is waited for, and
    /// taken again before the pod, decoded again from `body`, is mutated.
    async fn decide<'p>(
        &self,
        req: AdmissionRequest,
        subject: &Subject,
        peer: Option<IpAddr>,
        body: &[u8],
        permits: &'p Semaphore,
        permit: &mut Option<SemaphorePermit<'p>>,
    ) -> Result<Vec<PatchOp>, Refusal> {
        let (namespace, name) = (subject.namespace.as_str(), subject.service_account.as_str());
        let key = (namespace.to_owned(), name.to_owned());
        let mut req = Some(req);
        let mut annotations = self.cache.get(namespace, name);
        if annotations.is_none() {
            let Some(mut slot) = self.waiting.take(peer, namespace) else {
                self.metrics.wait_refused();
                let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
                return Err(Refusal::Failed(format!(
                    "too many reviews waiting for service accounts that are not cached \
                     (namespace {namespace}, peer {peer}); not waiting for {name}"
                )));
            };
            req = None;
            *permit = None;
            annotations = tokio::select! {
                found = self.wait_for_account(peer, namespace, name) => found?,
                () = slot.evicted() => {
                    self.metrics.wait_refused();
                    let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
                    return Err(Refusal::Failed(format!(
                        "gave up waiting for service account {namespace}/{name}: its place went \
                         to a review from a trusted peer or from a peer holding fewer (peer \
                         {peer} held the most of the untrusted peers)"
                    )));
                }
            };
            drop(slot);
            *permit = Some(
                permits
                    .acquire()
                    .await
                    .map_err(|_| Refusal::Failed("shutting down".to_owned()))?,
            );
        }
        if annotations.is_none() {
            self.metrics.missing_service_account();
            tracing::info!(%namespace, service_account = %name, "service account not found");
        }
        let req = match req {
            Some(req) => req,
            // The same bytes decoded before: this cannot fail, but is not trusted to.
            None => review::decode(body).map_err(|e| Refusal::Failed(e.to_string()))?,
        };
        let pod_identity = self
            .pod_identities
            .read()
            .map(|s| s.contains(&key))
            .unwrap_or(false);
        let config_map = self
            .config_map
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned());
        let info = ServiceAccountInfo {
            annotations,
            config_map,
            pod_identity,
        };
        // The mutation is CPU work proportional to the pod: a large pod's goes off the async
        // workers, so that it cannot stall other requests or /healthz (the deadline above still
        // answers on time; a mutation still running then finishes in the background, bounded by
        // the size caps); a small pod's runs here ([`INLINE_MUTATION_MAX_BODY`]).
        let internal = || Refusal::Failed("internal error while computing the patch".to_owned());
        let run = move |req: AdmissionRequest, info: ServiceAccountInfo, config: &Config| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                #[cfg(test)]
                tests::record_mutation_thread(&req.uid);
                mutate(&req.object, &info, config)
            }))
        };
        let computed = if body.len() <= INLINE_MUTATION_MAX_BODY {
            run(req, info, &self.config)
        } else {
            let config = Arc::clone(&self.config);
            tokio::task::spawn_blocking(move || run(req, info, &config))
                .await
                .map_err(|_| internal())?
        };
        computed
            .map_err(|_| internal())?
            .map_err(Refusal::Oversized)
    }

    /// An account the cache lacks: wait up to the grace period for the watch, then ask the API
    /// server (rate-limited, fairly between namespaces). `None` when it does not exist.
    async fn wait_for_account(
        &self,
        peer: Option<IpAddr>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Refusal> {
        let annotations = self
            .cache
            .wait_for(namespace, name, self.timing.grace_period)
            .await;
        let (None, Some(lookup)) = (&annotations, &self.lookup) else {
            return Ok(annotations);
        };
        if self.known_missing(peer, namespace, name) {
            return Ok(None);
        }
        self.limiter.acquire(namespace).await.map_err(|Busy| {
            Refusal::Failed(format!(
                "too many service-account lookups waiting in namespace {namespace}; \
                 not asking the API server for {name}"
            ))
        })?;
        // Another review may have learnt the answer while this one waited for its turn.
        if self.known_missing(peer, namespace, name) {
            return Ok(None);
        }
        self.metrics.api_lookup();
        let found = lookup
            .get(namespace, name)
            .await
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        if found.is_none() {
            self.remember_missing(peer, namespace, name);
        }
        Ok(found)
    }

    /// Whether the API server said, less than `not_found_ttl` ago and for a review from the
    /// same `peer`, that the account does not exist. Per peer (review finding L5): a forger
    /// naming an account about to be created must not make the API server's review of a pod
    /// of that account, created right after it, skip the lookup.
    fn known_missing(&self, peer: Option<IpAddr>, namespace: &str, name: &str) -> bool {
        let Ok(m) = self.not_found.lock() else {
            return false;
        };
        // A lookup by borrowed parts: no allocation on this path.
        m.iter().any(|((p, ns, n), until)| {
            *p == peer && ns == namespace && n == name && Instant::now() < *until
        })
    }

    fn remember_missing(&self, peer: Option<IpAddr>, namespace: &str, name: &str) {
        if let Ok(mut m) = self.not_found.lock() {
            let now = Instant::now();
            m.retain(|_, until| now < *until);
            m.insert(
                (peer, namespace.to_owned(), name.to_owned()),
                now + self.timing.not_found_ttl,
            );
        }
    }
}

/// Who a review is about, kept (small) while the decoded pod is dropped.
#[derive(Debug)]
struct Subject {
    uid: String,
    namespace: String,
    pod: String,
    service_account: String,
}

impl Subject {
    fn of(req: &AdmissionRequest) -> Self {
        let namespace = if req.namespace.is_empty() {
            req.object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            &req.namespace
        };
        Self {
            uid: req.uid.clone(),
            namespace: namespace.to_owned(),
            pod: req.pod_name().to_owned(),
            service_account: req.service_account().to_owned(),
        }
    }
}

/// Places for reviews waiting for a service account the cache lacks: at most `max` in all,
/// `per_peer` from one peer address and `per_namespace` in one namespace from one peer. The
/// namespace comes from the review, so a forger picks it (review finding M1); the peer address
/// it does not (review finding M2): a forger's reviews fill its own address's share, and the API
/// server's, from other addresses, still find places (see [`MAX_WAITING_PER_PEER`] for when
/// they share one).
///
/// Several forgers (pods of their own) can together fill every place within their shares. When
/// all places are taken, a review takes the place of the newest waiter of another peer, which
/// is answered at once (failing open, counted in `waits_refused`):
/// - A review from a trusted peer (`trusted`, `--trusted-peer`: the API server's addresses)
///   takes the place of the newest waiter of the untrusted peer holding the most; a trusted
///   peer's waiters are never evicted, and a trusted address is bounded per address and per
///   namespace like any other (so one forger inside a trusted block holds at most half). Only
///   when trusted peers hold every place is it refused. This is the exact guarantee: however
///   many addresses forge reviews, the API server's reviews get places.
/// - A review from an untrusted peer holding less than its fair share (the places untrusted
///   peers hold over the untrusted peers holding them, the newcomer counted, at least one)
///   takes the place of the newest waiter of the untrusted peer holding the most, if that one
///   holds more than its fair share (so at least two more than the newcomer: the two do not
///   trade places back and forth). This is max-min fairness: two forgers cannot hold every
///   place against a third peer.
///
/// The limit without trusted peers: the API server is one untrusted peer among the others. A
/// tenant with `k` pod addresses can push it down to its fair share, `64/(k+1)` places, and with
/// 64 addresses holding one place each, to none; below 64 addresses it always gets at least one.
/// (Review 24a M2: a floor of places never evicted, tried before, let 8 forgers holding 8 each
/// lock it out entirely, so there is none.) Nor does a "not found" from a peer's lookups decide
/// who goes first: a forger that closes its connections before the grace period ends is never
/// looked up, and a tenant can make the API server's lookup end "not found" (an account deleted
/// right after its pod is created), so it would only favour forgers. Configure `--trusted-peer`
/// (`irsa install --webhook-api-server`) for the exact guarantee. Otherwise a review finding no
/// place fails open at once instead of queueing.
#[derive(Debug)]
struct WaitSlots {
    max: usize,
    per_peer: usize,
    per_namespace: usize,
    trusted: Vec<IpBlock>,
    taken: Mutex<Taken>,
}

/// One review holding a place.
#[derive(Debug)]
struct Waiter {
    id: u64,
    namespace: String,
    /// Told when the place is given to another peer's review.
    evict: oneshot::Sender<()>,
}

/// Places taken: in all, by peer (oldest first), by (peer, namespace). Keys exist only while
/// places are held, so at most `max` of each.
#[derive(Debug, Default)]
struct Taken {
    all: usize,
    next_id: u64,
    by_peer: HashMap<Option<IpAddr>, Vec<Waiter>>,
    by_namespace: HashMap<(Option<IpAddr>, String), usize>,
}

impl Taken {
    /// Give back the place of waiter `id` of `peer`; `None` when it holds none (it was evicted).
    fn remove(&mut self, peer: Option<IpAddr>, id: u64) -> Option<Waiter> {
        let waiters = self.by_peer.get_mut(&peer)?;
        let at = waiters.iter().position(|w| w.id == id)?;
        let waiter = waiters.remove(at);
        if waiters.is_empty() {
            self.by_peer.remove(&peer);
        }
        self.all = self.all.saturating_sub(1);
        let key = (peer, waiter.namespace);
        if let Some(n) = self.by_namespace.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_namespace.remove(&key);
            }
        }
        Some(Waiter {
            namespace: key.1,
            ..waiter
        })
    }

    /// Free a place for a review from a peer holding `from_peer` places while all are taken
    /// ([`WaitSlots`]): for a trusted newcomer, the newest waiter of the untrusted peer holding
    /// the most; for an untrusted one holding less than its fair share, the same if that peer
    /// holds more than the fair share. Whether a place was freed.
    fn evict_for(&mut self, from_peer: usize, newcomer_trusted: bool, trusted: &[IpBlock]) -> bool {
        let untrusted = |peer: &Option<IpAddr>| !is_trusted(trusted, *peer);
        let above = if newcomer_trusted {
            0
        } else {
            // The newcomer's fair share of the untrusted peers' places, itself counted.
            let (held, peers) = self
                .by_peer
                .iter()
                .filter(|(peer, _)| untrusted(peer))
                .fold((0, 0), |(held, peers), (_, w)| (held + w.len(), peers + 1));
            let fair = (held / (peers + usize::from(from_peer == 0)).max(1)).max(1);
            if from_peer >= fair {
                return false;
            }
            fair
        };
        // The one holding the most, then the one whose newest waiter came last.
        let victim = self
            .by_peer
            .iter()
            .filter(|(peer, w)| untrusted(peer) && w.len() > above)
            .filter_map(|(peer, w)| Some((w.len(), w.last()?.id, *peer)))
            .max();
        let Some((_, id, peer)) = victim else {
            return false;
        };
        match self.remove(peer, id) {
            Some(waiter) => {
                // A waiter already answered has dropped its receiver: its place is free anyway.
                let _ = waiter.evict.send(());
                true
            }
            None => false,
        }
    }
}

/// Whether `peer` is in one of the `trusted` blocks.
fn is_trusted(trusted: &[IpBlock], peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|p| trusted.iter().any(|b| b.contains(p)))
}

/// A block of addresses, `ADDRESS/PREFIX` (`--trusted-peer`). Parsing masks host bits; the
/// command line refuses a block with host bits set before it gets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// The block of `address` with a `prefix`-bit network part; `None` when `prefix` is longer
    /// than the address (32 for IPv4, 128 for IPv6).
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let network = match address {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
            _ => return None,
        };
        Some(Self { network, prefix })
    }

    /// Whether `address` is in the block. An IPv4-mapped IPv6 address (a dual-stack listener)
    /// counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        Self::new(address.to_canonical(), self.prefix).is_some_and(|b| b.network == self.network)
    }
}

impl std::fmt::Display for IpBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl std::str::FromStr for IpBlock {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (address, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{prefix:?} is not a prefix length"))?;
        Self::new(address, prefix)
            .ok_or_else(|| format!("{prefix} is longer than the address of {s:?}"))
    }
}

/// One taken place; given back on drop. `evicted` resolves when the place was given to
/// another peer's review ([`WaitSlots`]).
#[derive(Debug)]
struct WaitSlot<'a> {
    slots: &'a WaitSlots,
    peer: Option<IpAddr>,
    id: u64,
    evicted: oneshot::Receiver<()>,
}

impl WaitSlots {
    fn new(max: usize, per_peer: usize, per_namespace: usize) -> Self {
        Self {
            max,
            per_peer,
            per_namespace,
            trusted: Vec::new(),
            taken: Mutex::new(Taken::default()),
        }
    }

    /// A place for a review from `peer` in `namespace`.
    fn take(&self, peer: Option<IpAddr>, namespace: &str) -> Option<WaitSlot<'_>> {
        let mut taken = self.taken.lock().ok()?;
        let taken = &mut *taken;
        let from_peer = taken.by_peer.get(&peer).map_or(0, Vec::len);
        let key = (peer, namespace.to_owned());
        let here = taken.by_namespace.get(&key).copied().unwrap_or(0);
        let trusted = is_trusted(&self.trusted, peer);
        // Trusted or not, one address waits in at most `per_peer` places (review 24c M1): a
        // forger inside a trusted block must not hold every place for good.
        if from_peer >= self.per_peer || here >= self.per_namespace {
            return None;
        }
        if taken.all >= self.max && !taken.evict_for(from_peer, trusted, &self.trusted) {
            return None;
        }
        let (evict, evicted) = oneshot::channel();
        let id = taken.next_id;
        taken.next_id += 1;
        taken.all += 1;
        taken.by_peer.entry(peer).or_default().push(Waiter {
            id,
            namespace: namespace.to_owned(),
            evict,
        });
        *taken.by_namespace.entry(key).or_default() += 1;
        Some(WaitSlot {
            slots: self,
            peer,
            id,
            evicted,
        })
    }
}

impl WaitSlot<'_> {
    /// Resolves when the place was given to another peer's review; never otherwise.
    async fn evicted(&mut self) {
        if (&mut self.evicted).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        taken.remove(self.peer, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        calls: AtomicUsize,
        answer: fn() -> LookupResult,
        delay: Duration,
    }

    impl ServiceAccountLookup for Fake {
        fn get<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> Pin<Box<dyn Future<Output = LookupResult> + Send + 'a>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                (self.answer)()
            })
        }
    }

    /// The thread each request's mutation ran on, by request uid (tests run in parallel).
    static MUTATION_THREADS: Mutex<Vec<(String, std::thread::ThreadId)>> = Mutex::new(Vec::new());

    pub(super) fn record_mutation_thread(uid: &str) {
        if let Ok(mut t) = MUTATION_THREADS.lock() {
            t.push((uid.to_owned(), std::thread::current().id()));
        }
    }

    fn mutation_threads(uid: &str) -> Vec<std::thread::ThreadId> {
        MUTATION_THREADS
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == uid)
            .map(|(_, t)| *t)
            .collect()
    }

    /// A large pod's mutation runs off the async worker, so that it cannot stall other
    /// requests or /healthz; a small one's (microseconds) runs inline, sparing every review the
    /// two thread hand-offs of the blocking pool on the latency-critical cached path.
    #[tokio::test(start_paused = true)]
    async fn a_large_pods_mutation_runs_off_the_async_worker_and_a_small_ones_inline() {
        let w = webhook(None);
        w.cache().apply("ns", "app", &role());
        let (_, answer) = w.review(&body("u-inline", "app")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        // This runtime's only worker is the test's own thread.
        assert_eq!(
            mutation_threads("u-inline"),
            [std::thread::current().id()],
            "a small pod was sent to the blocking pool"
        );
        let containers: Vec<Value> = (0..200)
            .map(|i| json!({"name": format!("c{i}"), "image": "x".repeat(400)}))
            .collect();
        let large = serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-off-worker", "namespace": "ns", "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"metadata": {"name": "p"},
                    "spec": {"serviceAccountName": "app", "containers": containers}}}
        }))
        .unwrap();
        assert!(large.len() > INLINE_MUTATION_MAX_BODY);
        let (_, answer) = w.review(&large).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let threads = mutation_threads("u-off-worker");
        assert_eq!(threads.len(), 1, "{threads:?}");
        assert_ne!(threads[0], std::thread::current().id(), "ran on the worker");
    }

    fn body(uid: &str, sa: &str) -> Vec<u8> {
        body_in("ns", uid, sa)
    }

    fn body_in(namespace: &str, uid: &str, sa: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "namespace": namespace, "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"metadata": {"name": "p"}, "spec": {"serviceAccountName": sa, "containers": [{"name": "a"}]}}}
        }))
        .unwrap()
    }

    fn role() -> BTreeMap<String, String> {
        [(
            "eks.amazonaws.com/role-arn".to_owned(),
            "arn:aws:iam::111122223333:role/a".to_owned(),
        )]
        .into()
    }

    fn webhook(lookup: Option<Arc<dyn ServiceAccountLookup>>) -> Webhook {
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        Webhook::new(config, cache, lookup, Timing::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_account_gets_a_patch_with_the_requests_uid() {
        let w = webhook(None);
        w.cache().apply("ns", "app", &role());
        let (status, answer) = w.review(&body("uid-1", "app")).await;
        assert_eq!(status, 200);
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], "uid-1");
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        assert_eq!(w.metrics().count(Outcome::Mutated), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_account_is_asked_of_the_api_server_after_the_grace_period() {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(Some(role())),
            delay: Duration::ZERO,
        });
        let w = webhook(Some(fake.clone()));
        let start = Instant::now();
        let (_, answer) = w.review(&body("u", "fresh")).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(100),
            "waited the grace period"
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        // Not found anywhere: admitted unchanged and counted.
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(None),
            delay: Duration::ZERO,
        });
        let w = webhook(Some(fake));
        let (_, answer) = w.review(&body("u", "nope")).await;
        assert!(answer["response"].get("patch").is_none());
        assert_eq!(w.metrics().missing_service_accounts(), 1);
        assert_eq!(w.metrics().count(Outcome::Skipped), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_timeouts_fail_open_with_a_warning() {
        let failing = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || {
                Err(LookupError {
                    namespace: "ns".into(),
                    name: "x".into(),
                    message: "connection refused".into(),
                })
            },
            delay: Duration::ZERO,
        });
        let w = webhook(Some(failing));
        let (status, answer) = w.review(&body("u-err", "x")).await;
        assert_eq!(status, 200);
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["uid"], "u-err");
        assert!(answer["response"].get("patch").is_none());
        let warning = answer["response"]["warnings"][0].as_str().unwrap();
        // The error text (API server address, RBAC denials) goes to the logs, not to the tenant.
        assert!(!warning.contains("connection refused"), "{warning}");
        assert!(warning.contains("without AWS credentials"), "{warning}");
        assert_eq!(w.metrics().count(Outcome::FailedOpen), 1);

        let slow = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(Some(role())),
            delay: Duration::from_secs(60),
        });
        let w = webhook(Some(slow));
        let start = Instant::now();
        let (_, answer) = w.review(&body("u-slow", "x")).await;
        assert_eq!(start.elapsed(), Timing::default().deadline);
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["warnings"][0].as_str().unwrap(), warning);
    }

    #[tokio::test(start_paused = true)]
    async fn garbage_gets_an_error_answer_and_other_kinds_pass() {
        let w = webhook(None);
        let (status, answer) = w.review(b"{\"apiVersion\": 3").await;
        assert_eq!(status, 400);
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(w.metrics().count(Outcome::BadRequest), 1);
        let mut other: Value = serde_json::from_slice(&body("u", "a")).unwrap();
        other["request"]["kind"]["kind"] = json!("Deployment");
        let (status, answer) = w.review(&serde_json::to_vec(&other).unwrap()).await;
        assert_eq!(status, 200);
        assert!(answer["response"].get("patch").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn api_lookups_are_rate_limited() {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(None),
            delay: Duration::ZERO,
        });
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        let timing = Timing {
            grace_period: Duration::ZERO,
            lookup_qps: 2,
            ..Timing::default()
        };
        let w = Webhook::new(config, cache, Some(fake.clone()), timing);
        let start = Instant::now();
        // Four names: "not found" is remembered per name.
        for i in 0..4 {
            w.review(&body(&format!("u{i}"), &format!("x{i}"))).await;
        }
        // Two from the burst, then one every half second.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
    }

    /// Review finding M1: a flood of reviews in one namespace whose service accounts are not
    /// cached (forged ones, from anything that reaches the port) used up the lookup rate, and
    /// a pod in another namespace waited behind all of them (past the deadline: no
    /// credentials). Now the flood waits its turn, at most `lookup_qps` of it, and the rest
    /// of it fails open at once.
    #[tokio::test(start_paused = true)]
    async fn a_flood_in_one_namespace_does_not_starve_lookups_in_another() {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(None),
            delay: Duration::ZERO,
        });
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        let timing = Timing {
            grace_period: Duration::ZERO,
            lookup_qps: 4,
            ..Timing::default()
        };
        let w = Arc::new(Webhook::new(config, cache, Some(fake.clone()), timing));
        let flood: Vec<_> = (0..20)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.review(&body_in("flood", &format!("f{i}"), &format!("sa{i}")))
                        .await
                })
            })
            .collect();
        // The burst (4) is spent, 4 wait their turn, and the other 12 are refused at once.
        for _ in 0..10_000 {
            if w.metrics().count(Outcome::FailedOpen) == 12 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(w.metrics().count(Outcome::FailedOpen), 12);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);

        let start = Instant::now();
        let (status, answer) = w.review(&body_in("other", "o", "app")).await;
        assert_eq!(status, 200);
        assert!(answer["response"].get("warnings").is_none(), "{answer}");
        // One flood lookup (a quarter second) and then its own: not behind all four.
        assert!(
            start.elapsed() <= Duration::from_millis(550),
            "the other namespace waited {:?} behind the flood",
            start.elapsed()
        );
        for f in flood {
            f.await.unwrap();
        }
        // 4 at once, then 4 a second: never more than the rate allows.
        assert_eq!(fake.calls.load(Ordering::SeqCst), 9);
        assert!(
            start.elapsed() <= Duration::from_millis(1300),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(w.metrics().missing_service_accounts(), 9);
    }

    fn role_webhook(lookup: Option<Arc<dyn ServiceAccountLookup>>, timing: Timing) -> Arc<Webhook> {
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        cache.apply("ns", "app", &role());
        Arc::new(Webhook::new(config, cache, lookup, timing))
    }

    /// Review finding M1: reviews waiting for accounts the cache lacks are bounded, in all and
    /// per namespace; the excess is admitted at once, unchanged, with a warning and a metric,
    /// instead of queueing; a place is given back when its review is answered.
    #[tokio::test(start_paused = true)]
    async fn reviews_beyond_the_waiting_bounds_fail_open_at_once() {
        let timing = Timing {
            grace_period: Duration::from_secs(3),
            max_waiting: 3,
            max_waiting_per_namespace: 2,
            ..Timing::default()
        };
        let w = role_webhook(None, timing);
        let waiters: Vec<_> = [("a", "w1"), ("a", "w2"), ("b", "w3")]
            .into_iter()
            .map(|(ns, uid)| {
                let w = w.clone();
                tokio::spawn(
                    async move { w.review(&body_in(ns, uid, &format!("ghost-{uid}"))).await },
                )
            })
            .collect();
        for _ in 0..10_000 {
            if w.cache().waiting() == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(w.cache().waiting(), 3);
        let start = Instant::now();
        // A third in namespace a (over its bound), one in namespace c (over the overall bound).
        for (ns, uid) in [("a", "x1"), ("c", "x2")] {
            let (status, answer) = w.review(&body_in(ns, uid, "ghost")).await;
            assert_eq!(status, 200);
            assert_eq!(answer["response"]["uid"], uid);
            assert_eq!(answer["response"]["allowed"], true);
            assert!(answer["response"].get("patch").is_none(), "{answer}");
            let warning = answer["response"]["warnings"][0].as_str().unwrap();
            assert!(warning.contains("without AWS credentials"), "{warning}");
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "refused at once");
        assert_eq!(w.metrics().waits_refused(), 2);
        assert_eq!(w.metrics().count(Outcome::FailedOpen), 2);
        // A cached account needs no place, in a full namespace too.
        w.cache().apply("a", "app", &role());
        let (_, answer) = w.review(&body_in("a", "real", "app")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        for waiter in waiters {
            let (_, answer) = waiter.await.unwrap();
            assert!(answer["response"].get("warnings").is_none(), "{answer}");
        }
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(w.metrics().missing_service_accounts(), 3);
        // Their places were given back.
        let late = {
            let w = w.clone();
            tokio::spawn(async move { w.review(&body_in("a", "late", "ghost")).await })
        };
        let (_, answer) = late.await.unwrap();
        assert!(answer["response"].get("warnings").is_none(), "{answer}");
        assert_eq!(w.metrics().waits_refused(), 2);
    }

    /// Review finding M1: a review asking the API server (behind the limiter, then the lookup
    /// itself) holds no review permit, so slow lookups for forged accounts leave the permits to
    /// reviews that can be answered.
    #[tokio::test(start_paused = true)]
    async fn a_slow_lookup_holds_no_review_permit() {
        let slow = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            answer: || Ok(None),
            delay: Duration::from_secs(4),
        });
        let timing = Timing {
            grace_period: Duration::ZERO,
            ..Timing::default()
        };
        let w = role_webhook(Some(slow.clone()), timing);
        let permits = Arc::new(Semaphore::new(2));
        let forged: Vec<_> = (0..8)
            .map(|i| {
                let (w, permits) = (w.clone(), permits.clone());
                tokio::spawn(async move {
                    w.answer(
                        &body_in("forged", &format!("f{i}"), &format!("ghost{i}")),
                        &permits,
                        IpAddr::from([10, 0, 0, 9]),
                    )
                    .await
                })
            })
            .collect();
        for _ in 0..10_000 {
            if slow.calls.load(Ordering::SeqCst) == 8 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(slow.calls.load(Ordering::SeqCst), 8, "all eight are asking");
        let start = Instant::now();
        let (status, answer) = w
            .answer(
                &body_in("ns", "real", "app"),
                &permits,
                IpAddr::from([10, 0, 0, 1]),
            )
            .await;
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        for f in forged {
            let (_, answer) = f.await.unwrap();
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert!(answer["response"].get("patch").is_none(), "{answer}");
        }
        assert_eq!(permits.available_permits(), 2, "every permit given back");
    }

    /// The API server as a lookup: the accounts in `existing` exist (with a role), no other.
    #[derive(Default)]
    struct ByName {
        calls: AtomicUsize,
        existing: Mutex<HashSet<(String, String)>>,
    }

    impl ByName {
        fn create(&self, namespace: &str, name: &str) {
            self.existing
                .lock()
                .unwrap()
                .insert((namespace.to_owned(), name.to_owned()));
        }
    }

    impl ServiceAccountLookup for ByName {
        fn get<'a>(
            &'a self,
            namespace: &'a str,
            name: &'a str,
        ) -> Pin<Box<dyn Future<Output = LookupResult> + Send + 'a>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let found = self
                .existing
                .lock()
                .unwrap()
                .contains(&(namespace.to_owned(), name.to_owned()));
            Box::pin(async move { Ok(found.then(role)) })
        }
    }

    const FORGER: [u8; 4] = [10, 0, 0, 66];
    const API_SERVER: [u8; 4] = [10, 0, 0, 1];

    /// Review finding M2: forged reviews naming accounts that do not exist, from one peer over
    /// eight namespaces (the namespace is the forger's to choose), took all 64 places, and a
    /// real pod whose account was not cached yet failed open at once, in another namespace and
    /// in one of the forger's alike. Places are now bounded per peer address too.
    #[tokio::test(start_paused = true)]
    async fn forged_reviews_from_one_peer_over_many_namespaces_leave_places_for_the_api_server() {
        let api = Arc::new(ByName::default());
        let w = role_webhook(Some(api.clone()), Timing::default());
        let forged: Vec<_> = (0..8)
            .flat_map(|n| (0..16).map(move |i| (n, i)))
            .map(|(n, i)| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.review_from(
                        &body_in(&format!("f{n}"), &format!("f{n}-{i}"), &format!("ghost{i}")),
                        IpAddr::from(FORGER),
                    )
                    .await
                })
            })
            .collect();
        // Every forged review has taken a place or been refused one.
        for _ in 0..10_000 {
            if w.cache().waiting() + w.metrics().waits_refused() as usize == forged.len() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            w.cache().waiting() + w.metrics().waits_refused() as usize,
            forged.len()
        );
        // Real pods whose accounts exist but are not cached yet: in a namespace of the forger's
        // and in another, from the API server's address.
        api.create("f3", "app");
        api.create("team", "app");
        let real: Vec<_> = [("f3", "real-1"), ("team", "real-2")]
            .into_iter()
            .map(|(ns, uid)| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.review_from(&body_in(ns, uid, "app"), IpAddr::from(API_SERVER))
                        .await
                })
            })
            .collect();
        for r in real {
            let (status, answer) = r.await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
            assert!(answer["response"].get("warnings").is_none(), "{answer}");
        }
        for f in forged {
            let (_, answer) = f.await.unwrap();
            assert!(answer["response"].get("patch").is_none(), "{answer}");
        }
        // The forger had its share, no more.
        assert_eq!(
            w.metrics().waits_refused() as usize,
            8 * 16 - MAX_WAITING_PER_PEER
        );
    }

    /// Review finding M2 (two peers): two forging pods, each within its per-peer share, held all
    /// 64 places together, and a real review from the API server's address failed open at once.
    /// Now a review from a peer holding less than its fair share takes the place of the newest
    /// waiter of the peer holding the most, which is answered (failing open) at once.
    #[tokio::test(start_paused = true)]
    async fn two_forging_peers_holding_every_place_leave_one_to_a_third_peer() {
        let timing = Timing {
            grace_period: Duration::from_secs(3),
            ..Timing::default()
        };
        let w = role_webhook(None, timing);
        let forgers = [IpAddr::from([10, 0, 0, 66]), IpAddr::from([10, 0, 0, 67])];
        let forged: Vec<_> = forgers
            .into_iter()
            .enumerate()
            .flat_map(|(f, peer)| (0..MAX_WAITING_PER_PEER).map(move |i| (f, peer, i)))
            .map(|(f, peer, i)| {
                let w = w.clone();
                // Two namespaces each, within the per-namespace bound.
                let ns = format!("f{f}-{}", i % 2);
                tokio::spawn(async move {
                    w.review_from(&body_in(&ns, &format!("f{f}-{i}"), "ghost"), peer)
                        .await
                })
            })
            .collect();
        for _ in 0..10_000 {
            if w.cache().waiting() == MAX_WAITING {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            w.cache().waiting(),
            MAX_WAITING,
            "the forgers hold every place"
        );
        assert_eq!(w.metrics().waits_refused(), 0);
        let start = Instant::now();
        let real = {
            let w = w.clone();
            tokio::spawn(async move {
                w.review_from(&body_in("team", "real", "app"), IpAddr::from(API_SERVER))
                    .await
            })
        };
        // One forged review is answered at once to make room.
        for _ in 0..10_000 {
            if w.metrics().waits_refused() == 1 || real.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!real.is_finished(), "{:?}", real.await.unwrap().1);
        assert_eq!(w.metrics().waits_refused(), 1);
        assert_eq!(w.metrics().count(Outcome::FailedOpen), 1);
        assert_eq!(start.elapsed(), Duration::ZERO, "evicted at once");
        // A forger coming back holds more than its fair share now: refused, evicting no one.
        let (_, answer) = w
            .review_from(&body_in("f0-0", "again", "ghost"), forgers[0])
            .await;
        assert!(answer["response"].get("warnings").is_some(), "{answer}");
        assert_eq!(w.metrics().waits_refused(), 2);
        assert_eq!(w.cache().waiting(), MAX_WAITING);
        // The account appears (the watch delivers it): the real pod gets its credentials.
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.cache().apply("team", "app", &role());
        let (status, answer) = real.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
        assert!(answer["response"].get("warnings").is_none(), "{answer}");
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        let mut evicted = 0;
        for f in forged {
            let (_, answer) = f.await.unwrap();
            assert!(answer["response"].get("patch").is_none(), "{answer}");
            evicted += usize::from(answer["response"].get("warnings").is_some());
        }
        assert_eq!(evicted, 1, "only one forged review gave up its place");
        assert_eq!(w.metrics().waits_refused(), 2);
    }

    /// Review 24a, finding M2: under the floor of 8 places never evicted, eight forger
    /// addresses holding 8 places each (every place) left nothing that could be evicted, and
    /// every review of the API server for an account not cached yet failed open at once. Without
    /// the floor (plain max-min fairness) the API server takes places from peers above their
    /// fair share up to its own, 64/9 = 7 here.
    #[tokio::test(start_paused = true)]
    async fn eight_forging_peers_at_eight_places_each_do_not_lock_out_the_api_server() {
        let timing = Timing {
            grace_period: Duration::from_secs(3),
            ..Timing::default()
        };
        let w = role_webhook(None, timing);
        let spawn = |ns: String, uid: String, sa: &'static str, peer: IpAddr| {
            let w = w.clone();
            tokio::spawn(async move { w.review_from(&body_in(&ns, &uid, sa), peer).await })
        };
        let forged: Vec<_> = (0..64u8)
            .map(|i| {
                let peer = IpAddr::from([10, 0, 1, i / 8]);
                spawn(format!("f{}", i / 8), format!("f-{i}"), "ghost", peer)
            })
            .collect();
        for _ in 0..10_000 {
            if w.cache().waiting() == MAX_WAITING {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            w.cache().waiting(),
            MAX_WAITING,
            "the forgers hold every place"
        );
        assert_eq!(w.metrics().waits_refused(), 0);
        let real: Vec<_> = (0..8)
            .map(|i| {
                spawn(
                    "team".into(),
                    format!("real-{i}"),
                    "new",
                    IpAddr::from(API_SERVER),
                )
            })
            .collect();
        // Each review either took a forger's place (answered at once) or was refused one.
        for _ in 0..10_000 {
            if w.metrics().waits_refused() == 8 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(w.metrics().waits_refused(), 8);
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.cache().apply("team", "new", &role());
        let mut served = 0;
        for r in real {
            let (status, answer) = r.await.unwrap();
            assert_eq!(status, 200);
            served += usize::from(answer["response"]["patchType"] == "JSONPatch");
        }
        assert_eq!(served, MAX_WAITING / 9, "the API server got its fair share");
        let mut evicted = 0;
        for f in forged {
            let (_, answer) = f.await.unwrap();
            assert!(answer["response"].get("patch").is_none(), "{answer}");
            evicted += usize::from(answer["response"].get("warnings").is_some());
        }
        assert_eq!(
            evicted,
            MAX_WAITING / 9,
            "one forged review per place taken"
        );
    }

    /// Review finding M1 (review 23): the victim of an eviction was the newest waiter of the
    /// peer holding the most, and during a real burst that is the API server. Two forging pods
    /// took the places the API server left, then one forged review from each of many more pod
    /// addresses took one of the API server's places each (the fair share fell with every new
    /// peer): its waiting reviews were admitted at once without credentials, all but three of
    /// its 30 here. With the API server's address trusted (`--trusted-peer`) it now keeps all
    /// of them. Untrusted, it is one peer among 59 and keeps its fair share, at least one: the
    /// floor of 8 this test pinned before made 8 forgers able to lock it out (review 24a M2),
    /// so it is gone, and this is the documented limit.
    #[tokio::test(start_paused = true)]
    async fn many_forging_peers_cannot_evict_a_trusted_api_servers_waiters() {
        assert_eq!(burst_among_many_forging_peers(true).await, 30);
        assert!(burst_among_many_forging_peers(false).await >= 1);
    }

    /// The API server's 30 waiting reviews, 34 forged ones from two addresses, then one each
    /// from 56 more: how many of the API server's got credentials.
    async fn burst_among_many_forging_peers(trusted: bool) -> usize {
        let timing = Timing {
            grace_period: Duration::from_secs(3),
            ..Timing::default()
        };
        let w = trusting(&[API_SERVER_BLOCK], trusted, timing);
        let spawn = |ns: String, uid: String, sa: &'static str, peer: IpAddr| {
            let w = w.clone();
            tokio::spawn(async move { w.review_from(&body_in(&ns, &uid, sa), peer).await })
        };
        let settle = |w: Arc<Webhook>, done: Box<dyn Fn(&Webhook) -> bool>| async move {
            for _ in 0..10_000 {
                if done(&w) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        // A real burst: 30 pods of a new account the watch has not delivered yet, spread over
        // two namespaces (within the per-namespace bound).
        let real: Vec<_> = (0..30)
            .map(|i| {
                let ns = format!("team{}", i % 2);
                spawn(ns, format!("real-{i}"), "new", IpAddr::from(API_SERVER))
            })
            .collect();
        settle(w.clone(), Box::new(|w| w.cache().waiting() == 30)).await;
        assert_eq!(w.cache().waiting(), 30);
        // Two forging pods take the other 34 places, 17 each.
        let mut forged: Vec<_> = (0..34u8)
            .map(|i| {
                let peer = IpAddr::from([10, 0, 1, i % 2]);
                spawn(format!("f{}", i % 4), format!("f-{i}"), "ghost", peer)
            })
            .collect();
        settle(w.clone(), Box::new(|w| w.cache().waiting() == MAX_WAITING)).await;
        assert_eq!(w.cache().waiting(), MAX_WAITING, "every place is taken");
        assert_eq!(w.metrics().waits_refused(), 0);
        // Then one forged review from each of 56 more pod addresses.
        let singles = 56;
        forged.extend((0..singles).map(|i| {
            let peer = IpAddr::from([10, 0, 2, i]);
            spawn(format!("g{i}"), format!("g-{i}"), "ghost", peer)
        }));
        // Each one took a place from another review or was refused one.
        settle(
            w.clone(),
            Box::new(move |w| w.metrics().waits_refused() == u64::from(singles)),
        )
        .await;
        assert_eq!(w.metrics().waits_refused(), u64::from(singles));
        // The account appears: the API server's reviews still waiting get their credentials.
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.cache().apply("team0", "new", &role());
        w.cache().apply("team1", "new", &role());
        let mut served = 0;
        for r in real {
            let (status, answer) = r.await.unwrap();
            assert_eq!(status, 200);
            if answer["response"]["patchType"] == "JSONPatch" {
                assert!(answer["response"].get("warnings").is_none(), "{answer}");
                served += 1;
            } else {
                let warning = answer["response"]["warnings"][0].as_str().unwrap();
                assert!(warning.contains("without AWS credentials"), "{warning}");
            }
        }
        let mut evicted_from_the_two = 0;
        for (i, f) in forged.into_iter().enumerate() {
            let (_, answer) = f.await.unwrap();
            assert!(answer["response"].get("patch").is_none(), "{answer}");
            if i < 34 && answer["response"].get("warnings").is_some() {
                evicted_from_the_two += 1;
            }
        }
        // The two forgers holding more than their fair share gave places up too.
        assert!(evicted_from_the_two > 0);
        served
    }

    const API_SERVER_BLOCK: &str = "10.0.0.0/30";

    /// [`role_webhook`] trusting `blocks` if `trusted`.
    fn trusting(blocks: &[&str], trusted: bool, timing: Timing) -> Arc<Webhook> {
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        let blocks = blocks.iter().map(|b| b.parse().unwrap()).collect();
        let w = Webhook::new(config, cache, None, timing);
        Arc::new(if trusted {
            w.with_trusted_peers(blocks)
        } else {
            w
        })
    }

    /// Review 24a, finding M2, fix (a): with the API server's addresses trusted, forgers from
    /// however many addresses holding every place give them up, one per review of the API
    /// server, until the API server holds all 64; only then is its next review refused. A
    /// forger's review finds nothing it may take.
    #[tokio::test(start_paused = true)]
    async fn a_trusted_api_server_takes_every_place_from_many_forging_peers() {
        let timing = Timing {
            grace_period: Duration::from_secs(3),
            ..Timing::default()
        };
        let w = trusting(&[API_SERVER_BLOCK], true, timing);
        let spawn = |ns: String, uid: String, sa: &'static str, peer: IpAddr| {
            let w = w.clone();
            tokio::spawn(async move { w.review_from(&body_in(&ns, &uid, sa), peer).await })
        };
        let settle = |w: Arc<Webhook>, done: Box<dyn Fn(&Webhook) -> bool>| async move {
            for _ in 0..10_000 {
                if done(&w) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        // 32 forger addresses, two places each.
        let forged: Vec<_> = (0..64u8)
            .map(|i| {
                let peer = IpAddr::from([10, 0, 1, i / 2]);
                spawn(format!("f{}", i / 2), format!("f-{i}"), "ghost", peer)
            })
            .collect();
        settle(w.clone(), Box::new(|w| w.cache().waiting() == MAX_WAITING)).await;
        assert_eq!(
            w.cache().waiting(),
            MAX_WAITING,
            "the forgers hold every place"
        );
        // 65 reviews from the API server's first address, 16 in each of four namespaces:
        // a trusted address is bounded per address too (review 24c M1: else one forger inside
        // a trusted block held every place for good), so 32 wait and the 33rd is refused.
        let first: Vec<_> = (0..33)
            .map(|i| {
                let ns = format!("team{}", i % 4);
                spawn(ns, format!("real-{i}"), "new", IpAddr::from(API_SERVER))
            })
            .collect();
        settle(w.clone(), Box::new(|w| w.metrics().waits_refused() == 33)).await;
        for _ in 0..10_000 {
            if first.iter().any(|r| r.is_finished()) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            first.iter().filter(|r| r.is_finished()).count(),
            1,
            "one address, trusted or not, waits in at most 32 places"
        );
        assert_eq!(
            w.metrics().waits_refused(),
            33,
            "32 forged reviews gave up their places, and the API server's 33rd was refused"
        );
        // Its second replica takes the other 32.
        let second: Vec<_> = (33..65)
            .map(|i| {
                let ns = format!("team{}", i % 4);
                spawn(ns, format!("real-{i}"), "new", IpAddr::from([10, 0, 0, 2]))
            })
            .collect();
        settle(w.clone(), Box::new(|w| w.metrics().waits_refused() == 65)).await;
        assert_eq!(
            w.metrics().waits_refused(),
            65,
            "every forged review gave up its place"
        );
        assert_eq!(w.cache().waiting(), MAX_WAITING);
        let mut real = Vec::new();
        let mut refused = 0;
        for r in first.into_iter().chain(second) {
            if r.is_finished() {
                let (_, answer) = r.await.unwrap();
                assert!(answer["response"].get("warnings").is_some(), "{answer}");
                refused += 1;
            } else {
                real.push(r);
            }
        }
        assert_eq!((refused, real.len()), (1, 64));
        // Trusted peers hold every place: another trusted review is refused, as is a forger's.
        let (_, answer) = w
            .review_from(&body_in("team9", "real-65", "new"), [10, 0, 0, 3].into())
            .await;
        assert!(answer["response"].get("warnings").is_some(), "{answer}");
        let (_, answer) = w
            .review_from(&body_in("g", "g", "ghost"), [10, 0, 2, 1].into())
            .await;
        assert!(answer["response"].get("warnings").is_some(), "{answer}");
        assert_eq!(w.metrics().waits_refused(), 67);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ns in 0..4 {
            w.cache().apply(&format!("team{ns}"), "new", &role());
        }
        for r in real {
            let (_, answer) = r.await.unwrap();
            assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
            assert!(answer["response"].get("warnings").is_none(), "{answer}");
        }
        for f in forged {
            let (_, answer) = f.await.unwrap();
            assert!(answer["response"].get("warnings").is_some(), "{answer}");
        }
    }

    #[test]
    fn ip_blocks_contain_their_addresses() {
        let b: IpBlock = "10.0.0.0/30".parse().unwrap();
        assert!(b.contains([10, 0, 0, 3].into()));
        assert!(!b.contains([10, 0, 0, 4].into()));
        assert!(
            b.contains("::ffff:10.0.0.1".parse().unwrap()),
            "IPv4-mapped"
        );
        assert_eq!(b.to_string(), "10.0.0.0/30");
        let v6: IpBlock = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains([10, 0, 0, 1].into()));
        let all: IpBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains([192, 0, 2, 1].into()));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "10.0.0.0/a"] {
            assert!(bad.parse::<IpBlock>().is_err(), "{bad}");
        }
    }

    /// Review finding M2: "not found" from the API server is remembered for a second, so
    /// forged reviews repeating a name cost one lookup, not one each; then it is asked again,
    /// and an account created meanwhile is served. One the watch delivers is served at once.
    #[tokio::test(start_paused = true)]
    async fn not_found_is_remembered_briefly_then_asked_again() {
        let api = Arc::new(ByName::default());
        let timing = Timing {
            grace_period: Duration::ZERO,
            ..Timing::default()
        };
        let w = role_webhook(Some(api.clone()), timing);
        let start = Instant::now();
        for i in 0..10 {
            let (_, answer) = w
                .review_from(
                    &body_in("ns", &format!("f{i}"), "late"),
                    IpAddr::from(FORGER),
                )
                .await;
            assert!(answer["response"].get("patch").is_none(), "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(start.elapsed() < NOT_FOUND_TTL);
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            1,
            "one lookup for ten reviews"
        );
        assert_eq!(w.metrics().missing_service_accounts(), 10);
        // The account is created; once the second has passed, the next review asks again.
        api.create("ns", "late");
        tokio::time::sleep_until(start + NOT_FOUND_TTL).await;
        let (_, answer) = w
            .review_from(&body_in("ns", "real", "late"), IpAddr::from(API_SERVER))
            .await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
        // Remembered as missing, but the watch delivers it: the cache is asked first.
        w.review(&body_in("ns", "g", "other")).await;
        assert_eq!(api.calls.load(Ordering::SeqCst), 3);
        w.cache().apply("ns", "other", &role());
        let (_, answer) = w.review(&body_in("ns", "real-2", "other")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
        assert_eq!(api.calls.load(Ordering::SeqCst), 3);
    }

    /// Review finding L5: a forger named an account about to be created; the API server said it
    /// does not exist, and that was remembered for everyone, so the API server's own review of
    /// a pod of that account, created right after it, skipped the lookup and was admitted
    /// without credentials. "Not found" is now remembered per peer address.
    #[tokio::test(start_paused = true)]
    async fn a_forgers_not_found_is_not_believed_for_the_api_servers_reviews() {
        let api = Arc::new(ByName::default());
        let timing = Timing {
            grace_period: Duration::ZERO,
            ..Timing::default()
        };
        let w = role_webhook(Some(api.clone()), timing);
        let start = Instant::now();
        let (_, answer) = w
            .review_from(&body_in("ns", "forged", "soon"), IpAddr::from(FORGER))
            .await;
        assert!(answer["response"].get("patch").is_none(), "{answer}");
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);
        // The account is created, and a pod of it right after.
        api.create("ns", "soon");
        let (_, answer) = w
            .review_from(&body_in("ns", "real", "soon"), IpAddr::from(API_SERVER))
            .await;
        assert!(start.elapsed() < NOT_FOUND_TTL);
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
        // The forger's own repeats still cost no lookup within the second.
        let (_, answer) = w
            .review_from(&body_in("ns", "forged-2", "soon"), IpAddr::from(FORGER))
            .await;
        assert!(answer["response"].get("patch").is_none(), "{answer}");
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_oversized_pod_is_admitted_unchanged_with_a_warning_and_counted() {
        let w = webhook(None);
        // The longest role ARN the webhook accepts (2048 bytes) and 2,000 containers: the full
        // patch would be several megabytes.
        let prefix = "arn:aws:iam::111122223333:role/";
        let arn = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
        w.cache().apply(
            "ns",
            "big",
            &[("eks.amazonaws.com/role-arn".to_owned(), arn)].into(),
        );
        let containers: Vec<Value> = (0..2_000)
            .map(|i| json!({"name": format!("c{i}")}))
            .collect();
        let body = serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-big", "namespace": "ns", "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"metadata": {"name": "p"},
                    "spec": {"serviceAccountName": "big", "containers": containers}}}
        }))
        .unwrap();
        let (status, answer) = w.review(&body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["uid"], "u-big");
        assert!(answer["response"].get("patch").is_none(), "no patch");
        let size = serde_json::to_vec(&answer).unwrap().len();
        assert!(size < 1 << 20, "answer of {size} bytes");
        let warning = answer["response"]["warnings"][0].as_str().unwrap();
        assert!(warning.contains("without AWS credentials"), "{warning}");
        assert_eq!(w.metrics().oversized(), 1);
        assert_eq!(w.metrics().count(Outcome::FailedOpen), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pod_identity_and_config_map_sources_are_used() {
        let w = webhook(None);
        w.cache().apply("ns", "cc", &BTreeMap::new());
        w.set_pod_identities([("ns".to_owned(), "cc".to_owned())].into());
        let (_, answer) = w.review(&body("u", "cc")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        w.cache().apply("ns", "cm", &BTreeMap::new());
        w.set_config_map(
            [(
                ("ns".to_owned(), "cm".to_owned()),
                ConfigMapEntry {
                    role_arn: "arn:aws:iam::111122223333:role/cm".into(),
                    ..ConfigMapEntry::default()
                },
            )]
            .into(),
        );
        let (_, answer) = w.review(&body("u2", "cm")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
    }
}
