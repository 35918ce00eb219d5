//! End-to-end runs of the `rebuild` binary against moto over HTTP (with the real SDK
//! clients), sometimes through the fault proxy: full runs, dry runs, the RPO guard, the lock,
//! crashes placed by failpoints (SIGKILL) and resumes, torn journals, signals and retries.
//! Resources are counted through the EC2 and RDS APIs, never trusted from our own output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::world::*;
use support::{DR_REGION, Fault, block_on, ec2_client, rds_client};

#[test]
fn full_run_creates_one_network_and_one_database_from_the_newest_snapshot_in_the_target() {
    let world = World::new();
    let password = "n3w-Master-Passw0rd";
    let playbook = playbook_path();
    let output = world.run_with(
        &[
            "--target",
            TARGET,
            "--yes",
            "--playbook",
            playbook.to_str().unwrap(),
        ],
        &[("REBUILD_DB_MASTER_PASSWORD", password)],
    );
    assert_eq!(code(&output), 0, "{}", text(&output));
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);

    let status = world.status();
    assert_eq!(status["state"], "succeeded");
    let network = step(&status, "network");
    let database = step(&status, "database");
    assert_eq!(network["state"], "succeeded");
    assert_eq!(database["state"], "succeeded");
    // The newest snapshot *in the target region*: snap-3 is newer but was never copied.
    assert_eq!(database["outputs"]["snapshot_id"], "prod-db-snap-2-copy");
    assert!(database["outputs"]["rpo_seconds"].as_u64().unwrap() < 3600);

    // Outputs agree with what the API says exists.
    let (vpc, endpoint, subnets_in_group) = block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        let vpcs = ec2.describe_vpcs().send().await.unwrap();
        let vpc = vpcs
            .vpcs()
            .iter()
            .find(|v| v.is_default() != Some(true))
            .unwrap()
            .vpc_id()
            .unwrap()
            .to_string();
        let instances = rds.describe_db_instances().send().await.unwrap();
        let instance = &instances.db_instances()[0];
        let endpoint = instance.endpoint().unwrap().address().unwrap().to_string();
        let group = instance.db_subnet_group().unwrap();
        let subnets: Vec<String> = group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        (vpc, endpoint, subnets)
    });
    assert_eq!(network["outputs"]["vpc_id"], vpc.as_str());
    assert_eq!(database["outputs"]["endpoint"], endpoint.as_str());
    let private: Vec<String> =
        serde_json::from_value(network["outputs"]["private_subnet_ids"].clone()).unwrap();
    assert_eq!(subnets_in_group.len(), 3);
    for subnet in &subnets_in_group {
        assert!(
            private.contains(subnet),
            "DB subnet group uses a non-private subnet {subnet}"
        );
    }

    // The secret never reaches the journal or the terminal.
    for journal in world.journal_files() {
        let journal = std::fs::read_to_string(journal).unwrap();
        assert!(!journal.contains(password), "password journaled");
    }
    assert!(!text(&output).contains(password), "password printed");
    let status_text = world.run(&["status"]);
    assert!(!text(&status_text).contains(password));
    assert!(String::from_utf8_lossy(&status_text.stdout).contains("prod-db-snap-2-copy"));
}

#[test]
fn dry_run_makes_no_mutating_call_and_shows_the_snapshot_and_rpo() {
    let world = World::with_proxy();
    let before = fingerprint(&world.moto.endpoint);
    world.proxy().reset_counts();
    let playbook = playbook_path();
    for args in [
        vec![
            "plan",
            "--target",
            TARGET,
            "--playbook",
            playbook.to_str().unwrap(),
        ],
        vec![
            "--dry-run",
            "--target",
            TARGET,
            "--playbook",
            playbook.to_str().unwrap(),
        ],
    ] {
        let output = world.run(&args);
        assert_eq!(code(&output), 0, "{}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("create   network"), "{stdout}");
        assert!(stdout.contains("snapshot: prod-db-snap-2-copy"), "{stdout}");
        assert!(stdout.contains("rpo (snapshot age): "), "{stdout}");
    }
    let json = world.run(&[
        "plan",
        "--target",
        TARGET,
        "--output",
        "json",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
    let plan: Value = serde_json::from_slice(&json.stdout).unwrap();
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
fn rpo_guard_refuses_an_old_snapshot_before_any_change() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook_with(dir.path(), &[("rpo_limit: 24h", "rpo_limit: 1s")]);
    std::thread::sleep(Duration::from_millis(1100));
    world.proxy().reset_counts();
    let output = world.rebuild_with(&playbook);
    assert_eq!(code(&output), 4, "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`prod-db-snap-2-copy`"), "{stderr}");
    assert!(
        stderr.contains(" old: older than the RPO limit of 1s"),
        "{stderr}"
    );
    assert!(stderr.contains("--accept-rpo"), "{stderr}");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);

    // Accepting the data loss on purpose goes ahead.
    let output = world.run(&[
        "--target",
        TARGET,
        "--yes",
        "--accept-rpo",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0, "{}", text(&output));
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn no_snapshot_in_the_target_region_is_refused_before_any_change() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook_with(
        dir.path(),
        &[(
            "source_db_instance: prod-db",
            "source_db_instance: billing-db",
        )],
    );
    let output = world.rebuild_with(&playbook);
    assert_eq!(code(&output), 4, "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("no available DB snapshot of `billing-db` exists in `ap-southeast-1`")
    );
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

#[test]
fn a_second_run_for_the_same_target_exits_3_naming_the_holder() {
    let world = World::with_proxy();
    // Held until released below, however slow the machine: the checks in between need the
    // run to be still waiting.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    let first = spawn_rebuild(&world);
    let status = wait_until(&world, "the database wait", |s| {
        step(s, "database")["state"] == "waiting"
    });
    let run_id = status["run_id"].as_str().unwrap().to_string();
    assert_eq!(status["state"], "running");

    let second = world.rebuild();
    assert_eq!(code(&second), 3, "{}", text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("run `{run_id}`")), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    assert!(stderr.contains("on host `"), "{stderr}");

    world.proxy().clear();
    let first = first.wait_with_output().unwrap();
    assert_eq!(code(&first), 0, "{}", text(&first));
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    // Released on exit: another run may start now.
    assert!(
        !world
            .state
            .path()
            .join("locks/ap-southeast-1.lock")
            .exists()
    );
}

#[test]
fn killed_in_the_middle_of_the_network_step_resumes_without_duplicates() {
    let world = World::new();
    // Killed after the second public subnet exists (VPC + 3 subnets so far).
    world.rebuild_killed_at("network/after-public-subnet@2");
    let partial = inventory(&world.moto.endpoint);
    assert_eq!(
        (
            partial.vpcs,
            partial.public_subnets,
            partial.private_subnets
        ),
        (1, 2, 1)
    );
    let before = world.status();
    assert_eq!(before["state"], "crashed");
    assert_eq!(step(&before, "network")["state"], "running");

    let status = resume_to_completion(&world);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    let network = step(&status, "network");
    assert_eq!(network["attempts"], 2);
    // 16 resources, each recorded once: the second attempt re-found the VPC and subnets.
    let resources = network["resources"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> = resources
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!((resources.len(), ids.len()), (16, 16), "{network}");
    assert_eq!(step(&status, "database")["attempts"], 1);
}

#[test]
fn killed_after_the_nat_gateway_was_requested_resumes_without_duplicates() {
    let world = World::new();
    world.rebuild_killed_at("network/after-nat");
    assert_eq!(inventory(&world.moto.endpoint).nat_gateways, 1);
    resume_to_completion(&world);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn killed_between_steps_resumes_without_repeating_the_network() {
    let world = World::with_proxy();
    world.rebuild_killed_at("network/succeeded");
    assert_eq!(inventory(&world.moto.endpoint).db_instances, 0);
    world.proxy().reset_counts();
    let status = resume_to_completion(&world);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    assert_eq!(
        step(&status, "network")["attempts"],
        1,
        "network was not repeated"
    );
    let mutating = world.proxy().mutating_operations();
    assert!(
        mutating
            .iter()
            .all(|op| !op.contains("Vpc") && !op.contains("Subnet") || op.contains("DBSubnet")),
        "{mutating:?}"
    );
}

#[test]
fn killed_while_waiting_for_the_database_resumes_with_the_pinned_snapshot() {
    let world = World::with_proxy();
    // Held past the kill however slow the machine; released before the resume.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    world.rebuild_killed_at("database/waiting");
    world.proxy().clear();
    let crashed = world.status();
    let database = step(&crashed, "database");
    assert_eq!(database["state"], "waiting");
    assert_eq!(database["pinned"]["snapshot"]["id"], "prod-db-snap-2-copy");
    assert_eq!(inventory(&world.moto.endpoint).db_instances, 1);

    // A newer snapshot lands in the target region meanwhile: the resume must not drift.
    block_on(async {
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        rds.copy_db_snapshot()
            .source_db_snapshot_identifier(
                "arn:aws:rds:ap-southeast-2:123456789012:snapshot:prod-db-snap-3",
            )
            .target_db_snapshot_identifier("prod-db-snap-3-copy")
            .send()
            .await
            .unwrap();
    });
    world.proxy().reset_counts();
    let status = resume_to_completion(&world);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    assert_eq!(
        step(&status, "database")["outputs"]["snapshot_id"],
        "prod-db-snap-2-copy"
    );
    assert_eq!(
        world.proxy().count("RestoreDBInstanceFromDBSnapshot"),
        0,
        "the restore was adopted"
    );
    assert!(
        world.proxy().count("DescribeDBInstances") >= 2,
        "the resumed step waited"
    );
}

#[test]
fn a_torn_last_journal_line_is_dropped_on_resume() {
    let world = World::new();
    world.rebuild_killed_at("network/after-vpc");
    let journal = world.journal_files().pop().unwrap();
    let mut bytes = std::fs::read(&journal).unwrap();
    let lines_before = bytes.iter().filter(|b| **b == b'\n').count();
    bytes.truncate(bytes.len() - 20); // the last record loses its end, as on power loss
    std::fs::write(&journal, &bytes).unwrap();

    let status = world.run(&["status"]);
    assert_eq!(code(&status), 0, "{}", text(&status));
    assert!(String::from_utf8_lossy(&status.stderr).contains("torn"));

    let output = world.run(&["resume", "--yes"]);
    assert_eq!(code(&output), 0, "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("torn"));
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    let journal = std::fs::read_to_string(&journal).unwrap();
    assert!(journal.ends_with('\n'));
    assert!(journal.lines().count() > lines_before);
    for line in journal.lines() {
        serde_json::from_str::<Value>(line).expect("every line is whole JSON after the resume");
    }
}

#[test]
fn sigterm_stops_at_a_safe_point_with_exit_130_and_the_resume_command() {
    let world = World::with_proxy();
    // Held until released below, however slow the machine: the checks in between need the
    // run to be still waiting.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    let child = spawn_rebuild(&world);
    wait_until(&world, "the database wait", |s| {
        step(s, "database")["state"] == "waiting"
    });
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 130, "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hint: continue with: rebuild resume "),
        "{stderr}"
    );
    let status = world.status();
    assert_eq!(status["state"], "interrupted");
    assert_eq!(step(&status, "database")["state"], "interrupted");
    world.proxy().clear();
    resume_to_completion(&world);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn throttling_is_retried_and_a_persistent_failure_exits_1_with_the_resume_command() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook_with(dir.path(), &[("backoff: 10s", "backoff: 1s")]);
    let args = [
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ];

    // More throttles than the SDK's own 3 attempts: the step's retry policy takes over.
    world.proxy().fail("CreateVpc", 4, Fault::Throttle);
    // Then a server error that outlasts every attempt of the database step.
    world
        .proxy()
        .fail("CreateDBSubnetGroup", 100, Fault::ServerError500);
    let output = world.run(&args);
    assert_eq!(code(&output), 1, "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("step `database` (aws.rds.restore) failed: `CreateDBSubnetGroup`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: fix the cause above, then: rebuild resume "),
        "{stderr}"
    );
    let status = world.status();
    assert_eq!(status["state"], "failed");
    assert_eq!(step(&status, "network")["state"], "succeeded");
    assert_eq!(
        step(&status, "network")["attempts"],
        2,
        "one retry after the throttles"
    );
    assert_eq!(step(&status, "database")["attempts"], 3);

    world.proxy().clear();
    let status = resume_to_completion(&world);
    assert_eq!(step(&status, "database")["attempts"], 4);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn without_a_terminal_and_without_yes_nothing_runs() {
    let world = World::new();
    let playbook = playbook_path();
    let output = world.run(&["--target", TARGET, "--playbook", playbook.to_str().unwrap()]);
    assert_eq!(code(&output), 2, "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--yes"));
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

#[test]
fn the_source_region_is_refused_as_a_target() {
    let world = World::new();
    let playbook = playbook_path();
    let output = world.run(&[
        "--target",
        "ap-southeast-2",
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 2, "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is the playbook's source region"));
}
