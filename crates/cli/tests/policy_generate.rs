//! `irsa policy trust` and `irsa policy ecr-pull`, run as a user would.

mod common;

use common::irsa;
use serde_json::Value;

const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const PROVIDER: &str = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement list")
}

#[test]
fn trust_policy_for_one_service_account() {
    let run = irsa(&[
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--service-account",
        "prod/app",
        "--account",
        "111122223333",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let policy = run.json();
    assert_eq!(policy["Version"], "2012-10-17");
    let text = policy.to_string();
    assert!(
        text.contains(&format!(
            "arn:aws:iam::111122223333:oidc-provider/{PROVIDER}"
        )),
        "{text}"
    );
    assert!(text.contains("sts:AssumeRoleWithWebIdentity"), "{text}");
    assert!(text.contains(&format!("{PROVIDER}:sub")), "{text}");
    assert!(text.contains("system:serviceaccount:prod:app"), "{text}");
    assert!(text.contains(&format!("{PROVIDER}:aud")), "{text}");
    assert!(text.contains("sts.amazonaws.com"), "{text}");
    assert_eq!(statements(&policy).len(), 1);
}

#[test]
fn trust_policy_partition_follows_an_eks_issuer_region() {
    let run = irsa(&[
        "policy",
        "trust",
        "--issuer",
        "https://oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC",
        "--service-account",
        "prod/app",
        "--account",
        "111122223333",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "arn:aws-cn:iam::111122223333:oidc-provider/oidc.eks.cn-north-1.amazonaws.com.cn/id/ABC"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn trust_policy_wildcard_name_uses_string_like() {
    let run = irsa(&[
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--service-account",
        "ci/runner-*",
        "--account",
        "111122223333",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.json().to_string();
    assert!(text.contains("StringLike"), "{text}");
    assert!(text.contains("system:serviceaccount:ci:runner-*"), "{text}");
}

#[test]
fn trust_policy_without_account_says_what_to_replace() {
    let run = irsa(&[
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--service-account",
        "prod/app",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("arn:aws:iam::ACCOUNT_ID:oidc-provider/"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("--account"), "{}", run.stderr);
}

#[test]
fn trust_policy_bad_inputs_name_the_flag() {
    for (args, want) in [
        (
            vec!["--issuer", ISSUER, "--service-account", "app"],
            "NAMESPACE/NAME",
        ),
        (
            vec!["--issuer", ISSUER, "--service-account", "Prod/app"],
            "lowercase",
        ),
        (
            vec!["--issuer", ISSUER, "--service-account", "*/app"],
            "namespace",
        ),
        (
            vec![
                "--issuer",
                ISSUER,
                "--service-account",
                "prod/app",
                "--account",
                "1234",
            ],
            "12-digit",
        ),
        (
            vec![
                "--issuer",
                "http://insecure.example.com",
                "--service-account",
                "prod/app",
            ],
            "https",
        ),
        (
            vec![
                "--issuer",
                ISSUER,
                "--service-account",
                "prod/app",
                "--partition",
                "aws-moon",
            ],
            "partition",
        ),
    ] {
        let mut full = vec!["policy", "trust"];
        full.extend(args.iter().copied());
        let run = irsa(&full);
        assert_eq!(run.code, 2, "{full:?}: {}", run.stdout);
        assert!(
            run.stderr.contains(want),
            "{full:?}: {want:?} not in {}",
            run.stderr
        );
    }
}

#[test]
fn ecr_pull_policy_from_arns_and_images() {
    let run = irsa(&[
        "policy",
        "ecr-pull",
        "--repository",
        "arn:aws:ecr:us-east-1:111122223333:repository/team/app",
        "--repository",
        "444455556666.dkr.ecr.eu-west-1.amazonaws.com/base/*",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.stdout;
    for want in [
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "arn:aws:ecr:us-east-1:111122223333:repository/team/app",
        "arn:aws:ecr:eu-west-1:444455556666:repository/base/*",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
}

#[test]
fn ecr_pull_refuses_what_is_not_an_ecr_repository() {
    for (input, want) in [
        ("public.ecr.aws/nginx/nginx", "not an ECR repository"),
        ("arn:aws:s3:::bucket", "ecr"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "repository"),
    ] {
        let run = irsa(&["policy", "ecr-pull", "--repository", input]);
        assert_eq!(run.code, 2, "{input}: {}", run.stdout);
        assert!(
            run.stderr.contains(want),
            "{input}: {want:?} not in {}",
            run.stderr
        );
    }
}

/// The trust policy for the service account `sub`, exactly as `irsa policy trust` prints it.
fn trust_policy_json(sub: &str) -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {
                "Federated": format!("arn:aws:iam::111122223333:oidc-provider/{PROVIDER}")
            },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{PROVIDER}:aud"): "sts.amazonaws.com",
                    format!("{PROVIDER}:sub"): sub,
                }
            },
        }],
    })
}

#[test]
fn trust_policy_for_an_argocd_project() {
    for (flags, sub) in [
        (
            vec!["--argocd-project", "production"],
            "system:serviceaccount:argocd:argocd-project-production",
        ),
        (
            vec![
                "--argocd-project",
                "production",
                "--argocd-namespace",
                "gitops",
            ],
            "system:serviceaccount:gitops:argocd-project-production",
        ),
        (
            vec![
                "--argocd-namespace",
                "gitops",
                "--argocd-project",
                "team.a-1",
            ],
            "system:serviceaccount:gitops:argocd-project-team.a-1",
        ),
        // the same policy as naming the project's service account
        (
            vec!["--service-account", "argocd/argocd-project-production"],
            "system:serviceaccount:argocd:argocd-project-production",
        ),
    ] {
        for output in ["text", "json"] {
            let mut args = vec![
                "policy",
                "trust",
                "--issuer",
                ISSUER,
                "--account",
                "111122223333",
                "-o",
                output,
            ];
            args.extend(flags.iter().copied());
            let run = irsa(&args);
            assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
            assert_eq!(run.json(), trust_policy_json(sub), "{args:?}");
        }
    }
}

#[test]
fn argocd_project_conflicts_and_bad_names_exit_2_naming_the_flag() {
    let long = "a".repeat(239);
    let longest = "a".repeat(238);
    for (flags, want) in [
        (
            vec!["--argocd-project", "p", "--service-account", "prod/app"],
            "'--argocd-project <PROJECT>' cannot be used with '--service-account <NAMESPACE/NAME>'",
        ),
        (
            vec![
                "--service-account",
                "prod/app",
                "--argocd-namespace",
                "gitops",
            ],
            "'--service-account <NAMESPACE/NAME>' cannot be used with '--argocd-namespace <NAMESPACE>'",
        ),
        (
            vec!["--argocd-namespace", "gitops"],
            "--argocd-project <PROJECT>",
        ),
        (
            vec![],
            "<--service-account <NAMESPACE/NAME>|--argocd-project <PROJECT>>",
        ),
        (
            vec!["--argocd-project", "Production"],
            "--argocd-project \"Production\" is not an Argo CD project name: it contains 'P'",
        ),
        (
            vec!["--argocd-project", ""],
            "--argocd-project \"\" is not an Argo CD project name: it is empty",
        ),
        (
            vec!["--argocd-project", "prod-"],
            "--argocd-project \"prod-\" is not an Argo CD project name: it starts or ends with '-'",
        ),
        (
            vec!["--argocd-project", "team..a"],
            "it has an empty part between dots",
        ),
        (
            vec!["--argocd-project", "prod/*"],
            "--argocd-project \"prod/*\" is not an Argo CD project name: it contains '/'",
        ),
        (
            vec!["--argocd-project", &long],
            "is 239 characters, more than 238",
        ),
        (
            vec!["--argocd-project", "p", "--argocd-namespace", "git.ops"],
            "--argocd-namespace \"git.ops\" is not a namespace name: it contains '.'",
        ),
        (
            vec![
                "--argocd-project",
                "p",
                "--argocd-namespace",
                &"n".repeat(64),
            ],
            "is 64 characters, more than 63",
        ),
    ] {
        let mut args = vec!["policy", "trust", "--issuer", ISSUER];
        args.extend(flags.iter().copied());
        let run = irsa(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains(want),
            "{args:?}: {want:?} not in {}",
            run.stderr
        );
    }
    // the longest project whose service account is still a Kubernetes name
    let run = irsa(&[
        "policy",
        "trust",
        "--issuer",
        ISSUER,
        "--account",
        "111122223333",
        "--argocd-project",
        &longest,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json(),
        trust_policy_json(&format!(
            "system:serviceaccount:argocd:argocd-project-{longest}"
        ))
    );
}

#[test]
fn ecr_pull_policy_with_and_without_list_tags() {
    let repos = serde_json::json!([
        "arn:aws:ecr:us-east-1:111122223333:repository/charts/*",
        "arn:aws:ecr:eu-west-1:444455556666:repository/team/app",
    ]);
    let token = serde_json::json!({
        "Sid": "GetAuthorizationToken",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    });
    let pull = serde_json::json!({
        "Sid": "PullImages",
        "Effect": "Allow",
        "Action": [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
        "Resource": repos,
    });
    let list = serde_json::json!({
        "Sid": "ListImageTags",
        "Effect": "Allow",
        "Action": "ecr:ListImages",
        "Resource": repos,
    });
    for (extra, statements) in [
        (vec![], serde_json::json!([token, pull])),
        (vec!["--list-tags"], serde_json::json!([token, pull, list])),
    ] {
        let mut args = vec![
            "policy",
            "ecr-pull",
            "--repository",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/charts/*",
            "--repository",
            "arn:aws:ecr:eu-west-1:444455556666:repository/team/app",
        ];
        args.extend(extra.iter().copied());
        let run = irsa(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.json(),
            serde_json::json!({ "Version": "2012-10-17", "Statement": statements }),
            "{args:?}"
        );
    }
}
