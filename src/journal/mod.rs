//! The journal: the checkpoint of every run. Records ([`record`]) are appended and fsync'd
//! ([`store`]), folded into state ([`state`]), and guarded by a lock ([`lock`]). Where
//! journals and locks live is behind the [`StateStore`] seam ([`state_store`]): a local
//! directory by default, an S3 bucket shared by a team ([`s3`]), memory in tests.

#[doc(hidden)]
pub mod contract;
mod history;
pub mod lock;
pub mod record;
pub mod requests;
pub mod s3;
pub mod state;
pub mod state_store;
pub mod store;

use std::path::PathBuf;

pub use history::WaitHistory;
pub use record::{Actor, Event, Outcome, PlaybookParts, Record, ResourceAction, Values, Verdict};
pub use requests::Request;
pub use s3::S3Store;
pub use state::{Change, ChangeKind, RunState, StepStatus, Waited};
pub use state_store::{FileStore, MemoryStore, RunEntry, StateStore};
pub use store::{Journal, JournalError, Loaded};

/// Why a run could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadRunError {
    /// No journal for that id.
    #[error("no run `{0}` in this state")]
    NotFound(String),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The records do not make a run.
    #[error("journal `{path}`: {source}")]
    Fold {
        /// The file.
        path: PathBuf,
        /// Why.
        source: state::FoldError,
    },
}
