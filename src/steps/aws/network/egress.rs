//! `aws.network.egress`: the private subnets' way out, apart from the network so that its
//! wait is on the path of only what needs egress (the nodes: image pulls, bootstrap), not
//! of the database or the cluster. In this order: the public subnets the gateways go in,
//! pinned; a NAT gateway with its own Elastic IP in the public subnet of each of the first
//! `nat_gateways` zones ([`super::nat`], the same code `aws.network` uses with
//! `nat_gateways` above 0); the wait until each is `available`; and the default route
//! (`0.0.0.0/0`) of each zone's private route table through its gateway, read before it is
//! set. With `skip` (the network is an existing cluster's, which has its own way out)
//! nothing is made.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::interface::{self, Applying, Phase, Planning, read_pins};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::super::{optional, required};
use super::nat;
use super::quotas;
use super::resources::Ec2;
use super::settle::Settle;

static SPEC: KindSpec = KindSpec {
    kind: "aws.network.egress",
    summary: "NAT gateways with Elastic IPs in the public subnets, waited for, and the private route tables' default routes through them",
    parameters: &[
        required(
            "availability_zones",
            "the network's zones, in order (pass `${steps.NETWORK.availability_zones}`)",
        ),
        required(
            "public_subnet_ids",
            "one public subnet per zone, in zone order (pass `${steps.NETWORK.public_subnet_ids}`)",
        ),
        required(
            "private_route_table_ids",
            "one private route table per zone, in zone order (pass `${steps.NETWORK.private_route_table_ids}`)",
        ),
        optional(
            "nat_gateways",
            "1 (default, cheaper; one zone's trouble stalls every node's egress) or one per zone (the shipped playbook)",
        ),
        optional(
            "skip",
            "`true`: make nothing (pass `${steps.NETWORK.existing}`: an existing cluster's network has its own way out)",
        ),
    ],
    outputs: &["nat_gateway_ids", "skipped"],
};

/// The `aws.network.egress` step kind.
pub(crate) struct AwsNetworkEgress;

/// The parameters; the subnets and tables come from the network step (see [`Phase`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    availability_zones: P::Later<Vec<String>>,
    public_subnet_ids: P::Later<Vec<String>>,
    private_route_table_ids: P::Later<Vec<String>>,
    #[serde(default = "default_nat_count")]
    nat_gateways: usize,
    #[serde(default)]
    skip: bool,
}

fn default_nat_count() -> usize {
    1
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    nat_gateway_ids: Vec<String>,
    skipped: bool,
}

/// What the journal pins, so a resume puts the gateways where the first attempt did (and
/// knows it follows one).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    nat_subnets: Option<Vec<String>>,
}

impl Pins {
    const NAT_SUBNETS: &str = "nat_subnets";
}

/// Why `count` gateways cannot be made in `zones`, if they cannot: the count is 1 or one per
/// zone, and the subnets and tables (when known) are one per zone.
fn check(
    zones: &[String],
    count: usize,
    subnets: Option<&[String]>,
    tables: Option<&[String]>,
) -> Result<(), StepError> {
    if count == 0 || (count != 1 && count != zones.len()) {
        return Err(StepError::Params(format!(
            "`nat_gateways` must be 1 or {} (one per zone), not {count}",
            zones.len()
        )));
    }
    for (name, ids) in [
        ("public_subnet_ids", subnets),
        ("private_route_table_ids", tables),
    ] {
        if let Some(ids) = ids.filter(|ids| ids.len() != zones.len()) {
            return Err(StepError::Params(format!(
                "`{name}` must name one per zone ({}), not {}",
                zones.len(),
                ids.len()
            )));
        }
    }
    Ok(())
}

/// Outputs when the step makes nothing (an existing cluster's network).
fn skipped() -> Result<Values, StepError> {
    interface::outputs(&Outputs {
        nat_gateway_ids: Vec::new(),
        skipped: true,
    })
}

/// The plan's one line.
fn summary(count: usize) -> String {
    let gateways = match count {
        1 => "1 NAT gateway".to_string(),
        count => format!("{count} NAT gateways (one per zone)"),
    };
    format!(
        "create {gateways} with Elastic IPs, wait until available, route the private subnets through them"
    )
}

#[async_trait]
impl Step for AwsNetworkEgress {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        if params.skip {
            let summary = "existing network: its way out is its own, no NAT gateway is managed";
            let mut plan = StepPlan::new(Action::Adopt, summary);
            plan.outputs = skipped()?;
            return Ok(plan);
        }
        let Some(zones) = params.availability_zones.as_deref() else {
            return Ok(StepPlan::new(
                Action::Unknown,
                "NAT gateways in the network's public subnets, once its zones are known",
            ));
        };
        let count = params.nat_gateways;
        check(
            zones,
            count,
            params.public_subnet_ids.as_deref(),
            params.private_route_table_ids.as_deref(),
        )?;
        let (region, step) = (&context.target_region, &context.step_id);
        let client = context.cloud.ec2(region);
        let counting = quotas::Counting {
            vpcs: false,
            egress: true,
        };
        let used = quotas::usage(&client, &context.owner, step, counting).await?;
        let mut plan = if quotas::nat_gateways_made(zones, count, &used) {
            StepPlan::new(
                Action::Adopt,
                format!("adopt {count} NAT gateway(s) and finish the private routes"),
            )
        } else {
            StepPlan::new(Action::Create, summary(count))
        };
        let placed: Vec<&str> = zones.iter().take(count).map(String::as_str).collect();
        plan = plan.detail("zones", placed.join(", "));
        let (summaries, problems) =
            quotas::nat_rooms(&context.cloud, region, zones, count, &used).await;
        plan = plan.detail("quotas used", summaries.join(", "));
        plan.problems = problems
            .into_iter()
            .map(|problem| StepProblem::from(format!("{step}: {problem}")))
            .collect();
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        if params.skip {
            context.progress("existing network: no NAT gateway is managed");
            return skipped();
        }
        let (zones, count) = (&params.availability_zones, params.nat_gateways);
        let subnets = &params.public_subnet_ids;
        let tables = &params.private_route_table_ids;
        check(zones, count, Some(subnets), Some(tables))?;
        // Pinned before anything is made: pinned already, an earlier attempt may have made
        // gateways that EC2 does not list yet.
        let pinned: Pins = read_pins(&context.pins()).unwrap_or_default();
        let placed: Vec<String> = subnets.iter().take(count).cloned().collect();
        if pinned.nat_subnets.as_ref() != Some(&placed) {
            context.pin(Pins::NAT_SUBNETS, serde_json::json!(placed))?;
        }
        let client = context.cloud.ec2(&context.target_region);
        let settle = Settle::new(pinned.nat_subnets.is_some(), context.poll());
        let ec2 = Ec2 {
            client: &client,
            context,
            settle: &settle,
        };
        let gateways = nat::gateways(ec2, zones, subnets, count).await?;
        nat::routes(ec2, tables, &gateways).await?;
        context.checkpoint("after-routes")?;
        interface::outputs(&Outputs {
            nat_gateway_ids: gateways,
            skipped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_string()).collect()
    }

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &serde_json::json!({
                "availability_zones": ["a-1a", "a-1b", "a-1c"],
                "public_subnet_ids": ["subnet-1", "subnet-2", "subnet-3"],
                "private_route_table_ids": ["rtb-1", "rtb-2", "rtb-3"],
                "nat_gateways": 3,
                "skip": false,
            }),
        );
        assert_eq!(interface::field_names::<Pins>(), [Pins::NAT_SUBNETS]);
    }

    #[test]
    fn one_gateway_or_one_per_zone_and_one_subnet_and_table_per_zone() {
        let zones = ids(&["a-1a", "a-1b", "a-1c"]);
        let three = ids(&["x-1", "x-2", "x-3"]);
        assert!(check(&zones, 1, Some(&three), Some(&three)).is_ok());
        assert!(
            check(&zones, 3, None, None).is_ok(),
            "unknown yet: not checked"
        );
        let error = check(&zones, 2, None, None).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid parameters: `nat_gateways` must be 1 or 3 (one per zone), not 2"
        );
        assert!(check(&zones, 0, None, None).is_err(), "no gateway: no step");
        let error = check(&zones, 3, Some(&three), Some(&three[..2]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid parameters: `private_route_table_ids` must name one per zone (3), not 2"
        );
    }

    #[test]
    fn a_skipped_egress_plans_its_outputs() {
        let outputs = skipped().unwrap();
        assert_eq!(outputs["skipped"], true);
        assert_eq!(outputs["nat_gateway_ids"], serde_json::json!([]));
    }

    #[test]
    fn the_summary_says_how_many_gateways() {
        assert!(summary(1).starts_with("create 1 NAT gateway with"));
        assert!(summary(3).starts_with("create 3 NAT gateways (one per zone) with"));
    }
}
