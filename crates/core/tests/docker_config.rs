//! Black-box tests of `irsa_core::docker_config`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use irsa_core::docker_config::{
    DockerConfig, DockerConfigError, MAX_DOCKER_CONFIG_LEN, RegistryAuth,
};
use irsa_core::secret::SecretString;
use proptest::prelude::*;

const PASSWORD: &str = "hunter2:s3cr3t";

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn ecr() -> DockerConfig {
    let mut c = DockerConfig::new();
    c.insert(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "AWS",
        SecretString::from(PASSWORD),
    );
    c
}

#[test]
fn render_writes_sorted_compact_json_with_all_three_fields() {
    let mut c = ecr();
    c.insert("cgr.dev", "u\"ser", SecretString::from("p\\w\n"));
    let json = c.render();
    let want = format!(
        concat!(
            r#"{{"auths":{{"#,
            r#""123456789012.dkr.ecr.us-east-1.amazonaws.com":{{"auth":"{}","password":"hunter2:s3cr3t","username":"AWS"}},"#,
            r#""cgr.dev":{{"auth":"{}","password":"p\\w\n","username":"u\"ser"}}"#,
            r#"}}}}"#
        ),
        b64("AWS:hunter2:s3cr3t"),
        b64("u\"ser:p\\w\n"),
    );
    assert_eq!(json.expose(), want);
    // Any JSON reader agrees.
    let v: serde_json::Value = serde_json::from_str(json.expose()).unwrap();
    assert_eq!(v["auths"]["cgr.dev"]["password"], "p\\w\n");
    assert_eq!(DockerConfig::parse(json.expose().as_bytes()), Ok(c));
}

#[test]
fn render_of_an_empty_config() {
    assert_eq!(DockerConfig::new().render().expose(), r#"{"auths":{}}"#);
    assert_eq!(
        DockerConfig::parse(br#"{"auths":{}}"#),
        Ok(DockerConfig::new())
    );
}

#[test]
fn registry_auth_helpers() {
    let a = RegistryAuth::new("AWS", SecretString::from(PASSWORD));
    assert_eq!(a.auth().expose(), b64("AWS:hunter2:s3cr3t"));
    let c = ecr();
    assert_eq!(c.len(), 1);
    assert!(!c.is_empty());
    assert_eq!(
        c.get("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        Some(&a)
    );
    assert_eq!(c.get("cgr.dev"), None);
}

#[test]
fn parses_what_kubectl_create_secret_docker_registry_writes() {
    // `kubectl create secret docker-registry regcred --docker-server=my-registry.example:5000
    //  --docker-username=tiger --docker-password=pass1234 --docker-email=tiger@acme.example
    //  -o yaml` stores this in `data[".dockerconfigjson"]` (Go's field order, no spaces).
    let data = "eyJhdXRocyI6eyJteS1yZWdpc3RyeS5leGFtcGxlOjUwMDAiOnsidXNlcm5hbWUiOiJ0aWdlciIsInBhc3N3b3JkIjoicGFzczEyMzQiLCJlbWFpbCI6InRpZ2VyQGFjbWUuZXhhbXBsZSIsImF1dGgiOiJkR2xuWlhJNmNHRnpjekV5TXpRPSJ9fX0=";
    let json = STANDARD.decode(data).unwrap();
    assert_eq!(
        std::str::from_utf8(&json).unwrap(),
        r#"{"auths":{"my-registry.example:5000":{"username":"tiger","password":"pass1234","email":"tiger@acme.example","auth":"dGlnZXI6cGFzczEyMzQ="}}}"#
    );
    let c = DockerConfig::parse(&json).unwrap();
    let mut want = DockerConfig::new();
    want.insert(
        "my-registry.example:5000",
        "tiger",
        SecretString::from("pass1234"),
    );
    assert_eq!(c, want);
}

#[test]
fn accepts_each_credential_form_and_ignores_extra_fields() {
    let auth = b64("AWS:hunter2:s3cr3t");
    let key = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    for json in [
        format!(r#"{{"auths":{{"{key}":{{"auth":"{auth}"}}}}}}"#),
        format!(r#"{{"auths":{{"{key}":{{"username":"AWS","password":"hunter2:s3cr3t"}}}}}}"#),
        format!(
            r#"{{"auths":{{"{key}":{{"auth":"{auth}","username":"AWS","password":"hunter2:s3cr3t"}}}}}}"#
        ),
        // Docker's own config.json: extra fields, extra top-level keys, pretty-printed.
        format!(
            "{{\n\t\"auths\": {{\n\t\t\"{key}\": {{\n\t\t\t\"auth\": \"{auth}\",\n\t\t\t\"email\": \"a@b.c\",\n\t\t\t\"identitytoken\": \"tok\",\n\t\t\t\"registrytoken\": \"rt\",\n\t\t\t\"serveraddress\": \"{key}\"\n\t\t}}\n\t}},\n\t\"credsStore\": \"desktop\",\n\t\"credHelpers\": {{\"public.ecr.aws\": \"ecr-login\"}},\n\t\"HttpHeaders\": {{\"User-Agent\": \"Docker-Client/19.03\"}}\n}}"
        ),
        // Unpadded base64, an empty username/password with a full auth, nulls.
        format!(
            r#"{{"auths":{{"{key}":{{"auth":"{}","email":null,"identitytoken":null}}}}}}"#,
            auth.trim_end_matches('=')
        ),
        format!(
            r#"{{"auths":{{"{key}":{{"auth":"","username":"AWS","password":"hunter2:s3cr3t"}}}}}}"#
        ),
        format!(r#"{{"auths":{{"{key}":{{"auth":"{auth}","username":null}}}}}}"#),
    ] {
        assert_eq!(DockerConfig::parse(json.as_bytes()), Ok(ecr()), "{json}");
    }
}

#[test]
fn auth_is_split_at_the_first_colon() {
    let json = format!(r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#, b64("user:pa:ss:"));
    let c = DockerConfig::parse(json.as_bytes()).unwrap();
    assert_eq!(c.auths["r"].username, "user");
    assert_eq!(c.auths["r"].password.expose(), "pa:ss:");
}

#[test]
fn legacy_dockercfg_is_read_by_parse_legacy_and_refused_by_parse_with_a_hint() {
    let legacy = format!(
        r#"{{"https://index.docker.io/v1/":{{"auth":"{}","email":"a@b.c"}}}}"#,
        b64("bob:hunter2:s3cr3t")
    );
    let c = DockerConfig::parse_legacy(legacy.as_bytes()).unwrap();
    assert_eq!(c.auths["https://index.docker.io/v1/"].username, "bob");
    let err = DockerConfig::parse(legacy.as_bytes()).unwrap_err();
    assert!(matches!(err, DockerConfigError::MissingAuths { .. }));
    assert!(err.to_string().contains("legacy .dockercfg"), "{err}");

    let err = DockerConfig::parse(br#"{"credsStore":"desktop"}"#).unwrap_err();
    assert!(
        err.to_string().contains("\"auths\" object is missing"),
        "{err}"
    );
    assert!(!err.to_string().contains("legacy"), "{err}");
}

/// Every way an entry can be wrong: the error names the registry key and the field, and never
/// contains the password or the `auth` value.
#[test]
fn bad_configs_give_precise_errors_without_secrets() {
    let good_auth = b64(&format!("AWS:{PASSWORD}"));
    let no_colon = b64("AWShunter2s3cr3t");
    let not_utf8 = STANDARD.encode(b"AWS:hunter2\xff\xfe");
    let other_pw = b64("AWS:hunter2:other");
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "not valid JSON at line 1 column 0"),
        (r#"{"auths":{"r":{"auth":"x"}"#.into(), "not valid JSON"),
        (r#"{"auths":{}} trailing"#.into(), "trailing characters"),
        (
            "[1,2]".into(),
            "the document must be an object, not an array",
        ),
        (
            r#""hunter2:s3cr3t""#.into(),
            "the document must be an object, not a string",
        ),
        (
            r#"{"auths":[]}"#.into(),
            "auths must be an object, not an array",
        ),
        (
            r#"{"auths":{},"auths":{}}"#.into(),
            r#"the top-level object has the key "auths" twice"#,
        ),
        (
            r#"{"auths":{"r":"hunter2:s3cr3t"}}"#.into(),
            r#"auths["r"] must be an object, not a string"#,
        ),
        (
            r#"{"auths":{"r":{"auth":42}}}"#.into(),
            r#"auths["r"].auth must be a string, not a number"#,
        ),
        (
            r#"{"auths":{"r":{"username":"AWS","password":["hunter2:s3cr3t"]}}}"#.into(),
            r#"auths["r"].password must be a string, not an array"#,
        ),
        (
            r#"{"auths":{"r":{}}}"#.into(),
            r#"auths["r"] has no credentials"#,
        ),
        (
            r#"{"auths":{"r":{"identitytoken":"hunter2:s3cr3t"}}}"#.into(),
            r#"auths["r"] has no credentials"#,
        ),
        (
            r#"{"auths":{"r":{"username":"AWS"}}}"#.into(),
            r#"("password" is missing)"#,
        ),
        (
            r#"{"auths":{"r":{"password":"hunter2:s3cr3t"}}}"#.into(),
            r#"("username" is missing)"#,
        ),
        (
            r#"{"auths":{"r":{"auth":"hunter2:s3cr3t"}}}"#.into(),
            r#"auths["r"].auth is not valid base64"#,
        ),
        (
            r#"{"auths":{"r":{"auth":"aHVudGVyMg=*"}}}"#.into(),
            r#"auths["r"].auth is not valid base64"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":"{not_utf8}"}}}}}}"#),
            r#"auths["r"].auth does not decode to UTF-8"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":"{no_colon}"}}}}}}"#),
            r#"auths["r"].auth has no ':'"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":"{good_auth}","username":"bob"}}}}}}"#),
            r#"auths["r"].auth disagrees with auths["r"].username"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":"{other_pw}","password":"hunter2:s3cr3t"}}}}}}"#),
            r#"auths["r"].auth disagrees with auths["r"].password"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":"{good_auth}"}},"r":{{"auth":"{good_auth}"}}}}}}"#),
            r#"auths has the key "r" twice"#,
        ),
    ];
    for (json, needle) in &cases {
        let err = DockerConfig::parse(json.as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid docker config: "), "{msg}");
        assert!(
            msg.contains(needle),
            "{json}\n  got: {msg}\n want: {needle}"
        );
        for secret in [
            "hunter2", "s3cr3t", &good_auth, &no_colon, &not_utf8, &other_pw,
        ] {
            assert!(!msg.contains(secret), "{json}: secret in {msg}");
            assert!(
                !format!("{err:?}").contains(secret),
                "{json}: secret in {err:?}"
            );
        }
    }
}

#[test]
fn rejects_input_over_one_mebibyte() {
    let mut big = br#"{"auths":{}}"#.to_vec();
    big.resize(MAX_DOCKER_CONFIG_LEN + 1, b' ');
    let err = DockerConfig::parse(&big).unwrap_err();
    assert_eq!(
        err,
        DockerConfigError::TooLarge {
            len: MAX_DOCKER_CONFIG_LEN + 1,
            max: MAX_DOCKER_CONFIG_LEN
        }
    );
    big.truncate(MAX_DOCKER_CONFIG_LEN);
    assert_eq!(DockerConfig::parse(&big), Ok(DockerConfig::new()));
}

#[test]
fn deeply_nested_input_does_not_overflow_the_stack() {
    let arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    for (json, needle) in [
        (arrays.clone(), "must be an object, not an array"),
        (
            format!(r#"{{"auths":{arrays}}}"#),
            "auths must be an object",
        ),
        (
            format!(r#"{{"auths":{{"r":{arrays}}}}}"#),
            r#"auths["r"] must be an object"#,
        ),
        (
            format!(r#"{{"auths":{{"r":{{"auth":{arrays}}}}}}}"#),
            "must be a string",
        ),
        (
            format!(r#"{{"auths":{{"r":{{"x":{objects}}}}}}}"#),
            "has no credentials",
        ),
        (format!(r#"{{"x":{objects},"auths":{{}}}}"#), ""),
    ] {
        match DockerConfig::parse(json.as_bytes()) {
            Ok(c) => assert!(needle.is_empty() && c.is_empty()),
            Err(e) => assert!(!needle.is_empty() && e.to_string().contains(needle), "{e}"),
        }
    }
}

#[test]
fn debug_and_display_never_show_passwords() {
    let c = ecr();
    let a = &c.auths["123456789012.dkr.ecr.us-east-1.amazonaws.com"];
    for out in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{a:?}"),
        format!("{a:#?}"),
        format!("{:?}", c.render()),
        format!("{}", c.render()),
        format!("{:?}", a.auth()),
    ] {
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains(&b64(&format!("AWS:{PASSWORD}"))), "{out}");
    }
    assert!(format!("{c:#?}").contains("[redacted]"));
    assert!(
        format!("{c:#?}").contains("\"AWS\""),
        "the user name is not secret"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn config() -> impl Strategy<Value = DockerConfig> {
    proptest::collection::btree_map(
        "\\PC{1,40}|[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z]{1,8})?",
        ("[^:]{0,20}", "[ -~]{0,60}|\\PC{0,30}"),
        0..5,
    )
    .prop_map(|m| {
        let mut c = DockerConfig::new();
        for (registry, (username, password)) in m {
            c.insert(registry, username, SecretString::new(password));
        }
        c
    })
}

proptest! {
    #[test]
    fn render_parse_round_trip(c in config()) {
        let rendered = c.render();
        prop_assert_eq!(DockerConfig::parse(rendered.expose().as_bytes()), Ok(c.clone()));
        // Deterministic: equal configs render to equal bytes.
        prop_assert_eq!(c.clone().render(), rendered);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = DockerConfig::parse(&bytes);
        let _ = DockerConfig::parse_legacy(&bytes);
    }

    #[test]
    fn errors_never_contain_the_password(password in "[ -~]{8,40}", user in "[a-z]{1,8}") {
        // An auth that disagrees with the password field, and a password of the wrong type.
        let auth = b64(&format!("{user}:{password}x"));
        let pw = serde_json::to_string(&password).unwrap();
        for json in [
            format!(r#"{{"auths":{{"r":{{"auth":"{auth}","password":{pw}}}}}}}"#),
            format!(r#"{{"auths":{{"r":{{"username":{pw}}}}}}}"#),
            format!(r#"{{"auths":{{"r":{pw}}}}}"#),
        ] {
            let err = DockerConfig::parse(json.as_bytes()).unwrap_err();
            prop_assert!(!err.to_string().contains(&password), "{}", err);
            prop_assert!(!err.to_string().contains(&auth), "{}", err);
        }
    }
}
