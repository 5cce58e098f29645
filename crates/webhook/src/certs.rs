//! A CA and a serving certificate for the webhook's Service (`<service>.<namespace>.svc`), as
//! kube-apiserver verifies it against the configuration's `caBundle`; [`check`] decides whether a
//! stored pair can be kept, and [`bundle_contains`] / [`next_bundle`] what `caBundle` holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files for the webhook: the CA (for `caBundle`) and the serving pair.
pub struct Certificates {
    /// The CA certificate, PEM: what goes into `caBundle` (base64 of this).
    pub ca_pem: String,
    /// The serving certificate, PEM.
    pub cert_pem: String,
    /// The serving key, PEM (PKCS#8). Never printed by `Debug`.
    pub key_pem: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Certificate generation failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to generate the webhook's {what} certificate: {source}")]
pub struct CertError {
    what: &'static str,
    source: rcgen::Error,
}

/// The DNS names a webhook Service is reached by.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A new CA and a serving certificate for `names` signed by it, valid from 1975 to 4096
/// (rcgen's defaults; for tests). [`generate_valid`] gives them a lifetime.
pub fn generate(names: &[String]) -> Result<Certificates, CertError> {
    generate_with(names, None)
}

/// A new CA and a serving certificate for `names` signed by it, both valid from `not_before`
/// to `not_after`.
pub fn generate_valid(
    names: &[String],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<Certificates, CertError> {
    generate_with(names, Some((not_before, not_after)))
}

fn generate_with(
    names: &[String],
    validity: Option<(SystemTime, SystemTime)>,
) -> Result<Certificates, CertError> {
    let err = |what| move |source| CertError { what, source };
    let at = |t: SystemTime| {
        rcgen::date_time_ymd(1970, 1, 1) + t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
    };
    let ca_key = KeyPair::generate().map_err(err("CA"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    if let Some((from, until)) = validity {
        ca_params.not_before = at(from);
        ca_params.not_after = at(until);
    }
    ca_params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err("CA"))?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(err("serving"))?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(err("serving"))?;
    if let Some((from, until)) = validity {
        params.not_before = at(from);
        params.not_after = at(until);
    }
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, &issuer).map_err(err("serving"))?;
    Ok(Certificates {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Why a stored certificate cannot be kept (so it is replaced).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// A PEM field is missing or holds nothing usable.
    #[error("{field} holds no PEM {what}")]
    Pem {
        /// `tls.crt`, `tls.key` or `ca.crt`.
        field: &'static str,
        /// What was expected.
        what: &'static str,
    },
    /// The key is not the certificate's.
    #[error("tls.key does not belong to tls.crt: {0}")]
    KeyMismatch(String),
    /// The chain does not verify now (wrong CA, wrong name, expired, not yet valid).
    #[error("tls.crt does not verify against ca.crt for {name}: {reason}")]
    DoesNotVerify {
        /// The server name checked.
        name: String,
        /// rustls's reason.
        reason: String,
    },
    /// It verifies now but not at the end of the renewal window.
    #[error("tls.crt expires within the renewal window ({hours} hours)")]
    ExpiresSoon {
        /// The window, in hours.
        hours: u64,
    },
}

fn pem_certs(field: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Unusable> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(Unusable::Pem {
            field,
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Whether a stored serving pair can be kept: `tls.key` belongs to `tls.crt`, and `tls.crt`
/// verifies against `ca.crt` as a server certificate for `server_name` both at `now` and at
/// `now + renew_before`. The bytes come from a Secret anyone with write access to it may have
/// edited: every failure is a reason to replace it, never a panic.
pub fn check(
    tls_crt: &[u8],
    tls_key: &[u8],
    ca_crt: &[u8],
    server_name: &str,
    now: SystemTime,
    renew_before: Duration,
) -> Result<(), Unusable> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = pem_certs("tls.crt", tls_crt)?;
    let key = PrivateKeyDer::from_pem_slice(tls_key).map_err(|_| Unusable::Pem {
        field: "tls.key",
        what: "private key",
    })?;
    CertifiedKey::from_der(chain.clone(), key, &provider)
        .map_err(|e| Unusable::KeyMismatch(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for ca in pem_certs("ca.crt", ca_crt)? {
        // A CA that does not parse is simply no root; the verification below then says so.
        let _ = roots.add(ca);
    }
    let name =
        ServerName::try_from(server_name.to_owned()).map_err(|e| Unusable::DoesNotVerify {
            name: server_name.to_owned(),
            reason: e.to_string(),
        })?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| Unusable::DoesNotVerify {
            name: server_name.to_owned(),
            reason: e.to_string(),
        })?;
    let verify_at = |t: SystemTime| {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        verifier.verify_server_cert(
            &chain[0],
            &chain[1..],
            &name,
            &[],
            UnixTime::since_unix_epoch(since),
        )
    };
    verify_at(now).map_err(|e| Unusable::DoesNotVerify {
        name: server_name.to_owned(),
        reason: e.to_string(),
    })?;
    let expires_soon = || Unusable::ExpiresSoon {
        hours: renew_before.as_secs() / 3600,
    };
    // A window past the end of time: nothing lasts that long.
    let end = now.checked_add(renew_before).ok_or_else(expires_soon)?;
    verify_at(end).map_err(|_| expires_soon())?;
    Ok(())
}

/// Whether the PEM `bundle` (a `caBundle`) holds the certificate in the PEM `ca`.
pub fn bundle_contains(bundle: &[u8], ca: &[u8]) -> bool {
    let Ok(wanted) = pem_certs("ca.crt", ca) else {
        return false;
    };
    let held: Vec<_> = CertificateDer::pem_slice_iter(bundle)
        .filter_map(Result::ok)
        .collect();
    wanted.iter().all(|w| held.contains(w))
}

/// The certificates of the PEM `pem`, re-encoded as clean PEM (whatever else the text held,
/// headers, comments or junk between blocks, is dropped); `None` when it holds none. What goes
/// into `caBundle` from a Secret read back from the cluster passes through this.
pub fn normalized(pem: &[u8]) -> Option<String> {
    let certs = pem_certs("ca.crt", pem).ok()?;
    Some(certs.iter().map(|der| pem_block(der.as_ref())).collect())
}

fn pem_block(der: &[u8]) -> String {
    use base64::Engine as _;
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    for line in b64.as_bytes().chunks(64) {
        // Base64 is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// How many CAs besides the current one `caBundle` carries: the previous one (replicas still
/// serving it stay trusted until their mounted Secret catches up) and one a concurrent
/// rotation added. Older ones are dropped, so the bundle cannot grow without bound.
pub const MAX_CARRIED_CAS: usize = 2;

/// The subject (and, self-signed, issuer) common name of every CA irsa issues: how the step
/// tells its own CAs, which it carries over in `caBundle`, from others (review finding L1).
pub const CA_COMMON_NAME: &str = "irsa webhook CA";

/// Whether `der` is a CA irsa issued: self-signed with subject and issuer [`CA_COMMON_NAME`].
pub fn is_irsa_ca(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    fn cn<'a>(name: &'a x509_parser::x509::X509Name<'_>) -> Option<&'a str> {
        let mut names = name.iter_common_name();
        let first = names.next().and_then(|a| a.as_str().ok());
        first.filter(|_| names.next().is_none())
    }
    cn(cert.subject()) == Some(CA_COMMON_NAME) && cn(cert.issuer()) == Some(CA_COMMON_NAME)
}

/// The fingerprint irsa records for a CA it issued (review finding L3): the SHA-256 of its
/// SubjectPublicKeyInfo, lowercase hex. A common name anyone can copy; a certificate with this
/// fingerprint is only of use to whoever holds the CA's private key. `None` when `der` does not
/// parse.
pub fn ca_fingerprint(der: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let digest = sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The [`ca_fingerprint`]s of the certificates of the PEM `pem`, in order.
pub fn fingerprints(pem: &[u8]) -> Vec<String> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .filter_map(|der| ca_fingerprint(der.as_ref()))
        .collect()
}

/// Whether `der` is a valid CA at `now` that irsa issued and recorded: its common name
/// ([`is_irsa_ca`]) and its fingerprint among `recorded` (review finding L3).
fn is_recorded_ca(der: &[u8], recorded: &[String], now: SystemTime) -> bool {
    is_valid_ca(der, now)
        && is_irsa_ca(der)
        && ca_fingerprint(der).is_some_and(|f| recorded.contains(&f))
}

/// Whether `bundle` holds `ca` and nothing [`next_bundle`] would drop: besides `ca`, only valid
/// CAs irsa issued whose fingerprints are `recorded`, no junk. Such a bundle is left as it is.
pub fn bundle_is_clean(bundle: &[u8], ca: &[u8], recorded: &[String], now: SystemTime) -> bool {
    if !bundle_contains(bundle, ca) {
        return false;
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bundle).collect();
    let wanted: Vec<_> = CertificateDer::pem_slice_iter(ca)
        .filter_map(Result::ok)
        .collect();
    certs.len() <= MAX_CARRIED_CAS + 1
        && certs.iter().all(|c| {
            c.as_ref().is_ok_and(|der| {
                is_valid_ca(der.as_ref(), now)
                    && (wanted.contains(der) || is_recorded_ca(der.as_ref(), recorded, now))
            })
        })
}

/// Whether `der` is a CA certificate (basic constraints with `cA` set) within its validity at
/// `now`. Bytes read back from the cluster: anything that does not parse is no CA.
pub fn is_valid_ca(der: &[u8], now: SystemTime) -> bool {
    let Ok((rest, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let at = unix_seconds(now);
    let validity = cert.validity();
    rest.is_empty()
        && is_ca
        && validity.not_before.timestamp() <= at
        && at < validity.not_after.timestamp()
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `notAfter` of the first certificate of the PEM `pem` (the serving certificate of a
/// chain), in seconds since the Unix epoch; `None` when it holds no certificate that parses.
pub fn not_after_unix(pem: &[u8]) -> Option<i64> {
    let first = CertificateDer::pem_slice_iter(pem).find_map(Result::ok)?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The `caBundle` after a rotation or a repair: the new CA first, then at most
/// [`MAX_CARRIED_CAS`] certificates taken from the PEM `carried` texts in order (the
/// Secret's previous `ca.crt`, then the bundle as the configuration holds it now), each only
/// if it is a valid, unexpired CA certificate at `now` that irsa issued and recorded (its
/// fingerprint among `recorded`, [`ca_fingerprint`]; review finding L3) and not the new CA
/// itself. Whatever else those texts held (junk, leaf certificates, expired CAs, CAs of anyone
/// else, a planted CA that copies irsa's common name) stays out.
pub fn next_bundle(
    new_ca: &str,
    carried: &[&[u8]],
    recorded: &[String],
    now: SystemTime,
) -> String {
    let mut out = normalized(new_ca.as_bytes()).unwrap_or_else(|| new_ca.to_owned());
    let mut seen: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(new_ca.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let mut kept = 0;
    for text in carried {
        for der in CertificateDer::pem_slice_iter(text).filter_map(Result::ok) {
            if kept == MAX_CARRIED_CAS {
                return out;
            }
            if seen.contains(&der) || !is_recorded_ca(der.as_ref(), recorded, now) {
                continue;
            }
            out.push_str(&pem_block(der.as_ref()));
            seen.push(der);
            kept += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    /// Every certificate of `texts` as recorded: the tests of the other filters.
    fn rec(texts: &[&[u8]]) -> Vec<String> {
        texts.iter().flat_map(|t| fingerprints(t)).collect()
    }

    fn fresh(name: &str, now: SystemTime, days: u32) -> Certificates {
        generate_valid(
            &service_names(name, "irsa-system"),
            now - Duration::from_secs(3600),
            now + DAY * days,
        )
        .unwrap()
    }

    #[test]
    fn a_pair_is_kept_only_while_it_verifies_past_the_renewal_window() {
        let now = SystemTime::now();
        let c = fresh("irsa-webhook", now, 40);
        let host = "irsa-webhook.irsa-system.svc";
        let check_at = |crt: &str, key: &str, ca: &str, host: &str, at, window| {
            check(
                crt.as_bytes(),
                key.as_bytes(),
                ca.as_bytes(),
                host,
                at,
                window,
            )
        };
        assert_eq!(
            check_at(&c.cert_pem, &c.key_pem, &c.ca_pem, host, now, DAY * 30),
            Ok(())
        );
        assert_eq!(
            check_at(&c.cert_pem, &c.key_pem, &c.ca_pem, host, now, DAY * 45),
            Err(Unusable::ExpiresSoon { hours: 45 * 24 })
        );
        // Expired already, another service's name, another CA, another key, garbage.
        let later = now + DAY * 41;
        assert!(matches!(
            check_at(&c.cert_pem, &c.key_pem, &c.ca_pem, host, later, DAY),
            Err(Unusable::DoesNotVerify { .. })
        ));
        let e = check_at(
            &c.cert_pem,
            &c.key_pem,
            &c.ca_pem,
            "other.irsa-system.svc",
            now,
            DAY,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tls.crt does not verify against ca.crt for other.irsa-system.svc"),
            "{e}"
        );
        let other = fresh("irsa-webhook", now, 40);
        assert!(matches!(
            check_at(&c.cert_pem, &c.key_pem, &other.ca_pem, host, now, DAY),
            Err(Unusable::DoesNotVerify { .. })
        ));
        assert!(matches!(
            check_at(&c.cert_pem, &other.key_pem, &c.ca_pem, host, now, DAY),
            Err(Unusable::KeyMismatch(_))
        ));
        assert_eq!(
            check_at("", &c.key_pem, &c.ca_pem, host, now, DAY),
            Err(Unusable::Pem {
                field: "tls.crt",
                what: "certificate"
            })
        );
        assert_eq!(
            check_at(
                &c.cert_pem,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                &c.ca_pem,
                host,
                now,
                DAY
            )
            .map_err(|e| matches!(e, Unusable::KeyMismatch(_) | Unusable::Pem { .. })),
            Err(true)
        );
        assert_eq!(
            check_at(&c.cert_pem, &c.key_pem, "not pem", host, now, DAY),
            Err(Unusable::Pem {
                field: "ca.crt",
                what: "certificate"
            })
        );
        assert_eq!(
            check_at(&c.cert_pem, &c.key_pem, &c.ca_pem, host, now, Duration::MAX),
            Err(Unusable::ExpiresSoon {
                hours: u64::MAX / 3600
            })
        );
        // The key never reaches an error.
        let e = check_at(&c.cert_pem, &other.key_pem, &c.ca_pem, host, now, DAY).unwrap_err();
        assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
    }

    #[test]
    fn the_bundle_keeps_the_previous_ca_for_one_rotation() {
        let now = SystemTime::now();
        let a = fresh("w", now, 10);
        let b = fresh("w", now, 10);
        let bundle = next_bundle(
            &b.ca_pem,
            &[a.ca_pem.as_bytes()],
            &rec(&[a.ca_pem.as_bytes()]),
            now,
        );
        assert!(bundle_contains(bundle.as_bytes(), b.ca_pem.as_bytes()));
        assert!(bundle_contains(bundle.as_bytes(), a.ca_pem.as_bytes()));
        let only_b = normalized(b.ca_pem.as_bytes()).unwrap();
        assert_eq!(only_b, format!("{}\n", b.ca_pem.trim_end()));
        assert_eq!(next_bundle(&b.ca_pem, &[&b"garbage"[..]], &[], now), only_b);
        assert_eq!(
            next_bundle(
                &b.ca_pem,
                &[b.ca_pem.as_bytes()],
                &rec(&[b.ca_pem.as_bytes()]),
                now
            ),
            only_b
        );
        assert_eq!(next_bundle(&b.ca_pem, &[], &rec(&[]), now), only_b);
        // Junk around the PEM block of a Secret read back never reaches caBundle.
        let dirty = format!("junk\n{}trailing words\n", a.ca_pem);
        assert_eq!(
            normalized(dirty.as_bytes()),
            normalized(a.ca_pem.as_bytes())
        );
        assert!(
            !next_bundle(
                &b.ca_pem,
                &[dirty.as_bytes()],
                &rec(&[dirty.as_bytes()]),
                now
            )
            .contains("junk")
        );
        assert_eq!(normalized(b"no pem here"), None);
        assert!(!bundle_contains(a.ca_pem.as_bytes(), b.ca_pem.as_bytes()));
        assert!(!bundle_contains(b"", b""));
    }

    /// Review finding L2: the previous `ca.crt` comes from a Secret anyone who can write it may
    /// have edited. Only a valid, unexpired CA certificate is carried into `caBundle`.
    #[test]
    fn only_a_valid_unexpired_ca_is_carried_over() {
        let now = SystemTime::now();
        let current = fresh("w", now, 10);
        let only_current = normalized(current.ca_pem.as_bytes()).unwrap();
        let names = service_names("w", "irsa-system");
        let expired = generate_valid(&names, now - DAY * 20, now - DAY * 10).unwrap();
        let not_yet = generate_valid(&names, now + DAY, now + DAY * 10).unwrap();
        let valid = fresh("w", now, 10);
        // A leaf (the serving certificate) is no CA; an expired or future CA trusts nothing now.
        for bad in [&expired.ca_pem, &not_yet.ca_pem, &valid.cert_pem] {
            assert_eq!(
                next_bundle(
                    &current.ca_pem,
                    &[bad.as_bytes()],
                    &rec(&[bad.as_bytes()]),
                    now
                ),
                only_current,
                "carried {bad}"
            );
        }
        assert!(is_valid_ca(
            pem_certs("ca.crt", valid.ca_pem.as_bytes()).unwrap()[0].as_ref(),
            now
        ));
        assert!(!is_valid_ca(b"\x30\x03\x02\x01\x00", now));
        assert!(!is_valid_ca(&[], now));
        // Mixed with junk and bad certificates, the valid CA alone is carried.
        let mixed = format!("{}{}junk\n{}", expired.ca_pem, valid.cert_pem, valid.ca_pem);
        let bundle = next_bundle(
            &current.ca_pem,
            &[mixed.as_bytes()],
            &rec(&[mixed.as_bytes()]),
            now,
        );
        assert_eq!(
            bundle,
            format!(
                "{only_current}{}",
                normalized(valid.ca_pem.as_bytes()).unwrap()
            )
        );
        // At most MAX_CARRIED_CAS are carried, in the order given.
        let cas: Vec<Certificates> = (0..4).map(|_| fresh("w", now, 10)).collect();
        let texts: Vec<&[u8]> = cas.iter().map(|c| c.ca_pem.as_bytes()).collect();
        let bundle = next_bundle(&current.ca_pem, &texts, &rec(&texts), now);
        assert!(bundle_contains(bundle.as_bytes(), cas[0].ca_pem.as_bytes()));
        assert!(bundle_contains(bundle.as_bytes(), cas[1].ca_pem.as_bytes()));
        assert!(!bundle_contains(
            bundle.as_bytes(),
            cas[2].ca_pem.as_bytes()
        ));
        assert_eq!(
            bundle.matches("BEGIN CERTIFICATE").count(),
            1 + MAX_CARRIED_CAS
        );
    }

    /// Review finding L1: only CAs irsa issued are carried, however valid another one is.
    #[test]
    fn a_foreign_ca_is_not_carried() {
        let now = SystemTime::now();
        let ours = fresh("w", now, 10);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "someone else's CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let foreign = params.self_signed(&key).unwrap().pem();
        let der = |pem: &str| pem_certs("ca.crt", pem.as_bytes()).unwrap()[0].clone();
        assert!(is_irsa_ca(der(&ours.ca_pem).as_ref()));
        assert!(!is_irsa_ca(der(&foreign).as_ref()));
        assert!(is_valid_ca(der(&foreign).as_ref(), now));
        let new = fresh("w", now, 10);
        let carried = format!("{foreign}{}", ours.ca_pem);
        let bundle = next_bundle(
            &new.ca_pem,
            &[carried.as_bytes()],
            &rec(&[carried.as_bytes()]),
            now,
        );
        assert!(bundle_contains(bundle.as_bytes(), ours.ca_pem.as_bytes()));
        assert!(!bundle_contains(bundle.as_bytes(), foreign.as_bytes()));
        let recorded = rec(&[carried.as_bytes()]);
        assert!(bundle_is_clean(
            bundle.as_bytes(),
            new.ca_pem.as_bytes(),
            &recorded,
            now
        ));
        assert!(!bundle_is_clean(
            carried.as_bytes(),
            ours.ca_pem.as_bytes(),
            &recorded,
            now
        ));
    }

    /// Review finding L3: a CA was recognised by its common name alone, so a self-signed CA
    /// planted in the live bundle with irsa's common name survived every run. Only CAs whose
    /// public-key fingerprint irsa recorded when it issued them are carried.
    #[test]
    fn a_planted_ca_with_irsas_common_name_is_not_carried() {
        let now = SystemTime::now();
        let previous = fresh("w", now, 10);
        let planted = fresh("w", now, 10);
        assert!(is_irsa_ca(
            pem_certs("ca.crt", planted.ca_pem.as_bytes()).unwrap()[0].as_ref()
        ));
        let new = fresh("w", now, 10);
        let live = format!("{}{}", previous.ca_pem, planted.ca_pem);
        let recorded = fingerprints(previous.ca_pem.as_bytes());
        let bundle = next_bundle(&new.ca_pem, &[live.as_bytes()], &recorded, now);
        assert!(bundle_contains(
            bundle.as_bytes(),
            previous.ca_pem.as_bytes()
        ));
        assert!(!bundle_contains(
            bundle.as_bytes(),
            planted.ca_pem.as_bytes()
        ));
        // A bundle holding it is not clean: the step rewrites it.
        let with_planted = format!("{}{}", new.ca_pem, planted.ca_pem);
        assert!(!bundle_is_clean(
            with_planted.as_bytes(),
            new.ca_pem.as_bytes(),
            &recorded,
            now
        ));
        assert!(bundle_is_clean(
            bundle.as_bytes(),
            new.ca_pem.as_bytes(),
            &recorded,
            now
        ));
        // The fingerprint is the public key's: stable, 64 hex digits, distinct per CA.
        let f = fingerprints(new.ca_pem.as_bytes());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].len(), 64);
        assert!(f[0].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(f, recorded);
        assert_eq!(fingerprints(b"junk"), Vec::<String>::new());
    }

    #[test]
    fn not_after_reads_the_serving_certificates_expiry() {
        let now = SystemTime::now();
        let c = fresh("w", now, 10);
        let want = unix_seconds(now + DAY * 10);
        let got = not_after_unix(c.cert_pem.as_bytes()).unwrap();
        assert!((got - want).abs() <= 1, "{got} vs {want}");
        assert_eq!(not_after_unix(b"not pem"), None);
    }
}
