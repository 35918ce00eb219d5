//! The debug log: every run writes `debug.log` next to its journal, at debug level for this
//! tool and the AWS SDK (each operation, attempt, retry and response status), so an
//! incident review can see every call that was made. Lines pass through the run's
//! [`Redactor`] and lose request signatures and session tokens before they are written.
//! On stderr nothing is logged unless `-v` (info, then debug, then trace) or `RUST_LOG`
//! asks for it. Installed once by `main`; a run command starts capturing with [`capture`]
//! (its plan's calls are kept in memory) and writes the file once its journal exists
//! ([`open`]), so a refused plan leaves no file behind.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{EnvFilter, FilterExt, FilterFn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::secret::{REDACTED, Redactor};

/// What the debug log records: debug for this tool and the AWS SDK, less for the
/// transport crates underneath (their debug lines are bytes and connection pools).
const FILE_LEVELS: &str =
    "debug,hyper=info,hyper_util=info,h2=info,rustls=info,tower=info,reqwest=info,git2=info";

/// The run's debug log.
static LOG: OnceLock<DebugLog> = OnceLock::new();

/// Most bytes kept in memory before a run's file is open (its plan's calls).
const BUFFER_LIMIT: usize = 8 << 20;

/// Where debug lines go: memory from [`capture`] until [`open`], then the file; scrubbed
/// with the run's redactor.
#[derive(Clone, Default)]
struct DebugLog {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Capturing (a run command began), with its redactor.
    redactor: Option<Redactor>,
    /// Lines before the file was open.
    buffer: Vec<u8>,
    /// The file, once open.
    file: Option<(PathBuf, BufWriter<File>)>,
}

impl DebugLog {
    fn capturing(&self) -> bool {
        self.inner
            .lock()
            .is_ok_and(|state| state.redactor.is_some())
    }

    fn write_line(&self, text: &str) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        let Some(redactor) = &state.redactor else {
            return;
        };
        let line = scrub(&redactor.scrub(text));
        let State { buffer, file, .. } = &mut *state;
        match file {
            Some((_, writer)) => {
                let _ = writer.write_all(line.as_bytes());
                let _ = writer.flush();
            }
            None if buffer.len() + line.len() <= BUFFER_LIMIT => {
                buffer.extend_from_slice(line.as_bytes());
            }
            None => {}
        }
    }
}

/// Install the logging: stderr at the level `-v` asks for (`verbosity` 0: nothing unless
/// `RUST_LOG` says; 1: info; 2: debug; 3: trace) and the debug log, dormant until
/// [`capture`]. Called once, by `main`.
pub fn init(verbosity: u8) {
    let stderr_filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::new(match verbosity {
            0 => "off",
            1 => "info,hyper=warn,h2=warn,rustls=warn",
            2 => "debug,hyper=info,hyper_util=info,h2=info,rustls=info",
            _ => "trace",
        }),
    };
    let stderr = fmt::layer()
        .with_writer(io::stderr)
        .with_target(true)
        .with_filter(stderr_filter);
    let log = LOG.get_or_init(DebugLog::default).clone();
    let dormant = log.clone();
    let file = fmt::layer()
        .with_ansi(false)
        .with_target(true)
        .with_writer(log)
        .with_filter(EnvFilter::new(FILE_LEVELS).and(FilterFn::new(move |_| dormant.capturing())));
    // Another subscriber already installed (a test harness): keep it.
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// Start capturing a run's debug lines (in memory until [`open`]), scrubbing
/// `redactor`'s secrets. Called when a run command begins, before its plan.
pub fn capture(redactor: Redactor) {
    let log = LOG.get_or_init(DebugLog::default);
    if let Ok(mut state) = log.inner.lock() {
        state.redactor = Some(redactor);
    }
}

/// Write the run's debug log to `path` from now on, after what was captured so far
/// (created, or appended to: a resumed run continues its log).
pub fn open(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut writer = BufWriter::new(file);
    let log = LOG.get_or_init(DebugLog::default);
    let mut state = log
        .inner
        .lock()
        .map_err(|_| io::Error::other("the debug log's lock is poisoned"))?;
    let buffered = std::mem::take(&mut state.buffer);
    writer.write_all(&buffered)?;
    writer.flush()?;
    state.file = Some((path.to_path_buf(), writer));
    Ok(())
}

/// Log the process's peak resident memory (Linux's `VmHWM`), then flush the debug log:
/// what `main` does last.
pub fn finish() {
    if let Some(kib) = peak_resident_kib() {
        tracing::debug!(peak_rss_kib = kib, "peak resident memory");
    }
    flush();
}

/// The process's peak resident set size in KiB, where the system reports it.
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_peak_resident(&status)
}

/// `VmHWM` of a `/proc/PID/status` text, in KiB.
fn parse_peak_resident(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Flush the debug log (lines are also flushed one by one).
pub fn flush() {
    if let Some(log) = LOG.get()
        && let Ok(mut state) = log.inner.lock()
        && let Some((_, writer)) = state.file.as_mut()
    {
        let _ = writer.flush();
    }
}

/// The debug log's path, if a run opened one.
pub fn path() -> Option<PathBuf> {
    let log = LOG.get()?;
    let state = log.inner.lock().ok()?;
    state.file.as_ref().map(|(path, _)| path.clone())
}

/// One formatted event, collected and then written scrubbed as a whole.
pub struct Line {
    log: DebugLog,
    buffer: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.log.write_line(&String::from_utf8_lossy(&self.buffer));
    }
}

impl<'a> MakeWriter<'a> for DebugLog {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            log: self.clone(),
            buffer: Vec::new(),
        }
    }
}

/// Credentials that can appear in a request line whatever the run's secrets are: the
/// value after each of these (to the end of the header or parameter) is replaced.
const CREDENTIAL_MARKERS: [&str; 6] = [
    "authorization: ",
    "x-amz-security-token: ",
    "X-Amz-Security-Token=",
    "X-Amz-Signature=",
    "X-Amz-Credential=",
    "\"authorization\": ",
];

/// `text` without request signatures and session tokens.
fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for marker in CREDENTIAL_MARKERS {
        let mut from = 0;
        while let Some(found) = find_case_insensitive(&out[from..], marker) {
            let start = from + found + marker.len();
            let end = out[start..]
                .find(['\n', '&', ',', '}', ')', ' ', '\t'])
                .map_or(out.len(), |end| start + end);
            // A header value of two words (`AWS4-HMAC-SHA256 Credential=…`): to the line's end.
            let end =
                if marker.starts_with("authorization") || marker.starts_with("\"authorization") {
                    out[start..].find('\n').map_or(out.len(), |end| start + end)
                } else {
                    end
                };
            out.replace_range(start..end, REDACTED);
            from = start + REDACTED.len();
        }
    }
    out
}

fn find_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_memory_is_read_from_vmhwm() {
        let status =
            "Name:\trebuild\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_peak_resident(status), Some(41_234));
        assert_eq!(parse_peak_resident("Name:\trebuild\n"), None);
    }

    #[test]
    fn signatures_and_tokens_never_reach_the_file() {
        let line = "request: authorization: AWS4-HMAC-SHA256 Credential=AKIA/20261202/ap-southeast-1/ec2/aws4_request, Signature=abc\nx-amz-security-token: FQoGZXIvYXdzEJr\nurl: https://sts.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok\n";
        let clean = scrub(line);
        for secret in [
            "AKIA",
            "Signature=abc",
            "FQoGZXIvYXdzEJr",
            "deadbeef",
            "tok\n",
        ] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(clean.contains("Action=GetCallerIdentity"), "{clean}");
        assert!(clean.contains("url: https://sts.amazonaws.com/"), "{clean}");
        assert_eq!(scrub("nothing to hide\n"), "nothing to hide\n");
    }
}
