//! The network's quotas: whether the target region has room for the VPC and the Elastic
//! IPs a new network needs (5 VPCs, the default VPC included, and 5 Elastic IPs by default;
//! Amazon VPC quotas), and each zone that gets a NAT gateway room for it (5 NAT gateways
//! per Availability Zone by default, pending and available ones counted). What this run's
//! step made already (a resume adopts it) needs no room. The limits come from Service
//! Quotas through [`crate::steps::aws::quotas`].

use std::collections::HashMap;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Tag};

use crate::cloud::{CloudError, CloudResultExt};
use crate::runtime::Owner;
use crate::steps::context::TAG_STEP;

use super::super::quotas::Quota;
use super::super::tags::Marks;

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
/// new run of the stack needs only the rest).
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

/// Count the region's VPCs, Elastic IPs and NAT gateways; `owner` and `step`: whose are
/// ours.
pub(super) async fn usage(client: &Client, owner: &Owner, step: &str) -> Result<Usage, CloudError> {
    let ours = |tags: &[Tag]| {
        let tags = Marks::ec2(tags);
        tags.owned_by(owner) && tags.get(TAG_STEP) == Some(step)
    };
    let mut usage = Usage::default();
    let mut pages = client.describe_vpcs().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeVpcs", None)?;
        usage.vpcs += page.vpcs().len();
        usage.our_vpcs += page.vpcs().iter().filter(|vpc| ours(vpc.tags())).count();
    }
    let addresses = client
        .describe_addresses()
        .send()
        .await
        .cloud("DescribeAddresses", None)?;
    usage.addresses = addresses.addresses().len();
    usage.our_addresses = addresses
        .addresses()
        .iter()
        .filter(|address| ours(address.tags()))
        .count();
    // NAT gateways name their subnet, not their zone: (subnet, ours) first.
    let live = Filter::builder()
        .name("state")
        .values("pending")
        .values("available")
        .build();
    let mut gateways = Vec::new();
    let mut pages = client
        .describe_nat_gateways()
        .filter(live)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeNatGateways", None)?;
        gateways.extend(
            page.nat_gateways().iter().filter_map(|gateway| {
                Some((gateway.subnet_id()?.to_string(), ours(gateway.tags())))
            }),
        );
    }
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
}
