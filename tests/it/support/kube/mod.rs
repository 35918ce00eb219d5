//! A real Kubernetes control plane for the tests: etcd, kube-apiserver and
//! kube-controller-manager (1.20.2, built from Debian's packages by `.ci/setup-kubernetes`),
//! on free loopback ports, plus a "kubelet stand-in" thread.
//!
//! There is no scheduler and no kubelet: the controller-manager creates ReplicaSets, Pods and
//! Job Pods, and the stand-in marks Pods Running/Ready (or Job Pods Succeeded) through the
//! `status` subresource, so Deployments become Available and Jobs complete. With
//! [`KubeletMode::NeverReady`] Pods go Running but never Ready, so rollouts never finish.
//!
//! Everything the control plane needs (CA, serving certificate, service-account keys, a static
//! `system:masters` token, a kubeconfig) is generated with the `openssl` CLI in a temporary
//! directory; the HTTP calls of the stand-in and of [`KubeTestbed::request`] go through `curl`.
//! Child processes are killed on drop and, through a watchdog per child, also when the test
//! process dies (even by SIGKILL).
//!
//! With an [`EksAuthenticator`] ([`KubeTestbed::start_authenticating`]) the API server
//! authenticates EKS tokens as EKS does, admitting only the cluster's creator and its admin
//! access entries; the harness keeps its static token.
//!
//! This file owns [`KubeTestbed`] and its API calls; [`control_plane`] starts the processes,
//! [`authenticator`] is EKS's token webhook,
//! [`kubelet`] is the stand-in thread, [`load_balancer`] stands in for AWS's load balancers
//! (a listener per Service port, TLS with an ACM certificate, a name that resolves late) and
//! [`application`] is what answers behind them.
//!
//! Kubernetes 1.20 limits: no policy/v1, autoscaling/v2, batch/v1 CronJob,
//! discovery.k8s.io/v1, /openapi/v3; server-side apply of a Service needs `protocol:` on
//! each port.

mod application;
mod authenticator;
mod control_plane;
mod kubelet;
mod load_balancer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use authenticator::EksAuthenticator;
use control_plane::ControlPlane;
pub use kubelet::{AwsAccessCheck, KubeletTiming, NetworkCheck, PodChecks, Reach};
use load_balancer::LoadBalancers;
pub use load_balancer::{
    LoadBalancerSettings, SSL_CERT, SSL_PORTS, ServedCertificate,
    hostname as load_balancer_hostname,
};

/// What the kubelet stand-in does with the Pods the controllers create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeletMode {
    /// Pods become Running with every container ready; Job Pods become Succeeded.
    Ready,
    /// Pods become Running but never Ready (like a failing readiness probe); Job Pods stay
    /// Running. Rollouts and Jobs never complete.
    NeverReady,
}

impl KubeletMode {
    fn to_u8(self) -> u8 {
        match self {
            KubeletMode::Ready => 0,
            KubeletMode::NeverReady => 1,
        }
    }

    fn from_u8(value: u8) -> KubeletMode {
        match value {
            0 => KubeletMode::Ready,
            _ => KubeletMode::NeverReady,
        }
    }
}

/// A running control plane, stopped (every child killed and reaped) on drop.
pub struct KubeTestbed {
    /// `https://127.0.0.1:PORT` of kube-apiserver.
    pub server: String,
    /// PEM file of the CA that signed the apiserver's serving certificate.
    pub ca_file: PathBuf,
    /// A kubeconfig (server, embedded CA data, token; context namespace `default`).
    pub kubeconfig: PathBuf,
    control_plane: ControlPlane,
    mode: Arc<AtomicU8>,
    checks: Arc<Mutex<PodChecks>>,
    timing: Arc<Mutex<KubeletTiming>>,
    balancers: Arc<LoadBalancers>,
    stop: Arc<AtomicBool>,
    kubelet: Option<JoinHandle<()>>,
    /// EKS's authenticator, when the API server authenticates AWS principals.
    authenticator: Option<EksAuthenticator>,
    /// Holds the load balancers' hosts file.
    _names: tempfile::TempDir,
}

/// Everything needed to talk to the apiserver: its address, the admin token and the CA
/// that signed its serving certificate. Its clones share one client and so one pool of
/// kept-alive connections, as a kubelet keeps its connection to the API server: a request
/// costs the API server's time, not a process and a TLS handshake of its own.
#[derive(Clone)]
struct Api {
    server: String,
    token: String,
    ca_file: PathBuf,
    client: Arc<OnceLock<reqwest::blocking::Client>>,
}

impl Api {
    fn new(token: String, ca_file: PathBuf) -> Self {
        Self {
            server: String::new(),
            token,
            ca_file,
            client: Arc::new(OnceLock::new()),
        }
    }

    /// The shared client, made on the first request (the CA is written by then).
    fn client(&self) -> std::io::Result<&reqwest::blocking::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let pem = std::fs::read(&self.ca_file)?;
        let ca = reqwest::Certificate::from_pem(&pem).map_err(std::io::Error::other)?;
        let client = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(self.client.get_or_init(|| client))
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(std::io::Error::other)?;
        let mut request = self
            .client()?
            .request(method.clone(), format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .timeout(timeout.max(Duration::from_secs(1)));
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request
            .send()
            .map_err(|error| std::io::Error::other(format!("{method} {path}: {error}")))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .map_err(|error| std::io::Error::other(format!("{method} {path}: {error}")))?;
        Ok((status, body))
    }
}

impl KubeTestbed {
    /// Starts a control plane whose kubelet stand-in makes Pods Ready (see
    /// [`KubeletMode::Ready`]).
    pub fn start() -> KubeTestbed {
        KubeTestbed::start_with(KubeletMode::Ready)
    }

    /// Starts the control plane (see [`ControlPlane::start`]) and the kubelet stand-in in
    /// `mode`. Takes a few seconds.
    pub fn start_with(mode: KubeletMode) -> KubeTestbed {
        KubeTestbed::start_behind(mode, None)
    }

    /// Starts a control plane that, like EKS, lets AWS principals in through `authenticator`
    /// (EKS tokens; see [`EksAuthenticator`]) besides the harness's static admin token.
    pub fn start_authenticating(authenticator: EksAuthenticator) -> KubeTestbed {
        KubeTestbed::start_behind(KubeletMode::Ready, Some(authenticator))
    }

    fn start_behind(mode: KubeletMode, authenticator: Option<EksAuthenticator>) -> KubeTestbed {
        let webhook = authenticator
            .as_ref()
            .map(|authenticator| authenticator.url.as_str());
        let control_plane = ControlPlane::start(webhook);
        let api = control_plane.api.clone();
        let mode = Arc::new(AtomicU8::new(mode.to_u8()));
        let stop = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(Mutex::new(PodChecks::default()));
        let timing = Arc::new(Mutex::new(KubeletTiming::default()));
        let names = tempfile::tempdir().expect("a folder for the load balancers' names");
        let balancers = Arc::new(LoadBalancers::new(LoadBalancerSettings {
            certificates: std::collections::BTreeMap::new(),
            hosts_file: names.path().join("hosts"),
            publish_after: Duration::from_secs(2),
        }));
        let kubelet = std::thread::Builder::new()
            .name("kubelet-stand-in".into())
            .spawn({
                let (api, mode, stop) = (api.clone(), mode.clone(), stop.clone());
                let (checks, balancers) = (checks.clone(), balancers.clone());
                let timing = timing.clone();
                move || kubelet::run(&api, &mode, &checks, &balancers, &timing, &stop)
            })
            .expect("spawn kubelet stand-in thread");
        KubeTestbed {
            server: api.server.clone(),
            ca_file: api.ca_file.clone(),
            kubeconfig: control_plane.kubeconfig.clone(),
            control_plane,
            mode,
            checks,
            timing,
            balancers,
            stop,
            kubelet: Some(kubelet),
            authenticator,
            _names: names,
        }
    }

    /// Pods stay `Pending` for `startup` after the kubelet stand-in first sees them, as
    /// image pulls and container starts take (zero: they start at its next pass).
    pub fn set_pod_startup(&self, startup: Duration) {
        self.timing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .startup = startup;
    }

    /// `namespace/pod` -> when the kubelet stand-in made each Pod Ready (a Job's Pod:
    /// Succeeded).
    pub fn pods_ready(&self) -> std::collections::BTreeMap<String, std::time::SystemTime> {
        self.timing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .clone()
    }

    /// `namespace/pod` -> when the kubelet stand-in first saw it (for the benchmark).
    pub fn pods_seen(&self) -> std::collections::BTreeMap<String, std::time::SystemTime> {
        self.timing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .clone()
    }

    /// Changes what the load balancer stand-in knows (ACM's certificates) and how slowly
    /// names resolve, from its next pass on.
    pub fn configure_load_balancers(&self, change: impl FnOnce(&mut LoadBalancerSettings)) {
        self.balancers.configure(change);
    }

    /// EKS's authenticator, when the testbed was started with one.
    pub fn authenticator(&self) -> Option<&EksAuthenticator> {
        self.authenticator.as_ref()
    }

    /// Where EKS would say the cluster is: this API server and its CA (PEM).
    pub fn served_at(&self) -> super::strict::eks::ServedAt {
        super::strict::eks::ServedAt {
            server: self.server.clone(),
            ca_pem: std::fs::read(&self.ca_file).expect("read the testbed's CA"),
        }
    }

    /// The hosts-format file where the load balancer stand-in publishes names.
    pub fn load_balancer_hosts_file(&self) -> PathBuf {
        self.balancers.settings().hosts_file
    }

    /// Changes what the kubelet stand-in does from now on (e.g. `NeverReady` then `Ready`
    /// to let a stuck rollout recover).
    pub fn set_kubelet_mode(&self, mode: KubeletMode) {
        self.mode.store(mode.to_u8(), Ordering::SeqCst);
    }

    /// What the kubelet stand-in checks before it starts containers from now on (strict
    /// references, the network to the database).
    pub fn set_pod_checks(&self, checks: PodChecks) {
        *self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = checks;
    }

    /// The kubelet stand-in's current mode.
    pub fn kubelet_mode(&self) -> KubeletMode {
        KubeletMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// One HTTP call to the apiserver with the admin token (via `curl`): `path` starts with
    /// `/`, e.g. `/apis/apps/v1/namespaces/ns/deployments/web`. Returns the status and body.
    /// Panics if the request cannot be made at all.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        self.api()
            .request(method, path, content_type, body, Duration::from_secs(30))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// `GET path` as JSON; `None` on 404, panics on any other non-200 answer.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = self.request("GET", path, None, None);
        match status {
            200 => Some(serde_json::from_str(&body).expect("apiserver answered JSON")),
            404 => None,
            _ => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Server-side apply of one object (YAML or JSON) at `path` (the object's own URL,
    /// e.g. `/api/v1/namespaces/ns/services/web`) with `fieldManager=rebuild&force=true`.
    /// Returns the applied object; panics unless the apiserver answers 200 or 201.
    pub fn apply(&self, path: &str, manifest: &str) -> serde_json::Value {
        let (status, body) = self.request(
            "PATCH",
            &format!("{path}?fieldManager=rebuild&force=true"),
            Some("application/apply-patch+yaml"),
            Some(manifest.as_bytes()),
        );
        assert!(
            status == 200 || status == 201,
            "server-side apply of {path}: {status} {body}"
        );
        serde_json::from_str(&body).expect("apiserver answered JSON")
    }

    /// Polls `check` every 200 ms until it returns `Some`, panicking with `what` and the
    /// control plane's logs after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; testbed logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last 20 KB of each component's log, for debugging.
    pub fn logs(&self) -> String {
        self.control_plane.logs()
    }

    fn api(&self) -> Api {
        self.control_plane.api.clone()
    }
}

impl Drop for KubeTestbed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(kubelet) = self.kubelet.take() {
            let _ = kubelet.join();
        }
        self.balancers.stop();
        self.control_plane.stop();
    }
}
