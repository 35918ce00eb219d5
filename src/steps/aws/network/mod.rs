//! `aws.network`: the target region's network. First the zones (the first N available
//! ones from `DescribeAvailabilityZones`, or the given ones; pinned) and a VPC; then, all
//! at once since each needs only the VPC: a public and a private subnet in each zone, an
//! internet gateway and the public route table with its default route, a private route
//! table per zone, and the security groups of the cluster and the database; then the
//! tables' associations with their subnets, and with `nat_gateways` above 0, NAT
//! gateway(s) with Elastic IPs, waited for ([`nat`]), and the private tables' default
//! routes through them. Every resource goes through the AWS ownership protocol (tagged
//! with the run and step, looked up by those tags before it is created), so a re-run
//! adopts instead of duplicating; what the attempt has just created is not looked at again
//! before a rule, route or association is added to it (nothing else can have changed it).
//! With `existing_cluster` (pilot light, [`existing`]) the running cluster's VPC and
//! subnets are used instead, and only the database's security group is made.
//!
//! The NAT gateways' wait (1–2 minutes) is on the path of whatever needs the network, and
//! only the nodes need egress: the default playbook sets `nat_gateways: 0` and gives the
//! gateways and the private tables' default routes to a step of their own,
//! `aws.network.egress` ([`egress`]), which only the nodes wait for.

mod cidr;
mod egress;
mod existing;
mod nat;
mod quotas;
mod resources;
mod settle;

pub(crate) use egress::AwsNetworkEgress;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::interface;
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::pilot;
use super::quotas::room;
use super::tags::Mark;
use super::{optional, required};
use crate::steps::interface::read_pins;
use cidr::{Block, zone_letter};
use resources::{Ec2, Protocol, RouteTarget, available_zones, find_vpc};
use settle::Settle;

static SPEC: KindSpec = KindSpec {
    kind: "aws.network",
    summary: "VPC, public and private subnets across availability zones, internet gateway (and NAT gateways, unless `aws.network.egress` makes them), route tables, security groups",
    parameters: &[
        required(
            "cidr",
            "the VPC's IPv4 block, /16 to /24, e.g. `10.42.0.0/16`",
        ),
        optional(
            "availability_zones",
            "how many zones to spread over (default 3)",
        ),
        optional(
            "zones",
            "explicit zone names; default: the first N available zones",
        ),
        optional(
            "nat_gateways",
            "NAT gateways made here: 1 (default, cheaper; one zone's trouble stalls every node's egress), one per zone, or 0 (the shipped playbook: `aws.network.egress` makes them, off the database's and the cluster's path)",
        ),
        optional(
            "database_port",
            "port the cluster may reach the database on (default 5432)",
        ),
        optional(
            "existing_cluster",
            "pilot light: the running EKS cluster whose VPC and subnets are used as they are; only the database's security group is made (empty: build the network)",
        ),
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
        "existing",
    ],
};

/// The `aws.network` step kind.
pub(crate) struct AwsNetwork;

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
    database_port: u16,
    #[serde(default)]
    existing_cluster: Option<String>,
}

fn default_zone_count() -> usize {
    3
}
fn default_nat_count() -> usize {
    1
}
fn default_database_port() -> u16 {
    5432
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    vpc_id: String,
    vpc_cidr: String,
    availability_zones: Vec<String>,
    public_subnet_ids: Vec<String>,
    private_subnet_ids: Vec<String>,
    internet_gateway_id: String,
    nat_gateway_ids: Vec<String>,
    public_route_table_id: String,
    private_route_table_ids: Vec<String>,
    cluster_security_group_id: String,
    database_security_group_id: String,
    /// Pilot light: the network is the existing cluster's (pass it to the egress step's
    /// `skip`: that network has its own way out).
    existing: bool,
}

/// What the journal pins, so a resume builds in the same zones.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    availability_zones: Option<Vec<String>>,
    /// Pilot light: the existing cluster's VPC, where the database's group was made.
    existing_vpc_id: Option<String>,
}

impl Pins {
    const AVAILABILITY_ZONES: &str = "availability_zones";
    const EXISTING_VPC_ID: &str = "existing_vpc_id";
}

impl Params {
    fn check(&self) -> Result<Block, StepError> {
        let block = Block::parse(&self.cidr)?;
        if !(1..=8).contains(&self.availability_zones) {
            return Err(StepError::Params(format!(
                "`availability_zones` must be from 1 to 8, not {}",
                self.availability_zones
            )));
        }
        if ![0, 1, self.availability_zones].contains(&self.nat_gateways) {
            return Err(StepError::Params(format!(
                "`nat_gateways` must be 0 (made by `aws.network.egress`), 1 or {} (one per zone), not {}",
                self.availability_zones, self.nat_gateways
            )));
        }
        Ok(block)
    }
}

fn choose_zones(params: &Params, available: &[String]) -> Result<Vec<String>, String> {
    let count = params.availability_zones;
    match &params.zones {
        Some(wanted) => {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|zone| !available.contains(zone))
                .map(|zone| format!("`{zone}`"))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "zones {} are not available (available: {})",
                    missing.join(", "),
                    available.join(", ")
                ));
            }
            if wanted.len() != count {
                return Err(format!(
                    "`zones` names {} zones but `availability_zones` is {count}",
                    wanted.len(),
                ));
            }
            Ok(wanted.clone())
        }
        None if available.len() < count => Err(format!(
            "only {} availability zones are available ({}), {count} are needed",
            available.len(),
            available.join(", "),
        )),
        None => Ok(available[..count].to_vec()),
    }
}

#[async_trait]
impl Step for AwsNetwork {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = crate::steps::params(value)?;
        params.check()?;
        if let Some(name) = pilot::named(params.existing_cluster.as_deref()) {
            return existing::plan(context, &params, name).await;
        }
        let client = context.cloud.ec2(&context.target_region);
        let mark = Mark {
            owner: &context.owner,
            step: &context.step_id,
        };
        // The zones, the step's VPC and what the region uses, asked at once. Elastic IPs
        // and NAT gateways are counted only when the step makes NAT gateways.
        let counting = quotas::Counting {
            vpcs: true,
            egress: params.nat_gateways > 0,
        };
        let (available, existing, used) = tokio::try_join!(
            available_zones(&client),
            find_vpc(&client, mark),
            quotas::usage(&client, &context.owner, &context.step_id, counting),
        )?;
        let pins: Pins = read_pins(&context.pins).unwrap_or_default();
        let mut problems = Vec::new();
        let zones = pins.availability_zones.unwrap_or_else(|| {
            choose_zones(&params, &available).unwrap_or_else(|problem| {
                let (step, region) = (&context.step_id, &context.target_region);
                problems.push(StepProblem::from(format!(
                    "{step} in `{region}`: {problem}"
                )));
                Vec::new()
            })
        });
        let (action, summary) = match &existing {
            Some(vpc) => (
                Action::Adopt,
                format!("adopt VPC {vpc} and finish what is missing"),
            ),
            None => {
                let nat = match params.nat_gateways {
                    0 => String::new(),
                    count => format!("{count} NAT, "),
                };
                (
                    Action::Create,
                    format!(
                        "create VPC {} with {zones} public + {zones} private subnets, IGW, {nat}route tables, 2 security groups",
                        params.cidr,
                        zones = params.availability_zones,
                    ),
                )
            }
        };
        let mut plan = StepPlan::new(action, summary)
            .detail("region", context.target_region.clone())
            .detail("zones", zones.join(", "));
        {
            let region = &context.target_region;
            let step = &context.step_id;
            let cloud = &context.cloud;
            // What the stack's step made already needs no more room.
            let vpcs = room(cloud, region, quotas::VPCS, used.vpcs).await;
            let mut summaries = vec![vpcs.summary()];
            let mut found: Vec<String> = vpcs
                .problem(1usize.saturating_sub(used.our_vpcs), region)
                .into_iter()
                .collect();
            if params.nat_gateways > 0 {
                let (more, problems) =
                    quotas::nat_rooms(cloud, region, &zones, params.nat_gateways, &used).await;
                summaries.extend(more);
                found.extend(problems);
            }
            for problem in found {
                problems.push(StepProblem::from(format!("{step}: {problem}")));
            }
            plan = plan.detail("quotas used", summaries.join(", "));
        }
        if !zones.is_empty() {
            // Known now: a later step's plan can check what it puts in these zones.
            plan.outputs =
                Values::from([("availability_zones".to_string(), serde_json::json!(zones))]);
        }
        plan.outputs
            .insert("existing".to_string(), serde_json::json!(false));
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let block = params.check()?;
        if let Some(name) = pilot::named(params.existing_cluster.as_deref()) {
            return existing::apply(context, &params, name).await;
        }
        let client = context.cloud.ec2(&context.target_region);
        // Zones are pinned first: pinned already, an earlier attempt may have made more.
        let pinned: Pins = read_pins(&context.pins()).unwrap_or_default();
        let settle = Settle::new(pinned.availability_zones.is_some(), context.poll());
        let ec2 = Ec2 {
            client: &client,
            context,
            settle: &settle,
        };
        // Zones first: a refusal to place the network leaves nothing made.
        let zones = zones(ec2, &params).await?;
        let vpc = ec2.vpc(&params.cidr).await?;
        context.checkpoint("after-vpc")?;
        let site = Site {
            ec2,
            vpc: &vpc,
            zones: &zones,
        };
        // Everything that needs only the VPC at once: no call waits for another it does
        // not need.
        let (
            subnets,
            (internet_gateway, public_table),
            (cluster_group, database_group),
            private_tables,
        ) = tokio::try_join!(
            site.subnets(block),
            site.internet_route(),
            site.security_groups(params.database_port),
            site.private_tables(),
        )?;
        // With NAT gateways here, the private tables' default routes go through them once
        // they are available.
        let nat_routes = async {
            match params.nat_gateways {
                0 => Ok(Vec::new()),
                count => {
                    let gateways = nat::gateways(ec2, &zones, &subnets.public, count).await?;
                    site.nat_routes(&private_tables, &gateways).await?;
                    Ok(gateways)
                }
            }
        };
        let ((), (), nat_gateways) = tokio::try_join!(
            site.associate_public(&public_table, &subnets.public),
            site.associate_private(&private_tables, &subnets.private),
            nat_routes,
        )?;
        interface::outputs(&Outputs {
            vpc_id: vpc,
            vpc_cidr: params.cidr,
            availability_zones: zones,
            public_subnet_ids: subnets.public,
            private_subnet_ids: subnets.private,
            internet_gateway_id: internet_gateway,
            nat_gateway_ids: nat_gateways,
            public_route_table_id: public_table,
            private_route_table_ids: private_tables,
            cluster_security_group_id: cluster_group,
            database_security_group_id: database_group,
            existing: false,
        })
    }
}

/// The zones: pinned by an earlier attempt, or chosen now and pinned.
async fn zones(ec2: Ec2<'_>, params: &Params) -> Result<Vec<String>, StepError> {
    let context = ec2.context;
    let pins: Pins = read_pins(&context.pins())
        .map_err(|error| StepError::Params(format!("pinned zones unreadable: {error}")))?;
    if let Some(zones) = pins.availability_zones {
        return Ok(zones);
    }
    let available = available_zones(ec2.client).await?;
    let zones = choose_zones(params, &available).map_err(|problem| StepError::Refused {
        message: format!(
            "cannot place the network in `{}`: {problem}",
            context.target_region
        ),
        hint: "set `zones:` or lower `availability_zones:` in the playbook".to_string(),
    })?;
    context.pin(Pins::AVAILABILITY_ZONES, serde_json::json!(zones))?;
    Ok(zones)
}

/// Subnet ids, one per zone each, in zone order.
#[derive(Debug, Default)]
struct Subnets {
    public: Vec<String>,
    private: Vec<String>,
}

/// Where the network's parts go: the VPC and the zones.
#[derive(Clone, Copy)]
struct Site<'a> {
    ec2: Ec2<'a>,
    vpc: &'a str,
    zones: &'a [String],
}

impl Site<'_> {
    /// A public and a private subnet in each zone, all at once.
    async fn subnets(self, block: Block) -> Result<Subnets, StepError> {
        let (ec2, context) = (self.ec2, self.ec2.context);
        let zones = self.zones;
        let subnet = |index: usize, public: bool| {
            let zone = &zones[index];
            let letter = zone_letter(zone);
            let (cidr, name) = if public {
                (block.public(index), format!("public-{letter}"))
            } else {
                (block.private(index), format!("private-{letter}"))
            };
            async move {
                let id = ec2.subnet(self.vpc, zone, &cidr, &name, public).await?;
                let kind = if public { "public" } else { "private" };
                context.checkpoint(&format!("after-{kind}-subnet"))?;
                Ok::<_, StepError>(id)
            }
        };
        let public = (0..zones.len()).map(|index| subnet(index, true));
        let private = (0..zones.len()).map(|index| subnet(index, false));
        let (public, private) = tokio::try_join!(
            futures_util::future::try_join_all(public),
            futures_util::future::try_join_all(private),
        )?;
        context.checkpoint("after-subnets")?;
        Ok(Subnets { public, private })
    }

    /// The internet gateway and the `public` route table with its default route to the
    /// gateway: their ids.
    async fn internet_route(self) -> Result<(String, String), StepError> {
        let ec2 = self.ec2;
        let (gateway, table) = tokio::try_join!(
            ec2.internet_gateway(self.vpc),
            ec2.route_table(self.vpc, "public"),
        )?;
        ec2.route(&table, RouteTarget::Gateway(&gateway)).await?;
        Ok((gateway, table))
    }

    /// The `public` route table associated with every public subnet.
    async fn associate_public(self, table: &str, subnets: &[String]) -> Result<(), StepError> {
        let associated = subnets
            .iter()
            .map(|subnet| self.ec2.associate(table, subnet));
        futures_util::future::try_join_all(associated).await?;
        self.ec2.context.checkpoint("after-public-routes")?;
        Ok(())
    }

    /// A route table per zone, for its private subnet: their ids, in zone order.
    async fn private_tables(self) -> Result<Vec<String>, StepError> {
        let tables = self.zones.iter().map(|zone| async move {
            let name = format!("private-{}", zone_letter(zone));
            self.ec2.route_table(self.vpc, &name).await
        });
        futures_util::future::try_join_all(tables).await
    }

    /// Each zone's private route table associated with the zone's private subnet.
    async fn associate_private(
        self,
        tables: &[String],
        subnets: &[String],
    ) -> Result<(), StepError> {
        let associated = tables
            .iter()
            .zip(subnets)
            .map(|(table, subnet)| self.ec2.associate(table, subnet));
        futures_util::future::try_join_all(associated).await?;
        self.ec2.context.checkpoint("after-private-routes")?;
        Ok(())
    }

    /// Each zone's private route table's default route through a NAT gateway
    /// ([`nat::for_zone`]). Without NAT gateways here, the egress step adds them.
    async fn nat_routes(self, tables: &[String], nats: &[String]) -> Result<(), StepError> {
        let ec2 = self.ec2;
        let routed = tables.iter().enumerate().filter_map(|(index, table)| {
            let nat = nat::for_zone(nats, index)?;
            Some(ec2.route(table, RouteTarget::Nat(nat)))
        });
        futures_util::future::try_join_all(routed).await?;
        Ok(())
    }

    /// The `cluster` group (all traffic from itself) and the `database` group (TCP `port`
    /// from the cluster): their ids.
    async fn security_groups(self, port: u16) -> Result<(String, String), StepError> {
        let (ec2, vpc) = (self.ec2, self.vpc);
        let (cluster, database) = tokio::try_join!(
            ec2.security_group(vpc, "cluster", "rebuild: EKS cluster and nodes"),
            ec2.security_group(
                vpc,
                "database",
                "rebuild: database, reachable from the cluster"
            ),
        )?;
        tokio::try_join!(
            ec2.allow(
                &cluster,
                &cluster,
                Protocol::All,
                "cluster members talk to each other"
            ),
            ec2.allow(
                &database,
                &cluster,
                Protocol::Tcp(port),
                "cluster to database"
            ),
        )?;
        Ok((cluster, database))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &serde_json::json!({
                "cidr": "10.42.0.0/16",
                "availability_zones": 3,
                "zones": ["a-1a", "a-1b", "a-1c"],
                "nat_gateways": 1,
                "database_port": 5432,
                "existing_cluster": "shop-pilot",
            }),
        );
        assert_eq!(
            interface::field_names::<Pins>(),
            [Pins::AVAILABILITY_ZONES, Pins::EXISTING_VPC_ID]
        );
    }

    #[test]
    fn chooses_zones_or_says_why_not() {
        let params = |zones: Option<Vec<&str>>| Params {
            cidr: "10.0.0.0/16".into(),
            availability_zones: 3,
            zones: zones.map(|z| z.into_iter().map(String::from).collect()),
            nat_gateways: 1,
            database_port: 5432,
            existing_cluster: None,
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
