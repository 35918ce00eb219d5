//! Resolving a step's parameters against the run: inputs, other steps' outputs, regions and
//! the run id. References whose value is not known yet (a step that has not run) resolve to
//! `null` and are listed, so planning can say `unknown` instead of guessing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::reference::Part;
use super::{ParamValue, Reference, StepSpec};

/// What references can see.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Input values.
    pub inputs: &'a BTreeMap<String, Value>,
    /// Outputs of steps that succeeded, by step id.
    pub outputs: &'a BTreeMap<String, BTreeMap<String, Value>>,
    /// Region that failed.
    pub source_region: &'a str,
    /// Region being rebuilt in.
    pub target_region: &'a str,
    /// The run id, once there is a run.
    pub run_id: Option<&'a str>,
    /// The playbook's name.
    pub playbook_name: &'a str,
}

/// A step's parameters with references replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The parameters as a JSON object.
    pub value: Value,
    /// The parameters with what is not known yet left out.
    pub known: Value,
    /// References that could not be resolved yet.
    pub unknown: Vec<Reference>,
    /// Top-level parameters that hold at least one unresolved reference.
    pub unknown_keys: Vec<String>,
}

impl Resolved {
    /// The parameters without what is not known yet (for planning): an unknown value is
    /// left out of its map (the rest of the map stays), and a list holding an unknown item
    /// is left out whole (half a list would mean something else).
    pub fn known_only(&self) -> Value {
        self.known.clone()
    }
}

/// `value` with unknown parts left out (see [`Resolved::known_only`]); `None` when nothing
/// of it is known.
fn known_part(value: &ParamValue, scope: &Scope<'_>) -> Option<Value> {
    match value {
        ParamValue::List(items) => items
            .iter()
            .map(|item| known_part(&item.value, scope))
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array),
        ParamValue::Map(entries) => Some(Value::Object(
            entries
                .iter()
                .filter_map(|(key, value)| {
                    known_part(&value.value, scope).map(|known| (key.value.clone(), known))
                })
                .collect(),
        )),
        other => {
            let mut unknown = Vec::new();
            let value = resolve(other, scope, &mut unknown);
            unknown.is_empty().then_some(value)
        }
    }
}

/// Resolve every parameter of `step`.
pub fn resolve_step(step: &StepSpec, scope: &Scope<'_>) -> Resolved {
    let mut unknown = Vec::new();
    let mut unknown_keys = Vec::new();
    let mut object = serde_json::Map::new();
    let mut known = serde_json::Map::new();
    for (key, value) in &step.with {
        if let Some(value) = known_part(&value.value, scope) {
            known.insert(key.value.clone(), value);
        }
        let before = unknown.len();
        object.insert(
            key.value.clone(),
            resolve(&value.value, scope, &mut unknown),
        );
        if unknown.len() > before {
            unknown_keys.push(key.value.clone());
        }
    }
    unknown.sort();
    unknown.dedup();
    Resolved {
        value: Value::Object(object),
        known: Value::Object(known),
        unknown,
        unknown_keys,
    }
}

fn lookup(reference: &Reference, scope: &Scope<'_>) -> Option<Value> {
    match reference {
        Reference::Input(name) => scope.inputs.get(name).cloned(),
        Reference::StepOutput { step, output } => scope.outputs.get(step)?.get(output).cloned(),
        Reference::TargetRegion => Some(Value::String(scope.target_region.to_string())),
        Reference::SourceRegion => Some(Value::String(scope.source_region.to_string())),
        Reference::RunId => scope.run_id.map(|id| Value::String(id.to_string())),
        Reference::PlaybookName => Some(Value::String(scope.playbook_name.to_string())),
    }
}

fn resolve(value: &ParamValue, scope: &Scope<'_>, unknown: &mut Vec<Reference>) -> Value {
    match value {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(flag) => Value::Bool(*flag),
        ParamValue::Integer(number) => Value::from(*number),
        ParamValue::Float(number) => Value::from(*number),
        ParamValue::List(items) => items
            .iter()
            .map(|item| resolve(&item.value, scope, unknown))
            .collect(),
        ParamValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.value.clone(), resolve(&value.value, scope, unknown)))
                .collect(),
        ),
        ParamValue::String(template) => {
            if let Some(reference) = template.whole_reference() {
                return lookup(reference, scope).unwrap_or_else(|| {
                    unknown.push(reference.clone());
                    Value::Null
                });
            }
            let mut text = String::new();
            let mut complete = true;
            for part in &template.parts {
                match part {
                    Part::Literal(literal) => text.push_str(literal),
                    Part::Reference(reference, _) => match lookup(reference, scope) {
                        Some(Value::String(value)) => text.push_str(&value),
                        Some(other) => text.push_str(&other.to_string()),
                        None => {
                            unknown.push(reference.clone());
                            complete = false;
                        }
                    },
                }
            }
            if complete {
                Value::String(text)
            } else {
                Value::Null
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{Location, Spanned, reference::parse_template};
    use serde_json::json;

    fn step(with: Vec<(&str, ParamValue)>) -> StepSpec {
        StepSpec {
            id: Spanned::new("db".into(), Location::default()),
            kind: Spanned::new("aws.rds.restore".into(), Location::default()),
            needs: Vec::new(),
            with: with
                .into_iter()
                .map(|(key, value)| {
                    (
                        Spanned::new(key.to_string(), Location::default()),
                        Spanned::new(value, Location::default()),
                    )
                })
                .collect(),
            timeout: None,
            retry: Default::default(),
            location: Location::default(),
        }
    }

    fn text(source: &str) -> ParamValue {
        ParamValue::String(parse_template(source).unwrap())
    }

    #[test]
    fn resolves_whole_values_interpolation_and_unknowns() {
        let inputs = BTreeMap::from([("env".to_string(), json!("prod"))]);
        let outputs = BTreeMap::from([(
            "network".to_string(),
            BTreeMap::from([("private_subnet_ids".to_string(), json!(["a", "b"]))]),
        )]);
        let scope = Scope {
            inputs: &inputs,
            outputs: &outputs,
            source_region: "ap-southeast-2",
            target_region: "ap-southeast-1",
            run_id: Some("r1"),
            playbook_name: "p",
        };
        let resolved = resolve_step(
            &step(vec![
                ("subnets", text("${steps.network.private_subnet_ids}")),
                ("name", text("db-${inputs.env}-${target.region}-${run.id}")),
                ("sg", text("${steps.network.database_security_group_id}")),
                ("count", ParamValue::Integer(3)),
                (
                    "values",
                    ParamValue::Map(vec![
                        (
                            Spanned::new("env".to_string(), Location::default()),
                            Spanned::new(text("${inputs.env}"), Location::default()),
                        ),
                        (
                            Spanned::new("db".to_string(), Location::default()),
                            Spanned::new(text("${steps.db.endpoint}"), Location::default()),
                        ),
                    ]),
                ),
                (
                    "sources",
                    ParamValue::List(vec![
                        Spanned::new(text("templates"), Location::default()),
                        Spanned::new(text("${steps.git.path}/k8s"), Location::default()),
                    ]),
                ),
            ]),
            &scope,
        );
        let known = resolved.known_only();
        // A map keeps what is known; a list with an unknown item is left out whole.
        assert_eq!(known["values"], json!({"env": "prod"}));
        assert!(known.get("sources").is_none());
        assert_eq!(known["subnets"], json!(["a", "b"]));
        assert_eq!(resolved.value["subnets"], json!(["a", "b"]));
        assert_eq!(resolved.value["name"], json!("db-prod-ap-southeast-1-r1"));
        assert_eq!(resolved.value["sg"], Value::Null);
        assert_eq!(resolved.value["count"], json!(3));
        assert_eq!(
            resolved.unknown_keys,
            vec![
                "sg".to_string(),
                "values".to_string(),
                "sources".to_string()
            ]
        );
        assert!(resolved.known_only().get("sg").is_none());
        assert_eq!(
            resolved.unknown,
            vec![
                Reference::StepOutput {
                    step: "db".into(),
                    output: "endpoint".into()
                },
                Reference::StepOutput {
                    step: "git".into(),
                    output: "path".into()
                },
                Reference::StepOutput {
                    step: "network".into(),
                    output: "database_security_group_id".into()
                }
            ]
        );
    }
}
