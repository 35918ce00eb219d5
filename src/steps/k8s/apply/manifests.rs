//! The pure half of `k8s.apply`: render manifest templates with the run's context, split
//! multi-document YAML into objects, rewrite image references to the target region's
//! registry, and judge from an object's status whether a rollout is done. No I/O beyond
//! reading the template files; unit-tested without a cluster.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// Files a wave applies: every `.yaml`/`.yml`/`.j2` file under each path, sorted by name.
pub fn wave_files(roots: &[PathBuf], paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for relative in paths {
        let found = roots
            .iter()
            .map(|root| root.join(relative))
            .find(|path| path.exists());
        let Some(path) = found else {
            let looked: Vec<String> = roots
                .iter()
                .map(|root| root.join(relative).display().to_string())
                .collect();
            return Err(format!(
                "`{relative}` not found (looked in {})",
                looked.join(", ")
            ));
        };
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|error| format!("cannot list `{}`: {error}", path.display()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| is_manifest(file))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "j2")
        )
}

/// Render one template with `context` (undefined variables are errors) and split it into
/// objects; empty documents are dropped.
pub fn render(name: &str, source: &str, context: &Value) -> Result<Vec<Value>, String> {
    render_with(name, source, context, false)
}

/// What a value not known at plan time renders as (see [`render_planned`]).
pub const NOT_KNOWN_YET: &str = "known-after-apply";

/// Render for the plan: variables the context lacks (values that come from steps that have
/// not run, such as the database endpoint) render as [`NOT_KNOWN_YET`] instead of failing,
/// so everything else — syntax, YAML, names, the images — is checked before the run starts.
pub fn render_planned(name: &str, source: &str, context: &Value) -> Result<Vec<Value>, String> {
    render_with(name, source, context, true)
}

fn render_with(
    name: &str,
    source: &str,
    context: &Value,
    planned: bool,
) -> Result<Vec<Value>, String> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    // Manifests are YAML written by people: no auto-escaping (minijinja would JSON-escape
    // `.yaml` files); `{{ value | tojson }}` quotes where needed.
    environment.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let failed = |error: minijinja::Error| format!("cannot render `{name}`: {error:#}");
    let template = environment
        .template_from_named_str(name, source)
        .map_err(failed)?;
    let mut context = context.clone();
    if planned && let Value::Object(map) = &mut context {
        for variable in template.undeclared_variables(false) {
            map.entry(variable)
                .or_insert_with(|| Value::String(NOT_KNOWN_YET.to_string()));
        }
    }
    let text = template
        .render(minijinja::Value::from(minijinja::value::Serde(&context)))
        .map_err(failed)?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|error| format!("`{name}` is not valid YAML after rendering: {error}"))?;
    let objects: Vec<Value> = documents
        .into_iter()
        .filter(|document| !document.is_null())
        .collect();
    for object in &objects {
        if object.get("apiVersion").and_then(Value::as_str).is_none()
            || object.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(format!(
                "`{name}`: every document needs `apiVersion` and `kind`"
            ));
        }
        if name_of(object).is_none() {
            return Err(format!(
                "`{name}`: a `{}` has no `metadata.name`",
                kind_of(object)
            ));
        }
    }
    Ok(objects)
}

/// An object's kind.
pub fn kind_of(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An object's name.
pub fn name_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

/// An object's namespace, if it says.
pub fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

/// A registry rewrite: images starting with `from` are pulled from `to` instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRewrite {
    /// Source registry prefix, e.g. `123456789012.dkr.ecr.ap-southeast-2.amazonaws.com`.
    pub from: String,
    /// Target registry prefix.
    pub to: String,
}

/// Rewrite every container image in `object` (any `containers`/`initContainers` list, at
/// any depth: Deployments, StatefulSets, Jobs, Pods). Returns the images it now uses.
pub fn rewrite_images(object: &mut Value, rewrites: &[ImageRewrite]) -> Vec<String> {
    let mut images = Vec::new();
    visit(object, rewrites, &mut images);
    images
}

fn visit(value: &mut Value, rewrites: &[ImageRewrite], images: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "containers" || key == "initContainers" {
                    if let Value::Array(containers) = child {
                        for container in containers {
                            if let Some(Value::String(image)) = container.get_mut("image") {
                                if let Some(rewrite) =
                                    rewrites.iter().find(|r| image.starts_with(&r.from))
                                {
                                    *image =
                                        format!("{}{}", rewrite.to, &image[rewrite.from.len()..]);
                                }
                                images.push(image.clone());
                            }
                        }
                    }
                } else {
                    visit(child, rewrites, images);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit(item, rewrites, images);
            }
        }
        _ => {}
    }
}

/// An image reference in an ECR registry: (account registry host's region, repository,
/// tag or digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// The region in the registry host.
    pub region: String,
    /// Repository name.
    pub repository: String,
    /// `tag` or `sha256:...` digest.
    pub reference: ImageReference,
}

/// How an image is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// `:tag` (default `latest`).
    Tag(String),
    /// `@sha256:...`.
    Digest(String),
}

/// Parse `ACCOUNT.dkr.ecr.REGION.amazonaws.com/repo[:tag|@digest]`; `None` for other registries.
pub fn parse_ecr(image: &str) -> Option<EcrImage> {
    let (host, rest) = image.split_once('/')?;
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 6 || parts[1] != "dkr" || parts[2] != "ecr" {
        return None;
    }
    let region = parts[3].to_string();
    let (repository, reference) = if let Some((repository, digest)) = rest.split_once('@') {
        (repository, ImageReference::Digest(digest.to_string()))
    } else {
        match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => {
                (repository, ImageReference::Tag(tag.to_string()))
            }
            _ => (rest, ImageReference::Tag("latest".to_string())),
        }
    };
    Some(EcrImage {
        region,
        repository: repository.to_string(),
        reference,
    })
}

/// Where a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Nothing to wait for (not a workload).
    NotAWorkload,
    /// Done.
    Ready,
    /// Not yet, with why.
    Progressing(String),
    /// It will not get there (a failed Job).
    Failed(String),
}

fn number(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// Judge a Deployment, StatefulSet, DaemonSet or Job from its live state.
pub fn rollout(object: &Value) -> Rollout {
    let generation = number(object, "/metadata/generation").unwrap_or(0);
    let observed = number(object, "/status/observedGeneration").unwrap_or(0);
    match kind_of(object) {
        "Deployment" | "StatefulSet" => {
            let wanted = number(object, "/spec/replicas").unwrap_or(1);
            let updated = number(object, "/status/updatedReplicas").unwrap_or(0);
            let ready_field = if kind_of(object) == "Deployment" {
                "/status/availableReplicas"
            } else {
                "/status/readyReplicas"
            };
            let ready = number(object, ready_field).unwrap_or(0);
            if observed >= generation && updated >= wanted && ready >= wanted {
                Rollout::Ready
            } else {
                Rollout::Progressing(format!(
                    "{ready}/{wanted} ready, {updated} updated{}",
                    conditions(object)
                        .map(|c| format!("; conditions: {c}"))
                        .unwrap_or_default()
                ))
            }
        }
        "DaemonSet" => {
            let wanted = number(object, "/status/desiredNumberScheduled").unwrap_or(0);
            let ready = number(object, "/status/numberReady").unwrap_or(0);
            if observed >= generation && ready >= wanted {
                Rollout::Ready
            } else {
                Rollout::Progressing(format!("{ready}/{wanted} ready"))
            }
        }
        "Job" => {
            let completions = number(object, "/spec/completions").unwrap_or(1);
            let succeeded = number(object, "/status/succeeded").unwrap_or(0);
            let failed_condition = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Failed" && c["status"] == "True");
            if succeeded >= completions {
                Rollout::Ready
            } else if failed_condition {
                Rollout::Failed(format!(
                    "failed{}",
                    conditions(object)
                        .map(|c| format!("; conditions: {c}"))
                        .unwrap_or_default()
                ))
            } else {
                Rollout::Progressing(format!("{succeeded}/{completions} completed"))
            }
        }
        _ => Rollout::NotAWorkload,
    }
}

/// `Type=Status (Reason: message)` for each condition.
pub fn conditions(object: &Value) -> Option<String> {
    let list = object.pointer("/status/conditions")?.as_array()?;
    let shown: Vec<String> = list
        .iter()
        .map(|c| {
            let text = |key: &str| {
                c.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut line = format!("{}={}", text("type"), text("status"));
            if !text("reason").is_empty() {
                line.push_str(&format!(" ({}: {})", text("reason"), text("message")));
            }
            line
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// Set `metadata.namespace` on a namespaced object that does not say.
pub fn default_namespace(object: &mut Value, namespace: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_string()));
    }
}

/// Drop `metadata.namespace` (for cluster-scoped kinds).
pub fn clear_namespace(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("namespace");
    }
}

/// The render context: the run's facts plus the playbook's `values`.
pub fn context(values: &Map<String, Value>, facts: &[(&str, &str)]) -> Value {
    let mut context = values.clone();
    for (key, value) in facts {
        context.insert((*key).to_string(), Value::String((*value).to_string()));
    }
    Value::Object(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_rendering_marks_unknown_values_and_still_checks_syntax() {
        let source = "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers:\n    - image: \"{{ registry }}/api:{{ image_tag }}\"\n      env: [{name: DB, value: \"{{ db_endpoint }}\"}]\n";
        let objects = render_planned(
            "app.yaml",
            source,
            &json!({"registry": "r.example", "image_tag": "v1"}),
        )
        .unwrap();
        assert_eq!(
            objects[0]["spec"]["containers"][0]["image"],
            "r.example/api:v1"
        );
        assert_eq!(
            objects[0]["spec"]["containers"][0]["env"][0]["value"],
            NOT_KNOWN_YET
        );
        assert!(
            render(
                "app.yaml",
                source,
                &json!({"registry": "r", "image_tag": "v1"})
            )
            .is_err()
        );
        let broken = render_planned("bad.yaml", "kind: {{ oops", &json!({})).unwrap_err();
        assert!(broken.contains("cannot render `bad.yaml`"), "{broken}");
    }

    #[test]
    fn renders_and_splits_documents_with_strict_variables() {
        let source = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  DB_HOST: \"{{ db_endpoint }}\"\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
        let objects = render("app.yaml", source, &json!({"db_endpoint": "db.example"})).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["data"]["DB_HOST"], "db.example");
        let error = render("app.yaml", source, &json!({})).unwrap_err();
        assert!(error.contains("cannot render `app.yaml`"), "{error}");
        assert!(
            render("x.yaml", "kind: ConfigMap\n", &json!({}))
                .unwrap_err()
                .contains("apiVersion")
        );
    }

    #[test]
    fn rewrites_every_container_image_to_the_target_registry() {
        let mut deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": {
        "initContainers": [{"name": "m", "image": "1.dkr.ecr.ap-southeast-2.amazonaws.com/migrate:v1"}],
        "containers": [
            {"name": "a", "image": "1.dkr.ecr.ap-southeast-2.amazonaws.com/api:v1"},
            {"name": "b", "image": "docker.io/library/nginx:1.25"}
        ]}}}});
        let rewrites = [ImageRewrite {
            from: "1.dkr.ecr.ap-southeast-2.amazonaws.com".into(),
            to: "1.dkr.ecr.ap-southeast-1.amazonaws.com".into(),
        }];
        let images = rewrite_images(&mut deployment, &rewrites);
        assert_eq!(
            images,
            vec![
                "1.dkr.ecr.ap-southeast-1.amazonaws.com/migrate:v1",
                "1.dkr.ecr.ap-southeast-1.amazonaws.com/api:v1",
                "docker.io/library/nginx:1.25"
            ]
        );
        assert_eq!(
            deployment
                .pointer("/spec/template/spec/containers/0/image")
                .unwrap(),
            "1.dkr.ecr.ap-southeast-1.amazonaws.com/api:v1"
        );
    }

    #[test]
    fn parses_ecr_references() {
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/shop/api:v1.2"),
            Some(EcrImage {
                region: "ap-southeast-1".into(),
                repository: "shop/api".into(),
                reference: ImageReference::Tag("v1.2".into())
            })
        );
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/api@sha256:abc")
                .unwrap()
                .reference,
            ImageReference::Digest("sha256:abc".into())
        );
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/api")
                .unwrap()
                .reference,
            ImageReference::Tag("latest".into())
        );
        assert_eq!(parse_ecr("docker.io/library/nginx:1"), None);
    }

    #[test]
    fn judges_rollouts() {
        let ready = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(rollout(&ready), Rollout::Ready);
        let stuck = json!({"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 0,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]}});
        match rollout(&stuck) {
            Rollout::Progressing(why) => assert!(
                why.contains("0/2 ready")
                    && why.contains("Available=False (MinimumReplicasUnavailable"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let job = json!({"kind": "Job", "spec": {"completions": 1}, "status": {"succeeded": 1}});
        assert_eq!(rollout(&job), Rollout::Ready);
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "x"}]}});
        assert!(matches!(rollout(&failed), Rollout::Failed(_)));
        assert_eq!(rollout(&json!({"kind": "Service"})), Rollout::NotAWorkload);
    }
}
