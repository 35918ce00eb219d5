//! Top-level errors: each names what went wrong and where, carries a hint with the next
//! command to run, and maps to a documented exit code. Only `main` turns them into one.

use crate::journal::lock::LockError;
use crate::journal::s3::OpenError;
use crate::journal::{JournalError, LoadRunError};
use crate::playbook::{LoadError, Problems};
use crate::usage::UsageError;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or inputs.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The playbook has problems.
    #[error("the playbook has {} problem(s):\n{problems}", problems.items.len())]
    Playbook {
        /// Every problem.
        problems: Problems,
    },
    /// The playbook could not be read.
    #[error(transparent)]
    PlaybookRead(LoadError),
    /// Confirmation needed but impossible, or declined.
    #[error("{message}")]
    NotConfirmed {
        /// What happened.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The lock is held.
    #[error(transparent)]
    Lock(Box<LockError>),
    /// The plan found problems; nothing was changed.
    #[error("the plan found {count} problem(s); nothing was changed")]
    PlanRefused {
        /// How many.
        count: usize,
        /// What to do.
        hint: String,
    },
    /// A step failed.
    #[error("run `{run_id}` failed at step(s) {steps}")]
    RunFailed {
        /// Run id.
        run_id: String,
        /// Failed steps, rendered.
        steps: String,
        /// The resume command.
        resume: String,
    },
    /// Stopped by a signal.
    #[error("run `{run_id}` was interrupted; every step stopped at a safe point")]
    Interrupted {
        /// Run id.
        run_id: String,
        /// The resume command.
        resume: String,
    },
    /// A run could not be loaded.
    #[error(transparent)]
    State(Box<LoadRunError>),
    /// The journal could not be written.
    #[error(transparent)]
    Journal(Box<JournalError>),
    /// The shared state could not be opened.
    #[error(transparent)]
    StateOpen(Box<OpenError>),
}

impl From<OpenError> for Error {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::NoSuchBucket { bucket } => UsageError::NoStateBucket { bucket }.into(),
            other => Self::StateOpen(Box::new(other)),
        }
    }
}

impl From<LockError> for Error {
    fn from(error: LockError) -> Self {
        Self::Lock(Box::new(error))
    }
}

impl From<LoadRunError> for Error {
    fn from(error: LoadRunError) -> Self {
        Self::State(Box::new(error))
    }
}

impl From<crate::plan::mark::Refusal> for Error {
    fn from(refusal: crate::plan::mark::Refusal) -> Self {
        Self::Usage(UsageError::Mark(refusal))
    }
}

impl From<JournalError> for Error {
    fn from(error: JournalError) -> Self {
        Self::Journal(Box::new(error))
    }
}

impl Error {
    /// The documented exit code (see `rebuild --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_)
            | Self::Playbook { .. }
            | Self::PlaybookRead(_)
            | Self::NotConfirmed { .. } => 2,
            Self::Lock(_) => 3,
            Self::PlanRefused { .. } => 4,
            Self::RunFailed { .. } => 1,
            Self::Interrupted { .. } => 130,
            Self::State(_) | Self::Journal(_) | Self::StateOpen(_) => 5,
        }
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Usage(usage) => Some(usage.hint()),
            Self::Playbook { .. } => Some("fix the lines above, then `rebuild validate` to check".into()),
            Self::PlaybookRead(_) => Some("pass the playbook with `--playbook FILE`".into()),
            Self::NotConfirmed { hint, .. } => Some(hint.clone()),
            Self::Lock(error) if matches!(**error, LockError::Held { .. }) => Some(
                "wait for that run to finish, or stop it (Ctrl-C / SIGTERM) and `rebuild resume` it; \
                 `rebuild status` shows its progress"
                    .into(),
            ),
            Self::Lock(error) => match &**error {
                LockError::ForeignHost { target, .. } => Some(format!(
                    "make sure that host is not running it any more, then `rebuild unlock --target {target}`"
                )),
                LockError::Shared {
                    target,
                    location,
                    holder,
                } => Some(format!(
                    "if that run is still going, wait for it or stop it on `{host}` (Ctrl-C / SIGTERM); \
                     if its process is gone, break the lock on purpose — a lock in S3 is never \
                     judged dead by its pid, since its host cannot be checked from here: \
                     `rebuild unlock --target {target} --state {location}`, then \
                     `rebuild resume {run_id} --state {location}`",
                    host = holder.host,
                    run_id = holder.run_id,
                )),
                LockError::Remote { .. } => Some(
                    "check the credentials, the network and the state bucket's policy (the \
                     runbook lists the S3 actions `rebuild` needs)"
                        .into(),
                ),
                _ => Some("check the state directory's permissions".into()),
            },
            Self::PlanRefused { hint, .. } => Some(hint.clone()),
            Self::RunFailed { resume, .. } => Some(format!("fix the cause above, then: {resume}")),
            Self::Interrupted { resume, .. } => Some(format!("continue with: {resume}")),
            Self::State(error) if matches!(**error, LoadRunError::NotFound(_)) => {
                Some("`rebuild runs` lists the runs in this state directory".into())
            }
            Self::State(_) | Self::Journal(_) => Some(
                "check the state directory or bucket (disk, permissions, credentials); a damaged journal record before the last one is never guessed at"
                    .into(),
            ),
            Self::StateOpen(error) => match &**error {
                OpenError::Location { source, .. } if source.missing_credentials => {
                    Some(crate::steps::NO_CREDENTIALS_HINT.into())
                }
                _ => Some(
                    "check the credentials and that the bucket policy allows `s3:GetBucketLocation` \
                     (the runbook lists every S3 action `rebuild` needs)"
                        .into(),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::lock::Holder;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let holder = Holder {
            run_id: "r1".into(),
            user: "alice".into(),
            host: "laptop".into(),
            pid: 42,
            since: jiff::Timestamp::UNIX_EPOCH,
            target: "ap-southeast-1".into(),
        };
        let cases: Vec<(Error, u8)> = vec![
            (Error::from(UsageError::NoTarget), 2),
            (
                Error::from(LockError::Held {
                    target: "ap-southeast-1".into(),
                    holder: Box::new(holder.clone()),
                }),
                3,
            ),
            (
                Error::PlanRefused {
                    count: 1,
                    hint: String::new(),
                },
                4,
            ),
            (
                Error::RunFailed {
                    run_id: "r1".into(),
                    steps: "`a`".into(),
                    resume: "rebuild resume r1".into(),
                },
                1,
            ),
            (
                Error::Interrupted {
                    run_id: "r1".into(),
                    resume: "rebuild resume r1".into(),
                },
                130,
            ),
            (Error::from(LoadRunError::NotFound("r9".into())), 5),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
            assert!(
                error.hint().is_some(),
                "every error says what to do next: {error}"
            );
            assert!(
                crate::cli::EXIT_CODES.contains(&format!("  {code} ")),
                "exit code {code} is documented"
            );
        }
    }

    #[test]
    fn a_held_lock_names_its_holder_and_a_foreign_one_says_how_to_break_it() {
        let holder = Holder {
            run_id: "r1".into(),
            user: "alice".into(),
            host: "laptop".into(),
            pid: 42,
            since: jiff::Timestamp::UNIX_EPOCH,
            target: "ap-southeast-1".into(),
        };
        let held = Error::from(LockError::Held {
            target: "ap-southeast-1".into(),
            holder: Box::new(holder.clone()),
        });
        assert_eq!(
            held.to_string(),
            "another rebuild is running for `ap-southeast-1`: run `r1` by `alice` on host `laptop` (pid 42, since 1970-01-01 00:00:00 UTC)"
        );
        let shared = Error::from(LockError::Shared {
            target: "ap-southeast-1".into(),
            location: "s3://team-state/dr".into(),
            holder: Box::new(holder.clone()),
        });
        assert_eq!(shared.exit_code(), 3);
        assert_eq!(
            shared.to_string(),
            "the lock for `ap-southeast-1` in `s3://team-state/dr` is held by run `r1` by `alice` on host `laptop` (pid 42, since 1970-01-01 00:00:00 UTC)"
        );
        let hint = shared.hint().unwrap();
        assert!(hint.contains("never judged dead by its pid"), "{hint}");
        assert!(
            hint.contains(
                "`rebuild unlock --target ap-southeast-1 --state s3://team-state/dr`, then \
                 `rebuild resume r1 --state s3://team-state/dr`"
            ),
            "{hint}"
        );
        let foreign = Error::from(LockError::ForeignHost {
            target: "ap-southeast-1".into(),
            holder: Box::new(holder),
        });
        assert!(
            foreign
                .hint()
                .unwrap()
                .contains("rebuild unlock --target ap-southeast-1")
        );
    }
}
