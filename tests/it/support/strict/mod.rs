//! Where the proxy is as strict as AWS and moto is not. Each rule answers in AWS's own
//! shapes (the service's error format, the operation's result) and is on by default; a test
//! that needs moto's leniency turns the rules off with `Proxy::set_lenient(true)`.
//!
//! One file per service: [`ec2`], [`eks`] (and [`pod_identity`]: EKS add-ons and Pod
//! Identity associations, which moto lacks), [`rds`], [`route53`]. Rules that need what the
//! proxy remembers (the RDS table and canned snapshots) get it as [`Rules`]; rules that read
//! moto's state first are in [`answer_from_moto`]; rules that rewrite moto's own
//! successful answer are in [`rewrite`]; EC2's rules keep state of their own (quotas, new
//! ids, client tokens), so the proxy holds them and calls them around forwarding.

pub mod ec2;
pub mod eks;
pub mod pod_identity;
pub mod rds;
pub mod route53;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

/// What the strict rules are set to, kept by the proxy.
#[derive(Debug, Default)]
pub struct Rules {
    /// RDS's table and canned snapshots.
    pub rds: rds::RdsRules,
}

/// One request, as the strict rules read it.
pub(super) struct Request<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub region: &'a str,
    pub form: &'a [(String, String)],
    pub body: &'a [u8],
}

use super::aws_wire::{encode_form, escape_xml};
use super::proxy::Upstream;

/// AWS's answer to a request the strict rules decide before moto sees it, if they decide it.
pub(super) fn answer(rules: &Rules, request: &Request<'_>) -> Option<Response<Full<Bytes>>> {
    match request.service {
        "eks" => eks::answer(request.operation, request.body),
        "rds" => rds::answer(&rules.rds, request.operation, request.region, request.form),
        _ => None,
    }
}

/// AWS's answer to a request the strict rules decide from what moto holds (read through
/// `upstream`), if they decide it.
pub(super) async fn answer_from_moto(
    request: &Request<'_>,
    upstream: &Upstream<'_>,
) -> Option<Response<Full<Bytes>>> {
    match request.service {
        "route53" => route53::answer(request.operation, request.body, upstream).await,
        _ => None,
    }
}

/// Moto's successful answer (`body`) replaced by AWS's, where they differ.
pub(super) fn rewrite(
    rules: &Rules,
    request: &Request<'_>,
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    match request.service {
        "rds" => rds::rewrite(
            &rules.rds,
            request.operation,
            request.region,
            request.form,
            body,
        ),
        _ => None,
    }
}

/// An XML answer (query-protocol services).
pub(super) fn xml_response(body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    response
}

/// A query-protocol service's error (RDS, IAM, STS): `status`, code and message.
pub(super) fn query_error(
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response<Full<Bytes>> {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut response = xml_response(&format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>\
         </Error><RequestId>strict</RequestId></ErrorResponse>"
    ));
    *response.status_mut() = status;
    response
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

/// Moto, for the calls the strict rules make themselves (e.g. creating the security group
/// EKS would create). Moto checks no signatures; the credential scope names the region.
pub(super) struct Moto {
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub endpoint: String,
}

impl Moto {
    /// An EC2 query call in `region`: the answer's XML, or why not.
    pub(super) async fn ec2(
        &self,
        region: &str,
        params: &[(&str, &str)],
    ) -> Result<String, String> {
        let mut form: Vec<(String, String)> = params
            .iter()
            .map(|(key, value)| ((*key).to_string(), (*value).to_string()))
            .collect();
        form.push(("Version".into(), "2016-11-15".into()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        let request = hyper::Request::post(format!("{}/", self.endpoint))
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(hyper::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(encode_form(&form))))
            .map_err(|error| error.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{status}: {text}"))
        }
    }
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
