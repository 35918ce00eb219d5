//! A wave from files to the cluster: rendered (its files read from the sources, rendered
//! with the run's context, images rewritten), then applied server-side through the API for
//! each object's kind (discovered once per group version; namespaced kinds get the step's
//! namespace when they name none), in ranks of kinds — namespaces first, custom resources
//! last ([`rank`]) — each rank's objects at once, then waited for (see
//! [`rollout`](super::rollout)). Each wave done is pinned, and a resume skips the waves
//! pinned before.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{GroupVersion, GroupVersionKind};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use super::Pins;
use super::manifests::{self, ImageRewrite};
use super::parameters::{Params, Wave};
use super::rollout::{self, Rollout, Workload};
use super::sources;
use crate::cloud::kubernetes;
use crate::steps::{StepContext, StepError};

/// A rendered wave: its objects, with images rewritten, and the images they use.
pub(super) struct Rendered {
    pub(super) objects: Vec<Value>,
    pub(super) images: Vec<String>,
}

/// What rendering is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rendering {
    /// The run: every variable must be known.
    Run,
    /// The plan: values from steps that have not run render as `known-after-apply`.
    Plan,
}

/// Render `wave` from the first of `sources` that has each of its paths.
pub(super) fn render(
    wave: &Wave,
    sources: &[PathBuf],
    context: &Value,
    rewrites: &[ImageRewrite],
    rendering: Rendering,
) -> Result<Rendered, StepError> {
    let files = sources::wave_files(sources, &wave.paths)
        .map_err(|error| StepError::Params(format!("wave `{}`: {error}", wave.name)))?;
    let mut objects = Vec::new();
    let mut images = Vec::new();
    for file in files {
        let template = sources::read(&file)?;
        let rendered = match rendering {
            Rendering::Run => manifests::render(&template.name, &template.text, context),
            Rendering::Plan => manifests::render_planned(&template.name, &template.text, context),
        };
        for mut object in rendered.map_err(StepError::Params)? {
            images.extend(manifests::rewrite_images(&mut object, rewrites));
            objects.push(object);
        }
    }
    images.sort();
    images.dedup();
    Ok(Rendered { objects, images })
}

/// Every image of `waves`, sorted, each once.
pub(super) fn images(waves: &[Rendered]) -> Vec<String> {
    let mut images: Vec<String> = waves
        .iter()
        .flat_map(|wave| wave.images.iter().cloned())
        .collect();
    images.sort();
    images.dedup();
    images
}

/// Apply the waves an earlier attempt did not finish, in order, each waited for and pinned.
/// Returns how many objects this attempt applied.
pub(super) async fn apply(
    context: &StepContext,
    client: &kube::Client,
    params: &Params,
    rendered: Vec<Rendered>,
) -> Result<usize, StepError> {
    let done = Pins::read(&context.pins()).waves_applied;
    let mut cluster = Cluster::new(client.clone());
    let mut applied = 0;
    for (index, (wave, rendered)) in params.waves.iter().zip(rendered).enumerate() {
        if index < done {
            context.progress(format!("wave `{}` was applied before; skipped", wave.name));
            continue;
        }
        applied += apply_wave(context, &mut cluster, wave, rendered, &params.namespace).await?;
        Pins {
            waves_applied: index + 1,
        }
        .record(context)?;
        context.progress(format!("wave `{}` is ready", wave.name));
        context.checkpoint(&format!("wave-{}", wave.name))?;
    }
    Ok(applied)
}

/// Apply one wave's objects and wait for its workloads. Returns how many objects it applied.
/// The objects go in ranks of their kinds ([`rank`]), each rank's at once.
async fn apply_wave(
    context: &StepContext,
    cluster: &mut Cluster,
    wave: &Wave,
    rendered: Rendered,
    namespace: &str,
) -> Result<usize, StepError> {
    let count = rendered.objects.len();
    context.progress(format!("wave `{}`: applying {count} objects", wave.name));
    let mut ranks: BTreeMap<u8, Vec<Value>> = BTreeMap::new();
    for object in rendered.objects {
        ranks
            .entry(rank(manifests::kind_of(&object)))
            .or_default()
            .push(object);
    }
    let mut workloads = Vec::new();
    for (_, mut objects) in ranks {
        cluster.discover(&objects).await?;
        let mut applies = Vec::with_capacity(objects.len());
        for object in &mut objects {
            applies.push(cluster.apply(std::mem::take(object), namespace));
        }
        for applied in futures_util::future::join_all(applies).await {
            let (workload, live) = applied?;
            if wave.wait && Rollout::of(&live) != Rollout::NotAWorkload {
                workloads.push(workload);
            }
        }
    }
    context.checkpoint(&format!("applied-{}", wave.name))?;
    if !workloads.is_empty() {
        rollout::wait(context, wave, &workloads).await?;
    }
    Ok(count)
}

/// Where a kind goes in a wave: what other objects refer to goes first, as Helm installs
/// them — namespaces, then custom resource definitions, then policies and classes, then
/// accounts, roles, configuration and storage, then Services, then workloads, then what
/// calls into workloads (webhooks, API services, ingresses), and custom resources last —
/// so that a Deployment's Pods find their ServiceAccount, ConfigMaps and Secrets when the
/// controller makes them. Objects of one rank do not depend on one another and are
/// applied at once.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "PriorityClass"
        | "StorageClass"
        | "IngressClass"
        | "RuntimeClass"
        | "ResourceQuota"
        | "LimitRange"
        | "NetworkPolicy"
        | "PodDisruptionBudget" => 2,
        "ServiceAccount"
        | "Secret"
        | "ConfigMap"
        | "PersistentVolume"
        | "PersistentVolumeClaim"
        | "ClusterRole"
        | "ClusterRoleBinding"
        | "Role"
        | "RoleBinding" => 3,
        "Service" => 4,
        "DaemonSet"
        | "Pod"
        | "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "StatefulSet"
        | "Job"
        | "CronJob"
        | "HorizontalPodAutoscaler" => 5,
        "Ingress"
        | "APIService"
        | "ValidatingWebhookConfiguration"
        | "MutatingWebhookConfiguration" => 6,
        _ => 7,
    }
}

/// The cluster as server-side apply sees it: a client and the kinds of each group version
/// discovered so far.
struct Cluster {
    client: kube::Client,
    groups: HashMap<GroupVersion, Vec<(ApiResource, ApiCapabilities)>>,
}

impl Cluster {
    fn new(client: kube::Client) -> Self {
        Self {
            client,
            groups: HashMap::new(),
        }
    }

    /// Discover, at once, the group versions of `objects` not known yet, or known without
    /// one of their kinds (a custom resource definition applied since may have added it):
    /// one call per group version, whatever its number of kinds.
    async fn discover(&mut self, objects: &[Value]) -> Result<(), StepError> {
        let mut wanted: Vec<(GroupVersion, String)> = Vec::new();
        for object in objects {
            let (group_version, kind) = group_version_kind(object);
            let known = self
                .groups
                .get(&group_version)
                .is_some_and(|kinds| kinds.iter().any(|(resource, _)| resource.kind == kind));
            if !known && !wanted.iter().any(|(wanted, _)| *wanted == group_version) {
                let label = format!("{} {kind}", group_version.api_version());
                wanted.push((group_version, label));
            }
        }
        let mut lookups = Vec::with_capacity(wanted.len());
        for (group_version, _) in &wanted {
            lookups.push(kube::discovery::pinned_group(&self.client, group_version));
        }
        let found = futures_util::future::join_all(lookups).await;
        for ((group_version, label), found) in wanted.into_iter().zip(found) {
            let group = found.map_err(|error| kubernetes::error(error, "discovery", &label))?;
            let kinds = group.versioned_resources(&group_version.version);
            self.groups.insert(group_version, kinds);
        }
        Ok(())
    }

    /// Server-side apply `object` (forcing our field manager's ownership). Returns it as a
    /// workload to wait for, and its live state. Its kind is discovered already.
    async fn apply(
        &self,
        mut object: Value,
        namespace: &str,
    ) -> Result<(Workload, Value), StepError> {
        let api = self.api_for(&mut object, namespace)?;
        let name = manifests::name_of(&object).unwrap_or_default().to_string();
        let label = format!("{}/{}", manifests::kind_of(&object), name);
        let object: DynamicObject = serde_json::from_value(object).map_err(|error| {
            StepError::Params(format!("`{label}` is not a Kubernetes object: {error}"))
        })?;
        let live = api
            .patch(
                &name,
                &PatchParams::apply("rebuild").force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|error| kubernetes::error(error, "server-side apply", &label))?;
        let live = serde_json::to_value(&live).unwrap_or_default();
        Ok((
            Workload {
                api,
                name,
                label,
                applied: live.clone(),
            },
            live,
        ))
    }

    /// The API for an object's kind (discovered by [`Cluster::discover`]), fixing its
    /// namespace.
    fn api_for(
        &self,
        object: &mut Value,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, StepError> {
        let (group_version, kind) = group_version_kind(object);
        let found = self
            .groups
            .get(&group_version)
            .and_then(|kinds| kinds.iter().find(|(resource, _)| resource.kind == kind));
        let Some((resource, capabilities)) = found else {
            let gvk = GroupVersionKind::gvk(&group_version.group, &group_version.version, &kind);
            let error = kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(format!(
                "{gvk:?}"
            )));
            let label = format!("{} {kind}", group_version.api_version());
            return Err(kubernetes::error(error, "discovery", &label).into());
        };
        Ok(if capabilities.scope == Scope::Namespaced {
            manifests::default_namespace(object, namespace);
            let namespace = manifests::namespace_of(object)
                .unwrap_or(namespace)
                .to_string();
            Api::namespaced_with(self.client.clone(), &namespace, resource)
        } else {
            manifests::clear_namespace(object);
            Api::all_with(self.client.clone(), resource)
        })
    }
}

/// An object's group version (from `apiVersion`) and kind.
fn group_version_kind(object: &Value) -> (GroupVersion, String) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    (
        GroupVersion::gv(group, version),
        manifests::kind_of(object).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::rank;

    #[test]
    fn what_others_refer_to_is_applied_first_and_custom_resources_last() {
        let order = [
            "Namespace",
            "CustomResourceDefinition",
            "NetworkPolicy",
            "ServiceAccount",
            "Service",
            "Deployment",
            "MutatingWebhookConfiguration",
            "Certificate",
        ];
        let ranks: Vec<u8> = order.iter().map(|kind| rank(kind)).collect();
        assert!(ranks.windows(2).all(|pair| pair[0] < pair[1]), "{ranks:?}");
        assert_eq!(rank("ConfigMap"), rank("Secret"));
        assert_eq!(rank("Job"), rank("Deployment"));
    }
}
