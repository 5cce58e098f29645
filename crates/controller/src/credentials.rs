//! Registry credentials shared by every resource that asks for the same (identity, registries):
//! one upstream exchange per refresh however many resources and namespaces use it. The
//! controller decides when to refresh (the resource's `refresh` fraction of the credential's
//! real lifetime), so the pipeline is asked for fresh tokens only then; a failed refresh keeps
//! the last good credential and backs off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use irsa_aws::{Identity, Pipeline, RegistryCredential, RegistryTarget};
use irsa_core::docker_config::DockerConfig;

use crate::metrics::Metrics;
use crate::plan::{failure_backoff, next_refresh};

/// Lifetime assumed for a credential whose registry gives no expiry (ECR's is 12 hours).
pub const ASSUMED_LIFETIME_SECS: i64 = 12 * 3600;

/// A credential: the rendered registries and when it was obtained and expires (Unix seconds).
/// `Debug` never shows the passwords (`DockerConfig` redacts them).
#[derive(Debug, Clone)]
pub struct Credential {
    /// The registries' usernames and passwords.
    pub config: DockerConfig,
    /// When it was obtained.
    pub issued_at: i64,
    /// When the first of its tokens expires.
    pub expires_at: i64,
    /// This credential's jitter sample in `[0, 1)`, fixed so that every resource and every
    /// resync computes the same refresh time.
    pub jitter: f64,
}

impl Credential {
    /// Builds a credential from the pipeline's answer.
    pub fn from_registry_credentials(creds: &[RegistryCredential], now: i64) -> Self {
        let mut config = DockerConfig::new();
        for c in creds {
            config.insert(c.registry.clone(), c.username.clone(), c.password.clone());
        }
        let expires_at = creds
            .iter()
            .filter_map(|c| c.expires_at)
            .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .min()
            .unwrap_or(now.saturating_add(ASSUMED_LIFETIME_SECS));
        Self {
            config,
            issued_at: now,
            expires_at,
            jitter: fastrand::f64(),
        }
    }

    /// When a resource with refresh fraction `fraction` should refresh it.
    pub fn refresh_at(&self, fraction: f64) -> i64 {
        next_refresh(self.issued_at, self.expires_at, fraction, self.jitter)
    }
}

/// What [`CredentialStore::get`] found.
#[derive(Debug, Clone)]
pub enum Obtained {
    /// A credential obtained by this call.
    Refreshed(Arc<Credential>),
    /// A credential that is not due for refresh yet.
    Current(Arc<Credential>),
    /// The refresh failed (now or recently, and is backing off).
    Failed {
        /// Why, free of secrets.
        error: String,
        /// The last good credential, if one is held (possibly expired).
        last_good: Option<Arc<Credential>>,
        /// When to try again.
        retry_in: Duration,
        /// Whether this call asked upstream (false: still backing off from an earlier failure).
        attempted: bool,
    },
}

#[derive(Default)]
struct Slot {
    current: Option<Arc<Credential>>,
    failures: u32,
    retry_at: Option<i64>,
    last_error: Option<String>,
}

/// See the [module docs](self).
pub struct CredentialStore {
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore").finish_non_exhaustive()
    }
}

/// The store key of (identity, registries): never a token.
pub fn key(identity: &Identity, targets: &[RegistryTarget]) -> String {
    let mut hosts: Vec<String> = targets
        .iter()
        .map(|t| match &t.chainguard_identity {
            Some(id) => format!("{}#{id}", t.host),
            None => t.host.clone(),
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    format!("{}\u{1f}{}", identity.cache_key(), hosts.join(","))
}

impl CredentialStore {
    /// A store over `pipeline`.
    pub fn new(pipeline: Pipeline, metrics: Arc<Metrics>) -> Self {
        Self {
            pipeline,
            metrics,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Whether a credential is held for `key`.
    pub async fn holds(&self, key: &str) -> bool {
        self.slot(key).lock().await.current.is_some()
    }

    /// Installs a credential recovered from a written Secret (after a restart or a leader
    /// change) unless one is held already.
    pub async fn adopt(&self, key: &str, credential: Credential) {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.current.is_none() {
            slot.current = Some(Arc::new(credential));
        }
    }

    /// The credential for (identity, targets), refreshed when `now` is past its refresh point
    /// for `fraction`. Concurrent callers for one key share one upstream exchange.
    pub async fn get(
        &self,
        key: &str,
        identity: &Identity,
        targets: &[RegistryTarget],
        fraction: f64,
        now: i64,
    ) -> Obtained {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(c) = &slot.current
            && now < c.refresh_at(fraction)
            && now < c.expires_at
        {
            return Obtained::Current(c.clone());
        }
        if let (Some(at), Some(error)) = (slot.retry_at, &slot.last_error)
            && now < at
        {
            return Obtained::Failed {
                error: error.clone(),
                last_good: slot.current.clone(),
                retry_in: Duration::from_secs(u64::try_from(at - now).unwrap_or(1)),
                attempted: false,
            };
        }
        self.metrics.exchanged();
        match self
            .pipeline
            .fresh_registry_credentials(identity, targets)
            .await
        {
            Ok(creds) => {
                let c = Arc::new(Credential::from_registry_credentials(&creds, now));
                slot.current = Some(c.clone());
                slot.failures = 0;
                slot.retry_at = None;
                slot.last_error = None;
                Obtained::Refreshed(c)
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                let backoff = failure_backoff(slot.failures, fastrand::f64());
                let retry_in = backoff.max(Duration::from_secs(1));
                slot.retry_at = Some(now + i64::try_from(retry_in.as_secs()).unwrap_or(1));
                let error = e.to_string();
                slot.last_error = Some(error.clone());
                Obtained::Failed {
                    error,
                    last_good: slot.current.clone(),
                    retry_in,
                    attempted: true,
                }
            }
        }
    }

    /// Forgets credentials nobody asked for since the last call with `keep` (deleted resources).
    pub fn retain(&self, keep: &std::collections::HashSet<String>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irsa_core::secret::SecretString;
    use std::time::SystemTime;

    #[test]
    fn expiry_is_the_earliest_and_debug_is_redacted() {
        let now = 1_000_000;
        let at = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        let creds = vec![
            RegistryCredential {
                registry: "a.dkr.ecr.us-east-1.amazonaws.com".into(),
                username: "AWS".into(),
                password: SecretString::from("super-secret-password"),
                expires_at: at(1_000_600),
            },
            RegistryCredential {
                registry: "cgr.dev".into(),
                username: "_token".into(),
                password: SecretString::from("another-secret"),
                expires_at: at(1_000_300),
            },
        ];
        let c = Credential::from_registry_credentials(&creds, now);
        assert_eq!(c.expires_at, 1_000_300);
        let r = c.refresh_at(0.5);
        assert!((1_000_030..=1_000_270).contains(&r), "{r}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("super-secret"), "{debug}");
        assert!(!debug.contains("another-secret"), "{debug}");
        let none = Credential::from_registry_credentials(
            &[RegistryCredential {
                expires_at: None,
                ..creds[0].clone()
            }],
            now,
        );
        assert_eq!(none.expires_at, now + ASSUMED_LIFETIME_SECS);
        let _ = SystemTime::now();
    }
}
