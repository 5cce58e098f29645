//! The async shell around the pure parts: the metadata-only service-account watch, the
//! ConfigMap watch, the container-credentials file, the API-server fallback, and the server.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::net::TcpListener;

use crate::admission::{LookupError, LookupResult, ServiceAccountLookup, Timing, Webhook};
use crate::cache::{MAX_ANNOTATION_VALUE, ServiceAccountCache};
use crate::config::{CONFIG_MAP_KEY, CONFIG_MAP_NAME, Config};
use crate::identity::{parse_config_map, parse_container_credentials};
use crate::server::{TlsFiles, serve};

/// Asks the API server for one service account's metadata.
#[derive(Clone)]
pub struct KubeLookup {
    client: kube::Client,
}

impl KubeLookup {
    /// A lookup through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl ServiceAccountLookup for KubeLookup {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = LookupResult> + Send + 'a>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            match api.get_metadata_opt(name).await {
                Ok(found) => Ok(found.map(|m| m.metadata.annotations.unwrap_or_default())),
                Err(e) => Err(LookupError {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    message: e.to_string(),
                }),
            }
        })
    }
}

fn relevant(
    prefix: &str,
    annotations: Option<BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut a = annotations.unwrap_or_default();
    // Oversized values are dropped here already: `listing` holds a whole relist until InitDone.
    a.retain(|k, v| {
        v.len() <= MAX_ANNOTATION_VALUE
            && k.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    a
}

/// Service accounts per list page of the watch (kube's default is 500).
const SA_PAGE_SIZE: u32 = 50;

/// Keep `cache` in step with every service account, from a metadata-only watch; a relist
/// replaces the cache and marks it synced.
pub async fn watch_service_accounts(
    client: kube::Client,
    cache: Arc<ServiceAccountCache>,
    prefix: String,
) {
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(client);
    // Small pages: a page holds every account's full metadata, whatever annotations a tenant
    // wrote (up to 256 KiB each), before `relevant` trims it.
    let mut events = watcher(api, watcher::Config::default().page_size(SA_PAGE_SIZE))
        .default_backoff()
        .boxed();
    let mut listing: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    while let Some(event) = events.next().await {
        let key = |m: &kube::api::ObjectMeta| {
            (
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            )
        };
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(sa)) => {
                let (ns, name) = key(&sa.metadata);
                listing.push((ns, name, relevant(&prefix, sa.metadata.annotations)));
            }
            Ok(watcher::Event::InitDone) => {
                cache.reset(
                    listing
                        .iter()
                        .map(|(ns, n, a)| (ns.as_str(), n.as_str(), a)),
                );
                listing = Vec::new();
                let accounts = cache.len();
                tracing::info!(
                    service_accounts = accounts,
                    "service-account cache synced ({accounts} accounts)"
                );
            }
            Ok(watcher::Event::Apply(sa)) => {
                let (ns, name) = key(&sa.metadata);
                cache.apply(&ns, &name, &relevant(&prefix, sa.metadata.annotations));
            }
            Ok(watcher::Event::Delete(sa)) => {
                let (ns, name) = key(&sa.metadata);
                cache.delete(&ns, &name);
            }
            Err(e) => tracing::warn!(error = %e, "service-account watch failed; retrying"),
        }
    }
}

/// Follow the `pod-identity-webhook` ConfigMap in `namespace` (`--watch-config-map`).
pub async fn watch_config_map(client: kube::Client, namespace: String, webhook: Arc<Webhook>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                let data = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(CONFIG_MAP_KEY))
                    .map(String::as_str)
                    .unwrap_or("{}");
                match parse_config_map(data) {
                    Ok(entries) => webhook.set_config_map(entries),
                    Err(e) => {
                        tracing::warn!(%namespace, error = %e, "kept the previous ConfigMap entries")
                    }
                }
            }
            Ok(watcher::Event::Delete(_)) => webhook.set_config_map(BTreeMap::new()),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ConfigMap watch failed; retrying"),
        }
    }
}

/// The container-credentials file, reloaded when its modification time or size changes.
#[derive(Debug)]
pub struct ContainerCredentialsFile {
    path: PathBuf,
    seen: Option<(Option<SystemTime>, u64)>,
}

impl ContainerCredentialsFile {
    /// Follow `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            seen: None,
        }
    }

    /// Reload into `webhook` if the file changed; returns whether it loaded. A file that does not
    /// parse keeps the previous identities (and is retried when it changes again).
    pub fn reload(&mut self, webhook: &Webhook) -> bool {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if stamp.is_none() || stamp == self.seen {
            return false;
        }
        self.seen = stamp;
        match read_limited(&self.path).map(|b| parse_container_credentials(&b)) {
            Ok(Ok(ids)) => {
                tracing::info!(identities = ids.len(), path = %self.path.display(), "loaded the container credentials config");
                webhook.set_pod_identities(ids);
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(path = %self.path.display(), error = %e, "kept the previous container credentials config");
                false
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "failed to read the container credentials config");
                false
            }
        }
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(16 * 1024 * 1024)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Everything `irsa webhook` runs with.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The mutation settings.
    pub config: Config,
    /// Grace period, deadline, lookup rate.
    pub timing: Timing,
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// `--watch-config-map`: the namespace whose `pod-identity-webhook` ConfigMap to follow.
    pub config_map_namespace: Option<String>,
    /// `--watch-container-credentials-config`.
    pub container_credentials_file: Option<PathBuf>,
    /// `--trusted-peer`: the API server's addresses ([`Webhook::with_trusted_peers`]).
    pub trusted_peers: Vec<crate::admission::IpBlock>,
}

/// Run the webhook on `listener` until `shutdown`.
pub async fn run(
    options: RunOptions,
    client: kube::Client,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let tls = Arc::new(TlsFiles::new(&options.tls_cert, &options.tls_key)?);
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on {addr}"),
        Err(e) => tracing::warn!("listening on an address the system does not tell: {e}"),
    }
    let cache = Arc::new(ServiceAccountCache::new(&options.config));
    let lookup = Arc::new(KubeLookup::new(client.clone()));
    let prefix = options.config.annotation_prefix.clone();
    let webhook = Arc::new(
        Webhook::new(options.config, cache.clone(), Some(lookup), options.timing)
            .with_trusted_peers(options.trusted_peers),
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch_service_accounts(client.clone(), cache, prefix));
    if let Some(ns) = options.config_map_namespace {
        tasks.spawn(watch_config_map(client.clone(), ns, webhook.clone()));
    }
    if let Some(path) = options.container_credentials_file {
        let mut file = ContainerCredentialsFile::new(path);
        file.reload(&webhook);
        let webhook = webhook.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                file.reload(&webhook);
            }
        });
    }
    let served = serve(listener, tls, webhook, shutdown).await;
    tasks.shutdown().await;
    served.map_err(RunError::Serve)
}

/// The webhook could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] crate::server::TlsError),
    /// The listener failed.
    #[error("the webhook server failed: {0}")]
    Serve(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Timing;

    #[test]
    fn the_watch_keeps_only_bounded_annotations_under_the_prefix() {
        let huge = "a".repeat(MAX_ANNOTATION_VALUE + 1);
        let all: BTreeMap<String, String> = [
            ("eks.amazonaws.com/role-arn", huge.as_str()),
            ("eks.amazonaws.com/audience", "sts.amazonaws.com"),
            ("eks.amazonaws.comx/a", "b"),
            ("other.io/role-arn", "r"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let kept = relevant("eks.amazonaws.com", Some(all));
        assert_eq!(
            kept.into_iter().collect::<Vec<_>>(),
            [(
                "eks.amazonaws.com/audience".to_owned(),
                "sts.amazonaws.com".to_owned()
            )]
        );
    }

    #[tokio::test]
    async fn the_container_credentials_file_is_reloaded_on_change_and_a_bad_one_is_ignored() {
        let dir = std::env::temp_dir().join(format!("irsa-webhook-cc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let config = Config::default();
        let cache = Arc::new(ServiceAccountCache::new(&config));
        let webhook = Webhook::new(config, cache.clone(), None, Timing::default());
        cache.apply("ns", "sa", &BTreeMap::new());
        let body = |uid: &str| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": uid, "namespace": "ns", "object": {"spec": {"serviceAccountName": "sa", "containers": [{"name": "a"}]}}}
            }))
            .unwrap()
        };
        let mut file = ContainerCredentialsFile::new(&path);
        assert!(!file.reload(&webhook), "no file yet");
        std::fs::write(
            &path,
            br#"{"identities":[{"namespace":"ns","serviceAccount":"sa"}]}"#,
        )
        .unwrap();
        assert!(file.reload(&webhook));
        assert!(!file.reload(&webhook), "unchanged");
        let (_, answer) = webhook.review(&body("u1")).await;
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(!file.reload(&webhook));
        let (_, answer) = webhook.review(&body("u2")).await;
        assert_eq!(
            answer["response"]["patchType"], "JSONPatch",
            "kept the last good file"
        );
        std::fs::write(&path, b"").unwrap();
        assert!(file.reload(&webhook));
        let (_, answer) = webhook.review(&body("u3")).await;
        assert!(
            answer["response"].get("patch").is_none(),
            "an empty file lists nobody"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
