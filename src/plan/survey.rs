//! The read-only half of planning: ask each step kind what it would do, through Describe/
//! List/Get calls only, and fill the plan's actions, facts and problems.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::Instrument;

use crate::cloud::Cloud;
use crate::journal::Values;
use crate::journal::state_store::Succeeded;
use crate::playbook::resolve::{Scope, resolve_step};
use crate::playbook::{Reference, StepSpec};
use crate::runtime::RunFacts;
use crate::steps::{Action, PlanContext, StepError, StepKinds, StepPlan};

use super::{Cause, Plan, PlanProblem, PlannedStep, fill};

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

/// Fill every non-skipped step of `plan` by asking its kind. A step is asked as soon as
/// every step whose outputs it uses has answered (not when a whole wave has, nor when the
/// steps it only runs after have: one slow kind delays only the steps that use what it
/// finds), so that outputs a kind already knows at plan time (a resolved commit and its
/// checkout) reach the later steps' plans. The kinds' calls are read-only. What they found
/// is recorded in the plan's step order, whatever order they answered in.
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
    let order = Order::of(plan);
    let mut answers: Vec<Option<Answer>> = (0..order.steps.len()).map(|_| None).collect();
    let mut waiting = order.waiting.clone();
    let mut asked = tokio::task::JoinSet::new();
    let ask =
        |asked: &mut tokio::task::JoinSet<_>, index: usize, outputs: &BTreeMap<String, Values>| {
            let (id, spec, pins) = &order.steps[index];
            let Some(kind) = input.kinds.find(&spec.kind.value) else {
                // Validation refuses unknown kinds: not asked, as if it knew nothing.
                return false;
            };
            let facts = input.facts;
            let scope = Scope {
                inputs: input.inputs,
                outputs,
                source_region: &facts.source_region,
                target_region: &facts.target_region,
                run_id: facts.run_id.as_deref(),
                playbook_name: &facts.playbook_name,
            };
            let resolved = resolve_step(spec, &scope);
            let context = PlanContext::new(
                facts,
                id,
                pins.clone(),
                input.cloud.clone(),
                input.plan_cache.clone(),
            );
            let unknown = resolved.unknown.clone();
            let params = resolved.known_only();
            // The debug log names the step of every call its plan makes, and how long it took.
            let span = tracing::debug_span!("plan", step = %id);
            asked.spawn(
                async move {
                    let started = std::time::Instant::now();
                    let result = kind.plan(&context, &params).await;
                    let took_ms = started.elapsed().as_millis();
                    tracing::debug!(took_ms, "planned");
                    (index, unknown, result)
                }
                .instrument(span),
            );
            true
        };
    // Steps whose needs have all answered, not asked yet.
    let mut ready: Vec<usize> = (0..order.steps.len())
        .filter(|index| waiting[*index] == 0)
        .collect();
    loop {
        while let Some(index) = ready.pop() {
            if !ask(&mut asked, index, &outputs) {
                order.answered(index, &mut waiting, &mut ready);
            }
        }
        let Some(answer) = asked.join_next().await else {
            break;
        };
        let (index, unknown, result) = match answer {
            Ok(answer) => answer,
            // Nothing is ever aborted: only a kind's bug gets here, as it would have when
            // asked in place.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        let id = &order.steps[index].0;
        let known = known_outputs(&result, input.expected.get(id));
        if let Some(known) = &known.outputs {
            // Known before the step runs: the steps after it are planned with them.
            outputs.insert(id.clone(), known.clone());
        }
        answers[index] = Some(Answer {
            unknown,
            result,
            journaled_run: known.journaled_run,
        });
        order.answered(index, &mut waiting, &mut ready);
    }
    for (index, answer) in answers.into_iter().enumerate() {
        let Some(answer) = answer else { continue };
        let id = &order.steps[index].0;
        record(plan, id, &answer.unknown, answer.result);
        if let Some(run) = answer.journaled_run
            && let Some(step) = plan.steps.iter_mut().find(|step| &step.id == id)
        {
            step.details
                .push(("outputs".into(), format!("as run `{run}` left them")));
        }
    }
}

/// The steps to ask, in the plan's order, and who waits for whom: a step waits for the
/// steps whose outputs its parameters use, as only their answers can change what it is
/// asked with (a step it only `needs`, for order, does not).
struct Order {
    /// (id, spec, pins) of each step to ask.
    steps: Vec<(String, StepSpec, Values)>,
    /// For each, how many of the steps whose outputs it uses are still to answer.
    waiting: Vec<usize>,
    /// For each, the steps that use its outputs.
    dependants: Vec<Vec<usize>>,
}

impl Order {
    fn of(plan: &Plan) -> Self {
        let asked: Vec<&PlannedStep> = plan
            .steps
            .iter()
            .filter(|step| step.action != Action::Skip)
            .collect();
        let position: BTreeMap<&str, usize> = asked
            .iter()
            .enumerate()
            .map(|(index, step)| (step.id.as_str(), index))
            .collect();
        let mut waiting = vec![0; asked.len()];
        let mut dependants = vec![Vec::new(); asked.len()];
        for (index, step) in asked.iter().enumerate() {
            // Skipped steps' outputs are known already: only the asked ones are waited for.
            let needs: BTreeSet<usize> = step
                .spec
                .uses_outputs_of()
                .iter()
                .filter_map(|need| position.get(need.as_str()).copied())
                .collect();
            waiting[index] = needs.len();
            for need in needs {
                dependants[need].push(index);
            }
        }
        let steps = asked
            .into_iter()
            .map(|step| (step.id.clone(), step.spec.clone(), step.pins.clone()))
            .collect();
        Self {
            steps,
            waiting,
            dependants,
        }
    }

    /// Step `index` answered: the steps that were waiting only for it are `ready`.
    fn answered(&self, index: usize, waiting: &mut [usize], ready: &mut Vec<usize>) {
        for &dependant in &self.dependants[index] {
            waiting[dependant] -= 1;
            if waiting[dependant] == 0 {
                ready.push(dependant);
            }
        }
    }
}

/// What a kind answered for one step.
struct Answer {
    /// The references it was planned without (not known until earlier steps run).
    unknown: Vec<Reference>,
    result: Result<StepPlan, StepError>,
    /// The run whose journaled outputs stand in for the ones the plan could not know.
    journaled_run: Option<String>,
}

/// The outputs a step's plan makes known to the steps after it.
struct Known {
    outputs: Option<Values>,
    /// The run whose journaled outputs they (partly) are ([`expected`]).
    journaled_run: Option<String>,
}

/// What the steps after a step can be planned with: the outputs its kind knew at plan
/// time; for a step whose plan adopts its resources, also those an earlier run of the
/// stack journaled when it finished it ([`expected`]).
fn known_outputs(result: &Result<StepPlan, StepError>, journaled: Option<&Succeeded>) -> Known {
    let Ok(found) = result else {
        return Known {
            outputs: None,
            journaled_run: None,
        };
    };
    let known = (!found.outputs.is_empty()).then(|| found.outputs.clone());
    if found.action == Action::Adopt
        && let Some(journaled) = journaled
        && let Some(merged) = expected(known.as_ref(), journaled)
    {
        return Known {
            outputs: Some(merged),
            journaled_run: Some(journaled.run_id.clone()),
        };
    }
    Known {
        outputs: known,
        journaled_run: None,
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
/// yet).
fn record(plan: &mut Plan, id: &str, unknown: &[Reference], result: Result<StepPlan, StepError>) {
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
            fill(plan, id, found);
        }
        Err(StepError::Params(_)) if !unknown.is_empty() => {
            // A parameter it cannot do without comes from a step that has not run.
            let found = StepPlan::new(
                Action::Unknown,
                "depends on outputs not known until earlier steps run",
            )
            .detail("known after apply", known_after_apply());
            fill(plan, id, found);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Requested, skeleton};
    use crate::playbook::KindSpec;
    use crate::stack::Stack;

    const KINDS: &[KindSpec] = &[KindSpec::test_noop(&["out"])];

    #[test]
    fn a_step_waits_for_the_steps_whose_outputs_it_uses_not_for_those_it_only_runs_after() {
        // `deploy` runs after `nodes` but uses only `cluster`'s output; `dns` uses
        // `deploy`'s; `nodes` uses `cluster`'s twice.
        let text = "name: t\nsource_region: ap-southeast-2\nsteps:\n\
            - {id: cluster, kind: test.noop}\n\
            - {id: nodes, kind: test.noop, needs: [cluster], with: {value: \"${steps.cluster.out}-${steps.cluster.out}\"}}\n\
            - {id: deploy, kind: test.noop, needs: [cluster, nodes], with: {value: \"${steps.cluster.out}\"}}\n\
            - {id: dns, kind: test.noop, needs: [deploy], with: {value: \"${steps.deploy.out}\"}}\n\
            - {id: smoke, kind: test.noop, needs: [dns]}\n";
        let playbook =
            crate::playbook::from_str(std::path::Path::new("t.yaml"), text, KINDS).unwrap();
        let plan = skeleton(
            &playbook,
            "ap-southeast-1",
            &Stack::default_for("t", "ap-southeast-1"),
            None,
            &Requested::default(),
        );
        let order = Order::of(&plan);
        let waits: BTreeMap<&str, usize> = order
            .steps
            .iter()
            .zip(&order.waiting)
            .map(|((id, ..), waiting)| (id.as_str(), *waiting))
            .collect();
        assert_eq!(
            waits,
            BTreeMap::from([
                ("cluster", 0),
                ("nodes", 1),
                ("deploy", 1),
                ("dns", 1),
                ("smoke", 0)
            ])
        );
        let index = |id: &str| order.steps.iter().position(|step| step.0 == id).unwrap();
        let mut ready = Vec::new();
        let mut waiting = order.waiting.clone();
        order.answered(index("cluster"), &mut waiting, &mut ready);
        // Both are asked once the cluster answers: the deploy does not wait for the nodes.
        ready.sort();
        let mut both = vec![index("nodes"), index("deploy")];
        both.sort();
        assert_eq!(ready, both);
    }

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
