//! When to refresh credentials, and how long to wait after a failure. Unix seconds throughout;
//! randomness comes in as a sample in `[0, 1)` so that the arithmetic is deterministic to test.

use std::time::Duration;

/// Relative jitter on the refresh fraction: ±10 %, so that resources created together do not
/// refresh together.
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

/// When to refresh a credential issued at `issued_at` that expires at `expires_at`:
/// after `fraction` of its lifetime, jittered by ±[`REFRESH_JITTER`] of that fraction
/// (`jitter_sample` in `[0, 1)`, 0.5 meaning no jitter), and never later than a margin before
/// expiry (a tenth of the lifetime, at most [`MAX_EXPIRY_MARGIN_SECS`]) nor sooner than
/// [`MIN_REFRESH_SECS`] after issue.
pub fn next_refresh(issued_at: i64, expires_at: i64, fraction: f64, jitter_sample: f64) -> i64 {
    let earliest = issued_at.saturating_add(MIN_REFRESH_SECS);
    let lifetime = expires_at.saturating_sub(issued_at);
    if lifetime <= MIN_REFRESH_SECS {
        return earliest;
    }
    let sample = if jitter_sample.is_finite() {
        jitter_sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        irsa_k8s::DEFAULT_REFRESH
    };
    let jittered = fraction * (1.0 + REFRESH_JITTER * (2.0 * sample - 1.0));
    let at = issued_at.saturating_add((lifetime as f64 * jittered) as i64);
    let latest = expires_at - (lifetime / 10).min(MAX_EXPIRY_MARGIN_SECS);
    at.clamp(earliest, latest.max(earliest))
}

/// How long to wait before retry number `failures` (1 for the first retry) after failed
/// refreshes: [`BACKOFF_BASE`] doubled per failure, capped at [`BACKOFF_CAP`], then scaled into
/// its upper half by `jitter_sample` in `[0, 1)` ("equal jitter": never less than half).
pub fn failure_backoff(failures: u32, jitter_sample: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_CAP);
    let sample = if jitter_sample.is_finite() {
        jitter_sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    full.mul_f64(0.5 + 0.5 * sample)
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
                next_refresh(issued, expires, fraction, sample),
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

    proptest! {
        #[test]
        fn refresh_is_after_issue_and_before_expiry(
            issued in 0i64..4_000_000_000,
            lifetime in 31i64..200_000,
            fraction in 0.01f64..0.99,
            sample in 0.0f64..1.0,
        ) {
            let at = next_refresh(issued, issued + lifetime, fraction, sample);
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
