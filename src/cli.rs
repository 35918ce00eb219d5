//! Command-line arguments, parsed in two phases: clap turns argv into [`Cli`] (flags only,
//! no environment or files touched beyond clap's own `env` fallbacks); the commands then
//! turn that into their configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default playbook.
pub const DEFAULT_PLAYBOOK: &str = "playbooks/region-rebuild.yaml";

/// Rebuild a whole production stack in another AWS region from a checkpointed playbook.
///
/// With no subcommand: plan, confirm and run a rebuild (`rebuild --target ap-southeast-1`).
#[derive(Debug, Parser)]
#[command(name = "rebuild", version, args_conflicts_with_subcommands = true, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do; without one, run a rebuild.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of a rebuild run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Start a new run even though the stack has an unfinished one (which is otherwise
    /// refused, naming the `rebuild resume` command). The new run adopts what the
    /// unfinished run built, since its stack owns it.
    #[arg(long)]
    pub new_run: bool,
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Documented exit codes.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a step failed; the run is journaled and resumable (`rebuild resume`)
  2    usage error, invalid playbook or input, confirmation refused/missing, or the stack
       has an unfinished run (resume it, or `--new-run`)
  3    another rebuild holds the lock for this state (directory or bucket) and target
  4    the plan found problems (snapshot missing or too old, zones unavailable...); nothing changed
  5    state error: no such run, or a damaged journal
  (a rejected gate, by someone or by its timeout, fails its step: 1; `approve`, `reject`,
  `skip` and `retry` refusals are usage errors: 2; `skip`/`retry` while the run is
  running: 3)
  130  interrupted (SIGINT/SIGTERM); the run is journaled and resumable";

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Where runs are journaled. Must not live in the failed region.
    #[arg(
        long,
        global = true,
        env = "REBUILD_STATE_DIR",
        default_value = ".rebuild"
    )]
    pub state_dir: PathBuf,
    /// Keep runs, journals and run locks in an S3 bucket a team shares,
    /// `s3://BUCKET/PREFIX` (overrides the playbook's `state:`). The bucket must not be in
    /// the playbook's source region. `--state-dir` then holds only local scratch files.
    #[arg(
        long,
        global = true,
        env = "REBUILD_STATE",
        value_name = "s3://BUCKET/PREFIX"
    )]
    pub state: Option<String>,
    /// `text` for people, `json` for machines (data on stdout, one JSON event per line).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Log to stderr too: `-v` info, `-vv` debug (with every AWS call), `-vvv` trace.
    /// `RUST_LOG` overrides it. Every run writes a debug log next to its journal anyway.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Testbeds: the run's base poll interval, in milliseconds. Waits pace by their expected
    /// duration (the playbook reference's "Waits") with a ceiling of twelve times this, at
    /// most 60 s; the network's retries of new ids start from a fifth of it.
    #[arg(
        long,
        global = true,
        env = "REBUILD_POLL_INTERVAL_MS",
        default_value_t = 5000,
        hide = true
    )]
    pub poll_interval_ms: u64,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// JSON.
    Json,
}

/// Options of a run (and of a plan).
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Region to rebuild in, e.g. `ap-southeast-1` (default: the playbook's `default_target`).
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// The stack to build: what the run's resources belong to (default: `PLAYBOOK@TARGET`,
    /// e.g. `region-rebuild@ap-southeast-1`). Lowercase letters, digits, `-`, `_`, `.`,
    /// `@`; at most 128 characters.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Playbook file.
    #[arg(long, short = 'p')]
    pub playbook: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show the plan and stop (same as `rebuild plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Most steps running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// When a step fails for good, go on with every step that does not depend on it; the
    /// run then ends failed, listing every failed step (exit 1).
    #[arg(long)]
    pub keep_going: bool,
    /// Restore a snapshot even if it is older than the playbook's RPO limit.
    #[arg(long)]
    pub accept_rpo: bool,
    /// Set an input: `--input NAME=VALUE` (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Deploy to an already-running cluster (pilot light) instead of provisioning one: sets
    /// the playbook's `existing_kubeconfig` input.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Deploy to the running EKS cluster NAME of the target region (pilot light) instead of
    /// provisioning one, with the database in its VPC: sets the playbook's
    /// `existing_cluster` input.
    #[arg(long, value_name = "NAME")]
    pub existing_cluster: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a rebuild would do, with read-only calls only (a dry run).
    Plan(RunArgs),
    /// Continue a failed, interrupted or killed run from its journal.
    Resume {
        /// The run (default: the latest unfinished run in the state directory).
        run_id: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Most steps running at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallelism: u16,
        /// Set an input: a secret again (secrets are never journaled), or another value for
        /// an input no succeeded step has used (refused, naming the steps, otherwise):
        /// `NAME=VALUE` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Take up the edited playbook: allowed when the steps the edit changes, adds or
        /// removes have not succeeded (refused, naming the steps, otherwise).
        #[arg(long)]
        replan: bool,
        /// When a step fails for good, go on with every step that does not depend on it.
        #[arg(long)]
        keep_going: bool,
    },
    /// Approve a gate (`gate.approval`) a run waits at; the run goes on when it next looks.
    Approve {
        /// The run (default: the latest unfinished run in the state directory).
        run_id: Option<String>,
        /// The gate (default: the one gate waiting).
        #[arg(long, value_name = "ID")]
        step: Option<String>,
        /// Why, kept in the journal.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Reject a gate (`gate.approval`) a run waits at: the gate's step fails.
    Reject {
        /// The run (default: the latest unfinished run in the state directory).
        run_id: Option<String>,
        /// The gate (default: the one gate waiting).
        #[arg(long, value_name = "ID")]
        step: Option<String>,
        /// Why, kept in the journal and shown in `rebuild status`.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Mark a failed (or not yet started) step skipped, so `rebuild resume` goes on past it.
    Skip {
        /// The run (default: the latest unfinished run in the state directory).
        run_id: Option<String>,
        /// The step to skip.
        #[arg(long, value_name = "ID")]
        step: String,
        /// Why, kept in the journal and shown in `rebuild status`.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// An output the step would have given, for the steps that use it:
        /// `KEY=VALUE` (repeatable; a JSON value, else text). Required for every output a
        /// later step references.
        #[arg(long = "output-value", value_name = "KEY=VALUE")]
        outputs: Vec<String>,
    },
    /// Mark a succeeded or skipped step to run again on the next `rebuild resume`.
    Retry {
        /// The run (default: the latest run in the state directory).
        run_id: Option<String>,
        /// The step to run again.
        #[arg(long, value_name = "ID")]
        step: String,
    },
    /// What happened in a run, step by step.
    Status {
        /// The run (default: the latest).
        run_id: Option<String>,
    },
    /// Every run in the state directory.
    Runs,
    /// Check a playbook without touching the cloud.
    Validate {
        /// The playbook (default: playbooks/region-rebuild.yaml).
        playbook: Option<PathBuf>,
    },
    /// Print an EKS token as a Kubernetes ExecCredential (the generated kubeconfigs use it).
    #[command(hide = true)]
    EksToken {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Cluster region.
        #[arg(long)]
        region: String,
    },
    /// Break a stale lock on purpose, naming its holder.
    Unlock {
        /// Target region whose lock to break (default: every lock in the state directory).
        #[arg(long, short = 't')]
        target: Option<String>,
    },
}
