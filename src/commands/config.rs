//! The second phase of argument handling (ripgrep's `HiArgs`): the flags, the playbook and
//! the environment become one [`RunConfig`], built once, that the run pipeline reads. A
//! new run builds it from `--target` and friends; a resume from the run's journal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{DEFAULT_PLAYBOOK, GlobalArgs, RunArgs};
use crate::error::Error;
use crate::journal::{Actor, Loaded, RunState, StateStore};
use crate::plan::amend::Requested;
use crate::plan::survey::ExpectedAccount;
use crate::playbook::{self, LoadError, Playbook, region};
use crate::runtime::{Backoff, RunFacts};
use crate::secret::Redactor;
use crate::stack::{OwnedBy, Stack};
use crate::steps::StepKinds;
use crate::usage::UsageError;

use super::inputs::Inputs;
use super::state_store;

/// The input a `--kubeconfig` sets.
pub(crate) const EXISTING_KUBECONFIG: &str = "existing_kubeconfig";
/// The input a `--existing-cluster` sets.
pub(crate) const EXISTING_CLUSTER: &str = "existing_cluster";

/// Everything a run needs to know before it plans.
pub(crate) struct RunConfig {
    /// The playbook.
    pub(crate) playbook: Arc<Playbook>,
    /// The region to rebuild in.
    pub(crate) target: String,
    /// The stack the run works on.
    pub(crate) stack: Stack,
    /// Input values.
    pub(crate) inputs: Inputs,
    /// `--accept-rpo` (pinned by the run on resume).
    pub(crate) accept_rpo: bool,
    /// Most steps running at once.
    pub(crate) parallelism: usize,
    /// `--keep-going`: a failed step holds back only the steps that depend on it.
    pub(crate) keep_going: bool,
    /// `--yes`: no question is asked, by the run or its steps.
    pub(crate) yes: bool,
    /// How waits poll.
    pub(crate) poll: Backoff,
    /// Where durable state lives.
    pub(crate) store: Arc<dyn StateStore>,
    /// Where local scratch files live (checkouts, kubeconfigs, the plan cache).
    pub(crate) scratch: PathBuf,
    /// Scrubs the run's secrets from everything shown or journaled; built once.
    pub(crate) redactor: Redactor,
    /// The run: a new one, or one being resumed.
    pub(crate) run: RunKind,
}

/// Which run the pipeline carries out.
pub(crate) enum RunKind {
    /// A new run with this id.
    New {
        /// Its id.
        run_id: String,
    },
    /// An unfinished run, as its journal left it.
    Resume {
        /// Its journal, read.
        loaded: Loaded,
        /// Its state.
        state: Box<RunState>,
        /// What the resume asks to change (inputs given another value, `--replan`).
        requested: Requested,
    },
}

impl RunConfig {
    /// A new run from the command line.
    pub(crate) async fn for_start(global: &GlobalArgs, args: &RunArgs) -> Result<Self, Error> {
        let playbook = Arc::new(load_playbook(args.playbook.as_deref())?);
        let target = target_region(&playbook, args.target.as_deref())?;
        let stack = stack(&playbook, &target, args.stack.as_deref())?;
        let inputs = Inputs::resolve(&playbook, &given_inputs(&playbook, args)?, None)?;
        let from_playbook = playbook.state.as_ref().map(|state| &state.value);
        let store = state_store(global, from_playbook).await?;
        outside_the_source_region(store.as_ref(), &playbook)?;
        let second = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
        let run_id = next_run_id(&second, fastrand::u16(..), &store.run_ids());
        Ok(Self {
            playbook,
            target,
            stack,
            redactor: inputs.redactor(),
            inputs,
            accept_rpo: args.accept_rpo,
            parallelism: usize::from(args.parallelism),
            keep_going: args.keep_going,
            yes: args.yes,
            poll: poll(global),
            store,
            scratch: global.state_dir.clone(),
            run: RunKind::New { run_id },
        })
    }

    /// A resume of the run `loaded`/`state` journaled: its playbook, target, pinned inputs
    /// and `--accept-rpo`; secrets given again with `--input`, and pinned inputs given
    /// another value (which the planner checks against the steps that consumed them).
    pub(crate) fn for_resume(
        global: &GlobalArgs,
        resume: &ResumeArgs<'_>,
        store: Arc<dyn StateStore>,
        loaded: Loaded,
        state: RunState,
    ) -> Result<Self, Error> {
        let playbook = Arc::new(load_playbook(Some(Path::new(&state.header.playbook_path)))?);
        outside_the_source_region(store.as_ref(), &playbook)?;
        let inputs = Inputs::resolve(
            &playbook,
            &parse_pairs(resume.inputs)?,
            Some(&state.header.inputs),
        )?;
        let requested = Requested {
            inputs: inputs.changes().to_vec(),
            replan: resume.replan,
        };
        Ok(Self {
            playbook,
            target: state.header.target_region.clone(),
            stack: state.header.stack.clone(),
            redactor: inputs.redactor(),
            inputs,
            accept_rpo: state.header.accept_rpo,
            parallelism: usize::from(resume.parallelism),
            keep_going: resume.keep_going,
            yes: resume.yes,
            poll: poll(global),
            store,
            scratch: global.state_dir.clone(),
            run: RunKind::Resume {
                loaded,
                state: Box::new(state),
                requested,
            },
        })
    }

    /// The run's id.
    pub(crate) fn run_id(&self) -> &str {
        match &self.run {
            RunKind::New { run_id } => run_id,
            RunKind::Resume { state, .. } => &state.header.run_id,
        }
    }

    /// What a resume asks to change (nothing for a new run).
    pub(crate) fn requested(&self) -> Requested {
        match &self.run {
            RunKind::New { .. } => Requested::default(),
            RunKind::Resume { requested, .. } => requested.clone(),
        }
    }

    /// The journaled state of a resumed run.
    pub(crate) fn state(&self) -> Option<&RunState> {
        match &self.run {
            RunKind::New { .. } => None,
            RunKind::Resume { state, .. } => Some(state),
        }
    }

    /// The AWS accounts the run must act in: the playbook's `account_id`, and for a resume
    /// the account the run started in (a resume with another account's credentials would
    /// build a second stack there).
    pub(crate) fn accounts(&self) -> Vec<ExpectedAccount> {
        let mut accounts = Vec::new();
        if let Some(account) = &self.playbook.account_id {
            accounts.push(ExpectedAccount {
                account: account.value.clone(),
                because: format!(
                    "the playbook's `account_id` ({}:{}) names",
                    self.playbook.path.display(),
                    account.location.line
                ),
            });
        }
        let started = self.state().and_then(|state| state.activity.first());
        let journaled = started.and_then(|started| started.by.as_ref()?.aws_account.clone());
        if let Some(account) = journaled {
            accounts.push(ExpectedAccount {
                account,
                because: format!("run `{}` started in", self.run_id()),
            });
        }
        accounts
    }

    /// Who is running it: the local user and host, and the AWS identity `plan` found.
    pub(crate) fn actor(&self, plan: &crate::plan::Plan) -> Actor {
        local_actor(plan.identity.as_ref())
    }

    /// The facts of the run, as its steps see them while it runs (`planning: false`) or
    /// while it is planned (`planning: true`: a new run has no id yet).
    pub(crate) fn facts(&self, planning: bool) -> RunFacts {
        let run_id = match (&self.run, planning) {
            (RunKind::New { .. }, true) => None,
            _ => Some(self.run_id().to_string()),
        };
        RunFacts {
            run_id,
            playbook_name: self.playbook.name.clone(),
            stack: self.stack.to_string(),
            owned_by: self
                .state()
                .map_or(OwnedBy::Stack, |state| state.header.owned_by),
            source_region: self.playbook.source_region.value.clone(),
            target_region: self.target.clone(),
            rpo_limit: self.playbook.rpo_limit,
            accept_rpo: self.accept_rpo,
            tags: self.playbook.tags.clone(),
        }
    }
}

/// Who is at the keyboard: the local user (`USER`, else `LOGNAME`) and host, and the AWS
/// identity the tool acts as, when known.
pub(crate) fn local_actor(identity: Option<&crate::cloud::CallerIdentity>) -> Actor {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|user| !user.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    Actor {
        user,
        host: crate::journal::lock::host_name(),
        aws_arn: identity.map(|identity| identity.arn.clone()),
        aws_account: identity.map(|identity| identity.account.clone()),
    }
}

/// Who runs a command outside a run (`unlock`, `approve`, `skip`, `retry`): the local user
/// and host, and the AWS identity in `region` if AWS answers within a few seconds (these
/// commands are used when things are already wrong; they never wait on it).
pub(crate) async fn who(region: &str) -> Actor {
    let cloud = crate::cloud::Cloud::from_env().await;
    let identity = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        cloud.caller_identity(region),
    )
    .await;
    local_actor(identity.ok().and_then(Result::ok).as_ref())
}

/// What `rebuild resume` was given.
pub(crate) struct ResumeArgs<'a> {
    /// `--yes`.
    pub(crate) yes: bool,
    /// `--parallelism`.
    pub(crate) parallelism: u16,
    /// `--input`s: secrets again, or pinned inputs given another value.
    pub(crate) inputs: &'a [String],
    /// `--replan`: take up an edited playbook.
    pub(crate) replan: bool,
    /// `--keep-going`.
    pub(crate) keep_going: bool,
}

/// A new run id: the UTC start second (`second`, `YYYYMMDD-HHMMSS`) plus a suffix, random
/// unless runs of the same second exist already (`existing`): then one past theirs, so ids
/// sort by start even within a second (the newest run is the last id).
fn next_run_id(second: &str, random: u16, existing: &[String]) -> String {
    let prefix = format!("{second}-");
    let latest = existing
        .iter()
        .filter_map(|id| id.strip_prefix(&prefix))
        .filter_map(|suffix| u32::from_str_radix(suffix, 16).ok())
        .max();
    let suffix = match latest {
        // 65,536 runs in one second cannot happen; the store refuses a duplicate id anyway.
        Some(latest) if u32::from(random) <= latest => (latest + 1).min(0xffff),
        _ => u32::from(random),
    };
    format!("{prefix}{suffix:04x}")
}

/// Refuse state kept in the playbook's source region: it would fail with the region it is
/// meant to outlive.
fn outside_the_source_region(
    store: &dyn StateStore,
    playbook: &Playbook,
) -> Result<(), UsageError> {
    match store.region() {
        Some(region) if region == playbook.source_region.value => {
            Err(UsageError::StateInSourceRegion {
                location: store.location(),
                region,
            })
        }
        _ => Ok(()),
    }
}

fn poll(global: &GlobalArgs) -> Backoff {
    Backoff::polling(Duration::from_millis(global.poll_interval_ms.max(1)))
}

/// Load a playbook, turning problems into the exit-2 error.
pub(crate) fn load_playbook(path: Option<&Path>) -> Result<Playbook, Error> {
    let path: PathBuf = path.map_or_else(|| PathBuf::from(DEFAULT_PLAYBOOK), Path::to_path_buf);
    let mut playbook =
        playbook::load(&path, &StepKinds::builtin().specs()).map_err(|error| match error {
            LoadError::Invalid(problems) => Error::Playbook { problems },
            read @ LoadError::Read { .. } => Error::PlaybookRead(read),
        })?;
    // The journal pins an absolute path, so `resume` works from any directory.
    if let Ok(absolute) = std::fs::canonicalize(&playbook.path) {
        playbook.path = absolute;
    }
    Ok(playbook)
}

/// The target region: `--target`, else the playbook's `default_target`; a region name.
/// (That it is not the source region is the planner's check.)
fn target_region(playbook: &Playbook, target: Option<&str>) -> Result<String, UsageError> {
    let target = match target {
        Some(target) => target.to_string(),
        None => playbook
            .default_target
            .as_ref()
            .map(|target| target.value.clone())
            .ok_or(UsageError::NoTarget)?,
    };
    if !region::is_valid(&target) {
        return Err(UsageError::NotARegion {
            region: target,
            unlock: false,
        });
    }
    Ok(target)
}

/// The stack: `--stack`, checked, else the playbook's name at the target.
fn stack(playbook: &Playbook, target: &str, given: Option<&str>) -> Result<Stack, UsageError> {
    match given {
        Some(name) => Stack::parse(name).map_err(|reason| UsageError::StackName {
            given: name.to_string(),
            reason,
        }),
        None => Ok(Stack::default_for(&playbook.name, target)),
    }
}

/// Parse `NAME=VALUE` pairs.
fn parse_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, UsageError> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.trim().to_string(), value.to_string()))
                .ok_or_else(|| UsageError::NotAPair { pair: pair.clone() })
        })
        .collect()
}

/// The inputs given on the command line: `--input NAME=VALUE`s, `--existing-cluster NAME` as
/// the playbook's `existing_cluster` input, and `--kubeconfig PATH` as its
/// `existing_kubeconfig` input (absolute, so a resume from elsewhere works).
fn given_inputs(
    playbook: &Playbook,
    args: &RunArgs,
) -> Result<BTreeMap<String, String>, UsageError> {
    let mut given = parse_pairs(&args.inputs)?;
    if let Some(name) = &args.existing_cluster {
        if playbook.input(EXISTING_CLUSTER).is_none() {
            return Err(UsageError::FlagNeedsInput {
                flag: "--existing-cluster",
                input: EXISTING_CLUSTER,
                playbook: playbook.name.clone(),
            });
        }
        given.insert(EXISTING_CLUSTER.to_string(), name.clone());
    }
    if let Some(path) = &args.kubeconfig {
        if playbook.input(EXISTING_KUBECONFIG).is_none() {
            return Err(UsageError::FlagNeedsInput {
                flag: "--kubeconfig",
                input: EXISTING_KUBECONFIG,
                playbook: playbook.name.clone(),
            });
        }
        if !path.is_file() {
            return Err(UsageError::NoKubeconfigFile {
                path: path.display().to_string(),
            });
        }
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        given.insert(
            EXISTING_KUBECONFIG.to_string(),
            absolute.display().to_string(),
        );
    }
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::next_run_id;

    #[test]
    fn run_ids_sort_by_start_even_within_a_second() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            next_run_id("20261202-052310", 0x9b90, &none),
            "20261202-052310-9b90"
        );
        let earlier = vec!["20261202-052309-ffff".to_string()];
        assert_eq!(
            next_run_id("20261202-052310", 0x0001, &earlier),
            "20261202-052310-0001"
        );
        let same_second = vec![
            "20261202-052310-de41".to_string(),
            "20261202-052310-0215".to_string(),
        ];
        let next = next_run_id("20261202-052310", 0x0215, &same_second);
        assert_eq!(next, "20261202-052310-de42");
        let mut all = same_second.clone();
        all.push(next.clone());
        all.sort();
        assert_eq!(all.last(), Some(&next), "the newest run is the last id");
        assert_eq!(
            next_run_id("20261202-052310", 0xf000, &same_second),
            "20261202-052310-f000"
        );
    }
}
