//! The plan cache of `git.fetch`: checkouts the plan makes of the commits it resolved,
//! under `git/<owner>__<name>/<commit>` in the workspace's plan cache, so later steps are
//! planned from the real files. A checkout there is made once, in a private folder renamed
//! into place, and never written again; each repository keeps its three most recently
//! planned ones, and private folders of plans killed half way are cleared. When the step
//! runs it fetches from its plan's copy first (local, fast) when the copy came from the
//! same source. Blocking: run it off the runtime.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::blocking::Feedback;
use super::checkout::{self, Failure};
use super::origin::Origin;
use super::resolve::{Resolved, Source};

/// The file in a plan's checkout saying where its objects came from (`github`, `mirror`).
const FETCHED_FROM: &str = "rebuild-fetched-from";

/// Where the plan checks out `commit` of `repo` in the plan cache.
pub(super) fn plan_cache(cache: &Path, repo: &str, commit: &str) -> PathBuf {
    cache.join("git").join(repo.replace('/', "__")).join(commit)
}

/// The plan's checkout of `resolved`, when the plan made one from the same source (reusing
/// a copy fetched elsewhere would change the `source` the step reports).
pub(super) fn planned_copy(cache: &Path, repo: &str, resolved: &Resolved) -> Option<PathBuf> {
    let dir = plan_cache(cache, repo, &resolved.commit);
    let from = std::fs::read_to_string(dir.join(".git").join(FETCHED_FROM)).ok()?;
    (from == resolved.source.as_str()).then_some(dir)
}

/// Make `dir` the plan cache's checkout of `resolved` (see [`cached_checkout`]) and keep
/// the repository's recent ones only. Returns where its objects came from.
pub(super) fn check_out(
    dir: &Path,
    resolved: &Resolved,
    origins: &[Origin],
) -> Result<Source, Failure> {
    let from = cached_checkout(dir, resolved, origins)?;
    keep_recent(dir);
    Ok(Source::named(&from))
}

/// The plan cache's checkout of `commit` in `dir`, made once and never written again: a
/// complete one (it has the [`FETCHED_FROM`] file and its HEAD is `commit`) is used as it
/// is; otherwise the commit is checked out in a private folder beside it, which is then
/// renamed into place. Plans running side by side, or killed half way, never leave a
/// half-written or locked checkout there. Returns where the objects came from.
fn cached_checkout(dir: &Path, resolved: &Resolved, origins: &[Origin]) -> Result<String, Failure> {
    let commit = resolved.commit.as_str();
    let complete = |dir: &Path| -> Option<String> {
        let from = std::fs::read_to_string(dir.join(".git").join(FETCHED_FROM)).ok()?;
        let head = git2::Repository::open(dir).ok()?.head().ok()?.target()?;
        (head.to_string() == commit).then_some(from)
    };
    if let Some(from) = complete(dir) {
        return Ok(from);
    }
    let unwritable =
        |what: String, error: std::io::Error| Failure::Other(format!("{what}: {error}"));
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)
        .map_err(|error| unwritable(format!("cannot create `{}`", parent.display()), error))?;
    clear_abandoned(dir);
    let partial = dir.with_extension(format!("partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|error| unwritable(format!("cannot clear `{}`", partial.display()), error))?;
    }
    let outcome = Feedback::silent(|feedback| {
        checkout::check_out(&partial, commit, &resolved.reference, origins, feedback)
    })?;
    // Where the objects came from, so the step reuses this copy only when that does not
    // change what it reports (`source`).
    let from = if outcome.from_mirror {
        Source::Mirror
    } else {
        resolved.source
    };
    std::fs::write(partial.join(".git").join(FETCHED_FROM), from.as_str())
        .map_err(|error| unwritable(format!("cannot write `{}`", partial.display()), error))?;
    if let Some(theirs) = complete(dir) {
        // Another plan finished first: use its copy.
        let _ = std::fs::remove_dir_all(&partial);
        return Ok(theirs);
    }
    if dir.exists() {
        // An incomplete copy (an older layout): replace it.
        std::fs::remove_dir_all(dir)
            .map_err(|error| unwritable(format!("cannot clear `{}`", dir.display()), error))?;
    }
    match std::fs::rename(&partial, dir) {
        Ok(()) => Ok(from.as_str().to_string()),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&partial);
            complete(dir).ok_or_else(|| {
                unwritable(
                    format!("cannot move the checkout to `{}`", dir.display()),
                    error,
                )
            })
        }
    }
}

/// How many plan-time checkouts of one repository the cache keeps (the most recently
/// planned ones).
const CACHE_KEPT: usize = 3;

/// Mark `dir` (a complete plan-time checkout) as just used, and remove its repository's
/// other cached checkouts beyond the [`CACHE_KEPT`] most recently used. A run never needs
/// them: the step fetches from the hosts when the plan's copy is gone.
fn keep_recent(dir: &Path) {
    let (Some(parent), Ok(used)) = (dir.parent(), std::fs::File::open(dir)) else {
        return;
    };
    let _ = used.set_modified(SystemTime::now());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut checkouts: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().contains(".partial-"))
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, entry.path()))
        })
        .collect();
    checkouts.sort_by_key(|checkout| std::cmp::Reverse(checkout.0));
    for (_, old) in checkouts.iter().skip(CACHE_KEPT) {
        if old != dir {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// Remove the private folders of plans that were killed before renaming theirs into
/// place (an hour old or more; a younger one may be a plan still running).
fn clear_abandoned(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let prefix = format!("{}.partial-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, age: Duration) {
        std::fs::create_dir_all(dir).unwrap();
        let when = SystemTime::now() - age;
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn the_cache_keeps_the_three_most_recently_used_checkouts() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("git").join("acme__app");
        for (commit, minutes) in [("a", 50), ("b", 40), ("c", 30), ("d", 20)] {
            touch(&repo.join(commit), Duration::from_secs(minutes * 60));
        }
        touch(&repo.join("e.partial-1"), Duration::from_secs(60));
        keep_recent(&repo.join("a"));
        let mut left: Vec<String> = std::fs::read_dir(&repo)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a", "c", "d", "e.partial-1"]);
    }

    #[test]
    fn only_abandoned_private_folders_are_cleared() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc");
        touch(
            &root.path().join("abc.partial-1"),
            Duration::from_secs(7200),
        );
        touch(&root.path().join("abc.partial-2"), Duration::from_secs(60));
        touch(
            &root.path().join("abd.partial-3"),
            Duration::from_secs(7200),
        );
        clear_abandoned(&dir);
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["abc.partial-2", "abd.partial-3"]);
    }

    #[test]
    fn a_plan_copy_is_reused_only_from_the_same_source() {
        let root = tempfile::tempdir().unwrap();
        let resolved = Resolved {
            reference: "v1".into(),
            source: Source::GitHub,
            clone_url: None,
            commit: "abc".into(),
        };
        let dir = plan_cache(root.path(), "acme/app", "abc");
        assert!(dir.ends_with("git/acme__app/abc"));
        assert_eq!(planned_copy(root.path(), "acme/app", &resolved), None);
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join(".git").join(FETCHED_FROM), "mirror").unwrap();
        assert_eq!(planned_copy(root.path(), "acme/app", &resolved), None);
        std::fs::write(dir.join(".git").join(FETCHED_FROM), "github").unwrap();
        assert_eq!(planned_copy(root.path(), "acme/app", &resolved), Some(dir));
    }
}
