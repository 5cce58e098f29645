//! Web-identity tokens and JWKS documents: never panic on any bytes.
#![no_main]

use irsa_core::token::{self, Expectations, Jwks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Jwks::parse(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = token::decode_unverified(input) {
        let expect = Expectations {
            issuer: Some("https://issuer.example".to_owned()),
            audiences: vec!["sts.amazonaws.com".to_owned()],
            now: 1_700_000_000,
            leeway_seconds: token::DEFAULT_LEEWAY_SECONDS,
        };
        let _ = token::check_claims(&t.claims, &expect);
        let _ = t.claims.service_account();
    }
});
