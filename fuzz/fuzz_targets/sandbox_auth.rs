//! What the sandbox reads from callers before it trusts them: SigV4 Authorization headers,
//! X-Amz-Date values and Chainguard identity proofs. Never panic on any bytes.
#![no_main]

use irsa_sandbox::cloud::decode_proof;
use irsa_sandbox::cloud::sigv4::{Authorization, parse_amz_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Authorization::parse(input);
    let _ = parse_amz_date(input);
    let _ = decode_proof(input);
});
