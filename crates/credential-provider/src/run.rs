//! The effects around [`crate::plan`]: the credential pipeline (STS, ECR, ECR Public,
//! Chainguard) and the on-disk cache shared by the kubelet's many short-lived provider processes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use irsa_aws::disk_cache::{CacheError, CacheKey, DiskCache, Entry};
use irsa_aws::{
    Env, Identity, Pipeline, PipelineError, PipelineOptions, RegistryTarget, StaticTokenSource,
};
use irsa_core::registry::Registry;
use irsa_core::secret::SecretString;
use thiserror::Error;

use crate::plan::{ChainguardPlan, Plan, PlanError, PlannedIdentity, Policy, plan};
use crate::protocol::{AuthConfig, CacheKeyType, ProtocolError, Response, decode_request};

/// How the provider runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Role annotations, fallback and the node mode's chained role.
    pub policy: Policy,
    /// The on-disk cache directory (root-only); `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Fraction of a credential's lifetime the kubelet and the disk cache may keep it, in (0, 1].
    pub refresh_fraction: f64,
    /// Longest wait for another process fetching the same credential.
    pub lock_wait: Duration,
    /// The role session duration asked of STS; `None`: STS's default (1 hour).
    pub session_duration: Option<Duration>,
    /// Chainguard's token issuer (the exchange endpoint, and the audience of the proof).
    pub chainguard_issuer: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            cache_dir: None,
            refresh_fraction: 0.5,
            lock_wait: Duration::from_secs(30),
            session_duration: None,
            chainguard_issuer: irsa_aws::chainguard::DEFAULT_ISSUER.to_owned(),
        }
    }
}

/// Why the provider gave the kubelet no credential. `Display` is the one line the kubelet logs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// The request on stdin was refused.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The request names no usable image or identity.
    #[error(transparent)]
    Plan(#[from] Box<PlanError>),
    /// STS or the registry failed.
    #[error(transparent)]
    Pipeline(#[from] Box<PipelineError>),
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// The async runtime could not start.
    #[error("failed to start the async runtime: {0}")]
    Runtime(String),
    /// The registry answered with the service-account token itself as the password, which the
    /// kubelet refuses for the ServiceAccount cache type (and which must never be handed on).
    #[error(
        "registry {registry} answered with the pod's service-account token as its password: \
         refusing to hand it to the kubelet; the endpoint is not a registry token service"
    )]
    PasswordIsToken {
        /// The registry host.
        registry: String,
    },
}

/// The disk cache's identity for a planned identity. It holds the service account's namespace,
/// name and uid, not only the role: the role comes from an annotation a tenant can edit and a
/// hit skips STS's trust check, so role and registry alone would hand one tenant's credential
/// to another. For cgr.dev, the Chainguard identity, method and issuer too: two service
/// accounts naming one role and different identities hold different tokens. Then the session
/// duration and the environment that changes credentials ([`irsa_aws::disk_cache::KEY_ENV`],
/// the same list `irsa login` uses). `None` (no disk caching) when the token carries no uid.
pub fn cache_identity(
    identity: &PlannedIdentity,
    chainguard: Option<(&ChainguardPlan, &str)>,
    session_duration: Option<Duration>,
    env: &Env,
) -> Option<String> {
    let mut key = CacheKey::new("kubelet");
    match identity {
        PlannedIdentity::ServiceAccount {
            service_account,
            role,
            session_name,
            ..
        } => {
            let uid = service_account.uid.as_deref()?;
            key.part("sa")
                .part(&service_account.namespace)
                .part(&service_account.name)
                .part(uid)
                .part(role.to_string())
                .part(session_name.as_str());
        }
        PlannedIdentity::Node { chained_role, .. } => {
            key.part("node").part(
                chained_role
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            );
        }
    }
    if let Some((cg, issuer)) = chainguard {
        key.part("chainguard")
            .part(&cg.identity)
            .part(cg.method.as_str())
            .part(issuer);
    }
    key.part(session_duration.map_or(0, |d| d.as_secs()).to_be_bytes());
    Some(key.environment(env).finish())
}

/// The one warning about a cache that cannot be used (the pull goes on without it).
fn warn_untrusted(error: &CacheError) {
    tracing::warn!("{error}");
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn response(api_version: &str, entry: Option<(&Entry, i64)>) -> Response {
    let mut auth = BTreeMap::new();
    let mut cache_duration = None;
    if let Some((entry, now)) = entry {
        auth.insert(
            entry.registry.clone(),
            AuthConfig {
                username: entry.username.clone(),
                password: entry.password.clone(),
            },
        );
        cache_duration = Some(Duration::from_secs((entry.refresh_at - now).max(0) as u64));
    }
    Response {
        api_version: api_version.to_owned(),
        cache_key_type: CacheKeyType::Registry,
        cache_duration,
        auth,
    }
}

/// The entry to hand out (and maybe keep) for a freshly minted credential, and its remaining
/// lifetime in seconds: the kubelet and the disk cache keep it for `fraction` of that. Refuses a
/// password equal to the pod's service-account token (the kubelet refuses it for the
/// ServiceAccount cache type, and it must never be handed on as a registry secret).
fn entry_for(
    host: String,
    credential: irsa_aws::RegistryCredential,
    token: Option<&SecretString>,
    now: i64,
    fraction: f64,
) -> Result<(Entry, i64), ProviderError> {
    if let Some(token) = token
        && credential.password.expose() == token.expose()
    {
        return Err(ProviderError::PasswordIsToken { registry: host });
    }
    let expires_at = credential
        .expires_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let lifetime = expires_at.map_or(0, |e| (e - now).max(0));
    let entry = Entry {
        registry: host,
        username: credential.username,
        password: credential.password,
        expires_at,
        refresh_at: now + (lifetime as f64 * fraction) as i64,
    };
    Ok((entry, lifetime))
}

/// Answers one request read from stdin: decode, decide, then the disk cache or the pipeline.
pub fn respond(options: &Options, stdin: &[u8]) -> Result<Response, ProviderError> {
    let fraction = options.refresh_fraction;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(ProviderError::Option {
            option: "--refresh-fraction",
            reason: format!(
                "{fraction} is not in (0, 1]; 0.5 keeps a credential half its lifetime"
            ),
        });
    }
    let request = decode_request(stdin)?;
    let (image, planned, chainguard) = match plan(&request, &options.policy).map_err(Box::new)? {
        Plan::NotServed { host, reason } => {
            tracing::info!(registry = %host, %reason, "no credentials for this image");
            return Ok(response(&request.api_version, None));
        }
        Plan::Fetch {
            image,
            identity,
            chainguard,
        } => (image, *identity, chainguard),
    };
    let host = image.host.clone();
    let env = Env::Process;
    let key = options.cache_dir.as_ref().and_then(|_| {
        cache_identity(
            &planned,
            chainguard
                .as_ref()
                .map(|cg| (cg, options.chainguard_issuer.as_str())),
            options.session_duration,
            &env,
        )
    });
    let mut cache = match (&options.cache_dir, &key) {
        (Some(dir), Some(key)) => Some((DiskCache::at(dir.clone()), key.as_str())),
        _ => None,
    };
    // A hit, a miss, or a cache that is not private to us: warned about once, then not used.
    let cached = |cache: &mut Option<(DiskCache, &str)>| {
        let (c, k) = cache.as_ref()?;
        match c.get(k, &host, now()) {
            Ok(hit) => hit,
            Err(e) => {
                warn_untrusted(&e);
                *cache = None;
                None
            }
        }
    };
    if let Some(hit) = cached(&mut cache) {
        return Ok(response(&request.api_version, Some((&hit, now()))));
    }
    // One process fetches, the others wait for its answer on disk.
    let _lock = cache
        .as_ref()
        .and_then(|(c, k)| c.lock(k, &host, options.lock_wait));
    if let Some(hit) = cached(&mut cache) {
        return Ok(response(&request.api_version, Some((&hit, now()))));
    }
    let token = request.service_account_token.clone();
    let identity = match &planned {
        PlannedIdentity::Node {
            chained_role,
            fallback_for,
        } => {
            if let Some(sa) = fallback_for {
                tracing::info!(service_account = %sa, "no role annotation: pulling with the node's credentials (--fallback node)");
            }
            Identity::Ambient {
                chained_role: chained_role.clone(),
                // The pipeline's --session-duration applies (and is in the cache key).
                session_duration: None,
            }
        }
        PlannedIdentity::ServiceAccount {
            service_account,
            role,
            session_name,
            ..
        } => Identity::WebIdentity {
            role_arn: role.clone(),
            token_source: Arc::new(StaticTokenSource::new(
                token.clone().unwrap_or_else(|| SecretString::from("")),
                format!("serviceAccountToken of {service_account}"),
            )),
            session_name: session_name.clone(),
            session_duration: None,
        },
    };
    let target = RegistryTarget {
        host: host.clone(),
        registry: image.registry.clone(),
        chainguard_identity: chainguard.as_ref().map(|cg| cg.identity.clone()),
        chainguard_method: chainguard.as_ref().map(|cg| cg.method).unwrap_or_default(),
    };
    if let Some(cg) = &chainguard {
        tracing::debug!(identity = %cg.identity, method = %cg.method, source = ?cg.source, "Chainguard exchange");
    }
    // STS's region: the configured one, else the registry's own (nodes often set none).
    let region = std::env::var("AWS_REGION")
        .ok()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .or_else(|| match &image.registry {
            Registry::Ecr(e) if irsa_core::partition::validate_region(&e.region).is_ok() => {
                Some(e.region.clone())
            }
            _ => None,
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProviderError::Runtime(e.to_string()))?;
    let credential = runtime
        .block_on(async {
            let pipeline = Pipeline::new(PipelineOptions {
                region,
                session_duration: options.session_duration,
                chainguard_issuer: options.chainguard_issuer.clone(),
                env,
                ..PipelineOptions::default()
            })
            .await?;
            pipeline
                .registry_credentials(&identity, std::slice::from_ref(&target))
                .await
        })
        .map_err(Box::new)?;
    let credential = credential.into_iter().next().ok_or_else(|| {
        Box::new(PipelineError::MissingCredential {
            registry: host.clone(),
        })
    })?;
    let now = now();
    let (entry, lifetime) = entry_for(host, credential, token.as_ref(), now, fraction)?;
    // A credential that claims no future lifetime (moto's) is served once, never kept.
    if lifetime > 0
        && let Some((cache, key)) = &cache
        && let Err(e) = cache.put(key, &entry)
    {
        warn_untrusted(&e);
    }
    Ok(response(&request.api_version, Some((&entry, now))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ServiceAccount;

    fn sa(ns: &str, name: &str, uid: Option<&str>) -> PlannedIdentity {
        PlannedIdentity::ServiceAccount {
            service_account: ServiceAccount {
                namespace: ns.into(),
                name: name.into(),
                uid: uid.map(str::to_owned),
            },
            role: "arn:aws:iam::111122223333:role/shared".parse().unwrap(),
            annotation: "eks.amazonaws.com/role-arn".into(),
            session_name: irsa_core::arn::SessionName::for_service_account(ns, name),
        }
    }

    #[test]
    fn two_service_accounts_naming_one_role_have_distinct_cache_identities() {
        let env = Env::from_pairs([("AWS_REGION", "eu-west-1")]);
        let key = |identity: &PlannedIdentity| cache_identity(identity, None, None, &env);
        let a = key(&sa("team-a", "puller", Some("uid-a"))).unwrap();
        let b = key(&sa("team-b", "puller", Some("uid-b"))).unwrap();
        let recreated = key(&sa("team-a", "puller", Some("uid-a2"))).unwrap();
        assert_ne!(a, b);
        assert_ne!(
            a, recreated,
            "a re-created service account is another identity"
        );
        assert_eq!(
            key(&sa("team-a", "puller", None)),
            None,
            "no uid, no disk cache"
        );
        let node = key(&PlannedIdentity::Node {
            chained_role: None,
            fallback_for: None,
        })
        .unwrap();
        assert_ne!(node, a);
        let identity = sa("team-a", "puller", Some("uid-a"));
        assert_ne!(
            cache_identity(&identity, None, Some(Duration::from_secs(900)), &env).unwrap(),
            a,
            "the session duration is in the key"
        );
        let legacy = Env::from_pairs([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_STS_REGIONAL_ENDPOINTS", "legacy"),
        ]);
        assert_ne!(
            cache_identity(&identity, None, None, &legacy).unwrap(),
            a,
            "the environment is in the key"
        );
    }

    #[test]
    fn chainguard_identities_method_and_issuer_are_in_the_cache_identity() {
        use crate::plan::ChainguardSource;
        use irsa_aws::ChainguardMethod;
        let env = Env::from_pairs([("AWS_REGION", "eu-west-1")]);
        let cg = |identity: &str, method| ChainguardPlan {
            identity: identity.into(),
            method,
            source: ChainguardSource::Annotation,
        };
        let one = cg("g/one", ChainguardMethod::GetCallerIdentity);
        let two = cg("g/two", ChainguardMethod::GetCallerIdentity);
        let jwt = cg("g/one", ChainguardMethod::WebIdentityToken);
        let issuer = "https://issuer.enforce.dev";
        let key = |sa_: &PlannedIdentity, c: &ChainguardPlan, issuer: &str| {
            cache_identity(sa_, Some((c, issuer)), None, &env).unwrap()
        };
        let a = sa("team-a", "puller", Some("uid-a"));
        let b = sa("team-b", "puller", Some("uid-b"));
        let base = key(&a, &one, issuer);
        assert_ne!(
            base,
            key(&b, &two, issuer),
            "two tenants, one role, two identities"
        );
        assert_ne!(
            base,
            key(&b, &one, issuer),
            "two tenants, one role, one identity"
        );
        assert_ne!(
            base,
            key(&a, &two, issuer),
            "one service account, another identity"
        );
        assert_ne!(base, key(&a, &jwt, issuer), "the method");
        assert_ne!(base, key(&a, &one, "http://127.0.0.1:1"), "the issuer");
        assert_ne!(base, cache_identity(&a, None, None, &env).unwrap());
        assert_eq!(base, key(&a, &one, issuer), "stable");
    }

    #[test]
    fn the_cache_duration_is_the_fraction_of_the_real_lifetime_and_the_token_is_never_a_password() {
        let now = 1_800_000_000;
        let credential = |password: &str, expires_in: Option<u64>| irsa_aws::RegistryCredential {
            registry: "r".into(),
            username: "AWS".into(),
            password: SecretString::from(password),
            expires_at: expires_in.map(|s| UNIX_EPOCH + Duration::from_secs(now as u64 + s)),
        };
        let token = SecretString::from("eyJ.pod-token.sig");
        let (entry, lifetime) = entry_for(
            "r".into(),
            credential("pw", Some(43_200)),
            Some(&token),
            now,
            0.5,
        )
        .unwrap();
        assert_eq!(lifetime, 43_200);
        let r = response("v", Some((&entry, now)));
        assert_eq!(r.cache_duration, Some(Duration::from_secs(21_600)));
        let (entry, lifetime) =
            entry_for("r".into(), credential("pw", Some(43_200)), None, now, 0.25).unwrap();
        assert_eq!((lifetime, entry.refresh_at - now), (43_200, 10_800));
        // moto's expiry in the past, or none: served once, kept for no time.
        for expires in [None, Some(0)] {
            let (entry, lifetime) =
                entry_for("r".into(), credential("pw", expires), None, now, 0.5).unwrap();
            assert_eq!(lifetime, 0);
            assert_eq!(
                response("v", Some((&entry, now))).cache_duration,
                Some(Duration::ZERO)
            );
        }
        let err = entry_for(
            "r".into(),
            credential("eyJ.pod-token.sig", Some(100)),
            Some(&token),
            now,
            0.5,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("service-account token as its password") && !err.contains("pod-token"),
            "{err}"
        );
    }

    #[test]
    fn non_ecr_images_get_an_empty_answer_and_bad_options_are_refused() {
        let req = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"ghcr.io/x/y:1"}"#;
        let r = respond(&Options::default(), req).unwrap();
        assert!(r.auth.is_empty());
        assert_eq!(
            r.render().expose(),
            r#"{"kind":"CredentialProviderResponse","apiVersion":"credentialprovider.kubelet.k8s.io/v1","cacheKeyType":"Registry","auth":{}}"#
        );
        let bad = Options {
            refresh_fraction: 0.0,
            ..Options::default()
        };
        assert!(
            respond(&bad, req)
                .unwrap_err()
                .to_string()
                .contains("--refresh-fraction")
        );
    }
}
