//! State in an S3 bucket, shared by a team (`--state s3://BUCKET/PREFIX`): run journals
//! and run locks, laid out by [`layout`], reached through [`bucket`] on the [`bridge`]
//! thread.
//!
//! - **Journals**: one object per record, created with `If-None-Match: *`, so two writers
//!   can never both write record N and nothing is ever overwritten. Reading lists the
//!   run's records and parses them as a local journal's lines (checksum, sequence number,
//!   a damaged or missing last record dropped); a resume deletes what follows the intact
//!   records before it appends, as a local resume cuts a torn tail off its file.
//! - **Locks**: `locks/TARGET.lock`, created with `If-None-Match: *` and holding its holder
//!   (user, host, pid, run id, start). The loser of a race reads the holder and is refused
//!   with it. A lock in a bucket is never judged dead by its pid — the holder's host cannot
//!   be checked from another machine — so a lock left by a killed run is broken on purpose
//!   with `rebuild unlock`; `unlock` only refuses a holder it can see alive on this host.

mod bridge;
mod bucket;
pub(crate) mod layout;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use self::bridge::Bridge;
use self::bucket::{Bucket, Created};
use self::layout::Layout;
use super::lock::{self, Holder, LockError, RunLock, Unlocked};
use super::requests::{self, Request};
use super::store::{self, Sink};
use super::{Journal, JournalError, LoadRunError, Loaded, RunState, StateStore, state};
use crate::cloud::CloudError;
use crate::state_url::{StateUrl, bucket_region};

/// How many times a write that met a concurrent conditional write (409) is tried again.
const CONFLICT_RETRIES: u32 = 4;

/// Why the state bucket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The bucket does not exist.
    #[error("the state bucket `{bucket}` does not exist")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// Asking where it is failed (credentials, permissions, network).
    #[error("cannot find the region of the state bucket `{bucket}`: {source}")]
    Location {
        /// The bucket.
        bucket: String,
        /// The failed call.
        source: Box<CloudError>,
    },
    /// The I/O thread could not start.
    #[error("cannot start the state store's I/O thread: {0}")]
    Thread(io::Error),
}

/// State in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    layout: Layout,
    bucket: Bucket,
    region: String,
}

impl S3Store {
    /// Open the state at `url`: find the bucket's region (`GetBucketLocation`, asked with
    /// the client `client_for` makes for `lookup_region`), then use a client for that
    /// region. Clients are made by the caller (the cloud layer).
    pub fn open(
        url: StateUrl,
        lookup_region: &str,
        client_for: impl Fn(&str) -> aws_sdk_s3::Client,
    ) -> Result<Self, OpenError> {
        let bridge = Arc::new(Bridge::start().map_err(OpenError::Thread)?);
        let constraint = Bucket::location(&bridge, client_for(lookup_region), &url.bucket)
            .map_err(|source| {
                if source.is("NoSuchBucket") {
                    OpenError::NoSuchBucket {
                        bucket: url.bucket.clone(),
                    }
                } else {
                    OpenError::Location {
                        bucket: url.bucket.clone(),
                        source: Box::new(source),
                    }
                }
            })?;
        let region = bucket_region(constraint.as_deref());
        let bucket = Bucket::new(client_for(&region), &url.bucket, bridge);
        Ok(Self {
            layout: Layout::new(url),
            bucket,
            region,
        })
    }

    /// The bucket's region.
    pub fn bucket_region(&self) -> &str {
        &self.region
    }

    /// How a journal is named in messages (`s3://BUCKET/PREFIX/runs/ID/journal/`).
    fn journal_path(&self, run_id: &str) -> PathBuf {
        PathBuf::from(format!(
            "s3://{}/{}",
            self.layout.url().bucket,
            self.layout.journal(run_id)
        ))
    }

    /// The numbers and keys of a run's records, in order.
    fn records(&self, run_id: &str) -> Result<Vec<(u64, String)>, CloudError> {
        let (keys, _) = self.bucket.list(&self.layout.journal(run_id), None)?;
        let mut numbered: Vec<(u64, String)> = keys
            .into_iter()
            .filter_map(|key| {
                self.layout
                    .record_number(run_id, &key)
                    .map(|number| (number, key))
            })
            .collect();
        numbered.sort();
        Ok(numbered)
    }

    fn journal_error(&self, run_id: &str, source: CloudError) -> JournalError {
        JournalError::Io {
            path: self.journal_path(run_id),
            source: io::Error::other(source),
        }
    }

    fn lock_error(&self, target: &str, source: CloudError) -> LockError {
        LockError::Remote {
            location: format!(
                "s3://{}/{}",
                self.layout.url().bucket,
                self.layout.lock(target)
            ),
            source: Box::new(source),
        }
    }

    fn read_holder(&self, target: &str) -> Result<Option<Holder>, LockError> {
        let key = self.layout.lock(target);
        let bytes = self
            .bucket
            .get(&key)
            .map_err(|source| self.lock_error(target, source))?;
        Ok(bytes.map(|bytes| {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| lock::unknown_holder(target))
        }))
    }

    fn sink(&self, run_id: &str, next: u64) -> Box<dyn Sink> {
        Box::new(RecordSink {
            bucket: self.bucket.clone(),
            layout: self.layout.clone(),
            run_id: run_id.to_string(),
            next,
        })
    }
}

/// Whether `holder` is a process seen alive on this host (this process, or a pid that
/// exists here). Never used to judge a lock dead: only to refuse breaking a live one.
fn alive_here(holder: &Holder) -> bool {
    holder.host == lock::host_name()
        && (holder.pid == std::process::id()
            || std::path::Path::new("/proc")
                .join(holder.pid.to_string())
                .exists())
}

/// Sleep before trying a conflicting write again (a blocking pause, as rare as the 409).
fn pause(attempt: u32) {
    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt + 1)));
}

impl StateStore for S3Store {
    fn location(&self) -> String {
        self.layout.url().to_string()
    }

    fn region(&self) -> Option<String> {
        Some(self.region.clone())
    }

    fn create_run(&self, run_id: &str) -> Result<Journal, JournalError> {
        let existing = self
            .records(run_id)
            .map_err(|source| self.journal_error(run_id, source))?;
        if !existing.is_empty() {
            return Err(JournalError::Io {
                path: self.journal_path(run_id),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        Ok(Journal::with_sink(
            &self.journal_path(run_id),
            self.sink(run_id, 1),
            1,
        ))
    }

    fn load_run(&self, run_id: &str) -> Result<(Loaded, RunState), LoadRunError> {
        let path = self.journal_path(run_id);
        let records = self
            .records(run_id)
            .map_err(|source| self.journal_error(run_id, source))?;
        if records.is_empty() {
            return Err(LoadRunError::NotFound(run_id.to_string()));
        }
        let keys = records.iter().map(|(_, key)| key.clone()).collect();
        let bodies = self
            .bucket
            .get_all(keys)
            .map_err(|source| self.journal_error(run_id, source))?;
        let loaded = store::parse_stored(
            &path,
            records
                .iter()
                .zip(&bodies)
                .map(|((number, _), body)| (Some(*number), body.as_deref().unwrap_or_default())),
        )?;
        let state =
            state::fold(&loaded.records).map_err(|source| LoadRunError::Fold { path, source })?;
        Ok((loaded, state))
    }

    fn reopen_run(&self, run_id: &str, loaded: &Loaded) -> Result<Journal, JournalError> {
        let records = self
            .records(run_id)
            .map_err(|source| self.journal_error(run_id, source))?;
        let numbers: Vec<u64> = records.iter().map(|(number, _)| *number).collect();
        for number in layout::beyond(&numbers, loaded.records.len()) {
            self.bucket
                .delete(&self.layout.record(run_id, number))
                .map_err(|source| self.journal_error(run_id, source))?;
        }
        let next = loaded.records.len() as u64 + 1;
        Ok(Journal::with_sink(
            &self.journal_path(run_id),
            self.sink(run_id, next),
            next,
        ))
    }

    fn run_ids(&self) -> Vec<String> {
        let Ok((_, prefixes)) = self.bucket.list(&self.layout.runs(), Some("/")) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = prefixes
            .iter()
            .filter_map(|prefix| self.layout.run_id_of(prefix))
            .collect();
        ids.sort();
        ids
    }

    fn lock(&self, target: &str, run_id: &str) -> Result<RunLock, LockError> {
        let key = self.layout.lock(target);
        let holder = lock::this_process(target, run_id);
        let body = serde_json::to_vec_pretty(&holder).unwrap_or_default();
        let taken = |holder: Holder| {
            let release = S3Lock {
                bucket: self.bucket.clone(),
                key: key.clone(),
                holder: holder.clone(),
            };
            Ok(RunLock::new(holder, None, Box::new(release)))
        };
        let mut attempt = 0;
        loop {
            match self.bucket.create(&key, body.clone()) {
                Ok(Created::Written) => return taken(holder),
                Ok(Created::Exists) => match self.read_holder(target)? {
                    // Ours: a first try whose answer was lost.
                    Some(found) if found == holder => return taken(holder),
                    Some(found) => {
                        return Err(LockError::Shared {
                            target: target.to_string(),
                            location: self.location(),
                            holder: Box::new(found),
                        });
                    }
                    // Released between the create and the read: try again.
                    None if attempt < CONFLICT_RETRIES => attempt += 1,
                    None => {
                        return Err(self.lock_error(
                            target,
                            CloudError::local(
                                "PutObject",
                                Some(key.clone()),
                                "the lock keeps changing hands",
                            ),
                        ));
                    }
                },
                Err(error) if error.status == Some(409) && attempt < CONFLICT_RETRIES => {
                    pause(attempt);
                    attempt += 1;
                }
                Err(error) => return Err(self.lock_error(target, error)),
            }
        }
    }

    fn unlock(&self, target: &str) -> Result<Unlocked, LockError> {
        let Some(holder) = self.read_holder(target)? else {
            return Ok(Unlocked::NotLocked);
        };
        if alive_here(&holder) {
            return Err(LockError::Held {
                target: target.to_string(),
                holder: Box::new(holder),
            });
        }
        self.bucket
            .delete(&self.layout.lock(target))
            .map_err(|source| self.lock_error(target, source))?;
        Ok(Unlocked::Unverified(holder))
    }

    fn lock_holder(&self, target: &str) -> Option<Holder> {
        self.read_holder(target).ok().flatten()
    }

    fn lock_is_held(&self, target: &str) -> bool {
        // Never judged dead by its pid: a lock in the bucket is held until it is released
        // or broken on purpose.
        self.lock_holder(target).is_some()
    }

    fn append_request(&self, run_id: &str, request: &Request) -> Result<(), JournalError> {
        let error = |source| self.journal_error(run_id, source);
        if self.records(run_id).map_err(error)?.is_empty() {
            return Err(JournalError::Io {
                path: self.journal_path(run_id),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        let line = requests::encode(request)?;
        // One object per answer, numbered; another writer that took a number first makes
        // this one try the next, so answers are never lost or overwritten.
        let (keys, _) = self
            .bucket
            .list(&self.layout.requests(run_id), None)
            .map_err(error)?;
        let mut number = u64::try_from(keys.len()).unwrap_or(u64::MAX) + 1;
        for _ in 0..64 {
            let key = self.layout.request(run_id, number);
            match self
                .bucket
                .create(&key, line.clone().into_bytes())
                .map_err(error)?
            {
                Created::Written => return Ok(()),
                Created::Exists => number += 1,
            }
        }
        Err(JournalError::Io {
            path: self.journal_path(run_id),
            source: io::Error::other("too many answers written at once; try again"),
        })
    }

    fn requests(&self, run_id: &str) -> Result<Vec<Request>, JournalError> {
        let error = |source| self.journal_error(run_id, source);
        let (mut keys, _) = self
            .bucket
            .list(&self.layout.requests(run_id), None)
            .map_err(error)?;
        keys.sort();
        let bodies = self.bucket.get_all(keys).map_err(error)?;
        Ok(bodies
            .into_iter()
            .flatten()
            .flat_map(|body| requests::parse(&body))
            .collect())
    }

    fn locked_targets(&self) -> Vec<String> {
        let Ok((keys, _)) = self.bucket.list(&self.layout.locks(), None) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|key| self.layout.lock_target(key))
            .collect()
    }
}

/// Appends a run's records to the bucket, one object each, never over an existing one.
struct RecordSink {
    bucket: Bucket,
    layout: Layout,
    run_id: String,
    next: u64,
}

impl Sink for RecordSink {
    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        let key = self.layout.record(&self.run_id, self.next);
        let mut attempt = 0;
        loop {
            match self.bucket.create(&key, line.to_vec()) {
                Ok(Created::Written) => break,
                Ok(Created::Exists) => {
                    // A first try that was written but whose answer was lost left these
                    // very bytes; anything else is another writer's record.
                    let there = self.bucket.get(&key).map_err(io::Error::other)?;
                    if there.as_deref() == Some(line) {
                        break;
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "record {} exists already (`{key}`): another process is writing \
                             this run's journal",
                            self.next
                        ),
                    ));
                }
                Err(error) if error.status == Some(409) && attempt < CONFLICT_RETRIES => {
                    pause(attempt);
                    attempt += 1;
                }
                Err(error) => return Err(io::Error::other(error)),
            }
        }
        self.next += 1;
        Ok(())
    }
}

/// A lock held in the bucket; released (deleted, if it still names its holder) on drop.
#[derive(Debug)]
struct S3Lock {
    bucket: Bucket,
    key: String,
    holder: Holder,
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        // Only our own lock: if it was broken and taken by another run meanwhile, it stays.
        let ours = self
            .bucket
            .get(&self.key)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Holder>(&bytes).ok())
            .is_some_and(|current| current == self.holder);
        if ours {
            let _ = self.bucket.delete(&self.key);
        }
    }
}
