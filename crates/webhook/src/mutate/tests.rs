//! Table-driven tests of every mutation rule, with the expected patches written out.

use super::*;
use crate::config::{ContainerCredentialsConfig, MAX_ANNOTATION_VALUE};
use proptest::prelude::*;
use serde_json::json;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
const TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

/// The mutation of a pod within the bounds (the bounds have their own tests).
fn mutate_with_jitter(
    pod: &Value,
    sa: &ServiceAccountInfo,
    config: &Config,
    jitter: i64,
) -> Vec<PatchOp> {
    super::mutate_with_jitter(pod, sa, config, jitter).expect("a pod within the bounds")
}

fn mutate(pod: &Value, sa: &ServiceAccountInfo, config: &Config) -> Vec<PatchOp> {
    super::mutate(pod, sa, config).expect("a pod within the bounds")
}

fn role_sa() -> ServiceAccountInfo {
    ServiceAccountInfo::annotated([("eks.amazonaws.com/role-arn", ROLE)])
}

fn sa_with(extra: &[(&str, &str)]) -> ServiceAccountInfo {
    let mut pairs = vec![("eks.amazonaws.com/role-arn".to_owned(), ROLE.to_owned())];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| (format!("eks.amazonaws.com/{k}"), v.to_string())),
    );
    ServiceAccountInfo::annotated(pairs)
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

fn simple_pod() -> Value {
    pod(json!({"serviceAccountName": "app", "containers": [{"name": "app", "image": "busybox"}]}))
}

fn apply(pod: &Value, ops: &[PatchOp]) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(serde_json::to_value(ops).unwrap())
        .expect("the webhook's patch is a valid JSON patch");
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).expect("the patch applies to the pod it was made for");
    out
}

fn run(p: &Value, sa: &ServiceAccountInfo, config: &Config) -> (Vec<PatchOp>, Value) {
    let ops = mutate_with_jitter(p, sa, config, 0);
    let out = apply(p, &ops);
    assert_eq!(
        mutate_with_jitter(&out, sa, config, 0),
        vec![],
        "a mutated pod needs no further patch"
    );
    (ops, out)
}

fn env_of(out: &Value, pointer: &str) -> Vec<(String, String)> {
    out.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn names(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_plain_pod_gets_upstreams_exact_patch() {
    let ops = mutate_with_jitter(&simple_pod(), &role_sa(), &Config::default(), 0);
    let expected = json!([
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}}]},
        {"op": "add", "path": "/spec/containers/0/env", "value": [
            {"name": "AWS_ROLE_ARN", "value": ROLE},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": TOKEN_FILE}]},
        {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [
            {"name": "aws-iam-token", "readOnly": true, "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]},
    ]);
    assert_eq!(serde_json::to_value(&ops).unwrap(), expected);
}

#[test]
fn existing_arrays_are_extended_by_index_never_replaced() {
    let p = pod(json!({
        "containers": [{"name": "app", "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }));
    let (ops, out) = run(&p, &role_sa(), &Config::default());
    let paths: Vec<&str> = ops.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/spec/volumes/0",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/volumeMounts/-"
        ]
    );
    assert!(ops.iter().all(|o| o.op() == "add"));
    assert_eq!(out["spec"]["volumes"][0]["name"], "aws-iam-token");
    assert_eq!(out["spec"]["volumes"][1]["name"], "data");
    assert_eq!(
        names(&env_of(&out, "/spec/containers/0/env")),
        ["A", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0]["name"],
        "data"
    );
}

#[test]
fn nothing_to_do_gives_an_empty_patch() {
    let config = Config::default();
    let cases: Vec<(&str, Value, ServiceAccountInfo)> = vec![
        (
            "service account not found",
            simple_pod(),
            ServiceAccountInfo::default(),
        ),
        (
            "no role-arn annotation",
            simple_pod(),
            ServiceAccountInfo::annotated([("eks.amazonaws.com/audience", "x")]),
        ),
        (
            "empty role-arn annotation",
            simple_pod(),
            ServiceAccountInfo::annotated([("eks.amazonaws.com/role-arn", "")]),
        ),
        (
            "skip label, any value",
            json!({"metadata": {"labels": {"eks.amazonaws.com/skip-pod-identity-webhook": ""}}, "spec": {"containers": [{"name": "a"}]}}),
            role_sa(),
        ),
        (
            "skip label in Pod Identity mode",
            json!({"metadata": {"labels": {"eks.amazonaws.com/skip-pod-identity-webhook": "true"}}, "spec": {"containers": [{"name": "a"}]}}),
            ServiceAccountInfo {
                pod_identity: true,
                ..role_sa()
            },
        ),
    ];
    for (what, p, sa) in cases {
        assert_eq!(mutate_with_jitter(&p, &sa, &config, 0), vec![], "{what}");
    }
}

#[test]
fn every_container_is_handled_init_containers_and_native_sidecars_included() {
    let p = pod(json!({
        "initContainers": [
            {"name": "init", "image": "x"},
            {"name": "sidecar", "image": "x", "restartPolicy": "Always", "futureField": {"kept": true}},
        ],
        "containers": [{"name": "a"}, {"name": "b"}],
    }));
    let (_, out) = run(&p, &role_sa(), &Config::default());
    for pointer in [
        "/spec/initContainers/0",
        "/spec/initContainers/1",
        "/spec/containers/0",
        "/spec/containers/1",
    ] {
        let env = env_of(&out, &format!("{pointer}/env"));
        assert_eq!(
            names(&env),
            ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            "{pointer}"
        );
        assert_eq!(
            out.pointer(&format!("{pointer}/volumeMounts/0/name")),
            Some(&json!("aws-iam-token"))
        );
    }
    assert_eq!(out["spec"]["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(
        out["spec"]["initContainers"][1]["futureField"],
        json!({"kept": true})
    );
}

#[test]
fn skip_containers_annotation_leaves_those_containers_alone() {
    let cases = [
        ("a,init", vec!["b"]),
        ("\"a\",\"init\"", vec!["b"]),
        ("a", vec!["init", "b"]),
        // Go's csv reader does not trim: " b" is not "b".
        ("a, b", vec!["init", "b"]),
        // Malformed: no container is skipped, as upstream.
        ("a\"b", vec!["init", "a", "b"]),
        ("", vec!["init", "a", "b"]),
    ];
    for (value, mutated) in cases {
        let mut p = pod(
            json!({"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}),
        );
        p["metadata"]["annotations"] = json!({"eks.amazonaws.com/skip-containers": value});
        let (_, out) = run(&p, &role_sa(), &Config::default());
        let mut got = Vec::new();
        for field in ["initContainers", "containers"] {
            for c in out["spec"][field].as_array().unwrap() {
                if c.get("env").is_some() {
                    got.push(c["name"].as_str().unwrap().to_owned());
                } else {
                    assert!(
                        c.get("volumeMounts").is_none(),
                        "{value:?}: skipped gets no mount"
                    );
                }
            }
        }
        assert_eq!(got, mutated, "{value:?}");
        assert!(
            out["spec"]["volumes"][0]["name"] == "aws-iam-token",
            "{value:?}: volume still added"
        );
    }
}

#[test]
fn region_variables_only_when_neither_is_set() {
    let config = Config {
        aws_default_region: Some("eu-west-1".into()),
        ..Config::default()
    };
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!([]),
            vec![
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ROLE_ARN", ROLE),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
            ],
        ),
        (
            json!([{"name": "AWS_REGION", "value": "us-east-1"}]),
            vec![
                ("AWS_REGION", "us-east-1"),
                ("AWS_ROLE_ARN", ROLE),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
            ],
        ),
        (
            json!([{"name": "AWS_DEFAULT_REGION", "value": "us-east-1"}]),
            vec![
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ROLE_ARN", ROLE),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_FILE),
            ],
        ),
    ];
    for (env, want) in cases {
        let p = pod(json!({"containers": [{"name": "a", "env": env}]}));
        let (_, out) = run(&p, &role_sa(), &config);
        let got = env_of(&out, "/spec/containers/0/env");
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, want, "{env}");
    }
    // An empty region flag adds nothing.
    let empty = Config {
        aws_default_region: Some(String::new()),
        ..Config::default()
    };
    let (_, out) = run(&simple_pod(), &role_sa(), &empty);
    assert_eq!(
        names(&env_of(&out, "/spec/containers/0/env")),
        ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    );
}

#[test]
fn credential_variables_unless_either_is_set() {
    for existing in ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"] {
        let p = pod(
            json!({"containers": [{"name": "a", "env": [{"name": existing, "value": "mine"}]}]}),
        );
        let (_, out) = run(&p, &role_sa(), &Config::default());
        assert_eq!(
            env_of(&out, "/spec/containers/0/env"),
            [(existing.to_owned(), "mine".to_owned())]
        );
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "aws-iam-token"
        );
    }
}

#[test]
fn regional_sts_from_the_flag_or_the_annotation_both_ways() {
    let on = Config {
        sts_regional_endpoints: true,
        ..Config::default()
    };
    let cases = [
        (Config::default(), sa_with(&[]), false),
        (on.clone(), sa_with(&[]), true),
        (
            on.clone(),
            sa_with(&[("sts-regional-endpoints", "false")]),
            false,
        ),
        (
            Config::default(),
            sa_with(&[("sts-regional-endpoints", "true")]),
            true,
        ),
        (
            on.clone(),
            sa_with(&[("sts-regional-endpoints", "nope")]),
            true,
        ),
    ];
    for (i, (config, sa, want)) in cases.into_iter().enumerate() {
        let (_, out) = run(&simple_pod(), &sa, &config);
        let env = env_of(&out, "/spec/containers/0/env");
        assert_eq!(
            env.contains(&("AWS_STS_REGIONAL_ENDPOINTS".into(), "regional".into())),
            want,
            "case {i}"
        );
    }
    // Already set: kept as the user wrote it.
    let p = pod(
        json!({"containers": [{"name": "a", "env": [{"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "legacy"}]}]}),
    );
    let (_, out) = run(&p, &role_sa(), &on);
    assert_eq!(
        env_of(&out, "/spec/containers/0/env")[0],
        ("AWS_STS_REGIONAL_ENDPOINTS".into(), "legacy".into())
    );
}

#[test]
fn a_container_with_every_variable_set_is_left_alone_mount_included_as_upstream() {
    let config = Config {
        sts_regional_endpoints: true,
        aws_default_region: Some("eu-west-1".into()),
        ..Config::default()
    };
    let p = pod(json!({"containers": [{"name": "a", "env": [
        {"name": "AWS_ROLE_ARN", "value": "x"},
        {"name": "AWS_REGION", "value": "x"},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
    ]}]}));
    let (ops, out) = run(&p, &role_sa(), &config);
    assert_eq!(ops.len(), 1, "only the volume: {ops:?}");
    assert!(out["spec"]["containers"][0].get("volumeMounts").is_none());
}

#[test]
fn existing_mount_or_volume_of_that_name_is_kept() {
    let p = pod(json!({
        "containers": [{"name": "a", "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/mine"}]}],
        "volumes": [{"name": "aws-iam-token", "secret": {"secretName": "mine"}}],
    }));
    let (ops, out) = run(&p, &role_sa(), &Config::default());
    assert_eq!(ops.len(), 1, "the env array only: {ops:?}");
    assert_eq!(out["spec"]["volumes"], p["spec"]["volumes"]);
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        p["spec"]["containers"][0]["volumeMounts"]
    );
}

#[test]
fn windows_pods_get_the_windows_token_path() {
    for key in ["kubernetes.io/os", "beta.kubernetes.io/os"] {
        let p = pod(json!({"nodeSelector": {key: "windows"}, "containers": [{"name": "a"}]}));
        let (_, out) = run(&p, &role_sa(), &Config::default());
        assert_eq!(
            env_of(&out, "/spec/containers/0/env")[1].1,
            r"C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token",
            "{key}"
        );
        // The mount path stays as given: the kubelet translates it.
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            "/var/run/secrets/eks.amazonaws.com/serviceaccount"
        );
    }
    let linux =
        pod(json!({"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a"}]}));
    let (_, out) = run(&linux, &role_sa(), &Config::default());
    assert_eq!(env_of(&out, "/spec/containers/0/env")[1].1, TOKEN_FILE);
}

#[test]
fn token_expiration_pod_annotation_wins_then_account_then_flag_minimum_600() {
    let flag = Config {
        token_expiration: 7200,
        ..Config::default()
    };
    let cases: [(Option<&str>, Option<&str>, i64); 7] = [
        (None, None, 7200),
        (Some("3600"), None, 3600),
        (Some("3600"), Some("1800"), 1800),
        (None, Some("100"), 600),
        (Some("100"), None, 600),
        (Some("3600"), Some("soon"), 3600),
        (Some("-1"), None, 600),
    ];
    for (sa_value, pod_value, want) in cases {
        let sa = match sa_value {
            Some(v) => sa_with(&[("token-expiration", v)]),
            None => sa_with(&[]),
        };
        let mut p = simple_pod();
        if let Some(v) = pod_value {
            p["metadata"]["annotations"] = json!({"eks.amazonaws.com/token-expiration": v});
        }
        let (_, out) = run(&p, &sa, &flag);
        assert_eq!(
            out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            want,
            "{sa_value:?} {pod_value:?}"
        );
    }
}

#[test]
fn audience_mount_path_and_prefix_follow_flags_and_annotations() {
    let config = Config {
        annotation_prefix: "irsa.dev".into(),
        token_audience: "irsa".into(),
        token_mount_path: "/var/run/irsa/".into(),
        ..Config::default()
    };
    let sa = ServiceAccountInfo::annotated([("irsa.dev/role-arn", ROLE)]);
    let (_, out) = run(&simple_pod(), &sa, &config);
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "irsa"
    );
    assert_eq!(
        env_of(&out, "/spec/containers/0/env")[1].1,
        "/var/run/irsa/token"
    );
    let sa = ServiceAccountInfo::annotated([
        ("irsa.dev/role-arn", ROLE),
        ("irsa.dev/audience", "other"),
    ]);
    let (_, out) = run(&simple_pod(), &sa, &config);
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "other"
    );
}

#[test]
fn config_map_mode_injects_for_accounts_without_annotations() {
    let sa = ServiceAccountInfo {
        annotations: Some(Default::default()),
        config_map: Some(crate::ConfigMapEntry {
            role_arn: ROLE.into(),
            audience: "cm-aud".into(),
            use_regional_sts: true,
            token_expiration: 1000,
        }),
        pod_identity: false,
    };
    let (_, out) = run(&simple_pod(), &sa, &Config::default());
    let token = &out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "cm-aud");
    assert_eq!(token["expirationSeconds"], 1000);
    assert_eq!(
        names(&env_of(&out, "/spec/containers/0/env")),
        [
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
}

fn pod_identity_config() -> Config {
    Config {
        container_credentials: ContainerCredentialsConfig {
            full_uri: "http://[fd00:ec2::23]/v1/credentials".into(),
            ..ContainerCredentialsConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn pod_identity_mode_wins_over_role_arn() {
    let sa = ServiceAccountInfo {
        pod_identity: true,
        ..role_sa()
    };
    let mut p = simple_pod();
    p["metadata"]["labels"] = json!({"app": "x"});
    let (_, out) = run(&p, &sa, &pod_identity_config());
    assert_eq!(
        env_of(&out, "/spec/containers/0/env"),
        [
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                "http://[fd00:ec2::23]/v1/credentials".into()
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
                    .into()
            ),
        ]
    );
    let volume = &out["spec"]["volumes"][0];
    assert_eq!(volume["name"], "eks-pod-identity-token");
    let token = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "pods.eks.amazonaws.com");
    assert_eq!(token["path"], "eks-pod-identity-token");
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0],
        json!({"name": "eks-pod-identity-token", "readOnly": true, "mountPath": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"})
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "x", "eks.amazonaws.com/pod-identity": "enabled"})
    );
    // Without labels the whole map is added.
    let (_, out) = run(&simple_pod(), &sa, &pod_identity_config());
    assert_eq!(
        out["metadata"]["labels"],
        json!({"eks.amazonaws.com/pod-identity": "enabled"})
    );
    // Either variable present: neither added.
    let p = pod(
        json!({"containers": [{"name": "a", "env": [{"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "mine"}]}]}),
    );
    let (_, out) = run(&p, &sa, &pod_identity_config());
    assert_eq!(
        names(&env_of(&out, "/spec/containers/0/env")),
        ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    );
}

#[test]
fn pod_identity_default_lifetime_is_jittered_an_explicit_one_is_not() {
    let sa = ServiceAccountInfo {
        pod_identity: true,
        ..ServiceAccountInfo::default()
    };
    let expiration = |p: &Value, jitter| {
        let out = apply(
            p,
            &mutate_with_jitter(p, &sa, &pod_identity_config(), jitter),
        );
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(expiration(&simple_pod(), 0), 79_200);
    assert_eq!(expiration(&simple_pod(), 7_199), 86_399);
    assert_eq!(expiration(&simple_pod(), -1), 86_399);
    for _ in 0..100 {
        let p = simple_pod();
        let e =
            apply(&p, &mutate(&p, &sa, &pod_identity_config()))["spec"]["volumes"][0]["projected"]
                ["sources"][0]["serviceAccountToken"]["expirationSeconds"]
                .as_i64()
                .unwrap();
        assert!((79_200..86_400).contains(&e), "{e}");
    }
    let mut p = simple_pod();
    p["metadata"]["annotations"] = json!({"eks.amazonaws.com/token-expiration": "3600"});
    assert_eq!(expiration(&p, 5), 3600);
}

#[test]
fn join_path_cleans_as_go_does() {
    for (dir, file, want) in [
        ("/a/b", "token", "/a/b/token"),
        ("/a/b/", "token", "/a/b/token"),
        ("/a//b/./c/..", "token", "/a/b/token"),
        ("rel", "t", "rel/t"),
        ("", "t", "t"),
    ] {
        assert_eq!(join_path(dir, file), want);
    }
}

/// Pods built from arbitrary combinations of containers, env, mounts and volumes.
fn arb_pod() -> impl Strategy<Value = Value> {
    let env_name = prop::sample::select(vec![
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_STS_REGIONAL_ENDPOINTS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "OTHER",
    ]);
    let mount = prop::sample::select(vec!["aws-iam-token", "eks-pod-identity-token", "data"]);
    let container = (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::option::of(prop::collection::vec(env_name, 0..4)),
        prop::option::of(prop::collection::vec(mount.clone(), 0..2)),
        any::<bool>(),
    )
        .prop_map(|(name, env, mounts, extra)| {
            let mut c = json!({"name": name, "image": "x"});
            if let Some(env) = env {
                c["env"] = env
                    .iter()
                    .map(|n| json!({"name": n, "value": "v"}))
                    .collect();
            }
            if let Some(m) = mounts {
                c["volumeMounts"] = m
                    .iter()
                    .map(|n| json!({"name": n, "mountPath": "/m"}))
                    .collect();
            }
            if extra {
                c["restartPolicy"] = json!("Always");
                c["someFutureField"] = json!({"x": [1, 2]});
            }
            c
        });
    (
        prop::collection::vec(container.clone(), 0..3),
        prop::collection::vec(container, 0..3),
        prop::option::of(prop::collection::vec(mount, 0..2)),
        prop::option::of(prop::sample::select(vec!["linux", "windows"])),
        prop::option::of(prop::sample::select(vec!["a", "b,c", "600", "x"])),
    )
        .prop_map(|(init, containers, volumes, os, ann)| {
            let mut spec = json!({"containers": containers, "unknownSpecField": 1});
            if !init.is_empty() {
                spec["initContainers"] = json!(init);
            }
            if let Some(v) = volumes {
                spec["volumes"] = v
                    .iter()
                    .map(|n| json!({"name": n, "emptyDir": {}}))
                    .collect();
            }
            if let Some(os) = os {
                spec["nodeSelector"] = json!({"kubernetes.io/os": os});
            }
            let mut p = pod(spec);
            if let Some(a) = ann {
                p["metadata"]["annotations"] = json!({
                    "eks.amazonaws.com/skip-containers": a,
                    "eks.amazonaws.com/token-expiration": a,
                });
            }
            p
        })
}

/// Every value in `before` is still in `after` at the same place, except arrays that grew.
fn preserved(before: &Value, after: &Value) -> bool {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => b
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| preserved(v, av))),
        (Value::Array(b), Value::Array(a)) => {
            // Volumes may gain one at the front; everything else only at the end.
            let shifted = a.len() > b.len() && b.iter().zip(&a[1..]).all(|(x, y)| preserved(x, y));
            shifted || b.iter().zip(a).all(|(x, y)| preserved(x, y))
        }
        _ => before == after,
    }
}

proptest! {
    #[test]
    fn mutation_is_idempotent_and_preserves_every_field(
        p in arb_pod(),
        pod_identity in any::<bool>(),
        region in any::<bool>(),
        sts in any::<bool>(),
        jitter in any::<i64>(),
    ) {
        let config = Config {
            aws_default_region: region.then(|| "eu-west-1".to_owned()),
            sts_regional_endpoints: sts,
            ..Config::default()
        };
        let sa = ServiceAccountInfo { pod_identity, ..role_sa() };
        let ops = mutate_with_jitter(&p, &sa, &config, jitter);
        let out = apply(&p, &ops);
        prop_assert!(preserved(&p, &out), "{p} -> {out}");
        prop_assert_eq!(mutate_with_jitter(&out, &sa, &config, jitter), vec![]);
        for op in &ops {
            prop_assert!(
                op.path == "/spec/volumes" || op.path.ends_with("/-") || op.path == "/spec/volumes/0"
                    || op.path.ends_with("/env") || op.path.ends_with("/volumeMounts")
                    || op.path.starts_with("/metadata/labels"),
                "unexpected path {}", op.path
            );
        }
    }
}

thread_local! {
    /// Comparisons against the skip list made on this thread (see `probe_skip`).
    pub(super) static SKIP_PROBES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[test]
fn skip_containers_costs_one_lookup_per_container_however_long_the_list() {
    let containers: Vec<Value> = (0..MAX_CONTAINERS)
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    // Every container is named in a list of 5,000 (a tenant controls its length).
    let list: Vec<String> = (0..5_000).rev().map(|i| format!("c{i}")).collect();
    let mut p = pod(json!({"containers": containers}));
    p["metadata"]["annotations"] = json!({"eks.amazonaws.com/skip-containers": list.join(",")});
    SKIP_PROBES.with(|c| c.set(0));
    let ops = mutate_with_jitter(&p, &role_sa(), &Config::default(), 0);
    let probes = SKIP_PROBES.with(std::cell::Cell::get);
    assert_eq!(ops.len(), 1, "only the volume: every container is skipped");
    assert_eq!(
        probes, MAX_CONTAINERS,
        "one lookup per container, not one per listed name"
    );
}

fn pod_of(containers: usize, init: usize) -> Value {
    let named = |p: &str, n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"name": format!("{p}{i}")})).collect()
    };
    pod(json!({"containers": named("c", containers), "initContainers": named("i", init)}))
}

#[test]
fn more_containers_than_the_bound_get_no_patch() {
    let sa = role_sa();
    let config = Config::default();
    let at_bound = pod_of(MAX_CONTAINERS - 6, 6);
    let ops = mutate_with_jitter(&at_bound, &sa, &config, 0);
    assert_eq!(
        ops.len(),
        1 + 2 * MAX_CONTAINERS,
        "the volume, env and mount for each"
    );
    assert_eq!(
        super::mutate_with_jitter(&pod_of(MAX_CONTAINERS - 6, 7), &sa, &config, 0),
        Err(Oversized::Containers(MAX_CONTAINERS + 1))
    );
    // A pod the webhook would not patch anyway is not refused for its size.
    let no_role = ServiceAccountInfo::annotated([("eks.amazonaws.com/audience", "x")]);
    assert_eq!(
        super::mutate_with_jitter(&pod_of(2_000, 0), &no_role, &config, 0),
        Ok(vec![])
    );
}

#[test]
fn a_patch_over_the_byte_bound_is_never_answered() {
    let prefix = "arn:aws:iam::111122223333:role/";
    let arn = format!(
        "{prefix}{}",
        "a".repeat(MAX_ANNOTATION_VALUE - prefix.len())
    );
    let sa = ServiceAccountInfo::annotated([("eks.amazonaws.com/role-arn", arn.as_str())]);
    let config = Config::default();
    // About 2.2 KiB per container: 100 fit, 200 do not.
    let ops = mutate_with_jitter(&pod_of(100, 0), &sa, &config, 0);
    let bytes = serde_json::to_vec(&ops).unwrap().len();
    assert!(bytes <= MAX_PATCH_BYTES, "{bytes}");
    assert_eq!(
        ops.iter().map(serialized_len).sum::<usize>() + 1,
        bytes,
        "the count is the serialized length (items and commas, and the brackets less one)"
    );
    assert_eq!(
        super::mutate_with_jitter(&pod_of(200, 0), &sa, &config, 0),
        Err(Oversized::Patch)
    );
}
