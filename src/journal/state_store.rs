//! Where durable state lives, behind one seam (terraform's `statemgr`): run journals, the
//! list of runs and the run lock. [`FileStore`] keeps them in a local directory
//! (`runs/<run-id>/journal.jsonl`, `locks/<target>.lock`; the only place that knows this
//! layout); [`MemoryStore`] keeps them in memory for unit tests. A shared backend (S3)
//! implements the same trait. Local scratch files (checkouts, kubeconfigs) are not state:
//! they live in the run's [`Workspace`](crate::workspace::Workspace).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::lock::{self, Holder, LockError, RunLock, Unlocked};
use super::requests::{self, Request};
use super::store::{self, MemorySink};
use super::{
    Journal, JournalError, LoadRunError, Loaded, RunState, StepStatus, Values, WaitHistory, state,
};
use crate::stack::Stack;

/// A run found in the store.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// The run's id.
    pub run_id: String,
    /// Its state, or why it could not be read.
    pub state: Result<RunState, String>,
}

/// Durable state: journals, runs and locks.
pub trait StateStore: Send + Sync {
    /// Where the state lives, as the user named it (for messages and resume commands).
    fn location(&self) -> String;

    /// The AWS region the state lives in, when it lives in AWS (a run refuses state in
    /// its source region); `None` for local state.
    fn region(&self) -> Option<String> {
        None
    }

    /// Start the journal of a new run; fails if the run exists.
    fn create_run(&self, run_id: &str) -> Result<Journal, JournalError>;

    /// Read and fold one run's journal.
    fn load_run(&self, run_id: &str) -> Result<(Loaded, RunState), LoadRunError>;

    /// Append to a loaded run's journal (after cutting off a torn tail).
    fn reopen_run(&self, run_id: &str, loaded: &Loaded) -> Result<Journal, JournalError>;

    /// Every run id, oldest first (run ids sort by start time).
    fn run_ids(&self) -> Vec<String>;

    /// Take the lock for `target` on behalf of `run_id`.
    fn lock(&self, target: &str, run_id: &str) -> Result<RunLock, LockError>;

    /// Break the lock for `target` on purpose (refused while its holder is alive here).
    fn unlock(&self, target: &str) -> Result<Unlocked, LockError>;

    /// Who holds (or last held) the lock for `target`.
    fn lock_holder(&self, target: &str) -> Option<Holder>;

    /// Whether a live process holds the lock for `target`.
    fn lock_is_held(&self, target: &str) -> bool;

    /// Every target with a lock.
    fn locked_targets(&self) -> Vec<String>;

    /// Add an answer to the gates of run `run_id` (see [`requests`](super::requests)): made
    /// durable before returning, safe with any number of writers, and never in the way of
    /// the run's own process appending to its journal.
    fn append_request(&self, run_id: &str, request: &Request) -> Result<(), JournalError>;

    /// Every intact answer to the gates of run `run_id`, in the order written (none yet:
    /// empty).
    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError>;

    /// Every run with its state, oldest first.
    fn runs(&self) -> Vec<RunEntry> {
        self.run_ids()
            .into_iter()
            .map(|run_id| {
                let state = self
                    .load_run(&run_id)
                    .map(|(_, state)| state)
                    .map_err(|error| error.to_string());
                RunEntry { run_id, state }
            })
            .collect()
    }

    /// The newest run that has not succeeded.
    fn latest_unfinished(&self) -> Option<String> {
        self.runs()
            .into_iter()
            .rev()
            .find(|entry| matches!(&entry.state, Ok(state) if !state.is_complete()))
            .map(|entry| entry.run_id)
    }

    /// The newest unfinished run of `stack` (see [`unfinished_run_of`]).
    fn unfinished_run_of(&self, stack: &Stack) -> Option<RunState> {
        unfinished_run_of(self.runs(), stack)
    }

    /// What the runs of `stack` journaled for each step when it last succeeded (see
    /// [`succeeded_outputs_of`]).
    fn succeeded_outputs_of(&self, stack: &Stack) -> BTreeMap<String, Succeeded> {
        succeeded_outputs_of(self.runs(), stack)
    }

    /// How long the waits of `stack`'s steps took in its runs (see [`WaitHistory`]).
    fn wait_history(&self, stack: &Stack) -> WaitHistory {
        let states: Vec<RunState> = self
            .runs()
            .into_iter()
            .filter_map(|entry| entry.state.ok())
            .collect();
        WaitHistory::of(&states, stack)
    }

    /// The newest run.
    fn latest(&self) -> Option<String> {
        self.run_ids().pop()
    }

    /// Whether the run `run_id` is running now (its target's lock is held for it).
    fn is_running(&self, run_id: &str, target: &str) -> bool {
        self.lock_holder(target)
            .is_some_and(|holder| holder.run_id == run_id && self.lock_is_held(target))
    }
}

/// The newest run of `stack` among `runs` (oldest first), if it has not succeeded. Only
/// the newest run counts: once a run of the stack succeeded, an older unfinished one was
/// superseded (it was left behind with `--new-run`). A journal that cannot be read names
/// no stack and is passed over (`rebuild runs` shows it).
pub fn unfinished_run_of(runs: Vec<RunEntry>, stack: &Stack) -> Option<RunState> {
    runs.into_iter()
        .rev()
        .filter_map(|entry| entry.state.ok())
        .find(|state| state.header.stack == *stack)
        .filter(RunState::is_unfinished)
}

/// A step's outputs as the run that last finished it journaled them.
#[derive(Debug, Clone, PartialEq)]
pub struct Succeeded {
    /// The run.
    pub run_id: String,
    /// The step's outputs.
    pub outputs: Values,
}

/// For each step, the outputs the newest run of `stack` (among `runs`, oldest first) that
/// finished it journaled: what a new run of the stack expects to find when it adopts that
/// step's resources (the plan of later steps is made with them).
pub fn succeeded_outputs_of(runs: Vec<RunEntry>, stack: &Stack) -> BTreeMap<String, Succeeded> {
    let mut found = BTreeMap::new();
    let states = runs.into_iter().filter_map(|entry| entry.state.ok());
    for state in states.filter(|state| state.header.stack == *stack) {
        for (step, journaled) in state.steps {
            if journaled.status == StepStatus::Succeeded {
                let outputs = journaled.outputs;
                let run_id = state.header.run_id.clone();
                found.insert(step, Succeeded { run_id, outputs });
            }
        }
    }
    found
}

/// State in a local directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn journal_path(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id).join("journal.jsonl")
    }

    fn requests_path(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id).join("requests.jsonl")
    }
}

impl StateStore for FileStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create_run(&self, run_id: &str) -> Result<Journal, JournalError> {
        Journal::create(&self.journal_path(run_id))
    }

    fn load_run(&self, run_id: &str) -> Result<(Loaded, RunState), LoadRunError> {
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

    fn reopen_run(&self, run_id: &str, loaded: &Loaded) -> Result<Journal, JournalError> {
        Journal::reopen(&self.journal_path(run_id), loaded)
    }

    fn run_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("runs")) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join("journal.jsonl").exists())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    fn lock(&self, target: &str, run_id: &str) -> Result<RunLock, LockError> {
        lock::acquire(&self.root, target, run_id)
    }

    fn unlock(&self, target: &str) -> Result<Unlocked, LockError> {
        lock::unlock(&self.root, target)
    }

    fn lock_holder(&self, target: &str) -> Option<Holder> {
        lock::holder(&self.root, target)
    }

    fn lock_is_held(&self, target: &str) -> bool {
        lock::is_held(&self.root, target)
    }

    fn append_request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        use std::io::{Read, Seek, SeekFrom, Write};
        let path = self.requests_path(run_id);
        let io_error = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        if !self.journal_path(run_id).exists() {
            return Err(io_error(std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        let line = requests::encode(request)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error)?;
        // Writers take turns; a line cut short by a writer that died gets its end first, so
        // the new line is never joined to it.
        file.lock().map_err(io_error)?;
        let mut last = [0u8; 1];
        let length = file.seek(SeekFrom::End(0)).map_err(io_error)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if length > 0 {
            file.seek(SeekFrom::End(-1)).map_err(io_error)?;
            file.read_exact(&mut last).map_err(io_error)?;
            if last[0] != b'\n' {
                bytes.push(b'\n');
            }
        }
        bytes.extend_from_slice(line.as_bytes());
        file.write_all(&bytes).map_err(io_error)?;
        file.sync_data().map_err(io_error)
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        let path = self.requests_path(run_id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(requests::parse(&bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    fn locked_targets(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("locks"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .filter_map(|name| name.strip_suffix(".lock").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// State in memory (unit tests): journals are byte buffers, locks a map.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    journals: Arc<Mutex<BTreeMap<String, MemorySink>>>,
    requests: Arc<Mutex<BTreeMap<String, Vec<Request>>>>,
    locks: Arc<Mutex<BTreeMap<String, Holder>>>,
}

/// Releases a memory lock when dropped.
#[derive(Debug)]
struct MemoryLock {
    locks: Arc<Mutex<BTreeMap<String, Holder>>>,
    target: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.target);
    }
}

impl MemoryStore {
    fn memory_path(run_id: &str) -> PathBuf {
        PathBuf::from(format!("memory:{run_id}"))
    }

    /// Everything journaled for `run_id` so far.
    pub fn journal_text(&self, run_id: &str) -> Option<String> {
        self.journals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(run_id)
            .map(MemorySink::text)
    }
}

impl StateStore for MemoryStore {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn create_run(&self, run_id: &str) -> Result<Journal, JournalError> {
        let mut journals = self
            .journals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = Self::memory_path(run_id);
        if journals.contains_key(run_id) {
            return Err(JournalError::Io {
                path,
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let sink = MemorySink::default();
        journals.insert(run_id.to_string(), sink.clone());
        Ok(Journal::with_sink(&path, Box::new(sink), 1))
    }

    fn load_run(&self, run_id: &str) -> Result<(Loaded, RunState), LoadRunError> {
        let text = self
            .journal_text(run_id)
            .ok_or_else(|| LoadRunError::NotFound(run_id.to_string()))?;
        let path = Self::memory_path(run_id);
        let loaded = store::parse(&path, &text)?;
        let state =
            state::fold(&loaded.records).map_err(|source| LoadRunError::Fold { path, source })?;
        Ok((loaded, state))
    }

    fn reopen_run(&self, run_id: &str, loaded: &Loaded) -> Result<Journal, JournalError> {
        let path = Self::memory_path(run_id);
        let journals = self
            .journals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sink = journals
            .get(run_id)
            .cloned()
            .ok_or_else(|| JournalError::Io {
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        sink.truncate(loaded.intact_len);
        let next = loaded.records.len() as u64 + 1;
        Ok(Journal::with_sink(&path, Box::new(sink), next))
    }

    fn run_ids(&self) -> Vec<String> {
        self.journals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn lock(&self, target: &str, run_id: &str) -> Result<RunLock, LockError> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(holder) = locks.get(target) {
            return Err(LockError::Held {
                target: target.to_string(),
                holder: Box::new(holder.clone()),
            });
        }
        let holder = lock::this_process(target, run_id);
        locks.insert(target.to_string(), holder.clone());
        let release = MemoryLock {
            locks: self.locks.clone(),
            target: target.to_string(),
        };
        Ok(RunLock::new(holder, None, Box::new(release)))
    }

    fn unlock(&self, target: &str) -> Result<Unlocked, LockError> {
        match self.lock_holder(target) {
            // In memory every holder is alive: it must be stopped, not unlocked.
            Some(holder) => Err(LockError::Held {
                target: target.to_string(),
                holder: Box::new(holder),
            }),
            None => Ok(Unlocked::NotLocked),
        }
    }

    fn lock_holder(&self, target: &str) -> Option<Holder> {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target)
            .cloned()
    }

    fn lock_is_held(&self, target: &str) -> bool {
        self.lock_holder(target).is_some()
    }

    fn append_request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        if self.journal_text(run_id).is_none() {
            return Err(JournalError::Io {
                path: Self::memory_path(run_id),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(run_id.to_string())
            .or_default()
            .push(request.clone());
        Ok(())
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        Ok(self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(run_id)
            .cloned()
            .unwrap_or_default())
    }

    fn locked_targets(&self) -> Vec<String> {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::contract::{header, keeps_the_contract};
    use crate::journal::{Event, Outcome};

    /// A run of `stack` (`None`: an old journal, the default stack `t@ap-southeast-1`)
    /// that ended with `outcome` (`None`: crashed).
    fn add_run(
        store: &dyn StateStore,
        run_id: &str,
        stack: Option<&str>,
        outcome: Option<Outcome>,
    ) {
        let mut started = header(run_id);
        if let Event::RunStarted {
            stack: journaled, ..
        } = &mut started
        {
            *journaled = stack.map(str::to_string);
        }
        let journal = store.create_run(run_id).unwrap();
        journal.append(started).unwrap();
        if let Some(outcome) = outcome {
            journal.append(Event::RunFinished { outcome }).unwrap();
        }
    }

    #[test]
    fn only_the_newest_run_of_the_same_stack_can_be_unfinished() {
        let store = MemoryStore::default();
        let default = Stack::default_for("t", "ap-southeast-1");
        let drill = Stack::parse("drill").unwrap();
        assert!(store.unfinished_run_of(&default).is_none(), "no runs");

        add_run(
            &store,
            "20260101-000000-aaaa",
            None,
            Some(Outcome::Succeeded),
        );
        assert!(store.unfinished_run_of(&default).is_none(), "succeeded");

        add_run(&store, "20260102-000000-bbbb", None, None);
        let found = store.unfinished_run_of(&default).unwrap();
        assert_eq!(
            found.header.run_id, "20260102-000000-bbbb",
            "crashed, old journal"
        );
        assert!(store.unfinished_run_of(&drill).is_none(), "another stack");
        let elsewhere = Stack::default_for("t", "ap-northeast-1");
        assert!(
            store.unfinished_run_of(&elsewhere).is_none(),
            "another target"
        );

        add_run(
            &store,
            "20260103-000000-cccc",
            Some("drill"),
            Some(Outcome::Failed),
        );
        assert_eq!(
            store.unfinished_run_of(&drill).unwrap().header.run_id,
            "20260103-000000-cccc"
        );
        assert_eq!(
            store.unfinished_run_of(&default).unwrap().header.run_id,
            "20260102-000000-bbbb",
            "a run of another stack does not hide it"
        );

        add_run(
            &store,
            "20260104-000000-dddd",
            Some("t@ap-southeast-1"),
            Some(Outcome::Interrupted),
        );
        assert_eq!(
            store.unfinished_run_of(&default).unwrap().header.run_id,
            "20260104-000000-dddd",
            "the newest unfinished run is the one to resume"
        );
        add_run(
            &store,
            "20260105-000000-eeee",
            Some("t@ap-southeast-1"),
            Some(Outcome::Succeeded),
        );
        assert!(
            store.unfinished_run_of(&default).is_none(),
            "a newer success supersedes the runs it replaced"
        );
    }

    #[test]
    fn a_stack_expects_the_outputs_its_newest_runs_journaled_per_step() {
        let store = MemoryStore::default();
        let default = Stack::default_for("t", "ap-southeast-1");
        let succeeded = |journal: &Journal, step: &str, value: &str| {
            let start = Event::StepStarted {
                step: step.into(),
                attempt: 1,
            };
            journal.append(start).unwrap();
            let outputs = Values::from([("id".to_string(), serde_json::json!(value))]);
            let done = Event::StepSucceeded {
                step: step.into(),
                attempt: 1,
                outputs,
            };
            journal.append(done).unwrap();
        };
        let first = store.create_run("20260101-000000-aaaa").unwrap();
        first.append(header("20260101-000000-aaaa")).unwrap();
        succeeded(&first, "network", "vpc-1");
        succeeded(&first, "cluster", "c-1");
        // A later run of the stack (killed) redid the cluster; the network it only began.
        let second = store.create_run("20260102-000000-bbbb").unwrap();
        second.append(header("20260102-000000-bbbb")).unwrap();
        succeeded(&second, "cluster", "c-2");
        let start = Event::StepStarted {
            step: "network".into(),
            attempt: 1,
        };
        second.append(start).unwrap();
        // Another stack's run is never looked at.
        add_run(&store, "20260103-000000-cccc", Some("drill"), None);
        let drill = store.create_run("20260104-000000-dddd").unwrap();
        let mut started = header("20260104-000000-dddd");
        if let Event::RunStarted { stack, .. } = &mut started {
            *stack = Some("drill".into());
        }
        drill.append(started).unwrap();
        succeeded(&drill, "network", "vpc-drill");

        let found = store.succeeded_outputs_of(&default);
        let id = |step: &str| {
            let found = &found[step];
            (found.run_id.as_str(), found.outputs["id"].as_str().unwrap())
        };
        assert_eq!(id("network"), ("20260101-000000-aaaa", "vpc-1"));
        assert_eq!(id("cluster"), ("20260102-000000-bbbb", "c-2"));
        assert_eq!(found.len(), 2);
        let drill = Stack::parse("drill").unwrap();
        assert_eq!(
            store.succeeded_outputs_of(&drill)["network"].outputs["id"],
            "vpc-drill"
        );
    }

    #[test]
    fn the_file_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        keeps_the_contract(&FileStore::new(dir.path()));
    }

    #[test]
    fn the_memory_store_keeps_the_contract() {
        keeps_the_contract(&MemoryStore::default());
    }
}
