//! `aws.network`: the target region's network — a VPC; public and private subnets in N
//! availability zones (from `DescribeAvailabilityZones`); an internet gateway; NAT
//! gateway(s) with Elastic IPs; route tables; and the security groups the cluster and the
//! database need. Every resource is tagged with the run and step and looked up by those
//! tags before it is created, so a re-run adopts instead of duplicating.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, IpPermission, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};
use serde::Deserialize;
use serde_json::json;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use super::context::{Poll, TAG_NAME, TAG_RUN_ID, TAG_STEP};
use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params};

static SPEC: KindSpec = KindSpec {
    kind: "aws.network",
    summary: "VPC, public and private subnets across availability zones, internet and NAT gateways, route tables, security groups",
    parameters: &[
        ParamSpec {
            name: "cidr",
            required: true,
            help: "the VPC's IPv4 block, /16 to /24, e.g. `10.42.0.0/16`",
        },
        ParamSpec {
            name: "availability_zones",
            required: false,
            help: "how many zones to spread over (default 3)",
        },
        ParamSpec {
            name: "zones",
            required: false,
            help: "explicit zone names; default: the first N available zones",
        },
        ParamSpec {
            name: "nat_gateways",
            required: false,
            help: "NAT gateways: 1 (default, cheaper) or one per zone",
        },
        ParamSpec {
            name: "database_port",
            required: false,
            help: "port the cluster may reach the database on (default 5432)",
        },
    ],
    outputs: &[
        "vpc_id",
        "vpc_cidr",
        "availability_zones",
        "public_subnet_ids",
        "private_subnet_ids",
        "internet_gateway_id",
        "nat_gateway_ids",
        "public_route_table_id",
        "private_route_table_ids",
        "cluster_security_group_id",
        "database_security_group_id",
    ],
};

/// The `aws.network` step kind.
pub struct AwsNetwork;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    cidr: String,
    #[serde(default = "default_zone_count")]
    availability_zones: usize,
    #[serde(default)]
    zones: Option<Vec<String>>,
    #[serde(default = "default_nat_count")]
    nat_gateways: usize,
    #[serde(default = "default_database_port")]
    database_port: i32,
}

fn default_zone_count() -> usize {
    3
}
fn default_nat_count() -> usize {
    1
}
fn default_database_port() -> i32 {
    5432
}

impl Params {
    fn check(&self) -> Result<(Ipv4Addr, u8), StepError> {
        let (address, prefix) = parse_cidr(&self.cidr)?;
        if !(1..=8).contains(&self.availability_zones) {
            return Err(StepError::Params(format!(
                "`availability_zones` must be from 1 to 8, not {}",
                self.availability_zones
            )));
        }
        if self.nat_gateways != 1 && self.nat_gateways != self.availability_zones {
            return Err(StepError::Params(format!(
                "`nat_gateways` must be 1 or {} (one per zone), not {}",
                self.availability_zones, self.nat_gateways
            )));
        }
        Ok((address, prefix))
    }
}

/// Parse `a.b.c.d/p` for a VPC: p from 16 to 24, host bits zero.
fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), StepError> {
    let invalid = |why: &str| StepError::Params(format!("`cidr` `{text}` {why}"));
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| invalid("needs a `/prefix`"))?;
    let address: Ipv4Addr = address
        .parse()
        .map_err(|_| invalid("is not an IPv4 block"))?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid("has a bad prefix"))?;
    if !(16..=24).contains(&prefix) {
        return Err(invalid("must have a prefix from /16 to /24"));
    }
    let mask = u32::MAX << (32 - prefix);
    if u32::from(address) & !mask != 0 {
        return Err(invalid("has host bits set"));
    }
    Ok((address, prefix))
}

/// The `index`-th of the 16 equal blocks the VPC is cut into (public 0..8, private 8..16).
fn subnet_cidr(network: Ipv4Addr, prefix: u8, index: u32) -> String {
    let sub_prefix = prefix + 4;
    let size = 1u32 << (32 - sub_prefix);
    let start = u32::from(network) + index * size;
    format!("{}/{}", Ipv4Addr::from(start), sub_prefix)
}

fn zone_letter(zone: &str) -> String {
    zone.chars().last().map(String::from).unwrap_or_default()
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag_filters(run_id: &str, step: &str, name: &str) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_RUN_ID}"), run_id),
        filter(&format!("tag:{TAG_STEP}"), step),
        filter(&format!("tag:{TAG_NAME}"), name),
    ]
}

/// Whether `tags` mark a resource as this run's and step's `name` (checked on our side too:
/// some endpoints ignore tag filters on some resource types).
fn is_ours(tags: &[Tag], run_id: &str, step: &str, name: &str) -> bool {
    let value = |key: &str| {
        tags.iter()
            .find(|tag| tag.key() == Some(key))
            .and_then(Tag::value)
    };
    value(TAG_RUN_ID) == Some(run_id)
        && value(TAG_STEP) == Some(step)
        && value(TAG_NAME) == Some(name)
}

fn tag_spec(context: &StepContext, resource: ResourceType, name: &str) -> TagSpecification {
    let tags = context
        .tags_for(name)
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect();
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags))
        .build()
}

/// Available zones in the region, sorted by name.
async fn available_zones(client: &Client) -> Result<Vec<String>, CloudError> {
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

fn choose_zones(params: &Params, available: &[String]) -> Result<Vec<String>, String> {
    match &params.zones {
        Some(wanted) => {
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|zone| !available.contains(zone))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "zones {} are not available (available: {})",
                    missing
                        .iter()
                        .map(|z| format!("`{z}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    available.join(", ")
                ));
            }
            if wanted.len() != params.availability_zones {
                return Err(format!(
                    "`zones` names {} zones but `availability_zones` is {}",
                    wanted.len(),
                    params.availability_zones
                ));
            }
            Ok(wanted.clone())
        }
        None if available.len() < params.availability_zones => Err(format!(
            "only {} availability zones are available ({}), {} are needed",
            available.len(),
            available.join(", "),
            params.availability_zones
        )),
        None => Ok(available[..params.availability_zones].to_vec()),
    }
}

async fn find_vpc(client: &Client, run_id: &str, step: &str) -> Result<Option<String>, CloudError> {
    let answer = client
        .describe_vpcs()
        .set_filters(Some(tag_filters(run_id, step, "vpc")))
        .send()
        .await
        .cloud("DescribeVpcs", None)?;
    Ok(answer
        .vpcs()
        .iter()
        .filter(|vpc| is_ours(vpc.tags(), run_id, step, "vpc"))
        .find_map(|vpc| vpc.vpc_id().map(str::to_string)))
}

#[async_trait]
impl Step for AwsNetwork {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        params.check()?;
        let client = context.cloud.ec2(&context.target_region);
        let available = available_zones(&client).await?;
        let mut problems = Vec::new();
        let zones = match context.pins.get("availability_zones") {
            Some(pinned) => serde_json::from_value(pinned.clone()).unwrap_or_default(),
            None => choose_zones(&params, &available).unwrap_or_else(|problem| {
                problems.push(format!(
                    "{} in `{}`: {problem}",
                    context.step_id, context.target_region
                ));
                Vec::new()
            }),
        };
        let existing = match &context.run_id {
            Some(run_id) => find_vpc(&client, run_id, &context.step_id).await?,
            None => None,
        };
        let (action, summary) = match &existing {
            Some(vpc) => (
                Action::Adopt,
                format!("adopt VPC {vpc} and finish what is missing"),
            ),
            None => (
                Action::Create,
                format!(
                    "create VPC {} with {} public + {} private subnets, IGW, {} NAT, route tables, 2 security groups",
                    params.cidr,
                    params.availability_zones,
                    params.availability_zones,
                    params.nat_gateways
                ),
            ),
        };
        let mut plan = StepPlan::new(action, summary)
            .detail("region", context.target_region.clone())
            .detail("zones", zones.join(", "));
        plan.problems = problems.into_iter().map(StepProblem::from).collect();
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let (network, prefix) = params.check()?;
        let client = context.cloud.ec2(&context.target_region);
        let zones: Vec<String> = match context.pinned("availability_zones") {
            Some(pinned) => serde_json::from_value(pinned)
                .map_err(|error| StepError::Params(format!("pinned zones unreadable: {error}")))?,
            None => {
                let available = available_zones(&client).await?;
                let zones =
                    choose_zones(&params, &available).map_err(|problem| StepError::Refused {
                        message: format!(
                            "cannot place the network in `{}`: {problem}",
                            context.target_region
                        ),
                        hint: "set `zones:` or lower `availability_zones:` in the playbook"
                            .to_string(),
                    })?;
                context.pin("availability_zones", json!(zones))?;
                zones
            }
        };
        let builder = Builder {
            client: &client,
            context,
        };

        let vpc_id = builder.vpc(&params.cidr).await?;
        context.checkpoint("after-vpc")?;

        let mut public_subnets = Vec::new();
        let mut private_subnets = Vec::new();
        for (index, zone) in zones.iter().enumerate() {
            let letter = zone_letter(zone);
            let public_cidr = subnet_cidr(network, prefix, index as u32);
            let public = builder
                .subnet(
                    &vpc_id,
                    zone,
                    &public_cidr,
                    &format!("public-{letter}"),
                    true,
                )
                .await?;
            public_subnets.push(public);
            context.checkpoint("after-public-subnet")?;
            let private_cidr = subnet_cidr(network, prefix, 8 + index as u32);
            let private = builder
                .subnet(
                    &vpc_id,
                    zone,
                    &private_cidr,
                    &format!("private-{letter}"),
                    false,
                )
                .await?;
            private_subnets.push(private);
            context.checkpoint("after-private-subnet")?;
        }
        context.checkpoint("after-subnets")?;

        let internet_gateway = builder.internet_gateway(&vpc_id).await?;
        let public_table = builder.route_table(&vpc_id, "public").await?;
        builder
            .route(&public_table, RouteTarget::Gateway(&internet_gateway))
            .await?;
        for subnet in &public_subnets {
            builder.associate(&public_table, subnet).await?;
        }
        context.checkpoint("after-public-routes")?;

        let mut nat_gateways = Vec::new();
        for (index, subnet) in public_subnets.iter().take(params.nat_gateways).enumerate() {
            let letter = zone_letter(&zones[index]);
            nat_gateways.push(
                builder
                    .nat_gateway(subnet, &format!("nat-{letter}"))
                    .await?,
            );
        }
        context.checkpoint("after-nat")?;
        for nat in &nat_gateways {
            builder.wait_nat(nat).await?;
        }

        let mut private_tables = Vec::new();
        for (index, subnet) in private_subnets.iter().enumerate() {
            let letter = zone_letter(&zones[index]);
            let table = builder
                .route_table(&vpc_id, &format!("private-{letter}"))
                .await?;
            let nat = &nat_gateways[index % nat_gateways.len()];
            builder.route(&table, RouteTarget::Nat(nat)).await?;
            builder.associate(&table, subnet).await?;
            private_tables.push(table);
        }
        context.checkpoint("after-private-routes")?;

        let cluster_group = builder
            .security_group(&vpc_id, "cluster", "rebuild: EKS cluster and nodes")
            .await?;
        builder
            .allow(
                &cluster_group,
                &cluster_group,
                -1,
                None,
                "cluster members talk to each other",
            )
            .await?;
        let database_group = builder
            .security_group(
                &vpc_id,
                "database",
                "rebuild: database, reachable from the cluster",
            )
            .await?;
        builder
            .allow(
                &database_group,
                &cluster_group,
                6,
                Some(params.database_port),
                "cluster to database",
            )
            .await?;

        Ok(Values::from([
            ("vpc_id".to_string(), json!(vpc_id)),
            ("vpc_cidr".to_string(), json!(params.cidr)),
            ("availability_zones".to_string(), json!(zones)),
            ("public_subnet_ids".to_string(), json!(public_subnets)),
            ("private_subnet_ids".to_string(), json!(private_subnets)),
            ("internet_gateway_id".to_string(), json!(internet_gateway)),
            ("nat_gateway_ids".to_string(), json!(nat_gateways)),
            ("public_route_table_id".to_string(), json!(public_table)),
            ("private_route_table_ids".to_string(), json!(private_tables)),
            (
                "cluster_security_group_id".to_string(),
                json!(cluster_group),
            ),
            (
                "database_security_group_id".to_string(),
                json!(database_group),
            ),
        ]))
    }
}

enum RouteTarget<'a> {
    Gateway(&'a str),
    Nat(&'a str),
}

/// Find-or-create for each resource type, all keyed by the run's tags.
struct Builder<'a> {
    client: &'a Client,
    context: &'a StepContext,
}

impl Builder<'_> {
    fn filters(&self, name: &str) -> Vec<Filter> {
        tag_filters(&self.context.run_id, &self.context.step_id, name)
    }

    fn ours(&self, tags: &[Tag], name: &str) -> bool {
        is_ours(tags, &self.context.run_id, &self.context.step_id, name)
    }

    async fn vpc(&self, cidr: &str) -> Result<String, StepError> {
        let id = match find_vpc(self.client, &self.context.run_id, &self.context.step_id).await? {
            Some(id) => {
                self.context.resource("vpc", &id, false)?;
                id
            }
            None => {
                let created = self
                    .client
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(tag_spec(self.context, ResourceType::Vpc, "vpc"))
                    .send()
                    .await
                    .cloud("CreateVpc", Some(cidr.to_string()))?;
                let id = created
                    .vpc()
                    .and_then(|vpc| vpc.vpc_id())
                    .map(str::to_string)
                    .ok_or_else(|| missing("CreateVpc", "VpcId"))?;
                self.context.resource("vpc", &id, true)?;
                id
            }
        };
        // Also on adoption: an earlier attempt may have died between the two calls.
        self.client
            .modify_vpc_attribute()
            .vpc_id(&id)
            .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .cloud("ModifyVpcAttribute", Some(id.clone()))?;
        Ok(id)
    }

    async fn subnet(
        &self,
        vpc: &str,
        zone: &str,
        cidr: &str,
        name: &str,
        public: bool,
    ) -> Result<String, StepError> {
        let found = self
            .client
            .describe_subnets()
            .set_filters(Some(self.filters(name)))
            .send()
            .await
            .cloud("DescribeSubnets", Some(name.to_string()))?;
        if let Some(id) = found
            .subnets()
            .iter()
            .filter(|subnet| self.ours(subnet.tags(), name))
            .find_map(|subnet| subnet.subnet_id())
        {
            self.context.resource("subnet", id, false)?;
            let id = id.to_string();
            if public {
                self.public_ip_on_launch(&id).await?;
            }
            return Ok(id);
        }
        let mut tags = tag_spec(self.context, ResourceType::Subnet, name);
        let role = if public {
            "kubernetes.io/role/elb"
        } else {
            "kubernetes.io/role/internal-elb"
        };
        tags = TagSpecification::builder()
            .resource_type(ResourceType::Subnet)
            .set_tags(Some(
                tags.tags()
                    .iter()
                    .cloned()
                    .chain([Tag::builder().key(role).value("1").build()])
                    .collect(),
            ))
            .build();
        let created = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .availability_zone(zone)
            .cidr_block(cidr)
            .tag_specifications(tags)
            .send()
            .await
            .cloud("CreateSubnet", Some(format!("{name} ({cidr} in {zone})")))?;
        let id = created
            .subnet()
            .and_then(|subnet| subnet.subnet_id())
            .map(str::to_string)
            .ok_or_else(|| missing("CreateSubnet", "SubnetId"))?;
        self.context.resource("subnet", &id, true)?;
        if public {
            self.public_ip_on_launch(&id).await?;
        }
        Ok(id)
    }

    async fn public_ip_on_launch(&self, subnet: &str) -> Result<(), StepError> {
        self.client
            .modify_subnet_attribute()
            .subnet_id(subnet)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .cloud("ModifySubnetAttribute", Some(subnet.to_string()))?;
        Ok(())
    }

    async fn internet_gateway(&self, vpc: &str) -> Result<String, StepError> {
        let found = self
            .client
            .describe_internet_gateways()
            .set_filters(Some(self.filters("igw")))
            .send()
            .await
            .cloud("DescribeInternetGateways", None)?;
        let (id, attached) = match found
            .internet_gateways()
            .iter()
            .find(|gateway| self.ours(gateway.tags(), "igw"))
        {
            Some(gateway) => {
                let id = gateway
                    .internet_gateway_id()
                    .unwrap_or_default()
                    .to_string();
                let attached = gateway
                    .attachments()
                    .iter()
                    .any(|a| a.vpc_id() == Some(vpc));
                self.context.resource("internet-gateway", &id, false)?;
                (id, attached)
            }
            None => {
                let created = self
                    .client
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(
                        self.context,
                        ResourceType::InternetGateway,
                        "igw",
                    ))
                    .send()
                    .await
                    .cloud("CreateInternetGateway", None)?;
                let id = created
                    .internet_gateway()
                    .and_then(|gateway| gateway.internet_gateway_id())
                    .map(str::to_string)
                    .ok_or_else(|| missing("CreateInternetGateway", "InternetGatewayId"))?;
                self.context.resource("internet-gateway", &id, true)?;
                (id, false)
            }
        };
        if !attached {
            self.client
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(vpc)
                .send()
                .await
                .cloud("AttachInternetGateway", Some(id.clone()))?;
        }
        Ok(id)
    }

    async fn route_table(&self, vpc: &str, name: &str) -> Result<String, StepError> {
        let found = self
            .client
            .describe_route_tables()
            .set_filters(Some(self.filters(name)))
            .send()
            .await
            .cloud("DescribeRouteTables", Some(name.to_string()))?;
        if let Some(id) = found
            .route_tables()
            .iter()
            .filter(|table| self.ours(table.tags(), name))
            .find_map(|table| table.route_table_id())
        {
            self.context.resource("route-table", id, false)?;
            return Ok(id.to_string());
        }
        let created = self
            .client
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tag_spec(self.context, ResourceType::RouteTable, name))
            .send()
            .await
            .cloud("CreateRouteTable", Some(name.to_string()))?;
        let id = created
            .route_table()
            .and_then(|table| table.route_table_id())
            .map(str::to_string)
            .ok_or_else(|| missing("CreateRouteTable", "RouteTableId"))?;
        self.context.resource("route-table", &id, true)?;
        Ok(id)
    }

    async fn describe_table(
        &self,
        table: &str,
    ) -> Result<aws_sdk_ec2::types::RouteTable, StepError> {
        let found = self
            .client
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
            .cloud("DescribeRouteTables", Some(table.to_string()))?;
        found
            .route_tables()
            .first()
            .cloned()
            .ok_or_else(|| missing("DescribeRouteTables", table))
    }

    async fn route(&self, table: &str, target: RouteTarget<'_>) -> Result<(), StepError> {
        let existing = self.describe_table(table).await?;
        let present = existing.routes().iter().any(|route| {
            route.destination_cidr_block() == Some("0.0.0.0/0")
                && match target {
                    RouteTarget::Gateway(id) => route.gateway_id() == Some(id),
                    RouteTarget::Nat(id) => route.nat_gateway_id() == Some(id),
                }
        });
        if present {
            return Ok(());
        }
        let request = self
            .client
            .create_route()
            .route_table_id(table)
            .destination_cidr_block("0.0.0.0/0");
        let request = match target {
            RouteTarget::Gateway(id) => request.gateway_id(id),
            RouteTarget::Nat(id) => request.nat_gateway_id(id),
        };
        match request
            .send()
            .await
            .cloud("CreateRoute", Some(table.to_string()))
        {
            Ok(_) => Ok(()),
            Err(error) if error.is("RouteAlreadyExists") => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn associate(&self, table: &str, subnet: &str) -> Result<(), StepError> {
        let existing = self.describe_table(table).await?;
        if existing
            .associations()
            .iter()
            .any(|association| association.subnet_id() == Some(subnet))
        {
            return Ok(());
        }
        self.client
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .cloud("AssociateRouteTable", Some(format!("{table} ↔ {subnet}")))?;
        Ok(())
    }

    async fn elastic_ip(&self, name: &str) -> Result<String, StepError> {
        let found = self
            .client
            .describe_addresses()
            .set_filters(Some(self.filters(name)))
            .send()
            .await
            .cloud("DescribeAddresses", Some(name.to_string()))?;
        if let Some(id) = found
            .addresses()
            .iter()
            .filter(|address| self.ours(address.tags(), name))
            .find_map(|address| address.allocation_id())
        {
            self.context.resource("elastic-ip", id, false)?;
            return Ok(id.to_string());
        }
        let created = self
            .client
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(self.context, ResourceType::ElasticIp, name))
            .send()
            .await
            .cloud("AllocateAddress", Some(name.to_string()))?;
        let id = created
            .allocation_id()
            .map(str::to_string)
            .ok_or_else(|| missing("AllocateAddress", "AllocationId"))?;
        self.context.resource("elastic-ip", &id, true)?;
        Ok(id)
    }

    async fn nat_gateway(&self, subnet: &str, name: &str) -> Result<String, StepError> {
        let found = self
            .client
            .describe_nat_gateways()
            .set_filter(Some(self.filters(name)))
            .send()
            .await
            .cloud("DescribeNatGateways", Some(name.to_string()))?;
        let live = found.nat_gateways().iter().find(|gateway| {
            self.ours(gateway.tags(), name)
                && !matches!(
                    gateway.state().map(|state| state.as_str()),
                    Some("deleting" | "deleted" | "failed")
                )
        });
        if let Some(id) = live.and_then(|gateway| gateway.nat_gateway_id()) {
            self.context.resource("nat-gateway", id, false)?;
            return Ok(id.to_string());
        }
        let allocation = self.elastic_ip(&format!("{name}-eip")).await?;
        let created = self
            .client
            .create_nat_gateway()
            .subnet_id(subnet)
            .allocation_id(&allocation)
            .tag_specifications(tag_spec(self.context, ResourceType::Natgateway, name))
            .send()
            .await
            .cloud("CreateNatGateway", Some(name.to_string()))?;
        let id = created
            .nat_gateway()
            .and_then(|gateway| gateway.nat_gateway_id())
            .map(str::to_string)
            .ok_or_else(|| missing("CreateNatGateway", "NatGatewayId"))?;
        self.context.resource("nat-gateway", &id, true)?;
        Ok(id)
    }

    async fn wait_nat(&self, id: &str) -> Result<(), StepError> {
        let what = format!("NAT gateway {id} to be available");
        self.context
            .wait_for(&what, || async {
                let found = self
                    .client
                    .describe_nat_gateways()
                    .nat_gateway_ids(id)
                    .send()
                    .await
                    .cloud("DescribeNatGateways", Some(id.to_string()))?;
                let state = found
                    .nat_gateways()
                    .first()
                    .and_then(|gateway| gateway.state())
                    .map(|state| state.as_str().to_string())
                    .unwrap_or_else(|| "missing".to_string());
                match state.as_str() {
                    "available" => Ok(Poll::Ready(())),
                    "pending" => Ok(Poll::Pending(state)),
                    _ => Err(StepError::BadState {
                        resource: id.to_string(),
                        status: state,
                    }),
                }
            })
            .await
    }

    async fn security_group(
        &self,
        vpc: &str,
        name: &str,
        description: &str,
    ) -> Result<String, StepError> {
        let found = self
            .client
            .describe_security_groups()
            .set_filters(Some(self.filters(name)))
            .send()
            .await
            .cloud("DescribeSecurityGroups", Some(name.to_string()))?;
        if let Some(id) = found
            .security_groups()
            .iter()
            .filter(|group| self.ours(group.tags(), name))
            .find_map(|group| group.group_id())
        {
            self.context.resource("security-group", id, false)?;
            return Ok(id.to_string());
        }
        let group_name = format!("{}-{}-{}", self.context.step_id, name, self.context.run_id);
        let created = self
            .client
            .create_security_group()
            .group_name(&group_name)
            .description(description)
            .vpc_id(vpc)
            .tag_specifications(tag_spec(self.context, ResourceType::SecurityGroup, name))
            .send()
            .await
            .cloud("CreateSecurityGroup", Some(group_name.clone()))?;
        let id = created
            .group_id()
            .map(str::to_string)
            .ok_or_else(|| missing("CreateSecurityGroup", "GroupId"))?;
        self.context.resource("security-group", &id, true)?;
        Ok(id)
    }

    async fn allow(
        &self,
        group: &str,
        from_group: &str,
        protocol: i32,
        port: Option<i32>,
        why: &str,
    ) -> Result<(), StepError> {
        let pair = UserIdGroupPair::builder()
            .group_id(from_group)
            .description(why)
            .build();
        let permission = IpPermission::builder()
            .ip_protocol(if protocol < 0 {
                "-1".to_string()
            } else {
                "tcp".to_string()
            })
            .set_from_port(port)
            .set_to_port(port)
            .user_id_group_pairs(pair)
            .build();
        match self
            .client
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(permission)
            .send()
            .await
            .cloud("AuthorizeSecurityGroupIngress", Some(group.to_string()))
        {
            Ok(_) => Ok(()),
            Err(error) if error.is("InvalidPermission.Duplicate") => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn missing(operation: &str, field: &str) -> StepError {
    StepError::Cloud(CloudError {
        operation: operation.to_string(),
        resource: None,
        code: None,
        message: format!("the response has no `{field}`"),
        status: None,
        retryable: false,
        missing_credentials: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_vpc_into_sixteen_blocks() {
        let (network, prefix) = parse_cidr("10.42.0.0/16").unwrap();
        assert_eq!(subnet_cidr(network, prefix, 0), "10.42.0.0/20");
        assert_eq!(subnet_cidr(network, prefix, 2), "10.42.32.0/20");
        assert_eq!(subnet_cidr(network, prefix, 8), "10.42.128.0/20");
    }

    #[test]
    fn rejects_bad_blocks() {
        assert!(parse_cidr("10.42.0.0").is_err());
        assert!(parse_cidr("10.42.0.1/16").is_err());
        assert!(parse_cidr("10.0.0.0/8").is_err());
        assert!(parse_cidr("banana/16").is_err());
    }

    #[test]
    fn chooses_zones_or_says_why_not() {
        let params = |zones: Option<Vec<&str>>| Params {
            cidr: "10.0.0.0/16".into(),
            availability_zones: 3,
            zones: zones.map(|z| z.into_iter().map(String::from).collect()),
            nat_gateways: 1,
            database_port: 5432,
        };
        let available: Vec<String> = ["x-1a", "x-1b", "x-1c", "x-1d"].map(String::from).to_vec();
        assert_eq!(
            choose_zones(&params(None), &available).unwrap(),
            ["x-1a", "x-1b", "x-1c"]
        );
        assert!(
            choose_zones(&params(None), &available[..2])
                .unwrap_err()
                .contains("only 2")
        );
        assert!(
            choose_zones(&params(Some(vec!["x-1a", "x-1b", "x-1z"])), &available)
                .unwrap_err()
                .contains("`x-1z`")
        );
    }
}
