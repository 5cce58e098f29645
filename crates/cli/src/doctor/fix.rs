//! `irsa doctor --fix`: the changes that mend failing links, as data (a plan built by the
//! checks), each shown as a diff and made only when the caller agrees (`--yes`, or an answer
//! on the terminal), with the caller's own rights. A role irsa did not create for this service
//! account is never changed on `--yes` alone: its name must be confirmed (typed on the
//! terminal, or `--confirm-role NAME`), since the service account's annotation is the
//! tenant's and may name another team's role.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use irsa_aws::Env;
use irsa_aws::iam::{IamClient, Role, same_document};
use irsa_core::arn::RoleArn;
use irsa_core::names::{IAM_SETUP_TAG_VALUE, MANAGED_BY_TAG, SERVICE_ACCOUNT_TAG};
use irsa_core::partition::Partition;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};

use super::report::printable;

/// The inline policy doctor puts the ECR pull permissions in (as `irsa iam setup` does).
pub(crate) const PULL_POLICY_NAME: &str = "irsa-ecr-pull";

/// One change to the cluster or the AWS account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Set an annotation of the service account (JSON patch, conditional on the
    /// resourceVersion read).
    #[serde(rename_all = "camelCase")]
    Annotate {
        namespace: String,
        name: String,
        key: String,
        value: String,
        #[serde(skip)]
        resource_version: Option<String>,
        #[serde(skip)]
        has_annotations: bool,
    },
    /// `iam:CreateOpenIDConnectProvider`.
    #[serde(rename_all = "camelCase")]
    CreateOidcProvider {
        url: String,
        client_ids: Vec<String>,
        partition: String,
        /// The role's account, where the provider must be: IAM creates it in the caller's.
        account: String,
    },
    /// `iam:AddClientIDToOpenIDConnectProvider`.
    #[serde(rename_all = "camelCase")]
    AddClientId {
        provider_arn: String,
        client_id: String,
    },
    /// `iam:UpdateAssumeRolePolicy` (the document is `after`).
    #[serde(rename_all = "camelCase")]
    PutTrustPolicy { role_arn: String },
    /// `iam:PutRolePolicy` (the document is `after`).
    #[serde(rename_all = "camelCase")]
    PutRolePolicy {
        role_arn: String,
        policy_name: String,
    },
}

impl Action {
    /// The permission the caller needs for it.
    pub(crate) fn permission(&self) -> &'static str {
        match self {
            Action::Annotate { .. } => "patch serviceaccounts",
            Action::CreateOidcProvider { .. } => "iam:CreateOpenIDConnectProvider",
            Action::AddClientId { .. } => "iam:AddClientIDToOpenIDConnectProvider",
            Action::PutTrustPolicy { .. } => "iam:UpdateAssumeRolePolicy",
            Action::PutRolePolicy { .. } => "iam:PutRolePolicy",
        }
    }
}

/// What it takes to make a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Consent {
    /// `--yes`, or "y" on the terminal.
    Yes,
    /// The role's name: typed on the terminal, or `--confirm-role NAME` with `--yes`.
    RoleName,
}

/// A change a failing check asks for: what, where, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Change {
    /// One sentence.
    pub summary: String,
    /// The object changed (`service account ci/builder`, `role arn:…`).
    pub target: String,
    /// The object (or the part changed) now; null when it does not exist.
    pub before: Value,
    /// After the change.
    pub after: Value,
    /// What it takes to apply it.
    pub consent: Consent,
    /// For [`Consent::RoleName`]: the name to confirm, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
    /// The change as data (its `kind` and fields).
    #[serde(flatten)]
    pub action: Action,
    /// The permission it needs.
    pub permission: &'static str,
    /// `before` against `after`, line by line (`-`, `+`, ` `).
    pub diff: Vec<String>,
}

/// Why a role change needs its name confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Confirm {
    pub role_name: String,
    pub reason: String,
}

impl Change {
    pub(crate) fn new(
        summary: impl Into<String>,
        target: impl Into<String>,
        before: Value,
        after: Value,
        action: Action,
    ) -> Self {
        let diff = diff(&before, &after);
        Self {
            summary: summary.into(),
            target: target.into(),
            before,
            after,
            consent: Consent::Yes,
            confirm: None,
            permission: action.permission(),
            action,
            diff,
        }
    }

    /// This change needs the role's name confirmed.
    pub(crate) fn confirm_role(mut self, role_name: &str, reason: impl Into<String>) -> Self {
        self.consent = Consent::RoleName;
        self.confirm = Some(Confirm {
            role_name: role_name.to_owned(),
            reason: reason.into(),
        });
        self
    }
}

/// Whether `irsa iam setup` created `role` for `namespace/name` (its tags say so); otherwise,
/// why not, for the confirmation prompt.
pub(crate) fn ownership(role: &Role, namespace: &str, name: &str) -> Result<(), String> {
    let tag = |key: &str| {
        role.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let service_account = format!("{namespace}/{name}");
    match (tag(MANAGED_BY_TAG), tag(SERVICE_ACCOUNT_TAG)) {
        (Some(IAM_SETUP_TAG_VALUE), Some(sa)) if sa == service_account => Ok(()),
        (Some(IAM_SETUP_TAG_VALUE), Some(sa)) => Err(format!(
            "irsa iam setup created role {} for service account {}, not {service_account}: the annotation may name another team's role",
            role.name,
            printable(sa)
        )),
        _ => Err(format!(
            "role {} was not created by irsa iam setup (no {MANAGED_BY_TAG}={IAM_SETUP_TAG_VALUE} and {SERVICE_ACCOUNT_TAG}={service_account} tags): someone else owns it, and the service account's annotation may name another team's role",
            role.name
        )),
    }
}

/// Whether every statement of `role`'s trust policy allows exactly `provider` (this cluster's
/// IAM OIDC provider) and nothing else. Tags say who set a role up, not for which cluster, and
/// anyone with `iam:TagRole` can set them: a role tagged for this service account is changed on
/// `--yes` alone only when its trust policy is this cluster's and nobody else's (no Deny, no
/// other provider or principal), because the fix replaces it. Otherwise, why not.
pub(crate) fn trusts_only(role: &Role, provider: &str) -> Result<(), String> {
    let not_only = |why: &str| {
        Err(format!(
            "role {}'s trust policy {why}: the fix replaces it, so its name must be confirmed (its tags alone do not say whose cluster it serves)",
            role.name
        ))
    };
    let Some(doc) = role
        .trust_policy
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return not_only("could not be read");
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return not_only("has no statement"),
    };
    for s in statements {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            return not_only("holds a statement that is not an Allow (a Deny would be lost)");
        }
        let Some(principal) = s.get("Principal").and_then(Value::as_object) else {
            return not_only("holds a statement without a Principal");
        };
        let federated: Vec<Option<&str>> = match principal.get("Federated") {
            Some(Value::String(f)) => vec![Some(f.as_str())],
            Some(Value::Array(a)) => a.iter().map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if principal.len() != 1 || federated.is_empty() {
            return not_only("allows a principal that is not an OIDC provider");
        }
        if federated.iter().any(|f| *f != Some(provider)) {
            return not_only("allows another OIDC provider than this cluster's");
        }
    }
    Ok(())
}

/// `before` against `after` as pretty JSON, line by line: the longest common subsequence
/// kept (` `), the rest removed (`-`) or added (`+`).
pub(crate) fn diff(before: &Value, after: &Value) -> Vec<String> {
    let lines = |v: &Value| -> Vec<String> {
        if v.is_null() {
            Vec::new()
        } else {
            serde_json::to_string_pretty(v)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    };
    let (a, b) = (lines(before), lines(after));
    // The common head and tail are kept as they are; only the middle is compared.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<String> = a[..head].iter().map(|l| format!("  {l}")).collect();
    if mid_a.len().saturating_mul(mid_b.len()) > MAX_DIFF_CELLS {
        // Too large to compare line by line (only a tenant's oversized object gets here):
        // everything in between removed, then added.
        out.extend(mid_a.iter().map(|l| format!("- {l}")));
        out.extend(mid_b.iter().map(|l| format!("+ {l}")));
    } else {
        lcs_diff(mid_a, mid_b, &mut out);
    }
    out.extend(a[a.len() - tail..].iter().map(|l| format!("  {l}")));
    out
}

/// The most cells of the LCS table [`diff`] builds (4 MiB of `u32`): IAM documents are a
/// few KB, far below it.
const MAX_DIFF_CELLS: usize = 1 << 20;

fn lcs_diff(a: &[String], b: &[String], out: &mut Vec<String>) {
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as `diff -u` shows a replaced line.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Made.
    Applied,
    /// The caller said no on the terminal.
    Declined,
    /// `--yes` alone does not change a role irsa did not create for this service account.
    NeedsConfirmation,
    /// Not asked: no terminal and no `--yes`.
    NotAsked,
    /// The API refused or failed; `message` says why.
    Failed,
}

/// A change and what became of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    /// The check that asked for it.
    pub check: &'static str,
    #[serde(flatten)]
    pub change: Change,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line under a change's diff: what became of it.
pub(crate) fn outcome_line(o: &Outcome) -> String {
    let message = o
        .message
        .as_deref()
        .map(|m| format!(": {}", printable(m)))
        .unwrap_or_default();
    match o.status {
        Status::Applied => "    ✓ applied\n".to_owned(),
        Status::Declined => "    – declined, not changed\n".to_owned(),
        Status::NeedsConfirmation => format!("    ✗ not changed{message}\n"),
        Status::NotAsked => "    – not changed (no terminal to ask on, no --yes)\n".to_owned(),
        Status::Failed => format!("    ✗ failed{message}\n"),
    }
}

/// How the caller agrees.
pub(crate) enum Asking<'a> {
    /// `--yes` (with the role names of `--confirm-role`).
    Yes { confirmed_roles: &'a [String] },
    /// A terminal: stdin answers, stderr asks.
    Terminal,
}

/// The diff of a change, for people.
pub(crate) fn render(check: &str, change: &Change, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "  {check}: {}", printable(&change.summary));
    let _ = writeln!(
        out,
        "    {} ({})",
        printable(&change.target),
        change.permission
    );
    if change.before.is_null() {
        let _ = writeln!(out, "    --- (does not exist)");
    } else {
        let _ = writeln!(out, "    --- now");
    }
    let _ = writeln!(out, "    +++ after the fix");
    for line in &change.diff {
        let _ = writeln!(out, "    {}", printable(line));
    }
    if let Some(c) = &change.confirm {
        let _ = writeln!(
            out,
            "    needs the role's name confirmed: {}",
            printable(&c.reason)
        );
    }
}

/// Asks for (or takes) consent, then makes the change.
pub(crate) async fn decide_and_apply(
    check: &'static str,
    change: Change,
    asking: &Asking<'_>,
) -> Outcome {
    let agreed = match (asking, &change.confirm) {
        (Asking::Yes { .. }, None) => Ok(()),
        (Asking::Yes { confirmed_roles }, Some(c)) => {
            if confirmed_roles.contains(&c.role_name) {
                Ok(())
            } else {
                Err((
                    Status::NeedsConfirmation,
                    format!(
                        "{}; --yes alone does not change it: pass --confirm-role {} as well, or run doctor --fix on a terminal and type the role's name",
                        c.reason, c.role_name
                    ),
                ))
            }
        }
        (Asking::Terminal, confirm) => ask(&change, confirm.as_ref()),
    };
    let (status, message) = match agreed {
        Err((status, message)) => (status, Some(message)),
        Ok(()) => match apply(&change).await {
            Ok(()) => (Status::Applied, None),
            Err(e) => (Status::Failed, Some(e)),
        },
    };
    Outcome {
        check,
        change,
        status,
        message,
    }
}

fn ask(change: &Change, confirm: Option<&Confirm>) -> Result<(), (Status, String)> {
    let prompt = match confirm {
        None => "apply this change? [y/N] ".to_owned(),
        Some(c) => format!(
            "{}.\ntype the role's name ({}) to change it anyway, anything else skips: ",
            printable(&c.reason),
            c.role_name
        ),
    };
    // The report (with the diff) goes to stdout; when that is not the terminal being asked
    // (`--fix > report.txt`), the change is shown beside the question, never asked blind.
    if !std::io::stdout().is_terminal() {
        let mut shown = format!(
            "{} ({})\n",
            printable(&change.summary),
            printable(&change.target)
        );
        for line in &change.diff {
            shown.push_str("  ");
            shown.push_str(&printable(line));
            shown.push('\n');
        }
        eprint!("{shown}");
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Err((Status::Declined, "no answer could be read".to_owned()));
    }
    let answer = answer.trim();
    let yes = match confirm {
        None => matches!(answer, "y" | "Y" | "yes" | "YES" | "Yes"),
        Some(c) => answer == c.role_name,
    };
    if yes {
        Ok(())
    } else {
        Err((Status::Declined, format!("declined: {}", change.summary)))
    }
}

/// Whether a refused patch means the object changed since it was read: a 409, or the 422
/// kube-apiserver answers when the patch's `test` of the resourceVersion fails. Other 422s
/// (an invalid annotation, an admission webhook's refusal) are reported as they are.
fn is_conflict(code: u16, message: &str) -> bool {
    code == 409 || (code == 422 && message.contains("test failed"))
}

async fn iam_for(partition: &str) -> Result<IamClient, String> {
    let partition = Partition::from_id(partition)
        .ok_or_else(|| format!("partition {partition} has no IAM endpoint irsa knows"))?;
    IamClient::from_env(&Env::Process, partition)
        .await
        .map_err(|e| e.to_string())
}

fn role_of(arn: &str) -> Result<RoleArn, String> {
    arn.parse::<RoleArn>().map_err(|e| e.to_string())
}

/// Makes one change with the caller's rights. IAM has no conditional writes: a role's trust
/// policy or inline policy is read again first, and nothing is written when it is no longer
/// the one shown as "now".
async fn apply(change: &Change) -> Result<(), String> {
    match &change.action {
        Action::Annotate {
            namespace,
            name,
            key,
            value,
            resource_version,
            has_annotations,
        } => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("cannot reach the cluster: {e}"))?;
            let api: Api<ServiceAccount> = Api::namespaced(client, namespace);
            let mut ops = Vec::new();
            if let Some(rv) = resource_version {
                ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
            }
            if *has_annotations {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{escaped}"), "value": value}));
            } else {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {key.as_str(): value}}));
            }
            let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                .map_err(|e| format!("internal: the patch does not parse: {e}"))?;
            api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
                .map(|_| ())
                .map_err(|e| match &e {
                    kube::Error::Api(s) if is_conflict(s.code, &s.message) => format!(
                        "service account {namespace}/{name} changed since doctor read it: nothing written; run doctor again"
                    ),
                    _ => format!(
                        "could not annotate service account {namespace}/{name}: {}",
                        super::cluster::kube_error(&e)
                    ),
                })
        }
        Action::CreateOidcProvider {
            url,
            client_ids,
            partition,
            account,
        } => {
            let iam = iam_for(partition).await?;
            // IAM creates a provider in the account the credentials act in, which may not be
            // the role's (doctor read the role's account with cross-account rights).
            let caller = iam.caller_account().await.map_err(|e| e.to_string())?;
            if caller != *account {
                return Err(format!(
                    "your credentials act in account {caller}, the role is in account {account}: the provider would be created in the wrong account; nothing written (run with credentials of account {account})"
                ));
            }
            let arn = iam
                .create_open_id_connect_provider(url, client_ids, &[])
                .await
                .map_err(|e| e.to_string())?;
            match arn.split(':').nth(4) {
                Some(a) if a == account => Ok(()),
                other => Err(format!(
                    "IAM created {arn}, in account {}, not in the role's account {account}",
                    other.unwrap_or("?")
                )),
            }
        }
        Action::AddClientId {
            provider_arn,
            client_id,
        } => {
            let partition = provider_arn.split(':').nth(1).unwrap_or("aws").to_owned();
            let iam = iam_for(&partition).await?;
            iam.add_client_id_to_open_id_connect_provider(provider_arn, client_id)
                .await
                .map_err(|e| e.to_string())
        }
        Action::PutTrustPolicy { role_arn } => {
            let role = role_of(role_arn)?;
            let iam = iam_for(&role.partition).await?;
            let now = iam
                .get_role(&role.name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("role {} no longer exists", role.name))?;
            let unchanged = now
                .trust_policy
                .as_deref()
                .is_some_and(|t| same_document(t, &change.before));
            if !unchanged {
                return Err(format!(
                    "the trust policy of role {} changed since doctor read it: nothing written; run doctor again",
                    role.name
                ));
            }
            iam.update_assume_role_policy(&role.name, &change.after)
                .await
                .map_err(|e| e.to_string())
        }
        Action::PutRolePolicy {
            role_arn,
            policy_name,
        } => {
            let role = role_of(role_arn)?;
            let iam = iam_for(&role.partition).await?;
            let now = iam
                .get_role_policy(&role.name, policy_name)
                .await
                .map_err(|e| e.to_string())?;
            let unchanged = match (&now, &change.before) {
                (None, Value::Null) => true,
                (Some(p), before) => same_document(&p.document, before),
                (None, _) => false,
            };
            if !unchanged {
                return Err(format!(
                    "inline policy {policy_name} of role {} changed since doctor read it: nothing written; run doctor again",
                    role.name
                ));
            }
            iam.put_role_policy(&role.name, policy_name, &change.after)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_document_is_diffed_without_a_huge_table() {
        // 200,000 lines each, one changed in the middle: a full LCS table would be 4·10¹⁰ cells.
        let before: Vec<String> = (0..200_000).map(|i| format!("v{i}")).collect();
        let mut after = before.clone();
        after[100_000] = "changed".to_owned();
        let d = diff(&json!(before), &json!(after));
        assert_eq!(
            d.len(),
            200_003,
            "the brackets and every line, one of them twice"
        );
        assert_eq!(d.iter().filter(|l| l.starts_with("- ")).count(), 1);
        assert!(
            d.contains(&"+   \"changed\",".to_owned()),
            "{:?}",
            &d[99_990..100_010]
        );
        // Nothing in common and both large: removed, then added, in order.
        let other: Vec<String> = (0..3_000).map(|i| format!("w{i}")).collect();
        let d = diff(&json!(before[..3_000]), &json!(other));
        assert_eq!(d.iter().filter(|l| l.starts_with("- ")).count(), 3_000);
        assert_eq!(d.iter().filter(|l| l.starts_with("+ ")).count(), 3_000);
        assert!(
            d[1].starts_with("- ") && d[3_001].starts_with("+ "),
            "{:?}",
            &d[..3]
        );
    }

    #[test]
    fn only_a_resource_version_test_is_a_conflict() {
        assert!(is_conflict(409, "Operation cannot be fulfilled"));
        assert!(is_conflict(
            422,
            "the server rejected our request due to an error in our request (testing value /metadata/resourceVersion failed: test failed)"
        ));
        assert!(!is_conflict(
            422,
            "metadata.annotations: Invalid value: too long"
        ));
        assert!(!is_conflict(403, "forbidden"));
    }

    #[test]
    fn the_diff_keeps_common_lines_and_marks_the_rest() {
        let d = diff(&json!({"a": 1, "b": 2}), &json!({"a": 1, "b": 3}));
        assert_eq!(
            d,
            [
                "  {",
                "    \"a\": 1,",
                "-   \"b\": 2",
                "+   \"b\": 3",
                "  }"
            ]
        );
        let created = diff(&Value::Null, &json!({"a": 1}));
        assert!(created.iter().all(|l| l.starts_with('+')), "{created:?}");
    }

    fn role(tags: &[(&str, &str)]) -> Role {
        Role {
            name: "puller".into(),
            arn: "arn:aws:iam::111122223333:role/puller".into(),
            path: "/".into(),
            role_id: "AROAEXAMPLE".into(),
            trust_policy: None,
            max_session_duration: None,
            permissions_boundary: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_role_is_irsas_only_when_tagged_for_this_service_account() {
        let mine = role(&[
            (MANAGED_BY_TAG, IAM_SETUP_TAG_VALUE),
            (SERVICE_ACCOUNT_TAG, "ci/builder"),
        ]);
        assert_eq!(ownership(&mine, "ci", "builder"), Ok(()));
        let other = ownership(&mine, "ci", "runner").unwrap_err();
        assert!(
            other.contains("for service account ci/builder, not ci/runner"),
            "{other}"
        );
        let foreign = ownership(&role(&[]), "ci", "builder").unwrap_err();
        assert!(
            foreign.contains("was not created by irsa iam setup"),
            "{foreign}"
        );
        // Tags alone do not say for which cluster: the trust policy must be this cluster's
        // provider's alone (review H1: another cluster's role of the same NS/NAME).
        const MINE: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example/id/B";
        let trusting = |policy: Value| {
            let mut r = role(&[]);
            r.trust_policy = Some(policy.to_string());
            trusts_only(&r, MINE)
        };
        let allow = |principal: Value| json!({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRoleWithWebIdentity"});
        let fed = |p: &str| allow(json!({"Federated": p}));
        assert_eq!(trusting(json!({"Statement": [fed(MINE)]})), Ok(()));
        assert_eq!(trusting(json!({"Statement": fed(MINE)})), Ok(()));
        let cases = [
            (
                json!({"Statement": [fed(MINE), fed("arn:aws:iam::111122223333:oidc-provider/oidc.example/id/A")]}),
                "another OIDC provider",
            ),
            (
                json!({"Statement": [fed("arn:aws:iam::111122223333:oidc-provider/oidc.example/id/A")]}),
                "another OIDC provider",
            ),
            (
                json!({"Statement": [fed(MINE), {"Effect": "Deny", "Principal": {"Federated": MINE}, "Action": "sts:AssumeRoleWithWebIdentity"}]}),
                "not an Allow",
            ),
            (
                json!({"Statement": [allow(json!({"AWS": "arn:aws:iam::111122223333:root"}))]}),
                "not an OIDC provider",
            ),
            (
                json!({"Statement": [allow(json!({"Federated": MINE, "AWS": "*"}))]}),
                "not an OIDC provider",
            ),
            (
                json!({"Statement": [allow(json!({"Federated": [MINE, 7]}))]}),
                "another OIDC provider",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}}]}),
                "without a Principal",
            ),
            (json!({"Statement": []}), "no statement"),
            (json!("not a policy"), "no statement"),
        ];
        for (policy, want) in cases {
            let why = trusting(policy.clone()).unwrap_err();
            assert!(
                why.contains(want) && why.contains("must be confirmed"),
                "{policy}: {why}"
            );
        }
        assert!(
            trusts_only(&role(&[]), MINE)
                .unwrap_err()
                .contains("could not be read")
        );
        // A managed-by tag alone proves nothing about which service account it is for.
        let half = ownership(
            &role(&[(MANAGED_BY_TAG, IAM_SETUP_TAG_VALUE)]),
            "ci",
            "builder",
        );
        assert!(half.is_err());
    }
}
