//! Cloud client construction, and nothing else. One shared SDK configuration (standard
//! credential chain, profiles, SSO, `AWS_ENDPOINT_URL`) is loaded once; clients are made
//! per region on demand and cached. Steps get clients from here through their context.

pub mod eks_token;
pub mod error;
pub mod git_http;
pub mod github;
mod hosts;
pub mod http;
pub mod kubernetes;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_types::SdkConfig;
use aws_types::region::Region;

pub use error::{CloudError, CloudResultExt};

/// Who the AWS credentials are (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallerIdentity {
    /// The account the run acts in.
    pub account: String,
    /// The caller: a user, or an assumed role's session.
    pub arn: String,
}

/// Clients for every service and region a run uses.
#[derive(Debug)]
pub struct Cloud {
    base: SdkConfig,
    clients: Clients,
    /// Kubernetes and GitHub clients, the GitHub token, the git transport (`hosts.rs`).
    hosts: hosts::Hosts,
}

/// An AWS SDK client, made from the shared configuration for one region.
pub trait AwsClient: Clone + Send + Sync + 'static {
    /// A client of this service for `region`.
    fn for_region(base: &SdkConfig, region: &str) -> Self;
}

/// A service whose resources live in one region (EC2, RDS, EKS, ECR): one client per region.
pub trait RegionalClient: AwsClient {}

/// A global service (Route 53, IAM): one endpoint per partition. Its client is made for the
/// target region, and the SDK's endpoint rules pick the global endpoint of that region's
/// partition (`us-east-1` signing for `aws`, `.amazonaws.com.cn` for China, GovCloud's own),
/// so nothing assumes the commercial partition (review C2).
pub trait GlobalClient: AwsClient {}

/// Implements [`AwsClient`] and [`RegionalClient`] or [`GlobalClient`] for SDK crates.
macro_rules! aws_clients {
    ($scope:ident: $($sdk:ident),+) => {$(
        impl AwsClient for $sdk::Client {
            fn for_region(base: &SdkConfig, region: &str) -> Self {
                let config = $sdk::config::Builder::from(base)
                    .region(Region::new(region.to_string()))
                    .build();
                Self::from_conf(config)
            }
        }
        impl $scope for $sdk::Client {}
    )+};
}

aws_clients!(RegionalClient: aws_sdk_ec2, aws_sdk_rds, aws_sdk_eks, aws_sdk_ecr, aws_sdk_secretsmanager, aws_sdk_servicequotas, aws_sdk_sts, aws_sdk_acm, aws_sdk_kms);
aws_clients!(GlobalClient: aws_sdk_route53, aws_sdk_iam);

/// Clients made so far, one per service (its client type) and region; made on first use.
#[derive(Default)]
struct Clients(Mutex<HashMap<(TypeId, String), Box<dyn Any + Send + Sync>>>);

impl Clients {
    fn get<C: AwsClient>(&self, base: &SdkConfig, region: &str) -> C {
        let mut clients = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (TypeId::of::<C>(), region.to_string());
        if let Some(client) = clients
            .get(&key)
            .and_then(|client| client.downcast_ref::<C>())
        {
            return client.clone();
        }
        let client = C::for_region(base, region);
        clients.insert(key, Box::new(client.clone()));
        client
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clients = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        formatter
            .debug_struct("Clients")
            .field("made", &clients.len())
            .finish()
    }
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
            clients: Clients::default(),
            hosts: hosts::Hosts::new(git_http::install()),
        }
    }

    /// A client of a regional service for `region` (cached).
    pub fn regional<C: RegionalClient>(&self, region: &str) -> C {
        self.clients.get(&self.base, region)
    }

    /// The client of a global service for the partition of `region` (cached).
    pub fn global<C: GlobalClient>(&self, region: &str) -> C {
        self.clients.get(&self.base, region)
    }

    /// An EC2 client for `region`.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        self.regional(region)
    }

    /// A Secrets Manager client for `region` (secrets are regional: only a secret replicated
    /// to, or made in, the target region can be read after the source region is lost).
    pub fn secrets_manager(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        self.regional(region)
    }

    /// Who the credentials are, asked of STS in `region` (regional STS: the global endpoint
    /// lives in us-east-1 and is not needed): the account and the caller's ARN.
    pub async fn caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError> {
        let client: aws_sdk_sts::Client = self.regional(region);
        let answer = client
            .get_caller_identity()
            .send()
            .await
            .cloud("GetCallerIdentity", None)?;
        Ok(CallerIdentity {
            account: answer.account().unwrap_or_default().to_string(),
            arn: answer.arn().unwrap_or_default().to_string(),
        })
    }

    /// A Service Quotas client for `region`.
    pub fn service_quotas(&self, region: &str) -> aws_sdk_servicequotas::Client {
        self.regional(region)
    }

    /// An RDS client for `region`.
    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        self.regional(region)
    }

    /// A KMS client for `region` (keys are regional: a restore in the target region needs a
    /// key there).
    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        self.regional(region)
    }

    /// An EKS client for `region`.
    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        self.regional(region)
    }

    /// An ECR client for `region`.
    pub fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        self.regional(region)
    }

    /// An ACM client for `region` (certificates are regional: a load balancer serves only
    /// one from its own region).
    pub fn acm(&self, region: &str) -> aws_sdk_acm::Client {
        self.regional(region)
    }

    /// The region the configuration names (profile, `AWS_REGION`), else `us-east-1`: where
    /// a state bucket's region is asked (`GetBucketLocation` answers from any region).
    pub fn default_region(&self) -> String {
        self.base
            .region()
            .map_or_else(|| "us-east-1".to_string(), |region| region.to_string())
    }

    /// An S3 client for the state bucket in `region`, for the state store's own I/O thread
    /// (`journal::s3`): its own identity cache, and (as every client made without one) its
    /// own HTTP connection pool, so it never waits on a connection or a credentials refresh
    /// driven by the run's runtime; and time limits, so a synchronous journal append cannot
    /// hang a run. Not cached: the store makes one per state location.
    pub fn state_bucket(&self, region: &str) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::IdentityCache;
        use aws_sdk_s3::config::timeout::TimeoutConfig;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .operation_attempt_timeout(std::time::Duration::from_secs(20))
            .operation_timeout(std::time::Duration::from_secs(60))
            .build();
        let config = aws_sdk_s3::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .identity_cache(IdentityCache::lazy().build())
            .timeout_config(timeouts)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A Route 53 client (Route 53 is global: the endpoint of `region`'s partition).
    pub fn route53(&self, region: &str) -> aws_sdk_route53::Client {
        self.global(region)
    }

    /// An IAM client (IAM is global: the endpoint of `region`'s partition).
    pub fn iam(&self, region: &str) -> aws_sdk_iam::Client {
        self.global(region)
    }

    /// An HTTP client for smoke checks (see [`http`]: a time limit per request, extra
    /// trusted CAs, a host pinned to addresses).
    pub fn http(&self, settings: &http::HttpSettings) -> Result<reqwest::Client, CloudError> {
        http::client(settings)
    }

    /// The addresses of `host` for port `port`: from `hosts_file` when it names the host
    /// (testbeds), else from DNS; why there are none otherwise.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        hosts_file: Option<&std::path::Path>,
    ) -> Result<Vec<std::net::SocketAddr>, String> {
        http::resolve(host, port, hosts_file).await
    }

    /// A bearer token for the EKS cluster `cluster` in `region`, from the configured
    /// credentials (see [`eks_token`]).
    pub async fn eks_token(&self, region: &str, cluster: &str) -> Result<String, CloudError> {
        let failure =
            |message: String| CloudError::local("eks-token", Some(cluster.to_string()), message);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_service_and_region() {
        let cloud = Cloud::from_config(
            SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        );
        let ec2 = cloud.ec2("ap-southeast-1");
        cloud.ec2("ap-southeast-1");
        cloud.ec2("ap-southeast-2");
        cloud.rds("ap-southeast-1");
        let route53 = cloud.route53("ap-southeast-1");
        cloud.iam("ap-southeast-1");
        cloud.iam("ap-southeast-1");
        assert_eq!(format!("{:?}", cloud.clients), "Clients { made: 5 }");
        assert_eq!(ec2.config().region(), Some(&Region::new("ap-southeast-1")));
        assert_eq!(
            route53.config().region(),
            Some(&Region::new("ap-southeast-1"))
        );
    }

    /// Global services made for the target region reach their partition's global endpoint
    /// (the SDK's own endpoint rules), so a rebuild in China or GovCloud does not call the
    /// commercial partition's us-east-1 (review C2).
    #[tokio::test]
    async fn global_services_reach_the_global_endpoint_of_the_target_region_partition() {
        use aws_sdk_iam::config::endpoint::ResolveEndpoint as _;
        use aws_sdk_route53::config::endpoint::ResolveEndpoint as _;
        async fn route53(region: &str) -> String {
            let params = aws_sdk_route53::config::endpoint::Params::builder()
                .region(region)
                .build()
                .expect("params");
            let resolver = aws_sdk_route53::config::endpoint::DefaultResolver::new();
            let endpoint = resolver.resolve_endpoint(&params).await;
            endpoint.expect("an endpoint").url().to_string()
        }
        async fn iam(region: &str) -> String {
            let params = aws_sdk_iam::config::endpoint::Params::builder()
                .region(region)
                .build()
                .expect("params");
            let resolver = aws_sdk_iam::config::endpoint::DefaultResolver::new();
            let endpoint = resolver.resolve_endpoint(&params).await;
            endpoint.expect("an endpoint").url().to_string()
        }
        assert_eq!(
            route53("ap-southeast-1").await,
            "https://route53.amazonaws.com"
        );
        assert_eq!(iam("ap-southeast-1").await, "https://iam.amazonaws.com");
        assert!(route53("cn-north-1").await.ends_with(".amazonaws.com.cn"));
        assert!(iam("cn-northwest-1").await.ends_with(".amazonaws.com.cn"));
        assert!(route53("us-gov-west-1").await.contains("us-gov"));
        assert!(iam("us-gov-east-1").await.contains("us-gov"));
    }
}
