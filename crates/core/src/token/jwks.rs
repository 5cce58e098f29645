//! The issuer's JSON Web Key Set and signature verification against it.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::{Claims, Expectations, Header, TokenError, check_claims, decode_parts};

/// Signature algorithms [`verify`] accepts. HMAC (`HS*`) and `none` are never accepted.
pub const SUPPORTED_ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"];

/// An issuer's public keys (the document at its `jwks_uri`).
#[derive(Clone, PartialEq, Eq)]
pub struct Jwks {
    set: JwkSet,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`). Keys of unknown types are kept (and can never
    /// verify anything); a set without keys is an error.
    pub fn parse(json: &[u8]) -> Result<Jwks, TokenError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| TokenError::JwksInvalid {
            reason: e.to_string(),
        })?;
        Self::from_jwk_set(set)
    }

    /// Wraps an already-built key set (the sandbox builds its own); fails when it is empty.
    pub fn from_jwk_set(set: JwkSet) -> Result<Jwks, TokenError> {
        if set.keys.is_empty() {
            return Err(TokenError::JwksEmpty);
        }
        Ok(Self { set })
    }

    /// The key set, e.g. to serve it.
    pub fn jwk_set(&self) -> &JwkSet {
        &self.set
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.set.keys.len()
    }

    /// Whether there are no keys (never true for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.set.keys.is_empty()
    }

    /// The key ids, in document order (keys without `kid` are skipped).
    pub fn key_ids(&self) -> Vec<String> {
        self.set
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    }

    /// The key for a token header: by `kid`, or the only key when the header has none.
    fn select(&self, header: &Header) -> Result<&Jwk, TokenError> {
        match &header.kid {
            Some(kid) => self.set.find(kid).ok_or_else(|| TokenError::KidNotFound {
                kid: kid.clone(),
                available: self.key_ids(),
            }),
            None => match self.set.keys.as_slice() {
                [only] => Ok(only),
                keys => Err(TokenError::KidRequired { keys: keys.len() }),
            },
        }
    }
}

/// A token whose signature verified against a JWKS and whose claims met the [`Expectations`].
///
/// Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// `kid` of the JWKS key that verified the signature (empty if that key has none).
    pub key_id: String,
}

/// Signature against the JWKS (RS256, RS384, RS512, PS256, ES256, ES384; key chosen by kid, or
/// the only key when the token has no kid; the key's `alg`/`kty` must fit the token's alg), then
/// [`check_claims`]; Ok only when everything passes, else Err with the first failure (decoding
/// and signature failures first, then claims in the order `check_claims` reports them).
pub fn verify(raw: &str, jwks: &Jwks, expect: &Expectations) -> Result<VerifiedToken, TokenError> {
    let parts = decode_parts(raw)?;
    let header = &parts.token.header;
    let alg = accepted_algorithm(&header.alg)?;
    if parts.has_crit {
        return Err(TokenError::CriticalHeader);
    }
    let jwk = jwks.select(header)?;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    check_key_fits(jwk, &kid, &header.alg, alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::InvalidKey {
        kid: kid.clone(),
        reason: e.to_string(),
    })?;
    match jsonwebtoken::crypto::verify(parts.signature, parts.signing_input.as_bytes(), &key, alg) {
        Ok(true) => {}
        Ok(false) => {
            return Err(TokenError::BadSignature {
                kid,
                alg: header.alg.clone(),
            });
        }
        // The signature's base64 was checked while decoding, so this is about the key.
        Err(e) => {
            return Err(TokenError::InvalidKey {
                kid,
                reason: e.to_string(),
            });
        }
    }
    if let Some(first) = check_claims(&parts.token.claims, expect).into_iter().next() {
        return Err(first);
    }
    Ok(VerifiedToken {
        header: parts.token.header,
        claims: parts.token.claims,
        key_id: kid,
    })
}

fn accepted_algorithm(alg: &str) -> Result<Algorithm, TokenError> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg.to_ascii_uppercase().starts_with("HS") {
        return Err(TokenError::HmacAlg {
            alg: alg.to_owned(),
        });
    }
    if !SUPPORTED_ALGORITHMS.contains(&alg) {
        return Err(TokenError::UnsupportedAlg {
            alg: alg.to_owned(),
        });
    }
    Algorithm::from_str(alg).map_err(|_| TokenError::UnsupportedAlg {
        alg: alg.to_owned(),
    })
}

fn check_key_fits(jwk: &Jwk, kid: &str, alg_name: &str, alg: Algorithm) -> Result<(), TokenError> {
    let mismatch = |reason: String| TokenError::KeyMismatch {
        kid: kid.to_owned(),
        alg: alg_name.to_owned(),
        reason,
    };
    let family = alg.family();
    match (&jwk.algorithm, family) {
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa) => {}
        (AlgorithmParameters::EllipticCurve(ec), AlgorithmFamily::Ec) => {
            let wanted = match alg {
                Algorithm::ES384 => EllipticCurve::P384,
                _ => EllipticCurve::P256,
            };
            if ec.curve != wanted {
                return Err(mismatch(format!(
                    "the key is on curve {:?}, {alg_name} needs {wanted:?}",
                    ec.curve
                )));
            }
        }
        (params, _) => {
            return Err(mismatch(format!(
                "it is {} key, {alg_name} needs {}: the token header's alg does not fit the key (algorithm confusion); the token was not signed by this issuer",
                key_type(params),
                match family {
                    AlgorithmFamily::Ec => "an EC key",
                    _ => "an RSA key",
                }
            )));
        }
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg.to_string() != alg_name
    {
        return Err(mismatch(format!(
            "the key is for {key_alg} only (its `alg`)"
        )));
    }
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err(mismatch(
            "the key's `use` is not \"sig\" (it is not a signing key)".to_owned(),
        ));
    }
    Ok(())
}

fn key_type(params: &AlgorithmParameters) -> &'static str {
    match params {
        AlgorithmParameters::RSA(_) => "an RSA",
        AlgorithmParameters::EllipticCurve(_) => "an EC",
        AlgorithmParameters::OctetKey(_) => "a symmetric (oct)",
        AlgorithmParameters::OctetKeyPair(_) => "an OKP (Ed25519)",
        _ => "an unknown-type",
    }
}
