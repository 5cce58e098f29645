//! Metadata-only reads (`PartialObjectMetadata`) with kube-rs against the sandbox API server:
//! `metadata_watcher` and `watcher` over `Api<PartialObjectMeta<K>>`, `list_metadata` with
//! selectors and pages, `get_metadata`, `patch_metadata`, and the raw bodies (metadata only,
//! no `spec` or `data`).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Sandbox, eventually};
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams, PostParams, ResourceExt,
    WatchEvent,
};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            "annotations": {"example.com/note": name},
        },
        "stringData": {"k": "v"},
    }))
    .unwrap()
}

fn assert_partial<K>(meta: &PartialObjectMeta<K>) {
    let types = meta.types.as_ref().expect("kind and apiVersion");
    assert_eq!(types.kind, "PartialObjectMetadata");
    assert_eq!(types.api_version, "meta.k8s.io/v1");
}

/// Every event a watcher delivered so far.
type Events<K> = Arc<Mutex<Vec<Event<K>>>>;

/// Runs a watcher in the background, keeping every event.
fn collect<K: Send + 'static>(
    stream: impl futures_util::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
) -> (Events<K>, tokio::task::JoinHandle<()>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => sink.lock().unwrap().push(e),
                Err(e) => panic!("watch failed: {e}"),
            }
        }
    });
    (events, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_watcher_sees_namespace_create_label_change_and_delete() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    #[allow(deprecated)]
    let stream = kube::runtime::metadata_watcher(nss.clone(), watcher::Config::default());
    let (events, task) = collect(stream);
    eventually("the initial list", TIMEOUT, || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::InitDone))
            .then_some(())
    })
    .await;
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::InitApply(ns) if ns.name_any() == "default")),
        "the initial list holds the default namespace"
    );

    let applied = |label: &'static str| {
        let events = events.clone();
        move || {
            events.lock().unwrap().iter().find_map(|e| match e {
                Event::Apply(ns)
                    if ns.name_any() == "team-a"
                        && ns.labels().get("team").map(String::as_str) == Some(label) =>
                {
                    Some(ns.clone())
                }
                _ => None,
            })
        }
    };
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}))
            .unwrap(),
    )
    .await
    .unwrap();
    let created = eventually("the new namespace", TIMEOUT, applied("a")).await;
    assert_partial(&created);
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(
        created
            .labels()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("team-a")
    );

    nss.patch(
        "team-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await
    .unwrap();
    let relabelled = eventually("the label change", TIMEOUT, applied("b")).await;
    assert_ne!(
        relabelled.resource_version(),
        created.resource_version(),
        "a new resourceVersion"
    );

    nss.delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = eventually("the deletion", TIMEOUT, || {
        events.lock().unwrap().iter().find_map(|e| match e {
            Event::Delete(ns) if ns.name_any() == "team-a" => Some(ns.clone()),
            _ => None,
        })
    })
    .await;
    assert_partial(&deleted);
    task.abort();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_object_meta_watcher_follows_deletion_timestamps_and_finalizers() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "default");
    let mut held = secret("held", &[("app", "web")]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    secrets.create(&PostParams::default(), &held).await.unwrap();

    // A streaming list (initial events, then a bookmark) of metadata, as a reflector.
    let (reader, writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(metas.clone(), watcher::Config::default().streaming_lists()),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    let state = reader.state();
    assert_eq!(state.len(), 1);
    let seen = &state[0];
    assert_partial(seen);
    assert_eq!(seen.labels().get("app").map(String::as_str), Some("web"));
    assert_eq!(
        seen.annotations()
            .get("example.com/note")
            .map(String::as_str),
        Some("held")
    );
    assert_eq!(seen.finalizers(), ["example.com/hold"]);

    secrets
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deletion timestamp", TIMEOUT, || {
        reader
            .state()
            .iter()
            .any(|s| s.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    let fetched = secrets.get_metadata("held").await.unwrap();
    assert_partial(&fetched);
    assert!(fetched.metadata.deletion_timestamp.is_some());

    // patch_metadata answers with metadata too; dropping the finalizer completes the delete.
    let patched = secrets
        .patch_metadata(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_partial(&patched);
    eventually("the secret gone", TIMEOUT, || {
        reader.state().is_empty().then_some(())
    })
    .await;
    assert!(secrets.get_metadata_opt("held").await.unwrap().is_none());
    task.abort();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_metadata_with_selectors_and_pages() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for (name, app) in [
        ("w1", "web"),
        ("w2", "web"),
        ("w3", "web"),
        ("d1", "db"),
        ("d2", "db"),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, &[("app", app)]))
            .await
            .unwrap();
    }

    let lp = ListParams::default().labels("app=web").limit(2);
    let first = secrets.list_metadata(&lp).await.unwrap();
    assert_eq!(first.types.kind, "PartialObjectMetadataList");
    assert_eq!(first.types.api_version, "meta.k8s.io/v1");
    assert!(first.metadata.resource_version.is_some());
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = secrets
        .list_metadata(&lp.clone().continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.metadata.continue_, None);
    let mut names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|m| {
            assert_partial(m);
            assert_eq!(m.labels().get("app").map(String::as_str), Some("web"));
            assert_eq!(m.annotations().get("example.com/note"), Some(&m.name_any()));
            assert!(m.metadata.resource_version.is_some());
            m.name_any()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["w1", "w2", "w3"]);

    let by_field = secrets
        .list_metadata(&ListParams::default().fields("metadata.name=d2"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);
    assert_eq!(by_field.items[0].name_any(), "d2");

    // The same through Api<PartialObjectMeta<K>>.
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "default");
    let all = metas
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let one = metas.get("w1").await.unwrap();
    assert_partial(&one);
    assert_eq!(one.labels().get("app").map(String::as_str), Some("web"));
    sb.stop().await;
}

fn request(uri: &str, accept: &str) -> http::Request<Vec<u8>> {
    http::Request::get(uri)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .unwrap()
}

fn assert_only_metadata(obj: &Value) {
    let keys: Vec<&str> = obj
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata"], "{obj}");
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bodies_carry_metadata_and_nothing_else() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(&PostParams::default(), &secret("s", &[("app", "web")]))
        .await
        .unwrap();
    let base = "/api/v1/namespaces/default/secrets";

    let list: Value = serde_json::from_str(
        &client
            .request_text(request(
                &format!("{base}?labelSelector=app%3Dweb"),
                META_LIST,
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_only_metadata(&items[0]);
    assert_eq!(items[0]["metadata"]["labels"]["app"], "web");

    let one: Value = serde_json::from_str(
        &client
            .request_text(request(&format!("{base}/s"), META))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_only_metadata(&one);
    assert_eq!(one["metadata"]["name"], "s");

    let events = client
        .request_events::<Value>(request(
            &format!("{base}?watch=true&resourceVersion=0&allowWatchBookmarks=true"),
            META,
        ))
        .await
        .unwrap();
    let first = std::pin::pin!(events).try_next().await.unwrap();
    match first {
        Some(WatchEvent::Added(obj)) => {
            assert_only_metadata(&obj);
            assert_eq!(obj["metadata"]["annotations"]["example.com/note"], "s");
        }
        other => panic!("expected ADDED, got {other:?}"),
    }

    // The full object is still served when asked for.
    let full = secrets.get("s").await.unwrap();
    assert!(full.data.is_some());

    // A list asked for as a single object (and the other way round): 406, as on kube-apiserver.
    for (uri, accept) in [(base.to_owned(), META), (format!("{base}/s"), META_LIST)] {
        match client.request_text(request(&uri, accept)).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 406, "{uri}"),
            other => panic!("expected 406 for {uri}, got {other:?}"),
        }
    }
    sb.stop().await;
}
