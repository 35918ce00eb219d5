//! `aws.eks.nodegroup`: a managed node group in a cluster (from `aws.eks.cluster`), with an
//! existing node IAM role, instance types, sizes and labels. Named after the step inside a
//! cluster that belongs to the run, tagged with the run; a re-run adopts it. Waits for
//! `ACTIVE` (a few minutes on AWS).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_eks::types::{CapacityTypes, NodegroupScalingConfig, NodegroupStatus};
use serde::Deserialize;
use serde_json::json;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use super::aws_eks_cluster::{missing_role, role_arn};
use super::context::{Poll, TAG_RUN_ID};
use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params};

static SPEC: KindSpec = KindSpec {
    kind: "aws.eks.nodegroup",
    summary: "a managed node group in an EKS cluster, waited for until ACTIVE",
    parameters: &[
        ParamSpec {
            name: "cluster",
            required: true,
            help: "the cluster's name (from the cluster step)",
        },
        ParamSpec {
            name: "name",
            required: false,
            help: "node group name (default: the step id)",
        },
        ParamSpec {
            name: "role",
            required: true,
            help: "existing IAM role (name or ARN) for the nodes",
        },
        ParamSpec {
            name: "subnet_ids",
            required: true,
            help: "subnets for the nodes (the private ones)",
        },
        ParamSpec {
            name: "instance_types",
            required: false,
            help: "EC2 instance types (default [m6i.large])",
        },
        ParamSpec {
            name: "min_size",
            required: false,
            help: "fewest nodes (default 3)",
        },
        ParamSpec {
            name: "max_size",
            required: false,
            help: "most nodes (default 6)",
        },
        ParamSpec {
            name: "desired_size",
            required: false,
            help: "nodes to start with (default: min_size)",
        },
        ParamSpec {
            name: "disk_size",
            required: false,
            help: "root volume GiB (default: EKS's 20)",
        },
        ParamSpec {
            name: "capacity_type",
            required: false,
            help: "`ON_DEMAND` (default) or `SPOT`",
        },
        ParamSpec {
            name: "labels",
            required: false,
            help: "Kubernetes labels for the nodes",
        },
        ParamSpec {
            name: "skip",
            required: false,
            help: "`true`: manage no node group (pass `${steps.CLUSTER.existing}`: an existing cluster keeps its own nodes)",
        },
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
pub struct AwsEksNodegroup;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    name: Option<String>,
    role: String,
    #[serde(default)]
    subnet_ids: Option<Vec<String>>,
    #[serde(default = "default_instance_types")]
    instance_types: Vec<String>,
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
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    skip: bool,
}

/// Outputs when the step manages no node group (existing-cluster mode).
fn skipped(params: &Params) -> Values {
    Values::from([
        ("nodegroup_name".to_string(), json!("")),
        ("arn".to_string(), json!("")),
        (
            "cluster_name".to_string(),
            json!(params.cluster.clone().unwrap_or_default()),
        ),
        ("desired_size".to_string(), json!(0)),
        ("skipped".to_string(), json!(true)),
    ])
}

fn default_instance_types() -> Vec<String> {
    vec!["m6i.large".to_string()]
}
fn default_min() -> i32 {
    3
}
fn default_max() -> i32 {
    6
}

impl Params {
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
            None | Some("ON_DEMAND") => {
                Ok(self.capacity_type.as_ref().map(|_| CapacityTypes::OnDemand))
            }
            Some("SPOT") => Ok(Some(CapacityTypes::Spot)),
            Some(other) => Err(StepError::Params(format!(
                "`capacity_type` must be `ON_DEMAND` or `SPOT`, not `{other}`"
            ))),
        }
    }
}

struct Found {
    status: Option<NodegroupStatus>,
    status_text: String,
    run_id: Option<String>,
    arn: Option<String>,
}

async fn describe(
    client: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<Found>, CloudError> {
    let resource = format!("{cluster}/{name}");
    match client
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .cloud("DescribeNodegroup", Some(resource))
    {
        Ok(answer) => Ok(answer.nodegroup().map(|group| Found {
            status: group.status().cloned(),
            status_text: group
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            run_id: group.tags().and_then(|tags| tags.get(TAG_RUN_ID).cloned()),
            arn: group.nodegroup_arn().map(str::to_string),
        })),
        Err(error) if error.is("ResourceNotFoundException") => Ok(None),
        Err(error) => Err(error),
    }
}

#[async_trait]
impl Step for AwsEksNodegroup {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        let (_, desired, _) = params.sizes()?;
        params.capacity()?;
        if params.skip {
            let mut plan = StepPlan::new(
                Action::Adopt,
                "existing cluster: its nodes are its own, no node group is managed",
            );
            plan.outputs = skipped(&params);
            return Ok(plan);
        }
        let mut problems = Vec::new();
        if role_arn(&context.cloud.iam(), &params.role)
            .await?
            .is_none()
        {
            problems.push(missing_role(&params.role).to_string());
        }
        let name = params
            .name
            .clone()
            .unwrap_or_else(|| context.step_id.clone());
        let action = match (&params.cluster, &context.run_id) {
            (Some(cluster), Some(run_id)) => {
                match describe(&context.cloud.eks(&context.target_region), cluster, &name).await? {
                    Some(found) if found.run_id.as_deref() == Some(run_id.as_str()) => {
                        Action::Adopt
                    }
                    Some(_) => {
                        problems.push(format!(
                            "node group `{name}` in `{cluster}` was not created by this run"
                        ));
                        Action::Unknown
                    }
                    None => Action::Create,
                }
            }
            _ => Action::Create,
        };
        let mut plan = StepPlan::new(action, format!("{action} node group `{name}`"))
            .detail("instance types", params.instance_types.join(", "))
            .detail(
                "nodes",
                format!(
                    "{} (min {}, max {})",
                    desired, params.min_size, params.max_size
                ),
            );
        plan.problems = problems.into_iter().map(StepProblem::from).collect();
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let (min, desired, max) = params.sizes()?;
        let capacity = params.capacity()?;
        if params.skip {
            context.progress("existing cluster: no node group is managed");
            return Ok(skipped(&params));
        }
        let cluster = params
            .cluster
            .clone()
            .ok_or_else(|| StepError::Params("`cluster` is required".into()))?;
        let subnets = params
            .subnet_ids
            .clone()
            .filter(|subnets| !subnets.is_empty())
            .ok_or_else(|| StepError::Params("`subnet_ids` must list the nodes' subnets".into()))?;
        let role = role_arn(&context.cloud.iam(), &params.role)
            .await?
            .ok_or_else(|| missing_role(&params.role))?;
        let client = context.cloud.eks(&context.target_region);
        let name = params
            .name
            .clone()
            .unwrap_or_else(|| context.step_id.clone());
        let resource = format!("{cluster}/{name}");

        match describe(&client, &cluster, &name).await? {
            Some(found) if found.run_id.as_deref() == Some(context.run_id.as_str()) => {
                context.resource("eks-nodegroup", &resource, false)?;
            }
            Some(_) => {
                return Err(StepError::Conflict {
                    resource,
                    hint: "choose another `name`, or delete the leftover node group".to_string(),
                });
            }
            None => {
                let tags: HashMap<String, String> =
                    context.tags_for("nodegroup").into_iter().collect();
                client
                    .create_nodegroup()
                    .cluster_name(&cluster)
                    .nodegroup_name(&name)
                    .node_role(&role)
                    .set_subnets(Some(subnets))
                    .set_instance_types(Some(params.instance_types.clone()))
                    .scaling_config(
                        NodegroupScalingConfig::builder()
                            .min_size(min)
                            .max_size(max)
                            .desired_size(desired)
                            .build(),
                    )
                    .set_disk_size(params.disk_size)
                    .set_capacity_type(capacity)
                    .set_labels(Some(params.labels.clone()))
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .cloud("CreateNodegroup", Some(resource.clone()))?;
                context.resource("eks-nodegroup", &resource, true)?;
            }
        }
        context.checkpoint("after-create")?;

        let what = format!("node group `{resource}` to become ACTIVE");
        let arn = context
            .wait_for(&what, || async {
                let found = describe(&client, &cluster, &name).await?.ok_or_else(|| {
                    StepError::BadState {
                        resource: resource.clone(),
                        status: "deleted".into(),
                    }
                })?;
                match found.status {
                    Some(NodegroupStatus::Active) => Ok(Poll::Ready(found.arn)),
                    Some(NodegroupStatus::Creating | NodegroupStatus::Updating) => {
                        Ok(Poll::Pending(found.status_text))
                    }
                    _ => Err(StepError::BadState {
                        resource: resource.clone(),
                        status: found.status_text,
                    }),
                }
            })
            .await?;
        Ok(Values::from([
            ("nodegroup_name".to_string(), json!(name)),
            ("arn".to_string(), json!(arn)),
            ("cluster_name".to_string(), json!(cluster)),
            ("desired_size".to_string(), json!(desired)),
            ("skipped".to_string(), json!(false)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_must_be_ordered() {
        let params = |min, desired, max| Params {
            cluster: Some("c".into()),
            name: None,
            role: "r".into(),
            subnet_ids: None,
            instance_types: default_instance_types(),
            min_size: min,
            max_size: max,
            desired_size: desired,
            disk_size: None,
            capacity_type: None,
            labels: HashMap::new(),
            skip: false,
        };
        assert_eq!(params(3, None, 6).sizes().unwrap(), (3, 3, 6));
        assert_eq!(params(1, Some(2), 3).sizes().unwrap(), (1, 2, 3));
        assert!(params(3, Some(2), 6).sizes().is_err());
        assert!(params(3, Some(7), 6).sizes().is_err());
    }
}
