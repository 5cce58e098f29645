//! `irsa iam setup | chainguard`: set up the AWS side of a service account's identity (the IAM
//! OIDC provider, the role and its ECR pull permissions) in one idempotent command, or print it
//! as AWS CLI commands or Terraform; and print what Chainguard needs to trust a role.
//!
//! The documents are irsa-core's (`irsa policy trust` and `irsa policy ecr-pull` print the same
//! ones). What exists is compared with what is wanted by meaning (policy documents as JSON
//! values after URL-decoding what IAM returns), so a second run makes no IAM write.

use clap::{Args, Subcommand, ValueEnum};
use irsa_aws::Env;
use irsa_aws::iam::{IamClient, IamError, InlinePolicy, OidcProvider, Role, same_document};
use irsa_core::arn::{self, OidcProviderArn, RoleArn};
use irsa_core::partition::Partition;
use irsa_core::trust_policy;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::output::print_json;
use crate::policy::{eks_issuer_partition, repository_arns, service_account_flag};
use crate::shell::sh;
use crate::{Invalid, Verdict};

/// The inline policy `irsa iam setup` puts on the role unless `--policy-name` says otherwise.
const DEFAULT_POLICY_NAME: &str = "irsa-ecr-pull";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or update the IAM OIDC provider, a role for one service account and its ECR pull
    /// permissions, so that the account's pods can pull; a second run changes nothing.
    ///
    /// Three objects, each created when missing and updated only where it differs from what
    /// is wanted:
    ///
    /// 1. the IAM OIDC provider of --issuer, with --audience among its client IDs (other
    ///    client IDs are kept);
    ///
    /// 2. the role (--role-name, default irsa-NAMESPACE-NAME) whose trust policy is the one
    ///    `irsa policy trust` prints for --service-account (an existing trust policy that
    ///    differs is replaced); a role it creates is tagged irsa.dev/managed-by=irsa-iam-setup
    ///    and irsa.dev/service-account=NAMESPACE/NAME, which tells `irsa doctor --fix` that it
    ///    may mend the role for that service account;
    ///
    /// 3. the ECR pull permissions `irsa policy ecr-pull` prints for --repository, as the
    ///    role's inline policy --policy-name (default irsa-ecr-pull; irsa never attaches or
    ///    detaches managed policies).
    ///
    /// Policy documents are compared as JSON, not byte for byte. Each object is reported as
    /// created, updated or unchanged; when nothing differs irsa says so and makes no IAM write.
    ///
    /// --dry-run reads the account (when there are credentials) and prints the plan and the
    /// equivalent `aws iam …` commands, writing nothing. --output terraform prints the same
    /// objects as Terraform resources and calls nothing.
    ///
    /// AWS credentials are the caller's own (AWS_PROFILE, AWS_ACCESS_KEY_ID, …); the endpoint
    /// is the partition's IAM (from --partition or the repositories), or AWS_ENDPOINT_URL_IAM /
    /// AWS_ENDPOINT_URL. The account written into is the caller's (sts:GetCallerIdentity,
    /// AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL), asked before any write: --account ID refuses
    /// (exit 2, nothing written) when it differs. The caller needs iam:ListOpenIDConnectProviders,
    /// iam:GetOpenIDConnectProvider, iam:GetRole, iam:GetRolePolicy and, to change anything,
    /// iam:CreateOpenIDConnectProvider, iam:AddClientIDToOpenIDConnectProvider,
    /// iam:CreateRole and iam:TagRole, iam:UpdateAssumeRolePolicy, iam:PutRolePolicy.
    /// Exits 0 when every object is as wanted, 1 when AWS refused (the message names the
    /// permission), 2 on bad input.
    #[command(after_help = "Examples:\n  \
        irsa iam setup --issuer https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE \\\n      \
        --service-account prod/app --repository 111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app\n  \
        kubectl annotate serviceaccount --overwrite -n prod app eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/irsa-prod-app\n  \
        # What would change, and the AWS CLI commands that do it\n  \
        irsa iam setup --dry-run --issuer https://issuer.example.com --service-account ci/builder \\\n      \
        --role-name ci-builder --repository 'arn:aws:ecr:eu-west-1:111122223333:repository/ci/*'\n  \
        # The same as Terraform, for teams that manage IAM as code\n  \
        irsa iam setup --output terraform --issuer https://issuer.example.com \\\n      \
        --service-account ci/builder --repository 111122223333.dkr.ecr.eu-west-1.amazonaws.com/ci/* > irsa.tf")]
    Setup(SetupArgs),
    /// Print what Chainguard (cgr.dev) needs to trust an IAM role, for both ways irsa proves
    /// the role to Chainguard (`--chainguard-method` of `irsa login` and the credential
    /// provider):
    ///
    /// get-caller-identity (irsa's default): a Chainguard identity with an `awsIdentity`
    /// binding (the account, the role's assumed-role ARN, optionally the role's id);
    ///
    /// web-identity-token (IAM outbound identity federation): a Chainguard identity that trusts
    /// the account's outbound issuer (https://<id>.tokens.sts.global.api.aws) with the role ARN
    /// as subject, and the sts:GetWebIdentityToken permission the role then needs (for
    /// Chainguard's issuer as audience, 300-second tokens, as irsa asks).
    ///
    /// Each comes with its `chainctl iam identities create` command. Nothing is called: pass
    /// --outbound-issuer (from `aws iam get-outbound-web-identity-federation-info`) and
    /// --role-id (from `aws iam get-role`) to have them filled in. Exits 2 on bad input.
    #[command(after_help = "Examples:\n  \
        irsa iam chainguard --role-arn arn:aws:iam::111122223333:role/irsa-prod-app --parent <group id>\n  \
        irsa iam chainguard --role-arn arn:aws:iam::111122223333:role/irsa-prod-app \\\n      \
        --outbound-issuer \"$(aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text)\" -o json")]
    Chainguard(ChainguardArgs),
}

/// `irsa iam setup --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
enum SetupOutput {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON with stable field names, for scripts.
    Json,
    /// Terraform resources (aws_iam_openid_connect_provider, aws_iam_role,
    /// aws_iam_role_policy); no AWS call is made.
    Terraform,
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The cluster's OIDC issuer URL (on EKS: `aws eks describe-cluster --query
    /// cluster.identity.oidc.issuer`), e.g. https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE.
    #[arg(long, value_name = "URL", env = "IRSA_ISSUER")]
    issuer: String,
    /// The service account as NAMESPACE/NAME, e.g. `prod/app`; NAME may use `*` and `?` (the
    /// trust policy then uses StringLike; --role-name is then required).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    service_account: String,
    /// An ECR repository the role may pull from: an ARN
    /// (`arn:aws:ecr:REGION:ACCOUNT:repository/NAME`, NAME may end in `*`) or an image
    /// reference (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`). Repeat for more.
    #[arg(long, required = true, value_name = "ARN|IMAGE")]
    repository: Vec<String>,
    /// Also allow listing the repositories' tags (`ecr:ListImages`, for Argo CD Image Updater).
    #[arg(long)]
    list_tags: bool,
    /// The role's name. Default: irsa-NAMESPACE-NAME (shortened with a hash past 64 characters).
    #[arg(long, value_name = "NAME")]
    role_name: Option<String>,
    /// The name of the role's inline policy holding the ECR pull permissions.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_POLICY_NAME)]
    policy_name: String,
    /// The audience the service account's token carries: the OIDC provider's client ID and the
    /// trust policy's `:aud`.
    #[arg(long, value_name = "AUD", default_value = irsa_core::names::STS_AUDIENCE)]
    audience: String,
    /// The AWS account expected (12 digits): irsa refuses to write when the credentials are for
    /// another one. Without it, the account is the one the credentials reach.
    #[arg(long, value_name = "ID", env = "IRSA_ACCOUNT")]
    account: Option<String>,
    /// The partition (aws, aws-cn, aws-us-gov, …). Default: the repositories' partition.
    #[arg(long, value_name = "PARTITION")]
    partition: Option<String>,
    /// Print the plan (create, update or unchanged for each object) and the equivalent `aws
    /// iam` commands; write nothing. Reads the account when credentials are available.
    #[arg(long)]
    dry_run: bool,
    /// Output format: text, json, or terraform (resources instead of calls).
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: SetupOutput,
}

#[derive(Debug, Args)]
pub(crate) struct ChainguardArgs {
    /// The IAM role whose sessions pull from cgr.dev, e.g. arn:aws:iam::111122223333:role/app.
    #[arg(long, value_name = "ARN")]
    role_arn: String,
    /// The Chainguard identity's name (default: the role's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The Chainguard group (organization or folder id) the identity belongs to.
    #[arg(long, value_name = "GROUP")]
    parent: Option<String>,
    /// The account's outbound identity federation issuer
    /// (`aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier`), e.g.
    /// https://0123abcd-4567-89ef-0123-456789abcdef.tokens.sts.global.api.aws.
    #[arg(long, value_name = "URL")]
    outbound_issuer: Option<String>,
    /// The role's unique id (`aws iam get-role --query Role.RoleId`, AROA…): binds the legacy
    /// identity to this role, not to a later one of the same name.
    #[arg(long, value_name = "ID")]
    role_id: Option<String>,
    /// Chainguard's issuer, as given to irsa with --chainguard-issuer: the audience of the
    /// outbound tokens irsa asks for.
    #[arg(long, value_name = "URL", default_value = irsa_aws::chainguard::DEFAULT_ISSUER)]
    chainguard_issuer: String,
    /// Output format: text for people, json for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: crate::Output,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Verdict> {
    match cmd {
        Command::Setup(args) => setup(args),
        Command::Chainguard(args) => chainguard(args),
    }
}

// ---- what is wanted

/// The three objects `setup` makes, from the flags.
#[derive(Debug, Clone)]
struct Desired {
    /// `https://host/path`, as IAM registers it.
    issuer_url: String,
    /// `host/path`: the provider ARN's resource and the condition keys' prefix.
    provider: String,
    namespace: String,
    name: String,
    audience: String,
    role_name: String,
    policy_name: String,
    partition: Partition,
    permissions: Value,
    account: Option<String>,
}

impl Desired {
    fn provider_arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:oidc-provider/{}",
            self.partition.id(),
            self.provider
        )
    }

    fn role_arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}",
            self.partition.id(),
            self.role_name
        )
    }

    fn trust_policy(&self, provider_arn: &str) -> Value {
        trust_policy::service_account_trust_policy(
            provider_arn,
            &self.provider,
            &self.namespace,
            &self.name,
            &self.audience,
        )
    }

    fn service_account(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn desired(args: &SetupArgs) -> anyhow::Result<Desired> {
    let provider =
        arn::issuer_host_path(&args.issuer).map_err(|e| Invalid(format!("--issuer: {e}")))?;
    let (namespace, name) = service_account_flag(&args.service_account)?;
    let audience = args.audience.trim();
    if audience.is_empty() || audience.len() > 255 {
        return Err(Invalid(format!(
            "--audience {:?} must be 1-255 characters (an IAM OIDC provider client ID), e.g. sts.amazonaws.com",
            args.audience
        ))
        .into());
    }
    let repositories = repository_arns(&args.repository)?;
    let repository_partition = repositories
        .first()
        .map(|r| r.partition.clone())
        .unwrap_or_else(|| Partition::Aws.id().to_owned());
    if let Some(other) = repositories
        .iter()
        .find(|r| r.partition != repository_partition)
    {
        return Err(Invalid(format!(
            "--repository: {other} is in partition {} but {} is in {repository_partition}: one role can only pull within its own partition; run setup once per partition",
            other.partition, repositories[0]
        ))
        .into());
    }
    let partition = match &args.partition {
        Some(p) => Partition::from_id(p).ok_or_else(|| {
            Invalid(format!(
                "--partition {p:?} is not a partition; use one of {}",
                Partition::ALL.map(|p| p.id()).join(", ")
            ))
        })?,
        None => Partition::from_id(&repository_partition).ok_or_else(|| {
            Invalid(format!(
                "--repository: partition {repository_partition} is unknown; pass --partition"
            ))
        })?,
    };
    if partition.id() != repository_partition {
        return Err(Invalid(format!(
            "--partition {partition} but the repositories are in {repository_partition}: a role can only pull within its own partition"
        ))
        .into());
    }
    if let Some(eks) = eks_issuer_partition(&provider).filter(|p| *p != partition) {
        return Err(Invalid(format!(
            "--issuer is an EKS cluster of partition {eks} but the role would be in {partition}: the IAM OIDC provider and the role must be in the cluster's partition"
        ))
        .into());
    }
    let role_name = match &args.role_name {
        Some(n) => {
            check_iam_name("--role-name", n, 64)?;
            n.clone()
        }
        None => default_role_name(&namespace, &name)?,
    };
    check_iam_name("--policy-name", &args.policy_name, 128)?;
    let account = match &args.account {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.clone()),
        Some(a) => {
            return Err(
                Invalid(format!("--account {a:?} must be a 12-digit AWS account id")).into(),
            );
        }
        None => None,
    };
    let arns: Vec<String> = repositories.iter().map(ToString::to_string).collect();
    Ok(Desired {
        issuer_url: format!("https://{provider}"),
        provider,
        namespace,
        name,
        audience: audience.to_owned(),
        role_name,
        policy_name: args.policy_name.clone(),
        partition,
        permissions: trust_policy::ecr_pull_policy(&arns, args.list_tags),
        account,
    })
}

/// The tags of a role setup creates: they say the role is irsa's, for this service account, so
/// that `irsa doctor --fix` mends its trust policy and permissions on --yes (any other role's
/// name must be confirmed). A wildcard, which a tag value cannot hold, gets no account tag.
fn role_tags(service_account: &str) -> Vec<(&'static str, &str)> {
    let mut tags = vec![(
        irsa_core::names::MANAGED_BY_TAG,
        irsa_core::names::IAM_SETUP_TAG_VALUE,
    )];
    if !service_account.contains(['*', '?']) {
        tags.push((irsa_core::names::SERVICE_ACCOUNT_TAG, service_account));
    }
    tags
}

/// IAM's name grammar for roles and policies: `[\w+=,.@-]{1,max}`.
fn check_iam_name(flag: &str, value: &str, max: usize) -> anyhow::Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if value.is_empty() || value.len() > max || !value.chars().all(ok_char) {
        return Err(Invalid(format!(
            "{flag} {value:?} is not an IAM name: 1-{max} letters, digits or _+=,.@-"
        ))
        .into());
    }
    Ok(())
}

/// `irsa-<namespace>-<name>`; past IAM's 64 characters, its first 55 and 8 hex digits of a
/// hash of `namespace/name`, so that two long names do not share a role.
fn default_role_name(namespace: &str, name: &str) -> anyhow::Result<String> {
    if name.contains(['*', '?']) {
        return Err(Invalid(format!(
            "--service-account {namespace}/{name} has a wildcard, which a role name cannot hold: pass --role-name"
        ))
        .into());
    }
    let full = format!("irsa-{namespace}-{name}");
    if full.len() <= 64 {
        return Ok(full);
    }
    let digest = sha2::Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let head = full[..55].trim_end_matches(['-', '.']);
    Ok(format!("{head}-{hash}"))
}

// ---- what exists, and the plan

/// What IAM holds of the three objects.
#[derive(Debug, Clone, Default)]
struct Observed {
    account: Option<String>,
    provider: Option<OidcProvider>,
    role: Option<Role>,
    policy: Option<InlinePolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Update,
    Unchanged,
}

impl Change {
    fn planned(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Unchanged => "unchanged",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Change::Create => "created",
            Change::Update => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Provider,
    Role,
    Policy,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Provider => "oidc-provider",
            Kind::Role => "role",
            Kind::Policy => "role-policy",
        }
    }
}

/// One object's plan: what changes, why, and the AWS CLI command that makes the change.
#[derive(Debug, Clone)]
struct Step {
    kind: Kind,
    /// The provider's or role's ARN, or the inline policy's `role/policy` name.
    name: String,
    change: Change,
    reason: String,
    command: Option<String>,
    /// The document written (the trust policy or the permissions), when one is.
    document: Option<Value>,
}

impl Step {
    fn label(&self) -> String {
        match self.kind {
            Kind::Provider => format!("OIDC provider {}", self.name),
            Kind::Role => format!("role {}", self.name),
            Kind::Policy => format!("inline policy {}", self.name),
        }
    }
}

/// The account placeholder of a plan made without knowing the account.
const ACCOUNT_PLACEHOLDER: &str = "ACCOUNT_ID";

/// The plan for `d` given `o`: one step per object, in the order they must be written.
fn plan(d: &Desired, o: &Observed) -> Vec<Step> {
    let account = o
        .account
        .as_deref()
        .or(d.account.as_deref())
        .unwrap_or(ACCOUNT_PLACEHOLDER);
    let provider_arn = o
        .provider
        .as_ref()
        .map_or_else(|| d.provider_arn(account), |p| p.arn.clone());
    let aud = &d.audience;
    let provider = match &o.provider {
        None => Step {
            kind: Kind::Provider,
            name: provider_arn.clone(),
            change: Change::Create,
            reason: format!("the account has no IAM OIDC provider for {}", d.issuer_url),
            command: Some(format!(
                "aws iam create-open-id-connect-provider --url {} --client-id-list {}",
                sh(&d.issuer_url),
                sh(aud)
            )),
            document: None,
        },
        Some(p) if !p.client_ids.iter().any(|c| c == aud) => Step {
            kind: Kind::Provider,
            name: provider_arn.clone(),
            change: Change::Update,
            reason: format!(
                "its client IDs {:?} lack the audience {aud:?}: it is added (the others are kept)",
                p.client_ids
            ),
            command: Some(format!(
                "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {} --client-id {}",
                sh(&provider_arn),
                sh(aud)
            )),
            document: None,
        },
        Some(_) => Step {
            kind: Kind::Provider,
            name: provider_arn.clone(),
            change: Change::Unchanged,
            reason: format!("its client IDs include {aud:?}"),
            command: None,
            document: None,
        },
    };
    let trust = d.trust_policy(&provider_arn);
    let trust_text = trust.to_string();
    let role_arn = o
        .role
        .as_ref()
        .map_or_else(|| d.role_arn(account), |r| r.arn.clone());
    let sa = d.service_account();
    let role = match &o.role {
        None => Step {
            kind: Kind::Role,
            name: role_arn.clone(),
            change: Change::Create,
            reason: format!("no role named {}; it will trust {sa}", d.role_name),
            command: Some(format!(
                "aws iam create-role --role-name {} --tags {} --assume-role-policy-document {}",
                sh(&d.role_name),
                role_tags(&sa)
                    .iter()
                    .map(|(k, v)| sh(&format!("Key={k},Value={v}")))
                    .collect::<Vec<_>>()
                    .join(" "),
                sh(&trust_text)
            )),
            document: Some(trust.clone()),
        },
        Some(r)
            if !r
                .trust_policy
                .as_deref()
                .is_some_and(|t| same_document(t, &trust)) =>
        {
            Step {
                kind: Kind::Role,
                name: role_arn.clone(),
                change: Change::Update,
                reason: format!(
                    "its trust policy is not the one for {sa} through {}: it is replaced",
                    d.provider
                ),
                command: Some(format!(
                    "aws iam update-assume-role-policy --role-name {} --policy-document {}",
                    sh(&d.role_name),
                    sh(&trust_text)
                )),
                document: Some(trust.clone()),
            }
        }
        Some(_) => Step {
            kind: Kind::Role,
            name: role_arn.clone(),
            change: Change::Unchanged,
            reason: format!("its trust policy trusts {sa}"),
            command: None,
            document: None,
        },
    };
    let permissions_text = d.permissions.to_string();
    let put = Some(format!(
        "aws iam put-role-policy --role-name {} --policy-name {} --policy-document {}",
        sh(&d.role_name),
        sh(&d.policy_name),
        sh(&permissions_text)
    ));
    let policy_name = format!("{}/{}", d.role_name, d.policy_name);
    let policy = match &o.policy {
        None => Step {
            kind: Kind::Policy,
            name: policy_name,
            change: Change::Create,
            reason: format!(
                "the role has no inline policy {}; it will allow the ECR pull",
                d.policy_name
            ),
            command: put,
            document: Some(d.permissions.clone()),
        },
        Some(p) if !same_document(&p.document, &d.permissions) => Step {
            kind: Kind::Policy,
            name: policy_name,
            change: Change::Update,
            reason: "its document is not the ECR pull permissions wanted: it is replaced"
                .to_owned(),
            command: put,
            document: Some(d.permissions.clone()),
        },
        Some(_) => Step {
            kind: Kind::Policy,
            name: policy_name,
            change: Change::Unchanged,
            reason: "it allows the ECR pull wanted".to_owned(),
            command: None,
            document: None,
        },
    };
    vec![provider, role, policy]
}

/// The account a provider or role ARN names.
fn account_of_provider(arn: &str) -> Option<String> {
    arn.parse::<OidcProviderArn>().ok().map(|a| a.account)
}

fn account_of_role(arn: &str) -> Option<String> {
    arn.parse::<RoleArn>().ok().map(|a| a.account)
}

/// Reads what IAM holds of the three objects, and the account the credentials act in.
async fn observe(client: &IamClient, d: &Desired) -> Result<Observed, IamError> {
    let arns = client.list_open_id_connect_providers().await?;
    let wanted_suffix = format!(":oidc-provider/{}", d.provider);
    let wanted_prefix = format!("arn:{}:iam::", d.partition.id());
    let matching = arns
        .iter()
        .find(|a| a.starts_with(&wanted_prefix) && a.ends_with(&wanted_suffix));
    let provider = match matching {
        Some(arn) => client.get_open_id_connect_provider(arn).await?,
        None => None,
    };
    let role = client.get_role(&d.role_name).await?;
    let policy = match &role {
        Some(_) => client.get_role_policy(&d.role_name, &d.policy_name).await?,
        None => None,
    };
    // The account comes from the caller (sts:GetCallerIdentity), never only from ARNs IAM
    // returns: when neither object exists yet, those name no account, and `--account` must be
    // checked before the first write, not after it.
    let account = Some(client.caller_account().await?);
    Ok(Observed {
        account,
        provider,
        role,
        policy,
    })
}

fn check_account(d: &Desired, found: Option<&str>) -> anyhow::Result<()> {
    match (d.account.as_deref(), found) {
        (Some(wanted), Some(found)) if wanted != found => Err(Invalid(format!(
            "--account {wanted} but the AWS credentials reach account {found}: run with credentials of {wanted}, or drop --account"
        ))
        .into()),
        _ => Ok(()),
    }
}

// ---- setup

fn setup(args: SetupArgs) -> anyhow::Result<Verdict> {
    let d = desired(&args)?;
    if args.output == SetupOutput::Terraform {
        print!("{}", terraform(&d));
        return Ok(Verdict::Ok);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.dry_run {
            dry_run(&d, args.output).await
        } else {
            apply(&d, args.output).await
        }
    })
}

async fn dry_run(d: &Desired, output: SetupOutput) -> anyhow::Result<Verdict> {
    let read = match IamClient::from_env(&Env::Process, d.partition).await {
        Ok(client) => observe(&client, d).await,
        Err(e) => Err(e),
    };
    let (observed, note) = match read {
        Ok(o) => {
            check_account(d, o.account.as_deref())?;
            (o, None)
        }
        Err(e) => (
            Observed::default(),
            Some(format!(
                "could not read the account ({e}); the plan assumes none of the objects exists"
            )),
        ),
    };
    let steps = plan(d, &observed);
    let account = observed.account.clone().or(d.account.clone());
    report(d, &steps, account.as_deref(), true, note.as_deref(), output)?;
    Ok(Verdict::Ok)
}

async fn apply(d: &Desired, output: SetupOutput) -> anyhow::Result<Verdict> {
    let client = IamClient::from_env(&Env::Process, d.partition).await?;
    let mut observed = observe(&client, d).await?;
    check_account(d, observed.account.as_deref())?;
    let aud = std::slice::from_ref(&d.audience);

    // 1. The provider: its ARN names the account when nothing else did.
    let first = plan(d, &observed);
    let mut provider_step = first[0].clone();
    match provider_step.change {
        Change::Create => {
            let arn = client
                .create_open_id_connect_provider(&d.issuer_url, aud, &[])
                .await?;
            provider_step.name = arn.clone();
            let account = account_of_provider(&arn);
            check_account(d, account.as_deref())?;
            observed.account = observed.account.or(account);
            observed.provider = Some(OidcProvider {
                arn,
                url: d.provider.clone(),
                client_ids: aud.to_vec(),
                thumbprints: Vec::new(),
            });
        }
        Change::Update => {
            client
                .add_client_id_to_open_id_connect_provider(&provider_step.name, &d.audience)
                .await?;
            if let Some(p) = observed.provider.as_mut() {
                p.client_ids.push(d.audience.clone());
            }
        }
        Change::Unchanged => {}
    }

    // 2. and 3.: planned again, now that the provider ARN is known.
    let mut steps = plan(d, &observed);
    steps[0] = provider_step;
    let trust = steps[1].document.clone().unwrap_or(Value::Null);
    match steps[1].change {
        Change::Create => {
            let description = format!(
                "irsa: web identity of service account {} (issuer {})",
                d.service_account(),
                d.issuer_url
            );
            let service_account = d.service_account();
            let tags = role_tags(&service_account);
            let role = client
                .create_role(&d.role_name, "/", &trust, Some(&description), &tags)
                .await?;
            steps[1].name = role.arn.clone();
            observed.account = observed.account.or_else(|| account_of_role(&role.arn));
        }
        Change::Update => {
            client
                .update_assume_role_policy(&d.role_name, &trust)
                .await?
        }
        Change::Unchanged => {}
    }
    if steps[2].change != Change::Unchanged {
        client
            .put_role_policy(&d.role_name, &d.policy_name, &d.permissions)
            .await?;
    }
    report(d, &steps, observed.account.as_deref(), false, None, output)?;
    Ok(Verdict::Ok)
}

/// Prints the plan (`dry_run`) or what was done.
fn report(
    d: &Desired,
    steps: &[Step],
    account: Option<&str>,
    dry_run: bool,
    note: Option<&str>,
    output: SetupOutput,
) -> anyhow::Result<()> {
    let writes = steps
        .iter()
        .filter(|s| s.change != Change::Unchanged)
        .count();
    let role_arn = steps
        .iter()
        .find(|s| s.kind == Kind::Role)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let commands: Vec<&str> = steps.iter().filter_map(|s| s.command.as_deref()).collect();
    let annotate = format!(
        "kubectl annotate serviceaccount --overwrite -n {} {} {}",
        sh(&d.namespace),
        sh(&d.name),
        sh(&format!("eks.amazonaws.com/role-arn={role_arn}"))
    );
    if output == SetupOutput::Json {
        let objects: Vec<Value> = steps
            .iter()
            .map(|s| {
                json!({
                    "kind": s.kind.id(),
                    "name": s.name,
                    "change": if dry_run { s.change.planned() } else { s.change.done() },
                    "reason": s.reason,
                })
            })
            .collect();
        return print_json(
            &json!({
                "dryRun": dry_run,
                "account": account,
                "roleArn": role_arn,
                "writes": writes,
                "objects": objects,
                "commands": commands,
                "annotate": annotate,
                "note": note,
            }),
            true,
        );
    }
    if let Some(note) = note {
        println!("note: {note}");
    }
    if dry_run {
        println!("Plan (dry run: nothing is written):");
    }
    for s in steps {
        let change = if dry_run {
            s.change.planned()
        } else {
            s.change.done()
        };
        println!("  {}: {change} ({})", s.label(), s.reason);
    }
    if dry_run {
        if commands.is_empty() {
            println!("unchanged: every object is as wanted; setup would make no IAM write");
        } else {
            println!("\nThe same with the AWS CLI:");
            for c in &commands {
                println!("  {c}");
            }
        }
    } else if writes == 0 {
        println!("unchanged: every object is as wanted; no IAM write was made");
    } else {
        println!("{writes} IAM write(s) made.");
    }
    println!("\nThen annotate the service account:\n  {annotate}");
    Ok(())
}

// ---- Terraform

/// The three objects as Terraform resources of the AWS provider. The role's trust policy names
/// the provider resource's ARN, so the account is Terraform's to know.
fn terraform(d: &Desired) -> String {
    let provider_label = label(&d.provider);
    let role_label = label(&d.role_name);
    let policy_label = label(&format!("{}_{}", d.role_name, d.policy_name));
    let arn_marker = "\u{0}provider-arn\u{0}";
    let trust = d.trust_policy(arn_marker);
    let provider_ref = format!("aws_iam_openid_connect_provider.{provider_label}.arn");
    let subst = |s: &str| (s == arn_marker).then(|| provider_ref.clone());
    let mut out = String::new();
    out.push_str(&format!(
        "# irsa iam setup --output terraform: the IAM OIDC provider of {}, a role for service\n\
         # account {} and its ECR pull permissions (the documents of `irsa policy trust` and\n\
         # `irsa policy ecr-pull`). Declare the provider once per cluster and account: other roles\n\
         # of the same cluster refer to aws_iam_openid_connect_provider.{provider_label}.\n\
         # thumbprint_list is left out: AWS verifies the issuer's certificate with its trusted CAs\n\
         # (AWS provider versions that still require the argument need it set).\n\n",
        d.issuer_url,
        d.service_account()
    ));
    out.push_str(&format!(
        "resource \"aws_iam_openid_connect_provider\" \"{provider_label}\" {{\n  url            = {}\n  client_id_list = [{}]\n}}\n\n",
        hcl_string(&d.issuer_url),
        hcl_string(&d.audience)
    ));
    out.push_str(&format!(
        "resource \"aws_iam_role\" \"{role_label}\" {{\n  name               = {}\n  description        = {}\n  assume_role_policy = jsonencode({})\n}}\n\n",
        hcl_string(&d.role_name),
        hcl_string(&format!(
            "irsa: web identity of service account {} (issuer {})",
            d.service_account(),
            d.issuer_url
        )),
        hcl_value(&trust, 1, &subst)
    ));
    out.push_str(&format!(
        "resource \"aws_iam_role_policy\" \"{policy_label}\" {{\n  name   = {}\n  role   = aws_iam_role.{role_label}.name\n  policy = jsonencode({})\n}}\n\n",
        hcl_string(&d.policy_name),
        hcl_value(&d.permissions, 1, &|_| None)
    ));
    out.push_str(&format!(
        "output \"{role_label}_role_arn\" {{\n  description = \"Annotate the service account with it: eks.amazonaws.com/role-arn\"\n  value       = aws_iam_role.{role_label}.arn\n}}\n"
    ));
    out
}

/// A Terraform identifier from `name`: letters, digits, `_` and `-`, starting with a letter.
fn label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "r_");
    }
    out
}

/// An HCL quoted string: JSON's escapes, and `${` / `%{` escaped as `$${` / `%%{` so that no
/// policy text (IAM's own `${aws:username}`) is read as a Terraform template.
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` as an HCL expression, indented for `depth`; a string `subst` maps is written as the
/// raw expression it returns (a resource reference).
fn hcl_value(value: &Value, depth: usize, subst: &dyn Fn(&str) -> Option<String>) -> String {
    let pad = "  ".repeat(depth);
    let inner = "  ".repeat(depth + 1);
    match value {
        Value::String(s) => subst(s).unwrap_or_else(|| hcl_string(s)),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Array(items) => {
            let body: Vec<String> = items
                .iter()
                .map(|v| format!("{inner}{}", hcl_value(v, depth + 1, subst)))
                .collect();
            format!("[\n{},\n{pad}]", body.join(",\n"))
        }
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let body: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{inner}{} = {}",
                        hcl_string(k),
                        hcl_value(v, depth + 1, subst)
                    )
                })
                .collect();
            format!("{{\n{}\n{pad}}}", body.join("\n"))
        }
        other => other.to_string(),
    }
}

// ---- Chainguard

/// The role of a Chainguard identity that may pull images.
const REGISTRY_PULL_ROLE: &str = "registry.pull";

/// The inline policy name suggested for the `sts:GetWebIdentityToken` permission.
const WEB_IDENTITY_TOKEN_POLICY_NAME: &str = "irsa-chainguard-web-identity-token";

// What Chainguard needs, from Chainguard's and AWS's documentation (checked 2026-12):
// - legacy method: `chainctl iam identities create aws role NAME --aws-account-id=ACCOUNT
//   --aws-role-name=NAME [--aws-role-id=ID] [--aws-partition=PARTITION] [--parent=PARENT]
//   [--role=ROLE,…]` (chainctl reference, "chainctl iam identities create aws role"); the same
//   identity as JSON is `{"name", "awsIdentity": {"aws_account", "arnPattern", "userIdPattern"}}`
//   for `chainctl iam identities create --filename` (Chainguard's "Create an Assumable Identity
//   to Authenticate from AWS", legacy page). irsa signs GetCallerIdentity with the role's
//   session, whose ARN is arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION and whose user id
//   is ROLEID:SESSION.
// - outbound federation: `chainctl iam identities create NAME --identity-issuer=ISS
//   --subject=SUB [--parent=PARENT] [--role=…]` (chainctl reference, "chainctl iam identities
//   create"), with ISS the account's issuer `https://<id>.tokens.sts.global.api.aws` (IAM's
//   EnableOutboundWebIdentityFederation / GetOutboundWebIdentityFederationInfo `IssuerIdentifier`,
//   and Chainguard's outbound-federation guide) and SUB the role ARN (the `sub` STS puts in
//   GetWebIdentityToken's JWT for a role). The role needs sts:GetWebIdentityToken, which that
//   guide scopes with `ForAnyValue:StringEquals` on `sts:IdentityTokenAudience` and
//   `NumericLessThanEquals` on `sts:DurationSeconds`.

fn chainguard(args: ChainguardArgs) -> anyhow::Result<Verdict> {
    let role: RoleArn = args
        .role_arn
        .trim()
        .parse()
        .map_err(|e| Invalid(format!("--role-arn: {e}")))?;
    let name = args.name.clone().unwrap_or_else(|| role.name.clone());
    if name.is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control()) {
        return Err(Invalid(format!(
            "--name {name:?} must be 1-100 printable characters (the Chainguard identity's name)"
        ))
        .into());
    }
    if let Some(parent) = &args.parent {
        let ok = parent
            .split('/')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(Invalid(format!(
                "--parent {parent:?} is not a Chainguard group id: hexadecimal ids joined by '/', as `chainctl iam folders list` prints them"
            ))
            .into());
        }
    }
    if let Some(id) = &args.role_id
        && (id.len() < 16
            || id.len() > 128
            || !id.starts_with("AROA")
            || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(Invalid(format!(
            "--role-id {id:?} is not a role's unique id: it starts with AROA and is letters and digits (`aws iam get-role --role-name {} --query Role.RoleId`)",
            role.name
        ))
        .into());
    }
    let issuer = match &args.outbound_issuer {
        Some(url) => Some(outbound_issuer(url)?),
        None => None,
    };
    let audience = args.chainguard_issuer.trim_end_matches('/').to_owned();
    if !(audience.starts_with("https://") || audience.starts_with("http://")) {
        return Err(Invalid(format!(
            "--chainguard-issuer {audience:?} must be an http(s) URL, e.g. {}",
            irsa_aws::chainguard::DEFAULT_ISSUER
        ))
        .into());
    }
    let out = chainguard_output(&role, &name, &args, issuer.as_deref(), &audience);
    match args.output {
        crate::Output::Json => print_json(&out, true)?,
        crate::Output::Text => print!("{}", chainguard_text(&role, &out)),
    }
    Ok(Verdict::Ok)
}

/// `--outbound-issuer`, checked: an https URL on `tokens.sts.global.api.aws` (or another
/// partition's equivalent under `tokens.sts.`), without a path.
fn outbound_issuer(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let host = url.strip_prefix("https://").unwrap_or_default();
    let ok = !host.is_empty()
        && !host.contains(['/', '?', '#', '@', ':'])
        && host.contains(".tokens.sts.")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !ok {
        return Err(Invalid(format!(
            "--outbound-issuer {url:?} is not an outbound identity federation issuer: it looks like https://<id>.tokens.sts.global.api.aws (`aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text`)"
        ))
        .into());
    }
    Ok(url.to_owned())
}

/// Regular-expression text matching `s` literally.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn chainguard_output(
    role: &RoleArn,
    name: &str,
    args: &ChainguardArgs,
    issuer: Option<&str>,
    audience: &str,
) -> Value {
    let parent = args
        .parent
        .as_deref()
        .map(|p| format!(" --parent={}", sh(p)))
        .unwrap_or_default();
    let role_id = args.role_id.as_deref();
    let mut legacy_command = format!(
        "chainctl iam identities create aws role {} --aws-account-id={} --aws-role-name={}",
        sh(name),
        sh(&role.account),
        sh(&role.name)
    );
    if let Some(id) = role_id {
        legacy_command.push_str(&format!(" --aws-role-id={}", sh(id)));
    }
    if role.partition != "aws" {
        legacy_command.push_str(&format!(" --aws-partition={}", sh(&role.partition)));
    }
    legacy_command.push_str(&format!("{parent} --role={REGISTRY_PULL_ROLE}"));
    let mut aws_identity = json!({
        "aws_account": role.account,
        "arnPattern": format!(
            "^{}$",
            regex_literal(&format!(
                "arn:{}:sts::{}:assumed-role/{}/",
                role.partition, role.account, role.name
            )) + ".+"
        ),
    });
    if let Some(id) = role_id {
        aws_identity["userIdPattern"] = json!(format!("^{}:.+$", regex_literal(id)));
    }
    let issuer_text = issuer.unwrap_or("https://<id>.tokens.sts.global.api.aws");
    let permission = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ChainguardWebIdentityToken",
            "Effect": "Allow",
            "Action": "sts:GetWebIdentityToken",
            "Resource": "*",
            "Condition": {
                "ForAnyValue:StringEquals": { "sts:IdentityTokenAudience": audience },
                "NumericLessThanEquals": {
                    "sts:DurationSeconds": irsa_aws::sts::WEB_IDENTITY_TOKEN_SECONDS
                },
            },
        }],
    });
    let role_arn = role.to_string();
    let outbound_command = format!(
        "chainctl iam identities create {} --identity-issuer={} --subject={}{parent} --role={REGISTRY_PULL_ROLE}",
        sh(name),
        sh(issuer_text),
        sh(&role_arn)
    );
    let mut outbound_steps = Vec::new();
    if issuer.is_none() {
        outbound_steps.push(
            "aws iam enable-outbound-web-identity-federation   # once per account; prints IssuerIdentifier"
                .to_owned(),
        );
        outbound_steps.push(
            "aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text"
                .to_owned(),
        );
    }
    outbound_steps.push(format!(
        "aws iam put-role-policy --role-name {} --policy-name {WEB_IDENTITY_TOKEN_POLICY_NAME} --policy-document {}",
        sh(&role.name),
        sh(&permission.to_string())
    ));
    outbound_steps.push(outbound_command.clone());
    json!({
        "roleArn": role_arn,
        "getCallerIdentity": {
            "method": irsa_core::chainguard::ChainguardMethod::GetCallerIdentity.as_str(),
            "identity": { "name": name, "awsIdentity": aws_identity },
            "command": legacy_command,
        },
        "webIdentityToken": {
            "method": irsa_core::chainguard::ChainguardMethod::WebIdentityToken.as_str(),
            "issuer": issuer,
            "subject": role_arn,
            "audience": audience,
            "permissionsPolicy": permission,
            "permissionsPolicyName": WEB_IDENTITY_TOKEN_POLICY_NAME,
            "command": outbound_command,
            "steps": outbound_steps,
        },
    })
}

fn chainguard_text(role: &RoleArn, out: &Value) -> String {
    let legacy = &out["getCallerIdentity"];
    let outbound = &out["webIdentityToken"];
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let mut text = String::new();
    text.push_str(&format!(
        "Chainguard identities for role {role}\n\n\
         1. --chainguard-method get-caller-identity (irsa's default; Chainguard's awsIdentity):\n  \
         {}\n  \
         or, as a file for `chainctl iam identities create --filename identity.json`:\n",
        legacy["command"].as_str().unwrap_or_default()
    ));
    text.push_str(&indent(pretty(&legacy["identity"])));
    if legacy["identity"]["awsIdentity"]["userIdPattern"].is_null() {
        text.push_str(
            "  (add --role-id AROA… to bind the identity to this role only, not to a later role of the same name)\n",
        );
    }
    text.push_str(
        "\n2. --chainguard-method web-identity-token (IAM outbound identity federation):\n",
    );
    if outbound["issuer"].is_null() {
        text.push_str(
            "  Replace <id> below with the account's issuer (or pass --outbound-issuer).\n",
        );
    }
    text.push_str(&format!(
        "  issuer  {}\n  subject {}\n  The role needs sts:GetWebIdentityToken for audience {}:\n",
        outbound["issuer"]
            .as_str()
            .unwrap_or("https://<id>.tokens.sts.global.api.aws"),
        outbound["subject"].as_str().unwrap_or_default(),
        outbound["audience"].as_str().unwrap_or_default()
    ));
    text.push_str(&indent(pretty(&outbound["permissionsPolicy"])));
    text.push_str("  Steps:\n");
    for step in outbound["steps"].as_array().into_iter().flatten() {
        text.push_str(&format!("    {}\n", step.as_str().unwrap_or_default()));
    }
    text.push_str(
        "\nThen pull with the identity id chainctl prints, e.g.\n  \
         irsa login cgr.dev --chainguard-identity <id> [--chainguard-method web-identity-token]\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sa: &str, repos: &[&str]) -> SetupArgs {
        SetupArgs {
            issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE".into(),
            service_account: sa.into(),
            repository: repos.iter().map(|r| (*r).to_owned()).collect(),
            list_tags: false,
            role_name: None,
            policy_name: DEFAULT_POLICY_NAME.into(),
            audience: "sts.amazonaws.com".into(),
            account: None,
            partition: None,
            dry_run: false,
            output: SetupOutput::Text,
        }
    }

    const REPO: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app";

    #[test]
    fn a_plan_against_nothing_creates_all_three_and_one_against_everything_changes_nothing() {
        let d = desired(&args("prod/app", &[REPO])).unwrap();
        assert_eq!(d.role_name, "irsa-prod-app");
        let steps = plan(&d, &Observed::default());
        assert!(steps.iter().all(|s| s.change == Change::Create));
        assert!(steps[0].name.contains(ACCOUNT_PLACEHOLDER));
        let account = "111122223333";
        let provider_arn = d.provider_arn(account);
        let trust = d.trust_policy(&provider_arn);
        // What IAM returns: the same documents, URL-encoded and with other spacing.
        let encode = |v: &Value| {
            serde_json::to_string_pretty(v)
                .unwrap()
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        };
        let observed = Observed {
            account: Some(account.into()),
            provider: Some(OidcProvider {
                arn: provider_arn.clone(),
                url: d.provider.clone(),
                client_ids: vec!["other".into(), "sts.amazonaws.com".into()],
                thumbprints: vec![],
            }),
            role: Some(Role {
                name: d.role_name.clone(),
                arn: d.role_arn(account),
                path: "/".into(),
                role_id: "AROAEXAMPLE".into(),
                trust_policy: Some(
                    irsa_core::trust_policy::decode_policy_document(&encode(&trust)).unwrap(),
                ),
                max_session_duration: Some(3600),
                permissions_boundary: None,
                tags: Vec::new(),
            }),
            policy: Some(InlinePolicy {
                role_name: d.role_name.clone(),
                name: d.policy_name.clone(),
                document: serde_json::to_string_pretty(&d.permissions).unwrap(),
            }),
        };
        let steps = plan(&d, &observed);
        assert!(
            steps.iter().all(|s| s.change == Change::Unchanged),
            "{steps:?}"
        );
        assert!(steps.iter().all(|s| s.command.is_none()));
        // Another namespace: only the trust policy changes.
        let other = desired(&args("staging/app", &[REPO])).unwrap();
        let other = Desired {
            role_name: d.role_name.clone(),
            ..other
        };
        let steps = plan(&other, &observed);
        let changes: Vec<Change> = steps.iter().map(|s| s.change).collect();
        assert_eq!(
            changes,
            [Change::Unchanged, Change::Update, Change::Unchanged]
        );
        assert!(steps[1].command.as_deref().unwrap().starts_with(
            "aws iam update-assume-role-policy --role-name irsa-prod-app --policy-document '{"
        ));
        // A provider without the audience gets it added.
        let mut no_aud = observed.clone();
        no_aud.provider.as_mut().unwrap().client_ids = vec!["other".into()];
        let steps = plan(&d, &no_aud);
        assert_eq!(steps[0].change, Change::Update);
        assert!(
            steps[0]
                .command
                .as_deref()
                .unwrap()
                .contains("add-client-id-to-open-id-connect-provider")
        );
    }

    #[test]
    fn bad_input_is_refused_naming_the_flag() {
        let cases: Vec<(SetupArgs, &str)> = vec![
            (
                SetupArgs {
                    issuer: "http://oidc.example.com".into(),
                    ..args("prod/app", &[REPO])
                },
                "--issuer",
            ),
            (args("prod", &[REPO]), "NAMESPACE/NAME"),
            (args("prod/App", &[REPO]), "--service-account"),
            (args("prod/app", &["docker.io/library/nginx"]), "not an ECR"),
            (args("ci/runner-*", &[REPO]), "--role-name"),
            (
                SetupArgs {
                    role_name: Some("a/b".into()),
                    ..args("prod/app", &[REPO])
                },
                "--role-name",
            ),
            (
                SetupArgs {
                    account: Some("12".into()),
                    ..args("prod/app", &[REPO])
                },
                "--account",
            ),
            (
                args(
                    "prod/app",
                    &[
                        REPO,
                        "arn:aws-us-gov:ecr:us-gov-west-1:111122223333:repository/x",
                    ],
                ),
                "partition",
            ),
            (
                SetupArgs {
                    partition: Some("aws-cn".into()),
                    ..args("prod/app", &[REPO])
                },
                "--partition",
            ),
        ];
        for (a, needle) in cases {
            let err = desired(&a).unwrap_err();
            assert!(err.is::<Invalid>(), "{err}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn long_role_names_are_shortened_with_a_hash() {
        let ns = "n".repeat(40);
        let a = default_role_name(&ns, &"a".repeat(40)).unwrap();
        let b = default_role_name(&ns, &format!("{}b", "a".repeat(39))).unwrap();
        assert!(a.len() <= 64 && b.len() <= 64, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.starts_with("irsa-nnnn"));
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(sh("sts.amazonaws.com"), "sts.amazonaws.com");
        assert_eq!(sh("https://x/y"), "https://x/y");
        assert_eq!(sh(r#"{"a":"b c"}"#), r#"'{"a":"b c"}'"#);
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn hcl_strings_escape_templates_and_quotes() {
        assert_eq!(hcl_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(hcl_string("${aws:username}"), r#""$${aws:username}""#);
        assert_eq!(hcl_string("%{if}"), r#""%%{if}""#);
        assert_eq!(hcl_string("$x %y"), r#""$x %y""#);
        assert_eq!(label("oidc.example.com/id/X"), "oidc_example_com_id_X");
        assert_eq!(label("1abc"), "r_1abc");
    }
}
