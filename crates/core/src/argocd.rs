//! Argo CD repository secrets with workload identity, decided without I/O: which keys of a
//! repository secret irsa reads ([`RepoKeys`]), whether it opts in, which service account,
//! audience, ECR registry (region and partition) and STS endpoint it asks for ([`decide`]),
//! which `workloadIdentityTokenURL` may receive a service-account token
//! ([`check_token_url`]), and the `irsa.dev/status` texts. Everything here reads bytes a
//! secret's author wrote: it never panics, and it has a fuzz target (`fuzz/argocd_repo_secret`).

use crate::arn::RoleArn;
use crate::names::STS_AUDIENCE;
use crate::partition::{EndpointVariant, sts_endpoint};
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
pub fn decide(namespace: &str, name: &str, keys: &RepoKeys) -> Decision {
    if !keys.opts_in() {
        return Decision::NotOptedIn;
    }
    match wanted(namespace, name, keys) {
        Ok(w) => Decision::Serve(w),
        Err(e) => Decision::Invalid(e),
    }
}

fn wanted(namespace: &str, name: &str, keys: &RepoKeys) -> Result<Wanted, String> {
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
    let service_account = service_account(namespace, name, keys)?;
    let audience = match keys.audience.as_deref() {
        None | Some("") => STS_AUDIENCE.to_owned(),
        Some(a) if a.len() <= 256 && !a.contains(',') && !a.chars().any(char::is_whitespace) => {
            a.to_owned()
        }
        Some(a) => {
            return Err(format!(
                "repository secret {namespace}/{name}: workloadIdentityAudience {a:?} is not one \
                 audience (at most 256 characters, no commas or spaces); leave it out for \
                 {STS_AUDIENCE}"
            ));
        }
    };
    let token_url = match keys.token_url.as_deref() {
        None | Some("") => None,
        Some(u) => Some(check_token_url(u).map_err(|why| {
            format!("repository secret {namespace}/{name}: workloadIdentityTokenURL {u:?} {why}")
        })?),
    };
    Ok(Wanted {
        service_account,
        audience,
        host,
        registry,
        token_url,
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

fn service_account(namespace: &str, name: &str, keys: &RepoKeys) -> Result<String, String> {
    let (sa, from) = match (&keys.service_account, &keys.project) {
        (Some(sa), _) if !sa.is_empty() => (
            sa.clone(),
            format!("annotation {SERVICE_ACCOUNT_ANNOTATION}"),
        ),
        (_, Some(p)) if !p.is_empty() => (
            format!("{PROJECT_SERVICE_ACCOUNT_PREFIX}{p}"),
            format!("project {p:?}"),
        ),
        _ => (
            REPO_SERVER_SERVICE_ACCOUNT.to_owned(),
            "no project: Argo CD's repo-server".to_owned(),
        ),
    };
    if !is_dns_subdomain(&sa) {
        return Err(format!(
            "repository secret {namespace}/{name}: service account name {sa:?} (from {from}) is \
             not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
        ));
    }
    Ok(sa)
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

/// Checks a `workloadIdentityTokenURL`: the service-account token goes there, so only an AWS
/// STS endpoint (https on an AWS domain: regional, FIPS, VPC endpoint) or loopback (a test
/// server, a local proxy) is accepted, never a host of the secret author's choosing.
pub fn check_token_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "is not a URL: use https://sts.<region>.amazonaws.com".to_owned())?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or("");
    let path = &rest[authority.len()..];
    if !(path.is_empty() || path == "/") {
        return Err(
            "has a path: give the STS endpoint alone, e.g. https://sts.us-gov-west-1.amazonaws.com"
                .to_owned(),
        );
    }
    if authority.contains('@') || authority.contains('?') || authority.contains('#') {
        return Err("carries user information, a query or a fragment".to_owned());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or("").to_owned(),
        None => authority
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase(),
    };
    let port = authority
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || authority.starts_with('['))
        .map(|(_, p)| p);
    if let Some(p) = port
        && !authority.starts_with('[')
        && p.parse::<u16>().is_err()
    {
        return Err(format!("has an invalid port {p:?}"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let aws = [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"]
        .iter()
        .any(|suffix| host.ends_with(suffix) && host.len() > suffix.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    match scheme.as_str() {
        "https" if aws || loopback => {}
        "http" if loopback => {}
        "https" => {
            return Err(format!(
                "names host {host:?}, which is not an AWS endpoint: the service-account token is \
                 sent there, so irsa accepts only https://…amazonaws.com, …amazonaws.com.cn or \
                 …api.aws (STS, FIPS and VPC endpoints) and loopback"
            ));
        }
        _ => {
            return Err(format!(
                "uses {scheme}://: only https (and http to loopback) carry the service-account token"
            ));
        }
    }
    Ok(format!("{scheme}://{authority}"))
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
        let Decision::Serve(w) = decide("argocd", "repo", &keys(GUIDE)) else {
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
            decide("argocd", "r", &keys(&p))
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
            let Decision::Serve(w) = decide("argocd", "r", &k) else {
                panic!("{host}: {:?}", decide("argocd", "r", &k))
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
        let sa = |k: &RepoKeys| match decide("argocd", "r", k) {
            Decision::Serve(w) => w.service_account,
            other => panic!("{other:?}"),
        };
        assert_eq!(sa(&k), "argocd-repo-server");
        k.project = Some("staging".into());
        assert_eq!(sa(&k), "argocd-project-staging");
        k.service_account = Some("charts-reader".into());
        assert_eq!(sa(&k), "charts-reader");
        k.service_account = Some("../kube-system/admin".into());
        let Decision::Invalid(e) = decide("argocd", "r", &k) else {
            panic!()
        };
        assert!(e.contains("not a valid Kubernetes name"), "{e}");
    }

    #[test]
    fn token_urls_are_aws_endpoints_or_loopback() {
        for ok in [
            "https://sts.us-gov-west-1.amazonaws.com",
            "https://sts.cn-north-1.amazonaws.com.cn/",
            "https://vpce-0abc-xyz.sts.eu-west-1.vpce.amazonaws.com",
            "https://sts-fips.us-east-1.amazonaws.com",
            "http://127.0.0.1:4566",
            "http://localhost:8080",
            "http://[::1]:9000",
        ] {
            assert!(
                check_token_url(ok).is_ok(),
                "{ok}: {:?}",
                check_token_url(ok)
            );
        }
        for (bad, why) in [
            ("https://evil.example.com", "not an AWS endpoint"),
            ("https://amazonaws.com.evil.example", "not an AWS endpoint"),
            ("http://sts.us-east-1.amazonaws.com", "only https"),
            ("https://sts.us-east-1.amazonaws.com/path", "has a path"),
            (
                "https://user@sts.us-east-1.amazonaws.com",
                "user information",
            ),
            ("sts.us-east-1.amazonaws.com", "not a URL"),
            ("http://10.0.0.1", "only https"),
        ] {
            let e = check_token_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
