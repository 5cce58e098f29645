//! The checks that need no cluster and no AWS: the token's claims as STS reads them, and the
//! role's trust policy evaluated with irsa-core's evaluator against them. Used by both the
//! online run (real token, real trust policy) and the offline one (`--trust-policy`, `--token`).

use irsa_core::arn::{self, OidcProviderArn};
use irsa_core::names::STS_AUDIENCE;
use irsa_core::time::rfc3339;
use irsa_core::token::{Claims, ServiceAccountName};
use irsa_core::trust_policy::{
    self, Decision, Effect, Mismatch, Outcome, PolicyDocument, RequestContext,
};
use serde_json::{Value, json};

use super::report::{Check, Fix, Group};
use crate::shell::sh;

/// The provider a token is presented as: an IAM OIDC provider ARN, or (offline, without
/// `--provider-arn`) just the issuer's host/path in an unknown account.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    /// `oidc.eks.us-east-1.amazonaws.com/id/X`.
    pub host_path: String,
    /// The ARN, when the account is known.
    pub arn: Option<OidcProviderArn>,
}

impl Provider {
    pub(crate) fn from_arn(arn: OidcProviderArn) -> Self {
        Self {
            host_path: arn.provider.clone(),
            arn: Some(arn),
        }
    }

    fn request(&self, claims: &Claims) -> RequestContext {
        match &self.arn {
            Some(arn) => {
                RequestContext::web_identity(&arn.to_string(), &self.host_path, &claims.raw)
            }
            None => {
                let arn = format!("arn:aws:iam::000000000000:oidc-provider/{}", self.host_path);
                RequestContext::web_identity(&arn, &self.host_path, &claims.raw).with_any_account()
            }
        }
    }

    fn account(&self) -> Option<&str> {
        self.arn.as_ref().map(|a| a.account.as_str())
    }
}

/// The claims STS and a trust policy read, as lines (never the token itself).
pub(crate) fn claim_lines(claims: &Claims, now: i64) -> Vec<String> {
    let mut lines = vec![
        format!("sub  {}", claims.sub.as_deref().unwrap_or("(none)")),
        format!("aud  {}", claims.aud.join(", ")),
        format!("iss  {}", claims.iss.as_deref().unwrap_or("(none)")),
    ];
    if let Some(exp) = claims.exp {
        let left = exp - now;
        let when = if left >= 0 {
            format!("in {}", human(left))
        } else {
            format!("{} ago", human(-left))
        };
        lines.push(format!("exp  {} ({when})", rfc3339(exp)));
    } else {
        lines.push("exp  (none)".to_owned());
    }
    if let Some(azp) = claims.raw.get("azp").and_then(Value::as_str) {
        lines.push(format!(
            "azp  {azp} (a trust policy's :aud reads azp, not aud)"
        ));
    }
    lines
}

/// The claims as data for JSON.
pub(crate) fn claims_json(claims: &Claims) -> Value {
    json!({
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "exp": claims.exp.map(rfc3339),
        "iat": claims.iat.map(rfc3339),
        "azp": claims.raw.get("azp"),
    })
}

fn human(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// What STS checks of a token before it reads the trust policy: an issuer equal to the
/// provider's, an expiry in the future, a service-account subject, the audience.
pub(crate) fn token_problems(
    claims: &Claims,
    provider: Option<&Provider>,
    audience: &str,
    now: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
    match claims.iss.as_deref().map(arn::issuer_host_path) {
        Some(Ok(iss)) => {
            if let Some(p) = provider
                && iss != p.host_path
            {
                problems.push(format!(
                    "the token's issuer {iss:?} is not the OIDC provider's {:?}: STS answers InvalidIdentityToken",
                    p.host_path
                ));
            }
        }
        Some(Err(e)) => problems.push(format!("the iss claim is not an https issuer URL: {e}")),
        None => problems.push("the token has no iss claim".to_owned()),
    }
    match claims.exp {
        Some(exp) if exp <= now => problems.push(format!(
            "the token expired at {}: STS answers ExpiredTokenException",
            rfc3339(exp)
        )),
        Some(_) => {}
        None => {
            problems.push("the token has no exp claim: STS refuses tokens without one".to_owned())
        }
    }
    if !claims.aud.iter().any(|a| a == audience) {
        problems.push(format!(
            "the token's aud {:?} does not include {audience:?}",
            claims.aud
        ));
    }
    if let Some(sub) = &claims.sub
        && ServiceAccountName::from_subject(sub).is_err()
    {
        problems.push(format!(
            "sub {sub:?} is not a service account (system:serviceaccount:NAMESPACE:NAME)"
        ));
    }
    problems
}

/// The service account the token speaks for, from its `sub`.
fn token_service_account(claims: &Claims) -> Option<ServiceAccountName> {
    claims
        .sub
        .as_deref()
        .and_then(|s| ServiceAccountName::from_subject(s).ok())
}

/// Everything the trust-policy check needs to know besides the policy and the claims.
pub(crate) struct TrustContext<'a> {
    pub provider: &'a Provider,
    /// The role's name, for the `aws iam update-assume-role-policy` fix.
    pub role_name: Option<&'a str>,
    /// The issuer URL, for the `irsa policy trust` fix.
    pub issuer: Option<&'a str>,
    /// The audience the workload's token carries.
    pub audience: &'a str,
    /// Whether `irsa iam setup` created the role for this service account (its tags): its
    /// trust policy is then irsa's to put back whole, even when it trusts other subjects now.
    pub owned: bool,
}

/// Evaluates the trust policy against the token's claims, as STS would.
pub(crate) fn trust_policy_check(
    policy: &PolicyDocument,
    claims: &Claims,
    ctx: &TrustContext<'_>,
) -> Check {
    let decision = trust_policy::evaluate(policy, &ctx.provider.request(claims));
    let lines: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| {
            let state = if r.applies {
                "applies"
            } else {
                "does not apply"
            };
            format!("{} ({}) {state}: {}", r.statement, r.effect, r.message)
        })
        .collect();
    if decision.allowed() {
        let by: Vec<&str> = decision
            .reasons
            .iter()
            .filter(|r| r.applies && r.effect == Effect::Allow)
            .map(|r| r.statement.as_str())
            .collect();
        return Check::pass(
            "trust-policy",
            Group::Aws,
            format!("allows this token: {}", by.join(", ")),
        )
        .details(lines)
        .data("outcome", json!(decision.outcome));
    }
    let mut check = match decision.outcome {
        Outcome::ExplicitDeny => {
            let deny = decision
                .reasons
                .iter()
                .find(|r| r.applies && r.effect == Effect::Deny);
            Check::fail(
                "trust-policy",
                Group::Aws,
                format!(
                    "denies this token explicitly: {} applies, and a Deny wins over any Allow",
                    deny.map(|r| r.statement.as_str())
                        .unwrap_or("a Deny statement")
                ),
            )
            .expected_actual(
                json!("no Deny statement applies"),
                json!(deny.map(|r| format!("{} applies: {}", r.statement, r.message))),
            )
            .data("deny_statements", json!(denying_statements(&decision)))
        }
        _ => {
            let check = Check::fail(
                "trust-policy",
                Group::Aws,
                "no statement allows this token (implicit deny)",
            );
            match first_condition_failure(&decision) {
                Some((statement, f)) => {
                    let mut c = check.expected_actual(
                        json!({"statement": statement, "condition": format!("{} {}", f.operator, f.key), "values": f.expected}),
                        json!({"key": f.key, "values": f.actual, "claim": f.claim}),
                    );
                    if let Some(hint) = condition_hint(f) {
                        c = c.detail(hint);
                    }
                    c
                }
                None => check,
            }
        }
    };
    check = check
        .details(lines)
        .data("outcome", json!(decision.outcome));
    // The subjects an Allow statement of this provider trusts instead of the token's, when
    // that is why no statement applies (not a StringEquals holding a wildcard).
    let trusted_instead = match (&decision.outcome, first_condition_failure(&decision)) {
        _ if ctx.owned => None,
        (Outcome::ExplicitDeny, _) => None,
        (_, Some((_, f)))
            if f.key == format!("{}:sub", ctx.provider.host_path)
                && f.other_provider.is_none()
                && condition_hint(f).is_none() =>
        {
            Some(f.expected.clone())
        }
        _ => None,
    };
    if decision.outcome == Outcome::ExplicitDeny {
        // Another trust policy would not help: the Deny wins over whatever allows the token.
        let denies: Vec<&str> = decision
            .reasons
            .iter()
            .filter(|r| r.applies && r.effect == Effect::Deny)
            .map(|r| r.statement.as_str())
            .collect();
        let role = ctx.role_name.unwrap_or("ROLE_NAME");
        check = check.fix(
            Fix::new(format!(
                "remove the Deny statement(s) {} from the role's trust policy, if this service account is meant to assume it (irsa doctor --fix removes exactly those, once the role's name is confirmed)",
                denies.join(", ")
            ))
            .command(format!("aws iam get-role --role-name {} --query Role.AssumeRolePolicyDocument > trust.json   # edit out the Deny, then:", sh(role)))
            .command(format!("aws iam update-assume-role-policy --role-name {} --policy-document file://trust.json", sh(role))),
        );
    } else if let Some(fix) = trust_fix(claims, ctx, trusted_instead.as_deref()) {
        check = check.fix(fix);
    }
    check
}

/// The indexes (in the document's order) of the Deny statements that apply to the request.
pub(crate) fn denying_statements(decision: &Decision) -> Vec<usize> {
    decision
        .reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.applies && r.effect == Effect::Deny)
        .map(|(i, _)| i)
        .collect()
}

/// `document` without the statements at `indexes` (a lone `Statement` object counts as
/// index 0), everything else as it was; `None` when it has no such statements, or when none
/// would be left (IAM refuses a trust policy without a statement).
pub(crate) fn without_statements(document: &Value, indexes: &[usize]) -> Option<Value> {
    let mut out = document.clone();
    let statements = out.get_mut("Statement")?;
    let list = match statements {
        Value::Array(list) => list,
        one @ Value::Object(_) => {
            *one = Value::Array(vec![one.clone()]);
            one.as_array_mut()?
        }
        _ => return None,
    };
    if indexes.is_empty() || indexes.iter().any(|&i| i >= list.len()) {
        return None;
    }
    let kept: Vec<Value> = list
        .iter()
        .enumerate()
        .filter(|(i, _)| !indexes.contains(i))
        .map(|(_, s)| s.clone())
        .collect();
    if kept.is_empty() {
        return None;
    }
    *list = kept;
    Some(out)
}

/// The claim a web-identity token carries session tags in: with it, STS tags the session and
/// needs `sts:TagSession` allowed too (IAM User Guide, "Passing session tags using
/// AssumeRoleWithWebIdentity").
pub(crate) const SESSION_TAGS_CLAIM: &str = "https://aws.amazon.com/tags";
// The service principal EKS Pod Identity assumes roles as (`sts:AssumeRole` and
// `sts:TagSession`): a role trusting only it is not a role for IRSA.
pub(crate) use irsa_core::names::POD_IDENTITY_PRINCIPAL;

/// The `sts:TagSession` trap: a token with session tags needs `sts:TagSession` allowed as
/// well as `sts:AssumeRoleWithWebIdentity`; and a role set up for EKS Pod Identity (trusting
/// pods.eks.amazonaws.com with sts:AssumeRole and sts:TagSession) trusts no web identity.
pub(crate) fn session_tags_check(
    policy: &PolicyDocument,
    claims: &Claims,
    ctx: &TrustContext<'_>,
) -> Check {
    const ID: &str = "session-tags";
    let pod_identity: Vec<String> = policy
        .statements
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.effect == Effect::Allow
                && matches!(&s.principal, trust_policy::PrincipalMatch::Principal(p)
                    if p.service.iter().any(|svc| svc == POD_IDENTITY_PRINCIPAL))
        })
        .map(|(i, s)| s.label(i))
        .collect();
    let request = ctx.provider.request(claims);
    let web_identity = trust_policy::evaluate(policy, &request).allowed();
    if !pod_identity.is_empty() && !web_identity {
        let statement = trust_fix(claims, ctx, Some(&[][..]))
            .and_then(|f| f.document)
            .unwrap_or(Value::Null);
        return Check::fail(
            ID,
            Group::Aws,
            format!(
                "the role is set up for EKS Pod Identity ({} trusts {POD_IDENTITY_PRINCIPAL} with sts:AssumeRole and sts:TagSession), not for this cluster's OIDC provider: no statement allows sts:AssumeRoleWithWebIdentity for this token",
                pod_identity.join(", ")
            ),
        )
        .detail("EKS Pod Identity (an EKS pod identity association) and IRSA (a service-account annotation and an IAM OIDC provider) are two ways to give pods a role; the role's trust policy must name the one the pod uses")
        .expected_actual(
            json!({"Principal": {"Federated": ctx.provider.arn.as_ref().map(ToString::to_string)}, "Action": "sts:AssumeRoleWithWebIdentity"}),
            json!({"Principal": {"Service": POD_IDENTITY_PRINCIPAL}, "statements": pod_identity}),
        )
        .fix(
            Fix::new("use an EKS pod identity association for this service account instead of the role-arn annotation, or ADD this statement to the role's trust policy (keeping the Pod Identity one) to use it through IRSA")
                .document(statement),
        );
    }
    let tags = claims.raw.get(SESSION_TAGS_CLAIM);
    if tags.is_some() && !web_identity {
        // No statement allows the token at all (a wrong sub, say): that is the trust policy's
        // failure, named there; sts:TagSession matters once the token is allowed.
        return Check::pass(
            ID,
            Group::Aws,
            "the token carries session tags; whether sts:TagSession is allowed is checked once the trust policy allows the token",
        )
        .detail("no statement allows sts:AssumeRoleWithWebIdentity for this token: see trust-policy");
    }
    if tags.is_some() {
        let tag_session = trust_policy::evaluate(policy, &request.with_action("sts:TagSession"));
        if !tag_session.allowed() {
            return Check::fail(
                ID,
                Group::Aws,
                format!(
                    "the token carries session tags ({SESSION_TAGS_CLAIM}), so STS also needs sts:TagSession, which no statement allows: AccessDenied"
                ),
            )
            .details(tag_session.reasons.iter().map(|r| {
                format!("{} ({}): {}", r.statement, r.effect, r.message)
            }))
            .expected_actual(
                json!({"Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]}),
                json!({"Action": "sts:AssumeRoleWithWebIdentity"}),
            )
            .fix(Fix::new(
                "add sts:TagSession to the Action of the statement that allows this token (\"Action\": [\"sts:AssumeRoleWithWebIdentity\", \"sts:TagSession\"]), or issue tokens without the session-tags claim",
            ));
        }
        return Check::pass(
            ID,
            Group::Aws,
            "the token carries session tags, and sts:TagSession is allowed",
        );
    }
    let mut check = Check::pass(
        ID,
        Group::Aws,
        format!(
            "no session tags in the token ({SESSION_TAGS_CLAIM}): sts:TagSession is not needed"
        ),
    );
    if !pod_identity.is_empty() {
        check = check.detail(format!(
            "{} also trusts EKS Pod Identity ({POD_IDENTITY_PRINCIPAL})",
            pod_identity.join(", ")
        ));
    }
    check
}

/// The first Allow statement whose principal and action matched but a condition did not: the
/// one the user meant to match.
fn first_condition_failure(decision: &Decision) -> Option<(&str, &trust_policy::ConditionFailure)> {
    decision.reasons.iter().find_map(|r| match &r.failed {
        Some(Mismatch::Condition(f)) if r.effect == Effect::Allow => {
            Some((r.statement.as_str(), f))
        }
        _ => None,
    })
}

/// Traps worth naming beyond expected against actual.
fn condition_hint(f: &trust_policy::ConditionFailure) -> Option<String> {
    let wildcard = f.expected.iter().any(|v| v.contains(['*', '?']));
    let literal = f
        .operator
        .trim_end_matches("IfExists")
        .ends_with("StringEquals");
    if wildcard && literal {
        return Some(format!(
            "{} compares literally: the * or ? in {:?} is not a wildcard there; use StringLike",
            f.operator, f.expected
        ));
    }
    if let Some(other) = &f.other_provider {
        return Some(format!(
            "the key belongs to provider {other}, not the one this token is presented as"
        ));
    }
    if !f.key_present {
        return Some(format!(
            "the request has no key {} (the token lacks that claim)",
            f.key
        ));
    }
    None
}

/// The fix: the trust policy for the token's own service account. When the role trusts other
/// subjects (`trusted_instead`), the annotation may be what is wrong, and the fix adds a
/// statement rather than replacing the policy (which would take the role from its owners).
fn trust_fix(
    claims: &Claims,
    ctx: &TrustContext<'_>,
    trusted_instead: Option<&[String]>,
) -> Option<Fix> {
    let sa = token_service_account(claims)?;
    let arn = ctx
        .provider
        .arn
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            format!(
                "arn:aws:iam::ACCOUNT_ID:oidc-provider/{}",
                ctx.provider.host_path
            )
        });
    let document = trust_policy::service_account_trust_policy(
        &arn,
        &ctx.provider.host_path,
        &sa.namespace,
        &sa.name,
        ctx.audience,
    );
    let issuer = ctx
        .issuer
        .map(str::to_owned)
        .unwrap_or_else(|| format!("https://{}", ctx.provider.host_path));
    if let Some(subjects) = trusted_instead {
        let statement = document["Statement"][0].clone();
        let mut fix = Fix::new(format!(
            "the role trusts {}: the {} annotation may name another team's role (service-account annotations are writable by the namespace's users); check that {}/{} should use this role, and only then ADD the statement below to the role's trust policy, keeping its statements (never replace them)",
            subjects.join(", "),
            irsa_core::names::ROLE_ARN_ANNOTATION,
            sa.namespace,
            sa.name
        ));
        if let Some(role) = ctx.role_name {
            fix = fix.command(format!(
                "aws iam get-role --role-name {} --query Role.AssumeRolePolicyDocument --output json > trust.json   # add the statement to its Statement list, then apply it with aws iam update-assume-role-policy",
                sh(role)
            ));
        }
        return Some(fix.document(statement));
    }
    let mut generate = format!(
        "irsa policy trust --issuer {} --service-account {}",
        sh(&issuer),
        sh(&format!("{}/{}", sa.namespace, sa.name))
    );
    if let Some(account) = ctx.provider.account() {
        generate.push_str(&format!(" --account {}", sh(account)));
    }
    if ctx.audience != STS_AUDIENCE {
        generate.push_str(&format!(" --audience {}", sh(ctx.audience)));
    }
    generate.push_str(" > trust.json");
    let mut fix = Fix::new(format!(
        "trust {}/{} with this policy (it replaces the role's trust policy; keep any other statements you need, without a Deny that matches this token)",
        sa.namespace, sa.name
    ))
    .command(generate);
    if let Some(role) = ctx.role_name {
        fix = fix.command(format!(
            "aws iam update-assume-role-policy --role-name {} --policy-document file://trust.json",
            sh(role)
        ));
    }
    Some(fix.document(document))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_statements_named_are_removed() {
        let allow = json!({"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity"});
        let deny = json!({"Sid": "NoCi", "Effect": "Deny", "Action": "*"});
        let other = json!({"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": "x"}});
        let doc = json!({"Version": "2012-10-17", "Statement": [allow, deny, other]});
        assert_eq!(
            without_statements(&doc, &[1]),
            Some(json!({"Version": "2012-10-17", "Statement": [allow, other]}))
        );
        // Nothing to remove, out of range, or nothing left: no change.
        assert_eq!(without_statements(&doc, &[]), None);
        assert_eq!(without_statements(&doc, &[3]), None);
        assert_eq!(without_statements(&json!({"Statement": deny}), &[0]), None);
        assert_eq!(without_statements(&json!({"Statement": "x"}), &[0]), None);
        assert_eq!(
            without_statements(&json!({"Statement": [deny, allow]}), &[0]),
            Some(json!({"Statement": [allow]}))
        );
    }

    const PROVIDER: &str = "oidc.example.com/id/ABC";

    fn provider() -> Provider {
        Provider::from_arn(
            format!("arn:aws:iam::111122223333:oidc-provider/{PROVIDER}")
                .parse()
                .unwrap(),
        )
    }

    fn claims(sub: &str) -> Claims {
        Claims::from_json(
            json!({"iss": format!("https://{PROVIDER}"), "sub": sub, "aud": ["sts.amazonaws.com"], "exp": 2_000_000_000})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    fn check(policy: Value, sub: &str) -> Check {
        let policy = PolicyDocument::from_value(&policy).unwrap();
        let p = provider();
        let ctx = TrustContext {
            provider: &p,
            role_name: Some("puller"),
            issuer: None,
            audience: "sts.amazonaws.com",
            owned: false,
        };
        trust_policy_check(&policy, &claims(sub), &ctx)
    }

    fn policy(op: &str, sub: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::111122223333:oidc-provider/{PROVIDER}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {op: {format!("{PROVIDER}:sub"): sub}}
        }]})
    }

    #[test]
    fn string_equals_with_a_wildcard_is_named_and_fixed() {
        let c = check(
            policy("StringEquals", "system:serviceaccount:ci:*"),
            "system:serviceaccount:ci:builder",
        );
        assert_eq!(c.status, super::super::report::Status::Fail);
        assert!(
            c.details.iter().any(|d| d.contains("use StringLike")),
            "{:?}",
            c.details
        );
        assert_eq!(
            c.actual.as_ref().unwrap()["values"][0],
            "system:serviceaccount:ci:builder"
        );
        let fix = c.fix.unwrap();
        assert!(fix.commands[0].contains("--service-account ci/builder --account 111122223333"));
        assert!(fix.commands[1].contains("--role-name puller"));
        assert_eq!(
            fix.document.unwrap()["Statement"][0]["Condition"]["StringEquals"]
                [format!("{PROVIDER}:sub")],
            "system:serviceaccount:ci:builder"
        );
    }

    #[test]
    fn a_role_that_trusts_another_subject_is_named_and_never_replaced() {
        // The annotation is the tenant's: it may name another team's role. Replacing that
        // role's trust policy would hand the role to this service account.
        let c = check(
            policy("StringEquals", "system:serviceaccount:prod:builder"),
            "system:serviceaccount:ci:builder",
        );
        assert_eq!(c.status, super::super::report::Status::Fail);
        let fix = c.fix.unwrap();
        assert!(
            fix.summary
                .contains("the role trusts system:serviceaccount:prod:builder")
                && fix.summary.contains("may name another team's role"),
            "{fix:?}"
        );
        assert!(
            fix.commands
                .iter()
                .all(|c| !c.contains("update-assume-role-policy --")),
            "{fix:?}"
        );
        // The document is the statement to add, not a whole policy.
        let doc = fix.document.unwrap();
        assert_eq!(doc["Effect"], "Allow", "{doc}");
        assert_eq!(
            doc["Condition"]["StringEquals"][format!("{PROVIDER}:sub")],
            "system:serviceaccount:ci:builder"
        );
    }

    #[test]
    fn string_like_allows() {
        let c = check(
            policy("StringLike", "system:serviceaccount:ci:*"),
            "system:serviceaccount:ci:builder",
        );
        assert!(c.passed(), "{c:?}");
        assert!(c.fix.is_none());
    }

    #[test]
    fn problems_of_the_token_itself() {
        let c = claims("system:serviceaccount:ci:builder");
        assert!(token_problems(&c, Some(&provider()), "sts.amazonaws.com", 1_000).is_empty());
        let expired = token_problems(&c, None, "sts.amazonaws.com", 2_000_000_001);
        assert!(expired[0].contains("expired"), "{expired:?}");
        let other = Provider::from_arn(
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/OTHER"
                .parse()
                .unwrap(),
        );
        let wrong = token_problems(&c, Some(&other), "sts.amazonaws.com", 1_000);
        assert!(wrong[0].contains("InvalidIdentityToken"), "{wrong:?}");
        let aud = token_problems(&c, None, "other", 1_000);
        assert!(aud[0].contains("does not include \"other\""), "{aud:?}");
    }
}
