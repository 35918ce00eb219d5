//! Commands: the glue that wires configuration ([`config`]), plan, journal, executor and
//! reporter together for each subcommand. `start` and `resume` differ only in how their
//! [`config::RunConfig`] is built; both then run one pipeline ([`run`]).

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "commands are where data meets stdout and people meet stderr"
)]

mod config;
mod inputs;
mod inspect;
mod operate;
mod run;
mod terminal;

use std::io::IsTerminal;
use std::sync::Arc;

use crate::cli::{Cli, Command, GlobalArgs, Output};
use crate::cloud::Cloud;
use crate::error::Error;
use crate::journal::store::Loaded;
use crate::journal::{FileStore, S3Store, StateStore, Verdict};
use crate::report::{
    JsonReporter, LineReporter, ReportEvent, Reporter, progress::ProgressReporter,
};
use crate::state_url::StateUrl;
use crate::usage::UsageError;

use self::config::{ResumeArgs, RunConfig};

/// Run the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<(), Error> {
    let global = cli.global;
    match cli.command {
        None if cli.run.dry_run => run::plan(&global, &cli.run).await,
        None => run::start(&global, &cli.run, cli.new_run).await,
        Some(Command::Plan(args)) => run::plan(&global, &args).await,
        Some(Command::Resume {
            run_id,
            yes,
            parallelism,
            inputs,
            replan,
            keep_going,
        }) => {
            let args = ResumeArgs {
                yes,
                parallelism,
                inputs: &inputs,
                replan,
                keep_going,
            };
            resume(&global, run_id, &args).await
        }
        Some(Command::Approve {
            run_id,
            step,
            reason,
        }) => operate::answer(&global, run_id, step, Verdict::Approve, reason).await,
        Some(Command::Reject {
            run_id,
            step,
            reason,
        }) => operate::answer(&global, run_id, step, Verdict::Reject, reason).await,
        Some(Command::Skip {
            run_id,
            step,
            reason,
            outputs,
        }) => operate::skip(&global, run_id, &step, reason, &outputs).await,
        Some(Command::Retry { run_id, step }) => operate::retry(&global, run_id, &step).await,
        Some(Command::Status { run_id }) => inspect::status(&global, run_id).await,
        Some(Command::Runs) => inspect::runs(&global).await,
        Some(Command::Validate { playbook }) => inspect::validate(&global, playbook),
        Some(Command::Unlock { target }) => inspect::unlock(&global, target).await,
        Some(Command::EksToken { cluster, region }) => inspect::eks_token(&cluster, &region).await,
    }
}

/// `rebuild resume`: the latest unfinished run (or `run_id`), from its journal.
async fn resume(
    global: &GlobalArgs,
    run_id: Option<String>,
    args: &ResumeArgs<'_>,
) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let run_id = match run_id {
        Some(run_id) => run_id,
        None => store
            .latest_unfinished()
            .ok_or_else(|| UsageError::NoUnfinishedRun {
                state_dir: store.location(),
            })?,
    };
    let (loaded, state) = store.load_run(&run_id)?;
    let reporter = reporter(global);
    if let Some(note) = torn_note(&loaded, "dropped") {
        reporter.report(ReportEvent::Notice { message: note });
    }
    if state.is_complete() {
        reporter.report(ReportEvent::Notice {
            message: format!("run {run_id} already succeeded; nothing to do"),
        });
        return Ok(());
    }
    run::run(
        global,
        RunConfig::for_resume(global, args, store, loaded, state)?,
        Vec::new(),
    )
    .await
}

/// The note on a journal whose last line was torn by a crash mid-write (`dropped` when a
/// resume cuts it off, `ignored` when it is only read).
pub(crate) fn torn_note(loaded: &Loaded, what_happens: &str) -> Option<String> {
    loaded.dropped_tail.as_ref().map(|tail| {
        format!(
            "note: the journal's last line was torn (a crash mid-write) and is {what_happens}: {tail}"
        )
    })
}

/// Where durable state lives: the one place that chooses the backend. An S3 bucket given
/// by `--state` (or `REBUILD_STATE`), else by the playbook's `state:` (`from_playbook`, for
/// the commands that load one), else the local directory `--state-dir`. Opening a bucket
/// asks for its region (`GetBucketLocation`) with the run's AWS configuration.
pub(crate) async fn state_store(
    global: &GlobalArgs,
    from_playbook: Option<&StateUrl>,
) -> Result<Arc<dyn StateStore>, Error> {
    let url = match (&global.state, from_playbook) {
        (Some(given), _) => StateUrl::parse(given).map_err(|reason| UsageError::StateUrl {
            given: given.clone(),
            reason,
        })?,
        (None, Some(url)) => url.clone(),
        (None, None) => return Ok(Arc::new(FileStore::new(&global.state_dir))),
    };
    let cloud = Cloud::from_env().await;
    let store = S3Store::open(url, &cloud.default_region(), |region| {
        cloud.state_bucket(region)
    })?;
    Ok(Arc::new(store))
}

/// The reporter for a run: JSON lines, progress bars on a terminal, or plain lines.
pub(crate) fn reporter(global: &GlobalArgs) -> Arc<dyn Reporter> {
    if global.output == Output::Json {
        Arc::new(JsonReporter::default())
    } else if std::io::stderr().is_terminal() {
        Arc::new(ProgressReporter::new())
    } else {
        Arc::new(LineReporter::default())
    }
}
