//! The critical path: the longest chain of `needs` when each step takes a given time. No
//! scheduler can finish a run sooner (with unlimited parallelism), so it is the lower bound
//! a run's wall time is measured against; the sum of all durations is what a runner that
//! does one step at a time pays. Pure: the durations come from the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::playbook::{Playbook, StepSpec};

/// The longest chain of a playbook's graph under given durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalPath {
    /// Its length: the earliest any run can end.
    pub length: Duration,
    /// Its steps, first to last.
    pub steps: Vec<String>,
    /// Every step's duration added up: a one-at-a-time runner's time.
    pub sum: Duration,
}

/// The critical path of `playbook` when each step takes `duration(step)`. Steps are taken
/// in dependency order (the playbook is validated, so acyclic); on a tie the earlier step
/// in the file is kept.
pub fn critical_path(
    playbook: &Playbook,
    duration: impl Fn(&StepSpec) -> Duration,
) -> CriticalPath {
    // Earliest finish of each step and the need it waited for last.
    let mut finish: BTreeMap<&str, (Duration, Option<&str>)> = BTreeMap::new();
    let mut sum = Duration::ZERO;
    for wave in super::waves(playbook) {
        for id in &wave {
            let Some(step) = playbook.step(id) else {
                continue;
            };
            let mut start = Duration::ZERO;
            let mut after = None;
            for need in &step.needs {
                if let Some((end, _)) = finish.get(need.value.as_str())
                    && (*end > start || after.is_none())
                {
                    start = *end;
                    after = Some(need.value.as_str());
                }
            }
            let took = duration(step);
            sum += took;
            finish.insert(step.id.value.as_str(), (start + took, after));
        }
    }
    let mut last: Option<(&str, Duration)> = None;
    for step in &playbook.steps {
        if let Some((end, _)) = finish.get(step.id.value.as_str())
            && last.is_none_or(|(_, longest)| *end > longest)
        {
            last = Some((step.id.value.as_str(), *end));
        }
    }
    let mut steps = Vec::new();
    let mut cursor = last.map(|(id, _)| id);
    while let Some(id) = cursor {
        steps.push(id.to_string());
        cursor = finish.get(id).and_then(|(_, after)| *after);
    }
    steps.reverse();
    CriticalPath {
        length: last.map_or(Duration::ZERO, |(_, end)| end),
        steps,
        sum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::KindSpec;

    const KINDS: &[KindSpec] = &[KindSpec::test_noop(&[])];

    fn playbook(steps: &str) -> Playbook {
        let text = format!("version: 1\nname: t\nsource_region: ap-southeast-2\nsteps:\n{steps}");
        crate::playbook::from_str(std::path::Path::new("t.yaml"), &text, KINDS)
            .unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    fn seconds(table: &'static [(&'static str, u64)]) -> impl Fn(&StepSpec) -> Duration {
        move |step| {
            let found = table.iter().find(|(id, _)| *id == step.id.value);
            Duration::from_secs(found.map_or(0, |(_, secs)| *secs))
        }
    }

    #[test]
    fn the_longest_chain_wins_and_parallel_branches_do_not_add_up() {
        // The default playbook's shape: the restore beside cluster → nodes.
        let playbook = playbook(
            "  - { id: network, kind: test.noop }\n\
             \x20 - { id: egress, kind: test.noop, needs: [network] }\n\
             \x20 - { id: database, kind: test.noop, needs: [network] }\n\
             \x20 - { id: cluster, kind: test.noop, needs: [network] }\n\
             \x20 - { id: nodes, kind: test.noop, needs: [cluster, egress] }\n\
             \x20 - { id: deploy, kind: test.noop, needs: [nodes, database] }\n",
        );
        let path = critical_path(
            &playbook,
            seconds(&[
                ("network", 1),
                ("egress", 2),
                ("database", 25),
                ("cluster", 12),
                ("nodes", 3),
                ("deploy", 4),
            ]),
        );
        assert_eq!(path.length, Duration::from_secs(30));
        assert_eq!(path.steps, ["network", "database", "deploy"]);
        assert_eq!(path.sum, Duration::from_secs(47));

        // A slower cluster moves the path.
        let path = critical_path(
            &playbook,
            seconds(&[
                ("database", 10),
                ("cluster", 12),
                ("nodes", 3),
                ("deploy", 1),
            ]),
        );
        assert_eq!(path.length, Duration::from_secs(16));
        assert_eq!(path.steps, ["network", "cluster", "nodes", "deploy"]);
    }

    #[test]
    fn independent_steps_and_an_empty_graph() {
        let playbook = playbook("  - { id: a, kind: test.noop }\n  - { id: b, kind: test.noop }\n");
        let path = critical_path(&playbook, seconds(&[("a", 3), ("b", 5)]));
        assert_eq!(path.steps, ["b"]);
        assert_eq!(path.length, Duration::from_secs(5));
        assert_eq!(path.sum, Duration::from_secs(8));
        let path = critical_path(&playbook, seconds(&[]));
        assert_eq!(path.length, Duration::ZERO);
        assert_eq!(path.steps, ["a"]);
    }
}
