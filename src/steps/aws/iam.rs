//! IAM roles the AWS steps use but never create: IAM is global, so production's roles
//! survived the region. Looked up by name (an ARN's last path segment); a missing role is
//! refused with the same message when planning and when applying.

use crate::cloud::{CloudError, CloudResultExt};
use crate::steps::StepError;

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
    fn role_names_come_from_names_and_arns() {
        assert_eq!(role_name("eks-cluster"), "eks-cluster");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/platform/eks-cluster"),
            "eks-cluster"
        );
    }
}
