//! What the integration tests share: the runner builder and the stand-ins they start on
//! loopback, one file each.
//!
//! - [`test`]: `Test::new()…run()`, the one way to run the binary, and its `Outcome` with
//!   assertion helpers.
//! - [`screen`]: the binary on a pseudo-terminal rendered on a virtual screen, for tests
//!   that wait for a question to be seen before they type the answer.
//! - [`snapshot`]: the insta settings (filters for times, run ids, durations, paths and
//!   cloud ids) every snapshot of the binary's output goes through.
//! - [`moto`]: a private `moto_server` (AWS) per test.
//! - [`proxy`]: the fault/latency proxy in front of moto, counting calls; [`holds`]: its
//!   per-service status holds (RDS `creating`, NAT `pending`, EKS `CREATING`);
//!   [`aws_wire`]: what it reads from requests and how it writes faults; [`strict`]: what it
//!   refuses because AWS refuses it and moto does not (on by default).
//! - [`sts`]: EKS bearer tokens read and verified as STS does, and callers asked of moto's
//!   STS (for the Kubernetes testbed's EKS authenticator and the proxy's cluster creators).
//! - [`seed`]: SDK clients, and "production" seeded through them (database and snapshots,
//!   Aurora, IAM roles, images, DNS zone).
//! - [`route53`]: hosted zones (public and private twins) and record sets (simple, alias,
//!   routing policy) seeded and read through the SDK.
//! - [`inventory`]: what exists in AWS, counted through the APIs.
//! - [`playbooks`]: the shipped playbook, its infrastructure half and rewritten copies.
//! - [`world`]: one test's AWS world (moto, maybe the proxy, a state directory) and reading
//!   runs back with `rebuild status`.
//! - [`git`]: bare repositories and `git daemon`; [`github`]: the GitHub REST stand-in.
//! - [`kube`]: a real Kubernetes control plane with a kubelet stand-in; [`reach`]: whether
//!   its Pods reach the database, from moto's security groups; [`aws_access`]: whether
//!   they get AWS credentials, from the proxy's Pod Identity associations and IAM trust.
//! - [`tls`]: a test CA, server certificates it signs, and importing them into ACM.
//! - [`stack`]: the whole testbed at once, for the default playbook end to end.

pub mod aws_access;
pub mod aws_wire;
pub mod git;
pub mod github;
pub mod holds;
pub mod http;
pub mod inventory;
pub mod kube;
pub mod moto;
pub mod playbooks;
pub mod proxy;
pub mod reach;
pub mod route53;
pub mod screen;
pub mod seed;
pub mod snapshot;
pub mod stack;
pub mod strict;
pub mod sts;
pub mod test;
pub mod tls;
pub mod world;
