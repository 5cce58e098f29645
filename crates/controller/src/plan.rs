//! Pure planning for the pull-secret controller: from a resource's spec, the observed cluster
//! state and (maybe) a fresh credential, which Secrets to write, which to delete, which
//! same-named Secrets to leave alone, and which ServiceAccounts to patch. No I/O, no async: the
//! reconciler fetches, calls [`plan`] or [`cleanup`], and applies the [`Plan`] in order —
//! secret writes, then service-account patches, then secret deletions.
//!
//! Ownership is by label and type: a Secret is irsa's only when it carries
//! `app.kubernetes.io/managed-by: irsa`, and this resource's only when its owner labels
//! ([`Owner::labels`]) name it too and it is of the type irsa creates
//! ([`SecretState::is_written_by`]). Nothing else is ever written or deleted.

mod select;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use irsa_core::docker_config::{DockerConfig, RegistryAuth};
use irsa_core::secret::SecretString;
use irsa_k8s::{
    ClusterPullSecret, DeletionPolicy, NamespaceSelection, PullSecret, SecretSpec, TargetCounts,
    TargetProblem,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use crate::labels::{LabelMap, Labels};

// The refresh schedule and backoff shared with irsa-aws's cache have their home in irsa-core.
pub use irsa_core::refresh::{
    BACKOFF_BASE, BACKOFF_CAP, MAX_EXPIRY_MARGIN_SECS, MIN_REFRESH_SECS, REFRESH_JITTER,
    failure_backoff,
};
pub use select::{glob_matches, selector_matches, selects};

// Labels and annotations have their home in irsa-core; CONTENT_HASH_ANNOTATION holds
// DesiredSecret::content_hash.
pub use irsa_core::names::{
    CONTENT_HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_KIND_LABEL,
    OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL,
};
pub use irsa_core::pull_secret_record::{
    ADDED_PULL_SECRETS_ANNOTATION, AddedPullSecrets, parse_added_pull_secrets,
};
/// The Secret type irsa writes.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The data key of a [`DOCKER_CONFIG_JSON_TYPE`] Secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";

/// The resource a plan is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A ClusterPullSecret.
    Cluster {
        /// Its name.
        name: String,
    },
    /// A PullSecret.
    Namespaced {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Owner {
    /// The labels that mark a Secret as written for this owner, [`MANAGED_BY_LABEL`] included.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels =
            BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())]);
        let (kind, name) = match self {
            Owner::Cluster { name } => ("ClusterPullSecret", name),
            Owner::Namespaced { namespace, name } => {
                labels.insert(OWNER_NAMESPACE_LABEL.to_owned(), namespace.clone());
                ("PullSecret", name)
            }
        };
        labels.insert(OWNER_KIND_LABEL.to_owned(), kind.to_owned());
        labels.insert(OWNER_NAME_LABEL.to_owned(), name.clone());
        labels
    }

    /// Whether an object with these labels was written for this owner.
    pub fn owns(&self, labels: &impl LabelMap) -> bool {
        let ns = labels.label(OWNER_NAMESPACE_LABEL);
        let ours = |k: &str| labels.label(k);
        is_managed(labels)
            && match self {
                Owner::Cluster { name } => {
                    ours(OWNER_KIND_LABEL) == Some("ClusterPullSecret")
                        && ours(OWNER_NAME_LABEL) == Some(name)
                        && ns.is_none()
                }
                Owner::Namespaced { namespace, name } => {
                    ours(OWNER_KIND_LABEL) == Some("PullSecret")
                        && ours(OWNER_NAME_LABEL) == Some(name)
                        && ns == Some(namespace.as_str())
                }
            }
    }

    /// A label selector string (`k=v,…`) for listing this owner's Secrets.
    pub fn label_selector(&self) -> String {
        self.labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Cluster { name } => write!(f, "ClusterPullSecret/{name}"),
            Owner::Namespaced { namespace, name } => write!(f, "PullSecret/{namespace}/{name}"),
        }
    }
}

/// Whether an object carries `app.kubernetes.io/managed-by: irsa`.
pub fn is_managed(labels: &impl LabelMap) -> bool {
    labels.label(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
}

/// Which namespaces a resource writes into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Targets<'a> {
    /// A ClusterPullSecret's selection.
    Selection(&'a NamespaceSelection),
    /// A PullSecret's own namespace.
    Namespace(&'a str),
}

/// A resource reduced to what planning needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject<'a> {
    /// Who owns the written objects.
    pub owner: Owner,
    /// Registries, secret shape and policies.
    pub spec: &'a SecretSpec,
    /// Where secrets go.
    pub targets: Targets<'a>,
}

impl<'a> Subject<'a> {
    /// The subject of a ClusterPullSecret.
    pub fn cluster(cps: &'a ClusterPullSecret) -> Self {
        Self {
            owner: Owner::Cluster {
                name: cps.metadata.name.clone().unwrap_or_default(),
            },
            spec: &cps.spec.secret,
            targets: Targets::Selection(&cps.spec.namespaces),
        }
    }

    /// The subject of a PullSecret (`None` without a namespace, which the API server always sets).
    pub fn namespaced(ps: &'a PullSecret) -> Option<Self> {
        let namespace = ps.metadata.namespace.as_deref()?;
        Some(Self {
            owner: Owner::Namespaced {
                namespace: namespace.to_owned(),
                name: ps.metadata.name.clone().unwrap_or_default(),
            },
            spec: &ps.spec.secret,
            targets: Targets::Namespace(namespace),
        })
    }

    /// Whether this resource may read, write or delete anything in `namespace`: a PullSecret
    /// only in its own, whatever labels objects elsewhere carry (a tenant may label its own
    /// secrets as anyone's).
    pub fn may_touch(&self, namespace: &str) -> bool {
        match self.targets {
            Targets::Selection(_) => true,
            Targets::Namespace(own) => namespace == own,
        }
    }

    fn serves(&self, ns: &NamespaceState) -> bool {
        match self.targets {
            Targets::Selection(selection) => selects(selection, ns),
            Targets::Namespace(own) => !ns.terminating && ns.name == own,
        }
    }
}

/// A namespace as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceState {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Whether it is being deleted (phase `Terminating` or a deletion timestamp).
    pub terminating: bool,
    /// `metadata.uid`: a namespace deleted and made again under its name has another one.
    pub uid: Option<String>,
}

/// A namespace as [`Written`] tells them apart: its name and uid.
pub type NamespaceId<'a> = (&'a str, Option<&'a str>);

impl NamespaceState {
    /// An active namespace without labels.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            labels: Labels::default(),
            terminating: false,
            uid: None,
        }
    }

    /// With a uid. Tests only.
    #[cfg(test)]
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_owned());
        self
    }

    /// Its name and uid.
    pub fn id(&self) -> NamespaceId<'_> {
        (&self.name, self.uid.as_deref())
    }

    /// With a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key, value);
        self
    }

    /// Being deleted.
    pub fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }
}

/// A Secret as observed: identity, labels, type and the content-hash annotation (never data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretState {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Its type (`None` is `Opaque`).
    pub type_: Option<String>,
    /// The value of [`CONTENT_HASH_ANNOTATION`], if any.
    pub content_hash: Option<String>,
    /// `metadata.uid` and `metadata.resourceVersion`: every update or delete of this Secret is
    /// conditional on them, so that it never reaches an object irsa did not check.
    pub checked: Checked,
    /// When the credential in it expires, as its `irsa.dev/expires-at` annotation says (Unix
    /// seconds). Anyone who may edit the Secret may change it: it only orders writes (an
    /// expired or soon-expiring Secret is rewritten first), never vouches for a credential.
    pub expires_at: Option<i64>,
    /// `metadata.creationTimestamp` (Unix seconds), set by the API server: the cleanup of a
    /// deleted resource leaves alone a Secret made after the deletion ([`CleanupRound`]).
    pub created_at: Option<i64>,
}

/// The identity and version of an object as irsa checked it (both set by the API server).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checked {
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
}

impl Checked {
    /// Reads them from an object's metadata.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }
    }
}

impl SecretState {
    /// A user's secret: no labels, type `Opaque`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels: Labels::default(),
            type_: None,
            content_hash: None,
            checked: Checked::default(),
            expires_at: None,
            created_at: None,
        }
    }

    /// A secret as irsa writes it for `owner` with content hash `hash`.
    pub fn owned(namespace: &str, name: &str, owner: &Owner, hash: &str) -> Self {
        Self {
            labels: Labels::from(owner.labels()),
            type_: Some(DOCKER_CONFIG_JSON_TYPE.to_owned()),
            content_hash: Some(hash.to_owned()),
            ..Self::new(namespace, name)
        }
    }

    /// With a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key, value);
        self
    }

    /// With a type. Tests only.
    #[cfg(test)]
    pub fn with_type(mut self, type_: &str) -> Self {
        self.type_ = Some(type_.to_owned());
        self
    }

    /// Made at `created_at` (Unix seconds).
    pub fn created_at(mut self, created_at: i64) -> Self {
        self.created_at = Some(created_at);
        self
    }

    /// Claiming to expire at `expires_at` (Unix seconds). Tests only.
    #[cfg(test)]
    pub fn expiring_at(mut self, expires_at: i64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Reads the observed state of a Secret (its data stays where it is).
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        Some(Self {
            namespace: secret.metadata.namespace.clone()?,
            name: secret.metadata.name.clone()?,
            labels: secret
                .metadata
                .labels
                .as_ref()
                .map(Labels::from)
                .unwrap_or_default(),
            type_: secret.type_.clone(),
            content_hash: secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONTENT_HASH_ANNOTATION).cloned()),
            checked: Checked::of(&secret.metadata),
            expires_at: secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::provenance::EXPIRES_AT_ANNOTATION))
                .and_then(|t| irsa_core::time::parse_rfc3339(t)),
            created_at: secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
        })
    }

    /// Whether this Secret is `owner`'s: it carries the owner's labels *and* is of the type
    /// irsa creates. The type is immutable and irsa only ever creates
    /// [`DOCKER_CONFIG_JSON_TYPE`] Secrets, so a Secret of another type carrying irsa's labels
    /// was made by someone else (a tenant may label its own Secrets as anyone's): irsa never
    /// updates (the API server would refuse with 422 anyway), replaces or deletes it.
    pub fn is_written_by(&self, owner: &Owner) -> bool {
        owner.owns(&self.labels) && self.type_.as_deref() == Some(DOCKER_CONFIG_JSON_TYPE)
    }

    /// With a uid and resourceVersion, as the API server sets them.
    pub fn checked(mut self, uid: &str, resource_version: &str) -> Self {
        self.checked = Checked {
            uid: Some(uid.to_owned()),
            resource_version: Some(resource_version.to_owned()),
        };
        self
    }
}

/// A ServiceAccount as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountState {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `metadata.resourceVersion`, guarding patches against concurrent changes.
    pub resource_version: Option<String>,
    /// Names in `imagePullSecrets`, in order.
    pub image_pull_secrets: Vec<String>,
    /// The entries irsa added, per owner ([`ADDED_PULL_SECRETS_ANNOTATION`]).
    pub added: AddedPullSecrets,
    /// Whether `metadata.annotations` exists (a patch adds the record into it, or creates it).
    pub has_annotations: bool,
    /// Whether [`ADDED_PULL_SECRETS_ANNOTATION`] exists (readable or not).
    pub has_record: bool,
}

impl ServiceAccountState {
    /// A service account without image pull secrets.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            resource_version: None,
            image_pull_secrets: Vec::new(),
            added: AddedPullSecrets::new(),
            has_annotations: false,
            has_record: false,
        }
    }

    /// With these `imagePullSecrets`.
    pub fn pull_secrets(mut self, names: &[&str]) -> Self {
        self.image_pull_secrets = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Recording that `owner` added these entries. Tests only.
    #[cfg(test)]
    pub fn added_by(mut self, owner: &Owner, names: &[&str]) -> Self {
        self.added
            .entry(owner.to_string())
            .or_default()
            .extend(names.iter().map(|n| (*n).to_owned()));
        self.has_annotations = true;
        self.has_record = true;
        self
    }

    /// Whether `owner` recorded adding the entry `secret`.
    pub fn added_entry(&self, owner: &Owner, secret: &str) -> bool {
        self.added
            .get(&owner.to_string())
            .is_some_and(|names| names.contains(secret))
    }
}

/// What the reconciler observed: all namespaces, the Secrets that matter (every Secret named
/// `spec.secretName` and every Secret carrying this owner's labels), and the ServiceAccounts of
/// the namespaces involved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Namespaces.
    pub namespaces: Vec<NamespaceState>,
    /// Relevant Secrets.
    pub secrets: Vec<SecretState>,
    /// ServiceAccounts.
    pub service_accounts: Vec<ServiceAccountState>,
}

impl Observed {
    /// With a namespace.
    pub fn namespace(mut self, ns: NamespaceState) -> Self {
        self.namespaces.push(ns);
        self
    }

    /// With a secret.
    pub fn secret(mut self, s: SecretState) -> Self {
        self.secrets.push(s);
        self
    }

    /// With a service account.
    pub fn service_account(mut self, sa: ServiceAccountState) -> Self {
        self.service_accounts.push(sa);
        self
    }
}

/// What planning reads of the cluster: the namespaces a resource may serve, the Secrets that
/// matter (every Secret named `spec.secretName` and every Secret carrying the owner's labels)
/// and the ServiceAccounts involved. [`Observed`] holds them (tests build it); the index lends
/// them without copying (`Index::view`).
pub trait View {
    /// Namespaces.
    fn namespaces(&self) -> impl Iterator<Item = &NamespaceState>;
    /// One of [`View::namespaces`], by name.
    fn namespace(&self, name: &str) -> Option<&NamespaceState>;
    /// Relevant Secrets.
    fn secrets(&self) -> impl Iterator<Item = &SecretState>;
    /// The relevant ServiceAccounts of `namespace`.
    fn service_accounts_in(&self, namespace: &str) -> impl Iterator<Item = &ServiceAccountState>;
}

impl View for Observed {
    fn namespaces(&self) -> impl Iterator<Item = &NamespaceState> {
        self.namespaces.iter()
    }

    fn namespace(&self, name: &str) -> Option<&NamespaceState> {
        self.namespaces.iter().find(|ns| ns.name == name)
    }

    fn secrets(&self) -> impl Iterator<Item = &SecretState> {
        self.secrets.iter()
    }

    fn service_accounts_in(&self, namespace: &str) -> impl Iterator<Item = &ServiceAccountState> {
        self.service_accounts
            .iter()
            .filter(move |sa| sa.namespace == namespace)
    }
}

/// The Secret irsa wants in one namespace. `Debug` never shows the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSecret {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Owner labels, [`MANAGED_BY_LABEL`] and the user's extra labels (shared by every
    /// namespace's copy, like the document).
    pub labels: Arc<BTreeMap<String, String>>,
    /// The user's extra annotations and [`CONTENT_HASH_ANNOTATION`].
    pub annotations: Arc<BTreeMap<String, String>>,
    /// The rendered `.dockerconfigjson`, shared by every namespace's copy (a fan-out to
    /// thousands of namespaces holds one document, not thousands).
    pub docker_config_json: Arc<SecretString>,
    /// The extra field asked for by `spec.usernamePasswordKey`: its data key and
    /// `username:password` of the single registry (shared like the document).
    pub username_password: Option<(String, Arc<SecretString>)>,
    /// `sha256:<hex>` over everything irsa sets on the Secret (see [`content_hash`]).
    pub content_hash: String,
}

impl DesiredSecret {
    /// The Secret to apply (server-side apply; the field manager is the reconciler's).
    pub fn to_secret(&self) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some((*self.labels).clone()),
                annotations: Some((*self.annotations).clone()),
                ..ObjectMeta::default()
            },
            type_: Some(DOCKER_CONFIG_JSON_TYPE.to_owned()),
            data: Some(self.data()),
            ..Secret::default()
        }
    }

    /// The Secret's data: `.dockerconfigjson`, and the `username:password` field if asked for.
    fn data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([(
            DOCKER_CONFIG_JSON_KEY.to_owned(),
            ByteString(self.docker_config_json.expose().as_bytes().to_vec()),
        )]);
        if let Some((key, value)) = &self.username_password {
            data.insert(key.clone(), ByteString(value.expose().as_bytes().to_vec()));
        }
        data
    }
}

/// The content hash irsa writes into [`CONTENT_HASH_ANNOTATION`]: `sha256:` and the lowercase hex
/// SHA-256 of a length-prefixed encoding of the Secret type, the labels, the user's annotations
/// and the rendered `.dockerconfigjson`, then, only when `spec.usernamePasswordKey` asks for
/// it, the extra field's key and value (so without it the hash is what it always was, and
/// existing Secrets are not rewritten). It changes when anything irsa sets changes, so equal
/// hashes mean a write would be a no-op. It reveals nothing usable about the credentials: the
/// rendered document holds fresh high-entropy registry tokens, and SHA-256 is one-way.
pub fn content_hash(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    docker_config_json: &SecretString,
    username_password: Option<(&str, &SecretString)>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(DOCKER_CONFIG_JSON_TYPE.as_bytes());
    for map in [labels, annotations] {
        field(&(map.len() as u64).to_be_bytes());
        for (k, v) in map {
            field(k.as_bytes());
            field(v.as_bytes());
        }
    }
    field(docker_config_json.expose().as_bytes());
    if let Some((key, value)) = username_password {
        field(key.as_bytes());
        field(value.expose().as_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The Secret `owner` wants in `namespace`: type `kubernetes.io/dockerconfigjson`, named
/// `spec.secretName`, labelled with the owner labels and the user's `secretLabels` (owner labels
/// win), annotated with `secretAnnotations` and [`CONTENT_HASH_ANNOTATION`]. With
/// `spec.usernamePasswordKey` (validated: one registry), it also holds that key with
/// `username:password` of the credential's one registry. That field is only ever written, never
/// read back: a restarted controller adopts a credential from the sealed `.dockerconfigjson`
/// alone ([`crate::provenance`]) and renders the field from it again, so a tenant's forged field
/// is never taken for a credential.
pub fn desired_secret(
    owner: &Owner,
    spec: &SecretSpec,
    namespace: &str,
    config: &DockerConfig,
) -> DesiredSecret {
    let mut labels = spec.secret_labels.clone();
    labels.extend(owner.labels());
    let mut annotations = spec.secret_annotations.clone();
    annotations.remove(CONTENT_HASH_ANNOTATION);
    let docker_config_json = config.render();
    let username_password = spec.username_password_key.as_ref().and_then(|key| {
        let mut auths = config.auths.values();
        match (auths.next(), auths.next()) {
            (Some(auth), None) => Some((key.clone(), Arc::new(username_password(auth)))),
            // Validation refuses the key with several registries; a credential for none or
            // several (never planned) gets no field rather than a wrong one.
            _ => None,
        }
    });
    let hash = content_hash(
        &labels,
        &annotations,
        &docker_config_json,
        username_password
            .as_ref()
            .map(|(k, v)| (k.as_str(), v.as_ref())),
    );
    annotations.insert(CONTENT_HASH_ANNOTATION.to_owned(), hash.clone());
    DesiredSecret {
        namespace: namespace.to_owned(),
        name: spec.secret_name.clone(),
        labels: Arc::new(labels),
        annotations: Arc::new(annotations),
        docker_config_json: Arc::new(docker_config_json),
        username_password,
        content_hash: hash,
    }
}

/// `username:password`, as Argo CD Image Updater's `secret:` credentials read it.
fn username_password(auth: &RegistryAuth) -> SecretString {
    let mut s = String::with_capacity(auth.username.len() + 1 + auth.password.expose().len());
    s.push_str(&auth.username);
    s.push(':');
    s.push_str(auth.password.expose());
    SecretString::new(s)
}

/// How a Secret is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// No Secret of that name exists.
    Create,
    /// Ours, with a different content hash.
    Update,
}

/// One Secret to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWrite {
    /// How.
    pub kind: WriteKind,
    /// What.
    pub secret: DesiredSecret,
    /// The existing Secret as checked (for [`WriteKind::Update`]): the write is conditional
    /// on it.
    pub existing: Checked,
    /// When the existing Secret's credential expires, as it claims ([`SecretState::expires_at`]).
    pub expires_at: Option<i64>,
}

/// One of irsa's Secrets to delete, conditional on the uid and resourceVersion checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What was checked.
    pub checked: Checked,
    /// The resource it is deleted for: the Secret is read again before the deletion, and left
    /// alone unless it is still this owner's, of the type irsa writes.
    pub owner: Owner,
}

/// A Secret to delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Why a same-named Secret is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictReason {
    /// It does not carry `app.kubernetes.io/managed-by: irsa`: a user's secret.
    NotManaged,
    /// It is irsa's, but written for another resource.
    OtherOwner {
        /// The other resource, as its labels name it (`ClusterPullSecret/x`).
        owner: String,
    },
    /// It carries this resource's labels but is of a type irsa never creates: someone else
    /// made it and labelled it as irsa's.
    NotIrsaType {
        /// Its type.
        type_: String,
    },
}

/// Most characters of a tenant-chosen Secret type quoted in a message (a Kubernetes name's
/// length): the type is not bounded by the API server beyond the object's size.
const MAX_QUOTED_TYPE: usize = 63;

/// `s` escaped and quoted like Debug, its first `max` characters only (then `…`), so that
/// neither its length nor its escapes can inflate a message.
fn quoted(s: &str, max: usize) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(max).collect();
    let more = if chars.next().is_some() { "…" } else { "" };
    format!("{head:?}{more}")
}

/// A target namespace holding a same-named Secret irsa must not touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The Secret.
    pub secret: SecretRef,
    /// Why it is not ours.
    pub reason: ConflictReason,
}

impl Conflict {
    /// A message for an Event or the status: what is in the way and what to do.
    pub fn message(&self) -> String {
        let SecretRef { namespace, name } = &self.secret;
        let message = match &self.reason {
            ConflictReason::NotManaged => format!(
                "secret {namespace}/{name} exists and is not managed by irsa (no label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}); \
                 it is left untouched: delete or rename it, or choose another spec.secretName"
            ),
            ConflictReason::OtherOwner { owner } => format!(
                "secret {namespace}/{name} is written by {owner}; it is left untouched: \
                 give one of the two resources another spec.secretName"
            ),
            ConflictReason::NotIrsaType { type_ } => format!(
                "secret {namespace}/{name} carries irsa's labels but is of type {}, which irsa \
                 never creates (it writes {DOCKER_CONFIG_JSON_TYPE}); it is left untouched: \
                 delete it and irsa writes its own",
                quoted(type_, MAX_QUOTED_TYPE)
            ),
        };
        TargetProblem::capped(message)
    }
}

/// A change to one ServiceAccount's `imagePullSecrets`: entries to append and entries to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountPatch {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// Secret names to append (absent from the observed list).
    pub add: Vec<String>,
    /// Secret names whose entries are removed.
    pub remove: Vec<String>,
    /// The list as observed, which the patch is computed against.
    pub observed: Vec<String>,
    /// The observed `resourceVersion`, if known.
    pub resource_version: Option<String>,
    /// The record of irsa's entries after the patch, when it changes.
    pub added: Option<AddedPullSecrets>,
    /// Whether `metadata.annotations` exists.
    pub has_annotations: bool,
    /// Whether [`ADDED_PULL_SECRETS_ANNOTATION`] exists.
    pub has_record: bool,
}

impl ServiceAccountPatch {
    /// An RFC 6902 JSON patch. `imagePullSecrets` is an atomic list on ServiceAccounts (a merge
    /// patch would replace it), so entries are removed by index and appended at the end, guarded
    /// by `test` operations on the `resourceVersion` and on each removed entry: a concurrent
    /// change makes the patch fail (and the reconciler retry) instead of clobbering someone
    /// else's entry.
    pub fn json_patch(&self) -> Value {
        let mut ops = Vec::new();
        if let Some(rv) = &self.resource_version {
            ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
        }
        // From the end, so that earlier indices stay valid.
        for (i, n) in self.observed.iter().enumerate().rev() {
            if self.remove.contains(n) {
                let path = format!("/imagePullSecrets/{i}");
                ops.push(json!({"op": "test", "path": path, "value": {"name": n}}));
                ops.push(json!({"op": "remove", "path": path}));
            }
        }
        if !self.add.is_empty() {
            let entries: Vec<Value> = self.add.iter().map(|n| json!({"name": n})).collect();
            if self.observed.is_empty() {
                // The field may be absent: create the list.
                ops.push(json!({"op": "add", "path": "/imagePullSecrets", "value": entries}));
            } else {
                for e in entries {
                    ops.push(json!({"op": "add", "path": "/imagePullSecrets/-", "value": e}));
                }
            }
        }
        if let Some(added) = &self.added {
            let path = "/metadata/annotations/irsa.dev~1added-pull-secrets";
            let value = irsa_core::pull_secret_record::render_added_pull_secrets(added);
            match (added.is_empty(), self.has_record, self.has_annotations) {
                (true, true, _) => ops.push(json!({"op": "remove", "path": path})),
                (true, false, _) => {}
                // `add` replaces a member that exists.
                (false, _, true) => ops.push(json!({"op": "add", "path": path, "value": value})),
                (false, _, false) => ops.push(json!({
                    "op": "add", "path": "/metadata/annotations",
                    "value": {ADDED_PULL_SECRETS_ANNOTATION: value},
                })),
            }
        }
        Value::Array(ops)
    }

    /// The list after the patch.
    pub fn apply_to(&self, list: &[String]) -> Vec<String> {
        let mut out: Vec<String> = list
            .iter()
            .filter(|n| !self.remove.contains(n))
            .cloned()
            .collect();
        for n in &self.add {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }
}

/// The state of one target namespace after the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    /// Our Secret is there and current: nothing to do.
    Current,
    /// Our Secret is written by this plan (in this round or a later one).
    Writing,
    /// Our Secret is there, but no fresh credential was available to check it; it is kept.
    Kept,
    /// No Secret and no credential to write one: waiting for a refresh to succeed.
    Pending,
    /// A same-named Secret irsa must not touch.
    Conflicted(ConflictReason),
}

impl TargetState {
    /// Whether the namespace holds (or is being given) our Secret: counted ready.
    pub fn has_secret(&self) -> bool {
        matches!(
            self,
            TargetState::Current | TargetState::Writing | TargetState::Kept
        )
    }
}

/// How many target namespaces are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Every target namespace.
    pub desired: usize,
    /// Current, written or kept.
    pub ready: usize,
    /// Pending.
    pub pending: usize,
    /// Conflicted.
    pub conflicted: usize,
}

/// Everything the reconciler should do for one resource in one round. Apply in this order:
/// `writes`, then `service_account_patches`, then `deletions`.
///
/// A round materializes only what it does: its writes, patches and deletions (at most
/// [`Round::max_writes`] in all), its conflicts, the states of the namespaces asked about, and
/// a bounded list of pending namespaces; every target namespace is only counted. A fan-out of N namespaces in
/// rounds of C writes thus builds O(N) writes in all, not O(N²/C).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Secrets to create or update (server-side apply), most urgent first.
    pub writes: Vec<SecretWrite>,
    /// Secret writes, ServiceAccount patches and deletions planned but left for the next round
    /// ([`Round::max_writes`]).
    pub left: usize,
    /// Our Secrets to delete: in namespaces no longer served, under an old name, or on cleanup.
    pub deletions: Vec<Deletion>,
    /// Same-named Secrets left alone (report an Event for each).
    pub conflicts: Vec<Conflict>,
    /// ServiceAccount patches.
    pub service_account_patches: Vec<ServiceAccountPatch>,
    /// Target namespaces by state.
    pub tally: Tally,
    /// The first [`TargetProblem::MAX_REPORTED`] pending namespaces, sorted by name.
    pub pending: Vec<String>,
    /// The state of each target namespace in [`Round::watched`] or changed by this plan.
    pub states: BTreeMap<String, TargetState>,
}

impl Plan {
    /// Whether the plan changes nothing in the cluster.
    pub fn is_noop(&self) -> bool {
        self.writes.is_empty()
            && self.deletions.is_empty()
            && self.service_account_patches.is_empty()
    }

    /// Target counts for the status. Ready counts secrets that are current, written or kept.
    pub fn counts(&self) -> TargetCounts {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let t = &self.tally;
        TargetCounts::new(
            count(t.desired),
            count(t.ready),
            count(t.pending),
            count(t.conflicted),
        )
    }

    /// Failing and conflicted namespaces for the status, at most [`TargetProblem::MAX_REPORTED`].
    pub fn problems(&self) -> Vec<TargetProblem> {
        let conflicts = self.conflicts.iter().map(|c| TargetProblem {
            namespace: c.secret.namespace.clone(),
            reason: "Conflict".to_owned(),
            message: c.message(),
        });
        let pending = self.pending.iter().map(|ns| TargetProblem {
            namespace: ns.clone(),
            reason: "Pending".to_owned(),
            message: "no credentials yet: the secret is written once a refresh succeeds".to_owned(),
        });
        conflicts
            .chain(pending)
            .take(TargetProblem::MAX_REPORTED)
            .collect()
    }
}

/// How close to its expiry a Secret's rewrite is as urgent as a missing Secret's (group 1 of
/// [`plan_round`]'s budget): the largest margin the refresh policy keeps before expiry
/// ([`irsa_core::refresh::MAX_EXPIRY_MARGIN_SECS`], 5 minutes). A Secret this close to expiry
/// is past the latest point its refresh was due, so it must not wait a round (or many, behind
/// a tenant's ServiceAccounts) and expire; one refreshed on schedule (half its lifetime, hours
/// for ECR) is still far from it.
pub const URGENT_MARGIN_SECS: i64 = irsa_core::refresh::MAX_EXPIRY_MARGIN_SECS;

/// The order in which a round takes its candidate writes: urgent ones (creates, and updates of
/// Secrets expiring within [`URGENT_MARGIN_SECS`]) before routine ones; within each, the
/// Secrets irsa has not yet written the current content into before the *rewrites*; then by
/// [`urgency`]; then (beside it in the candidate) by namespace. ServiceAccount patches go after
/// the urgent writes that are not rewrites, ahead of every rewrite ([`plan_round`]).
///
/// Why rewrites go last (review finding L1): a tenant may edit its own copies (content changed,
/// `irsa.dev/expires-at` forged into the past or removed), and such a Secret ranks as expired
/// now, tied with a genuinely expired Secret of another namespace. The namespace name alone
/// broke the tie, so a tenant holding a chunk's worth of low-sorting namespaces and forging
/// them again after every round took the whole budget each round, and a genuinely expired
/// Secret in namespace `z` waited for ever. What a tenant cannot control is irsa's own record
/// of what it wrote ([`Written`]): a namespace irsa already wrote the current content into,
/// whose Secret differs again (edited, or deleted and left missing), was changed behind irsa's
/// back, and its rewrite waits behind every Secret that is out of date for a reason irsa knows
/// (a refreshed credential, a new namespace). A forger's namespaces are thus rewritten once
/// each as any other, and afterwards only with what is left of a round once the genuine
/// urgent writes and the ServiceAccount patches are in (review 23, L1: urgent rewrites ahead of
/// the patches let a tenant holding a chunk's worth of namespaces stop every other namespace's
/// patches). They still go ahead of routine refreshes: those are of Secrets valid for longer
/// than [`URGENT_MARGIN_SECS`] and turn urgent (class 0, first) before they expire, whereas a
/// deleted or broken copy (an admin's clean-up, a GitOps prune, not always a forger) stops pulls
/// now. A namespace deleted and made again under the same name is another namespace to the
/// record (it has another uid, [`NamespaceId`]), so its write is not a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// 0: urgent, not a rewrite; 1: urgent rewrite; 2: routine; 3: routine rewrite. Patches
    /// go between 0 and 1.
    class: u8,
    urgency: (u8, i64),
}

impl Rank {
    fn new(urgent: bool, rewrite: bool, urgency: (u8, i64)) -> Self {
        Self {
            class: u8::from(!urgent) * 2 + u8::from(rewrite),
            urgency,
        }
    }

    /// Whether it goes ahead of the ServiceAccount patches.
    fn precedes_patches(&self) -> bool {
        self.class == 0
    }
}

/// What irsa itself wrote for one owner: the namespaces ([`NamespaceId`]: by name and uid) it
/// wrote one content (by
/// [`DesiredSecret::content_hash`]) into, since that content became current. The controller
/// keeps one per resource and records each round's successful writes ([`Written::record`]);
/// [`plan_round`] ranks a rewrite of such a namespace after the other writes ([`Rank`]).
/// Nothing in it comes from the cluster, so a tenant cannot forge it. It starts empty (after
/// a restart, every namespace is written once in the usual order before a tampered one is
/// known) and is cleared when the content changes (a refreshed credential makes every Secret
/// out of date for a reason irsa knows).
///
/// Namespaces are held as 64-bit hashes under a per-process random key, not as names: a
/// record of a 10,000-namespace fan-out then takes about 160 KB, not a copy of every name. A
/// collision only moves one write behind others in a round, and nobody can aim one without
/// the key.
#[derive(Debug, Clone, Default)]
pub struct Written {
    content_hash: String,
    namespaces: std::collections::HashSet<u64>,
    key: std::hash::RandomState,
}

impl Written {
    /// Records that `content_hash` was written into `namespaces`; forgets the namespaces
    /// recorded for another content.
    pub fn record<'a>(
        &mut self,
        content_hash: &str,
        namespaces: impl IntoIterator<Item = NamespaceId<'a>>,
    ) {
        if self.content_hash != content_hash {
            self.content_hash = content_hash.to_owned();
            self.namespaces = std::collections::HashSet::new();
        }
        for ns in namespaces {
            self.namespaces.insert(self.fingerprint(ns));
        }
    }

    /// Whether irsa wrote `content_hash` into `namespace` (since it became current).
    pub fn wrote(&self, content_hash: &str, namespace: NamespaceId<'_>) -> bool {
        self.content_hash == content_hash && self.namespaces.contains(&self.fingerprint(namespace))
    }

    fn fingerprint(&self, namespace: NamespaceId<'_>) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(namespace)
    }
}

/// The order of urgency of a write at `now`: creates (no secret yet) first, then updates by the
/// expiry their secrets claim, soonest first; namespace order among equals. The claim is the
/// `irsa.dev/expires-at` annotation, which a tenant may edit in its own namespace: an expiry
/// before `now`, or none, counts as "expired at `now`", so a forged past (or removed) expiry
/// ranks with the genuinely expired Secrets of other namespaces, never ahead of them nor of a
/// missing one.
fn urgency(kind: WriteKind, expires_at: Option<i64>, now: i64) -> (u8, i64) {
    match kind {
        WriteKind::Create => (0, i64::MIN),
        WriteKind::Update => (1, expires_at.map_or(now, |at| at.max(now))),
    }
}

/// Bounds one reconciliation's secret writes to `max`, most urgent at `now` first: namespaces
/// without the secret (creates, in namespace order), then the updates by the expiry their
/// secrets claim, soonest first (an expired or unknown one as of `now`), in namespace order
/// among equals. Returns how many writes were left for the next round. [`plan_round`] without
/// a [`Round::written`] record takes the same writes without building the others; this is the
/// reference it is tested against.
#[cfg(test)]
pub fn urgent_first(writes: &mut Vec<SecretWrite>, max: usize, now: i64) -> usize {
    writes.sort_by(|a, b| {
        (urgency(a.kind, a.expires_at, now), &a.secret.namespace)
            .cmp(&(urgency(b.kind, b.expires_at, now), &b.secret.namespace))
    });
    let left = writes.len().saturating_sub(max);
    writes.truncate(max);
    left
}

/// The bounds of one round of a fan-out ([`plan_round`]).
#[derive(Debug, Clone, Copy)]
pub struct Round<'r> {
    /// Most changes to plan: creates and updates of secrets expiring within
    /// [`URGENT_MARGIN_SECS`] of [`Round::now`] first
    /// ([`urgent_first`]'s order), then ServiceAccount patches, then the updates of still-valid
    /// secrets (same order), then deletions, in namespace and name order.
    /// kube-runtime never reconciles one resource twice at once, so without the bound a new
    /// namespace would wait behind a whole fan-out of refreshes (or a tenant's thousands of
    /// forged Secrets to delete or ServiceAccounts to patch), and without the order a secret
    /// about to expire would wait behind refreshes of secrets good for hours.
    pub max_writes: usize,
    /// The time (Unix seconds, the clock of the secrets' `irsa.dev/expires-at`) that decides
    /// which updates are urgent: a secret expired by then or within [`URGENT_MARGIN_SECS`] of
    /// it (or of unknown expiry) is rewritten before ServiceAccount patches, one valid for
    /// longer after them.
    pub now: i64,
    /// Namespaces not to change anything in this round (their writes failed and back off);
    /// their states are planned as usual.
    pub held_back: &'r BTreeSet<String>,
    /// Namespaces whose state the caller wants in [`Plan::states`].
    pub watched: &'r BTreeSet<String>,
    /// What irsa wrote for this resource so far: a namespace it already wrote the current
    /// content into is rewritten after the others of its urgency, and after the patches when
    /// urgent ([`Rank`]); `None` for no record.
    pub written: Option<&'r Written>,
}

static NO_NAMESPACES: BTreeSet<String> = BTreeSet::new();

impl Round<'static> {
    /// Every write at once, nothing held back, nothing watched; every update counts as urgent.
    pub fn unbounded() -> Self {
        Self {
            max_writes: usize::MAX,
            now: i64::MAX,
            held_back: &NO_NAMESPACES,
            watched: &NO_NAMESPACES,
            written: None,
        }
    }
}

/// Plans one reconciliation of `subject` against `observed` with every write at once
/// ([`plan_round`] with [`Round::unbounded`]).
pub fn plan(
    subject: &Subject<'_>,
    observed: &impl View,
    credential: Option<&DockerConfig>,
) -> Plan {
    plan_round(subject, observed, credential, Round::unbounded())
}

/// A served namespace as the round's walk sees it: nothing is allocated for it unless the round
/// acts on it or reports it.
struct Seen<'a> {
    namespace: &'a str,
    state: TargetState,
    existing: Option<&'a SecretState>,
}

/// Plans one round of the reconciliation of `subject` against `observed`. With `credential`,
/// every served namespace gets the desired Secret (written only when its content hash
/// differs), at most `round.max_writes` of them in this round, most urgent first; without one
/// (a failed refresh) existing Secrets are kept and nothing is written. Our Secrets outside the
/// served namespaces, or under another name, are deleted unless `deletionPolicy: Retain`; a
/// same-named Secret that is not ours is never touched and reported as a conflict. A
/// ServiceAccount gets its entry once the Secret exists or is written in this round. The
/// round's `max_writes` goes, in this order, to the creates and the updates of secrets expiring
/// within [`URGENT_MARGIN_SECS`] of `round.now`, then ServiceAccount patches, then the updates
/// of still-valid secrets, then deletions; the rest is counted in [`Plan::left`]. Within each
/// group of writes, those into namespaces [`Round::written`] says irsa already wrote the
/// current content into go last ([`Rank`]); the urgent ones of them after the ServiceAccount
/// patches too.
pub fn plan_round(
    subject: &Subject<'_>,
    observed: &impl View,
    credential: Option<&DockerConfig>,
    round: Round<'_>,
) -> Plan {
    let owner = &subject.owner;
    let spec = subject.spec;
    let name = spec.secret_name.as_str();
    let by_name: HashMap<&str, &SecretState> = observed
        .secrets()
        .filter(|s| s.name == name && subject.may_touch(&s.namespace))
        .map(|s| (s.namespace.as_str(), s))
        .collect();
    // The rendered document and its hash are the same in every namespace: build them once.
    let template = credential.map(|c| desired_secret(owner, spec, "", c));
    let mut plan = Plan::default();
    let mut seen: Vec<Seen<'_>> = Vec::new();
    // Writes by rank ([`Rank`]) and namespace.
    let mut candidates: Vec<(Rank, &str)> = Vec::new();
    let urgent_until = round.now.saturating_add(URGENT_MARGIN_SECS);
    for ns in observed.namespaces().filter(|ns| subject.serves(ns)) {
        let id = ns.id();
        let ns = ns.name.as_str();
        let existing = by_name.get(ns).copied();
        let (state, kind) = match (existing, &template) {
            (Some(s), _) if !s.is_written_by(owner) => {
                let reason = if owner.owns(&s.labels) {
                    ConflictReason::NotIrsaType {
                        type_: s.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
                    }
                } else if is_managed(&s.labels) {
                    ConflictReason::OtherOwner {
                        owner: owner_of(&s.labels),
                    }
                } else {
                    ConflictReason::NotManaged
                };
                plan.conflicts.push(Conflict {
                    secret: SecretRef {
                        namespace: ns.to_owned(),
                        name: s.name.clone(),
                    },
                    reason: reason.clone(),
                });
                (TargetState::Conflicted(reason), None)
            }
            (Some(_), None) => (TargetState::Kept, None),
            (None, None) => (TargetState::Pending, None),
            (None, Some(_)) => (TargetState::Writing, Some(WriteKind::Create)),
            (Some(s), Some(t)) if s.content_hash.as_deref() != Some(t.content_hash.as_str()) => {
                (TargetState::Writing, Some(WriteKind::Update))
            }
            (Some(_), Some(_)) => (TargetState::Current, None),
        };
        let t = &mut plan.tally;
        t.desired += 1;
        match &state {
            s if s.has_secret() => t.ready += 1,
            TargetState::Pending => t.pending += 1,
            _ => t.conflicted += 1,
        }
        if let (Some(kind), Some(t)) = (kind, &template)
            && !round.held_back.contains(ns)
        {
            let at = existing.and_then(|s| s.expires_at);
            let urgency = urgency(kind, at, round.now);
            let urgent = urgency.0 == 0 || urgency.1 <= urgent_until;
            let rewrite = round.written.is_some_and(|w| w.wrote(&t.content_hash, id));
            candidates.push((Rank::new(urgent, rewrite, urgency), ns));
        }
        seen.push(Seen {
            namespace: ns,
            state,
            existing,
        });
    }
    // The round's budget, in this order: (1) creates and updates of secrets expired or about
    // to (within the margin), (2) ServiceAccount patches, (2b) the urgent rewrites of secrets
    // changed behind irsa's back ([`Rank`]), (3) updates of still-valid secrets (a routine
    // refresh), (4) deletions. A new namespace's pods can pull once its Secret and its ServiceAccount entry
    // are in, so neither waits behind a refresh of thousands of valid secrets; a tenant's
    // thousands of ServiceAccounts or forged Secrets make more rounds, never a longer one
    // other namespaces' missing Secrets wait behind (group 1 is first).
    let max = round.max_writes;
    let urgent = candidates
        .iter()
        .filter(|(rank, _)| rank.precedes_patches())
        .count();
    let first = urgent.min(max);
    // The `first` most urgent candidates go to the front, without sorting the others (group 1
    // sorts before group 3).
    if candidates.len() > first {
        candidates.select_nth_unstable(first);
    }
    seen.sort_unstable_by(|a, b| a.namespace.cmp(b.namespace));
    let served = |ns: &str| {
        seen.binary_search_by(|s| s.namespace.cmp(ns))
            .ok()
            .map(|i| &seen[i])
    };
    let creating: HashSet<&str> = candidates[..first]
        .iter()
        .filter(|&&(_, ns)| served(ns).is_some_and(|s| s.existing.is_none()))
        .map(|&(_, ns)| ns)
        .collect();

    let mut patches = Patches::new(owner);
    if !spec.service_accounts.is_empty() {
        // An update's secret exists already: its entry need not wait for the write.
        let has_secret = seen.iter().filter(|s| match s.state {
            TargetState::Writing => s.existing.is_some() || creating.contains(s.namespace),
            ref state => state.has_secret(),
        });
        for s in has_secret.filter(|s| !round.held_back.contains(s.namespace)) {
            for sa in observed.service_accounts_in(s.namespace) {
                if wants_entry(spec, &sa.name) && !sa.image_pull_secrets.contains(&spec.secret_name)
                {
                    patches.add(sa, &spec.secret_name);
                }
            }
        }
    }
    // The cheap test first: in a fan-out, most of the resource's Secrets are the ones it serves.
    let stale = observed.secrets().filter(|s| {
        subject.may_touch(&s.namespace)
            && !(s.name == spec.secret_name && served(&s.namespace).is_some())
            && s.is_written_by(owner)
            && !round.held_back.contains(&s.namespace)
    });
    // A deletion never goes ahead of the patch removing its entry (that entry would be left
    // for good): while any patch waits, so do all deletions.
    let doomed = remove(&mut patches, spec.deletion_policy, observed, stale);
    let (patches, patches_left) = patches.finish(max - first);
    plan.service_account_patches = patches;
    let budget = max - first - plan.service_account_patches.len();
    let routine = (candidates.len() - first).min(budget);
    let taken = first + routine;
    if candidates.len() > taken {
        candidates[first..].select_nth_unstable(routine);
    }
    let writes_left = candidates.len() - taken;
    candidates.truncate(taken);
    candidates.sort_unstable();
    if let Some(template) = &template {
        for &(_, ns) in &candidates {
            let existing = served(ns).and_then(|s| s.existing);
            plan.writes.push(SecretWrite {
                kind: if existing.is_some() {
                    WriteKind::Update
                } else {
                    WriteKind::Create
                },
                secret: DesiredSecret {
                    namespace: ns.to_owned(),
                    ..template.clone()
                },
                existing: existing.map(|s| s.checked.clone()).unwrap_or_default(),
                expires_at: existing.and_then(|s| s.expires_at),
            });
        }
    }
    let budget = budget - routine;
    plan.deletions = deletions(&doomed, owner, budget);
    plan.left = writes_left + patches_left + (doomed.len() - plan.deletions.len());

    plan.pending = seen
        .iter()
        .filter(|s| s.state == TargetState::Pending)
        .take(TargetProblem::MAX_REPORTED)
        .map(|s| s.namespace.to_owned())
        .collect();
    let changed = plan
        .writes
        .iter()
        .map(|w| w.secret.namespace.as_str())
        .chain(plan.deletions.iter().map(|d| d.namespace.as_str()))
        .chain(
            plan.service_account_patches
                .iter()
                .map(|p| p.namespace.as_str()),
        );
    let states: BTreeMap<String, TargetState> = round
        .watched
        .iter()
        .map(String::as_str)
        .chain(changed)
        .filter_map(|ns| served(ns).map(|s| (ns.to_owned(), s.state.clone())))
        .collect();
    plan.states = states;
    plan
}

/// Plans one round of the cleanup of a deleted resource (its finalizer): delete its Secrets
/// and remove their ServiceAccount entries, unless `deletionPolicy: Retain`, in which case
/// nothing changes. At most `max` changes in the round, the patches first (a Secret is never
/// deleted while the patch removing its entry waits); the rest is counted in [`Plan::left`],
/// and the finalizer stays until a round finds nothing left. Unbounded, a resource with
/// 10,000 targets would be one reconcile of 10,000 requests, holding up everything else of it
/// and running into timeouts.
pub fn cleanup(subject: &Subject<'_>, observed: &impl View, max: usize) -> Plan {
    cleanup_round(
        subject,
        observed,
        CleanupRound {
            max,
            deleted_at: None,
        },
    )
}

/// How long after a resource's `deletionTimestamp` a Secret carrying its labels may still have
/// been made by irsa, and so is removed by the cleanup ([`CleanupRound::deleted_at`]). irsa
/// plans no write for a resource being deleted, but a round planned before the deletion
/// reached the controller (the resource watch's lag, a round in flight: each request may take
/// [`crate::writer::REQUEST_TIMEOUT`], 30 s) can still create one just after it, in a replica
/// that may then restart or hand over before the cleanup; the two timestamps may also come from
/// API server replicas whose clocks differ a little. Two minutes cover all of this with room.
pub const CLEANUP_GRACE_SECS: i64 = 120;

/// The bounds of one round of a deleted resource's cleanup ([`cleanup_round`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupRound {
    /// Most changes to plan (ServiceAccount patches first, then deletions).
    pub max: usize,
    /// The resource's `deletionTimestamp` (Unix seconds). A Secret made more than
    /// [`CLEANUP_GRACE_SECS`] after it was not made by irsa, which writes nothing for a
    /// resource being deleted, whatever labels it carries (anyone may label a Secret of theirs
    /// as irsa's): the cleanup neither counts nor deletes it, so that a tenant re-creating such
    /// Secrets cannot hold the finalizer (review finding M2). `None`: every Secret counts.
    pub deleted_at: Option<i64>,
}

impl CleanupRound {
    /// Whether `secret` (carrying the owner's labels) may have been made by irsa. No exception
    /// for `spec.secretName` in a namespace irsa wrote into (review 24a M1): a tenant
    /// re-creating it there after every round would hold the finalizer for ever. A write of
    /// irsa's landing later than the grace (a replica stalled that long) is left behind, with
    /// a credential that expires on its own.
    fn may_be_irsas(&self, secret: &SecretState) -> bool {
        let (Some(deleted_at), Some(created_at)) = (self.deleted_at, secret.created_at) else {
            return true;
        };
        created_at <= deleted_at.saturating_add(CLEANUP_GRACE_SECS)
    }
}

/// [`cleanup`], bounded by `round`: Secrets made after the resource's deletion are left alone
/// ([`CleanupRound::deleted_at`]).
pub fn cleanup_round(subject: &Subject<'_>, observed: &impl View, round: CleanupRound) -> Plan {
    let max = round.max;
    let mut plan = Plan::default();
    let mut patches = Patches::new(&subject.owner);
    let ours = observed.secrets().filter(|s| {
        subject.may_touch(&s.namespace) && s.is_written_by(&subject.owner) && round.may_be_irsas(s)
    });
    let doomed = remove(&mut patches, subject.spec.deletion_policy, observed, ours);
    let (patches, patches_left) = patches.finish(max);
    plan.service_account_patches = patches;
    plan.deletions = deletions(
        &doomed,
        &subject.owner,
        max - plan.service_account_patches.len(),
    );
    plan.left = patches_left + (doomed.len() - plan.deletions.len());
    plan
}

/// Removes the ServiceAccount entries of `secrets` (ours by construction) and returns those to
/// delete, by namespace and name, skipping terminating namespaces (their deletion removes
/// everything anyway).
fn remove<'a>(
    patches: &mut Patches<'a>,
    policy: DeletionPolicy,
    observed: &'a impl View,
    secrets: impl Iterator<Item = &'a SecretState>,
) -> Vec<&'a SecretState> {
    if policy == DeletionPolicy::Retain {
        return Vec::new();
    }
    let mut doomed = Vec::new();
    for s in secrets {
        if observed
            .namespace(&s.namespace)
            .is_some_and(|ns| ns.terminating)
        {
            continue;
        }
        // Only entries irsa recorded adding: one a person put there stays.
        for sa in observed.service_accounts_in(&s.namespace) {
            if sa.image_pull_secrets.contains(&s.name) && sa.added_entry(patches.owner, &s.name) {
                patches.remove(sa, &s.name);
            }
        }
        doomed.push(s);
    }
    doomed.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    doomed
}

/// The first `max` of `doomed` as deletions for `owner`.
fn deletions(doomed: &[&SecretState], owner: &Owner, max: usize) -> Vec<Deletion> {
    doomed
        .iter()
        .take(max)
        .map(|s| Deletion {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            checked: s.checked.clone(),
            owner: owner.clone(),
        })
        .collect()
}

fn wants_entry(spec: &SecretSpec, service_account: &str) -> bool {
    spec.service_accounts
        .iter()
        .any(|n| n == "*" || n == service_account)
}

/// ServiceAccount patches being collected for one owner, one per ServiceAccount, so that an
/// added and a removed entry (a renamed secret) go into one patch guarded by one
/// `resourceVersion`, with the record of what the owner added.
struct Patches<'a> {
    owner: &'a Owner,
    pending: BTreeMap<(&'a str, &'a str), PendingPatch<'a>>,
}

/// A ServiceAccount with the names to add and to remove.
type PendingPatch<'a> = (&'a ServiceAccountState, Vec<String>, Vec<String>);

impl<'a> Patches<'a> {
    fn new(owner: &'a Owner) -> Self {
        Self {
            owner,
            pending: BTreeMap::new(),
        }
    }

    fn entry(&mut self, sa: &'a ServiceAccountState) -> &mut PendingPatch<'a> {
        self.pending
            .entry((sa.namespace.as_str(), sa.name.as_str()))
            .or_insert_with(|| (sa, Vec::new(), Vec::new()))
    }

    fn add(&mut self, sa: &'a ServiceAccountState, secret: &str) {
        self.entry(sa).1.push(secret.to_owned());
    }

    fn remove(&mut self, sa: &'a ServiceAccountState, secret: &str) {
        let remove = &mut self.entry(sa).2;
        if !remove.iter().any(|n| n == secret) {
            remove.push(secret.to_owned());
        }
    }

    /// The first `max` patches, by namespace and name, and how many more there are.
    fn finish(self, max: usize) -> (Vec<ServiceAccountPatch>, usize) {
        let owner = self.owner.to_string();
        let left = self.pending.len().saturating_sub(max);
        let patches = self
            .pending
            .into_values()
            .take(max)
            .map(|(sa, add, remove)| {
                let mut added = sa.added.clone();
                let mine = added.entry(owner.clone()).or_default();
                mine.extend(add.iter().cloned());
                mine.retain(|n| !remove.contains(n));
                if mine.is_empty() {
                    added.remove(&owner);
                }
                ServiceAccountPatch {
                    namespace: sa.namespace.clone(),
                    name: sa.name.clone(),
                    add,
                    remove,
                    observed: sa.image_pull_secrets.clone(),
                    resource_version: sa.resource_version.clone(),
                    added: (added != sa.added).then_some(added),
                    has_annotations: sa.has_annotations,
                    has_record: sa.has_record,
                }
            })
            .collect();
        (patches, left)
    }
}

/// Whether `labels` mark an object as irsa's for the same owner as `ours` (the labels of
/// one of that owner's Secrets, e.g. a [`DesiredSecret`]'s).
pub fn same_owner(ours: &impl LabelMap, labels: &impl LabelMap) -> bool {
    is_managed(ours)
        && is_managed(labels)
        && [OWNER_KIND_LABEL, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL]
            .iter()
            .all(|k| ours.label(k) == labels.label(k))
}

fn owner_of(labels: &impl LabelMap) -> String {
    let get = |k| labels.label(k).unwrap_or("?");
    match labels.label(OWNER_NAMESPACE_LABEL) {
        Some(ns) => format!("{}/{ns}/{}", get(OWNER_KIND_LABEL), get(OWNER_NAME_LABEL)),
        None => format!("{}/{}", get(OWNER_KIND_LABEL), get(OWNER_NAME_LABEL)),
    }
}

#[cfg(test)]
mod tests;
