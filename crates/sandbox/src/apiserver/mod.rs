//! A Kubernetes API server for the sandbox, faithful enough that kube-rs (watchers and
//! reflectors included), the Python `kubernetes` client and kubectl work against it unchanged.
//!
//! - [`store`]: objects, one resourceVersion counter, watch history;
//! - [`watch`]: watch streams with bookmarks and `410 Gone`;
//! - [`discovery`], [`resources`]: served types, built-in and CRDs;
//! - [`patch`], [`apply`]: JSON/merge/strategic patches and server-side apply;
//! - [`negotiate`]: full objects, Tables or metadata only, as `Accept` asks;
//! - [`token`]: TokenRequest (signing is the [`TokenIssuer`]'s job);
//! - [`tls`]: CA, serving certificate, kubeconfig, HTTPS loop;
//! - [`faults`]: latency, errors, throttling, dropped watches;
//! - [`admission`]: mutating webhooks called on pod create.
//! - [`requests`]: a bounded record of the requests answered (verb, resource, namespace).
//!
//! ```no_run
//! # async fn run(issuer: std::sync::Arc<dyn irsa_sandbox::token_issuer::TokenIssuer>) -> Result<(), Box<dyn std::error::Error>> {
//! use irsa_sandbox::apiserver::{ApiServer, ApiServerConfig, Tls, serve_tls};
//! let api = ApiServer::new(ApiServerConfig::default(), issuer);
//! let tls = Tls::generate()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("https://{}", listener.local_addr()?);
//! std::fs::write("kubeconfig", tls.kubeconfig(&url, api.token()))?;
//! serve_tls(listener, &tls, api.router(), std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod apply;
pub mod discovery;
pub mod error;
pub mod faults;
mod handlers;
pub mod negotiate;
pub mod patch;
pub mod protobuf;
pub mod requests;
pub mod resources;
pub mod selectors;
pub mod store;
pub mod table;
pub mod tls;
pub mod token;
pub mod util;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use error::ApiError;
pub use faults::{ErrorRule, FaultConfig, Faults};
pub use requests::{RequestLog, RequestRecord};
pub use store::Store;
pub use tls::{Tls, TlsError, serve_http, serve_tls};

use crate::metrics::Counters;
use crate::token_issuer::TokenIssuer;

/// API server settings. `Debug` leaves the token out.
#[derive(Clone)]
pub struct ApiServerConfig {
    /// The bearer token clients must present.
    pub token: String,
    /// Watch events kept for resumption; older versions get `410 Gone`.
    pub watch_history: usize,
    /// How often watches with `allowWatchBookmarks=true` get a bookmark.
    pub bookmark_interval: Duration,
    /// Longest watch (also the default when `timeoutSeconds` is not given).
    pub max_watch_timeout: Duration,
    /// Request counters (service `kubernetes`, action `<verb> <resource>`, outcome HTTP code).
    pub counters: Arc<Counters>,
}

impl std::fmt::Debug for ApiServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerConfig")
            .field("token", &"[redacted]")
            .field("watch_history", &self.watch_history)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("max_watch_timeout", &self.max_watch_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            token: "irsa-sandbox-admin".into(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(30),
            max_watch_timeout: Duration::from_secs(1800),
            counters: Arc::new(Counters::new()),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ApiServerConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) requests: Arc<RequestLog>,
    pub(crate) issuer: Arc<dyn TokenIssuer>,
    pub(crate) admission: Arc<admission::Admission>,
}

/// The API server: shared state behind a cheap clone.
#[derive(Clone)]
pub struct ApiServer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// A server with the system namespaces; tokens are signed by `issuer`.
    pub fn new(config: ApiServerConfig, issuer: Arc<dyn TokenIssuer>) -> Self {
        let store = Arc::new(Store::new(config.watch_history));
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                faults: Arc::new(Faults::default()),
                requests: Arc::new(RequestLog::default()),
                issuer,
                admission: Arc::default(),
            }),
        }
    }

    /// The HTTP application (serve it with [`serve_tls`] or [`serve_http`]).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handlers::dispatch)
            .with_state(self.clone())
    }

    /// The object store, for in-process setup and assertions.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Mutating admission webhooks: where their Services listen.
    pub fn admission(&self) -> &Arc<admission::Admission> {
        &self.inner.admission
    }

    /// Fault injection.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.inner.faults
    }

    /// The record of answered resource requests.
    pub fn requests(&self) -> &Arc<RequestLog> {
        &self.inner.requests
    }

    /// The request counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.inner.config.counters
    }

    /// The bearer token clients must present.
    pub fn token(&self) -> &str {
        &self.inner.config.token
    }

    pub(crate) fn count(&self, action: &str, _verb: &str, code: u16) {
        self.inner
            .config
            .counters
            .inc("kubernetes", action, &code.to_string());
    }
}
