//! The environment variables the pipeline reads, from the process or from a map (tests run in
//! one process and must not share `AWS_*` variables).

use std::collections::HashMap;
use std::sync::Arc;

/// Where `AWS_*` variables are read from.
#[derive(Debug, Clone, Default)]
pub enum Env {
    /// The process environment.
    #[default]
    Process,
    /// A fixed set of variables (nothing else is visible).
    Map(Arc<HashMap<String, String>>),
}

impl Env {
    /// An environment holding exactly `vars`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env::Map(Arc::new(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    /// The value of `name`; unset and empty are the same.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match self {
            Env::Process => std::env::var(name).ok(),
            Env::Map(map) => map.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Whether `name` is set to `true` (any case).
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The endpoint URL configured for a service the way the SDKs read it:
    /// `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, unless
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
    pub fn endpoint_url(&self, service_env_suffix: &str) -> Option<String> {
        if self.flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") == Some(true) {
            return None;
        }
        self.get(&format!("AWS_ENDPOINT_URL_{service_env_suffix}"))
            .or_else(|| self.get("AWS_ENDPOINT_URL"))
    }

    /// `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Option<String> {
        self.get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_endpoint_wins_over_the_general_one() {
        let env = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_ENDPOINT_URL_STS", "http://sts"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("EMPTY", " "),
        ]);
        assert_eq!(env.endpoint_url("STS").as_deref(), Some("http://sts"));
        assert_eq!(env.endpoint_url("ECR").as_deref(), Some("http://general"));
        assert_eq!(env.region().as_deref(), Some("eu-west-1"));
        assert_eq!(env.get("EMPTY"), None);
        let ignored = Env::from_pairs([
            ("AWS_ENDPOINT_URL", "http://general"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]);
        assert_eq!(ignored.endpoint_url("STS"), None);
    }
}
