//! `rebuild --target`, `rebuild plan` and `rebuild resume`: plan (read-only), confirm, lock,
//! journal, execute, and turn the outcome into the exit code with the resume command.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{GlobalArgs, Output, RunArgs};
use crate::cloud::Cloud;
use crate::error::Error;
use crate::executor::{Cancel, Executor, Redactor};
use crate::journal::lock::{self, RunLock};
use crate::journal::{Event, Journal, Outcome, RunState, StateDir, Values, state};
use crate::plan::survey::{SurveyInput, survey};
use crate::plan::{self, Plan};
use crate::playbook::Playbook;
use crate::report::{ReportEvent, Reporter, render};
use crate::steps::context::{Confirmed, Confirmer};
use crate::steps::{Kinds, PollSettings};

use super::{
    given_inputs, load_playbook, parse_pairs, reporter, resolve_inputs, secret_values,
    target_region,
};

/// A new run id: UTC start time plus a random suffix, sortable by start.
fn new_run_id() -> String {
    let now = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    format!("{now}-{:04x}", fastrand::u16(..))
}

async fn make_plan(
    playbook: &Playbook,
    target: &str,
    inputs: &Values,
    state: Option<&RunState>,
    accept_rpo: bool,
    cloud: Arc<Cloud>,
    global: &GlobalArgs,
) -> Plan {
    let mut plan = plan::skeleton(playbook, target, state);
    let kinds = Kinds::builtin();
    let input = SurveyInput {
        playbook,
        inputs,
        state,
        accept_rpo,
        cloud,
        kinds: &kinds,
        // Plan-time checkouts are kept next to the runs, outside any one run's folder.
        cache_dir: Some(StateDir::new(&global.state_dir).root().join("cache")),
    };
    survey(&mut plan, &input).await;
    // Planning errors can quote parameter values; never show a secret.
    let redactor = Redactor::new(secret_values(playbook, inputs));
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
            let value = render::plan_json(plan);
            if as_data {
                println!("{value}");
            } else {
                println!("{}", serde_json::json!({"event": "plan", "plan": value}));
            }
        }
        Output::Text if as_data => print!("{}", render::plan_text(plan)),
        Output::Text => eprint!("{}", render::plan_text(plan)),
    }
}

fn refuse_plan(plan: &Plan) -> Error {
    let rpo = plan
        .problems
        .iter()
        .any(|p| p.message.contains("RPO limit"));
    let credentials = plan
        .problems
        .iter()
        .any(|p| p.message.contains("credentials"));
    let hint = if credentials {
        "no usable AWS credentials: log in (`aws sso login`, a profile in `AWS_PROFILE`, or environment keys), then run again".to_string()
    } else if rpo {
        "copy a newer snapshot into the target region, or accept the data loss with `--accept-rpo`"
            .to_string()
    } else {
        "fix the problems listed above, then run the same command again".to_string()
    };
    Error::PlanRefused {
        count: plan.problems.len(),
        hint,
    }
}

/// `rebuild plan`: the plan, read-only.
pub(super) async fn plan(global: &GlobalArgs, args: &RunArgs) -> Result<(), Error> {
    let playbook = load_playbook(args.playbook.as_deref())?;
    let target = target_region(&playbook, args.target.as_deref())?;
    let (inputs, _) = resolve_inputs(&playbook, &given_inputs(&playbook, args)?, None)?;
    let cloud = Arc::new(Cloud::from_env().await);
    let plan = make_plan(
        &playbook,
        &target,
        &inputs,
        None,
        args.accept_rpo,
        cloud,
        global,
    )
    .await;
    show_plan(global, &plan, true);
    if plan.is_runnable() {
        Ok(())
    } else {
        Err(refuse_plan(&plan))
    }
}

/// Ask on a terminal; refuse without one.
fn confirm(question: &str, yes: bool) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::NotConfirmed {
            message: "refusing to change anything without confirmation: no terminal to ask on"
                .into(),
            hint: "pass `--yes` to run without asking (automation), or run from a terminal".into(),
        });
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Error::NotConfirmed {
            message: "not confirmed; nothing was changed".into(),
            hint: "run again and answer `y` to go ahead".into(),
        })
    }
}

/// Asks a step's question on the terminal, one question at a time, with the progress
/// display held still. No terminal (the run was started with `--yes` then) means no.
struct TerminalConfirmer {
    reporter: Arc<dyn Reporter>,
    asking: std::sync::Mutex<()>,
}

impl Confirmer for TerminalConfirmer {
    fn ask(&self, question: &str) -> bool {
        let _one_at_a_time = self
            .asking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return false;
        }
        let mut yes = false;
        self.reporter.suspend(&mut || {
            eprint!("{question} [y/N] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        });
        yes
    }
}

/// Stop the run at safe points on SIGINT/SIGTERM; a second signal exits at once.
fn watch_signals(cancel: Cancel, reporter: Arc<dyn Reporter>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut count = 0;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            count += 1;
            if count > 1 {
                eprintln!(
                    "second {name}: exiting now; the journal is consistent, `rebuild resume` continues"
                );
                std::process::exit(130);
            }
            reporter.report(ReportEvent::Notice {
                message: format!(
                    "{name} received: stopping at the next safe point (send again to exit at once)"
                ),
            });
            cancel.cancel(format!("interrupted by {name}"));
        }
    });
}

fn take_lock(
    global: &GlobalArgs,
    target: &str,
    run_id: &str,
    reporter: &Arc<dyn Reporter>,
) -> Result<RunLock, Error> {
    let taken = lock::acquire(&global.state_dir, target, run_id)?;
    if let Some(previous) = &taken.took_over {
        reporter.report(ReportEvent::Notice {
            message: format!("note: took over the lock left by {previous}, whose process is gone"),
        });
    }
    Ok(taken)
}

struct Execution {
    playbook: Arc<Playbook>,
    run_id: String,
    target: String,
    inputs: Values,
    accept_rpo: bool,
    parallelism: u16,
    journal: Arc<Journal>,
    secrets: Vec<String>,
    /// `--yes`: steps' own questions (the DNS cutover's) are answered yes.
    yes: bool,
}

async fn execute(
    global: &GlobalArgs,
    execution: Execution,
    state: RunState,
    cloud: Arc<Cloud>,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let cancel = Cancel::default();
    watch_signals(cancel.clone(), reporter.clone());
    let poll_start = Duration::from_millis(global.poll_interval_ms.max(1));
    let confirmer: Arc<dyn Confirmer> = if execution.yes {
        Arc::new(Confirmed)
    } else {
        Arc::new(TerminalConfirmer {
            reporter: reporter.clone(),
            asking: std::sync::Mutex::new(()),
        })
    };
    let executor = Executor {
        confirmer,
        playbook: execution.playbook,
        run_id: execution.run_id.clone(),
        target: execution.target,
        inputs: execution.inputs,
        accept_rpo: execution.accept_rpo,
        parallelism: usize::from(execution.parallelism),
        cloud,
        kinds: Arc::new(Kinds::builtin()),
        journal: execution.journal,
        reporter: reporter.clone(),
        poll: PollSettings {
            initial: poll_start,
            max: poll_start
                .saturating_mul(12)
                .min(Duration::from_secs(60))
                .max(poll_start),
        },
        // Absolute, so paths in outputs (kubeconfigs, checkouts) work from any directory.
        run_dir: {
            let run_dir = StateDir::new(&global.state_dir).run_dir(&execution.run_id);
            std::path::absolute(&run_dir).unwrap_or(run_dir)
        },
        cancel,
        secrets: execution.secrets,
    };
    let result = executor.run(&state).await;
    let resume = render::resume_command(&execution.run_id, &global.state_dir.display().to_string());
    match result.outcome {
        Outcome::Succeeded => {
            if global.output == Output::Text {
                eprintln!(
                    "run {} succeeded; `rebuild status {}` shows the outputs",
                    execution.run_id, execution.run_id
                );
            }
            Ok(())
        }
        Outcome::Failed => {
            for failure in &result.failures {
                eprintln!(
                    "error: step `{}` ({}) failed: {}",
                    failure.step, failure.kind, failure.error
                );
                if let Some(hint) = &failure.hint {
                    eprintln!("  hint: {hint}");
                }
            }
            let steps = result
                .failures
                .iter()
                .map(|f| format!("`{}`", f.step))
                .collect::<Vec<_>>()
                .join(", ");
            Err(Error::RunFailed {
                run_id: execution.run_id,
                steps,
                resume,
            })
        }
        Outcome::Interrupted => Err(Error::Interrupted {
            run_id: execution.run_id,
            resume,
        }),
    }
}

/// `rebuild --target`: plan, confirm, run.
pub(super) async fn start(global: &GlobalArgs, args: &RunArgs) -> Result<(), Error> {
    let playbook = Arc::new(load_playbook(args.playbook.as_deref())?);
    let target = target_region(&playbook, args.target.as_deref())?;
    let (inputs, safe_inputs) = resolve_inputs(&playbook, &given_inputs(&playbook, args)?, None)?;
    let reporter = reporter(global);
    let run_id = new_run_id();
    let run_lock = take_lock(global, &target, &run_id, &reporter)?;
    let cloud = Arc::new(Cloud::from_env().await);
    let plan = make_plan(
        &playbook,
        &target,
        &inputs,
        None,
        args.accept_rpo,
        cloud.clone(),
        global,
    )
    .await;
    show_plan(global, &plan, false);
    if !plan.is_runnable() {
        return Err(refuse_plan(&plan));
    }
    confirm(
        &format!("Rebuild `{}` in {target} now?", playbook.name),
        args.yes,
    )?;

    let state_dir = StateDir::new(&global.state_dir);
    let journal = Arc::new(Journal::create(&state_dir.journal_path(&run_id))?);
    let header = journal.append(Event::RunStarted {
        run_id: run_id.clone(),
        playbook_path: playbook.path.display().to_string(),
        playbook_name: playbook.name.clone(),
        playbook_digest: playbook.digest.clone(),
        source_region: playbook.source_region.value.clone(),
        target_region: target.clone(),
        inputs: safe_inputs,
        accept_rpo: args.accept_rpo,
        host: lock::host_name(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    })?;
    let state = state::fold(&[header]).map_err(|source| crate::journal::LoadRunError::Fold {
        path: journal.path().to_path_buf(),
        source,
    })?;
    crate::failpoint::hit("run/after-start");
    let execution = Execution {
        secrets: secret_values(&playbook, &inputs),
        playbook,
        run_id,
        target,
        accept_rpo: args.accept_rpo,
        parallelism: args.parallelism,
        journal,
        inputs,
        yes: args.yes,
    };
    let outcome = execute(global, execution, state, cloud, reporter).await;
    drop(run_lock);
    outcome
}

/// `rebuild resume`: replay the journal and continue.
pub(super) async fn resume(
    global: &GlobalArgs,
    run_id: Option<String>,
    yes: bool,
    parallelism: u16,
    inputs: &[String],
) -> Result<(), Error> {
    let state_dir = StateDir::new(&global.state_dir);
    let run_id = match run_id {
        Some(run_id) => run_id,
        None => state_dir.latest_unfinished().ok_or_else(|| {
            Error::usage(
                format!("no unfinished run in `{}`", global.state_dir.display()),
                Some(
                    "`rebuild runs` lists the runs; start a new one with `rebuild --target REGION`"
                        .into(),
                ),
            )
        })?,
    };
    let (loaded, state) = state_dir.load(&run_id)?;
    let reporter = reporter(global);
    if let Some(tail) = &loaded.dropped_tail {
        reporter.report(ReportEvent::Notice {
            message: format!(
                "note: the journal's last line was torn (a crash mid-write) and is dropped: {tail}"
            ),
        });
    }
    if state.is_complete() {
        reporter.report(ReportEvent::Notice {
            message: format!("run {run_id} already succeeded; nothing to do"),
        });
        return Ok(());
    }
    let playbook = Arc::new(load_playbook(Some(std::path::Path::new(
        &state.header.playbook_path,
    )))?);
    if playbook.digest != state.header.playbook_digest {
        return Err(Error::usage(
            format!(
                "the playbook `{}` changed since run `{run_id}` started",
                state.header.playbook_path
            ),
            Some(
                "restore the playbook as it was (the journal pins its SHA-256), or start a new run"
                    .into(),
            ),
        ));
    }
    let target = state.header.target_region.clone();
    let (inputs, _) = resolve_inputs(&playbook, &parse_pairs(inputs)?, Some(&state.header.inputs))?;
    let run_lock = take_lock(global, &target, &run_id, &reporter)?;
    let cloud = Arc::new(Cloud::from_env().await);
    let plan = make_plan(
        &playbook,
        &target,
        &inputs,
        Some(&state),
        state.header.accept_rpo,
        cloud.clone(),
        global,
    )
    .await;
    show_plan(global, &plan, false);
    if !plan.is_runnable() {
        return Err(refuse_plan(&plan));
    }
    confirm(&format!("Resume run {run_id} in {target}?"), yes)?;
    let journal = Arc::new(Journal::reopen(&state_dir.journal_path(&run_id), &loaded)?);
    journal.append(Event::RunResumed {
        host: lock::host_name(),
        pid: std::process::id(),
    })?;
    let execution = Execution {
        secrets: secret_values(&playbook, &inputs),
        playbook,
        run_id,
        target,
        accept_rpo: state.header.accept_rpo,
        parallelism,
        journal,
        inputs,
        yes,
    };
    let outcome = execute(global, execution, state, cloud, reporter).await;
    drop(run_lock);
    outcome
}
