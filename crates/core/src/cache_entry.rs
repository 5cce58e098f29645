//! The file format of the CLI's on-disk credential cache (one JSON object per (identity,
//! registry)). The file is private to its user, but a corrupt, truncated or hand-edited one
//! must still never panic the credential helper nor be served past a believable expiry, so
//! its parser lives here, pure and fuzzed.

use serde::{Deserialize, Serialize};

use crate::lifetime;
use crate::secret::SecretString;

/// One cached registry credential as stored on disk. `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The registry host.
    pub registry: String,
    /// The registry user name.
    pub username: String,
    /// The registry password.
    pub password: SecretString,
    /// Unix seconds after which the registry refuses the password.
    pub expires_at: i64,
    /// Unix seconds after which the entry is not served (a fraction of its lifetime).
    pub refresh_at: i64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    registry: String,
    username: String,
    password: String,
    expires_at: i64,
    refresh_at: i64,
}

impl CacheEntry {
    /// Parses a cache file; `None` for anything that is not a well-formed entry.
    pub fn parse(bytes: &[u8]) -> Option<CacheEntry> {
        let d: OnDisk = serde_json::from_slice(bytes).ok()?;
        Some(CacheEntry {
            registry: d.registry,
            username: d.username,
            password: SecretString::new(d.password),
            expires_at: d.expires_at,
            refresh_at: d.refresh_at,
        })
    }

    /// The file's bytes (they hold the password: write them privately).
    pub fn to_json(&self) -> SecretString {
        let json = serde_json::to_string(&OnDisk {
            registry: self.registry.clone(),
            username: self.username.clone(),
            password: self.password.expose().to_owned(),
            expires_at: self.expires_at,
            refresh_at: self.refresh_at,
        })
        .unwrap_or_default();
        SecretString::new(json)
    }

    /// Whether the entry may answer for `registry` at `now`: the registry matches, it is before
    /// both the refresh point and the expiry, and the expiry is believable (not further away
    /// than [`lifetime::MAX_LIFETIME_SECS`], as an edited file could claim).
    pub fn servable(&self, registry: &str, now: i64) -> bool {
        self.registry == registry
            && now < self.refresh_at
            && matches!(
                lifetime::judge(self.expires_at, now),
                Ok(lifetime::Expiry::Valid(_))
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_servability() {
        let e = CacheEntry {
            registry: "cgr.dev".into(),
            username: "_token".into(),
            password: SecretString::from("pw-secret"),
            expires_at: 2_000,
            refresh_at: 1_500,
        };
        let again = CacheEntry::parse(e.to_json().expose().as_bytes()).unwrap();
        assert_eq!(again, e);
        assert!(!format!("{again:?}").contains("pw-secret"));
        assert!(e.servable("cgr.dev", 1_000));
        assert!(!e.servable("cgr.dev", 1_500), "refresh point");
        assert!(!e.servable("other", 1_000));
        let forever = CacheEntry {
            expires_at: i64::MAX,
            refresh_at: i64::MAX,
            ..e.clone()
        };
        assert!(
            !forever.servable("cgr.dev", 1_000),
            "an absurd expiry is never served"
        );
        for bad in [&b""[..], b"{}", b"[]", b"{\"registry\":1}", b"\xff"] {
            assert_eq!(CacheEntry::parse(bad), None);
        }
    }
}
