//! The AWS account's links, read with the caller's own credentials (read-only IAM calls): the
//! IAM OIDC provider of the cluster's issuer and its client IDs, the role, its trust policy and
//! its permissions.

use irsa_aws::iam::{IamClient, IamError, OidcProvider, Role};
use irsa_core::arn::{OidcProviderArn, RoleArn};
use irsa_core::partition::Partition;
use irsa_core::permission_policy::{self, PermissionOutcome, PermissionPolicy};
use irsa_core::trust_policy::PolicyDocument;
use serde_json::{Value, json};

use super::Chain;
use super::exchange::pull_fix;
use super::fix::{Action, Change, PULL_POLICY_NAME, ownership, trusts_only};
use super::report::{Check, Fix, Group, Report, Status};
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

/// Whether the role's inline and attached policies allow `ecr:GetAuthorizationToken`; when
/// not, `--fix`'s change: `irsa policy ecr-pull`'s document as the inline policy
/// irsa-ecr-pull.
pub(crate) async fn permissions(
    iam: &IamClient,
    role: &RoleArn,
    owner: &Result<(), String>,
    repositories: &[String],
) -> Check {
    let mut current_pull = Value::Null;
    let check = permissions_read(iam, role, &mut current_pull).await;
    if check.status != Status::Fail
        || check.data.get("outcome") != Some(&json!(PermissionOutcome::ImplicitDeny))
    {
        return check;
    }
    let document = irsa_core::trust_policy::ecr_pull_policy(repositories, false);
    let mut change = Change::new(
        format!(
            "put the ECR pull permissions (irsa policy ecr-pull) as inline policy {PULL_POLICY_NAME} of role {}",
            role.name
        ),
        format!("role {role}: inline policy {PULL_POLICY_NAME}"),
        current_pull,
        document,
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

async fn permissions_read(iam: &IamClient, role: &RoleArn, current_pull: &mut Value) -> Check {
    const ID: &str = "permissions";
    let mut policies: Vec<(String, PermissionPolicy)> = Vec::new();
    let mut unreadable = Vec::new();
    let inline = match iam.list_role_policies(&role.name).await {
        Ok(n) => n,
        Err(e) => return could_not(ID, &e),
    };
    for name in inline {
        match iam.get_role_policy(&role.name, &name).await {
            Ok(Some(p)) => match PermissionPolicy::parse(&p.document) {
                Ok(doc) if name == PULL_POLICY_NAME => {
                    *current_pull = serde_json::from_str(&p.document).unwrap_or(Value::Null);
                    policies.push((format!("inline {name}"), doc));
                }
                Ok(doc) => policies.push((format!("inline {name}"), doc)),
                Err(e) => unreadable.push(format!("inline {name}: {e}")),
            },
            Ok(None) => unreadable.push(format!(
                "inline {name}: listed, but IAM returned no document for it"
            )),
            Err(e) => return could_not(ID, &e),
        }
    }
    let attached = match iam.list_attached_role_policies(&role.name).await {
        Ok(a) => a,
        Err(e) => return could_not(ID, &e),
    };
    for a in attached {
        let version = match iam.get_policy(&a.arn).await {
            Ok(Some(p)) => p.default_version_id,
            Ok(None) => {
                unreadable.push(format!("attached {}: IAM does not find the policy", a.arn));
                continue;
            }
            Err(e) => return could_not(ID, &e),
        };
        let Some(version) = version else {
            unreadable.push(format!(
                "attached {}: no default version in IAM's answer",
                a.arn
            ));
            continue;
        };
        match iam.get_policy_version(&a.arn, &version).await {
            Ok(Some(v)) => match PermissionPolicy::parse(&v.document) {
                Ok(doc) => policies.push((format!("attached {}", a.arn), doc)),
                Err(e) => unreadable.push(format!("attached {}: {e}", a.arn)),
            },
            Ok(None) => unreadable.push(format!(
                "attached {}: IAM returned no document for version {version}",
                a.arn
            )),
            Err(e) => return could_not(ID, &e),
        }
    }
    permissions_verdict(role, &policies, &unreadable)
}

/// The permissions check from the policies read (`policies`) and those that could not be read
/// or parsed (`unreadable`, one line each).
fn permissions_verdict(
    role: &RoleArn,
    policies: &[(String, PermissionPolicy)],
    unreadable: &[String],
) -> Check {
    const ID: &str = "permissions";
    if !unreadable.is_empty() {
        // An unread policy may hold the Deny that decides: nothing can be concluded.
        return Check::error(
            ID,
            Group::Aws,
            format!(
                "could not check {GET_AUTHORIZATION_TOKEN}: {} of the role's policies could not be read ({})",
                unreadable.len(),
                unreadable.join("; ")
            ),
        )
        .detail("an unread policy may deny what the others allow; read it with aws iam get-role-policy / get-policy-version and fix or report what IAM returns");
    }
    let decision = permission_policy::evaluate(policies, GET_AUTHORIZATION_TOKEN, "*");
    let lines: Vec<String> = decision
        .applies
        .iter()
        .chain(&decision.near_misses)
        .map(|m| format!("{} {} ({}): {}", m.policy, m.statement, m.effect, m.note))
        .collect();
    let names: Vec<&str> = policies.iter().map(|(n, _)| n.as_str()).collect();
    let check = match decision.outcome {
        PermissionOutcome::Allow => Check::pass(ID, Group::Aws, format!("{GET_AUTHORIZATION_TOKEN} allowed on *")),
        PermissionOutcome::ExplicitDeny => Check::fail(ID, Group::Aws, format!("{GET_AUTHORIZATION_TOKEN} is denied explicitly"))
            .fix(Fix::new("remove the Deny of ecr:GetAuthorizationToken from the role's policies")),
        PermissionOutcome::ImplicitDeny => Check::fail(
            ID,
            Group::Aws,
            format!("no policy of the role allows {GET_AUTHORIZATION_TOKEN} on * (ECR answers AccessDenied)"),
        )
        .expected_actual(json!({"Effect": "Allow", "Action": GET_AUTHORIZATION_TOKEN, "Resource": "*"}), json!(names))
        .fix(pull_fix(role)),
    };
    check
        .detail(format!(
            "read {}: {}",
            names.len(),
            if names.is_empty() {
                "(no policies)".to_owned()
            } else {
                names.join(", ")
            }
        ))
        .details(lines)
        .data("outcome", json!(decision.outcome))
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
    const ROLE_NEEDS: &[&str] = &["role-annotation", "partition"];
    if report.ready("role", Group::Aws, ROLE_NEEDS)
        && let (Some(client), Some(a)) = (&iam_client, annotated)
    {
        let check = match client {
            Ok(iam) => {
                let (check, found) = role(iam, &a.role).await;
                if let Some((doc, found)) = found {
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
                let repositories = chain.inputs.repositories_for(&a.role);
                permissions(iam, &a.role, &owner, &repositories).await
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

    fn allow_all() -> (String, PermissionPolicy) {
        let doc = PermissionPolicy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
        )
        .unwrap();
        ("inline pull".into(), doc)
    }

    #[test]
    fn a_policy_that_could_not_be_read_makes_the_check_an_error_not_a_pass() {
        // The unread policy may hold a Deny: an Allow elsewhere proves nothing.
        let c = permissions_verdict(
            &role(),
            &[allow_all()],
            &["attached arn:aws:iam::111122223333:policy/guard: no default version".into()],
        );
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.summary.starts_with("could not check"), "{c:?}");
        assert!(c.summary.contains("policy/guard"), "{c:?}");
        let c = permissions_verdict(&role(), &[allow_all()], &[]);
        assert!(c.passed(), "{c:?}");
    }
}
