//! Planning `git.fetch`: say which tag and commit the step will check out — the pinned one
//! on a resume, else the GitHub API's answer, else (the API unreachable) what the mirror
//! lists — and check that commit out into the plan cache, so later steps are planned from
//! the real files. An unknown tag, a refused token, or GitHub and the mirror both out of
//! reach are problems that stop the run before any change. Nothing here writes outside
//! the plan cache.

use super::api::Api;
use super::blocking::worker_stopped;
use super::choose::choose_on_mirror;
use super::origin::{Origin, origins};
use super::resolve::Resolved;
use super::{Outputs, Request, cache, checkout};
use crate::secret::DisplaySafeUrl;
use crate::steps::{Action, PlanContext, StepError, StepPlan, StepProblem, interface};

/// The plan of a `git.fetch` step (see the module's paragraph).
pub(super) async fn plan(context: &PlanContext, request: &Request) -> Result<StepPlan, StepError> {
    let repo = &request.params.repo;
    let checkout = format!("<run folder>/{}/{}", context.step_id, request.directory);
    if let Some(pinned) = Resolved::pinned(&context.pins) {
        let planned = StepPlan::new(
            Action::Create,
            format!(
                "check out `{repo}` at the pinned commit of `{}`",
                pinned.reference
            ),
        )
        .detail("ref", pinned.reference.clone())
        .detail("commit", format!("{} (pinned)", pinned.commit))
        .detail("source", pinned.source.as_str())
        .detail("checkout", checkout);
        return plan_checkout(context, request, &pinned, planned).await;
    }
    let summary = format!("check out `{repo}` at {}", request.selector);
    let api = Api::new(&context.cloud, request)?;
    match api.resolve(&request.selector).await {
        Ok(resolved) => {
            let url = request.params.primary_url(resolved.clone_url.as_deref());
            let planned = StepPlan::new(Action::Create, summary)
                .detail("ref", resolved.reference.clone())
                .detail("commit", resolved.commit.clone())
                .detail("source", format!("github ({url})"))
                .detail("checkout", checkout);
            plan_checkout(context, request, &resolved, planned).await
        }
        Err(error) => {
            unresolved(
                request,
                StepPlan::new(Action::Unknown, summary),
                error,
                checkout,
            )
            .await
        }
    }
}

/// The API did not resolve the selector: a refusal is the plan's problem; an API out of
/// reach sends the plan to the mirror, when there is one; anything else fails planning.
async fn unresolved(
    request: &Request,
    mut plan: StepPlan,
    error: StepError,
    checkout: String,
) -> Result<StepPlan, StepError> {
    let hidden = &request.redactor;
    let reason = match error {
        StepError::Refused { message, hint } => {
            plan.problems
                .push(hidden.scrub(&format!("{message}; {hint}")).into());
            return Ok(plan);
        }
        StepError::Cloud(cloud) if cloud.retryable => hidden.scrub(&cloud.to_string()),
        error => return Err(error),
    };
    let Some(mirror) = &request.params.mirror else {
        plan.problems.push(StepProblem::from(format!(
            "the GitHub API is unreachable: {reason}; run again when it answers, or give the step a `mirror:` (a git URL or a `git bundle` file) to fall back on"
        )));
        return Ok(plan);
    };
    plan = plan.detail(
        "WARNING",
        format!("the GitHub API is unreachable ({reason}); the mirror `{mirror}` will be used"),
    );
    on_mirror(request, plan, mirror, checkout).await
}

/// Choose the tag on what the mirror lists (its commit is resolved and pinned when the
/// step runs: a listing alone cannot peel annotated tags).
async fn on_mirror(
    request: &Request,
    mut plan: StepPlan,
    mirror: &DisplaySafeUrl,
    checkout: String,
) -> Result<StepPlan, StepError> {
    let hidden = &request.redactor;
    let origin = Origin::mirror(mirror);
    let listed = tokio::task::spawn_blocking(move || checkout::list_mirror(&origin))
        .await
        .map_err(|error| worker_stopped(&error))?;
    let refs = match listed {
        Ok(refs) => refs,
        Err(failure) => {
            let message = failure.message();
            plan.problems.push(
                hidden
                    .scrub(&format!(
                        "GitHub is unreachable and so is the mirror: {message}"
                    ))
                    .into(),
            );
            return Ok(plan);
        }
    };
    let shown = mirror.to_string();
    match choose_on_mirror(&request.selector, &request.params.repo, &shown, &refs) {
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
        Err(refusal) => plan.problems.push(
            hidden
                .scrub(&format!("{}; {}", refusal.message, refusal.hint))
                .into(),
        ),
    }
    Ok(plan)
}

/// Check the resolved commit out into the plan cache (local files only; the cloud is not
/// touched), so later steps are planned from the real files — `k8s.apply` renders them and
/// checks their images before anything is created. The plan's outputs point at the cached
/// checkout; when the step runs it checks out into its own folder and outputs that.
/// Failing here is not a problem of the plan: the step fetches again (and falls back to
/// the mirror) when it runs.
async fn plan_checkout(
    context: &PlanContext,
    request: &Request,
    resolved: &Resolved,
    mut plan: StepPlan,
) -> Result<StepPlan, StepError> {
    let Some(cache) = &context.plan_cache else {
        return Ok(plan);
    };
    if context.cloud.git_transport().is_err() {
        return Ok(plan);
    }
    let repo = &request.params.repo;
    let dir = cache::plan_cache(cache, repo, &resolved.commit);
    let origins = origins(&request.params, request.token.as_ref(), resolved, None);
    let job = {
        let dir = dir.clone();
        let resolved = resolved.clone();
        move || cache::check_out(&dir, &resolved, &origins)
    };
    Ok(match tokio::task::spawn_blocking(job).await {
        Ok(Ok(source)) => {
            plan.outputs = interface::outputs(&Outputs {
                commit: resolved.commit.clone(),
                reference: resolved.reference.clone(),
                path: dir.display().to_string(),
                repo: repo.clone(),
                source,
            })?;
            plan.detail("planned from", dir.display().to_string())
        }
        Ok(Err(failure)) => {
            let message = request.redactor.scrub(failure.message());
            plan.detail(
                "not fetched for the plan",
                format!("{message}; later steps are planned without its files"),
            )
        }
        Err(error) => plan.detail("not fetched for the plan", error.to_string()),
    })
}
