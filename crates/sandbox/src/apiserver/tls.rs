//! The API server's own CA, its serving certificate for loopback, the kubeconfig that trusts
//! them, and the HTTPS accept loop.

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Failures to build TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("failed to generate the {what} certificate: {source}")]
    Generate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// rustls refused the key or certificate.
    #[error("failed to build the TLS server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A CA and a server certificate for 127.0.0.1, ::1 and localhost signed by it.
#[derive(Clone)]
pub struct Tls {
    ca_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Generates a fresh CA and server certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key =
            KeyPair::generate().map_err(|source| TlsError::Generate { what: "CA", source })?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .map_err(|source| TlsError::Generate { what: "CA", source })?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "irsa-sandbox-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|source| TlsError::Generate { what: "CA", source })?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(|source| TlsError::Generate {
            what: "server",
            source,
        })?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])
        .map_err(|source| TlsError::Generate {
            what: "server",
            source,
        })?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| TlsError::Generate {
                what: "server",
                source,
            })?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A rustls server configuration (HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A kubeconfig for `server_url` (`https://127.0.0.1:PORT`) with a bearer token.
    pub fn kubeconfig(&self, server_url: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: irsa-sandbox\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\nusers:\n- name: irsa-sandbox\n  user:\n    token: {token}\ncontexts:\n- name: irsa-sandbox\n  context:\n    cluster: irsa-sandbox\n    user: irsa-sandbox\n    namespace: default\ncurrent-context: irsa-sandbox\n",
            ca = STANDARD.encode(self.ca_pem.as_bytes()),
        )
    }
}

/// Serves `app` over HTTPS on `listener` until `shutdown` completes; open connections
/// (watches included) are closed then.
pub async fn serve_tls(
    listener: TcpListener,
    tls: &Tls,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TlsError> {
    let acceptor = TlsAcceptor::from(tls.server_config()?);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        connections.spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves `app` over plain HTTP (loopback tests and the admin port).
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
