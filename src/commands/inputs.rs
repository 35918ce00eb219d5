//! A run's input values: `--input NAME=VALUE`, else the input's environment variable, else
//! its default — typed like the default. A resumed run keeps its journaled values (they are
//! pinned); only secrets, which are never journaled, are read again. Secret values are
//! [`Secret`]s from here on.

use std::collections::BTreeMap;

use crate::journal::Values;
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
                plain_value(input, given, pinned)?
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

/// A plain input: pinned on resume (an `--input` may repeat it, not change it).
fn plain_value(
    input: &InputSpec,
    given: &BTreeMap<String, String>,
    pinned: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, UsageError> {
    let name = &input.name.value;
    match pinned {
        Some(pinned) => {
            if let Some(text) = given.get(name) {
                let wanted = typed(name, text, input.default.as_ref())?;
                if &wanted != pinned {
                    return Err(UsageError::PinnedInputChanged {
                        name: name.clone(),
                        pinned: pinned.to_string(),
                    });
                }
            }
            Ok(Some(pinned.clone()))
        }
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
