//! Condition operators, the `*`/`?` matcher and policy variables.

use serde::Serialize;

/// The comparison a condition operator performs, without its qualifier or `IfExists` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OperatorKind {
    /// Exact, case-sensitive string match.
    StringEquals,
    /// Negation of `StringEquals`.
    StringNotEquals,
    /// String match ignoring case.
    StringEqualsIgnoreCase,
    /// Negation of `StringEqualsIgnoreCase`.
    StringNotEqualsIgnoreCase,
    /// Case-sensitive match where `*` is any run of characters and `?` exactly one.
    StringLike,
    /// Negation of `StringLike`.
    StringNotLike,
    /// Numbers are equal.
    NumericEquals,
    /// Negation of `NumericEquals`.
    NumericNotEquals,
    /// Request value < policy value.
    NumericLessThan,
    /// Request value <= policy value.
    NumericLessThanEquals,
    /// Request value > policy value.
    NumericGreaterThan,
    /// Request value >= policy value.
    NumericGreaterThanEquals,
    /// `"true"`/`"false"`, compared ignoring case.
    Bool,
    /// ARN match, each of the six `:`-separated parts compared separately (wildcards allowed).
    ArnEquals,
    /// Same as `ArnEquals`.
    ArnLike,
    /// Negation of `ArnEquals`.
    ArnNotEquals,
    /// Negation of `ArnLike`.
    ArnNotLike,
    /// `"true"`: the key is absent; `"false"`: the key is present.
    Null,
}

impl OperatorKind {
    /// Every operator irsa evaluates, with its IAM name.
    pub const ALL: [(&'static str, OperatorKind); 18] = [
        ("StringEquals", OperatorKind::StringEquals),
        ("StringNotEquals", OperatorKind::StringNotEquals),
        (
            "StringEqualsIgnoreCase",
            OperatorKind::StringEqualsIgnoreCase,
        ),
        (
            "StringNotEqualsIgnoreCase",
            OperatorKind::StringNotEqualsIgnoreCase,
        ),
        ("StringLike", OperatorKind::StringLike),
        ("StringNotLike", OperatorKind::StringNotLike),
        ("NumericEquals", OperatorKind::NumericEquals),
        ("NumericNotEquals", OperatorKind::NumericNotEquals),
        ("NumericLessThan", OperatorKind::NumericLessThan),
        ("NumericLessThanEquals", OperatorKind::NumericLessThanEquals),
        ("NumericGreaterThan", OperatorKind::NumericGreaterThan),
        (
            "NumericGreaterThanEquals",
            OperatorKind::NumericGreaterThanEquals,
        ),
        ("Bool", OperatorKind::Bool),
        ("ArnEquals", OperatorKind::ArnEquals),
        ("ArnLike", OperatorKind::ArnLike),
        ("ArnNotEquals", OperatorKind::ArnNotEquals),
        ("ArnNotLike", OperatorKind::ArnNotLike),
        ("Null", OperatorKind::Null),
    ];

    /// Valid IAM operators that irsa refuses rather than evaluates wrongly.
    pub const UNSUPPORTED: [&'static str; 9] = [
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "IpAddress",
        "NotIpAddress",
        "BinaryEquals",
    ];

    /// The IAM name, e.g. `StringEquals`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether the operator is a negation ("matches none of the values").
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            OperatorKind::StringNotEquals
                | OperatorKind::StringNotEqualsIgnoreCase
                | OperatorKind::StringNotLike
                | OperatorKind::NumericNotEquals
                | OperatorKind::ArnNotEquals
                | OperatorKind::ArnNotLike
        )
    }

    /// Whether `*` and `?` in policy values are wildcards.
    pub(crate) fn wildcards(self) -> bool {
        matches!(
            self,
            OperatorKind::StringLike
                | OperatorKind::StringNotLike
                | OperatorKind::ArnEquals
                | OperatorKind::ArnLike
                | OperatorKind::ArnNotEquals
                | OperatorKind::ArnNotLike
        )
    }

    /// Whether policy variables (`${aws:username}`) are substituted in values.
    pub(crate) fn takes_variables(self) -> bool {
        matches!(
            self,
            OperatorKind::StringEquals
                | OperatorKind::StringNotEquals
                | OperatorKind::StringEqualsIgnoreCase
                | OperatorKind::StringNotEqualsIgnoreCase
                | OperatorKind::StringLike
                | OperatorKind::StringNotLike
                | OperatorKind::ArnEquals
                | OperatorKind::ArnLike
                | OperatorKind::ArnNotEquals
                | OperatorKind::ArnNotLike
        )
    }
}

/// `ForAnyValue:` / `ForAllValues:` set qualifiers for multivalued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SetQualifier {
    /// At least one request value must satisfy the operator; an absent key never matches.
    ForAnyValue,
    /// Every request value must satisfy the operator; an absent or empty key always matches.
    ForAllValues,
}

/// A parsed condition operator such as `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConditionOperator {
    /// `ForAnyValue` / `ForAllValues`, if any.
    pub qualifier: Option<SetQualifier>,
    /// The comparison.
    pub kind: OperatorKind,
    /// `…IfExists`: an absent key makes the condition true.
    pub if_exists: bool,
}

impl std::fmt::Display for ConditionOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.qualifier {
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            None => {}
        }
        f.write_str(self.kind.name())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

/// Why an operator name could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OperatorNameError {
    UnknownQualifier(String),
    Unknown { suggestion: Option<&'static str> },
    Unsupported,
    NullIfExists,
}

impl ConditionOperator {
    /// Reads an IAM operator name. Names are case-sensitive, as in IAM.
    pub(crate) fn parse(name: &str) -> Result<ConditionOperator, OperatorNameError> {
        let (qualifier, rest) = match name.split_once(':') {
            Some(("ForAnyValue", rest)) => (Some(SetQualifier::ForAnyValue), rest),
            Some(("ForAllValues", rest)) => (Some(SetQualifier::ForAllValues), rest),
            Some((q, _)) => return Err(OperatorNameError::UnknownQualifier(q.to_string())),
            None => (None, name),
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        if let Some((_, kind)) = OperatorKind::ALL.iter().find(|(n, _)| *n == base) {
            if *kind == OperatorKind::Null && if_exists {
                return Err(OperatorNameError::NullIfExists);
            }
            return Ok(ConditionOperator {
                qualifier,
                kind: *kind,
                if_exists,
            });
        }
        if OperatorKind::UNSUPPORTED.contains(&base) {
            return Err(OperatorNameError::Unsupported);
        }
        Err(OperatorNameError::Unknown {
            suggestion: suggest(base),
        })
    }
}

/// The closest known operator name, when it is close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    OperatorKind::ALL
        .iter()
        .map(|(n, _)| *n)
        .chain(OperatorKind::UNSUPPORTED)
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A literal character.
    Lit(char),
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Compiles text into tokens; `*`/`?` are wildcards only when `wildcards` is set.
pub(crate) fn compile(text: &str, wildcards: bool, out: &mut Vec<Tok>) {
    out.extend(text.chars().map(|c| match c {
        '*' if wildcards => Tok::Star,
        '?' if wildcards => Tok::One,
        c => Tok::Lit(c),
    }));
}

fn char_eq(a: char, b: char, fold: bool) -> bool {
    a == b || (fold && a.to_lowercase().eq(b.to_lowercase()))
}

/// Matches `value` against `pattern`. Greedy with a single saved star position: O(n·m) worst
/// case and never exponential, however many stars the pattern holds.
pub(crate) fn glob(pattern: &[Tok], value: &str, fold: bool) -> bool {
    let (mut p, mut v) = (0usize, 0usize);
    // (pattern index after the last star, value index that star currently extends to)
    let mut star: Option<(usize, usize)> = None;
    loop {
        let Some(c) = value[v..].chars().next() else {
            return pattern[p..].iter().all(|t| *t == Tok::Star);
        };
        match pattern.get(p) {
            Some(Tok::Star) => {
                p += 1;
                star = Some((p, v));
                continue;
            }
            Some(Tok::One) => {
                p += 1;
                v += c.len_utf8();
                continue;
            }
            Some(Tok::Lit(t)) if char_eq(*t, c, fold) => {
                p += 1;
                v += c.len_utf8();
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sv)) => {
                let skipped = value[sv..].chars().next().map_or(1, char::len_utf8);
                star = Some((sp, sv + skipped));
                p = sp;
                v = sv + skipped;
            }
            None => return false,
        }
    }
}

/// Matches an ARN: each of the six `:`-separated parts separately, so that `*` never spans a
/// colon. Values that are not six-part ARNs only match a pattern that is not one either.
pub(crate) fn arn_glob(pattern: &[Tok], value: &str) -> bool {
    let mut pat_parts = pattern.splitn(6, |t| *t == Tok::Lit(':'));
    let mut val_parts = value.splitn(6, ':');
    loop {
        match (pat_parts.next(), val_parts.next()) {
            (None, None) => return true,
            (Some(p), Some(v)) => {
                if !glob(p, v, false) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A piece of a condition value that may hold policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Plain text (wildcards interpreted per operator).
    Text(String),
    /// A literal character from `${*}`, `${?}` or `${$}`.
    Literal(char),
    /// `${key}` or `${key, 'default'}`.
    Var {
        key: String,
        default: Option<String>,
    },
}

/// Splits a value into parts at `${…}`; `None` when it holds no variable.
pub(crate) fn parse_variables(text: &str) -> Option<Vec<Part>> {
    if !text.contains("${") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = text;
    let mut found = false;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + 2 + len];
        let part = match inner {
            "*" => Part::Literal('*'),
            "?" => Part::Literal('?'),
            "$" => Part::Literal('$'),
            _ => {
                let (key, default) = match inner.split_once(',') {
                    Some((k, d)) => {
                        let d = d.trim();
                        let d = d
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(d);
                        (k.trim(), Some(d.to_string()))
                    }
                    None => (inner.trim(), None),
                };
                Part::Var {
                    key: key.to_string(),
                    default,
                }
            }
        };
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        parts.push(part);
        found = true;
        rest = &rest[start + 2 + len + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    found.then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn toks(p: &str) -> Vec<Tok> {
        let mut t = Vec::new();
        compile(p, true, &mut t);
        t
    }

    /// Exponential-time reference matcher, obviously correct.
    fn reference(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| reference(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && reference(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && reference(rest, &v[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_reference(p in "[ab*?]{0,8}", v in "[abé]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let vc: Vec<char> = v.chars().collect();
            prop_assert_eq!(glob(&toks(&p), &v, false), reference(&pc, &vc));
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = format!("{}b", "a*".repeat(200));
        let value = "a".repeat(5_000);
        let start = std::time::Instant::now();
        assert!(!glob(&toks(&pattern), &value, false));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("StringEqualz"), Some("StringEquals"));
        assert_eq!(suggest("StringLikes"), Some("StringLike"));
        assert_eq!(suggest("Nul"), Some("Null"));
        assert_eq!(suggest("Completely"), None);
    }

    #[test]
    fn variables_split() {
        assert_eq!(parse_variables("plain"), None);
        assert_eq!(
            parse_variables("a-${aws:username, 'x'}${*}"),
            Some(vec![
                Part::Text("a-".into()),
                Part::Var {
                    key: "aws:username".into(),
                    default: Some("x".into())
                },
                Part::Literal('*'),
            ])
        );
        assert_eq!(parse_variables("${unclosed"), None);
    }
}
