//! Rollouts: whether a workload is done, judged from its live state (pure: Deployments and
//! StatefulSets by ready and updated replicas, DaemonSets by ready pods, Jobs by
//! completions or a `Failed` condition), and the wait after a wave until every workload it
//! applied is done, within the wave's timeout. A wave that does not get there names what
//! is stuck and how far it got.

use kube::api::{Api, DynamicObject};
use serde_json::Value;
use std::time::Duration;

use super::manifests::kind_of;
use super::parameters::Wave;
use crate::cloud::kubernetes;
use crate::playbook::duration;
use crate::steps::context::{Poll, Wait};
use crate::steps::{StepContext, StepError};

/// How long a wave usually takes to roll out (image pulls, container starts, readiness probes).
const WAVE_TYPICAL: Duration = Duration::from_secs(60);

/// A workload a wave applied, to wait for.
pub(super) struct Workload {
    pub(super) api: Api<DynamicObject>,
    pub(super) name: String,
    /// `Kind/name`, for messages.
    pub(super) label: String,
}

impl Workload {
    /// Where its rollout stands now.
    async fn rollout(&self) -> Result<Rollout, StepError> {
        let live = self
            .api
            .get(&self.name)
            .await
            .map_err(|error| kubernetes::error(error, "get", &self.label))?;
        Ok(Rollout::of(
            &serde_json::to_value(&live).unwrap_or_default(),
        ))
    }
}

/// Wait until every workload of `wave` is rolled out, within the wave's timeout.
pub(super) async fn wait(
    context: &StepContext,
    wave: &Wave,
    workloads: &[Workload],
) -> Result<(), StepError> {
    let limit = wave.timeout();
    let what = format!("wave `{}` to roll out", wave.name);
    let waiting = context.wait_for(
        Wait::new(format!("wave:{}", wave.name), what).typically(WAVE_TYPICAL),
        || async {
            let mut pending = Vec::new();
            for workload in workloads {
                match workload.rollout().await? {
                    Rollout::Ready | Rollout::NotAWorkload => {}
                    Rollout::Progressing(why) => pending.push(format!("{}: {why}", workload.label)),
                    Rollout::Failed(why) => {
                        return Err(StepError::BadState {
                            resource: workload.label.clone(),
                            status: why,
                        });
                    }
                }
            }
            Ok(if pending.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(pending.join("; "))
            })
        },
    );
    match tokio::time::timeout(limit, waiting).await {
        Ok(result) => result,
        Err(_) => {
            let mut stuck = Vec::new();
            for workload in workloads {
                if let Ok(Rollout::Progressing(why)) = workload.rollout().await {
                    stuck.push(format!("{}: {why}", workload.label));
                }
            }
            Err(StepError::Refused {
                message: format!(
                    "wave `{}` did not roll out within {}: {}",
                    wave.name,
                    duration::render(limit),
                    stuck.join("; ")
                ),
                hint: "look at the pods (`kubectl describe`, events, image pulls); fix the cause, then `rebuild resume` retries this wave only".to_string(),
            })
        }
    }
}

/// Where a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rollout {
    /// Nothing to wait for (not a workload).
    NotAWorkload,
    /// Done.
    Ready,
    /// Not yet, with why.
    Progressing(String),
    /// It will not get there (a failed Job).
    Failed(String),
}

fn number(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

impl Rollout {
    /// Judge a Deployment, StatefulSet, DaemonSet or Job from its live state.
    pub(super) fn of(object: &Value) -> Self {
        let generation = number(object, "/metadata/generation").unwrap_or(0);
        let observed = number(object, "/status/observedGeneration").unwrap_or(0);
        match kind_of(object) {
            "Deployment" | "StatefulSet" => {
                let wanted = number(object, "/spec/replicas").unwrap_or(1);
                let updated = number(object, "/status/updatedReplicas").unwrap_or(0);
                let ready_field = if kind_of(object) == "Deployment" {
                    "/status/availableReplicas"
                } else {
                    "/status/readyReplicas"
                };
                let ready = number(object, ready_field).unwrap_or(0);
                if observed >= generation && updated >= wanted && ready >= wanted {
                    Self::Ready
                } else {
                    Self::Progressing(format!(
                        "{ready}/{wanted} ready, {updated} updated{}",
                        conditions(object)
                            .map(|c| format!("; conditions: {c}"))
                            .unwrap_or_default()
                    ))
                }
            }
            "DaemonSet" => {
                let wanted = number(object, "/status/desiredNumberScheduled").unwrap_or(0);
                let ready = number(object, "/status/numberReady").unwrap_or(0);
                if observed >= generation && ready >= wanted {
                    Self::Ready
                } else {
                    Self::Progressing(format!("{ready}/{wanted} ready"))
                }
            }
            "Job" => {
                let completions = number(object, "/spec/completions").unwrap_or(1);
                let succeeded = number(object, "/status/succeeded").unwrap_or(0);
                let failed_condition = object
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Failed" && c["status"] == "True");
                if succeeded >= completions {
                    Self::Ready
                } else if failed_condition {
                    Self::Failed(format!(
                        "failed{}",
                        conditions(object)
                            .map(|c| format!("; conditions: {c}"))
                            .unwrap_or_default()
                    ))
                } else {
                    Self::Progressing(format!("{succeeded}/{completions} completed"))
                }
            }
            _ => Self::NotAWorkload,
        }
    }
}

/// `Type=Status (Reason: message)` for each condition.
fn conditions(object: &Value) -> Option<String> {
    let list = object.pointer("/status/conditions")?.as_array()?;
    let shown: Vec<String> = list
        .iter()
        .map(|c| {
            let text = |key: &str| {
                c.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut line = format!("{}={}", text("type"), text("status"));
            if !text("reason").is_empty() {
                line.push_str(&format!(" ({}: {})", text("reason"), text("message")));
            }
            line
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judges_rollouts() {
        let ready = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(Rollout::of(&ready), Rollout::Ready);
        let stuck = json!({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 0,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]}});
        match Rollout::of(&stuck) {
            Rollout::Progressing(why) => assert!(
                why.contains("0/2 ready")
                    && why.contains("Available=False (MinimumReplicasUnavailable"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let job = json!({"kind": "Job", "spec": {"completions": 1}, "status": {"succeeded": 1}});
        assert_eq!(Rollout::of(&job), Rollout::Ready);
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"}]}});
        assert!(matches!(Rollout::of(&failed), Rollout::Failed(_)));
        assert_eq!(
            Rollout::of(&json!({"kind": "Service"})),
            Rollout::NotAWorkload
        );
    }
}
