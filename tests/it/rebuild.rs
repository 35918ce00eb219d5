//! End-to-end runs of the `rebuild` binary against moto over HTTP (with the real SDK
//! clients), sometimes through the fault proxy: full runs, the RPO guard, the lock, crashes
//! placed by failpoints (SIGKILL) and resumes, torn journals, signals and retries.
//! Resources are counted through the EC2 and RDS APIs, never trusted from our own output.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::on_both_backends;
use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::{
    infrastructure_playbook, infrastructure_playbook_with, password_playbook,
};
use crate::support::proxy::Fault;
use crate::support::seed::{DR_REGION, block_on, ec2_client, rds_client};
use crate::support::snapshot;
use crate::support::world::{TARGET, World, step};

on_both_backends! {
    fn full_run_creates_one_network_and_one_database_from_the_newest_snapshot_in_the_target(backend) {
        let world = World::on(backend);
        let password = "n3w-Master-Passw0rd";
        let output = world
            .rebuild_test(&password_playbook())
            .env("REBUILD_DB_MASTER_PASSWORD", password)
            .run();
        output.success();
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
                .find(|vpc| vpc.is_default() != Some(true))
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
                .filter_map(|subnet| subnet.subnet_identifier().map(String::from))
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
        world.assert_never_journaled(password);
        output.never_shows(password);
        let status_text = world.run(&["status"]);
        status_text
            .never_shows(password)
            .stdout_contains("prod-db-snap-2-copy");
        // One snapshot for both backends: the status does not depend on where it is kept.
        let mut settings = snapshot::settings();
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| {
            insta::assert_snapshot!("it__rebuild__status_after_a_full_run", status_text.stdout());
        });
    }
}

#[test]
fn rpo_guard_refuses_an_old_snapshot_before_any_change() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(dir.path(), &[("rpo_limit: 24h", "rpo_limit: 1s")]);
    std::thread::sleep(Duration::from_millis(1100));
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("`prod-db-snap-2-copy`")
        .stderr_contains(" old: older than the RPO limit of 1s")
        .stderr_contains("--accept-rpo");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);

    // Accepting the data loss on purpose goes ahead.
    world
        .rebuild_test(&playbook)
        .arg("--accept-rpo")
        .run()
        .success();
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn no_snapshot_in_the_target_region_is_refused_before_any_change() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "source_db_instance: prod-db",
            "source_db_instance: billing-db",
        )],
    );
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("no available DB snapshot of `billing-db` exists in `ap-southeast-1`");
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

on_both_backends! {
    fn a_second_run_for_the_same_target_exits_3_naming_the_holder(backend) {
        let world = World::on(backend);
        // Held until released below, however slow the machine: the checks in between need the
        // run to be still waiting.
        world.proxy().hold_rds_status(Duration::from_secs(600));
        let first = world.spawn_rebuild();
        let status = world.wait_until("the database wait", |status| {
            step(status, "database")["state"] == "waiting"
        });
        let run_id = status["run_id"].as_str().unwrap().to_string();
        assert_eq!(status["state"], "running");

        world
            .rebuild()
            .code(3)
            .stderr_contains(&format!("run `{run_id}`"))
            .stderr_contains(&format!("pid {}", first.pid()))
            .stderr_contains("` on host `")
            .stderr_contains("` by `")
            .stderr_contains(", since ");

        world.proxy().clear();
        first.wait().success();
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        // Released on exit: another run may start now.
        assert!(!world.lock_exists(TARGET));
    }
}

on_both_backends! {
    fn killed_in_the_middle_of_the_network_step_resumes_without_duplicates(backend) {
        let world = World::on(backend);
        // Killed once the second public subnet exists: the subnets are made at once, so
        // some others may exist too, but not the whole network.
        world.rebuild_killed_at("network/after-public-subnet@2");
        let partial = inventory(&world.moto.endpoint);
        assert_eq!(partial.vpcs, 1);
        assert!(partial.public_subnets >= 2, "{partial:?}");
        // Nothing after the network's step was begun.
        assert_eq!(
            (partial.nat_gateways, partial.db_instances, partial.eks_clusters),
            (0, 0, 0),
            "{partial:?}"
        );
        let before = world.status();
        assert_eq!(before["state"], "crashed");
        assert_eq!(step(&before, "network")["state"], "running");

        let status = world.resume_to_completion();
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        let network = step(&status, "network");
        assert_eq!(network["attempts"], 2);
        // 14 resources (the NAT gateways are the egress step's), each recorded once: the
        // second attempt re-found the VPC and subnets.
        let resources = network["resources"].as_array().unwrap();
        let ids: BTreeSet<&str> = resources
            .iter()
            .map(|resource| resource["id"].as_str().unwrap())
            .collect();
        assert_eq!((resources.len(), ids.len()), (14, 14), "{network}");
        assert_eq!(step(&status, "database")["attempts"], 1);
    }
}

on_both_backends! {
    fn killed_after_the_nat_gateway_was_requested_resumes_without_duplicates(backend) {
        let world = World::on(backend);
        world.rebuild_killed_at("egress/after-nat");
        assert_eq!(inventory(&world.moto.endpoint).nat_gateways, 3);
        let status = world.resume_to_completion();
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        // 6 resources (3 NAT gateways, each with its Elastic IP), each recorded once: the
        // second attempt adopted what the first made.
        let egress = step(&status, "egress");
        assert_eq!(egress["attempts"], 2, "{egress}");
        assert_eq!(egress["resources"].as_array().map(Vec::len), Some(6), "{egress}");
    }
}

on_both_backends! {
    fn killed_between_steps_resumes_without_repeating_the_network(backend) {
        let world = World::on(backend);
        world.rebuild_killed_at("network/succeeded");
        assert_eq!(inventory(&world.moto.endpoint).db_instances, 0);
        world.proxy().reset_counts();
        let status = world.resume_to_completion();
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        assert_eq!(
            step(&status, "network")["attempts"],
            1,
            "network was not repeated"
        );
        let mutating = world.proxy().mutating_operations();
        assert!(
            mutating.iter().all(|operation| !operation.contains("Vpc")
                && !operation.contains("Subnet")
                || operation.contains("DBSubnet")),
            "{mutating:?}"
        );
    }
}

on_both_backends! {
    fn killed_while_waiting_for_the_database_resumes_with_the_pinned_snapshot(backend) {
        let world = World::on(backend);
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
        let status = world.resume_to_completion();
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
        // The resumed wait counted from when the killed attempt began it: the journal's
        // `step_waited` spans both processes (later runs pace their checks by it).
        let records: Vec<serde_json::Value> = world
            .journals()
            .pop()
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|line| line["record"].clone())
            .collect();
        let at = |record: &serde_json::Value| {
            record["at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap()
        };
        let began = records
            .iter()
            .find(|record| record["event"]["wait"] == "db-available")
            .expect("the killed attempt journaled which wait it began");
        let ended = records
            .iter()
            .find(|record| {
                record["event"]["type"] == "step_waited" && record["event"]["step"] == "database"
            })
            .expect("the resumed wait journaled what it took");
        let span = at(ended).duration_since(at(began)).as_millis();
        let waited = i128::from(ended["event"]["waited_ms"].as_u64().unwrap());
        assert!(waited + 100 >= span, "waited {waited} ms, began {span} ms before it ended");
    }
}

on_both_backends! {
    fn a_torn_last_journal_line_is_dropped_on_resume(backend) {
        let world = World::on(backend);
        world.rebuild_killed_at("network/after-vpc");
        let lines_before = world.journals().pop().unwrap().lines().count();
        // The last record loses its end, as on power loss (or a damaged object in S3).
        world.damage_last_record(|record| record[..record.len() - 20].to_vec());

        world.run(&["status"]).success().stderr_contains("torn");
        world
            .run(&["resume", "--yes"])
            .success()
            .stderr_contains("torn");
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        let journal = world.journals().pop().unwrap();
        assert!(journal.ends_with('\n'));
        assert!(journal.lines().count() > lines_before);
        for line in journal.lines() {
            serde_json::from_str::<Value>(line).expect("every line is whole JSON after the resume");
        }
    }
}

on_both_backends! {
    fn sigterm_stops_at_a_safe_point_with_exit_130_and_the_resume_command(backend) {
        let world = World::on(backend);
        // Held until released below, however slow the machine: the checks in between need the
        // run to be still waiting.
        world.proxy().hold_rds_status(Duration::from_secs(600));
        let running = world.spawn_rebuild();
        world.wait_until("the database wait", |status| {
            step(status, "database")["state"] == "waiting"
        });
        let pid = running.pid().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        running
            .wait()
            .code(130)
            .stderr_contains("hint: continue with: rebuild resume ");
        let status = world.status();
        assert_eq!(status["state"], "interrupted");
        assert_eq!(step(&status, "database")["state"], "interrupted");
        world.proxy().clear();
        world.resume_to_completion();
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    }
}

#[test]
fn throttling_is_retried_and_a_persistent_failure_exits_1_with_the_resume_command() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(dir.path(), &[("backoff: 10s", "backoff: 1s")]);

    // More throttles than the SDK's own 3 attempts: the step's retry policy takes over.
    world.proxy().fail("CreateVpc", 4, Fault::Throttle);
    // Then a server error that outlasts every attempt of the database step.
    world
        .proxy()
        .fail("CreateDBSubnetGroup", 100, Fault::ServerError500);
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains("step `database` (aws.rds.restore) failed: `CreateDBSubnetGroup`")
        .stderr_contains("hint: fix the cause above, then: rebuild resume ");
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
    let status = world.resume_to_completion();
    assert_eq!(step(&status, "database")["attempts"], 4);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn without_a_terminal_and_without_yes_nothing_runs() {
    let world = World::new();
    world
        .test()
        .args(["--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run()
        .code(2)
        .stderr_contains("--yes");
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

#[test]
fn the_source_region_is_refused_as_a_target() {
    let world = World::new();
    world
        .test()
        .args(["--target", "ap-southeast-2", "--yes"])
        .playbook(&infrastructure_playbook())
        .run()
        .code(2)
        .stderr_contains("is the playbook's source region");
}

/// Credentials that expire mid-run (a long wait outlives a one-hour role session) get the
/// login hint, decided from the error's code, not from its text (review C1).
#[test]
fn expired_credentials_get_the_login_hint() {
    let world = World::new();
    world
        .proxy()
        .fail("CreateDBSubnetGroup", 100, Fault::ExpiredToken);
    world
        .rebuild_with(&infrastructure_playbook())
        .code(1)
        .stderr_contains("(ExpiredToken, HTTP 403)")
        .stderr_contains("hint: no usable AWS credentials: log in (`aws sso login`");
}
