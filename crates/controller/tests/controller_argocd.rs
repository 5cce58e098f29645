//! Argo CD repository secrets end to end against the sandbox (`irsa controller
//! --argocd-namespace argocd`): the guide's secrets for two projects get ECR credentials that
//! the sandbox registry's token service accepts; a role trusting another service account, a
//! service account without its role annotation and a tenant-chosen token URL are reported in
//! `irsa.dev/status` and Events; user-owned keys survive a refresh; a user-set password is a
//! reported conflict and survives; a secret that stops opting in loses irsa's fields only; 100
//! secrets over 3 projects cost 3 exchanges per refresh; a restarted controller re-exchanges.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use irsa_controller::argocd::{Allowed, ArgoCdOptions, STATUS_ANNOTATION};
use irsa_lab::harness::*;
use irsa_sandbox::apiserver::faults::FaultConfig;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "argocd";

fn argocd_options(env: &Env) -> ControllerOptions {
    ControllerOptions {
        argocd: Some(ArgoCdOptions {
            namespace: NS.to_owned(),
            pipeline: env.lab.pipeline_options(),
            // The sandbox's STS is on loopback: only the operator's list lets a secret use it.
            allowed: Allowed {
                token_urls: vec![env.lab.stack.aws_url.clone()],
                audiences: Vec::new(),
            },
        }),
        ..env.lab.controller_options()
    }
}

/// The project's role (trusting `argocd/<trusted>`) and service account `argocd-project-<p>`.
async fn project(env: &Env, project: &str, trusted: &str) -> String {
    let sa = format!("argocd-project-{project}");
    let role = env
        .lab
        .register_role_named(&format!("argocd-{project}"), NS, trusted)
        .unwrap();
    env.lab.identity(NS, &sa, &role).await.unwrap();
    role
}

fn secrets(env: &Env) -> Api<Secret> {
    Api::namespaced(env.lab.client.clone(), NS)
}

/// A repository secret as the guide writes it, created as a user would (`kubectl create`).
async fn repo_secret(env: &Env, name: &str, project: Option<&str>, extra: &[(&str, &str)]) {
    annotated_repo_secret(env, name, project, extra, &[]).await;
}

/// [`repo_secret`] with annotations.
async fn annotated_repo_secret(
    env: &Env,
    name: &str,
    project: Option<&str>,
    extra: &[(&str, &str)],
    annotations: &[(&str, &str)],
) {
    let mut data: BTreeMap<String, ByteString> = [
        ("type", "helm"),
        ("url", &format!("oci://{}/charts", env.lab.ecr_host())),
        ("enableOCI", "true"),
        ("useWorkloadIdentity", "true"),
        ("workloadIdentityProvider", "aws"),
        ("name", name),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    if let Some(p) = project {
        data.insert("project".into(), ByteString(p.as_bytes().to_vec()));
    }
    for (k, v) in extra {
        data.insert((*k).to_owned(), ByteString(v.as_bytes().to_vec()));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NS.to_owned()),
            labels: Some(
                [(
                    "argocd.argoproj.io/secret-type".to_owned(),
                    "repository".to_owned(),
                )]
                .into(),
            ),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    secrets(env)
        .create(
            &PostParams {
                field_manager: Some("kubectl-create".into()),
                ..PostParams::default()
            },
            &secret,
        )
        .await
        .unwrap();
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn field(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8(b.0.clone()).unwrap())
}

fn status(s: &Secret) -> Option<String> {
    s.metadata
        .annotations
        .as_ref()?
        .get(STATUS_ANNOTATION)
        .cloned()
}

async fn get(env: &Env, name: &str) -> Secret {
    secrets(env).get(name).await.unwrap()
}

/// Waits for a status starting with `prefix`.
async fn wait_status(env: &Env, name: &str, prefix: &str) -> (Secret, String) {
    eventually(
        &format!("{name}: a status starting with {prefix:?}"),
        || async {
            let s = secrets(env).get_opt(name).await.ok()??;
            let st = status(&s)?;
            st.starts_with(prefix).then_some((s, st))
        },
    )
    .await
}

/// Waits until the secret holds credentials other than `not`.
async fn wait_filled(env: &Env, name: &str, not: Option<&str>) -> (String, String) {
    eventually(&format!("{name}: credentials"), || async {
        let s = secrets(env).get_opt(name).await.ok()??;
        let (u, p) = (field(&s, "username")?, field(&s, "password")?);
        (Some(p.as_str()) != not && status(&s)?.starts_with("Ready")).then_some((u, p))
    })
    .await
}

/// Asks the sandbox registry's token service for a pull token of `repository` with
/// `username:password` (what a registry client does on the registry's 401 challenge); returns
/// the HTTP status and the body.
async fn registry_token(env: &Env, repository: &str, user: &str, password: &str) -> (u16, Value) {
    let url = env
        .lab
        .stack
        .aws_url
        .trim_start_matches("http://")
        .to_owned();
    let authority = url.split('/').next().unwrap().to_owned();
    let service = &env.lab.stack.cloud.registry_auth_config().service;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "GET /registry/token?service={service}&scope=repository:{repository}:pull HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Chunked or not: the JSON object is the part between the outer braces.
    let json = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

fn sts_exchanges(env: &Env) -> u64 {
    env.lab
        .stack
        .cloud
        .counters()
        .get("sts", "AssumeRoleWithWebIdentity", "ok")
}

/// A lab whose ECR tokens live 1 hour: a refresh is due past half of it (2000 s on), while the
/// API server's TokenRequest tokens (on the wall clock) are still valid at STS (on the sandbox
/// clock).
async fn short_lived() -> Env {
    Env::start_with(LabConfig {
        ecr_token_lifetime_seconds: 3600,
        ..LabConfig::default()
    })
    .await
}

async fn start(env: &Env) -> RunningController {
    env.lab.namespace(NS, &[]).await.unwrap();
    env.controller_with(argocd_options(env)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_get_working_credentials_and_user_keys_survive_a_refresh() {
    let env = short_lived().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    project(&env, "staging", "argocd-project-staging").await;
    let controller = start(&env).await;
    repo_secret(&env, "prod-charts", Some("production"), &[]).await;
    repo_secret(&env, "staging-charts", Some("staging"), &[]).await;
    // A Git repository's secret with an SSH key: not opted in, never touched.
    {
        let git = Secret {
            metadata: ObjectMeta {
                name: Some("git-repo".into()),
                labels: Some(
                    [(
                        "argocd.argoproj.io/secret-type".to_owned(),
                        "repository".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some(
                [
                    ("type", "git"),
                    ("url", "git@github.com:org/repo.git"),
                    ("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
            ),
            ..Secret::default()
        };
        secrets(&env)
            .create(&PostParams::default(), &git)
            .await
            .unwrap();
    }

    let (user_p, pass_p) = wait_filled(&env, "prod-charts", None).await;
    let (user_s, pass_s) = wait_filled(&env, "staging-charts", None).await;
    assert_eq!((user_p.as_str(), user_s.as_str()), ("AWS", "AWS"));
    assert_ne!(pass_p, pass_s, "each project its own role's credential");
    for (who, pass) in [("production", &pass_p), ("staging", &pass_s)] {
        let (code, body) = registry_token(&env, "charts/app", "AWS", pass).await;
        assert_eq!(
            code, 200,
            "{who}: the registry token service accepts it: {body}"
        );
        let claims = body["token"]
            .as_str()
            .and_then(|t| t.split('.').nth(1))
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .expect("a JWT");
        assert_eq!(
            claims["access"],
            json!([{"type": "repository", "name": "charts/app", "actions": ["pull"]}]),
            "{who}: pull access granted"
        );
        assert!(
            claims["sub"]
                .as_str()
                .unwrap()
                .contains(&format!("assumed-role/argocd-{who}/")),
            "{who}: as the project's role: {}",
            claims["sub"]
        );
    }
    let (code, _) = registry_token(&env, "charts/app", "AWS", "forged").await;
    assert_eq!(code, 401, "the token service refuses what it did not issue");

    let prod = get(&env, "prod-charts").await;
    let st = status(&prod).unwrap();
    assert!(
        st.contains("region us-east-1")
            && st.contains("as service account argocd/argocd-project-production"),
        "{st}"
    );
    assert!(!st.contains(&pass_p), "no secret in the status");
    // irsa owns username and password only (and its status annotation under its status manager).
    let managed: Vec<(String, String)> = prod
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                serde_json::to_string(&m.fields_v1).unwrap(),
            )
        })
        .collect();
    let data_fields = &managed
        .iter()
        .find(|(m, _)| m == "irsa-argocd")
        .expect("irsa-argocd")
        .1;
    assert!(
        data_fields.contains("f:username") && data_fields.contains("f:password"),
        "{data_fields}"
    );
    assert!(
        !data_fields.contains("f:url") && !data_fields.contains("annotations"),
        "{data_fields}"
    );
    let git = get(&env, "git-repo").await;
    assert!(
        status(&git).is_none() && field(&git, "password").is_none(),
        "git secret untouched"
    );
    assert_eq!(
        controller.handle.metrics().exchanges(),
        2,
        "one exchange per project"
    );

    // The user edits their own keys; a refresh (past half the 1 h lifetime) keeps them.
    secrets(&env)
        .patch(
            "prod-charts",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"name": base64::engine::general_purpose::STANDARD.encode("renamed")}})),
        )
        .await
        .unwrap();
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    let (_, refreshed) = wait_filled(&env, "prod-charts", Some(&pass_p)).await;
    assert_ne!(refreshed, pass_p);
    let prod = get(&env, "prod-charts").await;
    assert_eq!(field(&prod, "name").as_deref(), Some("renamed"));
    assert_eq!(field(&prod, "project").as_deref(), Some("production"));
    assert_eq!(field(&prod, "enableOCI").as_deref(), Some("true"));
    assert_eq!(
        field(&prod, "url").unwrap(),
        format!("oci://{}/charts", env.lab.ecr_host())
    );

    // Opting out: irsa's fields go, the user's stay.
    secrets(&env)
        .patch(
            "prod-charts",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch::Patch(vec![
                json_patch::PatchOperation::Remove(json_patch::RemoveOperation {
                    path: "/data/useWorkloadIdentity".parse().unwrap(),
                }),
                json_patch::PatchOperation::Remove(json_patch::RemoveOperation {
                    path: "/data/workloadIdentityProvider".parse().unwrap(),
                }),
            ])),
        )
        .await
        .unwrap();
    let prod = eventually("irsa's fields removed", || async {
        let s = get(&env, "prod-charts").await;
        (field(&s, "password").is_none() && field(&s, "username").is_none() && status(&s).is_none())
            .then_some(s)
    })
    .await;
    assert_eq!(field(&prod, "name").as_deref(), Some("renamed"));
    assert_eq!(field(&prod, "type").as_deref(), Some("helm"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_in_the_guides_vocabulary() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    // The intruder project's role trusts production's service account, not its own.
    project(&env, "intruder", "argocd-project-production").await;
    // A service account without its role annotation.
    Api::<ServiceAccount>::namespaced(env.lab.client.clone(), NS)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("argocd-project-bare".into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let _controller = start(&env).await;
    repo_secret(&env, "intruder-charts", Some("intruder"), &[]).await;
    repo_secret(&env, "bare-charts", Some("bare"), &[]).await;
    repo_secret(&env, "ghost-charts", Some("ghost"), &[]).await;
    repo_secret(
        &env,
        "exfil-charts",
        Some("production"),
        &[("workloadIdentityTokenURL", "https://sts.attacker.example")],
    )
    .await;
    repo_secret(
        &env,
        "local-sts",
        Some("production"),
        &[("workloadIdentityTokenURL", env.lab.stack.aws_url.as_str())],
    )
    .await;

    let (s, st) = wait_status(&env, "intruder-charts", "Error").await;
    assert!(st.contains("AccessDenied"), "{st}");
    assert!(
        st.contains("system:serviceaccount:argocd:argocd-project-intruder"),
        "sub named: {st}"
    );
    assert!(st.contains("sts.amazonaws.com"), "aud named: {st}");
    assert!(field(&s, "password").is_none());
    eventually("an AccessDenied Event on the secret", || async {
        env.events_about("intruder-charts")
            .await
            .iter()
            .any(|(reason, note)| reason == "CredentialsFailed" && note.contains("AccessDenied"))
            .then_some(())
    })
    .await;

    let (_, st) = wait_status(&env, "bare-charts", "Error").await;
    assert!(
        st.starts_with(
            "Error: service account argocd/argocd-project-bare has no eks.amazonaws.com/role-arn annotation"
        ),
        "{st}"
    );
    let (_, st) = wait_status(&env, "ghost-charts", "Error").await;
    assert!(
        st.contains("service account argocd/argocd-project-ghost does not exist"),
        "{st}"
    );
    let (s, st) = wait_status(&env, "exfil-charts", "Error").await;
    assert!(
        st.contains("workloadIdentityTokenURL") && st.contains("not an AWS STS endpoint"),
        "{st}"
    );
    assert!(field(&s, "password").is_none());
    // A URL the operator listed (here a loopback STS) is allowed, and named in the status.
    let (_, st) = wait_status(&env, "local-sts", "Ready").await;
    assert!(
        st.contains(&format!(
            "via STS {}",
            env.lab.stack.aws_url.trim_end_matches('/')
        )),
        "{st}"
    );

    // The annotation fixed: served, without a restart.
    let role = env
        .lab
        .register_role_named("argocd-bare", NS, "argocd-project-bare")
        .unwrap();
    env.lab
        .identity(NS, "argocd-project-bare", &role)
        .await
        .unwrap();
    wait_filled(&env, "bare-charts", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_set_password_is_a_reported_conflict_and_survives() {
    let env = short_lived().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let _controller = start(&env).await;
    repo_secret(
        &env,
        "hand-made",
        Some("production"),
        &[("username", "AWS"), ("password", "set-by-hand")],
    )
    .await;
    // Applied server-side by a user (kubectl apply --server-side): the manager is named.
    let applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "applied", "namespace": NS,
                     "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "stringData": {},
        "data": {
            "type": b64("oci"), "url": b64(&format!("oci://{}/charts", env.lab.ecr_host())),
            "workloadIdentityProvider": b64("aws"), "project": b64("production"),
            "username": b64("AWS"), "password": b64("applied-by-hand"),
        },
    });
    secrets(&env)
        .patch(
            "applied",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    let (s, st) = wait_status(&env, "applied", "Conflict").await;
    assert!(
        st.contains("data.password set by \"kubectl\""),
        "the other manager named: {st}"
    );
    assert!(
        !st.contains("applied-by-hand"),
        "no secret in the status: {st}"
    );
    assert_eq!(field(&s, "password").as_deref(), Some("applied-by-hand"));

    let (s, st) = wait_status(&env, "hand-made", "Conflict").await;
    assert!(st.contains("data.password set by"), "{st}");
    assert!(!st.contains("set-by-hand"), "no secret in the status: {st}");
    assert_eq!(field(&s, "password").as_deref(), Some("set-by-hand"));
    eventually("a Conflict Event on the secret", || async {
        env.events_about("hand-made")
            .await
            .iter()
            .any(|(r, _)| r == "Conflict")
            .then_some(())
    })
    .await;
    // Review L2: a conflict costs no exchange.
    assert_eq!(
        sts_exchanges(&env),
        0,
        "no exchange for a conflicting secret"
    );
    // Still untouched after a refresh: wait until both secrets were really read again (not a
    // bare sleep, which could pass before any refresh ran).
    let requests = env.lab.stack.api.requests().clone();
    requests.clear();
    let reads = || {
        requests
            .records()
            .iter()
            .filter(|r| {
                r.verb == "get"
                    && r.resource == "secrets"
                    && r.subresource.is_none()
                    && r.namespace.as_deref() == Some(NS)
            })
            .count()
    };
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    _controller.handle.resync_all();
    eventually("both conflicting secrets read again", || async {
        (reads() >= 2).then_some(())
    })
    .await;
    let before = _controller.handle.metrics().argocd_reconciles();
    _controller.handle.resync_all();
    eventually("a later reconcile", || async {
        (_controller.handle.metrics().argocd_reconciles() > before).then_some(())
    })
    .await;
    assert_eq!(
        field(&get(&env, "hand-made").await, "password").as_deref(),
        Some("set-by-hand")
    );
    assert_eq!(
        field(&get(&env, "applied").await, "password").as_deref(),
        Some("applied-by-hand")
    );
    assert_eq!(sts_exchanges(&env), 0, "no exchange on the refresh either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_secrets_over_three_projects_cost_three_exchanges_per_refresh() {
    let env = short_lived().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    let projects = ["alpha", "beta", "gamma"];
    for p in projects {
        project(&env, p, &format!("argocd-project-{p}")).await;
    }
    let controller = start(&env).await;
    let names: Vec<String> = names("repo", 100);
    for (i, name) in names.iter().enumerate() {
        repo_secret(&env, name, Some(projects[i % 3]), &[]).await;
    }
    let mut first = Vec::new();
    for name in &names {
        first.push(wait_filled(&env, name, None).await.1);
    }
    assert_eq!(sts_exchanges(&env), 3, "one STS exchange per project");
    assert_eq!(env.ecr_tokens(), 3, "one ECR token per project");
    assert_eq!(controller.handle.metrics().exchanges(), 3);
    eprintln!(
        "FIGURE exchanges for 100 secrets / 3 projects, first fill: {}",
        sts_exchanges(&env)
    );

    // A refresh: past half the lifetime, every secret gets its project's new credential.
    env.lab.stack.cloud.advance(Duration::from_secs(2000));
    controller.handle.resync_all();
    for (name, old) in names.iter().zip(&first) {
        wait_filled(&env, name, Some(old)).await;
    }
    assert_eq!(
        controller.handle.metrics().exchanges(),
        6,
        "three more exchanges for the refresh"
    );
    assert_eq!(env.ecr_tokens(), 6, "one ECR token per project and refresh");
    let sts = sts_exchanges(&env);
    assert!(
        sts <= 6,
        "at most one STS exchange per project and refresh: {sts}"
    );
    eprintln!(
        "FIGURE exchanges for 100 secrets / 3 projects, one refresh: {} (ECR {}, STS {})",
        controller.handle.metrics().exchanges() - 3,
        env.ecr_tokens() - 3,
        sts - 3
    );

    // Steady state: a resync costs nothing.
    let writes = env.api_writes();
    controller.handle.resync_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.ecr_tokens(), 6);
    assert_eq!(env.api_writes(), writes, "no write when nothing changed");

    // After a restart the credentials found are not trusted: one re-exchange per project.
    let refreshed: Vec<String> = {
        let mut v = Vec::new();
        for name in &names {
            v.push(field(&get(&env, name).await, "password").unwrap());
        }
        v
    };
    controller.kill().await;
    let again = env.controller_with(argocd_options(&env)).await;
    for (name, old) in names.iter().zip(&refreshed) {
        wait_filled(&env, name, Some(old)).await;
    }
    assert_eq!(
        env.ecr_tokens(),
        9,
        "one re-exchange per project after the restart"
    );
    assert_eq!(again.handle.metrics().exchanges(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figure_new_secret_to_filled_latency() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let _controller = start(&env).await;
    repo_secret(&env, "warm-up", Some("production"), &[]).await;
    wait_filled(&env, "warm-up", None).await;
    let mut times = Vec::new();
    for i in 0..40 {
        let name = format!("new-{i}");
        let started = Instant::now();
        repo_secret(&env, &name, Some("production"), &[]).await;
        loop {
            let s = get(&env, &name).await;
            if field(&s, "password").is_some() {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "{name} filled in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    eprintln!(
        "FIGURE new opted-in secret -> filled (test mode, debug build, in-process sandbox, 40 secrets): p50 {p50:?} p99 {p99:?}"
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?} under 1 s");
}

/// Review H1: a token URL on an AWS domain anyone can host (API Gateway) and an audience of
/// the secret author's choosing are refused before any token is minted: no TokenRequest, no
/// STS call; the status and an Event name the key and the operator's flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_api_token_url_and_a_foreign_audience_get_no_token() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let requests = env.lab.stack.api.requests().clone();
    let _controller = start(&env).await;
    requests.clear();
    repo_secret(
        &env,
        "execute-api",
        Some("production"),
        &[(
            "workloadIdentityTokenURL",
            "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        )],
    )
    .await;
    repo_secret(
        &env,
        "kube-audience",
        Some("production"),
        &[("workloadIdentityAudience", "https://kubernetes.default.svc")],
    )
    .await;
    let (s, st) = wait_status(&env, "execute-api", "Error").await;
    assert!(
        st.contains("workloadIdentityTokenURL") && st.contains("--argocd-token-url"),
        "{st}"
    );
    assert!(field(&s, "password").is_none());
    let (s, st) = wait_status(&env, "kube-audience", "Error").await;
    assert!(
        st.contains("workloadIdentityAudience") && st.contains("--argocd-audience"),
        "{st}"
    );
    assert!(field(&s, "password").is_none());
    eventually("an Event naming the flag", || async {
        env.events_about("execute-api")
            .await
            .iter()
            .any(|(reason, note)| {
                reason == "CredentialsFailed" && note.contains("--argocd-token-url")
            })
            .then_some(())
    })
    .await;
    let tokens = requests
        .records()
        .iter()
        .filter(|r| {
            r.resource == "serviceaccounts"
                && r.subresource.as_deref() == Some("token")
                && r.namespace.as_deref() == Some(NS)
        })
        .count();
    assert_eq!(tokens, 0, "no TokenRequest for a refused secret");
    assert_eq!(sts_exchanges(&env), 0, "no STS call");
}

/// Review M1: a secret of project staging naming production's service account is refused
/// (no token for it) until that service account consents with `irsa.dev/argocd-projects`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_service_account_needs_its_consent() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let requests = env.lab.stack.api.requests().clone();
    let _controller = start(&env).await;
    requests.clear();
    annotated_repo_secret(
        &env,
        "borrowed",
        Some("staging"),
        &[],
        &[("irsa.dev/service-account", "argocd-project-production")],
    )
    .await;
    let (s, st) = wait_status(&env, "borrowed", "Error").await;
    assert!(
        st.contains("does not consent") && st.contains("irsa.dev/argocd-projects=staging"),
        "{st}"
    );
    assert!(field(&s, "password").is_none());
    let tokens = requests
        .records()
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("token") && r.namespace.as_deref() == Some(NS))
        .count();
    assert_eq!(
        tokens, 0,
        "no token for a service account that did not consent"
    );
    // The service account lists staging: served (re-reconciled on the account's change).
    let sas = Api::<ServiceAccount>::namespaced(env.lab.client.clone(), NS);
    let consent = |list: &str| serde_json::json!({"metadata": {"annotations": {"irsa.dev/argocd-projects": list}}});
    sas.patch(
        "argocd-project-production",
        &PatchParams::default(),
        &Patch::Merge(consent("production, staging")),
    )
    .await
    .unwrap();
    wait_filled(&env, "borrowed", None).await;
    let (_, st) = wait_status(&env, "borrowed", "Ready").await;
    assert!(st.contains("argocd/argocd-project-production"), "{st}");
}

/// Review 2 L7: consent withdrawn, the role annotation removed or the service account deleted
/// releases the credential irsa wrote (another project's password does not stay for 12 h),
/// with an Error status and an Event saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_consent_or_identity_releases_the_credential() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let sas = Api::<ServiceAccount>::namespaced(env.lab.client.clone(), NS);
    let consent = |list: &str| serde_json::json!({"metadata": {"annotations": {"irsa.dev/argocd-projects": list}}});
    sas.patch(
        "argocd-project-production",
        &PatchParams::default(),
        &Patch::Merge(consent("production, staging")),
    )
    .await
    .unwrap();
    let _controller = start(&env).await;
    annotated_repo_secret(
        &env,
        "borrowed",
        Some("staging"),
        &[("insecure", "false")],
        &[("irsa.dev/service-account", "argocd-project-production")],
    )
    .await;
    wait_filled(&env, "borrowed", None).await;
    // Production's owner takes staging off the list.
    sas.patch(
        "argocd-project-production",
        &PatchParams::default(),
        &Patch::Merge(consent("production")),
    )
    .await
    .unwrap();
    let released = |what: &'static str| {
        let env = &env;
        async move {
            eventually(what, || async {
                let s = secrets(env).get_opt("borrowed").await.ok()??;
                let st = status(&s)?;
                (field(&s, "password").is_none()
                    && field(&s, "username").is_none()
                    && st.starts_with("Error"))
                .then_some((s, st))
            })
            .await
        }
    };
    let (s, st) = released("borrowed: credential released after consent withdrawn").await;
    assert!(st.contains("does not consent"), "{st}");
    assert!(
        !st.contains("stay until"),
        "no last good credential kept: {st}"
    );
    assert_eq!(
        field(&s, "insecure").as_deref(),
        Some("false"),
        "user keys stay"
    );
    eventually("a CredentialsFailed Event naming the consent", || async {
        env.events_about("borrowed")
            .await
            .into_iter()
            .any(|(reason, note)| {
                reason == "CredentialsFailed" && note.contains("does not consent")
            })
            .then_some(())
    })
    .await;
    // Served again, then the role annotation goes: released again.
    sas.patch(
        "argocd-project-production",
        &PatchParams::default(),
        &Patch::Merge(consent("production, staging")),
    )
    .await
    .unwrap();
    wait_filled(&env, "borrowed", None).await;
    sas.patch(
        "argocd-project-production",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": null}}}),
        ),
    )
    .await
    .unwrap();
    let (_, st) = released("borrowed: credential released after the role annotation went").await;
    assert!(
        st.contains("has no eks.amazonaws.com/role-arn annotation"),
        "{st}"
    );
}

/// Review M3: a Git repository's secret (labelled, not opted in) is read once, not on every
/// resync: the reconciles are counted to know that resyncs really ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_secret_is_read_once_not_on_every_resync() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    let git = Secret {
        metadata: ObjectMeta {
            name: Some("git-https".into()),
            namespace: Some(NS.into()),
            labels: Some(
                [(
                    "argocd.argoproj.io/secret-type".to_owned(),
                    "repository".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        string_data: Some(
            [
                ("type", "git"),
                ("url", "https://github.com/org/repo.git"),
                ("username", "git"),
                ("password", "ghp_not_a_real_token"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ),
        ..Secret::default()
    };
    secrets(&env)
        .create(&PostParams::default(), &git)
        .await
        .unwrap();
    let requests = env.lab.stack.api.requests().clone();
    requests.clear();
    let controller = start(&env).await;
    let gets = || {
        requests
            .records()
            .iter()
            .filter(|r| {
                r.verb == "get"
                    && r.resource == "secrets"
                    && r.subresource.is_none()
                    && r.namespace.as_deref() == Some(NS)
            })
            .count()
    };
    eventually("the first read", || async { (gets() >= 1).then_some(()) }).await;
    for round in 1..=3u64 {
        let before = controller.handle.metrics().argocd_reconciles();
        controller.handle.resync_all();
        eventually(&format!("resync {round} reconciled"), || async {
            (controller.handle.metrics().argocd_reconciles() > before).then_some(())
        })
        .await;
    }
    assert_eq!(gets(), 1, "read once, not on every resync");
    let s = get(&env, "git-https").await;
    assert!(status(&s).is_none(), "untouched");
}

/// Review L1: removing the label (the watch reports a Delete, the secret stays) releases
/// irsa's fields: no credential is left behind in a secret irsa no longer watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_label_releases_irsas_fields() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let _controller = start(&env).await;
    repo_secret(&env, "unlabelled", Some("production"), &[]).await;
    wait_filled(&env, "unlabelled", None).await;
    secrets(&env)
        .patch(
            "unlabelled",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"argocd.argoproj.io/secret-type": null}}}),
            ),
        )
        .await
        .unwrap();
    let s = eventually("irsa's fields released", || async {
        let s = secrets(&env).get_opt("unlabelled").await.ok()??;
        (field(&s, "password").is_none() && status(&s).is_none()).then_some(s)
    })
    .await;
    assert!(field(&s, "username").is_none());
    assert_eq!(
        field(&s, "project").as_deref(),
        Some("production"),
        "the rest kept"
    );
}

/// `/readyz` of the admin server at `addr`: (status code, body).
async fn readyz(addr: std::net::SocketAddr) -> (u16, String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

/// With `--argocd-namespace`, `/readyz` also waits for the Argo CD reconciler's first list: a
/// replica whose repository secrets cannot be listed (here: every `list secrets` fails once the
/// index has listed) is not ready and says what it waits for; it is once they list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_argocd_watch() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    let faults = env.lab.stack.api.faults().clone();
    let failing = failing_list;
    // The index's namespaces cannot list: the Argo CD reconciler (started after the index's
    // first lists) waits, while the index lists its secrets and service accounts.
    faults.add_error(failing("namespaces"));
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let controller = env
        .lab
        .spawn_controller(argocd_options(&env), Some(admin))
        .await
        .unwrap();
    eventually(
        "the index listed its secrets and service accounts",
        || async {
            let (code, body) = readyz(addr).await;
            (code == 503
                && body.contains("waiting for the first list of: namespaces")
                && !body.contains("secrets, serviceaccounts"))
            .then_some(())
        },
    )
    .await;
    // From now on no secrets list answers (the index's watch has listed and keeps watching),
    // and the namespaces list does.
    faults.set(FaultConfig {
        errors: vec![failing("secrets")],
        ..FaultConfig::default()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = readyz(addr).await;
    assert!(
        !controller.handle.is_ready() && code == 503,
        "not ready while the Argo CD secrets never listed: {code} {body}"
    );
    assert!(
        body.contains("argocd repository secrets"),
        "/readyz names what it waits for: {body}"
    );
    faults.clear();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), controller.handle.wait_ready())
            .await
            .expect("ready once the Argo CD secrets list"),
        "ready"
    );
    let (code, body) = readyz(addr).await;
    assert_eq!(code, 200, "{body}");
    controller.stop().await.unwrap();
}

/// A credential store (one per STS region and token URL) that no served secret uses any more is
/// freed (review M2): deleting its secret, moving the secret to another token URL, or opting
/// out frees it, so the cap on stores counts only what is in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_stores_no_secret_uses_are_freed() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    // Two spellings of the sandbox's STS, both listed by the operator: two stores.
    let one = env.lab.stack.aws_url.trim_end_matches('/').to_owned();
    let two = one.replace("127.0.0.1", "localhost");
    assert_ne!(one, two, "the sandbox listens on 127.0.0.1: {one}");
    let mut options = argocd_options(&env);
    if let Some(a) = options.argocd.as_mut() {
        a.allowed.token_urls = vec![one.clone(), two.clone()];
    }
    env.lab.namespace(NS, &[]).await.unwrap();
    let controller = env.controller_with(options).await;
    let stores = || controller.handle.metrics().argocd_stores();
    repo_secret(
        &env,
        "by-one",
        Some("production"),
        &[("workloadIdentityTokenURL", &one)],
    )
    .await;
    repo_secret(
        &env,
        "by-two",
        Some("production"),
        &[("workloadIdentityTokenURL", &two)],
    )
    .await;
    wait_filled(&env, "by-one", None).await;
    wait_filled(&env, "by-two", None).await;
    assert_eq!(stores(), 2, "one store per token URL in use");

    secrets(&env)
        .delete("by-one", &Default::default())
        .await
        .unwrap();
    eventually("the deleted secret's store freed", || async {
        (stores() == 1).then_some(())
    })
    .await;

    // by-two moves to the first URL: a store for it, the second's freed.
    secrets(&env)
        .patch(
            "by-two",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"workloadIdentityTokenURL": b64(&one)}})),
        )
        .await
        .unwrap();
    eventually("by-two served through the first URL", || async {
        let s = secrets(&env).get("by-two").await.ok()?;
        let st = status(&s)?;
        (st.starts_with("Ready") && st.contains(&one)).then_some(())
    })
    .await;
    eventually("the second URL's store freed", || async {
        (stores() == 1).then_some(())
    })
    .await;

    // Opting out frees the last one.
    secrets(&env)
        .patch(
            "by-two",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {
                "useWorkloadIdentity": b64("false"),
                "workloadIdentityProvider": b64("none"),
            }})),
        )
        .await
        .unwrap();
    eventually("no store once nothing is served", || async {
        (stores() == 0).then_some(())
    })
    .await;
    controller.stop().await.unwrap();
}

/// Review 2 M1: 64 opted-in secrets naming made-up regions (`us-a-1`, …), each failing its
/// exchange, hold no store slot against a real project: the real one is still served.
/// (The made-up ones fail at STS here, AccessDenied, as they would on DNS in AWS.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_that_never_worked_do_not_fill_the_cap() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    project(&env, "intruder", "argocd-project-production").await;
    let controller = start(&env).await;
    let account = env.lab.account();
    for i in 1..=64 {
        let url = format!("oci://{account}.dkr.ecr.us-a-{i}.amazonaws.com/charts");
        repo_secret(
            &env,
            &format!("bogus-{i}"),
            Some("intruder"),
            &[("url", &url)],
        )
        .await;
    }
    for i in 1..=64 {
        let (_, st) = wait_status(&env, &format!("bogus-{i}"), "Error").await;
        assert!(!st.contains("distinct (region"), "bogus-{i}: {st}");
    }
    assert_eq!(
        controller.handle.metrics().argocd_stores(),
        64,
        "one store per made-up region: the cap is reached"
    );
    repo_secret(&env, "real", Some("production"), &[]).await;
    wait_filled(&env, "real", None).await;
    controller.stop().await.unwrap();
}

/// A secret deleted between irsa's read and its apply (review L5): the apply carries the
/// resourceVersion read, so it is refused; it never creates an unlabelled Secret holding the
/// credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_deleted_after_the_read_is_not_recreated_by_the_apply() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let _controller = start(&env).await;
    let requests = env.lab.stack.api.requests().clone();
    let faults = env.lab.stack.api.faults().clone();
    requests.clear();
    // Every API request takes 700 ms: after irsa's GET, its TokenRequest and its apply come
    // well after the delete sent as soon as the GET is seen.
    faults.set_latency(Duration::from_millis(700));
    repo_secret(&env, "short-lived", Some("production"), &[]).await;
    let in_ns = |verb: &'static str| {
        let requests = requests.clone();
        move || {
            requests
                .records()
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.verb == verb
                        && r.resource == "secrets"
                        && r.subresource.is_none()
                        && r.namespace.as_deref() == Some(NS)
                })
                .map(|(i, r)| (i, r.code))
                .collect::<Vec<_>>()
        }
    };
    let gets = in_ns("get");
    eventually("irsa read the secret", || async {
        (!gets().is_empty()).then_some(())
    })
    .await;
    secrets(&env)
        .delete("short-lived", &Default::default())
        .await
        .unwrap();
    let deleted_at = in_ns("delete")()
        .first()
        .map(|(i, _)| *i)
        .expect("the delete recorded");
    let patches = in_ns("patch");
    let refused = eventually("irsa's apply after the delete", || async {
        let after: Vec<u16> = patches()
            .into_iter()
            .filter(|(i, _)| *i > deleted_at)
            .map(|(_, c)| c)
            .collect();
        (!after.is_empty()).then_some(after)
    })
    .await;
    faults.set_latency(Duration::ZERO);
    assert!(
        refused.iter().all(|c| *c >= 400),
        "every apply after the delete refused: {refused:?}"
    );
    assert!(
        patches().iter().all(|(i, c)| *i > deleted_at && *c >= 400),
        "no apply reached the secret before the delete either: {:?}",
        patches()
    );
    // Nothing recreated it, then or on a later reconcile.
    _controller.handle.resync_all();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        secrets(&env)
            .get_opt("short-lived")
            .await
            .unwrap()
            .is_none(),
        "the apply created a Secret"
    );
    let left = secrets(&env).list(&Default::default()).await.unwrap();
    assert!(
        left.items
            .iter()
            .all(|s| s.data.as_ref().is_none_or(|d| !d.contains_key("password"))),
        "no Secret holds a password"
    );
}

/// A user who applied `irsa.dev/status` first owns it, so irsa's non-forced apply of the status
/// conflicts (review L4): irsa still fills the credentials, and says what the status would be,
/// who holds the annotation and how to free it, in a Warning Event `StatusConflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_annotation_someone_else_owns_is_reported_in_an_event() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let _controller = start(&env).await;
    let applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pre-owned", "namespace": NS,
                     "labels": {"argocd.argoproj.io/secret-type": "repository"},
                     "annotations": {STATUS_ANNOTATION: "Ready: all fine (written by hand)"}},
        "data": {
            "type": b64("oci"), "url": b64(&format!("oci://{}/charts", env.lab.ecr_host())),
            "workloadIdentityProvider": b64("aws"), "project": b64("production"),
        },
    });
    secrets(&env)
        .patch(
            "pre-owned",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    let (user, password) = eventually("pre-owned: credentials", || async {
        let s = secrets(&env).get_opt("pre-owned").await.ok()??;
        Some((field(&s, "username")?, field(&s, "password")?))
    })
    .await;
    let (code, _) = registry_token(&env, "charts/app", &user, &password).await;
    assert_eq!(code, 200, "the credentials work");
    let note = eventually("a StatusConflict Event", || async {
        env.events_about("pre-owned")
            .await
            .into_iter()
            .find(|(reason, _)| reason == "StatusConflict")
            .map(|(_, note)| note)
    })
    .await;
    assert!(
        note.contains("\"kubectl\"")
            && note.contains("Ready: username and password for")
            && note.contains("kubectl -n argocd annotate secret pre-owned irsa.dev/status-"),
        "the owner, the status and the fix: {note}"
    );
    assert!(!note.contains(&password), "no secret in the Event: {note}");
}

/// A `list` of `resource` that always fails (503).
fn failing_list(resource: &str) -> ErrorRule {
    ErrorRule {
        verb: Some("list".into()),
        resource: Some(resource.into()),
        code: 503,
        rate: 1.0,
        count: None,
        retry_after_seconds: None,
        message: None,
    }
}

/// The controller (with `--argocd-namespace`) started so that only the Argo CD reconciler's
/// service accounts cannot list: the index lists its secrets and service accounts while its
/// namespaces cannot (so the Argo CD reconciler, started after the index's first lists,
/// waits), then only service-account lists fail. Returns once `/readyz` says the Argo CD
/// service accounts are all that is left; the faults stay until cleared.
async fn argocd_without_service_accounts(env: &Env) -> (RunningController, std::net::SocketAddr) {
    let faults = env.lab.stack.api.faults().clone();
    faults.add_error(failing_list("namespaces"));
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let controller = env
        .lab
        .spawn_controller(argocd_options(env), Some(admin))
        .await
        .unwrap();
    eventually(
        "the index listed its secrets and service accounts",
        || async {
            let (code, body) = readyz(addr).await;
            (code == 503
                && body.contains("waiting for the first list of: namespaces")
                && !body.contains("secrets, serviceaccounts"))
            .then_some(())
        },
    )
    .await;
    faults.set(FaultConfig {
        errors: vec![failing_list("serviceaccounts")],
        ..FaultConfig::default()
    });
    // Every other watch lists again on its own backoff after the namespaces' fault: wait until
    // the Argo CD service accounts are all that is left.
    eventually("only the Argo CD service accounts unlisted", || async {
        let (code, body) = readyz(addr).await;
        (code == 503 && body.contains("waiting for the first list of: argocd service accounts"))
            .then_some(())
    })
    .await;
    (controller, addr)
}

/// Review L4: when it is the Argo CD service accounts that cannot be listed (the repository
/// secrets list fine), `/readyz` names that watch, not the secrets'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_argocd_watch_that_has_not_listed() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    let faults = env.lab.stack.api.faults().clone();
    // Without the fix, the repository secrets' name stays in the list and the helper's wait
    // for only the service accounts times out.
    let (controller, addr) = argocd_without_service_accounts(&env).await;
    let (_, body) = readyz(addr).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, body2) = readyz(addr).await;
    assert_eq!(code, 503, "{body2}");
    for body in [&body, &body2] {
        assert!(
            body.contains("argocd service accounts"),
            "/readyz names the watch that has not listed: {body}"
        );
        assert!(
            !body.contains("argocd repository secrets"),
            "the repository secrets have listed: {body}"
        );
    }
    faults.clear();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), controller.handle.wait_ready())
            .await
            .expect("ready once the service accounts list"),
        "ready"
    );
    controller.stop().await.unwrap();
}

/// Review L5: a served secret whose `irsa.dev/status` another field manager holds, and whose
/// `username`/`password` that manager then takes over, is a conflict irsa no longer serves:
/// its credential store is freed (it was kept for as long as the controller ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicted_secret_frees_its_credential_store() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    let controller = start(&env).await;
    let stores = || controller.handle.metrics().argocd_stores();
    let applied = |extra: Value| {
        let mut data = json!({
            "type": b64("oci"), "url": b64(&format!("oci://{}/charts", env.lab.ecr_host())),
            "workloadIdentityProvider": b64("aws"), "project": b64("production"),
        });
        if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "taken", "namespace": NS,
                         "labels": {"argocd.argoproj.io/secret-type": "repository"},
                         "annotations": {STATUS_ANNOTATION: "Ready: all fine (written by hand)"}},
            "data": data,
        })
    };
    secrets(&env)
        .patch(
            "taken",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&applied(json!({}))),
        )
        .await
        .unwrap();
    eventually("taken: credentials", || async {
        let s = secrets(&env).get_opt("taken").await.ok()??;
        field(&s, "password").map(|_| ())
    })
    .await;
    assert_eq!(stores(), 1, "one store serves it");
    // The user takes username and password over (a forced apply of their own).
    secrets(&env)
        .patch(
            "taken",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&applied(json!({
                "username": b64("robot"), "password": b64("users-own-token"),
            }))),
        )
        .await
        .unwrap();
    // irsa cannot write the status (kubectl holds it: a StatusConflict Event), so the
    // Conflict shows in its own Event.
    let note = eventually("a Conflict Event", || async {
        env.events_about("taken")
            .await
            .into_iter()
            .find(|(reason, note)| reason == "Conflict" && note.starts_with("Conflict: "))
            .map(|(_, note)| note)
    })
    .await;
    assert!(
        note.contains("\"kubectl\"") && !note.contains("users-own-token"),
        "{note}"
    );
    assert!(
        env.events_about("taken")
            .await
            .iter()
            .any(|(reason, _)| reason == "StatusConflict"),
        "the held status is reported too"
    );
    eventually("the conflicted secret's store freed", || async {
        (stores() == 0).then_some(())
    })
    .await;
    let s = get(&env, "taken").await;
    assert_eq!(field(&s, "password").as_deref(), Some("users-own-token"));
    controller.stop().await.unwrap();
}

/// A repository secret reconciled before the Argo CD service accounts have listed (the CI
/// failure of stop 26: the bench's first secret stayed unfilled for 120 s) is not told that its
/// service account does not exist, and is served once they list: the reconcile waits for the
/// first list. Without the wait, the empty store answered "does not exist", and the re-check
/// on the list could run before the secret was remembered, leaving it until the resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reconciled_before_the_service_accounts_list_waits_for_them() {
    let env = Env::start().await;
    env.lab.namespace(NS, &[]).await.unwrap();
    project(&env, "production", "argocd-project-production").await;
    repo_secret(&env, "early", Some("production"), &[]).await;
    let faults = env.lab.stack.api.faults().clone();
    let (controller, _) = argocd_without_service_accounts(&env).await;
    // The repository secrets have listed: the secret is queued; give its reconcile time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let early = get(&env, "early").await;
    assert_eq!(
        status(&early),
        None,
        "nothing is reported before the service accounts have listed"
    );
    assert!(field(&early, "password").is_none(), "not filled yet");
    faults.clear();
    wait_filled(&env, "early", None).await;
    controller.stop().await.unwrap();
}
