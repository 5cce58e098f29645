//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go does it: the holder
//! renews `spec.renewTime` every `renew_interval`; a candidate takes the Lease over once
//! `renewTime + leaseDurationSeconds` has passed, with an update guarded by the
//! `resourceVersion` so that two candidates never both win. A holder that cannot renew within
//! `renew_deadline` stops being leader before anyone else may take over
//! (`renew_deadline < lease_duration`), so two replicas never write at once. On shutdown the
//! holder releases the Lease so that a successor takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// How the election runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this process leads, as seen by readers.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// Always leading (leader election off).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // Keep the channel open for the process's life.
        std::mem::forget(tx);
        Self(rx)
    }

    /// Whether this process holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until leadership changes.
    pub async fn changed(&mut self) -> bool {
        if self.0.changed().await.is_err() {
            // The elector stopped: not leading any more.
            return false;
        }
        *self.0.borrow_and_update()
    }

    /// A receiver of leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// Whether `lease` is free for `identity` to take at `now`.
fn available(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed.0.as_second() + duration < now.as_second()
}

/// Runs the election until `shutdown` resolves, publishing leadership on the returned
/// [`Leadership`]; releases the Lease when stopping as leader.
pub fn spawn(
    api: Api<Lease>,
    config: LeaseConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let span = tracing::info_span!("lease", lease = %config.name, identity = %config.identity);
    let task = tokio::spawn(tracing::Instrument::instrument(
        run(api, config, tx, shutdown),
        span,
    ));
    (Leadership(rx), task)
}

async fn run(
    api: Api<Lease>,
    config: LeaseConfig,
    tx: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut last_renewed: Option<Instant> = None;
    loop {
        let attempt = try_acquire_or_renew(&api, &config).await;
        let now = Instant::now();
        match attempt {
            Ok(true) => {
                last_renewed = Some(now);
                if !*tx.borrow() {
                    tracing::info!("became leader");
                    let _ = tx.send(true);
                }
            }
            Ok(false) => {
                last_renewed = None;
                if *tx.borrow() {
                    tracing::warn!("lost the lease to another replica");
                    let _ = tx.send(false);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "failed to acquire or renew the lease");
                if last_renewed.is_some_and(|t| now.duration_since(t) >= config.renew_deadline)
                    && *tx.borrow()
                {
                    tracing::warn!("could not renew the lease in time: no longer leader");
                    last_renewed = None;
                    let _ = tx.send(false);
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = sleep_until(now + config.retry_period) => {}
        }
    }
    if *tx.borrow() {
        let _ = tx.send(false);
        if let Err(error) = release(&api, &config).await {
            tracing::warn!(%error, "failed to release the lease");
        } else {
            tracing::info!("released the lease");
        }
    }
}

/// One round: `Ok(true)` when this candidate holds the Lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&config.name).await?;
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds(config.lease_duration)),
                acquire_time: Some(micro_now()),
                renew_time: Some(micro_now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    if !available(&lease, &config.identity, now) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    if !ours {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(micro_now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(seconds(config.lease_duration));
    spec.renew_time = Some(micro_now());
    // The resourceVersion in `lease` makes this a compare-and-swap.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hands the Lease back: no holder, so that the next candidate need not wait for expiry.
async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(micro_now());
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        let now = Timestamp::now().as_second();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(now - renewed_secs_ago).unwrap(),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn availability() {
        let now = Timestamp::now();
        assert!(available(&lease(None, 0, 15), "a", now), "no holder");
        assert!(available(&lease(Some(""), 0, 15), "a", now), "released");
        assert!(available(&lease(Some("a"), 0, 15), "a", now), "ours");
        assert!(!available(&lease(Some("b"), 5, 15), "a", now), "held");
        assert!(available(&lease(Some("b"), 20, 15), "a", now), "expired");
    }
}
