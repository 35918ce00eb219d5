//! The facts of a run: who it is (run id, playbook), where (source and target regions),
//! what it promised (RPO limit, `--accept-rpo`) and how its resources are tagged. Built
//! once per run and shared, read-only, by every step's context.

use std::collections::BTreeMap;
use std::time::Duration;

/// Tag key naming the run that created a resource.
pub const TAG_RUN_ID: &str = "rebuild:run-id";
/// Tag key naming the stack a resource belongs to (see [`crate::stack`]).
pub const TAG_STACK: &str = "rebuild:stack";
/// Tag key naming the step that created a resource.
pub const TAG_STEP: &str = "rebuild:step";
/// Tag key naming the resource's role inside its step (e.g. `public-a`).
pub const TAG_NAME: &str = "rebuild:name";

/// What every step of a run may know about the run.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The run's id (`None` while planning a run that has not started).
    pub run_id: Option<String>,
    /// The playbook's name.
    pub playbook_name: String,
    /// The stack the run works on (tagged on every resource).
    pub stack: String,
    /// The region that failed.
    pub source_region: String,
    /// The region being rebuilt in.
    pub target_region: String,
    /// The playbook's RPO limit.
    pub rpo_limit: Option<Duration>,
    /// `--accept-rpo` given (or pinned by the run).
    pub accept_rpo: bool,
    /// The playbook's tags, put on every resource.
    pub tags: BTreeMap<String, String>,
}

impl RunFacts {
    /// Tags for a resource named `name` within step `step`: the playbook's tags, `Name`,
    /// `rebuild:stack`, `rebuild:run-id`, `rebuild:step` and `rebuild:name`. (Resources
    /// are still found by their run's tags; the stack's tag is what adopting a stack's
    /// resources across runs will look for.)
    pub fn tags_for(&self, step: &str, name: &str) -> Vec<(String, String)> {
        let run_id = self.run_id.clone().unwrap_or_default();
        let mut tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        tags.push(("Name".into(), format!("{step}-{name}-{run_id}")));
        tags.push((TAG_STACK.into(), self.stack.clone()));
        tags.push((TAG_RUN_ID.into(), run_id));
        tags.push((TAG_STEP.into(), step.into()));
        tags.push((TAG_NAME.into(), name.into()));
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_stack_the_run_the_step_and_the_resource() {
        let facts = RunFacts {
            run_id: Some("r1".into()),
            stack: "region-rebuild@ap-southeast-1".into(),
            tags: BTreeMap::from([("team".to_string(), "platform".to_string())]),
            ..RunFacts::default()
        };
        let tags = facts.tags_for("network", "vpc");
        assert_eq!(
            tags,
            vec![
                ("team".to_string(), "platform".to_string()),
                ("Name".to_string(), "network-vpc-r1".to_string()),
                (
                    TAG_STACK.to_string(),
                    "region-rebuild@ap-southeast-1".to_string()
                ),
                (TAG_RUN_ID.to_string(), "r1".to_string()),
                (TAG_STEP.to_string(), "network".to_string()),
                (TAG_NAME.to_string(), "vpc".to_string()),
            ]
        );
    }
}
