//! The AWS wire protocols as far as the fault proxy needs them: which operation a request
//! is (`Action`, `X-Amz-Target` or `METHOD /path`), its region and service (the SigV4
//! credential scope), its form parameters, and a fault answered in the service's own error
//! format (EC2's, the query services', S3's or the JSON services').

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode, Uri};

use super::holds::form_get;
use super::proxy::Fault;

/// (region, service) from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub(super) fn credential_scope(headers: &HeaderMap) -> (String, String) {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let Some(at) = authorization.find("Credential=") else {
        return (String::new(), String::new());
    };
    let credential = authorization[at + "Credential=".len()..]
        .split([',', ' '])
        .next()
        .unwrap_or("");
    let fields: Vec<&str> = credential.split('/').collect();
    if fields.len() >= 5 {
        (fields[2].to_string(), fields[3].to_string())
    } else {
        (String::new(), String::new())
    }
}

/// Form parameters from a form-urlencoded body, else from the query string.
pub(super) fn request_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.contains("x-www-form-urlencoded"))
        || body.starts_with(b"Action=");
    let mut params = Vec::new();
    if is_form {
        params.extend(parse_form(&String::from_utf8_lossy(body)));
    }
    if !params.iter().any(|(key, _)| key == "Action")
        && let Some(query) = query
    {
        params.extend(parse_form(query));
    }
    params
}

/// Parses `a=b&c=d` with percent-decoding and `+` as space.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// `a=b&c=d`, percent-encoded (everything but RFC 3986's unreserved characters).
pub(super) fn encode_form(params: &[(String, String)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(byte).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect::<String>()
    };
    params
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn operation_name(
    method: &hyper::Method,
    uri: &Uri,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> String {
    if let Some(action) = form_get(form, "Action") {
        return action.to_string();
    }
    if let Some(target) = headers
        .get(HeaderName::from_static("x-amz-target"))
        .and_then(|value| value.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    format!("{} {}", method, uri.path())
}

/// The error format of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Ec2,
    Query,
    S3,
    Json,
}

pub(super) fn dialect(service: &str, query_protocol: bool, form: &[(String, String)]) -> Dialect {
    if service == "ec2" || form_get(form, "Version") == Some("2016-11-15") {
        Dialect::Ec2
    } else if query_protocol || service == "route53" {
        Dialect::Query
    } else if service == "s3" {
        Dialect::S3
    } else {
        Dialect::Json
    }
}

/// An EC2 error in EC2's own XML format (`Response/Errors/Error`), HTTP 400.
pub(super) fn ec2_error(code: &str, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

pub(super) fn fault_response(
    kind: Fault,
    dialect: Dialect,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let (status, code, message, error_type) = match (kind, dialect) {
        (Fault::Refused { code, message }, _) => (400, code, message, "Sender"),
        (Fault::ExpiredToken, Dialect::Json) => (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            "Sender",
        ),
        (Fault::ExpiredToken, _) => (
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
            "Sender",
        ),
        (Fault::Throttle, Dialect::Ec2) => (
            400,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            "Sender",
        ),
        (Fault::Throttle, Dialect::Query) => (400, "Throttling", "Rate exceeded", "Sender"),
        (Fault::Throttle, Dialect::S3) => (
            503,
            "SlowDown",
            "Please reduce your request rate.",
            "Sender",
        ),
        (Fault::Throttle, Dialect::Json) => (429, "ThrottlingException", "Rate exceeded", "Sender"),
        (Fault::ServerError500, _) => (
            500,
            "InternalFailure",
            "Internal failure (injected).",
            "Receiver",
        ),
        (Fault::Unavailable503 | Fault::DropConnection, _) => (
            503,
            "ServiceUnavailable",
            "Service unavailable (injected).",
            "Receiver",
        ),
    };
    let (content_type, body) = match dialect {
        Dialect::Ec2 => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        Dialect::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{error_type}</Type><Code>{code}</Code><Message>{message}</Message>\
                 </Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
        Dialect::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        Dialect::Json => (
            "application/json",
            format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("proxy")),
    );
    if dialect == Dialect::Json {
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(code),
        );
    }
    response
}

/// An XML element as the REST-XML services (Route 53) write and read them: its local name
/// (namespace prefix dropped), its text and its children. Attributes are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlElement {
    /// The local name.
    pub name: String,
    /// The text directly inside it, entities resolved.
    pub text: String,
    /// The elements inside it, in order.
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|child| child.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlElement> {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.as_str())
    }
}

/// The root element of an XML document; `None` when it is not well formed (as far as this
/// small reader checks: tags must nest).
pub fn parse_xml(text: &str) -> Option<XmlElement> {
    let mut open = vec![XmlElement::default()];
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        open.last_mut()?.text.push_str(&unescape_xml(&rest[..at]));
        rest = &rest[at..];
        let skip_to = |end: &str, rest: &str| rest.find(end).map(|found| found + end.len());
        if let Some(data) = rest.strip_prefix("<![CDATA[") {
            let end = data.find("]]>")?;
            open.last_mut()?.text.push_str(&data[..end]);
            rest = &data[end + 3..];
            continue;
        }
        let special = [("<?", "?>"), ("<!--", "-->"), ("<!", ">")];
        if let Some((_, end)) = special.iter().find(|(start, _)| rest.starts_with(start)) {
            rest = &rest[skip_to(end, rest)?..];
            continue;
        }
        let close = rest.find('>')?;
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        let local = |name: &str| name.rsplit(':').next().unwrap_or(name).to_string();
        if let Some(name) = tag.strip_prefix('/') {
            let element = open.pop()?;
            if local(name.trim()) != element.name || open.is_empty() {
                return None;
            }
            open.last_mut()?.children.push(element);
        } else {
            let empty = tag.ends_with('/');
            let name = local(tag.trim_end_matches('/').split_whitespace().next()?);
            let element = XmlElement {
                name,
                ..XmlElement::default()
            };
            if empty {
                open.last_mut()?.children.push(element);
            } else {
                open.push(element);
            }
        }
    }
    if open.len() != 1 {
        return None;
    }
    open.pop()?.children.into_iter().next()
}

/// Text with XML's five entities (and numeric references) resolved.
fn unescape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let character = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match character {
            Some(character) => {
                out.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text escaped for an XML element's content.
pub fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text of the first `<name>` element of an XML answer.
pub(super) fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_string())
}
