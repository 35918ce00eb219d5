//! The executor: runs a planned playbook's steps on tokio — every ready step concurrently up
//! to the parallelism limit — with per-step timeouts and retries, journaling each transition
//! before the next side effect. On a failure or a signal it schedules nothing new, lets
//! running steps reach a safe point, and reports how to resume.

mod cancel;
mod run;
#[cfg(test)]
mod tests;

pub use cancel::Cancel;
pub use run::{Executor, Redactor, RunResult};
