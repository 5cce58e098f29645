//! The CLI's on-disk credential cache entry: never panic on a corrupt or edited file, a parsed
//! entry renders back to itself, and nothing with an absurd expiry is servable.
#![no_main]

use irsa_core::cache_entry::CacheEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(entry) = CacheEntry::parse(data) {
        let again = CacheEntry::parse(entry.to_json().expose().as_bytes()).expect("re-parses");
        assert_eq!(entry, again);
        let now = 1_700_000_000;
        if entry.servable(&entry.registry, now) {
            assert!(entry.expires_at > now);
            assert!(entry.expires_at - now <= irsa_core::lifetime::MAX_LIFETIME_SECS);
        }
    }
});
