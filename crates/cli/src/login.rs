//! `irsa login`, `irsa docker-credential` and `irsa argocd-credentials`: registry credentials
//! from workload identity for people, docker/podman/skopeo and Argo CD Image Updater.
//!
//! Each is a short-lived process, so credentials are also kept on disk (mode 0600) until their
//! refresh point: a warm call reads one small file and starts no runtime, no SDK, no network.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use irsa_aws::{
    ChainguardMethod, FileTokenSource, Identity, Pipeline, PipelineOptions, RegistryTarget,
};
use irsa_core::arn::{RoleArn, SessionName};
use irsa_core::docker_config::DockerConfig;
use irsa_core::secret::SecretString;
use irsa_core::token;
use serde_json::json;

use crate::{Invalid, Verdict};
use irsa_aws::disk_cache::{CacheKey, DiskCache, Entry};

/// Fraction of a credential's lifetime after which the disk cache stops serving it.
const DISK_REFRESH_FRACTION: f64 = 0.5;

/// Whose AWS identity mints the registry credentials.
#[derive(Debug, Args)]
pub(crate) struct IdentityArgs {
    /// The IAM role to assume with the web-identity token.
    #[arg(long, value_name = "ARN", env = "AWS_ROLE_ARN")]
    role_arn: Option<String>,
    /// The web-identity (service-account) token file; re-read at every exchange.
    #[arg(long, value_name = "FILE", env = "AWS_WEB_IDENTITY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The role session name (CloudTrail). Default: irsa-<namespace>.<name> from the token.
    #[arg(long, value_name = "NAME", env = "AWS_ROLE_SESSION_NAME")]
    session_name: Option<String>,
    /// A role to assume with the ambient credentials (cross-account). The ambient chain includes
    /// the IRSA variables (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), so on an IRSA pod this is
    /// "my pod's role, then this one".
    #[arg(long, value_name = "ARN")]
    assume_role: Option<String>,
    /// The Chainguard assumable identity (for cgr.dev), e.g. <group id>/<identity id>.
    #[arg(long, value_name = "ID", env = "IRSA_CHAINGUARD_IDENTITY")]
    chainguard_identity: Option<String>,
    /// Chainguard's token issuer (the exchange endpoint and the proof's audience).
    #[arg(
        long,
        value_name = "URL",
        env = "IRSA_CHAINGUARD_ISSUER",
        default_value = "https://issuer.enforce.dev"
    )]
    chainguard_issuer: String,
    /// How the AWS identity is proven to Chainguard: get-caller-identity (a signed
    /// sts:GetCallerIdentity request; the identity's aws_identity) or web-identity-token (an STS
    /// GetWebIdentityToken JWT for the issuer's audience, IAM outbound identity federation:
    /// the account must have it enabled, the identity must trust its outbound issuer, and the
    /// issuer URL must be https).
    #[arg(
        long,
        value_name = "METHOD",
        env = "IRSA_CHAINGUARD_METHOD",
        default_value = "get-caller-identity",
        value_parser = str::parse::<ChainguardMethod>
    )]
    chainguard_method: ChainguardMethod,
    /// The role session's duration asked of STS (15m to 12h, at most the role's maximum
    /// session duration; a chained --assume-role at most 1h). Unset: STS's default, 1h.
    #[arg(long, value_name = "DURATION", env = "IRSA_SESSION_DURATION", value_parser = parse_session_duration)]
    session_duration: Option<std::time::Duration>,
    /// Do not read or write the on-disk credential cache ($XDG_CACHE_HOME/irsa).
    #[arg(long)]
    no_cache: bool,
}

/// STS's bounds on `DurationSeconds`: 15 minutes to 12 hours (the role's own maximum, and 1 hour
/// for a chained role, are STS's to enforce: its refusal names them).
pub(crate) fn parse_session_duration(s: &str) -> Result<std::time::Duration, String> {
    // One rule for the flag and the CRDs' `spec.identity.sessionDuration`.
    irsa_k8s::validation::parse_session_duration(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LoginOutput {
    /// `{"auths":{…}}` for skopeo/podman `--authfile`, a pull secret, or ~/.docker/config.json.
    Dockerconfigjson,
    /// The bare password, as `aws ecr get-login-password` prints it (one registry only).
    Password,
    /// `[{"registry","username","password","expires_at"}]` for scripts (`expires_at` null when
    /// the registry did not say).
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Registries or image references: ECR (any partition), ECR Public, cgr.dev.
    #[arg(required = true, value_name = "IMAGE_OR_REGISTRY")]
    registries: Vec<String>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// What to print.
    #[arg(long, short = 'o', value_enum, default_value = "dockerconfigjson")]
    output: LoginOutput,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DockerCredentialCommand {
    /// Read a server URL on stdin, print {"ServerURL","Username","Secret"}.
    Get,
    /// Print the registries with cached credentials: {"<server URL>": "<username>"}.
    List,
    /// Refused: irsa mints credentials, it does not store them.
    Store,
    /// Read a server URL on stdin and drop its cached credential.
    Erase,
}

#[derive(Debug, Args)]
pub(crate) struct DockerCredentialArgs {
    #[command(subcommand)]
    command: DockerCredentialCommand,
    #[command(flatten)]
    identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ArgocdArgs {
    /// The registry (or an image in it) Argo CD Image Updater asks about.
    #[arg(value_name = "REGISTRY")]
    registry: String,
    #[command(flatten)]
    identity: IdentityArgs,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The identity the flags and the standard AWS variables describe, and its cache key.
fn identity(args: &IdentityArgs) -> anyhow::Result<Identity> {
    if let Some(role) = &args.assume_role {
        let chained = role
            .parse::<RoleArn>()
            .map_err(|e| Invalid(format!("--assume-role: {e}")))?;
        return Ok(Identity::Ambient {
            chained_role: Some(chained),
            // The pipeline's --session-duration applies.
            session_duration: None,
        });
    }
    match (&args.role_arn, &args.token_file) {
        (Some(role), Some(file)) => {
            let role_arn: RoleArn = role.parse().map_err(|e| Invalid(format!("--role-arn / AWS_ROLE_ARN: {e}")))?;
            let session_name = match &args.session_name {
                Some(name) => SessionName::new(name).map_err(|e| Invalid(format!("--session-name: {e}")))?,
                None => session_name_from_token(file),
            };
            Ok(Identity::WebIdentity {
                role_arn,
                token_source: Arc::new(FileTokenSource::new(file.clone())),
                session_name,
                session_duration: None,
            })
        }
        (Some(_), None) => Err(Invalid(
            "--role-arn (AWS_ROLE_ARN) is set but no token file: pass --token-file or set AWS_WEB_IDENTITY_TOKEN_FILE (on EKS: /var/run/secrets/eks.amazonaws.com/serviceaccount/token)".to_owned(),
        )
        .into()),
        (None, Some(_)) => Err(Invalid(
            "--token-file (AWS_WEB_IDENTITY_TOKEN_FILE) is set but no role: pass --role-arn or set AWS_ROLE_ARN".to_owned(),
        )
        .into()),
        (None, None) => Ok(Identity::Ambient { chained_role: None, session_duration: None }),
    }
}

/// `irsa-<namespace>.<name>` from a service-account token, else `irsa-login`.
fn session_name_from_token(file: &PathBuf) -> SessionName {
    let sa = read_token_file(file)
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|raw| token::decode_unverified(&raw).ok())
        .and_then(|t| t.claims.service_account());
    match sa {
        Some(sa) => irsa_aws::sts::session_name_for(&sa.namespace, &sa.name),
        None => SessionName::derive("irsa-login"),
    }
}

/// The disk cache's identity: a hash of everything that decides the credential — the identity,
/// the token itself (a new or different token is a miss, so STS judges it), the session
/// duration, the AWS environment ([`irsa_aws::disk_cache::KEY_ENV`], the same list the kubelet
/// credential provider uses) and, for Chainguard, the identity and issuer. Each part is
/// length-prefixed, so no two different inputs share a key.
fn cache_identity(identity: &Identity, args: &IdentityArgs) -> String {
    let mut key = CacheKey::new("login");
    key.part(identity.cache_key());
    if let Identity::WebIdentity { .. } = identity
        && let Some(file) = &args.token_file
    {
        key.part(read_token_file(file).unwrap_or_default());
    }
    key.part(
        args.session_duration
            .map_or(0, |d| d.as_secs())
            .to_be_bytes(),
    )
    .environment(&irsa_aws::Env::Process)
    .part(args.chainguard_identity.as_deref().unwrap_or(""))
    .part(&args.chainguard_issuer)
    .part(args.chainguard_method.as_str());
    key.finish()
}

/// The token file's bytes, at most 64 KiB (a token file is a few KiB; never read /dev/zero whole).
fn read_token_file(file: &PathBuf) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

fn targets(inputs: &[String], args: &IdentityArgs) -> anyhow::Result<Vec<RegistryTarget>> {
    let mut out: Vec<RegistryTarget> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let target = RegistryTarget::parse(input, args.chainguard_identity.as_deref())
            .map_err(|e| Invalid(e.to_string()))?
            .with_chainguard_method(args.chainguard_method);
        // Checked for cgr.dev only: an environment shared by all of Argo CD's repositories
        // may hold a malformed identity that must not break its ECR ones.
        if target.registry == irsa_core::registry::Registry::Chainguard {
            crate::input::chainguard_identity(args.chainguard_identity.as_deref())?;
        }
        if !out.iter().any(|t| t.host == target.host) {
            out.push(target);
        }
    }
    Ok(out)
}

/// Credentials for every target: from the disk cache where it can serve, the pipeline otherwise.
fn credentials(
    args: &IdentityArgs,
    targets: &[RegistryTarget],
) -> anyhow::Result<Result<Vec<Entry>, String>> {
    let identity = identity(args)?;
    let cache_key = cache_identity(&identity, args);
    let cache = if args.no_cache {
        None
    } else {
        DiskCache::from_env()
    };
    let now = now();
    let mut cache = cache;
    let mut found: Vec<Option<Entry>> = Vec::with_capacity(targets.len());
    for t in targets {
        let hit = match cache.as_ref().map(|c| c.get(&cache_key, &t.host, now)) {
            Some(Ok(hit)) => hit,
            Some(Err(e)) => {
                // Not private to this user: one warning, then no cache for this run.
                tracing::warn!("{e}");
                cache = None;
                None
            }
            None => None,
        };
        found.push(hit);
    }
    let missing: Vec<RegistryTarget> = targets
        .iter()
        .zip(&found)
        .filter(|(_, hit)| hit.is_none())
        .map(|(t, _)| t.clone())
        .collect();
    if !missing.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let fetched = runtime.block_on(async {
            let options = PipelineOptions {
                chainguard_issuer: args.chainguard_issuer.clone(),
                session_duration: args.session_duration,
                ..PipelineOptions::default()
            };
            let pipeline = Pipeline::new(options).await?;
            pipeline.registry_credentials(&identity, &missing).await
        });
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.to_string())),
        };
        for cred in fetched {
            let expires_at = cred
                .expires_at
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            let lifetime = expires_at.map_or(0, |e| (e - now).max(0));
            let entry = Entry {
                registry: cred.registry.clone(),
                username: cred.username.clone(),
                password: cred.password.clone(),
                expires_at,
                refresh_at: now + (lifetime as f64 * DISK_REFRESH_FRACTION) as i64,
            };
            // A credential that claims no future lifetime is served once and never cached.
            if let Some(cache) = &cache
                && lifetime > 0
                && let Err(e) = cache.put(&cache_key, &entry)
            {
                tracing::warn!("{e}");
            }
            if let Some(slot) = targets.iter().position(|t| t.host == cred.registry) {
                found[slot] = Some(entry);
            }
        }
    }
    let mut out = Vec::with_capacity(found.len());
    for (target, entry) in targets.iter().zip(found) {
        match entry {
            Some(e) => out.push(e),
            None => {
                return Ok(Err(format!(
                    "no credential came back for registry {}",
                    target.host
                )));
            }
        }
    }
    Ok(Ok(out))
}

pub(crate) fn login(args: LoginArgs) -> anyhow::Result<Verdict> {
    let targets = targets(&args.registries, &args.identity)?;
    if args.output == LoginOutput::Password && targets.len() != 1 {
        return Err(Invalid(format!(
            "--output password prints one password, but {} registries were given: name one, or use --output dockerconfigjson",
            targets.len()
        ))
        .into());
    }
    let entries = match credentials(&args.identity, &targets)? {
        Ok(e) => e,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(Verdict::No);
        }
    };
    match args.output {
        LoginOutput::Password => println!("{}", entries[0].password.expose()),
        LoginOutput::Dockerconfigjson => {
            let mut config = DockerConfig::new();
            for e in &entries {
                config.insert(e.registry.clone(), e.username.clone(), e.password.clone());
            }
            println!("{}", config.render().expose());
        }
        LoginOutput::Json => {
            let rows: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "registry": e.registry,
                        "username": e.username,
                        "password": e.password.expose(),
                        "expires_at": e.expires_at.map(irsa_core::time::rfc3339),
                    })
                })
                .collect();
            println!(
                "{}",
                SecretString::new(serde_json::Value::Array(rows).to_string()).expose()
            );
        }
    }
    Ok(Verdict::Ok)
}

pub(crate) fn argocd(args: ArgocdArgs) -> anyhow::Result<Verdict> {
    let targets = targets(std::slice::from_ref(&args.registry), &args.identity)?;
    match credentials(&args.identity, &targets)? {
        Ok(entries) => {
            println!("{}:{}", entries[0].username, entries[0].password.expose());
            Ok(Verdict::Ok)
        }
        Err(message) => {
            eprintln!("error: {message}");
            Ok(Verdict::No)
        }
    }
}

/// The docker credential-helper protocol: a server URL on stdin, JSON on stdout, and the
/// "credentials not found" sentence docker recognises when irsa has nothing for that registry.
pub(crate) fn docker_credential(args: DockerCredentialArgs) -> anyhow::Result<Verdict> {
    const NOT_FOUND: &str = "credentials not found in native keychain";
    match args.command {
        DockerCredentialCommand::Get => {
            let server_url = read_server_url()?;
            // Docker reads stdout: the not-found sentence makes it fall back to anonymous pulls,
            // which is right only for registries irsa does not serve. Any other failure is
            // printed there too, so `docker pull` shows the reason (a trust policy, a permission).
            let target = match RegistryTarget::parse(
                &server_url,
                args.identity.chainguard_identity.as_deref(),
            ) {
                Ok(t) => {
                    // Checked for cgr.dev only: a malformed identity must not break ECR pulls.
                    if t.registry == irsa_core::registry::Registry::Chainguard
                        && let Err(e) = crate::input::chainguard_identity(
                            args.identity.chainguard_identity.as_deref(),
                        )
                    {
                        println!("irsa: {e}");
                        return Ok(Verdict::No);
                    }
                    t.with_chainguard_method(args.identity.chainguard_method)
                }
                Err(irsa_aws::TargetError::Unsupported { .. }) => {
                    println!("{NOT_FOUND}");
                    return Ok(Verdict::No);
                }
                Err(e) => {
                    println!("irsa: {e}");
                    return Ok(Verdict::No);
                }
            };
            match credentials(&args.identity, std::slice::from_ref(&target)) {
                Ok(Ok(entries)) => {
                    let e = &entries[0];
                    let body = json!({"ServerURL": server_url, "Username": e.username, "Secret": e.password.expose()});
                    println!("{}", SecretString::new(body.to_string()).expose());
                    Ok(Verdict::Ok)
                }
                Ok(Err(message)) => {
                    println!("irsa: {message}");
                    Ok(Verdict::No)
                }
                Err(error) => {
                    println!("irsa: {error}");
                    Ok(Verdict::No)
                }
            }
        }
        DockerCredentialCommand::List => {
            let mut listing = serde_json::Map::new();
            let cache = if args.identity.no_cache {
                None
            } else {
                DiskCache::from_env()
            };
            if let (Some(cache), Ok(identity)) = (cache, identity(&args.identity)) {
                let key = cache_identity(&identity, &args.identity);
                for e in cache.list(&key, now()) {
                    listing.insert(format!("https://{}", e.registry), json!(e.username));
                }
            }
            println!("{}", serde_json::Value::Object(listing));
            Ok(Verdict::Ok)
        }
        DockerCredentialCommand::Store => {
            let mut sink = String::new();
            let _ = std::io::stdin().take(1 << 20).read_to_string(&mut sink);
            drop(SecretString::new(sink));
            eprintln!(
                "irsa mints registry credentials from workload identity on demand; it does not store credentials"
            );
            Ok(Verdict::No)
        }
        DockerCredentialCommand::Erase => {
            let server_url = read_server_url()?;
            let identity = identity(&args.identity)?;
            let key = cache_identity(&identity, &args.identity);
            let host = irsa_core::registry::parse(&server_url)
                .map_err(|e| Invalid(format!("server URL on stdin: {e}")))?
                .host;
            if let Some(cache) = DiskCache::from_env() {
                cache.remove(&key, &host)?;
            }
            Ok(Verdict::Ok)
        }
    }
}

fn read_server_url() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)?;
    let url = input.trim();
    if url.is_empty() {
        return Err(Invalid(
            "expected a registry server URL on stdin (the docker credential-helper protocol)"
                .to_owned(),
        )
        .into());
    }
    Ok(url.to_owned())
}
