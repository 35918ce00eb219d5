//! Plans: playbook + target + journal → an ordered graph of actions. The planner here is
//! pure — it orders steps into waves, marks what the journal says is done as `skip`, and
//! collects problems — and is unit-tested without a cloud. The read-only questions to the
//! cloud (does it exist, which snapshot) are asked by [`survey`], which fills in each step.

pub mod amend;
mod critical_path;
pub use critical_path::{CriticalPath, critical_path};
pub mod mark;
pub mod render;
pub mod survey;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::journal::{PlaybookParts, RunState, StepStatus, Values};
use crate::playbook::{Playbook, StepSpec};
use crate::stack::Stack;
use crate::steps::{Action, StepPlan, StepProblem};

use self::amend::{Amendment, Requested};

/// A plan: what a run would do, step by step.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The run being resumed, if any.
    pub run_id: Option<String>,
    /// Playbook name.
    pub playbook: String,
    /// Playbook file.
    pub playbook_path: String,
    /// The stack the run works on.
    pub stack: String,
    /// Region that failed.
    pub source_region: String,
    /// Region to rebuild in.
    pub target_region: String,
    /// Steps in execution order.
    pub steps: Vec<PlannedStep>,
    /// Groups of steps that can run at the same time, in order.
    pub waves: Vec<Vec<String>>,
    /// Problems that stop the run before any change.
    pub problems: Vec<PlanProblem>,
    /// Who the run acts as (found before anything else is asked of AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::cloud::CallerIdentity>,
    /// Whether the run was under way before (a step started, or it was resumed before).
    #[serde(skip)]
    pub resumed: bool,
    /// What this resume changes (an input's value, the playbook), journaled when the run
    /// goes ahead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amendments: Vec<Amendment>,
}

/// One step of a plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlannedStep {
    /// Step id.
    pub id: String,
    /// Step kind.
    pub kind: String,
    /// What it needs.
    pub needs: Vec<String>,
    /// What will happen.
    pub action: Action,
    /// One line on it.
    pub summary: String,
    /// Facts found while planning.
    pub details: Vec<(String, String)>,
    /// Outputs already known (skipped steps).
    pub outputs: Values,
    /// Where the step stands in the playbook (steps that are ready together start in
    /// playbook order).
    #[serde(skip)]
    pub position: usize,
    /// The step as the playbook states it (parameters, timeout, retry policy).
    #[serde(skip)]
    pub spec: StepSpec,
    /// Outputs its kind already knew at plan time (e.g. a resolved commit and a checkout
    /// of it): handed to the step's `apply` as data.
    #[serde(skip)]
    pub planned: Values,
    /// Values earlier attempts of this run pinned.
    #[serde(skip)]
    pub pins: Values,
    /// The waits an earlier attempt of this run began and did not finish: when each began.
    #[serde(skip)]
    pub waits_begun: BTreeMap<String, jiff::Timestamp>,
    /// Attempts made before (by earlier processes of this run).
    #[serde(skip)]
    pub attempts: u32,
}

/// A problem found while planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanProblem {
    /// The step it concerns.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What kind of problem it is: decides the hint and the exit code, never the text.
    #[serde(skip)]
    pub cause: Cause,
}

/// What kind of problem a plan found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cause {
    /// The target region is the playbook's source region (a usage error).
    TargetIsSource {
        /// The region.
        target: String,
    },
    /// The playbook changed since the run being resumed started, and `--replan` was not
    /// given (a usage error).
    PlaybookChanged {
        /// The run.
        run_id: String,
        /// The playbook file.
        path: String,
    },
    /// `--replan` of a run whose journal holds no digests of its steps (a usage error).
    ReplanNotJournaled {
        /// The run.
        run_id: String,
        /// The playbook file.
        path: String,
    },
    /// `--replan` of an edit that changes or removes steps that succeeded, or a run-wide
    /// setting once a step succeeded (a usage error).
    ReplanTouchesSucceeded {
        /// The run.
        run_id: String,
        /// The playbook file.
        path: String,
        /// The succeeded steps the edit changes or removes.
        steps: Vec<String>,
        /// The run-wide settings it changes (when a step succeeded).
        settings: Vec<String>,
    },
    /// `--input` changing an input that a succeeded step consumed (a usage error).
    InputConsumed {
        /// The input.
        name: String,
        /// Its pinned value, rendered.
        pinned: String,
        /// The value given, rendered.
        given: String,
        /// The succeeded steps that consumed it.
        consumers: Vec<String>,
    },
    /// The credentials act in another AWS account than the one the run must act in.
    WrongAccount,
    /// A snapshot is older than the RPO limit.
    RpoExceeded,
    /// No usable cloud credentials.
    NoCredentials,
    /// The TLS certificate cannot serve the public name.
    Certificate,
    /// Anything else.
    #[default]
    Other,
}

/// What to do when the credentials are for another account.
pub const WRONG_ACCOUNT_HINT: &str = "sign in to the account named above (e.g. `export AWS_PROFILE=...` or `aws sso login --profile ...`), then run the same command again; nothing was created or changed";

impl PlanProblem {
    /// What to do about it, when its cause says.
    pub fn hint(&self) -> Option<&'static str> {
        match self.cause {
            Cause::RpoExceeded => StepProblem::RpoExceeded {
                message: String::new(),
            }
            .hint(),
            Cause::NoCredentials => Some(crate::steps::NO_CREDENTIALS_HINT),
            Cause::WrongAccount => Some(WRONG_ACCOUNT_HINT),
            Cause::Certificate => Some(crate::steps::CERTIFICATE_HINT),
            Cause::TargetIsSource { .. }
            | Cause::PlaybookChanged { .. }
            | Cause::ReplanNotJournaled { .. }
            | Cause::ReplanTouchesSucceeded { .. }
            | Cause::InputConsumed { .. }
            | Cause::Other => None,
        }
    }

    /// A problem a step's kind found.
    pub fn from_step(step: &str, problem: &StepProblem) -> Self {
        Self {
            step: Some(step.to_string()),
            message: problem.message().to_string(),
            cause: match problem {
                StepProblem::RpoExceeded { .. } => Cause::RpoExceeded,
                StepProblem::NoCredentials { .. } => Cause::NoCredentials,
                StepProblem::Certificate { .. } => Cause::Certificate,
                StepProblem::Other { .. } => Cause::Other,
            },
        }
    }
}

impl Plan {
    /// Whether the plan may run.
    pub fn is_runnable(&self) -> bool {
        self.problems.is_empty()
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|step| step.id == id)
    }
}

/// Order steps into waves: wave *n* holds the steps whose longest chain of `needs` has
/// length *n*. File order is kept inside a wave. The playbook is validated (acyclic); a
/// step in a cycle, or needing a step that does not exist, is in no wave (validation
/// reports it). Each step and each need is looked at once (Kahn's order).
pub fn waves(playbook: &Playbook) -> Vec<Vec<String>> {
    let steps = &playbook.steps;
    // For each step, the steps that need it, and how many of its needs are not placed yet.
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    let mut waiting: Vec<usize> = vec![0; steps.len()];
    for (position, step) in steps.iter().enumerate() {
        let mut needed = BTreeSet::new();
        for need in &step.needs {
            match playbook.position(&need.value) {
                Some(need) if needed.insert(need) => dependants[need].push(position),
                Some(_) => {}
                // Needs a step that does not exist: never placed.
                None => waiting[position] = usize::MAX,
            }
        }
        if waiting[position] == 0 {
            waiting[position] = needed.len();
        }
    }
    let mut depth: Vec<Option<usize>> = vec![None; steps.len()];
    let mut ready: Vec<usize> = (0..steps.len())
        .filter(|position| waiting[*position] == 0)
        .collect();
    for position in &ready {
        depth[*position] = Some(0);
    }
    while let Some(position) = ready.pop() {
        let level = depth[position].unwrap_or_default() + 1;
        for &dependant in &dependants[position] {
            let deepest = depth[dependant].map_or(level, |known| known.max(level));
            depth[dependant] = Some(deepest);
            waiting[dependant] -= 1;
            if waiting[dependant] == 0 {
                ready.push(dependant);
            }
        }
    }
    // A step still waiting is in a cycle or after one: it has no wave.
    let placed = |position: usize| {
        (waiting[position] == 0)
            .then_some(depth[position])
            .flatten()
    };
    let levels = (0..steps.len())
        .filter_map(placed)
        .max()
        .map_or(0, |max| max + 1);
    let mut waves = vec![Vec::new(); levels];
    for (position, step) in steps.iter().enumerate() {
        if let Some(level) = placed(position) {
            waves[level].push(step.id.value.clone());
        }
    }
    waves
}

/// The pure part of planning: order the steps, mark as `skip` what the journal says
/// succeeded, and check what a resume asks to change (`requested`, see [`amend`]). Every
/// other step starts as `unknown` until [`survey`] asks its kind.
pub fn skeleton(
    playbook: &Playbook,
    target: &str,
    stack: &Stack,
    state: Option<&RunState>,
    requested: &Requested,
) -> Plan {
    let waves = waves(playbook);
    let order: Vec<&String> = waves.iter().flatten().collect();
    let steps = order
        .iter()
        .filter_map(|id| playbook.step(id))
        .map(|spec| {
            let journaled = state.and_then(|state| state.step(&spec.id.value));
            let done = journaled
                .filter(|step| matches!(step.status, StepStatus::Succeeded | StepStatus::Skipped));
            PlannedStep {
                id: spec.id.value.clone(),
                kind: spec.kind.value.clone(),
                needs: spec.needs.iter().map(|need| need.value.clone()).collect(),
                action: if done.is_some() {
                    Action::Skip
                } else {
                    Action::Unknown
                },
                summary: match done {
                    Some(step) => match &step.skipped {
                        Some(mark) => format!(
                            "skipped by {}{}; its dependants use the outputs given",
                            mark.by,
                            mark.reason
                                .as_ref()
                                .map(|reason| format!(" ({reason})"))
                                .unwrap_or_default()
                        ),
                        None => "succeeded earlier in this run; outputs reused".to_string(),
                    },
                    None => String::new(),
                },
                details: Vec::new(),
                outputs: done.map(|step| step.outputs.clone()).unwrap_or_default(),
                position: playbook.position(&spec.id.value).unwrap_or_default(),
                spec: spec.clone(),
                planned: Values::new(),
                pins: journaled.map(|step| step.pins.clone()).unwrap_or_default(),
                waits_begun: journaled
                    .map(|step| step.waits_begun.clone())
                    .unwrap_or_default(),
                attempts: journaled.map_or(0, |step| step.attempts),
            }
        })
        .collect();
    let mut problems = Vec::new();
    if target == playbook.source_region.value {
        problems.push(PlanProblem {
            step: None,
            message: format!(
                "the target region `{target}` is the source region: a rebuild must go elsewhere"
            ),
            cause: Cause::TargetIsSource {
                target: target.to_string(),
            },
        });
    }
    let mut amendments = Vec::new();
    if let Some(state) = state {
        // Digesting every step is needed only to compare an edited playbook.
        let parts = || PlaybookParts {
            steps: playbook.step_digests(),
            settings: playbook.settings_digests(),
        };
        let (allowed, refused) = amend::check(playbook, parts, state, requested);
        amendments = allowed;
        problems.extend(refused);
    }
    Plan {
        run_id: state.map(|state| state.header.run_id.clone()),
        playbook: playbook.name.clone(),
        playbook_path: playbook.path.display().to_string(),
        stack: stack.to_string(),
        source_region: playbook.source_region.value.clone(),
        target_region: target.to_string(),
        steps,
        waves,
        problems,
        identity: None,
        resumed: state.is_some_and(|state| state.resumes > 0 || !state.steps.is_empty()),
        amendments,
    }
}

/// Record what a kind's planning found for a step.
pub fn fill(plan: &mut Plan, step_id: &str, found: StepPlan) {
    for problem in &found.problems {
        plan.problems.push(PlanProblem::from_step(step_id, problem));
    }
    if let Some(step) = plan.steps.iter_mut().find(|step| step.id == step_id) {
        step.action = found.action;
        step.summary = found.summary;
        step.details = found.details;
        step.planned = found.outputs;
    }
}

/// Steps that still have work to do.
pub fn pending(plan: &Plan) -> BTreeSet<String> {
    plan.steps
        .iter()
        .filter(|step| step.action != Action::Skip)
        .map(|step| step.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{self, KindSpec};
    use std::path::Path;

    const KINDS: &[KindSpec] = &[KindSpec::test_noop(&["out"])];

    fn playbook(steps: &str) -> Playbook {
        let text = format!("name: t\nsource_region: ap-southeast-2\nsteps:\n{steps}");
        playbook::from_str(Path::new("t.yaml"), &text, KINDS).unwrap()
    }

    #[test]
    fn waves_follow_needs_and_keep_file_order() {
        let playbook = playbook(
            "  - {id: c, kind: test.noop, needs: [a, b]}\n  - {id: a, kind: test.noop}\n  - {id: b, kind: test.noop}\n  - {id: d, kind: test.noop, needs: [a]}\n",
        );
        assert_eq!(
            waves(&playbook),
            vec![
                vec!["a".to_string(), "b".to_string()],
                vec!["c".to_string(), "d".to_string()]
            ]
        );
    }

    #[test]
    fn waves_of_a_long_chain_and_a_wide_fan_are_the_longest_chain_of_needs() {
        // A chain of 300 steps with a fan of 300 steps hanging off its head: each step is
        // placed once, in the wave of its longest chain of needs.
        let mut steps = String::from("  - {id: s0, kind: test.noop}\n");
        for index in 1..300 {
            let _ = std::fmt::Write::write_fmt(
                &mut steps,
                format_args!(
                    "  - {{id: s{index}, kind: test.noop, needs: [s{}]}}\n",
                    index - 1
                ),
            );
            let _ = std::fmt::Write::write_fmt(
                &mut steps,
                format_args!("  - {{id: f{index}, kind: test.noop, needs: [s0, s{index}]}}\n"),
            );
        }
        let waves = waves(&playbook(&steps));
        assert_eq!(waves.len(), 301);
        assert_eq!(waves[0], vec!["s0".to_string()]);
        assert_eq!(waves[1], vec!["s1".to_string()]);
        assert_eq!(waves[2], vec!["f1".to_string(), "s2".to_string()]);
        assert_eq!(waves[300], vec!["f299".to_string()]);
        assert_eq!(waves.iter().map(Vec::len).sum::<usize>(), 599);
    }

    #[test]
    fn skeleton_refuses_the_source_region() {
        let playbook = playbook("  - {id: a, kind: test.noop}\n");
        let plan = skeleton(
            &playbook,
            "ap-southeast-2",
            &Stack::default_for("t", "ap-southeast-2"),
            None,
            &Requested::default(),
        );
        assert!(!plan.is_runnable());
        assert!(plan.problems[0].message.contains("is the source region"));
        let plan = skeleton(
            &playbook,
            "ap-southeast-1",
            &Stack::default_for("t", "ap-southeast-1"),
            None,
            &Requested::default(),
        );
        assert!(plan.is_runnable());
        assert_eq!(plan.steps[0].action, Action::Unknown);
    }

    #[test]
    fn skeleton_skips_what_the_journal_says_succeeded_and_flags_a_changed_playbook() {
        use crate::journal::{Event, Record, record::SCHEMA_VERSION, state};
        let playbook =
            playbook("  - {id: a, kind: test.noop}\n  - {id: b, kind: test.noop, needs: [a]}\n");
        let record = |seq, event| Record {
            v: SCHEMA_VERSION,
            seq,
            at: jiff::Timestamp::UNIX_EPOCH,
            event,
        };
        let records = vec![
            record(
                1,
                Event::test_start("r1", "t").started_with(|digest, _, _| {
                    digest.clone_from(&playbook.digest);
                }),
            ),
            record(
                2,
                Event::StepStarted {
                    step: "a".into(),
                    attempt: 1,
                },
            ),
            record(
                3,
                Event::StepSucceeded {
                    step: "a".into(),
                    attempt: 1,
                    outputs: Values::from([("out".to_string(), serde_json::json!("x"))]),
                },
            ),
            record(
                4,
                Event::StepStarted {
                    step: "b".into(),
                    attempt: 1,
                },
            ),
        ];
        let state = state::fold(&records).unwrap();
        let plan = skeleton(
            &playbook,
            "ap-southeast-1",
            &Stack::default_for("t", "ap-southeast-1"),
            Some(&state),
            &Requested::default(),
        );
        assert_eq!(plan.run_id.as_deref(), Some("r1"));
        assert_eq!(plan.step("a").unwrap().action, Action::Skip);
        assert_eq!(
            plan.step("a").unwrap().outputs["out"],
            serde_json::json!("x")
        );
        assert_eq!(
            plan.step("b").unwrap().action,
            Action::Unknown,
            "in flight: asked again"
        );
        assert!(plan.is_runnable());
        assert_eq!(
            pending(&plan).into_iter().collect::<Vec<_>>(),
            vec!["b".to_string()]
        );

        let mut changed = state.clone();
        changed.header.playbook_digest = "0123456789abcdef".into();
        let plan = skeleton(
            &playbook,
            "ap-southeast-1",
            &Stack::default_for("t", "ap-southeast-1"),
            Some(&changed),
            &Requested::default(),
        );
        assert!(
            plan.problems[0]
                .message
                .contains("the playbook changed since run `r1` started")
        );
    }

    #[test]
    fn fill_records_actions_and_problems() {
        let playbook = playbook("  - {id: a, kind: test.noop}\n");
        let mut plan = skeleton(
            &playbook,
            "ap-southeast-1",
            &Stack::default_for("t", "ap-southeast-1"),
            None,
            &Requested::default(),
        );
        let mut found = StepPlan::new(Action::Create, "make it");
        found.problems.push("snapshot too old".into());
        fill(&mut plan, "a", found);
        assert_eq!(plan.steps[0].action, Action::Create);
        assert_eq!(plan.problems.len(), 1);
        assert_eq!(plan.problems[0].step.as_deref(), Some("a"));
        assert!(pending(&plan).contains("a"));
    }
}
