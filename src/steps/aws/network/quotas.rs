//! The network's quotas: whether the target region has room for the VPC a new network needs
//! (5 VPCs, the default VPC included; Amazon VPC quotas), and, for the step that makes the
//! NAT gateways (`aws.network.egress`, or `aws.network` with `nat_gateways`), room for their
//! Elastic IPs (5 by default) and in each zone that gets a gateway room for it (5 NAT
//! gateways per Availability Zone by default, pending and available ones counted). What
//! the stack's step made already (a resume adopts it) needs no room. The limits come from
//! Service Quotas through [`crate::steps::aws::quotas`].

use std::collections::HashMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Tag};

use crate::cloud::{CloudError, CloudResultExt};
use crate::runtime::Owner;
use crate::steps::context::TAG_STEP;

use super::super::quotas::{Quota, room};
use super::super::tags::Marks;
use crate::cloud::Cloud;

/// VPCs per region.
pub(super) const VPCS: Quota = Quota {
    what: "VPCs",
    service: "vpc",
    code: "L-F678F1CE",
    default: 5,
    remedy: "delete unused VPCs",
};

/// Elastic IPs per region.
pub(super) const ELASTIC_IPS: Quota = Quota {
    what: "Elastic IPs",
    service: "ec2",
    code: "L-0263D0A3",
    default: 5,
    remedy: "release unused Elastic IPs",
};

/// NAT gateways per Availability Zone.
pub(super) const NAT_GATEWAYS: Quota = Quota {
    what: "NAT gateways",
    service: "vpc",
    code: "L-FE5A380F",
    default: 5,
    remedy: "delete unused NAT gateways in that zone",
};

/// What the region holds now: every VPC (the default VPC included), Elastic IP and live NAT
/// gateway (by zone), and how many of each the stack's step made already (a resume or a
/// new run of the stack needs only the rest). What was not counted ([`Counting`]) is zero.
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub vpcs: usize,
    pub addresses: usize,
    pub our_vpcs: usize,
    pub our_addresses: usize,
    /// Zone → pending and available NAT gateways there.
    pub nat_gateways: HashMap<String, usize>,
    /// Zone → those of them the stack's step made.
    pub our_nat_gateways: HashMap<String, usize>,
}

/// What a plan counts: the VPCs (a network that makes one), the Elastic IPs and NAT
/// gateways (one that makes NAT gateways). What is not counted stays zero, unasked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counting {
    pub vpcs: bool,
    pub egress: bool,
}

/// Count the region's VPCs, Elastic IPs and NAT gateways, as far as `counting` asks, all
/// at once; `owner` and `step`: whose are ours.
pub(super) async fn usage(
    client: &Client,
    owner: &Owner,
    step: &str,
    counting: Counting,
) -> Result<Usage, CloudError> {
    let ours = |tags: &[Tag]| {
        let tags = Marks::ec2(tags);
        tags.owned_by(owner) && tags.get(TAG_STEP) == Some(step)
    };
    // Three lists at once.
    let vpcs = async {
        let (mut all, mut our) = (0, 0);
        if !counting.vpcs {
            return Ok((all, our));
        }
        let mut pages = client.describe_vpcs().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.cloud("DescribeVpcs", None)?;
            all += page.vpcs().len();
            our += page.vpcs().iter().filter(|vpc| ours(vpc.tags())).count();
        }
        Ok::<_, CloudError>((all, our))
    };
    let addresses = async {
        if !counting.egress {
            return Ok((0, 0));
        }
        let addresses = client
            .describe_addresses()
            .send()
            .await
            .cloud("DescribeAddresses", None)?;
        let our = addresses
            .addresses()
            .iter()
            .filter(|address| ours(address.tags()))
            .count();
        Ok((addresses.addresses().len(), our))
    };
    // NAT gateways name their subnet, not their zone: (subnet, ours) first.
    let gateways = async {
        let live = Filter::builder()
            .name("state")
            .values("pending")
            .values("available")
            .build();
        let mut gateways = Vec::new();
        if !counting.egress {
            return Ok(gateways);
        }
        let mut pages = client
            .describe_nat_gateways()
            .filter(live)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.cloud("DescribeNatGateways", None)?;
            gateways.extend(page.nat_gateways().iter().filter_map(|gateway| {
                Some((gateway.subnet_id()?.to_string(), ours(gateway.tags())))
            }));
        }
        Ok(gateways)
    };
    let ((vpcs, our_vpcs), (addresses, our_addresses), gateways) =
        tokio::try_join!(vpcs, addresses, gateways)?;
    let mut usage = Usage {
        vpcs,
        our_vpcs,
        addresses,
        our_addresses,
        ..Usage::default()
    };
    let zones = subnet_zones(client, &gateways).await?;
    for (subnet, ours) in gateways {
        let Some(zone) = zones.get(&subnet) else {
            continue;
        };
        *usage.nat_gateways.entry(zone.clone()).or_default() += 1;
        if ours {
            *usage.our_nat_gateways.entry(zone.clone()).or_default() += 1;
        }
    }
    Ok(usage)
}

/// Subnet → its zone, for the subnets of `gateways`.
async fn subnet_zones(
    client: &Client,
    gateways: &[(String, bool)],
) -> Result<HashMap<String, String>, CloudError> {
    let mut subnets: Vec<String> = gateways.iter().map(|(subnet, _)| subnet.clone()).collect();
    subnets.sort();
    subnets.dedup();
    let mut zones = HashMap::new();
    if subnets.is_empty() {
        return Ok(zones);
    }
    let filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(subnets))
        .build();
    let mut pages = client
        .describe_subnets()
        .filters(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeSubnets", None)?;
        for subnet in page.subnets() {
            if let (Some(id), Some(zone)) = (subnet.subnet_id(), subnet.availability_zone()) {
                zones.insert(id.to_string(), zone.to_string());
            }
        }
    }
    Ok(zones)
}

/// The NAT gateways each zone still needs: one in each of the first `count` zones (the run
/// puts them in the first public subnets), less what this run's step made there already.
pub(super) fn nat_gateways_needed(
    zones: &[String],
    count: usize,
    ours: &HashMap<String, usize>,
) -> Vec<(String, usize)> {
    zones
        .iter()
        .take(count)
        .map(|zone| {
            let made = ours.get(zone).copied().unwrap_or_default();
            (zone.clone(), 1usize.saturating_sub(made))
        })
        .collect()
}

/// What the plan says of the NAT gateways' quotas: the summaries to show (the Elastic IPs,
/// then the fullest zone of those that get a gateway) and the problems (without the step's
/// name), for `count` gateways in the first of `zones`, `used` being what the region holds.
pub(super) async fn nat_rooms(
    cloud: &Cloud,
    region: &str,
    zones: &[String],
    count: usize,
    used: &Usage,
) -> (Vec<String>, Vec<String>) {
    let addresses = room(cloud, region, ELASTIC_IPS, used.addresses).await;
    let mut summaries = vec![addresses.summary()];
    let needed = count.saturating_sub(used.our_addresses);
    let mut problems: Vec<String> = addresses.problem(needed, region).into_iter().collect();
    // NAT gateways: a quota per zone, one gateway in each zone that gets one.
    let needed = nat_gateways_needed(zones, count, &used.our_nat_gateways);
    if needed.is_empty() {
        return (summaries, problems);
    }
    let per_zone = room(cloud, region, NAT_GATEWAYS, 0).await;
    // The plan shows the fullest zone of those that get one.
    let mut fullest: Option<(&str, usize)> = None;
    for (zone, needed) in &needed {
        let there = used.nat_gateways.get(zone).copied().unwrap_or_default();
        if fullest.is_none_or(|(_, most)| there > most) {
            fullest = Some((zone, there));
        }
        problems.extend(per_zone.with_used(there).problem(*needed, zone));
    }
    if let Some((zone, there)) = fullest {
        summaries.push(format!("{} in {zone}", per_zone.with_used(there).summary()));
    }
    (summaries, problems)
}

/// Whether the stack's step made a live NAT gateway in each of the first `count` of
/// `zones` already (then its plan adopts them).
pub(super) fn nat_gateways_made(zones: &[String], count: usize, used: &Usage) -> bool {
    nat_gateways_needed(zones, count, &used.our_nat_gateways)
        .iter()
        .all(|(_, needed)| *needed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|zone| (*zone).to_string()).collect()
    }

    #[test]
    fn one_nat_gateway_is_needed_in_each_zone_that_gets_one_less_those_made_already() {
        let all = zones(&["z-1a", "z-1b", "z-1c"]);
        let none = HashMap::new();
        assert_eq!(
            nat_gateways_needed(&all, 1, &none),
            vec![("z-1a".to_string(), 1)]
        );
        let ours = HashMap::from([("z-1b".to_string(), 1)]);
        let needed = nat_gateways_needed(&all, 3, &ours);
        let counts: Vec<usize> = needed.iter().map(|(_, needed)| *needed).collect();
        assert_eq!(counts, vec![1, 0, 1]);
    }

    #[test]
    fn the_gateways_are_made_when_each_zone_that_gets_one_has_one_of_ours() {
        let all = zones(&["z-1a", "z-1b", "z-1c"]);
        let used = |ours: &[&str]| Usage {
            our_nat_gateways: ours.iter().map(|zone| ((*zone).to_string(), 1)).collect(),
            ..Usage::default()
        };
        assert!(nat_gateways_made(&all, 1, &used(&["z-1a"])));
        assert!(!nat_gateways_made(&all, 3, &used(&["z-1a", "z-1c"])));
        assert!(nat_gateways_made(&all, 3, &used(&["z-1a", "z-1b", "z-1c"])));
        assert!(!nat_gateways_made(&all, 1, &used(&[])));
    }
}
