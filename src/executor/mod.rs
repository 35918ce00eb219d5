//! The executor: carries out a [`Plan`] on tokio — every ready step concurrently up to the
//! parallelism limit ([`scheduler`]) — with per-step timeouts ([`timeout`]) and retries
//! ([`attempt`]), journaling each transition before the next side effect. On a failure or
//! a signal it schedules nothing new (with `--keep-going`, a failure only holds back the
//! steps that depend on the failed one), lets running steps reach a safe point, and reports
//! how it went ([`RunResult`]); the commands turn that into the resume command.

mod attempt;
mod scheduler;
#[cfg(test)]
mod tests;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

use crate::journal::{Outcome, Values};
use crate::plan::Plan;
use crate::runtime::RunFacts;
use crate::secret::Redactor;
use crate::steps::{StepError, StepKinds, StepServices};

/// Runs a plan's steps.
pub struct Executor {
    facts: Arc<RunFacts>,
    services: StepServices,
    kinds: Arc<StepKinds>,
    inputs: Arc<Values>,
    redactor: Redactor,
    parallelism: usize,
    keep_going: bool,
}

/// How a run went.
#[derive(Debug)]
pub struct RunResult {
    /// The outcome.
    pub outcome: Outcome,
    /// Steps that failed for good.
    pub failures: Vec<StepFailure>,
    /// Wall time of this process's part.
    pub elapsed: Duration,
}

/// A step that failed for good.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}` ({kind}) failed: {message}")]
pub struct StepFailure {
    /// The step's id.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// Why, as shown: the error with every secret scrubbed.
    pub message: String,
    /// Why.
    #[source]
    pub error: StepError,
}

impl Executor {
    /// An executor for the run `facts` describes. `inputs` hold the secrets parameters
    /// may reference (exposed only when resolving them); `redactor` scrubs every text
    /// that reaches the journal or the reporter.
    pub fn new(
        facts: Arc<RunFacts>,
        services: StepServices,
        kinds: Arc<StepKinds>,
        inputs: Values,
        redactor: Redactor,
        parallelism: usize,
    ) -> Self {
        Self {
            facts,
            services,
            kinds,
            inputs: Arc::new(inputs),
            redactor,
            parallelism: parallelism.max(1),
            keep_going: false,
        }
    }

    /// Whether a step that fails for good leaves the steps that do not depend on it
    /// running and starting (`--keep-going`); otherwise the first failure stops the run.
    #[must_use]
    pub fn keep_going(mut self, keep_going: bool) -> Self {
        self.keep_going = keep_going;
        self
    }

    /// Carry out `plan`: run every step it does not skip.
    pub async fn run(&self, plan: &Plan) -> RunResult {
        scheduler::run(self, plan).await
    }
}
