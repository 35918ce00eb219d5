//! What a resume may change mid-run (review D1), decided from the journal's fold; pure.
//!
//! - **An input's value** (`rebuild resume --input NAME=VALUE`) may change while no step that
//!   consumes it (`${inputs.NAME}` in its parameters) has succeeded: a succeeded step is
//!   never run again, so it would keep what it built with the old value.
//! - **The playbook** (`rebuild resume --replan`) may change while every step the edit
//!   changes, adds or removes has not succeeded, and a run-wide setting (`tags`,
//!   `rpo_limit`, …) only while no step has. The playbook's text is not journaled: the
//!   start record holds a digest of each step and setting
//!   ([`crate::journal::PlaybookParts`]), and the edit is compared with those. A journal
//!   written before those digests existed cannot be replanned.
//!
//! What is allowed becomes an [`Amendment`] the run journals once it goes ahead; what is
//! not becomes a plan problem whose cause the pipeline turns into a usage error.

use serde::Serialize;

use crate::journal::{PlaybookParts, RunState, StepStatus};
use crate::playbook::Playbook;

use super::{Cause, PlanProblem};

/// A resume's `--input` giving a pinned input another value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputChange {
    /// The input.
    pub name: String,
    /// The value the run pinned.
    pub from: serde_json::Value,
    /// The value given now.
    pub to: serde_json::Value,
}

/// What a resume asks to change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requested {
    /// Pinned inputs given another value.
    pub inputs: Vec<InputChange>,
    /// `--replan`: take up an edited playbook.
    pub replan: bool,
}

/// How an edited playbook differs from the one a run started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepDiff {
    /// Steps in both whose definition changed.
    pub changed: Vec<String>,
    /// Steps only the edit has.
    pub added: Vec<String>,
    /// Steps only the original had.
    pub removed: Vec<String>,
    /// Run-wide settings that changed.
    pub settings: Vec<String>,
}

/// A change the run journals when it goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Amendment {
    /// An input's new value.
    InputChanged(InputChange),
    /// The edited playbook.
    PlaybookReplanned {
        /// The digest the run had.
        previous_digest: String,
        /// The edited playbook's digest.
        playbook_digest: String,
        /// The edited playbook's parts.
        #[serde(skip)]
        parts: PlaybookParts,
        /// How it differs.
        #[serde(flatten)]
        diff: StepDiff,
    },
}

/// Compare the parts of the playbook a run started with (`old`) and of the edit (`new`).
pub fn diff(old: &PlaybookParts, new: &PlaybookParts) -> StepDiff {
    let changed_in = |old: &std::collections::BTreeMap<String, String>,
                      new: &std::collections::BTreeMap<String, String>| {
        new.iter()
            .filter(|(name, digest)| old.get(*name).is_some_and(|before| before != *digest))
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    let only_in = |these: &std::collections::BTreeMap<String, String>,
                   those: &std::collections::BTreeMap<String, String>| {
        these
            .keys()
            .filter(|name| !those.contains_key(*name))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut settings = changed_in(&old.settings, &new.settings);
    settings.extend(only_in(&new.settings, &old.settings));
    settings.extend(only_in(&old.settings, &new.settings));
    settings.sort();
    StepDiff {
        changed: changed_in(&old.steps, &new.steps),
        added: only_in(&new.steps, &old.steps),
        removed: only_in(&old.steps, &new.steps),
        settings,
    }
}

impl StepDiff {
    /// The changed and removed steps that succeeded (an added step cannot have).
    pub fn succeeded_steps(&self, state: &RunState) -> Vec<String> {
        self.changed
            .iter()
            .chain(&self.removed)
            .filter(|id| succeeded(state, id))
            .cloned()
            .collect()
    }
}

/// The steps of `playbook` that consume `input` and succeeded in the run.
pub fn succeeded_consumers(playbook: &Playbook, state: &RunState, input: &str) -> Vec<String> {
    playbook
        .consumers_of(input)
        .into_iter()
        .filter(|id| succeeded(state, id))
        .collect()
}

fn succeeded(state: &RunState, id: &str) -> bool {
    state
        .step(id)
        .is_some_and(|step| step.status == StepStatus::Succeeded)
}

/// Check what a resume of `state` asks to change against the run: what to journal, and
/// the problems that refuse the resume. `parts` gives the (edited) playbook's, and is
/// called only when the playbook changed and `--replan` asks to take the edit up.
pub fn check(
    playbook: &Playbook,
    parts: impl FnOnce() -> PlaybookParts,
    state: &RunState,
    requested: &Requested,
) -> (Vec<Amendment>, Vec<PlanProblem>) {
    let mut amendments = Vec::new();
    let mut problems = Vec::new();
    let header = &state.header;
    if header.playbook_digest != playbook.digest {
        let problem = |message: String, cause: Cause| PlanProblem {
            step: None,
            message,
            cause,
        };
        match (&header.playbook_parts, requested.replan) {
            (_, false) => problems.push(problem(
                format!(
                    "the playbook changed since run `{}` started (digest {} → {})",
                    header.run_id,
                    short(&header.playbook_digest),
                    short(&playbook.digest)
                ),
                Cause::PlaybookChanged {
                    run_id: header.run_id.clone(),
                    path: header.playbook_path.clone(),
                },
            )),
            (None, true) => problems.push(problem(
                format!(
                    "run `{}` journaled no digests of its steps, so the edit cannot be compared step by step",
                    header.run_id
                ),
                Cause::ReplanNotJournaled {
                    run_id: header.run_id.clone(),
                    path: header.playbook_path.clone(),
                },
            )),
            (Some(old), true) => {
                let parts = parts();
                let diff = diff(old, &parts);
                let steps = diff.succeeded_steps(state);
                let any_succeeded = state
                    .steps
                    .values()
                    .any(|step| step.status == StepStatus::Succeeded);
                let settings = if any_succeeded {
                    diff.settings.clone()
                } else {
                    Vec::new()
                };
                if steps.is_empty() && settings.is_empty() {
                    amendments.push(Amendment::PlaybookReplanned {
                        previous_digest: header.playbook_digest.clone(),
                        playbook_digest: playbook.digest.clone(),
                        parts,
                        diff,
                    });
                } else {
                    problems.push(problem(
                        format!(
                            "the edit of the playbook touches what already succeeded in run `{}`",
                            header.run_id
                        ),
                        Cause::ReplanTouchesSucceeded {
                            run_id: header.run_id.clone(),
                            path: header.playbook_path.clone(),
                            steps,
                            settings,
                        },
                    ));
                }
            }
        }
    }
    for change in &requested.inputs {
        let consumers = succeeded_consumers(playbook, state, &change.name);
        if consumers.is_empty() {
            amendments.push(Amendment::InputChanged(change.clone()));
        } else {
            problems.push(PlanProblem {
                step: None,
                message: format!(
                    "input `{}` was used by steps that succeeded: {}",
                    change.name,
                    consumers.join(", ")
                ),
                cause: Cause::InputConsumed {
                    name: change.name.clone(),
                    pinned: change.from.to_string(),
                    given: change.to.to_string(),
                    consumers,
                },
            });
        }
    }
    (amendments, problems)
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::journal::{Event, Record, Values, record::SCHEMA_VERSION, state};
    use crate::playbook::{self, KindSpec};

    const KINDS: &[KindSpec] = &[KindSpec::test_noop(&["out"])];

    fn playbook(steps: &str) -> Playbook {
        let text = format!(
            "name: t\nsource_region: ap-southeast-2\ninputs:\n  cidr: {{default: 10.0.0.0/16}}\n  class: {{default: db.t3.medium}}\nsteps:\n{steps}"
        );
        playbook::from_str(Path::new("t.yaml"), &text, KINDS).unwrap()
    }

    const STEPS: &str = "  - {id: network, kind: test.noop, with: {value: '${inputs.cidr}'}}\n  \
         - {id: database, kind: test.noop, needs: [network], with: {value: '${inputs.class}'}}\n  \
         - {id: nodes, kind: test.noop, needs: [network], with: {value: small}}\n";

    fn parts(playbook: &Playbook) -> PlaybookParts {
        PlaybookParts {
            steps: playbook.step_digests(),
            settings: playbook.settings_digests(),
        }
    }

    /// A run of `playbook` (parts journaled unless `old_journal`) in which `succeeded`
    /// succeeded and `failed` failed.
    fn run(
        playbook: &Playbook,
        succeeded: &[&str],
        failed: &[&str],
        old_journal: bool,
    ) -> RunState {
        let record = |seq, event| Record {
            v: SCHEMA_VERSION,
            seq,
            at: jiff::Timestamp::UNIX_EPOCH,
            event,
        };
        let mut records = vec![record(
            1,
            Event::test_start("r1", "t").started_with(|digest, parts_of, inputs| {
                digest.clone_from(&playbook.digest);
                *parts_of = (!old_journal).then(|| parts(playbook));
                *inputs = Values::from([
                    ("cidr".to_string(), json!("10.0.0.0/16")),
                    ("class".to_string(), json!("db.m1.small")),
                ]);
            }),
        )];
        for id in succeeded {
            let seq = records.len() as u64 + 1;
            records.push(record(
                seq,
                Event::StepSucceeded {
                    step: (*id).into(),
                    attempt: 1,
                    outputs: Values::new(),
                },
            ));
        }
        for id in failed {
            let seq = records.len() as u64 + 1;
            records.push(record(
                seq,
                Event::StepFailed {
                    step: (*id).into(),
                    attempt: 1,
                    error: "InvalidParameterCombination".into(),
                    retryable: false,
                    will_retry: false,
                },
            ));
        }
        state::fold(&records).unwrap()
    }

    fn class_change() -> InputChange {
        InputChange {
            name: "class".into(),
            from: json!("db.m1.small"),
            to: json!("db.m7g.large"),
        }
    }

    #[test]
    fn an_input_no_succeeded_step_used_may_change_and_is_journaled() {
        let playbook = playbook(STEPS);
        let state = run(&playbook, &["network"], &["database"], false);
        let requested = Requested {
            inputs: vec![class_change()],
            replan: false,
        };
        let (amendments, problems) = check(&playbook, || parts(&playbook), &state, &requested);
        assert_eq!(problems, Vec::new());
        assert_eq!(amendments, vec![Amendment::InputChanged(class_change())]);
    }

    #[test]
    fn an_input_a_succeeded_step_used_is_refused_naming_the_step() {
        let playbook = playbook(STEPS);
        let state = run(&playbook, &["network", "database"], &[], false);
        assert_eq!(
            succeeded_consumers(&playbook, &state, "class"),
            vec!["database"]
        );
        let requested = Requested {
            inputs: vec![class_change()],
            replan: false,
        };
        let (amendments, problems) = check(&playbook, || parts(&playbook), &state, &requested);
        assert!(amendments.is_empty());
        assert_eq!(
            problems[0].cause,
            Cause::InputConsumed {
                name: "class".into(),
                pinned: "\"db.m1.small\"".into(),
                given: "\"db.m7g.large\"".into(),
                consumers: vec!["database".into()],
            }
        );
    }

    #[test]
    fn the_diff_names_changed_added_and_removed_steps_and_settings() {
        let before = playbook(STEPS);
        let after = playbook(
            "  - {id: network, kind: test.noop, with: {value: '${inputs.cidr}'}}\n  \
             - {id: database, kind: test.noop, needs: [network], with: {value: '${inputs.cidr}'}}\n  \
             - {id: smoke, kind: test.noop, needs: [network]}\n",
        );
        let mut edited = parts(&after);
        edited
            .settings
            .insert("tags".into(), "another digest".into());
        assert_eq!(
            diff(&parts(&before), &edited),
            StepDiff {
                changed: vec!["database".into()],
                added: vec!["smoke".into()],
                removed: vec!["nodes".into()],
                settings: vec!["tags".into()],
            }
        );
        assert_eq!(diff(&parts(&before), &parts(&before)), StepDiff::default());
    }

    #[test]
    fn a_replan_touching_only_steps_that_did_not_succeed_is_journaled() {
        let before = playbook(STEPS);
        let state = run(&before, &["network"], &["database"], false);
        let after = playbook(&STEPS.replace("value: small", "value: large"));
        let requested = Requested {
            inputs: Vec::new(),
            replan: true,
        };
        let (amendments, problems) = check(&after, || parts(&after), &state, &requested);
        assert_eq!(problems, Vec::new());
        let [
            Amendment::PlaybookReplanned {
                previous_digest,
                playbook_digest,
                diff,
                ..
            },
        ] = amendments.as_slice()
        else {
            panic!("one replan expected: {amendments:?}");
        };
        assert_eq!(previous_digest, &before.digest);
        assert_eq!(playbook_digest, &after.digest);
        assert_eq!(diff.changed, vec!["nodes".to_string()]);

        // The same edit without `--replan`: the playbook changed.
        let (_, problems) = check(&after, || parts(&after), &state, &Requested::default());
        assert!(matches!(problems[0].cause, Cause::PlaybookChanged { .. }));
    }

    #[test]
    fn a_replan_touching_a_succeeded_step_or_a_setting_after_one_is_refused() {
        let before = playbook(STEPS);
        let requested = Requested {
            inputs: Vec::new(),
            replan: true,
        };
        let after = playbook(&STEPS.replace("'${inputs.cidr}'}}", "'10.9.0.0/16'}}"));
        let state = run(&before, &["network"], &[], false);
        let (amendments, problems) = check(&after, || parts(&after), &state, &requested);
        assert!(amendments.is_empty());
        assert_eq!(
            problems[0].cause,
            Cause::ReplanTouchesSucceeded {
                run_id: "r1".into(),
                path: "t.yaml".into(),
                steps: vec!["network".into()],
                settings: Vec::new(),
            }
        );

        // Removing a succeeded step is refused too.
        let without = playbook(
            "  - {id: network, kind: test.noop, with: {value: '${inputs.cidr}'}}\n  \
             - {id: database, kind: test.noop, needs: [network], with: {value: '${inputs.class}'}}\n",
        );
        let state = run(&before, &["network", "nodes"], &[], false);
        let (_, problems) = check(&without, || parts(&without), &state, &requested);
        assert!(matches!(
            &problems[0].cause,
            Cause::ReplanTouchesSucceeded { steps, .. } if steps == &vec!["nodes".to_string()]
        ));

        // A run-wide setting: allowed before any step succeeded, refused after.
        let mut tagged = parts(&before);
        tagged.settings.insert("tags".into(), "x".into());
        let edited = playbook(&format!("{STEPS}  - {{id: extra, kind: test.noop}}\n"));
        let fresh = run(&before, &[], &["network"], false);
        let (amendments, problems) = check(&edited, || tagged.clone(), &fresh, &requested);
        assert_eq!(problems, Vec::new());
        assert_eq!(amendments.len(), 1);
        let (_, problems) = check(&edited, || tagged.clone(), &state, &requested);
        assert!(matches!(
            &problems[0].cause,
            Cause::ReplanTouchesSucceeded { steps, settings, .. }
                if steps.is_empty() && settings == &vec!["tags".to_string()]
        ));
    }

    #[test]
    fn a_journal_without_step_digests_cannot_be_replanned() {
        let before = playbook(STEPS);
        let state = run(&before, &[], &[], true);
        let after = playbook(&STEPS.replace("value: small", "value: large"));
        let requested = Requested {
            inputs: Vec::new(),
            replan: true,
        };
        let (amendments, problems) = check(&after, || parts(&after), &state, &requested);
        assert!(amendments.is_empty());
        assert!(matches!(
            problems[0].cause,
            Cause::ReplanNotJournaled { .. }
        ));
        // Unedited, it resumes as before.
        let (amendments, problems) = check(&before, || parts(&before), &state, &requested);
        assert!(amendments.is_empty() && problems.is_empty());
    }
}
