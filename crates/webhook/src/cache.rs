//! The service-account index: the few annotations the webhook reads, per account, fed by a
//! metadata-only watch. An index you can unit-test: `apply`, `delete`, `reset`, no cluster.
//!
//! A pod can arrive before the watch delivered its account (the account was created a moment
//! earlier): [`ServiceAccountCache::wait_for`] waits for exactly that account, up to a grace
//! period, instead of admitting the pod without credentials (upstream's issues #174, #194).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

pub use crate::config::MAX_ANNOTATION_VALUE;
use crate::config::{
    AUDIENCE_ANNOTATION, Config, REGIONAL_STS_ANNOTATION, ROLE_ARN_ANNOTATION,
    TOKEN_EXPIRATION_ANNOTATION,
};

/// Kept annotations of one account: only the (at most four) keys the mutation reads.
type Kept = Box<[(Box<str>, Box<str>)]>;
/// Accounts by namespace, then name.
type Index = HashMap<Box<str>, HashMap<Box<str>, Kept>>;

/// Service accounts by namespace and name, with their relevant annotations.
#[derive(Debug)]
pub struct ServiceAccountCache {
    keys: [String; 4],
    accounts: RwLock<Index>,
    /// Bumped on every change, so waiters re-check.
    changes: watch::Sender<u64>,
    synced: AtomicBool,
}

impl ServiceAccountCache {
    /// An empty, not yet synced cache keeping the annotations `config` reads.
    pub fn new(config: &Config) -> Self {
        Self {
            keys: [
                ROLE_ARN_ANNOTATION,
                AUDIENCE_ANNOTATION,
                REGIONAL_STS_ANNOTATION,
                TOKEN_EXPIRATION_ANNOTATION,
            ]
            .map(|k| config.annotation(k)),
            accounts: RwLock::new(HashMap::new()),
            changes: watch::channel(0).0,
            synced: AtomicBool::new(false),
        }
    }

    fn kept(&self, annotations: &BTreeMap<String, String>) -> Kept {
        self.keys
            .iter()
            .filter_map(|k| {
                annotations
                    .get(k)
                    .filter(|v| v.len() <= MAX_ANNOTATION_VALUE)
                    .map(|v| (k.as_str().into(), v.as_str().into()))
            })
            .collect()
    }

    /// Add or replace an account.
    pub fn apply(&self, namespace: &str, name: &str, annotations: &BTreeMap<String, String>) {
        let kept = self.kept(annotations);
        if let Ok(mut map) = self.accounts.write() {
            map.entry(namespace.into())
                .or_default()
                .insert(name.into(), kept);
        }
        self.changes.send_modify(|g| *g += 1);
    }

    /// Remove an account.
    pub fn delete(&self, namespace: &str, name: &str) {
        if let Ok(mut map) = self.accounts.write()
            && let Some(ns) = map.get_mut(namespace)
        {
            ns.remove(name);
            if ns.is_empty() {
                map.remove(namespace);
            }
        }
        self.changes.send_modify(|g| *g += 1);
    }

    /// Replace everything with a fresh list (a watch's relist) and mark the cache synced.
    pub fn reset<'a>(
        &self,
        accounts: impl IntoIterator<Item = (&'a str, &'a str, &'a BTreeMap<String, String>)>,
    ) {
        let mut fresh: Index = HashMap::new();
        for (ns, name, ann) in accounts {
            fresh
                .entry(ns.into())
                .or_default()
                .insert(name.into(), self.kept(ann));
        }
        if let Ok(mut map) = self.accounts.write() {
            *map = fresh;
        }
        self.mark_synced();
        self.changes.send_modify(|g| *g += 1);
    }

    /// The first full list arrived: `/readyz` may say ready.
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Whether the first full list has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Number of cached accounts.
    pub fn len(&self) -> usize {
        self.accounts
            .read()
            .map(|m| m.values().map(HashMap::len).sum())
            .unwrap_or(0)
    }

    /// Whether no account is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The account's relevant annotations, if it is cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let map = self.accounts.read().ok()?;
        let kept = map.get(namespace)?.get(name)?;
        Some(
            kept.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Reviews waiting in [`Self::wait_for`] for an account to arrive (for tests and the bench).
    pub fn waiting(&self) -> usize {
        self.changes.receiver_count()
    }

    /// [`Self::get`], waiting up to `grace` for the account to arrive.
    pub async fn wait_for(
        &self,
        namespace: &str,
        name: &str,
        grace: Duration,
    ) -> Option<BTreeMap<String, String>> {
        let mut changes = self.changes.subscribe();
        if let Some(found) = self.get(namespace, name) {
            return Some(found);
        }
        if grace.is_zero() {
            return None;
        }
        let wait = async {
            loop {
                if changes.changed().await.is_err() {
                    return None;
                }
                if let Some(found) = self.get(namespace, name) {
                    return Some(found);
                }
            }
        };
        tokio::time::timeout(grace, wait).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_only_the_annotations_the_mutation_reads() {
        let c = ServiceAccountCache::new(&Config::default());
        c.apply(
            "ns",
            "sa",
            &ann(&[
                ("eks.amazonaws.com/role-arn", "r"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{...}"),
                ("other.io/role-arn", "x"),
            ]),
        );
        assert_eq!(
            c.get("ns", "sa"),
            Some(ann(&[("eks.amazonaws.com/role-arn", "r")]))
        );
        c.apply("ns", "plain", &ann(&[]));
        assert_eq!(
            c.get("ns", "plain"),
            Some(BTreeMap::new()),
            "found, no role"
        );
        assert_eq!(c.get("ns", "nope"), None);
        c.delete("ns", "sa");
        assert_eq!(c.get("ns", "sa"), None);
        assert!(!c.is_synced());
        let a = ann(&[]);
        c.reset([("other", "x", &a)]);
        assert!(c.is_synced());
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("ns", "plain"), None, "a relist replaces everything");
    }

    #[test]
    fn an_oversized_annotation_value_is_not_kept() {
        // A tenant can write up to 256 KiB per annotation; kept, ~500 such accounts per relist
        // run the replica out of memory. No value the mutation reads is longer than an ARN.
        let c = ServiceAccountCache::new(&Config::default());
        let huge = "a".repeat(256 * 1024);
        c.apply(
            "ns",
            "sa",
            &ann(&[
                ("eks.amazonaws.com/role-arn", &huge),
                ("eks.amazonaws.com/audience", "sts.amazonaws.com"),
            ]),
        );
        assert_eq!(
            c.get("ns", "sa"),
            Some(ann(&[("eks.amazonaws.com/audience", "sts.amazonaws.com")])),
            "found, no role"
        );
        let bound = "a".repeat(MAX_ANNOTATION_VALUE);
        c.apply(
            "ns",
            "edge",
            &ann(&[("eks.amazonaws.com/role-arn", &bound)]),
        );
        assert_eq!(
            c.get("ns", "edge"),
            Some(ann(&[("eks.amazonaws.com/role-arn", &bound)]))
        );
        let a = ann(&[("eks.amazonaws.com/role-arn", &huge)]);
        c.reset([("ns", "sa", &a)]);
        assert_eq!(c.get("ns", "sa"), Some(BTreeMap::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_account_is_awaited_up_to_the_grace_period() {
        let c = Arc::new(ServiceAccountCache::new(&Config::default()));
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.wait_for("ns", "late", Duration::from_secs(2)).await })
        };
        tokio::task::yield_now().await;
        c.apply("ns", "unrelated", &ann(&[]));
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.apply("ns", "late", &ann(&[("eks.amazonaws.com/role-arn", "r")]));
        assert_eq!(
            waiter.await.unwrap(),
            Some(ann(&[("eks.amazonaws.com/role-arn", "r")]))
        );
        let start = tokio::time::Instant::now();
        assert_eq!(
            c.wait_for("ns", "never", Duration::from_secs(2)).await,
            None
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(c.wait_for("ns", "never", Duration::ZERO).await, None);
    }
}
