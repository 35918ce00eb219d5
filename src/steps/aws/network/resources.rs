//! The network's EC2 resources, each giving only its own lookup and create calls to the
//! ownership protocol (found by the step's tags, created tagged): VPC, subnet, internet
//! gateway, route table and security group (the NAT gateways and their Elastic IPs are in
//! [`super::nat`], on the same [`Ec2`]). Then what is not owned but checked before it is
//! added (routes, route table associations, security group rules), and the zone and VPC
//! lookups planning shares. Every call naming an id this attempt created goes through
//! [`Settle::call`] (EC2 may not know the id yet); every lookup that finds nothing, through
//! [`Settle::grace`] first.

use std::future::Future;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, IpPermission, ResourceType, RouteTable, Tag, TagSpecification,
    UserIdGroupPair, VpcAttributeName,
};

use sha2::{Digest, Sha256};

use crate::cloud::{CloudError, CloudResultExt};
use crate::steps::{StepContext, StepError};

use super::super::ownership::{Ensured, Found, Kind, Ownership, ensure};
use super::super::rules;
use super::super::tags::{Mark, ec2_tags, filter};
use super::settle::Settle;

/// The zones of the client's region that are available, sorted by name (no Local or
/// Wavelength zones).
pub(super) async fn available_zones(client: &Client) -> Result<Vec<String>, CloudError> {
    let answer = client
        .describe_availability_zones()
        .filters(filter("state", "available"))
        .send()
        .await
        .cloud("DescribeAvailabilityZones", None)?;
    let mut zones: Vec<String> = answer
        .availability_zones()
        .iter()
        .filter(|zone| {
            zone.zone_type()
                .is_none_or(|kind| kind == "availability-zone")
        })
        .filter_map(|zone| zone.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    Ok(zones)
}

/// The VPC `owner` made, if any.
pub(super) async fn find_vpc(
    client: &Client,
    owner: Mark<'_>,
) -> Result<Option<String>, CloudError> {
    let answer = client
        .describe_vpcs()
        .set_filters(Some(owner.filters("vpc")))
        .send()
        .await
        .cloud("DescribeVpcs", None)?;
    Ok(answer
        .vpcs()
        .iter()
        .filter(|vpc| owner.owns(vpc.tags(), "vpc"))
        .find_map(|vpc| vpc.vpc_id().map(str::to_string)))
}

/// Where a default route goes.
pub(super) enum RouteTarget<'a> {
    /// The internet gateway (public subnets).
    Gateway(&'a str),
    /// A NAT gateway (private subnets).
    Nat(&'a str),
}

/// What a security group rule lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// All traffic.
    All,
    /// TCP on one port.
    Tcp(u16),
}

impl Protocol {
    /// EC2's protocol name and port.
    fn ec2(self) -> (&'static str, Option<i32>) {
        match self {
            Self::All => ("-1", None),
            Self::Tcp(port) => ("tcp", Some(i32::from(port))),
        }
    }
}

/// The EC2 client and the step: every network resource is made through here.
#[derive(Clone, Copy)]
pub(super) struct Ec2<'a> {
    pub client: &'a Client,
    pub context: &'a StepContext,
    pub settle: &'a Settle,
}

/// An internet gateway found: whether it is attached to the VPC decides what is left to do.
struct Gateway {
    id: String,
    attached: bool,
}

impl Found for Gateway {
    fn id(&self) -> &str {
        &self.id
    }
}

/// An answer that lacks `field`.
pub(super) fn missing(operation: &str, field: &str) -> StepError {
    CloudError::missing_field(operation, field).into()
}

impl Ec2<'_> {
    /// The mark of what the step makes.
    pub(super) fn owner(&self) -> Mark<'_> {
        Mark::of(self.context)
    }

    /// EC2 filters for the step's resource `name`.
    pub(super) fn filters(&self, name: &str) -> Option<Vec<aws_sdk_ec2::types::Filter>> {
        Some(self.owner().filters(name))
    }

    /// The tag specification of the step's resource `name`.
    pub(super) fn tags(&self, resource_type: ResourceType, name: &str) -> TagSpecification {
        ec2_tags(self.context, resource_type, name, &[])
    }

    /// The ownership protocol for a resource found by the step's tags (`journal`: its
    /// type, as the journal records it). A lookup that finds nothing looks again after
    /// the grace when an earlier attempt may have made it moments ago; what is created is
    /// remembered as new.
    pub(super) async fn ensure<T, Find, Create>(
        &self,
        journal: &'static str,
        find: impl Fn() -> Find,
        create: impl FnOnce() -> Create,
    ) -> Result<Ensured<T>, StepError>
    where
        T: Found,
        Find: Future<Output = Result<Ownership<T>, StepError>>,
        Create: Future<Output = Result<String, StepError>>,
    {
        let (settle, context) = (self.settle, self.context);
        let found = || async move {
            match find().await? {
                Ownership::Absent if settle.grace(context).await? => find().await,
                found => Ok(found),
            }
        };
        let ensured = ensure(context, Kind::tagged(journal), found, create).await?;
        if ensured.adopted.is_none() {
            settle.created(&ensured.id);
        }
        Ok(ensured)
    }

    /// A `ClientToken` for creating `name` (EC2 answers a create repeated with the same
    /// token with what the first one made): the same for every attempt of this run and
    /// step, until `generation` changes.
    pub(super) fn client_token(&self, name: &str, generation: usize) -> String {
        let context = self.context;
        let seed = format!(
            "rebuild\n{}\n{}\n{name}\n{generation}",
            context.run_id, context.step_id
        );
        let digest = Sha256::digest(seed.as_bytes());
        digest
            .iter()
            .take(24)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The id of the first of `items` that carries the step's tags for `name`.
    pub(super) fn ours<T>(
        &self,
        items: &[T],
        name: &str,
        tags: fn(&T) -> &[Tag],
        id: fn(&T) -> Option<&str>,
    ) -> Ownership<String> {
        let mut ours = items
            .iter()
            .filter(|item| self.owner().owns(tags(item), name));
        Ownership::tagged(ours.find_map(id).map(str::to_string))
    }

    /// The VPC, with DNS hostnames on (also when adopted: an earlier attempt may have died
    /// between the two calls).
    pub(super) async fn vpc(&self, cidr: &str) -> Result<String, StepError> {
        let find = || async move {
            Ok(Ownership::tagged(
                find_vpc(self.client, self.owner()).await?,
            ))
        };
        let create = || async move {
            let created = self
                .client
                .create_vpc()
                .cidr_block(cidr)
                .tag_specifications(self.tags(ResourceType::Vpc, "vpc"))
                .send()
                .await
                .cloud("CreateVpc", Some(cidr.to_string()))?;
            let id = created.vpc().and_then(|vpc| vpc.vpc_id());
            id.map(str::to_string)
                .ok_or_else(|| missing("CreateVpc", "VpcId"))
        };
        let ensured = self.ensure("vpc", find, create).await?;
        let id = ensured.id;
        if ensured.adopted.is_some() && self.vpc_has_dns_hostnames(&id).await? {
            return Ok(id);
        }
        let modify = || async {
            self.client
                .modify_vpc_attribute()
                .vpc_id(&id)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .cloud("ModifyVpcAttribute", Some(id.clone()))
        };
        self.settle.call(self.context, &[&id], modify).await?;
        Ok(id)
    }

    /// Whether the adopted VPC `id` has DNS hostnames on already (then a re-run leaves it).
    async fn vpc_has_dns_hostnames(&self, id: &str) -> Result<bool, StepError> {
        let answer = self
            .client
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .cloud("DescribeVpcAttribute", Some(id.to_string()))?;
        let on = answer
            .enable_dns_hostnames()
            .and_then(|value| value.value());
        Ok(on == Some(true))
    }

    /// Whether the adopted subnet `id` maps public IPs on launch already.
    async fn maps_public_ips(&self, id: &str) -> Result<bool, StepError> {
        let answer = self
            .client
            .describe_subnets()
            .subnet_ids(id)
            .send()
            .await
            .cloud("DescribeSubnets", Some(id.to_string()))?;
        let subnet = answer.subnets().first();
        Ok(subnet.and_then(|subnet| subnet.map_public_ip_on_launch()) == Some(true))
    }

    /// A subnet with its ELB role tag; a public one maps public IPs on launch (also when
    /// adopted).
    pub(super) async fn subnet(
        &self,
        vpc: &str,
        zone: &str,
        cidr: &str,
        name: &str,
        public: bool,
    ) -> Result<String, StepError> {
        let find = || async move {
            let found = self
                .client
                .describe_subnets()
                .set_filters(self.filters(name))
                .send()
                .await
                .cloud("DescribeSubnets", Some(name.into()))?;
            Ok(self.ours(found.subnets(), name, |s| s.tags(), |s| s.subnet_id()))
        };
        let create = || async move {
            let role = if public { "elb" } else { "internal-elb" };
            let role = format!("kubernetes.io/role/{role}");
            let create = || async {
                self.client
                    .create_subnet()
                    .vpc_id(vpc)
                    .availability_zone(zone)
                    .cidr_block(cidr)
                    .tag_specifications(ec2_tags(
                        self.context,
                        ResourceType::Subnet,
                        name,
                        &[(&role, "1")],
                    ))
                    .send()
                    .await
                    .cloud("CreateSubnet", Some(format!("{name} ({cidr} in {zone})")))
            };
            let created = self.settle.call(self.context, &[vpc], create).await?;
            let id = created.subnet().and_then(|subnet| subnet.subnet_id());
            id.map(str::to_string)
                .ok_or_else(|| missing("CreateSubnet", "SubnetId"))
        };
        let ensured = self.ensure("subnet", find, create).await?;
        let id = ensured.id;
        if public && !(ensured.adopted.is_some() && self.maps_public_ips(&id).await?) {
            let modify = || async {
                self.client
                    .modify_subnet_attribute()
                    .subnet_id(&id)
                    .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .cloud("ModifySubnetAttribute", Some(id.clone()))
            };
            self.settle.call(self.context, &[&id], modify).await?;
        }
        Ok(id)
    }

    /// The internet gateway, attached to the VPC unless it is.
    pub(super) async fn internet_gateway(&self, vpc: &str) -> Result<String, StepError> {
        let find = || async move {
            let found = self
                .client
                .describe_internet_gateways()
                .set_filters(self.filters("igw"))
                .send()
                .await
                .cloud("DescribeInternetGateways", None)?;
            let mut gateways = found.internet_gateways().iter();
            let ours = gateways.find(|gateway| self.owner().owns(gateway.tags(), "igw"));
            Ok(Ownership::tagged(ours.map(|gateway| {
                Gateway {
                    id: gateway
                        .internet_gateway_id()
                        .unwrap_or_default()
                        .to_string(),
                    attached: gateway
                        .attachments()
                        .iter()
                        .any(|a| a.vpc_id() == Some(vpc)),
                }
            })))
        };
        let create = || async move {
            let created = self
                .client
                .create_internet_gateway()
                .tag_specifications(self.tags(ResourceType::InternetGateway, "igw"))
                .send()
                .await
                .cloud("CreateInternetGateway", None)?;
            let id = created
                .internet_gateway()
                .and_then(|gateway| gateway.internet_gateway_id());
            id.map(str::to_string)
                .ok_or_else(|| missing("CreateInternetGateway", "InternetGatewayId"))
        };
        let gateway = self.ensure("internet-gateway", find, create).await?;
        if !gateway.adopted.is_some_and(|found| found.attached) {
            let attach = || async {
                self.client
                    .attach_internet_gateway()
                    .internet_gateway_id(&gateway.id)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .cloud("AttachInternetGateway", Some(gateway.id.clone()))
            };
            let names = [gateway.id.as_str(), vpc];
            self.settle.call(self.context, &names, attach).await?;
        }
        Ok(gateway.id)
    }

    /// A route table in the VPC.
    pub(super) async fn route_table(&self, vpc: &str, name: &str) -> Result<String, StepError> {
        let find = || async move {
            let found = self
                .client
                .describe_route_tables()
                .set_filters(self.filters(name))
                .send()
                .await
                .cloud("DescribeRouteTables", Some(name.into()))?;
            let tables = found.route_tables();
            Ok(self.ours(tables, name, RouteTable::tags, RouteTable::route_table_id))
        };
        let create = || async move {
            let token = self.client_token(name, 0);
            let create = || async {
                self.client
                    .create_route_table()
                    .vpc_id(vpc)
                    .client_token(&token)
                    .tag_specifications(self.tags(ResourceType::RouteTable, name))
                    .send()
                    .await
                    .cloud("CreateRouteTable", Some(name.into()))
            };
            let created = self.settle.call(self.context, &[vpc], create).await?;
            let id = created.route_table().and_then(RouteTable::route_table_id);
            id.map(str::to_string)
                .ok_or_else(|| missing("CreateRouteTable", "RouteTableId"))
        };
        Ok(self.ensure("route-table", find, create).await?.id)
    }

    /// A security group in the VPC, named `STEP-NAME-RUNID`.
    pub(super) async fn security_group(
        &self,
        vpc: &str,
        name: &str,
        description: &str,
    ) -> Result<String, StepError> {
        let find = || async move {
            let found = self
                .client
                .describe_security_groups()
                .set_filters(self.filters(name))
                .send()
                .await
                .cloud("DescribeSecurityGroups", Some(name.into()))?;
            Ok(self.ours(
                found.security_groups(),
                name,
                |g| g.tags(),
                |g| g.group_id(),
            ))
        };
        let create = || async move {
            let (step, run) = (&self.context.step_id, &self.context.run_id);
            let group_name = format!("{step}-{name}-{run}");
            let create = || async {
                self.client
                    .create_security_group()
                    .group_name(&group_name)
                    .description(description)
                    .vpc_id(vpc)
                    .tag_specifications(self.tags(ResourceType::SecurityGroup, name))
                    .send()
                    .await
                    .cloud("CreateSecurityGroup", Some(group_name.clone()))
            };
            let created = self.settle.call(self.context, &[vpc], create).await?;
            let id = created.group_id().map(str::to_string);
            id.ok_or_else(|| missing("CreateSecurityGroup", "GroupId"))
        };
        Ok(self.ensure("security-group", find, create).await?.id)
    }

    /// Let `protocol` from the group `source` into `group`, unless it lets it in already (a
    /// duplicate rule is success too).
    pub(super) async fn allow(
        &self,
        group: &str,
        source: &str,
        protocol: Protocol,
        why: &str,
    ) -> Result<(), StepError> {
        let (name, port) = protocol.ec2();
        if !self.settle.is_fresh(group) && self.admits(group, source, name, port).await? {
            return Ok(());
        }
        let pair = UserIdGroupPair::builder()
            .group_id(source)
            .description(why)
            .build();
        let permission = IpPermission::builder()
            .ip_protocol(name)
            .set_from_port(port)
            .set_to_port(port)
            .user_id_group_pairs(pair)
            .build();
        let authorize = || async {
            self.client
                .authorize_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission.clone())
                .send()
                .await
                .cloud("AuthorizeSecurityGroupIngress", Some(group.to_string()))
        };
        let answer = self
            .settle
            .call(self.context, &[group, source], authorize)
            .await;
        match answer {
            Err(StepError::Cloud(error)) if error.is("InvalidPermission.Duplicate") => Ok(()),
            Err(error) => Err(error),
            Ok(_) => Ok(()),
        }
    }

    /// Whether `group` lets `protocol` (EC2's name, port) in from the group `source` already.
    async fn admits(
        &self,
        group: &str,
        source: &str,
        protocol: &str,
        port: Option<i32>,
    ) -> Result<bool, StepError> {
        let describe = || async {
            self.client
                .describe_security_groups()
                .group_ids(group)
                .send()
                .await
                .cloud("DescribeSecurityGroups", Some(group.to_string()))
        };
        let found = self.settle.call(self.context, &[group], describe).await?;
        let groups = found.security_groups();
        Ok(groups
            .iter()
            .any(|found| rules::admits(found, source, protocol, port)))
    }

    async fn describe_table(&self, table: &str) -> Result<RouteTable, StepError> {
        let describe = || async {
            self.client
                .describe_route_tables()
                .route_table_ids(table)
                .send()
                .await
                .cloud("DescribeRouteTables", Some(table.to_string()))
        };
        let found = self.settle.call(self.context, &[table], describe).await?;
        let first = found.route_tables().first().cloned();
        first.ok_or_else(|| missing("DescribeRouteTables", table))
    }

    /// A default route (`0.0.0.0/0`) in `table` to `target`, unless it is there.
    pub(super) async fn route(
        &self,
        table: &str,
        target: RouteTarget<'_>,
    ) -> Result<(), StepError> {
        let present = !self.settle.is_fresh(table)
            && self
                .describe_table(table)
                .await?
                .routes()
                .iter()
                .any(|route| {
                    route.destination_cidr_block() == Some("0.0.0.0/0")
                        && match target {
                            RouteTarget::Gateway(id) => route.gateway_id() == Some(id),
                            RouteTarget::Nat(id) => route.nat_gateway_id() == Some(id),
                        }
                });
        if present {
            return Ok(());
        }
        let (RouteTarget::Gateway(target_id) | RouteTarget::Nat(target_id)) = target;
        let create = || async {
            let request = self
                .client
                .create_route()
                .route_table_id(table)
                .destination_cidr_block("0.0.0.0/0");
            let request = match target {
                RouteTarget::Gateway(id) => request.gateway_id(id),
                RouteTarget::Nat(id) => request.nat_gateway_id(id),
            };
            request
                .send()
                .await
                .cloud("CreateRoute", Some(table.to_string()))
        };
        match self
            .settle
            .call(self.context, &[table, target_id], create)
            .await
        {
            Err(StepError::Cloud(error)) if error.is("RouteAlreadyExists") => Ok(()),
            Err(error) => Err(error),
            Ok(_) => Ok(()),
        }
    }

    /// Associate `subnet` with `table`, unless it is.
    pub(super) async fn associate(&self, table: &str, subnet: &str) -> Result<(), StepError> {
        if !self.settle.is_fresh(table) {
            let existing = self.describe_table(table).await?;
            let associations = existing.associations();
            if associations
                .iter()
                .any(|association| association.subnet_id() == Some(subnet))
            {
                return Ok(());
            }
        }
        let associate = || async {
            self.client
                .associate_route_table()
                .route_table_id(table)
                .subnet_id(subnet)
                .send()
                .await
                .cloud("AssociateRouteTable", Some(format!("{table} ↔ {subnet}")))
        };
        self.settle
            .call(self.context, &[table, subnet], associate)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_as_ec2_names_them() {
        assert_eq!(Protocol::All.ec2(), ("-1", None));
        assert_eq!(Protocol::Tcp(5432).ec2(), ("tcp", Some(5432)));
    }

    /// Regression: with their lookup and create futures held inline, a NAT gateway's
    /// future was 135 KB in a debug build, and a full run overflowed a worker's stack (the
    /// NAT gateway's own check is in `nat.rs`).
    #[test]
    fn owned_resources_keep_their_futures_small() {
        fn size<'a, F>(_: fn(&'a Ec2<'a>, &'a str, &'a str) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        assert!(size(Ec2::route_table) < 4096, "{}", size(Ec2::route_table));
    }
}
