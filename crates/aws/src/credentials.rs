//! The two kinds of credential the pipeline produces. Neither ever prints a secret.

use std::fmt;
use std::time::SystemTime;

use irsa_core::secret::SecretString;

/// A boxed, sendable future: the return type of the object-safe async traits in this crate.
pub use irsa_core::token_request::BoxFuture;

/// Temporary AWS credentials, from STS or from the ambient chain.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (`ASIA…` for temporary credentials); not a secret on its own.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token of temporary credentials.
    pub session_token: Option<SecretString>,
    /// When the credentials stop working, when known.
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A registry username and password, with the time the registry stops accepting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The registry host the credential is for, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: String,
    /// The username: `AWS` for ECR, `_token` for Chainguard.
    pub username: String,
    /// The password (a registry token).
    pub password: SecretString,
    /// When the registry stops accepting the password, when known.
    pub expires_at: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = AwsCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
            session_token: Some("very-secret-session".into()),
            expires_at: None,
        };
        let text = format!("{creds:?} {creds:#?}");
        assert!(text.contains("ASIAEXAMPLE"));
        assert!(!text.contains("very-secret"), "{text}");
        let reg = RegistryCredential {
            registry: "cgr.dev".into(),
            username: "_token".into(),
            password: "very-secret-password".into(),
            expires_at: None,
        };
        assert!(!format!("{reg:?}").contains("very-secret"));
    }
}
