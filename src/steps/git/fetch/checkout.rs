//! The git2 half, blocking (run it off the runtime): fetching into the checkout folder
//! from a URL or a `git bundle` file (see [`bundle`](super::bundle)), listing a mirror's
//! refs without writing anything, and checking out one commit as a detached HEAD. Failures
//! are sorted by what to do about them.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Direction, ErrorClass, FetchOptions, Oid, Remote, RemoteCallbacks, Repository,
};

use super::StepError;
use super::api::token_hint;
use super::blocking::Feedback;
use super::bundle;
use super::choose::{Refusal, TAG_HINT};
use super::origin::{Kind, Origin};
use crate::cloud::CloudError;
use crate::secret::Redactor;

/// Why git work failed, sorted by what to do about it.
#[derive(Debug)]
pub(super) enum Failure {
    /// The host could not be reached or broke off (retryable).
    Transport(String),
    /// The host refused the credentials.
    Auth(String),
    /// No repository there.
    Missing(String),
    /// Fetched, but the commit is not there.
    Lacks(String),
    /// No such tag (or pattern match) on the mirror.
    Refused(Refusal),
    /// Anything else: the local disk, a broken bundle.
    Other(String),
}

impl Failure {
    pub(super) fn message(&self) -> &str {
        match self {
            Self::Transport(message)
            | Self::Auth(message)
            | Self::Missing(message)
            | Self::Lacks(message)
            | Self::Other(message) => message,
            Self::Refused(refusal) => &refusal.message,
        }
    }

    /// The step's error, with every credential scrubbed from its message.
    pub(super) fn into_step_error(self, repo: &str, redactor: &Redactor) -> StepError {
        let clean = |text: &str| redactor.scrub(text);
        let cloud = |message: &str, retryable: bool| {
            StepError::Cloud(CloudError {
                retryable,
                ..CloudError::local("git fetch", Some(repo.to_string()), clean(message))
            })
        };
        match self {
            Self::Transport(message) => cloud(&message, true),
            Self::Other(message) => cloud(&message, false),
            Self::Auth(message) => StepError::Refused {
                message: clean(&message),
                hint: token_hint(repo),
            },
            Self::Missing(message) => StepError::Refused {
                message: clean(&message),
                hint: "check `repo:` and `clone_url:` (and `mirror:`); a private repository also answers `not found` without a token that can read it".to_string(),
            },
            Self::Lacks(message) => StepError::Refused {
                message: clean(&message),
                hint: "this run pinned a commit the host no longer has (a moved tag whose old commit was deleted?); restore it, or start a new run to resolve the tag again".to_string(),
            },
            Self::Refused(refusal) => StepError::Refused {
                message: clean(&refusal.message),
                hint: if refusal.hint.is_empty() {
                    TAG_HINT.to_string()
                } else {
                    refusal.hint
                },
            },
        }
    }
}

/// Sort a git2 error by what to do about it. libgit2 says what went wrong only in its text
/// for most of these (an HTTP status, a missing repository: its error classes and codes do
/// not tell them apart), so the text decides here, the one place in the step that does.
fn classify(error: &git2::Error, origin: &Origin) -> Failure {
    let message = format!(
        "fetching from {} `{origin}` failed: {}",
        origin.label,
        error.message()
    );
    let lower = error.message().to_ascii_lowercase();
    if lower.contains("http 401")
        || lower.contains("http 403")
        || error.code() == git2::ErrorCode::Auth
    {
        Failure::Auth(message)
    } else if lower.contains("http 404")
        || lower.contains("not found")
        || lower.contains("not exported")
        || lower.contains("could not find repository")
        || lower.contains("does not appear to be a git repository")
    {
        Failure::Missing(message)
    } else if matches!(
        error.class(),
        ErrorClass::Net | ErrorClass::Os | ErrorClass::Http | ErrorClass::Ssl | ErrorClass::Ssh
    ) {
        Failure::Transport(message)
    } else {
        Failure::Other(message)
    }
}

pub(super) fn other(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::Other(format!("{what}: {error}"))
}

/// The checkout folder's repository: reopened if an earlier attempt made it, else new.
/// Whatever else sits there is a leftover of this step (the folder is the step's own).
fn open_or_init(dir: &Path) -> Result<(Repository, bool), Failure> {
    if let Ok(repository) = Repository::open(dir)
        && repository
            .workdir()
            .is_some_and(|workdir| same_path(workdir, dir))
    {
        clear_stale_locks(repository.path())?;
        return Ok((repository, false));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|error| other(&format!("cannot clear `{}`", dir.display()), error))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|error| other(&format!("cannot create `{}`", dir.display()), error))?;
    let repository = Repository::init(dir).map_err(|error| {
        other(
            &format!("cannot create a repository in `{}`", dir.display()),
            error.message(),
        )
    })?;
    Ok((repository, true))
}

/// Remove the `*.lock` files (`HEAD.lock`, `index.lock`, `config.lock`, `packed-refs.lock`,
/// `refs/**.lock`) a killed attempt left in `git_dir`: git refuses to touch a file whose
/// lock exists. Only this step's attempt uses its checkout (the run holds the run lock),
/// so any lock there is stale. The object store is left alone (its temporary files do
/// not block anything).
fn clear_stale_locks(git_dir: &Path) -> Result<(), Failure> {
    let mut folders = vec![git_dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if path != git_dir.join("objects") {
                    folders.push(path);
                }
            } else if path
                .extension()
                .is_some_and(|extension| extension == "lock")
            {
                std::fs::remove_file(&path).map_err(|error| {
                    other(
                        &format!("cannot remove the stale lock `{}`", path.display()),
                        error,
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn has_commit(repository: &Repository, commit: Oid) -> bool {
    repository.find_commit(commit).is_ok()
}

/// Fetch every tag and branch of `origin` into `repository`.
fn fetch(repository: &Repository, origin: &Origin, feedback: &Feedback<'_>) -> Result<(), Failure> {
    let report = feedback.report;
    let stopped = feedback.stopped;
    match &origin.kind {
        Kind::Bundle(path) => bundle::import(repository, path),
        Kind::Url(url) => {
            report(format!("fetching from {} `{origin}`", origin.label));
            let mut remote = repository
                .remote_anonymous(url.expose())
                .map_err(|error| classify(&error, origin))?;
            let mut callbacks = RemoteCallbacks::new();
            let mut reported = 0;
            callbacks.transfer_progress(|progress| {
                let total = progress.total_objects();
                if total > 1000 {
                    let percent = progress.received_objects() * 100 / total;
                    if percent >= reported + 25 {
                        reported = percent - percent % 25;
                        report(format!("fetching: {reported}% of {total} objects"));
                    }
                }
                !stopped()
            });
            callbacks.sideband_progress(|_| !stopped());
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(callbacks)
                .download_tags(AutotagOption::None);
            let heads = format!("+refs/heads/*:refs/remotes/{}/*", origin.remote_name());
            remote
                .fetch(
                    &["+refs/tags/*:refs/tags/*", heads.as_str()],
                    Some(&mut options),
                    None,
                )
                .map_err(|error| classify(&error, origin))
        }
    }
}

/// The mirror's refs (name → object id; `^{}` entries are peeled tags), read without
/// writing anything.
pub(super) fn list_mirror(mirror: &Origin) -> Result<Vec<(String, String)>, Failure> {
    match &mirror.kind {
        Kind::Bundle(path) => bundle::list(path),
        Kind::Url(url) => {
            let mut remote =
                Remote::create_detached(url.expose()).map_err(|error| classify(&error, mirror))?;
            remote
                .connect(Direction::Fetch)
                .map_err(|error| classify(&error, mirror))?;
            let refs = remote
                .list()
                .map_err(|error| classify(&error, mirror))?
                .iter()
                .map(|head| (head.name().to_string(), head.oid().to_string()))
                .collect();
            let _ = remote.disconnect();
            Ok(refs)
        }
    }
}

/// Fetch the mirror into the checkout folder and choose the tag there (annotated tags
/// peeled to their commits). Returns the tag, its commit, and whether `choose`
/// approximated the latest release.
pub(super) fn resolve_on_mirror(
    dir: &Path,
    mirror: &Origin,
    feedback: &Feedback<'_>,
    choose: impl FnOnce(&[(String, Oid)]) -> Result<(String, bool), Refusal>,
) -> Result<(String, String, bool), Failure> {
    let (repository, _) = open_or_init(dir)?;
    fetch(&repository, mirror, feedback)?;
    let mut tags = Vec::new();
    let references = repository
        .references_glob("refs/tags/*")
        .map_err(|error| other("cannot list tags", error.message()))?;
    for reference in references.flatten() {
        let (Ok(name), Ok(commit)) = (reference.shorthand(), reference.peel_to_commit()) else {
            continue;
        };
        tags.push((name.to_string(), commit.id()));
    }
    let (tag, approximated) = choose(&tags).map_err(Failure::Refused)?;
    let commit = tags
        .iter()
        .find(|(name, _)| *name == tag)
        .map(|(_, commit)| commit.to_string())
        .unwrap_or_default();
    Ok((tag, commit, approximated))
}

/// What [`check_out`] did.
pub(super) struct Outcome {
    /// The checkout folder was made by this attempt.
    pub(super) created: bool,
    /// The commit's objects came from the mirror in this attempt.
    pub(super) from_mirror: bool,
}

/// Make `dir` a checkout of exactly `commit` (detached HEAD), fetching from `origins` in
/// order until one has it (nothing is fetched if an earlier attempt did already).
pub(super) fn check_out(
    dir: &Path,
    commit: &str,
    reference: &str,
    origins: &[Origin],
    feedback: &Feedback<'_>,
) -> Result<Outcome, Failure> {
    let report = feedback.report;
    let oid = Oid::from_str(commit)
        .map_err(|_| Failure::Other(format!("the pinned commit `{commit}` is not a SHA")))?;
    let (repository, created) = open_or_init(dir)?;
    match fill(&repository, oid, commit, reference, origins, feedback) {
        Ok(from_mirror) => Ok(Outcome {
            created,
            from_mirror,
        }),
        // An earlier attempt's checkout that cannot be brought to the commit (a crash
        // mid-write can leave it damaged): the folder is the step's own, so start afresh.
        Err(Failure::Other(message)) if !created && !(feedback.stopped)() => {
            report(format!(
                "WARNING: the earlier attempt's checkout is damaged ({message}); checking out afresh"
            ));
            drop(repository);
            std::fs::remove_dir_all(dir)
                .map_err(|error| other(&format!("cannot clear `{}`", dir.display()), error))?;
            let (repository, _) = open_or_init(dir)?;
            let from_mirror = fill(&repository, oid, commit, reference, origins, feedback)?;
            Ok(Outcome {
                created: true,
                from_mirror,
            })
        }
        Err(failure) => Err(failure),
    }
}

/// Fetch `oid` into `repository` from the first of `origins` that has it (unless it is
/// there already) and check it out as a detached HEAD. Returns whether the objects came
/// from the mirror.
fn fill(
    repository: &Repository,
    oid: Oid,
    commit: &str,
    reference: &str,
    origins: &[Origin],
    feedback: &Feedback<'_>,
) -> Result<bool, Failure> {
    let report = feedback.report;
    let mut from_mirror = false;
    if !has_commit(repository, oid) {
        let mut failures: Vec<Failure> = Vec::new();
        for (index, origin) in origins.iter().enumerate() {
            if (feedback.stopped)() {
                return Err(Failure::Other("stopped: the run is stopping".to_string()));
            }
            if let Some(previous) = failures.last() {
                report(format!(
                    "WARNING: {}; trying {} `{origin}` instead (still pinned to {commit})",
                    previous.message(),
                    origin.label,
                ));
            }
            match fetch(repository, origin, feedback) {
                Ok(()) if has_commit(repository, oid) => {
                    from_mirror = origin.is_mirror();
                    if index > 0 {
                        report(format!(
                            "WARNING: fetched commit {commit} from {} `{origin}`",
                            origin.label,
                        ));
                    }
                    break;
                }
                Ok(()) => failures.push(Failure::Lacks(format!(
                    "commit {commit} (`{reference}`) is not in {} `{origin}`",
                    origin.label,
                ))),
                Err(failure) => failures.push(failure),
            }
        }
        if !has_commit(repository, oid) {
            return Err(combine(failures));
        }
    }
    repository
        .set_head_detached(oid)
        .map_err(|error| other(&format!("cannot point HEAD at {commit}"), error.message()))?;
    let mut options = CheckoutBuilder::new();
    options.force().remove_untracked(true);
    repository
        .checkout_head(Some(&mut options))
        .map_err(|error| other(&format!("cannot check out {commit}"), error.message()))?;
    let head = repository.head().ok().and_then(|head| head.target());
    let detached = repository.head_detached().unwrap_or(false);
    if head != Some(oid) || !detached {
        return Err(Failure::Other(format!(
            "after the checkout HEAD is {} instead of {commit}",
            head.map_or_else(|| "unset".to_string(), |oid| oid.to_string())
        )));
    }
    Ok(from_mirror)
}

/// One failure from several origins: the most actionable kind, every message.
fn combine(mut failures: Vec<Failure>) -> Failure {
    if failures.len() == 1 {
        return failures.remove(0);
    }
    let message = failures
        .iter()
        .map(Failure::message)
        .collect::<Vec<_>>()
        .join("; and ");
    let rank = |failure: &Failure| match failure {
        Failure::Auth(_) => 0,
        Failure::Missing(_) => 1,
        Failure::Transport(_) => 2,
        Failure::Lacks(_) => 3,
        Failure::Refused(_) | Failure::Other(_) => 4,
    };
    let first = failures.iter().map(rank).min().unwrap_or(4);
    match first {
        0 => Failure::Auth(message),
        1 => Failure::Missing(message),
        2 => Failure::Transport(message),
        3 => Failure::Lacks(message),
        _ => Failure::Other(message),
    }
}
