//! The official Python `kubernetes` client (and PyJWT) against the sandbox API server.

mod common;

use std::process::Command;

use common::{Sandbox, run, venv_k8s};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kubernetes_client() {
    let venv = venv_k8s();
    let sb = Sandbox::start().await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/k8s_client.py");
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(script);
    let out = run(cmd, &sb.kubeconfig).await;
    assert!(
        out.code == Some(0) && out.stdout.contains("ALL OK"),
        "python client failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    assert!(
        sb.api
            .counters()
            .get("kubernetes", "create serviceaccounts/token", "201")
            >= 1
    );
    sb.stop().await;
}
