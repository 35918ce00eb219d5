//! Rollouts: whether a workload is done, judged from its live state (pure: Deployments and
//! StatefulSets by ready and updated replicas, DaemonSets by ready pods, Jobs by
//! completions or a `Failed` condition), and the wait after a wave until every workload it
//! applied is done, within the wave's timeout. A wave that does not get there names what
//! is stuck and how far it got.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Notify;

use super::manifests::kind_of;
use super::parameters::Wave;
use crate::cloud::kubernetes;
use crate::playbook::duration;
use crate::steps::context::{Poll, Wait, Wake};
use crate::steps::{StepContext, StepError};

/// How long a wave usually takes to roll out (image pulls, container starts, readiness probes).
const WAVE_TYPICAL: Duration = Duration::from_secs(60);

/// How long one watch request lasts before it is made again (the API server ends it;
/// below the client's read timeout).
const WATCH_SECONDS: u32 = 280;

/// A workload a wave applied, to wait for.
pub(super) struct Workload {
    pub(super) api: Api<DynamicObject>,
    pub(super) name: String,
    /// `Kind/name`, for messages.
    pub(super) label: String,
    /// Its live state as the apply returned it.
    pub(super) applied: Value,
}

impl Workload {
    /// Its live state now.
    async fn live(&self) -> Result<Value, StepError> {
        let live = self
            .api
            .get(&self.name)
            .await
            .map_err(|error| kubernetes::error(error, "get", &self.label))?;
        Ok(serde_json::to_value(&live).unwrap_or_default())
    }

    /// Where its rollout stands now.
    async fn rollout(&self) -> Result<Rollout, StepError> {
        Ok(Rollout::of(&self.live().await?))
    }
}

/// The newest state seen of each workload of a wave, from the API's answers and from
/// watches, and a signal rung whenever a watch sees one change.
struct Seen {
    /// Per workload: its state, and how many times a watch has set it.
    states: Mutex<Vec<(Value, u64)>>,
    changed: Notify,
}

impl Seen {
    fn new(workloads: &[Workload]) -> Self {
        Self {
            states: Mutex::new(
                workloads
                    .iter()
                    .map(|workload| (workload.applied.clone(), 0))
                    .collect(),
            ),
            changed: Notify::new(),
        }
    }

    /// Where workload `index`'s rollout stands, by the newest state seen.
    fn rollout(&self, index: usize) -> Rollout {
        Rollout::of(&self.states.lock().unwrap_or_else(PoisonError::into_inner)[index].0)
    }

    /// How many times a watch has set workload `index`'s state.
    fn watches(&self, index: usize) -> u64 {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)[index].1
    }

    /// A watch saw workload `index` as `state`.
    fn watched(&self, index: usize, state: Value) {
        {
            let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
            let (seen, watched) = &mut states[index];
            *seen = state;
            *watched += 1;
        }
        self.changed.notify_one();
    }

    /// The API answered `state` for workload `index`, asked when a watch had set it
    /// `watched` times: kept unless a watch has seen a newer one since.
    fn answered(&self, index: usize, state: Value, watched: u64) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if states[index].1 == watched {
            states[index].0 = state;
        }
    }
}

/// Watch workload `index` from the version it was applied at, telling `seen` of every
/// change, until the wait is over (the task is aborted). A watch that the API server ends
/// is made again from the last version seen, a second later (so a proxy that cuts every
/// watch short is not asked in a tight loop); one that fails (an expired version, no
/// permission to watch) stops, and the wait's pace alone finds the end.
async fn watch(
    api: Api<DynamicObject>,
    name: String,
    mut version: String,
    index: usize,
    seen: Arc<Seen>,
) {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(WATCH_SECONDS);
    loop {
        let Ok(stream) = api.watch(&params, &version).await else {
            return;
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                    if let Some(at) = &object.metadata.resource_version {
                        version.clone_from(at);
                    }
                    seen.watched(index, serde_json::to_value(&object).unwrap_or_default());
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    version = bookmark.metadata.resource_version;
                }
                // Deleted: the pace's next check says so. An error event (the version is
                // too old) or a broken stream: stop watching.
                Ok(WatchEvent::Deleted(_)) => {}
                Ok(WatchEvent::Error(_)) | Err(_) => return,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Wait until every workload of `wave` is rolled out, within the wave's timeout. Each
/// workload is watched, so the wait ends as soon as the last one is ready (as `kubectl
/// rollout status` does); the wait's pace also asks for each one, so a watch that breaks
/// only makes the end noticed later.
pub(super) async fn wait(
    context: &StepContext,
    wave: &Wave,
    workloads: &[Workload],
) -> Result<(), StepError> {
    let limit = wave.timeout();
    let what = format!("wave `{}` to roll out", wave.name);
    let seen = Arc::new(Seen::new(workloads));
    // Aborted when the wait is over (the set is dropped).
    let mut watches = tokio::task::JoinSet::new();
    for (index, workload) in workloads.iter().enumerate() {
        let version = workload.applied["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let (api, name) = (workload.api.clone(), workload.name.clone());
        watches.spawn(watch(api, name, version, index, seen.clone()));
    }
    let waiting = context.wait_watching(
        Wait::new(format!("wave:{}", wave.name), what).typically(WAVE_TYPICAL),
        &seen.changed,
        |wake| {
            let seen = seen.clone();
            async move {
                if wake == Wake::Paced {
                    let asked = workloads.iter().enumerate().map(|(index, workload)| {
                        let seen = seen.clone();
                        async move {
                            let watched = seen.watches(index);
                            let live = workload.live().await?;
                            seen.answered(index, live, watched);
                            Ok::<_, StepError>(())
                        }
                    });
                    futures_util::future::try_join_all(asked).await?;
                }
                judge(workloads, &seen)
            }
        },
    );
    let outcome = tokio::time::timeout(limit, waiting).await;
    watches.abort_all();
    match outcome {
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

/// Whether every workload is rolled out, from the newest state seen of each.
fn judge(workloads: &[Workload], seen: &Seen) -> Result<Poll<()>, StepError> {
    let mut pending = Vec::new();
    for (index, workload) in workloads.iter().enumerate() {
        match seen.rollout(index) {
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
