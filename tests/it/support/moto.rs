//! Launches a private `moto_server` (moto 5.2.5, server mode) on a free loopback port, and
//! speaks to its control API (`/moto-api/…`) with a minimal HTTP client.
//!
//! One process serves every region: the SigV4 credential scope picks the region, so
//! "production" (ap-southeast-2) and the rebuild region (ap-southeast-1) keep separate
//! state inside the same server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, killed (and reaped) on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, suitable for `AWS_ENDPOINT_URL` or an SDK `endpoint_url`.
    pub endpoint: String,
    /// The loopback port moto listens on.
    pub port: u16,
    child: Child,
    /// Write end of moto's stdin: when the test process dies (even by SIGKILL), moto's
    /// watchdog sees EOF and exits, so no orphaned moto survives a killed test.
    _stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

/// Path of the `moto_server` executable: `$REBUILD_MOTO_SERVER`, else
/// `$HOME/.cache/rebuild/moto-venv/bin/moto_server`.
fn moto_server_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REBUILD_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/rebuild/moto-venv/bin/moto_server")
}

/// Python run before moto's own entry point: a daemon thread exits the process once stdin
/// reaches EOF (the test process closed it or died).
const WATCHDOG: &str = "import os, sys, threading, runpy
def watch():
    try:
        while sys.stdin.buffer.read(1):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
";

/// A command running `exe` under its Python interpreter with [`WATCHDOG`] when `exe` is a
/// Python script (a venv console script is), else `exe` itself.
fn launcher(exe: &std::path::Path) -> Command {
    let first_line = std::fs::read(exe)
        .ok()
        .and_then(|bytes| {
            bytes
                .split(|&byte| byte == b'\n')
                .next()
                .map(|line| String::from_utf8_lossy(line).into_owned())
        })
        .unwrap_or_default();
    if let Some(shebang) = first_line.strip_prefix("#!")
        && shebang.contains("python")
    {
        let mut words = shebang.split_whitespace();
        if let Some(interpreter) = words.next() {
            let mut command = Command::new(interpreter);
            command.args(words).arg("-c").arg(WATCHDOG).arg(exe);
            return command;
        }
    }
    Command::new(exe)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to pick a free port");
    listener
        .local_addr()
        .expect("local_addr of probe listener")
        .port()
}

impl Moto {
    /// Starts moto and waits (up to 30 s) until `GET /moto-api/data.json` answers.
    pub fn start() -> Moto {
        let exe = moto_server_path();
        assert!(
            exe.exists(),
            "moto_server not found at {}: run `bash .ci/setup-testbed` (or set REBUILD_MOTO_SERVER)",
            exe.display()
        );
        let dir = tempfile::tempdir().expect("tempdir for the moto log");
        let log_path = dir.path().join("moto.log");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("create moto log file");
            let log_for_stderr = log.try_clone().expect("clone moto log file handle");
            let mut child = launcher(&exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // AWS's managed policies exist in every account (roles attach them).
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .stdin(Stdio::piped())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log_for_stderr))
                .spawn()
                .unwrap_or_else(|error| panic!("spawn {}: {error}", exe.display()));
            let endpoint = format!("http://127.0.0.1:{port}");
            let url = format!("{endpoint}/moto-api/data.json");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_status)) = child.try_wait() {
                    // Exited early: most likely the port got taken meanwhile. Retry.
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    break;
                }
                if let Ok((200, _)) = try_http_request("GET", &url, b"") {
                    let stdin = child.stdin.take();
                    return Moto {
                        endpoint,
                        port,
                        child,
                        _stdin: stdin,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("moto_server on port {port} not ready after 30 s; log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("moto_server exited early 5 times; last log:\n{last_log}");
    }

    /// Clears every service's state (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let (status, body) =
            http_request("POST", &format!("{}/moto-api/reset", self.endpoint), b"");
        assert_eq!(
            status,
            200,
            "moto reset failed: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Moto's whole state (`GET /moto-api/data.json`), for before/after comparisons.
    pub fn data(&self) -> serde_json::Value {
        let (status, body) =
            http_request("GET", &format!("{}/moto-api/data.json", self.endpoint), b"");
        assert_eq!(
            status,
            200,
            "moto data.json failed: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("moto data.json is JSON")
    }

    /// Process id of the moto server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 request (`Connection: close`) for control calls.
/// Panics on I/O errors; returns `(status, body)`.
fn http_request(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    try_http_request(method, url, body)
        .unwrap_or_else(|error| panic!("HTTP {method} {url} failed: {error}"))
}

/// Like [`http_request`] but returns I/O and parse errors.
fn try_http_request(method: &str, url: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad =
        |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: {}\r\nAccept: */*\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let chunked = lines.any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, payload))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end_of_line = data.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..end_of_line]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[end_of_line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
