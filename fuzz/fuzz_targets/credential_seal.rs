//! The credential seal read back from a tenant-editable pull secret (`irsa.dev/credential-mac`,
//! `irsa.dev/issued-at`, `irsa.dev/expires-at`, `.dockerconfigjson`): never panic, a value
//! verifies exactly when it is the seal irsa computes for those inputs, garbage is never
//! adopted, and what irsa itself writes always reads back (unless it is no config for the
//! wanted registries).
#![no_main]

use std::collections::BTreeSet;

use irsa_core::docker_config::DockerConfig;
use irsa_core::seal::{Rejected, SealKey, Sealed, Written, read_back};
use irsa_core::secret::SecretString;
use irsa_core::time::rfc3339;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// The last second `rfc3339` writes with a four-digit year (9999-12-31T23:59:59Z).
const LAST_FOUR_DIGIT_YEAR: i64 = 253_402_300_799;

fn check(u: &mut Unstructured<'_>) -> Result<()> {
    let key = SealKey::from_bytes(&u.arbitrary::<[u8; 32]>()?).expect("32 bytes make a key");
    let store_key: &str = u.arbitrary()?;
    let hosts: BTreeSet<&str> = u.arbitrary::<Vec<&str>>()?.into_iter().collect();
    let raw: &[u8] = u.arbitrary()?;
    // Half the time a well-formed config for the wanted hosts, so that read-back gets past
    // the parse and the registry check.
    let rendered;
    let json: &[u8] = if u.arbitrary()? {
        let mut config = DockerConfig::new();
        for h in &hosts {
            config.insert(
                *h,
                "AWS",
                SecretString::from(String::from_utf8_lossy(raw).into_owned()),
            );
        }
        rendered = config.render();
        rendered.expose().as_bytes()
    } else {
        raw
    };

    // Everything as a tenant may have written it.
    let tenant = Written {
        docker_config_json: u.arbitrary::<Option<()>>()?.map(|()| json),
        issued_at: u.arbitrary()?,
        expires_at: u.arbitrary()?,
        mac: u.arbitrary()?,
    };
    if let Ok(got) = read_back(&key, store_key, &hosts, &tenant) {
        let what = Sealed {
            store_key,
            docker_config_json: tenant.docker_config_json.expect("adopted data"),
            issued_at: got.issued_at,
            expires_at: got.expires_at,
        };
        assert_eq!(
            tenant.mac,
            Some(key.seal(&what).as_str()),
            "adopted without irsa's seal"
        );
        assert_eq!(got.config.len(), hosts.len());
    }

    // A seal verifies its own inputs and nothing else.
    let (issued_at, expires_at): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
    let what = Sealed {
        store_key,
        docker_config_json: json,
        issued_at,
        expires_at,
    };
    let seal = key.seal(&what);
    assert!(key.verify(&what, &seal));
    if let Some(mac) = tenant.mac {
        assert_eq!(
            key.verify(&what, mac),
            mac == seal,
            "only the exact seal verifies"
        );
    }
    let later = Sealed {
        expires_at: expires_at.wrapping_add(1),
        ..what
    };
    assert!(!key.verify(&later, &seal), "a seal covers the expiry");
    let earlier = Sealed {
        issued_at: issued_at.wrapping_sub(1),
        ..what
    };
    assert!(!key.verify(&earlier, &seal), "a seal covers the issue time");

    // What irsa writes reads back.
    let in_range = |t: i64| (0..=LAST_FOUR_DIGIT_YEAR).contains(&t);
    if in_range(issued_at) && in_range(expires_at) {
        let (issued, expires) = (rfc3339(issued_at), rfc3339(expires_at));
        let ours = Written {
            docker_config_json: Some(json),
            issued_at: Some(&issued),
            expires_at: Some(&expires),
            mac: Some(&seal),
        };
        match read_back(&key, store_key, &hosts, &ours) {
            Ok(got) => assert_eq!((got.issued_at, got.expires_at), (issued_at, expires_at)),
            Err(Rejected::Seal) => {
                assert!(DockerConfig::parse(json).is_err(), "sealed config refused")
            }
            Err(Rejected::Registries) => {}
            Err(e) => panic!("irsa's own values refused: {e}"),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});
