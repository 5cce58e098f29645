//! The `irsa` command line: one clap-derive `Args` per subcommand, each calling into the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod controller;
mod credential_provider;
#[cfg(feature = "sandbox")]
mod demo;
mod doctor;
mod iam;
mod input;
mod install;
mod login;
mod output;
mod policy;
mod registry;
#[cfg(feature = "sandbox")]
mod sandbox;
mod shell;
mod token;
mod webhook;

pub use output::Output;

/// Workload identity to registry and AWS credentials on Kubernetes, with zero static keys.
#[derive(Debug, Parser)]
#[command(name = "irsa", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 a check said no (denied, invalid token), 2 bad input.\n\n\
    Logs go to stderr. IRSA_LOG sets the filter (default warn; e.g. info, debug, irsa_controller=trace),\n\
    IRSA_LOG_FORMAT=json writes JSON lines. Dependencies are capped whatever IRSA_LOG says, because\n\
    their verbose logs carry secrets: the AWS SDK (aws_smithy_*, aws_sigv4, ...), hyper, h2, rustls\n\
    and tower at debug (at trace the AWS SDK dumps response bodies: registry passwords, and with\n\
    LOG_SENSITIVE_BODIES=true STS tokens and credentials), kube_client::client at error (it logs\n\
    unparsable response bodies, e.g. Secrets, at warn). IRSA_LOG_UNSAFE_DEPENDENCIES=1 lifts the\n\
    cap, for debugging a dependency on a machine whose logs nobody else reads."
)]
struct Cli<C: Subcommand> {
    #[command(subcommand)]
    command: C,
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
    /// Set up the AWS side: the IAM OIDC provider, a role and its ECR pull permissions
    /// (`irsa iam setup`), or what Chainguard needs to trust a role (`irsa iam chainguard`).
    #[command(subcommand)]
    Iam(iam::Command),
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
    /// Find the broken link of a service account's trust chain: Kubernetes, IAM, STS, ECR.
    ///
    /// Walks the chain a workload's pull depends on, in order: the service account and its
    /// eks.amazonaws.com/role-arn annotation, the cluster's OIDC issuer and keys, a TokenRequest
    /// token, the IAM OIDC provider and its client IDs, the role, its trust policy (evaluated
    /// as STS does against the token's real claims), its permissions, then the real
    /// AssumeRoleWithWebIdentity and ECR GetAuthorizationToken. Prints a tree of checks
    /// (✓ pass, ✗ fail, – skipped because a link it needs failed); every failing check says
    /// what it expected against what it found, and the command or policy that fixes it.
    /// With --trust-policy and --token it runs the trust checks offline.
    #[command(after_help = doctor::EXAMPLES)]
    Doctor(doctor::DoctorArgs),
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
    /// The pod identity webhook: IRSA on any cluster, a drop-in for
    /// amazon-eks-pod-identity-webhook (same annotations, flags, ConfigMap and resulting pods).
    Webhook(Box<webhook::WebhookArgs>),
    #[command(flatten)]
    Kubelet(KubeletCommand),
}

// The subcommand the kubelet starts once per image pull. `main` parses it without the rest of
// the tree when it is `argv[1]`: building every subcommand's parser is most of what a warm,
// cached pull costs. Flattened into `Command`, so `irsa --help` lists it as before. (A plain
// comment: clap would take a doc comment here as the whole program's description.)
#[derive(Debug, Subcommand)]
enum KubeletCommand {
    /// The kubelet's image credential provider: a CredentialProviderRequest on stdin, the
    /// registry credential on stdout (ECR, ECR Public, Chainguard; the pod's own role from its
    /// service-account token, KEP-4412).
    #[command(name = "credential-provider")]
    CredentialProvider(credential_provider::CredentialProviderArgs),
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
    let args = args_for_argv0(std::env::args_os().collect());
    let result = if args.get(1).is_some_and(|a| a == KUBELET_SUBCOMMAND) {
        run_kubelet(Cli::<KubeletCommand>::parse_from(args).command)
    } else {
        run(Cli::<Command>::parse_from(args).command)
    };
    exit_code(result)
}

/// The name of [`KubeletCommand`]'s one subcommand.
const KUBELET_SUBCOMMAND: &str = "credential-provider";

fn run_kubelet(command: KubeletCommand) -> anyhow::Result<Verdict> {
    match command {
        KubeletCommand::CredentialProvider(args) => credential_provider::run(args),
    }
}

fn run(command: Command) -> anyhow::Result<Verdict> {
    match command {
        Command::Registry(cmd) => registry::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Iam(cmd) => iam::run(cmd),
        Command::Login(args) => login::login(args),
        Command::DockerCredential(args) => login::docker_credential(args),
        Command::ArgocdCredentials(args) => login::argocd(args),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Install(args) => install::run(args),
        #[cfg(feature = "sandbox")]
        Command::Demo(args) => demo::run(args),
        Command::Webhook(args) => webhook::run(*args),
        Command::Kubelet(command) => run_kubelet(command),
    }
}

fn exit_code(result: anyhow::Result<Verdict>) -> ExitCode {
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
/// `EnvFilter` (default `warn`); `IRSA_LOG_FORMAT=json` for JSON lines. Whatever `IRSA_LOG`
/// says, [`dependency_cap`] applies too, unless `IRSA_LOG_UNSAFE_DEPENDENCIES=1`.
fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let unsafe_dependencies = std::env::var_os(UNSAFE_DEPENDENCIES_ENV).is_some_and(|v| v == "1");
    let cap = dependency_cap(unsafe_dependencies);
    // Unset (as the kubelet runs the credential provider), `warn` needs no `EnvFilter`: a level
    // is what it would build, without its per-callsite and per-span bookkeeping.
    let filter: Box<dyn tracing_subscriber::layer::Filter<_> + Send + Sync> =
        match log_directives(std::env::var_os("IRSA_LOG").as_deref()) {
            Ok(None) => Box::new(tracing_subscriber::filter::LevelFilter::WARN.and(cap)),
            Ok(Some(directives)) => {
                let filter =
                    tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
                        eprintln!("{}", bad_log_filter(&directives, &e.to_string()));
                        tracing_subscriber::EnvFilter::new("warn")
                    });
                Box::new(filter.and(cap))
            }
            Err(message) => {
                eprintln!("{message}");
                Box::new(tracing_subscriber::filter::LevelFilter::WARN.and(cap))
            }
        };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry();
    if std::env::var("IRSA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        registry.with(layer.json().with_filter(filter)).init();
    } else {
        registry.with(layer.with_filter(filter)).init();
    }
    if unsafe_dependencies {
        tracing::warn!(
            "{UNSAFE_DEPENDENCIES_ENV}=1: dependency logs are not capped; at trace level they \
             include request and response bodies (tokens, credentials, passwords)"
        );
    }
}

/// Lifts [`dependency_cap`] (documented in `--help`).
const UNSAFE_DEPENDENCIES_ENV: &str = "IRSA_LOG_UNSAFE_DEPENDENCIES";

/// The most verbose level each dependency may log at, whatever `IRSA_LOG` says, because more
/// verbose events carry secrets:
/// - `aws_smithy_runtime` logs every response body at trace: ECR's `authorizationToken` (the
///   registry password, base64) in plain text, and the STS bodies (web-identity token, session
///   credentials) too once `LOG_SENSITIVE_BODIES=true` is set; `aws_sigv4` logs the request it
///   signs at trace. All AWS crates are capped at debug.
/// - `kube_client::client` logs a response body it cannot parse at warn, and response headers
///   and error bodies at trace and debug (Secrets and TokenRequests carry credentials): capped
///   at error. kube's other modules (config) are capped at debug.
/// - hyper, h2, rustls and tower redact bodies and header values today; their trace output is
///   wire-level and changes between releases, so it is capped at debug too.
///
/// A separate filter rather than directives in the `EnvFilter`: there a more specific target
/// in `IRSA_LOG` (`aws_smithy_runtime::client::orchestrator=trace`) would win over the cap.
/// The filter directives `IRSA_LOG` holds: `None` for unset or empty (the default, `warn`: an
/// empty value must not switch off the warnings), an error line for a value that is not UTF-8.
fn log_directives(value: Option<&std::ffi::OsStr>) -> Result<Option<String>, String> {
    match value.map(|v| v.to_str()) {
        None => Ok(None),
        Some(Some(v)) if v.trim().is_empty() => Ok(None),
        Some(Some(v)) => Ok(Some(v.to_owned())),
        Some(None) => Err(bad_log_filter(
            &value.unwrap_or_default().to_string_lossy(),
            "not UTF-8",
        )),
    }
}

fn bad_log_filter(value: &str, reason: &str) -> String {
    format!(
        "irsa: IRSA_LOG={value:?} is not a log filter ({reason}); logging at warn. Give a level \
         (IRSA_LOG=debug) or directives (IRSA_LOG=irsa_controller=debug,warn)"
    )
}

fn dependency_cap(lifted: bool) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let targets = Targets::new().with_default(LevelFilter::TRACE);
    if lifted {
        return targets;
    }
    targets.with_targets([
        ("aws_config", LevelFilter::DEBUG),
        ("aws_credential_types", LevelFilter::DEBUG),
        ("aws_runtime", LevelFilter::DEBUG),
        ("aws_sdk", LevelFilter::DEBUG),
        ("aws_sigv4", LevelFilter::DEBUG),
        ("aws_smithy", LevelFilter::DEBUG),
        ("kube_client", LevelFilter::DEBUG),
        ("kube_client::client", LevelFilter::ERROR),
        ("hyper", LevelFilter::DEBUG),
        ("h2", LevelFilter::DEBUG),
        ("rustls", LevelFilter::DEBUG),
        ("tokio_rustls", LevelFilter::DEBUG),
        ("tower", LevelFilter::DEBUG),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_irsa_log_is_the_default_and_a_bad_one_is_said() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt as _;
        assert_eq!(super::log_directives(None), Ok(None));
        assert_eq!(super::log_directives(Some(OsStr::new(""))), Ok(None));
        assert_eq!(super::log_directives(Some(OsStr::new("  "))), Ok(None));
        assert_eq!(
            super::log_directives(Some(OsStr::new("irsa=debug"))),
            Ok(Some("irsa=debug".to_owned()))
        );
        let err = super::log_directives(Some(OsStr::from_bytes(b"\xff"))).unwrap_err();
        assert!(
            err.contains("not UTF-8") && err.contains("IRSA_LOG=debug"),
            "{err}"
        );
    }

    use super::*;

    #[test]
    fn the_dependency_cap_holds_against_specific_directives() {
        use tracing::Level;
        use tracing_subscriber::filter::Targets;
        let cap = dependency_cap(false);
        let allows = |cap: &Targets, target: &str, level: Level| cap.would_enable(target, &level);
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_smithy_runtime_api::client::interceptors",
            "aws_smithy_http_client::client",
            "aws_sigv4::http_request::sign",
            "aws_config::web_identity_token",
            "aws_sdk_sts::operation",
            "hyper::proto::h1::io",
            "hyper_util::client::legacy",
            "h2::codec::framed_write",
            "rustls::conn",
            "tower::buffer::worker",
            "kube_client::config",
        ] {
            assert!(!allows(&cap, target, Level::TRACE), "{target} at trace");
            assert!(allows(&cap, target, Level::DEBUG), "{target} at debug");
        }
        for level in [Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(!allows(&cap, "kube_client::client", level), "{level}");
        }
        assert!(allows(&cap, "kube_client::client", Level::ERROR));
        for ours in [
            "irsa_controller::reconcile",
            "irsa_aws::sts",
            "irsa",
            "kube_runtime::controller",
        ] {
            assert!(allows(&cap, ours, Level::TRACE), "{ours} is not capped");
        }
        let lifted = dependency_cap(true);
        assert!(allows(
            &lifted,
            "aws_smithy_runtime::client::orchestrator",
            Level::TRACE
        ));
        assert!(allows(&lifted, "kube_client::client", Level::WARN));
    }

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
