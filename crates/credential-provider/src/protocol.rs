//! The kubelet's exec credential-provider protocol, `credentialprovider.kubelet.k8s.io/v1`
//! (and the older `v1beta1`/`v1alpha1`, which share its shape): a `CredentialProviderRequest`
//! on stdin, a `CredentialProviderResponse` on stdout.
//!
//! The request is read by hand from a JSON value rather than through a derived deserializer, so
//! that every refusal names the field and never echoes a value: the request carries the pod's
//! service-account token, and serde's messages quote the offending input. Unknown fields are
//! ignored (a newer kubelet may send more). The response holds exactly the fields the kubelet's
//! strict decoder knows, with the Go types' JSON names.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use irsa_core::secret::SecretString;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// The API version of KEP-4412 (service-account tokens); the one irsa's printed config uses.
pub const API_VERSION_V1: &str = "credentialprovider.kubelet.k8s.io/v1";
/// Every API version the kubelet speaks to exec plugins; the response echoes the request's.
pub const API_VERSIONS: [&str; 3] = [
    API_VERSION_V1,
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
];
/// The request's kind.
pub const REQUEST_KIND: &str = "CredentialProviderRequest";
/// The response's kind.
pub const RESPONSE_KIND: &str = "CredentialProviderResponse";
/// Largest request read from stdin (a request is a few KiB: an image, a token, annotations).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// A decoded `CredentialProviderRequest`. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The request's `apiVersion`, one of [`API_VERSIONS`].
    pub api_version: String,
    /// The image being pulled, as the pod spec names it.
    pub image: String,
    /// The pod's service-account token (KEP-4412), when the kubelet's config asks for one.
    pub service_account_token: Option<SecretString>,
    /// The service account's annotations the kubelet's config lets through.
    pub service_account_annotations: BTreeMap<String, String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("api_version", &self.api_version)
            .field("image", &self.image)
            .field(
                "service_account_token",
                &self.service_account_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "service_account_annotations",
                &self.service_account_annotations,
            )
            .finish()
    }
}

/// Why a request was refused. The messages name the field and the fix, never a value that
/// could be the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// More than [`MAX_REQUEST_BYTES`] on stdin.
    #[error(
        "the request on stdin is {len} bytes long: a CredentialProviderRequest is at most 1 MiB; \
         is something other than the kubelet writing to irsa's stdin?"
    )]
    TooLong {
        /// Bytes read.
        len: usize,
    },
    /// Nothing on stdin.
    #[error(
        "no request on stdin: the kubelet writes a CredentialProviderRequest \
         ({{\"apiVersion\":\"{API_VERSION_V1}\",\"kind\":\"{REQUEST_KIND}\",\"image\":\"…\"}}) to \
         a credential provider's stdin"
    )]
    Empty,
    /// Not JSON.
    #[error(
        "the request on stdin is not JSON ({category} at line {line}, column {column}): expected a \
         CredentialProviderRequest object"
    )]
    Json {
        /// What serde_json saw: a syntax error, an early end of input.
        category: &'static str,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// JSON, but not an object.
    #[error("the request on stdin is a JSON {found}, not a CredentialProviderRequest object")]
    NotObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("field {field} of the request must be {expected}, not a JSON {found}")]
    FieldType {
        /// The field (`image`, `serviceAccountAnnotations["x"]`, …).
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
    /// `kind` is missing or not `CredentialProviderRequest`.
    #[error(
        "field kind of the request is {found}, expected \"{REQUEST_KIND}\": irsa credential-provider \
         speaks the kubelet's credential-provider protocol only"
    )]
    Kind {
        /// The kind, quoted, or "missing".
        found: String,
    },
    /// `apiVersion` is missing or not one the kubelet speaks.
    #[error(
        "field apiVersion of the request is {found}, expected one of \
         credentialprovider.kubelet.k8s.io/v1, v1beta1 or v1alpha1: set apiVersion: {API_VERSION_V1} \
         in the kubelet's CredentialProviderConfig"
    )]
    ApiVersion {
        /// The version, quoted (at most 64 characters), or "missing".
        found: String,
    },
    /// `image` is missing or empty.
    #[error("field image of the request is missing or empty: the kubelet names the image it pulls")]
    EmptyImage,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short, quoted rendering of a `kind`/`apiVersion` value (these are never secret, but an
/// attacker-sized one must not flood the kubelet's log).
fn quoted_short(s: &str) -> String {
    let short: String = s.chars().take(64).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

fn optional_string<'a>(
    object: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ProtocolError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ProtocolError::FieldType {
            field: field.to_owned(),
            expected: "a string",
            found: json_type(other),
        }),
    }
}

/// Decodes a `CredentialProviderRequest` from the bytes the kubelet wrote to stdin.
pub fn decode_request(bytes: &[u8]) -> Result<Request, ProtocolError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLong { len: bytes.len() });
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ProtocolError::Empty);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ProtocolError::Json {
        category: match e.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            serde_json::error::Category::Io => "read error",
            // A syntax error, or invalid UTF-8 / a control character in a string.
            _ => "syntax error",
        },
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(object) = value else {
        return Err(ProtocolError::NotObject {
            found: json_type(&value),
        });
    };
    match optional_string(&object, "kind")? {
        Some(REQUEST_KIND) => {}
        Some(other) => {
            return Err(ProtocolError::Kind {
                found: quoted_short(other),
            });
        }
        None => {
            return Err(ProtocolError::Kind {
                found: "missing".to_owned(),
            });
        }
    }
    let api_version = match optional_string(&object, "apiVersion")? {
        Some(v) if API_VERSIONS.contains(&v) => v.to_owned(),
        Some(other) => {
            return Err(ProtocolError::ApiVersion {
                found: quoted_short(other),
            });
        }
        None => {
            return Err(ProtocolError::ApiVersion {
                found: "missing".to_owned(),
            });
        }
    };
    let image = match optional_string(&object, "image")? {
        Some(image) if !image.trim().is_empty() => image.to_owned(),
        _ => return Err(ProtocolError::EmptyImage),
    };
    let service_account_token = optional_string(&object, "serviceAccountToken")?
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    let mut service_account_annotations = BTreeMap::new();
    match object.get("serviceAccountAnnotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                match value {
                    Value::String(v) => {
                        service_account_annotations.insert(key.clone(), v.clone());
                    }
                    other => {
                        return Err(ProtocolError::FieldType {
                            field: format!("serviceAccountAnnotations[{}]", quoted_short(key)),
                            expected: "a string",
                            found: json_type(other),
                        });
                    }
                }
            }
        }
        Some(other) => {
            return Err(ProtocolError::FieldType {
                field: "serviceAccountAnnotations".to_owned(),
                expected: "an object of strings",
                found: json_type(other),
            });
        }
    }
    Ok(Request {
        api_version,
        image,
        service_account_token,
        service_account_annotations,
    })
}

/// `cacheKeyType`: what the kubelet keys the returned credential by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CacheKeyType {
    /// The image: one credential per image.
    Image,
    /// The registry host (irsa's answer: a registry token is good for the whole registry).
    Registry,
    /// Every image the provider matches.
    Global,
}

/// One `auth` entry: the Go type `AuthConfig`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The registry user name.
    pub username: String,
    /// The registry password.
    pub password: SecretString,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// A `CredentialProviderResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's `apiVersion`, echoed.
    pub api_version: String,
    /// What the kubelet keys the credential by.
    pub cache_key_type: CacheKeyType,
    /// How long the kubelet may keep the credential; `None` leaves it to the config's
    /// `defaultCacheDuration`.
    pub cache_duration: Option<Duration>,
    /// Credentials by registry host, exactly as the kubelet matches it against the image (with
    /// the port, when the image names one). Empty: irsa has nothing for this image.
    pub auth: BTreeMap<String, AuthConfig>,
}

#[derive(Serialize)]
struct WireAuth<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    kind: &'static str,
    api_version: &'a str,
    cache_key_type: CacheKeyType,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_duration: Option<String>,
    auth: BTreeMap<&'a str, WireAuth<'a>>,
}

impl Response {
    /// The JSON the kubelet reads on stdout (it holds passwords: write it to stdout only).
    pub fn render(&self) -> SecretString {
        let wire = WireResponse {
            kind: RESPONSE_KIND,
            api_version: &self.api_version,
            cache_key_type: self.cache_key_type,
            cache_duration: self.cache_duration.map(go_duration),
            auth: self
                .auth
                .iter()
                .map(|(host, a)| {
                    (
                        host.as_str(),
                        WireAuth {
                            username: &a.username,
                            password: a.password.expose(),
                        },
                    )
                })
                .collect(),
        };
        // Serializing strings and maps of strings cannot fail.
        SecretString::new(serde_json::to_string(&wire).unwrap_or_default())
    }
}

/// A duration as Go's `time.Duration.String()` writes it, in whole seconds (`0s`, `45s`,
/// `1m30s`, `11h59m0s`): the form `metav1.Duration` round-trips. Sub-second parts are dropped
/// (the kubelet's cache works in seconds).
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> String {
        format!(
            r#"{{"kind":"CredentialProviderRequest","apiVersion":"{API_VERSION_V1}","image":"111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1"{extra}}}"#
        )
    }

    #[test]
    fn decodes_a_kubelet_request_with_token_and_annotations() {
        let r = decode_request(
            request(r#","serviceAccountToken":"eyJ.secret.token","serviceAccountAnnotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/puller"},"futureField":1"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.api_version, API_VERSION_V1);
        assert_eq!(
            r.image,
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1"
        );
        assert_eq!(
            r.service_account_token.as_ref().map(|t| t.expose()),
            Some("eyJ.secret.token")
        );
        assert_eq!(r.service_account_annotations.len(), 1);
        assert!(!format!("{r:?}").contains("secret"), "{r:?}");
        let plain = decode_request(request("").as_bytes()).unwrap();
        assert_eq!(plain.service_account_token, None);
        let empty_token =
            decode_request(request(r#","serviceAccountToken":"""#).as_bytes()).unwrap();
        assert_eq!(
            empty_token.service_account_token, None,
            "an empty token is no token"
        );
        for v in API_VERSIONS {
            let text =
                format!(r#"{{"kind":"CredentialProviderRequest","apiVersion":"{v}","image":"x"}}"#);
            assert_eq!(decode_request(text.as_bytes()).unwrap().api_version, v);
        }
    }

    #[test]
    fn refusals_name_the_field_and_never_echo_the_token() {
        let token = "eyJhbGciOiJSUzI1NiJ9.TOKEN-BODY.SIG";
        let table: Vec<(String, &str)> = vec![
            (String::new(), "no request on stdin"),
            ("  \n".into(), "no request on stdin"),
            ("{".into(), "not JSON (unexpected end of input at line 1"),
            ("garbage".into(), "not JSON (syntax error at line 1, column 1)"),
            ("\u{1}\u{2}binary".into(), "not JSON (syntax error"),
            ("[]".into(), "is a JSON array, not a CredentialProviderRequest"),
            (r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x"}"#.into(), "field kind of the request is missing"),
            (r#"{"kind":"ExecCredential","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x"}"#.into(), "field kind of the request is \"ExecCredential\""),
            (r#"{"kind":"CredentialProviderRequest","image":"x"}"#.into(), "field apiVersion of the request is missing"),
            (r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v2","image":"x"}"#.into(), "field apiVersion of the request is \"credentialprovider.kubelet.k8s.io/v2\""),
            (r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}"#.into(), "field image of the request is missing or empty"),
            (request("").replace("111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1", " "), "field image of the request is missing or empty"),
            (r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":7}"#.into(), "field image of the request must be a string, not a JSON number"),
            (request(&format!(r#","serviceAccountToken":["{token}"]"#)), "field serviceAccountToken of the request must be a string, not a JSON array"),
            (request(&format!(r#","serviceAccountAnnotations":"{token}""#)), "field serviceAccountAnnotations of the request must be an object of strings, not a JSON string"),
            (request(&format!(r#","serviceAccountAnnotations":{{"k":{{"t":"{token}"}}}}"#)), "field serviceAccountAnnotations[\"k\"] of the request must be a string, not a JSON object"),
            (format!(r#"{{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x","serviceAccountToken":"{token}""#), "unexpected end of input"),
        ];
        for (input, want) in table {
            let err = decode_request(input.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
            assert!(!err.contains("TOKEN-BODY"), "{input:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(
            decode_request(&huge)
                .unwrap_err()
                .to_string()
                .contains("at most 1 MiB")
        );
        let long_kind = format!(
            r#"{{"kind":"{}","apiVersion":"v","image":"x"}}"#,
            "k".repeat(10_000)
        );
        assert!(
            decode_request(long_kind.as_bytes())
                .unwrap_err()
                .to_string()
                .len()
                < 300
        );
    }

    #[test]
    fn go_durations_read_as_go_writes_them() {
        for (secs, want) in [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m0s"),
            (90, "1m30s"),
            (3600, "1h0m0s"),
            (3661, "1h1m1s"),
            (43_199, "11h59m59s"),
            (6 * 3600, "6h0m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_secs(secs)), want, "{secs}");
        }
        assert_eq!(go_duration(Duration::from_millis(1500)), "1s");
    }

    /// The bytes the kubelet's strict decoder reads: the field names of the Go types
    /// `CredentialProviderResponse` (`kind`, `apiVersion`, `cacheKeyType`, `cacheDuration`,
    /// `auth`) and `AuthConfig` (`username`, `password`), nothing else.
    #[test]
    fn the_response_bytes_use_the_go_field_names_only() {
        let mut auth = BTreeMap::new();
        auth.insert(
            "111122223333.dkr.ecr.us-east-1.amazonaws.com:5000".to_owned(),
            AuthConfig {
                username: "AWS".into(),
                password: SecretString::from("pass\"word"),
            },
        );
        let r = Response {
            api_version: "credentialprovider.kubelet.k8s.io/v1beta1".into(),
            cache_key_type: CacheKeyType::Registry,
            cache_duration: Some(Duration::from_secs(6 * 3600)),
            auth,
        };
        assert_eq!(
            r.render().expose(),
            r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","cacheKeyType":"Registry","cacheDuration":"6h0m0s","auth":{"111122223333.dkr.ecr.us-east-1.amazonaws.com:5000":{"username":"AWS","password":"pass\"word"}}}"#
        );
        assert!(!format!("{r:?}").contains("pass\"word"));
        let none = Response {
            api_version: API_VERSION_V1.into(),
            cache_key_type: CacheKeyType::Registry,
            cache_duration: None,
            auth: BTreeMap::new(),
        };
        assert_eq!(
            none.render().expose(),
            r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{}}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_request(&bytes);
        }
    }
}
