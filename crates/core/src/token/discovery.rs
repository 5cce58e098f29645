//! The OIDC discovery document (`<issuer>/.well-known/openid-configuration`): the issuer it
//! names and where its signing keys are (`jwks_uri`). AWS reads both when it verifies a token,
//! so `irsa doctor` reads them from the cluster and compares them with the token and the IAM
//! OIDC provider. The document is cluster-served, hence untrusted: bounded and checked.

use serde_json::Value;

/// Largest discovery document accepted, in bytes (real ones are under 1 KiB).
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// What a discovery document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `issuer`: must equal the tokens' `iss` exactly.
    pub issuer: String,
    /// `jwks_uri`: where AWS fetches the keys (over HTTPS, from the internet).
    pub jwks_uri: String,
    /// `id_token_signing_alg_values_supported`, when present.
    pub algorithms: Vec<String>,
}

/// Why a discovery document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Larger than [`MAX_DISCOVERY_BYTES`].
    #[error("the discovery document is {0} bytes, more than {MAX_DISCOVERY_BYTES}")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("the discovery document is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent or not a string.
    #[error("the discovery document has no string field {0:?}")]
    Missing(&'static str),
    /// A URL field is not an https URL with a host.
    #[error("the discovery document's {field} {value:?} is not an https:// URL with a host")]
    NotHttps {
        /// `issuer` or `jwks_uri`.
        field: &'static str,
        /// The value (a URL, not a secret).
        value: String,
    },
}

impl Discovery {
    /// Parses and checks a discovery document.
    pub fn parse(bytes: &[u8]) -> Result<Discovery, DiscoveryError> {
        if bytes.len() > MAX_DISCOVERY_BYTES {
            return Err(DiscoveryError::TooLarge(bytes.len()));
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| DiscoveryError::NotJson(e.to_string()))?;
        let Value::Object(doc) = value else {
            return Err(DiscoveryError::NotJson(
                "a JSON value other than an object".into(),
            ));
        };
        let url = |field: &'static str| -> Result<String, DiscoveryError> {
            let value = doc
                .get(field)
                .and_then(Value::as_str)
                .ok_or(DiscoveryError::Missing(field))?;
            let host = value
                .strip_prefix("https://")
                .map(|r| r.split('/').next().unwrap_or(""));
            match host {
                Some(h) if !h.is_empty() && !value.chars().any(char::is_whitespace) => {
                    Ok(value.to_owned())
                }
                _ => Err(DiscoveryError::NotHttps {
                    field,
                    value: value.chars().take(200).collect(),
                }),
            }
        };
        let algorithms = doc
            .get("id_token_signing_alg_values_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .take(32)
                    .map(|s| s.chars().take(32).collect())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Discovery {
            issuer: url("issuer")?,
            jwks_uri: url("jwks_uri")?,
            algorithms,
        })
    }

    /// The path of `jwks_uri` (`/openid/v1/jwks`), which the API server also serves itself.
    pub fn jwks_path(&self) -> &str {
        let rest = self
            .jwks_uri
            .strip_prefix("https://")
            .unwrap_or(&self.jwks_uri);
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kubernetes_document() {
        let d = Discovery::parse(br#"{"issuer":"https://oidc.eks.us-east-1.amazonaws.com/id/X","jwks_uri":"https://oidc.eks.us-east-1.amazonaws.com/id/X/keys","response_types_supported":["id_token"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"]}"#).unwrap();
        assert_eq!(d.issuer, "https://oidc.eks.us-east-1.amazonaws.com/id/X");
        assert_eq!(d.jwks_path(), "/id/X/keys");
        assert_eq!(d.algorithms, ["RS256"]);
    }

    #[test]
    fn refuses_what_aws_cannot_use() {
        for (doc, want) in [
            (&b"[]"[..], "not a JSON object"),
            (b"{", "not a JSON object"),
            (br#"{"jwks_uri":"https://a/k"}"#, "\"issuer\""),
            (
                br#"{"issuer":"http://a","jwks_uri":"https://a/k"}"#,
                "https://",
            ),
            (
                br#"{"issuer":"https://a","jwks_uri":"https:///k"}"#,
                "jwks_uri",
            ),
            (
                br#"{"issuer":"https://a b","jwks_uri":"https://a/k"}"#,
                "issuer",
            ),
        ] {
            let e = Discovery::parse(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(matches!(
            Discovery::parse(&vec![b' '; MAX_DISCOVERY_BYTES + 1]),
            Err(DiscoveryError::TooLarge(_))
        ));
    }
}
