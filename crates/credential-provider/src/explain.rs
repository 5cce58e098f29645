//! `irsa credential-provider --explain IMAGE`: what the provider would do for an image, and
//! with which role and region, in sentences.

use std::fmt::Write as _;

use irsa_core::partition::{EndpointVariant, ecr_api_endpoint, validate_region};
use irsa_core::registry::{self, Registry};

use crate::plan::{Fallback, PlanError, Policy};

/// The explanation for `image` under `policy`, one statement per line.
pub fn explain(image: &str, policy: &Policy) -> Result<String, PlanError> {
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
        Registry::Chainguard | Registry::Other => {
            let _ = writeln!(
                out,
                "image {image}: registry {host} is not Amazon ECR or ECR Public; the provider answers with no credentials and the kubelet pulls without them"
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
        let other = explain("ghcr.io/x/y", &Policy::default()).unwrap();
        assert!(other.contains("no credentials"), "{other}");
        assert!(explain("", &Policy::default()).is_err());
    }
}
