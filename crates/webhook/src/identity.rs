//! What the webhook knows about a pod's service account, from its three sources: the
//! account's annotations, the `pod-identity-webhook` ConfigMap and the container-credentials
//! file; and how upstream merges them into one decision.
//!
//! Everything here was written by a tenant (annotations, ConfigMap data) or an operator (the
//! file): values that do not parse are ignored as upstream ignores them, never a panic.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::config::{
    AUDIENCE_ANNOTATION, Config, DEFAULT_TOKEN_EXPIRATION, MAX_ANNOTATION_VALUE,
    REGIONAL_STS_ANNOTATION, ROLE_ARN_ANNOTATION, TOKEN_EXPIRATION_ANNOTATION, clamp_expiration,
};

/// What is known about the pod's service account when its pod is admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    /// The account's annotations, or `None` when the account was not found.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Its entry in the `pod-identity-webhook` ConfigMap (`--watch-config-map`), if any.
    pub config_map: Option<ConfigMapEntry>,
    /// Listed in `--watch-container-credentials-config`: Pod Identity mode, which wins.
    pub pod_identity: bool,
}

impl ServiceAccountInfo {
    /// A found service account with these annotations and nothing else.
    pub fn annotated<K: Into<String>, V: Into<String>>(
        annotations: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            annotations: Some(
                annotations
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            ..Self::default()
        }
    }
}

/// One `"namespace/name"` entry of the ConfigMap's `config` key (upstream's field names,
/// matched case-insensitively as Go's `encoding/json` does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapEntry {
    /// `RoleARN`; empty means no injection.
    pub role_arn: String,
    /// `Audience`; empty means `--token-audience`.
    pub audience: String,
    /// `UseRegionalSTS`.
    pub use_regional_sts: bool,
    /// `TokenExpiration` in seconds; 0 means `--token-expiration`.
    pub token_expiration: i64,
}

/// The ConfigMap's `config` value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigMapError {
    /// Not JSON, or not an object of objects.
    #[error(
        "invalid ConfigMap pod-identity-webhook key config: {0}; expected {{\"<namespace>/<serviceaccount>\": {{\"RoleARN\": \"arn:aws:iam::<account>:role/<name>\", ...}}}}"
    )]
    Invalid(String),
}

/// Parse the ConfigMap's `config` value into entries keyed by `(namespace, name)`. Keys
/// without a `/` are skipped (upstream would crash on them).
pub fn parse_config_map(
    data: &str,
) -> Result<BTreeMap<(String, String), ConfigMapEntry>, ConfigMapError> {
    let value: Value =
        serde_json::from_str(data).map_err(|e| ConfigMapError::Invalid(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(ConfigMapError::Invalid("not a JSON object".into()));
    };
    let mut out = BTreeMap::new();
    for (key, entry) in map {
        let Value::Object(fields) = entry else {
            return Err(ConfigMapError::Invalid(format!(
                "the value of {key:?} is not an object"
            )));
        };
        let mut parsed = ConfigMapEntry::default();
        for (field, v) in fields {
            match (field.to_ascii_lowercase().as_str(), v) {
                ("rolearn", Value::String(s)) => parsed.role_arn = s,
                ("audience", Value::String(s)) => parsed.audience = s,
                ("useregionalsts", Value::Bool(b)) => parsed.use_regional_sts = b,
                ("tokenexpiration", Value::Number(n)) => {
                    parsed.token_expiration = n.as_i64().ok_or_else(|| {
                        ConfigMapError::Invalid(format!(
                            "TokenExpiration of {key:?} is not an integer"
                        ))
                    })?
                }
                ("rolearn" | "audience" | "useregionalsts" | "tokenexpiration", _) => {
                    return Err(ConfigMapError::Invalid(format!(
                        "field {field} of {key:?} has the wrong type"
                    )));
                }
                _ => {}
            }
        }
        let Some((ns, name)) = key.split_once('/') else {
            continue;
        };
        out.insert((ns.to_owned(), name.to_owned()), parsed);
    }
    Ok(out)
}

/// The container-credentials file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContainerCredentialsError {
    /// Not the expected JSON document.
    #[error(
        "invalid container credentials config: {0}; expected {{\"identities\": [{{\"namespace\": \"<namespace>\", \"serviceAccount\": \"<name>\"}}]}}"
    )]
    Invalid(String),
}

/// Parse `--watch-container-credentials-config`: the `(namespace, serviceAccount)` pairs in
/// Pod Identity mode. An empty file means none, as upstream.
pub fn parse_container_credentials(
    data: &[u8],
) -> Result<HashSet<(String, String)>, ContainerCredentialsError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashSet::new());
    }
    let value: Value = serde_json::from_slice(data)
        .map_err(|e| ContainerCredentialsError::Invalid(e.to_string()))?;
    let invalid = |m: &str| ContainerCredentialsError::Invalid(m.to_owned());
    let Value::Object(top) = value else {
        return Err(invalid("not a JSON object"));
    };
    let mut out = HashSet::new();
    let identities = top
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("identities"))
        .map(|(_, v)| v);
    let items = match identities {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("identities is not a list")),
    };
    for item in items {
        let Value::Object(fields) = item else {
            return Err(invalid("an identity is not an object"));
        };
        let (mut ns, mut sa) = (String::new(), String::new());
        for (k, v) in fields {
            let target = match k.to_ascii_lowercase().as_str() {
                "namespace" => &mut ns,
                "serviceaccount" => &mut sa,
                _ => continue,
            };
            match v {
                Value::String(s) => *target = s,
                _ => return Err(invalid(&format!("{k} is not a string"))),
            }
        }
        out.insert((ns, sa));
    }
    Ok(out)
}

/// Go's `strconv.ParseBool`, which upstream uses for `sts-regional-endpoints`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits, nothing else.
pub(crate) fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// How a pod gets its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// IRSA: `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`.
    WebIdentity {
        /// The role to assume.
        role_arn: String,
    },
    /// EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_FULL_URI` and its token file.
    PodIdentity {
        /// The agent's URI.
        full_uri: String,
    },
}

/// Everything the mutation needs, merged from flags, service account, ConfigMap and pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Which credentials.
    pub mode: Mode,
    /// Audience of the projected token.
    pub audience: String,
    /// Add `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub regional_sts: bool,
    /// Token lifetime before the pod's own annotation (applied by the mutation).
    pub token_expiration: i64,
    /// Volume (and mount) name.
    pub volume_name: String,
    /// Mount path.
    pub mount_path: String,
    /// File name inside the volume.
    pub token_path: String,
}

/// The account's settings from its annotations, with the flags as defaults (upstream's cache
/// entry). `None` when the account was not found.
struct AnnotationEntry {
    role_arn: String,
    audience: String,
    regional_sts: bool,
    token_expiration: i64,
}

fn annotation_entry(sa: &ServiceAccountInfo, config: &Config) -> Option<AnnotationEntry> {
    let ann = sa.annotations.as_ref()?;
    // Tenant-written: a value longer than any valid one is ignored rather than copied into
    // every container's patch.
    let get = |name: &str| {
        ann.get(&config.annotation(name))
            .map(String::as_str)
            .filter(|v| v.len() <= MAX_ANNOTATION_VALUE)
    };
    Some(AnnotationEntry {
        role_arn: get(ROLE_ARN_ANNOTATION).unwrap_or_default().to_owned(),
        audience: get(AUDIENCE_ANNOTATION)
            .unwrap_or(&config.token_audience)
            .to_owned(),
        regional_sts: get(REGIONAL_STS_ANNOTATION)
            .and_then(parse_go_bool)
            .unwrap_or(config.sts_regional_endpoints),
        token_expiration: get(TOKEN_EXPIRATION_ANNOTATION)
            .and_then(parse_go_int)
            .map(clamp_expiration)
            .unwrap_or(config.token_expiration),
    })
}

fn config_map_expiration(entry: &ConfigMapEntry, config: &Config) -> i64 {
    if entry.token_expiration == 0 {
        config.token_expiration
    } else {
        clamp_expiration(entry.token_expiration)
    }
}

/// Decide whether and how to inject, as upstream does: Pod Identity mode for listed accounts
/// (regional STS and lifetime still from the account or ConfigMap); otherwise the account's
/// `role-arn` annotation; otherwise the ConfigMap's `RoleARN`; otherwise nothing.
pub fn plan(sa: &ServiceAccountInfo, config: &Config) -> Option<Plan> {
    let from_annotations = annotation_entry(sa, config);
    if sa.pod_identity {
        let cc = &config.container_credentials;
        let (regional_sts, token_expiration) = match (&from_annotations, &sa.config_map) {
            (Some(e), _) => (e.regional_sts, e.token_expiration),
            (None, Some(cm)) => (cm.use_regional_sts, config_map_expiration(cm, config)),
            (None, None) => (false, DEFAULT_TOKEN_EXPIRATION),
        };
        return Some(Plan {
            mode: Mode::PodIdentity {
                full_uri: cc.full_uri.clone(),
            },
            audience: cc.audience.clone(),
            regional_sts,
            token_expiration,
            volume_name: cc.volume_name.clone(),
            mount_path: cc.mount_path.clone(),
            token_path: cc.token_path.clone(),
        });
    }
    let web_identity = |role_arn: String, audience: String, regional_sts, token_expiration| Plan {
        mode: Mode::WebIdentity { role_arn },
        audience,
        regional_sts,
        token_expiration,
        volume_name: crate::config::TOKEN_VOLUME_NAME.into(),
        mount_path: config.token_mount_path.clone(),
        token_path: crate::config::TOKEN_PATH.into(),
    };
    if let Some(e) = from_annotations.filter(|e| !e.role_arn.is_empty()) {
        return Some(web_identity(
            e.role_arn,
            e.audience,
            e.regional_sts,
            e.token_expiration,
        ));
    }
    let cm = sa
        .config_map
        .as_ref()
        .filter(|cm| !cm.role_arn.is_empty())?;
    let audience = if cm.audience.is_empty() {
        config.token_audience.clone()
    } else {
        cm.audience.clone()
    };
    Some(web_identity(
        cm.role_arn.clone(),
        audience,
        cm.use_regional_sts,
        config_map_expiration(cm, config),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_and_int_parse_as_go_does() {
        for (s, b) in [("true", Some(true)), ("T", Some(true)), ("1", Some(true))] {
            assert_eq!(parse_go_bool(s), b, "{s}");
        }
        for (s, b) in [
            ("False", Some(false)),
            ("0", Some(false)),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(parse_go_bool(s), b, "{s}");
        }
        for (s, n) in [
            ("3600", Some(3600)),
            ("+5", Some(5)),
            ("-5", Some(-5)),
            (" 5", None),
            ("5s", None),
            ("", None),
            ("-", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_go_int(s), n, "{s}");
        }
    }

    #[test]
    fn config_map_entries_parse_case_insensitively_and_refuse_wrong_types() {
        let m = parse_config_map(
            r#"{"ns/sa": {"RoleARN": "arn:aws:iam::111122223333:role/r", "audience": "a", "UseRegionalSTS": true, "TokenExpiration": 1200}, "nokey": {}}"#,
        )
        .unwrap();
        assert_eq!(
            m[&("ns".into(), "sa".into())],
            ConfigMapEntry {
                role_arn: "arn:aws:iam::111122223333:role/r".into(),
                audience: "a".into(),
                use_regional_sts: true,
                token_expiration: 1200
            }
        );
        assert_eq!(m.len(), 1);
        let err = parse_config_map(r#"{"ns/sa": {"RoleARN": 5}}"#).unwrap_err();
        assert!(err.to_string().contains("RoleARN"), "{err}");
        assert!(parse_config_map("[").is_err());
        assert!(parse_config_map("[]").is_err());
    }

    #[test]
    fn container_credentials_file_parses_and_empty_means_none() {
        let ids = parse_container_credentials(
            br#"{"identities":[{"namespace":"ns","serviceAccount":"sa"},{"namespace":"b","serviceAccount":"c"}]}"#,
        )
        .unwrap();
        assert!(ids.contains(&("ns".into(), "sa".into())));
        assert_eq!(ids.len(), 2);
        assert!(parse_container_credentials(b"").unwrap().is_empty());
        assert!(parse_container_credentials(b" \n").unwrap().is_empty());
        assert!(parse_container_credentials(b"{}").unwrap().is_empty());
        assert!(parse_container_credentials(b"{\"identities\": 3}").is_err());
        assert!(parse_container_credentials(b"\xff").is_err());
    }

    #[test]
    fn an_oversized_role_arn_or_audience_counts_as_absent() {
        // The API-server lookup on a cache miss hands over every annotation, any size.
        let config = Config::default();
        let huge = "a".repeat(200_000);
        assert!(plan(&prefixed(&[("role-arn", &huge)]), &config).is_none());
        let p = plan(
            &prefixed(&[
                ("role-arn", "arn:aws:iam::111122223333:role/r"),
                ("audience", &huge),
            ]),
            &config,
        )
        .unwrap();
        assert_eq!(p.audience, config.token_audience);
    }

    fn prefixed(pairs: &[(&str, &str)]) -> ServiceAccountInfo {
        ServiceAccountInfo::annotated(
            pairs
                .iter()
                .map(|(k, v)| (format!("eks.amazonaws.com/{k}"), v.to_string())),
        )
    }

    #[test]
    fn precedence_of_annotations_flags_and_config_map() {
        let config = Config {
            sts_regional_endpoints: true,
            token_expiration: 7200,
            ..Config::default()
        };
        // Annotations override flags, both ways for regional STS; minimum 600.
        let p = plan(
            &prefixed(&[
                ("role-arn", "arn:aws:iam::111122223333:role/a"),
                ("audience", "custom"),
                ("sts-regional-endpoints", "false"),
                ("token-expiration", "100"),
            ]),
            &config,
        )
        .unwrap();
        assert_eq!(p.audience, "custom");
        assert!(!p.regional_sts);
        assert_eq!(p.token_expiration, 600);
        // Invalid values fall back to the flags.
        let p = plan(
            &prefixed(&[
                ("role-arn", "arn:aws:iam::111122223333:role/a"),
                ("sts-regional-endpoints", "yes"),
                ("token-expiration", "1h"),
            ]),
            &config,
        )
        .unwrap();
        assert!(p.regional_sts);
        assert_eq!(p.token_expiration, 7200);
        assert_eq!(p.audience, "sts.amazonaws.com");
        // No role-arn: no injection, unless the ConfigMap names a role.
        assert_eq!(plan(&prefixed(&[("audience", "x")]), &config), None);
        assert_eq!(plan(&ServiceAccountInfo::default(), &config), None);
        let cm = ConfigMapEntry {
            role_arn: "arn:aws:iam::111122223333:role/cm".into(),
            ..ConfigMapEntry::default()
        };
        let p = plan(
            &ServiceAccountInfo {
                config_map: Some(cm.clone()),
                ..prefixed(&[])
            },
            &config,
        )
        .unwrap();
        assert_eq!(
            p.mode,
            Mode::WebIdentity {
                role_arn: "arn:aws:iam::111122223333:role/cm".into()
            }
        );
        assert_eq!(p.token_expiration, 7200);
        assert_eq!(p.audience, "sts.amazonaws.com");
        assert!(
            !p.regional_sts,
            "the ConfigMap's UseRegionalSTS defaults to false"
        );
        // The annotation wins over the ConfigMap.
        let p = plan(
            &ServiceAccountInfo {
                config_map: Some(cm),
                ..prefixed(&[("role-arn", "arn:aws:iam::111122223333:role/ann")])
            },
            &config,
        )
        .unwrap();
        assert_eq!(
            p.mode,
            Mode::WebIdentity {
                role_arn: "arn:aws:iam::111122223333:role/ann".into()
            }
        );
    }

    #[test]
    fn a_custom_prefix_reads_only_its_own_annotations() {
        let config = Config {
            annotation_prefix: "irsa.dev".into(),
            ..Config::default()
        };
        assert_eq!(
            plan(
                &prefixed(&[("role-arn", "arn:aws:iam::111122223333:role/a")]),
                &config
            ),
            None
        );
        let sa = ServiceAccountInfo::annotated([("irsa.dev/role-arn", "arn:aws:iam::1:role/a")]);
        assert!(plan(&sa, &config).is_some());
    }

    #[test]
    fn pod_identity_wins_over_role_arn_and_keeps_common_settings() {
        let config = Config {
            sts_regional_endpoints: true,
            ..Config::default()
        };
        let mut sa = prefixed(&[
            ("role-arn", "arn:aws:iam::111122223333:role/a"),
            ("token-expiration", "3600"),
        ]);
        sa.pod_identity = true;
        let p = plan(&sa, &config).unwrap();
        assert_eq!(
            p.mode,
            Mode::PodIdentity {
                full_uri: "http://169.254.170.23/v1/credentials".into()
            }
        );
        assert_eq!(p.audience, "pods.eks.amazonaws.com");
        assert_eq!(p.volume_name, "eks-pod-identity-token");
        assert_eq!(p.token_expiration, 3600);
        assert!(p.regional_sts);
        // Not found anywhere: upstream's defaults, not the flags.
        let p = plan(
            &ServiceAccountInfo {
                pod_identity: true,
                ..ServiceAccountInfo::default()
            },
            &config,
        )
        .unwrap();
        assert!(!p.regional_sts);
        assert_eq!(p.token_expiration, DEFAULT_TOKEN_EXPIRATION);
    }
}
