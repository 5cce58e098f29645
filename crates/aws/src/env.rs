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
        let Some(bare) = endpoint_without_userinfo(&url) else {
            tracing::warn!(
                variable,
                "the endpoint URL holds an '@' after its host: a password in it must have its \
                 '/', '?', '#' and '@' percent-encoded (%2F, %3F, %23, %40); the variable is ignored"
            );
            return None;
        };
        if bare.len() != url.len() {
            // The SDK signs its requests and never sends a URL's user and password, but it and
            // hyper log the URL at debug and trace: drop them before anything sees them.
            tracing::warn!(
                variable,
                endpoint = %url_for_logs(&bare),
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

/// `url` without a `user:password@` part (in the authority, which ends at the first `/`, `?`
/// or `#`, as URL parsers read it).
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}{host}{tail}")
}

/// `url` without a `user:password@` part for logs, or `None` when an `@` remains after the
/// authority: a password pasted unencoded (holding a raw `/`, `?` or `#`) ends the authority
/// early and leaves its rest, and the real host, in the path. Such a URL is never used or
/// shown (guessing the host from the last `@` could send requests to a host named in a query).
fn endpoint_without_userinfo(url: &str) -> Option<String> {
    let bare = without_userinfo(url);
    let after_scheme = bare.find("://").map_or(0, |i| i + 3);
    (!bare[after_scheme..].contains('@')).then_some(bare)
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

    /// Review 23 L2: a password holding a raw `/`, `?` or `#` (unencoded, as people paste
    /// them) ends the authority early; the URL is then neither used nor logged, and never
    /// re-read as pointing at a host named later in it.
    #[test]
    fn an_endpoint_url_with_an_at_sign_after_its_host_is_ignored() {
        for url in [
            "http://u:p/ss@127.0.0.1:4566/",
            "http://u:p?s#s@proxy/sts",
            "http://u:p#s/s@proxy",
            "https://proxy/sts?x=a@elsewhere.example",
        ] {
            let env = Env::from_pairs([("AWS_ENDPOINT_URL_STS", url)]);
            assert_eq!(env.endpoint_url("STS"), None, "{url}");
        }
        let env = Env::from_pairs([("AWS_ENDPOINT_URL", "http://u:p%2Fs@proxy/sts")]);
        assert_eq!(env.endpoint_url("STS").as_deref(), Some("http://proxy/sts"));
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
