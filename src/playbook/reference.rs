//! References inside parameter strings: `${inputs.NAME}`, `${steps.ID.OUTPUT}`,
//! `${target.region}`, `${source.region}`, `${run.id}` and `${playbook.name}`.
//!
//! A string that is exactly one reference takes the referenced value whole (a list stays a
//! list); otherwise each reference is interpolated as text. `$${` writes a literal `${`.

use std::fmt;

/// What a `${...}` refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// `${inputs.NAME}`.
    Input(String),
    /// `${steps.ID.OUTPUT}`.
    StepOutput {
        /// The producing step's id.
        step: String,
        /// The output's name.
        output: String,
    },
    /// `${target.region}`.
    TargetRegion,
    /// `${source.region}`.
    SourceRegion,
    /// `${run.id}`.
    RunId,
    /// `${playbook.name}`.
    PlaybookName,
}

impl fmt::Display for Reference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(name) => write!(formatter, "inputs.{name}"),
            Self::StepOutput { step, output } => write!(formatter, "steps.{step}.{output}"),
            Self::TargetRegion => write!(formatter, "target.region"),
            Self::SourceRegion => write!(formatter, "source.region"),
            Self::RunId => write!(formatter, "run.id"),
            Self::PlaybookName => write!(formatter, "playbook.name"),
        }
    }
}

/// One piece of a parameter string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text taken as written.
    Literal(String),
    /// A reference, with its column offset (in characters) inside the string.
    Reference(Reference, usize),
}

/// A parameter string split into literal text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces in order.
    pub parts: Vec<Part>,
}

impl Template {
    /// The references this string contains.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|part| match part {
            Part::Reference(reference, _) => Some(reference),
            Part::Literal(_) => None,
        })
    }

    /// The single reference when the whole string is one reference.
    pub fn whole_reference(&self) -> Option<&Reference> {
        match self.parts.as_slice() {
            [Part::Reference(reference, _)] => Some(reference),
            _ => None,
        }
    }

    /// The text when the string has no reference at all.
    pub fn as_literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Reference(..) => return None,
            }
        }
        Some(text)
    }
}

/// A malformed reference, with its character offset inside the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceError {
    /// Offset (in characters) of the `${` that is wrong.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Split a parameter string into literals and references.
pub fn parse_template(text: &str) -> Result<Template, ReferenceError> {
    let characters: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut index = 0;
    while index < characters.len() {
        let at = |offset: usize| characters.get(index + offset).copied();
        if at(0) == Some('$') && at(1) == Some('$') && at(2) == Some('{') {
            literal.push_str("${");
            index += 3;
            continue;
        }
        if at(0) == Some('$') && at(1) == Some('{') {
            let start = index;
            let Some(close) = characters[index + 2..].iter().position(|c| *c == '}') else {
                return Err(ReferenceError {
                    offset: start,
                    message: "unterminated reference: `${` has no closing `}`".to_string(),
                });
            };
            let body: String = characters[index + 2..index + 2 + close].iter().collect();
            let reference = parse_reference(body.trim()).map_err(|message| ReferenceError {
                offset: start,
                message,
            })?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Reference(reference, start));
            index += close + 3;
            continue;
        }
        literal.push(characters[index]);
        index += 1;
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template { parts })
}

fn parse_reference(body: &str) -> Result<Reference, String> {
    let segments: Vec<&str> = body.split('.').collect();
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match segments.as_slice() {
        ["inputs", name] if valid_name(name) => Ok(Reference::Input((*name).to_string())),
        ["steps", step, output] if valid_name(step) && valid_name(output) => {
            Ok(Reference::StepOutput {
                step: (*step).to_string(),
                output: (*output).to_string(),
            })
        }
        ["target", "region"] => Ok(Reference::TargetRegion),
        ["source", "region"] => Ok(Reference::SourceRegion),
        ["run", "id"] => Ok(Reference::RunId),
        ["playbook", "name"] => Ok(Reference::PlaybookName),
        _ => Err(format!(
            "`${{{body}}}` is not a reference: use `${{inputs.NAME}}`, `${{steps.ID.OUTPUT}}`, \
             `${{target.region}}`, `${{source.region}}`, `${{run.id}}` or `${{playbook.name}}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_reference_keeps_its_type() {
        let template = parse_template("${steps.network.private_subnet_ids}").unwrap();
        assert_eq!(
            template.whole_reference(),
            Some(&Reference::StepOutput {
                step: "network".into(),
                output: "private_subnet_ids".into()
            })
        );
    }

    #[test]
    fn interpolation_and_escape() {
        let template = parse_template("db-${inputs.env}-$${x}").unwrap();
        assert_eq!(template.parts.len(), 3);
        assert_eq!(template.whole_reference(), None);
        assert_eq!(
            template.parts[2],
            Part::Literal("-${x}".to_string()),
            "escaped reference stays literal"
        );
        assert_eq!(
            parse_template("plain").unwrap().as_literal().as_deref(),
            Some("plain")
        );
        assert_eq!(
            parse_template("").unwrap().as_literal().as_deref(),
            Some("")
        );
    }

    #[test]
    fn malformed_references_name_the_offset() {
        let error = parse_template("abc ${inputs.x").unwrap_err();
        assert_eq!(error.offset, 4);
        assert!(error.message.contains("unterminated"));
        let error = parse_template("${steps.only_two}").unwrap_err();
        assert!(error.message.contains("is not a reference"));
    }
}
