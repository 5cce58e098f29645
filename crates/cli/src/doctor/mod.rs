//! `irsa doctor`: walk the trust chain of a service account — Kubernetes, the AWS account, the
//! real exchange — and name the first link that breaks, expected against actual, with its fix.

mod cluster;
mod exchange;
mod iam;
mod report;
mod trust;

use std::io::IsTerminal as _;

use crate::input::read_text;
use crate::output::{Output, OutputArgs, print_json};
use crate::{Invalid, Verdict};
use clap::{ArgGroup, Args};
use irsa_core::arn::{self, OidcProviderArn};
use irsa_core::names::STS_AUDIENCE;
use irsa_core::token;
use irsa_core::trust_policy::PolicyDocument;
use report::{Check, Group, Progress, Quiet, Report, Terminal};

/// What the AWS-side checks need from the Kubernetes side.
pub(crate) struct Chain<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The role and audience, when the annotation check passed.
    pub annotated: Option<&'a cluster::Annotated>,
    /// The cluster's issuer, when the issuer check passed.
    pub issuer: Option<&'a str>,
    pub audience: &'a str,
    /// The TokenRequest token's claims, when the token check passed.
    pub claims: Option<&'a irsa_core::token::Claims>,
}
use trust::{Provider, TrustContext};

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    # Everything, from the cluster (KUBECONFIG) and the AWS account your credentials reach\n  \
    irsa doctor --service-account prod/app\n  \
    irsa doctor --service-account prod/app -o json | jq '.checks[] | select(.status != \"pass\")'\n  \
    # A pod: its service account's chain, and what the webhook injected\n  \
    irsa doctor --pod prod/app-7d9f8b6c5-x2k4q\n  \
    # Offline: a trust policy and a token from files, no cluster, no AWS\n  \
    aws iam get-role --role-name app --query Role.AssumeRolePolicyDocument > trust.json\n  \
    kubectl create token app -n prod --audience sts.amazonaws.com > token\n  \
    irsa doctor --trust-policy trust.json --token token \\\n      \
    --provider-arn arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\n\n\
    Checks, in chain order (each needs the ones before it that it names; a check whose link\n\
    failed is skipped, marked –):\n  \
    service-account  the service account exists\n  \
    role-annotation  eks.amazonaws.com/role-arn is a role ARN; audience and token-expiration are valid\n  \
    issuer           the cluster's /.well-known/openid-configuration\n  \
    jwks             the issuer's signing keys\n  \
    token            a TokenRequest token for the account and audience: claims, signature, issuer\n  \
    pod              (--pod) the pod exists; its service account is the one checked\n  \
    pod-injection    (--pod) AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, the token volume and mount\n  \
    token-claims     (offline) the token file's issuer, expiry, subject and audience\n  \
    oidc-provider    the IAM OIDC provider of the issuer, in the role's account (near misses named)\n  \
    oidc-audience    its client IDs include the token's audience\n  \
    role             the role exists, with that ARN\n  \
    trust-policy     the role's trust policy, evaluated as STS does, against the token's claims\n  \
    permissions      the role's inline and attached policies allow ecr:GetAuthorizationToken on *\n  \
    assume-role      a real sts:AssumeRoleWithWebIdentity with that token\n  \
    ecr              a real ecr:GetAuthorizationToken with the session (the password is not shown)\n  \
    pull-secrets     (--pod, last: it blocks nothing) its imagePullSecrets exist and cover its\n                   \
    images' ECR, ECR Public and Chainguard registries (hosts only; others, e.g. docker.io, are only listed)\n\n\
    Exit codes: 0 every check passed, 1 a check failed or could not run (the report names it and\n\
    why), 2 bad input. Tokens, session credentials and registry passwords are never printed:\n\
    only the token's claims are.";

/// `irsa doctor`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["service_account", "pod", "trust_policy"])))]
pub(crate) struct DoctorArgs {
    /// The service account whose chain to check, as NAMESPACE/NAME, e.g. `prod/app`. Reads the
    /// cluster from KUBECONFIG (or in-cluster config) and AWS with your own credentials (the
    /// default chain; AWS_ENDPOINT_URL is honoured): read-only IAM calls (iam:GetOpenIDConnectProvider,
    /// ListOpenIDConnectProviders, GetRole, ListRolePolicies, GetRolePolicy,
    /// ListAttachedRolePolicies, GetPolicy, GetPolicyVersion), then the real
    /// AssumeRoleWithWebIdentity and GetAuthorizationToken the workload would make.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["trust_policy", "token", "provider_arn", "audience"])]
    service_account: Option<String>,
    /// The pod whose chain to check, as NAMESPACE/NAME: its service account's whole chain (as
    /// --service-account), and whether the pod identity webhook injected AWS_ROLE_ARN,
    /// AWS_WEB_IDENTITY_TOKEN_FILE and the projected token volume into every container, for the
    /// role and audience the service account names now.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["service_account", "trust_policy", "token", "provider_arn", "audience"])]
    pod: Option<String>,
    /// Offline: the role's trust policy (AssumeRolePolicyDocument) as JSON, or `-` for stdin.
    /// Needs --token.
    #[arg(long, value_name = "FILE|-", requires = "token")]
    trust_policy: Option<String>,
    /// Offline: the web-identity token (a service-account JWT), or `-` for stdin. Only its
    /// claims are read and shown; its signature is not checked (`irsa token inspect --jwks`).
    #[arg(long, value_name = "FILE|-", requires = "trust_policy")]
    token: Option<String>,
    /// Offline: the IAM OIDC provider ARN the token is presented as. Without it, the provider
    /// is the token's issuer in any account.
    #[arg(long, value_name = "ARN")]
    provider_arn: Option<String>,
    /// Offline: the audience the workload's token must carry (default: sts.amazonaws.com; for
    /// --service-account it comes from the eks.amazonaws.com/audience annotation).
    #[arg(long, value_name = "AUD", requires = "trust_policy")]
    audience: Option<String>,
    /// The ECR registry to ask for a pull password (default: the role's account in AWS_REGION,
    /// e.g. 111122223333.dkr.ecr.us-east-1.amazonaws.com).
    #[arg(long, value_name = "HOST", conflicts_with = "trust_policy")]
    registry: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: DoctorArgs) -> anyhow::Result<Verdict> {
    let progress: Box<dyn Progress> =
        if std::io::stderr().is_terminal() && args.output.output == Output::Text {
            Box::new(Terminal)
        } else {
            Box::new(Quiet)
        };
    let target = match (&args.service_account, &args.pod) {
        (Some(sa), _) => Some((false, service_account_flag(sa, "--service-account")?)),
        (None, Some(pod)) => Some((true, service_account_flag(pod, "--pod")?)),
        (None, None) => None,
    };
    let report = match target {
        Some((is_pod, (namespace, name))) => {
            let registry = match &args.registry {
                Some(r) => Some(
                    irsa_aws::RegistryTarget::parse(r, None)
                        .map_err(|e| Invalid(format!("--registry: {e}")))?,
                ),
                None => None,
            };
            let what = if is_pod { "pod" } else { "service account" };
            let mut report = Report::new(format!("{what} {namespace}/{name}"), progress);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(online(&mut report, &namespace, &name, is_pod, registry))?;
            report
        }
        None => offline(&args, progress)?,
    };
    match args.output.output {
        Output::Json => print_json(&report.to_json(), false)?,
        Output::Text => print!("{}", report.to_text()),
    }
    Ok(if report.ok() {
        Verdict::Ok
    } else {
        Verdict::No
    })
}

/// `--service-account NAMESPACE/NAME`: two Kubernetes names.
fn service_account_flag(value: &str, flag: &str) -> Result<(String, String), Invalid> {
    let usage = || {
        Invalid(format!(
            "{flag} {value:?} must be NAMESPACE/NAME, e.g. prod/app (a namespace is 1-63 lowercase letters, digits or '-'; a name 1-253 of those or '.')"
        ))
    };
    let (ns, name) = value.split_once('/').ok_or_else(usage)?;
    let label = |s: &str, max: usize, dots: bool| {
        !s.is_empty()
            && s.len() <= max
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
    };
    if !label(ns, 63, false) || !label(name, 253, true) {
        return Err(usage());
    }
    Ok((ns.to_owned(), name.to_owned()))
}

/// The offline run: the token's claims and the trust policy, from files.
fn offline(args: &DoctorArgs, progress: Box<dyn Progress>) -> anyhow::Result<Report> {
    let (Some(policy_path), Some(token_path)) = (&args.trust_policy, &args.token) else {
        unreachable!("clap requires --trust-policy with --token");
    };
    if policy_path == "-" && token_path == "-" {
        return Err(Invalid(
            "--trust-policy and --token cannot both read stdin (-): pass one of them as a file"
                .into(),
        )
        .into());
    }
    let policy_text = read_text(policy_path, "--trust-policy")?;
    let policy =
        PolicyDocument::parse(&policy_text).map_err(|e| Invalid(format!("--trust-policy: {e}")))?;
    let raw = read_text(token_path, "--token")?;
    let decoded =
        token::decode_unverified(raw.trim()).map_err(|e| Invalid(format!("--token: {e}")))?;
    let claims = decoded.claims;
    let provider = match &args.provider_arn {
        Some(a) => Provider::from_arn(
            a.parse::<OidcProviderArn>()
                .map_err(|e| Invalid(format!("--provider-arn: {e}")))?,
        ),
        None => {
            let iss = claims.iss.as_deref().ok_or_else(|| {
                Invalid("--token has no iss claim: pass --provider-arn".to_owned())
            })?;
            Provider {
                host_path: arn::issuer_host_path(iss)
                    .map_err(|e| Invalid(format!("--token: its iss claim: {e}")))?,
                arn: None,
            }
        }
    };
    let audience = args.audience.as_deref().unwrap_or(STS_AUDIENCE);
    let mut report = Report::new("files (offline)", progress);
    let now = crate::token::now();
    if report.ready("token-claims", Group::Files, &[]) {
        let problems = trust::token_problems(&claims, Some(&provider), audience, now);
        let lines = trust::claim_lines(&claims, now);
        let check = if problems.is_empty() {
            Check::pass(
                "token-claims",
                Group::Files,
                "issuer, expiry, subject and audience as STS needs them",
            )
        } else {
            Check::fail("token-claims", Group::Files, problems.join("; "))
        };
        report.record(
            check
                .details(lines)
                .data("claims", trust::claims_json(&claims)),
            &[],
        );
    }
    const TRUST_NEEDS: &[&str] = &["token-claims"];
    if report.ready("trust-policy", Group::Files, TRUST_NEEDS) {
        let ctx = TrustContext {
            provider: &provider,
            role_name: None,
            issuer: claims.iss.as_deref(),
            audience,
        };
        let mut check = trust::trust_policy_check(&policy, &claims, &ctx);
        check.group = Group::Files;
        report.record(check, TRUST_NEEDS);
    }
    Ok(report)
}

/// The online run, in chain order.
async fn online(
    report: &mut Report,
    namespace: &str,
    target: &str,
    is_pod: bool,
    registry: Option<irsa_aws::RegistryTarget>,
) -> anyhow::Result<()> {
    let now = crate::token::now();
    let client = match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) => {
            report.ready("service-account", Group::Kubernetes, &[]);
            report.record(
                Check::error(
                    "service-account",
                    Group::Kubernetes,
                    format!("cannot reach the cluster: {e}"),
                )
                .detail("doctor reads the cluster from KUBECONFIG (or ~/.kube/config, or the in-cluster service account)"),
                &[],
            );
            None
        }
    };

    // Kubernetes. For a pod, its service account's chain.
    let mut pod = None;
    let mut name = target.to_owned();
    if is_pod {
        let Some(client) = &client else {
            return Ok(());
        };
        report.ready("pod", Group::Kubernetes, &[]);
        let (check, found) = cluster::pod(client, namespace, target).await;
        report.record(check, &[]);
        match found {
            Some((p, sa)) => {
                pod = Some(p);
                name = sa;
            }
            None => return Ok(()),
        }
    }
    let name = name.as_str();
    let mut annotations = None;
    if let Some(client) = &client
        && report.ready("service-account", Group::Kubernetes, &[])
    {
        let (check, found) = cluster::service_account(client, namespace, name).await;
        annotations = found;
        report.record(check, &[]);
    }
    let mut annotated = None;
    if report.ready("role-annotation", Group::Kubernetes, &["service-account"]) {
        let (check, a) = cluster::annotation_check(
            namespace,
            name,
            annotations.as_ref().unwrap_or(&Default::default()),
            None,
        );
        annotated = a;
        report.record(check, &["service-account"]);
    }
    let mut discovery = None;
    if let Some(client) = &client
        && report.ready("issuer", Group::Kubernetes, &[])
    {
        let (check, d) = cluster::issuer(client).await;
        discovery = d;
        report.record(check, &[]);
    } else if client.is_none() {
        report.ready("issuer", Group::Kubernetes, &["service-account"]);
    }
    let mut jwks = None;
    if let (Some(client), Some(d)) = (&client, &discovery)
        && report.ready("jwks", Group::Kubernetes, &["issuer"])
    {
        let (check, j) = cluster::jwks(client, d).await;
        jwks = j;
        report.record(check, &["issuer"]);
    } else if discovery.is_none() {
        report.ready("jwks", Group::Kubernetes, &["issuer"]);
    }
    const TOKEN_NEEDS: &[&str] = &["service-account", "jwks"];
    let audience = annotated
        .as_ref()
        .map(|a| a.audience.clone())
        .unwrap_or_else(|| STS_AUDIENCE.to_owned());
    let mut token = None;
    if report.ready("token", Group::Kubernetes, TOKEN_NEEDS)
        && let (Some(client), Some(d), Some(j)) = (&client, &discovery, &jwks)
    {
        let (check, t) = cluster::token(client, namespace, name, &audience, d, j, now).await;
        token = t;
        report.record(check, TOKEN_NEEDS);
    }

    if let Some(p) = &pod
        && report.ready(
            "pod-injection",
            Group::Kubernetes,
            &["pod", "role-annotation"],
        )
        && let Some(a) = &annotated
    {
        report.record(cluster::injection_check(p, a), &["pod", "role-annotation"]);
    }

    // AWS, read with the caller's credentials.
    let chain = Chain {
        namespace,
        name,
        annotated: annotated.as_ref(),
        issuer: discovery.as_ref().map(|d| d.issuer.as_str()),
        audience: &audience,
        claims: token.as_ref().map(|(c, _)| c),
    };
    iam::checks(report, &chain).await;

    // The real exchange, only when every link before it held.
    let before: Vec<&'static str> = report.checks.iter().map(|c| c.id).collect();
    let mut session = None;
    if report.ready("assume-role", Group::Exchange, &before)
        && let (Some((_, raw)), Some(a)) = (&token, &annotated)
    {
        let aws = exchange::Exchange::new().await;
        let (check, identity) = aws.assume_role(&a.role, namespace, name, raw.clone()).await;
        report.record(check, &before);
        session = identity.map(|i| (aws, i));
    }
    if report.ready("ecr", Group::Exchange, &["assume-role"])
        && let (Some((aws, identity)), Some(a)) = (&session, &annotated)
    {
        let check = aws.ecr(&a.role, identity, registry).await;
        report.record(check, &["assume-role"]);
    }
    // Last: the pod's pull secrets are another path to the registry (the kubelet's), so a
    // broken one neither blocks nor hides the identity chain's checks above.
    if let (Some(p), Some(client)) = (&pod, &client)
        && report.ready("pull-secrets", Group::Kubernetes, &["pod"])
    {
        report.record(cluster::pull_secrets(client, p).await, &["pod"]);
    }
    Ok(())
}
