//! The claims of a Kubernetes service-account token, and the service account they name.

use std::fmt;

use serde_json::{Map, Value};

use super::error::{Part, TokenError};

/// The claims set of a web-identity token.
///
/// The registered claims are typed; `raw` keeps every claim as sent, so that trust-policy
/// condition keys on any claim (`amr`, `azp`, `email`…) can be evaluated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Claims {
    /// Issuer (`iss`): the cluster's OIDC issuer URL.
    pub iss: Option<String>,
    /// Subject (`sub`): `system:serviceaccount:<namespace>:<name>` for a service account.
    pub sub: Option<String>,
    /// Audiences (`aud`), normalized to a list whether sent as a string or an array.
    pub aud: Vec<String>,
    /// Expiry (`exp`), unix seconds.
    pub exp: Option<i64>,
    /// Not before (`nbf`), unix seconds.
    pub nbf: Option<i64>,
    /// Issued at (`iat`), unix seconds.
    pub iat: Option<i64>,
    /// Token id (`jti`).
    pub jti: Option<String>,
    /// The private `kubernetes.io` claim of service-account tokens.
    pub kubernetes: Option<KubernetesClaim>,
    /// Every claim as sent.
    pub raw: Map<String, Value>,
}

/// The `kubernetes.io` claim: which namespace, service account and (for bound tokens) pod,
/// node or secret the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KubernetesClaim {
    /// `kubernetes.io.namespace`.
    pub namespace: Option<String>,
    /// `kubernetes.io.serviceaccount`.
    pub service_account: Option<ObjectRef>,
    /// `kubernetes.io.pod`: set for tokens bound to a pod (projected volumes).
    pub pod: Option<ObjectRef>,
    /// `kubernetes.io.node`: set for tokens bound to a node, or to a pod with node info.
    pub node: Option<ObjectRef>,
    /// `kubernetes.io.secret`: set for tokens bound to a secret.
    pub secret: Option<ObjectRef>,
    /// `kubernetes.io.warnafter`: when the kubelet should have refreshed the token (unix seconds).
    pub warn_after: Option<i64>,
}

/// A reference to a Kubernetes object by name and uid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object uid.
    pub uid: Option<String>,
}

/// A service account, as named by a token's `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ServiceAccountName {
    /// Namespace (a DNS-1123 label).
    pub namespace: String,
    /// Name (a DNS-1123 subdomain).
    pub name: String,
}

const SA_PREFIX: &str = "system:serviceaccount:";

impl ServiceAccountName {
    /// Parses `system:serviceaccount:<namespace>:<name>`, validating the namespace as a
    /// DNS-1123 label (at most 63 characters) and the name as a DNS-1123 subdomain (at most 253).
    pub fn from_subject(sub: &str) -> Result<Self, TokenError> {
        let err = |reason: &str| TokenError::Subject {
            sub: sub.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = sub
            .strip_prefix(SA_PREFIX)
            .ok_or_else(|| err("it does not start with \"system:serviceaccount:\""))?;
        let (namespace, name) = rest
            .split_once(':')
            .ok_or_else(|| err("it has no \":<name>\" after the namespace"))?;
        if name.contains(':') {
            return Err(err("it has more than two parts after the prefix"));
        }
        if let Some(problem) = dns1123_label_problem(namespace) {
            return Err(err(&format!("namespace {problem}")));
        }
        if let Some(problem) = dns1123_subdomain_problem(name) {
            return Err(err(&format!("name {problem}")));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The token subject for this service account: `system:serviceaccount:<namespace>:<name>`.
    pub fn subject(&self) -> String {
        format!("{SA_PREFIX}{}:{}", self.namespace, self.name)
    }
}

impl fmt::Display for ServiceAccountName {
    /// `namespace/name`, as kubectl shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn dns1123_label_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 63 {
        return Some(format!("is {} characters, more than 63", s.len()));
    }
    label_chars_problem(s)
}

fn dns1123_subdomain_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 253 {
        return Some(format!("is {} characters, more than 253", s.len()));
    }
    s.split('.').find_map(|label| {
        if label.is_empty() {
            Some("has an empty dot-separated part".into())
        } else {
            label_chars_problem(label)
        }
    })
}

fn label_chars_problem(label: &str) -> Option<String> {
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}: only lowercase letters, digits and '-' are allowed (DNS-1123)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Some("starts or ends with '-' (DNS-1123)".into());
    }
    None
}

impl Claims {
    /// Parses a claims set from its JSON text (the decoded second segment of a JWT).
    pub fn from_json(json: &[u8]) -> Result<Self, TokenError> {
        let value: Value = serde_json::from_slice(json).map_err(|e| TokenError::Json {
            part: Part::Claims,
            reason: e.to_string(),
        })?;
        match value {
            Value::Object(map) => Self::from_map(map),
            other => Err(TokenError::NotAnObject {
                part: Part::Claims,
                found: json_type(&other),
            }),
        }
    }

    /// Builds typed claims from a JSON object, checking the types of the registered claims.
    pub fn from_map(raw: Map<String, Value>) -> Result<Self, TokenError> {
        let kubernetes = match raw.get("kubernetes.io") {
            None | Some(Value::Null) => None,
            Some(Value::Object(k)) => Some(KubernetesClaim::from_map(k)?),
            Some(other) => return Err(type_error("kubernetes.io", "an object", other)),
        };
        Ok(Self {
            iss: string_field(&raw, "iss", "iss")?,
            sub: string_field(&raw, "sub", "sub")?,
            aud: audiences(&raw)?,
            exp: time_field(&raw, "exp", "exp")?,
            nbf: time_field(&raw, "nbf", "nbf")?,
            iat: time_field(&raw, "iat", "iat")?,
            jti: string_field(&raw, "jti", "jti")?,
            kubernetes,
            raw,
        })
    }

    /// The service account named by `sub`, when it is a valid service-account subject that
    /// agrees with the `kubernetes.io` claim. See [`Claims::check_service_account`] for why not.
    pub fn service_account(&self) -> Option<ServiceAccountName> {
        self.check_service_account().ok().flatten()
    }

    /// The service account named by `sub`: `Ok(None)` without `sub`; an error when `sub` is not a
    /// service-account subject, or names another namespace or service account than the
    /// `kubernetes.io` claim (when that claim is present).
    pub fn check_service_account(&self) -> Result<Option<ServiceAccountName>, TokenError> {
        let Some(sub) = &self.sub else {
            return Ok(None);
        };
        let sa = ServiceAccountName::from_subject(sub)?;
        if let Some(k) = &self.kubernetes {
            let ns = k.namespace.as_deref();
            let name = k.service_account.as_ref().map(|r| r.name.as_str());
            if ns.is_some_and(|ns| ns != sa.namespace) || name.is_some_and(|n| n != sa.name) {
                return Err(TokenError::SubjectMismatch {
                    sub: sa.to_string(),
                    claim: format!("{}/{}", ns.unwrap_or("?"), name.unwrap_or("?")),
                });
            }
        }
        Ok(Some(sa))
    }
}

impl KubernetesClaim {
    fn from_map(k: &Map<String, Value>) -> Result<Self, TokenError> {
        Ok(Self {
            namespace: string_field(k, "namespace", "kubernetes.io.namespace")?,
            service_account: object_ref(k, "serviceaccount")?,
            pod: object_ref(k, "pod")?,
            node: object_ref(k, "node")?,
            secret: object_ref(k, "secret")?,
            warn_after: time_field(k, "warnafter", "kubernetes.io.warnafter")?,
        })
    }
}

fn object_ref(k: &Map<String, Value>, key: &str) -> Result<Option<ObjectRef>, TokenError> {
    let path = format!("kubernetes.io.{key}");
    match k.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            let name = string_field(o, "name", &format!("{path}.name"))?.ok_or_else(|| {
                TokenError::FieldType {
                    part: Part::Claims,
                    field: format!("{path}.name"),
                    expected: "a string",
                    found: "nothing",
                }
            })?;
            let uid = string_field(o, "uid", &format!("{path}.uid"))?;
            Ok(Some(ObjectRef { name, uid }))
        }
        Some(other) => Err(type_error(&path, "an object", other)),
    }
}

fn string_field(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, TokenError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(type_error(path, "a string", other)),
    }
}

/// A NumericDate: integer seconds; a fractional value (allowed by RFC 7519) is truncated.
fn time_field(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, TokenError> {
    const EXPECTED: &str = "a number of seconds since 1970 (NumericDate)";
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                // i64::MAX as f64 rounds up to 2^63, so compare with `<`.
                Some(f) if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
                    Ok(Some(f.trunc() as i64))
                }
                _ => Err(TokenError::FieldType {
                    part: Part::Claims,
                    field: path.to_owned(),
                    expected: EXPECTED,
                    found: "a number out of range",
                }),
            }
        }
        Some(other) => Err(type_error(path, EXPECTED, other)),
    }
}

fn audiences(map: &Map<String, Value>) -> Result<Vec<String>, TokenError> {
    const EXPECTED: &str = "a string or an array of strings";
    match map.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error("aud", EXPECTED, other)),
            })
            .collect(),
        Some(other) => Err(type_error("aud", EXPECTED, other)),
    }
}

fn type_error(path: &str, expected: &'static str, found: &Value) -> TokenError {
    TokenError::FieldType {
        part: Part::Claims,
        field: path.to_owned(),
        expected,
        found: json_type(found),
    }
}

/// The JSON type of a value, in words, for error messages.
pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
