//! What exists in AWS, counted through the APIs (never trusted from our own output): the
//! target region's [`Inventory`] and a [`fingerprint`] of every resource id in both regions.

use std::collections::BTreeSet;

use super::seed::{DR_REGION, PROD_REGION, block_on, ec2_client, eks_client, rds_client};

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
    pub eks_clusters: usize,
    pub eks_nodegroups: usize,
}

/// What one complete run of the default playbook leaves in the target region.
pub const ONE_RUN: Inventory = Inventory {
    vpcs: 1,
    public_subnets: 3,
    private_subnets: 3,
    zones: 3,
    internet_gateways: 1,
    nat_gateways: 3,
    elastic_ips: 3,
    route_tables: 4,
    // The network step's two (cluster, database) and the one EKS makes for the cluster.
    security_groups: 3,
    db_subnet_groups: 1,
    db_instances: 1,
    eks_clusters: 1,
    eks_nodegroups: 1,
};

/// Count what exists in the target region at `endpoint`.
pub fn inventory(endpoint: &str) -> Inventory {
    block_on(async {
        let ec2 = ec2_client(endpoint, DR_REGION).await;
        let rds = rds_client(endpoint, DR_REGION).await;
        let vpcs: Vec<String> = ec2
            .describe_vpcs()
            .send()
            .await
            .expect("DescribeVpcs")
            .vpcs()
            .iter()
            .filter(|vpc| vpc.is_default() != Some(true))
            .filter_map(|vpc| vpc.vpc_id().map(String::from))
            .collect();
        let in_our_vpcs =
            |vpc: Option<&str>| vpc.is_some_and(|vpc| vpcs.iter().any(|ours| ours == vpc));
        let subnets = ec2
            .describe_subnets()
            .send()
            .await
            .expect("DescribeSubnets");
        let ours: Vec<_> = subnets
            .subnets()
            .iter()
            .filter(|subnet| in_our_vpcs(subnet.vpc_id()))
            .collect();
        let named = |prefix: &str| {
            ours.iter()
                .filter(|subnet| {
                    subnet.tags().iter().any(|tag| {
                        tag.key() == Some("rebuild:name")
                            && tag.value().is_some_and(|value| value.starts_with(prefix))
                    })
                })
                .count()
        };
        let zones: BTreeSet<_> = ours
            .iter()
            .filter_map(|subnet| subnet.availability_zone())
            .collect();
        let gateways = ec2
            .describe_internet_gateways()
            .send()
            .await
            .expect("DescribeInternetGateways");
        let nats = ec2
            .describe_nat_gateways()
            .send()
            .await
            .expect("DescribeNatGateways");
        let addresses = ec2
            .describe_addresses()
            .send()
            .await
            .expect("DescribeAddresses");
        let tables = ec2
            .describe_route_tables()
            .send()
            .await
            .expect("DescribeRouteTables");
        let groups = ec2
            .describe_security_groups()
            .send()
            .await
            .expect("DescribeSecurityGroups");
        let subnet_groups = rds
            .describe_db_subnet_groups()
            .send()
            .await
            .expect("DescribeDBSubnetGroups");
        let instances = rds
            .describe_db_instances()
            .send()
            .await
            .expect("DescribeDBInstances");
        let eks = eks_client(endpoint, DR_REGION).await;
        let clusters = eks.list_clusters().send().await.expect("ListClusters");
        let mut eks_nodegroups = 0;
        for cluster in clusters.clusters() {
            let groups = eks.list_nodegroups().cluster_name(cluster).send().await;
            eks_nodegroups += groups.expect("ListNodegroups").nodegroups().len();
        }
        Inventory {
            vpcs: vpcs.len(),
            public_subnets: named("public-"),
            private_subnets: named("private-"),
            zones: zones.len(),
            internet_gateways: gateways
                .internet_gateways()
                .iter()
                .filter(|gateway| {
                    gateway
                        .tags()
                        .iter()
                        .any(|tag| tag.key() == Some("rebuild:run-id"))
                })
                .count(),
            nat_gateways: nats
                .nat_gateways()
                .iter()
                .filter(|gateway| in_our_vpcs(gateway.vpc_id()))
                .count(),
            elastic_ips: addresses.addresses().len(),
            route_tables: tables
                .route_tables()
                .iter()
                .filter(|table| in_our_vpcs(table.vpc_id()))
                .filter(|table| {
                    !table
                        .associations()
                        .iter()
                        .any(|association| association.main() == Some(true))
                })
                .count(),
            security_groups: groups
                .security_groups()
                .iter()
                .filter(|group| {
                    in_our_vpcs(group.vpc_id()) && group.group_name() != Some("default")
                })
                .count(),
            db_subnet_groups: subnet_groups.db_subnet_groups().len(),
            db_instances: instances.db_instances().len(),
            eks_clusters: clusters.clusters().len(),
            eks_nodegroups,
        }
    })
}

/// Every resource id in both regions that a rebuild could touch, through the APIs, sorted.
/// (moto's own `/moto-api/data.json` answers 500 once RDS instances exist, so it cannot be
/// used.)
pub fn fingerprint(endpoint: &str) -> Vec<String> {
    block_on(async {
        let mut ids = Vec::new();
        for region in [PROD_REGION, DR_REGION] {
            let ec2 = ec2_client(endpoint, region).await;
            let rds = rds_client(endpoint, region).await;
            let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
            ids.extend(
                vpcs.vpcs()
                    .iter()
                    .filter_map(|vpc| vpc.vpc_id().map(String::from)),
            );
            let subnets = ec2
                .describe_subnets()
                .send()
                .await
                .expect("DescribeSubnets");
            ids.extend(
                subnets
                    .subnets()
                    .iter()
                    .filter_map(|subnet| subnet.subnet_id().map(String::from)),
            );
            let gateways = ec2
                .describe_internet_gateways()
                .send()
                .await
                .expect("DescribeInternetGateways");
            ids.extend(
                gateways
                    .internet_gateways()
                    .iter()
                    .filter_map(|gateway| gateway.internet_gateway_id().map(String::from)),
            );
            let nats = ec2
                .describe_nat_gateways()
                .send()
                .await
                .expect("DescribeNatGateways");
            ids.extend(
                nats.nat_gateways()
                    .iter()
                    .filter_map(|gateway| gateway.nat_gateway_id().map(String::from)),
            );
            let addresses = ec2
                .describe_addresses()
                .send()
                .await
                .expect("DescribeAddresses");
            ids.extend(
                addresses
                    .addresses()
                    .iter()
                    .filter_map(|address| address.allocation_id().map(String::from)),
            );
            let tables = ec2
                .describe_route_tables()
                .send()
                .await
                .expect("DescribeRouteTables");
            ids.extend(
                tables
                    .route_tables()
                    .iter()
                    .filter_map(|table| table.route_table_id().map(String::from)),
            );
            let groups = ec2
                .describe_security_groups()
                .send()
                .await
                .expect("DescribeSecurityGroups");
            ids.extend(
                groups
                    .security_groups()
                    .iter()
                    .filter_map(|group| group.group_id().map(String::from)),
            );
            let instances = rds
                .describe_db_instances()
                .send()
                .await
                .expect("DescribeDBInstances");
            ids.extend(
                instances
                    .db_instances()
                    .iter()
                    .filter_map(|instance| instance.db_instance_identifier().map(String::from)),
            );
            let snapshots = rds
                .describe_db_snapshots()
                .send()
                .await
                .expect("DescribeDBSnapshots");
            ids.extend(
                snapshots
                    .db_snapshots()
                    .iter()
                    .filter_map(|snapshot| snapshot.db_snapshot_identifier().map(String::from)),
            );
            let subnet_groups = rds
                .describe_db_subnet_groups()
                .send()
                .await
                .expect("DescribeDBSubnetGroups");
            ids.extend(
                subnet_groups
                    .db_subnet_groups()
                    .iter()
                    .filter_map(|group| group.db_subnet_group_name().map(String::from)),
            );
        }
        ids.sort();
        ids
    })
}
