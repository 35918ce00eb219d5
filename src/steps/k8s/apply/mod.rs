//! `k8s.apply`: render manifests (the config repo's and `templates/`) with the run's
//! context, rewrite images to the target region's registry and check in ECR that every one
//! exists there (in the plan, before anything is applied), then server-side apply them wave
//! by wave in the playbook's order, waiting after each wave for Deployments, StatefulSets
//! and DaemonSets to be available and Jobs to complete. Each finished wave is pinned in the
//! journal, so a resume restarts at the wave that failed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cloud::kubernetes;
use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec, duration};

use self::manifests::{EcrImage, ImageReference, ImageRewrite, Rollout};
use crate::steps::context::Poll;
use crate::steps::{
    Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params,
};

mod manifests;

static SPEC: KindSpec = KindSpec {
    kind: "k8s.apply",
    summary: "render manifests, check images in the target registry, server-side apply wave by wave, wait for rollouts",
    parameters: &[
        ParamSpec {
            name: "kubeconfig",
            required: true,
            help: "kubeconfig of the cluster (the cluster step's `kubeconfig` output)",
        },
        ParamSpec {
            name: "context",
            required: false,
            help: "kubeconfig context (default: its current one)",
        },
        ParamSpec {
            name: "sources",
            required: true,
            help: "folders holding the manifests (e.g. the config repo checkout, `templates`)",
        },
        ParamSpec {
            name: "waves",
            required: true,
            help: "ordered waves: `{name, paths, wait (default true), timeout (default 10m)}`",
        },
        ParamSpec {
            name: "values",
            required: false,
            help: "template variables (database endpoint, image tag, ...)",
        },
        ParamSpec {
            name: "images",
            required: false,
            help: "registry rewrites: `[{from, to}]`",
        },
        ParamSpec {
            name: "verify_images",
            required: false,
            help: "check every target-region ECR image exists (default true)",
        },
        ParamSpec {
            name: "namespace",
            required: false,
            help: "namespace for objects that name none (default `default`)",
        },
        ParamSpec {
            name: "load_balancer",
            required: false,
            help: "`NAMESPACE/NAME` of a `LoadBalancer` Service: wait for its address after the last wave and output it (for `dns.cutover`)",
        },
        ParamSpec {
            name: "load_balancer_timeout",
            required: false,
            help: "how long to wait for the load balancer's address (default 10m)",
        },
    ],
    outputs: &[
        "waves_applied",
        "objects",
        "images",
        "load_balancer",
        "load_balancer_record_type",
    ],
};

/// The `k8s.apply` step kind.
pub struct K8sApply;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    kubeconfig: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    waves: Vec<Wave>,
    #[serde(default)]
    values: Map<String, Value>,
    #[serde(default)]
    images: Vec<ImageRewrite>,
    #[serde(default = "yes")]
    verify_images: bool,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    load_balancer: Option<String>,
    #[serde(default)]
    load_balancer_timeout: Option<String>,
}

impl Params {
    /// The load balancer Service, `(namespace, name)`.
    fn load_balancer(&self) -> Result<Option<(String, String)>, StepError> {
        let Some(text) = self.load_balancer.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                Ok(Some((namespace.to_string(), name.to_string())))
            }
            _ => Err(StepError::Params(format!(
                "`load_balancer` is `{text}`; give the Service as `NAMESPACE/NAME`, e.g. `shop/shop-web`"
            ))),
        }
    }

    fn load_balancer_timeout(&self) -> Result<Duration, StepError> {
        match &self.load_balancer_timeout {
            Some(text) => duration::parse(text)
                .map_err(|error| StepError::Params(format!("`load_balancer_timeout`: {error}"))),
            None => Ok(Duration::from_secs(600)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wave {
    name: String,
    paths: Vec<String>,
    #[serde(default = "yes")]
    wait: bool,
    #[serde(default)]
    timeout: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_namespace() -> String {
    "default".to_string()
}

impl Wave {
    fn timeout(&self) -> Result<Duration, StepError> {
        match &self.timeout {
            Some(text) => duration::parse(text).map_err(|error| {
                StepError::Params(format!("wave `{}` timeout: {error}", self.name))
            }),
            None => Ok(Duration::from_secs(600)),
        }
    }
}

/// A rendered wave: its objects, with images rewritten.
struct Rendered {
    objects: Vec<Value>,
    images: Vec<String>,
}

fn render_wave(
    wave: &Wave,
    sources: &[PathBuf],
    context: &Value,
    rewrites: &[ImageRewrite],
    planned: bool,
) -> Result<Rendered, StepError> {
    let files = manifests::wave_files(sources, &wave.paths)
        .map_err(|error| StepError::Params(format!("wave `{}`: {error}", wave.name)))?;
    let mut objects = Vec::new();
    let mut images = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).map_err(|error| {
            StepError::Params(format!("cannot read `{}`: {error}", file.display()))
        })?;
        let name = file.display().to_string();
        let objects_of = if planned {
            manifests::render_planned(&name, &source, context)
        } else {
            manifests::render(&name, &source, context)
        };
        for mut object in objects_of.map_err(StepError::Params)? {
            images.extend(manifests::rewrite_images(&mut object, rewrites));
            objects.push(object);
        }
    }
    images.sort();
    images.dedup();
    Ok(Rendered { objects, images })
}

fn render_context(params: &Params, facts: (&str, &str, &str)) -> Value {
    manifests::context(
        &params.values,
        &[
            ("target_region", facts.0),
            ("source_region", facts.1),
            ("run_id", facts.2),
        ],
    )
}

/// Images (in the target region's ECR) that are missing there.
async fn missing_images(
    ecr: &aws_sdk_ecr::Client,
    region: &str,
    images: &[String],
) -> Result<Vec<String>, CloudError> {
    let mut missing = Vec::new();
    for image in images {
        let Some(EcrImage {
            region: image_region,
            repository,
            reference,
        }) = manifests::parse_ecr(image)
        else {
            continue;
        };
        if image_region != region {
            missing.push(format!("{image} (not in the target region's registry)"));
            continue;
        }
        let id = match &reference {
            ImageReference::Tag(tag) => aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
            ImageReference::Digest(digest) => aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        };
        match ecr
            .describe_images()
            .repository_name(&repository)
            .image_ids(id)
            .send()
            .await
            .cloud("DescribeImages", Some(image.clone()))
        {
            Ok(answer) if !answer.image_details().is_empty() => {}
            Ok(_) => missing.push(image.clone()),
            Err(error)
                if error.is("ImageNotFoundException")
                    || error.is("RepositoryNotFoundException") =>
            {
                missing.push(image.clone());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(missing)
}

fn missing_images_message(missing: &[String], region: &str) -> String {
    format!(
        "{} image(s) missing from the registry in `{region}`: {}",
        missing.len(),
        missing.join(", ")
    )
}

const MISSING_IMAGES_HINT: &str = "replicate the images to the target region's ECR (or fix the `images` rewrite), then run again; deploying them would only crash-loop";

#[async_trait]
impl Step for K8sApply {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        let load_balancer = params.load_balancer()?;
        params.load_balancer_timeout()?;
        let waves: Vec<&str> = params.waves.iter().map(|wave| wave.name.as_str()).collect();
        let done = context
            .pins
            .get("waves_applied")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let Some(sources) = &params.sources else {
            return Ok(StepPlan::new(
                Action::Unknown,
                "manifests come from a step that has not run yet",
            )
            .detail("waves", waves.join(" → ")));
        };
        let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
        let facts = (
            context.target_region.as_str(),
            context.source_region.as_str(),
            context.run_id.as_deref().unwrap_or("<run-id>"),
        );
        let render_context = render_context(&params, facts);
        let mut objects = 0;
        let mut images = Vec::new();
        let mut problems = Vec::new();
        for wave in params.waves.iter().skip(done) {
            // Values from steps that have not run render as `known-after-apply`; every other
            // mistake (a missing file, bad syntax, bad YAML) is a problem now, not mid-run.
            match render_wave(wave, &sources, &render_context, &params.images, true) {
                Ok(rendered) => {
                    objects += rendered.objects.len();
                    images.extend(rendered.images);
                }
                Err(error) => problems.push(format!("wave `{}`: {error}", wave.name)),
            }
        }
        let (unknown_images, mut images): (Vec<String>, Vec<String>) = images
            .into_iter()
            .partition(|image| image.contains(manifests::NOT_KNOWN_YET));
        images.sort();
        images.dedup();
        let mut plan = StepPlan::new(
            Action::Create,
            format!(
                "apply {objects} objects in {} wave(s)",
                waves.len() - done.min(waves.len())
            ),
        )
        .detail("waves", waves.join(" → "))
        .detail("images", images.join(", "));
        plan.problems = problems.into_iter().map(StepProblem::from).collect();
        if let Some((namespace, name)) = &load_balancer {
            plan = plan.detail(
                "load balancer",
                format!("address of Service `{namespace}/{name}` (known after apply)"),
            );
        }
        if !unknown_images.is_empty() {
            plan = plan.detail("images known after apply", unknown_images.join(", "));
        }
        if done > 0 {
            plan = plan.detail("already applied", format!("{done} wave(s)"));
        }
        if params.verify_images {
            let missing = missing_images(
                &context.cloud.ecr(&context.target_region),
                &context.target_region,
                &images,
            )
            .await?;
            if !missing.is_empty() {
                plan.problems.push(StepProblem::from(format!(
                    "{}; {MISSING_IMAGES_HINT}",
                    missing_images_message(&missing, &context.target_region)
                )));
            }
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let load_balancer = params.load_balancer()?;
        let load_balancer_timeout = params.load_balancer_timeout()?;
        let kubeconfig = params
            .kubeconfig
            .as_deref()
            .ok_or_else(|| StepError::Params("`kubeconfig` is required".into()))?;
        let sources: Vec<PathBuf> = params
            .sources
            .clone()
            .ok_or_else(|| StepError::Params("`sources` is required".into()))?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let facts = (
            context.target_region.as_str(),
            context.source_region.as_str(),
            context.run_id.as_str(),
        );
        let render_context = render_context(&params, facts);
        let mut rendered = Vec::new();
        for wave in &params.waves {
            rendered.push(render_wave(
                wave,
                &sources,
                &render_context,
                &params.images,
                false,
            )?);
        }
        let all_images: Vec<String> = {
            let mut images: Vec<String> = rendered.iter().flat_map(|r| r.images.clone()).collect();
            images.sort();
            images.dedup();
            images
        };
        if params.verify_images {
            let missing = missing_images(
                &context.cloud.ecr(&context.target_region),
                &context.target_region,
                &all_images,
            )
            .await?;
            if !missing.is_empty() {
                return Err(StepError::Refused {
                    message: missing_images_message(&missing, &context.target_region),
                    hint: MISSING_IMAGES_HINT.to_string(),
                });
            }
        }
        let client =
            kubernetes::client(std::path::Path::new(kubeconfig), params.context.as_deref()).await?;
        let mut kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> = HashMap::new();
        let done = context
            .pinned("waves_applied")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        let mut applied = 0;
        for (index, (wave, rendered)) in params.waves.iter().zip(rendered).enumerate() {
            if index < done {
                context.progress(format!("wave `{}` was applied before; skipped", wave.name));
                continue;
            }
            context.progress(format!(
                "wave `{}`: applying {} objects",
                wave.name,
                rendered.objects.len()
            ));
            let mut workloads = Vec::new();
            for mut object in rendered.objects {
                let api = api_for(&client, &mut kinds, &mut object, &params.namespace).await?;
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
                applied += 1;
                if wave.wait
                    && manifests::rollout(&serde_json::to_value(&live).unwrap_or_default())
                        != Rollout::NotAWorkload
                {
                    workloads.push((api, name, label));
                }
            }
            context.checkpoint(&format!("applied-{}", wave.name))?;
            if !workloads.is_empty() {
                wait_for_rollouts(context, wave, &workloads).await?;
            }
            context.pin("waves_applied", json!(index + 1))?;
            context.progress(format!("wave `{}` is ready", wave.name));
            context.checkpoint(&format!("wave-{}", wave.name))?;
        }
        let mut outputs = Values::new();
        if let Some((namespace, name)) = &load_balancer {
            let address =
                wait_for_load_balancer(context, &client, namespace, name, load_balancer_timeout)
                    .await?;
            let record_type = record_type(&address);
            context.progress(format!("load balancer of `{namespace}/{name}`: {address}"));
            outputs.insert("load_balancer".to_string(), json!(address));
            outputs.insert("load_balancer_record_type".to_string(), json!(record_type));
        }
        outputs.extend(Values::from([
            (
                "waves_applied".to_string(),
                json!(
                    params
                        .waves
                        .iter()
                        .map(|w| w.name.clone())
                        .collect::<Vec<_>>()
                ),
            ),
            ("objects".to_string(), json!(applied)),
            ("images".to_string(), json!(all_images)),
        ]));
        Ok(outputs)
    }
}

/// The DNS record type that points at a load balancer's address.
fn record_type(address: &str) -> &'static str {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "A",
        Ok(std::net::IpAddr::V6(_)) => "AAAA",
        Err(_) => "CNAME",
    }
}

/// Wait until the Service's load balancer has an address (a hostname on AWS, an IP on
/// some clouds) and return it.
async fn wait_for_load_balancer(
    context: &StepContext,
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<String, StepError> {
    let label = format!("Service/{name} in `{namespace}`");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), namespace);
    let what = format!("the load balancer of `{namespace}/{name}`");
    let waiting = context.wait_for(&what, || async {
        let service = services
            .get_opt(name)
            .await
            .map_err(|error| kubernetes::error(error, "get", &label))?;
        let Some(service) = service else {
            return Err(StepError::Refused {
                message: format!("{label} does not exist, so it has no load balancer"),
                hint: "check `load_balancer` against the manifests' Services, then `rebuild resume`".to_string(),
            });
        };
        let kind = service
            .spec
            .as_ref()
            .and_then(|spec| spec.type_.clone())
            .unwrap_or_default();
        if kind != "LoadBalancer" {
            return Err(StepError::Refused {
                message: format!("{label} is of type `{kind}`, not `LoadBalancer`"),
                hint: "point `load_balancer` at the Service of type LoadBalancer, then `rebuild resume`".to_string(),
            });
        }
        let address = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|balancer| balancer.ingress.as_ref())
            .and_then(|ingress| ingress.first())
            .and_then(|first| first.hostname.clone().or_else(|| first.ip.clone()));
        Ok(match address {
            Some(address) => Poll::Ready(address),
            None => Poll::Pending("no address yet".to_string()),
        })
    });
    match tokio::time::timeout(limit, waiting).await {
        Ok(result) => result,
        Err(_) => Err(StepError::Refused {
            message: format!(
                "{label} got no load balancer address within {}",
                duration::render(limit)
            ),
            hint: "check the cloud's load balancer controller (`kubectl describe service`, its events); then `rebuild resume` (the waves are not applied again)".to_string(),
        }),
    }
}

/// The API for an object's kind (discovered once per kind), fixing its namespace.
async fn api_for(
    client: &kube::Client,
    kinds: &mut HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    object: &mut Value,
    namespace: &str,
) -> Result<Api<DynamicObject>, StepError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, manifests::kind_of(object));
    if !kinds.contains_key(&gvk) {
        let found = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|error| {
                kubernetes::error(error, "discovery", &format!("{api_version} {}", gvk.kind))
            })?;
        kinds.insert(gvk.clone(), found);
    }
    let (resource, capabilities) = &kinds[&gvk];
    Ok(if capabilities.scope == Scope::Namespaced {
        manifests::default_namespace(object, namespace);
        let namespace = manifests::namespace_of(object)
            .unwrap_or(namespace)
            .to_string();
        Api::namespaced_with(client.clone(), &namespace, resource)
    } else {
        manifests::clear_namespace(object);
        Api::all_with(client.clone(), resource)
    })
}

async fn wait_for_rollouts(
    context: &StepContext,
    wave: &Wave,
    workloads: &[(Api<DynamicObject>, String, String)],
) -> Result<(), StepError> {
    let limit = wave.timeout()?;
    let what = format!("wave `{}` to roll out", wave.name);
    let waiting = context.wait_for(&what, || async {
        let mut pending = Vec::new();
        for (api, name, label) in workloads {
            let live = api
                .get(name)
                .await
                .map_err(|error| kubernetes::error(error, "get", label))?;
            match manifests::rollout(&serde_json::to_value(&live).unwrap_or_default()) {
                Rollout::Ready | Rollout::NotAWorkload => {}
                Rollout::Progressing(why) => pending.push(format!("{label}: {why}")),
                Rollout::Failed(why) => {
                    return Err(StepError::BadState {
                        resource: label.clone(),
                        status: why,
                    });
                }
            }
        }
        Ok(if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending(pending.join("; "))
        })
    });
    match tokio::time::timeout(limit, waiting).await {
        Ok(result) => result,
        Err(_) => {
            let mut stuck = Vec::new();
            for (api, name, label) in workloads {
                if let Ok(live) = api.get(name).await
                    && let Rollout::Progressing(why) =
                        manifests::rollout(&serde_json::to_value(&live).unwrap_or_default())
                {
                    stuck.push(format!("{label}: {why}"));
                }
            }
            Err(StepError::Refused {
                message: format!(
                    "wave `{}` did not roll out within {}: {}",
                    wave.name,
                    duration::render(limit),
                    stuck.join("; ")
                ),
                hint: "look at the pods (`kubectl describe`, events, image pulls); fix the cause, then `rebuild resume` retries this wave only".to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: Value) -> Params {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_load_balancer_is_a_namespaced_service_with_a_timeout() {
        let waves = json!([{"name": "all", "paths": ["."]}]);
        let given = params(json!({"waves": waves, "load_balancer": "shop/shop-web"}));
        assert_eq!(
            given.load_balancer().unwrap(),
            Some(("shop".to_string(), "shop-web".to_string()))
        );
        assert_eq!(
            given.load_balancer_timeout().unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            params(json!({"waves": waves})).load_balancer().unwrap(),
            None
        );
        assert_eq!(
            params(json!({"waves": waves, "load_balancer": ""}))
                .load_balancer()
                .unwrap(),
            None
        );
        for bad in ["shop-web", "/shop-web", "shop/"] {
            let error = params(json!({"waves": waves, "load_balancer": bad}))
                .load_balancer()
                .unwrap_err();
            assert!(error.to_string().contains("NAMESPACE/NAME"), "{error}");
        }
        let slow = params(json!({"waves": waves, "load_balancer_timeout": "90s"}));
        assert_eq!(
            slow.load_balancer_timeout().unwrap(),
            Duration::from_secs(90)
        );
        let broken = params(json!({"waves": waves, "load_balancer_timeout": "soon"}));
        assert!(broken.load_balancer_timeout().is_err());
    }

    #[test]
    fn record_types_follow_the_address() {
        assert_eq!(
            record_type("a1b2.elb.ap-southeast-1.amazonaws.com"),
            "CNAME"
        );
        assert_eq!(record_type("203.0.113.7"), "A");
        assert_eq!(record_type("2001:db8::7"), "AAAA");
    }
}
