//! Cloud errors: an SDK error turned into what an on-call engineer and the retry policy need
//! (operation, resource, error code, HTTP status, and whether the cloud marks it retryable).

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS uses for throttling and transient server trouble.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes AWS uses for credentials it cannot accept (invalid, expired).
const CREDENTIAL_CODES: &[&str] = &[
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
];

/// Error codes the AWS services use for "there is no such thing" (a lookup by name or id
/// that found nothing), service by service.
const NOT_FOUND_CODES: &[&str] = &[
    // EC2
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidAllocationID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidNatGatewayID.NotFound",
    "NatGatewayNotFound",
    // RDS (the query API answers without the `Fault` suffix, the SDK's types carry it)
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFound",
    "DBClusterNotFoundFault",
    "DBSubnetGroupNotFound",
    "DBSubnetGroupNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
    // EKS
    "ResourceNotFoundException",
    // IAM
    "NoSuchEntity",
    "NoSuchEntityException",
    // Route 53
    "NoSuchHostedZone",
    "NoSuchChange",
    // ECR
    "RepositoryNotFoundException",
    "ImageNotFoundException",
];

/// A failed cloud call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    /// The API operation, e.g. `CreateVpc`.
    pub operation: String,
    /// The resource it was about, if any.
    pub resource: Option<String>,
    /// The service's error code.
    pub code: Option<String>,
    /// The service's message, or the transport failure.
    pub message: String,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Throttling, 5xx, timeouts and dropped connections are retryable.
    pub retryable: bool,
    /// No usable credentials: none could be loaded (nobody is logged in), or AWS refused
    /// them as invalid or expired. Decided when the error is classified, so hints never
    /// search the message.
    pub missing_credentials: bool,
}

impl fmt::Display for CloudError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "`{}`", self.operation)?;
        if let Some(resource) = &self.resource {
            write!(formatter, " on `{resource}`")?;
        }
        write!(formatter, " failed")?;
        match (&self.code, self.status) {
            (Some(code), Some(status)) => write!(formatter, " ({code}, HTTP {status})")?,
            (Some(code), None) => write!(formatter, " ({code})")?,
            (None, Some(status)) => write!(formatter, " (HTTP {status})")?,
            (None, None) => {}
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for CloudError {}

impl CloudError {
    /// Classify an SDK error.
    pub fn from_sdk<E>(
        error: &SdkError<E, HttpResponse>,
        operation: &str,
        resource: Option<String>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut missing_credentials = false;
        let (code, message, status, retryable) = match error {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let inner = context.err();
                let code = inner.code().map(str::to_string);
                let message = inner
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| describe_unmodeled(status, code.as_deref()));
                missing_credentials = code
                    .as_deref()
                    .is_some_and(|code| CREDENTIAL_CODES.contains(&code));
                let retryable = status >= 500
                    || status == 429
                    || code
                        .as_deref()
                        .is_some_and(|code| RETRYABLE_CODES.contains(&code));
                (code, message, Some(status), retryable)
            }
            SdkError::TimeoutError(_) => (None, "the request timed out".to_string(), None, true),
            SdkError::DispatchFailure(failure) => {
                let chain = source_chain(error);
                // The SDK reports a missing credential provider only as text in its
                // dispatch failure: the one place we classify by message.
                missing_credentials = chain.contains("credential");
                let message = if missing_credentials {
                    format!("no AWS credentials could be loaded: {chain}")
                } else {
                    format!("could not reach the endpoint: {chain}")
                };
                (None, message, None, failure.is_io() || failure.is_timeout())
            }
            SdkError::ResponseError(context) => {
                let status = context.raw().status().as_u16();
                (
                    None,
                    format!("unreadable response: {}", source_chain(error)),
                    Some(status),
                    status >= 500,
                )
            }
            SdkError::ConstructionFailure(_) => (
                None,
                format!("could not build the request: {}", source_chain(error)),
                None,
                false,
            ),
            _ => (None, source_chain(error), None, false),
        };
        Self {
            operation: operation.to_string(),
            resource,
            code,
            message,
            status,
            retryable,
            missing_credentials,
        }
    }

    /// A failure on this side of the wire (a file, a builder, a local check): not
    /// retryable, no code or status.
    pub fn local(
        operation: impl Into<String>,
        resource: impl Into<Option<String>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation: operation.into(),
            resource: resource.into(),
            code: None,
            message: message.into(),
            status: None,
            retryable: false,
            missing_credentials: false,
        }
    }

    /// An answer that lacks a field the operation always returns (`field`): not retryable.
    pub fn missing_field(operation: impl Into<String>, field: &str) -> Self {
        Self::local(operation, None, format!("the response has no `{field}`"))
    }

    /// Whether the service said the thing looked up does not exist (any service's code for
    /// it: `DBInstanceNotFound`, `ResourceNotFoundException`, `NoSuchEntity`, …).
    pub fn is_not_found(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|code| NOT_FOUND_CODES.contains(&code))
    }

    /// Whether this is the given error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

fn describe_unmodeled(status: u16, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("service error {code}"),
        None if status == 404 => {
            "the endpoint does not implement this operation (HTTP 404)".to_string()
        }
        None => format!("service answered HTTP {status} without an error code"),
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Attach the operation and resource to an SDK result.
pub trait CloudResultExt<T> {
    /// Turn the SDK error into a [`CloudError`] naming `operation` and `resource`.
    fn cloud(self, operation: &str, resource: impl Into<Option<String>>) -> Result<T, CloudError>;
}

impl<T, E> CloudResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn cloud(self, operation: &str, resource: impl Into<Option<String>>) -> Result<T, CloudError> {
        self.map_err(|error| CloudError::from_sdk(&error, operation, resource.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_code(code: &str) -> CloudError {
        CloudError {
            code: Some(code.to_string()),
            ..CloudError::local("Describe", None, "no")
        }
    }

    #[test]
    fn not_found_is_known_for_every_service() {
        for code in [
            "DBInstanceNotFound",
            "DBInstanceNotFoundFault",
            "DBClusterNotFoundFault",
            "DBSubnetGroupNotFoundFault",
            "ResourceNotFoundException",
            "InvalidVpcID.NotFound",
            "NoSuchEntity",
            "NoSuchHostedZone",
        ] {
            assert!(with_code(code).is_not_found(), "{code}");
        }
        assert!(!with_code("AccessDenied").is_not_found());
        assert!(!CloudError::local("Describe", None, "no").is_not_found());
    }

    #[test]
    fn a_missing_field_names_the_operation_and_the_field() {
        assert_eq!(
            CloudError::missing_field("CreateVpc", "VpcId").to_string(),
            "`CreateVpc` failed: the response has no `VpcId`"
        );
    }
}
