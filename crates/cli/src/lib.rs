//! The `irsa` command line: one clap-derive `Args` per subcommand, each calling into the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod input;
mod output;
mod policy;
mod registry;
mod token;

pub use output::Output;

/// Workload identity to registry and AWS credentials on Kubernetes, with zero static keys.
#[derive(Debug, Parser)]
#[command(name = "irsa", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 a check said no (denied, invalid token), 2 bad input."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recognise registries: ECR (every partition, FIPS, dual-stack), ECR Public, Chainguard.
    #[command(subcommand)]
    Registry(registry::Command),
    /// Read web-identity tokens (service-account JWTs) and check them against a JWKS.
    #[command(subcommand)]
    Token(token::Command),
    /// Write IAM trust and ECR pull policies, and explain what a trust policy allows.
    #[command(subcommand)]
    Policy(policy::Command),
}

/// How a command ended, when it did not fail on bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Everything asked for held.
    Ok,
    /// The command ran, and its answer is "no" (a deny, a token that fails verification).
    No,
}

/// Bad input: the message names what was wrong and how to fix it. Exit code 2.
#[derive(Debug)]
pub(crate) struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Registry(cmd) => registry::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
    };
    match result {
        Ok(Verdict::Ok) => ExitCode::SUCCESS,
        Ok(Verdict::No) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
