//! The read-only half of planning: ask each step kind what it would do, through Describe/
//! List/Get calls only, and fill the plan's actions, facts and problems.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::Cloud;
use crate::journal::Values;
use crate::journal::state_store::Succeeded;
use crate::playbook::resolve::{Scope, resolve_step};
use crate::playbook::{Reference, StepSpec};
use crate::runtime::RunFacts;
use crate::steps::{Action, PlanContext, StepError, StepKinds, StepPlan};

use super::{Cause, Plan, PlanProblem, fill};

/// What the survey needs beyond the plan.
pub struct SurveyInput<'a> {
    /// The facts of the run being planned.
    pub facts: &'a RunFacts,
    /// Input values (secrets exposed only to resolve parameters).
    pub inputs: &'a Values,
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    /// Step kinds.
    pub kinds: &'a StepKinds,
    /// Where planning may keep local files (see [`PlanContext::plan_cache`]).
    pub plan_cache: Option<std::path::PathBuf>,
    /// What earlier runs of the stack journaled for each step they finished: a step whose
    /// plan adopts its resources is expected to give the same outputs, and later steps are
    /// planned with them (see [`expected`]).
    pub expected: BTreeMap<String, Succeeded>,
    /// The AWS accounts the run must act in (the playbook's `account_id`, the account a
    /// resumed run started in): acting in another is a plan problem.
    pub accounts: Vec<ExpectedAccount>,
}

/// An AWS account the run must act in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAccount {
    /// The account id.
    pub account: String,
    /// Why, as the message ends it before the account: "the playbook's `account_id`
    /// (file:line) names", "run `R` started in".
    pub because: String,
}

/// Fill every non-skipped step of `plan` by asking its kind. The steps of one wave (none
/// needs another) are asked at the same time, the waves one after the other: outputs a kind
/// already knows at plan time (a resolved commit and its checkout) are passed on to the
/// later waves' plans. The kinds' calls are read-only.
pub async fn survey(plan: &mut Plan, input: &SurveyInput<'_>) {
    if !identify(plan, input).await {
        return;
    }
    let mut outputs: BTreeMap<String, Values> = plan
        .steps
        .iter()
        .filter(|step| step.action == Action::Skip)
        .map(|step| (step.id.clone(), step.outputs.clone()))
        .collect();
    for wave in plan.waves.clone() {
        let pending: Vec<(String, StepSpec, Values)> = wave
            .iter()
            .filter_map(|id| plan.step(id))
            .filter(|step| step.action != Action::Skip)
            .map(|step| (step.id.clone(), step.spec.clone(), step.pins.clone()))
            .collect();
        let mut asked = tokio::task::JoinSet::new();
        let mut unknown: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
        for (index, (id, spec, pins)) in pending.into_iter().enumerate() {
            let Some(kind) = input.kinds.find(&spec.kind.value) else {
                continue;
            };
            let facts = input.facts;
            let scope = Scope {
                inputs: input.inputs,
                outputs: &outputs,
                source_region: &facts.source_region,
                target_region: &facts.target_region,
                run_id: facts.run_id.as_deref(),
                playbook_name: &facts.playbook_name,
            };
            let resolved = resolve_step(&spec, &scope);
            let context = PlanContext::new(
                facts,
                &id,
                pins,
                input.cloud.clone(),
                input.plan_cache.clone(),
            );
            unknown.insert(id.clone(), resolved.unknown.clone());
            let params = resolved.known_only();
            asked.spawn(async move {
                let result = kind.plan(&context, &params).await;
                (index, id, result)
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = asked.join_next().await {
            match answer {
                Ok(answer) => answers.push(answer),
                // Nothing is ever aborted: only a kind's bug gets here, as it would have
                // when asked in place.
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        // Recorded in the wave's order, as one after the other would.
        answers.sort_by_key(|(index, _, _)| *index);
        for (_, id, result) in answers {
            let unknown = unknown.remove(&id).unwrap_or_default();
            let mut known = record(plan, &id, &unknown, result);
            if let Some(step) = plan.steps.iter_mut().find(|step| step.id == id)
                && step.action == Action::Adopt
                && let Some(journaled) = input.expected.get(&id)
                && let Some(merged) = expected(known.as_ref(), journaled)
            {
                step.details.push((
                    "outputs".into(),
                    format!("as run `{}` left them", journaled.run_id),
                ));
                known = Some(merged);
            }
            if let Some(known) = known {
                // Known before the step runs: later waves are planned with them.
                outputs.insert(id, known);
            }
        }
    }
}

/// The outputs a step whose plan adopts its resources will give, for planning the steps
/// after it: those an earlier run of the stack journaled when it finished the step, unless
/// they contradict what the plan found (`known`, e.g. another VPC id): then only `known`.
/// Only the plan uses them; the step's apply reports what it really finds.
fn expected(known: Option<&Values>, journaled: &Succeeded) -> Option<Values> {
    let Some(known) = known else {
        return Some(journaled.outputs.clone());
    };
    let agrees = known
        .iter()
        .all(|(key, value)| journaled.outputs.get(key).is_none_or(|old| old == value));
    agrees.then(|| {
        let mut merged = journaled.outputs.clone();
        merged.extend(known.clone());
        merged
    })
}

/// Find who the run acts as, once, before anything else is asked of AWS. Without usable
/// credentials (missing, expired) nothing else can be planned: one problem with the login
/// hint, instead of the same error from every step. Returns whether to go on.
async fn identify(plan: &mut Plan, input: &SurveyInput<'_>) -> bool {
    let calls_aws = plan
        .steps
        .iter()
        .any(|step| step.action != Action::Skip && calls_aws(&step.kind));
    if !calls_aws {
        return true;
    }
    match input
        .cloud
        .caller_identity(&input.facts.target_region)
        .await
    {
        Ok(identity) => {
            for expected in &input.accounts {
                if expected.account != identity.account {
                    plan.problems.push(PlanProblem {
                        step: None,
                        message: format!(
                            "the credentials act as {} in AWS account {}, but {} account {}",
                            identity.arn, identity.account, expected.because, expected.account
                        ),
                        cause: Cause::WrongAccount,
                    });
                }
            }
            let wrong = plan
                .problems
                .iter()
                .any(|problem| problem.cause == Cause::WrongAccount);
            plan.identity = Some(identity);
            if wrong {
                // Nothing else is asked of an account the run must not touch.
                not_planned(plan);
            }
            !wrong
        }
        Err(error) => {
            let credentials = error.missing_credentials;
            plan.problems.push(PlanProblem {
                step: None,
                message: format!("cannot tell who the run would act as: {error}"),
                cause: if credentials {
                    Cause::NoCredentials
                } else {
                    Cause::Other
                },
            });
            if credentials {
                not_planned(plan);
            }
            !credentials
        }
    }
}

/// Mark every step still to plan as not planned, because of a problem of the whole run.
fn not_planned(plan: &mut Plan) {
    for step in plan
        .steps
        .iter_mut()
        .filter(|step| step.action != Action::Skip)
    {
        step.summary = "not planned (see the problem below)".to_string();
    }
}

/// Whether steps of `kind` call AWS (and so need credentials): the AWS kinds, the DNS
/// cutover (Route 53) and the deploy (ECR, Secrets Manager). Fetching sources and smoke
/// checks do not.
fn calls_aws(kind: &str) -> bool {
    kind.starts_with("aws.") || kind == "dns.cutover" || kind == "k8s.apply"
}

/// Record what a kind's planning found for step `id` (`unknown`: the references not known
/// yet); the outputs it already knows, if any.
fn record(
    plan: &mut Plan,
    id: &str,
    unknown: &[Reference],
    result: Result<StepPlan, StepError>,
) -> Option<Values> {
    let known_after_apply = || {
        unknown
            .iter()
            .map(|reference| format!("${{{reference}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match result {
        Ok(mut found) => {
            if !unknown.is_empty() {
                found
                    .details
                    .push(("known after apply".into(), known_after_apply()));
            }
            let known = (!found.outputs.is_empty()).then(|| found.outputs.clone());
            fill(plan, id, found);
            known
        }
        Err(StepError::Params(_)) if !unknown.is_empty() => {
            // A parameter it cannot do without comes from a step that has not run.
            let found = StepPlan::new(
                Action::Unknown,
                "depends on outputs not known until earlier steps run",
            )
            .detail("known after apply", known_after_apply());
            fill(plan, id, found);
            None
        }
        Err(error) => {
            let mut found = StepPlan::new(Action::Unknown, "could not be planned");
            found.details.push(("error".into(), error.to_string()));
            fill(plan, id, found);
            let cause = match &error {
                StepError::Cloud(cloud) if cloud.missing_credentials => Cause::NoCredentials,
                _ => Cause::Other,
            };
            plan.problems.push(PlanProblem {
                step: Some(id.to_string()),
                message: format!("planning failed: {error}"),
                cause,
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_string(), serde_json::json!(value)))
            .collect()
    }

    #[test]
    fn journaled_outputs_fill_in_unless_the_plan_found_otherwise() {
        let journaled = Succeeded {
            run_id: "r1".into(),
            outputs: values(&[("vpc_id", "vpc-1"), ("subnet", "s-1")]),
        };
        assert_eq!(expected(None, &journaled), Some(journaled.outputs.clone()));
        let same = values(&[("vpc_id", "vpc-1"), ("zones", "a")]);
        assert_eq!(
            expected(Some(&same), &journaled),
            Some(values(&[
                ("vpc_id", "vpc-1"),
                ("subnet", "s-1"),
                ("zones", "a")
            ]))
        );
        let other = values(&[("vpc_id", "vpc-2")]);
        assert_eq!(expected(Some(&other), &journaled), None);
    }
}
