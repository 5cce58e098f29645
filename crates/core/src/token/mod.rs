//! Web-identity tokens: Kubernetes service-account JWTs as `AssumeRoleWithWebIdentity` sees them.
//!
//! - [`decode_unverified`] reads header and claims without checking anything, for inspection
//!   and explanations (`irsa token inspect`, `irsa doctor`).
//! - [`check_claims`] checks `iss`, `aud`, `exp`, `nbf` and `iat` against [`Expectations`] and
//!   reports every problem at once.
//! - [`verify`] checks the signature against the issuer's [`Jwks`], then the claims, as STS does.
//!
//! Decisions, matching STS:
//! - **Issuer**: compared as an exact string. STS looks the OIDC provider up by the token's
//!   `iss`, and a trailing `/` makes a different provider ("No OpenIDConnect provider found in
//!   your account for `https://example.com/`"), so a trailing-slash difference is an error; its
//!   message says that this is the only difference.
//! - **Leeway**: [`DEFAULT_LEEWAY_SECONDS`] (60 s) on `exp`, `nbf` and `iat`, for clock skew
//!   between the issuer and the verifier. IAM itself accepts a token up to five minutes after
//!   `exp` ([`STS_EXPIRY_GRACE_SECONDS`]); a sandbox imitating STS may use that instead.
//! - **`exp` is required**: STS rejects web-identity tokens without an expiry.
//!
//! No function here does I/O or reads the clock: `now` is passed in. No error or `Debug` output
//! contains the raw token or its signature.

mod claims;
mod discovery;
mod error;
mod jwks;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

pub use claims::{Claims, KubernetesClaim, ObjectRef, ServiceAccountName};
pub use discovery::{Discovery, DiscoveryError, MAX_DISCOVERY_BYTES};
pub use error::{Part, TokenError};
pub use jwks::{Jwks, SUPPORTED_ALGORITHMS, VerifiedToken, verify};

/// Largest token accepted, in bytes (64 KiB). Kubernetes tokens are about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Default clock-skew leeway in seconds applied to `exp`, `nbf` and `iat`: 60, the customary
/// JWT library default (and jsonwebtoken's).
pub const DEFAULT_LEEWAY_SECONDS: i64 = 60;

/// How long after `exp` IAM still accepts a web-identity token: five minutes, per the IAM user
/// guide ("OIDC federation").
pub const STS_EXPIRY_GRACE_SECONDS: i64 = 300;

/// The JOSE header of a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// Signature algorithm, as sent (`RS256`, `ES256`, … or anything else: not validated here).
    pub alg: String,
    /// Key id: which JWKS key signed the token.
    pub kid: Option<String>,
    /// Token type (`JWT`), informational.
    pub typ: Option<String>,
}

/// Decoded but NOT verified: for inspection and explanations only.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UnverifiedToken {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
}

/// Decodes a token's header and claims without verifying anything.
///
/// Surrounding whitespace (token files end with a newline) is ignored. Fails on inputs over
/// [`MAX_TOKEN_BYTES`], anything but three segments, bad base64url, non-JSON or non-object
/// header/claims, a header without `alg`, and mistyped registered claims. Any `alg`, including
/// `none`, is decoded: rejecting it is [`verify`]'s job.
pub fn decode_unverified(raw: &str) -> Result<UnverifiedToken, TokenError> {
    decode_parts(raw).map(|parts| parts.token)
}

/// A decoded token plus what [`verify`] needs beyond it.
pub(crate) struct DecodedParts<'a> {
    pub(crate) token: UnverifiedToken,
    /// `header.claims`, the signed message.
    pub(crate) signing_input: &'a str,
    /// The signature segment (base64url).
    pub(crate) signature: &'a str,
    /// Whether the header has a `crit` member.
    pub(crate) has_crit: bool,
}

pub(crate) fn decode_parts(raw: &str) -> Result<DecodedParts<'_>, TokenError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge {
            len: raw.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    let token = raw.trim();
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let segments: Vec<&str> = token.split('.').collect();
    let &[header_b64, claims_b64, signature] = segments.as_slice() else {
        return Err(TokenError::SegmentCount {
            found: segments.len(),
        });
    };
    let header_map = json_object(header_b64, Part::Header)?;
    let claims_map = json_object(claims_b64, Part::Claims)?;
    if URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(TokenError::Base64 {
            part: Part::Signature,
        });
    }
    let has_crit = header_map.contains_key("crit");
    let header = parse_header(&header_map)?;
    let claims = Claims::from_map(claims_map)?;
    Ok(DecodedParts {
        token: UnverifiedToken { header, claims },
        signing_input: &token[..header_b64.len() + 1 + claims_b64.len()],
        signature,
        has_crit,
    })
}

fn json_object(segment: &str, part: Part) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Base64 { part })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| TokenError::Json {
        part,
        reason: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(TokenError::NotAnObject {
            part,
            found: claims::json_type(&other),
        }),
    }
}

fn parse_header(map: &Map<String, Value>) -> Result<Header, TokenError> {
    let field = |key: &str| -> Result<Option<String>, TokenError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(TokenError::FieldType {
                part: Part::Header,
                field: key.to_owned(),
                expected: "a string",
                found: claims::json_type(other),
            }),
        }
    };
    Ok(Header {
        alg: field("alg")?.ok_or(TokenError::MissingAlg)?,
        kid: field("kid")?,
        typ: field("typ")?,
    })
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The exact issuer URL (`iss`), e.g. `https://oidc.eks.eu-west-1.amazonaws.com/id/EX4MPLE`;
    /// `None` = don't check.
    pub issuer: Option<String>,
    /// Acceptable audiences: any one of them must be in `aud`; empty = don't check.
    pub audiences: Vec<String>,
    /// The current time, unix seconds (injected: this crate reads no clock).
    pub now: i64,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds; see
    /// [`DEFAULT_LEEWAY_SECONDS`].
    pub leeway_seconds: i64,
}

impl Expectations {
    /// Checks only times, at `now`, with [`DEFAULT_LEEWAY_SECONDS`].
    pub fn new(now: i64) -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            now,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
        }
    }

    /// Also requires this exact issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Also accepts this audience (any one of the audiences must be in `aud`).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// With another leeway, in seconds.
    pub fn with_leeway(mut self, seconds: i64) -> Self {
        self.leeway_seconds = seconds;
        self
    }
}

/// Checks iss, aud, exp, nbf, iat (iat in the future beyond leeway is an error) on
/// already-decoded claims; returns every problem found, not just the first.
///
/// A token is expired when `now > exp + leeway`, not yet valid when `now + leeway < nbf`, and
/// issued in the future when `iat > now + leeway`. A missing `exp` is a problem (STS requires
/// it); a missing `nbf` or `iat` is not.
pub fn check_claims(claims: &Claims, expect: &Expectations) -> Vec<TokenError> {
    let mut problems = Vec::new();
    let (now, leeway) = (expect.now, expect.leeway_seconds.max(0));

    if let Some(expected) = &expect.issuer {
        match &claims.iss {
            None => problems.push(TokenError::IssuerMissing {
                expected: expected.clone(),
            }),
            Some(found) if found != expected => problems.push(TokenError::IssuerMismatch {
                found: found.clone(),
                expected: expected.clone(),
                hint: issuer_hint(found, expected),
            }),
            Some(_) => {}
        }
    }

    if !expect.audiences.is_empty() {
        if claims.aud.is_empty() {
            problems.push(TokenError::AudienceMissing {
                expected: expect.audiences.clone(),
            });
        } else if !claims.aud.iter().any(|a| expect.audiences.contains(a)) {
            problems.push(TokenError::AudienceMismatch {
                found: claims.aud.clone(),
                expected: expect.audiences.clone(),
            });
        }
    }

    match claims.exp {
        None => problems.push(TokenError::ExpMissing),
        Some(exp) if now > exp.saturating_add(leeway) => {
            problems.push(TokenError::Expired { exp, now, leeway })
        }
        Some(_) => {}
    }
    if let Some(nbf) = claims.nbf
        && now.saturating_add(leeway) < nbf
    {
        problems.push(TokenError::NotYetValid { nbf, now, leeway });
    }
    if let Some(iat) = claims.iat
        && iat > now.saturating_add(leeway)
    {
        problems.push(TokenError::IssuedInFuture { iat, now, leeway });
    }
    problems
}

fn issuer_hint(found: &str, expected: &str) -> String {
    if found.trim_end_matches('/') == expected.trim_end_matches('/') {
        "they differ only by a trailing '/', and STS compares `iss` with the OIDC provider URL \
         exactly; register the provider (and serve discovery `issuer`) with exactly the `iss` value"
            .to_owned()
    } else {
        "STS finds the IAM OIDC provider by `iss`; use a token from the cluster with that issuer \
         (kube-apiserver --service-account-issuer), or register an OIDC provider for this one"
            .to_owned()
    }
}
