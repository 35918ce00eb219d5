//! GitHub: the REST client (octocrab) for github.com or a GitHub Enterprise server, made
//! and cached by [`Cloud::github`], the token it uses when a step gives none (`GITHUB_TOKEN`,
//! read once when the cloud layer is built), and GitHub errors turned into [`CloudError`]s.

use std::sync::Mutex;
use std::time::Duration;

use octocrab::Octocrab;

use super::{Cloud, CloudError};
use crate::secret::{DisplaySafeUrl, Secret};

/// The REST API of github.com.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How long to wait for a TCP (and TLS) connection to the API or a git host.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a silent connection may stay silent before the request fails.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the cloud layer keeps for GitHub: the default token and the clients made so far.
#[derive(Default)]
pub(super) struct GitHubClients {
    /// The token used when a step gives none (`GITHUB_TOKEN`).
    default_token: Option<Secret>,
    /// Clients made so far (a handful at most).
    clients: Mutex<Vec<Made>>,
}

/// A client, and the API URL and token it was made for.
struct Made {
    api_url: String,
    token: Option<Secret>,
    client: Octocrab,
}

impl std::fmt::Debug for GitHubClients {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GitHubClients")
            .field("default_token", &self.default_token)
            .finish_non_exhaustive()
    }
}

/// The token in `GITHUB_TOKEN`, the convention every GitHub tool follows (empty or blank:
/// none). Read once, by [`Cloud::from_env`].
pub(super) fn token_from_env() -> Option<Secret> {
    std::env::var("GITHUB_TOKEN")
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .map(Secret::new)
}

impl Cloud {
    /// The same cloud, with `token` as the GitHub token steps that give none use.
    #[must_use]
    pub fn with_github_token(mut self, token: Option<Secret>) -> Self {
        self.hosts.github.default_token = token;
        self
    }

    /// The GitHub token for a step: the one it gives, else the default (`GITHUB_TOKEN`).
    pub fn github_token<'a>(&'a self, given: Option<&'a Secret>) -> Option<&'a Secret> {
        given.or(self.hosts.github.default_token.as_ref())
    }

    /// A REST client for the GitHub API at `api_url` (default [`DEFAULT_API_URL`]; a GitHub
    /// Enterprise server is `https://HOST/api/v3`; plain `http://` works too), authenticated
    /// with [`Cloud::github_token`] when there is one. Made once per URL and token.
    pub fn github(
        &self,
        api_url: Option<&str>,
        token: Option<&Secret>,
    ) -> Result<Octocrab, CloudError> {
        let api_url = api_url.unwrap_or(DEFAULT_API_URL).trim_end_matches('/');
        let token = self.github_token(token);
        let lock = || {
            self.hosts
                .github
                .clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let known = lock()
            .iter()
            .find(|made| made.api_url == api_url && made.token.as_ref() == token)
            .map(|made| made.client.clone());
        if let Some(client) = known {
            return Ok(client);
        }
        let client = client(api_url, token)?;
        lock().push(Made {
            api_url: api_url.to_string(),
            token: token.cloned(),
            client: client.clone(),
        });
        Ok(client)
    }
}

/// A REST client for the GitHub API at `api_url`, authenticated with `token` when one is
/// given.
fn client(api_url: &str, token: Option<&Secret>) -> Result<Octocrab, CloudError> {
    let shown = DisplaySafeUrl::new(api_url);
    let invalid = |message: String| {
        CloudError::local("build GitHub client", Some(shown.to_string()), message)
    };
    let mut builder = Octocrab::builder()
        .base_uri(api_url)
        .map_err(|error| invalid(format!("`{shown}` is not a URL: {error}")))?
        .set_connect_timeout(Some(CONNECT_TIMEOUT))
        .set_read_timeout(Some(READ_TIMEOUT))
        // One quick retry of a dropped connection or a 5xx; the step's own retry policy
        // (with backoff) does the rest, and an unreachable API reaches the mirror sooner.
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::Simple(1));
    if let Some(token) = token {
        let token = token.expose();
        // octocrab panics on a header value it cannot build; refuse such a token here.
        if token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(invalid(
                "the token is empty or holds spaces or control characters".to_string(),
            ));
        }
        builder = builder.personal_token(token.to_string());
    }
    builder
        .build()
        .map_err(|error| invalid(source_chain(&error)))
}

/// Turn an octocrab error into a [`CloudError`]: `operation` is the request, e.g.
/// `GET /repos/{owner}/{repo}/git/ref/tags/{tag}`. 5xx, 429, rate limits and failures to
/// reach the server at all are retryable.
pub fn error(error: &octocrab::Error, operation: &str, resource: Option<String>) -> CloudError {
    let (message, status, retryable) = match error {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let rate_limited = source.message.to_ascii_lowercase().contains("rate limit");
            (
                source.message.clone(),
                Some(status),
                status >= 500 || status == 429 || (status == 403 && rate_limited),
            )
        }
        octocrab::Error::Hyper { .. } | octocrab::Error::Service { .. } => (
            format!("could not reach the GitHub API: {}", source_chain(error)),
            None,
            true,
        ),
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => (
            format!(
                "the answer is not what the GitHub API sends (is `api_url` a GitHub API?): {}",
                source_chain(error)
            ),
            None,
            false,
        ),
        _ => (source_chain(error), None, false),
    };
    CloudError {
        operation: operation.to_string(),
        resource,
        code: None,
        message,
        status,
        retryable,
        missing_credentials: false,
    }
}

/// Attach the request and resource to an octocrab result.
pub trait GitHubResultExt<T> {
    /// Turn the error into a [`CloudError`] naming `operation` and `resource`.
    fn github(self, operation: &str, resource: impl Into<Option<String>>) -> Result<T, CloudError>;
}

impl<T> GitHubResultExt<T> for Result<T, octocrab::Error> {
    fn github(self, operation: &str, resource: impl Into<Option<String>>) -> Result<T, CloudError> {
        self.map_err(|failure| error(&failure, operation, resource.into()))
    }
}

/// An error and its sources on one line, each said once (octocrab and reqwest repeat their
/// sources in their own text, and octocrab appends a backtrace to some: only the first line
/// is kept).
pub(super) fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud() -> Cloud {
        Cloud::from_config(aws_types::SdkConfig::builder().build())
    }

    #[tokio::test]
    async fn a_token_octocrab_would_panic_on_is_refused_unseen() {
        let error = client(DEFAULT_API_URL, Some(&Secret::new("ghp_abc\ndef"))).unwrap_err();
        assert!(!error.to_string().contains("ghp_abc"), "{error}");
        assert!(client("http://127.0.0.1:1/api/v3", Some(&Secret::new("ghp_ok"))).is_ok());
    }

    #[test]
    fn the_step_token_comes_first_then_the_default() {
        let given = Secret::new("ghp_given");
        let without = cloud();
        assert_eq!(without.github_token(None), None);
        assert_eq!(without.github_token(Some(&given)), Some(&given));
        let with = cloud().with_github_token(Some(Secret::new("ghp_default")));
        assert_eq!(
            with.github_token(None).map(Secret::expose),
            Some("ghp_default")
        );
        assert_eq!(with.github_token(Some(&given)), Some(&given));
    }

    #[tokio::test]
    async fn clients_are_made_once_per_url_and_token() {
        let cloud = cloud();
        let api = Some("http://127.0.0.1:1/api/v3/");
        cloud.github(api, None).unwrap();
        cloud
            .github(Some("http://127.0.0.1:1/api/v3"), None)
            .unwrap();
        cloud.github(api, Some(&Secret::new("ghp_1"))).unwrap();
        assert_eq!(cloud.hosts.github.clients.lock().unwrap().len(), 2);
        assert!(
            cloud
                .github(Some("not a url"), None)
                .unwrap_err()
                .to_string()
                .contains("is not a URL")
        );
    }
}
