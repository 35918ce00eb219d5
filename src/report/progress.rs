//! Live progress on a terminal: an overall bar and one spinner line per running step with
//! its elapsed time and latest message; finished steps are printed above the bars.
//!
//! Nothing is drawn before the run starts (the plan and the run's `[y/N]` question come
//! first, and a ticking bar would draw over the question), and a question asked while
//! steps run is asked with the bars cleared and held still ([`Reporter::suspend`]).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{ReportEvent, Reporter, describe};

/// indicatif progress on stderr.
pub struct ProgressReporter {
    multi: MultiProgress,
    overall: ProgressBar,
    started: Once,
    lines: Mutex<HashMap<String, ProgressBar>>,
    /// While a question waits for its answer: the lines the run printed meanwhile, shown
    /// once it is answered (the display is hidden, not locked, so the run goes on).
    held: Mutex<Option<Vec<String>>>,
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressReporter {
    /// Bars drawn on stderr once the run starts.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        // Not in `multi` (so not drawn) until the run starts: see `start`.
        let overall = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} steps  {elapsed_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("rebuild");
        Self {
            multi,
            overall,
            started: Once::new(),
            lines: Mutex::new(HashMap::new()),
            held: Mutex::new(None),
        }
    }

    /// Show the overall bar and start it ticking: the run has begun, nothing is asked
    /// before it any more.
    fn start(&self) {
        self.started.call_once(|| {
            self.multi.add(self.overall.clone());
            self.overall.enable_steady_tick(Duration::from_millis(500));
        });
    }

    fn line(&self, step: &str) -> ProgressBar {
        self.start();
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines
            .entry(step.to_string())
            .or_insert_with(|| {
                let bar = self
                    .multi
                    .insert_before(&self.overall, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {spinner} {prefix:<14} {elapsed:>5}  {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(step.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    /// Print `line` above the bars, or keep it until the question being asked is answered.
    fn print(&self, line: String) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match held.as_mut() {
            Some(lines) => lines.push(line),
            None => {
                let _ = self.multi.println(line);
            }
        }
    }

    /// A notice (a stop signal heard) is shown at once, even below a question waiting for
    /// its answer: the operator must see that the run is stopping.
    fn notice(&self, line: String) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.is_some() {
            let _ = writeln!(std::io::stderr(), "\n{line}");
        } else {
            drop(held);
            let _ = self.multi.println(line);
        }
    }

    fn finish(&self, step: &str) {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bar) = lines.remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Reporter for ProgressReporter {
    /// The bars are cleared and hidden while `work` asks, and what the run prints
    /// meanwhile is kept for after: nothing draws over the question, yet nothing waits on
    /// the answer either (other steps go on, a stop signal is heard).
    fn suspend(&self, work: &mut dyn FnMut()) {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        *self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Vec::new());
        work();
        let lines = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .unwrap_or_default();
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
        for line in lines {
            let _ = self.multi.println(line);
        }
    }

    fn report(&self, event: ReportEvent) {
        match &event {
            ReportEvent::RunStarted { steps, done, .. } => {
                self.overall.set_length(*steps as u64);
                self.overall.set_position(*done as u64);
                self.start();
                self.print(describe(&event));
            }
            ReportEvent::StepStarted { step, .. } => {
                self.line(step).set_message(describe(&event));
            }
            ReportEvent::StepProgress { step, message } => {
                self.line(step).set_message(message.clone())
            }
            ReportEvent::StepWaiting { step, waiting_for } => {
                self.line(step)
                    .set_message(format!("waiting for {waiting_for}"));
            }
            ReportEvent::StepRetrying { step, .. } => {
                self.line(step).set_message(describe(&event));
                self.print(format!("  ! {}", describe(&event)));
            }
            ReportEvent::StepSucceeded { step, .. } => {
                self.finish(step);
                self.overall.inc(1);
                self.print(format!("  ✓ {}", describe(&event)));
            }
            ReportEvent::StepFailed { step, .. } => {
                self.finish(step);
                self.print(format!("  ✗ {}", describe(&event)));
            }
            ReportEvent::StepInterrupted { step } => {
                self.finish(step);
                self.print(format!("  ■ {}", describe(&event)));
            }
            ReportEvent::Notice { .. } => self.notice(describe(&event)),
            ReportEvent::RunFinished { .. } => {
                self.overall.finish_and_clear();
                self.print(describe(&event));
            }
        }
    }
}
