//! The kubelet's CredentialProviderRequest on the provider's stdin: never panic, never echo the
//! service-account token in a refusal, and what decodes plans without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match irsa_credential_provider::decode_request(data) {
        Ok(request) => {
            let _ = irsa_credential_provider::plan::plan(
                &request,
                &irsa_credential_provider::Policy::default(),
            );
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.contains('\n'), "one line for the kubelet's log");
            // The token never reaches the message: find it and check (long enough to be a token).
            if let Ok(serde_json::Value::Object(o)) =
                serde_json::from_slice::<serde_json::Value>(data)
                && let Some(serde_json::Value::String(t)) = o.get("serviceAccountToken")
                && t.len() >= 16
            {
                assert!(!message.contains(t.as_str()), "token echoed: {message}");
            }
        }
    }
});
