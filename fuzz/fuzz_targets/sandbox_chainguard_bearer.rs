//! The sandbox Chainguard exchange's bearer, as an attacker sends it: told apart as a JWT or a
//! GetCallerIdentity proof, then verified (a JWT against a fixed JWKS, a proof decoded and its
//! rules checked). Never panics; a refusal never quotes the bearer.
#![no_main]

use std::sync::OnceLock;

use irsa_core::token::Jwks;
use irsa_sandbox::cloud::{
    OidcIssuer, check_proof, check_web_identity_token, decode_proof, is_jwt,
};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Jwks {
    static KEYS: OnceLock<Jwks> = OnceLock::new();
    KEYS.get_or_init(|| {
        OidcIssuer::new("http://x/outbound", "", None)
            .expect("a key")
            .verification_keys()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(bearer) = std::str::from_utf8(data) else {
        return;
    };
    let refusal = if is_jwt(bearer) {
        check_web_identity_token(
            bearer,
            keys(),
            "http://x/outbound",
            "http://x",
            1_800_000_000,
        )
        .err()
    } else {
        match decode_proof(bearer) {
            Ok(proof) => check_proof(&proof, "http://x", "group/id", 1_800_000_000).err(),
            Err(e) => Some(e),
        }
    };
    if let Some(e) = refusal {
        let text = e.to_string();
        for run in bearer
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .filter(|run| run.len() >= 24)
        {
            assert!(!text.contains(run), "{text}");
        }
    }
});
