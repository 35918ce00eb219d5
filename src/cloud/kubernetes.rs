//! Kubernetes client construction from a kubeconfig file (the one a cluster step wrote, or
//! one given with `connect_kubeconfig`). Exec credential plugins (`rebuild eks-token`) and
//! static tokens both work, as kube-rs supports them.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::CloudError;

/// A client for the cluster a kubeconfig names (its current context, or `context`).
pub async fn client(kubeconfig: &Path, context: Option<&str>) -> Result<kube::Client, CloudError> {
    let failure = |message: String| CloudError {
        operation: "kubeconfig".to_string(),
        resource: Some(kubeconfig.display().to_string()),
        code: None,
        message,
        status: None,
        retryable: false,
        missing_credentials: false,
    };
    let file = Kubeconfig::read_from(kubeconfig)
        .map_err(|error| failure(format!("cannot read it: {error}")))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(file, &options)
        .await
        .map_err(|error| failure(format!("cannot use it: {error}")))?;
    kube::Client::try_from(config)
        .map_err(|error| failure(format!("cannot build a client: {error}")))
}

/// A Kubernetes API error as a cloud error: 5xx, 429 and transport failures are retryable.
pub fn error(error: kube::Error, operation: &str, resource: &str) -> CloudError {
    let (status, code, message) = match &error {
        kube::Error::Api(status) => (
            Some(status.code),
            Some(status.reason.clone()),
            status.message.clone(),
        ),
        other => (None, None, other.to_string()),
    };
    let retryable = match status {
        Some(code) => code >= 500 || code == 429,
        None => !matches!(
            error,
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_)
        ),
    };
    CloudError {
        operation: operation.to_string(),
        resource: Some(resource.to_string()),
        code,
        message,
        status,
        retryable,
        missing_credentials: false,
    }
}
