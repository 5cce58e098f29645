//! The cache through the pipeline, under `tokio::time::pause()`, with counting in-memory STS and
//! ECR (real sockets and paused time do not mix: the paused clock jumps timeouts forward).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use irsa_aws::cache::CacheOptions;
use irsa_aws::credentials::{AwsCredentials, BoxFuture, RegistryCredential};
use irsa_aws::ecr::EcrError;
use irsa_aws::provider::{FetchContext, ProviderError};
use irsa_aws::retry::{CallFailure, FailureKind};
use irsa_aws::sts::CredentialExchange;
use irsa_aws::{
    Identity, ManualClock, Pipeline, PipelineOptions, Providers, RegistryTarget,
    RegistryTokenProvider, StsError,
};

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct FakeSts {
    calls: AtomicUsize,
    clock: Arc<ManualClock>,
}

impl CredentialExchange for FakeSts {
    fn credentials<'a>(
        &'a self,
        _: &'a Identity,
    ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            use irsa_aws::clock::Clock as _;
            let now = self.clock.now();
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(AwsCredentials {
                access_key_id: format!("ASIA{n}"),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
                expires_at: Some(now + HOUR),
            })
        })
    }
}

struct FakeEcr {
    calls: AtomicUsize,
    failing: AtomicBool,
    clock: Arc<ManualClock>,
}

impl RegistryTokenProvider for FakeEcr {
    fn fetch<'a>(
        &'a self,
        ctx: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            use irsa_aws::clock::Clock as _;
            let now = self.clock.now();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(ProviderError::Ecr(EcrError::Call {
                    principal: ctx.principal.clone(),
                    region: "us-east-1".into(),
                    failure: CallFailure::new(FailureKind::ServerError, "HTTP 503"),
                }));
            }
            Ok(targets
                .iter()
                .map(|t| RegistryCredential {
                    registry: t.host.clone(),
                    username: "AWS".into(),
                    password: format!("password-{n}-{}", ctx.credentials.access_key_id).into(),
                    expires_at: Some(now + 12 * HOUR),
                })
                .collect())
        })
    }
}

struct Setup {
    pipeline: Pipeline,
    sts: Arc<FakeSts>,
    ecr: Arc<FakeEcr>,
    clock: Arc<ManualClock>,
}

fn setup() -> Setup {
    let clock = Arc::new(ManualClock::new(t0()));
    let sts = Arc::new(FakeSts {
        calls: AtomicUsize::new(0),
        clock: clock.clone(),
    });
    let ecr = Arc::new(FakeEcr {
        calls: AtomicUsize::new(0),
        failing: AtomicBool::new(false),
        clock: clock.clone(),
    });
    let options = PipelineOptions {
        clock: clock.clone(),
        cache: CacheOptions {
            jitter: 0.0,
            ..CacheOptions::default()
        },
        ..PipelineOptions::default()
    };
    let providers = Providers {
        ecr: ecr.clone(),
        ecr_public: ecr.clone(),
        chainguard: ecr.clone(),
    };
    let pipeline = Pipeline::with_components(&options, sts.clone(), providers).unwrap();
    Setup {
        pipeline,
        sts,
        ecr,
        clock,
    }
}

fn identity() -> Identity {
    Identity::Ambient {
        chained_role: None,
        session_duration: None,
    }
}

fn targets() -> Vec<RegistryTarget> {
    vec![
        RegistryTarget::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com", None).unwrap(),
        RegistryTarget::parse("210987654321.dkr.ecr.us-east-1.amazonaws.com", None).unwrap(),
    ]
}

/// Advances both clocks.
async fn advance(s: &Setup, by: Duration) {
    s.clock.advance(by);
    tokio::time::advance(by).await;
}

async fn password(s: &Setup) -> String {
    let c = s
        .pipeline
        .registry_credentials(&identity(), &targets())
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    c[0].password.expose().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_callers_cause_one_sts_and_one_ecr_call() {
    let s = setup();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let p = s.pipeline.clone();
        tasks.spawn(async move { p.registry_credentials(&identity(), &targets()).await });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(
            r.unwrap().unwrap()[1].registry,
            "210987654321.dkr.ecr.us-east-1.amazonaws.com"
        );
        n += 1;
    }
    assert_eq!(n, 1000);
    assert_eq!(s.sts.calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 1);
    let stats = s.pipeline.stats();
    assert_eq!(stats.exchanges, 2, "{stats:?}");
    assert_eq!(
        stats.misses, 1001,
        "1000 registry misses + 1 STS miss: {stats:?}"
    );
    password(&s).await;
    assert_eq!(s.pipeline.stats().hits, 1);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_the_refresh_point() {
    let s = setup();
    let first = password(&s).await;
    // The ECR token lives 12 h: refreshed after 6 h (fraction 0.5, no jitter in this test).
    advance(&s, 6 * HOUR - Duration::from_secs(2)).await;
    assert_eq!(password(&s).await, first);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 1);
    advance(&s, Duration::from_secs(3)).await;
    let second = password(&s).await;
    assert_ne!(second, first);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 2);
    // The STS credentials (1 h) had expired too: exchanged again for the refresh.
    assert_eq!(s.sts.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_serves_the_still_valid_credential_and_retries() {
    let s = setup();
    let first = password(&s).await;
    advance(&s, 6 * HOUR + Duration::from_secs(1)).await;
    s.ecr.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        password(&s).await,
        first,
        "old credential served after a failed refresh"
    );
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 2);
    // Backing off: no new upstream call for the next 5 s.
    advance(&s, Duration::from_secs(4)).await;
    assert_eq!(password(&s).await, first);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 2);
    advance(&s, Duration::from_secs(2)).await;
    assert_eq!(password(&s).await, first);
    assert_eq!(
        s.ecr.calls.load(Ordering::SeqCst),
        3,
        "retried after the backoff"
    );
    // Upstream recovers: the next retry (after a doubled backoff) brings a new credential.
    s.ecr.failing.store(false, Ordering::SeqCst);
    advance(&s, Duration::from_secs(11)).await;
    let fresh = password(&s).await;
    assert_ne!(fresh, first);
    assert_eq!(s.ecr.calls.load(Ordering::SeqCst), 4);
    let stats = s.pipeline.stats();
    assert!(stats.failures == 2 && stats.stale_served >= 3, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn an_expired_credential_is_never_served() {
    let s = setup();
    password(&s).await;
    s.ecr.failing.store(true, Ordering::SeqCst);
    advance(&s, 12 * HOUR + Duration::from_secs(1)).await;
    let err = s
        .pipeline
        .registry_credentials(&identity(), &targets())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ecr:GetAuthorizationToken in us-east-1"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_moves_the_refresh_point_earlier_only() {
    let clock = Arc::new(ManualClock::new(t0()));
    let cache: irsa_aws::cache::CredentialCache<u32, String> =
        irsa_aws::cache::CredentialCache::new(
            CacheOptions {
                jitter: 0.5,
                ..CacheOptions::default()
            },
            clock.clone(),
        );
    let fetch = || async {
        Ok::<_, String>(irsa_aws::cache::Fetched {
            value: 1,
            expires_at: Some(t0() + 2 * HOUR),
        })
    };
    cache.get_or_fetch("k", fetch).await.unwrap();
    // Refresh point somewhere in [30 min, 60 min]: never before 30 min, always by 60 min.
    tokio::time::advance(Duration::from_secs(30 * 60 - 1)).await;
    cache.get_or_fetch("k", fetch).await.unwrap();
    assert_eq!(cache.stats().exchanges, 1);
    tokio::time::advance(Duration::from_secs(30 * 60 + 2)).await;
    cache.get_or_fetch("k", fetch).await.unwrap();
    assert_eq!(cache.stats().exchanges, 2);
}
