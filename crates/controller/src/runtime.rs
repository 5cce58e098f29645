//! The running controller: three watches feed the [`Index`] (namespaces as metadata only, irsa's
//! own Secrets by label without their data, ServiceAccounts), two kube-runtime controllers
//! reconcile ClusterPullSecrets and PullSecrets on their own events, when an index change
//! affects them ([`crate::affects`]: only the resources that select, name or own the changed
//! object), on a resync (periodic, a watch's re-list, a leader change, [`Handle::resync_all`])
//! and when a credential is due; an optional Lease decides which replica writes; an
//! admin server answers `/metrics`, `/healthz` and `/readyz`.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use irsa_aws::{Clock, Pipeline, TokenRequester};
use irsa_k8s::{ClusterPullSecret, PullSecret};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Controller as KubeController};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::affects::{self, Change, Tracker};
use crate::credentials::CredentialStore;
use crate::health::{Heartbeat, Liveness};
use crate::index::Index;
use crate::lease::{self, Leadership, LeaseConfig};
use crate::metrics::Metrics;
use crate::plan::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, Owner};
use crate::ratelimit::RateLimiter;
use crate::reconcile::{self, Context, ReconcilerConfig};

/// Everything `irsa controller` can be told.
#[derive(Clone)]
pub struct ControllerOptions {
    /// Periodic resync of every resource (no write unless something drifted).
    pub resync: Duration,
    /// Resources reconciled at once, per kind.
    pub concurrency: u16,
    /// Parallel writes within one resource's fan-out.
    pub write_concurrency: usize,
    /// Client-side limit of API requests per second (0: none) and burst.
    pub qps: f64,
    /// Burst of the limit.
    pub burst: u32,
    /// Lifetime requested for TokenRequest tokens.
    pub token_expiration: Duration,
    /// Leader election; `None` runs as the only writer.
    pub lease: Option<LeaseConfig>,
    /// This replica's name in Events (the pod name).
    pub instance: String,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// The controller's own namespace, where it keeps the credential key Secret.
    pub key_namespace: String,
    /// One-namespace mode: watch and write only in this namespace (PullSecrets there, no
    /// namespace watch, no ClusterPullSecrets), for a controller bound by a Role.
    pub watch_namespace: Option<String>,
    /// On shutdown, how long running reconciles may take to finish. A drain cut at this bound
    /// (an API server that hangs on reads) leaves the Lease to expire instead of releasing it,
    /// so that no write of this replica can overlap with a successor's.
    pub drain_timeout: Duration,
    /// Argo CD repository secrets with workload identity in this namespace
    /// (`--argocd-namespace`); `None`: not served. See [`crate::argocd`].
    pub argocd: Option<crate::argocd::ArgoCdOptions>,
}

impl std::fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("resync", &self.resync)
            .field("concurrency", &self.concurrency)
            .field("write_concurrency", &self.write_concurrency)
            .field("qps", &self.qps)
            .field("burst", &self.burst)
            .field("lease", &self.lease)
            .field("instance", &self.instance)
            .field("key_namespace", &self.key_namespace)
            .field("watch_namespace", &self.watch_namespace)
            .field("drain_timeout", &self.drain_timeout)
            .field("argocd", &self.argocd)
            .finish_non_exhaustive()
    }
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            concurrency: 4,
            write_concurrency: 16,
            qps: 100.0,
            burst: 200,
            token_expiration: Duration::from_secs(3600),
            watch_namespace: None,
            lease: None,
            instance: "irsa".to_owned(),
            clock: Arc::new(irsa_aws::SystemClock),
            key_namespace: irsa_k8s::install::DEFAULT_NAMESPACE.to_owned(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            argocd: None,
        }
    }
}

/// The default [`ControllerOptions::drain_timeout`]: with the Lease's renew deadline (10 s) and
/// the admin server's [`ADMIN_DRAIN`], within Kubernetes' default 30 s termination grace period.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// On shutdown, how long the admin server waits for open connections (a scraper's keep-alive
/// connection would hold a graceful shutdown forever).
const ADMIN_DRAIN: Duration = Duration::from_secs(2);

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The admin server failed.
    #[error("the metrics and health server failed: {0}")]
    Admin(#[source] std::io::Error),
}

const NAMESPACES: u8 = 1;
const SECRETS: u8 = 2;
const SERVICE_ACCOUNTS: u8 = 4;
const CLUSTER_PULL_SECRETS: u8 = 8;
const PULL_SECRETS: u8 = 16;
/// The Argo CD reconciler's watches (`--argocd-namespace`): its repository secrets and its
/// service accounts, each named by `/readyz` until it listed (review L4); set at once when off.
const ARGOCD_SECRETS: u8 = 32;
const ARGOCD_SERVICE_ACCOUNTS: u8 = 64;
const ARGOCD: u8 = ARGOCD_SECRETS | ARGOCD_SERVICE_ACCOUNTS;
const INDEX: u8 = NAMESPACES | SECRETS | SERVICE_ACCOUNTS;

/// A quiet watch feed still ticks this often (its heartbeat)…
const FEED_TICK: Duration = Duration::from_secs(5);
/// …so one silent for this long is wedged inside a step.
const FEED_BOUND: Duration = Duration::from_secs(60);
/// No reconcile legitimately runs longer than the resync period, nor than this.
const MIN_RECONCILE_BOUND: Duration = Duration::from_secs(300);
const ALL: u8 = INDEX | CLUSTER_PULL_SECRETS | PULL_SECRETS | ARGOCD;

/// What tests, the demo and the admin server can see of a running controller.
#[derive(Clone)]
pub struct Handle {
    metrics: Arc<Metrics>,
    listed: Arc<AtomicU8>,
    ready: watch::Receiver<bool>,
    leader: watch::Receiver<bool>,
    trigger: Arc<watch::Sender<u64>>,
    index: Arc<RwLock<Index>>,
    liveness: Arc<Liveness>,
    context: Arc<std::sync::OnceLock<std::sync::Weak<Context>>>,
}

impl Handle {
    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether every watch has delivered its first list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until ready (or the controller stopped: `false`).
    pub async fn wait_ready(&self) -> bool {
        let mut rx = self.ready.clone();
        rx.wait_for(|r| *r).await.is_ok()
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// A receiver of leadership changes.
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Reconciles every resource now (as a resync would).
    pub fn resync_all(&self) {
        self.trigger.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// What has stopped making progress (empty: alive); `/healthz` fails while it is not empty.
    pub fn stuck(&self) -> Vec<String> {
        self.liveness.stuck()
    }

    /// How many resources the reconcilers keep state for (what they reported, credential
    /// slots, metric series): those that exist, once deleted ones were purged.
    pub fn tracked_resources(&self) -> usize {
        self.context
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map_or(0, |ctx| ctx.tracked())
    }

    fn waiting_for(&self) -> Vec<&'static str> {
        let listed = self.listed.load(Ordering::Relaxed);
        [
            (NAMESPACES, "namespaces"),
            (SECRETS, "secrets"),
            (SERVICE_ACCOUNTS, "serviceaccounts"),
            (CLUSTER_PULL_SECRETS, "clusterpullsecrets"),
            (PULL_SECRETS, "pullsecrets"),
            (ARGOCD_SECRETS, "argocd repository secrets"),
            (ARGOCD_SERVICE_ACCOUNTS, "argocd service accounts"),
        ]
        .into_iter()
        .filter(|(bit, _)| listed & bit == 0)
        .map(|(_, name)| name)
        .collect()
    }
}

/// The pull-secret controller; see the [module docs](self).
pub struct Controller {
    client: kube::Client,
    pipeline: Pipeline,
    requester: Arc<dyn TokenRequester>,
    options: ControllerOptions,
    handle: Handle,
    ready_tx: watch::Sender<bool>,
    leader_tx: watch::Sender<bool>,
}

impl Controller {
    /// A controller that talks to the cluster through `client`, to AWS through `pipeline`,
    /// and requests service-account tokens through `requester`.
    pub fn new(
        client: kube::Client,
        pipeline: Pipeline,
        requester: Arc<dyn TokenRequester>,
        options: ControllerOptions,
    ) -> Self {
        let (ready_tx, ready) = watch::channel(false);
        let (leader_tx, leader) = watch::channel(false);
        let (trigger, _) = watch::channel(0u64);
        Self {
            client,
            pipeline,
            requester,
            options,
            handle: Handle {
                metrics: Arc::new(Metrics::default()),
                listed: Arc::new(AtomicU8::new(0)),
                ready,
                leader,
                trigger: Arc::new(trigger),
                index: Arc::new(RwLock::new(Index::new())),
                liveness: Arc::new(Liveness::default()),
                context: Arc::new(std::sync::OnceLock::new()),
            },
            ready_tx,
            leader_tx,
        }
    }

    /// A handle on the running controller.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs until `shutdown` resolves, then finishes in-flight reconciliations, releases the
    /// Lease and returns. `admin` serves `/metrics`, `/healthz` and `/readyz`.
    pub async fn run(
        self,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let Controller {
            client,
            pipeline,
            requester,
            options,
            handle,
            ready_tx,
            leader_tx,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let ready_tx = Arc::new(ready_tx);
        let mark = {
            let handle = handle.clone();
            let ready_tx = ready_tx.clone();
            move |bit: u8| {
                let listed = handle.listed.fetch_or(bit, Ordering::Relaxed) | bit;
                tracing::debug!(bit, listed, "watch listed");
                if listed == ALL {
                    handle.metrics.set_ready(true);
                    let _ = ready_tx.send(true);
                }
            }
        };

        let admin_task = match admin {
            Some(listener) => Some(tokio::spawn(serve_admin(
                listener,
                handle.clone(),
                options.clock.clone(),
                stopped(),
            ))),
            None => None,
        };

        // The index.
        let index = handle.index.clone();
        let trigger = handle.trigger.clone();
        let bump = {
            let trigger = trigger.clone();
            move || trigger.send_modify(|g| *g = g.wrapping_add(1))
        };
        // Index changes, mapped to the resources they affect once the controllers' stores exist.
        let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
        let changed = {
            let bump = bump.clone();
            move |change: Change| {
                if change == Change::All {
                    bump();
                } else {
                    let _ = changes_tx.send(change);
                }
            }
        };
        let single = options.watch_namespace.clone();
        if let Some(ns) = &single {
            tracing::info!(
                namespace = %ns,
                "one-namespace mode: serving PullSecrets in {ns} only; ClusterPullSecrets are not served and namespaces are not watched"
            );
            handle.metrics.set_single_namespace(true);
        }
        let ns_stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|m| m.metadata.managed_fields = None);
        // irsa's own secrets as metadata only: labels and the content-hash annotation are all
        // planning needs, and the credentials never enter this process through the watch.
        let secret_stream = watcher(
            scoped::<PartialObjectMeta<Secret>>(&client, single.as_deref()),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        )
        .default_backoff()
        .map(|r| {
            r.map(|event| match event {
                Event::Apply(m) => Event::Apply(own_secret(m)),
                Event::Delete(m) => Event::Delete(own_secret(m)),
                Event::Init => Event::Init,
                Event::InitApply(m) => Event::InitApply(own_secret(m)),
                Event::InitDone => Event::InitDone,
            })
        });
        let sa_stream = watcher(
            scoped::<ServiceAccount>(&client, single.as_deref()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|s| {
            s.metadata.managed_fields = None;
            s.secrets = None;
        });
        let mut tasks = Vec::new();
        if let Some(ns) = &single {
            // The one namespace, as if listed: a Role cannot watch namespaces.
            let meta = kube::api::ObjectMeta {
                name: Some(ns.clone()),
                ..kube::api::ObjectMeta::default()
            };
            index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .reset_namespaces(Index::listed_namespace(&meta));
            mark(NAMESPACES);
        } else {
            tasks.push(tokio::spawn(feed(
                "namespaces",
                handle
                    .liveness
                    .heartbeat("the namespaces watch", FEED_BOUND),
                ns_stream,
                index.clone(),
                |i, m| Tracker(i).apply_namespace(&m.metadata),
                |i, m| Tracker(i).delete_namespace(&m.metadata),
                |m| Index::listed_namespace(&m.metadata),
                |i, all| i.reset_namespaces(all),
                {
                    let mark = mark.clone();
                    move || mark(NAMESPACES)
                },
                changed.clone(),
                stopped(),
            )));
        }
        tasks.push(tokio::spawn(feed(
            "secrets",
            handle.liveness.heartbeat("the secrets watch", FEED_BOUND),
            secret_stream,
            index.clone(),
            |i, s: &Secret| Tracker(i).apply_secret(s),
            |i, s: &Secret| Tracker(i).delete_secret(s),
            |s: Secret| Index::listed_secret(&s),
            |i, all| i.reset_secrets(all),
            {
                let mark = mark.clone();
                move || mark(SECRETS)
            },
            changed.clone(),
            stopped(),
        )));
        tasks.push(tokio::spawn(feed(
            "serviceaccounts",
            handle
                .liveness
                .heartbeat("the serviceaccounts watch", FEED_BOUND),
            sa_stream,
            index.clone(),
            |i, s: &ServiceAccount| Tracker(i).apply_service_account(s),
            |i, s: &ServiceAccount| Tracker(i).delete_service_account(s),
            |s: ServiceAccount| Index::listed_service_account(&s),
            |i, all| i.reset_service_accounts(all),
            {
                let mark = mark.clone();
                move || mark(SERVICE_ACCOUNTS)
            },
            changed.clone(),
            stopped(),
        )));

        // Leadership. The Lease is released only once the reconcilers drained (`release`).
        // `Some(true)`: release the Lease; `Some(false)`: stop without releasing (let it expire).
        let (release, released) = watch::channel(None::<bool>);
        let mut lease_task = None;
        let leadership = match options.lease.clone() {
            Some(config) => {
                let api = Api::namespaced(client.clone(), &config.namespace);
                let bound = 3 * (config.renew_deadline + config.retry_period);
                let heartbeat = handle.liveness.heartbeat("the lease loop", bound);
                let (leadership, task) = lease::spawn(
                    api,
                    config,
                    options.clock.clone(),
                    Some(heartbeat),
                    lease::release_when_drained(released.clone()),
                );
                lease_task = Some(task);
                leadership
            }
            None => Leadership::always(),
        };
        // Stops leading and releases the Lease, after everything that writes has finished
        // (`drained`; otherwise the Lease is left to expire).
        let release_lease = |drained: bool| async move {
            let _ = release.send(Some(drained));
            if let Some(task) = lease_task {
                let _ = task.await;
            }
        };
        {
            let mut rx = leadership.subscribe();
            let metrics = handle.metrics.clone();
            let bump = bump.clone();
            let stop = stopped();
            let _ = leader_tx.send(*rx.borrow());
            metrics.set_leader(*rx.borrow());
            tasks.push(tokio::spawn(async move {
                tokio::pin!(stop);
                loop {
                    tokio::select! {
                        changed = rx.changed() => {
                            if changed.is_err() { break; }
                            let leads = *rx.borrow_and_update();
                            metrics.set_leader(leads);
                            let _ = leader_tx.send(leads);
                            if leads { bump(); }
                        }
                        () = &mut stop => break,
                    }
                }
                let _ = leader_tx.send(false);
            }));
        }

        // Wait for the index's first lists before the first reconcile.
        {
            let mut listed = watch_listed(handle.clone());
            tokio::select! {
                () = &mut listed => {}
                () = stopped() => {
                    for t in tasks { let _ = t.await; }
                    release_lease(true).await;
                    return Ok(());
                }
            }
        }

        let leading = leadership.subscribe();
        // One client-side budget (`--kube-qps`, `--kube-burst`) for every write of the process.
        let limiter = Arc::new(RateLimiter::new(options.qps, options.burst));
        // Argo CD repository secrets: a reconciler of its own, with its own writer under the
        // same leadership and rate limit (see crate::argocd).
        if let Some(argocd) = options.argocd.clone() {
            let writer = crate::writer::Writer::new(
                client.clone(),
                limiter.clone(),
                handle.metrics.clone(),
                leadership.clone(),
                Recorder::new(
                    client.clone(),
                    Reporter {
                        controller: "irsa".to_owned(),
                        instance: Some(options.instance.clone()),
                    },
                ),
            );
            let parts = crate::argocd::Parts {
                client: client.clone(),
                options: argocd,
                writer,
                requester: requester.clone(),
                metrics: handle.metrics.clone(),
                clock: options.clock.clone(),
                token_expiration: options.token_expiration,
                resync: options.resync,
                leadership: leadership.clone(),
                concurrency: options.concurrency,
                listed: Arc::new({
                    let mark = mark.clone();
                    move |watch| {
                        mark(match watch {
                            crate::argocd::Watch::RepositorySecrets => ARGOCD_SECRETS,
                            crate::argocd::Watch::ServiceAccounts => ARGOCD_SERVICE_ACCOUNTS,
                        })
                    }
                }),
            };
            let stop = stopped();
            let stop = futures_util::FutureExt::shared(Box::pin(stop));
            tasks.push(tokio::spawn(crate::argocd::run(
                parts,
                triggers(trigger.subscribe()),
                stop,
                options.drain_timeout,
            )));
        } else {
            mark(ARGOCD);
        }
        let ctx = Arc::new(Context::new(
            client.clone(),
            index.clone(),
            CredentialStore::new(pipeline, handle.metrics.clone()),
            handle.metrics.clone(),
            leadership,
            ReconcilerConfig {
                resync: options.resync,
                write_concurrency: options.write_concurrency,
                token_expiration: options.token_expiration,
                clock: options.clock.clone(),
                qps: options.qps,
                key_namespace: options.key_namespace.clone(),
            },
            limiter,
            requester,
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: "irsa".to_owned(),
                    instance: Some(options.instance.clone()),
                },
            ),
        ));
        let _ = handle.context.set(Arc::downgrade(&ctx));
        // A lost Lease drops the credentials held: a later term starts clean.
        tasks.push(tokio::spawn({
            let ctx = ctx.clone();
            let stop = stopped();
            async move {
                tokio::select! {
                    () = ctx.forget_when_leadership_ends(leading) => {}
                    () = stop => {}
                }
            }
        }));
        let config = controller::Config::default().concurrency(options.concurrency);

        let (cps_refs, cps_affected) = tokio::sync::mpsc::unbounded_channel();
        let (ps_refs, ps_affected) = tokio::sync::mpsc::unbounded_channel();
        let cps = purging(
            Api::<ClusterPullSecret>::all(client.clone()),
            false,
            ctx.clone(),
        )
        .with_config(config.clone());
        let cps_store = cps.store();
        let cps = cps
            .reconcile_all_on(triggers(trigger.subscribe()))
            .reconcile_on(received(cps_affected))
            .graceful_shutdown_on(stopped());
        let ps = purging(
            scoped::<PullSecret>(&client, single.as_deref()),
            true,
            ctx.clone(),
        )
        .with_config(config);
        let ps_store = ps.store();
        let ps = ps
            .reconcile_all_on(triggers(trigger.subscribe()))
            .reconcile_on(received(ps_affected))
            .graceful_shutdown_on(stopped());
        tasks.push(tokio::spawn(map_changes(
            changes_rx,
            cps_store.clone(),
            ps_store.clone(),
            cps_refs,
            ps_refs,
            stopped(),
        )));
        // kube-runtime's `wait_until_ready` wakes only its latest waiter (the controller's own
        // runner), so readiness is polled: each poll of a fresh future sees the memoised state.
        let (cps_ready, ps_ready) = (
            StoreReady::Cluster(cps_store.clone()),
            StoreReady::Namespaced(ps_store.clone()),
        );
        let mut readiness = vec![(StoreReady::Namespaced(ps_store), PULL_SECRETS)];
        if single.is_some() {
            mark(CLUSTER_PULL_SECRETS);
        } else {
            readiness.push((StoreReady::Cluster(cps_store), CLUSTER_PULL_SECRETS));
        }
        for (store_ready, bit) in readiness {
            let mark = mark.clone();
            let mut stop = Box::pin(stopped());
            tasks.push(tokio::spawn(async move {
                loop {
                    if store_ready.ready() {
                        mark(bit);
                        return;
                    }
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(Duration::from_millis(25)) => {}
                    }
                }
            }));
        }
        let reconcile_bound = options.resync.max(MIN_RECONCILE_BOUND);
        let cps_work = handle
            .liveness
            .work("a clusterpullsecrets reconcile", reconcile_bound);
        let ps_work = handle
            .liveness
            .work("a pullsecrets reconcile", reconcile_bound);
        let cps_run = cps
            .run(
                {
                    move |obj, ctx: Arc<Context>| {
                        // Begun as it is dispatched: a delete event handled from now on
                        // reaches this reconcile too.
                        let flight =
                            ctx.begin(&reconcile::owner_of(&*obj), obj.metadata.uid.as_deref());
                        let running = cps_work.start();
                        async move {
                            let result = reconcile::reconcile_cluster(obj, ctx).await;
                            drop(running);
                            drop(flight);
                            result
                        }
                    }
                },
                |obj, error, ctx| reconcile::error_policy(&*obj, error, &ctx),
                ctx.clone(),
            )
            .for_each(|r| async move { log_controller_error("clusterpullsecrets", r) });
        let ps_run = ps
            .run(
                {
                    move |obj, ctx: Arc<Context>| {
                        let flight =
                            ctx.begin(&reconcile::owner_of(&*obj), obj.metadata.uid.as_deref());
                        let running = ps_work.start();
                        async move {
                            let result = reconcile::reconcile_namespaced(obj, ctx).await;
                            drop(running);
                            drop(flight);
                            result
                        }
                    }
                },
                |obj, error, ctx| reconcile::error_policy(&*obj, error, &ctx),
                ctx.clone(),
            )
            .for_each(|r| async move { log_controller_error("pullsecrets", r) });
        tracing::info!("controller started");
        // On shutdown both controllers stop taking work and finish their running reconciles
        // (graceful_shutdown_on), within the drain timeout; only then is the Lease released,
        // so that no write of this replica can overlap with a successor's.
        let bound = options.drain_timeout;
        let drained = if single.is_some() {
            // The ClusterPullSecret controller is never polled: its watch never starts.
            drop(cps_run);
            drain("pullsecrets", ps_run, &ps_ready, stopped(), bound).await
        } else {
            let (c, p) = futures_util::future::join(
                drain("clusterpullsecrets", cps_run, &cps_ready, stopped(), bound),
                drain("pullsecrets", ps_run, &ps_ready, stopped(), bound),
            )
            .await;
            c && p
        };
        if drained {
            tracing::info!("controller stopping: reconcilers drained");
        }
        for t in tasks {
            let _ = t.await;
        }
        release_lease(drained).await;
        let _ = ready_tx.send(false);
        handle.metrics.set_ready(false);
        if let Some(t) = admin_task
            && let Ok(Err(e)) = t.await
        {
            return Err(RunError::Admin(e));
        }
        Ok(())
    }
}

/// A kube-runtime controller over `api` (of a namespaced kind or not) that, on its watch's events, purges what `ctx` keeps
/// for resources that are gone: on a delete (also one whose finalizer never ran: removed by
/// hand, or the resource deleted while no replica led), and after a re-list, every resource of
/// the kind the list no longer holds.
fn purging<K>(api: Api<K>, namespaced: bool, ctx: Arc<Context>) -> KubeController<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = kube::runtime::reflector::store::<K>();
    let reader = store.clone();
    let events = kube::runtime::reflector(writer, watcher(api, watcher::Config::default())).map(
        move |event| {
            match &event {
                Ok(Event::Delete(obj)) => ctx.forget_resource(&reconcile::owner_of(obj)),
                Ok(Event::InitDone) => ctx.retain_resources(|owner| {
                    let (namespace, name) = match owner {
                        Owner::Cluster { name } => (None, name),
                        Owner::Namespaced { namespace, name } => (Some(namespace), name),
                    };
                    let of_kind = namespace.is_some() == namespaced;
                    let mut at = ObjectRef::<K>::new(name);
                    if let Some(ns) = namespace {
                        at = at.within(ns);
                    }
                    !of_kind || reader.get(&at).is_some()
                }),
                _ => {}
            }
            event
        },
    );
    KubeController::for_stream(events.applied_objects(), store)
}

/// An API over every namespace, or over `namespace` alone in one-namespace mode.
fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Logs what the kube-runtime controller streams report; reconcile failures are logged by the
/// error policy already.
fn log_controller_error<T, E: std::fmt::Display, Q: std::fmt::Display>(
    what: &str,
    result: Result<T, controller::Error<E, Q>>,
) {
    match result {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
        Err(controller::Error::QueueError(error)) => tracing::warn!(
            watch = what,
            %error,
            "watch failed (retried with backoff); if the resource is unknown, install the CRDs: \
             irsa install --only crds | kubectl apply --server-side -f -"
        ),
        Err(error) => tracing::debug!(watch = what, %error, "controller event"),
    }
}

/// A Secret of irsa's from its metadata. The type is not in the metadata; irsa creates its
/// secrets as `kubernetes.io/dockerconfigjson` and the type is immutable, so that is what it is
/// (a user's secret of another type labelled as irsa's makes the update fail with 422; the
/// writer then reads it, the index remembers its real type by uid, and it is a conflict).
fn own_secret(m: PartialObjectMeta<Secret>) -> Secret {
    let mut metadata = m.metadata;
    metadata.managed_fields = None;
    Secret {
        metadata,
        type_: Some(crate::plan::DOCKER_CONFIG_JSON_TYPE.to_owned()),
        ..Secret::default()
    }
}

/// The main stores of the two kube-runtime controllers.
enum StoreReady {
    Cluster(Store<ClusterPullSecret>),
    Namespaced(Store<PullSecret>),
}

impl StoreReady {
    fn ready(&self) -> bool {
        use futures_util::FutureExt;
        match self {
            StoreReady::Cluster(s) => s.wait_until_ready().now_or_never().is_some(),
            StoreReady::Namespaced(s) => s.wait_until_ready().now_or_never().is_some(),
        }
    }
}

/// Runs a kube-runtime controller's stream `run` until it ends; once `stop` resolved, for at
/// most `bound` more. `true` when it ended, `false` when it was abandoned at the bound (its
/// running reconciles are cancelled when it is dropped).
///
/// A controller whose store never became ready (its watch failing: the CRDs missing, RBAC)
/// never started a reconcile and is dropped at once: kube-runtime's graceful shutdown would
/// wait for that store forever.
async fn drain(
    what: &'static str,
    run: impl Future<Output = ()>,
    store: &StoreReady,
    stop: impl Future<Output = ()>,
    bound: Duration,
) -> bool {
    tokio::pin!(run);
    tokio::select! {
        () = &mut run => return true,
        () = stop => {}
    }
    if !store.ready() {
        tracing::info!(
            controller = what,
            "stopping: the watch never delivered its first list, so nothing is running"
        );
        return true;
    }
    match tokio::time::timeout(bound, run).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(
                controller = what,
                ?bound,
                "stopping: reconciles still running after the drain timeout are cancelled; \
                 the lease is left to expire rather than released"
            );
            false
        }
    }
}

fn watch_listed(handle: Handle) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        // The index's bits are set by the feed tasks; poll their change through `trigger`.
        let mut rx = handle.trigger.subscribe();
        while handle.listed.load(Ordering::Relaxed) & INDEX != INDEX {
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
        }
    })
}

/// Maps each index change to the resources it affects, against the controllers' stores.
async fn map_changes(
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Change>,
    cluster: Store<ClusterPullSecret>,
    namespaced: Store<PullSecret>,
    cluster_refs: tokio::sync::mpsc::UnboundedSender<ObjectRef<ClusterPullSecret>>,
    namespaced_refs: tokio::sync::mpsc::UnboundedSender<ObjectRef<PullSecret>>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let change = tokio::select! {
            () = &mut stop => break,
            change = changes.recv() => match change {
                Some(c) => c,
                None => break,
            },
        };
        let (c, n) = (cluster.state(), namespaced.state());
        let hit = affects::affected(&change, c.iter().map(|o| &**o), n.iter().map(|o| &**o));
        for r in hit.cluster {
            let _ = cluster_refs.send(r);
        }
        for r in hit.namespaced {
            let _ = namespaced_refs.send(r);
        }
    }
}

fn received<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
}

fn triggers(rx: watch::Receiver<u64>) -> impl Stream<Item = ()> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Feeds one watch into the index until `stop`; `listed` runs after the first complete list.
#[allow(clippy::too_many_arguments)]
async fn feed<K, L, S>(
    what: &'static str,
    heartbeat: Heartbeat,
    stream: S,
    index: Arc<RwLock<Index>>,
    apply: impl Fn(&mut Index, &K) -> Option<Change>,
    delete: impl Fn(&mut Index, &K) -> Option<Change>,
    // A listed object, reduced at once to its index entry: a (re-)list never holds all its
    // objects in full (their labels and annotations were the controller's peak heap).
    listed_entry: impl Fn(K) -> Option<L>,
    reset: impl Fn(&mut Index, Vec<L>),
    listed: impl Fn(),
    changed: impl Fn(Change),
    stop: impl Future<Output = ()>,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    tokio::pin!(stream);
    tokio::pin!(stop);
    let mut buffer: Vec<L> = Vec::new();
    let mut first = true;
    // Ticks while the watch is quiet, so that an idle feed still shows it turns.
    let mut tick = tokio::time::interval(FEED_TICK);
    loop {
        heartbeat.beat();
        let next = tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => continue,
            next = stream.next() => next,
        };
        let Some(event) = next else { break };
        let event = match event {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(watch = what, %error, "watch failed; retrying with backoff");
                continue;
            }
        };
        let event = match event {
            Event::Init => {
                buffer.clear();
                continue;
            }
            Event::InitApply(o) => {
                buffer.extend(listed_entry(o));
                continue;
            }
            other => other,
        };
        let mut index = index.write().unwrap_or_else(|p| p.into_inner());
        let did = match event {
            Event::Init | Event::InitApply(_) => None,
            Event::InitDone => {
                reset(&mut index, std::mem::take(&mut buffer));
                drop(index);
                if first {
                    first = false;
                    tracing::info!(watch = what, "listed");
                    listed();
                }
                // A re-list may have changed anything.
                changed(Change::All);
                continue;
            }
            Event::Apply(o) => apply(&mut index, &o),
            Event::Delete(o) => delete(&mut index, &o),
        };
        drop(index);
        if let Some(change) = did {
            changed(change);
        }
    }
}

use kube::runtime::watcher::watcher;

async fn serve_admin(
    listener: TcpListener,
    handle: Handle,
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let metrics = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            let clock = clock.clone();
            async move {
                let now = clock
                    .now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.metrics.render(now),
                )
            }
        }
    };
    let readyz = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            async move {
                if handle.is_ready() {
                    (StatusCode::OK, "ready\n".to_owned())
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "waiting for the first list of: {}\n",
                            handle.waiting_for().join(", ")
                        ),
                    )
                }
            }
        }
    };
    let healthz = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            async move { healthz_answer(&handle.stuck()) }
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    // Open connections get `ADMIN_DRAIN` after `stop`: a scraper's keep-alive connection
    // must not hold the shutdown.
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let server = std::future::IntoFuture::into_future(
        axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.await;
            let _ = stopping_tx.send(());
        }),
    );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        _ = stopping => {}
    }
    match tokio::time::timeout(ADMIN_DRAIN, server).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// `/healthz`: 200 while every loop makes progress, 503 naming what is stuck otherwise.
fn healthz_answer(stuck: &[String]) -> (axum::http::StatusCode, String) {
    if stuck.is_empty() {
        (axum::http::StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("stuck: {}\n", stuck.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn handle() -> Handle {
        let (_, ready) = watch::channel(false);
        let (_, leader) = watch::channel(false);
        let (trigger, _) = watch::channel(0u64);
        Handle {
            metrics: Arc::new(Metrics::default()),
            listed: Arc::new(AtomicU8::new(0)),
            ready,
            leader,
            trigger: Arc::new(trigger),
            index: Arc::new(RwLock::new(Index::new())),
            liveness: Arc::new(Liveness::default()),
            context: Arc::new(std::sync::OnceLock::new()),
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn healthz_fails_naming_what_made_no_progress() {
        let handle = handle();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_admin(
            listener,
            handle.clone(),
            Arc::new(irsa_aws::SystemClock),
            async move {
                let _ = stopped.await;
            },
        ));
        // Every part within its bound: alive, although nothing runs (idle steady state).
        let feed = handle
            .liveness
            .heartbeat("the namespaces watch", Duration::from_secs(3600));
        let reconciles = handle
            .liveness
            .work("a clusterpullsecrets reconcile", Duration::ZERO);
        feed.beat();
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));

        // A reconcile that outlasts its bound (zero here) fails the probe, named.
        let running = reconciles.start();
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("a clusterpullsecrets reconcile has run for"),
            "{body}"
        );
        drop(running);
        assert_eq!(get(addr, "/healthz").await.0, 200, "it finished");

        // A loop whose heartbeat went quiet past its bound, named.
        let _lease = handle.liveness.heartbeat("the lease loop", Duration::ZERO);
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("the lease loop made no progress"), "{body}");
        assert!(!body.contains("namespaces"), "only what is stuck: {body}");
        let _ = stop.send(());
        server.await.expect("join").expect("served");
    }

    /// A client whose every request is refused with 403 (the CRDs' watch never lists).
    fn refusing_client() -> kube::Client {
        let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
            let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403});
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(403)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.to_string().into_bytes()))
                    .unwrap(),
            )
        });
        kube::Client::new(svc, "default")
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_whose_watch_never_listed_stops_at_once() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let controller = |stop| {
            let c = KubeController::new(
                Api::<PullSecret>::all(refusing_client()),
                watcher::Config::default(),
            );
            let store = StoreReady::Namespaced(c.store());
            let run = c
                .graceful_shutdown_on(stop)
                .run(
                    |_, _: Arc<()>| async {
                        Ok::<_, kube::Error>(controller::Action::await_change())
                    },
                    |_, _, _| controller::Action::await_change(),
                    Arc::new(()),
                )
                .for_each(|_| async {});
            (store, run)
        };
        let _ = stop_tx.send(true);
        // The cause: kube-runtime's graceful shutdown waits for a store that never fills.
        let (_, run) = controller(stopped());
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), run)
                .await
                .is_err(),
            "kube-runtime stopped by itself: the drain's shortcut is not needed"
        );
        // The fix: nothing ran, so nothing is waited for.
        let (store, run) = controller(stopped());
        let started = tokio::time::Instant::now();
        let drained = drain(
            "pullsecrets",
            run,
            &store,
            stopped(),
            Duration::from_secs(15),
        )
        .await;
        assert!(drained, "nothing was cut");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_hangs_is_cut_at_the_drain_timeout() {
        let store = {
            let (reader, mut writer) = kube::runtime::reflector::store::<PullSecret>();
            writer.apply_watcher_event(&Event::Init);
            writer.apply_watcher_event(&Event::InitDone);
            StoreReady::Namespaced(reader)
        };
        let bound = Duration::from_secs(15);
        let started = tokio::time::Instant::now();
        let drained = drain(
            "pullsecrets",
            std::future::pending::<()>(),
            &store,
            std::future::ready(()),
            bound,
        )
        .await;
        assert!(
            !drained,
            "reported as cut, so that the Lease is not released"
        );
        assert_eq!(started.elapsed(), bound);
        // A run that ends in time is drained.
        let drained = drain(
            "pullsecrets",
            tokio::time::sleep(Duration::from_secs(1)),
            &store,
            std::future::ready(()),
            bound,
        )
        .await;
        assert!(drained);
    }
}
