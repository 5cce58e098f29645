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
use super::report::{Check, Fix, Group, cut_to, printable};

/// The longest tenant-written value (an event's message, a registry key) doctor shows.
const MAX_SHOWN: usize = 300;
/// At most this many events, secrets' registries or RBAC near misses are listed.
const MAX_LISTED: usize = 8;

/// `value` escaped and cut to `max` characters (with `…` when cut).
fn bounded(value: &str, max: usize) -> String {
    printable(&cut_to(value, max))
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
    /// Whether root reads past a file's mode: it keeps CAP_DAC_OVERRIDE or has
    /// CAP_DAC_READ_SEARCH (see [`has_cap`]).
    pub dac_override: bool,
}

/// Whether a container has capability `cap`, as containerd's CRI plugin sets them
/// (`WithCapabilities`/`setOCICapabilities`): a privileged container has every capability;
/// otherwise from the runtime's default set, `add: [ALL]`, then `drop: [ALL]`, then the
/// individual adds, then the individual drops. CAP_DAC_OVERRIDE is in the default set,
/// CAP_DAC_READ_SEARCH is not.
pub(crate) fn has_cap(sc: Option<&SecurityContext>, cap: &str, default: bool) -> bool {
    if sc.and_then(|s| s.privileged) == Some(true) {
        return true;
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let named = |list: Option<&Vec<String>>, want: &str| {
        list.into_iter().flatten().any(|c| {
            let c = c.to_ascii_uppercase();
            c.strip_prefix("CAP_").unwrap_or(&c) == want
        })
    };
    let add = caps.and_then(|c| c.add.as_ref());
    let drop = caps.and_then(|c| c.drop.as_ref());
    let mut has = default;
    if named(add, "ALL") {
        has = true;
    }
    if named(drop, "ALL") {
        has = false;
    }
    if named(add, cap) {
        has = true;
    }
    if named(drop, cap) {
        has = false;
    }
    has
}

/// Whether the process can read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readable {
    Yes(&'static str),
    No,
    /// Only if the image's USER (not in the pod spec) is the owner or root.
    UnlessImageUser,
    /// Only if the process's primary group, the image's (no runAsGroup), is the file's group.
    UnlessImageGroup,
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
        // Without runAsGroup the runtime takes the primary group from the image (its
        // /etc/passwd entry for the uid, else 0): it may be the file's group.
        Some(_) if file.mode & 0o040 != 0 && p.gid.is_none() => Readable::UnlessImageGroup,
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
    Process {
        uid: sc
            .and_then(|s| s.run_as_user)
            .or(pod_sc.and_then(|s| s.run_as_user)),
        gid: sc
            .and_then(|s| s.run_as_group)
            .or(pod_sc.and_then(|s| s.run_as_group)),
        groups,
        dac_override: has_cap(sc, "DAC_OVERRIDE", true) || has_cap(sc, "DAC_READ_SEARCH", false),
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
    // Containers whose token doctor cannot place: their lines say why.
    let mut unexamined = Vec::new();
    for c in members(spec) {
        let Some(env) = c.env.iter().find(|e| e.name == TOKEN_FILE_ENV) else {
            continue;
        };
        let Some(file_path) = env.value.as_deref() else {
            if env.value_from.is_some() {
                unexamined.push(format!(
                    "container {}: {TOKEN_FILE_ENV} comes from valueFrom: doctor cannot tell which file it names",
                    bounded(c.name, 63)
                ));
            }
            continue;
        };
        let dir = file_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let projected_token = |volume: &str| {
            spec.volumes.iter().flatten().any(|v| {
                v.name == volume
                    && v.projected.as_ref().is_some_and(|p| {
                        p.sources
                            .iter()
                            .flatten()
                            .any(|s| s.service_account_token.is_some())
                    })
            })
        };
        let Some(m) = c.mounts.iter().find(|m| {
            m.mount_path.trim_end_matches('/') == dir
                && m.sub_path.as_deref().unwrap_or_default().is_empty()
                && m.sub_path_expr.as_deref().unwrap_or_default().is_empty()
        }) else {
            // The token's volume mounted with subPath, or at a parent directory: the file's
            // path inside the volume is not the one this check reads.
            if let Some(m) = c.mounts.iter().find(|m| {
                let at = m.mount_path.trim_end_matches('/');
                projected_token(&m.name)
                    && (at == dir || dir.starts_with(&format!("{at}/")) || file_path == at)
            }) {
                unexamined.push(format!(
                    "container {}: {TOKEN_FILE_ENV} is {} in volume {} mounted at {}{}: doctor does not follow a subPath or a parent-directory mount",
                    bounded(c.name, 63),
                    bounded(file_path, 120),
                    bounded(&m.name, 63),
                    bounded(&m.mount_path, 120),
                    m.sub_path
                        .as_deref()
                        .filter(|p| !p.is_empty())
                        .map(|p| format!(" (subPath {})", bounded(p, 120)))
                        .unwrap_or_default()
                ));
            }
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
            Readable::UnlessImageGroup => unknown.push(format!(
                "{line}: readable only if the image's primary group for {who} is {} (no runAsGroup in the pod: the group is the image's, not known here)",
                file.group
            )),
        }
    }
    if checked == 0 && unexamined.is_empty() {
        return Check::pass(
            ID,
            Group::Kubernetes,
            format!("no container's {TOKEN_FILE_ENV} names a projected service-account token"),
        );
    }
    if problems.is_empty() && unknown.is_empty() && !unexamined.is_empty() {
        return Check::skip(
            ID,
            Group::Kubernetes,
            format!(
                "doctor could not examine every container's token file: {}",
                unexamined[0]
            ),
        )
        .details(unexamined.into_iter().skip(1))
        .details(details);
    }
    let details: Vec<String> = unexamined.into_iter().chain(details).collect();
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
        "whether a container can read the projected token depends on its image's user or group, which the pod spec does not name".to_owned()
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

/// At most this many imagePullSecrets are read.
const MAX_PULL_SECRETS: usize = 16;

/// Whether `name` is a DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`, starting and
/// ending alphanumeric, each dot-separated label too), at most 253 characters: a Secret's name.
pub(crate) fn is_secret_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
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
    // Tenant-written names: only a DNS-1123 subdomain can name a Secret (anything else, such
    // as `regcred#x` or `a/b`, must never reach a GET's path); duplicates are read once, and
    // at most MAX_PULL_SECRETS are read.
    let mut names: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let mut secrets_json = Vec::new();
    let mut unchecked = 0;
    let mut invalid = 0;
    let mut seen = BTreeSet::new();
    for r in spec.image_pull_secrets.iter().flatten() {
        let name = r.name.as_str();
        if name.is_empty() || !seen.insert(name) {
            continue;
        }
        if !is_secret_name(name) {
            invalid += 1;
            if invalid > MAX_LISTED {
                continue;
            }
            problems.push(format!(
                "imagePullSecret {} cannot exist: not a valid Secret name (a DNS-1123 subdomain of at most 253 characters)",
                bounded(name, 80)
            ));
            secrets_json
                .push(json!({"name": bounded(name, 80), "exists": false, "valid_name": false}));
            continue;
        }
        if names.len() >= MAX_PULL_SECRETS {
            unchecked += 1;
            continue;
        }
        names.push(name.to_owned());
    }
    if invalid > MAX_LISTED {
        problems.push(format!(
            "and {} more imagePullSecret(s) that are not valid Secret names",
            invalid - MAX_LISTED
        ));
    }
    if names.is_empty() && problems.is_empty() {
        return Check::pass(ID, Group::Kubernetes, "no imagePullSecrets: the node pulls")
            .detail(format!(
                "the kubelet's own credentials (or a credential provider such as `irsa credential-provider`) must authenticate to {}",
                images.join(", ")
            ));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut hosts = Vec::new();
    let mut details = Vec::new();
    if unchecked > 0 {
        details.push(format!(
            "and {unchecked} more imagePullSecret(s), not read (doctor reads the first {MAX_PULL_SECRETS})"
        ));
    }
    let mut expired = false;
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
        let data_of = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.as_slice())
        };
        // An irsa-kept secret: an ownerReference to a PullSecret or ClusterPullSecret, or irsa's
        // labels (what the controller writes); labels are anyone's who may edit the secret.
        let owner_ref = secret.metadata.owner_references.iter().flatten().any(|o| {
            matches!(o.kind.as_str(), "PullSecret" | "ClusterPullSecret")
                && o.api_version.starts_with("irsa.dev/")
        });
        let labelled = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY_VALUE);
        let owned = owner_ref || labelled;
        let kept_by = "kept by irsa";
        let expiry = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPIRES_AT_ANNOTATION));
        // The kubelet reads both types (pkg/credentialprovider/secrets MakeDockerKeyring):
        // `.dockerconfigjson`, and the legacy `.dockercfg` whose top level is the auths map.
        let read = match kind {
            "kubernetes.io/dockerconfigjson" => data_of(".dockerconfigjson").map(|b| {
                (
                    ".dockerconfigjson",
                    irsa_core::docker_config::DockerConfig::parse(b),
                )
            }),
            "kubernetes.io/dockercfg" => data_of(".dockercfg").map(|b| {
                (
                    ".dockercfg",
                    irsa_core::docker_config::DockerConfig::parse_legacy(b),
                )
            }),
            _ => None,
        };
        let config = match read {
            Some((key, parsed)) => match parsed {
                Ok(config) => config,
                Err(_) => {
                    problems.push(format!(
                        "{name}: its {key} cannot be read (the kubelet ignores it)"
                    ));
                    secrets_json.push(json!({"name": name, "exists": true, "usable": false}));
                    continue;
                }
            },
            _ => {
                problems.push(format!(
                    "{name} is a {} secret without .dockerconfigjson (or a kubernetes.io/dockercfg one without .dockercfg): the kubelet ignores it",
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
            .map(|r| bounded(&auth_key_host(r), 120))
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
                        "{name} is {kept_by} and expired at {} ({EXPIRES_AT_ANNOTATION}): the controller has not refreshed it",
                        bounded(e, 40)
                    ));
                }
                Some((e, Some(at))) => line.push_str(&format!(
                    ", {kept_by}, expires {} (in {})",
                    bounded(e, 40),
                    irsa_core::time::human_duration(at - now)
                )),
                Some((e, None)) => line.push_str(&format!(
                    ", {kept_by}, {EXPIRES_AT_ANNOTATION} {} is not an RFC 3339 time",
                    bounded(e, 40)
                )),
                None => line.push_str(&format!(", {kept_by} (no expiry annotation)")),
            }
        }
        details.push(line);
        if labelled && !owner_ref {
            details.push(format!(
                "{name}: only its labels ({MANAGED_BY_LABEL}={MANAGED_BY_VALUE}) say irsa keeps it, and anyone who may edit secrets in {namespace} can write them: its expiry is the secret's own word"
            ));
        }
        secrets_json.push(json!({"name": name, "exists": true, "usable": true, "registries": shown, "irsa_owned": owned, "owned_by": if owner_ref { "ownerReference" } else if labelled { "labels" } else { "none" }, "expires_at": expiry.map(|e| bounded(e, 40))}));
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

/// The longest part of a tenant- or registry-written message doctor reads (an event's or a
/// status's): cut before it is copied or classified.
const MAX_READ: usize = 4096;

/// The words of a lowercased pull message: split at whitespace and `,;"'()[]{}=<>`, each cut of
/// its leading and trailing `:.!?`. An image reference, a URL or a digest stays one word
/// (`x/app:401`, `sha256:…401…`, `140312345678.dkr.ecr…`), so a code inside one is no code.
fn words(message: &str) -> Vec<&str> {
    message
        .split(|c: char| c.is_whitespace() || ",;\"'()[]{}=<>`".contains(c))
        .map(|w| w.trim_matches(|c: char| ":.!?".contains(c)))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `phrase` (lowercase words) occurs in `words` as consecutive whole words.
fn has_phrase(words: &[&str], phrase: &str) -> bool {
    let want: Vec<&str> = phrase.split(' ').collect();
    words.windows(want.len()).any(|w| w == want.as_slice())
}

/// NodeRestriction's refusal of a kubelet's TokenRequest for an audience its pods do not
/// name (plugin/pkg/admission/noderestriction `validateNodeServiceAccountAudience`):
/// `serviceaccounts "X" is forbidden: audience "Y" not found in pod spec volume,
/// system:node:N is not authorized to request tokens for this audience`; the verb, when an
/// authorizer's reason names it.
const AUDIENCE_REFUSALS: &[&str] = &[
    "not found in pod spec volume",
    "is not authorized to request tokens for this audience",
    AUDIENCE_VERB,
];
const CREDENTIALS: &[&str] = &[
    "401 unauthorized",
    "status 401",
    "code 401",
    "unauthorized",
    "no basic auth credentials",
    "authentication required",
    "authorization failed",
    "no credentials",
];
const PERMISSIONS: &[&str] = &[
    "403 forbidden",
    "status 403",
    "code 403",
    "denied",
    "access denied",
];
const NOT_FOUND: &[&str] = &[
    "404 not found",
    "status 404",
    "code 404",
    "not found",
    "manifest unknown",
    "name unknown",
    "notfound",
];
const NETWORK: &[&str] = &[
    "i/o timeout",
    "no such host",
    "connection refused",
    "dial tcp",
    "tls",
    "x509",
    "context deadline exceeded",
];

/// Maps a kubelet/runtime pull error message (the message only, never a `container NAME: `
/// prefix) to its likely cause: codes and phrases as whole words, so an image, account id or
/// digest that merely contains `401` or `audience` names nothing.
pub(crate) fn pull_cause(message: &str) -> Cause {
    let m: String = message
        .chars()
        .take(MAX_READ)
        .collect::<String>()
        .to_lowercase();
    let w = words(&m);
    let any = |phrases: &[&str]| phrases.iter().any(|p| has_phrase(&w, p));
    if any(AUDIENCE_REFUSALS) {
        Cause::NodeAudience
    } else if any(CREDENTIALS) {
        Cause::Credentials
    } else if any(PERMISSIONS) {
        Cause::Permissions
    } else if any(NOT_FOUND) {
        Cause::NotFound
    } else if any(NETWORK) {
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

/// `s` cut to [`MAX_READ`] characters: a message is cut before anything copies or reads it.
fn cut(s: Option<&str>) -> String {
    s.unwrap_or_default().chars().take(MAX_READ).collect()
}

/// One failure the kubelet reported (or an Event claims it did).
#[derive(Debug, Clone)]
struct PullFailure {
    /// From an Event rather than a container's status.
    from_event: bool,
    /// An Event's source (`source.component`, else `reportingComponent`), bounded.
    component: String,
    /// A status's container: kept apart from the message, which alone is classified.
    container: Option<String>,
    reason: String,
    message: String,
    count: i32,
}

impl PullFailure {
    fn cause(&self) -> Cause {
        pull_cause(&self.message)
    }

    fn by_kubelet(&self) -> bool {
        !self.from_event || self.component == "kubelet"
    }

    fn line(&self) -> String {
        let count = if self.count > 1 {
            format!(" ×{}", self.count)
        } else {
            String::new()
        };
        let container = self
            .container
            .as_ref()
            .map(|c| format!(" container {}", bounded(c, 63)))
            .unwrap_or_default();
        let mut line = format!(
            "{} {}{count}{container}: {}",
            if self.from_event { "event" } else { "status" },
            bounded(&self.reason, 40),
            bounded(&self.message, MAX_SHOWN)
        );
        if self.from_event {
            if !self.by_kubelet() {
                line.push_str(&format!(
                    " (source {}, not the kubelet)",
                    bounded(&self.component, 63)
                ));
            }
            line.push_str(" (from an Event: anyone who may create events can write one)");
        }
        line
    }

    fn json(&self) -> Value {
        json!({
            "source": if self.from_event { "event" } else { "status" },
            "component": self.from_event.then(|| bounded(&self.component, 63)),
            "container": self.container.as_deref().map(|c| bounded(c, 63)),
            "reason": bounded(&self.reason, 40),
            "count": self.count,
            "message": bounded(&self.message, MAX_SHOWN),
        })
    }
}

/// The pull failures among `events` that are this pod's: an Event names its object by uid,
/// and one without a uid or kind `Pod`, or with another uid (an earlier pod of the same name,
/// or a forgery), is dropped. The kubelet's come first.
fn event_failures(pod_uid: &str, events: &[Event]) -> Vec<PullFailure> {
    let mut out: Vec<PullFailure> = events
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(pod_uid))
        .filter(|e| e.involved_object.kind.as_deref() == Some("Pod"))
        .filter_map(|e| {
            let reason = cut(e.reason.as_deref());
            let message = cut(e.message.as_deref());
            is_pull_failure(&reason, &message).then(|| PullFailure {
                from_event: true,
                component: cut(e
                    .source
                    .as_ref()
                    .and_then(|s| s.component.as_deref())
                    .or(e.reporting_component.as_deref())),
                container: None,
                reason,
                message,
                count: e.count.unwrap_or(1),
            })
        })
        .collect();
    out.sort_by_key(|f| !f.by_kubelet());
    out
}

/// Whether the pod has containers' statuses at all (a pod the kubelet has started has).
fn has_statuses(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.container_statuses.iter().flatten().next().is_some()
            || s.init_container_statuses.iter().flatten().next().is_some()
    })
}

/// The pull failures the kubelet wrote into the containers' waiting states.
fn status_failures(pod: &Pod) -> Vec<PullFailure> {
    let statuses = pod.status.iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    });
    statuses
        .filter_map(|s| {
            let w = s.state.as_ref()?.waiting.as_ref()?;
            let reason = cut(w.reason.as_deref());
            let message = cut(w.message.as_deref());
            is_pull_failure(&reason, &message).then(|| PullFailure {
                from_event: false,
                component: String::new(),
                container: Some(cut(Some(&s.name))),
                reason,
                message,
                count: 1,
            })
        })
        .collect()
}

/// The most telling cause among `failures`: anything but Other, first by what it names.
fn most_telling(failures: &[&PullFailure]) -> Cause {
    let causes: Vec<Cause> = failures.iter().map(|f| f.cause()).collect();
    [
        Cause::NodeAudience,
        Cause::Credentials,
        Cause::Permissions,
        Cause::NotFound,
        Cause::Network,
    ]
    .into_iter()
    .find(|c| causes.contains(c))
    .unwrap_or(Cause::Other)
}

/// Events read a page at a time, and at most this many pages.
const EVENT_PAGE: u32 = 20;
const EVENT_PAGES: usize = 50;
/// At most this many Event failures are kept (the rest are counted).
const MAX_EVENT_FAILURES: usize = 64;

/// What the pod's Events say, read page by page.
#[derive(Debug, Default)]
struct EventsRead {
    read: usize,
    failures: Vec<PullFailure>,
    /// Failures beyond [`MAX_EVENT_FAILURES`], counted.
    more: usize,
    /// Pages beyond [`EVENT_PAGES`] were not read.
    truncated: bool,
}

impl EventsRead {
    fn add(&mut self, uid: &str, page: &[Event]) {
        self.read += page.len();
        for f in event_failures(uid, page) {
            if self.failures.len() < MAX_EVENT_FAILURES {
                self.failures.push(f);
            } else {
                self.more += 1;
            }
        }
        self.failures.sort_by_key(|f| !f.by_kubelet());
    }
}

/// The pure decision of `image-pulls`.
///
/// Who may write what: a container's status is written through `pods/status`, which the pod's
/// kubelet (NodeRestriction) and cluster admins hold; an Event can be created by anyone who may
/// create events in the namespace, naming any object. So when the pod has containers'
/// statuses, they alone decide fail or pass and pick the cause; Events are shown beside them,
/// marked. A pod without statuses (never started, or its node gone) has only Events: they can
/// make a failure, one that says it rests on Events alone.
fn image_pulls_decision(pod: &Pod, events: &EventsRead) -> Check {
    const ID: &str = "image-pulls";
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let statuses = status_failures(pod);
    let mut notes = Vec::new();
    if events.truncated {
        notes.push(format!(
            "read the first {} event(s) only ({EVENT_PAGES} pages of {EVENT_PAGE}): the rest were not read",
            events.read
        ));
    }
    if events.more > 0 {
        notes.push(format!(
            "and {} more failed pull(s) in Events, not kept",
            events.more
        ));
    }
    let event_lines = |n: usize| -> Vec<String> {
        let mut lines: Vec<String> = events
            .failures
            .iter()
            .take(n)
            .map(PullFailure::line)
            .collect();
        if events.failures.len() > n {
            lines.push(format!("and {} more event(s)", events.failures.len() - n));
        }
        lines
    };
    let has_statuses = has_statuses(pod);
    if statuses.is_empty() && (has_statuses || events.failures.is_empty()) {
        let mut check = if has_statuses {
            Check::pass(
                ID,
                Group::Kubernetes,
                "the containers' statuses report no failed image pull",
            )
        } else {
            Check::pass(
                ID,
                Group::Kubernetes,
                "the kubelet reported no failed image pull",
            )
        };
        check = check.detail(format!(
            "read {} event(s) of the pod and its containers' statuses (events expire, by default after an hour)",
            events.read
        ));
        if !events.failures.is_empty() {
            check = check
                .detail(format!(
                    "{} Event(s) report a failed pull, but the containers' statuses (the kubelet's) show none now: an earlier failure, or an Event someone else wrote",
                    events.failures.len() + events.more
                ))
                .details(event_lines(MAX_LISTED));
        }
        return check.details(notes);
    }
    let from_statuses = !statuses.is_empty();
    let all: Vec<&PullFailure> = statuses.iter().chain(events.failures.iter()).collect();
    let cause = if from_statuses {
        most_telling(&statuses.iter().collect::<Vec<_>>())
    } else {
        // Only Events: the kubelet's, when any of them names a cause.
        let kubelet: Vec<&PullFailure> =
            events.failures.iter().filter(|f| f.by_kubelet()).collect();
        match most_telling(&kubelet) {
            Cause::Other => most_telling(&events.failures.iter().collect::<Vec<_>>()),
            c => c,
        }
    };
    let mut details: Vec<String> = statuses
        .iter()
        .take(MAX_LISTED)
        .map(PullFailure::line)
        .collect();
    if statuses.len() > MAX_LISTED {
        details.push(format!(
            "and {} more container(s)",
            statuses.len() - MAX_LISTED
        ));
    }
    details.extend(event_lines(MAX_LISTED));
    details.extend(notes);
    let shown: Vec<Value> = all.iter().take(2 * MAX_LISTED).map(|f| f.json()).collect();
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
    let summary = if from_statuses {
        format!(
            "the kubelet could not pull the pod's images: {}",
            cause.explain()
        )
    } else {
        format!(
            "Events say the kubelet could not pull the pod's images (the pod has no containers' statuses; this rests on Events alone, which anyone who may create events can write): {}",
            cause.explain()
        )
    };
    Check::fail(ID, Group::Kubernetes, summary)
        .details(details)
        .data("likely", json!(cause.link()))
        .data(
            "rests_on",
            json!(if from_statuses { "statuses" } else { "events" }),
        )
        .data("failures", json!(shown))
        .fix(fix)
}

/// `image-pulls`: what the kubelet reported when it pulled the pod's images — its containers'
/// waiting reasons and the pod's ErrImagePull / ImagePullBackOff / Failed events — each
/// message shown bounded and escaped, mapped to the link it most likely names.
pub(crate) async fn image_pulls(client: &kube::Client, pod: &Pod) -> Check {
    const ID: &str = "image-pulls";
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut events = EventsRead::default();
    // A pod read from the API server has a uid; without one no Event can be tied to it.
    if let Some(uid) = pod.metadata.uid.as_deref() {
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let mut params = ListParams::default()
            .fields(&format!(
                "involvedObject.kind=Pod,involvedObject.namespace={namespace},involvedObject.name={name},involvedObject.uid={uid}"
            ))
            .limit(EVENT_PAGE);
        for page in 1.. {
            let list = match api.list(&params).await {
                Ok(list) => list,
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
            events.add(uid, &list.items);
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(_) if page >= EVENT_PAGES => {
                    events.truncated = true;
                    break;
                }
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    image_pulls_decision(pod, &events)
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
    let mut cut_short = Vec::new();
    let mut rbac = Rbac::default();
    macro_rules! read {
        ($field:ident, $api:expr, $what:literal) => {
            match list_bounded($api).await {
                Ok((items, truncated)) => {
                    if truncated {
                        cut_short.push(format!(
                            "read the first {} {} only ({RBAC_PAGE} a page): a grant beyond them is not seen",
                            items.len(),
                            $what
                        ));
                    }
                    rbac.$field = items;
                }
                Err(e) => return failed($what, e),
            }
        };
    }
    read!(
        cluster_roles,
        Api::<ClusterRole>::all(client.clone()),
        "clusterroles"
    );
    read!(
        cluster_role_bindings,
        Api::<ClusterRoleBinding>::all(client.clone()),
        "clusterrolebindings"
    );
    read!(
        roles,
        Api::<Role>::namespaced(client.clone(), &namespace),
        "roles"
    );
    read!(
        role_bindings,
        Api::<RoleBinding>::namespaced(client.clone(), &namespace),
        "rolebindings"
    );
    node_audience_decision(&rbac, pod, service_account, audience).details(cut_short)
}

/// RBAC objects are read this many a page, and at most [`RBAC_MAX`] of a kind.
const RBAC_PAGE: u32 = 250;
const RBAC_MAX: usize = 5000;

/// The objects of `api`, a page at a time, at most [`RBAC_MAX`]; `true` when more were left.
async fn list_bounded<K>(api: Api<K>) -> Result<(Vec<K>, bool), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default().limit(RBAC_PAGE);
    let mut items = Vec::new();
    loop {
        let list = api.list(&params).await?;
        items.extend(list.items);
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(_) if items.len() >= RBAC_MAX => return Ok((items, true)),
            Some(token) => params = params.continue_token(&token),
            None => return Ok((items, false)),
        }
    }
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

    /// Review M1: codes and phrases are whole words of the message; an image, an account id, a
    /// digest or a tag that contains `401` or `audience` names nothing.
    #[test]
    fn pull_causes_read_whole_words_of_the_message_only() {
        let cases = [
            (
                "failed to pull and unpack image \"140312345678.dkr.ecr.us-east-1.amazonaws.com/audience-api:1\": unexpected status from HEAD request: 401 Unauthorized",
                Cause::Credentials,
            ),
            (
                "failed to resolve reference \"140312345678.dkr.ecr.us-east-1.amazonaws.com/app:1\": 140312345678.dkr.ecr.us-east-1.amazonaws.com/app:1: not found",
                Cause::NotFound,
            ),
            (
                "failed to pull \"x/app@sha256:4031aa4040b4010000000000000000000000000000000000000000000000401\": manifest unknown",
                Cause::NotFound,
            ),
            ("pull \"x/app:401\": x/app:401: not found.", Cause::NotFound),
            ("unexpected status code 403 Forbidden", Cause::Permissions),
            (
                "received unexpected HTTP status: 401 Unauthorized",
                Cause::Credentials,
            ),
            // NodeRestriction's refusal, as the API server writes it.
            (
                "failed to get service account token: serviceaccounts \"builder\" is forbidden: audience \"sts.amazonaws.com\" not found in pod spec volume, system:node:node-1 is not authorized to request tokens for this audience",
                Cause::NodeAudience,
            ),
            ("the audience-api image: something new", Cause::Other),
            ("tag 4401 of x/app", Cause::Other),
        ];
        for (message, want) in cases {
            assert_eq!(pull_cause(message), want, "{message}");
        }
    }

    /// Review M4: a Secret's name is a DNS-1123 subdomain of at most 253 characters; hostile
    /// strings are refused without panicking, and so are they classified.
    #[test]
    fn secret_names_are_dns_subdomains_and_hostile_text_never_panics() {
        for ok in ["regcred", "a", "ecr-1.example", "0a", &"a".repeat(253)] {
            assert!(is_secret_name(ok), "{ok}");
        }
        for bad in [
            "",
            "regcred#x",
            "../regcred",
            "a/b",
            "Regcred",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a b",
            "é",
            &"a".repeat(254),
        ] {
            assert!(!is_secret_name(bad), "{bad}");
        }
        for hostile in [
            "",
            ":",
            "::::",
            "\u{0}\u{202e}",
            "é401 ü",
            " \"\" ",
            &"ǅ".repeat(5000),
        ] {
            let _ = pull_cause(hostile);
            let _ = is_secret_name(hostile);
        }
    }

    /// Review M3: a message is read to its first 4096 characters only.
    #[test]
    fn a_message_is_read_to_its_first_4096_characters() {
        let long = format!("{} 401 Unauthorized", "x ".repeat(2100));
        assert_eq!(pull_cause(&long), Cause::Other);
        assert_eq!(pull_cause(&long[4000..]), Cause::Credentials);
    }

    /// Review low (a): containerd's order (add ALL, drop ALL, adds, drops); privileged has every
    /// capability; CAP_DAC_READ_SEARCH reads like CAP_DAC_OVERRIDE.
    #[test]
    fn root_capabilities_follow_containerds_order() {
        // app runs as 1000 (so the token is 1000's, 0600); a root debug container reads it only
        // past the mode.
        let with_debug = |sc: Value| {
            let mut p = token_pod(
                json!({}),
                json!([c("app", json!({"runAsUser": 1000}))]),
                None,
            );
            let mut debug = c("debug", sc);
            debug["securityContext"]["runAsUser"] = json!(0);
            p.spec.as_mut().unwrap().ephemeral_containers =
                Some(vec![serde_json::from_value(debug).unwrap()]);
            token_readable(&p).status
        };
        let cases = [
            (json!({}), Status::Pass),
            (json!({"capabilities": {"drop": ["ALL"]}}), Status::Fail),
            // Individual drops come after add ALL.
            (
                json!({"capabilities": {"add": ["ALL"], "drop": ["DAC_OVERRIDE", "DAC_READ_SEARCH"]}}),
                Status::Fail,
            ),
            // ALL holds CAP_DAC_READ_SEARCH too.
            (
                json!({"capabilities": {"add": ["ALL"], "drop": ["DAC_OVERRIDE"]}}),
                Status::Pass,
            ),
            (
                json!({"capabilities": {"add": ["CAP_DAC_OVERRIDE"], "drop": ["ALL"]}}),
                Status::Pass,
            ),
            (
                json!({"capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}}),
                Status::Pass,
            ),
            (
                json!({"privileged": true, "capabilities": {"drop": ["ALL"]}}),
                Status::Pass,
            ),
        ];
        for (sc, want) in cases {
            assert_eq!(with_debug(sc.clone()), want, "{sc}");
        }
    }

    /// Review low (b): without runAsGroup the process's group is the image's, not "not 0".
    #[test]
    fn without_run_as_group_the_group_is_the_images() {
        // Two users: no fsUser, a root:root 0640 token.
        let pod = |group: Value| {
            token_pod(
                json!({}),
                json!([
                    c("a", json!({"runAsUser": 1000, "runAsGroup": group.clone()})),
                    c("b", json!({"runAsUser": 1001, "runAsGroup": group}))
                ]),
                Some(0o640),
            )
        };
        let check = token_readable(&pod(Value::Null));
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(check.summary.contains("image's user or group"), "{check:?}");
        assert!(
            check.details[0].contains("no runAsGroup in the pod"),
            "{check:?}"
        );
        assert!(token_readable(&pod(json!(0))).passed());
        let check = token_readable(&pod(json!(5)));
        assert!(check.summary.contains("cannot read"), "{check:?}");
    }

    /// Review low (c): a token doctor could not place is not a pass.
    #[test]
    fn a_token_file_doctor_cannot_place_is_not_a_pass() {
        let env_from = token_pod(
            json!({}),
            json!([{"name": "app", "image": "x",
                "env": [{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}],
                "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]}]),
            None,
        );
        let check = token_readable(&env_from);
        assert_eq!(check.status, Status::Skip, "{check:?}");
        assert!(check.summary.contains("valueFrom"), "{check:?}");
        for mount in [
            json!({"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "subPath": "token"}),
            json!({"name": "aws-iam-token", "mountPath": "/var/run/secrets"}),
        ] {
            let p = token_pod(
                json!({}),
                json!([{"name": "app", "image": "x", "securityContext": {"runAsUser": 1000},
                    "env": [{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
                    "volumeMounts": [mount.clone()]}]),
                Some(0o600),
            );
            let check = token_readable(&p);
            assert_eq!(check.status, Status::Skip, "{mount} {check:?}");
            assert!(
                check.summary.contains("subPath or a parent-directory"),
                "{check:?}"
            );
        }
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
