//! Pilot light (`existing_cluster`): the network is the running cluster's. Its VPC and
//! subnets are used as they are (never tagged, changed or counted as the run's), and only
//! the database's security group is made, in that VPC, admitting the cluster's security
//! group on the database's port: security group references and routes are per VPC, so a
//! database in a new VPC would be out of the nodes' reach (review B5), and a new VPC would
//! spend one of the region's five for nothing.

use aws_sdk_ec2::Client;

use crate::cloud::CloudResultExt;
use crate::journal::Values;
use crate::steps::interface;
use crate::steps::{Action, PlanContext, StepContext, StepError, StepPlan, StepProblem};

use super::super::pilot::{PILOT_HINT, Pilot};
use super::super::tags::{Mark, filter};
use super::resources::{Ec2, Protocol};
use super::settle::Settle;
use super::{Outputs, Params, Pins};
use crate::steps::interface::read_pins;

/// One of the cluster's subnets, as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subnet {
    pub id: String,
    pub zone: String,
    /// Public: its instances get public addresses, or it is tagged for internet-facing load
    /// balancers (`kubernetes.io/role/elb`).
    pub public: bool,
}

/// Where the database goes in the cluster's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub zones: Vec<String>,
    pub private: Vec<String>,
    pub public: Vec<String>,
}

/// The cluster's subnets split into private and public, in the cluster's order: the
/// database goes into the private ones, which must span two zones (an RDS subnet group
/// needs two).
pub(super) fn layout(subnets: &[Subnet]) -> Result<Layout, String> {
    let private: Vec<&Subnet> = subnets.iter().filter(|subnet| !subnet.public).collect();
    let mut zones: Vec<String> = private.iter().map(|subnet| subnet.zone.clone()).collect();
    zones.sort();
    zones.dedup();
    if zones.len() < 2 {
        return Err(format!(
            "the cluster's private subnets span {} zone(s) ({}); the database needs private subnets in two zones",
            zones.len(),
            zones.join(", ")
        ));
    }
    Ok(Layout {
        zones,
        private: private.iter().map(|subnet| subnet.id.clone()).collect(),
        public: subnets
            .iter()
            .filter(|subnet| subnet.public)
            .map(|subnet| subnet.id.clone())
            .collect(),
    })
}

/// The subnets `ids`, as EC2 describes them, in that order.
async fn subnets(client: &Client, ids: &[String]) -> Result<Vec<Subnet>, StepError> {
    let answer = client
        .describe_subnets()
        .set_subnet_ids(Some(ids.to_vec()))
        .send()
        .await
        .cloud("DescribeSubnets", Some(ids.join(",")))?;
    let found = answer.subnets();
    let mut subnets = Vec::new();
    for id in ids {
        let Some(subnet) = found.iter().find(|s| s.subnet_id() == Some(id.as_str())) else {
            continue;
        };
        let tagged_public = subnet
            .tags()
            .iter()
            .any(|tag| tag.key() == Some("kubernetes.io/role/elb"));
        subnets.push(Subnet {
            id: id.clone(),
            zone: subnet.availability_zone().unwrap_or_default().to_string(),
            public: tagged_public || subnet.map_public_ip_on_launch().unwrap_or(false),
        });
    }
    Ok(subnets)
}

/// The VPC's IPv4 block.
async fn vpc_cidr(client: &Client, vpc: &str) -> Result<String, StepError> {
    let answer = client
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .cloud("DescribeVpcs", Some(vpc.to_string()))?;
    Ok(answer
        .vpcs()
        .first()
        .and_then(|found| found.cidr_block())
        .unwrap_or_default()
        .to_string())
}

/// Whether the stack's step made the database's group already.
async fn database_group(
    client: &Client,
    owner: Mark<'_>,
    vpc: &str,
) -> Result<Option<String>, StepError> {
    let mut filters = owner.filters("database");
    filters.push(filter("vpc-id", vpc));
    let answer = client
        .describe_security_groups()
        .set_filters(Some(filters))
        .send()
        .await
        .cloud("DescribeSecurityGroups", Some("database".to_string()))?;
    Ok(answer
        .security_groups()
        .iter()
        .filter(|group| owner.owns(group.tags(), "database"))
        .find_map(|group| group.group_id().map(str::to_string)))
}

/// The plan: the cluster's network is read, nothing is made.
pub(super) async fn plan(
    context: &PlanContext,
    params: &Params,
    name: &str,
) -> Result<StepPlan, StepError> {
    let region = &context.target_region;
    let step = &context.step_id;
    let eks = context.cloud.eks(region);
    let problem = |text: String| {
        let mut plan = StepPlan::new(Action::Unknown, format!("use cluster `{name}`'s network"));
        plan.problems
            .push(StepProblem::from(format!("{step}: {text}; {PILOT_HINT}")));
        Ok(plan)
    };
    let Some(pilot) = Pilot::describe(&eks, name).await? else {
        return problem(format!("there is no EKS cluster `{name}` in `{region}`"));
    };
    if let Some(text) = pilot.unusable() {
        return problem(text);
    }
    let client = context.cloud.ec2(region);
    let layout = match layout(&subnets(&client, &pilot.subnet_ids).await?) {
        Ok(layout) => layout,
        Err(text) => return problem(format!("cluster `{name}`: {text}")),
    };
    let mark = Mark {
        owner: &context.owner,
        step: &context.step_id,
    };
    let made = database_group(&client, mark, &pilot.vpc_id).await?;
    let (action, group) = match made {
        Some(group) => (Action::Adopt, format!("adopt the database's group {group}")),
        None => (Action::Create, "create the database's group".to_string()),
    };
    let summary = format!(
        "use cluster `{name}`'s VPC {} (pilot light): {group}, open to the cluster's group {} on port {}",
        pilot.vpc_id, pilot.security_group_id, params.database_port
    );
    let mut plan = StepPlan::new(action, summary)
        .detail("region", region.clone())
        .detail("zones", layout.zones.join(", "))
        .detail("database subnets", layout.private.join(", "));
    plan.outputs = Values::from([
        (
            "availability_zones".to_string(),
            serde_json::json!(layout.zones),
        ),
        ("vpc_id".to_string(), serde_json::json!(pilot.vpc_id)),
        (
            "private_subnet_ids".to_string(),
            serde_json::json!(layout.private),
        ),
        (
            "cluster_security_group_id".to_string(),
            serde_json::json!(pilot.security_group_id),
        ),
        ("existing".to_string(), serde_json::json!(true)),
    ]);
    Ok(plan)
}

/// Apply: the database's group in the cluster's VPC, open to the cluster's group.
pub(super) async fn apply(
    context: &StepContext,
    params: &Params,
    name: &str,
) -> Result<Values, StepError> {
    let region = &context.target_region;
    let pilot = Pilot::running(&context.cloud.eks(region), name, region).await?;
    let client = context.cloud.ec2(region);
    let layout = layout(&subnets(&client, &pilot.subnet_ids).await?).map_err(|text| {
        StepError::Refused {
            message: format!("cluster `{name}`: {text}"),
            hint: "give the cluster private subnets in two zones, or provision a new cluster (leave `existing_cluster` empty)".to_string(),
        }
    })?;
    let vpc_cidr = vpc_cidr(&client, &pilot.vpc_id).await?;
    // Pinned before anything is made: when it is pinned already, an earlier attempt may
    // have made the group, which EC2 may not list yet.
    let pinned: Pins = read_pins(&context.pins()).unwrap_or_default();
    if let Some(vpc) = pinned
        .existing_vpc_id
        .as_ref()
        .filter(|vpc| **vpc != pilot.vpc_id)
    {
        return Err(StepError::Refused {
            message: format!(
                "the existing cluster `{name}` is now in VPC {}, but this run's database group was made in {vpc}",
                pilot.vpc_id
            ),
            hint: "start a new run of the stack for the cluster as it is now (`--new-run`): it makes the group in the cluster's VPC".to_string(),
        });
    }
    context.pin(Pins::EXISTING_VPC_ID, serde_json::json!(pilot.vpc_id))?;
    let settle = Settle::new(pinned.existing_vpc_id.is_some(), context.poll());
    let ec2 = Ec2 {
        client: &client,
        context,
        settle: &settle,
    };
    let description = "rebuild: database, reachable from the existing cluster";
    let database = ec2
        .security_group(&pilot.vpc_id, "database", description)
        .await?;
    let why = "existing cluster to database";
    let port = Protocol::Tcp(params.database_port);
    ec2.allow(&database, &pilot.security_group_id, port, why)
        .await?;
    interface::outputs(&Outputs {
        vpc_id: pilot.vpc_id,
        vpc_cidr,
        availability_zones: layout.zones,
        public_subnet_ids: layout.public,
        private_subnet_ids: layout.private,
        internet_gateway_id: String::new(),
        nat_gateway_ids: Vec::new(),
        public_route_table_id: String::new(),
        private_route_table_ids: Vec::new(),
        cluster_security_group_id: pilot.security_group_id,
        database_security_group_id: database,
        existing: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, public: bool) -> Subnet {
        Subnet {
            id: id.into(),
            zone: zone.into(),
            public,
        }
    }

    #[test]
    fn the_database_goes_into_the_private_subnets() {
        let subnets = [
            subnet("subnet-pub-a", "x-1a", true),
            subnet("subnet-a", "x-1a", false),
            subnet("subnet-b", "x-1b", false),
            subnet("subnet-pub-b", "x-1b", true),
        ];
        assert_eq!(
            layout(&subnets).unwrap(),
            Layout {
                zones: vec!["x-1a".into(), "x-1b".into()],
                private: vec!["subnet-a".into(), "subnet-b".into()],
                public: vec!["subnet-pub-a".into(), "subnet-pub-b".into()],
            }
        );
    }

    #[test]
    fn private_subnets_in_one_zone_are_not_enough() {
        let subnets = [
            subnet("subnet-a", "x-1a", false),
            subnet("subnet-a2", "x-1a", false),
            subnet("subnet-pub-b", "x-1b", true),
        ];
        assert_eq!(
            layout(&subnets).unwrap_err(),
            "the cluster's private subnets span 1 zone(s) (x-1a); the database needs private subnets in two zones"
        );
    }
}
