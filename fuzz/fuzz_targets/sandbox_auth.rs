//! What the sandbox reads from callers before it trusts them: SigV4 Authorization headers,
//! X-Amz-Date values, Chainguard identity proofs and IAM Query request bodies (applied to a
//! fresh IAM). Never panic on any bytes.
#![no_main]

use irsa_sandbox::cloud::{Iam, apply_query_lines, decode_proof};
use irsa_sandbox::cloud::sigv4::{Authorization, parse_amz_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = apply_query_lines(&mut Iam::new("aws", "111122223333"), data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Authorization::parse(input);
    let _ = parse_amz_date(input);
    let _ = decode_proof(input);
});
