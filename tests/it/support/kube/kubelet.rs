//! The kubelet stand-in: there is no scheduler and no kubelet, so a thread moves the Pods
//! the controllers create along through the `status` subresource (Running and Ready, or
//! Running and never Ready, Job Pods Succeeded), and runs the load balancer stand-in's
//! passes (`load_balancer.rs`) in the same loop.
//!
//! Like a kubelet, it starts no container whose referenced ConfigMap or Secret is missing
//! (the Pod waits in `CreateContainerConfigError`; with strict references, `optional: true`
//! references count as required too). With a network check ([`PodChecks::network`]), a
//! container whose configuration names a database it cannot reach behaves as a connection
//! timeout makes it behave: a Job's Pod fails, any other Pod runs but never turns Ready.
//! With an AWS access check ([`PodChecks::aws_access`]), a container that calls AWS (its
//! environment has `AWS_REGION`, directly or from a ConfigMap) runs only when its service
//! account gets AWS credentials, as EKS Pod Identity gives them: otherwise it exits as an
//! application whose AWS calls are denied exits, a Job's Pod fails and any other Pod stays
//! in `CrashLoopBackOff`, never Ready, with the reason in its container status.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;

use super::load_balancer::LoadBalancers;
use super::{Api, KubeletMode};

/// Whether a Pod's configuration lets it reach what it talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Its configuration names no database.
    NoDatabase,
    /// It names a database the network lets it reach.
    Reachable,
    /// It names a database the network does not let it reach: why, as a client logs it.
    Unreachable(String),
}

/// Decides [`Reach`] from every value of a container's environment.
pub type NetworkCheck = Arc<dyn Fn(&[String]) -> Reach + Send + Sync>;

/// Whether the Pods of a service account (namespace, name) get AWS credentials: `Err`
/// says why not, as the application's AWS SDK would log it.
pub type AwsAccessCheck = Arc<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// What the stand-in checks before it starts a container.
#[derive(Clone, Default)]
pub struct PodChecks {
    /// `optional: true` ConfigMap and Secret references count as required.
    pub strict_references: bool,
    /// Whether the container reaches the database its configuration names.
    pub network: Option<NetworkCheck>,
    /// Whether a container that calls AWS gets credentials for its service account.
    pub aws_access: Option<AwsAccessCheck>,
}

/// How long Pods take to start, and when each became ready (for the benchmark).
#[derive(Default)]
pub struct KubeletTiming {
    /// A Pod stays `Pending` this long after the stand-in first sees it (image pull and
    /// container start); the stand-in then also looks at Pods every 20 ms instead of
    /// every 300 ms, and at the moment a startup is about to end, so its own pace does not
    /// stretch the waits.
    pub startup: Duration,
    /// `namespace/pod` -> when the stand-in made it Ready (or its Job Pod Succeeded).
    pub ready: BTreeMap<String, SystemTime>,
    /// `namespace/pod` -> when the stand-in first saw it (its startup counts from then).
    pub seen: BTreeMap<String, SystemTime>,
}

/// Why a Pod's containers do not run as they should.
enum Blocked {
    /// A referenced ConfigMap, Secret or key is missing: the container is never created.
    Config(String),
    /// The database named in its configuration cannot be reached.
    Network(String),
    /// It calls AWS and gets no credentials, or a role it cannot assume.
    AwsDenied(String),
}

/// Every ~300 ms until `stop`: lists all Pods and moves them along as a kubelet would.
pub(super) fn run(
    api: &Api,
    mode: &AtomicU8,
    checks: &Mutex<PodChecks>,
    balancers: &LoadBalancers,
    timing: &Mutex<KubeletTiming>,
    stop: &AtomicBool,
) {
    let ip_counter = AtomicU32::new(2);
    let mut first_blocked = HashMap::new();
    let mut first_seen = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let mode = KubeletMode::from_u8(mode.load(Ordering::SeqCst));
        let checks = checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let startup = timing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .startup;
        let mut pass = Pass {
            mode,
            checks: &checks,
            ip_counter: &ip_counter,
            stop,
            first_blocked: &mut first_blocked,
            first_seen: &mut first_seen,
            timing,
        };
        let next = kubelet_pass(api, &mut pass);
        balancers.pass(api);
        let pauses = if startup.is_zero() { 3 } else { 1 };
        for _ in 0..pauses {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let pace = Duration::from_millis(if startup.is_zero() { 100 } else { 20 });
            let until_next =
                next.map_or(pace, |next| next.saturating_duration_since(Instant::now()));
            std::thread::sleep(pace.min(until_next));
        }
    }
}

/// How long before a Pod's startup ends the stand-in creates its containers: it reads the
/// referenced ConfigMaps and Secrets and looks at the network and AWS access then (as a
/// kubelet creates a container once its image is pulled), and makes the Pod Ready when the
/// startup ends, not the time of those checks after it.
const CREATE_BEFORE_STARTED: Duration = Duration::from_millis(60);

/// What one pass of the stand-in works with.
struct Pass<'a> {
    mode: KubeletMode,
    checks: &'a PodChecks,
    ip_counter: &'a AtomicU32,
    stop: &'a AtomicBool,
    /// Pod uid -> when it was first seen blocked.
    first_blocked: &'a mut HashMap<String, Instant>,
    /// Pod uid -> when it was first seen.
    first_seen: &'a mut HashMap<String, Instant>,
    timing: &'a Mutex<KubeletTiming>,
}

/// How long a Job's container keeps trying to reach the database, or to get AWS
/// credentials, before it exits with the error (as an application's `--wait-for-db`
/// does). Longer than the network and credential checks cache moto's state, so a Job
/// fails only on a view read after it started: a rule added just before it counts.
const GIVE_UP_AFTER: Duration = Duration::from_millis(1500);

/// One look at every Pod; the answer is when the next Pod's containers are due to be
/// created, if a Pod is still in its startup.
fn kubelet_pass(api: &Api, pass: &mut Pass<'_>) -> Option<Instant> {
    let Pass {
        mode,
        checks,
        ip_counter,
        stop,
        ..
    } = *pass;
    let startup = pass
        .timing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .startup;
    let timeout = Duration::from_secs(10);
    let Ok((200, body)) = api.request("GET", "/api/v1/pods", None, None, timeout) else {
        return None;
    };
    let list = serde_json::from_str::<serde_json::Value>(&body).ok()?;
    let items = list["items"].as_array()?;
    let mut starting = Vec::new();
    let mut next: Option<Instant> = None;
    for pod in items {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        let (Some(namespace), Some(name)) = (
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let url = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // What a kubelet does once the containers are gone.
            let _ = api.request(
                "DELETE",
                &url,
                Some("application/json"),
                Some(br#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}"#),
                timeout,
            );
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        let ready = pod["status"]["conditions"]
            .as_array()
            .map(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
            })
            .unwrap_or(false);
        let is_job = pod["metadata"]["ownerReferences"]
            .as_array()
            .map(|owners| owners.iter().any(|owner| owner["kind"] == "Job"))
            .unwrap_or(false)
            || !pod["metadata"]["labels"]["job-name"].is_null();
        if matches!(phase, "Succeeded" | "Failed") || (phase == "Running" && ready && !is_job) {
            // Done with: nothing below changes a Pod that runs and is Ready, so it is not
            // looked at again (a wave's Pods start on time however many run already).
            continue;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or(name).to_string();
        let seen = *pass.first_seen.entry(uid.clone()).or_insert_with(|| {
            pass.timing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .seen
                .entry(format!("{namespace}/{name}"))
                .or_insert_with(SystemTime::now);
            Instant::now()
        });
        let started = seen + startup;
        let create = started.checked_sub(CREATE_BEFORE_STARTED).unwrap_or(seen);
        if phase == "Pending" && Instant::now() < create {
            // Still pulling its image: nothing of its configuration is looked at yet, so
            // the pass stays short and the Pods of a wave start on time.
            next = Some(next.map_or(create, |next| next.min(create)));
            continue;
        }
        starting.push(Starting {
            started,
            pod,
            namespace,
            name,
            url,
            phase,
            ready,
            is_job,
            uid,
        });
    }
    // Each Pod on its own, at once, as the kubelets of a cluster's nodes start theirs: a
    // wave's Pods start together, not one after the other's checks.
    let first_blocked = Mutex::new(std::mem::take(pass.first_blocked));
    std::thread::scope(|scope| {
        for pod in &starting {
            let first_blocked = &first_blocked;
            let timing = pass.timing;
            scope.spawn(move || start(api, pod, mode, checks, ip_counter, first_blocked, timing));
        }
    });
    *pass.first_blocked = first_blocked
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    next
}

/// A Pod whose startup is over, to start (or to look at again).
struct Starting<'a> {
    /// When its startup ends: nothing about it changes before then.
    started: Instant,
    pod: &'a serde_json::Value,
    namespace: &'a str,
    name: &'a str,
    url: String,
    phase: &'a str,
    ready: bool,
    is_job: bool,
    uid: String,
}

/// Start one Pod, as its node's kubelet would: check its configuration, network and AWS
/// access, then move its status along.
fn start(
    api: &Api,
    starting: &Starting<'_>,
    mode: KubeletMode,
    checks: &PodChecks,
    ip_counter: &AtomicU32,
    first_blocked: &Mutex<HashMap<String, Instant>>,
    timing: &Mutex<KubeletTiming>,
) {
    let Starting {
        started,
        pod,
        namespace,
        name,
        ref url,
        phase,
        ready,
        is_job,
        ref uid,
    } = *starting;
    let url = url.as_str();
    let uid = uid.as_str();
    let timeout = Duration::from_secs(10);
    let blocked = blocked(api, pod, namespace, checks, phase);
    // Its containers were created just before the end of its startup: it turns Running
    // (or stays waiting on its configuration) only when the startup ends.
    std::thread::sleep(started.saturating_duration_since(Instant::now()));
    if let Some(Blocked::Config(message)) = &blocked {
        wait_for_config(api, pod, url, message);
        return;
    }
    let (unreachable, denied) = match blocked {
        Some(Blocked::Network(message)) => (Some(message), false),
        Some(Blocked::AwsDenied(message)) => (Some(message), true),
        _ => (None, false),
    };
    let given_up = match &unreachable {
        Some(_) => {
            first_blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(uid.to_string())
                .or_insert_with(Instant::now)
                .elapsed()
                >= GIVE_UP_AFTER
        }
        None => {
            first_blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(uid);
            false
        }
    };
    let target = match (mode, is_job, phase) {
        (_, true, _) if unreachable.is_some() && !given_up => None,
        (_, true, _) if unreachable.is_some() => Some("Failed"),
        (_, false, "Running") if unreachable.is_some() => None,
        (_, false, _) if unreachable.is_some() => Some("Running"),
        (KubeletMode::Ready, true, _) => Some("Succeeded"),
        (KubeletMode::Ready, false, "Running") if ready => None,
        (KubeletMode::Ready, false, _) => Some("Running"),
        (KubeletMode::NeverReady, _, "Pending") => Some("Running"),
        _ => None,
    };
    let Some(target) = target else {
        return;
    };
    let now = rfc3339_now();
    let containers_ready =
        mode == KubeletMode::Ready && target == "Running" && unreachable.is_none();
    let statuses: Vec<serde_json::Value> = pod["spec"]["containers"]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .map(|container| {
                    let state = if target == "Succeeded" {
                        serde_json::json!({"terminated": {
                            "exitCode": 0, "reason": "Completed",
                            "startedAt": now, "finishedAt": now}})
                    } else if target == "Failed" {
                        serde_json::json!({"terminated": {
                            "exitCode": 1, "reason": "Error",
                            "message": unreachable.clone().unwrap_or_default(),
                            "startedAt": now, "finishedAt": now}})
                    } else if denied {
                        serde_json::json!({"waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": format!("back-off restarting failed container: {}", unreachable.clone().unwrap_or_default())}})
                    } else {
                        serde_json::json!({"running": {"startedAt": now}})
                    };
                    let last_state = if denied && target == "Running" {
                        serde_json::json!({"terminated": {
                            "exitCode": 1, "reason": "Error",
                            "message": unreachable.clone().unwrap_or_default(),
                            "startedAt": now, "finishedAt": now}})
                    } else {
                        serde_json::json!({})
                    };
                    serde_json::json!({
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": format!("docker-pullable://{}", container["image"].as_str().unwrap_or("")),
                        "containerID": format!("containerd://{namespace}-{name}"),
                        "ready": containers_ready,
                        "started": target == "Running" && !denied,
                        "restartCount": u8::from(denied && target == "Running"),
                        "state": state,
                        "lastState": last_state,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let flag = |value: bool| if value { "True" } else { "False" };
    let condition = |kind: &str, holds: bool| {
        let mut condition =
            serde_json::json!({"type": kind, "status": flag(holds), "lastTransitionTime": now});
        if !holds {
            condition["reason"] = if target == "Succeeded" || target == "Failed" {
                "PodCompleted".into()
            } else {
                "ContainersNotReady".into()
            };
        }
        condition
    };
    let conditions = vec![
        condition("Initialized", true),
        condition("Ready", containers_ready),
        condition("ContainersReady", containers_ready),
        condition("PodScheduled", true),
    ];
    let existing_ip = pod["status"]["podIP"].as_str().map(str::to_string);
    let ip = existing_ip.unwrap_or_else(|| {
        let number = ip_counter.fetch_add(1, Ordering::SeqCst);
        format!("10.244.{}.{}", (number / 250) % 250, number % 250 + 2)
    });
    let patch = serde_json::json!({"status": {
        "phase": target,
        "conditions": conditions,
        "containerStatuses": statuses,
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": pod["status"]["startTime"].as_str().unwrap_or(&now),
    }});
    let patched = api.request(
        "PATCH",
        &format!("{url}/status"),
        Some("application/merge-patch+json"),
        Some(patch.to_string().as_bytes()),
        timeout,
    );
    if matches!(patched, Ok((200, _))) && (containers_ready || target == "Succeeded") {
        timing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .entry(format!("{namespace}/{name}"))
            .or_insert_with(SystemTime::now);
    }
}

/// Why the Pod's containers cannot run as they should, if they cannot: checked while it
/// waits to start (references) and until it is Ready (the network).
fn blocked(
    api: &Api,
    pod: &serde_json::Value,
    namespace: &str,
    checks: &PodChecks,
    phase: &str,
) -> Option<Blocked> {
    let mut environment: Vec<(String, String)> = Vec::new();
    let mut lookups = Lookups::new(api, namespace);
    for container in containers(pod) {
        match container_environment(&mut lookups, container, checks.strict_references) {
            Ok(values) => environment.extend(values),
            Err(message) if phase == "Pending" => return Some(Blocked::Config(message)),
            Err(_) => {}
        }
    }
    if phase == "Pending" {
        for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let (kind, name, optional) = if volume["configMap"].is_object() {
                (
                    "configmaps",
                    &volume["configMap"]["name"],
                    &volume["configMap"]["optional"],
                )
            } else if volume["secret"].is_object() {
                (
                    "secrets",
                    &volume["secret"]["secretName"],
                    &volume["secret"]["optional"],
                )
            } else {
                continue;
            };
            let required = checks.strict_references || optional != &serde_json::Value::Bool(true);
            let name = name.as_str().unwrap_or_default();
            if required && lookups.get(kind, name).is_none() {
                return Some(Blocked::Config(format!(
                    "MountVolume.SetUp failed for volume {:?}: {} {name:?} not found",
                    volume["name"].as_str().unwrap_or_default(),
                    singular(kind)
                )));
            }
        }
    }
    if let Some(network) = checks.network.as_ref() {
        let values: Vec<String> = environment.iter().map(|(_, value)| value.clone()).collect();
        if let Reach::Unreachable(message) = network(&values) {
            return Some(Blocked::Network(message));
        }
    }
    let access = checks.aws_access.as_ref()?;
    let calls_aws = environment
        .iter()
        .any(|(key, _)| key == "AWS_REGION" || key == "AWS_DEFAULT_REGION");
    if !calls_aws {
        return None;
    }
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|name| !name.is_empty())
        .unwrap_or("default");
    access(namespace, account).err().map(Blocked::AwsDenied)
}

/// The Pod's init containers and containers.
fn containers(pod: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    let spec = &pod["spec"];
    let init = spec["initContainers"].as_array().into_iter().flatten();
    init.chain(spec["containers"].as_array().into_iter().flatten())
}

/// ConfigMaps and Secrets of one namespace, each read once per pass: name → data (Secret
/// values decoded); `None` when it does not exist.
struct Lookups<'a> {
    api: &'a Api,
    namespace: &'a str,
    seen: BTreeMap<(String, String), Option<BTreeMap<String, String>>>,
}

impl<'a> Lookups<'a> {
    fn new(api: &'a Api, namespace: &'a str) -> Self {
        Self {
            api,
            namespace,
            seen: BTreeMap::new(),
        }
    }

    /// The data of the `kind` (`configmaps` or `secrets`) named `name`.
    fn get(&mut self, kind: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let key = (kind.to_string(), name.to_string());
        if let Some(found) = self.seen.get(&key) {
            return found.clone();
        }
        let path = format!("/api/v1/namespaces/{}/{kind}/{name}", self.namespace);
        let found = match self
            .api
            .request("GET", &path, None, None, Duration::from_secs(10))
        {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .map(|object| data(kind, &object)),
            _ => None,
        };
        self.seen.insert(key, found.clone());
        found
    }
}

/// A ConfigMap's or Secret's data as text.
fn data(kind: &str, object: &serde_json::Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        let text = if kind == "secrets" {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        } else {
            text.to_string()
        };
        values.insert(key.clone(), text);
    }
    values
}

fn singular(kind: &str) -> &'static str {
    if kind == "secrets" {
        "secret"
    } else {
        "configmap"
    }
}

/// Every variable of a container's environment (name, value), or the kubelet's complaint
/// about a missing reference.
fn container_environment(
    lookups: &mut Lookups<'_>,
    container: &serde_json::Value,
    strict: bool,
) -> Result<Vec<(String, String)>, String> {
    let required =
        |optional: &serde_json::Value| strict || optional != &serde_json::Value::Bool(true);
    let mut values = Vec::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference) = if source["configMapRef"].is_object() {
            ("configmaps", &source["configMapRef"])
        } else if source["secretRef"].is_object() {
            ("secrets", &source["secretRef"])
        } else {
            continue;
        };
        let name = reference["name"].as_str().unwrap_or_default();
        let prefix = source["prefix"].as_str().unwrap_or_default();
        match lookups.get(kind, name) {
            Some(data) => values.extend(
                data.into_iter()
                    .map(|(key, value)| (format!("{prefix}{key}"), value)),
            ),
            None if required(&reference["optional"]) => {
                return Err(format!("{} {name:?} not found", singular(kind)));
            }
            None => {}
        }
    }
    for variable in container["env"].as_array().into_iter().flatten() {
        let variable_name = variable["name"].as_str().unwrap_or_default().to_string();
        if let Some(value) = variable["value"].as_str() {
            values.push((variable_name, value.to_string()));
            continue;
        }
        let from = &variable["valueFrom"];
        let (kind, reference) = if from["configMapKeyRef"].is_object() {
            ("configmaps", &from["configMapKeyRef"])
        } else if from["secretKeyRef"].is_object() {
            ("secrets", &from["secretKeyRef"])
        } else {
            continue;
        };
        let name = reference["name"].as_str().unwrap_or_default();
        let key = reference["key"].as_str().unwrap_or_default();
        match lookups.get(kind, name).map(|data| data.get(key).cloned()) {
            Some(Some(value)) => values.push((variable_name, value)),
            Some(None) if required(&reference["optional"]) => {
                return Err(format!(
                    "couldn't find key {key} in {} {}/{name}",
                    singular(kind),
                    lookups.namespace
                ));
            }
            None if required(&reference["optional"]) => {
                return Err(format!("{} {name:?} not found", singular(kind)));
            }
            _ => {}
        }
    }
    Ok(values)
}

/// Leave the Pod Pending with its containers waiting in `CreateContainerConfigError`.
fn wait_for_config(api: &Api, pod: &serde_json::Value, url: &str, message: &str) {
    let statuses = pod["status"]["containerStatuses"].as_array();
    let already = statuses.is_some_and(|statuses| {
        statuses
            .iter()
            .all(|status| status["state"]["waiting"]["message"] == message)
    });
    if already {
        return;
    }
    let now = rfc3339_now();
    let reason = if message.starts_with("MountVolume") {
        "ContainerCreating"
    } else {
        "CreateContainerConfigError"
    };
    let statuses: Vec<serde_json::Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| {
            serde_json::json!({
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            })
        })
        .collect();
    let patch = serde_json::json!({"status": {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "ContainersNotReady"},
        ],
        "containerStatuses": statuses,
        "hostIP": "127.0.0.1",
        "startTime": pod["status"]["startTime"].as_str().unwrap_or(&now),
    }});
    let _ = api.request(
        "PATCH",
        &format!("{url}/status"),
        Some("application/merge-patch+json"),
        Some(patch.to_string().as_bytes()),
        Duration::from_secs(10),
    );
}

/// Now, as RFC 3339 UTC with second precision (what Kubernetes timestamps look like).
fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
