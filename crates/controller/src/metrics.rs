//! The controller's metrics in the Prometheus text format. Labels are bounded: resource kind,
//! result and API verb; the per-resource expiry gauge is labelled with the resource's name,
//! which cluster administrators create (one series per ClusterPullSecret or PullSecret, removed
//! with it). Never an error text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::plan::Owner;

/// API verbs counted in `irsa_api_writes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A Secret created.
    Create,
    /// A Secret updated with server-side apply.
    Apply,
    /// A ServiceAccount patched.
    PatchServiceAccount,
    /// A Secret deleted.
    Delete,
    /// A status written.
    Status,
    /// An Event published.
    Event,
    /// A finalizer added or removed.
    Finalizer,
}

const WRITES: [(Write, &str); 7] = [
    (Write::Create, "create"),
    (Write::Apply, "apply"),
    (Write::PatchServiceAccount, "patch_serviceaccount"),
    (Write::Delete, "delete"),
    (Write::Status, "status"),
    (Write::Event, "event"),
    (Write::Finalizer, "finalizer"),
];

fn kind_index(owner: &Owner) -> usize {
    match owner {
        Owner::Cluster { .. } => 0,
        Owner::Namespaced { .. } => 1,
    }
}

const KINDS: [&str; 2] = ["ClusterPullSecret", "PullSecret"];

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: [AtomicU64; 2],
    reconcile_errors: [AtomicU64; 2],
    refreshes: [AtomicU64; 2],
    refresh_failures: [AtomicU64; 2],
    exchanges: AtomicU64,
    argocd_reconciles: AtomicU64,
    argocd_stores: AtomicU64,
    writes: [AtomicU64; 7],
    conflicts: AtomicU64,
    leader: AtomicU64,
    ready: AtomicU64,
    single_namespace: AtomicU64,
    expiry: Mutex<BTreeMap<Owner, i64>>,
    per_resource: Mutex<BTreeMap<Owner, u64>>,
}

impl Metrics {
    /// Counts a reconciliation and its result.
    pub fn reconciled(&self, owner: &Owner, ok: bool) {
        let i = kind_index(owner);
        self.reconciles[i].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.reconcile_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a reconciliation of one resource as it starts. Read with
    /// [`Metrics::reconciles_of`]; not exported, as its label would be an object name.
    pub fn reconciling(&self, owner: &Owner) {
        let mut m = self.per_resource.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(owner.clone()).or_default() += 1;
    }

    /// Reconciliations of one resource started so far (since it was last forgotten).
    pub fn reconciles_of(&self, owner: &Owner) -> u64 {
        let m = self.per_resource.lock().unwrap_or_else(|p| p.into_inner());
        m.get(owner).copied().unwrap_or(0)
    }

    /// Counts a refresh of credentials for a resource.
    pub fn refreshed(&self, owner: &Owner, ok: bool) {
        let i = kind_index(owner);
        if ok {
            self.refreshes[i].fetch_add(1, Ordering::Relaxed);
        } else {
            self.refresh_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one upstream exchange (an STS + registry token round, however many registries).
    pub fn exchanged(&self) {
        self.exchanges.fetch_add(1, Ordering::Relaxed);
    }

    /// Upstream exchanges so far.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// Counts one reconciliation of an Argo CD repository secret.
    pub fn argocd_reconciled(&self) {
        self.argocd_reconciles.fetch_add(1, Ordering::Relaxed);
    }

    /// Argo CD repository-secret reconciliations so far.
    pub fn argocd_reconciles(&self) -> u64 {
        self.argocd_reconciles.load(Ordering::Relaxed)
    }

    /// Sets how many Argo CD credential stores (one per STS region and token URL in use) are
    /// held.
    pub fn set_argocd_stores(&self, n: usize) {
        self.argocd_stores
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Argo CD credential stores held.
    pub fn argocd_stores(&self) -> u64 {
        self.argocd_stores.load(Ordering::Relaxed)
    }

    /// Counts an API write.
    pub fn wrote(&self, write: Write) {
        if let Some(i) = WRITES.iter().position(|(w, _)| *w == write) {
            self.writes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// API writes so far, all verbs.
    pub fn writes(&self) -> u64 {
        self.writes.iter().map(|w| w.load(Ordering::Relaxed)).sum()
    }

    /// Counts a newly seen conflict.
    pub fn conflicted(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(u64::from(leader), Ordering::Relaxed);
    }

    /// Sets whether every watch has listed.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(u64::from(ready), Ordering::Relaxed);
    }

    /// One-namespace mode (`--watch-namespace`): ClusterPullSecrets are not served.
    pub fn set_single_namespace(&self, on: bool) {
        self.single_namespace
            .store(u64::from(on), Ordering::Relaxed);
    }

    /// Records when a resource's written credentials expire.
    pub fn set_expiry(&self, owner: &Owner, expires_at: i64) {
        if let Ok(mut m) = self.expiry.lock() {
            m.insert(owner.clone(), expires_at);
        }
    }

    /// The resources with series of their own.
    pub fn owners(&self) -> Vec<Owner> {
        let mut owners: Vec<Owner> = Vec::new();
        if let Ok(m) = self.expiry.lock() {
            owners.extend(m.keys().cloned());
        }
        if let Ok(m) = self.per_resource.lock() {
            owners.extend(m.keys().cloned());
        }
        owners
    }

    /// Forgets a deleted resource.
    pub fn forget(&self, owner: &Owner) {
        if let Ok(mut m) = self.expiry.lock() {
            m.remove(owner);
        }
        if let Ok(mut m) = self.per_resource.lock() {
            m.remove(owner);
        }
    }

    /// The text exposition at `now` (Unix seconds).
    pub fn render(&self, now: i64) -> String {
        let mut out = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut per_kind = |name: &str, help: &str, values: &[AtomicU64; 2]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, v) in KINDS.iter().zip(values) {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", load(v));
            }
        };
        per_kind(
            "irsa_reconciles_total",
            "Reconciliations by resource kind.",
            &self.reconciles,
        );
        per_kind(
            "irsa_reconcile_errors_total",
            "Reconciliations that failed and were retried with backoff.",
            &self.reconcile_errors,
        );
        per_kind(
            "irsa_refreshes_total",
            "Successful credential refreshes.",
            &self.refreshes,
        );
        per_kind(
            "irsa_refresh_failures_total",
            "Failed credential refreshes (the written secrets are kept).",
            &self.refresh_failures,
        );
        let _ = writeln!(
            out,
            "# HELP irsa_upstream_exchanges_total Upstream credential exchanges (STS and registry token).\n# TYPE irsa_upstream_exchanges_total counter\nirsa_upstream_exchanges_total {}",
            load(&self.exchanges)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_argocd_reconciles_total Reconciliations of Argo CD repository secrets.\n# TYPE irsa_argocd_reconciles_total counter\nirsa_argocd_reconciles_total {}",
            load(&self.argocd_reconciles)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_argocd_credential_stores Argo CD credential stores held (one per STS region and workloadIdentityTokenURL in use).\n# TYPE irsa_argocd_credential_stores gauge\nirsa_argocd_credential_stores {}",
            load(&self.argocd_stores)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_api_writes_total Kubernetes API writes by verb.\n# TYPE irsa_api_writes_total counter"
        );
        for ((_, verb), v) in WRITES.iter().zip(&self.writes) {
            let _ = writeln!(out, "irsa_api_writes_total{{verb=\"{verb}\"}} {}", load(v));
        }
        let _ = writeln!(
            out,
            "# HELP irsa_conflicts_total Same-named secrets found that irsa does not own.\n# TYPE irsa_conflicts_total counter\nirsa_conflicts_total {}",
            load(&self.conflicts)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_leader Whether this replica holds the leader lease.\n# TYPE irsa_leader gauge\nirsa_leader {}",
            load(&self.leader)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_ready Whether every watch has delivered its first list.\n# TYPE irsa_ready gauge\nirsa_ready {}",
            load(&self.ready)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_cluster_pull_secrets_disabled 1 in one-namespace mode (--watch-namespace): ClusterPullSecrets are not served.\n# TYPE irsa_cluster_pull_secrets_disabled gauge\nirsa_cluster_pull_secrets_disabled {}",
            load(&self.single_namespace)
        );
        let _ = writeln!(
            out,
            "# HELP irsa_credential_expiry_seconds Seconds until the written credentials expire, per resource.\n# TYPE irsa_credential_expiry_seconds gauge"
        );
        if let Ok(m) = self.expiry.lock() {
            for (owner, at) in m.iter() {
                let (kind, ns, name) = match owner {
                    Owner::Cluster { name } => (KINDS[0], "", name.as_str()),
                    Owner::Namespaced { namespace, name } => {
                        (KINDS[1], namespace.as_str(), name.as_str())
                    }
                };
                let _ = writeln!(
                    out,
                    "irsa_credential_expiry_seconds{{kind=\"{kind}\",namespace=\"{ns}\",name=\"{name}\"}} {}",
                    at - now
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        let owner = Owner::Cluster { name: "ecr".into() };
        m.reconciled(&owner, true);
        m.reconciling(&owner);
        m.reconciling(&owner);
        assert_eq!(m.reconciles_of(&owner), 2);
        m.refreshed(&owner, false);
        m.exchanged();
        m.wrote(Write::Create);
        m.wrote(Write::Create);
        m.set_expiry(&owner, 1_000);
        let text = m.render(400);
        assert!(
            text.contains("irsa_reconciles_total{kind=\"ClusterPullSecret\"} 1"),
            "{text}"
        );
        assert!(text.contains("irsa_refresh_failures_total{kind=\"ClusterPullSecret\"} 1"));
        assert!(text.contains("irsa_upstream_exchanges_total 1"));
        assert!(text.contains("irsa_api_writes_total{verb=\"create\"} 2"));
        assert!(text.contains(
            "irsa_credential_expiry_seconds{kind=\"ClusterPullSecret\",namespace=\"\",name=\"ecr\"} 600"
        ));
        assert_eq!(m.writes(), 2);
        m.forget(&owner);
        assert!(!m.render(0).contains("name=\"ecr\""));
        assert_eq!(m.reconciles_of(&owner), 0);
    }
}
