//! IAM roles the AWS steps use but never create: IAM is global, so production's roles
//! survived the region. Looked up by name (an ARN's last path segment); a missing role is
//! refused with the same message when planning and when applying. When planning, a role is
//! also checked for what EKS needs of it (reviews B6, D17): that its trust policy lets the
//! service assume it (with every action the service needs: EKS Pod Identity also tags the
//! session), and that AWS's managed policies for the job are attached. A role that grants
//! the same through its own policies cannot be proven here: the plan says so instead of
//! refusing it.

use crate::cloud::git_http::percent_decode;
use crate::cloud::{CloudError, CloudResultExt};
use crate::steps::{StepError, StepProblem};

/// What a role must allow: the service that assumes it, and the managed policies it needs
/// (each entry: any one of the names).
pub(super) struct RoleNeeds {
    /// What the role is for, in messages.
    pub(super) purpose: &'static str,
    /// The service principal its trust policy must name, e.g. `eks.amazonaws.com`.
    pub(super) service: &'static str,
    /// The actions the trust policy must let that service perform on the role.
    pub(super) actions: &'static [&'static str],
    /// Managed policies, each any one of a few names.
    pub(super) policies: &'static [&'static [&'static str]],
}

/// The EKS control plane's role (EKS user guide, cluster IAM role).
pub(super) const CLUSTER_ROLE: RoleNeeds = RoleNeeds {
    purpose: "the EKS cluster role",
    service: "eks.amazonaws.com",
    actions: &["sts:AssumeRole"],
    policies: &[&["AmazonEKSClusterPolicy"]],
};

/// The managed nodes' role (EKS user guide, node IAM role): the VPC CNI runs with it,
/// since the rebuilt cluster gives the CNI no role of its own.
pub(super) const NODE_ROLE: RoleNeeds = RoleNeeds {
    purpose: "the EKS node role",
    service: "ec2.amazonaws.com",
    actions: &["sts:AssumeRole"],
    policies: &[
        &["AmazonEKSWorkerNodePolicy"],
        &[
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonEC2ContainerRegistryPullOnly",
        ],
        &["AmazonEKS_CNI_Policy"],
    ],
};

/// A role the application's pods get through EKS Pod Identity (EKS user guide, Pod
/// Identity role): the Pod Identity agent assumes it for the pods and tags the session
/// with the cluster, namespace and service account, so both actions must be trusted. Its
/// permissions are the application's own: no managed policy is required.
pub(super) const POD_IDENTITY_ROLE: RoleNeeds = RoleNeeds {
    purpose: "a Pod Identity role",
    service: "pods.eks.amazonaws.com",
    actions: &["sts:AssumeRole", "sts:TagSession"],
    policies: &[],
};

/// What the plan says of `role` for `needs`: problems (missing, not trusted by the
/// service, managed policies missing) and a note when its own policies cannot be judged.
pub(super) async fn role_problems(
    iam: &aws_sdk_iam::Client,
    role: &str,
    needs: &RoleNeeds,
) -> Result<(Vec<StepProblem>, Option<String>), CloudError> {
    let name = role_name(role);
    // The role and its attached policies, asked at once (the policies' answer is looked
    // at only when the role exists).
    let get_role = async {
        iam.get_role()
            .role_name(name)
            .send()
            .await
            .cloud("GetRole", Some(name.to_string()))
    };
    let policies = async {
        if needs.policies.is_empty() {
            return None;
        }
        let answer = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .cloud("ListAttachedRolePolicies", Some(name.to_string()));
        Some(answer)
    };
    let (answer, policies) = tokio::join!(get_role, policies);
    let found = match answer {
        Err(error) if error.is_not_found() => {
            let problem = format!(
                "{}; IAM is global, so the source region's role should exist",
                missing_role(role)
            );
            return Ok((vec![StepProblem::from(problem)], None));
        }
        answer => answer?,
    };
    let mut problems = Vec::new();
    let document = found
        .role()
        .and_then(|role| role.assume_role_policy_document())
        .unwrap_or_default();
    // IAM answers policy documents URL-encoded.
    let untrusted = untrusted_actions(&percent_decode(document), needs);
    if !untrusted.is_empty() {
        let action = match needs.actions {
            [only] => (*only).to_string(),
            all => format!("[{}]", all.join(", ")),
        };
        let verb = if untrusted == ["sts:AssumeRole"] {
            "assume it".to_string()
        } else {
            format!("perform {} on it", untrusted.join(" and "))
        };
        problems.push(StepProblem::from(format!(
            "IAM role `{name}` ({}) does not let `{}` {verb}; add it to the role's trust policy (`Principal: {{Service: {}}}`, `Action: {action}`)",
            needs.purpose, needs.service, needs.service
        )));
    }
    let Some(attached) = policies else {
        return Ok((problems, None));
    };
    let attached = attached?;
    let attached: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|policy| policy.policy_name())
        .collect();
    let missing: Vec<&str> = needs
        .policies
        .iter()
        .filter(|any| !any.iter().any(|policy| attached.contains(policy)))
        .map(|any| any[0])
        .collect();
    if missing.is_empty() {
        return Ok((problems, None));
    }
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .cloud("ListRolePolicies", Some(name.to_string()))?;
    let own = attached
        .iter()
        .any(|policy| !needs.policies.iter().any(|any| any.contains(policy)))
        || !inline.policy_names().is_empty();
    let message = format!(
        "IAM role `{name}` ({}) lacks AWS's managed {} {}",
        needs.purpose,
        if missing.len() == 1 {
            "policy"
        } else {
            "policies"
        },
        missing.join(", ")
    );
    if own {
        // Its own policies may grant the same: say so, do not refuse.
        return Ok((
            problems,
            Some(format!(
                "{message}; it has policies of its own, which the plan cannot judge: check they grant the same"
            )),
        ));
    }
    problems.push(StepProblem::from(format!(
        "{message}; attach them (without them {})",
        if needs.service == "ec2.amazonaws.com" {
            "nodes never join or never get pod addresses, and the node group fails after ~20 minutes"
        } else {
            "EKS cannot create the cluster"
        }
    )));
    Ok((problems, None))
}

/// The actions of `needs` that a trust policy does not let its service perform.
fn untrusted_actions(document: &str, needs: &RoleNeeds) -> Vec<&'static str> {
    needs
        .actions
        .iter()
        .copied()
        .filter(|action| !trusts(document, needs.service, action))
        .collect()
}

/// Whether a trust policy lets `service` perform `action` (e.g. `sts:AssumeRole`) on the
/// role.
fn trusts(document: &str, service: &str, action: &str) -> bool {
    let Ok(policy) = serde_json::from_str::<serde_json::Value>(document) else {
        return false;
    };
    let statements = match &policy["Statement"] {
        serde_json::Value::Array(statements) => statements.clone(),
        statement => vec![statement.clone()],
    };
    let contains = |value: &serde_json::Value, wanted: &str| match value {
        serde_json::Value::String(text) => text == wanted || text == "*",
        serde_json::Value::Array(items) => items.iter().any(|item| item == wanted),
        _ => false,
    };
    statements.iter().any(|statement| {
        statement["Effect"] == "Allow"
            && (contains(&statement["Action"], action) || contains(&statement["Action"], "sts:*"))
            && contains(&statement["Principal"]["Service"], service)
    })
}

/// The role's name from a name or an ARN (`arn:aws:iam::123:role/path/name`).
pub(super) fn role_name(role: &str) -> &str {
    role.rsplit('/').next().unwrap_or(role)
}

/// The ARN of the IAM role `role` (a name or an ARN); `None` when it does not exist.
pub(super) async fn role_arn(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<Option<String>, CloudError> {
    let name = role_name(role);
    match iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .cloud("GetRole", Some(name.to_string()))
    {
        Ok(answer) => Ok(answer.role().map(|role| role.arn().to_string())),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The refusal when `role` does not exist.
pub(super) fn missing_role(role: &str) -> StepError {
    StepError::Refused {
        message: format!("IAM role `{}` does not exist", role_name(role)),
        hint: "IAM is global: the role should still exist; check the name in the playbook, or create it with the same policies as in the source region".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policies_name_the_service_that_may_assume_the_role() {
        let eks = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let assume = "sts:AssumeRole";
        assert!(trusts(eks, "eks.amazonaws.com", assume));
        assert!(!trusts(eks, "ec2.amazonaws.com", assume));
        let both = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","eks.amazonaws.com"]},"Action":["sts:AssumeRole","sts:TagSession"]}}"#;
        assert!(trusts(both, "ec2.amazonaws.com", assume));
        let denied = eks.replace("Allow", "Deny");
        assert!(!trusts(&denied, "eks.amazonaws.com", assume));
        assert!(trusts(
            &percent_decode(
                "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22eks.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D"
            ),
            "eks.amazonaws.com",
            assume
        ));
    }

    #[test]
    fn pod_identity_needs_both_assume_role_and_tag_session() {
        let assume_only = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            untrusted_actions(assume_only, &POD_IDENTITY_ROLE),
            ["sts:TagSession"]
        );
        let both = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
        assert!(untrusted_actions(both, &POD_IDENTITY_ROLE).is_empty());
        // Split over two statements, or `sts:*`, counts too.
        let split = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:TagSession"}]}"#;
        assert!(untrusted_actions(split, &POD_IDENTITY_ROLE).is_empty());
        let any = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:*"}}"#;
        assert!(untrusted_actions(any, &POD_IDENTITY_ROLE).is_empty());
        // An IRSA trust (the old cluster's OIDC provider) lets Pod Identity do nothing.
        let irsa = r#"{"Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-southeast-2.amazonaws.com/id/ABC"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
        assert_eq!(
            untrusted_actions(irsa, &POD_IDENTITY_ROLE),
            ["sts:AssumeRole", "sts:TagSession"]
        );
    }

    #[test]
    fn role_names_come_from_names_and_arns() {
        assert_eq!(role_name("eks-cluster"), "eks-cluster");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/platform/eks-cluster"),
            "eks-cluster"
        );
    }
}
