//! The pure decision: for one request and the provider's options, which registry and whose
//! identity — no I/O. The effects (STS, ECR, the disk cache) live in [`crate::run`].

use std::fmt;

use irsa_core::arn::{RoleArn, SessionName};
use irsa_core::chainguard::{ChainguardMethod, validate_identity};
use irsa_core::names::{CHAINGUARD_IDENTITY_ANNOTATION, CHAINGUARD_METHOD_ANNOTATION};
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
    /// The Chainguard identity for cgr.dev when the service account names none
    /// ([`CHAINGUARD_IDENTITY_ANNOTATION`]), and always in node mode (`--chainguard-identity`).
    pub chainguard_identity: Option<String>,
    /// How the AWS identity is proven to Chainguard when the service account does not say
    /// ([`CHAINGUARD_METHOD_ANNOTATION`]) (`--chainguard-method`).
    pub chainguard_method: ChainguardMethod,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            role_annotations: DEFAULT_ROLE_ANNOTATIONS.map(str::to_owned).to_vec(),
            fallback: None,
            node_assume_role: None,
            chainguard_identity: None,
            chainguard_method: ChainguardMethod::default(),
        }
    }
}

/// Where a Chainguard identity id came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainguardSource {
    /// The service account's [`CHAINGUARD_IDENTITY_ANNOTATION`].
    Annotation,
    /// The provider's `--chainguard-identity`.
    Flag,
}

/// For a cgr.dev image: which Chainguard identity the AWS identity is exchanged for, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainguardPlan {
    /// The assumable identity's id, `<group>/<id>` (checked).
    pub identity: String,
    /// How the AWS identity is proven.
    pub method: ChainguardMethod,
    /// Where the identity came from.
    pub source: ChainguardSource,
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
        /// For cgr.dev: the Chainguard identity and method; `None` for other registries.
        chainguard: Option<ChainguardPlan>,
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
    /// A cgr.dev image, and neither the service account nor the provider names a Chainguard
    /// identity.
    #[error("{}", no_chainguard_identity(image, service_account.as_ref()))]
    NoChainguardIdentity {
        /// The image.
        image: String,
        /// The pod's service account, in token mode.
        service_account: Option<ServiceAccount>,
    },
    /// The Chainguard identity (annotation or flag) is not an identity id.
    #[error("{source} is not usable: {reason}", source = match service_account {
        Some(sa) => format!("the Chainguard identity in annotation {CHAINGUARD_IDENTITY_ANNOTATION} of service account {sa}"),
        None => "--chainguard-identity".to_owned(),
    })]
    InvalidChainguardIdentity {
        /// The service account whose annotation it is; `None`: the flag.
        service_account: Option<ServiceAccount>,
        /// Why.
        reason: String,
    },
    /// The Chainguard method annotation names no method.
    #[error(
        "service account {service_account} has annotation {CHAINGUARD_METHOD_ANNOTATION}: {reason}"
    )]
    InvalidChainguardMethod {
        /// The service account.
        service_account: ServiceAccount,
        /// Why.
        reason: String,
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

fn no_chainguard_identity(image: &str, service_account: Option<&ServiceAccount>) -> String {
    match service_account {
        Some(sa) => format!(
            "image {image} is on Chainguard's registry and no Chainguard identity is named for \
             service account {sa}: annotate it with the id of the Chainguard assumable identity \
             that trusts its role (`kubectl annotate serviceaccount -n {} {} \
             {CHAINGUARD_IDENTITY_ANNOTATION}=<group id>/<identity id>`, as printed by `chainctl \
             iam identities create`), or start irsa credential-provider with \
             --chainguard-identity",
            sa.namespace, sa.name
        ),
        None => format!(
            "image {image} is on Chainguard's registry and no Chainguard identity is named: the \
             kubelet sent no service-account token (node mode, a static pod), so start irsa \
             credential-provider with --chainguard-identity <group id>/<identity id>, the \
             Chainguard assumable identity that trusts the node's role"
        ),
    }
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
    if image.registry == Registry::Other {
        return Ok(Plan::NotServed {
            host: image.host,
            reason: "it is not an Amazon ECR, ECR Public or Chainguard (cgr.dev) registry".into(),
        });
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
        let chainguard = chainguard_plan(&image, request, policy, None)?;
        return Ok(Plan::Fetch {
            image,
            identity: Box::new(node(None)),
            chainguard,
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
                service_account: service_account.clone(),
                role,
                annotation: key.clone(),
            }
        }
        None => {
            let keys = policy.role_annotations.join(", ");
            match policy.fallback {
                Some(Fallback::Node) => node(Some(service_account.clone())),
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
    // The service account's Chainguard annotations count only when its own role is exchanged:
    // the node's credentials (`--fallback node`) go to the operator's identity alone, never to
    // one a tenant names (review 23 M3).
    let own_role = matches!(identity, PlannedIdentity::ServiceAccount { .. });
    let chainguard = chainguard_plan(
        &image,
        request,
        policy,
        own_role.then_some(&service_account),
    )?;
    Ok(Plan::Fetch {
        image,
        identity: Box::new(identity),
        chainguard,
    })
}

/// For a cgr.dev image, the Chainguard identity and method: the service account's annotations
/// (token mode, its own role) win over the provider's flags; with the node's credentials
/// (`service_account` `None`: node mode or `--fallback node`) only the flags count. `None` for other registries.
fn chainguard_plan(
    image: &ImageRef,
    request: &Request,
    policy: &Policy,
    service_account: Option<&ServiceAccount>,
) -> Result<Option<ChainguardPlan>, PlanError> {
    if image.registry != Registry::Chainguard {
        return Ok(None);
    }
    let annotation = |key: &str| {
        service_account.and_then(|_| {
            request
                .service_account_annotations
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        })
    };
    let (identity, source) = match annotation(CHAINGUARD_IDENTITY_ANNOTATION) {
        Some(id) => (id, ChainguardSource::Annotation),
        None => match policy.chainguard_identity.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => (id, ChainguardSource::Flag),
            _ => {
                return Err(PlanError::NoChainguardIdentity {
                    image: request.image.clone(),
                    service_account: service_account.cloned(),
                });
            }
        },
    };
    validate_identity(identity).map_err(|reason| PlanError::InvalidChainguardIdentity {
        service_account: match source {
            ChainguardSource::Annotation => service_account.cloned(),
            ChainguardSource::Flag => None,
        },
        reason,
    })?;
    let method = match (annotation(CHAINGUARD_METHOD_ANNOTATION), service_account) {
        (Some(m), Some(sa)) => m
            .parse()
            .map_err(|reason| PlanError::InvalidChainguardMethod {
                service_account: sa.clone(),
                reason,
            })?,
        _ => policy.chainguard_method,
    };
    Ok(Some(ChainguardPlan {
        identity: identity.to_owned(),
        method,
        source,
    }))
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

    const CG_ID: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";
    const CG_OTHER: &str = "720909c9f5279097d847ad02a2f24ba8f59de36a/0123456789abcdef";
    const CG_IMAGE: &str = "cgr.dev/chainguard/static:latest";

    fn chainguard_of(plan: Plan) -> ChainguardPlan {
        match plan {
            Plan::Fetch {
                chainguard: Some(cg),
                ..
            } => cg,
            other => panic!("no Chainguard plan: {other:?}"),
        }
    }

    #[test]
    fn chainguard_takes_the_identity_from_the_annotation_then_the_flag() {
        let t = || Some(token("team", "puller", "uid-1"));
        let role = ("eks.amazonaws.com/role-arn", POD_ROLE);
        let flag = Policy {
            chainguard_identity: Some(CG_OTHER.into()),
            ..Policy::default()
        };
        let annotated = request(
            CG_IMAGE,
            t(),
            &[role, (CHAINGUARD_IDENTITY_ANNOTATION, CG_ID)],
        );
        let cg = chainguard_of(plan(&annotated, &flag).unwrap());
        assert_eq!(
            (cg.identity.as_str(), cg.method, cg.source),
            (
                CG_ID,
                ChainguardMethod::GetCallerIdentity,
                ChainguardSource::Annotation
            )
        );
        assert_eq!(
            role_of(plan(&annotated, &flag).unwrap()).0,
            POD_ROLE,
            "the pod's role is exchanged"
        );
        let by_flag = request(CG_IMAGE, t(), &[role]);
        let cg = chainguard_of(plan(&by_flag, &flag).unwrap());
        assert_eq!(
            (cg.identity.as_str(), cg.source),
            (CG_OTHER, ChainguardSource::Flag)
        );
        // The method: the annotation, else the flag.
        let jwt = request(
            CG_IMAGE,
            t(),
            &[
                role,
                (CHAINGUARD_IDENTITY_ANNOTATION, CG_ID),
                (CHAINGUARD_METHOD_ANNOTATION, "web-identity-token"),
            ],
        );
        assert_eq!(
            chainguard_of(plan(&jwt, &Policy::default()).unwrap()).method,
            ChainguardMethod::WebIdentityToken
        );
        let flag_jwt = Policy {
            chainguard_method: ChainguardMethod::WebIdentityToken,
            ..flag.clone()
        };
        assert_eq!(
            chainguard_of(plan(&by_flag, &flag_jwt).unwrap()).method,
            ChainguardMethod::WebIdentityToken
        );
        // Node mode: the flag only.
        let node = chainguard_of(plan(&request(CG_IMAGE, None, &[]), &flag).unwrap());
        assert_eq!(node.identity, CG_OTHER);
        // Other registries carry no Chainguard plan.
        assert!(matches!(
            plan(
                &request(IMAGE, t(), &[role, (CHAINGUARD_IDENTITY_ANNOTATION, CG_ID)]),
                &flag
            )
            .unwrap(),
            Plan::Fetch {
                chainguard: None,
                ..
            }
        ));
    }

    #[test]
    fn the_nodes_credentials_go_only_to_the_operators_chainguard_identity() {
        // Review 23 M3: with `--fallback node`, a service account without a role gets the
        // node's credentials; its own Chainguard annotation must not pick which identity they
        // are exchanged for (any identity trusting the node's role would do), and its method
        // annotation must not either. Only the flags count, as in node mode.
        let t = || Some(token("team", "puller", "uid-1"));
        let fallback = Policy {
            fallback: Some(Fallback::Node),
            chainguard_identity: Some(CG_OTHER.into()),
            ..Policy::default()
        };
        let tenant = request(
            CG_IMAGE,
            t(),
            &[
                (CHAINGUARD_IDENTITY_ANNOTATION, CG_ID),
                (CHAINGUARD_METHOD_ANNOTATION, "web-identity-token"),
            ],
        );
        let planned = plan(&tenant, &fallback).unwrap();
        let cg = chainguard_of(planned.clone());
        assert_eq!(
            (cg.identity.as_str(), cg.method, cg.source),
            (
                CG_OTHER,
                ChainguardMethod::GetCallerIdentity,
                ChainguardSource::Flag
            )
        );
        assert!(matches!(identity_of(planned), PlannedIdentity::Node { .. }));
        // Without the flag, the node's credentials go to no identity at all.
        let no_flag = Policy {
            chainguard_identity: None,
            ..fallback
        };
        let err = plan(&tenant, &no_flag).unwrap_err().to_string();
        assert!(err.contains("--chainguard-identity"), "{err}");
    }

    #[test]
    fn chainguard_without_a_usable_identity_is_refused_precisely() {
        let t = || Some(token("team", "puller", "uid-1"));
        let role = ("eks.amazonaws.com/role-arn", POD_ROLE);
        let err = plan(&request(CG_IMAGE, t(), &[role]), &Policy::default())
            .unwrap_err()
            .to_string();
        for want in [
            "team/puller",
            "kubectl annotate serviceaccount -n team puller irsa.dev/chainguard-identity=<group id>/<identity id>",
            "--chainguard-identity",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        let err = plan(&request(CG_IMAGE, None, &[]), &Policy::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no service-account token") && err.contains("--chainguard-identity"),
            "{err}"
        );
        let err = plan(
            &request(
                CG_IMAGE,
                t(),
                &[role, (CHAINGUARD_IDENTITY_ANNOTATION, "org/id\r\nX: y")],
            ),
            &Policy::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("annotation irsa.dev/chainguard-identity of service account team/puller")
                && err.contains("not a Chainguard identity id"),
            "{err}"
        );
        let bad_flag = Policy {
            chainguard_identity: Some("nope".into()),
            ..Policy::default()
        };
        let err = plan(&request(CG_IMAGE, None, &[]), &bad_flag)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--chainguard-identity is not usable"),
            "{err}"
        );
        let err = plan(
            &request(
                CG_IMAGE,
                t(),
                &[
                    role,
                    (CHAINGUARD_IDENTITY_ANNOTATION, CG_ID),
                    (CHAINGUARD_METHOD_ANNOTATION, "oidc"),
                ],
            ),
            &Policy::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("irsa.dev/chainguard-method") && err.contains("web-identity-token"),
            "{err}"
        );
        // The role is decided first: no role and deny is the role's refusal.
        let deny = Policy {
            fallback: Some(Fallback::Deny),
            ..Policy::default()
        };
        let err = plan(
            &request(CG_IMAGE, t(), &[(CHAINGUARD_IDENTITY_ANNOTATION, CG_ID)]),
            &deny,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Denied { .. }), "{err}");
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
