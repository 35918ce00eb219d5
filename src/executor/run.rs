//! Scheduling, attempts, retries and timeouts for one run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::cloud::Cloud;
use crate::journal::{Event, Journal, Outcome, RunState, Values};
use crate::playbook::resolve::{Scope, resolve_step};
use crate::playbook::{Playbook, StepSpec};
use crate::report::{ReportEvent, Reporter};
use crate::steps::context::QuestionClock;
use crate::steps::{Kinds, PollSettings, StepContext, StepError};

use super::Cancel;

/// Everything a run needs.
pub struct Executor {
    /// The playbook.
    pub playbook: Arc<Playbook>,
    /// Run id.
    pub run_id: String,
    /// Target region.
    pub target: String,
    /// Input values, secrets included (never journaled).
    pub inputs: Values,
    /// `--accept-rpo` given.
    pub accept_rpo: bool,
    /// Most steps running at once.
    pub parallelism: usize,
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    /// Step kinds.
    pub kinds: Arc<Kinds>,
    /// The run's journal.
    pub journal: Arc<Journal>,
    /// Where progress goes.
    pub reporter: Arc<dyn Reporter>,
    /// How waits poll.
    pub poll: PollSettings,
    /// The run's folder in the state directory.
    pub run_dir: std::path::PathBuf,
    /// The stop signal.
    pub cancel: Cancel,
    /// Secret values never to show in an error (serde and some cloud errors quote values).
    pub secrets: Vec<String>,
    /// Who answers a step's questions (the DNS cutover's): the terminal, or yes (`--yes`).
    pub confirmer: Arc<dyn crate::steps::context::Confirmer>,
}

/// Replaces secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// A redactor for these secrets.
    pub fn new(secrets: Vec<String>) -> Self {
        Self {
            secrets: Arc::new(secrets),
        }
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "<redacted>")
        })
    }
}

/// How a run went.
#[derive(Debug)]
pub struct RunResult {
    /// The outcome.
    pub outcome: Outcome,
    /// Steps that failed for good, with their error and hint.
    pub failures: Vec<Failure>,
    /// Wall time of this process's part.
    pub elapsed: Duration,
}

/// A step that failed.
#[derive(Debug)]
pub struct Failure {
    /// Step id.
    pub step: String,
    /// Step kind.
    pub kind: String,
    /// The error.
    pub error: String,
    /// What to do.
    pub hint: Option<String>,
}

struct Attempted {
    step: String,
    result: Result<Values, StepError>,
}

impl Executor {
    /// Run every step the journal does not show as succeeded.
    pub async fn run(&self, state: &RunState) -> RunResult {
        let started = Instant::now();
        let mut outputs: BTreeMap<String, Values> = state.outputs();
        let mut done: BTreeSet<String> = outputs.keys().cloned().collect();
        let mut running: BTreeSet<String> = BTreeSet::new();
        let mut failures = Vec::new();
        let mut tasks: JoinSet<Attempted> = JoinSet::new();
        let mut task_steps: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
        self.reporter.report(ReportEvent::RunStarted {
            run_id: self.run_id.clone(),
            target: self.target.clone(),
            steps: self.playbook.steps.len(),
            done: done.len(),
            resumed: state.resumes > 0 || !state.steps.is_empty(),
        });
        loop {
            if !self.cancel.is_cancelled() {
                for spec in &self.playbook.steps {
                    let id = &spec.id.value;
                    if running.len() >= self.parallelism.max(1) {
                        break;
                    }
                    let ready = !done.contains(id)
                        && !running.contains(id)
                        && spec.needs.iter().all(|need| done.contains(&need.value));
                    if !ready {
                        continue;
                    }
                    let first_attempt = state.step(id).map_or(0, |step| step.attempts) + 1;
                    let pins = state
                        .step(id)
                        .map(|step| step.pins.clone())
                        .unwrap_or_default();
                    let task = self.step_task(spec, &outputs, pins, first_attempt);
                    running.insert(id.clone());
                    let handle = tasks.spawn(task);
                    task_steps.insert(handle.id(), id.clone());
                }
            }
            let Some(joined) = tasks.join_next_with_id().await else {
                break;
            };
            let attempted = match joined {
                Ok((_, attempted)) => attempted,
                Err(error) => {
                    // A panic inside a step: the journal stays valid; stop the run.
                    let step = task_steps.get(&error.id()).cloned().unwrap_or_default();
                    running.remove(&step);
                    self.cancel.cancel(format!("step `{step}` crashed"));
                    let kind = self
                        .playbook
                        .step(&step)
                        .map(|spec| spec.kind.value.clone())
                        .unwrap_or_default();
                    failures.push(Failure {
                        step,
                        kind,
                        error: format!("internal error: {error}"),
                        hint: Some(
                            "please report this bug; `rebuild resume` retries the step".into(),
                        ),
                    });
                    continue;
                }
            };
            running.remove(&attempted.step);
            match attempted.result {
                Ok(step_outputs) => {
                    done.insert(attempted.step.clone());
                    outputs.insert(attempted.step, step_outputs);
                }
                Err(StepError::Interrupted) => {}
                Err(error) => {
                    let kind = self
                        .playbook
                        .step(&attempted.step)
                        .map(|spec| spec.kind.value.clone())
                        .unwrap_or_default();
                    self.cancel
                        .cancel(format!("step `{}` failed", attempted.step));
                    failures.push(Failure {
                        step: attempted.step,
                        kind,
                        hint: error.hint(),
                        error: Redactor::new(self.secrets.clone()).scrub(&error.to_string()),
                    });
                }
            }
        }
        let outcome = if !failures.is_empty() {
            Outcome::Failed
        } else if done.len() == self.playbook.steps.len() {
            Outcome::Succeeded
        } else {
            Outcome::Interrupted
        };
        if let Err(error) = self.journal.append(Event::RunFinished { outcome }) {
            self.reporter.report(ReportEvent::Notice {
                message: format!("warning: could not journal the run's end: {error}"),
            });
        }
        let elapsed = started.elapsed();
        self.reporter.report(ReportEvent::RunFinished {
            outcome: format!("{outcome:?}").to_lowercase(),
            elapsed_seconds: elapsed.as_secs_f64(),
        });
        RunResult {
            outcome,
            failures,
            elapsed,
        }
    }

    fn step_task(
        &self,
        spec: &StepSpec,
        outputs: &BTreeMap<String, Values>,
        pins: Values,
        first_attempt: u32,
    ) -> impl std::future::Future<Output = Attempted> + Send + 'static {
        let scope = Scope {
            inputs: &self.inputs,
            outputs,
            source_region: &self.playbook.source_region.value,
            target_region: &self.target,
            run_id: Some(&self.run_id),
            playbook_name: &self.playbook.name,
        };
        let params = resolve_step(spec, &scope).value;
        let spec = spec.clone();
        let journal = self.journal.clone();
        let kinds = self.kinds.clone();
        let redactor = Redactor::new(self.secrets.clone());
        let reporter = self.reporter.clone();
        let cancel = self.cancel.clone();
        let make_context = {
            let run_id = self.run_id.clone();
            let regions = (
                self.playbook.source_region.value.clone(),
                self.target.clone(),
            );
            let rpo = (self.playbook.rpo_limit, self.accept_rpo);
            let tags = self.playbook.tags.clone();
            let cloud: Arc<Cloud> = self.cloud.clone();
            let poll = self.poll;
            let run_dir = self.run_dir.clone();
            let journal = journal.clone();
            let reporter = reporter.clone();
            let cancel = cancel.clone();
            let confirmer = self.confirmer.clone();
            let step_id = spec.id.value.clone();
            move |pins: Values| {
                StepContext::new(
                    run_id.clone(),
                    step_id.clone(),
                    regions.clone(),
                    rpo,
                    tags.clone(),
                    cloud.clone(),
                    poll,
                    run_dir.clone(),
                    pins,
                    journal.clone(),
                    reporter.clone(),
                    cancel.clone(),
                )
                .with_confirmer(confirmer.clone())
            }
        };
        async move {
            let step = spec.id.value.clone();
            let result = attempt_loop(
                &spec,
                &params,
                pins,
                first_attempt,
                (&kinds, &redactor),
                &journal,
                &reporter,
                &cancel,
                make_context,
            )
            .await;
            Attempted { step, result }
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one step's attempts"
)]
async fn attempt_loop(
    spec: &StepSpec,
    params: &serde_json::Value,
    mut pins: Values,
    first_attempt: u32,
    (kinds, redactor): (&Kinds, &Redactor),
    journal: &Journal,
    reporter: &Arc<dyn Reporter>,
    cancel: &Cancel,
    make_context: impl Fn(Values) -> StepContext,
) -> Result<Values, StepError> {
    let id = spec.id.value.clone();
    let Some(kind) = kinds.find(&spec.kind.value) else {
        return Err(StepError::Params(format!(
            "unknown step kind `{}`",
            spec.kind.value
        )));
    };
    let last_attempt = first_attempt + spec.retry.attempts.saturating_sub(1);
    let mut attempt = first_attempt;
    loop {
        journal.append(Event::StepStarted {
            step: id.clone(),
            attempt,
        })?;
        reporter.report(ReportEvent::StepStarted {
            step: id.clone(),
            kind: spec.kind.value.clone(),
            attempt,
        });
        let started = Instant::now();
        let context = make_context(pins.clone());
        let result = match spec.timeout {
            Some(limit) => {
                within(
                    limit,
                    &context.question_clock(),
                    kind.apply(&context, params),
                )
                .await
            }
            None => kind.apply(&context, params).await,
        };
        // Keep what this attempt pinned for the next one.
        pins = context.pins();
        match result {
            Ok(outputs) => {
                journal.append(Event::StepSucceeded {
                    step: id.clone(),
                    attempt,
                    outputs: outputs.clone(),
                })?;
                reporter.report(ReportEvent::StepSucceeded {
                    step: id.clone(),
                    elapsed_seconds: started.elapsed().as_secs_f64(),
                });
                crate::failpoint::hit(&format!("{id}/succeeded"));
                return Ok(outputs);
            }
            Err(StepError::Interrupted) => {
                journal.append(Event::StepInterrupted {
                    step: id.clone(),
                    attempt,
                    reason: cancel.reason().unwrap_or_else(|| "stopping".into()),
                })?;
                reporter.report(ReportEvent::StepInterrupted { step: id.clone() });
                return Err(StepError::Interrupted);
            }
            Err(error) => {
                let retryable = error.is_retryable();
                let will_retry = retryable && attempt < last_attempt && !cancel.is_cancelled();
                journal.append(Event::StepFailed {
                    step: id.clone(),
                    attempt,
                    error: redactor.scrub(&error.to_string()),
                    retryable,
                    will_retry,
                })?;
                if !will_retry {
                    reporter.report(ReportEvent::StepFailed {
                        step: id.clone(),
                        error: redactor.scrub(&error.to_string()),
                    });
                    return Err(error);
                }
                let exponent = attempt - first_attempt;
                let delay = spec
                    .retry
                    .backoff
                    .saturating_mul(2u32.saturating_pow(exponent.min(10)))
                    .mul_f64(0.75 + fastrand::f64() * 0.5);
                reporter.report(ReportEvent::StepRetrying {
                    step: id.clone(),
                    attempt,
                    error: redactor.scrub(&error.to_string()),
                    delay_seconds: delay.as_secs_f64(),
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => {
                        journal.append(Event::StepInterrupted {
                            step: id.clone(),
                            attempt,
                            reason: cancel.reason().unwrap_or_else(|| "stopping".into()),
                        })?;
                        reporter.report(ReportEvent::StepInterrupted { step: id.clone() });
                        return Err(StepError::Interrupted);
                    }
                }
                attempt += 1;
            }
        }
    }
}

/// Run one attempt for at most `limit`, not counting the time its questions wait for an
/// answer (the DNS cutover's confirmation): a person reading the question does not make
/// the step time out.
pub(super) async fn within(
    limit: Duration,
    questions: &QuestionClock,
    attempt: impl std::future::Future<Output = Result<Values, StepError>>,
) -> Result<Values, StepError> {
    let started = tokio::time::Instant::now();
    tokio::pin!(attempt);
    loop {
        let now = tokio::time::Instant::now();
        let mut deadline = started + limit + questions.waited();
        if questions.asking() {
            // The deadline moves on while the question waits: look again in a while.
            deadline = deadline.max(now + Duration::from_secs(1));
        }
        tokio::select! {
            result = &mut attempt => return result,
            () = tokio::time::sleep_until(deadline) => {
                if !questions.asking()
                    && started + limit + questions.waited() <= tokio::time::Instant::now()
                {
                    return Err(StepError::Timeout(limit));
                }
            }
        }
    }
}
