//! Server-side apply for one manager owning its fields: field sets in `FieldsV1` form,
//! conflicts with other appliers, `force` to take fields over, and removal of fields a
//! manager stops applying. Lists are atomic (owned and replaced as a whole).

use serde_json::{Map, Value, json};

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The other manager.
    pub manager: String,
    /// The field path, dotted (`.data.key`).
    pub path: String,
}

type Path = Vec<String>;

const IDENTITY_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "selfLink",
];

/// Leaf paths set by an applied configuration.
fn applied_paths(applied: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    if let Value::Object(m) = applied {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if IDENTITY_METADATA.contains(&mk.as_str()) {
                            continue;
                        }
                        collect(mv, vec![k.clone(), mk.clone()], &mut out);
                    }
                }
                continue;
            }
            collect(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: Path, out: &mut Vec<Path>) {
    match v {
        // An empty map claims nothing (its keys may belong to others).
        Value::Object(m) if m.is_empty() => {}
        Value::Object(m) => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, out);
            }
        }
        _ => out.push(path),
    }
}

/// Encodes leaf paths as `FieldsV1`.
pub fn to_fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fields are objects");
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1` into leaf paths.
pub fn from_fields_v1(fields: &Value) -> Vec<Path> {
    fn walk(v: &Value, path: Path, out: &mut Vec<Path>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !path.is_empty() {
                out.push(path);
            }
            return;
        }
        for (k, child) in children {
            let mut p = path.clone();
            p.push(k[2..].to_owned());
            walk(child, p, out);
        }
    }
    let mut out = Vec::new();
    walk(fields, Vec::new(), &mut out);
    out
}

fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.iter().zip(b).all(|(x, y)| x == y)
}

fn deep_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// Applies `applied` for `manager` over `existing` (None: the object is being created).
/// Returns the new object with `metadata.managedFields` updated, or the conflicts when another
/// manager owns a field with a different value and `force` is false.
pub fn apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    time: &str,
) -> Result<Value, Vec<FieldConflict>> {
    let base = existing.cloned().unwrap_or_else(|| json!({}));
    let mut entries: Vec<Value> = base
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let new_paths = applied_paths(applied);

    let mut conflicts = Vec::new();
    let mut others: Vec<(usize, Vec<Path>)> = Vec::new();
    let mut old_paths: Vec<Path> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let owned = from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null));
        let name = e.get("manager").and_then(Value::as_str).unwrap_or("");
        let is_apply = e.get("operation").and_then(Value::as_str) == Some("Apply");
        if name == manager && is_apply {
            old_paths = owned;
        } else {
            others.push((i, owned));
        }
    }
    for (i, owned) in &mut others {
        let name = entries[*i]
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        owned.retain(|o| {
            let clash = new_paths.iter().find(|p| {
                overlaps(p, o) && get(&base, o).is_some() && get(&base, o) != get(applied, o)
            });
            match clash {
                Some(p) if !force => {
                    conflicts.push(FieldConflict {
                        manager: name.clone(),
                        path: format!(".{}", p.join(".")),
                    });
                    true
                }
                Some(_) => false,
                None => true,
            }
        });
    }
    if !conflicts.is_empty() {
        conflicts.dedup();
        return Err(conflicts);
    }

    let mut out = base.clone();
    for old in &old_paths {
        let still_applied = new_paths.iter().any(|p| overlaps(p, old));
        let owned_by_other = others
            .iter()
            .any(|(_, owned)| owned.iter().any(|o| overlaps(o, old)));
        if !still_applied && !owned_by_other {
            remove(&mut out, old);
        }
    }
    deep_merge(&mut out, applied);

    let api_version = applied.get("apiVersion").cloned().unwrap_or(Value::Null);
    let mut new_entries = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if let Some((_, owned)) = others.iter().find(|(j, _)| *j == i) {
            if owned.is_empty() {
                continue;
            }
            e["fieldsV1"] = to_fields_v1(owned);
            new_entries.push(e.clone());
        }
    }
    new_entries.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(&new_paths),
    }));
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(new_entries));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-01-01T00:00:00Z";

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"app": "x"}}, "data": data})
    }

    #[test]
    fn fields_v1_round_trip() {
        let paths = applied_paths(&secret(json!({"a": "1", "b": "2"})));
        let fields = to_fields_v1(&paths);
        assert_eq!(
            fields,
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:data": {"f:a": {}, "f:b": {}}})
        );
        let mut back = from_fields_v1(&fields);
        back.sort();
        let mut want = paths;
        want.sort();
        assert_eq!(back, want);
    }

    #[test]
    fn apply_creates_updates_and_removes_own_fields() {
        let first = apply(None, &secret(json!({"a": "1", "b": "2"})), "irsa", false, T).unwrap();
        assert_eq!(first["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(first["metadata"]["managedFields"][0]["manager"], "irsa");
        let second = apply(Some(&first), &secret(json!({"a": "3"})), "irsa", false, T).unwrap();
        assert_eq!(second["data"], json!({"a": "3"}));
        assert_eq!(
            second["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn conflicts_between_managers_and_force() {
        let first = apply(None, &secret(json!({"a": "1"})), "one", false, T).unwrap();
        // Same value: shared ownership, no conflict.
        let shared = apply(Some(&first), &secret(json!({"a": "1"})), "two", false, T).unwrap();
        assert_eq!(
            shared["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let err = apply(Some(&first), &secret(json!({"a": "2"})), "two", false, T).unwrap_err();
        assert_eq!(
            err,
            vec![FieldConflict {
                manager: "one".into(),
                path: ".data.a".into()
            }]
        );
        let forced = apply(Some(&first), &secret(json!({"a": "2"})), "two", true, T).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        // "one" still owns metadata.labels.app.
        assert_eq!(managers, vec!["one", "two"]);
    }

    #[test]
    fn fields_kept_when_another_manager_owns_them() {
        let first = apply(None, &secret(json!({"a": "1"})), "one", false, T).unwrap();
        let both = apply(Some(&first), &secret(json!({"a": "1"})), "two", false, T).unwrap();
        let dropped = apply(Some(&both), &secret(json!({})), "one", false, T).unwrap();
        assert_eq!(dropped["data"]["a"], "1");
    }
}
