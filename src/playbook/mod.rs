//! Playbooks: the YAML file an on-call engineer runs. This layer is pure: it turns text into
//! a checked [`Playbook`] or into every [`Problem`] found, each with `file:line:column`.
//! It knows step kinds only through the [`KindSpec`] catalogue it is given.

pub mod duration;
mod fields;
mod location;
mod parse;
pub mod parts;
pub mod reference;
pub mod region;
pub mod resolve;
mod validate;
#[cfg(test)]
mod validate_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use fields::edit_distance;
pub use location::{Location, Spanned};
pub use reference::{Reference, Template};

/// The playbook format version this build reads.
pub const FORMAT_VERSION: u64 = 1;

/// A parsed and validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// The file it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, pinned in the journal.
    pub digest: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The region production runs in (the one that failed).
    pub source_region: Spanned<String>,
    /// The region to rebuild in when `--target` is not given.
    pub default_target: Option<Spanned<String>>,
    /// Where a team keeps its runs, journals and locks (`state: s3://BUCKET/PREFIX`);
    /// `--state` overrides it, and without either they are in the local `--state-dir`.
    pub state: Option<Spanned<crate::state_url::StateUrl>>,
    /// The oldest snapshot a restore may use without `--accept-rpo`.
    pub rpo_limit: Option<Duration>,
    /// The AWS account the stack runs in: a run acting in another is refused in its plan.
    pub account_id: Option<Spanned<String>>,
    /// Tags put on every resource, beside `rebuild:run-id` and `rebuild:step`.
    pub tags: BTreeMap<String, String>,
    /// Declared inputs in file order.
    pub inputs: Vec<InputSpec>,
    /// Steps in file order.
    pub steps: Vec<StepSpec>,
    /// Where each step id first appears in `steps`, so that looking a step up by id (once
    /// per `needs` entry and per reference, while validating and planning) is not a search
    /// of every step.
    index: BTreeMap<String, usize>,
}

impl Playbook {
    /// The step with this id (the first, if the id is used twice).
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.position(id).map(|position| &self.steps[position])
    }

    /// Where the step with this id stands in `steps` (the first, if the id is used twice).
    pub fn position(&self, id: &str) -> Option<usize> {
        match self.index.get(id) {
            Some(&position)
                if self
                    .steps
                    .get(position)
                    .is_some_and(|step| step.id.value == id) =>
            {
                Some(position)
            }
            // `steps` is public: if it was changed after parsing, the index no longer holds.
            _ => self.steps.iter().position(|step| step.id.value == id),
        }
    }

    /// The index of `steps` by id (see [`Playbook::step`]).
    fn index_of(steps: &[StepSpec]) -> BTreeMap<String, usize> {
        let mut index = BTreeMap::new();
        for (position, step) in steps.iter().enumerate() {
            index.entry(step.id.value.clone()).or_insert(position);
        }
        index
    }

    /// The input with this name.
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|input| input.name.value == name)
    }
}

/// A declared input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// Its name, as used in `${inputs.NAME}`.
    pub name: Spanned<String>,
    /// Value when neither `--input` nor the environment gives one.
    pub default: Option<serde_json::Value>,
    /// Free text.
    pub description: Option<String>,
    /// A secret: never journaled or printed, read again from the environment on resume.
    pub secret: bool,
    /// Environment variable that supplies the value.
    pub env: Option<String>,
}

/// A step of the playbook.
#[derive(Debug, Clone, Default)]
pub struct StepSpec {
    /// Unique id (`[a-z][a-z0-9-]*`).
    pub id: Spanned<String>,
    /// The step kind, such as `aws.network`.
    pub kind: Spanned<String>,
    /// Ids of steps that must succeed first.
    pub needs: Vec<Spanned<String>>,
    /// Parameters (`with:`), possibly holding references.
    pub with: Vec<(Spanned<String>, Spanned<ParamValue>)>,
    /// Per-attempt time limit.
    pub timeout: Option<Duration>,
    /// Retry policy for retryable errors.
    pub retry: RetryPolicy,
    /// Where the step starts in the file.
    pub location: Location,
}

impl StepSpec {
    /// The parameter with this name.
    pub fn param(&self, name: &str) -> Option<&Spanned<ParamValue>> {
        self.with
            .iter()
            .find(|(key, _)| key.value == name)
            .map(|(_, value)| value)
    }

    /// The steps whose outputs its parameters refer to (`${steps.ID.OUTPUT}`), each once:
    /// what it is planned and run with depends on those steps alone; its other `needs`
    /// only order it.
    pub fn uses_outputs_of(&self) -> std::collections::BTreeSet<String> {
        self.with
            .iter()
            .flat_map(|(_, value)| value.value.references(value.location))
            .filter_map(|(reference, _)| match reference {
                Reference::StepOutput { step, .. } => Some(step),
                _ => None,
            })
            .collect()
    }
}

/// How often a step is retried after an error the cloud marks retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time, with jitter.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_secs(2),
        }
    }
}

/// A parameter value as written, with references still unresolved.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// `null` or `~`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A string, possibly with references.
    String(Template),
    /// A list.
    List(Vec<Spanned<ParamValue>>),
    /// A mapping in file order.
    Map(Vec<(Spanned<String>, Spanned<ParamValue>)>),
}

impl ParamValue {
    /// Every reference inside, with where it was written.
    pub fn references(&self, location: Location) -> Vec<(Reference, Location)> {
        let mut found = Vec::new();
        self.collect_references(location, &mut found);
        found
    }

    fn collect_references(&self, location: Location, found: &mut Vec<(Reference, Location)>) {
        match self {
            Self::String(template) => {
                for part in &template.parts {
                    if let reference::Part::Reference(reference, offset) = part {
                        let at = Location::new(location.line, location.column + offset);
                        found.push((reference.clone(), at));
                    }
                }
            }
            Self::List(items) => {
                for item in items {
                    item.value.collect_references(item.location, found);
                }
            }
            Self::Map(entries) => {
                for (_, value) in entries {
                    value.value.collect_references(value.location, found);
                }
            }
            Self::Null | Self::Bool(_) | Self::Integer(_) | Self::Float(_) => {}
        }
    }
}

/// What the validator knows about a step kind: its parameters and outputs.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// The kind's name, such as `aws.network`.
    pub kind: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Accepted parameters.
    pub parameters: &'static [ParamSpec],
    /// Output names it produces.
    pub outputs: &'static [&'static str],
}

#[cfg(test)]
impl KindSpec {
    /// The step kind planner unit tests use: `test.noop`, with one optional parameter
    /// `value` and the outputs `outputs`.
    pub(crate) const fn test_noop(outputs: &'static [&'static str]) -> Self {
        const VALUE: &[ParamSpec] = &[ParamSpec {
            name: "value",
            required: false,
            help: "",
        }];
        Self {
            kind: "test.noop",
            summary: "",
            parameters: VALUE,
            outputs,
        }
    }
}

/// One parameter of a step kind.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Name under `with:`.
    pub name: &'static str,
    /// Must be given.
    pub required: bool,
    /// One line on what it means.
    pub help: &'static str,
}

/// One thing wrong with a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub location: Location,
    /// What is wrong, lowercase, names in backticks.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(location: Location, message: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one playbook file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file.
    pub path: PathBuf,
    /// The problems, sorted by location.
    pub items: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.items.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(
                formatter,
                "{}:{}: {}",
                self.path.display(),
                problem.location,
                problem.message
            )?;
            if let Some(hint) = &problem.hint {
                write!(formatter, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Read, parse and validate a playbook file against the given step-kind catalogue.
pub fn load(path: &Path, kinds: &[KindSpec]) -> Result<Playbook, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_str(path, &text, kinds).map_err(LoadError::Invalid)
}

/// Parse and validate playbook text; `path` is only used in messages and the result.
pub fn from_str(path: &Path, text: &str, kinds: &[KindSpec]) -> Result<Playbook, Problems> {
    let mut problems = Vec::new();
    let parsed = parse::parse(text, &mut problems);
    let playbook = parsed.map(|parsed| {
        let playbook = parsed.into_playbook(path, text);
        validate::validate(&playbook, kinds, &mut problems);
        playbook
    });
    match playbook {
        Some(playbook) if problems.is_empty() => Ok(playbook),
        _ => {
            problems.sort_by_key(|problem| problem.location);
            problems.dedup();
            Err(Problems {
                path: path.to_path_buf(),
                items: problems,
            })
        }
    }
}

/// Why a playbook could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read playbook `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems.
    #[error("{0}")]
    Invalid(Problems),
}
