//! The controller end to end against the sandbox: fan-out, new namespaces, label changes,
//! conflicts, cleanup.

use irsa_lab::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_out_serves_new_namespaces_and_cleans_up() {
    let env = Env::start().await;
    for ns in ["team-a", "team-b", "team-c"] {
        env.lab.namespace(ns, &[("pull", "ecr")]).await.unwrap();
    }
    env.lab.namespace("other", &[]).await.unwrap();
    let controller = env.controller().await;
    env.apply_cps(
        "ecr",
        cps_spec(&env, json!({"selector": {"matchLabels": {"pull": "ecr"}}})),
    )
    .await;

    for ns in ["team-a", "team-b", "team-c"] {
        let secret = env.wait_secret(ns, "regcred").await;
        let auth = docker_auth(&secret, &env.lab.ecr_host());
        assert!(auth.starts_with("AWS:"), "ECR username is AWS");
    }
    env.wait_ready("ecr", "3/3").await;
    assert!(
        env.secret("other", "regcred").await.is_none(),
        "unselected namespace untouched"
    );
    // What an operator sees: kubectl's printer columns for the resource.
    let state = std::env::temp_dir().join(format!("irsa-fanout-{}", std::process::id()));
    let paths = env.lab.stack.write_state(&state).unwrap();
    let out = std::process::Command::new(irsa_test_peers::kubectl())
        .args(["get", "clusterpullsecrets", "--no-headers"])
        .env("KUBECONFIG", &paths.kubeconfig)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&state);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&cols[..3], ["ecr", "True", "3/3"], "{line}");
    assert!(cols[3].ends_with('Z'), "Expires is a timestamp: {line}");
    let exchanges = controller.handle.metrics().exchanges();
    assert_eq!(exchanges, 1, "one upstream exchange for every namespace");

    // A new namespace is served at once; a relabelled one too.
    env.lab
        .namespace("team-d", &[("pull", "ecr")])
        .await
        .unwrap();
    env.wait_secret("team-d", "regcred").await;
    env.lab
        .namespace("other", &[("pull", "ecr")])
        .await
        .unwrap();
    env.wait_secret("other", "regcred").await;
    // Deselected: our secret goes.
    env.lab.namespace("team-a", &[]).await.unwrap();
    env.wait_gone("team-a", "regcred").await;
    assert_eq!(
        controller.handle.metrics().exchanges(),
        1,
        "still one exchange"
    );

    // Deleting the resource removes every secret (finalizer).
    env.delete_cps("ecr").await;
    for ns in ["team-b", "team-c", "team-d", "other"] {
        env.wait_gone(ns, "regcred").await;
    }
    controller.stop().await.unwrap();
}
