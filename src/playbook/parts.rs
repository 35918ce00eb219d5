//! A playbook seen part by part, for a resume that changes something mid-run: which steps
//! consume an input (through `${inputs.NAME}` in their parameters), and a digest of each
//! step and of each run-wide setting, so an edited playbook can be compared with the one a
//! run started with without keeping its text. Pure.
//!
//! A step's digest covers what the step *is* — its kind, needs, parameters as written
//! (references unresolved), time limit and retry policy — and nothing of where it is
//! written: moving a step, reformatting it or editing a comment changes no digest.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::reference::Part;
use super::{ParamValue, Playbook, Reference, StepSpec};

/// The settings that apply to every step, by the name the playbook gives them.
pub const SETTINGS: &[&str] = &["name", "source_region", "rpo_limit", "tags"];

impl Playbook {
    /// The steps whose parameters refer to `${inputs.NAME}`, in playbook order.
    pub fn consumers_of(&self, input: &str) -> Vec<String> {
        self.steps
            .iter()
            .filter(|step| {
                step.with.iter().any(|(_, value)| {
                    value
                        .value
                        .references(value.location)
                        .iter()
                        .any(|(reference, _)| {
                            matches!(reference, Reference::Input(name) if name == input)
                        })
                })
            })
            .map(|step| step.id.value.clone())
            .collect()
    }

    /// For each output of step `producer` that other steps reference
    /// (`${steps.PRODUCER.OUTPUT}` in their `with:`), the steps that reference it.
    pub fn users_of_outputs(&self, producer: &str) -> BTreeMap<String, Vec<String>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for step in &self.steps {
            for (_, value) in &step.with {
                for (reference, _) in value.value.references(value.location) {
                    if let Reference::StepOutput { step: from, output } = reference
                        && from == producer
                    {
                        let list = users.entry(output).or_default();
                        if !list.contains(&step.id.value) {
                            list.push(step.id.value.clone());
                        }
                    }
                }
            }
        }
        users
    }

    /// The digest of each step, by id.
    pub fn step_digests(&self) -> BTreeMap<String, String> {
        self.steps
            .iter()
            .map(|step| (step.id.value.clone(), step_digest(step)))
            .collect()
    }

    /// The digest of each run-wide setting ([`SETTINGS`]), by name.
    pub fn settings_digests(&self) -> BTreeMap<String, String> {
        let values = [
            ("name", json!(self.name)),
            ("source_region", json!(self.source_region.value)),
            (
                "rpo_limit",
                json!(self.rpo_limit.map(|limit| limit.as_millis().to_string())),
            ),
            (
                "tags",
                sorted_object(self.tags.iter().map(|(k, v)| (k, json!(v)))),
            ),
        ];
        values
            .into_iter()
            .map(|(name, value)| (name.to_string(), sha256(&value)))
            .collect()
    }
}

/// The digest of one step as written (see the module paragraph).
pub fn step_digest(step: &StepSpec) -> String {
    let mut needs: Vec<&str> = step.needs.iter().map(|need| need.value.as_str()).collect();
    needs.sort_unstable();
    needs.dedup();
    let value = json!({
        "kind": step.kind.value,
        "needs": needs,
        "with": sorted_object(step.with.iter().map(|(key, value)| (&key.value, canonical(&value.value)))),
        "timeout_ms": step.timeout.map(|timeout| timeout.as_millis().to_string()),
        "retry": {
            "attempts": step.retry.attempts,
            "backoff_ms": step.retry.backoff.as_millis().to_string(),
        },
    });
    sha256(&value)
}

/// A parameter value as plain data, unambiguous: a string is its parts (a literal `${`
/// and a reference cannot be mistaken for each other), a mapping is sorted by key.
fn canonical(value: &ParamValue) -> Value {
    match value {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(flag) => json!(flag),
        ParamValue::Integer(number) => json!(number),
        ParamValue::Float(number) => json!({ "float": number.to_string() }),
        ParamValue::String(template) => json!({
            "text": template
                .parts
                .iter()
                .map(|part| match part {
                    Part::Literal(text) => json!({ "literal": text }),
                    Part::Reference(reference, _) => json!({ "ref": reference.to_string() }),
                })
                .collect::<Vec<_>>()
        }),
        ParamValue::List(items) => {
            Value::Array(items.iter().map(|item| canonical(&item.value)).collect())
        }
        ParamValue::Map(entries) => sorted_object(
            entries
                .iter()
                .map(|(key, value)| (&key.value, canonical(&value.value))),
        ),
    }
}

/// A JSON object with its keys in sorted order (the crate keeps insertion order).
fn sorted_object<'a>(entries: impl Iterator<Item = (&'a String, Value)>) -> Value {
    let sorted: BTreeMap<&String, Value> = entries.collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(key, value)| (key.clone(), value))
            .collect(),
    )
}

fn sha256(value: &Value) -> String {
    Sha256::digest(value.to_string().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::playbook::{self, KindSpec, ParamSpec, Playbook};

    const KINDS: &[KindSpec] = &[KindSpec {
        kind: "test.noop",
        summary: "",
        parameters: &[
            ParamSpec {
                name: "value",
                required: false,
                help: "",
            },
            ParamSpec {
                name: "other",
                required: false,
                help: "",
            },
        ],
        outputs: &["out"],
    }];

    const INPUTS: &str = "inputs:\n  cidr: {default: 10.0.0.0/16}\n  class: {default: db.t3.medium}\n  cluster: {default: ''}\n  unused: {default: x}\n";

    fn playbook(steps: &str) -> Playbook {
        let text = format!("name: t\nsource_region: ap-southeast-2\n{INPUTS}steps:\n{steps}");
        playbook::from_str(Path::new("t.yaml"), &text, KINDS).unwrap()
    }

    #[test]
    fn an_input_is_consumed_by_every_step_that_refers_to_it_wherever_it_is_written() {
        let playbook = playbook(
            "  - {id: network, kind: test.noop, with: {value: '${inputs.cidr}', other: {cluster: '${inputs.cluster}'}}}\n  \
             - {id: database, kind: test.noop, needs: [network], with: {value: 'db-${inputs.class}-x'}}\n  \
             - {id: cluster, kind: test.noop, with: {value: ['a', '${inputs.cluster}']}}\n  \
             - {id: literal, kind: test.noop, with: {value: '$${inputs.class}'}}\n",
        );
        assert_eq!(playbook.consumers_of("cidr"), vec!["network"]);
        assert_eq!(
            playbook.consumers_of("class"),
            vec!["database"],
            "an escaped `$${{` is text, not a reference"
        );
        assert_eq!(playbook.consumers_of("cluster"), vec!["network", "cluster"]);
        assert!(playbook.consumers_of("unused").is_empty());
        assert!(playbook.consumers_of("undeclared").is_empty());
    }

    #[test]
    fn a_step_digest_follows_what_the_step_is_not_where_or_how_it_is_written() {
        let base = playbook(
            "  - {id: a, kind: test.noop, with: {value: '${inputs.cidr}', other: 1}}\n  \
             - {id: b, kind: test.noop, needs: [a], timeout: 10m}\n",
        );
        let digests = base.step_digests();
        assert_eq!(digests.len(), 2);

        // Reordered steps, parameters and flow style: the same steps.
        let moved = playbook(
            "  # a comment\n  - id: b\n    kind: test.noop\n    needs: [a]\n    timeout: 10m\n  \
             - {id: a, kind: test.noop, with: {other: 1, value: '${inputs.cidr}'}}\n",
        );
        assert_eq!(moved.step_digests(), digests);

        let edits = [
            "  - {id: a, kind: test.noop, with: {value: '${inputs.class}', other: 1}}\n",
            "  - {id: a, kind: test.noop, with: {value: '$${inputs.cidr}', other: 1}}\n",
            "  - {id: a, kind: test.noop, with: {value: '${inputs.cidr}', other: 2}}\n",
            "  - {id: a, kind: test.noop, with: {value: '${inputs.cidr}', other: 1.0}}\n",
            "  - {id: a, kind: test.noop, with: {value: '${inputs.cidr}', other: 1}, retry: {attempts: 1}}\n",
            "  - {id: a, kind: test.noop, with: {value: '${inputs.cidr}'}}\n",
        ];
        for edit in edits {
            let edited = playbook(&format!(
                "{edit}  - {{id: b, kind: test.noop, needs: [a], timeout: 10m}}\n"
            ));
            let edited = edited.step_digests();
            assert_ne!(edited["a"], digests["a"], "{edit}");
            assert_eq!(edited["b"], digests["b"], "{edit}");
        }
    }

    #[test]
    fn settings_have_one_digest_each() {
        let base = playbook("  - {id: a, kind: test.noop}\n");
        let settings = base.settings_digests();
        assert_eq!(settings.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut names = super::SETTINGS.to_vec();
            names.sort_unstable();
            names
        });
        let text = format!(
            "name: t\nsource_region: ap-southeast-2\ntags: {{team: shop}}\n{INPUTS}steps:\n  - {{id: a, kind: test.noop}}\n"
        );
        let tagged = playbook::from_str(Path::new("t.yaml"), &text, KINDS).unwrap();
        let changed: Vec<&String> = settings
            .keys()
            .filter(|name| tagged.settings_digests()[*name] != settings[*name])
            .collect();
        assert_eq!(changed, vec!["tags"]);
        assert_eq!(tagged.step_digests(), base.step_digests());
    }
}
