//! End to end through the sandbox API server, as on a cluster: the real kubectl creates pods,
//! the API server calls `irsa webhook` (AdmissionReview v1 over HTTPS, verified against the
//! configuration's caBundle for `irsa-webhook.irsa-system.svc`), and the stored pods are read
//! back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use irsa_sandbox::stack::{Stack, StackConfig};
use irsa_webhook::Config;
use irsa_webhook::admission::Timing;
use irsa_webhook::certs::{self, Certificates};
use irsa_webhook::run::{RunOptions, run};
use serde_json::{Value, json};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

struct Env {
    stack: Stack,
    dir: PathBuf,
    kubeconfig: PathBuf,
    client: kube::Client,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kubectl(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(irsa_test_peers::kubectl())
        .args(args)
        .arg("--request-timeout=20s")
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .expect("kubectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(env: &Env, args: &[&str]) -> String {
    let (code, stdout, stderr) = kubectl(env, args);
    assert_eq!(code, 0, "kubectl {args:?}: {stderr}");
    stdout
}

fn create(env: &Env, name: &str, doc: &Value) -> (i32, String, String) {
    let path = env.dir.join(name);
    std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
    kubectl(
        env,
        &["create", "--validate=false", "-f", path.to_str().unwrap()],
    )
}

async fn start(name: &str) -> Env {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let aws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stack = Stack::start(StackConfig::default(), api, aws)
        .await
        .expect("sandbox starts");
    let dir = std::env::temp_dir().join(format!("irsa-webhook-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, stack.kubeconfig()).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&stack.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    Env {
        stack,
        dir,
        kubeconfig,
        client,
    }
}

fn write_certs(dir: &Path, c: &Certificates) {
    for (name, pem) in [("tls.crt", &c.cert_pem), ("tls.key", &c.key_pem)] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// Start the webhook; the sender stops it.
async fn start_webhook(env: &Env, config: Config) -> tokio::sync::oneshot::Sender<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.stack.api.admission().map_service(
        "irsa-system",
        "irsa-webhook",
        listener.local_addr().unwrap(),
    );
    let options = RunOptions {
        config,
        timing: Timing::default(),
        tls_cert: env.dir.join("tls.crt"),
        tls_key: env.dir.join("tls.key"),
        config_map_namespace: None,
        container_credentials_file: None,
        trusted_peers: Vec::new(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = env.client.clone();
    tokio::spawn(async move {
        run(options, client, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("webhook runs");
    });
    stop
}

fn configuration(ca_pem: &str, failure_policy: &str) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "irsa-webhook"},
        "webhooks": [{
            "name": "irsa.pod-identity.irsa.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure_policy,
            "reinvocationPolicy": "IfNeeded",
            "timeoutSeconds": 5,
            "objectSelector": {"matchExpressions": [{"key": "eks.amazonaws.com/skip-pod-identity-webhook", "operator": "DoesNotExist"}]},
            "clientConfig": {
                "service": {"namespace": "irsa-system", "name": "irsa-webhook", "path": "/mutate", "port": 443},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }],
    })
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "labels": labels},
        "spec": {
            "serviceAccountName": "app",
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
        },
    })
}

fn get_pod(env: &Env, name: &str) -> Value {
    serde_json::from_str(&ok(env, &["-n", "team", "get", "pod", name, "-o", "json"])).unwrap()
}

fn env_names(pod: &Value, pointer: &str) -> Vec<String> {
    pod.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_pods_get_credentials_skip_label_is_honoured_and_a_stopped_webhook_admits_unchanged()
 {
    let env = start("kubectl").await;
    let first = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    write_certs(&env.dir, &first);
    let stop = start_webhook(
        &env,
        Config {
            aws_default_region: Some("eu-west-1".into()),
            ..Config::default()
        },
    )
    .await;
    ok(&env, &["create", "namespace", "team"]);
    let (code, _, err) = create(&env, "mwc.json", &configuration(&first.ca_pem, "Ignore"));
    assert_eq!(code, 0, "{err}");

    // The service account and, right after it, its pod: the webhook's watch may not have
    // delivered the account yet; the pod still gets credentials.
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "team", "annotations": {"eks.amazonaws.com/role-arn": ROLE}}});
    assert_eq!(create(&env, "sa.json", &sa).0, 0);
    let (code, _, err) = create(&env, "pod1.json", &pod("first", json!({"app": "x"})));
    assert_eq!(code, 0, "{err}");
    let p = get_pod(&env, "first");
    let want = [
        "A",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ];
    assert_eq!(env_names(&p, "/spec/containers/0/env"), want, "{p}");
    assert_eq!(env_names(&p, "/spec/initContainers/0/env"), &want[1..]);
    assert_eq!(
        p["spec"]["initContainers"][0]["restartPolicy"], "Always",
        "the native sidecar stays one"
    );
    let volumes: Vec<&str> = p["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(volumes.contains(&"aws-iam-token"), "{volumes:?}");
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"] == "aws-iam-token")
            .count(),
        1
    );

    // The skip label keeps the webhook away (objectSelector).
    let (code, _, err) = create(
        &env,
        "pod2.json",
        &pod(
            "skipped",
            json!({"eks.amazonaws.com/skip-pod-identity-webhook": "true"}),
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env_names(&get_pod(&env, "skipped"), "/spec/containers/0/env"),
        ["A"]
    );

    // Certificate rotation: new pair on disk, new caBundle; no restart.
    let second = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    write_certs(&env.dir, &second);
    let path = env.dir.join("mwc2.json");
    let mut mwc = configuration(&second.ca_pem, "Fail");
    std::fs::write(&path, serde_json::to_vec(&mwc).unwrap()).unwrap();
    ok(
        &env,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=false",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    let (code, _, err) = create(&env, "pod3.json", &pod("rotated", json!({})));
    assert_eq!(
        code, 0,
        "the rotated certificate verifies against the new caBundle: {err}"
    );
    assert!(
        env_names(&get_pod(&env, "rotated"), "/spec/containers/0/env")
            .contains(&"AWS_ROLE_ARN".to_owned())
    );

    // A caBundle that does not match: failurePolicy Fail refuses the pod with the reason.
    mwc["webhooks"][0]["clientConfig"]["caBundle"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &first.ca_pem
    ));
    std::fs::write(&path, serde_json::to_vec(&mwc).unwrap()).unwrap();
    ok(
        &env,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=false",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    let (code, _, err) = create(&env, "pod4.json", &pod("refused", json!({})));
    assert_ne!(code, 0);
    assert!(err.contains("failed calling webhook"), "{err}");

    // The webhook stopped, failurePolicy Ignore: admitted unchanged.
    let mut mwc = configuration(&second.ca_pem, "Ignore");
    mwc["metadata"]["name"] = json!("irsa-webhook");
    std::fs::write(&path, serde_json::to_vec(&mwc).unwrap()).unwrap();
    ok(
        &env,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=false",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    stop.send(()).unwrap();
    let mut admitted = None;
    for i in 0..50 {
        // The server stops accepting once its shutdown future completes; wait for that.
        let name = format!("unchanged-{i}");
        let (code, _, err) = create(&env, &format!("{name}.json"), &pod(&name, json!({})));
        assert_eq!(code, 0, "{err}");
        let p = get_pod(&env, &name);
        if env_names(&p, "/spec/containers/0/env") == ["A"] {
            admitted = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = admitted.expect("with the webhook stopped, pods are admitted unchanged");
    assert!(
        p["spec"]
            .get("volumes")
            .is_none_or(|v| !v.to_string().contains("aws-iam-token"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_refuses_a_v1_answer_without_the_requests_uid() {
    // A webhook that answers with the wrong uid, as upstream did on self-managed clusters.
    let env = start("uid").await;
    let c = certs::generate(&["bad.irsa-system.svc".to_owned()]).unwrap();
    let tls = {
        let files = env.dir.join("bad");
        std::fs::create_dir_all(&files).unwrap();
        write_certs(&files, &c);
        Arc::new(
            irsa_webhook::server::TlsFiles::new(files.join("tls.crt"), files.join("tls.key"))
                .unwrap(),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.stack
        .api
        .admission()
        .map_service("irsa-system", "bad", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = tls.acceptor().unwrap();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": "not-the-request", "allowed": true}});
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body.to_string())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    ok(&env, &["create", "namespace", "team"]);
    let mut mwc = configuration(&c.ca_pem, "Fail");
    mwc["webhooks"][0]["clientConfig"]["service"]["name"] = json!("bad");
    assert_eq!(create(&env, "mwc.json", &mwc).0, 0);
    let (code, _, err) = create(&env, "pod.json", &pod("p", json!({})));
    assert_ne!(
        code, 0,
        "a wrong uid must not admit the pod under failurePolicy Fail"
    );
    assert!(err.contains("expected response.uid"), "{err}");
}

/// A webhook that adds a container `late` (once), answering with the request's uid.
async fn start_adder(env: &Env, dir: &Path) -> Certificates {
    let c = certs::generate(&["adder.irsa-system.svc".to_owned()]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    write_certs(dir, &c);
    let tls = Arc::new(
        irsa_webhook::server::TlsFiles::new(dir.join("tls.crt"), dir.join("tls.key")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.stack
        .api
        .admission()
        .map_service("irsa-system", "adder", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = tls.acceptor().unwrap();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async {
                        use http_body_util::BodyExt;
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        let request = &review["request"];
                        let has_late = request["object"]["spec"]["containers"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|c| c["name"] == "late");
                        let mut response = json!({"uid": request["uid"], "allowed": true});
                        if !has_late {
                            let patch = json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "late", "image": "x"}}]);
                            response["patchType"] = json!("JSONPatch");
                            response["patch"] = json!(base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                patch.to_string()
                            ));
                        }
                        let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(answer.to_string())),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_added_by_a_later_webhook_gets_credentials_on_reinvocation() {
    let env = start("reinvoke").await;
    let c = certs::generate(&certs::service_names("irsa-webhook", "irsa-system")).unwrap();
    write_certs(&env.dir, &c);
    let _stop = start_webhook(&env, Config::default()).await;
    let adder = start_adder(&env, &env.dir.join("adder")).await;
    ok(&env, &["create", "namespace", "team"]);
    let mut first = configuration(&c.ca_pem, "Fail");
    first["metadata"]["name"] = json!("a-irsa");
    assert_eq!(create(&env, "a.json", &first).0, 0);
    let mut second = configuration(&adder.ca_pem, "Fail");
    second["metadata"]["name"] = json!("b-adder");
    second["webhooks"][0]["name"] = json!("adder.example.com");
    second["webhooks"][0]["reinvocationPolicy"] = json!("Never");
    second["webhooks"][0]["clientConfig"]["service"]["name"] = json!("adder");
    assert_eq!(create(&env, "b.json", &second).0, 0);
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "app", "namespace": "team", "annotations": {"eks.amazonaws.com/role-arn": ROLE}}});
    assert_eq!(create(&env, "sa.json", &sa).0, 0);
    let (code, _, err) = create(&env, "pod.json", &pod("p", json!({})));
    assert_eq!(code, 0, "{err}");
    let p = get_pod(&env, "p");
    assert_eq!(p["spec"]["containers"][1]["name"], "late");
    assert_eq!(
        env_names(&p, "/spec/containers/1/env"),
        ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "{p}"
    );
    let env_a = env_names(&p, "/spec/containers/0/env");
    assert_eq!(
        env_a,
        ["A", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "reinvocation added nothing twice"
    );
    let volumes = p["spec"]["volumes"].as_array().unwrap();
    assert_eq!(
        volumes
            .iter()
            .filter(|v| v["name"] == "aws-iam-token")
            .count(),
        1
    );
}
