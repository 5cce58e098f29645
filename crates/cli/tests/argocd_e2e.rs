//! Argo CD repository secrets as a user runs them: `irsa sandbox` and `irsa controller` as
//! separate processes, the controller with exactly the arguments `irsa install --argocd-namespace
//! argocd` deploys, the Secrets and ServiceAccounts of Argo CD's workload-identity guide created
//! with the real kubectl. The filled `username`/`password` are accepted by the sandbox registry's
//! token service (what docker-registry consults on a pull); a Secret with a tenant-chosen token URL
//! or audience gets no credential, an `Error:` status naming the flag, and a `CredentialsFailed`
//! Event. With `IRSA_LOG=trace`, no password, token, web-identity JWT or AWS secret key reaches
//! the controller's stderr. A real OCI client (oras-py) pulls a Helm chart from the sandbox's
//! docker-registry with each project's filled credentials, and only that project's chart.

mod common;
mod support_doctor;

use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support_doctor::installed::{Controller, ecr_host, installed_controller_args, kubectl_in};
use support_doctor::*;

const ARGOCD: &str = "argocd";

/// A role for project `p`, trusted by `argocd/argocd-project-<p>` with the STS audience.
fn project_role(p: &str) -> Value {
    role(
        &format!("argocd-{p}"),
        trust_for(
            &format!("system:serviceaccount:{ARGOCD}:argocd-project-{p}"),
            "sts.amazonaws.com",
        ),
        &[
            "ecr:GetAuthorizationToken",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ],
    )
}

/// `irsa controller` as `irsa install --argocd-namespace argocd` deploys it, logging at
/// `log_level`, with `extra` environment.
fn start_controller(sandbox: &Sandbox, log_level: &str, extra: &[(&str, &str)]) -> Controller {
    let args = installed_controller_args(
        &["--argocd-namespace", ARGOCD],
        "127.0.0.1:0".parse().unwrap(),
    );
    assert!(
        args.iter().any(|a| a == "--argocd-namespace=argocd"),
        "the install passes the flag: {args:?}"
    );
    Controller::spawn(sandbox, &["--argocd-namespace", ARGOCD], log_level, extra)
}

fn apply(sandbox: &Sandbox, yaml: &str) {
    kubectl_in(sandbox, &["apply", "--validate=false", "-f", "-"], yaml);
}

/// The guide's ServiceAccount of project `p`, annotated with its role.
fn project_service_account(sandbox: &Sandbox, p: &str) {
    apply(
        sandbox,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: argocd-project-{p}\n  \
             namespace: {ARGOCD}\n  annotations: {{eks.amazonaws.com/role-arn: {}}}\n",
            role_arn(&format!("argocd-{p}"))
        ),
    );
}

/// The guide's repository Secret for project `p` (plus `extra` lines under stringData).
fn repository_secret(sandbox: &Sandbox, name: &str, p: &str, extra: &str) {
    apply(
        sandbox,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ARGOCD}\n  \
             labels: {{argocd.argoproj.io/secret-type: repository}}\nstringData:\n  \
             type: helm\n  url: {host}\n  enableOCI: \"true\"\n  \
             useWorkloadIdentity: \"true\"\n  workloadIdentityProvider: aws\n  \
             project: {p}\n{extra}",
            host = ecr_host()
        ),
    );
}

fn secret(sandbox: &Sandbox, name: &str) -> Value {
    serde_json::from_str(&sandbox.kubectl(&["get", "secret", name, "-n", ARGOCD, "-o", "json"]))
        .expect("JSON")
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    Some(String::from_utf8(bytes).expect("utf-8"))
}

fn status(secret: &Value) -> Option<String> {
    secret["metadata"]["annotations"]["irsa.dev/status"]
        .as_str()
        .map(str::to_owned)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` until it answers, at most 120 s (a loaded 2-core machine, trace logging).
fn eventually<T>(what: &str, controller: &Controller, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the controller log's last lines:\n{}",
            tail(&controller.full_log(), 80)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `name`'s status starts with `prefix`; the Secret then.
fn wait_status(sandbox: &Sandbox, c: &Controller, name: &str, prefix: &str) -> Value {
    eventually(&format!("{name}: status {prefix:?}"), c, || {
        let s = secret(sandbox, name);
        status(&s)?.starts_with(prefix).then_some(s)
    })
}

/// The sandbox registry token service's answer to `user:password` for a pull of
/// `repository` (what a registry client asks after the registry's 401 challenge): the HTTP
/// status and the JSON body.
fn registry_token(sandbox: &Sandbox, repository: &str, user: &str, password: &str) -> (u16, Value) {
    let authority = sandbox
        .get("AWS_ENDPOINT_URL")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "GET /registry/token?service=irsa-sandbox-registry&scope=repository:{repository}:pull \
         HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(&authority).expect("connect");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = body
        .find('{')
        .and_then(|s| body.rfind('}').map(|e| &body[s..=e]))
        .unwrap_or("null");
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// The claims of a JWT (unverified: the sandbox signed it; this reads what it grants).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The Events on Secret `name` in the Argo CD namespace, as (type, reason, note).
fn events(sandbox: &Sandbox, name: &str) -> Vec<(String, String, String)> {
    let list: Value = serde_json::from_str(&sandbox.kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        ARGOCD,
        "-o",
        "json",
    ]))
    .expect("JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name && e["regarding"]["kind"] == "Secret")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("type"), s("reason"), s("note"))
        })
        .collect()
}

/// The sandbox with the projects' roles, the Argo CD and irsa namespaces, the guide's service
/// accounts, and the controller as installed, at `log_level`.
fn start(
    name: &str,
    projects: &[&str],
    log_level: &str,
    extra: &[(&str, &str)],
) -> (Sandbox, Controller) {
    let sandbox = Sandbox::start(
        name,
        projects.iter().map(|p| project_role(p)).collect(),
        &[],
    );
    start_on(sandbox, projects, log_level, extra)
}

/// [`start`] on a sandbox already running with the projects' roles.
fn start_on(
    sandbox: Sandbox,
    projects: &[&str],
    log_level: &str,
    extra: &[(&str, &str)],
) -> (Sandbox, Controller) {
    sandbox.kubectl(&["create", "namespace", ARGOCD]);
    sandbox.kubectl(&["create", "namespace", "irsa-system"]);
    for p in projects {
        project_service_account(&sandbox, p);
    }
    let controller = start_controller(&sandbox, log_level, extra);
    (sandbox, controller)
}

/// Waits until `name` is Ready with credentials; returns (username, password).
fn wait_filled(sandbox: &Sandbox, c: &Controller, name: &str) -> (String, String) {
    let s = wait_status(sandbox, c, name, "Ready");
    (
        data(&s, "username").expect("username filled"),
        data(&s, "password").expect("password filled"),
    )
}

#[test]
fn the_guides_secrets_get_credentials_the_registry_accepts_and_refused_ones_say_why() {
    let (sandbox, controller) = start("argocd-e2e", &["production", "staging"], "info", &[]);
    repository_secret(&sandbox, "production-charts", "production", "");
    repository_secret(&sandbox, "staging-charts", "staging", "");

    for (name, p) in [
        ("production-charts", "production"),
        ("staging-charts", "staging"),
    ] {
        let (user, password) = wait_filled(&sandbox, &controller, name);
        assert_eq!(user, "AWS", "{name}");
        let (code, body) = registry_token(&sandbox, "charts/app", &user, &password);
        assert_eq!(
            code, 200,
            "{name}: the registry token service accepts it: {body}"
        );
        let token = body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .unwrap_or_else(|| panic!("{name}: a token in {body}"));
        let granted = claims(token);
        assert_eq!(
            granted["access"][0]["actions"],
            serde_json::json!(["pull"]),
            "{name}: {granted}"
        );
        assert_eq!(granted["access"][0]["name"], "charts/app", "{granted}");
        assert!(
            granted["sub"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("argocd-{p}"))),
            "{name}: pulls as the project's role: {granted}"
        );
        let s = secret(&sandbox, name);
        let st = status(&s).unwrap();
        assert!(
            st.contains(&format!("argocd/argocd-project-{p}")) && st.contains(&ecr_host()),
            "{name}: {st}"
        );
        // The status is applied before the Event is published (review 2 L6): waited for.
        eventually(
            &format!("{name}: a CredentialsWritten Event"),
            &controller,
            || {
                events(&sandbox, name)
                    .iter()
                    .any(|(t, r, _)| t == "Normal" && r == "CredentialsWritten")
                    .then_some(())
            },
        );
        // A forged password is refused by the same service (the check above can fail).
        let (code, _) = registry_token(&sandbox, "charts/app", "AWS", &format!("{password}x"));
        assert_eq!(code, 401, "{name}: a forged password is refused");
    }

    // A tenant-chosen token URL (anyone's API Gateway on an AWS domain) and audience (the
    // API server's): no credential, the status names the key and the flag, and an Event.
    repository_secret(
        &sandbox,
        "exfiltrating-charts",
        "production",
        "  workloadIdentityTokenURL: https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com\n",
    );
    repository_secret(
        &sandbox,
        "kubernetes-audience-charts",
        "production",
        "  workloadIdentityAudience: https://kubernetes.default.svc\n",
    );
    for (name, key, flag) in [
        (
            "exfiltrating-charts",
            "workloadIdentityTokenURL",
            "--argocd-token-url",
        ),
        (
            "kubernetes-audience-charts",
            "workloadIdentityAudience",
            "--argocd-audience",
        ),
    ] {
        let s = wait_status(&sandbox, &controller, name, "Error");
        let st = status(&s).unwrap();
        assert!(st.contains(key) && st.contains(flag), "{name}: {st}");
        assert_eq!(data(&s, "username"), None, "{name}: no credential");
        assert_eq!(data(&s, "password"), None, "{name}: no credential");
        let evs = eventually(&format!("{name}: an Event"), &controller, || {
            let e = events(&sandbox, name);
            (!e.is_empty()).then_some(e)
        });
        assert!(
            evs.iter().any(|(t, r, note)| t == "Warning"
                && r == "CredentialsFailed"
                && note.contains(key)
                && note.contains(flag)),
            "{name}: {evs:?}"
        );
    }
    let log = controller.stop_cleanly();
    assert!(
        log.contains("serving Argo CD repository secrets"),
        "the installed arguments turn it on:\n{log}"
    );
}

/// A project's role as a careful user writes it: ECR tokens, and reads of that project's
/// repositories only (`<p>/*`), trusted by `argocd/argocd-project-<p>`.
fn scoped_project_role(p: &str) -> Value {
    serde_json::json!({
        "name": format!("argocd-{p}"),
        "trustPolicy": trust_for(
            &format!("system:serviceaccount:{ARGOCD}:argocd-project-{p}"),
            "sts.amazonaws.com",
        ),
        "permissionPolicies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
             "Resource": format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{p}/*")}
        ]}]
    })
}

/// The CI role that publishes charts: ci/builder may push anywhere in the registry.
fn publisher_role() -> Value {
    role(
        "chart-publisher",
        trust_for(
            &format!("system:serviceaccount:{NS}:{SA}"),
            "sts.amazonaws.com",
        ),
        &[
            "ecr:GetAuthorizationToken",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:PutImage",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
        ],
    )
}

/// `irsa login HOST -o password` as ci/builder with the publisher's role: an ECR password that
/// may push (the way a CI job gets one).
fn publisher_password(sandbox: &Sandbox) -> String {
    let token_file = sandbox.dir.write("publisher.token", &sandbox.token());
    let out = sandbox
        .command(std::path::Path::new(env!("CARGO_BIN_EXE_irsa")))
        .args(["login", &ecr_host(), "-o", "password", "--no-cache"])
        .env("AWS_ROLE_ARN", role_arn("chart-publisher"))
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("irsa login runs");
    assert!(
        out.status.success(),
        "irsa login as the publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// `oras_helm.py OP ARGS` (oras-py, a real OCI client) with `AWS:password` on stdin: its JSON
/// answer.
fn oras(sandbox: &Sandbox, args: &[&str], password: &str) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/oras_helm.py");
    let mut child = sandbox
        .command(&irsa_test_peers::oras_python())
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let credentials = serde_json::json!({"username": "AWS", "password": password});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(credentials.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "oras_helm.py {args:?} printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.success(),
        answer["ok"] == true,
        "exit status and answer agree: {answer}"
    );
    assert!(
        !stdout.contains(password) && !String::from_utf8_lossy(&out.stderr).contains(password),
        "the password is not printed"
    );
    answer
}

/// The end-to-end claim with a real OCI client: a Helm chart pushed as an OCI artifact
/// to each project's repository of the sandbox registry (the real CNCF distribution registry,
/// token auth) is pulled by oras-py with the `username`/`password` irsa wrote into that
/// project's repository Secret. Staging's credential cannot pull production's chart (its role
/// reads `staging/*` only), and a forged password pulls nothing.
#[test]
fn a_real_oci_client_pulls_each_projects_helm_chart_with_the_filled_credentials() {
    let python = irsa_test_peers::oras_python();
    assert!(python.exists(), "{}", python.display());
    let sandbox = Sandbox::start_with_registry(
        "argocd-oras",
        vec![
            scoped_project_role("production"),
            scoped_project_role("staging"),
            publisher_role(),
        ],
        &[],
    );
    let registry = sandbox
        .env
        .iter()
        .find(|(k, _)| k == "IRSA_SANDBOX_REGISTRY")
        .map(|(_, v)| v.clone())
        .expect(
            "the sandbox started no registry: install Debian's docker-registry (./scripts/test does)",
        );
    let started = start_on(sandbox, &["production", "staging"], "info", &[]);
    let (sandbox, controller) = (&started.0, &started.1);

    // A CI job publishes each project's chart with its own push credential.
    let push = publisher_password(sandbox);
    for p in ["production", "staging"] {
        let answer = oras(
            sandbox,
            &[
                "push",
                &registry,
                &format!("{p}/app"),
                "0.1.0",
                &format!("{p} chart"),
            ],
            &push,
        );
        assert_eq!(answer["ok"], true, "push {p}/app: {answer}");
    }

    repository_secret(sandbox, "production-charts", "production", "");
    repository_secret(sandbox, "staging-charts", "staging", "");
    let mut filled = std::collections::BTreeMap::new();
    for p in ["production", "staging"] {
        let (user, password) = wait_filled(sandbox, controller, &format!("{p}-charts"));
        assert_eq!(user, "AWS");
        filled.insert(p, password);
    }
    for p in ["production", "staging"] {
        let answer = oras(
            sandbox,
            &["pull", &registry, &format!("{p}/app"), "0.1.0"],
            &filled[p],
        );
        assert_eq!(
            answer["ok"], true,
            "{p}'s credential pulls {p}/app: {answer}"
        );
        assert_eq!(
            answer["configMediaType"], "application/vnd.cncf.helm.config.v1+json",
            "{answer}"
        );
        assert_eq!(
            answer["layerMediaTypes"],
            serde_json::json!(["application/vnd.cncf.helm.chart.content.v1.tar+gzip"]),
            "{answer}"
        );
        let chart = answer["chartYaml"].as_str().unwrap_or_default();
        assert!(
            chart.contains("name: app") && chart.contains(&format!("description: {p} chart")),
            "{p}'s own chart: {chart}"
        );
    }
    // Isolation: the staging role cannot read production's repository (nor the reverse).
    for (who, whose) in [("staging", "production"), ("production", "staging")] {
        let answer = oras(
            sandbox,
            &["pull", &registry, &format!("{whose}/app"), "0.1.0"],
            &filled[who],
        );
        assert_eq!(
            answer["ok"], false,
            "{who}'s credential pulled {whose}/app: {answer}"
        );
        // Refused by the registry (the token granted no pull), not on the way there.
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("/v2/{whose}/app/manifests/0.1.0"))
                    && e.contains("Unauthorized")),
            "{answer}"
        );
    }
    // A forged password pulls nothing.
    let forged = format!("{}x", filled["production"]);
    let answer = oras(
        sandbox,
        &["pull", &registry, "production/app", "0.1.0"],
        &forged,
    );
    assert_eq!(answer["ok"], false, "a forged password pulled: {answer}");
    // Refused at the token service: oras-py gets no token to answer the registry's challenge.
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("Cannot respond to request for authentication")),
        "{answer}"
    );
}

/// The `eyJ…` JSON Web Tokens (three base64url segments) in `text`.
fn jwts(text: &str) -> Vec<&str> {
    let segment = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        let candidate = &rest[at..];
        let end = candidate
            .find(|c: char| !(segment(c) || c == '.'))
            .unwrap_or(candidate.len());
        let token = &candidate[..end];
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() >= 3 && parts[..3].iter().all(|p| p.len() > 8) {
            found.push(token);
        }
        rest = &candidate[3..];
    }
    found
}

/// The controller's stderr at `IRSA_LOG=trace` (with `extra` environment) while it filled one
/// guide Secret and refused another, and the (username, password) it wrote.
fn trace_run(name: &str, extra: &[(&str, &str)]) -> (String, String, String) {
    let (sandbox, controller) = start(name, &["production"], "trace", extra);
    repository_secret(&sandbox, "production-charts", "production", "");
    // A refused one too: its path (decision, status, Event) is logged as well.
    repository_secret(
        &sandbox,
        "kubernetes-audience-charts",
        "production",
        "  workloadIdentityAudience: https://kubernetes.default.svc\n",
    );
    let (user, password) = wait_filled(&sandbox, &controller, "production-charts");
    wait_status(&sandbox, &controller, "kubernetes-audience-charts", "Error");
    let stderr = controller.stop_cleanly();
    assert!(
        stderr.contains("TRACE") && stderr.contains("DEBUG"),
        "verbose logging is on (else this test proves nothing):\n{stderr}"
    );
    assert!(
        stderr.contains("repository credentials written"),
        "the Argo CD path ran:\n{stderr}"
    );
    (stderr, user, password)
}

/// The secrets found in `stderr`: the registry password written, its base64 forms, STS
/// session tokens and secret keys, any JWT (the TokenRequest token sent to STS).
fn leaks(stderr: &str, user: &str, password: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    if stderr.contains(password) {
        leaks.push("the registry password".to_owned());
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    if stderr.contains(&basic) {
        // What ECR's authorizationToken is, and what a Docker config holds.
        leaks.push("the base64 user:password".to_owned());
    }
    // Every sandbox (and real) STS session token starts with this; the secret key travels in
    // this XML element.
    if stderr.contains("IQoJb3JpZ2luX2Vj") {
        leaks.push("an STS session token".to_owned());
    }
    if stderr.contains("SecretAccessKey>") {
        leaks.push("an STS secret access key".to_owned());
    }
    for jwt in jwts(stderr) {
        leaks.push(format!("a JWT ({}…)", &jwt[..12]));
    }
    leaks
}

#[test]
fn trace_logs_of_the_argocd_path_hold_no_secret() {
    let (stderr, user, password) = trace_run("argocd-trace", &[]);
    let found = leaks(&stderr, &user, &password);
    assert!(
        found.is_empty(),
        "secrets in the controller's trace logs: {found:?}"
    );
    // The same run with the documented override: the dependencies' dumps are back, and the
    // scan above finds them (it is not blind).
    let (stderr, user, password) = trace_run(
        "argocd-trace-unsafe",
        &[("IRSA_LOG_UNSAFE_DEPENDENCIES", "1")],
    );
    let found = leaks(&stderr, &user, &password);
    assert!(
        !found.is_empty(),
        "without the cap the dumps show a secret; the scan found none"
    );
}
