//! Builder-made objects shared by the unit tests of several modules.

use irsa_core::docker_config::DockerConfig;
use irsa_core::secret::SecretString;
use irsa_k8s::{ClusterPullSecret, ClusterPullSecretSpec, IdentitySpec, RegistrySpec, SecretSpec};

/// A ClusterPullSecret `ecr` writing secret `regcred` for one ECR registry.
pub(crate) fn cps() -> ClusterPullSecret {
    let spec = SecretSpec::new(
        vec![RegistrySpec {
            host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            chainguard: None,
        }],
        IdentitySpec::default(),
        "regcred",
    );
    ClusterPullSecret::new(
        "ecr",
        ClusterPullSecretSpec {
            secret: spec,
            namespaces: Default::default(),
        },
    )
}

/// A credential for that registry.
pub(crate) fn credential() -> DockerConfig {
    let mut c = DockerConfig::new();
    c.insert(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "AWS",
        SecretString::from("token"),
    );
    c
}
