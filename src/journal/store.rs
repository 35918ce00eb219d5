//! Where journal lines live. [`Journal`] appends records and makes each durable (fsync)
//! before returning, so no side effect can happen before its checkpoint. A journal is
//! backed by a file ([`FileSink`]) or by memory ([`MemorySink`], for tests).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;

use crate::secret::Redactor;

use super::record::{self, DecodeError, Event, Record, SCHEMA_VERSION};

/// Something that durably stores appended lines.
pub trait Sink: Send {
    /// Append one line (the newline included) and make it durable before returning.
    fn append(&mut self, line: &[u8]) -> io::Result<()>;
}

/// A journal file, fsync'd after every line.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl Sink for FileSink {
    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        self.file.write_all(line)?;
        self.file.sync_data()
    }
}

/// Lines kept in memory; clones share the same bytes, so a test can read what was written.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    bytes: std::sync::Arc<Mutex<Vec<u8>>>,
}

impl MemorySink {
    /// Everything appended so far.
    pub fn text(&self) -> String {
        let bytes = self
            .bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl MemorySink {
    /// Keep only the first `length` bytes (a reopened journal cuts off a torn tail).
    pub fn truncate(&self, length: u64) {
        let mut bytes = self
            .bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        bytes.truncate(usize::try_from(length).unwrap_or(usize::MAX));
    }
}

impl Sink for MemorySink {
    fn append(&mut self, line: &[u8]) -> io::Result<()> {
        self.bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(line);
        Ok(())
    }
}

/// Journal I/O failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing the file failed.
    #[error("journal `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line before the last one is damaged: the journal cannot be trusted.
    #[error("journal `{path}` line {line} is damaged: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// A record could not be serialised.
    #[error("cannot encode a journal record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What reading a journal found.
#[derive(Debug)]
pub struct Loaded {
    /// Every intact record, in order.
    pub records: Vec<Record>,
    /// Byte length of the intact part.
    pub intact_len: u64,
    /// A damaged last line that was dropped, with why.
    pub dropped_tail: Option<DecodeError>,
}

/// Read a journal file. A damaged *last* line (a torn write) is dropped and reported in
/// [`Loaded::dropped_tail`]; damage anywhere else is an error.
pub fn read(path: &Path) -> Result<Loaded, JournalError> {
    let io_error = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io_error)?;
    parse_bytes(path, &bytes)
}

/// Parse journal text read from `path` (see [`read`]).
pub fn parse(path: &Path, text: &str) -> Result<Loaded, JournalError> {
    parse_bytes(path, text.as_bytes())
}

/// Parse journal bytes. Lines are checked one by one, so a torn write that cut a multi-byte
/// character in half only damages the last line.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, JournalError> {
    match std::str::from_utf8(bytes) {
        // The usual case: the lines are found with the standard library's byte search.
        Ok(text) => parse_stored(
            path,
            text.split_inclusive('\n')
                .map(|line| (None, line.as_bytes())),
        ),
        Err(_) => parse_stored(
            path,
            bytes
                .split_inclusive(|byte| *byte == b'\n')
                .map(|line| (None, line)),
        ),
    }
}

/// Parse stored records in order, each one line (newline included), with the number its
/// storage gives it if any (an object store's key); a number that is not the record's
/// sequence number damages that record. A damaged *last* record is dropped and reported
/// in [`Loaded::dropped_tail`]; damage anywhere else is an error.
pub fn parse_stored<'a>(
    path: &Path,
    stored: impl IntoIterator<Item = (Option<u64>, &'a [u8])>,
) -> Result<Loaded, JournalError> {
    let mut records = Vec::new();
    let mut intact_len = 0u64;
    let mut dropped_tail = None;
    let lines: Vec<(Option<u64>, &[u8])> = stored.into_iter().collect();
    for (index, (number, raw)) in lines.iter().enumerate() {
        let is_last = index + 1 == lines.len();
        let complete = raw.ends_with(b"\n");
        let decoded = if complete {
            std::str::from_utf8(&raw[..raw.len() - 1])
                .map_err(|error| DecodeError::Malformed(format!("not UTF-8: {error}")))
                .and_then(record::decode)
        } else {
            Err(DecodeError::Malformed(
                "line has no end (torn write)".to_string(),
            ))
        };
        let decoded = decoded.and_then(|record| {
            let expected = records.len() as u64 + 1;
            if record.seq != expected {
                Err(DecodeError::Malformed(format!(
                    "sequence number {} where {expected} was expected",
                    record.seq,
                )))
            } else if let Some(number) = number.filter(|number| *number != record.seq) {
                Err(DecodeError::Malformed(format!(
                    "record {} is stored as number {number}",
                    record.seq
                )))
            } else {
                Ok(record)
            }
        });
        match decoded {
            Ok(record) => {
                records.push(record);
                intact_len += raw.len() as u64;
            }
            Err(error) if is_last && !matches!(error, DecodeError::Version(_)) => {
                dropped_tail = Some(error);
            }
            Err(source) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: index + 1,
                    source,
                });
            }
        }
    }
    Ok(Loaded {
        records,
        intact_len,
        dropped_tail,
    })
}

/// An open journal that appends records.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
    redactor: Redactor,
}

struct Inner {
    sink: Box<dyn Sink>,
    next_seq: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Journal")
            .field("path", &self.path)
            .finish()
    }
}

impl Journal {
    /// Create a new journal file; fails if it exists.
    pub fn create(path: &Path) -> Result<Self, JournalError> {
        let io_error = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        sync_directory(path).map_err(io_error)?;
        Ok(Self::with_sink(path, Box::new(FileSink { file }), 1))
    }

    /// Open an existing journal for appending after `loaded`, cutting off a torn tail
    /// first so new lines never join a damaged one.
    pub fn reopen(path: &Path, loaded: &Loaded) -> Result<Self, JournalError> {
        let io_error = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error)?;
        file.set_len(loaded.intact_len).map_err(io_error)?;
        file.seek(SeekFrom::End(0)).map_err(io_error)?;
        file.sync_data().map_err(io_error)?;
        let next = loaded.records.len() as u64 + 1;
        Ok(Self::with_sink(path, Box::new(FileSink { file }), next))
    }

    /// A journal over any sink, continuing at sequence number `next_seq`.
    pub fn with_sink(path: &Path, sink: Box<dyn Sink>, next_seq: u64) -> Self {
        Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { sink, next_seq }),
            redactor: Redactor::default(),
        }
    }

    /// This journal, scrubbing `redactor`'s secrets from every record before it is
    /// written: no secret value is ever journaled, whatever a step or an error quotes.
    #[must_use]
    pub fn redacting(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append an event; returns once it is durable.
    pub fn append(&self, event: Event) -> Result<Record, JournalError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let record = Record {
            v: SCHEMA_VERSION,
            seq: inner.next_seq,
            at: Timestamp::now(),
            event: self.redactor.scrub_data(event),
        };
        let mut line = record::encode(&record)?;
        line.push('\n');
        inner
            .sink
            .append(line.as_bytes())
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        inner.next_seq += 1;
        Ok(record)
    }
}

/// fsync the directory holding `path`, so a newly created file's entry is durable.
fn sync_directory(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(step: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            attempt: 1,
        }
    }

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        journal.append(started("a")).unwrap();
        journal.append(started("b")).unwrap();
        let loaded = read(&path).unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records[1].seq, 2);
        assert!(loaded.dropped_tail.is_none());
    }

    #[test]
    fn torn_last_line_is_dropped_and_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        journal.append(started("a")).unwrap();
        journal.append(started("b")).unwrap();
        drop(journal);
        let full = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 12]).unwrap();

        let loaded = read(&path).unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert!(loaded.dropped_tail.is_some());

        let journal = Journal::reopen(&path, &loaded).unwrap();
        journal.append(started("c")).unwrap();
        let again = read(&path).unwrap();
        assert!(again.dropped_tail.is_none());
        assert_eq!(again.records.len(), 2);
        assert_eq!(again.records[1].seq, 2);
        assert_eq!(again.records[1].event, started("c"));
    }

    #[test]
    fn a_torn_multibyte_character_only_drops_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        journal.append(started("a")).unwrap();
        journal.append(started("route ↔ subnet")).unwrap();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        let arrow = bytes.windows(3).rposition(|w| w == "↔".as_bytes()).unwrap();
        bytes.truncate(arrow + 1);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = read(&path).unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert!(loaded.dropped_tail.is_some());
    }

    #[test]
    fn damage_before_the_last_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::create(&path).unwrap();
        journal.append(started("a")).unwrap();
        journal.append(started("b")).unwrap();
        drop(journal);
        let damaged = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"a\"", "\"x\"", 1);
        std::fs::write(&path, damaged).unwrap();
        let error = read(&path).unwrap_err();
        assert!(
            matches!(error, JournalError::Corrupt { line: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn memory_sink_gets_the_same_lines() {
        let journal = Journal::with_sink(Path::new("mem"), Box::<MemorySink>::default(), 1);
        let record = journal.append(started("a")).unwrap();
        assert_eq!(record.seq, 1);
    }
}
