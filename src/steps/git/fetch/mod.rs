//! `git.fetch`: resolve what to deploy — an exact tag, the latest GitHub release, or the
//! newest tag matching a pattern — through the GitHub REST API, then fetch the repository
//! with git2 into the run's folder and check out exactly that commit (detached HEAD). The
//! commit SHA is pinned in the journal before anything is fetched, so a resume never drifts
//! when a tag moves. When the GitHub API or the git host cannot be reached, a configured
//! mirror (another git URL, or a local `git bundle` file) is used instead, with a warning,
//! and the checkout is still pinned by SHA. The token is never journaled, printed or put in
//! an error message.
//!
//! This file holds the step itself (planning and applying, pins, running git work off the
//! runtime); [`parameters`] reads the playbook's parameters, [`choose`] picks a tag (pure),
//! [`api`] asks the GitHub REST API, and [`checkout`] does the git2 work (fetches, mirrors,
//! bundles, the detached checkout).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::json;

use crate::cloud::CloudError;
use crate::cloud::github::{self, redact_url};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use self::api::Api;
use self::choose::{choose_on_mirror, choose_tag};
use self::parameters::{Params, Selector, scrub, with_credentials};
use crate::steps::{
    Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params,
};

mod api;
mod checkout;
mod choose;
mod parameters;

static SPEC: KindSpec = KindSpec {
    kind: "git.fetch",
    summary: "check out a tagged commit of a GitHub repository, pinned by SHA",
    parameters: &[
        ParamSpec {
            name: "repo",
            required: true,
            help: "the repository, `owner/name`",
        },
        ParamSpec {
            name: "tag",
            required: false,
            help: "an exact tag to check out (give exactly one of `tag`, `latest_release`, `tag_pattern`)",
        },
        ParamSpec {
            name: "latest_release",
            required: false,
            help: "`true`: check out the tag of the latest published GitHub release",
        },
        ParamSpec {
            name: "tag_pattern",
            required: false,
            help: "a glob such as `v1.*`: check out the newest matching tag (highest version)",
        },
        ParamSpec {
            name: "api_url",
            required: false,
            help: "GitHub API base URL (default `https://api.github.com`; Enterprise: `https://HOST/api/v3`)",
        },
        ParamSpec {
            name: "clone_url",
            required: false,
            help: "git URL to fetch from (default: the repository's `clone_url` from the API)",
        },
        ParamSpec {
            name: "token",
            required: false,
            help: "GitHub token; reference a secret input (default: `GITHUB_TOKEN`)",
        },
        ParamSpec {
            name: "mirror",
            required: false,
            help: "fallback when GitHub is unreachable: another git URL, or a `git bundle` file",
        },
        ParamSpec {
            name: "directory",
            required: false,
            help: "checkout folder name under the step's folder (default: the repository name)",
        },
    ],
    outputs: &["commit", "ref", "path", "repo", "source"],
};

/// The `git.fetch` step kind.
pub struct GitFetch;

/// Where the commit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    GitHub,
    Mirror,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::Mirror => "mirror",
        }
    }
}

/// A tag resolved to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    reference: String,
    commit: String,
    source: Source,
    /// The repository's own clone URL, as the API gave it (never with credentials).
    clone_url: Option<String>,
}

// ----------------------------------------------------------------------------------------
// Pins and the blocking git work.

const PIN_COMMIT: &str = "commit";
const PIN_REF: &str = "ref";
const PIN_SOURCE: &str = "source";
const PIN_CLONE_URL: &str = "clone_url";

fn pinned_from(pins: impl Fn(&str) -> Option<serde_json::Value>) -> Option<Resolved> {
    let text = |key: &str| pins(key).and_then(|value| value.as_str().map(str::to_string));
    Some(Resolved {
        commit: text(PIN_COMMIT)?,
        reference: text(PIN_REF).unwrap_or_default(),
        source: if text(PIN_SOURCE).as_deref() == Some("mirror") {
            Source::Mirror
        } else {
            Source::GitHub
        },
        clone_url: text(PIN_CLONE_URL),
    })
}

/// Run blocking git work on the blocking pool, relaying its progress lines as they come.
/// Every quarter second is a safe point (`fetching`): when the run stops, the work is told
/// to give up (a transfer stops at its next progress report) and the step is interrupted.
async fn run_blocking<T: Send + 'static>(
    context: &StepContext,
    job: impl FnOnce(&checkout::Feedback<'_>) -> T + Send + 'static,
) -> Result<T, StepError> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || {
            let report = move |message: String| {
                let _ = sender.send(message);
            };
            let stopped = || stop.load(Ordering::Relaxed);
            job(&checkout::Feedback {
                report: &report,
                stopped: &stopped,
            })
        }
    });
    let mut interrupted = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            message = receiver.recv() => match message {
                Some(message) => context.progress(message),
                None => break,
            },
            _ = tick.tick(), if interrupted.is_none() => {
                if let Err(error) = context.checkpoint("fetching") {
                    stop.store(true, Ordering::Relaxed);
                    interrupted = Some(error);
                }
            }
        }
    }
    let value = handle.await.map_err(|error| worker_stopped(&error))?;
    match interrupted {
        Some(error) => Err(error),
        None => Ok(value),
    }
}

#[async_trait]
impl Step for GitFetch {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        params.owner_and_name()?;
        let selector = params.selector()?;
        let directory = params.directory()?;
        let checkout = format!("<run folder>/{}/{directory}", context.step_id);

        if let Some(pinned) = pinned_from(|key| context.pins.get(key).cloned()) {
            let planned = StepPlan::new(
                Action::Create,
                format!(
                    "check out `{}` at the pinned commit of `{}`",
                    params.repo, pinned.reference
                ),
            )
            .detail("ref", pinned.reference.clone())
            .detail("commit", format!("{} (pinned)", pinned.commit))
            .detail("source", pinned.source.as_str())
            .detail("checkout", checkout);
            return Ok(plan_checkout(context, &params, &pinned, planned).await);
        }

        let token = params.token();
        let token = token.as_deref();
        let api = Api::new(&params, token)?;
        let summary = format!("check out `{}` at {selector}", params.repo);
        let error = match api.resolve(&selector).await {
            Ok(resolved) => {
                let url = params.primary_url(resolved.clone_url.as_deref());
                let planned = StepPlan::new(Action::Create, summary)
                    .detail("ref", resolved.reference.clone())
                    .detail("commit", resolved.commit.clone())
                    .detail("source", format!("github ({})", redact_url(&url)))
                    .detail("checkout", checkout);
                return Ok(plan_checkout(context, &params, &resolved, planned).await);
            }
            Err(error) => error,
        };
        let mut plan = StepPlan::new(Action::Unknown, summary);
        let reason = match error {
            StepError::Refused { message, hint } => {
                plan.problems
                    .push(scrub(&format!("{message}; {hint}"), token).into());
                return Ok(plan);
            }
            StepError::Cloud(cloud) if cloud.retryable => scrub(&cloud.to_string(), token),
            error => return Err(error),
        };
        let Some(mirror) = params.mirror.clone() else {
            plan.problems.push(StepProblem::from(format!(
                "the GitHub API is unreachable: {reason}; run again when it answers, or give the step a `mirror:` (a git URL or a `git bundle` file) to fall back on"
            )));
            return Ok(plan);
        };
        let shown = redact_url(&mirror);
        let listed = tokio::task::spawn_blocking(move || checkout::list_mirror(&mirror))
            .await
            .map_err(|error| worker_stopped(&error))?;
        plan = plan.detail(
            "WARNING",
            format!("the GitHub API is unreachable ({reason}); the mirror `{shown}` will be used"),
        );
        let refs = match listed {
            Ok(refs) => refs,
            Err(failure) => {
                let message = failure.message().to_string();
                plan.problems.push(
                    scrub(
                        &format!("GitHub is unreachable and so is the mirror: {message}"),
                        token,
                    )
                    .into(),
                );
                return Ok(plan);
            }
        };
        match choose_on_mirror(&selector, &params.repo, &shown, &refs) {
            Ok((tag, object, approximated)) => {
                plan.action = Action::Create;
                plan = plan
                    .detail("ref", tag.clone())
                    .detail("mirror lists", format!("{tag} -> {object}"))
                    .detail(
                        "commit",
                        "resolved on the mirror and pinned when the step runs",
                    )
                    .detail("source", format!("mirror ({shown})"))
                    .detail("checkout", checkout);
                if approximated {
                    plan = plan.detail(
                        "WARNING (latest release)",
                        "releases are a GitHub API notion: the newest release version tag on the mirror stands in for the latest release",
                    );
                }
            }
            Err(refusal) => plan
                .problems
                .push(scrub(&format!("{}; {}", refusal.message, refusal.hint), token).into()),
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        params.owner_and_name()?;
        let selector = params.selector()?;
        let directory = params.directory()?;
        let token = params.token();
        let checkout_dir = std::path::absolute(context.step_dir().join(&directory))
            .map_err(|error| StepError::Params(format!("cannot place the checkout: {error}")))?;
        github::install_git_http_transport()?;
        let mirror = params.mirror.as_deref().map(checkout::Origin::mirror);
        let existed = checkout_dir.join(".git").exists();

        // 1. The commit: pinned by an earlier attempt, or resolved now and pinned before
        //    anything is checked out.
        let resolved = match pinned_from(|key| context.pinned(key)) {
            Some(pinned) => {
                context.progress(format!(
                    "using the pinned commit {} of `{}` ({})",
                    short(&pinned.commit),
                    pinned.reference,
                    pinned.source.as_str()
                ));
                pinned
            }
            None => {
                let resolved =
                    resolve(context, &params, &selector, &checkout_dir, mirror.as_ref()).await?;
                context.pin(PIN_REF, json!(resolved.reference))?;
                context.pin(PIN_SOURCE, json!(resolved.source.as_str()))?;
                if let Some(url) = &resolved.clone_url {
                    context.pin(PIN_CLONE_URL, json!(url))?;
                }
                context.pin(PIN_COMMIT, json!(resolved.commit))?;
                let via = match resolved.source {
                    Source::Mirror => "the mirror",
                    Source::GitHub => "GitHub",
                };
                context.progress(match &selector {
                    Selector::Tag(_) => {
                        format!(
                            "resolved {selector} to commit {} (via {via})",
                            resolved.commit
                        )
                    }
                    _ => format!(
                        "resolved {selector}: `{}` at commit {} (via {via})",
                        resolved.reference, resolved.commit
                    ),
                });
                resolved
            }
        };
        context.checkpoint("resolved")?;

        // 2. Fetch (unless an earlier attempt did) and check out exactly that commit.
        let primary_url = params.primary_url(resolved.clone_url.as_deref());
        let primary = checkout::Origin::url(
            &with_credentials(&primary_url, token.as_deref(), params.git_host().as_deref()),
            "GitHub",
        );
        let mut origins = vec![primary];
        if let Some(mirror) = mirror {
            match resolved.source {
                Source::Mirror => origins.insert(0, mirror),
                Source::GitHub => origins.push(mirror),
            }
        }
        // The plan checked this commit out already: fetch it from there (local, fast);
        // the hosts above are only asked if that copy lacks it.
        if let Some(cached) = context
            .plan_cache()
            .map(|cache| plan_cache(cache, &params.repo, &resolved.commit))
            .filter(|cached| {
                std::fs::read_to_string(cached.join(".git").join(FETCHED_FROM))
                    .ok()
                    .as_deref()
                    == Some(resolved.source.as_str())
            })
        {
            origins.insert(
                0,
                checkout::Origin::url(&cached.display().to_string(), "the plan's checkout"),
            );
        }
        let job = {
            let dir = checkout_dir.clone();
            let commit = resolved.commit.clone();
            let reference = resolved.reference.clone();
            move |feedback: &checkout::Feedback<'_>| {
                checkout::check_out(&dir, &commit, &reference, &origins, feedback)
            }
        };
        let outcome = run_blocking(context, job)
            .await?
            .map_err(|failure| failure.into_step_error(&params.repo, token.as_deref()))?;
        let mut source = resolved.source;
        if outcome.from_mirror && source != Source::Mirror {
            source = Source::Mirror;
            context.pin(PIN_SOURCE, json!(source.as_str()))?;
        }
        let path = checkout_dir.display().to_string();
        context.resource("git-checkout", &path, outcome.created || !existed)?;
        context.progress(format!(
            "checked out `{}` at {} (from {})",
            resolved.reference,
            short(&resolved.commit),
            source.as_str()
        ));
        context.checkpoint("cloned")?;

        Ok(Values::from([
            ("commit".to_string(), json!(resolved.commit)),
            ("ref".to_string(), json!(resolved.reference)),
            ("path".to_string(), json!(path)),
            ("repo".to_string(), json!(params.repo)),
            ("source".to_string(), json!(source.as_str())),
        ]))
    }
}

/// The file in a plan's checkout saying where its objects came from (`github`, `mirror`).
const FETCHED_FROM: &str = "rebuild-fetched-from";

/// Where the plan checks out `commit` of `repo` in the state directory's cache.
fn plan_cache(cache: &Path, repo: &str, commit: &str) -> std::path::PathBuf {
    cache.join("git").join(repo.replace('/', "__")).join(commit)
}

/// Plan-time checkout: fetch the resolved commit into the state directory's cache (local
/// files only; the cloud is not touched), so later steps are planned from the real files —
/// `k8s.apply` renders them and checks their images before anything is created. The
/// outputs point at the cached checkout; when the step runs it checks out into the run's
/// folder and outputs that. Failing here is not a problem of the plan: the step fetches
/// again (and falls back to the mirror) when it runs.
async fn plan_checkout(
    context: &PlanContext,
    params: &Params,
    resolved: &Resolved,
    mut plan: StepPlan,
) -> StepPlan {
    let Some(cache) = &context.plan_cache else {
        return plan;
    };
    if github::install_git_http_transport().is_err() {
        return plan;
    }
    let dir = plan_cache(cache, &params.repo, &resolved.commit);
    let token = params.token();
    let primary_url = params.primary_url(resolved.clone_url.as_deref());
    let mut origins = vec![checkout::Origin::url(
        &with_credentials(&primary_url, token.as_deref(), params.git_host().as_deref()),
        "GitHub",
    )];
    if let Some(mirror) = params.mirror.as_deref() {
        let mirror = checkout::Origin::mirror(mirror);
        match resolved.source {
            Source::Mirror => origins.insert(0, mirror),
            Source::GitHub => origins.push(mirror),
        }
    }
    let job = {
        let dir = dir.clone();
        let commit = resolved.commit.clone();
        let reference = resolved.reference.clone();
        let source = resolved.source;
        move || {
            let from = cached_checkout(&dir, &commit, &reference, &origins, source)?;
            keep_recent(&dir);
            Ok::<_, checkout::Failure>(from)
        }
    };
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(source)) => {
            plan.outputs = Values::from([
                ("commit".to_string(), json!(resolved.commit)),
                ("ref".to_string(), json!(resolved.reference)),
                ("path".to_string(), json!(dir.display().to_string())),
                ("repo".to_string(), json!(params.repo)),
                ("source".to_string(), json!(source)),
            ]);
            plan.detail("planned from", dir.display().to_string())
        }
        Ok(Err(failure)) => {
            let message = scrub(failure.message(), token.as_deref());
            plan.detail(
                "not fetched for the plan",
                format!("{message}; later steps are planned without its files"),
            )
        }
        Err(error) => plan.detail("not fetched for the plan", error.to_string()),
    }
}

/// The plan cache's checkout of `commit` in `dir`, made once and never written again: a
/// complete one (it has the [`FETCHED_FROM`] file and its HEAD is `commit`) is used as it
/// is; otherwise the commit is checked out in a private folder beside it, which is then
/// renamed into place. Plans running side by side, or killed half way, never leave a
/// half-written or locked checkout there. Returns where the objects came from.
fn cached_checkout(
    dir: &Path,
    commit: &str,
    reference: &str,
    origins: &[checkout::Origin],
    source: Source,
) -> Result<String, checkout::Failure> {
    let complete = |dir: &Path| -> Option<String> {
        let from = std::fs::read_to_string(dir.join(".git").join(FETCHED_FROM)).ok()?;
        let head = git2::Repository::open(dir).ok()?.head().ok()?.target()?;
        (head.to_string() == commit).then_some(from)
    };
    if let Some(from) = complete(dir) {
        return Ok(from);
    }
    let unwritable =
        |what: String, error: std::io::Error| checkout::Failure::Other(format!("{what}: {error}"));
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)
        .map_err(|error| unwritable(format!("cannot create `{}`", parent.display()), error))?;
    clear_abandoned(dir);
    let partial = dir.with_extension(format!("partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|error| unwritable(format!("cannot clear `{}`", partial.display()), error))?;
    }
    let report = |_: String| {};
    let stopped = || false;
    let outcome = checkout::check_out(
        &partial,
        commit,
        reference,
        origins,
        &checkout::Feedback {
            report: &report,
            stopped: &stopped,
        },
    )?;
    // Where the objects came from, so the step reuses this copy only when that does not
    // change what it reports (`source`).
    let from = if outcome.from_mirror {
        Source::Mirror
    } else {
        source
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
    let _ = used.set_modified(std::time::SystemTime::now());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let mut checkouts: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
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
            .is_some_and(|age| age >= std::time::Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Resolve through the API; when it cannot be reached and a mirror is configured, fetch the
/// mirror into the checkout folder and resolve there (a bundle or a remote listing alone
/// cannot peel annotated tags), saying so loudly.
async fn resolve(
    context: &StepContext,
    params: &Params,
    selector: &Selector,
    checkout_dir: &Path,
    mirror: Option<&checkout::Origin>,
) -> Result<Resolved, StepError> {
    let token = params.token();
    let api = Api::new(params, token.as_deref())?;
    let error = match api.resolve(selector).await {
        Ok(resolved) => return Ok(resolved),
        Err(error) => error,
    };
    let (reason, mirror) = match (&error, mirror) {
        (StepError::Cloud(cloud), Some(mirror)) if cloud.retryable => {
            (scrub(&cloud.to_string(), token.as_deref()), mirror.clone())
        }
        _ => return Err(error),
    };
    context.progress(format!(
        "WARNING: the GitHub API is unreachable ({reason}); resolving {selector} on the mirror `{}` instead",
        mirror.shown()
    ));
    let job = {
        let dir = checkout_dir.to_path_buf();
        let selector = selector.clone();
        let repo = params.repo.clone();
        move |feedback: &checkout::Feedback<'_>| {
            checkout::resolve_on_mirror(&dir, &mirror, feedback, |tags| {
                choose_tag(&selector, &repo, &mirror.shown(), tags)
            })
        }
    };
    let (reference, commit, approximated) = run_blocking(context, job)
        .await?
        .map_err(|failure| failure.into_step_error(&params.repo, token.as_deref()))?;
    if approximated {
        context.progress(format!(
            "WARNING: without the GitHub API the latest release is unknown; using `{reference}`, the newest release version tag on the mirror"
        ));
    }
    Ok(Resolved {
        reference,
        commit,
        source: Source::Mirror,
        clone_url: None,
    })
}

fn worker_stopped(error: &tokio::task::JoinError) -> StepError {
    StepError::Cloud(CloudError {
        operation: "git".to_string(),
        resource: None,
        code: None,
        message: format!("the git worker stopped: {error}"),
        status: None,
        retryable: false,
        missing_credentials: false,
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_need_a_commit() {
        let pins = Values::from([("ref".to_string(), json!("v1"))]);
        assert_eq!(pinned_from(|key| pins.get(key).cloned()), None);
        let pins = Values::from([
            ("ref".to_string(), json!("v1")),
            ("commit".to_string(), json!("abc")),
            ("source".to_string(), json!("mirror")),
        ]);
        let pinned = pinned_from(|key| pins.get(key).cloned()).unwrap();
        assert_eq!(pinned.source, Source::Mirror);
        assert_eq!(pinned.clone_url, None);
    }
}
