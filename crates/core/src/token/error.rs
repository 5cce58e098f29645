//! Everything that can be wrong with a web-identity token, its claims or the JWKS.
//!
//! No variant carries the raw token or any of its segments: messages name the part and the
//! problem, and quote decoded claim values (which are not secret) where that helps.

use std::fmt;

use crate::time::{human_duration, rfc3339};

/// The three dot-separated parts of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The JOSE header (first segment).
    Header,
    /// The claims set (second segment).
    Claims,
    /// The signature (third segment).
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        })
    }
}

/// Why a token could not be decoded, verified or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The input is empty (or only whitespace).
    #[error(
        "token is empty: pass the JWT itself (for a projected token, the content of the file named by AWS_WEB_IDENTITY_TOKEN_FILE)"
    )]
    Empty,

    /// The input is larger than [`super::MAX_TOKEN_BYTES`].
    #[error(
        "token is {len} bytes, more than the {max}-byte limit: pass a single JWT, not a file or bundle that contains one"
    )]
    TooLarge {
        /// Size of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Not three dot-separated segments.
    #[error(
        "token has {found} dot-separated segment(s), a JWT has 3 (header.claims.signature): check that the whole token was copied (encrypted 5-segment JWE tokens are not supported)"
    )]
    SegmentCount {
        /// How many segments the input has.
        found: usize,
    },

    /// A segment is not unpadded base64url.
    #[error(
        "token {part} is not valid base64url (unpadded, alphabet A-Z a-z 0-9 - _): the token was truncated or altered"
    )]
    Base64 {
        /// Which segment.
        part: Part,
    },

    /// The header or claims segment is not JSON.
    #[error("token {part} is not valid JSON ({reason}): the token was altered or is not a JWT")]
    Json {
        /// Which segment.
        part: Part,
        /// The parser's explanation (position and expectation, never the token).
        reason: String,
    },

    /// The header or claims segment is JSON but not an object.
    #[error("token {part} is {found}, not a JSON object: the token is not a JWT")]
    NotAnObject {
        /// Which segment.
        part: Part,
        /// The JSON type found (`an array`, `a string`…).
        found: &'static str,
    },

    /// A header or claim has the wrong JSON type.
    #[error(
        "token {part} field `{field}` must be {expected}, found {found}: the issuer is not producing standard JWTs"
    )]
    FieldType {
        /// Header or claims.
        part: Part,
        /// Field name (dotted for nested `kubernetes.io` fields).
        field: String,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },

    /// The header has no `alg`.
    #[error("token header has no `alg`: every signed JWT names its signature algorithm")]
    MissingAlg,

    /// `alg: none`: an unsigned token.
    #[error(
        "token header alg is \"none\" (an unsigned token): only signed tokens are accepted (RS256, RS384, RS512, PS256, ES256, ES384)"
    )]
    AlgNone,

    /// An HMAC algorithm, which a JWKS of public keys can never verify safely.
    #[error(
        "token header alg {alg} is an HMAC (shared-secret) algorithm: a JWKS holds public keys, and accepting HS* against a public key is the algorithm-confusion attack; the issuer must sign with RS256 or ES256"
    )]
    HmacAlg {
        /// The `alg` header value.
        alg: String,
    },

    /// An algorithm this verifier (and STS) does not accept.
    #[error(
        "token header alg {alg:?} is not supported: use one of RS256, RS384, RS512, PS256, ES256, ES384 (Kubernetes signs service-account tokens with RS256 or ES256)"
    )]
    UnsupportedAlg {
        /// The `alg` header value.
        alg: String,
    },

    /// The header lists critical extensions, which this verifier does not implement.
    #[error(
        "token header has `crit` extensions this verifier does not understand: such a token must be rejected (RFC 7515 section 4.1.11)"
    )]
    CriticalHeader,

    /// The JWKS is not a JSON Web Key Set.
    #[error(
        "JWKS is not a valid JSON Web Key Set ({reason}): fetch it from the `jwks_uri` in <issuer>/.well-known/openid-configuration (for Kubernetes, /openid/v1/jwks)"
    )]
    JwksInvalid {
        /// The parser's explanation.
        reason: String,
    },

    /// The JWKS has no keys.
    #[error(
        "JWKS has no keys: the issuer publishes nothing to verify tokens with; check the issuer's `jwks_uri`"
    )]
    JwksEmpty,

    /// The token's `kid` is not in the JWKS.
    #[error(
        "token kid {kid:?} is not in the JWKS (key ids: {available:?}): the issuer rotated its signing key or the JWKS belongs to another cluster; refetch the JWKS from the token's issuer"
    )]
    KidNotFound {
        /// The token's `kid`.
        kid: String,
        /// The key ids the JWKS has.
        available: Vec<String>,
    },

    /// The token has no `kid` and the JWKS has several keys.
    #[error(
        "token header has no kid and the JWKS has {keys} keys: cannot tell which key signed it; the issuer must set `kid` (Kubernetes does) or publish a single key"
    )]
    KidRequired {
        /// Number of keys in the JWKS.
        keys: usize,
    },

    /// The chosen key cannot verify the token's algorithm.
    #[error("JWKS key {kid:?} cannot verify a {alg} token: {reason}")]
    KeyMismatch {
        /// The key's id (empty when the key has none).
        kid: String,
        /// The token's `alg`.
        alg: String,
        /// What does not fit (key type, key `alg`, curve, `use`).
        reason: String,
    },

    /// The chosen key is malformed.
    #[error(
        "JWKS key {kid:?} is unusable ({reason}): the JWKS is corrupt; refetch it from the issuer"
    )]
    InvalidKey {
        /// The key's id (empty when the key has none).
        kid: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The signature does not verify.
    #[error(
        "token signature does not verify with JWKS key {kid:?} ({alg}): the token was altered, or signed by another key (another cluster, or a key the issuer no longer publishes)"
    )]
    BadSignature {
        /// The key's id (empty when the key has none).
        kid: String,
        /// The token's `alg`.
        alg: String,
    },

    /// `iss` is missing.
    #[error(
        "token has no `iss` claim, expected {expected:?}: STS finds the OIDC provider by `iss`; use a token from the cluster's issuer"
    )]
    IssuerMissing {
        /// The expected issuer.
        expected: String,
    },

    /// `iss` differs from the expected issuer.
    #[error("token `iss` {found:?} does not match the expected issuer {expected:?}: {hint}")]
    IssuerMismatch {
        /// The token's `iss`.
        found: String,
        /// The expected issuer.
        expected: String,
        /// What to do about it.
        hint: String,
    },

    /// `aud` is missing or empty.
    #[error(
        "token has no `aud` claim, expected {}: request the token with that audience (serviceAccountToken.audience or eks.amazonaws.com/audience)",
        one_or_any(expected)
    )]
    AudienceMissing {
        /// The acceptable audiences.
        expected: Vec<String>,
    },

    /// No `aud` value is acceptable.
    #[error(
        "token audience {found:?} does not include {}: request the token with that audience (serviceAccountToken.audience or eks.amazonaws.com/audience)",
        one_or_any(expected)
    )]
    AudienceMismatch {
        /// The token's audiences.
        found: Vec<String>,
        /// The acceptable audiences.
        expected: Vec<String>,
    },

    /// `exp` is missing.
    #[error(
        "token has no `exp` claim: STS rejects web-identity tokens that never expire; use a projected or TokenRequest service-account token (they always carry `exp`)"
    )]
    ExpMissing,

    /// `exp` is past (beyond the leeway).
    #[error(
        "token `exp` {} is {} in the past (leeway {leeway}s): the token expired; read a fresh one (the kubelet rewrites projected token files, so re-read the file instead of caching it)",
        rfc3339(*exp), human_duration(now.saturating_sub(*exp))
    )]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time it was checked at.
        now: i64,
        /// The leeway allowed.
        leeway: i64,
    },

    /// `nbf` is in the future (beyond the leeway).
    #[error(
        "token `nbf` {} is {} in the future (leeway {leeway}s): the token is not valid yet; check the clocks of the issuer and of this machine",
        rfc3339(*nbf), human_duration(nbf.saturating_sub(*now))
    )]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The time it was checked at.
        now: i64,
        /// The leeway allowed.
        leeway: i64,
    },

    /// `iat` is in the future (beyond the leeway).
    #[error(
        "token `iat` {} is {} in the future (leeway {leeway}s): it claims to be issued later than now; check the clocks of the issuer and of this machine",
        rfc3339(*iat), human_duration(iat.saturating_sub(*now))
    )]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
        /// The time it was checked at.
        now: i64,
        /// The leeway allowed.
        leeway: i64,
    },

    /// `sub` is not a service-account subject.
    #[error(
        "token `sub` {sub:?} is not a service-account subject ({reason}): expected \"system:serviceaccount:<namespace>:<name>\"; use a Kubernetes service-account token"
    )]
    Subject {
        /// The subject.
        sub: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `sub` and the `kubernetes.io` claim name different service accounts.
    #[error(
        "token `sub` names {sub} but the `kubernetes.io` claim names {claim}: the claims are inconsistent, so the token was not issued by a Kubernetes API server; do not trust it"
    )]
    SubjectMismatch {
        /// `namespace/name` from `sub`.
        sub: String,
        /// `namespace/name` from `kubernetes.io`.
        claim: String,
    },
}

fn one_or_any(expected: &[String]) -> String {
    match expected {
        [one] => format!("{one:?}"),
        many => format!("any of {many:?}"),
    }
}
