//! Black-box tests of `irsa_core::arn`: ARN parsing and display, issuer URLs, session names.

use irsa_core::arn::{
    Arn, ArnError, ArnPart, AssumedRoleArn, OidcProviderArn, PARTITIONS, RoleArn, SessionName,
    issuer_host_path,
};
use proptest::prelude::*;

const ACCOUNT: &str = "123456789012";

fn role(partition: &str, path: &str, name: &str) -> RoleArn {
    RoleArn {
        partition: partition.into(),
        account: ACCOUNT.into(),
        path: path.into(),
        name: name.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Valid ARNs: every kind, every partition, with and without paths.

#[test]
fn role_arns_parse_in_every_partition_with_and_without_path() {
    for partition in PARTITIONS {
        for (path, name) in [
            ("/", "my-role"),
            ("/team/", "r"),
            ("/a/b/c/", "Name_with+=,.@-chars"),
            ("/service-role/", &"x".repeat(64)),
            ("/!\"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~/", "r"),
        ] {
            let s = format!("arn:{partition}:iam::{ACCOUNT}:role{path}{name}");
            let parsed: RoleArn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed, role(partition, path, name), "{s}");
            assert_eq!(parsed.to_string(), s);
            assert_eq!(s.parse::<Arn>(), Ok(Arn::Role(parsed)));
        }
    }
}

#[test]
fn oidc_provider_arns_parse_in_every_partition_with_and_without_path() {
    for partition in PARTITIONS {
        for provider in [
            "token.actions.githubusercontent.com",
            "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            "kind-oidc.s3.eu-west-1.amazonaws.com",
            "issuer.example.com/a/b:c~d",
        ] {
            let s = format!("arn:{partition}:iam::{ACCOUNT}:oidc-provider/{provider}");
            let parsed: OidcProviderArn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.partition, *partition);
            assert_eq!(parsed.account, ACCOUNT);
            assert_eq!(parsed.provider, provider);
            assert_eq!(parsed.to_string(), s);
            assert_eq!(parsed.issuer_url(), format!("https://{provider}"));
            assert_eq!(s.parse::<Arn>(), Ok(Arn::OidcProvider(parsed)));
        }
    }
}

#[test]
fn assumed_role_arns_parse_in_every_partition() {
    for partition in PARTITIONS {
        for (role_name, session) in [
            ("my-role", "irsa-default-app"),
            ("r", "ab"),
            ("R+=,.@_-", "user@example.com"),
            (&"r".repeat(64), &"s".repeat(64)),
        ] {
            let s = format!("arn:{partition}:sts::{ACCOUNT}:assumed-role/{role_name}/{session}");
            let parsed: AssumedRoleArn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.partition, *partition);
            assert_eq!(parsed.account, ACCOUNT);
            assert_eq!(parsed.role_name, role_name);
            assert_eq!(parsed.session_name, session);
            assert_eq!(parsed.to_string(), s);
            assert_eq!(s.parse::<Arn>(), Ok(Arn::AssumedRole(parsed)));
        }
    }
}

#[test]
fn assumed_role_gives_the_role_arn_without_path() {
    let a: AssumedRoleArn = "arn:aws-cn:sts::123456789012:assumed-role/deploy/irsa-ns-sa"
        .parse()
        .unwrap();
    assert_eq!(
        a.role_arn().to_string(),
        "arn:aws-cn:iam::123456789012:role/deploy"
    );
}

#[test]
fn role_arn_new_validates_its_parts() {
    let r = RoleArn::new("aws", ACCOUNT, "/ci/", "deploy").unwrap();
    assert_eq!(r.to_string(), "arn:aws:iam::123456789012:role/ci/deploy");
    let e = RoleArn::new("aws", ACCOUNT, "ci", "deploy").unwrap_err();
    assert_eq!(e.part(), ArnPart::Path);
    let e = RoleArn::new("aws", "12", "/", "deploy").unwrap_err();
    assert_eq!(e.part(), ArnPart::Account);
}

#[test]
fn arns_serialize_as_strings() {
    let s = "arn:aws:iam::123456789012:role/a/b";
    let r: RoleArn = s.parse().unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{s}\""));
    let back: RoleArn = serde_json::from_str(&format!("\"{s}\"")).unwrap();
    assert_eq!(back, r);
    let any: Arn = serde_json::from_str(&format!("\"{s}\"")).unwrap();
    assert_eq!(any, Arn::Role(r));
    let err = serde_json::from_str::<RoleArn>("\"arn:aws:iam::1:role/x\"").unwrap_err();
    assert!(err.to_string().contains("account"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Invalid ARNs: each error names the failing part.

/// Checks that `result` failed on `part` and that the message mentions `needle`.
fn assert_fails<T: std::fmt::Debug>(
    input: &str,
    result: Result<T, ArnError>,
    part: ArnPart,
    needle: &str,
) {
    let err = match result {
        Ok(v) => panic!("{input:?} parsed as {v:?}, expected a {part} error"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert_eq!(err.part(), part, "{input:?}: wrong part in {msg}");
    assert!(
        msg.contains(needle),
        "{input:?}: message {msg:?} does not mention {needle:?}"
    );
}

#[test]
fn bad_role_arns_name_the_failing_part() {
    let long_path = format!("arn:aws:iam::{ACCOUNT}:role/{}/r", "p".repeat(511));
    let long_arn = format!("arn:aws:iam::{ACCOUNT}:role/{}/r", "p/".repeat(1100));
    let cases: &[(&str, ArnPart, &str)] = &[
        ("", ArnPart::Prefix, "arn:"),
        ("my-role", ArnPart::Prefix, "arn:"),
        ("arn:aws:iam::123456789012", ArnPart::Whole, "six"),
        (
            "urn:aws:iam::123456789012:role/r",
            ArnPart::Prefix,
            "\"urn\"",
        ),
        ("ARN:aws:iam::123456789012:role/r", ArnPart::Prefix, "arn:"),
        (
            "arn:aws-x:iam::123456789012:role/r",
            ArnPart::Partition,
            "the partition \"aws-x\"",
        ),
        (
            "arn::iam::123456789012:role/r",
            ArnPart::Partition,
            "partition",
        ),
        (
            "arn:AWS:iam::123456789012:role/r",
            ArnPart::Partition,
            "partition",
        ),
        (
            "arn:aws:s3::123456789012:role/r",
            ArnPart::Service,
            "the service must be \"iam\"",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/s",
            ArnPart::Service,
            "use the role ARN",
        ),
        (
            "arn:aws:iam:us-east-1:123456789012:role/r",
            ArnPart::Region,
            "region must be empty",
        ),
        (
            "arn:aws:iam::12345678901:role/r",
            ArnPart::Account,
            "12 digits",
        ),
        (
            "arn:aws:iam::1234567890123:role/r",
            ArnPart::Account,
            "account",
        ),
        (
            "arn:aws:iam::12345678901a:role/r",
            ArnPart::Account,
            "account",
        ),
        ("arn:aws:iam:::role/r", ArnPart::Account, "account"),
        (
            "arn:aws:iam::123456789012:user/r",
            ArnPart::ResourceType,
            "\"role/\"",
        ),
        (
            "arn:aws:iam::123456789012:role",
            ArnPart::ResourceType,
            "\"role/\"",
        ),
        (
            "arn:aws:iam::123456789012:role/",
            ArnPart::RoleName,
            "role name is empty",
        ),
        (
            "arn:aws:iam::123456789012:role/team/",
            ArnPart::RoleName,
            "role name is empty",
        ),
        (
            "arn:aws:iam::123456789012:role/my role",
            ArnPart::RoleName,
            "role name",
        ),
        (
            "arn:aws:iam::123456789012:role/r:x",
            ArnPart::RoleName,
            "':'",
        ),
        (
            "arn:aws:iam::123456789012:role/rôle",
            ArnPart::RoleName,
            "role name",
        ),
        (
            "arn:aws:iam::123456789012:role/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ArnPart::RoleName,
            "at most 64",
        ),
        ("arn:aws:iam::123456789012:role//r", ArnPart::Path, "path"),
        (
            "arn:aws:iam::123456789012:role/a b/r",
            ArnPart::Path,
            "path",
        ),
        ("arn:aws:iam::123456789012:role/é/r", ArnPart::Path, "path"),
        (&long_path, ArnPart::Path, "at most 512"),
        (&long_arn, ArnPart::Whole, "at most 2048"),
    ];
    assert!(cases.len() >= 15);
    for (input, part, needle) in cases {
        assert_fails(input, input.parse::<RoleArn>(), *part, needle);
        assert!(
            input
                .parse::<RoleArn>()
                .unwrap_err()
                .to_string()
                .contains("invalid role ARN"),
            "{input}"
        );
    }
}

#[test]
fn bad_oidc_provider_arns_name_the_failing_part() {
    let long = format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}.com",
        "a".repeat(252)
    );
    let cases: &[(&str, ArnPart, &str)] = &[
        ("oidc.example.com", ArnPart::Prefix, "arn:"),
        ("arn:aws", ArnPart::Whole, "six"),
        (
            "arn:aws-mars:iam::123456789012:oidc-provider/h",
            ArnPart::Partition,
            "partition",
        ),
        (
            "arn:aws:sts::123456789012:oidc-provider/h",
            ArnPart::Service,
            "service",
        ),
        (
            "arn:aws:iam:eu-west-1:123456789012:oidc-provider/h",
            ArnPart::Region,
            "region",
        ),
        (
            "arn:aws:iam::abc:oidc-provider/h",
            ArnPart::Account,
            "account",
        ),
        (
            "arn:aws:iam::123456789012:saml-provider/h",
            ArnPart::ResourceType,
            "oidc-provider/",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider",
            ArnPart::ResourceType,
            "oidc-provider/",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/",
            ArnPart::Provider,
            "empty",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/https://h.example.com",
            ArnPart::Provider,
            "scheme",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h.example.com/",
            ArnPart::Provider,
            "ends with '/'",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h.example.com:8443",
            ArnPart::Provider,
            "port",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider//id/x",
            ArnPart::Provider,
            "empty host",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h_x.com",
            ArnPart::Provider,
            "host",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h..com",
            ArnPart::Provider,
            "empty label",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h.com//x",
            ArnPart::Provider,
            "empty segment",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h.com/a b",
            ArnPart::Provider,
            "path",
        ),
        (
            "arn:aws:iam::123456789012:oidc-provider/h.com/a?b",
            ArnPart::Provider,
            "'?'",
        ),
        (&long, ArnPart::Provider, "at most 255"),
    ];
    assert!(cases.len() >= 15);
    for (input, part, needle) in cases {
        assert_fails(input, input.parse::<OidcProviderArn>(), *part, needle);
    }
}

#[test]
fn bad_assumed_role_arns_name_the_failing_part() {
    let cases: &[(&str, ArnPart, &str)] = &[
        ("assumed-role/r/s", ArnPart::Prefix, "arn:"),
        ("arn:aws:sts", ArnPart::Whole, "six"),
        (
            "arn:aws-iso-z:sts::123456789012:assumed-role/r/s",
            ArnPart::Partition,
            "partition",
        ),
        (
            "arn:aws:iam::123456789012:assumed-role/r/s",
            ArnPart::Service,
            "\"sts\"",
        ),
        (
            "arn:aws:sts:us-east-1:123456789012:assumed-role/r/s",
            ArnPart::Region,
            "region",
        ),
        (
            "arn:aws:sts::0:assumed-role/r/s",
            ArnPart::Account,
            "account",
        ),
        (
            "arn:aws:sts::123456789012:federated-user/bob",
            ArnPart::ResourceType,
            "assumed-role/",
        ),
        (
            "arn:aws:sts::123456789012:role/r",
            ArnPart::ResourceType,
            "assumed-role/",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r",
            ArnPart::SessionName,
            "session name is missing",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role//s1",
            ArnPart::RoleName,
            "role name is empty",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r r/s1",
            ArnPart::RoleName,
            "role name",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/",
            ArnPart::SessionName,
            "session name",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/s",
            ArnPart::SessionName,
            "2 to 64",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/a/b",
            ArnPart::SessionName,
            "'/'",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/a b",
            ArnPart::SessionName,
            "' '",
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/r/sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
            ArnPart::SessionName,
            "2 to 64",
        ),
    ];
    assert!(cases.len() >= 15);
    for (input, part, needle) in cases {
        assert_fails(input, input.parse::<AssumedRoleArn>(), *part, needle);
    }
}

#[test]
fn bad_generic_arns_name_the_failing_part() {
    let cases: &[(&str, ArnPart, &str)] = &[
        ("arn:aws:s3:::bucket", ArnPart::Service, "\"iam\""),
        (
            "arn:aws:iam::123456789012:user/bob",
            ArnPart::ResourceType,
            "\"user\"",
        ),
        (
            "arn:aws:sts::123456789012:federated-user/bob",
            ArnPart::ResourceType,
            "assumed-role",
        ),
        (
            "arn:aws:iam::123456789012:role/a b",
            ArnPart::RoleName,
            "role name",
        ),
        ("arn:aws:iam::12:role/r", ArnPart::Account, "account"),
    ];
    for (input, part, needle) in cases {
        assert_fails(input, input.parse::<Arn>(), *part, needle);
    }
}

#[test]
fn errors_quote_at_most_a_prefix_of_huge_input() {
    let huge = format!("arn:aws:iam::{ACCOUNT}:role/{}", "x".repeat(100_000));
    let msg = huge.parse::<RoleArn>().unwrap_err().to_string();
    assert!(msg.len() < 600, "{} bytes", msg.len());
}

// ---------------------------------------------------------------------------------------------
// Issuer URLs.

#[test]
fn issuer_urls_become_host_and_path() {
    for (url, want) in [
        (
            "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC",
        ),
        (
            "https://oidc.eks.us-east-1.amazonaws.com/id/ABC/",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC",
        ),
        (
            "https://token.actions.githubusercontent.com",
            "token.actions.githubusercontent.com",
        ),
        (
            "https://token.actions.githubusercontent.com/",
            "token.actions.githubusercontent.com",
        ),
        ("HTTPS://issuer.example.com/x", "issuer.example.com/x"),
    ] {
        assert_eq!(issuer_host_path(url).as_deref(), Ok(want), "{url}");
    }
    let p =
        OidcProviderArn::from_issuer("aws-us-gov", ACCOUNT, "https://h.example.com/id/1/").unwrap();
    assert_eq!(
        p.to_string(),
        "arn:aws-us-gov:iam::123456789012:oidc-provider/h.example.com/id/1"
    );
}

#[test]
fn bad_issuer_urls_are_rejected_without_echoing_secrets() {
    for (url, needle) in [
        ("http://h.example.com", "scheme must be https"),
        ("h.example.com/id/x", "https://"),
        ("https://", "host is empty"),
        ("https:///id/x", "host is empty"),
        ("https://user:hunter2@h.example.com/", "userinfo"),
        ("https://h.example.com/?token=hunter2", "query"),
        ("https://h.example.com/#hunter2", "fragment"),
        ("https://h.example.com:8443/", "port"),
        ("https://h.example.com//", "ends with '/'"),
        ("https://h.example.com/a b", "path"),
    ] {
        let err = issuer_host_path(url).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.part(), ArnPart::IssuerUrl, "{url}");
        assert!(msg.contains(needle), "{url}: {msg}");
        assert!(!msg.contains("hunter2"), "{url}: secret echoed in {msg}");
        assert!(
            OidcProviderArn::from_issuer("aws", ACCOUNT, url).is_err(),
            "{url}"
        );
    }
    let e = OidcProviderArn::from_issuer("aws", "1234", "https://h.example.com").unwrap_err();
    assert_eq!(e.part(), ArnPart::Account);
    let e = OidcProviderArn::from_issuer("gcp", ACCOUNT, "https://h.example.com").unwrap_err();
    assert_eq!(e.part(), ArnPart::Partition);
}

// ---------------------------------------------------------------------------------------------
// Session names.

#[test]
fn session_name_validation_table() {
    let ok = [
        "ab".to_owned(),
        "x".repeat(64),
        "irsa-default-app".to_owned(),
        "a_".to_owned(),
        "a+".to_owned(),
        "a=".to_owned(),
        "a,".to_owned(),
        "a.".to_owned(),
        "a@".to_owned(),
        "a-".to_owned(),
        "AZaz09_+=,.@-".to_owned(),
    ];
    for name in &ok {
        let s = SessionName::new(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.as_str(), name);
        assert_eq!(s.to_string(), *name);
    }
    let bad: &[(String, &str)] = &[
        (String::new(), "0 characters"),
        ("a".into(), "1 characters"),
        ("x".repeat(65), "65 characters"),
        ("a b".into(), "' '"),
        ("a/b".into(), "'/'"),
        ("a:b".into(), "':'"),
        ("ñame".into(), "'ñ'"),
        ("a\tb".into(), "'\\t'"),
    ];
    for (name, needle) in bad {
        let err = SessionName::new(name).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.part(), ArnPart::SessionName, "{name:?}");
        assert!(msg.starts_with("invalid session name"), "{msg}");
        assert!(msg.contains(needle), "{name:?}: {msg}");
    }
}

#[test]
fn derive_keeps_valid_names() {
    for name in ["irsa-default-app", "ab", &"y".repeat(64)] {
        assert_eq!(SessionName::derive(name).as_str(), name);
    }
}

#[test]
fn derive_replaces_invalid_characters() {
    assert_eq!(SessionName::derive("irsa:ns/sa").as_str(), "irsa-ns-sa");
    assert_eq!(SessionName::derive("a b").as_str(), "a-b");
    assert_eq!(SessionName::derive("café").as_str(), "caf-");
}

#[test]
fn derive_pads_short_names() {
    assert_eq!(SessionName::derive("").as_str(), "__");
    assert_eq!(SessionName::derive("a").as_str(), "a_");
    assert_eq!(SessionName::derive("/").as_str(), "-_");
}

#[test]
fn derive_truncates_and_hashes_long_names() {
    let ns = "n".repeat(63);
    let natural = format!("irsa-{ns}-my-service-account");
    let derived = SessionName::derive(&natural);
    let s = derived.as_str();
    assert_eq!(s.len(), 64);
    assert!(natural.starts_with(&s[..53]), "{s}");
    assert_eq!(&s[53..54], "-");
    assert!(s[54..].bytes().all(|b| b.is_ascii_hexdigit()), "{s}");
    assert!(SessionName::new(s).is_ok());
    // Deterministic.
    assert_eq!(SessionName::derive(&natural), derived);
}

#[test]
fn derive_keeps_long_names_with_a_common_prefix_distinct() {
    let prefix = "p".repeat(64);
    let a = SessionName::derive(&format!("{prefix}-a"));
    let b = SessionName::derive(&format!("{prefix}-b"));
    let c = SessionName::derive(&format!("{prefix}a"));
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(b, c);
    // Also when the difference is only in characters that get replaced.
    assert_ne!(
        SessionName::derive(&format!("{prefix}/x")),
        SessionName::derive(&format!("{prefix}:x"))
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn partition() -> impl Strategy<Value = String> {
    proptest::sample::select(PARTITIONS).prop_map(str::to_owned)
}

const ROLE_NAME: &str = "[A-Za-z0-9_+=,.@-]{1,64}";
const SESSION: &str = "[A-Za-z0-9_+=,.@-]{2,64}";
const NAME_64: &str = "[A-Za-z0-9_+=,.@-]{64}";

fn role_arn() -> impl Strategy<Value = RoleArn> {
    (
        partition(),
        "[0-9]{12}",
        prop_oneof![Just("/".to_owned()), "/[!-~]{1,40}/"],
        ROLE_NAME,
    )
        .prop_map(|(partition, account, path, name)| RoleArn {
            partition,
            account,
            path,
            name,
        })
}

fn oidc_provider_arn() -> impl Strategy<Value = OidcProviderArn> {
    (
        partition(),
        "[0-9]{12}",
        "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,3}",
        r#"(/[!"$-.0->@-~]{1,12}){0,4}"#,
    )
        .prop_map(|(partition, account, host, path)| OidcProviderArn {
            partition,
            account,
            provider: format!("{host}{path}"),
        })
}

fn assumed_role_arn() -> impl Strategy<Value = AssumedRoleArn> {
    (partition(), "[0-9]{12}", ROLE_NAME, SESSION).prop_map(
        |(partition, account, role_name, session_name)| AssumedRoleArn {
            partition,
            account,
            role_name,
            session_name,
        },
    )
}

proptest! {
    #[test]
    fn role_arn_round_trips(arn in role_arn()) {
        let s = arn.to_string();
        prop_assert_eq!(s.parse::<RoleArn>(), Ok(arn.clone()));
        prop_assert_eq!(s.parse::<Arn>(), Ok(Arn::Role(arn)));
    }

    #[test]
    fn oidc_provider_arn_round_trips(arn in oidc_provider_arn()) {
        let s = arn.to_string();
        prop_assert_eq!(s.parse::<OidcProviderArn>(), Ok(arn.clone()));
        prop_assert_eq!(s.parse::<Arn>(), Ok(Arn::OidcProvider(arn.clone())));
        let from_issuer =
            OidcProviderArn::from_issuer(&arn.partition, &arn.account, &format!("{}/", arn.issuer_url()));
        prop_assert_eq!(from_issuer, Ok(arn));
    }

    #[test]
    fn assumed_role_arn_round_trips(arn in assumed_role_arn()) {
        let s = arn.to_string();
        prop_assert_eq!(s.parse::<AssumedRoleArn>(), Ok(arn.clone()));
        prop_assert_eq!(s.parse::<Arn>(), Ok(Arn::AssumedRole(arn)));
    }

    #[test]
    fn parsing_never_panics(s in "arn:[a-z-]{0,12}:[a-z]{0,4}:[a-z0-9-]{0,4}:[0-9]{0,13}:\\PC{0,80}") {
        let _ = s.parse::<Arn>();
        let _ = s.parse::<RoleArn>();
        let _ = s.parse::<OidcProviderArn>();
        let _ = s.parse::<AssumedRoleArn>();
        let _ = issuer_host_path(&s);
    }

    #[test]
    fn derive_always_yields_a_valid_name(natural in "\\PC{0,120}|.{0,200}") {
        let derived = SessionName::derive(&natural);
        prop_assert_eq!(SessionName::new(derived.as_str()), Ok(derived.clone()));
        prop_assert_eq!(SessionName::derive(&natural), derived);
    }

    #[test]
    fn derive_keeps_distinct_long_names_distinct(
        prefix in NAME_64,
        a in "\\PC{1,20}",
        b in "\\PC{1,20}",
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(
            SessionName::derive(&format!("{prefix}{a}")),
            SessionName::derive(&format!("{prefix}{b}"))
        );
    }
}

/// Service-account session names are unambiguous: no two (namespace, name) pairs share one,
/// whatever '-' and '.' they contain, and every one is a valid STS session name.
#[test]
fn service_account_session_names_never_collide() {
    let readable = SessionName::for_service_account("team", "puller");
    assert_eq!(
        readable.as_str(),
        "irsa-team.puller",
        "short names stay readable"
    );
    assert_ne!(
        SessionName::for_service_account("a-b", "c"),
        SessionName::for_service_account("a", "b-c"),
        "namespace a-b, sa c vs namespace a, sa b-c"
    );
    // Every pair over a small alphabet of name characters (service-account names may hold '.').
    let alphabet = ["a", "b", "-", "."];
    let mut words = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = words
            .iter()
            .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
            .collect();
        words.extend(longer);
    }
    words.sort();
    words.dedup();
    let names: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !w.is_empty())
        .collect();
    let namespaces: Vec<&str> = names.iter().copied().filter(|w| !w.contains('.')).collect();
    // Long names, sharing long prefixes, past the 64-character limit.
    let long_ns = "n".repeat(63);
    let long_a = format!("{}-a", "s".repeat(250));
    let long_b = format!("{}-b", "s".repeat(250));
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for ns in namespaces.iter().copied().chain([long_ns.as_str()]) {
        for name in names
            .iter()
            .copied()
            .chain([long_a.as_str(), long_b.as_str()])
        {
            pairs.push((ns, name));
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (ns, name) in pairs {
        let session = SessionName::for_service_account(ns, name);
        assert_eq!(
            SessionName::new(session.as_str()).as_ref(),
            Ok(&session),
            "{ns}/{name}: {session} is not a valid session name"
        );
        assert!(session.as_str().starts_with("irsa-"), "{session}");
        if let Some(other) = seen.insert(session.to_string(), (ns, name)) {
            panic!(
                "{ns}/{name} and {}/{} share session name {session}",
                other.0, other.1
            );
        }
    }
    let long = SessionName::for_service_account(&long_ns, &long_a);
    assert!(
        long.as_str()
            .starts_with(&format!("irsa-{}", &long_ns[..20])),
        "a readable prefix: {long}"
    );
}
