//! Section `replay`: what reading a long journal costs. A journal of 100,000 records is
//! written in the state directory's layout: a run of 500 steps resumed again and again,
//! each round starting, pinning, journaling resources of, waiting on and failing every
//! step (the last round succeeds). Figures: `rebuild status` on it (text and JSON), with
//! time and peak memory, and the replay in this process — reading the journal
//! (`journal::store::read`: lines, checksums, records) and folding it into a `RunState`
//! (`journal::state::fold`) — with time and heap. The run's playbook file is not there, so
//! the figures are the journal's alone.

use std::io::Write as _;
use std::path::Path;

use rebuild::journal::{Event, Outcome, Record, ResourceAction, Values, record, state, store};

use crate::Options;
use crate::figures::{Figure, in_process, measure, print_medians};
use crate::support::test::Test;
use crate::support::world::TARGET;

/// Records in the journal.
const RECORDS: usize = 100_000;
/// Steps of the run.
const STEPS: usize = 500;
const RUN_ID: &str = "20260101-000000-beef";

/// The events of one round of the run: resumed, then every step tried (`last`: succeeds).
fn round(attempt: u32, last: bool) -> Vec<Event> {
    let mut events = vec![Event::RunResumed {
        host: "bench".into(),
        pid: 4242,
        by: None,
    }];
    for index in 1..=STEPS {
        let step = format!("step-{index:03}");
        events.push(Event::StepStarted {
            step: step.clone(),
            attempt,
        });
        events.push(Event::StepPinned {
            step: step.clone(),
            key: "waves_applied".into(),
            value: serde_json::json!(attempt),
        });
        events.push(Event::StepResource {
            step: step.clone(),
            resource_type: "deployment".into(),
            id: format!("shop/{step}"),
            action: ResourceAction::Adopted,
        });
        events.push(Event::StepWaiting {
            step: step.clone(),
            waiting_for: format!("rollout of deployment shop/{step}"),
            wait: Some("rollout".to_string()),
        });
        events.push(if last {
            Event::StepSucceeded {
                step,
                attempt,
                outputs: Values::from([
                    ("objects".to_string(), serde_json::json!(2)),
                    (
                        "waves_applied".to_string(),
                        serde_json::json!([format!("w{index}")]),
                    ),
                ]),
            }
        } else {
            Event::StepFailed {
                step,
                attempt,
                error: "wave `deploy`: deployment shop/web has 1 of 2 replicas available after 5m"
                    .into(),
                retryable: true,
                will_retry: false,
            }
        });
    }
    events.push(Event::RunFinished {
        outcome: if last {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
    });
    events
}

/// Write the journal of run [`RUN_ID`] under `state_dir`: exactly [`RECORDS`] records.
fn write_journal(state_dir: &Path) {
    let folder = state_dir.join("runs").join(RUN_ID);
    std::fs::create_dir_all(&folder).expect("the run's folder");
    let per_round = round(1, false).len();
    let rounds = (RECORDS - 1).div_ceil(per_round);
    let mut events = vec![Event::RunStarted {
        run_id: RUN_ID.into(),
        playbook_path: state_dir.join("gone.yaml").display().to_string(),
        playbook_name: "many-services".into(),
        playbook_digest: "0".repeat(64),
        source_region: "ap-southeast-2".into(),
        target_region: TARGET.into(),
        stack: Some(format!("many-services@{TARGET}")),
        owned_by: rebuild::stack::OwnedBy::Stack,
        playbook_parts: None,
        inputs: Values::from([("image_tag".to_string(), serde_json::json!("v1.0.0"))]),
        accept_rpo: false,
        host: "bench".into(),
        tool_version: "0".into(),
        by: None,
    }];
    for attempt in 1..=rounds {
        let attempt = u32::try_from(attempt).expect("few rounds");
        events.extend(round(attempt, attempt as usize == rounds));
    }
    // Exactly RECORDS: the last round loses steps from its start (after its resume).
    let extra = events.len() - RECORDS;
    let last_round = events.len() - per_round;
    events.drain(last_round + 1..last_round + 1 + extra);
    let start = jiff::Timestamp::now();
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(folder.join("journal.jsonl")).unwrap());
    for (index, event) in events.into_iter().enumerate() {
        let seq = index as u64 + 1;
        let at = start + jiff::SignedDuration::from_millis(seq as i64 * 10);
        let line = record::encode(&Record {
            v: record::SCHEMA_VERSION,
            seq,
            at,
            event,
        })
        .unwrap();
        writeln!(file, "{line}").unwrap();
    }
    file.flush().unwrap();
}

/// One round of every measurement: (name, time, peak KiB) each.
fn one_round(state_dir: &Path) -> Vec<Figure> {
    let mut figures = Vec::new();
    let journal = state_dir.join("runs").join(RUN_ID).join("journal.jsonl");
    let (loaded, time, peak) = in_process(|| store::read(&journal).expect("the journal reads"));
    assert_eq!(loaded.records.len(), RECORDS);
    figures.push(("read the journal (in-process)", time, peak));
    let (folded, time, peak) = in_process(|| state::fold(&loaded.records).expect("it folds"));
    assert_eq!(folded.steps.len(), STEPS);
    figures.push(("fold into a RunState (in-process)", time, peak));
    drop(loaded);
    let (_, time, peak) = in_process(|| {
        let loaded = store::read(&journal).expect("the journal reads");
        state::fold(&loaded.records).expect("it folds")
    });
    figures.push(("read and fold (in-process)", time, peak));
    for (name, args) in [
        ("rebuild status", &["status", RUN_ID][..]),
        (
            "rebuild status --output json",
            &["status", RUN_ID, "--output", "json"][..],
        ),
    ] {
        let status = measure(Test::new().state_dir(state_dir).args(args).command()).success();
        assert!(status.stdout.contains(RUN_ID), "{}", status.stdout);
        figures.push((name, status.elapsed, status.peak_kib));
    }
    figures
}

/// Run the section.
pub fn run(options: &Options) {
    let state_dir = tempfile::tempdir().expect("a temporary state directory");
    write_journal(state_dir.path());
    let size = std::fs::metadata(
        state_dir
            .path()
            .join("runs")
            .join(RUN_ID)
            .join("journal.jsonl"),
    )
    .map(|metadata| metadata.len())
    .unwrap_or_default();
    let rounds: Vec<_> = (0..options.runs)
        .map(|_| one_round(state_dir.path()))
        .collect();
    println!(
        "replay: a journal of {RECORDS} records, {STEPS} steps, {:.1} MiB (target < 300 ms)",
        size as f64 / 1024.0 / 1024.0
    );
    print_medians("replay", &rounds);
}
