//! STS (Query API): `AssumeRoleWithWebIdentity`, which really verifies the token and evaluates
//! the role's trust policy, `GetCallerIdentity` for SigV4-signed requests, and
//! `GetWebIdentityToken` (IAM outbound identity federation): a JWT naming the caller's role,
//! signed by the sandbox's outbound issuer (discovery and JWKS under `/outbound/.well-known/`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use irsa_core::arn::{RoleArn, SessionName};
use irsa_core::secret::SecretString;
use irsa_core::token::{
    Expectations, STS_EXPIRY_GRACE_SECONDS, TokenError, decode_unverified, verify,
};
use irsa_core::trust_policy::{RequestContext, evaluate};

use super::http_util::{AuthFailure, Collected, authenticate};
use super::xml::{self, element};
use super::{CloudService, Session, State, random_string, request_id};

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// An error of a Query-protocol API (STS, and IAM's through `iam_query`): HTTP status, code and
/// message, rendered as AWS's `ErrorResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StsError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl StsError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn access_denied(action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("Not authorized to perform sts:{action}"),
        )
    }

    fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidIdentityToken", message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub(crate) fn from_auth(failure: &AuthFailure) -> Self {
        match failure {
            AuthFailure::Missing => Self::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
            AuthFailure::Malformed(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                e.to_string(),
            ),
            AuthFailure::InvalidToken => Self::new(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
            AuthFailure::Expired => Self::new(
                StatusCode::FORBIDDEN,
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
            AuthFailure::Skew => Self::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "Signature expired: the request was signed more than 15 minutes from the server's time",
            ),
            AuthFailure::Signature => Self::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ),
        }
    }

    pub(crate) fn render(&self) -> Response {
        self.render_in(xml::STS_NS)
    }

    /// The `ErrorResponse` of the service whose XML namespace is `ns`.
    pub(crate) fn render_in(&self, ns: &str) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        xml_response(
            self.status,
            xml::error_response_in(ns, kind, self.code, &self.message, &request_id()),
        )
    }
}

pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(http::header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// The form parameters (body, and query for GET-style callers).
pub(crate) fn params(request: &Collected) -> Vec<(String, String)> {
    let query = request
        .path_and_query
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("");
    form_urlencoded::parse(&request.body)
        .chain(form_urlencoded::parse(query.as_bytes()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Dispatches on `Action`.
pub(crate) fn handle(state: &State, request: &Collected) -> Response {
    let params = params(request);
    let action = param(&params, "Action").unwrap_or_default();
    let label = match action {
        "AssumeRoleWithWebIdentity"
        | "GetCallerIdentity"
        | "AssumeRole"
        | "GetWebIdentityToken" => action,
        _ => "unknown",
    };
    // An outage refuses before any work: no session is issued.
    let result = if state.faults.is_out(CloudService::Sts) {
        Err(StsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service is unable to handle request (sandbox outage)",
        ))
    } else {
        match action {
            "AssumeRoleWithWebIdentity" => assume_role_with_web_identity(state, &params),
            "GetCallerIdentity" => get_caller_identity(state, request),
            "AssumeRole" => assume_role(state, request, &params),
            "GetWebIdentityToken" => get_web_identity_token(state, request, &params),
            _ => Err(StsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                "Could not find operation for this request (supported: AssumeRoleWithWebIdentity, AssumeRole, GetCallerIdentity, GetWebIdentityToken)",
            )),
        }
    };
    match result {
        Ok(body) => {
            state.counters.inc("sts", label, "ok");
            xml_response(
                StatusCode::OK,
                xml::success_response(label, &body, &request_id()),
            )
        }
        Err(e) => {
            state.counters.inc("sts", label, e.code);
            tracing::info!(action = label, code = e.code, "sts request refused");
            e.render()
        }
    }
}

fn token_error(e: &TokenError) -> StsError {
    match e {
        TokenError::Expired { exp, now, .. } => StsError::new(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            ),
        ),
        TokenError::AudienceMismatch { .. } | TokenError::AudienceMissing { .. } => {
            StsError::invalid_token("Incorrect token audience")
        }
        TokenError::KidNotFound { .. } | TokenError::KidRequired { .. } => StsError::invalid_token(
            "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
        ),
        TokenError::NotYetValid { .. } | TokenError::IssuedInFuture { .. } => {
            StsError::invalid_token("Token used before issued or before its not-before time")
        }
        _ => StsError::invalid_token(
            "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
        ),
    }
}

fn validate_inputs(params: &[(String, String)]) -> Result<(RoleArn, SessionName, i64), StsError> {
    let role_arn = param(params, "RoleArn").ok_or_else(|| StsError::validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"))?;
    if role_arn.len() < 20 {
        return Err(StsError::validation(format!(
            "1 validation error detected: Value '{}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20",
            xml_safe_echo(role_arn)
        )));
    }
    let role: RoleArn = role_arn
        .parse()
        .map_err(|_| StsError::validation("Request ARN is invalid"))?;
    let session = param(params, "RoleSessionName").ok_or_else(|| StsError::validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"))?;
    let session = SessionName::new(session).map_err(|_| {
        StsError::validation(format!("1 validation error detected: Value '{}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64", xml_safe_echo(session)))
    })?;
    let duration = match param(params, "DurationSeconds") {
        None => 3600,
        Some(d) => {
            let n: i64 = d.parse().map_err(|_| StsError::validation(format!("1 validation error detected: Value '{}' at 'durationSeconds' failed to satisfy constraint: Member must be a number", xml_safe_echo(d))))?;
            if n < 900 {
                return Err(StsError::validation(format!(
                    "1 validation error detected: Value '{n}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
                )));
            }
            if n > 43200 {
                return Err(StsError::validation(format!(
                    "1 validation error detected: Value '{n}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"
                )));
            }
            n
        }
    };
    Ok((role, session, duration))
}

/// Inputs echoed in messages are cut short (they are not secrets, but may be long).
fn xml_safe_echo(s: &str) -> String {
    s.chars().take(64).collect()
}

fn assume_role_with_web_identity(
    state: &State,
    params: &[(String, String)],
) -> Result<String, StsError> {
    let (role_arn, session_name, duration) = validate_inputs(params)?;
    let token = param(params, "WebIdentityToken").ok_or_else(|| StsError::validation("1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null"))?;
    let now = state.clock.now();
    let unverified = decode_unverified(token).map_err(|e| token_error(&e))?;
    let iss = unverified.claims.iss.clone().unwrap_or_default();
    let iam = state.iam();
    let provider = iam.provider_for_issuer(&iss).ok_or_else(|| {
        StsError::invalid_token(format!(
            "No OpenIDConnect provider found in your account for {}",
            xml_safe_echo(&iss)
        ))
    })?;
    let own_issuer = irsa_core::arn::issuer_host_path(&state.config.issuer_url).ok();
    let keys = match &provider.jwks {
        Some(keys) => keys.clone(),
        None if own_issuer.as_deref() == Some(provider.arn.provider.as_str()) => {
            state.issuer.verification_keys()
        }
        None => return Err(token_error(&TokenError::KidRequired { keys: 0 })),
    };
    let mut expect = Expectations::new(now)
        .with_issuer(iss.clone())
        .with_leeway(STS_EXPIRY_GRACE_SECONDS);
    for client_id in &provider.config.client_ids {
        expect = expect.with_audience(client_id.clone());
    }
    let verified = verify(token, &keys, &expect).map_err(|e| token_error(&e))?;
    let claims = verified.claims;
    let role = iam
        .role(&role_arn)
        .ok_or_else(|| StsError::access_denied("AssumeRoleWithWebIdentity"))?;
    let context = RequestContext::web_identity(
        &provider.arn.to_string(),
        &provider.arn.provider,
        &claims.raw,
    )
    .with_value(
        "sts:RoleSessionName",
        vec![session_name.as_str().to_owned()],
    );
    let decision = evaluate(&role.trust_policy, &context);
    if !decision.allowed() {
        tracing::info!(role = %role.arn, outcome = ?decision.outcome, "trust policy denied AssumeRoleWithWebIdentity");
        return Err(StsError::access_denied("AssumeRoleWithWebIdentity"));
    }
    if duration > role.config.max_session_duration {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let audience = claims
        .raw
        .get("azp")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            claims
                .aud
                .iter()
                .find(|a| provider.config.client_ids.contains(a))
                .cloned()
        })
        .unwrap_or_default();
    let session = new_session(role, &session_name, now + duration);
    let provider_arn = provider.arn.to_string();
    drop(iam);
    let mut body = credentials_xml(&session);
    element(
        &mut body,
        "SubjectFromWebIdentityToken",
        claims.sub.as_deref().unwrap_or_default(),
    );
    element(&mut body, "Provider", &provider_arn);
    element(&mut body, "Audience", &audience);
    tracing::info!(role = %session.assumed_role_arn, access_key_id = %session.access_key_id, "issued web-identity session");
    store_session(state, session);
    Ok(body)
}

/// New random credentials for a role session.
fn new_session(role: &super::iam::Role, session_name: &SessionName, expires_at: i64) -> Session {
    Session {
        access_key_id: format!("ASIA{}", random_string(16, UPPER_ALNUM)),
        secret_access_key: SecretString::new(random_string(40, SECRET_ALPHABET)),
        session_token: SecretString::new(format!(
            "IQoJb3JpZ2luX2VjE{}",
            random_string(300, SECRET_ALPHABET)
        )),
        role_name: role.arn.name.clone(),
        assumed_role_arn: format!(
            "arn:{}:sts::{}:assumed-role/{}/{}",
            role.arn.partition,
            role.arn.account,
            role.arn.name,
            session_name.as_str()
        ),
        assumed_role_id: format!("{}:{}", role.role_id, session_name.as_str()),
        expires_at,
    }
}

fn store_session(state: &State, session: Session) {
    let now = state.clock.now();
    let mut sessions = state.sessions.lock().unwrap_or_else(|e| e.into_inner());
    // Keep expired sessions for a day so that their use is answered ExpiredToken rather than
    // InvalidClientTokenId, as AWS does; forget older ones so the map stays bounded.
    sessions.retain(|_, s| s.expires_at > now - 86_400);
    sessions.insert(session.access_key_id.clone(), session);
}

/// `<Credentials>…</Credentials><AssumedRoleUser>…</AssumedRoleUser>`.
fn credentials_xml(session: &Session) -> String {
    let mut body = String::from("<Credentials>");
    element(&mut body, "AccessKeyId", &session.access_key_id);
    element(
        &mut body,
        "SecretAccessKey",
        session.secret_access_key.expose(),
    );
    element(&mut body, "SessionToken", session.session_token.expose());
    element(
        &mut body,
        "Expiration",
        &irsa_core::time::rfc3339(session.expires_at),
    );
    body.push_str("</Credentials><AssumedRoleUser>");
    element(&mut body, "Arn", &session.assumed_role_arn);
    element(&mut body, "AssumedRoleId", &session.assumed_role_id);
    body.push_str("</AssumedRoleUser>");
    body
}

/// Role chaining: a SigV4-signed `AssumeRole` by a sandbox session, allowed by the target
/// role's trust policy (AWS principals) and limited to one hour.
fn assume_role(
    state: &State,
    request: &Collected,
    params: &[(String, String)],
) -> Result<String, StsError> {
    let caller =
        authenticate(state, &request.parts(), &["sts"]).map_err(|e| StsError::from_auth(&e))?;
    let (role_arn, session_name, duration) = validate_inputs(params)?;
    let iam = state.iam();
    let caller_role = iam
        .role_by_name(&caller.role_name)
        .map(|r| r.arn.to_string())
        .unwrap_or_default();
    let caller_arns = vec![
        caller.assumed_role_arn.clone(),
        caller_role,
        format!("arn:{}:iam::{}:root", iam.partition(), iam.account()),
        iam.account().to_owned(),
    ];
    let denied = || {
        StsError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.assumed_role_arn
            ),
        )
    };
    let role = iam.role(&role_arn).ok_or_else(denied)?;
    let decision = super::iam::evaluate_aws_principal_trust(
        &role.config.trust_policy,
        &caller_arns,
        "sts:AssumeRole",
    );
    if decision != super::iam::PermissionDecision::Allow {
        return Err(denied());
    }
    if duration > 3600 {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    let session = new_session(role, &session_name, state.clock.now() + duration);
    drop(iam);
    let body = credentials_xml(&session);
    tracing::info!(role = %session.assumed_role_arn, access_key_id = %session.access_key_id, "issued chained role session");
    store_session(state, session);
    Ok(body)
}

/// A sandbox session's assumed role; any other access key (well-formed header and date, STS's
/// service) is the account's administrator, as in IAM's Query API (see `iam_query`'s docs): it
/// is answered with the account's root, so that `irsa iam setup` learns the account it writes
/// into before its first write.
fn get_caller_identity(state: &State, request: &Collected) -> Result<String, StsError> {
    let parts = request.parts();
    match authenticate(state, &parts, &["sts"]) {
        Ok(session) => Ok(caller_identity_body(state, &session)),
        Err(AuthFailure::InvalidToken) if is_admin_key(state, &parts) => {
            Ok(root_identity_body(state))
        }
        Err(e) => Err(StsError::from_auth(&e)),
    }
}

/// The request's access key is none of the sandbox's sessions (so not a session whose token
/// was wrong): the administrator's.
fn is_admin_key(state: &State, parts: &super::sigv4::RequestParts<'_>) -> bool {
    parts
        .header("authorization")
        .and_then(|h| super::sigv4::Authorization::parse(h).ok())
        .is_some_and(|auth| state.session(&auth.access_key_id).is_none())
}

fn root_identity_body(state: &State) -> String {
    let iam = state.iam();
    let mut body = String::new();
    element(&mut body, "UserId", iam.account());
    element(&mut body, "Account", iam.account());
    element(
        &mut body,
        "Arn",
        &format!("arn:{}:iam::{}:root", iam.partition(), iam.account()),
    );
    body
}

/// `GetWebIdentityToken`'s bounds on `DurationSeconds`, and its default.
const WEB_IDENTITY_TOKEN_SECONDS: (i64, i64, i64) = (60, 3600, 300);

/// The checks on `GetWebIdentityToken`'s parameters: the audiences and the lifetime.
fn web_identity_token_inputs(params: &[(String, String)]) -> Result<(Vec<String>, i64), StsError> {
    let mut audiences = Vec::new();
    for n in 1..=11 {
        match param(params, &format!("Audience.member.{n}")) {
            Some(a) => audiences.push(a.to_owned()),
            None => break,
        }
    }
    if audiences.is_empty() {
        return Err(StsError::validation(
            "1 validation error detected: Value null at 'audience' failed to satisfy constraint: Member must not be null",
        ));
    }
    if audiences.len() > 10 {
        return Err(StsError::validation(
            "1 validation error detected: Value at 'audience' failed to satisfy constraint: Member must have length less than or equal to 10",
        ));
    }
    if audiences.iter().any(|a| a.is_empty() || a.len() > 1000) {
        return Err(StsError::validation(
            "1 validation error detected: Value at 'audience' failed to satisfy constraint: Member must satisfy constraint: [Member must have length between 1 and 1000]",
        ));
    }
    match param(params, "SigningAlgorithm") {
        Some("RS256") => {}
        Some("ES384") => {
            return Err(StsError::validation(
                "the sandbox's outbound issuer signs RS256 only (AWS also offers ES384)",
            ));
        }
        Some(other) => {
            return Err(StsError::validation(format!(
                "1 validation error detected: Value '{}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RS256, ES384]",
                xml_safe_echo(other)
            )));
        }
        None => {
            return Err(StsError::validation(
                "1 validation error detected: Value null at 'signingAlgorithm' failed to satisfy constraint: Member must not be null",
            ));
        }
    }
    let (min, max, default) = WEB_IDENTITY_TOKEN_SECONDS;
    let duration = match param(params, "DurationSeconds") {
        None => default,
        Some(d) => match d.parse::<i64>() {
            Ok(d) if (min..=max).contains(&d) => d,
            _ => {
                return Err(StsError::validation(format!(
                    "1 validation error detected: Value '{}' at 'durationSeconds' failed to satisfy constraint: Member must have value between {min} and {max}",
                    xml_safe_echo(d)
                )));
            }
        },
    };
    Ok((audiences, duration))
}

/// `GetWebIdentityToken`: signed by a live session whose role may call it; the JWT's `sub` is
/// the role's ARN, `iss` the sandbox's outbound issuer.
fn get_web_identity_token(
    state: &State,
    request: &Collected,
    params: &[(String, String)],
) -> Result<String, StsError> {
    let session =
        authenticate(state, &request.parts(), &["sts"]).map_err(|e| StsError::from_auth(&e))?;
    let (audiences, duration) = web_identity_token_inputs(params)?;
    let role_arn = {
        let iam = state.iam();
        let role = iam
            .role_by_name(&session.role_name)
            .ok_or_else(|| StsError::access_denied("GetWebIdentityToken"))?;
        let authorization = iam
            .permissions(role)
            .evaluate("sts:GetWebIdentityToken", "*");
        if !authorization.allowed() {
            return Err(StsError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: sts:GetWebIdentityToken on resource: * {}",
                    session.assumed_role_arn,
                    authorization.why("sts:GetWebIdentityToken")
                ),
            ));
        }
        role.arn.to_string()
    };
    let now = state.clock.now();
    let expires_at = now + duration;
    let aud = if audiences.len() == 1 {
        serde_json::Value::from(audiences[0].clone())
    } else {
        serde_json::Value::from(audiences)
    };
    let claims = serde_json::json!({
        "iss": super::outbound_issuer_url(
            state,
            request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
        "sub": role_arn,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "jti": random_string(32, b"0123456789abcdef"),
        "https://sts.amazonaws.com/": {
            "aws_account": state.config.account_id,
            "source_region": state.config.region,
        },
    });
    let token = state
        .outbound
        .sign_claims(&claims)
        .map_err(|e| StsError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", e))?;
    let mut body = String::new();
    element(&mut body, "WebIdentityToken", &token);
    element(
        &mut body,
        "Expiration",
        &irsa_core::time::rfc3339(expires_at),
    );
    Ok(body)
}

pub(crate) fn caller_identity_body(state: &State, session: &Session) -> String {
    let mut body = String::new();
    element(&mut body, "UserId", &session.assumed_role_id);
    element(&mut body, "Account", &state.config.account_id);
    element(&mut body, "Arn", &session.assumed_role_arn);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn input_validation_table() {
        let role = "arn:aws:iam::111122223333:role/puller";
        for (params, want) in [
            (p(&[("RoleArn", role), ("RoleSessionName", "s1")]), None),
            (p(&[("RoleSessionName", "s1")]), Some("'roleArn'")),
            (
                p(&[("RoleArn", "short"), ("RoleSessionName", "s1")]),
                Some("length greater than or equal to 20"),
            ),
            (
                p(&[
                    ("RoleArn", "arn:aws:iam::111122223333:user/someone"),
                    ("RoleSessionName", "s1"),
                ]),
                Some("Request ARN is invalid"),
            ),
            (
                p(&[("RoleArn", role), ("RoleSessionName", "a b")]),
                Some("'roleSessionName'"),
            ),
            (
                p(&[("RoleArn", role), ("RoleSessionName", "x")]),
                Some("'roleSessionName'"),
            ),
            (p(&[("RoleArn", role)]), Some("'roleSessionName'")),
            (
                p(&[
                    ("RoleArn", role),
                    ("RoleSessionName", "s1"),
                    ("DurationSeconds", "899"),
                ]),
                Some("greater than or equal to 900"),
            ),
            (
                p(&[
                    ("RoleArn", role),
                    ("RoleSessionName", "s1"),
                    ("DurationSeconds", "43201"),
                ]),
                Some("less than or equal to 43200"),
            ),
            (
                p(&[
                    ("RoleArn", role),
                    ("RoleSessionName", "s1"),
                    ("DurationSeconds", "x"),
                ]),
                Some("must be a number"),
            ),
        ] {
            match (validate_inputs(&params), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => {
                    assert_eq!(e.code, "ValidationError");
                    assert!(e.message.contains(w), "{} lacks {w}", e.message);
                }
                (got, want) => panic!("{params:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn token_errors_map_to_sts_codes() {
        assert_eq!(
            token_error(&TokenError::Expired {
                exp: 1,
                now: 2,
                leeway: 0
            })
            .code,
            "ExpiredTokenException"
        );
        assert_eq!(
            token_error(&TokenError::BadSignature {
                kid: "k".into(),
                alg: "RS256".into()
            })
            .code,
            "InvalidIdentityToken"
        );
        assert_eq!(token_error(&TokenError::Empty).code, "InvalidIdentityToken");
    }
}
