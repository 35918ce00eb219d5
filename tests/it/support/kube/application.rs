//! The application behind the load balancer, as far as smoke checks can tell: `GET
//! /healthz` answers 200 with every Deployment of the namespace and its image when all of
//! them are Available in the real API server, else 503. The load balancer stand-in
//! (`load_balancer.rs`) answers each connection on a Service's ports with it.

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use super::Api;

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

/// Read one request's head and answer it: `/healthz` from the API server, else 404.
pub(super) fn answer(stream: impl Read + Write, api: &Api, namespace: &str) {
    let mut reader = std::io::BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
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
    let stream = reader.get_mut();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
