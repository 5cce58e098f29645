//! Test peers: moto (the real AWS wire protocol), scripted in-process HTTP doubles, and a
//! capture of every log line the suite writes.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

// moto: shared with the other suites.
#[allow(unused_imports)] // not every suite that includes this module starts moto
pub use irsa_test_peers::{Moto, venv};

// ---------------------------------------------------------------------------------------------
// tokens

/// An unsigned-looking JWT (moto and the doubles do not verify signatures).
pub fn fake_jwt(sub: &str, aud: &str, exp: i64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","kid":"k1"}"#),
        b64(&format!(
            r#"{{"iss":"https://oidc.example.test/id/ABC","sub":"{sub}","aud":["{aud}"],"exp":{exp},"iat":1}}"#
        )),
        b64("not-a-real-signature-but-secret-SIGPART")
    )
}

/// A unique temporary file path.
pub fn temp_path(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!("irsa-aws-test-{}-{n}-{name}", std::process::id()))
}

// ---------------------------------------------------------------------------------------------
// in-process HTTP doubles

/// A request the double received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Recorded {
    /// The `X-Amz-Target` header, or the STS `Action` in the form body.
    pub fn operation(&self) -> String {
        if let Some(t) = self.headers.get("x-amz-target") {
            return t
                .to_str()
                .unwrap_or_default()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        self.body
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_owned()
    }
}

/// What the double answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Never answer (for timeouts).
    pub hang: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/x-amz-json-1.1",
            headers: vec![],
            body: body.into(),
            hang: false,
        }
    }
    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/xml",
            headers: vec![],
            body: body.into(),
            hang: false,
        }
    }
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::json(200, "")
        }
    }
    /// A JSON-protocol error (ECR, ECR Public).
    pub fn json_error(status: u16, code: &str, message: &str) -> Reply {
        let mut r = Reply::json(
            status,
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        );
        r.headers.push(("x-amzn-errortype", code.to_owned()));
        r
    }
    /// A query-protocol error (STS).
    pub fn sts_error(status: u16, code: &str, message: &str) -> Reply {
        Reply::xml(
            status,
            format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>r-1</RequestId></ErrorResponse>"
            ),
        )
    }
}

/// STS `AssumeRoleWithWebIdentity` success.
pub fn sts_success(access_key: &str, secret: &str, session: &str, expiration: &str) -> Reply {
    Reply::xml(
        200,
        format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{access_key}</AccessKeyId>\
             <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>\
             <Expiration>{expiration}</Expiration></Credentials>\
             <SubjectFromWebIdentityToken>system:serviceaccount:team:puller</SubjectFromWebIdentityToken>\
             </AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r-1</RequestId>\
             </ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
        ),
    )
}

/// ECR `GetAuthorizationToken` success for one registry.
pub fn ecr_success(account: &str, user_pass: &str, expires_at_unix: i64) -> Reply {
    let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
    Reply::json(
        200,
        format!(
            r#"{{"authorizationData":[{{"authorizationToken":"{token}","expiresAt":{expires_at_unix},"proxyEndpoint":"https://{account}.dkr.ecr.us-east-1.amazonaws.com"}}]}}"#
        ),
    )
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server on a loopback port. The handler gets the request and its index.
pub struct Double {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Double {
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Double {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let recs = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let recs = recs.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        let recs = recs.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let rec = Recorded {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let index = {
                                let mut r = recs.lock().unwrap();
                                r.push(rec.clone());
                                r.len() - 1
                            };
                            let reply = handler(&rec, index);
                            if reply.hang {
                                std::future::pending::<()>().await;
                            }
                            let mut resp = http::Response::builder()
                                .status(reply.status)
                                .header("content-type", reply.content_type);
                            for (k, v) in &reply.headers {
                                resp = resp.header(*k, v);
                            }
                            Ok::<_, Infallible>(
                                resp.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Double {
            url,
            requests,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn count_op(&self, op: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.operation() == op)
            .count()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// logs

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("install log capture");
        buf
    })
}

/// Captures every log line of this test binary, at TRACE, from here on.
pub fn capture_logs() {
    log_buffer();
}

/// Everything logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

/// Asserts that no secret appears in the captured logs, and that logs were captured at all.
pub fn assert_logs_free_of(secrets: &[&str]) {
    let logs = logs();
    assert!(!logs.is_empty(), "no logs were captured");
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret),
            "a secret ({} chars) appears in the logs",
            secret.len()
        );
    }
}
