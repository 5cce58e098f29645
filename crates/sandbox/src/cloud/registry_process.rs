//! A `docker-registry` (CNCF distribution 2.8) child process configured for token auth against
//! the sandbox's registry token service, with filesystem storage in a temporary directory; and
//! pushing a small image to it over the registry HTTP API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::RegistryAuthConfig;
use super::client::{HttpError, request};
use super::random_string;

/// The binary Debian's `docker-registry` package installs.
pub const REGISTRY_BINARY: &str = "docker-registry";

/// Why the registry could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The binary is not installed.
    #[error(
        "`{binary}` not found: install the CNCF distribution registry (Debian/Ubuntu: `apt-get install docker-registry`; ./scripts/test installs it)"
    )]
    NotInstalled {
        /// The binary name.
        binary: String,
    },
    /// Files could not be written.
    #[error("failed to prepare the registry directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The process could not be spawned.
    #[error("failed to start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process exited or did not answer in time.
    #[error("the registry did not become ready within {seconds}s: {detail}")]
    NotReady {
        /// The deadline.
        seconds: u64,
        /// Exit status and the log's tail.
        detail: String,
    },
    /// An HTTP call failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The registry refused a push step.
    #[error("registry refused {step}: HTTP {status}: {body}")]
    Push {
        /// Which step.
        step: &'static str,
        /// Status.
        status: u16,
        /// The registry's error body.
        body: String,
    },
}

/// A running registry, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_loopback_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The registry's YAML configuration.
pub fn registry_config_yaml(
    port: u16,
    storage_dir: &Path,
    realm: &str,
    auth: &RegistryAuthConfig,
    cert_bundle: &Path,
) -> String {
    // Values are quoted JSON strings, which YAML accepts as double-quoted scalars.
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: {secret}\nauth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {bundle}\n",
        storage = q(&storage_dir.display().to_string()),
        addr = q(&format!("127.0.0.1:{port}")),
        secret = q(&random_string(32, b"abcdefghijklmnopqrstuvwxyz0123456789")),
        realm = q(realm),
        service = q(&auth.service),
        issuer = q(&auth.issuer),
        bundle = q(&cert_bundle.display().to_string()),
    )
}

impl RegistryProcess {
    /// Writes the config (token realm `<cloud_url>/registry/token`, the sandbox's token-signing
    /// certificate as root bundle), starts `docker-registry serve <config>` on a free loopback
    /// port and waits until `/v2/` answers, at most `deadline`.
    pub async fn start(
        cloud_url: &str,
        certificate_pem: &str,
        auth: &RegistryAuthConfig,
        deadline: Duration,
    ) -> Result<RegistryProcess, RegistryError> {
        let dir = std::env::temp_dir().join(format!(
            "irsa-registry-{}",
            random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
        ));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("data")).map_err(io(&dir))?;
        let bundle = dir.join("token-ca.pem");
        std::fs::write(&bundle, certificate_pem).map_err(io(&bundle))?;
        let port = free_loopback_port().map_err(io(&dir))?;
        let realm = format!("{}/registry/token", cloud_url.trim_end_matches('/'));
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            registry_config_yaml(port, &dir.join("data"), &realm, auth, &bundle),
        )
        .map_err(io(&config))?;
        let log_path = dir.join("registry.log");
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let log_err = log.try_clone().map_err(io(&log_path))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    RegistryError::NotInstalled {
                        binary: REGISTRY_BINARY.to_owned(),
                    }
                } else {
                    RegistryError::Spawn {
                        binary: REGISTRY_BINARY.to_owned(),
                        source,
                    }
                }
            })?;
        let mut registry = RegistryProcess { child, port, dir };
        registry.wait_ready(deadline).await?;
        Ok(registry)
    }

    async fn wait_ready(&mut self, deadline: Duration) -> Result<(), RegistryError> {
        let start = Instant::now();
        let url = format!("{}/v2/", self.url());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(RegistryError::NotReady {
                    seconds: deadline.as_secs(),
                    detail: format!("exited with {status}: {}", self.log_tail()),
                });
            }
            if let Ok(resp) = request("GET", &url, &[], Vec::new()).await
                && (resp.status == 401 || resp.status == 200)
            {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(RegistryError::NotReady {
                    seconds: deadline.as_secs(),
                    detail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the registry's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn upload_blob(
    registry_url: &str,
    repository: &str,
    auth: &str,
    blob: &[u8],
) -> Result<String, RegistryError> {
    let digest = digest(blob);
    let start = request(
        "POST",
        &format!("{registry_url}/v2/{repository}/blobs/uploads/"),
        &[("authorization", auth), ("content-length", "0")],
        Vec::new(),
    )
    .await?;
    if start.status != 202 {
        return Err(RegistryError::Push {
            step: "blob upload start",
            status: start.status,
            body: start.text(),
        });
    }
    let location = start.header("location").unwrap_or_default();
    let location = if location.starts_with('/') {
        format!("{registry_url}{location}")
    } else {
        location.to_owned()
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let len = blob.len().to_string();
    let put = request(
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[
            ("authorization", auth),
            ("content-type", "application/octet-stream"),
            ("content-length", &len),
        ],
        blob.to_vec(),
    )
    .await?;
    if put.status != 201 {
        return Err(RegistryError::Push {
            step: "blob upload",
            status: put.status,
            body: put.text(),
        });
    }
    Ok(digest)
}

/// Pushes a one-layer OCI image (a tiny layer, its config and the manifest) as
/// `<repository>:<tag>` with a bearer token that grants `push`; returns the manifest digest.
pub async fn push_image(
    registry_url: &str,
    repository: &str,
    tag: &str,
    bearer_token: &str,
) -> Result<String, RegistryError> {
    let auth = format!("Bearer {bearer_token}");
    let layer = format!("irsa sandbox layer for {repository}:{tag}").into_bytes();
    let layer_digest = upload_blob(registry_url, repository, &auth, &layer).await?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"dev.irsa.sandbox": "true"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let config_digest = upload_blob(registry_url, repository, &auth, &config).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = digest(&manifest);
    let len = manifest.len().to_string();
    let put = request(
        "PUT",
        &format!("{registry_url}/v2/{repository}/manifests/{tag}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ("content-length", &len),
        ],
        manifest,
    )
    .await?;
    if put.status != 201 {
        return Err(RegistryError::Push {
            step: "manifest",
            status: put.status,
            body: put.text(),
        });
    }
    Ok(manifest_digest)
}
