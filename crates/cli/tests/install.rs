//! `irsa install`, run as a user would: the manifests on stdout, the flags that shape them, and
//! precise refusals (exit 2) for bad input.

mod common;

use std::path::Path;

use common::irsa;

/// The documents of a multi-document YAML stream as (kind, name, namespace) plus the text.
fn documents(yaml: &str) -> Vec<(String, String, String, String)> {
    yaml.split("\n---\n")
        .skip(1)
        .map(|doc| {
            let field = |prefix: &str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                field("kind: "),
                field("  name: "),
                field("  namespace: "),
                doc.to_owned(),
            )
        })
        .collect()
}

fn kinds(yaml: &str) -> Vec<String> {
    documents(yaml).into_iter().map(|d| d.0).collect()
}

#[test]
fn defaults_print_the_committed_install() {
    let run = irsa(&["install"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/install.yaml"),
    )
    .unwrap();
    assert_eq!(
        run.stdout, committed,
        "irsa install differs from deploy/install.yaml"
    );
    assert_eq!(
        kinds(&run.stdout),
        [
            "Namespace",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
        ]
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        run.stdout
            .contains(&format!("image: ghcr.io/irsa-dev/irsa:{version}\n")),
        "{}",
        run.stdout
    );
    for (kind, name, namespace, _) in documents(&run.stdout) {
        if [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget",
        ]
        .contains(&kind.as_str())
        {
            assert_eq!(namespace, "irsa-system", "{kind}/{name}");
        }
    }
}

#[test]
fn flags_set_namespace_image_replicas_and_role() {
    let run = irsa(&[
        "install",
        "--namespace",
        "platform",
        "--image",
        "registry.example.com/irsa:dev",
        "--replicas",
        "1",
        "--role-arn",
        "arn:aws:iam::123456789012:role/irsa",
        "--no-crds",
        "--log-format",
        "plain",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs = documents(&run.stdout);
    assert_eq!(
        kinds(&run.stdout),
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
        ],
        "one replica needs no PodDisruptionBudget; --no-crds drops the CRDs"
    );
    assert_eq!(docs[0].1, "platform");
    let sa = &docs[1].3;
    assert!(
        sa.contains("eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/irsa"),
        "{sa}"
    );
    let deployment = &docs[6].3;
    assert!(deployment.contains("replicas: 1\n"), "{deployment}");
    assert!(
        deployment.contains("image: registry.example.com/irsa:dev\n"),
        "{deployment}"
    );
    assert!(deployment.contains("value: plain\n"), "{deployment}");
    assert!(
        docs[5].3.contains("namespace: platform"),
        "the binding's subject: {}",
        docs[5].3
    );
}

#[test]
fn environment_variables_stand_in_for_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_irsa"))
        .args(["install", "--only", "rbac,controller"])
        .env("IRSA_NAMESPACE", "from-env")
        .env("IRSA_REPLICAS", "3")
        .env("IRSA_IMAGE", "registry.example.com/irsa:env")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(kinds(&stdout)[0], "ServiceAccount");
    assert!(kinds(&stdout).contains(&"PodDisruptionBudget".to_owned()));
    assert!(stdout.contains("namespace: from-env\n"), "{stdout}");
    assert!(stdout.contains("replicas: 3\n"), "{stdout}");
    assert!(
        stdout.contains("image: registry.example.com/irsa:env\n"),
        "{stdout}"
    );
}

#[test]
fn only_selects_parts_in_apply_order() {
    let run = irsa(&["install", "--only", "controller", "--only", "crds"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        kinds(&run.stdout),
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "PodDisruptionBudget"
        ]
    );
}

#[test]
fn bad_input_is_refused_with_exit_code_2_and_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--namespace", "Irsa_System"],
            "error: invalid namespace: \"Irsa_System\" is not a valid name",
        ),
        (
            &[
                "--role-arn",
                "arn:aws:sts::123456789012:assumed-role/irsa/session",
            ],
            "error: invalid role ARN \"arn:aws:sts::123456789012:assumed-role/irsa/session\": the service must be \"iam\", not \"sts\"",
        ),
        (&["--role-arn", "irsa"], "error: invalid role ARN \"irsa\""),
        (
            &["--replicas", "0"],
            "error: invalid replicas 0: run 1 to 10",
        ),
        (
            &["--replicas", "11"],
            "error: invalid replicas 11: run 1 to 10",
        ),
        (&["--image", "ghcr.io"], "registry host, not an image"),
        (
            &["--image", "Ghcr.io/Irsa"],
            "error: invalid image \"Ghcr.io/Irsa\"",
        ),
        (
            &["--only", "crds", "--no-crds"],
            "error: nothing to install",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["install"];
        all.extend_from_slice(args);
        let run = irsa(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?} printed manifests");
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    // clap refuses unknown parts and non-numbers itself, also with 2.
    for args in [
        &["install", "--only", "deployments"][..],
        &["install", "--replicas", "two"][..],
    ] {
        let run = irsa(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("invalid value"), "{}", run.stderr);
    }
}

#[test]
fn help_teaches_with_an_example() {
    let run = irsa(&["install", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "irsa install --role-arn arn:aws:iam::123456789012:role/irsa | kubectl apply --server-side -f -"
        ),
        "{}",
        run.stdout
    );
    for flag in [
        "--namespace",
        "--image",
        "--replicas",
        "--role-arn",
        "--no-crds",
        "--only",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn watch_namespace_prints_roles_only_and_the_policy_is_opt_in() {
    let run = irsa(&["install", "--watch-namespace", "team-a", "--no-crds"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        kinds(&run.stdout),
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "PodDisruptionBudget"
        ]
    );
    for (kind, name, namespace, _) in documents(&run.stdout) {
        assert_eq!(namespace, "team-a", "{kind}/{name}");
    }
    assert!(
        run.stdout.contains("- --watch-namespace=team-a\n"),
        "{}",
        run.stdout
    );
    let run = irsa(&["install", "--only", "rbac", "--admission-policy"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kinds = kinds(&run.stdout);
    assert_eq!(
        kinds[kinds.len() - 2..],
        [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    let help = irsa(&["install", "--help"]);
    assert!(
        help.stdout.contains("serviceaccounts/token [create]"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("skopeo copy --all"), "{}", help.stdout);
    assert!(
        help.stdout.contains("GitOps tool's service account"),
        "{}",
        help.stdout
    );
}

#[test]
fn argocd_namespace_adds_a_role_there_and_the_controller_flag() {
    let run = irsa(&["install", "--argocd-namespace", "argocd", "--no-crds"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let in_argocd: Vec<(String, String)> = documents(&run.stdout)
        .into_iter()
        .filter(|(_, _, ns, _)| ns == "argocd")
        .map(|(kind, name, _, _)| (kind, name))
        .collect();
    assert_eq!(
        in_argocd,
        [
            ("Role".to_owned(), "irsa-controller-argocd".to_owned()),
            (
                "RoleBinding".to_owned(),
                "irsa-controller-argocd".to_owned()
            )
        ]
    );
    assert!(
        run.stdout.contains("- --argocd-namespace=argocd\n"),
        "{}",
        run.stdout
    );
    let bad = irsa(&["install", "--argocd-namespace", "Argo_CD"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--argocd-namespace"), "{}", bad.stderr);
    let help = irsa(&["install", "--help"]);
    assert!(
        help.stdout.contains("(the Argo CD namespace)"),
        "{}",
        help.stdout
    );
    let help = irsa(&["controller", "--help"]);
    assert!(
        help.stdout
            .contains("irsa controller --argocd-namespace argocd"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("PR #28217"), "{}", help.stdout);
    for flag in [
        "--argocd-token-url http://127.0.0.1:4566",
        "--argocd-audience",
        "irsa.dev/argocd-projects",
    ] {
        assert!(help.stdout.contains(flag), "{flag}: {}", help.stdout);
    }
    let lone = irsa(&["controller", "--argocd-token-url", "http://127.0.0.1:4566"]);
    assert!(
        lone.stderr.contains("need --argocd-namespace"),
        "{}",
        lone.stderr
    );
}

#[test]
fn webhook_adds_the_pod_identity_webhook_and_is_opt_in() {
    let default = irsa(&["install"]);
    assert!(
        !default.stdout.contains("irsa-webhook"),
        "{}",
        default.stdout
    );
    let run = irsa(&["install", "--webhook"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let options = irsa_k8s::InstallOptions {
        parts: [&irsa_k8s::Part::ALL[..], &[irsa_k8s::Part::Webhook]].concat(),
        ..irsa_k8s::InstallOptions::default()
    };
    assert_eq!(run.stdout, irsa_k8s::manifests_yaml(&options).unwrap());
    let kinds = kinds(&run.stdout);
    // The certificate step comes after the configuration it patches.
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["MutatingWebhookConfiguration", "Job", "CronJob"]
    );
    assert!(!run.stdout.contains("initContainers"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("serviceAccountName: irsa-webhook-certs\n"),
        "{}",
        run.stdout
    );

    let run = irsa(&[
        "install",
        "--webhook",
        "--webhook-cert-manager",
        "--only",
        "webhook",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kinds = self::kinds(&run.stdout);
    assert!(kinds.contains(&"Certificate".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"Issuer".to_owned()), "{kinds:?}");
    assert!(!run.stdout.contains("irsa-webhook-certs"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("cert-manager.io/inject-ca-from: irsa-system/irsa-webhook-tls")
    );

    let run = irsa(&["install", "--webhook-cert-manager"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--webhook"), "{}", run.stderr);
    let run = irsa(&[
        "install",
        "--webhook",
        "--watch-namespace",
        "team-a",
        "--no-crds",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--webhook cannot be combined with --watch-namespace"),
        "{}",
        run.stderr
    );

    let help = irsa(&["install", "--help"]);
    for text in [
        "--webhook",
        "--webhook-cert-manager",
        "irsa install --webhook | kubectl apply --server-side -f -",
        "deploy/components/webhook",
        "The webhook's serving pods (--webhook; ServiceAccount irsa-webhook):\n  serviceaccounts [get list watch] (cluster)",
        "configmaps [list watch] (own namespace, only pod-identity-webhook)",
        "Its certificate step (--webhook, not with --webhook-cert-manager; the Job and CronJob irsa-webhook-certs, ServiceAccount irsa-webhook-certs):\n",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io [get patch] (cluster, only irsa-pod-identity-webhook)",
        "secrets [get update] (own namespace, only irsa-webhook-tls): irsa webhook certs: read its serving certificate, fill the install's empty Secret",
        "Note: the certificate step (a Job of the install and a weekly CronJob, ServiceAccount irsa-webhook-certs) holds the Secret and caBundle grants, each limited to its one object by name",
        "the install applies the Secret irsa-webhook-tls empty (no type, no data",
        "NetworkPolicy",
    ] {
        assert!(
            help.stdout.contains(text),
            "{text} missing from:\n{}",
            help.stdout
        );
    }
    // The certificate step creates no Secret (review finding L3).
    let step = help.stdout.split("Its certificate step").nth(1).unwrap();
    let step = step.split("Note:").next().unwrap();
    assert!(!step.contains("[create]"), "{step}");
}

/// `--webhook-api-server` and `--webhook-allow-from`: the NetworkPolicy admits only those
/// blocks, and only the API server's become the webhook's `--trusted-peer`s; without
/// --webhook, or with a block that is not one, exit 2 naming the flag; `--help` says why.
#[test]
fn webhook_allow_from_narrows_the_network_policy() {
    let run = irsa(&[
        "install",
        "--webhook",
        "--only",
        "webhook",
        "--webhook-api-server",
        "10.0.0.0/24",
        "--webhook-allow-from",
        "fd00:10::/64",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let options = irsa_k8s::InstallOptions {
        parts: vec![irsa_k8s::Part::Webhook],
        webhook_api_server: vec!["10.0.0.0/24".into()],
        webhook_allow_from: vec!["fd00:10::/64".into()],
        ..irsa_k8s::InstallOptions::default()
    };
    assert_eq!(run.stdout, irsa_k8s::manifests_yaml(&options).unwrap());
    assert!(
        run.stdout.contains(
            "  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/24\n    - ipBlock:\n        cidr: fd00:10::/64\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("--trusted-peer=10.0.0.0/24"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("--trusted-peer=fd00"),
        "{}",
        run.stdout
    );
    let open = irsa(&["install", "--webhook", "--only", "webhook"]);
    assert!(!open.stdout.contains("ipBlock"), "{}", open.stdout);

    let run = irsa(&["install", "--webhook-allow-from", "10.0.0.0/24"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--webhook"), "{}", run.stderr);
    let run = irsa(&[
        "install",
        "--webhook",
        "--webhook-allow-from",
        "10.0.0.1/24",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "invalid --webhook-allow-from \"10.0.0.1/24\": host bits set: did you mean 10.0.0.0/24?"
        ),
        "{}",
        run.stderr
    );
    let help = irsa(&["install", "--help"]);
    for text in [
        "--webhook-allow-from <CIDR>",
        "--webhook-api-server <CIDR>",
        "the API server calls the webhook from",
        "forged AdmissionReviews",
        "the policy stays open to every source",
        "never trusted",
    ] {
        assert!(
            help.stdout.contains(text),
            "{text} missing from:\n{}",
            help.stdout
        );
    }
}

/// The names the install writes are the names the webhook reads: they live in two crates
/// that do not depend on each other.
#[test]
fn the_install_uses_the_webhooks_own_names() {
    use irsa_k8s::install::webhook;
    assert_eq!(
        webhook::SKIP_POD_LABEL,
        irsa_webhook::config::SKIP_POD_LABEL
    );
    assert_eq!(
        webhook::WEBHOOK_CONFIG_MAP,
        irsa_webhook::config::CONFIG_MAP_NAME
    );
}
