//! Validation of [`ClusterPullSecret`] and [`PullSecret`] specs: pure functions that report every
//! problem at once, each naming the field (`spec.registries[1].host`) and saying how to fix it.
//!
//! The API server's schema checks only shapes; these rules check meaning (a host irsa can get
//! credentials for, exactly one identity, a role ARN that parses, a PullSecret that stays in its
//! namespace). The controller refuses an invalid resource with these messages in its status.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use irsa_core::arn::RoleArn;
use irsa_core::registry::{self, Registry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use thiserror::Error;

use crate::resources::{
    ClusterPullSecret, IdentitySpec, NamespaceSelection, PullSecret, RegistrySpec, SecretSpec,
};

/// The label irsa puts on every object it writes; only objects carrying it are ever changed.
pub use irsa_core::names::MANAGED_BY_LABEL;
/// Label and annotation keys with this prefix are irsa's own and cannot be set by users.
pub use irsa_core::names::RESERVED_PREFIX;

/// One problem in a spec: the field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// Path of the field, e.g. `spec.registries[1].host`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl ValidationError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Every problem found in a spec (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The kind of registry a validated [`RegistrySpec`] names, with what its exchange needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryTarget {
    /// An ECR private registry (account and region from the host).
    Ecr(registry::EcrRegistry),
    /// ECR Public.
    EcrPublic,
    /// Chainguard, with the assumable identity to exchange for.
    Chainguard {
        /// The Chainguard identity id.
        identity: String,
        /// How the AWS identity is proven.
        method: crate::resources::ChainguardMethod,
    },
}

/// One validated registry: its host (lowercase, the docker config key) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRegistry {
    /// The host as written into the docker config.
    pub host: String,
    /// What kind of registry it is.
    pub target: RegistryTarget,
}

/// The identity a validated spec uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatedIdentity {
    /// A service account, with its namespace resolved.
    ServiceAccount {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        name: String,
        /// Role overriding the service account's annotation.
        role_arn: Option<RoleArn>,
    },
    /// The controller's own credentials, optionally assuming a role.
    Ambient {
        /// Role to assume with the controller's credentials.
        role_arn: Option<RoleArn>,
    },
}

/// A spec that passed validation, with its parts parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Registries in spec order, hosts normalised.
    pub registries: Vec<ValidatedRegistry>,
    /// The identity.
    pub identity: ValidatedIdentity,
    /// The role session duration asked of STS (`spec.identity.sessionDuration`); `None`: STS's
    /// default.
    pub session_duration: Option<Duration>,
}

/// STS's bounds on `DurationSeconds`, in seconds: 15 minutes to 12 hours.
pub const SESSION_DURATION_SECONDS: std::ops::RangeInclusive<u64> = 900..=43_200;

/// Which resource a spec belongs to: the rules differ in where the service account may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A ClusterPullSecret: the service account's namespace is required.
    Cluster,
    /// A PullSecret in this namespace: the service account must be in it too.
    Namespaced(&'a str),
}

impl ClusterPullSecret {
    /// Validates the name and spec; see the [module docs](self).
    pub fn validate(&self) -> Result<Validated, ValidationErrors> {
        let mut errors = Vec::new();
        check_owner_name(&self.name_any(), &mut errors);
        check_namespaces(&self.spec.namespaces, &mut errors);
        finish(
            validate_secret_spec(&self.spec.secret, Scope::Cluster),
            errors,
        )
    }
}

impl PullSecret {
    /// Validates the name and spec; see the [module docs](self). A PullSecret without a
    /// namespace is refused (the API server always sets one).
    pub fn validate(&self) -> Result<Validated, ValidationErrors> {
        let mut errors = Vec::new();
        check_owner_name(&self.name_any(), &mut errors);
        let Some(namespace) = self.metadata.namespace.as_deref() else {
            errors.push(ValidationError::new(
                "metadata.namespace",
                "required: a PullSecret is namespaced",
            ));
            return finish(
                validate_secret_spec(&self.spec.secret, Scope::Cluster),
                errors,
            );
        };
        finish(
            validate_secret_spec(&self.spec.secret, Scope::Namespaced(namespace)),
            errors,
        )
    }
}

fn finish(
    spec: Result<Validated, ValidationErrors>,
    mut errors: Vec<ValidationError>,
) -> Result<Validated, ValidationErrors> {
    match spec {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(ValidationErrors(errors)),
        Err(ValidationErrors(more)) => {
            errors.extend(more);
            Err(ValidationErrors(errors))
        }
    }
}

fn check_owner_name(name: &str, errors: &mut Vec<ValidationError>) {
    if name.len() > 63 {
        errors.push(ValidationError::new(
            "metadata.name",
            format!(
                "{} characters long: at most 63, because it is written into the label irsa.dev/owner-name of every secret; choose a shorter name",
                name.len()
            ),
        ));
    }
}

/// Validates the part both resources share. `scope` decides where the service account may be.
pub fn validate_secret_spec(
    spec: &SecretSpec,
    scope: Scope<'_>,
) -> Result<Validated, ValidationErrors> {
    let mut errors = Vec::new();
    let registries = check_registries(&spec.registries, &mut errors);
    let identity = check_identity(&spec.identity, scope, &mut errors);
    let session_duration =
        spec.identity
            .session_duration
            .as_deref()
            .and_then(|d| match parse_session_duration(d) {
                Ok(d) => Some(d),
                Err(problem) => {
                    errors.push(ValidationError::new(
                        "spec.identity.sessionDuration",
                        problem,
                    ));
                    None
                }
            });
    if let Err(problem) = check_dns_subdomain(&spec.secret_name) {
        errors.push(ValidationError::new("spec.secretName", problem));
    }
    check_labels(&spec.secret_labels, &mut errors);
    check_annotations(&spec.secret_annotations, &mut errors);
    if let Some(key) = &spec.username_password_key {
        check_username_password_key(key, spec.registries.len(), &mut errors);
    }
    check_service_accounts(&spec.service_accounts, &mut errors);
    if !(spec.refresh.is_finite() && spec.refresh > 0.0 && spec.refresh < 1.0) {
        errors.push(ValidationError::new(
            "spec.refresh",
            format!(
                "must be in (0, 1), got {}: the fraction of the token's lifetime after which it is refreshed, e.g. 0.5",
                spec.refresh
            ),
        ));
    }
    match identity {
        Some(identity) if errors.is_empty() => Ok(Validated {
            registries,
            identity,
            session_duration,
        }),
        _ => Err(ValidationErrors(errors)),
    }
}

fn check_registries(
    registries: &[RegistrySpec],
    errors: &mut Vec<ValidationError>,
) -> Vec<ValidatedRegistry> {
    if registries.is_empty() {
        errors.push(ValidationError::new(
            "spec.registries",
            "at least one registry is required, e.g. {host: 123456789012.dkr.ecr.us-east-1.amazonaws.com}",
        ));
    }
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in registries.iter().enumerate() {
        let field = format!("spec.registries[{i}]");
        let host = match check_host(&r.host) {
            Ok(host) => host,
            Err(problem) => {
                errors.push(ValidationError::new(format!("{field}.host"), problem));
                continue;
            }
        };
        if let Some(first) = seen.insert(host.0.clone(), i) {
            seen.insert(host.0.clone(), first);
            errors.push(ValidationError::new(
                format!("{field}.host"),
                format!(
                    "{:?} is already spec.registries[{first}]: list each registry once",
                    host.0
                ),
            ));
            continue;
        }
        let target = match (host.1, &r.chainguard) {
            (Registry::Chainguard, Some(cg)) => match check_chainguard_identity(&cg.identity) {
                Ok(()) => RegistryTarget::Chainguard {
                    identity: cg.identity.clone(),
                    method: cg.method.unwrap_or_default(),
                },
                Err(problem) => {
                    errors.push(ValidationError::new(
                        format!("{field}.chainguard.identity"),
                        problem,
                    ));
                    continue;
                }
            },
            (Registry::Chainguard, None) => {
                errors.push(ValidationError::new(
                    format!("{field}.chainguard.identity"),
                    "required for cgr.dev: the id of the Chainguard assumable identity that trusts the AWS role, e.g. 0123456789abcdef0123456789abcdef01234567/0123456789abcdef",
                ));
                continue;
            }
            (_, Some(_)) => {
                errors.push(ValidationError::new(
                    format!("{field}.chainguard"),
                    format!("only allowed for cgr.dev, not {:?}: remove it", host.0),
                ));
                continue;
            }
            (Registry::Ecr(ecr), None) => RegistryTarget::Ecr(ecr),
            (Registry::EcrPublic, None) => RegistryTarget::EcrPublic,
            (Registry::Other, None) => unreachable!("check_host refuses other registries"),
        };
        out.push(ValidatedRegistry {
            host: host.0,
            target,
        });
    }
    out
}

/// A bare registry host irsa can get credentials for, normalised, with its kind.
fn check_host(input: &str) -> Result<(String, Registry), String> {
    let parsed = registry::parse(input).map_err(|e| e.to_string())?;
    if parsed.repository.is_some() || parsed.tag.is_some() || parsed.digest.is_some() {
        return Err(format!(
            "{input:?} is an image reference, not a registry host: give the host alone, e.g. {:?}",
            parsed.host
        ));
    }
    match parsed.registry {
        Registry::Other => {
            let lower = parsed.host.to_ascii_lowercase();
            // An ECR-looking host that is not one: say which part is wrong.
            if (lower.contains(".dkr.ecr") || lower.contains(".dkr-ecr"))
                && let Err(e) = registry::parse_ecr_host(&parsed.host)
            {
                return Err(e.to_string());
            }
            Err(format!(
                "{input:?} is not a registry irsa can get credentials for: use an ECR private registry \
                 (<account>.dkr.ecr.<region>.amazonaws.com), ECR Public (public.ecr.aws) or Chainguard (cgr.dev)"
            ))
        }
        kind => Ok((parsed.host, kind)),
    }
}

/// A role session duration as `irsa login --session-duration` takes it: digits and a unit
/// (`ms`, `s`, `m`, `h`; none: seconds), whole seconds within [`SESSION_DURATION_SECONDS`].
pub fn parse_session_duration(input: &str) -> Result<Duration, String> {
    const RANGE: &str = "a role session lasts 15m to 12h (900 to 43200 seconds), e.g. 15m, 1h, 12h";
    let s = input.trim();
    // Tenant input: echo a short value only.
    let shown = if s.len() <= 32 {
        format!("{s:?}")
    } else {
        format!("a {}-byte value", s.len())
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "{shown} is not a duration: a number with a unit s, m or h; {RANGE}"
        ));
    }
    let out_of_range = || format!("{shown} is out of range: {RANGE}");
    // All digits: a parse failure can only be an overflow.
    let n: u64 = number.parse().map_err(|_| out_of_range())?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "{shown} has an unknown unit: use s, m or h (no combinations like 1h30m: write 90m); {RANGE}"
            ));
        }
    }
    .ok_or_else(out_of_range)?;
    if millis % 1_000 != 0 {
        return Err(format!(
            "{shown} is not a whole number of seconds: STS takes seconds; {RANGE}"
        ));
    }
    let secs = millis / 1_000;
    if !SESSION_DURATION_SECONDS.contains(&secs) {
        return Err(out_of_range());
    }
    Ok(Duration::from_secs(secs))
}

/// Chainguard identity ids: a 40-hex-digit root group, then one or more 16-hex-digit ids.
fn check_chainguard_identity(id: &str) -> Result<(), String> {
    irsa_core::chainguard::validate_identity(id)
}

fn check_identity(
    identity: &IdentitySpec,
    scope: Scope<'_>,
    errors: &mut Vec<ValidationError>,
) -> Option<ValidatedIdentity> {
    let role_arn = match identity.role_arn.as_deref().map(str::parse::<RoleArn>) {
        None => None,
        Some(Ok(arn)) => Some(arn),
        Some(Err(e)) => {
            errors.push(ValidationError::new("spec.identity.roleArn", e.to_string()));
            None
        }
    };
    match (&identity.service_account, &identity.ambient) {
        (Some(sa), None) => {
            let mut ok = true;
            if let Err(problem) = check_dns_subdomain(&sa.name) {
                errors.push(ValidationError::new(
                    "spec.identity.serviceAccount.name",
                    problem,
                ));
                ok = false;
            }
            let namespace = match (scope, sa.namespace.as_deref()) {
                (Scope::Cluster, None) => {
                    errors.push(ValidationError::new(
                        "spec.identity.serviceAccount.namespace",
                        "required for a ClusterPullSecret: name the namespace of the service account",
                    ));
                    None
                }
                (Scope::Cluster, Some(ns)) => Some(ns),
                (Scope::Namespaced(own), None) => Some(own),
                (Scope::Namespaced(own), Some(ns)) if ns == own => Some(ns),
                (Scope::Namespaced(own), Some(ns)) => {
                    errors.push(ValidationError::new(
                        "spec.identity.serviceAccount.namespace",
                        format!(
                            "{ns:?} is not this PullSecret's namespace {own:?}: a PullSecret may only use a service account \
                             of its own namespace; omit the namespace, or use a ClusterPullSecret"
                        ),
                    ));
                    None
                }
            };
            if let Some(ns) = namespace
                && let Err(problem) = check_dns_label(ns)
            {
                errors.push(ValidationError::new(
                    "spec.identity.serviceAccount.namespace",
                    problem,
                ));
                ok = false;
            }
            let namespace = namespace.filter(|_| ok)?;
            if identity.role_arn.is_some() && role_arn.is_none() {
                return None;
            }
            Some(ValidatedIdentity::ServiceAccount {
                namespace: namespace.to_owned(),
                name: sa.name.clone(),
                role_arn,
            })
        }
        (None, Some(_)) => {
            if let Scope::Namespaced(_) = scope {
                errors.push(ValidationError::new(
                    "spec.identity.ambient",
                    "not allowed in a PullSecret: the controller's own credentials are for ClusterPullSecrets; \
                     use serviceAccount with a service account of this namespace",
                ));
                return None;
            }
            if identity.role_arn.is_some() && role_arn.is_none() {
                return None;
            }
            Some(ValidatedIdentity::Ambient { role_arn })
        }
        _ => {
            errors.push(ValidationError::new(
                "spec.identity",
                "exactly one of serviceAccount or ambient is required, e.g. {serviceAccount: {namespace: irsa, name: puller}}",
            ));
            None
        }
    }
}

/// Most bytes of a Secret data key (the API server's limit, a DNS subdomain's length).
const MAX_DATA_KEY_LEN: usize = 253;

/// `spec.usernamePasswordKey`: a Secret data key (`[-._a-zA-Z0-9]+`, not `.` or `..`), not
/// `.dockerconfigjson`, and only with one registry, since the field holds one credential.
fn check_username_password_key(key: &str, registries: usize, errors: &mut Vec<ValidationError>) {
    const FIELD: &str = "spec.usernamePasswordKey";
    let problem = if key.is_empty() {
        Some("must not be empty: the data key of the Secret field, e.g. \"creds\"".to_owned())
    } else if key.len() > MAX_DATA_KEY_LEN {
        Some(format!(
            "{} characters long: a Secret data key has at most {MAX_DATA_KEY_LEN}",
            key.len()
        ))
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        Some(format!(
            "{:?} is not a Secret data key: use letters, digits, '-', '_' and '.' only, e.g. \"creds\"",
            quoted_key(key)
        ))
    } else if key == "." || key == ".." {
        Some(format!(
            "{key:?} is not a Secret data key: choose a name, e.g. \"creds\""
        ))
    } else if key == ".dockerconfigjson" {
        Some(
            "\".dockerconfigjson\" already holds the docker config: choose another key, e.g. \"creds\""
                .to_owned(),
        )
    } else {
        None
    };
    if let Some(problem) = problem {
        errors.push(ValidationError::new(FIELD, problem));
    }
    if registries > 1 {
        errors.push(ValidationError::new(
            FIELD,
            format!(
                "allowed with one registry only, but spec.registries lists {registries}: the field holds one \
                 username:password, as Argo CD Image Updater's secret:<namespace>/<name>#<field> reads it; \
                 write one resource per registry, or use pullsecret:<namespace>/<name>, which reads every registry"
            ),
        ));
    }
}

/// At most 63 characters of a user's key, for a message.
fn quoted_key(key: &str) -> String {
    key.chars().take(63).collect()
}

fn check_labels(labels: &BTreeMap<String, String>, errors: &mut Vec<ValidationError>) {
    for (key, value) in labels {
        let field = format!("spec.secretLabels[{key:?}]");
        if let Err(problem) = check_qualified_name(key) {
            errors.push(ValidationError::new(&field, problem));
        } else if key == MANAGED_BY_LABEL || key.starts_with(RESERVED_PREFIX) {
            errors.push(ValidationError::new(
                &field,
                "reserved: irsa sets this label itself to recognise its secrets; remove it",
            ));
        }
        if let Err(problem) = check_label_value(value) {
            errors.push(ValidationError::new(&field, problem));
        }
    }
}

fn check_annotations(annotations: &BTreeMap<String, String>, errors: &mut Vec<ValidationError>) {
    for key in annotations.keys() {
        let field = format!("spec.secretAnnotations[{key:?}]");
        if let Err(problem) = check_qualified_name(key) {
            errors.push(ValidationError::new(&field, problem));
        } else if key.starts_with(RESERVED_PREFIX) {
            errors.push(ValidationError::new(
                &field,
                "reserved: irsa.dev/ annotations are set by irsa itself; remove it",
            ));
        }
    }
}

fn check_service_accounts(names: &[String], errors: &mut Vec<ValidationError>) {
    let wildcard = names.iter().any(|n| n == "*");
    for (i, name) in names.iter().enumerate() {
        let field = format!("spec.serviceAccounts[{i}]");
        if name == "*" {
            continue;
        }
        if wildcard {
            errors.push(ValidationError::new(
                field,
                format!("{name:?} is redundant: \"*\" already selects every service account; remove one of them"),
            ));
        } else if let Err(problem) = check_dns_subdomain(name) {
            errors.push(ValidationError::new(field, problem));
        } else if names[..i].contains(name) {
            errors.push(ValidationError::new(
                field,
                format!("{name:?} is listed twice; list each service account once"),
            ));
        }
    }
}

fn check_namespaces(selection: &NamespaceSelection, errors: &mut Vec<ValidationError>) {
    for (list, globs) in [
        ("include", &selection.include),
        ("exclude", &selection.exclude),
    ] {
        for (i, glob) in globs.iter().enumerate() {
            if let Err(problem) = check_glob(glob) {
                errors.push(ValidationError::new(
                    format!("spec.namespaces.{list}[{i}]"),
                    problem,
                ));
            }
        }
    }
    if let Some(selector) = &selection.selector {
        check_selector(selector, "spec.namespaces.selector", errors);
    }
}

fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() || glob.len() > 63 {
        return Err(format!(
            "{glob:?} is not a namespace glob: 1 to 63 characters of a-z, 0-9, '-', '*' (any run) and '?' (one character)"
        ));
    }
    match glob
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')))
    {
        Some(c) => Err(format!(
            "{glob:?} contains {c:?}: a namespace glob uses only a-z, 0-9, '-', '*' (any run) and '?' (one character)"
        )),
        None => Ok(()),
    }
}

/// Checks a label selector: valid keys and values, and operators `In`, `NotIn` (with values),
/// `Exists`, `DoesNotExist` (without).
pub fn check_selector(selector: &LabelSelector, field: &str, errors: &mut Vec<ValidationError>) {
    for (key, value) in selector.match_labels.iter().flatten() {
        let f = format!("{field}.matchLabels[{key:?}]");
        if let Err(problem) = check_qualified_name(key) {
            errors.push(ValidationError::new(&f, problem));
        }
        if let Err(problem) = check_label_value(value) {
            errors.push(ValidationError::new(&f, problem));
        }
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        if let Err(problem) = check_qualified_name(&expr.key) {
            errors.push(ValidationError::new(format!("{f}.key"), problem));
        }
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(ValidationError::new(
                format!("{f}.values"),
                format!(
                    "required for operator {}: list at least one value",
                    expr.operator
                ),
            )),
            "In" | "NotIn" => {
                for (j, v) in values.iter().enumerate() {
                    if let Err(problem) = check_label_value(v) {
                        errors.push(ValidationError::new(format!("{f}.values[{j}]"), problem));
                    }
                }
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(ValidationError::new(
                format!("{f}.values"),
                format!(
                    "must be empty for operator {}: remove the values",
                    expr.operator
                ),
            )),
            "Exists" | "DoesNotExist" => {}
            other => errors.push(ValidationError::new(
                format!("{f}.operator"),
                format!("{other:?} is not an operator: use In, NotIn, Exists or DoesNotExist"),
            )),
        }
    }
}

/// A DNS-1123 label (namespace names): 1–63 of `a-z0-9-`, alphanumeric at both ends.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name: 1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
        ))
    }
}

/// A DNS-1123 subdomain (secret and service-account names): at most 253 characters, dot-separated
/// DNS labels.
pub fn check_dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| check_dns_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name: at most 253 characters of a-z, 0-9, '-' and '.', each part between dots \
             starting and ending with a letter or digit"
        ))
    }
}

/// A label value: empty, or up to 63 of `A-Za-z0-9-_.`, alphanumeric at both ends.
pub fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || is_name_part(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label value: at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', \
             starting and ending with a letter or digit"
        ))
    }
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain, the name up to 63
/// characters of `A-Za-z0-9-_.`, alphanumeric at both ends.
pub fn check_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(|p| check_dns_subdomain(p).is_ok());
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid key: an optional DNS-subdomain prefix and '/', then 1 to 63 characters of \
             A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

fn is_name_part(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1])
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::resources::{
        AmbientIdentity, ChainguardSpec, ClusterPullSecretSpec, DeletionPolicy, PullSecretSpec,
        ServiceAccountRef,
    };

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const CG_ID: &str = "0123456789abcdef0123456789abcdef01234567/0123456789abcdef";

    fn host(h: &str) -> RegistrySpec {
        RegistrySpec {
            host: h.into(),
            chainguard: None,
        }
    }

    fn sa(ns: Option<&str>, name: &str) -> IdentitySpec {
        IdentitySpec {
            service_account: Some(ServiceAccountRef {
                namespace: ns.map(Into::into),
                name: name.into(),
            }),
            ..Default::default()
        }
    }

    fn base() -> SecretSpec {
        SecretSpec::new(vec![host(ECR)], sa(Some("irsa"), "puller"), "ecr-pull")
    }

    fn cluster(f: impl FnOnce(&mut ClusterPullSecretSpec)) -> Result<Validated, ValidationErrors> {
        let mut spec = ClusterPullSecretSpec {
            secret: base(),
            namespaces: NamespaceSelection::default(),
        };
        f(&mut spec);
        ClusterPullSecret::new("ecr", spec).validate()
    }

    fn fields(r: Result<Validated, ValidationErrors>) -> Vec<String> {
        match r {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_cluster_spec_is_parsed() {
        let v = cluster(|s| {
            s.secret.registries = vec![
                host(ECR),
                host("PUBLIC.ECR.AWS"),
                RegistrySpec {
                    host: "cgr.dev".into(),
                    chainguard: Some(ChainguardSpec {
                        identity: CG_ID.into(),
                        method: Some(crate::resources::ChainguardMethod::WebIdentityToken),
                    }),
                },
                host("999999999999.dkr.ecr.eu-west-1.amazonaws.com"),
            ];
            s.secret.identity.role_arn = Some("arn:aws:iam::123456789012:role/puller".into());
        })
        .unwrap();
        let hosts: Vec<_> = v.registries.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                ECR,
                "public.ecr.aws",
                "cgr.dev",
                "999999999999.dkr.ecr.eu-west-1.amazonaws.com"
            ]
        );
        assert!(
            matches!(&v.registries[0].target, RegistryTarget::Ecr(e) if e.account == "123456789012")
        );
        assert_eq!(v.registries[1].target, RegistryTarget::EcrPublic);
        assert_eq!(
            v.registries[2].target,
            RegistryTarget::Chainguard {
                identity: CG_ID.into(),
                method: crate::resources::ChainguardMethod::WebIdentityToken,
            }
        );
        assert!(matches!(
            v.identity,
            ValidatedIdentity::ServiceAccount { ref namespace, ref name, role_arn: Some(ref arn) }
                if namespace == "irsa" && name == "puller" && arn.name == "puller"
        ));
    }

    #[test]
    fn the_username_password_key_is_a_data_key_for_one_registry() {
        let with = |key: &str, registries: &[&str]| {
            fields(cluster(|s| {
                s.secret.username_password_key = Some(key.to_owned());
                s.secret.registries = registries.iter().map(|h| host(h)).collect();
            }))
        };
        for ok in ["creds", "a.b-c_D9", ".creds", "..x"] {
            assert_eq!(with(ok, &[ECR]), Vec::<String>::new(), "{ok:?}");
        }
        assert!(cluster(|_| ()).is_ok(), "absent is fine");
        let cases: &[(&str, &[&str], &str)] = &[
            ("", &[ECR], "spec.usernamePasswordKey: must not be empty"),
            (
                "user pass",
                &[ECR],
                "spec.usernamePasswordKey: \"user pass\" is not a Secret data key: use letters, digits",
            ),
            (
                "a/b",
                &[ECR],
                "spec.usernamePasswordKey: \"a/b\" is not a Secret data key",
            ),
            (
                "..",
                &[ECR],
                "spec.usernamePasswordKey: \"..\" is not a Secret data key",
            ),
            (
                ".dockerconfigjson",
                &[ECR],
                "spec.usernamePasswordKey: \".dockerconfigjson\" already holds the docker config",
            ),
            (
                "creds",
                &[ECR, "public.ecr.aws"],
                "spec.usernamePasswordKey: allowed with one registry only, but spec.registries lists 2",
            ),
        ];
        for (key, registries, want) in cases {
            let got = with(key, registries);
            assert_eq!(got.len(), 1, "{key:?}: {got:?}");
            assert!(got[0].starts_with(want), "{key:?}: {got:?}");
        }
        let long = "k".repeat(254);
        assert!(with(&long, &[ECR])[0].contains("254 characters long"));
        assert_eq!(with(&"k".repeat(253), &[ECR]), Vec::<String>::new());
        // Both problems at once: a bad key and several registries.
        assert_eq!(with(".dockerconfigjson", &[ECR, "public.ecr.aws"]).len(), 2);
    }

    #[test]
    fn each_problem_names_its_field() {
        type Edit = fn(&mut ClusterPullSecretSpec);
        let cases: &[(&str, Edit, &str)] = &[
            (
                "no registries",
                |s| s.secret.registries.clear(),
                "spec.registries: at least one registry is required",
            ),
            (
                "docker hub",
                |s| s.secret.registries.push(host("docker.io")),
                "spec.registries[1].host: \"docker.io\" is not a registry irsa can get credentials for",
            ),
            (
                "image ref",
                |s| s.secret.registries[0].host = format!("{ECR}/app:1"),
                "spec.registries[0].host: ",
            ),
            (
                "bad ecr region",
                |s| {
                    s.secret
                        .registries
                        .push(host("123456789012.dkr.ecr.moon-1.amazonaws.com"))
                },
                "spec.registries[1].host: invalid region \"moon-1\"",
            ),
            (
                "duplicate",
                |s| s.secret.registries.push(host(ECR)),
                "spec.registries[1].host: \"123456789012.dkr.ecr.us-east-1.amazonaws.com\" is already spec.registries[0]",
            ),
            (
                "cgr without identity",
                |s| s.secret.registries.push(host("cgr.dev")),
                "spec.registries[1].chainguard.identity: required for cgr.dev",
            ),
            (
                "cgr bad identity",
                |s| {
                    s.secret.registries.push(RegistrySpec {
                        host: "cgr.dev".into(),
                        chainguard: Some(ChainguardSpec {
                            identity: "nope".into(),
                            method: None,
                        }),
                    })
                },
                "spec.registries[1].chainguard.identity: \"nope\" is not a Chainguard identity id",
            ),
            (
                "chainguard on ecr",
                |s| {
                    s.secret.registries[0].chainguard = Some(ChainguardSpec {
                        identity: CG_ID.into(),
                        method: None,
                    })
                },
                "spec.registries[0].chainguard: only allowed for cgr.dev",
            ),
            (
                "both identities",
                |s| s.secret.identity.ambient = Some(AmbientIdentity {}),
                "spec.identity: exactly one of serviceAccount or ambient",
            ),
            (
                "no identity",
                |s| s.secret.identity = IdentitySpec::default(),
                "spec.identity: exactly one of serviceAccount or ambient",
            ),
            (
                "sa without namespace",
                |s| s.secret.identity = sa(None, "puller"),
                "spec.identity.serviceAccount.namespace: required for a ClusterPullSecret",
            ),
            (
                "sa bad name",
                |s| s.secret.identity = sa(Some("irsa"), "Puller"),
                "spec.identity.serviceAccount.name: \"Puller\" is not a valid name",
            ),
            (
                "bad role arn",
                |s| s.secret.identity.role_arn = Some("arn:aws:iam::12:role/x".into()),
                "spec.identity.roleArn: ",
            ),
            (
                "bad secret name",
                |s| s.secret.secret_name = "Ecr_Pull".into(),
                "spec.secretName: \"Ecr_Pull\" is not a valid name",
            ),
            (
                "refresh 0",
                |s| s.secret.refresh = 0.0,
                "spec.refresh: must be in (0, 1), got 0",
            ),
            (
                "refresh 1",
                |s| s.secret.refresh = 1.0,
                "spec.refresh: must be in (0, 1), got 1",
            ),
            (
                "refresh nan",
                |s| s.secret.refresh = f64::NAN,
                "spec.refresh: must be in (0, 1), got NaN",
            ),
            (
                "reserved label",
                |s| {
                    s.secret
                        .secret_labels
                        .insert(MANAGED_BY_LABEL.into(), "me".into());
                },
                "spec.secretLabels[\"app.kubernetes.io/managed-by\"]: reserved",
            ),
            (
                "irsa label",
                |s| {
                    s.secret
                        .secret_labels
                        .insert("irsa.dev/owner-name".into(), "x".into());
                },
                "spec.secretLabels[\"irsa.dev/owner-name\"]: reserved",
            ),
            (
                "bad label value",
                |s| {
                    s.secret.secret_labels.insert("team".into(), "a b".into());
                },
                "spec.secretLabels[\"team\"]: \"a b\" is not a valid label value",
            ),
            (
                "bad annotation key",
                |s| {
                    s.secret.secret_annotations.insert("a b".into(), "x".into());
                },
                "spec.secretAnnotations[\"a b\"]: \"a b\" is not a valid key",
            ),
            (
                "irsa annotation",
                |s| {
                    s.secret
                        .secret_annotations
                        .insert("irsa.dev/content-hash".into(), "x".into());
                },
                "spec.secretAnnotations[\"irsa.dev/content-hash\"]: reserved",
            ),
            (
                "sa wildcard and name",
                |s| s.secret.service_accounts = vec!["*".into(), "default".into()],
                "spec.serviceAccounts[1]: \"default\" is redundant",
            ),
            (
                "sa twice",
                |s| s.secret.service_accounts = vec!["default".into(), "default".into()],
                "spec.serviceAccounts[1]: \"default\" is listed twice",
            ),
            (
                "bad glob",
                |s| s.namespaces.include = vec!["team_*".into()],
                "spec.namespaces.include[0]: \"team_*\" contains '_'",
            ),
            (
                "empty glob",
                |s| s.namespaces.exclude = vec![String::new()],
                "spec.namespaces.exclude[0]: \"\" is not a namespace glob",
            ),
            (
                "bad operator",
                |s| {
                    s.namespaces.selector = Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "env".into(),
                            operator: "Like".into(),
                            values: None,
                        }]),
                        ..Default::default()
                    })
                },
                "spec.namespaces.selector.matchExpressions[0].operator: \"Like\" is not an operator",
            ),
            (
                "in without values",
                |s| {
                    s.namespaces.selector = Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "env".into(),
                            operator: "In".into(),
                            values: Some(vec![]),
                        }]),
                        ..Default::default()
                    })
                },
                "spec.namespaces.selector.matchExpressions[0].values: required for operator In",
            ),
            (
                "exists with values",
                |s| {
                    s.namespaces.selector = Some(LabelSelector {
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "env".into(),
                            operator: "Exists".into(),
                            values: Some(vec!["x".into()]),
                        }]),
                        ..Default::default()
                    })
                },
                "spec.namespaces.selector.matchExpressions[0].values: must be empty for operator Exists",
            ),
            (
                "bad match label",
                |s| {
                    s.namespaces.selector = Some(LabelSelector {
                        match_labels: Some([("-env".to_owned(), "x".to_owned())].into()),
                        ..Default::default()
                    })
                },
                "spec.namespaces.selector.matchLabels[\"-env\"]: \"-env\" is not a valid key",
            ),
        ];
        for (name, edit, want) in cases {
            let got = fields(cluster(edit));
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "{name}: want an error starting with {want:?}, got {got:?}"
            );
            assert_eq!(
                got.len(),
                1,
                "{name}: exactly one error expected, got {got:?}"
            );
        }
    }

    #[test]
    fn all_problems_are_reported_together() {
        let got = fields(cluster(|s| {
            s.secret.registries.push(host("ghcr.io"));
            s.secret.refresh = 2.0;
            s.secret.identity = IdentitySpec::default();
        }));
        assert_eq!(got.len(), 3, "{got:?}");
        let joined = ValidationErrors(vec![
            ValidationError::new("a", "x"),
            ValidationError::new("b", "y"),
        ]);
        assert_eq!(joined.to_string(), "a: x; b: y");
    }

    #[test]
    fn a_long_name_is_refused_because_it_becomes_a_label() {
        let spec = ClusterPullSecretSpec {
            secret: base(),
            namespaces: NamespaceSelection::default(),
        };
        let got = fields(ClusterPullSecret::new(&"a".repeat(64), spec).validate());
        assert!(
            got[0].starts_with("metadata.name: 64 characters long: at most 63"),
            "{got:?}"
        );
    }

    fn namespaced(ns: &str, identity: IdentitySpec) -> Result<Validated, ValidationErrors> {
        let mut spec = base();
        spec.identity = identity;
        let mut ps = PullSecret::new("ecr", PullSecretSpec { secret: spec });
        ps.metadata.namespace = Some(ns.into());
        ps.validate()
    }

    #[test]
    fn a_pull_secret_stays_in_its_namespace() {
        let v = namespaced("team-a", sa(None, "puller")).unwrap();
        assert!(
            matches!(v.identity, ValidatedIdentity::ServiceAccount { ref namespace, .. } if namespace == "team-a")
        );
        assert!(namespaced("team-a", sa(Some("team-a"), "puller")).is_ok());

        let got = fields(namespaced("team-a", sa(Some("kube-system"), "puller")));
        assert_eq!(
            got,
            [
                "spec.identity.serviceAccount.namespace: \"kube-system\" is not this PullSecret's namespace \"team-a\": \
              a PullSecret may only use a service account of its own namespace; omit the namespace, or use a ClusterPullSecret"
            ]
        );
        let ambient = IdentitySpec {
            ambient: Some(AmbientIdentity {}),
            ..Default::default()
        };
        let got = fields(namespaced("team-a", ambient));
        assert!(
            got[0].starts_with("spec.identity.ambient: not allowed in a PullSecret"),
            "{got:?}"
        );

        let no_ns = PullSecret::new("ecr", PullSecretSpec { secret: base() });
        assert!(fields(no_ns.validate())[0].starts_with("metadata.namespace: required"));
    }

    #[test]
    fn ambient_identity_may_assume_a_role() {
        let v = cluster(|s| {
            s.secret.identity = IdentitySpec {
                ambient: Some(AmbientIdentity {}),
                role_arn: Some("arn:aws:iam::123456789012:role/ci/puller".into()),
                ..Default::default()
            }
        })
        .unwrap();
        assert!(
            matches!(v.identity, ValidatedIdentity::Ambient { role_arn: Some(ref a) } if a.path == "/ci/")
        );
    }

    #[test]
    fn session_duration_table() {
        const FIELD: &str = "spec.identity.sessionDuration: ";
        for (input, want) in [
            ("15m", Ok(900)),
            ("900", Ok(900)),
            ("900s", Ok(900)),
            ("1h", Ok(3600)),
            (" 90m ", Ok(5400)),
            ("12h", Ok(43_200)),
            ("43200000ms", Ok(43_200)),
            (
                "899",
                Err("\"899\" is out of range: a role session lasts 15m to 12h"),
            ),
            ("14m", Err("\"14m\" is out of range")),
            ("0", Err("\"0\" is out of range")),
            ("43201", Err("\"43201\" is out of range")),
            ("13h", Err("\"13h\" is out of range")),
            (
                "99999999999999999999h",
                Err("\"99999999999999999999h\" is out of range"),
            ),
            ("18446744073709551615h", Err("out of range")),
            ("4294967296", Err("out of range")),
            ("900500ms", Err("not a whole number of seconds")),
            ("", Err("\"\" is not a duration")),
            ("h", Err("\"h\" is not a duration")),
            ("-900", Err("\"-900\" is not a duration")),
            ("1h30m", Err("unknown unit")),
            ("1d", Err("unknown unit")),
            ("1.5h", Err("unknown unit")),
            ("PT1H", Err("is not a duration")),
            ("😀", Err("is not a duration")),
        ] {
            let got = cluster(|s| s.secret.identity.session_duration = Some(input.into()));
            match want {
                Ok(secs) => assert_eq!(
                    got.unwrap().session_duration,
                    Some(Duration::from_secs(secs)),
                    "{input:?}"
                ),
                Err(part) => {
                    let got = fields(got);
                    assert_eq!(got.len(), 1, "{input:?}: {got:?}");
                    assert!(
                        got[0].starts_with(FIELD) && got[0].contains(part),
                        "{input:?}: {got:?}"
                    );
                    assert!(got[0].contains("15m to 12h"), "{input:?}: {got:?}");
                }
            }
        }
        // Unset: STS's default; a long value is not echoed.
        assert_eq!(cluster(|_| {}).unwrap().session_duration, None);
        let got = fields(cluster(|s| {
            s.secret.identity.session_duration = Some("9".repeat(10_000))
        }));
        assert!(
            got[0].starts_with("spec.identity.sessionDuration: a 10000-byte value is out of range"),
            "{got:?}"
        );
    }

    #[test]
    fn defaults_apply_when_fields_are_absent() {
        let spec: ClusterPullSecretSpec = serde_json::from_value(serde_json::json!({
            "registries": [{"host": ECR}],
            "identity": {"ambient": {}},
            "secretName": "ecr-pull",
        }))
        .unwrap();
        assert_eq!(spec.secret.refresh, 0.5);
        assert_eq!(spec.secret.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(spec.namespaces, NamespaceSelection::default());
        assert!(spec.secret.service_accounts.is_empty());
        let retain: SecretSpec = serde_json::from_value(serde_json::json!({
            "registries": [{"host": ECR}],
            "identity": {"ambient": {}},
            "secretName": "ecr-pull",
            "deletionPolicy": "Retain",
            "refresh": 0.8,
        }))
        .unwrap();
        assert_eq!(retain.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(retain.refresh, 0.8);
    }

    #[test]
    fn name_checks() {
        for (s, label, subdomain) in [
            ("a", true, true),
            ("team-a", true, true),
            ("a.b", false, true),
            ("-a", false, false),
            ("a-", false, false),
            ("A", false, false),
            ("", false, false),
            (&"a".repeat(63)[..], true, true),
            (&"a".repeat(64)[..], false, false),
        ] {
            assert_eq!(check_dns_label(s).is_ok(), label, "label {s:?}");
            assert_eq!(check_dns_subdomain(s).is_ok(), subdomain, "subdomain {s:?}");
        }
        for (k, ok) in [
            ("app", true),
            ("example.com/app", true),
            ("app.kubernetes.io/name", true),
            ("a/b/c", false),
            ("/app", false),
            ("Example.com/app", false),
            ("example.com/", false),
            ("App_1.x", true),
        ] {
            assert_eq!(check_qualified_name(k).is_ok(), ok, "key {k:?}");
        }
        for (v, ok) in [
            ("", true),
            ("a", true),
            ("A_b.c-1", true),
            ("_a", false),
            ("a b", false),
        ] {
            assert_eq!(check_label_value(v).is_ok(), ok, "value {v:?}");
        }
    }
}
