//! The kubelet `CredentialProviderConfig` (`kubelet.config.k8s.io/v1`) that runs
//! `irsa credential-provider`, the RBAC the nodes need to request its token audience, and the
//! kubelet flags — with the kubelet's own validation rules applied to what is printed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use irsa_core::chainguard::ChainguardMethod;
use irsa_core::names::{CHAINGUARD_IDENTITY_ANNOTATION, CHAINGUARD_METHOD_ANNOTATION};
use irsa_core::partition::Partition;

use crate::plan::{DEFAULT_ROLE_ANNOTATIONS, Fallback};
use crate::protocol::{API_VERSION_V1, API_VERSIONS, go_duration};

/// `tokenAttributes` of a provider (KEP-4412).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAttributes {
    /// The audience of the pod's service-account token.
    pub service_account_token_audience: String,
    /// `ServiceAccount` or `Token`: required since Kubernetes 1.34.
    pub cache_type: String,
    /// Whether pods without a service account (static pods) are refused; the kubelet requires
    /// it to be set.
    pub require_service_account: Option<bool>,
    /// Annotations that must be present.
    pub required_service_account_annotation_keys: Vec<String>,
    /// Annotations passed when present.
    pub optional_service_account_annotation_keys: Vec<String>,
}

/// One entry of `providers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProvider {
    /// The executable's file name in the kubelet's `--image-credential-provider-bin-dir`.
    pub name: String,
    /// Image patterns the provider is called for.
    pub match_images: Vec<String>,
    /// How long the kubelet keeps a credential when the response names no duration.
    pub default_cache_duration: Option<Duration>,
    /// The protocol version.
    pub api_version: String,
    /// Arguments.
    pub args: Vec<String>,
    /// KEP-4412 token attributes.
    pub token_attributes: Option<TokenAttributes>,
}

/// What `irsa install credential-provider` is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOptions {
    /// Role annotation keys, in order.
    pub role_annotations: Vec<String>,
    /// The fallback for service accounts without a role.
    pub fallback: Fallback,
    /// The on-disk cache directory, if any.
    pub cache_dir: Option<String>,
    /// The token audience (STS's).
    pub audience: String,
    /// The printed `--chainguard-identity` (cgr.dev pulls of service accounts that name none,
    /// and of node mode), if any.
    pub chainguard_identity: Option<String>,
    /// The printed `--chainguard-method`, if any.
    pub chainguard_method: Option<ChainguardMethod>,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        Self {
            role_annotations: DEFAULT_ROLE_ANNOTATIONS.map(str::to_owned).to_vec(),
            // Safe unless chosen otherwise: never the node's credentials for a pod.
            fallback: Fallback::Deny,
            cache_dir: Some("/var/lib/irsa/credential-provider".to_owned()),
            audience: irsa_core::names::STS_AUDIENCE.to_owned(),
            chainguard_identity: None,
            chainguard_method: None,
        }
    }
}

/// Every ECR private registry host form as a kubelet image pattern (a `*` stands for one DNS
/// label), then ECR Public's hosts, then Chainguard's `cgr.dev`; each also with `:443`. The kubelet's `URLsMatch` compares
/// ports exactly (a pattern without a port matches only images without one, and ports take no
/// globs), and registries are HTTPS on 443, so those two forms cover every image that can reach
/// them.
pub fn match_images() -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: String| {
        for pattern in [format!("{s}:443"), s] {
            if !out.contains(&pattern) {
                out.push(pattern);
            }
        }
    };
    for p in Partition::ALL {
        push(format!("*.dkr.ecr.*.{}", p.dns_suffix()));
        push(format!("*.dkr.ecr-fips.*.{}", p.dns_suffix()));
        if let Some(dual) = p.ecr_dual_stack_registry_suffix() {
            push(format!("*.dkr-ecr.*.{dual}"));
            push(format!("*.dkr-ecr-fips.*.{dual}"));
        }
    }
    push("public.ecr.aws".to_owned());
    push("ecr-public.aws.com".to_owned());
    push("cgr.dev".to_owned());
    out
}

/// The annotations the kubelet passes to irsa (it passes no other): the role keys, then the
/// Chainguard identity and method keys, each once.
pub fn annotation_keys(role_annotations: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for k in role_annotations
        .iter()
        .map(String::as_str)
        .chain([CHAINGUARD_IDENTITY_ANNOTATION, CHAINGUARD_METHOD_ANNOTATION])
    {
        if !keys.iter().any(|seen| seen == k) {
            keys.push(k.to_owned());
        }
    }
    keys
}

/// irsa's provider entry.
pub fn irsa_provider(options: &ConfigOptions) -> CredentialProvider {
    let mut args = vec![
        "credential-provider".to_owned(),
        format!(
            "--fallback={}",
            match options.fallback {
                Fallback::Node => "node",
                Fallback::Deny => "deny",
            }
        ),
        format!("--role-annotations={}", options.role_annotations.join(",")),
    ];
    if let Some(dir) = &options.cache_dir {
        args.push(format!("--cache-dir={dir}"));
    }
    if let Some(id) = &options.chainguard_identity {
        args.push(format!("--chainguard-identity={id}"));
    }
    if let Some(method) = options.chainguard_method {
        args.push(format!("--chainguard-method={method}"));
    }
    CredentialProvider {
        name: "irsa".to_owned(),
        match_images: match_images(),
        // ECR tokens live 12 hours; irsa's responses always name their own duration.
        default_cache_duration: Some(Duration::from_secs(6 * 3600)),
        api_version: API_VERSION_V1.to_owned(),
        args,
        token_attributes: Some(TokenAttributes {
            service_account_token_audience: options.audience.clone(),
            cache_type: "ServiceAccount".to_owned(),
            // Static pods and pods of nodes without tokens pull with the node's credentials.
            require_service_account: Some(false),
            required_service_account_annotation_keys: Vec::new(),
            // The kubelet passes no other annotation to the provider.
            optional_service_account_annotation_keys: annotation_keys(&options.role_annotations),
        }),
    }
}

/// The kubelet's `validateCredentialProviderConfig` rules for one list of providers: every
/// message names the field, as the kubelet's would.
pub fn validate(providers: &[CredentialProvider]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if providers.is_empty() {
        errors.push("providers: Required value: at least 1 item in plugins is required".to_owned());
    }
    let mut names = BTreeSet::new();
    for (i, p) in providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if p.name.is_empty() {
            errors.push(format!("{at}.name: Required value"));
        }
        if p.name.contains('/') {
            errors.push(format!(
                "{at}.name: Invalid value {:?}: provider name cannot contain '/'",
                p.name
            ));
        }
        if p.name.contains(' ') {
            errors.push(format!(
                "{at}.name: Invalid value {:?}: provider name cannot contain spaces",
                p.name
            ));
        }
        if p.name == "." || p.name == ".." {
            errors.push(format!(
                "{at}.name: Invalid value {:?}: provider name cannot be '.' or '..'",
                p.name
            ));
        }
        if !names.insert(p.name.as_str()) {
            errors.push(format!("{at}.name: Duplicate value {:?}", p.name));
        }
        if p.api_version.is_empty() {
            errors.push(format!("{at}.apiVersion: Required value"));
        } else if !API_VERSIONS.contains(&p.api_version.as_str()) {
            errors.push(format!(
                "{at}.apiVersion: Unsupported value {:?}",
                p.api_version
            ));
        }
        if p.match_images.is_empty() {
            errors.push(format!(
                "{at}.matchImages: Required value: at least 1 item in matchImages is required"
            ));
        }
        for m in &p.match_images {
            if let Err(reason) = check_match_image(m) {
                errors.push(format!(
                    "{at}.matchImages: Invalid value {m:?}: match image is invalid: {reason}"
                ));
            }
        }
        if p.default_cache_duration.is_none() {
            errors.push(format!("{at}.defaultCacheDuration: Required value"));
        }
        if let Some(t) = &p.token_attributes {
            let at = format!("{at}.tokenAttributes");
            if t.service_account_token_audience.is_empty() {
                errors.push(format!("{at}.serviceAccountTokenAudience: Required value"));
            }
            if t.require_service_account.is_none() {
                errors.push(format!("{at}.requireServiceAccount: Required value"));
            }
            if p.api_version != API_VERSION_V1 {
                errors.push(format!("{at}: Forbidden: tokenAttributes is only supported for {API_VERSION_V1} API version"));
            }
            if t.require_service_account == Some(false)
                && !t.required_service_account_annotation_keys.is_empty()
            {
                errors.push(format!("{at}.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set"));
            }
            for (field, keys) in [
                (
                    "requiredServiceAccountAnnotationKeys",
                    &t.required_service_account_annotation_keys,
                ),
                (
                    "optionalServiceAccountAnnotationKeys",
                    &t.optional_service_account_annotation_keys,
                ),
            ] {
                let mut seen = BTreeSet::new();
                for k in keys {
                    if let Err(reason) = qualified_name(&k.to_ascii_lowercase()) {
                        errors.push(format!("{at}.{field}: Invalid value {k:?}: {reason}"));
                    }
                    if !seen.insert(k) {
                        errors.push(format!("{at}.{field}: Duplicate value {k:?}"));
                    }
                }
            }
            let both: Vec<&String> = t
                .required_service_account_annotation_keys
                .iter()
                .filter(|k| t.optional_service_account_annotation_keys.contains(k))
                .collect();
            if !both.is_empty() {
                errors.push(format!("{at}: Invalid value {both:?}: annotation keys cannot be both required and optional"));
            }
            match t.cache_type.as_str() {
                "" => errors.push(format!("{at}.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ServiceAccount, Token")),
                "ServiceAccount" | "Token" => {}
                other => errors.push(format!("{at}.cacheType: Unsupported value {other:?}: supported values: \"ServiceAccount\", \"Token\"")),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The kubelet parses a match image as a URL without scheme: a host of DNS labels or `*`
/// globs, an optional numeric port, an optional path.
fn check_match_image(m: &str) -> Result<(), String> {
    if m.is_empty() {
        return Err("it is empty".into());
    }
    if m.contains("://") {
        return Err("a match image has no scheme".into());
    }
    let host_port = m.split('/').next().unwrap_or_default();
    let (host, port) = match host_port.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    for label in host.split('.') {
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        {
            return Err(format!("host label {label:?} is not a DNS label or glob"));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5)
    {
        return Err(format!("port {port:?} is not a number"));
    }
    Ok(())
}

/// Kubernetes' `IsQualifiedName`: `[prefix/]name`, prefix a DNS subdomain of at most 253
/// characters, name at most 63 of `[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]`.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.contains('/') {
        return Err("a qualified name has at most one '/'".into());
    }
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err("prefix part must be a lowercase RFC 1123 subdomain".into());
        }
    }
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    if name.is_empty()
        || name.len() > 63
        || !alnum(&bytes[0])
        || !alnum(&bytes[bytes.len() - 1])
        || !bytes
            .iter()
            .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', start and end with an alphanumeric character, and be at most 63 characters".into());
    }
    Ok(())
}

fn yaml_str(s: &str) -> String {
    // JSON strings are YAML double-quoted strings.
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The `CredentialProviderConfig` document for `providers`, in YAML.
pub fn render_config(providers: &[CredentialProvider]) -> String {
    let mut out = String::from(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n",
    );
    for p in providers {
        let _ = writeln!(out, "- name: {}", yaml_str(&p.name));
        let _ = writeln!(out, "  apiVersion: {}", yaml_str(&p.api_version));
        out.push_str("  matchImages:\n");
        for m in &p.match_images {
            let _ = writeln!(out, "  - {}", yaml_str(m));
        }
        if let Some(d) = p.default_cache_duration {
            let _ = writeln!(out, "  defaultCacheDuration: {}", yaml_str(&go_duration(d)));
        }
        if !p.args.is_empty() {
            out.push_str("  args:\n");
            for a in &p.args {
                let _ = writeln!(out, "  - {}", yaml_str(a));
            }
        }
        if let Some(t) = &p.token_attributes {
            out.push_str("  tokenAttributes:\n");
            let _ = writeln!(
                out,
                "    serviceAccountTokenAudience: {}",
                yaml_str(&t.service_account_token_audience)
            );
            let _ = writeln!(out, "    cacheType: {}", yaml_str(&t.cache_type));
            if let Some(r) = t.require_service_account {
                let _ = writeln!(out, "    requireServiceAccount: {r}");
            }
            for (field, keys) in [
                (
                    "requiredServiceAccountAnnotationKeys",
                    &t.required_service_account_annotation_keys,
                ),
                (
                    "optionalServiceAccountAnnotationKeys",
                    &t.optional_service_account_annotation_keys,
                ),
            ] {
                if !keys.is_empty() {
                    let _ = writeln!(out, "    {field}:");
                    for k in keys {
                        let _ = writeln!(out, "    - {}", yaml_str(k));
                    }
                }
            }
        }
    }
    out
}

/// The RBAC that lets the nodes request service-account tokens for `audience` (the kubelet's
/// `ServiceAccountNodeAudienceRestriction`, on by default since Kubernetes 1.33).
pub fn render_rbac(audience: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: irsa-credential-provider-audience\nrules:\n- apiGroups: [\"\"]\n  resources: [{aud}]\n  verbs: [\"request-serviceaccounts-token-audience\"]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: irsa-credential-provider-audience\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: irsa-credential-provider-audience\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: system:nodes\n",
        aud = yaml_str(audience)
    )
}

/// What the printed `--fallback` does, as a YAML comment block.
pub fn fallback_comment(fallback: Fallback) -> String {
    match fallback {
        Fallback::Deny => "# --fallback=deny: a pod whose service account names no role, and a pod the kubelet has no\n# service-account token for (static pods), is refused; print with --fallback node to pull\n# those with the node's credentials instead.\n".to_owned(),
        Fallback::Node => "# --fallback=node: a pod whose service account names no role, and a pod the kubelet has no\n# service-account token for (static pods), pulls with the node's credentials: every such pod\n# can pull what the node's role can. Print with --fallback deny to refuse them instead.\n".to_owned(),
    }
}

/// The kubelet flags that load the config, as a YAML comment block.
pub fn kubelet_flags_comment(config_path: &str, bin_dir: &str) -> String {
    format!(
        "# kubelet flags: --image-credential-provider-config={config_path} --image-credential-provider-bin-dir={bin_dir}\n# ({bin_dir}/irsa is the irsa binary; the kubelet runs it as `irsa credential-provider …`)\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_provider_passes_the_kubelets_rules() {
        let p = irsa_provider(&ConfigOptions::default());
        assert_eq!(validate(std::slice::from_ref(&p)), Ok(()));
        let yaml = render_config(std::slice::from_ref(&p));
        for want in [
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n",
            "  - \"*.dkr.ecr.*.amazonaws.com\"\n",
            "  - \"*.dkr-ecr.*.on.aws\"\n",
            "  - \"*.dkr.ecr.*.amazonaws.com.cn\"\n",
            "  - \"public.ecr.aws\"\n",
            "  defaultCacheDuration: \"6h0m0s\"\n",
            "    serviceAccountTokenAudience: \"sts.amazonaws.com\"\n    cacheType: \"ServiceAccount\"\n    requireServiceAccount: false\n",
            "    optionalServiceAccountAnnotationKeys:\n    - \"eks.amazonaws.com/ecr-role-arn\"\n    - \"eks.amazonaws.com/role-arn\"\n    - \"irsa.dev/chainguard-identity\"\n    - \"irsa.dev/chainguard-method\"\n",
            "  - \"cgr.dev:443\"\n  - \"cgr.dev\"\n",
            "  - \"--fallback=deny\"\n",
        ] {
            assert!(yaml.contains(want), "{want}\n{yaml}");
        }
        assert!(
            !yaml.contains("requiredServiceAccountAnnotationKeys"),
            "{yaml}"
        );
        // Every host form irsa-core classifies as ECR is matched by some pattern.
        let rbac = render_rbac("sts.amazonaws.com");
        assert!(
            rbac.contains("resources: [\"sts.amazonaws.com\"]")
                && rbac.contains("name: system:nodes")
        );
    }

    #[test]
    fn the_chainguard_annotations_and_flags_are_printed_once() {
        let id = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";
        let p = irsa_provider(&ConfigOptions {
            role_annotations: vec![
                "example.com/role".into(),
                CHAINGUARD_IDENTITY_ANNOTATION.into(),
            ],
            chainguard_identity: Some(id.into()),
            chainguard_method: Some(ChainguardMethod::WebIdentityToken),
            ..ConfigOptions::default()
        });
        assert_eq!(validate(std::slice::from_ref(&p)), Ok(()));
        assert_eq!(
            p.token_attributes
                .unwrap()
                .optional_service_account_annotation_keys,
            [
                "example.com/role",
                CHAINGUARD_IDENTITY_ANNOTATION,
                CHAINGUARD_METHOD_ANNOTATION
            ]
        );
        assert!(
            p.args.contains(&format!("--chainguard-identity={id}"))
                && p.args
                    .contains(&"--chainguard-method=web-identity-token".to_owned()),
            "{:?}",
            p.args
        );
        let plain = irsa_provider(&ConfigOptions::default());
        assert!(
            !plain.args.iter().any(|a| a.starts_with("--chainguard")),
            "{:?}",
            plain.args
        );
    }

    #[test]
    fn the_kubelets_rules_refuse_what_the_kubelet_refuses() {
        let good = irsa_provider(&ConfigOptions::default());
        let broken = |f: &dyn Fn(&mut CredentialProvider)| {
            let mut p = good.clone();
            f(&mut p);
            validate(&[p]).unwrap_err().join("\n")
        };
        let t = |p: &mut CredentialProvider| p.token_attributes.as_mut().unwrap().clone();
        let _ = t;
        assert!(
            broken(&|p| p.token_attributes.as_mut().unwrap().cache_type.clear())
                .contains("tokenAttributes.cacheType: Required value")
        );
        assert!(
            broken(&|p| p.token_attributes.as_mut().unwrap().cache_type = "Pod".into())
                .contains("Unsupported value \"Pod\"")
        );
        assert!(
            broken(&|p| p.token_attributes.as_mut().unwrap().require_service_account = None)
                .contains("requireServiceAccount: Required value")
        );
        assert!(
            broken(&|p| p
                .token_attributes
                .as_mut()
                .unwrap()
                .required_service_account_annotation_keys =
                vec!["example.com/x".into()])
            .contains("requireServiceAccount cannot be false")
        );
        assert!(
            broken(&|p| {
                let t = p.token_attributes.as_mut().unwrap();
                t.require_service_account = Some(true);
                t.required_service_account_annotation_keys =
                    vec!["eks.amazonaws.com/role-arn".into()];
            })
            .contains("cannot be both required and optional")
        );
        assert!(
            broken(&|p| p
                .token_attributes
                .as_mut()
                .unwrap()
                .optional_service_account_annotation_keys
                .push("bad key/".into()))
            .contains("optionalServiceAccountAnnotationKeys: Invalid value")
        );
        assert!(
            broken(&|p| p
                .token_attributes
                .as_mut()
                .unwrap()
                .optional_service_account_annotation_keys
                .push("eks.amazonaws.com/role-arn".into()))
            .contains("Duplicate value")
        );
        assert!(
            broken(&|p| p
                .token_attributes
                .as_mut()
                .unwrap()
                .service_account_token_audience
                .clear())
            .contains("serviceAccountTokenAudience: Required value")
        );
        assert!(
            broken(&|p| p.api_version = "credentialprovider.kubelet.k8s.io/v1beta1".into())
                .contains("tokenAttributes is only supported")
        );
        assert!(broken(&|p| p.api_version = "v2".into()).contains("apiVersion: Unsupported value"));
        assert!(
            broken(&|p| p.default_cache_duration = None)
                .contains("defaultCacheDuration: Required value")
        );
        assert!(broken(&|p| p.match_images.clear()).contains("matchImages: Required value"));
        assert!(
            broken(&|p| p.match_images.push("https://x".into())).contains("match image is invalid")
        );
        assert!(broken(&|p| p.name = "bin/irsa".into()).contains("cannot contain '/'"));
        assert!(
            validate(&[good.clone(), good])
                .unwrap_err()
                .join("\n")
                .contains("Duplicate value \"irsa\"")
        );
        assert!(validate(&[]).is_err());
        // Upper case is allowed in annotation keys: the kubelet lowercases before checking.
        assert_eq!(
            qualified_name(&"Example.com/Key".to_ascii_lowercase()),
            Ok(())
        );
        assert!(
            qualified_name("-a").is_err()
                && qualified_name("a/b/c").is_err()
                && qualified_name("").is_err()
        );
    }

    #[test]
    fn every_ecr_host_form_is_matched() {
        // The kubelet's glob: same number of labels, `*` one label.
        let matches = |pattern: &str, host: &str| {
            let (p, h): (Vec<_>, Vec<_>) =
                (pattern.split('.').collect(), host.split('.').collect());
            p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
        };
        let patterns = match_images();
        for partition in Partition::ALL {
            for variant in irsa_core::partition::EndpointVariant::ALL {
                let Ok(host) = irsa_core::partition::ecr_registry_host(
                    "111122223333",
                    partition.implicit_global_region(),
                    variant,
                ) else {
                    continue;
                };
                assert!(
                    patterns.iter().any(|p| matches(p, &host)),
                    "{host} unmatched"
                );
            }
        }
    }

    /// The kubelet's `URLsMatch` (pkg/credentialprovider/keyring.go), as it decides whether the
    /// provider is called for an image: the image is parsed as a URL without scheme; the ports
    /// must be equal (no port matches only no port); same number of host labels; the pattern's
    /// path a prefix of the image's; each label matched with Go's `filepath.Match`.
    fn kubelet_urls_match(pattern: &str, image: &str) -> bool {
        fn split(s: &str) -> (Vec<&str>, &str, &str) {
            let (host_port, path) = match s.find('/') {
                Some(i) => (&s[..i], &s[i..]),
                None => (s, ""),
            };
            // net.SplitHostPort: the port after the last ':'; no ':' is no port.
            let (host, port) = match host_port.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (host_port, ""),
            };
            (host.split('.').collect(), port, path)
        }
        // filepath.Match for the patterns irsa prints: '*' (any run of characters), '?',
        // literals. Patterns with '[' or '\\' are not used.
        fn glob(p: &[u8], t: &[u8]) -> bool {
            match (p.first(), t.first()) {
                (None, None) => true,
                (Some(b'*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
                (Some(b'?'), Some(_)) => glob(&p[1..], &t[1..]),
                (Some(a), Some(b)) if a == b => glob(&p[1..], &t[1..]),
                _ => false,
            }
        }
        assert!(!pattern.contains(['[', '\\']), "{pattern}");
        let (p_labels, p_port, p_path) = split(pattern);
        let (t_labels, t_port, t_path) = split(image);
        p_port == t_port
            && p_labels.len() == t_labels.len()
            && t_path.starts_with(p_path)
            && p_labels
                .iter()
                .zip(&t_labels)
                .all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
    }

    #[test]
    fn the_printed_patterns_match_every_registry_form_with_and_without_its_port() {
        // The rule itself, as upstream's tests state it.
        assert!(kubelet_urls_match("*.docker.io", "blah.docker.io/x"));
        assert!(!kubelet_urls_match("*.docker.io", "not.right.io/x"));
        assert!(!kubelet_urls_match("*.io", "a.k8s.io/x"));
        assert!(
            !kubelet_urls_match("registry.io", "registry.io:5000/x"),
            "no port only matches no port"
        );
        assert!(kubelet_urls_match("registry.io:5000", "registry.io:5000/x"));
        let patterns = irsa_provider(&ConfigOptions::default()).match_images;
        let matched = |image: &str| patterns.iter().any(|p| kubelet_urls_match(p, image));
        let mut hosts = vec![
            "public.ecr.aws".to_owned(),
            "ecr-public.aws.com".to_owned(),
            "cgr.dev".to_owned(),
        ];
        for partition in Partition::ALL {
            for variant in irsa_core::partition::EndpointVariant::ALL {
                if let Ok(host) = irsa_core::partition::ecr_registry_host(
                    "111122223333",
                    partition.implicit_global_region(),
                    variant,
                ) {
                    hosts.push(host);
                }
            }
        }
        hosts.push("111122223333.dkr.ecr.lala-land-1.amazonaws.com".to_owned());
        for host in &hosts {
            for image in [
                format!("{host}/team/app:1"),
                format!("{host}:443/team/app:1"),
            ] {
                assert!(
                    matched(&image),
                    "the kubelet would not call irsa for {image}"
                );
            }
        }
        for other in [
            "ghcr.io/x/y",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.example/x",
            "evil.example/111122223333.dkr.ecr.us-east-1.amazonaws.com/x",
            "public.ecr.aws.evil.example/x",
            "cgr.dev.evil.example/x",
            "evil.cgr.dev/x",
        ] {
            assert!(!matched(other), "{other} matched");
        }
    }
}
