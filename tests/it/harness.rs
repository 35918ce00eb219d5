//! Smoke tests of the integration-test support library against a real moto server.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;

use crate::support::moto::Moto;
use crate::support::proxy::{Fault, Proxy};
use crate::support::seed::{
    DR_REGION, PROD_REGION, block_on, ec2_client, rds_client, sdk_config, seed_aurora_production,
    seed_production,
};

fn ec2_no_retry(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    block_on(async {
        let config = sdk_config(endpoint, region).await;
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config)
                .retry_config(RetryConfig::disabled())
                .build(),
        )
    })
}

fn rds_no_retry(endpoint: &str, region: &str) -> aws_sdk_rds::Client {
    block_on(async {
        let config = sdk_config(endpoint, region).await;
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&config)
                .retry_config(RetryConfig::disabled())
                .build(),
        )
    })
}

#[test]
fn moto_starts_and_resets() {
    let moto = Moto::start();
    assert!(moto.endpoint.ends_with(&moto.port.to_string()));
    let ec2 = block_on(ec2_client(&moto.endpoint, DR_REGION));
    let count_vpcs = |ec2: &aws_sdk_ec2::Client| {
        block_on(ec2.describe_vpcs().send())
            .expect("describe_vpcs")
            .vpcs()
            .len()
    };
    let before = count_vpcs(&ec2); // moto has a default VPC per region
    block_on(ec2.create_vpc().cidr_block("10.42.0.0/16").send()).expect("create_vpc");
    assert_eq!(count_vpcs(&ec2), before + 1);
    let data = moto.data();
    assert!(data.is_object(), "data.json is an object: {data}");
    assert!(data.get("ec2").is_some(), "data.json shows ec2 state");
    moto.reset();
    assert_eq!(count_vpcs(&ec2), before, "reset removed the created VPC");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

#[test]
fn moto_dies_with_a_killed_test_process() {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("current test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "harness::moto_sleeper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REBUILD_MOTO_SLEEPER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the sleeper test");
    let stdout = child.stdout.take().expect("sleeper stdout");
    let pid: u32 = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let at = line.find("MOTO_PID=")? + "MOTO_PID=".len();
            line[at..].trim().parse().ok()
        })
        .expect("sleeper printed moto's pid");
    assert!(!process_gone(pid), "moto runs while its test process lives");
    child.kill().expect("SIGKILL the sleeper");
    child.wait().expect("reap the sleeper");
    let killed_at = Instant::now();
    while !process_gone(pid) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "moto {pid} outlived its killed test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Helper process for `moto_dies_with_a_killed_test_process`; does nothing when run alone.
#[test]
#[ignore = "helper process for moto_dies_with_a_killed_test_process"]
fn moto_sleeper() {
    use std::io::Write;
    if std::env::var_os("REBUILD_MOTO_SLEEPER").is_none() {
        return;
    }
    let moto = Moto::start();
    println!("MOTO_PID={}", moto.pid());
    std::io::stdout().flush().expect("flush stdout");
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn seeding_creates_production_and_dr_copies() {
    let moto = Moto::start();
    let seed = seed_production(&moto.endpoint);
    assert_eq!(seed.instance_id, "prod-db");
    assert!(
        seed.instance_arn.contains(":ap-southeast-2:"),
        "{}",
        seed.instance_arn
    );
    let ids: Vec<&str> = seed
        .snapshots
        .iter()
        .map(|snapshot| snapshot.id.as_str())
        .collect();
    assert_eq!(ids, ["prod-db-snap-1", "prod-db-snap-2", "prod-db-snap-3"]);
    for pair in seed.snapshots.windows(2) {
        assert!(
            pair[0].create_time < pair[1].create_time,
            "source create times differ"
        );
    }

    let dr = block_on(rds_client(&moto.endpoint, DR_REGION));
    let snapshots = block_on(dr.describe_db_snapshots().send())
        .expect("describe_db_snapshots in DR")
        .db_snapshots
        .unwrap_or_default();
    let mut listed: Vec<&str> = snapshots
        .iter()
        .filter_map(|snapshot| snapshot.db_snapshot_identifier())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["prod-db-snap-1-copy", "prod-db-snap-2-copy"]);
    for (copy, source) in seed.copies.iter().zip(&seed.snapshots) {
        let snapshot = snapshots
            .iter()
            .find(|snapshot| snapshot.db_snapshot_identifier() == Some(copy.id.as_str()))
            .expect("copy listed");
        assert_eq!(snapshot.db_instance_identifier(), Some("prod-db"));
        assert_eq!(snapshot.snapshot_type(), Some("manual"));
        assert_eq!(snapshot.status(), Some("available"));
        assert!(
            snapshot
                .db_snapshot_arn()
                .unwrap_or("")
                .contains(":ap-southeast-1:")
        );
        assert_eq!(
            snapshot.original_snapshot_create_time(),
            Some(&source.create_time)
        );
        let copied_at = snapshot.snapshot_create_time().expect("copy create time");
        assert!(
            *copied_at > seed.snapshots[2].create_time,
            "copy time is the copy's own"
        );
        assert_eq!(copy.original_create_time, Some(source.create_time));
    }
    // Production has its three manual snapshots, plus the automated one moto makes when
    // the instance is created (`rds:prod-db-YYYY-MM-DD-HH-MM`).
    let prod = block_on(rds_client(&moto.endpoint, PROD_REGION));
    let all = block_on(prod.describe_db_snapshots().send())
        .expect("describe_db_snapshots in prod")
        .db_snapshots
        .unwrap_or_default();
    let manual = all
        .iter()
        .filter(|snapshot| snapshot.snapshot_type() == Some("manual"))
        .count();
    let automated: Vec<&str> = all
        .iter()
        .filter(|snapshot| snapshot.snapshot_type() == Some("automated"))
        .filter_map(|snapshot| snapshot.db_snapshot_identifier())
        .collect();
    assert_eq!(manual, 3);
    assert_eq!(automated.len(), 1, "{automated:?}");
    assert!(automated[0].starts_with("rds:prod-db-"), "{automated:?}");

    let aurora = seed_aurora_production(&moto.endpoint);
    assert_eq!(aurora.cluster_id, "prod-aurora");
    assert!(
        aurora.cluster_arn.contains(":ap-southeast-2:"),
        "{}",
        aurora.cluster_arn
    );
    assert_eq!(aurora.copy.id, "prod-aurora-snap-1-copy");
    assert_eq!(
        aurora.copy.arn,
        "arn:aws:rds:ap-southeast-1:123456789012:cluster-snapshot:prod-aurora-snap-1-copy"
    );
    assert!(aurora.copy.create_time > aurora.snapshot.create_time);
    let cluster_snapshots = block_on(dr.describe_db_cluster_snapshots().send())
        .expect("describe_db_cluster_snapshots in DR")
        .db_cluster_snapshots
        .unwrap_or_default();
    assert_eq!(cluster_snapshots.len(), 1);
    assert_eq!(
        cluster_snapshots[0].db_cluster_identifier(),
        Some("prod-aurora")
    );
    assert_eq!(cluster_snapshots[0].status(), Some("available"));
}

#[test]
fn proxy_forwards_and_injects_faults() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    let ec2 = ec2_no_retry(&proxy.endpoint, DR_REGION);
    block_on(ec2.describe_vpcs().send()).expect("describe_vpcs through the proxy");
    assert_eq!(proxy.count("DescribeVpcs"), 1);
    let call = proxy.calls().pop().expect("a call");
    assert_eq!(
        (call.region.as_str(), call.service.as_str(), call.faulted),
        (DR_REGION, "ec2", false)
    );

    // Throttle by count: EC2 flavour.
    proxy.fail("DescribeVpcs", 1, Fault::Throttle);
    let error = block_on(ec2.describe_vpcs().send()).expect_err("throttled");
    assert_eq!(error.code(), Some("RequestLimitExceeded"), "{error:?}");
    assert!(proxy.calls().pop().expect("a call").faulted);
    block_on(ec2.describe_vpcs().send()).expect("next call succeeds");
    assert_eq!(proxy.count("DescribeVpcs"), 3);

    // RDS flavour.
    let rds = rds_no_retry(&proxy.endpoint, PROD_REGION);
    proxy.fail("DescribeDBInstances", 1, Fault::Throttle);
    let error = block_on(rds.describe_db_instances().send()).expect_err("throttled");
    assert_eq!(
        aws_sdk_rds::error::ProvideErrorMetadata::code(&error),
        Some("Throttling"),
        "{error:?}"
    );
    block_on(rds.describe_db_instances().send()).expect("next call succeeds");

    // 500, 503 and a dropped connection are errors too, one at a time.
    for kind in [
        Fault::ServerError500,
        Fault::Unavailable503,
        Fault::DropConnection,
    ] {
        proxy.fail("DescribeVpcs", 1, kind);
        let error = block_on(ec2.describe_vpcs().send()).expect_err("fault injected");
        if kind != Fault::DropConnection {
            let raw = error.raw_response().expect("http response");
            let want = if kind == Fault::ServerError500 {
                500
            } else {
                503
            };
            assert_eq!(raw.status().as_u16(), want);
        } else {
            assert!(
                error.raw_response().is_none(),
                "no response for a dropped connection"
            );
        }
        block_on(ec2.describe_vpcs().send()).expect("then it works");
    }

    // The standard retry policy rides over two throttles.
    proxy.fail("DescribeVpcs", 2, Fault::Throttle);
    let before = proxy.count("DescribeVpcs");
    let ec2_retrying = block_on(ec2_client(&proxy.endpoint, DR_REGION));
    block_on(ec2_retrying.describe_vpcs().send()).expect("retried past throttles");
    assert_eq!(proxy.count("DescribeVpcs"), before + 3);
    assert_eq!(proxy.pending_faults(), 0);

    // Latency.
    proxy.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    block_on(ec2.describe_vpcs().send()).expect("slow call");
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.clear();

    assert!(
        proxy.mutating_operations().is_empty(),
        "{:?}",
        proxy.operations()
    );
    block_on(ec2.create_vpc().cidr_block("10.9.0.0/16").send()).expect("create_vpc");
    assert_eq!(proxy.mutating_operations(), ["CreateVpc"]);
}

fn wait_instance(
    rds: &aws_sdk_rds::Client,
    id: &str,
    deadline: Duration,
) -> (Vec<String>, Duration, bool) {
    let started = Instant::now();
    let mut statuses = Vec::new();
    loop {
        let answer = block_on(
            rds.describe_db_instances()
                .db_instance_identifier(id)
                .send(),
        )
        .expect("describe_db_instances");
        let instance = &answer.db_instances()[0];
        let status = instance.db_instance_status().unwrap_or("").to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status.clone());
        }
        if status == "available" {
            return (statuses, started.elapsed(), instance.endpoint().is_some());
        }
        assert!(instance.endpoint().is_none(), "no endpoint while {status}");
        assert!(
            started.elapsed() < deadline,
            "still {status} after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn proxy_holds_rds_instances_and_clusters_in_creating() {
    let moto = Moto::start();
    seed_production(&moto.endpoint);
    seed_aurora_production(&moto.endpoint);
    let proxy = Proxy::start(&moto.endpoint);
    // Long enough that the first answers come inside it on a loaded machine.
    let hold = Duration::from_secs(5);
    proxy.hold_rds_status(hold);
    let rds = block_on(rds_client(&proxy.endpoint, DR_REGION));

    let started = Instant::now();
    let restored = block_on(
        rds.restore_db_instance_from_db_snapshot()
            .db_instance_identifier("rebuilt-db")
            .db_snapshot_identifier("prod-db-snap-2-copy")
            .db_instance_class("db.t3.medium")
            .send(),
    )
    .expect("restore through the proxy")
    .db_instance
    .expect("restored instance");
    assert_eq!(restored.db_instance_status(), Some("creating"));
    let (statuses, _, has_endpoint) = wait_instance(&rds, "rebuilt-db", Duration::from_secs(30));
    assert_eq!(statuses, ["creating", "available"]);
    assert!(started.elapsed() >= hold);
    assert!(has_endpoint, "endpoint is back once available");

    // Production's instance, created directly against moto, is not held.
    let prod = block_on(rds_client(&proxy.endpoint, PROD_REGION));
    let answer = block_on(prod.describe_db_instances().send()).expect("describe prod");
    assert_eq!(
        answer.db_instances()[0].db_instance_status(),
        Some("available")
    );

    // Clusters.
    let started = Instant::now();
    block_on(
        rds.restore_db_cluster_from_snapshot()
            .db_cluster_identifier("rebuilt-aurora")
            .snapshot_identifier("prod-aurora-snap-1-copy")
            .engine("aurora-postgresql")
            .send(),
    )
    .expect("restore cluster through the proxy");
    let mut statuses: Vec<String> = Vec::new();
    loop {
        let answer = block_on(
            rds.describe_db_clusters()
                .db_cluster_identifier("rebuilt-aurora")
                .send(),
        )
        .expect("describe_db_clusters");
        let status = answer.db_clusters()[0].status().unwrap_or("").to_string();
        if statuses.last() != Some(&status) {
            statuses.push(status.clone());
        }
        if status == "available" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "cluster still {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(statuses, ["creating", "available"]);
    assert!(started.elapsed() >= hold);
    assert!(proxy.count("DescribeDBClusters") >= 2);
}

#[test]
fn proxy_holds_nat_gateways_pending() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    // Long enough that the first answers come inside it on a loaded machine.
    let hold = Duration::from_secs(5);
    proxy.hold_ec2_nat_pending(hold);
    let ec2 = block_on(ec2_client(&proxy.endpoint, DR_REGION));
    let (nat_id, state) = block_on(async {
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.1.0.0/16")
            .send()
            .await
            .expect("vpc");
        let vpc_id = vpc
            .vpc()
            .and_then(|vpc| vpc.vpc_id())
            .expect("vpc id")
            .to_string();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.1.1.0/24")
            .send()
            .await
            .expect("subnet");
        let subnet_id = subnet
            .subnet()
            .and_then(|subnet| subnet.subnet_id())
            .expect("subnet id")
            .to_string();
        let address = ec2
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .send()
            .await
            .expect("eip");
        let nat = ec2
            .create_nat_gateway()
            .subnet_id(&subnet_id)
            .allocation_id(address.allocation_id().expect("allocation id"))
            .send()
            .await
            .expect("nat");
        let nat = nat.nat_gateway().expect("nat gateway");
        (
            nat.nat_gateway_id().expect("nat id").to_string(),
            nat.state().cloned(),
        )
    });
    let started = Instant::now();
    assert_eq!(state, Some(aws_sdk_ec2::types::NatGatewayState::Pending));
    let mut states = Vec::new();
    loop {
        let answer = block_on(ec2.describe_nat_gateways().nat_gateway_ids(&nat_id).send())
            .expect("describe_nat_gateways");
        let state = answer.nat_gateways()[0].state().cloned().expect("state");
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == aws_sdk_ec2::types::NatGatewayState::Available {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nat still {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        states,
        [
            aws_sdk_ec2::types::NatGatewayState::Pending,
            aws_sdk_ec2::types::NatGatewayState::Available
        ]
    );
    // The proxy noted when the gateway's hold ran out and when an answer first said so.
    let notices = proxy.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].resource, format!("nat gateway {nat_id}"));
    assert!(notices[0].late() < Duration::from_secs(30), "{notices:?}");
}
