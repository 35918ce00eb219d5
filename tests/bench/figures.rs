//! Figures the sections share: medians, the peak resident memory of a child process, the
//! peak of this process's own heap while a closure runs, and call tallies.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The median (the upper one of an even count).
pub fn median<T: Ord + Copy>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// The median of durations, in seconds.
pub fn median_secs(values: &[Duration]) -> f64 {
    median(values).as_secs_f64()
}

/// The median of durations, in milliseconds.
pub fn median_ms(values: &[Duration]) -> f64 {
    median(values).as_secs_f64() * 1000.0
}

/// `name ×count` for each distinct name, most frequent first (then by name), comma-separated;
/// `none` for no names.
pub fn tally<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".to_string();
    }
    let mut sorted: Vec<(&str, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    sorted
        .iter()
        .map(|(name, count)| format!("{name} ×{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one run of a child process cost.
pub struct Measured {
    /// From spawning it to reaping it.
    pub elapsed: Duration,
    /// Its peak resident set (VmHWM), in KiB, as the kernel reports it when it exits.
    pub peak_kib: u64,
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Measured {
    /// Panics with its output unless it exited 0.
    pub fn success(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `command` to the end: its time and its peak resident memory. The peak is the
/// process's high-water mark (VmHWM in `/proc/PID/status`), read exactly when it exits
/// from the resource usage `wait4` reports, so a peak just before exit is not missed as a
/// poll of `/proc` would miss it.
pub fn measure(mut command: Command) -> Measured {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    let (status, peak_kib) = reap(pid);
    let elapsed = started.elapsed();
    // Reaped here: dropping `child` neither waits nor kills.
    drop(child);
    Measured {
        elapsed,
        peak_kib,
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Wait for child `pid`: its wait status and its peak resident set in KiB.
#[expect(
    unsafe_code,
    reason = "wait4 is the one call that gives a child's peak memory at its exit"
)]
fn reap(pid: libc::pid_t) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes for the call's duration.
        let reaped = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4({pid}): {error}"
        );
    }
    // Linux reports `ru_maxrss` in KiB.
    (status, u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

/// The bench's allocator: the system's, counting the bytes in use and their peak, so an
/// in-process section can say how much heap the crate's layers took.
pub struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts and defers to the system's"
)]
// SAFETY: every call is passed on unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

fn grew(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// Run `work` in this process: its result, its time, and the most heap it held at once
/// beyond what was in use when it began, in KiB (other threads' allocations meanwhile
/// count too: run it while the bench is otherwise idle).
pub fn in_process<T>(work: impl FnOnce() -> T) -> (T, Duration, u64) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let result = work();
    let elapsed = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (result, elapsed, (peak / 1024) as u64)
}

/// One measured thing of a round: its name, its time and its peak memory in KiB (the heap
/// for names ending in `(in-process)`, else a child's peak resident set).
pub type Figure = (&'static str, Duration, u64);

/// Print the medians of `rounds` (each the same figures in the same order), one line per
/// figure, prefixed with `section`.
pub fn print_medians(section: &str, rounds: &[Vec<Figure>]) {
    let Some(first) = rounds.first() else {
        return;
    };
    let width = first
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(0);
    for (index, (name, _, _)) in first.iter().enumerate() {
        let times: Vec<Duration> = rounds.iter().map(|round| round[index].1).collect();
        let peaks: Vec<u64> = rounds.iter().map(|round| round[index].2).collect();
        let memory = if name.ends_with("(in-process)") {
            "heap"
        } else {
            "peak RSS"
        };
        println!(
            "{section}: {name:<width$} {:>8.1} ms, {memory} {:.1} MiB",
            median_ms(&times),
            median(&peaks) as f64 / 1024.0
        );
    }
}
