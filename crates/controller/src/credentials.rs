//! Registry credentials shared by every resource that asks for the same (identity, registries):
//! one upstream exchange per refresh however many resources and namespaces use it. The
//! controller decides when to refresh (the resource's `refresh` fraction of the credential's
//! real lifetime), so the pipeline is asked for fresh tokens only then; a failed refresh keeps
//! the last good credential and backs off.
//!
//! What the upstream says is checked before it replaces anything ([`judge_answer`]): an absurd
//! expiry fails the refresh (the pipeline refuses it); an answer that is expired already (moto's
//! ECR always says 2015, a skewed clock can) fails the refresh while a still-valid credential is
//! held, and is served with a [`CLAMPED_LIFETIME_SECS`] lifetime when none is. Exchanges of one
//! credential are at least [`MIN_EXCHANGE_INTERVAL_SECS`] apart after a success and a backoff
//! apart after a failure, whatever the number of events asking. The schedule, the backoff, the
//! interval and the judgement are `irsa_core::refresh` and `irsa_core::lifetime`; the last good
//! credential, the failures and the backoff are `irsa_aws::last_good`: the same policy as
//! irsa-aws's cache, and so is the mechanism (`irsa_aws::flight`): one exchange per key at a
//! time, run as a task of its own that fills the slot whether or not anyone waits.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use irsa_aws::flight::{Flights, State};
use irsa_aws::last_good::{At, Decision, LastGood};
use irsa_aws::{
    Identity, Pipeline, PipelineError, RegistryCredential, RegistryTarget, TokenRequester,
};
use irsa_core::docker_config::DockerConfig;
pub use irsa_core::lifetime::CLAMPED_LIFETIME_SECS;
use irsa_core::lifetime::{Use, judge_answer as judge_expiry};
pub use irsa_core::refresh::MIN_EXCHANGE_INTERVAL_SECS;
use irsa_core::refresh::{Jitter, REFRESH_JITTER, failure_backoff, next_refresh};
use irsa_core::secret::SecretString;
use irsa_core::time::rfc3339;
use irsa_core::token_request::{BoxFuture, TokenSourceError};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Lifetime assumed for a credential whose registry gives no expiry (ECR's is 12 hours).
pub const ASSUMED_LIFETIME_SECS: i64 = 12 * 3600;

/// Longest one exchange (service-account TokenRequest, STS, registry) may take before it
/// counts as a failed refresh, backed off and reported: callers sharing the credential wait
/// for it at most this long, and never when they hold a credential that is still valid.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential: the rendered registries and when it was obtained and expires (Unix seconds).
/// `Debug` never shows the passwords (`DockerConfig` redacts them).
#[derive(Debug, Clone)]
pub struct Credential {
    /// The registries' usernames and passwords.
    pub config: DockerConfig,
    /// When it was obtained.
    pub issued_at: i64,
    /// When the first of its tokens expires.
    pub expires_at: i64,
    /// This credential's jitter sample in `[0, 1)`, fixed so that every resource and every
    /// resync computes the same refresh time.
    pub jitter: f64,
}

impl Credential {
    /// Builds a credential from the pipeline's answer.
    pub fn from_registry_credentials(creds: &[RegistryCredential], now: i64) -> Self {
        let mut config = DockerConfig::new();
        for c in creds {
            config.insert(c.registry.clone(), c.username.clone(), c.password.clone());
        }
        let expires_at = creds
            .iter()
            .filter_map(|c| c.expires_at)
            .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .min()
            .unwrap_or(now.saturating_add(ASSUMED_LIFETIME_SECS));
        Self {
            config,
            issued_at: now,
            expires_at,
            jitter: fastrand::f64(),
        }
    }

    /// When a resource with refresh fraction `fraction` should refresh it.
    pub fn refresh_at(&self, fraction: f64) -> i64 {
        next_refresh(
            self.issued_at,
            self.expires_at,
            fraction,
            Jitter::Around(REFRESH_JITTER),
            self.jitter,
        )
    }
}

/// What [`CredentialStore::get`] found.
#[derive(Debug, Clone)]
pub enum Obtained {
    /// A credential obtained by this call.
    Refreshed(Arc<Credential>),
    /// A credential that is not due for refresh yet.
    Current(Arc<Credential>),
    /// The refresh failed (now or recently, and is backing off).
    Failed {
        /// Why, free of secrets.
        error: String,
        /// The last good credential, if one is held (possibly expired).
        last_good: Option<Arc<Credential>>,
        /// When to try again.
        retry_in: Duration,
        /// Whether this call asked upstream (false: still backing off from an earlier failure).
        attempted: bool,
    },
}

/// One key's state: irsa's one policy ([`LastGood`]: the last good credential, the failures,
/// the backoff, the last error), and the minimum interval between exchanges, which is this
/// store's own rule.
#[derive(Default)]
struct Slot {
    policy: LastGood<Arc<Credential>, String>,
    /// When the last successful exchange began: wall clock (Unix seconds) and monotonic. A
    /// failed one is spaced by its backoff instead, and one that never completed (its task
    /// dropped) by nothing.
    last_exchange: Option<(i64, Instant)>,
}

impl State for Slot {
    fn spent(&self) -> bool {
        self.policy.held().is_none()
    }
}

/// What an exchange answers: registry credentials, unless it failed or timed out.
type Answer = Result<Result<Vec<RegistryCredential>, PipelineError>, tokio::time::error::Elapsed>;

/// What a call at `now` gets without an exchange, if anything: the held credential when it is
/// not due (or, while another caller exchanges, still valid), the last failure while backing
/// off, what is held within the minimum interval. `None`: an exchange is due, or in flight
/// (`in_flight`) and nothing valid is held: await it.
fn decide(slot: &Slot, fraction: f64, now: i64, in_flight: bool) -> Option<Obtained> {
    let policy = &slot.policy;
    let fresh = |c: &Arc<Credential>| now < c.refresh_at(fraction);
    match policy.decide(At::unix(now), in_flight, fresh, |c| now < c.expires_at) {
        Decision::Fresh(c) | Decision::Refreshing(c) => return Some(Obtained::Current(c.clone())),
        // Backing off: the last good credential (if still valid) is served by the caller, and
        // the failure reported.
        Decision::BackingOff {
            error, left, held, ..
        } => {
            return Some(Obtained::Failed {
                error: error.clone(),
                last_good: held.cloned(),
                retry_in: whole_seconds_up(left),
                attempted: false,
            });
        }
        Decision::Exchange if in_flight => return None,
        Decision::Exchange => {}
    }
    let mono = Instant::now();
    if exchange_allowed(slot.last_exchange, now, mono) {
        return None;
    }
    // Due again within the minimum interval (an upstream that hands out short-lived
    // credentials, or clocks that disagree): what is held is what there is.
    let wait =
        MIN_EXCHANGE_INTERVAL_SECS - now.saturating_sub(slot.last_exchange.map_or(now, |(w, _)| w));
    let retry_in = Duration::from_secs(wait.clamp(1, MIN_EXCHANGE_INTERVAL_SECS) as u64);
    Some(match policy.held() {
        Some(c) if now < c.expires_at => Obtained::Current(c.clone()),
        _ => Obtained::Failed {
            error: policy.last_error().cloned().unwrap_or_else(|| {
                format!(
                    "the last credential obtained is no longer valid and exchanges are \
                     at least {MIN_EXCHANGE_INTERVAL_SECS} s apart"
                )
            }),
            last_good: policy.held().cloned(),
            retry_in,
            attempted: false,
        },
    })
}

/// `d` rounded up to whole seconds, at least one: a requeue after it finds the backoff over.
fn whole_seconds_up(d: Duration) -> Duration {
    Duration::from_secs((d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
}

/// Whether the answer `fresh` obtained at `now` may be used, given the credential held.
///
/// - valid (expires after `now`): used;
/// - expired already while `held` is still valid: refused (the caller keeps `held`, backs off
///   and reports the error);
/// - expired already and nothing valid held: used with its expiry clamped to
///   `now + CLAMPED_LIFETIME_SECS`, so that peers such as moto still work.
pub fn judge_answer(
    mut fresh: Credential,
    held: Option<&Credential>,
    now: i64,
) -> Result<Credential, String> {
    match judge_expiry(
        "registry",
        fresh.expires_at,
        held.map(|h| h.expires_at),
        now,
    ) {
        Ok(Use::AsIs) => Ok(fresh),
        Err(refused) => Err(refused.to_string()),
        Ok(Use::Clamped(until)) => {
            tracing::warn!(
                claimed_expiry = %rfc3339(fresh.expires_at),
                serving_for_s = CLAMPED_LIFETIME_SECS,
                "the registry answered with an already-expired credential and no valid one is \
                 held; serving it briefly and asking again soon"
            );
            fresh.expires_at = until;
            Ok(fresh)
        }
    }
}

/// Whether a new exchange may start at (`now`, `mono`) after one at `last`.
fn exchange_allowed(last: Option<(i64, Instant)>, now: i64, mono: Instant) -> bool {
    let Some((wall, at)) = last else { return true };
    irsa_core::refresh::exchange_allowed(now.saturating_sub(wall), mono.duration_since(at))
}

/// Longest a service-account TokenRequest may take: the API call is made inside an exchange
/// that callers sharing the credential wait for, so a hanging one must end (well within
/// [`EXCHANGE_TIMEOUT`], leaving time for STS and the registry).
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`TokenRequester`] whose requests fail after a timeout instead of hanging.
pub struct BoundedTokenRequester {
    inner: Arc<dyn TokenRequester>,
    timeout: Duration,
}

impl BoundedTokenRequester {
    /// `inner`, each request bounded by `timeout`.
    pub fn new(inner: Arc<dyn TokenRequester>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl TokenRequester for BoundedTokenRequester {
    fn request_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        audiences: &'a [String],
        expiration: Duration,
    ) -> BoxFuture<'a, Result<SecretString, TokenSourceError>> {
        Box::pin(async move {
            let request =
                self.inner
                    .request_token(namespace, service_account, audiences, expiration);
            match tokio::time::timeout(self.timeout, request).await {
                Ok(answer) => answer,
                Err(_) => Err(TokenSourceError::TokenRequest {
                    namespace: namespace.to_owned(),
                    service_account: service_account.to_owned(),
                    reason: format!(
                        "the API server did not answer within {}s (retried)",
                        self.timeout.as_secs()
                    ),
                }),
            }
        })
    }
}

/// See the [module docs](self).
pub struct CredentialStore {
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    /// Single-flight slots; ending the term ([`CredentialStore::clear`] until
    /// [`CredentialStore::resume`]) keeps a reconcile begun in the term that ended from filling
    /// the store again, as [`CredentialStore::retain`] does for keys no resource uses.
    flights: Flights<Slot, Obtained>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore").finish_non_exhaustive()
    }
}

/// The store key of (identity, registries, and for Chainguard the identity id and the method):
/// never a token.
pub fn key(identity: &Identity, targets: &[RegistryTarget]) -> String {
    let mut hosts: Vec<String> = targets
        .iter()
        .map(|t| match &t.chainguard_identity {
            Some(id) => format!("{}#{id}#{}", t.host, t.chainguard_method.as_str()),
            None => t.host.clone(),
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    format!("{}\u{1f}{}", identity.cache_key(), hosts.join(","))
}

impl CredentialStore {
    /// A store over `pipeline`.
    pub fn new(pipeline: Pipeline, metrics: Arc<Metrics>) -> Self {
        Self {
            pipeline,
            metrics,
            flights: Flights::new(usize::MAX),
        }
    }

    /// Whether the store was cleared and not resumed since: what is obtained is not kept.
    pub fn ended(&self) -> bool {
        self.flights.ended()
    }

    /// A new term: the store keeps what is obtained again.
    pub fn resume(&self) {
        self.flights.resume();
    }

    /// Whether a credential is held for `key` (never waits for an exchange in flight).
    pub async fn holds(&self, key: &str) -> bool {
        self.flights
            .peek(key, |slot| slot.policy.held().is_some())
            .unwrap_or(false)
    }

    /// Installs a credential recovered from a written Secret (after a restart or a leader
    /// change) unless one is held already.
    pub async fn adopt(&self, key: &str, credential: Credential) {
        self.flights.update(key, |slot| {
            slot.policy.adopt(Arc::new(credential));
        });
    }

    /// The credential for (identity, targets), refreshed when `now()` (wall-clock Unix seconds)
    /// is past its refresh point for `fraction`. Concurrent callers for one key share one
    /// upstream exchange: while it runs, a caller whose credential is still valid gets that one
    /// at once, the others wait for the exchange, which is bounded by [`EXCHANGE_TIMEOUT`] and
    /// completes into the store even if every caller gave up.
    pub async fn get(
        &self,
        key: &str,
        identity: &Identity,
        targets: &[RegistryTarget],
        fraction: f64,
        now: &(dyn Fn() -> i64 + Send + Sync),
    ) -> Obtained {
        let (asked, since) = (now(), Instant::now());
        let from_slot = |slot: &mut Slot, in_flight: bool| decide(slot, fraction, asked, in_flight);
        // The exchange counts towards the minimum interval once it completed (`complete`):
        // one its runtime dropped midway (shutting down) obtained nothing and must not hold
        // back the next attempt.
        let start = |_: &mut Slot| {
            self.metrics.exchanged();
            let (pipeline, identity) = (self.pipeline.clone(), identity.clone());
            let targets = targets.to_vec();
            async move {
                let exchange = pipeline.fresh_registry_credentials(&identity, &targets);
                tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await
            }
        };
        let complete = move |slot: &mut Slot, answer| complete(slot, answer, asked, since);
        match self.flights.ask(key, from_slot, start, complete).await {
            // Joined another caller's exchange: obtained nothing, asked nothing upstream.
            (Ok(Obtained::Refreshed(c)), true) => Obtained::Current(c),
            // No outcome (the runtime dropped the exchange): the slot is as it was and not in
            // flight, so the next call exchanges afresh.
            (Err(ended), joined) => Obtained::Failed {
                error: ended.to_string(),
                last_good: self
                    .flights
                    .peek(key, |s| s.policy.held().cloned())
                    .flatten(),
                retry_in: Duration::from_secs(1),
                attempted: !joined,
            },
            (Ok(mut obtained), joined) => {
                if let Obtained::Failed { attempted, .. } = &mut obtained {
                    *attempted &= !joined;
                }
                obtained
            }
        }
    }

    /// Forgets every credential (and its backoff): this replica stopped leading, and a later
    /// term starts from nothing rather than from what was held while another replica led (a
    /// credential the other leader may have rotated, a backoff that is no longer true). An
    /// exchange in flight finishes into a slot that is no longer in the store, and until
    /// [`Self::resume`] nothing obtained is kept. The pipeline's caches (STS credentials of
    /// every role, registry tokens) are dropped too.
    pub fn clear(&self) {
        self.flights.clear(true);
        self.pipeline.clear();
    }

    /// Keeps the credentials of the keys in `in_use` (those of live resources) only: the others
    /// are forgotten, and a reconcile still running for a deleted resource leaves no slot behind.
    /// `generation` numbers the sets as the caller took them; a set older than one already
    /// handed over changes nothing.
    pub fn retain(&self, generation: u64, in_use: std::collections::HashSet<String>) {
        self.flights.retain(generation, in_use);
    }
}

/// What an exchange asked for at `asked` (wall clock; `since` monotonic) leaves in `slot`
/// (`None`: it panicked).
fn complete(slot: &mut Slot, answer: Option<Answer>, asked: i64, since: Instant) -> Obtained {
    // Judged when it arrived (the caller's clock moved on by what the exchange took); issued
    // when it was asked for, so that its refresh point is never late.
    let took = i64::try_from(since.elapsed().as_secs()).unwrap_or(i64::MAX);
    let answered = asked.saturating_add(took);
    let answer = match answer {
        Some(Ok(Ok(creds))) => judge_answer(
            Credential::from_registry_credentials(&creds, asked),
            slot.policy.held().map(|c| &**c),
            answered,
        ),
        Some(Ok(Err(e))) => Err(e.to_string()),
        Some(Err(_)) => Err(format!(
            "the exchange for registry credentials did not finish within {}s (service-account \
             token, STS and registry requests together)",
            EXCHANGE_TIMEOUT.as_secs()
        )),
        None => Err(
            "the exchange for registry credentials failed unexpectedly (a bug: the \
                     controller's log has the panic)"
                .to_owned(),
        ),
    };
    match answer {
        Ok(c) => {
            let c = Arc::new(c);
            slot.policy.succeeded(c.clone());
            // The next exchange is at least the minimum interval after this one began.
            slot.last_exchange = Some((asked, since));
            Obtained::Refreshed(c)
        }
        Err(error) => {
            let mut retry_in = Duration::ZERO;
            let backoff = |failures| {
                // Whole seconds, as the wall clock counts them.
                let wait = failure_backoff(failures, fastrand::f64()).max(Duration::from_secs(1));
                retry_in = Duration::from_secs(wait.as_secs());
                retry_in
            };
            // What is held is reported as the last good one, valid or not: the caller serves
            // it only while it is valid.
            slot.policy
                .failed(At::unix(answered), error.clone(), backoff, |_| true);
            // A failure is spaced by its backoff, not by the success interval.
            slot.last_exchange = None;
            Obtained::Failed {
                error,
                last_good: slot.policy.held().cloned(),
                retry_in,
                attempted: true,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use irsa_aws::provider::{FetchContext, ProviderError};
    use irsa_aws::sts::CredentialExchange;
    use irsa_aws::{AwsCredentials, BoxFuture, PipelineOptions, Providers, StsError};
    use irsa_core::secret::SecretString;
    use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
    use std::time::SystemTime;

    pub(crate) const NOW: i64 = 1_795_000_000;
    const MOTO_2015: i64 = 1_420_070_400;

    struct Sts;
    impl CredentialExchange for Sts {
        fn credentials<'a>(
            &'a self,
            _: &'a Identity,
        ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async {
                Ok(AwsCredentials {
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: SecretString::from("s"),
                    session_token: None,
                    expires_at: None,
                })
            })
        }
    }

    /// An ECR double whose answers expire at `expires_at` (Unix seconds; 0 = fail), counting calls.
    #[derive(Default)]
    pub(crate) struct Ecr {
        expires_at: AtomicI64,
        calls: AtomicU32,
    }
    impl irsa_aws::RegistryTokenProvider for Ecr {
        fn fetch<'a>(
            &'a self,
            _: &'a FetchContext,
            targets: &'a [RegistryTarget],
        ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let at = self.expires_at.load(Ordering::SeqCst);
                if at == 0 {
                    return Err(ProviderError::Ecr(
                        irsa_aws::ecr::EcrError::MalformedToken {
                            registry: targets[0].host.clone(),
                            reason: "ecr is down".into(),
                        },
                    ));
                }
                Ok(targets
                    .iter()
                    .map(|t| RegistryCredential {
                        registry: t.host.clone(),
                        username: "AWS".into(),
                        password: SecretString::new(format!("password-{n}")),
                        expires_at: Some(UNIX_EPOCH + Duration::from_secs(at as u64)),
                    })
                    .collect())
            })
        }
    }

    /// An STS double whose credentials last an hour past [`NOW`], counting calls.
    #[derive(Default)]
    struct CountingSts {
        calls: AtomicU32,
    }
    impl CredentialExchange for CountingSts {
        fn credentials<'a>(
            &'a self,
            _: &'a Identity,
        ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Ok(AwsCredentials {
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: SecretString::from("s"),
                    session_token: None,
                    expires_at: Some(UNIX_EPOCH + Duration::from_secs(NOW as u64 + 3600)),
                })
            })
        }
    }

    #[tokio::test]
    async fn clearing_the_store_drops_the_sts_credentials_too() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let sts = Arc::new(CountingSts::default());
        let providers = Providers {
            ecr: ecr.clone(),
            ecr_public: ecr.clone(),
            chainguard: ecr,
        };
        let options = PipelineOptions {
            clock: Arc::new(irsa_aws::ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW as u64),
            )),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::with_components(&options, sts.clone(), providers).unwrap();
        let s = CredentialStore::new(pipeline, Arc::new(Metrics::default()));
        assert!(matches!(get(&s, NOW).await, Obtained::Refreshed(_)));
        s.clear();
        assert!(matches!(get(&s, NOW).await, Obtained::Refreshed(_)));
        assert_eq!(
            sts.calls.load(Ordering::SeqCst),
            2,
            "STS answer kept across a clear"
        );
    }

    #[tokio::test]
    async fn a_cleared_store_takes_nothing_in_until_the_next_term() {
        let s = store(Arc::new(Ecr::default()));
        let k = key(&identity(), &targets());
        let held = || Credential {
            config: irsa_core::docker_config::DockerConfig::new(),
            issued_at: NOW,
            expires_at: NOW + 3600,
            jitter: 0.5,
        };
        // A reconcile begun before leadership ended adopts (or exchanges) after the clear.
        s.clear();
        s.adopt(&k, held()).await;
        assert!(!s.holds(&k).await, "refilled after the term ended");
        // The next term keeps what it obtains.
        s.resume();
        s.adopt(&k, held()).await;
        assert!(s.holds(&k).await);
    }

    pub(crate) fn store(ecr: Arc<Ecr>) -> CredentialStore {
        let providers = Providers {
            ecr: ecr.clone(),
            ecr_public: ecr.clone(),
            chainguard: ecr,
        };
        let options = PipelineOptions {
            clock: Arc::new(irsa_aws::ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW as u64),
            )),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::with_components(&options, Arc::new(Sts), providers).unwrap();
        CredentialStore::new(pipeline, Arc::new(Metrics::default()))
    }

    pub(crate) fn identity() -> Identity {
        Identity::Ambient {
            chained_role: None,
            session_duration: None,
        }
    }

    pub(crate) fn targets() -> Vec<RegistryTarget> {
        vec![RegistryTarget::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com", None).unwrap()]
    }

    #[test]
    fn the_chainguard_method_is_part_of_the_key() {
        // An identity set up for one method must fail by the other, not borrow its credential.
        let chainguard = |method| {
            let mut t = RegistryTarget::parse("cgr.dev", Some("org/id")).unwrap();
            t.chainguard_method = method;
            vec![t]
        };
        assert_ne!(
            key(
                &identity(),
                &chainguard(irsa_aws::ChainguardMethod::GetCallerIdentity)
            ),
            key(
                &identity(),
                &chainguard(irsa_aws::ChainguardMethod::WebIdentityToken)
            ),
        );
    }

    async fn get(s: &CredentialStore, now: i64) -> Obtained {
        let t = targets();
        s.get(&key(&identity(), &t), &identity(), &t, 0.5, &move || now)
            .await
    }

    fn password(c: &Credential) -> String {
        let auth = c
            .config
            .get("123456789012.dkr.ecr.us-east-1.amazonaws.com")
            .unwrap();
        auth.password.expose().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_exchange() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let s = store(ecr.clone());
        let answers = futures_util::future::join_all((0..50).map(|_| get(&s, NOW))).await;
        assert_eq!(
            ecr.calls.load(Ordering::SeqCst),
            1,
            "one exchange for 50 callers"
        );
        let refreshed = answers
            .iter()
            .filter(|a| matches!(a, Obtained::Refreshed(_)))
            .count();
        assert_eq!(
            refreshed, 1,
            "the caller that exchanged says so, the others joined"
        );
        for a in &answers {
            let (Obtained::Refreshed(c) | Obtained::Current(c)) = a else {
                panic!("{a:?}")
            };
            assert_eq!(password(c), "password-1");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_good_credential_outlives_an_outage_and_expiry_drives_the_refresh() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let s = store(ecr.clone());
        assert!(matches!(get(&s, NOW).await, Obtained::Refreshed(_)));
        // Before its refresh point (half its life, jittered by 10 %): no exchange.
        assert!(matches!(get(&s, NOW + 1500).await, Obtained::Current(_)));
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 1);
        // Past it, the registry is down: each failure keeps the last good credential and
        // backs off for longer (jittered doubling), with no exchange meanwhile.
        ecr.expires_at.store(0, Ordering::SeqCst);
        let mut now = NOW + 2000;
        let mut waits = Vec::new();
        for attempt in 2..=4 {
            let Obtained::Failed {
                last_good: Some(kept),
                retry_in,
                attempted: true,
                ..
            } = get(&s, now).await
            else {
                panic!("a failed refresh keeping the last good credential")
            };
            assert_eq!(password(&kept), "password-1");
            assert_eq!(ecr.calls.load(Ordering::SeqCst), attempt);
            let Obtained::Failed {
                attempted: false, ..
            } = get(&s, now).await
            else {
                panic!("backing off")
            };
            assert_eq!(ecr.calls.load(Ordering::SeqCst), attempt, "no exchange");
            waits.push(retry_in.as_secs());
            now += i64::try_from(retry_in.as_secs()).unwrap();
        }
        assert!(
            waits.windows(2).all(|w| w[1] > w[0]),
            "the backoff grows: {waits:?}"
        );
        // The registry is back: the next exchange after the backoff replaces it.
        ecr.expires_at.store(NOW + 7200, Ordering::SeqCst);
        let Obtained::Refreshed(new) = get(&s, now).await else {
            panic!("refreshed after the backoff")
        };
        assert_eq!(password(&new), "password-5");
        assert!(
            matches!(get(&s, now + 1).await, Obtained::Current(_)),
            "failures forgotten"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_already_expired_answer_is_served_clamped_when_nothing_is_held() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(MOTO_2015, Ordering::SeqCst);
        let s = store(ecr.clone());
        let Obtained::Refreshed(c) = get(&s, NOW).await else {
            panic!("served")
        };
        assert_eq!(
            c.expires_at,
            NOW + CLAMPED_LIFETIME_SECS,
            "clamped, not 2015"
        );
        // An event storm right after: no further exchange, the clamped credential is current.
        for i in 0..20 {
            assert!(matches!(get(&s, NOW + i).await, Obtained::Current(_)));
        }
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 1, "one exchange");
    }

    #[tokio::test(start_paused = true)]
    async fn an_already_expired_answer_never_replaces_a_valid_credential() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let s = store(ecr.clone());
        let Obtained::Refreshed(good) = get(&s, NOW).await else {
            panic!("first")
        };
        ecr.expires_at.store(MOTO_2015, Ordering::SeqCst);
        let due = good.refresh_at(0.5);
        let Obtained::Failed {
            error,
            last_good,
            retry_in,
            attempted,
        } = get(&s, due).await
        else {
            panic!("an expired answer is a failed refresh")
        };
        assert!(attempted);
        assert!(
            error.contains("expired already at 2015-01-01T00:00:00Z"),
            "{error}"
        );
        assert!(!error.contains("password"), "{error}");
        let kept = last_good.expect("kept");
        assert_eq!(password(&kept), "password-1");
        assert_eq!(kept.expires_at, NOW + 3600);
        // Backing off: no exchange until the backoff has passed.
        assert!(matches!(
            get(&s, due + 1).await,
            Obtained::Failed {
                attempted: false,
                ..
            }
        ));
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 2);
        // A good answer after the backoff replaces it.
        ecr.expires_at.store(NOW + 7200, Ordering::SeqCst);
        let after = due + i64::try_from(retry_in.as_secs()).unwrap();
        let Obtained::Refreshed(new) = get(&s, after).await else {
            panic!("recovered")
        };
        assert_eq!(password(&new), "password-3");
        // Once the held credential has expired, an expired answer is served clamped again.
        ecr.expires_at.store(MOTO_2015, Ordering::SeqCst);
        let late = NOW + 7200;
        let Obtained::Refreshed(clamped) = get(&s, late).await else {
            panic!("served clamped")
        };
        assert_eq!(clamped.expires_at, late + CLAMPED_LIFETIME_SECS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_expiry_is_a_failed_refresh() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at
            .store(NOW + 100 * 365 * 86_400, Ordering::SeqCst);
        let s = store(ecr.clone());
        let Obtained::Failed {
            error, last_good, ..
        } = get(&s, NOW).await
        else {
            panic!("refused")
        };
        assert!(error.contains("unusable expiry"), "{error}");
        assert!(error.contains("more than 7 days away"), "{error}");
        assert!(last_good.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn exchanges_are_spaced_by_the_minimum_interval() {
        // A credential that is due as soon as it is issued (an upstream handing out 1-second
        // tokens): events arriving every second cost one exchange per interval, not one each.
        let ecr = Arc::new(Ecr::default());
        let s = store(ecr.clone());
        for t in NOW..NOW + 3 * MIN_EXCHANGE_INTERVAL_SECS {
            ecr.expires_at.store(t + 2, Ordering::SeqCst);
            let _ = get(&s, t).await;
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(
            ecr.calls.load(Ordering::SeqCst),
            3,
            "one per {MIN_EXCHANGE_INTERVAL_SECS} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_monotonic_clock_alone_ends_the_minimum_interval() {
        // A wall clock that stands still (or went backwards) must not stop refreshes forever.
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 2, Ordering::SeqCst);
        let s = store(ecr.clone());
        let _ = get(&s, NOW).await;
        let _ = get(&s, NOW + 2).await;
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(MIN_EXCHANGE_INTERVAL_SECS as u64)).await;
        let _ = get(&s, NOW + 2).await;
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn judge_answer_table() {
        let c = |expires_at| Credential {
            config: DockerConfig::new(),
            issued_at: NOW,
            expires_at,
            jitter: 0.5,
        };
        assert_eq!(
            judge_answer(c(NOW + 10), None, NOW).unwrap().expires_at,
            NOW + 10
        );
        assert_eq!(
            judge_answer(c(MOTO_2015), None, NOW).unwrap().expires_at,
            NOW + CLAMPED_LIFETIME_SECS
        );
        assert_eq!(
            judge_answer(c(NOW), Some(&c(NOW - 1)), NOW)
                .unwrap()
                .expires_at,
            NOW + CLAMPED_LIFETIME_SECS,
            "an expired held credential is no reason to refuse"
        );
        assert!(judge_answer(c(NOW), Some(&c(NOW + 1)), NOW).is_err());
    }

    #[test]
    fn expiry_is_the_earliest_and_debug_is_redacted() {
        let now = 1_000_000;
        let at = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        let creds = vec![
            RegistryCredential {
                registry: "a.dkr.ecr.us-east-1.amazonaws.com".into(),
                username: "AWS".into(),
                password: SecretString::from("super-secret-password"),
                expires_at: at(1_000_600),
            },
            RegistryCredential {
                registry: "cgr.dev".into(),
                username: "_token".into(),
                password: SecretString::from("another-secret"),
                expires_at: at(1_000_300),
            },
        ];
        let c = Credential::from_registry_credentials(&creds, now);
        assert_eq!(c.expires_at, 1_000_300);
        let r = c.refresh_at(0.5);
        assert!((1_000_030..=1_000_270).contains(&r), "{r}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("super-secret"), "{debug}");
        assert!(!debug.contains("another-secret"), "{debug}");
        let none = Credential::from_registry_credentials(
            &[RegistryCredential {
                expires_at: None,
                ..creds[0].clone()
            }],
            now,
        );
        assert_eq!(none.expires_at, now + ASSUMED_LIFETIME_SECS);
        let _ = SystemTime::now();
    }

    /// An STS double that never answers while `hang` is set, counting calls.
    #[derive(Default)]
    struct HangingSts {
        hang: std::sync::atomic::AtomicBool,
        calls: AtomicU32,
    }
    impl CredentialExchange for HangingSts {
        fn credentials<'a>(
            &'a self,
            identity: &'a Identity,
        ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if self.hang.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                Sts.credentials(identity).await
            })
        }
    }

    fn store_with(sts: Arc<impl CredentialExchange + 'static>, ecr: Arc<Ecr>) -> CredentialStore {
        let providers = Providers {
            ecr: ecr.clone(),
            ecr_public: ecr.clone(),
            chainguard: ecr,
        };
        let options = PipelineOptions {
            clock: Arc::new(irsa_aws::ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW as u64),
            )),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::with_components(&options, sts, providers).unwrap();
        CredentialStore::new(pipeline, Arc::new(Metrics::default()))
    }

    #[test]
    fn an_exchange_its_runtime_dropped_fails_and_the_next_caller_exchanges_afresh() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let sts = Arc::new(HangingSts::default());
        sts.hang.store(true, Ordering::SeqCst);
        let s = Arc::new(store_with(sts.clone(), ecr));
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let (a, b) = (rt(), rt());
        a.block_on(async {
            let s = s.clone();
            tokio::spawn(async move { get(&s, NOW).await });
            while sts.calls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        });
        // Asks only once A is gone (B runs its tasks in `block_on`), so it meets whatever
        // in-flight marker the dropped exchange left.
        let waiter = b.spawn({
            let s = s.clone();
            async move { get(&s, NOW).await }
        });
        drop(a);
        sts.hang.store(false, Ordering::SeqCst);
        let bounded =
            |f| b.block_on(async { tokio::time::timeout(Duration::from_secs(10), f).await });
        // The dropped exchange left the key free and counts for nothing: the waiter exchanges
        // afresh, and what it obtained serves the next caller.
        let joined = bounded(waiter)
            .expect("the waiter hangs")
            .expect("the waiter panics");
        assert!(matches!(joined, Obtained::Refreshed(_)), "{joined:?}");
        let next = bounded(b.spawn({
            let s = s.clone();
            async move { get(&s, NOW + MIN_EXCHANGE_INTERVAL_SECS + 1).await }
        }));
        let next = next
            .expect("the next caller hangs")
            .expect("the next caller panics");
        assert!(matches!(next, Obtained::Current(_)), "{next:?}");
    }

    #[test]
    fn a_cancelled_exchange_does_not_hold_back_the_next_one_but_a_completed_failure_does() {
        // An exchange that never completed (its task dropped with the runtime, shutting down)
        // exchanged nothing: the next caller, a second later on either clock, exchanges at
        // once instead of waiting out the minimum interval between exchanges.
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let sts = Arc::new(HangingSts::default());
        sts.hang.store(true, Ordering::SeqCst);
        let s = Arc::new(store_with(sts.clone(), ecr.clone()));
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let a = paused();
        a.block_on(async {
            let s = s.clone();
            tokio::spawn(async move { get(&s, NOW).await });
            while sts.calls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        });
        // The exchange's task goes with its runtime, midway.
        drop(a);
        sts.hang.store(false, Ordering::SeqCst);
        let b = paused();
        b.block_on(async {
            tokio::time::advance(Duration::from_secs(1)).await;
            let next = get(&s, NOW + 1).await;
            assert!(matches!(next, Obtained::Refreshed(_)), "{next:?}");
            assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
            assert_eq!(ecr.calls.load(Ordering::SeqCst), 1);
        });

        // A completed failure (the exchange timed out) does count: the next caller, at once,
        // is told to wait, and nothing is asked upstream.
        let sts = Arc::new(HangingSts::default());
        sts.hang.store(true, Ordering::SeqCst);
        let s = store_with(sts.clone(), Arc::new(Ecr::default()));
        paused().block_on(async {
            let first = get(&s, NOW).await;
            assert!(
                matches!(
                    first,
                    Obtained::Failed {
                        attempted: true,
                        ..
                    }
                ),
                "{first:?}"
            );
            sts.hang.store(false, Ordering::SeqCst);
            let took = i64::try_from(EXCHANGE_TIMEOUT.as_secs()).unwrap();
            let next = get(&s, NOW + took).await;
            let Obtained::Failed {
                attempted,
                retry_in,
                ..
            } = next
            else {
                panic!("a completed failure is backed off: {next:?}")
            };
            assert!(!attempted);
            assert!(retry_in >= Duration::from_secs(1), "{retry_in:?}");
            assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_exchange_ends_at_its_timeout_and_never_blocks_a_valid_credential() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let sts = Arc::new(HangingSts::default());
        sts.hang.store(true, Ordering::SeqCst);
        let s = Arc::new(store_with(sts.clone(), ecr));
        let t = targets();
        let k = key(&identity(), &t);
        // Nothing held: the exchange hangs, and fails once the timeout is reached.
        let started = Instant::now();
        let first = tokio::time::timeout(Duration::from_secs(3600), get(&s, NOW))
            .await
            .expect("the exchange never ended");
        let Obtained::Failed {
            error, attempted, ..
        } = first
        else {
            panic!("a hanging exchange is a failed refresh: {first:?}")
        };
        assert!(attempted);
        assert!(error.contains("did not finish within"), "{error}");
        assert!(
            started.elapsed() <= EXCHANGE_TIMEOUT,
            "{:?}",
            started.elapsed()
        );

        // A credential held and due (issued an hour ago, valid for another ten minutes).
        let held = Credential {
            config: DockerConfig::new(),
            issued_at: NOW - 3000,
            expires_at: NOW + 600,
            jitter: 0.5,
        };
        let s2 = Arc::new(store_with(sts.clone(), Arc::new(Ecr::default())));
        s2.adopt(&k, held).await;
        let calls = sts.calls.load(Ordering::SeqCst);
        let exchanging = tokio::spawn({
            let s2 = s2.clone();
            async move { get(&s2, NOW).await }
        });
        // Wait until the exchange has started upstream.
        while sts.calls.load(Ordering::SeqCst) == calls {
            tokio::task::yield_now().await;
        }
        let asked = Instant::now();
        // Others sharing the slot are served the valid credential at once, with no second
        // exchange, and looking at the slot does not wait either.
        for _ in 0..5 {
            let other = get(&s2, NOW).await;
            assert!(matches!(other, Obtained::Current(_)), "{other:?}");
            assert!(s2.holds(&k).await);
        }
        assert_eq!(asked.elapsed(), Duration::ZERO, "nothing waited");
        assert_eq!(sts.calls.load(Ordering::SeqCst), calls + 1, "single flight");
        let done = exchanging.await.unwrap();
        assert!(
            matches!(
                done,
                Obtained::Failed {
                    attempted: true,
                    ..
                }
            ),
            "{done:?}"
        );
    }

    /// An STS double that takes 20 s to answer.
    struct SlowSts;
    impl CredentialExchange for SlowSts {
        fn credentials<'a>(
            &'a self,
            identity: &'a Identity,
        ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                Sts.credentials(identity).await
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_decided_after_a_wait_is_decided_on_the_time_after_it() {
        // The wall clock follows the (paused) monotonic one from NOW.
        let base = Instant::now();
        let clock = move || NOW + i64::try_from(base.elapsed().as_secs()).unwrap();
        // The registry's answer expires 10 s after NOW; the exchange takes 20 s.
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 10, Ordering::SeqCst);
        let providers = Providers {
            ecr: ecr.clone(),
            ecr_public: ecr.clone(),
            chainguard: ecr.clone(),
        };
        let options = PipelineOptions {
            clock: Arc::new(irsa_aws::ManualClock::new(
                UNIX_EPOCH + Duration::from_secs(NOW as u64),
            )),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::with_components(&options, Arc::new(SlowSts), providers).unwrap();
        let s = Arc::new(CredentialStore::new(pipeline, Arc::new(Metrics::default())));
        let t = targets();
        let k = key(&identity(), &t);
        let first = tokio::spawn({
            let (s, t, k) = (s.clone(), t.clone(), k.clone());
            async move {
                let got = s.get(&k, &identity(), &t, 0.5, &clock).await;
                (got, clock())
            }
        });
        // A second caller arrives a second later and waits for the exchange's lock.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = s.get(&k, &identity(), &t, 0.5, &clock).await;
        let second_at = clock();
        let (first, first_at) = first.await.unwrap();
        for (who, got, at) in [
            ("exchanging", first, first_at),
            ("waiting", second, second_at),
        ] {
            let c = match got {
                Obtained::Refreshed(c) | Obtained::Current(c) => c,
                other => panic!("{who}: {other:?}"),
            };
            assert!(
                c.expires_at > at,
                "{who} caller got a credential expired {} s before it was served",
                at - c.expires_at
            );
        }
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 1, "one exchange");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exchange_whose_caller_gave_up_completes_and_serves_the_next_caller() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let s = store_with(Arc::new(SlowSts), ecr.clone());
        // The only caller (a reconcile, cancelled) gives up while STS takes its 20 s.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), get(&s, NOW)).await;
        assert!(gave_up.is_err());
        // Past the time the exchange takes (paused clock: it answered at 20 s).
        tokio::time::sleep(Duration::from_secs(20)).await;
        let k = key(&identity(), &targets());
        assert!(s.holds(&k).await, "the exchange stalled without its caller");
        let Obtained::Current(c) = get(&s, NOW + 21).await else {
            panic!("not served what was obtained")
        };
        assert_eq!(password(&c), "password-1");
        assert_eq!(ecr.calls.load(Ordering::SeqCst), 1, "no second exchange");
    }

    /// An STS double that panics while `panics` is set, counting calls.
    #[derive(Default)]
    struct PanickingSts {
        panics: std::sync::atomic::AtomicBool,
        calls: AtomicU32,
    }
    impl CredentialExchange for PanickingSts {
        fn credentials<'a>(
            &'a self,
            identity: &'a Identity,
        ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                assert!(
                    !self.panics.load(Ordering::SeqCst),
                    "a bug in an STS client"
                );
                Sts.credentials(identity).await
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_exchange_is_a_failed_refresh_retried_after_its_backoff() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let sts = Arc::new(PanickingSts::default());
        sts.panics.store(true, Ordering::SeqCst);
        let s = store_with(sts.clone(), ecr);
        let Obtained::Failed {
            error,
            retry_in,
            attempted: true,
            ..
        } = get(&s, NOW).await
        else {
            panic!("a panic is a failed refresh")
        };
        assert!(error.contains("failed unexpectedly"), "{error}");
        // Backing off: no exchange, the failure is what there is.
        assert!(matches!(
            get(&s, NOW + 1).await,
            Obtained::Failed {
                attempted: false,
                ..
            }
        ));
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // After the backoff the next caller starts afresh.
        sts.panics.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(6)).await;
        let after = NOW + i64::try_from(retry_in.as_secs()).unwrap();
        assert!(matches!(get(&s, after).await, Obtained::Refreshed(_)));
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_no_longer_in_use_gets_no_slot_back() {
        let ecr = Arc::new(Ecr::default());
        ecr.expires_at.store(NOW + 3600, Ordering::SeqCst);
        let s = store(ecr);
        let k = key(&identity(), &targets());
        let held = Credential {
            config: DockerConfig::new(),
            issued_at: NOW,
            expires_at: NOW + 3600,
            jitter: 0.5,
        };
        s.retain(1, std::collections::HashSet::from([k.clone()]));
        assert!(matches!(get(&s, NOW).await, Obtained::Refreshed(_)));
        // The resource using it was deleted, while its reconcile still runs.
        s.retain(2, std::collections::HashSet::new());
        assert!(!s.holds(&k).await);
        s.adopt(&k, held).await;
        assert!(!s.holds(&k).await, "adopted for a key no resource uses");
        let _ = get(&s, NOW).await;
        assert!(!s.holds(&k).await, "exchanged into a slot no resource uses");
        // Used again: kept again.
        s.retain(3, std::collections::HashSet::from([k.clone()]));
        let _ = get(&s, NOW).await;
        assert!(s.holds(&k).await);
    }

    /// A requester whose requests never answer.
    struct Hung;
    impl TokenRequester for Hung {
        fn request_token<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a [String],
            _: Duration,
        ) -> BoxFuture<'a, Result<SecretString, TokenSourceError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_token_request_fails_at_its_timeout() {
        let bounded = BoundedTokenRequester::new(Arc::new(Hung), TOKEN_REQUEST_TIMEOUT);
        let started = Instant::now();
        let e = bounded
            .request_token("team-a", "puller", &[], Duration::from_secs(3600))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), TOKEN_REQUEST_TIMEOUT);
        let message = e.to_string();
        assert!(message.contains("team-a/puller"), "{message}");
        assert!(message.contains("did not answer within 10s"), "{message}");
        assert!(TOKEN_REQUEST_TIMEOUT < EXCHANGE_TIMEOUT);
    }
}
