//! The step's parameters: what they may hold (repository name, exactly one selector, a
//! plain checkout folder name), the token (a secret input, else `GITHUB_TOKEN`), the URL to
//! fetch from, and keeping the token out of URLs it is not meant for and out of messages.

use serde::Deserialize;

use super::StepError;
use crate::cloud::github::{self, redact_url};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    pub(super) repo: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    latest_release: Option<bool>,
    #[serde(default)]
    tag_pattern: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    api_url: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    clone_url: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    token: Option<String>,
    #[serde(default, deserialize_with = "empty_is_none")]
    pub(super) mirror: Option<String>,
    #[serde(default)]
    directory: Option<String>,
}

/// An empty text means "not given" (a playbook input whose default is `""`).
fn empty_is_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    Ok(text.filter(|text| !text.trim().is_empty()))
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

    /// The token: the `token` parameter (a secret input), else `GITHUB_TOKEN`. Reading this
    /// one variable here is deliberate: it is the convention every GitHub tool follows, and
    /// the value is never journaled (pins and outputs hold no token).
    pub(super) fn token(&self) -> Option<String> {
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

    pub(super) fn api_url(&self) -> &str {
        self.api_url
            .as_deref()
            .unwrap_or(github::DEFAULT_API_URL)
            .trim_end_matches('/')
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
    pub(super) fn primary_url(&self, from_api: Option<&str>) -> String {
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
pub(super) fn with_credentials(url: &str, token: Option<&str>, git_host: Option<&str>) -> String {
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
pub(super) fn scrub(text: &str, token: Option<&str>) -> String {
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
}
