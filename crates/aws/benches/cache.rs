//! Warm cache hits: the cost of answering from the cache (goal: under 1 µs).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use irsa_aws::cache::{CacheOptions, CredentialCache, Fetched};
use irsa_aws::credentials::{AwsCredentials, BoxFuture, RegistryCredential};
use irsa_aws::provider::{FetchContext, ProviderError};
use irsa_aws::sts::CredentialExchange;
use irsa_aws::{
    Identity, Pipeline, PipelineOptions, Providers, RegistryTarget, RegistryTokenProvider,
    StsError, SystemClock,
};

struct Sts;
impl CredentialExchange for Sts {
    fn credentials<'a>(
        &'a self,
        _: &'a Identity,
    ) -> BoxFuture<'a, Result<AwsCredentials, StsError>> {
        Box::pin(async {
            Ok(AwsCredentials {
                access_key_id: "ASIABENCH".into(),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
            })
        })
    }
}

/// About the size of a real ECR password (base64 of a JSON document).
const PASSWORD_LEN: usize = 2000;

struct Ecr;
impl RegistryTokenProvider for Ecr {
    fn fetch<'a>(
        &'a self,
        _: &'a FetchContext,
        targets: &'a [RegistryTarget],
    ) -> BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>> {
        Box::pin(async move {
            Ok(targets
                .iter()
                .map(|t| RegistryCredential {
                    registry: t.host.clone(),
                    username: "AWS".into(),
                    password: "p".repeat(PASSWORD_LEN).into(),
                    expires_at: Some(SystemTime::now() + Duration::from_secs(12 * 3600)),
                })
                .collect())
        })
    }
}

fn warm_hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let cache: CredentialCache<String, String> =
        CredentialCache::new(CacheOptions::default(), Arc::new(SystemClock));
    let fetch = || async {
        Ok::<_, String>(Fetched {
            value: "credential".to_owned(),
            expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        })
    };
    rt.block_on(cache.get_or_fetch("web|arn:aws:iam::123456789012:role/r|s|file /t", fetch))
        .unwrap();
    c.bench_function("cache_warm_hit", |b| {
        b.iter(|| {
            cache
                .get_or_fetch(
                    black_box("web|arn:aws:iam::123456789012:role/r|s|file /t"),
                    fetch,
                )
                .now_or_never()
                .expect("a hit completes at once")
                .unwrap()
        })
    });

    let ecr = Arc::new(Ecr);
    let pipeline = Pipeline::with_components(
        &PipelineOptions::default(),
        Arc::new(Sts),
        Providers {
            ecr: ecr.clone(),
            ecr_public: ecr.clone(),
            chainguard: ecr,
        },
    )
    .unwrap();
    let identity = Identity::Ambient {
        chained_role: None,
        session_duration: None,
    };
    let targets =
        vec![RegistryTarget::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com", None).unwrap()];
    rt.block_on(pipeline.registry_credentials(&identity, &targets))
        .unwrap();
    c.bench_function("pipeline_warm_hit_one_ecr_registry", |b| {
        b.iter(|| {
            pipeline
                .registry_credentials(black_box(&identity), black_box(&targets))
                .now_or_never()
                .expect("a hit completes at once")
                .unwrap()
        })
    });
}

criterion_group!(benches, warm_hits);
criterion_main!(benches);
