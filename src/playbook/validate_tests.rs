//! Playbook validation as a table (just's `analysis_error!`): each case is a playbook and
//! every problem [`from_str`] finds in it against the built-in step kinds, as `(line,
//! column, message)` with the hint where it matters. A case fails when a problem is
//! missing, is reported at another place, does not say what it should (its message must
//! hold the expected text, its hint the expected hint), or when another problem is
//! reported besides. The binary's rendering of problems (`file:line:column`, exit code 2,
//! several at once) is tested by spawning it, in the integration tests' `validate` module.
//!
//! Most inputs start with [`header!`] (lines 1–2) and `steps:` (line 3), then often
//! [`network!`] (lines 4–7), so the line numbers below count from there.

use std::path::Path;

use super::from_str;
use crate::steps::StepKinds;

/// Lines 1–2 of most inputs.
macro_rules! header {
    () => {
        "name: test\nsource_region: ap-southeast-2\n"
    };
}

/// A valid `network` step, four lines long.
macro_rules! network {
    () => {
        "  - id: network\n    kind: aws.network\n    with:\n      cidr: 10.0.0.0/16\n"
    };
}

/// One expected problem: line, column, text of the message, text of the hint.
type Expected = (usize, usize, &'static str, Option<&'static str>);

/// Validate `input` against the built-in kinds and compare every problem found with
/// `expected`, in file order.
#[track_caller]
fn assert_problems(input: &str, expected: &[Expected]) {
    let problems = match from_str(
        Path::new("playbook.yaml"),
        input,
        &StepKinds::builtin().specs(),
    ) {
        Ok(_) => panic!("the playbook is valid, expected {expected:#?}:\n{input}"),
        Err(problems) => problems,
    };
    let found: Vec<(usize, usize)> = problems
        .items
        .iter()
        .map(|problem| (problem.location.line, problem.location.column))
        .collect();
    let wanted: Vec<(usize, usize)> = expected
        .iter()
        .map(|(line, column, _, _)| (*line, *column))
        .collect();
    assert_eq!(
        found, wanted,
        "where the problems are, in:\n{input}\nfound:\n{problems}"
    );
    for (problem, (_, _, message, hint)) in problems.items.iter().zip(expected) {
        assert!(
            problem.message.contains(message),
            "expected a message with {message:?} at {}, found:\n{problems}",
            problem.location
        );
        if let Some(hint) = hint {
            assert!(
                problem
                    .hint
                    .as_deref()
                    .is_some_and(|found| found.contains(hint)),
                "expected a hint with {hint:?} at {}, found:\n{problems}",
                problem.location
            );
        }
    }
}

/// `analysis_error! { name: .., input: .., line: .., column: .., message: .. [, hint: ..] }`
/// for a playbook with exactly one problem, or `problems: [(line, column, message
/// [, hint]), ..]` for several.
macro_rules! analysis_error {
    (
        name: $name:ident,
        input: $input:expr,
        line: $line:expr,
        column: $column:expr,
        message: $message:expr,
        $(hint: $hint:expr,)?
    ) => {
        analysis_error! {
            name: $name,
            input: $input,
            problems: [($line, $column, $message $(, $hint)?)],
        }
    };
    (
        name: $name:ident,
        input: $input:expr,
        problems: [$(($line:expr, $column:expr, $message:expr $(, $hint:expr)?)),+ $(,)?],
    ) => {
        #[test]
        fn $name() {
            assert_problems(
                $input,
                &[$(($line, $column, $message, None$(.or(Some($hint)))?)),+],
            );
        }
    };
}

#[test]
fn minimal_playbook_with_transitive_needs_is_valid() {
    // `app` uses the network's output through `database`, which needs `network`.
    let input = r#"version: 1
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
"#;
    if let Err(problems) = from_str(
        Path::new("playbook.yaml"),
        input,
        &StepKinds::builtin().specs(),
    ) {
        panic!("expected a valid playbook:\n{problems}");
    }
}

// ---------------------------------------------------------------------------------------
// Not a playbook at all.

analysis_error! {
    // Line 3 is indented under a scalar value: `:` is not allowed there.
    name: invalid_yaml_bad_indentation_reports_the_scanner_error,
    input: concat!(
        header!(),
        "  default_target: ap-southeast-1\nsteps:\n",
        network!(),
    ),
    line: 3,
    column: 17,
    message: "invalid YAML: mapping values are not allowed",
}

analysis_error! {
    // The `[` on line 4 is never closed; the scanner notices at the end of the file.
    name: invalid_yaml_unclosed_flow_sequence_reports_the_scanner_error,
    input: concat!(
        header!(),
        "steps:\n  - { id: network, kind: aws.network, needs: [other, with: { cidr: 10.0.0.0/16 } }\n",
    ),
    line: 4,
    column: 82,
    message: "invalid YAML",
}

analysis_error! {
    name: empty_file_is_reported_as_empty,
    input: "",
    line: 1,
    column: 1,
    message: "the playbook is empty",
}

analysis_error! {
    name: a_file_of_comments_is_reported_as_empty,
    input: "# nothing here yet\n\n",
    line: 1,
    column: 1,
    message: "the playbook is empty",
}

analysis_error! {
    name: top_level_list_is_not_a_mapping,
    input: "- id: network\n  kind: aws.network\n  with:\n    cidr: 10.0.0.0/16\n",
    line: 1,
    column: 1,
    message: "a playbook must be a YAML mapping",
}

analysis_error! {
    name: duplicate_key_names_the_first_one,
    input: concat!(header!(), "name: other\nsteps:\n", network!()),
    line: 3,
    column: 1,
    message: "duplicate key `name` (first written at 1:1)",
}

analysis_error! {
    name: duplicate_key_in_a_nested_mapping,
    input: concat!(header!(), "steps:\n", network!(), "      cidr: 10.1.0.0/16\n"),
    line: 8,
    column: 7,
    message: "duplicate key `cidr` (first written at 7:7)",
}

// ---------------------------------------------------------------------------------------
// Top-level fields.

analysis_error! {
    name: unknown_top_level_field_suggests_the_right_name,
    // The misspelt field also leaves `source_region` missing.
    input: concat!("name: test\nsoruce_region: ap-southeast-2\nsteps:\n", network!()),
    problems: [
        (1, 1, "missing required field `source_region`"),
        (2, 1, "unknown field `soruce_region` in playbook", "did you mean `source_region`?"),
    ],
}

analysis_error! {
    name: missing_name_is_reported_at_the_top,
    input: concat!("source_region: ap-southeast-2\nsteps:\n", network!()),
    line: 1,
    column: 1,
    message: "missing required field `name`",
}

analysis_error! {
    name: missing_steps_is_reported_where_the_mapping_starts,
    input: concat!("# A playbook that forgot its steps.\n", header!()),
    line: 2,
    column: 1,
    message: "missing required field `steps`",
}

analysis_error! {
    name: unsupported_version_is_reported,
    input: concat!("version: 2\n", header!(), "steps:\n", network!()),
    line: 1,
    column: 10,
    message: "unsupported playbook `version`",
}

analysis_error! {
    name: invalid_source_region_name,
    input: concat!("name: test\nsource_region: ap-southeast2\nsteps:\n", network!()),
    line: 2,
    column: 16,
    message: "`ap-southeast2` is not an AWS region name",
}

analysis_error! {
    name: default_target_equal_to_source_region,
    input: concat!(header!(), "default_target: ap-southeast-2\nsteps:\n", network!()),
    line: 3,
    column: 17,
    message: "`default_target` is the source region `ap-southeast-2`",
}

analysis_error! {
    name: zero_rpo_limit_is_rejected,
    input: concat!(header!(), "rpo_limit: 0h\nsteps:\n", network!()),
    line: 3,
    column: 12,
    message: "`rpo_limit` must be longer than zero",
}

// ---------------------------------------------------------------------------------------
// Inputs.

analysis_error! {
    // The message must not quote the default: it is a secret.
    name: secret_input_with_a_default_is_rejected,
    input: concat!(
        header!(),
        "inputs:\n  db_password:\n    secret: true\n    default: hunter2-not-a-real-one\nsteps:\n",
        network!(),
    ),
    line: 4,
    column: 3,
    message: "secret input `db_password` must not have a default",
}

analysis_error! {
    name: reference_to_an_undeclared_input_suggests_the_declared_one,
    input: concat!(
        header!(),
        "inputs:\n  vpc_cidr: 10.0.0.0/16\nsteps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr: ${inputs.vpc_cdir}\n",
    ),
    line: 9,
    column: 13,
    message: "refers to input `vpc_cdir`, which is not declared",
    hint: "did you mean `vpc_cidr`?",
}

// ---------------------------------------------------------------------------------------
// Steps: ids, kinds, fields.

analysis_error! {
    name: unknown_step_kind_suggests_the_closest_kind,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.netwrok\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 5,
    column: 11,
    message: "unknown step kind `aws.netwrok`",
    hint: "did you mean `aws.network`?",
}

analysis_error! {
    name: unknown_step_field_need_instead_of_needs,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: other\n    kind: aws.network\n    need: [network]\n    with:\n      cidr: 10.1.0.0/16\n",
    ),
    line: 10,
    column: 5,
    message: "unknown field `need` in a step",
    hint: "did you mean `needs`?",
}

analysis_error! {
    name: step_without_a_kind_is_reported_at_the_step,
    input: concat!(header!(), "steps:\n  - id: network\n    with:\n      cidr: 10.0.0.0/16\n"),
    line: 4,
    column: 5,
    message: "missing required field `kind`",
}

analysis_error! {
    name: duplicate_step_ids_name_the_first_location,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: network\n    kind: aws.network\n    with:\n      cidr: 10.1.0.0/16\n",
    ),
    line: 8,
    column: 9,
    message: "duplicate step id `network` (first used at 4:9)",
}

analysis_error! {
    name: step_id_with_uppercase_letters_is_invalid,
    input: concat!(
        header!(),
        "steps:\n  - id: Network\n    kind: aws.network\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 4,
    column: 9,
    message: "step id `Network` is not valid",
}

analysis_error! {
    name: step_id_with_underscore_is_invalid,
    input: concat!(
        header!(),
        "steps:\n  - id: main_network\n    kind: aws.network\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 4,
    column: 9,
    message: "step id `main_network` is not valid",
}

// ---------------------------------------------------------------------------------------
// Steps: parameters, durations, retry.

analysis_error! {
    // Writing `cidr_block` instead of `cidr` also leaves `cidr` missing.
    name: unknown_parameter_for_the_kind,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr_block: 10.0.0.0/16\n",
    ),
    problems: [
        (4, 5, "step `network` (aws.network) is missing required parameter `cidr`"),
        (7, 7, "unknown parameter `cidr_block` for step kind `aws.network`"),
    ],
}

analysis_error! {
    name: missing_required_parameter_is_reported_at_the_step,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids:
        - ${steps.network.database_security_group_id}
",
    ),
    line: 8,
    column: 5,
    message: "step `database` (aws.rds.restore) is missing required parameter `instance_class`",
}

analysis_error! {
    name: missing_required_parameter_of_a_flow_step_is_reported_at_its_brace,
    input: concat!(header!(), "steps:\n  - { id: network, kind: aws.network }\n"),
    line: 4,
    column: 5,
    message: "step `network` (aws.network) is missing required parameter `cidr`",
}

analysis_error! {
    name: invalid_timeout_duration,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    timeout: 5x\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 6,
    column: 14,
    message: "invalid `timeout`: `5x` is not a duration",
}

analysis_error! {
    name: zero_timeout_is_rejected,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    timeout: 0s\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 6,
    column: 14,
    message: "`timeout` must be longer than zero",
}

analysis_error! {
    name: retry_with_zero_attempts,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    retry: { attempts: 0, backoff: 10s }\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 6,
    column: 24,
    message: "`retry.attempts` must be a whole number from 1 to 100",
}

analysis_error! {
    name: retry_with_an_unknown_field,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    retry:\n      attempts: 3\n      bakoff: 10s\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 8,
    column: 7,
    message: "unknown field `bakoff` in `retry`",
    hint: "did you mean `backoff`?",
}

// ---------------------------------------------------------------------------------------
// Steps: needs and cycles.

analysis_error! {
    name: needs_a_step_that_does_not_exist,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: other\n    kind: aws.network\n    needs: [netwrok]\n    with:\n      cidr: 10.1.0.0/16\n",
    ),
    line: 10,
    column: 13,
    message: "step `other` needs `netwrok`, which is not a step",
    hint: "did you mean `network`?",
}

analysis_error! {
    // One cycle, reported once.
    name: dependency_cycle_of_three_steps_names_the_cycle,
    input: concat!(
        header!(),
        "steps:
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
",
    ),
    line: 4,
    column: 5,
    message: "dependency cycle: `alpha` → `gamma` → `beta` → `alpha`",
}

analysis_error! {
    name: step_that_needs_itself_is_a_cycle,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    needs: [network]\n    with:\n      cidr: 10.0.0.0/16\n",
    ),
    line: 4,
    column: 5,
    message: "dependency cycle: `network` → `network`",
}

// ---------------------------------------------------------------------------------------
// References.

analysis_error! {
    name: reference_to_an_unknown_output_points_at_the_parameter,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      instance_class: db.r6g.large
      subnet_ids: ${steps.network.vpc}
      security_group_ids:
        - ${steps.network.database_security_group_id}
",
    ),
    line: 13,
    column: 19,
    message: "`${steps.network.vpc}`: step `network` (aws.network) has no output `vpc`",
}

analysis_error! {
    name: reference_to_an_unknown_output_inside_a_list_and_a_string,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: database
    kind: aws.rds.restore
    needs: [network]
    with:
      instance_class: db.r6g.large
      db_identifier: db-${steps.network.vpc_idd}
      subnet_ids: ${steps.network.private_subnet_ids}
      security_group_ids:
        - ${steps.network.database_sg}
",
    ),
    problems: [
        (13, 25, "step `network` (aws.network) has no output `vpc_idd`", "did you mean `vpc_id`?"),
        (16, 11, "no output `database_sg`"),
    ],
}

analysis_error! {
    name: reference_to_a_step_that_does_not_exist,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr: ${steps.vpc.vpc_cidr}\n",
    ),
    line: 7,
    column: 13,
    message: "refers to step `vpc`, which does not exist",
}

analysis_error! {
    name: reference_to_an_output_without_needing_the_step,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "  - id: other
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
",
    ),
    line: 17,
    column: 19,
    message: "step `database` uses `${steps.network.private_subnet_ids}` but does not need `network`",
    hint: "add `network` to the `needs` of `database`",
}

analysis_error! {
    name: step_referring_to_its_own_output,
    input: concat!(
        header!(),
        "steps:\n",
        network!(),
        "      zones: ${steps.network.availability_zones}\n",
    ),
    line: 8,
    column: 14,
    message: "step `network` refers to its own output `availability_zones`",
}

analysis_error! {
    name: unterminated_reference_points_at_the_dollar,
    input: concat!(
        header!(),
        "inputs:\n  x: 10.0.0.0/16\nsteps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr: net-${inputs.x\n",
    ),
    line: 9,
    column: 17,
    message: "unterminated reference: `${` has no closing `}`",
}

analysis_error! {
    name: reference_with_an_unknown_root_is_malformed,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr: ${foo}\n",
    ),
    line: 7,
    column: 13,
    message: "`${foo}` is not a reference",
}

analysis_error! {
    // A quoted scalar starts at its quote: the `$` is one column further than in a plain one.
    name: malformed_references_in_quoted_strings_point_at_the_dollar,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    with:\n      cidr: \"net-${inputs.x\"\n      zones: 'a-${foo}'\n",
    ),
    problems: [
        (7, 18, "unterminated reference"),
        (8, 17, "`${foo}` is not a reference"),
    ],
}

analysis_error! {
    name: undeclared_input_in_a_quoted_flow_value_points_at_the_dollar,
    input: concat!(
        header!(),
        "steps:\n  - id: network\n    kind: aws.network\n    with: { cidr: \"10.${inputs.second_octet}.0.0/16\" }\n",
    ),
    line: 6,
    column: 23,
    message: "refers to input `second_octet`, which is not declared",
}

// ---------------------------------------------------------------------------------------
// Everything at once.

analysis_error! {
    // Four mistakes, alternating between those found while parsing (lines 3 and 7) and
    // those found by the cross-checks (lines 6 and 9).
    name: several_problems_are_all_reported_sorted_by_line,
    input: concat!(
        header!(),
        "defualt_target: ap-southeast-1
steps:
  - id: network
    kind: aws.netwrok
    timeout: 5x
    with:
      cidr: ${inputs.vpc_cidr}
",
    ),
    problems: [
        (3, 1, "unknown field `defualt_target` in playbook"),
        (6, 11, "unknown step kind `aws.netwrok`"),
        (7, 14, "invalid `timeout`"),
        (9, 13, "refers to input `vpc_cidr`, which is not declared"),
    ],
}

analysis_error! {
    name: state_must_be_an_s3_url_with_a_valid_bucket,
    input: concat!(header!(), "state: s3://Team_State/dr\n", "steps:\n", network!()),
    line: 3,
    column: 8,
    message: "`state: s3://Team_State/dr`: `Team_State` is not an S3 bucket name",
    hint: "write `state: s3://BUCKET/PREFIX`",
}

analysis_error! {
    name: state_is_not_a_local_directory,
    input: concat!(header!(), "state: /srv/rebuild\n", "steps:\n", network!()),
    line: 3,
    column: 8,
    message: "only `s3://BUCKET/PREFIX` is supported here",
}

#[test]
fn state_names_a_bucket_and_prefix() {
    let input = concat!(
        header!(),
        "state: s3://team-rebuild-state/dr/\n",
        "steps:\n",
        network!()
    );
    let playbook = from_str(
        Path::new("playbook.yaml"),
        input,
        &StepKinds::builtin().specs(),
    )
    .unwrap_or_else(|problems| panic!("{problems}"));
    let state = playbook.state.expect("a state location");
    assert_eq!(state.value.to_string(), "s3://team-rebuild-state/dr");
    assert_eq!((state.location.line, state.location.column), (3, 8));
}
