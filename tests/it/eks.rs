//! The EKS steps against moto (through the fault proxy, which holds clusters and node groups
//! in `CREATING` so waits are real): created once, adopted after a SIGKILL mid-wait, run in
//! parallel with the database restore, refused up front when an IAM role is missing; and
//! `rebuild eks-token` (the kubeconfig's credential plugin).

use std::time::Duration;

use base64::Engine;

use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::playbooks::infrastructure_playbook_with;
use crate::support::seed::{DR_REGION, EKS_NODE_ROLE, block_on, eks_client, sdk_config};
use crate::support::world::{World, step};

fn clusters_and_groups(endpoint: &str) -> Vec<(String, Vec<String>)> {
    block_on(async {
        let eks = eks_client(endpoint, DR_REGION).await;
        let mut found = Vec::new();
        for cluster in eks.list_clusters().send().await.unwrap().clusters() {
            let groups = eks
                .list_nodegroups()
                .cluster_name(cluster)
                .send()
                .await
                .unwrap();
            found.push((cluster.clone(), groups.nodegroups().to_vec()));
        }
        found
    })
}

#[test]
fn the_cluster_and_node_group_are_created_once_and_adopted_after_a_kill() {
    let world = World::with_proxy();
    // Held past the kill however slow the machine; released before the resume.
    world.proxy().hold_eks_status(Duration::from_secs(600));
    world.rebuild_killed_at("cluster/waiting");
    world.proxy().clear();
    let crashed = world.status();
    assert_eq!(step(&crashed, "cluster")["state"], "waiting");
    assert_eq!(clusters_and_groups(&world.moto.endpoint).len(), 1);

    let status = world.resume_to_completion();
    let cluster = step(&status, "cluster");
    let name = cluster["outputs"]["cluster_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        clusters_and_groups(&world.moto.endpoint),
        vec![(name.clone(), vec!["nodes".to_string()])]
    );
    assert_eq!(
        world.proxy().count("POST /clusters"),
        1,
        "the resumed step adopted the cluster"
    );
    assert_eq!(
        step(&status, "nodes")["outputs"]["cluster_name"],
        name.as_str()
    );
    assert_eq!(step(&status, "nodes")["outputs"]["desired_size"], 3);
    // The nodes' AMI type is explicit: AL2 images are past end of support, and EKS's own
    // default depends on the version (review B2). Moto's default is AL2.
    let ami_type = block_on(async {
        let eks = eks_client(&world.moto.endpoint, DR_REGION).await;
        let answer = eks
            .describe_nodegroup()
            .cluster_name(&name)
            .nodegroup_name("nodes")
            .send()
            .await
            .unwrap();
        answer
            .nodegroup()
            .and_then(|group| group.ami_type())
            .map(|ami| ami.as_str().to_string())
    });
    assert_eq!(ami_type.as_deref(), Some("AL2023_x86_64_STANDARD"));

    let kubeconfig =
        std::fs::read_to_string(cluster["outputs"]["kubeconfig"].as_str().unwrap()).unwrap();
    assert!(
        kubeconfig.contains(&format!(
            "\"eks-token\", \"--cluster\", \"{name}\", \"--region\", \"ap-southeast-1\""
        )),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains(&format!(
        "server: {}",
        serde_json::to_string(&cluster["outputs"]["endpoint"]).unwrap()
    )));
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn the_database_restore_runs_in_parallel_with_the_cluster() {
    let world = World::with_proxy();
    world.proxy().hold_eks_status(Duration::from_secs(2));
    world
        .proxy()
        .hold_eks_nodegroup_status(Duration::from_secs(1));
    world.proxy().hold_rds_status(Duration::from_secs(2));
    world.rebuild().success();
    // Each held resource was seen ready once its hold ran out (the benchmark's lateness).
    let mut noticed: Vec<&str> = Vec::new();
    for notice in world.proxy().notices() {
        noticed.push(match notice.resource.as_str() {
            eks if eks.contains("/node-groups/") => "node group",
            eks if eks.starts_with("eks /clusters/") => "cluster",
            rds if rds.starts_with("rds instance ") => "database",
            other => panic!("unexpected {other}"),
        });
    }
    noticed.sort_unstable();
    assert_eq!(noticed, ["cluster", "database", "node group"]);
    let status = world.status();
    let time = |step_id: &str, field: &str| -> jiff::Timestamp {
        step(&status, step_id)[field]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        time("database", "started") < time("cluster", "ended"),
        "{status}"
    );
    assert!(
        time("cluster", "started") < time("database", "ended"),
        "{status}"
    );
    assert!(time("network", "ended") <= time("cluster", "started"));
    assert!(time("cluster", "ended") <= time("nodes", "started"));
    assert!(time("egress", "ended") <= time("nodes", "started"));
}

#[test]
fn a_missing_iam_role_is_a_plan_problem_and_nothing_is_created() {
    let world = World::with_proxy();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[("default: shop-eks-nodes", "default: no-such-role")],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("IAM role `no-such-role` does not exist");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

#[test]
fn eks_token_prints_an_exec_credential_for_the_cluster() {
    let world = World::new();
    let credential = world
        .run(&[
            "eks-token",
            "--cluster",
            "prod",
            "--region",
            "ap-southeast-1",
        ])
        .success()
        .stdout_json();
    assert_eq!(credential["kind"], "ExecCredential");
    assert_eq!(
        credential["apiVersion"],
        "client.authentication.k8s.io/v1beta1"
    );
    let token = credential["status"]["token"].as_str().unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.strip_prefix("k8s-aws-v1.").unwrap())
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    assert!(
        url.starts_with("https://sts.ap-southeast-1.amazonaws.com/?Action=GetCallerIdentity"),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
        "{url}"
    );
}

/// Real AWS refuses `CreateCluster` in a Kubernetes version it no longer offers (1.29 left
/// extended support in 2026); moto accepts any. The plan asks `DescribeClusterVersions` and
/// says no before the network exists (review B2).
#[test]
fn a_kubernetes_version_eks_no_longer_offers_is_a_plan_problem_and_nothing_is_created() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook =
        infrastructure_playbook_with(dir.path(), &[("default: \"1.35\"", "default: \"1.29\"")]);
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("EKS does not create clusters in Kubernetes `1.29` in `ap-southeast-1`")
        .stderr_contains("offered there: 1.31, 1.32, 1.33, 1.34, 1.35");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

/// The proxy's strict rule itself: `CreateCluster` in a version EKS does not offer is refused
/// with AWS's error, `DescribeClusterVersions` answers (moto has neither), and a lenient proxy
/// lets moto's leniency through.
#[test]
fn the_proxy_refuses_a_cluster_version_eks_does_not_offer_as_aws_does() {
    let world = World::new();
    let endpoint = world.endpoint().to_string();
    let create = |version: &'static str, name: &'static str| {
        let endpoint = endpoint.clone();
        block_on(async move {
            let eks = eks_client(&endpoint, DR_REGION).await;
            eks.create_cluster()
                .name(name)
                .version(version)
                .role_arn("arn:aws:iam::123456789012:role/shop-eks-cluster")
                .resources_vpc_config(
                    aws_sdk_eks::types::VpcConfigRequest::builder()
                        .subnet_ids("subnet-1")
                        .subnet_ids("subnet-2")
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|error| {
                    aws_sdk_eks::error::ProvideErrorMetadata::code(&error)
                        .unwrap_or_default()
                        .to_string()
                })
        })
    };
    assert_eq!(
        create("1.29", "old"),
        Err("InvalidParameterException".to_string())
    );
    assert_eq!(create("1.35", "current"), Ok(()));
    let offered = block_on(async {
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        let answer = eks.describe_cluster_versions().send().await.unwrap();
        answer
            .cluster_versions()
            .iter()
            .map(|info| {
                (
                    info.cluster_version().unwrap_or_default().to_string(),
                    info.version_status()
                        .map(|status| status.as_str().to_string()),
                )
            })
            .collect::<Vec<_>>()
    });
    assert!(offered.contains(&("1.29".to_string(), Some("UNSUPPORTED".to_string()))));
    assert!(offered.contains(&("1.35".to_string(), Some("STANDARD_SUPPORT".to_string()))));
    world.proxy().set_lenient(true);
    assert_eq!(
        create("1.29", "lenient"),
        Ok(()),
        "moto accepts any version"
    );
}

#[test]
fn a_node_role_ec2_cannot_assume_or_without_the_cni_policy_is_a_plan_problem() {
    let world = World::new();
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&world.moto.endpoint, "us-east-1").await);
        // As a node role copied from the cluster role's trust, whose CNI permissions live
        // on a separate IRSA role in production (AWS's advice): the rebuilt cluster's CNI
        // has no such role (review B6, D17).
        iam.update_assume_role_policy()
            .role_name(EKS_NODE_ROLE)
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .unwrap();
        iam.detach_role_policy()
            .role_name(EKS_NODE_ROLE)
            .policy_arn("arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
            .send()
            .await
            .unwrap();
    });
    world.proxy().reset_counts();
    world
        .rebuild()
        .code(4)
        .output_contains(&format!(
            "IAM role `{EKS_NODE_ROLE}` (the EKS node role) does not let `ec2.amazonaws.com` assume it"
        ))
        .output_contains("lacks AWS's managed policy AmazonEKS_CNI_Policy; attach them");
    assert!(
        world.proxy().mutating_operations().is_empty(),
        "nothing was created: {:?}",
        world.proxy().mutating_operations()
    );

    // With a policy of its own, the plan cannot judge it: it says so and goes on.
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&world.moto.endpoint, "us-east-1").await);
        iam.update_assume_role_policy()
            .role_name(EKS_NODE_ROLE)
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(EKS_NODE_ROLE)
            .policy_name("cni")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:AssignPrivateIpAddresses","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
    });
    world
        .test()
        .args(["plan", "--target", "ap-southeast-1"])
        .playbook(&crate::support::playbooks::infrastructure_playbook())
        .run()
        .success()
        .stdout_contains("it has policies of its own, which the plan cannot judge");
}

#[test]
fn eks_refuses_access_entries_on_a_cluster_in_config_map_mode_as_aws_does() {
    let world = World::new();
    let subnets = block_on(async {
        let (_, subnet) =
            crate::support::seed::vpc_with_subnet(&world.moto.endpoint, DR_REGION, 7).await;
        vec![subnet]
    });
    let refused = block_on(async {
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        // Through the API, with no accessConfig: CONFIG_MAP mode (EKS's default).
        eks.create_cluster()
            .name("legacy")
            .version("1.35")
            .role_arn("arn:aws:iam::123456789012:role/shop-eks-cluster")
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnets))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mode = eks.describe_cluster().name("legacy").send().await.unwrap();
        let mode = mode
            .cluster()
            .and_then(|cluster| cluster.access_config())
            .and_then(|config| config.authentication_mode())
            .map(|mode| mode.as_str().to_string());
        assert_eq!(mode.as_deref(), Some("CONFIG_MAP"));
        let error = eks
            .create_access_entry()
            .cluster_name("legacy")
            .principal_arn("arn:aws:iam::123456789012:role/oncall")
            .send()
            .await
            .unwrap_err();
        aws_sdk_eks::error::ProvideErrorMetadata::code(&error).map(str::to_string)
    });
    assert_eq!(refused.as_deref(), Some("InvalidRequestException"));
}

#[test]
fn the_playbook_admins_get_access_entries_on_a_cluster_in_api_mode() {
    let world = World::new();
    let oncall = "arn:aws:iam::123456789012:role/oncall";
    let break_glass = "arn:aws:iam::123456789012:role/break-glass";
    let inputs = format!("cluster_admins={oncall}, {break_glass}");
    world
        .rebuild_test(&crate::support::playbooks::infrastructure_playbook())
        .args(["--input", &inputs])
        .run()
        .success()
        .stderr_contains(&format!("created eks-access-entry {oncall}"));
    let status = world.status();
    let name = step(&status, "cluster")["outputs"]["cluster_name"]
        .as_str()
        .unwrap()
        .to_string();
    let access = world
        .proxy()
        .cluster_access()
        .get(DR_REGION, &name)
        .expect("the proxy saw the cluster created");
    // Access entries work only in API or API_AND_CONFIG_MAP mode (review D4).
    assert_eq!(access.authentication_mode, "API_AND_CONFIG_MAP");
    assert!(access.bootstrap_creator_admin);
    let admin = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
    for principal in [oncall, break_glass] {
        assert_eq!(
            access.entries.get(principal),
            Some(&vec![admin.to_string()]),
            "{access:?}"
        );
    }
    assert_eq!(
        step(&status, "cluster")["outputs"]["admins"],
        serde_json::json!([oncall, break_glass])
    );
}

/// A node group that ends `CREATE_FAILED` fails the step with its `health.issues` (code and
/// message) and what to do, instead of a bare state (review D11).
#[test]
fn a_node_group_that_fails_to_create_says_why() {
    let world = World::new();
    world.proxy().fail_nodegroups(Some((
        "AsgInstanceLaunchFailures",
        "Could not launch On-Demand Instances. InsufficientInstanceCapacity",
    )));
    world
        .rebuild()
        .code(1)
        .stderr_contains("is `CREATE_FAILED`: AsgInstanceLaunchFailures: Could not launch On-Demand Instances. InsufficientInstanceCapacity")
        .stderr_contains("add instance types to `instance_types`");
    let status = world.status();
    assert_eq!(step(&status, "nodes")["state"], "failed");
}

/// An instance type EC2 does not offer in the chosen zones stops the plan (exit 4) before
/// anything is made (review D2); the default types are offered in every zone. Moto accepts
/// any type in `CreateNodegroup`.
#[test]
fn an_instance_type_not_offered_in_the_zones_is_a_plan_problem() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "instance_types: [m6i.large, m6a.large, m5.large, m7i.large]",
            "instance_types: [m6i.large, x2iedn.32xlarge]",
        )],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("EC2 does not offer instance type `x2iedn.32xlarge` in ap-southeast-1c")
        .output_lacks("`m6i.large` in");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}
