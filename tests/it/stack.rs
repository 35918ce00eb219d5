//! Stacks (issue 9, first slice): a run works on a stack (`PLAYBOOK@TARGET` unless
//! `--stack` names one), journaled and tagged on every resource; typing the same command
//! again after a run was killed is refused with the exact `rebuild resume RUN_ID`, before
//! anything is planned or created. Resources are counted through the APIs.

use serde_json::Value;

use crate::on_both_backends;
use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::infrastructure_playbook;
use crate::support::seed::{DR_REGION, block_on, ec2_client, rds_client};
use crate::support::world::World;

/// The default stack of the default playbook in the target region.
const STACK: &str = "region-rebuild@ap-southeast-1";

/// The `rebuild:stack` tag of every VPC in the target region, by VPC id.
fn vpc_stack_tags(world: &World) -> Vec<Option<String>> {
    block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let vpcs = ec2.describe_vpcs().send().await.unwrap();
        vpcs.vpcs()
            .iter()
            .filter(|vpc| vpc.is_default() != Some(true))
            .map(|vpc| {
                vpc.tags()
                    .iter()
                    .find(|tag| tag.key() == Some("rebuild:stack"))
                    .and_then(|tag| tag.value().map(str::to_string))
            })
            .collect()
    })
}

/// Rewrite the newest journal as an older version wrote it: `field` removed from its start
/// record (with the record's checksum made again). Returns the value it had.
fn remove_from_start_record(world: &World, field: &str) -> Value {
    let journal = world.journal_files().pop().unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let line: Value = serde_json::from_str(first).unwrap();
    let mut record = line["record"].clone();
    let removed = record["event"].as_object_mut().unwrap().remove(field);
    let body = serde_json::to_string(&record).unwrap();
    let crc = crc32fast::hash(body.as_bytes());
    let old = format!("{{\"crc\":\"{crc:08x}\",\"record\":{body}}}");
    std::fs::write(&journal, format!("{old}\n{rest}")).unwrap();
    removed.unwrap_or_else(|| panic!("the start record had no `{field}`"))
}

/// The command line the refusal's hint says continues the run (without `rebuild`).
fn resume_command_from(stderr: &str) -> Vec<String> {
    let start = stderr
        .find("continue it with: rebuild ")
        .unwrap_or_else(|| panic!("no resume command in: {stderr}"));
    let command = &stderr[start + "continue it with: rebuild ".len()..];
    let end = command
        .find(" (`--new-run`")
        .expect("the hint goes on after the command");
    command[..end].split(' ').map(str::to_string).collect()
}

on_both_backends! {
    fn the_same_command_after_a_kill_is_refused_with_the_resume_command_and_builds_nothing(backend) {
        let world = World::on(backend);
        world.rebuild_killed_at("network/after-subnets");
        let status = world.status();
        let run_id = status["run_id"].as_str().unwrap().to_string();
        assert_eq!(status["stack"], STACK);
        assert_eq!(vpc_stack_tags(&world), vec![Some(STACK.to_string())]);
        let before = inventory(&world.moto.endpoint);
        assert_eq!(before.vpcs, 1);

        world.proxy().reset_counts();
        let refused = world.rebuild();
        refused
            .code(2)
            .stderr_contains(&format!(
                "stack `{STACK}` has an unfinished run `{run_id}` (crashed, started "
            ))
            .stderr_contains("last step `network` running")
            .stderr_contains(&format!("hint: continue it with: rebuild resume {run_id} "));
        // Refused before planning: not one call to AWS (but to the state bucket), no new
        // run, nothing new in the region.
        assert_eq!(world.cloud_operations(), Vec::<String>::new());
        assert_eq!(world.journals().len(), 1);
        assert_eq!(inventory(&world.moto.endpoint), before);

        // Without `--target` (the playbook's default target is the same stack): refused too.
        world
            .test()
            .arg("--yes")
            .playbook(&infrastructure_playbook())
            .run()
            .code(2)
            .stderr_contains(&format!("rebuild resume {run_id}"));

        // The command the message gives finishes the run, with one stack.
        let resume = resume_command_from(refused.stderr());
        assert_eq!(resume[..2], ["resume".to_string(), run_id.clone()]);
        world.test().args(&resume).arg("--yes").run().success();
        let status = world.status();
        assert_eq!(
            (&status["run_id"], &status["state"]),
            (&Value::from(run_id.as_str()), &Value::from("succeeded"))
        );
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
        let database_tags = block_on(async {
            let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
            let instances = rds.describe_db_instances().send().await.unwrap();
            let arn = instances.db_instances()[0]
                .db_instance_arn()
                .unwrap()
                .to_string();
            let tags = rds
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .unwrap();
            tags.tag_list()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
                .collect::<Vec<_>>()
        });
        assert!(
            database_tags.contains(&("rebuild:stack".to_string(), STACK.to_string())),
            "{database_tags:?}"
        );

        // After a success, a new run of the stack may start (killed as soon as it is journaled:
        // it is enough to see it pass the check; the quotas have room for its plan).
        world.proxy().set_ec2_quotas(10, 10);
        world
            .rebuild_test(&infrastructure_playbook())
            .failpoint("run/after-start")
            .run()
            .killed("run/after-start");
        assert_eq!(world.journals().len(), 2);
    }
}

on_both_backends! {
    fn another_stack_is_not_blocked_and_new_run_adopts_what_the_unfinished_run_built(backend) {
        let world = World::on(backend);
        world.rebuild_killed_at("network/after-subnets");
        let unfinished = world.status()["run_id"].as_str().unwrap().to_string();

        // Another stack in the same region: its own run, tagged with its own name.
        world
            .rebuild_test(&infrastructure_playbook())
            .args(["--stack", "shop-drill"])
            .failpoint("run/after-start")
            .run()
            .killed("run/after-start");
        world.unlock_after_a_crash();
        assert_eq!(world.journals().len(), 2);
        assert_eq!(world.status()["stack"], "shop-drill");
        // `rebuild runs` lists each run with its stack.
        let listed = world.run(&["runs"]).success().stdout().to_string();
        let stack_of = |run: &str| {
            let line = listed.lines().find(|line| line.starts_with(run));
            line.and_then(|line| line.split_whitespace().nth(2))
                .map(str::to_string)
        };
        assert_eq!(
            stack_of(&unfinished).as_deref(),
            Some("region-rebuild@ap-southeast-1"),
            "{listed}"
        );
        assert!(
            listed.lines().next().unwrap_or_default().contains("STACK"),
            "{listed}"
        );
        assert!(listed.contains(" shop-drill "), "{listed}");
        world
            .rebuild_test(&infrastructure_playbook())
            .args(["--stack", "Shop Drill"])
            .run()
            .code(2)
            .stderr_contains("`--stack Shop Drill`: the stack name may not contain `S`");

        // `--new-run` on purpose: the warning, then a new run that adopts what the unfinished
        // one built (the stack owns it), so there is still one VPC.
        let output = world
            .rebuild_test(&infrastructure_playbook())
            .arg("--new-run")
            .run();
        output
            .success()
            .stderr_contains(&format!(
                "WARNING: `--new-run`: starting a new run of stack `{STACK}` although run `{unfinished}` is unfinished"
            ))
            .stderr_contains("This run adopts what that run built")
            .output_contains("adopt    network [aws.network]");
        let status = world.status();
        assert_eq!(
            (&status["state"], &status["stack"]),
            (&Value::from("succeeded"), &Value::from(STACK))
        );
        assert_ne!(status["run_id"], unfinished.as_str());
        assert_eq!(vpc_stack_tags(&world), vec![Some(STACK.to_string())]);
        assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);

        // The stack's newest run succeeded: the one it left behind no longer blocks.
        world
            .rebuild_test(&infrastructure_playbook())
            .failpoint("run/after-start")
            .run()
            .killed("run/after-start");
    }
}

/// A journal written before stacks existed (no `stack` in its start record) still loads,
/// shows the default stack, and blocks the same command like a new one.
#[test]
fn a_journal_without_a_stack_loads_with_the_default_stack() {
    let world = World::new();
    world.rebuild_killed_at("network/after-subnets");
    assert_eq!(remove_from_start_record(&world, "stack"), STACK);

    let status = world.status();
    assert_eq!(status["stack"], STACK);
    world
        .run(&["status"])
        .success()
        .stdout_contains(&format!("stack {STACK}, started "));
    let run_id = status["run_id"].as_str().unwrap();
    world
        .rebuild()
        .code(2)
        .stderr_contains(&format!("rebuild resume {run_id}"));
}

/// The steps of a plan printed with `--output json`, as (id, action).
fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .expect("the plan lists its steps")
        .iter()
        .map(|step| {
            let field = |key: &str| step[key].as_str().unwrap_or_default().to_string();
            (field("id"), field("action"))
        })
        .collect()
}

/// The test: a rebuild killed with its cluster just created and the database on
/// the way, then the same command with `--new-run`: the plan adopts what the first run
/// built and afterwards there is exactly one of each resource, counted through the APIs.
#[test]
fn a_new_run_after_a_kill_adopts_everything_built_and_leaves_one_of_each() {
    let world = World::new();
    world.rebuild_killed_at("cluster/after-create");
    let killed = world.status();
    let built = inventory(&world.moto.endpoint);
    assert_eq!((built.eks_clusters, built.vpcs), (1, 1));

    world.rebuild().code(2).stderr_contains("rebuild resume ");
    let plan = world
        .rebuild_test(&infrastructure_playbook())
        .args(["--new-run", "--dry-run", "--output", "json"])
        .run()
        .stdout_json();
    let plan = actions(&plan);
    assert!(
        plan.contains(&("network".into(), "adopt".into()))
            && plan.contains(&("cluster".into(), "adopt".into())),
        "{plan:?}"
    );

    world.proxy().reset_counts();
    world
        .rebuild_test(&infrastructure_playbook())
        .arg("--new-run")
        .run()
        .success();
    let status = world.status();
    assert_ne!(status["run_id"], killed["run_id"]);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    for create in ["CreateVpc", "POST /clusters"] {
        assert_eq!(world.proxy().count(create), 0, "{create} again");
    }
    // The egress runs beside the cluster: what it made before the kill is adopted.
    assert_eq!(
        world.proxy().count("CreateNatGateway"),
        ONE_RUN.nat_gateways - built.nat_gateways,
        "NAT gateways made again"
    );
}

/// After a successful run, the playbook again is a no-op: every step adopts (the plan of
/// later steps is made with what the earlier run journaled), and the new run makes no
/// mutating call. What it cannot change in place is shown in the plan as a warning.
#[test]
fn the_playbook_again_after_a_success_plans_no_change_and_changes_nothing() {
    let world = World::new();
    world.rebuild().success();
    let first = world.status()["run_id"].as_str().unwrap().to_string();
    let before = inventory(&world.moto.endpoint);
    assert_eq!(before, ONE_RUN);

    world.proxy().reset_counts();
    let plan = world
        .rebuild_test(&infrastructure_playbook())
        .args(["--dry-run", "--output", "json"])
        .run()
        .stdout_json();
    let steps = actions(&plan);
    assert!(steps.len() >= 6, "{steps:?}");
    for (step, action) in &steps {
        assert_eq!(action, "adopt", "step `{step}` in {steps:?}");
    }
    assert!(plan["problems"].as_array().unwrap().is_empty(), "{plan}");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    // A different instance class and Kubernetes version cannot be applied to what exists:
    // said, with the command that would, not silently ignored.
    world
        .rebuild_test(&infrastructure_playbook())
        .args(["--dry-run"])
        .args(["--input", "db_instance_class=db.m6g.large"])
        .args(["--input", "eks_version=1.34"])
        .run()
        .success()
        .stdout_contains("adopt    database")
        .stdout_contains("data: kept: the database is adopted as it is")
        .stdout_contains("is a db.r6g.large, the playbook asks for db.m6g.large: an adopted database is not changed in place")
        .stdout_contains("aws rds modify-db-instance --region ap-southeast-1 --db-instance-identifier database-region-rebuild-ap-southeast-1-")
        .stdout_contains("runs Kubernetes 1.35, the playbook asks for 1.34: an adopted cluster is not upgraded in place");

    world.proxy().reset_counts();
    world.rebuild().success();
    let second = world.status();
    assert_ne!(second["run_id"], first.as_str());
    assert_eq!(second["state"], "succeeded");
    assert_eq!(inventory(&world.moto.endpoint), before);
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

/// A run journaled before stacks owned resources (no `owned_by` in its start record)
/// resumes as it began: it adopts only what its run id tags, and names its cluster and
/// database after its run id, so it never builds a second set next to its own.
#[test]
fn a_run_from_before_stacks_owned_resources_resumes_with_its_own() {
    let world = World::new();
    world.rebuild_killed_at("network/after-subnets");
    assert_eq!(remove_from_start_record(&world, "owned_by"), "stack");
    let run_id = world.status()["run_id"].as_str().unwrap().to_string();

    world.resume_to_completion();
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    let status = world.status();
    let output = |step: &str, key: &str| {
        let outputs = &crate::support::world::step(&status, step)["outputs"];
        outputs[key].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(
        output("cluster", "cluster_name"),
        format!("cluster-{run_id}")
    );
    assert_eq!(
        output("database", "db_identifier"),
        format!("database-{run_id}")
    );
}
