//! Docker registry credentials in the `config.json` format: the `.dockerconfigjson` key of a
//! `kubernetes.io/dockerconfigjson` Secret, what `kubectl create secret docker-registry` writes
//! and what the kubelet, containerd, skopeo and Argo CD read.
//!
//! ```json
//! {"auths":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":{"auth":"QVdTOi4uLg==","password":"...","username":"AWS"}}}
//! ```
//!
//! [`DockerConfig::render`] writes `username`, `password` and `auth` (base64 of
//! `username:password`) for every registry, since readers differ in which they look at.
//! [`DockerConfig::parse`] accepts either form and checks they agree.
//!
//! Passwords are [`SecretString`]s from end to end: rendering produces a `SecretString`, parsing
//! never copies a password into a plain `String`, and no error message contains a password or an
//! `auth` value (errors name the registry key and the field instead).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// Largest document [`DockerConfig::parse`] reads: 1 MiB, the size limit of a Kubernetes Secret.
pub const MAX_DOCKER_CONFIG_LEN: usize = 1024 * 1024;

/// Standard alphabet, padding optional: Docker writes padded `auth` values, but some hand-made
/// configs drop the padding and the kubelet's Go decoder is not what users test against.
const AUTH_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The user name (for ECR always `AWS`).
    pub username: String,
    /// The password or registry token.
    pub password: SecretString,
}

impl RegistryAuth {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    /// The docker `auth` value: standard base64 of `username:password`.
    pub fn auth(&self) -> SecretString {
        let plain = Zeroizing::new(format!("{}:{}", self.username, self.password.expose()));
        SecretString::new(STANDARD.encode(plain.as_bytes()))
    }
}

/// A docker `config.json` reduced to what a pull secret holds: credentials per registry key.
///
/// Registry keys are kept exactly as written (`registry.example.com`,
/// `https://index.docker.io/v1/`, `ghcr.io/org`); matching an image to a key is the reader's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    /// Credentials by registry key, sorted.
    pub auths: BTreeMap<String, RegistryAuth>,
}

/// Why a docker config could not be read. Never contains a password or an `auth` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    /// The document is larger than [`MAX_DOCKER_CONFIG_LEN`].
    #[error("invalid docker config: it is {len} bytes; at most {max} bytes are accepted")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not JSON.
    #[error("invalid docker config: not valid JSON at line {line} column {column}: {problem}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The syntax problem (never a value from the document).
        problem: String,
    },
    /// A value has the wrong JSON type.
    #[error("invalid docker config: {field} must be {expected}, not {found}")]
    WrongType {
        /// Where, e.g. `auths["ghcr.io"].password`.
        field: String,
        /// The JSON type expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// The top-level `auths` object is missing.
    #[error(
        "invalid docker config: the top-level \"auths\" object is missing{hint}; a \
         .dockerconfigjson looks like {{\"auths\":{{\"<registry>\":{{\"auth\":\"…\"}}}}}}"
    )]
    MissingAuths {
        /// Extra guidance, e.g. that the input looks like the legacy `.dockercfg` format.
        hint: &'static str,
    },
    /// A key appears twice in the same object (JSON readers disagree on which copy wins).
    #[error("invalid docker config: {within} has the key {key:?} twice; keep one")]
    DuplicateKey {
        /// The object: `auths` or `the top-level object`.
        within: &'static str,
        /// The repeated key, e.g. a registry key.
        key: String,
    },
    /// An entry has neither `auth` nor `username` and `password`.
    #[error(
        "invalid docker config: auths[{registry:?}] has no credentials: set \"auth\" \
         (base64 of \"username:password\") or \"username\" and \"password\"{missing}"
    )]
    MissingCredentials {
        /// The registry key.
        registry: String,
        /// Which of `username` / `password` is missing, if one is present.
        missing: &'static str,
    },
    /// `auth` is not valid standard base64.
    #[error(
        "invalid docker config: auths[{registry:?}].auth is not valid base64; it must be the \
         standard base64 of \"username:password\""
    )]
    AuthNotBase64 {
        /// The registry key.
        registry: String,
    },
    /// `auth` decodes to bytes that are not UTF-8.
    #[error(
        "invalid docker config: auths[{registry:?}].auth does not decode to UTF-8 text; it \
         must be the base64 of \"username:password\""
    )]
    AuthNotUtf8 {
        /// The registry key.
        registry: String,
    },
    /// `auth` decodes to text without a `:`.
    #[error(
        "invalid docker config: auths[{registry:?}].auth has no ':' after decoding; it must be \
         the base64 of \"username:password\""
    )]
    AuthMissingColon {
        /// The registry key.
        registry: String,
    },
    /// `auth` and `username`/`password` are both present and disagree.
    #[error(
        "invalid docker config: auths[{registry:?}].auth disagrees with auths[{registry:?}].{field}; \
         remove one or make them match"
    )]
    AuthMismatch {
        /// The registry key.
        registry: String,
        /// `username` or `password`.
        field: &'static str,
    },
}

impl DockerConfig {
    /// An empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the credentials for a registry key, replacing any already there.
    pub fn insert(
        &mut self,
        registry: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
    ) {
        self.auths
            .insert(registry.into(), RegistryAuth::new(username, password));
    }

    /// The credentials for a registry key, if any.
    pub fn get(&self, registry: &str) -> Option<&RegistryAuth> {
        self.auths.get(registry)
    }

    /// Number of registries.
    pub fn len(&self) -> usize {
        self.auths.len()
    }

    /// Whether there are no registries.
    pub fn is_empty(&self) -> bool {
        self.auths.is_empty()
    }

    /// JSON `{"auths":{"<registry>":{"auth":…,"password":…,"username":…}}}`: compact, object keys
    /// sorted, so equal configs render to equal bytes (the controller compares them to skip
    /// no-op writes). The result holds secrets, so it is a [`SecretString`].
    pub fn render(&self) -> SecretString {
        // Reserve the worst case up front (every byte escaped as \u00XX) so the buffer never
        // reallocates and leaves unzeroized copies of passwords behind.
        let capacity = 16
            + self
                .auths
                .iter()
                .map(|(k, a)| {
                    let raw = k.len() + a.username.len() + a.password.len();
                    6 * raw + 4 * (a.username.len() + a.password.len() + 3) / 3 + 64
                })
                .sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        out.push_str("{\"auths\":{");
        for (i, (registry, auth)) in self.auths.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, registry);
            out.push_str(":{\"auth\":\"");
            let plain = Zeroizing::new(format!("{}:{}", auth.username, auth.password.expose()));
            STANDARD.encode_string(plain.as_bytes(), &mut out);
            out.push_str("\",\"password\":");
            push_json_str(&mut out, auth.password.expose());
            out.push_str(",\"username\":");
            push_json_str(&mut out, &auth.username);
            out.push('}');
        }
        out.push_str("}}");
        SecretString::new(std::mem::take(&mut *out))
    }

    /// Reads a `.dockerconfigjson` document (`{"auths":{…}}`).
    ///
    /// Each entry needs `auth` (standard base64 of `username:password`, split at the first `:`,
    /// padding optional) or `username` and `password`; when both are present they must agree.
    /// An empty `auth` or a `null` field counts as absent, as in Docker. Other fields (`email`,
    /// `identitytoken`, `registrytoken`, …) and other top-level keys (`credsStore`,
    /// `credHelpers`, …) are ignored. A registry key given twice is an error, because JSON
    /// readers disagree on which copy wins.
    ///
    /// The legacy `.dockercfg` form, whose top-level object *is* the auths map, is rejected
    /// here with a hint: it belongs to `kubernetes.io/dockercfg` Secrets; read it with
    /// [`DockerConfig::parse_legacy`].
    pub fn parse(json: &[u8]) -> Result<DockerConfig, DockerConfigError> {
        let top = read_json(json, TopSeed)?;
        let top = match top {
            Json::Value(top) => top,
            Json::Other(found) => {
                return Err(DockerConfigError::WrongType {
                    field: "the document".into(),
                    expected: "an object",
                    found,
                });
            }
        };
        if top.duplicate_auths {
            return Err(DockerConfigError::DuplicateKey {
                within: "the top-level object",
                key: "auths".into(),
            });
        }
        match top.auths {
            Some(Json::Value(auths)) => auths_to_config(auths),
            Some(Json::Other(found)) => Err(DockerConfigError::WrongType {
                field: "auths".into(),
                expected: "an object",
                found,
            }),
            None => Err(DockerConfigError::MissingAuths {
                hint: if top.looks_legacy {
                    " (this looks like the legacy .dockercfg format, which has no \"auths\" \
                     wrapper; wrap it as {\"auths\":…})"
                } else {
                    ""
                },
            }),
        }
    }

    /// Reads a legacy `.dockercfg` document (the `kubernetes.io/dockercfg` Secret type): the
    /// top-level object maps registry keys to entries, with the same entry rules as
    /// [`DockerConfig::parse`].
    pub fn parse_legacy(json: &[u8]) -> Result<DockerConfig, DockerConfigError> {
        match read_json(json, AuthsSeed)? {
            Json::Value(auths) => auths_to_config(auths),
            Json::Other(found) => Err(DockerConfigError::WrongType {
                field: "the document".into(),
                expected: "an object",
                found,
            }),
        }
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                // Write the escape digit by digit: `format!` would allocate a temporary.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn read_json<'de, S>(json: &'de [u8], seed: S) -> Result<S::Value, DockerConfigError>
where
    S: DeserializeSeed<'de>,
{
    if json.len() > MAX_DOCKER_CONFIG_LEN {
        return Err(DockerConfigError::TooLarge {
            len: json.len(),
            max: MAX_DOCKER_CONFIG_LEN,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| {
        // Our visitors accept every JSON type, so only syntax errors reach here, and their
        // messages are fixed text. Anything else is reported without serde's message, which could
        // quote a value.
        let problem = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                let msg = e.to_string();
                match msg.rfind(" at line ") {
                    Some(i) => msg[..i].to_owned(),
                    None => msg,
                }
            }
            _ => "unexpected content".to_owned(),
        };
        DockerConfigError::Json {
            line: e.line(),
            column: e.column(),
            problem,
        }
    })
}

fn auths_to_config(
    entries: Vec<(String, Json<RawEntry>)>,
) -> Result<DockerConfig, DockerConfigError> {
    let mut auths = BTreeMap::new();
    for (registry, entry) in entries {
        let auth = match entry {
            Json::Value(raw) => raw.into_auth(&registry)?,
            Json::Other(found) => {
                return Err(DockerConfigError::WrongType {
                    field: format!("auths[{registry:?}]"),
                    expected: "an object",
                    found,
                });
            }
        };
        match auths.entry(registry) {
            Entry::Vacant(v) => {
                v.insert(auth);
            }
            Entry::Occupied(o) => {
                return Err(DockerConfigError::DuplicateKey {
                    within: "auths",
                    key: o.key().clone(),
                });
            }
        }
    }
    Ok(DockerConfig { auths })
}

/// Registry entries in document order, duplicates included (they are rejected later).
type RawAuths = Vec<(String, Json<RawEntry>)>;

/// A JSON value of the expected shape, or the name of the JSON type found instead.
enum Json<T> {
    Value(T),
    Other(&'static str),
}

/// The top-level object: the `auths` value if present, and whether the document looks like the
/// legacy format (some value is an object with an `auth` or `username` field).
struct Top {
    auths: Option<Json<RawAuths>>,
    duplicate_auths: bool,
    looks_legacy: bool,
}

/// One entry's fields as written, before validation. Strings that may hold secrets are
/// [`SecretString`]s from the moment they leave the parser.
#[derive(Default)]
struct RawEntry {
    auth: Option<Json<SecretString>>,
    username: Option<Json<SecretString>>,
    password: Option<Json<SecretString>>,
}

impl RawEntry {
    fn into_auth(self, registry: &str) -> Result<RegistryAuth, DockerConfigError> {
        let field = |name: &'static str, v: Option<Json<SecretString>>| match v {
            Some(Json::Value(s)) => Ok(Some(s)),
            Some(Json::Other("null")) | None => Ok(None),
            Some(Json::Other(found)) => Err(DockerConfigError::WrongType {
                field: format!("auths[{registry:?}].{name}"),
                expected: "a string",
                found,
            }),
        };
        let auth = field("auth", self.auth)?.filter(|a| !a.is_empty());
        let username = field("username", self.username)?;
        let password = field("password", self.password)?;

        let from_auth = auth
            .map(|a| decode_auth(registry, a.expose()))
            .transpose()?;
        match (from_auth, username, password) {
            (Some(decoded), username, password) => {
                if username.is_some_and(|u| u.expose() != decoded.username) {
                    return Err(DockerConfigError::AuthMismatch {
                        registry: registry.to_owned(),
                        field: "username",
                    });
                }
                if password.is_some_and(|p| p != decoded.password) {
                    return Err(DockerConfigError::AuthMismatch {
                        registry: registry.to_owned(),
                        field: "password",
                    });
                }
                Ok(decoded)
            }
            (None, Some(username), Some(password)) => Ok(RegistryAuth {
                username: username.expose().to_owned(),
                password,
            }),
            (None, username, password) => Err(DockerConfigError::MissingCredentials {
                registry: registry.to_owned(),
                missing: match (username.is_some(), password.is_some()) {
                    (true, false) => " (\"password\" is missing)",
                    (false, true) => " (\"username\" is missing)",
                    _ => "",
                },
            }),
        }
    }
}

fn decode_auth(registry: &str, auth: &str) -> Result<RegistryAuth, DockerConfigError> {
    // The decode error is dropped: its message quotes an offending byte of the secret.
    let bytes = Zeroizing::new(AUTH_DECODER.decode(auth).map_err(|_| {
        DockerConfigError::AuthNotBase64 {
            registry: registry.to_owned(),
        }
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| DockerConfigError::AuthNotUtf8 {
        registry: registry.to_owned(),
    })?;
    let (username, password) =
        text.split_once(':')
            .ok_or_else(|| DockerConfigError::AuthMissingColon {
                registry: registry.to_owned(),
            })?;
    Ok(RegistryAuth {
        username: username.to_owned(),
        password: SecretString::from(password),
    })
}

/// Names a JSON type for error messages.
fn type_name(unexpected: de::Unexpected<'_>) -> &'static str {
    match unexpected {
        de::Unexpected::Bool(_) => "a boolean",
        de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => {
            "a number"
        }
        de::Unexpected::Str(_) => "a string",
        de::Unexpected::Unit => "null",
        de::Unexpected::Seq => "an array",
        de::Unexpected::Map => "an object",
        _ => "an unexpected value",
    }
}

/// Implements every non-map `visit_*` of a visitor producing `Json<T>` as `Json::Other`.
macro_rules! other_types {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Json::Other(type_name(de::Unexpected::Bool(v))))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Json::Other(type_name(de::Unexpected::Signed(v))))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Json::Other(type_name(de::Unexpected::Unsigned(v))))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Json::Other(type_name(de::Unexpected::Float(v))))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Json::Other("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Json::Other("null"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Json::Other("an array"))
        }
    };
}

struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Json<Top>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Json<Top>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a docker config object")
    }
    other_types!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = Top {
            auths: None,
            duplicate_auths: false,
            looks_legacy: false,
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == "auths" {
                top.duplicate_auths |= top.auths.is_some();
                top.auths = Some(map.next_value_seed(AuthsSeed)?);
            } else {
                // Only to word the "missing auths" error; the value is parsed and dropped.
                if let Json::Value(entry) = map.next_value_seed(EntrySeed)? {
                    top.looks_legacy |= entry.auth.is_some() || entry.username.is_some();
                }
            }
        }
        Ok(Json::Value(top))
    }
}

struct AuthsSeed;

impl<'de> DeserializeSeed<'de> for AuthsSeed {
    type Value = Json<RawAuths>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AuthsSeed {
    type Value = Json<RawAuths>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of registry entries")
    }
    other_types!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value_seed(EntrySeed)?));
        }
        Ok(Json::Value(entries))
    }
}

struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Json<RawEntry>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Json<RawEntry>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a registry entry object")
    }
    other_types!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entry = RawEntry::default();
        while let Some(key) = map.next_key::<String>()? {
            // A repeated field: the last one wins for `auth`/`username`/`password` alike,
            // and agreement between them is still checked.
            let slot = match key.as_str() {
                "auth" => &mut entry.auth,
                "username" => &mut entry.username,
                "password" => &mut entry.password,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value_seed(SecretSeed)?);
        }
        Ok(Json::Value(entry))
    }
}

/// A string read straight into a [`SecretString`], or the type found instead.
struct SecretSeed;

impl<'de> DeserializeSeed<'de> for SecretSeed {
    type Value = Json<SecretString>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SecretSeed {
    type Value = Json<SecretString>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Json::Other("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Json::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Json::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Json::Other("a number"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Value(SecretString::from(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Value(SecretString::new(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Json::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_json_str_escapes_quotes_backslashes_and_controls() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }
}
