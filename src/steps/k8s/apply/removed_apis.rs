//! Kubernetes APIs removed by the version the cluster runs (review D16), kubent/pluto
//! style: a table of (group/version, kind, the minor version that removed it, what to use
//! instead), checked against every rendered object when planning. A manifest that renders
//! fine but names a removed API would fail only mid-deploy, after the cluster was built;
//! the local testbed's API server (1.20) still serves many of them, so only this table
//! catches them before a real run.

use serde_json::Value;

use super::manifests;

/// One removed API: `apiVersion`, kind (`*`: every kind of that version), the minor
/// version of Kubernetes that no longer serves it, the replacement.
struct Removed {
    api_version: &'static str,
    kind: &'static str,
    removed_in: u32,
    instead: &'static str,
}

const fn removed(
    api_version: &'static str,
    kind: &'static str,
    removed_in: u32,
    instead: &'static str,
) -> Removed {
    Removed {
        api_version,
        kind,
        removed_in,
        instead,
    }
}

/// The Kubernetes deprecated API migration guide, 1.16 to 1.32.
const REMOVED: &[Removed] = &[
    removed("extensions/v1beta1", "Ingress", 22, "networking.k8s.io/v1"),
    removed(
        "extensions/v1beta1",
        "*",
        16,
        "apps/v1 (networking.k8s.io/v1 for NetworkPolicy)",
    ),
    removed("apps/v1beta1", "*", 16, "apps/v1"),
    removed("apps/v1beta2", "*", 16, "apps/v1"),
    removed("networking.k8s.io/v1beta1", "*", 22, "networking.k8s.io/v1"),
    removed(
        "rbac.authorization.k8s.io/v1beta1",
        "*",
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    removed(
        "admissionregistration.k8s.io/v1beta1",
        "*",
        22,
        "admissionregistration.k8s.io/v1",
    ),
    removed(
        "apiextensions.k8s.io/v1beta1",
        "*",
        22,
        "apiextensions.k8s.io/v1",
    ),
    removed(
        "apiregistration.k8s.io/v1beta1",
        "*",
        22,
        "apiregistration.k8s.io/v1",
    ),
    removed(
        "certificates.k8s.io/v1beta1",
        "*",
        22,
        "certificates.k8s.io/v1",
    ),
    removed(
        "coordination.k8s.io/v1beta1",
        "*",
        22,
        "coordination.k8s.io/v1",
    ),
    removed("scheduling.k8s.io/v1beta1", "*", 22, "scheduling.k8s.io/v1"),
    removed(
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        27,
        "storage.k8s.io/v1",
    ),
    removed("storage.k8s.io/v1beta1", "*", 22, "storage.k8s.io/v1"),
    removed("batch/v1beta1", "CronJob", 25, "batch/v1"),
    removed(
        "policy/v1beta1",
        "*",
        25,
        "policy/v1 (Pod Security Admission replaces PodSecurityPolicy)",
    ),
    removed("autoscaling/v2beta1", "*", 25, "autoscaling/v2"),
    removed("autoscaling/v2beta2", "*", 26, "autoscaling/v2"),
    removed("discovery.k8s.io/v1beta1", "*", 25, "discovery.k8s.io/v1"),
    removed("events.k8s.io/v1beta1", "*", 25, "events.k8s.io/v1"),
    removed("node.k8s.io/v1beta1", "*", 25, "node.k8s.io/v1"),
    removed(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "*",
        26,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    removed(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "*",
        29,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    removed(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "*",
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// The minor of a `1.N` version; `None` when it is not one.
pub(super) fn minor(version: &str) -> Option<u32> {
    let rest = version.trim().trim_start_matches('v').strip_prefix("1.")?;
    rest.split('.').next()?.parse().ok()
}

/// For each object Kubernetes `1.minor` no longer serves: `kind/name (apiVersion)` and why.
pub(super) fn problems(objects: &[Value], target_minor: u32) -> Vec<String> {
    let mut found = Vec::new();
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = manifests::kind_of(object);
        let entry = REMOVED.iter().find(|entry| {
            entry.api_version == api_version && (entry.kind == kind || entry.kind == "*")
        });
        let Some(entry) = entry.filter(|entry| entry.removed_in <= target_minor) else {
            continue;
        };
        let name = manifests::name_of(object).unwrap_or("?");
        found.push(format!(
            "{kind}/{name} uses `{api_version}`, which Kubernetes 1.{} no longer serves (removed in 1.{}); use {}",
            target_minor, entry.removed_in, entry.instead
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn versions_read_as_minors() {
        assert_eq!(minor("1.35"), Some(35));
        assert_eq!(minor("v1.29.3"), Some(29));
        assert_eq!(minor("2.0"), None);
        assert_eq!(minor(""), None);
    }

    #[test]
    fn removed_apis_are_named_with_their_replacement_from_the_version_that_removed_them() {
        let objects = [
            json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "api"}}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"}}),
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema", "metadata": {"name": "f"}}),
            json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "i"}}),
        ];
        let at_24 = problems(&objects, 24);
        assert_eq!(at_24.len(), 1, "{at_24:?}");
        assert!(
            at_24[0].starts_with("Ingress/i uses `extensions/v1beta1`"),
            "{at_24:?}"
        );
        assert!(at_24[0].contains("use networking.k8s.io/v1"), "{at_24:?}");
        let at_35 = problems(&objects, 35);
        assert_eq!(at_35.len(), 3, "{at_35:?}");
        assert!(at_35[0].contains("PodDisruptionBudget/api uses `policy/v1beta1`, which Kubernetes 1.35 no longer serves (removed in 1.25)"));
        assert!(
            at_35
                .iter()
                .any(|problem| problem.starts_with("FlowSchema/f"))
        );
    }
}
