//! Request collection, SigV4 authentication of sandbox sessions, and the IAM admin API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::clock::wall_now;
use super::sigv4::{self, Authorization, RequestParts, SigV4Error};
use super::{OidcProviderConfig, RoleConfig, Session, State};

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

fn admin_error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

pub(crate) async fn list_providers(AxState(state): AxState<Arc<State>>) -> Json<Value> {
    state
        .counters
        .inc("iam-admin", "ListOpenIDConnectProviders", "ok");
    let iam = state.iam();
    Json(
        json!({"oidcProviders": iam.providers().map(|p| json!({"arn": p.arn.to_string(), "provider": p.config})).collect::<Vec<_>>()}),
    )
}

pub(crate) async fn put_provider(
    AxState(state): AxState<Arc<State>>,
    body: axum::body::Bytes,
) -> Response {
    let provider: OidcProviderConfig = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            state
                .counters
                .inc("iam-admin", "PutOpenIDConnectProvider", "InvalidInput");
            return admin_error(
                StatusCode::BAD_REQUEST,
                format!("invalid OIDC provider: {e}"),
            );
        }
    };
    match state.iam_mut().put_provider(provider) {
        Ok(arn) => {
            state
                .counters
                .inc("iam-admin", "PutOpenIDConnectProvider", "ok");
            (StatusCode::OK, Json(json!({"arn": arn.to_string()}))).into_response()
        }
        Err(e) => {
            state
                .counters
                .inc("iam-admin", "PutOpenIDConnectProvider", "InvalidInput");
            admin_error(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

pub(crate) async fn list_roles(AxState(state): AxState<Arc<State>>) -> Json<Value> {
    state.counters.inc("iam-admin", "ListRoles", "ok");
    let iam = state.iam();
    Json(
        json!({"roles": iam.roles().map(|r| json!({"arn": r.arn.to_string(), "roleId": r.role_id, "role": r.config})).collect::<Vec<_>>()}),
    )
}

pub(crate) async fn put_role(
    AxState(state): AxState<Arc<State>>,
    body: axum::body::Bytes,
) -> Response {
    let role: RoleConfig = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            state.counters.inc("iam-admin", "PutRole", "InvalidInput");
            return admin_error(StatusCode::BAD_REQUEST, format!("invalid role: {e}"));
        }
    };
    match state.iam_mut().put_role(role) {
        Ok(arn) => {
            state.counters.inc("iam-admin", "PutRole", "ok");
            (StatusCode::OK, Json(json!({"arn": arn.to_string()}))).into_response()
        }
        Err(e) => {
            state.counters.inc("iam-admin", "PutRole", "InvalidInput");
            admin_error(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}
