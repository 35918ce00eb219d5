//! `rebuild validate` on broken playbooks: every mistake is reported with the right
//! `file:line:column`, a useful message, exit code 2 and no panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const FILE: &str = "playbook.yaml";

/// Run the real binary with `args` in `dir`: (exit code, stderr, stdout).
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rebuild"))
        .args(args)
        .current_dir(dir)
        .env_remove("REBUILD_STATE_DIR")
        .output()
        .expect("run the rebuild binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Write `yaml` to `playbook.yaml` in a fresh temp dir and `rebuild validate playbook.yaml`
/// there: (exit code, stderr, stdout).
fn validate(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(FILE), yaml).expect("write playbook");
    run_in(dir.path(), &["validate", FILE])
}

/// The `playbook.yaml:LINE:COL: message` lines of stderr.
fn problem_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with(&format!("{FILE}:")))
        .collect()
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

/// Assert that validating `yaml` fails with exit code 2 and reports, at
/// `playbook.yaml:LINE:COL: ` (any column when `None`), a message containing `expected`.
/// Returns stderr for further checks.
fn assert_problem(
    yaml: &str,
    expected_line: usize,
    expected_column: Option<usize>,
    expected: &str,
) -> String {
    let (code, stderr, stdout) = validate(yaml);
    assert!(
        !stderr.contains("panicked"),
        "the validator panicked:\n{stderr}"
    );
    assert_eq!(
        code, 2,
        "exit code for an invalid playbook\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
    let found = stderr.lines().any(|line| {
        let message = match expected_column {
            Some(column) => line.strip_prefix(&format!("{FILE}:{expected_line}:{column}: ")),
            None => line
                .strip_prefix(&format!("{FILE}:{expected_line}:"))
                .and_then(|rest| rest.split_once(": "))
                .filter(|(column, _)| {
                    !column.is_empty() && column.chars().all(|c| c.is_ascii_digit())
                })
                .map(|(_, message)| message),
        };
        message.is_some_and(|message| message.contains(expected))
    });
    let at = match expected_column {
        Some(column) => format!("{FILE}:{expected_line}:{column}"),
        None => format!("{FILE}:{expected_line}:*"),
    };
    assert!(
        found,
        "expected a problem at {at} containing {expected:?}, got stderr:\n{stderr}"
    );
    stderr
}

/// Assert that the problem reported at `LINE:COL` is followed by a hint containing `expected`.
fn assert_hint(stderr: &str, line: usize, column: usize, expected: &str) {
    let prefix = format!("{FILE}:{line}:{column}: ");
    let lines: Vec<&str> = stderr.lines().collect();
    let index = lines
        .iter()
        .position(|text| text.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no problem at {prefix:?} in:\n{stderr}"));
    let hint = lines.get(index + 1).copied().unwrap_or_default();
    assert!(
        hint.trim_start().starts_with("hint:") && hint.contains(expected),
        "expected a hint containing {expected:?} after {prefix:?}, got stderr:\n{stderr}"
    );
}

/// Assert that validation succeeds.
fn assert_valid(yaml: &str) {
    let (code, stderr, stdout) = validate(yaml);
    assert_eq!(
        code, 0,
        "expected a valid playbook\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(stdout.contains("is valid"), "stdout:\n{stdout}");
}

// ---------------------------------------------------------------------------------------
// Valid playbooks: the fixtures below are built from these, so they must pass.

#[test]
fn shipped_playbook_is_valid() {
    let (code, stderr, stdout) = run_in(Path::new(env!("CARGO_MANIFEST_DIR")), &["validate"]);
    assert_eq!(code, 0, "stderr:\n{stderr}\nstdout:\n{stdout}");
    assert!(
        stdout.contains("playbook `region-rebuild` is valid (9 steps)"),
        "stdout:\n{stdout}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

#[test]
fn minimal_playbook_with_transitive_needs_is_valid() {
    // `app` uses the network's output through `database`, which needs `network`.
    assert_valid(
        r#"version: 1
name: test
source_region: ap-southeast-2
default_target: ap-southeast-1
inputs:
  vpc_cidr: 10.0.0.0/16
steps:
  - id: network
    kind: aws.network
    with:
      cidr: ${inputs.vpc_cidr}
  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      instance_class: db.r6g.large
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids:
        - ${steps.network.database_security_group_id}
  - id: app
    kind: aws.network
    needs: database
    with:
      cidr: net-${steps.network.vpc_cidr}-${steps.database.port}
"#,
    );
}

#[test]
fn missing_playbook_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, _) = run_in(dir.path(), &["validate", "no-such-playbook.yaml"]);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert!(
        stderr.contains("no-such-playbook.yaml"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// Not a playbook at all.

#[test]
fn invalid_yaml_bad_indentation_reports_the_scanner_error() {
    // Line 3 is indented under a scalar value: `:` is not allowed there.
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
  default_target: ap-southeast-1
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        3,
        Some(17),
        "invalid YAML: mapping values are not allowed",
    );
}

#[test]
fn invalid_yaml_unclosed_flow_sequence_reports_the_scanner_error() {
    // The `[` on line 4 is never closed; the scanner notices at the end of the file.
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - { id: network, kind: aws.network, needs: [other, with: { cidr: 10.0.0.0/16 } }
"#,
        4,
        None,
        "invalid YAML",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn empty_file_is_reported_as_empty() {
    let stderr = assert_problem("", 1, Some(1), "the playbook is empty");
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
    let stderr = assert_problem(
        "# nothing here yet\n\n",
        1,
        Some(1),
        "the playbook is empty",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn top_level_list_is_not_a_mapping() {
    assert_problem(
        r#"- id: network
  kind: aws.network
  with:
    cidr: 10.0.0.0/16
"#,
        1,
        Some(1),
        "a playbook must be a YAML mapping",
    );
}

#[test]
fn duplicate_key_names_the_first_one() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
name: other
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        3,
        Some(1),
        "duplicate key `name` (first written at 1:1)",
    );
}

#[test]
fn duplicate_key_in_a_nested_mapping() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
      cidr: 10.1.0.0/16
"#,
        8,
        Some(7),
        "duplicate key `cidr` (first written at 7:7)",
    );
}

// ---------------------------------------------------------------------------------------
// Top-level fields.

#[test]
fn unknown_top_level_field_suggests_the_right_name() {
    let stderr = assert_problem(
        r#"name: test
soruce_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        2,
        Some(1),
        "unknown field `soruce_region` in playbook",
    );
    assert_hint(&stderr, 2, 1, "did you mean `source_region`?");
}

#[test]
fn missing_name_is_reported_at_the_top() {
    assert_problem(
        r#"source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        1,
        Some(1),
        "missing required field `name`",
    );
}

#[test]
fn missing_steps_is_reported_where_the_mapping_starts() {
    let stderr = assert_problem(
        r#"# A playbook that forgot its steps.
name: test
source_region: ap-southeast-2
"#,
        2,
        Some(1),
        "missing required field `steps`",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn unsupported_version_is_reported() {
    assert_problem(
        r#"version: 2
name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        1,
        Some(10),
        "unsupported playbook `version`",
    );
}

#[test]
fn invalid_source_region_name() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        2,
        Some(16),
        "`ap-southeast2` is not an AWS region name",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn default_target_equal_to_source_region() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
default_target: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        3,
        Some(17),
        "`default_target` is the source region `ap-southeast-2`",
    );
}

#[test]
fn zero_rpo_limit_is_rejected() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
rpo_limit: 0h
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        3,
        Some(12),
        "`rpo_limit` must be longer than zero",
    );
}

// ---------------------------------------------------------------------------------------
// Inputs.

#[test]
fn secret_input_with_a_default_is_rejected() {
    let stderr = assert_problem(
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
        4,
        Some(3),
        "secret input `db_password` must not have a default",
    );
    assert!(
        !stderr.contains("hunter2-not-a-real-one"),
        "the secret leaked:\n{stderr}"
    );
}

#[test]
fn reference_to_an_undeclared_input_suggests_the_declared_one() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
inputs:
  vpc_cidr: 10.0.0.0/16
steps:
  - id: network
    kind: aws.network
    with:
      cidr: ${inputs.vpc_cdir}
"#,
        9,
        Some(13),
        "refers to input `vpc_cdir`, which is not declared",
    );
    assert_hint(&stderr, 9, 13, "did you mean `vpc_cidr`?");
}

// ---------------------------------------------------------------------------------------
// Steps: ids, kinds, fields.

#[test]
fn unknown_step_kind_suggests_the_closest_kind() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.netwrok
    with:
      cidr: 10.0.0.0/16
"#,
        5,
        Some(11),
        "unknown step kind `aws.netwrok`",
    );
    assert_hint(&stderr, 5, 11, "did you mean `aws.network`?");
}

#[test]
fn unknown_step_field_need_instead_of_needs() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: other
    kind: aws.network
    need: [network]
    with:
      cidr: 10.1.0.0/16
"#,
        10,
        Some(5),
        "unknown field `need` in a step",
    );
    assert_hint(&stderr, 10, 5, "did you mean `needs`?");
}

#[test]
fn step_without_a_kind_is_reported_at_the_step() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    with:
      cidr: 10.0.0.0/16
"#,
        4,
        Some(5),
        "missing required field `kind`",
    );
}

#[test]
fn duplicate_step_ids_name_the_first_location() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: network
    kind: aws.network
    with:
      cidr: 10.1.0.0/16
"#,
        8,
        Some(9),
        "duplicate step id `network` (first used at 4:9)",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn step_id_with_uppercase_letters_is_invalid() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: Network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        4,
        Some(9),
        "step id `Network` is not valid",
    );
}

#[test]
fn step_id_with_underscore_is_invalid() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: main_network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
"#,
        4,
        Some(9),
        "step id `main_network` is not valid",
    );
}

// ---------------------------------------------------------------------------------------
// Steps: parameters, durations, retry.

#[test]
fn unknown_parameter_for_the_kind() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr_block: 10.0.0.0/16
"#,
        7,
        Some(7),
        "unknown parameter `cidr_block` for step kind `aws.network`",
    );
    // Writing `cidr_block` instead of `cidr` also leaves `cidr` missing.
    assert!(
        stderr.contains(&format!(
            "{FILE}:4:5: step `network` (aws.network) is missing required parameter `cidr`"
        )),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        problem_locations(&stderr),
        vec![(4, 5), (7, 7)],
        "stderr:\n{stderr}"
    );
}

#[test]
fn missing_required_parameter_is_reported_at_the_step() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids:
        - ${steps.network.database_security_group_id}
"#,
        8,
        Some(5),
        "step `database` (aws.rds.restore) is missing required parameter `instance_class`",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn missing_required_parameter_of_a_flow_step_is_reported_at_its_brace() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - { id: network, kind: aws.network }
"#,
        4,
        Some(5),
        "step `network` (aws.network) is missing required parameter `cidr`",
    );
}

#[test]
fn invalid_timeout_duration() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    timeout: 5x
    with:
      cidr: 10.0.0.0/16
"#,
        6,
        Some(14),
        "invalid `timeout`: `5x` is not a duration",
    );
}

#[test]
fn zero_timeout_is_rejected() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    timeout: 0s
    with:
      cidr: 10.0.0.0/16
"#,
        6,
        Some(14),
        "`timeout` must be longer than zero",
    );
}

#[test]
fn retry_with_zero_attempts() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    retry: { attempts: 0, backoff: 10s }
    with:
      cidr: 10.0.0.0/16
"#,
        6,
        Some(24),
        "`retry.attempts` must be a whole number from 1 to 100",
    );
}

#[test]
fn retry_with_an_unknown_field() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    retry:
      attempts: 3
      bakoff: 10s
    with:
      cidr: 10.0.0.0/16
"#,
        8,
        Some(7),
        "unknown field `bakoff` in `retry`",
    );
    assert_hint(&stderr, 8, 7, "did you mean `backoff`?");
}

// ---------------------------------------------------------------------------------------
// Steps: needs and cycles.

#[test]
fn needs_a_step_that_does_not_exist() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: other
    kind: aws.network
    needs: [netwrok]
    with:
      cidr: 10.1.0.0/16
"#,
        10,
        Some(13),
        "step `other` needs `netwrok`, which is not a step",
    );
    assert_hint(&stderr, 10, 13, "did you mean `network`?");
}

#[test]
fn dependency_cycle_of_three_steps_names_the_cycle() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: alpha
    kind: aws.network
    needs: [gamma]
    with:
      cidr: 10.0.0.0/16
  - id: beta
    kind: aws.network
    needs: [alpha]
    with:
      cidr: 10.1.0.0/16
  - id: gamma
    kind: aws.network
    needs: [beta]
    with:
      cidr: 10.2.0.0/16
"#,
        4,
        Some(5),
        "dependency cycle: `alpha` → `gamma` → `beta` → `alpha`",
    );
    assert_eq!(
        problem_lines(&stderr).len(),
        1,
        "one cycle, reported once:\n{stderr}"
    );
}

#[test]
fn step_that_needs_itself_is_a_cycle() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    needs: [network]
    with:
      cidr: 10.0.0.0/16
"#,
        4,
        Some(5),
        "dependency cycle: `network` → `network`",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------
// References.

#[test]
fn reference_to_an_unknown_output_points_at_the_parameter() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      instance_class: db.r6g.large
      subnet_ids: ${steps.network.vpc}
      security_group_ids:
        - ${steps.network.database_security_group_id}
"#,
        13,
        Some(19),
        "`${steps.network.vpc}`: step `network` (aws.network) has no output `vpc`",
    );
    assert_eq!(problem_lines(&stderr).len(), 1, "stderr:\n{stderr}");
}

#[test]
fn reference_to_an_unknown_output_inside_a_list_and_a_string() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      instance_class: db.r6g.large
      db_identifier: db-${steps.network.vpc_idd}
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids:
        - ${steps.network.database_sg}
"#,
        13,
        Some(25),
        "step `network` (aws.network) has no output `vpc_idd`",
    );
    assert_hint(&stderr, 13, 25, "did you mean `vpc_id`?");
    assert!(
        problem_lines(&stderr)
            .iter()
            .any(|line| line.starts_with(&format!("{FILE}:16:11: "))
                && line.contains("no output `database_sg`")),
        "stderr:\n{stderr}"
    );
}

#[test]
fn reference_to_a_step_that_does_not_exist() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: ${steps.vpc.vpc_cidr}
"#,
        7,
        Some(13),
        "refers to step `vpc`, which does not exist",
    );
}

#[test]
fn reference_to_an_output_without_needing_the_step() {
    let stderr = assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
  - id: other
    kind: aws.network
    with:
      cidr: 10.1.0.0/16
  - id: database
    kind: aws.rds.restore
    needs: [other]
    with:
      instance_class: db.r6g.large
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids: [sg-123]
"#,
        17,
        Some(19),
        "step `database` uses `${steps.network.private_subnet_ids}` but does not need `network`",
    );
    assert_hint(
        &stderr,
        17,
        19,
        "add `network` to the `needs` of `database`",
    );
}

#[test]
fn step_referring_to_its_own_output() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: 10.0.0.0/16
      zones: ${steps.network.availability_zones}
"#,
        8,
        Some(14),
        "step `network` refers to its own output `availability_zones`",
    );
}

#[test]
fn unterminated_reference_points_at_the_dollar() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
inputs:
  x: 10.0.0.0/16
steps:
  - id: network
    kind: aws.network
    with:
      cidr: net-${inputs.x
"#,
        9,
        Some(17),
        "unterminated reference: `${` has no closing `}`",
    );
}

#[test]
fn reference_with_an_unknown_root_is_malformed() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: ${foo}
"#,
        7,
        Some(13),
        "`${foo}` is not a reference",
    );
}

#[test]
fn malformed_references_in_quoted_strings_point_at_the_dollar() {
    // A quoted scalar starts at its quote: the `$` is one column further than in a plain one.
    let yaml = r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with:
      cidr: "net-${inputs.x"
      zones: 'a-${foo}'
"#;
    let stderr = assert_problem(yaml, 7, Some(18), "unterminated reference");
    assert_problem(yaml, 8, Some(17), "`${foo}` is not a reference");
    assert_eq!(problem_lines(&stderr).len(), 2, "stderr:\n{stderr}");
}

#[test]
fn undeclared_input_in_a_quoted_flow_value_points_at_the_dollar() {
    assert_problem(
        r#"name: test
source_region: ap-southeast-2
steps:
  - id: network
    kind: aws.network
    with: { cidr: "10.${inputs.second_octet}.0.0/16" }
"#,
        6,
        Some(23),
        "refers to input `second_octet`, which is not declared",
    );
}

// ---------------------------------------------------------------------------------------
// Everything at once.

#[test]
fn several_problems_are_all_reported_sorted_by_line() {
    // Four mistakes, alternating between those found while parsing (lines 3 and 7) and
    // those found by the cross-checks (lines 6 and 9).
    let yaml = r#"name: test
source_region: ap-southeast-2
defualt_target: ap-southeast-1
steps:
  - id: network
    kind: aws.netwrok
    timeout: 5x
    with:
      cidr: ${inputs.vpc_cidr}
"#;
    let stderr = assert_problem(
        yaml,
        3,
        Some(1),
        "unknown field `defualt_target` in playbook",
    );
    assert_problem(yaml, 6, Some(11), "unknown step kind `aws.netwrok`");
    assert_problem(yaml, 7, Some(14), "invalid `timeout`");
    assert_problem(
        yaml,
        9,
        Some(13),
        "refers to input `vpc_cidr`, which is not declared",
    );
    assert!(
        stderr.contains("the playbook has 4 problem(s)"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        problem_locations(&stderr),
        vec![(3, 1), (6, 11), (7, 14), (9, 13)],
        "all four problems, in file order:\n{stderr}"
    );
}
