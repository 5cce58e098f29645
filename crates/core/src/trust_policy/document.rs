//! Policy documents as IAM's API returns them: URL-encoded JSON (RFC 3986), compared by
//! meaning (as JSON values), never byte for byte.

use serde_json::Value;
use thiserror::Error;

/// A policy document IAM returned that is neither JSON nor URL-encoded JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// A `%` not followed by two hexadecimal digits, at this byte offset.
    #[error("a '%' at byte {0} is not followed by two hexadecimal digits")]
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    #[error("the decoded document is not UTF-8")]
    NotUtf8,
}

/// A policy document as IAM returns it (URL-encoded JSON, RFC 3986), as JSON text. A document
/// that is JSON already (it starts with `{`; some IAM-compatible endpoints do not encode) is
/// returned as it is. `+` is kept: IAM encodes a space as `%20`, and a literal `+` as `%2B`.
pub fn decode_policy_document(raw: &str) -> Result<String, DocumentError> {
    if raw.trim_start().starts_with('{') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                _ => return Err(DocumentError::BadEscape(i)),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DocumentError::NotUtf8)
}

/// Whether the document `text` (as [`decode_policy_document`] returns it) means `wanted`: equal
/// as JSON values. A document that is not JSON is never the one wanted.
pub fn same_document(text: &str, wanted: &Value) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| &v == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_url_decoded_and_compared_as_json() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%20%22Statement%22%3A%5B%5D%7D";
        let text = decode_policy_document(encoded).unwrap();
        assert_eq!(text, r#"{"Version":"2012-10-17", "Statement":[]}"#);
        let wanted = json!({"Statement": [], "Version": "2012-10-17"});
        assert!(
            same_document(&text, &wanted),
            "key order and spaces do not matter"
        );
        assert!(!same_document(&text, &json!({"Version": "2012-10-17"})));
        assert!(!same_document("not json", &wanted));
        // Plain JSON passes through, with its '%' and '+' untouched.
        let plain = r#"{"Sid": "a+b%20"}"#;
        assert_eq!(decode_policy_document(plain).unwrap(), plain);
        assert_eq!(decode_policy_document("a%2Bb+c").unwrap(), "a+b+c");
    }

    #[test]
    fn bad_escapes_and_non_utf8_are_errors() {
        assert_eq!(
            decode_policy_document("%7B%2"),
            Err(DocumentError::BadEscape(3))
        );
        assert_eq!(
            decode_policy_document("%zz"),
            Err(DocumentError::BadEscape(0))
        );
        assert_eq!(
            decode_policy_document("%FF%FE"),
            Err(DocumentError::NotUtf8)
        );
        assert_eq!(decode_policy_document("").unwrap(), "");
        // A multi-byte character split across escapes decodes whole.
        assert_eq!(decode_policy_document("%C3%A9").unwrap(), "é");
    }
}
