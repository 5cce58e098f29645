//! A CA and a serving certificate for the webhook's Service (`<service>.<namespace>.svc`), as
//! kube-apiserver verifies it against the configuration's `caBundle`.

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

/// A new CA and a serving certificate for `names` signed by it.
pub fn generate(names: &[String]) -> Result<Certificates, CertError> {
    let err = |what| move |source| CertError { what, source };
    let ca_key = KeyPair::generate().map_err(err("CA"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "irsa webhook CA");
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
