//! Kubernetes clients from a kubeconfig file (the one a cluster step wrote, or one given
//! with `connect_kubeconfig`), made and cached by [`Cloud::kubernetes`]. Exec credential
//! plugins (`rebuild eks-token`) and static tokens both work, as kube-rs supports them; an
//! exec plugin's token is made again a minute before the expiry it reports, so a long
//! deploy never sends an expired EKS token. Kubernetes API errors become
//! [`KubernetesError`]s here too: the API server refusing the caller (HTTP 401) apart from
//! every other failure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{Cloud, CloudError};

/// Clients made so far, by kubeconfig file and context.
#[derive(Default)]
pub(super) struct KubernetesClients {
    clients: Mutex<HashMap<(PathBuf, Option<String>), Made>>,
}

/// A client, and the kubeconfig's text it was made from (a file written again since gets a
/// new client).
struct Made {
    kubeconfig: Vec<u8>,
    client: kube::Client,
}

impl std::fmt::Debug for KubernetesClients {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KubernetesClients")
            .finish_non_exhaustive()
    }
}

impl Cloud {
    /// A client for the cluster `kubeconfig` names (its current context, or `context`).
    /// Made once per file and context, and again when the file changes.
    pub async fn kubernetes(
        &self,
        kubeconfig: &Path,
        context: Option<&str>,
    ) -> Result<kube::Client, CloudError> {
        let key = (kubeconfig.to_path_buf(), context.map(str::to_string));
        let text = std::fs::read(kubeconfig).unwrap_or_default();
        let lock = || {
            self.hosts
                .kubernetes
                .clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(made) = lock().get(&key)
            && made.kubeconfig == text
        {
            return Ok(made.client.clone());
        }
        let client = client(kubeconfig, context).await?;
        let made = Made {
            kubeconfig: text,
            client: client.clone(),
        };
        lock().insert(key, made);
        Ok(client)
    }
}

/// A client for the cluster a kubeconfig names (its current context, or `context`). Steps
/// use [`Cloud::kubernetes`], which caches it.
async fn client(kubeconfig: &Path, context: Option<&str>) -> Result<kube::Client, CloudError> {
    let failure = |message: String| {
        CloudError::local(
            "kubeconfig",
            Some(kubeconfig.display().to_string()),
            message,
        )
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

/// A failed Kubernetes API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubernetesError {
    /// The API server did not accept the caller's credentials (HTTP 401).
    #[error(transparent)]
    Unauthenticated(Refusal),
    /// Any other failure, classified as a cloud error (5xx, 429 and transport failures are
    /// retryable).
    #[error("{0}")]
    Call(CloudError),
}

/// A Kubernetes API server's refusal of the caller (HTTP 401). On EKS: the AWS principal the
/// run acts as neither created the cluster nor has an access entry on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster refused the caller's credentials (HTTP 401) on `{operation}` of `{resource}`: {message}"
)]
pub struct Refusal {
    /// The call, e.g. `server-side apply`.
    pub operation: String,
    /// What it was about, e.g. `Namespace/shop`.
    pub resource: String,
    /// The API server's message.
    pub message: String,
}

/// A Kubernetes API error, classified: a refusal of the caller (HTTP 401) apart, anything
/// else as a cloud error.
pub fn error(error: kube::Error, operation: &str, resource: &str) -> KubernetesError {
    if let kube::Error::Api(status) = &error
        && status.code == 401
    {
        return KubernetesError::Unauthenticated(Refusal {
            operation: operation.to_string(),
            resource: resource.to_string(),
            message: status.message.clone(),
        });
    }
    KubernetesError::Call(cloud_error(error, operation, resource))
}

/// A Kubernetes API error as a cloud error: 5xx, 429 and transport failures are retryable.
fn cloud_error(error: kube::Error, operation: &str, resource: &str) -> CloudError {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:\n- name: test\n  context: {cluster: test, user: test}\nusers:\n- name: test\n  user: {token: abc}\n";

    #[tokio::test]
    async fn clients_are_made_once_per_file_and_again_when_it_changes() {
        // What `main` does first: kube's TLS needs a process-wide crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cloud = Cloud::from_config(aws_types::SdkConfig::builder().build());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        cloud.kubernetes(&path, None).await.unwrap();
        cloud.kubernetes(&path, None).await.unwrap();
        cloud.kubernetes(&path, Some("test")).await.unwrap();
        let made_from = || {
            let clients = cloud.hosts.kubernetes.clients.lock().unwrap();
            let mut texts: Vec<String> = clients
                .values()
                .map(|made| String::from_utf8_lossy(&made.kubeconfig).into_owned())
                .collect();
            texts.sort();
            texts
        };
        assert_eq!(made_from(), [KUBECONFIG, KUBECONFIG]);
        let rewritten = KUBECONFIG.replace(":1\"", ":2\"");
        std::fs::write(&path, &rewritten).unwrap();
        cloud.kubernetes(&path, None).await.unwrap();
        assert_eq!(made_from(), [KUBECONFIG, rewritten.as_str()]);
        let Err(missing) = cloud.kubernetes(&dir.path().join("absent"), None).await else {
            panic!("a missing kubeconfig gave a client");
        };
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
    }
}
