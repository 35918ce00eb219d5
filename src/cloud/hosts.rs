//! What [`Cloud`](super::Cloud) keeps for the hosts beyond AWS, in one field: Kubernetes
//! clients (see `kubernetes`), GitHub clients and the default GitHub token (see `github`),
//! and whether git's smart-HTTP transport is in place (see `git_http`).

use super::CloudError;
use super::github::GitHubClients;
use super::kubernetes::KubernetesClients;

/// Clients and settings for Kubernetes API servers, GitHub and git hosts.
#[derive(Debug)]
pub(super) struct Hosts {
    pub(super) kubernetes: KubernetesClients,
    pub(super) github: GitHubClients,
    /// How registering the git transport went (see [`super::git_http::install`]).
    pub(super) git_http: Result<(), CloudError>,
}

impl Hosts {
    /// No clients yet; `git_http` is how installing the git transport went.
    pub(super) fn new(git_http: Result<(), CloudError>) -> Self {
        Self {
            kubernetes: KubernetesClients::default(),
            github: GitHubClients::default(),
            git_http,
        }
    }
}
