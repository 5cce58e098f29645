//! Proof that a credential read back from the cluster was written by irsa for one identity,
//! audience and set of registries. Anyone who may edit a pull secret in one target namespace
//! (a normal tenant right) could otherwise plant a credential, with a far expiry, that a
//! restarted controller would adopt and fan out to every namespace.
//!
//! Every secret irsa writes carries [`CREDENTIAL_MAC_ANNOTATION`]: an HMAC-SHA256 over the
//! credential-store key (identity, audience, registries), the exact `.dockerconfigjson` bytes,
//! and the issue and expiry times, keyed by 32 random bytes held in a Secret in the
//! controller's own namespace ([`KEY_SECRET_NAME`]), which tenants cannot read. A credential
//! is adopted only when its MAC verifies (constant time); anything else is exchanged afresh.
//! Pure: no I/O (the reconciler loads and creates the key Secret through the Writer).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::hmac;
use irsa_core::docker_config::DockerConfig;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::plan::DOCKER_CONFIG_JSON_KEY;

/// Annotation: the seal of the written credential (`v1:` and 64 hex digits).
pub const CREDENTIAL_MAC_ANNOTATION: &str = "irsa.dev/credential-mac";
/// Annotation: when the written credential was obtained (RFC 3339).
pub const ISSUED_AT_ANNOTATION: &str = "irsa.dev/issued-at";
/// Annotation: when the written credential expires (RFC 3339).
pub const EXPIRES_AT_ANNOTATION: &str = "irsa.dev/expires-at";
/// The Secret, in the controller's namespace, holding the key. Never labelled as irsa's
/// (`app.kubernetes.io/managed-by`), so that nothing irsa does to its pull secrets reaches it.
pub const KEY_SECRET_NAME: &str = "irsa-credential-key";
/// The data key of [`KEY_SECRET_NAME`] holding the 32 key bytes.
pub const KEY_DATA_KEY: &str = "key";

const KEY_LEN: usize = 32;
const VERSION: &str = "v1:";
/// Separates this MAC's inputs from any other use of the key.
const DOMAIN: &[u8] = b"irsa.dev/credential-mac/v1";

/// The MAC key. `Debug` never shows it.
pub struct CredentialKey(hmac::Key);

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialKey([redacted])")
    }
}

/// Why the key could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key Secret holds no 32-byte key.
    #[error(
        "secret {namespace}/{KEY_SECRET_NAME} holds no valid credential key (data.{KEY_DATA_KEY} must be {KEY_LEN} bytes): \
         delete it and irsa creates a new one (every pull secret is then refreshed once)"
    )]
    Invalid {
        /// The controller's namespace.
        namespace: String,
    },
    /// The system's random generator failed.
    #[error("failed to generate a credential key: the system random generator failed")]
    Random,
}

/// What a seal covers.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// The credential-store key: identity, audience and registries.
    pub store_key: &'a str,
    /// The exact `.dockerconfigjson` bytes.
    pub docker_config_json: &'a [u8],
    /// When the credential was obtained, Unix seconds.
    pub issued_at: i64,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
}

impl Sealed<'_> {
    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + self.store_key.len() + self.docker_config_json.len());
        let mut field = |bytes: &[u8]| {
            m.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            m.extend_from_slice(bytes);
        };
        field(DOMAIN);
        field(self.store_key.as_bytes());
        field(self.docker_config_json);
        field(&self.issued_at.to_be_bytes());
        field(&self.expires_at.to_be_bytes());
        m
    }
}

impl CredentialKey {
    /// A key from its bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == KEY_LEN).then(|| Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// A new random key and the Secret holding it in `namespace`.
    pub fn generate(namespace: &str) -> Result<(Self, Secret), KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Random)?;
        let key = Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes));
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(KEY_SECRET_NAME.to_owned()),
                namespace: Some(namespace.to_owned()),
                annotations: Some(BTreeMap::from([(
                    "irsa.dev/purpose".to_owned(),
                    "proves that a credential in a pull secret was written by irsa; deleting it \
                     makes irsa refresh every pull secret once"
                        .to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                KEY_DATA_KEY.to_owned(),
                ByteString(bytes.to_vec()),
            )])),
            ..Secret::default()
        };
        bytes.fill(0);
        Ok((key, secret))
    }

    /// The key held in the key Secret read from `namespace`.
    pub fn from_secret(secret: &Secret, namespace: &str) -> Result<Self, KeyError> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(KEY_DATA_KEY))
            .and_then(|b| Self::from_bytes(&b.0))
            .ok_or_else(|| KeyError::Invalid {
                namespace: namespace.to_owned(),
            })
    }

    /// The seal of `what`, for [`CREDENTIAL_MAC_ANNOTATION`].
    pub fn seal(&self, what: &Sealed<'_>) -> String {
        let tag = hmac::sign(&self.0, &what.message());
        let mut out = String::with_capacity(VERSION.len() + 64);
        out.push_str(VERSION);
        for b in tag.as_ref() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Whether `mac` is the seal of `what` (constant time in the tag).
    pub fn verify(&self, what: &Sealed<'_>, mac: &str) -> bool {
        let Some(tag) = mac.strip_prefix(VERSION).and_then(decode_hex) else {
            return false;
        };
        hmac::verify(&self.0, &what.message(), &tag).is_ok()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 64 lowercase hex digits to 32 bytes; anything else is `None`.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() != 2 * 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Why a written secret's credential is not adopted (for logs: names no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No `.dockerconfigjson`.
    #[error("it holds no .dockerconfigjson")]
    NoData,
    /// An annotation irsa writes is missing or unreadable.
    #[error("its annotation {0} is missing or not a time")]
    Annotation(&'static str),
    /// No seal, or one that does not verify: not written by irsa for this identity,
    /// audience and registries, or changed since.
    #[error(
        "its seal ({CREDENTIAL_MAC_ANNOTATION}) does not prove it was written by irsa for this identity and these registries"
    )]
    Seal,
    /// Sealed, but not the registries wanted (cannot happen unless the key was shared).
    #[error("it does not hold exactly the wanted registries")]
    Registries,
}

/// A credential read back from a written secret: proven, parsed, with its times.
#[derive(Debug)]
pub struct ReadBack {
    /// The registries' credentials.
    pub config: DockerConfig,
    /// When it was obtained, Unix seconds.
    pub issued_at: i64,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
}

/// Reads the credential in `secret` back if its seal proves that irsa wrote it for
/// `store_key`, and it holds exactly the registries `hosts`. Nothing of the secret is parsed
/// as a credential before its seal verifies.
pub fn read_back(
    key: &CredentialKey,
    store_key: &str,
    hosts: &BTreeSet<&str>,
    secret: &Secret,
) -> Result<ReadBack, Rejected> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(DOCKER_CONFIG_JSON_KEY))
        .ok_or(Rejected::NoData)?;
    let annotations = secret.metadata.annotations.as_ref();
    let annotation = |k: &'static str| annotations.and_then(|a| a.get(k));
    let time = |k: &'static str| {
        annotation(k)
            .and_then(|v| Timestamp::from_str(v).ok())
            .map(|t| t.as_second())
            .ok_or(Rejected::Annotation(k))
    };
    let issued_at = time(ISSUED_AT_ANNOTATION)?;
    let expires_at = time(EXPIRES_AT_ANNOTATION)?;
    let mac = annotation(CREDENTIAL_MAC_ANNOTATION).ok_or(Rejected::Seal)?;
    let sealed = Sealed {
        store_key,
        docker_config_json: &data.0,
        issued_at,
        expires_at,
    };
    if !key.verify(&sealed, mac) {
        return Err(Rejected::Seal);
    }
    let config = DockerConfig::parse(&data.0).map_err(|_| Rejected::Seal)?;
    let held: BTreeSet<&str> = hosts
        .iter()
        .copied()
        .filter(|h| config.get(h).is_some())
        .collect();
    if &held != hosts || config.len() != hosts.len() {
        return Err(Rejected::Registries);
    }
    Ok(ReadBack {
        config,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use irsa_core::secret::SecretString;
    use irsa_core::time::rfc3339;

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const STORE_KEY: &str = "web|arn:aws:iam::123456789012:role/r|s|tokenrequest irsa/puller\u{1f}123456789012.dkr.ecr.us-east-1.amazonaws.com\u{1f}sts.amazonaws.com";

    fn key() -> CredentialKey {
        CredentialKey::from_bytes(&[7; 32]).unwrap()
    }

    fn config(password: &str) -> Vec<u8> {
        let mut c = DockerConfig::new();
        c.insert(HOST, "AWS", SecretString::from(password));
        c.render().expose().as_bytes().to_vec()
    }

    /// A secret as irsa writes it, sealed with `key` for `store_key`.
    fn written(key: &CredentialKey, store_key: &str, password: &str) -> Secret {
        let data = config(password);
        let (issued_at, expires_at) = (1_000_000, 1_043_200);
        let mac = key.seal(&Sealed {
            store_key,
            docker_config_json: &data,
            issued_at,
            expires_at,
        });
        Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([
                    (ISSUED_AT_ANNOTATION.to_owned(), rfc3339(issued_at)),
                    (EXPIRES_AT_ANNOTATION.to_owned(), rfc3339(expires_at)),
                    (CREDENTIAL_MAC_ANNOTATION.to_owned(), mac),
                ])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                DOCKER_CONFIG_JSON_KEY.to_owned(),
                ByteString(data),
            )])),
            ..Secret::default()
        }
    }

    fn hosts() -> BTreeSet<&'static str> {
        BTreeSet::from([HOST])
    }

    fn annotate(mut s: Secret, k: &str, v: &str) -> Secret {
        s.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(k.to_owned(), v.to_owned());
        s
    }

    #[test]
    fn a_sealed_secret_reads_back() {
        let got = read_back(
            &key(),
            STORE_KEY,
            &hosts(),
            &written(&key(), STORE_KEY, "pw"),
        )
        .unwrap();
        assert_eq!((got.issued_at, got.expires_at), (1_000_000, 1_043_200));
        assert_eq!(got.config.get(HOST).unwrap().password.expose(), "pw");
    }

    #[test]
    fn anything_changed_or_unsealed_is_rejected() {
        let good = written(&key(), STORE_KEY, "pw");
        let mut tampered = good.clone();
        tampered.data = Some(BTreeMap::from([(
            DOCKER_CONFIG_JSON_KEY.to_owned(),
            ByteString(config("forged")),
        )]));
        let later = annotate(good.clone(), EXPIRES_AT_ANNOTATION, "2099-01-01T00:00:00Z");
        let earlier_issue = annotate(good.clone(), ISSUED_AT_ANNOTATION, "1970-01-12T13:46:39Z");
        let mut unsealed = good.clone();
        unsealed
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(CREDENTIAL_MAC_ANNOTATION);
        let garbage = annotate(good.clone(), CREDENTIAL_MAC_ANNOTATION, "v1:zz");
        let other_key = written(
            &CredentialKey::from_bytes(&[8; 32]).unwrap(),
            STORE_KEY,
            "pw",
        );
        let mac = good.metadata.annotations.as_ref().unwrap()[CREDENTIAL_MAC_ANNOTATION].clone();
        let upper = annotate(good.clone(), CREDENTIAL_MAC_ANNOTATION, &mac.to_uppercase());
        for (what, secret, store_key, hosts, want) in [
            (
                "tampered data",
                &tampered,
                STORE_KEY,
                hosts(),
                Rejected::Seal,
            ),
            ("a later expiry", &later, STORE_KEY, hosts(), Rejected::Seal),
            (
                "another issue time",
                &earlier_issue,
                STORE_KEY,
                hosts(),
                Rejected::Seal,
            ),
            ("no seal", &unsealed, STORE_KEY, hosts(), Rejected::Seal),
            (
                "a malformed seal",
                &garbage,
                STORE_KEY,
                hosts(),
                Rejected::Seal,
            ),
            (
                "a seal in another case",
                &upper,
                STORE_KEY,
                hosts(),
                Rejected::Seal,
            ),
            (
                "another key",
                &other_key,
                STORE_KEY,
                hosts(),
                Rejected::Seal,
            ),
            (
                "another identity",
                &good,
                "web|arn:aws:iam::123456789012:role/other|s|tokenrequest irsa/puller\u{1f}123456789012.dkr.ecr.us-east-1.amazonaws.com\u{1f}sts.amazonaws.com",
                hosts(),
                Rejected::Seal,
            ),
            (
                "another audience",
                &good,
                "web|arn:aws:iam::123456789012:role/r|s|tokenrequest irsa/puller\u{1f}123456789012.dkr.ecr.us-east-1.amazonaws.com\u{1f}other",
                hosts(),
                Rejected::Seal,
            ),
            (
                "other registries",
                &good,
                STORE_KEY,
                BTreeSet::from([HOST, "cgr.dev"]),
                Rejected::Registries,
            ),
        ] {
            let got = read_back(&key(), store_key, &hosts, secret);
            assert_eq!(got.err(), Some(want), "{what}");
        }
        let no_time = annotate(good.clone(), ISSUED_AT_ANNOTATION, "yesterday");
        assert_eq!(
            read_back(&key(), STORE_KEY, &hosts(), &no_time).err(),
            Some(Rejected::Annotation(ISSUED_AT_ANNOTATION))
        );
        let mut no_data = good;
        no_data.data = None;
        assert_eq!(
            read_back(&key(), STORE_KEY, &hosts(), &no_data).err(),
            Some(Rejected::NoData)
        );
    }

    #[test]
    fn keys_are_32_random_bytes_in_an_unlabelled_secret_and_never_printed() {
        let (k1, s1) = CredentialKey::generate("irsa-system").unwrap();
        let (_, s2) = CredentialKey::generate("irsa-system").unwrap();
        let bytes = &s1.data.as_ref().unwrap()[KEY_DATA_KEY].0;
        assert_eq!(bytes.len(), 32);
        assert_ne!(bytes, &s2.data.as_ref().unwrap()[KEY_DATA_KEY].0, "random");
        assert_eq!(s1.metadata.name.as_deref(), Some(KEY_SECRET_NAME));
        assert_eq!(s1.metadata.namespace.as_deref(), Some("irsa-system"));
        assert!(s1.metadata.labels.is_none(), "never labelled as irsa's");
        let loaded = CredentialKey::from_secret(&s1, "irsa-system").unwrap();
        let what = Sealed {
            store_key: STORE_KEY,
            docker_config_json: b"{}",
            issued_at: 1,
            expires_at: 2,
        };
        assert!(loaded.verify(&what, &k1.seal(&what)));
        assert_eq!(format!("{k1:?}"), "CredentialKey([redacted])");
        let mut short = s1.clone();
        short
            .data
            .as_mut()
            .unwrap()
            .insert(KEY_DATA_KEY.into(), ByteString(vec![1; 31]));
        let e = CredentialKey::from_secret(&short, "irsa-system").unwrap_err();
        assert!(
            e.to_string().contains("irsa-system/irsa-credential-key"),
            "{e}"
        );
        assert!(CredentialKey::from_secret(&Secret::default(), "x").is_err());
    }
}
