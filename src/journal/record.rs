//! Journal records: what happened in a run, one JSON line each. Every line carries the
//! schema version and a CRC-32 of the record's exact bytes, so a torn or altered line is
//! detected and never misread.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::stack::OwnedBy;

/// The record schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Step outputs and pinned values.
pub type Values = BTreeMap<String, serde_json::Value>;

/// The digests of a playbook's parts (see [`crate::playbook::parts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookParts {
    /// Each step's digest, by step id.
    pub steps: BTreeMap<String, String>,
    /// Each run-wide setting's digest (`name`, `source_region`, `rpo_limit`, `tags`).
    pub settings: BTreeMap<String, String>,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version.
    pub v: u32,
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// What happened.
    pub event: Event,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed; the run can be resumed.
    Failed,
    /// Stopped by a signal; the run can be resumed.
    Interrupted,
}

/// What a step did about a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceAction {
    /// It made it.
    Created,
    /// It found it, made by an earlier attempt of the run, and took it over.
    Adopted,
}

impl ResourceAction {
    /// `created` or `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Adopted => "adopted",
        }
    }
}

impl Outcome {
    /// The outcome in one lowercase word: `succeeded`, `failed` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Who did something to a run: the local user and host, and the AWS identity the tool
/// acted as (absent when it could not tell, e.g. no AWS step was planned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The local user name.
    pub user: String,
    /// The host name.
    pub host: String,
    /// The AWS caller identity's ARN (`sts:GetCallerIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_arn: Option<String>,
    /// Its AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account: Option<String>,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}@{}", self.user, self.host)?;
        match (&self.aws_arn, &self.aws_account) {
            (Some(arn), Some(account)) => write!(formatter, " as {arn} (account {account})"),
            (Some(arn), None) => write!(formatter, " as {arn}"),
            _ => Ok(()),
        }
    }
}

/// What a gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The run goes on past the gate.
    Approve,
    /// The gate fails its step.
    Reject,
}

impl Verdict {
    /// `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    /// `approved` or `rejected`.
    pub fn past_tense(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }
}

#[cfg(test)]
impl Event {
    /// The start record unit tests begin with: run `run_id` of playbook `playbook` (read
    /// from `PLAYBOOK.yaml`, digest `d`), ap-southeast-2 → ap-southeast-1, as the oldest
    /// journals wrote it (no stack, owner, step digests or actor). Tests change what they
    /// need with [`Event::started_with`].
    pub(crate) fn test_start(run_id: &str, playbook: &str) -> Self {
        Self::RunStarted {
            run_id: run_id.into(),
            playbook_path: format!("{playbook}.yaml"),
            playbook_name: playbook.into(),
            playbook_digest: "d".into(),
            source_region: "ap-southeast-2".into(),
            target_region: "ap-southeast-1".into(),
            stack: None,
            owned_by: OwnedBy::journaled_before_stacks(),
            playbook_parts: None,
            inputs: Values::new(),
            accept_rpo: false,
            host: "h".into(),
            tool_version: "0".into(),
            by: None,
        }
    }

    /// A start record changed by `change` (given its digest, parts and inputs).
    pub(crate) fn started_with(
        mut self,
        change: impl FnOnce(&mut String, &mut Option<PlaybookParts>, &mut Values),
    ) -> Self {
        if let Self::RunStarted {
            playbook_digest,
            playbook_parts,
            inputs,
            ..
        } = &mut self
        {
            change(playbook_digest, playbook_parts, inputs);
        }
        self
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A run began. Inputs are pinned here; secret inputs are recorded as redacted.
    RunStarted {
        /// The run's id.
        run_id: String,
        /// The playbook file.
        playbook_path: String,
        /// The playbook's name.
        playbook_name: String,
        /// SHA-256 of the playbook file.
        playbook_digest: String,
        /// Region that failed.
        source_region: String,
        /// Region being rebuilt in.
        target_region: String,
        /// The stack the run works on (see [`crate::stack`]). Journals written before
        /// stacks existed have none: their stack is the default one of their playbook
        /// and target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stack: Option<String>,
        /// Whose resources the run adopts. Journals written before stacks owned resources
        /// have none: such a run adopts only its own (named after its run id).
        #[serde(default = "OwnedBy::journaled_before_stacks")]
        owned_by: OwnedBy,
        /// The digest of each step and run-wide setting of the playbook, so that a resume
        /// with `--replan` can tell which steps an edit changed. Journals written before
        /// replanning existed have none: their playbook cannot be replanned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playbook_parts: Option<PlaybookParts>,
        /// Inputs, secrets redacted.
        inputs: Values,
        /// Whether an over-age snapshot was accepted on purpose.
        accept_rpo: bool,
        /// Host that started it.
        host: String,
        /// This tool's version.
        tool_version: String,
        /// Who started it (absent in journals written before this was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
    /// A process took the run up again.
    RunResumed {
        /// Host that resumed it.
        host: String,
        /// Its process id.
        pid: u32,
        /// Who resumed it (absent in journals written before this was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
    /// Someone broke the run's lock on purpose (`rebuild unlock`), its holder gone.
    LockBroken {
        /// Who broke it.
        by: Actor,
        /// The holder it named, as shown to them.
        holder: String,
    },
    /// A resume changed the value of a (non-secret) input that no succeeded step had used;
    /// the steps still to run use the new value.
    InputChanged {
        /// The input.
        name: String,
        /// The value it had.
        from: serde_json::Value,
        /// The value it has from now on.
        to: serde_json::Value,
    },
    /// A resume (`--replan`) took up an edited playbook, whose changes touch only steps that
    /// had not succeeded.
    PlaybookReplanned {
        /// SHA-256 of the playbook file as it was.
        previous_digest: String,
        /// SHA-256 of the playbook file from now on.
        playbook_digest: String,
        /// The digests of the edited playbook's parts.
        parts: PlaybookParts,
        /// Steps whose definition changed.
        changed: Vec<String>,
        /// Steps the edit added.
        added: Vec<String>,
        /// Steps the edit removed.
        removed: Vec<String>,
        /// Run-wide settings the edit changed (only while no step had succeeded).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        settings: Vec<String>,
        /// Values of inputs the edited playbook declares and the run had none of (secrets
        /// redacted), pinned from now on.
        #[serde(default, skip_serializing_if = "Values::is_empty")]
        inputs: Values,
    },
    /// An attempt of a step began.
    StepStarted {
        /// Step id.
        step: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// A step is waiting on the cloud (e.g. a database becoming available).
    StepWaiting {
        /// Step id.
        step: String,
        /// What it waits for.
        waiting_for: String,
        /// Which wait (the key of `StepWaited`): a resumed run's wait continues from when
        /// it first began (absent in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<String>,
    },
    /// A step's wait ended: the cloud's resource was ready. Later runs of the stack poll
    /// by how long this took (see `journal::WaitHistory`).
    StepWaited {
        /// Step id.
        step: String,
        /// Which wait: a key stable across runs (e.g. `cluster-active`, `wave:migrate`).
        wait: String,
        /// From its first check to the check that found it ready, in milliseconds.
        waited_ms: u64,
        /// Checks made.
        polls: u32,
    },
    /// A step fixed a value that a resume must reuse (e.g. the snapshot id).
    StepPinned {
        /// Step id.
        step: String,
        /// Name of the value.
        key: String,
        /// The value.
        value: serde_json::Value,
    },
    /// A step created (or adopted) a cloud resource.
    StepResource {
        /// Step id.
        step: String,
        /// Resource type, e.g. `vpc`.
        resource_type: String,
        /// Its id.
        id: String,
        /// `created` or `adopted`.
        action: ResourceAction,
    },
    /// A step succeeded.
    StepSucceeded {
        /// Step id.
        step: String,
        /// The attempt that succeeded.
        attempt: u32,
        /// Its outputs.
        outputs: Values,
    },
    /// An attempt failed.
    StepFailed {
        /// Step id.
        step: String,
        /// The attempt.
        attempt: u32,
        /// The error, rendered.
        error: String,
        /// Whether the cloud marked it retryable.
        retryable: bool,
        /// Whether another attempt follows.
        will_retry: bool,
    },
    /// An attempt stopped at a safe point because the run was stopping.
    StepInterrupted {
        /// Step id.
        step: String,
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A gate began waiting for approval (round `round` of that gate: a gate run again
    /// after a decision asks anew).
    ApprovalRequested {
        /// Step id.
        step: String,
        /// Which time this gate asks, from 1.
        round: u32,
        /// What approvers are shown.
        message: String,
        /// Who may answer (empty: anyone who can reach the state).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
        /// When the default is taken.
        deadline: Timestamp,
        /// The decision taken at the deadline.
        on_timeout: Verdict,
    },
    /// A gate's question was answered, by someone or by its timeout.
    ApprovalDecided {
        /// Step id.
        step: String,
        /// The round answered.
        round: u32,
        /// The decision.
        verdict: Verdict,
        /// Who answered (`None`: the timeout took the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
        /// Why, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An operator marked a step skipped (`rebuild skip`): a resume goes on past it, with
    /// the outputs given for it.
    StepSkipped {
        /// Step id.
        step: String,
        /// Who.
        by: Actor,
        /// Why, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The outputs its dependants use instead of the step's own.
        #[serde(default, skip_serializing_if = "Values::is_empty")]
        outputs: Values,
    },
    /// An operator asked for a succeeded or skipped step to run again on the next resume
    /// (`rebuild retry`).
    StepRetryRequested {
        /// Step id.
        step: String,
        /// Who.
        by: Actor,
    },
    /// The run ended (this process's part of it).
    RunFinished {
        /// How.
        outcome: Outcome,
    },
}

#[derive(Serialize)]
struct LineOut<'a> {
    crc: String,
    record: &'a RawValue,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    crc: String,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// Encode a record as one line (without the newline).
pub fn encode(record: &Record) -> Result<String, serde_json::Error> {
    encode_line(record)
}

/// Encode any value in the journal's line format: the value and the CRC-32 of its bytes.
pub fn encode_line<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let body = serde_json::to_string(value)?;
    let raw = RawValue::from_string(body)?;
    let crc = format!("{:08x}", crc32fast::hash(raw.get().as_bytes()));
    serde_json::to_string(&LineOut { crc, record: &raw })
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not the line shape at all.
    #[error("not a journal line: {0}")]
    Malformed(String),
    /// The checksum does not match the bytes.
    #[error("checksum mismatch (line says {expected}, bytes give {actual})")]
    Checksum {
        /// In the line.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// A schema version this build does not read.
    #[error(
        "journal schema version {0} is not supported by this build (it reads {SCHEMA_VERSION})"
    )]
    Version(u32),
}

/// Decode a line written by [`encode_line`], verifying the checksum (no schema version).
pub fn decode_line<T: serde::de::DeserializeOwned>(line: &str) -> Result<T, DecodeError> {
    let parsed: LineIn<'_> =
        serde_json::from_str(line).map_err(|error| DecodeError::Malformed(error.to_string()))?;
    let actual = format!("{:08x}", crc32fast::hash(parsed.record.get().as_bytes()));
    if actual != parsed.crc {
        return Err(DecodeError::Checksum {
            expected: parsed.crc,
            actual,
        });
    }
    serde_json::from_str(parsed.record.get())
        .map_err(|error| DecodeError::Malformed(error.to_string()))
}

/// The checksum and the record's text of a line exactly as [`encode_line`] writes it
/// (`{"crc":"XXXXXXXX","record":…}`), found without reading the record as JSON; `None`
/// for any other shape. A line that does not check out this way is judged by the JSON
/// reader, so the fast path never decides that a line is damaged.
fn framed(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(r#"{"crc":""#)?;
    let (crc, rest) = rest.split_at_checked(8)?;
    let record = rest.strip_prefix(r#"","record":"#)?.strip_suffix('}')?;
    Some((crc, record))
}

/// Decode one line (without the newline), verifying the checksum.
pub fn decode(line: &str) -> Result<Record, DecodeError> {
    let text = match framed(line) {
        // The line as this build writes it, intact: the record is read once.
        Some((crc, record)) if checksum(record) == crc => record,
        _ => {
            let parsed: LineIn<'_> = serde_json::from_str(line)
                .map_err(|error| DecodeError::Malformed(error.to_string()))?;
            let record = parsed.record.get();
            let actual = checksum(record);
            if actual != parsed.crc {
                return Err(DecodeError::Checksum {
                    expected: parsed.crc,
                    actual,
                });
            }
            record
        }
    };
    // One pass for a record of this schema; its version is looked into apart only when
    // the record is of another (or does not read as a record at all).
    match serde_json::from_str::<Record>(text) {
        Ok(record) if record.v == SCHEMA_VERSION => Ok(record),
        Ok(record) => Err(DecodeError::Version(record.v)),
        Err(error) => match version_of(text) {
            Some(v) if v != SCHEMA_VERSION => Err(DecodeError::Version(v)),
            _ => Err(DecodeError::Malformed(error.to_string())),
        },
    }
}

/// The CRC-32 of a record's text, as the line carries it.
fn checksum(text: &str) -> String {
    format!("{:08x}", crc32fast::hash(text.as_bytes()))
}

/// The schema version a record's text says (0 when it says none as a number), or `None`
/// when the text is not JSON.
fn version_of(text: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(
        value
            .get("v")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            v: SCHEMA_VERSION,
            seq: 7,
            at: Timestamp::UNIX_EPOCH,
            event: Event::StepStarted {
                step: "network".into(),
                attempt: 2,
            },
        }
    }

    #[test]
    fn round_trips() {
        let line = encode(&sample()).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(decode(&line).unwrap(), sample());
    }

    #[test]
    fn a_start_record_written_before_replanning_existed_still_loads() {
        let old = r#"{"v":1,"seq":1,"at":"2025-03-01T04:15:22Z","event":{"type":"run_started","run_id":"r1","playbook_path":"/p.yaml","playbook_name":"p","playbook_digest":"d","source_region":"ap-southeast-2","target_region":"ap-southeast-1","inputs":{},"accept_rpo":false,"host":"h","tool_version":"0.1.0"}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        let Event::RunStarted { playbook_parts, .. } = record.event else {
            panic!("not a start record: {record:?}");
        };
        assert_eq!(playbook_parts, None);
    }

    #[test]
    fn changes_made_by_a_resume_round_trip() {
        for event in [
            Event::InputChanged {
                name: "db_instance_class".into(),
                from: serde_json::json!("db.m1.small"),
                to: serde_json::json!("db.m7g.large"),
            },
            Event::PlaybookReplanned {
                previous_digest: "a".into(),
                playbook_digest: "b".into(),
                parts: PlaybookParts {
                    steps: BTreeMap::from([("nodes".to_string(), "c".to_string())]),
                    settings: BTreeMap::new(),
                },
                changed: vec!["nodes".into()],
                added: Vec::new(),
                removed: Vec::new(),
                settings: Vec::new(),
                inputs: Values::new(),
            },
        ] {
            let record = Record { event, ..sample() };
            assert_eq!(decode(&encode(&record).unwrap()).unwrap(), record);
        }
    }

    #[test]
    fn gate_and_operator_records_round_trip() {
        let by = Actor {
            user: "ana".into(),
            host: "laptop".into(),
            ..Actor::default()
        };
        for event in [
            Event::ApprovalRequested {
                step: "gate".into(),
                round: 1,
                message: "go?".into(),
                approvers: Vec::new(),
                deadline: Timestamp::UNIX_EPOCH,
                on_timeout: Verdict::Reject,
            },
            Event::ApprovalDecided {
                step: "gate".into(),
                round: 1,
                verdict: Verdict::Approve,
                by: Some(by.clone()),
                reason: None,
            },
            Event::StepSkipped {
                step: "smoke".into(),
                by: by.clone(),
                reason: Some("broken for good".into()),
                outputs: Values::new(),
            },
            Event::StepRetryRequested {
                step: "smoke".into(),
                by,
            },
        ] {
            let record = Record { event, ..sample() };
            assert_eq!(decode(&encode(&record).unwrap()).unwrap(), record);
        }
    }

    #[test]
    fn detects_altered_bytes() {
        let line = encode(&sample())
            .unwrap()
            .replace("\"attempt\":2", "\"attempt\":3");
        assert!(matches!(decode(&line), Err(DecodeError::Checksum { .. })));
    }

    #[test]
    fn a_line_written_in_another_layout_decodes_the_same_and_is_checked_the_same() {
        let line = encode(&sample()).unwrap();
        assert!(
            framed(&line).is_some(),
            "this build's lines take the fast path"
        );
        let (crc, record) = framed(&line).unwrap();
        let spaced = format!("{{ \"record\": {record}, \"crc\": \"{crc}\" }}");
        assert!(framed(&spaced).is_none());
        assert_eq!(decode(&spaced).unwrap(), decode(&line).unwrap());
        let altered = spaced.replace("\"attempt\":2", "\"attempt\":3");
        assert!(matches!(
            decode(&altered),
            Err(DecodeError::Checksum { .. })
        ));
        // A wrong checksum in the usual layout is named as the reader names it.
        let wrong = line.replacen(crc, "00000000", 1);
        assert_eq!(
            decode(&wrong),
            Err(DecodeError::Checksum {
                expected: "00000000".into(),
                actual: crc.into()
            })
        );
        // Another schema version is told apart from damage, in both layouts.
        let future = |text: &str| {
            let record = text.replacen("\"v\":1,", "\"v\":9,", 1);
            let (_, body) = framed(&record).unwrap();
            format!("{{\"crc\":\"{}\",\"record\":{body}}}", checksum(body))
        };
        assert_eq!(decode(&future(&line)), Err(DecodeError::Version(9)));
    }

    #[test]
    fn detects_torn_line() {
        let line = encode(&sample()).unwrap();
        let torn = &line[..line.len() - 5];
        assert!(matches!(decode(torn), Err(DecodeError::Malformed(_))));
    }
}
