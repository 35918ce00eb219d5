//! Fixing an input or a step mid-run (issue 9, item 2; review D1): `rebuild resume --input
//! NAME=VALUE` changes a pinned input no succeeded step consumed, `rebuild resume --replan`
//! takes up an edited playbook whose changes touch only steps that have not succeeded; what
//! touches a succeeded step is refused (exit 2) with the journal untouched. Resources are
//! counted through the APIs.

use std::path::Path;
use std::time::Duration;

use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::infrastructure_playbook_with;
use crate::support::seed::{DR_REGION, block_on, eks_client, rds_client};
use crate::support::strict::rds::Orderable;
use crate::support::world::{World, step};

/// The bytes of the world's one journal.
fn journal(world: &World) -> Vec<u8> {
    let files = world.journal_files();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

/// The restored database's class and the number of DB instances, through the RDS API.
fn database_class(world: &World) -> (usize, String) {
    block_on(async {
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        let instances = rds.describe_db_instances().send().await.unwrap();
        let class = instances.db_instances()[0]
            .db_instance_class()
            .unwrap()
            .to_string();
        (instances.db_instances().len(), class)
    })
}

/// The EKS clusters and each one's node groups' minimum sizes, through the EKS API.
fn clusters(world: &World) -> Vec<(String, Vec<i32>)> {
    block_on(async {
        let eks = eks_client(&world.moto.endpoint, DR_REGION).await;
        let mut found = Vec::new();
        for cluster in eks.list_clusters().send().await.unwrap().clusters() {
            let mut sizes = Vec::new();
            let groups = eks
                .list_nodegroups()
                .cluster_name(cluster)
                .send()
                .await
                .unwrap();
            for group in groups.nodegroups() {
                let described = eks
                    .describe_nodegroup()
                    .cluster_name(cluster)
                    .nodegroup_name(group)
                    .send()
                    .await
                    .unwrap();
                sizes.push(
                    described
                        .nodegroup()
                        .and_then(|group| group.scaling_config())
                        .and_then(|scaling| scaling.min_size())
                        .unwrap(),
                );
            }
            found.push((cluster.clone(), sizes));
        }
        found
    })
}

#[test]
fn a_class_refused_at_the_database_step_is_fixed_by_resuming_with_another_class() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    // One attempt: the refusal is not retryable anyway; keep the run short.
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[
            (
                "timeout: 3h\n    retry: { attempts: 3, backoff: 30s }",
                "timeout: 3h\n    retry: { attempts: 1, backoff: 1s }",
            ),
            (
                "kind: aws.rds.restore\n    needs: [network]",
                "kind: aws.rds.restore\n    needs: [network, egress]",
            ),
        ],
    );
    // The plan finds `db.r6g.large` (the default class) offered. While the egress waits
    // for its NAT gateways (the database waits for it here), RDS stops offering it: the
    // restore is refused as RDS refuses an unorderable class (`InvalidParameterCombination`).
    world.proxy().hold_ec2_nat_pending(Duration::from_secs(600));
    let running = world.rebuild_test(&playbook).spawn();
    world.wait_until("the egress's NAT wait", |status| {
        step(status, "egress")["state"] == "waiting"
    });
    let offered: Vec<Orderable> = Orderable::table()
        .into_iter()
        .filter(|row| row.class != "db.r6g.large")
        .collect();
    world.proxy().set_rds_orderable(offered);
    world.proxy().hold_ec2_nat_pending(Duration::ZERO);
    running
        .wait()
        .code(1)
        .stderr_contains("step `database` (aws.rds.restore) failed")
        .stderr_contains("InvalidParameterCombination")
        .stderr_contains("rebuild resume --input NAME=VALUE");
    let status = world.status();
    assert_eq!(step(&status, "network")["state"], "succeeded", "{status}");
    assert_eq!(step(&status, "database")["state"], "failed", "{status}");

    // The plain resume now stops at the plan, which lists what is offered.
    world
        .run(&["resume", "--yes"])
        .code(4)
        .stderr_contains("`db.r6g.large` is not offered for postgres 16.8")
        .stderr_contains("db.m7g.large");

    let resumed = world.run(&[
        "resume",
        "--yes",
        "--input",
        "db_instance_class=db.m7g.large",
    ]);
    resumed
        .success()
        .stderr_contains("changes this resume makes")
        .stderr_contains("input `db_instance_class`: \"db.r6g.large\" → \"db.m7g.large\"");

    // Exactly one of everything, and the database is of the new class.
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    assert_eq!(database_class(&world), (1, "db.m7g.large".to_string()));
    let clusters = clusters(&world);
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].1.len(), 1, "{clusters:?}");
    let restores = world.proxy().requests("RestoreDBInstanceFromDBSnapshot");
    assert!(
        restores
            .last()
            .unwrap()
            .contains(&("DBInstanceClass".into(), "db.m7g.large".into())),
        "{restores:?}"
    );

    let status = world.status();
    assert_eq!(status["state"], "succeeded", "{status}");
    assert_eq!(status["inputs"]["db_instance_class"], "db.m7g.large");
    let changes = status["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{status}");
    assert_eq!(changes[0]["type"], "input_changed");
    assert_eq!(changes[0]["name"], "db_instance_class");
    assert_eq!(changes[0]["from"], "db.r6g.large");
    assert_eq!(changes[0]["to"], "db.m7g.large");
    world
        .run(&["status"])
        .success()
        .stdout_contains("changed while resuming:")
        .stdout_contains("input `db_instance_class` changed: \"db.r6g.large\" → \"db.m7g.large\"");
}

#[test]
fn an_input_a_succeeded_step_used_cannot_change_and_the_journal_is_untouched() {
    let world = World::new();
    world.rebuild_killed_at("network/succeeded");
    let before = journal(&world);
    world.proxy().reset_counts();

    world
        .run(&["resume", "--yes", "--input", "vpc_cidr=10.99.0.0/16"])
        .code(2)
        .stderr_contains(
            "input `vpc_cidr` is pinned to `\"10.42.0.0/16\"` by this run, and step `network` that used it succeeded; it cannot change to `\"10.99.0.0/16\"` on resume",
        )
        .stderr_contains("hint: a succeeded step is never run again");
    // `existing_cluster` is used by the network (succeeded) and the cluster (not started):
    // only the step that succeeded is named.
    let refused = world.run(&["resume", "--yes", "--input", "existing_cluster=pilot"]);
    refused
        .code(2)
        .stderr_contains("and step `network` that used it succeeded")
        .output_lacks("`cluster`");

    assert_eq!(journal(&world), before, "a refused change journals nothing");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    let status = world.status();
    assert_eq!(status["inputs"]["vpc_cidr"], "10.42.0.0/16");
    assert_eq!(status["changes"], serde_json::json!([]));

    // Repeating the pinned value is no change; the run completes as it started.
    world
        .run(&["resume", "--yes", "--input", "vpc_cidr=10.42.0.0/16"])
        .success()
        .output_lacks("changes this resume makes");
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    assert_eq!(world.status()["changes"], serde_json::json!([]));
}

/// Replace `from` by `to` in the playbook file at `path` (`from` must be there).
#[track_caller]
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "playbook lacks `{from}`");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn replan_takes_up_an_edit_of_a_step_that_has_not_succeeded_and_refuses_one_of_a_succeeded_step() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(dir.path(), &[]);
    world
        .rebuild_test(&playbook)
        .failpoint("network/succeeded")
        .run()
        .killed("network/succeeded");
    let before = journal(&world);

    // An edit of the network, which succeeded: refused, naming it.
    edit(&playbook, "database_port: 5432", "database_port: 5433");
    edit(&playbook, "min_size: 3", "min_size: 4");
    world
        .run(&["resume", "--yes", "--replan"])
        .code(2)
        .stderr_contains("changes step `network` that already succeeded in run")
        .output_lacks("`nodes`")
        .stderr_contains("hint: a succeeded step is never run again");
    assert_eq!(journal(&world), before, "a refused replan journals nothing");

    // The network as it was; the node group's edit stays. Without `--replan` the edited
    // playbook is refused as before, and the hint names `--replan`.
    edit(&playbook, "database_port: 5433", "database_port: 5432");
    world
        .run(&["resume", "--yes"])
        .code(2)
        .stderr_contains("changed since run")
        .stderr_contains("resume with `--replan`");
    assert_eq!(journal(&world), before);

    world
        .run(&["resume", "--yes", "--replan"])
        .success()
        .stderr_contains("playbook replanned: changed `nodes`");

    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    let clusters = clusters(&world);
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].1, vec![4], "the node group is built as edited");

    let status = world.status();
    assert_eq!(status["state"], "succeeded", "{status}");
    let changes = status["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{status}");
    assert_eq!(changes[0]["type"], "playbook_replanned");
    assert_eq!(changes[0]["changed"], serde_json::json!(["nodes"]));
    assert_eq!(changes[0]["added"], serde_json::json!([]));
    world
        .run(&["status"])
        .success()
        .stdout_contains("playbook replanned (")
        .stdout_contains("changed `nodes`");
}
