//! SigV4 verification: parse the `Authorization` header, recompute the signature with the
//! `aws-sigv4` crate from the known secret, compare in constant time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// Requests signed further than this from now are refused (AWS's 15 minutes).
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of an `AWS4-HMAC-SHA256` Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// Credential scope date, `YYYYMMDD`.
    pub date: String,
    /// Credential scope region.
    pub region: String,
    /// Credential scope service.
    pub service: String,
    /// Signed header names, lowercase, as listed.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No Authorization header.
    #[error("request is missing Authentication Token")]
    Missing,
    /// The header is not SigV4.
    #[error("authorization header is malformed: {0}")]
    Malformed(&'static str),
    /// `X-Amz-Date` is missing or not `YYYYMMDDTHHMMSSZ`.
    #[error("X-Amz-Date is missing or malformed")]
    Date,
    /// The request was signed too long ago or too far in the future.
    #[error("signature expired: the request was signed more than 15 minutes from now")]
    Skew,
    /// The scope names another service.
    #[error("credential should be scoped to correct service: '{expected}'")]
    Service {
        /// The service this endpoint is.
        expected: String,
    },
    /// The signature differs.
    #[error("the request signature we calculated does not match the signature you provided")]
    Mismatch,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request,
    /// SignedHeaders=host;x-amz-date, Signature=abcd`.
    pub fn parse(header: &str) -> Result<Self, SigV4Error> {
        let rest = header
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or(SigV4Error::Malformed("algorithm must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SigV4Error::Malformed("expected key=value"))?;
            let slot = match k {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err(SigV4Error::Malformed("unknown component")),
            };
            if slot.replace(v).is_some() {
                return Err(SigV4Error::Malformed("duplicate component"));
            }
        }
        let credential = credential.ok_or(SigV4Error::Malformed("missing Credential"))?;
        let signed = signed.ok_or(SigV4Error::Malformed("missing SignedHeaders"))?;
        let signature = signature.ok_or(SigV4Error::Malformed("missing Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, "aws4_request"] = scope.as_slice() else {
            return Err(SigV4Error::Malformed(
                "credential scope must be key/date/region/service/aws4_request",
            ));
        };
        if akid.is_empty() || date.len() != 8 || region.is_empty() || service.is_empty() {
            return Err(SigV4Error::Malformed("empty credential scope field"));
        }
        let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
        if signed_headers
            .iter()
            .any(|h| h.is_empty() || h.chars().any(|c| c.is_ascii_uppercase()))
        {
            return Err(SigV4Error::Malformed(
                "signed headers must be lowercase names",
            ));
        }
        if signature.len() != 64 || !signature.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(SigV4Error::Malformed("signature must be 64 hex digits"));
        }
        Ok(Self {
            access_key_id: (*akid).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers,
            signature: signature.to_owned(),
        })
    }
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// What a verifier needs from a request.
#[derive(Debug)]
pub struct RequestParts<'a> {
    /// `POST`, `GET`…
    pub method: &'a str,
    /// Path and query as sent, e.g. `/` or `/?Action=GetCallerIdentity&Version=2011-06-15`.
    pub path_and_query: &'a str,
    /// Every header (name, value); names in any case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// The values of a header (case-insensitive name).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
}

/// Checks the signing date against `now` (± [`MAX_SKEW_SECONDS`]) and returns it.
pub fn check_date(
    parts: &RequestParts<'_>,
    auth: &Authorization,
    now: i64,
) -> Result<i64, SigV4Error> {
    let signed_at = parts
        .header("x-amz-date")
        .and_then(parse_amz_date)
        .ok_or(SigV4Error::Date)?;
    if parts.header("x-amz-date").map(|d| &d[..8]) != Some(auth.date.as_str()) {
        return Err(SigV4Error::Date);
    }
    if (now - signed_at).abs() > MAX_SKEW_SECONDS {
        return Err(SigV4Error::Skew);
    }
    Ok(signed_at)
}

/// Recomputes the signature of `parts` with `secret` over exactly the signed headers and
/// compares it with the one in `auth`.
pub fn verify_signature(
    parts: &RequestParts<'_>,
    auth: &Authorization,
    secret: &str,
    signed_at: i64,
) -> Result<(), SigV4Error> {
    let mut signed: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter(|(k, _)| {
            auth.signed_headers
                .iter()
                .any(|s| s.eq_ignore_ascii_case(k))
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Every listed header must be present (a client cannot sign a header it did not send).
    for name in &auth.signed_headers {
        if !signed.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Err(SigV4Error::Mismatch);
        }
    }
    let host = parts.header("host").ok_or(SigV4Error::Mismatch)?;
    let uri = format!("http://{host}{}", parts.path_and_query);
    // A signed session token goes through the identity, not the header list: aws-sigv4 then
    // inserts it itself and redacts it in its trace logs.
    let token = signed
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
        .map(|(_, v)| (*v).to_owned());
    signed.retain(|(k, _)| !k.eq_ignore_ascii_case("x-amz-security-token"));
    let identity = Credentials::new(&auth.access_key_id, secret, token, None, "sandbox").into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    let time =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(signed_at).map_err(|_| SigV4Error::Date)?);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| SigV4Error::Mismatch)?
        .into();
    let signable = SignableRequest::new(
        parts.method,
        uri,
        signed.into_iter(),
        SignableBody::Bytes(parts.body),
    )
    .map_err(|_| SigV4Error::Mismatch)?;
    let output = sign(signable, &params).map_err(|_| SigV4Error::Mismatch)?;
    let ours = output.signature().as_bytes();
    let theirs = auth.signature.to_ascii_lowercase();
    if ours.len() == theirs.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(ours, theirs.as_bytes()).is_ok()
    {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// Signs a request (used by tests and by the sandbox's own clients): returns the headers to
/// add (`authorization`, `x-amz-date`, `x-amz-security-token`).
pub fn sign_request(
    parts: &RequestParts<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let host = parts.header("host").ok_or("no host header")?;
    let uri = format!("http://{host}{}", parts.path_and_query);
    let signable = SignableRequest::new(
        parts.method,
        uri,
        parts.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(parts.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization() {
        let a = Authorization::parse("AWS4-HMAC-SHA256 Credential=ASIAX/20250101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(a.access_key_id, "ASIAX");
        assert_eq!(a.service, "sts");
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        let sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for bad in [
            "Bearer x".to_owned(),
            "AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=abc".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts, SignedHeaders=host, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts/aws4_request, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts/aws4_request, SignedHeaders=Host, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=A/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, SignedHeaders=host, Signature={sig}"
            ),
        ] {
            assert!(Authorization::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_amz_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20240229T000000Z"), Some(1_709_164_800));
        for bad in [
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T123600",
            "2015083OT123600Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    fn signed(secret: &str, token: Option<&str>) -> (Vec<(String, String)>, Vec<u8>) {
        let body = b"Action=GetCallerIdentity&Version=2011-06-15".to_vec();
        let headers = vec![
            ("host".to_owned(), "127.0.0.1:8080".to_owned()),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ];
        let creds = Credentials::new("ASIATEST", secret, token.map(str::to_owned), None, "t");
        let parts = RequestParts {
            method: "POST",
            path_and_query: "/",
            headers: &headers,
            body: &body,
        };
        let added = sign_request(
            &parts,
            &creds,
            "us-east-1",
            "sts",
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let mut all = headers.clone();
        all.extend(added);
        (all, body)
    }

    #[test]
    fn verifies_what_aws_sigv4_signs() {
        let (headers, body) = signed("secret", Some("session-token"));
        let parts = RequestParts {
            method: "POST",
            path_and_query: "/",
            headers: &headers,
            body: &body,
        };
        let auth = Authorization::parse(parts.header("authorization").unwrap()).unwrap();
        assert!(
            auth.signed_headers
                .contains(&"x-amz-security-token".to_owned())
        );
        let at = check_date(&parts, &auth, 1_800_000_100).unwrap();
        assert_eq!(verify_signature(&parts, &auth, "secret", at), Ok(()));
        assert_eq!(
            verify_signature(&parts, &auth, "other", at),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            check_date(&parts, &auth, 1_800_000_000 + 901),
            Err(SigV4Error::Skew)
        );
        // Tampered body, tampered token.
        let parts2 = RequestParts {
            body: b"Action=AssumeRole",
            ..parts
        };
        assert_eq!(
            verify_signature(&parts2, &auth, "secret", at),
            Err(SigV4Error::Mismatch)
        );
        let mut h3 = headers.clone();
        for (k, v) in &mut h3 {
            if k == "x-amz-security-token" {
                *v = "other-token".into();
            }
        }
        let parts3 = RequestParts {
            headers: &h3,
            ..parts
        };
        assert_eq!(
            verify_signature(&parts3, &auth, "secret", at),
            Err(SigV4Error::Mismatch)
        );
    }
}
