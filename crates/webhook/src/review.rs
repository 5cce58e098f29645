//! AdmissionReview `admission.k8s.io/v1`: decoding what kube-apiserver sends and encoding the
//! answer it verifies (`apiVersion`, `kind` and the request's `uid`).
//!
//! The body comes from the network: decoding never panics, and a review that cannot be read
//! gets an error naming what was wrong.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::mutate::PatchOp;

/// The only version irsa registers and answers.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The kind of both request and response.
pub const KIND: &str = "AdmissionReview";

/// What the webhook needs from a review's `request`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request.namespace` (a pod being created may not carry its namespace yet).
    pub namespace: String,
    /// `request.kind.kind` (`Pod` for what irsa registers).
    pub kind: String,
    /// `request.operation` (`CREATE`).
    pub operation: String,
    /// `request.object`, the pod as sent.
    pub object: Value,
}

impl AdmissionRequest {
    /// `spec.serviceAccountName` of the pod, `default` when unset (as kube-apiserver fills it).
    pub fn service_account(&self) -> &str {
        self.object
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    /// The pod's name, or its `generateName` when the name is not chosen yet (for logs).
    pub fn pod_name(&self) -> &str {
        let meta = |k: &str| {
            self.object
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        meta("name").or_else(|| meta("generateName")).unwrap_or("")
    }
}

/// Why a body is not an AdmissionReview v1 this webhook can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// `apiVersion`/`kind` are not `admission.k8s.io/v1` `AdmissionReview`.
    #[error(
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {api_version:?} {kind:?}; register the webhook with admissionReviewVersions: [v1]"
    )]
    WrongType {
        /// The `apiVersion` sent.
        api_version: String,
        /// The `kind` sent.
        kind: String,
    },
    /// A required field is missing or has the wrong type.
    #[error("field {0} is missing or not {1}")]
    Field(&'static str, &'static str),
}

/// Decode an AdmissionReview v1 body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let mut review: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let api_version = text(&review, "apiVersion").unwrap_or_default();
    let kind = text(&review, "kind").unwrap_or_default();
    if api_version != API_VERSION || kind != KIND {
        return Err(ReviewError::WrongType { api_version, kind });
    }
    let Some(request) = review.get("request").filter(|r| r.is_object()) else {
        return Err(ReviewError::Field("request", "an object"));
    };
    let uid = text(request, "uid")
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::Field("request.uid", "a non-empty string"))?;
    if !request.get("object").is_some_and(Value::is_object) {
        return Err(ReviewError::Field("request.object", "an object"));
    }
    let namespace = text(request, "namespace").unwrap_or_default();
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let operation = text(request, "operation").unwrap_or_default();
    // Moved out, not cloned: the pod is the bulk of the body, and one copy of it is enough.
    let object = review
        .pointer_mut("/request/object")
        .map(Value::take)
        .unwrap_or_default();
    Ok(AdmissionRequest {
        uid,
        namespace,
        kind,
        operation,
        object,
    })
}

/// The uid of a body that may not decode fully, so that an error answer can still carry it.
pub fn uid_of(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/request/uid")?.as_str().map(str::to_owned)
}

/// The answer: always allowed (irsa never denies a pod), with the patch when there is one and
/// warnings that kubectl shows to the user.
pub fn allow(uid: &str, patch: &[PatchOp], warnings: &[String]) -> Value {
    let mut response = json!({"uid": uid, "allowed": true});
    if !patch.is_empty() {
        let bytes = serde_json::to_vec(patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({"apiVersion": API_VERSION, "kind": KIND, "response": response})
}

/// An error answer for a body that could not be read (sent with HTTP 400).
pub fn error(uid: Option<&str>, code: u16, message: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "response": {
            "uid": uid.unwrap_or_default(),
            "allowed": false,
            "status": {"status": "Failure", "code": code, "message": message},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap()
    }

    #[test]
    fn decodes_a_v1_review() {
        let r = decode(&review(json!({
            "uid": "u-1", "namespace": "ns", "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": {"metadata": {"generateName": "p-"}, "spec": {}},
        })))
        .unwrap();
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.namespace, "ns");
        assert_eq!(r.kind, "Pod");
        assert_eq!(r.service_account(), "default");
        assert_eq!(r.pod_name(), "p-");
    }

    #[test]
    fn refuses_what_is_not_a_v1_review_naming_the_field() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not JSON"),
            (b"".to_vec(), "not JSON"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec(),
                "admissionReviewVersions",
            ),
            (review(json!(null)), "request"),
            (review(json!({"object": {}})), "request.uid"),
            (review(json!({"uid": "", "object": {}})), "request.uid"),
            (
                review(json!({"uid": "u", "object": "pod"})),
                "request.object",
            ),
        ];
        for (body, needle) in cases {
            let err = decode(&body).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }

    #[test]
    fn answers_carry_api_version_kind_and_uid() {
        let ok = allow("u-2", &[PatchOp::add("/a", json!(1))], &[]);
        assert_eq!(ok["apiVersion"], API_VERSION);
        assert_eq!(ok["kind"], KIND);
        assert_eq!(ok["response"]["uid"], "u-2");
        assert_eq!(ok["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(ok["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch).unwrap(),
            json!([{"op": "add", "path": "/a", "value": 1}])
        );
        let empty = allow("u-3", &[], &["w".into()]);
        assert!(empty["response"].get("patch").is_none());
        assert_eq!(empty["response"]["warnings"], json!(["w"]));
        let e = error(Some("u"), 400, "bad");
        assert_eq!(e["response"]["status"]["code"], 400);
        assert_eq!(e["response"]["uid"], "u");
    }
}
