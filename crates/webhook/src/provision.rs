//! `irsa webhook certs`: keep a CA and serving certificate for the webhook's Service in a
//! `kubernetes.io/tls` Secret (plus `ca.crt`) and the CA in the `caBundle` of its webhook (by
//! name) of its MutatingWebhookConfiguration; of what that bundle held, only CAs irsa issued
//! are carried over (review finding L1), known by the public-key fingerprints it records in the
//! Secret's [`CA_FINGERPRINTS_ANNOTATION`] when it issues one (review finding L3). Idempotent: a stored pair that verifies for the Service's
//! name past the renewal window is kept and nothing is written; otherwise it is replaced.
//!
//! The requests it sends are exactly what `irsa install --webhook` grants: get and update of
//! the one Secret, get and patch of the one MutatingWebhookConfiguration. The install applies
//! the Secret empty (review finding L3: no type, no data), and an empty Secret is "no
//! certificate yet": the step fills it with an update, never a create. Only when the Secret does
//! not exist at all (the step run on its own, outside the install) does it create one, which
//! the install does not grant. Replicas that run it at once converge: a create or update that
//! loses the race (409) re-reads.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

use crate::certs::{self, CertError, Unusable};

/// The Secret type kube-apiserver requires `tls.crt` and `tls.key` in.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The Secret's annotation recording the CAs irsa issued and still trusts (the current one
/// and, after a rotation, those carried in `caBundle`): their [`certs::ca_fingerprint`]s
/// (SHA-256 of the public key, hex), comma-separated. Only these are carried over from the
/// live `caBundle` (review finding L3): a planted CA with irsa's common name is not. Whoever
/// can write this Secret can replace the CA itself, so the record is as trusted as `ca.crt`.
pub const CA_FINGERPRINTS_ANNOTATION: &str = "irsa.dev/webhook-ca-sha256";

/// More fingerprints than this in the annotation are ignored (the step writes at most
/// `1 + MAX_CARRIED_CAS`).
const MAX_RECORDED: usize = 8;

/// The longest `validity`: beyond it the certificate's dates leave what X.509 tools (and
/// rcgen's date type) can write.
pub const MAX_VALIDITY: Duration = Duration::from_secs(36_500 * 86_400);

/// Reads and writes before giving up when other replicas keep changing the Secret or the
/// configuration (each lost race costs one).
const ATTEMPTS: usize = 5;

/// What to keep where.
#[derive(Debug, Clone)]
pub struct CertsRequest {
    /// Namespace of the Service and the Secret.
    pub namespace: String,
    /// The Secret holding `tls.crt`, `tls.key` and `ca.crt`.
    pub secret: String,
    /// The Service kube-apiserver calls: the certificate is for `<service>.<namespace>.svc`.
    pub service: String,
    /// The MutatingWebhookConfiguration holding the webhook.
    pub webhook_configuration: String,
    /// The webhook (by name) of that configuration whose `caBundle` is kept: the only entry
    /// read and patched, so another entry's bundle is neither carried nor overwritten.
    pub webhook_name: String,
    /// Lifetime of a new CA and certificate.
    pub validity: Duration,
    /// A stored certificate expiring sooner than this is replaced.
    pub renew_before: Duration,
}

/// What happened to the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertOutcome {
    /// The stored pair was valid and kept.
    Kept,
    /// There was no Secret: one was created.
    Created,
    /// The Secret was empty (the placeholder `irsa install --webhook` applies): the first pair
    /// was stored in it.
    Filled,
    /// The stored pair could not be kept, for this reason, and was replaced.
    Rotated(Unusable),
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsReport {
    /// The certificate's fate.
    pub certificate: CertOutcome,
    /// How many webhooks' `caBundle` were patched: 1, or 0 when it already held the CA and
    /// nothing else.
    pub webhooks_patched: usize,
    /// How many webhooks the configuration has (only the named one is touched).
    pub webhooks: usize,
    /// The serving certificate now stored, byte for byte as in the Secret (public): what
    /// `--wait-for-mount` waits to see in the mounted `tls.crt`.
    pub cert_pem: Vec<u8>,
}

/// `irsa webhook certs` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The configuration does not exist.
    #[error(
        "mutatingwebhookconfiguration {0} not found: apply the webhook's manifests first \
         (`irsa install --webhook | kubectl apply --server-side -f -`), or pass its name with \
         --webhook-configuration"
    )]
    ConfigurationNotFound(String),
    /// The configuration has no webhook of that name to trust the CA.
    #[error(
        "mutatingwebhookconfiguration {configuration} has no webhook named {webhook}: nothing \
         would trust the CA (pass the entry's name with --webhook-name)"
    )]
    NoWebhooks {
        /// The configuration.
        configuration: String,
        /// The webhook looked for.
        webhook: String,
    },
    /// A Secret of that name exists with another type (which cannot be changed), or is
    /// `Opaque` and holds keys the step does not write (it is someone else's).
    #[error("secret {namespace}/{name} {reason}: delete it or pass another name with --secret")]
    SecretType {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--validity` must outlast `--renew-before`, or every run would rotate.
    #[error(
        "--validity ({validity_hours} hours) must be longer than --renew-before \
         ({renew_hours} hours), or every run would replace the certificate"
    )]
    Window {
        /// `--validity` in hours.
        validity_hours: u64,
        /// `--renew-before` in hours.
        renew_hours: u64,
    },
    /// `--validity` beyond what certificate dates can hold.
    #[error(
        "--validity: at most 36500d (100 years); a shorter one with a renewal on each rollout \
         is safer"
    )]
    TooLong,
    /// There is no Secret, and creating it was forbidden: under `irsa install --webhook`'s
    /// grants the install applies it (empty) and the step only fills it.
    #[error(
        "secret {namespace}/{name} does not exist, and creating it was forbidden ({source}): \
         apply the webhook's manifests again (`irsa install --webhook` applies it empty), or \
         create it: kubectl create secret generic {name} -n {namespace}"
    )]
    NoSecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
    /// A request to the API server failed.
    #[error("failed to {action} {object}: {source}")]
    Api {
        /// `get`, `create`, `update`, `patch`.
        action: &'static str,
        /// `secret ns/name`, `mutatingwebhookconfiguration name`.
        object: String,
        /// The client's error.
        source: kube::Error,
    },
    /// Another writer kept winning the race.
    #[error("{0} kept changing while it was being written ({ATTEMPTS} attempts): run it again")]
    Contended(String),
    /// Generating failed.
    #[error(transparent)]
    Generate(#[from] CertError),
}

fn field<'a>(secret: &'a Secret, key: &str) -> &'a [u8] {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .unwrap_or_default()
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// The keys the step writes.
const KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// Whether the step may write `secret`: type `kubernetes.io/tls`, or `Opaque` (the install's
/// placeholder is created without a type, review finding L3) holding none but the step's keys;
/// else why not, for [`ProvisionError::SecretType`].
fn writable(secret: &Secret) -> Result<(), String> {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    let mut foreign: Vec<&str> = (secret.data.iter().flatten())
        .map(|(k, _)| k.as_str())
        .chain(secret.string_data.iter().flatten().map(|(k, _)| k.as_str()))
        .filter(|k| !KEYS.contains(k))
        .collect();
    foreign.sort_unstable();
    foreign.dedup();
    match type_ {
        TLS_SECRET_TYPE => Ok(()),
        "Opaque" if foreign.is_empty() => Ok(()),
        "Opaque" => Err(format!(
            "is Opaque and holds keys the certificate step does not write ({}): it is someone else's",
            foreign.join(", ")
        )),
        other => Err(format!("has type {other:?}, not kubernetes.io/tls")),
    }
}

/// Whether `secret` holds no certificate yet: none of the step's keys has a byte (the install's
/// placeholder, or a `kubernetes.io/tls` one made with empty values).
fn is_empty(secret: &Secret) -> bool {
    KEYS.iter().all(|k| field(secret, k).is_empty())
}

/// Make the Secret hold a valid pair for the Service and every webhook of the configuration
/// trust its CA, as of `now`.
pub async fn ensure(
    client: kube::Client,
    request: &CertsRequest,
    now: SystemTime,
) -> Result<CertsReport, ProvisionError> {
    if request.validity > MAX_VALIDITY {
        return Err(ProvisionError::TooLong);
    }
    if request.validity <= request.renew_before {
        return Err(ProvisionError::Window {
            validity_hours: request.validity.as_secs() / 3600,
            renew_hours: request.renew_before.as_secs() / 3600,
        });
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &request.namespace);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let secret_object = format!("secret {}/{}", request.namespace, request.secret);
    let config_object = format!(
        "mutatingwebhookconfiguration {}",
        request.webhook_configuration
    );
    let api_err = |action, object: &str| {
        let object = object.to_owned();
        move |source| ProvisionError::Api {
            action,
            object,
            source,
        }
    };
    let server_name = format!("{}.{}.svc", request.service, request.namespace);
    for _ in 0..ATTEMPTS {
        let config = configs
            .get_opt(&request.webhook_configuration)
            .await
            .map_err(api_err("get", &config_object))?
            .ok_or_else(|| {
                ProvisionError::ConfigurationNotFound(request.webhook_configuration.clone())
            })?;
        if !config
            .webhooks
            .iter()
            .flatten()
            .any(|w| w.name == request.webhook_name)
        {
            return Err(ProvisionError::NoWebhooks {
                configuration: request.webhook_configuration.clone(),
                webhook: request.webhook_name.clone(),
            });
        }
        let existing = secrets
            .get_opt(&request.secret)
            .await
            .map_err(api_err("get", &secret_object))?;
        if let Some(s) = &existing
            && let Err(reason) = writable(s)
        {
            return Err(ProvisionError::SecretType {
                namespace: request.namespace.clone(),
                name: request.secret.clone(),
                reason,
            });
        }
        let verdict = existing.as_ref().map(|s| {
            certs::check(
                field(s, "tls.crt"),
                field(s, "tls.key"),
                field(s, "ca.crt"),
                &server_name,
                now,
                request.renew_before,
            )
        });
        if let (Some(s), Some(Ok(()))) = (&existing, &verdict) {
            let ca = field(s, "ca.crt");
            // check() parsed it, so there is a certificate; junk around it stays out. A
            // webhook that does not trust it yet keeps what its bundle trusts (a concurrent
            // rotation's previous CA, which replicas may still serve).
            let stored = certs::normalized(ca).unwrap_or_default();
            let recorded = recorded(s);
            let current = current_bundles(&config, &request.webhook_name);
            let bundle = certs::next_bundle(&stored, &[current.as_slice()], &recorded, now);
            let webhooks = config.webhooks.as_ref().map_or(0, Vec::len);
            let set = set_bundle(&client, &config, request, ca, &bundle, &recorded, now);
            let Some(patched) = set.await? else { continue };
            return Ok(CertsReport {
                certificate: CertOutcome::Kept,
                webhooks_patched: patched,
                webhooks,
                cert_pem: field(s, "tls.crt").to_vec(),
            });
        }
        let fresh = certs::generate_valid(
            &certs::service_names(&request.service, &request.namespace),
            // An hour back: clocks of the nodes and the API server disagree a little.
            now - Duration::from_secs(3600),
            now + request.validity,
        )?;
        let data = BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(fresh.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(fresh.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_owned(),
                ByteString(fresh.ca_pem.clone().into_bytes()),
            ),
        ]);
        let webhooks = config.webhooks.as_ref().map_or(0, Vec::len);
        match (existing, verdict) {
            (None, _) => {
                // No Secret, so no record: nothing of the live bundle is known to be irsa's.
                let bundle = certs::next_bundle(&fresh.ca_pem, &[], &[], now);
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(request.secret.clone()),
                        namespace: Some(request.namespace.clone()),
                        labels: Some(labels()),
                        annotations: Some(record(&bundle)),
                        ..ObjectMeta::default()
                    },
                    type_: Some(TLS_SECRET_TYPE.to_owned()),
                    data: Some(data),
                    ..Secret::default()
                };
                match secrets.create(&PostParams::default(), &secret).await {
                    Ok(_) => {}
                    // Another replica created it first: use that one.
                    Err(e) if is_conflict(&e) => continue,
                    Err(source) if is_forbidden(&source) => {
                        return Err(ProvisionError::NoSecret {
                            namespace: request.namespace.clone(),
                            name: request.secret.clone(),
                            source,
                        });
                    }
                    Err(e) => return Err(api_err("create", &secret_object)(e)),
                }
                let ca = fresh.ca_pem.as_bytes();
                let set = set_bundle(&client, &config, request, ca, &bundle, &[], now);
                let Some(patched) = set.await? else { continue };
                return Ok(CertsReport {
                    certificate: CertOutcome::Created,
                    webhooks_patched: patched,
                    webhooks,
                    cert_pem: fresh.cert_pem.into_bytes(),
                });
            }
            (Some(mut secret), Some(Err(reason))) => {
                // The install's placeholder: no certificate yet, nothing to carry or renew.
                let empty = is_empty(&secret);
                // Trust the new CA (and still the old one, if it is a valid CA) before serving
                // with it; then what the bundle trusts now (another replica's rotation).
                let previous = field(&secret, "ca.crt").to_vec();
                let recorded = recorded(&secret);
                let current = current_bundles(&config, &request.webhook_name);
                let bundle = certs::next_bundle(
                    &fresh.ca_pem,
                    &[previous.as_slice(), current.as_slice()],
                    &recorded,
                    now,
                );
                let ca = fresh.ca_pem.as_bytes();
                let set = set_bundle(&client, &config, request, ca, &bundle, &recorded, now);
                let Some(patched) = set.await? else { continue };
                secret.data = Some(data);
                // The new CA and the ones carried with it (the previous one) stay known.
                secret
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(record(&bundle));
                // Update, not patch: the resourceVersion read makes it conditional on the pair
                // just checked, so two replicas never both replace it.
                match secrets
                    .replace(&request.secret, &PostParams::default(), &secret)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(api_err("update", &secret_object)(e)),
                }
                return Ok(CertsReport {
                    certificate: if empty {
                        CertOutcome::Filled
                    } else {
                        CertOutcome::Rotated(reason)
                    },
                    webhooks_patched: patched,
                    webhooks,
                    cert_pem: fresh.cert_pem.into_bytes(),
                });
            }
            // A pair that checked out returned above.
            (Some(_), _) => continue,
        }
    }
    Err(ProvisionError::Contended(secret_object))
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "irsa".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "webhook".to_owned(),
        ),
    ])
}

/// The fingerprints of the CAs irsa recorded in `secret`, and of its `ca.crt` (the current CA,
/// as trusted as the record). Bytes read back from the cluster: anything but 64 hex digits is
/// ignored.
fn recorded(secret: &Secret) -> Vec<String> {
    let mut out: Vec<String> = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CA_FINGERPRINTS_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_ascii_lowercase)
                .take(MAX_RECORDED)
                .collect()
        })
        .unwrap_or_default();
    out.extend(certs::fingerprints(field(secret, "ca.crt")));
    out
}

/// The annotation recording the CAs of `bundle`.
fn record(bundle: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(
        CA_FINGERPRINTS_ANNOTATION.to_owned(),
        certs::fingerprints(bundle.as_bytes()).join(","),
    )])
}

/// [`patch_bundle`] with its error named: `Some(patched)`, or `None` when the configuration
/// changed since it was read (409: the caller reads again).
async fn set_bundle(
    client: &kube::Client,
    config: &MutatingWebhookConfiguration,
    request: &CertsRequest,
    ca: &[u8],
    bundle: &str,
    recorded: &[String],
    now: SystemTime,
) -> Result<Option<usize>, ProvisionError> {
    match patch_bundle(
        client,
        config,
        &request.webhook_name,
        ca,
        bundle,
        recorded,
        now,
    )
    .await
    {
        Ok(n) => Ok(Some(n)),
        Err(e) if is_conflict(&e) => Ok(None),
        Err(source) => Err(ProvisionError::Api {
            action: "patch",
            object: format!(
                "mutatingwebhookconfiguration {}",
                request.webhook_configuration
            ),
            source,
        }),
    }
}

/// The `caBundle` of the webhook named `name` of `config` (PEM text); other entries are not
/// irsa's to carry from (review finding L1).
fn current_bundles(config: &MutatingWebhookConfiguration, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for webhook in config.webhooks.iter().flatten().filter(|w| w.name == name) {
        if let Some(b) = &webhook.client_config.ca_bundle {
            out.extend_from_slice(&b.0);
            out.push(b'\n');
        }
    }
    out
}

/// Set `bundle` on the webhook named `name` when its `caBundle` does not hold `ca`, or holds anything besides
/// valid CAs irsa issued and `recorded` (review findings L1, L3), by index: a JSON patch
/// that tests each webhook's name before setting its `caBundle`, so fields of the configuration
/// irsa does not model survive and a reordered configuration is refused, never mis-patched.
/// Returns how many were patched.
///
/// Conditional on the configuration as read (its resourceVersion, set by the patch, is a
/// precondition: kube-apiserver answers 409 when it changed), because `bundle` was computed
/// from it: two replicas rotating at once would otherwise each write a bundle made from a
/// stale read and drop the CA the other one added, or the previous one (review finding M3).
/// The caller re-reads on 409.
async fn patch_bundle(
    client: &kube::Client,
    config: &MutatingWebhookConfiguration,
    name: &str,
    ca: &[u8],
    bundle: &str,
    recorded: &[String],
    now: SystemTime,
) -> Result<usize, kube::Error> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let mut ops = Vec::new();
    for (i, webhook) in config.webhooks.iter().flatten().enumerate() {
        if webhook.name != name {
            continue;
        }
        let current = webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        if certs::bundle_is_clean(current, ca, recorded, now) {
            continue;
        }
        ops.push(
            json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name}),
        );
        ops.push(json!({
            "op": "add",
            "path": format!("/webhooks/{i}/clientConfig/caBundle"),
            "value": encoded,
        }));
    }
    if ops.is_empty() {
        return Ok(0);
    }
    let patched = ops.len() / 2;
    if let Some(rv) = &config.metadata.resource_version {
        ops.insert(
            0,
            json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv}),
        );
    }
    let name = config.metadata.name.clone().unwrap_or_default();
    let body = serde_json::to_vec(&ops).expect("JSON values serialize");
    // kube's typed JSON patch needs its `jsonpatch` feature; the request is plain enough.
    let request = http::Request::patch(format!(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
    ))
    .header(http::header::CONTENT_TYPE, "application/json-patch+json")
    .body(body)
    .expect("a request with a valid path and header builds");
    let _: MutatingWebhookConfiguration = client.request(request).await?;
    Ok(patched)
}

/// Wait until the Secret as mounted in `dir` (a Secret volume of the same pod) holds
/// `cert_pem` as `tls.crt`, polling every `every`, for at most `timeout`. An init container
/// that creates the Secret waits so, because the kubelet fills an optional Secret volume only
/// on its next sync: the webhook container then starts with the files in place.
pub async fn wait_for_mount(
    dir: &std::path::Path,
    cert_pem: &[u8],
    every: Duration,
    timeout: Duration,
) -> Result<(), String> {
    let path = dir.join("tls.crt");
    let wait = async {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            // Bytes, not text: a stored tls.crt need not be UTF-8 (review finding L3).
            if std::fs::read(&path).is_ok_and(|b| b == cert_pem) {
                return;
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        format!(
            "{} did not show the stored certificate within {} s: mount the Secret at {} \
             (a Secret volume with optional: true) or leave out --wait-for-mount",
            path.display(),
            timeout.as_secs(),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(type_: Option<&str>, keys: &[(&str, &str)]) -> Secret {
        Secret {
            type_: type_.map(str::to_owned),
            data: Some(
                keys.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    /// Review finding L3: the install's placeholder (no type, no data: `Opaque`) is "no
    /// certificate yet" and may be filled; an `Opaque` Secret holding anything else is someone
    /// else's, and other types are refused as before.
    #[test]
    fn the_installs_empty_secret_is_filled_and_anyone_elses_is_refused() {
        let placeholder = Secret::default();
        assert_eq!(writable(&placeholder), Ok(()));
        assert!(is_empty(&placeholder));
        assert_eq!(writable(&secret(Some("Opaque"), &[])), Ok(()));
        let filled = secret(
            Some("Opaque"),
            &[("tls.crt", "C"), ("tls.key", "K"), ("ca.crt", "A")],
        );
        assert_eq!(writable(&filled), Ok(()));
        assert!(!is_empty(&filled));
        let tls_empty = secret(Some(TLS_SECRET_TYPE), &[("tls.crt", ""), ("tls.key", "")]);
        assert_eq!(writable(&tls_empty), Ok(()));
        assert!(is_empty(&tls_empty));
        // Review 23 L4: an Opaque Secret with other keys is refused for those keys, not for
        // its type (the old message said "has type Opaque, not kubernetes.io/tls").
        let other_keys = "is Opaque and holds keys the certificate step does not write (a): it is someone else's";
        assert_eq!(
            writable(&secret(Some("Opaque"), &[("a", "b")])),
            Err(other_keys.to_owned())
        );
        let string_data = Secret {
            string_data: Some([("x".to_owned(), "y".to_owned())].into()),
            ..Secret::default()
        };
        assert_eq!(
            writable(&string_data),
            Err("is Opaque and holds keys the certificate step does not write (x): it is someone else's".to_owned())
        );
        assert_eq!(
            writable(&secret(Some("kubernetes.io/service-account-token"), &[])),
            Err(
                "has type \"kubernetes.io/service-account-token\", not kubernetes.io/tls"
                    .to_owned()
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_when_the_mount_shows_the_certificate_or_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("irsa-wait-mount-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let e = wait_for_mount(
            &dir,
            b"CERT",
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("tls.crt did not show the stored certificate within 5 s"),
            "{e}"
        );
        std::fs::write(dir.join("tls.crt"), "OLD").unwrap();
        assert!(
            wait_for_mount(
                &dir,
                b"CERT",
                Duration::from_secs(1),
                Duration::from_secs(5)
            )
            .await
            .is_err()
        );
        std::fs::write(dir.join("tls.crt"), "CERT").unwrap();
        wait_for_mount(
            &dir,
            b"CERT",
            Duration::from_secs(1),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
