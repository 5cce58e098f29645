//! The controller end to end against the sandbox, over a resource's life: a user's secret in
//! the way, tenant isolation of PullSecrets, refresh driven by the token lifetime, zero writes
//! in steady state, and cleanup by deletion policy.

use std::collections::BTreeMap;
use std::time::Duration;

use irsa_lab::harness::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

const MANAGED: &str = "app.kubernetes.io/managed-by=irsa";

/// A user's own `regcred` (no irsa label) that irsa must never touch.
fn user_secret(ns: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("regcred".into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([("owner".into(), "me".into())])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".into(),
            ByteString(b"my own data".to_vec()),
        )])),
        ..Secret::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_a_users_secret_alone_reports_it_and_takes_over_once_it_is_gone() {
    let env = Env::start().await;
    for ns in ["mine", "theirs"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let secrets: Api<Secret> = Api::namespaced(env.lab.client.clone(), "theirs");
    secrets
        .create(&PostParams::default(), &user_secret("theirs"))
        .await
        .unwrap();
    let controller = env
        .controller_with(ControllerOptions {
            // Conflicting secrets are looked at again only once a resync has passed.
            resync: Duration::from_millis(200),
            ..env.lab.controller_options()
        })
        .await;
    env.apply_cps(
        "ecr",
        cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}})),
    )
    .await;

    env.wait_secret("mine", "regcred").await;
    let cps = eventually("conflict counted in the status", || async {
        let cps = env.cps("ecr").await;
        let targets = cps.status.as_ref()?.targets.as_ref()?;
        (targets.conflicted == 1 && targets.ready == 1).then_some(cps)
    })
    .await;
    let status = cps.status.unwrap();
    let problem = status
        .problems
        .iter()
        .find(|p| p.namespace == "theirs")
        .expect("a problem entry for the conflicting namespace");
    assert_eq!(problem.reason, "Conflict");
    assert!(problem.message.contains("theirs/regcred"), "{problem:?}");
    env.wait_condition("ecr", "Degraded", "True", "Conflict")
        .await;
    let events = eventually("a SecretConflict Event", || async {
        let events = env.events_about("ecr").await;
        events
            .iter()
            .any(|(reason, note)| reason == "SecretConflict" && note.contains("theirs/regcred"))
            .then_some(events)
    })
    .await;
    assert_eq!(
        events.iter().filter(|(r, _)| r == "SecretConflict").count(),
        1,
        "{events:?}"
    );

    // Several resyncs: the user's secret is never written, the Event is not repeated.
    let before = secrets.get("regcred").await.unwrap();
    for _ in 0..5 {
        resync_and_wait(&controller).await;
    }
    let after = secrets.get("regcred").await.unwrap();
    assert_eq!(after.data, before.data, "user's data untouched");
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(after.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "not even a no-op write to the user's secret"
    );
    let events = env.events_about("ecr").await;
    assert_eq!(
        events.iter().filter(|(r, _)| r == "SecretConflict").count(),
        1,
        "a known conflict is not reported again: {events:?}"
    );

    // The user deletes it: irsa's secret takes its place at the next resync.
    secrets
        .delete("regcred", &DeleteParams::default())
        .await
        .unwrap();
    let ours = eventually("irsa's secret in place of the user's", || async {
        controller.handle.resync_all();
        let s = env.secret("theirs", "regcred").await?;
        let managed = s.metadata.labels.as_ref().is_some_and(|l| {
            l.get("app.kubernetes.io/managed-by").map(String::as_str) == Some("irsa")
        });
        managed.then_some(s)
    })
    .await;
    assert_eq!(
        docker_auth(&ours, &env.lab.ecr_host()),
        env.auth_in("mine").await,
        "the same credential as everywhere else"
    );
    env.wait_ready("ecr", "2/2").await;
    env.wait_condition("ecr", "Degraded", "False", "AsExpected")
        .await;
    let status = env.cps("ecr").await.status.unwrap();
    assert_eq!(status.targets.unwrap().conflicted, 0);
    assert!(status.problems.is_empty(), "{:?}", status.problems);
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_secret_uses_only_its_own_namespace() {
    let env = Env::start().await;
    let role = env
        .lab
        .register_role_named("tenant-a-puller", "tenant-a", "puller")
        .unwrap();
    env.lab.identity("tenant-a", "puller", &role).await.unwrap();
    env.lab.namespace("tenant-b", &[]).await.unwrap();
    let controller = env.controller().await;

    // Borrowing the cluster's identity from a tenant namespace is refused.
    let host = env.lab.ecr_host();
    env.apply_ps(
        "tenant-a",
        "borrowed",
        json!({
            "registries": [{"host": host}],
            "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
            "secretName": "borrowed",
        }),
    )
    .await;
    let message = eventually("borrowed refused as Invalid", || async {
        let (status, reason, message) = env.ps_condition("tenant-a", "borrowed", "Ready").await?;
        (status == "False" && reason == "Invalid").then_some(message)
    })
    .await;
    assert!(message.contains("spec.identity"), "{message}");
    assert!(message.contains(IDENTITY_NAMESPACE), "{message}");

    // Its own service account works, and writes only in its own namespace.
    env.apply_ps(
        "tenant-a",
        "own",
        json!({
            "registries": [{"host": host}],
            "identity": {"serviceAccount": {"name": "puller"}},
            "secretName": "regcred",
        }),
    )
    .await;
    let secret = env.wait_secret("tenant-a", "regcred").await;
    assert!(docker_auth(&secret, &host).starts_with("AWS:"));
    eventually("own Ready", || async {
        let (status, _, _) = env.ps_condition("tenant-a", "own", "Ready").await?;
        (status == "True").then_some(())
    })
    .await;

    let all: Api<Secret> = Api::all(env.lab.client.clone());
    let written: Vec<(String, String)> = all
        .list(&ListParams::default().labels(MANAGED))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.metadata.namespace.unwrap(), s.metadata.name.unwrap()))
        .collect();
    assert_eq!(
        written,
        vec![("tenant-a".to_owned(), "regcred".to_owned())],
        "nothing written for the refused PullSecret nor outside tenant-a"
    );
    let borrowed: Vec<_> = all
        .list(&ListParams::default().fields("metadata.name=borrowed"))
        .await
        .unwrap()
        .items;
    assert!(borrowed.is_empty(), "no secret for the refused PullSecret");
    let (status, reason, _) = env
        .ps_condition("tenant-a", "borrowed", "Ready")
        .await
        .unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Invalid"));
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_at_the_tokens_refresh_point_and_costs_nothing_in_steady_state() {
    let env = Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await;
    let namespaces = names("app", 5);
    for ns in &namespaces {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let controller = env.controller().await;
    env.apply_cps(
        "ecr",
        cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}})),
    )
    .await;
    let first = env.wait_ready("ecr", "5/5").await.status.unwrap();
    let mut old = Vec::new();
    for ns in &namespaces {
        old.push(env.auth_in(ns).await);
    }
    assert!(old.iter().all(|a| a == &old[0]), "one credential");
    assert_eq!(controller.handle.metrics().exchanges(), 1);

    // Steady state: resyncs cost zero writes, from the controller's and the server's view.
    // The SecretsWritten Event and status written after the fan-out settle first.
    let settled = eventually("writes settle", || async {
        let w = (controller.handle.metrics().writes(), env.api_writes());
        resync_and_wait(&controller).await;
        (w == (controller.handle.metrics().writes(), env.api_writes())).then_some(w)
    })
    .await;
    assert!(
        settled.0 >= 5 && settled.1 >= 5,
        "the fan-out's writes were counted: {settled:?}"
    );
    for _ in 0..5 {
        resync_and_wait(&controller).await;
    }
    assert_eq!(
        (controller.handle.metrics().writes(), env.api_writes()),
        settled,
        "resyncs in steady state write nothing"
    );
    assert_eq!(controller.handle.metrics().exchanges(), 1, "nor exchange");

    // Past the refresh point (0.5 of 3600 s, ± 10 % jitter) but before expiry.
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    let mut new = Vec::new();
    for ns in &namespaces {
        let auth = eventually(&format!("new password in {ns}"), || async {
            let a = env.auth_in(ns).await;
            (a != old[0]).then_some(a)
        })
        .await;
        new.push(auth);
    }
    assert!(new.iter().all(|a| a == &new[0]), "one new credential");
    assert_eq!(controller.handle.metrics().exchanges(), 2, "one exchange");
    assert_eq!(env.ecr_tokens(), 2, "one ECR token per refresh");
    let second = eventually("status moved", || async {
        let s = env.cps("ecr").await.status?;
        (s.last_refresh_time != first.last_refresh_time).then_some(s)
    })
    .await;
    let secs = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().expect("time").0.as_second()
    };
    assert!(secs(&second.last_refresh_time) >= secs(&first.last_refresh_time) + 2000);
    assert!(secs(&second.next_refresh_time) > secs(&first.next_refresh_time));
    assert!(secs(&second.expires_at) >= secs(&first.expires_at) + 2000);
    assert!(
        secs(&second.next_refresh_time) < secs(&second.expires_at),
        "refresh before expiry"
    );
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_cleans_up_and_retain_keeps_the_secrets() {
    let env = Env::start().await;
    for ns in ["clean-a", "clean-b"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    // A user's own entry on the default service account must survive irsa's edits.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(env.lab.client.clone(), "clean-a");
    eventually("default service account", || async {
        sas.get_opt("default").await.unwrap().map(|_| ())
    })
    .await;
    sas.patch(
        "default",
        &PatchParams::default(),
        &Patch::Merge(json!({"imagePullSecrets": [{"name": "user-cred"}]})),
    )
    .await
    .unwrap();
    let controller = env.controller().await;
    let mut spec = cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}}));
    spec["serviceAccounts"] = json!(["default"]);
    spec["deletionPolicy"] = json!("Delete");
    env.apply_cps("ecr", spec).await;

    let pull_secrets = |ns: &'static str| {
        let env = &env;
        async move {
            env.service_account(ns, "default")
                .await
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        }
    };
    for ns in ["clean-a", "clean-b"] {
        env.wait_secret(ns, "regcred").await;
    }
    eventually("imagePullSecrets entries added", || async {
        let a = pull_secrets("clean-a").await;
        let b = pull_secrets("clean-b").await;
        (a == ["user-cred", "regcred"] && b == ["regcred"]).then_some(())
    })
    .await;

    let counters = env.lab.stack.api.counters();
    assert!(counters.total("kubernetes", "patch serviceaccounts") >= 2);
    assert_eq!(
        counters.total("kubernetes", "update serviceaccounts"),
        0,
        "service accounts are patched, never replaced"
    );

    env.delete_cps("ecr").await;
    for ns in ["clean-a", "clean-b"] {
        assert!(env.secret(ns, "regcred").await.is_none(), "{ns}: deleted");
    }
    assert_eq!(
        pull_secrets("clean-a").await,
        ["user-cred"],
        "user's entry kept"
    );
    assert!(pull_secrets("clean-b").await.is_empty());

    // Retain: the resource goes (finalizer removed), its secrets stay.
    let mut spec = cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}}));
    spec["secretName"] = json!("kept");
    spec["deletionPolicy"] = json!("Retain");
    env.apply_cps("keep", spec).await;
    let mut written = Vec::new();
    for ns in ["clean-a", "clean-b"] {
        written.push(env.wait_secret(ns, "kept").await);
    }
    eventually("finalizer on keep", || async {
        let cps = env.cps("keep").await;
        cps.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "irsa.dev/cleanup"))
            .then_some(())
    })
    .await;
    env.delete_cps("keep").await;
    for (ns, before) in ["clean-a", "clean-b"].into_iter().zip(written) {
        let after = env.secret(ns, "kept").await.expect("retained");
        assert_eq!(after.data, before.data, "{ns}: retained as written");
    }
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_resources_credential_is_forgotten() {
    let env = Env::start().await;
    env.lab
        .namespace("forget-a", &[("pull", "ecr")])
        .await
        .unwrap();
    let controller = env.controller().await;
    let spec = cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}}));
    env.apply_cps("ecr", spec.clone()).await;
    env.wait_ready("ecr", "1/1").await;
    assert_eq!(controller.handle.metrics().exchanges(), 1);
    env.delete_cps("ecr").await;
    env.wait_gone("forget-a", "regcred").await;
    // The same identity and registries again: the deleted resource's credential slot was freed,
    // so the new resource exchanges afresh instead of finding it held.
    env.apply_cps("ecr", spec).await;
    env.wait_ready("ecr", "1/1").await;
    assert_eq!(
        controller.handle.metrics().exchanges(),
        2,
        "a credential slot outlived its resource"
    );
}

/// Resources deleted without their finalizer running (it failed, and a person removed it by
/// hand) leave nothing behind in the controller: no reported state, no credential slot, no
/// metric series, however many come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_deleted_without_the_finalizer_leave_no_state_behind() {
    const N: usize = 5;
    let env = Env::start().await;
    env.lab
        .namespace("churn-a", &[("churn", "yes")])
        .await
        .unwrap();
    let controller = env.controller().await;
    let names = names("churn", N);
    for name in &names {
        let mut spec = cps_spec(&env, json!({"selector": {"matchLabels": {"churn": "yes"}}}));
        spec["secretName"] = json!(name);
        env.apply_cps(name, spec).await;
    }
    for name in &names {
        env.wait_ready(name, "1/1").await;
    }
    let series = |name: &str| format!("name=\"{name}\"");
    let rendered = controller.handle.metrics().render(0);
    for name in &names {
        assert!(
            rendered.contains(&series(name)),
            "{name}'s series:\n{rendered}"
        );
    }
    assert_eq!(controller.handle.tracked_resources(), N);

    // The finalizer's cleanup cannot delete the secrets, so it never finishes; the finalizer
    // is removed by hand and the resources are gone.
    env.lab.stack.api.faults().add_error(ErrorRule {
        verb: Some("delete".into()),
        resource: Some("secrets".into()),
        code: 500,
        rate: 1.0,
        count: None,
        retry_after_seconds: None,
        message: None,
    });
    for name in &names {
        env.cps_api()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let errors = || {
        metric(
            &controller.handle.metrics().render(0),
            "irsa_reconcile_errors_total{kind=\"ClusterPullSecret\"}",
        )
    };
    let before = errors();
    eventually("the cleanups failed", || async {
        (errors() >= before + N as u64).then_some(())
    })
    .await;
    for name in &names {
        env.cps_api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
    }
    for name in &names {
        eventually(&format!("{name} gone"), || async {
            env.cps_api()
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    env.lab.stack.api.faults().clear();
    eventually("nothing kept for the deleted resources", || async {
        let rendered = controller.handle.metrics().render(0);
        (controller.handle.tracked_resources() == 0
            && names.iter().all(|n| !rendered.contains(&series(n))))
        .then_some(())
    })
    .await;
    controller.stop().await.unwrap();
}
