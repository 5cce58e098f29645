//! The trust-policy document model and its parser.

use serde::Serialize;
use serde_json::{Map, Value};

use super::condition::{self, ConditionOperator, OperatorNameError, Part, Tok};

/// Documents larger than this are refused before parsing (IAM's own limit is far lower).
pub const MAX_POLICY_BYTES: usize = 128 * 1024;

/// Why a trust policy could not be read. Every message names the JSON path and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is larger than [`MAX_POLICY_BYTES`].
    #[error("policy document is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The text is not JSON.
    #[error("policy document is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json reported.
        message: String,
    },
    /// A JSON value has the wrong type.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// JSON path, e.g. `Statement[0].Condition.StringEquals.x:sub`.
        path: String,
        /// What is allowed there.
        expected: &'static str,
        /// What was found (a JSON type name).
        found: &'static str,
    },
    /// A required element is missing.
    #[error("{path}: missing {element}; {hint}")]
    Missing {
        /// Path of the enclosing object.
        path: String,
        /// The missing element.
        element: &'static str,
        /// What to write.
        hint: &'static str,
    },
    /// A field that IAM does not know.
    #[error("{path}: unknown field \"{field}\"; allowed: {allowed}")]
    UnknownField {
        /// Path of the field.
        path: String,
        /// The field as written.
        field: String,
        /// The allowed names.
        allowed: &'static str,
    },
    /// A field that is valid IAM elsewhere but not in a trust policy, or two exclusive fields.
    #[error("{path}: {problem}")]
    NotAllowed {
        /// Path of the field.
        path: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A value outside its allowed set.
    #[error("{path}: must be {allowed}, found \"{found}\"")]
    BadValue {
        /// Path of the value.
        path: String,
        /// The allowed values.
        allowed: &'static str,
        /// The value found.
        found: String,
    },
    /// A condition operator IAM does not have.
    #[error("{path}: unknown condition operator \"{operator}\"{}", did_you_mean(.suggestion))]
    UnknownOperator {
        /// Path of the operator.
        path: String,
        /// The operator as written.
        operator: String,
        /// The closest known operator.
        suggestion: Option<&'static str>,
    },
    /// A set qualifier other than `ForAnyValue` / `ForAllValues`.
    #[error(
        "{path}: unknown condition qualifier \"{qualifier}\"; use \"ForAnyValue\" or \"ForAllValues\""
    )]
    UnknownQualifier {
        /// Path of the operator.
        path: String,
        /// The qualifier as written.
        qualifier: String,
    },
    /// A valid IAM operator irsa does not evaluate (dates, IP addresses, binary).
    #[error(
        "{path}: condition operator \"{operator}\" is valid IAM but irsa cannot evaluate it; check this statement by hand"
    )]
    UnsupportedOperator {
        /// Path of the operator.
        path: String,
        /// The operator.
        operator: String,
    },
}

fn did_you_mean(s: &Option<&'static str>) -> String {
    match s {
        Some(s) => format!("; did you mean \"{s}\"?"),
        None => String::new(),
    }
}

/// An IAM trust policy (a role's `AssumeRolePolicyDocument`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDocument {
    /// `Version`: absent, `2008-10-17` or `2012-10-17`. Policy variables need `2012-10-17`.
    pub version: Option<String>,
    /// `Id`.
    pub id: Option<String>,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement denies; wins over any Allow.
    Deny,
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// One statement of a trust policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    /// `Sid`.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal` or `NotPrincipal`.
    pub principal: PrincipalMatch,
    /// `Action` or `NotAction`.
    pub action: ActionMatch,
    /// Every condition, one per (operator, key); all must hold.
    pub conditions: Vec<Condition>,
}

impl Statement {
    /// The statement's label in explanations: its Sid, or `Statement[i]`.
    pub fn label(&self, index: usize) -> String {
        match &self.sid {
            Some(sid) if !sid.is_empty() => sid.clone(),
            _ => format!("Statement[{index}]"),
        }
    }
}

/// The principals a statement names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Principals {
    /// `"Principal": "*"` (everyone, including web-identity callers).
    pub any: bool,
    /// `Federated`: OIDC/SAML provider ARNs or provider names (`accounts.google.com`).
    pub federated: Vec<String>,
    /// `AWS`: account, user and role ARNs, or `*`.
    pub aws: Vec<String>,
    /// `Service`: service principals such as `ec2.amazonaws.com`.
    pub service: Vec<String>,
    /// `CanonicalUser`.
    pub canonical_user: Vec<String>,
}

/// `Principal` (caller must be listed) or `NotPrincipal` (caller must not be listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "principals", rename_all = "kebab-case")]
pub enum PrincipalMatch {
    /// `Principal`.
    Principal(Principals),
    /// `NotPrincipal`.
    NotPrincipal(Principals),
}

/// `Action` or `NotAction`, patterns as written (matched case-insensitively with `*`/`?`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "patterns", rename_all = "kebab-case")]
pub enum ActionMatch {
    /// `Action`: the request's action must match one pattern.
    Action(Vec<String>),
    /// `NotAction`: the request's action must match none.
    NotAction(Vec<String>),
}

/// One condition: an operator applied to one key with one or more values (ORed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// The operator.
    pub operator: ConditionOperator,
    /// The key as written (matched case-insensitively).
    pub key: String,
    /// The values, stringified as IAM does (`true`, `12`).
    pub values: Vec<String>,
    #[serde(skip)]
    pub(crate) compiled: Vec<CompiledValue>,
}

/// A value ready for matching.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CompiledValue {
    /// No policy variable: tokens ready.
    Plain(Vec<Tok>),
    /// Holds policy variables: resolved against the request at evaluation.
    Vars(Vec<Part>),
}

const TOP_FIELDS: &str = "Version, Id, Statement";
const STATEMENT_FIELDS: &str = "Sid, Effect, Principal, NotPrincipal, Action, NotAction, Condition";
const PRINCIPAL_FIELDS: &str = "Federated, AWS, Service, CanonicalUser";

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong(path: impl Into<String>, expected: &'static str, v: &Value) -> PolicyError {
    PolicyError::WrongType {
        path: path.into(),
        expected,
        found: type_name(v),
    }
}

impl PolicyDocument {
    /// Parses and validates a trust policy. Refuses anything IAM would refuse for a role's trust
    /// policy, and anything irsa could not evaluate faithfully.
    pub fn parse(json: &str) -> Result<PolicyDocument, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                size: json.len(),
                limit: MAX_POLICY_BYTES,
            });
        }
        let value: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::from_value(&value)
    }

    /// Validates an already-parsed JSON document (e.g. from `aws iam get-role`).
    pub fn from_value(value: &Value) -> Result<PolicyDocument, PolicyError> {
        let Value::Object(top) = value else {
            return Err(wrong("(document)", "an object", value));
        };
        let mut version = None;
        let mut id = None;
        let mut statement = None;
        for (k, v) in top {
            match k.as_str() {
                "Version" => match v {
                    Value::String(s) if s == "2012-10-17" || s == "2008-10-17" => {
                        version = Some(s.clone());
                    }
                    Value::String(s) => {
                        return Err(PolicyError::BadValue {
                            path: "Version".into(),
                            allowed: "\"2012-10-17\" (or the legacy \"2008-10-17\")",
                            found: s.clone(),
                        });
                    }
                    _ => return Err(wrong("Version", "a string", v)),
                },
                "Id" => match v {
                    Value::String(s) => id = Some(s.clone()),
                    _ => return Err(wrong("Id", "a string", v)),
                },
                "Statement" => statement = Some(v),
                _ => {
                    return Err(PolicyError::UnknownField {
                        path: k.clone(),
                        field: k.clone(),
                        allowed: TOP_FIELDS,
                    });
                }
            }
        }
        let variables = version.as_deref() == Some("2012-10-17");
        let statements = match statement {
            None => {
                return Err(PolicyError::Missing {
                    path: "(document)".into(),
                    element: "Statement",
                    hint: "add \"Statement\": [ … ]",
                });
            }
            Some(Value::Object(o)) => vec![parse_statement("Statement".into(), o, variables)?],
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let path = format!("Statement[{i}]");
                    match v {
                        Value::Object(o) => parse_statement(path, o, variables),
                        _ => Err(wrong(path, "an object", v)),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(wrong("Statement", "an object or a list of objects", v));
            }
        };
        Ok(PolicyDocument {
            version,
            id,
            statements,
        })
    }
}

fn parse_statement(
    path: String,
    o: &Map<String, Value>,
    variables: bool,
) -> Result<Statement, PolicyError> {
    let mut sid = None;
    let mut effect = None;
    let mut principal = None;
    let mut action = None;
    let mut conditions = Vec::new();
    for (k, v) in o {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "Sid" => match v {
                Value::String(s) => sid = Some(s.clone()),
                _ => return Err(wrong(p, "a string", v)),
            },
            "Effect" => {
                effect = Some(match v {
                    Value::String(s) if s == "Allow" => Effect::Allow,
                    Value::String(s) if s == "Deny" => Effect::Deny,
                    Value::String(s) => {
                        return Err(PolicyError::BadValue {
                            path: p,
                            allowed: "\"Allow\" or \"Deny\" (case-sensitive)",
                            found: s.clone(),
                        });
                    }
                    _ => return Err(wrong(p, "\"Allow\" or \"Deny\"", v)),
                });
            }
            "Principal" | "NotPrincipal" => {
                if principal.is_some() {
                    return Err(PolicyError::NotAllowed {
                        path: p,
                        problem: "a statement has either Principal or NotPrincipal, not both"
                            .into(),
                    });
                }
                let ps = parse_principals(&p, v)?;
                principal = Some(if k == "Principal" {
                    PrincipalMatch::Principal(ps)
                } else {
                    PrincipalMatch::NotPrincipal(ps)
                });
            }
            "Action" | "NotAction" => {
                if action.is_some() {
                    return Err(PolicyError::NotAllowed {
                        path: p,
                        problem: "a statement has either Action or NotAction, not both".into(),
                    });
                }
                let list = parse_actions(&p, v)?;
                action = Some(if k == "Action" {
                    ActionMatch::Action(list)
                } else {
                    ActionMatch::NotAction(list)
                });
            }
            "Condition" => conditions = parse_conditions(&p, v, variables)?,
            "Resource" | "NotResource" => {
                return Err(PolicyError::NotAllowed {
                    path: p,
                    problem: format!(
                        "a trust policy must not have {k}; the role itself is the resource, remove it"
                    ),
                });
            }
            _ => {
                return Err(PolicyError::UnknownField {
                    path: p,
                    field: k.clone(),
                    allowed: STATEMENT_FIELDS,
                });
            }
        }
    }
    let effect = effect.ok_or_else(|| PolicyError::Missing {
        path: path.clone(),
        element: "Effect",
        hint: "add \"Effect\": \"Allow\" or \"Deny\"",
    })?;
    let principal = principal.ok_or_else(|| PolicyError::Missing {
        path: path.clone(),
        element: "Principal",
        hint: "a trust policy statement names who may assume the role, e.g. \"Principal\": {\"Federated\": \"arn:aws:iam::<account>:oidc-provider/<issuer>\"}",
    })?;
    let action = action.ok_or_else(|| PolicyError::Missing {
        path: path.clone(),
        element: "Action",
        hint: "add \"Action\": \"sts:AssumeRoleWithWebIdentity\"",
    })?;
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        conditions,
    })
}

fn string_or_list(path: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong(format!("{path}[{i}]"), "a string", item)),
            })
            .collect(),
        _ => Err(wrong(path, "a string or a list of strings", v)),
    }
}

fn parse_principals(path: &str, v: &Value) -> Result<Principals, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(Principals {
            any: true,
            ..Principals::default()
        }),
        Value::String(s) => Err(PolicyError::NotAllowed {
            path: path.into(),
            problem: format!(
                "\"{s}\" is not a principal; write \"*\" or an object such as {{\"Federated\": \"{s}\"}}"
            ),
        }),
        Value::Object(o) => {
            let mut ps = Principals::default();
            for (k, v) in o {
                let p = format!("{path}.{k}");
                let list = string_or_list(&p, v)?;
                match k.as_str() {
                    "Federated" => ps.federated = list,
                    "AWS" => ps.aws = list,
                    "Service" => ps.service = list,
                    "CanonicalUser" => ps.canonical_user = list,
                    _ => {
                        return Err(PolicyError::UnknownField {
                            path: p,
                            field: k.clone(),
                            allowed: PRINCIPAL_FIELDS,
                        });
                    }
                }
            }
            Ok(ps)
        }
        _ => Err(wrong(path, "\"*\" or an object", v)),
    }
}

fn parse_actions(path: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
    let list = string_or_list(path, v)?;
    for (i, a) in list.iter().enumerate() {
        if a != "*" && !a.contains(':') {
            let p = match v {
                Value::Array(_) => format!("{path}[{i}]"),
                _ => path.to_string(),
            };
            return Err(PolicyError::NotAllowed {
                path: p,
                problem: format!(
                    "\"{a}\" is not an action; actions are written service:Action, e.g. \"sts:{a}\""
                ),
            });
        }
    }
    Ok(list)
}

/// IAM turns booleans and numbers in condition values into strings.
fn condition_value(path: &str, v: &Value) -> Result<String, PolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(wrong(path, "a string, number or boolean", v)),
    }
}

fn parse_conditions(path: &str, v: &Value, variables: bool) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(blocks) = v else {
        return Err(wrong(
            path,
            "an object of operators, e.g. {\"StringEquals\": {\"<key>\": \"<value>\"}}",
            v,
        ));
    };
    let mut out = Vec::new();
    for (op_name, block) in blocks {
        let p = format!("{path}.{op_name}");
        let operator = ConditionOperator::parse(op_name).map_err(|e| match e {
            OperatorNameError::UnknownQualifier(q) => PolicyError::UnknownQualifier {
                path: p.clone(),
                qualifier: q,
            },
            OperatorNameError::Unknown { suggestion } => PolicyError::UnknownOperator {
                path: p.clone(),
                operator: op_name.clone(),
                suggestion,
            },
            OperatorNameError::Unsupported => PolicyError::UnsupportedOperator {
                path: p.clone(),
                operator: op_name.clone(),
            },
            OperatorNameError::NullIfExists => PolicyError::NotAllowed {
                path: p.clone(),
                problem: "Null has no IfExists form; use \"Null\"".into(),
            },
        })?;
        let Value::Object(keys) = block else {
            return Err(wrong(
                p,
                "an object of condition keys, e.g. {\"<key>\": \"<value>\"}",
                block,
            ));
        };
        for (key, value) in keys {
            let kp = format!("{p}.{key}");
            let values = match value {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| condition_value(&format!("{kp}[{i}]"), item))
                    .collect::<Result<Vec<_>, _>>()?,
                _ => vec![condition_value(&kp, value)?],
            };
            let kind = operator.kind;
            if kind == condition::OperatorKind::Null
                && let Some(bad) = values
                    .iter()
                    .find(|v| !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
            {
                return Err(PolicyError::BadValue {
                    path: kp,
                    allowed: "\"true\" (key absent) or \"false\" (key present)",
                    found: bad.clone(),
                });
            }
            let compiled = values
                .iter()
                .map(|text| {
                    match (variables && kind.takes_variables())
                        .then(|| condition::parse_variables(text))
                        .flatten()
                    {
                        Some(parts) => CompiledValue::Vars(parts),
                        None => {
                            let mut toks = Vec::with_capacity(text.len());
                            condition::compile(text, kind.wildcards(), &mut toks);
                            CompiledValue::Plain(toks)
                        }
                    }
                })
                .collect();
            out.push(Condition {
                operator,
                key: key.clone(),
                values,
                compiled,
            });
        }
    }
    Ok(out)
}
