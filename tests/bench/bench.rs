//! The benchmarks: `cargo bench --bench rto` (add `--profile dev` to reuse the test build).
//! Each section runs the real `rebuild` binary (or the crate's pure layers) against the
//! testbed of the integration tests and prints figures: medians of several runs, measured
//! side by side in one process run. Nothing here asserts a time: the machines are shared
//! and noisy, so the figures are for reading and comparing, not for failing a build.
//!
//!     cargo bench --bench rto                  # every section, realistic durations
//!     cargo bench --bench rto -- --quick       # durations ×0.1, one run each
//!     cargo bench --bench rto -- rto --runs 5  # one section, five runs
//!     cargo bench --bench rto -- rto --infrastructure --minute 10  # NAT 20 s … RDS 250 s
//!     cargo bench --bench rto -- rto --baseline OLD/target/debug/rebuild \
//!         --baseline-playbook OLD/playbooks/region-rebuild.yaml  # beside another build
//!
//! Sections: `rto` (a rebuild against the graph's lower bound), `resume` (what a resume
//! does before its first new change), `plan` (validating and planning 500 steps), `replay`
//! (reading a journal of 100,000 records).
//!
//! `cargo test` runs this binary too (without `--bench`): then every section runs once in
//! quick mode, to prove the benchmark still works.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmarks, like tests, stop at the first surprise, with a message"
)]
#![expect(
    unreachable_pub,
    reason = "the support module is shared with the integration tests, whose items are `pub`"
)]
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints what it ran and measured"
)]

#[path = "../it/support/mod.rs"]
#[allow(
    dead_code,
    unused_imports,
    reason = "the integration tests' support: the benchmarks use part of it"
)]
mod support;

/// Counts this process's heap, for the sections that measure the crate in-process.
#[global_allocator]
static ALLOCATOR: figures::Counting = figures::Counting;

mod figures;
mod plan;
mod replay;
mod resume;
mod rto;

use std::time::Duration;

/// What to run, from the command line.
pub struct Options {
    /// Durations ×0.1 and one run (also what `cargo test` runs).
    pub quick: bool,
    /// Runs per measured variant (medians are reported).
    pub runs: usize,
    /// Sections to run (empty: all).
    pub sections: Vec<String>,
    /// Another build of `rebuild` to measure side by side with this one (`--baseline PATH`).
    pub baseline: Option<std::path::PathBuf>,
    /// The playbook the baseline build runs (`--baseline-playbook PATH`; default: this
    /// build's default playbook).
    pub baseline_playbook: Option<std::path::PathBuf>,
    /// Keep the runs' state (journals and debug logs) and say where (`--keep`).
    pub keep: bool,
    /// Run only the default playbook's infrastructure half (`--infrastructure`).
    pub infrastructure: bool,
    /// Seconds a simulated minute lasts (`--minute SECS`; default 1, 0.1 with `--quick`).
    pub minute: Option<f64>,
}

impl Options {
    fn from_args() -> Self {
        let mut args = std::env::args().skip(1);
        let mut options = Options {
            quick: true,
            runs: 1,
            sections: Vec::new(),
            baseline: None,
            baseline_playbook: None,
            keep: false,
            infrastructure: false,
            minute: None,
        };
        let mut benching = false;
        let mut runs = None;
        let mut quick = false;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => benching = true,
                "--quick" => quick = true,
                "--keep" => options.keep = true,
                "--infrastructure" => options.infrastructure = true,
                "--minute" => options.minute = args.next().and_then(|value| value.parse().ok()),
                "--runs" => runs = args.next().and_then(|value| value.parse().ok()),
                "--baseline" => options.baseline = args.next().map(Into::into),
                "--baseline-playbook" => {
                    options.baseline_playbook = args.next().map(Into::into);
                }
                // What `cargo test` passes to every test binary.
                "--test-threads" | "--skip" => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                section => options.sections.push(section.to_string()),
            }
        }
        if benching {
            options.quick = quick;
            options.runs = runs.unwrap_or(if quick { 1 } else { 3 });
        } else {
            options.runs = runs.unwrap_or(1);
        }
        options
    }

    /// Whether section `name` was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|section| section == name)
    }

    /// How much of a simulated minute a bench waits: a second, or a tenth in quick mode.
    pub fn minute(&self) -> Duration {
        if let Some(seconds) = self.minute.filter(|seconds| *seconds > 0.0) {
            Duration::from_secs_f64(seconds)
        } else if self.quick {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        }
    }
}

fn main() {
    let options = Options::from_args();
    if options.wants("rto") {
        rto::run(&options);
    }
    if options.wants("resume") {
        resume::run(&options);
    }
    if options.wants("plan") {
        plan::run(&options);
    }
    if options.wants("replay") {
        replay::run(&options);
    }
}
