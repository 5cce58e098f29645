//! Request counters by service, action and outcome, rendered as Prometheus text at `/metrics`,
//! so that tests and benchmarks can assert "exactly one ECR call".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A set of counters keyed by (service, action, outcome). Labels are bounded: callers pass
/// service names, API actions or verbs, and outcome codes, never object names or error text.
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(String, String, String), u64>>,
}

impl Counters {
    /// An empty set of counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request.
    pub fn inc(&self, service: &str, action: &str, outcome: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .entry((service.to_owned(), action.to_owned(), outcome.to_owned()))
            .or_default() += 1;
    }

    /// The count for one (service, action, outcome).
    pub fn get(&self, service: &str, action: &str, outcome: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&(service.to_owned(), action.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The count for one (service, action) over every outcome.
    pub fn total(&self, service: &str, action: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .filter(|((s, a, _), _)| s == service && a == action)
            .map(|(_, n)| n)
            .sum()
    }

    /// Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP irsa_sandbox_requests_total Requests served by the sandbox.\n# TYPE irsa_sandbox_requests_total counter\n",
        );
        for ((service, action, outcome), n) in counts.iter() {
            let _ = writeln!(
                out,
                "irsa_sandbox_requests_total{{service=\"{}\",action=\"{}\",outcome=\"{}\"}} {n}",
                escape(service),
                escape(action),
                escape(outcome)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let c = Counters::new();
        c.inc("ecr", "GetAuthorizationToken", "ok");
        c.inc("ecr", "GetAuthorizationToken", "ok");
        c.inc("ecr", "GetAuthorizationToken", "AccessDeniedException");
        assert_eq!(c.get("ecr", "GetAuthorizationToken", "ok"), 2);
        assert_eq!(c.total("ecr", "GetAuthorizationToken"), 3);
        assert_eq!(c.total("sts", "AssumeRoleWithWebIdentity"), 0);
        let text = c.render();
        assert!(text.contains(
            "irsa_sandbox_requests_total{service=\"ecr\",action=\"GetAuthorizationToken\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains("# TYPE irsa_sandbox_requests_total counter"));
    }
}
