//! An Argo CD repository secret's keys, as its author wrote them: reading, deciding and
//! checking the token URL must never panic, and a served secret's STS endpoint and status text
//! are always formed.
#![no_main]

use irsa_core::argocd::{
    Allowed, Decision, RepoKeys, check_consent, check_token_url, decide, error_status,
    registry_host,
};
use libfuzzer_sys::fuzz_target;

const KEYS: [&str; 9] = [
    "url",
    "type",
    "enableOCI",
    "project",
    "workloadIdentityProvider",
    "useWorkloadIdentity",
    "workloadIdentityTokenURL",
    "workloadIdentityAudience",
    "sshPrivateKey",
];

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xff; the first is the service-account annotation.
    let mut parts = data.split(|b| *b == 0xff);
    let annotation = parts.next().and_then(|a| std::str::from_utf8(a).ok());
    let entries: Vec<(&str, &[u8])> = KEYS.iter().copied().zip(parts).collect();
    let keys = RepoKeys::read(annotation, entries.iter().copied());
    if let Some(url) = &keys.url {
        let _ = registry_host(url);
    }
    if let Some(url) = &keys.token_url {
        let _ = check_token_url(url, &[]);
    }
    match decide("argocd", "fuzz", &keys, &Allowed::default()) {
        Decision::Serve(w) => {
            let _ = w.sts_endpoint();
            if let Some(project) = &w.needs_consent {
                // The annotation bytes stand in for the service account's consent list.
                let _ = check_consent(
                    "argocd",
                    "fuzz",
                    &w.service_account,
                    project.as_deref(),
                    annotation,
                );
            }
        }
        Decision::Invalid(e) => {
            let _ = error_status(&e, Some(4_102_444_800));
        }
        Decision::NotOptedIn => {}
    }
});
