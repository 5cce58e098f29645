//! Image references and registry hosts: which registry an image lives on, and whether irsa can get
//! credentials for it (ECR private in every partition, ECR Public, Chainguard).
//!
//! [`parse`] reads what users put in manifests, Helm values and CLI flags: `nginx`,
//! `localhost:5000/app:dev`, `oci://123456789012.dkr.ecr.us-east-1.amazonaws.com/charts/app`,
//! `cgr.dev/chainguard/static@sha256:…`, or a bare registry host. It follows the grammar of the
//! CNCF distribution reference (the one docker and containerd use) and is hand-written so that a
//! reference costs a few allocations and no regex.
//!
//! Decisions a caller may rely on:
//! - **Docker Hub.** As in docker, the first path component is a host only if it contains `.` or
//!   `:` or is `localhost`; otherwise the reference is on Docker Hub (`docker.io`), and a
//!   single-component repository gets `library/` (`nginx` → `docker.io/library/nginx`).
//!   `index.docker.io` is normalised to `docker.io`. Unlike docker, an input without any `/` whose
//!   name contains `.` or is `localhost` is a *bare host* (`cgr.dev`, `localhost:5000`), so that
//!   registry hosts can be given alone; its `:` then introduces a port, never a tag.
//! - **Ports.** A port (1–65535) is kept in [`ImageRef::host`]; [`classify_host`] classifies by the
//!   host name alone, so `public.ecr.aws:443` is still ECR Public.
//! - **Trailing dot.** A fully qualified `host.` is refused by [`parse`] (as docker refuses it, and
//!   because credentials are keyed by the exact host) and is never ECR, ECR Public or Chainguard
//!   to [`classify_host`].
//! - **Case.** Hosts are lowercased; an uppercase repository is an error, as in docker.
//! - **Lookalikes.** A host is ECR only if it is exactly `<12 digits>.dkr.ecr[-fips].<region>.<dns
//!   suffix>` or `<12 digits>.dkr-ecr[-fips].<region>.<on.aws | on.amazonwebservices.com.cn>` and
//!   the region belongs to the partition of the suffix. Anything else is [`Registry::Other`].
//! - **New regions.** Only AWS controls its ECR domains, so a region label that matches no
//!   partition's known pattern but has a region's shape ([`is_region_label`], e.g. `lala-land-1`)
//!   is accepted under them, with the domain's partition, as the kubelet and upstream's
//!   provider accept it: a new AWS geography does not break pulls until irsa is updated.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::partition::{Partition, is_account_id};

/// Longest reference accepted, in bytes (far beyond any real one; bounds the work on hostile input).
pub const MAX_REFERENCE_LEN: usize = 4096;
/// Longest host name, in characters (DNS).
pub const MAX_HOST_LEN: usize = 253;
/// Longest DNS label, in characters.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest repository path, in characters (the distribution spec's limit on a name).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 128;

/// The Docker Hub host that short names such as `nginx` refer to.
pub const DOCKER_HUB_HOST: &str = "docker.io";

/// A parsed image reference (or a bare registry host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, lowercase, with its port if one was given: `localhost:5000`.
    pub host: String,
    /// Repository path (`team/app`, `library/nginx`); `None` when only a host was given.
    pub repository: Option<String>,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest (`sha256:<64 hex>` or `sha512:<128 hex>`), if given.
    pub digest: Option<String>,
    /// What kind of registry the host is.
    pub registry: Registry,
}

/// The kind of registry a host belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// An Amazon ECR private registry.
    Ecr(EcrRegistry),
    /// Amazon ECR Public (`public.ecr.aws`, `ecr-public.aws.com`).
    EcrPublic,
    /// Chainguard's registry (`cgr.dev`).
    Chainguard,
    /// Any other registry (Docker Hub, GHCR, a local registry, …).
    Other,
}

impl Registry {
    /// A stable short name: `ecr`, `ecr-public`, `chainguard` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Registry::Ecr(_) => "ecr",
            Registry::EcrPublic => "ecr-public",
            Registry::Chainguard => "chainguard",
            Registry::Other => "other",
        }
    }
}

/// What an ECR private registry host says about the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRegistry {
    /// The AWS account id (12 ASCII digits).
    pub account: String,
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The region's partition.
    pub partition: Partition,
    /// Whether the host is the FIPS endpoint (`dkr.ecr-fips`, `dkr-ecr-fips`).
    pub fips: bool,
    /// Whether the host is the dual-stack endpoint (`dkr-ecr…on.aws`).
    pub dual_stack: bool,
}

/// Why an image reference or registry host was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The input was empty or only whitespace.
    #[error(
        "empty image reference: give an image such as \"nginx\" or \"cgr.dev/chainguard/static:latest\", or a registry host"
    )]
    Empty,
    /// The input was longer than [`MAX_REFERENCE_LEN`].
    #[error("image reference is {len} bytes long: a reference is at most 4096 bytes")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The input contained whitespace or a control character.
    #[error(
        "invalid image reference {input:?}: it contains whitespace or a control character; remove it"
    )]
    Whitespace {
        /// The input (at most [`MAX_REFERENCE_LEN`] bytes).
        input: String,
    },
    /// The input started with a scheme other than https, http, oci or docker.
    #[error(
        "unsupported scheme {scheme:?} in image reference: use https://, http://, oci://, docker:// or no scheme"
    )]
    UnsupportedScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// The registry host is not a valid DNS name.
    #[error("invalid registry host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The registry port is not a number from 1 to 65535.
    #[error("invalid port {port:?} in registry host {host:?}: a port is a number from 1 to 65535")]
    InvalidPort {
        /// The host with its port, as given.
        host: String,
        /// The port as given.
        port: String,
    },
    /// The repository path breaks the distribution grammar.
    #[error("invalid repository {repository:?}: {reason}")]
    InvalidRepository {
        /// The repository as given.
        repository: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The tag breaks the distribution grammar.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag as given.
        tag: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The digest is not a sha256 or sha512 digest in lowercase hex.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A tag or digest was given after a bare host.
    #[error(
        "{field} {value:?} given without a repository on registry host {host:?}: write \"{host}/<repository>{separator}{value}\""
    )]
    MissingRepository {
        /// The registry host.
        host: String,
        /// "tag" or "digest".
        field: &'static str,
        /// ':' or '@'.
        separator: char,
        /// The tag or digest as given.
        value: String,
    },
    /// An ECR-shaped host whose account id is not 12 ASCII digits.
    #[error(
        "invalid ECR account id {account:?} in host {host:?}: an account id is exactly 12 ASCII digits"
    )]
    EcrAccount {
        /// The account label as given.
        account: String,
        /// The host.
        host: String,
    },
    /// An ECR-shaped host whose region label is not a region.
    #[error(
        "invalid region {region:?} in ECR host {host:?}: a region is lowercase and follows its partition's pattern, e.g. \"us-east-1\", \"us-gov-west-1\", \"cn-north-1\""
    )]
    EcrRegion {
        /// The region label as given.
        region: String,
        /// The host.
        host: String,
    },
    /// An ECR-shaped host whose region does not belong to the partition its domain names.
    #[error(
        "region {region:?} in ECR host {host:?} belongs to partition {partition}, but the host's domain is {suffix:?}: \
         registry hosts of {partition} end in {expected:?}; fix the region or the domain"
    )]
    EcrPartitionMismatch {
        /// The region.
        region: String,
        /// The host.
        host: String,
        /// The region's partition.
        partition: Partition,
        /// The domain the host ends in.
        suffix: String,
        /// The domain the region's partition uses for this kind of host.
        expected: &'static str,
    },
    /// A host that is not an ECR private registry host at all.
    #[error(
        "host {host:?} is not an ECR registry host: expected \"<account>.dkr.ecr[-fips].<region>.<partition dns suffix>\" \
         or \"<account>.dkr-ecr[-fips].<region>.on.aws\""
    )]
    NotEcrHost {
        /// The host.
        host: String,
    },
}

/// Parses an image reference or a bare registry host. See the module docs for the rules.
pub fn parse(input: &str) -> Result<ImageRef, RegistryError> {
    if input.len() > MAX_REFERENCE_LEN {
        return Err(RegistryError::TooLong { len: input.len() });
    }
    if input.trim().is_empty() {
        return Err(RegistryError::Empty);
    }
    // ASCII fast path; Unicode whitespace and controls only need a look when there is non-ASCII.
    let has_space = input.bytes().any(|b| b <= b' ' || b == 0x7f)
        || (!input.is_ascii() && input.chars().any(|c| c.is_whitespace() || c.is_control()));
    if has_space {
        return Err(RegistryError::Whitespace {
            input: input.to_owned(),
        });
    }
    let (rest, has_scheme) = strip_scheme(input)?;
    if rest.is_empty() {
        return Err(RegistryError::Empty);
    }

    let (host, path) = match rest.split_once('/') {
        Some((first, path)) if has_scheme || names_host(first) => (parse_host(first)?, path),
        Some(_) => (DOCKER_HUB_HOST.to_owned(), rest),
        None => {
            let name_end = rest.find([':', '@']).unwrap_or(rest.len());
            if has_scheme || is_host_name(&rest[..name_end]) {
                return parse_bare_host(rest);
            }
            (DOCKER_HUB_HOST.to_owned(), rest)
        }
    };
    // Docker's legacy index name is the same registry.
    let host = if host == "index.docker.io" {
        DOCKER_HUB_HOST.to_owned()
    } else {
        host
    };

    // One trailing '/' is tolerated ("cgr.dev/chainguard/", "docker.io/").
    let path = path.strip_suffix('/').unwrap_or(path);
    let (name, digest) = match path.split_once('@') {
        Some((name, digest)) => (name, Some(parse_digest(digest)?)),
        None => (path, None),
    };
    let (name, tag) = match name.split_once(':') {
        Some((name, tag)) => (name, Some(parse_tag(tag)?)),
        None => (name, None),
    };
    if name.is_empty() {
        if let Some(tag) = tag {
            return Err(missing_repository(host, "tag", ':', tag));
        }
        if let Some(digest) = digest {
            return Err(missing_repository(host, "digest", '@', digest));
        }
        let registry = classify_lowercase(&host);
        return Ok(ImageRef {
            host,
            repository: None,
            tag,
            digest,
            registry,
        });
    }
    validate_repository(name)?;
    let repository = if host == DOCKER_HUB_HOST && !name.contains('/') {
        let mut repository = String::with_capacity("library/".len() + name.len());
        repository.push_str("library/");
        repository.push_str(name);
        // The limit holds for the repository as stored, so the rendered form parses again.
        validate_repository(&repository)?;
        repository
    } else {
        name.to_owned()
    };
    let registry = classify_lowercase(&host);
    Ok(ImageRef {
        host,
        repository: Some(repository),
        tag,
        digest,
        registry,
    })
}

/// Classifies a registry host (with or without `:port`, any case) as ECR, ECR Public,
/// Chainguard or other. Never fails: anything that is not exactly a known form is
/// [`Registry::Other`].
pub fn classify_host(host: &str) -> Registry {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        classify_lowercase(&host.to_ascii_lowercase())
    } else {
        classify_lowercase(host)
    }
}

/// Parses an ECR private registry host (with or without `:port`, any case), explaining why a
/// host is not one. [`classify_host`] returns [`Registry::Ecr`] exactly when this succeeds.
pub fn parse_ecr_host(host: &str) -> Result<EcrRegistry, RegistryError> {
    let lower = host.to_ascii_lowercase();
    ecr_parts(host_name(&lower)).map_err(|problem| match problem {
        EcrProblem::NotEcr => RegistryError::NotEcrHost {
            host: host.to_owned(),
        },
        EcrProblem::Account(account) => RegistryError::EcrAccount {
            account: account.to_owned(),
            host: host.to_owned(),
        },
        EcrProblem::Region(region) => RegistryError::EcrRegion {
            region: region.to_owned(),
            host: host.to_owned(),
        },
        EcrProblem::Mismatch {
            region,
            partition,
            suffix,
            dual_stack,
        } => RegistryError::EcrPartitionMismatch {
            region: region.to_owned(),
            host: host.to_owned(),
            partition,
            suffix: suffix.to_owned(),
            expected: if dual_stack {
                partition
                    .ecr_dual_stack_registry_suffix()
                    .unwrap_or("(no dual-stack registry domain)")
            } else {
                partition.dns_suffix()
            },
        },
    })
}

impl FromStr for ImageRef {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl fmt::Display for ImageRef {
    /// The canonical form: `host[/repository][:tag][@digest]`, such that parsing it gives back
    /// the same `ImageRef`. A host that would not read as a host on its own (no `.`, no port, not
    /// `localhost`, only reachable through a scheme) is written with `oci://`; a bare host whose
    /// first name would read as a Docker Hub image (`registry:5000`) is written with a trailing `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needs_scheme = !names_host(&self.host);
        if needs_scheme {
            f.write_str("oci://")?;
        }
        f.write_str(&self.host)?;
        match &self.repository {
            Some(repository) => write!(f, "/{repository}")?,
            None if !needs_scheme && !is_host_name(host_name(&self.host)) => f.write_str("/")?,
            None => {}
        }
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's test for whether the first path component is a registry host.
fn names_host(first: &str) -> bool {
    first.contains(['.', ':']) || first.eq_ignore_ascii_case("localhost")
}

/// Whether a name without a path reads as a bare host rather than a Docker Hub image.
fn is_host_name(name: &str) -> bool {
    name.contains('.') || name.eq_ignore_ascii_case("localhost")
}

/// The host without its port.
fn host_name(host: &str) -> &str {
    host.split_once(':').map_or(host, |(name, _)| name)
}

fn strip_scheme(input: &str) -> Result<(&str, bool), RegistryError> {
    let Some((scheme, rest)) = input.split_once("://") else {
        return Ok((input, false));
    };
    // "://" further along (in a path or tag) is not a scheme separator.
    if !scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+')
    {
        return Ok((input, false));
    }
    for known in ["https", "http", "oci", "docker"] {
        if scheme.eq_ignore_ascii_case(known) {
            return Ok((rest, true));
        }
    }
    Err(RegistryError::UnsupportedScheme {
        scheme: scheme.to_owned(),
    })
}

fn parse_bare_host(rest: &str) -> Result<ImageRef, RegistryError> {
    let (host, digest) = match rest.split_once('@') {
        Some((host, digest)) => (host, Some(digest)),
        None => (rest, None),
    };
    let host = parse_host(host)?;
    if let Some(digest) = digest {
        return Err(missing_repository(host, "digest", '@', digest.to_owned()));
    }
    let registry = classify_lowercase(&host);
    Ok(ImageRef {
        host,
        repository: None,
        tag: None,
        digest: None,
        registry,
    })
}

fn missing_repository(
    host: String,
    field: &'static str,
    separator: char,
    value: String,
) -> RegistryError {
    RegistryError::MissingRepository {
        host,
        field,
        separator,
        value,
    }
}

/// Validates `name[:port]` and returns it lowercased.
fn parse_host(raw: &str) -> Result<String, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidHost {
        host: raw.to_owned(),
        reason,
    };
    if raw.starts_with('[') {
        return Err(invalid(
            "IPv6 address literals are not supported: use a DNS name for the registry".into(),
        ));
    }
    let (name, port) = match raw.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (raw, None),
    };
    if name.is_empty() {
        return Err(invalid("the host name is empty".into()));
    }
    if name.len() > MAX_HOST_LEN {
        return Err(invalid(format!(
            "the host name is {} characters long: a host name is at most {MAX_HOST_LEN} characters",
            name.len()
        )));
    }
    if name.ends_with('.') {
        return Err(invalid(
            "a trailing dot is not allowed: write the host without it".into(),
        ));
    }
    for label in name.split('.') {
        validate_label(label).map_err(&invalid)?;
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(RegistryError::InvalidPort {
                host: raw.to_owned(),
                port: port.to_owned(),
            });
        }
    }
    Ok(raw.to_ascii_lowercase())
}

fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (a leading dot or two dots in a row)".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label {label:?} is {} characters long: a DNS label is at most {MAX_LABEL_LEN} characters",
            label.len()
        ));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        let c = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            .unwrap_or('?');
        return Err(format!(
            "character {c:?} is not allowed in a host name: use ASCII letters, digits, '-' and '.'"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "label {label:?} starts or ends with '-': DNS labels start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a repository path against the distribution grammar:
/// components `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` separated by `/`.
fn validate_repository(repository: &str) -> Result<(), RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidRepository {
        repository: repository.to_owned(),
        reason,
    };
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(invalid(format!(
            "it is {} characters long: a repository is at most {MAX_REPOSITORY_LEN} characters",
            repository.len()
        )));
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "repository name must be lowercase: write it in lowercase letters".into(),
        ));
    }
    for component in repository.split('/') {
        validate_component(component).map_err(&invalid)?;
    }
    Ok(())
}

fn validate_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("it has an empty path component (\"//\" or a leading '/')".into());
    }
    let bad = || {
        format!(
            "path component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or dashes, \
             and start and end with a letter or digit"
        )
    };
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn parse_tag(tag: &str) -> Result<String, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidTag {
        tag: tag.to_owned(),
        reason,
    };
    if tag.is_empty() {
        return Err(invalid(
            "the tag is empty: write a tag after ':' or drop the ':'".into(),
        ));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(invalid(format!(
            "it is {} characters long: a tag is at most {MAX_TAG_LEN} characters",
            tag.len()
        )));
    }
    let bytes = tag.as_bytes();
    let valid = (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(invalid(
            "a tag is ASCII letters, digits, '_', '.' and '-', and does not start with '.' or '-'"
                .into(),
        ));
    }
    Ok(tag.to_owned())
}

fn parse_digest(digest: &str) -> Result<String, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidDigest {
        digest: digest.to_owned(),
        reason,
    };
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(invalid(
            "a digest is <algorithm>:<hex>, e.g. \"sha256:\" followed by 64 hex characters".into(),
        ));
    };
    let expected = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(invalid(format!(
                "unsupported digest algorithm {algorithm:?}: use sha256 or sha512"
            )));
        }
    };
    if hex.len() != expected {
        return Err(invalid(format!(
            "a {algorithm} digest has {expected} hex characters, this one has {}",
            hex.len()
        )));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(format!(
            "a {algorithm} digest is lowercase hex (0-9, a-f)"
        )));
    }
    Ok(digest.to_owned())
}

/// Classifies a lowercase host (port allowed).
fn classify_lowercase(host: &str) -> Registry {
    let name = host_name(host);
    match name {
        "public.ecr.aws" | "ecr-public.aws.com" => Registry::EcrPublic,
        "cgr.dev" => Registry::Chainguard,
        _ => ecr_parts(name).map_or(Registry::Other, Registry::Ecr),
    }
}

/// Why a lowercase host name is not ECR. Borrowed so that classifying a non-ECR host allocates
/// nothing; [`parse_ecr_host`] turns it into a message.
enum EcrProblem<'a> {
    NotEcr,
    Account(&'a str),
    Region(&'a str),
    Mismatch {
        region: &'a str,
        partition: Partition,
        suffix: &'a str,
        dual_stack: bool,
    },
}

/// Reads `<account>.dkr.ecr[-fips].<region>.<suffix>` or
/// `<account>.dkr-ecr[-fips].<region>.<dual-stack suffix>` from a lowercase host name.
fn ecr_parts(name: &str) -> Result<EcrRegistry, EcrProblem<'_>> {
    let (account, rest) = name.split_once('.').ok_or(EcrProblem::NotEcr)?;
    let (dual_stack, fips, rest) = if let Some(rest) = rest.strip_prefix("dkr.ecr.") {
        (false, false, rest)
    } else if let Some(rest) = rest.strip_prefix("dkr.ecr-fips.") {
        (false, true, rest)
    } else if let Some(rest) = rest.strip_prefix("dkr-ecr.") {
        (true, false, rest)
    } else if let Some(rest) = rest.strip_prefix("dkr-ecr-fips.") {
        (true, true, rest)
    } else {
        return Err(EcrProblem::NotEcr);
    };
    let (region, suffix) = rest.split_once('.').ok_or(EcrProblem::NotEcr)?;
    // The suffix must be exactly one the form uses somewhere: extra or missing labels are lookalikes.
    let known_suffix = Partition::ALL.iter().any(|p| {
        if dual_stack {
            p.ecr_dual_stack_registry_suffix() == Some(suffix)
        } else {
            p.dns_suffix() == suffix
        }
    });
    if !known_suffix {
        return Err(EcrProblem::NotEcr);
    }
    if !is_account_id(account) {
        return Err(EcrProblem::Account(account));
    }
    // A region label irsa does not know yet (a new geography) is still a region under AWS's
    // own domains, which nobody else can serve: the domain names the partition.
    let partition = match Partition::from_region(region) {
        Some(p) => p,
        None if is_region_label(region) => Partition::ALL
            .into_iter()
            .find(|p| {
                if dual_stack {
                    p.ecr_dual_stack_registry_suffix() == Some(suffix)
                } else {
                    p.dns_suffix() == suffix
                }
            })
            .ok_or(EcrProblem::Region(region))?,
        None => return Err(EcrProblem::Region(region)),
    };
    let expected = if dual_stack {
        partition.ecr_dual_stack_registry_suffix()
    } else {
        Some(partition.dns_suffix())
    };
    if expected != Some(suffix) {
        return Err(EcrProblem::Mismatch {
            region,
            partition,
            suffix,
            dual_stack,
        });
    }
    Ok(EcrRegistry {
        account: account.to_owned(),
        region: region.to_owned(),
        partition,
        fips,
        dual_stack,
    })
}

/// Whether `label` has the shape of an AWS region name, known or not: three to five `-`-separated
/// parts, lowercase ASCII letters, the last one to three ASCII digits (`lala-land-1`).
pub fn is_region_label(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    (3..=5).contains(&parts.len())
        && (1..=3).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{EndpointVariant, ecr_registry_host};

    const ACCOUNT: &str = "123456789012";
    const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ecr(region: &str, partition: Partition, fips: bool, dual_stack: bool) -> Registry {
        Registry::Ecr(EcrRegistry {
            account: ACCOUNT.into(),
            region: region.into(),
            partition,
            fips,
            dual_stack,
        })
    }

    /// One region per partition × every host form the partition has.
    #[test]
    fn every_partition_and_variant_host_is_ecr() {
        let regions = [
            ("us-east-1", Partition::Aws),
            ("cn-north-1", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("us-iso-east-1", Partition::AwsIso),
            ("us-isob-east-1", Partition::AwsIsoB),
            ("eu-isoe-west-1", Partition::AwsIsoE),
            ("us-isof-south-1", Partition::AwsIsoF),
            ("eusc-de-east-1", Partition::AwsEusc),
        ];
        let mut checked = 0;
        for (region, partition) in regions {
            let suffix = partition.dns_suffix();
            let mut table = vec![
                (format!("{ACCOUNT}.dkr.ecr.{region}.{suffix}"), false, false),
                (
                    format!("{ACCOUNT}.dkr.ecr-fips.{region}.{suffix}"),
                    true,
                    false,
                ),
            ];
            if let Some(dual) = partition.ecr_dual_stack_registry_suffix() {
                table.push((format!("{ACCOUNT}.dkr-ecr.{region}.{dual}"), false, true));
                table.push((
                    format!("{ACCOUNT}.dkr-ecr-fips.{region}.{dual}"),
                    true,
                    true,
                ));
            } else {
                // Where ECR documents no dual-stack domain, the common ones are not ECR.
                for dual in ["on.aws", "on.amazonwebservices.com.cn"] {
                    let host = format!("{ACCOUNT}.dkr-ecr.{region}.{dual}");
                    assert_eq!(classify_host(&host), Registry::Other, "{host}");
                }
            }
            for (host, fips, dual_stack) in table {
                let want = ecr(region, partition, fips, dual_stack);
                assert_eq!(classify_host(&host), want, "{host}");
                let image = parse(&format!("{host}/team/app:1.0")).unwrap();
                assert_eq!(image.registry, want, "{host}");
                assert_eq!(image.registry.kind(), "ecr");
                checked += 1;
            }
        }
        assert_eq!(checked, 22);
    }

    #[test]
    fn every_plain_suffix_is_ecr() {
        let table = [
            ("amazonaws.com", "us-west-2", Partition::Aws),
            ("amazonaws.com", "us-gov-east-1", Partition::AwsUsGov),
            ("amazonaws.com.cn", "cn-northwest-1", Partition::AwsCn),
            ("amazonaws.eu", "eusc-de-east-1", Partition::AwsEusc),
            ("c2s.ic.gov", "us-iso-west-1", Partition::AwsIso),
            ("sc2s.sgov.gov", "us-isob-east-1", Partition::AwsIsoB),
            ("cloud.adc-e.uk", "eu-isoe-west-1", Partition::AwsIsoE),
            ("csp.hci.ic.gov", "us-isof-east-1", Partition::AwsIsoF),
        ];
        for (suffix, region, partition) in table {
            let host = format!("{ACCOUNT}.dkr.ecr.{region}.{suffix}");
            assert_eq!(classify_host(&host), ecr(region, partition, false, false));
        }
    }

    #[test]
    fn generated_registry_hosts_classify_back() {
        for partition in Partition::ALL {
            let region = partition.implicit_global_region();
            for variant in EndpointVariant::ALL {
                let Ok(host) = ecr_registry_host(ACCOUNT, region, variant) else {
                    continue;
                };
                assert_eq!(
                    classify_host(&host),
                    ecr(region, partition, variant.fips, variant.dual_stack),
                    "{host}"
                );
            }
        }
    }

    #[test]
    fn ecr_public_and_chainguard() {
        let table = [
            ("public.ecr.aws", Registry::EcrPublic),
            ("ecr-public.aws.com", Registry::EcrPublic),
            ("PUBLIC.ECR.AWS", Registry::EcrPublic),
            ("public.ecr.aws:443", Registry::EcrPublic),
            ("cgr.dev", Registry::Chainguard),
            ("cgr.dev:443", Registry::Chainguard),
            ("docker.io", Registry::Other),
            ("ghcr.io", Registry::Other),
        ];
        for (host, want) in table {
            assert_eq!(classify_host(host), want, "{host}");
        }
        assert_eq!(Registry::EcrPublic.kind(), "ecr-public");
        assert_eq!(Registry::Chainguard.kind(), "chainguard");
        assert_eq!(Registry::Other.kind(), "other");
    }

    #[test]
    fn ports_and_case_do_not_change_the_classification() {
        let host = "123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM:443";
        assert_eq!(
            classify_host(host),
            ecr("us-east-1", Partition::Aws, false, false)
        );
        let image = parse(&format!("{host}/app")).unwrap();
        assert_eq!(
            image.host,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:443"
        );
    }

    #[test]
    fn parse_ecr_host_explains_lookalikes() {
        let err = parse_ecr_host("12345.dkr.ecr.us-east-1.amazonaws.com").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ECR account id \"12345\" in host \"12345.dkr.ecr.us-east-1.amazonaws.com\": \
             an account id is exactly 12 ASCII digits"
        );
        let err = parse_ecr_host("123456789012.dkr.ecr.us-east-1a.amazonaws.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid region \"us-east-1a\""), "{err}");
        let err = parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn")
            .unwrap_err()
            .to_string();
        assert!(err.contains("region \"us-east-1\""), "{err}");
        assert!(
            err.contains("partition aws") && err.contains("\"amazonaws.com\""),
            "{err}"
        );
        let err = parse_ecr_host("123456789012.dkr-ecr.us-iso-east-1.on.aws")
            .unwrap_err()
            .to_string();
        assert!(err.contains("partition aws-iso"), "{err}");
        let err = parse_ecr_host("ghcr.io").unwrap_err().to_string();
        assert!(
            err.contains("\"ghcr.io\" is not an ECR registry host"),
            "{err}"
        );
        assert_eq!(
            parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com:5000"),
            Ok(EcrRegistry {
                account: ACCOUNT.into(),
                region: "us-east-1".into(),
                partition: Partition::Aws,
                fips: false,
                dual_stack: false,
            })
        );
    }

    /// AWS alone controls its ECR domains, so a region label irsa does not know yet (a new
    /// geography) is accepted there, as the kubelet and upstream's provider accept it; the
    /// partition is the domain's. Lookalike domains and malformed labels stay refused.
    #[test]
    fn any_well_formed_region_label_under_aws_domains_is_ecr() {
        let table = [
            (
                "123456789012.dkr.ecr.lala-land-1.amazonaws.com",
                "lala-land-1",
                Partition::Aws,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr-fips.xx-newgeo-12.amazonaws.com",
                "xx-newgeo-12",
                Partition::Aws,
                true,
                false,
            ),
            (
                "123456789012.dkr-ecr.lala-land-1.on.aws",
                "lala-land-1",
                Partition::Aws,
                false,
                true,
            ),
            (
                "123456789012.dkr.ecr.cn-farwest-2.amazonaws.com.cn",
                "cn-farwest-2",
                Partition::AwsCn,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.zz-isoz-east-1.c2s.ic.gov",
                "zz-isoz-east-1",
                Partition::AwsIso,
                false,
                false,
            ),
            (
                "123456789012.dkr.ecr.lala-land-1.amazonaws.eu",
                "lala-land-1",
                Partition::AwsEusc,
                false,
                false,
            ),
        ];
        for (host, region, partition, fips, dual_stack) in table {
            assert_eq!(
                classify_host(host),
                ecr(region, partition, fips, dual_stack),
                "{host}"
            );
            assert_eq!(
                classify_host(&format!("{host}:443")),
                ecr(region, partition, fips, dual_stack)
            );
        }
        for lookalike in [
            "123456789012.dkr.ecr.lala-land-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.lala-land-1.amazonaws.co",
            "123456789012.dkr.ecr.lala-land-1.example.com",
            "123456789012.dkr.ecr.lala-land-1a.amazonaws.com",
            "123456789012.dkr.ecr.lala-land.amazonaws.com",
            "123456789012.dkr.ecr.1-2.amazonaws.com",
            "123456789012.dkr.ecr.lala--1.amazonaws.com",
            "123456789012.dkr.ecr.lala-land-1234.amazonaws.com",
            "123456789012.dkr.ecr.a-b-c-d-e-1.amazonaws.com",
            "12345678901.dkr.ecr.lala-land-1.amazonaws.com",
        ] {
            assert_eq!(classify_host(lookalike), Registry::Other, "{lookalike}");
        }
        assert_eq!(
            crate::partition::ecr_api_endpoint_in(
                Partition::Aws,
                "lala-land-1",
                EndpointVariant::PLAIN
            ),
            Ok("api.ecr.lala-land-1.amazonaws.com".to_owned())
        );
        // A known region on another partition's domain is still a mismatch, not a new region.
        assert!(matches!(
            parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com.cn"),
            Err(RegistryError::EcrPartitionMismatch { .. })
        ));
    }

    #[test]
    fn docker_hub_short_names_are_limited_after_library_is_added() {
        // Found by the registry fuzz target: a 252-character short name became a 260-character
        // repository that did not parse again.
        let name = "a".repeat(MAX_REPOSITORY_LEN - "library/".len());
        let ok = parse(&name).expect("fits with library/");
        assert_eq!(parse(&ok.to_string()), Ok(ok));
        let err = parse(&format!("{name}b")).expect_err("too long once library/ is added");
        let text = err.to_string();
        assert!(
            text.contains("library/") && text.contains("at most 255"),
            "{text}"
        );
    }

    #[test]
    fn repository_component_grammar() {
        for ok in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b_c__d-e",
            "0",
        ] {
            assert!(validate_component(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".a", "a.", "_a", "a_", "-a", "a-", "a..b", "a._b", "a___b", "a_-b", "a-.b", "A",
            "a b", "a\u{e9}",
        ] {
            assert!(validate_component(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_forms() {
        let table = [
            ("nginx", "docker.io/library/nginx"),
            ("localhost:5000", "localhost:5000"),
            ("registry:5000/", "registry:5000/"),
            ("http://registry:5000", "registry:5000/"),
            ("oci://registry/app", "oci://registry/app"),
            ("https://registry", "oci://registry"),
            ("cgr.dev/", "cgr.dev"),
            (
                "CGR.dev/chainguard/static:latest",
                "cgr.dev/chainguard/static:latest",
            ),
        ];
        for (input, rendered) in table {
            let image = parse(input).unwrap();
            assert_eq!(image.to_string(), rendered, "{input}");
            assert_eq!(parse(rendered), Ok(image), "{input}");
        }
        let digest = format!("app@{SHA256}");
        assert_eq!(
            parse(&digest).unwrap().to_string(),
            format!("docker.io/library/app@{SHA256}")
        );
    }
}
