//! Timeouts and retries for every upstream call (STS, ECR, ECR Public, Chainguard).
//!
//! The SDK's own retries are turned off so that every provider behaves the same way: each attempt
//! is bounded by [`RetryPolicy::attempt_timeout`], and only throttling and 5xx answers are
//! retried, with exponential backoff and jitter. A timeout, a refused connection or a 4xx is
//! reported at once: retrying them would only delay the error a user has to fix.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Longest service message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 400;

/// How upstream calls are bounded and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for every further one.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// Time allowed for one attempt (connect, send, receive).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1` (attempt counts from 1): exponential, capped,
    /// with "equal jitter" (half fixed, half random) so that callers do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What kind of failure an upstream call met; decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The service throttled the call (retried).
    Throttled,
    /// The service answered 5xx (retried).
    ServerError,
    /// No answer within the attempt timeout (not retried).
    Timeout,
    /// The endpoint could not be reached (not retried).
    Transport,
    /// The service refused the request (4xx other than throttling; not retried).
    Rejected,
    /// The answer could not be understood (not retried).
    Malformed,
}

impl FailureKind {
    /// Whether a call that failed this way is retried.
    pub fn is_retryable(self) -> bool {
        matches!(self, FailureKind::Throttled | FailureKind::ServerError)
    }
}

/// One failed upstream call, after retries. Holds the service's error code and message, never a
/// request or response body that could contain a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The service's error code (`AccessDenied`, `ThrottlingException`, …), when it sent one.
    pub code: Option<String>,
    /// The service's or transport's explanation.
    pub message: String,
    /// How many attempts were made.
    pub attempts: u32,
}

impl CallFailure {
    /// A failure of the given kind, without status or code.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            message: truncate(message.into()),
            attempts: 1,
        }
    }

    /// Classifies an HTTP answer that is an error: 429 and throttling codes are throttling,
    /// 5xx server errors, anything else a rejection.
    pub fn from_status(status: u16, code: Option<String>, message: impl Into<String>) -> Self {
        let kind = if status == 429 || code.as_deref().is_some_and(is_throttling_code) {
            FailureKind::Throttled
        } else if status >= 500 || code.as_deref().is_some_and(is_transient_code) {
            FailureKind::ServerError
        } else {
            FailureKind::Rejected
        };
        Self {
            kind,
            status: Some(status),
            code,
            message: truncate(message.into()),
            attempts: 1,
        }
    }

    /// Classifies an SDK error.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        match err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                if status < 300 {
                    // A success status whose body did not parse: not the service we expect.
                    let mut f = Self::new(
                        FailureKind::Malformed,
                        "the body of the answer is not a valid response of this API; is the endpoint URL right?",
                    );
                    f.status = Some(status);
                    return f;
                }
                let e = ctx.err();
                let message = e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status} without an error message"));
                Self::from_status(status, e.code().map(str::to_owned), message)
            }
            SdkError::TimeoutError(_) => {
                Self::new(FailureKind::Timeout, "the SDK's operation timeout elapsed")
            }
            SdkError::DispatchFailure(d) if d.is_timeout() => {
                Self::new(FailureKind::Timeout, "the connection timed out")
            }
            SdkError::DispatchFailure(_) => {
                Self::new(FailureKind::Transport, DisplayErrorContext(err).to_string())
            }
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                if status >= 500 {
                    Self::from_status(status, None, format!("HTTP {status}"))
                } else {
                    let mut f =
                        Self::new(FailureKind::Malformed, DisplayErrorContext(err).to_string());
                    f.status = Some(status);
                    f
                }
            }
            _ => Self::new(FailureKind::Rejected, DisplayErrorContext(err).to_string()),
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.as_deref().unwrap_or("error");
        let status = self
            .status
            .map(|s| format!("HTTP {s}, "))
            .unwrap_or_default();
        let attempts = self.attempts;
        match self.kind {
            FailureKind::Throttled => write!(
                f,
                "throttled ({status}{code}: {}) after {attempts} attempt(s); retry later or lower the request rate",
                self.message
            ),
            FailureKind::ServerError => write!(
                f,
                "the service failed ({status}{code}: {}) after {attempts} attempt(s); retry later",
                self.message
            ),
            FailureKind::Timeout => write!(
                f,
                "no answer in time ({}); check that the endpoint is reachable from here (network, proxy, VPC endpoint)",
                self.message
            ),
            FailureKind::Transport => write!(
                f,
                "could not reach the endpoint ({}); check the network, proxy and endpoint URL",
                self.message
            ),
            FailureKind::Rejected => write!(f, "{status}{code}: {}", self.message),
            FailureKind::Malformed => write!(f, "malformed response ({status}{})", self.message),
        }
    }
}

impl StdError for CallFailure {}

/// Error codes that mean "slow down" across STS, ECR and ECR Public.
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "RequestThrottled"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
            | "LimitExceededException"
    )
}

/// Error codes that are transient server-side failures although sent with a 4xx status.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "IDPCommunicationError" | "ServiceUnavailable" | "InternalFailure" | "InternalError"
    )
}

/// Whether a failure is an access denial: the AccessDenied codes, or a bare 403 (moto's
/// access-control mode answers JSON services with an XML body the SDK cannot read a code from).
pub fn is_access_denied(f: &CallFailure) -> bool {
    matches!(
        f.code.as_deref(),
        Some("AccessDenied" | "AccessDeniedException")
    ) || (f.code.is_none() && f.status == Some(403))
}

fn truncate(mut message: String) -> String {
    if let Some((idx, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(idx);
        message.push('…');
    }
    message
}

/// Runs `call` until it succeeds, fails with a non-retryable failure, or `policy.max_attempts`
/// attempts were made; each attempt is bounded by `policy.attempt_timeout`.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &'static str,
    mut call: F,
) -> Result<T, CallFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallFailure>>,
{
    let max = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let result = match tokio::time::timeout(policy.attempt_timeout, call()).await {
            Ok(result) => result,
            Err(_) => Err(CallFailure::new(
                FailureKind::Timeout,
                format!("{operation} took longer than {:?}", policy.attempt_timeout),
            )),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(mut failure) => {
                failure.attempts = attempt;
                if !failure.kind.is_retryable() || attempt >= max {
                    return Err(failure);
                }
                let delay = policy.backoff(attempt);
                tracing::debug!(
                    operation,
                    attempt,
                    kind = ?failure.kind,
                    status = failure.status,
                    code = failure.code.as_deref(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying upstream call"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn classifies_statuses_and_codes() {
        for (status, code, kind) in [
            (400, Some("Throttling"), FailureKind::Throttled),
            (400, Some("ThrottlingException"), FailureKind::Throttled),
            (429, None, FailureKind::Throttled),
            (500, None, FailureKind::ServerError),
            (503, Some("ServiceUnavailable"), FailureKind::ServerError),
            (400, Some("IDPCommunicationError"), FailureKind::ServerError),
            (403, Some("AccessDenied"), FailureKind::Rejected),
            (400, Some("InvalidIdentityToken"), FailureKind::Rejected),
        ] {
            let f = CallFailure::from_status(status, code.map(str::to_owned), "m");
            assert_eq!(f.kind, kind, "{status} {code:?}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = policy();
        for attempt in 1..10 {
            let d = p.backoff(attempt);
            let full = (p.initial_backoff * (1 << (attempt - 1))).min(p.max_backoff);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?} vs {full:?}");
        }
    }

    #[test]
    fn long_messages_are_truncated() {
        let f = CallFailure::new(FailureKind::Rejected, "x".repeat(10_000));
        assert!(f.message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_throttling_then_succeeds() {
        let calls = AtomicU32::new(0);
        let out = with_retry(&policy(), "op", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(CallFailure::from_status(
                    400,
                    Some("Throttling".into()),
                    "slow",
                ))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_and_counts_them() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retry(&policy(), "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CallFailure::from_status(502, None, "bad gateway"))
        })
        .await;
        let f = out.unwrap_err();
        assert_eq!((f.kind, f.attempts), (FailureKind::ServerError, 3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(f.to_string().contains("after 3 attempt(s)"), "{f}");
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_rejections_or_timeouts() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retry(&policy(), "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CallFailure::from_status(
                403,
                Some("AccessDenied".into()),
                "no",
            ))
        })
        .await;
        assert_eq!(out.unwrap_err().kind, FailureKind::Rejected);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retry(&policy(), "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), CallFailure>>().await
        })
        .await;
        assert_eq!(out.unwrap_err().kind, FailureKind::Timeout);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
