//! Black-box tests of `irsa_core::registry` and `irsa_core::partition` through the public API.

use irsa_core::partition::{EndpointVariant, Partition, ecr_registry_host};
use irsa_core::registry::{EcrRegistry, ImageRef, Registry, classify_host, parse};
use proptest::prelude::*;

const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn image(
    host: &str,
    repository: Option<&str>,
    tag: Option<&str>,
    digest: Option<&str>,
) -> ImageRef {
    ImageRef {
        host: host.to_owned(),
        repository: repository.map(str::to_owned),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
        registry: classify_host(host),
    }
}

#[test]
fn reference_forms() {
    let sha512 = format!("sha512:{}", "ab".repeat(64));
    let table: Vec<(String, ImageRef)> = vec![
        // Docker Hub normalisation.
        (
            "nginx".into(),
            image("docker.io", Some("library/nginx"), None, None),
        ),
        (
            "nginx:1.27".into(),
            image("docker.io", Some("library/nginx"), Some("1.27"), None),
        ),
        (
            format!("nginx@{SHA256}"),
            image("docker.io", Some("library/nginx"), None, Some(SHA256)),
        ),
        (
            "bitnami/redis:7".into(),
            image("docker.io", Some("bitnami/redis"), Some("7"), None),
        ),
        (
            "docker.io/nginx".into(),
            image("docker.io", Some("library/nginx"), None, None),
        ),
        (
            "index.docker.io/library/nginx".into(),
            image("docker.io", Some("library/nginx"), None, None),
        ),
        ("docker.io".into(), image("docker.io", None, None, None)),
        // Schemes are dropped.
        (
            format!("oci://{ECR_HOST}/charts/app"),
            image(ECR_HOST, Some("charts/app"), None, None),
        ),
        (
            format!("https://{ECR_HOST}"),
            image(ECR_HOST, None, None, None),
        ),
        (
            format!("HTTP://{ECR_HOST}/"),
            image(ECR_HOST, None, None, None),
        ),
        (
            "docker://ghcr.io/org/app:v1".into(),
            image("ghcr.io", Some("org/app"), Some("v1"), None),
        ),
        // Bare hosts.
        (
            "public.ecr.aws".into(),
            image("public.ecr.aws", None, None, None),
        ),
        ("cgr.dev".into(), image("cgr.dev", None, None, None)),
        ("cgr.dev/".into(), image("cgr.dev", None, None, None)),
        (ECR_HOST.into(), image(ECR_HOST, None, None, None)),
        (
            "localhost:5000".into(),
            image("localhost:5000", None, None, None),
        ),
        ("localhost".into(), image("localhost", None, None, None)),
        // Ports, paths, tags, digests.
        (
            "localhost:5000/app:dev".into(),
            image("localhost:5000", Some("app"), Some("dev"), None),
        ),
        (
            "localhost/app".into(),
            image("localhost", Some("app"), None, None),
        ),
        (
            "registry.internal:443/a/b/c:1.0-rc.1".into(),
            image(
                "registry.internal:443",
                Some("a/b/c"),
                Some("1.0-rc.1"),
                None,
            ),
        ),
        (
            format!("{ECR_HOST}/team/app:1.2.3"),
            image(ECR_HOST, Some("team/app"), Some("1.2.3"), None),
        ),
        (
            format!("{ECR_HOST}/team/app:1.2.3@{SHA256}"),
            image(ECR_HOST, Some("team/app"), Some("1.2.3"), Some(SHA256)),
        ),
        (
            format!("cgr.dev/chainguard/static@{sha512}"),
            image("cgr.dev", Some("chainguard/static"), None, Some(&sha512)),
        ),
        (
            "public.ecr.aws/docker/library/busybox:latest".into(),
            image(
                "public.ecr.aws",
                Some("docker/library/busybox"),
                Some("latest"),
                None,
            ),
        ),
        // Uppercase hosts are lowercased; tags keep their case.
        (
            "GHCR.IO/org/app:V1_Final".into(),
            image("ghcr.io", Some("org/app"), Some("V1_Final"), None),
        ),
        // A trailing slash is tolerated.
        (
            "cgr.dev/chainguard/static/".into(),
            image("cgr.dev", Some("chainguard/static"), None, None),
        ),
        // Repository separators from the distribution grammar.
        (
            "example.com/a.b/c_d/e__f/g---h".into(),
            image("example.com", Some("a.b/c_d/e__f/g---h"), None, None),
        ),
    ];
    for (input, want) in table {
        let got = parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, want, "{input}");
        assert_eq!(input.parse::<ImageRef>(), Ok(got.clone()), "{input}");
        assert_eq!(parse(&got.to_string()), Ok(got), "{input}");
    }
}

#[test]
fn registry_kinds_of_parsed_references() {
    let table = [
        (format!("{ECR_HOST}/team/app:1.2.3"), "ecr"),
        ("public.ecr.aws/nginx/nginx".into(), "ecr-public"),
        ("ecr-public.aws.com".into(), "ecr-public"),
        ("cgr.dev/chainguard/static".into(), "chainguard"),
        ("nginx".into(), "other"),
        ("localhost:5000/app".into(), "other"),
    ];
    for (input, kind) in table {
        assert_eq!(parse(&input).unwrap().registry.kind(), kind, "{input}");
    }
    let Registry::Ecr(ecr) = parse(&format!("{ECR_HOST}/team/app:1.2.3"))
        .unwrap()
        .registry
    else {
        panic!("not ECR");
    };
    assert_eq!(
        ecr,
        EcrRegistry {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            partition: Partition::Aws,
            fips: false,
            dual_stack: false,
        }
    );
}

/// Hosts that look like ECR, ECR Public or Chainguard and are not. `parse` accepts each as an
/// `Other` registry (they are valid host names); `classify_host` never calls them ECR.
#[test]
fn lookalikes_are_other() {
    let lookalikes = [
        // Extra labels after the suffix.
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn.evil.io",
        "123456789012.dkr-ecr.us-east-1.on.aws.evil.com",
        // Prefix labels.
        "evil.123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "x.dkr.ecr.123456789012.dkr.ecr.us-east-1.amazonaws.com",
        // Account ids.
        "12345678901.dkr.ecr.us-east-1.amazonaws.com",
        "1234567890123.dkr.ecr.us-east-1.amazonaws.com",
        "12345678901a.dkr.ecr.us-east-1.amazonaws.com",
        "account.dkr.ecr.us-east-1.amazonaws.com",
        // Regions.
        "123456789012.dkr.ecr.us-east-1a.amazonaws.com",
        "123456789012.dkr.ecr.useast1.amazonaws.com",
        // (A well-formed label no partition knows, `xx-east-1`, is a new region under AWS's
        // own domain and is ECR: see `any_well_formed_region_label_under_aws_domains_is_ecr`.)
        "123456789012.dkr.ecr.xx-east.amazonaws.com",
        "123456789012.dkr.ecr.us-east.amazonaws.com",
        "123456789012.dkr.ecr.amazonaws.com",
        // Region from another partition than the suffix.
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
        "123456789012.dkr.ecr.us-gov-west-1.c2s.ic.gov",
        "123456789012.dkr-ecr.us-east-1.on.amazonwebservices.com.cn",
        "123456789012.dkr-ecr.cn-north-1.on.aws",
        "123456789012.dkr-ecr.us-iso-east-1.on.aws",
        // Service labels.
        "123456789012.dkr.ecs.us-east-1.amazonaws.com",
        "123456789012.dkr-ecr.us-east-1.amazonaws.com",
        "123456789012.ecr.dkr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr-fips-fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.api.aws",
        "123456789012.dkr-ecr.us-east-1.api.aws",
        "api.ecr.us-east-1.amazonaws.com",
        // Trailing dot (decision: never ECR, and refused by `parse`).
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.",
        // ECR Public and Chainguard lookalikes.
        "public.ecr.aws.evil.com",
        "evilpublic.ecr.aws",
        "public-ecr.aws",
        "ecr-public.aws.com.evil.io",
        "cgr.dev.evil.com",
        "evilcgr.dev",
        "cgr.dev.",
        "x.cgr.dev",
    ];
    assert!(lookalikes.len() >= 20);
    for host in lookalikes {
        assert_eq!(classify_host(host), Registry::Other, "{host}");
        if !host.ends_with('.') {
            let parsed = parse(&format!("{host}/app")).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(parsed.registry, Registry::Other, "{host}");
        }
    }
    // Non-ASCII digits are not an account id; such a host is not even a valid host name.
    let arabic = format!("{}.dkr.ecr.us-east-1.amazonaws.com", "\u{0661}".repeat(12));
    assert_eq!(classify_host(&arabic), Registry::Other);
    let err = parse(&format!("{arabic}/app")).unwrap_err().to_string();
    assert!(
        err.contains("registry host") && err.contains("not allowed"),
        "{err}"
    );
}

/// (input, fragments the error message must contain: the field, the value, the problem)
#[test]
fn bad_inputs_are_explained() {
    let long_tag = "t".repeat(129);
    let long_label = "a".repeat(64);
    let long_host = vec!["abcdefghij"; 24].join(".");
    let long_repo = vec!["abcdefghij"; 24].join("/");
    let huge = "a".repeat(4097);
    let table: Vec<(String, Vec<&str>)> = vec![
        ("".into(), vec!["empty image reference"]),
        ("   ".into(), vec!["empty image reference"]),
        ("https://".into(), vec!["empty image reference"]),
        (huge, vec!["4097 bytes", "at most 4096"]),
        (" nginx".into(), vec!["image reference", "whitespace"]),
        ("nginx:1.0\n".into(), vec!["image reference", "whitespace"]),
        ("cgr.dev/a b".into(), vec!["whitespace"]),
        ("ftp://cgr.dev/app".into(), vec!["scheme \"ftp\"", "oci://"]),
        // Host.
        (
            format!("{long_host}/app"),
            vec!["registry host", "263 characters", "at most 253"],
        ),
        (
            format!("{long_label}.com/app"),
            vec!["registry host", "label", "at most 63"],
        ),
        ("a..b.com/app".into(), vec!["registry host", "empty label"]),
        (
            "-a.com/app".into(),
            vec!["registry host", "starts or ends with '-'"],
        ),
        (
            "a_b.com/app".into(),
            vec!["registry host", "'_'", "not allowed"],
        ),
        (
            "cgr.dev./app".into(),
            vec!["registry host \"cgr.dev.\"", "trailing dot"],
        ),
        ("[::1]:5000/app".into(), vec!["registry host", "IPv6"]),
        // Port.
        ("localhost:0/app".into(), vec!["port \"0\"", "1 to 65535"]),
        (
            "localhost:65536/app".into(),
            vec!["port \"65536\"", "1 to 65535"],
        ),
        ("localhost:/app".into(), vec!["port \"\"", "1 to 65535"]),
        (
            "localhost:http/app".into(),
            vec!["port \"http\"", "1 to 65535"],
        ),
        (
            "cgr.dev:latest".into(),
            vec!["port \"latest\"", "cgr.dev:latest"],
        ),
        // Repository.
        (
            "Nginx".into(),
            vec!["repository \"Nginx\"", "must be lowercase"],
        ),
        (
            "cgr.dev/Chainguard/static".into(),
            vec!["repository", "must be lowercase"],
        ),
        (
            "cgr.dev/a//b".into(),
            vec!["repository \"a//b\"", "empty path component"],
        ),
        (
            "cgr.dev/a..b".into(),
            vec!["repository", "\"a..b\"", "separated by"],
        ),
        ("cgr.dev/-a".into(), vec!["repository", "start and end"]),
        ("cgr.dev/a___b".into(), vec!["repository", "\"a___b\""]),
        (
            format!("cgr.dev/{long_repo}"),
            vec!["repository", "263 characters", "at most 255"],
        ),
        // Tag.
        (
            format!("nginx:{long_tag}"),
            vec!["tag", "129 characters", "at most 128"],
        ),
        ("nginx:".into(), vec!["tag \"\"", "empty"]),
        (
            "nginx:.hidden".into(),
            vec!["tag \".hidden\"", "does not start with '.'"],
        ),
        ("nginx:a+b".into(), vec!["tag \"a+b\"", "letters, digits"]),
        ("cgr.dev/app:1.0/x".into(), vec!["tag \"1.0/x\""]),
        // As in docker, a first component with ':' is a host, so this "tag" is a port.
        (
            "nginx:1.0/x".into(),
            vec!["port \"1.0\"", "registry host \"nginx:1.0\""],
        ),
        // Digest.
        (
            "nginx@sha256:abc".into(),
            vec!["digest \"sha256:abc\"", "64 hex", "has 3"],
        ),
        (
            format!(
                "nginx@{}",
                SHA256.to_uppercase().replace("SHA256", "sha256")
            ),
            vec!["digest", "lowercase hex"],
        ),
        (
            format!("nginx@md5:{}", "a".repeat(32)),
            vec!["digest", "algorithm \"md5\"", "sha256 or sha512"],
        ),
        (
            "nginx@0123abcd".into(),
            vec!["digest \"0123abcd\"", "<algorithm>:<hex>"],
        ),
        (
            format!("nginx@sha512:{}", "a".repeat(64)),
            vec!["digest", "128 hex"],
        ),
        (format!("nginx@{SHA256}@{SHA256}"), vec!["digest"]),
        // Tag or digest without a repository.
        (
            format!("cgr.dev@{SHA256}"),
            vec!["digest", "without a repository", "cgr.dev/<repository>@"],
        ),
        (
            "cgr.dev/:latest".into(),
            vec![
                "tag \"latest\"",
                "without a repository",
                "cgr.dev/<repository>:latest",
            ],
        ),
    ];
    for (input, fragments) in table {
        let err = match parse(&input) {
            Ok(image) => panic!("{input:?} parsed as {image:?}"),
            Err(err) => err.to_string(),
        };
        for fragment in fragments {
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }
}

fn region_strategy() -> impl Strategy<Value = (String, Partition)> {
    prop_oneof![
        (
            prop::sample::select(vec!["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"]),
            "[a-z]{1,12}",
            1u32..=20
        )
            .prop_map(|(p, w, n)| (format!("{p}-{w}-{n}"), Partition::Aws)),
        ("[a-z]{1,12}", 1u32..=9).prop_map(|(w, n)| (format!("cn-{w}-{n}"), Partition::AwsCn)),
        (
            prop::sample::select(vec![
                ("us-gov", Partition::AwsUsGov),
                ("us-iso", Partition::AwsIso),
                ("us-isob", Partition::AwsIsoB),
                ("eu-isoe", Partition::AwsIsoE),
                ("us-isof", Partition::AwsIsoF),
                ("eusc-de", Partition::AwsEusc),
            ]),
            "[a-z]{1,12}",
            1u32..=9
        )
            .prop_map(|((prefix, partition), w, n)| (format!("{prefix}-{w}-{n}"), partition)),
    ]
}

fn variant_strategy() -> impl Strategy<Value = EndpointVariant> {
    prop::sample::select(EndpointVariant::ALL.to_vec())
}

fn host_strategy() -> impl Strategy<Value = String> {
    let ecr = ("[0-9]{12}", region_strategy(), variant_strategy()).prop_filter_map(
        "no such registry host",
        |(account, (region, _), variant)| ecr_registry_host(&account, &region, variant).ok(),
    );
    let label = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";
    let other = (
        prop::collection::vec(label, 1..4),
        prop::sample::select(vec!["com", "io", "dev", "internal"]),
    )
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
    let known = prop::sample::select(vec![
        "public.ecr.aws".to_owned(),
        "ecr-public.aws.com".to_owned(),
        "cgr.dev".to_owned(),
        "docker.io".to_owned(),
        "localhost".to_owned(),
        "registry".to_owned(),
    ]);
    (
        prop_oneof![ecr, other, known],
        prop::option::of(1u32..=65535),
    )
        .prop_map(|(host, port)| match port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
}

fn repository_strategy() -> impl Strategy<Value = String> {
    let component = "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}";
    // Two or more components, so that docker.io's `library/` rule never applies.
    prop::collection::vec(component, 2..5).prop_map(|c| c.join("/"))
}

fn image_strategy() -> impl Strategy<Value = ImageRef> {
    let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = prop_oneof![
        "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
    ];
    (
        host_strategy(),
        prop::option::of((
            repository_strategy(),
            prop::option::of(tag),
            prop::option::of(digest),
        )),
    )
        .prop_map(|(host, path)| {
            let registry = classify_host(&host);
            let (repository, tag, digest) = match path {
                Some((repository, tag, digest)) => (Some(repository), tag, digest),
                None => (None, None, None),
            };
            ImageRef {
                host,
                repository,
                tag,
                digest,
                registry,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_then_parse_is_identity(image in image_strategy()) {
        let rendered = image.to_string();
        prop_assert_eq!(parse(&rendered), Ok(image), "{}", rendered);
    }

    #[test]
    fn generated_registry_hosts_classify_back(
        account in "[0-9]{12}",
        (region, partition) in region_strategy(),
        variant in variant_strategy(),
        port in prop::option::of(1u32..=65535),
    ) {
        match ecr_registry_host(&account, &region, variant) {
            Ok(host) => {
                let host = match port {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                };
                let want = Registry::Ecr(EcrRegistry {
                    account,
                    region,
                    partition,
                    fips: variant.fips,
                    dual_stack: variant.dual_stack,
                });
                prop_assert_eq!(classify_host(&host), want.clone());
                prop_assert_eq!(classify_host(&host.to_uppercase()), want);
            }
            // Only dual-stack registry hosts are missing, and only outside aws, aws-us-gov, aws-cn.
            Err(_) => prop_assert!(
                variant.dual_stack && partition.ecr_dual_stack_registry_suffix().is_none()
            ),
        }
    }

    #[test]
    fn parse_never_panics(input in "\\PC{0,80}") {
        let _ = parse(&input);
        let _ = classify_host(&input);
    }

    #[test]
    fn parse_never_panics_on_reference_like_input(input in "[a-zA-Z0-9./:@_-]{0,80}") {
        if let Ok(image) = parse(&input) {
            // Whatever parses renders to something that parses to the same thing.
            prop_assert_eq!(parse(&image.to_string()), Ok(image));
        }
    }
}
