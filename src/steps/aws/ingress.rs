//! `aws.ec2.ingress`: let other security groups into a security group on one port, e.g. the
//! EKS cluster's nodes into the database (review B1). Managed nodes without a launch
//! template carry only the security group EKS creates for the cluster
//! (`clusterSecurityGroupId`), which exists only once the cluster does; the database's
//! group is made with the network. So this small step runs after both and authorises the
//! one rule that lets pods reach the database.
//!
//! A permission is not a resource anyone else can hold: a rule that already admits a
//! source (whoever made it) is adopted, a missing one is authorised (tagged with the run),
//! and a duplicate answered by a racing attempt is success. Re-running it changes nothing.

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, ResourceType, SecurityGroup, UserIdGroupPair};
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::{ResourceAction, Values};
use crate::playbook::KindSpec;
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::rules;
use super::tags::ec2_tags;
use super::{optional, required};

static SPEC: KindSpec = KindSpec {
    kind: "aws.ec2.ingress",
    summary: "let security groups into a security group on one port (e.g. the cluster's nodes into the database)",
    parameters: &[
        required(
            "security_group_id",
            "the security group to let traffic into, e.g. the database's",
        ),
        required("port", "the port to open, e.g. the database's"),
        required(
            "from_security_group_ids",
            "the security groups to let in, e.g. the EKS cluster's security group that its managed nodes carry",
        ),
        optional("protocol", "`tcp` (default) or `udp`"),
        optional("description", "what the rule is for (shown in the console)"),
        optional(
            "skip",
            "do nothing (e.g. an existing cluster, which brings its own network)",
        ),
    ],
    outputs: &["security_group_id", "port", "admitted", "skipped"],
};

/// The `aws.ec2.ingress` step kind.
pub(crate) struct AwsEc2Ingress;

/// The parameters; the groups and the port usually come from earlier steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    security_group_id: P::Later<String>,
    port: P::Later<u16>,
    from_security_group_ids: P::Later<Vec<String>>,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    security_group_id: String,
    port: u16,
    /// Every source group the rule admits now.
    admitted: Vec<String>,
    /// Nothing was done (`skip`).
    skipped: bool,
}

/// The outputs of a skipped step.
fn skipped() -> Result<Values, StepError> {
    interface::outputs(&Outputs {
        security_group_id: String::new(),
        port: 0,
        admitted: Vec::new(),
        skipped: true,
    })
}

const DEFAULT_DESCRIPTION: &str = "admitted by rebuild";

/// The security group `id`, or why not.
async fn describe(client: &aws_sdk_ec2::Client, id: &str) -> Result<SecurityGroup, CloudError> {
    let answer = client
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .cloud("DescribeSecurityGroups", Some(id.to_string()))?;
    let found = answer.security_groups().first().cloned();
    found.ok_or_else(|| {
        let message = "no such security group in the target region".to_string();
        CloudError::local("DescribeSecurityGroups", Some(id.to_string()), message)
    })
}

/// Whether `group` already admits `source` on `port` over `protocol` (see
/// [`rules::admits`]).
fn admits(group: &SecurityGroup, source: &str, protocol: Protocol, port: u16) -> bool {
    rules::admits(group, source, protocol.as_str(), Some(i32::from(port)))
}

fn summary(params: &Params<Planning>) -> String {
    let port = params
        .port
        .map_or_else(|| "<port>".to_string(), |port| port.to_string());
    let into = params.security_group_id.as_deref().unwrap_or("the group");
    let from = params.from_security_group_ids.as_ref().map_or_else(
        || "the given groups".to_string(),
        |groups| groups.join(", "),
    );
    format!(
        "let {from} into {into} on {}/{port}",
        params.protocol.as_str()
    )
}

#[async_trait]
impl Step for AwsEc2Ingress {
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
            let mut plan = StepPlan::new(Action::Adopt, "skipped: nothing to let in");
            plan.outputs = skipped()?;
            return Ok(plan);
        }
        let mut problems = Vec::new();
        if params
            .from_security_group_ids
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            problems.push(StepProblem::from(
                "`from_security_group_ids` is empty: name at least one security group to let in",
            ));
        }
        let mut action = Action::Create;
        if let (Some(group), Some(port), Some(sources)) = (
            &params.security_group_id,
            params.port,
            &params.from_security_group_ids,
        ) {
            let client = context.cloud.ec2(&context.target_region);
            let group = describe(&client, group).await?;
            if sources
                .iter()
                .all(|source| admits(&group, source, params.protocol, port))
            {
                action = Action::Adopt;
            }
        }
        let mut plan = StepPlan::new(action, summary(&params));
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        if params.skip {
            return skipped();
        }
        if params.from_security_group_ids.is_empty() {
            return Err(StepError::Params(
                "`from_security_group_ids` is empty: name at least one security group to let in"
                    .into(),
            ));
        }
        let client = context.cloud.ec2(&context.target_region);
        let target = &params.security_group_id;
        let group = describe(&client, target).await?;
        for source in &params.from_security_group_ids {
            let id = format!(
                "{target}:{}/{}<-{source}",
                params.protocol.as_str(),
                params.port
            );
            if admits(&group, source, params.protocol, params.port) {
                context.resource("security-group-rule", &id, ResourceAction::Adopted)?;
                continue;
            }
            authorize(context, &client, &params, source).await?;
            context.resource("security-group-rule", &id, ResourceAction::Created)?;
        }
        interface::outputs(&Outputs {
            security_group_id: target.clone(),
            port: params.port,
            admitted: params.from_security_group_ids.clone(),
            skipped: false,
        })
    }
}

/// Authorise `source` into the group (tagged with the run); a duplicate is success.
async fn authorize(
    context: &StepContext,
    client: &aws_sdk_ec2::Client,
    params: &Params,
    source: &str,
) -> Result<(), StepError> {
    let description = params.description.as_deref().unwrap_or(DEFAULT_DESCRIPTION);
    let pair = UserIdGroupPair::builder()
        .group_id(source)
        .description(description)
        .build();
    let port = i32::from(params.port);
    let permission = IpPermission::builder()
        .ip_protocol(params.protocol.as_str())
        .from_port(port)
        .to_port(port)
        .user_id_group_pairs(pair)
        .build();
    let answer = client
        .authorize_security_group_ingress()
        .group_id(&params.security_group_id)
        .ip_permissions(permission)
        .tag_specifications(ec2_tags(
            context,
            ResourceType::SecurityGroupRule,
            source,
            &[],
        ))
        .send()
        .await
        .cloud(
            "AuthorizeSecurityGroupIngress",
            Some(params.security_group_id.clone()),
        );
    match answer {
        Err(error) if !error.is("InvalidPermission.Duplicate") => Err(error.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &json!({
                "security_group_id": "sg-db",
                "port": 5432,
                "from_security_group_ids": ["sg-nodes"],
                "protocol": "tcp",
                "description": "nodes to the database",
                "skip": false,
            }),
        );
    }

    fn group(permissions: Vec<IpPermission>) -> SecurityGroup {
        SecurityGroup::builder()
            .group_id("sg-db")
            .set_ip_permissions(Some(permissions))
            .build()
    }

    fn from(source: &str) -> UserIdGroupPair {
        UserIdGroupPair::builder().group_id(source).build()
    }

    #[test]
    fn a_rule_admits_its_sources_on_its_ports_only() {
        let exact = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(5432)
            .to_port(5432)
            .user_id_group_pairs(from("sg-nodes"))
            .build();
        let group = group(vec![exact]);
        assert!(admits(&group, "sg-nodes", Protocol::Tcp, 5432));
        assert!(!admits(&group, "sg-nodes", Protocol::Tcp, 5433));
        assert!(!admits(&group, "sg-nodes", Protocol::Udp, 5432));
        assert!(!admits(&group, "sg-other", Protocol::Tcp, 5432));
    }

    #[test]
    fn an_all_traffic_rule_admits_every_port() {
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(from("sg-nodes"))
            .build();
        assert!(admits(&group(vec![all]), "sg-nodes", Protocol::Tcp, 5432));
    }
}
