//! What an operator may mark on a run between its processes, decided from the playbook and
//! the fold alone (pure): which gate an answer goes to (`rebuild approve`, `rebuild
//! reject`), whether a step may be skipped and with which outputs (`rebuild skip`), and
//! whether a step may run again (`rebuild retry`). Each refusal is a [`Refusal`] with its
//! hint; the commands turn it into a usage error (exit 2) before anything is written.
//!
//! The rule for a skipped step's outputs: a step whose outputs later steps reference
//! (`${steps.ID.OUTPUT}`) can be skipped only when `--output-value KEY=VALUE` gives every such
//! output; what is given is journaled as the step's outputs, so its dependants resolve
//! their parameters as if it had succeeded. Outputs the kind does not have are refused.

use crate::journal::state::StepState;
use crate::journal::{RunState, StepStatus, Values};
use crate::playbook::Playbook;

/// Why an operator's mark is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such step in the run's playbook.
    #[error("run `{run_id}` has no step `{step}`")]
    UnknownStep {
        /// The run.
        run_id: String,
        /// What was given.
        step: String,
        /// The steps it has.
        steps: Vec<String>,
    },
    /// No gate of the run waits for an answer (or not the one named).
    #[error("{}", match step {
        Some(step) => format!("step `{step}` of run `{run_id}` is not a gate waiting for approval"),
        None => format!("no gate of run `{run_id}` is waiting for approval"),
    })]
    NoGateWaiting {
        /// The run.
        run_id: String,
        /// The step named, if any.
        step: Option<String>,
        /// The gates that do wait.
        waiting: Vec<String>,
    },
    /// Several gates wait and none was named.
    #[error("{} gates of run `{run_id}` are waiting for approval: {}", gates.len(), names(gates))]
    SeveralGates {
        /// The run.
        run_id: String,
        /// The gates.
        gates: Vec<String>,
    },
    /// The gate names its approvers and the user is not one of them.
    #[error(
        "`{user}` is not an approver of gate `{step}` (approvers: {})",
        names(approvers)
    )]
    NotAnApprover {
        /// The gate.
        step: String,
        /// Who tried.
        user: String,
        /// Who may.
        approvers: Vec<String>,
    },
    /// `skip` of a step that is not failed or unstarted.
    #[error("step `{step}` is `{status}`; only a step that has not succeeded can be skipped")]
    CannotSkip {
        /// The step.
        step: String,
        /// Where it stands.
        status: &'static str,
    },
    /// `skip --output` with a key the kind does not output.
    #[error(
        "step `{step}` ({kind}) has no output `{key}` (it has: {})",
        names(outputs)
    )]
    UnknownOutput {
        /// The step.
        step: String,
        /// Its kind.
        kind: String,
        /// What was given.
        key: String,
        /// What it has.
        outputs: Vec<String>,
    },
    /// `skip` of a step whose outputs later steps use, without them.
    #[error("later steps use outputs of step `{step}` that were not given: {}", missing.iter().map(|(key, users)| format!("`{key}` (used by {})", names(users))).collect::<Vec<_>>().join(", "))]
    OutputsNeeded {
        /// The step.
        step: String,
        /// Each missing output with the steps that use it.
        missing: Vec<(String, Vec<String>)>,
    },
    /// `retry` of a step that has not succeeded or been skipped.
    #[error("step `{step}` is `{status}`; only a succeeded or skipped step is marked to run again")]
    CannotRetry {
        /// The step.
        step: String,
        /// Where it stands.
        status: &'static str,
    },
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Refusal {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::UnknownStep { steps, .. } => format!("its steps: {}", names(steps)),
            Self::NoGateWaiting { waiting, .. } if !waiting.is_empty() => {
                format!(
                    "gates waiting: {}; name one with `--step ID`",
                    names(waiting)
                )
            }
            Self::NoGateWaiting { run_id, .. } => format!(
                "`rebuild status {run_id}` shows where the run stands; a gate can be answered once it waits"
            ),
            Self::SeveralGates { .. } => "name the gate with `--step ID`".into(),
            Self::NotAnApprover { .. } => {
                "ask one of the approvers the playbook names to answer".into()
            }
            Self::CannotSkip { step, .. } => format!(
                "a succeeded step needs no skipping; to run it again on resume: `rebuild retry --step {step}`"
            ),
            Self::UnknownOutput { .. } => "give only outputs the step's kind has".into(),
            Self::OutputsNeeded { step, missing } => format!(
                "give them, e.g. `rebuild skip --step {step} {}`, with the values the real step would have produced",
                missing
                    .iter()
                    .map(|(key, _)| format!("--output-value {key}=VALUE"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Self::CannotRetry { .. } => {
                "a step that has not succeeded runs again on `rebuild resume` anyway".into()
            }
        }
    }
}

/// A step's status in one lowercase word.
pub fn status_word(step: Option<&StepState>) -> &'static str {
    match step.map(|step| step.status) {
        None | Some(StepStatus::Pending) => "pending",
        Some(StepStatus::Running) => "running",
        Some(StepStatus::Waiting) => "waiting",
        Some(StepStatus::Succeeded) => "succeeded",
        Some(StepStatus::Failed) => "failed",
        Some(StepStatus::Interrupted) => "interrupted",
        Some(StepStatus::Skipped) => "skipped",
    }
}

fn known_step(playbook: &Playbook, state: &RunState, step: &str) -> Result<(), Refusal> {
    if playbook.step(step).is_some() {
        return Ok(());
    }
    Err(Refusal::UnknownStep {
        run_id: state.header.run_id.clone(),
        step: step.to_string(),
        steps: playbook
            .steps
            .iter()
            .map(|step| step.id.value.clone())
            .collect(),
    })
}

/// The gate an answer from `user` goes to, with the round it answers: the one named, or
/// the only one waiting.
pub fn gate_to_answer(
    state: &RunState,
    step: Option<&str>,
    user: &str,
) -> Result<(String, u32), Refusal> {
    let waiting: Vec<(&String, &StepState)> = state
        .steps
        .iter()
        .filter(|(_, journaled)| journaled.approval.as_ref().is_some_and(|a| a.is_open()))
        .collect();
    let ids = || waiting.iter().map(|(id, _)| (*id).clone()).collect();
    let run_id = state.header.run_id.clone();
    let (id, journaled) = match step {
        Some(step) => waiting
            .iter()
            .find(|(id, _)| id.as_str() == step)
            .copied()
            .ok_or_else(|| Refusal::NoGateWaiting {
                run_id: run_id.clone(),
                step: Some(step.to_string()),
                waiting: ids(),
            })?,
        None => match waiting.as_slice() {
            [only] => *only,
            [] => {
                return Err(Refusal::NoGateWaiting {
                    run_id,
                    step: None,
                    waiting: Vec::new(),
                });
            }
            _ => {
                return Err(Refusal::SeveralGates {
                    run_id,
                    gates: ids(),
                });
            }
        },
    };
    let Some(approval) = &journaled.approval else {
        return Err(Refusal::NoGateWaiting {
            run_id,
            step: step.map(str::to_string),
            waiting: ids(),
        });
    };
    if !approval.approvers.is_empty() && !approval.approvers.iter().any(|name| name == user) {
        return Err(Refusal::NotAnApprover {
            step: id.clone(),
            user: user.to_string(),
            approvers: approval.approvers.clone(),
        });
    }
    Ok((id.clone(), approval.round))
}

/// The outputs to journal for skipping `step`: those `given`, checked against the kind's
/// outputs (`kind_outputs`) and against what later steps reference.
pub fn skip_outputs(
    playbook: &Playbook,
    state: &RunState,
    step: &str,
    kind_outputs: &[&str],
    given: Values,
) -> Result<Values, Refusal> {
    known_step(playbook, state, step)?;
    if let Some(status @ (StepStatus::Succeeded | StepStatus::Skipped)) =
        state.step(step).map(|step| step.status)
    {
        return Err(Refusal::CannotSkip {
            step: step.to_string(),
            status: match status {
                StepStatus::Skipped => "skipped",
                _ => "succeeded",
            },
        });
    }
    if let Some(key) = given
        .keys()
        .find(|key| !kind_outputs.contains(&key.as_str()))
    {
        return Err(Refusal::UnknownOutput {
            step: step.to_string(),
            kind: playbook
                .step(step)
                .map(|spec| spec.kind.value.clone())
                .unwrap_or_default(),
            key: key.clone(),
            outputs: kind_outputs.iter().map(|name| name.to_string()).collect(),
        });
    }
    let missing: Vec<(String, Vec<String>)> = playbook
        .users_of_outputs(step)
        .into_iter()
        .filter(|(key, _)| !given.contains_key(key))
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::OutputsNeeded {
            step: step.to_string(),
            missing,
        });
    }
    Ok(given)
}

/// Whether `step` may be marked to run again: it succeeded or was skipped.
pub fn check_retry(playbook: &Playbook, state: &RunState, step: &str) -> Result<(), Refusal> {
    known_step(playbook, state, step)?;
    let journaled = state.step(step);
    match journaled.map(|step| step.status) {
        Some(StepStatus::Succeeded | StepStatus::Skipped) => Ok(()),
        _ => Err(Refusal::CannotRetry {
            step: step.to_string(),
            status: status_word(journaled),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::journal::record::SCHEMA_VERSION;
    use crate::journal::{Actor, Event, Record, Verdict, state};
    use crate::playbook::{self, KindSpec};

    const KINDS: &[KindSpec] = &[KindSpec::test_noop(&["url", "other"])];

    fn playbook() -> Playbook {
        playbook::from_str(
            Path::new("t.yaml"),
            "name: t\nsource_region: ap-southeast-2\nsteps:\n  - {id: a, kind: test.noop}\n  - {id: b, kind: test.noop, needs: [a], with: {value: '${steps.a.url}'}}\n  - {id: c, kind: test.noop, needs: [a], with: {value: 'x ${steps.a.url}'}}\n",
            KINDS,
        )
        .unwrap()
    }

    fn run(events: Vec<Event>) -> RunState {
        let header = Event::test_start("r1", "t");
        let records: Vec<Record> = std::iter::once(header)
            .chain(events)
            .enumerate()
            .map(|(index, event)| Record {
                v: SCHEMA_VERSION,
                seq: index as u64 + 1,
                at: Timestamp::UNIX_EPOCH,
                event,
            })
            .collect();
        state::fold(&records).unwrap()
    }

    fn failed(step: &str) -> Event {
        Event::StepFailed {
            step: step.into(),
            attempt: 1,
            error: "boom".into(),
            retryable: false,
            will_retry: false,
        }
    }

    fn succeeded(step: &str) -> Event {
        Event::StepSucceeded {
            step: step.into(),
            attempt: 1,
            outputs: Values::new(),
        }
    }

    #[test]
    fn a_skip_needs_every_output_later_steps_use() {
        let playbook = playbook();
        let state = run(vec![failed("a")]);
        let outputs = KINDS[0].outputs;
        let refused = skip_outputs(&playbook, &state, "a", outputs, Values::new()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "later steps use outputs of step `a` that were not given: `url` (used by `b`, `c`)"
        );
        assert!(
            refused
                .hint()
                .contains("rebuild skip --step a --output-value url=VALUE")
        );
        let given = Values::from([("url".to_string(), json!("http://old"))]);
        assert_eq!(
            skip_outputs(&playbook, &state, "a", outputs, given.clone()),
            Ok(given)
        );
        let unknown = Values::from([("nope".to_string(), json!(1))]);
        assert!(matches!(
            skip_outputs(&playbook, &state, "a", outputs, unknown),
            Err(Refusal::UnknownOutput { .. })
        ));
        // Nothing uses the outputs of `b`, which has not started: skipped as it is.
        assert_eq!(
            skip_outputs(&playbook, &state, "b", outputs, Values::new()),
            Ok(Values::new())
        );
    }

    #[test]
    fn a_succeeded_or_unknown_step_is_not_skipped() {
        let playbook = playbook();
        let state = run(vec![succeeded("a")]);
        let refused = skip_outputs(&playbook, &state, "a", &[], Values::new()).unwrap_err();
        assert!(matches!(
            refused,
            Refusal::CannotSkip {
                status: "succeeded",
                ..
            }
        ));
        assert!(refused.hint().contains("rebuild retry --step a"));
        let unknown = skip_outputs(&playbook, &state, "zz", &[], Values::new()).unwrap_err();
        assert_eq!(unknown.to_string(), "run `r1` has no step `zz`");
        assert_eq!(unknown.hint(), "its steps: `a`, `b`, `c`");
    }

    #[test]
    fn only_a_succeeded_or_skipped_step_is_retried() {
        let playbook = playbook();
        let by = Actor {
            user: "ana".into(),
            host: "h".into(),
            ..Actor::default()
        };
        let skipped = Event::StepSkipped {
            step: "b".into(),
            by,
            reason: None,
            outputs: Values::new(),
        };
        let state = run(vec![succeeded("a"), skipped, failed("c")]);
        assert_eq!(check_retry(&playbook, &state, "a"), Ok(()));
        assert_eq!(check_retry(&playbook, &state, "b"), Ok(()));
        let refused = check_retry(&playbook, &state, "c").unwrap_err();
        assert!(matches!(
            refused,
            Refusal::CannotRetry {
                status: "failed",
                ..
            }
        ));
    }

    #[test]
    fn an_answer_goes_to_the_one_gate_waiting_from_an_approver() {
        let asked = |step: &str, approvers: Vec<String>| Event::ApprovalRequested {
            step: step.into(),
            round: 3,
            message: "go?".into(),
            approvers,
            deadline: Timestamp::UNIX_EPOCH,
            on_timeout: Verdict::Reject,
        };
        let none = run(vec![]);
        assert!(matches!(
            gate_to_answer(&none, None, "ana"),
            Err(Refusal::NoGateWaiting { step: None, .. })
        ));
        let one = run(vec![asked("gate", vec!["ana".into()])]);
        assert_eq!(gate_to_answer(&one, None, "ana"), Ok(("gate".into(), 3)));
        let refused = gate_to_answer(&one, None, "bo").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "`bo` is not an approver of gate `gate` (approvers: `ana`)"
        );
        let wrong = gate_to_answer(&one, Some("a"), "ana").unwrap_err();
        assert!(wrong.hint().contains("`gate`"), "{}", wrong.hint());
        let two = run(vec![asked("g1", Vec::new()), asked("g2", Vec::new())]);
        assert!(matches!(
            gate_to_answer(&two, None, "ana"),
            Err(Refusal::SeveralGates { .. })
        ));
        assert_eq!(gate_to_answer(&two, Some("g2"), "bo"), Ok(("g2".into(), 3)));
    }
}
