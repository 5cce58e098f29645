//! A small client of AWS's Query protocol (IAM, STS): a form-encoded POST signed with SigV4,
//! answered with XML ([`irsa_core::aws_xml`]).
//!
//! IAM's reads and writes are a dozen Query actions; the SDK client of the whole IAM API was the
//! slowest crate of the build. This client makes one attempt of one action: the caller bounds and
//! retries it with [`crate::retry::with_retry`], which classifies the [`CallFailure`] it returns
//! the way every other upstream call's failure is classified.

use std::sync::OnceLock;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use irsa_core::aws_xml::{self, Element};

use crate::chainguard::{error_chain, redact};
use crate::credentials::AwsCredentials;
use crate::retry::{CallFailure, FailureKind};
use crate::sts::sdk_credentials;

/// Largest answer read (a page of 1,000 IAM list members is well under it).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTPS client of irsa's own (non-SDK) calls: hyper-rustls with the system's roots,
/// HTTP/1.1, `http://` allowed for test endpoints.
pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A new [`HttpsClient`], or why the system's CA certificates could not be loaded.
pub(crate) fn https_client() -> Result<HttpsClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no CA certificates could be loaded: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// One Query API (a service at an endpoint) called with one set of credentials.
pub(crate) struct QueryApi {
    /// The URL requests are POSTed to.
    uri: http::Uri,
    /// The `Host` header, which is signed.
    host: String,
    /// The SigV4 service name (`iam`, `sts`).
    service: &'static str,
    /// The API version (`2010-05-08` for IAM).
    version: &'static str,
    /// The region requests are signed for.
    region: &'static str,
    credentials: AwsCredentials,
    client: OnceLock<Result<HttpsClient, String>>,
}

impl QueryApi {
    /// An API at `endpoint` (`https://iam.amazonaws.com`, a test server's URL).
    pub(crate) fn new(
        endpoint: &str,
        service: &'static str,
        version: &'static str,
        region: &'static str,
        credentials: &AwsCredentials,
    ) -> Result<Self, String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e: http::uri::InvalidUri| format!("the endpoint URL is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) {
            return Err("the endpoint URL must start with https:// (or http:// for tests)".into());
        }
        let authority = uri
            .authority()
            .ok_or("the endpoint URL names no host")?
            .as_str();
        // The user and password of an endpoint URL are dropped before it gets here (env.rs).
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, h)| h)
            .to_owned();
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let uri = http::Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("https"))
            .authority(host.as_str())
            .path_and_query(path)
            .build()
            .map_err(|e| format!("the endpoint URL cannot be used: {e}"))?;
        Ok(Self {
            uri,
            host,
            service,
            version,
            region,
            credentials: credentials.clone(),
            client: OnceLock::new(),
        })
    }

    /// The endpoint, for messages and logs (no user, password or query: see [`Self::new`]).
    pub(crate) fn endpoint(&self) -> String {
        self.uri.to_string()
    }

    /// One attempt of `action` with `params`: the answer's `<{action}Result>` element, or the
    /// whole root element when the action answers without one (most writes).
    pub(crate) async fn call(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<Element, CallFailure> {
        let client = self
            .client
            .get_or_init(https_client)
            .as_ref()
            .map_err(|reason| CallFailure::new(FailureKind::Transport, reason.clone()))?;
        let body = aws_xml::form_encode(
            [("Action", action), ("Version", self.version)]
                .into_iter()
                .chain(params.iter().copied()),
        );
        let request = self.signed_request(body, SystemTime::now())?;
        let response = client
            .request(request)
            .await
            .map_err(|e| CallFailure::new(FailureKind::Transport, redact(&error_chain(&e), &[])))?;
        let status = response.status().as_u16();
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                CallFailure::new(
                    FailureKind::Transport,
                    format!("the answer could not be read: {e}"),
                )
            })?
            .to_bytes();
        answer(action, status, &bytes)
    }

    fn signed_request(
        &self,
        body: String,
        now: SystemTime,
    ) -> Result<http::Request<Full<Bytes>>, CallFailure> {
        let sign_failure = |e: &dyn std::fmt::Display| {
            CallFailure::new(
                FailureKind::Rejected,
                format!("the request could not be signed: {e}"),
            )
        };
        let identity = sdk_credentials(&self.credentials).into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| sign_failure(&e))?
            .into();
        let uri = self.uri.to_string();
        let headers = [("host", self.host.as_str()), ("content-type", CONTENT_TYPE)];
        let signable = SignableRequest::new(
            "POST",
            uri.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| sign_failure(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| sign_failure(&e))?
            .into_parts();
        let mut request = http::Request::post(self.uri.clone())
            .header(http::header::HOST, self.host.as_str())
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| sign_failure(&e))?;
        for (name, value) in instructions.headers() {
            let name =
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| sign_failure(&e))?;
            let value = http::HeaderValue::from_str(value).map_err(|e| sign_failure(&e))?;
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }
}

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The result of an answer with `status` and `body` to `action`.
fn answer(action: &str, status: u16, body: &[u8]) -> Result<Element, CallFailure> {
    let text = std::str::from_utf8(body);
    let root = text
        .map_err(|_| aws_xml::XmlError::Syntax {
            reason: "the answer is not UTF-8".into(),
        })
        .and_then(aws_xml::parse);
    if !(200..300).contains(&status) {
        let (code, message) = match &root {
            Ok(root) => aws_xml::query_error(root)
                .map(|(c, m)| (c.and_then(error_code), m.map(str::to_owned)))
                .unwrap_or((None, None)),
            Err(_) => (None, None),
        };
        let message = message
            .map(|m| shown_text(&redact(&m, &[])))
            .unwrap_or_else(|| format!("HTTP {status} without an error message"));
        return Err(CallFailure::from_status(status, code, message));
    }
    let malformed = |reason: String| {
        let mut f = CallFailure::new(FailureKind::Malformed, reason);
        f.status = Some(status);
        f
    };
    let root = root.map_err(|e| malformed(e.to_string()))?;
    let expected = format!("{action}Response");
    if root.name != expected {
        return Err(malformed(format!(
            "the answer is not a {expected} but a {}",
            shown_name(&root.name)
        )));
    }
    let result = format!("{action}Result");
    Ok(match root.children.iter().position(|c| c.name == result) {
        Some(i) => root.children.into_iter().nth(i).unwrap_or_default(),
        None => root,
    })
}

/// An error code as the answer gives it, when it looks like one (`NoSuchEntity`,
/// `Throttling`): at most 64 letters, digits, `.`, `_` or `-`. Anything else is no code.
fn error_code(code: &str) -> Option<String> {
    (code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    .then(|| code.to_owned())
}

/// An error message from an answer, safe to print: control characters (newlines, escapes, C1)
/// and bidirectional overrides shown as `\u{…}`, so an endpoint cannot forge lines of a report.
fn shown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// An element name from an answer, cut and stripped of anything but name characters.
fn shown_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use irsa_core::secret::SecretString;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| SecretString::new(t.into())),
            expires_at: None,
        }
    }

    #[test]
    fn a_request_is_signed_for_the_service_region_and_host() {
        let api = QueryApi::new(
            "http://127.0.0.1:4566",
            "iam",
            "2010-05-08",
            "us-east-1",
            &creds(Some("session-token-value")),
        )
        .unwrap();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        let req = api
            .signed_request("Action=GetRole&Version=2010-05-08".into(), now)
            .unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:4566/");
        assert_eq!(req.headers()["host"], "127.0.0.1:4566");
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=content-type;host;"), "{auth}");
        assert_eq!(req.headers()["x-amz-security-token"], "session-token-value");
        assert!(!auth.contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn endpoints_keep_their_path_and_lose_their_query() {
        let api = QueryApi::new(
            "https://proxy.example:8443/iam/?x=1",
            "iam",
            "2010-05-08",
            "us-east-1",
            &creds(None),
        )
        .unwrap();
        assert_eq!(api.endpoint(), "https://proxy.example:8443/iam/");
        for bad in ["ftp://host", "not a url", "/relative"] {
            assert!(
                QueryApi::new(bad, "iam", "2010-05-08", "us-east-1", &creds(None)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_give_the_result_the_error_or_a_malformed_failure() {
        let ok = answer(
            "GetRole",
            200,
            b"<GetRoleResponse><GetRoleResult><Role/></GetRoleResult></GetRoleResponse>",
        )
        .unwrap();
        assert_eq!(ok.name, "GetRoleResult");
        let write = answer(
            "PutRolePolicy",
            200,
            b"<PutRolePolicyResponse><ResponseMetadata/></PutRolePolicyResponse>",
        )
        .unwrap();
        assert_eq!(write.name, "PutRolePolicyResponse");

        let missing = answer(
            "GetRole",
            404,
            b"<ErrorResponse><Error><Code>NoSuchEntity</Code><Message>no role</Message></Error></ErrorResponse>",
        )
        .unwrap_err();
        assert_eq!(missing.code.as_deref(), Some("NoSuchEntity"));
        assert_eq!(missing.kind, FailureKind::Rejected);
        let throttled = answer(
            "GetRole",
            400,
            b"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        )
        .unwrap_err();
        assert_eq!(throttled.kind, FailureKind::Throttled);
        // Review L2: a hostile code is no code, and a message cannot forge lines.
        let forged = answer(
            "GetRole",
            403,
            "<ErrorResponse><Error><Code>AccessDenied\n✓ all good</Code><Message>no\n\u{1b}[2J\u{202e}line</Message></Error></ErrorResponse>".as_bytes(),
        )
        .unwrap_err();
        assert_eq!(forged.code, None);
        assert!(
            !forged.message.contains('\n')
                && !forged.message.contains('\u{1b}')
                && !forged.message.contains('\u{202e}'),
            "{}",
            forged.message
        );
        let html = answer("GetRole", 502, b"<html>bad gateway").unwrap_err();
        assert_eq!(html.kind, FailureKind::ServerError);

        for (status, body) in [
            (200, &b"{\"json\": true}"[..]),
            (200, b"<GetUserResponse/>"),
            (200, b"\xff\xfe"),
        ] {
            let f = answer("GetRole", status, body).unwrap_err();
            assert_eq!(f.kind, FailureKind::Malformed, "{body:?}");
            assert!(!f.message.is_empty());
        }
    }
}
