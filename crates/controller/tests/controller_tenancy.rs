//! The controller end to end against tenants who may edit what sits in their namespaces: a
//! credential forged in one copy of the pull secret never spreads, a PullSecret never reaches
//! into another namespace, an identity change never reuses the old identity's credential,
//! irsa never deletes a secret it did not check, never removes `imagePullSecrets` entries it did
//! not add, and never counts an error as success because its message mentions a namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use irsa_lab::harness::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

fn selector() -> Value {
    json!({"selector": {"matchLabels": {"pull": "ecr"}}})
}

const FORGED: &str = "AWS:forged-by-a-tenant";

/// A `.dockerconfigjson` for `host` with `username:password` = `auth`.
fn docker_config(host: &str, auth: &str) -> ByteString {
    let (user, password) = auth.split_once(':').unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(auth);
    ByteString(
        serde_json::to_vec(&json!({"auths": {host: {
            "username": user, "password": password, "auth": b64
        }}}))
        .unwrap(),
    )
}

/// The same secret with the forged password and a far expiry; everything else as irsa wrote it.
fn forge(mut secret: Secret, host: &str) -> Secret {
    secret.data = Some(BTreeMap::from([(
        ".dockerconfigjson".to_owned(),
        docker_config(host, FORGED),
    )]));
    secret
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("irsa.dev/expires-at".into(), "2099-01-01T00:00:00Z".into());
    secret.metadata.managed_fields = None;
    secret
}

/// PullSecret reconciliations so far.
fn namespaced_reconciles(c: &RunningController) -> u64 {
    reconciles(c, "PullSecret")
}

/// Triggers a resync and waits until a PullSecret reconciliation finished after it.
async fn resync_pull_secrets(c: &RunningController) {
    let seen = namespaced_reconciles(c);
    c.handle.resync_all();
    eventually("a PullSecret reconciliation after resync", || async {
        (namespaced_reconciles(c) > seen).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_secret_never_reaches_another_namespace_across_restarts() {
    let env = Env::start().await;
    for ns in ["tenant-a", "tenant-b"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let host = env.lab.ecr_host();
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    env.wait_ready("ecr", "2/2").await;
    let good = env.auth_in("tenant-b").await;
    controller.stop().await.unwrap();

    // Tenant a may edit its own copy: a forged password and expiry, irsa's labels and
    // annotations (content hash, issue time, any seal) kept as they were.
    let secrets_a: Api<Secret> = Api::namespaced(env.lab.client.clone(), "tenant-a");
    let forged = forge(secrets_a.get("regcred").await.unwrap(), &host);
    secrets_a
        .replace("regcred", &PostParams::default(), &forged)
        .await
        .unwrap();

    // Which copy a restarted controller looks at first is up to it: restart several times.
    for round in 0..6 {
        let controller = env.controller().await;
        resync_and_wait(&controller).await;
        resync_and_wait(&controller).await;
        let b = env.auth_in("tenant-b").await;
        assert_ne!(
            b, FORGED,
            "round {round}: the forged password reached tenant-b"
        );
        assert_eq!(b, good, "round {round}: tenant-b keeps irsa's credential");
        assert_eq!(
            controller.handle.metrics().exchanges(),
            0,
            "round {round}: tenant-b's genuine copy is still adopted"
        );
        controller.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_secret_neither_adopts_nor_deletes_a_forged_secret_in_another_namespace() {
    let env = Env::start().await;
    let role = env
        .lab
        .register_role_named("tenant-a-puller", "tenant-a", "puller")
        .unwrap();
    env.lab.identity("tenant-a", "puller", &role).await.unwrap();
    env.lab.namespace("tenant-b", &[]).await.unwrap();
    let host = env.lab.ecr_host();
    let controller = env.controller().await;
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
    let good = env.auth_in("tenant-a").await;
    controller.stop().await.unwrap();

    // Tenant b labels a secret of its own as if irsa had written it for tenant-a's PullSecret.
    let mut forged = forge(env.wait_secret("tenant-a", "regcred").await, &host);
    forged.metadata = ObjectMeta {
        name: Some("regcred".into()),
        namespace: Some("tenant-b".into()),
        labels: forged.metadata.labels.clone(),
        annotations: forged.metadata.annotations.clone(),
        ..ObjectMeta::default()
    };
    let secrets_b: Api<Secret> = Api::namespaced(env.lab.client.clone(), "tenant-b");
    let planted = secrets_b
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();

    for round in 0..4 {
        let controller = env.controller().await;
        resync_pull_secrets(&controller).await;
        resync_pull_secrets(&controller).await;
        assert_eq!(
            env.auth_in("tenant-a").await,
            good,
            "round {round}: tenant-a's secret holds irsa's credential"
        );
        let still = env
            .secret("tenant-b", "regcred")
            .await
            .unwrap_or_else(|| panic!("round {round}: tenant-b's secret was deleted"));
        assert_eq!(still.metadata.uid, planted.metadata.uid, "round {round}");
        assert_eq!(still.data, planted.data, "round {round}: untouched");
        controller.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_change_makes_a_fresh_exchange() {
    let env = Env::start().await;
    env.lab.namespace("id-a", &[("pull", "ecr")]).await.unwrap();
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    env.wait_ready("ecr", "1/1").await;
    let first = env.auth_in("id-a").await;
    assert_eq!(controller.handle.metrics().exchanges(), 1);

    // The service account now names another role: its credential is not the old one's.
    let other = env
        .lab
        .register_role_named(
            "irsa-puller-2",
            IDENTITY_NAMESPACE,
            IDENTITY_SERVICE_ACCOUNT,
        )
        .unwrap();
    env.lab
        .identity(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, &other)
        .await
        .unwrap();
    let second = eventually("a new credential for the new role", || async {
        let a = env.auth_in("id-a").await;
        (a != first).then_some(a)
    })
    .await;
    assert!(second.starts_with("AWS:"), "{second}");
    assert_eq!(
        controller.handle.metrics().exchanges(),
        2,
        "one fresh exchange"
    );
    assert_eq!(env.ecr_tokens(), 2);
    controller.stop().await.unwrap();

    // Back to the first role, across a restart: again a fresh exchange, not the secret's.
    let first_role = env.lab.role_arn();
    env.lab
        .identity(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, &first_role)
        .await
        .unwrap();
    let controller = env.controller().await;
    eventually("a fresh credential after the restart", || async {
        let a = env.auth_in("id-a").await;
        (a != second && a != first).then_some(())
    })
    .await;
    assert_eq!(controller.handle.metrics().exchanges(), 1);
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_replaced_behind_a_stalled_watch_survives_deselection() {
    let env = Env::start().await;
    env.lab
        .namespace("stall", &[("pull", "ecr")])
        .await
        .unwrap();
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    env.wait_ready("ecr", "1/1").await;
    env.wait_secret("stall", "regcred").await;

    // irsa stops hearing about secrets; meanwhile a user replaces irsa's with their own.
    let faults = env.lab.stack.api.faults();
    faults.hold_watches("secrets");
    let secrets: Api<Secret> = Api::namespaced(env.lab.client.clone(), "stall");
    secrets
        .delete("regcred", &DeleteParams::default())
        .await
        .unwrap();
    let users = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("regcred".into()),
                    namespace: Some("stall".into()),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(
                    "token".into(),
                    ByteString(b"the user's own".to_vec()),
                )])),
                ..Secret::default()
            },
        )
        .await
        .unwrap();

    // The namespace is deselected: irsa would delete "its" secret.
    env.lab.namespace("stall", &[]).await.unwrap();
    eventually("the namespace deselected in the status", || async {
        let targets = env.cps("ecr").await.status?.targets?;
        (targets.desired == 0).then_some(())
    })
    .await;
    resync_and_wait(&controller).await;
    let check = |when: &'static str| {
        let env = &env;
        let users = &users;
        async move {
            let now = env
                .secret("stall", "regcred")
                .await
                .unwrap_or_else(|| panic!("{when}: the user's secret was deleted"));
            assert_eq!(now.metadata.uid, users.metadata.uid, "{when}");
            assert_eq!(now.data, users.data, "{when}: untouched");
            assert_eq!(now.metadata.labels, users.metadata.labels, "{when}");
        }
    };
    check("while the watch is held").await;
    faults.release_watches("secrets");
    resync_and_wait(&controller).await;
    resync_and_wait(&controller).await;
    check("after the watch caught up").await;
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pull_secret_entries_irsa_added_are_removed() {
    let env = Env::start().await;
    for ns in ["sa-a", "sa-b"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let sas = |ns: &str| Api::<ServiceAccount>::namespaced(env.lab.client.clone(), ns);
    eventually("default service accounts", || async {
        for ns in ["sa-a", "sa-b"] {
            sas(ns).get_opt("default").await.unwrap()?;
        }
        Some(())
    })
    .await;
    // By hand, before irsa: "regcred" on a service account irsa is not told to touch, and on
    // one it is told to add it to.
    sas("sa-a")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "builder", "namespace": "sa-a"},
                "imagePullSecrets": [{"name": "regcred"}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    sas("sa-a")
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"imagePullSecrets": [{"name": "regcred"}]})),
        )
        .await
        .unwrap();
    let pull_secrets = |ns: &'static str, sa: &'static str| {
        let env = &env;
        async move {
            env.service_account(ns, sa)
                .await
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        }
    };

    let controller = env.controller().await;
    let mut spec = cps_spec(&env, selector());
    spec["serviceAccounts"] = json!(["default"]);
    spec["deletionPolicy"] = json!("Delete");
    env.apply_cps("ecr", spec).await;
    env.wait_ready("ecr", "2/2").await;
    eventually("irsa's entry in sa-b", || async {
        (pull_secrets("sa-b", "default").await == ["regcred"]).then_some(())
    })
    .await;
    assert_eq!(
        pull_secrets("sa-a", "default").await,
        ["regcred"],
        "not added twice"
    );

    // Deselection removes irsa's secret from sa-a, and none of the hand-made entries.
    env.lab.namespace("sa-a", &[]).await.unwrap();
    env.wait_gone("sa-a", "regcred").await;
    env.wait_ready("ecr", "1/1").await;
    resync_and_wait(&controller).await;
    assert_eq!(
        pull_secrets("sa-a", "builder").await,
        ["regcred"],
        "builder"
    );
    assert_eq!(
        pull_secrets("sa-a", "default").await,
        ["regcred"],
        "default"
    );

    // Back in the selection, then the resource goes: irsa removes only what it added.
    env.lab.namespace("sa-a", &[("pull", "ecr")]).await.unwrap();
    env.wait_ready("ecr", "2/2").await;
    env.delete_cps("ecr").await;
    env.wait_gone("sa-b", "regcred").await;
    assert!(
        pull_secrets("sa-b", "default").await.is_empty(),
        "irsa's own entry removed"
    );
    assert_eq!(
        pull_secrets("sa-a", "builder").await,
        ["regcred"],
        "builder"
    );
    assert_eq!(
        pull_secrets("sa-a", "default").await,
        ["regcred"],
        "default"
    );
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_only_mentions_a_namespace_is_a_failed_write() {
    let env = Env::start().await;
    let faults = env.lab.stack.api.faults();
    // A 403 from an admission webhook and a 404 for something else: both mention a namespace
    // and "not found", neither says the namespace is gone.
    let rule = |code: u16, message: &str| ErrorRule {
        verb: Some("create".into()),
        resource: Some("secrets".into()),
        code,
        rate: 1.0,
        count: None,
        retry_after_seconds: None,
        message: Some(message.into()),
    };
    faults.add_error(rule(
        403,
        "admission webhook \"policy.example.com\" denied the request: namespace \"deny-a\" not found in the registry allow list",
    ));
    env.lab
        .namespace("deny-a", &[("pull", "ecr")])
        .await
        .unwrap();
    let controller = env.controller().await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    let failed = |want: i32| {
        let env = &env;
        async move {
            eventually(&format!("{want} failed target(s)"), || async {
                let status = env.cps("ecr").await.status?;
                let t = status.targets?;
                (t.failed == want && t.ready == t.desired - want).then_some(status.problems)
            })
            .await
        }
    };
    let problems = failed(1).await;
    assert!(
        problems
            .iter()
            .any(|p| p.namespace == "deny-a" && p.reason == "WriteFailed"),
        "{problems:?}"
    );
    assert!(env.secret("deny-a", "regcred").await.is_none());

    faults.clear();
    faults.add_error(rule(
        404,
        "the server could not find the requested resource: namespace \"deny-b\" has no registry quota (not found)",
    ));
    env.lab
        .namespace("deny-b", &[("pull", "ecr")])
        .await
        .unwrap();
    failed(2).await;
    faults.clear();
    controller.handle.resync_all();
    env.wait_ready("ecr", "2/2").await;
    controller.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poisoned_namespace_never_holds_back_the_others() {
    let env = Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await;
    // A tenant's Opaque secret under the target name, labelled as the ClusterPullSecret's: the
    // metadata-only watch takes it for irsa's, and the API server refuses every update of it
    // (422: a Secret's type is immutable). Its namespace sorts first, so that it leads every
    // round of writes.
    let poisoned = "aaa-poisoned";
    env.lab
        .namespace(poisoned, &[("pull", "ecr")])
        .await
        .unwrap();
    let tenants = Api::<Secret>::namespaced(env.lab.client.clone(), poisoned);
    let forged = Secret {
        metadata: ObjectMeta {
            name: Some("regcred".into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".to_owned(), "irsa".to_owned()),
                (
                    "irsa.dev/owner-kind".to_owned(),
                    "ClusterPullSecret".to_owned(),
                ),
                ("irsa.dev/owner-name".to_owned(), "ecr".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "note".to_owned(),
            ByteString(b"the tenant's own".to_vec()),
        )])),
        ..Secret::default()
    };
    tenants
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    let others = names("psn", 6);
    for ns in &others {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    // Two writes per round (one at a time, 5 per second): the fan-out takes several rounds.
    let controller = env
        .controller_with(ControllerOptions {
            write_concurrency: 1,
            qps: 5.0,
            burst: 5,
            ..env.lab.controller_options()
        })
        .await;
    env.apply_cps("ecr", cps_spec(&env, selector())).await;
    let named = |status: &irsa_k8s::PullSecretStatus| {
        status
            .problems
            .iter()
            .find(|p| p.namespace == poisoned)
            .map(|p| (p.reason.clone(), p.message.clone()))
    };
    let (reason, message) = eventually("the poisoned namespace named in the status", || async {
        named(&env.cps("ecr").await.status?)
    })
    .await;
    assert_eq!(reason, "Conflict", "{message}");
    assert!(message.contains("aaa-poisoned/regcred"), "{message}");
    let mut before = BTreeMap::new();
    for ns in &others {
        before.insert(ns.clone(), env.auth_in(ns).await);
    }

    // Past the refresh point (half of 3600 s ± 10 %): one resync, and every other namespace
    // gets the new credential at once, not behind backoffs of the whole resource.
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    for ns in &others {
        eventually(&format!("{ns} refreshed"), || async {
            let now = docker_auth(&env.secret(ns, "regcred").await?, &env.lab.ecr_host());
            (now != before[ns]).then_some(())
        })
        .await;
    }
    let status = env.cps("ecr").await.status.unwrap();
    assert!(named(&status).is_some(), "{:?}", status.problems);
    let targets = status.targets.unwrap();
    assert_eq!((targets.desired, targets.conflicted), (7, 1), "{targets:?}");
    // The tenant's secret is untouched.
    let theirs = tenants.get("regcred").await.unwrap();
    assert_eq!(theirs.type_.as_deref(), Some("Opaque"));
    assert_eq!(theirs.data, forged.data);
    controller.stop().await.unwrap();
}
