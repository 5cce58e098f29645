//! The answers of AWS's Query APIs (IAM, STS): XML read into a small element tree, the error
//! shape, and the form encoding of a request.
//!
//! An answer is untrusted bytes from the network (or from whatever an endpoint URL points at), so
//! [`parse`] is strict and bounded: one root element, matching end tags, no DTD, known entity
//! references only, at most [`MAX_DEPTH`] levels and [`MAX_ELEMENTS`] elements. Attributes and
//! namespace prefixes are not needed by any answer irsa reads and are dropped; element names are
//! local names.
//!
//! ```
//! use irsa_core::aws_xml;
//! let doc = aws_xml::parse(
//!     "<GetRoleResponse><GetRoleResult><Role><RoleName>app</RoleName></Role></GetRoleResult></GetRoleResponse>",
//! )
//! .unwrap();
//! let role = doc.child("GetRoleResult").and_then(|r| r.child("Role")).unwrap();
//! assert_eq!(role.text_of("RoleName"), Some("app"));
//! ```

use std::fmt::Write as _;

use thiserror::Error;
use xmlparser::{ElementEnd, Token, Tokenizer};

/// Deepest nesting [`parse`] accepts (IAM answers nest 5 levels).
pub const MAX_DEPTH: usize = 32;
/// Most elements [`parse`] accepts (a page of 1,000 list members is a few thousand).
pub const MAX_ELEMENTS: usize = 100_000;

/// One XML element: its local name, its text (the concatenation of its text and CDATA
/// children, entities resolved) and its child elements, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The local name (`Role` of `<iam:Role>`).
    pub name: String,
    /// The element's own text.
    pub text: String,
    /// The child elements.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The `member` elements of the list child `name` (`<Name><member>…</member>…</Name>`);
    /// empty when there is no such child.
    pub fn members<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Element> + 'a {
        self.child(name)
            .into_iter()
            .flat_map(|list| list.children.iter().filter(|c| c.name == "member"))
    }

    /// The texts of the `member` elements of the list child `name`.
    pub fn member_texts(&self, name: &str) -> Vec<String> {
        self.members(name).map(|m| m.text.clone()).collect()
    }
}

/// Why bytes are not an XML answer irsa can read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// The text is not well-formed XML.
    #[error("the answer is not well-formed XML: {reason}")]
    Syntax {
        /// What the tokenizer or the tree found (a position, never the text).
        reason: String,
    },
    /// The elements nest deeper than [`MAX_DEPTH`].
    #[error("the answer's XML nests deeper than {MAX_DEPTH} elements")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("the answer's XML holds more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// A DTD, which no AWS answer carries.
    #[error("the answer's XML holds a DTD, which no AWS answer carries")]
    Dtd,
    /// No root element.
    #[error("the answer holds no XML element")]
    Empty,
}

fn syntax(reason: impl Into<String>) -> XmlError {
    XmlError::Syntax {
        reason: reason.into(),
    }
}

/// Reads `text` into its root [`Element`].
pub fn parse(text: &str) -> Result<Element, XmlError> {
    // Open elements, with their qualified names for the end-tag check.
    let mut stack: Vec<(Element, String)> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    for token in Tokenizer::from(text) {
        let token = token.map_err(|e| syntax(e.to_string()))?;
        match token {
            Token::ElementStart { prefix, local, .. } => {
                if root.is_some() {
                    return Err(syntax("a second root element"));
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let qualified = if prefix.is_empty() {
                    local.as_str().to_owned()
                } else {
                    format!("{}:{}", prefix.as_str(), local.as_str())
                };
                stack.push((
                    Element {
                        name: local.as_str().to_owned(),
                        ..Element::default()
                    },
                    qualified,
                ));
            }
            Token::ElementEnd { end, span } => {
                let closed = match end {
                    ElementEnd::Open => continue,
                    ElementEnd::Empty => stack.pop().map(|(el, _)| el),
                    ElementEnd::Close(prefix, local) => {
                        let Some((el, qualified)) = stack.pop() else {
                            return Err(syntax(format!(
                                "an end tag without a start tag at byte {}",
                                span.start()
                            )));
                        };
                        let matches = if prefix.is_empty() {
                            qualified == local.as_str()
                        } else {
                            qualified
                                .split_once(':')
                                .is_some_and(|(p, l)| p == prefix.as_str() && l == local.as_str())
                        };
                        if !matches {
                            return Err(syntax(format!(
                                "the end tag at byte {} does not match its start tag",
                                span.start()
                            )));
                        }
                        Some(el)
                    }
                };
                let Some(el) = closed else {
                    return Err(syntax(format!(
                        "an end tag without a start tag at byte {}",
                        span.start()
                    )));
                };
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Token::Text { text } => match stack.last_mut() {
                Some((el, _)) => {
                    // Only the new piece is checked: rescanning the whole text after each piece
                    // would make many small pieces quadratic.
                    let from = el.text.len();
                    unescape_into(text.as_str(), &mut el.text)?;
                    check_chars(&el.text[from..])?;
                }
                None if text.as_str().trim().is_empty() => {}
                None => {
                    return Err(syntax(format!(
                        "text outside the root element at byte {}",
                        text.start()
                    )));
                }
            },
            Token::Cdata { text, span } => match stack.last_mut() {
                Some((el, _)) => {
                    check_chars(text.as_str())?;
                    el.text.push_str(text.as_str());
                }
                None => {
                    return Err(syntax(format!(
                        "CDATA outside the root element at byte {}",
                        span.start()
                    )));
                }
            },
            Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => return Err(XmlError::Dtd),
            Token::Attribute { .. }
            | Token::Declaration { .. }
            | Token::ProcessingInstruction { .. }
            | Token::Comment { .. } => {}
        }
    }
    if !stack.is_empty() {
        return Err(syntax("the answer ends inside an element"));
    }
    root.ok_or(XmlError::Empty)
}

/// XML 1.0's `Char`: no NUL, no control character but tab, newline and carriage return, no
/// U+FFFE or U+FFFF (surrogates cannot be a `char`).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn check_chars(text: &str) -> Result<(), XmlError> {
    if text.chars().all(is_xml_char) {
        Ok(())
    } else {
        Err(syntax(
            "a character XML does not allow (a control character or U+FFFE/U+FFFF)",
        ))
    }
}

/// Appends `raw` to `out` with the five predefined entities and character references resolved.
fn unescape_into(raw: &str, out: &mut String) -> Result<(), XmlError> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            return Err(syntax("an '&' that starts no entity reference"));
        };
        let entity = &after[..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| syntax("an unknown entity reference"))?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// The code and message of a Query API error answer: `<ErrorResponse><Error><Code>…` (IAM, STS)
/// or `<Response><Errors><Error><Code>…` (EC2's shape, which some proxies answer with). `None`
/// when `root` is neither.
pub fn query_error(root: &Element) -> Option<(Option<&str>, Option<&str>)> {
    let error = match root.name.as_str() {
        "ErrorResponse" => root.child("Error")?,
        "Response" => root.child("Errors")?.child("Error")?,
        _ => return None,
    };
    let code = error
        .text_of("Code")
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let message = error
        .text_of("Message")
        .map(str::trim)
        .filter(|m| !m.is_empty());
    Some((code, message))
}

/// `application/x-www-form-urlencoded` text of `pairs`, every byte outside RFC 3986's
/// unreserved set percent-encoded (what the SDKs send, and what SigV4 signs).
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(name, &mut out);
        out.push('=');
        percent_encode_into(value, &mut out);
    }
    out
}

fn percent_encode_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fuzz target's writer (fuzz/fuzz_targets/aws_query_xml.rs): text first, then children.
    fn write(el: &Element, out: &mut String) {
        out.push('<');
        out.push_str(&el.name);
        out.push('>');
        for c in el.text.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '&' => out.push_str("&amp;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        for child in &el.children {
            write(child, out);
        }
        out.push_str("</");
        out.push_str(&el.name);
        out.push('>');
    }

    proptest! {
        /// Answers made of the pieces real ones (and broken ones) hold: never a panic, and a
        /// tree that parses is written back out to a text that parses to the same tree.
        #[test]
        fn a_parsed_tree_survives_being_written_back(pieces in proptest::collection::vec(
            prop::sample::select(vec![
                "<a>", "</a>", "<b/>", "<p:c>", "</p:c>", "<d x=\"1\">", "</d>", "text", " ",
                "\r\n", "&amp;", "&#13;", "&#0;", "&lt;", "<![CDATA[<&]]>", "]]>", ">",
                "<?xml version=\"1.0\"?>", "<!-- c -->", "<!DOCTYPE a>", "&", "é", "\u{1}",
            ]),
            0..24,
        )) {
            let text: String = pieces.concat();
            if let Ok(root) = parse(&text) {
                let mut again = String::new();
                write(&root, &mut again);
                let reparsed = parse(&again);
                prop_assert_eq!(reparsed.as_ref(), Ok(&root), "{}", again);
            }
        }
    }

    #[test]
    fn an_iam_answer_reads_into_a_tree() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<GetOpenIDConnectProviderResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <GetOpenIDConnectProviderResult><Url>o.example/id/X</Url>\
             <ClientIDList><member>sts.amazonaws.com</member><member>a&amp;b</member></ClientIDList>\
             <ThumbprintList/></GetOpenIDConnectProviderResult>\
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetOpenIDConnectProviderResponse>",
        )
        .unwrap();
        assert_eq!(doc.name, "GetOpenIDConnectProviderResponse");
        let result = doc.child("GetOpenIDConnectProviderResult").unwrap();
        assert_eq!(result.text_of("Url"), Some("o.example/id/X"));
        assert_eq!(
            result.member_texts("ClientIDList"),
            ["sts.amazonaws.com", "a&b"]
        );
        assert!(result.member_texts("ThumbprintList").is_empty());
        assert!(result.member_texts("Absent").is_empty());
    }

    #[test]
    fn entities_and_cdata_become_text() {
        let doc = parse("<a>&lt;&#65;&#x42;&quot;&apos;&gt;<![CDATA[<&>]]></a>").unwrap();
        assert_eq!(doc.text, "<AB\"'><&>");
    }

    #[test]
    fn prefixed_names_read_as_local_names() {
        let doc = parse("<p:a xmlns:p=\"u\"><p:b>x</p:b></p:a>").unwrap();
        assert_eq!(doc.text_of("b"), Some("x"));
    }

    #[test]
    fn malformed_answers_are_refused() {
        for bad in [
            "",
            "   ",
            "no xml",
            "<a>",
            "<a></b>",
            "<a></p:a>",
            "<a/><b/>",
            "<a/>trailing",
            "</a>",
            "<a>&unknown;</a>",
            "<a>&#xD800;</a>",
            "<a>&#0;</a>",
            "<a>&#x1B;</a>",
            "<a>\u{1}</a>",
            "<a>& b</a>",
            "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(XmlError::TooDeep));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(&wide), Err(XmlError::TooManyElements));
    }

    /// Review M1: an answer of many small text pieces (text split by comments) parses in linear
    /// time. Rescanning the element's whole text after each piece took about 3·10¹⁰ character
    /// checks for this 1 MiB answer; the bound below is a hundred times what a linear parse needs
    /// on a loaded machine.
    #[test]
    fn many_text_pieces_parse_in_linear_time() {
        let answer = format!(
            "<a>{}{}</a>",
            "x".repeat(512 * 1024),
            "x<!---->".repeat(65_000)
        );
        let started = std::time::Instant::now();
        let parsed = parse(&answer).unwrap();
        assert_eq!(parsed.text.len(), 512 * 1024 + 65_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn both_error_shapes_give_code_and_message() {
        let iam = parse(
            "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code>\
             <Message>The role with name app cannot be found.</Message></Error></ErrorResponse>",
        )
        .unwrap();
        assert_eq!(
            query_error(&iam),
            Some((
                Some("NoSuchEntity"),
                Some("The role with name app cannot be found.")
            ))
        );
        let ec2 =
            parse("<Response><Errors><Error><Code>Throttling</Code></Error></Errors></Response>")
                .unwrap();
        assert_eq!(query_error(&ec2), Some((Some("Throttling"), None)));
        assert_eq!(query_error(&parse("<GetRoleResponse/>").unwrap()), None);
    }

    #[test]
    fn forms_encode_every_reserved_byte() {
        assert_eq!(
            form_encode([("Action", "GetRole"), ("RoleName", "a b/+é&=")]),
            "Action=GetRole&RoleName=a%20b%2F%2B%C3%A9%26%3D"
        );
    }
}
