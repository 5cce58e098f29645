//! The `irsa.dev/added-pull-secrets` record on a tenant-editable ServiceAccount: never panic,
//! only JSON is a record, no owner has an empty list, and what irsa renders reads back.
#![no_main]

use irsa_core::pull_secret_record::{parse_added_pull_secrets, render_added_pull_secrets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let added = parse_added_pull_secrets(text);
    assert!(added.values().all(|names| !names.is_empty()));
    if !added.is_empty() {
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "a record from non-JSON"
        );
    }
    let rendered = render_added_pull_secrets(&added);
    assert_eq!(parse_added_pull_secrets(&rendered), added);
});
