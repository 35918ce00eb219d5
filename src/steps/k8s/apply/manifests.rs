//! Manifests, pure: render a template (its text, read by [`sources`](super::sources)) with
//! the run's context, split the multi-document YAML into objects, read and set an object's
//! kind, name and namespace, and rewrite its images to the target region's registry. No
//! I/O; unit-tested without a cluster.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// Render one template with `context` (undefined variables are errors) and split it into
/// objects; empty documents are dropped.
pub(super) fn render(name: &str, source: &str, context: &Value) -> Result<Vec<Value>, String> {
    render_with(name, source, context, false)
}

/// What a value not known at plan time renders as (see [`render_planned`]).
pub(super) const NOT_KNOWN_YET: &str = "known-after-apply";

/// Render for the plan: variables the context lacks (values that come from steps that have
/// not run, such as the database endpoint) render as [`NOT_KNOWN_YET`] instead of failing,
/// so everything else — syntax, YAML, names, the images — is checked before the run starts.
pub(super) fn render_planned(
    name: &str,
    source: &str,
    context: &Value,
) -> Result<Vec<Value>, String> {
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
pub(super) fn kind_of(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An object's name.
pub(super) fn name_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

/// An object's namespace, if it says.
pub(super) fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

/// A registry rewrite: images starting with `from` are pulled from `to` instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImageRewrite {
    /// Source registry prefix, e.g. `123456789012.dkr.ecr.ap-southeast-2.amazonaws.com`.
    pub(super) from: String,
    /// Target registry prefix.
    pub(super) to: String,
}

/// Rewrite every container image in `object` (any `containers`/`initContainers` list, at
/// any depth: Deployments, StatefulSets, Jobs, Pods). Returns the images it now uses.
pub(super) fn rewrite_images(object: &mut Value, rewrites: &[ImageRewrite]) -> Vec<String> {
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

/// Set `metadata.namespace` on a namespaced object that does not say.
pub(super) fn default_namespace(object: &mut Value, namespace: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_string()));
    }
}

/// Drop `metadata.namespace` (for cluster-scoped kinds).
pub(super) fn clear_namespace(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("namespace");
    }
}

/// The render context: the run's facts plus the playbook's `values`.
pub(super) fn context(values: &Map<String, Value>, facts: &[(&str, &str)]) -> Value {
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
}
