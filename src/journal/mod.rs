//! The journal: the checkpoint of every run. Records ([`record`]) are appended and fsync'd
//! ([`store`]), folded into state ([`state`]), and guarded by a lock ([`lock`]). This module
//! also owns the state directory's layout: `runs/<run-id>/journal.jsonl` and
//! `locks/<target>.lock`.

pub mod lock;
pub mod record;
pub mod state;
pub mod store;

use std::path::{Path, PathBuf};

pub use record::{Event, Outcome, Record, Values};
pub use state::{RunState, StepStatus};
pub use store::{Journal, JournalError, Loaded};

/// The state directory and its layout.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// A run found in the state directory.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// The run's id.
    pub run_id: String,
    /// Its state, or why it could not be read.
    pub state: Result<RunState, String>,
}

impl StateDir {
    /// A state directory at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A run's folder.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id)
    }

    /// A run's journal file.
    pub fn journal_path(&self, run_id: &str) -> PathBuf {
        self.run_dir(run_id).join("journal.jsonl")
    }

    /// Load and fold one run.
    pub fn load(&self, run_id: &str) -> Result<(Loaded, RunState), LoadRunError> {
        let path = self.journal_path(run_id);
        if !path.exists() {
            return Err(LoadRunError::NotFound(run_id.to_string()));
        }
        let loaded = store::read(&path)?;
        let state = state::fold(&loaded.records).map_err(|source| LoadRunError::Fold {
            path: path.clone(),
            source,
        })?;
        Ok((loaded, state))
    }

    /// Every run, oldest first (run ids sort by start time).
    pub fn runs(&self) -> Vec<RunEntry> {
        let Ok(entries) = std::fs::read_dir(self.root.join("runs")) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("journal.jsonl").exists())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|run_id| {
                let state = self
                    .load(&run_id)
                    .map(|(_, state)| state)
                    .map_err(|error| error.to_string());
                RunEntry { run_id, state }
            })
            .collect()
    }

    /// The newest run that has not succeeded.
    pub fn latest_unfinished(&self) -> Option<String> {
        self.runs()
            .into_iter()
            .rev()
            .find(|entry| matches!(&entry.state, Ok(state) if !state.is_complete()))
            .map(|entry| entry.run_id)
    }

    /// The newest run.
    pub fn latest(&self) -> Option<String> {
        self.runs().pop().map(|entry| entry.run_id)
    }
}

/// Why a run could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadRunError {
    /// No journal for that id.
    #[error("no run `{0}` in this state directory")]
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
