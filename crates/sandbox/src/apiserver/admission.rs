//! Mutating admission webhooks, called on pod create as kube-apiserver calls them:
//! `admissionregistration.k8s.io/v1` MutatingWebhookConfigurations (in name order, each webhook
//! in order), rules, `namespaceSelector` and `objectSelector`, AdmissionReview v1 over HTTPS
//! verified against `caBundle` for `<service>.<namespace>.svc` (or the `url`'s host),
//! `timeoutSeconds`, `failurePolicy` and `reinvocationPolicy: IfNeeded`. A v1 response must
//! carry `apiVersion`, `kind` and the request's `uid`, or the call counts as failed.
//!
//! The sandbox has no Services or DNS: [`Admission::map_service`] (`irsa sandbox
//! --webhook-service`) says where a `clientConfig.service` listens on loopback.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use super::ApiServer;
use super::error::ApiError;
use super::store::ListOptions;

/// Where webhook Services listen, for `clientConfig.service`.
#[derive(Debug, Default)]
pub struct Admission {
    services: RwLock<HashMap<(String, String), SocketAddr>>,
}

impl Admission {
    /// Route `clientConfig.service` `{namespace, name}` to `addr` (any port asked is ignored).
    pub fn map_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        if let Ok(mut s) = self.services.write() {
            s.insert((namespace.to_owned(), name.to_owned()), addr);
        }
    }

    fn service(&self, namespace: &str, name: &str) -> Option<SocketAddr> {
        self.services
            .read()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .copied()
    }
}

/// One webhook of a configuration, as called.
struct Hook {
    name: String,
    spec: Value,
    reinvoke: bool,
}

fn str_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a rule list covers CREATE of core/v1 pods.
fn rules_match(hook: &Value) -> bool {
    let Some(rules) = hook.get("rules").and_then(Value::as_array) else {
        return false;
    };
    rules.iter().any(|r| {
        let has = |key: &str, want: &str| str_list(r, key).iter().any(|s| s == want || s == "*");
        let scope_ok = r
            .get("scope")
            .and_then(Value::as_str)
            .is_none_or(|s| s == "*" || s == "Namespaced");
        has("operations", "CREATE")
            && has("apiGroups", "")
            && has("apiVersions", "v1")
            && (has("resources", "pods"))
            && scope_ok
    })
}

/// A `metav1.LabelSelector` against labels; an absent selector matches everything.
fn selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector.filter(|s| s.is_object()) else {
        return true;
    };
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values = str_list(e, "values");
            let have = labels.get(key);
            let ok = match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => have.is_some_and(|h| values.contains(h)),
                "NotIn" => have.is_none_or(|h| !values.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The webhooks that apply to a pod in a namespace with `ns_labels`, in kube-apiserver's order.
fn hooks(api: &ApiServer, ns_labels: &BTreeMap<String, String>, pod: &Value) -> Vec<Hook> {
    let store = &api.inner.store;
    let Some(rt) = store.resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
    ) else {
        return Vec::new();
    };
    let Ok(page) = store.list(&rt, None, &ListOptions::default()) else {
        return Vec::new();
    };
    let mut configs: Vec<Arc<Value>> = page.items;
    configs.sort_by_key(|c| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });
    let pod_labels = labels_of(pod);
    let mut out = Vec::new();
    for config in configs {
        for hook in config
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if rules_match(hook)
                && selector_matches(hook.get("namespaceSelector"), ns_labels)
                && selector_matches(hook.get("objectSelector"), &pod_labels)
            {
                out.push(Hook {
                    name: hook
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    reinvoke: hook.get("reinvocationPolicy").and_then(Value::as_str)
                        == Some("IfNeeded"),
                    spec: hook.clone(),
                });
            }
        }
    }
    out
}

/// Why a call failed (subject to `failurePolicy`).
fn call_error(hook: &str, message: impl std::fmt::Display) -> String {
    format!("failed calling webhook \"{hook}\": {message}")
}

/// POST an AdmissionReview to the webhook; the verified `response` object.
async fn call(api: &ApiServer, hook: &Hook, review: &Value, uid: &str) -> Result<Value, String> {
    let spec = &hook.spec;
    if !str_list(spec, "admissionReviewVersions")
        .iter()
        .any(|v| v == "v1")
    {
        return Err(
            "admissionReviewVersions does not include v1, the only version the sandbox sends"
                .into(),
        );
    }
    let cc = spec.get("clientConfig").cloned().unwrap_or(Value::Null);
    let (addr, server_name, path) = if let Some(url) = cc.get("url").and_then(Value::as_str) {
        let rest = url
            .strip_prefix("https://")
            .ok_or("clientConfig.url must be https")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| "bad port in clientConfig.url")?,
            ),
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = match host {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            h => h
                .parse()
                .map_err(|_| format!("the sandbox reaches only IP or localhost URLs, not {h}"))?,
        };
        (SocketAddr::new(ip, port), host.to_owned(), path.to_owned())
    } else if let Some(svc) = cc.get("service") {
        let ns = svc
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = svc.get("name").and_then(Value::as_str).unwrap_or_default();
        let addr = api.inner.admission.service(ns, name).ok_or_else(|| {
            format!(
                "service \"{ns}/{name}\" not found: the sandbox has no Services; start `irsa \
                 sandbox` with --webhook-service {ns}/{name}=127.0.0.1:PORT (the port the webhook \
                 serves on), or use clientConfig.url"
            )
        })?;
        let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
        (addr, format!("{name}.{ns}.svc"), path.to_owned())
    } else {
        return Err("clientConfig has neither url nor service".into());
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let ca = cc
        .get("caBundle")
        .and_then(Value::as_str)
        .ok_or("clientConfig.caBundle is empty (the sandbox has no system trust store)")?;
    let ca = STANDARD
        .decode(ca)
        .map_err(|e| format!("caBundle is not base64: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| format!("caBundle is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("caBundle holds a bad certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate for {server_name}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", &server_name)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(review).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), 16 * 1024 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "the server responded with HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the response is not JSON: {e}"))?;
    let api_version = answer.get("apiVersion").and_then(Value::as_str);
    let kind = answer.get("kind").and_then(Value::as_str);
    if api_version != Some("admission.k8s.io/v1") || kind != Some("AdmissionReview") {
        return Err(format!(
            "expected response.apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {:?} {:?}",
            api_version.unwrap_or_default(),
            kind.unwrap_or_default()
        ));
    }
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    Ok(response.clone())
}

/// Run the mutating webhooks on a pod about to be created in `namespace`; the pod to store.
pub(crate) async fn admit_pod(
    api: &ApiServer,
    namespace: &str,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    let Ok(mut pod) = serde_json::from_slice::<Value>(&body) else {
        return Ok(body); // the create itself reports the bad body
    };
    if !pod.is_object() {
        return Ok(body);
    }
    if pod.pointer("/metadata/namespace").is_none()
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("namespace".into(), json!(namespace));
    }
    let ns_labels = api
        .inner
        .store
        .resource("", "v1", "namespaces")
        .and_then(|rt| api.inner.store.get(&rt, "", namespace).ok())
        .map(|n| labels_of(&n))
        .unwrap_or_default();
    let hooks = hooks(api, &ns_labels, &pod);
    if hooks.is_empty() {
        return Ok(body);
    }
    // First pass over all; then, if a later webhook changed the pod, IfNeeded webhooks once more.
    let mut last_change: Option<usize> = None;
    let mut called_at = vec![usize::MAX; hooks.len()];
    let mut step = 0usize;
    let mut order: Vec<usize> = (0..hooks.len()).collect();
    let mut second = false;
    loop {
        for &i in &order {
            let hook = &hooks[i];
            let before = pod.clone();
            run_one(api, hook, namespace, &mut pod).await?;
            called_at[i] = step;
            if pod != before {
                last_change = Some(step);
            }
            step += 1;
        }
        if second {
            break;
        }
        order = (0..hooks.len())
            .filter(|&i| hooks[i].reinvoke && last_change.is_some_and(|c| c > called_at[i]))
            .collect();
        if order.is_empty() {
            break;
        }
        second = true;
    }
    Ok(Bytes::from(serde_json::to_vec(&pod).unwrap_or_default()))
}

async fn run_one(
    api: &ApiServer,
    hook: &Hook,
    namespace: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let uid = format!("{:032x}", fastrand::u128(..));
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
            "object": pod.clone(),
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    });
    let timeout = hook
        .spec
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 30);
    let ignore = hook.spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
    let outcome =
        match tokio::time::timeout(Duration::from_secs(timeout), call(api, hook, &review, &uid))
            .await
        {
            Ok(Ok(response)) => apply_response(&hook.name, &response, pod),
            Ok(Err(e)) => Err(Failure::Call(call_error(&hook.name, e))),
            Err(_) => Err(Failure::Call(call_error(
                &hook.name,
                format!("context deadline exceeded ({timeout}s)"),
            ))),
        };
    match outcome {
        Ok(()) => Ok(()),
        Err(Failure::Denied(e)) => Err(e),
        Err(Failure::Call(message)) if ignore => {
            tracing::warn!(webhook = %hook.name, %message, "failed calling webhook, ignoring (failurePolicy Ignore)");
            Ok(())
        }
        Err(Failure::Call(message)) => Err(ApiError::internal(format!(
            "Internal error occurred: {message}"
        ))),
    }
}

enum Failure {
    /// The webhook answered and said no.
    Denied(ApiError),
    /// The call failed (subject to failurePolicy).
    Call(String),
}

fn apply_response(hook: &str, response: &Value, pod: &mut Value) -> Result<(), Failure> {
    if response.get("allowed").and_then(Value::as_bool) != Some(true) {
        let status = response.get("status");
        let message = status
            .and_then(|s| s.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("denied");
        let code = status
            .and_then(|s| s.get("code"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c))
            .unwrap_or(400);
        return Err(Failure::Denied(ApiError::new(
            code,
            "BadRequest",
            format!("admission webhook \"{hook}\" denied the request: {message}"),
        )));
    }
    let Some(patch) = response.get("patch").and_then(Value::as_str) else {
        return Ok(());
    };
    if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
        return Err(Failure::Call(call_error(
            hook,
            "patchType must be JSONPatch",
        )));
    }
    let bytes = STANDARD
        .decode(patch)
        .map_err(|e| Failure::Call(call_error(hook, format!("patch is not base64: {e}"))))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Call(call_error(hook, format!("patch is not a JSON patch: {e}"))))?;
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| Failure::Call(call_error(hook, format!("the patch does not apply: {e}"))))?;
    *pod = patched;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_label_selectors_do() {
        let l = labels(&[("app", "x"), ("tier", "web")]);
        let cases = [
            (json!(null), true),
            (json!({}), true),
            (json!({"matchLabels": {"app": "x"}}), true),
            (json!({"matchLabels": {"app": "y"}}), false),
            (
                json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                true,
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_matches(Some(&sel), &l), want, "{sel}");
        }
    }

    #[test]
    fn rules_cover_pod_create_only() {
        let rule = |ops: &str, res: &str| json!({"rules": [{"operations": [ops], "apiGroups": [""], "apiVersions": ["v1"], "resources": [res]}]});
        assert!(rules_match(&rule("CREATE", "pods")));
        assert!(rules_match(&rule("*", "*")));
        assert!(!rules_match(&rule("UPDATE", "pods")));
        assert!(!rules_match(&rule("CREATE", "secrets")));
        assert!(!rules_match(&json!({})));
    }

    /// Signs nothing: admission never asks for tokens.
    struct NoTokens;

    impl crate::token_issuer::TokenIssuer for NoTokens {
        fn issue(
            &self,
            _: &crate::token_issuer::ServiceAccountTokenRequest,
        ) -> Result<crate::token_issuer::IssuedToken, String> {
            Err("no tokens in this test".into())
        }
        fn issuer_url(&self) -> String {
            String::new()
        }
        fn discovery(&self) -> Value {
            Value::Null
        }
        fn jwks(&self) -> Value {
            Value::Null
        }
    }

    /// A webhook that accepts connections and never answers; the number of connections so far.
    async fn hanging_webhook() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(conn);
            }
        });
        (addr, calls)
    }

    /// A sandbox API server with namespace `team` (label `irsa: on`) and `other` (no labels),
    /// and one MutatingWebhookConfiguration whose webhook `hang.example.com` is `addr`.
    fn api_with_hook(addr: SocketAddr, extra: Value) -> ApiServer {
        let api = ApiServer::new(Default::default(), Arc::new(NoTokens));
        let store = &api.inner.store;
        for (name, labels) in [("team", json!({"irsa": "on"})), ("other", json!({}))] {
            store
                .create_object(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}}))
                .unwrap();
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let mut hook = json!({
            "name": "hang.example.com",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {
                "url": format!("https://{addr}/mutate"),
                "caBundle": STANDARD.encode(ca),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        });
        for (k, v) in extra.as_object().unwrap() {
            hook[k] = v.clone();
        }
        store
            .create_object(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "hang"},
                "webhooks": [hook],
            }))
            .unwrap();
        api
    }

    fn pod(namespace: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    }

    fn bytes(v: &Value) -> Bytes {
        Bytes::from(serde_json::to_vec(v).unwrap())
    }

    #[tokio::test]
    async fn a_pod_outside_the_namespace_selector_is_not_sent_to_the_webhook() {
        let (addr, calls) = hanging_webhook().await;
        let api = api_with_hook(
            addr,
            json!({"failurePolicy": "Fail", "timeoutSeconds": 1,
                "namespaceSelector": {"matchLabels": {"irsa": "on"}}}),
        );
        let started = std::time::Instant::now();
        let stored = admit_pod(&api, "other", bytes(&pod("other")))
            .await
            .expect("not sent, so admitted");
        assert_eq!(
            serde_json::from_slice::<Value>(&stored).unwrap(),
            pod("other")
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        // The same pod in the selected namespace is sent (and refused: the webhook hangs).
        let e = admit_pod(&api, "team", bytes(&pod("team")))
            .await
            .unwrap_err();
        assert!(e.message.contains("hang.example.com"), "{}", e.message);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_silent_webhook_with_failure_policy_ignore_admits_unchanged_after_its_timeout() {
        let (addr, calls) = hanging_webhook().await;
        let api = api_with_hook(
            addr,
            json!({"failurePolicy": "Ignore", "timeoutSeconds": 2}),
        );
        let started = std::time::Instant::now();
        let stored = admit_pod(&api, "team", bytes(&pod("team")))
            .await
            .expect("failurePolicy Ignore admits");
        let took = started.elapsed();
        assert_eq!(
            serde_json::from_slice::<Value>(&stored).unwrap(),
            pod("team")
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
            "timeoutSeconds 2, took {took:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_webhook_with_failure_policy_fail_refuses_the_pod_naming_the_webhook() {
        let (addr, _calls) = hanging_webhook().await;
        let api = api_with_hook(addr, json!({"failurePolicy": "Fail", "timeoutSeconds": 1}));
        let started = std::time::Instant::now();
        let e = admit_pod(&api, "team", bytes(&pod("team")))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"hang.example.com\": context \
             deadline exceeded (1s)"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "timeoutSeconds 1, took {took:?}"
        );
    }
}
