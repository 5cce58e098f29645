//! The controller end to end against the sandbox for Argo CD Image Updater's
//! `secret:<namespace>/<name>#<field>` credentials: `spec.usernamePasswordKey` writes
//! `username:password` next to `.dockerconfigjson`, a tenant's edit of that field is written
//! back, and a spec refusing the key names it. (Dropping the key from the spec does not yet
//! remove the field from Secrets irsa created: see the notes of branch `iu`.)

use irsa_lab::harness::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

const KEY: &str = "creds";

fn selector() -> Value {
    json!({"selector": {"matchLabels": {"pull": "ecr"}}})
}

fn field(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8(bytes.0.clone()).expect("utf-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_password_key_writes_the_field_and_restores_a_tenants_edit() {
    let env = Env::start().await;
    for ns in ["iu-a", "iu-b"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let host = env.lab.ecr_host();
    let _controller = env.controller().await;
    let mut spec = cps_spec(&env, selector());
    spec["usernamePasswordKey"] = json!(KEY);
    env.apply_cps("ecr", spec).await;
    env.wait_ready("ecr", "2/2").await;

    for ns in ["iu-a", "iu-b"] {
        let secret = env.wait_secret(ns, "regcred").await;
        let auth = docker_auth(&secret, &host);
        assert!(
            auth.starts_with("AWS:") && auth.len() > 10,
            "{ns}: an ECR credential"
        );
        assert_eq!(
            field(&secret, KEY).as_deref(),
            Some(auth.as_str()),
            "{ns}: the field"
        );
        assert_eq!(
            secret.data.as_ref().unwrap().len(),
            2,
            "{ns}: two data keys"
        );
    }

    // A tenant edits the field in its own copy (the content hash no longer irsa's).
    let secrets_a: Api<Secret> = Api::namespaced(env.lab.client.clone(), "iu-a");
    let mut edited = secrets_a.get("regcred").await.unwrap();
    let good = docker_auth(&edited, &host);
    edited
        .data
        .as_mut()
        .unwrap()
        .insert(KEY.into(), ByteString(b"AWS:forged-by-a-tenant".to_vec()));
    edited
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("irsa.dev/content-hash".into(), "edited".into());
    edited.metadata.managed_fields = None;
    secrets_a
        .replace("regcred", &PostParams::default(), &edited)
        .await
        .unwrap();
    eventually("the edited field to be written back", || async {
        let s = env.secret("iu-a", "regcred").await?;
        (field(&s, KEY)? == good).then_some(())
    })
    .await;
    let b = env.wait_secret("iu-b", "regcred").await;
    assert_eq!(
        field(&b, KEY).as_deref(),
        Some(docker_auth(&b, &host).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_password_key_with_two_registries_is_refused_naming_the_field() {
    let env = Env::start().await;
    env.lab.namespace("iu-c", &[("pull", "ecr")]).await.unwrap();
    let _controller = env.controller().await;
    let mut spec = cps_spec(&env, selector());
    spec["usernamePasswordKey"] = json!(KEY);
    spec["registries"]
        .as_array_mut()
        .unwrap()
        .push(json!({"host": "public.ecr.aws"}));
    env.apply_cps("ecr", spec).await;
    let message = eventually("the spec refused", || async {
        let cps = env.cps("ecr").await;
        cps.status?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")
            .map(|c| c.message.clone())
    })
    .await;
    assert!(
        message.contains("spec.usernamePasswordKey: allowed with one registry only"),
        "{message}"
    );
    assert!(env.secret("iu-c", "regcred").await.is_none());
}
