//! The harness of the controller's end-to-end tests (`crates/controller/tests`, and the
//! `irsa controller` process test in `crates/cli/tests`): a [`Lab`] with the demo identity,
//! helpers that read what the controller wrote, and waits on conditions with deadlines (never
//! sleeps for a fixed time). Failures panic with what was awaited, as a test expects.
//! `use irsa_lab::harness::*;` brings everything a test needs.

use std::future::Future;
use std::time::Duration;

pub use irsa_controller::ControllerOptions;
pub use irsa_controller::lease::LeaseConfig;
pub use irsa_sandbox::apiserver::faults::ErrorRule;
pub use irsa_sandbox::cloud::{ChainguardIdentity, CloudService};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;

pub use crate::{IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, Lab, LabConfig, RunningController};
use irsa_k8s::{ClusterPullSecret, PullSecret};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
pub use serde_json::{Value, json};

/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A started [`Lab`] with the demo identity (role, namespace and service account).
pub struct Env {
    /// The lab.
    pub lab: Lab,
}

/// Polls `f` until it yields `Some`, failing the test with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Env {
    /// A lab with the default [`LabConfig`].
    pub async fn start() -> Env {
        Self::start_with(LabConfig::default()).await
    }

    /// A lab with `config`; `IRSA_LOG` set turns on test logging.
    pub async fn start_with(config: LabConfig) -> Env {
        let _ = tracing_subscriber_init();
        let lab = Lab::start(config).await.expect("lab");
        let role = lab
            .register_role(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT)
            .expect("role");
        lab.identity(IDENTITY_NAMESPACE, IDENTITY_SERVICE_ACCOUNT, &role)
            .await
            .expect("identity");
        Env { lab }
    }

    /// A controller with the lab's options, once ready.
    pub async fn controller(&self) -> RunningController {
        self.controller_with(self.lab.controller_options()).await
    }

    /// A controller with `options` (start from `lab.controller_options()`), once ready.
    pub async fn controller_with(&self, options: ControllerOptions) -> RunningController {
        let c = self
            .lab
            .spawn_controller(options, None)
            .await
            .expect("controller");
        assert!(
            tokio::time::timeout(DEADLINE, c.handle.wait_ready())
                .await
                .expect("ready in time"),
            "controller ready"
        );
        c
    }

    /// The ClusterPullSecret API.
    pub fn cps_api(&self) -> Api<ClusterPullSecret> {
        Api::all(self.lab.client.clone())
    }

    /// The PullSecret API of namespace `ns`.
    pub fn ps_api(&self, ns: &str) -> Api<PullSecret> {
        Api::namespaced(self.lab.client.clone(), ns)
    }

    /// Applies ClusterPullSecret `name` with `spec` (server-side, forced).
    pub async fn apply_cps(&self, name: &str, spec: Value) {
        let obj = json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "ClusterPullSecret",
            "metadata": {"name": name}, "spec": spec,
        });
        self.cps_api()
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .expect("apply ClusterPullSecret");
    }

    /// Applies PullSecret `ns/name` with `spec` (server-side, forced).
    pub async fn apply_ps(&self, ns: &str, name: &str, spec: Value) {
        let obj = json!({
            "apiVersion": "irsa.dev/v1alpha1", "kind": "PullSecret",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        });
        self.ps_api(ns)
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&obj),
            )
            .await
            .expect("apply PullSecret");
    }

    /// Deletes ClusterPullSecret `name` and waits until it is gone (finalizer done).
    pub async fn delete_cps(&self, name: &str) {
        self.cps_api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete ClusterPullSecret");
        let api = self.cps_api();
        eventually(&format!("ClusterPullSecret {name} gone"), || {
            let api = api.clone();
            async move { api.get_opt(name).await.unwrap().is_none().then_some(()) }
        })
        .await;
    }

    /// Secret `ns/name`, if it exists.
    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.lab.client.clone(), ns)
            .get_opt(name)
            .await
            .expect("get secret")
    }

    /// Waits until Secret `ns/name` exists.
    pub async fn wait_secret(&self, ns: &str, name: &str) -> Secret {
        eventually(&format!("secret {ns}/{name}"), || self.secret(ns, name)).await
    }

    /// Waits until Secret `ns/name` no longer exists.
    pub async fn wait_gone(&self, ns: &str, name: &str) {
        eventually(&format!("secret {ns}/{name} deleted"), || async {
            self.secret(ns, name).await.is_none().then_some(())
        })
        .await;
    }

    /// ClusterPullSecret `name`.
    pub async fn cps(&self, name: &str) -> ClusterPullSecret {
        self.cps_api()
            .get(name)
            .await
            .expect("get ClusterPullSecret")
    }

    /// Waits until the status says Ready=True with `summary` targets (`ready/desired`).
    pub async fn wait_ready(&self, name: &str, summary: &str) -> ClusterPullSecret {
        eventually(&format!("{name} Ready with {summary}"), || async {
            let cps = self.cps(name).await;
            let status = cps.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let s = status.targets.as_ref()?.summary.as_deref()?;
            (ready && s == summary).then_some(cps.clone())
        })
        .await
    }

    /// The status condition `type_` of ClusterPullSecret `name`: (status, reason, message).
    pub async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let cps = self.cps(name).await;
        cps.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }
}

impl Env {
    /// The status condition `type_` of the PullSecret `ns/name`.
    pub async fn ps_condition(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
    ) -> Option<(String, String, String)> {
        let ps = self.ps_api(ns).get(name).await.expect("get PullSecret");
        ps.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason, c.message))
    }

    /// Waits until condition `type_` of ClusterPullSecret `name` has `status` and `reason`.
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> String {
        eventually(&format!("{name} {type_}={status} ({reason})"), || async {
            let (s, r, m) = self.condition(name, type_).await?;
            (s == status && r == reason).then_some(m)
        })
        .await
    }

    /// Every Event (events.k8s.io/v1) about the object named `regarding`: (reason, note).
    pub async fn events_about(&self, regarding: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::all(self.lab.client.clone());
        api.list(&Default::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// A ServiceAccount.
    pub async fn service_account(&self, ns: &str, name: &str) -> ServiceAccount {
        Api::<ServiceAccount>::namespaced(self.lab.client.clone(), ns)
            .get(name)
            .await
            .expect("get service account")
    }

    /// The `username:password` written in `ns/regcred` for the sandbox ECR host.
    pub async fn auth_in(&self, ns: &str) -> String {
        docker_auth(&self.wait_secret(ns, "regcred").await, &self.lab.ecr_host())
    }

    /// Writes the sandbox API server served so far (create, update, patch, delete of any
    /// resource), from its request counters.
    pub fn api_writes(&self) -> u64 {
        api_writes(&self.lab)
    }

    /// ECR tokens the sandbox cloud handed out.
    pub fn ecr_tokens(&self) -> u64 {
        self.lab
            .stack
            .cloud
            .counters()
            .get("ecr", "GetAuthorizationToken", "ok")
    }
}

/// See [`Env::api_writes`].
pub fn api_writes(lab: &Lab) -> u64 {
    lab.stack
        .api
        .counters()
        .render()
        .lines()
        .filter(|l| l.starts_with("irsa_sandbox_requests_total{service=\"kubernetes\""))
        .filter(|l| {
            ["create ", "update ", "patch ", "delete "]
                .iter()
                .any(|v| l.contains(&format!("action=\"{v}")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Reconciliations of `kind` (`ClusterPullSecret`, `PullSecret`) so far, from the metrics.
pub fn reconciles(c: &RunningController, kind: &str) -> u64 {
    metric(
        &c.handle.metrics().render(0),
        &format!("irsa_reconciles_total{{kind=\"{kind}\"}}"),
    )
}

/// Triggers a resync and waits until a ClusterPullSecret reconciliation finished after it.
pub async fn resync_and_wait(c: &RunningController) {
    let seen = reconciles(c, "ClusterPullSecret");
    c.handle.resync_all();
    eventually("a reconciliation after resync", || async {
        (reconciles(c, "ClusterPullSecret") > seen).then_some(())
    })
    .await;
}

/// The value of `series` (name and labels) in a Prometheus text exposition, 0 if absent.
pub fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Names `prefix-0` .. `prefix-{n-1}`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A ClusterPullSecret spec for the sandbox ECR registry and the demo identity.
pub fn cps_spec(env: &Env, namespaces: Value) -> Value {
    json!({
        "registries": [{"host": env.lab.ecr_host()}],
        "identity": {"serviceAccount": {"namespace": IDENTITY_NAMESPACE, "name": IDENTITY_SERVICE_ACCOUNT}},
        "secretName": "regcred",
        "namespaces": namespaces,
    })
}

/// `username:password` for `host` in a dockerconfigjson secret.
pub fn docker_auth(secret: &Secret, host: &str) -> String {
    use base64::Engine as _;
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let data = &secret.data.as_ref().expect("data")[".dockerconfigjson"];
    let doc: Value = serde_json::from_slice(&data.0).expect("dockerconfigjson");
    let auth = doc["auths"][host]["auth"].as_str().expect("auth for host");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .expect("base64"),
    )
    .expect("utf-8")
}

fn tracing_subscriber_init() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("IRSA_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("IRSA_LOG"))
            .with_test_writer()
            .try_init()
            .map_err(|e| e.to_string().into())
    } else {
        Ok(())
    }
}
