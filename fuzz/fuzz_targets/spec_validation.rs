//! Validation of ClusterPullSecret and PullSecret objects, which tenants write: any JSON that
//! deserializes into one must validate or be refused without panicking, and every refusal
//! names a field.
#![no_main]

use irsa_k8s::{ClusterPullSecret, PullSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cps) = serde_json::from_slice::<ClusterPullSecret>(data) {
        if let Err(errors) = cps.validate() {
            assert!(!errors.to_string().is_empty());
        }
    }
    if let Ok(ps) = serde_json::from_slice::<PullSecret>(data) {
        if let Err(errors) = ps.validate() {
            assert!(!errors.to_string().is_empty());
        }
    }
});
