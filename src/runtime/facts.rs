//! The facts of a run: who it is (run id, playbook), where (source and target regions),
//! what it promised (RPO limit, `--accept-rpo`) and how its resources are tagged. Built
//! once per run and shared, read-only, by every step's context.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::stack::{OwnedBy, Stack};

/// Tag key naming the run that created a resource.
pub const TAG_RUN_ID: &str = "rebuild:run-id";
/// Tag key naming the stack a resource belongs to (see [`crate::stack`]).
pub const TAG_STACK: &str = "rebuild:stack";
/// Tag key naming the step that created a resource.
pub const TAG_STEP: &str = "rebuild:step";
/// Tag key naming the resource's role inside its step (e.g. `public-a`).
pub const TAG_NAME: &str = "rebuild:name";

/// Whose resources a step finds and adopts: those whose tag `tag` has the value `value`
/// (`rebuild:stack` = the stack, or for an old run `rebuild:run-id` = the run), and how
/// it names the ones that need a name (an EKS cluster, an RDS instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    tag: &'static str,
    value: String,
    name_part: String,
}

impl Owner {
    /// The owner a stack is: resources tagged `rebuild:stack` = `stack`, names from it.
    pub fn stack(stack: &Stack) -> Self {
        Self {
            tag: TAG_STACK,
            value: stack.to_string(),
            name_part: stack.name_part(),
        }
    }

    /// The owner an old run is: resources tagged `rebuild:run-id` = `run_id`, named after it.
    pub fn run(run_id: &str) -> Self {
        Self {
            tag: TAG_RUN_ID,
            value: run_id.to_string(),
            name_part: run_id.to_string(),
        }
    }

    /// The tag key ownership is judged by.
    pub fn tag(&self) -> &'static str {
        self.tag
    }

    /// The value that tag has on an owned resource.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a resource whose owning tag has the value `tagged` is this owner's.
    pub fn owns(&self, tagged: Option<&str>) -> bool {
        tagged == Some(self.value.as_str())
    }

    /// The deterministic name of step `step`'s named resource: `STEP-STACK` (the stack's
    /// name as AWS names allow it, see [`Stack::name_part`]), or `STEP-RUN_ID` for an old
    /// run.
    pub fn resource_name(&self, step: &str) -> String {
        format!("{step}-{}", self.name_part)
    }

    /// The owner in words, for messages: "stack `s`" or "run `r`".
    pub fn describe(&self) -> String {
        if self.tag == TAG_STACK {
            format!("stack `{}`", self.value)
        } else {
            format!("run `{}`", self.value)
        }
    }
}

/// What every step of a run may know about the run.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The run's id (`None` while planning a run that has not started).
    pub run_id: Option<String>,
    /// The playbook's name.
    pub playbook_name: String,
    /// The stack the run works on (tagged on every resource).
    pub stack: String,
    /// Whose resources the run adopts: its stack's, or (a run from before that) its own.
    pub owned_by: OwnedBy,
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
    /// Whose resources the run's steps find and adopt (see [`Owner`]).
    pub fn owner(&self) -> Owner {
        match (self.owned_by, &self.run_id) {
            (OwnedBy::Run, Some(run_id)) => Owner::run(run_id),
            // An old run is always planned and applied with its id; without one it can
            // only be a new run, which its stack owns.
            _ => Owner::stack(&Stack::journaled(&self.stack)),
        }
    }

    /// Tags for a resource named `name` within step `step`: the playbook's tags, `Name`,
    /// `rebuild:stack`, `rebuild:run-id`, `rebuild:step` and `rebuild:name`. A step finds
    /// its resources by the stack's tag (see [`Owner`]); the run's says which run made it.
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
