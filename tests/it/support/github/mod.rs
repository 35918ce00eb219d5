//! A stand-in for the GitHub REST API (and GitHub's smart-HTTP git endpoint), backed by the
//! bare repositories of a [`super::git::GitRepos`] folder: every answer is read from the
//! repositories with the `git` CLI at request time, so tags, SHAs and moved tags agree with
//! what `git daemon` serves. Answers follow GitHub's documented JSON shapes.
//!
//! Served, under `/` and under `/api/v3` (GitHub Enterprise): the REST routes of
//! [`routes`] and git over HTTP through `git http-backend` ([`http_backend`]). A required
//! token is checked on both (`Bearer`/`token` for the API, Basic for git). It runs on its
//! own thread with its own runtime, like the fault proxy, and can stop listening to play
//! "unreachable". This file owns the server: its state, its switches, the accept loop and
//! the dispatch of each request.

mod http_backend;
mod routes;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request the stand-in saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `POST`…
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

struct State {
    token: Option<String>,
    latest_release: HashMap<String, String>,
    clone_base: String,
    max_per_page: usize,
    requests: Vec<Seen>,
}

struct Shared {
    root: PathBuf,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running stand-in; stopped (and its thread joined) on drop.
pub struct GitHub {
    /// `http://127.0.0.1:PORT` (the API is also served under `/api/v3`).
    pub url: String,
    port: u16,
    shared: Arc<Shared>,
    reachable: tokio::sync::watch::Sender<bool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHub {
    /// Serve the repositories under `root` (`OWNER/NAME.git`); a repository's `clone_url`
    /// is `CLONE_BASE/OWNER/NAME.git`.
    pub fn start(root: &Path, clone_base: &str) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the GitHub stand-in");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener
            .local_addr()
            .expect("the stand-in's address")
            .port();
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            state: Mutex::new(State {
                token: None,
                latest_release: HashMap::new(),
                clone_base: clone_base.trim_end_matches('/').to_string(),
                max_per_page: 100,
                requests: Vec::new(),
            }),
        });
        let (reachable, reachable_receiver) = tokio::sync::watch::channel(true);
        let (shutdown, shutdown_receiver) = tokio::sync::oneshot::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("github-{port}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("the stand-in's runtime");
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .expect("the listener into tokio");
                        serve(
                            listener,
                            port,
                            shared,
                            reachable_receiver,
                            shutdown_receiver,
                        )
                        .await;
                    });
                })
                .expect("spawn the stand-in's thread")
        };
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            shared,
            reachable,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Require this token (API: `Authorization: Bearer TOKEN`; git: Basic with it as the
    /// password). `None` serves everyone.
    pub fn require_token(&self, token: Option<&str>) {
        self.shared.lock().token = token.map(str::to_string);
    }

    /// The tag of `repo`'s latest release (`None`: no release).
    pub fn set_latest_release(&self, repo: &str, tag: Option<&str>) {
        let mut state = self.shared.lock();
        match tag {
            Some(tag) => state
                .latest_release
                .insert(repo.to_string(), tag.to_string()),
            None => state.latest_release.remove(repo),
        };
    }

    /// Where `clone_url`s point.
    pub fn set_clone_base(&self, clone_base: &str) {
        self.shared.lock().clone_base = clone_base.trim_end_matches('/').to_string();
    }

    /// Largest page of the tags list (GitHub: 100); smaller forces pagination.
    pub fn set_max_per_page(&self, max: usize) {
        self.shared.lock().max_per_page = max.max(1);
    }

    /// Stop (or start again) listening: while unreachable, connections are refused.
    pub fn set_reachable(&self, reachable: bool) {
        let _ = self.reachable.send(reachable);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() != reachable {
            assert!(Instant::now() < deadline, "stand-in did not switch");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every request seen, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }

    /// Forget the requests seen so far.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Event {
    Shutdown,
    Switched,
    Accepted(tokio::net::TcpStream),
    Nothing,
}

async fn serve(
    listener: tokio::net::TcpListener,
    port: u16,
    shared: Arc<Shared>,
    mut reachable: tokio::sync::watch::Receiver<bool>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut listener = Some(listener);
    // While unreachable the port stays bound without listening: connections are refused,
    // and no other test's server can take the port meanwhile.
    let mut parked: Option<tokio::net::TcpSocket> = None;
    loop {
        let event = match &listener {
            Some(bound) => tokio::select! {
                _ = &mut shutdown => Event::Shutdown,
                _ = reachable.changed() => Event::Switched,
                accepted = bound.accept() => match accepted {
                    Ok((stream, _)) => Event::Accepted(stream),
                    Err(_) => Event::Nothing,
                },
            },
            None => tokio::select! {
                _ = &mut shutdown => Event::Shutdown,
                _ = reachable.changed() => Event::Switched,
            },
        };
        match event {
            Event::Shutdown => break,
            Event::Switched => {
                let wanted = *reachable.borrow_and_update();
                if !wanted {
                    listener = None;
                    parked = park(port);
                } else if listener.is_none() {
                    listener = match parked.take() {
                        Some(socket) => socket.listen(1024).ok(),
                        None => tokio::net::TcpListener::bind(("127.0.0.1", port))
                            .await
                            .ok(),
                    };
                }
            }
            Event::Accepted(stream) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(request, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Event::Nothing => {}
        }
    }
}

/// A socket bound to `port` that does not listen.
fn park(port: u16) -> Option<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.set_reuseaddr(true).ok()?;
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .ok()?;
    Some(socket)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A header's value as text, if it is there.
fn header_text(headers: &hyper::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// One request: record it, then hand it to git over HTTP or to the REST routes.
async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let authorization = header_text(&parts.headers, header::AUTHORIZATION);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str().to_string())
        .unwrap_or_default();
    let token = {
        let mut state = shared.lock();
        state.requests.push(Seen {
            method: parts.method.to_string(),
            path: path_and_query,
            authorization: authorization.clone(),
        });
        state.token.clone()
    };
    let raw_path = parts.uri.path();
    let (prefix, path) = match raw_path.strip_prefix("/api/v3") {
        Some(rest) => ("/api/v3", rest),
        None => ("", raw_path),
    };
    if path.ends_with("/info/refs") || path.ends_with("/git-upload-pack") {
        let request = http_backend::GitRequest {
            root: shared.root.clone(),
            method: parts.method.to_string(),
            path: path.to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            content_type: header_text(&parts.headers, header::CONTENT_TYPE).unwrap_or_default(),
            encoding: header_text(&parts.headers, header::CONTENT_ENCODING).unwrap_or_default(),
            body,
        };
        return http_backend::serve(request, token.as_deref(), authorization.as_deref()).await;
    }
    let host = header_text(&parts.headers, header::HOST).unwrap_or_else(|| "127.0.0.1".into());
    let api = routes::Api {
        shared: &shared,
        base: format!("http://{host}{prefix}"),
        host,
    };
    Ok(api.answer(
        &parts.method,
        path,
        parts.uri.query().unwrap_or(""),
        token.as_deref(),
        authorization.as_deref(),
    ))
}
