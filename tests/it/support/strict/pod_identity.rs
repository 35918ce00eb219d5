//! EKS add-ons and Pod Identity associations, which moto does not implement (its EKS
//! serves clusters, node groups and Fargate profiles only: `moto/eks/urls.py`), served as
//! EKS serves them (AWS API reference: CreateAddon, DescribeAddon, ListAddons,
//! CreatePodIdentityAssociation, ListPodIdentityAssociations,
//! DescribePodIdentityAssociation, DeletePodIdentityAssociation):
//!
//! - a call about a cluster moto does not hold answers `ResourceNotFoundException` (404);
//! - an add-on reports `CREATING` for a while after its create ([`PodIdentities::hold_addons`]),
//!   then `ACTIVE`, or the failure set by [`PodIdentities::fail_addons`] (`CREATE_FAILED` or
//!   `DEGRADED` with `health.issues`); a second create answers `ResourceInUseException`;
//! - one association per (namespace, service account): another create for it answers
//!   `ResourceInUseException` (409), unless it repeats the create's `clientRequestToken`,
//!   which answers the association made the first time, as EKS's idempotency does;
//!   a missing `namespace`, `serviceAccount` or a `roleArn` that is no IAM role ARN answers
//!   `InvalidParameterException`.
//!
//! What the Kubernetes stand-in reads of it: whether a cluster's agent is `ACTIVE` and which
//! role a service account is bound to ([`PodIdentities::bindings`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::super::proxy::Upstream;
use super::{json_error, json_response};

/// How long a new add-on reports `CREATING` unless a test says otherwise.
const DEFAULT_HOLD: Duration = Duration::from_millis(300);

/// The Pod Identity agent's version as EKS reports it.
const AGENT_VERSION: &str = "v1.3.4-eksbuild.1";

/// How add-ons created from now on fail: their final status (`CREATE_FAILED` or
/// `DEGRADED`) and one health issue's code and message.
#[derive(Clone, Debug)]
pub struct AddonFailure {
    pub status: String,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug)]
struct Addon {
    name: String,
    created: Instant,
    created_at: f64,
    hold: Duration,
    failure: Option<AddonFailure>,
    tags: serde_json::Value,
}

impl Addon {
    /// Its status now, and its health issues.
    fn status(&self) -> (&str, Vec<serde_json::Value>) {
        if self.created.elapsed() < self.hold {
            return ("CREATING", Vec::new());
        }
        match &self.failure {
            None => ("ACTIVE", Vec::new()),
            Some(failure) => (
                failure.status.as_str(),
                vec![serde_json::json!({
                    "code": failure.code,
                    "message": failure.message,
                    "resourceIds": [],
                })],
            ),
        }
    }

    fn json(&self, region: &str, cluster: &str) -> serde_json::Value {
        let (status, issues) = self.status();
        serde_json::json!({
            "addonName": self.name,
            "clusterName": cluster,
            "status": status,
            "addonVersion": AGENT_VERSION,
            "health": {"issues": issues},
            "addonArn": format!("arn:aws:eks:{region}:123456789012:addon/{cluster}/{}/strict", self.name),
            "createdAt": self.created_at,
            "modifiedAt": self.created_at,
            "tags": self.tags,
        })
    }
}

/// One Pod Identity association.
#[derive(Clone, Debug)]
pub struct Association {
    pub id: String,
    pub arn: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub tags: serde_json::Value,
    token: Option<String>,
    created_at: f64,
}

impl Association {
    fn summary(&self, cluster: &str) -> serde_json::Value {
        serde_json::json!({
            "clusterName": cluster,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "associationArn": self.arn,
            "associationId": self.id,
        })
    }

    fn json(&self, cluster: &str) -> serde_json::Value {
        let mut json = self.summary(cluster);
        json["roleArn"] = self.role_arn.clone().into();
        json["tags"] = self.tags.clone();
        json["createdAt"] = self.created_at.into();
        json["modifiedAt"] = self.created_at.into();
        json["disableSessionTags"] = false.into();
        json
    }
}

#[derive(Clone, Debug, Default)]
struct Cluster {
    addons: BTreeMap<String, Addon>,
    associations: Vec<Association>,
}

#[derive(Debug, Default)]
struct State {
    clusters: BTreeMap<(String, String), Cluster>,
    hold: Option<Duration>,
    failure: Option<AddonFailure>,
    sequence: u64,
}

/// What a service account is bound to in one cluster: the role, and whether the cluster's
/// Pod Identity agent is `ACTIVE` (without it, no pod gets the role's credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub cluster: String,
    pub role_arn: String,
    pub agent_active: bool,
}

/// The add-ons and Pod Identity associations of the clusters the proxy serves.
#[derive(Clone, Default)]
pub struct PodIdentities(Arc<Mutex<State>>);

impl PodIdentities {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Add-ons created from now on report `CREATING` for `hold`.
    pub fn hold_addons(&self, hold: Duration) {
        self.lock().hold = Some(hold);
    }

    /// Add-ons created from now on end in `failure` (`None`: they become `ACTIVE`).
    pub fn fail_addons(&self, failure: Option<AddonFailure>) {
        self.lock().failure = failure;
    }

    /// The status of the add-on `name` of `cluster` in `region`, if installed.
    pub fn addon_status(&self, region: &str, cluster: &str, name: &str) -> Option<String> {
        let state = self.lock();
        let key = (region.to_string(), cluster.to_string());
        let addon = state.clusters.get(&key)?.addons.get(name)?;
        Some(addon.status().0.to_string())
    }

    /// The associations of `cluster` in `region`.
    pub fn associations(&self, region: &str, cluster: &str) -> Vec<Association> {
        let key = (region.to_string(), cluster.to_string());
        let state = self.lock();
        state
            .clusters
            .get(&key)
            .map(|cluster| cluster.associations.clone())
            .unwrap_or_default()
    }

    /// Where the service account `namespace/service_account` is bound in `region`'s
    /// clusters.
    pub fn bindings(&self, region: &str, namespace: &str, service_account: &str) -> Vec<Binding> {
        let state = self.lock();
        let mut found = Vec::new();
        for ((at, name), cluster) in &state.clusters {
            if at != region {
                continue;
            }
            let agent_active = cluster
                .addons
                .get("eks-pod-identity-agent")
                .is_some_and(|addon| addon.status().0 == "ACTIVE");
            for association in &cluster.associations {
                if association.namespace == namespace
                    && association.service_account == service_account
                {
                    found.push(Binding {
                        cluster: name.clone(),
                        role_arn: association.role_arn.clone(),
                        agent_active,
                    });
                }
            }
        }
        found
    }

    /// EKS's answer to an add-on or Pod Identity call (`/clusters/NAME/addons…`,
    /// `/clusters/NAME/pod-identity-associations…`), which moto lacks; `None` for any
    /// other call. `query` holds the query string's parameters; `upstream` is moto, asked
    /// whether the cluster exists.
    pub(in super::super) async fn answer(
        &self,
        region: &str,
        operation: &str,
        query: &[(String, String)],
        body: &[u8],
        upstream: &Upstream<'_>,
    ) -> Option<Response<Full<Bytes>>> {
        let (method, path) = operation.split_once(' ')?;
        let (cluster, tail) = path.strip_prefix("/clusters/")?.split_once('/')?;
        if !(tail.starts_with("addons") || tail.starts_with("pod-identity-associations")) {
            return None;
        }
        if upstream
            .get(&format!("/clusters/{cluster}"))
            .await
            .is_none()
        {
            return Some(json_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                &format!("No cluster found for name: {cluster}."),
            ));
        }
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let mut state = self.lock();
        let state = &mut *state;
        let key = (region.to_string(), cluster.to_string());
        let entry = state.clusters.entry(key).or_default();
        let get = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        match (method, tail) {
            ("POST", "addons") => {
                let name = request["addonName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if name.is_empty() {
                    return Some(invalid("addonName is required"));
                }
                if entry.addons.contains_key(&name) {
                    return Some(json_error(
                        StatusCode::CONFLICT,
                        "ResourceInUseException",
                        &format!("Addon already exists: {name}"),
                    ));
                }
                let addon = Addon {
                    name: name.clone(),
                    created: Instant::now(),
                    created_at: now,
                    hold: state.hold.unwrap_or(DEFAULT_HOLD),
                    failure: state.failure.clone(),
                    tags: request["tags"].clone(),
                };
                let json = addon.json(region, cluster);
                entry.addons.insert(name, addon);
                Some(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"addon": json}),
                ))
            }
            ("GET", "addons") => Some(json_response(
                StatusCode::OK,
                &serde_json::json!({"addons": entry.addons.keys().collect::<Vec<_>>()}),
            )),
            ("GET", tail) if tail.starts_with("addons/") => {
                let name = tail.trim_start_matches("addons/");
                match entry.addons.get(name) {
                    Some(addon) => Some(json_response(
                        StatusCode::OK,
                        &serde_json::json!({"addon": addon.json(region, cluster)}),
                    )),
                    None => Some(json_error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        &format!("No addon: {name} found in cluster: {cluster}"),
                    )),
                }
            }
            ("POST", "pod-identity-associations") => {
                let text = |name: &str| request[name].as_str().unwrap_or_default().to_string();
                let (namespace, service_account, role_arn) =
                    (text("namespace"), text("serviceAccount"), text("roleArn"));
                if namespace.is_empty() || service_account.is_empty() {
                    return Some(invalid("namespace and serviceAccount are required"));
                }
                if !(role_arn.starts_with("arn:aws:iam::") && role_arn.contains(":role/")) {
                    return Some(invalid(&format!("Invalid role ARN: {role_arn}")));
                }
                let token = request["clientRequestToken"].as_str().map(str::to_string);
                let existing = entry.associations.iter().find(|association| {
                    association.namespace == namespace
                        && association.service_account == service_account
                });
                if let Some(existing) = existing {
                    if token.is_some() && existing.token == token {
                        return Some(json_response(
                            StatusCode::OK,
                            &serde_json::json!({"association": existing.json(cluster)}),
                        ));
                    }
                    return Some(json_error(
                        StatusCode::CONFLICT,
                        "ResourceInUseException",
                        &format!(
                            "Association already exists: {} for the service account {service_account} in namespace {namespace}",
                            existing.id
                        ),
                    ));
                }
                state.sequence += 1;
                let id = format!("a-{:017x}", 0x5eed_0000_0000u64 + state.sequence);
                let association = Association {
                    arn: format!(
                        "arn:aws:eks:{region}:123456789012:podidentityassociation/{cluster}/{id}"
                    ),
                    id,
                    namespace,
                    service_account,
                    role_arn,
                    tags: request["tags"].clone(),
                    token,
                    created_at: now,
                };
                let json = association.json(cluster);
                entry.associations.push(association);
                Some(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"association": json}),
                ))
            }
            ("GET", "pod-identity-associations") => {
                let listed: Vec<serde_json::Value> = entry
                    .associations
                    .iter()
                    .filter(|association| {
                        get("namespace").is_none_or(|wanted| association.namespace == wanted)
                            && get("serviceAccount")
                                .is_none_or(|wanted| association.service_account == wanted)
                    })
                    .map(|association| association.summary(cluster))
                    .collect();
                Some(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"associations": listed}),
                ))
            }
            (method, tail) => {
                let id = tail.strip_prefix("pod-identity-associations/")?;
                let index = entry
                    .associations
                    .iter()
                    .position(|association| association.id == id);
                let Some(index) = index else {
                    return Some(json_error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        &format!("Association not found: {id}"),
                    ));
                };
                let json = entry.associations[index].json(cluster);
                match method {
                    "GET" => {}
                    "DELETE" => {
                        entry.associations.remove(index);
                    }
                    _ => return None,
                }
                Some(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"association": json}),
                ))
            }
        }
    }
}

fn invalid(message: &str) -> Response<Full<Bytes>> {
    json_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        message,
    )
}
