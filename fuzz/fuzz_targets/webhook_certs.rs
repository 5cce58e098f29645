//! `irsa webhook certs` decides from a Secret read back from the cluster whether its serving
//! pair can be kept, and builds the next caBundle from its `ca.crt` and the configuration's
//! caBundle (X.509-parsed to carry only valid CAs); the server reads its certificate's expiry:
//! whatever bytes they hold, that must never panic.
#![no_main]

use std::time::{Duration, SystemTime};

use irsa_webhook::certs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Three fields out of one input: tls.crt, tls.key, ca.crt.
    let mut parts = data.splitn(3, |b| *b == 0);
    let crt = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or_default();
    let ca = parts.next().unwrap_or_default();
    let _ = certs::check(
        crt,
        key,
        ca,
        "irsa-webhook.irsa-system.svc",
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        Duration::from_secs(86_400),
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = certs::bundle_contains(crt, ca);
    // The previous ca.crt and the caBundle read back are carried only if they are valid CAs.
    let _ = certs::next_bundle(
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        &[ca, crt],
        &certs::fingerprints(ca),
        now,
    );
    let _ = certs::bundle_is_clean(crt, ca, &certs::fingerprints(crt), now);
    let _ = certs::is_valid_ca(ca, now);
    let _ = certs::not_after_unix(crt);
});
