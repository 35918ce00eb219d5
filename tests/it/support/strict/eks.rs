//! EKS as strict as AWS.
//!
//! - **EKS versions.** `DescribeClusterVersions` (`GET /cluster-versions`, which moto does not
//!   implement) answers from [`EKS_VERSIONS`], a snapshot of what EKS offers in December
//!   2026 (AWS API reference, DescribeClusterVersions; EKS version lifecycle). `CreateCluster`
//!   with a version EKS does not offer is refused with `InvalidParameterException`, as AWS
//!   refuses it.
//! - **The cluster's security group.** EKS creates one per cluster and reports it as
//!   `resourcesVpcConfig.clusterSecurityGroupId` (with the cluster's `vpcId`); managed nodes
//!   carry it. Moto does neither, so [`ClusterNetworks`] creates the group in moto and
//!   fills both fields in (what the Kubernetes stand-in's network check uses).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::super::aws_wire::{percent_decode, xml_text};
use super::{Moto, json_error, json_response};

/// Kubernetes versions as `DescribeClusterVersions` reports them: (version, `versionStatus`).
pub const EKS_VERSIONS: &[(&str, &str)] = &[
    ("1.28", "UNSUPPORTED"),
    ("1.29", "UNSUPPORTED"),
    ("1.30", "UNSUPPORTED"),
    ("1.31", "EXTENDED_SUPPORT"),
    ("1.32", "EXTENDED_SUPPORT"),
    ("1.33", "EXTENDED_SUPPORT"),
    ("1.34", "STANDARD_SUPPORT"),
    ("1.35", "STANDARD_SUPPORT"),
];

/// The newest version EKS creates clusters in by default.
const DEFAULT_VERSION: &str = "1.35";

/// Whether EKS creates clusters in `version`.
pub fn eks_offers(version: &str) -> bool {
    EKS_VERSIONS
        .iter()
        .any(|(offered, status)| *offered == version && *status != "UNSUPPORTED")
}

/// AWS's answer to a request the strict rules decide, if they decide it.
pub(super) fn answer(operation: &str, body: &[u8]) -> Option<Response<Full<Bytes>>> {
    if operation == "GET /cluster-versions" {
        return Some(json_response(StatusCode::OK, &cluster_versions()));
    }
    if operation == "POST /clusters" {
        let request: serde_json::Value = serde_json::from_slice(body).ok()?;
        let version = request.get("version")?.as_str()?;
        if !eks_offers(version) {
            return Some(json_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterException",
                &format!("unsupported Kubernetes version {version}"),
            ));
        }
    }
    None
}

fn cluster_versions() -> serde_json::Value {
    let versions: Vec<serde_json::Value> = EKS_VERSIONS
        .iter()
        .map(|(version, status)| {
            serde_json::json!({
                "clusterVersion": version,
                "clusterType": "eks",
                "defaultVersion": *version == DEFAULT_VERSION,
                "versionStatus": status,
            })
        })
        .collect();
    serde_json::json!({ "clusterVersions": versions })
}

/// The security group EKS creates for each cluster (`clusterSecurityGroupId`): the control
/// plane's network interfaces and every managed node carry it. Moto neither creates it nor
/// reports the cluster's `vpcId`; the proxy creates a real group in moto when a cluster is
/// created and reports both in every answer about that cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNetwork {
    pub vpc_id: String,
    pub security_group_id: String,
}

/// (region, cluster name) → the cluster's network, as EKS reports it.
#[derive(Clone, Default)]
pub struct ClusterNetworks {
    known: Arc<Mutex<HashMap<(String, String), ClusterNetwork>>>,
    /// Held while a group is being made, so two answers about one new cluster make one.
    making: Arc<tokio::sync::Mutex<()>>,
}

impl ClusterNetworks {
    /// The network of the cluster `name` in `region`, if the proxy saw it created.
    pub fn get(&self, region: &str, name: &str) -> Option<ClusterNetwork> {
        self.lock()
            .get(&(region.to_string(), name.to_string()))
            .cloned()
    }

    /// Every cluster in `region` the proxy saw created: (name, network).
    pub fn in_region(&self, region: &str) -> Vec<(String, ClusterNetwork)> {
        let networks = self.lock();
        let mut found: Vec<(String, ClusterNetwork)> = networks
            .iter()
            .filter(|((at, _), _)| at == region)
            .map(|((_, name), network)| (name.clone(), network.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ClusterNetwork>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// For an answer about a cluster (its create or describe): make the cluster's security
    /// group in moto unless it exists (in the VPC of its subnets, admitting all traffic
    /// from itself, as EKS does). Made on the first answer about the cluster, even when
    /// the caller went away before its `CreateCluster` was answered.
    pub(in super::super) async fn ensure(
        &self,
        upstream: &Moto,
        region: &str,
        answer: &[u8],
    ) -> Result<(), String> {
        let json: serde_json::Value =
            serde_json::from_slice(answer).map_err(|error| error.to_string())?;
        let cluster = &json["cluster"];
        let name = cluster["name"].as_str().ok_or("no cluster name")?;
        let _making = self.making.lock().await;
        if self.get(region, name).is_some() {
            return Ok(());
        }
        let subnet = cluster["resourcesVpcConfig"]["subnetIds"][0]
            .as_str()
            .ok_or("no subnet")?;
        let subnets = upstream
            .ec2(
                region,
                &[("Action", "DescribeSubnets"), ("SubnetId.1", subnet)],
            )
            .await?;
        let vpc_id = xml_text(&subnets, "vpcId").ok_or("the subnet has no VPC")?;
        let group_name = format!("eks-cluster-sg-{name}");
        let description = "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.";
        let created = upstream
            .ec2(
                region,
                &[
                    ("Action", "CreateSecurityGroup"),
                    ("GroupName", &group_name),
                    ("GroupDescription", description),
                    ("VpcId", &vpc_id),
                    ("TagSpecification.1.ResourceType", "security-group"),
                    (
                        "TagSpecification.1.Tag.1.Key",
                        &format!("kubernetes.io/cluster/{name}"),
                    ),
                    ("TagSpecification.1.Tag.1.Value", "owned"),
                ],
            )
            .await?;
        let group = xml_text(&created, "groupId").ok_or("no group id")?;
        upstream
            .ec2(
                region,
                &[
                    ("Action", "AuthorizeSecurityGroupIngress"),
                    ("GroupId", &group),
                    ("IpPermissions.1.IpProtocol", "-1"),
                    ("IpPermissions.1.Groups.1.GroupId", &group),
                ],
            )
            .await?;
        self.lock().insert(
            (region.to_string(), name.to_string()),
            ClusterNetwork {
                vpc_id,
                security_group_id: group,
            },
        );
        Ok(())
    }

    /// An answer about clusters with `vpcId` and `clusterSecurityGroupId` filled in for
    /// the clusters the proxy saw created.
    pub(in super::super) fn reported(&self, region: &str, answer: &[u8]) -> Option<Vec<u8>> {
        let mut json: serde_json::Value = serde_json::from_slice(answer).ok()?;
        let cluster = json.get_mut("cluster")?.as_object_mut()?;
        let name = cluster.get("name")?.as_str()?.to_string();
        let network = self.get(region, &name)?;
        let config = cluster
            .entry("resourcesVpcConfig")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()?;
        config.insert("vpcId".into(), network.vpc_id.into());
        config.insert(
            "clusterSecurityGroupId".into(),
            network.security_group_id.into(),
        );
        Some(json.to_string().into_bytes())
    }
}

/// How a cluster lets principals in (`accessConfig`), who created it, and its access
/// entries: moto models none of them, so the proxy serves them as EKS does. A cluster
/// created without `accessConfig` through the API is in `CONFIG_MAP` mode, where EKS refuses
/// access entries. When a test serves its clusters from the Kubernetes testbed
/// ([`ClusterAccess::serve_at`]), cluster answers carry the testbed's endpoint and CA, and
/// the testbed's authenticator lets in whom [`Access::admits`] admits.
#[derive(Clone, Default)]
pub struct ClusterAccess {
    clusters: Arc<Mutex<HashMap<(String, String), Access>>>,
    served: Arc<Mutex<Option<ServedAt>>>,
}

/// Where the clusters' Kubernetes API is: the testbed's `https://127.0.0.1:PORT` and its CA
/// (PEM).
#[derive(Clone, Debug)]
pub struct ServedAt {
    pub server: String,
    pub ca_pem: Vec<u8>,
}

/// One cluster's access configuration and entries.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub authentication_mode: String,
    pub bootstrap_creator_admin: bool,
    /// The IAM principal that called `CreateCluster` (an assumed role as its role ARN), as
    /// moto's STS names the request's access key.
    pub creator: Option<String>,
    /// principal ARN → associated access policy ARNs.
    pub entries: std::collections::BTreeMap<String, Vec<String>>,
    /// Whether an answer about the cluster pointed at the Kubernetes testbed.
    pub served: bool,
}

/// The access policy that makes a principal cluster admin.
pub const CLUSTER_ADMIN_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

impl Access {
    /// Whether EKS lets `principal` (an IAM role or user ARN) administer the cluster: the
    /// creator when bootstrapped as admin, or an access entry with the cluster admin
    /// policy (entries count only in the API modes).
    pub fn admits(&self, principal: &str) -> bool {
        let creator = self.bootstrap_creator_admin && self.creator.as_deref() == Some(principal);
        let entry = self.authentication_mode != "CONFIG_MAP"
            && self
                .entries
                .get(principal)
                .is_some_and(|policies| policies.iter().any(|p| p == CLUSTER_ADMIN_POLICY));
        creator || entry
    }
}

const ACCESS_ENTRIES: &str = "/access-entries";

impl ClusterAccess {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Access>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The access of the cluster `name` in `region`, if the proxy saw it created.
    pub fn get(&self, region: &str, name: &str) -> Option<Access> {
        self.lock()
            .get(&(region.to_string(), name.to_string()))
            .cloned()
    }

    /// The clusters whose answers pointed at the Kubernetes testbed: (region, name, access).
    pub fn served(&self) -> Vec<(String, String, Access)> {
        self.lock()
            .iter()
            .filter(|(_, access)| access.served)
            .map(|((region, name), access)| (region.clone(), name.clone(), access.clone()))
            .collect()
    }

    /// From now on, answers about clusters carry `served`'s endpoint and CA, as EKS's carry
    /// the cluster's own.
    pub fn serve_at(&self, served: ServedAt) {
        *self
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(served);
    }

    /// Record who created the cluster `name` in `region` (kept once known).
    pub(in super::super) fn set_creator(&self, region: &str, name: &str, principal: &str) {
        if let Some(access) = self.lock().get_mut(&(region.to_string(), name.to_string()))
            && access.creator.is_none()
        {
            access.creator = Some(principal.to_string());
        }
    }

    /// Remember a `CreateCluster` request's `accessConfig` (EKS's defaults when absent).
    pub(in super::super) fn created(&self, region: &str, request: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(request) else {
            return;
        };
        let Some(name) = json["name"].as_str() else {
            return;
        };
        let config = &json["accessConfig"];
        let access = Access {
            authentication_mode: config["authenticationMode"]
                .as_str()
                .unwrap_or("CONFIG_MAP")
                .to_string(),
            bootstrap_creator_admin: config["bootstrapClusterCreatorAdminPermissions"]
                .as_bool()
                .unwrap_or(true),
            ..Access::default()
        };
        self.lock()
            .entry((region.to_string(), name.to_string()))
            .or_insert(access);
    }

    /// A cluster answer with its `accessConfig`, as EKS reports it, and the testbed's
    /// endpoint and CA when the clusters are served from it.
    pub(in super::super) fn reported(&self, region: &str, answer: &[u8]) -> Option<Vec<u8>> {
        let mut json: serde_json::Value = serde_json::from_slice(answer).ok()?;
        let cluster = json.get_mut("cluster")?.as_object_mut()?;
        let name = cluster.get("name")?.as_str()?.to_string();
        let mut clusters = self.lock();
        let access = clusters.get_mut(&(region.to_string(), name))?;
        cluster.insert(
            "accessConfig".into(),
            serde_json::json!({"authenticationMode": access.authentication_mode}),
        );
        let served = self
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(served) = served {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD.encode(&served.ca_pem);
            cluster.insert("endpoint".into(), served.server.into());
            cluster.insert(
                "certificateAuthority".into(),
                serde_json::json!({ "data": data }),
            );
            access.served = true;
        }
        Some(json.to_string().into_bytes())
    }

    /// EKS's answer to an access-entry call (`…/access-entries…`), which moto lacks.
    pub(in super::super) fn answer(
        &self,
        region: &str,
        operation: &str,
        body: &[u8],
    ) -> Option<Response<Full<Bytes>>> {
        let (method, path) = operation.split_once(' ')?;
        let rest = path.strip_prefix("/clusters/")?;
        let (cluster, tail) = rest.split_once(ACCESS_ENTRIES)?;
        let key = (region.to_string(), cluster.to_string());
        let mut clusters = self.lock();
        let Some(access) = clusters.get_mut(&key) else {
            return Some(json_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                &format!("No cluster found for name: {cluster}."),
            ));
        };
        if access.authentication_mode == "CONFIG_MAP" {
            return Some(json_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestException",
                "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
            ));
        }
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let principal_of = |encoded: &str| percent_decode(encoded);
        match (method, tail) {
            ("GET", "") => Some(json_response(
                StatusCode::OK,
                &serde_json::json!({"accessEntries": access.entries.keys().collect::<Vec<_>>()}),
            )),
            ("POST", "") => {
                let principal = request["principalArn"].as_str().unwrap_or_default();
                if access.entries.contains_key(principal) {
                    return Some(json_error(
                        StatusCode::CONFLICT,
                        "ResourceInUseException",
                        "The specified access entry resource is already in use on this cluster.",
                    ));
                }
                access.entries.insert(principal.to_string(), Vec::new());
                Some(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"accessEntry": {
                        "clusterName": cluster,
                        "principalArn": principal,
                        "type": "STANDARD",
                        "accessEntryArn": format!("arn:aws:eks:{region}:123456789012:access-entry/{cluster}/{}", principal.rsplit('/').next().unwrap_or_default()),
                    }}),
                ))
            }
            (method, tail) => {
                let tail = tail.strip_prefix('/')?;
                let (encoded, policies) = match tail.split_once('/') {
                    Some((encoded, rest)) => (encoded, Some(rest)),
                    None => (tail, None),
                };
                let principal = principal_of(encoded);
                let Some(entry) = access.entries.get_mut(&principal) else {
                    return Some(json_error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        &format!("The specified principalArn could not be found: {principal}"),
                    ));
                };
                match (method, policies) {
                    ("POST", Some("access-policies")) => {
                        let policy = request["policyArn"].as_str().unwrap_or_default();
                        if !entry.iter().any(|known| known == policy) {
                            entry.push(policy.to_string());
                        }
                        Some(json_response(
                            StatusCode::OK,
                            &serde_json::json!({
                                "clusterName": cluster,
                                "principalArn": principal,
                                "associatedAccessPolicy": {
                                    "policyArn": policy,
                                    "accessScope": request["accessScope"],
                                },
                            }),
                        ))
                    }
                    ("GET", Some("access-policies")) => Some(json_response(
                        StatusCode::OK,
                        &serde_json::json!({
                            "clusterName": cluster,
                            "principalArn": principal,
                            "associatedAccessPolicies": entry.iter().map(|policy| serde_json::json!({
                                "policyArn": policy,
                                "accessScope": {"type": "cluster"},
                            })).collect::<Vec<_>>(),
                        }),
                    )),
                    ("GET", None) => Some(json_response(
                        StatusCode::OK,
                        &serde_json::json!({"accessEntry": {
                            "clusterName": cluster,
                            "principalArn": principal,
                            "type": "STANDARD",
                        }}),
                    )),
                    _ => None,
                }
            }
        }
    }
}
