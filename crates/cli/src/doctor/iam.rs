//! The AWS account's links, read with the caller's own credentials (read-only IAM calls): the
//! IAM OIDC provider of the cluster's issuer and its client IDs, the role, its trust policy and
//! its permissions.

use irsa_aws::iam::{IamClient, IamError, OidcProvider, Role};
use irsa_core::arn::{OidcProviderArn, RoleArn};
use irsa_core::partition::Partition;
use irsa_core::permission_policy::{self, PermissionOutcome, PermissionPolicy};
use irsa_core::trust_policy::PolicyDocument;
use serde_json::json;

use super::Chain;
use super::exchange::pull_fix;
use super::report::{Check, Fix, Group, Report};
use super::trust::{Provider, TrustContext, trust_policy_check};
use crate::shell::sh;

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
            (
                check.fix(provider_fix(issuer, audience, namespace, name, role)),
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

/// Whether the provider's client IDs include the token's audience.
pub(crate) fn oidc_audience(provider: &OidcProvider, audience: &str) -> Check {
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
}

/// The role, and its trust policy.
pub(crate) async fn role(iam: &IamClient, role: &RoleArn) -> (Check, Option<PolicyDocument>) {
    const ID: &str = "role";
    match iam.get_role(&role.name).await {
        Ok(Some(found)) => role_found(role, &found),
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

/// Whether the role's inline and attached policies allow `ecr:GetAuthorizationToken`.
pub(crate) async fn permissions(iam: &IamClient, role: &RoleArn) -> Check {
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

/// The AWS-side checks, in chain order: oidc-provider, oidc-audience, role, trust-policy,
/// permissions.
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
    const PROVIDER_NEEDS: &[&str] = &["issuer", "role-annotation"];
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
        report.record(oidc_audience(p, audience), &["oidc-provider"]);
    }
    let mut trust_policy_doc = None;
    if report.ready("role", Group::Aws, &["role-annotation"])
        && let (Some(client), Some(a)) = (&iam_client, annotated)
    {
        let check = match client {
            Ok(iam) => {
                let (check, doc) = role(iam, &a.role).await;
                trust_policy_doc = doc;
                check
            }
            Err(e) => no_client("role", e),
        };
        report.record(check, &["role-annotation"]);
    }
    const TRUST_NEEDS: &[&str] = &["role", "token"];
    if report.ready("trust-policy", Group::Aws, TRUST_NEEDS)
        && let (Some(doc), Some(claims), Some(p), Some(a)) =
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
                };
                trust_policy_check(doc, claims, &ctx)
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
            Ok(iam) => permissions(iam, &a.role).await,
            Err(e) => no_client("permissions", e),
        };
        report.record(check, &["role"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

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
        let c = oidc_audience(&provider, HOSTILE);
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
