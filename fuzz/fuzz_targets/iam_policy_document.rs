//! A policy document as IAM's API returns it (URL-encoded JSON): never panic; a document that
//! decodes re-encodes to the same text, and it is the same document as itself when it is JSON.
#![no_main]

use irsa_core::trust_policy::{decode_policy_document, same_document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(text) = decode_policy_document(raw) else {
        return;
    };
    // Percent-encoding every byte of the decoded text decodes back to it.
    let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(decode_policy_document(&encoded).as_deref(), Ok(text.as_str()));
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        assert!(same_document(&text, &value));
    }
});
