//! IAM's Query API (`Action=…&Version=2010-05-08`, SigV4 for service `iam`): the OIDC
//! providers, roles, inline and managed policies and permissions boundaries that doctor and
//! `irsa iam` read and write, over the same [`Iam`] state STS decides from: a trust policy
//! updated here is the one the next `AssumeRoleWithWebIdentity` evaluates, and a boundary put
//! here caps what ECR, STS and this API grant the role's sessions. `SimulatePrincipalPolicy`
//! answers with that same evaluation, except for conditions: it is given no context, so as
//! IAM's simulator it applies a conditional statement only when its condition holds with every
//! key missing and names the keys in MissingContextValues (ECR and STS, which cannot evaluate
//! conditions either, refuse instead: a conditional Allow never grants, a conditional Deny
//! always denies).
//!
//! Who may call: a request signed with a session the sandbox's STS issued is verified (signature,
//! expiry) and its role's identity policies (capped by its boundary) must allow `iam:<Action>` on the resource; any
//! other access key is the account's administrator (the sandbox has no IAM users, so it knows no
//! secret to check such a signature against; the header and date must still be well formed).

use axum::http::StatusCode;
use axum::response::Response;
use irsa_core::arn::OidcProviderArn;
use irsa_core::trust_policy::PolicyDocument;
use serde_json::Value;

use super::clock::wall_now;
use super::http_util::{Collected, authenticate};
use super::iam::{
    Iam, ManagedPolicy, PermissionDecision, Permissions, RoleConfig, check_permission_policy,
    simulate_permissions,
};
use super::sigv4::{self, Authorization};
use super::sts::{StsError, param, params, xml_response};
use super::xml::{IAM_NS, element, percent_encode, success_response_in};
use super::{OidcProviderConfig, State, request_id};

/// The API version IAM's Query API speaks.
pub(crate) const VERSION: &str = "2010-05-08";

/// Every action this IAM answers.
pub(crate) const ACTIONS: &[&str] = &[
    "CreateOpenIDConnectProvider",
    "GetOpenIDConnectProvider",
    "ListOpenIDConnectProviders",
    "AddClientIDToOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
    "DeleteOpenIDConnectProvider",
    "CreateRole",
    "GetRole",
    "ListRoles",
    "UpdateAssumeRolePolicy",
    "DeleteRole",
    "PutRolePolicy",
    "GetRolePolicy",
    "ListRolePolicies",
    "DeleteRolePolicy",
    "CreatePolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "ListAttachedRolePolicies",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "SimulatePrincipalPolicy",
];

/// Policy documents longer than this are refused (IAM: 2048 characters for trust policies by
/// default, 10240 for inline role policies, 6144 for managed policies; the sandbox takes the
/// largest).
const MAX_DOCUMENT_CHARS: usize = 10_240;

/// An IAM error: the Query-protocol error STS answers with too, rendered in IAM's namespace.
pub(crate) type IamApiError = StsError;

/// IAM's own error codes.
impl StsError {
    fn no_such_entity(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NoSuchEntity", message)
    }

    fn exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "EntityAlreadyExists", message)
    }

    fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
    }

    fn malformed_policy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", message)
    }
}

/// Whether a request is for IAM: signed for service `iam`, or unsigned and naming an IAM action
/// (so that it is refused as IAM would refuse it, not as STS would).
pub(crate) fn is_iam_request(request: &Collected) -> bool {
    let parts = request.parts();
    match parts.header("authorization") {
        Some(header) => Authorization::parse(header).is_ok_and(|a| a.service == "iam"),
        None => {
            let params = params(request);
            param(&params, "Action").is_some_and(|a| ACTIONS.contains(&a))
        }
    }
}

/// Answers one IAM Query API request.
pub(crate) fn handle(state: &State, request: &Collected) -> Response {
    let params = params(request);
    let action = param(&params, "Action").unwrap_or_default().to_owned();
    let label = if ACTIONS.contains(&action.as_str()) {
        action.as_str()
    } else {
        "unknown"
    };
    let result = check_request(&params, &action)
        .and_then(|()| authorize(state, request, &action, &params))
        .and_then(|()| apply(&mut state.iam_mut(), &action, &params));
    match result {
        Ok(body) => {
            state.counters.inc("iam", label, "ok");
            xml_response(
                StatusCode::OK,
                success_response_in(IAM_NS, &action, body.as_deref(), &request_id()),
            )
        }
        Err(e) => {
            state.counters.inc("iam", label, e.code);
            tracing::info!(action = label, code = e.code, "iam request refused");
            e.render_in(IAM_NS)
        }
    }
}

fn check_request(params: &[(String, String)], action: &str) -> Result<(), IamApiError> {
    if action.is_empty() {
        return Err(IamApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "the request names no Action: IAM's Query API takes an application/x-www-form-urlencoded body such as Action=GetRole&Version=2010-05-08&RoleName=puller",
        ));
    }
    if !ACTIONS.contains(&action) {
        return Err(IamApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "Could not find operation {} for version {VERSION}: the sandbox's IAM answers {}",
                echo(action),
                ACTIONS.join(", ")
            ),
        ));
    }
    match param(params, "Version") {
        None | Some(VERSION) => Ok(()),
        Some(other) => Err(IamApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "Could not find operation {action} for version {}: IAM's version is {VERSION}",
                echo(other)
            ),
        )),
    }
}

/// Inputs echoed in messages are cut short.
fn echo(s: &str) -> String {
    let cut: String = s.chars().take(128).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Sandbox sessions are verified and their role's policies evaluated; other keys are the
/// account's administrator (see the module docs).
fn authorize(
    state: &State,
    request: &Collected,
    action: &str,
    params: &[(String, String)],
) -> Result<(), IamApiError> {
    let parts = request.parts();
    let Some(header) = parts.header("authorization") else {
        return Err(IamApiError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth = Authorization::parse(header).map_err(|e| {
        IamApiError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            e.to_string(),
        )
    })?;
    match sigv4::check_date(&parts, &auth, wall_now()) {
        Ok(_) => {}
        Err(sigv4::SigV4Error::Skew) => {
            return Err(IamApiError::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "Signature expired: the request was signed more than 15 minutes from the server's time",
            ));
        }
        Err(e) => {
            return Err(IamApiError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                e.to_string(),
            ));
        }
    }
    if state.session(&auth.access_key_id).is_none() {
        return Ok(());
    }
    let session = authenticate(state, &parts, &["iam"]).map_err(|e| StsError::from_auth(&e))?;
    let iam = state.iam();
    let resource = resource(&iam, action, params);
    let permissions = iam
        .role_by_name(&session.role_name)
        .map(|r| iam.permissions(r))
        .unwrap_or_default();
    let authorization = permissions.evaluate(&format!("iam:{action}"), &resource);
    if authorization.allowed() {
        return Ok(());
    }
    let why = authorization.why(&format!("iam:{action}"));
    Err(IamApiError::new(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        format!(
            "User: {} is not authorized to perform: iam:{action} on resource: {resource} {why}",
            session.assumed_role_arn
        ),
    ))
}

/// The resource ARN an action is authorized on (`*` for the list actions): taken from the
/// parameter that action itself acts on, never from another one a caller adds (review 24b
/// M1: `&RoleName=x` on DeleteOpenIDConnectProvider was authorized against `role/x`). Without
/// that parameter, `*`, which only a policy for every resource allows (and the action then
/// fails its own validation).
fn resource(iam: &Iam, action: &str, params: &[(String, String)]) -> String {
    let account = format!("arn:{}:iam::{}", iam.partition(), iam.account());
    let role = || {
        param(params, "RoleName").map(|name| {
            let path = iam
                .role_by_name(name)
                .map(|r| r.arn.path.clone())
                .or_else(|| param(params, "Path").map(str::to_owned))
                .unwrap_or_else(|| "/".to_owned());
            format!("{account}:role{path}{name}")
        })
    };
    let named = |key: &str| param(params, key).map(str::to_owned);
    let found = match action {
        "CreateRole"
        | "GetRole"
        | "UpdateAssumeRolePolicy"
        | "DeleteRole"
        | "PutRolePolicy"
        | "GetRolePolicy"
        | "ListRolePolicies"
        | "DeleteRolePolicy"
        | "AttachRolePolicy"
        | "DetachRolePolicy"
        | "ListAttachedRolePolicies"
        | "PutRolePermissionsBoundary"
        | "DeleteRolePermissionsBoundary" => role(),
        "SimulatePrincipalPolicy" => named("PolicySourceArn"),
        "GetOpenIDConnectProvider"
        | "AddClientIDToOpenIDConnectProvider"
        | "UpdateOpenIDConnectProviderThumbprint"
        | "DeleteOpenIDConnectProvider" => named("OpenIDConnectProviderArn"),
        "CreateOpenIDConnectProvider" => param(params, "Url")
            .and_then(|u| irsa_core::arn::issuer_host_path(u).ok())
            .map(|host| format!("{account}:oidc-provider/{host}")),
        "GetPolicy" | "GetPolicyVersion" => named("PolicyArn"),
        "CreatePolicy" => param(params, "PolicyName").map(|name| {
            let path = param(params, "Path").unwrap_or("/");
            format!("{account}:policy{path}{name}")
        }),
        _ => None,
    };
    found.unwrap_or_else(|| "*".to_owned())
}

/// Applies IAM Query request bodies to `iam`, one `application/x-www-form-urlencoded` body per
/// line, as the handler does once a caller is authorized, and renders each answer; the number
/// that succeeded. For the fuzz target (`sandbox_auth`): no bytes may panic the decoder, the
/// validation or the state changes.
pub fn apply_query_lines(iam: &mut Iam, lines: &[u8]) -> usize {
    let mut ok = 0;
    for line in lines.split(|b| *b == b'\n') {
        let params: Vec<(String, String)> = form_urlencoded::parse(line)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let action = param(&params, "Action").unwrap_or_default().to_owned();
        match check_request(&params, &action).and_then(|()| apply(iam, &action, &params)) {
            Ok(body) => {
                let _ = success_response_in(IAM_NS, &action, body.as_deref(), "fuzz");
                ok += 1;
            }
            Err(e) => {
                let _ = e.render_in(IAM_NS);
            }
        }
    }
    ok
}

/// Applies one action to the IAM state: the XML inside `<…Result>`, or `None` for actions
/// without output.
pub(crate) fn apply(
    iam: &mut Iam,
    action: &str,
    params: &[(String, String)],
) -> Result<Option<String>, IamApiError> {
    match action {
        "CreateOpenIDConnectProvider" => create_provider(iam, params).map(Some),
        "GetOpenIDConnectProvider" => get_provider(iam, params).map(Some),
        "ListOpenIDConnectProviders" => Ok(Some(list_providers(iam))),
        "AddClientIDToOpenIDConnectProvider" => add_client_id(iam, params).map(|()| None),
        "UpdateOpenIDConnectProviderThumbprint" => update_thumbprints(iam, params).map(|()| None),
        "DeleteOpenIDConnectProvider" => delete_provider(iam, params).map(|()| None),
        "CreateRole" => create_role(iam, params).map(Some),
        "GetRole" => get_role(iam, params).map(Some),
        "ListRoles" => list_roles(iam, params).map(Some),
        "UpdateAssumeRolePolicy" => update_trust_policy(iam, params).map(|()| None),
        "DeleteRole" => delete_role(iam, params).map(|()| None),
        "PutRolePolicy" => put_role_policy(iam, params).map(|()| None),
        "GetRolePolicy" => get_role_policy(iam, params).map(Some),
        "ListRolePolicies" => list_role_policies(iam, params).map(Some),
        "DeleteRolePolicy" => delete_role_policy(iam, params).map(|()| None),
        "CreatePolicy" => create_policy(iam, params).map(Some),
        "GetPolicy" => get_policy(iam, params).map(Some),
        "GetPolicyVersion" => get_policy_version(iam, params).map(Some),
        "AttachRolePolicy" => attach_role_policy(iam, params).map(|()| None),
        "DetachRolePolicy" => detach_role_policy(iam, params).map(|()| None),
        "ListAttachedRolePolicies" => list_attached_role_policies(iam, params).map(Some),
        "PutRolePermissionsBoundary" => put_boundary(iam, params).map(|()| None),
        "DeleteRolePermissionsBoundary" => delete_boundary(iam, params).map(|()| None),
        "SimulatePrincipalPolicy" => simulate_principal_policy(iam, params).map(Some),
        other => Err(IamApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {}", echo(other)),
        )),
    }
}

// ---- parameters

/// AWS's lowerCamel member name of a parameter, for validation messages.
fn member(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, IamApiError> {
    param(params, name).ok_or_else(|| {
        IamApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            member(name)
        ))
    })
}

/// `Name.member.1`, `Name.member.2`, … in order, up to the first gap.
fn list_param(params: &[(String, String)], name: &str) -> Vec<String> {
    (1..)
        .map_while(|n| param(params, &format!("{name}.member.{n}")).map(str::to_owned))
        .take(1000)
        .collect()
}

fn check_name(value: &str, name: &str, max: usize) -> Result<(), IamApiError> {
    let ok = !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IamApiError::validation(format!(
            "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and {max}",
            echo(value),
            member(name)
        )))
    }
}

fn check_path(path: &str) -> Result<(), IamApiError> {
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(IamApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'path' failed to satisfy constraint: Member must begin and end with '/' and contain only printable ASCII characters, at most 512",
            echo(path)
        )))
    }
}

fn check_description(params: &[(String, String)]) -> Result<Option<String>, IamApiError> {
    match param(params, "Description") {
        Some(d) if d.chars().count() > 1000 => Err(IamApiError::validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        )),
        d => Ok(d.map(str::to_owned)),
    }
}

/// Paging of the list actions: `MaxItems` (1–1000, default 100) and `Marker` (the key to
/// start at, as a previous answer's `Marker` gave it).
fn page<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    params: &[(String, String)],
) -> Result<(Vec<T>, Option<String>), IamApiError> {
    let max = match param(params, "MaxItems") {
        None => 100,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(IamApiError::validation(format!(
                    "1 validation error detected: Value '{}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000",
                    echo(m)
                )));
            }
        },
    };
    let marker = param(params, "Marker");
    let mut out = Vec::new();
    let mut next = None;
    for (key, item) in items {
        if marker.is_some_and(|m| key < m) {
            continue;
        }
        if out.len() == max {
            next = Some(key.to_owned());
            break;
        }
        out.push(item);
    }
    Ok((out, next))
}

fn page_tail(body: &mut String, next: Option<String>) {
    match next {
        Some(marker) => {
            element(body, "IsTruncated", "true");
            element(body, "Marker", &marker);
        }
        None => element(body, "IsTruncated", "false"),
    }
}

fn date(unix: i64) -> String {
    irsa_core::time::rfc3339(unix)
}

/// A policy document parameter: JSON within IAM's size limit.
fn document(params: &[(String, String)], name: &str) -> Result<(String, Value), IamApiError> {
    let text = required(params, name)?;
    if text.chars().count() > MAX_DOCUMENT_CHARS {
        return Err(IamApiError::new(
            StatusCode::CONFLICT,
            "LimitExceeded",
            format!(
                "the {name} is {} characters; the sandbox accepts at most {MAX_DOCUMENT_CHARS}",
                text.chars().count()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        IamApiError::malformed_policy(format!(
            "Syntax errors in policy: the {name} is not valid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    Ok((text.to_owned(), value))
}

/// A permission policy: JSON that the sandbox's identity-policy evaluator understands.
fn permission_document(
    params: &[(String, String)],
    name: &str,
) -> Result<(String, Value), IamApiError> {
    let (text, value) = document(params, name)?;
    check_permission_policy(&value)
        .map_err(|e| IamApiError::malformed_policy(format!("{name}: {e}")))?;
    Ok((text, value))
}

/// A trust policy: parsed by irsa-core's trust-policy parser, the one STS evaluates with.
/// `name`: `AssumeRolePolicyDocument` (CreateRole) or `PolicyDocument`
/// (UpdateAssumeRolePolicy).
fn trust_document(
    params: &[(String, String)],
    name: &str,
) -> Result<(String, Value, PolicyDocument), IamApiError> {
    let (text, value) = document(params, name)?;
    let parsed = PolicyDocument::from_value(&value)
        .map_err(|e| IamApiError::malformed_policy(format!("{name}: {e}")))?;
    Ok((text, value, parsed))
}

// ---- OIDC providers

fn provider_key(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let arn = required(params, "OpenIDConnectProviderArn")?;
    let parsed: OidcProviderArn = arn.parse().map_err(|e: irsa_core::arn::ArnError| {
        IamApiError::invalid_input(format!("ARN {} is not valid: {e}", echo(arn)))
    })?;
    if parsed.account != iam.account() || parsed.partition != iam.partition() {
        return Err(IamApiError::no_such_entity(format!(
            "OpenIDConnect Provider not found for arn {}: it is not in account {} of partition {}",
            echo(arn),
            iam.account(),
            iam.partition()
        )));
    }
    if !iam.providers.contains_key(&parsed.provider) {
        return Err(IamApiError::no_such_entity(format!(
            "OpenIDConnect Provider not found for arn {}",
            echo(arn)
        )));
    }
    Ok(parsed.provider)
}

fn check_client_id(id: &str) -> Result<(), IamApiError> {
    if id.is_empty() || id.chars().count() > 255 {
        return Err(IamApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'clientID' failed to satisfy constraint: Member must have length between 1 and 255",
            echo(id)
        )));
    }
    Ok(())
}

fn thumbprints(params: &[(String, String)]) -> Result<Vec<String>, IamApiError> {
    let list = list_param(params, "ThumbprintList");
    if list.len() > 5 {
        return Err(IamApiError::validation(
            "1 validation error detected: Value at 'thumbprintList' failed to satisfy constraint: Member must have length less than or equal to 5",
        ));
    }
    for t in &list {
        if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(IamApiError::validation(format!(
                "1 validation error detected: Value '{}' at 'thumbprintList' failed to satisfy constraint: Member must be 40 hexadecimal digits (the SHA-1 fingerprint of the issuer's certificate)",
                echo(t)
            )));
        }
    }
    Ok(list)
}

fn create_provider(iam: &mut Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let url = required(params, "Url")?;
    let host_path = irsa_core::arn::issuer_host_path(url)
        .map_err(|e| IamApiError::validation(format!("Url: {e}")))?;
    let client_ids = list_param(params, "ClientIDList");
    if client_ids.len() > 100 {
        return Err(IamApiError::validation(
            "1 validation error detected: Value at 'clientIDList' failed to satisfy constraint: Member must have length less than or equal to 100",
        ));
    }
    for id in &client_ids {
        check_client_id(id)?;
    }
    let thumbprints = thumbprints(params)?;
    if iam.providers.contains_key(&host_path) {
        return Err(IamApiError::exists(format!(
            "Provider with url https://{host_path} already exists."
        )));
    }
    if client_ids.is_empty() {
        // IAM accepts a provider without client ids, but no token can then be exchanged; the
        // sandbox's state refuses it, so say what to add.
        return Err(IamApiError::validation(
            "ClientIDList is empty: add the audience your tokens carry (usually sts.amazonaws.com); the sandbox does not keep providers no token could use",
        ));
    }
    let mut unique = Vec::new();
    for id in client_ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    let arn = iam
        .put_provider(OidcProviderConfig {
            url: format!("https://{host_path}"),
            client_ids: unique,
            jwks: None,
        })
        .map_err(|e| IamApiError::validation(e.to_string()))?;
    if let Some(p) = iam.providers.get_mut(&arn.provider) {
        p.thumbprints = thumbprints;
    }
    let mut body = String::new();
    element(&mut body, "OpenIDConnectProviderArn", &arn.to_string());
    Ok(body)
}

fn get_provider(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let key = provider_key(iam, params)?;
    let p = &iam.providers[&key];
    let mut body = String::from("<ThumbprintList>");
    for t in &p.thumbprints {
        element(&mut body, "member", t);
    }
    body.push_str("</ThumbprintList>");
    element(&mut body, "CreateDate", &date(p.created_at));
    body.push_str("<ClientIDList>");
    for c in &p.config.client_ids {
        element(&mut body, "member", c);
    }
    body.push_str("</ClientIDList>");
    // IAM answers the URL without its scheme.
    element(&mut body, "Url", &p.arn.provider);
    body.push_str("<Tags/>");
    Ok(body)
}

fn list_providers(iam: &Iam) -> String {
    let mut body = String::from("<OpenIDConnectProviderList>");
    for p in iam.providers() {
        body.push_str("<member>");
        element(&mut body, "Arn", &p.arn.to_string());
        body.push_str("</member>");
    }
    body.push_str("</OpenIDConnectProviderList>");
    body
}

fn add_client_id(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let key = provider_key(iam, params)?;
    let id = required(params, "ClientID")?;
    check_client_id(id)?;
    let p = iam
        .providers
        .get_mut(&key)
        .ok_or_else(|| IamApiError::no_such_entity("OpenIDConnect Provider not found"))?;
    if !p.config.client_ids.iter().any(|c| c == id) {
        if p.config.client_ids.len() >= 100 {
            return Err(IamApiError::new(
                StatusCode::CONFLICT,
                "LimitExceeded",
                "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100",
            ));
        }
        p.config.client_ids.push(id.to_owned());
    }
    Ok(())
}

fn update_thumbprints(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let key = provider_key(iam, params)?;
    let list = thumbprints(params)?;
    if let Some(p) = iam.providers.get_mut(&key) {
        p.thumbprints = list;
    }
    Ok(())
}

/// As IAM: deleting a provider that does not exist succeeds.
fn delete_provider(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    match provider_key(iam, params) {
        Ok(key) => {
            iam.providers.remove(&key);
            Ok(())
        }
        Err(e) if e.code == "NoSuchEntity" => Ok(()),
        Err(e) => Err(e),
    }
}

// ---- roles

/// A role as GetRole and CreateRole answer it: with its permissions boundary (ListRoles leaves
/// the boundary out, as IAM does).
fn role_xml(body: &mut String, role: &super::iam::Role) {
    body.push_str("<Role>");
    role_fields(body, role);
    if let Some(arn) = &role.permissions_boundary {
        body.push_str("<PermissionsBoundary>");
        element(body, "PermissionsBoundaryType", "Policy");
        element(body, "PermissionsBoundaryArn", arn);
        body.push_str("</PermissionsBoundary>");
    }
    body.push_str("</Role>");
}

fn role_fields(body: &mut String, role: &super::iam::Role) {
    element(body, "Path", &role.arn.path);
    element(body, "RoleName", &role.arn.name);
    element(body, "RoleId", &role.role_id);
    element(body, "Arn", &role.arn.to_string());
    element(body, "CreateDate", &date(role.created_at));
    element(
        body,
        "AssumeRolePolicyDocument",
        &percent_encode(&role.trust_policy_text),
    );
    if let Some(d) = &role.description {
        element(body, "Description", d);
    }
    element(
        body,
        "MaxSessionDuration",
        &role.config.max_session_duration.to_string(),
    );
    if !role.tags.is_empty() {
        body.push_str("<Tags>");
        for (key, value) in &role.tags {
            body.push_str("<member>");
            element(body, "Key", key);
            element(body, "Value", value);
            body.push_str("</member>");
        }
        body.push_str("</Tags>");
    }
}

/// `Tags.member.N.Key` / `.Value`, as IAM checks them: at most 50, keys 1-128 and values
/// 0-256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, keys unique without regard to case.
fn tags(params: &[(String, String)]) -> Result<Vec<(String, String)>, IamApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for i in 1.. {
        let Some(key) = param(params, &format!("Tags.member.{i}.Key")) else {
            break;
        };
        let value = param(params, &format!("Tags.member.{i}.Value")).unwrap_or("");
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
        };
        if key.is_empty() || key.chars().count() > 128 || !allowed(key) {
            return Err(IamApiError::validation(format!(
                "1 validation error detected: Value '{}' at 'tags.{i}.member.key' failed to satisfy constraint: Member must have length between 1 and 128 and satisfy the pattern [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+",
                echo(key)
            )));
        }
        if value.chars().count() > 256 || !allowed(value) {
            return Err(IamApiError::validation(format!(
                "1 validation error detected: Value '{}' at 'tags.{i}.member.value' failed to satisfy constraint: Member must have length at most 256 and satisfy the pattern [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*",
                echo(value)
            )));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(IamApiError::invalid_input(format!(
                "Duplicate tag keys found: {}. Please note that Tag keys are case insensitive.",
                echo(key)
            )));
        }
        if out.len() == 50 {
            return Err(IamApiError::new(
                StatusCode::CONFLICT,
                "LimitExceeded",
                "Cannot exceed quota for TagsPerRole: 50",
            ));
        }
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

fn role_name(params: &[(String, String)]) -> Result<&str, IamApiError> {
    let name = required(params, "RoleName")?;
    check_name(name, "RoleName", 64)?;
    Ok(name)
}

fn no_such_role(name: &str) -> IamApiError {
    IamApiError::no_such_entity(format!("The role with name {name} cannot be found."))
}

fn existing_role<'a>(
    iam: &'a Iam,
    params: &[(String, String)],
) -> Result<&'a super::iam::Role, IamApiError> {
    let name = role_name(params)?;
    iam.role_by_name(name).ok_or_else(|| no_such_role(name))
}

fn existing_role_mut<'a>(
    iam: &'a mut Iam,
    params: &[(String, String)],
) -> Result<&'a mut super::iam::Role, IamApiError> {
    let name = role_name(params)?;
    iam.roles.get_mut(name).ok_or_else(|| no_such_role(name))
}

fn create_role(iam: &mut Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let name = role_name(params)?;
    let path = param(params, "Path").unwrap_or("/");
    check_path(path)?;
    let (text, value, _) = trust_document(params, "AssumeRolePolicyDocument")?;
    let description = check_description(params)?;
    let tags = tags(params)?;
    let max_session_duration = match param(params, "MaxSessionDuration") {
        None => 3600,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if (3600..=43200).contains(&n) => n,
            _ => {
                return Err(IamApiError::validation(format!(
                    "1 validation error detected: Value '{}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200",
                    echo(d)
                )));
            }
        },
    };
    let boundary = param(params, "PermissionsBoundary")
        .map(|arn| boundary_policy(iam, arn))
        .transpose()?;
    // Role names are unique without regard to case.
    if let Some(existing) = iam.roles.keys().find(|k| k.eq_ignore_ascii_case(name)) {
        return Err(IamApiError::exists(format!(
            "Role with name {existing} already exists."
        )));
    }
    let arn = iam
        .put_role(RoleConfig {
            name: name.to_owned(),
            path: path.to_owned(),
            trust_policy: value,
            permission_policies: Vec::new(),
            max_session_duration,
        })
        .map_err(|e| IamApiError::validation(e.to_string()))?;
    let role = iam
        .roles
        .get_mut(&arn.name)
        .ok_or_else(|| no_such_role(name))?;
    role.trust_policy_text = text;
    role.description = description;
    role.tags = tags;
    role.permissions_boundary = boundary;
    let mut body = String::new();
    role_xml(&mut body, role);
    Ok(body)
}

fn get_role(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let role = existing_role(iam, params)?;
    let mut body = String::new();
    role_xml(&mut body, role);
    Ok(body)
}

fn list_roles(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let prefix = param(params, "PathPrefix").unwrap_or("/");
    let (roles, next) = page(
        iam.roles()
            .filter(|r| r.arn.path.starts_with(prefix))
            .map(|r| (r.arn.name.as_str(), r)),
        params,
    )?;
    let mut body = String::from("<Roles>");
    for role in roles {
        body.push_str("<member>");
        role_fields(&mut body, role);
        body.push_str("</member>");
    }
    body.push_str("</Roles>");
    page_tail(&mut body, next);
    Ok(body)
}

fn update_trust_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let (text, value, parsed) = trust_document(params, "PolicyDocument")?;
    let role = existing_role_mut(iam, params)?;
    role.trust_policy = parsed;
    role.trust_policy_text = text;
    role.config.trust_policy = value;
    Ok(())
}

fn delete_role(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let role = existing_role(iam, params)?;
    if !role.inline_policies.is_empty() || !role.attached_policies.is_empty() {
        return Err(IamApiError::new(
            StatusCode::CONFLICT,
            "DeleteConflict",
            format!(
                "Cannot delete entity, must delete policies first: role {} has {} inline and {} attached policies",
                role.arn.name,
                role.inline_policies.len(),
                role.attached_policies.len()
            ),
        ));
    }
    let name = role.arn.name.clone();
    iam.roles.remove(&name);
    Ok(())
}

// ---- inline policies

fn policy_name(params: &[(String, String)]) -> Result<&str, IamApiError> {
    let name = required(params, "PolicyName")?;
    check_name(name, "PolicyName", 128)?;
    Ok(name)
}

fn put_role_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let name = policy_name(params)?;
    let doc = permission_document(params, "PolicyDocument")?;
    let role = existing_role_mut(iam, params)?;
    role.inline_policies.insert(name.to_owned(), doc);
    Ok(())
}

fn get_role_policy(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let name = policy_name(params)?;
    let role = existing_role(iam, params)?;
    let (text, _) = role.inline_policies.get(name).ok_or_else(|| {
        IamApiError::no_such_entity(format!("The role policy with name {name} cannot be found."))
    })?;
    let mut body = String::new();
    element(&mut body, "RoleName", &role.arn.name);
    element(&mut body, "PolicyName", name);
    element(&mut body, "PolicyDocument", &percent_encode(text));
    Ok(body)
}

fn list_role_policies(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let role = existing_role(iam, params)?;
    let (names, next) = page(role.inline_policies.keys().map(|k| (k.as_str(), k)), params)?;
    let mut body = String::from("<PolicyNames>");
    for name in names {
        element(&mut body, "member", name);
    }
    body.push_str("</PolicyNames>");
    page_tail(&mut body, next);
    Ok(body)
}

fn delete_role_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let name = policy_name(params)?;
    let role = existing_role_mut(iam, params)?;
    role.inline_policies
        .remove(name)
        .map(|_| ())
        .ok_or_else(|| {
            IamApiError::no_such_entity(format!(
                "The role policy with name {name} cannot be found."
            ))
        })
}

// ---- managed policies

fn policy_id(arn: &str) -> String {
    use sha2::{Digest as _, Sha256};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = Sha256::digest(arn.as_bytes())
        .iter()
        .take(17)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("ANPA{tail}")
}

fn policy_xml(body: &mut String, iam: &Iam, p: &ManagedPolicy) {
    let attachments = iam
        .roles()
        .filter(|r| r.attached_policies.contains(&p.arn))
        .count();
    body.push_str("<Policy>");
    element(body, "PolicyName", &p.name);
    element(body, "DefaultVersionId", "v1");
    element(body, "PolicyId", &p.policy_id);
    element(body, "Path", &p.path);
    element(body, "Arn", &p.arn);
    element(body, "AttachmentCount", &attachments.to_string());
    let boundaries = iam
        .roles()
        .filter(|r| r.permissions_boundary.as_deref() == Some(p.arn.as_str()))
        .count();
    element(
        body,
        "PermissionsBoundaryUsageCount",
        &boundaries.to_string(),
    );
    element(body, "IsAttachable", "true");
    if let Some(d) = &p.description {
        element(body, "Description", d);
    }
    element(body, "CreateDate", &date(p.created_at));
    element(body, "UpdateDate", &date(p.created_at));
    body.push_str("</Policy>");
}

/// The managed policy an ARN names: `InvalidInput` when it is no policy ARN, `NoSuchEntity`
/// when there is none.
fn existing_policy<'a>(
    iam: &'a Iam,
    params: &[(String, String)],
) -> Result<&'a ManagedPolicy, IamApiError> {
    let arn = required(params, "PolicyArn")?;
    let well_formed = arn
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":iam::"))
        .and_then(|(_, r)| r.split_once(":policy/"))
        .is_some_and(|(account, name)| !account.is_empty() && !name.is_empty());
    if !well_formed {
        return Err(IamApiError::invalid_input(format!(
            "ARN {} is not valid: a policy ARN is arn:<partition>:iam::<account>:policy/<path><name>",
            echo(arn)
        )));
    }
    iam.policies.get(arn).ok_or_else(|| {
        IamApiError::no_such_entity(format!(
            "Policy {} does not exist or is not attachable.",
            echo(arn)
        ))
    })
}

fn create_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let name = policy_name(params)?;
    let path = param(params, "Path").unwrap_or("/");
    check_path(path)?;
    let document = permission_document(params, "PolicyDocument")?;
    let description = check_description(params)?;
    let arn = format!(
        "arn:{}:iam::{}:policy{path}{name}",
        iam.partition(),
        iam.account()
    );
    // Names are unique in the account, whatever the path, and without regard to case.
    if let Some(existing) = iam
        .policies
        .values()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        return Err(IamApiError::exists(format!(
            "A policy called {name} already exists. Duplicate names are not allowed: {} holds it.",
            existing.arn
        )));
    }
    let policy = ManagedPolicy {
        policy_id: policy_id(&arn),
        arn: arn.clone(),
        name: name.to_owned(),
        path: path.to_owned(),
        document,
        description,
        created_at: wall_now(),
    };
    iam.policies.insert(arn.clone(), policy);
    let mut body = String::new();
    policy_xml(&mut body, iam, &iam.policies[&arn]);
    Ok(body)
}

fn get_policy(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let p = existing_policy(iam, params)?;
    let mut body = String::new();
    policy_xml(&mut body, iam, p);
    Ok(body)
}

fn get_policy_version(iam: &Iam, params: &[(String, String)]) -> Result<String, IamApiError> {
    let p = existing_policy(iam, params)?;
    let version = required(params, "VersionId")?;
    if version != "v1" {
        return Err(IamApiError::no_such_entity(format!(
            "Policy {} version {} does not exist or is not attachable.",
            p.arn,
            echo(version)
        )));
    }
    let mut body = String::from("<PolicyVersion>");
    element(&mut body, "Document", &percent_encode(&p.document.0));
    element(&mut body, "VersionId", "v1");
    element(&mut body, "IsDefaultVersion", "true");
    element(&mut body, "CreateDate", &date(p.created_at));
    body.push_str("</PolicyVersion>");
    Ok(body)
}

fn attach_role_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let arn = existing_policy(iam, params)?.arn.clone();
    let role = existing_role_mut(iam, params)?;
    if !role.attached_policies.contains(&arn) {
        role.attached_policies.push(arn);
    }
    Ok(())
}

fn detach_role_policy(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let arn = existing_policy(iam, params)?.arn.clone();
    let role = existing_role_mut(iam, params)?;
    let before = role.attached_policies.len();
    role.attached_policies.retain(|a| a != &arn);
    if role.attached_policies.len() == before {
        return Err(IamApiError::no_such_entity(format!(
            "Policy {arn} was not found."
        )));
    }
    Ok(())
}

fn list_attached_role_policies(
    iam: &Iam,
    params: &[(String, String)],
) -> Result<String, IamApiError> {
    let role = existing_role(iam, params)?;
    let prefix = param(params, "PathPrefix").unwrap_or("/");
    let (arns, next) = page(
        role.attached_policies
            .iter()
            .filter_map(|a| iam.policies.get(a))
            .filter(|p| p.path.starts_with(prefix))
            .map(|p| (p.arn.as_str(), p)),
        params,
    )?;
    let mut body = String::from("<AttachedPolicies>");
    for p in arns {
        body.push_str("<member>");
        element(&mut body, "PolicyName", &p.name);
        element(&mut body, "PolicyArn", &p.arn);
        body.push_str("</member>");
    }
    body.push_str("</AttachedPolicies>");
    page_tail(&mut body, next);
    Ok(body)
}

// ---- permissions boundaries and the policy simulator

/// The managed policy a `PermissionsBoundary` parameter names: its ARN. IAM takes a managed
/// policy only (an inline policy cannot be a boundary) and refuses one that does not exist.
fn boundary_policy(iam: &Iam, arn: &str) -> Result<String, IamApiError> {
    let arn_params = [("PolicyArn".to_owned(), arn.to_owned())];
    let policy = existing_policy(iam, &arn_params).map_err(|e| {
        if e.code == "NoSuchEntity" {
            IamApiError::no_such_entity(format!(
                "Scope ARN: {} does not exist or is not attachable.",
                echo(arn)
            ))
        } else {
            IamApiError::invalid_input(format!(
                "PermissionsBoundary: ARN {} is not valid: a permissions boundary is a managed policy, arn:<partition>:iam::<account>:policy/<path><name>",
                echo(arn)
            ))
        }
    })?;
    Ok(policy.arn.clone())
}

fn put_boundary(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let arn = boundary_policy(iam, required(params, "PermissionsBoundary")?)?;
    existing_role_mut(iam, params)?.permissions_boundary = Some(arn);
    Ok(())
}

fn delete_boundary(iam: &mut Iam, params: &[(String, String)]) -> Result<(), IamApiError> {
    let role = existing_role_mut(iam, params)?;
    if role.permissions_boundary.take().is_none() {
        return Err(IamApiError::no_such_entity(format!(
            "The role {} has no permissions boundary.",
            role.arn.name
        )));
    }
    Ok(())
}

/// Most actions (and resources) one simulation takes: IAM's own limits are 1,000 each; the
/// sandbox keeps the answer small.
const MAX_SIMULATED: usize = 100;

/// A policy document with its `SourcePolicyId` and `SourcePolicyType`.
type Labelled = (String, Value, &'static str);

/// `SourcePolicyType` of a managed policy: `aws-managed` for AWS's own (account `aws`),
/// `user-managed` otherwise (IAM API Reference, "Statement": user | group | role |
/// aws-managed | user-managed | resource | none).
fn managed_type(arn: &str) -> &'static str {
    if arn.split(':').nth(4) == Some("aws") {
        "aws-managed"
    } else {
        "user-managed"
    }
}

/// The labelled documents of a role's identity policies (`SourcePolicyId`: the inline policy's
/// name, the managed policy's ARN; `SourcePolicyType`: `role` for an inline policy, the
/// managed policy's type otherwise) and of its boundary (a managed policy: IAM names the
/// boundary in PermissionsBoundaryDecisionDetail, not in the type).
fn labelled_policies(iam: &Iam, role: &super::iam::Role) -> (Vec<Labelled>, Option<Labelled>) {
    let identity = role
        .inline_policies
        .iter()
        .map(|(name, (_, doc))| (name.clone(), doc.clone(), "role"))
        .chain(role.attached_policies.iter().filter_map(|arn| {
            iam.policies
                .get(arn)
                .map(|p| (arn.clone(), p.document.1.clone(), managed_type(arn)))
        }))
        .collect();
    let boundary = role.permissions_boundary.as_ref().map(|arn| {
        (
            arn.clone(),
            iam.policies
                .get(arn)
                .map(|p| p.document.1.clone())
                .unwrap_or(Value::Null),
            managed_type(arn),
        )
    });
    (identity, boundary)
}

fn decision_text(d: PermissionDecision) -> &'static str {
    match d {
        PermissionDecision::Allow => "allowed",
        PermissionDecision::ExplicitDeny => "explicitDeny",
        PermissionDecision::ImplicitDeny => "implicitDeny",
    }
}

/// The body of one result (an EvaluationResult's or a ResourceSpecificResult's details): the
/// statements' policies that decided it, the context keys of the conditional statements that
/// cover the request (MissingContextValues: the simulation is given none) and, with a
/// boundary, whether the boundary allowed it. Decided as IAM's simulator does without context
/// ([`super::iam::simulate_permissions`]), which is not always what ECR decides.
fn simulated_details(
    body: &mut String,
    identity: &[Labelled],
    boundary: &Option<Labelled>,
    action: &str,
    resource: &str,
) -> PermissionDecision {
    let permissions = Permissions {
        identity: identity.iter().map(|(_, v, _)| v.clone()).collect(),
        boundary: boundary.as_ref().map(|(_, v, _)| v.clone()),
    };
    let (authorization, missing) = permissions.simulate(action, resource);
    // The policies whose own decision is the one that decided: each Deny for a deny, each
    // Allow for an allow.
    let wanted = match authorization.decision {
        PermissionDecision::ImplicitDeny => None,
        d => Some(d),
    };
    body.push_str("<MatchedStatements>");
    if let Some(wanted) = wanted {
        for (id, doc, kind) in identity.iter().chain(boundary) {
            if simulate_permissions(std::slice::from_ref(doc), action, resource).0 == wanted {
                body.push_str("<member>");
                element(body, "SourcePolicyId", id);
                element(body, "SourcePolicyType", kind);
                body.push_str("</member>");
            }
        }
    }
    body.push_str("</MatchedStatements><MissingContextValues>");
    for key in &missing {
        element(body, "member", key);
    }
    body.push_str("</MissingContextValues>");
    if let Some(b) = authorization.boundary {
        body.push_str("<PermissionsBoundaryDecisionDetail>");
        element(
            body,
            "AllowedByPermissionsBoundary",
            if b == PermissionDecision::Allow {
                "true"
            } else {
                "false"
            },
        );
        body.push_str("</PermissionsBoundaryDecisionDetail>");
    }
    authorization.decision
}

/// `SimulatePrincipalPolicy` for a role: one EvaluationResult per action, decided by the same
/// evaluation STS and ECR make (identity policies capped by the boundary), with the decision
/// per resource in ResourceSpecificResults when ResourceArns are given and the most
/// restrictive of them on top (IAM API Reference, "EvaluationResult").
fn simulate_principal_policy(
    iam: &Iam,
    params: &[(String, String)],
) -> Result<String, IamApiError> {
    let source = required(params, "PolicySourceArn")?;
    let role_arn: irsa_core::arn::RoleArn = source.parse().map_err(|_| {
        IamApiError::invalid_input(format!(
            "PolicySourceArn {}: the sandbox simulates roles only, arn:<partition>:iam::<account>:role/<path><name>",
            echo(source)
        ))
    })?;
    let role = iam
        .role(&role_arn)
        .ok_or_else(|| no_such_role(&role_arn.name))?;
    let actions = list_param(params, "ActionNames");
    let resources = list_param(params, "ResourceArns");
    if actions.is_empty() {
        return Err(IamApiError::validation(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null",
        ));
    }
    if actions.len() > MAX_SIMULATED || resources.len() > MAX_SIMULATED {
        return Err(IamApiError::invalid_input(format!(
            "the sandbox simulates at most {MAX_SIMULATED} actions and {MAX_SIMULATED} resources at once"
        )));
    }
    let (identity, boundary) = labelled_policies(iam, role);
    let mut body = String::from("<IsTruncated>false</IsTruncated><EvaluationResults>");
    for action in &actions {
        let mut result = String::new();
        let decision = if resources.is_empty() {
            element(&mut result, "EvalResourceName", "*");
            simulated_details(&mut result, &identity, &boundary, action, "*")
        } else {
            let mut per_resource = String::from("<ResourceSpecificResults>");
            let mut worst = PermissionDecision::Allow;
            for resource in &resources {
                let mut details = String::new();
                let d = simulated_details(&mut details, &identity, &boundary, action, resource);
                per_resource.push_str("<member>");
                element(&mut per_resource, "EvalResourceName", resource);
                element(&mut per_resource, "EvalResourceDecision", decision_text(d));
                per_resource.push_str(&details);
                per_resource.push_str("</member>");
                worst = match (worst, d) {
                    (PermissionDecision::ExplicitDeny, _)
                    | (_, PermissionDecision::ExplicitDeny) => PermissionDecision::ExplicitDeny,
                    (PermissionDecision::ImplicitDeny, _)
                    | (_, PermissionDecision::ImplicitDeny) => PermissionDecision::ImplicitDeny,
                    _ => PermissionDecision::Allow,
                };
            }
            per_resource.push_str("</ResourceSpecificResults>");
            element(&mut result, "EvalResourceName", &resources[0]);
            result.push_str(&per_resource);
            worst
        };
        body.push_str("<member>");
        element(&mut body, "EvalActionName", action);
        element(&mut body, "EvalDecision", decision_text(decision));
        body.push_str(&result);
        body.push_str("</member>");
    }
    body.push_str("</EvaluationResults>");
    Ok(body)
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

    const TRUST: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.test"}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": {"StringEquals": {"oidc.test:sub": "system:serviceaccount:a:b"}}}]}"#;
    const PULL: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}"#;

    fn code(iam: &mut Iam, action: &str, params: &[(&str, &str)]) -> &'static str {
        match apply(iam, action, &p(params)) {
            Ok(_) => "ok",
            Err(e) => e.code,
        }
    }

    #[test]
    fn an_action_is_authorized_on_what_it_acts_on_not_on_an_added_parameter() {
        let iam = Iam::new("aws", "111122223333");
        let provider = "arn:aws:iam::111122223333:oidc-provider/oidc.test";
        for action in [
            "DeleteOpenIDConnectProvider",
            "AddClientIDToOpenIDConnectProvider",
            "UpdateOpenIDConnectProviderThumbprint",
            "GetOpenIDConnectProvider",
        ] {
            let params = p(&[("OpenIDConnectProviderArn", provider), ("RoleName", "x")]);
            assert_eq!(resource(&iam, action, &params), provider, "{action}");
        }
        let policy = "arn:aws:iam::111122223333:policy/pull";
        let params = p(&[("PolicyArn", policy), ("RoleName", "x")]);
        assert_eq!(resource(&iam, "GetPolicy", &params), policy);
        let params = p(&[("PolicyName", "pull"), ("RoleName", "x")]);
        assert_eq!(resource(&iam, "CreatePolicy", &params), policy);
        // AttachRolePolicy acts on the role, whatever policy it names.
        let params = p(&[("RoleName", "x"), ("PolicyArn", policy)]);
        assert_eq!(
            resource(&iam, "AttachRolePolicy", &params),
            "arn:aws:iam::111122223333:role/x"
        );
        // Without the action's own parameter: every resource.
        let params = p(&[("RoleName", "x")]);
        assert_eq!(resource(&iam, "DeleteOpenIDConnectProvider", &params), "*");
        assert_eq!(resource(&iam, "ListRoles", &params), "*");
    }

    #[test]
    fn query_lines_are_decoded_and_applied_in_order() {
        let mut iam = Iam::new("aws", "111122223333");
        let trust: String = form_urlencoded::byte_serialize(TRUST.as_bytes()).collect();
        let lines = format!(
            "Action=CreateRole&RoleName=puller&AssumeRolePolicyDocument={trust}\n\
             Action=GetRole&RoleName=puller\n\
             Action=GetRole&RoleName=%ff%fe\n\
             garbage\u{0}&&=="
        );
        assert_eq!(apply_query_lines(&mut iam, lines.as_bytes()), 2);
        assert!(iam.role_by_name("puller").is_some());
    }

    #[test]
    fn roles_policies_and_providers_through_the_query_api() {
        let mut iam = Iam::new("aws", "111122223333");
        let role = [("RoleName", "puller"), ("AssumeRolePolicyDocument", TRUST)];
        assert_eq!(code(&mut iam, "CreateRole", &role), "ok");
        assert_eq!(code(&mut iam, "CreateRole", &role), "EntityAlreadyExists");
        assert_eq!(
            code(
                &mut iam,
                "CreateRole",
                &[("RoleName", "PULLER"), ("AssumeRolePolicyDocument", TRUST)]
            ),
            "EntityAlreadyExists"
        );
        let get = apply(&mut iam, "GetRole", &p(&[("RoleName", "puller")]))
            .unwrap()
            .unwrap();
        assert!(get.contains(&percent_encode(TRUST)), "{get}");
        assert!(get.contains("<Arn>arn:aws:iam::111122223333:role/puller</Arn>"));
        assert_eq!(
            code(&mut iam, "GetRole", &[("RoleName", "nobody")]),
            "NoSuchEntity"
        );
        let put = [
            ("RoleName", "puller"),
            ("PolicyName", "pull"),
            ("PolicyDocument", PULL),
        ];
        assert_eq!(code(&mut iam, "PutRolePolicy", &put), "ok");
        let r = iam.role_by_name("puller").unwrap();
        assert_eq!(iam.permission_policies(r).len(), 1);
        assert_eq!(code(&mut iam, "DeleteRole", &role[..1]), "DeleteConflict");
        let policy = apply(
            &mut iam,
            "CreatePolicy",
            &p(&[("PolicyName", "ecr"), ("PolicyDocument", PULL)]),
        )
        .unwrap()
        .unwrap();
        assert!(policy.contains("<Arn>arn:aws:iam::111122223333:policy/ecr</Arn>"));
        let attach = [
            ("RoleName", "puller"),
            ("PolicyArn", "arn:aws:iam::111122223333:policy/ecr"),
        ];
        assert_eq!(code(&mut iam, "AttachRolePolicy", &attach), "ok");
        let r = iam.role_by_name("puller").unwrap();
        assert_eq!(iam.permission_policies(r).len(), 2);
        assert_eq!(code(&mut iam, "DetachRolePolicy", &attach), "ok");
        assert_eq!(code(&mut iam, "DetachRolePolicy", &attach), "NoSuchEntity");
        assert_eq!(code(&mut iam, "DeleteRolePolicy", &put[..2]), "ok");
        assert_eq!(
            code(&mut iam, "DeleteRolePolicy", &put[..2]),
            "NoSuchEntity"
        );
        assert_eq!(code(&mut iam, "DeleteRole", &role[..1]), "ok");

        let provider = [
            ("Url", "https://oidc.test/"),
            ("ClientIDList.member.1", "sts.amazonaws.com"),
        ];
        assert_eq!(
            code(&mut iam, "CreateOpenIDConnectProvider", &provider),
            "ok"
        );
        assert_eq!(
            code(&mut iam, "CreateOpenIDConnectProvider", &provider),
            "EntityAlreadyExists"
        );
        assert!(iam.provider_for_issuer("https://oidc.test").is_some());
        let arn = [(
            "OpenIDConnectProviderArn",
            "arn:aws:iam::111122223333:oidc-provider/oidc.test",
        )];
        let add = [arn[0], ("ClientID", "other")];
        assert_eq!(
            code(&mut iam, "AddClientIDToOpenIDConnectProvider", &add),
            "ok"
        );
        assert_eq!(
            code(&mut iam, "AddClientIDToOpenIDConnectProvider", &add),
            "ok"
        );
        assert_eq!(
            iam.provider_for_issuer("https://oidc.test")
                .unwrap()
                .config
                .client_ids,
            ["sts.amazonaws.com", "other"]
        );
        assert_eq!(code(&mut iam, "DeleteOpenIDConnectProvider", &arn), "ok");
        assert_eq!(code(&mut iam, "DeleteOpenIDConnectProvider", &arn), "ok");
        assert_eq!(
            code(&mut iam, "GetOpenIDConnectProvider", &arn),
            "NoSuchEntity"
        );
    }

    #[test]
    fn input_validation_table() {
        let mut iam = Iam::new("aws", "111122223333");
        assert_eq!(
            code(
                &mut iam,
                "CreateRole",
                &[("RoleName", "r"), ("AssumeRolePolicyDocument", TRUST)]
            ),
            "ok"
        );
        for (action, params, want, message) in [
            (
                "CreateRole",
                vec![("AssumeRolePolicyDocument", TRUST)],
                "ValidationError",
                "'roleName'",
            ),
            (
                "CreateRole",
                vec![("RoleName", "a b"), ("AssumeRolePolicyDocument", TRUST)],
                "ValidationError",
                "regular expression",
            ),
            (
                "CreateRole",
                vec![("RoleName", "x"), ("AssumeRolePolicyDocument", "{nope")],
                "MalformedPolicyDocument",
                "line 1, column 2",
            ),
            (
                "CreateRole",
                vec![
                    ("RoleName", "x"),
                    ("AssumeRolePolicyDocument", r#"{"Statement": "x"}"#),
                ],
                "MalformedPolicyDocument",
                "Statement",
            ),
            (
                "CreateRole",
                vec![
                    ("RoleName", "x"),
                    ("Path", "nope"),
                    ("AssumeRolePolicyDocument", TRUST),
                ],
                "ValidationError",
                "'path'",
            ),
            (
                "CreateRole",
                vec![
                    ("RoleName", "x"),
                    ("MaxSessionDuration", "60"),
                    ("AssumeRolePolicyDocument", TRUST),
                ],
                "ValidationError",
                "between 3600 and 43200",
            ),
            (
                "PutRolePolicy",
                vec![
                    ("RoleName", "r"),
                    ("PolicyName", "p"),
                    ("PolicyDocument", r#"{"Statement": [{"Effect": "Maybe"}]}"#),
                ],
                "MalformedPolicyDocument",
                "Statement[0]: Effect",
            ),
            (
                "PutRolePolicy",
                vec![
                    ("RoleName", "r"),
                    ("PolicyName", "p"),
                    ("PolicyDocument", "[]"),
                ],
                "MalformedPolicyDocument",
                "JSON object",
            ),
            (
                "UpdateAssumeRolePolicy",
                vec![("RoleName", "r"), ("AssumeRolePolicyDocument", TRUST)],
                "ValidationError",
                "'policyDocument'",
            ),
            (
                "UpdateAssumeRolePolicy",
                vec![("RoleName", "r"), ("PolicyDocument", r#"{"Statement": []"#)],
                "MalformedPolicyDocument",
                "PolicyDocument",
            ),
            (
                "CreateOpenIDConnectProvider",
                vec![("Url", "http://oidc.test"), ("ClientIDList.member.1", "a")],
                "ValidationError",
                "https",
            ),
            (
                "CreateOpenIDConnectProvider",
                vec![
                    ("Url", "https://oidc.test"),
                    ("ThumbprintList.member.1", "xyz"),
                    ("ClientIDList.member.1", "a"),
                ],
                "ValidationError",
                "40 hexadecimal",
            ),
            (
                "CreateOpenIDConnectProvider",
                vec![("Url", "https://oidc.test")],
                "ValidationError",
                "ClientIDList is empty",
            ),
            (
                "GetOpenIDConnectProvider",
                vec![(
                    "OpenIDConnectProviderArn",
                    "arn:aws:iam::111122223333:role/x",
                )],
                "InvalidInput",
                "is not valid",
            ),
            (
                "GetOpenIDConnectProvider",
                vec![(
                    "OpenIDConnectProviderArn",
                    "arn:aws:iam::999999999999:oidc-provider/oidc.test",
                )],
                "NoSuchEntity",
                "999999999999",
            ),
            (
                "GetPolicy",
                vec![("PolicyArn", "not-an-arn")],
                "InvalidInput",
                "is not valid",
            ),
            (
                "AttachRolePolicy",
                vec![
                    ("RoleName", "r"),
                    ("PolicyArn", "arn:aws:iam::aws:policy/Nope"),
                ],
                "NoSuchEntity",
                "does not exist",
            ),
            (
                "ListRoles",
                vec![("MaxItems", "0")],
                "ValidationError",
                "'maxItems'",
            ),
        ] {
            let params: Vec<(&str, &str)> = params;
            match apply(&mut iam, action, &p(&params)) {
                Err(e) => {
                    assert_eq!(e.code, want, "{action} {params:?}: {}", e.message);
                    assert!(
                        e.message.contains(message),
                        "{action}: {} lacks {message}",
                        e.message
                    );
                }
                Ok(body) => panic!("{action} {params:?} succeeded: {body:?}"),
            }
        }
    }

    #[test]
    fn list_roles_pages_with_marker() {
        let mut iam = Iam::new("aws", "111122223333");
        for name in ["a", "b", "c"] {
            assert_eq!(
                code(
                    &mut iam,
                    "CreateRole",
                    &[("RoleName", name), ("AssumeRolePolicyDocument", TRUST)]
                ),
                "ok"
            );
        }
        let first = apply(&mut iam, "ListRoles", &p(&[("MaxItems", "2")]))
            .unwrap()
            .unwrap();
        assert!(
            first.contains("<IsTruncated>true</IsTruncated><Marker>c</Marker>"),
            "{first}"
        );
        let rest = apply(
            &mut iam,
            "ListRoles",
            &p(&[("MaxItems", "2"), ("Marker", "c")]),
        )
        .unwrap()
        .unwrap();
        assert!(rest.contains("<RoleName>c</RoleName>"));
        assert!(!rest.contains("<RoleName>a</RoleName>"));
        assert!(rest.contains("<IsTruncated>false</IsTruncated>"));
    }

    #[test]
    fn unknown_and_missing_actions_are_named() {
        let e = check_request(&p(&[("Action", "CreateUser")]), "CreateUser").unwrap_err();
        assert_eq!(e.code, "InvalidAction");
        assert!(e.message.contains("CreateUser") && e.message.contains("GetRole"));
        let e = check_request(&[], "").unwrap_err();
        assert_eq!(e.code, "MissingAction");
        let e = check_request(
            &p(&[("Action", "GetRole"), ("Version", "2011-06-15")]),
            "GetRole",
        )
        .unwrap_err();
        assert!(e.message.contains("2010-05-08"), "{}", e.message);
    }

    fn policy(iam: &mut Iam, name: &str, document: &str) -> String {
        let body = apply(
            iam,
            "CreatePolicy",
            &p(&[("PolicyName", name), ("PolicyDocument", document)]),
        )
        .unwrap()
        .unwrap();
        let arn = format!("arn:aws:iam::111122223333:policy/{name}");
        assert!(body.contains(&format!("<Arn>{arn}</Arn>")), "{body}");
        arn
    }

    const BOUNDARY_PULL_ONLY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}]}"#;
    const ALLOW_ECR: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}"#;

    #[test]
    fn a_permissions_boundary_caps_what_the_role_s_policies_grant() {
        let mut iam = Iam::new("aws", "111122223333");
        let boundary = policy(&mut iam, "boundary", BOUNDARY_PULL_ONLY);
        // A boundary must name an existing managed policy.
        assert_eq!(
            code(
                &mut iam,
                "CreateRole",
                &[
                    ("RoleName", "other"),
                    ("AssumeRolePolicyDocument", TRUST),
                    (
                        "PermissionsBoundary",
                        "arn:aws:iam::111122223333:policy/none"
                    )
                ]
            ),
            "NoSuchEntity"
        );
        assert_eq!(
            code(
                &mut iam,
                "CreateRole",
                &[
                    ("RoleName", "other"),
                    ("AssumeRolePolicyDocument", TRUST),
                    ("PermissionsBoundary", "not-an-arn")
                ]
            ),
            "InvalidInput"
        );
        let body = apply(
            &mut iam,
            "CreateRole",
            &p(&[
                ("RoleName", "puller"),
                ("AssumeRolePolicyDocument", TRUST),
                ("PermissionsBoundary", &boundary),
            ]),
        )
        .unwrap()
        .unwrap();
        assert!(
            body.contains(&format!(
                "<PermissionsBoundaryArn>{boundary}</PermissionsBoundaryArn>"
            )),
            "{body}"
        );
        let put = [
            ("RoleName", "puller"),
            ("PolicyName", "ecr"),
            ("PolicyDocument", ALLOW_ECR),
        ];
        assert_eq!(code(&mut iam, "PutRolePolicy", &put), "ok");
        let get = apply(&mut iam, "GetRole", &p(&[("RoleName", "puller")]))
            .unwrap()
            .unwrap();
        assert!(
            get.contains("<PermissionsBoundaryType>Policy</PermissionsBoundaryType>"),
            "{get}"
        );
        let count = apply(&mut iam, "GetPolicy", &p(&[("PolicyArn", &boundary)]))
            .unwrap()
            .unwrap();
        assert!(
            count.contains("<PermissionsBoundaryUsageCount>1<"),
            "{count}"
        );
        // [EVAL] "Permissions boundaries for IAM entities": the effective permissions are
        // what both the identity policies and the boundary allow.
        let role = iam.role_by_name("puller").unwrap();
        let a = iam
            .permissions(role)
            .evaluate("ecr:GetAuthorizationToken", "*");
        assert_eq!(a.decision, PermissionDecision::ImplicitDeny);
        assert_eq!(a.identity, PermissionDecision::Allow);
        assert_eq!(
            a.why("ecr:GetAuthorizationToken"),
            "because no permissions boundary allows the ecr:GetAuthorizationToken action"
        );
        assert!(
            iam.permissions(role)
                .evaluate(
                    "ecr:BatchGetImage",
                    "arn:aws:ecr:us-east-1:111122223333:repository/app"
                )
                .allowed()
        );
        // Removed, the role's own policies decide again.
        assert_eq!(
            code(
                &mut iam,
                "DeleteRolePermissionsBoundary",
                &[("RoleName", "puller")]
            ),
            "ok"
        );
        assert_eq!(
            code(
                &mut iam,
                "DeleteRolePermissionsBoundary",
                &[("RoleName", "puller")]
            ),
            "NoSuchEntity"
        );
        let role = iam.role_by_name("puller").unwrap();
        assert!(
            iam.permissions(role)
                .evaluate("ecr:GetAuthorizationToken", "*")
                .allowed()
        );
        let get = apply(&mut iam, "GetRole", &p(&[("RoleName", "puller")]))
            .unwrap()
            .unwrap();
        assert!(!get.contains("PermissionsBoundary"), "{get}");
        // And put back with PutRolePermissionsBoundary.
        assert_eq!(
            code(
                &mut iam,
                "PutRolePermissionsBoundary",
                &[("RoleName", "puller"), ("PermissionsBoundary", &boundary)]
            ),
            "ok"
        );
        assert_eq!(
            code(
                &mut iam,
                "PutRolePermissionsBoundary",
                &[
                    ("RoleName", "puller"),
                    (
                        "PermissionsBoundary",
                        "arn:aws:iam::111122223333:policy/none"
                    )
                ]
            ),
            "NoSuchEntity"
        );
        let role = iam.role_by_name("puller").unwrap();
        assert!(
            !iam.permissions(role)
                .evaluate("ecr:GetAuthorizationToken", "*")
                .allowed()
        );
        // ListRoles leaves the boundary out, as IAM does.
        let list = apply(&mut iam, "ListRoles", &p(&[])).unwrap().unwrap();
        assert!(!list.contains("PermissionsBoundary"), "{list}");
        // The boundary actions act on the role.
        assert_eq!(
            resource(
                &iam,
                "PutRolePermissionsBoundary",
                &p(&[("RoleName", "puller"), ("PermissionsBoundary", &boundary)])
            ),
            "arn:aws:iam::111122223333:role/puller"
        );
    }

    fn simulate(
        iam: &mut Iam,
        params: &[(&str, &str)],
    ) -> Vec<irsa_core::iam_simulation::SimulatedResult> {
        let body = apply(iam, "SimulatePrincipalPolicy", &p(params))
            .unwrap()
            .unwrap();
        let root = irsa_core::aws_xml::parse(&format!(
            "<SimulatePrincipalPolicyResult>{body}</SimulatePrincipalPolicyResult>"
        ))
        .unwrap();
        irsa_core::iam_simulation::results(&root).unwrap()
    }

    #[test]
    fn simulate_principal_policy_decides_as_sts_and_ecr_do() {
        use irsa_core::iam_simulation::SimulatedDecision::*;
        let mut iam = Iam::new("aws", "111122223333");
        let role = "arn:aws:iam::111122223333:role/puller";
        let app = "arn:aws:ecr:us-east-1:111122223333:repository/app";
        let secret = "arn:aws:ecr:us-east-1:111122223333:repository/secret";
        assert_eq!(
            code(
                &mut iam,
                "CreateRole",
                &[("RoleName", "puller"), ("AssumeRolePolicyDocument", TRUST)]
            ),
            "ok"
        );
        let pull = format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}}, {{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}}, {{"Effect": "Deny", "Action": "ecr:*", "Resource": "{secret}"}}]}}"#
        );
        assert_eq!(
            code(
                &mut iam,
                "PutRolePolicy",
                &[
                    ("RoleName", "puller"),
                    ("PolicyName", "pull"),
                    ("PolicyDocument", &pull)
                ]
            ),
            "ok"
        );
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:GetAuthorizationToken"),
            ],
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].action.as_str(), r[0].resource.as_str(), r[0].decision),
            ("ecr:GetAuthorizationToken", "*", Allowed)
        );
        assert_eq!(r[0].matched[0].source_policy_id, "pull");
        // Review L1: IAM's SourcePolicyType values are user, group, role, aws-managed,
        // user-managed, resource and none; an inline policy of a role is `role`.
        assert_eq!(r[0].matched[0].source_policy_type.as_deref(), Some("role"));
        assert_eq!(r[0].allowed_by_boundary, None);
        assert!(r[0].missing_context.is_empty());
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:BatchGetImage"),
                ("ActionNames.member.2", "ecr:GetDownloadUrlForLayer"),
                ("ResourceArns.member.1", app),
                ("ResourceArns.member.2", secret),
            ],
        );
        let got: Vec<(&str, &str, _)> = r
            .iter()
            .map(|x| (x.action.as_str(), x.resource.as_str(), x.decision))
            .collect();
        assert_eq!(
            got,
            [
                ("ecr:BatchGetImage", app, Allowed),
                ("ecr:BatchGetImage", secret, ExplicitDeny),
                ("ecr:GetDownloadUrlForLayer", app, ImplicitDeny),
                ("ecr:GetDownloadUrlForLayer", secret, ExplicitDeny),
            ]
        );
        // With a boundary that lacks the token action: its decision detail says so.
        let boundary = policy(&mut iam, "boundary", BOUNDARY_PULL_ONLY);
        assert_eq!(
            code(
                &mut iam,
                "PutRolePermissionsBoundary",
                &[("RoleName", "puller"), ("PermissionsBoundary", &boundary)]
            ),
            "ok"
        );
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:GetAuthorizationToken"),
            ],
        );
        assert_eq!(r[0].decision, ImplicitDeny);
        assert_eq!(r[0].allowed_by_boundary, Some(false));
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:BatchGetImage"),
                ("ResourceArns.member.1", app),
            ],
        );
        assert_eq!(r[0].decision, Allowed);
        assert_eq!(r[0].allowed_by_boundary, Some(true));
        let sources: Vec<&str> = r[0]
            .matched
            .iter()
            .map(|m| m.source_policy_id.as_str())
            .collect();
        assert_eq!(sources, ["pull", boundary.as_str()]);
        let types: Vec<Option<&str>> = r[0]
            .matched
            .iter()
            .map(|m| m.source_policy_type.as_deref())
            .collect();
        assert_eq!(types, [Some("role"), Some("user-managed")]);
        // Review M2: a Deny conditioned on a key the simulation is not given does not apply
        // in the simulation (the simulator says allowed), and the key is named in
        // MissingContextValues, per resource.
        let vpce = r#"{"Statement": [{"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0bad"}}}]}"#;
        assert_eq!(
            code(
                &mut iam,
                "PutRolePolicy",
                &[
                    ("RoleName", "puller"),
                    ("PolicyName", "vpce"),
                    ("PolicyDocument", vpce)
                ]
            ),
            "ok"
        );
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:BatchGetImage"),
                ("ResourceArns.member.1", app),
            ],
        );
        assert_eq!(r[0].decision, Allowed);
        assert_eq!(r[0].missing_context, ["aws:SourceVpce"]);
        let r = simulate(
            &mut iam,
            &[
                ("PolicySourceArn", role),
                ("ActionNames.member.1", "ecr:GetAuthorizationToken"),
            ],
        );
        assert!(r[0].missing_context.is_empty(), "{r:?}");
        // Refusals name what is wrong.
        for (params, want) in [
            (vec![("PolicySourceArn", role)], "ValidationError"),
            (vec![("ActionNames.member.1", "ecr:X")], "ValidationError"),
            (
                vec![
                    ("PolicySourceArn", "arn:aws:iam::111122223333:role/none"),
                    ("ActionNames.member.1", "ecr:X"),
                ],
                "NoSuchEntity",
            ),
            (
                vec![
                    ("PolicySourceArn", "arn:aws:iam::111122223333:user/u"),
                    ("ActionNames.member.1", "ecr:X"),
                ],
                "InvalidInput",
            ),
        ] {
            assert_eq!(
                code(&mut iam, "SimulatePrincipalPolicy", &params),
                want,
                "{params:?}"
            );
        }
        assert_eq!(
            resource(
                &iam,
                "SimulatePrincipalPolicy",
                &p(&[("PolicySourceArn", role), ("RoleName", "x")])
            ),
            role
        );
    }
}
