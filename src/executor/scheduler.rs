//! Scheduling one run: start every step whose needs have succeeded (in playbook order, up
//! to the parallelism limit), collect each as it ends, stop scheduling on the first failure
//! (with `keep_going`: only the failed step's dependants, which never become ready) or a
//! stop signal, and journal the run's end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::task::{Id, JoinError, JoinSet};

use crate::journal::{Event, Outcome, Values};
use crate::plan::{Plan, PlannedStep};
use crate::playbook::resolve::{Scope, resolve_step};
use crate::runtime::ReportEvent;
use crate::steps::{Action, StepError};

use super::attempt::StepRun;
use super::{Executor, RunResult, StepFailure};

/// One step's attempts, ended.
struct Attempted {
    step: String,
    result: Result<Values, StepError>,
}

/// Where the run stands.
struct Schedule<'plan> {
    /// Steps in the order they are started when ready (playbook order).
    order: Vec<&'plan PlannedStep>,
    outputs: BTreeMap<String, Values>,
    done: BTreeSet<String>,
    running: BTreeSet<String>,
    tasks: JoinSet<Attempted>,
    task_steps: BTreeMap<Id, String>,
    failures: Vec<StepFailure>,
}

impl<'plan> Schedule<'plan> {
    fn new(plan: &'plan Plan) -> Self {
        let mut order: Vec<&PlannedStep> = plan.steps.iter().collect();
        order.sort_by_key(|step| step.position);
        let outputs: BTreeMap<String, Values> = plan
            .steps
            .iter()
            .filter(|step| step.action == Action::Skip)
            .map(|step| (step.id.clone(), step.outputs.clone()))
            .collect();
        Self {
            order,
            done: outputs.keys().cloned().collect(),
            outputs,
            running: BTreeSet::new(),
            tasks: JoinSet::new(),
            task_steps: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    fn is_ready(&self, step: &PlannedStep) -> bool {
        !self.done.contains(&step.id)
            && !self.running.contains(&step.id)
            && !self.failures.iter().any(|failure| failure.step == step.id)
            && step.needs.iter().all(|need| self.done.contains(need))
    }
}

/// Run every step of `plan` that it does not skip.
pub(super) async fn run(executor: &Executor, plan: &Plan) -> RunResult {
    let started = Instant::now();
    let mut schedule = Schedule::new(plan);
    executor.services.reporter.report(ReportEvent::RunStarted {
        run_id: executor.facts.run_id.clone().unwrap_or_default(),
        target: executor.facts.target_region.clone(),
        steps: plan.steps.len(),
        done: schedule.done.len(),
        resumed: plan.resumed,
    });
    loop {
        if !executor.services.cancel.is_cancelled() {
            start_ready(executor, &mut schedule);
        }
        let Some(joined) = schedule.tasks.join_next_with_id().await else {
            break;
        };
        match joined {
            Ok((_, attempted)) => settle(executor, &mut schedule, attempted),
            Err(error) => crashed(executor, &mut schedule, &error),
        }
    }
    finish(executor, plan, schedule, started)
}

/// Start the ready steps, up to the parallelism limit.
fn start_ready(executor: &Executor, schedule: &mut Schedule<'_>) {
    let ready: Vec<&PlannedStep> = schedule
        .order
        .iter()
        .copied()
        .filter(|step| schedule.is_ready(step))
        .collect();
    for step in ready {
        if schedule.running.len() >= executor.parallelism {
            break;
        }
        let run = step_run(executor, step, &schedule.outputs);
        let (pins, first_attempt) = (step.pins.clone(), step.attempts + 1);
        let id = step.id.clone();
        let handle = schedule.tasks.spawn(async move {
            let result = run.run(pins, first_attempt).await;
            Attempted { step: id, result }
        });
        schedule.running.insert(step.id.clone());
        schedule.task_steps.insert(handle.id(), step.id.clone());
    }
}

/// A step's attempts, with its parameters resolved against the outputs so far.
fn step_run(
    executor: &Executor,
    step: &PlannedStep,
    outputs: &BTreeMap<String, Values>,
) -> StepRun {
    let facts = &executor.facts;
    let scope = Scope {
        inputs: &executor.inputs,
        outputs,
        source_region: &facts.source_region,
        target_region: &facts.target_region,
        run_id: facts.run_id.as_deref(),
        playbook_name: &facts.playbook_name,
    };
    StepRun {
        id: step.id.clone(),
        kind: step.kind.clone(),
        step: executor.kinds.find(&step.kind),
        params: resolve_step(&step.spec, &scope).value,
        retry: step.spec.retry,
        timeout: step.spec.timeout,
        facts: facts.clone(),
        services: executor.services.clone(),
        planned: step.planned.clone(),
        waits_begun: step.waits_begun.clone(),
    }
}

/// A step's attempts ended: record its outputs, or stop the run on its failure.
fn settle(executor: &Executor, schedule: &mut Schedule<'_>, attempted: Attempted) {
    schedule.running.remove(&attempted.step);
    match attempted.result {
        Ok(outputs) => {
            schedule.done.insert(attempted.step.clone());
            schedule.outputs.insert(attempted.step, outputs);
        }
        Err(StepError::Interrupted) => {}
        Err(error) => {
            if !executor.keep_going {
                executor
                    .services
                    .cancel
                    .cancel(format!("step `{}` failed", attempted.step));
            }
            let kind = kind_of(schedule, &attempted.step);
            schedule.failures.push(StepFailure {
                step: attempted.step,
                kind,
                message: executor.redactor.scrub(&error.to_string()),
                error,
            });
        }
    }
}

/// A panic inside a step: the journal stays valid; stop the run.
fn crashed(executor: &Executor, schedule: &mut Schedule<'_>, error: &JoinError) {
    let step = schedule
        .task_steps
        .get(&error.id())
        .cloned()
        .unwrap_or_default();
    schedule.running.remove(&step);
    if !executor.keep_going {
        executor
            .services
            .cancel
            .cancel(format!("step `{step}` crashed"));
    }
    let kind = kind_of(schedule, &step);
    let error = StepError::Crashed(error.to_string());
    schedule.failures.push(StepFailure {
        step,
        kind,
        message: error.to_string(),
        error,
    });
}

fn kind_of(schedule: &Schedule<'_>, step: &str) -> String {
    schedule
        .order
        .iter()
        .find(|planned| planned.id == step)
        .map(|planned| planned.kind.clone())
        .unwrap_or_default()
}

/// Journal and report the run's end.
fn finish(executor: &Executor, plan: &Plan, schedule: Schedule<'_>, started: Instant) -> RunResult {
    let outcome = if !schedule.failures.is_empty() {
        Outcome::Failed
    } else if schedule.done.len() == plan.steps.len() {
        Outcome::Succeeded
    } else {
        Outcome::Interrupted
    };
    let services = &executor.services;
    if let Err(error) = services.journal.append(Event::RunFinished { outcome }) {
        services.reporter.report(ReportEvent::Notice {
            message: format!("warning: could not journal the run's end: {error}"),
        });
    }
    let elapsed = started.elapsed();
    services.reporter.report(ReportEvent::RunFinished {
        outcome: outcome.as_str().to_string(),
        elapsed_seconds: elapsed.as_secs_f64(),
    });
    RunResult {
        outcome,
        failures: schedule.failures,
        elapsed,
    }
}
