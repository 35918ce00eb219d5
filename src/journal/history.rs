//! How long a stack's waits took in its past runs: a step's wait for the cloud (a cluster
//! becoming `ACTIVE`, a restore becoming `available`, a deploy wave rolling out) polls by
//! what it took before (see `runtime::Pace`), so a rehearsal teaches the real rebuild when
//! to look. Read from the journals' `step_waited` records; pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::state::RunState;
use crate::stack::Stack;

/// How many of the newest observations of a wait its expectation is the median of.
const NEWEST: usize = 5;

/// Past durations of each (step, wait) of one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitHistory {
    /// (step id, wait key) -> durations, oldest first.
    waits: BTreeMap<(String, String), Vec<Duration>>,
}

impl WaitHistory {
    /// The history of `stack`'s runs among `states` (oldest first; other stacks' runs are
    /// ignored: a drill's stack and production's differ in size and region).
    pub fn of<'a>(states: impl IntoIterator<Item = &'a RunState>, stack: &Stack) -> Self {
        let mut history = Self::default();
        for state in states {
            if state.header.stack != *stack {
                continue;
            }
            for (step, journaled) in &state.steps {
                for waited in &journaled.waited {
                    history
                        .waits
                        .entry((step.clone(), waited.wait.clone()))
                        .or_default()
                        .push(waited.took);
                }
            }
        }
        history
    }

    /// What step `step`'s wait `wait` is expected to take: the median of its newest past
    /// durations, if it was ever seen to end.
    pub fn expected(&self, step: &str, wait: &str) -> Option<Duration> {
        let past = self.waits.get(&(step.to_string(), wait.to_string()))?;
        let mut newest: Vec<Duration> = past.iter().rev().take(NEWEST).copied().collect();
        newest.sort();
        newest.get(newest.len() / 2).copied()
    }

    /// Whether any wait was ever seen to end.
    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{Event, Record};
    use crate::journal::state::fold;

    fn run(run_id: &str, stack: &str, waits: &[(&str, &str, u64)]) -> RunState {
        let mut start = Event::test_start(run_id, "p");
        if let Event::RunStarted { stack: owner, .. } = &mut start {
            *owner = Some(stack.to_string());
        }
        let mut events = vec![start];
        for (step, wait, seconds) in waits {
            events.push(Event::StepWaited {
                step: (*step).to_string(),
                wait: (*wait).to_string(),
                waited_ms: seconds * 1000,
                polls: 3,
            });
        }
        let records: Vec<Record> = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| Record {
                v: crate::journal::record::SCHEMA_VERSION,
                seq: index as u64 + 1,
                at: jiff::Timestamp::UNIX_EPOCH,
                event,
            })
            .collect();
        fold(&records).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn the_expectation_is_the_median_of_the_newest_runs_of_the_same_stack() {
        let runs = [
            run("r1", "prod", &[("cluster", "cluster-active", 900)]),
            run("r2", "prod", &[("cluster", "cluster-active", 700)]),
            run("r3", "drill", &[("cluster", "cluster-active", 10)]),
            run(
                "r4",
                "prod",
                &[
                    ("cluster", "cluster-active", 720),
                    ("deploy", "wave:migrate", 60),
                ],
            ),
        ];
        let prod = Stack::journaled("prod");
        let history = WaitHistory::of(&runs, &prod);
        assert_eq!(
            history.expected("cluster", "cluster-active"),
            Some(Duration::from_secs(720))
        );
        assert_eq!(
            history.expected("deploy", "wave:migrate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(history.expected("deploy", "wave:backend"), None);
        let drill = WaitHistory::of(&runs, &Stack::journaled("drill"));
        assert_eq!(
            drill.expected("cluster", "cluster-active"),
            Some(Duration::from_secs(10))
        );
        assert!(WaitHistory::of(&runs, &Stack::journaled("other")).is_empty());
    }

    #[test]
    fn only_the_newest_five_count() {
        let old: Vec<(&str, &str, u64)> = vec![("db", "db-available", 3600); 6];
        let mut runs = vec![run("r0", "prod", &old)];
        for index in 1..=5 {
            runs.push(run(
                &format!("r{index}"),
                "prod",
                &[("db", "db-available", 1500)],
            ));
        }
        let history = WaitHistory::of(&runs, &Stack::journaled("prod"));
        assert_eq!(
            history.expected("db", "db-available"),
            Some(Duration::from_secs(1500))
        );
    }
}
