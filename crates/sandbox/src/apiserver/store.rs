//! The object store: one global resourceVersion counter, objects as JSON keyed by
//! (storage key, namespace, name), and a bounded history of watch events for resumption.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::resources::{Registry, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::util;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as broadcast to watches.
#[derive(Debug)]
pub struct WatchEvent {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// Storage key (`group/plural`).
    pub storage: Arc<str>,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before, for deletions, with the deletion's version).
    pub object: Arc<Value>,
    /// The object before a modification, so that selector watches see objects leave.
    pub old: Option<Arc<Value>>,
}

/// List options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: none).
    pub limit: usize,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Matching objects.
    pub items: Vec<Arc<Value>>,
    /// The store's resourceVersion when listed.
    pub resource_version: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Matching objects after this page (only when paginated).
    pub remaining: Option<u64>,
}

/// A watch's starting point.
pub struct WatchStart {
    /// Synthetic ADDED objects (the current state), when started without a resourceVersion.
    pub initial: Vec<Arc<Value>>,
    /// Events after the requested resourceVersion, from history.
    pub replay: Vec<Arc<WatchEvent>>,
    /// Live events after `resource_version`.
    pub receiver: broadcast::Receiver<Arc<WatchEvent>>,
    /// The store's resourceVersion when the watch started.
    pub resource_version: u64,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

struct State {
    rv: u64,
    registry: Registry,
    objects: HashMap<Arc<str>, Objects>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Every event with rv > compacted is in `history`.
    compacted: u64,
}

/// The cluster state.
pub struct Store {
    state: RwLock<State>,
    events: broadcast::Sender<Arc<WatchEvent>>,
    history_limit: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Whether a name is a valid DNS subdomain (lowercase alphanumerics, '-' and '.').
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn has_finalizers(v: &Value) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Whether everything but the server-managed metadata is equal.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

fn spec_changed(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(a) != strip(b)
}

fn encode_continue(ns: &str, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{ns}\u{0}{name}"))
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("invalid continue token"))?;
    let s =
        String::from_utf8(bytes).map_err(|_| ApiError::bad_request("invalid continue token"))?;
    let (ns, name) = s
        .split_once('\u{0}')
        .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
    Ok((ns.to_owned(), name.to_owned()))
}

impl Default for Store {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Store {
    /// A store with the system namespaces (each with its `default` service account), keeping
    /// `history_limit` events for watch resumption.
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(history_limit.clamp(1024, 65_536));
        let store = Self {
            state: RwLock::new(State {
                rv: 0,
                registry: Registry::default(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 0,
            }),
            events,
            history_limit: history_limit.max(1),
        };
        for ns in SYSTEM_NAMESPACES {
            let _ = store.create_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            );
        }
        store
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    /// A copy of the served resource types.
    pub fn registry(&self) -> Registry {
        self.read().registry.clone()
    }

    /// The resource type for (group, version, plural).
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.read().registry.find(group, version, plural).cloned()
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.read().objects.values().map(BTreeMap::len).sum()
    }

    /// Whether the store holds no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let state = self.read();
        state
            .objects
            .get(rt.storage.as_str())
            .and_then(|objs| objs.get(&(ns.to_owned(), name.to_owned())))
            .map(|o| present(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects (of one namespace, or all when `ns` is None).
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let start = match &opts.continue_token {
            Some(t) => Some(decode_continue(t)?),
            None => None,
        };
        let state = self.read();
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = 0u64;
        if let Some(objs) = state.objects.get(rt.storage.as_str()) {
            use std::ops::Bound;
            let lower = match (&start, ns) {
                (Some(k), _) => Bound::Excluded(k.clone()),
                (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
                (None, None) => Bound::Unbounded,
            };
            for ((ons, name), obj) in objs.range((lower, Bound::Unbounded)) {
                if let Some(ns) = ns
                    && ons != ns
                {
                    break;
                }
                if !opts.labels.matches(obj) || !opts.fields.matches(obj) {
                    continue;
                }
                if opts.limit > 0 && items.len() >= opts.limit {
                    remaining += 1;
                    continue;
                }
                if opts.limit > 0 && items.len() + 1 == opts.limit {
                    continue_token = Some(encode_continue(ons, name));
                }
                items.push(present(rt, obj));
            }
        }
        if remaining == 0 {
            continue_token = None;
        }
        Ok(ListPage {
            items,
            resource_version: state.rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Starts a watch: from `since` (events after it, or 410 Gone when they are no longer
    /// kept), or from now with the current objects as synthetic ADDED events.
    pub fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        since: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let state = self.read();
        let receiver = self.events.subscribe();
        let mut initial = Vec::new();
        let mut replay = Vec::new();
        match since {
            None | Some(0) => {
                if let Some(objs) = state.objects.get(rt.storage.as_str()) {
                    initial = objs
                        .iter()
                        .filter(|((ons, _), _)| ns.is_none_or(|ns| ns == ons))
                        .map(|(_, o)| present(rt, o))
                        .collect();
                }
            }
            Some(rv) => {
                if rv < state.compacted {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        state.compacted
                    )));
                }
                let skip = state.history.partition_point(|e| e.rv <= rv);
                replay = state.history.iter().skip(skip).cloned().collect();
            }
        }
        Ok(WatchStart {
            initial,
            replay,
            receiver,
            resource_version: state.rv,
        })
    }

    /// Creates an object from its `apiVersion` and `kind` (in-process setup).
    pub fn create_object(&self, obj: Value) -> Result<Value, ApiError> {
        let rt = self.type_of(&obj)?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ns = if rt.namespaced {
            Some(ns.unwrap_or_else(|| "default".into()))
        } else {
            None
        };
        self.create(&rt, ns.as_deref(), obj).map(|o| (*o).clone())
    }

    /// The resource type of an object, from its `apiVersion` and `kind`.
    pub fn type_of(&self, obj: &Value) -> Result<ResourceType, ApiError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.read()
            .registry
            .find_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::bad_request(format!("no resource for {api_version}, Kind={kind}"))
            })
    }

    /// Creates an object; 409 AlreadyExists when the name is taken.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let mut state = self.write();
        let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(ns);
        if rt.namespaced && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if rt.namespaced {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            check_namespace_open(&state, rt, ns, name)?;
        }
        let meta = meta_mut(&mut obj);
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
        {
            let name = format!("{prefix}{}", util::random_suffix());
            meta.insert("name".into(), json!(name));
        }
        let name = name_of(&obj).to_owned();
        if name.is_empty() {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.plural,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.plural,
                &name,
                format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                ),
            ));
        }
        let key = (ns.to_owned(), name.clone());
        if state
            .objects
            .get(rt.storage.as_str())
            .is_some_and(|o| o.contains_key(&key))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let rv = state.rv + 1;
        {
            let meta = meta_mut(&mut obj);
            if rt.namespaced {
                meta.insert("namespace".into(), json!(ns));
            } else {
                meta.remove("namespace");
            }
            meta.insert("uid".into(), json!(util::new_uid()));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            meta.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
            meta.remove("deletionTimestamp");
            if rt.custom || meta.contains_key("generation") || rt.kind == "CustomResourceDefinition"
            {
                meta.insert("generation".into(), json!(1));
            }
        }
        defaults(rt, &mut obj);
        if rt.kind == "CustomResourceDefinition" {
            let types = ResourceType::from_crd(&obj)
                .map_err(|e| ApiError::invalid(&rt.group, &rt.plural, &name, e))?;
            crd_established(&mut obj);
            state.registry.register(types);
        }
        let obj = Arc::new(obj);
        state.rv = rv;
        state
            .objects
            .entry(Arc::from(rt.storage.as_str()))
            .or_default()
            .insert(key, obj.clone());
        self.emit(&mut state, rt, ns, EventType::Added, obj.clone(), None);
        if rt.kind == "Namespace" {
            drop(state);
            let _ = self.create_object(json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name}
            }));
        }
        Ok(present(rt, &obj))
    }

    /// Replaces an object (or its status, with `subresource = Some("status")`); 409 Conflict
    /// when `metadata.resourceVersion` is set and stale.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        subresource: Option<&str>,
    ) -> Result<Arc<Value>, ApiError> {
        let want_rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if name_of(&obj) != name && !name_of(&obj).is_empty() {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        self.modify(rt, ns, name, subresource, |old| {
            let Some(old) = old else {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            };
            if let Some(want) = &want_rv
                && old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    != Some(want.as_str())
            {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
            Ok(obj)
        })
        .map(|(o, _)| o)
    }

    /// Atomically reads, changes and writes one object (patches, apply). `change` gets the
    /// current object (None when missing) and returns the new one; a new object is created
    /// when it was missing. Returns the stored object and whether it was created.
    pub fn modify(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        change: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let ns = if rt.namespaced { ns } else { "" };
        let key = (ns.to_owned(), name.to_owned());
        let mut state = self.write();
        let old = state
            .objects
            .get(rt.storage.as_str())
            .and_then(|o| o.get(&key))
            .cloned();
        let presented = old.as_ref().map(|o| present(rt, o));
        let new = change(presented.as_deref())?;
        let Some(old) = old else {
            drop(state);
            let mut new = new;
            meta_mut(&mut new).insert("name".into(), json!(name));
            return self
                .create(rt, if rt.namespaced { Some(ns) } else { None }, new)
                .map(|o| (o, true));
        };
        let mut new = match subresource {
            Some("status") => {
                let mut merged = (*old).clone();
                merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                // Server-side apply to the status records its manager's fields, so that a
                // field the manager stops applying (an emptied list) is removed next time.
                if let Some(fields) = new.pointer("/metadata/managedFields") {
                    meta_mut(&mut merged).insert("managedFields".into(), fields.clone());
                }
                if merged["status"].is_null()
                    && let Some(m) = merged.as_object_mut()
                {
                    m.remove("status");
                }
                merged
            }
            Some(other) => {
                return Err(ApiError::not_found(
                    &rt.group,
                    &format!("{}/{other}", rt.plural),
                    name,
                ));
            }
            None => {
                let mut new = new;
                if rt.status_subresource {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        if rt.group.is_empty() && rt.kind == "Secret" {
            fold_string_data(&mut new);
            // As kube-apiserver's validation: a Secret's type is immutable (an update that
            // leaves it out keeps it, one that changes it is refused).
            let type_of = |o: &Value| {
                o.get("type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            };
            match (type_of(&old), type_of(&new)) {
                (Some(was), Some(now)) if was != now => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.plural,
                        name,
                        format!("type: Invalid value: {now:?}: field is immutable"),
                    ));
                }
                (Some(was), None) => new["type"] = json!(was),
                _ => {}
            }
        }
        // Server-managed identity survives every write.
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        {
            let meta = meta_mut(&mut new);
            meta.insert("name".into(), json!(name));
            if rt.namespaced {
                meta.insert("namespace".into(), json!(ns));
            }
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            if !meta.contains_key("managedFields")
                && let Some(mf) = old_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta
                    .get("resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        if rt.kind == "CustomResourceDefinition" && subresource.is_none() {
            let types = ResourceType::from_crd(&new)
                .map_err(|e| ApiError::invalid(&rt.group, &rt.plural, name, e))?;
            crd_established(&mut new);
            state.registry.register(types);
        }
        if same_content(&old, &new) {
            return Ok((present(rt, &old), false));
        }
        if old_meta.get("generation").is_some() && spec_changed(&old, &new) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        let rv = state.rv + 1;
        state.rv = rv;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let storage: Arc<str> = Arc::from(rt.storage.as_str());
        if new.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&new) {
            state.objects.get_mut(&storage).map(|o| o.remove(&key));
            let new = Arc::new(new);
            self.emit(&mut state, rt, ns, EventType::Deleted, new.clone(), None);
            self.after_removal(&mut state, rt, ns, name);
            return Ok((present(rt, &new), false));
        }
        let new = Arc::new(new);
        state
            .objects
            .entry(storage)
            .or_default()
            .insert(key, new.clone());
        self.emit(
            &mut state,
            rt,
            ns,
            EventType::Modified,
            new.clone(),
            Some(old),
        );
        Ok((present(rt, &new), false))
    }

    /// Deletes an object: objects with finalizers get a `deletionTimestamp` and stay until
    /// the finalizers are removed; namespaces delete their contents first. A delete whose
    /// `preconditions` name another uid or resourceVersion fails with 409 Conflict, as on
    /// kube-apiserver.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        preconditions: &Preconditions,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.write();
        self.delete_locked(&mut state, rt, ns, name, preconditions)
    }

    fn delete_locked(
        &self,
        state: &mut State,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        preconditions: &Preconditions,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if rt.namespaced { ns } else { "" };
        let key = (ns.to_owned(), name.to_owned());
        let storage: Arc<str> = Arc::from(rt.storage.as_str());
        let old = state
            .objects
            .get(&storage)
            .and_then(|o| o.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        preconditions.check(rt, name, &old)?;
        let rv = state.rv + 1;
        let mut new = (*old).clone();
        let is_namespace = rt.kind == "Namespace";
        if has_finalizers(&old) || is_namespace {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(present(rt, &old));
            }
            state.rv = rv;
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            if is_namespace {
                new["status"] = json!({"phase": "Terminating"});
            }
            let new = Arc::new(new);
            state
                .objects
                .entry(storage)
                .or_default()
                .insert(key, new.clone());
            self.emit(state, rt, ns, EventType::Modified, new.clone(), Some(old));
            if is_namespace {
                self.empty_namespace(state, name);
                return Ok(self.namespace_now(state, name).unwrap_or(new));
            }
            return Ok(present(rt, &new));
        }
        state.rv = rv;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        state.objects.get_mut(&storage).map(|o| o.remove(&key));
        let new = Arc::new(new);
        self.emit(state, rt, ns, EventType::Deleted, new.clone(), None);
        self.after_removal(state, rt, ns, name);
        Ok(present(rt, &new))
    }

    /// Deletes every matching object; returns what was deleted (or marked for deletion).
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let page = self.list(
            rt,
            ns,
            &ListOptions {
                limit: 0,
                continue_token: None,
                ..opts.clone()
            },
        )?;
        let mut state = self.write();
        let mut out = Vec::new();
        for obj in page.items {
            let ons = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Ok(o) = self.delete_locked(
                &mut state,
                rt,
                ons,
                name_of(&obj),
                &Preconditions::default(),
            ) {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn namespace_now(&self, state: &State, name: &str) -> Option<Arc<Value>> {
        state
            .objects
            .get("/namespaces")
            .and_then(|o| o.get(&(String::new(), name.to_owned())))
            .cloned()
    }

    /// Deletes a terminating namespace's objects; removes the namespace once none is left.
    fn empty_namespace(&self, state: &mut State, ns: &str) {
        let registry = state.registry.clone();
        let mut seen = Vec::new();
        for rt in registry.all().iter().filter(|t| t.namespaced) {
            if seen.contains(&rt.storage) {
                continue;
            }
            seen.push(rt.storage.clone());
            let names: Vec<String> = state
                .objects
                .get(rt.storage.as_str())
                .map(|objs| {
                    objs.range((ns.to_owned(), String::new())..)
                        .take_while(|((ons, _), _)| ons == ns)
                        .map(|((_, n), _)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                let _ = self.delete_locked(state, rt, ns, &name, &Preconditions::default());
            }
        }
        self.finish_namespace(state, ns);
    }

    fn finish_namespace(&self, state: &mut State, ns: &str) {
        let Some(nso) = self.namespace_now(state, ns) else {
            return;
        };
        if nso.pointer("/metadata/deletionTimestamp").is_none() || has_finalizers(&nso) {
            return;
        }
        let occupied = state.objects.values().any(|objs| {
            objs.range((ns.to_owned(), String::new())..)
                .next()
                .is_some_and(|((o, _), _)| o == ns)
        });
        if occupied {
            return;
        }
        let rv = state.rv + 1;
        state.rv = rv;
        let mut gone = (*nso).clone();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        state
            .objects
            .get_mut("/namespaces")
            .map(|o| o.remove(&(String::new(), ns.to_owned())));
        let rt = state
            .registry
            .find("", "v1", "namespaces")
            .cloned()
            .expect("namespaces are built in");
        self.emit(state, &rt, "", EventType::Deleted, Arc::new(gone), None);
    }

    fn after_removal(&self, state: &mut State, rt: &ResourceType, ns: &str, name: &str) {
        if rt.kind == "CustomResourceDefinition" {
            if let Some(types) = state
                .registry
                .all()
                .iter()
                .find(|t| t.custom && format!("{}.{}", t.plural, t.group) == name)
                .cloned()
            {
                state.objects.remove(types.storage.as_str());
                state.registry.unregister(&types.storage);
            }
        } else if rt.namespaced && !ns.is_empty() {
            self.finish_namespace(state, ns);
        }
    }

    fn emit(
        &self,
        state: &mut State,
        rt: &ResourceType,
        ns: &str,
        kind: EventType,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let event = Arc::new(WatchEvent {
            rv: state.rv,
            storage: Arc::from(rt.storage.as_str()),
            namespace: ns.to_owned(),
            kind,
            object,
            old,
        });
        state.history.push_back(event.clone());
        while state.history.len() > self.history_limit {
            if let Some(e) = state.history.pop_front() {
                state.compacted = e.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.events.send(event);
    }

    /// Drops the watch history (as etcd compaction would): watches resuming from any version
    /// before now get 410 Gone.
    pub fn compact(&self) {
        let mut state = self.write();
        state.history.clear();
        state.compacted = state.rv;
    }
}

/// `DeleteOptions.preconditions`: the uid and resourceVersion the object must still have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl Preconditions {
    /// Reads them from a `DeleteOptions` body.
    pub fn from_options(options: &Value) -> Self {
        let get = |k: &str| {
            options
                .pointer(&format!("/preconditions/{k}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            uid: get("uid"),
            resource_version: get("resourceVersion"),
        }
    }

    /// 409 Conflict, worded as kube-apiserver words it, when `obj` does not match.
    fn check(&self, rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
        let meta = |k: &str| {
            obj.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        for (what, want, field) in [
            ("UID", &self.uid, "uid"),
            ("ResourceVersion", &self.resource_version, "resourceVersion"),
        ] {
            if let Some(want) = want
                && want != meta(field)
            {
                return Err(ApiError::conflict_because(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
                        meta(field)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The refusals kube-apiserver's NamespaceLifecycle admission gives a create in a namespace
/// that does not exist (404, details naming the namespace) or is being deleted (403, cause
/// `NamespaceTerminating`).
fn check_namespace_open(
    state: &State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let nso = state
        .objects
        .get("/namespaces")
        .and_then(|o| o.get(&(String::new(), ns.to_owned())));
    match nso {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(o) if o.pointer("/metadata/deletionTimestamp").is_some() => {
            let mut e = ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                super::error::qualified(&rt.group, &rt.plural)
            ));
            e.details = Some(json!({
                "name": name, "group": rt.group, "kind": rt.plural,
                "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }],
            }));
            Err(e)
        }
        Some(_) => Ok(()),
    }
}

/// The object as served under `rt`'s version (CRDs with several versions share storage).
pub(crate) fn present(rt: &ResourceType, obj: &Arc<Value>) -> Arc<Value> {
    let api_version = rt.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
        obj.clone()
    } else {
        let mut o = (**obj).clone();
        o["apiVersion"] = json!(api_version);
        Arc::new(o)
    }
}

fn defaults(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            let name = name_of(obj).to_owned();
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        ("", "Secret") => {
            if obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                obj["type"] = json!("Opaque");
            }
            fold_string_data(obj);
        }
        ("", "Pod") if obj.get("status").is_none() => {
            obj["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

/// Moves a secret's `stringData` into `data` (base64), as kube-apiserver does on every write.
fn fold_string_data(obj: &mut Value) {
    use base64::engine::general_purpose::STANDARD;
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(STANDARD.encode(text));
    }
}

fn crd_established(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let now = util::now_rfc3339();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(store: &Store) -> ResourceType {
        store.resource("", "v1", "secrets").unwrap()
    }

    fn secret(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "data": {}})
    }

    #[test]
    fn a_secrets_type_is_immutable() {
        let store = Store::default();
        let rt = secrets(&store);
        store
            .create(&rt, Some("default"), secret("a", json!({})))
            .unwrap();
        let mut changed = secret("a", json!({}));
        changed["type"] = json!("kubernetes.io/dockerconfigjson");
        let err = store
            .update(&rt, "default", "a", changed, None)
            .unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"), "{}", err.message);
        assert!(
            err.message.contains("field is immutable"),
            "{}",
            err.message
        );
        // Leaving the type out keeps it; the same type is accepted.
        let kept = store
            .update(&rt, "default", "a", secret("a", json!({"x": "1"})), None)
            .unwrap();
        assert_eq!(kept["type"], "Opaque");
        let mut same = secret("a", json!({}));
        same["type"] = json!("Opaque");
        store.update(&rt, "default", "a", same, None).unwrap();
    }

    #[test]
    fn create_get_conflict_and_delete() {
        let store = Store::default();
        let rt = secrets(&store);
        let created = store
            .create(&rt, Some("default"), secret("a", json!({})))
            .unwrap();
        assert_eq!(created["type"], "Opaque");
        let err = store
            .create(&rt, Some("default"), secret("a", json!({})))
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        let err = store
            .create(&rt, Some("nope"), secret("a", json!({})))
            .unwrap_err();
        assert_eq!(err.code, 404);

        let mut stale = (*created).clone();
        stale["data"] = json!({"k": "dg=="});
        store
            .update(&rt, "default", "a", stale.clone(), None)
            .unwrap();
        let err = store.update(&rt, "default", "a", stale, None).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));

        store
            .delete(&rt, "default", "a", &Preconditions::default())
            .unwrap();
        assert_eq!(store.get(&rt, "default", "a").unwrap_err().code, 404);
    }

    #[test]
    fn deletes_honour_uid_and_resource_version_preconditions() {
        let store = Store::default();
        let rt = secrets(&store);
        let created = store
            .create(&rt, Some("default"), secret("a", json!({})))
            .unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
        let rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        let wrong = |uid: Option<&str>, rv: Option<&str>| Preconditions {
            uid: uid.map(str::to_owned),
            resource_version: rv.map(str::to_owned),
        };
        for (p, field) in [
            (wrong(Some("other-uid"), None), "UID"),
            (wrong(Some(&uid), Some("1")), "ResourceVersion"),
        ] {
            let err = store.delete(&rt, "default", "a", &p).unwrap_err();
            assert_eq!((err.code, err.reason), (409, "Conflict"), "{p:?}");
            assert!(
                err.message
                    .contains(&format!("Precondition failed: {field} in precondition")),
                "{}",
                err.message
            );
            assert!(store.get(&rt, "default", "a").is_ok(), "not deleted");
        }
        let options = json!({"preconditions": {"uid": uid, "resourceVersion": rv}});
        store
            .delete(&rt, "default", "a", &Preconditions::from_options(&options))
            .unwrap();
        assert_eq!(store.get(&rt, "default", "a").unwrap_err().code, 404);
    }

    #[test]
    fn creates_in_missing_or_terminating_namespaces_fail_as_on_kube_apiserver() {
        let store = Store::default();
        let rt = secrets(&store);
        let err = store
            .create(&rt, Some("nope"), secret("a", json!({})))
            .unwrap_err();
        assert_eq!((err.code, err.reason), (404, "NotFound"));
        assert_eq!(err.message, "namespaces \"nope\" not found");
        let details = err.details.unwrap();
        assert_eq!(
            (details["kind"].as_str(), details["name"].as_str()),
            (Some("namespaces"), Some("nope"))
        );

        let ns_rt = store.resource("", "v1", "namespaces").unwrap();
        store
            .create(
                &ns_rt,
                None,
                json!({"metadata": {"name": "going", "finalizers": ["x"]}}),
            )
            .unwrap();
        store
            .delete(&ns_rt, "", "going", &Preconditions::default())
            .unwrap();
        let err = store
            .create(&rt, Some("going"), secret("a", json!({})))
            .unwrap_err();
        assert_eq!((err.code, err.reason), (403, "Forbidden"));
        assert!(
            err.message.starts_with(
                "secrets \"a\" is forbidden: unable to create new content in namespace going"
            ),
            "{}",
            err.message
        );
        let details = err.details.unwrap();
        assert_eq!(details["kind"], "secrets");
        assert_eq!(details["causes"][0]["reason"], "NamespaceTerminating");
        assert_eq!(details["causes"][0]["field"], "metadata.namespace");
    }

    #[test]
    fn unchanged_update_is_not_a_write() {
        let store = Store::default();
        let rt = secrets(&store);
        let created = store
            .create(&rt, Some("default"), secret("a", json!({})))
            .unwrap();
        let rv = store.resource_version();
        let same = store
            .update(&rt, "default", "a", (*created).clone(), None)
            .unwrap();
        assert_eq!(store.resource_version(), rv);
        assert_eq!(
            same["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn pagination_and_selectors() {
        let store = Store::default();
        let rt = secrets(&store);
        for i in 0..5 {
            let tier = if i % 2 == 0 { "even" } else { "odd" };
            store
                .create(
                    &rt,
                    Some("default"),
                    secret(&format!("s{i}"), json!({"tier": tier})),
                )
                .unwrap();
        }
        let mut opts = ListOptions {
            limit: 2,
            ..Default::default()
        };
        let mut names = Vec::new();
        for _ in 0..5 {
            let page = store.list(&rt, Some("default"), &opts).unwrap();
            names.extend(page.items.iter().map(|o| name_of(o).to_owned()));
            match page.continue_token {
                Some(t) => opts.continue_token = Some(t),
                None => break,
            }
        }
        assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
        let evens = store
            .list(
                &rt,
                None,
                &ListOptions {
                    labels: LabelSelector::parse("tier=even").unwrap(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(evens.items.len(), 3);
    }

    #[test]
    fn finalizers_and_namespace_deletion() {
        let store = Store::default();
        let ns_rt = store.resource("", "v1", "namespaces").unwrap();
        let rt = secrets(&store);
        store
            .create(&ns_rt, None, json!({"metadata": {"name": "team"}}))
            .unwrap();
        store
            .create(
                &rt,
                Some("team"),
                json!({"metadata": {"name": "f", "finalizers": ["x/y"]}}),
            )
            .unwrap();
        store
            .create(&rt, Some("team"), secret("plain", json!({})))
            .unwrap();
        store
            .delete(&ns_rt, "", "team", &Preconditions::default())
            .unwrap();
        assert_eq!(store.get(&rt, "team", "plain").unwrap_err().code, 404);
        let held = store.get(&rt, "team", "f").unwrap();
        assert!(held.pointer("/metadata/deletionTimestamp").is_some());
        assert_eq!(
            store.get(&ns_rt, "", "team").unwrap()["status"]["phase"],
            "Terminating"
        );
        let err = store
            .create(&rt, Some("team"), secret("late", json!({})))
            .unwrap_err();
        assert_eq!(err.code, 403);
        let mut released = (*held).clone();
        released["metadata"]["finalizers"] = json!([]);
        store.update(&rt, "team", "f", released, None).unwrap();
        assert_eq!(store.get(&rt, "team", "f").unwrap_err().code, 404);
        assert_eq!(store.get(&ns_rt, "", "team").unwrap_err().code, 404);
    }

    #[test]
    fn watch_history_and_gone() {
        let store = Store::new(3);
        let rt = secrets(&store);
        let start = store.resource_version();
        for i in 0..2 {
            store
                .create(&rt, Some("default"), secret(&format!("w{i}"), json!({})))
                .unwrap();
        }
        let w = store.watch(&rt, None, Some(start)).unwrap();
        assert_eq!(w.replay.len(), 2);
        for i in 2..6 {
            store
                .create(&rt, Some("default"), secret(&format!("w{i}"), json!({})))
                .unwrap();
        }
        let err = store.watch(&rt, None, Some(start)).err().unwrap();
        assert_eq!(err.code, 410);
        let w = store.watch(&rt, Some("default"), None).unwrap();
        assert_eq!(w.initial.len(), 6);
    }
}
