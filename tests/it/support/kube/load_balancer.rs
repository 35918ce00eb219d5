//! The load balancer stand-in: what AWS's cloud provider does for a Service of type
//! `LoadBalancer` (a Classic Load Balancer), as far as the binary can tell (reviews B4,
//! D13; "what we cannot test here", item 9):
//!
//! - **one listener per Service port, nothing else**: each port of the Service is served on
//!   `127.0.0.1:PORT` (the test picks free ports and templates them in); any other port
//!   refuses connections;
//! - **HTTPS only with a certificate**: with the annotation
//!   `service.beta.kubernetes.io/aws-load-balancer-ssl-cert`, the ports that
//!   `…-ssl-ports` names (by name or number; every port when it is absent or `*`, as AWS
//!   does) speak TLS with that certificate, the others plain HTTP. A certificate ARN the
//!   testbed's ACM does not hold makes no load balancer at all (AWS: `CertificateNotFound`
//!   when creating the listener), so the Service never gets an address;
//! - **a name that resolves late**: the Service gets its hostname at once
//!   (`NAME-NAMESPACE.elb.test`, which no real resolver knows), but the name is published,
//!   as a line of a hosts-format file, only [`LoadBalancerSettings::publish_after`] later,
//!   as an ELB's DNS name takes a minute or two to resolve. The binary finds it there only
//!   when it is told to (`--input resolve_hosts_file=…`).
//!
//! Behind every listener is the application of the Service's namespace
//! ([`super::application`]).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Api;
use super::application::answer;

/// The annotation naming the load balancer's certificate (an ACM or IAM ARN).
pub const SSL_CERT: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert";
/// The annotation naming the ports that use it (names or numbers, comma-separated).
pub const SSL_PORTS: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports";

/// A certificate the testbed's ACM holds, as a load balancer serves it: PEM certificate,
/// chain and key.
#[derive(Clone, Debug)]
pub struct ServedCertificate {
    /// The certificate, then its chain (PEM).
    pub chain: Vec<u8>,
    /// The private key (PEM).
    pub key: Vec<u8>,
}

/// What the stand-in knows and how slow it is.
#[derive(Clone, Debug)]
pub struct LoadBalancerSettings {
    /// The certificates ACM holds, by ARN.
    pub certificates: BTreeMap<String, ServedCertificate>,
    /// Where published names go (`127.0.0.1 NAME` lines).
    pub hosts_file: PathBuf,
    /// How long after the Service gets its hostname the name resolves.
    pub publish_after: Duration,
}

/// The hostname the stand-in gives the Service `namespace/name`.
pub fn hostname(namespace: &str, name: &str) -> String {
    format!("{name}-{namespace}.elb.test")
}

/// What one listener speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Protocol {
    Http,
    /// TLS with the certificate of this ARN.
    Https(String),
}

/// A listener on one port, closed on drop.
struct Listener {
    protocol: Protocol,
    port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The stand-in's state: settings, listeners by Service and port, when each name was
/// first given.
pub(super) struct LoadBalancers {
    settings: Mutex<LoadBalancerSettings>,
    listeners: Mutex<BTreeMap<(String, String, u16), Listener>>,
    given: Mutex<BTreeMap<String, Instant>>,
}

impl LoadBalancers {
    pub(super) fn new(settings: LoadBalancerSettings) -> Self {
        Self {
            settings: Mutex::new(settings),
            listeners: Mutex::new(BTreeMap::new()),
            given: Mutex::new(BTreeMap::new()),
        }
    }

    pub(super) fn configure(&self, change: impl FnOnce(&mut LoadBalancerSettings)) {
        change(&mut lock(&self.settings));
    }

    pub(super) fn settings(&self) -> LoadBalancerSettings {
        lock(&self.settings).clone()
    }

    /// Closes every listener.
    pub(super) fn stop(&self) {
        lock(&self.listeners).clear();
    }

    /// One pass: every Service of type `LoadBalancer` gets its listeners and hostname;
    /// names given long enough ago are published; listeners of Services gone are closed.
    pub(super) fn pass(&self, api: &Api) {
        let timeout = Duration::from_secs(10);
        let Ok((200, body)) = api.request("GET", "/api/v1/services", None, None, timeout) else {
            return;
        };
        let Ok(list) = serde_json::from_str::<serde_json::Value>(&body) else {
            return;
        };
        let settings = self.settings();
        let mut wanted = BTreeMap::new();
        for service in list["items"].as_array().into_iter().flatten() {
            if service["spec"]["type"] != "LoadBalancer" {
                continue;
            }
            let (Some(namespace), Some(name)) = (
                service["metadata"]["namespace"].as_str(),
                service["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let Some(ports) = listeners_of(service, &settings) else {
                // A certificate ACM does not hold: AWS makes no load balancer.
                continue;
            };
            for (port, protocol) in ports {
                wanted.insert((namespace.to_string(), name.to_string(), port), protocol);
            }
            let hostname = hostname(namespace, name);
            lock(&self.given)
                .entry(hostname.clone())
                .or_insert_with(Instant::now);
            if !service["status"]["loadBalancer"]["ingress"].is_array() {
                let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}});
                let _ = api.request(
                    "PATCH",
                    &format!("/api/v1/namespaces/{namespace}/services/{name}/status"),
                    Some("application/merge-patch+json"),
                    Some(patch.to_string().as_bytes()),
                    timeout,
                );
            }
        }
        self.reconcile(api, &settings, wanted);
        self.publish(&settings);
    }

    fn reconcile(
        &self,
        api: &Api,
        settings: &LoadBalancerSettings,
        wanted: BTreeMap<(String, String, u16), Protocol>,
    ) {
        let mut listeners = lock(&self.listeners);
        listeners.retain(|key, listener| wanted.get(key) == Some(&listener.protocol));
        for (key, protocol) in wanted {
            if listeners.contains_key(&key) {
                continue;
            }
            if let Some(listener) = listen(api, &key.0, key.2, &protocol, settings) {
                listeners.insert(key, listener);
            }
        }
    }

    /// Writes every name given at least `publish_after` ago to the hosts file.
    fn publish(&self, settings: &LoadBalancerSettings) {
        let given = lock(&self.given);
        let mut text = String::new();
        for (name, since) in given.iter() {
            if since.elapsed() >= settings.publish_after {
                text.push_str(&format!("127.0.0.1 {name}\n"));
            }
        }
        let current = std::fs::read_to_string(&settings.hosts_file).unwrap_or_default();
        if current != text {
            let partial = settings.hosts_file.with_extension("partial");
            if std::fs::write(&partial, &text).is_ok() {
                let _ = std::fs::rename(&partial, &settings.hosts_file);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The listeners a Service asks for, by port; `None` when its certificate is unknown.
fn listeners_of(
    service: &serde_json::Value,
    settings: &LoadBalancerSettings,
) -> Option<Vec<(u16, Protocol)>> {
    let annotations = &service["metadata"]["annotations"];
    let certificate = annotations[SSL_CERT]
        .as_str()
        .map(str::trim)
        .filter(|arn| !arn.is_empty());
    if let Some(arn) = certificate
        && !settings.certificates.contains_key(arn)
    {
        return None;
    }
    let ssl_ports: Option<Vec<String>> = annotations[SSL_PORTS].as_str().map(|list| {
        list.split(',')
            .map(|port| port.trim().to_string())
            .filter(|port| !port.is_empty())
            .collect()
    });
    let mut ports = Vec::new();
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        let Some(number) = port["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
            continue;
        };
        if port["protocol"].as_str().unwrap_or("TCP") != "TCP" {
            continue;
        }
        let name = port["name"].as_str().unwrap_or_default();
        let secure = certificate.is_some()
            && ssl_ports.as_ref().is_none_or(|list| {
                list.iter()
                    .any(|entry| entry == "*" || entry == name || *entry == number.to_string())
            });
        let protocol = match certificate {
            Some(arn) if secure => Protocol::Https(arn.to_string()),
            _ => Protocol::Http,
        };
        ports.push((number, protocol));
    }
    Some(ports)
}

/// A TLS server configuration serving `certificate`.
fn tls_config(certificate: &ServedCertificate) -> Option<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certificate.chain)
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(&certificate.key).ok()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .ok()?;
    Some(Arc::new(config))
}

/// Listen on `port` for the application of `namespace`; `None` if the port is taken.
fn listen(
    api: &Api,
    namespace: &str,
    port: u16,
    protocol: &Protocol,
    settings: &LoadBalancerSettings,
) -> Option<Listener> {
    let tls = match protocol {
        Protocol::Http => None,
        Protocol::Https(arn) => Some(tls_config(settings.certificates.get(arn)?)?),
    };
    let socket = TcpListener::bind(("127.0.0.1", port)).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::spawn({
        let (api, namespace, stop) = (api.clone(), namespace.to_string(), stop.clone());
        move || {
            for stream in socket.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                match &tls {
                    None => answer(stream, &api, &namespace),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                            continue;
                        };
                        let mut stream = rustls::StreamOwned::new(connection, stream);
                        answer(&mut stream, &api, &namespace);
                        stream.conn.send_close_notify();
                        let _ = std::io::Write::flush(&mut stream);
                    }
                }
            }
        }
    });
    Some(Listener {
        protocol: protocol.clone(),
        port,
        stop,
        handle: Some(handle),
    })
}
