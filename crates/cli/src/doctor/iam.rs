//! The AWS account's links, read with the caller's own credentials (read-only IAM calls): the
//! IAM OIDC provider of the cluster's issuer and its client IDs, the role, its trust policy and
//! its permissions.

use irsa_aws::iam::{IamClient, IamError, OidcProvider, Role, SimulatedDecision};
use irsa_core::arn::{OidcProviderArn, RoleArn};
use irsa_core::partition::Partition;
use irsa_core::permission_policy::{self, PermissionOutcome, PermissionPolicy};
use irsa_core::trust_policy::{ECR_PULL_ACTIONS, ECR_PULL_REQUIRED_ACTIONS, PolicyDocument};
use serde::Serialize;
use serde_json::{Value, json};

use super::Chain;
use super::fix::{Action, Change, PULL_POLICY_NAME, ownership, trusts_only};
use super::report::{Check, Fix, Group, Report};
use super::trust::{Provider, TrustContext, session_tags_check, trust_policy_check};
use crate::shell::sh;
use irsa_core::names::STS_AUDIENCE;

/// The action a pull needs on `*`.
const GET_AUTHORIZATION_TOKEN: &str = "ecr:GetAuthorizationToken";

/// A client for the role's partition, or why there is none.
pub(crate) async fn client(role: &RoleArn) -> Result<IamClient, String> {
    let partition = Partition::from_id(&role.partition).ok_or_else(|| {
        format!(
            "partition {} has no IAM endpoint irsa knows",
            role.partition
        )
    })?;
    IamClient::from_env(&irsa_aws::Env::Process, partition)
        .await
        .map_err(|e| e.to_string())
}

fn could_not(id: &'static str, e: &IamError) -> Check {
    let mut check = Check::error(id, Group::Aws, format!("could not read it: {e}"));
    if e.is_access_denied() {
        check = check.detail(format!(
            "doctor reads IAM with your credentials; they need iam:{} (read-only)",
            e.action().unwrap_or("Get*")
        ));
    }
    check
}

/// Setup commands that create the provider (and the rest of the AWS side).
fn provider_fix(issuer: &str, audience: &str, namespace: &str, name: &str, role: &RoleArn) -> Fix {
    Fix::new(format!("register the cluster's issuer as an IAM OIDC provider with client ID {audience}"))
        .command(format!(
            "aws iam create-open-id-connect-provider --url {} --client-id-list {}",
            sh(issuer),
            sh(audience)
        ))
        .command(format!(
            "irsa iam setup --issuer {} --service-account {} --role-name {} --repository {}   # or: the whole AWS side at once",
            sh(issuer),
            sh(&format!("{namespace}/{name}")),
            sh(&role.name),
            sh(&format!("arn:{}:ecr:REGION:{}:repository/*", role.partition, role.account))
        ))
}

/// Whether the IAM OIDC provider for `issuer` exists in the role's account; on a miss, the
/// near misses (a trailing slash, another cluster's id on the same host).
pub(crate) async fn oidc_provider(
    iam: &IamClient,
    provider: &OidcProviderArn,
    issuer: &str,
    audience: &str,
    (namespace, name): (&str, &str),
    role: &RoleArn,
) -> (Check, Option<OidcProvider>) {
    const ID: &str = "oidc-provider";
    let arn = provider.to_string();
    match iam.get_open_id_connect_provider(&arn).await {
        Ok(Some(p)) => {
            let check = provider_found(&arn, &p, issuer);
            let found = check.passed().then_some(p);
            (check, found)
        }
        Ok(None) => {
            let mut check = Check::fail(
                ID,
                Group::Aws,
                format!(
                    "no IAM OIDC provider {arn}: STS answers InvalidIdentityToken for every token of this cluster"
                ),
            );
            match iam.list_open_id_connect_providers().await {
                Ok(arns) => {
                    let host = provider.provider.split('/').next().unwrap_or_default();
                    let near: Vec<String> = arns
                        .into_iter()
                        .filter(|a| {
                            a.parse::<OidcProviderArn>().is_ok_and(|p| {
                                p.provider.trim_end_matches('/')
                                    == provider.provider.trim_end_matches('/')
                                    || p.provider.split('/').next() == Some(host)
                            })
                        })
                        .collect();
                    for n in &near {
                        let why = if n.trim_end_matches('/') == arn.trim_end_matches('/') {
                            "differs only by a trailing slash, which makes it another issuer"
                        } else {
                            "is on the same host with another path: another cluster's issuer"
                        };
                        check = check.detail(format!("{n} {why}"));
                    }
                    check = check.expected_actual(json!(arn), json!(near));
                }
                Err(e) => {
                    check = check.detail(format!("could not list the account's providers: {e}"));
                }
            }
            let change = Change::new(
                format!("create the IAM OIDC provider {issuer} with client ID {audience}"),
                format!("IAM OIDC provider {arn}"),
                Value::Null,
                json!({"Url": issuer, "ClientIDList": [audience]}),
                Action::CreateOidcProvider {
                    url: issuer.to_owned(),
                    client_ids: vec![audience.to_owned()],
                    partition: role.partition.clone(),
                    account: role.account.clone(),
                },
            );
            let change = confirm_audience(change, audience, &role.name);
            (
                check
                    .fix(provider_fix(issuer, audience, namespace, name, role))
                    .with_change(change),
                None,
            )
        }
        Err(e) => (could_not(ID, &e), None),
    }
}

/// The provider IAM found for the issuer: its URL must be the issuer itself, compared as is.
fn provider_found(arn: &str, p: &OidcProvider, issuer: &str) -> Check {
    const ID: &str = "oidc-provider";
    let provider_url = format!("https://{}", p.url);
    if issuer != provider_url && issuer.trim_end_matches('/') == provider_url.trim_end_matches('/')
    {
        return Check::fail(
            ID,
            Group::Aws,
            format!(
                "the trailing slash trap: the cluster's issuer {issuer} and the provider's URL {provider_url} differ only by a trailing slash; tokens carry iss {issuer}, and STS looks the provider up by iss exactly (InvalidIdentityToken: no OpenIDConnect provider found)"
            ),
        )
        .detail("IAM stores provider URLs without a trailing slash, so the fix is on the cluster's side")
        .expected_actual(json!(provider_url), json!(issuer))
        .fix(Fix::new(format!(
            "set the API server's --service-account-issuer to {} (no trailing slash), keeping the discovery document's issuer and jwks_uri in step",
            issuer.trim_end_matches('/')
        )));
    }
    let mut check = Check::pass(ID, Group::Aws, arn.to_owned())
        .data("arn", json!(arn))
        .data("client_ids", json!(p.client_ids));
    if !p.thumbprints.is_empty() {
        check = check.detail(format!(
            "thumbprints {} (AWS no longer uses them for most issuers, which it verifies with trusted CAs)",
            p.thumbprints.join(", ")
        ));
    }
    check
}

/// An audience other than STS's own comes from the service account's annotation, a tenant's:
/// taking it into the account's OIDC provider lets every role of that provider that checks
/// only `:sub` accept tokens meant for it, so `--yes` alone does not (review M3).
fn confirm_audience(change: Change, audience: &str, role_name: &str) -> Change {
    if audience == STS_AUDIENCE {
        change
    } else {
        change.confirm_role(
            role_name,
            format!(
                "the audience {} comes from the service account's {} annotation; as a client ID of the account's OIDC provider it is accepted by every role of that provider whose trust policy does not check :aud",
                super::report::printable(audience),
                irsa_core::names::AUDIENCE_ANNOTATION
            ),
        )
    }
}

/// Whether the provider's client IDs include the token's audience; the change, confirmed with
/// `role_name` unless the audience is STS's own.
pub(crate) fn oidc_audience(provider: &OidcProvider, audience: &str, role_name: &str) -> Check {
    const ID: &str = "oidc-audience";
    if provider.client_ids.iter().any(|c| c == audience) {
        return Check::pass(ID, Group::Aws, format!("client IDs include {audience}"));
    }
    Check::fail(
        ID,
        Group::Aws,
        format!("the provider's client IDs do not include the token's audience {audience}: STS answers InvalidIdentityToken"),
    )
    .expected_actual(json!(audience), json!(provider.client_ids))
    .fix(
        Fix::new(format!("add {audience} to the provider's client IDs")).command(format!(
            "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {} --client-id {}",
            sh(&provider.arn),
            sh(audience)
        )),
    )
    .with_change({
        let mut after = provider.client_ids.clone();
        after.push(audience.to_owned());
        let change = Change::new(
            format!("add {audience} to the client IDs of the IAM OIDC provider"),
            format!("IAM OIDC provider {}", provider.arn),
            json!({"ClientIDList": provider.client_ids}),
            json!({"ClientIDList": after}),
            Action::AddClientId {
                provider_arn: provider.arn.clone(),
                client_id: audience.to_owned(),
            },
        );
        confirm_audience(change, audience, role_name)
    })
}

/// The role, and its trust policy.
pub(crate) async fn role(
    iam: &IamClient,
    role: &RoleArn,
) -> (Check, Option<(PolicyDocument, Role)>) {
    const ID: &str = "role";
    match iam.get_role(&role.name).await {
        Ok(Some(found)) => {
            let (check, doc) = role_found(role, &found);
            (check, doc.map(|d| (d, found)))
        }
        Ok(None) => (
            Check::fail(ID, Group::Aws, format!("no role named {} in the account your credentials reach", role.name))
                .detail(format!("the annotation names {role}: check the name for a typo, or create the role"))
                .fix(
                    Fix::new("point the annotation at an existing role, or create this one")
                        .command("aws iam list-roles --query 'Roles[].Arn'")
                        .command(format!("aws iam create-role --role-name {} --assume-role-policy-document file://trust.json   # trust.json from `irsa policy trust`", sh(&role.name))),
                ),
            None,
        ),
        Err(e) => (could_not(ID, &e), None),
    }
}

fn role_found(want: &RoleArn, found: &Role) -> (Check, Option<PolicyDocument>) {
    const ID: &str = "role";
    if found.arn != want.to_string() {
        return (
            Check::fail(ID, Group::Aws, format!("the role named {} is {}, not the annotated {want}", want.name, found.arn))
                .detail("another account or another path: your credentials reach another account, or the annotation's ARN is wrong")
                .expected_actual(json!(want.to_string()), json!(found.arn)),
            None,
        );
    }
    let Some(text) = &found.trust_policy else {
        return (
            Check::fail(
                ID,
                Group::Aws,
                format!("{} has no trust policy in IAM's answer", found.arn),
            ),
            None,
        );
    };
    match PolicyDocument::parse(text) {
        Ok(doc) => {
            let mut check =
                Check::pass(ID, Group::Aws, found.arn.clone()).data("arn", json!(found.arn));
            if let Some(b) = &found.permissions_boundary {
                check = check.detail(format!(
                    "permissions boundary {b}: it caps what the policies below grant"
                ));
            }
            (check, Some(doc))
        }
        Err(e) => (
            Check::fail(
                ID,
                Group::Aws,
                format!("its trust policy cannot be read: {e}"),
            ),
            None,
        ),
    }
}

/// Most repositories the permissions check evaluates (a pod's images and `--repository`); the
/// rest are named as not checked.
const MAX_REPOSITORIES: usize = 32;

/// One request a pull makes: an action on a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Need {
    action: &'static str,
    resource: String,
}

/// The requests a pull from `repositories` makes: `ecr:GetAuthorizationToken` on `*`, and the
/// pull actions on each repository.
fn needs(repositories: &[String]) -> Vec<Need> {
    let mut out = vec![Need {
        action: GET_AUTHORIZATION_TOKEN,
        resource: "*".to_owned(),
    }];
    for r in repositories {
        for action in ECR_PULL_REQUIRED_ACTIONS {
            out.push(Need {
                action,
                resource: r.clone(),
            });
        }
    }
    out
}

/// How one request fares, and which policy type decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Decided {
    Allow,
    /// No identity policy allows it.
    IdentityImplicit,
    /// An identity policy denies it.
    IdentityExplicit,
    /// The identity policies allow it; the permissions boundary does not.
    BoundaryImplicit,
    /// The permissions boundary denies it.
    BoundaryExplicit,
    /// No identity policy allows it unconditionally, but one allows it under a Condition doctor
    /// cannot evaluate: the condition decides (review M1).
    Conditional,
    /// IAM's policy simulator allowed it without context keys a condition needs
    /// (MissingContextValues), or allowed what the policies read deny: nothing decides it
    /// (review M2).
    Undecided,
}

impl Decided {
    fn explicit(self) -> bool {
        matches!(self, Decided::IdentityExplicit | Decided::BoundaryExplicit)
    }
    fn by_boundary(self) -> bool {
        matches!(self, Decided::BoundaryImplicit | Decided::BoundaryExplicit)
    }
    /// Neither allowed nor denied as far as doctor can tell.
    fn undecided(self) -> bool {
        matches!(self, Decided::Conditional | Decided::Undecided)
    }
}

/// The simulator's answer for one need: its decision, and the context keys it was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Simulated {
    decided: Decided,
    missing: Vec<String>,
}

/// The role's policies as read: identity policies, the boundary's, and what could not be read.
struct Reading {
    policies: Vec<(String, PermissionPolicy)>,
    boundary: Option<PermissionPolicy>,
    unreadable: Vec<String>,
    /// The inline policy irsa-ecr-pull as JSON (null when the role has none).
    current_pull: Value,
    /// Each inline policy's name and its size as IAM counts it (characters, whitespace
    /// excluded).
    inline_sizes: Vec<(String, usize)>,
}

/// IAM's quota on the inline policies of a role, all together: 10,240 characters, whitespace
/// excluded (IAM User Guide, "IAM and AWS STS quotas": role policy size).
const MAX_ROLE_INLINE_CHARS: usize = 10_240;

/// A document's size as IAM counts it against its quotas: characters, whitespace excluded.
fn iam_size(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Whether `after` as irsa-ecr-pull keeps the role's inline policies within IAM's quota; why
/// not, when not (review L3: said before PutRolePolicy instead of IAM's LimitExceeded).
fn fits_inline_quota(reading: &Reading, role: &str, after: &Value) -> Result<(), String> {
    let others: usize = reading
        .inline_sizes
        .iter()
        .filter(|(name, _)| name != PULL_POLICY_NAME)
        .map(|(_, n)| n)
        .sum();
    let merged = iam_size(&after.to_string());
    let total = others + merged;
    if total <= MAX_ROLE_INLINE_CHARS {
        return Ok(());
    }
    Err(format!(
        "--fix makes no change: with the missing grants merged, {PULL_POLICY_NAME} is {merged} characters and role {role}'s inline policies {total} together (whitespace excluded), over IAM's quota of {MAX_ROLE_INLINE_CHARS} for a role's inline policies (PutRolePolicy would answer LimitExceeded): put the pull statements in a managed policy and attach it (aws iam create-policy, aws iam attach-role-policy), or shorten the inline policies"
    ))
}

/// Longest image reference read from a pod (a tenant's text).
const MAX_IMAGE: usize = 4096;

/// The repositories a pull of `images` (a pod's) reads from, as ECR repository ARNs; images of
/// other registries are left out. A pod's image is a tenant's text: only a real image
/// reference of an ECR registry counts, never an ARN or a wildcard (`*`, `?`), which would turn
/// `--fix` into a grant on every repository of an account (review H1); wildcards come from
/// `--repository` only.
pub(crate) fn image_repositories(images: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for image in images {
        if image.len() > MAX_IMAGE
            || image
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("arn:"))
            || image.contains(['*', '?'])
        {
            continue;
        }
        let Ok(parsed) = irsa_core::registry::parse(image) else {
            continue;
        };
        if !matches!(parsed.registry, irsa_core::registry::Registry::Ecr(_))
            || parsed.repository.as_deref().is_none_or(str::is_empty)
        {
            continue;
        }
        if let Ok(arns) = crate::policy::repository_arns(std::slice::from_ref(image)) {
            for a in arns {
                let a = a.to_string();
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The images of a pod's containers and init containers.
pub(crate) fn pod_images(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.clone())
        .collect()
}

/// Whether the role may pull: `ecr:GetAuthorizationToken` on `*` and the pull actions
/// (`ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer`) on the repositories in use
/// (`in_use`: `--repository` and a pod's ECR images), from its inline and attached policies
/// capped by its permissions boundary, and from IAM's policy simulator where the caller may
/// call it. When the role's own policies lack an Allow, `--fix`'s change: the inline policy
/// irsa-ecr-pull with what it already allows kept and only the missing grants added, for the
/// repositories in use (`fallback`, account-wide, when none is known).
pub(crate) async fn permissions(
    iam: &IamClient,
    role: &RoleArn,
    boundary: Option<&str>,
    owner: &Result<(), String>,
    in_use: &[String],
    fallback: &[String],
) -> Check {
    let (checked, unchecked) = in_use.split_at(in_use.len().min(MAX_REPOSITORIES));
    let needs = needs(checked);
    let reading = read_policies(iam, role, boundary).await;
    let simulated = simulate(iam, role, checked, &needs).await;
    let mut notes = Vec::new();
    if !unchecked.is_empty() {
        notes.push(format!(
            "{} more repositories not checked (at most {MAX_REPOSITORIES} are)",
            unchecked.len()
        ));
    }
    if checked.is_empty() {
        notes.push("no repository in use is known (--repository, or a --pod's ECR images): only ecr:GetAuthorizationToken is checked".to_owned());
    }
    let read_decisions = match &reading {
        Ok(r) if r.unreadable.is_empty() => {
            Some(needs.iter().map(|n| decide_read(r, n)).collect::<Vec<_>>())
        }
        _ => None,
    };
    let decided: Vec<Decided> = match (&simulated, &read_decisions) {
        (Ok(sim), Some(read)) => {
            let read: Vec<Decided> = read.iter().map(|(d, _)| *d).collect();
            let (out, said) = agree(&needs, sim, &read);
            notes.extend(said);
            out
        }
        (Ok(sim), None) => {
            match &reading {
                Err(c) => notes.push(format!("the role's policies could not be read ({}): decided by iam:SimulatePrincipalPolicy alone", c.summary)),
                Ok(r) => notes.push(format!("{} of the role's policies could not be read ({}): decided by iam:SimulatePrincipalPolicy alone", r.unreadable.len(), r.unreadable.join("; "))),
            }
            for (n, s) in needs.iter().zip(sim) {
                if !s.missing.is_empty() {
                    let keys: Vec<String> = s
                        .missing
                        .iter()
                        .map(|k| super::report::printable(k))
                        .collect();
                    notes.push(format!("IAM's policy simulator decided {} on {} without the context keys {} (MissingContextValues): a condition on them decides a real request", n.action, n.resource, keys.join(", ")));
                }
            }
            sim.iter().map(|s| s.decided).collect()
        }
        (Err(why), Some(read)) => {
            notes.push(format!("{why}: decided from the role's policies as read"));
            read.iter().map(|(d, _)| *d).collect()
        }
        (Err(why), None) => {
            let check = match reading {
                Err(c) => c,
                Ok(r) => unreadable_check(&r.unreadable),
            };
            return check.detail(format!("{why}, so nothing could decide"));
        }
    };
    let lines: Vec<String> = read_decisions
        .iter()
        .flatten()
        .flat_map(|(_, l)| l.iter().cloned())
        .fold(Vec::new(), |mut acc, l| {
            if !acc.contains(&l) {
                acc.push(l);
            }
            acc
        });
    let names: Vec<String> = match &reading {
        Ok(r) => r.policies.iter().map(|(n, _)| n.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let why = undecided_why(&needs, &decided, &reading, &simulated);
    let check = permissions_verdict(
        role, boundary, &needs, &decided, &names, checked, fallback, &why,
    )
    .details(lines)
    .details(notes);
    let (Ok(reading), Some(read)) = (&reading, &read_decisions) else {
        return check;
    };
    let read: Vec<Decided> = read.iter().map(|(d, _)| *d).collect();
    let Some(after) = pull_change(reading, &needs, &read, &decided, checked, fallback) else {
        return check;
    };
    if let Err(why) = fits_inline_quota(reading, &role.name, &after) {
        return check.detail(why);
    }
    let mut change = Change::new(
        format!(
            "add the missing ECR pull permissions to inline policy {PULL_POLICY_NAME} of role {} (what it allows already is kept)",
            role.name
        ),
        format!("role {role}: inline policy {PULL_POLICY_NAME}"),
        reading.current_pull.clone(),
        after,
        Action::PutRolePolicy {
            role_arn: role.to_string(),
            policy_name: PULL_POLICY_NAME.to_owned(),
        },
    );
    if let Err(reason) = owner {
        change = change.confirm_role(&role.name, reason.clone());
    }
    check.with_change(change)
}

/// Most reasons named in the summary of a check no one could decide.
const MAX_WHY: usize = 4;

/// Why the needs doctor could not decide are undecided: the Conditions that alone allow them,
/// the context keys the simulator was not given.
fn undecided_why(
    needs: &[Need],
    decided: &[Decided],
    reading: &Result<Reading, Check>,
    simulated: &Result<Vec<Simulated>, String>,
) -> Vec<String> {
    let mut why: Vec<String> = Vec::new();
    for (i, (n, d)) in needs.iter().zip(decided).enumerate() {
        let mut add = |line: String| {
            if !why.contains(&line) {
                why.push(line);
            }
        };
        match d {
            Decided::Conditional => {
                if let Ok(r) = reading {
                    for c in permission_policy::evaluate(&r.policies, n.action, &n.resource)
                        .conditional_allows
                    {
                        add(format!(
                            "{} on {} is allowed only under the Condition of {}",
                            n.action,
                            n.resource,
                            super::report::printable(&c)
                        ));
                    }
                }
            }
            Decided::Undecided => match simulated.as_ref().ok().and_then(|s| s.get(i)) {
                Some(s) if !s.missing.is_empty() => {
                    let keys: Vec<String> = s
                        .missing
                        .iter()
                        .map(|k| super::report::printable(k))
                        .collect();
                    add(format!(
                        "IAM's policy simulator allows {} on {} only without the context keys {}, which a condition needs",
                        n.action,
                        n.resource,
                        keys.join(", ")
                    ));
                }
                _ => add(format!(
                    "IAM's policy simulator allows {} on {}, the policies read do not",
                    n.action, n.resource
                )),
            },
            _ => {}
        }
    }
    if why.len() > MAX_WHY {
        let more = why.len() - MAX_WHY;
        why.truncate(MAX_WHY);
        why.push(format!("{more} more (details)"));
    }
    why
}

/// `--fix`'s irsa-ecr-pull: only when the role's own policies lack an Allow (`read`, and the
/// verdict `decided`, say only that) — a Deny, a boundary and a verdict the policies read do
/// not support are for people.
fn pull_change(
    reading: &Reading,
    needs: &[Need],
    read: &[Decided],
    decided: &[Decided],
    in_use: &[String],
    fallback: &[String],
) -> Option<Value> {
    let only_missing = |ds: &[Decided]| {
        ds.iter()
            .all(|d| matches!(d, Decided::Allow | Decided::IdentityImplicit))
    };
    if !only_missing(decided)
        || !only_missing(read)
        || !decided.contains(&Decided::IdentityImplicit)
    {
        return None;
    }
    let missing: Vec<&Need> = needs
        .iter()
        .zip(read)
        .filter(|(_, d)| **d == Decided::IdentityImplicit)
        .map(|(n, _)| n)
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(merged_pull_policy(reading, &missing, in_use, fallback))
}

/// The simulator's and the policies' decisions together: the policies' where both allow or
/// both deny (they tell which policy type denies); where they disagree, the deny, and never an
/// allow the reading denies (review M2: the simulator, given no context, skips a Deny whose
/// condition needs a key, so its "allowed" may be a real request's deny). Disagreements and
/// the context keys the simulator was not given are said.
fn agree(needs: &[Need], sim: &[Simulated], read: &[Decided]) -> (Vec<Decided>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for ((n, s), r) in needs.iter().zip(sim).zip(read) {
        if !s.missing.is_empty() {
            let keys: Vec<String> = s
                .missing
                .iter()
                .map(|k| super::report::printable(k))
                .collect();
            notes.push(format!(
                "IAM's policy simulator decided {} on {} without the context keys {} (MissingContextValues): a condition on them decides a real request, and doctor cannot give them",
                n.action,
                n.resource,
                keys.join(", ")
            ));
        }
        let sim_allows = matches!(s.decided, Decided::Allow | Decided::Undecided);
        if sim_allows != (*r == Decided::Allow) {
            notes.push(format!(
                "IAM's policy simulator and doctor's reading of the policies disagree on {} on {}: the simulator says {}, the policies read say {} (a deny on either side is the verdict, and an allow one side denies is not decided)",
                n.action,
                n.resource,
                word(s.decided),
                word(*r)
            ));
        }
        out.push(match (s.decided, *r) {
            (Decided::Undecided, r) if r.explicit() => r,
            (Decided::Undecided, _) => Decided::Undecided,
            (Decided::Allow, Decided::Allow) => Decided::Allow,
            // The reading denies what the simulator allows: its Deny (it may be conditional,
            // which the simulator skips without context), or undecided.
            (Decided::Allow, r) if r.explicit() || r == Decided::Conditional => r,
            (Decided::Allow, _) => Decided::Undecided,
            // The simulator denies: the reading names the policy type when it denies too.
            (sim, Decided::Allow) => sim,
            (_, r) => r,
        });
    }
    notes.push(
        "decided by iam:SimulatePrincipalPolicy and by reading the role's policies".to_owned(),
    );
    (out, notes)
}

fn word(d: Decided) -> &'static str {
    match d {
        Decided::Allow => "allowed",
        Decided::Conditional => "allowed only under a Condition",
        Decided::Undecided => "allowed only without the context keys a condition needs",
        Decided::IdentityImplicit | Decided::BoundaryImplicit => "implicitly denied",
        Decided::IdentityExplicit | Decided::BoundaryExplicit => "explicitly denied",
    }
}

/// irsa-ecr-pull as it is, with statements added for `missing`: the token action on `*`, the
/// pull actions of `irsa policy ecr-pull` on the repositories in use that lack one (`fallback`
/// when none is known). Sids stay unique (IAM refuses a policy with a Sid twice).
fn merged_pull_policy(
    reading: &Reading,
    missing: &[&Need],
    in_use: &[String],
    fallback: &[String],
) -> Value {
    let mut after = match &reading.current_pull {
        Value::Object(o) if o.contains_key("Statement") => Value::Object(o.clone()),
        _ => json!({"Version": "2012-10-17", "Statement": []}),
    };
    let mut statements = match after.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let mut sids: Vec<String> = statements
        .iter()
        .filter_map(|s| s.get("Sid").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut sid = |base: &str| {
        let mut candidate = base.to_owned();
        let mut n = 2;
        while sids.contains(&candidate) {
            candidate = format!("{base}{n}");
            n += 1;
        }
        sids.push(candidate.clone());
        candidate
    };
    if missing.iter().any(|n| n.action == GET_AUTHORIZATION_TOKEN) {
        statements.push(json!({
            "Sid": sid("GetAuthorizationToken"),
            "Effect": "Allow",
            "Action": GET_AUTHORIZATION_TOKEN,
            "Resource": "*",
        }));
    }
    let mut repositories: Vec<String> = Vec::new();
    for n in missing
        .iter()
        .filter(|n| n.action != GET_AUTHORIZATION_TOKEN)
    {
        if !repositories.contains(&n.resource) {
            repositories.push(n.resource.clone());
        }
    }
    if in_use.is_empty() {
        // No repository known: the account-wide grant `irsa policy ecr-pull` makes by
        // default, unless the policies allow those pulls already.
        let pull_covered = |r: &String| {
            ECR_PULL_REQUIRED_ACTIONS.iter().all(|a| {
                decide_read(
                    reading,
                    &Need {
                        action: a,
                        resource: r.clone(),
                    },
                )
                .0 == Decided::Allow
            })
        };
        repositories = fallback
            .iter()
            .filter(|r| !pull_covered(r))
            .cloned()
            .collect();
    }
    if !repositories.is_empty() {
        statements.push(json!({
            "Sid": sid("PullImages"),
            "Effect": "Allow",
            "Action": ECR_PULL_ACTIONS,
            "Resource": repositories,
        }));
    }
    after["Statement"] = Value::Array(statements);
    after
}

/// Reads the role's inline and attached policies and its permissions boundary.
async fn read_policies(
    iam: &IamClient,
    role: &RoleArn,
    boundary: Option<&str>,
) -> Result<Reading, Check> {
    const ID: &str = "permissions";
    let mut reading = Reading {
        policies: Vec::new(),
        boundary: None,
        unreadable: Vec::new(),
        current_pull: Value::Null,
        inline_sizes: Vec::new(),
    };
    let inline = iam
        .list_role_policies(&role.name)
        .await
        .map_err(|e| could_not(ID, &e))?;
    for name in inline {
        match iam.get_role_policy(&role.name, &name).await {
            Ok(Some(p)) => {
                reading
                    .inline_sizes
                    .push((name.clone(), iam_size(&p.document)));
                match PermissionPolicy::parse(&p.document) {
                    Ok(doc) => {
                        if name == PULL_POLICY_NAME {
                            reading.current_pull =
                                serde_json::from_str(&p.document).unwrap_or(Value::Null);
                        }
                        reading.policies.push((format!("inline {name}"), doc));
                    }
                    Err(e) => reading.unreadable.push(format!("inline {name}: {e}")),
                }
            }
            Ok(None) => reading.unreadable.push(format!(
                "inline {name}: listed, but IAM returned no document for it"
            )),
            Err(e) => return Err(could_not(ID, &e)),
        }
    }
    let attached = iam
        .list_attached_role_policies(&role.name)
        .await
        .map_err(|e| could_not(ID, &e))?;
    for a in attached {
        match managed_document(iam, &a.arn).await {
            Ok(Ok(doc)) => reading.policies.push((format!("attached {}", a.arn), doc)),
            Ok(Err(why)) => reading
                .unreadable
                .push(format!("attached {}: {why}", a.arn)),
            Err(e) => return Err(could_not(ID, &e)),
        }
    }
    if let Some(arn) = boundary {
        match managed_document(iam, arn).await {
            Ok(Ok(doc)) => reading.boundary = Some(doc),
            Ok(Err(why)) => reading
                .unreadable
                .push(format!("permissions boundary {arn}: {why}")),
            Err(e) => return Err(could_not(ID, &e)),
        }
    }
    Ok(reading)
}

/// The default version's document of a managed policy, or why there is none.
async fn managed_document(
    iam: &IamClient,
    arn: &str,
) -> Result<Result<PermissionPolicy, String>, IamError> {
    let version = match iam.get_policy(arn).await? {
        Some(p) => p.default_version_id,
        None => return Ok(Err("IAM does not find the policy".to_owned())),
    };
    let Some(version) = version else {
        return Ok(Err("no default version in IAM's answer".to_owned()));
    };
    Ok(match iam.get_policy_version(arn, &version).await? {
        Some(v) => PermissionPolicy::parse(&v.document),
        None => Err(format!("IAM returned no document for version {version}")),
    })
}

/// One request decided from the policies read, with the statements that bear on it.
fn decide_read(r: &Reading, n: &Need) -> (Decided, Vec<String>) {
    let identity = permission_policy::evaluate(&r.policies, n.action, &n.resource);
    let mut lines: Vec<String> = identity
        .applies
        .iter()
        .chain(&identity.near_misses)
        .map(|m| format!("{} {} ({}): {}", m.policy, m.statement, m.effect, m.note))
        .collect();
    let boundary = r.boundary.as_ref().map(|b| {
        let d = permission_policy::evaluate(
            &[("permissions boundary".to_owned(), b.clone())],
            n.action,
            &n.resource,
        );
        lines.extend(
            d.applies
                .iter()
                .chain(&d.near_misses)
                .map(|m| format!("{} {} ({}): {}", m.policy, m.statement, m.effect, m.note)),
        );
        d.outcome
    });
    for c in &identity.conditional_allows {
        lines.push(format!(
            "{} on {} is allowed only under the Condition of {}: the condition decides, and --fix adds no unconditional Allow that would bypass it",
            n.action,
            n.resource,
            super::report::printable(c)
        ));
    }
    let decided = match (identity.outcome, boundary) {
        (PermissionOutcome::ExplicitDeny, _) => Decided::IdentityExplicit,
        (_, Some(PermissionOutcome::ExplicitDeny)) => Decided::BoundaryExplicit,
        (PermissionOutcome::ImplicitDeny, _) if !identity.conditional_allows.is_empty() => {
            Decided::Conditional
        }
        (PermissionOutcome::ImplicitDeny, _) => Decided::IdentityImplicit,
        (_, Some(PermissionOutcome::ImplicitDeny)) => Decided::BoundaryImplicit,
        _ => Decided::Allow,
    };
    (decided, lines)
}

/// IAM's policy simulator's decision for each of `needs` (in order), or why there is none.
async fn simulate(
    iam: &IamClient,
    role: &RoleArn,
    repositories: &[String],
    needs: &[Need],
) -> Result<Vec<Simulated>, String> {
    let arn = role.to_string();
    let mut results = iam
        .simulate_principal_policy(&arn, &[GET_AUTHORIZATION_TOKEN], &[])
        .await
        .map_err(simulation_failed)?;
    if !repositories.is_empty() {
        results.extend(
            iam.simulate_principal_policy(&arn, &ECR_PULL_REQUIRED_ACTIONS, repositories)
                .await
                .map_err(simulation_failed)?,
        );
    }
    needs
        .iter()
        .map(|n| {
            let r = results
                .iter()
                .find(|r| r.action.eq_ignore_ascii_case(n.action) && r.resource == n.resource)
                .ok_or_else(|| {
                    format!(
                        "iam:SimulatePrincipalPolicy answered no decision for {} on {}",
                        n.action, n.resource
                    )
                })?;
            Ok(simulated(r))
        })
        .collect()
}

/// One simulator result as doctor decides it. The boundary is named from
/// `PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary` only: IAM's
/// `SourcePolicyType` (user, group, role, aws-managed, user-managed, resource, none) does not
/// tell a boundary from an attached policy (review L1). An "allowed" made without context
/// keys a condition needs is no allow (review M2).
fn simulated(r: &irsa_aws::iam::SimulatedResult) -> Simulated {
    let by_boundary = r.allowed_by_boundary == Some(false);
    let decided = match (r.decision, by_boundary) {
        (SimulatedDecision::Allowed, _) if !r.missing_context.is_empty() => Decided::Undecided,
        (SimulatedDecision::Allowed, _) => Decided::Allow,
        (SimulatedDecision::ExplicitDeny, true) => Decided::BoundaryExplicit,
        (SimulatedDecision::ExplicitDeny, false) => Decided::IdentityExplicit,
        (SimulatedDecision::ImplicitDeny, true) => Decided::BoundaryImplicit,
        (SimulatedDecision::ImplicitDeny, false) => Decided::IdentityImplicit,
    };
    Simulated {
        decided,
        missing: r.missing_context.clone(),
    }
}

fn simulation_failed(e: IamError) -> String {
    if e.is_access_denied() {
        "your credentials may not call iam:SimulatePrincipalPolicy (AccessDenied)".to_owned()
    } else {
        format!("iam:SimulatePrincipalPolicy gave no answer ({e})")
    }
}

fn unreadable_check(unreadable: &[String]) -> Check {
    // An unread policy may hold the Deny that decides: nothing can be concluded.
    Check::error(
        "permissions",
        Group::Aws,
        format!(
            "could not check {GET_AUTHORIZATION_TOKEN} and the pull actions: {} of the role's policies could not be read ({})",
            unreadable.len(),
            unreadable.join("; ")
        ),
    )
    .detail("an unread policy may deny what the others allow; read it with aws iam get-role-policy / get-policy-version and fix or report what IAM returns")
}

/// `a1, a2 on R` for each resource of `needs`, in order.
fn describe(needs: &[&Need]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for n in needs {
        match groups.iter_mut().find(|(r, _)| *r == n.resource) {
            Some((_, actions)) => actions.push(n.action),
            None => groups.push((&n.resource, vec![n.action])),
        }
    }
    groups
        .iter()
        .map(|(r, a)| format!("{} on {r}", a.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `--fix` commands: `irsa policy ecr-pull` for the repositories, put as irsa-ecr-pull.
fn pull_fix_for(role: &RoleArn, repositories: &[String]) -> Fix {
    let flags: Vec<String> = repositories
        .iter()
        .map(|r| format!("--repository {}", sh(r)))
        .collect();
    Fix::new(format!(
        "give role {} the ECR pull permissions (ecr:GetAuthorizationToken on \"*\", the pull actions on the repositories): add them to its inline policy {PULL_POLICY_NAME} (keep what it allows already)",
        role.name
    ))
    .command(format!("irsa policy ecr-pull {} > pull.json", flags.join(" ")))
    .command(format!(
        "aws iam put-role-policy --role-name {} --policy-name {PULL_POLICY_NAME} --policy-document file://pull.json   # merge pull.json's statements into {PULL_POLICY_NAME} first if the role has it",
        sh(&role.name)
    ))
    .document(irsa_core::trust_policy::ecr_pull_policy(repositories, false))
}

/// The permissions check from each need's decision.
#[allow(clippy::too_many_arguments)]
fn permissions_verdict(
    role: &RoleArn,
    boundary: Option<&str>,
    needs: &[Need],
    decided: &[Decided],
    names: &[String],
    in_use: &[String],
    fallback: &[String],
    why: &[String],
) -> Check {
    const ID: &str = "permissions";
    let read = format!(
        "read {}: {}",
        names.len(),
        if names.is_empty() {
            "(no policies)".to_owned()
        } else {
            names.join(", ")
        }
    );
    let boundary_line =
        boundary.map(|b| format!("permissions boundary {b}: it caps what the policies grant"));
    let of = |pick: &dyn Fn(Decided) -> bool| -> Vec<&Need> {
        needs
            .iter()
            .zip(decided)
            .filter(|(_, d)| pick(**d))
            .map(|(n, _)| n)
            .collect()
    };
    let denied = of(&|d| d != Decided::Allow);
    if denied.is_empty() {
        let repos = needs.len().saturating_sub(1) / ECR_PULL_REQUIRED_ACTIONS.len();
        let summary = if repos == 0 {
            format!("{GET_AUTHORIZATION_TOKEN} allowed on *")
        } else {
            format!(
                "{GET_AUTHORIZATION_TOKEN} allowed on *, and {} on the {repos} repositories in use",
                ECR_PULL_REQUIRED_ACTIONS.join(", ")
            )
        };
        return Check::pass(ID, Group::Aws, summary)
            .detail(read)
            .details(boundary_line)
            .data("outcome", json!(PermissionOutcome::Allow));
    }
    let undecided = of(&|d| d.undecided());
    if undecided.len() == denied.len() {
        // Review M1/M2: allowed only under a condition doctor cannot evaluate (or by a
        // simulation without the keys it needs). Neither a pass nor a missing Allow: an
        // unconditional Allow from --fix would bypass the condition.
        return Check::error(
            ID,
            Group::Aws,
            format!(
                "could not decide {}: the condition decides ({})",
                describe(&undecided),
                why.join("; ")
            ),
        )
        .fix(Fix::new(
            "doctor does not evaluate conditions and makes no change (an unconditional Allow would bypass the condition): check that the workload's pulls meet it (e.g. they go through the VPC endpoint or carry the tags it names), or allow the pull actions without it if it is not meant for them",
        ))
        .detail(read)
        .details(boundary_line)
        .data("outcome", json!("undecided"))
        .data(
            "undecided",
            json!(
                undecided
                    .iter()
                    .map(|n| json!({"action": n.action, "resource": n.resource}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    let boundary_name = boundary.unwrap_or("(none)");
    let mut parts = Vec::new();
    for (kind, text) in [
        (
            Decided::IdentityExplicit,
            "denied explicitly by the role's policies: ".to_owned(),
        ),
        (
            Decided::BoundaryExplicit,
            format!("denied explicitly by the permissions boundary {boundary_name}: "),
        ),
        (
            Decided::BoundaryImplicit,
            format!(
                "not allowed by the permissions boundary {boundary_name} (the role's policies allow it; the boundary caps them): "
            ),
        ),
        (
            Decided::IdentityImplicit,
            "no policy of the role allows ".to_owned(),
        ),
        (
            Decided::Conditional,
            "allowed only under a Condition doctor cannot evaluate (the condition decides): "
                .to_owned(),
        ),
        (
            Decided::Undecided,
            "not decided (IAM's policy simulator allows it without the context keys a condition needs, or the policies read do not allow it): ".to_owned(),
        ),
    ] {
        let these = of(&|d| d == kind);
        if !these.is_empty() {
            parts.push(format!("{text}{}", describe(&these)));
        }
    }
    let outcome = if decided.iter().any(|d| d.explicit()) {
        PermissionOutcome::ExplicitDeny
    } else {
        PermissionOutcome::ImplicitDeny
    };
    let expected: Vec<Value> = denied
        .iter()
        .map(|n| json!({"Effect": "Allow", "Action": n.action, "Resource": n.resource}))
        .collect();
    let by_boundary = of(&|d| d.by_boundary());
    let explicit = of(&|d| d == Decided::IdentityExplicit);
    let fix = if !by_boundary.is_empty() {
        let arn = boundary_name;
        Fix::new(format!(
            "doctor does not change a permissions boundary: the boundary's owner must allow {} in {arn}, or remove the boundary from role {}",
            describe(&by_boundary),
            role.name
        ))
        .command(format!(
            "aws iam get-policy-version --policy-arn {} --version-id \"$(aws iam get-policy --policy-arn {} --query Policy.DefaultVersionId --output text)\"   # the boundary's document",
            sh(arn),
            sh(arn)
        ))
        .command(format!(
            "aws iam delete-role-permissions-boundary --role-name {}   # only if the role needs no boundary",
            sh(&role.name)
        ))
    } else if !explicit.is_empty() {
        Fix::new(format!(
            "remove the Deny of {} from the role's policies (a Deny wins over any Allow)",
            describe(&explicit)
        ))
    } else {
        let repositories: &[String] = if in_use.is_empty() { fallback } else { in_use };
        pull_fix_for(role, repositories)
    };
    Check::fail(
        ID,
        Group::Aws,
        format!("{} (ECR answers AccessDenied)", parts.join("; ")),
    )
    .expected_actual(json!(expected), json!(names))
    .fix(fix)
    .detail(read)
    .details(boundary_line)
    .data("outcome", json!(outcome))
    .data(
        "denied",
        json!(
            needs
                .iter()
                .zip(decided)
                .filter(|(_, d)| **d != Decided::Allow)
                .map(|(n, d)| json!({"action": n.action, "resource": n.resource, "decided": d}))
                .collect::<Vec<_>>()
        ),
    )
    .data("boundary", json!(boundary))
}

/// The partition of an audience that names an STS endpoint (`sts.amazonaws.com.cn`,
/// `sts.us-gov-west-1.amazonaws.com`), when it tells one apart: the global
/// `sts.amazonaws.com` is shared by aws and aws-us-gov (and used in China too), so it names
/// none.
fn sts_audience_partition(audience: &str) -> Option<Partition> {
    let host = audience
        .strip_prefix("https://")
        .unwrap_or(audience)
        .trim_end_matches('/');
    let rest = host.strip_prefix("sts.")?;
    if rest == "amazonaws.com.cn" {
        return Some(Partition::AwsCn);
    }
    let (region, suffix) = rest.split_once('.')?;
    let partition = Partition::from_region(region)?;
    (partition.dns_suffix() == suffix).then_some(partition)
}

/// The partition trap: a role of GovCloud or China is assumed through that partition's STS,
/// with that partition's IAM OIDC provider (an EKS cluster's issuer names its region), and a
/// token audience naming another partition's STS is a configuration copied from elsewhere.
pub(crate) fn partition_check(
    role: &RoleArn,
    sts_region: Option<&str>,
    issuer: Option<&str>,
    audience: &str,
) -> Check {
    const ID: &str = "partition";
    let partition = role.partition.as_str();
    let example = Partition::from_id(partition)
        .map(Partition::implicit_global_region)
        .unwrap_or("us-east-1");
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let mut fixes = Vec::new();
    match sts_region.map(|r| (r, Partition::from_region(r))) {
        Some((region, Some(p))) if p.id() != partition => {
            problems.push(format!(
                "the role is in partition {partition} but AWS_REGION {region} is in {p}: STS of {p} knows no role of {partition} (a GovCloud or China role is assumed through its own partition's STS)"
            ));
            fixes.push(format!(
                "set AWS_REGION to a region of {partition} (e.g. {example}) for doctor and the workload"
            ));
        }
        Some((region, Some(_))) => {
            details.push(format!("STS region {region} is in {partition}, as the role"))
        }
        Some((region, None)) => details.push(format!(
            "AWS_REGION {region:?} is no region of a partition irsa knows"
        )),
        None => details.push(format!(
            "AWS_REGION is not set: the SDK's STS default is the aws partition's (a {partition} role needs its own)"
        )),
    }
    if let Some(eks) = issuer
        .and_then(|i| irsa_core::arn::issuer_host_path(i).ok())
        .and_then(|h| crate::policy::eks_issuer_partition(&h))
        && eks.id() != partition
    {
        problems.push(format!(
            "the cluster's issuer is an EKS cluster of partition {eks}, the role is in {partition}: the IAM OIDC provider and the role must be in the cluster's partition"
        ));
        fixes.push(format!(
            "annotate the service account with a role of {eks} (arn:{eks}:iam::ACCOUNT:role/NAME)"
        ));
    }
    match sts_audience_partition(audience) {
        Some(p) if p.id() != partition => {
            problems.push(format!(
                "the token audience {audience} names the STS of partition {p}, the role is in {partition}: a {p} audience copied into another partition (its IAM OIDC provider must list exactly the audience the tokens carry)"
            ));
            fixes.push(format!(
                "set {} to the audience this partition's OIDC provider lists (usually sts.amazonaws.com; sts.amazonaws.com.cn in China), or remove it",
                irsa_core::names::AUDIENCE_ANNOTATION
            ));
        }
        _ => {}
    }
    if problems.is_empty() {
        return Check::pass(
            ID,
            Group::Aws,
            format!("role, STS region, issuer and audience agree on partition {partition}"),
        )
        .details(details);
    }
    let mut fix = Fix::new(fixes.join("; "));
    if let Some(region) = sts_region
        && Partition::from_region(region).is_some_and(|p| p.id() != partition)
    {
        fix = fix.command(format!("AWS_REGION={} irsa doctor …", sh(example)));
    }
    Check::fail(ID, Group::Aws, problems.join("; "))
        .details(details)
        .expected_actual(
            json!({"partition": partition}),
            json!({"region": sts_region, "audience": audience}),
        )
        .fix(fix)
}

/// The AWS-side checks, in chain order: partition, oidc-provider, oidc-audience, role,
/// session-tags, trust-policy, permissions.
pub(crate) async fn checks(report: &mut Report, chain: &Chain<'_>) {
    let (namespace, name, audience) = (chain.namespace, chain.name, chain.audience);
    let (annotated, issuer) = (chain.annotated, chain.issuer);
    // The provider ARN STS presents the token as: the issuer in the role's account.
    let provider_arn = match (annotated, issuer) {
        (Some(a), Some(iss)) => Some(
            OidcProviderArn::from_issuer(&a.role.partition, &a.role.account, iss)
                .map_err(|e| format!("the issuer {iss} cannot be an IAM OIDC provider: {e}")),
        ),
        _ => None,
    };
    let iam_client = match annotated {
        Some(a) => Some(client(&a.role).await),
        None => None,
    };
    let no_client = |id: &'static str, e: &str| {
        Check::error(id, Group::Aws, format!("no IAM client: {e}"))
            .detail("doctor reads IAM with your own AWS credentials (the SDK's default chain)")
    };
    if report.ready("partition", Group::Aws, &["role-annotation"])
        && let Some(a) = annotated
    {
        let region = irsa_aws::Env::Process.region();
        let check = partition_check(&a.role, region.as_deref(), issuer, audience);
        report.record(check, &["role-annotation"]);
    }
    const PROVIDER_NEEDS: &[&str] = &["issuer", "role-annotation", "partition"];
    let mut oidc = None;
    if report.ready("oidc-provider", Group::Aws, PROVIDER_NEEDS)
        && let (Some(client), Some(p), Some(iss), Some(a)) =
            (&iam_client, &provider_arn, issuer, annotated)
    {
        let check = match (client, p) {
            (_, Err(e)) => Check::fail("oidc-provider", Group::Aws, e.clone()),
            (Ok(iam), Ok(p)) => {
                let (check, found) =
                    oidc_provider(iam, p, iss, audience, (namespace, name), &a.role).await;
                oidc = found;
                check
            }
            (Err(e), _) => no_client("oidc-provider", e),
        };
        report.record(check, PROVIDER_NEEDS);
    }
    if report.ready("oidc-audience", Group::Aws, &["oidc-provider"])
        && let Some(p) = &oidc
    {
        let role_name = annotated.map_or("", |a| a.role.name.as_str());
        report.record(oidc_audience(p, audience, role_name), &["oidc-provider"]);
    }
    let mut trust_policy_doc = None;
    let mut owner = Err(String::new());
    let mut boundary = None;
    const ROLE_NEEDS: &[&str] = &["role-annotation", "partition"];
    if report.ready("role", Group::Aws, ROLE_NEEDS)
        && let (Some(client), Some(a)) = (&iam_client, annotated)
    {
        let check = match client {
            Ok(iam) => {
                let (check, found) = role(iam, &a.role).await;
                if let Some((doc, found)) = found {
                    boundary.clone_from(&found.permissions_boundary);
                    owner = ownership(&found, namespace, name).and_then(|()| match &provider_arn {
                        Some(Ok(p)) => trusts_only(&found, &p.to_string()),
                        _ => Err(format!(
                            "this cluster's OIDC provider is not known, so role {} may serve another cluster",
                            found.name
                        )),
                    });
                    let text = found.trust_policy.as_deref().unwrap_or("null");
                    trust_policy_doc =
                        Some((doc, serde_json::from_str(text).unwrap_or(Value::Null)));
                }
                check
            }
            Err(e) => no_client("role", e),
        };
        report.record(check, ROLE_NEEDS);
    }
    const TAGS_NEEDS: &[&str] = &["role", "token"];
    if report.ready("session-tags", Group::Aws, TAGS_NEEDS)
        && let (Some((doc, _)), Some(claims), Some(p), Some(a)) =
            (&trust_policy_doc, chain.claims, &provider_arn, annotated)
    {
        let check = match p {
            Ok(p) => {
                let provider = Provider::from_arn(p.clone());
                let ctx = TrustContext {
                    provider: &provider,
                    role_name: Some(&a.role.name),
                    issuer,
                    audience,
                    owned: owner.is_ok(),
                };
                session_tags_check(doc, claims, &ctx)
            }
            Err(e) => Check::error(
                "session-tags",
                Group::Aws,
                format!("no provider to evaluate it for: {e}"),
            ),
        };
        report.record(check, TAGS_NEEDS);
    }
    const TRUST_NEEDS: &[&str] = &["role", "token", "session-tags"];
    if report.ready("trust-policy", Group::Aws, TRUST_NEEDS)
        && let (Some((doc, current)), Some(claims), Some(p), Some(a)) =
            (&trust_policy_doc, chain.claims, &provider_arn, annotated)
    {
        let check = match p {
            Ok(p) => {
                let provider = Provider::from_arn(p.clone());
                let ctx = TrustContext {
                    provider: &provider,
                    role_name: Some(&a.role.name),
                    issuer,
                    audience,
                    owned: owner.is_ok(),
                };
                let check = trust_policy_check(doc, claims, &ctx);
                trust_change(check, &a.role, current, &owner)
            }
            Err(e) => Check::error(
                "trust-policy",
                Group::Aws,
                format!("no provider to evaluate it for: {e}"),
            ),
        };
        report.record(check, TRUST_NEEDS);
    }
    if report.ready("permissions", Group::Aws, &["role"])
        && let (Some(client), Some(a)) = (&iam_client, annotated)
    {
        let check = match client {
            Ok(iam) => {
                let mut in_use = chain.inputs.repositories.clone();
                for r in image_repositories(&chain.images) {
                    if !in_use.contains(&r) {
                        in_use.push(r);
                    }
                }
                let fallback = chain.inputs.repositories_for(&a.role);
                permissions(
                    iam,
                    &a.role,
                    boundary.as_deref(),
                    &owner,
                    &in_use,
                    &fallback,
                )
                .await
            }
            Err(e) => no_client("permissions", e),
        };
        report.record(check, &["role"]);
    }
}

/// The trust-policy check with `--fix`'s change: the fix's document put as the role's trust
/// policy (a whole policy replaces it; a statement is added to the current ones).
fn trust_change(
    check: Check,
    role: &RoleArn,
    current: &Value,
    owner: &Result<(), String>,
) -> Check {
    if check.passed() || current.is_null() {
        return check;
    }
    // An explicit Deny: only the Deny statements that match this token go, the rest stays as
    // it is. A Deny is someone's decision, so its removal always needs the role's name.
    if let Some(Value::Array(denies)) = check.data.get("deny_statements") {
        let indexes: Vec<usize> = denies
            .iter()
            .filter_map(|i| i.as_u64().and_then(|i| usize::try_from(i).ok()))
            .collect();
        let Some(after) = super::trust::without_statements(current, &indexes) else {
            return check;
        };
        let change = Change::new(
            format!(
                "remove the Deny statement(s) that match this token from the trust policy of role {}",
                role.name
            ),
            format!("role {role}: trust policy"),
            current.clone(),
            after,
            Action::PutTrustPolicy {
                role_arn: role.to_string(),
            },
        )
        .confirm_role(
            &role.name,
            owner.clone().err().unwrap_or_else(|| {
                format!(
                    "removing a Deny from role {}'s trust policy undoes someone's decision",
                    role.name
                )
            }),
        );
        return check.with_change(change);
    }
    let Some(document) = check.fix.as_ref().and_then(|f| f.document.clone()) else {
        return check;
    };
    let (after, how) = if document.get("Statement").is_some() {
        (
            document,
            "put the trust policy `irsa policy trust` prints on",
        )
    } else {
        let mut after = current.clone();
        match after.get_mut("Statement") {
            Some(Value::Array(list)) => list.push(document),
            Some(one) => *one = Value::Array(vec![one.clone(), document]),
            None => after["Statement"] = Value::Array(vec![document]),
        }
        (
            after,
            "add a statement for this service account to the trust policy of",
        )
    };
    let mut change = Change::new(
        format!("{how} role {}", role.name),
        format!("role {role}: trust policy"),
        current.clone(),
        after,
        Action::PutTrustPolicy {
            role_arn: role.to_string(),
        },
    );
    if let Err(reason) = owner {
        change = change.confirm_role(&role.name, reason.clone());
    }
    check.with_change(change)
}

#[cfg(test)]
mod tests {
    use super::super::report::Status;
    use super::*;

    const HOSTILE: &str = "x;touch${IFS}pwned";

    fn role() -> RoleArn {
        "arn:aws:iam::111122223333:role/puller".parse().unwrap()
    }

    #[test]
    fn a_hostile_audience_is_one_quoted_argument_in_every_command() {
        let provider = OidcProvider {
            arn: "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC".into(),
            url: "oidc.example.com/id/ABC".into(),
            client_ids: vec!["sts.amazonaws.com".into()],
            thumbprints: vec![],
        };
        let c = oidc_audience(&provider, HOSTILE, "puller");
        let fix = c.fix.unwrap();
        assert!(
            fix.commands[0].ends_with("--client-id 'x;touch${IFS}pwned'"),
            "{fix:?}"
        );
        let fix = provider_fix(
            "https://oidc.example.com/id/ABC",
            HOSTILE,
            "ci",
            "builder",
            &role(),
        );
        assert!(
            fix.commands[0].ends_with("--client-id-list 'x;touch${IFS}pwned'"),
            "{fix:?}"
        );
        assert!(
            fix.commands[1].contains("--repository 'arn:aws:ecr:REGION:111122223333:repository/*'"),
            "{fix:?}"
        );
    }

    #[test]
    fn an_issuer_with_a_trailing_slash_is_the_trap_named() {
        // The provider ARN is built from the issuer without its trailing slash, so IAM finds
        // a provider; but the token's iss keeps the slash and the provider's URL has none.
        let p = OidcProvider {
            arn: "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/ABC".into(),
            url: "oidc.example.com/id/ABC".into(),
            client_ids: vec!["sts.amazonaws.com".into()],
            thumbprints: vec![],
        };
        let ok = provider_found(&p.arn, &p, "https://oidc.example.com/id/ABC");
        assert!(ok.passed(), "{ok:?}");
        let c = provider_found(&p.arn, &p, "https://oidc.example.com/id/ABC/");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.summary.contains("trailing slash"), "{c:?}");
        assert!(c.fix.is_some(), "{c:?}");
    }

    fn policy(doc: Value) -> PermissionPolicy {
        PermissionPolicy::from_value(&doc).unwrap()
    }

    fn reading(policies: Vec<Value>, boundary: Option<Value>, current_pull: Value) -> Reading {
        Reading {
            policies: policies
                .into_iter()
                .enumerate()
                .map(|(i, d)| (format!("inline p{i}"), policy(d)))
                .collect(),
            boundary: boundary.map(policy),
            unreadable: Vec::new(),
            current_pull,
            inline_sizes: Vec::new(),
        }
    }

    const APP: &str = "arn:aws:ecr:us-east-1:111122223333:repository/app";
    const OTHER: &str = "arn:aws:ecr:us-east-1:111122223333:repository/other";

    fn allow(action: Value, resource: Value) -> Value {
        json!({"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]})
    }

    fn decide_all(r: &Reading, repositories: &[String]) -> Vec<Decided> {
        needs(repositories)
            .iter()
            .map(|n| decide_read(r, n).0)
            .collect()
    }

    // Expected answers from the IAM User Guide, "Policy evaluation logic" (an explicit deny in
    // any policy wins; without an allow, a request is implicitly denied) and "Permissions
    // boundaries for IAM entities" (the effective permissions are the intersection of the
    // identity-based policies and the boundary: an action the boundary does not allow is
    // denied even when a policy allows it; a Deny in the boundary wins too).
    #[test]
    fn decisions_with_repositories_and_a_boundary() {
        use Decided::*;
        let repos = vec![APP.to_owned()];
        let all = allow(
            json!([
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer"
            ]),
            json!("*"),
        );
        type Case = (&'static str, Vec<Value>, Option<Value>, Vec<Decided>);
        let cases: Vec<Case> = vec![
            (
                "everything on *",
                vec![all.clone()],
                None,
                vec![Allow, Allow, Allow],
            ),
            (
                "pull on another repository only",
                vec![
                    allow(json!("ecr:GetAuthorizationToken"), json!("*")),
                    allow(
                        json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]),
                        json!(OTHER),
                    ),
                ],
                None,
                vec![Allow, IdentityImplicit, IdentityImplicit],
            ),
            (
                "a Deny on the repository",
                vec![
                    all.clone(),
                    json!({"Statement": [{"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": APP}]}),
                ],
                None,
                vec![Allow, IdentityExplicit, Allow],
            ),
            (
                "a boundary without the token action",
                vec![all.clone()],
                Some(allow(
                    json!(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]),
                    json!("*"),
                )),
                vec![BoundaryImplicit, Allow, Allow],
            ),
            (
                "a boundary denying the repository",
                vec![all.clone()],
                Some(
                    json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, {"Effect": "Deny", "Action": "ecr:GetDownloadUrlForLayer", "Resource": APP}]}),
                ),
                vec![Allow, Allow, BoundaryExplicit],
            ),
            (
                "neither allows: the role's policies are named first",
                vec![],
                Some(allow(json!("s3:*"), json!("*"))),
                vec![IdentityImplicit, IdentityImplicit, IdentityImplicit],
            ),
        ];
        for (name, policies, boundary, want) in cases {
            let r = reading(policies, boundary, Value::Null);
            assert_eq!(decide_all(&r, &repos), want, "{name}");
        }
    }

    #[test]
    fn a_boundary_is_named_and_never_mended() {
        let repos = vec![APP.to_owned()];
        let n = needs(&repos);
        let boundary = "arn:aws:iam::111122223333:policy/cap";
        let decided = [Decided::BoundaryImplicit, Decided::Allow, Decided::Allow];
        let c = permissions_verdict(&role(), Some(boundary), &n, &decided, &[], &repos, &[], &[]);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary
                .contains(&format!("permissions boundary {boundary}")),
            "{c:?}"
        );
        assert!(
            c.summary.contains("ecr:GetAuthorizationToken on *"),
            "{c:?}"
        );
        let fix = c.fix.as_ref().unwrap();
        assert!(
            fix.summary
                .contains("doctor does not change a permissions boundary"),
            "{fix:?}"
        );
        assert!(fix.change.is_none(), "{fix:?}");
        // And --fix makes no change: the role's policies allow it, the boundary does not.
        let all = allow(
            json!([
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer"
            ]),
            json!("*"),
        );
        let r = reading(
            vec![all],
            Some(allow(json!("ecr:BatchGetImage"), json!("*"))),
            Value::Null,
        );
        let read = decide_all(&r, &repos);
        assert_eq!(pull_change(&r, &n, &read, &read, &repos, &[]), None);
        // Nor for a Deny.
        let deny = json!({"Statement": [{"Effect": "Deny", "Action": "ecr:*", "Resource": "*"}]});
        let r = reading(vec![deny], None, Value::Null);
        let read = decide_all(&r, &repos);
        assert_eq!(pull_change(&r, &n, &read, &read, &repos, &[]), None);
        // A missing Allow is mended.
        let r = reading(vec![], None, Value::Null);
        let read = decide_all(&r, &repos);
        assert!(pull_change(&r, &n, &read, &read, &repos, &[]).is_some());
    }

    #[test]
    fn the_repositories_lacking_pull_are_named() {
        let repos = vec![APP.to_owned(), OTHER.to_owned()];
        let n = needs(&repos);
        use Decided::*;
        let decided = [Allow, Allow, Allow, IdentityImplicit, IdentityImplicit];
        let c = permissions_verdict(
            &role(),
            None,
            &n,
            &decided,
            &["inline p0".into()],
            &repos,
            &[],
            &[],
        );
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary.contains(&format!("no policy of the role allows ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on {OTHER}")),
            "{c:?}"
        );
        assert!(!c.summary.contains(APP), "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.commands[0].contains(&format!("--repository {OTHER}")),
            "{fix:?}"
        );
    }

    #[test]
    fn the_pull_policy_fix_keeps_what_irsa_ecr_pull_allows_and_adds_only_what_is_missing() {
        // review M4: the fix replaced a narrower irsa-ecr-pull with an account-wide grant.
        let current = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "PullImages", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": APP}
        ]});
        let r = reading(vec![current.clone()], None, current.clone());
        let repos = vec![APP.to_owned(), OTHER.to_owned()];
        let n = needs(&repos);
        let missing: Vec<&Need> = n
            .iter()
            .filter(|x| decide_read(&r, x).0 == Decided::IdentityImplicit)
            .collect();
        let after = merged_pull_policy(
            &r,
            &missing,
            &repos,
            &["arn:aws:ecr:us-east-1:111122223333:repository/*".into()],
        );
        let statements = after["Statement"].as_array().unwrap();
        assert_eq!(statements[0], current["Statement"][0], "kept as it was");
        assert_eq!(statements.len(), 3, "{after:#}");
        assert_eq!(statements[1]["Action"], GET_AUTHORIZATION_TOKEN);
        assert_eq!(statements[2]["Sid"], "PullImages2", "Sids stay unique");
        assert_eq!(
            statements[2]["Resource"],
            json!([OTHER]),
            "only the repository lacking pull"
        );
        // The merged policy allows every need.
        let fixed = reading(vec![after.clone()], None, after);
        assert!(
            decide_all(&fixed, &repos)
                .iter()
                .all(|d| *d == Decided::Allow)
        );
    }

    #[test]
    fn without_a_known_repository_the_fix_is_account_wide_as_before() {
        let current = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}]});
        let r = reading(vec![current.clone()], None, current.clone());
        let n = needs(&[]);
        let missing: Vec<&Need> = n.iter().collect();
        let wide = "arn:aws:ecr:us-east-1:111122223333:repository/*".to_owned();
        let after = merged_pull_policy(&r, &missing, &[], std::slice::from_ref(&wide));
        let statements = after["Statement"].as_array().unwrap();
        assert_eq!(statements[0], current["Statement"][0]);
        assert_eq!(statements[2]["Resource"], json!([wide]));
        assert_eq!(statements[2]["Action"], json!(ECR_PULL_ACTIONS));
        // No irsa-ecr-pull yet: a policy of its own.
        let r = reading(vec![], None, Value::Null);
        let after = merged_pull_policy(&r, &missing, &[], std::slice::from_ref(&wide));
        assert_eq!(
            after,
            irsa_core::trust_policy::ecr_pull_policy(&[wide], false)
        );
    }

    fn sims(ds: &[Decided]) -> Vec<Simulated> {
        ds.iter()
            .map(|d| Simulated {
                decided: *d,
                missing: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_simulator_and_the_policies_read_disagreeing_is_said_and_never_a_pass() {
        use Decided::*;
        let repos = vec![APP.to_owned()];
        let n = needs(&repos);
        // The simulator allowed, the reading did not: no pass (review M2: it let the
        // simulator win, and a Deny it skipped for want of context was a real request's).
        let (d, notes) = agree(
            &n,
            &sims(&[Allow, Allow, IdentityImplicit]),
            &[IdentityImplicit, Allow, IdentityImplicit],
        );
        assert_eq!(d, [Undecided, Allow, IdentityImplicit]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("disagree on ecr:GetAuthorizationToken on *"),
            "{notes:?}"
        );
        assert!(
            notes[0]
                .contains("the simulator says allowed, the policies read say implicitly denied"),
            "{notes:?}"
        );
        // Both deny: the reading names the policy type (here the boundary).
        let (d, notes) = agree(
            &n,
            &sims(&[IdentityImplicit, Allow, Allow]),
            &[BoundaryImplicit, Allow, Allow],
        );
        assert_eq!(d, [BoundaryImplicit, Allow, Allow]);
        assert!(!notes.iter().any(|l| l.contains("disagree")), "{notes:?}");
        // The simulator's deny is not mended from a reading that allows.
        let r = reading(vec![allow(json!("ecr:*"), json!("*"))], None, Value::Null);
        let read = decide_all(&r, &repos);
        assert_eq!(
            pull_change(
                &r,
                &n,
                &read,
                &[IdentityImplicit, Allow, Allow],
                &repos,
                &[]
            ),
            None
        );
    }

    const VPCE_PULL: &str = r#"{"Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}, {"Sid": "ViaVpce", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0123"}}}]}"#;

    #[test]
    fn a_pull_allowed_only_under_a_condition_is_not_mended_with_an_unconditional_allow() {
        // Review M1: --fix added an unconditional Allow next to the conditional one, which
        // bypassed the restriction (account-wide when no repository was known).
        use Decided::*;
        let r = reading(
            vec![serde_json::from_str(VPCE_PULL).unwrap()],
            None,
            Value::Null,
        );
        let repos = vec![APP.to_owned()];
        let n = needs(&repos);
        let read = decide_all(&r, &repos);
        assert_eq!(read, [Allow, Conditional, Conditional]);
        assert_eq!(pull_change(&r, &n, &read, &read, &repos, &[]), None);
        // Without a repository known, the account-wide fallback is not granted either.
        let all_vpce = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0123"}}}]});
        let wide = "arn:aws:ecr:us-east-1:111122223333:repository/*".to_owned();
        let rv = reading(vec![all_vpce], None, Value::Null);
        let n = needs(&[]);
        let read = decide_all(&rv, &[]);
        assert_eq!(read, [Conditional]);
        assert_eq!(
            pull_change(&rv, &n, &read, &read, &[], std::slice::from_ref(&wide)),
            None
        );
        // The verdict: not decided, the condition printed, no change.
        let repos = vec![APP.to_owned()];
        let n = needs(&repos);
        let read = decide_all(&r, &repos);
        let why = undecided_why(&n, &read, &Ok(r), &Err("no simulator".into()));
        let c = permissions_verdict(&role(), None, &n, &read, &[], &repos, &[], &why);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.summary.contains("the condition decides"), "{c:?}");
        assert!(
            c.summary
                .contains(r#"ViaVpce: {"StringEquals":{"aws:SourceVpce":"vpce-0123"}}"#),
            "{c:?}"
        );
        assert!(c.fix.as_ref().unwrap().change.is_none(), "{c:?}");
    }

    fn sim_result(
        decision: SimulatedDecision,
        boundary: Option<bool>,
        types: &[&str],
        missing: &[&str],
    ) -> irsa_aws::iam::SimulatedResult {
        irsa_aws::iam::SimulatedResult {
            action: "ecr:BatchGetImage".into(),
            resource: APP.into(),
            decision,
            matched: types
                .iter()
                .map(|t| irsa_core::iam_simulation::MatchedStatement {
                    source_policy_id: "p".into(),
                    source_policy_type: Some((*t).into()),
                })
                .collect(),
            allowed_by_boundary: boundary,
            missing_context: missing.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn a_simulated_allow_without_the_context_keys_is_no_pass() {
        // Review M2: the simulator, given no context, skips a Deny conditioned on a key and
        // says allowed (naming the key in MissingContextValues); the reading says explicit
        // deny, and the verdict was the simulator's pass.
        use Decided::*;
        let vpce = sim_result(SimulatedDecision::Allowed, None, &[], &["aws:SourceVpce"]);
        assert_eq!(simulated(&vpce).decided, Undecided);
        let repos = vec![APP.to_owned()];
        let n = needs(&repos);
        let mut sim = sims(&[Allow, Allow, Allow]);
        sim[1] = simulated(&vpce);
        let (d, notes) = agree(&n, &sim, &[Allow, IdentityExplicit, Allow]);
        assert_eq!(d, [Allow, IdentityExplicit, Allow]);
        assert!(
            notes
                .iter()
                .any(|l| l.contains("without the context keys aws:SourceVpce")),
            "{notes:?}"
        );
        // With a reading that allows too, still no pass: the keys decide; named in the summary.
        let (d, _) = agree(&n, &sim, &[Allow, Allow, Allow]);
        assert_eq!(d, [Allow, Undecided, Allow]);
        let why = undecided_why(&n, &d, &Err(unreadable_check(&[])), &Ok(sim));
        let c = permissions_verdict(&role(), None, &n, &d, &[], &repos, &[], &why);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.summary.contains("aws:SourceVpce"), "{c:?}");
        // A simulated allow whose keys are none is an allow.
        let plain = sim_result(SimulatedDecision::Allowed, None, &[], &[]);
        assert_eq!(simulated(&plain).decided, Allow);
    }

    #[test]
    fn the_boundary_is_named_from_its_decision_detail_only() {
        // Review L1: SourcePolicyType is user, group, role, aws-managed, user-managed,
        // resource or none in IAM's API; it never says "boundary".
        use Decided::*;
        let cases = [
            (
                SimulatedDecision::ExplicitDeny,
                Some(true),
                "user-managed",
                IdentityExplicit,
            ),
            (
                SimulatedDecision::ExplicitDeny,
                Some(false),
                "user-managed",
                BoundaryExplicit,
            ),
            (
                SimulatedDecision::ImplicitDeny,
                Some(false),
                "none",
                BoundaryImplicit,
            ),
            (
                SimulatedDecision::ImplicitDeny,
                None,
                "PermissionsBoundaryPolicy",
                IdentityImplicit,
            ),
            (
                SimulatedDecision::ExplicitDeny,
                None,
                "Permissions Boundary",
                IdentityExplicit,
            ),
        ];
        for (decision, detail, kind, want) in cases {
            let r = sim_result(decision, detail, &[kind], &[]);
            assert_eq!(
                simulated(&r).decided,
                want,
                "{decision:?} {detail:?} {kind}"
            );
        }
    }

    #[test]
    fn a_merged_pull_policy_over_the_inline_quota_is_said_not_put() {
        // Review L3: IAM counts a role's inline policies together, whitespace excluded.
        let mut r = reading(vec![], None, Value::Null);
        let after = irsa_core::trust_policy::ecr_pull_policy(&[APP.to_owned()], false);
        let merged = iam_size(&after.to_string());
        r.inline_sizes = vec![
            ("other".into(), MAX_ROLE_INLINE_CHARS - merged),
            (PULL_POLICY_NAME.into(), 9000),
        ];
        assert_eq!(fits_inline_quota(&r, "puller", &after), Ok(()));
        r.inline_sizes[0].1 += 1;
        let e = fits_inline_quota(&r, "puller", &after).unwrap_err();
        assert!(e.contains("--fix makes no change"), "{e}");
        assert!(e.contains(&format!("{}", MAX_ROLE_INLINE_CHARS + 1)), "{e}");
        assert!(e.contains("10240"), "{e}");
        assert_eq!(iam_size(" {\n \"a\" : 1 }\t"), 7);
    }

    #[test]
    fn a_policy_that_could_not_be_read_makes_the_check_an_error_not_a_pass() {
        let c = unreadable_check(&[
            "attached arn:aws:iam::111122223333:policy/guard: no default version".into(),
        ]);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.summary.starts_with("could not check"), "{c:?}");
        assert!(c.summary.contains("policy/guard"), "{c:?}");
    }

    #[test]
    fn a_pods_ecr_images_are_its_repositories() {
        let images = vec![
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app:1".to_owned(),
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
            "docker.io/library/busybox".to_owned(),
            "\u{202e}bad".to_owned(),
            // Review H1: an ARN or a wildcard from a pod is no image, and no grant.
            "arn:aws:ecr:us-east-1:111122223333:repository/*?".to_owned(),
            "arn:aws:ecr:us-east-1:111122223333:repository/*/x".to_owned(),
            "arn:aws:ecr:us-east-1:444455556666:repository/?".to_owned(),
            "ARN:aws:ecr:us-east-1:111122223333:repository/app".to_owned(),
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/*".to_owned(),
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/team/*:1".to_owned(),
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/te?m/app:1".to_owned(),
        ];
        assert_eq!(
            image_repositories(&images),
            ["arn:aws:ecr:us-east-1:111122223333:repository/team/app"]
        );
    }
}
