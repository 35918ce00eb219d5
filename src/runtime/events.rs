//! The vocabulary of progress: the events a run reports ([`ReportEvent`]) and the trait
//! that receives them ([`Reporter`]). The implementations that draw bars, print lines or
//! emit JSON live in `report/`, above the executor; steps and the executor only send.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::secret::Redactor;

/// Something worth telling the user about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReportEvent {
    /// The run begins (or resumes).
    RunStarted {
        /// Run id.
        run_id: String,
        /// Target region.
        target: String,
        /// Steps in the run.
        steps: usize,
        /// Steps already done (resume).
        done: usize,
        /// Whether this is a resume.
        resumed: bool,
    },
    /// An attempt of a step begins.
    StepStarted {
        /// Step id.
        step: String,
        /// Step kind.
        kind: String,
        /// Attempt number.
        attempt: u32,
    },
    /// A step did something worth a line.
    StepProgress {
        /// Step id.
        step: String,
        /// What.
        message: String,
    },
    /// A step waits on the cloud.
    StepWaiting {
        /// Step id.
        step: String,
        /// For what.
        waiting_for: String,
    },
    /// An attempt failed with a retryable error; another follows.
    StepRetrying {
        /// Step id.
        step: String,
        /// The failed attempt.
        attempt: u32,
        /// The error.
        error: String,
        /// Delay before the next attempt, seconds.
        delay_seconds: f64,
    },
    /// A step succeeded.
    StepSucceeded {
        /// Step id.
        step: String,
        /// Time taken, seconds.
        elapsed_seconds: f64,
    },
    /// A step failed for good.
    StepFailed {
        /// Step id.
        step: String,
        /// The error.
        error: String,
    },
    /// A step stopped at a safe point.
    StepInterrupted {
        /// Step id.
        step: String,
    },
    /// A notice for the operator.
    Notice {
        /// The text.
        message: String,
    },
    /// This process's part of the run ended.
    RunFinished {
        /// `succeeded`, `failed` or `interrupted`.
        outcome: String,
        /// Time taken, seconds.
        elapsed_seconds: f64,
    },
}

/// Receives run events.
pub trait Reporter: Send + Sync {
    /// Handle one event.
    fn report(&self, event: ReportEvent);

    /// Run `work` with the display held still (progress bars hidden), e.g. to ask a
    /// question on the terminal.
    fn suspend(&self, work: &mut dyn FnMut()) {
        work();
    }
}

/// Discards everything (tests).
#[derive(Debug, Default)]
pub struct SilentReporter;

impl Reporter for SilentReporter {
    fn report(&self, _event: ReportEvent) {}
}

/// A reporter that scrubs the run's secrets from every event before passing it on: the
/// boundary no secret crosses on its way to the terminal or a machine.
pub struct RedactingReporter {
    inner: Arc<dyn Reporter>,
    redactor: Redactor,
}

impl RedactingReporter {
    /// Guard `inner` with `redactor`.
    pub fn wrap(inner: Arc<dyn Reporter>, redactor: Redactor) -> Arc<dyn Reporter> {
        Arc::new(Self { inner, redactor })
    }
}

impl Reporter for RedactingReporter {
    fn report(&self, event: ReportEvent) {
        let event = self.redactor.scrub_data(event);
        // Every progress event also goes to the debug log, scrubbed the same way.
        tracing::info!(target: "rebuild::progress", event = ?event);
        self.inner.report(event);
    }

    fn suspend(&self, work: &mut dyn FnMut()) {
        self.inner.suspend(work);
    }
}
