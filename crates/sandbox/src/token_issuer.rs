//! The seam between the API server (which serves TokenRequest and OIDC discovery) and the OIDC
//! issuer (which holds the signing key): the API server asks, the issuer signs.

use irsa_core::secret::SecretString;

/// The object a service-account token is bound to (TokenRequest `spec.boundObjectRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod`, `Secret` or `Node`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// What a TokenRequest asks for, after the API server resolved the service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountTokenRequest {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// The service account's uid.
    pub service_account_uid: String,
    /// The audiences (`spec.audiences`); empty means the issuer's default audience.
    pub audiences: Vec<String>,
    /// Requested lifetime (`spec.expirationSeconds`).
    pub expiration_seconds: i64,
    /// The pod (or secret) the token is bound to, if any.
    pub bound_object: Option<BoundObject>,
    /// The node the bound pod runs on, if any.
    pub node: Option<BoundObject>,
    /// Issue time, Unix seconds (injected so that tests control the clock).
    pub now: i64,
}

/// A signed token and when it expires.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: SecretString,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// Signs service-account tokens and publishes the keys that verify them.
pub trait TokenIssuer: Send + Sync {
    /// Signs a token for the request. Errors are messages for a Kubernetes `Status`.
    fn issue(&self, request: &ServiceAccountTokenRequest) -> Result<IssuedToken, String>;
    /// The issuer URL (`iss`).
    fn issuer_url(&self) -> String;
    /// The `/.well-known/openid-configuration` document.
    fn discovery(&self) -> serde_json::Value;
    /// The JWKS document served at `/openid/v1/jwks`.
    fn jwks(&self) -> serde_json::Value;
}
