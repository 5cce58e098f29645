//! ARNs and session names: never panic, round trip, derived names always valid.
#![no_main]

use irsa_core::arn::{Arn, SessionName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arn) = input.parse::<Arn>() {
        let again: Arn = arn.to_string().parse().expect("a rendered ARN parses");
        assert_eq!(arn, again);
    }
    let derived = SessionName::derive(input);
    assert!(
        SessionName::new(derived.as_str()).is_ok(),
        "derived session name is valid"
    );
    let _ = irsa_core::arn::issuer_host_path(input);
});
