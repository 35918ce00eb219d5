//! The pilot-light cluster: an EKS cluster already running in the target region, named by
//! the playbook (`existing_cluster`, or `rebuild --existing-cluster NAME`), that the
//! rebuild deploys to instead of provisioning one (review B5). Both `aws.network` (which
//! puts the database in the cluster's VPC, reachable from its nodes) and `aws.eks.cluster`
//! (which connects to it) read it here, as EKS describes it. It is never tagged, changed
//! or adopted as the run's: it belongs to whoever made it.

use aws_sdk_eks::types::{Cluster, ClusterStatus};

use crate::cloud::CloudError;
use crate::steps::StepError;

/// What the rebuild needs of the running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pilot {
    pub name: String,
    /// EKS's status (`ACTIVE` when usable).
    pub status: String,
    pub version: String,
    pub arn: String,
    pub endpoint: String,
    pub certificate_authority: String,
    pub vpc_id: String,
    /// The subnets the cluster was created with (its nodes' and load balancers').
    pub subnet_ids: Vec<String>,
    /// The security group EKS made for the cluster (`clusterSecurityGroupId`): the managed
    /// nodes carry it, so it is what the database lets in.
    pub security_group_id: String,
}

/// What to do when the named cluster is not there or not usable.
pub(super) const PILOT_HINT: &str = "name the running EKS cluster of the target region (`rebuild --existing-cluster NAME` or the input `existing_cluster`), or leave it empty to provision a cluster";

impl Pilot {
    /// Why the cluster cannot be deployed to, if it cannot: it is not `ACTIVE`, or EKS
    /// reports no VPC, subnets or cluster security group.
    pub(super) fn unusable(&self) -> Option<String> {
        let name = &self.name;
        if self.status != "ACTIVE" {
            return Some(format!(
                "the existing cluster `{name}` is {}, not ACTIVE",
                self.status
            ));
        }
        let missing = [
            ("vpcId", self.vpc_id.is_empty()),
            ("subnetIds", self.subnet_ids.is_empty()),
            ("clusterSecurityGroupId", self.security_group_id.is_empty()),
        ];
        let missing: Vec<&str> = missing
            .iter()
            .filter(|(_, empty)| *empty)
            .map(|(field, _)| *field)
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "EKS reports no {} for the existing cluster `{name}`",
                missing.join(", ")
            )
        })
    }

    /// The cluster, refused with the hint when it is missing or unusable.
    pub(super) async fn running(
        client: &aws_sdk_eks::Client,
        name: &str,
        region: &str,
    ) -> Result<Pilot, StepError> {
        let Some(pilot) = Pilot::describe(client, name).await? else {
            return Err(StepError::Refused {
                message: format!("there is no EKS cluster `{name}` in `{region}`"),
                hint: PILOT_HINT.to_string(),
            });
        };
        if let Some(message) = pilot.unusable() {
            return Err(StepError::Refused {
                message,
                hint: "wait until the cluster is ACTIVE, then `rebuild resume`".to_string(),
            });
        }
        Ok(pilot)
    }

    /// The cluster `name` as EKS describes it, if it exists.
    pub(super) async fn describe(
        client: &aws_sdk_eks::Client,
        name: &str,
    ) -> Result<Option<Pilot>, CloudError> {
        let found = super::eks_cluster::describe(client, name).await?;
        Ok(found.map(|found| Pilot::of(name, &found.resource)))
    }

    /// What EKS's description of the cluster `name` says.
    fn of(name: &str, cluster: &Cluster) -> Pilot {
        let text = |value: Option<&str>| value.unwrap_or_default().to_string();
        let network = cluster.resources_vpc_config();
        Pilot {
            name: name.to_string(),
            status: cluster
                .status()
                .map(ClusterStatus::as_str)
                .unwrap_or_default()
                .to_string(),
            version: text(cluster.version()),
            arn: text(cluster.arn()),
            endpoint: text(cluster.endpoint()),
            certificate_authority: text(cluster.certificate_authority().and_then(|ca| ca.data())),
            vpc_id: text(network.and_then(|network| network.vpc_id())),
            subnet_ids: network
                .map(|network| network.subnet_ids().to_vec())
                .unwrap_or_default(),
            security_group_id: text(
                network.and_then(|network| network.cluster_security_group_id()),
            ),
        }
    }
}

/// The name in an `existing_cluster` parameter, if one is given.
pub(super) fn named(existing_cluster: Option<&str>) -> Option<&str> {
    existing_cluster
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pilot() -> Pilot {
        Pilot {
            name: "shop-pilot".into(),
            status: "ACTIVE".into(),
            version: "1.35".into(),
            arn: "arn:aws:eks:ap-southeast-1:123456789012:cluster/shop-pilot".into(),
            endpoint: "https://abc.eks".into(),
            certificate_authority: "Q0E=".into(),
            vpc_id: "vpc-1".into(),
            subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
            security_group_id: "sg-1".into(),
        }
    }

    #[test]
    fn an_active_cluster_with_its_network_is_usable() {
        assert_eq!(pilot().unusable(), None);
    }

    #[test]
    fn says_why_a_cluster_cannot_be_deployed_to() {
        let creating = Pilot {
            status: "CREATING".into(),
            ..pilot()
        };
        assert_eq!(
            creating.unusable().unwrap(),
            "the existing cluster `shop-pilot` is CREATING, not ACTIVE"
        );
        let bare = Pilot {
            vpc_id: String::new(),
            security_group_id: String::new(),
            ..pilot()
        };
        assert_eq!(
            bare.unusable().unwrap(),
            "EKS reports no vpcId, clusterSecurityGroupId for the existing cluster `shop-pilot`"
        );
    }

    #[test]
    fn an_empty_name_is_no_pilot() {
        assert_eq!(named(None), None);
        assert_eq!(named(Some(" ")), None);
        assert_eq!(named(Some("shop-pilot")), Some("shop-pilot"));
    }
}
