//! The network and egress steps against EC2 as it really is (review D3, D10, D15 and the
//! EC2 part of D2): the proxy's strict EC2 rules themselves (quotas, eventual consistency,
//! client tokens), and the steps living with them — quotas checked by the plan, new ids not
//! known yet retried, a resume right after a kill adopting what it cannot list yet, a failed
//! NAT gateway reported with EC2's reason, and one NAT gateway per zone by default. The NAT
//! gateways are the egress step's, off the database's and the cluster's path; a playbook
//! from before that step still makes them in the network step.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{AttributeBooleanValue, DomainType, Filter};

use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::infrastructure_playbook;
use crate::support::proxy::{Call, Fault};
use crate::support::seed::{DR_REGION, block_on, ec2_client, sdk_config};
use crate::support::world::{World, step};

/// The default playbook's network and egress steps alone, written to `dir`.
fn network_playbook(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(infrastructure_playbook()).unwrap();
    let (network, _) = text.split_once("\n  - id: database").unwrap();
    let path = dir.join("network.yaml");
    std::fs::write(&path, format!("{network}\n")).unwrap();
    path
}

fn code<T, E: ProvideErrorMetadata>(result: Result<T, E>) -> Result<(), String> {
    result
        .map(|_| ())
        .map_err(|error| error.code().unwrap_or_default().to_string())
}

/// The proxy's quota rule: past 5 VPCs (moto's default VPC counted, as AWS counts it) and 5
/// Elastic IPs, creates fail with EC2's errors; Service Quotas reports the same limits; a
/// lenient proxy lets moto's leniency through.
#[test]
fn the_proxy_enforces_the_vpc_and_elastic_ip_quotas_as_aws_does() {
    let world = World::new();
    block_on(async {
        let ec2 = ec2_client(world.endpoint(), DR_REGION).await;
        for index in 0..4 {
            let cidr = format!("10.{index}.0.0/16");
            code(ec2.create_vpc().cidr_block(cidr).send().await).unwrap();
        }
        let fifth = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await;
        assert_eq!(code(fifth), Err("VpcLimitExceeded".to_string()));
        for _ in 0..5 {
            code(ec2.allocate_address().domain(DomainType::Vpc).send().await).unwrap();
        }
        let sixth = ec2.allocate_address().domain(DomainType::Vpc).send().await;
        assert_eq!(code(sixth), Err("AddressLimitExceeded".to_string()));

        let quotas =
            aws_sdk_servicequotas::Client::new(&sdk_config(world.endpoint(), DR_REGION).await);
        for (service, quota) in [("vpc", "L-F678F1CE"), ("ec2", "L-0263D0A3")] {
            let answer = quotas
                .get_service_quota()
                .service_code(service)
                .quota_code(quota)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.quota().and_then(|quota| quota.value()), Some(5.0));
        }
        world.proxy().set_lenient(true);
        let lenient = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await;
        assert_eq!(code(lenient), Ok(()), "moto has no quota");
    });
}

/// The proxy's eventual-consistency rule: right after `CreateVpc`, a call naming the new
/// VPC answers `InvalidVpcID.NotFound` and a tag-filtered `DescribeVpcs` omits it; once the
/// window is over, both see it. And a `CreateRouteTable` repeated with its `ClientToken`
/// answers the first table (moto would make a second).
#[test]
fn the_proxy_hides_new_ec2_ids_for_a_while_and_honours_client_tokens() {
    let world = World::new();
    world
        .proxy()
        .set_ec2_consistency(Some(Duration::from_millis(1500)));
    block_on(async {
        let ec2 = ec2_client(world.endpoint(), DR_REGION).await;
        let tag = aws_sdk_ec2::types::Tag::builder()
            .key("probe")
            .value("1")
            .build();
        let tags = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
            .tags(tag)
            .build();
        let created = ec2
            .create_vpc()
            .cidr_block("10.7.0.0/16")
            .tag_specifications(tags)
            .send()
            .await
            .unwrap();
        let vpc = created.vpc().unwrap().vpc_id().unwrap().to_string();
        let modify = || {
            ec2.modify_vpc_attribute()
                .vpc_id(&vpc)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                .send()
        };
        let listed = || async {
            let filter = Filter::builder().name("tag:probe").values("1").build();
            let answer = ec2.describe_vpcs().filters(filter).send().await.unwrap();
            answer.vpcs().len()
        };
        assert_eq!(
            code(modify().await),
            Err("InvalidVpcID.NotFound".to_string())
        );
        assert_eq!(listed().await, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while code(modify().await).is_err() {
            assert!(Instant::now() < deadline, "the VPC never became known");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(listed().await, 1);

        let table = || {
            ec2.create_route_table()
                .vpc_id(&vpc)
                .client_token("same-token")
                .send()
        };
        let first = table().await.unwrap();
        let again = table().await.unwrap();
        let id = |answer: &aws_sdk_ec2::operation::create_route_table::CreateRouteTableOutput| {
            answer
                .route_table()
                .and_then(|table| table.route_table_id())
                .map(str::to_string)
        };
        assert_eq!(id(&first), id(&again));
        let tables = ec2
            .describe_route_tables()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .unwrap();
        assert_eq!(tables.route_tables().len(), 2, "the main table and ours");
    });
}

/// A region whose VPC quota is used up stops the plan (exit 4) before anything is made,
/// naming the quota; today's AWS would refuse `CreateVpc` mid-run (review D15).
#[test]
fn a_vpc_quota_with_no_room_is_a_plan_problem_and_nothing_is_created() {
    let world = World::new();
    world.proxy().set_ec2_quotas(1, 5);
    world.proxy().reset_counts();
    world
        .rebuild()
        .code(4)
        .stderr_contains("has 1 of its 1 VPCs and this run needs 1 more")
        .stderr_contains("`L-F678F1CE`");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

/// When Service Quotas cannot answer, the plan assumes AWS's default of 5 Elastic IPs and
/// says so; with 3 already allocated, the 3 NAT gateways' addresses do not fit.
#[test]
fn without_service_quotas_the_default_elastic_ip_quota_is_assumed_and_said() {
    let world = World::new();
    block_on(async {
        let ec2 = ec2_client(world.endpoint(), DR_REGION).await;
        for _ in 0..3 {
            ec2.allocate_address()
                .domain(DomainType::Vpc)
                .send()
                .await
                .unwrap();
        }
    });
    world
        .proxy()
        .fail("GetServiceQuota", 100, Fault::ServerError500);
    world.proxy().reset_counts();
    world
        .rebuild()
        .code(4)
        .stderr_contains("has 3 of its 5 Elastic IPs (Service Quotas did not answer")
        .stderr_contains("AWS's default of 5 assumed) and this run needs 3 more");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

/// With EC2 eventually consistent (each new id unknown for a while), the network is built
/// on the first attempt: every call naming a new id is retried until EC2 knows it (review
/// D3). One NAT gateway per zone, each zone's private table through its own (review D10).
#[test]
fn the_network_is_built_while_ec2_does_not_know_new_ids_yet() {
    let world = World::new();
    world
        .proxy()
        .set_ec2_consistency(Some(Duration::from_millis(400)));
    let dir = tempfile::tempdir().unwrap();
    world.rebuild_with(&network_playbook(dir.path())).success();
    let status = world.status();
    let network = step(&status, "network");
    assert_eq!(network["attempts"], 1, "{network}");
    let egress = step(&status, "egress");
    assert_eq!(egress["attempts"], 1, "{egress}");
    assert!(
        world.proxy().count("ModifyVpcAttribute") > 1,
        "a retry happened"
    );
    let counted = inventory(&world.moto.endpoint);
    assert_eq!((counted.nat_gateways, counted.elastic_ips), (3, 3));
    assert_eq!(counted.vpcs, 1);
    assert_eq!(network["outputs"]["nat_gateway_ids"], serde_json::json!([]));
    let nats: Vec<String> =
        serde_json::from_value(egress["outputs"]["nat_gateway_ids"].clone()).unwrap();
    let tables: Vec<String> =
        serde_json::from_value(network["outputs"]["private_route_table_ids"].clone()).unwrap();
    let routes = block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let mut routes = Vec::new();
        for table in &tables {
            let answer = ec2
                .describe_route_tables()
                .route_table_ids(table)
                .send()
                .await
                .unwrap();
            let table = &answer.route_tables()[0];
            let nat = table
                .routes()
                .iter()
                .find_map(|route| route.nat_gateway_id().map(str::to_string));
            routes.push(nat.unwrap_or_default());
        }
        routes
    });
    assert_eq!(routes, nats, "zone i's private table goes through NAT i");
}

/// A resume started right after a kill, while EC2 still does not list what the killed
/// attempt made by its tags, looks again after a grace instead of making a second NAT
/// gateway and Elastic IP (review D3).
#[test]
fn a_resume_right_after_a_kill_adopts_what_ec2_does_not_list_yet() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = network_playbook(dir.path());
    world
        .rebuild_test(&playbook)
        .failpoint("egress/after-nat")
        .run()
        .killed("egress/after-nat");
    // What the killed attempt made moments ago stays unlisted for 2.5 s after its create;
    // the resume's grace is twice its poll interval: 4 s.
    world
        .proxy()
        .set_ec2_consistency(Some(Duration::from_millis(2500)));
    world
        .test()
        .args(["resume", "--yes"])
        .env("REBUILD_POLL_INTERVAL_MS", "2000")
        .run()
        .success();
    let counted = inventory(&world.moto.endpoint);
    assert_eq!(
        (counted.vpcs, counted.nat_gateways, counted.elastic_ips),
        (1, 3, 3)
    );
}

/// A NAT gateway that fails ends the egress step at once with EC2's failure code and
/// message and what to do, instead of a bare state (review item "NAT failed"); once EC2's
/// trouble is over, the resume makes new gateways in place of the failed ones.
#[test]
fn a_failed_nat_gateway_ends_the_step_with_its_reason() {
    let world = World::new();
    world.proxy().fail_nat_gateways(Some((
        "InsufficientFreeAddressesInSubnet",
        "Subnet has insufficient free addresses to create this NAT gateway",
    )));
    let dir = tempfile::tempdir().unwrap();
    world
        .rebuild_with(&network_playbook(dir.path()))
        .code(1)
        .stderr_contains("is `failed`: InsufficientFreeAddressesInSubnet: Subnet has insufficient free addresses")
        .stderr_contains("step `egress` (aws.network.egress) failed")
        .stderr_contains("a failed NAT gateway is never adopted");
    let status = world.status();
    assert_eq!(step(&status, "network")["state"], "succeeded");
    assert_eq!(step(&status, "egress")["attempts"], 1);
    assert_eq!(inventory(&world.moto.endpoint).vpcs, ONE_RUN.vpcs);

    world.proxy().fail_nat_gateways(None);
    // EC2 disassociates a failed gateway's Elastic IP; moto, whose gateways the proxy only
    // reports `failed`, keeps it associated: do what EC2 does.
    block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let addresses = ec2.describe_addresses().send().await.unwrap();
        for association in addresses
            .addresses()
            .iter()
            .filter_map(|a| a.association_id())
        {
            ec2.disassociate_address()
                .association_id(association)
                .send()
                .await
                .unwrap();
        }
    });
    world.proxy().reset_counts();
    world.run(&["resume", "--yes"]).success();
    let status = world.status();
    let egress = step(&status, "egress");
    assert_eq!(egress["attempts"], 2, "{egress}");
    assert_eq!(
        egress["outputs"]["nat_gateway_ids"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        world.proxy().count("CreateNatGateway"),
        3,
        "new gateways in place of the failed ones"
    );
}

/// The times at which the proxy saw the calls for which `wanted` holds, in order.
fn seen(calls: &[Call], wanted: impl Fn(&Call) -> bool) -> Vec<SystemTime> {
    calls
        .iter()
        .filter(|call| !call.faulted && wanted(call))
        .map(|call| call.at)
        .collect()
}

/// The point of the egress step: with the NAT gateways held `pending` for a while, the
/// database's restore and the cluster's create are called before any gateway is available,
/// and only the node group's create waits until all are, and their routes are set.
#[test]
fn the_database_and_the_cluster_do_not_wait_for_the_nat_gateways() {
    let world = World::new();
    let hold = Duration::from_secs(6);
    world.proxy().hold_ec2_nat_pending(hold);
    world.rebuild().success();
    let calls = world.proxy().calls();
    let gateways = seen(&calls, |call| call.operation == "CreateNatGateway");
    assert_eq!(gateways.len(), 3, "one per zone");
    let first_available = gateways[0] + hold;
    let all_available = gateways[2] + hold;

    let restores = seen(&calls, |call| {
        call.operation == "RestoreDBInstanceFromDBSnapshot"
    });
    let clusters = seen(&calls, |call| call.operation == "POST /clusters");
    assert_eq!((restores.len(), clusters.len()), (1, 1));
    assert!(
        restores[0] < first_available,
        "the restore waited for the NAT gateways"
    );
    assert!(
        clusters[0] < first_available,
        "the cluster waited for the NAT gateways"
    );

    let node_groups = seen(&calls, |call| {
        call.operation.starts_with("POST /clusters/") && call.operation.ends_with("/node-groups")
    });
    let nat_routes = seen(&calls, |call| {
        call.operation == "CreateRoute" && call.params.iter().any(|(key, _)| key == "NatGatewayId")
    });
    assert_eq!((node_groups.len(), nat_routes.len()), (1, 3));
    assert!(
        node_groups[0] >= all_available,
        "the node group did not wait for the NAT gateways"
    );
    assert!(
        nat_routes.iter().all(|route| *route < node_groups[0]),
        "the node group did not wait for the private routes"
    );
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

/// A playbook from before the egress step (the network step makes the NAT gateways, the
/// nodes need only the network) builds as it did: the network waits for its three
/// gateways, routes the private tables through them and outputs them.
#[test]
fn a_network_step_with_nat_gateways_still_makes_them_itself() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(infrastructure_playbook()).unwrap();
    let (head, rest) = text.split_once("\n  - id: egress").unwrap();
    let (_, database) = rest.split_once("\n  - id: database").unwrap();
    let old = format!("{head}\n  - id: database{database}")
        .replace("nat_gateways: 0", "nat_gateways: 3")
        .replace(
            "needs: [cluster, network, egress]",
            "needs: [cluster, network]",
        );
    let playbook = dir.path().join("old.yaml");
    std::fs::write(&playbook, old).unwrap();
    world.rebuild_with(&playbook).success();
    let status = world.status();
    let network = step(&status, "network");
    let nats = network["outputs"]["nat_gateway_ids"].as_array().unwrap();
    assert_eq!(nats.len(), 3, "{network}");
    assert!(
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|step| step["id"] != "egress")
    );
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}
