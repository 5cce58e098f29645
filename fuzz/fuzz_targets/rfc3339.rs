//! RFC 3339 times read from the cluster: the `irsa.dev/expires-at` annotation of a pull secret
//! (tenant-writable, read by the controller and by `irsa doctor --pod`). Never panic; a time
//! that parses renders back to the same instant.
#![no_main]

use irsa_core::time::{parse_rfc3339, rfc3339};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = parse_rfc3339(text) {
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{text:?}");
    }
});
