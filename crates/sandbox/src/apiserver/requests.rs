//! A bounded record of the resource requests the API server answered: verb, group, resource,
//! subresource, namespace and the client's `User-Agent`. The sandbox has no RBAC, so this is
//! how a test learns which grants a client actually needs (and that it stayed in a namespace).
//!
//! Readable in process ([`RequestLog::records`]) and over HTTP: `GET /sandbox/requests` returns
//! the records as JSON, `DELETE /sandbox/requests` clears them. No name, body or header other
//! than the user agent is kept, so nothing secret can end up here.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Records kept before the oldest is dropped (a long demo must not grow without bound).
pub const CAPACITY: usize = 100_000;
/// Longest `User-Agent` kept, in bytes.
const MAX_USER_AGENT: usize = 128;

/// One answered resource request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// Plural resource name (`secrets`).
    pub resource: String,
    /// Subresource (`status`, `token`), if any.
    pub subresource: Option<String>,
    /// The namespace in the path; `None` for cluster-scoped and all-namespace requests.
    pub namespace: Option<String>,
    /// The HTTP status the request got.
    pub code: u16,
    /// The client's `User-Agent` (truncated), to tell clients apart.
    pub user_agent: String,
}

impl RequestRecord {
    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// The bounded log; the oldest record goes first when it is full.
#[derive(Debug)]
pub struct RequestLog {
    records: Mutex<VecDeque<RequestRecord>>,
    capacity: usize,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl RequestLog {
    /// A log that keeps at most `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// Appends one record, dropping the oldest when full.
    pub fn record(&self, mut record: RequestRecord) {
        if record.user_agent.len() > MAX_USER_AGENT {
            let mut end = MAX_USER_AGENT;
            while !record.user_agent.is_char_boundary(end) {
                end -= 1;
            }
            record.user_agent.truncate(end);
        }
        let mut records = self.lock();
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Every record kept, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().iter().cloned().collect()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RequestRecord>> {
        // A panic while holding the lock leaves a consistent deque: keep using it.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: &str, ua: &str) -> RequestRecord {
        RequestRecord {
            verb: verb.into(),
            group: String::new(),
            resource: "secrets".into(),
            subresource: None,
            namespace: Some("a".into()),
            code: 200,
            user_agent: ua.into(),
        }
    }

    #[test]
    fn keeps_the_newest_records_up_to_capacity() {
        let log = RequestLog::with_capacity(2);
        log.record(rec("get", "x"));
        log.record(rec("list", "x"));
        log.record(rec("watch", "x"));
        let verbs: Vec<_> = log.records().into_iter().map(|r| r.verb).collect();
        assert_eq!(verbs, ["list", "watch"]);
        log.clear();
        assert!(log.records().is_empty());
    }

    #[test]
    fn long_user_agents_are_cut_on_a_char_boundary() {
        let log = RequestLog::with_capacity(1);
        log.record(rec("get", &"é".repeat(100)));
        let ua = &log.records()[0].user_agent;
        assert!(
            ua.len() <= MAX_USER_AGENT && ua.chars().all(|c| c == 'é'),
            "{ua}"
        );
        let mut r = rec("patch", "");
        r.subresource = Some("status".into());
        assert_eq!(r.rbac_resource(), "secrets/status");
    }
}
