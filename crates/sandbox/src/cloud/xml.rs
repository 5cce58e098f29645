//! Small XML writing helpers for the STS and IAM Query APIs (no XML crate needed for output).

use std::fmt::Write as _;

/// The STS XML namespace.
pub(crate) const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The IAM XML namespace.
pub(crate) const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Escapes text for an XML element or attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters, not even as references: one stored
            // in a description would break every later answer that lists it (review 24b L2).
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Appends `<name>escaped text</name>`.
pub(crate) fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

/// The `ErrorResponse` document of the service whose namespace is `ns`.
pub(crate) fn error_response_in(
    ns: &str,
    kind: &str,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    let mut out = format!("<ErrorResponse xmlns=\"{ns}\"><Error>");
    element(&mut out, "Type", kind);
    element(&mut out, "Code", code);
    element(&mut out, "Message", message);
    out.push_str("</Error>");
    element(&mut out, "RequestId", request_id);
    out.push_str("</ErrorResponse>");
    out
}

/// Wraps a result body in `<{action}Response><{action}Result>…</…><ResponseMetadata>…`.
pub(crate) fn success_response(action: &str, result_body: &str, request_id: &str) -> String {
    success_response_in(STS_NS, action, Some(result_body), request_id)
}

/// As [`success_response`] in namespace `ns`; `None`: an action without output, answered
/// with `ResponseMetadata` only (as IAM does for `PutRolePolicy`, `DeleteRole`, …).
pub(crate) fn success_response_in(
    ns: &str,
    action: &str,
    result_body: Option<&str>,
    request_id: &str,
) -> String {
    let mut out = format!("<{action}Response xmlns=\"{ns}\">");
    if let Some(body) = result_body {
        let _ = write!(out, "<{action}Result>{body}</{action}Result>");
    }
    out.push_str("<ResponseMetadata>");
    element(&mut out, "RequestId", request_id);
    let _ = write!(out, "</ResponseMetadata></{action}Response>");
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters: how IAM returns policy
/// documents inside its XML (clients decode them with a plain percent-decoder, so a space
/// must be `%20`, never `+`).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        for (input, want) in [
            ("plain", "plain"),
            ("a<b>&c", "a&lt;b&gt;&amp;c"),
            ("\"q\" 'a'", "&quot;q&quot; &apos;a&apos;"),
            ("a\u{1}b\u{7f}c\td", "a\u{fffd}b\u{fffd}c\td"),
        ] {
            assert_eq!(escape(input), want);
        }
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(
            percent_encode("{\"a\": \"b+c/é\"}"),
            "%7B%22a%22%3A%20%22b%2Bc%2F%C3%A9%22%7D"
        );
        assert_eq!(percent_encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn error_response_shape() {
        let xml = error_response_in(STS_NS, "Sender", "AccessDenied", "no <way>", "rid");
        assert_eq!(
            xml,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no &lt;way&gt;</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
        );
    }
}
