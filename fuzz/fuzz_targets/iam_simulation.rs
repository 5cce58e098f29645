//! A SimulatePrincipalPolicy answer (IAM Query API XML): never panic; what parses is within
//! the bounds (results, text lengths, missing context keys) and names no empty action,
//! resource or context key.
#![no_main]

use irsa_core::iam_simulation::{MAX_CONTEXT_KEYS, MAX_RESULTS, MAX_TEXT, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((results, marker)) = parse_response(text) else {
        return;
    };
    assert!(results.len() <= MAX_RESULTS);
    for r in &results {
        assert!(!r.action.is_empty() && r.action.len() <= MAX_TEXT);
        assert!(!r.resource.is_empty() && r.resource.len() <= MAX_TEXT);
        for m in &r.matched {
            assert!(!m.source_policy_id.is_empty() && m.source_policy_id.len() <= MAX_TEXT);
        }
        assert!(r.missing_context.len() <= MAX_CONTEXT_KEYS);
        for k in &r.missing_context {
            assert!(!k.is_empty() && k.len() <= MAX_TEXT);
        }
    }
    if let Some(m) = marker {
        assert!(!m.is_empty() && m.len() <= MAX_TEXT);
    }
});
