//! The mutation itself: a pure function from a pod, what is known about its service account
//! and the flags to JSON-patch operations.
//!
//! The pod is a `serde_json::Value`, not a typed `Pod`: fields this code does not model
//! (native sidecars' `restartPolicy`, fields of future Kubernetes versions) are never read
//! into a struct and written back, and every operation adds at an index or appends (`-`), so
//! nothing else in the pod can be lost. A pod that already has everything gets an empty patch,
//! which makes `reinvocationPolicy: IfNeeded` safe.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::{
    Config, DEFAULT_TOKEN_EXPIRATION, POD_IDENTITY_LABEL, POD_IDENTITY_MIN_JITTERED_EXPIRATION,
    SKIP_CONTAINERS_ANNOTATION, SKIP_POD_LABEL, TOKEN_EXPIRATION_ANNOTATION, clamp_expiration,
};
use crate::identity::{Mode, ServiceAccountInfo, parse_go_int, plan};

/// One JSON-patch (RFC 6902) operation; the webhook only ever adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    op: &'static str,
    /// JSON pointer of the target.
    pub path: String,
    /// The value added there.
    pub value: Value,
}

impl PatchOp {
    /// An `add` of `value` at `path`.
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        Self {
            op: "add",
            path: path.into(),
            value,
        }
    }

    /// The operation's name (always `add`).
    pub fn op(&self) -> &str {
        self.op
    }
}

/// Environment variable names the SDKs read for web identity.
const ROLE_ARN_ENV: &str = "AWS_ROLE_ARN";
const TOKEN_FILE_ENV: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
const FULL_URI_ENV: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
const AUTH_TOKEN_FILE_ENV: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
const REGION_ENV: &str = "AWS_REGION";
const DEFAULT_REGION_ENV: &str = "AWS_DEFAULT_REGION";
const REGIONAL_STS_ENV: &str = "AWS_STS_REGIONAL_ENDPOINTS";

/// The most containers (`containers` plus `initContainers`) of a pod the webhook patches.
/// Kubernetes sets no limit, but real pods have a handful, and each container costs its own
/// operations (up to a role ARN of 2 KiB each), so a tenant's pod with thousands of containers
/// would cost megabytes and seconds of CPU per admission. 256 is far above any real pod.
pub const MAX_CONTAINERS: usize = 256;

/// The largest patch (serialized JSON, bytes) the webhook answers. Base64 makes the answer a
/// third larger, which keeps it well under a mebibyte; a real pod's patch is a few KiB.
pub const MAX_PATCH_BYTES: usize = 256 * 1024;

/// A pod the webhook does not patch because of its size; it is admitted unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Oversized {
    /// More than [`MAX_CONTAINERS`] containers.
    #[error(
        "the pod has {0} containers and init containers, more than the {MAX_CONTAINERS} the webhook patches"
    )]
    Containers(usize),
    /// The patch would be larger than [`MAX_PATCH_BYTES`].
    #[error("the pod's patch would be larger than {MAX_PATCH_BYTES} bytes")]
    Patch,
}

/// The patch the webhook answers for `pod`: empty when the pod is skipped, its service account
/// names no role, or the pod already has everything; [`Oversized`] (checked while building, so
/// a huge patch is never built) when it has too many containers or the patch would be too large.
///
/// Pod Identity tokens that would get the default lifetime get a random one between 22 and 24
/// hours, as upstream does, so that a fleet's tokens do not all expire at once.
pub fn mutate(
    pod: &Value,
    sa: &ServiceAccountInfo,
    config: &Config,
) -> Result<Vec<PatchOp>, Oversized> {
    mutate_with_jitter(pod, sa, config, fastrand::i64(0..i64::MAX))
}

/// [`mutate`] with the Pod Identity lifetime jitter given (any value; it is reduced into the
/// jitter window), so that tests are deterministic.
pub fn mutate_with_jitter(
    pod: &Value,
    sa: &ServiceAccountInfo,
    config: &Config,
    jitter: i64,
) -> Result<Vec<PatchOp>, Oversized> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    if labels.is_some_and(|l| l.contains_key(SKIP_POD_LABEL)) {
        return Ok(Vec::new());
    }
    let Some(plan) = plan(sa, config) else {
        return Ok(Vec::new());
    };
    let spec = pod.get("spec");
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(f)).and_then(Value::as_array))
        .map(Vec::len)
        .sum::<usize>();
    if containers > MAX_CONTAINERS {
        return Err(Oversized::Containers(containers));
    }
    let annotations = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    let annotation = |name: &str| {
        annotations
            .and_then(|a| a.get(&config.annotation(name)))
            .and_then(Value::as_str)
    };
    let mut expiration = annotation(TOKEN_EXPIRATION_ANNOTATION)
        .and_then(parse_go_int)
        .map(clamp_expiration)
        .unwrap_or(plan.token_expiration);
    let pod_identity = matches!(plan.mode, Mode::PodIdentity { .. });
    if pod_identity && expiration == DEFAULT_TOKEN_EXPIRATION {
        let window = DEFAULT_TOKEN_EXPIRATION - POD_IDENTITY_MIN_JITTERED_EXPIRATION;
        expiration = POD_IDENTITY_MIN_JITTERED_EXPIRATION + jitter.rem_euclid(window);
    }
    // A set, so that the cost is linear in containers plus names, not their product.
    let skipped: HashSet<String> = annotation(SKIP_CONTAINERS_ANNOTATION)
        .map(first_csv_record)
        .unwrap_or_default()
        .into_iter()
        .collect();

    let mut token_file = join_path(&plan.mount_path, &plan.token_path);
    let node_os = |key: &str| {
        spec.and_then(|s| s.pointer(&format!("/nodeSelector/{}", escape(key))))
            .and_then(Value::as_str)
    };
    if node_os("kubernetes.io/os") == Some("windows")
        || node_os("beta.kubernetes.io/os") == Some("windows")
    {
        token_file = format!("C:{}", token_file.replace('/', "\\"));
    }

    let mut ops = Vec::new();
    let volumes = spec.and_then(|s| s.get("volumes"));
    let has_volume = volumes
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| name_of(v) == Some(&plan.volume_name)));
    if !has_volume {
        let mut token = Map::new();
        if !plan.audience.is_empty() {
            token.insert("audience".into(), json!(plan.audience));
        }
        token.insert("expirationSeconds".into(), json!(expiration));
        token.insert("path".into(), json!(plan.token_path));
        let volume = json!({
            "name": plan.volume_name,
            "projected": {"sources": [{"serviceAccountToken": token}]},
        });
        ops.push(match volumes.and_then(Value::as_array) {
            // Upstream puts the volume first; an add at an index keeps every other volume.
            Some(_) => PatchOp::add("/spec/volumes/0", volume),
            None => PatchOp::add("/spec/volumes", json!([volume])),
        });
    }

    let want = Want {
        plan: &plan,
        token_file: &token_file,
        region: config
            .aws_default_region
            .as_deref()
            .filter(|r| !r.is_empty()),
    };
    let mut patch_bytes: usize = ops.iter().map(serialized_len).sum();
    for field in ["initContainers", "containers"] {
        let Some(containers) = spec.and_then(|s| s.get(field)).and_then(Value::as_array) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            if name_of(container).is_some_and(|n| probe_skip(skipped.contains(n.as_str()))) {
                continue;
            }
            let before = ops.len();
            container_ops(&format!("/spec/{field}/{i}"), container, &want, &mut ops);
            // Checked per container: one container's operations are bounded (annotation values
            // are capped), so the patch never grows far past the bound before it is dropped.
            patch_bytes += ops[before..].iter().map(serialized_len).sum::<usize>();
            if patch_bytes > MAX_PATCH_BYTES {
                return Err(Oversized::Patch);
            }
        }
    }

    if pod_identity && labels.and_then(|l| l.get(POD_IDENTITY_LABEL)) != Some(&json!("enabled")) {
        ops.push(match labels {
            Some(_) => PatchOp::add(
                format!("/metadata/labels/{}", escape(POD_IDENTITY_LABEL)),
                json!("enabled"),
            ),
            None if pod.get("metadata").is_some_and(Value::is_object) => {
                PatchOp::add("/metadata/labels", json!({POD_IDENTITY_LABEL: "enabled"}))
            }
            None => PatchOp::add(
                "/metadata",
                json!({"labels": {POD_IDENTITY_LABEL: "enabled"}}),
            ),
        });
    }
    Ok(ops)
}

/// The length of `op` as JSON, counted without building the bytes.
fn serialized_len(op: &PatchOp) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; should it, count the worst so the bound still holds.
    match serde_json::to_writer(&mut count, op) {
        Ok(()) => count.0 + 1,
        Err(_) => usize::MAX / 2,
    }
}

struct Want<'a> {
    plan: &'a crate::identity::Plan,
    token_file: &'a str,
    region: Option<&'a str>,
}

/// Upstream's per-container rules: regional STS when enabled and absent; both region variables
/// only when neither is set; the two credential variables unless either is set; the mount
/// unless one of that name exists. A container with credential, region and STS variables all
/// present is left alone entirely, mount included, as upstream leaves it.
fn container_ops(base: &str, container: &Value, want: &Want<'_>, ops: &mut Vec<PatchOp>) {
    let env = container.get("env").and_then(Value::as_array);
    let names: HashSet<&str> = env
        .into_iter()
        .flatten()
        .filter_map(name_of)
        .map(String::as_str)
        .collect();
    let defined = |keys: &[&str]| keys.iter().any(|k| names.contains(k));
    let (cred_keys, cred_values) = match &want.plan.mode {
        Mode::WebIdentity { role_arn } => (
            [ROLE_ARN_ENV, TOKEN_FILE_ENV],
            [role_arn.as_str(), want.token_file],
        ),
        Mode::PodIdentity { full_uri } => (
            [FULL_URI_ENV, AUTH_TOKEN_FILE_ENV],
            [full_uri.as_str(), want.token_file],
        ),
    };
    let creds_defined = defined(&cred_keys);
    let region_defined = defined(&[REGION_ENV, DEFAULT_REGION_ENV]);
    let sts_defined = defined(&[REGIONAL_STS_ENV]);
    if creds_defined && region_defined && sts_defined {
        return;
    }

    let mut add_env = Vec::new();
    if !sts_defined && want.plan.regional_sts {
        add_env.push((REGIONAL_STS_ENV, "regional"));
    }
    if let (false, Some(region)) = (region_defined, want.region) {
        add_env.push((DEFAULT_REGION_ENV, region));
        add_env.push((REGION_ENV, region));
    }
    if !creds_defined {
        add_env.extend(cred_keys.into_iter().zip(cred_values));
    }
    let env_values = add_env
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}));
    append(ops, &format!("{base}/env"), env.is_some(), env_values);

    let mounts = container.get("volumeMounts").and_then(Value::as_array);
    let has_mount = mounts
        .into_iter()
        .flatten()
        .any(|m| name_of(m) == Some(&want.plan.volume_name));
    if !has_mount {
        let mount = json!({
            "name": want.plan.volume_name,
            "readOnly": true,
            "mountPath": want.plan.mount_path,
        });
        append(
            ops,
            &format!("{base}/volumeMounts"),
            mounts.is_some(),
            std::iter::once(mount),
        );
    }
}

/// Append to the array at `path`: one `add …/-` per item, or one add of the whole (new) array
/// when there is none yet.
fn append(ops: &mut Vec<PatchOp>, path: &str, exists: bool, items: impl Iterator<Item = Value>) {
    if exists {
        ops.extend(items.map(|v| PatchOp::add(format!("{path}/-"), v)));
    } else {
        let items: Vec<Value> = items.collect();
        if !items.is_empty() {
            ops.push(PatchOp::add(path, Value::Array(items)));
        }
    }
}

/// Pass `hit` through, counting one lookup in the skip list, so that a test can
/// check that the cost per container does not grow with the list.
fn probe_skip(hit: bool) -> bool {
    #[cfg(test)]
    tests::SKIP_PROBES.with(|c| c.set(c.get() + 1));
    hit
}

fn name_of(v: &Value) -> Option<&String> {
    match v.get("name") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// A JSON-pointer reference token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Go's `filepath.Join` on Unix: join, then clean (`//`, `.`, `..`, trailing `/`).
fn join_path(dir: &str, file: &str) -> String {
    let joined = match (dir.is_empty(), file.is_empty()) {
        (true, true) => return String::new(),
        (true, false) => file.to_owned(),
        (false, true) => dir.to_owned(),
        (false, false) => format!("{dir}/{file}"),
    };
    let rooted = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// The first record of `value` read as Go's `encoding/csv` reads it (what upstream does with
/// `skip-containers`): comma-separated, double-quoted fields allowed, blank lines skipped. A
/// malformed record means no container is skipped, as upstream.
fn first_csv_record(value: &str) -> Vec<String> {
    let Some(line) = value
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .find(|l| !l.is_empty())
    else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    // A quoted field across lines is beyond what a container name needs.
                    None => return Vec::new(),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return fields;
                }
                Some(',') => fields.push(field),
                Some(_) => return Vec::new(),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return fields;
                    }
                    Some(',') => break,
                    Some('"') => return Vec::new(),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests;
