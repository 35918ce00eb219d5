//! Questions to the person running `rebuild`, asked before a change that needs its own
//! consent (the DNS cutover moves real users), and the clock that keeps the time a question
//! waits for its answer out of the asking step's `timeout`.

use std::sync::Mutex;
use std::time::Duration;

/// Asks the operator. Steps never print: they ask through their context.
pub trait Confirmer: Send + Sync {
    /// The answer to `question`: `true` is yes. May block (it runs off the runtime).
    fn ask(&self, question: &str) -> bool;
}

/// Says yes without asking: `--yes`, and runs that have nobody to ask.
#[derive(Debug, Default)]
pub struct AlwaysYes;

impl Confirmer for AlwaysYes {
    fn ask(&self, _question: &str) -> bool {
        true
    }
}

/// How long a step has waited for answers to its questions: that time is not counted
/// against its `timeout` (a person reading the question is not the step being slow).
#[derive(Debug, Default)]
pub struct QuestionClock {
    /// When the current question was asked (`None`: none open), and the time spent on
    /// questions answered before.
    state: Mutex<(Option<tokio::time::Instant>, Duration)>,
}

impl QuestionClock {
    /// Whether a question is waiting for its answer now.
    pub fn asking(&self) -> bool {
        self.state
            .lock()
            .map(|state| state.0.is_some())
            .unwrap_or(false)
    }

    /// Time spent waiting for answers so far (the open question included).
    pub fn waited(&self) -> Duration {
        self.state
            .lock()
            .map(|state| state.1 + state.0.map_or(Duration::ZERO, |asked| asked.elapsed()))
            .unwrap_or(Duration::ZERO)
    }

    /// A question is asked: its wait starts until the returned guard is dropped (answer,
    /// stop, or the step dropped).
    pub fn ask(&self) -> Asking<'_> {
        if let Ok(mut state) = self.state.lock() {
            state.0.get_or_insert_with(tokio::time::Instant::now);
        }
        Asking(self)
    }

    /// The open question is answered (or abandoned): its wait ends.
    fn answered(&self) {
        if let Ok(mut state) = self.state.lock()
            && let Some(asked) = state.0.take()
        {
            state.1 += asked.elapsed();
        }
    }
}

/// An open question: stops the question clock however the wait ends.
#[derive(Debug)]
pub struct Asking<'a>(&'a QuestionClock);

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.0.answered();
    }
}
