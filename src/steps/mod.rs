//! Step kinds: one module each, named after the kind. Every kind keeps one contract:
//! `plan` is read-only (Describe/List/Get only); `apply` is idempotent — it finds what an
//! earlier attempt of the same run and step created (by tags and deterministic names) and
//! adopts it instead of creating twice. Steps never print and never build clients: they
//! get a [`StepContext`] (or a [`PlanContext`] when planning).

mod aws;
pub mod context;
mod gate;
mod git;
mod http;
pub mod interface;
mod k8s;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::cloud::CloudError;
use crate::cloud::kubernetes::{KubernetesError, Refusal};
use crate::journal::{JournalError, Values};
use crate::playbook::KindSpec;

pub use context::{PlanContext, StepContext, StepServices};

/// What the plan says will happen to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Resources will be created.
    Create,
    /// Resources exist already, tagged as this run's; they will be adopted.
    Adopt,
    /// Done in this run already; outputs are reused.
    Skip,
    /// Depends on outputs not known yet.
    #[default]
    Unknown,
}

impl std::fmt::Display for Action {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Create => "create",
            Self::Adopt => "adopt",
            Self::Skip => "skip",
            Self::Unknown => "unknown",
        })
    }
}

/// What a step kind's read-only planning found.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// The action.
    pub action: Action,
    /// One line on what will happen.
    pub summary: String,
    /// Facts found (e.g. the snapshot and its age), in display order.
    pub details: Vec<(String, String)>,
    /// Problems that must stop the run before any change.
    pub problems: Vec<StepProblem>,
    /// Outputs already known at plan time (e.g. the commit and a checkout of it): later
    /// steps are planned with them, so their plans can be exact.
    #[serde(skip)]
    pub outputs: Values,
}

impl StepPlan {
    /// A plan with an action and summary.
    pub fn new(action: Action, summary: impl Into<String>) -> Self {
        Self {
            action,
            summary: summary.into(),
            details: Vec::new(),
            problems: Vec::new(),
            outputs: Values::new(),
        }
    }

    /// Add a fact.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.push((key.into(), value.into()));
        self
    }
}

/// A problem a kind's planning found: it stops the run before any change. The variant,
/// not the text, decides the hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum StepProblem {
    /// The newest usable snapshot is older than the playbook's RPO limit.
    RpoExceeded {
        /// What was found.
        message: String,
    },
    /// No usable cloud credentials.
    NoCredentials {
        /// What was found.
        message: String,
    },
    /// The TLS certificate cannot serve the public name in the target region.
    Certificate {
        /// What was found.
        message: String,
    },
    /// Anything else the step found wrong.
    Other {
        /// What was found.
        message: String,
    },
}

impl StepProblem {
    /// What is wrong.
    pub fn message(&self) -> &str {
        match self {
            Self::RpoExceeded { message }
            | Self::NoCredentials { message }
            | Self::Certificate { message }
            | Self::Other { message } => message,
        }
    }

    /// The same problem with its text rewritten (e.g. scrubbed of secrets).
    #[must_use]
    pub fn map_message(self, change: impl FnOnce(&str) -> String) -> Self {
        match self {
            Self::RpoExceeded { message } => Self::RpoExceeded {
                message: change(&message),
            },
            Self::NoCredentials { message } => Self::NoCredentials {
                message: change(&message),
            },
            Self::Certificate { message } => Self::Certificate {
                message: change(&message),
            },
            Self::Other { message } => Self::Other {
                message: change(&message),
            },
        }
    }

    /// What to do about it, when the variant knows.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::RpoExceeded { .. } => Some(
                "copy a newer snapshot into the target region, or accept the data loss with `--accept-rpo`",
            ),
            Self::NoCredentials { .. } => Some(NO_CREDENTIALS_HINT),
            Self::Certificate { .. } => Some(CERTIFICATE_HINT),
            Self::Other { .. } => None,
        }
    }
}

impl From<String> for StepProblem {
    fn from(message: String) -> Self {
        Self::Other { message }
    }
}

impl From<&str> for StepProblem {
    fn from(message: &str) -> Self {
        Self::Other {
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for StepProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.message())
    }
}

/// What to do when no usable AWS credentials were found.
pub const NO_CREDENTIALS_HINT: &str = "no usable AWS credentials: log in (`aws sso login`, a profile in `AWS_PROFILE`, or environment keys), then run again";

/// What to do when the TLS certificate cannot serve the public name in the target region.
pub const CERTIFICATE_HINT: &str = "request and validate (or import) a certificate for the public name in the target region with ACM, then pass its ARN with `--input tls_certificate_arn=ARN`";

/// What to do when the cluster refuses the run's AWS principal (Kubernetes HTTP 401).
pub const CLUSTER_REFUSED_HINT: &str = "EKS lets in the cluster's creator and the principals with an access entry, and this run's AWS principal (the plan's `as`; an assumed role counts as its role ARN) is neither: resume as the principal that started the run, or have a cluster admin grant this one (`aws eks create-access-entry --cluster-name CLUSTER --principal-arn ROLE_ARN`, then `aws eks associate-access-policy --cluster-name CLUSTER --principal-arn ROLE_ARN --policy-arn arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy --access-scope type=cluster`), then `rebuild resume`; list the role in the playbook's `cluster_admins` input so the next run grants it";

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A cloud call failed.
    #[error("{0}")]
    Cloud(CloudError),
    /// The cluster's API server refused the run's credentials (HTTP 401): on EKS, an AWS
    /// principal without access to the cluster. Not retryable: only a grant helps.
    #[error("{0}")]
    ClusterRefused(Refusal),
    /// Parameters do not fit the kind.
    #[error("invalid parameters: {0}")]
    Params(String),
    /// The step refuses to go on (e.g. the snapshot is older than the RPO limit).
    #[error("{message}")]
    Refused {
        /// What and why.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A resource with the step's name exists but was not made by this run.
    #[error("`{resource}` already exists and is not tagged as created by this run")]
    Conflict {
        /// The resource.
        resource: String,
        /// What to do.
        hint: String,
    },
    /// A resource reached a state it cannot recover from.
    #[error("`{resource}` is in state `{status}`")]
    BadState {
        /// The resource.
        resource: String,
        /// Its state.
        status: String,
    },
    /// A resource failed, as the cloud reports it (a NAT gateway `failed`, a node group
    /// `CREATE_FAILED`): its state, the cloud's reason, and what to do.
    #[error("`{resource}` is `{status}`: {reason}")]
    Failed {
        /// The resource.
        resource: String,
        /// Its state.
        status: String,
        /// The cloud's failure codes and messages.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// A gate was rejected: by someone (`rebuild reject`), or by its timeout whose default
    /// is `reject`.
    #[error("rejected {}{}", .by.as_ref().map_or_else(|| "by its timeout".to_string(), |by| format!("by {by}")), .reason.as_ref().map(|reason| format!(": {reason}")).unwrap_or_default())]
    Rejected {
        /// Who (`None`: the timeout).
        by: Option<crate::journal::Actor>,
        /// Why, when given.
        reason: Option<String>,
    },
    /// The attempt ran past the step's timeout.
    #[error("timed out after {}", crate::playbook::duration::render(*.0))]
    Timeout(std::time::Duration),
    /// The run is stopping; the step stopped at a safe point.
    #[error("interrupted at a safe point")]
    Interrupted,
    /// The step panicked (a bug); the journal stays valid.
    #[error("internal error: {0}")]
    Crashed(String),
    /// Writing the checkpoint failed.
    #[error("cannot write the journal: {0}")]
    Journal(#[from] JournalError),
}

impl From<CloudError> for StepError {
    fn from(error: CloudError) -> Self {
        Self::Cloud(error)
    }
}

impl From<KubernetesError> for StepError {
    fn from(error: KubernetesError) -> Self {
        match error {
            KubernetesError::Unauthenticated(refusal) => Self::ClusterRefused(refusal),
            KubernetesError::Call(error) => Self::Cloud(error),
        }
    }
}

impl StepError {
    /// Whether another attempt may succeed: only what the cloud marks retryable, and timeouts.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Cloud(error) => error.retryable,
            Self::Timeout(_) => true,
            _ => false,
        }
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Cloud(error) if error.missing_credentials => Some(NO_CREDENTIALS_HINT.to_string()),
            Self::Cloud(error) if error.retryable => Some(
                "the cloud said this may pass; `rebuild resume` retries from this step".to_string(),
            ),
            Self::Cloud(error) if error.is("UnauthorizedOperation") || error.is("AccessDenied") => Some(
                "the credentials lack a permission; fix the IAM policy, then `rebuild resume`".to_string(),
            ),
            Self::Cloud(error) if error.is("InsufficientDBInstanceCapacity") => Some(
                "RDS has no capacity for this instance class in the subnets' Availability Zones: choose another `instance_class` (`rebuild resume --input db_instance_class=…`), or `rebuild resume` later".to_string(),
            ),
            Self::Cloud(error) if error.is("InvalidParameterCombination") => Some(
                "AWS refuses these values together (for a restore: a class not offered for the engine version, or not as Multi-AZ): change the one at fault, then resume; an input with `rebuild resume --input NAME=VALUE`, a step's `with:` with `rebuild resume --replan` (either allowed while no step that used it has succeeded)".to_string(),
            ),
            Self::Cloud(_) => None,
            Self::ClusterRefused(_) => Some(CLUSTER_REFUSED_HINT.to_string()),
            Self::Params(_) => Some("fix the step's `with:` in the playbook; `rebuild validate` checks it".to_string()),
            Self::Refused { hint, .. } | Self::Conflict { hint, .. } | Self::Failed { hint, .. } => {
                Some(hint.clone())
            }
            Self::BadState { .. } => Some("inspect the resource in the AWS console; delete it if it is broken, then `rebuild resume`".to_string()),
            Self::Timeout(_) => Some("raise the step's `timeout:` if the cloud is just slow, then `rebuild resume`".to_string()),
            Self::Rejected { .. } => Some("the gate stopped the run on purpose: `rebuild resume` asks again; to go on without its approval, `rebuild skip --step STEP` then `rebuild resume`".to_string()),
            Self::Interrupted => Some("`rebuild resume` continues from here".to_string()),
            Self::Crashed(_) => {
                Some("please report this bug; `rebuild resume` retries the step".to_string())
            }
            Self::Journal(_) => Some("check the state directory's disk (space, permissions)".to_string()),
        }
    }
}

/// A step kind.
#[async_trait]
pub trait Step: Send + Sync {
    /// Parameters and outputs, for validation.
    fn spec(&self) -> &'static KindSpec;

    /// Look, do not touch: Describe/List/Get calls only.
    async fn plan(
        &self,
        context: &PlanContext,
        params: &serde_json::Value,
    ) -> Result<StepPlan, StepError>;

    /// Make it so, adopting whatever an earlier attempt of this run created.
    async fn apply(
        &self,
        context: &StepContext,
        params: &serde_json::Value,
    ) -> Result<Values, StepError>;
}

/// The step kinds a run can use. Commands use [`StepKinds::builtin`]; tests inject their own.
#[derive(Clone)]
pub struct StepKinds {
    kinds: Vec<Arc<dyn Step>>,
}

impl StepKinds {
    /// Every step kind this build knows.
    pub fn builtin() -> Self {
        Self::new(vec![
            Arc::new(aws::AwsNetwork),
            Arc::new(aws::AwsNetworkEgress),
            Arc::new(aws::AwsEksCluster),
            Arc::new(aws::AwsEksNodegroup),
            Arc::new(aws::AwsEksPodIdentity),
            Arc::new(aws::AwsRdsRestore),
            Arc::new(aws::AwsEc2Ingress),
            Arc::new(aws::AwsAcmCertificate),
            Arc::new(k8s::K8sApply),
            Arc::new(aws::DnsCutover),
            Arc::new(http::HttpCheck),
            Arc::new(git::GitFetch),
            Arc::new(gate::GateApproval),
        ])
    }

    /// A given set of kinds.
    pub fn new(kinds: Vec<Arc<dyn Step>>) -> Self {
        Self { kinds }
    }

    /// The specs of every kind, for the validator.
    pub fn specs(&self) -> Vec<KindSpec> {
        self.kinds.iter().map(|step| *step.spec()).collect()
    }

    /// The implementation of `kind`.
    pub fn find(&self, kind: &str) -> Option<Arc<dyn Step>> {
        self.kinds
            .iter()
            .find(|step| step.spec().kind == kind)
            .cloned()
    }
}

/// Deserialize resolved parameters into a kind's typed parameters.
pub fn params<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, StepError> {
    serde_json::from_value(value.clone()).map_err(|error| StepError::Params(error.to_string()))
}
