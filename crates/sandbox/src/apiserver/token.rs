//! The TokenRequest subresource (`serviceaccounts/<name>/token`).

use serde_json::{Value, json};

use super::error::ApiError;
use super::store::Store;
use super::util;
use crate::token_issuer::{BoundObject, ServiceAccountTokenRequest, TokenIssuer};

/// Default and minimum lifetimes, as kube-apiserver enforces them.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;

/// Serves a TokenRequest for `namespace/name`: resolves the service account (and the bound
/// pod, checking its uid), asks the issuer to sign, and returns the `TokenRequest` with status.
pub fn token_request(
    store: &Store,
    issuer: &dyn TokenIssuer,
    namespace: &str,
    name: &str,
    body: &Value,
    now: i64,
) -> Result<Value, ApiError> {
    let sa_rt = store
        .resource("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
    let sa = store.get(&sa_rt, namespace, name)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let expiration_seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION);
    if expiration_seconds < MIN_EXPIRATION {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "tokenrequests",
            name,
            format!(
                "spec.expirationSeconds: Invalid value: {expiration_seconds}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    let (bound_object, node) = match spec.get("boundObjectRef").filter(|v| !v.is_null()) {
        None => (None, None),
        Some(r) => bound(store, namespace, r)?,
    };
    let request = ServiceAccountTokenRequest {
        namespace: namespace.to_owned(),
        service_account: name.to_owned(),
        service_account_uid: sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        audiences: audiences.clone(),
        expiration_seconds,
        bound_object,
        node,
        now,
    };
    let issued = issuer.issue(&request).map_err(ApiError::internal)?;
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration_seconds});
    if let Some(r) = spec.get("boundObjectRef").filter(|v| !v.is_null()) {
        spec_out["boundObjectRef"] = r.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": util::rfc3339(now)},
        "spec": spec_out,
        "status": {
            "token": issued.token.expose(),
            "expirationTimestamp": util::rfc3339(issued.expires_at),
        },
    }))
}

fn bound(
    store: &Store,
    namespace: &str,
    r: &Value,
) -> Result<(Option<BoundObject>, Option<BoundObject>), ApiError> {
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let want_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    let plural = match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        other => {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "tokenrequests",
                name,
                format!(
                    "spec.boundObjectRef.kind: Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\""
                ),
            ));
        }
    };
    let rt = store
        .resource("", "v1", plural)
        .ok_or_else(|| ApiError::internal("bound object type not served"))?;
    let obj = store.get(&rt, namespace, name)?;
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !want_uid.is_empty() && want_uid != uid {
        return Err(ApiError::conflict("", plural, name));
    }
    let node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let uid = store
                .resource("", "v1", "nodes")
                .and_then(|nrt| store.get(&nrt, "", n).ok())
                .and_then(|o| {
                    o.pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            BoundObject {
                kind: "Node".into(),
                name: n.to_owned(),
                uid,
            }
        });
    Ok((
        Some(BoundObject {
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid,
        }),
        node,
    ))
}
