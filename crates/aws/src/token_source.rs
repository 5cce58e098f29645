//! Where a web-identity (service-account) token comes from.
//!
//! - [`FileTokenSource`]: a projected token file (`AWS_WEB_IDENTITY_TOKEN_FILE`), re-read at every
//!   exchange because the kubelet rotates it.
//! - [`TokenRequestSource`]: the Kubernetes TokenRequest API, behind [`TokenRequester`] (the
//!   implementation lives with the Kubernetes client).
//! - [`StaticTokenSource`]: a token held in memory (tests, the kubelet credential plugin).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use irsa_core::secret::SecretString;

use crate::credentials::BoxFuture;

/// The audience AWS STS expects in web-identity tokens.
pub use irsa_core::names::STS_AUDIENCE;

pub use irsa_core::token_request::{TokenRequester, TokenSourceError};

/// A source of web-identity tokens. `token` is called at every STS exchange.
pub trait TokenSource: Send + Sync {
    /// The current token.
    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenSourceError>>;
    /// A short description for logs, errors and cache keys (never the token): `file /var/run/…`.
    fn describe(&self) -> String;
}

impl fmt::Debug for dyn TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A projected service-account token file, re-read at every call.
#[derive(Debug, Clone)]
pub struct FileTokenSource {
    path: PathBuf,
}

impl FileTokenSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenSource for FileTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenSourceError>> {
        Box::pin(async move {
            let raw = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
                TokenSourceError::ReadFile {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }
            })?;
            let raw = SecretString::new(raw);
            let trimmed = raw.expose().trim();
            if trimmed.is_empty() {
                return Err(TokenSourceError::EmptyFile {
                    path: self.path.clone(),
                });
            }
            Ok(SecretString::from(trimmed))
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// A token held in memory.
#[derive(Clone)]
pub struct StaticTokenSource {
    token: SecretString,
    label: String,
}

impl StaticTokenSource {
    /// A source that always returns `token`; `label` names it in logs and cache keys.
    pub fn new(token: SecretString, label: impl Into<String>) -> Self {
        Self {
            token,
            label: label.into(),
        }
    }
}

impl fmt::Debug for StaticTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenSource")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl TokenSource for StaticTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenSourceError>> {
        let token = self.token.clone();
        Box::pin(async move { Ok(token) })
    }

    fn describe(&self) -> String {
        format!("in-memory token {}", self.label)
    }
}

/// A token source that asks the TokenRequest API for a fresh token at every exchange.
#[derive(Clone)]
pub struct TokenRequestSource {
    requester: Arc<dyn TokenRequester>,
    namespace: String,
    service_account: String,
    audiences: Vec<String>,
    expiration: Duration,
}

impl TokenRequestSource {
    /// A source for `namespace/service_account`, audience `sts.amazonaws.com`, 1 hour lifetime.
    pub fn new(
        requester: Arc<dyn TokenRequester>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Self {
        Self {
            requester,
            namespace: namespace.into(),
            service_account: service_account.into(),
            audiences: vec![STS_AUDIENCE.to_owned()],
            expiration: Duration::from_secs(3600),
        }
    }

    /// Replaces the audiences.
    pub fn with_audiences(mut self, audiences: Vec<String>) -> Self {
        self.audiences = audiences;
        self
    }

    /// Replaces the requested lifetime (Kubernetes enforces at least 10 minutes).
    pub fn with_expiration(mut self, expiration: Duration) -> Self {
        self.expiration = expiration;
        self
    }
}

impl TokenSource for TokenRequestSource {
    fn token(&self) -> BoxFuture<'_, Result<SecretString, TokenSourceError>> {
        self.requester.request_token(
            &self.namespace,
            &self.service_account,
            &self.audiences,
            self.expiration,
        )
    }

    fn describe(&self) -> String {
        format!(
            "TokenRequest for service account {}/{}",
            self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("irsa-aws-{}-{name}", std::process::id()))
    }

    #[tokio::test]
    async fn file_source_rereads_the_file_every_time() {
        let path = temp_file("rotate");
        std::fs::write(&path, "first.token.value\n").unwrap();
        let source = FileTokenSource::new(&path);
        assert_eq!(source.token().await.unwrap().expose(), "first.token.value");
        std::fs::write(&path, "second.token.value").unwrap();
        assert_eq!(source.token().await.unwrap().expose(), "second.token.value");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            source.token().await,
            Err(TokenSourceError::EmptyFile { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        let err = source.token().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("failed to read the web-identity token file")
        );
        assert!(source.describe().starts_with("file "));
    }

    #[tokio::test]
    async fn static_source_never_prints_the_token() {
        let source = StaticTokenSource::new("secret.jwt.value".into(), "test");
        assert_eq!(source.token().await.unwrap().expose(), "secret.jwt.value");
        assert!(!format!("{source:?} {}", source.describe()).contains("secret.jwt"));
    }

    struct Fake;
    impl TokenRequester for Fake {
        fn request_token<'a>(
            &'a self,
            namespace: &'a str,
            service_account: &'a str,
            audiences: &'a [String],
            expiration: Duration,
        ) -> BoxFuture<'a, Result<SecretString, TokenSourceError>> {
            Box::pin(async move {
                Ok(SecretString::new(format!(
                    "{namespace}/{service_account}/{}/{}",
                    audiences.join(","),
                    expiration.as_secs()
                )))
            })
        }
    }

    #[tokio::test]
    async fn token_request_source_asks_with_its_parameters() {
        let source = TokenRequestSource::new(Arc::new(Fake), "team", "puller")
            .with_expiration(Duration::from_secs(600));
        assert_eq!(
            source.token().await.unwrap().expose(),
            "team/puller/sts.amazonaws.com/600"
        );
        assert_eq!(
            source.describe(),
            "TokenRequest for service account team/puller"
        );
    }
}
