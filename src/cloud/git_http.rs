//! The smart-HTTP transport git2 uses for `http://` and `https://` remotes, registered once
//! when the [`Cloud`](super::Cloud) is built ([`install`]); steps never touch it.
//!
//! It exists because this build links libgit2 without its own HTTPS support (git2's
//! `https` feature, which would pull in OpenSSL, is off). A transport written on reqwest
//! (rustls) gives git2 HTTPS, redirects without proxies and token authentication:
//! credentials written in a URL's user part (`https://USER:TOKEN@host/...`) are sent as HTTP
//! Basic authentication and never appear in a message (URLs are shown as
//! [`DisplaySafeUrl`]s).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};

use super::github::{CONNECT_TIMEOUT, READ_TIMEOUT, source_chain};
use super::{Cloud, CloudError};
use crate::secret::DisplaySafeUrl;

/// Register the smart-HTTP transport for `http://` and `https://` git remotes, once per
/// process (later calls return the first outcome). [`Cloud::from_config`](super::Cloud::from_config)
/// calls it, so every git2 network operation of a run finds it in place.
pub fn install() -> Result<(), CloudError> {
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
        .map_err(|message| CloudError::local("register the git HTTP transport", None, message))
}

impl Cloud {
    /// Whether git's smart-HTTP transport is in place (registered when this was built);
    /// git work over HTTP asks first, so a failed registration is reported, not guessed at.
    pub fn git_transport(&self) -> Result<(), CloudError> {
        self.hosts.git_http.clone()
    }
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
            git2::Error::from_str(&format!(
                "`{}` is not a URL: {error}",
                DisplaySafeUrl::new(url)
            ))
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

/// `%XX` sequences decoded (anything else kept as it is).
pub(crate) fn percent_decode(text: &str) -> String {
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
                DisplaySafeUrl::new(url.as_str()),
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
                DisplaySafeUrl::new(url.as_str())
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
                    DisplaySafeUrl::new(endpoint.url.as_str())
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

    #[test]
    fn installing_twice_is_harmless() {
        assert!(install().is_ok());
        assert!(install().is_ok());
    }
}
