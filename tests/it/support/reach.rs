//! The network between the nodes and the database, decided from moto's EC2, EKS and RDS
//! state as AWS's network would decide it: the kubelet stand-in's [`NetworkCheck`].
//!
//! A container whose environment names a database instance's endpoint reaches it only when
//! one of the database's security groups admits, on the database's port (TCP), one of the
//! nodes' security groups (or a CIDR block holding the nodes' VPC), and the nodes are in
//! the database's VPC. The nodes are those of the EKS clusters created through the proxy
//! that have a node group; they carry the cluster's security group, as managed nodes
//! without a launch template do (`clusterSecurityGroupId`).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kube::{NetworkCheck, Reach};
use super::seed::{block_on, ec2_client, eks_client, rds_client};
use super::strict::eks::ClusterNetworks;

/// One database instance as the network sees it.
#[derive(Clone, Debug)]
struct Database {
    id: String,
    address: String,
    port: i32,
    vpc: String,
    groups: Vec<String>,
}

/// One ingress rule of a security group: the port range (`None`: all), and whom it admits.
#[derive(Clone, Debug)]
struct Rule {
    group: String,
    protocol: String,
    ports: Option<(i32, i32)>,
    sources: Vec<String>,
    cidrs: Vec<String>,
}

/// The nodes of one cluster: their VPC (and its CIDR block) and security groups.
#[derive(Clone, Debug)]
struct Nodes {
    cluster: String,
    vpc: String,
    vpc_cidr: String,
    groups: Vec<String>,
}

/// What moto holds, read at most once a second.
#[derive(Clone, Debug, Default)]
struct Network {
    databases: Vec<Database>,
    rules: Vec<Rule>,
    nodes: Vec<Nodes>,
}

/// The check for the Kubernetes stand-in: moto at `endpoint`, the clusters of `networks`,
/// in `region`.
pub fn database_reach(endpoint: &str, networks: ClusterNetworks, region: &str) -> NetworkCheck {
    let endpoint = endpoint.to_string();
    let region = region.to_string();
    let cache: Mutex<Option<(Instant, Network)>> = Mutex::new(None);
    Arc::new(move |environment: &[String]| {
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = cache
            .as_ref()
            .is_some_and(|(read, _)| read.elapsed() < Duration::from_secs(1));
        if !fresh {
            *cache = Some((Instant::now(), read(&endpoint, &networks, &region)));
        }
        let network = &cache.as_ref().expect("just read").1;
        network.reach(environment)
    })
}

impl Network {
    fn reach(&self, environment: &[String]) -> Reach {
        let named = self.databases.iter().find(|database| {
            !database.address.is_empty()
                && environment
                    .iter()
                    .any(|value| value.contains(&database.address))
        });
        let Some(database) = named else {
            return Reach::NoDatabase;
        };
        let timeout = format!(
            "dial tcp {}:{}: i/o timeout",
            database.address, database.port
        );
        if self.nodes.is_empty() {
            return Reach::Unreachable(format!("{timeout} (no EKS node group in the region)"));
        }
        for nodes in &self.nodes {
            if nodes.vpc != database.vpc {
                continue;
            }
            let admitted = self.rules.iter().any(|rule| {
                database.groups.contains(&rule.group)
                    && rule.admits_port(database.port)
                    && (rule
                        .sources
                        .iter()
                        .any(|source| nodes.groups.contains(source))
                        || rule
                            .cidrs
                            .iter()
                            .any(|cidr| cidr_covers(cidr, &nodes.vpc_cidr)))
            });
            if admitted {
                return Reach::Reachable;
            }
        }
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|nodes| {
                format!(
                    "cluster {} in {} with {}",
                    nodes.cluster,
                    nodes.vpc,
                    nodes.groups.join(",")
                )
            })
            .collect();
        Reach::Unreachable(format!(
            "{timeout} (database {} in {} with {}; nodes: {}; no security group rule admits the nodes on port {})",
            database.id,
            database.vpc,
            database.groups.join(","),
            nodes.join("; "),
            database.port
        ))
    }
}

impl Rule {
    fn admits_port(&self, port: i32) -> bool {
        match (self.protocol.as_str(), self.ports) {
            ("-1", _) => true,
            ("tcp" | "6", Some((from, to))) => from <= port && port <= to,
            ("tcp" | "6", None) => true,
            _ => false,
        }
    }
}

/// Whether the IPv4 block `outer` holds all of `inner`.
fn cidr_covers(outer: &str, inner: &str) -> bool {
    let parse = |cidr: &str| -> Option<(u32, u32)> {
        let (address, bits) = cidr.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        Some((u32::from(address), bits.parse().ok()?))
    };
    let (Some((outer, outer_bits)), Some((inner, inner_bits))) = (parse(outer), parse(inner))
    else {
        return false;
    };
    if outer_bits > inner_bits || outer_bits > 32 {
        return false;
    }
    let mask = if outer_bits == 0 {
        0
    } else {
        u32::MAX << (32 - outer_bits)
    };
    outer & mask == inner & mask
}

/// Read the databases, security group rules and nodes from moto.
fn read(endpoint: &str, networks: &ClusterNetworks, region: &str) -> Network {
    block_on(async {
        let rds = rds_client(endpoint, region).await;
        let ec2 = ec2_client(endpoint, region).await;
        let eks = eks_client(endpoint, region).await;
        let mut network = Network::default();
        // Asked at once: a Pod's start waits for this view, and moto is busy with the run.
        let (instances, groups) = tokio::join!(
            rds.describe_db_instances().send(),
            ec2.describe_security_groups().send(),
        );
        if let Ok(answer) = instances {
            for instance in answer.db_instances() {
                let endpoint = instance.endpoint();
                network.databases.push(Database {
                    id: instance.db_instance_identifier().unwrap_or_default().into(),
                    address: endpoint
                        .and_then(|endpoint| endpoint.address())
                        .unwrap_or_default()
                        .into(),
                    port: endpoint.and_then(|endpoint| endpoint.port()).unwrap_or(0),
                    vpc: instance
                        .db_subnet_group()
                        .and_then(|group| group.vpc_id())
                        .unwrap_or_default()
                        .into(),
                    groups: instance
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|group| group.vpc_security_group_id().map(str::to_string))
                        .collect(),
                });
            }
        }
        if let Ok(answer) = groups {
            for group in answer.security_groups() {
                for permission in group.ip_permissions() {
                    network.rules.push(Rule {
                        group: group.group_id().unwrap_or_default().into(),
                        protocol: permission.ip_protocol().unwrap_or_default().into(),
                        ports: permission.from_port().zip(permission.to_port()),
                        sources: permission
                            .user_id_group_pairs()
                            .iter()
                            .filter_map(|pair| pair.group_id().map(str::to_string))
                            .collect(),
                        cidrs: permission
                            .ip_ranges()
                            .iter()
                            .filter_map(|range| range.cidr_ip().map(str::to_string))
                            .collect(),
                    });
                }
            }
        }
        for (cluster, cluster_network) in networks.in_region(region) {
            let groups = eks.list_nodegroups().cluster_name(&cluster).send().await;
            if groups.map_or(true, |groups| groups.nodegroups().is_empty()) {
                continue;
            }
            let vpc_cidr = ec2
                .describe_vpcs()
                .vpc_ids(&cluster_network.vpc_id)
                .send()
                .await
                .ok()
                .and_then(|answer| {
                    let vpc = answer.vpcs().first()?;
                    vpc.cidr_block().map(str::to_string)
                })
                .unwrap_or_default();
            network.nodes.push(Nodes {
                cluster,
                vpc: cluster_network.vpc_id,
                vpc_cidr,
                groups: vec![cluster_network.security_group_id],
            });
        }
        network
    })
}

#[cfg(test)]
mod tests {
    use super::cidr_covers;

    #[test]
    fn cidr_blocks_cover_the_blocks_inside_them() {
        assert!(cidr_covers("10.42.0.0/16", "10.42.0.0/16"));
        assert!(cidr_covers("10.0.0.0/8", "10.42.0.0/16"));
        assert!(cidr_covers("0.0.0.0/0", "10.42.0.0/16"));
        assert!(!cidr_covers("10.42.0.0/24", "10.42.0.0/16"));
        assert!(!cidr_covers("10.43.0.0/16", "10.42.0.0/16"));
    }
}
