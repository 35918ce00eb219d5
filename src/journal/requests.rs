//! Answers to a run's gates, written by other processes (`rebuild approve`, `rebuild
//! reject`). The journal has one writer, the run's own process (it numbers records and
//! holds the file open), so answers go to a separate stream per run, kept by the
//! [`StateStore`](super::StateStore) next to the journal: each answer is one line in the
//! journal's line format (a CRC-32 over the exact bytes), appended whole by any number of
//! writers. The gate reads the stream while it waits and journals the decision it takes
//! (`approval_decided`), so the journal stays the only record the run's state is folded
//! from. A damaged line (a writer that died mid-write) is passed over, never misread.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::record::{self, Actor, Verdict};
use super::{JournalError, StateStore};

/// One answer to a gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// When it was written.
    pub at: Timestamp,
    /// The gate's step id.
    pub step: String,
    /// The round of the gate's question it answers (from `approval_requested`).
    pub round: u32,
    /// Approve or reject.
    pub verdict: Verdict,
    /// Who answered.
    pub by: Actor,
    /// Why, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a running gate reads the answers given to it.
pub trait Answers: Send + Sync {
    /// Every answer to the run's gates so far, in the order written.
    fn answers(&self) -> Result<Vec<Request>, JournalError>;
}

/// No answers ever (runs without a state store, and tests).
#[derive(Debug, Default)]
pub struct NoAnswers;

impl Answers for NoAnswers {
    fn answers(&self) -> Result<Vec<Request>, JournalError> {
        Ok(Vec::new())
    }
}

/// The answers to one run's gates, read through its state store.
pub struct StoredAnswers {
    store: Arc<dyn StateStore>,
    run_id: String,
}

impl StoredAnswers {
    /// The answers to the gates of `run_id` in `store`.
    pub fn new(store: Arc<dyn StateStore>, run_id: &str) -> Self {
        Self {
            store,
            run_id: run_id.to_string(),
        }
    }
}

impl Answers for StoredAnswers {
    fn answers(&self) -> Result<Vec<Request>, JournalError> {
        self.store.requests(&self.run_id)
    }
}

/// One request as a line (with its newline).
pub fn encode(request: &Request) -> Result<String, serde_json::Error> {
    record::encode_line(request).map(|line| line + "\n")
}

/// Every intact request in `bytes`, in the order written; damaged lines are passed over.
pub fn parse(bytes: &[u8]) -> Vec<Request> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| record::decode_line(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: &str) -> Request {
        Request {
            at: Timestamp::UNIX_EPOCH,
            step: step.into(),
            round: 1,
            verdict: Verdict::Reject,
            by: Actor {
                user: "ana".into(),
                host: "laptop".into(),
                ..Actor::default()
            },
            reason: Some("not during the sale".into()),
        }
    }

    #[test]
    fn round_trips_and_passes_over_damaged_lines() {
        let mut bytes = encode(&sample("gate")).unwrap().into_bytes();
        let torn = encode(&sample("torn")).unwrap();
        bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        bytes.push(b'\n');
        bytes.extend_from_slice(encode(&sample("after")).unwrap().as_bytes());
        let steps: Vec<String> = parse(&bytes).into_iter().map(|r| r.step).collect();
        assert_eq!(steps, ["gate", "after"]);
    }
}
