//! Reporting: what the user sees while a run goes on. The executor sends [`ReportEvent`]s to
//! a [`Reporter`]; implementations draw progress bars on a terminal ([`progress`]), print
//! timestamped lines when stderr is not a terminal, or emit one JSON object per line on
//! stdout for machines. Rendering of plans and status lives in [`render`].

pub mod progress;
pub mod render;

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

pub use crate::runtime::{ReportEvent, Reporter, SilentReporter};

/// One JSON object per line on stdout.
#[derive(Debug, Default)]
pub struct JsonReporter {
    lock: Mutex<()>,
}

impl Reporter for JsonReporter {
    fn report(&self, event: ReportEvent) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut value = serde_json::to_value(&event).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "at".into(),
                serde_json::Value::String(jiff::Timestamp::now().to_string()),
            );
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{value}");
        let _ = stdout.flush();
    }
}

/// Plain timestamped lines on stderr (when it is not a terminal).
#[derive(Debug, Default)]
pub struct LineReporter {
    lock: Mutex<()>,
}

impl Reporter for LineReporter {
    fn report(&self, event: ReportEvent) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = jiff::Timestamp::now().strftime("%H:%M:%S");
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{now} {}", describe(&event));
    }
}

/// A one-line description of an event.
pub fn describe(event: &ReportEvent) -> String {
    let seconds =
        |value: f64| crate::playbook::duration::render(Duration::from_secs_f64(value.max(0.0)));
    match event {
        ReportEvent::RunStarted {
            run_id,
            target,
            steps,
            done,
            resumed,
        } => {
            let verb = if *resumed { "resuming" } else { "starting" };
            format!("{verb} run {run_id} → {target} ({done}/{steps} steps done)")
        }
        ReportEvent::StepStarted {
            step,
            kind,
            attempt,
        } if *attempt > 1 => {
            format!("{step}: started ({kind}, attempt {attempt})")
        }
        ReportEvent::StepStarted { step, kind, .. } => format!("{step}: started ({kind})"),
        ReportEvent::StepProgress { step, message } => format!("{step}: {message}"),
        ReportEvent::StepWaiting { step, waiting_for } => {
            format!("{step}: waiting for {waiting_for}")
        }
        ReportEvent::StepRetrying {
            step,
            attempt,
            error,
            delay_seconds,
        } => {
            format!(
                "{step}: attempt {attempt} failed, retrying in {}: {error}",
                seconds(*delay_seconds)
            )
        }
        ReportEvent::StepSucceeded {
            step,
            elapsed_seconds,
        } => {
            format!("{step}: succeeded in {}", seconds(*elapsed_seconds))
        }
        ReportEvent::StepFailed { step, error } => format!("{step}: FAILED: {error}"),
        ReportEvent::StepInterrupted { step } => format!("{step}: stopped at a safe point"),
        ReportEvent::Notice { message } => message.clone(),
        ReportEvent::RunFinished {
            outcome,
            elapsed_seconds,
        } => {
            format!("run {outcome} after {}", seconds(*elapsed_seconds))
        }
    }
}
