//! The default playbook end to end on the whole testbed (`support::stack`): moto for AWS
//! (network, restore, EKS, ECR, Route 53), the production's repositories in git behind the
//! GitHub REST stand-in, and a real kube-apiserver that the cluster step's connection is
//! directed to (moto's EKS endpoint cannot be reached). `rebuild --target ap-southeast-1
//! --yes` must do the whole job; kills mid-deploy and moved tags must not change the result.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

use crate::support::git::checkout_head;
use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::kube::{SSL_CERT, load_balancer_hostname};
use crate::support::playbooks::{DEPLOY_MARKER, default_playbook};
use crate::support::seed::{
    APP_ROLE, DR_REGION, block_on, eks_client, sdk_config, vpc_with_subnet,
};
use crate::support::stack::{
    CONFIG_RELEASE, GITHUB_TOKEN, OLD_TARGET, PUBLIC_HOST, RELEASE, Stack, TARGET_REGISTRY,
};
use crate::support::test::Outcome;
use crate::support::world::{TARGET, step};

/// What the application looks like in the API server: each Deployment's available
/// replicas and image, the config's DB host and release marker.
fn application(stack: &Stack) -> Vec<(String, Value, Value)> {
    let mut seen = Vec::new();
    for name in ["shop-api", "shop-worker", "shop-web"] {
        let live = stack.deployment(name);
        seen.push((
            name.to_string(),
            live["status"]["availableReplicas"].clone(),
            live["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
        ));
    }
    let config = stack
        .kube
        .get_json("/api/v1/namespaces/shop/configmaps/shop-config")
        .unwrap_or(Value::Null);
    seen.push((
        "shop-config".into(),
        config["data"]["DB_HOST"].clone(),
        config["data"]["CONFIG_RELEASE"].clone(),
    ));
    seen
}

/// Every step of the default playbook succeeded.
fn assert_all_succeeded(status: &Value) {
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let steps = status["steps"].as_array().unwrap();
    let mut ids: Vec<&str> = steps
        .iter()
        .map(|step| step["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "app",
            "certificate",
            "cluster",
            "config",
            "database",
            "database-access",
            "deploy",
            "dns",
            "egress",
            "network",
            "nodes",
            "pod-identity",
            "smoke"
        ]
    );
    assert_eq!(steps.len(), 13, "{status:#}");
    for step in steps {
        assert_eq!(step["state"], "succeeded", "step {}: {step:#}", step["id"]);
    }
}

/// Assert exit code 0, showing the control plane's logs too when it is not.
#[track_caller]
pub(crate) fn assert_success(stack: &Stack, output: &Outcome) {
    assert_eq!(
        output.exit_code(),
        0,
        "{}\n{}",
        output.text(),
        stack.kube.logs()
    );
}

pub(crate) fn assert_the_stack_is_rebuilt(stack: &Stack) {
    let status = stack.world.status();
    assert_all_succeeded(&status);
    // AWS: exactly one stack, the restore from the newest snapshot in the target region.
    assert_eq!(inventory(&stack.world.moto.endpoint), ONE_RUN);
    let database = step(&status, "database");
    let endpoint = database["outputs"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(endpoint.contains(TARGET), "{endpoint}");
    assert_eq!(step(&status, "nodes")["state"], "succeeded");

    // Kubernetes: every Deployment Available, from the tagged config, images rewritten to
    // the target registry at the release's tag, the DB endpoint in their config.
    for (name, available, image) in application(stack) {
        if name == "shop-config" {
            assert_eq!(available, endpoint.as_str(), "DB_HOST");
            assert_eq!(
                image, CONFIG_RELEASE,
                "the config repo's release was deployed"
            );
            continue;
        }
        assert!(
            available.as_u64().unwrap_or(0) >= 1,
            "{name} is not available"
        );
        let image = image.as_str().unwrap();
        assert!(image.starts_with(TARGET_REGISTRY), "{name} pulls {image}");
        assert!(
            image.ends_with(&format!(":{RELEASE}")),
            "{name} pulls {image}"
        );
        let live = stack.deployment(&name);
        let available_condition = live["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|condition| condition["type"] == "Available" && condition["status"] == "True");
        assert!(available_condition, "{name}: {live}");
    }
    let job = stack
        .kube
        .get_json("/apis/batch/v1/namespaces/shop/jobs/shop-migrate-v2-3-0")
        .unwrap();
    assert_eq!(job["status"]["succeeded"], 1, "{job}");

    // The strict testbed let the pods reach the database only because the database's
    // group admits the cluster's (B1), and start only with their credentials (B3): the
    // Secret holds the restored database's RDS-managed master credentials.
    let access = step(&status, "database-access");
    assert_eq!(
        access["outputs"]["admitted"],
        serde_json::json!([step(&status, "cluster")["outputs"]["security_group_id"]])
    );
    let arn = database["outputs"]["master_user_secret_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(arn.contains(":secretsmanager:ap-southeast-1:"), "{arn}");
    let managed = block_on(async {
        let client = aws_sdk_secretsmanager::Client::new(
            &sdk_config(&stack.world.moto.endpoint, TARGET).await,
        );
        let value = client
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .unwrap();
        serde_json::from_str::<Value>(value.secret_string().unwrap()).unwrap()
    });
    let secret = stack
        .kube
        .get_json("/api/v1/namespaces/shop/secrets/shop-db")
        .unwrap();
    let decoded = |key: &str| {
        let text = secret["data"][key].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(decoded("DB_USER"), managed["username"].as_str().unwrap());
    assert_eq!(
        decoded("DB_PASSWORD"),
        managed["password"].as_str().unwrap()
    );

    // The application's pods call AWS: the strict kubelet let them start only with the
    // Pod Identity agent ACTIVE and their service account bound to a role that trusts Pod
    // Identity (review B10).
    let identity = step(&status, "pod-identity");
    assert_eq!(
        identity["outputs"]["cluster_name"],
        step(&status, "cluster")["outputs"]["cluster_name"]
    );
    let bound = &identity["outputs"]["associations"][0];
    assert_eq!(
        (&bound["namespace"], &bound["service_account"]),
        (&Value::from("shop"), &Value::from("shop-app")),
        "{identity:#}"
    );
    assert_eq!(bound["role_arn"], "arn:aws:iam::123456789012:role/shop-app");
    let api = stack.deployment("shop-api");
    assert_eq!(
        api["spec"]["template"]["spec"]["serviceAccountName"],
        "shop-app"
    );

    // Sources pinned by SHA and checked out exactly there.
    let config = step(&status, "config");
    assert_eq!(config["outputs"]["commit"], stack.config_commit.as_str());
    assert_eq!(config["outputs"]["ref"], CONFIG_RELEASE);
    let checkout = config["outputs"]["path"].as_str().unwrap();
    assert_eq!(checkout_head(Path::new(checkout)).0, stack.config_commit);
    assert_eq!(
        step(&status, "app")["outputs"]["commit"],
        stack.app_commit.as_str()
    );

    // DNS points at the new load balancer; the old value is journaled for a revert.
    let balancer = load_balancer_hostname("shop", "shop-web");
    let deploy = step(&status, "deploy");
    assert_eq!(deploy["outputs"]["load_balancer"], balancer.as_str());
    assert_eq!(
        deploy["outputs"]["waves_applied"].as_array().unwrap().len(),
        4
    );
    assert_eq!(stack.public_record(), ("CNAME".to_string(), vec![balancer]));
    let dns = step(&status, "dns");
    assert!(
        dns["pinned"]["previous"].to_string().contains(OLD_TARGET),
        "{dns:#}"
    );

    // The load balancer serves HTTPS with the target region's certificate (review B4).
    let certificate = step(&status, "certificate");
    assert_eq!(
        certificate["outputs"]["arn"],
        stack.certificate_arn.as_str()
    );
    let service = stack
        .kube
        .get_json("/api/v1/namespaces/shop/services/shop-web")
        .unwrap();
    assert_eq!(
        service["metadata"]["annotations"][SSL_CERT],
        stack.certificate_arn.as_str(),
        "{service:#}"
    );

    // Smoke checks passed where users arrive: HTTPS to the public name, connected to the
    // new load balancer (review D13).
    let smoke = step(&status, "smoke");
    let web = &smoke["outputs"]["results"]["web"];
    assert_eq!(web["passed"], true, "{smoke:#}");
    assert_eq!(
        web["url"],
        format!(
            "https://{}:{}/healthz",
            PUBLIC_HOST.trim_end_matches('.'),
            stack.https_port
        )
        .as_str(),
        "{smoke:#}"
    );
}

#[test]
fn rebuild_target_does_the_whole_job_on_the_testbed() {
    let stack = Stack::start();
    let output = stack.rebuild();
    assert_success(&stack, &output);
    assert_the_stack_is_rebuilt(&stack);

    output
        // The plan showed the deploy exactly, from the release fetched at plan time.
        .stderr_contains(&format!("{TARGET_REGISTRY}/shop/web:{RELEASE}"))
        // The step reuses the plan's checkout instead of fetching the release again.
        .stderr_contains("config: fetching from the plan's checkout")
        // The token never shows.
        .never_shows(GITHUB_TOKEN);
    stack.world.assert_never_journaled(GITHUB_TOKEN);
}

/// The strict testbed's AWS access rule bites (review B10): without the Pod Identity step,
/// the application's pods get no AWS credentials, as on AWS (the old IRSA trust names the
/// lost cluster), and the deploy fails at the migration instead of turning green.
#[test]
fn without_pod_identity_the_application_gets_no_aws_credentials_and_the_deploy_fails() {
    let stack = Stack::start();
    let full = std::fs::read_to_string(default_playbook()).unwrap();
    let start = full.find("  - id: pod-identity\n").unwrap();
    let end = start + full[start..].find(DEPLOY_MARKER).unwrap();
    let without = format!("{}{}", &full[..start], &full[end..]).replace(
        "database-access, pod-identity, certificate",
        "database-access, certificate",
    );
    assert!(!without.contains("pod-identity"), "{without}");
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("region-rebuild.yaml");
    std::fs::write(&playbook, without).unwrap();
    let mut test = stack
        .test()
        .args(["--target", TARGET, "--yes"])
        .playbook(&playbook);
    for input in stack.inputs() {
        test = test.args(["--input".to_string(), input]);
    }
    let output = test.run();
    assert_ne!(output.exit_code(), 0, "{}", output.text());
    let status = stack.world.status();
    assert_eq!(step(&status, "deploy")["state"], "failed", "{status:#}");
    // The migration's pod says why, as the application's AWS SDK would.
    let pods = stack
        .kube
        .get_json("/api/v1/namespaces/shop/pods?labelSelector=app%3Dshop-migrate")
        .unwrap();
    let reasons = pods.to_string();
    assert!(
        reasons.contains("no EKS Pod Identity association for service account shop/shop-app"),
        "{pods:#}"
    );
    assert_eq!(
        stack.public_record().1,
        vec![OLD_TARGET.to_string()],
        "DNS is not cut over"
    );
}

#[test]
fn a_kill_during_the_deploy_waves_resumes_without_reapplying_finished_waves() {
    let stack = Stack::start();
    stack
        .rebuild_test()
        .failpoint("deploy/wave-backend")
        .run()
        .killed("deploy/wave-backend");
    let before = stack.world.status();
    assert_eq!(step(&before, "deploy")["pinned"]["waves_applied"], 3);
    let config_version = stack
        .kube
        .get_json("/api/v1/namespaces/shop/configmaps/shop-config")
        .unwrap()["metadata"]["resourceVersion"]
        .clone();
    let api_version = stack.deployment("shop-api")["metadata"]["generation"].clone();
    assert!(
        stack.deployment("shop-web").is_null(),
        "frontend not applied yet"
    );

    let output = stack.resume();
    assert_success(&stack, &output);
    for wave in ["config", "migrate", "backend"] {
        output.stderr_contains(&format!("wave `{wave}` was applied before; skipped"));
    }
    // Objects of finished waves were not written again.
    let config_after = stack
        .kube
        .get_json("/api/v1/namespaces/shop/configmaps/shop-config")
        .unwrap()["metadata"]["resourceVersion"]
        .clone();
    assert_eq!(config_version, config_after);
    assert_eq!(
        stack.deployment("shop-api")["metadata"]["generation"],
        api_version
    );
    assert_the_stack_is_rebuilt(&stack);
}

#[test]
fn a_tag_moved_after_the_run_started_does_not_move_the_resume() {
    let stack = Stack::start();
    stack
        .rebuild_test()
        .failpoint("config/resolved")
        .run()
        .killed("config/resolved");
    // The release is re-tagged to a new commit (and published as the latest release).
    let moved = stack
        .config
        .commit("k8s/01-config.yaml", "this commit must never be deployed\n");
    stack.config.move_tag(CONFIG_RELEASE, &moved);

    assert_success(&stack, &stack.resume());
    assert_the_stack_is_rebuilt(&stack);
}

#[test]
fn a_missing_image_in_the_target_registry_stops_the_plan_before_anything_is_created() {
    let stack = Stack::start();
    // The web image of the release was never replicated.
    block_on_delete_image(&stack, "shop/web");
    stack.rebuild().code(4).stderr_contains(&format!(
        "1 image(s) missing from the registry in `ap-southeast-1`: {TARGET_REGISTRY}/shop/web:{RELEASE}"
    ));
    let nothing = inventory(&stack.world.moto.endpoint);
    assert_eq!(nothing.vpcs, 0, "{nothing:?}");
    assert_eq!(nothing.db_instances, 0, "{nothing:?}");
    assert!(stack.kube.get_json("/api/v1/namespaces/shop").is_none());
}

fn block_on_delete_image(stack: &Stack, repository: &str) {
    block_on(async {
        let ecr =
            aws_sdk_ecr::Client::new(&sdk_config(&stack.world.moto.endpoint, DR_REGION).await);
        ecr.batch_delete_image()
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(RELEASE)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn with_github_unreachable_the_mirrors_deliver_the_same_commits() {
    let stack = Stack::start();
    let config_bundle = stack.repos.bundle(&stack.config);
    let app_mirror = stack.repos.mirror(&stack.app);
    stack.github.set_reachable(false);
    let mut args = stack.args(&["--target", TARGET, "--yes"]);
    for input in [
        format!("config_mirror={}", config_bundle.display()),
        format!("app_mirror={}", app_mirror.display()),
    ] {
        args.push("--input".into());
        args.push(input);
    }
    let output = stack.test().args(args).run();
    assert_success(&stack, &output);
    // The fallback is loud.
    output.stderr_contains("WARNING");
    assert_the_stack_is_rebuilt(&stack);
    let status = stack.world.status();
    assert_eq!(step(&status, "config")["outputs"]["source"], "mirror");
    assert_eq!(step(&status, "app")["outputs"]["source"], "mirror");
}

/// A pilot light in the target region, made through the proxy as its owners would have
/// made it: a VPC with three private subnets (tagged for internal load balancers) and a
/// public one (tagged for internet-facing ones), an EKS cluster on all four (EKS gives it
/// its security group), and a managed node group. Its name and VPC.
fn pilot_light(stack: &Stack) -> (String, String) {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    use aws_sdk_eks::types::VpcConfigRequest;
    block_on(async {
        let ec2 = crate::support::seed::ec2_client(stack.world.endpoint(), DR_REGION).await;
        let eks = eks_client(stack.world.endpoint(), DR_REGION).await;
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.60.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().and_then(|vpc| vpc.vpc_id()).unwrap().to_string();
        let mut subnets = Vec::new();
        for (index, (zone, role)) in [
            ("a", "kubernetes.io/role/internal-elb"),
            ("b", "kubernetes.io/role/internal-elb"),
            ("c", "kubernetes.io/role/internal-elb"),
            ("a", "kubernetes.io/role/elb"),
        ]
        .into_iter()
        .enumerate()
        {
            let tags = TagSpecification::builder()
                .resource_type(ResourceType::Subnet)
                .tags(Tag::builder().key(role).value("1").build())
                .build();
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.60.{index}.0/24"))
                .availability_zone(format!("{DR_REGION}{zone}"))
                .tag_specifications(tags)
                .send()
                .await
                .unwrap();
            subnets.push(
                subnet
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap()
                    .to_string(),
            );
        }
        let name = "shop-pilot".to_string();
        eks.create_cluster()
            .name(&name)
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
            .cluster_name(&name)
            .nodegroup_name("pilot-nodes")
            .node_role("arn:aws:iam::123456789012:role/shop-eks-nodes")
            .set_subnets(Some(subnets[..3].to_vec()))
            .send()
            .await
            .unwrap();
        (name, vpc)
    })
}

/// The target region's VPCs.
fn vpcs(stack: &Stack) -> Vec<String> {
    block_on(async {
        let ec2 = crate::support::seed::ec2_client(&stack.world.moto.endpoint, DR_REGION).await;
        let answer = ec2.describe_vpcs().send().await.unwrap();
        let mut ids: Vec<String> = answer
            .vpcs()
            .iter()
            .filter_map(|vpc| vpc.vpc_id().map(str::to_string))
            .collect();
        ids.sort();
        ids
    })
}

#[test]
fn an_existing_cluster_is_deployed_to_without_provisioning_one() {
    // Every strict rule on, the network check included: the migration and the API pods
    // reach the database only if it is in the pilot cluster's VPC and its security group
    // lets the cluster's in (review B5).
    let stack = Stack::start();
    let (pilot, pilot_vpc) = pilot_light(&stack);
    let before = vpcs(&stack);
    let args = stack.args(&["--target", TARGET, "--yes", "--existing-cluster", &pilot]);
    let output = stack.test().args(args).run();
    assert_success(&stack, &output);
    output
        .stderr_contains("use the existing cluster `shop-pilot` (pilot light, Kubernetes 1.35)")
        .stderr_contains(&format!(
            "use cluster `shop-pilot`'s VPC {pilot_vpc} (pilot light)"
        ));
    assert!(
        !output.stderr().contains("cannot reach"),
        "no pilot-light warning when the cluster is named"
    );

    assert_eq!(vpcs(&stack), before, "no VPC is created");
    let clusters = block_on(async {
        let eks = eks_client(&stack.world.moto.endpoint, DR_REGION).await;
        let answer = eks.list_clusters().send().await.unwrap();
        answer.clusters().to_vec()
    });
    assert_eq!(
        clusters,
        std::slice::from_ref(&pilot),
        "no cluster is created"
    );
    let identities = stack.world.proxy().pod_identities();
    assert_eq!(
        identities
            .addon_status(DR_REGION, &pilot, "eks-pod-identity-agent")
            .as_deref(),
        Some("ACTIVE")
    );
    let bound: Vec<(String, String, String)> = identities
        .associations(DR_REGION, &pilot)
        .into_iter()
        .map(|association| {
            (
                association.namespace,
                association.service_account,
                association.role_arn,
            )
        })
        .collect();
    assert_eq!(
        bound,
        [(
            "shop".to_string(),
            "shop-app".to_string(),
            format!("arn:aws:iam::123456789012:role/{APP_ROLE}")
        )]
    );
    let status = stack.world.status();
    assert_all_succeeded(&status);
    let network = step(&status, "network");
    assert_eq!(network["outputs"]["vpc_id"], pilot_vpc.as_str());
    assert_eq!(network["outputs"]["nat_gateway_ids"], serde_json::json!([]));
    assert_eq!(network["outputs"]["existing"], true);
    // The cluster's network has its own way out: no NAT gateway is made.
    let egress = step(&status, "egress");
    assert_eq!(egress["outputs"]["skipped"], true, "{egress:#}");
    assert_eq!(egress["resources"].as_array().map_or(0, Vec::len), 0);
    assert_eq!(
        network["outputs"]["private_subnet_ids"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the database goes into the private subnets only: {network:#}"
    );
    let cluster = step(&status, "cluster");
    assert_eq!(cluster["outputs"]["existing"], true);
    assert_eq!(cluster["outputs"]["cluster_name"], pilot.as_str());
    assert_eq!(
        network["outputs"]["cluster_security_group_id"],
        cluster["outputs"]["security_group_id"]
    );
    assert_eq!(step(&status, "nodes")["outputs"]["skipped"], true);
    // The database landed in the pilot's VPC, behind the group the network step made.
    let database_vpc = block_on(async {
        let rds = crate::support::seed::rds_client(&stack.world.moto.endpoint, DR_REGION).await;
        let id = step(&status, "database")["outputs"]["db_identifier"]
            .as_str()
            .unwrap()
            .to_string();
        let answer = rds
            .describe_db_instances()
            .db_instance_identifier(&id)
            .send()
            .await
            .unwrap();
        let instance = &answer.db_instances()[0];
        instance
            .db_subnet_group()
            .and_then(|group| group.vpc_id())
            .unwrap()
            .to_string()
    });
    assert_eq!(database_vpc, pilot_vpc);
    for name in ["shop-api", "shop-worker", "shop-web"] {
        let live = stack.deployment(name);
        assert!(
            live["status"]["availableReplicas"].as_u64().unwrap_or(0) >= 1,
            "{live}"
        );
    }
    assert_eq!(
        stack.public_record(),
        (
            "CNAME".to_string(),
            vec![load_balancer_hostname("shop", "shop-web")]
        )
    );
}

/// An EKS cluster in the target region named as the testbed's kubeconfig names its cluster
/// (created through the proxy, on a VPC of its own): the pilot light. Its name.
fn existing_eks_cluster(stack: &Stack) -> String {
    let kubeconfig = std::fs::read_to_string(&stack.kube.kubeconfig).unwrap();
    let name = kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("- name: "))
        .unwrap()
        .to_string();
    block_on(async {
        let (_, subnet) = vpc_with_subnet(&stack.world.moto.endpoint, DR_REGION, 77).await;
        let eks = eks_client(stack.world.endpoint(), DR_REGION).await;
        eks.create_cluster()
            .name(&name)
            .version("1.35")
            .role_arn("arn:aws:iam::123456789012:role/shop-eks-cluster")
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .subnet_ids(subnet)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    name
}

#[test]
fn a_pilot_light_known_only_by_its_kubeconfig_is_warned_about_and_a_missing_one_refused() {
    let stack = Stack::start();
    // An EKS cluster as the kubeconfig names it (the Pod Identity step binds its service
    // accounts), on a network of its own.
    existing_eks_cluster(&stack);
    let kubeconfig = stack.kube.kubeconfig.display().to_string();
    // Only a kubeconfig: the database would land in a new VPC the cluster cannot reach;
    // the plan says so, and what to do instead.
    let inputs: Vec<String> = stack
        .inputs()
        .into_iter()
        .filter(|input| !input.starts_with("connect_kubeconfig="))
        .collect();
    stack
        .test()
        .args(stack.args_with(&["plan", "--target", TARGET, "--kubeconfig", &kubeconfig], &inputs))
        .run()
        .code(0)
        .output_contains("(pilot light): nothing is provisioned")
        .output_contains("the database is restored into the new VPC, which this cluster's nodes cannot reach: name the EKS cluster instead (`rebuild --existing-cluster NAME`)");
    // A named cluster that does not exist stops the plan, before anything is made.
    let before = vpcs(&stack);
    stack
        .test()
        .args(stack.args(&["--target", TARGET, "--yes", "--existing-cluster", "nope"]))
        .run()
        .code(4)
        .output_contains("there is no EKS cluster `nope` in `ap-southeast-1`")
        .output_contains("--existing-cluster NAME");
    assert_eq!(vpcs(&stack), before, "nothing is made");
}

#[test]
fn kubeconfig_needs_a_file_and_a_playbook_that_takes_it() {
    let stack = Stack::start();
    stack
        .test()
        .args(stack.args(&[
            "plan",
            "--target",
            TARGET,
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ]))
        .run()
        .code(2)
        .output_contains("`--kubeconfig /nonexistent/kubeconfig`: no such file");

    let kubeconfig = stack.kube.kubeconfig.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "name: other\nsource_region: ap-southeast-2\nsteps:\n  - {id: smoke, kind: http.check, with: {checks: [{name: a, url: \"http://127.0.0.1:1/\"}]}}\n",
    )
    .unwrap();
    stack
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&other)
        .args(["--kubeconfig", &kubeconfig])
        .run()
        .code(2)
        .output_contains("needs an input `existing_kubeconfig`");
}

/// Run `rebuild ARGS` on the testbed under a pseudo-terminal, typing `typed` into it.
fn run_on_a_terminal(stack: &Stack, args: &[String], typed: &str) -> Outcome {
    stack.test().args(args).on_a_terminal().stdin(typed).run()
}

#[test]
fn on_a_terminal_the_dns_cutover_is_asked_about_on_its_own() {
    let stack = Stack::start();
    // Yes to the rebuild, no to the DNS change.
    run_on_a_terminal(&stack, &stack.args(&["--target", TARGET]), "y\nn\n")
        .code(1)
        .stdout_contains("Rebuild `region-rebuild` in ap-southeast-1 now? [y/N]")
        .stdout_contains(&format!(
            "Cut DNS over: CNAME {PUBLIC_HOST} → {} (now {OLD_TARGET}, TTL 300 s)? [y/N]",
            load_balancer_hostname("shop", "shop-web")
        ))
        .stdout_contains("not confirmed");
    assert_eq!(
        stack.public_record(),
        ("CNAME".to_string(), vec![OLD_TARGET.to_string()]),
        "DNS is untouched"
    );
    let status = stack.world.status();
    assert_eq!(step(&status, "deploy")["state"], "succeeded");
    assert_eq!(step(&status, "dns")["state"], "failed");

    // Resuming asks again; yes moves DNS and the run completes.
    run_on_a_terminal(&stack, &["resume".to_string()], "y\ny\n")
        .success()
        .stdout_contains("Cut DNS over");
    assert_the_stack_is_rebuilt(&stack);
}
