//! More end-to-end scenarios against moto: the Aurora path, JSON output, typed and pinned
//! inputs, secrets on resume, zones that do not exist, and breaking locks on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::world::*;
use support::{DR_REGION, block_on, rds_client, seed_aurora_production};

#[test]
fn an_aurora_cluster_snapshot_is_restored_into_a_cluster_and_its_writer() {
    let world = World::with_proxy();
    seed_aurora_production(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook_with(
        dir.path(),
        &[(
            "source_db_instance: prod-db",
            "source_db_cluster: prod-aurora",
        )],
    );
    let args = [
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ];

    // Killed while the cluster is still `creating`, then resumed: adopted, not duplicated.
    // Held past the kill however slow the machine; released before the resume.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    let output = world.run_with(&args, &[("REBUILD_FAILPOINTS", "database/waiting")]);
    assert_killed(&output, "database/waiting");
    world.proxy().clear();
    let status = resume_to_completion(&world);

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
            .filter_map(|c| c.db_cluster_identifier().map(String::from))
            .collect();
        let instances = rds.describe_db_instances().send().await.unwrap();
        let writers: Vec<(String, Option<String>)> = instances
            .db_instances()
            .iter()
            .map(|i| {
                (
                    i.db_instance_identifier().unwrap_or_default().to_string(),
                    i.db_cluster_identifier().map(String::from),
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
    let playbook = playbook_path();
    let output = world.run(&[
        "--target",
        TARGET,
        "--yes",
        "--output",
        "json",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0, "{}", text(&output));
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    assert_eq!(events[0]["event"], "plan");
    assert_eq!(
        events[0]["plan"]["steps"][1]["details"][1][1],
        "prod-db-snap-2-copy"
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
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
        .filter(|e| e["event"] == "step_succeeded")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    // Only what the dependencies fix: the network first, the node group after its cluster
    // (the database, beside the cluster, may finish at any point after the network).
    assert_eq!(succeeded.len(), 4, "{succeeded:?}");
    assert_eq!(succeeded[0], "network", "{succeeded:?}");
    let at = |step: &str| succeeded.iter().position(|s| *s == step);
    assert!(at("database").is_some(), "{succeeded:?}");
    assert!(
        at("cluster").is_some() && at("cluster") < at("nodes"),
        "{succeeded:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.get("at").is_some() || e["event"] == "plan")
    );

    let runs = world.run(&["runs", "--output", "json"]);
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["steps_succeeded"], 4);
}

#[test]
fn inputs_are_typed_by_their_default_and_pinned_for_the_whole_run() {
    let world = World::new();
    let playbook = playbook_path();
    let base = [
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ];

    let mut bad = base.to_vec();
    bad.extend(["--input", "db_multi_az=maybe"]);
    let output = world.run(&bad);
    assert_eq!(code(&output), 2, "{}", text(&output));
    assert!(text(&output).contains("input `db_multi_az` must be `true` or `false`, not `maybe`"));

    let mut args = base.to_vec();
    args.extend([
        "--input",
        "db_multi_az=false",
        "--input",
        "db_instance_class=db.t3.medium",
    ]);
    let output = world.run_with(&args, &[("REBUILD_FAILPOINTS", "network/succeeded")]);
    assert_killed(&output, "network/succeeded");

    let changed = world.run(&[
        "resume",
        "--yes",
        "--input",
        "db_instance_class=db.r5.large",
    ]);
    assert_eq!(code(&changed), 2, "{}", text(&changed));
    assert!(
        text(&changed)
            .contains("input `db_instance_class` is pinned to `\"db.t3.medium\"` by this run")
    );

    let status = resume_to_completion(&world);
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
    let playbook = playbook_path();
    let args = [
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ];
    let output = world.run_with(
        &args,
        &[
            ("REBUILD_FAILPOINTS", "network/succeeded"),
            ("REBUILD_DB_MASTER_PASSWORD", secret),
        ],
    );
    assert_killed(&output, "network/succeeded");

    let output = world.run(&["resume", "--yes"]);
    assert_eq!(code(&output), 2, "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("secret input `db_master_password` was set when the run started"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set `REBUILD_DB_MASTER_PASSWORD`"),
        "{stderr}"
    );

    let output = world.run_with(
        &["resume", "--yes"],
        &[("REBUILD_DB_MASTER_PASSWORD", secret)],
    );
    assert_eq!(code(&output), 0, "{}", text(&output));
    assert!(!text(&output).contains(secret));
    for journal in world.journal_files() {
        let journal = std::fs::read_to_string(journal).unwrap();
        assert!(!journal.contains(secret));
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
    let playbook = playbook_with(
        dir.path(),
        &[(
            "availability_zones: 3\n",
            "availability_zones: 3\n      zones: [ap-southeast-1a, ap-southeast-1b, ap-southeast-1z]\n",
        )],
    );
    world.proxy().reset_counts();
    let output = world.rebuild_with(&playbook);
    assert_eq!(code(&output), 4, "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("zones `ap-southeast-1z` are not available"),
        "{stderr}"
    );
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

#[test]
fn locks_are_broken_only_on_purpose_and_never_under_a_live_run() {
    let world = World::with_proxy();
    // Held until released below, however slow the machine: the checks in between need the
    // run to be still waiting.
    world.proxy().hold_rds_status(Duration::from_secs(600));
    let running = spawn_rebuild(&world);
    let status = wait_until(&world, "the database wait", |s| {
        step(s, "database")["state"] == "waiting"
    });
    let run_id = status["run_id"].as_str().unwrap().to_string();

    let refused = world.run(&["unlock", "--target", TARGET]);
    assert_eq!(code(&refused), 3, "{}", text(&refused));
    assert!(text(&refused).contains(&format!("run `{run_id}`")));
    world.proxy().clear();
    let finished = running.wait_with_output().unwrap();
    assert_eq!(code(&finished), 0, "{}", text(&finished));

    // A lock left behind by another machine (e.g. a shared state directory).
    let lock = world.state.path().join("locks/ap-southeast-1.lock");
    std::fs::write(
        &lock,
        r#"{"run_id":"20261124-000000-dead","host":"other-laptop","pid":4242,"since":"2026-11-24T00:00:00Z","target":"ap-southeast-1"}"#,
    )
    .unwrap();
    let blocked = world.rebuild();
    assert_eq!(code(&blocked), 3, "{}", text(&blocked));
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        stderr.contains("left by run `20261124-000000-dead` on host `other-laptop` (pid 4242"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rebuild unlock --target ap-southeast-1"),
        "{stderr}"
    );

    let unlocked = world.run(&["unlock", "--target", TARGET]);
    assert_eq!(code(&unlocked), 0, "{}", text(&unlocked));
    assert!(
        text(&unlocked)
            .contains("broke the lock for `ap-southeast-1` held by run `20261124-000000-dead`")
    );
    let again = world.rebuild();
    assert_eq!(code(&again), 0, "{}", text(&again));

    let bad = world.run(&["unlock", "--target", "../etc"]);
    assert_eq!(code(&bad), 2, "{}", text(&bad));
}

/// Run `rebuild --target` under a pseudo-terminal, answering the prompt with `answer`.
fn run_on_a_terminal(world: &World, answer: &str) -> std::process::Output {
    let playbook = playbook_path();
    let args = [
        "--target".to_string(),
        TARGET.to_string(),
        "--playbook".to_string(),
        playbook.display().to_string(),
    ];
    on_a_terminal(&world.command(&[]), &args, answer)
}

#[test]
fn on_a_terminal_it_asks_before_changing_anything() {
    let world = World::new();
    let declined = run_on_a_terminal(&world, "n\n");
    let shown = String::from_utf8_lossy(&declined.stdout).to_string();
    assert!(
        shown.contains("Rebuild `region-rebuild` in ap-southeast-1 now? [y/N]"),
        "{shown}"
    );
    assert!(
        shown.contains("not confirmed; nothing was changed"),
        "{shown}"
    );
    assert_eq!(code(&declined), 2, "{shown}");
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);

    let accepted = run_on_a_terminal(&world, "y\n");
    let shown = String::from_utf8_lossy(&accepted.stdout).to_string();
    assert_eq!(code(&accepted), 0, "{shown}");
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}
