//! The run lock: one active run per state directory and target region.
//!
//! The lock is a file `locks/<target>.lock` holding its holder (run id, host, pid, start
//! time) and an OS advisory lock (`flock`) held for the process's life. A second `rebuild`
//! finds the advisory lock taken and fails fast naming the holder. When the holder died
//! on this host, the kernel released its advisory lock, so the file is known stale and is
//! taken over (a SIGKILLed run can be resumed at once). A lock left by *another* host
//! cannot be proven stale from here: it is broken only on purpose, with `rebuild unlock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The run it is for.
    pub run_id: String,
    /// Who started it (the login name; empty in locks written before it was recorded).
    #[serde(default)]
    pub user: String,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When it was taken.
    pub since: Timestamp,
    /// Target region.
    pub target: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "run `{}`", self.run_id)?;
        if !self.user.is_empty() {
            write!(formatter, " by `{}`", self.user)?;
        }
        write!(
            formatter,
            " on host `{}` (pid {}, since {})",
            self.host,
            self.pid,
            self.since.strftime("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("another rebuild is running for `{target}`: {holder}")]
    Held {
        /// Target region.
        target: String,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// A lock left by another host, which this host cannot prove dead.
    #[error("the lock for `{target}` was left by {holder}, on another host")]
    ForeignHost {
        /// Target region.
        target: String,
        /// Who left it.
        holder: Box<Holder>,
    },
    /// A lock in shared state (an S3 bucket), held by a running process or left by one that
    /// died: which of the two cannot be told from here.
    #[error("the lock for `{target}` in `{location}` is held by {holder}")]
    Shared {
        /// Target region.
        target: String,
        /// The state location (`s3://BUCKET/PREFIX`).
        location: String,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// Reading or writing a lock in shared state failed.
    #[error("lock `{location}`: {source}")]
    Remote {
        /// The lock object (`s3://BUCKET/KEY`).
        location: String,
        /// The failed call.
        source: Box<crate::cloud::CloudError>,
    },
    /// Lock file I/O.
    #[error("lock file `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl LockError {
    /// The holder a refusal names, if any.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            Self::Held { holder, .. }
            | Self::ForeignHost { holder, .. }
            | Self::Shared { holder, .. } => Some(holder.as_ref()),
            Self::Remote { .. } | Self::Io { .. } => None,
        }
    }
}

/// A held lock, whatever stores it; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    /// The holder it names.
    pub holder: Holder,
    /// A dead holder whose lock was taken over, if any.
    pub took_over: Option<Holder>,
    /// Releases the lock when dropped (the store's own kind of lock).
    _release: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl RunLock {
    /// A lock held by `holder`, released when `release` is dropped.
    pub fn new(
        holder: Holder,
        took_over: Option<Holder>,
        release: Box<dyn std::fmt::Debug + Send + Sync>,
    ) -> Self {
        Self {
            holder,
            took_over,
            _release: release,
        }
    }
}

/// A lock file with its advisory lock held; removed and unlocked when dropped.
#[derive(Debug)]
struct LockFile {
    path: PathBuf,
    file: File,
}

/// The lock file for a target region.
pub fn lock_path(state_dir: &Path, target: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{target}.lock"))
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// This machine's host name.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Who runs this process: the login name (`USER`, else `LOGNAME`), or `unknown`.
pub fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|variable| std::env::var(variable).ok().filter(|name| !name.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The holder this process writes into a lock it takes for `run_id` on `target`.
pub fn this_process(target: &str, run_id: &str) -> Holder {
    Holder {
        run_id: run_id.to_string(),
        user: user_name(),
        host: host_name(),
        pid: std::process::id(),
        since: Timestamp::now(),
        target: target.to_string(),
    }
}

/// Open the lock file and take its advisory lock. A releasing holder removes the file while
/// still holding it, so after locking, check that the path still names the locked file;
/// if it does not, another process may hold a newer file: start again.
fn open_locked(path: &Path, target: &str) -> Result<File, LockError> {
    use std::os::unix::fs::MetadataExt;
    let io_error = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    for _ in 0..16 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file).unwrap_or_else(|| unknown_holder(target));
                return Err(LockError::Held {
                    target: target.to_string(),
                    holder: Box::new(holder),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io_error(error)),
        }
        let locked = file.metadata().map_err(io_error)?;
        match std::fs::metadata(path) {
            Ok(current) if current.ino() == locked.ino() && current.dev() == locked.dev() => {
                return Ok(file);
            }
            _ => continue, // removed or replaced meanwhile
        }
    }
    Err(io_error(std::io::Error::other(
        "the lock file keeps being replaced by other processes",
    )))
}

/// Take the lock for `target` on behalf of `run_id`.
pub fn acquire(state_dir: &Path, target: &str, run_id: &str) -> Result<RunLock, LockError> {
    let path = lock_path(state_dir, target);
    let io_error = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut file = open_locked(&path, target)?;
    let here = host_name();
    let previous = read_holder(&mut file);
    if let Some(previous) = &previous
        && previous.host != here
    {
        return Err(LockError::ForeignHost {
            target: target.to_string(),
            holder: Box::new(previous.clone()),
        });
    }
    let holder = this_process(target, run_id);
    let text = serde_json::to_string_pretty(&holder).unwrap_or_default();
    file.set_len(0).map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    file.write_all(text.as_bytes()).map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    Ok(RunLock::new(
        holder,
        previous,
        Box::new(LockFile { path, file }),
    ))
}

/// The holder of a lock whose content cannot be read.
pub(crate) fn unknown_holder(target: &str) -> Holder {
    Holder {
        run_id: "unknown".into(),
        user: String::new(),
        host: "unknown".into(),
        pid: 0,
        since: Timestamp::UNIX_EPOCH,
        target: target.to_string(),
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Remove the file while still holding the advisory lock, so no other process can
        // have locked this inode in between.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// What `rebuild unlock` did.
#[derive(Debug)]
pub enum Unlocked {
    /// There was no lock.
    NotLocked,
    /// The lock of this holder was removed.
    Removed(Option<Holder>),
    /// The lock of this holder was removed without knowing whether its process is still
    /// running (a lock in shared state: its host cannot be checked from here).
    Unverified(Holder),
}

/// Break the lock for `target` on purpose. Refuses while a live process on this host holds
/// it (that run must be stopped instead, with Ctrl-C or SIGTERM).
pub fn unlock(state_dir: &Path, target: &str) -> Result<Unlocked, LockError> {
    let path = lock_path(state_dir, target);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Unlocked::NotLocked);
        }
        Err(source) => return Err(LockError::Io { path, source }),
    };
    let holder = read_holder(&mut file);
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                target: target.to_string(),
                holder: Box::new(holder.unwrap_or_else(|| unknown_holder(target))),
            });
        }
        Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
    }
    std::fs::remove_file(&path).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    let _ = file.unlock();
    Ok(Unlocked::Removed(holder))
}

/// Whether a live process holds the lock for `target` (probed without taking it).
pub fn is_held(state_dir: &Path, target: &str) -> bool {
    let Ok(file) = File::open(lock_path(state_dir, target)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// The current holder of the lock for `target`, if the file exists.
pub fn holder(state_dir: &Path, target: &str) -> Option<Holder> {
    let mut file = File::open(lock_path(state_dir, target)).ok()?;
    read_holder(&mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "ap-southeast-1", "run-a").unwrap();
        let error = acquire(dir.path(), "ap-southeast-1", "run-b").unwrap_err();
        match error {
            LockError::Held { holder, .. } => {
                assert_eq!(holder.run_id, "run-a");
                assert_eq!(holder.pid, std::process::id());
            }
            other => panic!("unexpected {other}"),
        }
        // Other targets are independent.
        let other = acquire(dir.path(), "us-west-2", "run-c").unwrap();
        drop(other);
        drop(first);
        assert!(
            holder(dir.path(), "ap-southeast-1").is_none(),
            "released on drop"
        );
        acquire(dir.path(), "ap-southeast-1", "run-b").unwrap();
    }

    #[test]
    fn a_dead_local_holder_is_taken_over_and_a_foreign_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "ap-southeast-1");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut dead = unknown_holder("ap-southeast-1");
        dead.host = host_name();
        dead.run_id = "dead-run".into();
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let lock = acquire(dir.path(), "ap-southeast-1", "run-b").unwrap();
        assert_eq!(
            lock.took_over.as_ref().map(|h| h.run_id.as_str()),
            Some("dead-run")
        );
        drop(lock);

        let mut foreign = dead.clone();
        foreign.host = "another-laptop".into();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&foreign).unwrap()).unwrap();
        assert!(matches!(
            acquire(dir.path(), "ap-southeast-1", "run-c"),
            Err(LockError::ForeignHost { .. })
        ));
        assert!(matches!(
            unlock(dir.path(), "ap-southeast-1"),
            Ok(Unlocked::Removed(Some(_)))
        ));
        acquire(dir.path(), "ap-southeast-1", "run-c").unwrap();
    }
}
