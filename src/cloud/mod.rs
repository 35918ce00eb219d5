//! Cloud client construction, and nothing else. One shared SDK configuration (standard
//! credential chain, profiles, SSO, `AWS_ENDPOINT_URL`) is loaded once; clients are made
//! per region on demand and cached. Steps get clients from here through their context.

pub mod eks_token;
pub mod error;
pub mod git_http;
pub mod github;
mod hosts;
pub mod kubernetes;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_types::SdkConfig;
use aws_types::region::Region;

pub use error::{CloudError, CloudResultExt};

/// Clients for every service and region a run uses.
#[derive(Debug)]
pub struct Cloud {
    base: SdkConfig,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    rds: Mutex<HashMap<String, aws_sdk_rds::Client>>,
    eks: Mutex<HashMap<String, aws_sdk_eks::Client>>,
    ecr: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
    route53: Mutex<Option<aws_sdk_route53::Client>>,
    iam: Mutex<Option<aws_sdk_iam::Client>>,
    /// Kubernetes and GitHub clients, the GitHub token, the git transport (`hosts.rs`).
    hosts: hosts::Hosts,
}

/// A client from the cache, made on first use.
fn cached<C: Clone>(
    cache: &Mutex<HashMap<String, C>>,
    region: &str,
    make: impl FnOnce() -> C,
) -> C {
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache.entry(region.to_string()).or_insert_with(make).clone()
}

impl Cloud {
    /// Load the shared configuration from the environment (credentials, profile, endpoint;
    /// the GitHub token in `GITHUB_TOKEN`).
    pub async fn from_env() -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Self::from_config(base).with_github_token(github::token_from_env())
    }

    /// Use a given configuration.
    pub fn from_config(base: SdkConfig) -> Self {
        Self {
            base,
            ec2: Mutex::default(),
            rds: Mutex::default(),
            eks: Mutex::default(),
            ecr: Mutex::default(),
            route53: Mutex::default(),
            iam: Mutex::default(),
            hosts: hosts::Hosts::new(git_http::install()),
        }
    }

    /// An EC2 client for `region`.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        cached(&self.ec2, region, || {
            let config = aws_sdk_ec2::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .build();
            aws_sdk_ec2::Client::from_conf(config)
        })
    }

    /// An RDS client for `region`.
    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        cached(&self.rds, region, || {
            let config = aws_sdk_rds::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .build();
            aws_sdk_rds::Client::from_conf(config)
        })
    }

    /// An EKS client for `region`.
    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        cached(&self.eks, region, || {
            let config = aws_sdk_eks::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .build();
            aws_sdk_eks::Client::from_conf(config)
        })
    }

    /// An ECR client for `region`.
    pub fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        cached(&self.ecr, region, || {
            let config = aws_sdk_ecr::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .build();
            aws_sdk_ecr::Client::from_conf(config)
        })
    }

    /// A Route 53 client (Route 53 is global; its endpoint lives in us-east-1).
    pub fn route53(&self) -> aws_sdk_route53::Client {
        let mut cache = self
            .route53
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get_or_insert_with(|| {
                let config = aws_sdk_route53::config::Builder::from(&self.base)
                    .region(Region::new("us-east-1"))
                    .build();
                aws_sdk_route53::Client::from_conf(config)
            })
            .clone()
    }

    /// An HTTP client for smoke checks; each request times out after `timeout`.
    pub fn http(&self, timeout: std::time::Duration) -> Result<reqwest::Client, CloudError> {
        reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("rebuild/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CloudError {
                operation: "http client".into(),
                resource: None,
                code: None,
                message: error.to_string(),
                status: None,
                retryable: false,
                missing_credentials: false,
            })
    }

    /// An IAM client (IAM is global; its endpoint lives in us-east-1).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        let mut cache = self
            .iam
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get_or_insert_with(|| {
                let config = aws_sdk_iam::config::Builder::from(&self.base)
                    .region(Region::new("us-east-1"))
                    .build();
                aws_sdk_iam::Client::from_conf(config)
            })
            .clone()
    }

    /// A bearer token for the EKS cluster `cluster` in `region`, from the configured
    /// credentials (see [`eks_token`]).
    pub async fn eks_token(&self, region: &str, cluster: &str) -> Result<String, CloudError> {
        let failure = |message: String| CloudError {
            operation: "eks-token".to_string(),
            resource: Some(cluster.to_string()),
            code: None,
            message,
            status: None,
            retryable: false,
            missing_credentials: false,
        };
        let provider = self
            .base
            .credentials_provider()
            .ok_or_else(|| failure("no AWS credentials are configured".to_string()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|error| failure(format!("cannot load AWS credentials: {error}")))?;
        eks_token::token(&credentials, region, cluster, std::time::SystemTime::now())
            .map_err(failure)
    }
}
