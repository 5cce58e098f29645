//! Label and field selectors: parsing and matching, as pure functions.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` or `key==value`.
    Eq(String, String),
    /// `key!=value`.
    NotEq(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

/// A parsed field selector: `(path, value, equal)` requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, String, bool)>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, got {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(key) = part.strip_prefix('!') {
                reqs.push(LabelRequirement::NotExists(key.trim().to_owned()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelRequirement::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(LabelRequirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(LabelRequirement::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(LabelRequirement::NotIn(k.trim().into(), set_values(rest)?));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(LabelRequirement::In(k.trim().into(), set_values(rest)?));
            } else if part.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                return Err(format!("unable to parse requirement: {part:?}"));
            } else {
                reqs.push(LabelRequirement::Exists(part.to_owned()));
            }
        }
        Ok(Self(reqs))
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Eq(k, v) => get(k) == Some(v),
            LabelRequirement::NotEq(k, v) => get(k) != Some(v),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// Whether there are no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FieldSelector {
    /// Parses `metadata.name=x,type!=y`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (path, value, eq) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            };
            reqs.push((path.trim().to_owned(), value.trim().to_owned(), eq));
        }
        Ok(Self(reqs))
    }

    /// Whether the object's fields satisfy every requirement (a missing field reads as "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, want, eq)| {
            let got = field_value(object, path);
            (got == *want) == *eq
        })
    }

    /// The value required for `metadata.name`, if the selector pins one.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, _, eq)| p == "metadata.name" && *eq)
            .map(|(_, v, _)| v.as_str())
    }
}

/// The string value at a dotted field path (`spec.nodeName`), "" when absent.
pub fn field_value(object: &Value, path: &str) -> String {
    let mut cur = object;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let none = json!({"metadata": {}});
        for (sel, want_obj, want_none) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app in (web, db)", true, false),
            ("app notin (web)", false, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web,tier in (front,back)", true, false),
            ("app=web,tier=back", false, false),
            ("tier notin (back),app", true, false),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&obj), want_obj, "{sel} on obj");
            assert_eq!(s.matches(&none), want_none, "{sel} on none");
        }
    }

    #[test]
    fn label_selector_errors() {
        for sel in ["app in web", "a b"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}, "type": "Opaque", "spec": {"nodeName": "n1"}});
        for (sel, want) in [
            ("metadata.name=a", true),
            ("metadata.name==a", true),
            ("metadata.name!=a", false),
            ("metadata.namespace=ns,type=Opaque", true),
            ("spec.nodeName=n2", false),
            ("status.phase=", true),
        ] {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&obj),
                want,
                "{sel}"
            );
        }
        assert_eq!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .pinned_name(),
            Some("a")
        );
        assert!(FieldSelector::parse("bogus").is_err());
    }
}
