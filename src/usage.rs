//! Usage errors: what is wrong with the arguments or inputs of a command, one variant per
//! mistake (just's `Error`), each rendering a lowercase message with names in backticks and
//! carrying its own hint. All of them exit with code 2.

/// A mistake in how `rebuild` was called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No `--target` and no `default_target`.
    #[error("no target region given")]
    NoTarget,
    /// Not a region name.
    #[error("`{region}` is not an AWS region name")]
    NotARegion {
        /// What was given.
        region: String,
        /// Whether `rebuild unlock` asked (its hint differs).
        unlock: bool,
    },
    /// The target is the region that failed.
    #[error("the target region `{target}` is the playbook's source region")]
    TargetIsSource {
        /// The region.
        target: String,
    },
    /// `--input` without `=`.
    #[error("`--input {pair}` is not NAME=VALUE")]
    NotAPair {
        /// What was given.
        pair: String,
    },
    /// `--kubeconfig` or `--existing-cluster` with a playbook that cannot take it.
    #[error("`{flag}` needs an input `{input}` in playbook `{playbook}`, and it has none")]
    FlagNeedsInput {
        /// The flag.
        flag: &'static str,
        /// The input it needs.
        input: &'static str,
        /// The playbook's name.
        playbook: String,
    },
    /// `--kubeconfig` names no file.
    #[error("`--kubeconfig {path}`: no such file")]
    NoKubeconfigFile {
        /// What was given.
        path: String,
    },
    /// A value that does not fit the input's type.
    #[error("input `{name}` must be {expected}, not `{given}`")]
    InputType {
        /// The input.
        name: String,
        /// What it takes.
        expected: &'static str,
        /// What was given.
        given: String,
        /// Its default, rendered.
        default: String,
    },
    /// `--input` for an input the playbook does not declare.
    #[error("`--input {name}=...`: the playbook declares no input `{name}`")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The inputs it declares, comma-separated.
        declared: String,
    },
    /// A resume tried to change a pinned input.
    #[error("input `{name}` is pinned to `{pinned}` by this run; it cannot change on resume")]
    PinnedInputChanged {
        /// The input.
        name: String,
        /// Its pinned value, rendered.
        pinned: String,
    },
    /// A secret the run started with is missing on resume.
    #[error("secret input `{name}` was set when the run started, and secrets are never journaled")]
    SecretMissingOnResume {
        /// The input.
        name: String,
        /// Its environment variable, if any.
        env: Option<String>,
    },
    /// An input without a value.
    #[error("input `{name}` has no value")]
    InputMissing {
        /// The input.
        name: String,
        /// Its environment variable, if any.
        env: Option<String>,
    },
    /// `--stack` with a name tags cannot carry.
    #[error("`--stack {given}`: {reason}")]
    StackName {
        /// What was given.
        given: String,
        /// Why it is refused.
        reason: crate::stack::StackNameError,
    },
    /// A new run of a stack whose last run is unfinished.
    #[error(transparent)]
    UnfinishedRun(Box<UnfinishedRun>),
    /// `rebuild resume` with nothing to resume.
    #[error("no unfinished run in `{state_dir}`")]
    NoUnfinishedRun {
        /// The state directory.
        state_dir: String,
    },
    /// The playbook changed since the run started.
    #[error("the playbook `{path}` changed since run `{run_id}` started")]
    PlaybookChanged {
        /// The playbook file.
        path: String,
        /// The run.
        run_id: String,
    },
    /// `rebuild eks-token` could not make a token.
    #[error("{0}")]
    EksToken(String),
}

/// The unfinished run that stops a new run of the same stack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stack `{stack}` has an unfinished run `{run_id}` ({state}, started {started}, {last_step}); \
     resume it to keep what it pinned (inputs, the snapshot)"
)]
pub struct UnfinishedRun {
    /// The stack.
    pub stack: String,
    /// The unfinished run.
    pub run_id: String,
    /// Its state in one word (`failed`, `interrupted`, `crashed`).
    pub state: String,
    /// When it started, rendered.
    pub started: String,
    /// Its last step and where it stands, rendered (``last step `network` running``).
    pub last_step: String,
    /// The command that continues it.
    pub resume: String,
}

impl UsageError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::NoTarget => "pass `--target REGION`, e.g. `--target ap-southeast-1`".into(),
            Self::NotARegion { unlock: false, .. } => "write it like `ap-southeast-1`".into(),
            Self::NotARegion { unlock: true, .. } => {
                "write it like `ap-southeast-1`; `rebuild unlock` alone lists every lock".into()
            }
            Self::TargetIsSource { .. } => {
                "a rebuild must go to another region than the one that failed".into()
            }
            Self::NotAPair { .. } => {
                "write it as `--input NAME=VALUE`, e.g. `--input db_multi_az=false`".into()
            }
            Self::FlagNeedsInput { input, .. } => format!(
                "add an input `{input}` and pass it on to the steps as the default playbook does"
            ),
            Self::NoKubeconfigFile { .. } => "give the kubeconfig of the running cluster".into(),
            Self::InputType { default, .. } => format!("its default is `{default}`"),
            Self::UnknownInput { declared, .. } => format!("declared inputs: {declared}"),
            Self::PinnedInputChanged { .. } => "start a new run to use another value".into(),
            Self::SecretMissingOnResume { name, env } => {
                let how = env
                    .as_ref()
                    .map(|variable| format!("set `{variable}` or pass"))
                    .unwrap_or_else(|| "pass".into());
                format!("{how} `--input {name}=...` again, then resume")
            }
            Self::InputMissing { name, env } => {
                let from = env
                    .as_ref()
                    .map(|variable| format!(" or set `{variable}`"))
                    .unwrap_or_default();
                format!("pass `--input {name}=VALUE`{from}")
            }
            Self::StackName { .. } => {
                "use lowercase letters, digits, `-`, `_`, `.` and `@`, e.g. `--stack shop-drill`"
                    .into()
            }
            Self::UnfinishedRun(unfinished) => format!(
                "continue it with: {resume} (`--new-run` starts another run of the stack \
                 anyway: it adopts what the unfinished run built and chooses inputs and the \
                 snapshot afresh)",
                resume = unfinished.resume
            ),
            Self::NoUnfinishedRun { .. } => {
                "`rebuild runs` lists the runs; start a new one with `rebuild --target REGION`"
                    .into()
            }
            Self::PlaybookChanged { .. } => {
                "restore the playbook as it was (the journal pins its SHA-256), or start a new run"
                    .into()
            }
            Self::EksToken(_) => {
                "log in to AWS (profile, SSO or environment credentials) and try again".into()
            }
        }
    }
}
