//! kube-rs against the sandbox API server over HTTPS: CRUD, conflicts, selectors,
//! pagination, patches, server-side apply, CRDs with status, TokenRequest, watch with
//! reconnect and 410, faults.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Sandbox, eventually};
use futures_util::StreamExt as _;
use irsa_sandbox::apiserver::ErrorRule;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, ResourceExt,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
        "stringData": {"k": "v"},
    }))
    .unwrap()
}

fn api_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_conflicts_selectors_and_pagination() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let created = secrets
        .create(&pp, &secret("a", &[("app", "web")]))
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.metadata.uid.is_some());
    let err = secrets.create(&pp, &secret("a", &[])).await.unwrap_err();
    assert_eq!(api_code(&err), 409);
    if let kube::Error::Api(s) = &err {
        assert_eq!(s.reason, "AlreadyExists");
    }

    // Stale resourceVersion: 409 Conflict.
    let mut first = created.clone();
    first
        .metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "1".into());
    let updated = secrets.replace("a", &pp, &first).await.unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    let mut stale = created.clone();
    stale
        .metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "2".into());
    let err = secrets.replace("a", &pp, &stale).await.unwrap_err();
    assert_eq!(api_code(&err), 409);

    // 404 with a Status body.
    let err = secrets.get("missing").await.unwrap_err();
    assert_eq!(api_code(&err), 404);
    assert_eq!(secrets.get_opt("missing").await.unwrap(), None);

    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        secrets
            .create(&pp, &secret(&format!("p{i}"), &[("tier", tier)]))
            .await
            .unwrap();
    }
    let evens = secrets
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(evens.items.len(), 4);
    let set = secrets
        .list(&ListParams::default().labels("tier in (odd),app!=web"))
        .await
        .unwrap();
    assert_eq!(set.items.len(), 3);
    let one = secrets
        .list(&ListParams::default().fields("metadata.name=p3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);

    let mut names = Vec::new();
    let mut lp = ListParams::default().labels("tier").limit(3);
    for _ in 0..10 {
        let page = secrets.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().map(|s| s.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);

    // All namespaces.
    let all: Api<Secret> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        8
    );

    secrets.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        api_code(
            &secrets
                .delete("a", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        404
    );
    let left = secrets
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=odd"),
        )
        .await
        .unwrap();
    assert!(left.is_left());
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );

    assert!(sb.api.counters().get("kubernetes", "create secrets", "409") >= 1);
    assert!(sb.api.counters().get("kubernetes", "list secrets", "200") >= 5);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_server_side_apply() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pp = PatchParams::default();

    let p = pods
        .patch(
            "web",
            &pp,
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}})),
        )
        .await
        .unwrap();
    let images: Vec<_> = p
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.image.clone().unwrap())
        .collect();
    assert_eq!(images, ["app:2", "side:1"]);

    let p = pods
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.labels()["a"], "1");
    let ops: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/metadata/annotations", "value": {"b": "2"}}]),
    )
    .unwrap();
    let p = pods
        .patch("web", &pp, &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(p.annotations()["b"], "2");

    // Status subresource: the main resource ignores status, /status changes only status.
    let p = pods
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    let p = pods
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));

    // Server-side apply: create, update, drop a field, conflict, force.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let apply = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull", "labels": {"app.kubernetes.io/managed-by": "irsa"}}, "type": "Opaque", "data": data});
    let ssa = PatchParams::apply("irsa");
    let s = secrets
        .patch(
            "pull",
            &ssa,
            &Patch::Apply(apply(json!({"a": "MQ==", "b": "Mg=="}))),
        )
        .await
        .unwrap();
    assert_eq!(s.managed_fields()[0].manager.as_deref(), Some("irsa"));
    let rv = s.resource_version();
    // Same apply again: no write.
    let s = secrets
        .patch(
            "pull",
            &ssa,
            &Patch::Apply(apply(json!({"a": "MQ==", "b": "Mg=="}))),
        )
        .await
        .unwrap();
    assert_eq!(s.resource_version(), rv);
    let s = secrets
        .patch("pull", &ssa, &Patch::Apply(apply(json!({"a": "Mw=="}))))
        .await
        .unwrap();
    let data = s.data.unwrap();
    assert_eq!(data.get("a").map(|b| b.0.as_slice()), Some(&b"3"[..]));
    assert!(!data.contains_key("b"));
    let other = PatchParams::apply("someone-else");
    let err = secrets
        .patch("pull", &other, &Patch::Apply(apply(json!({"a": "eA=="}))))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
    let s = secrets
        .patch(
            "pull",
            &other.force(),
            &Patch::Apply(apply(json!({"a": "eA=="}))),
        )
        .await
        .unwrap();
    assert_eq!(s.data.unwrap()["a"].0, b"x");
    sb.stop().await;
}

/// A JSON patch that sets `metadata.resourceVersion` is conditional on it, as on
/// kube-apiserver (409 when it is stale); a strategic merge patch of a
/// MutatingWebhookConfiguration merges its `webhooks` by name (their patchMergeKey), so
/// patching one webhook's caBundle keeps the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_preconditions_and_webhook_configuration_merges() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhook = |name: &str| {
        json!({"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"url": format!("https://{name}/mutate")}})
    };
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "c"},
        "webhooks": [webhook("a.irsa.dev"), webhook("b.irsa.dev")]
    }))
    .unwrap();
    let created = configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let stale = created.resource_version().unwrap();
    let pp = PatchParams::default();

    let p = configs
        .patch(
            "c",
            &pp,
            &Patch::Strategic(
                json!({"webhooks": [{"name": "b.irsa.dev", "clientConfig": {"caBundle": "Q0E="}}]}),
            ),
        )
        .await
        .unwrap();
    let webhooks = p.webhooks.clone().unwrap();
    assert_eq!(
        webhooks.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["a.irsa.dev", "b.irsa.dev"],
        "a strategic merge patch replaced the webhooks"
    );
    assert_eq!(webhooks[0].client_config.ca_bundle, None);
    assert_eq!(
        webhooks[1]
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice()),
        Some(&b"CA"[..])
    );
    assert_eq!(
        webhooks[1].client_config.url.as_deref(),
        Some("https://b.irsa.dev/mutate")
    );

    let set_bundle = |rv: &str| -> json_patch::Patch {
        serde_json::from_value(json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}
        ]))
        .unwrap()
    };
    let err = configs
        .patch("c", &pp, &Patch::<()>::Json(set_bundle(&stale)))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409, "{err}");
    let unchanged = configs.get("c").await.unwrap();
    assert_eq!(unchanged.webhooks.unwrap()[0].client_config.ca_bundle, None);
    let current = p.resource_version().unwrap();
    let p = configs
        .patch("c", &pp, &Patch::<()>::Json(set_bundle(&current)))
        .await
        .unwrap();
    assert!(p.webhooks.unwrap()[0].client_config.ca_bundle.is_some());
    assert_ne!(
        p.metadata.resource_version.as_deref(),
        Some(current.as_str())
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_serve_custom_resources_with_status() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}]
        }
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 1}
    }))
    .unwrap();
    let w = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    let w = widgets
        .patch_status(
            "w1",
            &PatchParams::apply("irsa").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                "status": {"ready": true, "observedGeneration": 2}
            })),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"]["ready"], true);
    assert_eq!(w.data["spec"]["size"], 2);
    assert_eq!(
        w.metadata.generation,
        Some(2),
        "status writes do not bump generation"
    );
    // A field the manager stops applying to the status goes (as with any server-side apply).
    let w = widgets
        .patch_status(
            "w1",
            &PatchParams::apply("irsa").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                "status": {"observedGeneration": 2}
            })),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"], json!({"observedGeneration": 2}));

    // Discovery lists the new resource.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let found = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .any(|(ar, caps)| {
            ar.plural == "widgets" && caps.subresources.iter().any(|(s, _)| s.plural == "status")
        });
    let all: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(ar, caps)| {
            format!(
                "{} {:?}",
                ar.plural,
                caps.subresources
                    .iter()
                    .map(|(s, _)| s.plural.clone())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(
        found,
        "widgets discovered with a status subresource: {all:?}"
    );

    // Deleting the CRD stops serving its resources.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_code(&widgets.get("w1").await.unwrap_err()), 404);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_and_finalizers() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    // The default service account appears, as the controller-manager would make it.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    sas.get("default").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    let mut held = secret("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    secrets.create(&PostParams::default(), &held).await.unwrap();
    secrets
        .create(&PostParams::default(), &secret("plain", &[]))
        .await
        .unwrap();

    let deleted = nss.delete("team", &DeleteParams::default()).await.unwrap();
    let ns = deleted.left().expect("namespace still terminating");
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(secrets.get_opt("plain").await.unwrap(), None);
    let s = secrets.get("held").await.unwrap();
    assert!(s.metadata.deletion_timestamp.is_some());
    assert_eq!(
        api_code(
            &secrets
                .create(&PostParams::default(), &secret("late", &[]))
                .await
                .unwrap_err()
        ),
        403
    );

    secrets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(secrets.get_opt("held").await.unwrap(), None);
    assert_eq!(nss.get_opt("team").await.unwrap(), None);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_and_oidc_discovery() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "puller"}})).unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "runner"},
            "spec": {"serviceAccountName": "puller", "nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}
        })).unwrap())
        .await
        .unwrap();
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["sts.amazonaws.com".into()]),
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("runner".into()),
                uid: pod.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = sas
        .create_token_request("puller", &PostParams::default(), &req)
        .await
        .unwrap();
    let token = resp.status.unwrap().token.unwrap();

    // Verify against the published JWKS, through the unauthenticated endpoints.
    let http = client.clone();
    let disco: serde_json::Value = http
        .request(
            http::Request::get("/.well-known/openid-configuration")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(disco["issuer"], sb.url);
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .request(
            http::Request::get("/openid/v1/jwks")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("test-rsa"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find("test-rsa").unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["sts.amazonaws.com"]);
    validation.set_issuer(&[sb.url.as_str()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "system:serviceaccount:default:puller");
    assert_eq!(
        claims["kubernetes.io"]["pod"]["uid"],
        json!(pod.metadata.uid)
    );
    assert_eq!(claims["kubernetes.io"]["node"]["name"], "node-1");

    // Errors: unknown service account, too-short lifetime, wrong pod uid.
    assert_eq!(
        api_code(
            &sas.create_token_request("nope", &PostParams::default(), &req)
                .await
                .unwrap_err()
        ),
        404
    );
    let mut short = req.clone();
    short.spec.as_mut().unwrap().expiration_seconds = Some(60);
    assert_eq!(
        api_code(
            &sas.create_token_request("puller", &PostParams::default(), &short)
                .await
                .unwrap_err()
        ),
        422
    );
    let mut wrong = req.clone();
    wrong
        .spec
        .as_mut()
        .unwrap()
        .bound_object_ref
        .as_mut()
        .unwrap()
        .uid = Some("00000000-0000-0000-0000-000000000000".into());
    assert_eq!(
        api_code(
            &sas.create_token_request("puller", &PostParams::default(), &wrong)
                .await
                .unwrap_err()
        ),
        409
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_follows_changes_across_dropped_watches_and_410() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    secrets
        .create(&pp, &secret("before", &[("w", "1")]))
        .await
        .unwrap();

    let (reader, writer) = reflector::store::<Secret>();
    let stream = reflector::reflector(
        writer,
        watcher(secrets.clone(), watcher::Config::default().labels("w=1")),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            let _ = item;
        }
    });
    let names = |r: &reflector::Store<Secret>| {
        let mut n: Vec<String> = r.state().iter().map(|s| s.name_any()).collect();
        n.sort();
        n
    };
    let wait_for = |want: Vec<&'static str>| {
        let reader = reader.clone();
        async move {
            eventually(
                &format!("reflector to hold {want:?}"),
                Duration::from_secs(20),
                || (names(&reader) == want).then_some(()),
            )
            .await
        }
    };
    wait_for(vec!["before"]).await;
    secrets
        .create(&pp, &secret("second", &[("w", "1")]))
        .await
        .unwrap();
    secrets
        .create(&pp, &secret("ignored", &[("w", "2")]))
        .await
        .unwrap();
    wait_for(vec!["before", "second"]).await;

    // Dropped watch: the watcher reconnects from its last version.
    let watches_before = sb.api.counters().total("kubernetes", "watch secrets");
    sb.api.faults().drop_watches();
    secrets
        .create(&pp, &secret("third", &[("w", "1")]))
        .await
        .unwrap();
    wait_for(vec!["before", "second", "third"]).await;
    eventually("a new watch", Duration::from_secs(20), || {
        (sb.api.counters().total("kubernetes", "watch secrets") > watches_before).then_some(())
    })
    .await;

    // History compacted while the watch is down: 410 Gone, then a relist.
    let lists_before = sb.api.counters().total("kubernetes", "list secrets");
    sb.api.faults().add_error(ErrorRule {
        verb: Some("watch".into()),
        resource: Some("secrets".into()),
        code: 500,
        rate: 1.0,
        count: None,
        retry_after_seconds: None,
        message: None,
    });
    sb.api.faults().drop_watches();
    // The old watch is gone once the watcher's reconnection was refused.
    eventually("a refused reconnection", Duration::from_secs(20), || {
        (sb.api.counters().get("kubernetes", "watch secrets", "500") > 0).then_some(())
    })
    .await;
    secrets
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    sb.api.store().compact();
    sb.api.faults().clear();
    secrets
        .patch(
            "ignored",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"w": "1"}}})),
        )
        .await
        .unwrap();
    wait_for(vec!["ignored", "second", "third"]).await;
    eventually("a relist after 410", Duration::from_secs(20), || {
        (sb.api.counters().total("kubernetes", "list secrets") > lists_before).then_some(())
    })
    .await;

    // A label change out of the selector is seen as a deletion.
    secrets
        .patch(
            "third",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"w": "0"}}})),
        )
        .await
        .unwrap();
    wait_for(vec!["ignored", "second"]).await;
    task.abort();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for name in ["s1", "s2"] {
        secrets
            .create(&PostParams::default(), &secret(name, &[]))
            .await
            .unwrap();
    }
    // sendInitialEvents=true: the current objects, then a bookmark marking their end.
    let (reader, writer) = reflector::store::<Secret>();
    let stream = reflector::reflector(
        writer,
        watcher(
            secrets.clone(),
            watcher::Config::default().streaming_lists(),
        ),
    )
    .applied_objects()
    .boxed();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 2);
    secrets
        .create(&PostParams::default(), &secret("s3", &[]))
        .await
        .unwrap();
    eventually("the third secret", Duration::from_secs(20), || {
        (reader.state().len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        sb.api.counters().total("kubernetes", "list secrets"),
        0,
        "no list call: {}",
        sb.api.counters().render()
    );
    task.abort();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_bookmarks_timeouts_and_gone() {
    let config = irsa_sandbox::apiserver::ApiServerConfig {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let sb = Sandbox::start_with(config).await;
    let client = sb.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let list = leases.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let wp = kube::api::WatchParams::default().timeout(2);
    let mut stream = leases.watch(&wp, &rv).await.unwrap().boxed();
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
    )
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The stream ends by itself after timeoutSeconds.
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.next()).await {
        seen.push(match ev.unwrap() {
            kube::api::WatchEvent::Added(l) => format!("ADDED {}", l.name_any()),
            kube::api::WatchEvent::Modified(_) => "MODIFIED".into(),
            kube::api::WatchEvent::Deleted(_) => "DELETED".into(),
            kube::api::WatchEvent::Bookmark(_) => "BOOKMARK".into(),
            kube::api::WatchEvent::Error(e) => format!("ERROR {}", e.code),
        });
    }
    assert!(
        tokio::time::Instant::now() < deadline,
        "the watch ended on its timeout"
    );
    assert_eq!(seen[0], "ADDED leader");
    assert!(seen.iter().any(|s| s == "BOOKMARK"), "{seen:?}");

    sb.api.store().compact();
    let mut stream = leases
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410, got {other:?}"),
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults() {
    let sb = Sandbox::start().await;
    let client = sb.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    sb.api.faults().add_error(ErrorRule {
        verb: Some("list".into()),
        resource: Some("secrets".into()),
        code: 500,
        rate: 1.0,
        count: Some(1),
        retry_after_seconds: None,
        message: None,
    });
    assert_eq!(
        api_code(&secrets.list(&ListParams::default()).await.unwrap_err()),
        500
    );
    secrets.list(&ListParams::default()).await.unwrap();

    // kube-rs retries a 429 by itself.
    sb.api.faults().add_error(ErrorRule {
        verb: Some("get".into()),
        resource: Some("secrets".into()),
        code: 429,
        rate: 1.0,
        count: Some(1),
        retry_after_seconds: Some(1),
        message: None,
    });
    assert_eq!(api_code(&secrets.get("x").await.unwrap_err()), 404);
    assert_eq!(sb.api.counters().get("kubernetes", "get secrets", "429"), 1);

    // Through the admin endpoint: 429 with Retry-After (seen without kube-rs's retries).
    let mut config = sb.config().await;
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let set = http::Request::put("/sandbox/faults")
        .body(serde_json::to_vec(&json!({"errors": [{"verb": "get", "code": 429, "retrySecondsAfter": 1, "retryAfterSeconds": 7}]})).unwrap())
        .unwrap();
    let _: serde_json::Value = client.request(set).await.unwrap();
    let resp = client
        .send(
            http::Request::get("/api/v1/namespaces/default/secrets/x")
                .body(Vec::new().into())
                .unwrap(),
        )
        .await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let _: serde_json::Value = client
        .request(
            http::Request::delete("/sandbox/faults")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(api_code(&secrets.get("x").await.unwrap_err()), 404);

    // Dropping watches through the admin endpoint.
    let _: serde_json::Value = client
        .request(
            http::Request::post("/sandbox/faults/drop-watches")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();

    // Dry runs are refused, never written.
    let dry = secrets
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &secret("dry", &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&dry), 400);
    assert_eq!(secrets.get_opt("dry").await.unwrap(), None);

    // Latency.
    sb.api.faults().set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    secrets.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    sb.api.faults().clear();

    // Unauthenticated requests are refused; OIDC discovery is public.
    let metrics = client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert!(metrics.contains("service=\"kubernetes\",action=\"list secrets\",outcome=\"500\""));
    sb.stop().await;
}
