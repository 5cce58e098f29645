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
        let specific = format!("AWS_ENDPOINT_URL_{service_env_suffix}");
        let (variable, url) = match self.get(&specific) {
            Some(url) => (specific.as_str(), url),
            None => ("AWS_ENDPOINT_URL", self.get("AWS_ENDPOINT_URL")?),
        };
        let bare = without_userinfo(&url);
        if bare.len() != url.len() {
            // The SDK signs its requests and never sends a URL's user and password, but it and
            // hyper log the URL at debug and trace: drop them before anything sees them.
            tracing::warn!(
                variable,
                endpoint = %bare,
                "the endpoint URL carries a user and password, which AWS requests never use: dropped them"
            );
        }
        Some(bare)
    }

    /// `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Option<String> {
        self.get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
    }
}

/// `url` without a `user:password@` part. Everything up to the last `@` counts as one, even
/// past a `/`, `?` or `#`: a password pasted unencoded may hold those, and an AWS endpoint URL
/// has no `@` of its own in its path or query.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    format!("{scheme}{rest}")
}

/// `url` as irsa's own logs show it: without a `user:password@` part, query or fragment, where
/// an operator's proxy URL could carry credentials.
pub fn url_for_logs(url: &str) -> String {
    let bare = without_userinfo(url);
    let end = bare.find(['?', '#']).unwrap_or(bare.len());
    bare[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_logs_lose_credentials_query_and_fragment() {
        for (url, shown) in [
            (
                "https://sts.us-east-1.amazonaws.com",
                "https://sts.us-east-1.amazonaws.com",
            ),
            ("http://u:p@127.0.0.1:4566/", "http://127.0.0.1:4566/"),
            ("http://u:p@w@proxy/sts?token=t#f", "http://proxy/sts"),
            ("https://proxy?sig=s", "https://proxy"),
            // A password holding a raw `/`, `?` or `#` (unencoded, as people paste them): the
            // URL is not valid, and nothing before its last `@` may reach a log (review 23 L2).
            ("http://u:p/ss@127.0.0.1:4566/", "http://127.0.0.1:4566/"),
            ("http://u:p?s#s@proxy/sts", "http://proxy/sts"),
            ("http://u:p#s/s@proxy", "http://proxy"),
            ("proxy:8080", "proxy:8080"),
            ("", ""),
        ] {
            assert_eq!(url_for_logs(url), shown, "{url}");
        }
    }

    #[test]
    fn endpoint_urls_lose_a_user_and_password() {
        let env = Env::from_pairs([("AWS_ENDPOINT_URL_STS", "http://u:p@127.0.0.1:4566/x?y=1")]);
        assert_eq!(
            env.endpoint_url("STS").as_deref(),
            Some("http://127.0.0.1:4566/x?y=1")
        );
    }

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
