//! The Kubernetes links: the service account, its annotations, the cluster's OIDC issuer and
//! keys, and a TokenRequest token for the account. Everything read here may be tenant-written:
//! values are bounded and quoted, never trusted as credentials.

use crate::shell::sh;
use std::collections::BTreeMap;
use std::time::Duration;

use irsa_core::arn::RoleArn;
use irsa_core::names::{AUDIENCE_ANNOTATION, ROLE_ARN_ANNOTATION, STS_AUDIENCE};
use irsa_core::secret::SecretString;
use irsa_core::token::{self, Claims, Discovery, Expectations, Jwks, MAX_DISCOVERY_BYTES};
use irsa_core::token_request::TokenRequester as _;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use serde_json::json;

use super::fix::{Action, Change};
use super::report::{Check, Fix, Group};
use super::trust::{claim_lines, claims_json};

// The token-lifetime annotation the webhook reads (seconds).
pub(crate) use irsa_core::names::TOKEN_EXPIRATION_ANNOTATION;
/// Annotation values longer than this are ignored by the webhook; doctor says so.
const MAX_ANNOTATION_VALUE: usize = 2048;
/// The shortest and longest token lifetimes the webhook passes on (it clamps to these).
const TOKEN_EXPIRATION_RANGE: (i64, i64) = (600, 86_400);
/// Where the API server serves its own JWKS, whatever `jwks_uri` says.
const API_SERVER_JWKS_PATH: &str = "/openid/v1/jwks";
/// Lifetime asked of the TokenRequest: the shortest the API server issues.
const TOKEN_SECONDS: u64 = 600;

/// What the annotations say.
#[derive(Debug, Clone)]
pub(crate) struct Annotated {
    pub role: RoleArn,
    pub audience: String,
}

/// The registry host of a `.dockerconfigjson` auth key, as image references name it: the key
/// may be a URL (`https://index.docker.io/v1/`), and Docker Hub's keys name `index.docker.io`.
pub(crate) fn auth_key_host(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    // Only the host: a key may carry credentials (`https://user:token@ghcr.io`), which are
    // never shown.
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        irsa_core::registry::DOCKER_HUB_HOST.to_owned()
    } else {
        host
    }
}

/// Characters a shell reads as syntax: an audience holding one is refused.
const SHELL_METACHARACTERS: &str = ";&|`$<>()'\"\\!*?[]{}~#";

fn quoted(value: &str) -> String {
    let short: String = value.chars().take(120).collect();
    if short.len() < value.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// The `role-arn`, `audience` and `token-expiration` annotations, checked as the webhook and
/// STS read them.
pub(crate) fn annotation_check(
    namespace: &str,
    name: &str,
    annotations: &BTreeMap<String, String>,
    account_hint: Option<&str>,
) -> (Check, Option<Annotated>) {
    let annotate = |value: &str| {
        format!(
            "kubectl annotate serviceaccount -n {} {} --overwrite {}",
            sh(namespace),
            sh(name),
            sh(&format!("{ROLE_ARN_ANNOTATION}={value}"))
        )
    };
    let example = format!(
        "arn:aws:iam::{}:role/ROLE_NAME",
        account_hint.unwrap_or("ACCOUNT_ID")
    );
    let Some(raw) = annotations.get(ROLE_ARN_ANNOTATION) else {
        let near: Vec<&String> = annotations
            .keys()
            .filter(|k| k.contains("role-arn") || k.contains("role_arn"))
            .collect();
        let mut check = Check::fail(
            "role-annotation",
            Group::Kubernetes,
            format!("{namespace}/{name} has no {ROLE_ARN_ANNOTATION} annotation: nothing names the IAM role"),
        )
        .expected_actual(json!(ROLE_ARN_ANNOTATION), json!(annotations.keys().collect::<Vec<_>>()));
        if !near.is_empty() {
            check = check.detail(format!(
                "similar annotation(s) {near:?}: the key must be exactly {ROLE_ARN_ANNOTATION}"
            ));
        }
        let fix = Fix::new("annotate the service account with the role to assume")
            .command(annotate(&example));
        return (check.fix(fix), None);
    };
    if raw.len() > MAX_ANNOTATION_VALUE {
        let check = Check::fail(
            "role-annotation",
            Group::Kubernetes,
            format!("{ROLE_ARN_ANNOTATION} is {} bytes: the webhook ignores values over {MAX_ANNOTATION_VALUE}", raw.len()),
        )
        .fix(Fix::new("set it to the role's ARN").command(annotate(&example)));
        return (check, None);
    }
    let role: RoleArn = match raw.trim().parse() {
        Ok(role) => role,
        Err(e) => {
            let check = Check::fail(
                "role-annotation",
                Group::Kubernetes,
                format!(
                    "{ROLE_ARN_ANNOTATION} {} is not an IAM role ARN: {e}",
                    quoted(raw)
                ),
            )
            .expected_actual(
                json!("arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME"),
                json!(raw),
            )
            .fix(Fix::new("set it to the role's ARN").command(annotate(&example)));
            return (check, None);
        }
    };
    let mut details = Vec::new();
    let mut problems = Vec::new();
    if raw.trim() != raw {
        details.push(format!("the value {} has surrounding whitespace; the webhook copies it as is into AWS_ROLE_ARN", quoted(raw)));
    }
    let audience = match annotations.get(AUDIENCE_ANNOTATION) {
        None => {
            details.push(format!(
                "audience {STS_AUDIENCE} (default; {AUDIENCE_ANNOTATION} not set)"
            ));
            STS_AUDIENCE.to_owned()
        }
        Some(a)
            if a.is_empty()
                || a.len() > MAX_ANNOTATION_VALUE
                || a.chars().any(char::is_whitespace) =>
        {
            problems.push(format!(
                "{AUDIENCE_ANNOTATION} {} is not an audience (empty, too long or with whitespace)",
                quoted(a)
            ));
            STS_AUDIENCE.to_owned()
        }
        Some(a)
            if a.chars()
                .any(|c| super::report::is_invisible(c) || SHELL_METACHARACTERS.contains(c)) =>
        {
            // The annotation is the tenant's; doctor quotes it in every command it prints, and
            // refuses it too: no real audience (a URL or an identifier) needs these.
            problems.push(format!(
                "{AUDIENCE_ANNOTATION} {} has control characters or shell metacharacters ({}): doctor refuses it as an audience",
                quoted(a),
                SHELL_METACHARACTERS
            ));
            STS_AUDIENCE.to_owned()
        }
        Some(a) => {
            details.push(format!("audience {a} (from {AUDIENCE_ANNOTATION})"));
            a.clone()
        }
    };
    match annotations.get(TOKEN_EXPIRATION_ANNOTATION) {
        None => {}
        Some(v) => match v.trim().parse::<i64>() {
            Ok(s) if (TOKEN_EXPIRATION_RANGE.0..=TOKEN_EXPIRATION_RANGE.1).contains(&s) => {
                details.push(format!("token lifetime {s}s (from {TOKEN_EXPIRATION_ANNOTATION})"));
            }
            Ok(s) => details.push(format!(
                "{TOKEN_EXPIRATION_ANNOTATION} {s} is outside {}..{} seconds: the webhook clamps it",
                TOKEN_EXPIRATION_RANGE.0, TOKEN_EXPIRATION_RANGE.1
            )),
            Err(_) => problems.push(format!(
                "{TOKEN_EXPIRATION_ANNOTATION} {} is not a number of seconds: the webhook ignores it",
                quoted(v)
            )),
        },
    }
    if !problems.is_empty() {
        let check = Check::fail("role-annotation", Group::Kubernetes, problems.join("; "))
            .details(details)
            .fix(
                Fix::new("set a valid value or remove the annotation")
                    .command(format!("kubectl annotate serviceaccount -n {} {} --overwrite {AUDIENCE_ANNOTATION}={STS_AUDIENCE}", sh(namespace), sh(name)))
                    .command(format!("kubectl annotate serviceaccount -n {} {} {TOKEN_EXPIRATION_ANNOTATION}-", sh(namespace), sh(name))),
            );
        return (check, None);
    }
    let check = Check::pass(
        "role-annotation",
        Group::Kubernetes,
        format!("{ROLE_ARN_ANNOTATION} = {role}"),
    )
    .details(details)
    .data("role_arn", json!(role.to_string()))
    .data("audience", json!(audience));
    (check, Some(Annotated { role, audience }))
}

/// What doctor read of the service account.
pub(crate) struct FoundServiceAccount {
    pub annotations: BTreeMap<String, String>,
    /// Whether it has an annotations map at all (a JSON patch adds to it or creates it).
    pub has_annotations: bool,
    /// The resourceVersion read: `--fix`'s annotation is conditional on it.
    pub resource_version: Option<String>,
}

/// Whether the service account exists, and its annotations.
pub(crate) async fn service_account(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> (Check, Option<FoundServiceAccount>) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(sa)) => (
            Check::pass(
                "service-account",
                Group::Kubernetes,
                format!("{namespace}/{name} exists"),
            ),
            Some(FoundServiceAccount {
                has_annotations: sa.metadata.annotations.is_some(),
                annotations: sa.metadata.annotations.unwrap_or_default(),
                resource_version: sa.metadata.resource_version,
            }),
        ),
        Ok(None) => (
            Check::fail(
                "service-account",
                Group::Kubernetes,
                format!("service account {namespace}/{name} does not exist"),
            )
            .fix(
                Fix::new("create it (then annotate it with the role)").command(format!(
                    "kubectl create serviceaccount -n {} {}",
                    sh(namespace),
                    sh(name)
                )),
            ),
            None,
        ),
        Err(e) => (
            Check::error(
                "service-account",
                Group::Kubernetes,
                format!(
                    "could not read service account {namespace}/{name}: {}",
                    kube_error(&e)
                ),
            ),
            None,
        ),
    }
}

/// The role-annotation check, with `--fix`'s change when the service account names no usable
/// role and `--role-arn` gives one (a role annotation that parses is never replaced).
pub(crate) fn annotate_change(
    check: Check,
    namespace: &str,
    name: &str,
    sa: &FoundServiceAccount,
    role_arn: Option<&RoleArn>,
) -> Check {
    let usable = sa
        .annotations
        .get(ROLE_ARN_ANNOTATION)
        .is_some_and(|v| v.len() <= MAX_ANNOTATION_VALUE && v.trim().parse::<RoleArn>().is_ok());
    if usable {
        return check;
    }
    let Some(role) = role_arn else {
        return check.detail(format!(
            "irsa doctor --fix --role-arn ARN sets {ROLE_ARN_ANNOTATION} to ARN"
        ));
    };
    // Only the key changed: the rest of the map is the tenant's, as large as they like.
    let before = json!({ ROLE_ARN_ANNOTATION: sa.annotations.get(ROLE_ARN_ANNOTATION) });
    let after = json!({ ROLE_ARN_ANNOTATION: role.to_string() });
    let change = Change::new(
        format!(
            "annotate service account {namespace}/{name} with {ROLE_ARN_ANNOTATION}={role} (from --role-arn)"
        ),
        format!("service account {namespace}/{name}: metadata.annotations"),
        before,
        after,
        Action::Annotate {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: ROLE_ARN_ANNOTATION.to_owned(),
            value: role.to_string(),
            resource_version: sa.resource_version.clone(),
            has_annotations: sa.has_annotations,
        },
    );
    check.with_change(change)
}

/// A kube error without response bodies.
pub(crate) fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!(
            "the API server answered {} {}: {}",
            s.code, s.reason, s.message
        ),
        kube::Error::SerdeError(_) => "the API server's answer could not be read".to_owned(),
        other => other.to_string(),
    }
}

async fn get_raw(client: &kube::Client, path: &str) -> Result<String, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| kube_error(&e))?;
    if text.len() > MAX_DISCOVERY_BYTES {
        return Err(format!(
            "the answer is {} bytes, more than {MAX_DISCOVERY_BYTES}",
            text.len()
        ));
    }
    Ok(text)
}

/// The cluster's issuer, from its discovery document.
pub(crate) async fn issuer(client: &kube::Client) -> (Check, Option<Discovery>) {
    const PATH: &str = "/.well-known/openid-configuration";
    let text = match get_raw(client, PATH).await {
        Ok(t) => t,
        Err(e) => {
            return (
                Check::fail("issuer", Group::Kubernetes, format!("GET {PATH} failed: {e}"))
                    .detail("the API server serves it when service-account issuer discovery is on (--service-account-issuer, and the system:service-account-issuer-discovery ClusterRoleBinding for anonymous readers)"),
                None,
            );
        }
    };
    match Discovery::parse(text.as_bytes()) {
        Ok(d) => (
            Check::pass("issuer", Group::Kubernetes, d.issuer.clone())
                .detail(format!("from {PATH}; jwks_uri {}", d.jwks_uri))
                .data("issuer", json!(d.issuer))
                .data("jwks_uri", json!(d.jwks_uri)),
            Some(d),
        ),
        Err(e) => (
            Check::fail("issuer", Group::Kubernetes, format!("{PATH}: {e}")),
            None,
        ),
    }
}

/// The issuer's keys, read through the API server.
pub(crate) async fn jwks(client: &kube::Client, discovery: &Discovery) -> (Check, Option<Jwks>) {
    let text = match get_raw(client, API_SERVER_JWKS_PATH).await {
        Ok(t) => t,
        Err(e) => {
            return (
                Check::fail(
                    "jwks",
                    Group::Kubernetes,
                    format!("GET {API_SERVER_JWKS_PATH} failed: {e}"),
                ),
                None,
            );
        }
    };
    match Jwks::parse(text.as_bytes()) {
        Ok(j) if !j.is_empty() => (
            Check::pass("jwks", Group::Kubernetes, format!("{} key(s): {}", j.len(), j.key_ids().join(", ")))
                .detail(format!(
                    "read through the API server ({API_SERVER_JWKS_PATH}); AWS fetches {} itself, over the internet",
                    discovery.jwks_uri
                ))
                .data("key_ids", json!(j.key_ids())),
            Some(j),
        ),
        Ok(_) => (
            Check::fail("jwks", Group::Kubernetes, "the JWKS has no keys: no token can be verified"),
            None,
        ),
        Err(e) => (
            Check::fail("jwks", Group::Kubernetes, format!("{API_SERVER_JWKS_PATH}: {e}")),
            None,
        ),
    }
}

/// A TokenRequest token for the account with the workload's audience, verified against the
/// issuer's keys and discovery document. Returns the claims and the token (kept in memory for
/// the exchange, never printed).
pub(crate) async fn token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    audience: &str,
    discovery: &Discovery,
    jwks: &Jwks,
    now: i64,
) -> (Check, Option<(Claims, SecretString)>) {
    let requester = irsa_k8s::token_request::KubeTokenRequester::new(client.clone());
    let audiences = [audience.to_owned()];
    let raw = match requester
        .request_token(
            namespace,
            name,
            &audiences,
            Duration::from_secs(TOKEN_SECONDS),
        )
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return (
                Check::error(
                    "token",
                    Group::Kubernetes,
                    format!("TokenRequest failed: {e}"),
                ),
                None,
            );
        }
    };
    let expect = Expectations::new(now)
        .with_issuer(discovery.issuer.clone())
        .with_audience(audience);
    let summary = format!("TokenRequest for {namespace}/{name}, audience {audience}");
    match token::verify(raw.expose(), jwks, &expect) {
        Ok(verified) => {
            let claims = verified.claims;
            let want_sub = format!("system:serviceaccount:{namespace}:{name}");
            let lines = claim_lines(&claims, now);
            let check = if claims.sub.as_deref() != Some(want_sub.as_str()) {
                Check::fail(
                    "token",
                    Group::Kubernetes,
                    format!("{summary}: the token's sub is not the service account's"),
                )
                .expected_actual(json!(want_sub), json!(claims.sub))
            } else {
                Check::pass(
                    "token",
                    Group::Kubernetes,
                    format!("{summary}, signed by key {}", verified.key_id),
                )
            };
            let check = check.details(lines).data("claims", claims_json(&claims));
            let ok = check.passed();
            (check, ok.then_some((claims, raw)))
        }
        Err(e) => {
            let claims = token::decode_unverified(raw.expose())
                .ok()
                .map(|t| t.claims);
            let mut check = Check::fail("token", Group::Kubernetes, format!("{summary}: {e}"));
            if let Some(c) = &claims {
                check = check
                    .details(claim_lines(c, now))
                    .data("claims", claims_json(c));
                if c.iss.as_deref() != Some(discovery.issuer.as_str()) {
                    check = check
                        .expected_actual(json!(discovery.issuer), json!(c.iss))
                        .detail("the API server signs tokens with an iss other than the issuer its discovery document names: --service-account-issuer and the discovery document disagree");
                }
            }
            (check, None)
        }
    }
}

/// The environment variables, volume and mount the pod identity webhook adds.
const ROLE_ARN_ENV: &str = "AWS_ROLE_ARN";
const TOKEN_FILE_ENV: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// The label that tells the webhook to leave a pod alone.
const SKIP_LABEL: &str = irsa_core::names::SKIP_POD_LABEL;

/// The pod, and the service account it runs as.
pub(crate) async fn pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> (Check, Option<(Pod, String)>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(pod)) => {
            let sa = pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_owned());
            (
                Check::pass(
                    "pod",
                    Group::Kubernetes,
                    format!("{namespace}/{name} runs as service account {sa}"),
                )
                .data("service_account", json!(sa)),
                Some((pod, sa)),
            )
        }
        Ok(None) => (
            Check::fail(
                "pod",
                Group::Kubernetes,
                format!("pod {namespace}/{name} does not exist"),
            )
            .fix(
                Fix::new("name an existing pod")
                    .command(format!("kubectl get pods -n {}", sh(namespace))),
            ),
            None,
        ),
        Err(e) => (
            Check::error(
                "pod",
                Group::Kubernetes,
                format!("could not read pod {namespace}/{name}: {}", kube_error(&e)),
            ),
            None,
        ),
    }
}

/// Whether the webhook gave every container of the pod the role, the token file and its
/// volume, for the role and audience the service account names now.
pub(crate) fn injection_check(pod: &Pod, annotated: &Annotated) -> Check {
    const ID: &str = "pod-injection";
    let meta_name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let Some(spec) = &pod.spec else {
        return Check::fail(ID, Group::Kubernetes, "the pod has no spec");
    };
    let recreate = Fix::new("pods get their identity when they are created: recreate the pod with the webhook running (its owner recreates it)")
        .command(format!("kubectl delete pod -n {} {}", sh(&namespace), sh(&meta_name)))
        .command("kubectl get mutatingwebhookconfigurations   # the pod identity webhook must be registered");
    let skipped = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_LABEL))
        .is_some_and(|v| v == "true");
    let mut problems = Vec::new();
    let mut injected = 0;
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        let env = |key: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == key)
                .and_then(|e| e.value.clone())
        };
        let Some(role) = env(ROLE_ARN_ENV) else {
            problems.push(format!("container {} has no {ROLE_ARN_ENV}", c.name));
            continue;
        };
        injected += 1;
        if role != annotated.role.to_string() {
            problems.push(format!(
                "container {} has {ROLE_ARN_ENV}={role}, the service account names {}: the pod predates the annotation's change",
                c.name, annotated.role
            ));
        }
        let Some(file) = env(TOKEN_FILE_ENV) else {
            problems.push(format!("container {} has no {TOKEN_FILE_ENV}", c.name));
            continue;
        };
        let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == dir);
        let Some(mount) = mount else {
            problems.push(format!(
                "container {}: no volume is mounted at {dir}, where {TOKEN_FILE_ENV} points",
                c.name
            ));
            continue;
        };
        let volume = spec.volumes.iter().flatten().find(|v| v.name == mount.name);
        let audience = volume
            .and_then(|v| v.projected.as_ref())
            .and_then(|p| p.sources.as_ref())
            .and_then(|s| s.iter().find_map(|s| s.service_account_token.as_ref()))
            .map(|t| t.audience.clone().unwrap_or_default());
        match audience {
            None => problems.push(format!(
                "container {}: volume {} is not a projected service-account token",
                c.name, mount.name
            )),
            Some(a) if a != annotated.audience => problems.push(format!(
                "volume {}'s token has audience {a:?}, the service account asks for {:?}",
                mount.name, annotated.audience
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Check::pass(
            ID,
            Group::Kubernetes,
            format!(
                "{ROLE_ARN_ENV}, {TOKEN_FILE_ENV} and the projected token volume in every container"
            ),
        );
    }
    let summary = if injected == 0 {
        if skipped {
            format!("the webhook did not inject: the pod has label {SKIP_LABEL}=true")
        } else {
            "the webhook did not inject the identity (no container has AWS_ROLE_ARN): the pod was created before the annotation, or no pod identity webhook ran".to_owned()
        }
    } else {
        "the injected identity does not match the service account".to_owned()
    };
    Check::fail(ID, Group::Kubernetes, summary)
        .details(problems)
        .fix(recreate)
}

#[cfg(test)]
mod tests {

    /// Review: a pull secret's registry key may carry credentials; only its host is shown.
    #[test]
    fn an_auth_key_is_shown_as_its_host_only() {
        assert_eq!(
            auth_key_host("https://user:ghp_secret@GHCR.io/v2/"),
            "ghcr.io"
        );
        assert_eq!(
            auth_key_host("user:pw@registry.example:5000"),
            "registry.example:5000"
        );
        assert_eq!(
            auth_key_host("111122223333.dkr.ecr.us-east-1.amazonaws.com"),
            "111122223333.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(auth_key_host("https://index.docker.io/v1/"), "docker.io");
    }

    use super::*;
    use crate::doctor::report::Status;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_missing_annotation_is_fixed_with_kubectl_annotate() {
        let (c, a) = annotation_check(
            "ci",
            "builder",
            &annotations(&[("eks.amazonaws.com/role_arn", "x")]),
            Some("111122223333"),
        );
        assert!(a.is_none());
        assert_eq!(c.status, Status::Fail);
        assert!(c.details[0].contains("eks.amazonaws.com/role_arn"), "{c:?}");
        assert_eq!(
            c.fix.unwrap().commands[0],
            "kubectl annotate serviceaccount -n ci builder --overwrite eks.amazonaws.com/role-arn=arn:aws:iam::111122223333:role/ROLE_NAME"
        );
    }

    #[test]
    fn a_malformed_arn_names_what_is_wrong() {
        let (c, a) = annotation_check(
            "ci",
            "builder",
            &annotations(&[(ROLE_ARN_ANNOTATION, "arn:aws:iam:111122223333:role/puller")]),
            None,
        );
        assert!(a.is_none());
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary.contains("is not an IAM role ARN"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn audience_and_expiration_are_read_as_the_webhook_does() {
        let (c, a) = annotation_check(
            "ci",
            "builder",
            &annotations(&[
                (ROLE_ARN_ANNOTATION, "arn:aws:iam::111122223333:role/puller"),
                (AUDIENCE_ANNOTATION, "sts.amazonaws.com.cn"),
                (TOKEN_EXPIRATION_ANNOTATION, "100"),
            ]),
            None,
        );
        assert!(c.passed(), "{c:?}");
        assert_eq!(a.unwrap().audience, "sts.amazonaws.com.cn");
        assert!(c.details.iter().any(|d| d.contains("clamps")), "{c:?}");
        let (c, _) = annotation_check(
            "ci",
            "builder",
            &annotations(&[
                (ROLE_ARN_ANNOTATION, "arn:aws:iam::111122223333:role/puller"),
                (TOKEN_EXPIRATION_ANNOTATION, "1h"),
            ]),
            None,
        );
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary.contains("not a number of seconds"),
            "{}",
            c.summary
        );
        // A bidi override would reorder the audience shown for approval: refused like ESC.
        let (c, a) = annotation_check(
            "ci",
            "builder",
            &annotations(&[
                (ROLE_ARN_ANNOTATION, "arn:aws:iam::111122223333:role/puller"),
                (AUDIENCE_ANNOTATION, "sts.amazonaws.com\u{202e}lim.evil"),
            ]),
            None,
        );
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            a.as_ref().is_none_or(|a| a.audience == STS_AUDIENCE),
            "{a:?}"
        );
    }

    #[test]
    fn the_annotation_change_shows_the_role_key_only() {
        // A tenant's service account with 20,000 annotations: the change diffs the one key.
        let mut many = annotations(&[]);
        for i in 0..20_000 {
            many.insert(format!("tenant.example/k{i}"), "v".repeat(10));
        }
        let sa = FoundServiceAccount {
            annotations: many,
            has_annotations: true,
            resource_version: Some("7".to_owned()),
        };
        let role: RoleArn = "arn:aws:iam::111122223333:role/puller".parse().unwrap();
        let (check, _) = annotation_check("ci", "builder", &sa.annotations, None);
        let check = annotate_change(check, "ci", "builder", &sa, Some(&role));
        let change = check
            .fix
            .as_ref()
            .and_then(|f| f.change.as_ref())
            .expect("a change");
        assert_eq!(change.before, json!({ ROLE_ARN_ANNOTATION: null }));
        assert_eq!(
            change.after,
            json!({ ROLE_ARN_ANNOTATION: role.to_string() })
        );
        assert_eq!(change.diff.len(), 4, "{:?}", change.diff);
    }

    fn annotated() -> Annotated {
        Annotated {
            role: "arn:aws:iam::111122223333:role/puller".parse().unwrap(),
            audience: "sts.amazonaws.com".to_owned(),
        }
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn injected(role: &str, audience: &str) -> Pod {
        pod(
            json!({"metadata": {"name": "p", "namespace": "ci"}, "spec": {
                "containers": [{"name": "app", "image": "x",
                    "env": [{"name": "AWS_ROLE_ARN", "value": role},
                            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}],
                    "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true}]}],
                "volumes": [{"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"audience": audience, "expirationSeconds": 86400, "path": "token"}}]}}]
            }}),
        )
    }

    #[test]
    fn an_injected_pod_passes_and_a_bare_one_is_told_to_be_recreated() {
        assert!(
            injection_check(
                &injected("arn:aws:iam::111122223333:role/puller", "sts.amazonaws.com"),
                &annotated()
            )
            .passed()
        );
        let bare = pod(
            json!({"metadata": {"name": "p", "namespace": "ci"}, "spec": {"containers": [{"name": "app", "image": "x"}]}}),
        );
        let c = injection_check(&bare, &annotated());
        assert_eq!(c.status, Status::Fail);
        assert!(c.summary.contains("did not inject"), "{}", c.summary);
        assert_eq!(c.fix.unwrap().commands[0], "kubectl delete pod -n ci p");
    }

    #[test]
    fn a_stale_role_or_audience_is_named() {
        let c = injection_check(
            &injected("arn:aws:iam::111122223333:role/old", "sts.amazonaws.com"),
            &annotated(),
        );
        assert!(c.details[0].contains("role/old"), "{c:?}");
        let c = injection_check(
            &injected("arn:aws:iam::111122223333:role/puller", "other"),
            &annotated(),
        );
        assert!(c.details[0].contains("audience \"other\""), "{c:?}");
    }
}
