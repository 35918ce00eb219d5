//! More end-to-end scenarios against moto: the Aurora path, JSON output, typed and pinned
//! inputs, secrets on resume, zones that do not exist, breaking locks on purpose, and the
//! question asked on a terminal.

use std::time::Duration;

use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::{
    infrastructure_playbook, infrastructure_playbook_with, password_playbook,
};
use crate::support::seed::{DR_REGION, block_on, rds_client, seed_aurora_production};
use crate::support::world::{TARGET, World, step};

#[test]
fn an_aurora_cluster_snapshot_is_restored_into_a_cluster_and_its_writer() {
    let world = World::with_proxy();
    seed_aurora_production(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "source_db_instance: prod-db",
            "source_db_cluster: prod-aurora",
        )],
    );

    // Killed while the cluster is still `creating`, then resumed: adopted, not duplicated.
    // Held past the kill however slow the machine; released before the resume.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    world
        .rebuild_test(&playbook)
        .failpoint("database/waiting")
        .run()
        .killed("database/waiting");
    world.proxy().clear();
    let status = world.resume_to_completion();

    let database = step(&status, "database");
    assert_eq!(
        database["outputs"]["snapshot_id"],
        "prod-aurora-snap-1-copy"
    );
    assert_eq!(database["outputs"]["engine"], "aurora-postgresql");
    let id = database["outputs"]["db_identifier"]
        .as_str()
        .unwrap()
        .to_string();
    let (clusters, writers) = block_on(async {
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        let clusters = rds.describe_db_clusters().send().await.unwrap();
        let clusters: Vec<String> = clusters
            .db_clusters()
            .iter()
            .filter_map(|cluster| cluster.db_cluster_identifier().map(String::from))
            .collect();
        let instances = rds.describe_db_instances().send().await.unwrap();
        let writers: Vec<(String, Option<String>)> = instances
            .db_instances()
            .iter()
            .map(|instance| {
                (
                    instance
                        .db_instance_identifier()
                        .unwrap_or_default()
                        .to_string(),
                    instance.db_cluster_identifier().map(String::from),
                )
            })
            .collect();
        (clusters, writers)
    });
    assert_eq!(clusters, vec![id.clone()]);
    assert_eq!(writers, vec![(format!("{id}-writer"), Some(id.clone()))]);
}

#[test]
fn json_output_is_one_event_per_line_on_stdout() {
    let world = World::new();
    let output = world
        .rebuild_test(&infrastructure_playbook())
        .args(["--output", "json"])
        .run();
    output.success();
    let events = output.stdout_json_lines();
    assert_eq!(events[0]["event"], "plan");
    let planned = events[0]["plan"]["steps"].as_array().unwrap();
    let database = planned
        .iter()
        .find(|step| step["id"] == "database")
        .unwrap();
    assert_eq!(database["details"][1][1], "prod-db-snap-2-copy");
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect();
    for expected in [
        "run_started",
        "step_started",
        "step_progress",
        "step_succeeded",
        "run_finished",
    ] {
        assert!(kinds.contains(&expected), "no `{expected}` in {kinds:?}");
    }
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
    let succeeded: Vec<&str> = events
        .iter()
        .filter(|event| event["event"] == "step_succeeded")
        .map(|event| event["step"].as_str().unwrap())
        .collect();
    // Only what the dependencies fix: the network first, the node group after its cluster
    // and the egress (the database, beside the cluster, may finish at any point after the
    // network), the database's access after both, the pods' AWS access after the nodes.
    assert_eq!(succeeded.len(), 7, "{succeeded:?}");
    assert_eq!(succeeded[0], "network", "{succeeded:?}");
    let at = |id: &str| succeeded.iter().position(|step| *step == id);
    assert!(at("database").is_some(), "{succeeded:?}");
    assert!(
        at("cluster").is_some() && at("cluster") < at("nodes"),
        "{succeeded:?}"
    );
    assert!(
        at("egress").is_some() && at("egress") < at("nodes"),
        "{succeeded:?}"
    );
    let access = at("database-access");
    assert!(
        access > at("cluster") && access > at("database"),
        "{succeeded:?}"
    );
    assert!(at("pod-identity") > at("nodes"), "{succeeded:?}");
    assert!(
        events
            .iter()
            .all(|event| event.get("at").is_some() || event["event"] == "plan")
    );

    let runs = world.run(&["runs", "--output", "json"]).stdout_json();
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["steps_succeeded"], 7);
}

#[test]
fn inputs_are_typed_by_their_default_and_pinned_for_the_whole_run() {
    let world = World::new();
    let playbook = infrastructure_playbook();

    world
        .rebuild_test(&playbook)
        .args(["--input", "db_multi_az=maybe"])
        .run()
        .code(2)
        .output_contains("input `db_multi_az` must be `true` or `false`, not `maybe`");

    world
        .rebuild_test(&playbook)
        .args([
            "--input",
            "db_multi_az=false",
            "--input",
            "db_instance_class=db.t3.medium",
        ])
        .failpoint("network/succeeded")
        .run()
        .killed("network/succeeded");

    // The network used `vpc_cidr` and succeeded: its value stays.
    world
        .run(&["resume", "--yes", "--input", "vpc_cidr=10.99.0.0/16"])
        .code(2)
        .output_contains(
            "input `vpc_cidr` is pinned to `\"10.42.0.0/16\"` by this run, and step `network` that used it succeeded",
        );

    let status = world.resume_to_completion();
    assert_eq!(status["inputs"]["db_multi_az"], false);
    let (class, multi_az) = block_on(async {
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        let instances = rds.describe_db_instances().send().await.unwrap();
        let instance = &instances.db_instances()[0];
        (
            instance.db_instance_class().unwrap().to_string(),
            instance.multi_az(),
        )
    });
    assert_eq!(class, "db.t3.medium");
    assert_eq!(multi_az, Some(false));
}

#[test]
fn a_secret_set_when_the_run_started_must_be_given_again_to_resume() {
    let world = World::new();
    let secret = "s3cret-for-the-new-db";
    world
        .rebuild_test(&password_playbook())
        .failpoint("network/succeeded")
        .env("REBUILD_DB_MASTER_PASSWORD", secret)
        .run()
        .killed("network/succeeded");

    world
        .run(&["resume", "--yes"])
        .code(2)
        .stderr_contains("secret input `db_master_password` was set when the run started")
        .stderr_contains("set `REBUILD_DB_MASTER_PASSWORD`");

    world
        .test()
        .args(["resume", "--yes"])
        .env("REBUILD_DB_MASTER_PASSWORD", secret)
        .run()
        .success()
        .never_shows(secret);
    world.assert_never_journaled(secret);
    for journal in world.journal_files() {
        let journal = std::fs::read_to_string(journal).unwrap();
        assert!(
            journal.contains("<redacted>"),
            "the input is journaled as set, without its value"
        );
    }
}

#[test]
fn zones_that_are_not_available_are_a_plan_problem() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "availability_zones: 3\n",
            "availability_zones: 3\n      zones: [ap-southeast-1a, ap-southeast-1b, ap-southeast-1z]\n",
        )],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("zones `ap-southeast-1z` are not available");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

#[test]
fn locks_are_broken_only_on_purpose_and_never_under_a_live_run() {
    let world = World::with_proxy();
    // Two runs build two networks: the second needs room for 3 more Elastic IPs than
    // AWS's default quota of 5 leaves (review D15).
    world.proxy().set_ec2_quotas(5, 10);
    // Held until released below, however slow the machine: the checks in between need the
    // run to be still waiting.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    let running = world.spawn_rebuild();
    let status = world.wait_until("the database wait", |status| {
        step(status, "database")["state"] == "waiting"
    });
    let run_id = status["run_id"].as_str().unwrap().to_string();

    world
        .run(&["unlock", "--target", TARGET])
        .code(3)
        .output_contains(&format!("run `{run_id}`"));
    world.proxy().clear();
    running.wait().success();

    // A lock left behind by another machine (e.g. a shared state directory).
    let lock = world.state.path().join("locks/ap-southeast-1.lock");
    std::fs::write(
        &lock,
        r#"{"run_id":"20261124-000000-dead","host":"other-laptop","pid":4242,"since":"2026-11-24T00:00:00Z","target":"ap-southeast-1"}"#,
    )
    .unwrap();
    world
        .rebuild()
        .code(3)
        .stderr_contains("left by run `20261124-000000-dead` on host `other-laptop` (pid 4242")
        .stderr_contains("rebuild unlock --target ap-southeast-1");

    world
        .run(&["unlock", "--target", TARGET])
        .success()
        .output_contains("broke the lock for `ap-southeast-1` held by run `20261124-000000-dead`");
    world.rebuild().success();

    world.run(&["unlock", "--target", "../etc"]).code(2);
}

#[test]
fn on_a_terminal_it_asks_before_changing_anything() {
    let world = World::new();
    // `rebuild --target` under a pseudo-terminal, answering the prompt.
    let on_a_terminal = |answer: &str| {
        world
            .test()
            .args(["--target", TARGET])
            .playbook(&infrastructure_playbook())
            .on_a_terminal()
            .stdin(answer)
            .run()
    };
    on_a_terminal("n\n")
        .stdout_contains("Rebuild `region-rebuild` in ap-southeast-1 now? [y/N]")
        .stdout_contains("not confirmed; nothing was changed")
        .code(2);
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);

    on_a_terminal("y\n").success();
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}
