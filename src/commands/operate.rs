//! Commands that mark a run between (or during) its processes: `approve` and `reject`
//! answer a waiting gate through the state store's answer stream (the run's own process
//! may be appending to its journal meanwhile); `skip` and `retry` take the run's lock, so
//! nothing else writes its journal, and append one record. What may be marked is decided
//! by [`crate::plan::mark`] from the playbook and the fold; a refusal is a usage error.

use std::path::PathBuf;

use serde_json::json;

use crate::cli::{GlobalArgs, Output};
use crate::error::Error;
use crate::journal::{Actor, Event, Request, RunState, StateStore, Values, Verdict};
use crate::plan::mark;
use crate::report::render;
use crate::steps::StepKinds;
use crate::usage::UsageError;

use super::config::{load_playbook, who};
use super::state_store;

/// Who marks run `run_id`: the local user and host, and the AWS identity in its target
/// region.
async fn actor_for(store: &dyn StateStore, run_id: &str) -> Result<Actor, Error> {
    let (_, state) = store.load_run(run_id)?;
    Ok(who(&state.header.target_region).await)
}

/// The run named, else the newest unfinished one.
fn unfinished_or(store: &dyn StateStore, run_id: Option<String>) -> Result<String, Error> {
    match run_id {
        Some(run_id) => Ok(run_id),
        None => store.latest_unfinished().ok_or_else(|| {
            UsageError::NoUnfinishedRun {
                state_dir: store.location(),
            }
            .into()
        }),
    }
}

/// `rebuild approve` / `rebuild reject`: answer the gate the run waits at.
pub(super) async fn answer(
    global: &GlobalArgs,
    run_id: Option<String>,
    step: Option<String>,
    verdict: Verdict,
    reason: Option<String>,
) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let run_id = unfinished_or(store.as_ref(), run_id)?;
    let (_, state) = store.load_run(&run_id)?;
    let by = who(&state.header.target_region).await;
    let (step, round) = mark::gate_to_answer(&state, step.as_deref(), &by.user)?;
    let request = Request {
        at: jiff::Timestamp::now(),
        step: step.clone(),
        round,
        verdict,
        by: by.clone(),
        reason,
    };
    store.append_request(&run_id, &request)?;
    let running = store.is_running(&run_id, &state.header.target_region);
    let next = if running {
        "the run takes it up at its next look".to_string()
    } else {
        format!(
            "the run is not running: {} takes it up",
            render::resume_command(&run_id, &store.location())
        )
    };
    report(
        global,
        json!({"run_id": run_id, "step": step, "verdict": verdict, "by": by, "round": round, "running": running}),
        &format!(
            "{} gate `{step}` of run {run_id} as {by}; {next}",
            verdict.past_tense()
        ),
    );
    Ok(())
}

/// `rebuild skip`: mark a step that has not succeeded skipped, with the outputs its
/// dependants use.
pub(super) async fn skip(
    global: &GlobalArgs,
    run_id: Option<String>,
    step: &str,
    reason: Option<String>,
    outputs: &[String],
) -> Result<(), Error> {
    let given = parse_outputs(outputs)?;
    let store = state_store(global, None).await?;
    let run_id = unfinished_or(store.as_ref(), run_id)?;
    let by = actor_for(store.as_ref(), &run_id).await?;
    let event = |state: &RunState| -> Result<Event, Error> {
        let playbook = load_playbook(Some(PathBuf::from(&state.header.playbook_path).as_path()))?;
        let kinds = StepKinds::builtin();
        let kind_outputs: &[&str] = playbook
            .step(step)
            .and_then(|spec| kinds.find(&spec.kind.value))
            .map_or(&[], |kind| kind.spec().outputs);
        let outputs = mark::skip_outputs(&playbook, state, step, kind_outputs, given.clone())?;
        Ok(Event::StepSkipped {
            step: step.to_string(),
            by: by.clone(),
            reason: reason.clone(),
            outputs,
        })
    };
    append_marked(store.as_ref(), &run_id, event)?;
    report(
        global,
        json!({"run_id": run_id, "step": step, "marked": "skipped", "by": by}),
        &format!(
            "step `{step}` of run {run_id} is marked skipped; continue with: {}",
            render::resume_command(&run_id, &store.location())
        ),
    );
    Ok(())
}

/// `rebuild retry`: mark a succeeded or skipped step to run again on the next resume.
pub(super) async fn retry(
    global: &GlobalArgs,
    run_id: Option<String>,
    step: &str,
) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let run_id = match run_id {
        Some(run_id) => run_id,
        None => store.latest().ok_or_else(|| UsageError::NoUnfinishedRun {
            state_dir: store.location(),
        })?,
    };
    let by = actor_for(store.as_ref(), &run_id).await?;
    let event = |state: &RunState| -> Result<Event, Error> {
        let playbook = load_playbook(Some(PathBuf::from(&state.header.playbook_path).as_path()))?;
        mark::check_retry(&playbook, state, step)?;
        Ok(Event::StepRetryRequested {
            step: step.to_string(),
            by: by.clone(),
        })
    };
    append_marked(store.as_ref(), &run_id, event)?;
    report(
        global,
        json!({"run_id": run_id, "step": step, "marked": "retry", "by": by}),
        &format!(
            "step `{step}` of run {run_id} runs again on the next resume: {}",
            render::resume_command(&run_id, &store.location())
        ),
    );
    Ok(())
}

/// Take the run's lock (refused while a process runs it), check the mark against the
/// journal as it is then, and append it.
fn append_marked(
    store: &dyn StateStore,
    run_id: &str,
    event: impl Fn(&RunState) -> Result<Event, Error>,
) -> Result<(), Error> {
    let (_, state) = store.load_run(run_id)?;
    event(&state)?; // refuse before touching the lock
    let _lock = store.lock(&state.header.target_region, run_id)?;
    let (loaded, state) = store.load_run(run_id)?;
    let record = event(&state)?;
    store.reopen_run(run_id, &loaded)?.append(record)?;
    Ok(())
}

/// `--output-value KEY=VALUE`s: a JSON value when VALUE is JSON, else text.
fn parse_outputs(pairs: &[String]) -> Result<Values, Error> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| UsageError::NotAnOutputPair { pair: pair.clone() })?;
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            Ok((key.to_string(), value))
        })
        .collect()
}

/// What was marked: JSON on stdout, or a line on stderr.
fn report(global: &GlobalArgs, data: serde_json::Value, text: &str) {
    match global.output {
        Output::Json => println!("{data}"),
        Output::Text => eprintln!("{text}"),
    }
}
