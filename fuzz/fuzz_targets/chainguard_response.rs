//! Chainguard's `sts/exchange` answer and its expiry: never panic (an `expiry` of 2^63 once
//! did), never quote the body in an error, and whatever expiry is accepted can be judged.
#![no_main]

use irsa_core::lifetime;
use irsa_core::registry_token::parse_chainguard_exchange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_chainguard_exchange(data) {
        Ok((token, expiry)) => {
            assert!(!token.expose().is_empty());
            if let Some(at) = expiry {
                let _ = lifetime::judge_system_time(at, std::time::SystemTime::UNIX_EPOCH);
            }
        }
        Err(e) => {
            let text = e.to_string();
            // The body may hold a token: an error names a category and position, never input.
            // A token is a long run without spaces, which the error's own wording never has (a
            // body made of that wording is the fuzzer's coincidence, not a leak).
            if let Ok(body) = std::str::from_utf8(data) {
                for run in body
                    .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                    .filter(|run| run.len() >= 24)
                {
                    assert!(!text.contains(run), "{text}");
                }
            }
        }
    }
});
