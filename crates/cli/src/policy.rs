//! `irsa policy trust | ecr-pull | check`: write the IAM policies irsa needs, and explain a trust
//! policy's decision for a given token the way STS would make it.

use clap::{ArgGroup, Args, Subcommand};
use irsa_core::arn::{self, EcrRepositoryArn, OidcProviderArn};
use irsa_core::partition::Partition;
use irsa_core::registry::{self, Registry};
use irsa_core::time::rfc3339;
use irsa_core::token;
use irsa_core::trust_policy::{self, PolicyDocument, RequestContext};
use serde_json::{Value, json};

use crate::input::read_text;
use crate::output::{Output, OutputArgs, print_json};
use crate::{Invalid, Verdict};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the trust policy that lets one service account (or a wildcard, or an Argo CD project's) assume a role.
    #[command(after_help = "Examples:\n  \
        irsa policy trust --issuer https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE \\\n      \
        --service-account prod/app --account 111122223333 > trust.json\n  \
        aws iam create-role --role-name app --assume-role-policy-document file://trust.json\n  \
        irsa policy trust --issuer https://issuer.example.com --service-account 'ci/runner-*'\n  \
        # Argo CD workload identity: the role of project production (argocd/argocd-project-production)\n  \
        irsa policy trust --issuer https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE \\\n      \
        --argocd-project production --account 111122223333 > trust.json")]
    #[command(group(ArgGroup::new("identity").required(true).args(["service_account", "argocd_project"])))]
    Trust(TrustArgs),
    /// Print the least-privilege permissions policy for pulling from ECR repositories.
    #[command(name = "ecr-pull")]
    #[command(after_help = "Examples:\n  \
        irsa policy ecr-pull --repository arn:aws:ecr:us-east-1:111122223333:repository/team/app\n  \
        irsa policy ecr-pull --repository 111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/*\n  \
        # Argo CD Image Updater (and Argo CD for a chart version range) also lists tags\n  \
        irsa policy ecr-pull --repository 111122223333.dkr.ecr.us-east-1.amazonaws.com/charts/* --list-tags")]
    EcrPull(EcrPullArgs),
    /// Decide, as STS would, whether a token may assume a role with this trust policy, and why.
    ///
    /// Evaluates the trust policy for sts:AssumeRoleWithWebIdentity with the token's claims as
    /// the condition keys (<issuer host/path>:sub, :aud, …). Every statement gets a reason naming
    /// the exact principal, action or condition that did not match, expected against actual.
    /// The token's signature is not verified here (see `irsa token inspect --jwks`); its issuer
    /// and expiry are checked, since STS refuses a token from another issuer or an expired one.
    /// Exits 0 on allow, 1 on deny, 2 on invalid input.
    #[command(after_help = "Examples:\n  \
        irsa policy check --trust-policy trust.json --token token.jwt \\\n      \
        --provider-arn arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\n  \
        aws iam get-role --role-name app --query Role.AssumeRolePolicyDocument > trust.json\n  \
        kubectl create token app -n prod --audience sts.amazonaws.com | \\\n      \
        irsa policy check --trust-policy trust.json --token - --issuer https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE")]
    #[command(group(ArgGroup::new("provider").required(true).args(["provider_arn", "issuer"])))]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    /// The cluster's OIDC issuer URL (on EKS: `aws eks describe-cluster --query cluster.identity.oidc.issuer`).
    #[arg(long, value_name = "URL", env = "IRSA_ISSUER")]
    issuer: String,
    /// The service account as NAMESPACE/NAME, e.g. `prod/app`; NAME may use `*` and `?` (then
    /// StringLike is used), e.g. `ci/runner-*`.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    service_account: Option<String>,
    /// Instead of --service-account: the Argo CD project whose repositories use this role, as in
    /// Argo CD's workload-identity guide. The service account is then
    /// ARGOCD_NAMESPACE/argocd-project-PROJECT, e.g. `--argocd-project production` trusts
    /// argocd/argocd-project-production.
    #[arg(long, value_name = "PROJECT")]
    argocd_project: Option<String>,
    /// The namespace Argo CD runs in, where the project's service account is (with
    /// --argocd-project; default: argocd), e.g. `--argocd-project production --argocd-namespace gitops`.
    // Not `default_value`: clap does not enforce `requires` on an argument with a default. And
    // `conflicts_with`: clap waives `requires` of an argument in conflict with one present
    // (--service-account conflicts with --argocd-project through the group).
    #[arg(
        long,
        value_name = "NAMESPACE",
        requires = "argocd_project",
        conflicts_with = "service_account"
    )]
    argocd_namespace: Option<String>,
    /// The audience the token is requested with.
    #[arg(long, value_name = "AUD", default_value = irsa_core::names::STS_AUDIENCE)]
    audience: String,
    /// The AWS account that holds the IAM OIDC provider. Without it, the principal reads
    /// ACCOUNT_ID: replace it before creating the role.
    #[arg(long, value_name = "ID", env = "IRSA_ACCOUNT")]
    account: Option<String>,
    /// The partition of that account (aws, aws-cn, aws-us-gov, …). Default: from an EKS issuer's region, else aws.
    #[arg(long, value_name = "PARTITION")]
    partition: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct EcrPullArgs {
    /// An ECR repository ARN (`arn:aws:ecr:REGION:ACCOUNT:repository/NAME`, NAME may end in `*`)
    /// or an ECR image reference (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`).
    #[arg(long, required = true, value_name = "ARN|IMAGE")]
    repository: Vec<String>,
    /// Also allow listing the repositories' tags through the registry API (`ecr:ListImages`), as
    /// Argo CD Image Updater does, and Argo CD itself for an OCI Helm chart whose targetRevision
    /// is a version range (`1.*`, `>=1.2.0 <2.0.0`), e.g.
    /// `--repository 111122223333.dkr.ecr.us-east-1.amazonaws.com/charts/* --list-tags`.
    #[arg(long)]
    list_tags: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The role's trust policy (AssumeRolePolicyDocument) as JSON, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    trust_policy: String,
    /// The web-identity token (a service-account JWT), or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    token: String,
    /// The IAM OIDC provider ARN the token is presented as (STS's ProviderId for this issuer).
    #[arg(long, value_name = "ARN")]
    provider_arn: Option<String>,
    /// The issuer URL, when the provider's account is not known: the Federated principal is then
    /// matched on the provider path in any account.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The role session name the caller would send (sets sts:RoleSessionName).
    #[arg(long, value_name = "NAME")]
    session_name: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Verdict> {
    match cmd {
        Command::Trust(args) => trust(args),
        Command::EcrPull(args) => ecr_pull(args),
        Command::Check(args) => check(args),
    }
}

fn invalid(e: impl std::fmt::Display) -> Invalid {
    Invalid(e.to_string())
}

fn trust(args: TrustArgs) -> anyhow::Result<Verdict> {
    let (namespace, name) = match (&args.service_account, &args.argocd_project) {
        (Some(service_account), _) => service_account_flag(service_account)?,
        (None, Some(project)) => argocd_project_service_account(
            project,
            args.argocd_namespace
                .as_deref()
                .unwrap_or(DEFAULT_ARGOCD_NAMESPACE),
        )?,
        (None, None) => unreachable!("clap requires --service-account or --argocd-project"),
    };
    let (namespace, name) = (namespace.as_str(), name.as_str());
    let provider = arn::issuer_host_path(&args.issuer).map_err(invalid)?;
    let partition = match &args.partition {
        Some(p) => Partition::from_id(p).ok_or_else(|| {
            Invalid(format!(
                "--partition {p:?} is not a partition; use one of {}",
                Partition::ALL.map(|p| p.id()).join(", ")
            ))
        })?,
        None => partition_of_issuer(&provider),
    };
    let account = match &args.account {
        Some(a) => {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(
                    Invalid(format!("--account {a:?} must be a 12-digit AWS account id")).into(),
                );
            }
            a.clone()
        }
        None => {
            eprintln!(
                "note: no --account given: replace ACCOUNT_ID in Principal.Federated with the account that holds the IAM OIDC provider"
            );
            "ACCOUNT_ID".to_owned()
        }
    };
    let provider_arn = format!(
        "arn:{}:iam::{account}:oidc-provider/{provider}",
        partition.id()
    );
    if args.audience.is_empty() {
        return Err(Invalid("--audience must not be empty".to_owned()).into());
    }
    let policy = trust_policy::service_account_trust_policy(
        &provider_arn,
        &provider,
        namespace,
        name,
        &args.audience,
    );
    print_json(&policy, args.output.output == Output::Text)?;
    Ok(Verdict::Ok)
}

/// `--service-account NAMESPACE/NAME`, checked.
pub(crate) fn service_account_flag(service_account: &str) -> anyhow::Result<(String, String)> {
    if service_account.contains('\"') {
        return Err(Invalid("--service-account must not contain quotes".to_owned()).into());
    }
    let (namespace, name) = service_account.split_once('/').ok_or_else(|| {
        Invalid(format!(
            "--service-account {service_account:?} must be NAMESPACE/NAME, e.g. prod/app"
        ))
    })?;
    validate_name_pattern("namespace", namespace, 63)?;
    validate_name_pattern("name", name, 253)?;
    if namespace.contains(['*', '?']) {
        return Err(Invalid(
            "--service-account: wildcards are allowed in the name only, not the namespace (a role should not be open to every namespace)"
                .to_owned(),
        )
        .into());
    }
    Ok((namespace.to_owned(), name.to_owned()))
}

/// Where Argo CD is installed unless `--argocd-namespace` says otherwise.
pub(crate) const DEFAULT_ARGOCD_NAMESPACE: &str = "argocd";

/// `--argocd-project P` (and `--argocd-namespace`): the service account Argo CD's workload
/// identity uses for project P, `<namespace>/argocd-project-P`. P is an AppProject name (a
/// DNS-1123 subdomain) short enough that the service account's name is one too.
pub(crate) fn argocd_project_service_account(
    project: &str,
    namespace: &str,
) -> anyhow::Result<(String, String)> {
    const MAX: usize = 253 - trust_policy::ARGOCD_PROJECT_SERVICE_ACCOUNT_PREFIX.len();
    let name = trust_policy::argocd_project_service_account(project);
    if let Some(problem) = dns1123_problem(project, MAX, true) {
        return Err(Invalid(format!(
            "--argocd-project {project:?} is not an Argo CD project name: it {problem}; the service account {name:?} must be a Kubernetes name, so the project is 1-{MAX} lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
        ))
        .into());
    }
    if let Some(problem) = dns1123_problem(namespace, 63, false) {
        return Err(Invalid(format!(
            "--argocd-namespace {namespace:?} is not a namespace name: it {problem}; a namespace is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
        .into());
    }
    Ok((namespace.to_owned(), name))
}

/// What makes `value` not a DNS-1123 subdomain (`dots`) or label of at most `max` characters.
fn dns1123_problem(value: &str, max: usize, dots: bool) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".to_owned());
    }
    if value.len() > max {
        return Some(format!("is {} characters, more than {max}", value.len()));
    }
    let labels: Vec<&str> = if dots {
        value.split('.').collect()
    } else {
        vec![value]
    };
    labels.into_iter().find_map(|label| {
        if label.is_empty() {
            return Some("has an empty part between dots".to_owned());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Some(format!("contains {c:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("starts or ends with '-'".to_owned());
        }
        None
    })
}

/// EKS issuers name their region (oidc.eks.<region>.amazonaws.com…); others default to aws.
fn partition_of_issuer(provider: &str) -> Partition {
    eks_issuer_partition(provider).unwrap_or(Partition::Aws)
}

/// The partition an EKS issuer's host names (oidc.eks.<region>.amazonaws.com…), if it is one.
pub(crate) fn eks_issuer_partition(provider: &str) -> Option<Partition> {
    let host = provider.split('/').next().unwrap_or_default();
    host.strip_prefix("oidc.eks.")
        .and_then(|rest| rest.split('.').next())
        .and_then(Partition::from_region)
}

fn validate_name_pattern(what: &str, value: &str, max: usize) -> anyhow::Result<()> {
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '*' | '?')
    };
    if value.is_empty() || value.len() > max || !value.chars().all(ok_char) {
        return Err(Invalid(format!(
            "--service-account: the {what} {value:?} must be 1-{max} lowercase letters, digits, '-' or '.' (wildcards * and ? in the name)"
        ))
        .into());
    }
    Ok(())
}

fn ecr_pull(args: EcrPullArgs) -> anyhow::Result<Verdict> {
    let arns: Vec<String> = repository_arns(&args.repository)?
        .iter()
        .map(ToString::to_string)
        .collect();
    print_json(
        &trust_policy::ecr_pull_policy(&arns, args.list_tags),
        args.output.output == Output::Text,
    )?;
    Ok(Verdict::Ok)
}

/// `--repository` values (ARNs or ECR image references) as repository ARNs, in order, each once.
pub(crate) fn repository_arns(inputs: &[String]) -> anyhow::Result<Vec<EcrRepositoryArn>> {
    let mut arns: Vec<EcrRepositoryArn> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let arn = if input.starts_with("arn:") {
            input
                .parse::<EcrRepositoryArn>()
                .map_err(|e| Invalid(format!("--repository: {e}")))?
        } else {
            repository_arn_from_image(input)?
        };
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    Ok(arns)
}

fn repository_arn_from_image(input: &str) -> anyhow::Result<EcrRepositoryArn> {
    // A trailing `*` is not valid in an image reference but is what a user means by "all repos under".
    let (reference, wildcard) = match input.strip_suffix('*') {
        Some(rest) => (rest.trim_end_matches('/'), true),
        None => (input, false),
    };
    let image = registry::parse(reference).map_err(invalid)?;
    let Registry::Ecr(ecr) = &image.registry else {
        return Err(Invalid(format!(
            "--repository {input:?} is not an ECR repository (its registry is {}); pass arn:aws:ecr:REGION:ACCOUNT:repository/NAME or ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME",
            image.registry.kind()
        ))
        .into());
    };
    let mut name = image.repository.clone().unwrap_or_default();
    if wildcard {
        name = if name.is_empty() {
            "*".to_owned()
        } else {
            format!("{name}/*")
        };
    }
    if name.is_empty() {
        return Err(Invalid(format!(
            "--repository {input:?} names a registry, not a repository; add /NAME (or /* for every repository)"
        ))
        .into());
    }
    let arn = format!(
        "arn:{}:ecr:{}:{}:repository/{name}",
        ecr.partition.id(),
        ecr.region,
        ecr.account
    );
    Ok(arn.parse::<EcrRepositoryArn>().map_err(invalid)?)
}

fn check(args: CheckArgs) -> anyhow::Result<Verdict> {
    if args.trust_policy == "-" && args.token == "-" {
        return Err(Invalid(
            "--trust-policy and --token cannot both read stdin (-): pass one of them as a file"
                .to_owned(),
        )
        .into());
    }
    let policy_text = read_text(&args.trust_policy, "--trust-policy")?;
    let policy =
        PolicyDocument::parse(&policy_text).map_err(|e| Invalid(format!("--trust-policy: {e}")))?;
    let raw = read_text(&args.token, "--token")?;
    let decoded = token::decode_unverified(&raw).map_err(|e| Invalid(format!("--token: {e}")))?;
    let claims = &decoded.claims;

    let (provider, provider_arn) = match (&args.provider_arn, &args.issuer) {
        (Some(arn), _) => {
            let arn: OidcProviderArn = arn
                .parse()
                .map_err(|e| Invalid(format!("--provider-arn: {e}")))?;
            (arn.provider.clone(), Some(arn.to_string()))
        }
        (None, Some(issuer)) => (
            arn::issuer_host_path(issuer).map_err(|e| Invalid(format!("--issuer: {e}")))?,
            None,
        ),
        (None, None) => unreachable!("clap requires --provider-arn or --issuer"),
    };

    // What STS checks before it reads the trust policy: the issuer and the lifetime.
    let mut token_problems = Vec::new();
    match claims.iss.as_deref().map(arn::issuer_host_path) {
        Some(Ok(iss)) if iss == provider => {}
        Some(Ok(iss)) => token_problems.push(format!(
            "the token's issuer {iss:?} is not the OIDC provider {provider:?}: STS answers InvalidIdentityToken; present the token to the provider registered for its issuer"
        )),
        Some(Err(e)) => token_problems.push(format!("the token's iss claim is not an https issuer URL: {e}")),
        None => token_problems.push("the token has no iss claim: STS answers InvalidIdentityToken".to_owned()),
    }
    let now = crate::token::now();
    match claims.exp {
        Some(exp) if exp <= now => token_problems.push(format!(
            "the token expired at {}: STS answers ExpiredTokenException; request a fresh token (kubectl create token …)",
            rfc3339(exp)
        )),
        Some(_) => {}
        None => token_problems.push("the token has no exp claim: STS rejects tokens without an expiry".to_owned()),
    }

    let mut request = match &provider_arn {
        Some(arn) => RequestContext::web_identity(arn, &provider, &claims.raw),
        None => {
            // The account is unknown: the principal matches this provider in any account.
            let arn = format!("arn:aws:iam::000000000000:oidc-provider/{provider}");
            RequestContext::web_identity(&arn, &provider, &claims.raw).with_any_account()
        }
    };
    if let Some(name) = &args.session_name {
        let name =
            arn::SessionName::new(name).map_err(|e| Invalid(format!("--session-name: {e}")))?;
        request = request.with_value("sts:RoleSessionName", vec![name.as_str().to_owned()]);
    }
    let decision = trust_policy::evaluate(&policy, &request);
    let allowed = decision.allowed() && token_problems.is_empty();

    match args.output.output {
        Output::Json => {
            let mut reasons: Vec<Value> = token_problems
                .iter()
                .map(|p| json!({ "statement": null, "effect": "deny", "applies": true, "message": p }))
                .collect();
            reasons.extend(
                decision
                    .reasons
                    .iter()
                    .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
            );
            print_json(
                &json!({
                    "decision": if allowed { "allow" } else { "deny" },
                    "outcome": decision.outcome,
                    "reasons": reasons,
                }),
                false,
            )?;
        }
        Output::Text => {
            println!("{}", if allowed { "ALLOW" } else { "DENY" });
            for p in &token_problems {
                println!("  token: {p}");
            }
            print!("{}", decision.to_string().trim_end());
            println!();
        }
    }
    Ok(if allowed { Verdict::Ok } else { Verdict::No })
}
