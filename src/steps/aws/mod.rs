//! The AWS step kinds, one module each, named after the kind: `network/` (`aws.network`;
//! its `egress.rs` is `aws.network.egress`, the NAT gateways), `rds_restore/`
//! (`aws.rds.restore`), `eks_cluster` (`aws.eks.cluster`), `eks_nodegroup`
//! (`aws.eks.nodegroup`), `eks_pod_identity` (`aws.eks.pod_identity`),
//! `ingress` (`aws.ec2.ingress`), `acm_certificate`
//! (`aws.acm.certificate`) and `route53_cutover` (`dns.cutover`). What they share lives
//! here: the ownership protocol every AWS resource goes through ([`ownership`]: find by
//! our tags or name → adopt, refuse a stranger, else create tagged → finish), the tags it
//! reads and writes ([`tags`]), IAM role lookups ([`iam`]), Service Quotas against what is used ([`quotas`]).

mod acm_certificate;
mod eks_cluster;
mod eks_nodegroup;
mod eks_pod_identity;
mod iam;
mod ingress;
mod network;
mod ownership;
mod pilot;
mod quotas;
mod rds_restore;
mod route53_cutover;
mod rules;
mod tags;

pub(super) use acm_certificate::AwsAcmCertificate;
pub(super) use eks_cluster::AwsEksCluster;
pub(super) use eks_nodegroup::AwsEksNodegroup;
pub(super) use eks_pod_identity::AwsEksPodIdentity;
pub(super) use ingress::AwsEc2Ingress;
pub(super) use network::{AwsNetwork, AwsNetworkEgress};
pub(super) use rds_restore::AwsRdsRestore;
pub(super) use route53_cutover::DnsCutover;

use crate::playbook::ParamSpec;

/// A parameter the kind's table marks required.
const fn required(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: true,
        help,
    }
}

/// A parameter the kind's table marks optional.
const fn optional(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: false,
        help,
    }
}

/// EKS's health issues of a node group or an add-on, as one reason: `CODE: message; …`.
fn health_reason<'a>(
    issues: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> String {
    let issues: Vec<String> = issues
        .into_iter()
        .map(|(code, message)| {
            format!(
                "{}: {}",
                code.unwrap_or("unknown"),
                message.unwrap_or("no message")
            )
        })
        .collect();
    if issues.is_empty() {
        "EKS reports no health issue".to_string()
    } else {
        issues.join("; ")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_issues_read_as_one_reason() {
        assert_eq!(super::health_reason([]), "EKS reports no health issue");
        assert_eq!(
            super::health_reason([
                (
                    Some("NodeCreationFailure"),
                    Some("instances failed to join")
                ),
                (None, None),
            ]),
            "NodeCreationFailure: instances failed to join; unknown: no message"
        );
    }
}
