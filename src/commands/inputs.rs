//! A run's input values: `--input NAME=VALUE`, else the input's environment variable, else
//! its default — typed like the default. A resumed run keeps its journaled values (they are
//! pinned, whatever the environment says now); an `--input` giving a pinned input another
//! value is taken and listed as an [`InputChange`], which the planner allows only while no
//! succeeded step consumed the input. Secrets, which are never journaled, are read again.
//! Secret values are [`Secret`]s from here on.

use std::collections::BTreeMap;

use crate::journal::Values;
use crate::plan::amend::InputChange;
use crate::playbook::{InputSpec, Playbook};
use crate::secret::{REDACTED, Redactor, Secret};
use crate::usage::UsageError;

/// The input values of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inputs {
    /// Every value, secrets exposed: only for resolving step parameters.
    values: Values,
    /// Values safe to journal: secrets as `<redacted>`.
    journaled: Values,
    /// The secret values.
    secrets: Vec<Secret>,
    /// Pinned (journaled) inputs given another value on resume.
    changes: Vec<InputChange>,
}

impl Inputs {
    /// Values for resolving step parameters (secrets included).
    pub(crate) fn values(&self) -> &Values {
        &self.values
    }

    /// Values safe to journal.
    pub(crate) fn journaled(&self) -> &Values {
        &self.journaled
    }

    /// Pinned inputs an `--input` gave another value (resume only).
    pub(crate) fn changes(&self) -> &[InputChange] {
        &self.changes
    }

    /// The run's redactor: scrubs every secret input from text.
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.iter().cloned())
    }

    /// Resolve every input of `playbook`. `journaled` holds the values a resumed run
    /// pinned; `given` the `--input`s.
    pub(crate) fn resolve(
        playbook: &Playbook,
        given: &BTreeMap<String, String>,
        journaled: Option<&Values>,
    ) -> Result<Self, UsageError> {
        refuse_unknown(playbook, given)?;
        let mut inputs = Self::default();
        for input in &playbook.inputs {
            let pinned = journaled.and_then(|values| values.get(&input.name.value));
            let value = if input.secret {
                secret_value(input, given, pinned)?.map(|secret| {
                    inputs.secrets.push(secret.clone());
                    serde_json::Value::String(secret.expose().to_string())
                })
            } else {
                let value = plain_value(input, given, pinned)?;
                if let (Some(pinned), Some(value)) = (pinned, &value)
                    && pinned != value
                {
                    inputs.changes.push(InputChange {
                        name: input.name.value.clone(),
                        from: pinned.clone(),
                        to: value.clone(),
                    });
                }
                value
            };
            inputs.insert(input, value)?;
        }
        Ok(inputs)
    }

    fn insert(
        &mut self,
        input: &InputSpec,
        value: Option<serde_json::Value>,
    ) -> Result<(), UsageError> {
        let name = &input.name.value;
        match value {
            Some(value) => {
                let shown = if input.secret {
                    serde_json::json!(REDACTED)
                } else {
                    value.clone()
                };
                self.journaled.insert(name.clone(), shown);
                self.values.insert(name.clone(), value);
            }
            None if input.secret => {
                self.values.insert(name.clone(), serde_json::Value::Null);
                self.journaled.insert(name.clone(), serde_json::Value::Null);
            }
            None => {
                return Err(UsageError::InputMissing {
                    name: name.clone(),
                    env: input.env.clone(),
                });
            }
        }
        Ok(())
    }
}

fn refuse_unknown(playbook: &Playbook, given: &BTreeMap<String, String>) -> Result<(), UsageError> {
    match given.keys().find(|name| playbook.input(name).is_none()) {
        Some(name) => Err(UsageError::UnknownInput {
            name: name.clone(),
            declared: playbook
                .inputs
                .iter()
                .map(|input| input.name.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(()),
    }
}

/// The text given for an input: `--input`, else its environment variable.
fn given_text(input: &InputSpec, given: &BTreeMap<String, String>) -> Option<String> {
    given.get(&input.name.value).cloned().or_else(|| {
        input
            .env
            .as_ref()
            .and_then(|variable| std::env::var(variable).ok())
    })
}

/// A plain input: pinned on resume, unless an `--input` gives it again (the same value, or
/// another one that the planner then checks against the steps that consumed it).
fn plain_value(
    input: &InputSpec,
    given: &BTreeMap<String, String>,
    pinned: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, UsageError> {
    let name = &input.name.value;
    match pinned {
        Some(pinned) => match given.get(name) {
            Some(text) => typed(name, text, input.default.as_ref()).map(Some),
            None => Ok(Some(pinned.clone())),
        },
        None => match given_text(input, given) {
            Some(text) => typed(name, &text, input.default.as_ref()).map(Some),
            None => Ok(input.default.clone()),
        },
    }
}

/// A secret input: never journaled, so read again on resume — and one that was set when
/// the run started must be set again.
fn secret_value(
    input: &InputSpec,
    given: &BTreeMap<String, String>,
    pinned: Option<&serde_json::Value>,
) -> Result<Option<Secret>, UsageError> {
    let text = given_text(input, given);
    match (pinned, text) {
        (_, Some(text)) => Ok(Some(Secret::new(text))),
        (Some(marker), None) if marker == REDACTED => Err(UsageError::SecretMissingOnResume {
            name: input.name.value.clone(),
            env: input.env.clone(),
        }),
        (Some(_), None) => Ok(None),
        (None, None) => Ok(input
            .default
            .as_ref()
            .and_then(|default| default.as_str())
            .map(Secret::new)),
    }
}

/// Turn a value given as text (`--input`, environment) into the type of the input's
/// default: `true`/`false` for a boolean default, a number for a numeric one, a
/// comma-separated list for a list, else text.
fn typed(
    name: &str,
    text: &str,
    default: Option<&serde_json::Value>,
) -> Result<serde_json::Value, UsageError> {
    let wrong = |expected: &'static str| UsageError::InputType {
        name: name.to_string(),
        expected,
        given: text.to_string(),
        default: default.map(ToString::to_string).unwrap_or_default(),
    };
    match default {
        Some(serde_json::Value::Bool(_)) => match text.trim() {
            "true" => Ok(serde_json::Value::Bool(true)),
            "false" => Ok(serde_json::Value::Bool(false)),
            _ => Err(wrong("`true` or `false`")),
        },
        Some(serde_json::Value::Number(_)) => text
            .trim()
            .parse::<i64>()
            .map(serde_json::Value::from)
            .or_else(|_| text.trim().parse::<f64>().map(serde_json::Value::from))
            .map_err(|_| wrong("a number")),
        Some(serde_json::Value::Array(_)) => Ok(serde_json::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(serde_json::Value::from)
                .collect(),
        )),
        _ => Ok(serde_json::Value::String(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::playbook::{self, KindSpec};

    const KINDS: &[KindSpec] = &[KindSpec {
        kind: "test.noop",
        summary: "",
        parameters: &[],
        outputs: &[],
    }];

    fn playbook() -> Playbook {
        let text = "name: t\nsource_region: ap-southeast-2\ninputs:\n  class: {default: db.t3.medium}\n  multi_az: {default: true}\nsteps:\n  - {id: a, kind: test.noop}\n";
        playbook::from_str(Path::new("t.yaml"), text, KINDS).unwrap()
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
            .collect()
    }

    #[test]
    fn a_resume_keeps_pinned_values_and_lists_the_ones_given_another_value() {
        let pinned = Values::from([
            ("class".to_string(), json!("db.m1.small")),
            ("multi_az".to_string(), json!(false)),
        ]);
        let kept = Inputs::resolve(&playbook(), &given(&[]), Some(&pinned)).unwrap();
        assert_eq!(kept.values(), &pinned);
        assert!(kept.changes().is_empty());

        let same = given(&[("multi_az", "false")]);
        let repeated = Inputs::resolve(&playbook(), &same, Some(&pinned)).unwrap();
        assert!(repeated.changes().is_empty(), "the same value is no change");

        let other = given(&[("class", "db.m7g.large"), ("multi_az", "false")]);
        let changed = Inputs::resolve(&playbook(), &other, Some(&pinned)).unwrap();
        assert_eq!(changed.values()["class"], json!("db.m7g.large"));
        assert_eq!(changed.journaled()["class"], json!("db.m7g.large"));
        assert_eq!(
            changed.changes(),
            &[InputChange {
                name: "class".into(),
                from: json!("db.m1.small"),
                to: json!("db.m7g.large"),
            }]
        );

        let wrong = given(&[("multi_az", "maybe")]);
        assert!(matches!(
            Inputs::resolve(&playbook(), &wrong, Some(&pinned)),
            Err(UsageError::InputType { .. })
        ));
    }
}
