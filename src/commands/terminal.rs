//! The terminal: the `[y/N]` question (before a run, and for a step's own questions) and
//! the signals that stop a run at its next safe point.
//!
//! Every question is asked through [`ask_held`]: on its own line, with the reporter's
//! progress display cleared and held still until the answer is typed, so no bar draws over
//! the question or the answer.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use crate::error::Error;
use crate::runtime::{Cancel, Confirmer, ReportEvent, Reporter};

/// Whether there is a person at a terminal to ask.
fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Ask `question [y/N]` on the terminal with `reporter`'s display held still; `true` is
/// yes.
fn ask_held(reporter: &dyn Reporter, question: &str) -> bool {
    let mut yes = false;
    reporter.suspend(&mut || yes = ask(question));
    yes
}

/// Ask `question [y/N]` on the terminal; `true` is yes.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Ask before a run changes anything; refuse without a terminal (unless `yes`).
pub(super) fn confirm(reporter: &dyn Reporter, question: &str, yes: bool) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if !can_ask() {
        return Err(Error::NotConfirmed {
            message: "refusing to change anything without confirmation: no terminal to ask on"
                .into(),
            hint: "pass `--yes` to run without asking (automation), or run from a terminal".into(),
        });
    }
    if ask_held(reporter, question) {
        Ok(())
    } else {
        Err(Error::NotConfirmed {
            message: "not confirmed; nothing was changed".into(),
            hint: "run again and answer `y` to go ahead".into(),
        })
    }
}

/// Asks a step's question on the terminal, one question at a time, with the progress
/// display held still. No terminal (the run was started with `--yes` then) means no.
pub(super) struct TerminalConfirmer {
    reporter: Arc<dyn Reporter>,
    asking: std::sync::Mutex<()>,
}

impl TerminalConfirmer {
    /// A confirmer that holds `reporter`'s display still while it asks.
    pub(super) fn new(reporter: Arc<dyn Reporter>) -> Self {
        Self {
            reporter,
            asking: std::sync::Mutex::new(()),
        }
    }
}

impl Confirmer for TerminalConfirmer {
    fn ask(&self, question: &str) -> bool {
        let _one_at_a_time = self
            .asking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !can_ask() {
            return false;
        }
        ask_held(self.reporter.as_ref(), question)
    }
}

/// Stop the run at safe points on SIGINT/SIGTERM; a second signal exits at once.
pub(super) fn watch_signals(cancel: Cancel, reporter: Arc<dyn Reporter>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut count = 0;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            count += 1;
            if count > 1 {
                exit_now(name);
            }
            // The run is told first, and the notice never holds up this loop, so a second
            // signal is always heard.
            cancel.cancel(format!("interrupted by {name}"));
            let reporter = reporter.clone();
            tokio::task::spawn_blocking(move || {
                reporter.report(ReportEvent::Notice {
                    message: format!(
                        "{name} received: stopping at the next safe point (send again to exit at once)"
                    ),
                });
            });
        }
    });
}

/// The second signal: the operator wants out now. Every journal line is durable when
/// written, so exiting between two is safe.
#[expect(
    clippy::disallowed_methods,
    reason = "the one exit outside `main`: a second signal must not wait for safe points"
)]
fn exit_now(name: &str) -> ! {
    eprintln!("second {name}: exiting now; the journal is consistent, `rebuild resume` continues");
    std::process::exit(130);
}
