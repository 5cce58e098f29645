//! The links of a pod beyond the webhook's injection: whether each container's user can read
//! the projected token, what the kubelet needs to pull the pod's images (its pull secrets, and
//! what the kubelet reported when it tried), and, for the kubelet credential provider, the
//! node RBAC for the token audience. The pod, its secrets, its events and the namespace's
//! Roles are tenant-written: every value shown is bounded, and the report escapes it.

use std::collections::BTreeSet;

use crate::shell::sh;
use irsa_core::names::{EXPIRES_AT_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, STS_AUDIENCE};
use irsa_core::registry::{self, Registry};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Event, Pod, PodSpec, Secret, SecurityContext, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::cluster::{auth_key_host, kube_error};
use super::report::{Check, Fix, Group, printable};

/// The longest tenant-written value (an event's message, a registry key) doctor shows.
const MAX_SHOWN: usize = 300;
/// At most this many events, secrets' registries or RBAC near misses are listed.
const MAX_LISTED: usize = 8;

/// `value` escaped and cut to `max` characters (with `…` when cut).
fn bounded(value: &str, max: usize) -> String {
    let short: String = value.chars().take(max).collect();
    let shown = printable(&short);
    if short.len() < value.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------------
// token-readable
// ---------------------------------------------------------------------------------------------

/// The projected token file as the kubelet writes it.
///
/// The rule, from the kubelet's source and docs:
/// - `pkg/volume/projected/projected.go` (collectData, serviceAccountToken source):
///   `mode := *s.source.DefaultMode; if mounterArgs.FsUser != nil || mounterArgs.FsGroup != nil
///   { mode = 0600 }`, with the comment "When FsGroup is set, we depend on SetVolumeOwnership to
///   change from 0600 to 0640"; the file is chowned to FsUser (`FileProjection.FsUser`).
///   `defaultMode` defaults to 0644 (API defaulting); a token source has no per-item `mode`.
/// - `pkg/volume/util/util.go` `FsUserFrom`: FsUser is the effective `runAsUser` (container's,
///   else the pod's) when every init and regular container has one and they are all equal;
///   otherwise none. kubernetes.io "Projected Volumes", SecurityContext interactions: "When all
///   containers in a pod have the same runAsUser … the token file has its permission mode set to
///   0600" and is owned by that user.
/// - `pkg/volume/volume_linux.go` `SetVolumeOwnership`: with fsGroup, the files' group becomes
///   fsGroup and a read-only volume's files get `0440` added (0600 → 0640); fsGroup is also a
///   supplementary group of every container's process.
///
/// Without FsUser and fsGroup the file is root:root with `defaultMode`. Upstream
/// amazon-eks-pod-identity-webhook issue #8 is the case this catches: a non-root user, no
/// fsGroup, and a token readable by its owner only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenFile {
    pub mode: u32,
    pub owner: i64,
    pub group: i64,
}

pub(crate) fn token_file(
    default_mode: Option<i32>,
    fs_user: Option<i64>,
    fs_group: Option<i64>,
) -> TokenFile {
    // A negative or oversized defaultMode is refused by validation; read its permission bits.
    let default_mode = default_mode.map(|m| (m as u32) & 0o777).unwrap_or(0o644);
    let mut file = TokenFile {
        mode: if fs_user.is_some() || fs_group.is_some() {
            0o600
        } else {
            default_mode
        },
        owner: fs_user.unwrap_or(0),
        group: 0,
    };
    if let Some(g) = fs_group {
        file.group = g;
        file.mode |= 0o440;
    }
    file
}

/// Who a container's process is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Process {
    /// `runAsUser` (container's, else the pod's); `None`: the image's USER decides.
    pub uid: Option<i64>,
    /// `runAsGroup` (container's, else the pod's).
    pub gid: Option<i64>,
    /// Supplementary groups: the pod's fsGroup and supplementalGroups.
    pub groups: Vec<i64>,
    /// Whether root keeps CAP_DAC_OVERRIDE (not dropped by `capabilities.drop`).
    pub dac_override: bool,
}

/// Whether the process can read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readable {
    Yes(&'static str),
    No,
    /// Only if the image's USER (not in the pod spec) is the owner or root.
    UnlessImageUser,
}

pub(crate) fn readable(file: TokenFile, p: &Process) -> Readable {
    if file.mode & 0o004 != 0 {
        return Readable::Yes("readable by every user");
    }
    let in_group = p.gid == Some(file.group) || p.groups.contains(&file.group);
    if file.mode & 0o040 != 0 && in_group {
        return Readable::Yes("readable by its group");
    }
    match p.uid {
        Some(0) if p.dac_override => Readable::Yes("root (CAP_DAC_OVERRIDE)"),
        Some(u) if u == file.owner && file.mode & 0o400 != 0 => Readable::Yes("its owner"),
        Some(_) => Readable::No,
        None if file.mode & 0o400 != 0 => Readable::UnlessImageUser,
        None => Readable::No,
    }
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// A container of any kind, as far as the token is concerned.
struct Member<'a> {
    name: &'a str,
    security_context: Option<&'a SecurityContext>,
    env: &'a [EnvVar],
    mounts: &'a [VolumeMount],
    ephemeral: bool,
}

/// Init, regular and ephemeral containers.
fn members(spec: &PodSpec) -> Vec<Member<'_>> {
    let mut out: Vec<Member<'_>> = containers(spec)
        .map(|c| Member {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            env: c.env.as_deref().unwrap_or_default(),
            mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            ephemeral: false,
        })
        .collect();
    out.extend(spec.ephemeral_containers.iter().flatten().map(|c| Member {
        name: &c.name,
        security_context: c.security_context.as_ref(),
        env: c.env.as_deref().unwrap_or_default(),
        mounts: c.volume_mounts.as_deref().unwrap_or_default(),
        ephemeral: true,
    }));
    out
}

fn process(pod_spec: &PodSpec, sc: Option<&SecurityContext>) -> Process {
    let pod_sc = pod_spec.security_context.as_ref();
    let mut groups: Vec<i64> = pod_sc.and_then(|s| s.fs_group).into_iter().collect();
    groups.extend(
        pod_sc
            .and_then(|s| s.supplemental_groups.clone())
            .unwrap_or_default(),
    );
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let named = |list: Option<&Vec<String>>, names: &[&str]| {
        list.into_iter().flatten().any(|c| {
            let c = c.to_ascii_uppercase();
            let c = c.strip_prefix("CAP_").unwrap_or(&c).to_owned();
            names.contains(&c.as_str())
        })
    };
    let dropped = named(caps.and_then(|c| c.drop.as_ref()), &["ALL", "DAC_OVERRIDE"]);
    let added = named(caps.and_then(|c| c.add.as_ref()), &["ALL", "DAC_OVERRIDE"]);
    Process {
        uid: sc
            .and_then(|s| s.run_as_user)
            .or(pod_sc.and_then(|s| s.run_as_user)),
        gid: sc
            .and_then(|s| s.run_as_group)
            .or(pod_sc.and_then(|s| s.run_as_group)),
        groups,
        dac_override: !dropped || added,
    }
}

/// The kubelet's FsUser for the pod (`FsUserFrom`), from its init and regular containers: the
/// volume is set up when the pod starts, before any ephemeral container exists.
fn fs_user(spec: &PodSpec) -> Option<i64> {
    let mut uids = containers(spec).map(|c| process(spec, c.security_context.as_ref()).uid);
    let first = uids.next()??;
    uids.all(|u| u == Some(first)).then_some(first)
}

/// The environment variable the webhook points at the token file.
const TOKEN_FILE_ENV: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";

/// `token-readable`: every container whose AWS_WEB_IDENTITY_TOKEN_FILE names a projected
/// service-account token can read it.
pub(crate) fn token_readable(pod: &Pod) -> Check {
    const ID: &str = "token-readable";
    let Some(spec) = &pod.spec else {
        return Check::fail(ID, Group::Kubernetes, "the pod has no spec");
    };
    if spec.os.as_ref().is_some_and(|o| o.name == "windows") {
        return Check::pass(
            ID,
            Group::Kubernetes,
            "a Windows pod: the kubelet sets no Linux owner or mode on the token (every user may read it)",
        );
    }
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let fs_user = fs_user(spec);
    let mut details = Vec::new();
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut checked = 0;
    for c in members(spec) {
        let Some(file_path) = c
            .env
            .iter()
            .find(|e| e.name == TOKEN_FILE_ENV)
            .and_then(|e| e.value.as_deref())
        else {
            continue;
        };
        let dir = file_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let Some(m) = c
            .mounts
            .iter()
            .find(|m| m.mount_path.trim_end_matches('/') == dir)
        else {
            continue;
        };
        let Some(projected) = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .and_then(|v| v.projected.as_ref())
            .filter(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
        else {
            continue;
        };
        checked += 1;
        let file = token_file(projected.default_mode, fs_user, fs_group);
        let p = process(spec, c.security_context);
        let who = match p.uid {
            Some(u) => format!("uid {u}"),
            None => "the image's user".to_owned(),
        };
        let line = format!(
            "{}container {}: {who}; token in volume {} is {:04o} owned by {}:{}",
            if c.ephemeral { "ephemeral " } else { "" },
            bounded(c.name, 63),
            bounded(&m.name, 63),
            file.mode,
            file.owner,
            file.group
        );
        match readable(file, &p) {
            Readable::Yes(why) => details.push(format!("{line}: readable ({why})")),
            Readable::No if c.ephemeral => problems.push(format!(
                "{line}: {who} cannot read it (the owner was chosen before this ephemeral container existed: give it the pod's runAsUser)"
            )),
            Readable::No => problems.push(format!("{line}: {who} cannot read it")),
            Readable::UnlessImageUser => unknown.push(format!(
                "{line}: readable only if the image runs as uid {} or root (no runAsUser in the pod)",
                file.owner
            )),
        }
    }
    if checked == 0 {
        return Check::pass(
            ID,
            Group::Kubernetes,
            format!("no container's {TOKEN_FILE_ENV} names a projected service-account token"),
        );
    }
    if problems.is_empty() && unknown.is_empty() {
        return Check::pass(
            ID,
            Group::Kubernetes,
            "every container's user can read its projected token",
        )
        .details(details);
    }
    // fsGroup makes the kubelet give the file that group and mode 0640, whatever the users.
    let suggested = containers(spec)
        .map(|c| process(spec, c.security_context.as_ref()))
        .find_map(|p| p.gid.or(p.uid))
        .filter(|g| *g != 0)
        .unwrap_or(65532);
    let summary = if problems.is_empty() {
        "a container's user is the image's, and the token is readable by its owner only".to_owned()
    } else {
        format!(
            "{} cannot read the projected token (upstream pod identity webhook issue #8)",
            if problems.len() == 1 {
                "a container's user"
            } else {
                "containers' users"
            }
        )
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    Check::fail(ID, Group::Kubernetes, summary)
        .details(problems)
        .details(unknown)
        .details(details)
        .data("fs_user", json!(fs_user))
        .data("fs_group", json!(fs_group))
        .fix(
            Fix::new(format!(
                "add securityContext.fsGroup to the pod (in its owner's pod template; the pod is then recreated): the kubelet gives the token file group {suggested} and mode 0640, readable by every container"
            ))
            .command(format!(
                "kubectl get pod -n {} {} -o jsonpath='{{.metadata.ownerReferences[*].kind}}/{{.metadata.ownerReferences[*].name}}'   # the owner to edit",
                sh(&namespace),
                sh(&name)
            ))
            .document(json!({"spec": {"securityContext": {"fsGroup": suggested}}})),
        )
}

// ---------------------------------------------------------------------------------------------
// pull-secrets
// ---------------------------------------------------------------------------------------------

/// The registry hosts of the pod's images.
fn image_hosts(spec: &PodSpec) -> Vec<String> {
    let mut hosts: Vec<String> = containers(spec)
        .filter_map(|c| c.image.as_deref())
        .filter_map(|i| registry::parse(i).ok().map(|r| r.host))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `pull-secrets`: the pod's imagePullSecrets exist, are dockerconfigjson, are not irsa-kept
/// secrets past their expiry, and between them hold credentials for the registries of the
/// pod's images that irsa serves (only registry hosts are read and shown, never a
/// credential). Without any, the node (a kubelet credential provider) must pull.
pub(crate) async fn pull_secrets(client: &kube::Client, pod: &Pod, now: i64) -> Check {
    const ID: &str = "pull-secrets";
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(spec) = &pod.spec else {
        return Check::fail(ID, Group::Kubernetes, "the pod has no spec");
    };
    let images = image_hosts(spec);
    let names: Vec<String> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Check::pass(ID, Group::Kubernetes, "no imagePullSecrets: the node pulls")
            .detail(format!(
                "the kubelet's own credentials (or a credential provider such as `irsa credential-provider`) must authenticate to {}",
                images.join(", ")
            ));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut hosts = Vec::new();
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let mut expired = false;
    let mut secrets_json = Vec::new();
    for name in &names {
        let secret = match api.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                problems.push(format!(
                    "imagePullSecret {name} does not exist: the kubelet pulls without it"
                ));
                secrets_json.push(json!({"name": name, "exists": false}));
                continue;
            }
            Err(e) => {
                return Check::error(
                    ID,
                    Group::Kubernetes,
                    format!(
                        "could not read secret {namespace}/{name}: {}",
                        kube_error(&e)
                    ),
                );
            }
        };
        let kind = secret.type_.as_deref().unwrap_or("Opaque");
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson"))
            .map(|b| b.0.as_slice());
        let owned = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY_VALUE);
        let expiry = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_AT_ANNOTATION));
        let config = match (kind, data) {
            ("kubernetes.io/dockerconfigjson", Some(bytes)) => {
                match irsa_core::docker_config::DockerConfig::parse(bytes) {
                    Ok(config) => config,
                    Err(_) => {
                        problems.push(format!(
                            "{name}: its .dockerconfigjson cannot be read (the kubelet ignores it)"
                        ));
                        secrets_json.push(json!({"name": name, "exists": true, "usable": false}));
                        continue;
                    }
                }
            }
            _ => {
                problems.push(format!(
                    "{name} is a {} secret without .dockerconfigjson: the kubelet ignores it",
                    bounded(kind, 80)
                ));
                secrets_json.push(json!({"name": name, "exists": true, "usable": false, "type": bounded(kind, 80)}));
                continue;
            }
        };
        let registries: Vec<String> = config.auths.keys().cloned().collect();
        let mut shown: Vec<String> = registries
            .iter()
            .take(MAX_LISTED)
            .map(|r| bounded(r, 120))
            .collect();
        if registries.len() > MAX_LISTED {
            shown.push(format!("and {} more", registries.len() - MAX_LISTED));
        }
        let mut line = format!("{name}: {}", shown.join(", "));
        if owned {
            match expiry.map(|e| (e, irsa_core::time::parse_rfc3339(e))) {
                Some((e, Some(at))) if at <= now => {
                    expired = true;
                    problems.push(format!(
                        "{name} is kept by irsa and expired at {} ({EXPIRES_AT_ANNOTATION}): the controller has not refreshed it",
                        bounded(e, 40)
                    ));
                }
                Some((e, Some(at))) => line.push_str(&format!(
                    ", kept by irsa, expires {} (in {})",
                    bounded(e, 40),
                    irsa_core::time::human_duration(at - now)
                )),
                Some((e, None)) => line.push_str(&format!(
                    ", kept by irsa, {EXPIRES_AT_ANNOTATION} {} is not an RFC 3339 time",
                    bounded(e, 40)
                )),
                None => line.push_str(", kept by irsa (no expiry annotation)"),
            }
        }
        details.push(line);
        secrets_json.push(json!({"name": name, "exists": true, "usable": true, "registries": shown, "irsa_owned": owned, "expires_at": expiry.map(|e| bounded(e, 40))}));
        hosts.extend(registries);
    }
    for image in &images {
        if hosts.iter().any(|h| auth_key_host(h) == *image) {
            continue;
        }
        match registry::classify_host(image) {
            // Registries irsa serves: a missing secret is why the pull fails.
            Registry::Ecr(_) | Registry::EcrPublic | Registry::Chainguard => {
                problems.push(format!("no imagePullSecret holds credentials for {image}"));
            }
            // Docker Hub, GHCR…: often public, and not irsa's to serve.
            Registry::Other => details.push(format!(
                "{image}: no imagePullSecret for it; irsa does not serve that registry (a public image needs none, a private one needs a secret of its own)"
            )),
        }
    }
    let check = if problems.is_empty() {
        Check::pass(
            ID,
            Group::Kubernetes,
            format!("credentials for {}", images.join(", ")),
        )
    } else {
        let fix = if expired {
            Fix::new("find why the controller stopped refreshing it: the PullSecret's (or ClusterPullSecret's) status and the controller's logs")
                .command("kubectl get pullsecrets,clusterpullsecrets -A")
                .command("kubectl logs -n irsa-system deploy/irsa-controller --tail=50")
        } else {
            Fix::new("let irsa keep a pull secret for the pod's registries in this namespace (a PullSecret), or name an existing one")
                .command(format!("kubectl get secrets -n {} --field-selector type=kubernetes.io/dockerconfigjson", sh(&namespace)))
        };
        Check::fail(ID, Group::Kubernetes, problems.join("; ")).fix(fix)
    };
    check
        .details(details)
        .data("images", json!(images))
        .data("secrets", json!(secrets_json))
}

// ---------------------------------------------------------------------------------------------
// image-pulls
// ---------------------------------------------------------------------------------------------

/// What a kubelet pull error most likely says about the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// 401 / no credentials: no (or an expired) pull secret for that registry, or no credential
    /// from the node's provider.
    Credentials,
    /// 403 / denied: credentials accepted, but not allowed that repository.
    Permissions,
    /// The kubelet could not get a service-account token for its credential provider.
    NodeAudience,
    /// The image or tag does not exist.
    NotFound,
    /// The registry could not be reached.
    Network,
    /// Something else.
    Other,
}

impl Cause {
    fn link(self) -> &'static str {
        match self {
            Cause::Credentials => "pull-secrets",
            Cause::Permissions => "permissions",
            Cause::NodeAudience => "node-audience-rbac",
            Cause::NotFound => "image",
            Cause::Network => "network",
            Cause::Other => "unknown",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Cause::Credentials => {
                "the registry refused the pull as unauthenticated: no pull secret holds credentials for it, or the one named expired (pull-secrets), or the node's credential provider gave none (run with --credential-provider)"
            }
            Cause::Permissions => {
                "the registry knew who pulled but denied the repository: the role's pull permissions (ecr:BatchGetImage, ecr:GetDownloadUrlForLayer) or the repository's policy (permissions)"
            }
            Cause::NodeAudience => {
                "the kubelet could not get the service-account token its credential provider needs: the node RBAC for the token audience (node-audience-rbac, with --credential-provider)"
            }
            Cause::NotFound => {
                "the image or its tag does not exist in that registry: not an identity problem, check the image reference"
            }
            Cause::Network => {
                "the node could not reach the registry (DNS, network, TLS): not an identity problem"
            }
            Cause::Other => "the kubelet's message above says why",
        }
    }
}

/// Maps a kubelet/runtime pull error message to its likely cause.
pub(crate) fn pull_cause(message: &str) -> Cause {
    let m = message.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if any(&[
        "serviceaccounts/token",
        "service account token",
        "token audience",
        "audience",
    ]) {
        Cause::NodeAudience
    } else if any(&[
        "401",
        "unauthorized",
        "no basic auth credentials",
        "authentication required",
        "authorization failed",
        "no credentials",
    ]) {
        Cause::Credentials
    } else if any(&["403", "forbidden", "denied", "access denied"]) {
        Cause::Permissions
    } else if any(&[
        "not found",
        "manifest unknown",
        "404",
        "name unknown",
        "does not exist",
    ]) {
        Cause::NotFound
    } else if any(&[
        "i/o timeout",
        "no such host",
        "connection refused",
        "dial tcp",
        "tls:",
        "x509",
        "context deadline exceeded",
    ]) {
        Cause::Network
    } else {
        Cause::Other
    }
}

/// Whether an event (reason, message) reports a failed image pull.
fn is_pull_failure(reason: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    match reason {
        "ErrImagePull" | "ImagePullBackOff" => true,
        "Failed" => m.contains("pull") || m.contains("image"),
        "BackOff" => m.contains("pulling image"),
        _ => false,
    }
}

/// One failure the kubelet reported.
#[derive(Debug, Clone)]
struct PullFailure {
    source: &'static str,
    reason: String,
    message: String,
    count: i32,
}

fn failures_from(pod: &Pod, events: &[Event]) -> Vec<PullFailure> {
    let uid = pod.metadata.uid.as_deref();
    let mut out: Vec<PullFailure> = events
        .iter()
        .filter(|e| {
            // An event of an earlier pod of the same name is not this pod's.
            match (uid, e.involved_object.uid.as_deref()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        })
        .filter(|e| e.involved_object.kind.as_deref().is_none_or(|k| k == "Pod"))
        .filter_map(|e| {
            let reason = e.reason.clone().unwrap_or_default();
            let message = e.message.clone().unwrap_or_default();
            is_pull_failure(&reason, &message).then_some(PullFailure {
                source: "event",
                reason,
                message,
                count: e.count.unwrap_or(1),
            })
        })
        .collect();
    // The kubelet also writes the latest reason into the container's status.
    let statuses = pod.status.iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    });
    for s in statuses {
        if let Some(w) = s.state.as_ref().and_then(|st| st.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let message = w.message.clone().unwrap_or_default();
            if is_pull_failure(&reason, &message) {
                out.push(PullFailure {
                    source: "status",
                    reason,
                    message: format!("container {}: {message}", s.name),
                    count: 1,
                });
            }
        }
    }
    out
}

/// `image-pulls`: what the kubelet reported when it pulled the pod's images — the pod's
/// ErrImagePull / ImagePullBackOff / Failed events and its containers' waiting reasons — each
/// message shown bounded and escaped, mapped to the link it most likely names.
pub(crate) async fn image_pulls(client: &kube::Client, pod: &Pod) -> Check {
    const ID: &str = "image-pulls";
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let params = ListParams::default()
        .fields(&format!(
            "involvedObject.kind=Pod,involvedObject.name={name}"
        ))
        .limit(500);
    let events = match api.list(&params).await {
        Ok(list) => list.items,
        Err(e) => {
            return Check::error(
                ID,
                Group::Kubernetes,
                format!(
                    "could not list the events of pod {namespace}/{name}: {} (doctor needs list on events in {namespace})",
                    kube_error(&e)
                ),
            );
        }
    };
    // A field selector the server ignored must not pull in other objects' events.
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
        .collect();
    let failures = failures_from(pod, &events);
    if failures.is_empty() {
        return Check::pass(
            ID,
            Group::Kubernetes,
            "the kubelet reported no failed image pull",
        )
        .detail(format!(
            "read {} event(s) of the pod and its containers' statuses (events expire, by default after an hour)",
            events.len()
        ));
    }
    let causes: Vec<Cause> = failures.iter().map(|f| pull_cause(&f.message)).collect();
    // The most telling cause: anything but Other, first by severity of what it names.
    let cause = [
        Cause::NodeAudience,
        Cause::Credentials,
        Cause::Permissions,
        Cause::NotFound,
        Cause::Network,
    ]
    .into_iter()
    .find(|c| causes.contains(c))
    .unwrap_or(Cause::Other);
    let mut details: Vec<String> = failures
        .iter()
        .take(MAX_LISTED)
        .map(|f| {
            format!(
                "{} {}{}: {}",
                f.source,
                bounded(&f.reason, 40),
                if f.count > 1 {
                    format!(" ×{}", f.count)
                } else {
                    String::new()
                },
                bounded(&f.message, MAX_SHOWN)
            )
        })
        .collect();
    if failures.len() > MAX_LISTED {
        details.push(format!("and {} more", failures.len() - MAX_LISTED));
    }
    let shown: Vec<Value> = failures
        .iter()
        .take(MAX_LISTED)
        .map(|f| {
            json!({
                "source": f.source,
                "reason": bounded(&f.reason, 40),
                "count": f.count,
                "message": bounded(&f.message, MAX_SHOWN),
            })
        })
        .collect();
    let fix = match cause {
        Cause::Credentials => Fix::new("give the pod credentials for the registry: an imagePullSecret irsa keeps (a PullSecret), or the kubelet credential provider")
            .command(format!("irsa doctor --pod {}/{} --credential-provider", sh(&namespace), sh(&name)))
            .command(format!("kubectl get secrets -n {} --field-selector type=kubernetes.io/dockerconfigjson", sh(&namespace))),
        Cause::Permissions => Fix::new("allow the role to pull from the repository (irsa policy ecr-pull prints the permissions)")
            .command("irsa policy ecr-pull --repository IMAGE"),
        Cause::NodeAudience => Fix::new("let the nodes request tokens for the credential provider's audience")
            .command(format!("irsa doctor --pod {}/{} --credential-provider", sh(&namespace), sh(&name))),
        Cause::NotFound => Fix::new("correct the image reference (repository and tag) in the pod's owner"),
        Cause::Network => Fix::new("let the node reach the registry (DNS, egress, proxy, CA)"),
        Cause::Other => Fix::new("read the kubelet's message above"),
    };
    Check::fail(
        ID,
        Group::Kubernetes,
        format!(
            "the kubelet could not pull the pod's images: {}",
            cause.explain()
        ),
    )
    .details(details)
    .data("likely", json!(cause.link()))
    .data("failures", json!(shown))
    .fix(fix)
}

// ---------------------------------------------------------------------------------------------
// node-audience-rbac
// ---------------------------------------------------------------------------------------------

/// The verb the NodeRestriction admission plugin authorizes a kubelet's TokenRequest with.
pub(crate) const AUDIENCE_VERB: &str = "request-serviceaccounts-token-audience";
/// The group every kubelet is in.
const NODES_GROUP: &str = "system:nodes";
/// The group every authenticated user is in (a binding to it grants the nodes too).
const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Whether `rule` allows the synthetic authorization check KEP-4412 describes
/// (keps/sig-auth/4412-…/README.md, "Kubernetes API Server (KAS) Changes"):
/// `Verb: request-serviceaccounts-token-audience, Resource: $audience, APIGroup: "" (the service
/// account's), Name: the service account's name, Namespace: the service account's namespace`.
/// RBAC's matching (`rbac/v1` RuleAllows): verb, group and resource equal or `*`;
/// resourceNames empty or naming the service account.
pub(crate) fn rule_allows(rule: &PolicyRule, audience: &str, service_account: &str) -> bool {
    let has = |list: &[String], want: &str| list.iter().any(|v| v == want || v == "*");
    has(&rule.verbs, AUDIENCE_VERB)
        && has(rule.api_groups.as_deref().unwrap_or_default(), "")
        && has(rule.resources.as_deref().unwrap_or_default(), audience)
        && rule
            .resource_names
            .as_ref()
            .is_none_or(|n| n.is_empty() || n.iter().any(|v| v == service_account))
}

/// Which nodes a binding's subject stands for: all of them, one, or none.
fn subject_nodes(s: &Subject) -> Option<Option<&str>> {
    match (s.kind.as_str(), s.name.as_str()) {
        ("Group", NODES_GROUP | AUTHENTICATED_GROUP) => Some(None),
        ("User", n) => n.strip_prefix("system:node:").map(Some),
        _ => None,
    }
}

/// What the RBAC says, as the check reads it.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    /// Bindings that grant every node: `Kind/name -> Kind/role`.
    pub all_nodes: Vec<String>,
    /// Bindings that grant named nodes only, with their node names.
    pub some_nodes: Vec<(String, Vec<String>)>,
    /// Near misses: rules with the verb that miss the audience or the service account.
    pub near: Vec<String>,
}

/// The RBAC objects read, cluster-wide and in the service account's namespace.
#[derive(Debug, Default)]
pub(crate) struct Rbac {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// The grants of `verb` on `audience` for service account `namespace/name` to nodes. Roles
/// and RoleBindings of the namespace count: the authorization check carries the service
/// account's namespace (KEP-4412), so a RoleBinding there (to a Role or a ClusterRole) grants.
pub(crate) fn grants(rbac: &Rbac, namespace: &str, name: &str, audience: &str) -> Grants {
    let mut out = Grants::default();
    let near = |rules: &[PolicyRule], role: &str, out: &mut Grants| {
        for r in rules {
            if r.verbs.iter().any(|v| v == AUDIENCE_VERB || v == "*")
                && !rule_allows(r, audience, name)
            {
                // A namespace's Roles are the tenant's: their lists are cut, like any value.
                let list = |l: &[String]| bounded(&format!("{l:?}"), MAX_SHOWN);
                out.near.push(format!(
                    "{role} allows {AUDIENCE_VERB} on resources {}{} — not audience {audience:?} for service account {name}",
                    list(r.resources.as_deref().unwrap_or_default()),
                    r.resource_names
                        .as_ref()
                        .filter(|n| !n.is_empty())
                        .map(|n| format!(" resourceNames {}", list(n)))
                        .unwrap_or_default()
                ));
            }
        }
    };
    let cluster_role = |n: &str| {
        rbac.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(n))
    };
    let mut seen_near = BTreeSet::new();
    let mut consider = |binding: String,
                        role: String,
                        rules: &[PolicyRule],
                        subjects: &[Subject],
                        out: &mut Grants| {
        if !rules.iter().any(|r| rule_allows(r, audience, name)) {
            if seen_near.insert(role.clone()) && subjects.iter().any(|s| subject_nodes(s).is_some())
            {
                near(rules, &role, out);
            }
            return;
        }
        let nodes: Vec<Option<&str>> = subjects.iter().filter_map(subject_nodes).collect();
        let label = format!("{binding} -> {role}");
        if nodes.contains(&None) {
            out.all_nodes.push(label);
        } else if !nodes.is_empty() {
            out.some_nodes.push((
                label,
                nodes.into_iter().flatten().map(str::to_owned).collect(),
            ));
        }
    };
    for b in &rbac.cluster_role_bindings {
        if b.role_ref.kind != "ClusterRole" {
            continue;
        }
        let Some(role) = cluster_role(&b.role_ref.name) else {
            continue;
        };
        consider(
            format!(
                "ClusterRoleBinding/{}",
                b.metadata.name.as_deref().unwrap_or_default()
            ),
            format!("ClusterRole/{}", b.role_ref.name),
            role.rules.as_deref().unwrap_or_default(),
            b.subjects.as_deref().unwrap_or_default(),
            &mut out,
        );
    }
    for b in &rbac.role_bindings {
        if b.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        let rules = match b.role_ref.kind.as_str() {
            "ClusterRole" => cluster_role(&b.role_ref.name).and_then(|r| r.rules.as_deref()),
            "Role" => rbac
                .roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && r.metadata.namespace.as_deref() == Some(namespace)
                })
                .and_then(|r| r.rules.as_deref()),
            _ => None,
        };
        let Some(rules) = rules else {
            continue;
        };
        consider(
            format!(
                "RoleBinding/{namespace}/{}",
                b.metadata.name.as_deref().unwrap_or_default()
            ),
            format!("{}/{}", b.role_ref.kind, b.role_ref.name),
            rules,
            b.subjects.as_deref().unwrap_or_default(),
            &mut out,
        );
    }
    out
}

/// The ClusterRole and ClusterRoleBinding that fix it, as `irsa install credential-provider
/// --print rbac` writes them (crates/credential-provider `render_rbac`), as JSON for kubectl.
fn rbac_document(audience: &str) -> Value {
    const NAME: &str = "irsa-credential-provider-audience";
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME},
         "rules": [{"apiGroups": [""], "resources": [audience], "verbs": [AUDIENCE_VERB]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": NODES_GROUP}]}
    ]})
}

/// The pure decision of `node-audience-rbac`.
pub(crate) fn node_audience_check(
    rbac: &Rbac,
    namespace: &str,
    name: &str,
    audience: &str,
    node: Option<&str>,
) -> Check {
    const ID: &str = "node-audience-rbac";
    let g = grants(rbac, namespace, name, audience);
    let subject =
        format!("{AUDIENCE_VERB} on audience {audience:?} for service account {namespace}/{name}");
    let for_node: Vec<&String> = g
        .some_nodes
        .iter()
        .filter(|(_, nodes)| node.is_some_and(|n| nodes.iter().any(|m| m == n)))
        .map(|(b, _)| b)
        .collect();
    if !g.all_nodes.is_empty() {
        return Check::pass(
            ID,
            Group::Kubernetes,
            format!("the nodes may request tokens: {}", g.all_nodes[0]),
        )
        .detail(subject)
        .details(
            g.all_nodes
                .iter()
                .skip(1)
                .take(MAX_LISTED)
                .map(|b| format!("also {b}")),
        )
        .data("audience", json!(audience));
    }
    if let (Some(n), Some(b)) = (node, for_node.first()) {
        return Check::pass(
            ID,
            Group::Kubernetes,
            format!("node {n} (the pod's) may request tokens: {b}"),
        )
        .detail(subject)
        .detail("other nodes may not: a pod scheduled elsewhere cannot pull")
        .data("audience", json!(audience));
    }
    let mut check = Check::fail(
        ID,
        Group::Kubernetes,
        format!("no ClusterRoleBinding (or RoleBinding in {namespace}) grants group {NODES_GROUP} {subject}: the kubelet cannot get the credential provider's token, and the pull fails"),
    )
    .expected_actual(
        json!({"verb": AUDIENCE_VERB, "apiGroup": "", "resource": audience, "resourceName": name, "namespace": namespace, "subject": format!("Group {NODES_GROUP}")}),
        json!(g.near.iter().take(MAX_LISTED).collect::<Vec<_>>()),
    )
    .data("audience", json!(audience));
    for (b, nodes) in g.some_nodes.iter().take(MAX_LISTED) {
        check = check.detail(format!("{b} grants only node(s) {}", nodes.join(", ")));
    }
    check = check.details(g.near.iter().take(MAX_LISTED).cloned());
    let mut fix = Fix::new(format!(
        "bind group {NODES_GROUP} to a ClusterRole allowing {AUDIENCE_VERB} on {audience:?} (Kubernetes 1.33+ enforces it: ServiceAccountNodeAudienceRestriction)"
    ));
    if audience == STS_AUDIENCE {
        fix = fix.command("irsa install credential-provider --print rbac | kubectl apply -f -");
    } else {
        fix = fix.command("kubectl apply -f rbac.json   # the document below");
    }
    check.fix(fix.document(rbac_document(audience)))
}

/// The audiences the pod's own projected service-account token volumes name.
fn pod_audiences(pod: &Pod) -> Vec<&str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref()?.audience.as_deref())
        .collect()
}

/// `node-audience-rbac` for a pod. NodeRestriction asks the authorizer only for an audience
/// the pod does not reference itself: one named by the pod's projected service-account token
/// volumes (or its CSI drivers' tokenRequests, not read here) is allowed without RBAC
/// (kubernetes.io "Service accounts", node audience restriction: "By default, the kubelet can
/// only request tokens for audiences already referenced by pods on that node"; NodeRestriction
/// `validateNodeServiceAccountAudience` / `podReferencesAudience`).
pub(crate) fn node_audience_decision(rbac: &Rbac, pod: &Pod, name: &str, audience: &str) -> Check {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let check = node_audience_check(rbac, namespace, name, audience, node);
    if !pod_audiences(pod).contains(&audience) {
        return check;
    }
    if check.passed() {
        return check.detail("the pod's own projected token volume names the audience too");
    }
    Check::pass(
        "node-audience-rbac",
        Group::Kubernetes,
        format!("the pod's own projected token volume names audience {audience:?}: NodeRestriction lets its node request that token without RBAC"),
    )
    .detail(format!(
        "a pod of {namespace}/{name} without such a volume needs the RBAC, and has none: {}",
        check.summary
    ))
    .data("audience", json!(audience))
    .data("allowed_by", json!("pod-volume"))
}

/// Reads the RBAC and runs [`node_audience_decision`].
pub(crate) async fn node_audience_rbac(
    client: &kube::Client,
    pod: &Pod,
    service_account: &str,
    audience: &str,
) -> Check {
    const ID: &str = "node-audience-rbac";
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let lp = ListParams::default();
    let failed = |what: &str, e: kube::Error| {
        Check::error(
            ID,
            Group::Kubernetes,
            format!(
                "could not list {what}: {} (doctor needs list on clusterroles, clusterrolebindings, and roles and rolebindings in {namespace})",
                kube_error(&e)
            ),
        )
    };
    let rbac = Rbac {
        cluster_roles: match Api::<ClusterRole>::all(client.clone()).list(&lp).await {
            Ok(l) => l.items,
            Err(e) => return failed("clusterroles", e),
        },
        cluster_role_bindings: match Api::<ClusterRoleBinding>::all(client.clone())
            .list(&lp)
            .await
        {
            Ok(l) => l.items,
            Err(e) => return failed("clusterrolebindings", e),
        },
        roles: match Api::<Role>::namespaced(client.clone(), &namespace)
            .list(&lp)
            .await
        {
            Ok(l) => l.items,
            Err(e) => return failed("roles", e),
        },
        role_bindings: match Api::<RoleBinding>::namespaced(client.clone(), &namespace)
            .list(&lp)
            .await
        {
            Ok(l) => l.items,
            Err(e) => return failed("rolebindings", e),
        },
    };
    node_audience_decision(&rbac, pod, service_account, audience)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    fn p(uid: Option<i64>, gid: Option<i64>, groups: &[i64]) -> Process {
        Process {
            uid,
            gid,
            groups: groups.to_vec(),
            dac_override: true,
        }
    }

    /// The readability rule, case by case (the kubelet's rule is in [`token_file`]'s doc).
    #[test]
    fn the_readability_rule_table() {
        use Readable::*;
        let yes = |r: Readable| matches!(r, Yes(_));
        // (defaultMode, fsUser, fsGroup) -> file
        assert_eq!(
            token_file(None, None, None),
            TokenFile {
                mode: 0o644,
                owner: 0,
                group: 0
            }
        );
        assert_eq!(
            token_file(None, Some(1000), None),
            TokenFile {
                mode: 0o600,
                owner: 1000,
                group: 0
            }
        );
        assert_eq!(
            token_file(None, None, Some(2000)),
            TokenFile {
                mode: 0o640,
                owner: 0,
                group: 2000
            }
        );
        assert_eq!(
            token_file(None, Some(1000), Some(2000)),
            TokenFile {
                mode: 0o640,
                owner: 1000,
                group: 2000
            }
        );
        assert_eq!(
            token_file(Some(0o600), None, None),
            TokenFile {
                mode: 0o600,
                owner: 0,
                group: 0
            }
        );
        // defaultMode is ignored once fsUser or fsGroup is set.
        assert_eq!(token_file(Some(0o400), None, Some(3)).mode, 0o640);
        let cases: &[(TokenFile, Process, bool)] = &[
            // Default: 0644 root-owned, anyone reads.
            (token_file(None, None, None), p(Some(1000), None, &[]), true),
            // All containers as 1000: the kubelet chowns to 1000, 0600.
            (
                token_file(None, Some(1000), None),
                p(Some(1000), None, &[]),
                true,
            ),
            // Issue #8: a non-root user without fsGroup and an owner-only token.
            (
                token_file(Some(0o600), None, None),
                p(Some(1000), None, &[]),
                false,
            ),
            (
                token_file(Some(0o600), None, None),
                p(Some(1000), Some(1000), &[]),
                false,
            ),
            // The same with fsGroup: 0640 group 2000, and fsGroup is every container's group.
            (
                token_file(Some(0o600), None, Some(2000)),
                p(Some(1000), None, &[2000]),
                true,
            ),
            // runAsGroup equal to the file's group reads through the group bits.
            (
                token_file(Some(0o640), None, None),
                p(Some(1000), Some(0), &[]),
                true,
            ),
            // A sidecar with another uid than fsUser cannot happen (fsUser needs all equal),
            // but another uid against an owner-only file cannot read.
            (
                TokenFile {
                    mode: 0o600,
                    owner: 1000,
                    group: 0,
                },
                p(Some(1001), None, &[]),
                false,
            ),
            // Root reads anything, unless it dropped CAP_DAC_OVERRIDE and is not the owner.
            (
                TokenFile {
                    mode: 0o600,
                    owner: 1000,
                    group: 0,
                },
                p(Some(0), None, &[]),
                true,
            ),
            (
                TokenFile {
                    mode: 0o600,
                    owner: 1000,
                    group: 0,
                },
                Process {
                    dac_override: false,
                    ..p(Some(0), None, &[])
                },
                false,
            ),
            (
                TokenFile {
                    mode: 0o600,
                    owner: 0,
                    group: 0,
                },
                Process {
                    dac_override: false,
                    ..p(Some(0), None, &[])
                },
                true,
            ),
        ];
        for (file, process, want) in cases {
            assert_eq!(yes(readable(*file, process)), *want, "{file:?} {process:?}");
        }
        // The image's user with an owner-only token: doctor cannot tell, and says so.
        assert_eq!(
            readable(token_file(Some(0o600), None, None), &p(None, None, &[])),
            UnlessImageUser
        );
        assert!(yes(readable(
            token_file(None, None, None),
            &p(None, None, &[])
        )));
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn token_pod(pod_sc: Value, containers: Value, default_mode: Option<i32>) -> Pod {
        let mut projected = json!({"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]});
        if let Some(m) = default_mode {
            projected["defaultMode"] = json!(m);
        }
        pod(
            json!({"metadata": {"name": "p", "namespace": "ci"}, "spec": {
                "securityContext": pod_sc,
                "containers": containers,
                "volumes": [{"name": "aws-iam-token", "projected": projected}]
            }}),
        )
    }

    fn c(name: &str, sc: Value) -> Value {
        json!({"name": name, "image": "x", "securityContext": sc,
               "env": [{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
               "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]})
    }

    #[test]
    fn fs_user_is_the_common_run_as_user_of_every_container() {
        let both = token_pod(
            json!({"runAsUser": 1000}),
            json!([c("a", json!({})), c("b", json!({}))]),
            Some(0o600),
        );
        assert_eq!(fs_user(both.spec.as_ref().unwrap()), Some(1000));
        assert!(token_readable(&both).passed());
        // Two users, an owner-only defaultMode, no fsGroup: the file stays root's 0600.
        let two = token_pod(
            json!({}),
            json!([
                c("a", json!({"runAsUser": 1000})),
                c("b", json!({"runAsUser": 1001}))
            ]),
            Some(0o600),
        );
        assert_eq!(fs_user(two.spec.as_ref().unwrap()), None);
        let check = token_readable(&two);
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(
            check.details[0].contains("container a: uid 1000"),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert_eq!(
            fix.document.unwrap(),
            json!({"spec": {"securityContext": {"fsGroup": 1000}}})
        );
        // fsGroup mends it.
        let mended = token_pod(
            json!({"fsGroup": 2000}),
            json!([
                c("a", json!({"runAsUser": 1000})),
                c("b", json!({"runAsUser": 1001}))
            ]),
            Some(0o600),
        );
        assert!(token_readable(&mended).passed());
    }

    #[test]
    fn an_ephemeral_container_of_another_user_and_other_token_volumes() {
        // [PROJ] note: the owner was chosen when the pod started; a debug container added
        // later with another uid cannot read a 0600 token owned by 1000.
        let mut p = token_pod(
            json!({}),
            json!([c("app", json!({"runAsUser": 1000}))]),
            None,
        );
        let spec = p.spec.as_mut().unwrap();
        spec.ephemeral_containers = Some(vec![serde_json::from_value(json!({
            "name": "debug", "image": "busybox", "securityContext": {"runAsUser": 2000},
            "env": [{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
            "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]
        })).unwrap()]);
        assert_eq!(fs_user(p.spec.as_ref().unwrap()), Some(1000));
        let check = token_readable(&p);
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(
            check.details[0].starts_with("ephemeral container debug: uid 2000"),
            "{check:?}"
        );
        // A container without AWS_WEB_IDENTITY_TOKEN_FILE (its kube-api-access volume) is not
        // this check's; a Windows pod has no Linux owner at all.
        let mut bare = token_pod(
            json!({}),
            json!([{"name": "app", "image": "x", "securityContext": {"runAsUser": 1000},
            "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/x"}]}]),
            Some(0o600),
        );
        assert!(
            token_readable(&bare).summary.starts_with("no container's"),
            "{:?}",
            token_readable(&bare)
        );
        bare.spec.as_mut().unwrap().os =
            Some(serde_json::from_value(json!({"name": "windows"})).unwrap());
        assert!(token_readable(&bare).summary.contains("Windows"));
    }

    #[test]
    fn every_pod_check_is_listed_in_the_help() {
        for id in [
            "token-readable",
            "node-audience-rbac",
            "pull-secrets",
            "image-pulls",
        ] {
            assert!(crate::doctor::EXAMPLES.contains(&format!("  {id}")), "{id}");
        }
    }

    #[test]
    fn pull_messages_map_to_the_link_they_name() {
        let cases = [
            (
                "failed to pull and unpack image \"1111.dkr.ecr.us-east-1.amazonaws.com/app:1\": failed to resolve reference: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
                Cause::Credentials,
            ),
            (
                "rpc error: code = Unknown desc = Error response from daemon: Get https://x/v2/app/manifests/1: no basic auth credentials",
                Cause::Credentials,
            ),
            (
                "unexpected status from HEAD request to https://x/v2/app/manifests/1: 401 Unauthorized",
                Cause::Credentials,
            ),
            (
                "unexpected status from HEAD request: 403 Forbidden",
                Cause::Permissions,
            ),
            (
                "failed to resolve reference \"x/app:2\": x/app:2: not found",
                Cause::NotFound,
            ),
            (
                "dial tcp: lookup x on 10.0.0.10:53: no such host",
                Cause::Network,
            ),
            (
                "failed to get service account token for credential provider: serviceaccounts \"builder\" is forbidden: audience \"sts.amazonaws.com\" not found in pod spec volume",
                Cause::NodeAudience,
            ),
            ("something new", Cause::Other),
        ];
        for (message, want) in cases {
            assert_eq!(pull_cause(message), want, "{message}");
        }
        assert!(is_pull_failure("Failed", "Failed to pull image \"x\": 401"));
        assert!(!is_pull_failure(
            "Failed",
            "Error: container has runAsNonRoot"
        ));
        assert!(!is_pull_failure("Scheduled", "Successfully assigned"));
    }

    #[test]
    fn bounded_cuts_and_escapes() {
        let long = format!("\u{1b}[2J{}", "a".repeat(1000));
        let b = bounded(&long, 20);
        assert!(b.starts_with("\\u{1b}[2J") && b.ends_with('…'), "{b}");
        assert!(b.chars().count() < 40);
    }

    fn rule(verbs: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        serde_json::from_value(
            json!({"verbs": verbs, "apiGroups": [""], "resources": resources,
            "resourceNames": if names.is_empty() { Value::Null } else { json!(names) }}),
        )
        .unwrap()
    }

    fn rbac(rules: Vec<PolicyRule>, subjects: Value, namespaced: bool) -> Rbac {
        let mut r = Rbac::default();
        if namespaced {
            r.roles.push(
                serde_json::from_value(
                    json!({"metadata": {"name": "aud", "namespace": "ci"}, "rules": rules}),
                )
                .unwrap(),
            );
            r.role_bindings.push(serde_json::from_value(json!({"metadata": {"name": "aud", "namespace": "ci"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "aud"}, "subjects": subjects})).unwrap());
        } else {
            r.cluster_roles.push(
                serde_json::from_value(json!({"metadata": {"name": "aud"}, "rules": rules}))
                    .unwrap(),
            );
            r.cluster_role_bindings.push(serde_json::from_value(json!({"metadata": {"name": "aud"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aud"}, "subjects": subjects})).unwrap());
        }
        r
    }

    #[test]
    fn the_node_audience_rule_follows_the_kep_attributes() {
        let nodes = json!([{"kind": "Group", "name": "system:nodes", "apiGroup": "rbac.authorization.k8s.io"}]);
        let aud = "sts.amazonaws.com";
        let ok = |r: &Rbac| node_audience_check(r, "ci", "builder", aud, Some("node-1")).passed();
        assert!(ok(&rbac(
            vec![rule(&[AUDIENCE_VERB], &[aud], &[])],
            nodes.clone(),
            false
        )));
        assert!(ok(&rbac(
            vec![rule(&[AUDIENCE_VERB], &["*"], &["builder"])],
            nodes.clone(),
            false
        )));
        assert!(ok(&rbac(
            vec![rule(&["*"], &[aud], &[])],
            nodes.clone(),
            false
        )));
        // The check carries the namespace: a RoleBinding in it grants.
        assert!(ok(&rbac(
            vec![rule(&[AUDIENCE_VERB], &[aud], &[])],
            nodes.clone(),
            true
        )));
        // Another audience, another service account, another verb, another subject: no.
        let no = rbac(
            vec![rule(&[AUDIENCE_VERB], &["api://other"], &[])],
            nodes.clone(),
            false,
        );
        let check = node_audience_check(&no, "ci", "builder", aud, None);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.details.iter().any(|d| d.contains("api://other")),
            "{check:?}"
        );
        assert!(
            check.fix.unwrap().document.unwrap()["items"][0]["rules"][0]["resources"][0] == aud
        );
        assert!(!ok(&rbac(
            vec![rule(&[AUDIENCE_VERB], &[aud], &["other"])],
            nodes.clone(),
            false
        )));
        assert!(!ok(&rbac(
            vec![rule(&["create"], &[aud], &[])],
            nodes.clone(),
            false
        )));
        assert!(!ok(&rbac(
            vec![rule(&[AUDIENCE_VERB], &[aud], &[])],
            json!([{"kind": "Group", "name": "system:serviceaccounts"}]),
            false
        )));
        // A tenant's Role with a huge resource list is named, cut.
        let many: Vec<String> = (0..10_000).map(|i| format!("aud-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let check = node_audience_check(
            &rbac(
                vec![rule(&[AUDIENCE_VERB], &many, &[])],
                nodes.clone(),
                true,
            ),
            "ci",
            "builder",
            aud,
            None,
        );
        assert!(
            check.details.iter().all(|d| d.len() < 1000),
            "{:?}",
            check.details
        );
        assert!(check.details[0].contains("Role/aud allows"), "{check:?}");
        // One node only: passes for a pod on it, fails elsewhere.
        let one = rbac(
            vec![rule(&[AUDIENCE_VERB], &[aud], &[])],
            json!([{"kind": "User", "name": "system:node:node-1"}]),
            false,
        );
        assert!(ok(&one));
        assert!(!node_audience_check(&one, "ci", "builder", aud, Some("node-2")).passed());
        // A pod whose own projected volume names the audience needs no RBAC (NodeRestriction).
        let with_volume = token_pod(json!({}), json!([c("app", json!({}))]), None);
        let check = node_audience_decision(&Rbac::default(), &with_volume, "builder", aud);
        assert!(check.passed(), "{check:?}");
        assert_eq!(check.data["allowed_by"], "pod-volume");
        assert!(check.details[0].contains("has none"), "{check:?}");
        assert!(
            !node_audience_decision(&Rbac::default(), &with_volume, "builder", "api://other")
                .passed()
        );
    }
}
