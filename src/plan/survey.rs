//! The read-only half of planning: ask each step kind what it would do, through Describe/
//! List/Get calls only, and fill the plan's actions, facts and problems.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::Cloud;
use crate::journal::{RunState, Values};
use crate::playbook::Playbook;
use crate::playbook::resolve::{Scope, resolve_step};
use crate::steps::{Action, Kinds, PlanContext, StepError, StepPlan};

use super::{Plan, PlanProblem, fill};

/// What the survey needs beyond the playbook.
pub struct SurveyInput<'a> {
    /// The playbook.
    pub playbook: &'a Playbook,
    /// Input values.
    pub inputs: &'a Values,
    /// The run being resumed, if any.
    pub state: Option<&'a RunState>,
    /// `--accept-rpo` given.
    pub accept_rpo: bool,
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    /// Step kinds.
    pub kinds: &'a Kinds,
    /// Where planning may keep local files (see [`PlanContext::cache_dir`]).
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Fill every non-skipped step of `plan` by asking its kind. Kinds are asked one after the
/// other in plan order; their calls are few and read-only. Outputs a kind already knows at
/// plan time (a resolved commit and its checkout) are passed on to the later steps' plans.
pub async fn survey(plan: &mut Plan, input: &SurveyInput<'_>) {
    let mut outputs: BTreeMap<String, Values> =
        input.state.map(RunState::outputs).unwrap_or_default();
    let ids: Vec<String> = plan
        .steps
        .iter()
        .filter(|step| step.action != Action::Skip)
        .map(|step| step.id.clone())
        .collect();
    for id in ids {
        let Some(spec) = input.playbook.step(&id) else {
            continue;
        };
        let Some(kind) = input.kinds.find(&spec.kind.value) else {
            continue;
        };
        let scope = Scope {
            inputs: input.inputs,
            outputs: &outputs,
            source_region: &input.playbook.source_region.value,
            target_region: &plan.target_region,
            run_id: plan.run_id.as_deref(),
            playbook_name: &input.playbook.name,
        };
        let resolved = resolve_step(spec, &scope);
        let pins = input
            .state
            .and_then(|state| state.step(&id))
            .map(|step| step.pins.clone())
            .unwrap_or_default();
        let context = PlanContext {
            run_id: plan.run_id.clone(),
            step_id: id.clone(),
            source_region: input.playbook.source_region.value.clone(),
            target_region: plan.target_region.clone(),
            rpo_limit: input.playbook.rpo_limit,
            accept_rpo: input.accept_rpo,
            pins,
            cloud: input.cloud.clone(),
            cache_dir: input.cache_dir.clone(),
        };
        match kind.plan(&context, &resolved.known_only()).await {
            Ok(mut found) => {
                if !resolved.unknown.is_empty() {
                    let names: Vec<String> = resolved
                        .unknown
                        .iter()
                        .map(|r| format!("${{{r}}}"))
                        .collect();
                    found
                        .details
                        .push(("known after apply".into(), names.join(", ")));
                }
                if !found.outputs.is_empty() {
                    // Known before the step runs: later steps are planned with them.
                    outputs.insert(id.clone(), found.outputs.clone());
                }
                fill(plan, &id, found);
            }
            Err(StepError::Params(_)) if !resolved.unknown.is_empty() => {
                // A parameter it cannot do without comes from a step that has not run.
                let names: Vec<String> = resolved
                    .unknown
                    .iter()
                    .map(|r| format!("${{{r}}}"))
                    .collect();
                let found = StepPlan::new(
                    Action::Unknown,
                    "depends on outputs not known until earlier steps run",
                )
                .detail("known after apply", names.join(", "));
                fill(plan, &id, found);
            }
            Err(error) => {
                let mut found = StepPlan::new(Action::Unknown, "could not be planned");
                found.details.push(("error".into(), error.to_string()));
                fill(plan, &id, found);
                plan.problems.push(PlanProblem {
                    step: Some(id.clone()),
                    message: format!("planning failed: {error}"),
                });
            }
        }
    }
}
