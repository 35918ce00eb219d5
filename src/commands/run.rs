//! `rebuild --target`, `rebuild plan` and `rebuild resume` share one pipeline:
//! configuration → plan (pure skeleton, then read-only survey) → show → confirm → lock →
//! journal → execute, and the outcome becomes the exit code with the resume command.

use std::sync::Arc;

use crate::cli::{GlobalArgs, Output, RunArgs};
use crate::cloud::Cloud;
use crate::error::Error;
use crate::executor::{Executor, RunResult};
use crate::journal::lock::{self, RunLock};
use crate::journal::requests::StoredAnswers;
use crate::journal::{Event, Journal, Outcome, PlaybookParts, RunState, StepStatus, state};
use crate::plan::amend::Amendment;
use crate::plan::render::{plan_json, plan_text};
use crate::plan::survey::{SurveyInput, survey};
use crate::plan::{self, Cause, Plan};
use crate::report::{ReportEvent, Reporter, render};
use crate::runtime::{AlwaysYes, Cancel, Confirmer, RedactingReporter};
use crate::steps::{NO_CREDENTIALS_HINT, StepKinds, StepServices};
use crate::usage::{UnfinishedRun, UsageError};
use crate::workspace::Workspace;

use super::config::{RunConfig, RunKind};
use super::reporter;
use super::terminal::{TerminalConfirmer, confirm, watch_signals};

/// The pure half of planning: the graph, what the journal says is done, and the checks
/// that make the command itself wrong (a usage error, before any lock or cloud call).
fn skeleton(config: &RunConfig) -> Result<Plan, Error> {
    let plan = plan::skeleton(
        &config.playbook,
        &config.target,
        &config.stack,
        config.state(),
        &config.requested(),
    );
    for problem in &plan.problems {
        match &problem.cause {
            Cause::TargetIsSource { target } => {
                return Err(UsageError::TargetIsSource {
                    target: target.clone(),
                }
                .into());
            }
            Cause::PlaybookChanged { run_id, path } => {
                return Err(UsageError::PlaybookChanged {
                    path: path.clone(),
                    run_id: run_id.clone(),
                }
                .into());
            }
            Cause::ReplanNotJournaled { run_id, path } => {
                return Err(UsageError::ReplanNotJournaled {
                    run_id: run_id.clone(),
                    path: path.clone(),
                }
                .into());
            }
            Cause::ReplanTouchesSucceeded {
                run_id,
                path,
                steps,
                settings,
            } => {
                return Err(UsageError::ReplanTouchesSucceeded {
                    run_id: run_id.clone(),
                    path: path.clone(),
                    steps: steps.clone(),
                    settings: settings.clone(),
                }
                .into());
            }
            Cause::InputConsumed {
                name,
                pinned,
                given,
                consumers,
            } => {
                return Err(UsageError::PinnedInputChanged {
                    name: name.clone(),
                    pinned: pinned.clone(),
                    given: given.clone(),
                    consumers: consumers.clone(),
                }
                .into());
            }
            _ => {}
        }
    }
    Ok(plan)
}

/// The read-only half: ask every step's kind, then scrub secrets from what will be shown.
async fn survey_plan(config: &RunConfig, mut plan: Plan, cloud: Arc<Cloud>) -> Plan {
    let kinds = StepKinds::builtin();
    let facts = config.facts(true);
    let input = SurveyInput {
        facts: &facts,
        inputs: config.inputs.values(),
        cloud,
        kinds: &kinds,
        // Plan-time checkouts are kept next to the runs, outside any one run's folder.
        plan_cache: Some(Workspace::plan_cache_under(&config.scratch)),
        expected: config.store.succeeded_outputs_of(&config.stack),
        accounts: config.accounts(),
    };
    survey(&mut plan, &input).await;
    // Planning errors can quote parameter values; never show a secret.
    let redactor = &config.redactor;
    for problem in &mut plan.problems {
        problem.message = redactor.scrub(&problem.message);
    }
    for step in &mut plan.steps {
        for (_, value) in &mut step.details {
            *value = redactor.scrub(value);
        }
    }
    plan
}

fn show_plan(global: &GlobalArgs, plan: &Plan, as_data: bool) {
    match global.output {
        Output::Json => {
            let value = plan_json(plan);
            if as_data {
                println!("{value}");
            } else {
                println!("{}", serde_json::json!({"event": "plan", "plan": value}));
            }
        }
        Output::Text if as_data => print!("{}", plan_text(plan)),
        Output::Text => eprint!("{}", plan_text(plan)),
    }
}

/// Refuse a plan with problems; the hint comes from the problems' causes (credentials
/// first: without them nothing else can be checked).
fn ensure_runnable(plan: &Plan) -> Result<(), Error> {
    if plan.is_runnable() {
        return Ok(());
    }
    let hints = || plan.problems.iter().filter_map(|problem| problem.hint());
    let hint = hints()
        .find(|hint| *hint == NO_CREDENTIALS_HINT)
        .or_else(|| hints().next())
        .unwrap_or("fix the problems listed above, then run the same command again");
    Err(Error::PlanRefused {
        count: plan.problems.len(),
        hint: hint.to_string(),
    })
}

/// `rebuild plan`: the plan, read-only.
pub(super) async fn plan(global: &GlobalArgs, args: &RunArgs) -> Result<(), Error> {
    let config = RunConfig::for_start(global, args).await?;
    let plan = skeleton(&config)?;
    let cloud = Arc::new(Cloud::from_env().await);
    let plan = survey_plan(&config, plan, cloud).await;
    show_plan(global, &plan, true);
    ensure_runnable(&plan)
}

/// `rebuild --target`: a new run, unless the last run of its stack is unfinished (then
/// the answer is `rebuild resume`, or `--new-run` on purpose). Decided before anything is
/// planned or asked of the cloud. A run of the stack that is running now is left to the
/// lock, which names its holder (exit 3).
pub(super) async fn start(global: &GlobalArgs, args: &RunArgs, new_run: bool) -> Result<(), Error> {
    let config = RunConfig::for_start(global, args).await?;
    let mut notices = Vec::new();
    if let Some(unfinished) = config.store.unfinished_run_of(&config.stack) {
        let header = &unfinished.header;
        if !config
            .store
            .is_running(&header.run_id, &header.target_region)
        {
            let refusal = unfinished_refusal(&unfinished, &config.store.location());
            if !new_run {
                return Err(refusal.into());
            }
            notices.push(new_run_warning(&refusal));
        }
    }
    run(global, config, notices).await
}

/// The refusal of a new run while `unfinished` (a run of the same stack, not running) is
/// there to resume.
fn unfinished_refusal(unfinished: &RunState, state_dir: &str) -> UsageError {
    let header = &unfinished.header;
    let last_step = match unfinished.last_step() {
        Some((id, step)) => format!("last step `{id}` {}", step_status_word(step.status)),
        None => "no step started".to_string(),
    };
    UsageError::UnfinishedRun(Box::new(UnfinishedRun {
        stack: header.stack.to_string(),
        run_id: header.run_id.clone(),
        state: render::run_state_word(unfinished, false).to_string(),
        started: unfinished
            .started
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        last_step,
        resume: render::resume_command(&header.run_id, state_dir),
    }))
}

/// The warning a deliberate `--new-run` prints instead of the refusal.
fn new_run_warning(refusal: &UsageError) -> String {
    let UsageError::UnfinishedRun(unfinished) = refusal else {
        return format!("warning: {refusal}");
    };
    let UnfinishedRun {
        stack,
        run_id,
        resume,
        ..
    } = &**unfinished;
    format!(
        "WARNING: `--new-run`: starting a new run of stack `{stack}` although run `{run_id}` \
         is unfinished. This run adopts what that run built (the plan says `adopt`) and \
         plans the rest afresh: inputs and the snapshot that run pinned are chosen again, \
         and run `{run_id}` is left behind. To continue the unfinished run instead, with \
         what it pinned, stop now and run: {resume}"
    )
}

fn step_status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Waiting => "waiting",
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Interrupted => "interrupted",
        StepStatus::Skipped => "skipped",
    }
}

/// `rebuild --target` and `rebuild resume`: plan, confirm, journal, run; `notices` are
/// shown first.
pub(super) async fn run(
    global: &GlobalArgs,
    config: RunConfig,
    notices: Vec<String>,
) -> Result<(), Error> {
    let plan = skeleton(&config)?;
    crate::logging::capture(config.redactor.clone());
    let reporter = RedactingReporter::wrap(reporter(global), config.redactor.clone());
    for message in notices {
        reporter.report(ReportEvent::Notice { message });
    }
    let run_lock = take_lock(&config, &reporter)?;
    let cloud = Arc::new(Cloud::from_env().await);
    let plan = survey_plan(&config, plan, cloud.clone()).await;
    show_plan(global, &plan, false);
    ensure_runnable(&plan)?;
    // The progress display starts with the run (`RunStarted`), after this answer.
    confirm(reporter.as_ref(), &question(&config), config.yes)?;
    let journal = Arc::new(open_journal(&config, &plan)?);
    let log = Workspace::for_run(&config.scratch, config.run_id(), std::path::PathBuf::new())
        .run_dir()
        .join(DEBUG_LOG);
    if let Err(error) = std::fs::create_dir_all(log.parent().unwrap_or(&log))
        .and_then(|()| crate::logging::open(&log))
    {
        reporter.report(ReportEvent::Notice {
            message: format!("warning: no debug log at {}: {error}", log.display()),
        });
    }
    let result = execute(&config, &plan, journal, cloud, reporter).await;
    drop(run_lock);
    outcome(global, &config, result)
}

/// The debug log's name in the run's folder, next to its journal.
pub(crate) const DEBUG_LOG: &str = "debug.log";

fn question(config: &RunConfig) -> String {
    match &config.run {
        RunKind::New { .. } => format!(
            "Rebuild `{}` in {} now?",
            config.playbook.name, config.target
        ),
        RunKind::Resume { .. } => {
            format!("Resume run {} in {}?", config.run_id(), config.target)
        }
    }
}

fn take_lock(config: &RunConfig, reporter: &Arc<dyn Reporter>) -> Result<RunLock, Error> {
    let taken = config.store.lock(&config.target, config.run_id())?;
    if let Some(previous) = &taken.took_over {
        reporter.report(ReportEvent::Notice {
            message: format!("note: took over the lock left by {previous}, whose process is gone"),
        });
    }
    Ok(taken)
}

/// A new run's journal, started with its header; or a resumed run's, noting the resume and
/// what it changes (the plan's amendments). Either scrubs the run's secrets from every
/// record it writes.
fn open_journal(config: &RunConfig, plan: &Plan) -> Result<Journal, Error> {
    let store = &config.store;
    match &config.run {
        RunKind::New { run_id } => {
            let journal = store.create_run(run_id)?.redacting(config.redactor.clone());
            let playbook = &config.playbook;
            let header = journal.append(Event::RunStarted {
                run_id: run_id.clone(),
                playbook_path: playbook.path.display().to_string(),
                playbook_name: playbook.name.clone(),
                playbook_digest: playbook.digest.clone(),
                source_region: playbook.source_region.value.clone(),
                target_region: config.target.clone(),
                stack: Some(config.stack.to_string()),
                owned_by: crate::stack::OwnedBy::Stack,
                playbook_parts: Some(PlaybookParts {
                    steps: playbook.step_digests(),
                    settings: playbook.settings_digests(),
                }),
                inputs: config.inputs.journaled().clone(),
                accept_rpo: config.accept_rpo,
                host: lock::host_name(),
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                by: Some(config.actor(plan)),
            })?;
            // The header must fold into a run, or nothing can ever resume it.
            state::fold(&[header]).map_err(|source| crate::journal::LoadRunError::Fold {
                path: journal.path().to_path_buf(),
                source,
            })?;
            crate::failpoint::hit("run/after-start");
            Ok(journal)
        }
        RunKind::Resume { loaded, state, .. } => {
            let journal = store
                .reopen_run(config.run_id(), loaded)?
                .redacting(config.redactor.clone());
            journal.append(Event::RunResumed {
                host: lock::host_name(),
                pid: std::process::id(),
                by: Some(config.actor(plan)),
            })?;
            for amendment in &plan.amendments {
                journal.append(amendment_event(amendment, config, state))?;
            }
            Ok(journal)
        }
    }
}

/// The journal record of a change a resume makes. A replanned playbook's inputs that the
/// run has no value for yet are pinned with it.
fn amendment_event(amendment: &Amendment, config: &RunConfig, state: &RunState) -> Event {
    match amendment {
        Amendment::InputChanged(change) => Event::InputChanged {
            name: change.name.clone(),
            from: change.from.clone(),
            to: change.to.clone(),
        },
        Amendment::PlaybookReplanned {
            previous_digest,
            playbook_digest,
            parts,
            diff,
        } => Event::PlaybookReplanned {
            previous_digest: previous_digest.clone(),
            playbook_digest: playbook_digest.clone(),
            parts: parts.clone(),
            changed: diff.changed.clone(),
            added: diff.added.clone(),
            removed: diff.removed.clone(),
            settings: diff.settings.clone(),
            inputs: config
                .inputs
                .journaled()
                .iter()
                .filter(|(name, _)| !state.header.inputs.contains_key(*name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        },
    }
}

async fn execute(
    config: &RunConfig,
    plan: &Plan,
    journal: Arc<Journal>,
    cloud: Arc<Cloud>,
    reporter: Arc<dyn Reporter>,
) -> RunResult {
    let cancel = Cancel::default();
    watch_signals(cancel.clone(), reporter.clone());
    let confirmer: Arc<dyn Confirmer> = if config.yes {
        Arc::new(AlwaysYes)
    } else {
        Arc::new(TerminalConfirmer::new(reporter.clone()))
    };
    let program = std::env::current_exe().unwrap_or_else(|_| "rebuild".into());
    let services = StepServices {
        cloud,
        journal,
        reporter,
        cancel,
        confirmer,
        poll: config.poll,
        history: Arc::new(config.store.wait_history(&config.stack)),
        workspace: Workspace::for_run(&config.scratch, config.run_id(), program),
        answers: Arc::new(StoredAnswers::new(config.store.clone(), config.run_id())),
    };
    let executor = Executor::new(
        Arc::new(config.facts(false)),
        services,
        Arc::new(StepKinds::builtin()),
        config.inputs.values().clone(),
        config.redactor.clone(),
        config.parallelism,
    )
    .keep_going(config.keep_going);
    executor.run(plan).await
}

/// The exit: success, or the failures with their hints and the resume command.
fn outcome(global: &GlobalArgs, config: &RunConfig, result: RunResult) -> Result<(), Error> {
    let run_id = config.run_id().to_string();
    let resume = render::resume_command(&run_id, &config.store.location());
    match result.outcome {
        Outcome::Succeeded => {
            if global.output == Output::Text {
                eprintln!("run {run_id} succeeded; `rebuild status {run_id}` shows the outputs");
            }
            Ok(())
        }
        Outcome::Failed => {
            for failure in &result.failures {
                eprintln!("error: {failure}");
                if let Some(hint) = failure.error.hint() {
                    eprintln!("  hint: {hint}");
                }
            }
            let steps = result
                .failures
                .iter()
                .map(|failure| format!("`{}`", failure.step))
                .collect::<Vec<_>>()
                .join(", ");
            Err(Error::RunFailed {
                run_id,
                steps,
                resume,
            })
        }
        Outcome::Interrupted => Err(Error::Interrupted { run_id, resume }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanProblem;

    fn plan_with(causes: &[Cause]) -> Plan {
        Plan {
            run_id: None,
            playbook: "p".into(),
            playbook_path: "p.yaml".into(),
            stack: "p@ap-southeast-1".into(),
            source_region: "ap-southeast-2".into(),
            target_region: "ap-southeast-1".into(),
            steps: Vec::new(),
            waves: Vec::new(),
            identity: None,
            problems: causes
                .iter()
                .map(|cause| PlanProblem {
                    step: Some("database".into()),
                    message: "text that says nothing about credentials or RPO".into(),
                    cause: cause.clone(),
                })
                .collect(),
            resumed: false,
            amendments: Vec::new(),
        }
    }

    fn refused_hint(plan: &Plan) -> String {
        match ensure_runnable(plan) {
            Err(Error::PlanRefused { hint, count }) => {
                assert_eq!(count, plan.problems.len());
                hint
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn started(run_id: &str) -> crate::journal::Record {
        crate::journal::Record {
            v: crate::journal::record::SCHEMA_VERSION,
            seq: 1,
            at: jiff::Timestamp::UNIX_EPOCH,
            event: Event::test_start(run_id, "region-rebuild"),
        }
    }

    #[test]
    fn an_unfinished_run_is_refused_with_its_state_last_step_and_resume_command() {
        let mut records = vec![started("20260101-000000-aaaa")];
        let refusal = unfinished_refusal(&state::fold(&records).unwrap(), ".rebuild");
        assert_eq!(
            refusal.to_string(),
            "stack `region-rebuild@ap-southeast-1` has an unfinished run `20260101-000000-aaaa` \
             (crashed, started 1970-01-01 00:00:00 UTC, no step started); \
             resume it to keep what it pinned (inputs, the snapshot)"
        );
        assert!(
            refusal
                .hint()
                .starts_with("continue it with: rebuild resume 20260101-000000-aaaa (`--new-run`")
        );
        records.push(crate::journal::Record {
            seq: 2,
            event: Event::StepStarted {
                step: "network".into(),
                attempt: 1,
            },
            ..started("20260101-000000-aaaa")
        });
        records.push(crate::journal::Record {
            seq: 3,
            event: Event::RunFinished {
                outcome: Outcome::Interrupted,
            },
            ..started("20260101-000000-aaaa")
        });
        let refusal = unfinished_refusal(&state::fold(&records).unwrap(), "/srv/state");
        let text = refusal.to_string();
        assert!(text.contains("(interrupted, started "), "{text}");
        assert!(text.contains("last step `network` running"), "{text}");
        assert!(
            refusal
                .hint()
                .contains("rebuild resume 20260101-000000-aaaa --state-dir /srv/state")
        );
        assert_eq!(Error::from(refusal.clone()).exit_code(), 2);
        let warning = new_run_warning(&refusal);
        assert!(warning.starts_with("WARNING: `--new-run`"), "{warning}");
        assert!(
            warning.contains("This run adopts what that run built"),
            "{warning}"
        );
    }

    #[test]
    fn the_refusal_hint_follows_the_problems_causes_never_their_text() {
        assert!(ensure_runnable(&plan_with(&[])).is_ok());
        assert!(refused_hint(&plan_with(&[Cause::RpoExceeded])).contains("--accept-rpo"));
        assert_eq!(
            refused_hint(&plan_with(&[Cause::RpoExceeded, Cause::NoCredentials])),
            NO_CREDENTIALS_HINT,
            "credentials first: without them nothing else can be checked"
        );
        assert_eq!(
            refused_hint(&plan_with(&[Cause::Other])),
            "fix the problems listed above, then run the same command again"
        );
    }
}
