//! The one refresh and backoff policy of every credential irsa keeps: the controller's shared
//! store (`irsa-controller`'s `credentials`) and irsa-aws's cache (STS credentials and registry
//! tokens for `irsa login`, the docker helper and the credential provider). When a credential
//! is refreshed ([`next_refresh`]), how long a failed refresh waits ([`Backoff`]), how close two
//! exchanges of one credential may be ([`exchange_allowed`]); whether an answer may be used is
//! judged by [`crate::lifetime`]. Pure: Unix seconds and durations in, decisions out;
//! randomness comes in as a sample in `[0, 1)` so that the arithmetic is deterministic to test.

use std::time::Duration;

/// Fraction of a credential's lifetime after which it is refreshed unless told otherwise (the
/// resources' `spec.refresh` default, the cache's and the credential provider's).
pub const DEFAULT_REFRESH_FRACTION: f64 = 0.5;
/// Relative jitter on the refresh fraction: 10 %, so that credentials obtained together do
/// not refresh together.
pub const REFRESH_JITTER: f64 = 0.1;
/// Never refresh sooner than this after issue, even for a credential that claims to be expired
/// already (moto's ECR tokens do), so that a bad upstream cannot cause a hot loop.
pub const MIN_REFRESH_SECS: i64 = 30;
/// Largest margin kept between a refresh and expiry.
pub const MAX_EXPIRY_MARGIN_SECS: i64 = 300;
/// First retry delay after a failed refresh.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay after failed refreshes: retries keep coming long before expiry.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Least time between two exchanges of one credential after a successful one: an event storm
/// (namespaces created by the hundred) or a due credential seen by many resources never costs
/// more than one exchange per interval.
pub const MIN_EXCHANGE_INTERVAL_SECS: i64 = 30;

/// Which way the refresh point may move at random, by how much of the refresh fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Up to this much earlier or later (`sample` 0.5 means none): the controller's, whose
    /// resources ask for a fraction as a target.
    Around(f64),
    /// Up to this much earlier, never later (`sample` 0 means none): irsa-aws's cache, whose
    /// callers ask for a fraction as a bound.
    Earlier(f64),
}

/// When to refresh a credential issued at `issued_at` that expires at `expires_at`:
/// after `fraction` of its lifetime, moved by `jitter` (`jitter_sample` in `[0, 1)`), and
/// never later than a margin before expiry (a tenth of the lifetime, at most
/// [`MAX_EXPIRY_MARGIN_SECS`]) nor sooner than [`MIN_REFRESH_SECS`] after issue.
pub fn next_refresh(
    issued_at: i64,
    expires_at: i64,
    fraction: f64,
    jitter: Jitter,
    jitter_sample: f64,
) -> i64 {
    let earliest = issued_at.saturating_add(MIN_REFRESH_SECS);
    let lifetime = expires_at.saturating_sub(issued_at);
    if lifetime <= MIN_REFRESH_SECS {
        return earliest;
    }
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        DEFAULT_REFRESH_FRACTION
    };
    let jittered = match jitter {
        Jitter::Around(by) => {
            let sample = unit(jitter_sample, 0.5);
            fraction * (1.0 + unit(by, 0.0) * (2.0 * sample - 1.0))
        }
        Jitter::Earlier(by) => fraction * (1.0 - unit(by, 0.0) * unit(jitter_sample, 0.0)),
    };
    let at = issued_at.saturating_add((lifetime as f64 * jittered) as i64);
    let latest = expires_at - (lifetime / 10).min(MAX_EXPIRY_MARGIN_SECS);
    at.clamp(earliest, latest.max(earliest))
}

/// `x` clamped into `[0, 1]`, `otherwise` when it is not a number.
fn unit(x: f64, otherwise: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        otherwise
    }
}

/// How long to wait after failed refreshes: `base` doubled per failure, capped at `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Backoff {
    /// [`BACKOFF_BASE`] doubling to [`BACKOFF_CAP`].
    pub const DEFAULT: Backoff = Backoff {
        base: BACKOFF_BASE,
        cap: BACKOFF_CAP,
    };

    /// The whole wait before retry number `failures` (1 for the first retry; 0 counts as 1).
    pub fn full(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// [`Backoff::full`] scaled into its upper half by `jitter_sample` in `[0, 1)` ("equal
    /// jitter": never less than half), so that failures seen together are not retried together.
    pub fn jittered(&self, failures: u32, jitter_sample: f64) -> Duration {
        self.full(failures)
            .mul_f64(0.5 + 0.5 * unit(jitter_sample, 0.5))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// How long to wait before retry number `failures` after failed refreshes of a shared
/// credential or a reconciliation: [`Backoff::DEFAULT`], jittered.
pub fn failure_backoff(failures: u32, jitter_sample: f64) -> Duration {
    Backoff::DEFAULT.jittered(failures, jitter_sample)
}

/// Whether a new exchange of a credential may start, `since_wall` seconds (wall clock) and
/// `since_mono` (monotonic clock) after the last successful one: once
/// [`MIN_EXCHANGE_INTERVAL_SECS`] have passed on either clock, whichever has moved further, so
/// that neither a frozen nor a jumping clock stops refreshes.
pub fn exchange_allowed(since_wall: i64, since_mono: Duration) -> bool {
    since_wall >= MIN_EXCHANGE_INTERVAL_SECS
        || since_mono >= Duration::from_secs(MIN_EXCHANGE_INTERVAL_SECS.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_795_000_000;
    const HOUR: i64 = 3600;

    #[test]
    fn refresh_times() {
        for (name, issued, expires, fraction, sample, want) in [
            ("ecr 12h half", T0, T0 + 12 * HOUR, 0.5, 0.5, T0 + 6 * HOUR),
            (
                "ecr jitter low",
                T0,
                T0 + 12 * HOUR,
                0.5,
                0.0,
                T0 + 6 * HOUR - 2160,
            ),
            (
                "ecr jitter high",
                T0,
                T0 + 12 * HOUR,
                0.5,
                1.0,
                T0 + 6 * HOUR + 2160,
            ),
            (
                "chainguard 1h late fraction clamps to the margin",
                T0,
                T0 + HOUR,
                0.95,
                1.0,
                T0 + HOUR - 300,
            ),
            (
                "short lifetime keeps a tenth as margin",
                T0,
                T0 + 600,
                0.99,
                1.0,
                T0 + 540,
            ),
            (
                "already expired (moto)",
                T0,
                1_420_070_400,
                0.5,
                0.5,
                T0 + MIN_REFRESH_SECS,
            ),
            (
                "tiny fraction is floored",
                T0,
                T0 + HOUR,
                0.001,
                0.0,
                T0 + MIN_REFRESH_SECS,
            ),
            (
                "nan sample means no jitter",
                T0,
                T0 + 12 * HOUR,
                0.5,
                f64::NAN,
                T0 + 6 * HOUR,
            ),
        ] {
            assert_eq!(
                next_refresh(
                    issued,
                    expires,
                    fraction,
                    Jitter::Around(REFRESH_JITTER),
                    sample
                ),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let full: Vec<u64> = (1..=9).map(|n| failure_backoff(n, 1.0).as_secs()).collect();
        assert_eq!(full, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(failure_backoff(1, 0.0), Duration::from_millis(2500));
        assert_eq!(failure_backoff(0, 1.0), Duration::from_secs(5));
        assert_eq!(failure_backoff(u32::MAX, 0.0), Duration::from_secs(150));
    }

    #[test]
    fn earlier_jitter_never_refreshes_later_than_the_fraction() {
        let at = |fraction, sample| {
            next_refresh(T0, T0 + 2 * HOUR, fraction, Jitter::Earlier(0.5), sample)
        };
        assert_eq!(at(0.5, 0.0), T0 + HOUR, "no jitter at 0");
        assert_eq!(
            at(0.5, 1.0),
            T0 + HOUR / 2,
            "half of the fraction earlier at 1"
        );
        assert_eq!(at(0.5, f64::NAN), T0 + HOUR, "nan sample means no jitter");
        assert_eq!(
            next_refresh(T0, T0 + HOUR, 1.0, Jitter::Earlier(0.0), 0.7),
            T0 + HOUR - 300,
            "the margin before expiry holds for the whole fraction too"
        );
    }

    #[test]
    fn the_full_backoff_doubles_to_its_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let full: Vec<u64> = (0..=6).map(|n| b.full(n).as_secs()).collect();
        assert_eq!(full, [1, 1, 2, 4, 8, 10, 10]);
        assert_eq!(b.full(u32::MAX), Duration::from_secs(10));
        assert_eq!(Backoff::default(), Backoff::DEFAULT);
    }

    #[test]
    fn exchanges_are_allowed_once_either_clock_passed_the_interval() {
        let min = MIN_EXCHANGE_INTERVAL_SECS;
        let mono = |s: i64| Duration::from_secs(s.unsigned_abs());
        assert!(!exchange_allowed(min - 1, mono(min - 1)));
        assert!(
            exchange_allowed(min, Duration::ZERO),
            "the wall clock moved on"
        );
        assert!(
            exchange_allowed(-3600, mono(min)),
            "a wall clock gone backwards"
        );
        assert!(exchange_allowed(0, mono(min)), "a frozen wall clock");
    }

    proptest! {
        #[test]
        fn refresh_is_after_issue_and_before_expiry(
            issued in 0i64..4_000_000_000,
            lifetime in 31i64..200_000,
            fraction in 0.01f64..0.99,
            sample in 0.0f64..1.0,
        ) {
            let at = next_refresh(issued, issued + lifetime, fraction, Jitter::Around(REFRESH_JITTER), sample);
            prop_assert!(at >= issued + MIN_REFRESH_SECS);
            prop_assert!(at < issued + lifetime);
        }

        #[test]
        fn backoff_stays_within_half_and_full(failures in 0u32..100, sample in 0.0f64..1.0) {
            let d = failure_backoff(failures, sample);
            prop_assert!(d >= BACKOFF_BASE / 2 && d <= BACKOFF_CAP);
        }
    }
}
