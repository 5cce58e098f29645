//! Request collection and SigV4 authentication of sandbox sessions.

use super::clock::wall_now;
use super::sigv4::{self, Authorization, RequestParts, SigV4Error};
use super::{Session, State};

/// An owned request, as the verifiers see it.
#[derive(Debug)]
pub(crate) struct Collected {
    pub(crate) method: String,
    pub(crate) path_and_query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Collected {
    pub(crate) fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path_and_query: &self.path_and_query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

pub(crate) fn collect(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Collected {
    Collected {
        method: method.as_str().to_owned(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned()),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// Why a SigV4-signed request was not accepted as a sandbox session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No Authorization header.
    Missing,
    /// Not parseable, no date, or wrong service.
    Malformed(SigV4Error),
    /// Unknown access key, or a session token that does not belong to it.
    InvalidToken,
    /// The session expired.
    Expired,
    /// Signed too long ago (or ahead).
    Skew,
    /// The signature differs.
    Signature,
}

/// Authenticates a request signed with sandbox-issued temporary credentials for `service`.
pub(crate) fn authenticate(
    state: &State,
    parts: &RequestParts<'_>,
    services: &[&str],
) -> Result<Session, AuthFailure> {
    let header = parts.header("authorization").ok_or(AuthFailure::Missing)?;
    let auth = Authorization::parse(header).map_err(AuthFailure::Malformed)?;
    // Clients sign with the wall clock; the sandbox clock (which tests fast-forward) ages
    // sessions, not signatures.
    let signed_at = match sigv4::check_date(parts, &auth, wall_now()) {
        Ok(t) => t,
        Err(SigV4Error::Skew) => return Err(AuthFailure::Skew),
        Err(e) => return Err(AuthFailure::Malformed(e)),
    };
    if !services.contains(&auth.service.as_str()) {
        return Err(AuthFailure::Malformed(SigV4Error::Service {
            expected: services.first().copied().unwrap_or_default().to_owned(),
        }));
    }
    let session = state
        .session(&auth.access_key_id)
        .ok_or(AuthFailure::InvalidToken)?;
    let token = parts.header("x-amz-security-token").unwrap_or_default();
    if token != session.session_token.expose() {
        return Err(AuthFailure::InvalidToken);
    }
    if session.expires_at <= state.clock.now() {
        return Err(AuthFailure::Expired);
    }
    sigv4::verify_signature(parts, &auth, session.secret_access_key.expose(), signed_at)
        .map_err(|_| AuthFailure::Signature)?;
    Ok(session)
}
