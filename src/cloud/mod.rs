//! Cloud client construction, and nothing else. One shared SDK configuration (standard
//! credential chain, profiles, SSO, `AWS_ENDPOINT_URL`) is loaded once; clients are made
//! per region on demand and cached. Steps get clients from here through their context.

pub mod error;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;

pub use error::{CloudError, CloudResultExt};

/// Clients for every service and region a run uses.
#[derive(Debug)]
pub struct Cloud {
    base: SdkConfig,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    rds: Mutex<HashMap<String, aws_sdk_rds::Client>>,
}

impl Cloud {
    /// Load the shared configuration from the environment (credentials, profile, endpoint).
    pub async fn from_env() -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Self::from_config(base)
    }

    /// Use a given configuration.
    pub fn from_config(base: SdkConfig) -> Self {
        Self {
            base,
            ec2: Mutex::new(HashMap::new()),
            rds: Mutex::new(HashMap::new()),
        }
    }

    /// An EC2 client for `region`.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut cache = self
            .ec2
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_ec2::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .build();
                aws_sdk_ec2::Client::from_conf(config)
            })
            .clone()
    }

    /// An RDS client for `region`.
    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        let mut cache = self
            .rds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_rds::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .build();
                aws_sdk_rds::Client::from_conf(config)
            })
            .clone()
    }
}
