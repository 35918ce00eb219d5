//! A wave from files to the cluster: rendered (its files read from the sources, rendered
//! with the run's context, images rewritten), then applied server-side object by object
//! through the API for the object's kind (discovered once per kind; namespaced kinds get
//! the step's namespace when they name none), then waited for (see
//! [`rollout`](super::rollout)). Each wave done is pinned, and a resume skips the waves
//! pinned before.

use std::collections::HashMap;
use std::path::PathBuf;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
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
async fn apply_wave(
    context: &StepContext,
    cluster: &mut Cluster,
    wave: &Wave,
    rendered: Rendered,
    namespace: &str,
) -> Result<usize, StepError> {
    let count = rendered.objects.len();
    context.progress(format!("wave `{}`: applying {count} objects", wave.name));
    let mut workloads = Vec::new();
    for object in rendered.objects {
        let (workload, live) = cluster.apply(object, namespace).await?;
        if wave.wait && Rollout::of(&live) != Rollout::NotAWorkload {
            workloads.push(workload);
        }
    }
    context.checkpoint(&format!("applied-{}", wave.name))?;
    if !workloads.is_empty() {
        rollout::wait(context, wave, &workloads).await?;
    }
    Ok(count)
}

/// The cluster as server-side apply sees it: a client and the kinds discovered so far.
struct Cluster {
    client: kube::Client,
    kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

impl Cluster {
    fn new(client: kube::Client) -> Self {
        Self {
            client,
            kinds: HashMap::new(),
        }
    }

    /// Server-side apply `object` (forcing our field manager's ownership). Returns it as a
    /// workload to wait for, and its live state.
    async fn apply(
        &mut self,
        mut object: Value,
        namespace: &str,
    ) -> Result<(Workload, Value), StepError> {
        let api = self.api_for(&mut object, namespace).await?;
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

    /// The API for an object's kind (discovered once per kind), fixing its namespace.
    async fn api_for(
        &mut self,
        object: &mut Value,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, StepError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, manifests::kind_of(object));
        if !self.kinds.contains_key(&gvk) {
            let found = kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|error| {
                    kubernetes::error(error, "discovery", &format!("{api_version} {}", gvk.kind))
                })?;
            self.kinds.insert(gvk.clone(), found);
        }
        let (resource, capabilities) = &self.kinds[&gvk];
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
