//! `irsa registry parse`, run as a user would.

mod common;

use common::irsa;

#[test]
fn json_output_is_one_object_per_input_with_stable_fields() {
    let run = irsa(&[
        "registry",
        "parse",
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team/app:1.2.3",
        "public.ecr.aws/nginx/nginx",
        "cgr.dev/chainguard/static@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "localhost:5000/x",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json();
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 4);
    let ecr = &rows[0];
    assert_eq!(ecr["kind"], "ecr");
    assert_eq!(
        ecr["host"],
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"
    );
    assert_eq!(ecr["repository"], "team/app");
    assert_eq!(ecr["account"], "123456789012");
    assert_eq!(ecr["region"], "us-gov-west-1");
    assert_eq!(ecr["partition"], "aws-us-gov");
    assert_eq!(ecr["fips"], true);
    assert_eq!(ecr["dual_stack"], false);
    assert_eq!(rows[1]["kind"], "ecr-public");
    assert_eq!(rows[1]["account"], serde_json::Value::Null);
    assert_eq!(rows[2]["kind"], "chainguard");
    assert_eq!(rows[2]["repository"], "chainguard/static");
    assert_eq!(rows[3]["kind"], "other");
    assert_eq!(rows[3]["host"], "localhost:5000");
    for row in rows {
        for key in [
            "input",
            "kind",
            "host",
            "repository",
            "account",
            "region",
            "partition",
            "fips",
            "dual_stack",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
}

#[test]
fn lookalike_hosts_are_never_ecr() {
    let run = irsa(&[
        "registry",
        "parse",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io/app",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com/app",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json();
    for row in rows.as_array().expect("array") {
        assert_eq!(row["kind"], "other", "{row}");
    }
    // Each says why it is not ECR.
    assert!(
        rows[0]["note"].as_str().expect("note").contains("not ECR"),
        "{rows}"
    );
    assert!(
        rows[1]["note"].as_str().expect("note").contains("12"),
        "{rows}"
    );
    let plain = irsa(&[
        "registry",
        "parse",
        "registry.example.com/app",
        "-o",
        "json",
    ])
    .json();
    assert_eq!(plain[0]["note"], serde_json::Value::Null);
}

#[test]
fn text_output_names_the_fields() {
    let run = irsa(&[
        "registry",
        "parse",
        "123456789012.dkr-ecr.eu-west-1.on.aws/team/app",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for want in [
        "kind        ecr",
        "account     123456789012",
        "region      eu-west-1",
        "dual-stack  true",
    ] {
        assert!(
            run.stdout.contains(want),
            "{want:?} not in:\n{}",
            run.stdout
        );
    }
}

#[test]
fn an_unparsable_reference_exits_2_with_the_reason_and_keeps_the_others() {
    let run = irsa(&[
        "registry",
        "parse",
        "public.ecr.aws/nginx/nginx",
        "registry.example.com/App:latest",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("lowercase"), "{}", run.stderr);
    let rows = run.json();
    assert_eq!(rows[0]["kind"], "ecr-public");
    assert!(
        rows[1]["error"]
            .as_str()
            .expect("error")
            .contains("lowercase")
    );
}

#[test]
fn no_input_is_a_usage_error() {
    let run = irsa(&["registry", "parse"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("IMAGE_OR_HOST"), "{}", run.stderr);
}

#[test]
fn a_new_region_under_aws_domains_is_ecr_and_the_note_says_so() {
    let run = irsa(&[
        "registry",
        "parse",
        "123456789012.dkr.ecr.lala-land-1.amazonaws.com/app",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
        "123456789012.dkr.ecr.lala-land-1.amazonaws.com.evil.example/app",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = run.json();
    let new = &rows[0];
    assert_eq!(new["kind"], "ecr");
    assert_eq!(new["region"], "lala-land-1");
    assert_eq!(new["partition"], "aws");
    let note = new["note"].as_str().expect("a note");
    assert!(
        note.contains("not one irsa knows yet") && note.contains("AWS's own"),
        "{note}"
    );
    assert_eq!(
        rows[1]["note"],
        serde_json::Value::Null,
        "known regions need no note"
    );
    assert_eq!(rows[2]["kind"], "other", "lookalike domains stay refused");
}
