//! The IAM admin API (JSON, in the config-file format): list and put OIDC providers and roles.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{OidcProviderConfig, RoleConfig, State};

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
    Json(json!({"roles": iam.roles().map(|r| {
            // The policies in force (inline and attached), as the config file would give them.
            let mut config = r.config.clone();
            config.permission_policies = iam.permission_policies(r);
            json!({"arn": r.arn.to_string(), "roleId": r.role_id, "role": config})
        }).collect::<Vec<_>>()}))
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
