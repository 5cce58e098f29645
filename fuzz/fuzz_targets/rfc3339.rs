//! RFC 3339 times read from the cluster: the `irsa.dev/expires-at` annotation of a pull secret
//! (tenant-writable, read by the controller and by `irsa doctor --pod`). Never panic; a time
//! that parses to an instant of years 0000-9999 renders back to the same instant.
#![no_main]

use irsa_core::time::{parse_rfc3339, rfc3339};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the years `rfc3339` writes in 4 digits.
    if let Some(t) = parse_rfc3339(text).filter(|t| (-62_167_219_200..253_402_300_800).contains(t))
    {
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{text:?}");
    }
});
