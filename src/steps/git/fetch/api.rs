//! The GitHub REST half: resolving an exact tag, the latest release or the newest tag
//! matching a pattern to a commit (annotated tags peeled), and turning GitHub's refusals
//! (401, 403, 404) into messages that say what to fix.

use octocrab::Octocrab;
use serde::Deserialize;

use super::choose::{PATTERN_HINT, TAG_HINT, newest_matching, newest_tags_note, tag_not_found};
use super::parameters::{Params, Selector};
use super::resolve::{Resolved, Source};
use super::{Request, StepError};
use crate::cloud::github::GitHubResultExt;
use crate::cloud::{Cloud, CloudError};
use crate::secret::DisplaySafeUrl;

#[derive(Deserialize)]
struct RepoAnswer {
    #[serde(default)]
    clone_url: Option<String>,
}

#[derive(Deserialize)]
struct GitObject {
    #[serde(rename = "type")]
    kind: String,
    sha: String,
}

/// A ref (`git/ref/...`) or an annotated tag object (`git/tags/...`): both point at an object.
#[derive(Deserialize)]
struct PointsAt {
    object: GitObject,
}

#[derive(Deserialize)]
struct TagEntry {
    name: String,
    commit: CommitEntry,
}

#[derive(Deserialize)]
struct CommitEntry {
    sha: String,
}

#[derive(Deserialize)]
struct ReleaseAnswer {
    tag_name: String,
}

/// Tags listed, at most this many pages of 100.
const MAX_TAG_PAGES: usize = 50;

/// Percent-encode a tag for a URL path (`/` stays: GitHub takes it literally).
fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The GitHub API as one step's request sees it.
pub(super) struct Api<'a> {
    client: Octocrab,
    params: &'a Params,
    has_token: bool,
}

impl<'a> Api<'a> {
    /// The API `request` names, with its token (the step's, else the cloud's default).
    pub(super) fn new(cloud: &Cloud, request: &'a Request) -> Result<Self, StepError> {
        let params = &request.params;
        let client = cloud.github(Some(params.api_url()), params.token.as_ref())?;
        Ok(Self {
            client,
            params,
            has_token: request.token.is_some(),
        })
    }

    fn repo(&self) -> &str {
        &self.params.repo
    }

    /// Refusals for answers that mean "fix the playbook or the token", else the error.
    fn refusal(&self, error: CloudError) -> StepError {
        let repo = self.repo();
        let api = self.params.shown_api_url();
        match error.status {
            Some(401) => {
                let message = if self.has_token {
                    format!(
                        "GitHub refused the token for `{repo}` (HTTP 401: {})",
                        error.message
                    )
                } else {
                    format!(
                        "GitHub wants a token for `{repo}` (HTTP 401: {}) and none was given",
                        error.message
                    )
                };
                StepError::Refused {
                    message,
                    hint: token_hint(repo),
                }
            }
            Some(403) if !error.retryable => StepError::Refused {
                message: format!(
                    "GitHub denied access to `{repo}` (HTTP 403: {})",
                    error.message
                ),
                hint: token_hint(repo),
            },
            Some(404) => StepError::Refused {
                message: format!("repository `{repo}` not found at `{api}` (HTTP 404)"),
                hint: format!(
                    "check `repo:` (owner/name) and `api_url:`; a private repository also answers 404 when the token cannot read it: {}",
                    token_hint(repo)
                ),
            },
            _ => StepError::Cloud(error),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        route: String,
        operation: &str,
    ) -> Result<T, CloudError> {
        self.client
            .get::<T, _, ()>(route, None)
            .await
            .github(operation, self.repo().to_string())
    }

    async fn repository(&self) -> Result<RepoAnswer, StepError> {
        self.get(
            format!("/repos/{}", self.repo()),
            "GET /repos/{owner}/{repo}",
        )
        .await
        .map_err(|error| self.refusal(error))
    }

    async fn tags(&self) -> Result<Vec<(String, String)>, StepError> {
        let operation = "GET /repos/{owner}/{repo}/tags";
        let mut page = self
            .client
            .get::<octocrab::Page<TagEntry>, _, _>(
                format!("/repos/{}/tags", self.repo()),
                Some(&[("per_page", "100")]),
            )
            .await
            .github(operation, self.repo().to_string())
            .map_err(|error| self.refusal(error))?;
        let mut tags = Vec::new();
        for fetched in 1.. {
            tags.extend(page.items.drain(..).map(|tag| (tag.name, tag.commit.sha)));
            if fetched >= MAX_TAG_PAGES {
                break;
            }
            match self
                .client
                .get_page::<TagEntry>(&page.next)
                .await
                .github(operation, self.repo().to_string())
                .map_err(|error| self.refusal(error))?
            {
                Some(next) => page = next,
                None => break,
            }
        }
        Ok(tags)
    }

    /// The commit a tag points at, peeling annotated tags; `None` if there is no such tag.
    async fn tag_commit(&self, tag: &str) -> Result<Option<String>, StepError> {
        // An old GitHub answers a missing ref with the refs it prefixes (a list): not found.
        let answer: serde_json::Value = match self
            .get(
                format!("/repos/{}/git/ref/tags/{}", self.repo(), encode_path(tag)),
                "GET /repos/{owner}/{repo}/git/ref/tags/{tag}",
            )
            .await
        {
            Ok(answer) => answer,
            Err(error) if error.status == Some(404) => return Ok(None),
            Err(error) => return Err(self.refusal(error)),
        };
        let Ok(PointsAt { mut object }) = serde_json::from_value::<PointsAt>(answer) else {
            return Ok(None);
        };
        for _ in 0..10 {
            match object.kind.as_str() {
                "commit" => return Ok(Some(object.sha)),
                "tag" => {
                    let peeled: PointsAt = self
                        .get(
                            format!("/repos/{}/git/tags/{}", self.repo(), object.sha),
                            "GET /repos/{owner}/{repo}/git/tags/{tag_sha}",
                        )
                        .await
                        .map_err(|error| self.refusal(error))?;
                    object = peeled.object;
                }
                other => {
                    return Err(StepError::Refused {
                        message: format!(
                            "tag `{tag}` in `{}` points at a {other}, not a commit",
                            self.repo()
                        ),
                        hint: TAG_HINT.to_string(),
                    });
                }
            }
        }
        Err(StepError::Refused {
            message: format!(
                "tag `{tag}` in `{}` is nested more than 10 tags deep",
                self.repo()
            ),
            hint: TAG_HINT.to_string(),
        })
    }

    async fn tag_not_found(&self, tag: &str) -> StepError {
        let message = match self.tags().await {
            Ok(tags) => {
                let names: Vec<String> = tags.into_iter().map(|(name, _)| name).collect();
                tag_not_found(tag, self.repo(), "", &names)
            }
            // Listing failed: say what is known, not "it has no tags".
            Err(_) => format!("tag `{tag}` not found in `{}`", self.repo()),
        };
        StepError::Refused {
            message,
            hint: TAG_HINT.to_string(),
        }
    }

    /// Resolve `selector` to a commit.
    pub(super) async fn resolve(&self, selector: &Selector) -> Result<Resolved, StepError> {
        let repository = self.repository().await?;
        let (reference, commit) = match selector {
            Selector::Tag(tag) => match self.tag_commit(tag).await? {
                Some(commit) => (tag.clone(), commit),
                None => return Err(self.tag_not_found(tag).await),
            },
            Selector::LatestRelease => {
                let release: ReleaseAnswer = match self
                    .get(
                        format!("/repos/{}/releases/latest", self.repo()),
                        "GET /repos/{owner}/{repo}/releases/latest",
                    )
                    .await
                {
                    Ok(release) => release,
                    Err(error) if error.status == Some(404) => {
                        return Err(StepError::Refused {
                            message: format!("`{}` has no published release", self.repo()),
                            hint: "publish a release (drafts and pre-releases do not count), or use `tag:` or `tag_pattern:` instead of `latest_release`".to_string(),
                        });
                    }
                    Err(error) => return Err(self.refusal(error)),
                };
                match self.tag_commit(&release.tag_name).await? {
                    Some(commit) => (release.tag_name, commit),
                    None => return Err(self.tag_not_found(&release.tag_name).await),
                }
            }
            Selector::Pattern(pattern) => {
                let tags = self.tags().await?;
                let names: Vec<String> = tags.iter().map(|(name, _)| name.clone()).collect();
                let chosen = newest_matching(pattern, names.iter().map(String::as_str));
                match chosen.and_then(|name| tags.iter().find(|(tag, _)| tag == name)) {
                    Some((name, commit)) => (name.clone(), commit.clone()),
                    None => {
                        return Err(StepError::Refused {
                            message: format!(
                                "no tag in `{}` matches `{pattern}`{}",
                                self.repo(),
                                newest_tags_note(&names)
                            ),
                            hint: PATTERN_HINT.to_string(),
                        });
                    }
                }
            }
        };
        Ok(Resolved {
            reference,
            commit,
            source: Source::GitHub,
            clone_url: repository
                .clone_url
                .map(|url| DisplaySafeUrl::new(url).to_string()),
        })
    }
}

pub(super) fn token_hint(repo: &str) -> String {
    format!(
        "set `GITHUB_TOKEN` (or the step's `token:` input) to a token that can read `{repo}`, then run again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_encoded_for_the_api_path() {
        assert_eq!(encode_path("v1.2.3+build"), "v1.2.3%2Bbuild");
        assert_eq!(encode_path("release/v1#2"), "release/v1%232");
    }
}
