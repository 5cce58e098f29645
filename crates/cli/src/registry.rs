//! `irsa registry parse`: what registry an image reference points at.

use clap::{Args, Subcommand};
use irsa_core::registry::{self, ImageRef, Registry};
use serde_json::{Value, json};

use crate::Verdict;
use crate::output::{Output, OutputArgs, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Parse image references or registry hosts and classify their registry.
    ///
    /// Prints, per input: kind (ecr, ecr-public, chainguard, other), host (port kept), repository,
    /// and for ECR the account, region, partition, FIPS and dual-stack flags. Lookalike hosts
    /// (extra labels, 11- or 13-digit accounts, malformed regions, other domains) are never ECR;
    /// a well-formed region irsa does not know yet under AWS's own ECR domains is, with a note.
    /// Exits 2 if any input cannot be parsed (the others are still printed).
    #[command(after_help = "Examples:\n  \
        irsa registry parse 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3\n  \
        irsa registry parse public.ecr.aws/nginx/nginx cgr.dev/chainguard/static --output json")]
    Parse(ParseArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ParseArgs {
    /// Image references (`host/repo:tag@digest`, with an optional `https://` or `oci://`) or hosts.
    #[arg(required = true, value_name = "IMAGE_OR_HOST")]
    inputs: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Verdict> {
    match cmd {
        Command::Parse(args) => parse(args),
    }
}

fn parse(args: ParseArgs) -> anyhow::Result<Verdict> {
    let mut failed = 0usize;
    let mut rows = Vec::with_capacity(args.inputs.len());
    for input in &args.inputs {
        match registry::parse(input) {
            Ok(image) => rows.push(describe(input, &image)),
            Err(error) => {
                failed += 1;
                eprintln!("error: {error}");
                rows.push(json!({ "input": input, "error": error.to_string() }));
            }
        }
    }
    match args.output.output {
        Output::Json => print_json(&Value::Array(rows), false)?,
        Output::Text => {
            for row in rows.iter().filter(|r| r.get("error").is_none()) {
                print_text(row);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(crate::Invalid(format!(
            "{failed} of {} references could not be parsed",
            args.inputs.len()
        )));
    }
    Ok(Verdict::Ok)
}

/// The stable JSON object for one parsed input.
pub(crate) fn describe(input: &str, image: &ImageRef) -> Value {
    let ecr = match &image.registry {
        Registry::Ecr(ecr) => Some(ecr),
        _ => None,
    };
    // A host shaped like ECR that is not ECR deserves the reason: a typo'd account or region
    // otherwise shows up only as failed pulls.
    let note = match &image.registry {
        Registry::Other if looks_like_ecr(&image.host) => registry::parse_ecr_host(&image.host)
            .err()
            .map(|e| format!("not ECR: {e}")),
        Registry::Ecr(e) if irsa_core::partition::validate_region(&e.region).is_err() => {
            Some(format!(
                "region {:?} is not one irsa knows yet: accepted because the host is under AWS's own \
             ECR domain for partition {} (a new region); check the spelling if AWS has no such region",
                e.region, e.partition
            ))
        }
        _ => None,
    };
    json!({
        "input": input,
        "kind": image.registry.kind(),
        "host": image.host,
        "repository": image.repository,
        "tag": image.tag,
        "digest": image.digest,
        "account": ecr.map(|e| &e.account),
        "region": ecr.map(|e| &e.region),
        "partition": ecr.map(|e| e.partition.id()),
        "fips": ecr.map(|e| e.fips),
        "dual_stack": ecr.map(|e| e.dual_stack),
        "note": note,
    })
}

fn looks_like_ecr(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host.contains(".dkr.ecr") || host.contains(".dkr-ecr") || host.contains("ecr.aws")
}

fn print_text(row: &Value) {
    let field = |k: &str| match &row[k] {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        _ => "-".to_owned(),
    };
    println!("{}", field("input"));
    println!("  kind        {}", field("kind"));
    println!("  host        {}", field("host"));
    println!("  repository  {}", field("repository"));
    if row["tag"].is_string() {
        println!("  tag         {}", field("tag"));
    }
    if row["digest"].is_string() {
        println!("  digest      {}", field("digest"));
    }
    if row["kind"] == "ecr" {
        println!("  account     {}", field("account"));
        println!("  region      {}", field("region"));
        println!("  partition   {}", field("partition"));
        println!("  fips        {}", field("fips"));
        println!("  dual-stack  {}", field("dual_stack"));
    }
    if row["note"].is_string() {
        println!("  note        {}", field("note"));
    }
}
