//! `irsa credential-provider --explain IMAGE`: what the provider would do for an image, and
//! with which role and region, in sentences.

use std::fmt::Write as _;

use irsa_core::partition::{EndpointVariant, ecr_api_endpoint, validate_region};
use irsa_core::registry::{self, Registry};

use irsa_core::chainguard::{ChainguardMethod, validate_identity};
use irsa_core::names::{CHAINGUARD_IDENTITY_ANNOTATION, CHAINGUARD_METHOD_ANNOTATION};

use crate::plan::{Fallback, PlanError, Policy};

/// The explanation for `image` under `policy` (and, for cgr.dev, Chainguard's issuer
/// `chainguard_issuer`), one statement per line.
pub fn explain(image: &str, policy: &Policy, chainguard_issuer: &str) -> Result<String, PlanError> {
    let parsed = registry::parse(image).map_err(|source| PlanError::Image {
        image: image.to_owned(),
        source,
    })?;
    let mut out = String::new();
    let host = &parsed.host;
    match &parsed.registry {
        Registry::Ecr(e) => {
            let _ = writeln!(
                out,
                "image {image}: Amazon ECR private registry of account {} in region {} (partition {}{}{})",
                e.account,
                e.region,
                e.partition,
                if e.fips { ", FIPS" } else { "" },
                if e.dual_stack { ", dual-stack" } else { "" },
            );
            let api = ecr_api_endpoint(
                &e.region,
                EndpointVariant {
                    fips: e.fips,
                    dual_stack: e.dual_stack,
                },
            )
            .unwrap_or_else(|_| format!("the ECR endpoint of {} (AWS_ENDPOINT_URL_ECR)", e.region));
            let _ = writeln!(
                out,
                "credential: ecr:GetAuthorizationToken at {api} for registry id {}, username AWS",
                e.account
            );
            if validate_region(&e.region).is_err() {
                let _ = writeln!(
                    out,
                    "note: region {} is not one irsa knows yet; the host is under AWS's own domain, so it is accepted",
                    e.region
                );
            }
        }
        Registry::EcrPublic => {
            let _ = writeln!(out, "image {image}: Amazon ECR Public");
            let _ = writeln!(
                out,
                "credential: ecr-public:GetAuthorizationToken in us-east-1, username AWS"
            );
        }
        Registry::Chainguard => {
            let _ = writeln!(out, "image {image}: Chainguard's registry (cgr.dev)");
            let flag = match policy.chainguard_identity.as_deref() {
                Some(id) => match validate_identity(id) {
                    Ok(()) => format!("--chainguard-identity {id}"),
                    Err(reason) => format!("--chainguard-identity, which is unusable: {reason}"),
                },
                None => {
                    "--chainguard-identity, which is not set: such pulls are refused".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "Chainguard identity: the service account's annotation {CHAINGUARD_IDENTITY_ANNOTATION}, else {flag}; without a service-account token only the flag counts"
            );
            let how = match policy.chainguard_method {
                ChainguardMethod::GetCallerIdentity => "a signed sts:GetCallerIdentity proof",
                ChainguardMethod::WebIdentityToken => {
                    "an STS GetWebIdentityToken JWT (IAM outbound identity federation)"
                }
            };
            let _ = writeln!(
                out,
                "credential: the AWS identity below proven to Chainguard's issuer {issuer} by {how} (method {method}; the annotation {CHAINGUARD_METHOD_ANNOTATION} overrides it), exchanged at {issuer}/sts/exchange for a registry token, username _token",
                issuer = chainguard_issuer.trim_end_matches('/'),
                method = policy.chainguard_method,
            );
        }
        Registry::Other => {
            let _ = writeln!(
                out,
                "image {image}: registry {host} is not Amazon ECR, ECR Public or Chainguard; the provider answers with no credentials and the kubelet pulls without them"
            );
            return Ok(out);
        }
    }
    let _ = writeln!(
        out,
        "the kubelet receives it under auth key {host:?}, cacheKeyType Registry"
    );
    let keys = policy.role_annotations.join(", then ");
    let _ = writeln!(
        out,
        "with a service-account token (KEP-4412 tokenAttributes): the role named by the pod's service account in {keys}, assumed with sts:AssumeRoleWithWebIdentity as session irsa-<namespace>.<name>"
    );
    let _ = writeln!(
        out,
        "a service account that names no role: {}",
        match policy.fallback {
            Some(Fallback::Node) => "the node's credentials (--fallback node)",
            Some(Fallback::Deny) => "refused (--fallback deny)",
            None => "refused until --fallback node or --fallback deny is chosen",
        }
    );
    if policy.fallback == Some(Fallback::Deny) {
        let _ = writeln!(
            out,
            "without a token (static pods, node mode): refused (--fallback deny never uses the node's credentials)"
        );
    } else {
        let _ = writeln!(
            out,
            "without a token (static pods, node mode): the node's credentials (AWS's default chain: instance role, EKS Pod Identity, AWS_* variables){}",
            match &policy.node_assume_role {
                Some(role) => format!(", then sts:AssumeRole into {role}"),
                None => String::new(),
            }
        );
    }
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
        .map(|r| format!("{r} (AWS_REGION)"))
        .or_else(|| match &parsed.registry {
            Registry::Ecr(e) if validate_region(&e.region).is_ok() => {
                Some(format!("{} (the registry's)", e.region))
            }
            _ => None,
        })
        .unwrap_or_else(|| "the role partition's default region".to_owned());
    let _ = writeln!(out, "STS region: {region}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_role_region_and_key() {
        let text = explain(
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com:5000/app:1",
            &Policy::default(),
            ISSUER,
        )
        .unwrap();
        for want in [
            "account 111122223333 in region eu-west-1 (partition aws)",
            "api.ecr.eu-west-1.amazonaws.com",
            "auth key \"111122223333.dkr.ecr.eu-west-1.amazonaws.com:5000\"",
            "eks.amazonaws.com/ecr-role-arn, then eks.amazonaws.com/role-arn",
            "refused until --fallback node or --fallback deny is chosen",
        ] {
            assert!(text.contains(want), "{want}:\n{text}");
        }
        let other = explain("ghcr.io/x/y", &Policy::default(), ISSUER).unwrap();
        assert!(other.contains("no credentials"), "{other}");
        assert!(explain("", &Policy::default(), ISSUER).is_err());
    }

    const ISSUER: &str = "https://issuer.enforce.dev";

    #[test]
    fn explains_chainguard_identity_method_and_key() {
        let unset = explain(
            "cgr.dev/chainguard/static:latest",
            &Policy::default(),
            ISSUER,
        )
        .unwrap();
        for want in [
            "Chainguard's registry (cgr.dev)",
            "annotation irsa.dev/chainguard-identity, else --chainguard-identity, which is not set",
            "https://issuer.enforce.dev/sts/exchange",
            "signed sts:GetCallerIdentity proof (method get-caller-identity; the annotation irsa.dev/chainguard-method overrides it)",
            "username _token",
            "auth key \"cgr.dev\"",
            "eks.amazonaws.com/ecr-role-arn, then eks.amazonaws.com/role-arn",
        ] {
            assert!(unset.contains(want), "{want}:\n{unset}");
        }
        assert!(!unset.contains("no credentials"), "{unset}");
        let id = "720909c9f5279097d847ad02a2f24ba8f59de36a/a033a6fabe0bfa0d";
        let set = Policy {
            chainguard_identity: Some(id.into()),
            chainguard_method: ChainguardMethod::WebIdentityToken,
            ..Policy::default()
        };
        let text = explain("cgr.dev:443/org/app", &set, ISSUER).unwrap();
        for want in [
            format!("else --chainguard-identity {id};"),
            "GetWebIdentityToken JWT".to_owned(),
            "method web-identity-token".to_owned(),
            "auth key \"cgr.dev:443\"".to_owned(),
        ] {
            assert!(text.contains(&want), "{want}:\n{text}");
        }
        let bad = Policy {
            chainguard_identity: Some("nope".into()),
            ..Policy::default()
        };
        let text = explain("cgr.dev/org/app", &bad, ISSUER).unwrap();
        assert!(
            text.contains("unusable") && text.contains("not a Chainguard identity id"),
            "{text}"
        );
    }
}
