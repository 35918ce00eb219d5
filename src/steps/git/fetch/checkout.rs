//! The git2 half, blocking (run it off the runtime): fetching into the checkout folder
//! from a URL or a `git bundle` file, listing a mirror's refs without writing anything,
//! and checking out one commit as a detached HEAD.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, Direction, ErrorClass, FetchOptions, Oid, Remote, RemoteCallbacks, Repository,
};

use super::StepError;
use super::api::token_hint;
use super::choose::{Refusal, TAG_HINT};
use super::parameters::scrub;
use crate::cloud::CloudError;
use crate::cloud::github::{install_git_http_transport, redact_url};

/// How blocking work talks back: progress lines, and whether to give up.
pub(super) struct Feedback<'a> {
    /// Tell the user something.
    pub(super) report: &'a dyn Fn(String),
    /// The run is stopping: give up at the next chance.
    pub(super) stopped: &'a dyn Fn() -> bool,
}

/// Where objects can come from.
#[derive(Debug, Clone)]
enum Kind {
    /// A git URL or a repository path (may carry credentials).
    Url(String),
    /// A `git bundle` file.
    Bundle(PathBuf),
}

/// A place to fetch from: the repository's host, or the mirror.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    kind: Kind,
    label: &'static str,
}

impl Origin {
    /// A git URL (credentials allowed; they are never shown).
    pub(super) fn url(url: &str, label: &'static str) -> Self {
        Self {
            kind: Kind::Url(url.to_string()),
            label,
        }
    }

    /// The mirror: a `git bundle` file (a path, or `file://` URL, of a file), else a git
    /// URL or repository path.
    pub(super) fn mirror(mirror: &str) -> Self {
        let path = Path::new(mirror.strip_prefix("file://").unwrap_or(mirror));
        let kind = if path.is_file() {
            Kind::Bundle(path.to_path_buf())
        } else {
            Kind::Url(mirror.to_string())
        };
        Self {
            kind,
            label: "the mirror",
        }
    }

    /// How it is shown: credentials redacted.
    pub(super) fn shown(&self) -> String {
        match &self.kind {
            Kind::Url(url) => redact_url(url),
            Kind::Bundle(path) => path.display().to_string(),
        }
    }

    fn is_mirror(&self) -> bool {
        self.label == "the mirror"
    }

    fn remote_name(&self) -> &'static str {
        if self.is_mirror() { "mirror" } else { "origin" }
    }
}

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

    /// The step's error, with the token scrubbed from every message.
    pub(super) fn into_step_error(self, repo: &str, token: Option<&str>) -> StepError {
        let clean = |text: &str| scrub(text, token);
        let cloud = |message: &str, retryable: bool| {
            StepError::Cloud(CloudError {
                operation: "git fetch".to_string(),
                resource: Some(repo.to_string()),
                code: None,
                message: clean(message),
                status: None,
                retryable,
                missing_credentials: false,
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

/// Sort a git2 error by what to do about it.
fn classify(error: &git2::Error, origin: &Origin) -> Failure {
    let message = format!(
        "fetching from {} `{}` failed: {}",
        origin.label,
        origin.shown(),
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

fn other(what: &str, error: impl std::fmt::Display) -> Failure {
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
        Kind::Bundle(path) => import_bundle(repository, path).map(|_| ()),
        Kind::Url(url) => {
            install_git_http_transport().map_err(|error| Failure::Other(error.to_string()))?;
            report(format!(
                "fetching from {} `{}`",
                origin.label,
                origin.shown()
            ));
            let mut remote = repository
                .remote_anonymous(url)
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

/// A bundle's header: the commits it needs, and its refs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BundleHeader {
    pub(super) prerequisites: Vec<Oid>,
    pub(super) refs: Vec<(String, Oid)>,
}

/// Read a `git bundle` header (v2 or v3, SHA-1), leaving `reader` at the pack.
pub(super) fn read_bundle_header(
    reader: &mut impl BufRead,
    shown: &str,
) -> Result<BundleHeader, String> {
    let mut line = Vec::new();
    let mut next = |line: &mut Vec<u8>| -> Result<String, String> {
        line.clear();
        reader
            .read_until(b'\n', line)
            .map_err(|error| format!("cannot read the bundle `{shown}`: {error}"))?;
        Ok(String::from_utf8_lossy(line)
            .trim_end_matches('\n')
            .to_string())
    };
    let signature = next(&mut line)?;
    if signature != "# v2 git bundle" && signature != "# v3 git bundle" {
        return Err(format!(
            "`{shown}` is not a git bundle (made with `git bundle create`)"
        ));
    }
    let mut header = BundleHeader::default();
    loop {
        let text = next(&mut line)?;
        if text.is_empty() {
            return Ok(header);
        }
        if let Some(capability) = text.strip_prefix('@') {
            if capability.starts_with("filter") {
                return Err(format!(
                    "`{shown}` is a partial (filtered) bundle; make a full one"
                ));
            }
            if let Some(format) = capability.strip_prefix("object-format=")
                && format != "sha1"
            {
                return Err(format!(
                    "`{shown}` uses `{format}` object ids; only SHA-1 is supported"
                ));
            }
            continue;
        }
        let (oid, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let prerequisite = oid.strip_prefix('-');
        let oid = Oid::from_str(prerequisite.unwrap_or(oid))
            .map_err(|_| format!("`{shown}` has a malformed header line `{text}`"))?;
        match prerequisite {
            Some(_) => header.prerequisites.push(oid),
            None => header.refs.push((rest.to_string(), oid)),
        }
    }
}

/// Load a bundle's objects and tags into `repository` (branches go under
/// `refs/remotes/mirror/`). Returns the bundle's refs.
fn import_bundle(repository: &Repository, path: &Path) -> Result<BundleHeader, Failure> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|error| {
        Failure::Missing(format!("cannot open the mirror bundle `{shown}`: {error}"))
    })?;
    let mut reader = BufReader::new(file);
    let header = read_bundle_header(&mut reader, &shown).map_err(Failure::Other)?;
    let odb = repository
        .odb()
        .map_err(|error| other("cannot open the object database", error.message()))?;
    if let Some(missing) = header.prerequisites.iter().find(|oid| !odb.exists(**oid)) {
        return Err(Failure::Other(format!(
            "the bundle `{shown}` is incremental: it needs commit {missing}, which it does not hold; make the mirror with `git bundle create FILE --all`"
        )));
    }
    let mut writer = odb
        .packwriter()
        .map_err(|error| other("cannot write objects", error.message()))?;
    std::io::copy(&mut reader, &mut writer)
        .map_err(|error| other(&format!("cannot read the pack in `{shown}`"), error))?;
    writer
        .commit()
        .map_err(|error| other(&format!("the pack in `{shown}` is broken"), error.message()))?;
    for (name, oid) in &header.refs {
        let local = if name.starts_with("refs/tags/") {
            name.clone()
        } else if let Some(branch) = name.strip_prefix("refs/heads/") {
            format!("refs/remotes/mirror/{branch}")
        } else {
            continue;
        };
        repository
            .reference(&local, *oid, true, "rebuild: imported from a bundle")
            .map_err(|error| {
                other(
                    &format!("cannot record `{name}` from `{shown}`"),
                    error.message(),
                )
            })?;
    }
    Ok(header)
}

/// The mirror's refs (name → object id; `^{}` entries are peeled tags), read without
/// writing anything.
pub(super) fn list_mirror(mirror: &str) -> Result<Vec<(String, String)>, Failure> {
    let origin = Origin::mirror(mirror);
    match &origin.kind {
        Kind::Bundle(path) => {
            let shown = path.display().to_string();
            let file = File::open(path).map_err(|error| {
                Failure::Missing(format!("cannot open the mirror bundle `{shown}`: {error}"))
            })?;
            let header =
                read_bundle_header(&mut BufReader::new(file), &shown).map_err(Failure::Other)?;
            Ok(header
                .refs
                .into_iter()
                .map(|(name, oid)| (name, oid.to_string()))
                .collect())
        }
        Kind::Url(url) => {
            install_git_http_transport().map_err(|error| Failure::Other(error.to_string()))?;
            let mut remote =
                Remote::create_detached(url.as_str()).map_err(|error| classify(&error, &origin))?;
            remote
                .connect(Direction::Fetch)
                .map_err(|error| classify(&error, &origin))?;
            let refs = remote
                .list()
                .map_err(|error| classify(&error, &origin))?
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
                    "WARNING: {}; trying {} `{}` instead (still pinned to {commit})",
                    previous.message(),
                    origin.label,
                    origin.shown()
                ));
            }
            match fetch(repository, origin, feedback) {
                Ok(()) if has_commit(repository, oid) => {
                    from_mirror = origin.is_mirror();
                    if index > 0 {
                        report(format!(
                            "WARNING: fetched commit {commit} from {} `{}`",
                            origin.label,
                            origin.shown()
                        ));
                    }
                    break;
                }
                Ok(()) => failures.push(Failure::Lacks(format!(
                    "commit {commit} (`{reference}`) is not in {} `{}`",
                    origin.label,
                    origin.shown()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_headers_are_read_up_to_the_pack() {
        let commit = "50d0f7d8603add94b23e4e7fae6f7727261dc85e";
        let tag = "77989df1de2d773af5b551369717d8e61445de63";
        let text = format!(
            "# v2 git bundle\n-{commit} base\n{commit} refs/heads/main\n{tag} refs/tags/v1.0.0\n\nPACK..."
        );
        let mut reader = std::io::Cursor::new(text.into_bytes());
        let header = read_bundle_header(&mut reader, "x.bundle").unwrap();
        assert_eq!(header.prerequisites.len(), 1);
        assert_eq!(
            header
                .refs
                .iter()
                .map(|(name, oid)| format!("{name}={oid}"))
                .collect::<Vec<_>>(),
            [
                format!("refs/heads/main={commit}"),
                format!("refs/tags/v1.0.0={tag}")
            ]
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
        assert_eq!(rest, "PACK...");

        let v3 = "# v3 git bundle\n@object-format=sha256\n\n";
        let error = read_bundle_header(&mut std::io::Cursor::new(v3), "y.bundle").unwrap_err();
        assert!(error.contains("only SHA-1"), "{error}");
        let error = read_bundle_header(&mut std::io::Cursor::new("hello\n"), "z").unwrap_err();
        assert!(error.contains("is not a git bundle"), "{error}");
    }
}
