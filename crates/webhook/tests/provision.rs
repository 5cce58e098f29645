//! `irsa webhook certs` ([`irsa_webhook::provision::ensure`]) against the sandbox API server,
//! in-process: two replicas rotating at once keep the previous CA trusted (review finding
//! M3), and a stored `tls.crt` that is not UTF-8 is waited for byte for byte (L3).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use irsa_sandbox::stack::{Stack, StackConfig};
use irsa_webhook::certs;
use irsa_webhook::provision::{CertOutcome, CertsRequest, ensure, wait_for_mount};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "irsa-system";
const SECRET: &str = "irsa-webhook-tls";
const CONFIGURATION: &str = "irsa-pod-identity-webhook";
const DAY: Duration = Duration::from_secs(86_400);

async fn start() -> (Stack, kube::Client) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = Stack::start(StackConfig::default(), api, aws)
        .await
        .expect("sandbox starts");
    let kc = kube::config::Kubeconfig::from_yaml(&stack.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let configuration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": CONFIGURATION},
        "webhooks": [{
            "name": "pod-identity.irsa.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "clientConfig": {"service": {"name": "irsa-webhook", "namespace": NS, "path": "/mutate", "port": 443}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
        }]
    }))
    .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &configuration)
        .await
        .unwrap();
    (stack, client)
}

fn request(validity: Duration, renew_before: Duration) -> CertsRequest {
    CertsRequest {
        namespace: NS.to_owned(),
        secret: SECRET.to_owned(),
        service: "irsa-webhook".to_owned(),
        webhook_configuration: CONFIGURATION.to_owned(),
        webhook_name: "pod-identity.irsa.dev".to_owned(),
        validity,
        renew_before,
    }
}

async fn stored(client: &kube::Client) -> (BTreeMap<String, ByteString>, Vec<u8>) {
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(SECRET)
        .await
        .unwrap();
    let config = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(CONFIGURATION)
        .await
        .unwrap();
    let bundle = config.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("a caBundle")
        .0;
    (secret.data.unwrap(), bundle)
}

/// Two replicas' init containers rotate at once, the second a moment after the first: every
/// request takes 150 ms, so both read the configuration and the Secret before either writes.
/// Without a precondition on the caBundle patch the second one's bundle (made from its stale
/// read) replaced the first one's, and when it then lost the Secret's race it set the bundle
/// to the stored CA alone: the previous CA, which the running replicas still serve, was gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_rotating_at_once_keep_the_previous_ca_trusted() {
    let (stack, client) = start().await;
    let now = SystemTime::now();
    let first = ensure(client.clone(), &request(DAY * 40, DAY * 30), now)
        .await
        .unwrap();
    assert_eq!(first.certificate, CertOutcome::Created);
    let (data, _) = stored(&client).await;
    let previous_ca = data["ca.crt"].0.clone();

    // Inside the 45-day window: both rotate.
    stack.api.faults().set_latency(Duration::from_millis(150));
    let renew = request(DAY * 90, DAY * 45);
    let (a, b) = tokio::join!(ensure(client.clone(), &renew, now), async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        ensure(client.clone(), &renew, now).await
    });
    stack.api.faults().set_latency(Duration::ZERO);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        matches!(a.certificate, CertOutcome::Rotated(_))
            || matches!(b.certificate, CertOutcome::Rotated(_)),
        "{a:?} {b:?}"
    );

    let (data, bundle) = stored(&client).await;
    assert!(
        certs::bundle_contains(&bundle, &data["ca.crt"].0),
        "the caBundle does not trust the stored CA"
    );
    assert!(
        certs::bundle_contains(&bundle, &previous_ca),
        "the caBundle dropped the previous CA, which running replicas still serve:\n{}",
        String::from_utf8_lossy(&bundle)
    );
    certs::check(
        &data["tls.crt"].0,
        &data["tls.key"].0,
        &data["ca.crt"].0,
        "irsa-webhook.irsa-system.svc",
        now,
        DAY * 45,
    )
    .unwrap();
    stack.shutdown().await;
}

/// Review finding L3: a stored pair whose `tls.crt` carries bytes that are not UTF-8 (outside
/// its PEM block, so it verifies and is kept) is what the mount shows, byte for byte; the wait
/// compared it with a lossy text copy and never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_certificate_that_is_not_utf8_is_found_in_the_mount() {
    let (stack, client) = start().await;
    let now = SystemTime::now();
    let pair = certs::generate_valid(
        &certs::service_names("irsa-webhook", NS),
        now - Duration::from_secs(3600),
        now + DAY * 400,
    )
    .unwrap();
    let mut crt = pair.cert_pem.clone().into_bytes();
    crt.extend_from_slice(b"\xff\xfe not text\n");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET, "namespace": NS},
        "type": "kubernetes.io/tls",
    }))
    .unwrap();
    let secret = Secret {
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(crt.clone())),
            (
                "tls.key".to_owned(),
                ByteString(pair.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_owned(),
                ByteString(pair.ca_pem.clone().into_bytes()),
            ),
        ])),
        ..secret
    };
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let report = ensure(client.clone(), &request(DAY * 730, DAY * 180), now)
        .await
        .unwrap();
    assert_eq!(report.certificate, CertOutcome::Kept);

    // The Secret volume: the stored bytes.
    let dir = std::env::temp_dir().join(format!("irsa-provision-mount-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &crt).unwrap();
    let waited = wait_for_mount(
        &dir,
        &report.cert_pem,
        Duration::from_millis(20),
        Duration::from_secs(2),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    waited.expect("the mounted tls.crt is the stored one");
    stack.shutdown().await;
}

/// A valid CA that irsa did not issue (another name), PEM.
fn foreign_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "someone else's CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.self_signed(&key).unwrap().pem()
}

async fn set_bundle(client: &kube::Client, bundle: &[u8]) {
    let api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let mut config = api.get(CONFIGURATION).await.unwrap();
    config.webhooks.as_mut().unwrap()[0].client_config.ca_bundle =
        Some(ByteString(bundle.to_vec()));
    api.replace(CONFIGURATION, &PostParams::default(), &config)
        .await
        .unwrap();
}

/// Review finding L1: the step carried any valid CA it found in the live caBundle, so a CA
/// someone else put there (by hand, or left by another tool) kept being trusted to speak for
/// the webhook, even when the step had just created irsa's own. Only CAs irsa issued are
/// carried now, and a bundle holding anything else is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_ca_in_the_live_bundle_is_dropped() {
    let (stack, client) = start().await;
    let now = SystemTime::now();
    let foreign = foreign_ca();
    set_bundle(&client, foreign.as_bytes()).await;
    // Another entry of the configuration, with a CA that looks like irsa's: not irsa's entry,
    // so neither carried from nor patched.
    let lookalike = certs::generate(&["x".to_owned()]).unwrap().ca_pem;
    let api = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let mut config = api.get(CONFIGURATION).await.unwrap();
    let mut other = config.webhooks.as_ref().unwrap()[0].clone();
    other.name = "other.example.com".to_owned();
    other.client_config.ca_bundle = Some(ByteString(lookalike.clone().into_bytes()));
    config.webhooks.as_mut().unwrap().push(other);
    api.replace(CONFIGURATION, &PostParams::default(), &config)
        .await
        .unwrap();
    let first = ensure(client.clone(), &request(DAY * 40, DAY * 30), now)
        .await
        .unwrap();
    assert_eq!(first.certificate, CertOutcome::Created);
    let (data, bundle) = stored(&client).await;
    assert!(certs::bundle_contains(&bundle, &data["ca.crt"].0));
    assert!(
        !certs::bundle_contains(&bundle, foreign.as_bytes()),
        "carried a foreign CA after creating irsa's own:\n{}",
        String::from_utf8_lossy(&bundle)
    );

    // Added next to irsa's CA, which the bundle already trusts: the kept pair's run drops it.
    let mut both = bundle.clone();
    both.extend_from_slice(foreign.as_bytes());
    set_bundle(&client, &both).await;
    let kept = ensure(client.clone(), &request(DAY * 40, DAY * 30), now)
        .await
        .unwrap();
    assert_eq!(kept.certificate, CertOutcome::Kept);
    assert_eq!(kept.webhooks_patched, 1);
    let (data, bundle) = stored(&client).await;
    assert!(certs::bundle_contains(&bundle, &data["ca.crt"].0));
    assert!(
        !certs::bundle_contains(&bundle, foreign.as_bytes()),
        "kept a foreign CA:\n{}",
        String::from_utf8_lossy(&bundle)
    );
    // And then nothing left to do.
    let again = ensure(client.clone(), &request(DAY * 40, DAY * 30), now)
        .await
        .unwrap();
    assert_eq!(again.webhooks_patched, 0);
    let config = api.get(CONFIGURATION).await.unwrap();
    let webhooks = config.webhooks.unwrap();
    assert_eq!(
        webhooks[1].client_config.ca_bundle,
        Some(ByteString(lookalike.clone().into_bytes())),
        "another entry was patched"
    );
    assert!(!certs::bundle_contains(&bundle, lookalike.as_bytes()));
    stack.shutdown().await;
}

/// Review finding L3: CAs were recognised by their common name alone, so a self-signed CA
/// planted in the live caBundle with irsa's common name ("irsa webhook CA") was carried over
/// on every run, kept or rotated. Only CAs whose public-key fingerprint irsa recorded in its
/// Secret when it issued them are carried now; the previous CA stays recorded (and trusted)
/// through a rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_ca_with_irsas_common_name_is_dropped() {
    let (stack, client) = start().await;
    let now = SystemTime::now();
    let created = ensure(client.clone(), &request(DAY * 40, DAY * 30), now)
        .await
        .unwrap();
    assert_eq!(created.certificate, CertOutcome::Created);
    let (data, _) = stored(&client).await;
    let previous_ca = data["ca.crt"].0.clone();
    // Inside the 45-day window: rotated, the previous CA carried and recorded.
    let rotated = ensure(client.clone(), &request(DAY * 90, DAY * 45), now)
        .await
        .unwrap();
    assert!(
        matches!(rotated.certificate, CertOutcome::Rotated(_)),
        "{rotated:?}"
    );
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(SECRET)
        .await
        .unwrap();
    let record = secret.metadata.annotations.unwrap()
        [irsa_webhook::provision::CA_FINGERPRINTS_ANNOTATION]
        .clone();
    for ca in [&secret.data.as_ref().unwrap()["ca.crt"].0, &previous_ca] {
        let f = &certs::fingerprints(ca)[0];
        assert!(record.contains(f.as_str()), "{f} not in {record}");
    }

    // A self-signed CA with irsa's common name, valid, next to irsa's two.
    let planted = certs::generate(&["x".to_owned()]).unwrap().ca_pem;
    let (_, bundle) = stored(&client).await;
    let mut with_planted = bundle.clone();
    with_planted.extend_from_slice(planted.as_bytes());
    set_bundle(&client, &with_planted).await;
    let kept = ensure(client.clone(), &request(DAY * 90, DAY * 45), now)
        .await
        .unwrap();
    assert_eq!(kept.certificate, CertOutcome::Kept);
    assert_eq!(kept.webhooks_patched, 1, "the planted CA was left in place");
    let (data, bundle) = stored(&client).await;
    assert!(
        !certs::bundle_contains(&bundle, planted.as_bytes()),
        "carried a planted CA:\n{}",
        String::from_utf8_lossy(&bundle)
    );
    assert!(certs::bundle_contains(&bundle, &data["ca.crt"].0));
    assert!(
        certs::bundle_contains(&bundle, &previous_ca),
        "dropped the recorded previous CA"
    );

    // Planted again, then a rotation: not carried either.
    let mut with_planted = bundle.clone();
    with_planted.extend_from_slice(planted.as_bytes());
    set_bundle(&client, &with_planted).await;
    let current_ca = data["ca.crt"].0.clone();
    let rotated = ensure(client.clone(), &request(DAY * 200, DAY * 150), now)
        .await
        .unwrap();
    assert!(
        matches!(rotated.certificate, CertOutcome::Rotated(_)),
        "{rotated:?}"
    );
    let (data, bundle) = stored(&client).await;
    assert!(
        !certs::bundle_contains(&bundle, planted.as_bytes()),
        "a rotation carried a planted CA:\n{}",
        String::from_utf8_lossy(&bundle)
    );
    assert!(certs::bundle_contains(&bundle, &data["ca.crt"].0));
    assert!(certs::bundle_contains(&bundle, &current_ca));
    stack.shutdown().await;
}
