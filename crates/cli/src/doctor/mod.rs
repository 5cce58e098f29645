//! `irsa doctor`: walk the trust chain of a service account — Kubernetes, the AWS account, the
//! real exchange — and name the first link that breaks, expected against actual, with its fix.

mod cluster;
mod exchange;
mod fix;
mod iam;
mod pod;
mod pull_secret;
mod report;
mod trust;

use std::io::IsTerminal as _;

use crate::input::read_text;
use crate::output::{Output, OutputArgs, print_json};
use crate::{Invalid, Verdict};
use clap::{ArgGroup, Args};
use irsa_core::arn::{self, OidcProviderArn, RoleArn};
use irsa_core::names::STS_AUDIENCE;
use irsa_core::token;
use irsa_core::trust_policy::PolicyDocument;
pub(crate) use report::is_invisible;
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
    /// What the fixes are made of.
    pub inputs: &'a FixInputs,
    /// For `--pod`: its containers' images (their ECR repositories are checked for pull).
    pub images: Vec<String>,
}

/// What `--fix`'s changes take from the flags.
#[derive(Debug, Default)]
pub(crate) struct FixInputs {
    /// `--role-arn`: the role to annotate a service account that names none with.
    pub role_arn: Option<RoleArn>,
    /// `--repository`, as ECR repository ARNs (empty: every repository of the role's account
    /// in `region`).
    pub repositories: Vec<String>,
    /// The region of the registry checked (`--registry`, else AWS_REGION).
    pub region: Option<String>,
}

impl FixInputs {
    /// The repositories the pull permissions cover, for a role in `partition` and `account`.
    pub(crate) fn repositories_for(&self, role: &RoleArn) -> Vec<String> {
        if !self.repositories.is_empty() {
            return self.repositories.clone();
        }
        vec![format!(
            "arn:{}:ecr:{}:{}:repository/*",
            role.partition,
            self.region.as_deref().unwrap_or("*"),
            role.account
        )]
    }
}
use trust::{Provider, TrustContext};

pub(crate) const EXAMPLES: &str = "Examples:\n  \
    # Everything, from the cluster (KUBECONFIG) and the AWS account your credentials reach\n  \
    irsa doctor --service-account prod/app\n  \
    irsa doctor --service-account prod/app -o json | jq '.checks[] | select(.status != \"pass\")'\n  \
    # An Argo CD project's identity (the service account argocd/argocd-project-production)\n  \
    irsa doctor --argocd-project production\n  \
    # A pod: its service account's chain, and what the webhook injected\n  \
    irsa doctor --pod prod/app-7d9f8b6c5-x2k4q\n  \
    # A pull secret: a ClusterPullSecret (NAME) or a PullSecret (NAMESPACE/NAME), its status,\n  \
    # the secret in each target namespace, then its identity's chain\n  \
    irsa doctor --pull-secret ecr\n  \
    irsa doctor --pull-secret team-a/ecr\n  \
    # …and the node RBAC the kubelet credential provider needs for its token audience\n  \
    irsa doctor --pod prod/app-7d9f8b6c5-x2k4q --credential-provider\n  \
    irsa doctor --pod prod/app-7d9f8b6c5-x2k4q --credential-provider=api://my-registry\n  \
    # Offline: a trust policy and a token from files, no cluster, no AWS\n  \
    aws iam get-role --role-name app --query Role.AssumeRolePolicyDocument > trust.json\n  \
    kubectl create token app -n prod --audience sts.amazonaws.com > token\n  \
    irsa doctor --trust-policy trust.json --token token \\\n      \
    --provider-arn arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\n\n\
    Checks, in chain order (each needs the ones before it that it names; a check whose link\n\
    failed is skipped, marked –):\n  \
    pull-secret      (--pull-secret) the ClusterPullSecret or PullSecret exists, its spec is valid:\n                   \
    registries, service account (or ambient), spec.identity.roleArn, target namespaces\n  \
    pull-secret-status\n                   \
    (--pull-secret) the controller's status: Ready, not Degraded, for the current generation\n                   \
    (a stale observedGeneration fails); names the chain's first broken link\n  \
    pull-secret-targets\n                   \
    (--pull-secret) each target namespace holds irsa's secret (its owner labels), with an\n                   \
    auth for every registry host, irsa's seal present (not verified: its key is the\n                   \
    controller's) and not past irsa.dev/expires-at; the namespaces\n                   \
    missing, expired or holding another's secret are named (at most 10 each). Neither\n                   \
    blocks the identity chain's checks\n  \
    service-account  the service account exists (for --pull-secret: the one its spec names)\n  \
    role-annotation  eks.amazonaws.com/role-arn is a role ARN; audience and token-expiration are valid\n                   \
    (a pull secret's spec.identity.roleArn is the role instead, the audience still the annotation's)\n  \
    issuer           the cluster's /.well-known/openid-configuration\n  \
    jwks             the issuer's signing keys\n  \
    token            a TokenRequest token for the account and audience: claims, signature, issuer\n  \
    pod              (--pod) the pod exists; its service account is the one checked\n  \
    pod-injection    (--pod) AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, the token volume and mount\n  \
    token-readable   (--pod) each container's user (runAsUser, runAsGroup, fsGroup) can read the\n                   \
    projected token as the kubelet writes it (owner, group, mode, capabilities);\n                   \
    skipped for a token file it cannot place (valueFrom, subPath)\n  \
    token-claims     (offline) the token file's issuer, expiry, subject and audience\n  \
    partition        the role's partition (GovCloud, China) is the STS region's, the EKS issuer's\n                   \
    and the audience's\n  \
    oidc-provider    the IAM OIDC provider of the issuer, in the role's account (near misses named)\n  \
    oidc-audience    its client IDs include the token's audience\n  \
    role             the role exists, with that ARN\n  \
    session-tags     sts:TagSession where the token carries session tags; a role set up for EKS\n                   \
    Pod Identity (pods.eks.amazonaws.com) instead of IRSA\n  \
    trust-policy     the role's trust policy, evaluated as STS does, against the token's claims\n  \
    permissions      the role's inline and attached policies, capped by its permissions boundary,\n                   \
    allow ecr:GetAuthorizationToken on * and ecr:BatchGetImage and\n                   \
    ecr:GetDownloadUrlForLayer on the repositories in use (--repository, a --pod's ECR\n                   \
    image references; never a pod's ARN or wildcard); IAM's policy simulator too, where\n                   \
    your credentials may call it. An Allow under a Condition, or a simulator allow made\n                   \
    without the context keys a condition needs, is an error (the condition decides)\n                   \
    and --fix changes nothing\n  \
    assume-role      a real sts:AssumeRoleWithWebIdentity with that token\n  \
    ecr              a real ecr:GetAuthorizationToken with the session (the password is not shown;\n                   \
    for --pull-secret, from its first registry)\n  \
    The image pulls, last (a broken one blocks nothing above):\n  \
    node-audience-rbac\n                   \
    (--pod --credential-provider) a binding lets group system:nodes use\n                   \
    request-serviceaccounts-token-audience on the audience for the pod's\n                   \
    service account (KEP-4412), unless the pod's own token volume names it\n  \
    pull-secrets     (--pod) its imagePullSecrets (valid Secret names, the first 16) exist, are\n                   \
    dockerconfigjson or dockercfg, are not irsa-kept secrets past their expiry, and\n                   \
    cover its images' ECR, ECR Public and Chainguard registries (hosts only; others,\n                   \
    e.g. docker.io, are only listed)\n  \
    image-pulls      (--pod) the containers' waiting reasons decide (a pod without statuses:\n                   \
    its ErrImagePull / ImagePullBackOff / Failed Events, said to be anyone's to\n                   \
    write), messages shown and mapped to the likely link\n\n\
    --fix makes the changes it can (annotation with --role-arn, OIDC provider, client ID, trust\n\
    policy, pull permissions), each shown as a diff and asked for first (--yes for scripts),\n\
    then checks again; a role `irsa iam setup` did not create for the service account needs\n\
    its name confirmed (typed, or --confirm-role NAME). Not with --pull-secret (the\n\
    controller's status lags a change): its fixes are printed, with what --fix would ask first.\n\n\
    Exit codes: 0 every check passed, 1 a check failed or could not run (the report names it and\n\
    why), 2 bad input. Tokens, session credentials and registry passwords are never printed:\n\
    only the token's claims are.";

/// `irsa doctor`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["service_account", "pod", "argocd_project", "pull_secret", "trust_policy"])))]
pub(crate) struct DoctorArgs {
    /// The service account whose chain to check, as NAMESPACE/NAME, e.g. `prod/app`. Reads the
    /// cluster from KUBECONFIG (or in-cluster config) and AWS with your own credentials (the
    /// default chain; AWS_ENDPOINT_URL is honoured): read-only IAM calls (iam:GetOpenIDConnectProvider,
    /// ListOpenIDConnectProviders, GetRole, ListRolePolicies, GetRolePolicy,
    /// ListAttachedRolePolicies, GetPolicy, GetPolicyVersion, and SimulatePrincipalPolicy where
    /// permitted: without it doctor reads the policies alone and says so), then the real
    /// AssumeRoleWithWebIdentity and GetAuthorizationToken the workload would make.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["trust_policy", "token", "provider_arn", "audience"])]
    service_account: Option<String>,
    /// The pod whose chain to check, as NAMESPACE/NAME: its service account's whole chain (as
    /// --service-account), and whether the pod identity webhook injected AWS_ROLE_ARN,
    /// AWS_WEB_IDENTITY_TOKEN_FILE and the projected token volume into every container, for the
    /// role and audience the service account names now.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["service_account", "trust_policy", "token", "provider_arn", "audience"])]
    pod: Option<String>,
    /// With --pod: also check the node RBAC the kubelet credential provider needs (KEP-4412):
    /// a ClusterRoleBinding (or a RoleBinding in the pod's namespace) that lets group
    /// system:nodes use the verb request-serviceaccounts-token-audience on AUDIENCE for the
    /// pod's service account (an audience the pod's own projected token volume names needs
    /// none: NodeRestriction allows it). AUDIENCE defaults to the one `irsa credential-provider`
    /// asks for (sts.amazonaws.com). Reads ClusterRoles, ClusterRoleBindings, Roles and
    /// RoleBindings.
    #[arg(long, value_name = "AUDIENCE", num_args = 0..=1, default_missing_value = STS_AUDIENCE, require_equals = true, requires = "pod", conflicts_with = "trust_policy")]
    credential_provider: Option<String>,
    /// The identity of an Argo CD project, as irsa's Argo CD integration uses it: the service
    /// account ARGOCD_NAMESPACE/argocd-project-PROJECT (--argocd-namespace, default argocd),
    /// checked as --service-account.
    #[arg(long, value_name = "PROJECT", conflicts_with_all = ["trust_policy", "token", "provider_arn", "audience"])]
    argocd_project: Option<String>,
    /// A pull secret: NAME for a ClusterPullSecret, NAMESPACE/NAME for a PullSecret. Checks the
    /// resource and its spec, the status the controller wrote (Ready, Degraded, for the current
    /// generation), irsa's secret in every target namespace (owned, an auth for each registry,
    /// sealed, not expired: only hosts and expiry are read), then the chain of the service
    /// account it uses as --service-account does, with its spec.identity.roleArn as the role
    /// when it names one, and its first registry for the ecr check. Not with --fix: the fixes
    /// printed say what to run (`--service-account NS/NAME --fix` makes the chain's).
    #[arg(long, value_name = "NAME|NAMESPACE/NAME", conflicts_with_all = ["trust_policy", "token", "provider_arn", "audience", "registry", "fix"])]
    pull_secret: Option<String>,
    /// With --argocd-project: the namespace of the projects' service accounts (default argocd).
    #[arg(long, value_name = "NAMESPACE", requires = "argocd_project")]
    argocd_namespace: Option<String>,
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
    /// Make the changes that mend the failing links, with your own rights: annotate the
    /// service account (with --role-arn, when it names no role), create the IAM OIDC provider
    /// or add the audience to its client IDs, put the trust policy `irsa policy trust` prints,
    /// add the missing pull permissions `irsa policy ecr-pull` prints to inline policy
    /// irsa-ecr-pull (what it allows already is kept; a permissions boundary is never changed).
    /// Each change is shown as a diff and asked for on the terminal; then the checks run
    /// again. Without a terminal it needs --yes (otherwise it prints the changes, makes none
    /// and exits 1). A role that `irsa iam setup` did not create for this service account (its
    /// irsa.dev/ tags) is changed only when its name is confirmed: typed on the terminal, or
    /// --confirm-role NAME with --yes.
    #[arg(long, conflicts_with = "trust_policy")]
    fix: bool,
    /// With --fix: make the changes without asking (for scripts).
    #[arg(long, requires = "fix")]
    yes: bool,
    /// With --fix: the role to annotate the service account with when it names none (or an
    /// unusable one), e.g. arn:aws:iam::111122223333:role/app. An annotation that names a role
    /// is never replaced.
    #[arg(long, value_name = "ARN", requires = "fix")]
    role_arn: Option<String>,
    /// With --fix --yes: a role (its name) whose trust policy or permissions doctor may change
    /// although `irsa iam setup` did not create it for this service account. Repeat for more.
    #[arg(long, value_name = "ROLE_NAME", requires = "yes")]
    confirm_role: Vec<String>,
    /// The ECR repositories in use: the permissions check needs the pull actions on each (with
    /// a --pod's ECR images) and the pull-permissions fix adds only those missing, keeping what
    /// irsa-ecr-pull allows already. An ARN (arn:aws:ecr:REGION:ACCOUNT:repository/NAME, NAME
    /// may end in *) or an image reference, as `irsa policy ecr-pull` takes them. Repeat for
    /// more. Wildcards come only from here: a --pod's images count only as real ECR image
    /// references. Without any (and no --pod image of ECR) the fix covers every repository of
    /// the role's account in the registry's region (AWS_REGION). The fix is not made when the
    /// role's inline policies would exceed IAM's 10,240 characters.
    #[arg(long, value_name = "ARN|IMAGE", conflicts_with = "trust_policy")]
    repository: Vec<String>,
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
    let pull_target = args
        .pull_secret
        .as_deref()
        .map(pull_secret::parse_flag)
        .transpose()?;
    let target = match (&args.service_account, &args.pod, &args.argocd_project) {
        (Some(sa), _, _) => Some((false, service_account_flag(sa, "--service-account")?, None)),
        (None, Some(pod), _) => Some((true, service_account_flag(pod, "--pod")?, None)),
        (None, None, Some(project)) => {
            let namespace = args
                .argocd_namespace
                .as_deref()
                .unwrap_or(crate::policy::DEFAULT_ARGOCD_NAMESPACE);
            let sa = crate::policy::argocd_project_service_account(project, namespace)?;
            let title = format!(
                "Argo CD project {project} (service account {}/{})",
                sa.0, sa.1
            );
            Some((false, sa, Some(title)))
        }
        // A pull secret names its service account itself.
        (None, None, None) => pull_target
            .as_ref()
            .map(|p| (false, (String::new(), String::new()), Some(p.title()))),
    };
    let report = match target {
        Some((is_pod, (namespace, name), title)) => {
            let registry = match &args.registry {
                Some(r) => Some(
                    irsa_aws::RegistryTarget::parse(r, None)
                        .map_err(|e| Invalid(format!("--registry: {e}")))?,
                ),
                None => None,
            };
            let role_arn = match &args.role_arn {
                Some(a) => Some(
                    a.trim()
                        .parse::<RoleArn>()
                        .map_err(|e| Invalid(format!("--role-arn: {e}")))?,
                ),
                None => None,
            };
            let repositories = crate::policy::repository_arns(&args.repository)?
                .iter()
                .map(ToString::to_string)
                .collect();
            let region = match registry.as_ref().map(|r| &r.registry) {
                Some(irsa_core::registry::Registry::Ecr(ecr)) => Some(ecr.region.clone()),
                _ => irsa_aws::Env::Process.region(),
            };
            let inputs = FixInputs {
                role_arn,
                repositories,
                region,
            };
            let credential_provider = match &args.credential_provider {
                // clap's `requires` lets a bare `--credential-provider` (its missing-value
                // default) through: checked here.
                Some(_) if !is_pod => {
                    return Err(Invalid(
                        "--credential-provider checks the node RBAC for a pod's service account: it needs --pod NAMESPACE/NAME".to_owned(),
                    )
                    .into());
                }
                Some(a) => Some(pod_audience_flag(a)?),
                None => None,
            };
            let what = if is_pod { "pod" } else { "service account" };
            let target = Target {
                title: title.unwrap_or_else(|| format!("{what} {namespace}/{name}")),
                namespace,
                name,
                is_pod,
                registry,
                inputs,
                pull_secret: pull_target,
                credential_provider,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            if args.fix {
                return runtime.block_on(fix_and_check_again(&args, &target));
            }
            runtime.block_on(target.check(progress))?
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

/// What an online run checks.
struct Target {
    title: String,
    namespace: String,
    name: String,
    is_pod: bool,
    registry: Option<irsa_aws::RegistryTarget>,
    inputs: FixInputs,
    /// `--pull-secret`: its checks, then its service account's chain.
    pull_secret: Option<pull_secret::PullSecretRef>,
    /// `--credential-provider`: the token audience whose node RBAC to check.
    credential_provider: Option<String>,
}

impl Target {
    async fn check(&self, progress: Box<dyn Progress>) -> anyhow::Result<Report> {
        let mut report = Report::new(self.title.clone(), progress);
        if let Some(p) = &self.pull_secret {
            pull_secret::check(&mut report, p, &self.inputs).await?;
            return Ok(report);
        }
        online(
            &mut report,
            &self.namespace,
            &self.name,
            Scope {
                is_pod: self.is_pod,
                credential_provider: self.credential_provider.as_deref(),
                ..Scope::default()
            },
            self.registry.clone(),
            &self.inputs,
        )
        .await?;
        Ok(report)
    }
}

/// How many times `--fix` changes and checks again at most: each round's changes can uncover
/// the next link (an annotation, then the role behind it).
const FIX_ROUNDS: usize = 4;

/// `--fix`: check, make the changes the failing checks ask for (asking first), check again.
async fn fix_and_check_again(args: &DoctorArgs, target: &Target) -> anyhow::Result<Verdict> {
    let json = args.output.output == Output::Json;
    let progress = || -> Box<dyn Progress> {
        if std::io::stderr().is_terminal() && !json {
            Box::new(Terminal)
        } else {
            Box::new(Quiet)
        }
    };
    let asking = if args.yes {
        Some(fix::Asking::Yes {
            confirmed_roles: &args.confirm_role,
        })
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Some(fix::Asking::Terminal)
    } else {
        None
    };
    let mut report = target.check(progress()).await?;
    let mut rounds: Vec<serde_json::Value> = Vec::new();
    let mut applied = 0;
    let mut refused = false;
    // Changes declined (or left for a confirmation) are not asked for again in later rounds.
    let mut declined: Vec<(String, &'static str)> = Vec::new();
    loop {
        if !json {
            print!("{}", report.to_text());
        }
        let plan: Vec<_> = report
            .plan()
            .into_iter()
            .filter(|(_, c)| !declined.contains(&(c.target.clone(), c.permission)))
            .collect();
        if plan.is_empty() {
            if !json && !report.ok() {
                println!(
                    "\n--fix: doctor can make no change for the failing checks; their fixes above say what to do"
                );
            }
            break;
        }
        if rounds.len() == FIX_ROUNDS {
            if !json {
                println!("\n--fix: stopped after {FIX_ROUNDS} rounds of changes");
            }
            break;
        }
        let mut outcomes = Vec::new();
        // Diffs go where the person deciding reads them: stdout for text, stderr beside the
        // prompts when stdout is JSON.
        let show = |text: &str| {
            if !json {
                print!("{text}");
            } else if matches!(asking, Some(fix::Asking::Terminal)) {
                eprint!("{text}");
            }
        };
        show(&format!("\nChanges that fix it ({}):\n", plan.len()));
        for (check, change) in plan {
            let mut text = String::new();
            fix::render(check, &change, &mut text);
            show(&text);
            let outcome = match &asking {
                Some(a) => fix::decide_and_apply(check, change, a).await,
                None => fix::Outcome {
                    check,
                    change,
                    status: fix::Status::NotAsked,
                    message: None,
                },
            };
            show(&fix::outcome_line(&outcome));
            if matches!(
                outcome.status,
                fix::Status::Declined | fix::Status::NeedsConfirmation
            ) {
                declined.push((outcome.change.target.clone(), outcome.change.permission));
            }
            outcomes.push(outcome);
        }
        let made = outcomes
            .iter()
            .filter(|o| o.status == fix::Status::Applied)
            .count();
        applied += made;
        rounds.push(serde_json::json!({
            "first_failure": report.first_failure().map(|c| c.id),
            "changes": outcomes,
        }));
        if asking.is_none() {
            refused = true;
            break;
        }
        if made == 0 {
            break;
        }
        if !json {
            println!("\nChecking again after {made} change(s):\n");
        }
        report = target.check(progress()).await?;
    }
    if json {
        let mut value = report.to_json();
        value["fix"] = serde_json::json!({
            "rounds": rounds,
            "applied": applied,
            "refused": refused,
        });
        print_json(&value, false)?;
    }
    if refused {
        eprintln!(
            "irsa doctor --fix: no terminal to ask on and no --yes, so nothing was changed; review the changes above, then run on a terminal or pass --yes (a role irsa iam setup did not create for this service account also needs --confirm-role NAME)"
        );
        return Ok(Verdict::No);
    }
    Ok(if report.ok() {
        Verdict::Ok
    } else {
        Verdict::No
    })
}

/// `--credential-provider=AUDIENCE`: an audience as a TokenRequest takes it (and as an RBAC
/// resource names it), without whitespace or invisible characters.
fn pod_audience_flag(value: &str) -> Result<String, Invalid> {
    if value.is_empty()
        || value.len() > 2048
        || value
            .chars()
            .any(|c| c.is_whitespace() || report::is_invisible(c))
    {
        return Err(Invalid(format!(
            "--credential-provider={:?} is not a token audience: 1-2048 characters without whitespace or control characters, e.g. --credential-provider={STS_AUDIENCE}",
            report::printable(value)
        )));
    }
    Ok(value.to_owned())
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
            owned: false,
        };
        let mut check = trust::trust_policy_check(&policy, &claims, &ctx);
        check.group = Group::Files;
        report.record(check, TRUST_NEEDS);
        // After the trust policy offline (the files are all there is): a token with session
        // tags needs sts:TagSession too; a Pod Identity role trusts no web identity.
        if report.ready("session-tags", Group::Files, &["token-claims"]) {
            let mut check = trust::session_tags_check(&policy, &claims, &ctx);
            check.group = Group::Files;
            report.record(check, &["token-claims"]);
        }
    }
    Ok(report)
}

/// What an online run looks at beyond the service account's chain.
#[derive(Default)]
pub(crate) struct Scope<'a> {
    /// `--pod`: the target is a pod, whose service account's chain is checked.
    pub is_pod: bool,
    /// A pull secret's spec.identity.roleArn: the role assumed instead of the annotation's.
    pub role_override: Option<&'a pull_secret::RoleOverride>,
    /// `--credential-provider`: the token audience whose node RBAC to check (with `--pod`).
    pub credential_provider: Option<&'a str>,
    /// The cluster's client, when the caller has one already (else read from KUBECONFIG).
    pub client: Option<&'a kube::Client>,
}

/// The online run, in chain order.
async fn online(
    report: &mut Report,
    namespace: &str,
    target: &str,
    scope: Scope<'_>,
    registry: Option<irsa_aws::RegistryTarget>,
    inputs: &FixInputs,
) -> anyhow::Result<()> {
    let Scope {
        is_pod,
        role_override,
        credential_provider,
        client,
    } = scope;
    let now = crate::token::now();
    let connected = match client {
        Some(c) => Ok(c.clone()),
        None => kube::Client::try_default().await,
    };
    let client = match connected {
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
    let mut found_sa = None;
    if let Some(client) = &client
        && report.ready("service-account", Group::Kubernetes, &[])
    {
        let (check, found) = cluster::service_account(client, namespace, name).await;
        found_sa = found;
        report.record(check, &[]);
    }
    let mut annotated = None;
    if report.ready("role-annotation", Group::Kubernetes, &["service-account"]) {
        let empty = Default::default();
        let annotations = found_sa.as_ref().map(|s| &s.annotations).unwrap_or(&empty);
        let (mut check, a) = match role_override {
            Some(o) => pull_secret::override_annotation_check(namespace, name, annotations, o),
            None => cluster::annotation_check(
                namespace,
                name,
                annotations,
                inputs.role_arn.as_ref().map(|r| r.account.as_str()),
            ),
        };
        if let Some(sa) = &found_sa
            && !check.passed()
            && role_override.is_none()
        {
            check = cluster::annotate_change(check, namespace, name, sa, inputs.role_arn.as_ref());
        }
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
    // Only a token the webhook projected is the workload's to read.
    if let Some(p) = &pod
        && report.ready("token-readable", Group::Kubernetes, &["pod-injection"])
    {
        report.record(pod::token_readable(p), &["pod-injection"]);
    }

    // AWS, read with the caller's credentials.
    let chain = Chain {
        namespace,
        name,
        annotated: annotated.as_ref(),
        issuer: discovery.as_ref().map(|d| d.issuer.as_str()),
        audience: &audience,
        claims: token.as_ref().map(|(c, _)| c),
        inputs,
        images: pod.as_ref().map(iam::pod_images).unwrap_or_default(),
    };
    iam::checks(report, &chain).await;

    // The real exchange, only when every link before it held.
    // A pull secret's own checks (its status, its targets) are the controller's output, not
    // links the exchange needs.
    let before: Vec<&'static str> = report
        .checks
        .iter()
        .map(|c| c.id)
        .filter(|id| !pull_secret::OWN_CHECKS.contains(id))
        .collect();
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
    // Last: how the kubelet pulls the pod's images is another path to the registry, so a
    // broken link there neither blocks nor hides the identity chain's checks above. First what
    // it needs (the node RBAC of its credential provider, the pod's pull secrets), then what
    // it reported when it tried (the pod's events and container statuses).
    if let (Some(p), Some(client)) = (&pod, &client) {
        if let Some(audience) = credential_provider
            && report.ready("node-audience-rbac", Group::Kubernetes, &["pod"])
        {
            report.record(
                pod::node_audience_rbac(client, p, name, audience).await,
                &["pod"],
            );
        }
        if report.ready("pull-secrets", Group::Kubernetes, &["pod"]) {
            report.record(pod::pull_secrets(client, p, now).await, &["pod"]);
        }
        if report.ready("image-pulls", Group::Kubernetes, &["pod"]) {
            report.record(pod::image_pulls(client, p).await, &["pod"]);
        }
    }
    Ok(())
}
