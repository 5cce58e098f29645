//! Parsers of registry token answers, which are untrusted bytes from upstream: ECR's
//! authorization token and Chainguard's `sts/exchange` response. Pure, so that they can be
//! fuzzed without the AWS SDK; the providers in `irsa-aws` call them.

use std::time::SystemTime;

use base64::Engine as _;
use thiserror::Error;

use crate::lifetime::{self, AbsurdExpiry};
use crate::secret::SecretString;

/// Splits an ECR authorization token (standard base64 of `user:password`) at the first `:`.
pub fn decode_ecr_authorization_token(token: &str) -> Result<(String, SecretString), String> {
    let bytes = SecretBytes(
        base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| "it is not standard base64".to_owned())?,
    );
    let text = std::str::from_utf8(&bytes.0).map_err(|_| "it is not UTF-8 text".to_owned())?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| "it has no ':' between username and password".to_owned())?;
    if user.is_empty() || password.is_empty() {
        return Err("its username or password is empty".to_owned());
    }
    Ok((user.to_owned(), SecretString::from(password)))
}

/// Decoded token bytes, wiped on drop.
struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

/// Why a Chainguard exchange response was refused. Never quotes the body (it may hold a token).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainguardResponseError {
    /// Not the JSON object expected.
    #[error("the answer is not the expected JSON object: {0}")]
    NotJson(String),
    /// No token in it.
    #[error("the answer has no token")]
    NoToken,
    /// An `expiry` that is present but not a time.
    #[error("the answer's expiry is not an RFC 3339 time or Unix seconds")]
    BadExpiry,
    /// An `expiry` (or the token's `exp`) no issuer can mean.
    #[error("the answer's expiry is absurd: {0}")]
    AbsurdExpiry(#[from] AbsurdExpiry),
}

#[derive(serde::Deserialize)]
struct ExchangeResponse {
    token: Option<String>,
    #[serde(default)]
    expiry: Option<serde_json::Value>,
}

/// Parses Chainguard's `{"token", "expiry"}` answer. The expiry is `expiry` (RFC 3339 text,
/// Unix seconds, or `{"seconds": …}`), else the token's JWT `exp`, else unknown.
pub fn parse_chainguard_exchange(
    body: &[u8],
) -> Result<(SecretString, Option<SystemTime>), ChainguardResponseError> {
    let parsed: ExchangeResponse = serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages can quote input; keep only the category and position.
        ChainguardResponseError::NotJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .map(SecretString::new)
        .ok_or(ChainguardResponseError::NoToken)?;
    let expiry = match parsed.expiry.as_ref().filter(|v| !v.is_null()) {
        Some(v) => Some(parse_chainguard_expiry(v)?),
        None => jwt_expiry(token.expose())?,
    };
    Ok((token, expiry))
}

/// Chainguard's `expiry`: RFC 3339 text, Unix seconds, or `{"seconds": …}` (number or text).
pub fn parse_chainguard_expiry(
    v: &serde_json::Value,
) -> Result<SystemTime, ChainguardResponseError> {
    let seconds = |v: &serde_json::Value| -> Result<SystemTime, ChainguardResponseError> {
        let n = match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) => Ok(lifetime::system_time(n)?),
            // A negative or fractional number: garbage, not "no expiry".
            None if v.is_number() => Err(AbsurdExpiry::OutOfRange {
                reason: "not a whole, non-negative number of seconds".to_owned(),
            }
            .into()),
            None => Err(ChainguardResponseError::BadExpiry),
        }
    };
    match v {
        serde_json::Value::String(s) => match crate::time::parse_rfc3339(s) {
            Some(t) if t < 0 => Err(AbsurdExpiry::OutOfRange {
                reason: "before 1970".to_owned(),
            }
            .into()),
            Some(t) => Ok(lifetime::system_time(t.unsigned_abs())?),
            None => Err(ChainguardResponseError::BadExpiry),
        },
        serde_json::Value::Number(_) => seconds(v),
        serde_json::Value::Object(o) => o
            .get("seconds")
            .ok_or(ChainguardResponseError::BadExpiry)
            .and_then(seconds),
        _ => Err(ChainguardResponseError::BadExpiry),
    }
}

/// The token's `exp`, when it is a JWT with one.
fn jwt_expiry(token: &str) -> Result<Option<SystemTime>, ChainguardResponseError> {
    let Some(exp) = crate::token::decode_unverified(token)
        .ok()
        .and_then(|t| t.claims.exp)
    else {
        return Ok(None);
    };
    let exp = u64::try_from(exp).map_err(|_| AbsurdExpiry::OutOfRange {
        reason: "the token's exp is before 1970".to_owned(),
    })?;
    Ok(Some(lifetime::system_time(exp)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ecr_tokens() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let (user, pass) = decode_ecr_authorization_token(&b64("AWS:pw:with:colons")).unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("AWS", "pw:with:colons"));
        for (token, why) in [
            ("%%%", "base64"),
            (&b64("nocolon"), "no ':'"),
            (&b64(":pw"), "empty"),
            (
                &base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x']),
                "UTF-8",
            ),
        ] {
            let e = decode_ecr_authorization_token(token).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn chainguard_expiry_forms() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let parse = |v: serde_json::Value| parse_chainguard_expiry(&v);
        assert_eq!(parse(serde_json::json!("2027-01-15T08:00:00Z")), Ok(t));
        assert_eq!(parse(serde_json::json!(1_800_000_000u64)), Ok(t));
        assert_eq!(parse(serde_json::json!({"seconds": "1800000000"})), Ok(t));
        assert_eq!(
            parse(serde_json::json!({"seconds": 1_800_000_000u64})),
            Ok(t)
        );
        assert_eq!(
            parse(serde_json::json!(true)),
            Err(ChainguardResponseError::BadExpiry)
        );
        assert_eq!(
            parse(serde_json::json!("tomorrow")),
            Err(ChainguardResponseError::BadExpiry)
        );
    }

    #[test]
    fn chainguard_expiry_of_2_to_the_63_is_an_error_not_a_panic() {
        for body in [
            r#"{"token":"t","expiry":9223372036854775808}"#,
            r#"{"token":"t","expiry":18446744073709551615}"#,
            r#"{"token":"t","expiry":{"seconds":"9223372036854775808"}}"#,
            r#"{"token":"t","expiry":-5}"#,
            r#"{"token":"t","expiry":1.5}"#,
        ] {
            let e = parse_chainguard_exchange(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains("expiry is absurd"), "{body}: {e}");
        }
    }

    #[test]
    fn chainguard_answers() {
        let (token, expiry) =
            parse_chainguard_exchange(br#"{"token":"secret-token","expiry":1800000000}"#).unwrap();
        assert_eq!(token.expose(), "secret-token");
        assert_eq!(
            expiry,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        let (_, none) = parse_chainguard_exchange(br#"{"token":"opaque"}"#).unwrap();
        assert_eq!(none, None);
        assert_eq!(
            parse_chainguard_exchange(br#"{"expiry":1}"#).unwrap_err(),
            ChainguardResponseError::NoToken
        );
        let e = parse_chainguard_exchange(br#"{"token": "secret-token""#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret-token"), "{e}");
    }
}
