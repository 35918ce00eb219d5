//! A stand-in for the GitHub REST API (and GitHub's smart-HTTP git endpoint), backed by the
//! bare repositories of a [`super::git::GitRepos`] folder: every answer is read from the
//! repositories with the `git` CLI at request time, so tags, SHAs and moved tags agree with
//! what `git daemon` serves. Answers follow GitHub's documented JSON shapes.
//!
//! Served, under `/` and under `/api/v3` (GitHub Enterprise):
//! `GET /repos/{o}/{r}`, `GET /repos/{o}/{r}/git/ref/tags/{tag}` (the tag may hold `/`),
//! `GET /repos/{o}/{r}/git/tags/{sha}`, `GET /repos/{o}/{r}/tags` (paginated with `Link`),
//! `GET /repos/{o}/{r}/releases/latest`; and git over HTTP (`/{o}/{r}.git/info/refs`,
//! `/{o}/{r}.git/git-upload-pack`) through `git http-backend`. A required token is checked
//! on both (`Bearer`/`token` for the API, Basic for git). It runs on its own thread with its
//! own runtime, like the fault proxy, and can stop listening to play "unreachable".

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// One request the stand-in saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
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
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in; stopped (and its thread joined) on drop.
pub struct GitHub {
    /// `http://127.0.0.1:PORT` (the API is also served under `/api/v3`).
    pub url: String,
    pub port: u16,
    shared: Arc<Shared>,
    reachable: tokio::sync::watch::Sender<bool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHub {
    /// Serve the repositories under `root` (`OWNER/NAME.git`); a repository's `clone_url`
    /// is `CLONE_BASE/OWNER/NAME.git`.
    pub fn start(root: &Path, clone_base: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
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
        let (reachable, reachable_rx) = tokio::sync::watch::channel(true);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("github-{port}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                        serve(listener, port, shared, reachable_rx, shutdown_rx).await;
                    });
                })
                .unwrap()
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

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.clone())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap(),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

fn respond_json(status: u16, body: &Value) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec(body).unwrap(),
    )
}

fn not_found() -> Response<Full<Bytes>> {
    respond_json(
        404,
        &json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "status": "404"
        }),
    )
}

fn bad_credentials() -> Response<Full<Bytes>> {
    respond_json(
        401,
        &json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        }),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let token = {
        let mut state = shared.lock();
        state.requests.push(Seen {
            method: parts.method.to_string(),
            path: path_and_query.clone(),
            authorization: authorization.clone(),
        });
        state.token.clone()
    };
    let raw_path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let (prefix, path) = match raw_path.strip_prefix("/api/v3") {
        Some(rest) => ("/api/v3", rest),
        None => ("", raw_path),
    };
    let api_base = format!("http://{host}{prefix}");

    // git over HTTP.
    if path.ends_with("/info/refs") || path.ends_with("/git-upload-pack") {
        if let Some(token) = &token {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
            );
            if authorization.as_deref() != Some(expected.as_str()) {
                let mut response = respond(401, "text/plain", b"Unauthorized\n".to_vec());
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"GitHub\""),
                );
                return Ok(response);
            }
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let encoding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let root = shared.root.clone();
        let method = parts.method.to_string();
        let path = path.to_string();
        let query = query.to_string();
        let response = tokio::task::spawn_blocking(move || {
            http_backend(
                &root,
                &method,
                &path,
                &query,
                &content_type,
                &encoding,
                &body,
            )
        })
        .await?;
        return Ok(response);
    }

    // The REST API.
    if let Some(token) = &token {
        let given = authorization.as_deref().and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        });
        if given != Some(token.as_str()) {
            return Ok(bad_credentials());
        }
    }
    if parts.method != hyper::Method::GET {
        return Ok(not_found());
    }
    let Some(rest) = path.strip_prefix("/repos/") else {
        return Ok(not_found());
    };
    let mut segments = rest.splitn(3, '/');
    let (Some(owner), Some(name)) = (segments.next(), segments.next()) else {
        return Ok(not_found());
    };
    let tail = segments.next().unwrap_or("");
    let full_name = format!("{owner}/{name}");
    let bare = shared.root.join(format!("{full_name}.git"));
    if !bare.is_dir() {
        return Ok(not_found());
    }
    let repo_url = format!("{api_base}/repos/{full_name}");
    let (clone_base, max_per_page, latest) = {
        let state = shared.lock();
        (
            state.clone_base.clone(),
            state.max_per_page,
            state.latest_release.get(&full_name).cloned(),
        )
    };
    let response = if tail.is_empty() {
        respond_json(
            200,
            &json!({
                "id": 1296269,
                "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
                "name": name,
                "full_name": full_name,
                "private": true,
                "owner": {"login": owner, "id": 1, "type": "Organization"},
                "html_url": format!("http://{host}/{full_name}"),
                "description": "a repository of the stand-in",
                "fork": false,
                "url": repo_url,
                "tags_url": format!("{repo_url}/tags"),
                "git_url": format!("git://{host}/{full_name}.git"),
                "clone_url": format!("{clone_base}/{full_name}.git"),
                "default_branch": "main",
                "visibility": "private",
                "archived": false
            }),
        )
    } else if let Some(tag) = tail.strip_prefix("git/ref/tags/") {
        let tag = percent_decode(tag);
        match git_out(
            &bare,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/tags/{tag}"),
            ],
        ) {
            Some(sha) => {
                let kind = git_out(&bare, &["cat-file", "-t", &sha]).unwrap_or_default();
                let plural = if kind == "tag" { "tags" } else { "commits" };
                respond_json(
                    200,
                    &json!({
                        "ref": format!("refs/tags/{tag}"),
                        "node_id": "MDM6UmVmcmVmcy90YWdz",
                        "url": format!("{repo_url}/git/refs/tags/{tag}"),
                        "object": {
                            "type": kind,
                            "sha": sha,
                            "url": format!("{repo_url}/git/{plural}/{sha}")
                        }
                    }),
                )
            }
            None => not_found(),
        }
    } else if let Some(sha) = tail.strip_prefix("git/tags/") {
        match git_out(&bare, &["cat-file", "-p", sha])
            .filter(|_| git_out(&bare, &["cat-file", "-t", sha]).as_deref() == Some("tag"))
        {
            Some(text) => {
                let field = |key: &str| {
                    text.lines()
                        .find_map(|line| line.strip_prefix(&format!("{key} ")))
                        .unwrap_or("")
                        .to_string()
                };
                let message = text.split_once("\n\n").map(|(_, m)| m).unwrap_or("");
                let object = field("object");
                let kind = field("type");
                let plural = if kind == "tag" { "tags" } else { "commits" };
                respond_json(
                    200,
                    &json!({
                        "node_id": "MDM6VGFnOTQwYmQzMzYyNDhlZmFlMGY5ZWU1YmM3YjJkNWM5ODU4ODdiMTZhYw==",
                        "tag": field("tag"),
                        "sha": sha,
                        "url": format!("{repo_url}/git/tags/{sha}"),
                        "message": message,
                        "tagger": {"name": "Rebuild Test", "email": "test@rebuild.invalid", "date": "2025-01-01T00:00:00Z"},
                        "object": {"type": kind, "sha": object, "url": format!("{repo_url}/git/{plural}/{object}")},
                        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null}
                    }),
                )
            }
            None => not_found(),
        }
    } else if tail == "tags" {
        let listing = git_out(
            &bare,
            &[
                "for-each-ref",
                "--sort=-refname",
                "--format=%(refname:strip=2)%09%(objectname)%09%(*objectname)",
                "refs/tags",
            ],
        )
        .unwrap_or_default();
        let all: Vec<Value> = listing
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut fields = line.split('\t');
                let name = fields.next().unwrap_or("");
                let object = fields.next().unwrap_or("");
                let peeled = fields.next().filter(|p| !p.is_empty()).unwrap_or(object);
                json!({
                    "name": name,
                    "commit": {"sha": peeled, "url": format!("{repo_url}/commits/{peeled}")},
                    "zipball_url": format!("{repo_url}/zipball/refs/tags/{name}"),
                    "tarball_url": format!("{repo_url}/tarball/refs/tags/{name}"),
                    "node_id": "MDM6VGFn"
                })
            })
            .collect();
        let per_page = query_value(query, "per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, max_per_page);
        let page = query_value(query, "page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let pages = all.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        let mut response = respond_json(200, &Value::Array(items));
        let link = |p: usize, rel: &str| {
            format!("<{repo_url}/tags?per_page={per_page}&page={p}>; rel=\"{rel}\"")
        };
        let mut links = Vec::new();
        if page < pages {
            links.push(link(page + 1, "next"));
            links.push(link(pages, "last"));
        }
        if page > 1 {
            links.push(link(page - 1, "prev"));
            links.push(link(1, "first"));
        }
        if !links.is_empty() {
            response.headers_mut().insert(
                header::LINK,
                HeaderValue::from_str(&links.join(", ")).unwrap(),
            );
        }
        response
    } else if tail == "releases/latest" {
        match latest {
            Some(tag) => respond_json(
                200,
                &json!({
                    "url": format!("{repo_url}/releases/1"),
                    "html_url": format!("http://{host}/{full_name}/releases/tag/{tag}"),
                    "assets_url": format!("{repo_url}/releases/1/assets"),
                    "upload_url": format!("{repo_url}/releases/1/assets{{?name,label}}"),
                    "tarball_url": format!("{repo_url}/tarball/{tag}"),
                    "zipball_url": format!("{repo_url}/zipball/{tag}"),
                    "id": 1,
                    "node_id": "MDc6UmVsZWFzZTE=",
                    "tag_name": tag,
                    "target_commitish": "main",
                    "name": format!("Release {tag}"),
                    "body": "",
                    "draft": false,
                    "prerelease": false,
                    "created_at": "2025-01-01T00:00:00Z",
                    "published_at": "2025-01-01T00:00:00Z",
                    "author": {"login": "release-bot", "id": 2, "type": "Bot"},
                    "assets": []
                }),
            ),
            None => not_found(),
        }
    } else {
        not_found()
    };
    Ok(response)
}

/// `git ARGS` in `dir`: stdout trimmed, or `None` when it fails.
fn git_out(dir: &Path, args: &[&str]) -> Option<String> {
    let output = super::git::git()
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Run `git http-backend` as a CGI program for one request.
fn http_backend(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    encoding: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut child = match Command::new("git")
        .arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", method)
        .env("CONTENT_TYPE", content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", encoding)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return respond(500, "text/plain", error.to_string().into_bytes()),
    };
    let mut stdin = child.stdin.take();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(&body);
        }
    });
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(error) => return respond(500, "text/plain", error.to_string().into_bytes()),
    };
    let _ = writer.join();
    let raw = output.stdout;
    let (head_end, body_start) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (at, at + 4),
        None => match raw.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (at, at + 2),
            None => {
                return respond(
                    500,
                    "text/plain",
                    format!(
                        "http-backend answered without headers: {}",
                        String::from_utf8_lossy(&output.stderr)
                    )
                    .into_bytes(),
                );
            }
        },
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut status = 200;
    let mut content_type = "application/octet-stream".to_string();
    for line in head.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "status" => {
                status = value
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500)
            }
            "content-type" => content_type = value.to_string(),
            _ => {}
        }
    }
    respond(status, &content_type, raw[body_start..].to_vec())
}
