//! Where the proxy is as strict as AWS and moto is not. Each rule answers in AWS's own
//! shapes (the service's error format, the operation's result) and is on by default; a test
//! that needs moto's leniency turns the rules off with `Proxy::set_lenient(true)`.
//!
//! One file per service: [`eks`], [`route53`].

pub mod eks;
pub mod route53;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::aws_wire::escape_xml;
use super::proxy::Upstream;

/// AWS's answer to a request the strict rules decide before moto sees it, if they decide it.
/// `upstream` reads what moto holds, for rules that depend on it.
pub(super) async fn answer(
    service: &str,
    operation: &str,
    body: &[u8],
    upstream: &Upstream<'_>,
) -> Option<Response<Full<Bytes>>> {
    match service {
        "eks" => eks::answer(operation, body),
        "route53" => route53::answer(operation, body, upstream).await,
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

/// A REST-XML service's error (Route 53): `status` and an `ErrorResponse` document with the
/// code and the message, as the service writes it.
pub(super) fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error>\
         <RequestId>strict-proxy</RequestId></ErrorResponse>",
        escape_xml(code),
        escape_xml(message)
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    response
}
