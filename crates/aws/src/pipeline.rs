//! The facade: identity → AWS credentials → registry credentials, everything through the cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::{Builder as HttpClientBuilder, ConnectorBuilder, tls};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use irsa_core::partition::{EndpointVariant, validate_region};
use irsa_core::registry::Registry;
use thiserror::Error;

use crate::cache::{CacheOptions, CacheStats, CredentialCache, Fetched};
use crate::chainguard::{ChainguardError, ChainguardProvider, DEFAULT_ISSUER};
use crate::clock::{Clock, SystemClock};
use crate::credentials::{AwsCredentials, RegistryCredential};
use crate::ecr::EcrProvider;
use crate::ecr_public::EcrPublicProvider;
use crate::env::Env;
use crate::provider::{
    FetchContext, ProviderError, RegistryTarget, RegistryTokenProvider, TargetError,
};
use crate::retry::RetryPolicy;
use crate::sts::{
    CredentialExchange, Identity, StsEndpointChoice, StsError, StsExchange, StsSettings,
};

/// Everything the pipeline can be told. [`Default`] reads nothing; [`Pipeline::new`] fills what
/// is unset from the environment ([`PipelineOptions::env`]).
#[derive(Clone)]
pub struct PipelineOptions {
    /// Region for STS (`AWS_REGION`, `AWS_DEFAULT_REGION`, then the SDK's region chain).
    pub region: Option<String>,
    /// Regional, global or legacy STS endpoint; `None`: `AWS_STS_REGIONAL_ENDPOINTS`
    /// (`regional`, the default, or `legacy`, as in the AWS SDKs).
    pub sts_endpoint: Option<StsEndpointChoice>,
    /// STS endpoint URL (VPC endpoint, GovCloud/China override, test server); wins over
    /// `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL`.
    pub sts_endpoint_url: Option<String>,
    /// ECR API endpoint URL; wins over `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL`.
    pub ecr_endpoint_url: Option<String>,
    /// ECR Public endpoint URL; wins over `AWS_ENDPOINT_URL_ECR_PUBLIC` / `AWS_ENDPOINT_URL`.
    pub ecr_public_endpoint_url: Option<String>,
    /// FIPS STS endpoint (`AWS_USE_FIPS_ENDPOINT`).
    pub use_fips: Option<bool>,
    /// Dual-stack STS endpoint (`AWS_USE_DUALSTACK_ENDPOINT`).
    pub use_dual_stack: Option<bool>,
    /// Requested role session duration (STS default: 1 hour).
    pub session_duration: Option<Duration>,
    /// Timeouts and retries of every upstream call.
    pub retry: RetryPolicy,
    /// Refresh fraction, jitter, capacity.
    pub cache: CacheOptions,
    /// Chainguard's issuer URL (default `https://issuer.enforce.dev`).
    pub chainguard_issuer: String,
    /// Where `AWS_*` variables are read.
    pub env: Env,
    /// The wall clock used for credential lifetimes.
    pub clock: Arc<dyn Clock>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            region: None,
            sts_endpoint: None,
            sts_endpoint_url: None,
            ecr_endpoint_url: None,
            ecr_public_endpoint_url: None,
            use_fips: None,
            use_dual_stack: None,
            session_duration: None,
            retry: RetryPolicy::default(),
            cache: CacheOptions::default(),
            chainguard_issuer: DEFAULT_ISSUER.to_owned(),
            env: Env::Process,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for PipelineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineOptions")
            .field("region", &self.region)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("sts_endpoint_url", &self.sts_endpoint_url)
            .field("ecr_endpoint_url", &self.ecr_endpoint_url)
            .field("ecr_public_endpoint_url", &self.ecr_public_endpoint_url)
            .field("retry", &self.retry)
            .field("cache", &self.cache)
            .field("chainguard_issuer", &self.chainguard_issuer)
            .finish_non_exhaustive()
    }
}

/// Why the pipeline could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The region is not an AWS region.
    #[error("invalid AWS region {region:?}: {reason}")]
    Region {
        /// The region.
        region: String,
        /// Why.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// The Chainguard issuer is unusable.
    #[error(transparent)]
    Chainguard(#[from] ChainguardError),
}

/// Any failure of the pipeline. `Display` is the whole user-facing message: what failed, why,
/// and what to do; it never contains a token or password.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    /// Setting the pipeline up failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A registry target was refused.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Getting AWS credentials failed.
    #[error(transparent)]
    Sts(#[from] StsError),
    /// A registry token provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A registry answered with an expiry no registry can mean (decades away, before 1970,
    /// beyond the representable range): the refresh fails rather than trusting it.
    #[error(
        "registry {registry} answered with an unusable expiry: {reason}; the credential was \
         not used (check this machine's clock, then the registry's service health)"
    )]
    AbsurdExpiry {
        /// The registry host.
        registry: String,
        /// Why, free of secrets.
        reason: irsa_core::lifetime::AbsurdExpiry,
    },
    /// A provider answered without a credential for a requested registry.
    #[error(
        "no credential was minted for registry {registry} although its provider succeeded; \
         this is a bug in irsa: please report it"
    )]
    MissingCredential {
        /// The registry host.
        registry: String,
    },
    /// The exchange ended without an answer (its runtime shut down).
    #[error(transparent)]
    Exchange(#[from] crate::flight::Ended),
}

/// The three registry token providers the pipeline dispatches to.
#[derive(Clone)]
pub struct Providers {
    /// ECR private.
    pub ecr: Arc<dyn RegistryTokenProvider>,
    /// ECR Public.
    pub ecr_public: Arc<dyn RegistryTokenProvider>,
    /// Chainguard.
    pub chainguard: Arc<dyn RegistryTokenProvider>,
}

struct Inner {
    exchange: Arc<dyn CredentialExchange>,
    providers: Providers,
    aws_cache: CredentialCache<AwsCredentials, StsError>,
    registry_cache: CredentialCache<Vec<RegistryCredential>, PipelineError>,
    clock: Arc<dyn Clock>,
    /// Where the ambient credentials' role is read ([`Identity::role_in`]).
    env: Env,
}

/// Identity → STS → registry credentials, cached. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The HTTPS client the SDK would build by default, built once and shared by every SDK client.
pub(crate) fn shared_http_client() -> SharedHttpClient {
    HttpClientBuilder::new().build_with_connector_fn(|settings, components| {
        let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.build()
    })
}

impl Pipeline {
    /// A pipeline on the real AWS SDK. Reads `AWS_REGION`/`AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_ECR`,
    /// `AWS_ENDPOINT_URL_ECR_PUBLIC`, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`, `AWS_STS_REGIONAL_ENDPOINTS`,
    /// `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT` and, for [`Identity::Ambient`],
    /// `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME` (else the SDK's
    /// default credential chain) from `options.env`; explicit options win.
    pub async fn new(options: PipelineOptions) -> Result<Self, PipelineError> {
        let env = options.env.clone();
        let http_client = shared_http_client();
        // The SDK's chain (profiles, Pod Identity, IMDS) only for the process environment:
        // a test's map environment must not reach into the machine's configuration.
        let sdk_config = match env {
            Env::Process => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http_client.clone());
                loader = match options.region.clone().or_else(|| env.region()) {
                    Some(region) => loader.region(aws_config::Region::new(region)),
                    // The profile's region, but no instance-metadata lookup at start-up (seconds
                    // off EC2): without a region, STS uses the role partition's default region.
                    None => loader.region(aws_config::profile::ProfileFileRegionProvider::new()),
                };
                Some(loader.load().await)
            }
            Env::Map(_) => None,
        };
        let region = options.region.clone().or_else(|| env.region()).or_else(|| {
            sdk_config
                .as_ref()
                .and_then(|c| c.region().map(|r| r.to_string()))
        });
        if let Some(r) = &region {
            validate_region(r).map_err(|e| ConfigError::Region {
                region: r.clone(),
                reason: e.to_string(),
            })?;
        }
        let variant = EndpointVariant {
            fips: options
                .use_fips
                .or_else(|| env.flag("AWS_USE_FIPS_ENDPOINT"))
                .unwrap_or(false),
            dual_stack: options
                .use_dual_stack
                .or_else(|| env.flag("AWS_USE_DUALSTACK_ENDPOINT"))
                .unwrap_or(false),
        };
        let sts = Arc::new(StsExchange::new(
            StsSettings {
                region,
                choice: match options.sts_endpoint {
                    Some(choice) => choice,
                    None => {
                        StsEndpointChoice::from_env(&env).map_err(|reason| ConfigError::Option {
                            option: "AWS_STS_REGIONAL_ENDPOINTS",
                            reason,
                        })?
                    }
                },
                endpoint_url: options
                    .sts_endpoint_url
                    .clone()
                    .or_else(|| env.endpoint_url("STS")),
                variant,
                duration: options.session_duration,
                retry: options.retry.clone(),
            },
            env.clone(),
            Some(http_client.clone()),
            sdk_config.as_ref().and_then(|c| c.credentials_provider()),
        ));
        let providers = Providers {
            ecr: Arc::new(EcrProvider::new(
                Some(http_client.clone()),
                options
                    .ecr_endpoint_url
                    .clone()
                    .or_else(|| env.endpoint_url("ECR")),
                options.retry.clone(),
            )),
            ecr_public: Arc::new(EcrPublicProvider::new(
                Some(http_client),
                options
                    .ecr_public_endpoint_url
                    .clone()
                    .or_else(|| env.endpoint_url("ECR_PUBLIC")),
                options.retry.clone(),
            )),
            chainguard: Arc::new(
                ChainguardProvider::new(
                    &options.chainguard_issuer,
                    options.retry.clone(),
                    options.clock.clone(),
                )
                .map_err(ConfigError::from)?
                .with_web_identity_tokens(sts.clone()),
            ),
        };
        Self::with_components(&options, sts, providers)
    }

    /// A pipeline on given parts (tests, or a caller with its own STS or providers).
    pub fn with_components(
        options: &PipelineOptions,
        exchange: Arc<dyn CredentialExchange>,
        providers: Providers,
    ) -> Result<Self, PipelineError> {
        let fraction = options.cache.refresh_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(ConfigError::Option {
                option: "refresh fraction",
                reason: format!("{fraction} is not in (0, 1]; 0.5 refreshes at half the lifetime"),
            }
            .into());
        }
        if !(0.0..1.0).contains(&options.cache.jitter) {
            return Err(ConfigError::Option {
                option: "refresh jitter",
                reason: format!("{} is not in [0, 1)", options.cache.jitter),
            }
            .into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                exchange,
                providers,
                aws_cache: CredentialCache::new(options.cache.clone(), options.clock.clone()),
                registry_cache: CredentialCache::new(options.cache.clone(), options.clock.clone()),
                clock: options.clock.clone(),
                env: options.env.clone(),
            }),
        })
    }

    /// One credential per requested registry, in order. ECR hosts are grouped by partition,
    /// region and endpoint variant into one `GetAuthorizationToken` (with `registryIds`) each;
    /// one STS exchange per identity; everything through the cache.
    pub async fn registry_credentials(
        &self,
        identity: &Identity,
        registries: &[RegistryTarget],
    ) -> Result<Vec<RegistryCredential>, PipelineError> {
        self.collect(identity, registries, false).await
    }

    /// Like [`Pipeline::registry_credentials`], but always mints new registry tokens (one
    /// provider call per group) instead of serving cached ones; AWS credentials still come
    /// through the cache. For callers that keep credentials themselves and decide when to
    /// refresh, such as the pull-secret controller; a failure is returned, never a stale token.
    pub async fn fresh_registry_credentials(
        &self,
        identity: &Identity,
        registries: &[RegistryTarget],
    ) -> Result<Vec<RegistryCredential>, PipelineError> {
        self.collect(identity, registries, true).await
    }

    async fn collect(
        &self,
        identity: &Identity,
        registries: &[RegistryTarget],
        fresh: bool,
    ) -> Result<Vec<RegistryCredential>, PipelineError> {
        // Few groups per call: a vector with linear search beats a map here.
        let mut groups: Vec<Vec<&RegistryTarget>> = Vec::with_capacity(1);
        // The group of each requested target (one host may be asked for with two Chainguard
        // identities).
        let mut group_of = Vec::with_capacity(registries.len());
        for target in registries {
            if target.registry == Registry::Other {
                return Err(TargetError::Unsupported {
                    host: target.host.clone(),
                }
                .into());
            }
            if target.registry == Registry::Chainguard && target.chainguard_identity.is_none() {
                return Err(TargetError::MissingChainguardIdentity {
                    host: target.host.clone(),
                }
                .into());
            }
            match groups.iter().position(|g| g[0].same_group(target)) {
                Some(i) => {
                    groups[i].push(target);
                    group_of.push(i);
                }
                None => {
                    group_of.push(groups.len());
                    groups.push(vec![target]);
                }
            }
        }
        let fetches = groups
            .into_iter()
            .map(|members| self.fetch_group(identity, members, fresh));
        let results = if fetches.len() == 1 {
            // The common case (one registry, or one region) without join_all's allocations.
            let mut fetches = fetches;
            match fetches.next() {
                Some(only) => vec![only.await?],
                None => Vec::new(),
            }
        } else {
            futures_util::future::try_join_all(fetches).await?
        };
        let mut out = Vec::with_capacity(registries.len());
        for (target, group) in registries.iter().zip(group_of) {
            let credential = results[group]
                .iter()
                .find(|c| c.registry == target.host)
                .ok_or_else(|| PipelineError::MissingCredential {
                    registry: target.host.clone(),
                })?;
            out.push(credential.clone());
        }
        Ok(out)
    }

    /// One group's credentials: fresh from upstream, or from the cache.
    async fn fetch_group(
        &self,
        identity: &Identity,
        members: Vec<&RegistryTarget>,
        fresh: bool,
    ) -> Result<Arc<Vec<RegistryCredential>>, PipelineError> {
        if !fresh {
            return self.fetch_cached(identity, members).await;
        }
        let mut targets: Vec<RegistryTarget> = members.into_iter().cloned().collect();
        targets.sort_by(|a, b| a.host.cmp(&b.host));
        targets.dedup_by(|a, b| a.host == b.host);
        let fetched = self.inner.clone().fetch_group(identity, targets).await?;
        Ok(Arc::new(fetched.value))
    }

    /// One group's credentials from the cache, or from one shared upstream fetch.
    async fn fetch_cached(
        &self,
        identity: &Identity,
        mut members: Vec<&RegistryTarget>,
    ) -> Result<Arc<Vec<RegistryCredential>>, PipelineError> {
        members.sort_by(|a, b| a.host.cmp(&b.host));
        members.dedup_by(|a, b| a.host == b.host);
        let mut key =
            String::with_capacity(160 + members.iter().map(|m| m.host.len() + 1).sum::<usize>());
        identity.write_cache_key(&mut key);
        key.push('\u{1f}');
        members[0].write_group_key(&mut key);
        for m in &members {
            key.push('\u{1f}');
            key.push_str(&m.host);
        }
        // Cloned only on a miss: a hit costs the key, one lock and one Arc clone.
        self.inner
            .registry_cache
            .get_or_fetch(&key, || {
                let inner = self.inner.clone();
                let identity = identity.clone();
                let targets: Vec<RegistryTarget> = members.into_iter().cloned().collect();
                async move { inner.fetch_group(&identity, targets).await }
            })
            .await
    }

    /// Temporary AWS credentials for `identity`, through the cache.
    pub async fn aws_credentials(
        &self,
        identity: &Identity,
    ) -> Result<AwsCredentials, PipelineError> {
        Ok((*self.inner.aws_credentials(identity).await?).clone())
    }

    /// Hits, misses and exchanges of both caches (AWS credentials and registry credentials).
    pub fn stats(&self) -> CacheStats {
        self.inner.aws_cache.stats() + self.inner.registry_cache.stats()
    }

    /// Forgets every cached credential.
    pub fn clear(&self) {
        self.inner.aws_cache.clear();
        self.inner.registry_cache.clear();
    }
}

impl Inner {
    async fn aws_credentials(
        self: &Arc<Self>,
        identity: &Identity,
    ) -> Result<Arc<AwsCredentials>, StsError> {
        let exchange = self.exchange.clone();
        let identity = identity.clone();
        self.aws_cache
            .get_or_fetch(&identity.cache_key(), move || async move {
                let creds = exchange.credentials(&identity).await?;
                let expires_at = creds.expires_at;
                Ok(Fetched {
                    value: creds,
                    expires_at,
                })
            })
            .await
    }

    async fn fetch_group(
        self: Arc<Self>,
        identity: &Identity,
        targets: Vec<RegistryTarget>,
    ) -> Result<Fetched<Vec<RegistryCredential>>, PipelineError> {
        let credentials = self.aws_credentials(identity).await?;
        let ctx = FetchContext {
            credentials: (*credentials).clone(),
            principal: identity.describe(),
            role: identity.role_in(&self.env),
        };
        let provider = match targets.first().map(|t| &t.registry) {
            Some(Registry::Ecr(_)) => &self.providers.ecr,
            Some(Registry::EcrPublic) => &self.providers.ecr_public,
            Some(Registry::Chainguard) => &self.providers.chainguard,
            _ => {
                return Ok(Fetched {
                    value: Vec::new(),
                    expires_at: None,
                });
            }
        };
        let value = provider.fetch(&ctx, &targets).await?;
        let now = self.clock.now();
        for c in &value {
            if let Some(at) = c.expires_at
                && let Err(reason) = irsa_core::lifetime::judge_system_time(at, now)
            {
                return Err(PipelineError::AbsurdExpiry {
                    registry: c.registry.clone(),
                    reason,
                });
            }
        }
        let expires_at = value.iter().filter_map(|c| c.expires_at).min();
        tracing::info!(
            identity = %identity.describe(),
            registries = ?targets.iter().map(|t| t.host.as_str()).collect::<Vec<_>>(),
            expires_at = ?expires_at,
            "minted registry credentials"
        );
        Ok(Fetched { value, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_env() -> Env {
        Env::from_pairs([("AWS_REGION", "eu-west-1")])
    }

    #[tokio::test]
    async fn options_are_checked() {
        let bad_region = PipelineOptions {
            region: Some("EU-WEST-1".into()),
            env: map_env(),
            ..PipelineOptions::default()
        };
        let err = Pipeline::new(bad_region).await.unwrap_err().to_string();
        assert!(err.contains("invalid AWS region \"EU-WEST-1\""), "{err}");

        let bad_fraction = PipelineOptions {
            env: map_env(),
            cache: CacheOptions {
                refresh_fraction: 1.5,
                ..CacheOptions::default()
            },
            ..PipelineOptions::default()
        };
        let err = Pipeline::new(bad_fraction).await.unwrap_err().to_string();
        assert!(err.contains("refresh fraction"), "{err}");

        let bad_issuer = PipelineOptions {
            env: map_env(),
            chainguard_issuer: "issuer.enforce.dev".into(),
            ..PipelineOptions::default()
        };
        let err = Pipeline::new(bad_issuer).await.unwrap_err().to_string();
        assert!(err.contains("invalid Chainguard issuer URL"), "{err}");

        let bad_sts = PipelineOptions {
            env: Env::from_pairs([("AWS_STS_REGIONAL_ENDPOINTS", "global")]),
            ..PipelineOptions::default()
        };
        let err = Pipeline::new(bad_sts).await.unwrap_err().to_string();
        assert!(
            err.contains("AWS_STS_REGIONAL_ENDPOINTS is \"global\"") && err.contains("legacy"),
            "{err}"
        );
        for value in ["legacy", "Regional"] {
            Pipeline::new(PipelineOptions {
                env: Env::from_pairs([("AWS_STS_REGIONAL_ENDPOINTS", value)]),
                ..PipelineOptions::default()
            })
            .await
            .unwrap();
        }

        let ok = Pipeline::new(PipelineOptions {
            env: map_env(),
            ..PipelineOptions::default()
        })
        .await
        .unwrap();
        assert_eq!(ok.stats(), CacheStats::default());
    }

    struct FixedSts;

    impl CredentialExchange for FixedSts {
        fn credentials<'a>(
            &'a self,
            _: &'a Identity,
        ) -> crate::credentials::BoxFuture<'a, Result<AwsCredentials, StsError>> {
            Box::pin(async {
                Ok(AwsCredentials {
                    access_key_id: "ASIATEST".into(),
                    secret_access_key: "s".into(),
                    session_token: Some("t".into()),
                    expires_at: None,
                })
            })
        }
    }

    /// A registry provider that records the role it was told the credentials belong to.
    #[derive(Default)]
    struct RoleSeen(std::sync::Mutex<Vec<Option<String>>>);

    impl RegistryTokenProvider for RoleSeen {
        fn fetch<'a>(
            &'a self,
            ctx: &'a FetchContext,
            targets: &'a [RegistryTarget],
        ) -> crate::credentials::BoxFuture<'a, Result<Vec<RegistryCredential>, ProviderError>>
        {
            self.0
                .lock()
                .unwrap()
                .push(ctx.role.as_ref().map(|r| r.to_string()));
            Box::pin(async move {
                Ok(targets
                    .iter()
                    .map(|t| RegistryCredential {
                        registry: t.host.clone(),
                        username: "_token".into(),
                        password: "p".into(),
                        expires_at: None,
                    })
                    .collect())
            })
        }
    }

    /// With the IRSA variables in the environment, the ambient credentials are those of
    /// AWS_ROLE_ARN's role: providers are told so (GetWebIdentityToken picks that role's
    /// partition), as for an explicit role.
    #[tokio::test]
    async fn the_ambient_irsa_role_reaches_the_providers() {
        const GOV: &str = "arn:aws-us-gov:iam::111122223333:role/node";
        let seen = Arc::new(RoleSeen::default());
        let target = RegistryTarget::parse(
            "cgr.dev/chainguard/static",
            Some("720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d"),
        )
        .unwrap();
        let roles = |env: Env, identity: Identity| {
            let seen = seen.clone();
            let target = target.clone();
            async move {
                let options = PipelineOptions {
                    env,
                    ..PipelineOptions::default()
                };
                let providers = Providers {
                    ecr: seen.clone(),
                    ecr_public: seen.clone(),
                    chainguard: seen.clone(),
                };
                let p = Pipeline::with_components(&options, Arc::new(FixedSts), providers).unwrap();
                p.registry_credentials(&identity, std::slice::from_ref(&target))
                    .await
                    .unwrap();
                seen.0.lock().unwrap().pop().unwrap()
            }
        };
        let irsa = || {
            Env::from_pairs([
                ("AWS_ROLE_ARN", GOV),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
            ])
        };
        let bare = Identity::Ambient {
            chained_role: None,
            session_duration: None,
        };
        assert_eq!(roles(irsa(), bare.clone()).await.as_deref(), Some(GOV));
        // A chained role is whose credentials they are.
        let chained: irsa_core::arn::RoleArn =
            "arn:aws-cn:iam::111122223333:role/cross".parse().unwrap();
        assert_eq!(
            roles(
                irsa(),
                Identity::Ambient {
                    chained_role: Some(chained.clone()),
                    session_duration: None,
                }
            )
            .await,
            Some(chained.to_string())
        );
        // Without the token file the SDK's chain is used, not AWS_ROLE_ARN: no role is known.
        assert_eq!(
            roles(Env::from_pairs([("AWS_ROLE_ARN", GOV)]), bare.clone()).await,
            None
        );
        assert_eq!(
            roles(
                Env::from_pairs([
                    ("AWS_ROLE_ARN", "nope"),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")
                ]),
                bare
            )
            .await,
            None
        );
    }

    #[tokio::test]
    async fn ambient_without_any_source_says_what_to_do() {
        let p = Pipeline::new(PipelineOptions {
            env: map_env(),
            ..PipelineOptions::default()
        })
        .await
        .unwrap();
        let err = p
            .aws_credentials(&Identity::Ambient {
                chained_role: None,
                session_duration: None,
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{err}");
    }
}
