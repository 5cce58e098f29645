//! Which resources an index change affects, so that a namespace, service-account or secret
//! event reconciles only the ClusterPullSecrets and PullSecrets that select, name or own the
//! object (kube-runtime's `reconcile_on`), not all of them. Pure: the watch feeds record a
//! [`Change`] from the [`Index`] (what was there before and after the event, through
//! [`Tracker`]), and [`affected`] maps it against the resources' specs.
//!
//! The mapping errs on the side of reconciling: a resource that may have to act is named; a
//! resync (periodic, `Handle::resync_all`, a watch's re-list) still reconciles everything.

use irsa_k8s::{ClusterPullSecret, PullSecret, SecretSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use crate::index::Index;
use crate::labels::{LabelMap, Labels};
use crate::plan::{
    NamespaceState, OWNER_KIND_LABEL, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, is_managed, selects,
};

/// One change of the index, as much of it as the mapping needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A namespace was added, changed or deleted.
    Namespace {
        /// Its name.
        name: String,
        /// As indexed before the event (`None`: new).
        before: Option<NamespaceState>,
        /// As indexed after it (`None`: deleted).
        after: Option<NamespaceState>,
    },
    /// One of irsa's Secrets was added, changed or deleted.
    Secret {
        /// Its namespace, as indexed (`None`: not indexed).
        namespace: Option<NamespaceState>,
        /// Its namespace's name.
        namespace_name: String,
        /// Its name.
        name: String,
        /// Its labels before the event (`None`: new).
        before: Option<Labels>,
        /// Its labels after it (`None`: deleted).
        after: Option<Labels>,
    },
    /// A ServiceAccount was added, changed or deleted.
    ServiceAccount {
        /// Its namespace, as indexed (`None`: not indexed).
        namespace: Option<NamespaceState>,
        /// Its namespace's name.
        namespace_name: String,
        /// Its name.
        name: String,
        /// Its `imagePullSecrets` before the event (`None`: new).
        before: Option<Vec<String>>,
        /// Its `imagePullSecrets` after it (`None`: deleted).
        after: Option<Vec<String>>,
    },
    /// Everything may have changed (a watch re-listed).
    All,
}

/// Applies watch events to an [`Index`] and says what changed; see the [module docs](self).
pub struct Tracker<'a>(pub &'a mut Index);

impl Tracker<'_> {
    /// [`Index::apply_namespace`], as a change.
    pub fn apply_namespace(&mut self, meta: &ObjectMeta) -> Option<Change> {
        let name = meta.name.clone()?;
        let before = self.0.namespace(&name).cloned();
        self.0.apply_namespace(meta).then(|| Change::Namespace {
            after: self.0.namespace(&name).cloned(),
            name,
            before,
        })
    }

    /// [`Index::delete_namespace`], as a change.
    pub fn delete_namespace(&mut self, meta: &ObjectMeta) -> Option<Change> {
        let name = meta.name.clone()?;
        let before = self.0.namespace(&name).cloned();
        self.0.delete_namespace(meta).then_some(Change::Namespace {
            name,
            before,
            after: None,
        })
    }

    /// [`Index::apply_secret`], as a change.
    pub fn apply_secret(&mut self, secret: &Secret) -> Option<Change> {
        let (ns, name) = names(&secret.metadata)?;
        let before = self.0.secret(&ns, &name).map(|s| s.labels.clone());
        self.0.apply_secret(secret).then(|| Change::Secret {
            namespace: self.0.namespace(&ns).cloned(),
            after: self.0.secret(&ns, &name).map(|s| s.labels.clone()),
            namespace_name: ns,
            name,
            before,
        })
    }

    /// [`Index::delete_secret`], as a change.
    pub fn delete_secret(&mut self, secret: &Secret) -> Option<Change> {
        let (ns, name) = names(&secret.metadata)?;
        let before = self.0.secret(&ns, &name).map(|s| s.labels.clone());
        self.0.delete_secret(&ns, &name).then(|| Change::Secret {
            namespace: self.0.namespace(&ns).cloned(),
            namespace_name: ns,
            name,
            before,
            after: None,
        })
    }

    /// [`Index::apply_service_account`], as a change.
    pub fn apply_service_account(&mut self, sa: &ServiceAccount) -> Option<Change> {
        let (ns, name) = names(&sa.metadata)?;
        let pull_secrets = |i: &Index| {
            i.service_account(&ns, &name)
                .map(|s| s.state.image_pull_secrets.clone())
        };
        let before = pull_secrets(self.0);
        self.0
            .apply_service_account(sa)
            .then(|| Change::ServiceAccount {
                namespace: self.0.namespace(&ns).cloned(),
                after: pull_secrets(self.0),
                namespace_name: ns.clone(),
                name: name.clone(),
                before,
            })
    }

    /// [`Index::delete_service_account`], as a change.
    pub fn delete_service_account(&mut self, sa: &ServiceAccount) -> Option<Change> {
        let (ns, name) = names(&sa.metadata)?;
        let before = self
            .0
            .service_account(&ns, &name)
            .map(|s| s.state.image_pull_secrets.clone());
        self.0
            .delete_service_account(&ns, &name)
            .then(|| Change::ServiceAccount {
                namespace: self.0.namespace(&ns).cloned(),
                namespace_name: ns,
                name,
                before,
                after: None,
            })
    }
}

fn names(meta: &ObjectMeta) -> Option<(String, String)> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// The resources to reconcile for one change.
#[derive(Debug, Default, PartialEq)]
pub struct Affected {
    /// ClusterPullSecrets.
    pub cluster: Vec<ObjectRef<ClusterPullSecret>>,
    /// PullSecrets.
    pub namespaced: Vec<ObjectRef<PullSecret>>,
    /// Every resource (a re-list): left to the resync trigger.
    pub all: bool,
}

/// Where a resource writes: a selection, or its own namespace.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Cluster(&'a ClusterPullSecret),
    Namespaced(&'a str),
}

impl Scope<'_> {
    fn serves(&self, ns: Option<&NamespaceState>) -> bool {
        match (self, ns) {
            (_, None) => false,
            (Scope::Cluster(c), Some(ns)) => selects(&c.spec.namespaces, ns),
            (Scope::Namespaced(own), Some(ns)) => ns.name == *own,
        }
    }

    fn in_namespace(&self, ns: &str) -> bool {
        match self {
            Scope::Cluster(_) => true,
            Scope::Namespaced(own) => *own == ns,
        }
    }

    /// Whether labels name this resource as the owner (the managed-by label included).
    fn owns(&self, name: &str, labels: &impl LabelMap) -> bool {
        let get = |k: &str| labels.label(k);
        is_managed(labels)
            && get(OWNER_NAME_LABEL) == Some(name)
            && match self {
                Scope::Cluster(_) => {
                    get(OWNER_KIND_LABEL) == Some("ClusterPullSecret")
                        && get(OWNER_NAMESPACE_LABEL).is_none()
                }
                Scope::Namespaced(own) => {
                    get(OWNER_KIND_LABEL) == Some("PullSecret")
                        && get(OWNER_NAMESPACE_LABEL) == Some(own)
                }
            }
    }

    /// Whether the resource's identity is the service account `namespace/name`.
    fn identity_is(&self, spec: &SecretSpec, namespace: &str, name: &str) -> bool {
        spec.identity.service_account.as_ref().is_some_and(|sa| {
            sa.name == name
                && match (self, sa.namespace.as_deref()) {
                    (_, Some(ns)) => ns == namespace,
                    // A PullSecret's service account defaults to its own namespace.
                    (Scope::Namespaced(own), None) => *own == namespace,
                    (Scope::Cluster(_), None) => false,
                }
        })
    }

    fn identity_in(&self, spec: &SecretSpec, namespace: &str) -> bool {
        spec.identity.service_account.as_ref().is_some_and(|sa| {
            match (self, sa.namespace.as_deref()) {
                (_, Some(ns)) => ns == namespace,
                (Scope::Namespaced(own), None) => *own == namespace,
                (Scope::Cluster(_), None) => false,
            }
        })
    }
}

/// Whether `change` may need the resource named `name` (of `scope`, with `spec`) to act.
fn affects(change: &Change, scope: Scope<'_>, name: &str, spec: &SecretSpec) -> bool {
    match change {
        Change::All => true,
        Change::Namespace {
            name: ns,
            before,
            after,
        } => {
            scope.serves(before.as_ref())
                || scope.serves(after.as_ref())
                // Its identity's namespace appeared or went (with the service account in it).
                || ((before.is_none() || after.is_none()) && scope.identity_in(spec, ns))
        }
        Change::Secret {
            namespace,
            namespace_name,
            name: secret,
            before,
            after,
        } => {
            let labels = || before.iter().chain(after.iter());
            // Its own secret (by owner labels, in a namespace where it may own one: a tenant
            // may label its secrets as anyone's), or one in the way of (or out of the way of)
            // its secret in a namespace it serves.
            (scope.in_namespace(namespace_name) && labels().any(|l| scope.owns(name, l)))
                || (*secret == spec.secret_name
                    && scope.in_namespace(namespace_name)
                    && scope.serves(namespace.as_ref()))
        }
        Change::ServiceAccount {
            namespace,
            namespace_name,
            name: sa,
            before,
            after,
        } => {
            let lists =
                |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| l.contains(&spec.secret_name));
            let serves = scope.in_namespace(namespace_name) && scope.serves(namespace.as_ref());
            scope.identity_is(spec, namespace_name, sa)
                || (serves
                    && (spec.service_accounts.iter().any(|n| n == "*" || n == sa)
                        || lists(before)
                        || lists(after)))
        }
    }
}

/// The resources among `cluster` and `namespaced` that `change` affects.
pub fn affected<'a>(
    change: &Change,
    cluster: impl IntoIterator<Item = &'a ClusterPullSecret>,
    namespaced: impl IntoIterator<Item = &'a PullSecret>,
) -> Affected {
    if *change == Change::All {
        return Affected {
            all: true,
            ..Affected::default()
        };
    }
    let cluster = cluster
        .into_iter()
        .filter(|c| {
            let name = c.metadata.name.as_deref().unwrap_or_default();
            affects(change, Scope::Cluster(c), name, &c.spec.secret)
        })
        .map(ObjectRef::from_obj)
        .collect();
    let namespaced = namespaced
        .into_iter()
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            p.metadata
                .namespace
                .as_deref()
                .is_some_and(|own| affects(change, Scope::Namespaced(own), name, &p.spec.secret))
        })
        .map(ObjectRef::from_obj)
        .collect();
    Affected {
        cluster,
        namespaced,
        all: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Owner;
    use irsa_k8s::{
        ClusterPullSecretSpec, IdentitySpec, NamespaceSelection, PullSecretSpec, RegistrySpec,
        ServiceAccountRef,
    };
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn spec(secret_name: &str, identity: (Option<&str>, &str), sas: &[&str]) -> SecretSpec {
        let mut spec = SecretSpec::new(
            vec![RegistrySpec {
                host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
                chainguard: None,
            }],
            IdentitySpec {
                service_account: Some(ServiceAccountRef {
                    namespace: identity.0.map(str::to_owned),
                    name: identity.1.to_owned(),
                }),
                ..IdentitySpec::default()
            },
            secret_name,
        );
        spec.service_accounts = sas.iter().map(|s| (*s).to_owned()).collect();
        spec
    }

    fn cps(name: &str, namespaces: NamespaceSelection, sas: &[&str]) -> ClusterPullSecret {
        ClusterPullSecret::new(
            name,
            ClusterPullSecretSpec {
                secret: spec("regcred", (Some("irsa"), "puller"), sas),
                namespaces,
            },
        )
    }

    fn labelled(key: &str, value: &str) -> NamespaceSelection {
        NamespaceSelection {
            selector: Some(LabelSelector {
                match_labels: Some([(key.to_owned(), value.to_owned())].into()),
                ..LabelSelector::default()
            }),
            ..NamespaceSelection::default()
        }
    }

    fn ps(namespace: &str, name: &str, sa: &str) -> PullSecret {
        let mut ps = PullSecret::new(
            name,
            PullSecretSpec {
                secret: spec("regcred", (None, sa), &[]),
            },
        );
        ps.metadata.namespace = Some(namespace.to_owned());
        ps
    }

    fn ns(name: &str, rv: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            resource_version: Some(rv.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn sa(namespace: &str, name: &str, rv: &str, pull: &[&str]) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            image_pull_secrets: Some(
                pull.iter()
                    .map(|n| LocalObjectReference {
                        name: (*n).to_owned(),
                    })
                    .collect(),
            ),
            ..ServiceAccount::default()
        }
    }

    fn secret(namespace: &str, name: &str, rv: &str, owner: &Owner) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                labels: Some(owner.labels()),
                ..ObjectMeta::default()
            },
            type_: Some(crate::plan::DOCKER_CONFIG_JSON_TYPE.to_owned()),
            ..Secret::default()
        }
    }

    /// Fifty ClusterPullSecrets, one of which (`team`) selects `team=a`; the others select
    /// labels no namespace has, one excludes by glob.
    struct World {
        cluster: Vec<ClusterPullSecret>,
        namespaced: Vec<PullSecret>,
    }

    impl World {
        fn new() -> Self {
            let mut cluster = vec![cps("team", labelled("team", "a"), &[])];
            cluster.extend((1..49).map(|i| {
                cps(
                    &format!("other-{i}"),
                    labelled("team", &format!("x{i}")),
                    &[],
                )
            }));
            cluster.push(cps(
                "all-but-kube",
                NamespaceSelection {
                    exclude: vec!["kube-*".into(), "team-*".into()],
                    ..NamespaceSelection::default()
                },
                &["default"],
            ));
            Self {
                cluster,
                namespaced: vec![
                    ps("app", "mine", "builder"),
                    ps("other", "theirs", "builder"),
                ],
            }
        }

        fn map(&self, change: Option<Change>) -> (Vec<String>, Vec<String>) {
            let Some(change) = change else {
                return (Vec::new(), Vec::new());
            };
            let a = affected(&change, &self.cluster, &self.namespaced);
            assert!(!a.all);
            (
                a.cluster.iter().map(|r| r.name.clone()).collect(),
                a.namespaced
                    .iter()
                    .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name))
                    .collect(),
            )
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_namespace_reconciles_the_resources_that_select_it_before_or_after() {
        let world = World::new();
        let mut index = Index::new();
        let mut t = Tracker(&mut index);
        assert_eq!(
            world.map(t.apply_namespace(&ns("team-1", "1", &[("team", "a")]))),
            (names(&["team"]), vec![])
        );
        assert_eq!(
            world.map(t.apply_namespace(&ns("team-1", "1", &[("team", "a")]))),
            (vec![], vec![]),
            "an unchanged namespace (an echo) reconciles nothing"
        );
        // Relabelled out of `team`'s selection: `team` must delete its secret there.
        assert_eq!(
            world.map(t.apply_namespace(&ns("team-1", "2", &[("team", "x3")]))),
            (names(&["team", "other-3"]), vec![])
        );
        // Excluded by glob: only label selectors apply.
        assert_eq!(
            world.map(t.apply_namespace(&ns("kube-system", "3", &[]))),
            (vec![], vec![])
        );
        assert_eq!(
            world.map(t.apply_namespace(&ns("plain", "4", &[]))),
            (names(&["all-but-kube"]), vec![])
        );
        // A PullSecret's own namespace.
        assert_eq!(
            world.map(t.apply_namespace(&ns("app", "5", &[]))),
            (names(&["all-but-kube"]), names(&["app/mine"]))
        );
        // Deleted: whoever selected it; and whose identity lived in it.
        assert_eq!(
            world.map(t.delete_namespace(&ns("team-1", "6", &[]))),
            (names(&["other-3"]), vec![])
        );
        assert_eq!(
            world.map(t.apply_namespace(&ns("irsa", "7", &[("team", "zz")]))),
            (
                world
                    .cluster
                    .iter()
                    .map(|c| c.metadata.name.clone().unwrap())
                    .collect(),
                vec![]
            ),
            "every ClusterPullSecret's identity lives in irsa"
        );
        // A re-list is left to the resync.
        assert!(affected(&Change::All, &world.cluster, &world.namespaced).all);
    }

    #[test]
    fn a_secret_reconciles_its_owner_and_whoever_wants_its_name_there() {
        let world = World::new();
        let mut index = Index::new();
        index.apply_namespace(&ns("team-1", "1", &[("team", "a")]));
        index.apply_namespace(&ns("app", "1", &[]));
        let mut t = Tracker(&mut index);
        let team = Owner::Cluster {
            name: "team".into(),
        };
        // Written by `team`: the echo reconciles nobody, a change by someone else `team` only.
        let mut written = secret("team-1", "regcred", "10", &team);
        assert_eq!(
            world.map(t.apply_secret(&written)),
            (names(&["team"]), vec![])
        );
        assert_eq!(world.map(t.apply_secret(&written)), (vec![], vec![]));
        // Another owner's secret of another name, in a namespace nobody else serves.
        let mine = Owner::Namespaced {
            namespace: "app".into(),
            name: "mine".into(),
        };
        assert_eq!(
            world.map(t.apply_secret(&secret("app", "other-name", "11", &mine))),
            (vec![], names(&["app/mine"]))
        );
        // Relabelled to another owner: both the old and the new owner.
        written.metadata.resource_version = Some("12".into());
        written.metadata.labels = Some(
            Owner::Cluster {
                name: "other-7".into(),
            }
            .labels(),
        );
        assert_eq!(
            world.map(t.apply_secret(&written)),
            (names(&["team", "other-7"]), vec![])
        );
        // Deleted: whoever owned it and whoever wants `regcred` in team-1.
        assert_eq!(
            world.map(t.delete_secret(&written)),
            (names(&["team", "other-7"]), vec![])
        );
        assert_eq!(
            world.map(t.delete_secret(&written)),
            (vec![], vec![]),
            "gone already"
        );
        // `regcred` in app, owned by `team` (stale): `team`, `all-but-kube` (serves app, same
        // name) and the PullSecret of app (same name, own namespace).
        assert_eq!(
            world.map(t.apply_secret(&secret("app", "regcred", "13", &team))),
            (names(&["team", "all-but-kube"]), names(&["app/mine"]))
        );
    }

    #[test]
    fn a_tenant_labelling_a_secret_as_another_namespaces_pull_secret_reconciles_nobody_else() {
        let world = World::new();
        let mut index = Index::new();
        index.apply_namespace(&ns("app", "1", &[]));
        index.apply_namespace(&ns("other", "1", &[]));
        let mut t = Tracker(&mut index);
        let theirs = Owner::Namespaced {
            namespace: "other".into(),
            name: "theirs".into(),
        };
        // In `app`, labelled as PullSecret other/theirs, which may never own anything there.
        assert_eq!(
            world.map(t.apply_secret(&secret("app", "not-regcred", "20", &theirs))),
            (vec![], vec![]),
            "a PullSecret owns nothing outside its namespace"
        );
        // The same labels in `other` name it.
        assert_eq!(
            world.map(t.apply_secret(&secret("other", "not-regcred", "21", &theirs))),
            (vec![], names(&["other/theirs"]))
        );
    }

    #[test]
    fn a_service_account_reconciles_whoever_uses_names_or_lists_it() {
        let world = World::new();
        let mut index = Index::new();
        for (n, labels) in [
            ("team-1", &[("team", "a")][..]),
            ("app", &[]),
            ("irsa", &[]),
        ] {
            index.apply_namespace(&ns(n, "1", labels));
        }
        let mut t = Tracker(&mut index);
        // `default` in team-1: named by nobody serving team-1 (all-but-kube excludes team-*).
        assert_eq!(
            world.map(t.apply_service_account(&sa("team-1", "default", "2", &[]))),
            (vec![], vec![])
        );
        // `default` in app: named by all-but-kube, which serves app.
        assert_eq!(
            world.map(t.apply_service_account(&sa("app", "default", "2", &[]))),
            (names(&["all-but-kube"]), vec![])
        );
        // The identity of every ClusterPullSecret.
        let all: Vec<String> = world
            .cluster
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            world.map(t.apply_service_account(&sa("irsa", "puller", "3", &[]))),
            (all.clone(), vec![])
        );
        assert_eq!(
            world.map(t.delete_service_account(&sa("irsa", "puller", "4", &[]))),
            (all, vec![])
        );
        // The PullSecret's identity (namespace defaulted to its own).
        assert_eq!(
            world.map(t.apply_service_account(&sa("app", "builder", "5", &[]))),
            (vec![], names(&["app/mine"]))
        );
        // Someone lists `regcred` on a service account in team-1: team serves it.
        assert_eq!(
            world.map(t.apply_service_account(&sa("team-1", "default", "6", &["regcred"]))),
            (names(&["team"]), vec![])
        );
        // Unchanged (the echo of irsa's own patch): nobody.
        assert_eq!(
            world.map(t.apply_service_account(&sa("team-1", "default", "6", &["regcred"]))),
            (vec![], vec![])
        );
    }
}
