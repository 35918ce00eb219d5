//! `rebuild`: rebuild a whole production stack in another AWS region from a declarative,
//! checkpointed playbook.
//!
//! The pipeline reads from the module names: [`playbook`] (parse, validate; pure) →
//! [`plan`] (graph and actions; pure, plus a read-only survey) → [`executor`] (scheduling,
//! retries, waits) over [`steps`] (one module per step kind) with [`journal`] as the
//! checkpoint, [`cloud`] for client construction and [`report`] for what the user sees.

pub mod cli;
pub mod cloud;
pub mod commands;
pub mod error;
pub mod executor;
pub mod failpoint;
pub mod journal;
pub mod logging;
pub mod plan;
pub mod playbook;
pub mod report;
pub mod runtime;
pub mod secret;
pub mod stack;
pub mod state_url;
pub mod steps;
pub mod usage;
pub mod workspace;
