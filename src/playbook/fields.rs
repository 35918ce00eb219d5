//! The pieces of YAML parsing every field uses: scalars and strings with their locations,
//! durations, unknown-field checks with a "did you mean" suggestion (the nearest allowed
//! word by edit distance), and YAML syntax errors as located problems.

use std::time::Duration;

use marked_yaml::{Node, loader::LoadError};

use super::{Location, Problem, Spanned, duration};

pub(super) fn yaml_problem(error: &LoadError, text: &str) -> Problem {
    match error {
        LoadError::ScanError(marker, scan) => Problem::new(
            Location::of_marker(marker),
            format!("invalid YAML: {}", scan.info()),
        ),
        LoadError::DuplicateKey(inner) => Problem::new(
            Location::of_span(inner.key.span()),
            format!(
                "duplicate key `{}` (first written at {})",
                inner.key.as_str(),
                Location::of_span(inner.prev_key.span())
            ),
        ),
        LoadError::TopLevelMustBeMapping(marker) => {
            let message = if text.trim().is_empty() {
                "the playbook is empty"
            } else {
                "a playbook must be a YAML mapping with `name`, `source_region` and `steps`"
            };
            Problem::new(Location::of_marker(marker), message)
        }
        LoadError::UnexpectedAnchor(marker) => Problem::new(
            Location::of_marker(marker),
            "YAML anchors and aliases are not supported in playbooks",
        ),
        LoadError::UnexpectedTag(marker) => Problem::new(
            Location::of_marker(marker),
            "YAML tags (`!tag`) are not supported in playbooks",
        ),
        LoadError::MappingKeyMustBeScalar(marker) | LoadError::TopLevelMustBeSequence(marker) => {
            Problem::new(
                Location::of_marker(marker),
                "mapping keys must be plain strings",
            )
        }
    }
}

/// Where a mapping starts. The parser marks a block mapping at its first `:`, so take the
/// first key when it comes earlier (a flow mapping's `{` comes before its first key).
pub(super) fn mapping_location(mapping: &marked_yaml::types::MarkedMappingNode) -> Location {
    let span = Location::of_span(mapping.span());
    match mapping.keys().next() {
        Some(key) if mapping.span().start().is_some() => span.min(Location::of_span(key.span())),
        Some(key) => Location::of_span(key.span()),
        None => span,
    }
}

pub(super) fn check_fields(
    mapping: &marked_yaml::types::MarkedMappingNode,
    allowed: &[&str],
    what: &str,
    problems: &mut Vec<Problem>,
) {
    for key in mapping.keys() {
        if !allowed.contains(&key.as_str()) {
            let mut problem = Problem::new(
                Location::of_span(key.span()),
                format!("unknown field `{}` in {what}", key.as_str()),
            );
            problem = match closest(key.as_str(), allowed) {
                Some(close) => problem.hint(format!("did you mean `{close}`?")),
                None => problem.hint(format!("allowed fields: {}", allowed.join(", "))),
            };
            problems.push(problem);
        }
    }
}

/// The allowed word nearest to `word` by edit distance, when it is near enough.
pub(crate) fn closest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// How many single-character edits turn `left` into `right` (Levenshtein).
pub(crate) fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (i, left_char) in left.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, right_char) in right.iter().enumerate() {
            let cost = usize::from(left_char != *right_char);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[right.len()]
}

pub(super) fn scalar(node: &Node) -> Option<&marked_yaml::types::MarkedScalarNode> {
    node.as_scalar()
}

pub(super) fn type_name(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

pub(super) fn expect_string(
    node: &Node,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<String>> {
    let location = Location::of_span(node.span());
    match scalar(node) {
        Some(value) if !value.as_str().is_empty() => {
            Some(Spanned::new(value.as_str().to_string(), location))
        }
        Some(_) => {
            problems.push(Problem::new(
                location,
                format!("`{field}` must not be empty"),
            ));
            None
        }
        None => {
            problems.push(Problem::new(
                location,
                format!("`{field}` must be a string, found {}", type_name(node)),
            ));
            None
        }
    }
}

pub(super) fn required_string(
    mapping: &marked_yaml::types::MarkedMappingNode,
    field: &str,
    parent: Location,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<String>> {
    match mapping.get_node(field) {
        Some(node) => expect_string(node, field, problems),
        None => {
            problems.push(Problem::new(
                parent,
                format!("missing required field `{field}`"),
            ));
            None
        }
    }
}

pub(super) fn optional_string(
    mapping: &marked_yaml::types::MarkedMappingNode,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<String>> {
    mapping
        .get_node(field)
        .and_then(|node| expect_string(node, field, problems))
}

pub(super) fn parse_duration(
    node: &Node,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<Duration> {
    let location = Location::of_span(node.span());
    let Some(text) = scalar(node) else {
        problems.push(Problem::new(
            location,
            format!(
                "`{field}` must be a duration such as `20m`, found {}",
                type_name(node)
            ),
        ));
        return None;
    };
    match duration::parse(text.as_str()) {
        Ok(value) if value.is_zero() => {
            problems.push(Problem::new(
                location,
                format!("`{field}` must be longer than zero"),
            ));
            None
        }
        Ok(value) => Some(value),
        Err(message) => {
            problems.push(Problem::new(
                location,
                format!("invalid `{field}`: {message}"),
            ));
            None
        }
    }
}
