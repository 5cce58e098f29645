//! Request routing and the REST verbs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::ApiServer;
use super::admission;
use super::apply;
use super::discovery;
use super::error::ApiError;
use super::faults::FaultConfig;
use super::negotiate::{self, Render};
use super::patch::{self, PatchKind};
use super::protobuf;
use super::requests::RequestRecord;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ListOptions, ListPage};
use super::table;
use super::token;
use super::util;
use super::watch::{self, WatchParams};

const MAX_BODY: usize = 16 * 1024 * 1024;

type Query = HashMap<String, String>;

pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    bytes_response(
        code,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

fn bytes_response(code: u16, body: Bytes) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn error_response(error: &ApiError) -> Response {
    let mut resp = json_response(error.code, &error.status());
    if let Some(secs) = error.retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// One resource request, parsed from the path.
#[derive(Debug)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// The single entry point: authenticate, route, count.
pub(crate) async fn dispatch(State(api): State<ApiServer>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query: Query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let method = parts.method.clone();

    // Public, as on kube-apiserver (system:public-info-viewer, service-account-issuer-discovery).
    match path.as_str() {
        "/.well-known/openid-configuration" => {
            api.count("openid", "configuration", 200);
            return json_response(200, &api.inner.issuer.discovery());
        }
        "/openid/v1/jwks" => {
            api.count("openid", "jwks", 200);
            return json_response(200, &api.inner.issuer.jwks());
        }
        "/healthz" | "/livez" | "/readyz" => {
            return Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Body::from("ok"))
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        "/version" | "/version/" => return json_response(200, &discovery::version()),
        _ => {}
    }
    if !authorized(&parts.headers, &api.inner.config.token) {
        api.count("unauthenticated", "request", 401);
        return error_response(&ApiError::unauthorized());
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!("failed to read body: {e}")));
        }
    };
    if let Some(resp) = admin(&api, &method, &path, &body) {
        return resp;
    }
    if method == Method::GET
        && let Some(doc) = discovery_doc(&api, &path)
    {
        api.count("discovery", "get", doc.code);
        return doc.response;
    }
    let target = match parse_target(&api, &path) {
        Ok(t) => t,
        Err(e) => {
            api.count("unknown", "request", e.code);
            return error_response(&e);
        }
    };
    let verb = verb_of(&method, &target, &query);
    // Bodies are JSON; kubectl's typed clients send protobuf for a few built-in kinds, which
    // are decoded; other protobuf and CBOR bodies get 415.
    let mut body = body;
    if let Some(ct) = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && (ct.contains("protobuf") || ct.contains("cbor"))
    {
        let decoded = if ct.contains("protobuf") {
            protobuf::decode(&body).map_err(|e| format!("{e} (the sandbox accepts JSON)"))
        } else {
            Err(format!(
                "the body of the request was in an unsupported format: {ct} (the sandbox accepts JSON)"
            ))
        };
        match decoded {
            Ok(v) => body = Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            Err(message) => {
                api.count("unsupported", "request", 415);
                return error_response(&ApiError::new(415, "UnsupportedMediaType", message));
            }
        }
    }
    if query.contains_key("dryRun") {
        // Never write on a dry run: refuse it rather than persist.
        let e = ApiError::bad_request("dryRun is not supported by the sandbox API server");
        api.count("unsupported", "request", e.code);
        return error_response(&e);
    }
    let action = match &target.subresource {
        Some(sub) => format!("{verb} {}/{sub}", target.rt.plural),
        None => format!("{verb} {}", target.rt.plural),
    };
    let latency = api.inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = api.inner.faults.check(verb, &target.rt.plural) {
        api.count(&action, verb, e.code);
        return error_response(&e);
    }
    if verb == "create" && target.rt.plural == "pods" && target.subresource.is_none() {
        let ns = target.namespace.clone().unwrap_or_default();
        match admission::admit_pod(&api, &ns, body).await {
            Ok(admitted) => body = admitted,
            Err(e) => {
                api.count(&action, verb, e.code);
                return error_response(&e);
            }
        }
    }
    let (rt, namespace, subresource) = (
        target.rt.clone(),
        target.namespace.clone(),
        target.subresource.clone(),
    );
    let result = handle(&api, verb, target, &query, &parts.headers, &body);
    let code = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.code,
    };
    api.count(&action, verb, code);
    api.inner.requests.record(RequestRecord {
        verb: verb.to_owned(),
        group: rt.group,
        resource: rt.plural,
        subresource,
        namespace,
        code,
        user_agent: user_agent(&parts.headers),
    });
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%action, code = e.code, reason = e.reason, "request failed");
            error_response(&e)
        }
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}

/// `/sandbox/faults` (GET, PUT/POST a [`FaultConfig`], DELETE),
/// `/sandbox/faults/drop-watches` (POST), `/sandbox/faults/hold-watches/<plural>` (POST holds,
/// DELETE releases), `/sandbox/requests` (GET, DELETE), `/sandbox/compact` (POST), `/metrics`.
fn admin(api: &ApiServer, method: &Method, path: &str, body: &Bytes) -> Option<Response> {
    let faults = &api.inner.faults;
    let resp = match (method.as_str(), path) {
        ("GET", "/metrics") => Response::builder()
            .status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(Body::from(api.inner.config.counters.render()))
            .unwrap_or_else(|_| Response::new(Body::empty())),
        ("GET", "/sandbox/faults") => {
            json_response(200, &serde_json::to_value(faults.get()).unwrap_or_default())
        }
        ("PUT" | "POST", "/sandbox/faults") => match serde_json::from_slice::<FaultConfig>(body) {
            Ok(config) => {
                tracing::info!(?config, "fault injection set");
                faults.set(config);
                json_response(200, &serde_json::to_value(faults.get()).unwrap_or_default())
            }
            Err(e) => error_response(&ApiError::bad_request(format!("invalid fault config: {e}"))),
        },
        ("DELETE", "/sandbox/faults") => {
            faults.clear();
            json_response(200, &json!({}))
        }
        ("POST", "/sandbox/faults/drop-watches") => {
            faults.drop_watches();
            json_response(200, &json!({}))
        }
        (m @ ("POST" | "DELETE"), p) if p.starts_with("/sandbox/faults/hold-watches/") => {
            let resource = p.trim_start_matches("/sandbox/faults/hold-watches/");
            if m == "POST" {
                faults.hold_watches(resource);
            } else {
                faults.release_watches(resource);
            }
            json_response(200, &serde_json::to_value(faults.get()).unwrap_or_default())
        }
        ("GET", "/sandbox/requests") => json_response(
            200,
            &serde_json::to_value(api.inner.requests.records()).unwrap_or_default(),
        ),
        ("DELETE", "/sandbox/requests") => {
            api.inner.requests.clear();
            json_response(200, &json!({}))
        }
        ("POST", "/sandbox/compact") => {
            api.inner.store.compact();
            json_response(200, &json!({}))
        }
        _ => return None,
    };
    Some(resp)
}

struct Doc {
    code: u16,
    response: Response,
}

fn discovery_doc(api: &ApiServer, path: &str) -> Option<Doc> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let ok = |v: Value| Doc {
        code: 200,
        response: json_response(200, &v),
    };
    let registry = api.inner.store.registry();
    match segs.as_slice() {
        ["api"] => Some(ok(discovery::core_versions())),
        ["apis"] => Some(ok(discovery::group_list(&registry))),
        ["api", v] => Some(match discovery::resource_list(&registry, "", v) {
            Some(d) => ok(d),
            None => not_found_doc(path),
        }),
        ["apis", g] => Some(match discovery::group(&registry, g) {
            Some(d) => ok(d),
            None => not_found_doc(path),
        }),
        ["apis", g, v] => Some(match discovery::resource_list(&registry, g, v) {
            Some(d) => ok(d),
            None => not_found_doc(path),
        }),
        _ => None,
    }
}

fn not_found_doc(path: &str) -> Doc {
    let e = ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    );
    Doc {
        code: 404,
        response: error_response(&e),
    }
}

fn parse_target(api: &ApiServer, path: &str) -> Result<Target, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => (
            None,
            "namespaces",
            Some((*ns).to_owned()),
            Some((*sub).to_owned()),
        ),
        ["namespaces", ns, plural, more @ ..] if more.len() <= 2 => (
            Some((*ns).to_owned()),
            *plural,
            owned(more.first()),
            owned(more.get(1)),
        ),
        [plural, more @ ..] if more.len() <= 2 => {
            (None, *plural, owned(more.first()), owned(more.get(1)))
        }
        _ => return Err(not_found()),
    };
    let rt = api
        .inner
        .store
        .resource(group, version, plural)
        .ok_or_else(not_found)?;
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    if !rt.namespaced && namespace.is_some() {
        return Err(not_found());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        subresource: sub,
    })
}

fn verb_of(method: &Method, t: &Target, query: &Query) -> &'static str {
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => "unsupported",
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON (YAML apply bodies are not supported; send JSON): {e}"
        ))
    })
}

fn list_options(query: &Query) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        limit: query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

/// A single object in the shape `render` asks for.
fn object_response(code: u16, rt: &ResourceType, obj: &Value, render: Render) -> Response {
    match render {
        Render::Full => json_response(code, obj),
        Render::Table => json_response(code, &table::table(rt, &[Arc::new(obj.clone())], None)),
        Render::Metadata(v) => json_response(code, &negotiate::partial(obj, v)),
    }
}

/// A list in the shape `render` asks for.
fn list_response(rt: &ResourceType, page: &ListPage, render: Render) -> Response {
    match render {
        Render::Full => bytes_response(200, list_body(&ListKind::of(rt), page)),
        Render::Table => json_response(200, &table::table(rt, &page.items, Some(page))),
        Render::Metadata(v) => {
            let page = ListPage {
                items: negotiate::partial_items(&page.items, v),
                resource_version: page.resource_version,
                continue_token: page.continue_token.clone(),
                remaining: page.remaining,
            };
            let kind = ListKind {
                kind: "PartialObjectMetadataList".into(),
                api_version: v.api_version().into(),
            };
            bytes_response(200, list_body(&kind, &page))
        }
    }
}

fn handle(
    api: &ApiServer,
    verb: &str,
    t: Target,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let store = &api.inner.store;
    let ns = t.namespace.as_deref().unwrap_or("");
    let rt = &t.rt;
    // Tables are for reads; a write answers with the object (or its metadata).
    let single = || {
        negotiate::negotiate(headers, false).map(|r| match r {
            Render::Table if verb != "get" => Render::Full,
            r => r,
        })
    };
    match (verb, t.name.as_deref(), t.subresource.as_deref()) {
        ("list", None, _) => {
            let render = negotiate::negotiate(headers, true)?;
            let opts = list_options(query)?;
            let page = store.list(rt, t.namespace.as_deref(), &opts)?;
            Ok(list_response(rt, &page, render))
        }
        ("watch", None, _) => {
            let render = negotiate::negotiate(headers, false)?;
            let opts = list_options(query)?;
            let config = &api.inner.config;
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(config.max_watch_timeout)
                .min(config.max_watch_timeout);
            let params = WatchParams {
                since: watch::parse_rv(query.get("resourceVersion").map(String::as_str))?,
                timeout,
                bookmarks: query
                    .get("allowWatchBookmarks")
                    .is_some_and(|v| v == "true"),
                send_initial_events: query.get("sendInitialEvents").is_some_and(|v| v == "true"),
                labels: opts.labels,
                fields: opts.fields,
                bookmark_interval: config.bookmark_interval,
                render,
            };
            Ok(watch::serve(
                store,
                rt.clone(),
                t.namespace.clone(),
                params,
                api.inner.faults.watch_drops(),
                api.inner.faults.watch_holds(),
            ))
        }
        ("get", Some(name), None | Some("status")) => {
            let obj = store.get(rt, ns, name)?;
            Ok(object_response(200, rt, &obj, single()?))
        }
        ("create", None, None) => {
            let render = single()?;
            let obj = store.create(rt, t.namespace.as_deref(), parse_json(body)?)?;
            Ok(object_response(201, rt, &obj, render))
        }
        ("create", Some(name), Some("token")) if rt.plural == "serviceaccounts" => {
            let req = parse_json(body)?;
            let resp = token::token_request(
                store,
                api.inner.issuer.as_ref(),
                ns,
                name,
                &req,
                util::now_unix(),
            )?;
            Ok(json_response(201, &resp))
        }
        ("update", Some(name), None | Some("status" | "finalize")) => {
            let render = single()?;
            let sub = t.subresource.as_deref().filter(|s| *s == "status");
            let obj = store.update(rt, ns, name, parse_json(body)?, sub)?;
            Ok(object_response(200, rt, &obj, render))
        }
        ("patch", Some(name), None | Some("status")) => {
            let render = single()?;
            patch(api, &t, name, query, headers, body, render)
        }
        ("delete", Some(name), None) => {
            let render = single()?;
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                parse_json(body)?
            };
            let preconditions = super::store::Preconditions::from_options(&opts);
            let obj = store.delete(rt, ns, name, &preconditions)?;
            Ok(object_response(200, rt, &obj, render))
        }
        ("deletecollection", None, _) => {
            let render = negotiate::negotiate(headers, true)?;
            let opts = list_options(query)?;
            let items = store.delete_collection(rt, t.namespace.as_deref(), &opts)?;
            let page = ListPage {
                items,
                resource_version: store.resource_version(),
                continue_token: None,
                remaining: None,
            };
            Ok(list_response(rt, &page, render))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb} {})",
            rt.plural
        ))),
    }
}

fn patch(
    api: &ApiServer,
    t: &Target,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    render: Render,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind =
        PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let rt = &t.rt;
    if kind == PatchKind::Strategic && rt.custom {
        return Err(ApiError::unsupported_media_type(ct));
    }
    let patch_doc = parse_json(body)?;
    let ns = t.namespace.as_deref().unwrap_or("");
    let manager = query.get("fieldManager").cloned();
    let force = query.get("force").is_some_and(|f| f == "true");
    if kind == PatchKind::Apply && manager.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PATCH requests with an apply patch must set fieldManager",
        ));
    }
    let sub = t.subresource.as_deref();
    let (obj, created) = api.inner.store.modify(rt, ns, name, sub, |old| {
        let applied_uid = patch_doc
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty());
        let Some(old) = old else {
            if kind == PatchKind::Apply && sub.is_none() {
                // As kube-apiserver: an apply that names a uid never creates an object (a
                // resourceVersion alone does not stop the create).
                if let Some(uid) = applied_uid {
                    return Err(ApiError::conflict_because(
                        &rt.group,
                        &rt.plural,
                        name,
                        &format!(
                            "uid mismatch: the provided object specified uid {uid}, and no existing object was found"
                        ),
                    ));
                }
                let mut applied = patch_doc.clone();
                if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
                return apply::apply(
                    None,
                    &applied,
                    manager.as_deref().unwrap_or(""),
                    force,
                    &util::now_rfc3339(),
                )
                .map_err(|c| apply_conflict(rt, name, &c));
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        // The resourceVersion first, as kube-apiserver's GuaranteedUpdate (review 2 L1): a
        // Secret deleted and created again after the read is a 409, then only the uid a 422.
        if let Some(want) = patch_doc
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && kind != PatchKind::Json
            && old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(want)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        if kind == PatchKind::Apply
            && let Some(uid) = applied_uid
            && old.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
        {
            // Another object of that name (deleted and created again): its uid is immutable.
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: metadata.uid: Invalid value: \"{uid}\": field is immutable",
                    rt.kind
                ),
            ));
        }
        match kind {
            PatchKind::Json => {
                let new = patch::json_patch(old, &patch_doc)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?;
                // As kube-apiserver: a resourceVersion the patch leaves in the object is a
                // precondition of the write (an `add`/`replace` of a stale one is a 409).
                let rv = |d: &Value| {
                    d.pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                };
                match rv(&new) {
                    Some(want) if rv(old).as_deref() != Some(want.as_str()) => {
                        Err(ApiError::conflict(&rt.group, &rt.plural, name))
                    }
                    _ => Ok(new),
                }
            }
            PatchKind::Merge => Ok(patch::merge_patch(old, &patch_doc)),
            PatchKind::Strategic => Ok(patch::strategic_merge_patch(old, &patch_doc)),
            PatchKind::Apply => apply::apply(
                Some(old),
                &patch_doc,
                manager.as_deref().unwrap_or(""),
                force,
                &util::now_rfc3339(),
            )
            .map_err(|c| apply_conflict(rt, name, &c)),
        }
    })?;
    Ok(object_response(
        if created { 201 } else { 200 },
        rt,
        &obj,
        render,
    ))
}

fn apply_conflict(rt: &ResourceType, name: &str, conflicts: &[apply::FieldConflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.path})
        })
        .collect();
    let summary: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.path))
        .collect();
    let mut e = ApiError::new(
        409,
        "Conflict",
        format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            summary.join(", ")
        ),
    );
    e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}));
    e
}

/// The `kind` and `apiVersion` of a list response.
struct ListKind {
    kind: String,
    api_version: String,
}

impl ListKind {
    fn of(rt: &ResourceType) -> Self {
        Self {
            kind: format!("{}List", rt.kind),
            api_version: rt.api_version(),
        }
    }
}

fn list_body(list: &ListKind, page: &ListPage) -> Bytes {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let mut out = Vec::with_capacity(128 + page.items.len() * 512);
    out.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut out, &list.kind);
    out.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, &list.api_version);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &meta);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, item.as_ref());
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs nothing: these tests ask for no tokens.
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

    async fn call(
        api: &ApiServer,
        method: Method,
        uri: &str,
        ct: &str,
        body: Value,
    ) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", api.token()),
            )
            .header(http::header::CONTENT_TYPE, ct)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let response = dispatch(State(api.clone()), req).await;
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY)
            .await
            .unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Review 2 L1: an apply naming the uid and resourceVersion read from a Secret that was
    /// deleted and created again meanwhile is a 409 (the resourceVersion is checked first, as
    /// kube-apiserver's GuaranteedUpdate does), not the 422 of the immutable uid.
    #[tokio::test]
    async fn an_apply_to_a_recreated_object_is_a_conflict_on_the_resource_version() {
        let api = ApiServer::new(Default::default(), Arc::new(NoTokens));
        let secrets = "/api/v1/namespaces/default/secrets";
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"}});
        let (code, first) = call(
            &api,
            Method::POST,
            secrets,
            "application/json",
            secret.clone(),
        )
        .await;
        assert_eq!(code, 201, "{first}");
        let (code, _) = call(
            &api,
            Method::DELETE,
            &format!("{secrets}/s"),
            "application/json",
            json!({}),
        )
        .await;
        assert_eq!(code, 200);
        let (code, second) = call(&api, Method::POST, secrets, "application/json", secret).await;
        assert_eq!(code, 201, "{second}");
        assert_ne!(first["metadata"]["uid"], second["metadata"]["uid"]);
        let apply = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "s", "namespace": "default",
            "uid": first["metadata"]["uid"],
            "resourceVersion": first["metadata"]["resourceVersion"],
        }, "data": {"password": "cA=="}});
        let (code, answer) = call(
            &api,
            Method::PATCH,
            &format!("{secrets}/s?fieldManager=irsa-argocd-data"),
            "application/apply-patch+yaml",
            apply.clone(),
        )
        .await;
        assert_eq!(code, 409, "{answer}");
        assert_eq!(answer["reason"], "Conflict", "{answer}");
        // With the current resourceVersion, the uid still refuses it (422).
        let mut current = apply;
        current["metadata"]["resourceVersion"] = second["metadata"]["resourceVersion"].clone();
        let (code, answer) = call(
            &api,
            Method::PATCH,
            &format!("{secrets}/s?fieldManager=irsa-argocd-data"),
            "application/apply-patch+yaml",
            current,
        )
        .await;
        assert_eq!(code, 422, "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or("")
                .contains("metadata.uid"),
            "{answer}"
        );
    }
}
