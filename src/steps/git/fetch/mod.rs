//! `git.fetch`: resolve what to deploy — an exact tag, the latest GitHub release, or the
//! newest tag matching a pattern — through the GitHub REST API, then fetch the repository
//! with git2 into the step's folder and check out exactly that commit (detached HEAD). The
//! commit SHA is pinned in the journal before anything is fetched, so a resume never drifts
//! when a tag moves. When the GitHub API or the git host cannot be reached, a configured
//! mirror (another git URL, or a local `git bundle` file) is used instead, with a warning,
//! and the checkout is still pinned by SHA. The token is a [`Secret`](crate::secret::Secret):
//! never journaled, printed or put in an error message.
//!
//! `apply` is three phases: the commit ([`resolve`]: pinned, else resolved and pinned),
//! the checkout ([`checkout`], from the [`origin`]s in order, the plan's copy in [`cache`]
//! first), and the record (the checkout as a resource, the outputs). [`plan`] says what
//! will be checked out and fills the plan cache. [`parameters`] reads the parameters,
//! [`choose`] picks a tag (pure), [`api`] asks the GitHub REST API, [`bundle`] reads
//! `git bundle` mirrors and [`blocking`] runs git work off the runtime.

use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::journal::{ResourceAction, Values};
use crate::playbook::{KindSpec, ParamSpec};
use crate::steps::{PlanContext, Step, StepContext, StepError, StepPlan, interface, params};

use self::blocking::run_blocking;
use self::origin::origins;
use self::parameters::Request;
use self::resolve::{Resolved, Source, short};

mod api;
mod blocking;
mod bundle;
mod cache;
mod checkout;
mod choose;
mod origin;
mod parameters;
mod plan;
mod resolve;

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
pub(crate) struct GitFetch;

/// What a `git.fetch` step outputs (and its plan, pointing at the plan's checkout).
#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    /// The commit checked out.
    commit: String,
    /// The tag.
    #[serde(rename = "ref")]
    reference: String,
    /// The checkout.
    path: String,
    /// `owner/name`.
    repo: String,
    /// Where the objects came from.
    source: Source,
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
        let request = Request::new(params(params_value)?, &context.cloud)?;
        plan::plan(context, &request).await
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let request = Request::new(params(params_value)?, &context.cloud)?;
        let checkout_dir = std::path::absolute(context.step_dir().join(&request.directory))
            .map_err(|error| StepError::Params(format!("cannot place the checkout: {error}")))?;
        context.cloud.git_transport()?;
        let existed = checkout_dir.join(".git").exists();

        let resolved = resolve::commit(context, &request, &checkout_dir).await?;
        context.checkpoint("resolved")?;

        let (created, source) = check_out(context, &request, &resolved, &checkout_dir).await?;
        let path = checkout_dir.display().to_string();
        let action = if created || !existed {
            ResourceAction::Created
        } else {
            ResourceAction::Adopted
        };
        context.resource("git-checkout", &path, action)?;
        context.progress(format!(
            "checked out `{}` at {} (from {})",
            resolved.reference,
            short(&resolved.commit),
            source.as_str()
        ));
        context.checkpoint("cloned")?;
        interface::outputs(&Outputs {
            commit: resolved.commit,
            reference: resolved.reference,
            path,
            repo: request.params.repo,
            source,
        })
    }
}

/// Fetch `resolved` (unless an earlier attempt did) and check out exactly that commit into
/// `dir`. Returns whether this attempt made the folder, and where the objects came from
/// (pinned again when that is not where the commit was resolved).
async fn check_out(
    context: &StepContext,
    request: &Request,
    resolved: &Resolved,
    dir: &Path,
) -> Result<(bool, Source), StepError> {
    let repo = &request.params.repo;
    let planned = context
        .plan_cache()
        .and_then(|cache| cache::planned_copy(cache, repo, resolved));
    let origins = origins(
        &request.params,
        request.token.as_ref(),
        resolved,
        planned.as_deref(),
    );
    let job = {
        let dir = dir.to_path_buf();
        let commit = resolved.commit.clone();
        let reference = resolved.reference.clone();
        move |feedback: &blocking::Feedback<'_>| {
            checkout::check_out(&dir, &commit, &reference, &origins, feedback)
        }
    };
    let outcome = run_blocking(context, job)
        .await?
        .map_err(|failure| failure.into_step_error(repo, &request.redactor))?;
    if outcome.from_mirror && resolved.source != Source::Mirror {
        let moved = Resolved {
            source: Source::Mirror,
            ..resolved.clone()
        };
        moved.pin_source(context)?;
        return Ok((outcome.created, Source::Mirror));
    }
    Ok((outcome.created, resolved.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<parameters::Params, Outputs>(
            &SPEC,
            &serde_json::json!({
                "repo": "acme/app",
                "tag": "v1.0.0",
                "latest_release": false,
                "tag_pattern": "v1.*",
                "api_url": "https://ghe.example/api/v3",
                "clone_url": "https://ghe.example/acme/app.git",
                "token": "ghp_1",
                "mirror": "/srv/app.bundle",
                "directory": "app",
            }),
        );
    }
}
