//! `irsa demo`: the sandbox and the pull-secret controller in one process, and every claim the
//! controller makes verified by reading back through the APIs — fan-out, a new namespace, a
//! refresh, an STS/ECR outage, the recovery and, where skopeo and docker-registry are installed,
//! a real pull with a secret the controller wrote.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use clap::Args;
use irsa_core::docker_config::DockerConfig;
use irsa_core::secret::SecretString;
use irsa_k8s::{ClusterPullSecret, PullSecretStatus};
use irsa_sandbox::cloud::{CloudService, RegistryProcess, push_image};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::Verdict;
use crate::sandbox::{on_path, wait_for_signal};
use irsa_lab::{IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, Lab, LabConfig, RunningController};

mod argocd;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    irsa demo                        # 5 namespaces\n  \
    irsa demo --namespaces 1000      # a bigger fan-out\n  \
    irsa demo --keep-running         # then: KUBECONFIG=.irsa-demo/kubeconfig kubectl get cps\n  \
    irsa demo --argocd               # Argo CD repository Secrets for two projects\n\n\
    ECR tokens live 20 minutes in the demo; the sandbox clock (shared by the controller) is moved\n\
    forward to reach refresh points without waiting. The pull step needs Debian's skopeo and\n\
    docker-registry (apt-get install skopeo docker-registry) and is skipped only when they are\n\
    not installed. IRSA_LOG=info shows the controller's logs on stderr.\n\n\
    --argocd runs Argo CD's workload-identity guide instead: the argocd namespace, projects\n\
    production and staging (service accounts argocd-project-<p>, roles that read only <p>/*),\n\
    one repository Secret each (type helm, enableOCI, useWorkloadIdentity, project), and shows\n\
    them filled, refreshed, isolated at the registry and recovered after an STS/ECR outage.")]
pub(crate) struct DemoArgs {
    /// How many namespaces the ClusterPullSecret selects (1 to 10000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        env = "IRSA_DEMO_NAMESPACES",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    namespaces: u32,
    /// After the steps, keep the sandbox and the controller running (Ctrl-C stops them) and
    /// write a kubeconfig into --state-dir, for `kubectl get cps`.
    #[arg(long)]
    keep_running: bool,
    /// Where --keep-running writes `kubeconfig` and `env`.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".irsa-demo",
        env = "IRSA_DEMO_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// Argo CD instead of pull secrets: two projects' repository Secrets in the format of Argo
    /// CD's workload-identity guide, filled by the controller (`--argocd-namespace argocd`).
    #[arg(long, conflicts_with = "namespaces")]
    argocd: bool,
}

/// The label that selects namespaces.
const LABEL: (&str, &str) = ("irsa.dev/pull", "ecr");
const CPS_NAME: &str = "ecr-pull";
const SECRET_NAME: &str = "regcred";
/// ECR tokens live 20 minutes in the demo (AWS: 12 hours). Every clock jump together stays
/// within the first STS session (1 hour): the pipeline's cache times AWS credentials on the
/// monotonic clock, which the sandbox clock does not move, so a session that expired only in
/// sandbox time would still be served from it.
const ECR_TOKEN_LIFETIME_SECS: i64 = 20 * 60;
/// Past the refresh point (half the lifetime, ±10 % jitter: 9 to 11 minutes), before expiry.
const REFRESH_JUMP: Duration = Duration::from_secs(12 * 60);
/// Past the retry backoff after a failure (seconds here, at most 5 minutes), before expiry.
const RECOVERY_JUMP: Duration = Duration::from_secs(5 * 60);
const POLL: Duration = Duration::from_millis(20);
const NAMESPACE_CONCURRENCY: usize = 32;

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<Verdict> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.argocd {
        return runtime.block_on(argocd::demo(args.keep_running, &args.state_dir));
    }
    runtime.block_on(demo(args))
}

#[derive(Debug, Clone, Copy)]
enum Step {
    SetUp,
    FanOut,
    NewNamespace,
    Refresh,
    Outage,
    Recovery,
    Pull,
}

impl Step {
    const ALL: [Step; 7] = [
        Step::SetUp,
        Step::FanOut,
        Step::NewNamespace,
        Step::Refresh,
        Step::Outage,
        Step::Recovery,
        Step::Pull,
    ];

    fn label(self) -> &'static str {
        match self {
            Step::SetUp => "0 set-up",
            Step::FanOut => "1 fan-out",
            Step::NewNamespace => "2 new namespace",
            Step::Refresh => "3 refresh",
            Step::Outage => "4 outage",
            Step::Recovery => "5 recovery",
            Step::Pull => "6 pull",
        }
    }
}

/// How a step ended when it did not fail.
enum Done {
    Verified(String),
    Skipped(String),
}

/// One line per step; on a terminal, a progress line rewritten in place until the step ends.
struct Console {
    tty: bool,
    label: &'static str,
}

impl Console {
    /// Progress in place only on a terminal.
    fn new() -> Console {
        Console {
            tty: std::io::stdout().is_terminal(),
            label: "",
        }
    }

    fn begin(&mut self, label: &'static str) {
        self.label = label;
        self.progress("");
    }

    /// A line above the step's progress line (which is then drawn again).
    fn print_above(&self, text: &str) {
        if self.tty {
            print!("\r\x1b[2K");
        }
        println!("{text}");
        self.progress("");
    }

    fn progress(&self, text: &str) {
        if self.tty {
            print!("\r\x1b[2K… {:<15} {text}", self.label);
            let _ = std::io::stdout().flush();
        }
    }

    fn finish(&self, elapsed: Duration, outcome: &anyhow::Result<Done>) {
        if self.tty {
            print!("\r\x1b[2K");
        }
        let ms = elapsed.as_millis();
        match outcome {
            Ok(Done::Verified(detail)) => println!("✓ {:<15} {detail}  ({ms} ms)", self.label),
            Ok(Done::Skipped(why)) => println!("- {:<15} skipped: {why}", self.label),
            Err(error) => println!("✗ {:<15} {}  ({ms} ms)", self.label, crate::message(error)),
        }
        let _ = std::io::stdout().flush();
    }
}

struct Demo {
    lab: Lab,
    controller: Option<RunningController>,
    console: Console,
    /// Selected namespaces, in creation order.
    namespaces: Vec<String>,
    /// The ECR password each namespace's secret held when last verified.
    passwords: BTreeMap<String, SecretString>,
    requested: u32,
    /// How long any wait may take: longer for a bigger fan-out.
    patience: Duration,
    skopeo: bool,
    /// Between two listings of every secret: longer for a bigger fan-out, so that reading
    /// back does not slow down the controller it measures.
    list_every: Duration,
}

async fn demo(args: DemoArgs) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let registry = on_path("docker-registry");
    let lab = Lab::start(LabConfig {
        registry,
        ecr_token_lifetime_seconds: ECR_TOKEN_LIFETIME_SECS,
        ..LabConfig::default()
    })
    .await?;
    let mut demo = Demo {
        lab,
        controller: None,
        console: Console::new(),
        namespaces: Vec::new(),
        passwords: BTreeMap::new(),
        requested: args.namespaces,
        patience: Duration::from_secs(30) + Duration::from_millis(20) * args.namespaces,
        skopeo: on_path("skopeo"),
        list_every: POLL.max(Duration::from_millis(u64::from(args.namespaces / 10))),
    };
    demo.print_header();

    let mut failed = None;
    for step in Step::ALL {
        demo.console.begin(step.label());
        let t = Instant::now();
        let outcome = match step {
            Step::SetUp => demo.set_up().await,
            Step::FanOut => demo.fan_out().await,
            Step::NewNamespace => demo.new_namespace().await,
            Step::Refresh => demo.refresh().await,
            Step::Outage => demo.outage().await,
            Step::Recovery => demo.recovery().await,
            Step::Pull => demo.pull().await,
        };
        demo.console.finish(t.elapsed(), &outcome);
        if let Err(error) = outcome {
            failed = Some((step, error));
            break;
        }
    }
    let verdict = match &failed {
        None => {
            println!(
                "\nevery step verified in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Verdict::Ok
        }
        Some((step, error)) => {
            println!(
                "\ndemo failed at step {}: {}",
                step.label(),
                crate::message(error)
            );
            Verdict::No
        }
    };

    if args.keep_running {
        let paths = demo.lab.stack.write_state(&args.state_dir)?;
        println!("\nthe sandbox and the controller keep running (Ctrl-C stops them):");
        println!(
            "  export KUBECONFIG={}   # or: source {}",
            paths.kubeconfig.display(),
            paths.env.display()
        );
        println!("  kubectl get clusterpullsecrets; kubectl get secrets -A");
        wait_for_signal().await;
    }
    if let Some(controller) = demo.controller.take() {
        controller.stop().await?;
    }
    demo.lab.stack.shutdown().await;
    Ok(verdict)
}

impl Demo {
    fn print_header(&self) {
        let stack = &self.lab.stack;
        println!(
            "irsa demo: a Kubernetes API server, AWS (IAM, STS, ECR) and irsa's controller, in this process"
        );
        println!("  Kubernetes API   {}", stack.api_url);
        println!("  AWS endpoint     {}", stack.aws_url);
        println!(
            "  OIDC provider    {}  (the cluster's issuer, audience sts.amazonaws.com)",
            self.lab.provider_arn()
        );
        match &stack.registry {
            Some(registry) => println!(
                "  registry         {}  (docker-registry; accepts only sandbox credentials)",
                registry.host()
            ),
            None => println!(
                "  registry         not started: docker-registry is not installed (apt-get install docker-registry skopeo)"
            ),
        }
        println!(
            "  ECR host         {}  (tokens live {} min)",
            self.lab.ecr_host(),
            ECR_TOKEN_LIFETIME_SECS / 60
        );
    }

    async fn set_up(&mut self) -> anyhow::Result<Done> {
        let role = self
            .lab
            .register_role(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT)?;
        let trust = self
            .lab
            .trust_policy(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT);
        // Printed before the step's line, so that it is not overwritten by progress.
        self.print_above(&format!(
            "  IAM role         {role}\n  trust policy     {}\n",
            describe_trust(&trust)
        ));
        self.lab
            .identity(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, &role)
            .await?;

        let width = self.requested.to_string().len();
        let names: Vec<String> = (1..=self.requested)
            .map(|i| format!("demo-{i:0width$}"))
            .collect();
        self.create_namespaces(&names).await?;
        self.namespaces = names;

        let cps = json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
            "metadata": {"name": CPS_NAME},
            "spec": {
                "registries": [{"host": self.lab.ecr_host()}],
                "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
                "secretName": SECRET_NAME,
                "refresh": 0.5,
                "namespaces": {"selector": {"matchLabels": {LABEL.0: LABEL.1}}},
            },
        });
        self.cps_api()
            .patch(
                CPS_NAME,
                &PatchParams::apply("irsa-demo").force(),
                &Patch::Apply(&cps),
            )
            .await
            .context("failed to create the ClusterPullSecret")?;

        self.console.progress("starting the controller");
        let controller = self
            .lab
            .spawn_controller(self.lab.controller_options(), None)
            .await?;
        let ready = tokio::time::timeout(self.patience, controller.handle.wait_ready()).await;
        let handle_ready = matches!(ready, Ok(true));
        self.controller = Some(controller);
        ensure!(
            handle_ready,
            "the controller did not become ready (every watch listed) within {} s",
            self.patience.as_secs()
        );
        Ok(Done::Verified(format!(
            "service account {IDENTITY_NAMESPACE}/{IDENTITY_SERVICE_ACCOUNT} (role annotation), {} namespaces labelled {}={}, ClusterPullSecret {CPS_NAME}, controller ready",
            self.requested, LABEL.0, LABEL.1
        )))
    }

    async fn fan_out(&mut self) -> anyhow::Result<Done> {
        let n = self.namespaces.len();
        let deadline = Instant::now() + self.patience;
        loop {
            let secrets = self.secrets().await?;
            let good = secrets.values().filter(|s| s.is_ok()).count();
            self.console.progress(&format!("secrets {good}/{n}"));
            if good == n {
                self.passwords = passwords(secrets);
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {good}/{n} namespaces have a valid secret after {} s; {}",
                    self.patience.as_secs(),
                    first_problem(&self.namespaces, &secrets)
                );
            }
            tokio::time::sleep(self.list_every).await;
        }
        let summary = self
            .ready_on_one_exchange("for one ClusterPullSecret, expected exactly 1")
            .await?;
        Ok(Done::Verified(format!(
            "secrets {n}/{n} (dockerconfigjson, user AWS for {}), ClusterPullSecret Ready=True {summary}, 1 upstream exchange",
            self.lab.ecr_host()
        )))
    }

    /// Waits for `Ready=True` with every namespace ready and checks that everything so far cost
    /// exactly one upstream exchange (`why` completes the error otherwise). Returns `n/n`.
    async fn ready_on_one_exchange(&self, why: &str) -> anyhow::Result<String> {
        let n = self.namespaces.len();
        let summary = format!("{n}/{n}");
        self.wait_status(&format!("Ready=True with {summary}"), |s| {
            condition_is(s, "Ready", "True") && summary_is(s, &summary)
        })
        .await?;
        let exchanges = self.exchanges();
        ensure!(exchanges == 1, "{exchanges} upstream exchanges: {why}");
        Ok(summary)
    }

    async fn new_namespace(&mut self) -> anyhow::Result<Done> {
        let name = "demo-new".to_owned();
        let secrets: Api<Secret> = Api::namespaced(self.lab.client.clone(), &name);
        let created = Instant::now();
        self.lab.namespace(&name, &[LABEL]).await?;
        let deadline = created + self.patience;
        let secret = loop {
            if let Some(secret) = secrets.get_opt(SECRET_NAME).await? {
                break secret;
            }
            ensure!(
                Instant::now() < deadline,
                "namespace {name} has no secret {SECRET_NAME} after {} s",
                self.patience.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let served = created.elapsed();
        let password = ecr_password(&secret, &self.lab.ecr_host())
            .map_err(|e| anyhow!("secret {name}/{SECRET_NAME}: {e}"))?;
        self.namespaces.push(name.clone());
        self.passwords.insert(name.clone(), password);
        let summary = self
            .ready_on_one_exchange("a new namespace should be served from the cached credential")
            .await?;
        Ok(Done::Verified(format!(
            "namespace {name} got its secret {} ms after it was created, from the cached credential (still 1 exchange); Ready {summary}",
            served.as_millis()
        )))
    }

    async fn refresh(&mut self) -> anyhow::Result<Done> {
        let before = self.exchanges();
        self.lab.stack.cloud.advance(REFRESH_JUMP);
        self.resync();
        let changed = self.wait_all_changed("refreshed").await?;
        self.passwords = changed;
        let exchanges = self.exchanges();
        ensure!(
            exchanges == before + 1,
            "{} upstream exchanges for one refresh, expected 1",
            exchanges - before
        );
        let n = self.namespaces.len();
        Ok(Done::Verified(format!(
            "clock +{} min (refresh at half of the {} min token lifetime): {n}/{n} secrets have a new password, 1 more exchange",
            REFRESH_JUMP.as_secs() / 60,
            ECR_TOKEN_LIFETIME_SECS / 60
        )))
    }

    async fn outage(&mut self) -> anyhow::Result<Done> {
        let faults = self.lab.stack.cloud.faults();
        faults.set_outage(CloudService::Sts, true);
        faults.set_outage(CloudService::Ecr, true);
        self.lab.stack.cloud.advance(REFRESH_JUMP);
        self.resync();
        let status = self
            .wait_status("Degraded=True (RefreshFailed)", |s| {
                condition(s, "Degraded")
                    .is_some_and(|c| c.status == "True" && c.reason == "RefreshFailed")
            })
            .await?;
        ensure!(
            condition_is(&status, "Ready", "True"),
            "Ready is not True during the outage, although no secret has expired: {:?}",
            condition(&status, "Ready").map(|c| (&c.status, &c.reason, &c.message))
        );
        let secrets = self.secrets().await?;
        let n = self.namespaces.len();
        for ns in &self.namespaces {
            match secrets.get(ns) {
                Some(Ok(password)) if Some(password) == self.passwords.get(ns) => {}
                Some(Ok(_)) => bail!("secret {ns}/{SECRET_NAME} changed during the outage"),
                Some(Err(e)) => bail!("secret {ns}/{SECRET_NAME} broken during the outage: {e}"),
                None => bail!("secret {ns}/{SECRET_NAME} is gone during the outage"),
            }
        }
        let message = condition(&status, "Degraded")
            .map(|c| shorten(&c.message, 90))
            .unwrap_or_default();
        Ok(Done::Verified(format!(
            "STS and ECR down, clock +{} min: Degraded=True (RefreshFailed: {message}), Ready=True, {n}/{n} secrets kept unchanged",
            REFRESH_JUMP.as_secs() / 60
        )))
    }

    async fn recovery(&mut self) -> anyhow::Result<Done> {
        self.lab.stack.cloud.faults().clear();
        // The credential store backs off after a failure, in sandbox-clock time.
        self.lab.stack.cloud.advance(RECOVERY_JUMP);
        self.resync();
        let changed = self.wait_all_changed("refreshed").await?;
        self.passwords = changed;
        let status = self
            .wait_status("Degraded=False", |s| condition_is(s, "Degraded", "False"))
            .await?;
        ensure!(
            condition_is(&status, "Ready", "True"),
            "Ready is not True after the recovery"
        );
        let n = self.namespaces.len();
        Ok(Done::Verified(format!(
            "outage over, clock +{} min (past the retry backoff): {n}/{n} secrets refreshed, Degraded=False, Ready=True",
            RECOVERY_JUMP.as_secs() / 60
        )))
    }

    async fn pull(&mut self) -> anyhow::Result<Done> {
        let Some(registry) = &self.lab.stack.registry else {
            return Ok(Done::Skipped(
                "docker-registry is not installed (Debian: apt-get install docker-registry skopeo)"
                    .to_owned(),
            ));
        };
        if !self.skopeo {
            return Ok(Done::Skipped(
                "skopeo is not installed (Debian: apt-get install skopeo)".to_owned(),
            ));
        }
        let ns = self.namespaces.first().context("no namespace")?.clone();
        let dir = TempDir::create()?;
        let result = pull_with_secret(&self.lab, registry, &ns, &dir.0).await;
        drop(dir);
        result.map(Done::Verified)
    }

    fn print_above(&self, text: &str) {
        self.console.print_above(text);
    }

    async fn create_namespaces(&self, names: &[String]) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.lab.client.clone());
        let mut tasks = tokio::task::JoinSet::new();
        let total = names.len();
        let mut done = 0usize;
        for name in names {
            if tasks.len() >= NAMESPACE_CONCURRENCY {
                tasks.join_next().await.context("no task")???;
                done += 1;
                self.console.progress(&format!("namespaces {done}/{total}"));
            }
            let api = api.clone();
            let name = name.clone();
            tasks.spawn(async move {
                let ns = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": {LABEL.0: LABEL.1}},
                });
                api.patch(&name, &PatchParams::apply("irsa-demo"), &Patch::Apply(&ns))
                    .await
                    .map(|_| ())
                    .with_context(|| format!("failed to create namespace {name}"))
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        Ok(())
    }

    fn cps_api(&self) -> Api<ClusterPullSecret> {
        Api::all(self.lab.client.clone())
    }

    fn exchanges(&self) -> u64 {
        self.controller
            .as_ref()
            .map_or(0, |c| c.handle.metrics().exchanges())
    }

    fn resync(&self) {
        if let Some(c) = &self.controller {
            c.handle.resync_all();
        }
    }

    /// The demo's secrets, read back through the API: namespace → the ECR password, or why the
    /// secret is not a valid pull secret for the ECR host.
    async fn secrets(&self) -> anyhow::Result<BTreeMap<String, Result<SecretString, String>>> {
        let api: Api<Secret> = Api::all(self.lab.client.clone());
        let list = api
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=irsa"))
            .await
            .context("failed to list secrets")?;
        let host = self.lab.ecr_host();
        Ok(list
            .items
            .iter()
            .filter(|s| s.metadata.name.as_deref() == Some(SECRET_NAME))
            .filter_map(|s| {
                let ns = s.metadata.namespace.clone()?;
                Some((ns, ecr_password(s, &host)))
            })
            .collect())
    }

    /// Waits until every namespace's secret holds a valid password other than the last one
    /// seen; returns the new passwords.
    async fn wait_all_changed(&self, what: &str) -> anyhow::Result<BTreeMap<String, SecretString>> {
        let n = self.namespaces.len();
        let deadline = Instant::now() + self.patience;
        loop {
            let secrets = self.secrets().await?;
            let changed = self
                .namespaces
                .iter()
                .filter(|ns| match secrets.get(*ns) {
                    Some(Ok(p)) => Some(p) != self.passwords.get(*ns),
                    _ => false,
                })
                .count();
            self.console.progress(&format!("{what} {changed}/{n}"));
            if changed == n {
                return Ok(passwords(secrets));
            }
            if Instant::now() > deadline {
                bail!(
                    "only {changed}/{n} secrets got a new password within {} s; {}",
                    self.patience.as_secs(),
                    first_problem(&self.namespaces, &secrets)
                );
            }
            tokio::time::sleep(self.list_every).await;
        }
    }

    /// Waits until the ClusterPullSecret's status satisfies `ok`.
    async fn wait_status(
        &self,
        what: &str,
        ok: impl Fn(&PullSecretStatus) -> bool,
    ) -> anyhow::Result<PullSecretStatus> {
        let deadline = Instant::now() + self.patience;
        loop {
            let cps = self
                .cps_api()
                .get(CPS_NAME)
                .await
                .context("failed to read the ClusterPullSecret")?;
            let status = cps.status.unwrap_or_default();
            if ok(&status) {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "ClusterPullSecret {CPS_NAME} is not {what} after {} s; status: {}",
                    self.patience.as_secs(),
                    describe_status(&status)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Pushes a small image to the sandbox registry and pulls it with skopeo, authenticated by the
/// credential of `namespace`'s secret.
async fn pull_with_secret(
    lab: &Lab,
    registry: &RegistryProcess,
    namespace: &str,
    dir: &Path,
) -> anyhow::Result<String> {
    let seed = lab
        .stack
        .cloud
        .registry_bearer_token("irsa-demo-seed", &["repository:demo/app:pull,push"])
        .map_err(|e| anyhow!("failed to mint a push token: {e}"))?;
    push_image(&registry.url(), "demo/app", "v1", &seed)
        .await
        .with_context(|| format!("failed to push demo/app:v1\n{}", registry.log_tail()))?;
    let image = format!("docker://{}/demo/app:v1", registry.host());

    // The secret is keyed by the ECR host it was written for; the sandbox registry stands in
    // for that host on 127.0.0.1, so the same entry is keyed by the registry's host for skopeo.
    let secret: Secret = Api::namespaced(lab.client.clone(), namespace)
        .get(SECRET_NAME)
        .await
        .with_context(|| format!("failed to read secret {namespace}/{SECRET_NAME}"))?;
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(".dockerconfigjson"))
        .context("the secret has no .dockerconfigjson")?;
    let written = DockerConfig::parse(&data.0)?;
    let auth = written
        .get(&lab.ecr_host())
        .with_context(|| format!("the secret has no entry for {}", lab.ecr_host()))?;
    let mut config = DockerConfig::new();
    config.insert(
        registry.host(),
        auth.username.clone(),
        auth.password.clone(),
    );
    let authfile = dir.join("auth.json");
    write_private(&authfile, config.render().expose().as_bytes())?;
    let empty = dir.join("empty.json");
    write_private(&empty, br#"{"auths": {}}"#)?;

    let counters = lab.stack.cloud.counters();
    let granted_before = counters.get("registry-auth", "GetToken", "ok");
    let anonymous = skopeo(
        dir,
        &[
            "inspect",
            "--tls-verify=false",
            "--retry-times=0",
            "--authfile",
        ],
        &empty,
        &[&image],
    )
    .await?;
    ensure!(
        !anonymous.status.success(),
        "skopeo pulled {image} without credentials: the registry does not check them"
    );
    let inspect = skopeo(
        dir,
        &[
            "inspect",
            "--tls-verify=false",
            "--retry-times=0",
            "--authfile",
        ],
        &authfile,
        &[&image],
    )
    .await?;
    ensure!(
        inspect.status.success(),
        "skopeo inspect {image} with the secret's credential failed: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&inspect.stderr).trim(),
        registry.log_tail()
    );
    let inspected: Value =
        serde_json::from_slice(&inspect.stdout).context("skopeo inspect printed no JSON")?;
    ensure!(
        inspected["Labels"]["dev.irsa.sandbox"] == "true",
        "skopeo inspect shows another image: {inspected}"
    );
    let copy_dir = dir.join("copy");
    let copy = skopeo(
        dir,
        &[
            "copy",
            "--insecure-policy",
            "--src-tls-verify=false",
            "--retry-times=0",
            "--src-authfile",
        ],
        &authfile,
        &[&image, &format!("dir:{}", copy_dir.display())],
    )
    .await?;
    ensure!(
        copy.status.success(),
        "skopeo copy {image} with the secret's credential failed: {}",
        String::from_utf8_lossy(&copy.stderr).trim()
    );
    ensure!(
        copy_dir.join("manifest.json").is_file(),
        "skopeo copy wrote no manifest"
    );
    let granted = counters.get("registry-auth", "GetToken", "ok") - granted_before;
    ensure!(
        granted >= 1,
        "the registry's token service granted nothing: skopeo did not authenticate"
    );
    Ok(format!(
        "pushed demo/app:v1 to {} (standing in for the ECR host); skopeo inspect + copy with the ECR credential of secret {namespace}/{SECRET_NAME}: OK (anonymous: refused)",
        registry.host()
    ))
}

/// Runs skopeo off the runtime (the sandbox keeps serving), with HOME in `dir` so that no
/// user configuration or credential is read.
async fn skopeo(
    dir: &Path,
    args: &[&str],
    authfile: &Path,
    rest: &[&str],
) -> anyhow::Result<std::process::Output> {
    let mut command = std::process::Command::new("skopeo");
    command
        .args(args)
        .arg(authfile)
        .args(rest)
        .env("HOME", dir)
        .stdin(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("failed to run skopeo")
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("failed to write {}", path.display()))
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let path = std::env::temp_dir().join(format!(
            "irsa-demo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ECR password of a pull secret for `host`, or why it is not a valid one.
fn ecr_password(secret: &Secret, host: &str) -> Result<SecretString, String> {
    if secret.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
        return Err(format!("type is {:?}", secret.type_));
    }
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(".dockerconfigjson"))
        .ok_or("no .dockerconfigjson")?;
    let config = DockerConfig::parse(&data.0).map_err(|e| e.to_string())?;
    let auth = config
        .get(host)
        .ok_or_else(|| format!("no entry for {host}"))?;
    if auth.username != "AWS" || auth.password.is_empty() {
        return Err(format!(
            "entry for {host} is not an ECR credential (user {})",
            auth.username
        ));
    }
    Ok(auth.password.clone())
}

fn passwords(
    secrets: BTreeMap<String, Result<SecretString, String>>,
) -> BTreeMap<String, SecretString> {
    secrets
        .into_iter()
        .filter_map(|(ns, p)| Some((ns, p.ok()?)))
        .collect()
}

/// The first namespace whose secret is missing or invalid, for an error message.
fn first_problem(
    namespaces: &[String],
    secrets: &BTreeMap<String, Result<SecretString, String>>,
) -> String {
    for ns in namespaces {
        match secrets.get(ns) {
            None => return format!("e.g. {ns}/{SECRET_NAME} is missing"),
            Some(Err(e)) => return format!("e.g. {ns}/{SECRET_NAME}: {e}"),
            Some(Ok(_)) => {}
        }
    }
    "no secret is missing".to_owned()
}

fn condition<'a>(
    status: &'a PullSecretStatus,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn condition_is(status: &PullSecretStatus, type_: &str, value: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == value)
}

fn summary_is(status: &PullSecretStatus, summary: &str) -> bool {
    status
        .targets
        .as_ref()
        .and_then(|t| t.summary.as_deref())
        .is_some_and(|s| s == summary)
}

fn describe_status(status: &PullSecretStatus) -> String {
    let mut parts: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
        .collect();
    if let Some(summary) = status.targets.as_ref().and_then(|t| t.summary.as_deref()) {
        parts.push(format!("targets {summary}"));
    }
    if parts.is_empty() {
        "none yet".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One line for a trust policy: who may assume the role, on which conditions.
fn describe_trust(policy: &Value) -> String {
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    statements
        .iter()
        .map(|s| {
            let principal = s["Principal"]["Federated"].as_str().unwrap_or("?");
            let principal = principal.rsplit(':').next().unwrap_or(principal);
            let conditions: Vec<String> = s["Condition"]
                .as_object()
                .into_iter()
                .flat_map(|ops| ops.iter())
                .flat_map(|(op, kv)| {
                    kv.as_object()
                        .into_iter()
                        .flat_map(|m| m.iter())
                        .map(move |(k, v)| {
                            let key = k.rsplit(':').next().unwrap_or(k);
                            format!("{key} {op} {}", v.as_str().unwrap_or(&v.to_string()))
                        })
                })
                .collect();
            format!(
                "{} {} by {principal} if {}",
                s["Effect"].as_str().unwrap_or("?"),
                s["Action"].as_str().unwrap_or("?"),
                conditions.join(" and ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policy_in_one_line() {
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.example/id/X"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "oidc.example/id/X:sub": "system:serviceaccount:ns:sa",
                "oidc.example/id/X:aud": "sts.amazonaws.com"
            }}
        }]});
        assert_eq!(
            describe_trust(&policy),
            "Allow sts:AssumeRoleWithWebIdentity by oidc-provider/oidc.example/id/X if aud StringEquals sts.amazonaws.com and sub StringEquals system:serviceaccount:ns:sa"
        );
    }

    #[test]
    fn shortens_on_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé…");
    }
}
