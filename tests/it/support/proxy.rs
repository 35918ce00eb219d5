//! A fault/latency-injecting HTTP/1.1 reverse proxy in front of moto.
//!
//! Moto is instantaneous and never fails, so waits, ETAs and retries are exercised by putting
//! this proxy between the code under test and moto (`AWS_ENDPOINT_URL=proxy.endpoint`). It
//! runs on its own thread with its own tokio runtime, so synchronous tests can use it. It
//! counts every call, answers chosen ones with a fault in the service's own error format,
//! delays the others, and applies the status holds of [`super::holds`].
//!
//! Operation names: for query-protocol services (EC2, RDS, STS, IAM) the `Action` form
//! parameter (body or query string); for JSON services the part of `X-Amz-Target` after the
//! last `.` (e.g. `CreateRepository`); for REST services `"METHOD /path"` (no query string).
//! A fault rule whose operation ends with `*` matches every operation with that prefix.
//!
//! S3 conditional creates (`PutObject` with `If-None-Match: *`) are forwarded one at a
//! time: moto checks that the key is free and then writes it in two steps, so two
//! concurrent creates could both win there, where S3 lets exactly one win (the other gets
//! 412). Serialised, moto's check is as atomic as S3's.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::aws_wire::{
    credential_scope, dialect, encode_form, fault_response, operation_name, request_params,
    xml_text,
};
pub use super::holds::Notice;
use super::holds::{Answer, Creations, Holds, form_get};
use super::strict;
use super::strict::ec2::{Ec2Rules, Request as Ec2Request};
use super::strict::rds::{CannedSnapshot, Orderable};
use super::sts::{access_key_of, caller_arn, canonical_arn};

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
    /// HTTP 403: the session's credentials expired mid-run (`ExpiredToken`; JSON services
    /// `ExpiredTokenException`), as a long wait outliving a one-hour role session sees it.
    ExpiredToken,
    /// HTTP 400 with this error code (the service's own, e.g. RDS
    /// `InsufficientDBInstanceCapacity`) and message.
    Refused {
        /// The error code.
        code: &'static str,
        /// The message.
        message: &'static str,
    },
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
    /// Its form parameters (query-protocol services), as sent.
    pub params: Vec<(String, String)>,
    /// When the proxy saw it.
    pub at: SystemTime,
}

#[derive(Default)]
struct Rules {
    latency: Duration,
    faults: Vec<FaultRule>,
    holds: Holds,
}

struct FaultRule {
    operation: String,
    remaining: usize,
    kind: Fault,
}

#[derive(Default)]
struct State {
    rules: Rules,
    /// The strict rules (`strict/`) are off: moto's leniency shows through.
    lenient: bool,
    /// The security groups the proxy created for EKS clusters, as EKS would.
    cluster_networks: strict::eks::ClusterNetworks,
    /// EKS clusters' access configuration and access entries (moto lacks them).
    cluster_access: strict::eks::ClusterAccess,
    /// EKS add-ons and Pod Identity associations (moto lacks them).
    pod_identities: strict::pod_identity::PodIdentities,
    /// What the strict rules are set to.
    strict: strict::Rules,
    /// The strict EC2 rules' limits and memory (quotas, new ids, client tokens).
    ec2: Ec2Rules,
    calls: Vec<Call>,
    creations: Creations,
    request_sequence: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Held while an S3 conditional create is forwarded (see the module docs).
    conditional_creates: tokio::sync::Mutex<()>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running proxy; shut down (and its thread joined) on drop.
pub struct Proxy {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub endpoint: String,
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
        let (shutdown, shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
        let (ready, ready_receiver) = std::sync::mpsc::channel::<Arc<Shared>>();
        let upstream = upstream.trim_end_matches('/').to_string();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy tokio runtime");
                runtime.block_on(async move {
                    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                    let shared = Arc::new(Shared {
                        state: Mutex::new(State::default()),
                        conditional_creates: tokio::sync::Mutex::new(()),
                        upstream,
                        client,
                    });
                    let _ = ready.send(shared.clone());
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("proxy listener into tokio");
                    serve(listener, shared, shutdown_receiver).await;
                });
            })
            .expect("spawn proxy thread");
        let shared = ready_receiver.recv().expect("proxy thread started");
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
            shutdown: Some(shutdown),
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
            .map(|rule| rule.remaining)
            .sum()
    }

    /// RDS DB instances/clusters created or restored less than `hold` ago report
    /// `creating` (and instances lose their `<Endpoint>`) in Describe/Create/Restore answers.
    pub fn hold_rds_status(&self, hold: Duration) {
        self.shared.lock().rules.holds.rds = Some(hold);
    }

    /// RDS DB instances go on from `creating` to `backing-up` for `hold`, then `available`
    /// (RDS's sequence after a restore).
    pub fn hold_rds_backing_up(&self, hold: Duration) {
        self.shared.lock().rules.holds.rds_instances.backing_up = Some(hold);
    }

    /// RDS DB instances created from now on end in `status` (e.g. `restore-error`,
    /// `incompatible-parameters`, `insufficient-capacity`) instead of `available`, after
    /// `creating` (and `backing-up`); `None` stops that for later ones.
    pub fn rds_instances_fail_with(&self, status: Option<&str>) {
        self.shared.lock().rules.holds.rds_instances.fails_with = status.map(str::to_string);
    }

    /// For `hold` after `ModifyDBInstance` with `MasterUserPassword`, the instance reports
    /// `resetting-master-credentials` with `PendingModifiedValues.MasterUserPassword`.
    pub fn hold_rds_password_reset(&self, hold: Duration) {
        self.shared.lock().rules.holds.rds_instances.password_reset = Some(hold);
    }

    /// For `window` after a DB instance's create or restore, `DescribeDBInstances` naming it
    /// answers `DBInstanceNotFound` (eventual consistency).
    pub fn hide_new_rds_instances(&self, window: Duration) {
        self.shared.lock().rules.holds.rds_instances.invisible = Some(window);
    }

    /// `DescribeDBSnapshots` shows `snapshot` (an AWS Backup or shared snapshot, which moto
    /// does not model); a restore from it restores the moto snapshot it stands for.
    pub fn add_rds_snapshot(&self, snapshot: CannedSnapshot) {
        self.shared.lock().strict.rds.canned.push(snapshot);
    }

    /// The RDS orderable table (engine, version, class, Multi-AZ) replaced by `table`.
    pub fn set_rds_orderable(&self, table: Vec<Orderable>) {
        self.shared.lock().strict.rds.orderable = Some(table);
    }

    /// The form parameters of every request of `operation` seen, in order.
    pub fn requests(&self, operation: &str) -> Vec<Vec<(String, String)>> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.operation == operation)
            .map(|call| call.params.clone())
            .collect()
    }

    /// EKS clusters and node groups created less than `hold` ago report `CREATING` (and
    /// clusters no endpoint) in their create and describe answers.
    pub fn hold_eks_status(&self, hold: Duration) {
        self.shared.lock().rules.holds.eks = Some(hold);
    }

    /// EKS node groups created less than `hold` ago report `CREATING` (instead of the
    /// clusters' hold of [`Proxy::hold_eks_status`]).
    pub fn hold_eks_nodegroup_status(&self, hold: Duration) {
        self.shared.lock().rules.holds.eks_nodegroup = Some(hold);
    }

    /// Every held resource (see the `hold_*` methods) an answer has shown ready since it
    /// stopped being held, with how late that answer came: the tool's polling lateness.
    pub fn notices(&self) -> Vec<Notice> {
        self.shared.lock().creations.notices()
    }

    /// NAT gateways created less than `hold` ago report `pending` in
    /// `CreateNatGateway`/`DescribeNatGateways` answers.
    pub fn hold_ec2_nat_pending(&self, hold: Duration) {
        self.shared.lock().rules.holds.nat = Some(hold);
    }

    /// EC2's per-region quotas the strict rules enforce (AWS's defaults: 5 VPCs, the default
    /// VPC included, and 5 Elastic IPs); `GetServiceQuota` reports the same.
    pub fn set_ec2_quotas(&self, vpcs: usize, addresses: usize) {
        let mut state = self.shared.lock();
        state.ec2.vpcs = vpcs;
        state.ec2.addresses = addresses;
    }

    /// What `GetServiceQuota` reports for NAT gateways per zone (`L-FE5A380F`, default 5)
    /// and Running On-Demand Standard vCPUs (`L-1216C47A`, default 32); not enforced.
    pub fn set_ec2_plan_quotas(&self, nat_gateways_per_zone: usize, vcpus: usize) {
        let mut state = self.shared.lock();
        state.ec2.nat_gateways_per_zone = nat_gateways_per_zone;
        state.ec2.vcpus = vcpus;
    }

    /// EC2 eventual consistency: for `window` after a create, calls naming the new id answer
    /// `Invalid…ID.NotFound` and tag-filtered `Describe*` omit it (`None`: off, as moto).
    pub fn set_ec2_consistency(&self, window: Option<Duration>) {
        self.shared.lock().ec2.consistency = window;
    }

    /// NAT gateways created from now on report `failed` with this `failureCode` and
    /// `failureMessage` (`None`: they succeed again).
    pub fn fail_nat_gateways(&self, failure: Option<(&str, &str)>) {
        self.shared.lock().rules.holds.nat_failure =
            failure.map(|(code, message)| (code.into(), message.into()));
    }

    /// EKS node groups created from now on report `CREATE_FAILED` (once any status hold is
    /// over) with one `health.issues` entry of this code and message (`None`: they succeed).
    pub fn fail_nodegroups(&self, failure: Option<(&str, &str)>) {
        self.shared.lock().rules.holds.nodegroup_failure =
            failure.map(|(code, message)| (code.into(), message.into()));
    }

    /// Turns the strict rules (what AWS refuses and moto accepts, `strict/`) off or on.
    pub fn set_lenient(&self, lenient: bool) {
        self.shared.lock().lenient = lenient;
    }

    /// The networks (VPC, cluster security group) of the EKS clusters created through the
    /// proxy, shared: what the Kubernetes stand-in's network check reads.
    pub fn cluster_networks(&self) -> strict::eks::ClusterNetworks {
        self.shared.lock().cluster_networks.clone()
    }

    /// The access configuration and entries of the EKS clusters created through the proxy.
    pub fn cluster_access(&self) -> strict::eks::ClusterAccess {
        self.shared.lock().cluster_access.clone()
    }

    /// The add-ons and Pod Identity associations of the EKS clusters, served by the proxy
    /// (moto lacks them), shared: what the Kubernetes stand-in's AWS access check reads, and
    /// where tests hold or fail add-ons.
    pub fn pod_identities(&self) -> strict::pod_identity::PodIdentities {
        self.shared.lock().pod_identities.clone()
    }

    /// Removes every rule (latency, faults, holds, failures on demand). What was seen is
    /// kept, and what failed stays failed.
    pub fn clear(&self) {
        self.shared.lock().rules = Rules::default();
    }

    /// How many requests of `operation` were seen (forwarded or faulted).
    pub fn count(&self, operation: &str) -> usize {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|call| call.operation == operation)
            .count()
    }

    /// Every operation seen, in order.
    pub fn operations(&self) -> Vec<String> {
        self.shared
            .lock()
            .calls
            .iter()
            .map(|call| call.operation.clone())
            .collect()
    }

    /// Every request seen, in order, with region and service.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Operations seen that look mutating (see [`is_mutating`]).
    pub fn mutating_operations(&self) -> Vec<String> {
        self.operations()
            .into_iter()
            .filter(|operation| is_mutating(operation))
            .collect()
    }

    /// Forgets every request seen so far (counts and operations), keeping rules.
    pub fn reset_counts(&self) {
        self.shared.lock().calls.clear();
    }
}

/// Whether an operation name looks like a mutating AWS call: its name starts with Create,
/// Restore, Modify, Delete, Allocate, Associate, Attach, Authorize, Copy, Run or Put, or it
/// is a REST POST/PUT/PATCH/DELETE.
pub fn is_mutating(operation: &str) -> bool {
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
    PREFIXES.iter().any(|prefix| operation.starts_with(prefix))
        || REST.iter().any(|prefix| operation.starts_with(prefix))
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
                    let service = service_fn(move |request| handle(request, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
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
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("injected fault: drop connection")
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

/// One request: record it, answer with a fault or forward it (late, when there is latency),
/// then apply the holds to the answer.
async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let (region, service) = credential_scope(&parts.headers);
    let form = request_params(&parts.headers, parts.uri.query(), &body);
    let query_protocol = form.iter().any(|(key, _)| key == "Action");
    let operation = operation_name(&parts.method, &parts.uri, &parts.headers, &form);
    let seen_at = Instant::now();

    let (fault, latency, request_id) = record(&shared, &operation, &region, &service, &form);
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
    let lenient = shared.lock().lenient;
    let request = strict::Request {
        service: &service,
        operation: &operation,
        region: &region,
        form: &form,
        body: &body,
    };
    let ec2_request = Ec2Request {
        service: &service,
        region: &region,
        operation: &operation,
        form: &form,
        body: &body,
        request_id: &request_id,
    };
    if !lenient {
        let decided = strict::answer(&shared.lock().strict, &request);
        if let Some(answer) = decided {
            return Ok(answer);
        }
        let upstream = Upstream {
            shared: &shared,
            headers: &parts.headers,
        };
        if let Some(answer) = strict::answer_from_moto(&request, &upstream).await {
            return Ok(answer);
        }
        let (decided, quota) = {
            let state = shared.lock();
            (
                state.ec2.answer(&ec2_request, Instant::now()),
                state.ec2.quota(&ec2_request),
            )
        };
        if let Some(answer) = decided {
            return Ok(answer);
        }
        if let Some(quota) = quota {
            let describe = format!("Action={}&Version=2016-11-15", quota.describe);
            let held = match forward(&shared, &parts, Bytes::from(describe)).await {
                Ok((_, listed)) => quota.count(&listed),
                Err(message) => return Ok(text_response(StatusCode::BAD_GATEWAY, &message)),
            };
            if held >= quota.limit {
                return Ok(quota.refused(&request_id));
            }
        }
    }
    if let Some(id) = {
        let state = shared.lock();
        state
            .creations
            .rds_invisible(&state.rules.holds, &operation, &region, &form)
    } {
        return Ok(strict::query_error(
            StatusCode::NOT_FOUND,
            "DBInstanceNotFound",
            &format!("DBInstance {id} not found."),
        ));
    }
    let mut forwarded = body.clone();
    if !lenient && service == "rds" && operation == "RestoreDBInstanceFromDBSnapshot" {
        match check_restore(&shared, &parts, &region, &form).await {
            RestoreCheck::Refused(answer) => return Ok(answer),
            RestoreCheck::Instead(body) => forwarded = body,
            RestoreCheck::Forward => {}
        }
    }
    if service == "eks"
        && (operation.contains("/addons") || operation.contains("/pod-identity-associations"))
    {
        let identities = shared.lock().pod_identities.clone();
        let upstream = Upstream {
            shared: &shared,
            headers: &parts.headers,
        };
        let answer = identities
            .answer(&region, &operation, &form, &body, &upstream)
            .await;
        if let Some(answer) = answer {
            return Ok(answer);
        }
    }
    if service == "eks" && operation.contains("/access-entries") {
        let access = shared.lock().cluster_access.clone();
        if let Some(answer) = access.answer(&region, &operation, &body) {
            return Ok(answer);
        }
    }

    let conditional_create = service == "s3"
        && parts.method == hyper::Method::PUT
        && parts
            .headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|value| value == "*");
    let serialised = match conditional_create {
        true => Some(shared.conditional_creates.lock().await),
        false => None,
    };
    let upstream = match forward(&shared, &parts, forwarded).await {
        Ok(upstream) => upstream,
        Err(message) => return Ok(text_response(StatusCode::BAD_GATEWAY, &message)),
    };
    drop(serialised);
    let (upstream_parts, mut upstream_body) = upstream;
    if !lenient
        && upstream_parts.status.is_success()
        && let Some(answer) = strict::rewrite(&shared.lock().strict, &request, &upstream_body)
    {
        return Ok(answer);
    }
    if service == "eks" && upstream_parts.status.is_success() {
        let access = shared.lock().cluster_access.clone();
        if operation == "POST /clusters" {
            access.created(&region, &body);
            record_creator(&shared, &parts.headers, &region, &body, &access).await;
        }
        if let Some(reported) = access.reported(&region, &upstream_body) {
            upstream_body = Bytes::from(reported);
        }
    }
    if !lenient && service == "eks" && upstream_parts.status.is_success() {
        upstream_body = cluster_network(&shared, &operation, &region, upstream_body).await;
    }
    let answer_body = if upstream_parts.status.is_success() {
        let mut state = shared.lock();
        let upstream_body = match lenient {
            false => state
                .ec2
                .after(&ec2_request, &upstream_body, Instant::now())
                .unwrap_or(upstream_body),
            true => upstream_body,
        };
        let answer = Answer {
            operation: &operation,
            region: &region,
            form: &form,
            request_body: &body,
            body: &upstream_body,
            seen_at,
        };
        let state = &mut *state;
        state.creations.record(&state.rules.holds, &answer);
        state.creations.notice(&state.rules.holds, &answer);
        let held = state.creations.held(&state.rules.holds, &answer);
        let held = held.map_or(upstream_body.clone(), Bytes::from);
        match state.creations.failed(&answer, &held) {
            Some(failed) => Bytes::from(failed),
            None => held,
        }
    } else {
        upstream_body
    };

    let mut response = Response::builder().status(upstream_parts.status);
    if let Some(headers) = response.headers_mut() {
        copy_headers(&upstream_parts.headers, headers);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(answer_body.len()));
    }
    Ok(response
        .body(Full::new(answer_body))
        .unwrap_or_else(|_| text_response(StatusCode::BAD_GATEWAY, "cannot build response")))
}

/// Remember who created the cluster a `CreateCluster` request (`body`) names, as EKS does
/// to bootstrap its admin: moto's STS names the request's access key.
async fn record_creator(
    shared: &Shared,
    headers: &HeaderMap,
    region: &str,
    body: &[u8],
    access: &strict::eks::ClusterAccess,
) {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let (Some(name), Some(access_key)) = (request["name"].as_str(), access_key_of(authorization))
    else {
        return;
    };
    match caller_arn(&shared.client, &shared.upstream, access_key, region).await {
        Ok(arn) => access.set_creator(region, name, &canonical_arn(&arn)),
        Err(error) => eprintln!("proxy: cannot tell who created cluster `{name}`: {error}"),
    }
}

/// An EKS answer about a cluster as EKS gives it: with the cluster's security group, which
/// the proxy creates in moto when the cluster is created (see `strict::eks`).
async fn cluster_network(shared: &Shared, operation: &str, region: &str, body: Bytes) -> Bytes {
    let about_a_cluster = operation == "POST /clusters"
        || (operation.starts_with("GET /clusters/") && !operation.contains("/node-groups"));
    if !about_a_cluster {
        return body;
    }
    let networks = shared.lock().cluster_networks.clone();
    let upstream = strict::Moto {
        client: shared.client.clone(),
        endpoint: shared.upstream.clone(),
    };
    // In a task of its own: a caller that goes away must not leave the group half made.
    let making = tokio::spawn({
        let (networks, region, body) = (networks.clone(), region.to_string(), body.clone());
        async move { networks.ensure(&upstream, &region, &body).await }
    });
    if let Ok(Err(error)) = making.await {
        eprintln!("proxy: cannot create the cluster's security group: {error}");
    }
    networks.reported(region, &body).map_or(body, Bytes::from)
}

/// What the strict rules make of a `RestoreDBInstanceFromDBSnapshot`.
enum RestoreCheck {
    /// AWS refuses it: this answer.
    Refused(Response<Full<Bytes>>),
    /// It names a canned snapshot: forward this body instead, naming the moto snapshot it
    /// stands for.
    Instead(Bytes),
    /// Forward it as it is.
    Forward,
}

/// Whether RDS restores the snapshot a `RestoreDBInstanceFromDBSnapshot` names into the
/// class it asks for: the snapshot's engine and version come from the canned snapshots or
/// from moto (asked with the request's own credentials, so in its region).
async fn check_restore(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    region: &str,
    form: &[(String, String)],
) -> RestoreCheck {
    let Some(reference) = form_get(form, "DBSnapshotIdentifier") else {
        return RestoreCheck::Forward;
    };
    let canned = shared.lock().strict.rds.canned(region, reference).cloned();
    let (engine, version) = match &canned {
        Some(snapshot) => ("postgres".to_string(), snapshot.engine_version.clone()),
        None => {
            let name = reference
                .split_once(":snapshot:")
                .map_or(reference, |(_, name)| name);
            let lookup = encode_form(&[
                ("Action".into(), "DescribeDBSnapshots".into()),
                ("Version".into(), "2014-10-31".into()),
                ("DBSnapshotIdentifier".into(), name.into()),
            ]);
            let Ok((head, body)) = forward(shared, parts, Bytes::from(lookup)).await else {
                return RestoreCheck::Forward;
            };
            let text = String::from_utf8_lossy(&body);
            let (Some(engine), Some(version)) =
                (xml_text(&text, "Engine"), xml_text(&text, "EngineVersion"))
            else {
                return RestoreCheck::Forward;
            };
            if !head.status.is_success() {
                return RestoreCheck::Forward;
            }
            (engine, version)
        }
    };
    let class = form_get(form, "DBInstanceClass");
    let multi_az = form_get(form, "MultiAZ") == Some("true");
    if let Some(answer) = shared
        .lock()
        .strict
        .rds
        .refuse_restore(&engine, &version, class, multi_az)
    {
        return RestoreCheck::Refused(answer);
    }
    let Some(canned) = canned else {
        return RestoreCheck::Forward;
    };
    let instead: Vec<(String, String)> = form
        .iter()
        .map(|(key, value)| {
            if key == "DBSnapshotIdentifier" {
                (key.clone(), canned.stands_for.clone())
            } else {
                (key.clone(), value.clone())
            }
        })
        .collect();
    RestoreCheck::Instead(Bytes::from(encode_form(&instead)))
}

/// What moto holds, for the strict rules that depend on it (Route 53's checks of a change
/// batch against the zone's record sets): GET requests with the caller's credentials.
pub(super) struct Upstream<'a> {
    shared: &'a Shared,
    headers: &'a HeaderMap,
}

impl Upstream<'_> {
    /// Moto's answer to `GET path_and_query` (its body), or `None` when it did not answer 2xx.
    pub(super) async fn get(&self, path_and_query: &str) -> Option<Bytes> {
        let uri: Uri = format!("{}{}", self.shared.upstream, path_and_query)
            .parse()
            .ok()?;
        let mut request = Request::builder().method(hyper::Method::GET).uri(uri);
        if let Some(headers) = request.headers_mut() {
            for name in [
                header::AUTHORIZATION.as_str(),
                "x-amz-date",
                "x-amz-security-token",
            ] {
                if let Some(value) = self.headers.get(name) {
                    headers.insert(name.parse::<header::HeaderName>().ok()?, value.clone());
                }
            }
        }
        let request = request.body(Full::new(Bytes::new())).ok()?;
        let response = self.shared.client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(response.into_body().collect().await.ok()?.to_bytes())
    }
}

/// Record the call and pick its fault: (fault, latency, request id).
fn record(
    shared: &Shared,
    operation: &str,
    region: &str,
    service: &str,
    params: &[(String, String)],
) -> (Option<Fault>, Duration, String) {
    let mut state = shared.lock();
    state.request_sequence += 1;
    let request_id = format!("proxy-{:012}", state.request_sequence);
    let mut fault = None;
    for rule in &mut state.rules.faults {
        if rule.remaining > 0 && operation_matches(&rule.operation, operation) {
            rule.remaining -= 1;
            fault = Some(rule.kind);
            break;
        }
    }
    state.calls.push(Call {
        operation: operation.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        faulted: fault.is_some(),
        params: params.to_vec(),
        at: SystemTime::now(),
    });
    (fault, state.rules.latency, request_id)
}

/// Send the request on to moto: its answer's head and body, or why not.
async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(hyper::http::response::Parts, Bytes), String> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let uri: Uri = format!("{}{}", shared.upstream, path_and_query)
        .parse()
        .map_err(|error| format!("bad uri: {error}"))?;
    let mut request = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(headers) = request.headers_mut() {
        copy_headers(&parts.headers, headers);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|error| format!("bad request: {error}"))?;
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|error| format!("upstream error: {error}"))?;
    let (response_parts, response_body) = response.into_parts();
    let response_body = response_body
        .collect()
        .await
        .map_err(|error| format!("upstream body: {error}"))?
        .to_bytes();
    Ok((response_parts, response_body))
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn text_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_string())));
    *response.status_mut() = status;
    response
}

fn operation_matches(rule: &str, operation: &str) -> bool {
    match rule.strip_suffix('*') {
        Some(prefix) => operation.starts_with(prefix),
        None => rule == operation,
    }
}
