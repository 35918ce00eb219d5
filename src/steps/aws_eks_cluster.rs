//! `aws.eks.cluster`: an EKS control plane on the network step's subnets, using an IAM role
//! that already exists (IAM is global, so it survived the region: it is looked up, and its
//! absence is a plan problem). The cluster is named deterministically and tagged with the
//! run; a re-run adopts it. Waits for `ACTIVE`, then writes a kubeconfig into the run's
//! folder whose user runs `rebuild eks-token` (a presigned STS token; no AWS CLI needed).
//! The Kubernetes connection can be directed to another kubeconfig (`connect_kubeconfig`),
//! e.g. a test API server, while the cluster is still provisioned.
//!
//! Existing-cluster mode (`existing_kubeconfig`, or `rebuild --kubeconfig`): the pilot-light
//! pattern, where a cluster already runs in the target region. Nothing is provisioned: the
//! step checks that the cluster's API answers and outputs that kubeconfig, with `existing`
//! true so the node group step leaves the cluster's nodes alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_eks::types::{ClusterStatus, VpcConfigRequest};
use serde::Deserialize;
use serde_json::json;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use super::context::{Poll, TAG_RUN_ID};
use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params};

static SPEC: KindSpec = KindSpec {
    kind: "aws.eks.cluster",
    summary: "an EKS control plane on the given subnets, waited for until ACTIVE, with a kubeconfig",
    parameters: &[
        ParamSpec {
            name: "name",
            required: false,
            help: "cluster name (default `<step>-<run-id>`)",
        },
        ParamSpec {
            name: "version",
            required: true,
            help: "Kubernetes version, e.g. `1.29`",
        },
        ParamSpec {
            name: "role",
            required: true,
            help: "existing IAM role (name or ARN) the control plane uses",
        },
        ParamSpec {
            name: "subnet_ids",
            required: true,
            help: "subnets for the control plane's network interfaces",
        },
        ParamSpec {
            name: "security_group_ids",
            required: false,
            help: "extra security groups for the control plane",
        },
        ParamSpec {
            name: "endpoint_public_access",
            required: false,
            help: "public API endpoint (default true)",
        },
        ParamSpec {
            name: "endpoint_private_access",
            required: false,
            help: "private API endpoint (default true)",
        },
        ParamSpec {
            name: "public_access_cidrs",
            required: false,
            help: "CIDRs allowed to reach the public endpoint",
        },
        ParamSpec {
            name: "connect_kubeconfig",
            required: false,
            help: "use this kubeconfig to talk to the cluster instead of the generated one",
        },
        ParamSpec {
            name: "existing_kubeconfig",
            required: false,
            help: "a running cluster to use instead of provisioning one (pilot light); empty: provision",
        },
    ],
    outputs: &[
        "existing",
        "cluster_name",
        "arn",
        "endpoint",
        "certificate_authority",
        "version",
        "kubeconfig",
    ],
};

/// The `aws.eks.cluster` step kind.
pub struct AwsEksCluster;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    name: Option<String>,
    version: String,
    role: String,
    #[serde(default)]
    subnet_ids: Option<Vec<String>>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default = "yes")]
    endpoint_public_access: bool,
    #[serde(default = "yes")]
    endpoint_private_access: bool,
    #[serde(default)]
    public_access_cidrs: Option<Vec<String>>,
    #[serde(default)]
    connect_kubeconfig: Option<String>,
    #[serde(default)]
    existing_kubeconfig: Option<String>,
}

impl Params {
    fn existing(&self) -> Option<PathBuf> {
        self.existing_kubeconfig
            .as_deref()
            .filter(|path| !path.trim().is_empty())
            .map(PathBuf::from)
    }
}

/// What an existing cluster's kubeconfig says: its file (absolute), the current context's
/// cluster name and server.
struct Existing {
    kubeconfig: PathBuf,
    cluster: String,
    server: String,
}

fn read_existing(path: &Path) -> Result<Existing, String> {
    let kubeconfig = std::path::absolute(path).map_err(|error| error.to_string())?;
    let file = kube::config::Kubeconfig::read_from(&kubeconfig)
        .map_err(|error| format!("cannot read kubeconfig `{}`: {error}", path.display()))?;
    let context = file
        .current_context
        .as_deref()
        .and_then(|name| file.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("kubeconfig `{}` has no current context", path.display()))?;
    let server = file
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_default();
    Ok(Existing {
        kubeconfig,
        cluster: context.cluster.clone(),
        server,
    })
}

fn existing_outputs(existing: &Existing, version: &str) -> Values {
    Values::from([
        ("existing".to_string(), json!(true)),
        ("cluster_name".to_string(), json!(existing.cluster)),
        ("arn".to_string(), json!("")),
        ("endpoint".to_string(), json!(existing.server)),
        ("certificate_authority".to_string(), json!("")),
        ("version".to_string(), json!(version)),
        (
            "kubeconfig".to_string(),
            json!(existing.kubeconfig.display().to_string()),
        ),
    ])
}

const EXISTING_HINT: &str = "give a kubeconfig whose current context reaches the running cluster (`rebuild --kubeconfig PATH`), or leave it empty to provision a cluster";

fn yes() -> bool {
    true
}

/// The cluster's name: given, or `<step>-<run-id>`.
fn cluster_name(params: &Params, step: &str, run_id: &str) -> String {
    params
        .name
        .clone()
        .unwrap_or_else(|| format!("{step}-{run_id}"))
}

/// The role's name from a name or an ARN (`arn:aws:iam::123:role/path/name`).
fn role_name(role: &str) -> &str {
    role.rsplit('/').next().unwrap_or(role)
}

/// Look up an IAM role; `Ok(None)` when it does not exist.
pub(super) async fn role_arn(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<Option<String>, CloudError> {
    let name = role_name(role);
    match iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .cloud("GetRole", Some(name.to_string()))
    {
        Ok(answer) => Ok(answer.role().map(|role| role.arn().to_string())),
        Err(error) if error.is("NoSuchEntity") || error.is("NoSuchEntityException") => Ok(None),
        Err(error) => Err(error),
    }
}

pub(super) fn missing_role(role: &str) -> StepError {
    StepError::Refused {
        message: format!("IAM role `{}` does not exist", role_name(role)),
        hint: "IAM is global: the role should still exist; check the name in the playbook, or create it with the same policies as in the source region".to_string(),
    }
}

/// An existing cluster: its status and who made it.
struct Found {
    status: String,
    run_id: Option<String>,
    cluster: aws_sdk_eks::types::Cluster,
}

async fn describe(client: &aws_sdk_eks::Client, name: &str) -> Result<Option<Found>, CloudError> {
    match client
        .describe_cluster()
        .name(name)
        .send()
        .await
        .cloud("DescribeCluster", Some(name.to_string()))
    {
        Ok(answer) => Ok(answer.cluster().map(|cluster| Found {
            status: cluster
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            run_id: cluster
                .tags()
                .and_then(|tags| tags.get(TAG_RUN_ID).cloned()),
            cluster: cluster.clone(),
        })),
        Err(error) if error.is("ResourceNotFoundException") => Ok(None),
        Err(error) => Err(error),
    }
}

/// A kubeconfig for the cluster whose user gets tokens from `rebuild eks-token`.
pub fn kubeconfig(
    name: &str,
    region: &str,
    endpoint: &str,
    certificate_authority: &str,
    program: &Path,
) -> String {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {program}\n      args: [\"eks-token\", \"--cluster\", {cluster}, \"--region\", {region}]\n      interactiveMode: Never\n",
        name = quote(name),
        server = quote(endpoint),
        ca = quote(certificate_authority),
        program = quote(&program.display().to_string()),
        cluster = quote(name),
        region = quote(region),
    )
}

#[async_trait]
impl Step for AwsEksCluster {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        if let Some(path) = params.existing() {
            return Ok(match read_existing(&path) {
                Ok(existing) => {
                    let mut plan = StepPlan::new(
                        Action::Adopt,
                        format!(
                            "use the existing cluster `{}` (pilot light): nothing is provisioned",
                            existing.cluster
                        ),
                    )
                    .detail("kubeconfig", existing.kubeconfig.display().to_string())
                    .detail("server", existing.server.clone());
                    plan.outputs = existing_outputs(&existing, "");
                    plan
                }
                Err(message) => {
                    let mut plan = StepPlan::new(Action::Unknown, "use an existing cluster");
                    plan.problems
                        .push(StepProblem::from(format!("{message}; {EXISTING_HINT}")));
                    plan
                }
            });
        }
        let mut problems = Vec::new();
        if role_arn(&context.cloud.iam(), &params.role)
            .await?
            .is_none()
        {
            problems.push(format!(
                "{}; {}",
                missing_role(&params.role),
                "IAM is global, so the source region's role should exist"
            ));
        }
        let client = context.cloud.eks(&context.target_region);
        let (action, summary) = match (&context.run_id, &params.name) {
            (Some(run_id), _) => {
                let name = cluster_name(&params, &context.step_id, run_id);
                match describe(&client, &name).await? {
                    Some(found) if found.run_id.as_deref() == Some(run_id.as_str()) => (
                        Action::Adopt,
                        format!("adopt cluster `{name}` ({})", found.status),
                    ),
                    Some(_) => {
                        problems.push(format!(
                            "cluster `{name}` exists and was not created by this run"
                        ));
                        (Action::Unknown, format!("`{name}` exists already"))
                    }
                    None => (Action::Create, format!("create cluster `{name}`")),
                }
            }
            (None, Some(name)) => match describe(&client, name).await? {
                Some(_) => {
                    problems.push(format!(
                        "cluster `{name}` already exists in `{}`",
                        context.target_region
                    ));
                    (Action::Unknown, format!("`{name}` exists already"))
                }
                None => (Action::Create, format!("create cluster `{name}`")),
            },
            (None, None) => (
                Action::Create,
                format!("create cluster `{}-<run-id>`", context.step_id),
            ),
        };
        let mut plan = StepPlan::new(action, summary)
            .detail("kubernetes version", params.version.clone())
            .detail("role", role_name(&params.role).to_string());
        if let Some(path) = params
            .connect_kubeconfig
            .as_ref()
            .filter(|path| !path.is_empty())
        {
            plan = plan.detail("kubernetes connection", format!("kubeconfig {path}"));
        }
        plan.problems = problems.into_iter().map(StepProblem::from).collect();
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        if let Some(path) = params.existing() {
            return use_existing(context, &path).await;
        }
        let subnets = params
            .subnet_ids
            .clone()
            .filter(|subnets| subnets.len() >= 2)
            .ok_or_else(|| {
                StepError::Params(
                    "`subnet_ids` must list at least two subnets in different zones".into(),
                )
            })?;
        let role = role_arn(&context.cloud.iam(), &params.role)
            .await?
            .ok_or_else(|| missing_role(&params.role))?;
        let client = context.cloud.eks(&context.target_region);
        let name = cluster_name(&params, &context.step_id, &context.run_id);

        match describe(&client, &name).await? {
            Some(found) if found.run_id.as_deref() == Some(context.run_id.as_str()) => {
                context.resource("eks-cluster", &name, false)?;
            }
            Some(_) => {
                return Err(StepError::Conflict {
                    resource: name,
                    hint: "choose another `name`, or delete the leftover cluster".to_string(),
                });
            }
            None => {
                let tags: HashMap<String, String> =
                    context.tags_for("cluster").into_iter().collect();
                let vpc = VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnets))
                    .set_security_group_ids(Some(params.security_group_ids.clone()))
                    .endpoint_public_access(params.endpoint_public_access)
                    .endpoint_private_access(params.endpoint_private_access)
                    .set_public_access_cidrs(params.public_access_cidrs.clone())
                    .build();
                client
                    .create_cluster()
                    .name(&name)
                    .version(&params.version)
                    .role_arn(&role)
                    .resources_vpc_config(vpc)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .cloud("CreateCluster", Some(name.clone()))?;
                context.resource("eks-cluster", &name, true)?;
            }
        }
        context.checkpoint("after-create")?;

        let what = format!("EKS cluster `{name}` to become ACTIVE");
        let cluster = context
            .wait_for(&what, || async {
                let found = describe(&client, &name)
                    .await?
                    .ok_or_else(|| StepError::BadState {
                        resource: name.clone(),
                        status: "deleted".into(),
                    })?;
                match found.cluster.status() {
                    Some(ClusterStatus::Active) => Ok(Poll::Ready(found.cluster)),
                    Some(
                        ClusterStatus::Creating | ClusterStatus::Updating | ClusterStatus::Pending,
                    ) => Ok(Poll::Pending(found.status)),
                    _ => Err(StepError::BadState {
                        resource: name.clone(),
                        status: found.status,
                    }),
                }
            })
            .await?;

        let endpoint = cluster.endpoint().unwrap_or_default().to_string();
        let certificate_authority = cluster
            .certificate_authority()
            .and_then(|ca| ca.data())
            .unwrap_or_default()
            .to_string();
        let folder = context.step_dir();
        let generated = folder.join("kubeconfig");
        let program = context.program().to_path_buf();
        let text = kubeconfig(
            &name,
            &context.target_region,
            &endpoint,
            &certificate_authority,
            &program,
        );
        std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::write(&generated, text))
            .map_err(|error| {
                StepError::Params(format!("cannot write `{}`: {error}", generated.display()))
            })?;
        let kubeconfig = match params
            .connect_kubeconfig
            .as_ref()
            .filter(|path| !path.is_empty())
        {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.exists() {
                    return Err(StepError::Params(format!(
                        "`connect_kubeconfig` `{}` does not exist",
                        path.display()
                    )));
                }
                std::fs::canonicalize(&path).unwrap_or(path)
            }
            None => generated,
        };
        Ok(Values::from([
            ("existing".to_string(), json!(false)),
            ("cluster_name".to_string(), json!(name)),
            ("arn".to_string(), json!(cluster.arn())),
            ("endpoint".to_string(), json!(endpoint)),
            (
                "certificate_authority".to_string(),
                json!(certificate_authority),
            ),
            ("version".to_string(), json!(cluster.version())),
            (
                "kubeconfig".to_string(),
                json!(kubeconfig.display().to_string()),
            ),
        ]))
    }
}

/// Existing-cluster mode: check that the API answers, output the given kubeconfig.
async fn use_existing(context: &StepContext, path: &Path) -> Result<Values, StepError> {
    let existing = read_existing(path).map_err(|message| StepError::Refused {
        message,
        hint: EXISTING_HINT.to_string(),
    })?;
    let client = crate::cloud::kubernetes::client(&existing.kubeconfig, None).await?;
    let version = client.apiserver_version().await.map_err(|error| {
        crate::cloud::kubernetes::error(error, "GET /version", &existing.server)
    })?;
    let version = format!("{}.{}", version.major, version.minor);
    context.progress(format!(
        "using the existing cluster `{}` at {} (Kubernetes {version}); nothing is provisioned",
        existing.cluster, existing.server
    ));
    Ok(existing_outputs(&existing, &version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_come_from_names_and_arns() {
        assert_eq!(role_name("eks-cluster"), "eks-cluster");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/platform/eks-cluster"),
            "eks-cluster"
        );
    }

    #[test]
    fn kubeconfig_uses_the_eks_token_command() {
        let text = kubeconfig(
            "c1",
            "ap-southeast-1",
            "https://abc.eks",
            "Q0E=",
            Path::new("/usr/bin/rebuild"),
        );
        assert!(text.contains("server: \"https://abc.eks\""));
        assert!(text.contains("certificate-authority-data: \"Q0E=\""));
        assert!(text.contains("command: \"/usr/bin/rebuild\""));
        assert!(text.contains(
            "args: [\"eks-token\", \"--cluster\", \"c1\", \"--region\", \"ap-southeast-1\"]"
        ));
    }
}
