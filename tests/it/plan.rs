//! `rebuild plan` and `--dry-run` on the seeded world: what the plan shows (snapshotted,
//! text and JSON), and that planning changes nothing — no mutating call, no journal.

use crate::support::inventory::fingerprint;
use crate::support::playbooks::infrastructure_playbook;
use crate::support::snapshot;
use crate::support::world::{TARGET, World};

#[test]
fn dry_run_makes_no_mutating_call_and_shows_the_snapshot_and_rpo() {
    let world = World::with_proxy();
    let before = fingerprint(&world.moto.endpoint);
    world.proxy().reset_counts();
    let playbook = infrastructure_playbook();
    for command in ["plan", "--dry-run"] {
        world
            .test()
            .args([command, "--target", TARGET])
            .playbook(&playbook)
            .run()
            .success()
            .stdout_contains("create   network")
            .stdout_contains("snapshot: prod-db-snap-2-copy")
            .stdout_contains("rpo (snapshot age): ");
    }
    let plan = world
        .test()
        .args(["plan", "--target", TARGET, "--output", "json"])
        .playbook(&playbook)
        .run()
        .stdout_json();
    assert_eq!(plan["steps"][0]["action"], "create");
    assert!(plan["problems"].as_array().unwrap().is_empty());

    assert!(
        world.proxy().count("DescribeDBSnapshots") > 0,
        "the plan did look"
    );
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    assert_eq!(
        fingerprint(&world.moto.endpoint),
        before,
        "state changed during a dry run"
    );
    assert!(
        world.journal_files().is_empty(),
        "a dry run journals nothing"
    );
}

#[test]
fn the_plan_of_the_seeded_world_reads_as_before() {
    let world = World::new();
    let outcome = world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run();
    outcome.success();
    snapshot::settings().bind(|| {
        insta::assert_snapshot!("plan_of_the_seeded_world", outcome.stdout());
    });
}

/// The testbed's connection override is an input a test gives on purpose, never one read
/// from the environment: a shell left over from a drill must not point a real run at the
/// testbed's API server (review C3).
#[test]
fn a_connection_override_left_in_the_environment_is_not_picked_up() {
    let world = World::new();
    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .env(
            "REBUILD_CONNECT_KUBECONFIG",
            "/leftover/from/a/drill/kubeconfig",
        )
        .run()
        .success()
        .output_lacks("/leftover/from/a/drill/kubeconfig")
        .output_lacks("kubernetes connection");
}

#[test]
fn the_plan_names_the_account_and_caller_it_acts_as_found_first() {
    let world = World::new();
    world.proxy().reset_counts();
    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run()
        .success()
        .stdout_contains("  as arn:aws:sts::123456789012:user/moto (AWS account 123456789012)");
    let operations = world.proxy().operations();
    assert_eq!(
        operations.first().map(String::as_str),
        Some("GetCallerIdentity"),
        "{operations:?}"
    );
    assert_eq!(world.proxy().count("GetCallerIdentity"), 1);
}

#[test]
fn expired_credentials_are_one_problem_with_the_login_hint_and_nothing_else_is_asked() {
    let world = World::new();
    world.proxy().reset_counts();
    world.proxy().fail(
        "GetCallerIdentity",
        1,
        crate::support::proxy::Fault::ExpiredToken,
    );
    let output = world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run();
    output
        .code(4)
        .stderr_contains("hint: no usable AWS credentials: log in (`aws sso login`")
        .stdout_contains("not planned (see the problem below)");
    let text = output.text();
    assert_eq!(text.matches("ExpiredToken").count(), 1, "{text}");
    assert_eq!(world.proxy().operations(), ["GetCallerIdentity"]);
}

#[test]
fn without_any_credentials_the_plan_says_so_once() {
    let world = World::new();
    let output = world
        .test()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run();
    output
        .code(4)
        .stderr_contains("hint: no usable AWS credentials");
    let text = output.text();
    assert_eq!(
        text.matches("cannot tell who the run would act as").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("no providers in chain").count(), 1, "{text}");
}
