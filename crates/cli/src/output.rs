//! `--output text|json`: text for people, JSON (stable field names) for scripts.

use std::io::Write;

use clap::{Args, ValueEnum};

/// Output format shared by every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON with stable field names, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Output format: text for people, json for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t, env = "IRSA_OUTPUT")]
    pub output: Output,
}

/// Prints a JSON value followed by a newline, pretty for text mode and compact for scripts.
pub(crate) fn print_json(value: &serde_json::Value, pretty: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write_json(&mut out, value, pretty)?;
    Ok(())
}

/// [`print_json`] to `out`. Characters that change how text looks without being seen (C0 and
/// C1 controls, bidi overrides, zero-width and other format characters: much of what irsa
/// reports was written by a tenant) are written as `\uXXXX` escapes, so the JSON is safe to
/// show as it is and decodes to the same strings.
pub(crate) fn write_json(
    out: &mut impl Write,
    value: &serde_json::Value,
    pretty: bool,
) -> std::io::Result<()> {
    use serde::Serialize as _;
    if pretty {
        let mut ser = serde_json::Serializer::with_formatter(
            &mut *out,
            Escaping(serde_json::ser::PrettyFormatter::new()),
        );
        value.serialize(&mut ser).map_err(std::io::Error::other)?;
    } else {
        let mut ser = serde_json::Serializer::with_formatter(
            &mut *out,
            Escaping(serde_json::ser::CompactFormatter),
        );
        value.serialize(&mut ser).map_err(std::io::Error::other)?;
    }
    writeln!(out)
}

/// A formatter that escapes [`crate::doctor::is_invisible`] characters serde_json leaves as
/// they are (it escapes only those below U+0020).
struct Escaping<F>(F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Escaping<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if crate::doctor::is_invisible(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // Everything else as the wrapped formatter writes it.
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review (pull-secret) L6: a tenant's bidi override or C1 control reaches `-o json`
    /// escaped, and the JSON still decodes to the same string.
    #[test]
    fn invisible_characters_are_escaped_in_json_and_decode_the_same() {
        let value = serde_json::json!({"summary": "ok \u{202e}txt.exe \u{9b}31m \u{1b}[2J \u{200b} café ✓ \u{e0041}", "n": [1, "\u{2028}"]});
        for pretty in [false, true] {
            let mut out = Vec::new();
            write_json(&mut out, &value, pretty).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text
                    .chars()
                    .any(|c| c != '\n' && crate::doctor::is_invisible(c)),
                "{text:?}"
            );
            assert!(
                text.contains("\\u202e") && text.contains("\\u009b"),
                "{text}"
            );
            assert!(text.contains("\\udb40\\udc41"), "a surrogate pair: {text}");
            assert!(text.contains("café ✓"), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
    }
}
