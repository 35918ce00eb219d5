//! Section `resume`: what `rebuild resume` costs before it does new work. The default
//! playbook runs on the whole testbed and is killed at its last mutating AWS call (the DNS
//! cutover, before its Route 53 change); then `rebuild resume --yes`, whose AWS calls the
//! proxy logs with the time it saw each. Figures: the time from spawning the resume to its
//! first new mutating call (the Route 53 change), the calls made before it (mutating ones
//! would be completed steps done again; read-only ones are what planning and adoption
//! ask), and the whole resume.

use std::time::{Duration, Instant, SystemTime};

use crate::Options;
use crate::figures::{median, median_ms, median_secs, tally};
use crate::support::proxy::{Call, is_mutating};
use crate::support::stack::Stack;

/// Where the first run is killed: the cutover step, before its change.
const KILLED_AT: &str = "dns/before-change";

/// Whether `call` is the cutover's change of the public record (Route 53's
/// `ChangeResourceRecordSets`, `POST /2013-04-01/hostedzone/ZONE/rrset/`).
fn is_cutover(call: &Call) -> bool {
    call.operation.starts_with("POST ") && call.operation.contains("/rrset")
}

/// A call's operation with the ids that differ from run to run left out (Route 53's zone
/// and change ids).
fn operation(call: &Call) -> String {
    let mut parts: Vec<&str> = call.operation.split('/').collect();
    for index in 1..parts.len() {
        if matches!(parts[index - 1], "hostedzone" | "change") {
            parts[index] = "ID";
        }
    }
    parts.join("/")
}

/// One resume's figures.
struct Sample {
    /// From spawning `rebuild resume` to its first new mutating call.
    to_first_change: Duration,
    /// The whole resume.
    total: Duration,
    /// The calls before the first new mutating call.
    before: Vec<Call>,
    /// Mutating calls of the whole resume that are not the cutover's.
    redone: Vec<Call>,
}

fn one_run() -> Sample {
    let stack = Stack::start();
    stack
        .rebuild_test()
        .failpoint(KILLED_AT)
        .run()
        .killed(KILLED_AT);
    let proxy = stack.world.proxy();
    proxy.reset_counts();
    let resume = stack.test().args(["resume", "--yes"]);
    let spawned = SystemTime::now();
    let started = Instant::now();
    let outcome = resume.run();
    let total = started.elapsed();
    outcome.success();
    let calls = proxy.calls();

    let first = calls
        .iter()
        .position(is_cutover)
        .unwrap_or_else(|| panic!("the resume never changed the record: {calls:#?}"));
    let to_first_change = calls[first]
        .at
        .duration_since(spawned)
        .expect("the proxy saw the change after the resume started");
    let redone = calls
        .iter()
        .filter(|call| is_mutating(&call.operation) && !is_cutover(call))
        .cloned()
        .collect();
    Sample {
        to_first_change,
        total,
        before: calls[..first].to_vec(),
        redone,
    }
}

/// Run the section.
pub fn run(options: &Options) {
    let samples: Vec<Sample> = (0..options.runs).map(|_| one_run()).collect();
    let to_first: Vec<Duration> = samples.iter().map(|s| s.to_first_change).collect();
    let totals: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    let count = |pick: fn(&Sample) -> usize| median(&samples.iter().map(pick).collect::<Vec<_>>());
    let mutating_before = count(|s| {
        s.before
            .iter()
            .filter(|c| is_mutating(&c.operation))
            .count()
    });
    let read_only_before = count(|s| {
        s.before
            .iter()
            .filter(|c| !is_mutating(&c.operation))
            .count()
    });
    let redone = count(|s| s.redone.len());
    // The calls are listed from the last run (they are the same in every run).
    let last = samples.last().expect("at least one run");
    let operations = |mutating: bool| {
        let names: Vec<String> = last
            .before
            .iter()
            .filter(|call| is_mutating(&call.operation) == mutating)
            .map(operation)
            .collect();
        tally(names.iter().map(String::as_str))
    };
    println!(
        "resume: first new mutating call {:.0} ms after spawning `rebuild resume` (target <= 1000 ms); whole resume {:.2} s",
        median_ms(&to_first),
        median_secs(&totals),
    );
    println!(
        "resume: before it, {mutating_before} mutating call(s) (target 0): {}",
        operations(true)
    );
    println!(
        "resume: before it, {read_only_before} read-only call(s): {}",
        operations(false)
    );
    println!(
        "resume: mutating calls other than the cutover's in the whole resume: {redone} (target 0): {}",
        tally(
            last.redone
                .iter()
                .map(operation)
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
        )
    );
}
