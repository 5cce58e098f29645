//! `token::verify`: a JWKS document and a token (split at the first NUL byte), both untrusted
//! (the JWKS comes from the cluster's issuer, the token from a tenant): never panic.
#![no_main]

use irsa_core::token::{self, Expectations, Jwks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (jwks, raw) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(jwks) = Jwks::parse(jwks) else { return };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let expect = Expectations {
        issuer: Some("https://issuer.example".to_owned()),
        audiences: vec!["sts.amazonaws.com".to_owned()],
        now: 1_700_000_000,
        leeway_seconds: token::DEFAULT_LEEWAY_SECONDS,
    };
    let _ = token::verify(raw, &jwks, &expect);
});
