//! Fault injection: latency, error rates per verb and resource, throttling with
//! `Retry-After`, dropped watches, and held watches (open, but delivering nothing until
//! released, as a stalled watch cache or a partitioned API server looks to a client). Set from
//! code ([`Faults`]) or the admin endpoint (`/sandbox/faults`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::ApiError;

/// One error rule: requests matching `verb` and `resource` fail with `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRule {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`); None: any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource plural (`secrets`); None: any.
    #[serde(default)]
    pub resource: Option<String>,
    /// HTTP code to answer with (429 adds `Retry-After`).
    pub code: u16,
    /// Probability of failing a matching request, 0.0 to 1.0.
    #[serde(default = "one")]
    pub rate: f64,
    /// Fail at most this many requests, then stop (None: no limit).
    #[serde(default)]
    pub count: Option<u64>,
    /// `Retry-After` seconds for 429 (default 1).
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// The `Status` message (default: `injected fault (<code>)`). The reason follows the code,
    /// and there are no details: a message that reads like another error stays just a message.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> f64 {
    1.0
}

/// The fault settings, as set through the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    /// Added to every API request, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Error rules, first match wins.
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Resources (plurals, e.g. `secrets`) whose watches hold their events back, open or
    /// opened later, until removed from this list; nothing is lost, and a held watch sends no
    /// bookmarks.
    #[serde(default)]
    pub hold_watches: BTreeSet<String>,
}

/// Live fault injection shared by every request.
#[derive(Debug)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    drops: watch::Sender<u64>,
    holds: watch::Sender<BTreeSet<String>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            config: Mutex::new(FaultConfig::default()),
            drops: watch::channel(0).0,
            holds: watch::channel(BTreeSet::new()).0,
        }
    }
}

impl Faults {
    /// Replaces the settings.
    pub fn set(&self, config: FaultConfig) {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        self.holds.send_replace(config.hold_watches.clone());
        *current = config;
    }

    /// The current settings.
    pub fn get(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Sets the latency added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latency_ms = latency.as_millis() as u64;
    }

    /// Adds an error rule.
    pub fn add_error(&self, rule: ErrorRule) {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .errors
            .push(rule);
    }

    /// Ends every open watch now (clients see the stream end and reconnect).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Subscribes to watch drops.
    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Holds back the events of every watch of `resource` (a plural, e.g. `secrets`), open or
    /// opened later, without ending them, until [`Faults::release_watches`].
    pub fn hold_watches(&self, resource: &str) {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        config.hold_watches.insert(resource.to_owned());
        self.holds.send_replace(config.hold_watches.clone());
    }

    /// Releases the watches of `resource`: what they held is delivered, in order.
    pub fn release_watches(&self, resource: &str) {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        config.hold_watches.remove(resource);
        self.holds.send_replace(config.hold_watches.clone());
    }

    /// Subscribes to the set of held resources.
    pub fn watch_holds(&self) -> watch::Receiver<BTreeSet<String>> {
        self.holds.subscribe()
    }

    /// The latency to add to a request.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.get().latency_ms)
    }

    /// The injected error for a request, if one applies (counting it against the rule).
    pub fn check(&self, verb: &str, resource: &str) -> Option<ApiError> {
        let mut config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let rule = config.errors.iter_mut().find(|r| {
            r.verb.as_deref().is_none_or(|v| v == verb)
                && r.resource.as_deref().is_none_or(|x| x == resource)
                && r.count != Some(0)
        })?;
        if rule.rate < 1.0 && fastrand::f64() >= rule.rate {
            return None;
        }
        if let Some(n) = rule.count.as_mut() {
            *n -= 1;
        }
        Some(injected(rule))
    }
}

fn injected(rule: &ErrorRule) -> ApiError {
    let reason = match rule.code {
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        409 => "Conflict",
        404 => "NotFound",
        403 => "Forbidden",
        _ => "InternalError",
    };
    let message = rule
        .message
        .clone()
        .unwrap_or_else(|| format!("injected fault ({})", rule.code));
    let mut err = ApiError::new(rule.code, reason, message);
    if rule.code == 429 && rule.message.is_none() {
        err.message = "the server has received too many requests and has asked us to try again later (injected)".into();
        err.retry_after = Some(rule.retry_after_seconds.unwrap_or(1));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_verb_and_resource_and_count_down() {
        let faults = Faults::default();
        faults.add_error(ErrorRule {
            verb: Some("list".into()),
            resource: Some("secrets".into()),
            code: 429,
            rate: 1.0,
            count: Some(2),
            retry_after_seconds: Some(3),
            message: None,
        });
        assert!(faults.check("get", "secrets").is_none());
        assert!(faults.check("list", "pods").is_none());
        let err = faults.check("list", "secrets").unwrap();
        assert_eq!((err.code, err.retry_after), (429, Some(3)));
        assert!(faults.check("list", "secrets").is_some());
        assert!(faults.check("list", "secrets").is_none());
    }

    #[test]
    fn config_parses_from_json() {
        let c: FaultConfig = serde_json::from_str(
            r#"{"latencyMs": 5, "errors": [{"verb": "create", "code": 500, "rate": 0.5}]}"#,
        )
        .unwrap();
        assert_eq!(c.latency_ms, 5);
        assert_eq!(c.errors[0].rate, 0.5);
        assert_eq!(c.errors[0].resource, None);
        let c: FaultConfig = serde_json::from_str(
            r#"{"errors": [{"code": 404, "message": "namespace a: not found in the allow list"}],
                "holdWatches": ["secrets"]}"#,
        )
        .unwrap();
        assert_eq!(c.hold_watches, BTreeSet::from(["secrets".to_owned()]));
        let faults = Faults::default();
        faults.set(c);
        let err = faults.check("create", "secrets").unwrap();
        assert_eq!(
            (err.code, err.reason, err.message.as_str(), err.details),
            (
                404,
                "NotFound",
                "namespace a: not found in the allow list",
                None
            )
        );
        assert!(faults.watch_holds().borrow().contains("secrets"));
    }

    #[test]
    fn holds_are_set_released_and_cleared() {
        let faults = Faults::default();
        let holds = faults.watch_holds();
        faults.hold_watches("secrets");
        faults.hold_watches("namespaces");
        faults.release_watches("namespaces");
        assert_eq!(*holds.borrow(), BTreeSet::from(["secrets".to_owned()]));
        assert_eq!(faults.get().hold_watches, *holds.borrow());
        faults.clear();
        assert!(holds.borrow().is_empty());
    }
}
