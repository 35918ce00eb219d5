//! The parameters of `k8s.apply`: the cluster (kubeconfig and context), the folders the
//! manifests are in, the waves in order (each with its wait and timeout), the template
//! values, image rewrites, the namespace for objects that name none, and the load balancer
//! Service to wait for. Durations and the Service's `NAMESPACE/NAME` parse here, with the
//! rest; planning reads them with stand-ins for what only earlier steps know.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::load_balancer::{Service, service};
use super::manifests::{self, ImageRewrite};
use super::secrets::SecretSource;
use crate::playbook::duration;
use crate::steps::{StepError, params};

/// How long a wave's rollouts, and the load balancer's address, may take by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// The parameters of a `k8s.apply` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    pub(super) kubeconfig: PathBuf,
    #[serde(default)]
    pub(super) context: Option<String>,
    pub(super) sources: Vec<PathBuf>,
    pub(super) waves: Vec<Wave>,
    #[serde(default)]
    values: Map<String, Value>,
    #[serde(default)]
    pub(super) secrets: Vec<SecretSource>,
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    pub(super) images: Vec<ImageRewrite>,
    #[serde(default = "yes")]
    pub(super) verify_images: bool,
    #[serde(default = "default_namespace")]
    pub(super) namespace: String,
    #[serde(default, deserialize_with = "service")]
    pub(super) load_balancer: Option<Service>,
    #[serde(default, deserialize_with = "duration::optional")]
    load_balancer_timeout: Option<Duration>,
}

/// A wave: files applied together, then waited for (unless `wait: false`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Wave {
    pub(super) name: String,
    pub(super) paths: Vec<String>,
    #[serde(default = "yes")]
    pub(super) wait: bool,
    #[serde(default, deserialize_with = "duration::optional")]
    timeout: Option<Duration>,
}

fn yes() -> bool {
    true
}

fn default_namespace() -> String {
    "default".to_string()
}

impl Wave {
    /// How long its rollouts may take.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_WAIT)
    }
}

/// The run's facts a template may use.
pub(super) struct Facts<'a> {
    pub(super) target_region: &'a str,
    pub(super) source_region: &'a str,
    pub(super) run_id: &'a str,
}

impl Params {
    /// The parameters as planning sees them, and whether the manifests' folders are known.
    /// Planning gets only what is known before the run: the kubeconfig is not (the cluster
    /// step writes it; planning never connects), nor are `sources` that a step which has
    /// not been planned provides. Stand-ins take their place, so everything else is checked
    /// as the run will check it.
    pub(super) fn for_plan(value: &Value) -> Result<(Self, bool), StepError> {
        let mut known = value.clone();
        let sources_known = value.get("sources").is_some();
        if let Value::Object(map) = &mut known {
            map.entry("kubeconfig")
                .or_insert_with(|| Value::String(String::new()));
            map.entry("sources")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        Ok((params(&known)?, sources_known))
    }

    /// The cluster's Kubernetes version, as given.
    pub(super) fn kubernetes_version(&self) -> Option<&str> {
        self.kubernetes_version.as_deref()
    }

    /// The minor of the cluster's Kubernetes version, when given (`1.35` → 35).
    pub(super) fn kubernetes_minor(&self) -> Option<u32> {
        let version = self.kubernetes_version.as_deref()?;
        super::removed_apis::minor(version)
    }

    /// How long the load balancer may take to get an address.
    pub(super) fn load_balancer_timeout(&self) -> Duration {
        self.load_balancer_timeout.unwrap_or(DEFAULT_WAIT)
    }

    /// The waves' names in order, `a → b → c`.
    pub(super) fn wave_names(&self) -> String {
        let names: Vec<&str> = self.waves.iter().map(|wave| wave.name.as_str()).collect();
        names.join(" → ")
    }

    /// What templates render with: the run's facts and the playbook's `values`.
    pub(super) fn render_context(&self, facts: &Facts<'_>) -> Value {
        manifests::context(
            &self.values,
            &[
                ("target_region", facts.target_region),
                ("source_region", facts.source_region),
                ("run_id", facts.run_id),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Result<Params, String> {
        let mut value = value;
        value["kubeconfig"] = json!("/k");
        value["sources"] = json!(["."]);
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    #[test]
    fn the_load_balancer_is_a_namespaced_service_with_a_timeout() {
        let waves = json!([{"name": "all", "paths": ["."]}]);
        let given = params(json!({"waves": waves, "load_balancer": "shop/shop-web"})).unwrap();
        assert_eq!(
            given.load_balancer,
            Some(Service {
                namespace: "shop".to_string(),
                name: "shop-web".to_string()
            })
        );
        assert_eq!(given.load_balancer_timeout(), Duration::from_secs(600));
        assert_eq!(params(json!({"waves": waves})).unwrap().load_balancer, None);
        assert_eq!(
            params(json!({"waves": waves, "load_balancer": ""}))
                .unwrap()
                .load_balancer,
            None
        );
        for bad in ["shop-web", "/shop-web", "shop/"] {
            let error = params(json!({"waves": waves, "load_balancer": bad})).unwrap_err();
            assert!(error.contains("NAMESPACE/NAME"), "{error}");
        }
        let slow = params(json!({"waves": waves, "load_balancer_timeout": "90s"})).unwrap();
        assert_eq!(slow.load_balancer_timeout(), Duration::from_secs(90));
        let broken = params(json!({"waves": waves, "load_balancer_timeout": "soon"}));
        assert!(broken.is_err());
    }

    #[test]
    fn waves_wait_ten_minutes_unless_told() {
        let given = params(json!({"waves": [
            {"name": "config", "paths": ["a.yaml"], "wait": false},
            {"name": "backend", "paths": ["b.yaml"], "timeout": "2m"},
        ]}))
        .unwrap();
        assert!(!given.waves[0].wait && given.waves[1].wait);
        assert_eq!(given.waves[0].timeout(), Duration::from_secs(600));
        assert_eq!(given.waves[1].timeout(), Duration::from_secs(120));
        assert_eq!(given.wave_names(), "config → backend");
        let broken = params(json!({"waves": [{"name": "a", "paths": [], "timeout": "5x"}]}));
        assert!(broken.unwrap_err().contains("is not a duration"));
    }

    #[test]
    fn planning_stands_in_for_the_kubeconfig_and_says_when_sources_are_unknown() {
        let waves = json!([{"name": "all", "paths": ["."]}]);
        let (_, known) = Params::for_plan(&json!({"waves": waves})).unwrap();
        assert!(!known);
        let (planned, known) =
            Params::for_plan(&json!({"waves": waves, "sources": ["templates"]})).unwrap();
        assert!(known);
        assert_eq!(planned.sources, [PathBuf::from("templates")]);
        assert!(Params::for_plan(&json!({"sources": ["templates"]})).is_err());
    }
}
