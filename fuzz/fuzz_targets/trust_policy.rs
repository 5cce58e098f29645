//! Trust policies: never panic on parse, and evaluation of anything parsed never panics.
#![no_main]

use irsa_core::trust_policy::{self, PolicyDocument, RequestContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = PolicyDocument::parse(input) else {
        return;
    };
    let claims = serde_json::json!({
        "sub": "system:serviceaccount:prod:app",
        "aud": ["sts.amazonaws.com", "other"],
        "amr": ["a", "b"],
    });
    let serde_json::Value::Object(claims) = claims else {
        return;
    };
    let provider = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    let arn = format!("arn:aws:iam::111122223333:oidc-provider/{provider}");
    let decision = trust_policy::evaluate(
        &policy,
        &RequestContext::web_identity(&arn, provider, &claims),
    );
    let _ = decision.to_string();
});
