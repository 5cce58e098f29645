//! The registry token service (Docker token auth, as CNCF distribution 2.8 consumes it):
//! `GET /registry/token?service=…&scope=…` with HTTP Basic credentials the sandbox issued
//! (ECR/ECR Public passwords, Chainguard tokens), answered with an ES256 JWT whose header
//! carries `x5c` (the token-signing certificate the registry trusts via `rootcertbundle`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Json;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clock::wall_now;
use super::iam::Permissions;
use super::{CloudService, CredentialKind, State, request_id};

/// Lifetime of registry bearer tokens, seconds.
pub const BEARER_TOKEN_LIFETIME_SECONDS: i64 = 300;

/// The registry token service's names, which the registry's `auth.token` config repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RegistryAuthConfig {
    /// `auth.token.service` (the JWT `aud`).
    pub service: String,
    /// `auth.token.issuer` (the JWT `iss`).
    pub issuer: String,
}

impl Default for RegistryAuthConfig {
    fn default() -> Self {
        Self {
            service: "irsa-sandbox-registry".to_owned(),
            issuer: "irsa-sandbox-registry-token".to_owned(),
        }
    }
}

/// The token-signing key (ECDSA P-256) and its self-signed certificate.
pub struct RegistrySigner {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    cert_pem: String,
}

impl std::fmt::Debug for RegistrySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySigner").finish_non_exhaustive()
    }
}

impl RegistrySigner {
    /// A new key and certificate.
    pub fn generate() -> Result<Self, String> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "irsa sandbox registry token signer",
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key_pair).map_err(|e| e.to_string())?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key_pair.serialize_der())
                .map_err(|e| e.to_string())?;
        Ok(Self {
            key,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
        })
    }

    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.cert_pem.clone()
    }

    fn sign(&self, claims: &Value) -> Result<String, String> {
        let header =
            json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .map_err(|_| "failed to sign the registry token".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

/// One `scope` parameter: `repository:<name>:<actions>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) actions: Vec<String>,
}

/// Parses `repository:team/app:pull,push` (the name may contain `:` only for registry:catalog
/// style scopes, so split at the first and last colon).
pub(crate) fn parse_scope(scope: &str) -> Option<Scope> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    let actions: Vec<String> = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    Some(Scope {
        kind: kind.to_owned(),
        name: name.to_owned(),
        actions,
    })
}

/// Issues a bearer token granting `scopes` (times are wall-clock: the registry checks them).
pub(crate) fn issue_token(
    state: &State,
    subject: &str,
    scopes: &[Scope],
) -> Result<String, String> {
    let now = wall_now();
    let access: Vec<Value> = scopes
        .iter()
        .map(|s| json!({"type": s.kind, "name": s.name, "actions": s.actions}))
        .collect();
    let claims = json!({
        "iss": state.config.registry.issuer,
        "sub": subject,
        "aud": state.config.registry.service,
        "exp": now + BEARER_TOKEN_LIFETIME_SECONDS,
        "nbf": now - 1,
        "iat": now,
        "jti": request_id(),
        "access": access,
    });
    state.registry_signer.sign(&claims)
}

/// What a credential may do with a requested scope, as the issuing service would decide:
/// ECR by the role's permission policies (`pull` needs `ecr:BatchGetImage` and
/// `ecr:GetDownloadUrlForLayer`, `push`
/// `ecr:PutImage`, on the repository ARN), ECR Public likewise for push (pulls are public),
/// Chainguard pull only. Other scope types and actions are never granted.
pub(crate) fn grant(
    kind: CredentialKind,
    permissions: &Permissions,
    partition: &str,
    region: &str,
    account: &str,
    scope: &Scope,
) -> Option<Scope> {
    if scope.kind != "repository" {
        return None;
    }
    let allowed = |action: &str, resource: &str| permissions.evaluate(action, resource).allowed();
    let ecr_arn = format!(
        "arn:{partition}:ecr:{region}:{account}:repository/{}",
        scope.name
    );
    let public_arn = format!(
        "arn:{partition}:ecr-public::{account}:repository/{}",
        scope.name
    );
    let actions: Vec<String> = scope
        .actions
        .iter()
        .filter(|a| match (kind, a.as_str()) {
            // A pull reads the manifest (ecr:BatchGetImage) and the layers: ECR API
            // Reference, GetDownloadUrlForLayer: "When an image is pulled, the
            // GetDownloadUrlForLayer API is called once per image layer that is not already
            // cached" (review L2; AWS's AmazonEC2ContainerRegistryPullOnly allows both).
            (CredentialKind::Ecr, "pull") => {
                allowed("ecr:BatchGetImage", &ecr_arn)
                    && allowed("ecr:GetDownloadUrlForLayer", &ecr_arn)
            }
            (CredentialKind::Ecr, "push") => allowed("ecr:PutImage", &ecr_arn),
            (CredentialKind::EcrPublic, "pull") => true,
            (CredentialKind::EcrPublic, "push") => allowed("ecr-public:PutImage", &public_arn),
            (CredentialKind::Chainguard, "pull") => true,
            _ => false,
        })
        .cloned()
        .collect();
    Some(Scope {
        kind: scope.kind.clone(),
        name: scope.name.clone(),
        actions,
    })
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"irsa-sandbox\"",
        )],
        Json(json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]})),
    )
        .into_response()
}

/// Parses `Authorization: Basic base64(user:password)`.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `GET /registry/token`.
pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let params: HashMap<&str, Vec<&str>> = query.iter().fold(HashMap::new(), |mut m, (k, v)| {
        m.entry(k.as_str()).or_default().push(v.as_str());
        m
    });
    let outcome = |o: &str| state.counters.inc("registry-auth", "GetToken", o);
    if state.faults.is_out(CloudService::RegistryToken) {
        outcome("Unavailable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"errors": [{"code": "UNAVAILABLE", "message": "service unavailable (sandbox outage)"}]})),
        )
            .into_response();
    }
    let service = params
        .get("service")
        .and_then(|v| v.first())
        .copied()
        .unwrap_or_default();
    if service != state.config.registry.service {
        outcome("InvalidService");
        return (StatusCode::BAD_REQUEST, Json(json!({"errors": [{"code": "INVALID_SERVICE", "message": "unknown service: use the service named in the registry's WWW-Authenticate challenge"}]}))).into_response();
    }
    let Some((user, password)) = basic_credentials(&headers) else {
        outcome("MissingCredentials");
        return unauthorized(
            "authentication required: log in with a password the sandbox issued (ECR GetAuthorizationToken or a Chainguard exchange)",
        );
    };
    let Some(credential) = state.registry_credential(&password) else {
        outcome("InvalidCredentials");
        return unauthorized("invalid username or password");
    };
    if credential.kind.username() != user {
        outcome("InvalidCredentials");
        return unauthorized("invalid username or password");
    }
    if credential.expires_at <= state.clock.now() {
        outcome("ExpiredCredentials");
        return unauthorized("the password has expired: get a new one");
    }
    let permissions = credential
        .role_name
        .as_deref()
        .and_then(|name| {
            let iam = state.iam();
            iam.role_by_name(name).map(|r| iam.permissions(r))
        })
        .unwrap_or_default();
    let config = &state.config;
    let granted: Vec<Scope> = params
        .get("scope")
        .into_iter()
        .flatten()
        .filter_map(|s| parse_scope(s))
        .filter_map(|s| {
            grant(
                credential.kind,
                &permissions,
                &config.partition,
                &config.region,
                &config.account_id,
                &s,
            )
        })
        .collect();
    match issue_token(&state, &credential.principal, &granted) {
        Ok(token) => {
            outcome("ok");
            Json(json!({
                "token": token,
                "access_token": token,
                "expires_in": BEARER_TOKEN_LIFETIME_SECONDS,
                "issued_at": irsa_core::time::rfc3339(wall_now()),
            }))
            .into_response()
        }
        Err(e) => {
            outcome("InternalError");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"errors": [{"code": "UNKNOWN", "message": e}]})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        for (input, want) in [
            (
                "repository:team/app:pull,push",
                Some(("repository", "team/app", vec!["pull", "push"])),
            ),
            (
                "repository:app:pull",
                Some(("repository", "app", vec!["pull"])),
            ),
            (
                "registry:catalog:*",
                Some(("registry", "catalog", vec!["*"])),
            ),
            ("repository::pull", None),
            ("nonsense", None),
        ] {
            let got = parse_scope(input);
            match want {
                None => assert_eq!(got, None, "{input}"),
                Some((k, n, a)) => {
                    let got = got.unwrap();
                    assert_eq!((got.kind.as_str(), got.name.as_str()), (k, n));
                    assert_eq!(got.actions, a);
                }
            }
        }
    }

    #[test]
    fn basic_auth() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("AWS:pw:with:colons"))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("AWS".into(), "pw:with:colons".into()))
        );
        h.insert(http::header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn grants_follow_the_issuing_service() {
        let pull_only = vec![
            json!({"Statement": [{"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "arn:aws:ecr:us-east-1:111122223333:repository/team-a/*"}]}),
        ];
        // Review L2: the manifest alone is no pull; the layers need GetDownloadUrlForLayer.
        let manifest_only = vec![
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}]}),
        ];
        let push = vec![
            json!({"Statement": [{"Effect": "Allow", "Action": ["ecr:*", "ecr-public:PutImage"], "Resource": "*"}]}),
        ];
        let scope = |s: &str| parse_scope(s).unwrap();
        let actions = |kind, policies: &[Value], s: &str| {
            grant(
                kind,
                &Permissions::identity(policies.to_vec()),
                "aws",
                "us-east-1",
                "111122223333",
                &scope(s),
            )
            .map(|g| g.actions)
        };
        use CredentialKind::*;
        for (kind, policies, requested, want) in [
            (
                Ecr,
                &pull_only,
                "repository:team-a/app:pull,push",
                Some(vec!["pull"]),
            ),
            (Ecr, &pull_only, "repository:team-b/app:pull", Some(vec![])),
            (
                Ecr,
                &manifest_only,
                "repository:team-a/app:pull",
                Some(vec![]),
            ),
            // Review M3: IAM matches resource ARNs case-sensitively.
            (Ecr, &pull_only, "repository:TEAM-A/app:pull", Some(vec![])),
            (
                Ecr,
                &push,
                "repository:team-b/app:pull,push,delete",
                Some(vec!["pull", "push"]),
            ),
            (Ecr, &vec![], "repository:team-a/app:pull", Some(vec![])),
            (
                EcrPublic,
                &vec![],
                "repository:x:pull,push",
                Some(vec!["pull"]),
            ),
            (
                EcrPublic,
                &push,
                "repository:x:pull,push",
                Some(vec!["pull", "push"]),
            ),
            (
                Chainguard,
                &push,
                "repository:x:pull,push",
                Some(vec!["pull"]),
            ),
            (Ecr, &push, "registry:catalog:*", None),
        ] {
            let want = want.map(|w| w.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(
                actions(kind, policies, requested),
                want,
                "{kind:?} {requested}"
            );
        }
    }
}
