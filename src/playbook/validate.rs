//! Cross-checks on a parsed playbook: step ids, kinds, parameters, `needs` (missing steps
//! and cycles, naming the cycle), references to inputs and outputs, and regions. Every
//! problem is recorded; nothing stops at the first.

use std::collections::{BTreeMap, BTreeSet};

use super::fields::closest;
use super::{KindSpec, Location, Playbook, Problem, Reference, region};

pub(super) fn validate(playbook: &Playbook, kinds: &[KindSpec], problems: &mut Vec<Problem>) {
    check_regions(playbook, problems);
    let mut seen: BTreeMap<&str, Location> = BTreeMap::new();
    for step in &playbook.steps {
        let id = step.id.value.as_str();
        if !is_step_id(id) {
            problems.push(
                Problem::new(step.id.location, format!("step id `{id}` is not valid"))
                    .hint("use lowercase letters, digits and `-`, starting with a letter (it names cloud resources)"),
            );
        }
        if let Some(first) = seen.insert(id, step.id.location) {
            seen.insert(id, first);
            problems.push(Problem::new(
                step.id.location,
                format!("duplicate step id `{id}` (first used at {first})"),
            ));
        }
    }
    for step in &playbook.steps {
        check_kind_and_parameters(step, kinds, problems);
        let mut needed = BTreeSet::new();
        for need in &step.needs {
            if !needed.insert(need.value.as_str()) {
                problems.push(Problem::new(
                    need.location,
                    format!(
                        "step `{}` lists `{}` in `needs` twice",
                        step.id.value, need.value
                    ),
                ));
            }
            if playbook.step(&need.value).is_none() {
                let ids: Vec<&str> = playbook.steps.iter().map(|s| s.id.value.as_str()).collect();
                let mut problem = Problem::new(
                    need.location,
                    format!(
                        "step `{}` needs `{}`, which is not a step",
                        step.id.value, need.value
                    ),
                );
                if let Some(close) = closest(&need.value, &ids) {
                    problem = problem.hint(format!("did you mean `{close}`?"));
                }
                problems.push(problem);
            }
        }
    }
    check_cycles(playbook, problems);
    check_references(playbook, kinds, problems);
}

fn check_regions(playbook: &Playbook, problems: &mut Vec<Problem>) {
    let source = &playbook.source_region;
    if !source.value.is_empty() && !region::is_valid(&source.value) {
        problems.push(
            Problem::new(
                source.location,
                format!("`{}` is not an AWS region name", source.value),
            )
            .hint("write it like `ap-southeast-2`"),
        );
    }
    if let Some(target) = &playbook.default_target {
        if !region::is_valid(&target.value) {
            problems.push(
                Problem::new(
                    target.location,
                    format!("`{}` is not an AWS region name", target.value),
                )
                .hint("write it like `ap-southeast-1`"),
            );
        } else if target.value == source.value {
            problems.push(
                Problem::new(
                    target.location,
                    format!("`default_target` is the source region `{}`", source.value),
                )
                .hint("a rebuild must go to another region than the one that failed"),
            );
        }
    }
}

/// Step ids name cloud resources, so they are lowercase DNS-style labels.
pub(crate) fn is_step_id(id: &str) -> bool {
    id.len() <= 32
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--")
}

fn check_kind_and_parameters(
    step: &super::StepSpec,
    kinds: &[KindSpec],
    problems: &mut Vec<Problem>,
) {
    let Some(kind) = kinds.iter().find(|kind| kind.kind == step.kind.value) else {
        let names: Vec<&str> = kinds.iter().map(|kind| kind.kind).collect();
        let hint = match closest(&step.kind.value, &names) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("known kinds: {}", names.join(", ")),
        };
        problems.push(
            Problem::new(
                step.kind.location,
                format!("unknown step kind `{}`", step.kind.value),
            )
            .hint(hint),
        );
        return;
    };
    let names: Vec<&str> = kind
        .parameters
        .iter()
        .map(|parameter| parameter.name)
        .collect();
    for (key, _) in &step.with {
        if !names.contains(&key.value.as_str()) {
            let hint = match closest(&key.value, &names) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("`{}` takes: {}", kind.kind, names.join(", ")),
            };
            problems.push(
                Problem::new(
                    key.location,
                    format!(
                        "unknown parameter `{}` for step kind `{}`",
                        key.value, kind.kind
                    ),
                )
                .hint(hint),
            );
        }
    }
    for parameter in kind
        .parameters
        .iter()
        .filter(|parameter| parameter.required)
    {
        if step.param(parameter.name).is_none() {
            problems.push(
                Problem::new(
                    step.location,
                    format!(
                        "step `{}` ({}) is missing required parameter `{}`",
                        step.id.value, kind.kind, parameter.name
                    ),
                )
                .hint(format!("`{}`: {}", parameter.name, parameter.help)),
            );
        }
    }
}

fn check_cycles(playbook: &Playbook, problems: &mut Vec<Problem>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        id: &'a str,
        playbook: &'a Playbook,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<&'a str>>,
    ) {
        match marks.get(id).copied().unwrap_or(Mark::New) {
            Mark::Done => return,
            Mark::Active => {
                if let Some(start) = path.iter().position(|step| *step == id) {
                    let mut cycle = path[start..].to_vec();
                    cycle.push(id);
                    cycles.push(cycle);
                }
                return;
            }
            Mark::New => {}
        }
        let Some(step) = playbook.step(id) else {
            return;
        };
        marks.insert(id, Mark::Active);
        path.push(id);
        for need in &step.needs {
            visit(&need.value, playbook, marks, path, cycles);
        }
        path.pop();
        marks.insert(id, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut cycles = Vec::new();
    for step in &playbook.steps {
        visit(
            &step.id.value,
            playbook,
            &mut marks,
            &mut Vec::new(),
            &mut cycles,
        );
    }
    for cycle in cycles {
        let location = playbook
            .step(cycle[0])
            .map(|step| step.location)
            .unwrap_or_default();
        problems.push(
            Problem::new(
                location,
                format!(
                    "dependency cycle: {}",
                    cycle
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            )
            .hint("remove one of these `needs` so the steps can run in order"),
        );
    }
}

/// Whether step `id` needs step `other`, directly or through other steps. The search stops
/// as soon as it finds `other` (usually among `id`'s own needs), so checking every
/// reference of a large playbook does not walk each step's whole ancestry.
fn depends_on(playbook: &Playbook, id: &str, other: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![id];
    while let Some(next) = stack.pop() {
        let Some(step) = playbook.step(next) else {
            continue;
        };
        for need in &step.needs {
            let need = need.value.as_str();
            if need == other {
                return true;
            }
            if seen.insert(need) {
                stack.push(need);
            }
        }
    }
    false
}

fn check_references(playbook: &Playbook, kinds: &[KindSpec], problems: &mut Vec<Problem>) {
    for step in &playbook.steps {
        for (_, value) in &step.with {
            for (reference, location) in value.value.references(value.location) {
                match &reference {
                    Reference::Input(name) => {
                        check_input_reference(playbook, &reference, name, location, problems);
                    }
                    Reference::StepOutput {
                        step: producer,
                        output,
                    } => {
                        let Some(producer_spec) = playbook.step(producer) else {
                            problems.push(Problem::new(
                                location,
                                format!("`${{{reference}}}` refers to step `{producer}`, which does not exist"),
                            ));
                            continue;
                        };
                        if let Some(kind) =
                            kinds.iter().find(|k| k.kind == producer_spec.kind.value)
                            && !kind.outputs.contains(&output.as_str())
                        {
                            let mut problem = Problem::new(
                                location,
                                format!(
                                    "`${{{reference}}}`: step `{producer}` ({}) has no output `{output}`",
                                    kind.kind
                                ),
                            );
                            problem = match closest(output, kind.outputs) {
                                Some(close) => problem.hint(format!("did you mean `{close}`?")),
                                None => problem
                                    .hint(format!("its outputs: {}", kind.outputs.join(", "))),
                            };
                            problems.push(problem);
                        }
                        if producer == &step.id.value {
                            problems.push(Problem::new(
                                location,
                                format!("step `{producer}` refers to its own output `{output}`"),
                            ));
                        } else if !depends_on(playbook, &step.id.value, producer) {
                            problems.push(
                                Problem::new(
                                    location,
                                    format!(
                                        "step `{}` uses `${{{reference}}}` but does not need `{producer}`",
                                        step.id.value
                                    ),
                                )
                                .hint(format!("add `{producer}` to the `needs` of `{}`", step.id.value)),
                            );
                        }
                    }
                    Reference::TargetRegion
                    | Reference::SourceRegion
                    | Reference::RunId
                    | Reference::PlaybookName => {}
                }
            }
        }
    }
}

/// `${inputs.NAME}` must name a declared input.
fn check_input_reference(
    playbook: &Playbook,
    reference: &Reference,
    name: &str,
    location: Location,
    problems: &mut Vec<Problem>,
) {
    if playbook.input(name).is_some() {
        return;
    }
    let names: Vec<&str> = playbook
        .inputs
        .iter()
        .map(|input| input.name.value.as_str())
        .collect();
    let problem = Problem::new(
        location,
        format!("`${{{reference}}}` refers to input `{name}`, which is not declared"),
    );
    problems.push(match closest(name, &names) {
        Some(close) => problem.hint(format!("did you mean `{close}`?")),
        None => problem.hint("declare it under `inputs:`"),
    });
}
