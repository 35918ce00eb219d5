//! The integration tests, compiled into one binary (`cargo test --test it`): each module
//! runs the real `rebuild` binary against servers it starts on loopback — moto (AWS) with
//! the real SDK clients, a real kube-apiserver, a real `git daemon`, and the stand-ins of
//! [`support`] (GitHub REST, the fault proxy). Select an area with its module path, e.g.
//! `cargo test --test it git_fetch::`; the drill and the benchmark are ignored tests:
//! `cargo test --test it drill:: -- --ignored --nocapture`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their support code stop at the first surprise, with a message"
)]
#![expect(
    unreachable_pub,
    reason = "the support module is the test binary's own library: its items are `pub` for every test module"
)]
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the drill and the benchmark show what they ran and measured"
)]

mod support;

mod amend;
mod certificate;
mod cutover;
mod deploy;
mod drill;
mod e2e;
mod eks;
mod eks_auth;
mod gates;
mod git_fetch;
mod harness;
mod identity;
mod kube_testbed;
mod network;
mod plan;
mod plan_quotas;
mod pod_identity;
mod questions;
mod rds;
mod rebuild;
mod resume_cost;
mod scenarios;
mod stack;
mod state_s3;
mod strict_cluster;
mod validate;
