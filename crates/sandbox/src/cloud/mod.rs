//! The cloud side of the sandbox: the OIDC issuer's keys, IAM (OIDC providers, roles), STS,
//! ECR, ECR Public, Chainguard's token exchange and the registry token service, on one HTTP
//! listener so that `AWS_ENDPOINT_URL=http://127.0.0.1:PORT` reaches every AWS service.
//!
//! Routes:
//! - `POST /`: AWS APIs, dispatched on `X-Amz-Target` (ECR, ECR Public, JSON 1.1), else on
//!   the SigV4 credential scope's service `iam` (or, unsigned, an IAM `Action`) to IAM's Query
//!   API (see [`iam_query`]), else to STS's Query API.
//! - `POST /sts/exchange?aud=…&identity=…`: Chainguard.
//! - `GET /registry/token?service=…&scope=…`: the registry token service (HTTP Basic).
//! - `GET /.well-known/openid-configuration`, `GET /openid/v1/jwks`: the OIDC issuer.
//! - `GET /outbound/.well-known/openid-configuration`, `GET /outbound/.well-known/jwks.json`:
//!   the outbound issuer of STS `GetWebIdentityToken` (IAM outbound identity federation; its
//!   URL is `outboundIssuerUrl`, by default `http://<the Host the request named>/outbound`).
//! - `GET /metrics`: request counters.
//! - `GET|POST /admin/iam/oidc-providers`, `GET|POST /admin/iam/roles`: IAM administration
//!   (JSON bodies in the config-file format), over the same state as IAM's Query API.
//!
//! [`Cloud::faults`] switches services into outages (in process only).
//!
//! # Config file (JSON)
//!
//! ```json
//! {
//!   "issuerUrl": "https://oidc.sandbox.irsa.test",
//!   "accountId": "111122223333",
//!   "region": "us-east-1",
//!   "stateDir": "/var/lib/irsa-sandbox",
//!   "ecrTokenLifetimeSeconds": 43200,
//!   "ecrProxyEndpoint": "http://127.0.0.1:5000",
//!   "oidcProviders": [{"url": "https://oidc.sandbox.irsa.test", "clientIds": ["sts.amazonaws.com"]}],
//!   "roles": [{
//!     "name": "puller", "path": "/",
//!     "trustPolicy": {"Version": "2012-10-17", "Statement": [ … ]},
//!     "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
//!       {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}]}],
//!     "maxSessionDuration": 3600
//!   }],
//!   "outboundIssuerUrl": "http://127.0.0.1:8080/outbound",
//!   "chainguard": {"audience": "cgr.dev", "tokenLifetimeSeconds": 3600,
//!     "identities": [{"id": "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d",
//!                     "allowedRoles": ["arn:aws:iam::111122223333:role/puller*"]}]},
//!   "registry": {"service": "irsa-sandbox-registry", "issuer": "irsa-sandbox-registry-token"}
//! }
//! ```
//! Every field is optional except inside `oidcProviders` and `roles`; the defaults are those of
//! [`CloudConfig::default`].

mod chainguard;
mod client;
mod clock;
mod ecr;
pub mod faults;
mod http_util;
pub mod iam;
mod iam_admin;
mod iam_query;
mod oidc;
mod registry_auth;
mod registry_process;
pub mod sigv4;
mod sts;
mod xml;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use irsa_core::secret::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use chainguard::{
    ChainguardConfig, ChainguardIdentity, Proof, ProofError, check_proof, check_web_identity_token,
    decode_proof, is_jwt,
};
pub use client::{HttpError, HttpResponse, request as http_request};
pub use clock::Clock;
pub use faults::{CloudFaults, CloudService};
pub use iam::{Iam, IamError, OidcProviderConfig, RoleConfig};
pub use iam_query::apply_query_lines;
pub use oidc::{OidcError, OidcIssuer};
pub use registry_auth::{RegistryAuthConfig, RegistrySigner};
pub use registry_process::{RegistryError, RegistryProcess, push_image};

use crate::metrics::Counters;
use crate::token_issuer::TokenIssuer;

/// Everything the cloud needs at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct CloudConfig {
    /// The OIDC issuer URL (`iss` of service-account tokens).
    pub issuer_url: String,
    /// The default audience of service-account tokens that name none.
    pub default_audience: String,
    /// The AWS account id.
    pub account_id: String,
    /// The partition.
    pub partition: String,
    /// The region (ECR proxy endpoints).
    pub region: String,
    /// Where the issuer key is kept across restarts (`None`: a new key each start).
    pub state_dir: Option<PathBuf>,
    /// Lifetime of ECR and ECR Public authorization tokens, seconds (AWS: 12 hours).
    pub ecr_token_lifetime_seconds: i64,
    /// `proxyEndpoint` of ECR tokens; default `https://<registryId>.dkr.ecr.<region>.amazonaws.com`.
    pub ecr_proxy_endpoint: Option<String>,
    /// OIDC providers registered at start.
    pub oidc_providers: Vec<OidcProviderConfig>,
    /// Roles created at start.
    pub roles: Vec<RoleConfig>,
    /// `iss` of `GetWebIdentityToken` JWTs (where its discovery is served); `None`:
    /// `http://<Host of the request>/outbound`, this listener's own `/outbound`.
    pub outbound_issuer_url: Option<String>,
    /// The Chainguard exchange.
    pub chainguard: ChainguardConfig,
    /// The registry token service.
    pub registry: RegistryAuthConfig,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            issuer_url: "https://oidc.sandbox.irsa.test".to_owned(),
            default_audience: "https://kubernetes.default.svc".to_owned(),
            account_id: "111122223333".to_owned(),
            partition: "aws".to_owned(),
            region: "us-east-1".to_owned(),
            state_dir: None,
            ecr_token_lifetime_seconds: 12 * 3600,
            ecr_proxy_endpoint: None,
            oidc_providers: Vec::new(),
            roles: Vec::new(),
            outbound_issuer_url: None,
            chainguard: ChainguardConfig::default(),
            registry: RegistryAuthConfig::default(),
        }
    }
}

/// Why the cloud could not start.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The config file could not be read.
    #[error("failed to read the sandbox cloud config {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid sandbox cloud config {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The issuer key.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// A provider or role in the config.
    #[error(transparent)]
    Iam(#[from] IamError),
    /// The registry token-signing key.
    #[error("failed to create the registry token-signing certificate: {0}")]
    RegistrySigner(String),
}

impl CloudConfig {
    /// Reads a JSON config file.
    pub fn from_file(path: &Path) -> Result<Self, CloudError> {
        let text = std::fs::read(path).map_err(|source| CloudError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| CloudError::ParseConfig {
            path: path.to_owned(),
            source,
        })
    }
}

/// Temporary credentials STS issued.
#[derive(Debug, Clone)]
pub struct Session {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// The role's name.
    pub role_name: String,
    /// The assumed-role ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub assumed_role_arn: String,
    /// `AROA…:<session>`.
    pub assumed_role_id: String,
    /// Expiry, Unix seconds (sandbox clock).
    pub expires_at: i64,
}

/// Which service issued a registry credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An ECR password (username `AWS`).
    Ecr,
    /// An ECR Public password (username `AWS`).
    EcrPublic,
    /// A Chainguard token (username `_token`).
    Chainguard,
}

impl CredentialKind {
    /// The username registry clients send with this credential.
    pub fn username(self) -> &'static str {
        match self {
            CredentialKind::Ecr | CredentialKind::EcrPublic => "AWS",
            CredentialKind::Chainguard => "_token",
        }
    }
}

/// A registry password the sandbox issued.
#[derive(Debug, Clone)]
pub struct RegistryCredential {
    /// Who issued it.
    pub kind: CredentialKind,
    /// The assumed-role ARN (ECR) or identity id (Chainguard) it was issued to.
    pub principal: String,
    /// The role whose permission policies decide pull and push (ECR, ECR Public).
    pub role_name: Option<String>,
    /// Expiry, Unix seconds (sandbox clock).
    pub expires_at: i64,
}

pub(crate) struct State {
    pub(crate) config: CloudConfig,
    pub(crate) clock: Clock,
    pub(crate) issuer: Arc<OidcIssuer>,
    /// The outbound issuer's key (`GetWebIdentityToken`).
    pub(crate) outbound: OidcIssuer,
    pub(crate) iam: RwLock<Iam>,
    /// By access key id.
    pub(crate) sessions: Mutex<HashMap<String, Session>>,
    /// By password.
    pub(crate) registry_credentials: Mutex<HashMap<String, RegistryCredential>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) registry_signer: RegistrySigner,
    pub(crate) faults: Arc<CloudFaults>,
}

impl State {
    pub(crate) fn iam(&self) -> std::sync::RwLockReadGuard<'_, Iam> {
        self.iam.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn iam_mut(&self) -> std::sync::RwLockWriteGuard<'_, Iam> {
        self.iam.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn session(&self, access_key_id: &str) -> Option<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned()
    }

    pub(crate) fn registry_credential(&self, password: &str) -> Option<RegistryCredential> {
        self.registry_credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(password)
            .cloned()
    }

    pub(crate) fn store_registry_credential(&self, password: &str, credential: RegistryCredential) {
        let now = self.clock.now();
        let mut credentials = self
            .registry_credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Expired passwords can never be used again: forget them so the map stays bounded.
        credentials.retain(|_, c| c.expires_at > now);
        credentials.insert(password.to_owned(), credential);
    }
}

/// The cloud: cheap to clone, shared state inside.
#[derive(Clone)]
pub struct Cloud {
    state: Arc<State>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("issuer_url", &self.state.config.issuer_url)
            .field("account_id", &self.state.config.account_id)
            .finish_non_exhaustive()
    }
}

impl Cloud {
    /// Creates the issuer key (or loads it from `state_dir`), the registry token-signing
    /// certificate, and the providers and roles of the config.
    pub fn new(config: CloudConfig) -> Result<Cloud, CloudError> {
        let issuer = OidcIssuer::new(
            &config.issuer_url,
            &config.default_audience,
            config.state_dir.as_deref(),
        )?;
        // Its own key, kept next to the service-account issuer's when there is a state dir.
        let outbound = OidcIssuer::new(
            config.outbound_issuer_url.as_deref().unwrap_or("outbound"),
            "",
            config
                .state_dir
                .as_ref()
                .map(|d| d.join("outbound"))
                .as_deref(),
        )?;
        let mut iam = Iam::new(&config.partition, &config.account_id);
        for provider in &config.oidc_providers {
            iam.put_provider(provider.clone())?;
        }
        for role in &config.roles {
            iam.put_role(role.clone())?;
        }
        let registry_signer = RegistrySigner::generate().map_err(CloudError::RegistrySigner)?;
        Ok(Cloud {
            state: Arc::new(State {
                config,
                clock: Clock::new(),
                issuer: Arc::new(issuer),
                outbound,
                iam: RwLock::new(iam),
                sessions: Mutex::new(HashMap::new()),
                registry_credentials: Mutex::new(HashMap::new()),
                counters: Arc::new(Counters::new()),
                registry_signer,
                faults: Arc::new(CloudFaults::new()),
            }),
        })
    }

    /// The HTTP routes (see the module docs).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(dispatch))
            .route("/sts/exchange", post(chainguard::exchange))
            .route("/registry/token", get(registry_auth::token))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/openid/v1/jwks", get(jwks))
            .route(
                "/outbound/.well-known/openid-configuration",
                get(outbound_discovery),
            )
            .route("/outbound/.well-known/jwks.json", get(outbound_jwks))
            .route("/metrics", get(metrics))
            .route(
                "/admin/iam/oidc-providers",
                get(iam_admin::list_providers).post(iam_admin::put_provider),
            )
            .route(
                "/admin/iam/roles",
                get(iam_admin::list_roles).post(iam_admin::put_role),
            )
            .with_state(self.state.clone())
    }

    /// Serves [`Cloud::router`] on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The OIDC issuer, for the API server's TokenRequest and discovery.
    pub fn issuer(&self) -> Arc<dyn TokenIssuer> {
        self.state.issuer.clone()
    }

    /// The OIDC issuer with its extra methods (signing arbitrary claims for tests).
    pub fn oidc_issuer(&self) -> Arc<OidcIssuer> {
        self.state.issuer.clone()
    }

    /// Registers (or replaces) an OIDC provider; returns its ARN.
    pub fn put_oidc_provider(&self, provider: OidcProviderConfig) -> Result<String, IamError> {
        self.state
            .iam_mut()
            .put_provider(provider)
            .map(|a| a.to_string())
    }

    /// Creates (or replaces) a role; returns its ARN.
    pub fn put_role(&self, role: RoleConfig) -> Result<String, IamError> {
        self.state.iam_mut().put_role(role).map(|a| a.to_string())
    }

    /// The request counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.state.counters.clone()
    }

    /// Fault injection: service outages (see [`faults`]).
    pub fn faults(&self) -> Arc<CloudFaults> {
        self.state.faults.clone()
    }

    /// The sandbox clock.
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Fast-forwards the sandbox clock (credentials, tokens and registry passwords expire).
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// The account id.
    pub fn account_id(&self) -> &str {
        &self.state.config.account_id
    }

    /// The registry token service's signing certificate (PEM), for the registry's
    /// `auth.token.rootcertbundle`.
    pub fn registry_token_certificate_pem(&self) -> String {
        self.state.registry_signer.certificate_pem()
    }

    /// The registry token service configuration (service and issuer names).
    pub fn registry_auth_config(&self) -> &RegistryAuthConfig {
        &self.state.config.registry
    }

    /// Issues a registry bearer token granting `scopes` (`repository:<name>:pull,push`) as
    /// asked, without a credential, e.g. to push seed images.
    pub fn registry_bearer_token(&self, subject: &str, scopes: &[&str]) -> Result<String, String> {
        let scopes: Vec<_> = scopes
            .iter()
            .filter_map(|s| registry_auth::parse_scope(s))
            .collect();
        registry_auth::issue_token(&self.state, subject, &scopes)
    }
}

async fn dispatch(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: http::HeaderMap,
    uri: http::Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = http_util::collect(&http::Method::POST, &uri, &headers, &body);
    match target.as_deref() {
        Some(t) => ecr::handle(&state, t, &request),
        None if iam_query::is_iam_request(&request) => iam_query::handle(&state, &request),
        None => sts::handle(&state, &request),
    }
}

async fn discovery(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
) -> axum::Json<Value> {
    axum::Json(state.issuer.discovery())
}

async fn jwks(axum::extract::State(state): axum::extract::State<Arc<State>>) -> axum::Json<Value> {
    axum::Json(state.issuer.jwks())
}

/// The outbound issuer URL for a request: the configured one, else this listener's
/// `/outbound` as the request's `Host` names it.
pub(crate) fn outbound_issuer_url<'a>(
    state: &State,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    match &state.config.outbound_issuer_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{}/outbound", served_url(headers)),
    }
}

/// `http://<Host>`: this listener as the client addressed it (the sandbox serves plain HTTP).
pub(crate) fn served_url<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let host = headers
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v)
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect()
}

async fn outbound_discovery(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: http::HeaderMap,
) -> axum::Json<Value> {
    let issuer = outbound_issuer_url(&state, header_pairs(&headers));
    axum::Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn outbound_jwks(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
) -> axum::Json<Value> {
    axum::Json(state.outbound.jwks())
}

async fn metrics(axum::extract::State(state): axum::extract::State<Arc<State>>) -> String {
    state.counters.render()
}

/// Random characters from `alphabet` (aws-lc-rs's CSPRNG).
pub(crate) fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; len];
    // SystemRandom only fails when the OS has no entropy source, which the sandbox can't run without.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

/// A request id (UUID-shaped).
pub(crate) fn request_id() -> String {
    let h = random_string(32, b"0123456789abcdef");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the module docs, verbatim except for the elided trust policy.
    const EXAMPLE: &str = r#"{
      "issuerUrl": "https://oidc.sandbox.irsa.test",
      "accountId": "111122223333",
      "region": "us-east-1",
      "ecrTokenLifetimeSeconds": 43200,
      "ecrProxyEndpoint": "http://127.0.0.1:5000",
      "oidcProviders": [{"url": "https://oidc.sandbox.irsa.test", "clientIds": ["sts.amazonaws.com"]}],
      "roles": [{
        "name": "puller", "path": "/",
        "trustPolicy": {"Version": "2012-10-17", "Statement": [{
          "Effect": "Allow",
          "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.sandbox.irsa.test"},
          "Action": "sts:AssumeRoleWithWebIdentity",
          "Condition": {"StringEquals": {"oidc.sandbox.irsa.test:sub": "system:serviceaccount:team-a:puller"}}}]},
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
          {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}]}],
        "maxSessionDuration": 3600
      }],
      "chainguard": {"audience": "cgr.dev", "tokenLifetimeSeconds": 3600,
        "identities": [{"id": "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d",
                        "allowedRoles": ["arn:aws:iam::111122223333:role/puller*"]}]},
      "registry": {"service": "irsa-sandbox-registry", "issuer": "irsa-sandbox-registry-token"}
    }"#;

    #[test]
    fn documented_config_file_loads() {
        let dir = std::env::temp_dir().join(format!("irsa-cloud-config-{}", request_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cloud.json");
        std::fs::write(&path, EXAMPLE).unwrap();
        let config = CloudConfig::from_file(&path).unwrap();
        assert_eq!(config.ecr_token_lifetime_seconds, 43200);
        assert_eq!(config.chainguard.identities.len(), 1);
        let cloud = Cloud::new(config).unwrap();
        assert_eq!(cloud.account_id(), "111122223333");
        assert_eq!(cloud.state.iam().roles().count(), 1);

        std::fs::write(
            &path,
            r#"{"issuerUrl": "https://x.test", "unknownField": 1}"#,
        )
        .unwrap();
        let err = CloudConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        std::fs::write(
            &path,
            r#"{"oidcProviders": [{"url": "http://insecure.test", "clientIds": ["a"]}]}"#,
        )
        .unwrap();
        let err = Cloud::new(CloudConfig::from_file(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid OIDC provider url"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_config_is_the_default() {
        let config: CloudConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.account_id, "111122223333");
        assert_eq!(config.ecr_token_lifetime_seconds, 12 * 3600);
        assert_eq!(config.chainguard.audience, "cgr.dev");
    }
}
