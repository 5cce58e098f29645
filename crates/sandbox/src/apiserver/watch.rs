//! Watch streams: newline-delimited JSON events after a resourceVersion, bookmarks,
//! `410 Gone` as an `ERROR` event, `timeoutSeconds`, and clean ends; and the faults that end
//! them (dropped) or hold their events back (held).

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument as _;

use super::error::ApiError;
use super::negotiate::{self, Render};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, WatchEvent, present};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// `resourceVersion` (None or 0: start from now with the current objects).
    pub since: Option<u64>,
    /// `timeoutSeconds` (capped by the server's maximum).
    pub timeout: Duration,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`: current objects, then a bookmark marking their end.
    pub send_initial_events: bool,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// How often to send bookmarks.
    pub bookmark_interval: Duration,
    /// How objects are rendered: whole, as one-row `meta.k8s.io/v1` Tables (`kubectl get -w`)
    /// or as `PartialObjectMetadata` (kube-rs's `metadata_watcher`).
    pub render: Render,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn object_line(kind: &str, rt: &ResourceType, object: &Arc<Value>, render: Render) -> Bytes {
    match render {
        Render::Full => line(kind, &present(rt, object)),
        Render::Table => line(
            kind,
            &super::table::table(rt, std::slice::from_ref(object), None),
        ),
        Render::Metadata(v) => line(kind, &negotiate::partial(object, v)),
    }
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool, render: Render) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = match render {
        Render::Metadata(v) => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": v.api_version(), "metadata": meta})
        }
        Render::Full | Render::Table => {
            json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta})
        }
    };
    line("BOOKMARK", &object)
}

/// The event a watch with these filters sees for a change, if any: selector watches see an
/// object that stops matching as DELETED and one that starts matching as ADDED.
fn visible(
    ev: &WatchEvent,
    rt: &ResourceType,
    ns: Option<&str>,
    p: &WatchParams,
) -> Option<&'static str> {
    if *ev.storage != *rt.storage || ns.is_some_and(|ns| ns != ev.namespace) {
        return None;
    }
    let matches = |o: &Value| p.labels.matches(o) && p.fields.matches(o);
    let now = matches(&ev.object);
    match ev.kind {
        EventType::Added | EventType::Deleted => now.then_some(ev.kind.as_str()),
        EventType::Modified => {
            let before = ev.old.as_deref().is_some_and(matches);
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

/// Events a held watch keeps before it gives up and ends (its client then resumes or relists).
const MAX_HELD: usize = 100_000;

/// The sending end of one watch: events go out in order, or wait in `held` while the
/// resource's watches are held.
struct Outbox {
    tx: mpsc::Sender<Bytes>,
    holds: watch::Receiver<BTreeSet<String>>,
    plural: String,
    held: VecDeque<Bytes>,
}

impl Outbox {
    fn holding(&self) -> bool {
        self.holds.borrow().contains(&self.plural)
    }

    /// Sends (or holds) one event; `false` when the watch must end.
    async fn send(&mut self, event: Bytes) -> bool {
        if self.holding() {
            if self.held.len() >= MAX_HELD {
                return false;
            }
            self.held.push_back(event);
            return true;
        }
        self.flush().await && self.tx.send(event).await.is_ok()
    }

    /// Sends what was held, once released; `false` when the client is gone.
    async fn flush(&mut self) -> bool {
        while !self.holding()
            && let Some(event) = self.held.pop_front()
        {
            if self.tx.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Starts a watch and returns the streaming response.
pub fn serve(
    store: &Store,
    rt: ResourceType,
    ns: Option<String>,
    params: WatchParams,
    mut drops: watch::Receiver<u64>,
    holds: watch::Receiver<BTreeSet<String>>,
) -> Response {
    let since = if params.send_initial_events {
        None
    } else {
        params.since
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match store.watch(&rt, ns.as_deref(), since) {
        Err(error) => {
            // As kube-apiserver does: 200, then one ERROR event carrying the Status.
            let _ = tx.try_send(line("ERROR", &error.status()));
        }
        Ok(start) => {
            let span = tracing::debug_span!("watch", resource = %rt.plural, namespace = ns.as_deref().unwrap_or(""));
            drops.mark_unchanged();
            tokio::spawn(
                async move {
                    let ns = ns.as_deref();
                    let matches =
                        |o: &Value| params.labels.matches(o) && params.fields.matches(o);
                    let mut out = Outbox {
                        tx,
                        holds,
                        plural: rt.plural.clone(),
                        held: VecDeque::new(),
                    };
                    for obj in &start.initial {
                        if matches(obj) && !out.send(object_line("ADDED", &rt, obj, params.render)).await {
                            return;
                        }
                    }
                    let mut last = start.resource_version;
                    if params.send_initial_events
                        && params.bookmarks
                        && !out.send(bookmark(&rt, last, true, params.render)).await
                    {
                        return;
                    }
                    for ev in &start.replay {
                        last = ev.rv;
                        if let Some(kind) = visible(ev, &rt, ns, &params)
                            && !out.send(object_line(kind, &rt, &ev.object, params.render)).await
                        {
                            return;
                        }
                    }
                    let mut receiver = start.receiver;
                    let deadline = tokio::time::sleep(params.timeout);
                    tokio::pin!(deadline);
                    let mut ticks = tokio::time::interval(params.bookmark_interval);
                    ticks.tick().await;
                    let mut holds = out.holds.clone();
                    loop {
                        tokio::select! {
                            () = &mut deadline => break,
                            () = out.tx.closed() => break,
                            _ = drops.changed() => break,
                            changed = holds.changed() => {
                                if changed.is_err() || !out.flush().await {
                                    break;
                                }
                            }
                            // A held watch sends no bookmark: one would let its client resume
                            // past the events still held.
                            _ = ticks.tick(), if params.bookmarks => {
                                if !out.holding()
                                    && !out.send(bookmark(&rt, last, false, params.render)).await
                                {
                                    break;
                                }
                            }
                            received = receiver.recv() => match received {
                                Ok(ev) => {
                                    if ev.rv <= last {
                                        continue;
                                    }
                                    last = ev.rv;
                                    if let Some(kind) = visible(&ev, &rt, ns, &params)
                                        && !out.send(object_line(kind, &rt, &ev.object, params.render)).await
                                    {
                                        break;
                                    }
                                }
                                // A watcher too slow for the broadcast: end the stream, the
                                // client resumes from its last version (or relists on 410).
                                Err(broadcast::error::RecvError::Lagged(n)) => {
                                    tracing::debug!(skipped = n, "watch lagged, ending it");
                                    break;
                                }
                                Err(broadcast::error::RecvError::Closed) => break,
                            },
                        }
                    }
                }
                .instrument(span),
            );
        }
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Parses a resourceVersion parameter.
pub fn parse_rv(rv: Option<&str>) -> Result<Option<u64>, ApiError> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_transitions() {
        let rt = Store::default().resource("", "v1", "secrets").unwrap();
        let p = WatchParams {
            since: None,
            timeout: Duration::from_secs(1),
            bookmarks: false,
            send_initial_events: false,
            labels: LabelSelector::parse("app=a").unwrap(),
            fields: FieldSelector::default(),
            bookmark_interval: Duration::from_secs(1),
            render: Render::Full,
        };
        let obj = |app: &str| Arc::new(json!({"metadata": {"labels": {"app": app}}}));
        let ev = |kind, new: &str, old: Option<&str>| WatchEvent {
            rv: 1,
            storage: Arc::from("/secrets"),
            namespace: "default".into(),
            kind,
            object: obj(new),
            old: old.map(obj),
        };
        for (e, want) in [
            (ev(EventType::Added, "a", None), Some("ADDED")),
            (ev(EventType::Added, "b", None), None),
            (ev(EventType::Modified, "a", Some("a")), Some("MODIFIED")),
            (ev(EventType::Modified, "a", Some("b")), Some("ADDED")),
            (ev(EventType::Modified, "b", Some("a")), Some("DELETED")),
            (ev(EventType::Deleted, "a", None), Some("DELETED")),
        ] {
            assert_eq!(visible(&e, &rt, Some("default"), &p), want, "{e:?}");
        }
        assert_eq!(
            visible(&ev(EventType::Added, "a", None), &rt, Some("other"), &p),
            None
        );
    }

    #[tokio::test]
    async fn a_held_outbox_sends_nothing_until_released_then_all_in_order() {
        let faults = super::super::faults::Faults::default();
        let (tx, mut rx) = mpsc::channel(8);
        let mut out = Outbox {
            tx,
            holds: faults.watch_holds(),
            plural: "secrets".into(),
            held: VecDeque::new(),
        };
        faults.hold_watches("secrets");
        faults.hold_watches("namespaces");
        assert!(out.send(Bytes::from_static(b"1")).await);
        assert!(out.send(Bytes::from_static(b"2")).await);
        faults.release_watches("namespaces");
        assert!(out.flush().await);
        assert!(rx.try_recv().is_err(), "still held");
        faults.release_watches("secrets");
        assert!(out.flush().await);
        assert!(out.send(Bytes::from_static(b"3")).await);
        for want in ["1", "2", "3"] {
            assert_eq!(rx.try_recv().unwrap(), want.as_bytes());
        }
    }

    #[tokio::test]
    async fn a_held_watch_stays_open_and_delivers_what_it_held_once_released() {
        use http_body_util::BodyExt as _;
        let store = Store::default();
        let rt = store.resource("", "v1", "secrets").unwrap();
        let faults = super::super::faults::Faults::default();
        faults.hold_watches("secrets");
        let params = WatchParams {
            since: Some(store.resource_version()),
            timeout: Duration::from_secs(60),
            bookmarks: true,
            send_initial_events: false,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            bookmark_interval: Duration::from_millis(1),
            render: Render::Full,
        };
        let mut body = serve(
            &store,
            rt.clone(),
            Some("default".into()),
            params,
            faults.watch_drops(),
            faults.watch_holds(),
        )
        .into_body();
        for name in ["a", "b"] {
            store
                .create(&rt, Some("default"), json!({"metadata": {"name": name}}))
                .unwrap();
        }
        faults.release_watches("secrets");
        store
            .create(&rt, Some("default"), json!({"metadata": {"name": "c"}}))
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < 3 {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .expect("events within the deadline")
                .expect("the watch is still open")
                .unwrap();
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let event: Value = serde_json::from_slice(line).unwrap();
                if event["type"] != "BOOKMARK" {
                    seen.push(
                        event["object"]["metadata"]["name"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
        }
        assert_eq!(seen, ["a", "b", "c"], "nothing lost, in order");
    }

    #[test]
    fn resource_versions_parse() {
        assert_eq!(parse_rv(None).unwrap(), None);
        assert_eq!(parse_rv(Some("12")).unwrap(), Some(12));
        assert!(parse_rv(Some("x")).is_err());
    }
}
