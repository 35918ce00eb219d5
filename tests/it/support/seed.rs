//! Seeds a "production" stack in moto through the real AWS SDK clients.
//!
//! # What moto 5.2.5 returns for cross-region snapshot copies
//!
//! `copy_db_snapshot` called on the ap-southeast-1 client with the ap-southeast-2 source ARN
//! (the Rust SDK has no `source_region` parameter, unlike boto3; moto needs none) returns,
//! and `describe_db_snapshots` in ap-southeast-1 then lists, for `prod-db-snap-1-copy`:
//! - `DBSnapshotIdentifier` = `prod-db-snap-1-copy`
//! - `DBSnapshotArn` = `arn:aws:rds:ap-southeast-1:123456789012:snapshot:prod-db-snap-1-copy`
//! - `DBInstanceIdentifier` = `prod-db` (the source instance's id, although no instance
//!   exists in ap-southeast-1)
//! - `SnapshotCreateTime` = the time of the copy (later than every source snapshot's)
//! - `OriginalSnapshotCreateTime` = the source snapshot's `SnapshotCreateTime` (exactly)
//! - `SnapshotType` = `manual`, `Status` = `available` at once, `PercentProgress` absent
//! - `InstanceCreateTime`, `Engine` (`postgres`), `EngineVersion` (the seed's
//!   [`CURRENT_POSTGRES`]; moto's default, 9.3.3, is one RDS no longer restores),
//!   `AllocatedStorage` (20), `MasterUsername` (`app`), `Port` (5432), `DbiResourceId` copied
//!   from the source; `SourceRegion`, `SourceDBSnapshotIdentifier` absent; `TagList` empty.
//!
//! The source snapshots themselves have `OriginalSnapshotCreateTime == SnapshotCreateTime`.
//! `describe_db_snapshots(db_instance_identifier = "prod-db")` in ap-southeast-1 finds both
//! copies (moto filters on the copied `DBInstanceIdentifier`).
//!
//! `copy_db_cluster_snapshot` (ap-southeast-1 client, source cluster-snapshot ARN) returns for
//! `prod-aurora-snap-1-copy`:
//! - `DBClusterSnapshotArn` = `arn:aws:rds:ap-southeast-1:123456789012:cluster-snapshot:prod-aurora-snap-1-copy`
//! - `DBClusterIdentifier` = `prod-aurora`, `SnapshotType` = `manual`, `Status` = `available`,
//!   `PercentProgress` = 100, `Engine` = `aurora-postgresql`, `EngineVersion` = the seed's
//!   (moto's default is `12.7`)
//! - `SnapshotCreateTime` = the time of the copy; there is no `OriginalSnapshotCreateTime`
//!   field for cluster snapshots (neither in the API nor in moto), so the source's create
//!   time is only visible in the source region.
//! - `ClusterCreateTime` is the source cluster's.
//!
//! Automated snapshots: `create_db_instance` makes moto add an automated snapshot
//! `rds:prod-db-YYYY-MM-DD-HH-MM` (`SnapshotType` = `automated`) in ap-southeast-2, a few ms
//! before `prod-db-snap-1`; `create_db_cluster` likewise adds `rds:prod-aurora-...` cluster
//! snapshot. So ap-southeast-2 lists 4 DB snapshots (filter `snapshot_type("manual")`);
//! ap-southeast-1 has only the two manual copies and no automated ones.
//!
//! Also: moto's `create_db_cluster` answer says `Status` = `creating`, but every
//! `describe_db_clusters` afterwards says `available`.

use std::future::Future;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::config::Credentials;
use aws_smithy_types::DateTime;

pub use super::strict::rds::CURRENT_POSTGRES;

/// The "production" region that is seeded.
pub const PROD_REGION: &str = "ap-southeast-2";
/// The region the stack is rebuilt in; it holds the cross-region snapshot copies.
pub const DR_REGION: &str = "ap-southeast-1";
/// The seeded database's master password (tests check it never leaks).
pub const PROD_DB_PASSWORD: &str = "prod-secret-pw";

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread tokio runtime")
        .block_on(future)
}

/// Shared SDK config: static `testing` credentials, explicit region, endpoint override.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// An RDS client talking to `endpoint` in `region`.
pub async fn rds_client(endpoint: &str, region: &str) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&sdk_config(endpoint, region).await)
}

/// An S3 client talking to `endpoint` in `region` (path-style addressing: the endpoint is
/// an address, not a name).
pub async fn s3_client(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config(endpoint, region).await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// An EC2 client talking to `endpoint` in `region`.
pub async fn ec2_client(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config(endpoint, region).await)
}

/// One seeded snapshot (a source or a copy).
#[derive(Debug, Clone)]
pub struct SeedSnapshot {
    /// Snapshot identifier.
    pub id: String,
    /// Snapshot ARN.
    pub arn: String,
    /// `SnapshotCreateTime` as moto reported it (for a copy: the copy time).
    pub create_time: DateTime,
    /// `OriginalSnapshotCreateTime` (for a copy: the source's create time; absent for
    /// cluster snapshots).
    pub original_create_time: Option<DateTime>,
}

/// What [`seed_production`] created.
#[derive(Debug, Clone)]
pub struct Seed {
    /// `prod-db`.
    pub instance_id: String,
    /// ARN of `prod-db` in ap-southeast-2.
    pub instance_arn: String,
    /// `prod-db-snap-1..3` in ap-southeast-2, oldest first.
    pub snapshots: Vec<SeedSnapshot>,
    /// `prod-db-snap-1-copy`, `prod-db-snap-2-copy` in ap-southeast-1 (snap-3 is not copied).
    pub copies: Vec<SeedSnapshot>,
}

/// What [`seed_aurora_production`] created.
#[derive(Debug, Clone)]
pub struct AuroraSeed {
    /// `prod-aurora`.
    pub cluster_id: String,
    /// ARN of `prod-aurora` in ap-southeast-2.
    pub cluster_arn: String,
    /// `prod-aurora-snap-1` in ap-southeast-2.
    pub snapshot: SeedSnapshot,
    /// `prod-aurora-snap-1-copy` in ap-southeast-1.
    pub copy: SeedSnapshot,
}

/// Seeds `prod-db` (postgres [`CURRENT_POSTGRES`]) with three manual snapshots in ap-southeast-2 and copies of
/// the first two in ap-southeast-1. Takes ~3.5 s (snapshot create times must differ).
pub fn seed_production(endpoint: &str) -> Seed {
    block_on(seed_production_async(endpoint))
}

/// The IAM roles production's EKS uses (IAM is global, so they survive the region).
pub const EKS_CLUSTER_ROLE: &str = "shop-eks-cluster";
/// The node role.
pub const EKS_NODE_ROLE: &str = "shop-eks-nodes";
/// The application's role, which its pods get through EKS Pod Identity.
pub const APP_ROLE: &str = "shop-app";
/// A trust policy that lets EKS Pod Identity give a role to pods of any cluster.
pub const POD_IDENTITY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// An EKS client for `region`.
pub async fn eks_client(endpoint: &str, region: &str) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::new(&sdk_config(endpoint, region).await)
}

/// Creates the EKS IAM roles and the application's Pod Identity role (global, so in
/// us-east-1's IAM endpoint).
pub async fn seed_iam_roles(endpoint: &str) {
    let iam = aws_sdk_iam::Client::new(&sdk_config(endpoint, "us-east-1").await);
    let trust = |service: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
        )
    };
    let roles: [(&str, String, &[&str]); 3] = [
        (
            EKS_CLUSTER_ROLE,
            trust("eks.amazonaws.com"),
            &["AmazonEKSClusterPolicy"],
        ),
        // The application's own permissions (an inline policy in production) do not
        // matter to the rebuild: only the trust does.
        (APP_ROLE, POD_IDENTITY_TRUST.to_string(), &[]),
        (
            EKS_NODE_ROLE,
            trust("ec2.amazonaws.com"),
            &[
                "AmazonEKSWorkerNodePolicy",
                "AmazonEC2ContainerRegistryReadOnly",
                "AmazonEKS_CNI_Policy",
            ],
        ),
    ];
    for (role, trust, policies) in roles {
        let created = iam
            .create_role()
            .role_name(role)
            .assume_role_policy_document(trust)
            .send()
            .await;
        // This moto is new and holds no role: a role that exists already was made by this
        // very call, whose first attempt the SDK retried (moto's first IAM call loads AWS's
        // managed policies and can be slow enough on a busy machine to be cut short).
        if let Err(error) = created {
            let code = aws_sdk_iam::error::ProvideErrorMetadata::code(&error);
            assert_eq!(
                code,
                Some("EntityAlreadyExists"),
                "create IAM role {role}: {error:?}"
            );
        }
        for policy in policies {
            iam.attach_role_policy()
                .role_name(role)
                .policy_arn(format!("arn:aws:iam::aws:policy/{policy}"))
                .send()
                .await
                .unwrap_or_else(|error| panic!("attach {policy} to {role}: {error:?}"));
        }
    }
}

/// Async form of [`seed_production`].
pub async fn seed_production_async(endpoint: &str) -> Seed {
    seed_iam_roles(endpoint).await;
    let prod = rds_client(endpoint, PROD_REGION).await;
    let dr = rds_client(endpoint, DR_REGION).await;
    let created = prod
        .create_db_instance()
        .db_instance_identifier("prod-db")
        .engine("postgres")
        .engine_version(CURRENT_POSTGRES)
        .db_instance_class("db.t3.medium")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password(PROD_DB_PASSWORD)
        .send()
        .await;
    let instance = match created {
        Ok(created) => created.db_instance.expect("created instance"),
        // The SDK retried a create whose first answer was lost (a loaded machine) after
        // moto had made the instance and its automated snapshot: it is there.
        Err(error) if already_made(&error) => prod
            .describe_db_instances()
            .db_instance_identifier("prod-db")
            .send()
            .await
            .expect("describe_db_instances prod-db")
            .db_instances
            .and_then(|mut instances| instances.pop())
            .expect("the instance a retried create made"),
        Err(error) => panic!("create_db_instance prod-db: {error:?}"),
    };
    let mut snapshots = Vec::new();
    for number in 1..=3 {
        if number > 1 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let snapshot = prod
            .create_db_snapshot()
            .db_instance_identifier("prod-db")
            .db_snapshot_identifier(format!("prod-db-snap-{number}"))
            .send()
            .await
            .unwrap_or_else(|error| panic!("create_db_snapshot prod-db-snap-{number}: {error:?}"))
            .db_snapshot
            .expect("created snapshot");
        snapshots.push(snapshot_of(&snapshot));
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut copies = Vec::new();
    for source in snapshots.iter().take(2) {
        let copy = dr
            .copy_db_snapshot()
            .source_db_snapshot_identifier(&source.arn)
            .target_db_snapshot_identifier(format!("{}-copy", source.id))
            .send()
            .await
            .unwrap_or_else(|error| panic!("copy_db_snapshot {}: {error:?}", source.id))
            .db_snapshot
            .expect("copied snapshot");
        copies.push(snapshot_of(&copy));
    }
    Seed {
        instance_id: instance
            .db_instance_identifier
            .unwrap_or_else(|| "prod-db".into()),
        instance_arn: instance.db_instance_arn.unwrap_or_default(),
        snapshots,
        copies,
    }
}

/// Whether a create failed only because an earlier attempt of it (retried by the SDK)
/// already made what it makes.
fn already_made<E: aws_sdk_rds::error::ProvideErrorMetadata>(error: &E) -> bool {
    matches!(
        error.code(),
        Some("DBInstanceAlreadyExists" | "DBSnapshotAlreadyExists")
    )
}

fn snapshot_of(snapshot: &aws_sdk_rds::types::DbSnapshot) -> SeedSnapshot {
    SeedSnapshot {
        id: snapshot
            .db_snapshot_identifier
            .clone()
            .expect("snapshot id"),
        arn: snapshot.db_snapshot_arn.clone().expect("snapshot arn"),
        create_time: snapshot.snapshot_create_time.expect("snapshot create time"),
        original_create_time: snapshot.original_snapshot_create_time,
    }
}

fn cluster_snapshot_of(snapshot: &aws_sdk_rds::types::DbClusterSnapshot) -> SeedSnapshot {
    SeedSnapshot {
        id: snapshot
            .db_cluster_snapshot_identifier
            .clone()
            .expect("cluster snapshot id"),
        arn: snapshot
            .db_cluster_snapshot_arn
            .clone()
            .expect("cluster snapshot arn"),
        create_time: snapshot
            .snapshot_create_time
            .expect("cluster snapshot create time"),
        original_create_time: None,
    }
}

/// Seeds Aurora PostgreSQL cluster `prod-aurora` with snapshot `prod-aurora-snap-1` in
/// ap-southeast-2 and its copy `prod-aurora-snap-1-copy` in ap-southeast-1.
pub fn seed_aurora_production(endpoint: &str) -> AuroraSeed {
    block_on(seed_aurora_production_async(endpoint))
}

/// Async form of [`seed_aurora_production`].
pub async fn seed_aurora_production_async(endpoint: &str) -> AuroraSeed {
    let prod = rds_client(endpoint, PROD_REGION).await;
    let dr = rds_client(endpoint, DR_REGION).await;
    let cluster = prod
        .create_db_cluster()
        .db_cluster_identifier("prod-aurora")
        .engine("aurora-postgresql")
        .engine_version(CURRENT_POSTGRES)
        .master_username("app")
        .master_user_password(PROD_DB_PASSWORD)
        .send()
        .await
        .expect("create_db_cluster prod-aurora")
        .db_cluster
        .expect("created cluster");
    let created = prod
        .create_db_cluster_snapshot()
        .db_cluster_identifier("prod-aurora")
        .db_cluster_snapshot_identifier("prod-aurora-snap-1")
        .send()
        .await
        .expect("create_db_cluster_snapshot prod-aurora-snap-1")
        .db_cluster_snapshot
        .expect("created cluster snapshot");
    let snapshot = cluster_snapshot_of(&created);
    std::thread::sleep(Duration::from_millis(1100));
    let copy = dr
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier(&snapshot.arn)
        .target_db_cluster_snapshot_identifier("prod-aurora-snap-1-copy")
        .send()
        .await
        .expect("copy_db_cluster_snapshot prod-aurora-snap-1")
        .db_cluster_snapshot
        .expect("copied cluster snapshot");
    AuroraSeed {
        cluster_id: cluster
            .db_cluster_identifier
            .unwrap_or_else(|| "prod-aurora".into()),
        cluster_arn: cluster.db_cluster_arn.unwrap_or_default(),
        snapshot,
        copy: cluster_snapshot_of(&copy),
    }
}

/// Images in the target region's ECR, as cross-region replication leaves them.
pub fn push_images(endpoint: &str, repositories: &[&str], tag: &str) {
    block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&sdk_config(endpoint, DR_REGION).await);
        for repository in repositories {
            let _ = ecr
                .create_repository()
                .repository_name(*repository)
                .send()
                .await;
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"}},"layers":[],"annotations":{{"repository":"{repository}","tag":"{tag}"}}}}"#
            );
            ecr.put_image()
                .repository_name(*repository)
                .image_manifest(manifest)
                .image_tag(tag)
                .send()
                .await
                .unwrap_or_else(|error| panic!("put the image {repository}:{tag}: {error:?}"));
        }
    });
}

/// A public hosted zone `zone` holding the CNAME `name` → `value` (pointing at the lost
/// region); the zone's id.
pub fn seed_zone(endpoint: &str, zone: &str, name: &str, value: &str) -> String {
    block_on(async {
        let route53 = aws_sdk_route53::Client::new(&sdk_config(endpoint, "us-east-1").await);
        let zone = route53
            .create_hosted_zone()
            .name(zone)
            .caller_reference("seed")
            .send()
            .await
            .expect("create the hosted zone");
        let id = zone
            .hosted_zone()
            .expect("the created zone")
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string();
        let set = aws_sdk_route53::types::ResourceRecordSet::builder()
            .name(name)
            .r#type(aws_sdk_route53::types::RrType::Cname)
            .ttl(300)
            .resource_records(
                aws_sdk_route53::types::ResourceRecord::builder()
                    .value(value)
                    .build()
                    .expect("a record"),
            )
            .build()
            .expect("a record set");
        route53
            .change_resource_record_sets()
            .hosted_zone_id(&id)
            .change_batch(
                aws_sdk_route53::types::ChangeBatch::builder()
                    .changes(
                        aws_sdk_route53::types::Change::builder()
                            .action(aws_sdk_route53::types::ChangeAction::Upsert)
                            .resource_record_set(set)
                            .build()
                            .expect("a change"),
                    )
                    .build()
                    .expect("a change batch"),
            )
            .send()
            .await
            .expect("create the record");
        id
    })
}

/// A second person's AWS credentials: a session of an IAM role (e.g. the on-call role),
/// made in moto with `AssumeRole`.
pub struct Colleague {
    /// The role's ARN (`arn:aws:iam::ACCOUNT:role/NAME`): what an access entry names.
    pub role_arn: String,
    pub access_key: String,
    pub secret: String,
    pub session_token: String,
}

/// Creates the IAM role `role` (trusting the account) and assumes it with the test's
/// static credentials: a colleague acting as that role.
pub fn colleague(endpoint: &str, role: &str) -> Colleague {
    block_on(async {
        let config = sdk_config(endpoint, "us-east-1").await;
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
        let created = aws_sdk_iam::Client::new(&config)
            .create_role()
            .role_name(role)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap_or_else(|error| panic!("create IAM role {role}: {error:?}"));
        let role_arn = created.role().map(|role| role.arn().to_string()).unwrap();
        let session = aws_sdk_sts::Client::new(&config)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("colleague")
            .send()
            .await
            .unwrap_or_else(|error| panic!("assume {role_arn}: {error:?}"));
        let credentials = session.credentials().unwrap();
        Colleague {
            role_arn,
            access_key: credentials.access_key_id().to_string(),
            secret: credentials.secret_access_key().to_string(),
            session_token: credentials.session_token().to_string(),
        }
    })
}

impl Colleague {
    /// `test` acting as this colleague instead of the harness's static credentials.
    pub fn acting(&self, test: super::test::Test) -> super::test::Test {
        test.env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_SESSION_TOKEN", &self.session_token)
    }
}

/// A VPC `10.OCTET.0.0/16` in `region` with one subnet `10.OCTET.1.0/24`, made in moto at
/// `endpoint` directly: (VPC id, subnet id).
pub async fn vpc_with_subnet(endpoint: &str, region: &str, octet: u8) -> (String, String) {
    let ec2 = ec2_client(endpoint, region).await;
    let vpc = ec2
        .create_vpc()
        .cidr_block(format!("10.{octet}.0.0/16"))
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block(format!("10.{octet}.1.0/24"))
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    (vpc, subnet)
}
