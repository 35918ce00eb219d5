//! `k8s.apply`: render manifests (the config repo's and `templates/`) with the run's
//! context, rewrite images to the target region's registry and check in ECR that every one
//! exists there (in the plan, before anything is applied), then server-side apply them wave
//! by wave in the playbook's order, waiting after each wave for Deployments, StatefulSets
//! and DaemonSets to be available and Jobs to complete. Each finished wave is pinned in the
//! journal, so a resume restarts at the wave that failed. Last, when the step names a
//! `LoadBalancer` Service, wait for its address and output it (for `dns.cutover`).
//!
//! [`parameters`] reads the parameters, [`sources`] finds and reads a wave's files,
//! [`manifests`] renders and rewrites them (pure), [`images`] checks the images in ECR,
//! [`waves`] applies a wave server-side, [`rollout`] judges and waits for its workloads, and
//! [`load_balancer`] waits for the Service's address.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};
use crate::steps::{
    Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, interface, params,
};

use self::parameters::{Facts, Params};
use self::waves::{Rendered, Rendering};

mod images;
mod load_balancer;
mod manifests;
mod parameters;
mod removed_apis;
mod rollout;
mod secrets;
mod sources;
mod waves;

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
            name: "kubernetes_version",
            required: false,
            help: "the cluster's Kubernetes version (e.g. `1.35`): the plan refuses manifests that use APIs it no longer serves",
        },
        ParamSpec {
            name: "secrets",
            required: false,
            help: "Secrets made before the first wave: `[{name, namespace, from_aws_secret, keys}]` (a Secrets Manager secret in the target region, its JSON fields mapped to keys) or `[{name, namespace, data}]`",
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
pub(crate) struct K8sApply;

/// What a `k8s.apply` step outputs.
#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    /// Every wave's name, in order.
    waves_applied: Vec<String>,
    /// How many objects this attempt applied.
    objects: usize,
    /// Every image the manifests use, after rewriting.
    images: Vec<String>,
    /// The load balancer's address, when the step names its Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    load_balancer: Option<String>,
    /// The DNS record type for that address (`A`, `AAAA` or `CNAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    load_balancer_record_type: Option<String>,
}

/// What an attempt pins: how many waves are applied, so a resume starts at the next one.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    #[serde(default)]
    waves_applied: usize,
}

impl Pins {
    /// What earlier attempts pinned (nothing: no wave applied).
    fn read(pins: &Values) -> Self {
        interface::read_pins(pins).unwrap_or_default()
    }

    /// Pin every field.
    fn record(&self, context: &StepContext) -> Result<(), StepError> {
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            for (name, value) in fields {
                context.pin(&name, value)?;
            }
        }
        Ok(())
    }
}

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
        let (params, sources_known) = Params::for_plan(params_value)?;
        if !sources_known {
            return Ok(StepPlan::new(
                Action::Unknown,
                "manifests come from a step that has not run yet",
            )
            .detail("waves", params.wave_names()));
        }
        let done = Pins::read(&context.pins).waves_applied;
        let facts = Facts {
            target_region: &context.target_region,
            source_region: &context.source_region,
            run_id: context.run_id.as_deref().unwrap_or("<run-id>"),
        };
        let planned = render_for_plan(&params, done, &params.render_context(&facts));
        let mut plan = planned.plan(&params, done);
        if let Some(version) = params.kubernetes_version()
            && params.kubernetes_minor().is_none()
        {
            plan.problems.push(StepProblem::from(format!(
                "`kubernetes_version` `{version}` is not a Kubernetes version like `1.35`"
            )));
        }
        let (shown, problems) = secrets::plan(context, &params.secrets, &params.namespace).await?;
        if let Some(shown) = shown {
            plan = plan.detail("secrets", shown);
        }
        plan.problems.extend(problems);
        if params.verify_images {
            let unchecked = images::unchecked(&planned.images);
            if !unchecked.is_empty() {
                plan = plan.detail("images not checked (not in ECR)", unchecked.join(", "));
            }
            let region = &context.target_region;
            let missing =
                images::missing(&context.cloud.ecr(region), region, &planned.images).await?;
            if !missing.is_empty() {
                plan.problems.push(StepProblem::from(format!(
                    "{}; {}",
                    images::missing_message(&missing, region),
                    images::MISSING_HINT
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
        let facts = Facts {
            target_region: &context.target_region,
            source_region: &context.source_region,
            run_id: &context.run_id,
        };
        let render_context = params.render_context(&facts);
        let rendered = params
            .waves
            .iter()
            .map(|wave| {
                let rewrites = &params.images;
                waves::render(
                    wave,
                    &params.sources,
                    &render_context,
                    rewrites,
                    Rendering::Run,
                )
            })
            .collect::<Result<Vec<Rendered>, StepError>>()?;
        let images = waves::images(&rendered);
        // Read-only, at once: the images' check, the connection to the cluster and the
        // secrets' values. Nothing is applied unless all three succeed.
        let verified = async {
            if params.verify_images {
                verify_images(context, &images).await
            } else {
                Ok(())
            }
        };
        let connected = async {
            Ok(context
                .cloud
                .kubernetes(&params.kubeconfig, params.context.as_deref())
                .await?)
        };
        let ((), client, values) =
            tokio::try_join!(verified, connected, secrets::read(context, &params.secrets))?;
        secrets::apply(context, &client, &params.secrets, values, &params.namespace).await?;
        let objects = waves::apply(context, &client, &params, rendered).await?;
        let (load_balancer, load_balancer_record_type) = match &params.load_balancer {
            Some(service) => {
                let limit = params.load_balancer_timeout();
                let address = load_balancer::wait(context, &client, service, limit).await?;
                context.progress(format!("load balancer of `{service}`: {address}"));
                let record_type = load_balancer::record_type(&address).to_string();
                (Some(address), Some(record_type))
            }
            None => (None, None),
        };
        interface::outputs(&Outputs {
            waves_applied: params.waves.iter().map(|wave| wave.name.clone()).collect(),
            objects,
            images,
            load_balancer,
            load_balancer_record_type,
        })
    }
}

/// Refuse to apply anything when an image is missing from the target region's registry.
async fn verify_images(context: &StepContext, images: &[String]) -> Result<(), StepError> {
    let region = &context.target_region;
    let missing = images::missing(&context.cloud.ecr(region), region, images).await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(StepError::Refused {
        message: images::missing_message(&missing, region),
        hint: images::MISSING_HINT.to_string(),
    })
}

/// What the plan found rendering the waves not applied yet.
struct PlannedWaves {
    objects: usize,
    /// Images known now, sorted, each once.
    images: Vec<String>,
    /// Images that name a value known only after earlier steps run.
    unknown_images: Vec<String>,
    problems: Vec<StepProblem>,
}

/// Render the waves after the first `done` for the plan. Values from steps that have not
/// run render as `known-after-apply`; every other mistake (a missing file, bad syntax, bad
/// YAML) is a problem now, not mid-run.
fn render_for_plan(params: &Params, done: usize, context: &Value) -> PlannedWaves {
    let mut objects = 0;
    let mut images = Vec::new();
    let mut problems = Vec::new();
    for wave in params.waves.iter().skip(done) {
        let rewrites = &params.images;
        match waves::render(wave, &params.sources, context, rewrites, Rendering::Plan) {
            Ok(rendered) => {
                objects += rendered.objects.len();
                if let Some(minor) = params.kubernetes_minor() {
                    let removed = removed_apis::problems(&rendered.objects, minor);
                    problems.extend(removed.into_iter().map(|problem| {
                        StepProblem::from(format!("wave `{}`: {problem}", wave.name))
                    }));
                }
                images.extend(rendered.images);
            }
            Err(error) => {
                problems.push(StepProblem::from(format!("wave `{}`: {error}", wave.name)))
            }
        }
    }
    let (unknown_images, mut images): (Vec<String>, Vec<String>) = images
        .into_iter()
        .partition(|image| image.contains(manifests::NOT_KNOWN_YET));
    images.sort();
    images.dedup();
    PlannedWaves {
        objects,
        images,
        unknown_images,
        problems,
    }
}

impl PlannedWaves {
    /// The step's plan: what will be applied, and the problems found so far.
    fn plan(&self, params: &Params, done: usize) -> StepPlan {
        let waves = params.waves.len();
        let mut plan = StepPlan::new(
            Action::Create,
            format!(
                "apply {} objects in {} wave(s)",
                self.objects,
                waves - done.min(waves)
            ),
        )
        .detail("waves", params.wave_names())
        .detail("images", self.images.join(", "));
        plan.problems.clone_from(&self.problems);
        if let Some(service) = &params.load_balancer {
            plan = plan.detail(
                "load balancer",
                format!("address of Service `{service}` (known after apply)"),
            );
        }
        if !self.unknown_images.is_empty() {
            plan = plan.detail("images known after apply", self.unknown_images.join(", "));
        }
        if done > 0 {
            plan = plan.detail("already applied", format!("{done} wave(s)"));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &json!({
                "kubeconfig": "/run/cluster/kubeconfig",
                "context": "rebuild",
                "sources": ["config", "templates"],
                "waves": [{"name": "all", "paths": ["."], "wait": true, "timeout": "5m"}],
                "values": {"image_tag": "v1"},
                "kubernetes_version": "1.35",
                "secrets": [{"name": "db", "from_aws_secret": "arn:db", "keys": {"DB_PASSWORD": "password"}}],
                "images": [{"from": "a.example", "to": "b.example"}],
                "verify_images": false,
                "namespace": "shop",
                "load_balancer": "shop/shop-web",
                "load_balancer_timeout": "90s",
            }),
        );
    }

    #[test]
    fn pins_count_the_waves_applied() {
        assert_eq!(Pins::read(&Values::new()).waves_applied, 0);
        let pinned = Values::from([("waves_applied".to_string(), json!(2))]);
        assert_eq!(Pins::read(&pinned).waves_applied, 2);
        let odd = Values::from([("waves_applied".to_string(), json!("two"))]);
        assert_eq!(Pins::read(&odd).waves_applied, 0);
    }

    #[test]
    fn outputs_leave_out_the_load_balancer_unless_there_is_one() {
        let outputs = |load_balancer: Option<&str>| {
            interface::outputs(&Outputs {
                waves_applied: vec!["all".into()],
                objects: 3,
                images: vec![],
                load_balancer: load_balancer.map(str::to_string),
                load_balancer_record_type: load_balancer.map(|_| "A".to_string()),
            })
            .unwrap()
        };
        let keys = |values: Values| values.into_keys().collect::<Vec<_>>();
        assert_eq!(keys(outputs(None)), ["images", "objects", "waves_applied"]);
        assert_eq!(
            outputs(Some("203.0.113.7"))["load_balancer_record_type"],
            "A"
        );
    }
}
