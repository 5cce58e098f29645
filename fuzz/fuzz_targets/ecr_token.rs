//! ECR's authorization token (base64 of `user:password`): never panic, and a decoded token
//! splits back into what was encoded.
#![no_main]

use irsa_core::registry_token::decode_ecr_authorization_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((user, password)) = decode_ecr_authorization_token(token) {
        assert!(!user.is_empty() && !password.expose().is_empty());
        assert!(!user.contains(':'));
    }
});
