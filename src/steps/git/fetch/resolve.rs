//! From a selector to a commit when the step runs: the commit an earlier attempt pinned,
//! else the GitHub API's answer, else — when the API cannot be reached and a mirror is
//! configured — the mirror's, fetched into the checkout folder (a bundle or a remote
//! listing alone cannot peel annotated tags), with a warning. A commit resolved here is
//! pinned before anything is checked out, so a resume never drifts when a tag moves.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::Api;
use super::blocking::{Feedback, run_blocking};
use super::checkout;
use super::choose::choose_tag;
use super::origin::Origin;
use super::parameters::Selector;
use super::{Request, StepContext, StepError};
use crate::journal::Values;

/// Where the commit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Source {
    /// The mirror.
    Mirror,
    /// The GitHub API (and the repository's host). Anything a pin does not know reads as
    /// this.
    #[default]
    #[serde(other)]
    GitHub,
}

impl Source {
    /// The source a name says (anything but `mirror` is GitHub, as in pins).
    pub(super) fn named(name: &str) -> Self {
        if name == Self::Mirror.as_str() {
            Self::Mirror
        } else {
            Self::GitHub
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::Mirror => "mirror",
        }
    }
}

/// A tag resolved to a commit; also the step's pins (in the journal's `StepPinned` records,
/// field by field in this order: the commit last, so a pinned commit always comes with its
/// ref and source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Resolved {
    /// The tag.
    #[serde(rename = "ref", default)]
    pub(super) reference: String,
    #[serde(default)]
    pub(super) source: Source,
    /// The repository's own clone URL, as the API gave it (never with credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) clone_url: Option<String>,
    pub(super) commit: String,
}

impl Resolved {
    /// What an earlier attempt pinned, if it got as far as the commit.
    pub(super) fn pinned(pins: &Values) -> Option<Self> {
        let pins = pins.iter().map(|(key, value)| (key.clone(), value.clone()));
        serde_json::from_value(Value::Object(pins.collect())).ok()
    }

    /// Pin every field.
    pub(super) fn pin(&self, context: &StepContext) -> Result<(), StepError> {
        self.pin_fields(context, |_| true)
    }

    /// Pin the source again (the objects came from elsewhere than the commit was resolved).
    pub(super) fn pin_source(&self, context: &StepContext) -> Result<(), StepError> {
        self.pin_fields(context, |name| name == "source")
    }

    fn pin_fields(
        &self,
        context: &StepContext,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(), StepError> {
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            for (name, value) in fields.into_iter().filter(|(name, _)| wanted(name)) {
                context.pin(&name, value)?;
            }
        }
        Ok(())
    }
}

/// The commit to check out: pinned by an earlier attempt, or resolved now and pinned.
pub(super) async fn commit(
    context: &StepContext,
    request: &Request,
    checkout_dir: &Path,
) -> Result<Resolved, StepError> {
    if let Some(pinned) = Resolved::pinned(&context.pins()) {
        context.progress(format!(
            "using the pinned commit {} of `{}` ({})",
            short(&pinned.commit),
            pinned.reference,
            pinned.source.as_str()
        ));
        return Ok(pinned);
    }
    let resolved = resolve(context, request, checkout_dir).await?;
    resolved.pin(context)?;
    let via = match resolved.source {
        Source::Mirror => "the mirror",
        Source::GitHub => "GitHub",
    };
    let selector = &request.selector;
    context.progress(match selector {
        Selector::Tag(_) => format!(
            "resolved {selector} to commit {} (via {via})",
            resolved.commit
        ),
        _ => format!(
            "resolved {selector}: `{}` at commit {} (via {via})",
            resolved.reference, resolved.commit
        ),
    });
    Ok(resolved)
}

/// Resolve through the API; when it cannot be reached and a mirror is configured, on the
/// mirror (see the module's paragraph).
async fn resolve(
    context: &StepContext,
    request: &Request,
    checkout_dir: &Path,
) -> Result<Resolved, StepError> {
    let api = Api::new(&context.cloud, request)?;
    let error = match api.resolve(&request.selector).await {
        Ok(resolved) => return Ok(resolved),
        Err(error) => error,
    };
    let (reason, mirror) = match (&error, &request.params.mirror) {
        (StepError::Cloud(cloud), Some(mirror)) if cloud.retryable => (
            request.redactor.scrub(&cloud.to_string()),
            Origin::mirror(mirror),
        ),
        _ => return Err(error),
    };
    let selector = &request.selector;
    context.progress(format!(
        "WARNING: the GitHub API is unreachable ({reason}); resolving {selector} on the mirror `{mirror}` instead"
    ));
    let job = {
        let dir = checkout_dir.to_path_buf();
        let selector = selector.clone();
        let repo = request.params.repo.clone();
        move |feedback: &Feedback<'_>| {
            checkout::resolve_on_mirror(&dir, &mirror, feedback, |tags| {
                choose_tag(&selector, &repo, &mirror.to_string(), tags)
            })
        }
    };
    let (reference, commit, approximated) = run_blocking(context, job)
        .await?
        .map_err(|failure| failure.into_step_error(&request.params.repo, &request.redactor))?;
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

/// A commit's first 12 characters.
pub(super) fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pins_need_a_commit() {
        let pins = Values::from([("ref".to_string(), json!("v1"))]);
        assert_eq!(Resolved::pinned(&pins), None);
        let pins = Values::from([
            ("ref".to_string(), json!("v1")),
            ("commit".to_string(), json!("abc")),
            ("source".to_string(), json!("mirror")),
        ]);
        let pinned = Resolved::pinned(&pins).unwrap();
        assert_eq!(pinned.source, Source::Mirror);
        assert_eq!(pinned.clone_url, None);
        let pins = Values::from([
            ("commit".to_string(), json!("abc")),
            ("source".to_string(), json!("somewhere")),
        ]);
        let pinned = Resolved::pinned(&pins).unwrap();
        assert_eq!(
            (pinned.source, pinned.reference.as_str()),
            (Source::GitHub, "")
        );
    }

    #[test]
    fn pins_are_written_with_the_commit_last() {
        let resolved = Resolved {
            reference: "v1".into(),
            source: Source::Mirror,
            clone_url: Some("https://github.com/a/b.git".into()),
            commit: "abc".into(),
        };
        let Value::Object(fields) = serde_json::to_value(&resolved).unwrap() else {
            panic!("not a map");
        };
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["ref", "source", "clone_url", "commit"]);
        assert_eq!(fields["source"], "mirror");
        let without = Resolved {
            clone_url: None,
            ..resolved
        };
        assert!(
            serde_json::to_value(&without)
                .unwrap()
                .get("clone_url")
                .is_none()
        );
    }
}
