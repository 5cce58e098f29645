//! The webhook's AdmissionReview decoder, and the mutation of whatever pod it yields: bytes
//! from the network must never panic either.
#![no_main]

use irsa_webhook::{Config, ServiceAccountInfo, mutate_with_jitter, review};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = review::uid_of(data);
    if let Ok(req) = review::decode(data) {
        let _ = req.service_account();
        let _ = req.pod_name();
        let sa = ServiceAccountInfo::annotated([(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::111122223333:role/fuzz",
        )]);
        let config = Config {
            aws_default_region: Some("eu-west-1".into()),
            sts_regional_endpoints: true,
            ..Config::default()
        };
        if let Ok(ops) = mutate_with_jitter(&req.object, &sa, &config, 0) {
            let _ = review::allow(&req.uid, &ops, &[]);
        }
        let pod_identity = ServiceAccountInfo {
            pod_identity: true,
            ..sa
        };
        let _ = mutate_with_jitter(&req.object, &pod_identity, &config, 1);
    }
});
