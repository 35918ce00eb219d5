//! The snapshot's KMS key (review D2): an encrypted snapshot restores only with its key
//! usable in the target region. A cross-region copy is encrypted with a key of the
//! destination region, chosen when it was copied; if that key was disabled, is scheduled
//! for deletion, was deleted or belongs to another region, RDS refuses the restore hours
//! into the run. The plan asks KMS (`DescribeKey`, read-only) in the target region first.

use aws_sdk_kms::Client;
use aws_sdk_kms::types::KeyState;

use crate::cloud::{CloudError, CloudResultExt};
use crate::steps::StepProblem;

use super::snapshot::Snapshot;

/// What KMS says of a snapshot's key, as far as the restore cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finding {
    /// Enabled, in the target region: the restore can use it.
    Usable,
    /// In the target region, in a state other than `Enabled` (`Disabled`,
    /// `PendingDeletion`, …).
    State(String),
    /// Not a key of the target region (`DescribeKey` answered `NotFoundException`).
    NotFound,
    /// A key of another region (its ARN says so).
    OtherRegion(String),
    /// The caller may not describe it.
    AccessDenied(String),
}

/// The problem with the key of `snapshot`, if it is encrypted and the key is not usable
/// in `region`.
pub(super) async fn problem(
    client: &Client,
    snapshot: &Snapshot,
    region: &str,
) -> Result<Option<StepProblem>, CloudError> {
    let Some(key) = snapshot.kms_key_id.as_deref() else {
        return Ok(None);
    };
    let finding = match arn_region(key) {
        Some(other) if other != region => Finding::OtherRegion(other.to_string()),
        _ => describe(client, key, region).await?,
    };
    Ok(message(&snapshot.id, key, region, &finding).map(StepProblem::from))
}

/// Ask KMS in `region` about `key`.
async fn describe(client: &Client, key: &str, region: &str) -> Result<Finding, CloudError> {
    let answer = client
        .describe_key()
        .key_id(key)
        .send()
        .await
        .cloud("DescribeKey", Some(key.to_string()));
    let answer = match answer {
        Err(error) if error.is("NotFoundException") || error.is_not_found() => {
            return Ok(Finding::NotFound);
        }
        Err(error) if error.is("AccessDeniedException") => {
            return Ok(Finding::AccessDenied(error.to_string()));
        }
        answer => answer?,
    };
    let Some(metadata) = answer.key_metadata() else {
        return Ok(Finding::NotFound);
    };
    if let Some(other) = metadata.arn().and_then(arn_region)
        && other != region
    {
        return Ok(Finding::OtherRegion(other.to_string()));
    }
    Ok(match metadata.key_state() {
        Some(KeyState::Enabled) => Finding::Usable,
        Some(state) => Finding::State(state.as_str().to_string()),
        None if metadata.enabled() => Finding::Usable,
        None => Finding::State("Disabled".to_string()),
    })
}

/// The region of a key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), if `key` is one.
fn arn_region(key: &str) -> Option<&str> {
    let mut parts = key.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|region| !region.is_empty())
}

/// The problem's text for `finding`, with what to do.
fn message(snapshot: &str, key: &str, region: &str, finding: &Finding) -> Option<String> {
    let copy = format!(
        "copy the snapshot with a key of `{region}` (`aws rds copy-db-snapshot --kms-key-id …`) and run again"
    );
    let (what, remedy) = match finding {
        Finding::Usable => return None,
        Finding::State(state) if state == "PendingDeletion" => (
            "PendingDeletion".to_string(),
            format!(
                "cancel the deletion and enable the key (`aws kms cancel-key-deletion`, `aws kms enable-key`), or {copy}"
            ),
        ),
        Finding::State(state) => (
            state.clone(),
            format!("enable the key (`aws kms enable-key --key-id {key}`), or {copy}"),
        ),
        Finding::NotFound => ("not found".to_string(), copy),
        Finding::OtherRegion(other) => (format!("a key of `{other}`, not found"), copy),
        Finding::AccessDenied(why) => {
            return Some(format!(
                "the snapshot `{snapshot}` is encrypted with `{key}`, which the caller may not describe in `{region}` ({why}): allow `kms:DescribeKey` on it (and `kms:CreateGrant`, `kms:Decrypt`, which the restore needs) in the key policy and the caller's IAM policy"
            ));
        }
    };
    Some(format!(
        "the snapshot `{snapshot}` is encrypted with `{key}`, which is {what} in `{region}`: {remedy}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_of_a_key_arn_and_none_for_an_id() {
        let arn = "arn:aws:kms:ap-southeast-1:123456789012:key/1234abcd";
        assert_eq!(arn_region(arn), Some("ap-southeast-1"));
        assert_eq!(arn_region("1234abcd-12ab"), None);
        assert_eq!(arn_region("alias/rds"), None);
    }

    #[test]
    fn every_finding_but_a_usable_key_is_a_problem_with_what_to_do() {
        let text = |finding: Finding| message("snap", "k", "r", &finding).unwrap_or_default();
        assert_eq!(message("snap", "k", "r", &Finding::Usable), None);
        let disabled = text(Finding::State("Disabled".into()));
        assert!(
            disabled.contains("which is Disabled in `r`: enable the key"),
            "{disabled}"
        );
        let deleting = text(Finding::State("PendingDeletion".into()));
        assert!(deleting.contains("cancel-key-deletion"), "{deleting}");
        let missing = text(Finding::NotFound);
        assert!(
            missing.contains("which is not found in `r`: copy the snapshot"),
            "{missing}"
        );
        let elsewhere = text(Finding::OtherRegion("q".into()));
        assert!(elsewhere.contains("a key of `q`"), "{elsewhere}");
        let denied = text(Finding::AccessDenied("AccessDeniedException".into()));
        assert!(denied.contains("`kms:DescribeKey`"), "{denied}");
    }
}
