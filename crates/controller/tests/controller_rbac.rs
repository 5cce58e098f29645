//! Least privilege, checked against what the controller really sends: the sandbox has no RBAC,
//! so the controller runs a representative life (leader election, fan-out to selected
//! namespaces with service-account patches, a PullSecret with its own identity, a
//! deselection, deletion through the finalizer, status and Events) while a person drives the
//! cluster with the real kubectl; then the sandbox's request records of the controller (every
//! request not sent by kubectl) are compared with the grants `irsa install` deploys, both ways:
//! every request is granted (in the namespace the grant allows) and every grant was used.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use irsa_k8s::install::{CONTROLLER, LEASE_NAME, Scope, rbac_grants};
use irsa_lab::harness::*;

struct Kubectl {
    kubeconfig: String,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new(irsa_test_peers::kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("stdin written");
        }
        drop(input);
        let out = child.wait_with_output().expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) {
        self.run(
            &["apply", "--server-side", "--validate=false", "-f", "-"],
            Some(yaml),
        );
    }

    /// Waits until `kubectl get ARGS -o jsonpath=PATH` prints `want`.
    fn wait_for(&self, what: &str, args: &[&str], path: &str, want: &str) {
        let start = Instant::now();
        let jsonpath = format!("jsonpath={path}");
        loop {
            let mut all = vec!["get"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["-o", &jsonpath, "--ignore-not-found"]);
            if self.run(&all, None).trim() == want {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_requests_exactly_what_its_rbac_grants() {
    let env = Env::start().await;
    let lab = &env.lab;
    for ns in ["team-1", "team-2"] {
        lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    let tenant_role = lab
        .register_role_named("tenant", "tenant", "builder")
        .unwrap();
    lab.identity("tenant", "builder", &tenant_role)
        .await
        .unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("controller-rbac");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, lab.stack.kubeconfig()).unwrap();
    let kubectl = Kubectl {
        kubeconfig: kubeconfig.display().to_string(),
    };
    // Everything before this is set-up; from here on only the controller and kubectl talk.
    let requests = lab.stack.api.requests().clone();
    requests.clear();

    let options = || ControllerOptions {
        lease: Some(LeaseConfig {
            namespace: IDENTITY_NAMESPACE.into(),
            name: LEASE_NAME.into(),
            identity: "rbac-test".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }),
        ..lab.controller_options()
    };
    // A user's own secret in a selected namespace: reported (an Event), never touched.
    kubectl.run(&["create", "namespace", "team-3"], None);
    kubectl.run(&["label", "namespace", "team-3", "pull=ecr"], None);
    kubectl.run(
        &[
            "create",
            "secret",
            "generic",
            "regcred",
            "-n",
            "team-3",
            "--from-literal=token=mine",
        ],
        None,
    );
    let controller = env.controller_with(options()).await;
    let ecr = lab.ecr_host();
    kubectl.apply(&format!(
        "apiVersion: irsa.dev/v1alpha1\nkind: ClusterPullSecret\nmetadata: {{name: fleet}}\n\
         spec:\n  registries: [{{host: {ecr}}}]\n  identity: {{serviceAccount: {{namespace: {IDENTITY_NAMESPACE}, name: {IDENTITY_SERVICE_ACCOUNT}}}}}\n\
         \x20 secretName: regcred\n  namespaces: {{selector: {{matchLabels: {{pull: ecr}}}}}}\n  serviceAccounts: [default]\n"
    ));
    kubectl.apply(&format!(
        "apiVersion: irsa.dev/v1alpha1\nkind: PullSecret\nmetadata: {{name: own, namespace: tenant}}\n\
         spec:\n  registries: [{{host: {ecr}}}]\n  identity: {{serviceAccount: {{name: builder}}}}\n  secretName: own-pull\n"
    ));
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    kubectl.wait_for(
        "the fan-out",
        &["cps", "fleet"],
        "{.status.targets.ready}/{.status.targets.conflicted}",
        "2/1",
    );
    kubectl.wait_for(
        "the PullSecret",
        &["pullsecret", "own", "-n", "tenant"],
        ready,
        "True",
    );
    kubectl.wait_for(
        "the default service account's entry",
        &["sa", "default", "-n", "team-1"],
        "{.imagePullSecrets[*].name}",
        "regcred",
    );
    // Drift: someone edits irsa's secret twice; each time the controller patches it back (and
    // the second identical SecretsWritten Event is a patch of its series).
    let hash = "{.metadata.annotations.irsa\\.dev/content-hash}";
    let written = kubectl.run(
        &[
            "get",
            "secret",
            "regcred",
            "-n",
            "team-1",
            "-o",
            &format!("jsonpath={hash}"),
        ],
        None,
    );
    assert!(!written.is_empty(), "no content hash on irsa's secret");
    for _ in 0..2 {
        kubectl.run(
            &[
                "annotate",
                "--overwrite",
                "secret",
                "regcred",
                "-n",
                "team-1",
                "irsa.dev/content-hash=edited",
            ],
            None,
        );
        kubectl.wait_for(
            "the drifted secret to be patched back",
            &["secret", "regcred", "-n", "team-1"],
            hash,
            written.trim(),
        );
    }
    // A restart reads the written credential back instead of exchanging again.
    controller.stop().await.unwrap();
    let controller = env.controller_with(options()).await;
    kubectl.wait_for(
        "the PullSecret after the restart",
        &["pullsecret", "own", "-n", "tenant"],
        ready,
        "True",
    );

    // Deselect one namespace: its secret and service-account entry go.
    kubectl.run(&["label", "namespace", "team-2", "pull-"], None);
    kubectl.wait_for(
        "the deselected secret to go",
        &["secret", "regcred", "-n", "team-2"],
        "{.metadata.name}",
        "",
    );
    // Delete through the finalizer.
    kubectl.run(
        &[
            "delete",
            "pullsecret",
            "own",
            "-n",
            "tenant",
            "--wait=false",
        ],
        None,
    );
    kubectl.wait_for(
        "the PullSecret's cleanup",
        &["pullsecret", "own", "-n", "tenant"],
        "{.metadata.name}",
        "",
    );
    controller.stop().await.unwrap();

    let sent: BTreeSet<(String, String, String, Option<String>)> = requests
        .records()
        .into_iter()
        .filter(|r| !r.user_agent.starts_with("kubectl"))
        .map(|r| {
            (
                r.group.clone(),
                r.rbac_resource(),
                r.verb.clone(),
                r.namespace.clone(),
            )
        })
        .collect();
    let docs = irsa_k8s::manifests(&irsa_k8s::InstallOptions::default()).unwrap();
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == CONTROLLER)
    );

    // Every request is granted, in a namespace where the grant applies.
    let granted = |group: &str, resource: &str, verb: &str, ns: Option<&str>| {
        rbac_grants().iter().any(|(scope, g)| {
            g.group == group
                && g.resources.contains(&resource)
                && g.verbs.contains(&verb)
                && match scope {
                    Scope::Own(_) => ns == Some(IDENTITY_NAMESPACE),
                    _ => true,
                }
        })
    };
    let ungranted: Vec<_> = sent
        .iter()
        .filter(|(g, r, v, ns)| !granted(g, r, v, ns.as_deref()))
        .collect();
    assert!(
        ungranted.is_empty(),
        "the controller sent requests its RBAC does not grant: {ungranted:?}"
    );

    // Every grant was used (requests in any namespace count for a served grant).
    let used = |group: &str, resource: &str, verb: &str, own: bool| {
        sent.iter().any(|(g, r, v, ns)| {
            g == group
                && r == resource
                && v == verb
                && (!own || ns.as_deref() == Some(IDENTITY_NAMESPACE))
        })
    };
    let mut unused = Vec::new();
    for (scope, grant) in rbac_grants() {
        for resource in grant.resources {
            for verb in grant.verbs {
                let own = matches!(scope, Scope::Own(_));
                let is_used = used(grant.group, resource, verb, own);
                if !is_used {
                    unused.push(format!("{}/{resource} {verb} ({scope:?})", grant.group));
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "RBAC grants the controller never used: {unused:?}\nrequests: {sent:#?}"
    );
}

/// `--watch-namespace`: every request stays in that namespace and within the Role that
/// `irsa install --watch-namespace` binds; ClusterPullSecrets and other namespaces are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_namespace_mode_stays_inside_its_namespace_and_its_role() {
    let env = Env::start().await;
    let lab = &env.lab;
    let ns = "team-a";
    let role = lab.register_role_named("team-a", ns, "builder").unwrap();
    lab.identity(ns, "builder", &role).await.unwrap();
    let other_role = lab
        .register_role_named("team-b", "team-b", "builder")
        .unwrap();
    lab.identity("team-b", "builder", &other_role)
        .await
        .unwrap();
    lab.namespace("selected", &[("pull", "ecr")]).await.unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("controller-one-namespace");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, lab.stack.kubeconfig()).unwrap();
    let kubectl = Kubectl {
        kubeconfig: kubeconfig.display().to_string(),
    };
    let requests = lab.stack.api.requests().clone();
    requests.clear();
    let controller = env
        .controller_with(ControllerOptions {
            watch_namespace: Some(ns.into()),
            // Installed into the namespace it serves: its credential key lives there too.
            key_namespace: ns.into(),
            lease: Some(LeaseConfig {
                namespace: ns.into(),
                name: LEASE_NAME.into(),
                identity: "one-namespace".into(),
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            }),
            ..lab.controller_options()
        })
        .await;
    let ecr = lab.ecr_host();
    for namespace in [ns, "team-b"] {
        kubectl.apply(&format!(
            "apiVersion: irsa.dev/v1alpha1\nkind: PullSecret\nmetadata: {{name: own, namespace: {namespace}}}\n\
             spec:\n  registries: [{{host: {ecr}}}]\n  identity: {{serviceAccount: {{name: builder}}}}\n  secretName: own-pull\n  serviceAccounts: [builder]\n"
        ));
    }
    kubectl.apply(&format!(
        "apiVersion: irsa.dev/v1alpha1\nkind: ClusterPullSecret\nmetadata: {{name: fleet}}\n\
         spec:\n  registries: [{{host: {ecr}}}]\n  identity: {{serviceAccount: {{namespace: {ns}, name: builder}}}}\n\
         \x20 secretName: regcred\n  namespaces: {{selector: {{matchLabels: {{pull: ecr}}}}}}\n"
    ));
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    kubectl.wait_for(
        "the PullSecret in team-a",
        &["pullsecret", "own", "-n", ns],
        ready,
        "True",
    );
    kubectl.run(
        &["delete", "pullsecret", "own", "-n", ns, "--wait=false"],
        None,
    );
    kubectl.wait_for(
        "its cleanup",
        &["pullsecret", "own", "-n", ns],
        "{.metadata.name}",
        "",
    );
    let metrics = controller.handle.metrics().render(0);
    controller.stop().await.unwrap();
    assert!(
        metrics.contains("irsa_cluster_pull_secrets_disabled 1"),
        "{metrics}"
    );
    // Nothing happened outside team-a.
    for (kind, namespace) in [("pullsecret", "team-b"), ("cps", "")] {
        let mut args = vec!["get", kind];
        args.push(if kind == "cps" { "fleet" } else { "own" });
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        args.extend(["-o", "jsonpath={.status}"]);
        assert_eq!(
            kubectl.run(&args, None).trim(),
            "",
            "{kind} in {namespace:?} was served"
        );
    }
    let role = irsa_k8s::manifests(&irsa_k8s::InstallOptions {
        namespace: ns.into(),
        watch_namespace: Some(ns.into()),
        ..irsa_k8s::InstallOptions::default()
    })
    .unwrap()
    .into_iter()
    .find(|d| d["kind"] == "Role")
    .unwrap();
    let allows = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["apiGroups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == group)
                && r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|v| v == verb)
        })
    };
    let sent: Vec<_> = requests
        .records()
        .into_iter()
        .filter(|r| !r.user_agent.starts_with("kubectl"))
        .collect();
    assert!(
        sent.iter()
            .any(|r| r.resource == "pullsecrets" && r.verb == "watch")
    );
    for r in &sent {
        assert_eq!(
            r.namespace.as_deref(),
            Some(ns),
            "a request outside {ns}: {r:?}"
        );
        assert!(
            allows(&r.group, &r.rbac_resource(), &r.verb),
            "the Role does not allow {r:?}"
        );
    }
}
