//! The request context STS builds for `AssumeRoleWithWebIdentity`, and the evaluator.

use std::fmt::{self, Write as _};

use serde::Serialize;
use serde_json::{Map, Value};

use super::condition::{self, ConditionOperator, OperatorKind, Part, SetQualifier, Tok};
use super::model::{
    ActionMatch, CompiledValue, Condition, Effect, PolicyDocument, PrincipalMatch, Principals,
};

/// The action STS evaluates for a web-identity exchange.
pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";

/// Token claims IAM copies into `<provider>:<claim>` condition keys. Other claims are not
/// available to trust policies.
pub const OIDC_CLAIM_KEYS: [&str; 6] = ["amr", "aud", "azp", "email", "oaud", "sub"];

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    values: Vec<String>,
    /// The token claim the key was read from.
    claim: Option<&'static str>,
}

/// What STS knows when it evaluates the trust policy of `AssumeRoleWithWebIdentity`: the
/// caller (a federated provider), the action and the condition keys (case-insensitive).
#[derive(Debug, Clone)]
pub struct RequestContext {
    principal: String,
    provider: String,
    action: String,
    any_account: bool,
    entries: Vec<Entry>,
}

fn claim_strings(v: &Value) -> Vec<String> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        v => one(v).into_iter().collect(),
    }
}

impl RequestContext {
    /// The context of a web-identity exchange.
    ///
    /// - `provider_arn`: `arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC`
    /// - `provider`: the issuer without `https://`, `oidc.eks.us-east-1.amazonaws.com/id/ABC`;
    ///   it prefixes the condition keys.
    /// - `claims`: the token's claims.
    ///
    /// Sets, as the IAM User Guide describes for OIDC federation: `<provider>:sub`, `:amr`
    /// (multivalued), `:email`, `:azp`, and `:aud`, which IAM reads from the `azp` claim when
    /// the token has one and from `aud` otherwise; when `azp` is present the `aud` claim is
    /// available as `:oaud`. Also sets `aws:FederatedProvider` to `provider_arn`. Other claims
    /// are not visible to a trust policy.
    pub fn web_identity(
        provider_arn: &str,
        provider: &str,
        claims: &Map<String, Value>,
    ) -> RequestContext {
        let provider = provider
            .strip_prefix("https://")
            .unwrap_or(provider)
            .to_string();
        let mut ctx = RequestContext {
            principal: provider_arn.to_string(),
            provider: provider.clone(),
            action: ASSUME_ROLE_WITH_WEB_IDENTITY.to_string(),
            any_account: false,
            entries: Vec::with_capacity(8),
        };
        let mut put = |suffix: &str, claim: &'static str| {
            if let Some(v) = claims.get(claim) {
                let values = claim_strings(v);
                if !values.is_empty() {
                    ctx.entries.push(Entry {
                        key: format!("{provider}:{suffix}"),
                        values,
                        claim: Some(claim),
                    });
                }
            }
        };
        put("sub", "sub");
        if claims.contains_key("azp") {
            put("aud", "azp");
            put("oaud", "aud");
        } else {
            put("aud", "aud");
        }
        put("azp", "azp");
        put("amr", "amr");
        put("email", "email");
        ctx.entries.push(Entry {
            key: "aws:FederatedProvider".into(),
            values: vec![provider_arn.to_string()],
            claim: None,
        });
        ctx
    }

    /// Adds or replaces a condition key, e.g. `sts:RoleSessionName`, `aws:SourceIdentity`,
    /// `aws:RequestTag/team`. An empty list makes the key absent.
    pub fn with_value(mut self, key: &str, values: Vec<String>) -> Self {
        self.entries.retain(|e| !e.key.eq_ignore_ascii_case(key));
        if !values.is_empty() {
            self.entries.push(Entry {
                key: key.to_string(),
                values,
                claim: None,
            });
        }
        self
    }

    /// Replaces the action (default `sts:AssumeRoleWithWebIdentity`), e.g. `sts:TagSession`.
    pub fn with_action(mut self, action: &str) -> Self {
        self.action = action.to_string();
        self
    }

    /// For `irsa policy check --issuer URL`, where the AWS account is unknown: a `Federated`
    /// principal matches when it is an `oidc-provider/<provider>` ARN of any account and
    /// partition. Explanations say that the account was not checked.
    pub fn with_any_account(mut self) -> Self {
        self.any_account = true;
        self
    }

    /// The caller: the federated provider ARN.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The provider (issuer host and path) that prefixes the OIDC condition keys.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The action being evaluated.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The values of a condition key (case-insensitive), `None` when absent.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entry(key).map(|e| e.values.as_slice())
    }

    /// Every key and its values, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.values.as_slice()))
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.key.eq_ignore_ascii_case(key))
    }
}

/// The result of evaluating a trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// An Allow statement applies and no Deny does.
    Allow,
    /// A Deny statement applies.
    ExplicitDeny,
    /// No statement applies.
    ImplicitDeny,
}

/// The decision and one reason per statement.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Allow, explicit or implicit deny.
    pub outcome: Outcome,
    /// One reason per statement, in document order.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Whether STS would issue credentials.
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }
}

/// Whether one statement applies, and if not the first thing that did not match.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// The Sid, or `Statement[i]`.
    pub statement: String,
    /// The statement's effect.
    pub effect: Effect,
    /// Principal, action and every condition matched.
    pub applies: bool,
    /// A sentence for people: what matched, or the first thing that did not.
    pub message: String,
    /// The first mismatch, structured (`None` when the statement applies).
    pub failed: Option<Mismatch>,
}

/// The first element of a statement that did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mismatch {
    /// The caller is not (or, for NotPrincipal, is) among the statement's principals.
    Principal {
        /// The principals the statement names (`Federated:…`, `AWS:…`, `*`).
        policy: Vec<String>,
        /// The caller.
        caller: String,
        /// The statement uses NotPrincipal.
        not_principal: bool,
    },
    /// The action is not (or, for NotAction, is) matched.
    Action {
        /// The statement's patterns.
        policy: Vec<String>,
        /// The request's action.
        action: String,
        /// The statement uses NotAction.
        not_action: bool,
    },
    /// A condition did not hold.
    Condition(ConditionFailure),
}

/// A condition that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionFailure {
    /// The operator as written, e.g. `ForAnyValue:StringLike`.
    pub operator: String,
    /// The key as written in the policy.
    pub key: String,
    /// The policy's values.
    pub expected: Vec<String>,
    /// The request's values (empty when the key is absent).
    pub actual: Vec<String>,
    /// Whether the request has the key.
    pub key_present: bool,
    /// The token claim the key reads (`sub`, `azp`, …), when the key is an OIDC key of the caller.
    pub claim: Option<String>,
    /// The provider the key belongs to, when it is not the caller's provider.
    pub other_provider: Option<String>,
}

/// Evaluates a trust policy as STS does: an applicable Deny wins, else an applicable Allow
/// allows, else the request is implicitly denied. Every statement gets a [`Reason`].
pub fn evaluate(policy: &PolicyDocument, request: &RequestContext) -> Decision {
    let mut any_allow = false;
    let mut any_deny = false;
    let mut reasons = Vec::with_capacity(policy.statements.len());
    for (i, st) in policy.statements.iter().enumerate() {
        let (failed, message) = match check_principal(&st.principal, request)
            .or_else(|| check_action(&st.action, request))
        {
            Some(m) => {
                let message = mismatch_message(&m);
                (Some(m), message)
            }
            None => match st.conditions.iter().find(|c| !holds(c, request)) {
                Some(c) => {
                    let f = failure(c, request);
                    let message = condition_message(c.operator, &f, request);
                    (Some(Mismatch::Condition(f)), message)
                }
                None => (
                    None,
                    applies_message(st.effect, &st.principal, st.conditions.len(), request),
                ),
            },
        };
        let applies = failed.is_none();
        if applies {
            match st.effect {
                Effect::Allow => any_allow = true,
                Effect::Deny => any_deny = true,
            }
        }
        reasons.push(Reason {
            statement: st.label(i),
            effect: st.effect,
            applies,
            message,
            failed,
        });
    }
    let outcome = if any_deny {
        Outcome::ExplicitDeny
    } else if any_allow {
        Outcome::Allow
    } else {
        Outcome::ImplicitDeny
    };
    Decision { outcome, reasons }
}

// ---------------------------------------------------------------- principal and action

/// How a `Federated` entry matches the caller.
fn federated_matches(entry: &str, request: &RequestContext) -> bool {
    if entry == "*" || entry == request.principal {
        return true;
    }
    request.any_account && provider_of_arn(entry) == Some(request.provider.as_str())
}

/// `arn:<partition>:iam::<account>:oidc-provider/<provider>` → `<provider>`.
fn provider_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("iam"), Some(""), Some(_), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    resource.strip_prefix("oidc-provider/")
}

fn account_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4)
}

fn principal_listed(ps: &Principals, request: &RequestContext) -> bool {
    // `"Principal": "*"` and `{"AWS": "*"}` are equivalent in IAM and include federated callers.
    ps.any
        || ps.aws.iter().any(|a| a == "*")
        || ps.federated.iter().any(|f| federated_matches(f, request))
}

fn principal_names(ps: &Principals) -> Vec<String> {
    let mut out = Vec::new();
    if ps.any {
        out.push("*".to_string());
    }
    for (kind, list) in [
        ("Federated", &ps.federated),
        ("AWS", &ps.aws),
        ("Service", &ps.service),
        ("CanonicalUser", &ps.canonical_user),
    ] {
        out.extend(list.iter().map(|p| format!("{kind}:{p}")));
    }
    out
}

fn check_principal(pm: &PrincipalMatch, request: &RequestContext) -> Option<Mismatch> {
    let (ps, not) = match pm {
        PrincipalMatch::Principal(ps) => (ps, false),
        PrincipalMatch::NotPrincipal(ps) => (ps, true),
    };
    if principal_listed(ps, request) != not {
        return None;
    }
    Some(Mismatch::Principal {
        policy: principal_names(ps),
        caller: request.principal.clone(),
        not_principal: not,
    })
}

/// Case-insensitive `*`/`?` match straight on the pattern text (actions).
fn glob_text(pattern: &str, value: &str) -> bool {
    let mut toks = Vec::with_capacity(pattern.len());
    condition::compile(pattern, true, &mut toks);
    condition::glob(&toks, value, true)
}

fn action_matches(patterns: &[String], action: &str) -> bool {
    patterns.iter().any(|p| {
        // Fast path for the overwhelmingly common literal action.
        if !p.contains(['*', '?']) {
            p.eq_ignore_ascii_case(action)
        } else {
            glob_text(p, action)
        }
    })
}

fn check_action(am: &ActionMatch, request: &RequestContext) -> Option<Mismatch> {
    let (patterns, not) = match am {
        ActionMatch::Action(p) => (p, false),
        ActionMatch::NotAction(p) => (p, true),
    };
    if action_matches(patterns, &request.action) != not {
        return None;
    }
    Some(Mismatch::Action {
        policy: patterns.clone(),
        action: request.action.clone(),
        not_action: not,
    })
}

// ---------------------------------------------------------------- conditions

/// Resolves a value with policy variables; `None` when a variable has no value and no default.
fn resolve(parts: &[Part], wildcards: bool, request: &RequestContext) -> Option<Vec<Tok>> {
    let mut toks = Vec::new();
    for part in parts {
        match part {
            Part::Text(t) => condition::compile(t, wildcards, &mut toks),
            Part::Literal(c) => toks.push(Tok::Lit(*c)),
            Part::Var { key, default } => {
                // Only single-valued keys can be substituted; their text is literal.
                let value = match request.get(key) {
                    Some([v]) => v.as_str(),
                    _ => default.as_deref()?,
                };
                condition::compile(value, false, &mut toks);
            }
        }
    }
    Some(toks)
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Whether one policy value matches one request value under the operator's positive form.
fn value_matches(
    kind: OperatorKind,
    text: &str,
    compiled: &CompiledValue,
    r: &str,
    request: &RequestContext,
) -> bool {
    use OperatorKind as K;
    match kind {
        K::NumericEquals
        | K::NumericNotEquals
        | K::NumericLessThan
        | K::NumericLessThanEquals
        | K::NumericGreaterThan
        | K::NumericGreaterThanEquals => {
            let (Some(req), Some(pol)) = (parse_number(r), parse_number(text)) else {
                return false;
            };
            match kind {
                K::NumericLessThan => req < pol,
                K::NumericLessThanEquals => req <= pol,
                K::NumericGreaterThan => req > pol,
                K::NumericGreaterThanEquals => req >= pol,
                _ => req == pol,
            }
        }
        K::Bool => text.eq_ignore_ascii_case(r),
        K::Null => false,
        _ => {
            let owned;
            let toks: &[Tok] = match compiled {
                CompiledValue::Plain(t) => t,
                CompiledValue::Vars(parts) => match resolve(parts, kind.wildcards(), request) {
                    Some(t) => {
                        owned = t;
                        &owned
                    }
                    None => return false,
                },
            };
            match kind {
                K::ArnEquals | K::ArnLike | K::ArnNotEquals | K::ArnNotLike => {
                    condition::arn_glob(toks, r)
                }
                K::StringEqualsIgnoreCase | K::StringNotEqualsIgnoreCase => {
                    condition::glob(toks, r, true)
                }
                _ => condition::glob(toks, r, false),
            }
        }
    }
}

fn any_value_matches(c: &Condition, r: &str, request: &RequestContext) -> bool {
    c.values
        .iter()
        .zip(&c.compiled)
        .any(|(text, compiled)| value_matches(c.operator.kind, text, compiled, r, request))
}

/// Whether a condition holds. Semantics (IAM User Guide, condition operators and multivalued
/// keys):
/// - absent (or empty) key: `IfExists` → true; `ForAllValues` → true; `ForAnyValue` → false;
///   otherwise positive operators → false, negated operators → true;
/// - no qualifier: the positive form holds when any request value matches any policy value;
///   a negated operator is the exact negation (no request value matches any policy value);
/// - `ForAnyValue`: some request value satisfies the operator; `ForAllValues`: every request
///   value does, where a negated operator is satisfied by a value matching none of the policy
///   values.
pub(crate) fn holds(c: &Condition, request: &RequestContext) -> bool {
    let op = c.operator;
    let values: &[String] = request.get(&c.key).unwrap_or(&[]);
    if op.kind == OperatorKind::Null {
        let absent = values.is_empty();
        return c
            .values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true") == absent);
    }
    let negated = op.kind.is_negated();
    if values.is_empty() {
        return match (op.if_exists, op.qualifier) {
            (true, _) => true,
            (_, Some(SetQualifier::ForAllValues)) => true,
            (_, Some(SetQualifier::ForAnyValue)) => false,
            (false, None) => negated,
        };
    }
    let sat = |r: &String| any_value_matches(c, r, request) != negated;
    match op.qualifier {
        None if negated => values.iter().all(sat),
        None | Some(SetQualifier::ForAnyValue) => values.iter().any(sat),
        Some(SetQualifier::ForAllValues) => values.iter().all(sat),
    }
}

/// The provider part of an OIDC condition key, when the key looks like `<host…>:<claim>`.
fn key_provider(key: &str) -> Option<(&str, &str)> {
    let (prefix, suffix) = key.rsplit_once(':')?;
    prefix.contains('.').then_some((prefix, suffix))
}

fn failure(c: &Condition, request: &RequestContext) -> ConditionFailure {
    let entry = request.entry(&c.key);
    let mut claim = entry.and_then(|e| e.claim).map(str::to_string);
    let mut other_provider = None;
    if entry.is_none()
        && let Some((prefix, suffix)) = key_provider(&c.key)
    {
        if prefix.eq_ignore_ascii_case(&request.provider) {
            claim = Some(suffix.to_ascii_lowercase());
        } else {
            other_provider = Some(prefix.to_string());
        }
    }
    ConditionFailure {
        operator: c.operator.to_string(),
        key: c.key.clone(),
        expected: c.values.clone(),
        actual: entry.map(|e| e.values.clone()).unwrap_or_default(),
        key_present: entry.is_some(),
        claim,
        other_provider,
    }
}

// ---------------------------------------------------------------- messages

fn quoted(values: &[String]) -> String {
    let mut s = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\"{v}\"");
    }
    s
}

fn expected_text(
    f: &ConditionFailure,
    kind: OperatorKind,
    qualifier: Option<SetQualifier>,
) -> String {
    if kind == OperatorKind::Null {
        return if f.expected.iter().any(|v| v.eq_ignore_ascii_case("true")) {
            "the key to be absent".into()
        } else {
            "the key to be present".into()
        };
    }
    let list = quoted(&f.expected);
    let several = f.expected.len() > 1;
    match (qualifier, kind.is_negated(), several) {
        (Some(SetQualifier::ForAllValues), false, _) => format!("every value in {list}"),
        (Some(SetQualifier::ForAllValues), true, _) => format!("no value in {list}"),
        (Some(SetQualifier::ForAnyValue), false, _) => format!("at least one value in {list}"),
        (Some(SetQualifier::ForAnyValue), true, _) => {
            format!("at least one value outside {list}")
        }
        (None, false, false) => list,
        (None, false, true) => format!("one of {list}"),
        (None, true, false) => format!("anything but {list}"),
        (None, true, true) => format!("none of {list}"),
    }
}

fn condition_message(
    op: ConditionOperator,
    f: &ConditionFailure,
    request: &RequestContext,
) -> String {
    let (kind, qualifier) = (op.kind, op.qualifier);
    let head = format!(
        "{} {} expected {}",
        f.operator,
        f.key,
        expected_text(f, kind, qualifier)
    );
    if f.key_present {
        let who = if f.claim.is_some() {
            "token has"
        } else {
            "request has"
        };
        let mut s = format!("{head}, {who} {}.", quoted(&f.actual));
        if f.claim.as_deref() == Some("azp") {
            s.push_str(
                " (IAM reads :aud from the token's azp claim when it has one; its aud claim is :oaud.)",
            );
        }
        return s;
    }
    if let Some(other) = &f.other_provider {
        return format!(
            "{head}, but this key belongs to provider {other} while the token was issued by {}: the policy was probably written for another cluster or issuer; use the key prefix {}.",
            request.provider, request.provider
        );
    }
    match f.claim.as_deref() {
        Some(claim) if OIDC_CLAIM_KEYS.contains(&claim) => {
            let claim = if claim == "oaud" { "aud" } else { claim };
            if f.key.to_ascii_lowercase().ends_with(":oaud") {
                format!(
                    "{head}, but the request has no {}: IAM sets :oaud only when the token has an azp claim.",
                    f.key
                )
            } else {
                format!("{head}, but the token has no \"{claim}\" claim.")
            }
        }
        Some(claim) => format!(
            "{head}, but IAM does not pass the token's \"{claim}\" claim to trust policies (only {}).",
            OIDC_CLAIM_KEYS.join(", ")
        ),
        None => format!("{head}, but the request has no {}.", f.key),
    }
}

fn mismatch_message(m: &Mismatch) -> String {
    match m {
        Mismatch::Principal {
            policy,
            caller,
            not_principal: true,
        } => format!(
            "NotPrincipal {} excludes the caller {caller}.",
            policy.join(", ")
        ),
        Mismatch::Principal { policy, caller, .. } => {
            let federated: Vec<&str> = policy
                .iter()
                .filter_map(|p| p.strip_prefix("Federated:"))
                .collect();
            if federated.is_empty() {
                return format!(
                    "principal {} does not include the web-identity caller {caller}: only a Federated principal (or \"*\") matches AssumeRoleWithWebIdentity.",
                    policy.join(", ")
                );
            }
            let mut s = format!(
                "principal Federated {} does not match the caller {caller}",
                federated.join(", ")
            );
            let caller_provider = provider_of_arn(caller);
            for f in &federated {
                if let (Some(fp), Some(cp)) = (provider_of_arn(f), caller_provider) {
                    if fp == cp {
                        let _ = write!(
                            s,
                            "; same provider but account {} instead of {}",
                            account_of_arn(f).unwrap_or("?"),
                            account_of_arn(caller).unwrap_or("?")
                        );
                    } else if fp.eq_ignore_ascii_case(cp) {
                        s.push_str(
                            "; the provider differs only in case and ARNs are case-sensitive",
                        );
                    } else {
                        let _ = write!(s, "; it trusts provider {fp}, the token comes from {cp}");
                    }
                }
            }
            s.push('.');
            s
        }
        Mismatch::Action {
            policy,
            action,
            not_action,
        } => {
            if *not_action {
                format!("NotAction {} excludes {action}.", quoted(policy))
            } else {
                format!("Action {} does not match {action}.", quoted(policy))
            }
        }
        // Condition messages are written where the operator is at hand.
        Mismatch::Condition(f) => format!("{} {} did not hold.", f.operator, f.key),
    }
}

fn applies_message(
    effect: Effect,
    pm: &PrincipalMatch,
    conditions: usize,
    request: &RequestContext,
) -> String {
    let verb = match effect {
        Effect::Allow => "allows",
        Effect::Deny => "denies",
    };
    let loose = request.any_account
        && matches!(pm, PrincipalMatch::Principal(ps)
            if !ps.any && !ps.federated.iter().any(|f| f == "*" || *f == request.principal));
    let who = if loose {
        format!("provider {} (account not checked)", request.provider)
    } else {
        request.principal.clone()
    };
    let conds = match conditions {
        0 => "it has no conditions".to_string(),
        1 => "its condition holds".to_string(),
        n => format!("all {n} conditions hold"),
    };
    format!(
        "{verb} {} for {who}: principal and action match and {conds}.",
        request.action
    )
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pick = |effect: Effect| {
            self.reasons
                .iter()
                .filter(|r| r.applies && r.effect == effect)
                .map(|r| r.statement.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.outcome {
            Outcome::Allow => writeln!(f, "allowed by {}", pick(Effect::Allow))?,
            Outcome::ExplicitDeny => writeln!(f, "denied explicitly by {}", pick(Effect::Deny))?,
            Outcome::ImplicitDeny => writeln!(f, "denied: no statement allows this request")?,
        }
        for r in &self.reasons {
            let state = if r.applies {
                "applies"
            } else {
                "does not apply"
            };
            writeln!(f, "  {} ({}) {state}: {}", r.statement, r.effect, r.message)?;
        }
        Ok(())
    }
}
