//! NAT gateways, each with its own Elastic IP, in public subnets, and the wait until they
//! are `available` (1–2 minutes on AWS): what `aws.network.egress` makes, and what
//! `aws.network` still makes itself with `nat_gateways` above 0 (playbooks and runs from
//! before the egress had a step of its own). Gateway *i* goes into the public subnet of
//! zone *i* and is named `nat-X` after the zone's letter (its address `nat-X-eip`); the
//! private route table of zone *i* leaves through gateway *i* modulo their number. Every
//! gateway and address goes through the ownership protocol on [`Ec2`], tagged with the
//! step that makes it.

use aws_sdk_ec2::types::{DomainType, ResourceType};
use std::time::Duration;

use crate::cloud::CloudResultExt;
use crate::steps::StepError;
use crate::steps::context::{Poll, Wait};

use super::super::ownership::Ownership;
use super::cidr::zone_letter;
use super::resources::{Ec2, RouteTarget, missing};

/// How long a NAT gateway usually takes to become `available` (1–2 minutes).
const NAT_TYPICAL: Duration = Duration::from_secs(2 * 60);

/// NAT gateways in the first `count` of `subnets` (one per zone, `subnets` in the order of
/// `zones`), made or adopted, then waited for until available. Safe point `after-nat`
/// once each was requested.
pub(super) async fn gateways(
    ec2: Ec2<'_>,
    zones: &[String],
    subnets: &[String],
    count: usize,
) -> Result<Vec<String>, StepError> {
    let mut gateways = Vec::new();
    for (subnet, zone) in subnets.iter().zip(zones).take(count) {
        let name = format!("nat-{}", zone_letter(zone));
        gateways.push(ec2.nat_gateway(subnet, &name).await?);
    }
    ec2.context.checkpoint("after-nat")?;
    for gateway in &gateways {
        ec2.wait_nat(gateway).await?;
    }
    Ok(gateways)
}

/// The NAT gateway zone `index`'s private route table leaves through (gateway *i* modulo
/// their number), if there are any.
pub(super) fn for_zone(gateways: &[String], index: usize) -> Option<&str> {
    (!gateways.is_empty()).then(|| gateways[index % gateways.len()].as_str())
}

/// The default route of each zone's private route table (`tables`, in zone order) through
/// its NAT gateway, unless it is there.
pub(super) async fn routes(
    ec2: Ec2<'_>,
    tables: &[String],
    gateways: &[String],
) -> Result<(), StepError> {
    for (index, table) in tables.iter().enumerate() {
        if let Some(gateway) = for_zone(gateways, index) {
            ec2.route(table, RouteTarget::Nat(gateway)).await?;
        }
    }
    Ok(())
}

impl Ec2<'_> {
    /// An Elastic IP for a NAT gateway.
    async fn elastic_ip(&self, name: &str) -> Result<String, StepError> {
        let find = || async move {
            let found = self
                .client
                .describe_addresses()
                .set_filters(self.filters(name))
                .send()
                .await
                .cloud("DescribeAddresses", Some(name.into()))?;
            Ok(self.ours(found.addresses(), name, |a| a.tags(), |a| a.allocation_id()))
        };
        let create = || async move {
            let created = self
                .client
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(self.tags(ResourceType::ElasticIp, name))
                .send()
                .await
                .cloud("AllocateAddress", Some(name.into()))?;
            let id = created.allocation_id().map(str::to_string);
            id.ok_or_else(|| missing("AllocateAddress", "AllocationId"))
        };
        Ok(self.ensure("elastic-ip", find, create).await?.id)
    }

    /// A NAT gateway in a public subnet, with its own Elastic IP. One that is `deleting`,
    /// `deleted` or `failed` is not adopted.
    async fn nat_gateway(&self, subnet: &str, name: &str) -> Result<String, StepError> {
        let find = || async move {
            let (live, _) = self.nat_gateways_named(name).await?;
            Ok(Ownership::tagged(live))
        };
        let create = || async move {
            let allocation = self.elastic_ip(&format!("{name}-eip")).await?;
            // A new token once a gateway of this name has failed or gone: EC2 would answer
            // the old token with the dead gateway.
            let (_, dead) = self.nat_gateways_named(name).await?;
            let token = self.client_token(name, dead);
            let create = || async {
                self.client
                    .create_nat_gateway()
                    .subnet_id(subnet)
                    .allocation_id(&allocation)
                    .client_token(&token)
                    .tag_specifications(self.tags(ResourceType::Natgateway, name))
                    .send()
                    .await
                    .cloud("CreateNatGateway", Some(name.into()))
            };
            let names = [subnet, allocation.as_str()];
            let created = self.settle.call(self.context, &names, create).await?;
            let id = created
                .nat_gateway()
                .and_then(|gateway| gateway.nat_gateway_id());
            id.map(str::to_string)
                .ok_or_else(|| missing("CreateNatGateway", "NatGatewayId"))
        };
        Ok(self.ensure("nat-gateway", find, create).await?.id)
    }

    /// The NAT gateways of ours named `name`: the live one's id, if any, and how many
    /// failed or are being or were deleted.
    async fn nat_gateways_named(&self, name: &str) -> Result<(Option<String>, usize), StepError> {
        let found = self
            .client
            .describe_nat_gateways()
            .set_filter(self.filters(name))
            .send()
            .await
            .cloud("DescribeNatGateways", Some(name.into()))?;
        let ours = found
            .nat_gateways()
            .iter()
            .filter(|gateway| self.owner().owns(gateway.tags(), name));
        let (dead, live): (Vec<_>, Vec<_>) = ours.partition(|gateway| {
            let state = gateway.state().map(|state| state.as_str());
            matches!(state, Some("deleting" | "deleted" | "failed"))
        });
        let live = live.iter().find_map(|gateway| gateway.nat_gateway_id());
        Ok((live.map(str::to_string), dead.len()))
    }

    /// Wait until the NAT gateway `id` is `available` (`pending` keeps waiting); one that
    /// `failed` ends the wait at once with EC2's failure code and message.
    async fn wait_nat(&self, id: &str) -> Result<(), StepError> {
        let what = format!("NAT gateway {id} to be available");
        self.context
            .wait_for(
                Wait::new("nat-available", what).typically(NAT_TYPICAL),
                || async {
                    let describe = || async {
                        self.client
                            .describe_nat_gateways()
                            .nat_gateway_ids(id)
                            .send()
                            .await
                            .cloud("DescribeNatGateways", Some(id.to_string()))
                    };
                    let found = self.settle.call(self.context, &[id], describe).await?;
                    let gateway = found.nat_gateways().first();
                    let state = gateway.and_then(|gateway| gateway.state());
                    let state = state.map_or("missing", |state| state.as_str()).to_string();
                    match (state.as_str(), gateway) {
                        ("available", _) => Ok(Poll::Ready(())),
                        ("pending", _) => Ok(Poll::Pending(state)),
                        ("failed", Some(gateway)) => Err(nat_failed(id, gateway)),
                        _ => Err(StepError::BadState {
                            resource: id.to_string(),
                            status: state,
                        }),
                    }
                },
            )
            .await
    }
}

/// A NAT gateway that failed: EC2's reason, and what to do.
fn nat_failed(id: &str, gateway: &aws_sdk_ec2::types::NatGateway) -> StepError {
    let code = gateway.failure_code().unwrap_or("no failure code");
    let message = gateway.failure_message().unwrap_or("no failure message");
    StepError::Failed {
        resource: format!("NAT gateway {id}"),
        status: "failed".to_string(),
        reason: format!("{code}: {message}"),
        hint: "fix what EC2 names (the Elastic IP, the subnet, the NAT gateway quota), then `rebuild resume`: a failed NAT gateway is never adopted, a new one is created (delete the failed one, or EC2 removes it within an hour)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_zone_leaves_through_its_gateway_or_the_one_there_is() {
        let three: Vec<String> = ["nat-1", "nat-2", "nat-3"].map(String::from).to_vec();
        assert_eq!(for_zone(&three, 1), Some("nat-2"));
        let one = &three[..1];
        assert_eq!(for_zone(one, 2), Some("nat-1"));
        assert_eq!(for_zone(&[], 0), None, "no gateway, no route");
    }

    /// Regression: with their lookup and create futures held inline, a NAT gateway's
    /// future was 135 KB in a debug build, and a full run overflowed a worker's stack.
    #[test]
    fn a_nat_gateway_keeps_its_future_small() {
        fn size<'a, F>(_: fn(&'a Ec2<'a>, &'a str, &'a str) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        assert!(size(Ec2::nat_gateway) < 4096, "{}", size(Ec2::nat_gateway));
    }
}
