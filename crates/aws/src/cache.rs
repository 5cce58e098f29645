//! The credential cache: serves a credential until its refresh point, with single-flight.
//!
//! The schedule and the backoff are irsa's one refresh policy (`irsa_core::refresh` for the
//! numbers, [`crate::last_good`] for the last good credential, the failures and the backoff,
//! both of which the controller's credential store follows too):
//!
//! - An entry is served until its **refresh point**: a fraction of its lifetime
//!   ([`CacheOptions::refresh_fraction`], default 0.5), jittered downwards by up to
//!   [`CacheOptions::jitter`] so that many keys do not refresh in lockstep, never sooner than
//!   30 s after issue nor later than a margin (a tenth of the lifetime, at most 5 min) before
//!   expiry, and never past expiry.
//! - **Single-flight** ([`crate::flight`], shared with the controller's store): however many
//!   callers ask for one key at once, one upstream exchange runs, as a task of its own; the
//!   others await its result, and it completes into the cache if every caller gave up.
//! - After the refresh point the next caller starts a refresh. If it fails while the old
//!   credential is still valid, the old one is served and the refresh is retried after a backoff
//!   ([`CacheOptions::failure_backoff`], doubling up to [`CacheOptions::max_failure_backoff`]).
//!   **Errors are never cached.**
//! - A credential without an expiry, or one that claims to be expired already (moto's ECR tokens
//!   say 2015), is returned to its caller but not cached; an answer that expired already while
//!   the held credential is still valid is a failed refresh (`irsa_core::lifetime::judge_answer`,
//!   as in the controller): the held one is served and kept, and the refresh backs off.
//! - **Bounded**: at most [`CacheOptions::capacity`] keys; expired entries go first, then the
//!   least recently used.
//!
//! Wall-clock expiries come from the [`Clock`]; the refresh schedule runs on tokio's monotonic
//! clock, so tests drive it with `tokio::time::pause()` and `advance`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use irsa_core::lifetime::{self, ExpiredAnswer};
use irsa_core::refresh::{self, Backoff, Jitter};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::flight::{Ended, Flights, State};
use crate::last_good::{At, Deadline, Decision, LastGood};

/// How the cache refreshes and how big it grows.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheOptions {
    /// Fraction of a credential's lifetime after which it is refreshed, in (0, 1]. Default 0.5.
    pub refresh_fraction: f64,
    /// Largest fraction by which the refresh point is moved earlier at random, in [0, 1). Default 0.1.
    pub jitter: f64,
    /// Most keys kept. Default 1024.
    pub capacity: usize,
    /// Wait before retrying a failed refresh while the old credential is still served; doubled
    /// after every further failure. Default 5 s.
    pub failure_backoff: Duration,
    /// Upper bound of that wait. Default 5 min.
    pub max_failure_backoff: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            refresh_fraction: refresh::DEFAULT_REFRESH_FRACTION,
            jitter: refresh::REFRESH_JITTER,
            capacity: 1024,
            failure_backoff: Backoff::DEFAULT.base,
            max_failure_backoff: Backoff::DEFAULT.cap,
        }
    }
}

impl CacheOptions {
    /// How long after it was obtained an entry living `life` is refreshed.
    fn refresh_after(&self, life: Duration) -> Duration {
        let life_secs = i64::try_from(life.as_secs()).unwrap_or(i64::MAX);
        let at = refresh::next_refresh(
            0,
            life_secs,
            self.refresh_fraction,
            Jitter::Earlier(self.jitter),
            fastrand::f64(),
        );
        Duration::from_secs(at.unsigned_abs()).min(life)
    }
}

/// Counters for metrics. Exchanges count upstream fetches started (one per flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that had to wait for an upstream exchange.
    pub misses: u64,
    /// Upstream exchanges started.
    pub exchanges: u64,
    /// Upstream exchanges that failed.
    pub failures: u64,
    /// Requests answered with a credential past its refresh point (refresh in flight or failed).
    pub stale_served: u64,
    /// Keys currently held.
    pub entries: u64,
}

impl std::ops::Add for CacheStats {
    type Output = CacheStats;

    fn add(self, o: CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            exchanges: self.exchanges + o.exchanges,
            failures: self.failures + o.failures,
            stale_served: self.stale_served + o.stale_served,
            entries: self.entries + o.entries,
        }
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    exchanges: AtomicU64,
    failures: AtomicU64,
    stale_served: AtomicU64,
}

/// What an upstream exchange returns: the value and when it stops being valid.
#[derive(Debug, Clone)]
pub struct Fetched<V> {
    /// The credential.
    pub value: V,
    /// When it expires (wall clock), when known.
    pub expires_at: Option<SystemTime>,
}

/// Deadlines on both clocks ([`Deadline`]): the monotonic one never runs backwards, the
/// injected wall clock sees what the monotonic one misses (a suspended VM, a test or demo
/// moving time forward).
struct Entry<V> {
    value: Arc<V>,
    refresh_at: Deadline,
    expires_at: Deadline,
}

impl<V> Entry<V> {
    fn fresh(&self, at: At) -> bool {
        !self.refresh_at.passed(at)
    }

    fn valid(&self, at: At) -> bool {
        !self.expires_at.passed(at)
    }
}

/// What a key holds between exchanges (the exchange itself is the [`Flights`]' business):
/// irsa's one policy ([`LastGood`]) over the entry. Errors are not kept (`()`).
struct Slot<V>(LastGood<Entry<V>, ()>);

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self(LastGood::default())
    }
}

impl<V: Send + Sync + 'static> State for Slot<V> {
    fn spent(&self) -> bool {
        self.0
            .held()
            .is_none_or(|e| Instant::now() >= e.expires_at.mono())
    }
}

/// The value, or the error (`None`: the exchange panicked).
type Outcome<V, E> = Result<Arc<V>, Option<E>>;

struct Inner<V, E> {
    flights: Flights<Slot<V>, Outcome<V, E>>,
    options: CacheOptions,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

/// A single-flight credential cache keyed by strings. Cheap to clone (shared state).
pub struct CredentialCache<V, E> {
    inner: Arc<Inner<V, E>>,
}

impl<V, E> Clone for CredentialCache<V, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<V, E> fmt::Debug for CredentialCache<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl<V, E> CredentialCache<V, E>
where
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + From<Ended> + 'static,
{
    /// An empty cache.
    pub fn new(options: CacheOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                flights: Flights::new(options.capacity),
                options,
                clock,
                counters: Counters::default(),
            }),
        }
    }

    /// The cached value for `key`, or the result of one shared call of `fetch`.
    ///
    /// `fetch` is only called when this caller starts the exchange; concurrent callers for the
    /// same key await the same exchange, which completes (and fills the cache) even if they
    /// all give up. A panicking `fetch` is a failed refresh: its callers get [`Ended::Panicked`], never a panic.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched<V>, E>> + Send + 'static,
    {
        let c = &self.inner.counters;
        let decide = |slot: &mut Slot<V>, in_flight: bool| {
            let at = At::now(self.inner.clock.now());
            let decision = slot
                .0
                .decide(at, in_flight, |e| e.fresh(at), |e| e.valid(at));
            let (value, stale) = match decision {
                Decision::Fresh(e) => (e.value.clone(), false),
                Decision::Refreshing(e)
                | Decision::BackingOff {
                    last_good: Some(e), ..
                } => (e.value.clone(), true),
                // Errors are never cached: with nothing valid held, a caller asks again.
                Decision::BackingOff {
                    last_good: None, ..
                }
                | Decision::Exchange => {
                    c.misses.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            };
            c.hits.fetch_add(1, Ordering::Relaxed);
            if stale {
                c.stale_served.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(value))
        };
        let start = |_: &mut Slot<V>| {
            c.exchanges.fetch_add(1, Ordering::Relaxed);
            fetch()
        };
        let inner = self.inner.clone();
        let complete = move |slot: &mut Slot<V>, result| inner.complete(slot, result);
        match self.inner.flights.ask(key, decide, start, complete).await.0 {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Some(e))) => Err(e),
            Ok(Err(None)) => Err(E::from(Ended::Panicked)),
            Err(ended) => Err(E::from(ended)),
        }
    }

    /// The counters, and how many keys are held.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            exchanges: c.exchanges.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            entries: self.inner.flights.held() as u64,
        }
    }

    /// Drops every entry, flights in progress too: they finish for the callers awaiting them,
    /// but store nothing, and a later caller starts its own.
    pub fn clear(&self) {
        self.inner.flights.clear(false);
    }
}

impl<V, E> Inner<V, E> {
    /// Stores the outcome of a flight (`None`: it panicked) and decides what its callers get.
    fn complete(&self, slot: &mut Slot<V>, result: Option<Result<Fetched<V>, E>>) -> Outcome<V, E> {
        let at = At::now(self.clock.now());
        let held = slot.0.held().filter(|e| e.valid(at));
        let (error, refused) = match result {
            Some(Ok(fetched)) => match held.and_then(|h| refuse(h, fetched.expires_at, at.wall)) {
                None => return Ok(self.keep(slot, fetched, at)),
                refused => (None, refused),
            },
            failure => (failure.and_then(Result::err), None),
        };
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let backoff = Backoff {
            base: self.options.failure_backoff,
            cap: self.options.max_failure_backoff,
        };
        let mut retry_in = Duration::ZERO;
        let wait = |failures| {
            retry_in = backoff.full(failures);
            retry_in
        };
        let Some(entry) = slot.0.failed(at, (), wait, |e| e.valid(at)) else {
            slot.0.drop_held();
            return Err(error);
        };
        let (value, valid_for) = (entry.value.clone(), entry.expires_at.left(at));
        tracing::warn!(
            refused = refused.as_ref().map(tracing::field::display),
            failures = slot.0.failures(),
            retry_in_ms = retry_in.as_millis() as u64,
            valid_for_s = valid_for.as_secs(),
            "credential refresh failed; serving the previous, still valid credential"
        );
        self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// Keeps what an exchange fetched, unless it has no expiry or expired already.
    fn keep(&self, slot: &mut Slot<V>, fetched: Fetched<V>, at: At) -> Arc<V> {
        let value = Arc::new(fetched.value);
        let life = fetched
            .expires_at
            .and_then(|t| t.duration_since(at.wall).ok())
            .filter(|life| *life >= Duration::from_secs(1));
        match life {
            Some(life) => slot.0.succeeded(Entry {
                value: value.clone(),
                refresh_at: Deadline::after(at, self.options.refresh_after(life)),
                expires_at: Deadline::after(at, life),
            }),
            None => {
                slot.0.succeeded_without_keeping();
                tracing::warn!(
                    expires_at = ?fetched.expires_at,
                    "credential has no expiry or is already expired; serving it without caching"
                );
            }
        }
        value
    }
}

/// Why an answer expiring at `expires_at` must not replace the valid entry `held`: only when
/// the answer expired already.
fn refuse<V>(
    held: &Entry<V>,
    expires_at: Option<SystemTime>,
    wall: SystemTime,
) -> Option<ExpiredAnswer> {
    let secs = |t: SystemTime| lifetime::unix_seconds(t).unwrap_or(0);
    let held = Some(secs(held.expires_at.wall()));
    lifetime::judge_answer("upstream", secs(expires_at?), held, secs(wall)).err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::AtomicU32;

    fn cache(clock: Arc<ManualClock>, capacity: usize) -> CredentialCache<String, String> {
        CredentialCache::new(
            CacheOptions {
                jitter: 0.0,
                capacity,
                ..CacheOptions::default()
            },
            clock,
        )
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_in_progress_at_clear_fills_nothing() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 10);
        let calls = Arc::new(AtomicU32::new(0));
        let fetch = |calls: Arc<AtomicU32>, gate: Option<tokio::sync::oneshot::Receiver<()>>| {
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if let Some(gate) = gate {
                    gate.await.expect("the gate");
                }
                Ok::<_, String>(Fetched {
                    value: "v".to_owned(),
                    expires_at: Some(t0() + Duration::from_secs(3600)),
                })
            }
        };
        let (open, gate) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let c = c.clone();
            let f = fetch(calls.clone(), Some(gate));
            async move { c.get_or_fetch("k", f).await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Cleared while the exchange runs: its caller gets the answer, the cache keeps none.
        c.clear();
        open.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().as_str(), "v");
        assert_eq!(c.stats().entries, 0);
        c.get_or_fetch("k", fetch(calls.clone(), None))
            .await
            .unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "served from before the clear"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_cached() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 10);
        let calls = Arc::new(AtomicU32::new(0));
        for _ in 0..2 {
            let calls = calls.clone();
            let r = c
                .get_or_fetch("k", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<Fetched<String>, _>("boom".to_owned())
                })
                .await;
            assert_eq!(r.unwrap_err(), "boom");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(c.stats().failures, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_jump_past_the_refresh_point_refreshes() {
        // The monotonic clock stands still (a suspended VM, a moved test clock): the wall
        // clock alone must end freshness, or expired credentials would be served.
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock.clone(), 10);
        let fetch = |n: u32| {
            let expires_at = Some(clock.now() + Duration::from_secs(3600));
            move || async move {
                Ok::<_, String>(Fetched {
                    value: format!("v{n}"),
                    expires_at,
                })
            }
        };
        assert_eq!(*c.get_or_fetch("k", fetch(1)).await.unwrap(), "v1");
        assert_eq!(*c.get_or_fetch("k", fetch(2)).await.unwrap(), "v1", "fresh");
        clock.advance(Duration::from_secs(1900));
        assert_eq!(
            *c.get_or_fetch("k", fetch(3)).await.unwrap(),
            "v3",
            "past half"
        );
        clock.advance(Duration::from_secs(4000));
        let failed = c
            .get_or_fetch("k", || async {
                Err::<Fetched<String>, _>("down".to_owned())
            })
            .await;
        assert_eq!(
            failed.unwrap_err(),
            "down",
            "an expired credential is never served as a fallback"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn already_expired_values_are_served_not_cached() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 10);
        for _ in 0..2 {
            let v = c
                .get_or_fetch("k", || async {
                    Ok::<_, String>(Fetched {
                        value: "v".to_owned(),
                        expires_at: Some(
                            SystemTime::UNIX_EPOCH + Duration::from_secs(1_420_070_400),
                        ),
                    })
                })
                .await
                .unwrap();
            assert_eq!(*v, "v");
        }
        assert_eq!(c.stats().exchanges, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_already_expired_answer_never_replaces_a_valid_entry() {
        // The wall clock passes the refresh point (the monotonic one stands still), and the
        // refresh answers with a credential that expired already (a skewed upstream clock):
        // a failed refresh, so the held, still-valid credential is served and kept.
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock.clone(), 10);
        let fetch = |v: &'static str, expires_at: SystemTime| {
            move || async move {
                Ok::<_, String>(Fetched {
                    value: v.to_owned(),
                    expires_at: Some(expires_at),
                })
            }
        };
        let hour = Duration::from_secs(3600);
        let moto_2015 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_420_070_400);
        assert_eq!(
            *c.get_or_fetch("k", fetch("v1", t0() + hour)).await.unwrap(),
            "v1"
        );
        clock.advance(Duration::from_secs(1900));
        let served = c.get_or_fetch("k", fetch("v2", moto_2015)).await.unwrap();
        assert_eq!(*served, "v1", "the expired answer is refused");
        assert_eq!(c.stats().failures, 1, "and counted as a failed refresh");
        // It backs off like any failed refresh: no exchange for the next seconds.
        let later = t0() + Duration::from_secs(1900) + hour;
        assert_eq!(
            *c.get_or_fetch("k", fetch("v3", later)).await.unwrap(),
            "v1"
        );
        assert_eq!(c.stats().exchanges, 2);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            *c.get_or_fetch("k", fetch("v3", later)).await.unwrap(),
            "v3"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_fetch_does_not_poison_the_key() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 10);
        let failed = c
            .get_or_fetch("k", || async {
                if true {
                    panic!("provider bug");
                }
                Err::<Fetched<String>, String>("unreachable".into())
            })
            .await
            .expect_err("a panicking exchange is a failed refresh, not a panic of its callers");
        assert!(failed.contains("failed unexpectedly"), "{failed}");
        let v = c
            .get_or_fetch("k", || async {
                Ok::<_, String>(Fetched {
                    value: "ok".to_owned(),
                    expires_at: Some(t0() + Duration::from_secs(60)),
                })
            })
            .await
            .unwrap();
        assert_eq!(*v, "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exchange_whose_caller_gave_up_completes_into_the_cache() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 10);
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, String>(Fetched {
                value: "v".to_owned(),
                expires_at: Some(t0() + Duration::from_secs(3600)),
            })
        };
        // The only caller gives up long before the exchange answers.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), c.get_or_fetch("k", slow));
        assert!(gave_up.await.is_err());
        // Past the time the exchange takes (paused clock: it answered at 10 s).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let v = c
            .get_or_fetch("k", || async {
                Err::<Fetched<String>, _>("a second exchange".to_owned())
            })
            .await
            .unwrap();
        assert_eq!(*v, "v");
        let stats = c.stats();
        assert_eq!(
            (stats.exchanges, stats.hits),
            (1, 1),
            "served from the cache"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_refresh_is_a_failed_refresh() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock.clone(), 10);
        let fetch = |v: &'static str| {
            move || async move {
                Ok::<_, String>(Fetched {
                    value: v.to_owned(),
                    expires_at: Some(t0() + Duration::from_secs(3600)),
                })
            }
        };
        c.get_or_fetch("k", fetch("v1")).await.unwrap();
        clock.advance(Duration::from_secs(1900));
        let served = c
            .get_or_fetch("k", || async {
                if true {
                    panic!("provider bug");
                }
                Err::<Fetched<String>, String>("unreachable".into())
            })
            .await
            .unwrap();
        assert_eq!(*served, "v1", "the held credential is served");
        assert_eq!(c.stats().failures, 1);
        // Backing off like any failed refresh, then a fresh exchange.
        assert_eq!(*c.get_or_fetch("k", fetch("v2")).await.unwrap(), "v1");
        assert_eq!(c.stats().exchanges, 2);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(*c.get_or_fetch("k", fetch("v2")).await.unwrap(), "v2");
    }

    #[test]
    fn an_exchange_its_runtime_dropped_is_a_failed_refresh_and_the_next_caller_starts_afresh() {
        // The exchange runs on runtime A and never answers; a waiter on runtime B joins it;
        // A is dropped (shutdown, or a cache shared across runtimes) with the task inside.
        let c = cache(Arc::new(ManualClock::new(t0())), 10);
        let a = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (started, is_started) = tokio::sync::oneshot::channel::<()>();
        a.block_on(async {
            let c = c.clone();
            tokio::spawn(async move {
                c.get_or_fetch("k", || async move {
                    let _ = started.send(());
                    std::future::pending::<Result<Fetched<String>, String>>().await
                })
                .await
            });
            is_started.await.unwrap();
        });
        let waiter = b.spawn({
            let c = c.clone();
            async move {
                c.get_or_fetch("k", || async {
                    Err::<Fetched<String>, _>("joins".to_owned())
                })
                .await
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.stats().misses < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiter never joined"
            );
            std::thread::yield_now();
        }
        drop(a);
        let bounded =
            |f| b.block_on(async { tokio::time::timeout(Duration::from_secs(10), f).await });
        let joined = bounded(waiter)
            .expect("the waiter hangs")
            .expect("the waiter panics");
        let error = joined.unwrap_err();
        assert!(error.contains("cancelled"), "{error}");
        let next = bounded(b.spawn({
            let c = c.clone();
            async move {
                c.get_or_fetch("k", || async {
                    Ok::<_, String>(Fetched {
                        value: "v".to_owned(),
                        expires_at: Some(t0() + Duration::from_secs(3600)),
                    })
                })
                .await
            }
        }));
        let next = next
            .expect("the next caller hangs")
            .expect("the next caller panics");
        assert_eq!(*next.unwrap(), "v", "a new exchange");
        assert_eq!(c.stats().exchanges, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_is_bounded_lru_first() {
        let clock = Arc::new(ManualClock::new(t0()));
        let c = cache(clock, 3);
        let fetch = |v: &str| {
            let v = v.to_owned();
            move || async move {
                Ok::<_, String>(Fetched {
                    value: v,
                    expires_at: Some(t0() + Duration::from_secs(3600)),
                })
            }
        };
        for k in ["a", "b", "c"] {
            c.get_or_fetch(k, fetch(k)).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        c.get_or_fetch("a", fetch("a")).await.unwrap(); // a is now the most recent
        c.get_or_fetch("d", fetch("d")).await.unwrap(); // evicts b
        assert_eq!(c.stats().entries, 3);
        let before = c.stats().exchanges;
        c.get_or_fetch("a", fetch("a")).await.unwrap();
        assert_eq!(c.stats().exchanges, before, "a stayed");
        c.get_or_fetch("b", fetch("b")).await.unwrap();
        assert_eq!(c.stats().exchanges, before + 1, "b was evicted");
    }
}
