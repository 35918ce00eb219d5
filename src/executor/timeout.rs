//! A step attempt's time limit. The time a question waits for its answer (the DNS
//! cutover's confirmation) is left out: a person reading the question does not make the
//! step time out.

use std::time::Duration;

use crate::journal::Values;
use crate::runtime::QuestionClock;
use crate::steps::StepError;

/// Run one attempt for at most `limit`, not counting the time its questions wait.
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
