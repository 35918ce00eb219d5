//! The whole testbed for the default playbook, end to end: a seeded moto (AWS), the
//! production's repositories in git (served by `git daemon`) behind the GitHub REST
//! stand-in, a real kube-apiserver (with the kubelet and load balancer stand-ins), the
//! target region's ECR holding the release's images, the public DNS zone in Route 53 (and
//! its private twin, which must stay untouched), the public name's certificate (signed by
//! a test CA, imported into ACM in the target region, and served by the load balancer
//! stand-in on the Service's HTTPS port), and the listener that stands in for the load
//! balancer in front of the application.

use std::path::Path;

use super::aws_access::pod_identity_access;
use super::git::{GitDaemon, GitRepos, Repo};
use super::github::GitHub;
use super::kube::{EksAuthenticator, KubeTestbed, PodChecks, ServedCertificate};
use super::playbooks::default_playbook;
use super::reach::database_reach;
use super::route53;
use super::seed::{block_on, push_images, sdk_config, seed_zone};
use super::test::{Outcome, Test};
use super::tls::{TestCa, free_port, import_into_acm};
use super::world::{TARGET, World};

/// The GitHub token the stand-in requires (never printed, never journaled).
pub const GITHUB_TOKEN: &str = "ghp_StackT0kenThatMustNeverBePrinted0042";
pub const CONFIG_REPO: &str = "example-shop/shop-deploy";
pub const APP_REPO: &str = "example-shop/shop";
/// The application's release: its tag is the image tag.
pub const RELEASE: &str = "v2.3.0";
/// The config repository's release.
pub const CONFIG_RELEASE: &str = "v5.0.1";
pub const SOURCE_REGISTRY: &str = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com";
pub const TARGET_REGISTRY: &str = "123456789012.dkr.ecr.ap-southeast-1.amazonaws.com";
pub const ZONE: &str = "example-shop.com.";
pub const PUBLIC_HOST: &str = "shop.example-shop.com.";
/// Where DNS points before the rebuild: the lost region's load balancer.
pub const OLD_TARGET: &str = "shop-web-1234.ap-southeast-2.elb.amazonaws.com";

pub struct Stack {
    pub world: World,
    pub repos: GitRepos,
    pub daemon: GitDaemon,
    pub github: GitHub,
    pub config: Repo,
    pub app: Repo,
    /// The config repository's released commit.
    pub config_commit: String,
    /// The application's released commit.
    pub app_commit: String,
    pub kube: KubeTestbed,
    /// The Service's HTTP port (`public_port`) and HTTPS port (`public_tls_port`).
    pub http_port: u16,
    pub https_port: u16,
    /// The CA that signed the public name's certificate (`tls_ca_file`).
    pub ca: TestCa,
    /// The public name's certificate in ACM, in the target region.
    pub certificate_arn: String,
    pub zone_id: String,
}

/// The shipped `templates/shop`, as the config repository's `k8s/` folder holds it, with a
/// marker of the release in the ConfigMap.
fn config_files(release: &str) -> Vec<(String, String)> {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/shop");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&templates)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut text = std::fs::read_to_string(&path).unwrap();
            if name == "01-config.yaml" {
                text = text.replace(
                    "  DB_NAME: shop\n",
                    &format!("  DB_NAME: shop\n  CONFIG_RELEASE: \"{release}\"\n"),
                );
                assert!(text.contains("CONFIG_RELEASE"), "templates changed: {text}");
            }
            (format!("k8s/{name}"), text)
        })
        .collect();
    files.sort();
    files
}

impl Stack {
    /// The testbed with the tool's Kubernetes connection redirected to the API server by
    /// `connect_kubeconfig` (a static admin token).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// The testbed as EKS is: `DescribeCluster` reports the API server's endpoint and CA, so
    /// the tool's generated kubeconfig and EKS tokens are what the deploy uses, and the API
    /// server lets in only the principals EKS would (the cluster's creator, admin access
    /// entries; see [`EksAuthenticator`]).
    pub fn start_with_eks_authentication() -> Self {
        Self::start_with(true)
    }

    fn start_with(eks_authentication: bool) -> Self {
        let world = World::new();
        let repos = GitRepos::new();
        let config = repos.create(CONFIG_REPO);
        let config_commit =
            config.commit_files(&config_files(CONFIG_RELEASE), "the shop's manifests");
        config.annotated_tag(CONFIG_RELEASE, &config_commit);
        let app = repos.create(APP_REPO);
        let app_commit = app.commit("VERSION", "2.3.0\n");
        app.annotated_tag(RELEASE, &app_commit);

        let daemon = GitDaemon::start(&repos.root());
        let github = GitHub::start(&repos.root(), &daemon.url);
        github.require_token(Some(GITHUB_TOKEN));
        github.set_latest_release(CONFIG_REPO, Some(CONFIG_RELEASE));
        github.set_latest_release(APP_REPO, Some(RELEASE));

        let kube = if eks_authentication {
            let access = world.proxy().cluster_access();
            let kube = KubeTestbed::start_authenticating(EksAuthenticator::start(
                &world.moto.endpoint,
                access.clone(),
            ));
            access.serve_at(kube.served_at());
            kube
        } else {
            KubeTestbed::start()
        };
        kube.set_pod_checks(Stack::strict_pod_checks(&world));
        let ca = TestCa::new();
        let certificate = ca.server_certificate(&[PUBLIC_HOST.trim_end_matches('.')]);
        let certificate_arn = import_into_acm(&world.moto.endpoint, TARGET, &certificate);
        kube.configure_load_balancers(|settings| {
            let mut chain = certificate.certificate.clone();
            chain.extend_from_slice(&certificate.chain);
            let served = ServedCertificate {
                chain,
                key: certificate.key.clone(),
            };
            settings
                .certificates
                .insert(certificate_arn.clone(), served);
        });
        push_images(
            &world.moto.endpoint,
            &["shop/api", "shop/worker", "shop/web"],
            RELEASE,
        );
        // Split-horizon DNS: a private twin of the zone, listed first, that the cutover must
        // leave alone.
        let private = route53::create_zone(&world.moto.endpoint, ZONE, true);
        let internal = route53::simple(PUBLIC_HOST, "CNAME", 300, &["shop.internal.example"]);
        route53::put(&world.moto.endpoint, &private, vec![internal]);
        let zone_id = seed_zone(&world.moto.endpoint, ZONE, PUBLIC_HOST, OLD_TARGET);
        Self {
            world,
            repos,
            daemon,
            github,
            config,
            app,
            config_commit,
            app_commit,
            kube,
            http_port: free_port(),
            https_port: free_port(),
            ca,
            certificate_arn,
            zone_id,
        }
    }

    /// What the kubelet stand-in checks in every stack unless a test says otherwise, as a
    /// real cluster would: Pods start only with every ConfigMap and Secret they reference,
    /// `optional` ones included (so a template that would run without its credentials
    /// fails), reach the database only when moto's security groups let the nodes in, and
    /// get AWS credentials (when they call AWS) only through an EKS Pod Identity
    /// association whose role trusts Pod Identity, with the agent add-on `ACTIVE`.
    pub fn strict_pod_checks(world: &World) -> PodChecks {
        PodChecks {
            strict_references: true,
            network: Some(database_reach(
                &world.moto.endpoint,
                world.proxy().cluster_networks(),
                TARGET,
            )),
            aws_access: Some(pod_identity_access(
                &world.moto.endpoint,
                world.proxy().pod_identities(),
                TARGET,
            )),
        }
    }

    /// Inputs that point the default playbook at this testbed (with EKS authentication,
    /// no `connect_kubeconfig`: the cluster step's own kubeconfig reaches the API server).
    pub fn inputs(&self) -> Vec<String> {
        let connect = match self.kube.authenticator() {
            Some(_) => None,
            None => Some(format!(
                "connect_kubeconfig={}",
                self.kube.kubeconfig.display()
            )),
        };
        connect
            .into_iter()
            .chain([
                format!("github_api={}", self.github.url),
                format!("public_port={}", self.http_port),
                format!("public_tls_port={}", self.https_port),
                format!("tls_certificate_arn={}", self.certificate_arn),
                format!("tls_ca_file={}", self.ca.ca_file.display()),
                format!(
                    "resolve_hosts_file={}",
                    self.kube.load_balancer_hosts_file().display()
                ),
            ])
            .collect()
    }

    /// `ARGS --input ...` for this testbed (`--playbook` is the shipped default).
    pub fn args(&self, args: &[&str]) -> Vec<String> {
        self.args_with(args, &self.inputs())
    }

    /// `ARGS --playbook DEFAULT --input INPUT...`.
    pub fn args_with(&self, args: &[&str], inputs: &[String]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.push("--playbook".into());
        all.push(default_playbook().display().to_string());
        for input in inputs {
            all.push("--input".into());
            all.push(input.clone());
        }
        all
    }

    /// The binary with the testbed's environment (the GitHub token included).
    pub fn test(&self) -> Test {
        self.world.test().env("GITHUB_TOKEN", GITHUB_TOKEN)
    }

    /// `rebuild --target ap-southeast-1 --yes` with the default playbook and this
    /// testbed's inputs, still to be run.
    pub fn rebuild_test(&self) -> Test {
        self.test().args(self.args(&["--target", TARGET, "--yes"]))
    }

    /// [`Stack::rebuild_test`], run.
    pub fn rebuild(&self) -> Outcome {
        self.rebuild_test().run()
    }

    /// `rebuild resume --yes`.
    pub fn resume(&self) -> Outcome {
        self.test().args(["resume", "--yes"]).run()
    }

    /// A Deployment of the `shop` namespace (`null` when there is none).
    pub fn deployment(&self, name: &str) -> serde_json::Value {
        self.kube
            .get_json(&format!("/apis/apps/v1/namespaces/shop/deployments/{name}"))
            .unwrap_or(serde_json::Value::Null)
    }

    /// The public record's type and values.
    pub fn public_record(&self) -> (String, Vec<String>) {
        block_on(async {
            let route53 = aws_sdk_route53::Client::new(
                &sdk_config(&self.world.moto.endpoint, "us-east-1").await,
            );
            let sets = route53
                .list_resource_record_sets()
                .hosted_zone_id(&self.zone_id)
                .send()
                .await
                .unwrap();
            sets.resource_record_sets()
                .iter()
                .find(|set| {
                    set.name() == PUBLIC_HOST && matches!(set.r#type().as_str(), "A" | "CNAME")
                })
                .map(|set| {
                    (
                        set.r#type().as_str().to_string(),
                        set.resource_records()
                            .iter()
                            .map(|record| record.value().to_string())
                            .collect(),
                    )
                })
                .unwrap_or_default()
        })
    }
}
