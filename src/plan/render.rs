//! Plans for people and machines: the text `rebuild plan` prints (waves, actions, facts,
//! problems) and the JSON of `--output json`.

use std::fmt::Write;

use serde_json::Value;

use super::Plan;
use super::amend::{Amendment, StepDiff};

/// A plan as text.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let run = plan
        .run_id
        .as_deref()
        .map(|id| format!(" (resuming run {id})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Plan: playbook `{}`, stack `{}`{run}\n  rebuild {} → {}",
        plan.playbook, plan.stack, plan.source_region, plan.target_region
    );
    if let Some(identity) = &plan.identity {
        let _ = writeln!(
            out,
            "  as {} (AWS account {})",
            identity.arn, identity.account
        );
    }
    if !plan.amendments.is_empty() {
        let _ = writeln!(
            out,
            "  changes this resume makes (journaled when it goes ahead):"
        );
        for amendment in &plan.amendments {
            let _ = writeln!(out, "    {}", amendment_text(amendment));
        }
    }
    out.push('\n');
    for (index, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "wave {}:", index + 1);
        for id in wave {
            let Some(step) = plan.step(id) else { continue };
            let needs = if step.needs.is_empty() {
                String::new()
            } else {
                format!(" (after {})", step.needs.join(", "))
            };
            let _ = writeln!(
                out,
                "  {:<8} {} [{}]{needs}",
                step.action.to_string(),
                step.id,
                step.kind
            );
            if !step.summary.is_empty() {
                let _ = writeln!(out, "           {}", step.summary);
            }
            for (key, value) in &step.details {
                let _ = writeln!(out, "           {key}: {value}");
            }
        }
    }
    if plan.problems.is_empty() {
        let _ = writeln!(out, "\nNo problems found.");
    } else {
        let _ = writeln!(
            out,
            "\nProblems ({}), nothing will be changed:",
            plan.problems.len()
        );
        for problem in &plan.problems {
            match &problem.step {
                Some(step) => {
                    let _ = writeln!(out, "  - step `{step}`: {}", problem.message);
                }
                None => {
                    let _ = writeln!(out, "  - {}", problem.message);
                }
            }
        }
    }
    out
}

/// One change a resume makes, in one line.
fn amendment_text(amendment: &Amendment) -> String {
    match amendment {
        Amendment::InputChanged(change) => {
            format!("input `{}`: {} → {}", change.name, change.from, change.to)
        }
        Amendment::PlaybookReplanned { diff, .. } => {
            format!("playbook replanned: {}", diff_text(diff))
        }
    }
}

/// What an edit of the playbook changed, in words: ``changed `nodes`; added `smoke` ``.
pub fn diff_text(diff: &StepDiff) -> String {
    let named = |what: &str, names: &[String]| {
        (!names.is_empty()).then(|| {
            let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
            format!("{what} {}", names.join(", "))
        })
    };
    let parts: Vec<String> = [
        named("changed", &diff.changed),
        named("added", &diff.added),
        named("removed", &diff.removed),
        named("settings changed:", &diff.settings),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "no step changed".to_string()
    } else {
        parts.join("; ")
    }
}

/// A plan as JSON.
pub fn plan_json(plan: &Plan) -> Value {
    serde_json::to_value(plan).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanProblem, PlannedStep};
    use crate::steps::Action;

    fn plan() -> Plan {
        Plan {
            run_id: None,
            playbook: "region-rebuild".into(),
            playbook_path: "/p.yaml".into(),
            stack: "region-rebuild@ap-southeast-1".into(),
            source_region: "ap-southeast-2".into(),
            target_region: "ap-southeast-1".into(),
            identity: None,
            steps: vec![
                PlannedStep {
                    id: "network".into(),
                    kind: "aws.network".into(),
                    needs: vec![],
                    action: Action::Create,
                    summary: "create VPC 10.42.0.0/16".into(),
                    details: vec![("zones".into(), "a, b, c".into())],
                    ..PlannedStep::default()
                },
                PlannedStep {
                    id: "database".into(),
                    kind: "aws.rds.restore".into(),
                    needs: vec!["network".into()],
                    action: Action::Create,
                    summary: "restore into new database `database-<run-id>`".into(),
                    details: vec![
                        ("snapshot".into(), "prod-db-snap-2-copy".into()),
                        ("rpo (snapshot age)".into(), "7h41m".into()),
                    ],
                    ..PlannedStep::default()
                },
            ],
            waves: vec![vec!["network".into()], vec!["database".into()]],
            problems: vec![],
            resumed: false,
            amendments: Vec::new(),
        }
    }

    #[test]
    fn plan_text_names_actions_waves_and_facts() {
        let expected = "\
Plan: playbook `region-rebuild`, stack `region-rebuild@ap-southeast-1`
  rebuild ap-southeast-2 → ap-southeast-1

wave 1:
  create   network [aws.network]
           create VPC 10.42.0.0/16
           zones: a, b, c
wave 2:
  create   database [aws.rds.restore] (after network)
           restore into new database `database-<run-id>`
           snapshot: prod-db-snap-2-copy
           rpo (snapshot age): 7h41m

No problems found.
";
        assert_eq!(plan_text(&plan()), expected);
    }

    #[test]
    fn plan_text_lists_problems_and_says_nothing_changes() {
        let mut plan = plan();
        plan.problems.push(PlanProblem {
            step: Some("database".into()),
            message: "the newest snapshot is 2d old".into(),
            cause: crate::plan::Cause::RpoExceeded,
        });
        let text = plan_text(&plan);
        assert!(text.ends_with(
            "\nProblems (1), nothing will be changed:\n  - step `database`: the newest snapshot is 2d old\n"
        ));
    }
}
