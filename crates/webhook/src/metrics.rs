//! The webhook's Prometheus metrics: bounded labels only (never object names or error text).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters and the admission latency histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    mutations: AtomicU64,
    skips: AtomicU64,
    missing_service_accounts: AtomicU64,
    api_lookups: AtomicU64,
    fail_open: AtomicU64,
    oversized: AtomicU64,
    waits_refused: AtomicU64,
    bad_requests: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

/// What happened to one admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A non-empty patch was answered.
    Mutated,
    /// Allowed unchanged: skipped, no role, or nothing missing.
    Skipped,
    /// Allowed unchanged because of an internal error or timeout.
    FailedOpen,
    /// The body was not an AdmissionReview v1.
    BadRequest,
}

impl Metrics {
    /// Count one answered request and its latency.
    pub fn observe(&self, outcome: Outcome, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Mutated => &self.mutations,
            Outcome::Skipped => &self.skips,
            Outcome::FailedOpen => &self.fail_open,
            Outcome::BadRequest => &self.bad_requests,
        }
        .fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Count a pod whose service account was found neither in the cache nor by the API.
    pub fn missing_service_account(&self) {
        self.missing_service_accounts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Count a service-account lookup that went to the API server.
    pub fn api_lookup(&self) {
        self.api_lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a pod admitted unchanged because it has too many containers or its patch would be
    /// too large (also counted as failed open).
    pub fn oversized_pod(&self) {
        self.oversized.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a review admitted unchanged at once because too many were already waiting for
    /// service accounts the cache lacks, or whose place went to another peer's review (also
    /// counted as failed open).
    pub fn wait_refused(&self) {
        self.waits_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Reviews admitted unchanged because too many were waiting for service accounts.
    pub fn waits_refused(&self) -> u64 {
        self.waits_refused.load(Ordering::Relaxed)
    }

    /// Pods admitted unchanged for their size.
    pub fn oversized(&self) -> u64 {
        self.oversized.load(Ordering::Relaxed)
    }

    /// Requests answered by outcome, for tests and the bench.
    pub fn count(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Mutated => &self.mutations,
            Outcome::Skipped => &self.skips,
            Outcome::FailedOpen => &self.fail_open,
            Outcome::BadRequest => &self.bad_requests,
        }
        .load(Ordering::Relaxed)
    }

    /// Pods whose service account was not found.
    pub fn missing_service_accounts(&self) -> u64 {
        self.missing_service_accounts.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition, with the number of service accounts in the cache as a
    /// gauge (how an operator, or the bench, sees that the watch has delivered the accounts)
    /// and the seconds until the serving certificate's `notAfter` (left out when unknown).
    pub fn render(
        &self,
        cached_service_accounts: usize,
        certificate_expires_in: Option<i64>,
    ) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "irsa_webhook_requests_total",
            "Admission requests answered.",
            get(&self.requests),
        );
        counter(
            "irsa_webhook_mutations_total",
            "Pods given credentials (a non-empty patch).",
            get(&self.mutations),
        );
        counter(
            "irsa_webhook_skips_total",
            "Pods admitted unchanged: skipped, no role, or already complete.",
            get(&self.skips),
        );
        counter(
            "irsa_webhook_missing_service_accounts_total",
            "Pods whose service account was found neither in the cache nor by the API server.",
            get(&self.missing_service_accounts),
        );
        counter(
            "irsa_webhook_service_account_api_lookups_total",
            "Service accounts asked of the API server because the cache did not have them.",
            get(&self.api_lookups),
        );
        counter(
            "irsa_webhook_fail_open_total",
            "Pods admitted unchanged because of an internal error or timeout.",
            get(&self.fail_open),
        );
        counter(
            "irsa_webhook_oversized_total",
            "Pods admitted unchanged because of too many containers or too large a patch (also in fail_open).",
            get(&self.oversized),
        );
        counter(
            "irsa_webhook_service_account_waits_refused_total",
            "Pods admitted unchanged at once because too many reviews were waiting for service accounts the cache lacks, or whose place went to another peer's review (also in fail_open).",
            get(&self.waits_refused),
        );
        counter(
            "irsa_webhook_bad_requests_total",
            "Bodies that were not an AdmissionReview v1.",
            get(&self.bad_requests),
        );
        let name = "irsa_webhook_admission_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer an admission request.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", get(bucket));
        }
        let count = get(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = get(&self.latency_sum_nanos) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        let name = "irsa_webhook_service_accounts";
        let _ = writeln!(
            out,
            "# HELP {name} Service accounts in the cache.\n# TYPE {name} gauge\n{name} {cached_service_accounts}"
        );
        if let Some(seconds) = certificate_expires_in {
            let name = "irsa_webhook_serving_certificate_expiry_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Seconds until the notAfter of the serving certificate (negative once expired); alert well before 0.\n# TYPE {name} gauge\n{name} {seconds}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe(Outcome::Mutated, Duration::from_micros(300));
        m.observe(Outcome::Skipped, Duration::from_millis(3));
        m.observe(Outcome::FailedOpen, Duration::from_secs(2));
        m.missing_service_account();
        m.oversized_pod();
        let text = m.render(7, Some(86_400));
        for line in [
            "irsa_webhook_requests_total 3",
            "irsa_webhook_mutations_total 1",
            "irsa_webhook_skips_total 1",
            "irsa_webhook_fail_open_total 1",
            "irsa_webhook_missing_service_accounts_total 1",
            "irsa_webhook_oversized_total 1",
            "irsa_webhook_admission_duration_seconds_bucket{le=\"0.0005\"} 1",
            "irsa_webhook_admission_duration_seconds_bucket{le=\"0.005\"} 2",
            "irsa_webhook_admission_duration_seconds_bucket{le=\"5\"} 3",
            "irsa_webhook_admission_duration_seconds_bucket{le=\"+Inf\"} 3",
            "irsa_webhook_admission_duration_seconds_count 3",
            "# TYPE irsa_webhook_service_accounts gauge",
            "irsa_webhook_service_accounts 7",
            "# TYPE irsa_webhook_serving_certificate_expiry_seconds gauge",
            "irsa_webhook_serving_certificate_expiry_seconds 86400",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !m.render(7, None).contains("certificate_expiry"),
            "no gauge without a certificate date"
        );
    }
}
