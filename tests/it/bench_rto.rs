//! Benchmark (ignored by default; prints figures, asserts nothing about time): wall time of
//! the default playbook on the testbed with realistic waits — every AWS call delayed by the
//! proxy, EKS and RDS held in `CREATING` — with `--parallelism 1` (steps one at a time) and
//! the default (the database restore runs beside the cluster and node group). Measured side
//! by side in one process, medians of three runs each.
//!
//!     cargo test --test it bench_rto:: -- --ignored --nocapture

use std::time::{Duration, Instant};

use crate::support::playbooks::infrastructure_playbook;
use crate::support::world::World;

fn one_run(parallelism: &str) -> Duration {
    let world = World::with_proxy();
    world.proxy().set_latency(Duration::from_millis(20));
    world.proxy().hold_eks_status(Duration::from_secs(3));
    world.proxy().hold_rds_status(Duration::from_secs(3));
    let run = world
        .rebuild_test(&infrastructure_playbook())
        .args(["--parallelism", parallelism]);
    let started = Instant::now();
    let outcome = run.run();
    let elapsed = started.elapsed();
    outcome.success();
    elapsed
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn rto_with_and_without_parallel_steps() {
    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..3 {
        serial.push(one_run("1"));
        parallel.push(one_run("4"));
    }
    let (serial, parallel) = (median(serial), median(parallel));
    println!("default playbook, 20 ms per AWS call, EKS and RDS held CREATING for 3 s:");
    println!("  --parallelism 1: median {:.2} s", serial.as_secs_f64());
    println!("  --parallelism 4: median {:.2} s", parallel.as_secs_f64());
    println!(
        "  ratio parallel/serial: {:.2}",
        parallel.as_secs_f64() / serial.as_secs_f64()
    );
}
