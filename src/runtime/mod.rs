//! What a run is made of below the steps: the facts of a run ([`RunFacts`]), the stop
//! signal ([`Cancel`]), the one backoff-with-jitter formula ([`Backoff`]) used by the
//! executor's retries and the steps' polls, questions to the operator ([`Confirmer`],
//! [`QuestionClock`]) and the vocabulary of progress events ([`ReportEvent`], [`Reporter`]).
//! Steps and the executor import from here; this module imports neither.

mod backoff;
mod cancel;
mod confirm;
mod events;
mod facts;
mod pace;

pub use backoff::Backoff;
pub use cancel::Cancel;
pub use confirm::{AlwaysYes, Asking, Confirmer, QuestionClock};
pub use events::{RedactingReporter, ReportEvent, Reporter, SilentReporter};
pub use facts::{Owner, RunFacts, TAG_NAME, TAG_RUN_ID, TAG_STACK, TAG_STEP};
pub use pace::{POLL_FLOOR, Pace};
