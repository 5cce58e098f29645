//! Chainguard (cgr.dev): prove the AWS identity with a signed, never-sent
//! `sts:GetCallerIdentity` request and exchange it at Chainguard's issuer for a registry token.
//!
//! The proof is the request `POST https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`
//! with an empty body and the headers `Accept: application/json`, `Chainguard-Audience: <issuer>`
//! and `Chainguard-Identity: <identity id>`, all SigV4-signed for us-east-1/sts, serialized as an
//! HTTP/1.1 request and base64url-encoded (with padding). Chainguard's issuer replays it to STS
//! to learn who signed it, and checks that the binding headers name itself and the identity.
//!
//! The other method, [`ChainguardMethod::WebIdentityToken`], is the one Chainguard documents for
//! AWS today (IAM outbound identity federation): STS `GetWebIdentityToken` signs a JWT naming
//! the caller's IAM principal (`sub`) for the audience of the issuer actually called (never a
//! fixed `https://issuer.enforce.dev`: a token asked for one issuer and sent to another could be
//! replayed by the second at the first), and that JWT is the bearer. The Chainguard identity
//! then trusts the account's outbound issuer (`https://<id>.tokens.sts.global.api.aws`) and the
//! role ARN as subject. An `http://` issuer is refused for this method unless it is on
//! loopback (the sandbox).
//!
//! The exchange is `POST <issuer>/sts/exchange?aud=cgr.dev&identity=<id>` with
//! `Authorization: Bearer <proof or JWT>`, answered with `{"token", "expiry"}`.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use irsa_core::arn::RoleArn;
use irsa_core::secret::SecretString;
use thiserror::Error;

use crate::clock::Clock;
use crate::credentials::{AwsCredentials, BoxFuture, RegistryCredential};
use crate::provider::{FetchContext, ProviderError, RegistryTarget, RegistryTokenProvider};
use crate::query::HttpsClient;
use crate::retry::{CallFailure, FailureKind, RetryPolicy, with_retry};
use crate::sts::{WebIdentityTokens, sdk_credentials};

/// Chainguard's issuer.
pub const DEFAULT_ISSUER: &str = "https://issuer.enforce.dev";
/// The audience of registry tokens.
pub const REGISTRY_AUDIENCE: &str = "cgr.dev";
/// The username registries expect with a Chainguard token.
pub const USERNAME: &str = "_token";
// The host of the signed request.
pub use irsa_core::names::STS_HOST;
/// The path and query of the signed request.
pub const GET_CALLER_IDENTITY_PATH: &str = "/?Action=GetCallerIdentity&Version=2011-06-15";
/// Header binding the proof to an audience (the issuer).
pub const AUDIENCE_HEADER: &str = "Chainguard-Audience";
/// Header binding the proof to an identity id.
pub const IDENTITY_HEADER: &str = "Chainguard-Identity";

/// Largest exchange response read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest issuer message kept in an error, in characters (after redaction).
const MAX_MESSAGE_CHARS: usize = 200;

pub use irsa_core::chainguard::ChainguardMethod;

/// Why Chainguard gave no credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainguardError {
    /// The identity id cannot be sent in a header.
    #[error("invalid Chainguard identity id {identity:?}: {reason}")]
    InvalidIdentity {
        /// The id.
        identity: String,
        /// Why.
        reason: &'static str,
    },
    /// Signing the proof failed.
    #[error("failed to sign the sts:GetCallerIdentity proof for Chainguard: {reason}")]
    Sign {
        /// Why.
        reason: String,
    },
    /// The issuer refused the AWS identity.
    #[error(
        "Chainguard's issuer {issuer} refused the exchange for identity {identity} (HTTP {status}: \
         {message}): check that the Chainguard identity's aws_identity matches this role's \
         account and ARN (or user id), and that it has a role binding that grants registry.pull"
    )]
    Denied {
        /// The issuer URL.
        issuer: String,
        /// The identity id.
        identity: String,
        /// HTTP status.
        status: u16,
        /// The issuer's message (never the proof or a token).
        message: String,
    },
    /// Any other failure of the exchange.
    #[error("the Chainguard token exchange at {issuer} for identity {identity} failed: {failure}")]
    Call {
        /// The issuer URL.
        issuer: String,
        /// The identity id.
        identity: String,
        /// What happened.
        failure: CallFailure,
    },
    /// The HTTPS client could not be built.
    #[error("failed to set up HTTPS for the Chainguard issuer: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// The web-identity method was asked of an issuer reached in clear text.
    #[error(
        "refusing to send an AWS web-identity token to the Chainguard issuer {issuer}: it is \
         not https (only a loopback http:// issuer, such as the sandbox, is accepted for the \
         web-identity-token method); use https://issuer.enforce.dev or an https URL"
    )]
    InsecureIssuer {
        /// The issuer URL.
        issuer: String,
    },
    /// STS gave no web-identity token.
    #[error(
        "the Chainguard exchange at {issuer} for identity {identity} needs an AWS web-identity \
         token, which STS refused: {message}"
    )]
    WebIdentityToken {
        /// The issuer URL.
        issuer: String,
        /// The identity id.
        identity: String,
        /// STS's error, in full.
        message: String,
    },
    /// The provider was built without an STS client for the web-identity method.
    #[error(
        "the Chainguard provider for {issuer} cannot use the web-identity-token method: it has \
         no STS client (a bug in the caller: build it with ChainguardProvider::with_web_identity_tokens)"
    )]
    NoWebIdentityTokens {
        /// The issuer URL.
        issuer: String,
    },
    /// The issuer URL is not usable.
    #[error("invalid Chainguard issuer URL {issuer:?}: {reason}")]
    Issuer {
        /// The URL.
        issuer: String,
        /// Why.
        reason: String,
    },
}

/// The signed `GetCallerIdentity` request, serialized and base64url-encoded: the bearer proof.
///
/// It is a credential (whoever holds it can exchange it until it is 15 minutes old), so it is
/// returned as a [`SecretString`].
pub fn caller_identity_proof(
    credentials: &AwsCredentials,
    audience: &str,
    identity: &str,
    now: SystemTime,
) -> Result<SecretString, ChainguardError> {
    check_identity(identity)?;
    let sdk_identity = sdk_credentials(credentials).into();
    let mut settings = SigningSettings::default();
    settings.expires_in = None;
    let params = v4::SigningParams::builder()
        .identity(&sdk_identity)
        .region("us-east-1")
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| ChainguardError::Sign {
            reason: e.to_string(),
        })?
        .into();
    let headers = [
        ("host", STS_HOST),
        ("accept", "application/json"),
        ("chainguard-audience", audience),
        ("chainguard-identity", identity),
    ];
    let uri = format!("https://{STS_HOST}{GET_CALLER_IDENTITY_PATH}");
    let signable = SignableRequest::new(
        "POST",
        uri.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(b""),
    )
    .map_err(|e| ChainguardError::Sign {
        reason: e.to_string(),
    })?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| ChainguardError::Sign {
            reason: e.to_string(),
        })?
        .into_parts();
    let mut text = format!("POST {GET_CALLER_IDENTITY_PATH} HTTP/1.1\r\nHost: {STS_HOST}\r\n");
    text.push_str("Accept: application/json\r\n");
    text.push_str(&format!("{AUDIENCE_HEADER}: {audience}\r\n"));
    text.push_str(&format!("{IDENTITY_HEADER}: {identity}\r\n"));
    text.push_str("Content-Length: 0\r\n");
    for (name, value) in instructions.headers() {
        text.push_str(&canonical_case(name));
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let text = SecretString::new(text);
    Ok(SecretString::new(
        base64::engine::general_purpose::URL_SAFE.encode(text.expose()),
    ))
}

/// `x-amz-date` → `X-Amz-Date`.
fn canonical_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn check_identity(identity: &str) -> Result<(), ChainguardError> {
    let bad = |reason| ChainguardError::InvalidIdentity {
        identity: identity.chars().take(200).collect(),
        reason,
    };
    if identity.is_empty() {
        return Err(bad("it is empty"));
    }
    if identity.len() > 512 {
        return Err(bad("it is longer than 512 characters"));
    }
    if !identity
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.:".contains(&b))
    {
        return Err(bad(
            "only ASCII letters, digits and / - _ . : may appear in an identity id",
        ));
    }
    Ok(())
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Chainguard provider.
pub struct ChainguardProvider {
    issuer: String,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    web_identity: Option<Arc<dyn WebIdentityTokens>>,
    client: OnceLock<Result<HttpsClient, String>>,
}

impl std::fmt::Debug for ChainguardProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainguardProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Whether `uri` names a loopback host (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(uri: &http::Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

impl ChainguardProvider {
    /// A provider for `issuer` (without trailing `/`; `http://` is accepted for tests).
    pub fn new(
        issuer: &str,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ChainguardError> {
        let issuer = issuer.trim().trim_end_matches('/').to_owned();
        let uri: http::Uri =
            issuer
                .parse()
                .map_err(|e: http::uri::InvalidUri| ChainguardError::Issuer {
                    issuer: issuer.clone(),
                    reason: e.to_string(),
                })?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(ChainguardError::Issuer {
                issuer,
                reason: "give an absolute http(s) URL such as https://issuer.enforce.dev".into(),
            });
        }
        Ok(Self {
            issuer,
            retry,
            clock,
            web_identity: None,
            client: OnceLock::new(),
        })
    }

    /// The same provider, able to use [`ChainguardMethod::WebIdentityToken`] with `sts`.
    pub fn with_web_identity_tokens(mut self, sts: Arc<dyn WebIdentityTokens>) -> Self {
        self.web_identity = Some(sts);
        self
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether a web-identity token may be sent to this issuer: https, or http on loopback.
    fn check_web_identity_issuer(&self) -> Result<(), ChainguardError> {
        let insecure = || ChainguardError::InsecureIssuer {
            issuer: self.issuer.clone(),
        };
        let uri: http::Uri = self.issuer.parse().map_err(|_| insecure())?;
        match uri.scheme_str() {
            Some("https") => Ok(()),
            Some("http") if is_loopback(&uri) => Ok(()),
            _ => Err(insecure()),
        }
    }

    fn client(&self) -> Result<&HttpsClient, ChainguardError> {
        self.client
            .get_or_init(crate::query::https_client)
            .as_ref()
            .map_err(|reason| ChainguardError::Tls {
                reason: reason.clone(),
            })
    }

    /// Exchanges `credentials` for a registry token of `identity` with a signed
    /// `GetCallerIdentity` proof ([`ChainguardMethod::GetCallerIdentity`]).
    pub async fn exchange(
        &self,
        credentials: &AwsCredentials,
        identity: &str,
    ) -> Result<(SecretString, Option<SystemTime>), ChainguardError> {
        self.exchange_by(
            credentials,
            "the AWS identity",
            None,
            identity,
            ChainguardMethod::GetCallerIdentity,
        )
        .await
    }

    /// Exchanges `credentials` (of `principal`, for messages, and of `role` when known: its
    /// partition picks the STS endpoint of `GetWebIdentityToken`) for a registry token of
    /// `identity`, proving the AWS identity by `method`.
    pub async fn exchange_by(
        &self,
        credentials: &AwsCredentials,
        principal: &str,
        role: Option<&RoleArn>,
        identity: &str,
        method: ChainguardMethod,
    ) -> Result<(SecretString, Option<SystemTime>), ChainguardError> {
        check_identity(identity)?;
        let client = self.client()?;
        // For the web-identity method, one JWT serves every attempt (it lives 5 minutes).
        let jwt = match method {
            ChainguardMethod::GetCallerIdentity => None,
            ChainguardMethod::WebIdentityToken => {
                self.check_web_identity_issuer()?;
                let sts = self.web_identity.as_ref().ok_or_else(|| {
                    ChainguardError::NoWebIdentityTokens {
                        issuer: self.issuer.clone(),
                    }
                })?;
                // The audience is the issuer this token is about to be sent to.
                let jwt = sts
                    .web_identity_token(credentials, principal, role, &self.issuer)
                    .await
                    .map_err(|e| ChainguardError::WebIdentityToken {
                        issuer: self.issuer.clone(),
                        identity: identity.to_owned(),
                        message: e.to_string(),
                    })?;
                Some(jwt)
            }
        };
        let url = format!(
            "{}/sts/exchange?aud={}&identity={}",
            self.issuer,
            REGISTRY_AUDIENCE,
            query_encode(identity)
        );
        tracing::debug!(issuer = %self.issuer, identity, method = %method, "exchanging AWS identity for a Chainguard token");
        let call_err = |failure| ChainguardError::Call {
            issuer: self.issuer.clone(),
            identity: identity.to_owned(),
            failure,
        };
        let (status, body, bearer) = with_retry(&self.retry, "chainguard sts/exchange", || async {
            let bearer = match &jwt {
                Some(jwt) => jwt.clone(),
                // A fresh proof per attempt: the issuer only accepts recent signatures.
                None => {
                    caller_identity_proof(credentials, &self.issuer, identity, self.clock.now())
                        .map_err(|e| CallFailure::new(FailureKind::Rejected, e.to_string()))?
                }
            };
            let request = http::Request::post(&url)
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", bearer.expose()),
                )
                .header(http::header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| CallFailure::new(FailureKind::Rejected, e.to_string()))?;
            let response = client.request(request).await.map_err(|e| {
                CallFailure::new(FailureKind::Transport, redact(&error_chain(&e), &[]))
            })?;
            let status = response.status().as_u16();
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| CallFailure::new(FailureKind::Transport, e.to_string()))?
                .to_bytes();
            if status == 429 || status >= 500 {
                return Err(CallFailure::from_status(
                    status,
                    None,
                    issuer_message(&body, &[bearer.expose()]),
                ));
            }
            Ok((status, SecretBody(body.to_vec()), bearer))
        })
        .await
        .map_err(call_err)?;
        if !(200..300).contains(&status) {
            return Err(ChainguardError::Denied {
                issuer: self.issuer.clone(),
                identity: identity.to_owned(),
                status,
                message: issuer_message(&body.0, &[bearer.expose()]),
            });
        }
        irsa_core::registry_token::parse_chainguard_exchange(&body.0)
            .map_err(|e| call_err(CallFailure::new(FailureKind::Malformed, e.to_string())))
    }
}

/// Response bytes that may hold a token: wiped on drop.
struct SecretBody(Vec<u8>);

impl Drop for SecretBody {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Shortest run of token characters treated as a credential: longer than any identity id
/// segment (40 hex digits) or AWS request id, shorter than any JWT or proof.
const MIN_OPAQUE_RUN: usize = 48;

/// `text` with every secret in `secrets`, every JWT-shaped string and every long opaque run of
/// base64/base64url characters replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    let token_char = |c: char| c.is_ascii_alphanumeric() || "-_=+/.".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        // A JWT begins with base64url of `{"`; a proof or key is a long opaque run.
        if run.len() >= MIN_OPAQUE_RUN || (run.starts_with("eyJ") && run.contains('.')) {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The issuer's error message: the JSON `message` field, else the body; redacted (the bearer
/// it may echo, anything token-shaped), then cut to [`MAX_MESSAGE_CHARS`] — in that order, so
/// that no secret cut at the boundary escapes redaction.
fn issuer_message(body: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.into_owned());
    let message: String = redact(&message, secrets)
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if message.trim().is_empty() {
        "no message".to_owned()
    } else {
        message
    }
}

impl RegistryTokenProvider for ChainguardProvider {
    fn fetch<'a>(
        &'a self,
        ctx: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
        Box::pin(async move {
            let first = targets.first();
            let identity = first
                .and_then(|t| t.chainguard_identity.as_deref())
                .unwrap_or_default();
            let method = first.map(|t| t.chainguard_method).unwrap_or_default();
            let (token, expires_at) = self
                .exchange_by(
                    &ctx.credentials,
                    &ctx.principal,
                    ctx.role.as_ref(),
                    identity,
                    method,
                )
                .await?;
            Ok(targets
                .iter()
                .map(|t| RegistryCredential {
                    registry: t.host.clone(),
                    username: USERNAME.to_owned(),
                    password: token.clone(),
                    expires_at,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn creds() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "ASIATESTKEY".into(),
            secret_access_key: "test-secret".into(),
            session_token: Some("test-session".into()),
            expires_at: None,
        }
    }

    #[test]
    fn proof_is_a_signed_http11_request() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let proof = caller_identity_proof(&creds(), DEFAULT_ISSUER, "org/id", now).unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(proof.expose())
            .unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with(
            "POST /?Action=GetCallerIdentity&Version=2011-06-15 HTTP/1.1\r\nHost: sts.amazonaws.com\r\n"
        ));
        assert!(text.contains("Chainguard-Identity: org/id\r\n"));
        assert!(text.contains("X-Amz-Date: 20270115T080000Z\r\n"), "{text}");
        assert!(text.contains(
            "SignedHeaders=accept;chainguard-audience;chainguard-identity;host;x-amz-date;x-amz-security-token"
        ), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("test-secret"));
    }

    #[test]
    fn identity_ids_are_checked_and_encoded() {
        assert!(check_identity("a/b-c_d.e:f").is_ok());
        assert!(check_identity("a\r\nX: y").is_err());
        assert!(check_identity("").is_err());
        assert_eq!(query_encode("org/id"), "org%2Fid");
    }
}
