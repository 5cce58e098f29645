//! JSON merge patch, JSON patch and strategic merge patch, as pure functions.

use serde_json::{Map, Value};

/// The patch flavours of `PATCH` requests, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; JSON bodies only).
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type`, if it is one.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies an RFC 6902 JSON patch. As on kube-apiserver (evanphx/json-patch), a `test` of
/// `null` passes on a path that does not exist: kube-runtime's finalizer helper relies on it
/// (`test /metadata/finalizers null`, then `add`).
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    // Op by op on a copy: a failure discards the copy, so the patch stays all-or-nothing.
    let mut out = doc.clone();
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && out.pointer(t.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch(&mut out, std::slice::from_ref(&op)).map_err(|e| match &op {
            // kube-apiserver's words (evanphx/json-patch's ErrTestFailed), which clients tell
            // apart from other 422s.
            json_patch::PatchOperation::Test(t) => {
                format!("testing value {} failed: test failed", t.path)
            }
            _ => format!("failed to apply JSON patch: {e}"),
        })?;
    }
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// The merge key of a list field in the types irsa patches (`containers`, `env`, `volumes`,
/// ..., and the `webhooks` of a Mutating- or ValidatingWebhookConfiguration, whose
/// patchMergeKey is `name`): lists of objects carrying `name` merge by name; `ports` by
/// `containerPort`.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "ports" => Some("containerPort"),
        "imagePullSecrets"
        | "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "volumeMounts"
        | "secrets"
        | "webhooks"
        | "conditions" => {
            if field == "conditions" {
                Some("type")
            } else {
                Some("name")
            }
        }
        _ => {
            let _ = items;
            None
        }
    }
}

/// Applies a strategic merge patch: a merge patch where known lists of objects merge by key
/// and `$patch: delete|replace` directives are honoured; `$setElementOrder` and
/// `$retainKeys` directives are accepted and ignored.
pub fn strategic_merge_patch(doc: &Value, patch: &Value) -> Value {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => Value::Object(merge_maps(d, p)),
        (_, p) => strip_directives(p),
    }
}

fn merge_maps(doc: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        return match strip_directives(&Value::Object(patch.clone())) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
    }
    let mut out = doc.clone();
    for (k, pv) in patch {
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(k);
                    continue;
                }
                let merged = match out.get(k) {
                    Some(Value::Object(dm)) => Value::Object(merge_maps(dm, pm)),
                    _ => strip_directives(pv),
                };
                out.insert(k.clone(), merged);
            }
            Value::Array(items) => {
                let merged = match (out.get(k), merge_key(k, items)) {
                    (Some(Value::Array(existing)), Some(key)) => {
                        Value::Array(merge_lists(existing, items, key))
                    }
                    _ => strip_directives(pv),
                };
                out.insert(k.clone(), merged);
            }
            other => {
                out.insert(k.clone(), other.clone());
            }
        }
    }
    out
}

fn merge_lists(existing: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .map(strip_directives)
            .collect();
    }
    let mut out: Vec<Value> = existing.to_vec();
    for item in patch {
        let Some(id) = item.get(key) else {
            out.push(strip_directives(item));
            continue;
        };
        let pos = out.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                out[i] = strategic_merge_patch(&out[i], item);
            }
            (None, false) => out.push(strip_directives(item)),
        }
    }
    out
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        for (ct, want) in [
            ("application/json-patch+json", Some(PatchKind::Json)),
            ("application/merge-patch+json", Some(PatchKind::Merge)),
            (
                "application/strategic-merge-patch+json; charset=utf-8",
                Some(PatchKind::Strategic),
            ),
            ("application/apply-patch+yaml", Some(PatchKind::Apply)),
            ("application/json", None),
        ] {
            assert_eq!(PatchKind::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn merge_and_json_patches() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "y"}});
        assert_eq!(
            merge_patch(
                &doc,
                &json!({"metadata": {"labels": {"a": null, "c": "3"}}})
            ),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"x": "y"}})
        );
        assert_eq!(
            json_patch(
                &doc,
                &json!([{"op": "replace", "path": "/data/x", "value": "z"}])
            )
            .unwrap(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "z"}})
        );
        assert_eq!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/data/x", "value": "q"}])
            ),
            Err("testing value /data/x failed: test failed".to_owned())
        );
        assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
        // kube-runtime's finalizer: `test null` on a missing path passes, as on kube-apiserver.
        let added = json_patch(
            &json!({"metadata": {}}),
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["irsa.dev/cleanup"]}
            ]),
        )
        .unwrap();
        assert_eq!(added["metadata"]["finalizers"][0], "irsa.dev/cleanup");
        assert!(
            json_patch(
                &added,
                &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}])
            )
            .is_err(),
            "an existing value is not null"
        );
    }

    #[test]
    fn strategic_merge_patches() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "k"}]}});
        for (patch, want) in [
            (
                json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}}),
                json!({"spec": {"containers": [
                    {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}]},
                    {"name": "b", "image": "b:1"}
                ], "tolerations": [{"key": "k"}]}}),
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}),
                json!({"spec": {"containers": [
                    {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                    {"name": "b", "image": "b:1"}
                ], "tolerations": [{"key": "k"}]}}),
            ),
            (
                json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a", "$patch": "delete"}], "tolerations": [{"key": "j"}]}}),
                json!({"spec": {"containers": [{"name": "b", "image": "b:1"}], "tolerations": [{"key": "j"}]}}),
            ),
            (
                json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c:1"}]}}),
                json!({"spec": {"containers": [{"name": "c", "image": "c:1"}], "tolerations": [{"key": "k"}]}}),
            ),
            (
                json!({"spec": {"tolerations": null}}),
                json!({"spec": {"containers": [
                    {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                    {"name": "b", "image": "b:1"}
                ]}}),
            ),
        ] {
            assert_eq!(strategic_merge_patch(&pod, &patch), want, "{patch}");
        }
    }

    /// A MutatingWebhookConfiguration's `webhooks` merge by `name` (their patchMergeKey), as
    /// on kube-apiserver: patching one webhook's caBundle keeps the others and its own fields.
    #[test]
    fn webhook_configurations_merge_their_webhooks_by_name() {
        let config = json!({"metadata": {"name": "c"}, "webhooks": [
            {"name": "a.irsa.dev", "clientConfig": {"service": {"name": "a"}}, "sideEffects": "None"},
            {"name": "b.irsa.dev", "clientConfig": {"service": {"name": "b"}}, "sideEffects": "None"}
        ]});
        let patch =
            json!({"webhooks": [{"name": "b.irsa.dev", "clientConfig": {"caBundle": "Q0E="}}]});
        assert_eq!(
            strategic_merge_patch(&config, &patch),
            json!({"metadata": {"name": "c"}, "webhooks": [
                {"name": "a.irsa.dev", "clientConfig": {"service": {"name": "a"}}, "sideEffects": "None"},
                {"name": "b.irsa.dev", "clientConfig": {"service": {"name": "b"}, "caBundle": "Q0E="}, "sideEffects": "None"}
            ]})
        );
        let delete = json!({"webhooks": [{"name": "a.irsa.dev", "$patch": "delete"}]});
        assert_eq!(
            strategic_merge_patch(&config, &delete)["webhooks"],
            json!([{"name": "b.irsa.dev", "clientConfig": {"service": {"name": "b"}}, "sideEffects": "None"}])
        );
    }
}
