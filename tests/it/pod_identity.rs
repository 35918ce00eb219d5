//! `aws.eks.pod_identity` against moto behind the proxy, which serves EKS add-ons and Pod
//! Identity associations as EKS does (moto lacks both; review B10): the agent add-on and
//! the associations are created once, adopted by a new run and by a resumed one; a service
//! account bound to another role is refused with what to do; a role Pod Identity cannot
//! assume stops the plan (exit 4) before anything is made; an add-on that fails says why.
//! The proxy's own answers are checked against the API's shapes and errors first.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::seed::{
    APP_ROLE, DR_REGION, POD_IDENTITY_TRUST, block_on, eks_client, sdk_config, vpc_with_subnet,
};
use crate::support::strict::pod_identity::AddonFailure;
use crate::support::world::{World, step};

const AGENT: &str = "eks-pod-identity-agent";
const PILOT: &str = "pilot";

/// An EKS cluster `name` in the target region, created through the proxy.
fn cluster(world: &World, name: &str) {
    block_on(async {
        let (_, subnet) = vpc_with_subnet(&world.moto.endpoint, DR_REGION, 8).await;
        eks_client(world.endpoint(), DR_REGION)
            .await
            .create_cluster()
            .name(name)
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
}

/// A playbook with only the step, on the cluster `pilot`, binding `associations`.
fn playbook(dir: &tempfile::TempDir, associations: &[&str]) -> PathBuf {
    let list: Vec<String> = associations
        .iter()
        .map(|association| format!("\"{association}\""))
        .collect();
    let text = format!(
        "version: 1\nname: pod-identity\nsource_region: ap-southeast-2\ndefault_target: ap-southeast-1\nsteps:\n  - id: pod-identity\n    kind: aws.eks.pod_identity\n    timeout: 5m\n    with:\n      cluster: {PILOT}\n      associations: [{}]\n",
        list.join(", ")
    );
    let path = dir.path().join("playbook.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// A role whose trust policy is `trust`.
fn role(world: &World, name: &str, trust: &str) {
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&world.moto.endpoint, "us-east-1").await);
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap();
    });
}

fn error_code<E: aws_sdk_eks::error::ProvideErrorMetadata>(error: &E) -> Option<String> {
    error.code().map(str::to_string)
}

#[test]
fn the_proxy_serves_addons_and_associations_as_eks_does() {
    let world = World::new();
    cluster(&world, PILOT);
    world
        .proxy()
        .pod_identities()
        .hold_addons(Duration::from_millis(500));
    block_on(async {
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        // A cluster that does not exist.
        let missing = eks
            .list_pod_identity_associations()
            .cluster_name("nowhere")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            error_code(&missing).as_deref(),
            Some("ResourceNotFoundException")
        );
        let missing = eks
            .describe_addon()
            .cluster_name(PILOT)
            .addon_name(AGENT)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            error_code(&missing).as_deref(),
            Some("ResourceNotFoundException")
        );
        // CREATING, then ACTIVE.
        let created = eks
            .create_addon()
            .cluster_name(PILOT)
            .addon_name(AGENT)
            .send()
            .await
            .unwrap();
        assert_eq!(
            created.addon().unwrap().status().unwrap().as_str(),
            "CREATING"
        );
        let again = eks
            .create_addon()
            .cluster_name(PILOT)
            .addon_name(AGENT)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            error_code(&again).as_deref(),
            Some("ResourceInUseException")
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        let active = eks
            .describe_addon()
            .cluster_name(PILOT)
            .addon_name(AGENT)
            .send()
            .await
            .unwrap();
        assert_eq!(active.addon().unwrap().status().unwrap().as_str(), "ACTIVE");
        // One association per service account; a repeated token answers the first one.
        let create = |token: &'static str, role: &'static str| {
            eks.create_pod_identity_association()
                .cluster_name(PILOT)
                .namespace("shop")
                .service_account("shop-app")
                .role_arn(role_arn(role))
                .client_request_token(token)
                .send()
        };
        let first = create("t-1", APP_ROLE).await.unwrap();
        let first = first.association().unwrap();
        assert!(first.association_id().unwrap().starts_with("a-"));
        let repeated = create("t-1", APP_ROLE).await.unwrap();
        assert_eq!(
            repeated.association().unwrap().association_id(),
            first.association_id()
        );
        let duplicate = create("t-2", "other").await.unwrap_err();
        assert_eq!(
            error_code(&duplicate).as_deref(),
            Some("ResourceInUseException")
        );
        let invalid = eks
            .create_pod_identity_association()
            .cluster_name(PILOT)
            .namespace("shop")
            .service_account("other")
            .role_arn("shop-app")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            error_code(&invalid).as_deref(),
            Some("InvalidParameterException")
        );
        let listed = eks
            .list_pod_identity_associations()
            .cluster_name(PILOT)
            .namespace("shop")
            .service_account("shop-app")
            .send()
            .await
            .unwrap();
        assert_eq!(listed.associations().len(), 1);
        let none = eks
            .list_pod_identity_associations()
            .cluster_name(PILOT)
            .namespace("shop")
            .service_account("nobody")
            .send()
            .await
            .unwrap();
        assert!(none.associations().is_empty());
        let described = eks
            .describe_pod_identity_association()
            .cluster_name(PILOT)
            .association_id(first.association_id().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            described.association().unwrap().role_arn(),
            Some(role_arn(APP_ROLE).as_str())
        );
    });
}

#[test]
fn the_agent_and_associations_are_created_once_and_adopted_by_the_next_run() {
    let world = World::new();
    cluster(&world, PILOT);
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(&dir, &["shop/shop-app=shop-app"]);
    world
        .test()
        .args(["plan", "--target", "ap-southeast-1"])
        .playbook(&playbook)
        .run()
        .success()
        .stdout_contains("install eks-pod-identity-agent")
        .stdout_contains("create: role `shop-app`");
    world
        .rebuild_with(&playbook)
        .success()
        .stderr_contains("created eks-pod-identity-association a-");
    let identities = world.proxy().pod_identities();
    assert_eq!(
        identities.addon_status(DR_REGION, PILOT, AGENT).as_deref(),
        Some("ACTIVE")
    );
    let associations = identities.associations(DR_REGION, PILOT);
    assert_eq!(associations.len(), 1, "{associations:?}");
    assert_eq!(associations[0].role_arn, role_arn(APP_ROLE));
    // Tagged with the run.
    assert!(
        associations[0].tags.get("rebuild:run-id").is_some(),
        "{:?}",
        associations[0].tags
    );
    let status = world.status();
    let outputs = &step(&status, "pod-identity")["outputs"];
    assert_eq!(outputs["cluster_name"], PILOT);
    assert_eq!(
        outputs["associations"][0]["association_id"],
        associations[0].id.as_str()
    );
    assert_eq!(
        outputs["associations"][0]["association_arn"],
        associations[0].arn.as_str()
    );

    // The next run (a second rebuild into the same pilot light) adopts both.
    world.proxy().reset_counts();
    world
        .test()
        .args(["plan", "--target", "ap-southeast-1"])
        .playbook(&playbook)
        .run()
        .success()
        .stdout_contains("adopt eks-pod-identity-agent (ACTIVE)")
        .stdout_contains(&format!("adopt association `{}`", associations[0].id));
    world
        .rebuild_with(&playbook)
        .success()
        .stderr_contains("adopted eks-addon")
        .stderr_contains(&format!(
            "adopted eks-pod-identity-association {}",
            associations[0].id
        ));
    assert_eq!(
        world
            .proxy()
            .count(&format!("POST /clusters/{PILOT}/addons")),
        0
    );
    assert_eq!(
        world
            .proxy()
            .count(&format!("POST /clusters/{PILOT}/pod-identity-associations")),
        0
    );
    assert_eq!(identities.associations(DR_REGION, PILOT).len(), 1);
}

#[test]
fn a_kill_after_the_agent_resumes_and_adopts_it() {
    let world = World::new();
    world.rebuild_killed_at("pod-identity/after-addon");
    world.resume_to_completion();
    let status = world.status();
    let cluster = step(&status, "cluster")["outputs"]["cluster_name"]
        .as_str()
        .unwrap()
        .to_string();
    let identities = world.proxy().pod_identities();
    assert_eq!(
        identities
            .addon_status(DR_REGION, &cluster, AGENT)
            .as_deref(),
        Some("ACTIVE")
    );
    // The default playbook's association, once.
    let associations = identities.associations(DR_REGION, &cluster);
    assert_eq!(associations.len(), 1, "{associations:?}");
    assert_eq!(
        (
            associations[0].namespace.as_str(),
            associations[0].service_account.as_str()
        ),
        ("shop", "shop-app")
    );
    let addon_creates = world
        .proxy()
        .count(&format!("POST /clusters/{cluster}/addons"));
    assert_eq!(addon_creates, 1, "the add-on is adopted, not made twice");
}

#[test]
fn a_service_account_bound_to_another_role_is_refused_with_what_to_do() {
    let world = World::new();
    cluster(&world, PILOT);
    role(&world, "legacy", POD_IDENTITY_TRUST);
    let id = block_on(async {
        let eks = eks_client(world.endpoint(), DR_REGION).await;
        let made = eks
            .create_pod_identity_association()
            .cluster_name(PILOT)
            .namespace("shop")
            .service_account("shop-app")
            .role_arn(role_arn("legacy"))
            .send()
            .await
            .unwrap();
        made.association()
            .unwrap()
            .association_id()
            .unwrap()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(&dir, &["shop/shop-app=shop-app"]);
    let expected = format!(
        "service account `shop/shop-app` in EKS cluster `{PILOT}` is bound to IAM role `legacy` (Pod Identity association `{id}`), not `shop-app`"
    );
    // The plan sees it (exit 4) ...
    world
        .rebuild_with(&playbook)
        .code(4)
        .output_contains(&expected)
        .output_contains(&format!(
            "aws eks delete-pod-identity-association --cluster-name {PILOT} --association-id {id}"
        ));
    assert_eq!(
        world
            .proxy()
            .pod_identities()
            .associations(DR_REGION, PILOT)
            .len(),
        1
    );
}

#[test]
fn a_role_pod_identity_cannot_assume_stops_the_plan_before_anything_is_made() {
    let world = World::new();
    cluster(&world, PILOT);
    // Production's IRSA role: it trusts the old cluster's OIDC provider only.
    role(
        &world,
        "irsa-app",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-southeast-2.amazonaws.com/id/ABC"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#,
    );
    // Pod Identity without `sts:TagSession`.
    role(
        &world,
        "untagged",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(
        &dir,
        &[
            "shop/shop-app=irsa-app",
            "shop/worker=untagged",
            "shop/gone=missing-role",
        ],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .output_contains("IAM role `irsa-app` (a Pod Identity role) does not let `pods.eks.amazonaws.com` perform sts:AssumeRole and sts:TagSession on it; add it to the role's trust policy (`Principal: {Service: pods.eks.amazonaws.com}`, `Action: [sts:AssumeRole, sts:TagSession]`)")
        .output_contains("IAM role `untagged` (a Pod Identity role) does not let `pods.eks.amazonaws.com` perform sts:TagSession on it")
        .output_contains("IAM role `missing-role` does not exist");
    assert!(
        world.proxy().mutating_operations().is_empty(),
        "nothing was made: {:?}",
        world.proxy().mutating_operations()
    );
}

#[test]
fn an_agent_that_fails_to_install_says_why() {
    let world = World::new();
    cluster(&world, PILOT);
    world
        .proxy()
        .pod_identities()
        .fail_addons(Some(AddonFailure {
        status: "CREATE_FAILED".into(),
        code: "ConfigurationConflict".into(),
        message:
            "Conflicts found when trying to apply. Will not continue due to resolve conflicts mode."
                .into(),
    }));
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(&dir, &["shop/shop-app=shop-app"]);
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains(&format!("`{PILOT}/{AGENT}` is `CREATE_FAILED`: ConfigurationConflict: Conflicts found when trying to apply."))
        .stderr_contains(&format!("aws eks delete-addon --cluster-name {PILOT} --addon-name {AGENT}"));
    let status = world.status();
    assert_eq!(step(&status, "pod-identity")["state"], "failed");
    assert!(
        world
            .proxy()
            .pod_identities()
            .associations(DR_REGION, PILOT)
            .is_empty(),
        "no association is made for an agent that does not run"
    );
}
