//! End-to-end runs of the `rebuild` binary against moto over HTTP (with the real SDK
//! clients), sometimes through the fault proxy: full runs, dry runs, the RPO guard, the lock,
//! crashes placed by failpoints (SIGKILL) and resumes, torn journals, signals and retries.
//! Resources are counted through the EC2 and RDS APIs, never trusted from our own output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    DR_REGION, Fault, Moto, Proxy, block_on, ec2_client, rds_client, rebuild_command,
    seed_production,
};

const TARGET: &str = "ap-southeast-1";

fn playbook_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/region-rebuild.yaml")
}

/// One test's world: moto (seeded), optionally a proxy, a state directory.
struct World {
    moto: Moto,
    proxy: Option<Proxy>,
    state: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let moto = Moto::start();
        seed_production(&moto.endpoint);
        Self {
            moto,
            proxy: None,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn with_proxy() -> Self {
        let mut world = Self::new();
        world.proxy = Some(Proxy::start(&world.moto.endpoint));
        world
    }

    fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("this world has a proxy")
    }

    /// The endpoint the binary talks to.
    fn endpoint(&self) -> &str {
        self.proxy
            .as_ref()
            .map_or(&self.moto.endpoint, |proxy| &proxy.endpoint)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = rebuild_command(self.endpoint());
        command
            .args(args)
            .env("REBUILD_STATE_DIR", self.state.path())
            .env("REBUILD_POLL_INTERVAL_MS", "50")
            .env_remove("REBUILD_FAILPOINTS")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn rebuild(&self) -> Output {
        let playbook = playbook_path();
        self.run(&[
            "--target",
            TARGET,
            "--yes",
            "--playbook",
            playbook.to_str().unwrap(),
        ])
    }

    fn rebuild_killed_at(&self, failpoint: &str) -> Output {
        let playbook = playbook_path();
        let output = self.run_with(
            &[
                "--target",
                TARGET,
                "--yes",
                "--playbook",
                playbook.to_str().unwrap(),
            ],
            &[("REBUILD_FAILPOINTS", failpoint)],
        );
        assert_killed(&output, failpoint);
        output
    }

    fn status(&self) -> Value {
        let output = self.run(&["status", "--output", "json"]);
        assert_eq!(code(&output), 0, "status failed: {}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn journal_files(&self) -> Vec<PathBuf> {
        let runs = self.state.path().join("runs");
        let Ok(entries) = std::fs::read_dir(runs) else {
            return Vec::new();
        };
        entries
            .map(|entry| entry.unwrap().path().join("journal.jsonl"))
            .collect()
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_killed(output: &Output, failpoint: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(9),
        "expected SIGKILL at `{failpoint}`: {}",
        text(output)
    );
}

fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == id)
        .unwrap()
}

/// Everything in the target region, counted through the APIs.
#[derive(Debug, PartialEq, Eq)]
struct Inventory {
    vpcs: usize,
    public_subnets: usize,
    private_subnets: usize,
    zones: usize,
    internet_gateways: usize,
    nat_gateways: usize,
    elastic_ips: usize,
    route_tables: usize,
    security_groups: usize,
    db_subnet_groups: usize,
    db_instances: usize,
}

/// What one complete run of the default playbook leaves in the target region.
const ONE_RUN: Inventory = Inventory {
    vpcs: 1,
    public_subnets: 3,
    private_subnets: 3,
    zones: 3,
    internet_gateways: 1,
    nat_gateways: 1,
    elastic_ips: 1,
    route_tables: 4,
    security_groups: 2,
    db_subnet_groups: 1,
    db_instances: 1,
};

fn inventory(endpoint: &str) -> Inventory {
    block_on(async {
        let ec2 = ec2_client(endpoint, DR_REGION).await;
        let rds = rds_client(endpoint, DR_REGION).await;
        let vpcs: Vec<String> = ec2
            .describe_vpcs()
            .send()
            .await
            .unwrap()
            .vpcs()
            .iter()
            .filter(|vpc| vpc.is_default() != Some(true))
            .filter_map(|vpc| vpc.vpc_id().map(String::from))
            .collect();
        let in_our_vpcs = |vpc: Option<&str>| vpc.is_some_and(|vpc| vpcs.iter().any(|v| v == vpc));
        let subnets = ec2.describe_subnets().send().await.unwrap();
        let ours: Vec<_> = subnets
            .subnets()
            .iter()
            .filter(|s| in_our_vpcs(s.vpc_id()))
            .collect();
        let named = |prefix: &str| {
            ours.iter()
                .filter(|s| {
                    s.tags().iter().any(|t| {
                        t.key() == Some("rebuild:name")
                            && t.value().is_some_and(|v| v.starts_with(prefix))
                    })
                })
                .count()
        };
        let zones: std::collections::BTreeSet<_> =
            ours.iter().filter_map(|s| s.availability_zone()).collect();
        let gateways = ec2.describe_internet_gateways().send().await.unwrap();
        let nats = ec2.describe_nat_gateways().send().await.unwrap();
        let addresses = ec2.describe_addresses().send().await.unwrap();
        let tables = ec2.describe_route_tables().send().await.unwrap();
        let groups = ec2.describe_security_groups().send().await.unwrap();
        let subnet_groups = rds.describe_db_subnet_groups().send().await.unwrap();
        let instances = rds.describe_db_instances().send().await.unwrap();
        Inventory {
            vpcs: vpcs.len(),
            public_subnets: named("public-"),
            private_subnets: named("private-"),
            zones: zones.len(),
            internet_gateways: gateways
                .internet_gateways()
                .iter()
                .filter(|g| g.tags().iter().any(|t| t.key() == Some("rebuild:run-id")))
                .count(),
            nat_gateways: nats
                .nat_gateways()
                .iter()
                .filter(|n| in_our_vpcs(n.vpc_id()))
                .count(),
            elastic_ips: addresses.addresses().len(),
            route_tables: tables
                .route_tables()
                .iter()
                .filter(|t| in_our_vpcs(t.vpc_id()))
                .filter(|t| !t.associations().iter().any(|a| a.main() == Some(true)))
                .count(),
            security_groups: groups
                .security_groups()
                .iter()
                .filter(|g| in_our_vpcs(g.vpc_id()) && g.group_name() != Some("default"))
                .count(),
            db_subnet_groups: subnet_groups.db_subnet_groups().len(),
            db_instances: instances.db_instances().len(),
        }
    })
}

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

/// Every resource id in both regions that a rebuild could touch, through the APIs. (moto's
/// own `/moto-api/data.json` answers 500 once RDS instances exist, so it cannot be used.)
fn fingerprint(endpoint: &str) -> Vec<String> {
    block_on(async {
        let mut ids = Vec::new();
        for region in [support::PROD_REGION, DR_REGION] {
            let ec2 = ec2_client(endpoint, region).await;
            let rds = rds_client(endpoint, region).await;
            let vpcs = ec2.describe_vpcs().send().await.unwrap();
            ids.extend(
                vpcs.vpcs()
                    .iter()
                    .filter_map(|v| v.vpc_id().map(String::from)),
            );
            let subnets = ec2.describe_subnets().send().await.unwrap();
            ids.extend(
                subnets
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_id().map(String::from)),
            );
            let gateways = ec2.describe_internet_gateways().send().await.unwrap();
            ids.extend(
                gateways
                    .internet_gateways()
                    .iter()
                    .filter_map(|g| g.internet_gateway_id().map(String::from)),
            );
            let nats = ec2.describe_nat_gateways().send().await.unwrap();
            ids.extend(
                nats.nat_gateways()
                    .iter()
                    .filter_map(|n| n.nat_gateway_id().map(String::from)),
            );
            let addresses = ec2.describe_addresses().send().await.unwrap();
            ids.extend(
                addresses
                    .addresses()
                    .iter()
                    .filter_map(|a| a.allocation_id().map(String::from)),
            );
            let tables = ec2.describe_route_tables().send().await.unwrap();
            ids.extend(
                tables
                    .route_tables()
                    .iter()
                    .filter_map(|t| t.route_table_id().map(String::from)),
            );
            let groups = ec2.describe_security_groups().send().await.unwrap();
            ids.extend(
                groups
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(String::from)),
            );
            let instances = rds.describe_db_instances().send().await.unwrap();
            ids.extend(
                instances
                    .db_instances()
                    .iter()
                    .filter_map(|i| i.db_instance_identifier().map(String::from)),
            );
            let snapshots = rds.describe_db_snapshots().send().await.unwrap();
            ids.extend(
                snapshots
                    .db_snapshots()
                    .iter()
                    .filter_map(|s| s.db_snapshot_identifier().map(String::from)),
            );
            let groups = rds.describe_db_subnet_groups().send().await.unwrap();
            ids.extend(
                groups
                    .db_subnet_groups()
                    .iter()
                    .filter_map(|g| g.db_subnet_group_name().map(String::from)),
            );
        }
        ids.sort();
        ids
    })
}

fn playbook_with(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(playbook_path()).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "playbook lacks `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join("playbook.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn rpo_guard_refuses_an_old_snapshot_before_any_change() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook_with(dir.path(), &[("rpo_limit: 24h", "rpo_limit: 1s")]);
    std::thread::sleep(Duration::from_millis(1100));
    world.proxy().reset_counts();
    let output = world.run(&[
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
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
    let output = world.run(&[
        "--target",
        TARGET,
        "--yes",
        "--playbook",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 4, "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("no available DB snapshot of `billing-db` exists in `ap-southeast-1`")
    );
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

/// Poll `rebuild status` until `check` holds (a condition, not a guessed sleep).
fn wait_until(world: &World, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = world.run(&["status", "--output", "json"]);
        if code(&output) == 0 {
            let status: Value = serde_json::from_slice(&output.stdout).unwrap();
            if check(&status) {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_rebuild(world: &World) -> Child {
    let playbook = playbook_path();
    world
        .command(&[
            "--target",
            TARGET,
            "--yes",
            "--playbook",
            playbook.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_second_run_for_the_same_target_exits_3_naming_the_holder() {
    let world = World::with_proxy();
    world.proxy().hold_rds_status(Duration::from_secs(4));
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

fn resume_to_completion(world: &World) -> Value {
    let output = world.run(&["resume", "--yes"]);
    assert_eq!(code(&output), 0, "{}", text(&output));
    let status = world.status();
    assert_eq!(status["state"], "succeeded", "{status}");
    status
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
    world.proxy().hold_rds_status(Duration::from_secs(3));
    world.rebuild_killed_at("database/waiting");
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
    world.proxy().hold_rds_status(Duration::from_secs(3));
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
