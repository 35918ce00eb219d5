//! Git over HTTP for the GitHub stand-in: the token check (Basic, `x-access-token` and the
//! token as password, as GitHub takes it) and `git http-backend` run as a CGI program for
//! each request (`/{o}/{r}.git/info/refs`, `/{o}/{r}.git/git-upload-pack`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{self, HeaderValue};

use super::BoxError;
use super::routes::{Answer, respond};

/// What `git http-backend` needs to know about one request.
pub(super) struct GitRequest {
    /// The folder of bare repositories.
    pub root: PathBuf,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub encoding: String,
    pub body: Bytes,
}

/// Check the token (when one is required), then run `git http-backend`.
pub(super) async fn serve(
    request: GitRequest,
    token: Option<&str>,
    authorization: Option<&str>,
) -> Result<Answer, BoxError> {
    if let Some(token) = token {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
        );
        if authorization != Some(expected.as_str()) {
            let mut response = respond(401, "text/plain", b"Unauthorized\n".to_vec());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"GitHub\""),
            );
            return Ok(response);
        }
    }
    Ok(tokio::task::spawn_blocking(move || http_backend(&request)).await?)
}

/// Run `git http-backend` as a CGI program for one request.
fn http_backend(request: &GitRequest) -> Answer {
    let mut child = match Command::new("git")
        .arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &request.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &request.path)
        .env("QUERY_STRING", &request.query)
        .env("REQUEST_METHOD", &request.method)
        .env("CONTENT_TYPE", &request.content_type)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", &request.encoding)
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
    let body = request.body.to_vec();
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
    cgi_response(&output.stdout, &output.stderr)
}

/// The HTTP response a CGI program printed: `Status:` and `Content-Type:` headers, a blank
/// line, the body.
fn cgi_response(raw: &[u8], stderr: &[u8]) -> Answer {
    let (head_end, body_start) = match raw.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(at) => (at, at + 4),
        None => match raw.windows(2).position(|window| window == b"\n\n") {
            Some(at) => (at, at + 2),
            None => {
                return respond(
                    500,
                    "text/plain",
                    format!(
                        "http-backend answered without headers: {}",
                        String::from_utf8_lossy(stderr)
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
                    .and_then(|code| code.parse().ok())
                    .unwrap_or(500);
            }
            "content-type" => content_type = value.to_string(),
            _ => {}
        }
    }
    respond(status, &content_type, raw[body_start..].to_vec())
}
