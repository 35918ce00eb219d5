//! EKS as strict as AWS.
//!
//! - **EKS versions.** `DescribeClusterVersions` (`GET /cluster-versions`, which moto does not
//!   implement) answers from [`EKS_VERSIONS`], a snapshot of what EKS offers in December
//!   2026 (AWS API reference, DescribeClusterVersions; EKS version lifecycle). `CreateCluster`
//!   with a version EKS does not offer is refused with `InvalidParameterException`, as AWS
//!   refuses it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{json_error, json_response};

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
