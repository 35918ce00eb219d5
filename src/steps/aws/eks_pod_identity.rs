//! `aws.eks.pod_identity`: the application's AWS access, bound to the rebuilt cluster
//! (review B10). Production's pods got AWS credentials through IRSA, whose roles trust the
//! old cluster's OIDC provider: nothing the rebuilt cluster can present. EKS Pod Identity
//! roles trust `pods.eks.amazonaws.com` instead, for any cluster, and are bound to one
//! cluster's service accounts by associations: so this step installs the Pod Identity
//! agent add-on (`eks-pod-identity-agent`), waits for it to be `ACTIVE`, and binds each
//! listed service account to its existing IAM role (IAM is global: the roles survived).
//!
//! Each association goes through the ownership protocol: one that binds the service
//! account to the same role already (an earlier attempt's, or made by hand in a pilot-light
//! cluster) is adopted; one that binds it to another role is refused, since a service
//! account has one role and choosing is on-call's call; otherwise it is created, tagged
//! with the run, with a client request token derived from the run so a retried call cannot
//! make two. The add-on is a cluster singleton that serves whoever installed it: an
//! existing one is adopted. When planning, each role is checked for the trust Pod Identity
//! needs (`sts:AssumeRole` and `sts:TagSession` for `pods.eks.amazonaws.com`).

use async_trait::async_trait;
use aws_sdk_eks::types::{Addon, AddonStatus, PodIdentityAssociation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::context::{Poll, Wait};
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::iam::{POD_IDENTITY_ROLE, missing_role, role_arn, role_name, role_problems};
use super::ownership::{Kind, Ownership, ensure};
use super::required;
use super::tags::eks_tags;

/// How long the Pod Identity agent add-on usually takes to become `ACTIVE` (its DaemonSet on the nodes).
const ADDON_TYPICAL: Duration = Duration::from_secs(60);

static SPEC: KindSpec = KindSpec {
    kind: "aws.eks.pod_identity",
    summary: "EKS Pod Identity: the agent add-on, waited for until ACTIVE, and service accounts bound to existing IAM roles",
    parameters: &[
        required(
            "cluster",
            "the EKS cluster's name or ARN, e.g. `${steps.cluster.cluster_name}`",
        ),
        required(
            "associations",
            "the service accounts whose pods get AWS credentials, each `{namespace, service_account, role}` (role: an existing IAM role's name or ARN, trusting `pods.eks.amazonaws.com`), or the text `NAMESPACE/SERVICE_ACCOUNT=ROLE`",
        ),
    ],
    outputs: &["cluster_name", "addon_version", "associations"],
};

/// The `aws.eks.pod_identity` step kind.
pub(crate) struct AwsEksPodIdentity;

/// The parameters; the cluster usually comes from the cluster step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    cluster: P::Later<String>,
    associations: Vec<Binding>,
}

/// One service account and the role its pods get.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
struct Binding {
    namespace: String,
    service_account: String,
    /// An IAM role's name or ARN.
    role: String,
}

impl TryFrom<serde_json::Value> for Binding {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        const SHAPE: &str = "an association is `{namespace, service_account, role}` or the text `NAMESPACE/SERVICE_ACCOUNT=ROLE`";
        let binding = match &value {
            serde_json::Value::String(text) => {
                let parts = text.split_once('=').and_then(|(account, role)| {
                    let (namespace, service_account) = account.split_once('/')?;
                    Some((namespace, service_account, role))
                });
                let Some((namespace, service_account, role)) = parts else {
                    return Err(format!("`{text}`: {SHAPE}"));
                };
                Binding {
                    namespace: namespace.trim().to_string(),
                    service_account: service_account.trim().to_string(),
                    role: role.trim().to_string(),
                }
            }
            serde_json::Value::Object(map) => {
                if let Some(unknown) = map
                    .keys()
                    .find(|key| !["namespace", "service_account", "role"].contains(&key.as_str()))
                {
                    return Err(format!("unknown field `{unknown}`: {SHAPE}"));
                }
                let field = |name: &str| match map.get(name) {
                    Some(serde_json::Value::String(text)) => Ok(text.trim().to_string()),
                    _ => Err(format!("missing text `{name}`: {SHAPE}")),
                };
                Binding {
                    namespace: field("namespace")?,
                    service_account: field("service_account")?,
                    role: field("role")?,
                }
            }
            other => return Err(format!("`{other}`: {SHAPE}")),
        };
        if binding.namespace.is_empty()
            || binding.service_account.is_empty()
            || binding.role.is_empty()
        {
            return Err(format!("`{value}` leaves a part empty: {SHAPE}"));
        }
        Ok(binding)
    }
}

impl Binding {
    /// `namespace/service_account`.
    fn account(&self) -> String {
        format!("{}/{}", self.namespace, self.service_account)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    /// The cluster the associations are in.
    cluster_name: String,
    /// The Pod Identity agent add-on's version.
    addon_version: String,
    /// One per association of the parameters, in their order.
    associations: Vec<Bound>,
}

/// An association as EKS holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bound {
    namespace: String,
    service_account: String,
    role_arn: String,
    association_id: String,
    association_arn: String,
}

/// The add-on that gives pods their Pod Identity credentials.
const AGENT: &str = "eks-pod-identity-agent";

const ADDON: Kind = Kind::tagged("eks-addon");
const ASSOCIATION: Kind = Kind::tagged("eks-pod-identity-association");

/// The cluster's name from a name or an ARN (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`, as
/// `aws eks update-kubeconfig` names a kubeconfig's cluster).
fn cluster_name(cluster: &str) -> &str {
    match cluster.split_once(":cluster/") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name,
        _ => cluster,
    }
}

/// Problems of the list itself: a service account listed twice.
fn list_problems(bindings: &[Binding]) -> Vec<StepProblem> {
    let mut problems = Vec::new();
    for (index, binding) in bindings.iter().enumerate() {
        let earlier = &bindings[..index];
        let twice = earlier
            .iter()
            .any(|other| other.account() == binding.account());
        let reported = earlier
            .iter()
            .filter(|other| other.account() == binding.account())
            .count()
            > 1;
        if twice && !reported {
            problems.push(StepProblem::from(format!(
                "`associations` lists the service account `{}` more than once: a service account has one role",
                binding.account()
            )));
        }
    }
    problems
}

/// Whether an association's role is the role `wanted` (a name or an ARN): IAM role names
/// are unique in an account.
fn same_role(association_role_arn: &str, wanted: &str) -> bool {
    role_name(association_role_arn) == role_name(wanted)
}

/// A client request token for the step's resource `name` in this run: the same on every
/// attempt, so EKS answers a repeated create with what the first made.
fn request_token(context: &StepContext, name: &str) -> String {
    let digest = Sha256::digest(format!("{}\n{}\n{name}", context.run_id, context.step_id));
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    hex[..32].to_string()
}

/// The refusal when the service account is bound to another role.
fn conflict(cluster: &str, binding: &Binding, other_role: &str, id: &str) -> (String, String) {
    (
        format!(
            "service account `{}` in EKS cluster `{cluster}` is bound to IAM role `{}` (Pod Identity association `{id}`), not `{}`",
            binding.account(),
            role_name(other_role),
            role_name(&binding.role)
        ),
        format!(
            "a service account has one role: if `{}` is right, put it in the step's `associations` (the default playbook's input `pod_identity_associations`) and start a new run; otherwise delete the association (`aws eks delete-pod-identity-association --cluster-name {cluster} --association-id {id}`) and `rebuild resume`",
            role_name(other_role)
        ),
    )
}

/// The Pod Identity agent add-on of `cluster`, if installed.
async fn describe_addon(
    client: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<Option<Addon>, CloudError> {
    let answer = client
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(AGENT)
        .send()
        .await
        .cloud("DescribeAddon", Some(format!("{cluster}/{AGENT}")));
    match answer {
        Err(error) if error.is_not_found() => Ok(None),
        answer => Ok(answer?.addon().cloned()),
    }
}

/// The association of `binding`'s service account in `cluster`, if there is one.
async fn find_association(
    client: &aws_sdk_eks::Client,
    cluster: &str,
    binding: &Binding,
) -> Result<Option<PodIdentityAssociation>, CloudError> {
    let resource = Some(format!("{cluster}/{}", binding.account()));
    let listed = client
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(&binding.namespace)
        .service_account(&binding.service_account)
        .send()
        .await
        .cloud("ListPodIdentityAssociations", resource.clone())?;
    let found = listed.associations().iter().find(|summary| {
        summary.namespace() == Some(binding.namespace.as_str())
            && summary.service_account() == Some(binding.service_account.as_str())
    });
    let Some(id) = found.and_then(|summary| summary.association_id()) else {
        return Ok(None);
    };
    describe_association(client, cluster, id).await.map(Some)
}

/// The association `id` of `cluster`.
async fn describe_association(
    client: &aws_sdk_eks::Client,
    cluster: &str,
    id: &str,
) -> Result<PodIdentityAssociation, CloudError> {
    let answer = client
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await
        .cloud("DescribePodIdentityAssociation", Some(id.to_string()))?;
    answer
        .association()
        .cloned()
        .ok_or_else(|| CloudError::missing_field("DescribePodIdentityAssociation", "association"))
}

#[async_trait]
impl Step for AwsEksPodIdentity {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        let mut problems = list_problems(&params.associations);
        let iam = context.cloud.iam(&context.target_region);
        for binding in &params.associations {
            let (found, _) = role_problems(&iam, &binding.role, &POD_IDENTITY_ROLE).await?;
            problems.extend(found);
        }
        let cluster = params.cluster.as_deref().map(cluster_name);
        let (action, details) = match cluster {
            Some(cluster) => {
                plan_existing(context, cluster, &params.associations, &mut problems).await?
            }
            None => {
                let mut details = vec![(
                    "add-on".to_string(),
                    format!("install {AGENT} once the cluster exists, wait for ACTIVE"),
                )];
                details.extend(params.associations.iter().map(|binding| {
                    (
                        binding.account(),
                        format!("create: role `{}`", role_name(&binding.role)),
                    )
                }));
                (Action::Create, details)
            }
        };
        let count = params.associations.len();
        let summary = format!(
            "bind {count} service account{} to IAM roles through EKS Pod Identity in {}",
            if count == 1 { "" } else { "s" },
            cluster.map_or_else(
                || "the cluster".to_string(),
                |name| format!("cluster `{name}`")
            )
        );
        let mut plan = StepPlan::new(action, summary);
        plan.details = details;
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        if let Some(problem) = list_problems(&params.associations).first() {
            return Err(StepError::Params(problem.message().to_string()));
        }
        let cluster = cluster_name(&params.cluster).to_string();
        let iam = context.cloud.iam(&context.target_region);
        let mut roles = Vec::new();
        for binding in &params.associations {
            let arn = role_arn(&iam, &binding.role).await?;
            roles.push(arn.ok_or_else(|| missing_role(&binding.role))?);
        }
        let client = context.cloud.eks(&context.target_region);
        ensure_addon(context, &client, &cluster).await?;
        context.checkpoint("after-addon")?;
        let addon = wait_addon(context, &client, &cluster).await?;
        let mut bound = Vec::new();
        for (binding, role) in params.associations.iter().zip(&roles) {
            bound.push(ensure_association(context, &client, &cluster, binding, role).await?);
        }
        interface::outputs(&Outputs {
            cluster_name: cluster,
            addon_version: addon.addon_version().unwrap_or_default().to_string(),
            associations: bound,
        })
    }
}

/// What the plan says when the cluster is known (an existing cluster, or a resumed run's):
/// the add-on and each association, adopted or to be created; a service account bound to
/// another role is a problem.
async fn plan_existing(
    context: &PlanContext,
    cluster: &str,
    bindings: &[Binding],
    problems: &mut Vec<StepProblem>,
) -> Result<(Action, Vec<(String, String)>), StepError> {
    let client = context.cloud.eks(&context.target_region);
    let found = client
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .cloud("DescribeCluster", Some(cluster.to_string()));
    match found {
        Err(error) if error.is_not_found() => {
            problems.push(StepProblem::from(format!(
                "EKS cluster `{cluster}` does not exist in `{}`; for an existing cluster, its kubeconfig's cluster must be named after the EKS cluster or its ARN (as `aws eks update-kubeconfig` writes it)",
                context.target_region
            )));
            return Ok((Action::Unknown, Vec::new()));
        }
        found => found?,
    };
    let mut creates = false;
    let mut details = Vec::new();
    let addon = describe_addon(&client, cluster).await?;
    details.push((
        "add-on".to_string(),
        match &addon {
            Some(addon) => format!(
                "adopt {AGENT} ({})",
                addon.status().map_or("unknown", AddonStatus::as_str)
            ),
            None => {
                creates = true;
                format!("install {AGENT}, wait for ACTIVE")
            }
        },
    ));
    for binding in bindings {
        let detail = match find_association(&client, cluster, binding).await? {
            Some(association) => {
                let id = association.association_id().unwrap_or_default();
                let role = association.role_arn().unwrap_or_default();
                if same_role(role, &binding.role) {
                    format!("adopt association `{id}`: role `{}`", role_name(role))
                } else {
                    let (message, hint) = conflict(cluster, binding, role, id);
                    problems.push(StepProblem::from(format!("{message}; {hint}")));
                    format!("conflict: bound to role `{}`", role_name(role))
                }
            }
            None => {
                creates = true;
                format!("create: role `{}`", role_name(&binding.role))
            }
        };
        details.push((binding.account(), detail));
    }
    let action = if creates {
        Action::Create
    } else {
        Action::Adopt
    };
    Ok((action, details))
}

/// Adopt the cluster's Pod Identity agent add-on, or install it (tagged with the run).
async fn ensure_addon(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<(), StepError> {
    let id = format!("{cluster}/{AGENT}");
    let find = || async {
        let found = describe_addon(client, cluster).await?;
        Ok(Ownership::tagged(found.map(|_| id.clone())))
    };
    let create = || async {
        let created = client
            .create_addon()
            .cluster_name(cluster)
            .addon_name(AGENT)
            .client_request_token(request_token(context, AGENT))
            .set_tags(Some(eks_tags(context, AGENT)))
            .send()
            .await
            .cloud("CreateAddon", Some(id.clone()));
        match created {
            // Installed between the lookup and the create (a racing attempt): the same.
            Err(error) if error.is("ResourceInUseException") => Ok(id.clone()),
            created => created.map(|_| id.clone()).map_err(StepError::from),
        }
    };
    ensure(context, ADDON, find, create).await?;
    Ok(())
}

/// Wait until the add-on is `ACTIVE`; its description then. `CREATE_FAILED` and
/// `DEGRADED` end the wait with the add-on's health issues.
async fn wait_addon(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<Addon, StepError> {
    let what = format!("EKS add-on `{AGENT}` of cluster `{cluster}` to become ACTIVE");
    context
        .wait_for(
            Wait::new("addon-active", what).typically(ADDON_TYPICAL),
            || async {
                let addon =
                    describe_addon(client, cluster)
                        .await?
                        .ok_or_else(|| StepError::BadState {
                            resource: format!("{cluster}/{AGENT}"),
                            status: "deleted".into(),
                        })?;
                let status = addon.status().cloned();
                match status {
                    Some(AddonStatus::Active) => Ok(Poll::Ready(addon)),
                    Some(AddonStatus::Creating | AddonStatus::Updating) => Ok(Poll::Pending(
                        status.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    )),
                    Some(status @ (AddonStatus::CreateFailed | AddonStatus::Degraded)) => {
                        Err(addon_failed(cluster, &addon, status.as_str()))
                    }
                    status => Err(StepError::BadState {
                        resource: format!("{cluster}/{AGENT}"),
                        status: status
                            .map_or_else(|| "unknown".to_string(), |s| s.as_str().to_string()),
                    }),
                }
            },
        )
        .await
}

/// The add-on failed: its health issues, and what to do.
fn addon_failed(cluster: &str, addon: &Addon, status: &str) -> StepError {
    let issues = addon
        .health()
        .map(|health| health.issues())
        .unwrap_or_default();
    let reason = super::health_reason(
        issues
            .iter()
            .map(|issue| (issue.code().map(|code| code.as_str()), issue.message())),
    );
    StepError::Failed {
        resource: format!("{cluster}/{AGENT}"),
        status: status.to_string(),
        reason,
        hint: format!(
            "fix what the health issues say (often: no node can run the agent's DaemonSet yet); a `DEGRADED` add-on recovers by itself once they are fixed, a `CREATE_FAILED` one must be deleted first (`aws eks delete-addon --cluster-name {cluster} --addon-name {AGENT}`); then `rebuild resume`"
        ),
    }
}

/// Adopt the association of `binding`'s service account to `role` (an ARN), refuse one to
/// another role, or create it (tagged with the run); the association as EKS holds it.
async fn ensure_association(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    cluster: &str,
    binding: &Binding,
    role: &str,
) -> Result<Bound, StepError> {
    let lookup = || async {
        match find_association(client, cluster, binding).await? {
            None => Ok(None),
            Some(association) => {
                let id = association.association_id().unwrap_or_default().to_string();
                let bound_to = association.role_arn().unwrap_or_default();
                if same_role(bound_to, role) {
                    return Ok(Some(id));
                }
                let (message, hint) = conflict(cluster, binding, bound_to, &id);
                Err(StepError::Refused { message, hint })
            }
        }
    };
    let find = || async { Ok(Ownership::tagged(lookup().await?)) };
    let create = || async {
        let created = client
            .create_pod_identity_association()
            .cluster_name(cluster)
            .namespace(&binding.namespace)
            .service_account(&binding.service_account)
            .role_arn(role)
            .client_request_token(request_token(context, &binding.account()))
            .set_tags(Some(eks_tags(context, &binding.account())))
            .send()
            .await
            .cloud(
                "CreatePodIdentityAssociation",
                Some(format!("{cluster}/{}", binding.account())),
            );
        match created {
            // Made between the lookup and the create (a racing attempt): look again.
            Err(error) if error.is("ResourceInUseException") => {
                lookup().await?.ok_or_else(|| StepError::from(error))
            }
            Err(error) => Err(error.into()),
            Ok(answer) => {
                let id = answer.association().and_then(|a| a.association_id());
                id.map(str::to_string).ok_or_else(|| {
                    CloudError::missing_field("CreatePodIdentityAssociation", "associationId")
                        .into()
                })
            }
        }
    };
    let ensured = ensure(context, ASSOCIATION, find, create).await?;
    let association = describe_association(client, cluster, &ensured.id).await?;
    Ok(Bound {
        namespace: binding.namespace.clone(),
        service_account: binding.service_account.clone(),
        role_arn: association.role_arn().unwrap_or(role).to_string(),
        association_id: ensured.id,
        association_arn: association
            .association_arn()
            .unwrap_or_default()
            .to_string(),
    })
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
                "cluster": "c1",
                "associations": [
                    {"namespace": "shop", "service_account": "shop-app", "role": "shop-app"},
                ],
            }),
        );
        let planned: Params<Planning> =
            serde_json::from_value(json!({"associations": []})).unwrap();
        assert_eq!(planned.cluster, None);
    }

    #[test]
    fn associations_are_maps_or_texts() {
        let params: Params = serde_json::from_value(json!({
            "cluster": "c1",
            "associations": [
                {"namespace": "shop", "service_account": "shop-app", "role": "arn:aws:iam::123456789012:role/shop-app"},
                "jobs/reporter=reporter",
            ],
        }))
        .unwrap();
        assert_eq!(
            params.associations,
            [
                Binding {
                    namespace: "shop".into(),
                    service_account: "shop-app".into(),
                    role: "arn:aws:iam::123456789012:role/shop-app".into(),
                },
                Binding {
                    namespace: "jobs".into(),
                    service_account: "reporter".into(),
                    role: "reporter".into(),
                },
            ]
        );
        for wrong in [
            json!("shop-app=role"),
            json!("shop/=role"),
            json!({"namespace": "shop", "service_account": "a"}),
            json!({"namespace": "shop", "service_account": "a", "role": "r", "extra": 1}),
            json!(3),
        ] {
            let refused = serde_json::from_value::<Params>(
                json!({"cluster": "c1", "associations": [wrong.clone()]}),
            );
            let error = refused.unwrap_err().to_string();
            assert!(error.contains("an association is"), "{wrong}: {error}");
        }
    }

    #[test]
    fn a_service_account_listed_twice_is_one_problem() {
        let binding = |role: &str| Binding {
            namespace: "shop".into(),
            service_account: "shop-app".into(),
            role: role.into(),
        };
        assert!(list_problems(&[binding("a")]).is_empty());
        let problems = list_problems(&[binding("a"), binding("b"), binding("c")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .message()
                .contains("`shop/shop-app` more than once")
        );
    }

    #[test]
    fn clusters_are_named_by_name_or_arn() {
        assert_eq!(cluster_name("cluster-r1"), "cluster-r1");
        assert_eq!(
            cluster_name("arn:aws:eks:ap-southeast-1:123456789012:cluster/pilot"),
            "pilot"
        );
    }

    #[test]
    fn roles_match_by_name_or_arn() {
        let arn = "arn:aws:iam::123456789012:role/shop-app";
        assert!(same_role(arn, "shop-app"));
        assert!(same_role(arn, arn));
        assert!(same_role(
            "arn:aws:iam::123456789012:role/apps/shop-app",
            "shop-app"
        ));
        assert!(!same_role(arn, "shop-admin"));
    }

    #[test]
    fn a_conflict_says_which_role_holds_the_account_and_what_to_do() {
        let binding = Binding {
            namespace: "shop".into(),
            service_account: "shop-app".into(),
            role: "shop-app".into(),
        };
        let (message, hint) = conflict(
            "c1",
            &binding,
            "arn:aws:iam::123456789012:role/legacy",
            "a-1",
        );
        assert_eq!(
            message,
            "service account `shop/shop-app` in EKS cluster `c1` is bound to IAM role `legacy` (Pod Identity association `a-1`), not `shop-app`"
        );
        assert!(hint.contains(
            "aws eks delete-pod-identity-association --cluster-name c1 --association-id a-1"
        ));
    }
}
