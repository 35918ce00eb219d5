//! The application's AWS access, decided as EKS Pod Identity decides it: the kubelet
//! stand-in's [`AwsAccessCheck`] (review B10).
//!
//! A pod's AWS SDK finds credentials only through the Pod Identity agent: the cluster's
//! `eks-pod-identity-agent` add-on must be `ACTIVE`, its service account must have an
//! association, and the agent must be able to assume the association's role for it, which
//! takes a trust policy letting `pods.eks.amazonaws.com` perform both `sts:AssumeRole` and
//! `sts:TagSession` (EKS user guide, Pod Identity role). The add-ons and associations are
//! the proxy's (`strict::pod_identity`); the roles are moto's IAM, read at most once a
//! second. Pods of any cluster the proxy serves in the region count: the tests run one
//! cluster per region.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kube::AwsAccessCheck;
use super::seed::{block_on, sdk_config};
use super::strict::pod_identity::PodIdentities;

/// The service principal of EKS Pod Identity.
const POD_IDENTITY: &str = "pods.eks.amazonaws.com";

/// The check for the Kubernetes stand-in: moto's IAM at `endpoint`, the add-ons and
/// associations of `identities`, in `region`.
pub fn pod_identity_access(
    endpoint: &str,
    identities: PodIdentities,
    region: &str,
) -> AwsAccessCheck {
    let endpoint = endpoint.to_string();
    let region = region.to_string();
    let trusts: Mutex<BTreeMap<String, (Instant, Option<String>)>> = Mutex::new(BTreeMap::new());
    Arc::new(move |namespace: &str, service_account: &str| {
        let bindings = identities.bindings(&region, namespace, service_account);
        let account = format!("{namespace}/{service_account}");
        if bindings.is_empty() {
            return Err(format!(
                "NoCredentialProviders: no valid credential sources found (no EKS Pod Identity association for service account {account})"
            ));
        }
        let mut reasons = Vec::new();
        for binding in bindings {
            if !binding.agent_active {
                reasons.push(format!(
                    "the eks-pod-identity-agent add-on is not ACTIVE in cluster {}: no credentials at 169.254.170.23",
                    binding.cluster
                ));
                continue;
            }
            let document = {
                let mut trusts = trusts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let fresh = trusts
                    .get(&binding.role_arn)
                    .filter(|(read, _)| read.elapsed() < Duration::from_secs(1))
                    .map(|(_, document)| document.clone());
                match fresh {
                    Some(document) => document,
                    None => {
                        let document = trust_policy(&endpoint, &binding.role_arn);
                        trusts.insert(binding.role_arn.clone(), (Instant::now(), document.clone()));
                        document
                    }
                }
            };
            let Some(document) = document else {
                reasons.push(format!(
                    "AccessDenied: role {} does not exist",
                    binding.role_arn
                ));
                continue;
            };
            let missing: Vec<&str> = ["sts:AssumeRole", "sts:TagSession"]
                .into_iter()
                .filter(|action| !trusts_action(&document, action))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            reasons.push(format!(
                "AccessDenied: the EKS Pod Identity agent cannot assume role {} for {account}: its trust policy does not let {POD_IDENTITY} perform {}",
                binding.role_arn,
                missing.join(" and ")
            ));
        }
        Err(reasons.join("; "))
    })
}

/// The trust policy of the role `arn` in moto's IAM (decoded), if the role exists.
fn trust_policy(endpoint: &str, arn: &str) -> Option<String> {
    let name = arn.rsplit('/').next().unwrap_or(arn).to_string();
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(endpoint, "us-east-1").await);
        let role = iam.get_role().role_name(name).send().await.ok()?;
        let document = role.role()?.assume_role_policy_document()?.to_string();
        Some(super::aws_wire::percent_decode(&document))
    })
}

/// Whether a trust policy lets Pod Identity perform `action` on the role.
fn trusts_action(document: &str, action: &str) -> bool {
    let Ok(policy) = serde_json::from_str::<serde_json::Value>(document) else {
        return false;
    };
    let statements = match &policy["Statement"] {
        serde_json::Value::Array(statements) => statements.clone(),
        statement => vec![statement.clone()],
    };
    let names = |value: &serde_json::Value, wanted: &str| match value {
        serde_json::Value::String(text) => text == wanted,
        serde_json::Value::Array(items) => items.iter().any(|item| item == wanted),
        _ => false,
    };
    statements.iter().any(|statement| {
        statement["Effect"] == "Allow"
            && (names(&statement["Action"], action) || names(&statement["Action"], "sts:*"))
            && names(&statement["Principal"]["Service"], POD_IDENTITY)
    })
}

#[cfg(test)]
mod tests {
    use super::trusts_action;

    #[test]
    fn pod_identity_needs_both_actions_trusted() {
        let both = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
        assert!(trusts_action(both, "sts:AssumeRole"));
        assert!(trusts_action(both, "sts:TagSession"));
        let assume = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
        assert!(!trusts_action(assume, "sts:TagSession"));
        let other = both.replace("pods.eks", "ec2");
        assert!(!trusts_action(&other, "sts:AssumeRole"));
    }
}
