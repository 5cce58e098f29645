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
//! Pure: no I/O (the reconciler loads and creates the key Secret through the Writer); the seal
//! itself and the read-back of the tenant-editable values live in [`irsa_core::seal`], which
//! has a fuzz target.

use std::collections::{BTreeMap, BTreeSet};

use irsa_core::seal::{self, KEY_LEN, SealKey, Written};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use irsa_core::seal::{
    CREDENTIAL_MAC_ANNOTATION, EXPIRES_AT_ANNOTATION, ISSUED_AT_ANNOTATION, ReadBack, Rejected,
    Sealed,
};

use crate::plan::DOCKER_CONFIG_JSON_KEY;

/// The Secret, in the controller's namespace, holding the key. Never labelled as irsa's
/// (`app.kubernetes.io/managed-by`), so that nothing irsa does to its pull secrets reaches it.
pub const KEY_SECRET_NAME: &str = "irsa-credential-key";
/// The data key of [`KEY_SECRET_NAME`] holding the 32 key bytes.
pub const KEY_DATA_KEY: &str = "key";

/// The MAC key, kept in [`KEY_SECRET_NAME`]. `Debug` never shows it.
pub struct CredentialKey(SealKey);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

impl CredentialKey {
    /// A key from its bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        SealKey::from_bytes(bytes).map(Self)
    }

    /// A new random key and the Secret holding it in `namespace`.
    pub fn generate(namespace: &str) -> Result<(Self, Secret), KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Random)?;
        let key = Self::from_bytes(&bytes).ok_or(KeyError::Random)?;
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
        self.0.seal(what)
    }

    /// Whether `mac` is the seal of `what` (constant time in the tag).
    pub fn verify(&self, what: &Sealed<'_>, mac: &str) -> bool {
        self.0.verify(what, mac)
    }
}

/// Reads the credential in `secret` back if its seal proves that irsa wrote it for
/// `store_key`, and it holds exactly the registries `hosts`. Nothing of the secret is parsed
/// as a credential before its seal verifies ([`irsa_core::seal::read_back`]).
pub fn read_back(
    key: &CredentialKey,
    store_key: &str,
    hosts: &BTreeSet<&str>,
    secret: &Secret,
) -> Result<ReadBack, Rejected> {
    let annotations = secret.metadata.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let written = Written {
        docker_config_json: secret
            .data
            .as_ref()
            .and_then(|d| d.get(DOCKER_CONFIG_JSON_KEY))
            .map(|b| b.0.as_slice()),
        issued_at: annotation(ISSUED_AT_ANNOTATION),
        expires_at: annotation(EXPIRES_AT_ANNOTATION),
        mac: annotation(CREDENTIAL_MAC_ANNOTATION),
    };
    seal::read_back(&key.0, store_key, hosts, &written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use irsa_core::docker_config::DockerConfig;
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

    proptest::proptest! {
        /// Whatever a tenant puts into the secret, reading it back never panics and never
        /// accepts it.
        #[test]
        fn arbitrary_secrets_are_rejected_without_panicking(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            issued in ".{0,40}",
            expires in ".{0,40}",
            mac in ".{0,80}",
            hex in "v1:[0-9a-f]{64}",
        ) {
            for mac in [mac, hex] {
                let secret = Secret {
                    metadata: ObjectMeta {
                        annotations: Some(BTreeMap::from([
                            (ISSUED_AT_ANNOTATION.to_owned(), issued.clone()),
                            (EXPIRES_AT_ANNOTATION.to_owned(), expires.clone()),
                            (CREDENTIAL_MAC_ANNOTATION.to_owned(), mac),
                        ])),
                        ..ObjectMeta::default()
                    },
                    data: Some(BTreeMap::from([(
                        DOCKER_CONFIG_JSON_KEY.to_owned(),
                        ByteString(data.clone()),
                    )])),
                    ..Secret::default()
                };
                proptest::prop_assert!(read_back(&key(), STORE_KEY, &hosts(), &secret).is_err());
            }
        }
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
