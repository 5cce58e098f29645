//! What `irsa doctor` reads from the cluster and IAM: the OIDC discovery document and the
//! role's permission policies. Never panic on any bytes.
#![no_main]

use irsa_core::permission_policy::{self, PermissionPolicy};
use irsa_core::token::Discovery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Discovery::parse(data) {
        let _ = d.jwks_path();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = PermissionPolicy::parse(text) {
        let policies = [("fuzz".to_owned(), policy)];
        let _ = permission_policy::evaluate(&policies, "ecr:GetAuthorizationToken", "*");
    }
    let _ = permission_policy::wildcard_match(text, "ecr:GetAuthorizationToken", true);
});
