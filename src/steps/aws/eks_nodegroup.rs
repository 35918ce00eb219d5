//! `aws.eks.nodegroup`: a managed node group in a cluster (from `aws.eks.cluster`), in this
//! order: its sizes checked; the existing node IAM role looked up; the node group, named
//! after the step inside a cluster that belongs to the run and tagged with the run,
//! through the ownership protocol (a re-run adopts it); and the wait for `ACTIVE` (a few
//! minutes on AWS; `CREATE_FAILED` ends it with the node group's `health.issues`). With
//! `skip` (an existing cluster keeps its own nodes) nothing is made. The plan checks that
//! EC2 offers every instance type in every zone of `zones`, and that the region's On-Demand
//! vCPU quota has room for `max_size` nodes of the largest type ([`vcpus`]).

mod vcpus;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, Nodegroup, NodegroupScalingConfig, NodegroupStatus,
};
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::context::{Poll, Wait};
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::iam::{NODE_ROLE, missing_role, role_arn, role_problems};
use super::ownership::{Kind, Ownership, ensure};
use super::tags::{Existing, Marks, eks_tags};
use super::{optional, required};

/// How long a managed node group usually takes to become `ACTIVE` (2–4 minutes).
const NODEGROUP_TYPICAL: Duration = Duration::from_secs(3 * 60);

static SPEC: KindSpec = KindSpec {
    kind: "aws.eks.nodegroup",
    summary: "a managed node group in an EKS cluster, waited for until ACTIVE",
    parameters: &[
        required("cluster", "the cluster's name (from the cluster step)"),
        optional("name", "node group name (default: the step id)"),
        required("role", "existing IAM role (name or ARN) for the nodes"),
        required("subnet_ids", "subnets for the nodes (the private ones)"),
        optional(
            "instance_types",
            "EC2 instance types, several so capacity can fall back (default [m6i.large, m6a.large, m5.large, m7i.large])",
        ),
        optional(
            "zones",
            "the zones of `subnet_ids`, for the plan's check that EC2 offers each instance type there (pass `${steps.NETWORK.availability_zones}`)",
        ),
        optional("min_size", "fewest nodes (default 3)"),
        optional("max_size", "most nodes (default 6)"),
        optional("desired_size", "nodes to start with (default: min_size)"),
        optional("disk_size", "root volume GiB (default: EKS's 20)"),
        optional("capacity_type", "`ON_DEMAND` (default) or `SPOT`"),
        optional(
            "ami_type",
            "the nodes' AMI type (default `AL2023_x86_64_STANDARD`: AL2 images are past end of support)",
        ),
        optional("labels", "Kubernetes labels for the nodes"),
        optional(
            "skip",
            "`true`: manage no node group (pass `${steps.CLUSTER.existing}`: an existing cluster keeps its own nodes)",
        ),
    ],
    outputs: &[
        "nodegroup_name",
        "arn",
        "cluster_name",
        "desired_size",
        "skipped",
    ],
};

/// The `aws.eks.nodegroup` step kind.
pub(crate) struct AwsEksNodegroup;

/// The parameters; the cluster and subnets may come from earlier steps (see [`Phase`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    cluster: P::Later<String>,
    #[serde(default)]
    name: Option<String>,
    role: String,
    subnet_ids: P::Later<Vec<String>>,
    #[serde(default = "default_instance_types")]
    instance_types: Vec<String>,
    #[serde(default)]
    zones: Option<Vec<String>>,
    #[serde(default = "default_min")]
    min_size: i32,
    #[serde(default = "default_max")]
    max_size: i32,
    #[serde(default)]
    desired_size: Option<i32>,
    #[serde(default)]
    disk_size: Option<i32>,
    #[serde(default)]
    capacity_type: Option<String>,
    #[serde(default = "default_ami_type")]
    ami_type: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    skip: bool,
}

fn default_instance_types() -> Vec<String> {
    ["m6i.large", "m6a.large", "m5.large", "m7i.large"]
        .map(String::from)
        .to_vec()
}
fn default_ami_type() -> String {
    "AL2023_x86_64_STANDARD".to_string()
}
fn default_min() -> i32 {
    3
}
fn default_max() -> i32 {
    6
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    nodegroup_name: String,
    arn: Option<String>,
    cluster_name: String,
    desired_size: i32,
    skipped: bool,
}

const NODEGROUP: Kind = Kind {
    journal: "eks-nodegroup",
    conflict_hint: "choose another `name`, or delete the leftover node group",
};

impl<P: Phase> Params<P> {
    fn sizes(&self) -> Result<(i32, i32, i32), StepError> {
        let desired = self.desired_size.unwrap_or(self.min_size);
        if self.min_size < 0
            || self.min_size > desired
            || desired > self.max_size
            || self.max_size < 1
        {
            return Err(StepError::Params(format!(
                "sizes must satisfy 0 <= min_size <= desired_size <= max_size and max_size >= 1 (got {}, {desired}, {})",
                self.min_size, self.max_size
            )));
        }
        Ok((self.min_size, desired, self.max_size))
    }

    fn capacity(&self) -> Result<Option<CapacityTypes>, StepError> {
        match self.capacity_type.as_deref() {
            None => Ok(None),
            Some("ON_DEMAND") => Ok(Some(CapacityTypes::OnDemand)),
            Some("SPOT") => Ok(Some(CapacityTypes::Spot)),
            Some(other) => Err(StepError::Params(format!(
                "`capacity_type` must be `ON_DEMAND` or `SPOT`, not `{other}`"
            ))),
        }
    }

    /// The node group's name: given, or the step's id.
    fn nodegroup_name(&self, step: &str) -> String {
        self.name.clone().unwrap_or_else(|| step.to_string())
    }
}

/// Outputs when the step manages no node group (existing-cluster mode).
fn skipped(cluster: &str) -> Result<Values, StepError> {
    interface::outputs(&Outputs {
        nodegroup_name: String::new(),
        arn: Some(String::new()),
        cluster_name: cluster.to_string(),
        desired_size: 0,
        skipped: true,
    })
}

/// The node group `name` in `cluster`, if it exists.
async fn describe(
    client: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<Existing<Nodegroup>>, CloudError> {
    let resource = format!("{cluster}/{name}");
    let answer = client
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .cloud("DescribeNodegroup", Some(resource.clone()));
    let answer = match answer {
        Err(error) if error.is_not_found() => return Ok(None),
        answer => answer?,
    };
    Ok(answer.nodegroup().map(|group| Existing {
        id: resource,
        status: group
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: Marks::eks(group.tags()),
        resource: group.clone(),
    }))
}

#[async_trait]
impl Step for AwsEksNodegroup {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        let (min, desired, max) = params.sizes()?;
        params.capacity()?;
        if params.skip {
            let summary = "existing cluster: its nodes are its own, no node group is managed";
            let mut plan = StepPlan::new(Action::Adopt, summary);
            plan.outputs = skipped(params.cluster.as_deref().unwrap_or_default())?;
            return Ok(plan);
        }
        let name = params.nodegroup_name(&context.step_id);
        // The role, the instance types' offerings and vCPU quota, and the node group,
        // asked at once.
        let iam = context.cloud.iam(&context.target_region);
        let ec2 = context.cloud.ec2(&context.target_region);
        let eks = context.cloud.eks(&context.target_region);
        let offered = async {
            match &params.zones {
                Some(zones) => {
                    Ok::<_, StepError>(Some(offerings(&ec2, &params.instance_types, zones).await?))
                }
                None => Ok(None),
            }
        };
        let vcpus = async {
            match params.capacity()? {
                Some(CapacityTypes::Spot) => Ok::<_, StepError>(None),
                _ => {
                    let group = params
                        .cluster
                        .as_deref()
                        .map(|cluster| (cluster, name.as_str()));
                    let max = usize::try_from(max).unwrap_or_default();
                    let region = &context.target_region;
                    let types = &params.instance_types;
                    Ok(Some(
                        vcpus::check(&context.cloud, region, types, max, group).await?,
                    ))
                }
            }
        };
        let found = async {
            match &params.cluster {
                Some(cluster) => Ok::<_, StepError>(Some(describe(&eks, cluster, &name).await?)),
                None => Ok(None),
            }
        };
        let ((mut problems, role_note), offered, vcpus, found) = tokio::try_join!(
            async { Ok::<_, StepError>(role_problems(&iam, &params.role, &NODE_ROLE).await?) },
            offered,
            vcpus,
            found,
        )?;
        if let (Some(zones), Some(offered)) = (&params.zones, &offered) {
            problems.extend(not_offered(&params.instance_types, zones, offered));
        }
        let mut warnings = Vec::new();
        let action = match (&params.cluster, found) {
            (Some(cluster), Some(found)) => match Ownership::named(found, &context.owner) {
                Ownership::Ours(found) => {
                    let wanted = Wanted {
                        instance_types: &params.instance_types,
                        sizes: (min, desired, max),
                    };
                    let region = &context.target_region;
                    warnings = differences(&found.resource, &wanted, cluster, &name, region);
                    Action::Adopt
                }
                Ownership::Stranger(_) => {
                    let owner = context.owner.describe();
                    problems.push(StepProblem::from(format!(
                        "node group `{name}` in `{cluster}` does not belong to {owner}"
                    )));
                    Action::Unknown
                }
                Ownership::Absent => Action::Create,
            },
            _ => Action::Create,
        };
        let mut plan = StepPlan::new(action, format!("{action} node group `{name}`"))
            .detail("instance types", params.instance_types.join(", "))
            .detail("nodes", format!("{desired} (min {min}, max {max})"));
        for warning in warnings {
            plan = plan.detail("warning", warning);
        }
        match vcpus {
            Some(check) => {
                plan = plan.detail("on-demand vcpus", check.summary);
                if let Some(warning) = check.warning {
                    plan = plan.detail("warning", warning);
                }
                problems.extend(check.problem);
            }
            None => plan = plan.detail("on-demand vcpus", "not checked: Spot capacity"),
        }
        if let Some(note) = role_note {
            plan = plan.detail("role policies", note);
        }
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let (_, desired, _) = params.sizes()?;
        params.capacity()?;
        if params.skip {
            context.progress("existing cluster: no node group is managed");
            return skipped(&params.cluster);
        }
        if params.subnet_ids.is_empty() {
            let problem = "`subnet_ids` must list the nodes' subnets";
            return Err(StepError::Params(problem.into()));
        }
        let role = role_arn(&context.cloud.iam(&context.target_region), &params.role)
            .await?
            .ok_or_else(|| missing_role(&params.role))?;
        let client = context.cloud.eks(&context.target_region);
        let name = params.nodegroup_name(&context.step_id);
        ensure_nodegroup(context, &client, &params, &name, &role).await?;
        context.checkpoint("after-create")?;
        let arn = wait_active(context, &client, &params.cluster, &name).await?;
        interface::outputs(&Outputs {
            nodegroup_name: name,
            arn,
            cluster_name: params.cluster,
            desired_size: desired,
            skipped: false,
        })
    }
}

/// The (instance type, zone) pairs EC2 offers among `types` × `zones`.
async fn offerings(
    client: &aws_sdk_ec2::Client,
    types: &[String],
    zones: &[String],
) -> Result<Vec<(String, String)>, CloudError> {
    use aws_sdk_ec2::types::{Filter, LocationType};
    let filter = |name: &str, values: &[String]| {
        Filter::builder()
            .name(name)
            .set_values(Some(values.to_vec()))
            .build()
    };
    let mut pages = client
        .describe_instance_type_offerings()
        .location_type(LocationType::AvailabilityZone)
        .filters(filter("instance-type", types))
        .filters(filter("location", zones))
        .into_paginator()
        .send();
    let mut offered = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeInstanceTypeOfferings", None)?;
        for offering in page.instance_type_offerings() {
            if let (Some(kind), Some(zone)) = (offering.instance_type(), offering.location()) {
                offered.push((kind.as_str().to_string(), zone.to_string()));
            }
        }
    }
    Ok(offered)
}

/// A plan problem for each instance type EC2 does not offer in every zone.
fn not_offered(
    types: &[String],
    zones: &[String],
    offered: &[(String, String)],
) -> Vec<StepProblem> {
    types
        .iter()
        .filter_map(|kind| {
            let missing: Vec<&str> = zones
                .iter()
                .filter(|zone| !offered.iter().any(|(k, z)| k == kind && z == *zone))
                .map(String::as_str)
                .collect();
            (!missing.is_empty()).then(|| {
                StepProblem::from(format!(
                    "EC2 does not offer instance type `{kind}` in {}: remove it from `instance_types`, or choose types offered in every zone (`aws ec2 describe-instance-type-offerings --location-type availability-zone`)",
                    missing.join(", ")
                ))
            })
        })
        .collect()
}

/// What the playbook asks of a node group, to compare with one adopted.
struct Wanted<'a> {
    instance_types: &'a [String],
    /// Min, desired and max size.
    sizes: (i32, i32, i32),
}

/// What an adopted node group differs in from `wanted` and the step does not change: each
/// a warning with the way to change it (instance types: only by a new node group; sizes:
/// `update-nodegroup-config`).
fn differences(
    group: &Nodegroup,
    wanted: &Wanted<'_>,
    cluster: &str,
    name: &str,
    region: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut has: Vec<&str> = group.instance_types().iter().map(String::as_str).collect();
    let mut asks: Vec<&str> = wanted.instance_types.iter().map(String::as_str).collect();
    has.sort_unstable();
    asks.sort_unstable();
    if !has.is_empty() && has != asks {
        warnings.push(format!(
            "node group `{name}` runs {}, the playbook asks for {}: the instance types of a node group cannot change in place; add a node group with them (another step `name`) and delete this one when its pods have moved",
            has.join(", "),
            asks.join(", ")
        ));
    }
    if let Some(scaling) = group.scaling_config() {
        let (min, desired, max) = wanted.sizes;
        let now = (
            scaling.min_size().unwrap_or_default(),
            scaling.desired_size().unwrap_or_default(),
            scaling.max_size().unwrap_or_default(),
        );
        if now != wanted.sizes {
            warnings.push(format!(
                "node group `{name}` has {} nodes (min {}, max {}), the playbook asks for {desired} (min {min}, max {max}): an adopted node group is not resized; `aws eks update-nodegroup-config --region {region} --cluster-name {cluster} --nodegroup-name {name} --scaling-config minSize={min},maxSize={max},desiredSize={desired}` resizes it",
                now.1, now.0, now.2
            ));
        }
    }
    warnings
}

/// Adopt or create the node group `name`, with the node role `role`.
async fn ensure_nodegroup(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    params: &Params,
    name: &str,
    role: &str,
) -> Result<(), StepError> {
    let cluster = &params.cluster;
    let (min, desired, max) = params.sizes()?;
    let find = || async move {
        let found = describe(client, cluster, name).await?;
        Ok(Ownership::named(found, &context.owner))
    };
    let create = || async move {
        let resource = format!("{cluster}/{name}");
        let sizes = NodegroupScalingConfig::builder()
            .min_size(min)
            .max_size(max)
            .desired_size(desired)
            .build();
        client
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .node_role(role)
            .set_subnets(Some(params.subnet_ids.clone()))
            .set_instance_types(Some(params.instance_types.clone()))
            .scaling_config(sizes)
            .set_disk_size(params.disk_size)
            .set_capacity_type(params.capacity()?)
            .ami_type(AmiTypes::from(params.ami_type.as_str()))
            .set_labels(Some(params.labels.clone()))
            .set_tags(Some(eks_tags(context, "nodegroup")))
            .send()
            .await
            .cloud("CreateNodegroup", Some(resource.clone()))?;
        Ok(resource)
    };
    ensure(context, NODEGROUP, find, create).await?;
    Ok(())
}

/// Wait until the node group is `ACTIVE`; its ARN then.
async fn wait_active(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<String>, StepError> {
    let resource = format!("{cluster}/{name}");
    let what = format!("node group `{resource}` to become ACTIVE");
    context
        .wait_for(
            Wait::new("nodegroup-active", what).typically(NODEGROUP_TYPICAL),
            || async {
                let found = describe(client, cluster, name).await?;
                let found = found.ok_or_else(|| StepError::BadState {
                    resource: resource.clone(),
                    status: "deleted".into(),
                })?;
                match found.resource.status() {
                    Some(NodegroupStatus::Active) => Ok(Poll::Ready(
                        found.resource.nodegroup_arn().map(str::to_string),
                    )),
                    Some(NodegroupStatus::Creating | NodegroupStatus::Updating) => {
                        Ok(Poll::Pending(found.status))
                    }
                    Some(NodegroupStatus::CreateFailed) => {
                        Err(create_failed(&resource, &found.resource))
                    }
                    _ => Err(StepError::BadState {
                        resource: resource.clone(),
                        status: found.status,
                    }),
                }
            },
        )
        .await
}

/// A node group that failed to create: its health issues, and what to do.
fn create_failed(resource: &str, group: &Nodegroup) -> StepError {
    let issues = group
        .health()
        .map(|health| health.issues())
        .unwrap_or_default();
    let reason = super::health_reason(
        issues
            .iter()
            .map(|issue| (issue.code().map(|code| code.as_str()), issue.message())),
    );
    StepError::Failed {
        resource: format!("node group `{resource}`"),
        status: "CREATE_FAILED".to_string(),
        reason,
        hint: "for a capacity issue (`InsufficientInstanceCapacity`, `AsgInstanceLaunchFailures`) add instance types to `instance_types` or use other zones; then delete the failed node group (`aws eks delete-nodegroup`) and `rebuild resume`".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_adopted_group_that_differs_is_warned_about_with_how_to_change_it() {
        let group = |types: &[&str], sizes: (i32, i32, i32)| {
            let scaling = NodegroupScalingConfig::builder()
                .min_size(sizes.0)
                .desired_size(sizes.1)
                .max_size(sizes.2)
                .build();
            Nodegroup::builder()
                .set_instance_types(Some(types.iter().map(|t| (*t).to_string()).collect()))
                .scaling_config(scaling)
                .build()
        };
        let types = ["m6i.large".to_string(), "m5.large".to_string()];
        let wanted = Wanted {
            instance_types: &types,
            sizes: (3, 3, 9),
        };
        let same = group(&["m5.large", "m6i.large"], (3, 3, 9));
        assert!(differences(&same, &wanted, "c", "nodes", "r").is_empty());
        let other = group(&["t3.large"], (1, 2, 4));
        let warnings = differences(&other, &wanted, "c", "nodes", "ap-southeast-1");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("runs t3.large, the playbook asks for m5.large, m6i.large"));
        assert!(warnings[1].contains("has 2 nodes (min 1, max 4)"));
        assert!(warnings[1].contains(
            "--cluster-name c --nodegroup-name nodes --scaling-config minSize=3,maxSize=9,desiredSize=3"
        ));
    }

    #[test]
    fn a_type_missing_in_any_zone_is_a_problem_naming_the_zones() {
        let (types, zones) = (
            vec!["m6i.large".to_string(), "p5.48xlarge".to_string()],
            vec!["z-1a".to_string(), "z-1b".to_string()],
        );
        let offered = [
            ("m6i.large", "z-1a"),
            ("m6i.large", "z-1b"),
            ("p5.48xlarge", "z-1b"),
        ]
        .map(|(kind, zone)| (kind.to_string(), zone.to_string()));
        let problems = not_offered(&types, &zones, &offered);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message().contains("`p5.48xlarge` in z-1a:"));
    }

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &json!({
                "cluster": "c1",
                "name": "nodes",
                "role": "eks-nodes",
                "subnet_ids": ["subnet-1"],
                "instance_types": ["m6i.large"],
                "zones": ["a-1a"],
                "min_size": 1,
                "max_size": 3,
                "desired_size": 2,
                "disk_size": 20,
                "capacity_type": "SPOT",
                "ami_type": "AL2023_ARM_64_STANDARD",
                "labels": {"role": "app"},
                "skip": false,
            }),
        );
        let planned: Params<Planning> = serde_json::from_value(json!({"role": "r"})).unwrap();
        assert_eq!((planned.cluster, planned.subnet_ids), (None, None));
    }

    #[test]
    fn sizes_must_be_ordered() {
        let params = |min, desired, max| Params::<Applying> {
            cluster: "c".into(),
            name: None,
            role: "r".into(),
            subnet_ids: Vec::new(),
            instance_types: default_instance_types(),
            zones: None,
            min_size: min,
            max_size: max,
            desired_size: desired,
            disk_size: None,
            capacity_type: None,
            ami_type: default_ami_type(),
            labels: HashMap::new(),
            skip: false,
        };
        assert_eq!(params(3, None, 6).sizes().unwrap(), (3, 3, 6));
        assert_eq!(params(1, Some(2), 3).sizes().unwrap(), (1, 2, 3));
        assert!(params(3, Some(2), 6).sizes().is_err());
        assert!(params(3, Some(7), 6).sizes().is_err());
    }
}
