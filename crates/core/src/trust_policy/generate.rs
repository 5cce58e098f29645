//! Policies irsa writes for users: role trust policies and ECR pull permissions.

use serde_json::{Value, json};

use super::eval::ASSUME_ROLE_WITH_WEB_IDENTITY;

/// The trust policy that lets exactly one Kubernetes service account assume a role through the
/// cluster's OIDC provider, ready for `aws iam create-role --assume-role-policy-document`.
///
/// `:aud` is always matched with `StringEquals`. `:sub`
/// (`system:serviceaccount:<namespace>:<service_account>`) uses `StringEquals`, or `StringLike`
/// when the namespace or name holds `*` or `?`.
pub fn service_account_trust_policy(
    provider_arn: &str,
    provider: &str,
    namespace: &str,
    service_account: &str,
    audience: &str,
) -> Value {
    let provider = provider.strip_prefix("https://").unwrap_or(provider);
    let sub = format!("system:serviceaccount:{namespace}:{service_account}");
    let aud_key = format!("{provider}:aud");
    let sub_key = format!("{provider}:sub");
    let condition = if sub.contains(['*', '?']) {
        json!({
            "StringEquals": { aud_key: audience },
            "StringLike": { sub_key: sub },
        })
    } else {
        json!({ "StringEquals": { aud_key: audience, sub_key: sub } })
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": ASSUME_ROLE_WITH_WEB_IDENTITY,
            "Condition": condition,
        }],
    })
}

/// The actions `irsa policy ecr-pull` grants on the repositories (statement `PullImages`).
pub const ECR_PULL_ACTIONS: [&str; 3] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// The repository actions a pull cannot do without (ECR User Guide, "Private repository
/// policies" / "Pulling an image": the manifest by `ecr:BatchGetImage`, the layers by
/// `ecr:GetDownloadUrlForLayer`); `ecr:BatchCheckLayerAvailability`, which
/// [`ECR_PULL_ACTIONS`] grants too, is a push's check.
pub const ECR_PULL_REQUIRED_ACTIONS: [&str; 2] =
    ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"];

/// The identity policy for pulling images from ECR: `ecr:GetAuthorizationToken` on `*` (it
/// takes no resource) and `BatchGetImage`, `GetDownloadUrlForLayer`,
/// `BatchCheckLayerAvailability` on the given repositories. With `list_tags`, a third statement
/// allows `ecr:ListImages` on the same repositories, which listing tags through the registry API
/// needs. With no repositories only the token statement is written (an empty Resource list is
/// invalid IAM).
pub fn ecr_pull_policy(repository_arns: &[String], list_tags: bool) -> Value {
    let mut statements = vec![json!({
        "Sid": "GetAuthorizationToken",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    })];
    if !repository_arns.is_empty() {
        statements.push(json!({
            "Sid": "PullImages",
            "Effect": "Allow",
            "Action": ECR_PULL_ACTIONS,
            "Resource": repository_arns,
        }));
        if list_tags {
            // `GET /v2/<name>/tags/list` (Docker Registry HTTP API v2, what Argo CD Image Updater
            // calls, and Argo CD's repo-server to resolve an OCI Helm chart's version range) is authorized by ECR as `ecr:ListImages` on the
            // repository: without it ECR answers 403 (containers/skopeo issue #726 and PR #738,
            // where the reporter confirmed tag listing fails without ListImages and everything
            // else works). The Service Authorization Reference for ECR gives ListImages the
            // resource type `repository`, so it is scoped like the pull actions. Reading a tag's
            // manifest and config blob (Image Updater's `newest-build` strategy) uses
            // BatchGetImage and GetDownloadUrlForLayer, already above; `ecr:DescribeImages` is
            // only for clients of the ECR API (not the registry API), so it is not added.
            statements.push(json!({
                "Sid": "ListImageTags",
                "Effect": "Allow",
                "Action": "ecr:ListImages",
                "Resource": repository_arns,
            }));
        }
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The prefix of the service account Argo CD's workload-identity support uses for a project:
/// `argocd-project-<project>` in the Argo CD namespace.
pub const ARGOCD_PROJECT_SERVICE_ACCOUNT_PREFIX: &str = "argocd-project-";

/// The name of the service account Argo CD's workload identity uses for `project`
/// (`argocd-project-<project>`); the caller validates the project name.
pub fn argocd_project_service_account(project: &str) -> String {
    format!("{ARGOCD_PROJECT_SERVICE_ACCOUNT_PREFIX}{project}")
}
