//! Integration-test support: a private moto server, a fault/latency proxy in front of it,
//! and seeding of a "production" stack through the real AWS SDK.
//!
//! Every integration test binary includes this with `mod support;`.
#![allow(dead_code, unused_imports)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod git;
pub mod github;
pub mod kube;
pub mod moto;
pub mod proxy;
pub mod seed;
pub mod stack;
pub mod world;

pub use moto::Moto;
pub use proxy::{Call, Fault, Proxy, is_mutating};
pub use seed::{
    AuroraSeed, DR_REGION, EKS_CLUSTER_ROLE, EKS_NODE_ROLE, PROD_DB_PASSWORD, PROD_REGION, Seed,
    SeedSnapshot, block_on, ec2_client, eks_client, rds_client, sdk_config, seed_aurora_production,
    seed_production,
};

/// A `Command` for the `rebuild` binary under test, talking to `endpoint` (moto or a proxy)
/// with static test credentials and no ambient AWS configuration.
pub fn rebuild_command(endpoint: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rebuild"));
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_REGION");
    cmd
}
