//! A fault/latency-injecting HTTP/1.1 reverse proxy in front of moto.
//!
//! Moto is instantaneous and never fails, so waits, ETAs and retries are exercised by putting
//! this proxy between the code under test and moto (`AWS_ENDPOINT_URL=proxy.endpoint`). It
//! runs on its own thread with its own tokio runtime, so synchronous tests can use it.
//!
//! Operation names: for query-protocol services (EC2, RDS, STS, IAM) the `Action` form
//! parameter (body or query string); for JSON services the part of `X-Amz-Target` after the
//! last `.` (e.g. `CreateRepository`); for REST services `"METHOD /path"` (no query string).
//! A fault rule whose operation ends with `*` matches every operation with that prefix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What to answer instead of forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error: EC2 `RequestLimitExceeded` (400), RDS/STS/IAM/Route 53
    /// `Throttling` (400), S3 `SlowDown` (503), JSON services `ThrottlingException` (429).
    Throttle,
    /// HTTP 500 `InternalFailure` in the service's error format.
    ServerError500,
    /// HTTP 503 `ServiceUnavailable` in the service's error format.
    Unavailable503,
    /// Close the TCP connection without any response.
    DropConnection,
}

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Operation name (see the module docs).
    pub operation: String,
    /// Region from the SigV4 credential scope (empty if unsigned).
    pub region: String,
    /// Service from the SigV4 credential scope, e.g. `rds`, `ec2` (empty if unsigned).
    pub service: String,
    /// Whether the request got a fault instead of being forwarded.
    pub faulted: bool,
}

#[derive(Default)]
struct Rules {
    latency: Duration,
    faults: Vec<FaultRule>,
    rds_hold: Option<Duration>,
    nat_hold: Option<Duration>,
    eks_hold: Option<Duration>,
}

struct FaultRule {
    operation: String,
    remaining: usize,
    kind: Fault,
}

#[derive(Default)]
struct State {
    rules: Rules,
    calls: Vec<Call>,
    /// (region, lower-case DBInstanceIdentifier) -> time the create/restore was seen.
    rds_instances: HashMap<(String, String), Instant>,
    /// (region, lower-case DBClusterIdentifier) -> time the create/restore was seen.
    rds_clusters: HashMap<(String, String), Instant>,
    /// NAT gateway id -> time the CreateNatGateway was seen.
    nat_gateways: HashMap<String, Instant>,
    /// (region, EKS path `/clusters/NAME` or `/clusters/NAME/node-groups/NG`) -> time the
    /// create was seen.
    eks_resources: HashMap<(String, String), Instant>,
    request_seq: u64,
}

struct Shared {
    state: Mutex<State>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy; shut down (and its thread joined) on drop.
pub struct Proxy {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub endpoint: String,
    /// The proxy's loopback port.
    pub port: u16,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream` (e.g. `moto.endpoint`).
    pub fn start(upstream: &str) -> Proxy {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy on 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("set proxy listener non-blocking");
        let port = listener.local_addr().expect("proxy local_addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Arc<Shared>>();
        let upstream = upstream.trim_end_matches('/').to_string();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy tokio runtime");
                rt.block_on(async move {
                    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                    let shared = Arc::new(Shared {
                        state: Mutex::new(State::default()),
                        upstream,
                        client,
                    });
                    let _ = ready_tx.send(shared.clone());
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("proxy listener into tokio");
                    serve(listener, shared, rx).await;
                });
            })
            .expect("spawn proxy thread");
        let shared = ready_rx.recv().expect("proxy thread started");
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Delays every forwarded request by `latency` (zero disables).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().rules.latency = latency;
    }

    /// The next `count` requests of `operation` get `kind` instead of being forwarded.
    /// `operation` may end with `*` to match a prefix.
    pub fn fail(&self, operation: &str, count: usize, kind: Fault) {
        self.shared.lock().rules.faults.push(FaultRule {
            operation: operation.to_string(),
            remaining: count,
            kind,
        });
    }

    /// How many injected faults are still pending over all rules.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .lock()
            .rules
            .faults
            .iter()
            .map(|r| r.remaining)
            .sum()
    }

    /// RDS DB instances/clusters created or restored less than `hold` ago report
    /// `creating` (and instances lose their `<Endpoint>`) in Describe/Create/Restore answers.
    pub fn hold_rds_status(&self, hold: Duration) {
        self.shared.lock().rules.rds_hold = Some(hold);
    }

    /// EKS clusters and node groups created less than `hold` ago report `CREATING` (and
    /// clusters no endpoint) in their create and describe answers.
    pub fn hold_eks_status(&self, hold: Duration) {
        self.shared.lock().rules.eks_hold = Some(hold);
    }

    /// NAT gateways created less than `hold` ago report `pending` in
    /// `CreateNatGateway`/`DescribeNatGateways` answers.
    pub fn hold_ec2_nat_pending(&self, hold: Duration) {
        self.shared.lock().rules.nat_hold = Some(hold);
    }

    /// Removes every rule (latency, faults, holds). What was seen is kept.
    pub fn clear(&self) {
        self.shared.lock().rules = Rules::default();
    }

    /// How many requests of `operation` were seen (forwarded or faulted).
    pub fn count(&self, operation: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Every operation seen, in order.
    pub fn operations(&self) -> Vec<String> {
        self.shared
            .lock()
            .calls
            .iter()
            .map(|c| c.operation.clone())
            .collect()
    }

    /// Every request seen, in order, with region and service.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Operations seen that look mutating (name starts with Create, Restore, Modify, Delete,
    /// Allocate, Associate, Attach, Authorize, Copy, Run, Put, or a REST POST/PUT/PATCH/DELETE).
    pub fn mutating_operations(&self) -> Vec<String> {
        self.operations()
            .into_iter()
            .filter(|op| is_mutating(op))
            .collect()
    }

    /// Forgets every request seen so far (counts and operations), keeping rules.
    pub fn reset_counts(&self) {
        self.shared.lock().calls.clear();
    }
}

/// Whether an operation name looks like a mutating AWS call.
pub fn is_mutating(op: &str) -> bool {
    const PREFIXES: [&str; 11] = [
        "Create",
        "Restore",
        "Modify",
        "Delete",
        "Allocate",
        "Associate",
        "Attach",
        "Authorize",
        "Copy",
        "Run",
        "Put",
    ];
    const REST: [&str; 4] = ["POST ", "PUT ", "PATCH ", "DELETE "];
    PREFIXES.iter().any(|p| op.starts_with(p)) || REST.iter().any(|p| op.starts_with(p))
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected fault: drop connection")
    }
}

impl std::error::Error for DropConnection {}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
];

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(Box::new(e)),
    };
    let (region, service) = credential_scope(&parts.headers);
    let form = request_params(&parts.headers, parts.uri.query(), &body);
    let query_protocol = form.iter().any(|(k, _)| k == "Action");
    let operation = operation_name(&parts.method, &parts.uri, &parts.headers, &form);
    let seen_at = Instant::now();

    // Record the call, pick a fault, read the rules.
    let (fault, latency, request_id) = {
        let mut st = shared.lock();
        st.request_seq += 1;
        let request_id = format!("proxy-{:012}", st.request_seq);
        let mut fault = None;
        for rule in st.rules.faults.iter_mut() {
            if rule.remaining > 0 && op_matches(&rule.operation, &operation) {
                rule.remaining -= 1;
                fault = Some(rule.kind);
                break;
            }
        }
        st.calls.push(Call {
            operation: operation.clone(),
            region: region.clone(),
            service: service.clone(),
            faulted: fault.is_some(),
        });
        (fault, st.rules.latency, request_id)
    };

    if let Some(kind) = fault {
        if kind == Fault::DropConnection {
            return Err(Box::new(DropConnection));
        }
        let dialect = dialect(&service, query_protocol, &form);
        return Ok(fault_response(kind, dialect, &request_id));
    }

    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    // Forward.
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: Uri = match format!("{}{}", shared.upstream, path_and_query).parse() {
        Ok(u) => u,
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_GATEWAY,
                &format!("bad uri: {e}"),
            ));
        }
    };
    let mut fwd = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(h) = fwd.headers_mut() {
        copy_headers(&parts.headers, h);
    }
    let fwd = match fwd.body(Full::new(body.clone())) {
        Ok(r) => r,
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_GATEWAY,
                &format!("bad request: {e}"),
            ));
        }
    };
    let resp = match shared.client.request(fwd).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_GATEWAY,
                &format!("upstream error: {e}"),
            ));
        }
    };
    let (rparts, rbody) = resp.into_parts();
    let rbody = match rbody.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(text_response(
                StatusCode::BAD_GATEWAY,
                &format!("upstream body: {e}"),
            ));
        }
    };

    let rbody = post_process(
        &shared,
        &operation,
        &region,
        (&form, &body),
        rparts.status,
        rbody,
        seen_at,
    );

    let mut out = Response::builder().status(rparts.status);
    if let Some(h) = out.headers_mut() {
        copy_headers(&rparts.headers, h);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(rbody.len()));
    }
    Ok(out
        .body(Full::new(rbody))
        .unwrap_or_else(|_| text_response(StatusCode::BAD_GATEWAY, "cannot build response")))
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn text_response(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(msg.to_string())));
    *r.status_mut() = status;
    r
}

fn op_matches(rule: &str, op: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => op.starts_with(prefix),
        None => rule == op,
    }
}

/// (region, service) from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
fn credential_scope(headers: &HeaderMap) -> (String, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(i) = auth.find("Credential=") else {
        return (String::new(), String::new());
    };
    let cred = auth[i + "Credential=".len()..]
        .split([',', ' '])
        .next()
        .unwrap_or("");
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() >= 5 {
        (parts[2].to_string(), parts[3].to_string())
    } else {
        (String::new(), String::new())
    }
}

/// Form parameters from a form-urlencoded body, else from the query string.
fn request_params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("x-www-form-urlencoded"))
        || body.starts_with(b"Action=");
    let mut params = Vec::new();
    if is_form {
        params.extend(parse_form(&String::from_utf8_lossy(body)));
    }
    if !params.iter().any(|(k, _)| k == "Action")
        && let Some(q) = query
    {
        params.extend(parse_form(q));
    }
    params
}

/// Parses `a=b&c=d` with percent-decoding and `+` as space.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn operation_name(
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
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    format!("{} {}", method, uri.path())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Ec2,
    Query,
    S3,
    Json,
}

fn dialect(service: &str, query_protocol: bool, form: &[(String, String)]) -> Dialect {
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

fn fault_response(kind: Fault, dialect: Dialect, request_id: &str) -> Response<Full<Bytes>> {
    let (status, code, message, typ) = match (kind, dialect) {
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
        (Fault::Unavailable503, _) | (Fault::DropConnection, _) => (
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
                "<ErrorResponse><Error><Type>{typ}</Type><Code>{code}</Code><Message>{message}</Message>\
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
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("proxy")),
    );
    if dialect == Dialect::Json {
        h.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(code),
        );
    }
    r
}

const RDS_INSTANCE_CREATES: [&str; 4] = [
    "CreateDBInstance",
    "RestoreDBInstanceFromDBSnapshot",
    "RestoreDBInstanceToPointInTime",
    "CreateDBInstanceReadReplica",
];
const RDS_CLUSTER_CREATES: [&str; 3] = [
    "CreateDBCluster",
    "RestoreDBClusterFromSnapshot",
    "RestoreDBClusterToPointInTime",
];

/// Records creations and applies the status holds to a successful upstream answer.
fn post_process(
    shared: &Shared,
    operation: &str,
    region: &str,
    (form, request_body): (&[(String, String)], &Bytes),
    status: StatusCode,
    body: Bytes,
    seen_at: Instant,
) -> Bytes {
    if !status.is_success() {
        return body;
    }
    let mut st = shared.lock();
    let op = operation;
    if let Some(path) = eks_created_path(op, request_body) {
        st.eks_resources.insert((region.to_string(), path), seen_at);
    }
    if RDS_INSTANCE_CREATES.contains(&op)
        && let Some(id) = form_get(form, "DBInstanceIdentifier")
    {
        st.rds_instances
            .insert((region.to_string(), id.to_ascii_lowercase()), seen_at);
    }
    if RDS_CLUSTER_CREATES.contains(&op)
        && let Some(id) = form_get(form, "DBClusterIdentifier")
    {
        st.rds_clusters
            .insert((region.to_string(), id.to_ascii_lowercase()), seen_at);
    }
    if op == "CreateNatGateway" {
        let text = String::from_utf8_lossy(&body);
        let nodes = scan_xml(&text);
        for n in nodes.iter().filter(|n| n.name == "natGatewayId") {
            st.nat_gateways
                .insert(text[n.inner_start..n.inner_end].to_string(), seen_at);
        }
    }

    let now = Instant::now();
    let young = |t: &Instant, hold: Duration| now.duration_since(*t) < hold;
    let mut rewritten: Option<String> = None;

    if let Some(hold) = st.rules.rds_hold {
        if op == "DescribeDBInstances" || RDS_INSTANCE_CREATES.contains(&op) {
            let held = |id: &str| {
                st.rds_instances
                    .get(&(region.to_string(), id.to_ascii_lowercase()))
                    .is_some_and(|t| young(t, hold))
            };
            rewritten = Some(rewrite_status(
                &String::from_utf8_lossy(&body),
                "DBInstance",
                "DBInstanceIdentifier",
                "DBInstanceStatus",
                "available",
                "creating",
                true,
                held,
            ));
        } else if op == "DescribeDBClusters" || RDS_CLUSTER_CREATES.contains(&op) {
            let held = |id: &str| {
                st.rds_clusters
                    .get(&(region.to_string(), id.to_ascii_lowercase()))
                    .is_some_and(|t| young(t, hold))
            };
            rewritten = Some(rewrite_status(
                &String::from_utf8_lossy(&body),
                "DBCluster",
                "DBClusterIdentifier",
                "Status",
                "available",
                "creating",
                false,
                held,
            ));
        }
    }
    if let Some(hold) = st.rules.nat_hold
        && (op == "DescribeNatGateways" || op == "CreateNatGateway")
    {
        let held = |id: &str| st.nat_gateways.get(id).is_some_and(|t| young(t, hold));
        rewritten = Some(rewrite_nat(&String::from_utf8_lossy(&body), held));
    }
    if let Some(hold) = st.rules.eks_hold
        && let Some(path) = eks_described_path(op, &body)
        && st
            .eks_resources
            .get(&(region.to_string(), path))
            .is_some_and(|t| young(t, hold))
    {
        rewritten = Some(hold_eks_json(&body));
    }
    match rewritten {
        Some(s) => Bytes::from(s),
        None => body,
    }
}

/// For `POST /clusters` and `POST /clusters/C/node-groups`, the path of what was created.
fn eks_created_path(op: &str, request_body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(request_body).ok()?;
    if op == "POST /clusters" {
        return Some(format!("/clusters/{}", json.get("name")?.as_str()?));
    }
    let cluster = op
        .strip_prefix("POST /clusters/")?
        .strip_suffix("/node-groups")?;
    Some(format!(
        "/clusters/{cluster}/node-groups/{}",
        json.get("nodegroupName")?.as_str()?
    ))
}

/// For EKS answers that describe one cluster or node group (describe and create), its path.
fn eks_described_path(op: &str, body: &[u8]) -> Option<String> {
    if let Some(path) = op.strip_prefix("GET ") {
        return path.starts_with("/clusters/").then(|| path.to_string());
    }
    // The create answers: derive the path from the returned object.
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    if op == "POST /clusters" {
        return Some(format!(
            "/clusters/{}",
            json.get("cluster")?.get("name")?.as_str()?
        ));
    }
    let group = json.get("nodegroup")?;
    Some(format!(
        "/clusters/{}/node-groups/{}",
        group.get("clusterName")?.as_str()?,
        group.get("nodegroupName")?.as_str()?
    ))
}

/// `status` → `CREATING` in a cluster or node group answer; a creating cluster has no endpoint.
fn hold_eks_json(body: &[u8]) -> String {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    if let Some(cluster) = json.get_mut("cluster").and_then(|c| c.as_object_mut()) {
        cluster.insert("status".into(), serde_json::Value::from("CREATING"));
        cluster.remove("endpoint");
    }
    if let Some(group) = json.get_mut("nodegroup").and_then(|g| g.as_object_mut()) {
        group.insert("status".into(), serde_json::Value::from("CREATING"));
    }
    json.to_string()
}

/// An XML element's byte spans in the document.
#[derive(Debug)]
struct Node {
    name: String,
    open_start: usize,
    inner_start: usize,
    inner_end: usize,
    close_end: usize,
    parent: Option<usize>,
}

/// A tolerant scan of a (well-formed, entity-escaped) XML document into element spans.
fn scan_xml(xml: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let b = xml.as_bytes();
    let mut i = 0;
    while let Some(off) = xml[i..].find('<') {
        let start = i + off;
        let Some(end_off) = xml[start..].find('>') else {
            break;
        };
        let end = start + end_off + 1; // one past '>'
        let tag = &xml[start + 1..end - 1];
        i = end;
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            // Pop up to the matching open element.
            while let Some(idx) = stack.pop() {
                if nodes[idx].name == name {
                    nodes[idx].inner_end = start;
                    nodes[idx].close_end = end;
                    break;
                }
            }
            continue;
        }
        let self_closing = b[end - 2] == b'/';
        let name = tag
            .trim_end_matches('/')
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        let idx = nodes.len();
        nodes.push(Node {
            name,
            open_start: start,
            inner_start: end,
            inner_end: end,
            close_end: end,
            parent: stack.last().copied(),
        });
        if !self_closing {
            stack.push(idx);
        }
    }
    nodes
}

fn child<'a>(nodes: &'a [Node], parent: usize, name: &str) -> Option<&'a Node> {
    nodes
        .iter()
        .find(|n| n.parent == Some(parent) && n.name == name)
}

fn apply_edits(xml: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = xml.to_string();
    for (start, end, text) in edits {
        out.replace_range(start..end, &text);
    }
    out
}

/// In every `<elem>` whose `<id_tag>` is held, replace a direct child `<status_tag>from</status_tag>`
/// by `to`, and (if `drop_endpoint`) remove the direct child `<Endpoint>` element.
#[allow(clippy::too_many_arguments)]
fn rewrite_status(
    xml: &str,
    elem: &str,
    id_tag: &str,
    status_tag: &str,
    from: &str,
    to: &str,
    drop_endpoint: bool,
    held: impl Fn(&str) -> bool,
) -> String {
    let nodes = scan_xml(xml);
    let mut edits = Vec::new();
    for (idx, n) in nodes.iter().enumerate() {
        if n.name != elem {
            continue;
        }
        let Some(id) = child(&nodes, idx, id_tag) else {
            continue;
        };
        if !held(&xml[id.inner_start..id.inner_end]) {
            continue;
        }
        if let Some(s) = child(&nodes, idx, status_tag)
            && &xml[s.inner_start..s.inner_end] == from
        {
            edits.push((s.inner_start, s.inner_end, to.to_string()));
        }
        if drop_endpoint && let Some(e) = child(&nodes, idx, "Endpoint") {
            edits.push((e.open_start, e.close_end, String::new()));
        }
    }
    apply_edits(xml, edits)
}

/// Every NAT gateway element (parent of a held `<natGatewayId>`) gets `<state>pending</state>`
/// instead of `available`.
fn rewrite_nat(xml: &str, held: impl Fn(&str) -> bool) -> String {
    let nodes = scan_xml(xml);
    let mut edits = Vec::new();
    for n in nodes.iter().filter(|n| n.name == "natGatewayId") {
        if !held(&xml[n.inner_start..n.inner_end]) {
            continue;
        }
        let Some(parent) = n.parent else { continue };
        if let Some(s) = child(&nodes, parent, "state")
            && &xml[s.inner_start..s.inner_end] == "available"
        {
            edits.push((s.inner_start, s.inner_end, "pending".to_string()));
        }
    }
    apply_edits(xml, edits)
}
