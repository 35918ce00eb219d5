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
    /// A resume tried to change a pinned input that a succeeded step consumed.
    #[error(
        "input `{name}` is pinned to `{pinned}` by this run, and {} that used it succeeded; it cannot change to `{given}` on resume",
        steps(.consumers)
    )]
    PinnedInputChanged {
        /// The input.
        name: String,
        /// Its pinned value, rendered.
        pinned: String,
        /// The value given, rendered.
        given: String,
        /// The succeeded steps that consumed it.
        consumers: Vec<String>,
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
    /// An operator's mark (`approve`, `reject`, `skip`, `retry`) the run cannot take.
    #[error(transparent)]
    Mark(#[from] crate::plan::mark::Refusal),
    /// `--output` without `=`.
    #[error("`--output-value {pair}` is not KEY=VALUE")]
    NotAnOutputPair {
        /// What was given.
        pair: String,
    },
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
    /// `--state` is not a state URL.
    #[error("`--state {given}`: {reason}")]
    StateUrl {
        /// What was given.
        given: String,
        /// Why it is refused.
        reason: crate::state_url::StateUrlError,
    },
    /// The state bucket is in the region that failed.
    #[error("the state bucket `{location}` is in `{region}`, the playbook's source region")]
    StateInSourceRegion {
        /// The state location.
        location: String,
        /// The bucket's region.
        region: String,
    },
    /// The state bucket does not exist.
    #[error("the state bucket `{bucket}` does not exist")]
    NoStateBucket {
        /// The bucket.
        bucket: String,
    },
    /// `--replan` of a run whose journal holds no digests of its steps.
    #[error(
        "run `{run_id}` was started by a `rebuild` that journaled no digests of its steps, so the edited playbook `{path}` cannot be compared with the one it started with"
    )]
    ReplanNotJournaled {
        /// The run.
        run_id: String,
        /// The playbook file.
        path: String,
    },
    /// `--replan` of an edit that touches what already succeeded.
    #[error("{}", replan_refusal(.run_id, .path, .steps, .settings))]
    ReplanTouchesSucceeded {
        /// The run.
        run_id: String,
        /// The playbook file.
        path: String,
        /// The succeeded steps the edit changes or removes.
        steps: Vec<String>,
        /// The run-wide settings it changes (when a step succeeded).
        settings: Vec<String>,
    },
    /// `rebuild eks-token` could not make a token.
    #[error("{0}")]
    EksToken(String),
}

/// ``step `a` `` or ``steps `a` and `b` ``.
fn steps(ids: &[String]) -> String {
    let named: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    match named.as_slice() {
        [one] => format!("step {one}"),
        [rest @ .., last] => format!("steps {} and {last}", rest.join(", ")),
        [] => "no step".to_string(),
    }
}

fn replan_refusal(run_id: &str, path: &str, changed: &[String], settings: &[String]) -> String {
    let mut what = Vec::new();
    if !changed.is_empty() {
        what.push(format!(
            "{} that already succeeded in run `{run_id}`",
            steps(changed)
        ));
    }
    if !settings.is_empty() {
        let named: Vec<String> = settings.iter().map(|name| format!("`{name}`")).collect();
        what.push(format!(
            "the run-wide {} {}, which every step uses, after steps of run `{run_id}` succeeded",
            if settings.len() == 1 {
                "setting"
            } else {
                "settings"
            },
            named.join(", ")
        ));
    }
    format!(
        "the edit of playbook `{path}` changes {}; `--replan` takes up edits of steps that have not succeeded only",
        what.join(", and ")
    )
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
            Self::PinnedInputChanged { name, .. } => format!(
                "a succeeded step is never run again, so it keeps what it built with the pinned value: \
                 resume without `--input {name}=...`; to rebuild with another value, start a new run \
                 (`--new-run`), which builds everything again"
            ),
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
            Self::Mark(refusal) => refusal.hint(),
            Self::NotAnOutputPair { .. } => {
                "write it as `--output-value KEY=VALUE`; VALUE is read as JSON when it is JSON, else as text".into()
            }
            Self::NoUnfinishedRun { .. } => {
                "`rebuild runs` lists the runs; start a new one with `rebuild --target REGION`"
                    .into()
            }
            Self::PlaybookChanged { .. } => {
                "restore the playbook as it was (the journal pins its SHA-256); to run an edit of \
                 steps that have not succeeded yet, resume with `--replan`"
                    .into()
            }
            Self::ReplanNotJournaled { .. } => {
                "restore the playbook as it was (the journal pins its SHA-256), or start a new run"
                    .into()
            }
            Self::StateUrl { .. } => {
                "write `--state s3://BUCKET/PREFIX`; a local directory is `--state-dir DIR`".into()
            }
            Self::StateInSourceRegion { .. } => {
                "the state must outlive the region that failed: use a bucket in a third region \
                 (see the runbook, \"State in S3\"), or the local `--state-dir`"
                    .into()
            }
            Self::NoStateBucket { .. } => {
                "check the name, or create the bucket in a third region with versioning on \
                 (see the runbook, \"State in S3\")"
                    .into()
            }
            Self::ReplanTouchesSucceeded { .. } => {
                "a succeeded step is never run again, so its edit could not take effect: undo the \
                 edit of what is named (edits of steps that have not succeeded may stay), then \
                 `rebuild resume --replan`; or start a new run"
                    .into()
            }
            Self::EksToken(_) => {
                "log in to AWS (profile, SSO or environment credentials) and try again".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_changes_mid_run_name_the_steps_that_succeeded() {
        let consumed = UsageError::PinnedInputChanged {
            name: "existing_cluster".into(),
            pinned: "\"\"".into(),
            given: "\"pilot\"".into(),
            consumers: vec!["network".into(), "cluster".into()],
        };
        assert_eq!(
            consumed.to_string(),
            "input `existing_cluster` is pinned to `\"\"` by this run, and steps `network` and \
             `cluster` that used it succeeded; it cannot change to `\"pilot\"` on resume"
        );
        assert!(consumed.hint().contains("--new-run"));

        let replan = UsageError::ReplanTouchesSucceeded {
            run_id: "r1".into(),
            path: "/p.yaml".into(),
            steps: vec!["network".into()],
            settings: Vec::new(),
        };
        assert_eq!(
            replan.to_string(),
            "the edit of playbook `/p.yaml` changes step `network` that already succeeded in run \
             `r1`; `--replan` takes up edits of steps that have not succeeded only"
        );
        let settings = UsageError::ReplanTouchesSucceeded {
            run_id: "r1".into(),
            path: "/p.yaml".into(),
            steps: Vec::new(),
            settings: vec!["tags".into()],
        };
        assert!(
            settings
                .to_string()
                .contains("changes the run-wide setting `tags`, which every step uses"),
            "{settings}"
        );
        assert!(
            UsageError::PlaybookChanged {
                path: "/p.yaml".into(),
                run_id: "r1".into()
            }
            .hint()
            .contains("--replan")
        );
    }
}
