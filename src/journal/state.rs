//! A run's state is a fold over its journal records: nothing else is trusted.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::record::{Actor, Event, Outcome, PlaybookParts, Record, Values, Verdict};
use crate::stack::{OwnedBy, Stack};

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// An attempt is (or was, when the process died) in flight.
    Running,
    /// In flight and waiting on the cloud.
    Waiting,
    /// Done; outputs are known.
    Succeeded,
    /// Last attempt failed.
    Failed,
    /// Stopped at a safe point.
    Interrupted,
    /// Marked skipped by an operator (`rebuild skip`): a resume goes on past it.
    Skipped,
}

/// One step's state.
#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts begun.
    pub attempts: u32,
    /// Outputs once succeeded.
    pub outputs: Values,
    /// Values pinned for resumes.
    pub pins: Values,
    /// Resources created or adopted: (type, id, action).
    pub resources: Vec<(String, String, String)>,
    /// What it last waited for.
    pub waiting_for: Option<String>,
    /// The waits it finished, in journal order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waited: Vec<Waited>,
    /// Wait key -> when the wait first began, for the waits begun and not finished since
    /// its last failed attempt: a resumed attempt's wait continues its pace from there
    /// (the resource kept on being made while no process watched it).
    #[serde(skip)]
    pub waits_begun: BTreeMap<String, Timestamp>,
    /// The last error.
    pub last_error: Option<String>,
    /// First attempt's start.
    pub first_started: Option<Timestamp>,
    /// Latest attempt's start.
    pub last_started: Option<Timestamp>,
    /// When it ended (succeeded, failed or interrupted).
    pub ended: Option<Timestamp>,
    /// Its latest approval question, for a gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Who marked it skipped, and why (while it is skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Mark>,
    /// Who asked for it to run again on the next resume (until it starts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_requested: Option<Mark>,
}

/// An operator's mark on a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    /// Who.
    pub by: Actor,
    /// Why, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was journaled.
    pub at: Timestamp,
}

/// A gate's question and, once answered, its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// Which time the gate asks, from 1.
    pub round: u32,
    /// What approvers are shown.
    pub message: String,
    /// Who may answer (empty: anyone).
    pub approvers: Vec<String>,
    /// When the default is taken.
    pub deadline: Timestamp,
    /// The default.
    pub on_timeout: Verdict,
    /// The answer, once given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// How a gate's question was answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Approve or reject.
    pub verdict: Verdict,
    /// Who (`None`: the timeout took the default).
    pub by: Option<Actor>,
    /// Why, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was journaled.
    pub at: Timestamp,
}

impl Approval {
    /// Whether the question waits for an answer.
    pub fn is_open(&self) -> bool {
        self.decision.is_none()
    }
}

impl StepState {
    fn new() -> Self {
        Self {
            status: StepStatus::Pending,
            attempts: 0,
            outputs: Values::new(),
            pins: Values::new(),
            resources: Vec::new(),
            waiting_for: None,
            waited: Vec::new(),
            waits_begun: BTreeMap::new(),
            last_error: None,
            first_started: None,
            last_started: None,
            ended: None,
            approval: None,
            skipped: None,
            retry_requested: None,
        }
    }
}

/// The fixed facts of a run, from its `RunStarted` record.
#[derive(Debug, Clone, Serialize)]
pub struct RunHeader {
    /// Run id.
    pub run_id: String,
    /// Playbook file.
    pub playbook_path: String,
    /// Playbook name.
    pub playbook_name: String,
    /// Playbook digest (the replanned playbook's after a `--replan`).
    pub playbook_digest: String,
    /// The digests of the playbook's parts (`None` for a journal written before
    /// replanning existed).
    pub playbook_parts: Option<PlaybookParts>,
    /// Failed region.
    pub source_region: String,
    /// Target region.
    pub target_region: String,
    /// The stack the run works on (journaled, or the default of an old journal).
    pub stack: Stack,
    /// Whose resources the run adopts (its stack's; an old journal's run: its own).
    pub owned_by: OwnedBy,
    /// Pinned inputs (secrets redacted), with the changes resumes made.
    pub inputs: Values,
    /// Whether an over-age snapshot was accepted.
    pub accept_rpo: bool,
    /// Host that started it.
    pub host: String,
}

/// A run's whole state.
#[derive(Debug, Clone, Serialize)]
pub struct RunState {
    /// Fixed facts.
    pub header: RunHeader,
    /// When it started.
    pub started: Timestamp,
    /// Last record's time.
    pub updated: Timestamp,
    /// Steps by id.
    pub steps: BTreeMap<String, StepState>,
    /// How the last process's part ended; `None` while running or after a crash.
    pub outcome: Option<Outcome>,
    /// Times it was resumed.
    pub resumes: u32,
    /// What resumes changed (inputs, the playbook), in journal order.
    pub changes: Vec<Change>,
    /// An operator marked a step of a run that had succeeded to run again (`rebuild
    /// retry`): it is unfinished until resumed.
    pub marked_for_resume: bool,
    /// Who started, resumed, unlocked, approved, skipped or retried it, in journal order.
    pub activity: Vec<Activity>,
}

/// A wait a step finished: for what, how long it took and how many checks it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waited {
    /// Which wait (a key stable across runs).
    pub wait: String,
    /// How long, from the first check to the one that found it ready.
    #[serde(serialize_with = "crate::journal::state::seconds")]
    pub took: std::time::Duration,
    /// Checks made.
    pub polls: u32,
}

/// A duration as (fractional) seconds, for JSON.
pub(crate) fn seconds<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Something someone did to the run, and who.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// When it was journaled.
    pub at: Timestamp,
    /// What they did: `started`, `resumed`, `unlocked`, `approved`, `rejected`, `skipped`
    /// or `marked for retry`.
    pub action: &'static str,
    /// Who (absent in journals written before this was recorded).
    pub by: Option<Actor>,
    /// More about it: the holder whose lock was broken, the step (and reason) of an
    /// approval, skip or retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Something a resume changed mid-run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// When it was journaled.
    pub at: Timestamp,
    /// What changed.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// What a resume changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeKind {
    /// An input's value (`rebuild resume --input`).
    InputChanged {
        /// The input.
        name: String,
        /// Its value before.
        from: serde_json::Value,
        /// Its value after.
        to: serde_json::Value,
    },
    /// The playbook (`rebuild resume --replan`).
    PlaybookReplanned {
        /// The digest before.
        previous_digest: String,
        /// The digest after.
        playbook_digest: String,
        /// Steps whose definition changed.
        changed: Vec<String>,
        /// Steps added.
        added: Vec<String>,
        /// Steps removed.
        removed: Vec<String>,
        /// Run-wide settings changed.
        settings: Vec<String>,
    },
}

impl RunState {
    /// A step's state (pending if never mentioned).
    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.get(id)
    }

    /// Whether every step in `ids` succeeded.
    pub fn all_succeeded<'a>(&self, mut ids: impl Iterator<Item = &'a str>) -> bool {
        ids.all(|id| {
            self.step(id)
                .is_some_and(|s| s.status == StepStatus::Succeeded)
        })
    }

    /// Whether the run is finished for good (succeeded).
    pub fn is_complete(&self) -> bool {
        self.outcome == Some(Outcome::Succeeded)
    }

    /// Whether the run still has work to do: it failed, was interrupted, crashed or is
    /// running, anything but succeeded. An unfinished run owns its stack until it is
    /// resumed to success.
    pub fn is_unfinished(&self) -> bool {
        !self.is_complete()
    }

    /// The step that started last, with its state (`None` before any step started).
    pub fn last_step(&self) -> Option<(&str, &StepState)> {
        self.steps
            .iter()
            .filter(|(_, step)| step.last_started.is_some())
            .max_by_key(|(_, step)| step.last_started)
            .map(|(id, step)| (id.as_str(), step))
    }

    /// The outputs of every succeeded step.
    pub fn outputs(&self) -> BTreeMap<String, Values> {
        self.steps
            .iter()
            .filter(|(_, step)| step.status == StepStatus::Succeeded)
            .map(|(id, step)| (id.clone(), step.outputs.clone()))
            .collect()
    }
}

/// Why records do not fold into a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// The journal is empty.
    #[error("the journal holds no records")]
    Empty,
    /// The first record is not `RunStarted`.
    #[error("the journal does not begin with `run_started`")]
    NoHeader,
}

/// Fold records into the run's state.
pub fn fold(records: &[Record]) -> Result<RunState, FoldError> {
    let first = records.first().ok_or(FoldError::Empty)?;
    let Event::RunStarted {
        run_id,
        playbook_path,
        playbook_name,
        playbook_digest,
        source_region,
        target_region,
        stack,
        owned_by,
        playbook_parts,
        inputs,
        accept_rpo,
        host,
        by,
        ..
    } = &first.event
    else {
        return Err(FoldError::NoHeader);
    };
    let mut state = RunState {
        header: RunHeader {
            run_id: run_id.clone(),
            playbook_path: playbook_path.clone(),
            playbook_name: playbook_name.clone(),
            playbook_digest: playbook_digest.clone(),
            playbook_parts: playbook_parts.clone(),
            source_region: source_region.clone(),
            target_region: target_region.clone(),
            stack: stack.as_deref().map_or_else(
                || Stack::default_for(playbook_name, target_region),
                Stack::journaled,
            ),
            owned_by: *owned_by,
            inputs: inputs.clone(),
            accept_rpo: *accept_rpo,
            host: host.clone(),
        },
        started: first.at,
        updated: first.at,
        steps: BTreeMap::new(),
        outcome: None,
        resumes: 0,
        changes: Vec::new(),
        activity: vec![Activity {
            at: first.at,
            action: "started",
            by: by.clone(),
            detail: None,
        }],
        marked_for_resume: false,
    };
    for record in &records[1..] {
        state.updated = record.at;
        apply(&mut state, record);
    }
    Ok(state)
}

fn apply(state: &mut RunState, record: &Record) {
    let at = record.at;
    match &record.event {
        Event::RunStarted { .. } => {}
        Event::RunResumed { by, .. } => {
            state.resumes += 1;
            state.outcome = None;
            state.activity.push(Activity {
                at,
                action: "resumed",
                by: by.clone(),
                detail: None,
            });
            state.marked_for_resume = false;
        }
        Event::LockBroken { by, holder } => state.activity.push(Activity {
            at,
            action: "unlocked",
            by: Some(by.clone()),
            detail: Some(holder.clone()),
        }),
        Event::RunFinished { outcome } => state.outcome = Some(*outcome),
        Event::InputChanged { name, from, to } => {
            state.header.inputs.insert(name.clone(), to.clone());
            state.changes.push(Change {
                at,
                kind: ChangeKind::InputChanged {
                    name: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                },
            });
        }
        Event::PlaybookReplanned {
            previous_digest,
            playbook_digest,
            parts,
            changed,
            added,
            removed,
            settings,
            inputs,
        } => {
            state.header.playbook_digest = playbook_digest.clone();
            state.header.playbook_parts = Some(parts.clone());
            for (name, value) in inputs {
                state
                    .header
                    .inputs
                    .entry(name.clone())
                    .or_insert_with(|| value.clone());
            }
            state.changes.push(Change {
                at,
                kind: ChangeKind::PlaybookReplanned {
                    previous_digest: previous_digest.clone(),
                    playbook_digest: playbook_digest.clone(),
                    changed: changed.clone(),
                    added: added.clone(),
                    removed: removed.clone(),
                    settings: settings.clone(),
                },
            });
        }
        Event::StepStarted { step: id, attempt } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Running;
            entry.attempts = entry.attempts.max(*attempt);
            entry.first_started.get_or_insert(at);
            entry.last_started = Some(at);
            entry.waiting_for = None;
            entry.ended = None;
            entry.skipped = None;
            entry.retry_requested = None;
        }
        Event::StepWaiting {
            step: id,
            waiting_for,
            wait,
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Waiting;
            entry.waiting_for = Some(waiting_for.clone());
            if let Some(wait) = wait {
                entry.waits_begun.entry(wait.clone()).or_insert(at);
            }
        }
        Event::StepWaited {
            step: id,
            wait,
            waited_ms,
            polls,
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Running;
            entry.waiting_for = None;
            entry.waits_begun.remove(wait);
            entry.waited.push(Waited {
                wait: wait.clone(),
                took: std::time::Duration::from_millis(*waited_ms),
                polls: *polls,
            });
        }
        Event::StepPinned {
            step: id,
            key,
            value,
        } => {
            entry(state, id).pins.insert(key.clone(), value.clone());
        }
        Event::StepResource {
            step: id,
            resource_type,
            id: resource,
            action,
        } => {
            note_resource(entry(state, id), resource_type, resource, action.as_str());
        }
        Event::StepSucceeded {
            step: id, outputs, ..
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Succeeded;
            entry.outputs = outputs.clone();
            entry.waiting_for = None;
            entry.waits_begun.clear();
            entry.last_error = None;
            entry.ended = Some(at);
        }
        Event::StepFailed {
            step: id, error, ..
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Failed;
            entry.last_error = Some(error.clone());
            entry.waiting_for = None;
            // The next attempt may make its resources anew.
            entry.waits_begun.clear();
            entry.ended = Some(at);
        }
        Event::ApprovalRequested {
            step: id,
            round,
            message,
            approvers,
            deadline,
            on_timeout,
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Waiting;
            entry.waiting_for = Some(format!("approval: {message}"));
            entry.approval = Some(Approval {
                round: *round,
                message: message.clone(),
                approvers: approvers.clone(),
                deadline: *deadline,
                on_timeout: *on_timeout,
                decision: None,
            });
        }
        Event::ApprovalDecided {
            step: id,
            round,
            verdict,
            by,
            reason,
        } => {
            let entry = entry(state, id);
            if let Some(approval) = entry.approval.as_mut().filter(|a| a.round == *round) {
                approval.decision = Some(Decision {
                    verdict: *verdict,
                    by: by.clone(),
                    reason: reason.clone(),
                    at,
                });
            }
            entry.waiting_for = None;
            let why = reason.as_ref().map(|reason| format!(": {reason}"));
            state.activity.push(Activity {
                at,
                action: verdict.past_tense(),
                by: by.clone(),
                detail: Some(match by {
                    Some(_) => format!("step `{id}`{}", why.unwrap_or_default()),
                    None => format!("step `{id}`, by its timeout's default"),
                }),
            });
        }
        Event::StepSkipped {
            step: id,
            by,
            reason,
            outputs,
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Skipped;
            entry.outputs = outputs.clone();
            entry.waiting_for = None;
            entry.retry_requested = None;
            entry.skipped = Some(Mark {
                by: by.clone(),
                reason: reason.clone(),
                at,
            });
            let why = reason.as_ref().map(|reason| format!(": {reason}"));
            state.activity.push(Activity {
                at,
                action: "skipped",
                by: Some(by.clone()),
                detail: Some(format!("step `{id}`{}", why.unwrap_or_default())),
            });
        }
        Event::StepRetryRequested { step: id, by } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Pending;
            entry.outputs = Values::new();
            entry.skipped = None;
            entry.retry_requested = Some(Mark {
                by: by.clone(),
                reason: None,
                at,
            });
            if state.outcome == Some(Outcome::Succeeded) {
                state.outcome = None;
                state.marked_for_resume = true;
            }
            state.activity.push(Activity {
                at,
                action: "marked for retry",
                by: Some(by.clone()),
                detail: Some(format!("step `{id}`")),
            });
        }
        Event::StepInterrupted {
            step: id, reason, ..
        } => {
            let entry = entry(state, id);
            entry.status = StepStatus::Interrupted;
            entry.last_error = Some(reason.clone());
            entry.waiting_for = None;
            entry.ended = Some(at);
        }
    }
}

fn entry<'a>(state: &'a mut RunState, id: &str) -> &'a mut StepState {
    state
        .steps
        .entry(id.to_string())
        .or_insert_with(StepState::new)
}

/// A resource the step created or adopted, listed once per type and id.
fn note_resource(step: &mut StepState, resource_type: &str, resource: &str, action: &str) {
    let known = step
        .resources
        .iter()
        .any(|(known_type, known, _)| known_type == resource_type && known == resource);
    if !known {
        step.resources
            .push((resource_type.into(), resource.into(), action.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::SCHEMA_VERSION;

    fn record(seq: u64, event: Event) -> Record {
        Record {
            v: SCHEMA_VERSION,
            seq,
            at: Timestamp::UNIX_EPOCH,
            event,
        }
    }

    fn header() -> Event {
        Event::test_start("r1", "p")
    }

    #[test]
    fn who_started_resumed_and_unlocked_is_folded_in_order() {
        let alice = Actor {
            user: "alice".into(),
            host: "laptop".into(),
            aws_arn: Some("arn:aws:sts::123456789012:assumed-role/oncall/alice".into()),
            aws_account: Some("123456789012".into()),
        };
        let bob = Actor {
            user: "bob".into(),
            host: "desk".into(),
            ..Actor::default()
        };
        let mut started = header();
        if let Event::RunStarted { by, .. } = &mut started {
            *by = Some(alice.clone());
        }
        let records = vec![
            record(1, started),
            record(
                2,
                Event::LockBroken {
                    by: bob.clone(),
                    holder: "run `r1` on host `laptop` (pid 7)".into(),
                },
            ),
            record(
                3,
                Event::RunResumed {
                    host: "desk".into(),
                    pid: 9,
                    by: Some(bob.clone()),
                },
            ),
            // Written before who was recorded: still folds, with nobody named.
            record(
                4,
                Event::RunResumed {
                    host: "desk".into(),
                    pid: 10,
                    by: None,
                },
            ),
        ];
        let state = fold(&records).unwrap();
        let seen: Vec<(&str, Option<&Actor>)> = state
            .activity
            .iter()
            .map(|activity| (activity.action, activity.by.as_ref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("started", Some(&alice)),
                ("unlocked", Some(&bob)),
                ("resumed", Some(&bob)),
                ("resumed", None)
            ]
        );
        assert_eq!(state.resumes, 2);
        assert_eq!(
            alice.to_string(),
            "alice@laptop as arn:aws:sts::123456789012:assumed-role/oncall/alice (account 123456789012)"
        );
        assert_eq!(bob.to_string(), "bob@desk");
    }

    #[test]
    fn a_wait_begun_is_kept_until_it_ends_or_its_attempt_fails() {
        let waiting = |wait: &str| Event::StepWaiting {
            step: "a".into(),
            waiting_for: wait.into(),
            wait: Some(wait.into()),
        };
        let records = vec![
            record(1, header()),
            record(2, waiting("first")),
            record(3, waiting("second")),
            // A resumed attempt begins it again: the first beginning counts.
            record(4, waiting("first")),
            record(
                5,
                Event::StepWaited {
                    step: "a".into(),
                    wait: "second".into(),
                    waited_ms: 1,
                    polls: 1,
                },
            ),
        ];
        let state = fold(&records).unwrap();
        let begun = &state.step("a").unwrap().waits_begun;
        assert_eq!(begun.keys().collect::<Vec<_>>(), ["first"]);
        assert_eq!(begun["first"], Timestamp::UNIX_EPOCH);
        let mut records = records;
        records.push(record(
            6,
            Event::StepFailed {
                step: "a".into(),
                attempt: 1,
                error: "restore-error".into(),
                retryable: true,
                will_retry: true,
            },
        ));
        let state = fold(&records).unwrap();
        assert!(state.step("a").unwrap().waits_begun.is_empty());
    }

    #[test]
    fn folds_success_retry_and_in_flight() {
        let records = vec![
            record(1, header()),
            record(
                2,
                Event::StepStarted {
                    step: "a".into(),
                    attempt: 1,
                },
            ),
            record(
                3,
                Event::StepFailed {
                    step: "a".into(),
                    attempt: 1,
                    error: "throttled".into(),
                    retryable: true,
                    will_retry: true,
                },
            ),
            record(
                4,
                Event::StepStarted {
                    step: "a".into(),
                    attempt: 2,
                },
            ),
            record(
                5,
                Event::StepSucceeded {
                    step: "a".into(),
                    attempt: 2,
                    outputs: Values::from([("x".to_string(), serde_json::json!(1))]),
                },
            ),
            record(
                6,
                Event::StepStarted {
                    step: "b".into(),
                    attempt: 1,
                },
            ),
            record(
                7,
                Event::StepPinned {
                    step: "b".into(),
                    key: "snapshot_id".into(),
                    value: serde_json::json!("s1"),
                },
            ),
            record(
                8,
                Event::StepWaiting {
                    step: "b".into(),
                    waiting_for: "db".into(),
                    wait: Some("db-available".into()),
                },
            ),
        ];
        let state = fold(&records).unwrap();
        let a = state.step("a").unwrap();
        assert_eq!(a.status, StepStatus::Succeeded);
        assert_eq!(a.attempts, 2);
        assert_eq!(a.outputs["x"], serde_json::json!(1));
        assert!(a.last_error.is_none());
        let b = state.step("b").unwrap();
        assert_eq!(b.status, StepStatus::Waiting);
        assert_eq!(b.pins["snapshot_id"], serde_json::json!("s1"));
        // A resumed attempt's wait continues from when this one began it.
        assert_eq!(b.waits_begun.keys().collect::<Vec<_>>(), ["db-available"]);
        assert_eq!(state.outcome, None);
        assert_eq!(
            state.last_step().map(|(id, step)| (id, step.status)),
            Some(("b", StepStatus::Waiting))
        );
        assert!(state.is_unfinished());
        // Written before stacks existed: the default stack of its playbook and target.
        assert_eq!(state.header.stack.as_str(), "p@ap-southeast-1");
        assert!(state.all_succeeded(["a"].into_iter()));
        assert!(!state.all_succeeded(["a", "b"].into_iter()));
    }

    #[test]
    fn input_changes_and_replans_fold_into_the_header_and_the_list_of_changes() {
        let mut records = vec![record(1, header())];
        if let Event::RunStarted { inputs, .. } = &mut records[0].event {
            inputs.insert("class".into(), serde_json::json!("db.m1.small"));
        }
        records.push(record(
            2,
            Event::InputChanged {
                name: "class".into(),
                from: serde_json::json!("db.m1.small"),
                to: serde_json::json!("db.m7g.large"),
            },
        ));
        let parts = PlaybookParts {
            steps: BTreeMap::from([("a".to_string(), "1".to_string())]),
            settings: BTreeMap::new(),
        };
        records.push(record(
            3,
            Event::PlaybookReplanned {
                previous_digest: "d".into(),
                playbook_digest: "e".into(),
                parts: parts.clone(),
                changed: vec!["a".into()],
                added: Vec::new(),
                removed: Vec::new(),
                settings: Vec::new(),
                inputs: Values::from([
                    ("new".to_string(), serde_json::json!(1)),
                    (
                        "class".to_string(),
                        serde_json::json!("ignored: already pinned"),
                    ),
                ]),
            },
        ));
        let state = fold(&records).unwrap();
        assert_eq!(
            state.header.inputs["class"],
            serde_json::json!("db.m7g.large")
        );
        assert_eq!(state.header.inputs["new"], serde_json::json!(1));
        assert_eq!(state.header.playbook_digest, "e");
        assert_eq!(state.header.playbook_parts, Some(parts));
        assert_eq!(state.changes.len(), 2);
        assert!(matches!(
            &state.changes[0].kind,
            ChangeKind::InputChanged { name, .. } if name == "class"
        ));
        let shown = serde_json::to_value(&state.changes[1]).unwrap();
        assert_eq!(shown["type"], "playbook_replanned");
        assert_eq!(shown["changed"], serde_json::json!(["a"]));
        assert!(shown.get("at").is_some());
    }

    fn actor() -> Actor {
        Actor {
            user: "ana".into(),
            host: "laptop".into(),
            ..Actor::default()
        }
    }

    #[test]
    fn a_gate_waits_then_is_decided_and_a_new_round_opens_it_again() {
        let asked = |seq, round| {
            record(
                seq,
                Event::ApprovalRequested {
                    step: "gate".into(),
                    round,
                    message: "cut over?".into(),
                    approvers: vec!["ana".into()],
                    deadline: Timestamp::UNIX_EPOCH,
                    on_timeout: Verdict::Reject,
                },
            )
        };
        let mut records = vec![
            record(1, header()),
            record(
                2,
                Event::StepStarted {
                    step: "gate".into(),
                    attempt: 1,
                },
            ),
            asked(3, 1),
        ];
        let state = fold(&records).unwrap();
        let gate = state.step("gate").unwrap();
        assert_eq!(gate.status, StepStatus::Waiting);
        assert_eq!(gate.waiting_for.as_deref(), Some("approval: cut over?"));
        assert!(gate.approval.as_ref().unwrap().is_open());

        records.push(record(
            4,
            Event::ApprovalDecided {
                step: "gate".into(),
                round: 1,
                verdict: Verdict::Reject,
                by: Some(actor()),
                reason: Some("not now".into()),
            },
        ));
        let state = fold(&records).unwrap();
        let decision = state
            .step("gate")
            .unwrap()
            .approval
            .clone()
            .unwrap()
            .decision;
        let decision = decision.unwrap();
        assert_eq!(decision.verdict, Verdict::Reject);
        assert_eq!(decision.by, Some(actor()));
        assert_eq!(decision.reason.as_deref(), Some("not now"));

        // An answer journaled for another round does not close the open one.
        records.push(asked(5, 2));
        records.push(record(
            6,
            Event::ApprovalDecided {
                step: "gate".into(),
                round: 1,
                verdict: Verdict::Approve,
                by: None,
                reason: None,
            },
        ));
        let state = fold(&records).unwrap();
        let approval = state.step("gate").unwrap().approval.clone().unwrap();
        assert_eq!(approval.round, 2);
        assert!(approval.is_open());
    }

    #[test]
    fn a_skipped_step_keeps_the_outputs_given_and_a_retry_reopens_a_finished_run() {
        let records = vec![
            record(1, header()),
            record(
                2,
                Event::StepStarted {
                    step: "a".into(),
                    attempt: 1,
                },
            ),
            record(
                3,
                Event::StepFailed {
                    step: "a".into(),
                    attempt: 1,
                    error: "boom".into(),
                    retryable: false,
                    will_retry: false,
                },
            ),
            record(
                4,
                Event::RunFinished {
                    outcome: Outcome::Failed,
                },
            ),
            record(
                5,
                Event::StepSkipped {
                    step: "a".into(),
                    by: actor(),
                    reason: Some("down for good".into()),
                    outputs: Values::from([("url".to_string(), serde_json::json!("u"))]),
                },
            ),
        ];
        let state = fold(&records).unwrap();
        let a = state.step("a").unwrap();
        assert_eq!(a.status, StepStatus::Skipped);
        assert_eq!(a.outputs["url"], serde_json::json!("u"));
        assert_eq!(a.skipped.as_ref().unwrap().by, actor());
        assert_eq!(a.attempts, 1);
        assert!(state.is_unfinished(), "a skip does not finish the run");

        let mut records = records;
        records.extend([
            record(
                6,
                Event::RunResumed {
                    host: "h".into(),
                    pid: 1,
                    by: None,
                },
            ),
            record(
                7,
                Event::RunFinished {
                    outcome: Outcome::Succeeded,
                },
            ),
            record(
                8,
                Event::StepRetryRequested {
                    step: "a".into(),
                    by: actor(),
                },
            ),
        ]);
        let state = fold(&records).unwrap();
        let a = state.step("a").unwrap();
        assert_eq!(a.status, StepStatus::Pending);
        assert!(a.outputs.is_empty() && a.skipped.is_none());
        assert!(a.retry_requested.is_some());
        assert_eq!(state.outcome, None);
        assert!(state.marked_for_resume && state.is_unfinished());

        let mut records = records;
        records.extend([
            record(
                9,
                Event::RunResumed {
                    host: "h".into(),
                    pid: 2,
                    by: None,
                },
            ),
            record(
                10,
                Event::StepStarted {
                    step: "a".into(),
                    attempt: 2,
                },
            ),
        ]);
        let state = fold(&records).unwrap();
        assert!(!state.marked_for_resume);
        assert!(state.step("a").unwrap().retry_requested.is_none());
    }

    #[test]
    fn needs_a_header() {
        assert_eq!(fold(&[]).unwrap_err(), FoldError::Empty);
        let records = vec![record(
            1,
            Event::StepStarted {
                step: "a".into(),
                attempt: 1,
            },
        )];
        assert_eq!(fold(&records).unwrap_err(), FoldError::NoHeader);
    }
}
