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
