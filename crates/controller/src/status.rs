//! The `Ready` and `Degraded` conditions of a ClusterPullSecret or PullSecret, computed from
//! what one reconciliation saw. Pure: the time comes in as Unix seconds.
//!
//! `Ready` says whether every target holds valid credentials: it stays `True` through failed
//! refreshes as long as the written credentials have not expired. `Degraded` says whether
//! something needs attention (a failed refresh, a conflict, an invalid spec) even while the
//! secrets still work.
//!
//! One rule ties the counts to the conditions: a namespace counts as ready only while the
//! credential written there is valid ([`consistent_counts`]). So `Ready=False` with reason
//! `Expired` or `Pending` always reports `0/N` ready, never `N/N`.

use irsa_core::time::rfc3339;
use irsa_k8s::TargetCounts;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: every target holds valid credentials.
pub const READY: &str = "Ready";
/// Condition type: something needs attention.
pub const DEGRADED: &str = "Degraded";

/// What a reconciliation saw. Messages must already be free of secrets (irsa's errors are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Now, Unix seconds.
    pub now: i64,
    /// The resource's `metadata.generation`.
    pub generation: Option<i64>,
    /// Expiry of the credentials in the written secrets, Unix seconds; `None` before the first
    /// successful refresh.
    pub expires_at: Option<i64>,
    /// Why the last refresh failed, if it did.
    pub refresh_error: Option<&'a str>,
    /// Why the spec is invalid, if it is (validation errors).
    pub invalid: Option<&'a str>,
    /// Target counts from the plan.
    pub counts: &'a TargetCounts,
}

/// `counts` with no namespace ready while the credential (expiring at `expires_at`) is absent
/// or expired at `now`: a secret holding an expired password is not ready, whatever was
/// written. Those namespaces are neither failed nor conflicted, so only `ready` drops.
pub fn consistent_counts(counts: TargetCounts, expires_at: Option<i64>, now: i64) -> TargetCounts {
    if expires_at.is_some_and(|exp| exp > now) {
        return counts;
    }
    TargetCounts::new(counts.desired, 0, counts.failed, counts.conflicted)
}

/// The `Ready` and `Degraded` conditions for `observation`. A condition whose status did not
/// change keeps its `lastTransitionTime` from `previous`.
pub fn conditions(previous: &[Condition], observation: &Observation<'_>) -> Vec<Condition> {
    let o = observation;
    let settled = consistent_counts(o.counts.clone(), o.expires_at, o.now);
    let c = &settled;
    let (ready, ready_reason, ready_message) = match (o.invalid, o.expires_at) {
        (Some(errors), _) => (false, "Invalid", format!("the spec is invalid: {errors}")),
        (None, None) => (
            false,
            "Pending",
            match o.refresh_error {
                Some(e) => format!("no credentials obtained yet: {e}"),
                None => "no credentials obtained yet".to_owned(),
            },
        ),
        (None, Some(exp)) if exp <= o.now => (
            false,
            "Expired",
            format!(
                "0/{} namespaces hold valid credentials: the written credentials expired at {}{}",
                c.desired,
                rfc3339(exp),
                o.refresh_error
                    .map(|e| format!(" and the refresh fails: {e}"))
                    .unwrap_or_default()
            ),
        ),
        (None, Some(_)) if c.failed > 0 => (
            false,
            "TargetsFailing",
            format!(
                "{} of {} namespaces could not be written; see status.problems",
                c.failed, c.desired
            ),
        ),
        (None, Some(exp)) => (
            true,
            "SecretsCurrent",
            format!(
                "{}/{} namespaces hold credentials valid until {}",
                c.ready,
                c.desired,
                rfc3339(exp)
            ),
        ),
    };
    let (degraded, degraded_reason, degraded_message) = match (o.invalid, o.refresh_error) {
        (Some(errors), _) => (true, "Invalid", format!("the spec is invalid: {errors}")),
        (None, Some(e)) => (
            true,
            "RefreshFailed",
            format!("the last refresh failed and is retried with backoff: {e}"),
        ),
        (None, None) if c.conflicted > 0 => (
            true,
            "Conflict",
            format!(
                "{} namespaces hold a same-named secret irsa does not own (left untouched); see status.problems",
                c.conflicted
            ),
        ),
        (None, None) => (false, "AsExpected", "no problems".to_owned()),
    };
    vec![
        condition(previous, o, READY, ready, ready_reason, ready_message),
        condition(
            previous,
            o,
            DEGRADED,
            degraded,
            degraded_reason,
            degraded_message,
        ),
    ]
}

fn condition(
    previous: &[Condition],
    o: &Observation<'_>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|p| p.type_ == type_ && p.status == status)
        .map(|p| p.last_transition_time.clone())
        .unwrap_or_else(|| time(o.now));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: o.generation,
        last_transition_time,
    }
}

/// A Kubernetes `Time` from Unix seconds (clamped to the representable range).
pub fn time(unix_seconds: i64) -> Time {
    let clamped = unix_seconds.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Time(Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn obs<'a>(counts: &'a TargetCounts) -> Observation<'a> {
        Observation {
            now: NOW,
            generation: Some(3),
            expires_at: Some(NOW + 3600),
            refresh_error: None,
            invalid: None,
            counts,
        }
    }

    fn summary(c: &[Condition]) -> Vec<(String, String, String)> {
        c.iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    #[test]
    fn condition_table() {
        let ok = TargetCounts::new(3, 3, 0, 0);
        let conflicted = TargetCounts::new(3, 2, 0, 1);
        let failing = TargetCounts::new(3, 2, 1, 0);
        type Edit = fn(&mut Observation<'_>);
        type Want = [(&'static str, &'static str); 2];
        let cases: [(&str, &TargetCounts, Edit, Want); 8] = [
            (
                "healthy",
                &ok,
                |_| {},
                [("True", "SecretsCurrent"), ("False", "AsExpected")],
            ),
            (
                "failed refresh, still valid",
                &ok,
                |o| o.refresh_error = Some("sts said no"),
                [("True", "SecretsCurrent"), ("True", "RefreshFailed")],
            ),
            (
                "failed refresh, expired",
                &ok,
                |o| {
                    o.refresh_error = Some("sts said no");
                    o.expires_at = Some(NOW);
                },
                [("False", "Expired"), ("True", "RefreshFailed")],
            ),
            (
                "never refreshed",
                &ok,
                |o| o.expires_at = None,
                [("False", "Pending"), ("False", "AsExpected")],
            ),
            (
                "first refresh failing",
                &ok,
                |o| {
                    o.expires_at = None;
                    o.refresh_error = Some("x")
                },
                [("False", "Pending"), ("True", "RefreshFailed")],
            ),
            (
                "conflict",
                &conflicted,
                |_| {},
                [("True", "SecretsCurrent"), ("True", "Conflict")],
            ),
            (
                "write failures",
                &failing,
                |_| {},
                [("False", "TargetsFailing"), ("False", "AsExpected")],
            ),
            (
                "invalid",
                &ok,
                |o| o.invalid = Some("spec.refresh: must be in (0, 1), got 2"),
                [("False", "Invalid"), ("True", "Invalid")],
            ),
        ];
        for (name, counts, edit, want) in cases {
            let mut o = obs(counts);
            edit(&mut o);
            let got = conditions(&[], &o);
            let want: Vec<_> = [READY, DEGRADED]
                .iter()
                .zip(want)
                .map(|(t, (s, r))| (t.to_string(), s.to_owned(), r.to_owned()))
                .collect();
            assert_eq!(summary(&got), want, "{name}");
            assert!(got.iter().all(|c| c.observed_generation == Some(3)));
        }
    }

    #[test]
    fn messages_say_what_and_when() {
        let counts = TargetCounts::new(3, 2, 0, 1);
        let mut o = obs(&counts);
        let got = conditions(&[], &o);
        assert_eq!(
            got[0].message,
            "2/3 namespaces hold credentials valid until 2026-11-18T12:06:40Z"
        );
        assert_eq!(
            got[1].message,
            "1 namespaces hold a same-named secret irsa does not own (left untouched); see status.problems"
        );
        o.expires_at = Some(NOW - 1);
        o.refresh_error =
            Some("failed to assume role arn:aws:iam::123456789012:role/x: AccessDenied");
        assert_eq!(
            conditions(&[], &o)[0].message,
            "0/3 namespaces hold valid credentials: the written credentials expired at \
             2026-11-18T11:06:39Z and the refresh fails: \
             failed to assume role arn:aws:iam::123456789012:role/x: AccessDenied"
        );
    }

    #[test]
    fn expired_or_absent_credentials_are_never_counted_ready() {
        // The rule: Ready=False (Expired/Pending) never comes with targets counted ready.
        let all = TargetCounts::new(5, 5, 0, 0);
        for (expires_at, want_ready, reason) in [
            (Some(NOW + 1), 5, "SecretsCurrent"),
            (Some(NOW), 0, "Expired"),
            (Some(1_420_070_400), 0, "Expired"),
            (None, 0, "Pending"),
        ] {
            let settled = consistent_counts(all.clone(), expires_at, NOW);
            assert_eq!(settled.ready, want_ready, "{expires_at:?}");
            assert_eq!(
                settled.summary.as_deref(),
                Some(&*format!("{want_ready}/5"))
            );
            let mut o = obs(&all);
            o.expires_at = expires_at;
            let ready = &conditions(&[], &o)[0];
            assert_eq!(ready.reason, reason);
            assert_eq!(ready.status == "True", want_ready == 5, "{ready:?}");
            if reason == "Expired" {
                assert!(
                    ready.message.starts_with("0/5 namespaces"),
                    "{}",
                    ready.message
                );
            }
        }
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let counts = TargetCounts::new(1, 1, 0, 0);
        let first = conditions(&[], &obs(&counts));
        assert_eq!(first[0].last_transition_time, time(NOW));
        let mut later = obs(&counts);
        later.now = NOW + 600;
        later.refresh_error = Some("x");
        let second = conditions(&first, &later);
        assert_eq!(
            second[0].last_transition_time,
            time(NOW),
            "Ready stayed True"
        );
        assert_eq!(
            second[1].last_transition_time,
            time(NOW + 600),
            "Degraded turned True"
        );
        assert_eq!(time(i64::MAX), time(Timestamp::MAX.as_second()));
    }
}
