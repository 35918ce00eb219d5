//! The plan's On-Demand vCPU check (review D15): a node group may grow to `max_size` nodes
//! of its largest instance type, and EC2 refuses a launch past the region's "Running
//! On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" quota (`VcpuLimitExceeded`,
//! which the node group reports as a launch failure long after the plan). The quota counts
//! the vCPUs of the running and pending On-Demand instances of the standard families;
//! vCPUs come from `DescribeInstanceTypes` (`VCpuInfo.DefaultVCpus`). The node group's own
//! instances (a resume adopting it) need no room. Spot capacity has its own quota and is
//! not checked.

use std::collections::HashMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, InstanceLifecycleType, InstanceType, Tag};

use crate::cloud::{Cloud, CloudError, CloudResultExt};
use crate::steps::StepProblem;
use crate::steps::aws::quotas::{Quota, room};

/// Running On-Demand Standard instances, in vCPUs per region.
const STANDARD_VCPUS: Quota = Quota {
    what: "On-Demand Standard vCPUs",
    service: "ec2",
    code: "L-1216C47A",
    // What Service Quotas gives as AWS's default (`GetAWSDefaultServiceQuota`).
    default: 5,
    remedy: "stop unused standard instances, lower `max_size` or choose smaller `instance_types`",
};

/// Families with their own quotas though their letter is a standard one (Inferentia,
/// Trainium, DL, HPC, Mac).
const NOT_STANDARD: [&str; 5] = ["inf", "trn", "dl", "hpc", "mac"];

/// Whether instances of `kind` (`m6i.large`) count against the standard quota: families
/// A, C, D, H, I, M, R, T and Z.
fn is_standard(kind: &str) -> bool {
    let family = kind.split('.').next().unwrap_or_default();
    let standard_letter = family
        .chars()
        .next()
        .is_some_and(|letter| "acdhimrtz".contains(letter));
    standard_letter && !NOT_STANDARD.iter().any(|prefix| family.starts_with(prefix))
}

/// The vCPUs a node group needs room for: `max_size` nodes of the largest type, less what
/// its own running instances use already.
fn needed(max_size: usize, largest: usize, ours: usize) -> usize {
    max_size.saturating_mul(largest).saturating_sub(ours)
}

/// Who the node group is (cluster, node group name): EKS tags its instances so.
pub(super) type NodeGroup<'a> = (&'a str, &'a str);

/// What the plan shows and the problem, if the node group may not fit.
pub(super) struct Check {
    /// For the plan's details: `4 of 32 On-Demand Standard vCPUs, up to 12 more`.
    pub summary: String,
    pub problem: Option<StepProblem>,
    /// When the account's quota could not be read: the shortfall against AWS's default,
    /// said but not refused (established accounts have raised this quota almost always,
    /// and a guess must not stop a recovery).
    pub warning: Option<String>,
}

/// Check the node group of `types`, up to `max_size` nodes, against the quota in `region`.
pub(super) async fn check(
    cloud: &Cloud,
    region: &str,
    types: &[String],
    max_size: usize,
    group: Option<NodeGroup<'_>>,
) -> Result<Check, CloudError> {
    let client = cloud.ec2(region);
    let sizes = match vcpus_of(&client, types).await {
        Ok(sizes) => sizes,
        Err(error) if error.is("InvalidInstanceType") => {
            return Ok(Check {
                summary: "not checked: an instance type is unknown".to_string(),
                problem: Some(StepProblem::from(format!(
                    "EC2 in `{region}` does not know every type of `instance_types` ({}): {error}",
                    types.join(", ")
                ))),
                warning: None,
            });
        }
        Err(error) => return Err(error),
    };
    // Other families (GPU, high memory) count against quotas of their own.
    let Some((largest_type, largest)) = types
        .iter()
        .filter(|kind| is_standard(kind))
        .filter_map(|kind| Some((kind, *sizes.get(kind)?)))
        .max_by_key(|(_, vcpus)| *vcpus)
    else {
        return Ok(Check {
            summary: "not checked: no standard-family instance types".to_string(),
            problem: None,
            warning: None,
        });
    };
    let (used, ours) = running(&client, group).await?;
    let room = room(cloud, region, STANDARD_VCPUS, used).await;
    let needed = needed(max_size, largest, ours);
    let shortfall = room.problem(needed, region).map(|problem| {
        format!(
            "the node group may grow to {max_size} × {largest} vCPUs (`{largest_type}`): {problem}"
        )
    });
    let (problem, warning) = match room.assumed {
        Some(_) => (None, shortfall),
        None => (shortfall.map(StepProblem::from), None),
    };
    Ok(Check {
        summary: format!("{}, up to {needed} more", room.summary()),
        problem,
        warning,
    })
}

/// The default vCPUs of each of `types`.
async fn vcpus_of(client: &Client, types: &[String]) -> Result<HashMap<String, usize>, CloudError> {
    let mut sizes = HashMap::new();
    if types.is_empty() {
        return Ok(sizes);
    }
    let mut pages = client
        .describe_instance_types()
        .set_instance_types(Some(
            types
                .iter()
                .map(|kind| InstanceType::from(kind.as_str()))
                .collect(),
        ))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeInstanceTypes", None)?;
        for info in page.instance_types() {
            let vcpus = info.v_cpu_info().and_then(|cpu| cpu.default_v_cpus());
            if let (Some(kind), Some(vcpus)) = (info.instance_type(), vcpus) {
                sizes.insert(kind.as_str().to_string(), vcpus.max(0) as usize);
            }
        }
    }
    Ok(sizes)
}

/// The vCPUs of the region's running and pending On-Demand standard instances, and of
/// those the node group `group` has.
async fn running(
    client: &Client,
    group: Option<NodeGroup<'_>>,
) -> Result<(usize, usize), CloudError> {
    let live = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .build();
    let mut instances: Vec<(String, bool)> = Vec::new();
    let mut pages = client
        .describe_instances()
        .filters(live)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeInstances", None)?;
        let all = page
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances());
        for instance in all {
            let spot = instance.instance_lifecycle() == Some(&InstanceLifecycleType::Spot);
            let Some(kind) = instance
                .instance_type()
                .map(|kind| kind.as_str().to_string())
            else {
                continue;
            };
            if spot || !is_standard(&kind) {
                continue;
            }
            instances.push((
                kind,
                group.is_some_and(|group| of_group(instance.tags(), group)),
            ));
        }
    }
    let mut types: Vec<String> = instances.iter().map(|(kind, _)| kind.clone()).collect();
    types.sort();
    types.dedup();
    let sizes = vcpus_of(client, &types).await?;
    let (mut used, mut ours) = (0, 0);
    for (kind, of_group) in instances {
        let vcpus = sizes.get(&kind).copied().unwrap_or_default();
        used += vcpus;
        if of_group {
            ours += vcpus;
        }
    }
    Ok((used, ours))
}

/// Whether an instance's `tags` say it is a node of `group` (EKS's own tags).
fn of_group(tags: &[Tag], (cluster, name): NodeGroup<'_>) -> bool {
    let value = |key: &str| {
        tags.iter()
            .find(|tag| tag.key() == Some(key))
            .and_then(Tag::value)
    };
    value("eks:cluster-name") == Some(cluster) && value("eks:nodegroup-name") == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_families_are_a_c_d_h_i_m_r_t_z_without_those_of_their_own() {
        for kind in [
            "m6i.large",
            "c7g.xlarge",
            "t3.micro",
            "r6a.2xlarge",
            "z1d.large",
            "i4i.large",
        ] {
            assert!(is_standard(kind), "{kind}");
        }
        for kind in [
            "p5.48xlarge",
            "g5.xlarge",
            "x2idn.large",
            "inf2.xlarge",
            "trn1.2xlarge",
            "dl1.24xlarge",
            "hpc7a.96xlarge",
            "mac2.metal",
            "u-6tb1.metal",
        ] {
            assert!(!is_standard(kind), "{kind}");
        }
    }

    #[test]
    fn the_need_is_max_size_times_the_largest_type_less_the_group_s_own() {
        assert_eq!(needed(6, 2, 0), 12);
        assert_eq!(needed(6, 4, 8), 16);
        assert_eq!(
            needed(3, 2, 8),
            0,
            "a group already larger needs nothing more"
        );
    }
}
