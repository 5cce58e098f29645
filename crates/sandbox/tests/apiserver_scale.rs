//! Scale: 1,000 concurrent kube-rs watches over 10,000 objects, over HTTPS. Prints the
//! process RSS and list/watch throughput (run with `--nocapture` to see the figures).
//! The server and its 1,000 clients share this process, so the RSS figures bound the
//! server's from above; the store's own share is the growth while filling it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Sandbox, eventually};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde_json::json;

const OBJECTS: usize = 10_000;
const WATCHES: usize = 1_000;
const UPDATES: usize = 50;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_watches_over_ten_thousand_objects() {
    let sb = Sandbox::start().await;
    let store = sb.api.store().clone();
    let base = rss_mib();
    store
        .create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scale"}}),
        )
        .unwrap();
    let started = Instant::now();
    for i in 0..OBJECTS {
        store
            .create_object(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:05}"), "namespace": "scale",
                    "labels": {"app.kubernetes.io/managed-by": "irsa", "shard": format!("s{}", i % 10)}},
                "data": {"registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "index": i.to_string()}
            }))
            .unwrap();
    }
    let fill = started.elapsed();
    let filled = rss_mib();

    let client = sb.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "scale");
    let started = Instant::now();
    let mut listed = 0;
    for _ in 0..3 {
        listed += cms.list(&ListParams::default()).await.unwrap().items.len();
    }
    let list_rate = listed as f64 / started.elapsed().as_secs_f64();
    assert_eq!(listed, 3 * OBJECTS);
    let started = Instant::now();
    let mut paged = 0;
    let mut lp = ListParams::default().limit(500);
    for _ in 0..100 {
        let page = cms.list(&lp).await.unwrap();
        paged += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(paged, OBJECTS);
    let paged_rate = paged as f64 / started.elapsed().as_secs_f64();
    let selected = cms
        .list(&ListParams::default().labels("shard=s3"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), OBJECTS / 10);

    // 1,000 watches from the current version, each on its own connection.
    let rv = store.resource_version().to_string();
    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..WATCHES {
        let cms = cms.clone();
        let rv = rv.clone();
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = cms
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .unwrap()
                .boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Modified(_)) = ev {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    eventually("1,000 watches open", Duration::from_secs(60), || {
        (sb.api
            .counters()
            .get("kubernetes", "watch configmaps", "200")
            >= WATCHES as u64)
            .then_some(())
    })
    .await;
    let open_time = started.elapsed();
    let watching = rss_mib();

    let rt = store.resource("", "v1", "configmaps").unwrap();
    let started = Instant::now();
    for i in 0..UPDATES {
        let name = format!("cm-{i:05}");
        store
            .modify(&rt, "scale", &name, None, |old| {
                let mut new = old.unwrap().clone();
                new["data"]["index"] = json!(format!("updated-{i}"));
                Ok(new)
            })
            .unwrap();
    }
    let want = UPDATES * WATCHES;
    eventually(
        "every watch to see every update",
        Duration::from_secs(90),
        || (received.load(Ordering::Relaxed) >= want).then_some(()),
    )
    .await;
    let watch_time = started.elapsed();
    let peak = rss_mib();
    println!(
        "scale: {OBJECTS} objects filled in {fill:?}; RSS {base:.1} MiB empty, {filled:.1} MiB with objects \
         (store ~{:.1} MiB), {watching:.1} MiB with {WATCHES} watches open (opened in {open_time:?}), \
         {peak:.1} MiB after delivery (server and clients in one process)",
        filled - base
    );
    println!(
        "scale: full list {list_rate:.0} objects/s, paginated (limit 500) {paged_rate:.0} objects/s; \
         watch delivery {want} events in {watch_time:?} = {:.0} events/s",
        want as f64 / watch_time.as_secs_f64()
    );
    for t in tasks {
        t.abort();
    }
    assert!(
        filled - base < 200.0,
        "the store of {OBJECTS} objects stays well under 200 MiB"
    );
    sb.stop().await;
}
