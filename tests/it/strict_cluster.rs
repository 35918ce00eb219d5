//! The strict testbed's cluster rules, proven on their own (without the binary), so that a
//! failing rebuild can be trusted to fail for the reason a real cluster would:
//!
//! - EKS reports the security group it made for the cluster (`clusterSecurityGroupId`, a
//!   real group in the cluster's VPC that admits itself), and its `vpcId`;
//! - a Pod whose configuration names the database reaches it only when the database's
//!   security group lets the nodes' group in on the database's port, in the same VPC;
//!   otherwise its Job fails as a connection timeout fails it (review B1, B5);
//! - a Pod whose referenced Secret is missing waits in `CreateContainerConfigError`, and
//!   with strict references an `optional` Secret counts as required (review B3).

use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, UserIdGroupPair};
use aws_sdk_eks::types::VpcConfigRequest;

use crate::support::kube::{KubeTestbed, PodChecks};
use crate::support::reach::database_reach;
use crate::support::seed::{DR_REGION, block_on, ec2_client, eks_client, rds_client};
use crate::support::world::World;

const NS: &str = "app";

/// A VPC with two subnets, a database in it behind its own security group, and an EKS
/// cluster (created through the proxy, as the binary creates it) with a node group on
/// the same subnets. Returns (vpc, database group, database endpoint, cluster name).
fn database_and_cluster(world: &World, vpc_cidr: &str) -> (String, String, String, String) {
    block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        let vpc = ec2.create_vpc().cidr_block(vpc_cidr).send().await.unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let prefix = vpc_cidr.rsplit_once(".0.0/").unwrap().0;
        let mut subnets = Vec::new();
        for (number, zone) in [(1, "ap-southeast-1a"), (2, "ap-southeast-1b")] {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("{prefix}.{number}.0/24"))
                .availability_zone(zone)
                .send()
                .await
                .unwrap();
            subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
        }
        let group = ec2
            .create_security_group()
            .group_name(format!("db-{vpc}"))
            .description("the database")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        let group = group.group_id().unwrap().to_string();
        rds.create_db_subnet_group()
            .db_subnet_group_name(format!("db-{vpc}"))
            .db_subnet_group_description("the database")
            .set_subnet_ids(Some(subnets.clone()))
            .send()
            .await
            .unwrap();
        let database = rds
            .create_db_instance()
            .db_instance_identifier(format!("db-{vpc}"))
            .engine("postgres")
            .db_instance_class("db.t3.medium")
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("database-password")
            .db_subnet_group_name(format!("db-{vpc}"))
            .vpc_security_group_ids(&group)
            .send()
            .await
            .unwrap();
        let endpoint = database
            .db_instance()
            .and_then(|instance| instance.endpoint())
            .and_then(|endpoint| endpoint.address())
            .unwrap()
            .to_string();
        let cluster = format!("cluster-{vpc}");
        eks.create_cluster()
            .name(&cluster)
            .version("1.35")
            .role_arn("arn:aws:iam::123456789012:role/shop-eks-cluster")
            .resources_vpc_config(
                VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnets.clone()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        eks.create_nodegroup()
            .cluster_name(&cluster)
            .nodegroup_name("nodes")
            .node_role("arn:aws:iam::123456789012:role/shop-eks-nodes")
            .set_subnets(Some(subnets))
            .send()
            .await
            .unwrap();
        (vpc, group, endpoint, cluster)
    })
}

/// The cluster's security group and VPC as `DescribeCluster` reports them.
fn cluster_network(world: &World, cluster: &str) -> (Option<String>, Option<String>) {
    block_on(async {
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        let answer = eks.describe_cluster().name(cluster).send().await.unwrap();
        let config = answer.cluster().unwrap().resources_vpc_config().unwrap();
        (
            config.cluster_security_group_id().map(str::to_string),
            config.vpc_id().map(str::to_string),
        )
    })
}

/// Let `source` into `group` on 5432.
fn admit(world: &World, group: &str, source: &str) {
    block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        ec2.authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(5432)
                    .to_port(5432)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

fn namespace(kube: &KubeTestbed) {
    kube.apply(
        &format!("/api/v1/namespaces/{NS}"),
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
    );
}

/// A Job (no retries) whose container's environment comes from the ConfigMap `config`
/// and the Secret `shop-db`, `optional` as given.
fn job(kube: &KubeTestbed, name: &str, optional: bool) {
    let manifest = format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: {NS}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.example/app:1
        envFrom:
        - configMapRef: {{name: config}}
        - secretRef: {{name: shop-db, optional: {optional}}}
"
    );
    kube.apply(
        &format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}"),
        &manifest,
    );
}

fn config(kube: &KubeTestbed, database: &str) {
    kube.apply(
        &format!("/api/v1/namespaces/{NS}/configmaps/config"),
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: {NS}\ndata:\n  DB_HOST: \"{database}\"\n  DB_PORT: \"5432\"\n"
        ),
    );
}

fn secret(kube: &KubeTestbed) {
    kube.apply(
        &format!("/api/v1/namespaces/{NS}/secrets/shop-db"),
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shop-db\n  namespace: {NS}\nstringData:\n  DB_PASSWORD: database-password\n"
        ),
    );
}

/// How the Job `name` ended: `Ok(())` when it succeeded, `Err(message)` with its Pod's
/// termination message when it failed.
fn job_outcome(kube: &KubeTestbed, name: &str) -> Result<(), String> {
    kube.wait_for(
        &format!("Job {name} to end"),
        Duration::from_secs(60),
        || {
            let job = kube.get_json(&format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}"))?;
            if job["status"]["succeeded"].as_u64() == Some(1) {
                return Some(Ok(()));
            }
            if job["status"]["failed"].as_u64().unwrap_or(0) == 0 {
                return None;
            }
            let pods = kube.get_json(&format!(
                "/api/v1/namespaces/{NS}/pods?labelSelector=job-name%3D{name}"
            ))?;
            let message = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
                ["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Some(Err(message))
        },
    )
}

/// The waiting reason and message of the Job `name`'s Pod, once it has one.
fn waiting(kube: &KubeTestbed, name: &str) -> (String, String) {
    kube.wait_for(
        &format!("the Pod of {name} to wait"),
        Duration::from_secs(30),
        || {
            let pods = kube.get_json(&format!(
                "/api/v1/namespaces/{NS}/pods?labelSelector=job-name%3D{name}"
            ))?;
            let waiting = &pods["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"];
            Some((
                waiting["reason"].as_str()?.to_string(),
                waiting["message"].as_str()?.to_string(),
            ))
        },
    )
}

#[test]
fn eks_reports_the_cluster_security_group_it_made_in_the_cluster_vpc() {
    let world = World::new();
    let (vpc, _, _, cluster) = database_and_cluster(&world, "10.9.0.0/16");
    let (group, reported_vpc) = cluster_network(&world, &cluster);
    let group = group.expect("DescribeCluster reports clusterSecurityGroupId");
    assert_eq!(reported_vpc.as_deref(), Some(vpc.as_str()));
    let described = block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let answer = ec2
            .describe_security_groups()
            .group_ids(&group)
            .send()
            .await
            .unwrap();
        answer.security_groups()[0].clone()
    });
    assert_eq!(described.vpc_id(), Some(vpc.as_str()));
    let admits_itself = described.ip_permissions().iter().any(|permission| {
        permission.ip_protocol() == Some("-1")
            && permission
                .user_id_group_pairs()
                .iter()
                .any(|pair| pair.group_id() == Some(group.as_str()))
    });
    assert!(admits_itself, "{described:?}");
}

#[test]
fn pods_reach_the_database_only_when_its_security_group_lets_the_nodes_in() {
    let world = World::new();
    let (_, database_group, endpoint, cluster) = database_and_cluster(&world, "10.9.0.0/16");
    let kube = KubeTestbed::start();
    kube.set_pod_checks(PodChecks {
        strict_references: false,
        network: Some(database_reach(
            &world.moto.endpoint,
            world.proxy().cluster_networks(),
            DR_REGION,
        )),
        aws_access: None,
    });
    namespace(&kube);
    secret(&kube);
    config(&kube, &endpoint);

    // No rule admits the nodes: the migration times out, as it would on AWS.
    job(&kube, "migrate-1", false);
    let failed = job_outcome(&kube, "migrate-1").expect_err("the database is unreachable");
    assert!(failed.contains("i/o timeout"), "{failed}");
    assert!(failed.contains(&endpoint), "{failed}");

    // A rule from some other group does not help either.
    let (other, _, _, _) = database_and_cluster(&world, "10.8.0.0/16");
    let other_group = block_on(async {
        let ec2 = ec2_client(&world.moto.endpoint, DR_REGION).await;
        let group = ec2
            .create_security_group()
            .group_name("unrelated")
            .description("unrelated")
            .vpc_id(&other)
            .send()
            .await
            .unwrap();
        group.group_id().unwrap().to_string()
    });
    admit(&world, &database_group, &other_group);
    job(&kube, "migrate-2", false);
    assert!(job_outcome(&kube, "migrate-2").is_err());

    // The cluster's security group, which the managed nodes carry: it connects.
    let (nodes, _) = cluster_network(&world, &cluster);
    admit(&world, &database_group, &nodes.unwrap());
    job(&kube, "migrate-3", false);
    assert_eq!(job_outcome(&kube, "migrate-3"), Ok(()));

    // A Pod that names no database is not held back by the network at all.
    config(&kube, "cache.example");
    job(&kube, "migrate-4", false);
    assert_eq!(job_outcome(&kube, "migrate-4"), Ok(()));
}

#[test]
fn a_pod_whose_secret_is_missing_waits_in_create_container_config_error() {
    let kube = KubeTestbed::start();
    namespace(&kube);
    config(&kube, "db.example");

    // A required Secret that is missing: never started, as a kubelet never starts it.
    job(&kube, "required", false);
    let (reason, message) = waiting(&kube, "required");
    assert_eq!(reason, "CreateContainerConfigError");
    assert!(message.contains("shop-db"), "{message}");

    // An optional one that is missing: a lenient kubelet starts it without it...
    job(&kube, "optional", true);
    assert_eq!(job_outcome(&kube, "optional"), Ok(()));

    // ...the strict one does not, so a template that would run without its credentials
    // fails in the tests.
    kube.set_pod_checks(PodChecks {
        strict_references: true,
        network: None,
        aws_access: None,
    });
    job(&kube, "optional-strict", true);
    let (reason, _) = waiting(&kube, "optional-strict");
    assert_eq!(reason, "CreateContainerConfigError");

    // Once the Secret exists, the waiting Pods start.
    secret(&kube);
    assert_eq!(job_outcome(&kube, "required"), Ok(()));
    assert_eq!(job_outcome(&kube, "optional-strict"), Ok(()));
}
