//! `git.fetch`: resolve what to deploy — an exact tag, the latest GitHub release, or the
//! newest tag matching a pattern — through the GitHub REST API, then fetch the repository
//! with git2 into the run's folder and check out exactly that commit (detached HEAD). The
//! commit SHA is pinned in the journal before anything is fetched, so a resume never drifts
//! when a tag moves. When the GitHub API or the git host cannot be reached, a configured
//! mirror (another git URL, or a local `git bundle` file) is used instead, with a warning,
//! and the checkout is still pinned by SHA. The token is never journaled, printed or put in
//! an error message.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use octocrab::Octocrab;
use serde::Deserialize;
use serde_json::json;

use crate::cloud::CloudError;
use crate::cloud::github::{self, GitHubResultExt, redact_url};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, params};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    repo: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    latest_release: Option<bool>,
    #[serde(default)]
    tag_pattern: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    mirror: Option<String>,
    #[serde(default)]
    directory: Option<String>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Params")
            .field("repo", &self.repo)
            .field("tag", &self.tag)
            .field("latest_release", &self.latest_release)
            .field("tag_pattern", &self.tag_pattern)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Tag(String),
    LatestRelease,
    Pattern(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag(tag) => write!(formatter, "tag `{tag}`"),
            Self::LatestRelease => write!(formatter, "the latest release"),
            Self::Pattern(pattern) => write!(formatter, "the newest tag matching `{pattern}`"),
        }
    }
}

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

impl Params {
    fn owner_and_name(&self) -> Result<(&str, &str), StepError> {
        let valid = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match self.repo.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok((owner, name)),
            _ => Err(StepError::Params(format!(
                "`repo` must be `owner/name`, not `{}`",
                self.repo
            ))),
        }
    }

    fn selector(&self) -> Result<Selector, StepError> {
        let tag = self.tag.as_deref().filter(|tag| !tag.trim().is_empty());
        let pattern = self.tag_pattern.as_deref().filter(|p| !p.trim().is_empty());
        match (tag, self.latest_release == Some(true), pattern) {
            (Some(tag), false, None) => Ok(Selector::Tag(tag.trim().to_string())),
            (None, true, None) => Ok(Selector::LatestRelease),
            (None, false, Some(pattern)) => Ok(Selector::Pattern(pattern.trim().to_string())),
            _ => Err(StepError::Params(
                "give exactly one of `tag`, `latest_release: true` and `tag_pattern`".to_string(),
            )),
        }
    }

    /// The token: the `token` parameter (a secret input), else `GITHUB_TOKEN`. Reading this
    /// one variable here is deliberate: it is the convention every GitHub tool follows, and
    /// the value is never journaled (pins and outputs hold no token).
    fn token(&self) -> Option<String> {
        let given = |token: &str| {
            let token = token.trim();
            (!token.is_empty()).then(|| token.to_string())
        };
        self.token.as_deref().and_then(given).or_else(|| {
            std::env::var("GITHUB_TOKEN")
                .ok()
                .as_deref()
                .and_then(given)
        })
    }

    fn directory(&self) -> Result<String, StepError> {
        let name = match &self.directory {
            Some(directory) => directory.clone(),
            None => self.owner_and_name()?.1.to_string(),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
            return Err(StepError::Params(format!(
                "`directory` must be a plain folder name, not `{name}`"
            )));
        }
        Ok(name)
    }

    fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(github::DEFAULT_API_URL)
            .trim_end_matches('/')
    }

    /// The web host of the API: `github.com` for `api.github.com`, else the API's own host
    /// (GitHub Enterprise serves git and the API from one host).
    fn git_host(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.api_url()).ok()?;
        let host = url.host_str()?;
        let host = if host == "api.github.com" {
            "github.com"
        } else {
            host
        };
        Some(host.to_string())
    }

    /// Where to fetch from: `clone_url`, else what the API said, else derived from the API.
    fn primary_url(&self, from_api: Option<&str>) -> String {
        if let Some(url) = &self.clone_url {
            return url.clone();
        }
        if let Some(url) = from_api {
            return url.to_string();
        }
        match reqwest::Url::parse(self.api_url()) {
            Ok(url) if url.host_str() != Some("api.github.com") => {
                let port = url
                    .port()
                    .map(|port| format!(":{port}"))
                    .unwrap_or_default();
                format!(
                    "{}://{}{port}/{}.git",
                    url.scheme(),
                    url.host_str().unwrap_or("github.com"),
                    self.repo
                )
            }
            _ => format!("https://github.com/{}.git", self.repo),
        }
    }
}

/// `url` with the token as HTTP credentials when it goes to the repository's own host over
/// HTTP(S) and carries none yet; any other URL (a mirror, another host) gets no token.
fn with_credentials(url: &str, token: Option<&str>, git_host: Option<&str>) -> String {
    let (Some(token), Some(git_host)) = (token, git_host) else {
        return url.to_string();
    };
    match reqwest::Url::parse(url) {
        Ok(mut parsed)
            if matches!(parsed.scheme(), "http" | "https")
                && parsed.username().is_empty()
                && parsed.host_str() == Some(git_host) =>
        {
            let _ = parsed.set_username("x-access-token");
            let _ = parsed.set_password(Some(token));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Replace the token (and any URL credentials) in a message.
fn scrub(text: &str, token: Option<&str>) -> String {
    let text = match token {
        Some(token) if !token.is_empty() => text.replace(token, "<redacted>"),
        _ => text.to_string(),
    };
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ----------------------------------------------------------------------------------------
// Choosing a tag: versions, patterns, suggestions (pure).

/// A semantic version read from a tag: optional `v`, `MAJOR.MINOR.PATCH`, optional
/// `-prerelease` and `+build`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    /// Releases sort after their pre-releases.
    release: bool,
    pre: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Identifier {
    Numeric(u64),
    Text(String),
}

impl Version {
    fn parse(tag: &str) -> Option<Self> {
        let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
        let text = text.split_once('+').map_or(text, |(version, _)| version);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        };
        let mut parts = core.split('.');
        let (major, minor, patch) = (
            number(parts.next()?)?,
            number(parts.next()?)?,
            number(parts.next()?)?,
        );
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() {
                        None
                    } else if let Some(n) = number(id) {
                        Some(Identifier::Numeric(n))
                    } else {
                        Some(Identifier::Text(id.to_string()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Self {
            major,
            minor,
            patch,
            release: pre.is_empty(),
            pre,
        })
    }
}

/// Sort key for "newest": versions above other tags, releases above pre-releases, then
/// semantic version order; tags that are not versions compare by name.
fn newness(tag: &str) -> (bool, bool, Option<Version>, String) {
    let version = Version::parse(tag);
    (
        version.is_some(),
        version.as_ref().is_some_and(|v| v.release),
        version,
        tag.to_string(),
    )
}

/// Tags newest first.
fn newest_first<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut tags: Vec<&str> = tags.into_iter().collect();
    tags.sort_by_cached_key(|tag| std::cmp::Reverse(newness(tag)));
    tags.dedup();
    tags
}

/// `*` matches any run of characters (`/` included), `?` one character.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The newest tag matching `pattern`.
fn newest_matching<'a>(pattern: &str, tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    newest_first(tags.into_iter().filter(|tag| glob_matches(pattern, tag)))
        .first()
        .copied()
}

/// What `latest_release` means without the API: the newest tag that is a release version.
fn newest_release_version<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    newest_first(
        tags.into_iter()
            .filter(|tag| Version::parse(tag).is_some_and(|version| version.release)),
    )
    .first()
    .copied()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

/// "tag `X` not found in `REPO`; did you mean `Y`? (newest tags: …)".
fn tag_not_found(tag: &str, repo: &str, where_: &str, tags: &[String]) -> String {
    // Near misses: the same version with or without `v` (or another case) first, else tags
    // a couple of edits away.
    let bare = |t: &str| t.trim_start_matches(['v', 'V']).to_ascii_lowercase();
    let mut close: Vec<(usize, &str)> = newest_first(tags.iter().map(String::as_str))
        .into_iter()
        .filter_map(|candidate| {
            let distance = if bare(candidate) == bare(tag) {
                0
            } else {
                edit_distance(candidate, tag)
            };
            (distance == 0 || (tag.len() >= 3 && distance <= 2)).then_some((distance, candidate))
        })
        .collect();
    close.sort_by_key(|(distance, _)| *distance);
    if close.first().is_some_and(|(distance, _)| *distance == 0) {
        close.retain(|(distance, _)| *distance == 0);
    }
    let mut message = format!("tag `{tag}` not found in `{repo}`{where_}");
    if !close.is_empty() {
        let list: Vec<String> = close
            .iter()
            .take(3)
            .map(|(_, t)| format!("`{t}`"))
            .collect();
        message.push_str(&format!("; did you mean {}?", list.join(" or ")));
    }
    message.push_str(&newest_tags_note(tags));
    message
}

fn newest_tags_note(tags: &[String]) -> String {
    if tags.is_empty() {
        return " (it has no tags)".to_string();
    }
    let newest = newest_first(tags.iter().map(String::as_str));
    let shown: Vec<&str> = newest.iter().take(5).copied().collect();
    let more = if newest.len() > shown.len() {
        format!(", … {} in all", newest.len())
    } else {
        String::new()
    };
    format!(" (newest tags: {}{more})", shown.join(", "))
}

const PATTERN_HINT: &str =
    "check `tag_pattern:` (`*` matches any run of characters, `?` one character)";

const TAG_HINT: &str = "check the tag in the playbook (or the input it comes from); `git ls-remote --tags URL` lists what exists";

// ----------------------------------------------------------------------------------------
// The GitHub API.

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

struct Api<'a> {
    client: Octocrab,
    params: &'a Params,
    has_token: bool,
}

impl<'a> Api<'a> {
    fn new(params: &'a Params, token: Option<&str>) -> Result<Self, StepError> {
        let client = github::github_client(Some(params.api_url()), token)?;
        Ok(Self {
            client,
            params,
            has_token: token.is_some(),
        })
    }

    fn repo(&self) -> &str {
        &self.params.repo
    }

    /// Refusals for answers that mean "fix the playbook or the token", else the error.
    fn refusal(&self, error: CloudError) -> StepError {
        let repo = self.repo();
        let api = redact_url(self.params.api_url());
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
    async fn resolve(&self, selector: &Selector) -> Result<Resolved, StepError> {
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
            clone_url: repository.clone_url.map(|url| redact_url(&url)),
        })
    }
}

fn token_hint(repo: &str) -> String {
    format!(
        "set `GITHUB_TOKEN` (or the step's `token:` input) to a token that can read `{repo}`, then run again"
    )
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
            return Ok(StepPlan::new(
                Action::Create,
                format!(
                    "check out `{}` at the pinned commit of `{}`",
                    params.repo, pinned.reference
                ),
            )
            .detail("ref", pinned.reference)
            .detail("commit", format!("{} (pinned)", pinned.commit))
            .detail("source", pinned.source.as_str())
            .detail("checkout", checkout));
        }

        let token = params.token();
        let token = token.as_deref();
        let api = Api::new(&params, token)?;
        let summary = format!("check out `{}` at {selector}", params.repo);
        let error = match api.resolve(&selector).await {
            Ok(resolved) => {
                let url = params.primary_url(resolved.clone_url.as_deref());
                return Ok(StepPlan::new(Action::Create, summary)
                    .detail("ref", resolved.reference)
                    .detail("commit", resolved.commit)
                    .detail("source", format!("github ({})", redact_url(&url)))
                    .detail("checkout", checkout));
            }
            Err(error) => error,
        };
        let mut plan = StepPlan::new(Action::Unknown, summary);
        let reason = match error {
            StepError::Refused { message, hint } => {
                plan.problems
                    .push(scrub(&format!("{message}; {hint}"), token));
                return Ok(plan);
            }
            StepError::Cloud(cloud) if cloud.retryable => scrub(&cloud.to_string(), token),
            error => return Err(error),
        };
        let Some(mirror) = params.mirror.clone() else {
            plan.problems.push(format!(
                "the GitHub API is unreachable: {reason}; run again when it answers, or give the step a `mirror:` (a git URL or a `git bundle` file) to fall back on"
            ));
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
                plan.problems.push(scrub(
                    &format!("GitHub is unreachable and so is the mirror: {message}"),
                    token,
                ));
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
            Err(refusal) => plan.problems.push(scrub(
                &format!("{}; {}", refusal.message, refusal.hint),
                token,
            )),
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
        let checkout_dir = std::path::absolute(
            context.run_dir.join(&context.step_id).join(&directory),
        )
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
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A refusal found while choosing: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    message: String,
    hint: String,
}

impl From<Refusal> for StepError {
    fn from(refusal: Refusal) -> Self {
        StepError::Refused {
            message: refusal.message,
            hint: refusal.hint,
        }
    }
}

/// Choose the tag on a mirror's listed refs (`refs/tags/NAME` → object id, peeled where the
/// mirror says). Returns the tag, the id listed for it, and whether `latest_release` was
/// approximated.
fn choose_on_mirror(
    selector: &Selector,
    repo: &str,
    mirror: &str,
    refs: &[(String, String)],
) -> Result<(String, String, bool), Refusal> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (name, oid) in refs {
        let Some(tag) = name.strip_prefix("refs/tags/") else {
            continue;
        };
        match tag.strip_suffix("^{}") {
            Some(peeled) => match tags.iter_mut().find(|(known, _)| known == peeled) {
                Some(entry) => entry.1 = oid.clone(),
                None => tags.push((peeled.to_string(), oid.clone())),
            },
            None => match tags.iter().any(|(known, _)| known == tag) {
                true => {}
                false => tags.push((tag.to_string(), oid.clone())),
            },
        }
    }
    let (tag, approximated) = choose_tag(selector, repo, mirror, &tags)?;
    let object = tags
        .iter()
        .find(|(name, _)| *name == tag)
        .map(|(_, oid)| oid.clone())
        .unwrap_or_default();
    Ok((tag, object, approximated))
}

/// Choose the tag among `tags` (name → anything) for `selector`, on a mirror.
fn choose_tag<T>(
    selector: &Selector,
    repo: &str,
    mirror: &str,
    tags: &[(String, T)],
) -> Result<(String, bool), Refusal> {
    let names: Vec<String> = tags.iter().map(|(name, _)| name.clone()).collect();
    let where_ = format!(" (mirror `{mirror}`)");
    match selector {
        Selector::Tag(tag) if names.contains(tag) => Ok((tag.clone(), false)),
        Selector::Tag(tag) => Err(Refusal {
            message: tag_not_found(tag, repo, &where_, &names),
            hint: TAG_HINT.to_string(),
        }),
        Selector::Pattern(pattern) => newest_matching(pattern, names.iter().map(String::as_str))
            .map(|tag| (tag.to_string(), false))
            .ok_or_else(|| Refusal {
                message: format!(
                    "no tag in `{repo}`{where_} matches `{pattern}`{}",
                    newest_tags_note(&names)
                ),
                hint: PATTERN_HINT.to_string(),
            }),
        Selector::LatestRelease => newest_release_version(names.iter().map(String::as_str))
            .map(|tag| (tag.to_string(), true))
            .ok_or_else(|| Refusal {
                message: format!(
                    "the latest release of `{repo}` needs the GitHub API, and the mirror `{mirror}` has no release version tag (`vMAJOR.MINOR.PATCH`) to stand in{}",
                    newest_tags_note(&names)
                ),
                hint: "run again when GitHub answers, or use `tag:` for this run".to_string(),
            }),
    }
}
// ----------------------------------------------------------------------------------------

mod checkout {
    //! The git2 half, blocking (run it off the runtime): fetching into the checkout folder
    //! from a URL or a `git bundle` file, listing a mirror's refs without writing anything,
    //! and checking out one commit as a detached HEAD.

    use std::fs::File;
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};

    use git2::build::CheckoutBuilder;
    use git2::{
        AutotagOption, Direction, ErrorClass, FetchOptions, Oid, Remote, RemoteCallbacks,
        Repository,
    };

    use super::{Refusal, StepError, TAG_HINT, scrub, token_hint};
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
    fn fetch(
        repository: &Repository,
        origin: &Origin,
        feedback: &Feedback<'_>,
    ) -> Result<(), Failure> {
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
                let header = read_bundle_header(&mut BufReader::new(file), &shown)
                    .map_err(Failure::Other)?;
                Ok(header
                    .refs
                    .into_iter()
                    .map(|(name, oid)| (name, oid.to_string()))
                    .collect())
            }
            Kind::Url(url) => {
                install_git_http_transport().map_err(|error| Failure::Other(error.to_string()))?;
                let mut remote = Remote::create_detached(url.as_str())
                    .map_err(|error| classify(&error, &origin))?;
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
        let mut from_mirror = false;
        if !has_commit(&repository, oid) {
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
                match fetch(&repository, origin, feedback) {
                    Ok(()) if has_commit(&repository, oid) => {
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
            if !has_commit(&repository, oid) {
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
        Ok(Outcome {
            created,
            from_mirror,
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: serde_json::Value) -> Params {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn versions_order_by_semantic_version_with_releases_above_pre_releases() {
        let version = |tag| Version::parse(tag).unwrap();
        assert!(version("v1.10.0") > version("v1.9.3"));
        assert!(version("1.0.0") > version("v1.0.0-rc.1"));
        assert!(version("v1.0.0-rc.10") > version("v1.0.0-rc.2"));
        assert!(version("v1.0.0-rc.1") > version("v1.0.0-alpha"));
        assert_eq!(version("v1.2.3+build.7"), version("V1.2.3"));
        for not_a_version in ["1.2", "v1.2.3.4", "v1.x.0", "latest", "v1.2.3-", "v01a.2.3"] {
            assert_eq!(Version::parse(not_a_version), None, "{not_a_version}");
        }
    }

    #[test]
    fn the_newest_matching_tag_is_the_highest_release_version() {
        let tags = [
            "v1.2.0",
            "v1.10.0",
            "v1.9.3",
            "v1.11.0-rc1",
            "v2.0.0",
            "release-notes",
        ];
        assert_eq!(newest_matching("v1.*", tags), Some("v1.10.0"));
        assert_eq!(newest_matching("v*", tags), Some("v2.0.0"));
        assert_eq!(newest_matching("release-*", tags), Some("release-notes"));
        assert_eq!(newest_matching("v3.*", tags), None);
        // Only pre-releases match: the highest of them.
        assert_eq!(
            newest_matching("v3.*", ["v3.0.0-rc1", "v3.0.0-rc2"]),
            Some("v3.0.0-rc2")
        );
        // Tags that are not versions fall back to byte order.
        assert_eq!(
            newest_matching("build-*", ["build-7", "build-10"]),
            Some("build-7")
        );
        assert_eq!(
            newest_release_version(["v2.0.0-rc1", "v1.4.0", "nightly"]),
            Some("v1.4.0")
        );
    }

    #[test]
    fn globs_match_stars_and_question_marks_only() {
        assert!(glob_matches("*", "anything/at/all"));
        assert!(glob_matches("v1.*", "v1.2.3"));
        assert!(!glob_matches("v1.*", "v10.2.3"));
        assert!(glob_matches("release/*", "release/2025-01"));
        assert!(glob_matches("v?.?.?", "v1.2.3"));
        assert!(!glob_matches("v?.?.?", "v1.20.3"));
        assert!(glob_matches("*-rc*", "v1.0.0-rc2"));
        assert!(!glob_matches("v[12].*", "v1.0.0"), "no character classes");
    }

    #[test]
    fn a_missing_tag_names_near_misses_and_the_newest_tags() {
        let tags: Vec<String> = ["v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0", "v2.1.0", "nightly"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            tag_not_found("1.2.0", "acme/app", "", &tags),
            "tag `1.2.0` not found in `acme/app`; did you mean `v1.2.0`? (newest tags: v2.1.0, v2.0.0, v1.10.0, v1.2.0, v1.0.0, … 6 in all)"
        );
        let message = tag_not_found("v2.1.1", "acme/app", "", &tags);
        assert!(message.contains("did you mean `v2.1.0`"), "{message}");
        assert_eq!(
            tag_not_found("v9.9.9", "acme/app", " (mirror `/m.bundle`)", &[]),
            "tag `v9.9.9` not found in `acme/app` (mirror `/m.bundle`) (it has no tags)"
        );
    }

    #[test]
    fn exactly_one_selector_and_a_valid_repository() {
        let selector = |value| params(value).selector();
        assert_eq!(
            selector(json!({"repo": "a/b", "tag": "v1"})).unwrap(),
            Selector::Tag("v1".into())
        );
        assert_eq!(
            selector(json!({"repo": "a/b", "latest_release": true})).unwrap(),
            Selector::LatestRelease
        );
        assert_eq!(
            selector(json!({"repo": "a/b", "tag_pattern": "v1.*"})).unwrap(),
            Selector::Pattern("v1.*".into())
        );
        for wrong in [
            json!({"repo": "a/b"}),
            json!({"repo": "a/b", "latest_release": false}),
            json!({"repo": "a/b", "tag": "v1", "tag_pattern": "v*"}),
            json!({"repo": "a/b", "tag": "v1", "latest_release": true}),
        ] {
            assert!(selector(wrong.clone()).is_err(), "{wrong}");
        }
        for repo in [
            "acme",
            "acme/app/extra",
            "../app",
            "acme/",
            "/app",
            "ac me/app",
        ] {
            assert!(
                params(json!({"repo": repo})).owner_and_name().is_err(),
                "{repo}"
            );
        }
        assert!(
            serde_json::from_value::<Params>(json!({"repo": "a/b", "branch": "main"})).is_err()
        );
        assert_eq!(
            params(json!({"repo": "acme/shop-config"}))
                .directory()
                .unwrap(),
            "shop-config"
        );
        assert!(
            params(json!({"repo": "a/b", "directory": "x/y"}))
                .directory()
                .is_err()
        );
        assert!(
            params(json!({"repo": "a/b", "directory": ".."}))
                .directory()
                .is_err()
        );
    }

    #[test]
    fn clone_urls_default_to_the_github_host_and_the_token_goes_only_there() {
        let github = params(json!({"repo": "acme/app"}));
        assert_eq!(github.primary_url(None), "https://github.com/acme/app.git");
        assert_eq!(github.git_host().as_deref(), Some("github.com"));
        let enterprise =
            params(json!({"repo": "acme/app", "api_url": "https://ghe.example/api/v3/"}));
        assert_eq!(
            enterprise.primary_url(None),
            "https://ghe.example/acme/app.git"
        );
        assert_eq!(
            enterprise.primary_url(Some("https://ghe.example/acme/app.git")),
            "https://ghe.example/acme/app.git"
        );
        let explicit = params(json!({"repo": "acme/app", "clone_url": "git://mirror/app.git"}));
        assert_eq!(
            explicit.primary_url(Some("https://x/y.git")),
            "git://mirror/app.git"
        );

        let host = Some("github.com");
        assert_eq!(
            with_credentials("https://github.com/acme/app.git", Some("ghp_1"), host),
            "https://x-access-token:ghp_1@github.com/acme/app.git"
        );
        for elsewhere in [
            "https://gitlab.example/acme/app.git",
            "git://github.com/acme/app.git",
            "https://me:mine@github.com/acme/app.git",
            "/srv/mirror.git",
        ] {
            assert_eq!(with_credentials(elsewhere, Some("ghp_1"), host), elsewhere);
        }
        assert_eq!(
            with_credentials("https://github.com/a/b.git", None, host),
            "https://github.com/a/b.git"
        );
    }

    #[test]
    fn the_token_never_shows() {
        let message = "failed for https://x-access-token:ghp_secret@github.com/a/b.git: token ghp_secret refused";
        let clean = scrub(message, Some("ghp_secret"));
        assert!(!clean.contains("ghp_secret"), "{clean}");
        assert!(
            clean.contains("https://<redacted>@github.com/a/b.git"),
            "{clean}"
        );
        let debug = format!(
            "{:?}",
            params(json!({"repo": "a/b", "token": "ghp_secret"}))
        );
        assert!(!debug.contains("ghp_secret"), "{debug}");
    }

    #[test]
    fn bundle_headers_are_read_up_to_the_pack() {
        let commit = "50d0f7d8603add94b23e4e7fae6f7727261dc85e";
        let tag = "77989df1de2d773af5b551369717d8e61445de63";
        let text = format!(
            "# v2 git bundle\n-{commit} base\n{commit} refs/heads/main\n{tag} refs/tags/v1.0.0\n\nPACK..."
        );
        let mut reader = std::io::Cursor::new(text.into_bytes());
        let header = checkout::read_bundle_header(&mut reader, "x.bundle").unwrap();
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
        let error =
            checkout::read_bundle_header(&mut std::io::Cursor::new(v3), "y.bundle").unwrap_err();
        assert!(error.contains("only SHA-1"), "{error}");
        let error =
            checkout::read_bundle_header(&mut std::io::Cursor::new("hello\n"), "z").unwrap_err();
        assert!(error.contains("is not a git bundle"), "{error}");
    }

    #[test]
    fn a_mirror_listing_prefers_peeled_tags() {
        let refs: Vec<(String, String)> = [
            ("HEAD", "c3"),
            ("refs/heads/main", "c3"),
            ("refs/tags/v1.0.0", "t1"),
            ("refs/tags/v1.0.0^{}", "c1"),
            ("refs/tags/v1.1.0", "c2"),
            ("refs/tags/v2.0.0-rc1", "c3"),
        ]
        .map(|(name, oid)| (name.to_string(), oid.to_string()))
        .to_vec();
        let tag = Selector::Tag("v1.0.0".into());
        assert_eq!(
            choose_on_mirror(&tag, "a/b", "m", &refs).unwrap(),
            ("v1.0.0".to_string(), "c1".to_string(), false)
        );
        assert_eq!(
            choose_on_mirror(&Selector::LatestRelease, "a/b", "m", &refs).unwrap(),
            ("v1.1.0".to_string(), "c2".to_string(), true)
        );
        let missing = choose_on_mirror(&Selector::Tag("v3".into()), "a/b", "m", &refs).unwrap_err();
        assert!(missing.message.contains("(mirror `m`)"), "{missing:?}");
    }

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

    #[test]
    fn tags_are_encoded_for_the_api_path() {
        assert_eq!(encode_path("v1.2.3+build"), "v1.2.3%2Bbuild");
        assert_eq!(encode_path("release/v1#2"), "release/v1%232");
    }
}
