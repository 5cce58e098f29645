//! Small XML writing helpers for the STS Query API (no XML crate needed for output).

use std::fmt::Write as _;

/// The STS XML namespace.
pub(crate) const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

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
            c => out.push(c),
        }
    }
    out
}

/// Appends `<name>escaped text</name>`.
pub(crate) fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

/// The `ErrorResponse` document STS answers with.
pub(crate) fn error_response(kind: &str, code: &str, message: &str, request_id: &str) -> String {
    let mut out = format!("<ErrorResponse xmlns=\"{STS_NS}\"><Error>");
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
    let mut out = format!(
        "<{action}Response xmlns=\"{STS_NS}\"><{action}Result>{result_body}</{action}Result><ResponseMetadata>"
    );
    element(&mut out, "RequestId", request_id);
    let _ = write!(out, "</ResponseMetadata></{action}Response>");
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
        ] {
            assert_eq!(escape(input), want);
        }
    }

    #[test]
    fn error_response_shape() {
        let xml = error_response("Sender", "AccessDenied", "no <way>", "rid");
        assert_eq!(
            xml,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no &lt;way&gt;</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
        );
    }
}
