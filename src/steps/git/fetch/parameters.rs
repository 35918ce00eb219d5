//! The step's parameters: what they may hold (repository name, exactly one selector, a
//! plain checkout folder name), the token (a [`Secret`]; the cloud layer supplies
//! `GITHUB_TOKEN` when the step gives none), the URLs (each a [`DisplaySafeUrl`]), and the
//! [`Redactor`] that keeps every credential they hold out of messages written by others.

use serde::{Deserialize, Deserializer};

use super::StepError;
use crate::cloud::Cloud;
use crate::cloud::github::DEFAULT_API_URL;
use crate::secret::{DisplaySafeUrl, Redactor, Secret};

/// A step's parameters read once, with what they ask for: the checks every plan and
/// attempt makes first, the token (the step's, else the cloud's default) and the redactor
/// that keeps every credential the step knows out of messages written by others.
pub(super) struct Request {
    pub(super) params: Params,
    pub(super) selector: Selector,
    /// The checkout's folder name.
    pub(super) directory: String,
    pub(super) token: Option<Secret>,
    pub(super) redactor: Redactor,
}

impl Request {
    /// Check `params` and complete them from `cloud` (the default token).
    pub(super) fn new(params: Params, cloud: &Cloud) -> Result<Self, StepError> {
        params.owner_and_name()?;
        let selector = params.selector()?;
        let directory = params.directory()?;
        let token = cloud.github_token(params.token.as_ref()).cloned();
        let redactor = params.redactor(token.as_ref());
        Ok(Self {
            params,
            selector,
            directory,
            token,
            redactor,
        })
    }
}

/// The user name the token goes with in a git URL (GitHub's convention for tokens).
pub(super) const TOKEN_USER: &str = "x-access-token";

/// The parameters of a `git.fetch` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    /// `owner/name`.
    pub(super) repo: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    latest_release: Option<bool>,
    #[serde(default)]
    tag_pattern: Option<String>,
    #[serde(default, deserialize_with = "optional_url")]
    api_url: Option<DisplaySafeUrl>,
    #[serde(default, deserialize_with = "optional_url")]
    clone_url: Option<DisplaySafeUrl>,
    /// The token the step gives (a secret input).
    #[serde(default, deserialize_with = "optional_token")]
    pub(super) token: Option<Secret>,
    /// The fallback: a git URL or a `git bundle` file.
    #[serde(default, deserialize_with = "optional_url")]
    pub(super) mirror: Option<DisplaySafeUrl>,
    #[serde(default)]
    directory: Option<String>,
}

/// A text parameter, where empty or blank means "not given" (a playbook input whose
/// default is `""`).
fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text: Option<String> = Deserialize::deserialize(deserializer)?;
    Ok(text.filter(|text| !text.trim().is_empty()))
}

fn optional_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DisplaySafeUrl>, D::Error> {
    Ok(optional_text(deserializer)?.map(DisplaySafeUrl::new))
}

fn optional_token<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    Ok(optional_text(deserializer)?.map(|token| Secret::new(token.trim())))
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Selector {
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

impl Params {
    pub(super) fn owner_and_name(&self) -> Result<(&str, &str), StepError> {
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

    pub(super) fn selector(&self) -> Result<Selector, StepError> {
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

    pub(super) fn directory(&self) -> Result<String, StepError> {
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

    /// The API's base URL, without a trailing slash (credentials included: it is used).
    pub(super) fn api_url(&self) -> &str {
        self.api_url
            .as_ref()
            .map_or(DEFAULT_API_URL, DisplaySafeUrl::expose)
            .trim_end_matches('/')
    }

    /// The API's base URL as it may be shown.
    pub(super) fn shown_api_url(&self) -> DisplaySafeUrl {
        DisplaySafeUrl::new(self.api_url())
    }

    /// The web host of the API: `github.com` for `api.github.com`, else the API's own host
    /// (GitHub Enterprise serves git and the API from one host).
    pub(super) fn git_host(&self) -> Option<String> {
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
    pub(super) fn primary_url(&self, from_api: Option<&str>) -> DisplaySafeUrl {
        if let Some(url) = &self.clone_url {
            return url.clone();
        }
        if let Some(url) = from_api {
            return DisplaySafeUrl::new(url);
        }
        DisplaySafeUrl::new(match reqwest::Url::parse(self.api_url()) {
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
        })
    }

    /// Hides every credential the step knows in text written by others (libgit2's, the
    /// API's): the user parts of its URLs, the token as a git URL carries it, the token.
    pub(super) fn redactor(&self, token: Option<&Secret>) -> Redactor {
        let in_urls = [&self.api_url, &self.clone_url, &self.mirror]
            .into_iter()
            .flatten()
            .filter_map(DisplaySafeUrl::credentials);
        let in_git_urls =
            token.map(|token| Secret::new(format!("{TOKEN_USER}:{}", token.expose())));
        Redactor::new(in_urls.chain(in_git_urls).chain(token.cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: serde_json::Value) -> Params {
        serde_json::from_value(value).unwrap()
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
    fn clone_urls_default_to_the_github_host() {
        let github = params(json!({"repo": "acme/app"}));
        assert_eq!(
            github.primary_url(None).expose(),
            "https://github.com/acme/app.git"
        );
        assert_eq!(github.git_host().as_deref(), Some("github.com"));
        let enterprise =
            params(json!({"repo": "acme/app", "api_url": "https://ghe.example/api/v3/"}));
        assert_eq!(
            enterprise.primary_url(None).expose(),
            "https://ghe.example/acme/app.git"
        );
        assert_eq!(
            enterprise
                .primary_url(Some("https://ghe.example/acme/app.git"))
                .expose(),
            "https://ghe.example/acme/app.git"
        );
        let explicit = params(json!({"repo": "acme/app", "clone_url": "git://mirror/app.git"}));
        assert_eq!(
            explicit.primary_url(Some("https://x/y.git")).expose(),
            "git://mirror/app.git"
        );
    }

    #[test]
    fn blank_texts_are_not_given_and_the_token_is_trimmed() {
        let blank = params(json!({"repo": "a/b", "token": "  ", "mirror": "", "api_url": ""}));
        assert!(blank.token.is_none() && blank.mirror.is_none());
        assert_eq!(blank.api_url(), DEFAULT_API_URL);
        let given = params(json!({"repo": "a/b", "token": " ghp_1 \n"}));
        assert_eq!(given.token.as_ref().map(Secret::expose), Some("ghp_1"));
    }

    #[test]
    fn the_token_never_shows() {
        let given = params(json!({
            "repo": "a/b",
            "token": "ghp_secret",
            "mirror": "https://me:mine@mirror.example/a/b.git"
        }));
        let message = "failed for https://x-access-token:ghp_secret@github.com/a/b.git: token ghp_secret refused; mirror https://me:mine@mirror.example/a/b.git";
        let clean = given.redactor(given.token.as_ref()).scrub(message);
        assert!(
            !clean.contains("ghp_secret") && !clean.contains("mine"),
            "{clean}"
        );
        assert!(
            clean.contains("https://<redacted>@github.com/a/b.git"),
            "{clean}"
        );
        assert!(
            clean.contains("https://<redacted>@mirror.example/a/b.git"),
            "{clean}"
        );
        let debug = format!("{given:?}");
        assert!(
            !debug.contains("ghp_secret") && !debug.contains("mine"),
            "{debug}"
        );
    }
}
