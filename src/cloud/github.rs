//! GitHub and git hosts: the REST client (octocrab) for github.com or a GitHub Enterprise
//! server, GitHub errors turned into [`CloudError`]s, and the smart-HTTP transport git2 uses
//! for `http://` and `https://` remotes.
//!
//! The transport exists because this build links libgit2 without its own HTTPS support
//! (git2's `https` feature, which would pull in OpenSSL, is off). Registering a transport
//! written on reqwest (rustls) gives git2 HTTPS, proxies-free redirects and token
//! authentication: credentials written in a URL's user part (`https://USER:TOKEN@host/...`)
//! are sent as HTTP Basic authentication and never appear in a message.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use octocrab::Octocrab;

use super::CloudError;

/// The REST API of github.com.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How long to wait for a TCP (and TLS) connection to the API or a git host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a silent connection may stay silent before the request fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A REST client for the GitHub API at `api_url` (default [`DEFAULT_API_URL`]; a GitHub
/// Enterprise server is `https://HOST/api/v3`; plain `http://` works too), authenticated
/// with `token` when one is given.
pub fn github_client(api_url: Option<&str>, token: Option<&str>) -> Result<Octocrab, CloudError> {
    let api_url = api_url.unwrap_or(DEFAULT_API_URL).trim_end_matches('/');
    let invalid = |message: String| CloudError {
        operation: "build GitHub client".to_string(),
        resource: Some(redact_url(api_url)),
        code: None,
        message,
        status: None,
        retryable: false,
        missing_credentials: false,
    };
    let mut builder = Octocrab::builder()
        .base_uri(api_url)
        .map_err(|error| invalid(format!("`{}` is not a URL: {error}", redact_url(api_url))))?
        .set_connect_timeout(Some(CONNECT_TIMEOUT))
        .set_read_timeout(Some(READ_TIMEOUT))
        // One quick retry of a dropped connection or a 5xx; the step's own retry policy
        // (with backoff) does the rest, and an unreachable API reaches the mirror sooner.
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::Simple(1));
    if let Some(token) = token {
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
pub fn github_error(
    error: &octocrab::Error,
    operation: &str,
    resource: Option<String>,
) -> CloudError {
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
        self.map_err(|error| github_error(&error, operation, resource.into()))
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
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
    // octocrab appends a backtrace to some messages; keep the first line.
    text.lines().next().unwrap_or_default().to_string()
}

/// `url` with any `user:password@` part replaced by `<redacted>@`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}<redacted>@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Register the smart-HTTP transport for `http://` and `https://` git remotes. Idempotent;
/// call it before any git2 network operation.
pub fn install_git_http_transport() -> Result<(), CloudError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            for scheme in ["http", "https"] {
                #[expect(
                    unsafe_code,
                    reason = "git2 asks callers to serialise transport registration; the OnceLock does"
                )]
                // SAFETY: registration runs once, under the OnceLock, before any transport
                // of this process is created.
                let registered = unsafe {
                    git2::transport::register(scheme, |remote| {
                        Transport::smart(remote, true, HttpSubtransport::default())
                    })
                };
                registered.map_err(|error| error.message().to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(|message| CloudError {
            operation: "register the git HTTP transport".to_string(),
            resource: None,
            code: None,
            message,
            status: None,
            retryable: false,
            missing_credentials: false,
        })
}

/// A runtime for HTTP requests made from a thread that has none.
fn fallback_runtime() -> io::Result<tokio::runtime::Handle> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .map_err(|message| io::Error::other(message.clone()))
}

/// Run `future` to completion from blocking code (a `spawn_blocking` thread, or a thread
/// without a runtime).
fn block_on<F: std::future::Future>(future: F) -> io::Result<F::Output> {
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle,
        Err(_) => fallback_runtime()?,
    };
    Ok(handle.block_on(future))
}

/// Where requests go, and the credentials taken out of the remote's URL.
#[derive(Clone)]
struct Endpoint {
    /// The repository URL without credentials or a trailing slash.
    url: String,
    /// `Basic ...`, when the URL carried credentials.
    authorization: Option<String>,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, git2::Error> {
        let mut parsed = reqwest::Url::parse(url).map_err(|error| {
            git2::Error::from_str(&format!("`{}` is not a URL: {error}", redact_url(url)))
        })?;
        let authorization = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            use base64::Engine as _;
            let user = percent_decode(parsed.username());
            let password = percent_decode(parsed.password().unwrap_or_default());
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            Some(format!("Basic {pair}"))
        };
        Ok(Self {
            url: parsed.as_str().trim_end_matches('/').to_string(),
            authorization,
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One git2 connection's worth of smart-HTTP requests (stateless RPC: a GET for the ref
/// advertisement, then one POST per negotiation round).
#[derive(Default)]
struct HttpSubtransport {
    /// Set by the first request, and moved if the server redirects it.
    endpoint: Arc<Mutex<Option<Endpoint>>>,
}

impl SmartSubtransport for HttpSubtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let (path, post) = match action {
            Service::UploadPackLs => ("/info/refs?service=git-upload-pack", false),
            Service::UploadPack => ("/git-upload-pack", true),
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str(
                    "pushing over HTTP is not supported by rebuild",
                ));
            }
        };
        let mut endpoint = self
            .endpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if endpoint.is_none() {
            *endpoint = Some(Endpoint::parse(url)?);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("git/2.0 (rebuild/", env!("CARGO_PKG_VERSION"), ")"));
        let client = with_system_roots(client).build().map_err(|error| {
            git2::Error::from_str(&format!("cannot build an HTTP client: {error}"))
        })?;
        Ok(Box::new(HttpStream {
            client,
            endpoint: self.endpoint.clone(),
            path,
            post,
            request: Vec::new(),
            response: None,
            pending: Vec::new(),
            position: 0,
            finished: false,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// Trust the system's certificate bundle too (`SSL_CERT_FILE`, else the Debian/Ubuntu
/// bundle), so a GitHub Enterprise server with a corporate CA works.
fn with_system_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let Ok(pem) = std::fs::read(path) else {
        return builder;
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) => certificates
            .into_iter()
            .fold(builder, |builder, certificate| {
                builder.add_root_certificate(certificate)
            }),
        Err(_) => builder,
    }
}

struct HttpStream {
    client: reqwest::Client,
    endpoint: Arc<Mutex<Option<Endpoint>>>,
    path: &'static str,
    post: bool,
    request: Vec<u8>,
    response: Option<reqwest::Response>,
    pending: Vec<u8>,
    position: usize,
    finished: bool,
}

impl HttpStream {
    fn endpoint(&self) -> io::Result<Endpoint> {
        self.endpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| io::Error::other("no git endpoint"))
    }

    fn send(&mut self) -> io::Result<()> {
        let endpoint = self.endpoint()?;
        let url = format!("{}{}", endpoint.url, self.path);
        let mut request = if self.post {
            self.client
                .post(&url)
                .header("Content-Type", "application/x-git-upload-pack-request")
                .header("Accept", "application/x-git-upload-pack-result")
                .body(std::mem::take(&mut self.request))
        } else {
            self.client.get(&url).header("Accept", "*/*")
        };
        if let Some(authorization) = &endpoint.authorization {
            request = request.header("Authorization", authorization);
        }
        let response = block_on(request.send())?.map_err(|error| {
            io::Error::other(format!(
                "cannot reach `{}`: {}",
                redact_url(&url),
                source_chain(&error)
            ))
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            let meaning = match status {
                401 => "authentication required or refused",
                403 => "access denied",
                404 => "repository not found",
                _ => "unexpected answer",
            };
            return Err(io::Error::other(format!(
                "HTTP {status} ({meaning}) from `{}`",
                redact_url(&url)
            )));
        }
        if !self.post {
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !content_type.starts_with("application/x-git-upload-pack-advertisement") {
                return Err(io::Error::other(format!(
                    "`{}` is not a git smart-HTTP server (content type `{content_type}`)",
                    redact_url(&endpoint.url)
                )));
            }
            // A redirect moves the repository for the requests that follow.
            let final_url = response.url().as_str();
            if let Some(base) = final_url.strip_suffix(self.path)
                && base != endpoint.url
            {
                let mut shared = self
                    .endpoint
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *shared = Some(Endpoint {
                    url: base.to_string(),
                    authorization: endpoint.authorization.clone(),
                });
            }
        }
        self.response = Some(response);
        Ok(())
    }
}

impl Read for HttpStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.send()?;
        }
        loop {
            if self.position < self.pending.len() {
                let count = buffer.len().min(self.pending.len() - self.position);
                buffer[..count]
                    .copy_from_slice(&self.pending[self.position..self.position + count]);
                self.position += count;
                return Ok(count);
            }
            if self.finished {
                return Ok(0);
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(0);
            };
            match block_on(response.chunk())? {
                Ok(Some(chunk)) => {
                    self.pending = chunk.to_vec();
                    self.position = 0;
                }
                Ok(None) => self.finished = true,
                Err(error) => {
                    return Err(io::Error::other(format!(
                        "reading from the git host failed: {}",
                        source_chain(&error)
                    )));
                }
            }
        }
    }
}

impl Write for HttpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.response.is_some() {
            return Err(io::Error::other("the git request was already sent"));
        }
        self.request.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_secret@github.com/acme/app.git"),
            "https://<redacted>@github.com/acme/app.git"
        );
        assert_eq!(
            redact_url("https://github.com/acme/app.git"),
            "https://github.com/acme/app.git"
        );
        assert_eq!(
            redact_url("git://127.0.0.1:9418/a@b.git"),
            "git://127.0.0.1:9418/a@b.git"
        );
        assert_eq!(redact_url("/srv/mirror.bundle"), "/srv/mirror.bundle");
    }

    #[test]
    fn credentials_in_a_url_become_basic_authentication() {
        let endpoint =
            Endpoint::parse("https://x-access-token:ghp_s%40cret@github.com/acme/app.git/")
                .unwrap();
        assert_eq!(endpoint.url, "https://github.com/acme/app.git");
        use base64::Engine as _;
        let expected =
            base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_s@cret");
        assert_eq!(endpoint.authorization, Some(format!("Basic {expected}")));
        assert!(
            Endpoint::parse("http://127.0.0.1:1/r.git")
                .unwrap()
                .authorization
                .is_none()
        );
    }

    #[tokio::test]
    async fn github_client_refuses_a_token_octocrab_would_panic_on() {
        let error = github_client(None, Some("ghp_abc\ndef")).unwrap_err();
        assert!(!error.to_string().contains("ghp_abc"), "{error}");
        assert!(github_client(Some("http://127.0.0.1:1/api/v3"), Some("ghp_ok")).is_ok());
    }
}
