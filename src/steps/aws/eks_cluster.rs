//! `aws.eks.cluster`: an EKS control plane on the network step's subnets, in this order:
//! the IAM role it uses, which already exists (IAM is global, so it survived the region:
//! it is looked up, and its absence is a plan problem); the cluster, named
//! deterministically and tagged with the run, through the ownership protocol (a re-run
//! adopts it); the wait for `ACTIVE`; and a kubeconfig in the step's folder whose user runs
//! `rebuild eks-token` (a presigned STS token; no AWS CLI needed). The Kubernetes
//! connection can be directed to another kubeconfig (`connect_kubeconfig`), e.g. a test
//! API server, while the cluster is still provisioned.
//!
//! Existing-cluster mode: the pilot-light pattern, where a cluster already runs in the
//! target region. Nothing is provisioned, and `existing` is true so the node group step
//! leaves the cluster's nodes alone. The cluster is named (`existing_cluster`, or `rebuild
//! --existing-cluster NAME`): EKS describes it (its security group and VPC, which the
//! network step put the database in), the kubeconfig is generated as for a new one, or
//! `existing_kubeconfig` is used to connect. Or only a kubeconfig is given
//! (`existing_kubeconfig`, or `rebuild --kubeconfig`): the step checks that the cluster's
//! API answers and outputs that kubeconfig; the plan warns that the database is then out
//! of the cluster's network.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AuthenticationMode, Cluster, ClusterStatus,
    CreateAccessConfigRequest, LogSetup, LogType, Logging, VersionStatus, VpcConfigRequest,
};
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::{ResourceAction, Values};
use crate::playbook::KindSpec;
use crate::runtime::Owner;
use crate::steps::context::{Poll, Wait};
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::iam::{CLUSTER_ROLE, missing_role, role_arn, role_name, role_problems};
use super::ownership::{Kind, Ownership, ensure};
use super::pilot::{self, PILOT_HINT, Pilot};
use super::tags::{Existing, Marks, eks_tags};
use super::{optional, required};

/// How long an EKS control plane usually takes to become `ACTIVE` (10–15 minutes).
const CLUSTER_TYPICAL: Duration = Duration::from_secs(12 * 60);

static SPEC: KindSpec = KindSpec {
    kind: "aws.eks.cluster",
    summary: "an EKS control plane on the given subnets, waited for until ACTIVE, with a kubeconfig",
    parameters: &[
        optional("name", "cluster name (default `<step>-<run-id>`)"),
        required(
            "version",
            "Kubernetes version, e.g. `1.35` (one EKS offers in the target region: checked when planning)",
        ),
        required(
            "role",
            "existing IAM role (name or ARN) the control plane uses",
        ),
        required(
            "subnet_ids",
            "subnets for the control plane's network interfaces",
        ),
        optional(
            "security_group_ids",
            "extra security groups for the control plane",
        ),
        optional(
            "endpoint_public_access",
            "public API endpoint (default true)",
        ),
        optional(
            "endpoint_private_access",
            "private API endpoint (default true)",
        ),
        optional(
            "public_access_cidrs",
            "CIDRs allowed to reach the public endpoint",
        ),
        optional(
            "logging",
            "control-plane log types sent to CloudWatch (default `[api, audit, authenticator]`; `[]` for none)",
        ),
        optional(
            "admins",
            "IAM principals (role or user ARNs) given cluster admin through EKS access entries, e.g. the on-call SSO role and a break-glass role; the creator is admin too",
        ),
        optional(
            "connect_kubeconfig",
            "use this kubeconfig to talk to the cluster instead of the generated one",
        ),
        optional(
            "existing_kubeconfig",
            "a running cluster to use instead of provisioning one (pilot light), or how to connect to `existing_cluster`; empty: provision",
        ),
        optional(
            "existing_cluster",
            "the running EKS cluster to use instead of provisioning one (pilot light); empty: provision",
        ),
    ],
    outputs: &[
        "existing",
        "cluster_name",
        "arn",
        "endpoint",
        "certificate_authority",
        "version",
        "kubeconfig",
        "security_group_id",
        "vpc_id",
        "admins",
    ],
};

/// The `aws.eks.cluster` step kind.
pub(crate) struct AwsEksCluster;

/// The parameters; the subnets may come from an earlier step (see [`Phase`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    #[serde(default)]
    name: Option<String>,
    version: String,
    role: String,
    subnet_ids: P::Later<Vec<String>>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default = "interface::yes")]
    endpoint_public_access: bool,
    #[serde(default = "interface::yes")]
    endpoint_private_access: bool,
    #[serde(default)]
    public_access_cidrs: Option<Vec<String>>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default = "default_logging")]
    logging: Vec<String>,
    #[serde(default)]
    connect_kubeconfig: Option<String>,
    #[serde(default)]
    existing_kubeconfig: Option<String>,
    #[serde(default)]
    existing_cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    existing: bool,
    cluster_name: String,
    arn: Option<String>,
    endpoint: String,
    certificate_authority: String,
    version: Option<String>,
    kubeconfig: String,
    /// The security group EKS made for the cluster (`clusterSecurityGroupId`): the managed
    /// nodes carry it, so it is what the database must let in (review B1).
    security_group_id: String,
    /// The cluster's VPC.
    vpc_id: String,
    /// The principals given cluster admin through access entries.
    admins: Vec<String>,
}

/// The control plane's audit trail, on by default as in the reference setups (review C6).
fn default_logging() -> Vec<String> {
    ["api", "audit", "authenticator"].map(String::from).to_vec()
}

const CLUSTER: Kind = Kind {
    journal: "eks-cluster",
    conflict_hint: "choose another `name`, or delete the leftover cluster",
};

/// What a pilot light known only by its kubeconfig cannot do (review B5), said in its plan.
const PILOT_LIGHT_NETWORK: &str = "the database is restored into the new VPC, which this cluster's nodes cannot reach: name the EKS cluster instead (`rebuild --existing-cluster NAME`) so the database goes into its VPC, or peer the VPCs (routes both ways) and let the cluster's security group into the database's on its port before the deploy";

const EXISTING_HINT: &str = "give a kubeconfig whose current context reaches the running cluster (`rebuild --kubeconfig PATH`), or leave it empty to provision a cluster";

impl<P: Phase> Params<P> {
    /// The running cluster's kubeconfig, in existing-cluster mode.
    fn existing(&self) -> Option<PathBuf> {
        let path = self.existing_kubeconfig.as_deref();
        path.filter(|path| !path.trim().is_empty())
            .map(PathBuf::from)
    }

    /// The kubeconfig to connect through instead of the generated one, if any.
    fn connect(&self) -> Option<&str> {
        let path = self.connect_kubeconfig.as_deref();
        path.filter(|path| !path.is_empty())
    }

    /// The cluster's name: given, or `<step>-<stack>` (see [`Owner::resource_name`]).
    fn cluster_name(&self, step: &str, owner: &Owner) -> String {
        let name = self.name.clone();
        name.unwrap_or_else(|| owner.resource_name(step))
    }
}

/// What an existing cluster's kubeconfig says: its file (absolute), the current context's
/// cluster name and server.
struct Running {
    kubeconfig: PathBuf,
    cluster: String,
    server: String,
}

impl Running {
    fn read(path: &Path) -> Result<Self, String> {
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
        Ok(Self {
            kubeconfig,
            cluster: context.cluster.clone(),
            server,
        })
    }

    fn outputs(&self, version: &str) -> Result<Values, StepError> {
        interface::outputs(&Outputs {
            existing: true,
            cluster_name: self.cluster.clone(),
            arn: Some(String::new()),
            endpoint: self.server.clone(),
            certificate_authority: String::new(),
            version: Some(version.to_string()),
            kubeconfig: self.kubeconfig.display().to_string(),
            security_group_id: String::new(),
            vpc_id: String::new(),
            admins: Vec::new(),
        })
    }
}

/// The cluster `name`, if it exists.
pub(super) async fn describe(
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<Option<Existing<Cluster>>, CloudError> {
    let answer = client
        .describe_cluster()
        .name(name)
        .send()
        .await
        .cloud("DescribeCluster", Some(name.to_string()));
    let answer = match answer {
        Err(error) if error.is_not_found() => return Ok(None),
        answer => answer?,
    };
    Ok(answer.cluster().map(|cluster| Existing {
        id: name.to_string(),
        status: cluster
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: Marks::eks(cluster.tags()),
        resource: cluster.clone(),
    }))
}

/// A kubeconfig for the cluster whose user gets tokens from `rebuild eks-token`.
fn kubeconfig(
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

/// A problem when EKS does not create clusters in Kubernetes `version` in the target
/// region: only versions in standard or extended support can be created
/// (`DescribeClusterVersions`), and a refused `CreateCluster` would come after the network.
async fn version_problem(
    context: &PlanContext,
    version: &str,
) -> Result<Option<StepProblem>, StepError> {
    let client = context.cloud.eks(&context.target_region);
    let mut offered = Vec::new();
    let mut pages = client
        .describe_cluster_versions()
        .include_all(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeClusterVersions", None)?;
        let supported = page.cluster_versions().iter().filter(|info| {
            matches!(
                info.version_status(),
                Some(VersionStatus::StandardSupport | VersionStatus::ExtendedSupport)
            )
        });
        offered.extend(supported.filter_map(|info| info.cluster_version().map(str::to_string)));
    }
    if offered.iter().any(|offered| offered == version) {
        return Ok(None);
    }
    Ok(Some(StepProblem::from(format!(
        "EKS does not create clusters in Kubernetes `{version}` in `{}` (offered there: {}); set the input `eks_version` (or the step's `version`) to one of them, production's or the nearest newer one",
        context.target_region,
        if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        }
    ))))
}

#[async_trait]
impl Step for AwsEksCluster {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        if let Some(name) = pilot::named(params.existing_cluster.as_deref()) {
            return plan_pilot(context, name, &params).await;
        }
        if let Some(path) = params.existing() {
            return plan_existing(&path);
        }
        // The role, the cluster and the versions EKS offers, asked at once; the version
        // matters only for a cluster to create.
        let iam = context.cloud.iam(&context.target_region);
        let mut found = Vec::new();
        let (role, cluster, version) = tokio::join!(
            role_problems(&iam, &params.role, &CLUSTER_ROLE),
            plan_cluster(context, &params, &mut found),
            version_problem(context, &params.version),
        );
        let (mut problems, role_note) = role?;
        let (action, summary, running) = cluster?;
        problems.append(&mut found);
        if action == Action::Create {
            problems.extend(version?);
        }
        let mut plan = StepPlan::new(action, summary)
            .detail("kubernetes version", params.version.clone())
            .detail("role", role_name(&params.role).to_string());
        if let Some(running) = running.filter(|running| *running != params.version) {
            let name = params.cluster_name(&context.step_id, &context.owner);
            let wanted = &params.version;
            plan = plan.detail(
                "warning",
                format!(
                    "cluster `{name}` runs Kubernetes {running}, the playbook asks for {wanted}: an adopted cluster is not upgraded in place; upgrade it one minor version at a time with `aws eks update-cluster-version --region {} --name {name} --kubernetes-version VERSION`, or build another copy with `--stack NAME`",
                    context.target_region
                ),
            );
        }
        if let Some(note) = role_note {
            plan = plan.detail("role policies", note);
        }
        plan = plan.detail(
            "admins",
            if params.admins.is_empty() {
                "the creator only: list `admins` so a colleague can resume or operate the cluster"
                    .to_string()
            } else {
                params.admins.join(", ")
            },
        );
        const LOG_TYPES: [&str; 5] = [
            "api",
            "audit",
            "authenticator",
            "controllerManager",
            "scheduler",
        ];
        for kind in &params.logging {
            if !LOG_TYPES.contains(&kind.as_str()) {
                plan.problems.push(StepProblem::from(format!(
                    "`logging` has `{kind}`; EKS's log types are {}",
                    LOG_TYPES.join(", ")
                )));
            }
        }
        for admin in &params.admins {
            if !(admin.starts_with("arn:aws") && admin.contains(":iam::")) {
                plan.problems.push(StepProblem::from(format!(
                    "`admins` entry `{admin}` is not an IAM principal ARN (`arn:aws:iam::ACCOUNT:role/NAME`)"
                )));
            }
        }
        if let Some(path) = params.connect() {
            plan = plan.detail("kubernetes connection", format!("kubeconfig {path}"));
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
        if let Some(name) = pilot::named(params.existing_cluster.as_deref()) {
            return use_pilot(context, name, &params).await;
        }
        if let Some(path) = params.existing() {
            return use_existing(context, &path).await;
        }
        if params.subnet_ids.len() < 2 {
            return Err(StepError::Params(
                "`subnet_ids` must list at least two subnets in different zones".into(),
            ));
        }
        let role = role_arn(&context.cloud.iam(&context.target_region), &params.role)
            .await?
            .ok_or_else(|| missing_role(&params.role))?;
        let client = context.cloud.eks(&context.target_region);
        let name = params.cluster_name(&context.step_id, &context.owner);
        ensure_cluster(context, &client, &params, &name, &role).await?;
        context.checkpoint("after-create")?;
        let cluster = wait_active(context, &client, &name).await?;
        grant_admins(context, &client, &name, &params.admins).await?;
        let endpoint = cluster.endpoint().unwrap_or_default().to_string();
        let certificate_authority = cluster.certificate_authority().and_then(|ca| ca.data());
        let certificate_authority = certificate_authority.unwrap_or_default().to_string();
        let text = kubeconfig(
            &name,
            &context.target_region,
            &endpoint,
            &certificate_authority,
            context.program(),
        );
        let kubeconfig = write_kubeconfig(context, &text, params.connect())?;
        let network = cluster.resources_vpc_config();
        let security_group_id = network.and_then(|network| network.cluster_security_group_id());
        let Some(security_group_id) = security_group_id.map(str::to_string) else {
            return Err(
                CloudError::missing_field("DescribeCluster", "clusterSecurityGroupId").into(),
            );
        };
        let vpc_id = network.and_then(|network| network.vpc_id());
        let vpc_id = vpc_id.unwrap_or_default().to_string();
        interface::outputs(&Outputs {
            existing: false,
            cluster_name: name,
            arn: cluster.arn().map(str::to_string),
            endpoint,
            certificate_authority,
            version: cluster.version().map(str::to_string),
            kubeconfig: kubeconfig.display().to_string(),
            security_group_id,
            vpc_id,
            admins: params.admins.clone(),
        })
    }
}

/// The plan in existing-cluster mode: the kubeconfig is read, the cluster not contacted.
fn plan_existing(path: &Path) -> Result<StepPlan, StepError> {
    match Running::read(path) {
        Ok(running) => {
            let summary = format!(
                "use the existing cluster `{}` (pilot light): nothing is provisioned",
                running.cluster
            );
            let mut plan = StepPlan::new(Action::Adopt, summary)
                .detail("kubeconfig", running.kubeconfig.display().to_string())
                .detail("server", running.server.clone())
                .detail("warning", PILOT_LIGHT_NETWORK);
            plan.outputs = running.outputs("")?;
            Ok(plan)
        }
        Err(message) => {
            let mut plan = StepPlan::new(Action::Unknown, "use an existing cluster");
            let problem = format!("{message}; {EXISTING_HINT}");
            plan.problems.push(StepProblem::from(problem));
            Ok(plan)
        }
    }
}

/// What the plan says of the cluster: adopt it (the stack's, made by this run or an
/// earlier one; with the Kubernetes version it runs), create it, or a conflict with a
/// stranger of that name.
async fn plan_cluster(
    context: &PlanContext,
    params: &Params<Planning>,
    problems: &mut Vec<StepProblem>,
) -> Result<(Action, String, Option<String>), StepError> {
    let client = context.cloud.eks(&context.target_region);
    let region = &context.target_region;
    let name = params.cluster_name(&context.step_id, &context.owner);
    let found = describe(&client, &name).await?;
    Ok(match Ownership::named(found, &context.owner) {
        Ownership::Ours(found) => (
            Action::Adopt,
            format!("adopt cluster `{name}` ({})", found.status),
            found.resource.version().map(str::to_string),
        ),
        Ownership::Stranger(_) => {
            let owner = context.owner.describe();
            let problem = format!(
                "cluster `{name}` already exists in `{region}` and does not belong to {owner}"
            );
            problems.push(StepProblem::from(problem));
            (Action::Unknown, format!("`{name}` exists already"), None)
        }
        Ownership::Absent => (Action::Create, format!("create cluster `{name}`"), None),
    })
}

/// Adopt or create the cluster `name`, with the role `role`.
async fn ensure_cluster(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    params: &Params,
    name: &str,
    role: &str,
) -> Result<(), StepError> {
    let find = || async move {
        Ok(Ownership::named(
            describe(client, name).await?,
            &context.owner,
        ))
    };
    let create = || async move {
        let network = VpcConfigRequest::builder()
            .set_subnet_ids(Some(params.subnet_ids.clone()))
            .set_security_group_ids(Some(params.security_group_ids.clone()))
            .endpoint_public_access(params.endpoint_public_access)
            .endpoint_private_access(params.endpoint_private_access)
            .set_public_access_cidrs(params.public_access_cidrs.clone())
            .build();
        // Access entries, not the aws-auth ConfigMap: whoever the playbook names can be
        // let in (a colleague resuming the run), which CONFIG_MAP mode, the API's default,
        // does not allow (review D4).
        let access = CreateAccessConfigRequest::builder()
            .authentication_mode(AuthenticationMode::ApiAndConfigMap)
            .bootstrap_cluster_creator_admin_permissions(true)
            .build();
        let types = params
            .logging
            .iter()
            .map(|kind| LogType::from(kind.as_str()));
        let logging = Logging::builder()
            .cluster_logging(
                LogSetup::builder()
                    .enabled(!params.logging.is_empty())
                    .set_types(Some(types.collect()))
                    .build(),
            )
            .build();
        client
            .create_cluster()
            .name(name)
            .version(&params.version)
            .role_arn(role)
            .resources_vpc_config(network)
            .access_config(access)
            .logging(logging)
            .set_tags(Some(eks_tags(context, "cluster")))
            .send()
            .await
            .cloud("CreateCluster", Some(name.to_string()))?;
        Ok(name.to_string())
    };
    ensure(context, CLUSTER, find, create).await?;
    Ok(())
}

/// The access policy that makes a principal cluster admin.
const CLUSTER_ADMIN_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

/// Give each of `admins` an access entry with the cluster admin policy, cluster-wide. An
/// entry that exists already (an earlier attempt's) is kept; associating a policy again
/// changes nothing.
async fn grant_admins(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    cluster: &str,
    admins: &[String],
) -> Result<(), StepError> {
    for principal in admins {
        let created = client
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_tags(Some(eks_tags(context, "access-entry")))
            .send()
            .await
            .cloud("CreateAccessEntry", Some(principal.clone()));
        let action = match created {
            Ok(_) => ResourceAction::Created,
            Err(error) if error.is("ResourceInUseException") => ResourceAction::Adopted,
            Err(error) => return Err(error.into()),
        };
        client
            .associate_access_policy()
            .cluster_name(cluster)
            .principal_arn(principal)
            .policy_arn(CLUSTER_ADMIN_POLICY)
            .access_scope(
                AccessScope::builder()
                    .r#type(AccessScopeType::Cluster)
                    .build(),
            )
            .send()
            .await
            .cloud("AssociateAccessPolicy", Some(principal.clone()))?;
        context.resource("eks-access-entry", principal, action)?;
    }
    Ok(())
}

/// Wait until the cluster `name` is `ACTIVE`; its description then.
async fn wait_active(
    context: &StepContext,
    client: &aws_sdk_eks::Client,
    name: &str,
) -> Result<Cluster, StepError> {
    let what = format!("EKS cluster `{name}` to become ACTIVE");
    context
        .wait_for(
            Wait::new("cluster-active", what).typically(CLUSTER_TYPICAL),
            || async {
                let found = describe(client, name)
                    .await?
                    .ok_or_else(|| StepError::BadState {
                        resource: name.to_string(),
                        status: "deleted".into(),
                    })?;
                match found.resource.status() {
                    Some(ClusterStatus::Active) => Ok(Poll::Ready(found.resource)),
                    Some(
                        ClusterStatus::Creating | ClusterStatus::Updating | ClusterStatus::Pending,
                    ) => Ok(Poll::Pending(found.status)),
                    _ => Err(StepError::BadState {
                        resource: name.to_string(),
                        status: found.status,
                    }),
                }
            },
        )
        .await
}

/// Write the generated kubeconfig into the step's folder (every attempt that gets here
/// writes it again); the kubeconfig to use: `connect` (absolute) when given, else that one.
fn write_kubeconfig(
    context: &StepContext,
    text: &str,
    connect: Option<&str>,
) -> Result<PathBuf, StepError> {
    let folder = context.step_dir();
    let generated = folder.join("kubeconfig");
    std::fs::create_dir_all(&folder)
        .and_then(|()| std::fs::write(&generated, text))
        .map_err(|error| {
            let path = generated.display().to_string();
            CloudError::local("write kubeconfig", Some(path), error.to_string())
        })?;
    let Some(path) = connect.map(PathBuf::from) else {
        return Ok(generated);
    };
    if !path.exists() {
        return Err(StepError::Params(format!(
            "`connect_kubeconfig` `{}` does not exist",
            path.display()
        )));
    }
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The plan of a named existing cluster: EKS describes it; nothing is provisioned.
async fn plan_pilot(
    context: &PlanContext,
    name: &str,
    params: &Params<Planning>,
) -> Result<StepPlan, StepError> {
    let region = &context.target_region;
    let client = context.cloud.eks(region);
    let problem = match Pilot::describe(&client, name).await? {
        None => format!("there is no EKS cluster `{name}` in `{region}`"),
        Some(pilot) => match pilot.unusable() {
            Some(problem) => problem,
            None => {
                let summary = format!(
                    "use the existing cluster `{name}` (pilot light, Kubernetes {}): nothing is provisioned",
                    pilot.version
                );
                let mut plan = StepPlan::new(Action::Adopt, summary)
                    .detail("endpoint", pilot.endpoint.clone())
                    .detail("vpc", pilot.vpc_id.clone())
                    .detail("security group", pilot.security_group_id.clone());
                if let Some(path) = params.existing().or(params.connect().map(PathBuf::from)) {
                    let path = path.display().to_string();
                    plan = plan.detail("kubernetes connection", format!("kubeconfig {path}"));
                }
                plan.outputs = interface::outputs(&pilot_outputs(&pilot, String::new()))?;
                return Ok(plan);
            }
        },
    };
    let mut plan = StepPlan::new(
        Action::Unknown,
        format!("use the existing cluster `{name}`"),
    );
    plan.problems
        .push(StepProblem::from(format!("{problem}; {PILOT_HINT}")));
    Ok(plan)
}

/// The outputs of a named existing cluster, connected to through `kubeconfig`.
fn pilot_outputs(pilot: &Pilot, kubeconfig: String) -> Outputs {
    Outputs {
        existing: true,
        cluster_name: pilot.name.clone(),
        arn: Some(pilot.arn.clone()),
        endpoint: pilot.endpoint.clone(),
        certificate_authority: pilot.certificate_authority.clone(),
        version: Some(pilot.version.clone()),
        kubeconfig,
        security_group_id: pilot.security_group_id.clone(),
        vpc_id: pilot.vpc_id.clone(),
        admins: Vec::new(),
    }
}

/// A named existing cluster: it must be ACTIVE and its API must answer; its kubeconfig is
/// generated as a new cluster's (or `existing_kubeconfig`, else `connect_kubeconfig`, is
/// used to connect). Its access entries are left as they are: it is not the run's.
async fn use_pilot(
    context: &StepContext,
    name: &str,
    params: &Params,
) -> Result<Values, StepError> {
    let region = &context.target_region;
    let pilot = Pilot::running(&context.cloud.eks(region), name, region).await?;
    let text = kubeconfig(
        name,
        region,
        &pilot.endpoint,
        &pilot.certificate_authority,
        context.program(),
    );
    let given = params.existing_kubeconfig.as_deref();
    let given = given.filter(|path| !path.trim().is_empty());
    let kubeconfig = write_kubeconfig(context, &text, given.or(params.connect()))?;
    let client = context.cloud.kubernetes(&kubeconfig, None).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|error| crate::cloud::kubernetes::error(error, "GET /version", &pilot.endpoint))?;
    context.progress(format!(
        "using the existing cluster `{name}` (Kubernetes {}.{}, VPC {}); nothing is provisioned",
        version.major, version.minor, pilot.vpc_id
    ));
    interface::outputs(&pilot_outputs(&pilot, kubeconfig.display().to_string()))
}

/// Existing-cluster mode: check that the API answers, output the given kubeconfig.
async fn use_existing(context: &StepContext, path: &Path) -> Result<Values, StepError> {
    let running = Running::read(path).map_err(|message| StepError::Refused {
        message,
        hint: EXISTING_HINT.to_string(),
    })?;
    let client = context.cloud.kubernetes(&running.kubeconfig, None).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|error| crate::cloud::kubernetes::error(error, "GET /version", &running.server))?;
    let version = format!("{}.{}", version.major, version.minor);
    context.progress(format!(
        "using the existing cluster `{}` at {} (Kubernetes {version}); nothing is provisioned",
        running.cluster, running.server
    ));
    running.outputs(&version)
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
                "name": "c1",
                "version": "1.29",
                "role": "eks-cluster",
                "subnet_ids": ["subnet-1", "subnet-2"],
                "security_group_ids": ["sg-1"],
                "endpoint_public_access": true,
                "endpoint_private_access": true,
                "public_access_cidrs": ["10.0.0.0/8"],
                "admins": ["arn:aws:iam::123456789012:role/oncall"],
                "logging": ["audit"],
                "connect_kubeconfig": "",
                "existing_kubeconfig": "",
                "existing_cluster": "",
            }),
        );
        let planned: Params<Planning> =
            serde_json::from_value(json!({"version": "1.29", "role": "r"})).unwrap();
        assert_eq!(planned.subnet_ids, None);
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
