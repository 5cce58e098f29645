//! ECR and ECR Public `GetAuthorizationToken` (AWS JSON 1.1): SigV4 with sandbox session
//! credentials, then the role's permission policies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::http_util::{AuthFailure, Collected, authenticate};
use super::{CloudService, CredentialKind, RegistryCredential, Session, State, random_string};

/// `X-Amz-Target` of ECR's GetAuthorizationToken.
pub const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
/// `X-Amz-Target` of ECR Public's GetAuthorizationToken.
pub const ECR_PUBLIC_TARGET: &str = "SpencerFrontendService.GetAuthorizationToken";

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// An AWS JSON 1.1 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl JsonError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn from_auth(failure: &AuthFailure) -> Self {
        match failure {
            AuthFailure::Missing => Self::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            AuthFailure::Malformed(e) => Self::new("IncompleteSignatureException", e.to_string()),
            AuthFailure::InvalidToken => Self::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            AuthFailure::Expired => Self::new(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            AuthFailure::Skew => Self::new(
                "InvalidSignatureException",
                "Signature expired: the request was signed more than 15 minutes from the server's time",
            ),
            AuthFailure::Signature => Self::new(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ),
        }
    }

    fn render(&self) -> Response {
        (
            self.status,
            [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            json!({"__type": self.code, "message": self.message}).to_string(),
        )
            .into_response()
    }
}

/// Dispatches on `X-Amz-Target`.
pub(crate) fn handle(state: &State, target: &str, request: &Collected) -> Response {
    let outage = |service: CloudService| {
        state.faults.is_out(service).then(|| JsonError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "ServerException",
            message: "Service is unable to handle request (sandbox outage)".to_owned(),
        })
    };
    // An outage refuses before any work: no password is issued.
    let (service, result) = match target {
        ECR_TARGET => (
            "ecr",
            outage(CloudService::Ecr).map_or_else(|| ecr_token(state, request), Err),
        ),
        ECR_PUBLIC_TARGET => (
            "ecr-public",
            outage(CloudService::EcrPublic).map_or_else(|| ecr_public_token(state, request), Err),
        ),
        _ => (
            "unknown",
            Err(JsonError::new(
                "UnknownOperationException",
                "The sandbox implements GetAuthorizationToken of ECR and ECR Public only",
            )),
        ),
    };
    match result {
        Ok(body) => {
            state.counters.inc(service, "GetAuthorizationToken", "ok");
            (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            let action = if service == "unknown" {
                "unknown"
            } else {
                "GetAuthorizationToken"
            };
            state.counters.inc(service, action, e.code);
            tracing::info!(service, code = e.code, "registry token request refused");
            e.render()
        }
    }
}

fn authorize(
    state: &State,
    request: &Collected,
    services: &[&str],
    actions: &[&str],
) -> Result<Session, JsonError> {
    let session =
        authenticate(state, &request.parts(), services).map_err(|e| JsonError::from_auth(&e))?;
    let iam = state.iam();
    let permissions = iam
        .role_by_name(&session.role_name)
        .map(|r| iam.permissions(r))
        .unwrap_or_default();
    for action in actions {
        let authorization = permissions.evaluate(action, "*");
        if !authorization.allowed() {
            let why = authorization.why(action);
            return Err(JsonError::new(
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to perform: {action} on resource: * {why}",
                    session.assumed_role_arn
                ),
            ));
        }
    }
    Ok(session)
}

fn new_password(state: &State, kind: CredentialKind, session: &Session, expires_at: i64) -> String {
    let password = random_string(64, PASSWORD_ALPHABET);
    state.store_registry_credential(
        &password,
        RegistryCredential {
            kind,
            principal: session.assumed_role_arn.clone(),
            role_name: Some(session.role_name.clone()),
            expires_at,
        },
    );
    password
}

fn ecr_token(state: &State, request: &Collected) -> Result<Value, JsonError> {
    let session = authorize(
        state,
        request,
        &["ecr", "api.ecr"],
        &["ecr:GetAuthorizationToken"],
    )?;
    let input: Value = if request.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&request.body).map_err(|_| {
            JsonError::new(
                "SerializationException",
                "The request body is not valid JSON",
            )
        })?
    };
    let registry_ids: Vec<String> = match input.get("registryIds") {
        None | Some(Value::Null) => vec![state.config.account_id.clone()],
        Some(Value::Array(ids)) if !ids.is_empty() && ids.len() <= 10 => ids
            .iter()
            .map(|i| i.as_str().filter(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| JsonError::new("InvalidParameterException", "Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [0-9]{12}'"))?,
        Some(_) => return Err(JsonError::new("InvalidParameterException", "Invalid parameter at 'registryIds' failed to satisfy constraint: 'Member must have length between 1 and 10'")),
    };
    let expires_at = state.clock.now() + state.config.ecr_token_lifetime_seconds;
    let data: Vec<Value> = registry_ids
        .iter()
        .map(|id| {
            let password = new_password(state, CredentialKind::Ecr, &session, expires_at);
            let endpoint = state.config.ecr_proxy_endpoint.clone().unwrap_or_else(|| {
                format!("https://{id}.dkr.ecr.{}.amazonaws.com", state.config.region)
            });
            json!({
                "authorizationToken": STANDARD.encode(format!("AWS:{password}")),
                "expiresAt": expires_at,
                "proxyEndpoint": endpoint,
            })
        })
        .collect();
    Ok(json!({"authorizationData": data}))
}

fn ecr_public_token(state: &State, request: &Collected) -> Result<Value, JsonError> {
    let session = authorize(
        state,
        request,
        &["ecr-public"],
        &[
            "ecr-public:GetAuthorizationToken",
            "sts:GetServiceBearerToken",
        ],
    )?;
    let expires_at = state.clock.now() + state.config.ecr_token_lifetime_seconds;
    let password = new_password(state, CredentialKind::EcrPublic, &session, expires_at);
    Ok(json!({"authorizationData": {
        "authorizationToken": STANDARD.encode(format!("AWS:{password}")),
        "expiresAt": expires_at,
    }}))
}
