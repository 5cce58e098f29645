//! The resource types the API server serves: built-ins and CRDs registered at run time.

use serde_json::{Value, json};

/// An extra column in `kubectl get` (CRD `additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column name.
    pub name: String,
    /// Column type (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// JSONPath of the value (`.spec.foo`).
    pub json_path: String,
}

/// One served resource of one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Plural name (`secrets`).
    pub plural: String,
    /// Singular name (`secret`).
    pub singular: String,
    /// Kind (`Secret`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`sa`, `cm`, `ns`).
    pub short_names: Vec<String>,
    /// Whether `/status` is a subresource (status changes only through it).
    pub status_subresource: bool,
    /// CRD printer columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// Storage key shared by every version of the resource (`group/plural`).
    pub storage: String,
    /// Whether the resource comes from a CRD (bumps `metadata.generation` on spec changes).
    pub custom: bool,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            status_subresource: status,
            printer_columns: Vec::new(),
            storage: format!("{group}/{plural}"),
            custom: false,
        }
    }

    /// `apiVersion` of objects of this type (`v1`, `coordination.k8s.io/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The entry in an `APIResourceList`.
    pub fn discovery(&self) -> Vec<Value> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if self.plural == "namespaces" {
            verbs.retain(|v| *v != "deletecollection");
        }
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.plural == "serviceaccounts" {
            out.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
        out
    }

    /// Builds a resource type for each served version of a CRD object.
    pub fn from_crd(crd: &Value) -> Result<Vec<Self>, String> {
        let spec = crd.get("spec").ok_or("spec is required")?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or("spec.group is required")?;
        let names = spec.get("names").ok_or("spec.names is required")?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let plural = s(names, "plural").ok_or("spec.names.plural is required")?;
        let kind = s(names, "kind").ok_or("spec.names.kind is required")?;
        let singular = s(names, "singular").unwrap_or_else(|| kind.to_lowercase());
        let short_names: Vec<String> = names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let expected_name = format!("{plural}.{group}");
        if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(expected_name.as_str()) {
            return Err(format!("metadata.name must be {expected_name:?}"));
        }
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("spec.versions is required")?;
        let mut out = Vec::new();
        for v in versions {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let version = s(v, "name").ok_or("spec.versions[].name is required")?;
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .filter_map(|c| {
                            Some(PrinterColumn {
                                name: s(c, "name")?,
                                type_: s(c, "type").unwrap_or_else(|| "string".into()),
                                json_path: s(c, "jsonPath")?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Self {
                group: group.into(),
                version,
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                short_names: short_names.clone(),
                status_subresource: v.pointer("/subresources/status").is_some(),
                printer_columns,
                storage: format!("{group}/{plural}"),
                custom: true,
            });
        }
        Ok(out)
    }
}

/// The built-in resources irsa uses.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        ResourceType::builtin("", "v1", "secrets", "Secret", true, &[], false),
        ResourceType::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        ResourceType::builtin("", "v1", "pods", "Pod", true, &["po"], true),
        ResourceType::builtin("", "v1", "events", "Event", true, &["ev"], false),
        ResourceType::builtin("", "v1", "nodes", "Node", false, &["no"], true),
        ResourceType::builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
        ),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        // Stored, never enforced: `irsa doctor` reads them (the node RBAC of the kubelet
        // credential provider), and `kubectl apply` of irsa's manifests creates them.
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
        ),
        ResourceType::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

/// The set of served resource types.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { types: builtins() }
    }
}

impl Registry {
    /// Every served type.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type for (group, version, plural).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// The type for an (apiVersion, kind) pair.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Registers (or replaces) the versions of a CRD.
    pub fn register(&mut self, types: Vec<ResourceType>) {
        if let Some(first) = types.first() {
            let storage = first.storage.clone();
            self.types.retain(|t| t.storage != storage);
        }
        self.types.extend(types);
    }

    /// Removes every version of a storage key (`group/plural`).
    pub fn unregister(&mut self, storage: &str) {
        self.types.retain(|t| t.storage != storage || !t.custom);
    }

    /// Groups and their versions, in registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_registration() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v0", "served": false, "storage": false}
                ]}
        });
        let types = ResourceType::from_crd(&crd).unwrap();
        assert_eq!(types.len(), 1);
        assert!(types[0].status_subresource);
        assert_eq!(types[0].printer_columns[0].json_path, ".spec.size");
        let mut reg = Registry::default();
        reg.register(types);
        assert!(reg.find("example.com", "v1", "widgets").is_some());
        assert!(reg.find_kind("example.com/v1", "Widget").is_some());
        reg.unregister("example.com/widgets");
        assert!(reg.find("example.com", "v1", "widgets").is_none());

        let mut bad = crd.clone();
        bad["metadata"]["name"] = json!("nope");
        assert!(ResourceType::from_crd(&bad).is_err());
    }
}
