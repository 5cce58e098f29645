//! The HTTPS server: `POST /mutate` (AdmissionReview v1), `/healthz`, `/readyz` (only after the
//! service-account cache synced) and `/metrics`, over TLS whose certificate and key are re-read
//! when they change (checked per connection, by modification time and size), so a rotated
//! certificate is served without a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admission::Webhook;

/// Largest AdmissionReview body accepted: kube-apiserver's own request limit (3 MiB), so no
/// review the API server can send is refused, and a larger body (from anything else that reaches
/// the port) is refused before it is parsed.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A client has this long to finish the TLS handshake, then each request's headers, then its
/// body; a slow or silent client is dropped instead of holding a connection open.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. The API server keeps a few keep-alive connections per replica;
/// anything beyond this bound is closed at accept, so connections cannot exhaust memory.
pub const MAX_CONNECTIONS: usize = 256;

/// Reviews decoded and mutated at once. A body of [`MAX_BODY`] may take many times its size once
/// parsed; the bound keeps the worst case within the Deployment's memory limit, and the API
/// server's own timeout (the webhook fails open) covers a review that waits for a permit. A
/// review waiting for its service account gives its permit (and its parsed pod) back until the
/// account is known, so such reviews cannot hold up the others.
pub use crate::admission::MAX_REVIEWS_IN_FLIGHT;

/// The server's bounds; [`Limits::default`] is what `irsa webhook` runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Reviews decoded and mutated at once.
    pub max_reviews_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_reviews_in_flight: MAX_REVIEWS_IN_FLIGHT,
        }
    }
}

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

/// A loaded pair: the acceptor and the serving certificate's `notAfter` (Unix seconds).
#[derive(Clone)]
struct Loaded {
    acceptor: TlsAcceptor,
    not_after: Option<i64>,
}

/// The certificate and key files, re-read when either changes.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Option<((Stamp, Stamp), Loaded)>>,
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

    fn load(&self) -> Result<Loaded, TlsError> {
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
        let not_after = crate::certs::not_after_unix(&cert_pem);
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
        Ok(Loaded {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            not_after,
        })
    }

    /// Seconds from `now` until the `notAfter` of the certificate being served (negative once
    /// it has expired); `None` when none is loaded or its date cannot be read. Exported as a
    /// gauge so that an alert can fire well before it lapses.
    pub fn expires_in(&self, now: SystemTime) -> Option<i64> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let not_after = current.as_ref()?.1.not_after?;
        let now = match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok()?,
            Err(_) => 0,
        };
        Some(not_after.saturating_sub(now))
    }

    /// The acceptor for the next connection: the cached one unless a file changed. A pair that
    /// fails to load while being rewritten keeps the previous one in service.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let stamps = (stamp(&self.cert), stamp(&self.key));
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let (Ok(c), Ok(k)) = &stamps
            && let Some((seen, loaded)) = current.as_ref()
            && *seen == (*c, *k)
        {
            return Ok(loaded.acceptor.clone());
        }
        match (stamps, self.load()) {
            (_, Ok(loaded)) => {
                // Stamps taken after loading could be newer than what was read; the ones from
                // before make a change during the read trigger another load next time.
                if let (Ok(c), Ok(k)) = (stamp(&self.cert), stamp(&self.key)) {
                    *current = Some(((c, k), loaded.clone()));
                }
                tracing::info!(cert = %self.cert.display(), "loaded the serving certificate");
                Ok(loaded.acceptor)
            }
            (_, Err(e)) => match current.as_ref() {
                Some((_, old)) => {
                    tracing::warn!(error = %e, "kept the previous serving certificate");
                    Ok(old.acceptor.clone())
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

fn body_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let answer = crate::review::error(None, status.as_u16(), message);
    text(
        status,
        serde_json::to_vec(&answer).unwrap_or_default(),
        "application/json",
    )
}

/// Route one request.
async fn route(
    webhook: Arc<Webhook>,
    tls: Arc<TlsFiles>,
    reviews: Arc<Semaphore>,
    peer: std::net::IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
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
            webhook
                .metrics()
                .render(webhook.cache().len(), tls.expires_in(SystemTime::now())),
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
            let declared = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_BODY as u64) {
                return body_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the request body is larger than {MAX_BODY} bytes"),
                );
            }
            let read = Limited::new(req.into_body(), MAX_BODY).collect();
            let body = match tokio::time::timeout(CLIENT_TIMEOUT, read).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(e)) => {
                    return body_error(
                        StatusCode::BAD_REQUEST,
                        &format!("failed to read the request body: {e}"),
                    );
                }
                Err(_) => {
                    return body_error(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body did not arrive in time",
                    );
                }
            };
            // A permit while the review decodes, mutates and encodes, none while it waits for
            // a service account; the API server's timeout bounds the wait for one.
            let (status, answer) = webhook.answer(&body, &reviews, peer).await;
            text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                answer,
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
    serve_with(listener, tls, webhook, Limits::default(), shutdown).await
}

/// [`serve`] within other bounds (tests use small ones).
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<TlsFiles>,
    webhook: Arc<Webhook>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let max_connections = limits.max_connections;
    let connections = Arc::new(Semaphore::new(max_connections));
    let reviews = Arc::new(Semaphore::new(limits.max_reviews_in_flight));
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
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "{max_connections} connections open; closed a new one");
            continue;
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
        let reviews = reviews.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let webhook = webhook.clone();
                let reviews = reviews.clone();
                let tls = tls.clone();
                let peer = peer.ip();
                async move {
                    Ok::<_, std::convert::Infallible>(route(webhook, tls, reviews, peer, req).await)
                }
            });
            // Without a timer hyper ignores header_read_timeout.
            let mut conn = hyper::server::conn::http1::Builder::new();
            conn.timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT);
            if let Err(e) = conn.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
