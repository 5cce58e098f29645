//! Chainguard (cgr.dev) words shared by every component: how irsa proves an AWS identity to
//! Chainguard's issuer ([`ChainguardMethod`]) and what an assumable identity's id looks like
//! ([`validate_identity`]).

use std::fmt;
use std::str::FromStr;

/// How irsa proves the AWS identity to Chainguard's issuer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainguardMethod {
    /// A signed, never-sent `sts:GetCallerIdentity` request (Chainguard's `aws_identity`).
    #[default]
    GetCallerIdentity,
    /// An STS `GetWebIdentityToken` JWT (IAM outbound identity federation; Chainguard's
    /// `claim_match` on the account's outbound issuer).
    WebIdentityToken,
}

impl ChainguardMethod {
    /// Every method, in the order documented.
    pub const ALL: [ChainguardMethod; 2] = [
        ChainguardMethod::GetCallerIdentity,
        ChainguardMethod::WebIdentityToken,
    ];

    /// `get-caller-identity` or `web-identity-token`: the spelling of flags, annotations and
    /// CRDs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainguardMethod::GetCallerIdentity => "get-caller-identity",
            ChainguardMethod::WebIdentityToken => "web-identity-token",
        }
    }
}

impl fmt::Display for ChainguardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChainguardMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainguardMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown Chainguard method {:?}: use get-caller-identity (a signed \
                     sts:GetCallerIdentity proof) or web-identity-token (STS \
                     GetWebIdentityToken, IAM outbound identity federation)",
                    s.chars().take(64).collect::<String>()
                )
            })
    }
}

/// Checks a Chainguard assumable identity id: a 40-hex-digit root group, then one or more
/// 16-hex-digit ids, as `chainctl iam identities create` prints them. The message quotes at
/// most 100 characters of `id`.
pub fn validate_identity(id: &str) -> Result<(), String> {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let mut parts = id.split('/');
    let root_ok = parts.next().is_some_and(|p| hex(p, 40));
    let rest: Vec<&str> = parts.collect();
    if root_ok && !rest.is_empty() && rest.iter().all(|p| hex(p, 16)) {
        Ok(())
    } else {
        let shown: String = id.chars().take(100).collect();
        Err(format!(
            "{shown:?} is not a Chainguard identity id: expected <40 lowercase hex digits>/<16 lowercase hex digits>, \
             as printed by `chainctl iam identities create`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_and_unknown_ones_are_explained() {
        for m in ChainguardMethod::ALL {
            assert_eq!(m.as_str().parse::<ChainguardMethod>(), Ok(m));
        }
        let err = "oidc".parse::<ChainguardMethod>().unwrap_err();
        assert!(err.contains("web-identity-token"), "{err}");
    }

    #[test]
    fn identity_ids_have_chainctls_shape() {
        let root = "720909c9f5279097d847ad02a2f24ba8f59de36a";
        for ok in [
            format!("{root}/a033a6fabe0bfa0d"),
            format!("{root}/a033a6fabe0bfa0d/0123456789abcdef"),
        ] {
            assert_eq!(validate_identity(&ok), Ok(()), "{ok}");
        }
        for bad in [
            String::new(),
            root.to_owned(),
            format!("{root}/"),
            format!("{root}/A033A6FABE0BFA0D"),
            format!("{root}/a033a6fabe0bfa0"),
            format!("{root}/a033a6fabe0bfa0d\r\nX: y"),
            "nope".to_owned(),
        ] {
            let err = validate_identity(&bad).unwrap_err();
            assert!(
                err.contains("not a Chainguard identity id"),
                "{bad:?}: {err}"
            );
        }
        let long = "a".repeat(10_000);
        assert!(validate_identity(&long).unwrap_err().len() < 400);
    }
}
