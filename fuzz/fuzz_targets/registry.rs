//! Image references: never panic, and whatever parses renders back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = irsa_core::registry::classify_host(input);
    if let Ok(image) = irsa_core::registry::parse(input) {
        let again =
            irsa_core::registry::parse(&image.to_string()).expect("a rendered reference parses");
        assert_eq!(image, again);
    }
});
