//! Secrets (web-identity tokens, secret keys, session tokens, registry passwords) never reach
//! the sandbox's logs or error bodies. A binary of its own: tracing's per-callsite interest is
//! process-wide, so no other test may run while this one captures logs.

mod common_cloud;

use aws_credential_types::Credentials;
use base64::Engine as _;
use common_cloud::*;

#[tokio::test]
async fn secrets_never_reach_logs_or_error_bodies() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        // The server side: the sandbox and the libraries it calls (aws-sdk clients log bodies at trace).
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "irsa_sandbox=trace,irsa_core=trace,aws_sigv4=trace,axum=trace,hyper=trace",
        ))
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Current-thread runtime: the server runs on this thread, under this subscriber.
    let env = start().await;
    let url = env.url();
    let token = sa_token(&env.cloud, "team-a", "puller", AUDIENCE);
    let out = assume(&url, &role_arn("puller"), &token).await.unwrap();
    let good = creds(&out);
    let auth = ecr_client(&url, good.clone())
        .get_authorization_token()
        .send()
        .await
        .unwrap();
    let password = auth.authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_owned();
    let _ = assume(&url, &role_arn("puller"), &tamper_signature(&token)).await;
    let wrong = Credentials::new(
        good.access_key_id(),
        "y".repeat(40),
        good.session_token().map(str::to_owned),
        None,
        "t",
    );
    let _ = ecr_client(&url, wrong)
        .get_authorization_token()
        .send()
        .await;
    // A raw error body, too.
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=a%20b&WebIdentityToken={token}",
        role_arn("puller")
    );
    let raw = irsa_sandbox::cloud::http_request(
        "POST",
        &format!("{url}/"),
        &[("content-type", "application/x-www-form-urlencoded")],
        body.into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(raw.status, 400);
    assert!(raw.text().starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>ValidationError</Code>"), "{}", raw.text());
    assert!(raw.text().contains("<RequestId>"));
    assert!(!raw.text().contains(&token));

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("issued web-identity session"),
        "logs captured: {logs}"
    );
    let secret = good.secret_access_key().to_owned();
    let session = good.session_token().unwrap().to_owned();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&password)
            .unwrap(),
    )
    .unwrap();
    for (what, value) in [
        ("web identity token", token.as_str()),
        ("secret key", &secret),
        ("session token", &session),
        ("ECR password", &decoded[4..]),
        ("ECR token", &password),
    ] {
        if let Some(at) = logs.find(value) {
            let start = logs[..at].rfind('\n').unwrap_or(0);
            panic!(
                "{what} leaked into logs: {}",
                &logs[start..(at + 40).min(logs.len())]
            );
        }
    }
}
