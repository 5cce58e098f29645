//! Whether an upstream's expiry can be believed. Registries and STS say when their credentials
//! expire; that answer decides when irsa refreshes, so an absurd one (far in the future, before
//! 1970, not representable) must fail the refresh instead of parking a credential for decades,
//! and an already-expired one (moto's ECR always says 2015; a skewed clock can) must not pass
//! for a fresh credential ([`judge_answer`]: the policy of the controller's store and of
//! irsa-aws's cache alike). Pure: times are Unix seconds.

use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::time::rfc3339;

/// Longest lifetime believed from an upstream: ECR tokens live 12 hours, Chainguard's about 1
/// hour and STS sessions at most 12 hours, so a week is generous and anything longer is an
/// upstream or clock error.
pub const MAX_LIFETIME_SECS: i64 = 7 * 24 * 3600;

/// Lifetime given to an already-expired credential when nothing better is held, so that a
/// peer like moto still works while irsa asks again soon.
pub const CLAMPED_LIFETIME_SECS: i64 = 300;

/// A believable expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Later than now, within [`MAX_LIFETIME_SECS`].
    Valid(i64),
    /// At or before now.
    Expired(i64),
}

/// An expiry no upstream can mean.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AbsurdExpiry {
    /// Before 1970 or beyond what the clock can represent.
    #[error("it is out of range ({reason}); the upstream answer is garbage")]
    OutOfRange {
        /// Why.
        reason: String,
    },
    /// Further away than any registry issues credentials for.
    #[error(
        "it is {at}, more than {max_days} days away; no registry issues credentials for that \
         long: the upstream answer or this machine's clock is wrong"
    )]
    TooFar {
        /// The claimed expiry, RFC 3339.
        at: String,
        /// [`MAX_LIFETIME_SECS`] in days.
        max_days: i64,
    },
}

/// `t` as Unix seconds, refusing instants before 1970 and beyond `i64` seconds.
pub fn unix_seconds(t: SystemTime) -> Result<i64, AbsurdExpiry> {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| AbsurdExpiry::OutOfRange {
            reason: "before 1970".to_owned(),
        })?;
    i64::try_from(d.as_secs()).map_err(|_| AbsurdExpiry::OutOfRange {
        reason: "beyond the representable range".to_owned(),
    })
}

/// The instant `secs` after the Unix epoch, or an error when the platform cannot represent it
/// (`UNIX_EPOCH + Duration::from_secs` panics there).
pub fn system_time(secs: u64) -> Result<SystemTime, AbsurdExpiry> {
    i64::try_from(secs)
        .ok()
        .and_then(|_| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or_else(|| AbsurdExpiry::OutOfRange {
            reason: format!("{secs} seconds after 1970 is beyond the representable range"),
        })
}

/// Judges `expires_at` (Unix seconds) at `now`.
pub fn judge(expires_at: i64, now: i64) -> Result<Expiry, AbsurdExpiry> {
    if expires_at < 0 {
        return Err(AbsurdExpiry::OutOfRange {
            reason: "before 1970".to_owned(),
        });
    }
    if expires_at.saturating_sub(now) > MAX_LIFETIME_SECS {
        return Err(AbsurdExpiry::TooFar {
            at: rfc3339(expires_at),
            max_days: MAX_LIFETIME_SECS / 86_400,
        });
    }
    Ok(if expires_at <= now {
        Expiry::Expired(expires_at)
    } else {
        Expiry::Valid(expires_at)
    })
}

/// Judges a wall-clock `expires_at` at `now`.
pub fn judge_system_time(expires_at: SystemTime, now: SystemTime) -> Result<Expiry, AbsurdExpiry> {
    let now = unix_seconds(now).unwrap_or(0);
    judge(unix_seconds(expires_at)?, now)
}

/// How an answer that is not absurd may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// As it says: it expires after now.
    AsIs,
    /// Expired already, and nothing valid is held: briefly, as if it expired at this instant
    /// (now + [`CLAMPED_LIFETIME_SECS`]), so that peers such as moto still work. A cache that
    /// keeps nothing briefly serves it to its caller and keeps nothing.
    Clamped(i64),
}

/// An answer that expired already while a still-valid credential is held: a failed refresh
/// (the held credential is kept, the refresh backs off and is reported).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the {upstream} answered with a credential that expired already at {expired} (this machine's \
     clock is off, or the {upstream} is a test double such as moto); the current credential, \
     valid until {held}, is kept"
)]
pub struct ExpiredAnswer {
    /// Who answered (`registry`, `upstream`).
    pub upstream: &'static str,
    /// The answer's expiry, RFC 3339.
    pub expired: String,
    /// The held credential's expiry, RFC 3339.
    pub held: String,
}

/// Whether an answer from `upstream` expiring at `expires_at` may replace what is held (a
/// credential valid until `held_expires_at`, if any) at `now`; all Unix seconds. The answer's
/// expiry has passed [`judge`] already (absurd answers fail before this).
///
/// - valid (expires after `now`): used as it is;
/// - expired already while the held credential is still valid: refused;
/// - expired already and nothing valid held: used, clamped.
pub fn judge_answer(
    upstream: &'static str,
    expires_at: i64,
    held_expires_at: Option<i64>,
    now: i64,
) -> Result<Use, ExpiredAnswer> {
    if expires_at > now {
        return Ok(Use::AsIs);
    }
    match held_expires_at {
        Some(held) if held > now => Err(ExpiredAnswer {
            upstream,
            expired: rfc3339(expires_at),
            held: rfc3339(held),
        }),
        _ => Ok(Use::Clamped(now.saturating_add(CLAMPED_LIFETIME_SECS))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn judgements() {
        assert_eq!(judge(NOW + 3600, NOW), Ok(Expiry::Valid(NOW + 3600)));
        assert_eq!(
            judge(NOW + MAX_LIFETIME_SECS, NOW),
            Ok(Expiry::Valid(NOW + MAX_LIFETIME_SECS))
        );
        assert_eq!(judge(NOW, NOW), Ok(Expiry::Expired(NOW)));
        assert_eq!(
            judge(1_420_070_400, NOW),
            Ok(Expiry::Expired(1_420_070_400)),
            "moto's 2015"
        );
        let far = judge(NOW + MAX_LIFETIME_SECS + 1, NOW)
            .unwrap_err()
            .to_string();
        assert!(far.contains("more than 7 days away"), "{far}");
        assert!(judge(i64::MAX, NOW).is_err());
        assert!(
            judge(-1, NOW)
                .unwrap_err()
                .to_string()
                .contains("before 1970")
        );
    }

    #[test]
    fn answers_judged_against_what_is_held() {
        let moto = 1_420_070_400;
        assert_eq!(judge_answer("registry", NOW + 10, None, NOW), Ok(Use::AsIs));
        assert_eq!(
            judge_answer("registry", NOW + 10, Some(NOW + 3600), NOW),
            Ok(Use::AsIs)
        );
        assert_eq!(
            judge_answer("registry", moto, None, NOW),
            Ok(Use::Clamped(NOW + CLAMPED_LIFETIME_SECS))
        );
        assert_eq!(
            judge_answer("registry", NOW, Some(NOW - 1), NOW),
            Ok(Use::Clamped(NOW + CLAMPED_LIFETIME_SECS)),
            "an expired held credential is no reason to refuse"
        );
        let refused = judge_answer("upstream", moto, Some(NOW + 1), NOW)
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("the upstream answered with a credential that expired already at 2015-01-01T00:00:00Z"),
            "{refused}"
        );
        assert!(refused.contains("valid until "), "{refused}");
    }

    #[test]
    fn conversions_never_panic() {
        assert!(system_time(1 << 63).is_err(), "2^63 seconds");
        assert!(system_time(u64::MAX).is_err());
        assert_eq!(
            system_time(1_800_000_000),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert!(unix_seconds(before).is_err());
        assert_eq!(
            unix_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(7)),
            Ok(7)
        );
        assert!(judge_system_time(before, SystemTime::UNIX_EPOCH).is_err());
    }
}
