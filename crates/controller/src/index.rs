//! The controller's view of the cluster: namespaces (metadata only), irsa's own Secrets (never
//! their data) and ServiceAccounts (their `imagePullSecrets` and the two IRSA annotations).
//! Fed by watch events and by the answers to irsa's own writes, so that a reconcile that runs
//! before its write's watch event arrives does not write again. No I/O: the watch tasks call
//! [`Index::apply_namespace`] and friends, the reconciler plans over [`Index::view`].
//!
//! Stale events are dropped by comparing `resourceVersion`s numerically when both parse as
//! integers (they are etcd revisions on every API server irsa knows); otherwise the event wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels::Labels;
use crate::plan::{
    ADDED_PULL_SECRETS_ANNOTATION, DOCKER_CONFIG_JSON_TYPE, LabelMap, NamespaceState,
    OWNER_KIND_LABEL, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, Owner, SecretState,
    ServiceAccountState, Subject, Targets, View, is_managed, parse_added_pull_secrets,
};

pub use irsa_core::names::{AUDIENCE_ANNOTATION, ROLE_ARN_ANNOTATION};

type Key = (String, String);

/// A `(namespace, name)` key, owned or borrowed, so that a table keyed by [`Key`] is looked up
/// with two `&str`s ([`at`]): a round of a fan-out looks up thousands, and an owned key would
/// allocate two Strings for each.
trait KeyRef {
    fn parts(&self) -> (&str, &str);
}

impl KeyRef for Key {
    fn parts(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl KeyRef for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyRef + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

// Hashes and compares as `Key` does (a tuple of two strs), as `Borrow` requires.
impl std::hash::Hash for dyn KeyRef + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyRef + '_ {}

/// `map[(namespace, name)]`, without allocating a key.
fn at<'m, V>(map: &'m HashMap<Key, V>, namespace: &str, name: &str) -> Option<&'m V> {
    map.get(&(namespace, name) as &dyn KeyRef)
}

/// A ServiceAccount as indexed: its pull-secret entries and its IRSA annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedServiceAccount {
    /// Namespace, name, resourceVersion and `imagePullSecrets`.
    pub state: ServiceAccountState,
    /// `eks.amazonaws.com/role-arn`, if set.
    pub role_arn: Option<String>,
    /// `eks.amazonaws.com/audience`, if set.
    pub audience: Option<String>,
}

/// A namespace's ServiceAccounts, sorted by name. A vector, not a map: most namespaces hold
/// one or two, and a B-tree leaf reserves room for 11 entries (about 2.7 KB a namespace, 27 MB
/// for 10,000 namespaces).
#[derive(Debug, Default)]
struct ByName(Vec<IndexedServiceAccount>);

impl ByName {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|sa| sa.state.name.as_str().cmp(name))
    }

    fn get(&self, name: &str) -> Option<&IndexedServiceAccount> {
        self.find(name).ok().map(|i| &self.0[i])
    }

    fn insert(&mut self, sa: IndexedServiceAccount) {
        match self.find(&sa.state.name) {
            Ok(i) => self.0[i] = sa,
            Err(i) => {
                // Room for exactly what a small namespace holds; the usual doubling beyond.
                if self.0.len() < 4 && self.0.len() == self.0.capacity() {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, sa);
            }
        }
    }

    fn remove(&mut self, name: &str) -> bool {
        self.find(name).map(|i| self.0.remove(i)).is_ok()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> std::slice::Iter<'_, IndexedServiceAccount> {
        self.0.iter()
    }
}

impl IndexedServiceAccount {
    /// Reads the indexed parts of a ServiceAccount (`None` without a name or namespace).
    pub fn from_service_account(sa: &ServiceAccount) -> Option<Self> {
        let meta = &sa.metadata;
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k).cloned());
        let record = annotation(ADDED_PULL_SECRETS_ANNOTATION);
        Some(Self {
            state: ServiceAccountState {
                namespace: meta.namespace.clone()?,
                name: meta.name.clone()?,
                resource_version: meta.resource_version.clone(),
                image_pull_secrets: sa
                    .image_pull_secrets
                    .iter()
                    .flatten()
                    .map(|r| r.name.clone())
                    .collect(),
                added: record
                    .as_deref()
                    .map(parse_added_pull_secrets)
                    .unwrap_or_default(),
                has_annotations: meta.annotations.is_some(),
                has_record: record.is_some(),
            },
            role_arn: annotation(ROLE_ARN_ANNOTATION),
            audience: annotation(AUDIENCE_ANNOTATION),
        })
    }
}

/// One listed object, reduced as the list arrives to what the index keeps of it
/// ([`Index::listed_namespace`] and friends): a watch's (re-)list of 10,000 objects then never
/// holds 10,000 full objects at once, only their index entries, until [`Index::reset_namespaces`]
/// and friends swap them in.
#[derive(Debug)]
pub struct Listed<T>(T);

type NamespaceEntry = (String, (NamespaceState, Option<String>));

/// A same-named Secret irsa does not own, learnt when creating ours was refused, and when.
#[derive(Debug, Clone)]
struct Foreign {
    state: SecretState,
    checked: Instant,
}

/// What [`Owner::owns`] matches on in a managed Secret's labels: kind, name and (for a
/// PullSecret) namespace of the owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OwnerKey {
    kind: Box<str>,
    name: Box<str>,
    namespace: Option<Box<str>>,
}

impl OwnerKey {
    /// The owner `labels` name, when they mark a Secret as irsa's.
    fn of_labels(labels: &impl LabelMap) -> Option<Self> {
        if !is_managed(labels) {
            return None;
        }
        Some(Self {
            kind: labels.label(OWNER_KIND_LABEL)?.into(),
            name: labels.label(OWNER_NAME_LABEL)?.into(),
            namespace: labels.label(OWNER_NAMESPACE_LABEL).map(Into::into),
        })
    }

    /// The owner a Secret in `namespace` with `labels` may belong to: the one its labels name,
    /// unless they name a PullSecret of another namespace (which may not touch it).
    fn of_secret(namespace: &str, labels: &impl LabelMap) -> Option<Self> {
        Self::of_labels(labels).filter(|k| k.namespace.as_deref().is_none_or(|ns| ns == namespace))
    }

    /// The key whose labels `owner` owns (`Owner::owns(l)` iff `of_labels(l) == of(owner)`).
    fn of(owner: &Owner) -> Self {
        match owner {
            Owner::Cluster { name } => Self {
                kind: "ClusterPullSecret".into(),
                name: name.as_str().into(),
                namespace: None,
            },
            Owner::Namespaced { namespace, name } => Self {
                kind: "PullSecret".into(),
                name: name.as_str().into(),
                namespace: Some(namespace.as_str().into()),
            },
        }
    }
}

/// Secondary indexes over `secrets` and `foreign`, kept in step with every change of them, so
/// that a view touches only the Secrets of its subject, not every Secret indexed.
#[derive(Debug, Default)]
struct ByKeys {
    /// Owned Secrets by the owner their labels name. A Secret naming a PullSecret of another
    /// namespace is in none: no owner may touch it, and a PullSecret's view then walks its own
    /// namespace's Secrets alone, however many Secrets elsewhere carry its labels (anyone may
    /// label a Secret of theirs as anyone's).
    secrets_by_owner: HashMap<OwnerKey, BTreeSet<Key>>,
    /// Owned Secrets by name: the namespaces holding one.
    secrets_by_name: HashMap<String, BTreeSet<String>>,
    /// Foreign Secrets by name: the namespaces holding one.
    foreign_by_name: HashMap<String, BTreeSet<String>>,
}

fn unlink(map: &mut HashMap<String, BTreeSet<String>>, (ns, name): &Key) {
    if let Some(set) = map.get_mut(name) {
        set.remove(ns);
        if set.is_empty() {
            map.remove(name);
        }
    }
}

impl ByKeys {
    fn add_secret(&mut self, key: &Key, state: &SecretState) {
        if let Some(owner) = OwnerKey::of_secret(&key.0, &state.labels) {
            self.secrets_by_owner
                .entry(owner)
                .or_default()
                .insert(key.clone());
        }
        self.secrets_by_name
            .entry(key.1.clone())
            .or_default()
            .insert(key.0.clone());
    }

    fn remove_secret(&mut self, key: &Key, state: &SecretState) {
        if let Some(owner) = OwnerKey::of_secret(&key.0, &state.labels)
            && let Some(set) = self.secrets_by_owner.get_mut(&owner)
        {
            set.remove(key);
            if set.is_empty() {
                self.secrets_by_owner.remove(&owner);
            }
        }
        unlink(&mut self.secrets_by_name, key);
    }

    fn add_foreign(&mut self, key: &Key) {
        self.foreign_by_name
            .entry(key.1.clone())
            .or_default()
            .insert(key.0.clone());
    }
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct Index {
    namespaces: BTreeMap<String, (NamespaceState, Option<String>)>,
    secrets: HashMap<Key, SecretState>,
    /// By namespace, then by name: a view reads the ServiceAccounts of the namespaces it
    /// serves, never every ServiceAccount of the cluster.
    service_accounts: HashMap<String, ByName>,
    foreign: HashMap<Key, Foreign>,
    by: ByKeys,
    /// Types other than `kubernetes.io/dockerconfigjson` of Secrets carrying irsa's label,
    /// by uid, learnt by reading them: the secrets watch carries metadata only and takes every
    /// labelled Secret for the type irsa creates. A type is immutable, so a uid's type, once
    /// read, stays true, and a labelled Secret of another type stays a conflict across watch
    /// events instead of drawing a refused update at each.
    types: HashMap<String, String>,
}

/// Whether an update at `incoming` may replace what is held at `held`.
fn newer(held: Option<&str>, incoming: Option<&str>) -> bool {
    match (
        held.and_then(|h| h.parse::<u64>().ok()),
        incoming.and_then(|i| i.parse::<u64>().ok()),
    ) {
        (Some(h), Some(i)) => i >= h,
        _ => true,
    }
}

fn key_of(meta: &ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

fn namespace_state(meta: &ObjectMeta) -> Option<NamespaceState> {
    Some(NamespaceState {
        name: meta.name.clone()?,
        labels: meta.labels.as_ref().map(Labels::from).unwrap_or_default(),
        terminating: meta.deletion_timestamp.is_some(),
        uid: meta.uid.clone(),
    })
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// A namespace was added or changed. Returns whether anything changed.
    pub fn apply_namespace(&mut self, meta: &ObjectMeta) -> bool {
        let Some(state) = namespace_state(meta) else {
            return false;
        };
        let rv = meta.resource_version.clone();
        match self.namespaces.get(&state.name) {
            Some((held, held_rv))
                if held == &state || !newer(held_rv.as_deref(), rv.as_deref()) =>
            {
                false
            }
            _ => {
                self.namespaces.insert(state.name.clone(), (state, rv));
                true
            }
        }
    }

    /// A namespace was deleted.
    pub fn delete_namespace(&mut self, meta: &ObjectMeta) -> bool {
        let Some(name) = &meta.name else { return false };
        let removed = self.namespaces.remove(name).is_some();
        // Everything in it went with it, the types learnt of its Secrets too.
        let types = &mut self.types;
        let by = &mut self.by;
        self.secrets.retain(|key, s| {
            let keep = key.0 != *name;
            if !keep {
                by.remove_secret(key, s);
                if let Some(uid) = &s.checked.uid {
                    types.remove(uid);
                }
            }
            keep
        });
        self.service_accounts.remove(name);
        self.foreign.retain(|key, _| {
            let keep = key.0 != *name;
            if !keep {
                unlink(&mut by.foreign_by_name, key);
            }
            keep
        });
        removed
    }

    /// What the index keeps of a listed namespace (`None` without a name).
    pub fn listed_namespace(meta: &ObjectMeta) -> Option<Listed<NamespaceEntry>> {
        Some(Listed((
            meta.name.clone()?,
            (namespace_state(meta)?, meta.resource_version.clone()),
        )))
    }

    /// Replaces every namespace (a watch's re-list).
    pub fn reset_namespaces(&mut self, all: impl IntoIterator<Item = Listed<NamespaceEntry>>) {
        self.namespaces = all.into_iter().map(|Listed(entry)| entry).collect();
    }

    /// One of irsa's Secrets was added or changed (by a watch event or by irsa's own write).
    pub fn apply_secret(&mut self, secret: &Secret) -> bool {
        let (Some(key), Some(mut state)) =
            (key_of(&secret.metadata), SecretState::from_secret(secret))
        else {
            return false;
        };
        self.known_type(&mut state);
        if self.foreign.remove(&key).is_some() {
            unlink(&mut self.by.foreign_by_name, &key);
        }
        match self.secrets.get(&key) {
            Some(held)
                if held == &state
                    || !newer(
                        held.checked.resource_version.as_deref(),
                        state.checked.resource_version.as_deref(),
                    ) =>
            {
                false
            }
            _ => {
                if let Some(old) = self.secrets.get(&key) {
                    self.by.remove_secret(&key, old);
                }
                self.by.add_secret(&key, &state);
                self.secrets.insert(key, state);
                true
            }
        }
    }

    /// Records the type of a labelled Secret read in full (not from the metadata-only watch),
    /// when it is not the type irsa creates; see [`Index::apply_secret`].
    pub fn learn_type(&mut self, secret: &Secret) {
        let type_ = secret.type_.as_deref().unwrap_or("Opaque");
        if let Some(uid) = &secret.metadata.uid
            && type_ != DOCKER_CONFIG_JSON_TYPE
        {
            self.types.insert(uid.clone(), type_.to_owned());
        }
    }

    fn known_type(&self, state: &mut SecretState) {
        if let Some(t) = state.checked.uid.as_ref().and_then(|u| self.types.get(u)) {
            state.type_ = Some(t.clone());
        }
    }

    /// One of irsa's Secrets was deleted (or irsa deleted it, or it lost irsa's label).
    pub fn delete_secret(&mut self, namespace: &str, name: &str) -> bool {
        let key = (namespace.to_owned(), name.to_owned());
        let removed = self.secrets.remove(&key);
        if let Some(old) = &removed {
            self.by.remove_secret(&key, old);
        }
        if let Some(uid) = removed.as_ref().and_then(|s| s.checked.uid.as_ref()) {
            self.types.remove(uid);
        }
        removed.is_some()
    }

    /// What the index keeps of a listed Secret of irsa's (`None` without a name or namespace).
    pub fn listed_secret(secret: &Secret) -> Option<Listed<(Key, SecretState)>> {
        Some(Listed((
            key_of(&secret.metadata)?,
            SecretState::from_secret(secret)?,
        )))
    }

    /// Replaces every Secret of irsa's (a watch's re-list).
    pub fn reset_secrets(&mut self, all: impl IntoIterator<Item = Listed<(Key, SecretState)>>) {
        self.secrets = all.into_iter().map(|Listed(entry)| entry).collect();
        self.by.secrets_by_owner.clear();
        self.by.secrets_by_name.clear();
        for (key, state) in &self.secrets {
            self.by.add_secret(key, state);
        }
        let uids: std::collections::HashSet<&str> = self
            .secrets
            .values()
            .filter_map(|s| s.checked.uid.as_deref())
            .collect();
        self.types.retain(|uid, _| uids.contains(uid.as_str()));
        let types = std::mem::take(&mut self.types);
        for state in self.secrets.values_mut() {
            if let Some(t) = state.checked.uid.as_ref().and_then(|u| types.get(u)) {
                state.type_ = Some(t.clone());
            }
        }
        self.types = types;
    }

    /// A ServiceAccount was added or changed.
    pub fn apply_service_account(&mut self, sa: &ServiceAccount) -> bool {
        let Some(indexed) = IndexedServiceAccount::from_service_account(sa) else {
            return false;
        };
        let held = self
            .service_accounts
            .get(&indexed.state.namespace)
            .and_then(|in_ns| in_ns.get(&indexed.state.name));
        match held {
            Some(held)
                if held == &indexed
                    || !newer(
                        held.state.resource_version.as_deref(),
                        indexed.state.resource_version.as_deref(),
                    ) =>
            {
                false
            }
            _ => {
                self.service_accounts
                    .entry(indexed.state.namespace.clone())
                    .or_default()
                    .insert(indexed);
                true
            }
        }
    }

    /// A ServiceAccount was deleted.
    pub fn delete_service_account(&mut self, namespace: &str, name: &str) -> bool {
        let Some(in_ns) = self.service_accounts.get_mut(namespace) else {
            return false;
        };
        let removed = in_ns.remove(name);
        if in_ns.is_empty() {
            self.service_accounts.remove(namespace);
        }
        removed
    }

    /// What the index keeps of a listed ServiceAccount (`None` without a name or namespace).
    pub fn listed_service_account(sa: &ServiceAccount) -> Option<Listed<IndexedServiceAccount>> {
        IndexedServiceAccount::from_service_account(sa).map(Listed)
    }

    /// Replaces every ServiceAccount (a watch's re-list).
    pub fn reset_service_accounts(
        &mut self,
        all: impl IntoIterator<Item = Listed<IndexedServiceAccount>>,
    ) {
        self.service_accounts.clear();
        for Listed(sa) in all {
            self.service_accounts
                .entry(sa.state.namespace.clone())
                .or_default()
                .insert(sa);
        }
    }

    /// Records a same-named Secret irsa may not touch (creating ours was refused).
    pub fn record_foreign(&mut self, state: SecretState, now: Instant) {
        let key = (state.namespace.clone(), state.name.clone());
        self.by.add_foreign(&key);
        self.foreign.insert(
            key,
            Foreign {
                state,
                checked: now,
            },
        );
    }

    /// Forgets a same-named foreign Secret (it is gone).
    pub fn forget_foreign(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        if self.foreign.remove(&key).is_some() {
            unlink(&mut self.by.foreign_by_name, &key);
        }
    }

    /// Foreign Secrets named `subject`'s `spec.secretName` last checked before `before`, in
    /// the namespaces `subject` may touch: to be looked at again.
    pub fn foreign_due(&self, subject: &Subject<'_>, before: Instant) -> Vec<SecretState> {
        let name = &subject.spec.secret_name;
        let set = self.by.foreign_by_name.get(name);
        // By name, then namespace: a round walks the subject's foreign Secrets alone.
        let (all, own) = match subject.targets {
            Targets::Selection(_) => (set, None),
            Targets::Namespace(own) => (None, set.and_then(|s| s.get(own))),
        };
        all.into_iter()
            .flatten()
            .chain(own)
            .filter_map(|ns| at(&self.foreign, ns, name))
            .filter(|f| f.checked < before && subject.may_touch(&f.state.namespace))
            .map(|f| f.state.clone())
            .collect()
    }

    /// A ServiceAccount, if known.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&IndexedServiceAccount> {
        self.service_accounts.get(namespace)?.get(name)
    }

    /// An owned Secret's state, if known.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretState> {
        at(&self.secrets, namespace, name)
    }

    /// A namespace's state, if known.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceState> {
        self.namespaces.get(name).map(|(n, _)| n)
    }

    /// What planning `subject` needs, borrowed from the index (nothing is copied): the
    /// namespaces it may serve, every Secret named `spec.secretName` or carrying its owner
    /// labels, and the ServiceAccounts of a namespace, looked up by namespace.
    pub fn view<'a>(&'a self, subject: &'a Subject<'a>) -> IndexView<'a> {
        IndexView {
            index: self,
            subject,
            owned: self.by.secrets_by_owner.get(&OwnerKey::of(&subject.owner)),
        }
    }

    /// [`Index::view`], copied out, tests only: it clones every ServiceAccount of every
    /// namespace the subject may touch (cluster-sized for a ClusterPullSecret), where the
    /// planner and the cleanup look them up lazily by namespace through the view
    /// (`service_accounts_in`).
    #[cfg(test)]
    pub fn observed(&self, subject: &Subject<'_>) -> crate::plan::Observed {
        let view = self.view(subject);
        crate::plan::Observed {
            namespaces: view.namespaces().cloned().collect(),
            secrets: view.secrets().cloned().collect(),
            service_accounts: self
                .service_accounts
                .iter()
                .filter(|(ns, _)| subject.may_touch(ns))
                .flat_map(|(_, in_ns)| in_ns.values().map(|sa| sa.state.clone()))
                .collect(),
        }
    }
}

/// What planning one resource needs, borrowed from the [`Index`]; see [`Index::view`].
pub struct IndexView<'a> {
    index: &'a Index,
    subject: &'a Subject<'a>,
    /// Keys of the Secrets the subject's owner labels name (in its own namespace, for a
    /// PullSecret).
    owned: Option<&'a BTreeSet<Key>>,
}

impl<'a> IndexView<'a> {
    /// The namespaces holding a Secret named `spec.secretName` in `by_name` that the subject
    /// may touch: its own one alone for a PullSecret, without walking the others.
    fn named_in(
        &self,
        by_name: &'a HashMap<String, BTreeSet<String>>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let name = self.subject.spec.secret_name.as_str();
        let set = by_name.get(name);
        let (all, own) = match self.subject.targets {
            Targets::Selection(_) => (set, None),
            Targets::Namespace(own) => (None, set.and_then(|s| s.get(own))),
        };
        all.into_iter().flatten().chain(own).map(String::as_str)
    }

    /// How many entries of the owner index [`View::secrets`] walks.
    #[cfg(test)]
    fn owned_walked(&self) -> usize {
        self.owned.map_or(0, BTreeSet::len)
    }
}

impl View for IndexView<'_> {
    fn namespaces(&self) -> impl Iterator<Item = &NamespaceState> {
        let (all, own) = match self.subject.targets {
            Targets::Selection(_) => (Some(self.index.namespaces.values()), None),
            Targets::Namespace(own) => (None, self.index.namespaces.get(own)),
        };
        all.into_iter().flatten().chain(own).map(|(n, _)| n)
    }

    fn namespace(&self, name: &str) -> Option<&NamespaceState> {
        self.subject
            .may_touch(name)
            .then(|| self.index.namespace(name))
            .flatten()
    }

    fn secrets(&self) -> impl Iterator<Item = &SecretState> {
        let subject = self.subject;
        let index = self.index;
        let name = subject.spec.secret_name.as_str();
        let owned = self
            .owned
            .into_iter()
            .flatten()
            .filter(move |(ns, _)| subject.may_touch(ns))
            .filter_map(move |key| index.secrets.get(key));
        // Named `spec.secretName` but not the subject's (those came with `owned`).
        let named = self
            .named_in(&index.by.secrets_by_name)
            .filter_map(move |ns| at(&index.secrets, ns, name))
            .filter(move |s| !subject.owner.owns(&s.labels));
        let foreign = self
            .named_in(&index.by.foreign_by_name)
            .filter_map(move |ns| at(&index.foreign, ns, name))
            .map(|f| &f.state);
        owned.chain(named).chain(foreign)
    }

    fn service_accounts_in(&self, namespace: &str) -> impl Iterator<Item = &ServiceAccountState> {
        self.subject
            .may_touch(namespace)
            .then(|| self.index.service_accounts.get(namespace))
            .flatten()
            .into_iter()
            .flat_map(|in_ns| in_ns.values().map(|sa| &sa.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Owner, plan};
    use k8s_openapi::api::core::v1::LocalObjectReference;

    fn ns(name: &str, rv: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            resource_version: Some(rv.into()),
            ..ObjectMeta::default()
        }
    }

    use crate::fixtures::{cps, credential};

    #[test]
    fn namespaces_apply_delete_reset_and_stale_events() {
        let mut index = Index::new();
        assert!(index.apply_namespace(&ns("a", "5")));
        assert!(!index.apply_namespace(&ns("a", "5")), "unchanged");
        let mut labelled = ns("a", "4");
        labelled.labels = Some([("team".to_owned(), "x".to_owned())].into());
        assert!(
            !index.apply_namespace(&labelled),
            "an older event is dropped"
        );
        labelled.resource_version = Some("6".into());
        assert!(index.apply_namespace(&labelled));
        assert!(index.delete_namespace(&ns("a", "7")));
        assert_eq!(index.namespaces.len(), 0);
        index.reset_namespaces(
            [ns("b", "1"), ns("c", "2")]
                .iter()
                .filter_map(Index::listed_namespace),
        );
        assert_eq!(index.namespaces.len(), 2);
    }

    #[test]
    fn a_deleted_namespace_takes_its_learnt_types_with_it() {
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let mut index = Index::new();
        index.apply_namespace(&ns("a", "1"));
        let first = plan(&subject, &index.observed(&subject), Some(&credential()));
        let mut opaque = first.writes[0].secret.to_secret();
        opaque.metadata.uid = Some("u-1".into());
        opaque.metadata.resource_version = Some("3".into());
        opaque.type_ = Some("Opaque".into());
        index.learn_type(&opaque);
        index.apply_secret(&opaque);
        assert_eq!(index.types.len(), 1);
        index.delete_namespace(&ns("a", "2"));
        assert!(index.types.is_empty(), "{:?}", index.types);
    }

    #[test]
    fn own_write_then_stale_echo_plans_nothing() {
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let mut index = Index::new();
        index.apply_namespace(&ns("a", "1"));
        let first = plan(&subject, &index.observed(&subject), Some(&credential()));
        assert_eq!(first.writes.len(), 1);
        // irsa's write answered with resourceVersion 10: indexed at once.
        let mut written = first.writes[0].secret.to_secret();
        written.metadata.resource_version = Some("10".into());
        assert!(index.apply_secret(&written));
        let second = plan(&subject, &index.observed(&subject), Some(&credential()));
        assert!(second.is_noop(), "{second:?}");
        // The watch's echo of an older version changes nothing.
        let mut stale = written.clone();
        stale.metadata.resource_version = Some("9".into());
        stale.metadata.annotations = None;
        assert!(!index.apply_secret(&stale));
        assert!(plan(&subject, &index.observed(&subject), Some(&credential())).is_noop());
    }

    #[test]
    fn foreign_secrets_conflict_until_forgotten() {
        let cps = cps();
        let subject = Subject::cluster(&cps);
        let mut index = Index::new();
        index.apply_namespace(&ns("a", "1"));
        let t0 = Instant::now();
        index.record_foreign(SecretState::new("a", "regcred"), t0);
        let p = plan(&subject, &index.observed(&subject), Some(&credential()));
        assert!(p.writes.is_empty());
        assert_eq!(p.conflicts.len(), 1);
        assert!(index.foreign_due(&subject, t0).is_empty());
        assert_eq!(
            index
                .foreign_due(&subject, t0 + std::time::Duration::from_secs(1))
                .len(),
            1
        );
        index.forget_foreign("a", "regcred");
        let p = plan(&subject, &index.observed(&subject), Some(&credential()));
        assert_eq!(p.writes.len(), 1);
    }

    #[test]
    fn a_pull_secret_looks_again_only_at_foreign_secrets_of_its_own_namespace() {
        let mut index = Index::new();
        let t0 = Instant::now();
        for ns in ["team-a", "team-b", "kube-system"] {
            index.apply_namespace(&ns_meta(ns));
            index.record_foreign(SecretState::new(ns, "regcred"), t0);
        }
        let mut ps = irsa_k8s::PullSecret::new(
            "ecr",
            irsa_k8s::PullSecretSpec {
                secret: cps().spec.secret,
            },
        );
        ps.metadata.namespace = Some("team-a".into());
        let subject = Subject::namespaced(&ps).unwrap();
        let later = t0 + std::time::Duration::from_secs(1);
        let due: Vec<String> = index
            .foreign_due(&subject, later)
            .into_iter()
            .map(|s| s.namespace)
            .collect();
        assert_eq!(due, ["team-a"]);
        // A ClusterPullSecret may look at every namespace.
        let cps = cps();
        assert_eq!(index.foreign_due(&Subject::cluster(&cps), later).len(), 3);
    }

    fn ns_meta(name: &str) -> ObjectMeta {
        ns(name, "1")
    }

    /// What `view(subject).secrets()` was before the secondary indexes: a scan of every
    /// indexed Secret.
    fn scanned(index: &Index, subject: &Subject<'_>) -> Vec<Key> {
        let spec = subject.spec;
        let mut secrets: Vec<Key> = index
            .secrets
            .values()
            .filter(|s| s.name == spec.secret_name || subject.owner.owns(&s.labels))
            .filter(|s| subject.may_touch(&s.namespace))
            .chain(
                index
                    .foreign
                    .values()
                    .filter(|f| f.state.name == spec.secret_name)
                    .filter(|f| subject.may_touch(&f.state.namespace))
                    .map(|f| &f.state),
            )
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        secrets.sort();
        secrets
    }

    /// What `view(subject).service_accounts_in(ns)` holds, by a scan of every ServiceAccount.
    fn scanned_service_accounts(index: &Index, subject: &Subject<'_>, ns: &str) -> Vec<Key> {
        let mut sas: Vec<Key> = index
            .service_accounts
            .values()
            .flat_map(ByName::values)
            .map(|sa| &sa.state)
            .filter(|sa| sa.namespace == ns && subject.may_touch(&sa.namespace))
            .map(|sa| (sa.namespace.clone(), sa.name.clone()))
            .collect();
        sas.sort();
        sas
    }

    #[test]
    fn views_touch_exactly_what_a_full_scan_finds() {
        use crate::plan::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
        let names = ["regcred", "other", "ecr"];
        let namespaces = ["a", "b", "c", "d"];
        let owners = [
            Owner::Cluster { name: "ecr".into() },
            Owner::Cluster { name: "gcr".into() },
            Owner::Namespaced {
                namespace: "a".into(),
                name: "ecr".into(),
            },
            Owner::Namespaced {
                namespace: "b".into(),
                name: "ecr".into(),
            },
        ];
        let mut clusters = Vec::new();
        for name in ["ecr", "gcr"] {
            for secret_name in ["regcred", "other"] {
                let mut c = cps();
                c.metadata.name = Some(name.into());
                c.spec.secret.secret_name = secret_name.into();
                clusters.push(c);
            }
        }
        let mut pulls = Vec::new();
        for ns in ["a", "b"] {
            for secret_name in ["regcred", "other"] {
                let mut ps = irsa_k8s::PullSecret::new(
                    "ecr",
                    irsa_k8s::PullSecretSpec {
                        secret: cps().spec.secret,
                    },
                );
                ps.metadata.namespace = Some(ns.into());
                ps.spec.secret.secret_name = secret_name.into();
                pulls.push(ps);
            }
        }
        let subjects: Vec<Subject<'_>> = clusters
            .iter()
            .map(Subject::cluster)
            .chain(pulls.iter().filter_map(Subject::namespaced))
            .collect();
        let mut rng = fastrand::Rng::with_seed(11);
        let secret = |rng: &mut fastrand::Rng, rv: u64| {
            let mut labels = match rng.u8(0..4) {
                0 => BTreeMap::new(),
                1 => BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())]),
                _ => owners[rng.usize(0..owners.len())].labels(),
            };
            if rng.u8(0..10) == 0 {
                labels.insert("extra".into(), "x".into());
            }
            Secret {
                metadata: ObjectMeta {
                    namespace: Some(namespaces[rng.usize(0..namespaces.len())].into()),
                    name: Some(names[rng.usize(0..names.len())].into()),
                    resource_version: Some(rv.to_string()),
                    uid: Some(format!("u-{}", rng.u8(0..20))),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                type_: Some(DOCKER_CONFIG_JSON_TYPE.into()),
                ..Secret::default()
            }
        };
        let service_account = |rng: &mut fastrand::Rng, rv: u64| ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some(namespaces[rng.usize(0..namespaces.len())].into()),
                name: Some(["default", "builder", "other"][rng.usize(0..3)].into()),
                resource_version: Some(rv.to_string()),
                ..ObjectMeta::default()
            },
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: names[rng.usize(0..names.len())].into(),
            }]),
            ..ServiceAccount::default()
        };
        let mut index = Index::new();
        let t0 = Instant::now();
        for step in 0..3000u64 {
            let rv = step + 1;
            match rng.u8(0..22) {
                0..=8 => {
                    index.apply_secret(&secret(&mut rng, rv));
                }
                9..=11 => {
                    let s = secret(&mut rng, rv);
                    let m = &s.metadata;
                    index
                        .delete_secret(m.namespace.as_deref().unwrap(), m.name.as_deref().unwrap());
                }
                12..=13 => {
                    let s = secret(&mut rng, rv);
                    let state = SecretState::from_secret(&s).unwrap();
                    index.record_foreign(state, t0);
                }
                14 => {
                    let s = secret(&mut rng, rv);
                    let m = &s.metadata;
                    index.forget_foreign(
                        m.namespace.as_deref().unwrap(),
                        m.name.as_deref().unwrap(),
                    );
                }
                15 => {
                    let ns = namespaces[rng.usize(0..namespaces.len())];
                    index.delete_namespace(&ns_meta(ns));
                }
                16 if rng.bool() => {
                    let n = rng.usize(0..12);
                    let listed: Vec<Secret> = (0..n).map(|_| secret(&mut rng, rv)).collect();
                    index.reset_secrets(listed.iter().filter_map(Index::listed_secret));
                }
                16 => {
                    let n = rng.usize(0..8);
                    let listed: Vec<ServiceAccount> =
                        (0..n).map(|_| service_account(&mut rng, rv)).collect();
                    index.reset_service_accounts(
                        listed.iter().filter_map(Index::listed_service_account),
                    );
                }
                17 => {
                    index.apply_service_account(&service_account(&mut rng, rv));
                }
                18 => {
                    let sa = service_account(&mut rng, rv);
                    let m = &sa.metadata;
                    index.delete_service_account(
                        m.namespace.as_deref().unwrap(),
                        m.name.as_deref().unwrap(),
                    );
                }
                _ => {
                    let mut s = secret(&mut rng, rv);
                    s.type_ = Some("Opaque".into());
                    index.learn_type(&s);
                    index.apply_secret(&s);
                }
            }
            for subject in &subjects {
                let want = scanned(&index, subject);
                let view = index.view(subject);
                let mut got: Vec<Key> = view
                    .secrets()
                    .map(|s| (s.namespace.clone(), s.name.clone()))
                    .collect();
                got.sort();
                assert_eq!(got, want, "step {step}, {subject:?}");
                // The owner index holds only Secrets the subject may touch.
                let owned = view.owned.into_iter().flatten();
                assert!(
                    owned.clone().all(|(ns, _)| subject.may_touch(ns)),
                    "step {step}, {subject:?}"
                );
                for ns in namespaces.iter().chain(&["x"]) {
                    let mut got: Vec<Key> = view
                        .service_accounts_in(ns)
                        .map(|sa| (sa.namespace.clone(), sa.name.clone()))
                        .collect();
                    got.sort();
                    let want = scanned_service_accounts(&index, subject, ns);
                    assert_eq!(got, want, "step {step}, {subject:?}, {ns}");
                }
                let mut due: Vec<Key> = index
                    .foreign_due(subject, t0 + std::time::Duration::from_secs(1))
                    .into_iter()
                    .map(|s| (s.namespace, s.name))
                    .collect();
                due.sort();
                let mut want_due: Vec<Key> = index
                    .foreign
                    .values()
                    .map(|f| &f.state)
                    .filter(|f| f.name == subject.spec.secret_name)
                    .filter(|f| subject.may_touch(&f.namespace))
                    .map(|f| (f.namespace.clone(), f.name.clone()))
                    .collect();
                want_due.sort();
                assert_eq!(due, want_due, "step {step}, {subject:?}");
            }
        }
        // Nothing is left over in the secondary indexes once the tables are empty.
        for ns in namespaces {
            index.delete_namespace(&ns_meta(ns));
        }
        assert!(index.by.secrets_by_owner.is_empty());
        assert!(index.by.secrets_by_name.is_empty());
        assert!(index.by.foreign_by_name.is_empty());
        assert!(
            index.service_accounts.is_empty(),
            "{:?}",
            index.service_accounts
        );
    }

    #[test]
    fn a_pull_secret_walks_only_its_own_namespace_of_forged_secrets() {
        // 500 Secrets in other namespaces carry PullSecret team-a/ecr's owner labels (a
        // tenant may label its own secrets as anyone's); team-a holds its one real Secret.
        let mut ps = irsa_k8s::PullSecret::new(
            "ecr",
            irsa_k8s::PullSecretSpec {
                secret: cps().spec.secret,
            },
        );
        ps.metadata.namespace = Some("team-a".into());
        let subject = Subject::namespaced(&ps).unwrap();
        let mut index = Index::new();
        let labelled = |ns: &str, name: &str, rv: usize| Secret {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.to_string()),
                labels: Some(subject.owner.labels()),
                ..ObjectMeta::default()
            },
            type_: Some(DOCKER_CONFIG_JSON_TYPE.into()),
            ..Secret::default()
        };
        index.apply_secret(&labelled("team-a", "regcred", 1));
        for i in 0..500 {
            index.apply_secret(&labelled(&format!("tenant-{i}"), "regcred", i + 2));
        }
        let view = index.view(&subject);
        assert_eq!(view.secrets().count(), 1);
        assert_eq!(
            view.owned_walked(),
            1,
            "the view walks forged Secrets of other namespaces"
        );
        // They are still indexed (by name) and go when deleted.
        for i in 0..500 {
            assert!(index.delete_secret(&format!("tenant-{i}"), "regcred"));
        }
        assert!(index.delete_secret("team-a", "regcred"));
        assert!(index.by.secrets_by_owner.is_empty());
        assert!(index.by.secrets_by_name.is_empty());
    }

    /// A [`View`] that counts the entries planning reads from it.
    struct Counting<'v, V> {
        view: &'v V,
        read: std::cell::Cell<usize>,
    }

    impl<V> Counting<'_, V> {
        fn one<T>(&self, t: T) -> T {
            self.read.set(self.read.get() + 1);
            t
        }
    }

    impl<V: View> View for Counting<'_, V> {
        fn namespaces(&self) -> impl Iterator<Item = &NamespaceState> {
            self.view.namespaces().map(|n| self.one(n))
        }

        fn namespace(&self, name: &str) -> Option<&NamespaceState> {
            self.one(self.view.namespace(name))
        }

        fn secrets(&self) -> impl Iterator<Item = &SecretState> {
            self.view.secrets().map(|s| self.one(s))
        }

        fn service_accounts_in(
            &self,
            namespace: &str,
        ) -> impl Iterator<Item = &ServiceAccountState> {
            self.view
                .service_accounts_in(namespace)
                .map(|s| self.one(s))
        }
    }

    #[test]
    fn a_chunked_fan_out_builds_work_linear_in_its_namespaces() {
        use crate::plan::{Round, plan_round};
        use irsa_k8s::TargetCounts;
        const N: usize = 3000;
        const CHUNK: usize = 50;
        let mut cps = cps();
        cps.spec.secret.service_accounts = vec!["default".into()];
        let subject = Subject::cluster(&cps);
        let mut index = Index::new();
        let mut rv = 0u64;
        let mut next_rv = || {
            rv += 1;
            rv.to_string()
        };
        let sa = |ns: &str, name: &str, rv: String, pull: Vec<String>| ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv),
                ..ObjectMeta::default()
            },
            image_pull_secrets: Some(
                pull.into_iter()
                    .map(|name| LocalObjectReference { name })
                    .collect(),
            ),
            ..ServiceAccount::default()
        };
        for i in 0..N {
            let name = format!("ns-{i:05}");
            index.apply_namespace(&ns(&name, &next_rv()));
            index.apply_service_account(&sa(&name, "default", next_rv(), vec![]));
        }
        // Service accounts of a namespace not served (not even indexed as one) are never read.
        for i in 0..N {
            index.apply_service_account(&sa("kube-system", &format!("sa-{i}"), next_rv(), vec![]));
        }
        let credential = credential();
        let round = Round {
            max_writes: CHUNK,
            ..Round::unbounded()
        };
        let (mut rounds, mut built, mut read) = (0, 0, 0);
        loop {
            let view = index.view(&subject);
            let counting = Counting {
                view: &view,
                read: 0.into(),
            };
            let p = plan_round(&subject, &counting, Some(&credential), round);
            read += counting.read.get();
            built += p.writes.len()
                + p.service_account_patches.len()
                + p.deletions.len()
                + p.conflicts.len()
                + p.states.len()
                + p.pending.len();
            let n = i32::try_from(N).unwrap();
            assert_eq!(p.counts(), TargetCounts::new(n, n, 0, 0), "round {rounds}");
            assert!(p.writes.len() <= CHUNK);
            for w in &p.writes {
                let mut s = w.secret.to_secret();
                s.metadata.resource_version = Some(next_rv());
                assert!(index.apply_secret(&s));
            }
            for patch in &p.service_account_patches {
                let list = patch.apply_to(&patch.observed);
                index.apply_service_account(&sa(&patch.namespace, &patch.name, next_rv(), list));
            }
            rounds += 1;
            if p.left == 0 {
                break;
            }
        }
        // The writes first, then the patches: both count against the round's budget.
        assert_eq!(rounds, 2 * N / CHUNK);
        let last = plan_round(&subject, &index.view(&subject), Some(&credential), round);
        assert!(last.is_noop(), "{:?}", last.writes.len());
        // Each namespace's write and patch are built once over the fan-out, not once per round
        // (which made N²/CHUNK = 60 N), with its state in each of the two rounds.
        assert!(
            built <= 4 * N,
            "{built} items built for {N} namespaces in {rounds} rounds"
        );
        // What a round reads is the served namespaces, the resource's Secrets and the service
        // accounts of the namespaces that hold one (O(N) per round, allocation-free); never a
        // ServiceAccount of a namespace it does not serve.
        assert!(
            read <= rounds * 4 * N,
            "{read} entries read for {N} namespaces in {rounds} rounds"
        );
    }

    #[test]
    fn service_accounts_are_indexed_with_their_annotations() {
        let mut index = Index::new();
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some("irsa".into()),
                name: Some("puller".into()),
                resource_version: Some("3".into()),
                annotations: Some(
                    [
                        (
                            ROLE_ARN_ANNOTATION.to_owned(),
                            "arn:aws:iam::1:role/r".to_owned(),
                        ),
                        ("other".to_owned(), "x".to_owned()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            image_pull_secrets: Some(vec![LocalObjectReference {
                name: "regcred".into(),
            }]),
            ..ServiceAccount::default()
        };
        assert!(index.apply_service_account(&sa));
        let got = index.service_account("irsa", "puller").unwrap();
        assert_eq!(got.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert_eq!(got.audience, None);
        assert_eq!(got.state.image_pull_secrets, vec!["regcred".to_owned()]);
        // A SA listing the resource's secret is observed (for cleanup).
        let cps = cps();
        let subject = Subject::cluster(&cps);
        assert_eq!(index.observed(&subject).service_accounts.len(), 1);
        let _ = Owner::Cluster { name: "x".into() };
        assert!(index.delete_service_account("irsa", "puller"));
    }
}
