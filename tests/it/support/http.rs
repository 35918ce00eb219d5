//! A tiny HTTP server for smoke checks: one path answers 200 with a body, anything else
//! 503 `down`. What `http.check` steps probe in tests that need no cluster.

use std::io::{Read, Write};
use std::net::TcpListener;

/// Serve `GET PATH` → 200 `body`, anything else → 503, on loopback; the base URL.
pub fn serve(path: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("the bound address");
    let wanted = format!("GET {path} ");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 2048];
            let read = stream.read(&mut buffer).unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..read]);
            let (status, answer) = if request.starts_with(&wanted) {
                ("200 OK", body)
            } else {
                ("503 Service Unavailable", "down")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    format!("http://{address}")
}
