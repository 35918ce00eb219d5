//! EKS's authenticator for the testbed's API server: a TokenReview webhook
//! (`--authentication-token-webhook-config-file`, `authentication.k8s.io/v1beta1` as
//! kube-apiserver 1.20 sends by default) that does what aws-iam-authenticator does on EKS.
//! It reads the `k8s-aws-v1.` token's presigned STS `GetCallerIdentity` URL and checks it
//! ([`PresignedCall::parse`]: STS host, action, `x-k8s-aws-id` signed, `X-Amz-Expires`, at
//! most 15 minutes old), verifies its signature for one of the clusters the proxy points at
//! this testbed (which proves `x-k8s-aws-id` names that cluster; STS's check, made here
//! because moto checks no signature, with the secrets the test handed out), asks moto's STS
//! who the caller is, and lets in only whom EKS would ([`Access::admits`]: the creator when
//! bootstrapped, or an access entry with `AmazonEKSClusterAdminPolicy`), in group
//! `system:masters`. Anyone else gets `authenticated: false`, so the API server answers 401.
//!
//! The harness's own static admin token (`--token-auth-file`) is checked before the webhook
//! and never reaches it. The server runs on its own thread with its own tokio runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::super::strict::eks::{Access, ClusterAccess};
use super::super::sts::{MAX_AGE, PresignedCall, canonical_arn, replayed_caller};

/// One token the authenticator judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The caller's principal (an assumed role as its role ARN), when it got that far.
    pub principal: Option<String>,
    /// Whether it was let in as cluster admin.
    pub admitted: bool,
    /// Why not, when it was not.
    pub reason: String,
}

struct State {
    /// access key → secret: what STS knows of the credentials the test handed out.
    secrets: HashMap<String, String>,
    max_age: Duration,
    decisions: Vec<Decision>,
}

struct Shared {
    state: Mutex<State>,
    moto: String,
    access: ClusterAccess,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The running webhook; shut down (and its thread joined) on drop.
pub struct EksAuthenticator {
    /// `http://127.0.0.1:PORT/authenticate`, for the API server's webhook kubeconfig.
    pub url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EksAuthenticator {
    /// Starts the webhook, asking `moto` (its endpoint) who callers are and `access` whom
    /// the clusters admit. It knows the test harness's static credentials (`testing`).
    pub fn start(moto: &str, access: ClusterAccess) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind the EKS authenticator on 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("set the authenticator's listener non-blocking");
        let port = listener.local_addr().expect("authenticator address").port();
        let (shutdown, mut shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
        let (ready, ready_receiver) = std::sync::mpsc::channel::<Arc<Shared>>();
        let moto = moto.trim_end_matches('/').to_string();
        let thread = std::thread::Builder::new()
            .name(format!("eks-authenticator-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("authenticator tokio runtime");
                runtime.block_on(async move {
                    let shared = Arc::new(Shared {
                        state: Mutex::new(State {
                            secrets: HashMap::from([("testing".into(), "testing".into())]),
                            max_age: MAX_AGE,
                            decisions: Vec::new(),
                        }),
                        moto,
                        access,
                        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
                    });
                    let _ = ready.send(shared.clone());
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("authenticator listener into tokio");
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_receiver => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let shared = shared.clone();
                                tokio::spawn(async move {
                                    let service = service_fn(move |request| {
                                        handle(request, shared.clone())
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .expect("spawn the authenticator thread");
        let shared = ready_receiver.recv().expect("authenticator thread started");
        Self {
            url: format!("http://127.0.0.1:{port}/authenticate"),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// STS knows these credentials from now on (e.g. an `AssumeRole` answer's), so their
    /// tokens' signatures can be verified.
    pub fn know_credentials(&self, access_key: &str, secret: &str) {
        self.shared
            .lock()
            .secrets
            .insert(access_key.to_string(), secret.to_string());
    }

    /// How old a token may be (EKS: 15 minutes; shorter to see refusals of old tokens).
    pub fn set_max_age(&self, max_age: Duration) {
        self.shared.lock().max_age = max_age;
    }

    /// Every token judged so far, in order.
    pub fn decisions(&self) -> Vec<Decision> {
        self.shared.lock().decisions.clone()
    }
}

impl Drop for EksAuthenticator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One TokenReview: the review back, `status.authenticated` and the user, or why not.
async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let body = request.into_body().collect().await?.to_bytes();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let (principal, judged) = judge(&shared, token).await;
    let status = match &judged {
        Ok((username, groups)) => serde_json::json!({
            "authenticated": true,
            "user": {"username": username, "uid": username, "groups": groups},
        }),
        Err(reason) => serde_json::json!({"authenticated": false, "error": reason}),
    };
    shared.lock().decisions.push(Decision {
        principal,
        admitted: judged.as_ref().is_ok_and(|(_, groups)| !groups.is_empty()),
        reason: judged.err().unwrap_or_default(),
    });
    let answer = serde_json::json!({
        "apiVersion": review["apiVersion"].as_str().unwrap_or("authentication.k8s.io/v1beta1"),
        "kind": "TokenReview",
        "status": status,
    });
    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// What EKS makes of `token`: the caller's principal (when known), and its user name and
/// groups, or why it is refused.
async fn judge(
    shared: &Shared,
    token: &str,
) -> (Option<String>, Result<(String, Vec<String>), String>) {
    let (secrets, max_age) = {
        let state = shared.lock();
        (state.secrets.clone(), state.max_age)
    };
    let call = match PresignedCall::parse(token, SystemTime::now(), max_age) {
        Ok(call) => call,
        Err(reason) => return (None, Err(reason)),
    };
    let Some(secret) = secrets.get(&call.access_key) else {
        return (
            None,
            Err(
                "InvalidClientTokenId: the security token included in the request is invalid"
                    .into(),
            ),
        );
    };
    let clusters = shared.access.served();
    let Some((_, name, access)) = clusters
        .into_iter()
        .find(|(_, name, _)| call.verify(secret, name))
    else {
        return (
            None,
            Err(
                "SignatureDoesNotMatch: the token was not signed for this cluster (x-k8s-aws-id)"
                    .into(),
            ),
        );
    };
    let arn = match replayed_caller(&shared.client, &shared.moto, &call).await {
        Ok(arn) => arn,
        Err(reason) => return (None, Err(reason)),
    };
    let principal = canonical_arn(&arn);
    let verdict = verdict(&access, &name, &arn, &principal);
    (Some(principal), verdict)
}

/// EKS's answer for `principal` (whose session is `arn`) on the cluster `name`: admins in
/// `system:masters`; an access entry without the admin policy authenticates with no group
/// (RBAC then refuses it, 403); anyone else is not authenticated (401).
fn verdict(
    access: &Access,
    name: &str,
    arn: &str,
    principal: &str,
) -> Result<(String, Vec<String>), String> {
    if access.admits(principal) {
        return Ok((arn.to_string(), vec!["system:masters".to_string()]));
    }
    if access.authentication_mode != "CONFIG_MAP" && access.entries.contains_key(principal) {
        return Ok((arn.to_string(), Vec::new()));
    }
    Err(format!(
        "ARN is not mapped: {principal} has no access entry on cluster `{name}` and did not create it"
    ))
}
