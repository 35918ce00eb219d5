//! Running blocking git work off the runtime: its progress lines are relayed as they come,
//! and every quarter second is a safe point (`fetching`): when the run stops, the work is
//! told to give up (a transfer stops at its next progress report) and the step is
//! interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{StepContext, StepError};
use crate::cloud::CloudError;

/// How blocking work talks back: progress lines, and whether to give up.
pub(super) struct Feedback<'a> {
    /// Tell the user something.
    pub(super) report: &'a dyn Fn(String),
    /// The run is stopping: give up at the next chance.
    pub(super) stopped: &'a dyn Fn() -> bool,
}

impl Feedback<'_> {
    /// Feedback for work nobody watches (the plan's checkout): no lines, no stop.
    pub(super) fn silent<R>(job: impl FnOnce(&Feedback<'_>) -> R) -> R {
        job(&Feedback {
            report: &|_| {},
            stopped: &|| false,
        })
    }
}

/// Run `job` on the blocking pool (see the module's paragraph).
pub(super) async fn run_blocking<T: Send + 'static>(
    context: &StepContext,
    job: impl FnOnce(&Feedback<'_>) -> T + Send + 'static,
) -> Result<T, StepError> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || {
            let report = move |message: String| {
                let _ = sender.send(message);
            };
            let stopped = || stop.load(Ordering::Relaxed);
            job(&Feedback {
                report: &report,
                stopped: &stopped,
            })
        }
    });
    let mut interrupted = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some(message) => context.progress(message),
                None => break,
            },
            _ = tick.tick(), if interrupted.is_none() => {
                if let Err(error) = context.checkpoint("fetching") {
                    stop.store(true, Ordering::Relaxed);
                    interrupted = Some(error);
                }
            }
        }
    }
    let value = handle.await.map_err(|error| worker_stopped(&error))?;
    match interrupted {
        Some(error) => Err(error),
        None => Ok(value),
    }
}

/// The blocking worker panicked or was cancelled.
pub(super) fn worker_stopped(error: &tokio::task::JoinError) -> StepError {
    StepError::Cloud(CloudError::local(
        "git",
        None,
        format!("the git worker stopped: {error}"),
    ))
}
