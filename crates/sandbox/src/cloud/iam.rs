//! IAM state: OIDC providers and roles (trust policy, permission policies), and a small
//! identity-policy evaluator for the permission checks ECR and ECR Public make.

use std::collections::BTreeMap;

use irsa_core::arn::{OidcProviderArn, RoleArn};
use irsa_core::token::Jwks;
use irsa_core::trust_policy::PolicyDocument;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An IAM OIDC identity provider, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer URL (`https://…`), as in `CreateOpenIDConnectProvider`'s `Url`.
    pub url: String,
    /// Accepted audiences (`ClientIDList`).
    pub client_ids: Vec<String>,
    /// The issuer's JWKS, for issuers other than the sandbox's own (whose keys are known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
}

/// An IAM role, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleConfig {
    /// The role name.
    pub name: String,
    /// The IAM path (`/` by default).
    #[serde(default = "default_path")]
    pub path: String,
    /// The trust policy (`AssumeRolePolicyDocument`), as JSON.
    pub trust_policy: Value,
    /// Identity policies; they become the role's inline policies `policy-1`, `policy-2`, …
    /// (what `ListRolePolicies` and `GetRolePolicy` answer).
    #[serde(default)]
    pub permission_policies: Vec<Value>,
    /// `MaxSessionDuration` in seconds (3600 by default, at most 43200).
    #[serde(default = "default_max_session")]
    pub max_session_duration: i64,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_max_session() -> i64 {
    3600
}

/// Why an IAM change was refused.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The provider URL is not an IAM-acceptable issuer URL.
    #[error("invalid OIDC provider url {url}: {reason}")]
    ProviderUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The provider has no client ids.
    #[error("OIDC provider {url} has no client ids: add at least one (usually sts.amazonaws.com)")]
    NoClientIds {
        /// The URL.
        url: String,
    },
    /// The provider's JWKS is not a key set.
    #[error("OIDC provider {url} has an invalid jwks: {reason}")]
    Jwks {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Name or path make no valid ARN.
    #[error("invalid role {name}: {reason}")]
    RoleName {
        /// The role name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The trust policy does not parse.
    #[error("role {name} has an invalid trust policy: {reason}")]
    TrustPolicy {
        /// The role name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A permission policy has no Statement list the evaluator understands.
    #[error("role {name} has an invalid permission policy: {reason}")]
    PermissionPolicy {
        /// The role name.
        name: String,
        /// Why.
        reason: String,
    },
    /// MaxSessionDuration out of range.
    #[error("role {name}: maxSessionDuration {value} must be between 3600 and 43200 seconds")]
    MaxSessionDuration {
        /// The role name.
        name: String,
        /// The value.
        value: i64,
    },
}

/// A registered provider.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// Its ARN.
    pub arn: OidcProviderArn,
    /// The configuration.
    pub config: OidcProviderConfig,
    /// Parsed external keys, if configured.
    pub jwks: Option<Jwks>,
    /// `ThumbprintList` (40 hex digits each; AWS no longer needs them for most issuers).
    pub thumbprints: Vec<String>,
    /// `CreateDate`, Unix seconds.
    pub created_at: i64,
}

/// A registered role.
#[derive(Debug, Clone)]
pub struct Role {
    /// Its ARN.
    pub arn: RoleArn,
    /// The role id (`AROA…`).
    pub role_id: String,
    /// The parsed trust policy.
    pub trust_policy: PolicyDocument,
    /// The trust policy as given (what `GetRole` answers).
    pub trust_policy_text: String,
    /// The configuration; its `permission_policies` are moved into `inline_policies`.
    pub config: RoleConfig,
    /// Inline policies by name: the document as given, and parsed.
    pub inline_policies: BTreeMap<String, (String, Value)>,
    /// ARNs of the attached managed policies, in attachment order.
    pub attached_policies: Vec<String>,
    /// The ARN of the managed policy set as the role's permissions boundary
    /// (`PermissionsBoundary` of `CreateRole`, `PutRolePermissionsBoundary`).
    pub permissions_boundary: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `Tags` (`Key`, `Value`), as `CreateRole` gave them.
    pub tags: Vec<(String, String)>,
    /// `CreateDate`, Unix seconds.
    pub created_at: i64,
}

/// A customer managed policy (one version, `v1`).
#[derive(Debug, Clone)]
pub struct ManagedPolicy {
    /// Its ARN.
    pub arn: String,
    /// `PolicyName`.
    pub name: String,
    /// `Path`.
    pub path: String,
    /// `PolicyId` (`ANPA…`).
    pub policy_id: String,
    /// The document as given, and parsed.
    pub document: (String, Value),
    /// `Description`.
    pub description: Option<String>,
    /// `CreateDate`, Unix seconds.
    pub created_at: i64,
}

/// Providers by issuer host/path, roles by name, managed policies by ARN: the one state that
/// STS, ECR and the IAM query API all read and write.
#[derive(Debug, Clone)]
pub struct Iam {
    partition: String,
    account: String,
    pub(crate) providers: BTreeMap<String, OidcProvider>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) policies: BTreeMap<String, ManagedPolicy>,
}

impl Iam {
    /// An empty account.
    pub fn new(partition: &str, account: &str) -> Self {
        Self {
            partition: partition.to_owned(),
            account: account.to_owned(),
            providers: BTreeMap::new(),
            roles: BTreeMap::new(),
            policies: BTreeMap::new(),
        }
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The partition.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Adds or replaces a provider.
    pub fn put_provider(
        &mut self,
        config: OidcProviderConfig,
    ) -> Result<OidcProviderArn, IamError> {
        let arn = OidcProviderArn::from_issuer(&self.partition, &self.account, &config.url)
            .map_err(|e| IamError::ProviderUrl {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        if config.client_ids.is_empty() {
            return Err(IamError::NoClientIds { url: config.url });
        }
        let jwks = match &config.jwks {
            Some(doc) => {
                Some(
                    Jwks::parse(doc.to_string().as_bytes()).map_err(|e| IamError::Jwks {
                        url: config.url.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        self.providers.insert(
            arn.provider.clone(),
            OidcProvider {
                arn: arn.clone(),
                config,
                jwks,
                thumbprints: Vec::new(),
                created_at: super::clock::wall_now(),
            },
        );
        Ok(arn)
    }

    /// The provider for a token's `iss` (matched as IAM does: scheme stripped, no trailing `/`).
    pub fn provider_for_issuer(&self, iss: &str) -> Option<&OidcProvider> {
        let key = irsa_core::arn::issuer_host_path(iss).ok()?;
        self.providers.get(&key)
    }

    /// Every provider.
    pub fn providers(&self) -> impl Iterator<Item = &OidcProvider> {
        self.providers.values()
    }

    /// Adds or replaces a role; its `permission_policies` become the inline policies
    /// `policy-1`, `policy-2`, ….
    pub fn put_role(&mut self, mut config: RoleConfig) -> Result<RoleArn, IamError> {
        let arn = RoleArn::new(&self.partition, &self.account, &config.path, &config.name)
            .map_err(|e| IamError::RoleName {
                name: config.name.clone(),
                reason: e.to_string(),
            })?;
        let trust_policy = PolicyDocument::from_value(&config.trust_policy).map_err(|e| {
            IamError::TrustPolicy {
                name: config.name.clone(),
                reason: e.to_string(),
            }
        })?;
        for policy in &config.permission_policies {
            statements(policy).map_err(|reason| IamError::PermissionPolicy {
                name: config.name.clone(),
                reason,
            })?;
        }
        let trust_policy_text = config.trust_policy.to_string();
        if !(3600..=43200).contains(&config.max_session_duration) {
            return Err(IamError::MaxSessionDuration {
                name: config.name,
                value: config.max_session_duration,
            });
        }
        let inline_policies = std::mem::take(&mut config.permission_policies)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("policy-{}", i + 1), (p.to_string(), p)))
            .collect();
        let role = Role {
            role_id: role_id(&arn),
            arn: arn.clone(),
            trust_policy,
            trust_policy_text,
            config,
            inline_policies,
            attached_policies: Vec::new(),
            permissions_boundary: None,
            description: None,
            tags: Vec::new(),
            created_at: super::clock::wall_now(),
        };
        self.roles.insert(role.config.name.clone(), role);
        Ok(arn)
    }

    /// The role a role ARN names, when account, partition and path match.
    pub fn role(&self, arn: &RoleArn) -> Option<&Role> {
        self.roles.get(&arn.name).filter(|r| {
            r.arn.account == arn.account
                && r.arn.partition == arn.partition
                && r.arn.path == arn.path
        })
    }

    /// The role of an assumed-role session (by name: session ARNs carry no path).
    pub fn role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// What decides the requests of a role's sessions: [`Self::permission_policies`] and the
    /// permissions boundary's document.
    pub fn permissions(&self, role: &Role) -> Permissions {
        Permissions {
            identity: self.permission_policies(role),
            boundary: role.permissions_boundary.as_ref().map(|arn| {
                self.policies
                    .get(arn)
                    .map(|p| p.document.1.clone())
                    .unwrap_or(Value::Null)
            }),
        }
    }

    /// Every role.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The identity policies that decide what a role's sessions may do: its inline policies
    /// and the documents of its attached managed policies.
    pub fn permission_policies(&self, role: &Role) -> Vec<Value> {
        role.inline_policies
            .values()
            .map(|(_, v)| v.clone())
            .chain(
                role.attached_policies
                    .iter()
                    .filter_map(|arn| self.policies.get(arn))
                    .map(|p| p.document.1.clone()),
            )
            .collect()
    }
}

/// What decides a role's sessions' requests: the identity policies, capped by the permissions
/// boundary when the role has one.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// The inline policies and the attached managed policies' documents.
    pub identity: Vec<Value>,
    /// The boundary policy's document, when the role has a boundary (an ARN that names no
    /// policy any more bounds to nothing: `Some(null)`, which allows nothing).
    pub boundary: Option<Value>,
}

/// A decision with where it came from, for AWS's wording of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    /// The effective decision.
    pub decision: PermissionDecision,
    /// The identity policies' decision.
    pub identity: PermissionDecision,
    /// The boundary's decision, when the role has a boundary.
    pub boundary: Option<PermissionDecision>,
}

impl Authorization {
    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.decision == PermissionDecision::Allow
    }

    /// AWS's reason, as its AccessDenied messages end: "with an explicit deny in an
    /// identity-based policy", "because no permissions boundary allows the … action", ….
    pub fn why(&self, action: &str) -> String {
        use PermissionDecision::*;
        match (self.identity, self.boundary) {
            (ExplicitDeny, _) => "with an explicit deny in an identity-based policy".to_owned(),
            (_, Some(ExplicitDeny)) => "with an explicit deny in a permissions boundary".to_owned(),
            (ImplicitDeny, _) => {
                format!("because no identity-based policy allows the {action} action")
            }
            _ => format!("because no permissions boundary allows the {action} action"),
        }
    }
}

impl Permissions {
    /// Identity policies only, no boundary.
    pub fn identity(identity: Vec<Value>) -> Self {
        Self {
            identity,
            boundary: None,
        }
    }

    /// `action` on `resource` as IAM's policy evaluation logic decides it within one account
    /// (IAM User Guide, "Policy evaluation logic"; "Permissions boundaries for IAM entities"):
    /// an explicit Deny in either the identity policies or the boundary refuses; otherwise the
    /// request needs an Allow in the identity policies and, with a boundary, one in the
    /// boundary too (the effective permissions are their intersection).
    pub fn evaluate(&self, action: &str, resource: &str) -> Authorization {
        let identity = evaluate_permissions(&self.identity, action, resource);
        let boundary = self
            .boundary
            .as_ref()
            .map(|b| evaluate_permissions(std::slice::from_ref(b), action, resource));
        Authorization::of(identity, boundary)
    }

    /// `action` on `resource` as IAM's policy simulator decides it without context
    /// ([`simulate_permissions`]), with the context keys of the conditional statements that
    /// cover the request (identity policies first, then the boundary's).
    pub fn simulate(&self, action: &str, resource: &str) -> (Authorization, Vec<String>) {
        let (identity, mut missing) = simulate_permissions(&self.identity, action, resource);
        let boundary = self.boundary.as_ref().map(|b| {
            let (d, keys) = simulate_permissions(std::slice::from_ref(b), action, resource);
            for k in keys {
                if !missing.contains(&k) {
                    missing.push(k);
                }
            }
            d
        });
        (Authorization::of(identity, boundary), missing)
    }
}

impl Authorization {
    fn of(identity: PermissionDecision, boundary: Option<PermissionDecision>) -> Self {
        use PermissionDecision::*;
        let decision = match (identity, boundary) {
            (ExplicitDeny, _) | (_, Some(ExplicitDeny)) => ExplicitDeny,
            (Allow, None | Some(Allow)) => Allow,
            _ => ImplicitDeny,
        };
        Authorization {
            decision,
            identity,
            boundary,
        }
    }
}

/// Checks an identity (permission) policy as IAM does before storing it: a JSON object with a
/// `Version` IAM knows (if any) and statements with Effect, Action/NotAction and
/// Resource/NotResource. The message names the JSON path.
pub fn check_permission_policy(policy: &Value) -> Result<(), String> {
    let Value::Object(top) = policy else {
        return Err("the document must be a JSON object".to_owned());
    };
    for key in top.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(format!(
                "{key}: unknown field; allowed: Version, Id, Statement"
            ));
        }
    }
    match top.get("Version") {
        None => {}
        Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
        Some(v) => {
            return Err(format!(
                "Version: must be \"2012-10-17\" (or the legacy \"2008-10-17\"), found {v}"
            ));
        }
    }
    statements(policy).map(|_| ())
}

/// A stable `AROA…` id from the role ARN.
fn role_id(arn: &RoleArn) -> String {
    use sha2::{Digest as _, Sha256};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(arn.to_string().as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("AROA{tail}")
}

/// The outcome of an identity-policy check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionDecision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing matched.
    ImplicitDeny,
}

#[derive(Debug)]
struct PermissionStatement {
    allow: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    has_condition: bool,
    /// The `Condition` block, when there is one.
    condition: Option<Value>,
}

fn strings(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "expected strings".to_owned())
            })
            .collect(),
        _ => Err("expected a string or a list of strings".to_owned()),
    }
}

fn statements(policy: &Value) -> Result<Vec<PermissionStatement>, String> {
    let list = match policy.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err("Statement: missing, or neither an object nor a list".to_owned()),
    };
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let at = |m: &str| format!("Statement[{i}]: {m}");
            if !s.is_object() {
                return Err(at("a statement must be an object"));
            }
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(at("Effect must be Allow or Deny")),
            };
            let (actions, not_action) = match (s.get("Action"), s.get("NotAction")) {
                (Some(a), None) => (strings(a).map_err(|e| at(&format!("Action: {e}")))?, false),
                (None, Some(a)) => (
                    strings(a).map_err(|e| at(&format!("NotAction: {e}")))?,
                    true,
                ),
                _ => return Err(at("exactly one of Action and NotAction is required")),
            };
            let (resources, not_resource) = match (s.get("Resource"), s.get("NotResource")) {
                (Some(r), None) => (
                    strings(r).map_err(|e| at(&format!("Resource: {e}")))?,
                    false,
                ),
                (None, Some(r)) => (
                    strings(r).map_err(|e| at(&format!("NotResource: {e}")))?,
                    true,
                ),
                _ => return Err(at("exactly one of Resource and NotResource is required")),
            };
            Ok(PermissionStatement {
                allow,
                actions,
                not_action,
                resources,
                not_resource,
                has_condition: s.get("Condition").is_some(),
                condition: s.get("Condition").cloned(),
            })
        })
        .collect()
}

/// `*` and `?` wildcards, case-insensitive (IAM action matching).
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    pattern_match(pattern, value, true)
}

/// `*` and `?` wildcards, case-sensitive: IAM matches a `Resource`/`NotResource` ARN pattern
/// case-sensitively (IAM User Guide, "IAM JSON policy elements: Resource"), only actions
/// case-insensitively (review M3).
pub fn resource_match(pattern: &str, value: &str) -> bool {
    pattern_match(pattern, value, false)
}

fn pattern_match(pattern: &str, value: &str, fold: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Evaluates identity policies for `action` on `resource`: an applicable Deny wins, else an
/// applicable Allow allows. The sandbox does not evaluate `Condition`s, and errs towards
/// refusing (review 24b M2): a conditional Allow never grants, a conditional Deny always
/// denies, so the sandbox never grants what AWS might refuse.
pub fn evaluate_permissions(
    policies: &[Value],
    action: &str,
    resource: &str,
) -> PermissionDecision {
    let mut allowed = false;
    for policy in policies {
        let Ok(statements) = statements(policy) else {
            continue;
        };
        for s in statements.iter().filter(|s| !(s.allow && s.has_condition)) {
            if s.covers(action, resource) {
                if !s.allow {
                    return PermissionDecision::ExplicitDeny;
                }
                allowed = true;
            }
        }
    }
    if allowed {
        PermissionDecision::Allow
    } else {
        PermissionDecision::ImplicitDeny
    }
}

impl PermissionStatement {
    /// Whether the statement's actions and resources cover the request.
    fn covers(&self, action: &str, resource: &str) -> bool {
        let action_hit = self.actions.iter().any(|a| wildcard_match(a, action)) != self.not_action;
        let resource_hit =
            self.resources.iter().any(|r| resource_match(r, resource)) != self.not_resource;
        action_hit && resource_hit
    }
}

/// Evaluates identity policies as IAM's policy simulator does when it is given no context
/// (SimulatePrincipalPolicy without ContextEntries): a conditional statement applies only
/// when its condition holds with every key missing (IAM User Guide, "IAM JSON policy
/// elements: Condition operators": a missing key does not match, except for negated
/// operators, `…IfExists`, `Null` and `ForAllValues:`), and the keys of every conditional
/// statement that covers the request are the answer's MissingContextValues. Unlike
/// [`evaluate_permissions`] (what ECR and STS decide, erring towards refusing), this is the
/// simulator's answer, which may allow what a real request is denied.
pub fn simulate_permissions(
    policies: &[Value],
    action: &str,
    resource: &str,
) -> (PermissionDecision, Vec<String>) {
    let mut allowed = false;
    let mut denied = false;
    let mut missing: Vec<String> = Vec::new();
    for policy in policies {
        let Ok(statements) = statements(policy) else {
            continue;
        };
        for s in statements.iter().filter(|s| s.covers(action, resource)) {
            if let Some(condition) = &s.condition {
                for key in condition_keys(condition) {
                    if !missing.contains(&key) {
                        missing.push(key);
                    }
                }
                if !holds_without_context(condition) {
                    continue;
                }
            }
            if s.allow {
                allowed = true;
            } else {
                denied = true;
            }
        }
    }
    let decision = if denied {
        PermissionDecision::ExplicitDeny
    } else if allowed {
        PermissionDecision::Allow
    } else {
        PermissionDecision::ImplicitDeny
    };
    (decision, missing)
}

/// The context keys a `Condition` block names.
fn condition_keys(condition: &Value) -> Vec<String> {
    let Value::Object(ops) = condition else {
        return Vec::new();
    };
    ops.values()
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.keys().cloned())
        .collect()
}

/// Whether a `Condition` block holds when none of its keys is in the request context.
fn holds_without_context(condition: &Value) -> bool {
    let Value::Object(ops) = condition else {
        return false;
    };
    ops.iter().all(|(op, block)| {
        let Some(keys) = block.as_object() else {
            return false;
        };
        keys.values().all(|values| operator_without_key(op, values))
    })
}

fn operator_without_key(op: &str, values: &Value) -> bool {
    if op.starts_with("ForAllValues:") {
        // Every value of an empty set matches.
        return true;
    }
    if op.starts_with("ForAnyValue:") {
        return false;
    }
    if op == "Null" {
        // `"Null": {"k": "true"}`: the key is absent.
        return strings(values).is_ok_and(|v| v.iter().any(|x| x == "true"));
    }
    op.ends_with("IfExists") || op.contains("Not")
}

/// Evaluates a trust policy for an AWS-principal caller (`sts:AssumeRole` in a role chain):
/// statements apply when `Principal` is `*` or its `AWS` list names one of `caller_arns` (the
/// session ARN, the role ARN, the account root ARN or the account id) and the action matches.
/// Core's evaluator models federated callers only, so this small one covers the chain; a
/// statement with `NotPrincipal` or a `Condition` never applies here.
pub fn evaluate_aws_principal_trust(
    trust_policy: &Value,
    caller_arns: &[String],
    action: &str,
) -> PermissionDecision {
    let list = match trust_policy.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return PermissionDecision::ImplicitDeny,
    };
    let mut allowed = false;
    for s in &list {
        if s.get("Condition").is_some() || s.get("NotPrincipal").is_some() {
            continue;
        }
        let principal_hit = match s.get("Principal") {
            Some(Value::String(star)) => star == "*",
            Some(Value::Object(p)) => {
                p.get("AWS")
                    .and_then(|v| strings(v).ok())
                    .is_some_and(|aws| {
                        aws.iter()
                            .any(|a| a == "*" || caller_arns.iter().any(|c| c == a))
                    })
            }
            _ => false,
        };
        let action_hit = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => strings(a)
                .map(|a| a.iter().any(|p| wildcard_match(p, action)))
                .unwrap_or(false),
            (None, Some(a)) => strings(a)
                .map(|a| !a.iter().any(|p| wildcard_match(p, action)))
                .unwrap_or(false),
            _ => false,
        };
        if principal_hit && action_hit {
            match s.get("Effect").and_then(Value::as_str) {
                Some("Deny") => return PermissionDecision::ExplicitDeny,
                Some("Allow") => allowed = true,
                _ => {}
            }
        }
    }
    if allowed {
        PermissionDecision::Allow
    } else {
        PermissionDecision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_match_case_sensitively_and_actions_do_not() {
        // Review M3: IAM User Guide, "IAM JSON policy elements: Action" (action names are
        // case-insensitive) and "…: Resource" (ARNs are case-sensitive).
        let policy = json!({"Statement": [{"Effect": "Allow", "Action": "ECR:batchgetimage", "Resource": "arn:aws:ecr:us-east-1:111122223333:repository/team/*"}]});
        let decide = |resource: &str| {
            evaluate_permissions(std::slice::from_ref(&policy), "ecr:BatchGetImage", resource)
        };
        assert_eq!(
            decide("arn:aws:ecr:us-east-1:111122223333:repository/team/app"),
            PermissionDecision::Allow
        );
        assert_eq!(
            decide("arn:aws:ecr:us-east-1:111122223333:repository/TEAM/app"),
            PermissionDecision::ImplicitDeny
        );
        let deny = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}, {"Effect": "Deny", "Action": "ecr:*", "NotResource": "arn:aws:ecr:*:*:repository/Team/*"}]});
        assert_eq!(
            evaluate_permissions(
                &[deny],
                "ecr:BatchGetImage",
                "arn:aws:ecr:us-east-1:111122223333:repository/team/app"
            ),
            PermissionDecision::ExplicitDeny
        );
        assert!(resource_match("a*c", "aXc"));
        assert!(!resource_match("a*C", "aXc"));
        assert!(resource_match("*", "*"));
        assert!(!resource_match("x*", "*"));
    }

    #[test]
    fn the_simulator_without_context_applies_a_condition_as_iam_does() {
        // IAM User Guide, "Condition operators": a key missing from the request context does
        // not match, except for negated operators, …IfExists, Null and ForAllValues:. The
        // keys of the conditional statements that cover the request are said.
        use PermissionDecision::*;
        let allow_all =
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]});
        let deny_if = |op: &str, value: Value| json!({"Statement": [{"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": "*", "Condition": {op: {"aws:SourceVpce": value}}}]});
        for (op, value, want) in [
            ("StringEquals", json!("vpce-1"), Allow),
            ("StringNotEquals", json!("vpce-1"), ExplicitDeny),
            ("StringEqualsIfExists", json!("vpce-1"), ExplicitDeny),
            ("Null", json!("true"), ExplicitDeny),
            ("Null", json!("false"), Allow),
            ("ForAllValues:StringEquals", json!(["a"]), ExplicitDeny),
            ("ForAnyValue:StringEquals", json!(["a"]), Allow),
            ("ArnNotLike", json!("arn:*"), ExplicitDeny),
        ] {
            let policies = [allow_all.clone(), deny_if(op, value)];
            let (d, missing) = simulate_permissions(&policies, "ecr:BatchGetImage", "*");
            assert_eq!(d, want, "{op}");
            assert_eq!(missing, ["aws:SourceVpce"], "{op}");
            // What ECR decides: a conditional Deny always refuses.
            assert_eq!(
                evaluate_permissions(&policies, "ecr:BatchGetImage", "*"),
                ExplicitDeny
            );
        }
        // A conditional Allow alone: implicitly denied, its keys said; no key for a statement
        // that does not cover the request.
        let vpce_allow = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "v"}}}, {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        let (d, missing) =
            simulate_permissions(std::slice::from_ref(&vpce_allow), "ecr:BatchGetImage", "*");
        assert_eq!(
            (d, missing),
            (ImplicitDeny, vec!["aws:SourceVpce".to_owned()])
        );
        assert_eq!(
            simulate_permissions(std::slice::from_ref(&allow_all), "ecr:BatchGetImage", "*"),
            (Allow, vec![])
        );
    }

    #[test]
    fn wildcards() {
        for (pattern, value, want) in [
            (
                "ecr:GetAuthorizationToken",
                "ecr:getauthorizationtoken",
                true,
            ),
            ("ecr:*", "ecr:GetAuthorizationToken", true),
            ("ecr:Get*Token", "ecr:GetAuthorizationToken", true),
            (
                "ecr:Get?uthorizationToken",
                "ecr:GetAuthorizationToken",
                true,
            ),
            ("ecr-public:*", "ecr:GetAuthorizationToken", false),
            ("*", "anything", true),
            ("ecr:Batch*", "ecr:GetAuthorizationToken", false),
            ("", "x", false),
        ] {
            assert_eq!(wildcard_match(pattern, value), want, "{pattern} vs {value}");
        }
    }

    fn allow_all_ecr_again() -> Value {
        json!({"Statement": {"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"}})
    }

    // IAM User Guide, "Permissions boundaries for IAM entities": the effective permissions
    // are the intersection of the identity-based policies and the boundary; "Policy evaluation
    // logic": an explicit deny in either wins.
    #[test]
    fn a_boundary_caps_the_identity_policies() {
        use PermissionDecision::*;
        let allow =
            |a: &str| json!({"Statement": [{"Effect": "Allow", "Action": a, "Resource": "*"}]});
        let deny =
            |a: &str| json!({"Statement": [{"Effect": "Deny", "Action": a, "Resource": "*"}]});
        for (name, identity, boundary, want, why) in [
            ("no boundary", vec![allow("ecr:*")], None, Allow, ""),
            (
                "both allow",
                vec![allow("ecr:*")],
                Some(allow("ecr:Get*")),
                Allow,
                "",
            ),
            (
                "the boundary lacks it",
                vec![allow("ecr:*")],
                Some(allow("s3:*")),
                ImplicitDeny,
                "because no permissions boundary allows the ecr:GetAuthorizationToken action",
            ),
            (
                "the boundary alone grants nothing",
                vec![],
                Some(allow("ecr:*")),
                ImplicitDeny,
                "because no identity-based policy allows the ecr:GetAuthorizationToken action",
            ),
            (
                "a Deny in the boundary",
                vec![allow("ecr:*")],
                Some(
                    json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}),
                ),
                ExplicitDeny,
                "with an explicit deny in a permissions boundary",
            ),
            (
                "a Deny in a policy",
                vec![allow("ecr:*"), deny("ecr:*")],
                Some(allow("*")),
                ExplicitDeny,
                "with an explicit deny in an identity-based policy",
            ),
            (
                "a boundary naming no policy",
                vec![allow("ecr:*")],
                Some(Value::Null),
                ImplicitDeny,
                "because no permissions boundary allows the ecr:GetAuthorizationToken action",
            ),
        ] {
            let p = Permissions { identity, boundary };
            let a = p.evaluate("ecr:GetAuthorizationToken", "*");
            assert_eq!(a.decision, want, "{name}");
            if want != Allow {
                assert_eq!(a.why("ecr:GetAuthorizationToken"), why, "{name}");
            }
        }
    }

    #[test]
    fn permission_table() {
        let allow_ecr = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
        let allow_all_ecr =
            json!({"Statement": {"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"}});
        let deny_token =
            json!({"Statement": [{"Effect": "Deny", "Action": "ecr:Get*", "Resource": "*"}]});
        let not_action =
            json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]});
        let conditional = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]});
        let conditional_deny = json!({"Statement": [{"Effect": "Deny", "Action": "ecr:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        let other_resource = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:ecr:*:*:repository/x"}]});
        use PermissionDecision::*;
        for (policies, action, want) in [
            (vec![allow_ecr.clone()], "ecr:GetAuthorizationToken", Allow),
            (
                vec![allow_ecr.clone()],
                "ecr-public:GetAuthorizationToken",
                ImplicitDeny,
            ),
            (
                vec![allow_all_ecr.clone()],
                "ecr:GetAuthorizationToken",
                Allow,
            ),
            (
                vec![allow_all_ecr, deny_token.clone()],
                "ecr:GetAuthorizationToken",
                ExplicitDeny,
            ),
            (
                vec![deny_token, allow_ecr],
                "ecr:GetAuthorizationToken",
                ExplicitDeny,
            ),
            (vec![not_action.clone()], "ecr:GetAuthorizationToken", Allow),
            (vec![not_action], "iam:PassRole", ImplicitDeny),
            (vec![conditional], "ecr:GetAuthorizationToken", ImplicitDeny),
            // Review 24b M2: a conditional Deny the sandbox cannot evaluate denies, so the
            // sandbox never grants what AWS might refuse.
            (
                vec![allow_all_ecr_again(), conditional_deny],
                "ecr:GetAuthorizationToken",
                ExplicitDeny,
            ),
            (
                vec![other_resource],
                "ecr:GetAuthorizationToken",
                ImplicitDeny,
            ),
            (vec![], "ecr:GetAuthorizationToken", ImplicitDeny),
        ] {
            assert_eq!(
                evaluate_permissions(&policies, action, "*"),
                want,
                "{action} {policies:?}"
            );
        }
    }

    #[test]
    fn roles_and_providers() {
        let mut iam = Iam::new("aws", "111122223333");
        let arn = iam
            .put_provider(OidcProviderConfig {
                url: "https://oidc.example.test/id/ABC/".into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                jwks: None,
            })
            .unwrap();
        assert_eq!(
            arn.to_string(),
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.test/id/ABC"
        );
        assert!(
            iam.provider_for_issuer("https://oidc.example.test/id/ABC")
                .is_some()
        );
        assert!(iam.provider_for_issuer("https://other.test").is_none());
        assert!(
            iam.put_provider(OidcProviderConfig {
                url: "http://x.test".into(),
                client_ids: vec!["a".into()],
                jwks: None
            })
            .is_err()
        );
        let role = RoleConfig {
            name: "puller".into(),
            path: "/ci/".into(),
            trust_policy: json!({"Version": "2012-10-17", "Statement": []}),
            permission_policies: vec![],
            max_session_duration: 3600,
        };
        let arn = iam.put_role(role.clone()).unwrap();
        assert_eq!(arn.to_string(), "arn:aws:iam::111122223333:role/ci/puller");
        assert!(iam.role(&arn).unwrap().role_id.starts_with("AROA"));
        let other_path: RoleArn = "arn:aws:iam::111122223333:role/puller".parse().unwrap();
        assert!(iam.role(&other_path).is_none());
        let bad = RoleConfig {
            permission_policies: vec![json!({"Statement": [{"Effect": "Maybe"}]})],
            ..role
        };
        assert!(matches!(
            iam.put_role(bad),
            Err(IamError::PermissionPolicy { .. })
        ));
    }

    #[test]
    fn aws_principal_trust_table() {
        let caller = vec![
            "arn:aws:sts::111122223333:assumed-role/puller/s".to_owned(),
            "arn:aws:iam::111122223333:role/puller".to_owned(),
            "arn:aws:iam::111122223333:root".to_owned(),
            "111122223333".to_owned(),
        ];
        let allow = |principal: Value| json!({"Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]});
        use PermissionDecision::*;
        for (policy, want) in [
            (
                allow(json!({"AWS": "arn:aws:iam::111122223333:role/puller"})),
                Allow,
            ),
            (
                allow(json!({"AWS": ["arn:aws:iam::111122223333:root"]})),
                Allow,
            ),
            (allow(json!({"AWS": "111122223333"})), Allow),
            (allow(json!("*")), Allow),
            (
                allow(json!({"AWS": "arn:aws:iam::111122223333:role/other"})),
                ImplicitDeny,
            ),
            (
                allow(json!({"Federated": "arn:aws:iam::111122223333:oidc-provider/x"})),
                ImplicitDeny,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRoleWithWebIdentity"}]}),
                ImplicitDeny,
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}),
                ImplicitDeny,
            ),
            (
                json!({"Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
                    {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:role/puller"}, "Action": "sts:*"}
                ]}),
                ExplicitDeny,
            ),
        ] {
            assert_eq!(
                evaluate_aws_principal_trust(&policy, &caller, "sts:AssumeRole"),
                want,
                "{policy}"
            );
        }
    }
}
