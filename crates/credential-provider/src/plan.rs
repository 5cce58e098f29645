//! The pure decision: for one request and the provider's options, which registry and whose
//! identity — no I/O. The effects (STS, ECR, the disk cache) live in [`crate::run`].

use std::fmt;

use irsa_core::arn::{RoleArn, SessionName};
use irsa_core::registry::{self, ImageRef, Registry};
use irsa_core::secret::SecretString;
use thiserror::Error;

use crate::protocol::Request;

/// The service-account annotation an ECR-specific role is read from first (the one upstream's
/// ecr-credential-provider reads).
pub const ECR_ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/ecr-role-arn";

/// The default ordered list of annotation keys naming the role: the ECR-specific one, then the
/// standard IRSA one (the pod's own role).
pub const DEFAULT_ROLE_ANNOTATIONS: [&str; 2] = [
    ECR_ROLE_ARN_ANNOTATION,
    irsa_core::names::ROLE_ARN_ANNOTATION,
];

/// What to do when the kubelet sends a service-account token but the service account names no
/// role in any of the annotation keys, and (for `Deny`) when it sends no token at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Pull with the node's credentials (the ambient chain).
    Node,
    /// Refuse: the pull fails with a message naming the annotation to set. A request without
    /// a service-account token (static pods, `requireServiceAccount: false`) is refused too:
    /// `deny` never hands out the node's credentials.
    Deny,
}

/// How the provider decides (its flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Annotation keys naming the role, in order; the first present wins.
    pub role_annotations: Vec<String>,
    /// What happens to a service account without a role; `None`: refuse, and say that
    /// `--fallback` must be chosen (irsa never falls back silently).
    pub fallback: Option<Fallback>,
    /// In node mode, a role to assume with the node's credentials.
    pub node_assume_role: Option<RoleArn>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            role_annotations: DEFAULT_ROLE_ANNOTATIONS.map(str::to_owned).to_vec(),
            fallback: None,
            node_assume_role: None,
        }
    }
}

/// The service account a token was issued to (from its claims; STS verifies the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object's uid (a re-created service account of the same name has another).
    pub uid: Option<String>,
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whose AWS identity pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedIdentity {
    /// The node's credentials, optionally followed by `AssumeRole`.
    Node {
        /// The role assumed with the node's credentials.
        chained_role: Option<RoleArn>,
        /// Set when this is `--fallback node` for a service account without a role.
        fallback_for: Option<ServiceAccount>,
    },
    /// `AssumeRoleWithWebIdentity` with the pod's service-account token.
    ServiceAccount {
        /// The service account.
        service_account: ServiceAccount,
        /// The role.
        role: RoleArn,
        /// The annotation the role came from.
        annotation: String,
        /// The role session name, [`SessionName::for_service_account`].
        session_name: SessionName,
    },
}

/// What the provider will do for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// irsa does not serve this registry: answer with no credentials (the kubelet then pulls
    /// with whatever else it has, or anonymously).
    NotServed {
        /// The registry host.
        host: String,
        /// Why, for stderr.
        reason: String,
    },
    /// Mint a credential for the image's registry.
    Fetch {
        /// The parsed image.
        image: ImageRef,
        /// Whose identity.
        identity: Box<PlannedIdentity>,
    },
}

/// Why a request gets no credential and a failed pull.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The image does not parse.
    #[error("invalid image {image:?} in the request: {source}")]
    Image {
        /// The image.
        image: String,
        /// Why.
        source: registry::RegistryError,
    },
    /// The token does not name a service account.
    #[error(
        "the serviceAccountToken in the request is not a Kubernetes service-account token ({reason}); \
         the kubelet's tokenAttributes must request the pod's service-account token"
    )]
    Token {
        /// Why, free of the token.
        reason: String,
    },
    /// The role annotation is not a role ARN.
    #[error(
        "service account {service_account} has annotation {annotation} that is not an IAM role ARN \
         ({reason}): set it to arn:<partition>:iam::<account>:role/<name>"
    )]
    InvalidRole {
        /// The service account.
        service_account: ServiceAccount,
        /// The annotation key.
        annotation: String,
        /// Why.
        reason: String,
    },
    /// No role and `--fallback deny`.
    #[error(
        "service account {service_account} names no IAM role (none of the annotations {keys}) and \
         irsa credential-provider runs with --fallback deny: annotate it, e.g. `kubectl annotate \
         serviceaccount -n {ns} {name} {first}=arn:aws:iam::<account>:role/<name>`",
        ns = service_account.namespace, name = service_account.name, first = first_key(keys)
    )]
    Denied {
        /// The service account.
        service_account: ServiceAccount,
        /// The keys looked at, comma separated.
        keys: String,
    },
    /// No service-account token in the request and `--fallback deny`.
    #[error(
        "the kubelet sent no service-account token for image {image} (a static pod, a pod \
         without a service account, or a kubelet config without tokenAttributes) and irsa \
         credential-provider runs with --fallback deny, which never pulls with the node's \
         credentials: run the pod with a service account that names a role, or use --fallback \
         node"
    )]
    NoToken {
        /// The image.
        image: String,
    },
    /// No role and no `--fallback` chosen.
    #[error(
        "service account {service_account} names no IAM role (none of the annotations {keys}) and \
         no --fallback is set: annotate the service account with its role, or start irsa \
         credential-provider with --fallback node (pull with the node's credentials) or \
         --fallback deny (refuse)"
    )]
    NoFallback {
        /// The service account.
        service_account: ServiceAccount,
        /// The keys looked at, comma separated.
        keys: String,
    },
}

fn first_key(keys: &str) -> &str {
    keys.split(", ").next().unwrap_or(keys)
}

/// The service account a token names, from its (unverified) claims: STS checks the signature;
/// here the claims only choose the session name and the cache key.
pub fn service_account_of(token: &SecretString) -> Result<ServiceAccount, PlanError> {
    let decoded =
        irsa_core::token::decode_unverified(token.expose()).map_err(|e| PlanError::Token {
            reason: e.to_string(),
        })?;
    let claims = decoded.claims;
    let sa = claims
        .check_service_account()
        .map_err(|e| PlanError::Token {
            reason: e.to_string(),
        })?
        .ok_or_else(|| PlanError::Token {
            reason: "it has no sub claim".to_owned(),
        })?;
    let uid = claims
        .kubernetes
        .as_ref()
        .and_then(|k| k.service_account.as_ref())
        .and_then(|r| r.uid.clone())
        .filter(|u| !u.is_empty());
    Ok(ServiceAccount {
        namespace: sa.namespace,
        name: sa.name,
        uid,
    })
}

/// Decides what to do for `request` under `policy`.
pub fn plan(request: &Request, policy: &Policy) -> Result<Plan, PlanError> {
    let image = registry::parse(&request.image).map_err(|source| PlanError::Image {
        image: request.image.clone(),
        source,
    })?;
    match image.registry {
        Registry::Ecr(_) | Registry::EcrPublic => {}
        Registry::Chainguard => {
            return Ok(Plan::NotServed {
                host: image.host,
                reason: "Chainguard (cgr.dev) is not served by irsa credential-provider yet".into(),
            });
        }
        Registry::Other => {
            return Ok(Plan::NotServed {
                host: image.host,
                reason: "it is not an Amazon ECR or ECR Public registry".into(),
            });
        }
    }
    let node = |fallback_for| PlannedIdentity::Node {
        chained_role: policy.node_assume_role.clone(),
        fallback_for,
    };
    let Some(token) = &request.service_account_token else {
        // Node mode (no tokenAttributes), or a pod the kubelet has no token for: `deny` means
        // never the node's credentials, so it refuses here too.
        if policy.fallback == Some(Fallback::Deny) {
            return Err(PlanError::NoToken {
                image: request.image.clone(),
            });
        }
        return Ok(Plan::Fetch {
            image,
            identity: Box::new(node(None)),
        });
    };
    let service_account = service_account_of(token)?;
    let found = policy.role_annotations.iter().find_map(|key| {
        request
            .service_account_annotations
            .get(key)
            .map(|v| (key, v.trim()))
            .filter(|(_, v)| !v.is_empty())
    });
    let identity = match found {
        Some((key, value)) => {
            let role: RoleArn =
                value
                    .parse()
                    .map_err(|e: irsa_core::arn::ArnError| PlanError::InvalidRole {
                        service_account: service_account.clone(),
                        annotation: key.clone(),
                        reason: e.to_string(),
                    })?;
            PlannedIdentity::ServiceAccount {
                session_name: SessionName::for_service_account(
                    &service_account.namespace,
                    &service_account.name,
                ),
                service_account,
                role,
                annotation: key.clone(),
            }
        }
        None => {
            let keys = policy.role_annotations.join(", ");
            match policy.fallback {
                Some(Fallback::Node) => node(Some(service_account)),
                Some(Fallback::Deny) => {
                    return Err(PlanError::Denied {
                        service_account,
                        keys,
                    });
                }
                None => {
                    return Err(PlanError::NoFallback {
                        service_account,
                        keys,
                    });
                }
            }
        }
    };
    Ok(Plan::Fetch {
        image,
        identity: Box::new(identity),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::protocol::API_VERSION_V1;

    /// An unsigned service-account token for `namespace/name` (the plan reads claims only).
    pub(crate) fn token(namespace: &str, name: &str, uid: &str) -> SecretString {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = serde_json::json!({
            "iss": "https://oidc.example",
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "aud": ["sts.amazonaws.com"],
            "exp": 4_000_000_000i64,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        });
        SecretString::new(format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256"}"#),
            b64(&claims.to_string()),
            b64("sig")
        ))
    }

    fn request(image: &str, token: Option<SecretString>, ann: &[(&str, &str)]) -> Request {
        Request {
            api_version: API_VERSION_V1.into(),
            image: image.into(),
            service_account_token: token,
            service_account_annotations: ann
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    const IMAGE: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/app:1";
    const ECR_ROLE: &str = "arn:aws:iam::111122223333:role/ecr-puller";
    const POD_ROLE: &str = "arn:aws:iam::111122223333:role/pod";

    fn identity_of(plan: Plan) -> PlannedIdentity {
        match plan {
            Plan::Fetch { identity, .. } => *identity,
            other => panic!("nothing to fetch: {other:?}"),
        }
    }

    fn role_of(plan: Plan) -> (String, String) {
        match identity_of(plan) {
            PlannedIdentity::ServiceAccount {
                role,
                annotation,
                session_name,
                ..
            } => {
                assert_eq!(session_name.as_str(), "irsa-team.puller");
                (role.to_string(), annotation)
            }
            other => panic!("not token mode: {other:?}"),
        }
    }

    #[test]
    fn the_role_comes_from_the_first_annotation_present() {
        let p = Policy::default();
        let t = || Some(token("team", "puller", "uid-1"));
        let both = request(
            IMAGE,
            t(),
            &[
                (ECR_ROLE_ARN_ANNOTATION, ECR_ROLE),
                ("eks.amazonaws.com/role-arn", POD_ROLE),
            ],
        );
        assert_eq!(
            role_of(plan(&both, &p).unwrap()),
            (ECR_ROLE.into(), ECR_ROLE_ARN_ANNOTATION.into())
        );
        let pod_only = request(IMAGE, t(), &[("eks.amazonaws.com/role-arn", POD_ROLE)]);
        assert_eq!(
            role_of(plan(&pod_only, &p).unwrap()),
            (POD_ROLE.into(), "eks.amazonaws.com/role-arn".into())
        );
        let custom = Policy {
            role_annotations: vec!["example.com/role".into()],
            ..Policy::default()
        };
        let only_custom = request(
            IMAGE,
            t(),
            &[
                ("example.com/role", ECR_ROLE),
                ("eks.amazonaws.com/role-arn", POD_ROLE),
            ],
        );
        assert_eq!(role_of(plan(&only_custom, &custom).unwrap()).0, ECR_ROLE);
        let blank_first = request(
            IMAGE,
            t(),
            &[
                (ECR_ROLE_ARN_ANNOTATION, " "),
                ("eks.amazonaws.com/role-arn", POD_ROLE),
            ],
        );
        assert_eq!(
            role_of(plan(&blank_first, &p).unwrap()).0,
            POD_ROLE,
            "a blank annotation names no role"
        );
        let bad = request(IMAGE, t(), &[(ECR_ROLE_ARN_ANNOTATION, "puller")]);
        let err = plan(&bad, &p).unwrap_err().to_string();
        assert!(
            err.contains("team/puller") && err.contains(ECR_ROLE_ARN_ANNOTATION),
            "{err}"
        );
    }

    #[test]
    fn without_a_role_the_fallback_decides_and_is_never_silent() {
        let t = Some(token("team", "puller", "uid-1"));
        let r = request(IMAGE, t, &[("unrelated", "x")]);
        let err = plan(&r, &Policy::default()).unwrap_err().to_string();
        assert!(
            err.contains("--fallback node") && err.contains("team/puller"),
            "{err}"
        );
        let deny = Policy {
            fallback: Some(Fallback::Deny),
            ..Policy::default()
        };
        let err = plan(&r, &deny).unwrap_err().to_string();
        assert!(
            err.contains("--fallback deny")
                && err.contains(
                    "kubectl annotate serviceaccount -n team puller eks.amazonaws.com/ecr-role-arn="
                ),
            "{err}"
        );
        let node = Policy {
            fallback: Some(Fallback::Node),
            ..Policy::default()
        };
        match identity_of(plan(&r, &node).unwrap()) {
            PlannedIdentity::Node {
                fallback_for: Some(sa),
                chained_role: None,
            } => {
                assert_eq!(sa.uid.as_deref(), Some("uid-1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_token_is_node_mode_and_other_hosts_are_not_served() {
        let chained: RoleArn = "arn:aws:iam::444455556666:role/cross".parse().unwrap();
        let p = Policy {
            node_assume_role: Some(chained.clone()),
            ..Policy::default()
        };
        match identity_of(plan(&request(IMAGE, None, &[]), &p).unwrap()) {
            PlannedIdentity::Node {
                chained_role,
                fallback_for: None,
            } => {
                assert_eq!(chained_role, Some(chained));
            }
            other => panic!("{other:?}"),
        }
        // Without a token, --fallback decides too: deny never uses the node's credentials.
        let deny = Policy {
            fallback: Some(Fallback::Deny),
            ..p.clone()
        };
        let err = plan(&request(IMAGE, None, &[]), &deny)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no service-account token") && err.contains("--fallback deny"),
            "{err}"
        );
        let node = Policy {
            fallback: Some(Fallback::Node),
            ..p.clone()
        };
        assert!(matches!(
            identity_of(plan(&request(IMAGE, None, &[]), &node).unwrap()),
            PlannedIdentity::Node {
                fallback_for: None,
                ..
            }
        ));
        assert!(
            matches!(
                plan(&request("ghcr.io/x/y", None, &[]), &deny).unwrap(),
                Plan::NotServed { .. }
            ),
            "other registries are not served, whatever the fallback"
        );
        match plan(
            &request(
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com:5000/app",
                None,
                &[],
            ),
            &p,
        )
        .unwrap()
        {
            Plan::Fetch { image, .. } => assert_eq!(
                image.host,
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com:5000"
            ),
            other => panic!("{other:?}"),
        }
        for other in [
            "ghcr.io/x/y",
            "nginx",
            "111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.com/x",
        ] {
            assert!(
                matches!(
                    plan(&request(other, None, &[]), &p).unwrap(),
                    Plan::NotServed { .. }
                ),
                "{other}"
            );
        }
        assert!(matches!(
            plan(&request("public.ecr.aws/nginx/nginx", None, &[]), &p).unwrap(),
            Plan::Fetch { .. }
        ));
        let err = plan(&request("UPPER/Case", None, &[]), &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid image"), "{err}");
        let err = plan(
            &request(IMAGE, Some(SecretString::from("not-a-jwt")), &[]),
            &p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("not a Kubernetes service-account token") && !err.contains("not-a-jwt"),
            "{err}"
        );
    }
}
