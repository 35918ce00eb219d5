//! `rebuild validate` through the real binary: exit code 2, the `file:line:column: message`
//! rendering with hints, several problems reported at once and in file order, no panic,
//! and the output for a valid playbook; each rendering is snapshotted. What each kind of
//! mistake reports is checked, case by case, by the table in `src/playbook/validate_tests.rs`.

use std::path::Path;

use crate::support::snapshot;
use crate::support::test::{Outcome, Test};

const FILE: &str = "playbook.yaml";

/// Write `yaml` to `playbook.yaml` in a fresh temporary folder and run `rebuild validate
/// playbook.yaml` there.
fn validate(yaml: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE), yaml).unwrap();
    let outcome = Test::new()
        .current_dir(dir.path())
        .args(["validate", FILE])
        .run();
    assert!(
        !outcome.stderr().contains("panicked"),
        "the validator panicked: {}",
        outcome.text()
    );
    outcome
}

/// The `playbook.yaml:LINE:COL: message` lines of stderr.
fn problem_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with(&format!("{FILE}:")))
        .collect()
}

/// Assert that a problem is reported at `playbook.yaml:LINE:COLUMN: ` with a message
/// holding `expected`.
#[track_caller]
fn assert_problem_at(outcome: &Outcome, line: usize, column: usize, expected: &str) {
    let prefix = format!("{FILE}:{line}:{column}: ");
    assert!(
        outcome.stderr().lines().any(|text| text
            .strip_prefix(&prefix)
            .is_some_and(|message| message.contains(expected))),
        "expected a problem at {FILE}:{line}:{column} containing {expected:?}: {}",
        outcome.text()
    );
}

/// (line, column) of each problem line, in output order.
fn problem_locations(stderr: &str) -> Vec<(usize, usize)> {
    problem_lines(stderr)
        .iter()
        .map(|line| {
            let mut fields = line[FILE.len() + 1..].splitn(3, ':');
            let line_number = fields.next().unwrap().parse().unwrap();
            let column = fields.next().unwrap().parse().unwrap();
            (line_number, column)
        })
        .collect()
}

#[test]
fn shipped_playbook_is_valid() {
    let outcome = Test::new()
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("validate")
        .run();
    outcome
        .success()
        .stdout_contains("playbook `region-rebuild` is valid (13 steps)");
    assert!(!outcome.stderr().contains("panicked"), "{}", outcome.text());
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("validate_shipped_playbook", outcome.stdout());
    });
}

#[test]
fn missing_playbook_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = Test::new()
        .current_dir(dir.path())
        .args(["validate", "no-such-playbook.yaml"])
        .run();
    outcome.code(2).stderr_contains("no-such-playbook.yaml");
    assert!(!outcome.stderr().contains("panicked"), "{}", outcome.text());
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("validate_missing_playbook", outcome.stderr());
    });
}

#[test]
fn unknown_top_level_field_is_rendered_with_its_hint() {
    let outcome = validate(
        r#"name: test
soruce_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
    );
    outcome.code(2);
    let lines: Vec<&str> = outcome.stderr().lines().collect();
    let at = lines
        .iter()
        .position(|line| *line == format!("{FILE}:2:1: unknown field `soruce_region` in playbook"))
        .unwrap_or_else(|| panic!("no problem at {FILE}:2:1: {}", outcome.text()));
    assert_eq!(
        lines.get(at + 1).map(|line| line.trim_start()),
        Some("hint: did you mean `source_region`?"),
        "{}",
        outcome.text()
    );
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("validate_unknown_field", outcome.stderr());
    });
}

#[test]
fn secret_input_with_a_default_is_rejected_without_showing_it() {
    let outcome = validate(
        r#"name: test
source_region: ap-southeast-2
inputs:
  db_password:
    secret: true
    default: hunter2-not-a-real-one
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
    );
    outcome.code(2).never_shows("hunter2-not-a-real-one");
    assert_problem_at(
        &outcome,
        4,
        3,
        "secret input `db_password` must not have a default",
    );
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("validate_secret_default", outcome.stderr());
    });
}

#[test]
fn several_problems_are_all_reported_sorted_by_line() {
    // Four mistakes, alternating between those found while parsing (lines 3 and 7) and
    // those found by the cross-checks (lines 6 and 9).
    let outcome = validate(
        r#"name: test
source_region: ap-southeast-2
defualt_target: ap-southeast-1
steps:
  - id: network
    kind: aws.netwrok
    timeout: 5x
    with:
      cidr: ${inputs.vpc_cidr}
"#,
    );
    outcome
        .code(2)
        .stderr_contains("the playbook has 4 problem(s)");
    assert_problem_at(&outcome, 3, 1, "unknown field `defualt_target` in playbook");
    assert_problem_at(&outcome, 6, 11, "unknown step kind `aws.netwrok`");
    assert_problem_at(&outcome, 7, 14, "invalid `timeout`");
    assert_problem_at(
        &outcome,
        9,
        13,
        "refers to input `vpc_cidr`, which is not declared",
    );
    assert_eq!(
        problem_locations(outcome.stderr()),
        vec![(3, 1), (6, 11), (7, 14), (9, 13)],
        "all four problems, in file order: {}",
        outcome.text()
    );
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("validate_several_problems", outcome.stderr());
    });
}
