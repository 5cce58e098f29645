//! AWS partitions, region names, and the STS and ECR endpoint hosts of every partition.
//!
//! The data (DNS suffixes, dual-stack suffixes, region patterns) follows the partition metadata
//! every AWS SDK embeds (`partitions.json`, version 1.1), and the endpoint forms follow the STS and
//! ECR endpoint rule sets of those SDKs, so that a host computed here is the host aws-sdk-rust
//! would call. Everything is a pure function of its arguments: no DNS, no network.
//!
//! Region names are checked a little more strictly than the SDK's regular expressions: where the
//! SDK allows `\w+` for the middle label and `\d+` for the number, irsa asks for lowercase ASCII
//! letters and one to three ASCII digits, which every real region satisfies and which keeps
//! lookalikes such as `us-east-1a`, `us-EAST-1` or Unicode digits out.

use std::fmt;

use thiserror::Error;

/// An AWS partition: a group of regions with its own DNS names, accounts and credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partition {
    /// The commercial partition (`aws`): `us-east-1`, `eu-west-1`, …
    Aws,
    /// AWS China (`aws-cn`): `cn-north-1`, `cn-northwest-1`.
    AwsCn,
    /// AWS GovCloud (US) (`aws-us-gov`): `us-gov-west-1`, `us-gov-east-1`.
    AwsUsGov,
    /// AWS ISO (`aws-iso`): `us-iso-east-1`, …
    AwsIso,
    /// AWS ISOB (`aws-iso-b`): `us-isob-east-1`, …
    AwsIsoB,
    /// AWS ISOE (`aws-iso-e`): `eu-isoe-west-1`, …
    AwsIsoE,
    /// AWS ISOF (`aws-iso-f`): `us-isof-south-1`, …
    AwsIsoF,
    /// AWS European Sovereign Cloud (`aws-eusc`): `eusc-de-east-1`, …
    AwsEusc,
}

impl Partition {
    /// Every partition, in the order the SDK metadata lists them.
    pub const ALL: [Partition; 8] = [
        Partition::Aws,
        Partition::AwsCn,
        Partition::AwsUsGov,
        Partition::AwsIso,
        Partition::AwsIsoB,
        Partition::AwsIsoE,
        Partition::AwsIsoF,
        Partition::AwsEusc,
    ];

    /// The partition id as it appears in ARNs: `aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, …
    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
            Partition::AwsEusc => "aws-eusc",
        }
    }

    /// The partition with this id (exact, lowercase), if any.
    pub fn from_id(id: &str) -> Option<Partition> {
        Partition::ALL.into_iter().find(|p| p.id() == id)
    }

    /// The partition whose region pattern the region name matches, if any.
    ///
    /// The patterns are the SDK's `regionRegex`es, e.g. `^us-gov-\w+-\d+$` for `aws-us-gov`,
    /// with the stricter labels described in the module docs.
    pub fn from_region(region: &str) -> Option<Partition> {
        let mut labels = region.split('-');
        let first = labels.next()?;
        let second = labels.next()?;
        let rest: [Option<&str>; 3] = [labels.next(), labels.next(), labels.next()];
        match rest {
            // `<prefix>-<word>-<number>`: only the commercial and China partitions use three labels.
            [Some(word), None, None] => {
                if !is_word(second) || !is_number(word) {
                    return None;
                }
                match first {
                    "us" | "eu" | "ap" | "sa" | "ca" | "me" | "af" | "il" | "mx" => {
                        Some(Partition::Aws)
                    }
                    "cn" => Some(Partition::AwsCn),
                    _ => None,
                }
            }
            // `<prefix>-<qualifier>-<word>-<number>`.
            [Some(word), Some(number), None] => {
                if !is_word(word) || !is_number(number) {
                    return None;
                }
                match (first, second) {
                    ("us", "gov") => Some(Partition::AwsUsGov),
                    ("us", "iso") => Some(Partition::AwsIso),
                    ("us", "isob") => Some(Partition::AwsIsoB),
                    ("eu", "isoe") => Some(Partition::AwsIsoE),
                    ("us", "isof") => Some(Partition::AwsIsoF),
                    ("eusc", "de") => Some(Partition::AwsEusc),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The DNS suffix of the partition's regional (IPv4) endpoints.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::AwsIso => "c2s.ic.gov",
            Partition::AwsIsoB => "sc2s.sgov.gov",
            Partition::AwsIsoE => "cloud.adc-e.uk",
            Partition::AwsIsoF => "csp.hci.ic.gov",
            Partition::AwsEusc => "amazonaws.eu",
        }
    }

    /// The DNS suffix of the partition's dual-stack (IPv4 and IPv6) API endpoints.
    pub fn dual_stack_dns_suffix(self) -> &'static str {
        match self {
            Partition::Aws | Partition::AwsUsGov => "api.aws",
            Partition::AwsCn => "api.amazonwebservices.com.cn",
            Partition::AwsIso => "api.aws.ic.gov",
            Partition::AwsIsoB => "api.aws.scloud",
            Partition::AwsIsoE => "api.cloud-aws.adc-e.uk",
            Partition::AwsIsoF => "api.aws.hci.ic.gov",
            Partition::AwsEusc => "api.amazonwebservices.eu",
        }
    }

    /// Whether the partition offers FIPS endpoints (`supportsFIPS` in the SDK metadata; every
    /// partition does today, so FIPS is never refused by partition alone).
    pub fn supports_fips(self) -> bool {
        true
    }

    /// Whether the partition offers dual-stack API endpoints (`supportsDualStack` in the SDK
    /// metadata; every partition does today).
    pub fn supports_dual_stack(self) -> bool {
        true
    }

    /// The DNS suffix of the partition's dual-stack ECR *registry* hosts
    /// (`<account>.dkr-ecr.<region>.<suffix>`), where ECR documents one: `on.aws` for `aws` and
    /// `aws-us-gov`, `on.amazonwebservices.com.cn` for `aws-cn`. `None` elsewhere.
    pub fn ecr_dual_stack_registry_suffix(self) -> Option<&'static str> {
        match self {
            Partition::Aws | Partition::AwsUsGov => Some("on.aws"),
            Partition::AwsCn => Some("on.amazonwebservices.com.cn"),
            _ => None,
        }
    }

    /// The region the SDK signs the partition's global services in (`implicitGlobalRegion`).
    pub fn implicit_global_region(self) -> &'static str {
        match self {
            Partition::Aws => "us-east-1",
            Partition::AwsCn => "cn-northwest-1",
            Partition::AwsUsGov => "us-gov-west-1",
            Partition::AwsIso => "us-iso-east-1",
            Partition::AwsIsoB => "us-isob-east-1",
            Partition::AwsIsoE => "eu-isoe-west-1",
            Partition::AwsIsoF => "us-isof-south-1",
            Partition::AwsEusc => "eusc-de-east-1",
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The FIPS and dual-stack choice of an endpoint. The default is the plain IPv4 endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointVariant {
    /// Use the FIPS 140 validated endpoint.
    pub fips: bool,
    /// Use the dual-stack (IPv4 and IPv6) endpoint.
    pub dual_stack: bool,
}

impl EndpointVariant {
    /// The plain IPv4 endpoint.
    pub const PLAIN: EndpointVariant = EndpointVariant {
        fips: false,
        dual_stack: false,
    };
    /// The FIPS endpoint.
    pub const FIPS: EndpointVariant = EndpointVariant {
        fips: true,
        dual_stack: false,
    };
    /// The dual-stack endpoint.
    pub const DUAL_STACK: EndpointVariant = EndpointVariant {
        fips: false,
        dual_stack: true,
    };
    /// The FIPS dual-stack endpoint.
    pub const FIPS_DUAL_STACK: EndpointVariant = EndpointVariant {
        fips: true,
        dual_stack: true,
    };
    /// The four variants.
    pub const ALL: [EndpointVariant; 4] = [
        EndpointVariant::PLAIN,
        EndpointVariant::FIPS,
        EndpointVariant::DUAL_STACK,
        EndpointVariant::FIPS_DUAL_STACK,
    ];
}

impl fmt::Display for EndpointVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.fips, self.dual_stack) {
            (false, false) => "plain",
            (true, false) => "fips",
            (false, true) => "dual-stack",
            (true, true) => "fips dual-stack",
        })
    }
}

/// Why a region, account or endpoint variant was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartitionError {
    /// The region name was empty.
    #[error("empty region: name an AWS region such as \"us-east-1\"")]
    EmptyRegion,
    /// The region name had uppercase letters.
    #[error("invalid region {region:?}: region names are lowercase, e.g. \"us-east-1\"")]
    UppercaseRegion {
        /// The region as given.
        region: String,
    },
    /// The region name matches no partition's region pattern.
    #[error(
        "unknown region {region:?}: it matches no AWS partition's region pattern; \
         use a region name such as \"us-east-1\", \"cn-north-1\", \"us-gov-west-1\" or \"eusc-de-east-1\""
    )]
    UnknownRegion {
        /// The region as given.
        region: String,
    },
    /// The ECR account id is not 12 ASCII digits.
    #[error(
        "invalid ECR account id {account:?}: an account id is exactly 12 ASCII digits, e.g. \"123456789012\""
    )]
    InvalidAccount {
        /// The account id as given.
        account: String,
    },
    /// The partition of the region offers no such endpoint variant.
    #[error(
        "no {variant} {endpoint} endpoint exists in partition {partition} (region {region:?}): \
         turn off {missing} for this region"
    )]
    UnsupportedVariant {
        /// The endpoint asked for, e.g. "ECR registry".
        endpoint: &'static str,
        /// The variant asked for.
        variant: EndpointVariant,
        /// The region's partition.
        partition: Partition,
        /// The region as given.
        region: String,
        /// The option to turn off: "FIPS" or "dual-stack".
        missing: &'static str,
    },
}

/// Validates a region name and returns its partition.
///
/// Accepts the region names of every partition ("us-east-1", "us-gov-west-1", "cn-north-1",
/// "us-isob-east-1", "eusc-de-east-1", …), including regions newer than this code as long as they
/// follow their partition's pattern. The name must be lowercase.
pub fn validate_region(region: &str) -> Result<Partition, PartitionError> {
    if region.is_empty() {
        return Err(PartitionError::EmptyRegion);
    }
    if let Some(partition) = Partition::from_region(region) {
        return Ok(partition);
    }
    if region.bytes().any(|b| b.is_ascii_uppercase())
        && Partition::from_region(&region.to_ascii_lowercase()).is_some()
    {
        return Err(PartitionError::UppercaseRegion {
            region: region.to_owned(),
        });
    }
    Err(PartitionError::UnknownRegion {
        region: region.to_owned(),
    })
}

/// The regional STS host for a region and variant, e.g. `sts.us-east-1.amazonaws.com`,
/// `sts-fips.us-east-1.amazonaws.com`, `sts.us-east-1.api.aws`, `sts.cn-north-1.amazonaws.com.cn`.
///
/// Follows the STS endpoint rules of the SDKs, including their one exception: GovCloud's regular
/// STS endpoint is already FIPS validated, so FIPS there is `sts.<region>.amazonaws.com`.
pub fn sts_endpoint(region: &str, variant: EndpointVariant) -> Result<String, PartitionError> {
    let partition = validate_region(region)?;
    check_variant(partition, region, variant, "STS")?;
    Ok(match (variant.fips, variant.dual_stack) {
        (true, true) => format!("sts-fips.{region}.{}", partition.dual_stack_dns_suffix()),
        (true, false) if partition == Partition::AwsUsGov => {
            format!("sts.{region}.{}", partition.dns_suffix())
        }
        (true, false) => format!("sts-fips.{region}.{}", partition.dns_suffix()),
        (false, true) => format!("sts.{region}.{}", partition.dual_stack_dns_suffix()),
        (false, false) => format!("sts.{region}.{}", partition.dns_suffix()),
    })
}

/// The partition's global STS host.
///
/// Only the commercial partition has a true global endpoint, `sts.amazonaws.com` (the legacy
/// endpoint, served from us-east-1). For every other partition this returns the regional STS host
/// of the partition's `implicitGlobalRegion`, which is where the SDKs send a "global" request
/// there: e.g. `sts.us-gov-west-1.amazonaws.com`, `sts.cn-northwest-1.amazonaws.com.cn`.
pub fn sts_global_endpoint(partition: Partition) -> &'static str {
    match partition {
        Partition::Aws => crate::names::STS_HOST,
        Partition::AwsCn => "sts.cn-northwest-1.amazonaws.com.cn",
        Partition::AwsUsGov => "sts.us-gov-west-1.amazonaws.com",
        Partition::AwsIso => "sts.us-iso-east-1.c2s.ic.gov",
        Partition::AwsIsoB => "sts.us-isob-east-1.sc2s.sgov.gov",
        Partition::AwsIsoE => "sts.eu-isoe-west-1.cloud.adc-e.uk",
        Partition::AwsIsoF => "sts.us-isof-south-1.csp.hci.ic.gov",
        Partition::AwsEusc => "sts.eusc-de-east-1.amazonaws.eu",
    }
}

/// The ECR API host for a region and variant, e.g. `api.ecr.us-east-1.amazonaws.com`,
/// `ecr-fips.us-east-1.amazonaws.com`, `ecr.us-east-1.api.aws`.
///
/// Follows the ECR endpoint rules of the SDKs: the commercial and GovCloud partitions (and China
/// for dual-stack) use the `ecr[-fips].<region>` forms, every other partition
/// `api.ecr[-fips].<region>.<suffix>`.
pub fn ecr_api_endpoint(region: &str, variant: EndpointVariant) -> Result<String, PartitionError> {
    let partition = validate_region(region)?;
    ecr_api_endpoint_in(partition, region, variant)
}

/// [`ecr_api_endpoint`] for a region whose partition is already known, e.g. from the domain of
/// an ECR registry host with a region irsa does not know yet
/// ([`crate::registry::is_region_label`]); the region is not checked against the partition's
/// pattern.
pub fn ecr_api_endpoint_in(
    partition: Partition,
    region: &str,
    variant: EndpointVariant,
) -> Result<String, PartitionError> {
    check_variant(partition, region, variant, "ECR API")?;
    let short_form = matches!(partition, Partition::Aws | Partition::AwsUsGov);
    Ok(match (variant.fips, variant.dual_stack) {
        (true, true) if short_form => format!("ecr-fips.{region}.api.aws"),
        (true, true) => format!(
            "api.ecr-fips.{region}.{}",
            partition.dual_stack_dns_suffix()
        ),
        (true, false) if short_form => format!("ecr-fips.{region}.{}", partition.dns_suffix()),
        (true, false) => format!("api.ecr-fips.{region}.{}", partition.dns_suffix()),
        (false, true) if short_form || partition == Partition::AwsCn => {
            format!("ecr.{region}.{}", partition.dual_stack_dns_suffix())
        }
        (false, true) => format!("api.ecr.{region}.{}", partition.dual_stack_dns_suffix()),
        (false, false) => format!("api.ecr.{region}.{}", partition.dns_suffix()),
    })
}

/// The ECR private registry host of an account in a region, e.g.
/// `123456789012.dkr.ecr.us-east-1.amazonaws.com`, `123456789012.dkr.ecr-fips.us-east-1.amazonaws.com`,
/// `123456789012.dkr-ecr.us-east-1.on.aws`, `123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn`.
///
/// Dual-stack registry hosts exist only where ECR documents a domain for them
/// ([`Partition::ecr_dual_stack_registry_suffix`]); elsewhere this is an error, never a guessed
/// host. `crate::registry::classify_host` recognises every host this returns.
pub fn ecr_registry_host(
    account: &str,
    region: &str,
    variant: EndpointVariant,
) -> Result<String, PartitionError> {
    if !is_account_id(account) {
        return Err(PartitionError::InvalidAccount {
            account: account.to_owned(),
        });
    }
    let partition = validate_region(region)?;
    check_variant(partition, region, variant, "ECR registry")?;
    let fips = if variant.fips { "-fips" } else { "" };
    if variant.dual_stack {
        let suffix = partition.ecr_dual_stack_registry_suffix().ok_or_else(|| {
            PartitionError::UnsupportedVariant {
                endpoint: "ECR registry",
                variant,
                partition,
                region: region.to_owned(),
                missing: "dual-stack",
            }
        })?;
        Ok(format!("{account}.dkr-ecr{fips}.{region}.{suffix}"))
    } else {
        Ok(format!(
            "{account}.dkr.ecr{fips}.{region}.{}",
            partition.dns_suffix()
        ))
    }
}

/// Whether `account` is an AWS account id: exactly 12 ASCII digits.
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

fn check_variant(
    partition: Partition,
    region: &str,
    variant: EndpointVariant,
    endpoint: &'static str,
) -> Result<(), PartitionError> {
    let missing = if variant.fips && !partition.supports_fips() {
        "FIPS"
    } else if variant.dual_stack && !partition.supports_dual_stack() {
        "dual-stack"
    } else {
        return Ok(());
    };
    Err(PartitionError::UnsupportedVariant {
        endpoint,
        variant,
        partition,
        region: region.to_owned(),
        missing,
    })
}

/// The middle label of a region ("east", "southeast", "gov"): lowercase ASCII letters.
fn is_word(label: &str) -> bool {
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase())
}

/// The number of a region ("1", "12"): one to three ASCII digits.
fn is_number(label: &str) -> bool {
    (1..=3).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_match_serde() {
        for p in Partition::ALL {
            assert_eq!(Partition::from_id(p.id()), Some(p));
            assert_eq!(p.to_string(), p.id());
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.id()));
        }
        assert_eq!(Partition::from_id("AWS"), None);
        assert_eq!(Partition::from_id("aws-isob"), None);
        assert_eq!(Partition::from_id(""), None);
    }

    #[test]
    fn regions_map_to_their_partition() {
        let table = [
            ("us-east-1", Partition::Aws),
            ("us-west-2", Partition::Aws),
            ("eu-central-2", Partition::Aws),
            ("ap-southeast-7", Partition::Aws),
            ("sa-east-1", Partition::Aws),
            ("ca-west-1", Partition::Aws),
            ("me-central-1", Partition::Aws),
            ("af-south-1", Partition::Aws),
            ("il-central-1", Partition::Aws),
            ("mx-central-1", Partition::Aws),
            ("cn-north-1", Partition::AwsCn),
            ("cn-northwest-1", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("us-gov-east-1", Partition::AwsUsGov),
            ("us-iso-east-1", Partition::AwsIso),
            ("us-iso-west-1", Partition::AwsIso),
            ("us-isob-east-1", Partition::AwsIsoB),
            ("eu-isoe-west-1", Partition::AwsIsoE),
            ("us-isof-south-1", Partition::AwsIsoF),
            ("us-isof-east-1", Partition::AwsIsoF),
            ("eusc-de-east-1", Partition::AwsEusc),
        ];
        for (region, partition) in table {
            assert_eq!(Partition::from_region(region), Some(partition), "{region}");
            assert_eq!(validate_region(region), Ok(partition), "{region}");
        }
    }

    #[test]
    fn implicit_global_regions_belong_to_their_partition() {
        for p in Partition::ALL {
            assert_eq!(Partition::from_region(p.implicit_global_region()), Some(p));
        }
    }

    #[test]
    fn malformed_regions_match_no_partition() {
        for region in [
            "",
            "us",
            "us-east",
            "us-east-1a",
            "useast1",
            "us_east_1",
            "xx-east-1",
            "US-EAST-1",
            "us-East-1",
            "us--1",
            "us-east-",
            "-us-east-1",
            "us-east-1-",
            "us-east-1234",
            "us-east-\u{0661}",
            "us-\u{0435}ast-1",
            "us-gov-west-1-1",
            "us-gov-west",
            "us-isoc-east-1",
            "eu-iso-west-1",
            "eusc-fr-east-1",
            "cn-north-1.evil",
            "aws-global",
            "us-east-1 ",
            " us-east-1",
        ] {
            assert_eq!(Partition::from_region(region), None, "{region:?}");
            assert!(validate_region(region).is_err(), "{region:?}");
        }
    }

    #[test]
    fn region_errors_name_the_region_and_the_fix() {
        let err = validate_region("").unwrap_err();
        assert_eq!(err, PartitionError::EmptyRegion);
        assert!(err.to_string().contains("empty region"));

        let err = validate_region("US-EAST-1").unwrap_err().to_string();
        assert!(
            err.contains("\"US-EAST-1\"") && err.contains("lowercase"),
            "{err}"
        );

        let err = validate_region("xx-east-1").unwrap_err().to_string();
        assert!(err.contains("region \"xx-east-1\""), "{err}");
        assert!(
            err.contains("no AWS partition") && err.contains("us-east-1"),
            "{err}"
        );
    }

    #[test]
    fn partition_suffixes() {
        let table = [
            (Partition::Aws, "amazonaws.com", "api.aws"),
            (
                Partition::AwsCn,
                "amazonaws.com.cn",
                "api.amazonwebservices.com.cn",
            ),
            (Partition::AwsUsGov, "amazonaws.com", "api.aws"),
            (Partition::AwsIso, "c2s.ic.gov", "api.aws.ic.gov"),
            (Partition::AwsIsoB, "sc2s.sgov.gov", "api.aws.scloud"),
            (
                Partition::AwsIsoE,
                "cloud.adc-e.uk",
                "api.cloud-aws.adc-e.uk",
            ),
            (Partition::AwsIsoF, "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
            (
                Partition::AwsEusc,
                "amazonaws.eu",
                "api.amazonwebservices.eu",
            ),
        ];
        for (p, dns, dual) in table {
            assert_eq!(p.dns_suffix(), dns, "{p}");
            assert_eq!(p.dual_stack_dns_suffix(), dual, "{p}");
        }
    }

    /// (region, plain, fips, dual-stack, fips dual-stack)
    const STS: [(&str, &str, &str, &str, &str); 8] = [
        (
            "us-east-1",
            "sts.us-east-1.amazonaws.com",
            "sts-fips.us-east-1.amazonaws.com",
            "sts.us-east-1.api.aws",
            "sts-fips.us-east-1.api.aws",
        ),
        (
            "cn-north-1",
            "sts.cn-north-1.amazonaws.com.cn",
            "sts-fips.cn-north-1.amazonaws.com.cn",
            "sts.cn-north-1.api.amazonwebservices.com.cn",
            "sts-fips.cn-north-1.api.amazonwebservices.com.cn",
        ),
        (
            "us-gov-west-1",
            "sts.us-gov-west-1.amazonaws.com",
            "sts.us-gov-west-1.amazonaws.com",
            "sts.us-gov-west-1.api.aws",
            "sts-fips.us-gov-west-1.api.aws",
        ),
        (
            "us-iso-east-1",
            "sts.us-iso-east-1.c2s.ic.gov",
            "sts-fips.us-iso-east-1.c2s.ic.gov",
            "sts.us-iso-east-1.api.aws.ic.gov",
            "sts-fips.us-iso-east-1.api.aws.ic.gov",
        ),
        (
            "us-isob-east-1",
            "sts.us-isob-east-1.sc2s.sgov.gov",
            "sts-fips.us-isob-east-1.sc2s.sgov.gov",
            "sts.us-isob-east-1.api.aws.scloud",
            "sts-fips.us-isob-east-1.api.aws.scloud",
        ),
        (
            "eu-isoe-west-1",
            "sts.eu-isoe-west-1.cloud.adc-e.uk",
            "sts-fips.eu-isoe-west-1.cloud.adc-e.uk",
            "sts.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
            "sts-fips.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
        ),
        (
            "us-isof-south-1",
            "sts.us-isof-south-1.csp.hci.ic.gov",
            "sts-fips.us-isof-south-1.csp.hci.ic.gov",
            "sts.us-isof-south-1.api.aws.hci.ic.gov",
            "sts-fips.us-isof-south-1.api.aws.hci.ic.gov",
        ),
        (
            "eusc-de-east-1",
            "sts.eusc-de-east-1.amazonaws.eu",
            "sts-fips.eusc-de-east-1.amazonaws.eu",
            "sts.eusc-de-east-1.api.amazonwebservices.eu",
            "sts-fips.eusc-de-east-1.api.amazonwebservices.eu",
        ),
    ];

    #[test]
    fn sts_endpoints_per_partition_and_variant() {
        for (region, plain, fips, dual, fips_dual) in STS {
            let expected = [plain, fips, dual, fips_dual];
            for (variant, want) in EndpointVariant::ALL.into_iter().zip(expected) {
                assert_eq!(
                    sts_endpoint(region, variant).as_deref(),
                    Ok(want),
                    "{region} {variant}"
                );
            }
        }
    }

    #[test]
    fn sts_global_endpoints() {
        assert_eq!(sts_global_endpoint(Partition::Aws), "sts.amazonaws.com");
        for p in Partition::ALL.into_iter().filter(|p| *p != Partition::Aws) {
            // Elsewhere "global" is the regional endpoint of the implicit global region.
            let regional = sts_endpoint(p.implicit_global_region(), EndpointVariant::PLAIN);
            assert_eq!(regional.as_deref(), Ok(sts_global_endpoint(p)), "{p}");
        }
    }

    /// (region, plain, fips, dual-stack, fips dual-stack)
    const ECR_API: [(&str, &str, &str, &str, &str); 8] = [
        (
            "us-east-1",
            "api.ecr.us-east-1.amazonaws.com",
            "ecr-fips.us-east-1.amazonaws.com",
            "ecr.us-east-1.api.aws",
            "ecr-fips.us-east-1.api.aws",
        ),
        (
            "cn-northwest-1",
            "api.ecr.cn-northwest-1.amazonaws.com.cn",
            "api.ecr-fips.cn-northwest-1.amazonaws.com.cn",
            "ecr.cn-northwest-1.api.amazonwebservices.com.cn",
            "api.ecr-fips.cn-northwest-1.api.amazonwebservices.com.cn",
        ),
        (
            "us-gov-east-1",
            "api.ecr.us-gov-east-1.amazonaws.com",
            "ecr-fips.us-gov-east-1.amazonaws.com",
            "ecr.us-gov-east-1.api.aws",
            "ecr-fips.us-gov-east-1.api.aws",
        ),
        (
            "us-iso-west-1",
            "api.ecr.us-iso-west-1.c2s.ic.gov",
            "api.ecr-fips.us-iso-west-1.c2s.ic.gov",
            "api.ecr.us-iso-west-1.api.aws.ic.gov",
            "api.ecr-fips.us-iso-west-1.api.aws.ic.gov",
        ),
        (
            "us-isob-east-1",
            "api.ecr.us-isob-east-1.sc2s.sgov.gov",
            "api.ecr-fips.us-isob-east-1.sc2s.sgov.gov",
            "api.ecr.us-isob-east-1.api.aws.scloud",
            "api.ecr-fips.us-isob-east-1.api.aws.scloud",
        ),
        (
            "eu-isoe-west-1",
            "api.ecr.eu-isoe-west-1.cloud.adc-e.uk",
            "api.ecr-fips.eu-isoe-west-1.cloud.adc-e.uk",
            "api.ecr.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
            "api.ecr-fips.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
        ),
        (
            "us-isof-south-1",
            "api.ecr.us-isof-south-1.csp.hci.ic.gov",
            "api.ecr-fips.us-isof-south-1.csp.hci.ic.gov",
            "api.ecr.us-isof-south-1.api.aws.hci.ic.gov",
            "api.ecr-fips.us-isof-south-1.api.aws.hci.ic.gov",
        ),
        (
            "eusc-de-east-1",
            "api.ecr.eusc-de-east-1.amazonaws.eu",
            "api.ecr-fips.eusc-de-east-1.amazonaws.eu",
            "api.ecr.eusc-de-east-1.api.amazonwebservices.eu",
            "api.ecr-fips.eusc-de-east-1.api.amazonwebservices.eu",
        ),
    ];

    #[test]
    fn ecr_api_endpoints_per_partition_and_variant() {
        for (region, plain, fips, dual, fips_dual) in ECR_API {
            let expected = [plain, fips, dual, fips_dual];
            for (variant, want) in EndpointVariant::ALL.into_iter().zip(expected) {
                assert_eq!(
                    ecr_api_endpoint(region, variant).as_deref(),
                    Ok(want),
                    "{region} {variant}"
                );
            }
        }
    }

    /// (region, plain, fips, dual-stack, fips dual-stack); `None` = no such host.
    #[allow(clippy::type_complexity)]
    const ECR_REGISTRY: [(&str, &str, &str, Option<&str>, Option<&str>); 8] = [
        (
            "us-east-1",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            Some("123456789012.dkr-ecr.us-east-1.on.aws"),
            Some("123456789012.dkr-ecr-fips.us-east-1.on.aws"),
        ),
        (
            "cn-north-1",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
            Some("123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn"),
            Some("123456789012.dkr-ecr-fips.cn-north-1.on.amazonwebservices.com.cn"),
        ),
        (
            "us-gov-west-1",
            "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            Some("123456789012.dkr-ecr.us-gov-west-1.on.aws"),
            Some("123456789012.dkr-ecr-fips.us-gov-west-1.on.aws"),
        ),
        (
            "us-iso-east-1",
            "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            "123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov",
            None,
            None,
        ),
        (
            "us-isob-east-1",
            "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
            "123456789012.dkr.ecr-fips.us-isob-east-1.sc2s.sgov.gov",
            None,
            None,
        ),
        (
            "eu-isoe-west-1",
            "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
            "123456789012.dkr.ecr-fips.eu-isoe-west-1.cloud.adc-e.uk",
            None,
            None,
        ),
        (
            "us-isof-south-1",
            "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
            "123456789012.dkr.ecr-fips.us-isof-south-1.csp.hci.ic.gov",
            None,
            None,
        ),
        (
            "eusc-de-east-1",
            "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
            "123456789012.dkr.ecr-fips.eusc-de-east-1.amazonaws.eu",
            None,
            None,
        ),
    ];

    #[test]
    fn ecr_registry_hosts_per_partition_and_variant() {
        for (region, plain, fips, dual, fips_dual) in ECR_REGISTRY {
            let expected = [Some(plain), Some(fips), dual, fips_dual];
            for (variant, want) in EndpointVariant::ALL.into_iter().zip(expected) {
                let got = ecr_registry_host("123456789012", region, variant);
                match want {
                    Some(host) => assert_eq!(got.as_deref(), Ok(host), "{region} {variant}"),
                    None => {
                        let err = got.unwrap_err();
                        assert!(
                            matches!(err, PartitionError::UnsupportedVariant { .. }),
                            "{err:?}"
                        );
                        let msg = err.to_string();
                        assert!(msg.contains("dual-stack ECR registry"), "{msg}");
                        assert!(msg.contains(region), "{msg}");
                        assert!(msg.contains("turn off dual-stack"), "{msg}");
                    }
                }
            }
        }
    }

    #[test]
    fn ecr_registry_host_rejects_bad_accounts_and_regions() {
        for account in ["", "12345", "12345678901", "1234567890123", "12345678901a"] {
            let err = ecr_registry_host(account, "us-east-1", EndpointVariant::PLAIN)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("account id") && err.contains("12 ASCII digits"),
                "{err}"
            );
            assert!(err.contains(&format!("{account:?}")), "{err}");
        }
        // Arabic-Indic digits are digits to Unicode, not to AWS.
        let arabic = "\u{0661}".repeat(12);
        assert!(ecr_registry_host(&arabic, "us-east-1", EndpointVariant::PLAIN).is_err());

        let err = ecr_registry_host("123456789012", "us-east-1a", EndpointVariant::PLAIN)
            .unwrap_err()
            .to_string();
        assert!(err.contains("region \"us-east-1a\""), "{err}");
    }

    #[test]
    fn endpoints_reject_invalid_regions() {
        for variant in EndpointVariant::ALL {
            assert_eq!(sts_endpoint("", variant), Err(PartitionError::EmptyRegion));
            assert!(matches!(
                ecr_api_endpoint("moon-east-1", variant),
                Err(PartitionError::UnknownRegion { .. })
            ));
        }
    }
}
