//! The application behind the load balancer, as far as smoke checks can tell: a listener
//! on a free loopback port ("localhost", the hostname the load balancer stand-in gives)
//! whose `GET /healthz` reads the Deployments from the real API server.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Api;

/// The application behind the load balancer, as far as smoke checks can tell: `GET
/// /healthz` answers 200 with every Deployment of the namespace and its image when all of
/// them are Available in the real API server, else 503.
pub struct ApplicationListener {
    /// The loopback port it listens on.
    pub port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ApplicationListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn application_health(api: &Api, namespace: &str) -> (u16, String) {
    let timeout = Duration::from_secs(10);
    let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments");
    let Ok((200, body)) = api.request("GET", &path, None, None, timeout) else {
        return (503, "the API server did not answer".to_string());
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut deployments = serde_json::Map::new();
    let mut healthy = true;
    for item in list["items"].as_array().into_iter().flatten() {
        let wanted = item["spec"]["replicas"].as_u64().unwrap_or(1);
        let available = item["status"]["availableReplicas"].as_u64().unwrap_or(0);
        healthy &= available >= wanted;
        deployments.insert(
            item["metadata"]["name"].as_str().unwrap_or("?").to_string(),
            item["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
        );
    }
    healthy &= !deployments.is_empty();
    let body = serde_json::json!({"healthy": healthy, "deployments": deployments}).to_string();
    (if healthy { 200 } else { 503 }, body)
}

impl ApplicationListener {
    /// Listen on a free loopback port for the application in `namespace`.
    pub(super) fn start(api: Api, namespace: &str) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the application listener");
        let port = listener
            .local_addr()
            .expect("the application listener's address")
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let namespace = namespace.to_string();
        let handle = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    answer(stream, &api, &namespace);
                }
            }
        });
        Self {
            port,
            stop,
            handle: Some(handle),
        }
    }
}

/// Read one request's head and answer it: `/healthz` from the API server, else 404.
fn answer(mut stream: std::net::TcpStream, api: &Api, namespace: &str) {
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(reading);
    let mut request_line = String::new();
    let _ = std::io::BufRead::read_line(&mut reader, &mut request_line);
    loop {
        let mut header = String::new();
        match std::io::BufRead::read_line(&mut reader, &mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/healthz" {
        application_health(api, namespace)
    } else {
        (404, "not found".to_string())
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
