//! One test's world for end-to-end tests: a seeded moto, optionally the fault proxy in
//! front of it, a state directory, and the `rebuild` binary pointed at them; plus counting
//! what exists through the APIs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    DR_REGION, Moto, Proxy, block_on, ec2_client, rds_client, rebuild_command, seed_production,
};

pub const TARGET: &str = "ap-southeast-1";

/// The shipped default playbook, whole: its deploy half needs GitHub, git and a cluster's
/// API as well as AWS (see `tests/e2e.rs`).
pub fn full_playbook_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/region-rebuild.yaml")
}

/// The line where the default playbook's deploy half starts.
pub const DEPLOY_MARKER: &str = "  # ---- deploy:";

/// The default playbook's infrastructure half (network, database, cluster, nodes), cut
/// from the shipped file at [`DEPLOY_MARKER`]: what the tests that need only moto run.
pub fn playbook_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let full = std::fs::read_to_string(full_playbook_path()).unwrap();
        let (infrastructure, _) = full
            .split_once(DEPLOY_MARKER)
            .expect("the default playbook marks where its deploy half starts");
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "region-rebuild-infrastructure-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, infrastructure).unwrap();
        path
    })
    .clone()
}

/// One test's world: moto (seeded), optionally a proxy, a state directory.
pub struct World {
    pub moto: Moto,
    pub proxy: Option<Proxy>,
    pub state: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        let moto = Moto::start();
        seed_production(&moto.endpoint);
        Self {
            moto,
            proxy: None,
            state: tempfile::tempdir().unwrap(),
        }
    }

    pub fn with_proxy() -> Self {
        let mut world = Self::new();
        world.proxy = Some(Proxy::start(&world.moto.endpoint));
        world
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("this world has a proxy")
    }

    /// The endpoint the binary talks to.
    pub fn endpoint(&self) -> &str {
        self.proxy
            .as_ref()
            .map_or(&self.moto.endpoint, |proxy| &proxy.endpoint)
    }

    pub fn command(&self, args: &[&str]) -> Command {
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

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    /// `rebuild --target TARGET --yes --playbook PLAYBOOK`.
    pub fn rebuild_with(&self, playbook: &Path) -> Output {
        self.run(&[
            "--target",
            TARGET,
            "--yes",
            "--playbook",
            playbook.to_str().unwrap(),
        ])
    }

    /// `rebuild --target TARGET --yes` with the default playbook.
    pub fn rebuild(&self) -> Output {
        self.rebuild_with(&playbook_path())
    }

    pub fn rebuild_killed_at(&self, failpoint: &str) -> Output {
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

    pub fn status(&self) -> Value {
        let output = self.run(&["status", "--output", "json"]);
        assert_eq!(code(&output), 0, "status failed: {}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    pub fn journal_files(&self) -> Vec<PathBuf> {
        let runs = self.state.path().join("runs");
        let Ok(entries) = std::fs::read_dir(runs) else {
            return Vec::new();
        };
        entries
            .map(|entry| entry.unwrap().path().join("journal.jsonl"))
            .collect()
    }
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn assert_killed(output: &Output, failpoint: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(9),
        "expected SIGKILL at `{failpoint}`: {}",
        text(output)
    );
}

pub fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == id)
        .unwrap()
}

/// Everything in the target region, counted through the APIs.
#[derive(Debug, PartialEq, Eq)]
pub struct Inventory {
    pub vpcs: usize,
    pub public_subnets: usize,
    pub private_subnets: usize,
    pub zones: usize,
    pub internet_gateways: usize,
    pub nat_gateways: usize,
    pub elastic_ips: usize,
    pub route_tables: usize,
    pub security_groups: usize,
    pub db_subnet_groups: usize,
    pub db_instances: usize,
}

/// What one complete run of the default playbook leaves in the target region.
pub const ONE_RUN: Inventory = Inventory {
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

pub fn inventory(endpoint: &str) -> Inventory {
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

/// Every resource id in both regions that a rebuild could touch, through the APIs. (moto's
/// own `/moto-api/data.json` answers 500 once RDS instances exist, so it cannot be used.)
pub fn fingerprint(endpoint: &str) -> Vec<String> {
    block_on(async {
        let mut ids = Vec::new();
        for region in [super::PROD_REGION, DR_REGION] {
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

pub fn playbook_with(dir: &Path, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(playbook_path()).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "playbook lacks `{from}`");
        text = text.replace(from, to);
    }
    let path = dir.join("playbook.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Poll `rebuild status` until `check` holds (a condition, not a guessed sleep).
pub fn wait_until(world: &World, what: &str, check: impl Fn(&Value) -> bool) -> Value {
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

pub fn spawn_rebuild(world: &World) -> Child {
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

pub fn resume_to_completion(world: &World) -> Value {
    let output = world.run(&["resume", "--yes"]);
    assert_eq!(code(&output), 0, "{}", text(&output));
    let status = world.status();
    assert_eq!(status["state"], "succeeded", "{status}");
    status
}

/// Run the binary with `args` under a pseudo-terminal (`script` from util-linux), with the
/// environment of `like` (a command from [`World::command`]), typing `typed` into it. The
/// terminal's output (stdout and stderr together) is the output's stdout.
pub fn on_a_terminal(like: &Command, args: &[String], typed: &str) -> Output {
    use std::io::Write;
    let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
    let command_line = format!("{} {}", env!("CARGO_BIN_EXE_rebuild"), quoted.join(" "));
    let mut script = Command::new("script");
    script.args(["-qfec", &command_line, "/dev/null"]);
    for (key, value) in like.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let mut child = script
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs");
    // Typed input waits in the terminal until the program reads it.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
