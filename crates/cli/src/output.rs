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
    if pretty {
        serde_json::to_writer_pretty(&mut out, value)?;
    } else {
        serde_json::to_writer(&mut out, value)?;
    }
    writeln!(out)?;
    Ok(())
}
