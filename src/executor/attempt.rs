//! One step's attempts: journal the start, run `apply` (within the step's timeout), journal
//! the outcome, and retry what the cloud marks retryable after a backoff with jitter —
//! until it succeeds, fails for good, runs out of attempts or the run stops. Errors go to
//! the journal and the reporter as they are: both scrub the run's secrets at their door.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::journal::{Event, Values};
use crate::playbook::RetryPolicy;
use crate::runtime::{Backoff, ReportEvent, RunFacts};
use crate::steps::{Step, StepContext, StepError, StepServices};
use tracing::Instrument;

use super::timeout::within;

/// Everything one step's attempts need.
pub(super) struct StepRun {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) step: Option<Arc<dyn Step>>,
    pub(super) params: serde_json::Value,
    pub(super) retry: RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) facts: Arc<RunFacts>,
    pub(super) services: StepServices,
    pub(super) planned: Values,
    /// The waits an earlier attempt began and did not finish (see
    /// [`StepContext::continuing`]).
    pub(super) waits_begun: BTreeMap<String, jiff::Timestamp>,
}

/// What to do after a failed attempt.
enum AfterFailure {
    Retry,
    GiveUp,
}

impl StepRun {
    /// Attempt the step until it succeeds or fails for good; `pins` are those of earlier
    /// attempts, `first_attempt` the number of this process's first one.
    pub(super) async fn run(
        self,
        mut pins: Values,
        first_attempt: u32,
    ) -> Result<Values, StepError> {
        let Some(step) = self.step.clone() else {
            return Err(StepError::Params(format!(
                "unknown step kind `{}`",
                self.kind
            )));
        };
        let last_attempt = first_attempt + self.retry.attempts.saturating_sub(1);
        let mut attempt = first_attempt;
        loop {
            self.started(attempt)?;
            let started = Instant::now();
            let context = StepContext::new(
                self.facts.clone(),
                &self.id,
                self.services.clone(),
                self.planned.clone(),
                pins.clone(),
            )
            .continuing(if attempt == first_attempt {
                self.waits_begun.clone()
            } else {
                // A failed attempt's resources may be made anew.
                BTreeMap::new()
            });
            // The debug log's lines (each AWS call) name the step and attempt they belong to.
            let span = tracing::info_span!("step", id = %self.id, attempt);
            let applying = step.apply(&context, &self.params).instrument(span);
            let result = match self.timeout {
                Some(limit) => within(limit, &context.question_clock(), applying).await,
                None => applying.await,
            };
            // Keep what this attempt pinned for the next one.
            pins = context.pins();
            match result {
                Ok(outputs) => return self.succeeded(attempt, outputs, started),
                Err(StepError::Interrupted) => return Err(self.interrupted(attempt)?),
                Err(error) => match self.failed(attempt, &error, last_attempt)? {
                    AfterFailure::GiveUp => return Err(error),
                    AfterFailure::Retry => self.back_off(attempt, first_attempt, &error).await?,
                },
            }
            attempt += 1;
        }
    }

    fn started(&self, attempt: u32) -> Result<(), StepError> {
        self.services.journal.append(Event::StepStarted {
            step: self.id.clone(),
            attempt,
        })?;
        self.services.reporter.report(ReportEvent::StepStarted {
            step: self.id.clone(),
            kind: self.kind.clone(),
            attempt,
        });
        Ok(())
    }

    fn succeeded(
        &self,
        attempt: u32,
        outputs: Values,
        started: Instant,
    ) -> Result<Values, StepError> {
        self.services.journal.append(Event::StepSucceeded {
            step: self.id.clone(),
            attempt,
            outputs: outputs.clone(),
        })?;
        self.services.reporter.report(ReportEvent::StepSucceeded {
            step: self.id.clone(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
        });
        crate::failpoint::hit(&format!("{}/succeeded", self.id));
        Ok(outputs)
    }

    /// Journal and report that the step stopped at a safe point; the error to return.
    fn interrupted(&self, attempt: u32) -> Result<StepError, StepError> {
        self.services.journal.append(Event::StepInterrupted {
            step: self.id.clone(),
            attempt,
            reason: self
                .services
                .cancel
                .reason()
                .unwrap_or_else(|| "stopping".into()),
        })?;
        self.services.reporter.report(ReportEvent::StepInterrupted {
            step: self.id.clone(),
        });
        Ok(StepError::Interrupted)
    }

    fn failed(
        &self,
        attempt: u32,
        error: &StepError,
        last_attempt: u32,
    ) -> Result<AfterFailure, StepError> {
        let retryable = error.is_retryable();
        let will_retry =
            retryable && attempt < last_attempt && !self.services.cancel.is_cancelled();
        self.services.journal.append(Event::StepFailed {
            step: self.id.clone(),
            attempt,
            error: error.to_string(),
            retryable,
            will_retry,
        })?;
        if will_retry {
            return Ok(AfterFailure::Retry);
        }
        self.services.reporter.report(ReportEvent::StepFailed {
            step: self.id.clone(),
            error: error.to_string(),
        });
        Ok(AfterFailure::GiveUp)
    }

    /// Wait before the next attempt; a stop signal while waiting interrupts the step.
    async fn back_off(
        &self,
        attempt: u32,
        first_attempt: u32,
        error: &StepError,
    ) -> Result<(), StepError> {
        let delay = Backoff::retries(self.retry.backoff).delay(attempt - first_attempt);
        self.services.reporter.report(ReportEvent::StepRetrying {
            step: self.id.clone(),
            attempt,
            error: error.to_string(),
            delay_seconds: delay.as_secs_f64(),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.services.cancel.cancelled() => Err(self.interrupted(attempt)?),
        }
    }
}
