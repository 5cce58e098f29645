//! Leader election over a `coordination.k8s.io/v1` Lease with client-go's semantics, on this
//! process's monotonic clock only.
//!
//! - A candidate remembers the last Lease record it saw and *when it saw it change* (on its own
//!   `tokio::time::Instant`). It takes the Lease over only when the record has not changed for
//!   the record's `leaseDurationSeconds` on that clock. `renewTime` is written (from the
//!   injected wall clock, for people reading the Lease) but never compared with our clock, so
//!   skewed wall clocks cannot make two replicas lead at once.
//! - The holder leads until `start of its last successful renew + renew_deadline`, a deadline
//!   that [`Leadership::is_leader`] evaluates at call time: a renew that hangs loses leadership
//!   on time, whatever the loop is doing. Since `renew_deadline < lease_duration` and a
//!   candidate cannot have seen the renewed record before the renew was sent, the holder stops
//!   before anyone may take over.
//! - Every Lease request is bounded by `renew_deadline`, and every round by the leadership
//!   deadline (holder) or `renew_deadline` (candidate); updates are compare-and-swap on the
//!   `resourceVersion`.
//! - On shutdown the holder stops leading and then releases the Lease (no holder), so that a
//!   successor takes over at once; the runtime resolves the shutdown future only after its
//!   writers drained.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use irsa_aws::Clock;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

/// How the election runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Where this process stands with the Lease at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// Leader election is off: always leading.
    Unbounded,
    /// Leading until this instant (monotonic clock), unless renewed before, in the term with
    /// this number: renewals keep the number, leadership won after it ended takes a new one.
    Until(Instant, u64),
    /// Not leading.
    Ended,
}

/// The leadership deadline and the number of its term, shared by the elector and its readers
/// (`None`: not leading).
type Claim = Arc<Mutex<Option<(Instant, u64)>>>;

/// Whether this process leads, as seen by readers: a deadline on the monotonic clock.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    /// `None`: always leading (leader election off).
    until: Option<Claim>,
}

impl Leadership {
    /// Always leading (leader election off).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // Keep the channel open for the process's life.
        std::mem::forget(tx);
        Self { rx, until: None }
    }

    /// Whether this process holds the Lease now: evaluated against the deadline at each call,
    /// so call it right before a request leaves.
    pub fn is_leader(&self) -> bool {
        self.term() != Term::Ended
    }

    /// How long this process may still write, as of now: the deadline on the monotonic clock
    /// that a write must finish by (a renew moves it later; a write is bounded by the one it
    /// saw when it left).
    pub fn term(&self) -> Term {
        match &self.until {
            None => Term::Unbounded,
            Some(until) => match *until.lock().unwrap_or_else(PoisonError::into_inner) {
                Some((t, term)) if Instant::now() < t => Term::Until(t, term),
                _ => Term::Ended,
            },
        }
    }

    /// Waits until leadership changes.
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            // The elector stopped: not leading any more.
            return false;
        }
        *self.rx.borrow_and_update() && self.is_leader()
    }

    /// A receiver of leadership changes (published by the elector when it wins, and when it
    /// loses or its deadline passes).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// Why a round of the election failed.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the {0} request did not answer within the renew deadline")]
    Timeout(&'static str),
}

/// What a Lease says about its holder: a candidate's clock restarts whenever it changes.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: String,
    duration_seconds: Option<i32>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    resource_version: Option<String>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// The last record seen, and when (on our monotonic clock) it was first seen as it is.
#[derive(Debug, Clone)]
struct Observed {
    record: Record,
    since: Instant,
}

/// Notes `record` seen at `now`: the observed time moves only when the record changed.
fn observe(previous: Option<Observed>, record: Record, now: Instant) -> Observed {
    match previous {
        Some(p) if p.record == record => p,
        _ => Observed { record, since: now },
    }
}

/// Whether `identity` may take (or keep) the Lease at `now`: it is free, ours, or its record
/// has not changed for the holder's lease duration on our clock. Never looks at `renewTime`.
fn may_take(observed: &Observed, identity: &str, now: Instant, default: Duration) -> bool {
    let holder = observed.record.holder.as_str();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = observed
        .record
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(default, Duration::from_secs);
    now >= observed.since + duration
}

fn micro_now(clock: &dyn Clock) -> MicroTime {
    MicroTime(Timestamp::try_from(clock.now()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Whole seconds for `leaseDurationSeconds`, rounded up so that candidates never wait less
/// than this holder assumes.
fn seconds(d: Duration) -> i32 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i32::try_from(s.max(1)).unwrap_or(i32::MAX)
}

/// The `shutdown` future of [`spawn`] for a runtime that says on `released` how it stopped:
/// `Some(true)` once everything that writes has drained (release the Lease), `Some(false)`
/// when not (leave it to expire). A sender dropped without a word (a panic, an abort, a
/// cancelled future) confirmed no drain: the Lease is left to expire too.
pub async fn release_when_drained(mut released: watch::Receiver<Option<bool>>) -> bool {
    match released.wait_for(Option::is_some).await {
        Ok(r) => r.unwrap_or(false),
        // The runtime is gone without a word: its writes may still be in flight.
        Err(_) => false,
    }
}

/// Runs the election until `shutdown` resolves, publishing leadership on the returned
/// [`Leadership`]; then stops leading and, when `shutdown` resolved to `true`, releases the
/// Lease (`false`: writes of this replica may still be in flight, so the Lease is left to
/// expire, after which none can be). `clock` is the wall clock
/// written into `acquireTime`/`renewTime` (never used to decide); `heartbeat` beats once per
/// round.
pub fn spawn(
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    heartbeat: Option<crate::health::Heartbeat>,
    shutdown: impl std::future::Future<Output = bool> + Send + 'static,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let until = Arc::new(Mutex::new(None));
    let span = tracing::info_span!("lease", lease = %config.name, identity = %config.identity);
    let elector = Elector {
        api,
        config,
        clock,
        until: until.clone(),
        terms: 0,
        tx,
        observed: None,
        heartbeat,
    };
    let task = tokio::spawn(tracing::Instrument::instrument(elector.run(shutdown), span));
    (
        Leadership {
            rx,
            until: Some(until),
        },
        task,
    )
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    /// The leadership deadline and the term's number.
    until: Claim,
    /// Terms begun so far.
    terms: u64,
    tx: watch::Sender<bool>,
    observed: Option<Observed>,
    heartbeat: Option<crate::health::Heartbeat>,
}

impl Elector {
    fn leading_until(&self) -> Option<Instant> {
        self.until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|(t, _)| t)
    }

    fn lead_until(&mut self, deadline: Instant) {
        let mut until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        let term = match *until {
            Some((_, term)) => term,
            None => {
                self.terms += 1;
                self.terms
            }
        };
        *until = Some((deadline, term));
        drop(until);
        if !*self.tx.borrow() {
            tracing::info!("became leader");
            let _ = self.tx.send(true);
        }
    }

    /// Stops leading; `true` when it was leading (its deadline set, passed or not).
    fn stop_leading(&self, why: &str) -> bool {
        let was = self
            .until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some();
        if *self.tx.borrow() {
            tracing::warn!("{why}: no longer leader");
            let _ = self.tx.send(false);
        }
        was
    }

    /// Stops leading once the deadline has passed.
    fn expire(&self) {
        if self.leading_until().is_some_and(|t| Instant::now() >= t) {
            self.stop_leading("could not renew the lease in time");
        }
    }

    async fn request<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RoundError> {
        match timeout(self.config.renew_deadline, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RoundError::Timeout(what)),
        }
    }

    async fn run(mut self, shutdown: impl std::future::Future<Output = bool> + Send) {
        tokio::pin!(shutdown);
        let release = loop {
            self.expire();
            let started = Instant::now();
            let bound = match self.leading_until() {
                Some(t) if t > started => t,
                _ => started + self.config.renew_deadline,
            };
            let outcome = tokio::select! {
                biased;
                release = &mut shutdown => break release,
                outcome = timeout_at(bound, self.round()) => outcome,
            };
            match outcome {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    if self.leading_until().is_some() {
                        self.stop_leading("lost the lease to another replica");
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "failed to acquire or renew the lease"),
                Err(_) => tracing::warn!("acquiring or renewing the lease timed out"),
            }
            self.expire();
            if let Some(heartbeat) = &self.heartbeat {
                heartbeat.beat();
            }
            let next = started + self.config.retry_period;
            let wake = self.leading_until().map_or(next, |t| t.min(next));
            tokio::select! {
                release = &mut shutdown => break release,
                () = sleep_until(wake) => {}
            }
        };
        if !self.stop_leading("shutting down") {
            return;
        }
        if !release {
            tracing::warn!(
                expires_in = ?self.config.lease_duration,
                "not releasing the lease: a write may still be in flight, so it is left to expire"
            );
        } else {
            match timeout(self.config.renew_deadline, self.release()).await {
                Ok(Ok(())) => tracing::info!("released the lease"),
                Ok(Err(error)) => tracing::warn!(%error, "failed to release the lease"),
                Err(_) => tracing::warn!("releasing the lease timed out"),
            }
        }
    }

    /// One round: `Ok(true)` when this candidate holds the Lease afterwards.
    async fn round(&mut self) -> Result<bool, RoundError> {
        let config = &self.config;
        let current = self.request("get", self.api.get_opt(&config.name)).await?;
        let Some(mut lease) = current else {
            let now = micro_now(&*self.clock);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds(config.lease_duration)),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let sent = Instant::now();
            return match self
                .request("create", self.api.create(&PostParams::default(), &lease))
                .await
            {
                Ok(created) => {
                    self.won(&created, sent);
                    Ok(true)
                }
                Err(RoundError::Api(kube::Error::Api(s))) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let observed = observe(self.observed.take(), Record::of(&lease), Instant::now());
        let free = may_take(
            &observed,
            &config.identity,
            Instant::now(),
            config.lease_duration,
        );
        self.observed = Some(observed);
        if !free {
            return Ok(false);
        }
        let now = micro_now(&*self.clock);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            spec.holder_identity = Some(config.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.lease_duration_seconds = Some(seconds(config.lease_duration));
        spec.renew_time = Some(now);
        let sent = Instant::now();
        // The resourceVersion in `lease` makes this a compare-and-swap.
        match self
            .request(
                "update",
                self.api
                    .replace(&config.name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(updated) => {
                self.won(&updated, sent);
                Ok(true)
            }
            Err(RoundError::Api(kube::Error::Api(s))) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Our write `sent` at that instant went through: lead until `sent + renew_deadline`. No
    /// candidate saw this record before it was sent, so none can take over before
    /// `sent + lease_duration`.
    fn won(&mut self, lease: &Lease, sent: Instant) {
        self.observed = Some(Observed {
            record: Record::of(lease),
            since: Instant::now(),
        });
        self.lead_until(sent + self.config.renew_deadline);
    }

    /// Hands the Lease back: no holder, so that the next candidate need not wait for expiry.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(micro_now(&*self.clock));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! One in-memory Lease behind a kube client per replica, with a switch that makes that
    //! replica's requests hang (a partitioned or stuck API server connection).

    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;
    use k8s_openapi::api::coordination::v1::Lease;
    use serde_json::json;

    /// The API server's one Lease.
    #[derive(Clone, Default)]
    pub struct Store(Arc<Mutex<(Option<Lease>, u64)>>);

    impl Store {
        /// The stored Lease.
        pub fn lease(&self) -> Option<Lease> {
            self.0.lock().unwrap().0.clone()
        }
    }

    fn status(code: u16, reason: &str) -> http::Response<kube::client::Body> {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code});
        http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(body.to_string().into_bytes()))
            .unwrap()
    }

    fn ok(lease: &Lease) -> http::Response<kube::client::Body> {
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(lease).unwrap()))
            .unwrap()
    }

    /// A client of `store` whose requests hang while `hung` is set.
    pub fn client(store: &Store, hung: Arc<AtomicBool>) -> kube::Client {
        let store = store.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let store = store.clone();
            let hung = hung.clone();
            async move {
                if hung.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let method = req.method().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let mut state = store.0.lock().unwrap();
                let response = match method {
                    http::Method::GET => match &state.0 {
                        Some(lease) => ok(lease),
                        None => status(404, "NotFound"),
                    },
                    http::Method::POST if state.0.is_some() => status(409, "AlreadyExists"),
                    http::Method::POST | http::Method::PUT => {
                        let mut lease: Lease = serde_json::from_slice(&body).unwrap();
                        let current = state
                            .0
                            .as_ref()
                            .map(|l| l.metadata.resource_version.clone());
                        if method == http::Method::PUT
                            && current != Some(lease.metadata.resource_version.clone())
                        {
                            status(409, "Conflict")
                        } else {
                            state.1 += 1;
                            lease.metadata.resource_version = Some(state.1.to_string());
                            state.0 = Some(lease.clone());
                            ok(&lease)
                        }
                    }
                    _ => status(405, "MethodNotAllowed"),
                };
                Ok::<_, Infallible>(response)
            }
        });
        kube::Client::new(svc, "default")
    }
}

#[cfg(test)]
mod elector_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, SystemTime};

    use super::fake::{Store, client};
    use super::*;

    /// A wall clock `offset` away from the real one (negative: behind).
    #[derive(Debug)]
    struct Skewed(i64);

    impl irsa_aws::Clock for Skewed {
        fn now(&self) -> SystemTime {
            let now = SystemTime::now();
            let by = Duration::from_secs(self.0.unsigned_abs());
            if self.0 < 0 { now - by } else { now + by }
        }
    }

    struct Replica {
        leadership: Leadership,
        hung: Arc<AtomicBool>,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    fn replica(store: &Store, identity: &str, skew: i64) -> Replica {
        let hung = Arc::new(AtomicBool::new(false));
        let api = Api::namespaced(client(store, hung.clone()), "irsa-system");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (leadership, _task) = spawn(
            api,
            LeaseConfig::new("irsa-system", "irsa", identity),
            Arc::new(Skewed(skew)),
            None,
            async move {
                let _ = stopped.await;
                true
            },
        );
        Replica {
            leadership,
            hung,
            _stop: stop,
        }
    }

    /// Advances paused time in small steps until `f` holds, up to `limit`; the time it took.
    async fn step_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() <= limit {
            if f() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_renew_ends_leadership_within_renew_deadline_plus_retry_period() {
        let store = Store::default();
        let a = replica(&store, "a", 0);
        step_until(Duration::from_secs(5), || a.leadership.is_leader())
            .await
            .expect("a leads");
        let watched = a.leadership.subscribe();
        a.hung.store(true, Ordering::SeqCst);
        let config = LeaseConfig::new("irsa-system", "irsa", "a");
        let bound = config.renew_deadline + config.retry_period;
        let ended = step_until(bound + Duration::from_secs(20), || {
            !a.leadership.is_leader()
        })
        .await
        .expect("leadership ends although the renew hangs");
        assert!(
            ended <= bound,
            "leadership ended after {ended:?} (bound {bound:?})"
        );
        step_until(bound, || !*watched.borrow())
            .await
            .expect("subscribers hear of it too");
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_with_skewed_wall_clocks_never_lead_at_once() {
        for (skew_a, skew_b) in [(-30, 30), (30, -30)] {
            let store = Store::default();
            let a = replica(&store, "a", skew_a);
            step_until(Duration::from_secs(5), || a.leadership.is_leader())
                .await
                .expect("a leads");
            let b = replica(&store, "b", skew_b);
            let both = || a.leadership.is_leader() && b.leadership.is_leader();
            assert_eq!(
                step_until(Duration::from_secs(60), both).await,
                None,
                "skew {skew_a}/{skew_b}: b took over a renewing holder"
            );
            assert!(a.leadership.is_leader() && !b.leadership.is_leader());
            // The holder's connection hangs: b takes over, but never while a still leads.
            a.hung.store(true, Ordering::SeqCst);
            let took_over = step_until(Duration::from_secs(60), || {
                assert!(!both(), "skew {skew_a}/{skew_b}: two leaders at once");
                b.leadership.is_leader()
            })
            .await;
            assert!(
                took_over.is_some(),
                "skew {skew_a}/{skew_b}: b never took over"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_that_stops_renewing_is_taken_over_after_lease_duration() {
        let store = Store::default();
        let a = replica(&store, "a", 0);
        step_until(Duration::from_secs(5), || a.leadership.is_leader())
            .await
            .expect("a leads");
        let b = replica(&store, "b", 0);
        step_until(Duration::from_secs(5), || false).await;
        // The last renew a got through: the record b saw change last.
        a.hung.store(true, Ordering::SeqCst);
        let renewed = store.lease().unwrap().metadata.resource_version;
        let config = LeaseConfig::new("irsa-system", "irsa", "b");
        let took = step_until(Duration::from_secs(60), || b.leadership.is_leader())
            .await
            .expect("b takes over");
        assert!(
            took >= config.lease_duration - config.retry_period,
            "b took over after {took:?}, before the lease could have expired"
        );
        assert!(
            took <= config.lease_duration + 2 * config.retry_period,
            "b took over after {took:?}"
        );
        assert!(!a.leadership.is_leader());
        let lease = store.lease().unwrap();
        assert_ne!(lease.metadata.resource_version, renewed);
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_runtime_gone_without_a_word_leaves_the_lease_to_expire() {
        for (said, released) in [(Some(true), true), (Some(false), false), (None, false)] {
            let store = Store::default();
            let api = Api::namespaced(
                client(&store, Arc::new(AtomicBool::new(false))),
                "irsa-system",
            );
            let (release, rx) = watch::channel(None::<bool>);
            let (leadership, task) = spawn(
                api,
                LeaseConfig::new("irsa-system", "irsa", "a"),
                Arc::new(Skewed(0)),
                None,
                release_when_drained(rx),
            );
            step_until(Duration::from_secs(5), || leadership.is_leader())
                .await
                .expect("a leads");
            match said {
                Some(drained) => {
                    let _ = release.send(Some(drained));
                }
                // Dropped without a word (a panic, an abort, a cancelled future).
                None => drop(release),
            }
            task.await.unwrap();
            assert!(!leadership.is_leader());
            let holder = store.lease().unwrap().spec.unwrap().holder_identity;
            assert_eq!(
                holder.is_none(),
                released,
                "{said:?}: holder {holder:?} after the lease task ended"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, version: &str, duration: Option<i32>) -> Record {
        Record {
            holder: holder.to_owned(),
            duration_seconds: duration,
            acquire_time: None,
            renew_time: None,
            transitions: None,
            resource_version: Some(version.to_owned()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_expires_only_unchanged_for_its_duration_on_our_clock() {
        let default = Duration::from_secs(15);
        let t0 = Instant::now();
        let seen = observe(None, record("b", "1", Some(15)), t0);
        assert!(
            may_take(&observe(None, record("", "1", None), t0), "a", t0, default),
            "free"
        );
        assert!(
            may_take(&observe(None, record("a", "1", None), t0), "a", t0, default),
            "ours"
        );
        assert!(
            !may_take(&seen, "a", t0 + Duration::from_secs(14), default),
            "held"
        );
        assert!(
            may_take(&seen, "a", t0 + default, default),
            "unchanged for 15 s"
        );
        // The same record seen again keeps its first sighting; a changed one restarts it.
        let again = observe(
            Some(seen.clone()),
            record("b", "1", Some(15)),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(again.since, t0);
        let renewed = observe(
            Some(seen),
            record("b", "2", Some(15)),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(renewed.since, t0 + Duration::from_secs(10));
        assert!(!may_take(&renewed, "a", t0 + default, default));
        // The holder's duration counts, not ours; a missing or absurd one falls back to ours.
        let long = observe(None, record("b", "1", Some(60)), t0);
        assert!(!may_take(&long, "a", t0 + Duration::from_secs(59), default));
        let zero = observe(None, record("b", "1", Some(0)), t0);
        assert!(!may_take(&zero, "a", t0 + Duration::from_secs(14), default));
    }

    #[test]
    fn lease_seconds_round_up_and_saturate() {
        assert_eq!(seconds(Duration::from_millis(1500)), 2);
        assert_eq!(seconds(Duration::ZERO), 1);
        assert_eq!(seconds(Duration::from_secs(15)), 15);
        assert_eq!(seconds(Duration::MAX), i32::MAX);
    }
}
