//! Chainguard's AWS token exchange: `POST /sts/exchange?aud=cgr.dev&identity=<id>` with
//! `Authorization: Bearer <proof>`, where the proof is either
//! - base64url of a serialized, SigV4-signed STS GetCallerIdentity request whose
//!   `Chainguard-Audience` names this exchange's URL (as Chainguard's clients send
//!   `https://issuer.enforce.dev`), or
//! - a JWT from the sandbox STS's `GetWebIdentityToken` (IAM outbound identity federation),
//!   verified against the outbound issuer's key: signature, `iss`, `aud` (this exchange's URL),
//!   `exp`, and `sub` (the role ARN).
//!
//! The sandbox checks what Chainguard's verifier checks, then that the caller's role may act
//! as the identity. "This exchange's URL" is `url` of the config, else `http://<Host>`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clock::wall_now;
use super::http_util::authenticate;
use super::iam::wildcard_match;
use super::sigv4::{Authorization, RequestParts, parse_amz_date};
use super::{CloudService, CredentialKind, RegistryCredential, State, random_string};

/// How old a signed proof may be.
pub const MAX_PROOF_AGE_SECONDS: i64 = 15 * 60;
/// How far ahead of now a proof may be dated.
pub const MAX_PROOF_SKEW_AHEAD_SECONDS: i64 = 5 * 60;
/// The only request a proof may be.
pub const PROOF_PATH: &str = "/?Action=GetCallerIdentity&Version=2011-06-15";
/// The host a proof must be addressed to.
pub const PROOF_HOST: &str = irsa_core::names::STS_HOST;
/// Headers that bind the proof and must be signed.
pub const SIGNED_BINDING_HEADERS: [&str; 4] = [
    "chainguard-audience",
    "chainguard-identity",
    "host",
    "x-amz-date",
];

/// The Chainguard exchange's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ChainguardConfig {
    /// The `aud` query parameter the exchange requires, and the `aud` of the tokens it issues.
    pub audience: String,
    /// This exchange's URL, which proofs (`Chainguard-Audience`) and web-identity JWTs (`aud`)
    /// must name; `None`: `http://<Host of the request>`.
    pub url: Option<String>,
    /// `iss` of the tokens the exchange issues.
    pub issuer: String,
    /// Token lifetime, seconds.
    pub token_lifetime_seconds: i64,
    /// Identities and the roles allowed to assume them.
    pub identities: Vec<ChainguardIdentity>,
}

impl Default for ChainguardConfig {
    fn default() -> Self {
        Self {
            audience: "cgr.dev".to_owned(),
            url: None,
            issuer: "https://issuer.enforce.dev".to_owned(),
            token_lifetime_seconds: 3600,
            identities: Vec::new(),
        }
    }
}

/// A Chainguard assumable identity with AWS claim matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainguardIdentity {
    /// The identity id (`<group>/<id>`).
    pub id: String,
    /// Role ARNs (with `*`/`?` wildcards) whose sessions may assume it.
    pub allowed_roles: Vec<String>,
}

/// Why a proof was refused: 401 for a bad proof, 403 for a good proof of the wrong caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not base64url.
    #[error("the bearer token is not base64url")]
    Encoding,
    /// Not an HTTP/1.1 request.
    #[error("the bearer token is not a serialized HTTP request: {0}")]
    Malformed(&'static str),
    /// Not POST.
    #[error("the proof must be a POST request")]
    Method,
    /// Not to sts.amazonaws.com.
    #[error("the proof must be addressed to {PROOF_HOST}")]
    Host,
    /// Not GetCallerIdentity.
    #[error("the proof must be {PROOF_PATH}")]
    Path,
    /// A binding header is missing or repeated.
    #[error("header {0} must appear exactly once")]
    HeaderCount(&'static str),
    /// A binding header is not signed.
    #[error("header {0} must be signed")]
    Unsigned(&'static str),
    /// Wrong audience.
    #[error("audience does not match")]
    Audience,
    /// Wrong identity.
    #[error("identity does not match the requested identity")]
    Identity,
    /// Too old or too new.
    #[error("the proof is not fresh: it must be signed within the last 15 minutes")]
    Stale,
    /// The signature is not valid for a live sandbox session.
    #[error("the proof's signature is not valid")]
    Signature,
    /// The identity does not exist or the caller's role may not assume it.
    #[error("the caller may not assume this identity")]
    Forbidden,
    /// A web-identity JWT that does not decode.
    #[error("the web-identity token is not a well-formed JWT")]
    MalformedJwt,
    /// A web-identity JWT not signed by the outbound issuer's key.
    #[error("the web-identity token's signature is not the sandbox outbound issuer's")]
    JwtSignature,
    /// A web-identity JWT from another issuer.
    #[error("the web-identity token's iss is not the sandbox outbound issuer")]
    JwtIssuer,
    /// A web-identity JWT for another audience.
    #[error("the web-identity token's aud does not name this exchange")]
    JwtAudience,
    /// An expired web-identity JWT.
    #[error("the web-identity token has expired")]
    JwtExpired,
    /// A web-identity JWT whose `sub` is not an IAM role ARN.
    #[error("the web-identity token's sub is not an IAM role ARN")]
    JwtSubject,
}

impl ProofError {
    fn status(&self) -> StatusCode {
        match self {
            ProofError::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            ProofError::Encoding | ProofError::Malformed(_) => "MalformedProof",
            ProofError::Method | ProofError::Host | ProofError::Path => "WrongRequest",
            ProofError::HeaderCount(_) | ProofError::Unsigned(_) => "UnboundProof",
            ProofError::Audience => "WrongAudience",
            ProofError::Identity => "WrongIdentity",
            ProofError::Stale => "StaleProof",
            ProofError::Signature => "InvalidSignature",
            ProofError::Forbidden => "Forbidden",
            ProofError::MalformedJwt => "MalformedJwt",
            ProofError::JwtSignature => "InvalidJwtSignature",
            ProofError::JwtIssuer => "WrongJwtIssuer",
            ProofError::JwtAudience => "WrongJwtAudience",
            ProofError::JwtExpired => "ExpiredJwt",
            ProofError::JwtSubject => "WrongJwtSubject",
        }
    }
}

/// A decoded proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Method.
    pub method: String,
    /// Request target.
    pub path_and_query: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Decodes base64url (padded or not) and parses an HTTP/1.1 request.
pub fn decode_proof(bearer: &str) -> Result<Proof, ProofError> {
    let raw = URL_SAFE_NO_PAD
        .decode(bearer.trim())
        .or_else(|_| URL_SAFE.decode(bearer.trim()))
        .or_else(|_| STANDARD.decode(bearer.trim()))
        .map_err(|_| ProofError::Encoding)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ProofError::Malformed("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split])
        .map_err(|_| ProofError::Malformed("headers are not UTF-8"))?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let request_line = lines
        .next()
        .ok_or(ProofError::Malformed("no request line"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("bad request line"));
    };
    if version != "HTTP/1.1" {
        return Err(ProofError::Malformed("not HTTP/1.1"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or(ProofError::Malformed("bad header line"))?;
        if k.is_empty() || k.contains(' ') {
            return Err(ProofError::Malformed("bad header name"));
        }
        headers.push((k.to_owned(), v.trim().to_owned()));
    }
    let lengths: Vec<&String> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v)
        .collect();
    match lengths.as_slice() {
        [] => {}
        [n] => {
            let n: usize = n
                .parse()
                .map_err(|_| ProofError::Malformed("bad Content-Length"))?;
            if n > body.len() {
                return Err(ProofError::Malformed("body shorter than Content-Length"));
            }
            body.truncate(n);
        }
        _ => return Err(ProofError::Malformed("repeated Content-Length")),
    }
    Ok(Proof {
        method: method.to_owned(),
        path_and_query: target.to_owned(),
        headers,
        body,
    })
}

/// The checks on a decoded proof that need no credentials (pure; `now` in Unix seconds).
pub fn check_proof(
    proof: &Proof,
    audience: &str,
    identity: &str,
    now: i64,
) -> Result<(), ProofError> {
    if proof.method != "POST" {
        return Err(ProofError::Method);
    }
    let values = |name: &str| -> Vec<&str> {
        proof
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |name: &'static str| -> Result<&str, ProofError> {
        match values(name).as_slice() {
            [v] => Ok(*v),
            _ => Err(ProofError::HeaderCount(name)),
        }
    };
    if one("host")? != PROOF_HOST {
        return Err(ProofError::Host);
    }
    if proof.path_and_query != PROOF_PATH {
        return Err(ProofError::Path);
    }
    let authorization = one("authorization")?;
    let amz_date = one("x-amz-date")?;
    let proof_audience = one("chainguard-audience")?;
    let proof_identity = one("chainguard-identity")?;
    let auth = Authorization::parse(authorization).map_err(|_| ProofError::Signature)?;
    for name in SIGNED_BINDING_HEADERS {
        if !auth.signed_headers.iter().any(|h| h == name) {
            return Err(ProofError::Unsigned(name));
        }
    }
    if proof_audience != audience {
        return Err(ProofError::Audience);
    }
    if proof_identity != identity {
        return Err(ProofError::Identity);
    }
    let signed_at = parse_amz_date(amz_date).ok_or(ProofError::Stale)?;
    if signed_at < now - MAX_PROOF_AGE_SECONDS || signed_at > now + MAX_PROOF_SKEW_AHEAD_SECONDS {
        return Err(ProofError::Stale);
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExchangeQuery {
    aud: Option<String>,
    identity: Option<String>,
}

/// `POST /sts/exchange`.
pub(crate) async fn exchange(
    AxState(state): AxState<Arc<State>>,
    Query(query): Query<ExchangeQuery>,
    headers: HeaderMap,
) -> Response {
    if state.faults.is_out(CloudService::Chainguard) {
        state.counters.inc("chainguard", "Exchange", "Unavailable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"code": "Unavailable", "message": "the service is currently unavailable (sandbox outage)"})),
        )
            .into_response();
    }
    match exchange_inner(&state, &query, &headers) {
        Ok((token, expiry)) => {
            state.counters.inc("chainguard", "Exchange", "ok");
            Json(json!({"token": token, "expiry": irsa_core::time::rfc3339(expiry)}))
                .into_response()
        }
        Err(e) => {
            state.counters.inc("chainguard", "Exchange", e.label());
            tracing::info!(code = e.label(), "chainguard exchange refused");
            (
                e.status(),
                Json(json!({"code": e.label(), "message": e.to_string()})),
            )
                .into_response()
        }
    }
}

/// Whether a bearer is a JWT rather than a base64url proof: three dot-separated parts, the
/// first a JSON object (`{"` encodes as `eyJ`). A proof has no dot.
pub fn is_jwt(bearer: &str) -> bool {
    bearer.starts_with("eyJ") && bearer.split('.').count() == 3
}

/// The checks on a web-identity JWT (pure): signed by `keys`, `iss` == `issuer`, `aud` names
/// `audience`, not expired at `now`; returns `sub`, which must be an IAM role ARN.
pub fn check_web_identity_token(
    bearer: &str,
    keys: &irsa_core::token::Jwks,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<String, ProofError> {
    use irsa_core::token::TokenError as E;
    let expect = irsa_core::token::Expectations::new(now)
        .with_issuer(issuer)
        .with_audience(audience);
    let verified = irsa_core::token::verify(bearer, keys, &expect).map_err(|e| match e {
        E::KidNotFound { .. }
        | E::KidRequired { .. }
        | E::KeyMismatch { .. }
        | E::InvalidKey { .. }
        | E::BadSignature { .. } => ProofError::JwtSignature,
        E::IssuerMissing { .. } | E::IssuerMismatch { .. } => ProofError::JwtIssuer,
        E::AudienceMissing { .. } | E::AudienceMismatch { .. } => ProofError::JwtAudience,
        E::Expired { .. } | E::ExpMissing => ProofError::JwtExpired,
        _ => ProofError::MalformedJwt,
    })?;
    let sub = verified.claims.sub.unwrap_or_default();
    sub.parse::<irsa_core::arn::RoleArn>()
        .map_err(|_| ProofError::JwtSubject)?;
    Ok(sub)
}

fn exchange_inner(
    state: &State,
    query: &ExchangeQuery,
    headers: &HeaderMap,
) -> Result<(String, i64), ProofError> {
    let config = &state.config.chainguard;
    let audience = query.aud.as_deref().unwrap_or_default();
    if audience != config.audience {
        return Err(ProofError::Audience);
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    // The URL the client called: what its proof or JWT must be bound to.
    let served = match &config.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => super::served_url(pairs.iter().copied()),
    };
    let identity = query.identity.as_deref().unwrap_or_default();
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ProofError::Encoding)?;
    let now = state.clock.now();
    // The caller's role ARN, and its session ARN when there is one.
    let (role_arn, session_arn) = if is_jwt(bearer) {
        let sub = check_web_identity_token(
            bearer,
            &state.outbound.verification_keys(),
            &super::outbound_issuer_url(state, pairs.iter().copied()),
            &served,
            now,
        )?;
        (sub, None)
    } else {
        let proof = decode_proof(bearer)?;
        // Proofs are signed with the wall clock; the sandbox clock ages sessions and tokens.
        check_proof(&proof, &served, identity, wall_now())?;
        let parts = RequestParts {
            method: &proof.method,
            path_and_query: &proof.path_and_query,
            headers: &proof.headers,
            body: &proof.body,
        };
        let session = authenticate(state, &parts, &["sts"]).map_err(|_| ProofError::Signature)?;
        // Compare with the role's real ARN (session ARNs drop the path).
        let role_arn = state
            .iam()
            .role_by_name(&session.role_name)
            .map(|r| r.arn.to_string())
            .unwrap_or_default();
        (role_arn, Some(session.assumed_role_arn))
    };
    let allowed = config
        .identities
        .iter()
        .find(|i| i.id == identity)
        .is_some_and(|i| {
            i.allowed_roles.iter().any(|p| {
                wildcard_match(p, &role_arn)
                    || session_arn.as_deref().is_some_and(|s| wildcard_match(p, s))
            })
        });
    if !allowed {
        return Err(ProofError::Forbidden);
    }
    let expiry = now + config.token_lifetime_seconds;
    let claims = json!({
        "iss": config.issuer,
        "sub": identity,
        "aud": config.audience,
        "iat": now,
        "exp": expiry,
        "act": {"sub": session_arn.as_deref().unwrap_or(&role_arn)},
        "jti": random_string(16, b"0123456789abcdef"),
    });
    let token = state
        .issuer
        .sign_claims(&claims)
        .map_err(|_| ProofError::Signature)?;
    state.store_registry_credential(
        &token,
        RegistryCredential {
            kind: CredentialKind::Chainguard,
            principal: identity.to_owned(),
            role_name: None,
            expires_at: expiry,
        },
    );
    Ok((token, expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000; // 20270115T080000Z
    const SERVED: &str = "http://127.0.0.1:8080";

    fn raw(lines: &[&str], body: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\r\n\r\n{body}", lines.join("\r\n")))
    }

    fn good_lines(date: &'static str) -> Vec<String> {
        vec![
            format!("POST {PROOF_PATH} HTTP/1.1"),
            "Host: sts.amazonaws.com".into(),
            "Authorization: AWS4-HMAC-SHA256 Credential=ASIAX/20270115/us-east-1/sts/aws4_request, SignedHeaders=chainguard-audience;chainguard-identity;host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            format!("X-Amz-Date: {date}"),
            format!("Chainguard-Audience: {SERVED}"),
            "Chainguard-Identity: group/id".into(),
        ]
    }

    fn check(lines: Vec<String>) -> Result<(), ProofError> {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let proof = decode_proof(&raw(&refs, ""))?;
        check_proof(&proof, SERVED, "group/id", NOW)
    }

    fn edit(f: impl Fn(&mut Vec<String>)) -> Vec<String> {
        let mut l = good_lines("20270115T080000Z");
        f(&mut l);
        l
    }

    #[test]
    fn proof_rules_table() {
        assert_eq!(
            crate::cloud::sigv4::parse_amz_date("20270115T080000Z"),
            Some(NOW)
        );
        let cases: Vec<(&str, Vec<String>, Result<(), ProofError>)> = vec![
            ("good", edit(|_| {}), Ok(())),
            (
                "get",
                edit(|l| l[0] = format!("GET {PROOF_PATH} HTTP/1.1")),
                Err(ProofError::Method),
            ),
            (
                "host",
                edit(|l| l[1] = "Host: sts.us-east-1.amazonaws.com".into()),
                Err(ProofError::Host),
            ),
            (
                "path",
                edit(|l| l[0] = "POST /?Action=AssumeRole&Version=2011-06-15 HTTP/1.1".into()),
                Err(ProofError::Path),
            ),
            (
                "two audiences",
                edit(|l| l.push(format!("Chainguard-Audience: {SERVED}"))),
                Err(ProofError::HeaderCount("chainguard-audience")),
            ),
            (
                "no identity",
                edit(|l| {
                    l.remove(5);
                }),
                Err(ProofError::HeaderCount("chainguard-identity")),
            ),
            (
                "no date",
                edit(|l| {
                    l.remove(3);
                }),
                Err(ProofError::HeaderCount("x-amz-date")),
            ),
            (
                "no authorization",
                edit(|l| {
                    l.remove(2);
                }),
                Err(ProofError::HeaderCount("authorization")),
            ),
            (
                "unsigned identity",
                edit(|l| l[2] = l[2].replace("chainguard-identity;", "")),
                Err(ProofError::Unsigned("chainguard-identity")),
            ),
            (
                "audience",
                edit(|l| l[4] = "Chainguard-Audience: https://issuer.enforce.dev".into()),
                Err(ProofError::Audience),
            ),
            (
                "the registry audience is not the exchange's",
                edit(|l| l[4] = "Chainguard-Audience: cgr.dev".into()),
                Err(ProofError::Audience),
            ),
            (
                "identity",
                edit(|l| l[5] = "Chainguard-Identity: group/other".into()),
                Err(ProofError::Identity),
            ),
            (
                "old",
                edit(|l| l[3] = "X-Amz-Date: 20270115T074459Z".into()),
                Err(ProofError::Stale),
            ),
            (
                "15 min old",
                edit(|l| l[3] = "X-Amz-Date: 20270115T074500Z".into()),
                Ok(()),
            ),
            (
                "ahead",
                edit(|l| l[3] = "X-Amz-Date: 20270115T080501Z".into()),
                Err(ProofError::Stale),
            ),
            (
                "5 min ahead",
                edit(|l| l[3] = "X-Amz-Date: 20270115T080500Z".into()),
                Ok(()),
            ),
            (
                "http/1.0",
                edit(|l| l[0] = format!("POST {PROOF_PATH} HTTP/1.0")),
                Err(ProofError::Malformed("not HTTP/1.1")),
            ),
        ];
        for (name, lines, want) in cases {
            assert_eq!(check(lines), want, "{name}");
        }
        assert_eq!(decode_proof("!!!"), Err(ProofError::Encoding));
        assert_eq!(
            decode_proof(&URL_SAFE_NO_PAD.encode("POST / HTTP/1.1\r\n")),
            Err(ProofError::Malformed("no end of headers"))
        );
    }

    #[test]
    fn web_identity_token_rules_table() {
        let outbound = crate::cloud::OidcIssuer::new("http://x/outbound", "", None).unwrap();
        let stranger = crate::cloud::OidcIssuer::new("http://x/outbound", "", None).unwrap();
        let iss = "http://127.0.0.1:8080/outbound";
        let role = "arn:aws:iam::111122223333:role/puller";
        let claims = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c =
                json!({"iss": iss, "sub": role, "aud": SERVED, "iat": NOW, "exp": NOW + 300});
            f(&mut c);
            c
        };
        let keys = outbound.verification_keys();
        let check = |token: &str| check_web_identity_token(token, &keys, iss, SERVED, NOW);
        let signed = |c: serde_json::Value| outbound.sign_claims(&c).unwrap();
        assert_eq!(check(&signed(claims(&|_| {}))), Ok(role.to_owned()));
        let cases: Vec<(&str, String, ProofError)> = vec![
            (
                "another key",
                stranger.sign_claims(&claims(&|_| {})).unwrap(),
                ProofError::JwtSignature,
            ),
            (
                "another issuer",
                signed(claims(&|c| {
                    c["iss"] = json!("https://abc.tokens.sts.global.api.aws")
                })),
                ProofError::JwtIssuer,
            ),
            (
                "the fixed Chainguard audience, sent here",
                signed(claims(&|c| c["aud"] = json!("https://issuer.enforce.dev"))),
                ProofError::JwtAudience,
            ),
            (
                "no audience",
                signed(claims(&|c| {
                    c.as_object_mut().unwrap().remove("aud");
                })),
                ProofError::JwtAudience,
            ),
            (
                "expired",
                signed(claims(&|c| c["exp"] = json!(NOW - 3600))),
                ProofError::JwtExpired,
            ),
            (
                "a session ARN",
                signed(claims(&|c| {
                    c["sub"] = json!("arn:aws:sts::111122223333:assumed-role/puller/s")
                })),
                ProofError::JwtSubject,
            ),
            ("garbage", "eyJ.x.y".to_owned(), ProofError::MalformedJwt),
        ];
        for (name, token, want) in cases {
            assert_eq!(check(&token), Err(want), "{name}");
        }
        assert!(is_jwt(&signed(claims(&|_| {}))));
        assert!(!is_jwt(&URL_SAFE.encode("POST / HTTP/1.1\r\n\r\n")));
    }
}
