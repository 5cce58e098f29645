//! Fault injection for the cloud: switch a service into an outage, and its requests get that
//! service's own "unavailable" error until the outage ends.
//!
//! | service | while out |
//! |---|---|
//! | STS | HTTP 503, XML `ErrorResponse`, `Type` `Receiver`, `Code` `ServiceUnavailable` |
//! | ECR, ECR Public | HTTP 500, JSON 1.1 `{"__type":"ServerException"}` |
//! | Chainguard exchange | HTTP 503, `{"code":"Unavailable","message":…}` |
//! | registry token | HTTP 503, `{"errors":[{"code":"UNAVAILABLE",…}]}` |
//!
//! The AWS SDKs class the first two as transient server errors and retry them. No work is done
//! for a refused call (no session, password or token is issued). Refused calls are counted
//! under the usual service and action with the error code as outcome: `ServiceUnavailable`
//! (STS), `ServerException` (ECR, ECR Public), `Unavailable` (Chainguard, registry token), e.g.
//! `counters.get("sts", "AssumeRoleWithWebIdentity", "ServiceUnavailable")`.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// A cloud service that can be switched into an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudService {
    /// STS (`AssumeRoleWithWebIdentity`, `AssumeRole`, `GetCallerIdentity`).
    Sts,
    /// ECR `GetAuthorizationToken`.
    Ecr,
    /// ECR Public `GetAuthorizationToken`.
    EcrPublic,
    /// Chainguard's token exchange (`POST /sts/exchange`).
    Chainguard,
    /// The registry token service (`GET /registry/token`).
    RegistryToken,
}

impl CloudService {
    /// Every service.
    pub const ALL: [CloudService; 5] = [
        CloudService::Sts,
        CloudService::Ecr,
        CloudService::EcrPublic,
        CloudService::Chainguard,
        CloudService::RegistryToken,
    ];

    /// The `service` label of this service's request counters.
    pub fn counter_name(self) -> &'static str {
        match self {
            CloudService::Sts => "sts",
            CloudService::Ecr => "ecr",
            CloudService::EcrPublic => "ecr-public",
            CloudService::Chainguard => "chainguard",
            CloudService::RegistryToken => "registry-auth",
        }
    }

    fn index(self) -> usize {
        match self {
            CloudService::Sts => 0,
            CloudService::Ecr => 1,
            CloudService::EcrPublic => 2,
            CloudService::Chainguard => 3,
            CloudService::RegistryToken => 4,
        }
    }
}

impl std::fmt::Display for CloudService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.counter_name())
    }
}

/// The cloud's switchable faults, shared by every request handler (see the module docs).
#[derive(Debug, Default)]
pub struct CloudFaults {
    outages: [AtomicBool; CloudService::ALL.len()],
}

impl CloudFaults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts (`on`) or ends an outage of `service`.
    pub fn set_outage(&self, service: CloudService, on: bool) {
        tracing::info!(%service, on, "cloud outage set");
        self.outages[service.index()].store(on, Ordering::SeqCst);
    }

    /// Whether `service` is out.
    pub fn is_out(&self, service: CloudService) -> bool {
        self.outages[service.index()].load(Ordering::SeqCst)
    }

    /// The services that are out, in [`CloudService::ALL`] order.
    pub fn outages(&self) -> Vec<CloudService> {
        CloudService::ALL
            .into_iter()
            .filter(|s| self.is_out(*s))
            .collect()
    }

    /// Ends every outage.
    pub fn clear(&self) {
        for service in CloudService::ALL {
            self.set_outage(service, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_switch_on_and_off() {
        let faults = CloudFaults::new();
        assert!(faults.outages().is_empty());
        faults.set_outage(CloudService::Ecr, true);
        assert!(faults.is_out(CloudService::Ecr));
        assert!(!faults.is_out(CloudService::EcrPublic));
        for s in CloudService::ALL {
            faults.set_outage(s, true);
        }
        assert_eq!(faults.outages(), CloudService::ALL);
        faults.set_outage(CloudService::Sts, false);
        assert!(!faults.is_out(CloudService::Sts));
        faults.clear();
        assert!(faults.outages().is_empty());
    }

    #[test]
    fn names() {
        let names: Vec<&str> = CloudService::ALL.map(CloudService::counter_name).to_vec();
        assert_eq!(
            names,
            ["sts", "ecr", "ecr-public", "chainguard", "registry-auth"]
        );
        assert_eq!(
            serde_json::to_string(&CloudService::RegistryToken).unwrap(),
            "\"registry-token\""
        );
    }
}
