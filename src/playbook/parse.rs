//! YAML text → playbook fields, with a location on every value. Structural problems (wrong
//! types, unknown or missing fields, bad durations, malformed references) are collected,
//! not returned at the first one; cross-references are checked later by `validate`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use marked_yaml::{LoaderOptions, Node};
use sha2::{Digest, Sha256};

use super::fields::{
    check_fields, expect_string, mapping_location, optional_string, parse_duration,
    required_string, scalar, type_name, yaml_problem,
};
use super::reference::parse_template;
use super::{
    FORMAT_VERSION, InputSpec, Location, ParamValue, Playbook, Problem, RetryPolicy, Spanned,
    StepSpec,
};
use crate::state_url::StateUrl;

const TOP_LEVEL_FIELDS: &[&str] = &[
    "version",
    "name",
    "description",
    "source_region",
    "default_target",
    "state",
    "rpo_limit",
    "account_id",
    "tags",
    "inputs",
    "steps",
];
const STEP_FIELDS: &[&str] = &[
    "id",
    "kind",
    "needs",
    "with",
    "timeout",
    "retry",
    "description",
];
const INPUT_FIELDS: &[&str] = &["default", "description", "secret", "env"];
const RETRY_FIELDS: &[&str] = &["attempts", "backoff"];

/// Everything read from the file before cross-checks.
pub(super) struct Parsed {
    name: String,
    description: Option<String>,
    source_region: Spanned<String>,
    default_target: Option<Spanned<String>>,
    state: Option<Spanned<StateUrl>>,
    rpo_limit: Option<Duration>,
    account_id: Option<Spanned<String>>,
    tags: BTreeMap<String, String>,
    inputs: Vec<InputSpec>,
    steps: Vec<StepSpec>,
}

impl Parsed {
    pub(super) fn into_playbook(self, path: &Path, text: &str) -> Playbook {
        let digest = Sha256::digest(text.as_bytes());
        Playbook {
            path: path.to_path_buf(),
            digest: digest.iter().map(|byte| format!("{byte:02x}")).collect(),
            name: self.name,
            description: self.description,
            source_region: self.source_region,
            default_target: self.default_target,
            state: self.state,
            rpo_limit: self.rpo_limit,
            account_id: self.account_id,
            tags: self.tags,
            inputs: self.inputs,
            index: Playbook::index_of(&self.steps),
            steps: self.steps,
        }
    }
}

/// Parse the text; `None` when it is not YAML at all (the problem is recorded).
pub(super) fn parse(text: &str, problems: &mut Vec<Problem>) -> Option<Parsed> {
    if text
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        problems.push(
            Problem::new(Location::new(1, 1), "the playbook is empty")
                .hint("a playbook needs at least `name`, `source_region` and `steps`"),
        );
        return None;
    }
    // Only plain scalars coerce (so `"123"` stays a string and `may_coerce` tells quoted
    // scalars apart).
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(root) => root,
        Err(error) => {
            problems.push(yaml_problem(&error, text));
            return None;
        }
    };
    let Some(mapping) = root.as_mapping() else {
        problems.push(Problem::new(
            Location::of_span(root.span()),
            "a playbook must be a YAML mapping with `name`, `source_region` and `steps`",
        ));
        return None;
    };
    let root_location = mapping_location(mapping);
    check_fields(mapping, TOP_LEVEL_FIELDS, "playbook", problems);

    if let Some(node) = mapping.get_node("version") {
        match scalar(node).and_then(|s| s.as_i64()) {
            Some(version) if version as u64 == FORMAT_VERSION && version > 0 => {}
            _ => problems.push(
                Problem::new(
                    Location::of_span(node.span()),
                    format!(
                        "unsupported playbook `version`: this build reads version {FORMAT_VERSION}"
                    ),
                )
                .hint(format!("write `version: {FORMAT_VERSION}`")),
            ),
        }
    }
    let name = required_string(mapping, "name", root_location, problems)
        .map(|name| name.value)
        .unwrap_or_default();
    let description = optional_string(mapping, "description", problems).map(|s| s.value);
    let source_region = required_string(mapping, "source_region", root_location, problems)
        .unwrap_or_else(|| Spanned::new(String::new(), root_location));
    let default_target = optional_string(mapping, "default_target", problems);
    let state = optional_string(mapping, "state", problems).and_then(|given| {
        match StateUrl::parse(&given.value) {
            Ok(url) => Some(Spanned::new(url, given.location)),
            Err(reason) => {
                problems.push(
                    Problem::new(given.location, format!("`state: {}`: {reason}", given.value))
                        .hint("write `state: s3://BUCKET/PREFIX`, with a bucket outside the source region"),
                );
                None
            }
        }
    });
    let rpo_limit = mapping
        .get_node("rpo_limit")
        .and_then(|node| parse_duration(node, "rpo_limit", problems));
    let account_id = optional_string(mapping, "account_id", problems).filter(|account| {
        let valid = account.value.len() == 12 && account.value.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            problems.push(
                Problem::new(
                    account.location,
                    format!("`account_id` must be 12 digits, found `{}`", account.value),
                )
                .hint("write the AWS account id the stack runs in, e.g. `account_id: \"123456789012\"`"),
            );
        }
        valid
    });
    let tags = parse_tags(mapping.get_node("tags"), problems);
    let inputs = parse_inputs(mapping.get_node("inputs"), problems);
    let steps = match mapping.get_node("steps") {
        None => {
            problems.push(
                Problem::new(root_location, "missing required field `steps`")
                    .hint("add a `steps:` list; see docs/playbook-reference.md"),
            );
            Vec::new()
        }
        Some(node) => parse_steps(node, problems),
    };
    Some(Parsed {
        name,
        description,
        source_region,
        default_target,
        state,
        rpo_limit,
        account_id,
        tags,
        inputs,
        steps,
    })
}

fn parse_tags(node: Option<&Node>, problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let Some(node) = node else { return tags };
    let Some(mapping) = node.as_mapping() else {
        problems.push(Problem::new(
            Location::of_span(node.span()),
            format!(
                "`tags` must be a mapping of tag names to values, found {}",
                type_name(node)
            ),
        ));
        return tags;
    };
    for (key, value) in mapping.iter() {
        if key.as_str().starts_with("rebuild:")
            || key.as_str().starts_with("aws:")
            || key.as_str() == "Name"
        {
            problems.push(Problem::new(
                Location::of_span(key.span()),
                format!(
                    "tag `{}` is reserved (`Name`, `rebuild:*` and `aws:*` are set by rebuild and AWS)",
                    key.as_str()
                ),
            ));
            continue;
        }
        match scalar(value) {
            Some(text) => {
                tags.insert(key.as_str().to_string(), text.as_str().to_string());
            }
            None => problems.push(Problem::new(
                Location::of_span(value.span()),
                format!("tag `{}` must have a string value", key.as_str()),
            )),
        }
    }
    tags
}

fn parse_inputs(node: Option<&Node>, problems: &mut Vec<Problem>) -> Vec<InputSpec> {
    let Some(node) = node else { return Vec::new() };
    let Some(mapping) = node.as_mapping() else {
        problems.push(Problem::new(
            Location::of_span(node.span()),
            format!(
                "`inputs` must be a mapping of input names, found {}",
                type_name(node)
            ),
        ));
        return Vec::new();
    };
    let mut inputs = Vec::new();
    for (key, value) in mapping.iter() {
        let name = Spanned::new(key.as_str().to_string(), Location::of_span(key.span()));
        if !is_identifier(&name.value) {
            problems.push(Problem::new(
                name.location,
                format!(
                    "input name `{}` must be letters, digits and `_`",
                    name.value
                ),
            ));
        }
        let mut input = InputSpec {
            name,
            default: None,
            description: None,
            secret: false,
            env: None,
        };
        match value {
            Node::Mapping(fields) => {
                check_fields(fields, INPUT_FIELDS, "an input", problems);
                input.default = fields
                    .get_node("default")
                    .map(|node| plain_json(node, problems));
                input.description =
                    optional_string(fields, "description", problems).map(|s| s.value);
                input.env = optional_string(fields, "env", problems).map(|s| s.value);
                if let Some(secret) = fields.get_node("secret") {
                    match scalar(secret).and_then(|s| s.as_bool()) {
                        Some(flag) => input.secret = flag,
                        None => problems.push(Problem::new(
                            Location::of_span(secret.span()),
                            "`secret` must be `true` or `false`",
                        )),
                    }
                }
                if input.secret && input.default.is_some() {
                    problems.push(
                        Problem::new(
                            input.name.location,
                            format!("secret input `{}` must not have a default", input.name.value),
                        )
                        .hint("give it an `env:` variable instead; secrets never live in the playbook"),
                    );
                }
            }
            other => input.default = Some(plain_json(other, problems)),
        }
        inputs.push(input);
    }
    inputs
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value without references (input defaults), as JSON.
fn plain_json(node: &Node, problems: &mut Vec<Problem>) -> serde_json::Value {
    let value = parse_param(node, problems);
    if let Some((reference, location)) = value.value.references(value.location).into_iter().next() {
        problems.push(
            Problem::new(
                location,
                format!("an input's default cannot hold a reference (`${{{reference}}}`)"),
            )
            .hint("use the reference in the step's `with:` instead"),
        );
    }
    to_plain_json(&value.value)
}

fn to_plain_json(value: &ParamValue) -> serde_json::Value {
    match value {
        ParamValue::Null => serde_json::Value::Null,
        ParamValue::Bool(flag) => serde_json::Value::Bool(*flag),
        ParamValue::Integer(number) => serde_json::Value::from(*number),
        ParamValue::Float(number) => serde_json::Value::from(*number),
        ParamValue::String(template) => {
            serde_json::Value::String(template.as_literal().unwrap_or_default())
        }
        ParamValue::List(items) => items
            .iter()
            .map(|item| to_plain_json(&item.value))
            .collect(),
        ParamValue::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.value.clone(), to_plain_json(&value.value)))
                .collect(),
        ),
    }
}

fn parse_steps(node: &Node, problems: &mut Vec<Problem>) -> Vec<StepSpec> {
    let Some(sequence) = node.as_sequence() else {
        problems.push(Problem::new(
            Location::of_span(node.span()),
            format!("`steps` must be a list of steps, found {}", type_name(node)),
        ));
        return Vec::new();
    };
    if sequence.is_empty() {
        problems.push(Problem::new(
            Location::of_span(node.span()),
            "`steps` is empty: a playbook needs at least one step",
        ));
    }
    sequence
        .iter()
        .filter_map(|item| parse_step(item, problems))
        .collect()
}

fn parse_step(node: &Node, problems: &mut Vec<Problem>) -> Option<StepSpec> {
    let Some(mapping) = node.as_mapping() else {
        problems.push(Problem::new(
            Location::of_span(node.span()),
            format!(
                "a step must be a mapping with `id` and `kind`, found {}",
                type_name(node)
            ),
        ));
        return None;
    };
    let location = mapping_location(mapping);
    check_fields(mapping, STEP_FIELDS, "a step", problems);
    let id = required_string(mapping, "id", location, problems);
    let kind = required_string(mapping, "kind", location, problems);
    let needs = match mapping.get_node("needs") {
        None => Vec::new(),
        Some(Node::Sequence(items)) => items
            .iter()
            .filter_map(|item| expect_string(item, "needs", problems))
            .collect(),
        Some(single @ Node::Scalar(_)) => expect_string(single, "needs", problems)
            .into_iter()
            .collect(),
        Some(other) => {
            problems.push(Problem::new(
                Location::of_span(other.span()),
                "`needs` must be a list of step ids",
            ));
            Vec::new()
        }
    };
    let with = match mapping.get_node("with") {
        None => Vec::new(),
        Some(Node::Mapping(entries)) => entries
            .iter()
            .map(|(key, value)| {
                (
                    Spanned::new(key.as_str().to_string(), Location::of_span(key.span())),
                    parse_param(value, problems),
                )
            })
            .collect(),
        Some(other) => {
            problems.push(Problem::new(
                Location::of_span(other.span()),
                format!(
                    "`with` must be a mapping of parameters, found {}",
                    type_name(other)
                ),
            ));
            Vec::new()
        }
    };
    let timeout = mapping
        .get_node("timeout")
        .and_then(|node| parse_duration(node, "timeout", problems));
    let retry = mapping
        .get_node("retry")
        .map(|node| parse_retry(node, problems))
        .unwrap_or_default();
    Some(StepSpec {
        id: id?,
        kind: kind?,
        needs,
        with,
        timeout,
        retry,
        location,
    })
}

fn parse_retry(node: &Node, problems: &mut Vec<Problem>) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    let location = Location::of_span(node.span());
    let attempts_node = match node {
        Node::Scalar(_) => Some(node),
        Node::Mapping(fields) => {
            check_fields(fields, RETRY_FIELDS, "`retry`", problems);
            if let Some(backoff) = fields.get_node("backoff")
                && let Some(value) = parse_duration(backoff, "retry.backoff", problems)
            {
                policy.backoff = value;
            }
            fields.get_node("attempts")
        }
        Node::Sequence(_) => {
            problems.push(Problem::new(
                location,
                "`retry` must be a number of attempts or a mapping with `attempts` and `backoff`",
            ));
            None
        }
    };
    if let Some(attempts) = attempts_node {
        match scalar(attempts).and_then(|s| s.as_i64()) {
            Some(count) if (1..=100).contains(&count) => policy.attempts = count as u32,
            _ => problems.push(Problem::new(
                Location::of_span(attempts.span()),
                "`retry.attempts` must be a whole number from 1 to 100 (1 = no retry)",
            )),
        }
    }
    policy
}

fn parse_param(node: &Node, problems: &mut Vec<Problem>) -> Spanned<ParamValue> {
    let mut location = Location::of_span(node.span());
    if node.as_scalar().is_some_and(|text| !text.may_coerce()) {
        // A quoted scalar's span starts at its quote; offsets inside it count from after.
        location.column += 1;
    }
    let value = match node {
        Node::Scalar(text) => {
            let raw = text.as_str();
            if text.may_coerce() && (raw == "null" || raw == "~") {
                ParamValue::Null
            } else if let Some(flag) = text.as_bool() {
                ParamValue::Bool(flag)
            } else if let (true, Some(number)) = (text.may_coerce(), text.as_i64()) {
                ParamValue::Integer(number)
            } else if let (true, Some(number), true) =
                (text.may_coerce(), text.as_f64(), raw.contains('.'))
            {
                ParamValue::Float(number)
            } else {
                match parse_template(raw) {
                    Ok(template) => ParamValue::String(template),
                    Err(error) => {
                        let at = Location::new(location.line, location.column + error.offset);
                        problems.push(Problem::new(at, error.message));
                        ParamValue::Null
                    }
                }
            }
        }
        Node::Sequence(items) => ParamValue::List(
            items
                .iter()
                .map(|item| parse_param(item, problems))
                .collect(),
        ),
        Node::Mapping(entries) => ParamValue::Map(
            entries
                .iter()
                .map(|(key, value)| {
                    (
                        Spanned::new(key.as_str().to_string(), Location::of_span(key.span())),
                        parse_param(value, problems),
                    )
                })
                .collect(),
        ),
    };
    Spanned::new(value, location)
}
