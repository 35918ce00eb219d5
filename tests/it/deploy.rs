//! `k8s.apply` against a real kube-apiserver (built from Debian's packages, see
//! `.ci/setup-kubernetes`) with ECR in moto: the shipped `templates/shop` application
//! deployed wave by wave with images rewritten to the target registry and checked there;
//! a missing image refused in the plan; a rollout that never becomes ready failing after
//! its timeout with the Deployment's conditions; resumes that re-apply no finished wave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::kube::{KubeTestbed, KubeletMode};
use base64::Engine;

use crate::support::seed::{block_on, push_images, sdk_config};
use crate::support::stack::{SOURCE_REGISTRY, TARGET_REGISTRY};
use crate::support::world::{World, step};

fn playbook(
    dir: &Path,
    kubeconfig: &Path,
    migrate_timeout: &str,
    backend_timeout: &str,
) -> PathBuf {
    let text = format!(
        r#"name: deploy
source_region: ap-southeast-2
default_target: ap-southeast-1
inputs:
  image_tag: v1.4.2
steps:
  - id: deploy
    kind: k8s.apply
    timeout: 5m
    retry: 1
    with:
      kubeconfig: {kubeconfig}
      sources: [templates/shop]
      images:
        - {{from: {SOURCE_REGISTRY}, to: {TARGET_REGISTRY}}}
      values:
        registry: {SOURCE_REGISTRY}
        image_tag: ${{inputs.image_tag}}
        db_endpoint: database-r1.abc.ap-southeast-1.rds.amazonaws.com
        db_port: 5432
        public_host: shop.example.com
        tls_certificate_arn: arn:aws:acm:ap-southeast-1:123456789012:certificate/deploy-test
      secrets:
        - {{name: shop-db, namespace: shop, data: {{DB_USER: app, DB_PASSWORD: deploy-test-password}}}}
      waves:
        - {{name: config, paths: [00-namespace.yaml, 01-config.yaml]}}
        - {{name: migrate, paths: [10-migrate.yaml], timeout: {migrate_timeout}}}
        - {{name: backend, paths: [20-api.yaml, 21-worker.yaml], timeout: {backend_timeout}}}
        - {{name: frontend, paths: [30-web.yaml]}}
"#,
        kubeconfig = kubeconfig.display()
    );
    let path = dir.join("deploy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn deployment(kube: &KubeTestbed, name: &str) -> Value {
    kube.get_json(&format!("/apis/apps/v1/namespaces/shop/deployments/{name}"))
        .unwrap_or(Value::Null)
}

#[test]
fn the_application_is_deployed_wave_by_wave_with_images_from_the_target_registry() {
    let world = World::new();
    let kube = KubeTestbed::start();
    push_images(
        &world.moto.endpoint,
        &["shop/api", "shop/worker", "shop/web"],
        "v1.4.2",
    );
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(dir.path(), &kube.kubeconfig, "2m", "2m");
    let output = world.rebuild_with(&playbook);
    assert_eq!(output.exit_code(), 0, "{}\n{}", output.text(), kube.logs());

    for (name, replicas) in [("shop-api", 2), ("shop-worker", 1), ("shop-web", 2)] {
        let live = deployment(&kube, name);
        assert_eq!(
            live["status"]["availableReplicas"], replicas,
            "{name}: {live}"
        );
        let image = live["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap();
        assert!(image.starts_with(TARGET_REGISTRY), "{name} pulls {image}");
        assert!(image.ends_with(":v1.4.2"), "{image}");
    }
    let config = kube
        .get_json("/api/v1/namespaces/shop/configmaps/shop-config")
        .unwrap();
    assert_eq!(
        config["data"]["DB_HOST"],
        "database-r1.abc.ap-southeast-1.rds.amazonaws.com"
    );
    assert_eq!(config["data"]["AWS_REGION"], "ap-southeast-1");
    let job = kube
        .get_json("/apis/batch/v1/namespaces/shop/jobs/shop-migrate-v1-4-2")
        .unwrap();
    assert_eq!(job["status"]["succeeded"], 1);

    // The credentials the templates require were made before the first wave, and their
    // values never show (review B3).
    let secret = kube
        .get_json("/api/v1/namespaces/shop/secrets/shop-db")
        .unwrap();
    let password = secret["data"]["DB_PASSWORD"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(password)
            .unwrap(),
        b"deploy-test-password"
    );
    output
        .stderr_contains("secret `shop/shop-db`: DB_PASSWORD, DB_USER")
        .never_shows("deploy-test-password");
    world.assert_never_journaled("deploy-test-password");

    let status = world.status();
    let deploy = step(&status, "deploy");
    assert_eq!(deploy["pinned"]["waves_applied"], 4);
    assert_eq!(deploy["outputs"]["objects"], 9);
}

#[test]
fn credentials_come_from_a_secret_in_the_target_region_and_a_missing_one_is_a_plan_problem() {
    let world = World::new();
    let kube = KubeTestbed::start();
    push_images(
        &world.moto.endpoint,
        &["shop/api", "shop/worker", "shop/web"],
        "v1.4.2",
    );
    let dir = tempfile::tempdir().unwrap();
    let from_aws = "        - {name: shop-db, namespace: shop, from_aws_secret: shop/prod/db, keys: {DB_USER: username, DB_PASSWORD: password}}";
    let text = std::fs::read_to_string(playbook(dir.path(), &kube.kubeconfig, "2m", "2m"))
        .unwrap()
        .replace(
            "        - {name: shop-db, namespace: shop, data: {DB_USER: app, DB_PASSWORD: deploy-test-password}}",
            from_aws,
        );
    assert!(text.contains(from_aws));
    let playbook = dir.path().join("from-aws.yaml");
    std::fs::write(&playbook, text).unwrap();

    // Only in the source region, as a secret that was never replicated: refused up front.
    seed_secret(&world, "ap-southeast-2", "shop/prod/db");
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("Secrets Manager has no secret `shop/prod/db` in `ap-southeast-1`")
        .stderr_contains("replicate the secret to the target region");
    assert!(kube.get_json("/api/v1/namespaces/shop").is_none());

    // Replicated to the target region: its fields become the Secret's keys.
    seed_secret(&world, "ap-southeast-1", "shop/prod/db");
    let output = world.rebuild_with(&playbook);
    assert_eq!(output.exit_code(), 0, "{}\n{}", output.text(), kube.logs());
    output.never_shows("replicated-password");
    world.assert_never_journaled("replicated-password");
    let secret = kube
        .get_json("/api/v1/namespaces/shop/secrets/shop-db")
        .unwrap();
    let decode = |key: &str| {
        let text = secret["data"][key].as_str().unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    };
    assert_eq!(decode("DB_USER"), b"app");
    assert_eq!(decode("DB_PASSWORD"), b"replicated-password");
}

/// A Secrets Manager secret `name` in `region` holding the database's credentials.
fn seed_secret(world: &World, region: &str, name: &str) {
    block_on(async {
        let client =
            aws_sdk_secretsmanager::Client::new(&sdk_config(&world.moto.endpoint, region).await);
        client
            .create_secret()
            .name(name)
            .secret_string(r#"{"username":"app","password":"replicated-password"}"#)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn a_missing_image_in_the_target_registry_is_a_plan_problem_and_nothing_is_applied() {
    let world = World::new();
    let kube = KubeTestbed::start();
    push_images(&world.moto.endpoint, &["shop/api", "shop/worker"], "v1.4.2");
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(dir.path(), &kube.kubeconfig, "2m", "2m");
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains(&format!("1 image(s) missing from the registry in `ap-southeast-1`: {TARGET_REGISTRY}/shop/web:v1.4.2"));
    assert!(
        kube.get_json("/api/v1/namespaces/shop").is_none(),
        "nothing was applied"
    );
}

#[test]
fn a_rollout_that_never_becomes_ready_fails_with_its_conditions_and_resume_retries_only_that_wave()
{
    let world = World::new();
    let kube = KubeTestbed::start_with(KubeletMode::NeverReady);
    push_images(
        &world.moto.endpoint,
        &["shop/api", "shop/worker", "shop/web"],
        "v1.4.2",
    );
    let dir = tempfile::tempdir().unwrap();
    // The migration Job must finish first: let the stand-in kubelet complete it, then stall
    // the backend's pods. The backend wave's timeout is long enough for the deployment
    // controller to have written the conditions on a loaded machine.
    let playbook = playbook(dir.path(), &kube.kubeconfig, "2m", "10s");
    kube.set_kubelet_mode(KubeletMode::Ready);
    world
        .rebuild_test(&playbook)
        .failpoint("deploy/wave-migrate")
        .run()
        .killed("deploy/wave-migrate");
    kube.set_kubelet_mode(KubeletMode::NeverReady);

    let output = world.run(&["resume", "--yes"]);
    output
        .code(1)
        .stderr_contains("wave `backend` did not roll out within 10s")
        .stderr_contains("Deployment/shop-api: 0/2 ready")
        .stderr_contains("Available=False");
    assert!(
        output
            .stderr()
            .contains("wave `config` was applied before; skipped")
            || output.text().contains("skipped"),
        "{}",
        output.text()
    );
    let status = world.status();
    assert_eq!(step(&status, "deploy")["pinned"]["waves_applied"], 2);

    // Fixed: the resume applies from the backend wave on. (The pods become ready first, so
    // the wave's 10 s cover only the re-apply, however slow the machine.)
    kube.set_kubelet_mode(KubeletMode::Ready);
    for name in ["shop-api", "shop-worker"] {
        kube.wait_for(
            &format!("{name} available"),
            Duration::from_secs(120),
            || {
                let live = deployment(&kube, name);
                (live["status"]["availableReplicas"] == live["spec"]["replicas"]).then_some(())
            },
        );
    }
    let namespace_version =
        kube.get_json("/api/v1/namespaces/shop").unwrap()["metadata"]["resourceVersion"].clone();
    let output = world.run(&["resume", "--yes"]);
    output.success();
    for wave in ["config", "migrate"] {
        output.stderr_contains(&format!("wave `{wave}` was applied before; skipped"));
    }
    assert!(
        !output.stderr().contains("wave `config`: applying"),
        "{}",
        output.text()
    );
    assert_eq!(
        kube.get_json("/api/v1/namespaces/shop").unwrap()["metadata"]["resourceVersion"],
        namespace_version
    );
    assert_eq!(
        deployment(&kube, "shop-web")["status"]["availableReplicas"],
        2
    );
}

#[test]
fn images_are_checked_in_the_registry_of_the_account_their_host_names() {
    let world = World::new();
    let kube = KubeTestbed::start();
    // The caller's own registry has every image; the manifests pull from a shared tools
    // account's registry, which does not (review D18).
    push_images(
        &world.moto.endpoint,
        &["shop/api", "shop/worker", "shop/web"],
        "v1.4.2",
    );
    let tools = "999999999999.dkr.ecr.ap-southeast-1.amazonaws.com";
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(playbook(dir.path(), &kube.kubeconfig, "2m", "2m"))
        .unwrap()
        .replace(&format!("to: {TARGET_REGISTRY}"), &format!("to: {tools}"));
    assert!(text.contains(tools));
    let playbook = dir.path().join("tools.yaml");
    std::fs::write(&playbook, text).unwrap();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains(&format!(
            "missing from the registry in `ap-southeast-1`: {tools}/shop/api:v1.4.2"
        ));
    assert!(kube.get_json("/api/v1/namespaces/shop").is_none());
}

#[test]
fn a_manifest_using_an_api_the_cluster_version_no_longer_serves_is_a_plan_problem() {
    let world = World::new();
    let kube = KubeTestbed::start();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    // Served by the 1.20 testbed, long gone from the EKS versions a rebuild gets (D16).
    std::fs::write(
        manifests.join("pdb.yaml"),
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: shop-api\n  namespace: default\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: shop-api}\n",
    )
    .unwrap();
    let playbook = dir.path().join("playbook.yaml");
    let write = |version: &str| {
        std::fs::write(
            &playbook,
            format!(
                "name: apis\nsource_region: ap-southeast-2\ndefault_target: ap-southeast-1\nsteps:\n  - id: deploy\n    kind: k8s.apply\n    with:\n      kubeconfig: {}\n      kubernetes_version: \"{version}\"\n      sources: [{}]\n      verify_images: false\n      waves:\n        - {{name: policies, paths: [pdb.yaml]}}\n",
                kube.kubeconfig.display(),
                manifests.display()
            ),
        )
        .unwrap();
    };
    write("1.35");
    world
        .rebuild_with(&playbook)
        .code(4)
        .output_contains("PodDisruptionBudget/shop-api uses `policy/v1beta1`, which Kubernetes 1.35 no longer serves (removed in 1.25); use policy/v1");
    assert!(
        kube.get_json("/apis/policy/v1beta1/namespaces/default/poddisruptionbudgets/shop-api")
            .is_none(),
        "nothing was applied"
    );
    // A cluster that still serves it (the testbed's own version) takes it.
    write("1.20");
    world.rebuild_with(&playbook).success();
}
