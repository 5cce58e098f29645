//! The HTTPS server: `POST /mutate` (AdmissionReview v1), `/healthz`, `/readyz` (only after the
//! service-account cache synced) and `/metrics`, over TLS whose certificate and key are re-read
//! when they change (checked per connection, by modification time and size), so a rotated
//! certificate is served without a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::Webhook;

/// Largest AdmissionReview body accepted (kube-apiserver's own request limit is 3 MiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM held no usable certificate or key.
    #[error("{path} holds no PEM {what}; pass --tls-cert and --tls-key files in PEM")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// rustls refused the pair.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

type Stamp = (Option<SystemTime>, u64);

/// The certificate and key files, re-read when either changes.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Option<((Stamp, Stamp), TlsAcceptor)>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Result<Stamp, TlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok((meta.modified().ok(), meta.len()))
}

impl TlsFiles {
    /// Serve the PEM certificate chain in `cert` with the PEM private key in `key`; both are
    /// read now (so that a bad pair fails at start) and again whenever they change.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let files = Self {
            cert: cert.into(),
            key: key.into(),
            current: Mutex::new(None),
        };
        files.acceptor()?;
        Ok(files)
    }

    fn load(&self) -> Result<TlsAcceptor, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(TlsError::Pem {
                path: self.cert.clone(),
                what: "certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
            path: self.key.clone(),
            what: "private key",
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// The acceptor for the next connection: the cached one unless a file changed. A pair that
    /// fails to load while being rewritten keeps the previous one in service.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let (Ok(c), Ok(k)) = &stamps
            && let Some((seen, acceptor)) = current.as_ref()
            && *seen == (*c, *k)
        {
            return Ok(acceptor.clone());
        }
        match (stamps, self.load()) {
            (_, Ok(acceptor)) => {
                // Stamps taken after loading could be newer than what was read; the ones from
                // before make a change during the read trigger another load next time.
                if let (Ok(c), Ok(k)) = (stamp(&self.cert), stamp(&self.key)) {
                    *current = Some(((c, k), acceptor.clone()));
                }
                tracing::info!(cert = %self.cert.display(), "loaded the serving certificate");
                Ok(acceptor)
            }
            (_, Err(e)) => match current.as_ref() {
                Some((_, old)) => {
                    tracing::warn!(error = %e, "kept the previous serving certificate");
                    Ok(old.clone())
                }
                None => Err(e),
            },
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// Route one request.
async fn route(webhook: Arc<Webhook>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok", "text/plain"),
        (&Method::GET, "/readyz") => {
            if webhook.cache().is_synced() {
                text(StatusCode::OK, "ok", "text/plain")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service-account cache has not synced yet",
                    "text/plain",
                )
            }
        }
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            webhook.metrics().render(webhook.cache().len()),
            "text/plain; version=0.0.4",
        ),
        (&Method::POST, "/mutate") => {
            let json_ct = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|ct| ct.starts_with("application/json"));
            if !json_ct {
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "expected Content-Type application/json",
                    "text/plain",
                );
            }
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let answer = crate::review::error(
                        None,
                        400,
                        &format!("failed to read the request body: {e}"),
                    );
                    return text(
                        StatusCode::BAD_REQUEST,
                        serde_json::to_vec(&answer).unwrap_or_default(),
                        "application/json",
                    );
                }
            };
            let (status, answer) = webhook.review(&body).await;
            text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                serde_json::to_vec(&answer).unwrap_or_default(),
                "application/json",
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found", "text/plain"),
    }
}

/// Serve until `shutdown` completes. Each connection gets the current certificate.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<TlsFiles>,
    webhook: Arc<Webhook>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let acceptor = match tls.acceptor() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "no serving certificate; dropped a connection");
                continue;
            }
        };
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let webhook = webhook.clone();
                async move { Ok::<_, std::convert::Infallible>(route(webhook, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new();
            if let Err(e) = conn.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
