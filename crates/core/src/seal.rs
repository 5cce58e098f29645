//! The seal on a credential irsa writes into a pull secret, and its read-back. Anyone who may
//! edit a pull secret in one target namespace (a normal tenant right) could otherwise plant a
//! credential, with a far expiry, that a restarted controller would adopt and fan out to every
//! namespace.
//!
//! A seal ([`CREDENTIAL_MAC_ANNOTATION`], `v1:` and 64 lowercase hex digits) is an HMAC-SHA256
//! over the credential-store key (identity, audience, registries), the exact
//! `.dockerconfigjson` bytes, and the issue and expiry times, keyed by 32 bytes tenants cannot
//! read. Everything [`read_back`] looks at comes from a tenant-editable Secret: nothing of it
//! is parsed as a credential before its seal verifies (constant time). Pure: the controller
//! keeps the key in a Secret and hands the written values in.

use std::collections::BTreeSet;
use std::fmt;

use aws_lc_rs::hmac;

use crate::docker_config::DockerConfig;
use crate::time::parse_rfc3339;

/// Annotation: the seal of the written credential (`v1:` and 64 hex digits).
pub const CREDENTIAL_MAC_ANNOTATION: &str = "irsa.dev/credential-mac";
pub use crate::names::{EXPIRES_AT_ANNOTATION, ISSUED_AT_ANNOTATION};
/// The length of a seal key in bytes.
pub const KEY_LEN: usize = 32;

const VERSION: &str = "v1:";
/// Separates this MAC's inputs from any other use of the key.
const DOMAIN: &[u8] = b"irsa.dev/credential-mac/v1";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The HMAC key of seals. `Debug` never shows it.
pub struct SealKey(hmac::Key);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
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
    // Every field is length-prefixed, so no two different inputs share a message.
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

impl SealKey {
    /// A key from its bytes (exactly [`KEY_LEN`]); `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == KEY_LEN).then(|| Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
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

    /// Whether `mac` is the seal of `what` (constant time in the tag). Only the exact text
    /// [`SealKey::seal`] produces verifies: no other case, prefix or padding.
    pub fn verify(&self, what: &Sealed<'_>, mac: &str) -> bool {
        let Some(tag) = mac.strip_prefix(VERSION).and_then(decode_hex) else {
            return false;
        };
        hmac::verify(&self.0, &what.message(), &tag).is_ok()
    }
}

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

/// The values of a written secret that a read-back looks at, as found (all tenant-editable).
#[derive(Debug, Clone, Copy, Default)]
pub struct Written<'a> {
    /// `data[.dockerconfigjson]`.
    pub docker_config_json: Option<&'a [u8]>,
    /// The [`ISSUED_AT_ANNOTATION`] value.
    pub issued_at: Option<&'a str>,
    /// The [`EXPIRES_AT_ANNOTATION`] value.
    pub expires_at: Option<&'a str>,
    /// The [`CREDENTIAL_MAC_ANNOTATION`] value.
    pub mac: Option<&'a str>,
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

/// Reads the credential in `written` back if its seal proves that irsa wrote it with `key` for
/// `store_key`, and it holds exactly the registries `hosts`.
pub fn read_back(
    key: &SealKey,
    store_key: &str,
    hosts: &BTreeSet<&str>,
    written: &Written<'_>,
) -> Result<ReadBack, Rejected> {
    let data = written.docker_config_json.ok_or(Rejected::NoData)?;
    let time =
        |v: Option<&str>, k: &'static str| v.and_then(parse_rfc3339).ok_or(Rejected::Annotation(k));
    let issued_at = time(written.issued_at, ISSUED_AT_ANNOTATION)?;
    let expires_at = time(written.expires_at, EXPIRES_AT_ANNOTATION)?;
    let mac = written.mac.ok_or(Rejected::Seal)?;
    let sealed = Sealed {
        store_key,
        docker_config_json: data,
        issued_at,
        expires_at,
    };
    if !key.verify(&sealed, mac) {
        return Err(Rejected::Seal);
    }
    let config = DockerConfig::parse(data).map_err(|_| Rejected::Seal)?;
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
    use crate::secret::SecretString;
    use crate::time::rfc3339;
    use proptest::prelude::*;

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const STORE_KEY: &str = "web|arn:aws:iam::123456789012:role/r|s|tokenrequest irsa/puller\u{1f}123456789012.dkr.ecr.us-east-1.amazonaws.com\u{1f}sts.amazonaws.com";

    fn key() -> SealKey {
        SealKey::from_bytes(&[7; 32]).unwrap()
    }

    fn config(password: &str) -> Vec<u8> {
        let mut c = DockerConfig::new();
        c.insert(HOST, "AWS", SecretString::from(password));
        c.render().expose().as_bytes().to_vec()
    }

    #[test]
    fn keys_are_exactly_32_bytes_and_never_printed() {
        assert!(SealKey::from_bytes(&[1; 31]).is_none());
        assert!(SealKey::from_bytes(&[1; 33]).is_none());
        assert!(SealKey::from_bytes(&[]).is_none());
        assert_eq!(format!("{:?}", key()), "SealKey([redacted])");
    }

    #[test]
    fn a_seal_is_v1_and_64_lowercase_hex_digits_and_verifies() {
        let what = Sealed {
            store_key: STORE_KEY,
            docker_config_json: b"{}",
            issued_at: 1,
            expires_at: 2,
        };
        let mac = key().seal(&what);
        assert_eq!(mac.len(), 3 + 64);
        assert!(mac.starts_with("v1:"));
        assert!(mac[3..].bytes().all(|c| HEX.contains(&c)));
        assert!(key().verify(&what, &mac));
        for bad in [
            mac.to_uppercase(),
            format!("{mac} "),
            format!(" {mac}"),
            mac[..mac.len() - 1].to_owned(),
            mac.replacen("v1:", "v2:", 1),
            mac[3..].to_owned(),
            String::new(),
        ] {
            assert!(!key().verify(&what, &bad), "{bad}");
        }
        // Moving a byte between adjacent fields changes the message.
        let shifted = Sealed {
            store_key: &format!("{STORE_KEY}{{"),
            docker_config_json: b"}",
            ..what
        };
        assert!(!key().verify(&shifted, &mac));
    }

    /// The values as irsa writes them, sealed with `key` for `store_key`.
    fn written_values(key: &SealKey, store_key: &str, data: &[u8]) -> (String, String, String) {
        let (issued_at, expires_at) = (1_000_000, 1_043_200);
        let mac = key.seal(&Sealed {
            store_key,
            docker_config_json: data,
            issued_at,
            expires_at,
        });
        (rfc3339(issued_at), rfc3339(expires_at), mac)
    }

    #[test]
    fn a_sealed_credential_reads_back_and_anything_else_is_rejected() {
        let data = config("pw");
        let (issued, expires, mac) = written_values(&key(), STORE_KEY, &data);
        let good = Written {
            docker_config_json: Some(&data),
            issued_at: Some(&issued),
            expires_at: Some(&expires),
            mac: Some(&mac),
        };
        let hosts = BTreeSet::from([HOST]);
        let got = read_back(&key(), STORE_KEY, &hosts, &good).unwrap();
        assert_eq!((got.issued_at, got.expires_at), (1_000_000, 1_043_200));
        assert_eq!(got.config.get(HOST).unwrap().password.expose(), "pw");

        let forged = config("forged");
        let other = SealKey::from_bytes(&[8; 32]).unwrap();
        for (what, written, store_key, hosts, want) in [
            (
                "tampered data",
                Written {
                    docker_config_json: Some(&forged),
                    ..good
                },
                STORE_KEY,
                hosts.clone(),
                Rejected::Seal,
            ),
            (
                "a later expiry",
                Written {
                    expires_at: Some("2099-01-01T00:00:00Z"),
                    ..good
                },
                STORE_KEY,
                hosts.clone(),
                Rejected::Seal,
            ),
            (
                "no seal",
                Written { mac: None, ..good },
                STORE_KEY,
                hosts.clone(),
                Rejected::Seal,
            ),
            (
                "another identity",
                good,
                "web|arn:aws:iam::123456789012:role/other",
                hosts.clone(),
                Rejected::Seal,
            ),
            (
                "other registries",
                good,
                STORE_KEY,
                BTreeSet::from([HOST, "cgr.dev"]),
                Rejected::Registries,
            ),
            (
                "no data",
                Written {
                    docker_config_json: None,
                    ..good
                },
                STORE_KEY,
                hosts.clone(),
                Rejected::NoData,
            ),
            (
                "an unreadable issue time",
                Written {
                    issued_at: Some("yesterday"),
                    ..good
                },
                STORE_KEY,
                hosts.clone(),
                Rejected::Annotation(ISSUED_AT_ANNOTATION),
            ),
            (
                "no expiry",
                Written {
                    expires_at: None,
                    ..good
                },
                STORE_KEY,
                hosts.clone(),
                Rejected::Annotation(EXPIRES_AT_ANNOTATION),
            ),
        ] {
            let got = read_back(&key(), store_key, &hosts, &written);
            assert_eq!(got.err(), Some(want), "{what}");
        }
        assert_eq!(
            read_back(&other, STORE_KEY, &hosts, &good).err(),
            Some(Rejected::Seal),
            "another key"
        );
    }

    proptest! {
        /// verify(seal(x)) for any x; the seal of x never verifies any other y.
        #[test]
        fn a_seal_verifies_exactly_what_it_sealed(
            key_bytes in proptest::collection::vec(any::<u8>(), KEY_LEN),
            store_key in ".{0,60}",
            data in proptest::collection::vec(any::<u8>(), 0..128),
            issued_at in any::<i64>(),
            expires_at in any::<i64>(),
            other_expiry in any::<i64>(),
        ) {
            let key = SealKey::from_bytes(&key_bytes).unwrap();
            let what = Sealed { store_key: &store_key, docker_config_json: &data, issued_at, expires_at };
            let mac = key.seal(&what);
            prop_assert!(key.verify(&what, &mac));
            if other_expiry != expires_at {
                let other = Sealed { expires_at: other_expiry, ..what };
                prop_assert!(!key.verify(&other, &mac));
            }
        }

        /// Whatever a tenant writes, reading it back never panics and never accepts it.
        #[test]
        fn arbitrary_written_values_are_rejected_without_panicking(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            issued in ".{0,40}",
            expires in ".{0,40}",
            mac in ".{0,80}",
            hex in "v1:[0-9a-f]{64}",
        ) {
            let hosts = BTreeSet::from([HOST]);
            for mac in [mac, hex] {
                let written = Written {
                    docker_config_json: Some(&data),
                    issued_at: Some(&issued),
                    expires_at: Some(&expires),
                    mac: Some(&mac),
                };
                prop_assert!(read_back(&key(), STORE_KEY, &hosts, &written).is_err());
            }
        }
    }
}
