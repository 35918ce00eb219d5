//! Where the proxy is as strict as AWS and moto is not. Each rule answers in AWS's own
//! shapes (the service's error format, the operation's result) and is on by default; a test
//! that needs moto's leniency turns the rules off with `Proxy::set_lenient(true)`.
//!
//! One file per service: [`eks`] (stateless, decided here) and [`ec2`] (its rules keep
//! state, so the proxy holds them and calls them around forwarding).

pub mod ec2;
pub mod eks;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// AWS's answer to a request the strict rules decide before moto sees it, if they decide it.
pub(super) fn answer(service: &str, operation: &str, body: &[u8]) -> Option<Response<Full<Bytes>>> {
    match service {
        "eks" => eks::answer(operation, body),
        _ => None,
    }
}

/// A JSON answer (REST-JSON services).
pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A REST-JSON service's error: `status`, the `x-amzn-errortype` header and the message.
pub(super) fn json_error(
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response<Full<Bytes>> {
    let mut response = json_response(status, &serde_json::json!({ "message": message }));
    response.headers_mut().insert(
        "x-amzn-errortype",
        hyper::header::HeaderValue::from_static(code),
    );
    response
}
