//! irsa's one refresh and backoff policy for a held credential, which both credential stores
//! (this crate's [`crate::cache`] and the controller's) keep per key inside their
//! [`crate::flight`] slots:
//!
//! - a **fresh** credential (before its refresh point, which the store decides) is served
//!   without an exchange;
//! - past its refresh point, a still-**valid** credential is the **last good** one: it is served
//!   while an exchange is in flight and while a failed refresh backs off, and it survives every
//!   failed refresh until it expires;
//! - each failed refresh counts, and the next exchange waits for the **backoff** the store
//!   computes from the count (its [`irsa_core::refresh::Backoff`]); a success resets the count;
//! - the backoff is a [`Deadline`] on both clocks, passed once either clock passes it, so that
//!   neither a frozen clock (a suspended VM) nor a jumping one (a moved test or demo clock) holds
//!   refreshes back for ever.
//!
//! What a store does while backing off with nothing valid held is its own rule (the cache asks
//! again, since errors are never cached; the controller's store reports the last error), as are
//! its refresh points, the judgement of an answer (`irsa_core::lifetime`) and the exchange
//! itself.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A moment on both clocks: the wall clock (expiries are wall-clock times) and tokio's
/// monotonic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The wall clock (the store's injected one).
    pub wall: SystemTime,
    /// The monotonic clock.
    pub mono: Instant,
}

impl At {
    /// `wall`, and the monotonic clock now.
    pub fn now(wall: SystemTime) -> Self {
        Self {
            wall,
            mono: Instant::now(),
        }
    }

    /// `wall` as Unix seconds (the controller's clock), and the monotonic clock now.
    pub fn unix(wall: i64) -> Self {
        Self::now(SystemTime::UNIX_EPOCH + Duration::from_secs(wall.max(0).unsigned_abs()))
    }
}

/// A time `after` some [`At`], on both clocks; it has passed once either clock passed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    wall: SystemTime,
    mono: Instant,
}

impl Deadline {
    /// `wait` after `at`.
    pub fn after(at: At, wait: Duration) -> Self {
        Self {
            wall: at.wall.checked_add(wait).unwrap_or(at.wall),
            mono: at.mono + wait,
        }
    }

    /// Whether it has passed at `at`: on either clock.
    pub fn passed(&self, at: At) -> bool {
        at.wall >= self.wall || at.mono >= self.mono
    }

    /// Its time on the wall clock.
    pub fn wall(&self) -> SystemTime {
        self.wall
    }

    /// Its time on the monotonic clock.
    pub fn mono(&self) -> Instant {
        self.mono
    }

    /// How long until it passes at `at` (zero once it has).
    pub fn left(&self, at: At) -> Duration {
        let wall = self.wall.duration_since(at.wall).unwrap_or_default();
        wall.min(self.mono.saturating_duration_since(at.mono))
    }
}

/// What a call finds in a [`LastGood`] without an exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a, C, E> {
    /// Fresh: serve it.
    Fresh(&'a C),
    /// Past its refresh point but still valid while an exchange is in flight: serve it as the
    /// last good one meanwhile.
    Refreshing(&'a C),
    /// A failed refresh backs off.
    BackingOff {
        /// The last failure.
        error: &'a E,
        /// How long the backoff still runs.
        left: Duration,
        /// What is held, if it is still valid: the last good credential to serve meanwhile.
        last_good: Option<&'a C>,
        /// What is held, valid or not.
        held: Option<&'a C>,
    },
    /// An exchange is due (or in flight: join it).
    Exchange,
}

/// One key's state under the policy (see the [module docs](self)): the last good credential,
/// the failed refreshes since, the backoff and the last error.
#[derive(Debug)]
pub struct LastGood<C, E> {
    held: Option<C>,
    failures: u32,
    retry: Option<Deadline>,
    last_error: Option<E>,
}

impl<C, E> Default for LastGood<C, E> {
    fn default() -> Self {
        Self {
            held: None,
            failures: 0,
            retry: None,
            last_error: None,
        }
    }
}

impl<C, E> LastGood<C, E> {
    /// What a call at `at` gets without an exchange, `fresh` and `valid` telling what a held
    /// credential is then; `in_flight`: an exchange is running.
    pub fn decide(
        &self,
        at: At,
        in_flight: bool,
        fresh: impl FnOnce(&C) -> bool,
        valid: impl Fn(&C) -> bool,
    ) -> Decision<'_, C, E> {
        let held = self.held.as_ref();
        if let Some(c) = held.filter(|c| fresh(c) && valid(c)) {
            return Decision::Fresh(c);
        }
        if in_flight {
            return held
                .filter(|c| valid(c))
                .map_or(Decision::Exchange, Decision::Refreshing);
        }
        match (&self.last_error, self.retry) {
            (Some(error), Some(retry)) if !retry.passed(at) => Decision::BackingOff {
                error,
                left: retry.left(at),
                last_good: held.filter(|c| valid(c)),
                held,
            },
            _ => Decision::Exchange,
        }
    }

    /// A refresh obtained `credential`: it is held, and the failures are forgotten.
    pub fn succeeded(&mut self, credential: C) {
        self.held = Some(credential);
        self.failures = 0;
        self.retry = None;
        self.last_error = None;
    }

    /// A refresh at `at` failed with `error`: counted, and the next exchange waits for
    /// `backoff(failures)` (failures counted with this one). What is held stays; returns it
    /// when `valid` says it may still be served.
    pub fn failed(
        &mut self,
        at: At,
        error: E,
        backoff: impl FnOnce(u32) -> Duration,
        valid: impl Fn(&C) -> bool,
    ) -> Option<&C> {
        self.failures = self.failures.saturating_add(1);
        self.retry = Some(Deadline::after(at, backoff(self.failures)));
        self.last_error = Some(error);
        self.held.as_ref().filter(|c| valid(c))
    }

    /// A refresh succeeded with a credential the store does not keep (one without an expiry,
    /// or one expired already): the failures are forgotten and nothing is held.
    pub fn succeeded_without_keeping(&mut self) {
        *self = Self::default();
    }

    /// The credential held (the last good one, possibly expired).
    pub fn held(&self) -> Option<&C> {
        self.held.as_ref()
    }

    /// Forgets the credential held (an expired one the store need not keep); the backoff stays.
    pub fn drop_held(&mut self) {
        self.held = None;
    }

    /// Holds `credential` unless one is held (recovered from elsewhere, such as written
    /// secrets after a restart); the failures and backoff stay.
    pub fn adopt(&mut self, credential: C) {
        self.held.get_or_insert(credential);
    }

    /// Failed refreshes since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The last failure, while no refresh succeeded since.
    pub fn last_error(&self) -> Option<&E> {
        self.last_error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential valid until `expires` (Unix seconds), fresh until `refresh`.
    #[derive(Debug, PartialEq, Eq)]
    struct Cred {
        name: &'static str,
        refresh: i64,
        expires: i64,
    }

    fn secs(at: At) -> i64 {
        let d = at.wall.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        i64::try_from(d.as_secs()).unwrap()
    }

    fn decide(s: &LastGood<Cred, &'static str>, at: At, in_flight: bool) -> String {
        let d = s.decide(
            at,
            in_flight,
            |c| secs(at) < c.refresh,
            |c| secs(at) < c.expires,
        );
        match d {
            Decision::Fresh(c) => format!("fresh {}", c.name),
            Decision::Refreshing(c) => format!("refreshing, serving {}", c.name),
            Decision::BackingOff {
                error,
                left,
                last_good,
                held,
            } => format!(
                "backing off {error} {}s serving {:?} held {:?}",
                left.as_secs(),
                last_good.map(|c| c.name),
                held.map(|c| c.name)
            ),
            Decision::Exchange => "exchange".to_owned(),
        }
    }

    fn backoff(failures: u32) -> Duration {
        Duration::from_secs(5 << (failures - 1))
    }

    const T: i64 = 1_800_000_000;

    #[tokio::test(start_paused = true)]
    async fn expiry_drives_the_refresh() {
        let mut s = LastGood::default();
        assert_eq!(decide(&s, At::unix(T), false), "exchange", "nothing held");
        s.succeeded(Cred {
            name: "v1",
            refresh: T + 50,
            expires: T + 100,
        });
        assert_eq!(decide(&s, At::unix(T + 49), false), "fresh v1");
        assert_eq!(
            decide(&s, At::unix(T + 50), false),
            "exchange",
            "past its refresh point"
        );
        assert_eq!(
            decide(&s, At::unix(T + 50), true),
            "refreshing, serving v1",
            "served while the refresh runs"
        );
        assert_eq!(
            decide(&s, At::unix(T + 100), true),
            "exchange",
            "an expired one is never served: wait for the exchange"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_good_credential_is_served_through_an_outage_until_it_expires() {
        let mut s = LastGood::default();
        s.succeeded(Cred {
            name: "v1",
            refresh: T + 50,
            expires: T + 1000,
        });
        let mut at = T + 60;
        for _ in 0..5 {
            let kept = s.failed(At::unix(at), "down", backoff, |c| at < c.expires);
            assert_eq!(kept.map(|c| c.name), Some("v1"), "kept through the failure");
            assert_eq!(
                decide(&s, At::unix(at), false),
                format!(
                    "backing off down {}s serving Some(\"v1\") held Some(\"v1\")",
                    backoff(s.failures()).as_secs()
                )
            );
            at += 100;
        }
        let kept = s.failed(At::unix(1000 + T), "down", backoff, |c| {
            T + 1000 < c.expires
        });
        assert_eq!(kept, None, "expired: no longer served");
        assert_eq!(
            decide(&s, At::unix(T + 1000), false),
            "backing off down 160s serving None held Some(\"v1\")"
        );
        s.succeeded(Cred {
            name: "v2",
            refresh: T + 2000,
            expires: T + 3000,
        });
        assert_eq!(decide(&s, At::unix(T + 1001), false), "fresh v2");
        assert_eq!((s.failures(), s.last_error()), (0, None), "forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_doubling_and_either_clock_ends_the_backoff() {
        let mut s: LastGood<Cred, &str> = LastGood::default();
        for (failures, wait) in [(1, 5), (2, 10), (3, 20)] {
            let at = At::unix(T);
            assert_eq!(s.failed(at, "down", backoff, |_| true), None);
            assert_eq!(s.failures(), failures);
            assert_eq!(
                decide(&s, at, false),
                format!("backing off down {wait}s serving None held None")
            );
            assert_eq!(
                decide(&s, at, true),
                "exchange",
                "an exchange in flight is joined"
            );
            // The wall clock alone passes it (the monotonic one stands still) ...
            assert_eq!(decide(&s, At::unix(T + wait), false), "exchange");
        }
        // ... or the monotonic clock alone (the wall clock stands still).
        let at = At::unix(T);
        s.failed(at, "down", backoff, |_| true);
        assert_eq!(
            decide(&s, At::unix(T), false),
            "backing off down 40s serving None held None"
        );
        tokio::time::advance(Duration::from_secs(39)).await;
        assert_eq!(
            decide(&s, At::unix(T), false),
            "backing off down 1s serving None held None"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(decide(&s, At::unix(T), false), "exchange");
    }

    #[tokio::test(start_paused = true)]
    async fn an_adopted_credential_never_replaces_a_held_one() {
        let mut s: LastGood<Cred, &str> = LastGood::default();
        let cred = |name| Cred {
            name,
            refresh: T + 50,
            expires: T + 100,
        };
        s.adopt(cred("adopted"));
        s.adopt(cred("second"));
        assert_eq!(decide(&s, At::unix(T), false), "fresh adopted");
        s.succeeded(cred("exchanged"));
        s.adopt(cred("third"));
        assert_eq!(decide(&s, At::unix(T), false), "fresh exchanged");
        s.drop_held();
        assert_eq!(s.held(), None);
    }
}
