//! The sandbox and the controller in one process, over loopback: what `irsa demo` runs, and
//! what the controller's end-to-end tests (`crates/controller/tests`, with [`harness`]) and
//! benchmark drive. Everything goes over the real HTTP APIs (kube-rs against the sandbox API
//! server, aws-sdk-rust against the sandbox cloud); only the clock is shared in memory, so that
//! a test can move time forward.
//!
//! A test-support crate (`publish = false`): the `irsa` binary links it only under its `sandbox`
//! feature (for `irsa demo`), and the container image is built without that feature.

pub mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use irsa_aws::{Env, Pipeline, PipelineOptions};
use irsa_controller::{Controller, ControllerOptions, Handle, RunError};
use irsa_core::names::{ROLE_ARN_ANNOTATION, STS_AUDIENCE};
use irsa_k8s::token_request::KubeTokenRequester;
use irsa_sandbox::cloud::{Cloud, CloudConfig, RoleConfig};
use irsa_sandbox::stack::{Stack, StackConfig};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::oneshot;

/// The namespace of the demo's identity.
pub const IDENTITY_NAMESPACE: &str = "irsa-system";
/// The service account whose role mints the credentials.
pub const IDENTITY_SERVICE_ACCOUNT: &str = "puller";
/// The IAM role it assumes.
pub const ROLE_NAME: &str = "irsa-puller";

/// How to start a [`Lab`].
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Start Debian's `docker-registry` (where installed) for real pulls.
    pub registry: bool,
    /// Lifetime of ECR tokens in seconds (AWS: 12 hours).
    pub ecr_token_lifetime_seconds: i64,
    /// The Chainguard assumable identities of the sandbox's exchange.
    pub chainguard_identities: Vec<irsa_sandbox::cloud::ChainguardIdentity>,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            registry: false,
            ecr_token_lifetime_seconds: 12 * 3600,
            chainguard_identities: Vec::new(),
        }
    }
}

/// The sandbox clock as the controller's clock: moving one moves the other.
#[derive(Clone)]
pub struct SandboxClock(Cloud);

impl std::fmt::Debug for SandboxClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SandboxClock")
    }
}

impl irsa_aws::Clock for SandboxClock {
    fn now(&self) -> SystemTime {
        self.0.clock().now_system_time()
    }
}

/// A running sandbox with irsa's CRDs installed.
pub struct Lab {
    /// The sandbox (API server, cloud, maybe a registry).
    pub stack: Stack,
    /// An admin client of the sandbox API server.
    pub client: kube::Client,
    config: kube::Config,
}

/// A controller running in this process, on its own thread and runtime so that killing it
/// ends every task it spawned (watches, the lease elector), as a crash of its pod would.
pub struct RunningController {
    /// What can be seen of it.
    pub handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    kill: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<Option<Result<(), RunError>>>,
}

impl RunningController {
    /// Stops it gracefully (in-flight work finishes, the lease is released) and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.done)
            .await
            .context("the controller did not stop within 30 s")?
            .context("the controller's thread died")?;
        match result {
            Some(r) => Ok(r?),
            None => anyhow::bail!("the controller was killed"),
        }
    }

    /// Kills it on the spot, as a crash would: nothing is released, and every task of the
    /// controller has ended when this returns.
    pub async fn kill(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = (&mut self.done).await;
    }
}

impl Lab {
    /// Starts the sandbox on 127.0.0.1 (free ports) and installs the CRDs.
    pub async fn start(config: LabConfig) -> anyhow::Result<Lab> {
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let aws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stack = Stack::start(
            StackConfig {
                cloud: CloudConfig {
                    ecr_token_lifetime_seconds: config.ecr_token_lifetime_seconds,
                    chainguard: irsa_sandbox::cloud::ChainguardConfig {
                        identities: config.chainguard_identities.clone(),
                        ..Default::default()
                    },
                    ..CloudConfig::default()
                },
                api_token: None,
                registry: config.registry,
            },
            api_listener,
            aws_listener,
        )
        .await
        .context("failed to start the sandbox")?;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&stack.kubeconfig())?;
        let kube_config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = kube::Client::try_from(kube_config.clone())?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in irsa_k8s::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .context("failed to install the CRDs")?;
        }
        Ok(Lab {
            stack,
            client,
            config: kube_config,
        })
    }

    /// A new client (own connection pool), e.g. for a second controller.
    pub fn new_client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config.clone())?)
    }

    /// The sandbox's account id.
    pub fn account(&self) -> String {
        self.stack.cloud.account_id().to_owned()
    }

    /// The sandbox account's ECR host.
    pub fn ecr_host(&self) -> String {
        format!("{}.dkr.ecr.us-east-1.amazonaws.com", self.account())
    }

    /// The role's ARN.
    pub fn role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{ROLE_NAME}", self.account())
    }

    /// The OIDC provider host (the issuer without `https://`).
    pub fn provider(&self) -> String {
        let issuer = self.stack.cloud.issuer().issuer_url();
        issuer.trim_start_matches("https://").to_owned()
    }

    /// The OIDC provider's ARN (the sandbox registers its issuer as a provider).
    pub fn provider_arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:oidc-provider/{}",
            self.account(),
            self.provider()
        )
    }

    /// The trust policy [`Lab::register_role`] gives the role: `namespace/service_account`
    /// through the cluster's OIDC provider, audience `sts.amazonaws.com`.
    pub fn trust_policy(&self, namespace: &str, service_account: &str) -> serde_json::Value {
        let provider = self.provider();
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": self.provider_arn()},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{provider}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                format!("{provider}:aud"): STS_AUDIENCE
            }}
        }]})
    }

    /// Registers the IAM role trusted by `namespace/service_account` (via the cluster's OIDC
    /// provider, audience `sts.amazonaws.com`), allowed to get ECR, ECR Public and Chainguard
    /// tokens. Returns its ARN.
    pub fn register_role(&self, namespace: &str, service_account: &str) -> anyhow::Result<String> {
        self.register_role_named(ROLE_NAME, namespace, service_account)
    }

    /// As [`Lab::register_role`], under the role name `role` (e.g. one role per tenant).
    pub fn register_role_named(
        &self,
        role: &str,
        namespace: &str,
        service_account: &str,
    ) -> anyhow::Result<String> {
        let trust = self.trust_policy(namespace, service_account);
        let arn = self
            .stack
            .cloud
            .put_role(RoleConfig {
                name: role.into(),
                path: "/".into(),
                trust_policy: trust,
                permission_policies: vec![json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                               "ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken",
                               "sts:GetWebIdentityToken"],
                    "Resource": "*"
                }]})],
                max_session_duration: 3600,
            })
            .map_err(|e| anyhow::anyhow!("failed to register the role: {e}"))?;
        Ok(arn)
    }

    /// Creates a namespace with labels (or relabels it when it exists).
    pub async fn namespace(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let ns = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        });
        api.patch(name, &PatchParams::apply("irsa-lab"), &Patch::Apply(&ns))
            .await
            .with_context(|| format!("failed to apply namespace {name}"))?;
        Ok(())
    }

    /// Creates the identity's namespace and service account, annotated with `role_arn`.
    pub async fn identity(
        &self,
        namespace: &str,
        name: &str,
        role_arn: &str,
    ) -> anyhow::Result<()> {
        self.namespace(namespace, &[]).await?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                annotations: Some([(ROLE_ARN_ANNOTATION.to_owned(), role_arn.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        api.patch(
            name,
            &PatchParams::apply("irsa-lab").force(),
            &Patch::Apply(&sa),
        )
        .await
        .with_context(|| format!("failed to apply service account {namespace}/{name}"))?;
        Ok(())
    }

    /// Pipeline options that reach the sandbox cloud and read nothing from the environment.
    pub fn pipeline_options(&self) -> PipelineOptions {
        let url = self.stack.aws_url.clone();
        PipelineOptions {
            region: Some("us-east-1".to_owned()),
            sts_endpoint_url: Some(url.clone()),
            ecr_endpoint_url: Some(url.clone()),
            ecr_public_endpoint_url: Some(url.clone()),
            chainguard_issuer: url,
            env: Env::from_pairs(std::iter::empty::<(&str, &str)>()),
            clock: Arc::new(self.clock()),
            ..PipelineOptions::default()
        }
    }

    /// The sandbox clock, for the controller.
    pub fn clock(&self) -> SandboxClock {
        SandboxClock(self.stack.cloud.clone())
    }

    /// Controller options for the lab: no client-side rate limit, the sandbox clock.
    pub fn controller_options(&self) -> ControllerOptions {
        ControllerOptions {
            qps: 0.0,
            clock: Arc::new(self.clock()),
            ..ControllerOptions::default()
        }
    }

    /// Starts a controller with its own client on its own thread and runtime; `admin`
    /// serves its metrics and probes. The caller's tracing subscriber is used there too.
    pub async fn spawn_controller(
        &self,
        options: ControllerOptions,
        admin: Option<tokio::net::TcpListener>,
    ) -> anyhow::Result<RunningController> {
        self.spawn_controller_with(options, self.pipeline_options(), admin)
            .await
    }

    /// Like [`Lab::spawn_controller`], with the AWS side reached through `pipeline_options`
    /// (moto instead of the sandbox cloud, for instance).
    pub async fn spawn_controller_with(
        &self,
        options: ControllerOptions,
        pipeline_options: PipelineOptions,
        admin: Option<tokio::net::TcpListener>,
    ) -> anyhow::Result<RunningController> {
        let config = self.config.clone();
        let admin = admin.map(|l| l.into_std()).transpose()?;
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let (started_tx, started) = oneshot::channel::<anyhow::Result<Handle>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let (kill, killed) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("irsa-controller".to_owned())
            .spawn(move || {
                let _subscriber = tracing::dispatcher::set_default(&dispatch);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = started_tx.send(Err(e.into()));
                        return;
                    }
                };
                let result = runtime.block_on(async move {
                    let setup = async {
                        let client = kube::Client::try_from(config)?;
                        let pipeline = Pipeline::new(pipeline_options).await?;
                        let admin = admin.map(tokio::net::TcpListener::from_std).transpose()?;
                        anyhow::Ok((client, pipeline, admin))
                    };
                    let (client, pipeline, admin) = match setup.await {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return None;
                        }
                    };
                    let requester = Arc::new(KubeTokenRequester::new(client.clone()));
                    let controller = Controller::new(client, pipeline, requester, options);
                    let _ = started_tx.send(Ok(controller.handle()));
                    let run = controller.run(admin, async move {
                        let _ = stopped.await;
                    });
                    tokio::select! {
                        result = run => Some(result),
                        _ = killed => None,
                    }
                });
                // Dropping the runtime ends every task the controller spawned.
                drop(runtime);
                let _ = done_tx.send(result);
            })?;
        let handle = started
            .await
            .context("the controller's thread died while starting")??;
        Ok(RunningController {
            handle,
            stop: Some(stop),
            kill: Some(kill),
            done,
        })
    }
}
