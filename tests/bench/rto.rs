//! Section `rto`: the time of a rebuild against the graph's lower bound.

use std::time::{Duration, Instant};

use crate::Options;
use crate::figures::median_secs;
use crate::support::playbooks::infrastructure_playbook;
use crate::support::world::World;

fn one_run(parallelism: &str, minute: Duration) -> Duration {
    let world = World::with_proxy();
    world.proxy().set_latency(Duration::from_millis(20));
    world.proxy().hold_eks_status(minute * 3);
    world.proxy().hold_rds_status(minute * 3);
    let run = world
        .rebuild_test(&infrastructure_playbook())
        .args(["--parallelism", parallelism]);
    let started = Instant::now();
    let outcome = run.run();
    let elapsed = started.elapsed();
    outcome.success();
    elapsed
}

/// Run the section.
pub fn run(options: &Options) {
    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..options.runs {
        serial.push(one_run("1", options.minute()));
        parallel.push(one_run("4", options.minute()));
    }
    let (serial, parallel) = (median_secs(&serial), median_secs(&parallel));
    println!(
        "rto: --parallelism 1 {serial:.2} s, default {parallel:.2} s, ratio {:.2}",
        parallel / serial
    );
}
