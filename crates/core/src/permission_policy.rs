//! IAM identity (permissions) policies, read well enough to answer one question with reasons:
//! does this set of policies allow `action` on `resource`? (`irsa doctor`: "may the role call
//! `ecr:GetAuthorizationToken`?")
//!
//! Decisions, from the IAM User Guide ("Policy evaluation logic", "IAM JSON policy elements"):
//! - an applicable `Deny` wins over any `Allow`; without an applicable `Allow` the request is
//!   implicitly denied;
//! - `Action`/`NotAction` match case-insensitively with `*` and `?`; `Resource`/`NotResource`
//!   with `*` and `?`, case-sensitively;
//! - `Condition`s are not evaluated here (their keys describe a request doctor does not make):
//!   a conditional statement is reported as such and never counted as an `Allow`.
//!
//! This reads what IAM returns for a role (documents IAM has already validated), but the text is
//! still untrusted: [`PermissionPolicy::from_value`] refuses malformed statements with the JSON
//! path instead of guessing.

use serde::Serialize;
use serde_json::Value;

/// One statement, as far as actions and resources go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionStatement {
    /// The Sid, or `Statement[i]`.
    pub label: String,
    /// `Effect: Allow`.
    pub allow: bool,
    /// `Action` or `NotAction` patterns.
    pub actions: Vec<String>,
    /// The statement uses `NotAction`.
    pub not_action: bool,
    /// `Resource` or `NotResource` patterns.
    pub resources: Vec<String>,
    /// The statement uses `NotResource`.
    pub not_resource: bool,
    /// The statement has a `Condition`.
    pub conditional: bool,
    /// The `Condition` block as compact JSON (cut to [`MAX_CONDITION`] bytes), when there is one.
    pub condition: Option<String>,
}

/// Longest `Condition` text kept for a statement (the rest is cut, with `…`).
pub const MAX_CONDITION: usize = 512;

/// An identity policy: its statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionPolicy {
    /// The statements in document order.
    pub statements: Vec<PermissionStatement>,
}

/// How a statement bears on the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementMatch {
    /// The policy's name (as the caller labelled it: `inline ecr`, `attached arn:…`).
    pub policy: String,
    /// The Sid, or `Statement[i]`.
    pub statement: String,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// Why it applies or what kept it from applying.
    pub note: String,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionOutcome {
    /// An unconditional Allow matched and no Deny did.
    Allow,
    /// A Deny matched.
    ExplicitDeny,
    /// No unconditional Allow matched.
    ImplicitDeny,
}

/// What [`evaluate`] decided and the statements that bear on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionDecision {
    /// The outcome.
    pub outcome: PermissionOutcome,
    /// Statements that apply (Allow or Deny).
    pub applies: Vec<StatementMatch>,
    /// Statements that name the action but do not apply: a Condition, or a resource that does
    /// not cover the request's (e.g. `ecr:GetAuthorizationToken` allowed on a repository ARN).
    pub near_misses: Vec<StatementMatch>,
    /// The `Condition`s of the Allows that cover the request but only under a Condition
    /// (`policy statement: {condition}`): when the outcome is an implicit deny and this is not
    /// empty, the conditions decide, and adding an unconditional Allow would bypass them.
    pub conditional_allows: Vec<String>,
}

impl PermissionPolicy {
    /// Parses a policy document (a JSON object with `Statement`).
    pub fn from_value(policy: &Value) -> Result<PermissionPolicy, String> {
        let Value::Object(top) = policy else {
            return Err("the policy document must be a JSON object".to_owned());
        };
        let list: Vec<&Value> = match top.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err("Statement: missing, or neither an object nor a list".to_owned()),
        };
        let statements = list
            .into_iter()
            .enumerate()
            .map(|(i, s)| statement(i, s))
            .collect::<Result<_, _>>()?;
        Ok(PermissionPolicy { statements })
    }

    /// Parses policy text.
    pub fn parse(text: &str) -> Result<PermissionPolicy, String> {
        if text.len() > crate::trust_policy::MAX_POLICY_BYTES {
            return Err(format!(
                "the policy document is {} bytes; the limit is {}",
                text.len(),
                crate::trust_policy::MAX_POLICY_BYTES
            ));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the policy is not JSON: {e}"))?;
        Self::from_value(&value)
    }
}

fn statement(i: usize, s: &Value) -> Result<PermissionStatement, String> {
    let at = |m: &str| format!("Statement[{i}]: {m}");
    let Value::Object(s) = s else {
        return Err(at("a statement must be an object"));
    };
    let allow = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err(at("Effect must be \"Allow\" or \"Deny\"")),
    };
    let pair = |yes: &str, no: &str| -> Result<(Vec<String>, bool), String> {
        match (s.get(yes), s.get(no)) {
            (Some(v), None) => Ok((strings(v).map_err(|e| at(&format!("{yes}: {e}")))?, false)),
            (None, Some(v)) => Ok((strings(v).map_err(|e| at(&format!("{no}: {e}")))?, true)),
            _ => Err(at(&format!("exactly one of {yes} and {no} is required"))),
        }
    };
    let (actions, not_action) = pair("Action", "NotAction")?;
    let (resources, not_resource) = pair("Resource", "NotResource")?;
    let label = match s.get("Sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => sid.to_owned(),
        _ => format!("Statement[{i}]"),
    };
    Ok(PermissionStatement {
        label,
        allow,
        actions,
        not_action,
        resources,
        not_resource,
        conditional: s.contains_key("Condition"),
        condition: s.get("Condition").map(|c| {
            let text = c.to_string();
            if text.len() <= MAX_CONDITION {
                text
            } else {
                let mut end = MAX_CONDITION;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &text[..end])
            }
        }),
    })
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

/// `*` (any run) and `?` (one character) wildcards; `fold` compares ASCII case-insensitively.
pub fn wildcard_match(pattern: &str, value: &str, fold: bool) -> bool {
    let eq = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && (p[pi] == '?' || eq(p[pi], v[vi])) {
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

/// Whether `policies` (each labelled) allow `action` on `resource`; see the module docs.
pub fn evaluate(
    policies: &[(String, PermissionPolicy)],
    action: &str,
    resource: &str,
) -> PermissionDecision {
    let mut applies = Vec::new();
    let mut near_misses = Vec::new();
    let mut conditional_allows = Vec::new();
    let (mut allowed, mut denied) = (false, false);
    for (name, policy) in policies {
        for s in &policy.statements {
            let action_hit =
                s.actions.iter().any(|a| wildcard_match(a, action, true)) != s.not_action;
            if !action_hit {
                continue;
            }
            let resource_hit = s
                .resources
                .iter()
                .any(|r| wildcard_match(r, resource, false))
                != s.not_resource;
            let effect = if s.allow { "Allow" } else { "Deny" };
            let m = |note: String| StatementMatch {
                policy: name.clone(),
                statement: s.label.clone(),
                effect,
                note,
            };
            let element = if s.not_resource {
                "NotResource"
            } else {
                "Resource"
            };
            if !resource_hit {
                near_misses.push(m(format!(
                    "names {action} but its {element} {:?} does not cover {resource:?}",
                    s.resources
                )));
            } else if s.conditional && s.allow {
                conditional_allows.push(format!(
                    "{name} {}: {}",
                    s.label,
                    s.condition.as_deref().unwrap_or("{}")
                ));
                near_misses.push(m(format!(
                    "allows {action} only under a Condition, which doctor cannot evaluate for a request it does not make"
                )));
            } else if s.allow {
                allowed = true;
                applies.push(m(format!("allows {action} on {resource}")));
            } else {
                // A conditional Deny may apply: reported as applying, since it can refuse.
                denied = true;
                let note = if s.conditional {
                    format!("denies {action} (under a Condition doctor cannot evaluate)")
                } else {
                    format!("denies {action}")
                };
                applies.push(m(note));
            }
        }
    }
    let outcome = if denied {
        PermissionOutcome::ExplicitDeny
    } else if allowed {
        PermissionOutcome::Allow
    } else {
        PermissionOutcome::ImplicitDeny
    };
    PermissionDecision {
        outcome,
        applies,
        near_misses,
        conditional_allows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decide(docs: &[Value]) -> PermissionDecision {
        let policies: Vec<(String, PermissionPolicy)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("p{i}"), PermissionPolicy::from_value(d).unwrap()))
            .collect();
        evaluate(&policies, "ecr:GetAuthorizationToken", "*")
    }

    // Expected answers from the IAM User Guide, "Policy evaluation logic" (an explicit deny in
    // any policy overrides an allow; by default all requests are implicitly denied) and "IAM
    // JSON policy elements: Action" (action names are case-insensitive, wildcards allowed).
    #[test]
    fn table() {
        use PermissionOutcome::*;
        let allow = |action: Value, resource: Value| json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]});
        let cases: Vec<(&str, Vec<Value>, PermissionOutcome)> = vec![
            (
                "exact",
                vec![allow(json!("ecr:GetAuthorizationToken"), json!("*"))],
                Allow,
            ),
            (
                "case-insensitive action",
                vec![allow(json!("ECR:getauthorizationtoken"), json!("*"))],
                Allow,
            ),
            (
                "service wildcard",
                vec![allow(json!("ecr:*"), json!("*"))],
                Allow,
            ),
            (
                "prefix wildcard",
                vec![allow(json!(["s3:*", "ecr:Get*"]), json!("*"))],
                Allow,
            ),
            (
                "other actions only",
                vec![allow(
                    json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]),
                    json!("*"),
                )],
                ImplicitDeny,
            ),
            (
                "repository resource does not cover *",
                vec![allow(
                    json!("ecr:GetAuthorizationToken"),
                    json!("arn:aws:ecr:us-east-1:111122223333:repository/app"),
                )],
                ImplicitDeny,
            ),
            (
                "NotAction excluding ecr",
                vec![
                    json!({"Statement": {"Effect": "Allow", "NotAction": "ecr:*", "Resource": "*"}}),
                ],
                ImplicitDeny,
            ),
            (
                "NotAction excluding s3",
                vec![
                    json!({"Statement": {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}}),
                ],
                Allow,
            ),
            (
                "deny in another policy wins",
                vec![
                    allow(json!("ecr:*"), json!("*")),
                    json!({"Statement": [{"Effect": "Deny", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}),
                ],
                ExplicitDeny,
            ),
            (
                "conditional allow is not counted",
                vec![
                    json!({"Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}),
                ],
                ImplicitDeny,
            ),
            ("no policies", vec![], ImplicitDeny),
        ];
        for (name, docs, expected) in cases {
            assert_eq!(decide(&docs).outcome, expected, "{name}");
        }
    }

    #[test]
    fn a_conditional_allow_is_named_with_its_condition() {
        let d = decide(&[
            json!({"Statement": [{"Sid": "Vpce", "Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}]}),
        ]);
        assert_eq!(d.outcome, PermissionOutcome::ImplicitDeny);
        assert_eq!(
            d.conditional_allows,
            [r#"p0 Vpce: {"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#]
        );
        let long = "x".repeat(2 * MAX_CONDITION);
        let d = decide(&[
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEquals": {"k": long}}}]}),
        ]);
        assert!(d.conditional_allows[0].len() < MAX_CONDITION + 64);
        assert!(d.conditional_allows[0].ends_with('…'));
        assert!(decide(&[]).conditional_allows.is_empty());
    }

    #[test]
    fn near_misses_say_why() {
        let d = decide(&[
            json!({"Statement": [{"Sid": "Repo", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "arn:aws:ecr:us-east-1:111122223333:repository/app"}]}),
        ]);
        assert_eq!(d.near_misses.len(), 1);
        assert_eq!(d.near_misses[0].statement, "Repo");
        assert!(
            d.near_misses[0].note.contains("does not cover \"*\""),
            "{:?}",
            d.near_misses
        );
    }

    #[test]
    fn malformed_statements_name_the_path() {
        for (doc, want) in [
            (json!([]), "JSON object"),
            (json!({"Statement": 1}), "Statement"),
            (
                json!({"Statement": [{"Effect": "allow", "Action": "x", "Resource": "*"}]}),
                "Statement[0]: Effect",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
                "Action and NotAction",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": [1], "Resource": "*"}]}),
                "Action: expected strings",
            ),
        ] {
            let e = PermissionPolicy::from_value(&doc).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(wildcard_match("*", "", false));
        assert!(!wildcard_match("A", "a", false));
        assert!(wildcard_match("A", "a", true));
        // A literal `*` resource is matched by the pattern `*` only (or a `*`-ending prefix).
        assert!(wildcard_match("*", "*", false));
        assert!(!wildcard_match("arn:aws:ecr:*", "*", false));
    }
}
