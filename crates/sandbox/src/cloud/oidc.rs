//! The cluster's OIDC issuer: an RSA-2048 signing key (generated at start or loaded from the
//! state directory), service-account tokens signed RS256, and the discovery and JWKS documents.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use irsa_core::secret::SecretString;
use irsa_core::token::Jwks;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::token_issuer::{IssuedToken, ServiceAccountTokenRequest, TokenIssuer};

/// File name of the issuer's PKCS#8 key inside the state directory.
pub const KEY_FILE: &str = "oidc-signing-key.pk8";

/// Why the issuer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Key generation failed.
    #[error("failed to generate the OIDC issuer's RSA key")]
    Generate,
    /// The key file could not be read or written.
    #[error("failed to {action} the OIDC issuer key {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file is not a PKCS#8 RSA key.
    #[error(
        "the OIDC issuer key {path} is not a PKCS#8 RSA private key ({reason}): delete it to generate a new one"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What aws-lc-rs said.
        reason: String,
    },
}

/// The sandbox's OIDC issuer.
pub struct OidcIssuer {
    issuer_url: String,
    default_audience: String,
    key: KeyPair,
    kid: String,
    jwks: Value,
}

impl std::fmt::Debug for OidcIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcIssuer")
            .field("issuer_url", &self.issuer_url)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl OidcIssuer {
    /// An issuer with a freshly generated key, or the key in `state_dir` (created there when
    /// missing). `default_audience` is used when a TokenRequest names none.
    pub fn new(
        issuer_url: &str,
        default_audience: &str,
        state_dir: Option<&Path>,
    ) -> Result<Self, OidcError> {
        let key = match state_dir {
            Some(dir) => load_or_generate(dir)?,
            None => KeyPair::generate(KeySize::Rsa2048).map_err(|_| OidcError::Generate)?,
        };
        let public = key.public_key();
        let spki = public.as_der().map_err(|_| OidcError::Generate)?;
        // Kubernetes derives kid from the SHA-256 of the public key's DER.
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(spki.as_ref()));
        let jwks = json!({"keys": [{
            "use": "sig",
            "kty": "RSA",
            "kid": kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]});
        Ok(Self {
            issuer_url: issuer_url.trim_end_matches('/').to_owned(),
            default_audience: default_audience.to_owned(),
            key,
            kid,
            jwks,
        })
    }

    /// The key id (`kid`) tokens carry.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The JWKS, parsed for verification.
    pub fn verification_keys(&self) -> Jwks {
        // The document is built above from a valid key: parsing it cannot fail.
        Jwks::parse(self.jwks.to_string().as_bytes()).expect("the issuer's own JWKS is valid")
    }

    /// Signs arbitrary claims with the issuer's key (RS256, with `kid`). Tests use it to make
    /// tokens the TokenRequest API would never issue (other issuers, audiences, times).
    pub fn sign_claims(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        sign_rs256(&self.key, &header, claims)
    }
}

fn load_or_generate(dir: &Path) -> Result<KeyPair, OidcError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(der) => KeyPair::from_pkcs8(&der).map_err(|e| OidcError::BadKey {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| OidcError::Generate)?;
            let der = key.as_der().map_err(|_| OidcError::Generate)?;
            std::fs::create_dir_all(dir).map_err(|source| OidcError::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
            write_private(&path, der.as_ref()).map_err(|source| OidcError::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
            Ok(key)
        }
        Err(source) => Err(OidcError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Compact JWS with RS256.
pub(crate) fn sign_rs256(key: &KeyPair, header: &Value, claims: &Value) -> Result<String, String> {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "failed to sign the token".to_owned())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The claims of a service-account token, as kube-apiserver writes them.
pub fn service_account_claims(
    issuer_url: &str,
    default_audience: &str,
    request: &ServiceAccountTokenRequest,
) -> Value {
    let audiences: Vec<&str> = if request.audiences.is_empty() {
        vec![default_audience]
    } else {
        request.audiences.iter().map(String::as_str).collect()
    };
    let exp = request.now + request.expiration_seconds;
    let mut kubernetes = json!({
        "namespace": request.namespace,
        "serviceaccount": {"name": request.service_account, "uid": request.service_account_uid},
    });
    if let Some(bound) = &request.bound_object {
        let key = match bound.kind.as_str() {
            "Secret" => "secret",
            "Node" => "node",
            _ => "pod",
        };
        kubernetes[key] = json!({"name": bound.name, "uid": bound.uid});
    }
    if let Some(node) = &request.node {
        kubernetes["node"] = json!({"name": node.name, "uid": node.uid});
    }
    if request.bound_object.is_some() {
        // kube-apiserver sets warnafter for bound tokens (the kubelet refreshes at 80%).
        kubernetes["warnafter"] = json!(request.now + request.expiration_seconds * 8 / 10);
    }
    json!({
        "aud": audiences,
        "exp": exp,
        "iat": request.now,
        "nbf": request.now,
        "iss": issuer_url,
        "jti": random_jti(),
        "kubernetes.io": kubernetes,
        "sub": format!("system:serviceaccount:{}:{}", request.namespace, request.service_account),
    })
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl TokenIssuer for OidcIssuer {
    fn issue(&self, request: &ServiceAccountTokenRequest) -> Result<IssuedToken, String> {
        if request.expiration_seconds < 600 {
            return Err(format!(
                "spec.expirationSeconds: Invalid value: {}: may not specify a duration less than 10 minutes",
                request.expiration_seconds
            ));
        }
        let claims = service_account_claims(&self.issuer_url, &self.default_audience, request);
        let token = self.sign_claims(&claims)?;
        Ok(IssuedToken {
            token: SecretString::new(token),
            expires_at: request.now + request.expiration_seconds,
        })
    }

    fn issuer_url(&self) -> String {
        self.issuer_url.clone()
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer_url,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer_url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    fn jwks(&self) -> Value {
        self.jwks.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_issuer::BoundObject;
    use irsa_core::token::{Expectations, verify};

    fn request(now: i64) -> ServiceAccountTokenRequest {
        ServiceAccountTokenRequest {
            namespace: "team-a".into(),
            service_account: "puller".into(),
            service_account_uid: "sa-uid".into(),
            audiences: vec!["sts.amazonaws.com".into()],
            expiration_seconds: 3600,
            bound_object: Some(BoundObject {
                kind: "Pod".into(),
                name: "p".into(),
                uid: "pod-uid".into(),
            }),
            node: Some(BoundObject {
                kind: "Node".into(),
                name: "n".into(),
                uid: "node-uid".into(),
            }),
            now,
        }
    }

    #[test]
    fn issued_tokens_verify_against_the_jwks() {
        let issuer = OidcIssuer::new(
            "https://oidc.example.test/",
            "https://kubernetes.default.svc",
            None,
        )
        .unwrap();
        let now = 1_800_000_000;
        let issued = issuer.issue(&request(now)).unwrap();
        assert_eq!(issued.expires_at, now + 3600);
        let verified = verify(
            issued.token.expose(),
            &issuer.verification_keys(),
            &Expectations::new(now)
                .with_issuer("https://oidc.example.test")
                .with_audience("sts.amazonaws.com"),
        )
        .unwrap();
        assert_eq!(
            verified.claims.sub.as_deref(),
            Some("system:serviceaccount:team-a:puller")
        );
        let k8s = verified.claims.kubernetes.unwrap();
        assert_eq!(k8s.pod.unwrap().name, "p");
        assert_eq!(k8s.node.unwrap().uid.as_deref(), Some("node-uid"));
        assert_eq!(
            issuer.discovery()["jwks_uri"],
            "https://oidc.example.test/openid/v1/jwks"
        );
    }

    #[test]
    fn short_lifetimes_are_refused() {
        let issuer = OidcIssuer::new("https://oidc.example.test", "aud", None).unwrap();
        let mut r = request(0);
        r.expiration_seconds = 60;
        assert!(issuer.issue(&r).unwrap_err().contains("10 minutes"));
    }

    #[test]
    fn key_persists_in_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("irsa-oidc-{}", random_jti()));
        let a = OidcIssuer::new("https://i.test", "aud", Some(&dir)).unwrap();
        let b = OidcIssuer::new("https://i.test", "aud", Some(&dir)).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(a.jwks(), b.jwks());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
