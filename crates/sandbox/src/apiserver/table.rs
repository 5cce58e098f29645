//! `meta.k8s.io/v1` Table responses, which `kubectl get` asks for: name, age, a few columns
//! for the built-ins and the CRD's `additionalPrinterColumns`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::negotiate::{self, MetaVersion};
use super::resources::ResourceType;
use super::store::ListPage;
use super::util;

/// Parses an RFC 3339 UTC timestamp (`2026-11-25T00:00:00Z`) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// kubectl's short durations: `45s`, `5m`, `3h`, `2d`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn age(obj: &Value, now: i64) -> Value {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .map(|t| json!(human_duration(now - t)))
        .unwrap_or_else(|| json!("<unknown>"))
}

/// Evaluates a simple JSONPath (`.spec.size`, `.status.conditions[0].type`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    // The subset CRD printer columns use: `.a.b`, `[N]` and filters `[?(@.k=="v")]` (the
    // first match), as kube-apiserver evaluates them.
    let mut cur = obj;
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            if !field.is_empty() {
                cur = cur.get(field)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[?(@.") {
            let close = r.find(")]")?;
            let (key, value) = r[..close].split_once("==")?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            cur = cur.as_array()?.iter().find(|item| {
                json_path(item, &format!(".{}", key.trim())).and_then(Value::as_str) == Some(value)
            })?;
            rest = &r[close + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            cur = cur.get(r[..close].trim().parse::<usize>().ok()?)?;
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn count(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_object).map_or(0, |m| m.len()))
}

type Column = (&'static str, &'static str, fn(&Value) -> Value);

fn builtin_columns(rt: &ResourceType) -> Vec<Column> {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => vec![
            ("Type", "string", |o| {
                o.get("type").cloned().unwrap_or(Value::Null)
            }),
            ("Data", "string", |o| {
                let n = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    + o.get("stringData")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len());
                json!(n)
            }),
        ],
        ("", "configmaps") => vec![("Data", "string", |o| count(o.get("data")))],
        ("", "namespaces") => vec![("Status", "string", |o| {
            o.pointer("/status/phase").cloned().unwrap_or(Value::Null)
        })],
        ("", "pods") => vec![("Status", "string", |o| {
            o.pointer("/status/phase").cloned().unwrap_or(Value::Null)
        })],
        ("coordination.k8s.io", "leases") => vec![("Holder", "string", |o| {
            o.pointer("/spec/holderIdentity")
                .cloned()
                .unwrap_or(json!(""))
        })],
        _ => Vec::new(),
    }
}

/// A Table for `items` (with the list's metadata when `page` is given).
pub fn table(rt: &ResourceType, items: &[Arc<Value>], page: Option<&ListPage>) -> Value {
    let now = util::now_unix();
    let builtins = builtin_columns(rt);
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for (name, ty, _) in &builtins {
        defs.push(
            json!({"name": name, "type": ty, "format": "", "description": "", "priority": 0}),
        );
    }
    for c in &rt.printer_columns {
        defs.push(json!({"name": c.name, "type": c.type_, "format": "", "description": "", "priority": 0}));
    }
    let has_age = rt.printer_columns.iter().any(|c| c.name == "Age");
    if !has_age {
        defs.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![
                obj.pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ];
            for (_, _, f) in &builtins {
                cells.push(f(obj));
            }
            for c in &rt.printer_columns {
                let v = json_path(obj, &c.json_path).cloned().unwrap_or(Value::Null);
                let v = match (c.type_.as_str(), v.as_str().and_then(parse_rfc3339)) {
                    ("date", Some(t)) => json!(human_duration(now - t)),
                    _ => v,
                };
                cells.push(v);
            }
            if !has_age {
                cells.push(age(obj, now));
            }
            json!({
                "cells": cells,
                "object": negotiate::partial(obj, MetaVersion::V1),
            })
        })
        .collect();
    let mut meta = json!({});
    if let Some(p) = page {
        meta["resourceVersion"] = json!(p.resource_version.to_string());
        if let Some(c) = &p.continue_token {
            meta["continue"] = json!(c);
        }
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(
            parse_rfc3339(&util::rfc3339(1_795_569_573)),
            Some(1_795_569_573)
        );
        for (secs, want) in [
            (5, "5s"),
            (150, "2m30s"),
            (900, "15m"),
            (7200 * 3, "6h"),
            (86_400 * 3, "3d"),
        ] {
            assert_eq!(human_duration(secs), want);
        }
    }

    #[test]
    fn json_paths() {
        let o = json!({"spec": {"size": 3, "list": [{"a": 1}]}});
        assert_eq!(json_path(&o, ".spec.size"), Some(&json!(3)));
        assert_eq!(json_path(&o, ".spec.list[0].a"), Some(&json!(1)));
        assert_eq!(json_path(&o, ".spec.nope"), None);
        let c = json!({"status": {"conditions": [
            {"type": "Degraded", "status": "False"},
            {"type": "Ready", "status": "True"}
        ]}});
        assert_eq!(
            json_path(&c, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&c, ".status.conditions[?(@.type=='Degraded')].status"),
            Some(&json!("False"))
        );
        assert_eq!(
            json_path(&c, r#".status.conditions[?(@.type=="Nope")].status"#),
            None
        );
    }
}
