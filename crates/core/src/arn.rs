//! IAM and STS ARNs that irsa reads and writes, and STS role session names.
//!
//! Three ARN kinds matter for workload identity:
//!
//! - [`RoleArn`]: `arn:aws:iam::123456789012:role/path/name`, the role a workload assumes;
//! - [`OidcProviderArn`]: `arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X`, the
//!   cluster's OIDC issuer registered in IAM, the `Federated` principal of a trust policy;
//! - [`AssumedRoleArn`]: `arn:aws:sts::123456789012:assumed-role/name/session`, what
//!   `GetCallerIdentity` returns for a role session.
//!
//! [`Arn`] parses any of the three. Every type parses strictly (the partition, service, empty
//! region, 12-digit account and resource are all checked) and displays canonically, so
//! `x.to_string().parse() == Ok(x)`. Errors name the part that failed and what a valid value
//! looks like.
//!
//! [`SessionName`] is an STS `RoleSessionName`; [`SessionName::derive`] turns any natural name
//! (for example `irsa-<namespace>-<serviceaccount>`) into a valid one, deterministically.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The AWS partitions an ARN may name.
///
/// Kept here (rather than derived from the registry/partition tables) because IAM ARNs only
/// need the partition *name*; a partition AWS adds later needs one line here.
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// Longest ARN IAM accepts (the `RoleArn` parameter of `AssumeRole*` is 20–2048 characters).
pub const MAX_ARN_LEN: usize = 2048;
/// Longest IAM role name.
pub const MAX_ROLE_NAME_LEN: usize = 64;
/// Longest IAM path, including the leading and trailing `/`.
pub const MAX_PATH_LEN: usize = 512;
/// Longest OIDC provider URL IAM accepts (`CreateOpenIDConnectProvider`'s `Url`).
pub const MAX_PROVIDER_LEN: usize = 255;
/// Shortest STS role session name.
pub const MIN_SESSION_NAME_LEN: usize = 2;
/// Longest STS role session name.
pub const MAX_SESSION_NAME_LEN: usize = 64;

/// Number of hex digits of `sha256(natural)` that [`SessionName::derive`] appends to names it
/// must shorten: 40 bits, plenty to keep distinct service accounts distinct.
const DERIVE_HASH_HEX: usize = 10;

/// Inputs longer than this are cut in error messages so a pasted blob cannot flood a log line.
const MAX_ECHO: usize = 160;

/// The part of an ARN (or URL, or session name) that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArnPart {
    /// The whole string (length, number of `:`-separated fields).
    Whole,
    /// The leading `arn`.
    Prefix,
    /// The partition, e.g. `aws`.
    Partition,
    /// The service, `iam` or `sts`.
    Service,
    /// The region, which IAM and STS ARNs leave empty.
    Region,
    /// The 12-digit account ID.
    Account,
    /// The resource type: `role`, `oidc-provider` or `assumed-role`.
    ResourceType,
    /// The role name.
    RoleName,
    /// The IAM path.
    Path,
    /// The OIDC provider (issuer host and path).
    Provider,
    /// The role session name.
    SessionName,
    /// An OIDC issuer URL.
    IssuerUrl,
    /// An ECR repository name (or an IAM pattern of names).
    Repository,
}

impl fmt::Display for ArnPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArnPart::Whole => "ARN",
            ArnPart::Prefix => "prefix",
            ArnPart::Partition => "partition",
            ArnPart::Service => "service",
            ArnPart::Region => "region",
            ArnPart::Account => "account",
            ArnPart::ResourceType => "resource type",
            ArnPart::RoleName => "role name",
            ArnPart::Path => "path",
            ArnPart::Provider => "OIDC provider",
            ArnPart::SessionName => "session name",
            ArnPart::IssuerUrl => "issuer URL",
            ArnPart::Repository => "repository",
        })
    }
}

/// Why an ARN, issuer URL or session name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// An ARN string is malformed.
    #[error("invalid {kind} {input:?}: {reason}")]
    InvalidArn {
        /// What was being parsed: `"role ARN"`, `"OIDC provider ARN"`, `"assumed-role ARN"`, `"ARN"`.
        kind: &'static str,
        /// The input, cut to a readable length.
        input: String,
        /// The part that failed.
        part: ArnPart,
        /// What is wrong and what a valid value looks like.
        reason: String,
    },
    /// A field given on its own (not inside an ARN string) is invalid.
    #[error("invalid {part} {input:?}: {reason}")]
    InvalidField {
        /// The field that failed.
        part: ArnPart,
        /// The input, cut to a readable length.
        input: String,
        /// What is wrong and what a valid value looks like.
        reason: String,
    },
    /// An OIDC issuer URL cannot be turned into the `host/path` form IAM uses.
    #[error("invalid OIDC issuer URL {url:?}: {reason}")]
    InvalidIssuerUrl {
        /// The URL with any userinfo, query and fragment removed (they may hold secrets).
        url: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ArnError {
    /// The part that failed validation.
    pub fn part(&self) -> ArnPart {
        match self {
            ArnError::InvalidArn { part, .. } | ArnError::InvalidField { part, .. } => *part,
            ArnError::InvalidIssuerUrl { .. } => ArnPart::IssuerUrl,
        }
    }
}

/// Cuts `s` to [`MAX_ECHO`] characters for an error message.
fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

const NAME_CHARS: &str = "ASCII letters, digits and _+=,.@-";

/// Checks a role name: 1–64 characters of `[\w+=,.@-]`.
fn check_role_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the role name is empty; it goes after the last '/' of the resource".into());
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the role name {:?} contains {c:?}; only {NAME_CHARS} are allowed",
            echo(name)
        ));
    }
    if name.len() > MAX_ROLE_NAME_LEN {
        return Err(format!(
            "the role name is {} characters; it must be at most {MAX_ROLE_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// Checks an IAM path: `/` or `/…/` of printable ASCII (0x21–0x7E), at most 512 characters.
fn check_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "the path is {} characters; it must be at most {MAX_PATH_LEN}",
            path.len()
        ));
    }
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err(format!(
            "the path {:?} must start and end with '/', like \"/\" or \"/team/\"",
            echo(path)
        ));
    }
    if path == "//" {
        return Err("the path \"//\" is empty between its slashes; use \"/\"".into());
    }
    if let Some(c) = path.chars().find(|c| !matches!(c, '\u{21}'..='\u{7e}')) {
        return Err(format!(
            "the path {:?} contains {c:?}; only printable ASCII without spaces is allowed",
            echo(path)
        ));
    }
    Ok(())
}

fn check_account(account: &str) -> Result<(), String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "the account {:?} must be exactly 12 digits, like \"123456789012\"",
            echo(account)
        ))
    }
}

fn check_partition(partition: &str) -> Result<(), String> {
    if PARTITIONS.contains(&partition) {
        Ok(())
    } else {
        Err(format!(
            "the partition {:?} is not one of {}",
            echo(partition),
            PARTITIONS.join(", ")
        ))
    }
}

/// Checks an OIDC provider in IAM's form: `host[/path]`, no scheme, port, query or trailing `/`.
fn check_provider(provider: &str) -> Result<(), String> {
    if provider.is_empty() {
        return Err("the OIDC provider is empty; it is the issuer's host and path".into());
    }
    if provider.len() > MAX_PROVIDER_LEN {
        return Err(format!(
            "the OIDC provider is {} characters; IAM allows at most {MAX_PROVIDER_LEN}",
            provider.len()
        ));
    }
    if provider.contains("://") {
        return Err(format!(
            "the OIDC provider {:?} must not include a scheme; write it as host/path",
            echo(provider)
        ));
    }
    let (host, path) = match provider.find('/') {
        Some(i) => (&provider[..i], &provider[i..]),
        None => (provider, ""),
    };
    if host.is_empty() {
        return Err(format!(
            "the OIDC provider {:?} has an empty host",
            echo(provider)
        ));
    }
    if host.contains(':') {
        return Err(format!(
            "the OIDC provider host {:?} has a port; IAM OIDC providers cannot have one",
            echo(host)
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(format!(
            "the OIDC provider host {:?} contains {c:?}; a host is letters, digits, '.' and '-'",
            echo(host)
        ));
    }
    if host.starts_with('.') || host.ends_with('.') || host.contains("..") {
        return Err(format!(
            "the OIDC provider host {:?} has an empty label",
            echo(host)
        ));
    }
    if path.ends_with('/') {
        return Err(format!(
            "the OIDC provider {:?} ends with '/'; IAM stores it without the trailing slash",
            echo(provider)
        ));
    }
    if path.contains("//") {
        return Err(format!(
            "the OIDC provider path {:?} has an empty segment",
            echo(path)
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !matches!(c, '\u{21}'..='\u{7e}') || matches!(c, '?' | '#'))
    {
        return Err(format!(
            "the OIDC provider path {:?} contains {c:?}; only printable ASCII without spaces, \
             '?' or '#' is allowed",
            echo(path)
        ));
    }
    Ok(())
}

/// The six `:`-separated fields of an ARN.
struct Fields<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

/// Error builder bound to one input and the kind of ARN expected.
struct Ctx<'a> {
    kind: &'static str,
    input: &'a str,
}

impl Ctx<'_> {
    fn err(&self, part: ArnPart, reason: impl Into<String>) -> ArnError {
        ArnError::InvalidArn {
            kind: self.kind,
            input: echo(self.input),
            part,
            reason: reason.into(),
        }
    }

    /// Splits the fields and checks the length, prefix and partition.
    fn fields(&self) -> Result<Fields<'_>, ArnError> {
        let s = self.input;
        if s.len() > MAX_ARN_LEN {
            return Err(self.err(
                ArnPart::Whole,
                format!(
                    "it is {} characters; an ARN is at most {MAX_ARN_LEN}",
                    s.len()
                ),
            ));
        }
        let mut it = s.splitn(6, ':');
        let prefix = it.next().unwrap_or_default();
        let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            if prefix != "arn" {
                return Err(self.err(
                    ArnPart::Prefix,
                    "it must start with \"arn:\", like \"arn:aws:iam::123456789012:role/name\"",
                ));
            }
            return Err(self.err(
                ArnPart::Whole,
                "it must have six ':'-separated fields: arn:partition:service:region:account:resource",
            ));
        };
        if prefix != "arn" {
            return Err(self.err(
                ArnPart::Prefix,
                format!("it must start with \"arn:\", not {:?}", echo(prefix)),
            ));
        }
        check_partition(partition).map_err(|r| self.err(ArnPart::Partition, r))?;
        Ok(Fields {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// Checks the region and account, after the service told which kind of ARN this is.
    fn check_region_and_account(&self, f: &Fields<'_>) -> Result<(), ArnError> {
        let (region, account) = (f.region, f.account);
        if !region.is_empty() {
            return Err(self.err(
                ArnPart::Region,
                format!(
                    "the region must be empty for IAM and STS ARNs (\"…::account\"), not {:?}",
                    echo(region)
                ),
            ));
        }
        check_account(account).map_err(|r| self.err(ArnPart::Account, r))
    }

    /// Checks the service, then the region and account.
    fn expect_service(&self, f: &Fields<'_>, want: &str, hint: &str) -> Result<(), ArnError> {
        if f.service == want {
            self.check_region_and_account(f)
        } else {
            Err(self.err(
                ArnPart::Service,
                format!(
                    "the service must be {want:?}, not {:?}{hint}",
                    echo(f.service)
                ),
            ))
        }
    }

    fn role(&self, f: &Fields<'_>) -> Result<RoleArn, ArnError> {
        let Some(rest) = f.resource.strip_prefix("role/") else {
            return Err(self.err(
                ArnPart::ResourceType,
                format!(
                    "the resource must start with \"role/\", not {:?}",
                    echo(f.resource)
                ),
            ));
        };
        // "role/a/b/name": the path is everything from the '/' after "role" to the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let path = &f.resource["role".len().."role/".len() + slash];
        let name = &rest[slash..];
        check_path(path).map_err(|r| self.err(ArnPart::Path, r))?;
        check_role_name(name).map_err(|r| self.err(ArnPart::RoleName, r))?;
        Ok(RoleArn {
            partition: f.partition.to_owned(),
            account: f.account.to_owned(),
            path: path.to_owned(),
            name: name.to_owned(),
        })
    }

    fn oidc_provider(&self, f: &Fields<'_>) -> Result<OidcProviderArn, ArnError> {
        let Some(provider) = f.resource.strip_prefix("oidc-provider/") else {
            return Err(self.err(
                ArnPart::ResourceType,
                format!(
                    "the resource must start with \"oidc-provider/\", not {:?}",
                    echo(f.resource)
                ),
            ));
        };
        check_provider(provider).map_err(|r| self.err(ArnPart::Provider, r))?;
        Ok(OidcProviderArn {
            partition: f.partition.to_owned(),
            account: f.account.to_owned(),
            provider: provider.to_owned(),
        })
    }

    fn assumed_role(&self, f: &Fields<'_>) -> Result<AssumedRoleArn, ArnError> {
        let Some(rest) = f.resource.strip_prefix("assumed-role/") else {
            return Err(self.err(
                ArnPart::ResourceType,
                format!(
                    "the resource must start with \"assumed-role/\", not {:?}",
                    echo(f.resource)
                ),
            ));
        };
        let Some((role_name, session_name)) = rest.split_once('/') else {
            return Err(self.err(
                ArnPart::SessionName,
                "the session name is missing; the resource is \"assumed-role/<role name>/<session name>\"",
            ));
        };
        check_role_name(role_name).map_err(|r| self.err(ArnPart::RoleName, r))?;
        check_session_name(session_name).map_err(|r| self.err(ArnPart::SessionName, r))?;
        Ok(AssumedRoleArn {
            partition: f.partition.to_owned(),
            account: f.account.to_owned(),
            role_name: role_name.to_owned(),
            session_name: session_name.to_owned(),
        })
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<account>:role<path><name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleArn {
    /// The partition, e.g. `aws`.
    pub partition: String,
    /// The 12-digit account ID.
    pub account: String,
    /// The IAM path: `/` or `/a/b/` (starts and ends with `/`).
    pub path: String,
    /// The role name (1–64 characters of `[\w+=,.@-]`).
    pub name: String,
}

impl RoleArn {
    /// Builds a role ARN from its parts, validating each one.
    pub fn new(partition: &str, account: &str, path: &str, name: &str) -> Result<Self, ArnError> {
        let field = |part: ArnPart, input: &str, check: fn(&str) -> Result<(), String>| {
            check(input).map_err(|reason| ArnError::InvalidField {
                part,
                input: echo(input),
                reason,
            })
        };
        field(ArnPart::Partition, partition, check_partition)?;
        field(ArnPart::Account, account, check_account)?;
        field(ArnPart::Path, path, check_path)?;
        field(ArnPart::RoleName, name, check_role_name)?;
        // A 512-character path and a 64-character name stay far below MAX_ARN_LEN.
        Ok(RoleArn {
            partition: partition.to_owned(),
            account: account.to_owned(),
            path: path.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl FromStr for RoleArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ctx = Ctx {
            kind: "role ARN",
            input: s,
        };
        let f = ctx.fields()?;
        let hint = if f.service == "sts" && f.resource.starts_with("assumed-role/") {
            "; this is an assumed-role (session) ARN: use the role ARN \
             arn:<partition>:iam::<account>:role/<name> instead"
        } else {
            ""
        };
        ctx.expect_service(&f, "iam", hint)?;
        ctx.role(&f)
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.path, self.name
        )
    }
}

/// An IAM OIDC identity provider ARN: `arn:<partition>:iam::<account>:oidc-provider/<host/path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OidcProviderArn {
    /// The partition, e.g. `aws`.
    pub partition: String,
    /// The 12-digit account ID.
    pub account: String,
    /// The issuer host and path without scheme or trailing slash, e.g.
    /// `oidc.eks.us-east-1.amazonaws.com/id/ABCDEF`: the prefix of the trust policy's
    /// condition keys (`<provider>:sub`, `<provider>:aud`).
    pub provider: String,
}

impl OidcProviderArn {
    /// From an issuer URL (`https://oidc.eks.us-east-1.amazonaws.com/id/ABC`): strips the scheme
    /// and a trailing slash; see [`issuer_host_path`].
    pub fn from_issuer(partition: &str, account: &str, issuer_url: &str) -> Result<Self, ArnError> {
        let provider = issuer_host_path(issuer_url)?;
        check_partition(partition).map_err(|reason| ArnError::InvalidField {
            part: ArnPart::Partition,
            input: echo(partition),
            reason,
        })?;
        check_account(account).map_err(|reason| ArnError::InvalidField {
            part: ArnPart::Account,
            input: echo(account),
            reason,
        })?;
        Ok(OidcProviderArn {
            partition: partition.to_owned(),
            account: account.to_owned(),
            provider,
        })
    }

    /// The issuer URL this provider stands for: `https://<provider>`.
    pub fn issuer_url(&self) -> String {
        format!("https://{}", self.provider)
    }
}

impl FromStr for OidcProviderArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ctx = Ctx {
            kind: "OIDC provider ARN",
            input: s,
        };
        let f = ctx.fields()?;
        ctx.expect_service(&f, "iam", "")?;
        ctx.oidc_provider(&f)
    }
}

impl fmt::Display for OidcProviderArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:oidc-provider/{}",
            self.partition, self.account, self.provider
        )
    }
}

/// `"https://host/path/"` → `"host/path"`: the form IAM uses in OIDC condition keys and provider
/// ARNs.
///
/// The scheme must be `https` (any case); one trailing `/` is removed. Userinfo, a query, a
/// fragment, a port or an empty host are errors: IAM cannot register such an issuer. The error
/// never repeats userinfo, query or fragment, which may carry credentials.
pub fn issuer_host_path(issuer_url: &str) -> Result<String, ArnError> {
    let sanitized = sanitize_url(issuer_url);
    let err = |reason: String| ArnError::InvalidIssuerUrl {
        url: echo(&sanitized),
        reason,
    };
    let scheme_end = issuer_url.find("://");
    let rest = match scheme_end {
        Some(i) if issuer_url[..i].eq_ignore_ascii_case("https") => &issuer_url[i + 3..],
        Some(i) => {
            return Err(err(format!(
                "the scheme must be https, not {:?}; IAM only trusts https issuers",
                echo(&issuer_url[..i])
            )));
        }
        None => {
            return Err(err(
                "it must start with \"https://\", like \"https://oidc.example.com\"".into(),
            ));
        }
    };
    if rest.contains('#') {
        return Err(err("it must not have a fragment (\"#…\")".into()));
    }
    if rest.contains('?') {
        return Err(err("it must not have a query (\"?…\")".into()));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(err(
            "it must not contain userinfo (\"user@\"); remove everything before the '@'".into(),
        ));
    }
    if authority.is_empty() {
        return Err(err("the host is empty".into()));
    }
    let host_path = rest.strip_suffix('/').unwrap_or(rest);
    check_provider(host_path).map_err(err)?;
    Ok(host_path.to_owned())
}

/// The URL without userinfo, query or fragment, for error messages.
fn sanitize_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}[redacted]@{}", &rest[at + 1..]),
        None => format!("{scheme}{rest}"),
    }
}

/// An STS assumed-role (role session) ARN:
/// `arn:<partition>:sts::<account>:assumed-role/<role name>/<session name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssumedRoleArn {
    /// The partition, e.g. `aws`.
    pub partition: String,
    /// The 12-digit account ID.
    pub account: String,
    /// The name of the assumed role (without its path: STS drops it).
    pub role_name: String,
    /// The role session name.
    pub session_name: String,
}

impl AssumedRoleArn {
    /// The ARN of the role this session assumed.
    ///
    /// Assumed-role ARNs do not carry the role's IAM path, so the result has path `/`. For a role
    /// created under another path the result differs from the role's real ARN; callers that
    /// compare against a configured role ARN should compare partition, account and name.
    pub fn role_arn(&self) -> RoleArn {
        RoleArn {
            partition: self.partition.clone(),
            account: self.account.clone(),
            path: "/".to_owned(),
            name: self.role_name.clone(),
        }
    }
}

impl FromStr for AssumedRoleArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ctx = Ctx {
            kind: "assumed-role ARN",
            input: s,
        };
        let f = ctx.fields()?;
        ctx.expect_service(&f, "sts", "")?;
        ctx.assumed_role(&f)
    }
}

impl fmt::Display for AssumedRoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:sts::{}:assumed-role/{}/{}",
            self.partition, self.account, self.role_name, self.session_name
        )
    }
}

/// An ECR repository ARN, `arn:<partition>:ecr:<region>:<account>:repository/<name>`, as used in
/// the `Resource` of a pull permissions policy. The name may hold IAM wildcards (`*`, `?`), so
/// `repository/team/*` names every repository under `team/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EcrRepositoryArn {
    /// The partition, e.g. `aws`.
    pub partition: String,
    /// The region of the registry, e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account that owns the registry.
    pub account: String,
    /// The repository name or wildcard pattern, e.g. `team/app` or `team/*`.
    pub repository: String,
}

/// Longest ECR repository name.
const MAX_REPOSITORY_LEN: usize = 256;

/// ECR's repository name grammar, `[a-z0-9]+([._-][a-z0-9]+)*` components joined by `/`, with
/// IAM's `*` and `?` accepted anywhere as wildcards.
fn check_repository(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "a repository name is 1 to {MAX_REPOSITORY_LEN} characters, like \"team/app\" or \"team/*\""
        ));
    }
    let wild = |c: char| c == '*' || c == '?';
    for component in name.split('/') {
        let bytes: Vec<char> = component.chars().collect();
        if bytes.is_empty() {
            return Err("a repository name has no empty path components (no \"//\", no leading or trailing '/')".into());
        }
        for (i, &c) in bytes.iter().enumerate() {
            let ok = c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || wild(c)
                || (matches!(c, '.' | '_' | '-')
                    && i > 0
                    && i + 1 < bytes.len()
                    && !matches!(bytes[i - 1], '.' | '_' | '-'));
            if !ok {
                return Err(format!(
                    "{:?} is not a valid repository name: use lowercase letters and digits, separated by single '.', '_' or '-' and joined by '/'",
                    echo(name)
                ));
            }
        }
    }
    Ok(())
}

impl FromStr for EcrRepositoryArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ctx = Ctx {
            kind: "ECR repository ARN",
            input: s,
        };
        let f = ctx.fields()?;
        if f.service != "ecr" {
            return Err(ctx.err(
                ArnPart::Service,
                format!(
                    "the service must be \"ecr\", not {:?}; an ECR repository ARN is arn:aws:ecr:REGION:ACCOUNT:repository/NAME",
                    echo(f.service)
                ),
            ));
        }
        match crate::partition::validate_region(f.region) {
            Ok(p) if p.id() == f.partition => {}
            Ok(p) => {
                return Err(ctx.err(
                    ArnPart::Region,
                    format!(
                        "region {:?} is in partition {:?}, not {:?}",
                        f.region,
                        p.id(),
                        f.partition
                    ),
                ));
            }
            Err(e) => return Err(ctx.err(ArnPart::Region, e.to_string())),
        }
        check_account(f.account).map_err(|r| ctx.err(ArnPart::Account, r))?;
        let Some(repository) = f.resource.strip_prefix("repository/") else {
            return Err(ctx.err(
                ArnPart::ResourceType,
                format!(
                    "the resource must start with \"repository/\", not {:?}",
                    echo(f.resource)
                ),
            ));
        };
        check_repository(repository).map_err(|r| ctx.err(ArnPart::Repository, r))?;
        Ok(EcrRepositoryArn {
            partition: f.partition.to_owned(),
            region: f.region.to_owned(),
            account: f.account.to_owned(),
            repository: repository.to_owned(),
        })
    }
}

impl fmt::Display for EcrRepositoryArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:ecr:{}:{}:repository/{}",
            self.partition, self.region, self.account, self.repository
        )
    }
}

/// Any of the ARN kinds irsa understands, told apart by service and resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arn {
    /// `arn:…:iam::…:role/…`
    Role(RoleArn),
    /// `arn:…:iam::…:oidc-provider/…`
    OidcProvider(OidcProviderArn),
    /// `arn:…:sts::…:assumed-role/…`
    AssumedRole(AssumedRoleArn),
}

impl Arn {
    /// The partition.
    pub fn partition(&self) -> &str {
        match self {
            Arn::Role(a) => &a.partition,
            Arn::OidcProvider(a) => &a.partition,
            Arn::AssumedRole(a) => &a.partition,
        }
    }

    /// The account ID.
    pub fn account(&self) -> &str {
        match self {
            Arn::Role(a) => &a.account,
            Arn::OidcProvider(a) => &a.account,
            Arn::AssumedRole(a) => &a.account,
        }
    }
}

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ctx = Ctx {
            kind: "ARN",
            input: s,
        };
        let f = ctx.fields()?;
        if matches!(f.service, "iam" | "sts") {
            ctx.check_region_and_account(&f)?;
        }
        let resource_type = f.resource.split('/').next().unwrap_or_default();
        match (f.service, resource_type) {
            ("iam", "role") => ctx.role(&f).map(Arn::Role),
            ("iam", "oidc-provider") => ctx.oidc_provider(&f).map(Arn::OidcProvider),
            ("sts", "assumed-role") => ctx.assumed_role(&f).map(Arn::AssumedRole),
            ("iam", _) => Err(ctx.err(
                ArnPart::ResourceType,
                format!(
                    "the resource type {:?} is not supported; expected \"role/\" or \"oidc-provider/\"",
                    echo(resource_type)
                ),
            )),
            ("sts", _) => Err(ctx.err(
                ArnPart::ResourceType,
                format!(
                    "the resource type {:?} is not supported; expected \"assumed-role/\"",
                    echo(resource_type)
                ),
            )),
            (service, _) => Err(ctx.err(
                ArnPart::Service,
                format!(
                    "the service must be \"iam\" (roles, OIDC providers) or \"sts\" \
                     (assumed roles), not {:?}",
                    echo(service)
                ),
            )),
        }
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arn::Role(a) => a.fmt(f),
            Arn::OidcProvider(a) => a.fmt(f),
            Arn::AssumedRole(a) => a.fmt(f),
        }
    }
}

impl From<RoleArn> for Arn {
    fn from(a: RoleArn) -> Self {
        Arn::Role(a)
    }
}

impl From<OidcProviderArn> for Arn {
    fn from(a: OidcProviderArn) -> Self {
        Arn::OidcProvider(a)
    }
}

impl From<AssumedRoleArn> for Arn {
    fn from(a: AssumedRoleArn) -> Self {
        Arn::AssumedRole(a)
    }
}

/// Checks an STS role session name: 2–64 characters of `[\w+=,.@-]`.
fn check_session_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the session name {:?} contains {c:?}; only {NAME_CHARS} are allowed",
            echo(name)
        ));
    }
    if !(MIN_SESSION_NAME_LEN..=MAX_SESSION_NAME_LEN).contains(&name.len()) {
        return Err(format!(
            "the session name is {} characters; it must be {MIN_SESSION_NAME_LEN} to \
             {MAX_SESSION_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// An STS `RoleSessionName`: 2–64 characters of `[\w+=,.@-]` (ASCII letters, digits and
/// `_ + = , . @ -`). It appears in CloudTrail and in the assumed-role ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionName(String);

impl SessionName {
    /// Validates a session name.
    pub fn new(name: &str) -> Result<SessionName, ArnError> {
        check_session_name(name).map_err(|reason| ArnError::InvalidField {
            part: ArnPart::SessionName,
            input: echo(name),
            reason,
        })?;
        Ok(SessionName(name.to_owned()))
    }

    /// A valid session name derived deterministically from any natural name (for example
    /// `irsa-<namespace>-<serviceaccount>`).
    ///
    /// - A valid name is returned unchanged.
    /// - Otherwise every character outside `[\w+=,.@-]` becomes `-`. (So `a b` and `a/b` both
    ///   become `a-b`; Kubernetes names never contain such characters, so this costs nothing in
    ///   practice.)
    /// - A result longer than 64 is cut to 53 characters and `-` plus the first 10 hex digits of
    ///   `sha256(natural)` are appended, so long names sharing a prefix stay distinct.
    /// - A result shorter than 2 is padded with `_`.
    pub fn derive(natural: &str) -> SessionName {
        if check_session_name(natural).is_ok() {
            return SessionName(natural.to_owned());
        }
        let mut name: String = natural
            .chars()
            .map(|c| if is_name_char(c) { c } else { '-' })
            .collect();
        // Counted in characters, which are all ASCII now, so byte slicing below is safe.
        if name.len() > MAX_SESSION_NAME_LEN {
            let hash = Sha256::digest(natural.as_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            name.truncate(MAX_SESSION_NAME_LEN - 1 - DERIVE_HASH_HEX);
            name.push('-');
            name.push_str(&hex[..DERIVE_HASH_HEX]);
        }
        while name.len() < MIN_SESSION_NAME_LEN {
            name.push('_');
        }
        SessionName(name)
    }

    /// The session name irsa uses for a Kubernetes service account, the same in every component
    /// (controller, credential provider, `irsa login`): `irsa-<namespace>.<name>`.
    ///
    /// Unambiguous: a namespace is a DNS label (no `.`), so the first `.` ends it, and
    /// `irsa-a-b.c` (namespace `a-b`) is not `irsa-a.b-c` (namespace `a`). When that form does
    /// not fit in 64 characters, or a part is not a Kubernetes name, the name is a readable
    /// prefix of it, `_` and 16 hex digits of a hash of both parts, length-prefixed; readable
    /// names never contain `_`, so the two forms never meet.
    pub fn for_service_account(namespace: &str, service_account: &str) -> SessionName {
        const PREFIX: &str = "irsa-";
        const HASH_HEX: usize = 16;
        let k8s_name = |s: &str, dots: bool| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
                })
        };
        let readable = format!("{PREFIX}{namespace}.{service_account}");
        if k8s_name(namespace, false)
            && k8s_name(service_account, true)
            && readable.len() <= MAX_SESSION_NAME_LEN
        {
            return SessionName(readable);
        }
        let mut h = Sha256::new();
        for part in [namespace, service_account] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let mut name: String = readable
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(MAX_SESSION_NAME_LEN - 1 - HASH_HEX)
            .collect();
        name.push('_');
        name.push_str(&hex[..HASH_HEX]);
        SessionName(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionName {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionName::new(s)
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SessionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Serializes as the canonical string and deserializes by parsing it.
macro_rules! serde_via_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

serde_via_string!(RoleArn, OidcProviderArn, AssumedRoleArn, Arn, SessionName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_repository_arns() {
        for ok in [
            "arn:aws:ecr:us-east-1:123456789012:repository/app",
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/app",
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/*",
            "arn:aws:ecr:eu-west-1:123456789012:repository/*",
            "arn:aws-cn:ecr:cn-north-1:123456789012:repository/a.b_c-d/e",
            "arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/x?",
        ] {
            let arn: EcrRepositoryArn = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(arn.to_string(), ok);
        }
        for (bad, part, says) in [
            ("arn:aws:s3:::bucket", ArnPart::Service, "ecr"),
            (
                "arn:aws:ecr::123456789012:repository/app",
                ArnPart::Region,
                "region",
            ),
            (
                "arn:aws:ecr:cn-north-1:123456789012:repository/app",
                ArnPart::Region,
                "aws-cn",
            ),
            (
                "arn:aws:ecr:us-east-1:12345:repository/app",
                ArnPart::Account,
                "12",
            ),
            (
                "arn:aws:ecr:us-east-1:123456789012:image/app",
                ArnPart::ResourceType,
                "repository/",
            ),
            (
                "arn:aws:ecr:us-east-1:123456789012:repository/App",
                ArnPart::Repository,
                "lowercase",
            ),
            (
                "arn:aws:ecr:us-east-1:123456789012:repository/a//b",
                ArnPart::Repository,
                "empty",
            ),
            (
                "arn:aws:ecr:us-east-1:123456789012:repository/a--b",
                ArnPart::Repository,
                "single",
            ),
            (
                "arn:aws:ecr:us-east-1:123456789012:repository/",
                ArnPart::Repository,
                "1 to 256",
            ),
        ] {
            let err = bad.parse::<EcrRepositoryArn>().expect_err(bad);
            assert_eq!(err.part(), part, "{bad}: {err}");
            assert!(
                err.to_string().contains(says),
                "{bad}: {says:?} not in {err}"
            );
        }
    }

    #[test]
    fn role_path_is_split_at_the_last_slash() {
        let a: RoleArn = "arn:aws:iam::123456789012:role/a/b/name".parse().unwrap();
        assert_eq!(a.path, "/a/b/");
        assert_eq!(a.name, "name");
    }

    #[test]
    fn echo_cuts_long_input_on_a_char_boundary() {
        let s = "é".repeat(MAX_ECHO + 5);
        let e = echo(&s);
        assert_eq!(e.chars().count(), MAX_ECHO + 1);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn sanitize_url_drops_userinfo_query_and_fragment() {
        assert_eq!(
            sanitize_url("https://u:pw@host/p?token=t#f"),
            "https://[redacted]@host/p"
        );
        assert_eq!(sanitize_url("https://host/p"), "https://host/p");
    }
}
