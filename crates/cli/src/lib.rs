//! The `irsa` command line: one clap-derive `Args` per subcommand, each calling into the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod controller;
#[cfg(feature = "sandbox")]
mod demo;
mod disk_cache;
mod input;
mod install;
#[cfg(feature = "sandbox")]
pub mod lab;
mod login;
mod output;
mod policy;
mod registry;
#[cfg(feature = "sandbox")]
mod sandbox;
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
    /// Registry credentials from workload identity: a dockerconfigjson, or a bare password.
    ///
    /// Exchanges the web-identity token (--token-file / AWS_WEB_IDENTITY_TOKEN_FILE) for the
    /// role (--role-arn / AWS_ROLE_ARN) at STS, then asks each registry for a pull password:
    /// ECR (one call per region, all its accounts at once), ECR Public, Chainguard. Without a
    /// web identity it uses the ambient AWS credentials. Credentials are cached on disk
    /// (mode 0600, $XDG_CACHE_HOME/irsa) until half their lifetime has passed.
    /// Exits 1 when STS or a registry refuses (the message says what to fix), 2 on bad input.
    #[command(after_help = "Examples:\n  \
        irsa login 111122223333.dkr.ecr.us-east-1.amazonaws.com > auth.json && skopeo inspect --authfile auth.json docker://111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1\n  \
        irsa login public.ecr.aws cgr.dev --chainguard-identity <group>/<id>\n  \
        irsa login 111122223333.dkr.ecr.eu-west-1.amazonaws.com -o password | docker login -u AWS --password-stdin 111122223333.dkr.ecr.eu-west-1.amazonaws.com")]
    Login(login::LoginArgs),
    /// The docker credential-helper protocol (also run as `docker-credential-irsa`).
    ///
    /// Set `"credHelpers": {"<registry>": "irsa"}` in ~/.docker/config.json (or containers'
    /// auth.json) with a `docker-credential-irsa` symlink to irsa on PATH.
    #[command(name = "docker-credential")]
    DockerCredential(login::DockerCredentialArgs),
    /// One `username:password` line for Argo CD Image Updater's `ext:` credentials.
    #[command(name = "argocd-credentials")]
    #[command(after_help = "Example (Image Updater registries.conf):\n  \
        credentials: ext:/usr/local/bin/irsa-argocd-ecr.sh   # exec irsa argocd-credentials 111122223333.dkr.ecr.us-east-1.amazonaws.com")]
    ArgocdCredentials(login::ArgocdArgs),
    /// Run the sandbox: a Kubernetes API server, OIDC issuer, STS, ECR, ECR Public, Chainguard
    /// and registry auth on this machine, and write a kubeconfig and an env file for them.
    ///
    /// The API server signs TokenRequest tokens (kubectl create token) with the OIDC issuer's key;
    /// STS verifies them and evaluates each role's trust policy as AWS does, so a wrong `sub`,
    /// `aud` or issuer fails here with the error AWS would give.
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox::SandboxArgs),
    /// Keep registry pull secrets fresh in every namespace that asks (ClusterPullSecret,
    /// PullSecret), from one upstream exchange per identity and registries.
    ///
    /// Refreshes follow the token's real expiry; a failed refresh keeps every written secret and
    /// retries with backoff; secrets irsa does not own are never touched (reported instead).
    Controller(controller::ControllerArgs),
    /// Print the manifests that deploy irsa's controller, as YAML on stdout.
    ///
    /// In apply order: the Namespace, the ClusterPullSecret and PullSecret CRDs, the `irsa`
    /// ServiceAccount, least-privilege RBAC (a ClusterRole for what the controller reconciles,
    /// a Role for its leader-election Lease and credential key; `--watch-namespace` for Roles
    /// only), the controller Deployment (non-root, read-only,
    /// no capabilities) and, with more than one replica, a PodDisruptionBudget. Nothing is sent
    /// to a cluster: pipe the output to kubectl or commit it to a GitOps repository.
    /// Exits 2 on an invalid namespace, image, replica count or role ARN.
    #[command(after_help = install::EXAMPLES, after_long_help = install::after_long_help())]
    Install(install::InstallArgs),
    /// Show the pull-secret controller at work, end to end, in one process: no cluster, no
    /// cloud account.
    ///
    /// Starts the sandbox (Kubernetes API server, OIDC issuer, STS, ECR and, where Debian's
    /// docker-registry is installed, a registry), registers an IAM role for a service account,
    /// labels namespaces, creates one ClusterPullSecret and runs the controller; then verifies,
    /// by reading back through the APIs: the fan-out, a new namespace, a refresh, an STS/ECR
    /// outage, the recovery and (with skopeo) a real pull with a written secret. Exit 0 only
    /// when every step verified, 1 when one did not (it says which and why), 2 on bad input.
    #[cfg(feature = "sandbox")]
    Demo(demo::DemoArgs),
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
    init_logging();
    let cli = Cli::parse_from(args_for_argv0(std::env::args_os().collect()));
    let result = match cli.command {
        Command::Registry(cmd) => registry::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Login(args) => login::login(args),
        Command::DockerCredential(args) => login::docker_credential(args),
        Command::ArgocdCredentials(args) => login::argocd(args),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Install(args) => install::run(args),
        #[cfg(feature = "sandbox")]
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(Verdict::Ok) => ExitCode::SUCCESS,
        Ok(Verdict::No) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", message(&error));
            // 2 is for input the user can fix; anything else that failed is a plain failure.
            if error.chain().any(|e| e.is::<Invalid>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes, each once: most of our errors already quote their source.
fn message(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Run as `docker-credential-irsa get`, irsa is the docker credential helper.
fn args_for_argv0(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if invoked_as.starts_with("docker-credential-") {
        args.insert(1, "docker-credential".into());
    }
    args
}

/// Logs go to stderr only: stdout carries the protocol (credentials, JSON). `IRSA_LOG` is an
/// `EnvFilter` (default `warn`); `IRSA_LOG_FORMAT=json` for JSON lines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IRSA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    if std::env::var("IRSA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        let quoted = anyhow::Error::new(Outer(std::io::Error::other("inner cause")));
        assert_eq!(message(&quoted), "outer: inner cause");
        let context = anyhow::Error::new(std::io::Error::other("inner cause")).context("reading x");
        assert_eq!(message(&context), "reading x: inner cause");
    }

    #[test]
    fn docker_credential_name_dispatches_to_the_helper() {
        let args = args_for_argv0(vec![
            "/usr/local/bin/docker-credential-irsa".into(),
            "get".into(),
        ]);
        assert_eq!(
            args,
            [
                "/usr/local/bin/docker-credential-irsa",
                "docker-credential",
                "get"
            ]
        );
        let args = args_for_argv0(vec!["irsa".into(), "login".into()]);
        assert_eq!(args, ["irsa", "login"]);
    }
}
