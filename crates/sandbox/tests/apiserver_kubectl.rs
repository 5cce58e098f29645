//! The real kubectl (client-go) against the sandbox API server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Output, Sandbox, eventually, run, venv_k8s};

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(sb: &Sandbox) -> Self {
        Self {
            bin: venv_k8s().join("bin/kubectl"),
            kubeconfig: sb.kubeconfig.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--request-timeout=20s");
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        run(self.command(args), &self.kubeconfig).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(
            out.code,
            Some(0),
            "kubectl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    async fn apply_file(&self, dir: &Path, name: &str, yaml: &str, extra: &[&str]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        let path = path.to_str().unwrap().to_owned();
        // The sandbox serves no OpenAPI documents: client-side validation is off.
        let mut args = vec![
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            path.as_str(),
        ];
        args.extend_from_slice(extra);
        self.ok(&args).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_crud_patch_apply_and_tokens() {
    let sb = Sandbox::start().await;
    let k = Kubectl::new(&sb);
    assert!(
        k.ok(&["version", "-o", "json"])
            .await
            .contains("v1.37.0-irsa-sandbox")
    );
    assert!(k.ok(&["api-resources"]).await.contains("leases"));

    // Imperative creates: kubectl's typed clients send protobuf bodies.
    k.ok(&["create", "namespace", "demo"]).await;
    k.ok(&[
        "-n",
        "demo",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=AWS",
    ])
    .await;
    k.ok(&["-n", "demo", "create", "serviceaccount", "puller"])
        .await;
    k.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "plain",
        "--from-literal=a=b",
    ])
    .await;
    let err = k
        .run(&[
            "-n",
            "demo",
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=AWS",
        ])
        .await;
    assert_ne!(err.code, Some(0));
    assert!(
        err.stderr.contains("AlreadyExists") || err.stderr.contains("already exists"),
        "{}",
        err.stderr
    );

    k.ok(&[
        "-n",
        "demo",
        "label",
        "secret",
        "creds",
        "app.kubernetes.io/managed-by=irsa",
    ])
    .await;
    k.ok(&["-n", "demo", "annotate", "secret", "creds", "note=hello"])
        .await;
    let got = k
        .ok(&["-n", "demo", "get", "secret", "creds", "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by} {.metadata.annotations.note} {.data.user}"])
        .await;
    assert_eq!(got, "irsa hello QVdT");
    let table = k
        .ok(&[
            "-n",
            "demo",
            "get",
            "secrets",
            "-l",
            "app.kubernetes.io/managed-by=irsa",
        ])
        .await;
    assert!(
        table.contains("NAME") && table.contains("creds") && table.contains("Opaque"),
        "{table}"
    );

    k.apply_file(
        &sb.dir,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  a: \"1\"\n",
        &["--field-manager=irsa"],
    )
    .await;
    let conflict = {
        let path = sb.dir.join("cm2.yaml");
        std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  a: \"2\"\n").unwrap();
        k.run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=other",
            "-f",
            path.to_str().unwrap(),
        ])
        .await
    };
    assert_ne!(conflict.code, Some(0));
    assert!(conflict.stderr.contains("conflict"), "{}", conflict.stderr);
    k.apply_file(
        &sb.dir,
        "cm3.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  a: \"2\"\n",
        &["--field-manager=other", "--force-conflicts"],
    )
    .await;
    assert_eq!(
        k.ok(&[
            "-n",
            "demo",
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.a}"
        ])
        .await,
        "2"
    );

    let token = k
        .ok(&[
            "-n",
            "demo",
            "create",
            "token",
            "puller",
            "--audience=sts.amazonaws.com",
            "--duration=1h",
        ])
        .await;
    assert_eq!(token.trim().split('.').count(), 3, "{token}");

    // Declarative create (dynamic client, JSON bodies).
    let objects = sb.dir.join("objects.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-file\n  namespace: demo\nstringData:\n  user: AWS\n---\napiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: leader\n  namespace: demo\nspec:\n  holderIdentity: a\n",
    )
    .unwrap();
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        objects.to_str().unwrap(),
    ])
    .await;
    assert!(
        k.ok(&["-n", "demo", "get", "lease", "leader"])
            .await
            .contains("leader")
    );

    k.ok(&[
        "delete",
        "namespace",
        "demo",
        "--wait=true",
        "--timeout=20s",
    ])
    .await;
    let gone = k.run(&["get", "namespace", "demo"]).await;
    assert!(
        gone.stderr.contains("NotFound") || gone.stderr.contains("not found"),
        "{}",
        gone.stderr
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_crds_wait_and_watch() {
    let sb = Sandbox::start().await;
    let k = Kubectl::new(&sb);
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
    k.apply_file(&sb.dir, "crd.yaml", crd, &[]).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await;
    k.apply_file(
        &sb.dir,
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec:\n  size: 3\n",
        &[],
    )
    .await;
    let table = k.ok(&["get", "widgets"]).await;
    assert!(
        table.contains("SIZE") && table.contains("w1") && table.contains('3'),
        "{table}"
    );
    assert!(
        k.ok(&["get", "wd", "w1", "-o", "name"])
            .await
            .contains("widget.example.com/w1")
    );

    // `kubectl get -w` sees a change made while it watches.
    let mut watch_cmd = k.command(&["get", "configmaps", "-w", "--output-watch-events"]);
    watch_cmd
        .env("KUBECONFIG", &sb.kubeconfig)
        .env("HOME", &sb.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = watch_cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    eventually(
        "kubectl get -w to start watching",
        Duration::from_secs(20),
        || (sb.api.counters().total("kubernetes", "watch configmaps") > 0).then_some(()),
    )
    .await;
    let cm = sb.dir.join("seen.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seen\ndata:\n  a: b\n",
    )
    .unwrap();
    k.ok(&["create", "--validate=false", "-f", cm.to_str().unwrap()])
        .await;
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.recv().await {
            let hit = line.contains("ADDED") && line.contains("seen");
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        found,
        Ok(true),
        "kubectl get -w printed {seen:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // wait --for=delete with a finalizer released later.
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    k.ok(&["delete", "widget", "w1", "--wait=false"]).await;
    assert!(
        k.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ])
        .await
        .len()
            > 10
    );
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await;
    k.ok(&["wait", "--for=delete", "widget/w1", "--timeout=20s"])
        .await;
    sb.stop().await;
}
