//! `irsa demo --argocd`: Argo CD's workload-identity guide on the sandbox. Two projects
//! (production, staging), each with its service account `argocd-project-<p>` and an IAM role
//! that may read only that project's repositories, and one repository Secret each in the guide's
//! format; irsa's controller (`--argocd-namespace argocd`) fills them. Every claim is read back:
//! filled, refreshed, isolated at the registry, kept through an STS/ECR outage and recovered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use irsa_controller::ControllerOptions;
use irsa_controller::argocd::{Allowed, ArgoCdOptions, STATUS_ANNOTATION};
use irsa_core::names::ROLE_ARN_ANNOTATION;
use irsa_core::secret::SecretString;
use irsa_sandbox::cloud::{CloudService, RoleConfig, http_request, push_image};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{Console, Done, ECR_TOKEN_LIFETIME_SECS, POLL, RECOVERY_JUMP, REFRESH_JUMP, shorten};
use crate::Verdict;
use crate::sandbox::{on_path, wait_for_signal};
use irsa_lab::{Lab, LabConfig, RunningController};

/// Argo CD's namespace.
const ARGOCD: &str = "argocd";
/// The guide's two projects.
const PROJECTS: [&str; 2] = ["production", "staging"];
/// How long any wait may take.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Step {
    SetUp,
    Filled,
    Refresh,
    Isolated,
    Outage,
    Recovery,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::SetUp,
        Step::Filled,
        Step::Refresh,
        Step::Isolated,
        Step::Outage,
        Step::Recovery,
    ];

    fn label(self) -> &'static str {
        match self {
            Step::SetUp => "0 set-up",
            Step::Filled => "1 filled",
            Step::Refresh => "2 refresh",
            Step::Isolated => "3 isolated",
            Step::Outage => "4 outage",
            Step::Recovery => "5 recovery",
        }
    }
}

fn secret_name(project: &str) -> String {
    format!("{project}-charts")
}

fn service_account(project: &str) -> String {
    format!("argocd-project-{project}")
}

fn role_name(project: &str) -> String {
    format!("argocd-{project}")
}

/// The project's repository in the registry (its role may read `<project>/*` only).
fn repository(project: &str) -> String {
    format!("{project}/app")
}

/// What a repository Secret holds when read back.
struct Filled {
    username: String,
    password: SecretString,
    status: String,
}

struct ArgoDemo {
    lab: Lab,
    controller: Option<RunningController>,
    console: Console,
    /// The password each project's Secret held when last verified.
    passwords: BTreeMap<&'static str, SecretString>,
}

pub(super) async fn demo(
    keep_running: bool,
    state_dir: &std::path::Path,
) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let lab = Lab::start(LabConfig {
        registry: on_path("docker-registry"),
        ecr_token_lifetime_seconds: ECR_TOKEN_LIFETIME_SECS,
        ..LabConfig::default()
    })
    .await?;
    let mut demo = ArgoDemo {
        lab,
        controller: None,
        console: Console::new(),
        passwords: BTreeMap::new(),
    };
    demo.print_header();
    let mut failed = None;
    for step in Step::ALL {
        demo.console.begin(step.label());
        let t = Instant::now();
        let outcome = match step {
            Step::SetUp => demo.set_up().await,
            Step::Filled => demo.filled().await,
            Step::Refresh => demo.refresh().await,
            Step::Isolated => demo.isolated().await,
            Step::Outage => demo.outage().await,
            Step::Recovery => demo.recovery().await,
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
    if keep_running {
        let paths = demo.lab.stack.write_state(state_dir)?;
        println!("\nthe sandbox and the controller keep running (Ctrl-C stops them):");
        println!(
            "  export KUBECONFIG={}   # or: source {}",
            paths.kubeconfig.display(),
            paths.env.display()
        );
        println!("  kubectl get secrets -n {ARGOCD} -L argocd.argoproj.io/secret-type");
        wait_for_signal().await;
    }
    if let Some(controller) = demo.controller.take() {
        controller.stop().await?;
    }
    demo.lab.stack.shutdown().await;
    Ok(verdict)
}

impl ArgoDemo {
    fn print_header(&self) {
        let stack = &self.lab.stack;
        println!(
            "irsa demo --argocd: a Kubernetes API server, AWS (IAM, STS, ECR) and irsa's controller serving Argo CD, in this process"
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
                "  registry         not started: docker-registry is not installed (apt-get install docker-registry); isolation is shown at the registry's token service only"
            ),
        }
        println!(
            "  ECR host         {}  (tokens live {} min)",
            self.lab.ecr_host(),
            ECR_TOKEN_LIFETIME_SECS / 60
        );
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.lab.client.clone(), ARGOCD)
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

    async fn set_up(&mut self) -> anyhow::Result<Done> {
        self.lab.namespace(ARGOCD, &[]).await?;
        let account = self.lab.account();
        let mut roles = Vec::new();
        for p in PROJECTS {
            // The project's role reads only its own repositories (`<project>/*`).
            let arn = self
                .lab
                .stack
                .cloud
                .put_role(RoleConfig {
                    name: role_name(p),
                    path: "/".into(),
                    trust_policy: self.lab.trust_policy(ARGOCD, &service_account(p)),
                    permission_policies: vec![json!({"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                        {"Effect": "Allow",
                         "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                         "Resource": format!("arn:aws:ecr:us-east-1:{account}:repository/{p}/*")},
                    ]})],
                    max_session_duration: 3600,
                })
                .map_err(|e| anyhow!("failed to register role {}: {e}", role_name(p)))?;
            self.service_account(p, &arn).await?;
            roles.push(format!(
                "{} (trusted by {ARGOCD}/{}, reads {p}/*)",
                role_name(p),
                service_account(p)
            ));
        }
        self.print_above(&format!("  IAM roles        {}\n", roles.join(", ")));
        for p in PROJECTS {
            self.repository_secret(p).await?;
        }
        self.console.progress("starting the controller");
        let options = ControllerOptions {
            argocd: Some(ArgoCdOptions {
                namespace: ARGOCD.to_owned(),
                pipeline: self.lab.pipeline_options(),
                allowed: Allowed::default(),
            }),
            ..self.lab.controller_options()
        };
        let controller = self.lab.spawn_controller(options, None).await?;
        let ready = tokio::time::timeout(PATIENCE, controller.handle.wait_ready()).await;
        self.controller = Some(controller);
        ensure!(
            matches!(ready, Ok(true)),
            "the controller did not become ready (every watch listed) within {} s",
            PATIENCE.as_secs()
        );
        Ok(Done::Verified(format!(
            "namespace {ARGOCD}, projects {}: service accounts {ARGOCD}/{} and {ARGOCD}/{} (role annotations), repository Secrets {} and {} (type helm, enableOCI, useWorkloadIdentity, workloadIdentityProvider aws, project), controller --argocd-namespace {ARGOCD} ready",
            PROJECTS.join(" and "),
            service_account(PROJECTS[0]),
            service_account(PROJECTS[1]),
            secret_name(PROJECTS[0]),
            secret_name(PROJECTS[1]),
        )))
    }

    async fn service_account(&self, project: &str, role_arn: &str) -> anyhow::Result<()> {
        let name = service_account(project);
        let sa = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ARGOCD,
                         "annotations": {ROLE_ARN_ANNOTATION: role_arn}},
        });
        Api::<ServiceAccount>::namespaced(self.lab.client.clone(), ARGOCD)
            .patch(&name, &PatchParams::apply("irsa-demo"), &Patch::Apply(&sa))
            .await
            .with_context(|| format!("failed to create service account {ARGOCD}/{name}"))?;
        Ok(())
    }

    /// The guide's repository Secret for `project`, as a user applies it.
    async fn repository_secret(&self, project: &str) -> anyhow::Result<()> {
        let name = secret_name(project);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ARGOCD,
                         "labels": {"argocd.argoproj.io/secret-type": "repository"}},
            "stringData": {
                "name": name,
                "type": "helm",
                "url": self.lab.ecr_host(),
                "enableOCI": "true",
                "project": project,
                "useWorkloadIdentity": "true",
                "workloadIdentityProvider": "aws",
            },
        });
        self.secrets()
            .patch(
                &name,
                &PatchParams::apply("irsa-demo"),
                &Patch::Apply(&secret),
            )
            .await
            .with_context(|| format!("failed to create repository Secret {ARGOCD}/{name}"))?;
        Ok(())
    }

    /// Project `p`'s Secret as read back: the credentials and the status, when both are there.
    async fn read(&self, project: &str) -> anyhow::Result<Option<Filled>> {
        let name = secret_name(project);
        let secret = self
            .secrets()
            .get(&name)
            .await
            .with_context(|| format!("failed to read Secret {ARGOCD}/{name}"))?;
        let text = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        };
        let status = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STATUS_ANNOTATION))
            .cloned();
        Ok(match (text("username"), text("password"), status) {
            (Some(username), Some(password), Some(status)) => Some(Filled {
                username,
                password: SecretString::from(password),
                status,
            }),
            _ => None,
        })
    }

    /// The status annotation of `project`'s Secret, if any.
    async fn status(&self, project: &str) -> anyhow::Result<Option<String>> {
        let name = secret_name(project);
        let secret = self
            .secrets()
            .get(&name)
            .await
            .with_context(|| format!("failed to read Secret {ARGOCD}/{name}"))?;
        Ok(secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STATUS_ANNOTATION))
            .cloned())
    }

    /// Waits until every project's Secret is `Ready` with a password other than the last one
    /// verified (`changed`) or any (`!changed`); returns what was read.
    async fn wait_ready(
        &self,
        what: &str,
        changed: bool,
    ) -> anyhow::Result<BTreeMap<&'static str, Filled>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut done = BTreeMap::new();
            let mut last = String::new();
            for p in PROJECTS {
                match self.read(p).await? {
                    Some(f)
                        if f.status.starts_with("Ready")
                            && (!changed || Some(&f.password) != self.passwords.get(p)) =>
                    {
                        done.insert(p, f);
                    }
                    Some(f) => last = format!("{}: {}", secret_name(p), shorten(&f.status, 160)),
                    None => {
                        let status = self
                            .status(p)
                            .await?
                            .unwrap_or_else(|| "no status yet".into());
                        last =
                            format!("{}: not filled ({})", secret_name(p), shorten(&status, 160));
                    }
                }
            }
            self.console
                .progress(&format!("{what} {}/{}", done.len(), PROJECTS.len()));
            if done.len() == PROJECTS.len() {
                return Ok(done);
            }
            if Instant::now() > deadline {
                bail!("not {what} within {} s; {last}", PATIENCE.as_secs());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn remember(&mut self, filled: BTreeMap<&'static str, Filled>) {
        self.passwords = filled.into_iter().map(|(p, f)| (p, f.password)).collect();
    }

    async fn filled(&mut self) -> anyhow::Result<Done> {
        let filled = self.wait_ready("filled", false).await?;
        for (p, f) in &filled {
            ensure!(
                f.username == "AWS",
                "{}: username {:?}, not AWS",
                secret_name(p),
                f.username
            );
            let who = format!("service account {ARGOCD}/{}", service_account(p));
            ensure!(
                f.status.contains(&who) && f.status.contains(&role_name(p)),
                "{}: the status does not name {who} and role {}: {}",
                secret_name(p),
                role_name(p),
                f.status
            );
        }
        let exchanges = self.exchanges();
        ensure!(
            exchanges == 2,
            "{exchanges} upstream exchanges for 2 project roles, expected 2"
        );
        self.remember(filled);
        Ok(Done::Verified(format!(
            "{} and {}: username AWS and a password, irsa.dev/status Ready as {ARGOCD}/{} and {ARGOCD}/{}; 2 upstream exchanges (one per project role)",
            secret_name(PROJECTS[0]),
            secret_name(PROJECTS[1]),
            service_account(PROJECTS[0]),
            service_account(PROJECTS[1]),
        )))
    }

    async fn refresh(&mut self) -> anyhow::Result<Done> {
        let before = self.exchanges();
        self.lab.stack.cloud.advance(REFRESH_JUMP);
        self.resync();
        let filled = self.wait_ready("refreshed", true).await?;
        self.remember(filled);
        let exchanges = self.exchanges() - before;
        ensure!(
            exchanges == 2,
            "{exchanges} upstream exchanges for one refresh of 2 projects, expected 2"
        );
        Ok(Done::Verified(format!(
            "clock +{} min (refresh at half of the {} min token lifetime): 2/2 Secrets have a new password, 2 more exchanges",
            REFRESH_JUMP.as_secs() / 60,
            ECR_TOKEN_LIFETIME_SECS / 60
        )))
    }

    async fn isolated(&mut self) -> anyhow::Result<Done> {
        let [production, staging] = PROJECTS;
        let (prod_pw, staging_pw) = (
            self.passwords
                .get(production)
                .context("no production password")?
                .clone(),
            self.passwords
                .get(staging)
                .context("no staging password")?
                .clone(),
        );
        // At the registry's token service: what each credential may do with each repository.
        let own = self.granted(&repository(production), &prod_pw).await?;
        ensure!(
            own == ["pull"],
            "production's credential may not pull {}: granted {own:?}",
            repository(production)
        );
        let own = self.granted(&repository(staging), &staging_pw).await?;
        ensure!(
            own == ["pull"],
            "staging's credential may not pull {}: granted {own:?}",
            repository(staging)
        );
        let cross = self.granted(&repository(production), &staging_pw).await?;
        ensure!(
            cross.is_empty(),
            "staging's credential may pull {}: granted {cross:?}",
            repository(production)
        );
        let Some(registry) = &self.lab.stack.registry else {
            return Ok(Done::Verified(format!(
                "registry token service: production's credential may pull {}, staging's may pull {} but nothing of {} (docker-registry not installed: no pull)",
                repository(production),
                repository(staging),
                repository(production)
            )));
        };
        // At the registry itself: an image in each project's repository, read as a client does.
        let seed = self
            .lab
            .stack
            .cloud
            .registry_bearer_token(
                "irsa-demo-seed",
                &[
                    &format!("repository:{}:pull,push", repository(production)),
                    &format!("repository:{}:pull,push", repository(staging)),
                ],
            )
            .map_err(|e| anyhow!("failed to mint a push token: {e}"))?;
        for p in PROJECTS {
            push_image(&registry.url(), &repository(p), "v1", &seed)
                .await
                .with_context(|| {
                    format!(
                        "failed to push {}:v1\n{}",
                        repository(p),
                        registry.log_tail()
                    )
                })?;
        }
        let url = registry.url();
        let code = self
            .manifest(&url, &repository(production), &prod_pw)
            .await?;
        ensure!(
            code == 200,
            "production's credential read {}:v1 with HTTP {code}",
            repository(production)
        );
        let code = self
            .manifest(&url, &repository(staging), &staging_pw)
            .await?;
        ensure!(
            code == 200,
            "staging's credential read {}:v1 with HTTP {code}",
            repository(staging)
        );
        let code = self
            .manifest(&url, &repository(production), &staging_pw)
            .await?;
        ensure!(
            code == 401 || code == 403,
            "staging's credential read {}:v1 with HTTP {code}: the registry does not isolate the projects",
            repository(production)
        );
        Ok(Done::Verified(format!(
            "at {} (docker-registry): production's credential reads {}:v1, staging's reads {}:v1 and is refused {}:v1 (HTTP {code}; its role reads {}/* only)",
            registry.host(),
            repository(production),
            repository(staging),
            repository(production),
            staging
        )))
    }

    /// The actions the registry token service grants `AWS:password` on `repository`.
    async fn granted(
        &self,
        repository: &str,
        password: &SecretString,
    ) -> anyhow::Result<Vec<String>> {
        let service = &self.lab.stack.cloud.registry_auth_config().service;
        let realm = format!(
            "{}/registry/token",
            self.lab.stack.aws_url.trim_end_matches('/')
        );
        let token = bearer(
            &realm,
            service,
            &format!("repository:{repository}:pull"),
            password,
        )
        .await?;
        let claims = jwt_claims(&token)?;
        Ok(claims["access"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["name"] == repository)
            .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect())
    }

    /// A registry client's read of `repository:v1`: the registry's 401 challenge, a token from
    /// the realm it names with `AWS:password`, then the manifest with that token. The status.
    async fn manifest(
        &self,
        registry_url: &str,
        repository: &str,
        password: &SecretString,
    ) -> anyhow::Result<u16> {
        let url = format!("{registry_url}/v2/{repository}/manifests/v1");
        let accept = ("accept", "application/vnd.oci.image.manifest.v1+json");
        let challenge = http_request("GET", &url, &[accept], Vec::new()).await?;
        ensure!(
            challenge.status == 401,
            "the registry answered {} without credentials: it does not check them",
            challenge.status
        );
        let header = challenge
            .header("www-authenticate")
            .context("the registry's 401 names no token service (no WWW-Authenticate)")?;
        let params = challenge_params(header);
        let param = |key: &str| params.get(key).cloned();
        let realm = param("realm").context("no realm in the registry's challenge")?;
        let service = param("service").context("no service in the registry's challenge")?;
        let scope = param("scope").context("no scope in the registry's challenge")?;
        let token = bearer(&realm, &service, &scope, password).await?;
        let auth = format!("Bearer {token}");
        let read =
            http_request("GET", &url, &[accept, ("authorization", &auth)], Vec::new()).await?;
        Ok(read.status)
    }

    fn print_above(&self, text: &str) {
        self.console.print_above(text);
    }

    async fn outage(&mut self) -> anyhow::Result<Done> {
        let faults = self.lab.stack.cloud.faults();
        faults.set_outage(CloudService::Sts, true);
        faults.set_outage(CloudService::Ecr, true);
        self.lab.stack.cloud.advance(REFRESH_JUMP);
        self.resync();
        let deadline = Instant::now() + PATIENCE;
        let mut statuses = BTreeMap::new();
        while statuses.len() < PROJECTS.len() {
            for p in PROJECTS {
                if let Some(s) = self.status(p).await?
                    && s.starts_with("Error")
                {
                    statuses.insert(p, s);
                }
            }
            self.console
                .progress(&format!("failing {}/{}", statuses.len(), PROJECTS.len()));
            if Instant::now() > deadline {
                bail!(
                    "the refresh during the outage was not reported within {} s: {:?}",
                    PATIENCE.as_secs(),
                    statuses
                );
            }
            tokio::time::sleep(POLL).await;
        }
        for (p, status) in &statuses {
            ensure!(
                status.contains("last good credentials stay"),
                "{}: the status does not say the last good credentials stay: {status}",
                secret_name(p)
            );
            let kept = self.read(p).await?.map(|f| f.password);
            ensure!(
                kept.as_ref() == self.passwords.get(p),
                "{}: the password changed or went during the outage",
                secret_name(p)
            );
        }
        // The last good credential still works while the refresh fails.
        let own = self
            .granted(
                &repository(PROJECTS[0]),
                self.passwords.get(PROJECTS[0]).context("no password")?,
            )
            .await?;
        ensure!(
            own == ["pull"],
            "the last good production credential is refused during the outage: {own:?}"
        );
        let status = statuses
            .get(PROJECTS[0])
            .map(|s| shorten(s, 110))
            .unwrap_or_default();
        Ok(Done::Verified(format!(
            "STS and ECR down, clock +{} min: 2/2 Secrets keep their last good credentials (still accepted), irsa.dev/status {status}",
            REFRESH_JUMP.as_secs() / 60
        )))
    }

    async fn recovery(&mut self) -> anyhow::Result<Done> {
        let before = self.exchanges();
        self.lab.stack.cloud.faults().clear();
        // The credential stores back off after a failure, in sandbox-clock time.
        self.lab.stack.cloud.advance(RECOVERY_JUMP);
        self.resync();
        let filled = self.wait_ready("recovered", true).await?;
        self.remember(filled);
        let exchanges = self.exchanges() - before;
        ensure!(
            exchanges == 2,
            "{exchanges} upstream exchanges for the recovery of 2 projects, expected 2"
        );
        Ok(Done::Verified(format!(
            "outage over, clock +{} min (past the retry backoff): 2 fresh exchanges, 2/2 Secrets Ready with new passwords",
            RECOVERY_JUMP.as_secs() / 60
        )))
    }
}

/// A bearer token from the registry token service `realm` for `scope`, with `AWS:password`.
async fn bearer(
    realm: &str,
    service: &str,
    scope: &str,
    password: &SecretString,
) -> anyhow::Result<String> {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", password.expose()));
    let auth = format!("Basic {basic}");
    let url = format!("{realm}?service={service}&scope={scope}");
    let answer = http_request("GET", &url, &[("authorization", &auth)], Vec::new()).await?;
    ensure!(
        answer.status == 200,
        "the registry token service refused the credential: HTTP {}",
        answer.status
    );
    let body: Value =
        serde_json::from_slice(&answer.body).context("the token service answered no JSON")?;
    body["token"]
        .as_str()
        .or(body["access_token"].as_str())
        .map(str::to_owned)
        .context("the token service answered no token")
}

/// The claims of a JWT, unverified (the registry verifies it; this reads what it grants).
fn jwt_claims(jwt: &str) -> anyhow::Result<Value> {
    let payload = jwt.split('.').nth(1).context("the token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the token's claims are not base64url")?;
    serde_json::from_slice(&bytes).context("the token's claims are not JSON")
}

/// The parameters of a `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge
/// (quoted values may hold commas: `scope="repository:a:pull,push"`).
fn challenge_params(header: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut rest = header.trim();
    if let Some((scheme, after)) = rest.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        rest = after;
    }
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((v, a)) => (v, a),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = after;
    }
    params
}
