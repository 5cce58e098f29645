//! Argo CD repository secrets with workload identity, decided without I/O: which keys of a
//! repository secret irsa reads ([`RepoKeys`]), whether it opts in, which service account,
//! audience, ECR registry (region and partition) and STS endpoint it asks for ([`decide`]),
//! which `workloadIdentityTokenURL` may receive a service-account token
//! ([`check_token_url`]), and the `irsa.dev/status` texts. Everything here reads bytes a
//! secret's author wrote: it never panics, and it has a fuzz target (`fuzz/argocd_repo_secret`).

use crate::arn::RoleArn;
use crate::names::STS_AUDIENCE;
use crate::partition::{EndpointVariant, sts_endpoint, validate_region};
use crate::registry::{EcrRegistry, parse_ecr_host};

/// The label Argo CD finds its repository secrets by.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// The label values irsa serves: a repository and a credential template.
pub const SECRET_TYPES: [&str; 2] = ["repository", "repo-creds"];
/// Names the service account of a repository secret (in the Argo CD namespace).
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "irsa.dev/service-account";
/// What irsa last did with a repository secret: `Ready: …`, `Error: …`, `Conflict: …`.
pub const STATUS_ANNOTATION: &str = "irsa.dev/status";
/// The identity of a repository secret without project: Argo CD's repo-server.
pub const REPO_SERVER_SERVICE_ACCOUNT: &str = "argocd-repo-server";
/// A project's service account is this prefix and the project's name.
pub const PROJECT_SERVICE_ACCOUNT_PREFIX: &str = "argocd-project-";
/// The field manager of `data.username` and `data.password`.
pub const DATA_MANAGER: &str = "irsa-argocd";
/// The field manager of the [`STATUS_ANNOTATION`] (apart, so that a conflict on the data can
/// still be reported, and so that an apply of one never drops the other).
pub const STATUS_MANAGER: &str = "irsa-argocd-status";
/// Refresh at this fraction of a credential's lifetime (ECR: 6 of 12 hours).
pub const REFRESH_FRACTION: f64 = 0.5;
/// How many distinct (STS region, token URL) pairs get a pipeline; more are refused.
pub const MAX_PIPELINES: usize = 64;
/// Longest value read from a repository secret's keys.
pub const MAX_VALUE_LEN: usize = 4096;
/// On a service account: the Argo CD projects (comma-separated) whose repository secrets may
/// name it with [`SERVICE_ACCOUNT_ANNOTATION`] (its consent; without it only the project's own
/// `argocd-project-<project>` and [`REPO_SERVER_SERVICE_ACCOUNT`] may be named).
pub const PROJECTS_ANNOTATION: &str = "irsa.dev/argocd-projects";

/// What the operator allows beyond the built-in rules (`irsa controller --argocd-token-url`,
/// `--argocd-audience`): a secret's author chooses the token URL and the audience, so anything
/// but an AWS STS endpoint and `sts.amazonaws.com` must be listed there, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// `workloadIdentityTokenURL` values accepted as they are (e.g. a loopback STS for tests).
    pub token_urls: Vec<String>,
    /// `workloadIdentityAudience` values accepted besides `sts.amazonaws.com`.
    pub audiences: Vec<String>,
}

/// The keys irsa reads from a repository secret, and nothing else of its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoKeys {
    /// `url`.
    pub url: Option<String>,
    /// `type` (`helm`, `oci`, `git`).
    pub type_: Option<String>,
    /// `enableOCI`.
    pub enable_oci: Option<String>,
    /// `project`.
    pub project: Option<String>,
    /// `workloadIdentityProvider`.
    pub provider: Option<String>,
    /// `useWorkloadIdentity`.
    pub use_workload_identity: Option<String>,
    /// `workloadIdentityTokenURL`.
    pub token_url: Option<String>,
    /// `workloadIdentityAudience`.
    pub audience: Option<String>,
    /// The [`SERVICE_ACCOUNT_ANNOTATION`].
    pub service_account: Option<String>,
    /// Keys that were there but unreadable (not UTF-8, too long): named in the status.
    pub unreadable: Vec<&'static str>,
}

const KEYS: [&str; 8] = [
    "url",
    "type",
    "enableOCI",
    "project",
    "workloadIdentityProvider",
    "useWorkloadIdentity",
    "workloadIdentityTokenURL",
    "workloadIdentityAudience",
];

impl RepoKeys {
    /// Reads the needed keys from a secret's `data` entries and its
    /// [`SERVICE_ACCOUNT_ANNOTATION`]; every other key is skipped unread (the caller drops the
    /// secret right after).
    pub fn read<'a>(
        service_account_annotation: Option<&str>,
        data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Self {
        let mut keys = RepoKeys {
            service_account: service_account_annotation.map(|s| s.trim().to_owned()),
            ..RepoKeys::default()
        };
        for (key, bytes) in data {
            let Some(key) = KEYS.iter().copied().find(|k| *k == key) else {
                continue;
            };
            let value = match std::str::from_utf8(bytes) {
                Ok(v) if v.len() <= MAX_VALUE_LEN => v.trim().to_owned(),
                _ => {
                    keys.unreadable.push(key);
                    continue;
                }
            };
            let slot = match key {
                "url" => &mut keys.url,
                "type" => &mut keys.type_,
                "enableOCI" => &mut keys.enable_oci,
                "project" => &mut keys.project,
                "workloadIdentityProvider" => &mut keys.provider,
                "useWorkloadIdentity" => &mut keys.use_workload_identity,
                "workloadIdentityTokenURL" => &mut keys.token_url,
                _ => &mut keys.audience,
            };
            *slot = Some(value);
        }
        keys
    }

    /// Whether the secret asks for AWS workload identity. `workloadIdentityProvider` decides
    /// when present (another provider's secret is not irsa's); else `useWorkloadIdentity`.
    pub fn opts_in(&self) -> bool {
        match self.provider.as_deref() {
            Some(p) if !p.is_empty() => p.eq_ignore_ascii_case("aws"),
            _ => self
                .use_workload_identity
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// What an opted-in repository secret asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The service account (in the Argo CD namespace).
    pub service_account: String,
    /// The token audience.
    pub audience: String,
    /// The ECR registry host, as in the URL.
    pub host: String,
    /// The registry parsed: its region and partition.
    pub registry: EcrRegistry,
    /// The STS endpoint URL a tenant asked for (`workloadIdentityTokenURL`), checked.
    pub token_url: Option<String>,
    /// The service account was named by the [`SERVICE_ACCOUNT_ANNOTATION`] and is neither the
    /// project's own nor the repo-server's: it must consent ([`PROJECTS_ANNOTATION`] listing
    /// this project, `None` when the secret has none — then it cannot).
    pub needs_consent: Option<Option<String>>,
}

impl Wanted {
    /// The STS endpoint the exchange uses when no URL is configured: the registry's region.
    pub fn sts_endpoint(&self) -> String {
        match &self.token_url {
            Some(url) => url.clone(),
            None => match sts_endpoint(&self.registry.region, EndpointVariant::PLAIN) {
                Ok(host) => format!("https://{host}"),
                Err(e) => format!("(no STS endpoint for {}: {e})", self.registry.region),
            },
        }
    }
}

/// What to do with a repository secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It does not opt in: irsa owns nothing in it.
    NotOptedIn,
    /// It opts in but cannot be served: why, and how to fix it.
    Invalid(String),
    /// Serve it.
    Serve(Wanted),
}

/// Decides what the secret `namespace/name` with `keys` asks for.
pub fn decide(namespace: &str, name: &str, keys: &RepoKeys, allowed: &Allowed) -> Decision {
    if !keys.opts_in() {
        return Decision::NotOptedIn;
    }
    match wanted(namespace, name, keys, allowed) {
        Ok(w) => Decision::Serve(w),
        Err(e) => Decision::Invalid(e),
    }
}

fn wanted(
    namespace: &str,
    name: &str,
    keys: &RepoKeys,
    allowed: &Allowed,
) -> Result<Wanted, String> {
    if let Some(key) = keys.unreadable.first() {
        return Err(format!(
            "repository secret {namespace}/{name}: key {key} is not UTF-8 text of at most \
             {MAX_VALUE_LEN} bytes: rewrite it"
        ));
    }
    let url = keys
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            format!(
                "repository secret {namespace}/{name} has no url: set url to the ECR repository, \
             e.g. oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts"
            )
        })?;
    let oci_url = url
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("oci://"));
    let type_ = keys.type_.as_deref().unwrap_or("");
    let oci = oci_url
        || type_.eq_ignore_ascii_case("oci")
        || (type_.eq_ignore_ascii_case("helm")
            && keys
                .enable_oci
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true")));
    if !oci {
        return Err(format!(
            "repository secret {namespace}/{name} opts in to AWS workload identity but is not an \
             OCI repository (type {type_:?}): irsa fills ECR credentials for OCI repositories \
             only; set type: oci, or type: helm with enableOCI: \"true\", or an oci:// url"
        ));
    }
    let host = registry_host(url)
        .map_err(|why| format!("repository secret {namespace}/{name}: url {url:?} {why}"))?;
    let registry = parse_ecr_host(&host).map_err(|e| {
        format!(
            "repository secret {namespace}/{name}: url {url:?} is not an Amazon ECR private \
             registry ({e}); irsa fills credentials for <account>.dkr.ecr.<region>.amazonaws.com \
             (and the other ECR host forms) only"
        )
    })?;
    let (service_account, needs_consent) = service_account(namespace, name, keys)?;
    let audience = match keys.audience.as_deref() {
        None | Some("") => STS_AUDIENCE.to_owned(),
        Some(a) if a == STS_AUDIENCE || allowed.audiences.iter().any(|x| x == a) => a.to_owned(),
        Some(a) => {
            return Err(format!(
                "repository secret {namespace}/{name}: workloadIdentityAudience {a:?} is refused: \
                 the service-account token is minted for this audience, so irsa asks only for \
                 {STS_AUDIENCE} or an audience the operator allows with `irsa controller \
                 --argocd-audience AUD`; remove the key (for {STS_AUDIENCE}) or ask the operator"
            ));
        }
    };
    let token_url = match keys.token_url.as_deref() {
        None | Some("") => None,
        Some(u) => Some(check_token_url(u, &allowed.token_urls).map_err(|why| {
            format!("repository secret {namespace}/{name}: workloadIdentityTokenURL {u:?} {why}")
        })?),
    };
    Ok(Wanted {
        service_account,
        audience,
        host,
        registry,
        token_url,
        needs_consent,
    })
}

/// The registry host of a repository URL: `oci://`, `https://` or none, up to the first `/`.
pub fn registry_host(url: &str) -> Result<String, String> {
    let lower_scheme = url.find("://").map(|i| url[..i].to_ascii_lowercase());
    let rest = match lower_scheme.as_deref() {
        Some("oci") | Some("https") => &url[url.find("://").map_or(0, |i| i + 3)..],
        Some(other) => return Err(format!("has scheme {other}://; use oci:// or https://")),
        None => url,
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if host.contains('@') {
        return Err(
            "carries user information; remove it (irsa fills username and password)".to_owned(),
        );
    }
    Ok(host.to_ascii_lowercase())
}

/// The service account and, when the annotation named one that must consent, the project it
/// must consent to (`Some(None)`: the secret has no project).
#[allow(clippy::type_complexity)]
fn service_account(
    namespace: &str,
    name: &str,
    keys: &RepoKeys,
) -> Result<(String, Option<Option<String>>), String> {
    let project = keys.project.as_deref().filter(|p| !p.is_empty());
    let own = project.map(|p| format!("{PROJECT_SERVICE_ACCOUNT_PREFIX}{p}"));
    let (sa, from, needs_consent) = match (&keys.service_account, project) {
        (Some(sa), _) if !sa.is_empty() => {
            let consent = (Some(sa) != own.as_ref() && sa != REPO_SERVER_SERVICE_ACCOUNT)
                .then(|| project.map(str::to_owned));
            (
                sa.clone(),
                format!("annotation {SERVICE_ACCOUNT_ANNOTATION}"),
                consent,
            )
        }
        (_, Some(p)) => (
            format!("{PROJECT_SERVICE_ACCOUNT_PREFIX}{p}"),
            format!("project {p:?}"),
            None,
        ),
        _ => (
            REPO_SERVER_SERVICE_ACCOUNT.to_owned(),
            "no project: Argo CD's repo-server".to_owned(),
            None,
        ),
    };
    if !is_dns_subdomain(&sa) {
        return Err(format!(
            "repository secret {namespace}/{name}: service account name {sa:?} (from {from}) is \
             not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
        ));
    }
    Ok((sa, needs_consent))
}

/// Whether service account `namespace/sa`, whose [`PROJECTS_ANNOTATION`] is `consent`, may be
/// named by a repository secret of `project`: an explicit, comma-separated list of projects
/// (no wildcard); a secret without a project never gets consent. `Err` says why and the fix.
pub fn check_consent(
    namespace: &str,
    name: &str,
    sa: &str,
    project: Option<&str>,
    consent: Option<&str>,
) -> Result<(), String> {
    let listed = |p: &str| {
        consent.is_some_and(|c| c.split(',').map(str::trim).any(|x| !x.is_empty() && x == p))
    };
    match project {
        Some(p) if listed(p) => Ok(()),
        Some(p) => Err(format!(
            "repository secret {namespace}/{name} of project {p:?} names service account \
             {namespace}/{sa} (annotation {SERVICE_ACCOUNT_ANNOTATION}), which is neither the \
             project's own ({PROJECT_SERVICE_ACCOUNT_PREFIX}{p}) nor {REPO_SERVER_SERVICE_ACCOUNT} \
             and does not consent: list the project on the service account (kubectl -n \
             {namespace} annotate serviceaccount {sa} {PROJECTS_ANNOTATION}={p}, comma-separated \
             for several) or remove the annotation from the secret"
        )),
        None => Err(format!(
            "repository secret {namespace}/{name} has no project but names service account \
             {namespace}/{sa} (annotation {SERVICE_ACCOUNT_ANNOTATION}): only a project's secret \
             may use a service account that consents ({PROJECTS_ANNOTATION}); set project, or \
             remove the annotation (then {REPO_SERVER_SERVICE_ACCOUNT} is used)"
        )),
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a `workloadIdentityTokenURL`: the service-account token goes there, so it is accepted
/// only when the operator listed it exactly in `allowed` (`--argocd-token-url`; the only way
/// to a loopback or test server) or when it is `https://` to an AWS STS host —
/// `sts.amazonaws.com`, `sts[-fips].<region>.amazonaws.com`, `sts.<region>.amazonaws.com.cn`,
/// `sts[-fips].<region>.api.aws`, `<endpoint>.sts.<region>.vpce.amazonaws.com` — with an
/// optional port and no user information, path, query or fragment. Any other host on an AWS
/// domain (an API Gateway `execute-api` host, which anyone can create) is refused.
pub fn check_token_url(url: &str, allowed: &[String]) -> Result<String, String> {
    let bare = |u: &str| u.trim().trim_end_matches('/').to_owned();
    if allowed.iter().any(|a| bare(a) == bare(url)) {
        return Ok(bare(url));
    }
    const FIX: &str = "remove the key (irsa uses the registry region's STS endpoint), or have \
         the operator allow this exact URL with `irsa controller --argocd-token-url URL`";
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("is not a URL: use https://sts.<region>.amazonaws.com, or {FIX}"))?;
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "uses {scheme}://: only https carries the service-account token; {FIX}"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !(tail.is_empty() || tail == "/") {
        return Err(format!(
            "has a path, query or fragment: give the STS endpoint alone, e.g. \
             https://sts.us-gov-west-1.amazonaws.com; or {FIX}"
        ));
    }
    if authority.contains('@') {
        return Err(format!("carries user information; {FIX}"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("has an unclosed IPv6 literal; {FIX}"))?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("has an invalid IPv6 literal [{inside}]; {FIX}"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("has {p:?} after its IPv6 literal; {FIX}"))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u16>().map_or(true, |n| n == 0))
    {
        return Err(format!("has an invalid port {p:?}; {FIX}"));
    }
    if !is_sts_host(&host) {
        return Err(format!(
            "names host {host:?}, which is not an AWS STS endpoint: the service-account token is \
             sent there, so irsa accepts only sts.amazonaws.com, sts[-fips].<region>.amazonaws.com, \
             sts.<region>.amazonaws.com.cn, sts[-fips].<region>.api.aws and \
             <endpoint>.sts.<region>.vpce.amazonaws.com; {FIX}"
        ));
    }
    Ok(match port {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    })
}

/// An AWS STS host: global, regional (plain, FIPS, dual-stack) as irsa-core's
/// [`sts_endpoint`] forms it for the region, or a VPC interface endpoint of STS.
fn is_sts_host(host: &str) -> bool {
    if host == crate::names::STS_HOST {
        return true;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let is_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() >= 5 && labels[1] == "sts" && labels[3] == "vpce" && is_label(labels[0]) {
        if let Ok(partition) = validate_region(labels[2]) {
            return labels[4..].join(".") == partition.dns_suffix();
        }
        return false;
    }
    if labels.len() >= 3 && (labels[0] == "sts" || labels[0] == "sts-fips") {
        return EndpointVariant::ALL
            .iter()
            .any(|v| sts_endpoint(labels[1], *v).is_ok_and(|h| h == host));
    }
    false
}

/// The status annotation of a served secret.
pub fn ready_status(wanted: &Wanted, role: &RoleArn, namespace: &str, expires_at: i64) -> String {
    format!(
        "Ready: username and password for {} (region {}, partition {}) from role {role} as \
         service account {namespace}/{}, via STS {}; valid until {}, refreshed before then",
        wanted.host,
        wanted.registry.region,
        wanted.registry.partition.id(),
        wanted.service_account,
        wanted.sts_endpoint(),
        crate::time::rfc3339(expires_at),
    )
}

/// The name the Argo CD guide's troubleshooting gives a failure, if it is one it names.
fn guide_name(cause: &str) -> Option<&'static str> {
    let denied = cause.contains("was denied");
    if denied && cause.contains("sts:AssumeRoleWithWebIdentity") {
        Some("AccessDenied")
    } else if denied && cause.contains("ecr:GetAuthorizationToken") {
        Some("AccessDeniedException")
    } else {
        None
    }
}

/// The status annotation of a failure; `last_good` is when the credentials irsa wrote expire.
pub fn error_status(cause: &str, last_good: Option<i64>) -> String {
    let named;
    let cause = match guide_name(cause) {
        Some(name) => {
            named = format!("{name}: {cause}");
            named.as_str()
        }
        None => cause,
    };
    match last_good {
        Some(t) => format!(
            "Error: {cause} (the last good credentials stay until they expire at {})",
            crate::time::rfc3339(t)
        ),
        None => format!("Error: {cause}"),
    }
}

/// The status annotation of a conflict: someone else set `username`/`password`.
pub fn conflict_status(namespace: &str, name: &str, detail: &str) -> String {
    format!(
        "Conflict: data.username or data.password of {namespace}/{name} were set by another field \
         manager ({detail}); irsa leaves them alone. To let irsa fill them, remove both keys \
         (kubectl -n {namespace} patch secret {name} --type=json -p \
         '[{{\"op\":\"remove\",\"path\":\"/data/username\"}},{{\"op\":\"remove\",\"path\":\"/data/password\"}}]'), \
         or stop opting in"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> RepoKeys {
        RepoKeys::read(None, pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    const GUIDE: &[(&str, &str)] = &[
        ("type", "helm"),
        ("url", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ("enableOCI", "true"),
        ("useWorkloadIdentity", "true"),
        ("workloadIdentityProvider", "aws"),
        ("project", "production"),
    ];

    #[test]
    fn the_guides_secret_is_served_as_the_projects_service_account() {
        let Decision::Serve(w) = decide("argocd", "repo", &keys(GUIDE), &Allowed::default()) else {
            panic!("served")
        };
        assert_eq!(w.service_account, "argocd-project-production");
        assert_eq!(w.audience, "sts.amazonaws.com");
        assert_eq!(w.registry.region, "eu-west-1");
        assert_eq!(w.sts_endpoint(), "https://sts.eu-west-1.amazonaws.com");
    }

    #[test]
    fn only_the_needed_keys_are_kept() {
        let mut pairs = GUIDE.to_vec();
        pairs.push(("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----"));
        pairs.push(("password", "hunter2"));
        let k = keys(&pairs);
        assert!(!format!("{k:?}").contains("OPENSSH"));
        assert!(!format!("{k:?}").contains("hunter2"));
    }

    #[test]
    fn opt_in_by_either_key_and_provider_decides() {
        let base = [
            ("type", "oci"),
            (
                "url",
                "oci://123456789012.dkr.ecr.us-east-1.amazonaws.com/c",
            ),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut p = base.to_vec();
            p.extend_from_slice(extra);
            keys(&p).opts_in()
        };
        assert!(with(&[("workloadIdentityProvider", "aws")]), "PR #28217");
        assert!(with(&[("useWorkloadIdentity", "true")]), "the guide");
        assert!(!with(&[]));
        assert!(!with(&[("useWorkloadIdentity", "false")]));
        assert!(
            !with(&[
                ("useWorkloadIdentity", "true"),
                ("workloadIdentityProvider", "azure")
            ]),
            "another provider's secret"
        );
    }

    #[test]
    fn oci_types_and_urls() {
        let serve = |pairs: &[(&str, &str)]| {
            let mut p = pairs.to_vec();
            p.push(("workloadIdentityProvider", "aws"));
            decide("argocd", "r", &keys(&p), &Allowed::default())
        };
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        assert!(matches!(
            serve(&[("type", "oci"), ("url", host)]),
            Decision::Serve(_)
        ));
        assert!(matches!(
            serve(&[("type", "helm"), ("url", &format!("oci://{host}/charts"))]),
            Decision::Serve(_)
        ));
        assert!(matches!(
            serve(&[
                ("type", "helm"),
                ("enableOCI", "true"),
                ("url", &format!("https://{host}/x"))
            ]),
            Decision::Serve(_)
        ));
        let Decision::Invalid(e) = serve(&[("type", "helm"), ("url", host)]) else {
            panic!()
        };
        assert!(
            e.contains("not an OCI repository") && e.contains("enableOCI"),
            "{e}"
        );
        let Decision::Invalid(e) = serve(&[("type", "oci"), ("url", "oci://ghcr.io/org/charts")])
        else {
            panic!()
        };
        assert!(e.contains("is not an Amazon ECR private registry"), "{e}");
        let Decision::Invalid(e) = serve(&[("type", "oci")]) else {
            panic!()
        };
        assert!(e.contains("has no url"), "{e}");
    }

    #[test]
    fn govcloud_and_china_resolve_to_their_region_and_sts() {
        for (host, region, partition, sts) in [
            (
                "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
                "aws-us-gov",
                "https://sts.us-gov-west-1.amazonaws.com",
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
                "aws-cn",
                "https://sts.cn-north-1.amazonaws.com.cn",
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
                "us-gov-east-1",
                "aws-us-gov",
                "https://sts.us-gov-east-1.amazonaws.com",
            ),
            (
                "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
                "cn-northwest-1",
                "aws-cn",
                "https://sts.cn-northwest-1.amazonaws.com.cn",
            ),
        ] {
            let k = keys(&[
                ("type", "oci"),
                ("url", &format!("oci://{host}/charts")),
                ("workloadIdentityProvider", "aws"),
            ]);
            let Decision::Serve(w) = decide("argocd", "r", &k, &Allowed::default()) else {
                panic!(
                    "{host}: {:?}",
                    decide("argocd", "r", &k, &Allowed::default())
                )
            };
            assert_eq!(w.registry.region, region, "{host}");
            assert_eq!(w.registry.partition.id(), partition, "{host}");
            assert_eq!(w.sts_endpoint(), sts, "{host}");
        }
    }

    #[test]
    fn the_service_account_comes_from_the_annotation_the_project_or_the_repo_server() {
        let mut k = keys(&[
            ("type", "oci"),
            ("url", "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            ("workloadIdentityProvider", "aws"),
        ]);
        let sa = |k: &RepoKeys| match decide("argocd", "r", k, &Allowed::default()) {
            Decision::Serve(w) => w.service_account,
            other => panic!("{other:?}"),
        };
        assert_eq!(sa(&k), "argocd-repo-server");
        k.project = Some("staging".into());
        assert_eq!(sa(&k), "argocd-project-staging");
        k.service_account = Some("charts-reader".into());
        assert_eq!(sa(&k), "charts-reader");
        k.service_account = Some("../kube-system/admin".into());
        let Decision::Invalid(e) = decide("argocd", "r", &k, &Allowed::default()) else {
            panic!()
        };
        assert!(e.contains("not a valid Kubernetes name"), "{e}");
    }

    #[test]
    fn token_urls_are_sts_endpoints_or_listed_by_the_operator() {
        for ok in [
            "https://sts.amazonaws.com",
            "https://sts.us-gov-west-1.amazonaws.com",
            "https://sts.cn-north-1.amazonaws.com.cn/",
            "https://vpce-0abc-xyz.sts.eu-west-1.vpce.amazonaws.com",
            "https://sts-fips.us-east-1.amazonaws.com",
            "https://sts.us-east-1.api.aws",
            "https://sts-fips.us-east-1.api.aws:443",
            "HTTPS://STS.EU-WEST-1.AMAZONAWS.COM",
        ] {
            assert!(
                check_token_url(ok, &[]).is_ok(),
                "{ok}: {:?}",
                check_token_url(ok, &[])
            );
        }
        for (bad, why) in [
            // Review H1: anyone can create an API Gateway with a valid AWS certificate.
            (
                "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
                "not an AWS STS endpoint",
            ),
            (
                "https://sts.execute-api.eu-west-1.amazonaws.com",
                "not an AWS STS endpoint",
            ),
            (
                "https://x.sts.eu-west-1.amazonaws.com",
                "not an AWS STS endpoint",
            ),
            (
                "https://s3.eu-west-1.amazonaws.com",
                "not an AWS STS endpoint",
            ),
            (
                "https://sts.eu-west-1.amazonaws.com.evil.example",
                "not an AWS STS endpoint",
            ),
            (
                "https://sts.cn-north-1.amazonaws.com",
                "not an AWS STS endpoint",
            ),
            ("https://evil.example.com", "not an AWS STS endpoint"),
            ("http://sts.us-east-1.amazonaws.com", "only https"),
            ("https://sts.us-east-1.amazonaws.com/path", "has a path"),
            ("https://sts.us-east-1.amazonaws.com?x=1", "query"),
            ("https://sts.us-east-1.amazonaws.com#f", "fragment"),
            (
                "https://user@sts.us-east-1.amazonaws.com",
                "user information",
            ),
            ("https://sts.us-east-1.amazonaws.com:99999", "invalid port"),
            ("https://sts.us-east-1.amazonaws.com:", "invalid port"),
            ("sts.us-east-1.amazonaws.com", "not a URL"),
            // Loopback only when listed; review L3: a bracketed IPv6 literal is parsed strictly.
            ("http://127.0.0.1:4566", "only https"),
            ("https://localhost:8080", "not an AWS STS endpoint"),
            ("https://[::1]evil.com", "after its IPv6 literal"),
            ("https://[::1]:9000", "not an AWS STS endpoint"),
            ("https://[::1", "unclosed"),
            ("https://[nope]", "invalid IPv6"),
        ] {
            let e = check_token_url(bad, &[]).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(
                e.contains("--argocd-token-url"),
                "{bad}: the fix named: {e}"
            );
        }
        let listed = vec!["http://127.0.0.1:4566/".to_owned()];
        assert_eq!(
            check_token_url("http://127.0.0.1:4566", &listed).as_deref(),
            Ok("http://127.0.0.1:4566")
        );
        assert!(check_token_url("http://127.0.0.1:4567", &listed).is_err());
    }

    #[test]
    fn audiences_are_sts_or_listed_by_the_operator() {
        let mut pairs = GUIDE.to_vec();
        pairs.push(("workloadIdentityAudience", "https://kubernetes.default.svc"));
        let k = keys(&pairs);
        let Decision::Invalid(e) = decide("argocd", "r", &k, &Allowed::default()) else {
            panic!("refused")
        };
        assert!(
            e.contains("workloadIdentityAudience") && e.contains("--argocd-audience"),
            "{e}"
        );
        let allowed = Allowed {
            audiences: vec!["https://kubernetes.default.svc".into()],
            ..Allowed::default()
        };
        let Decision::Serve(w) = decide("argocd", "r", &k, &allowed) else {
            panic!("listed")
        };
        assert_eq!(w.audience, "https://kubernetes.default.svc");
        pairs.pop();
        pairs.push(("workloadIdentityAudience", "sts.amazonaws.com"));
        assert!(matches!(
            decide("argocd", "r", &keys(&pairs), &Allowed::default()),
            Decision::Serve(_)
        ));
    }

    #[test]
    fn another_service_account_needs_its_consent() {
        let mut k = keys(GUIDE);
        k.project = Some("staging".into());
        let needs = |k: &RepoKeys| match decide("argocd", "r", k, &Allowed::default()) {
            Decision::Serve(w) => w.needs_consent,
            other => panic!("{other:?}"),
        };
        assert_eq!(needs(&k), None, "the project's own");
        k.service_account = Some("argocd-project-staging".into());
        assert_eq!(needs(&k), None, "named, but the project's own");
        k.service_account = Some("argocd-repo-server".into());
        assert_eq!(needs(&k), None, "the repo-server");
        k.service_account = Some("argocd-project-production".into());
        assert_eq!(needs(&k), Some(Some("staging".into())));
        k.project = None;
        assert_eq!(needs(&k), Some(None));

        let c = |project, consent| check_consent("argocd", "r", "sa", project, consent);
        assert!(c(Some("staging"), Some("production, staging")).is_ok());
        let e = c(Some("staging"), Some("production")).unwrap_err();
        assert!(
            e.contains("does not consent") && e.contains("irsa.dev/argocd-projects=staging"),
            "{e}"
        );
        assert!(c(Some("staging"), Some("*")).is_err(), "no wildcard");
        assert!(c(Some("staging"), Some("stagingx")).is_err());
        assert!(c(Some("staging"), None).is_err());
        let e = c(None, Some("staging")).unwrap_err();
        assert!(e.contains("has no project"), "{e}");
    }
}
