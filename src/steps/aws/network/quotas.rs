//! The plan's quota check: whether the target region has room for the VPC and the Elastic
//! IPs a new network needs. A never-used recovery region usually sits at AWS's defaults
//! (5 VPCs, the default VPC included, and 5 Elastic IPs; Amazon VPC quotas), and a second
//! run instead of a resume doubles what is used. The limits come from Service Quotas
//! (`L-F678F1CE`, `L-0263D0A3`); when it cannot answer, AWS's default is assumed, and said.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Tag;

use crate::cloud::{Cloud, CloudError, CloudResultExt};
use crate::steps::context::{TAG_RUN_ID, TAG_STEP};

/// AWS's default for both quotas.
const DEFAULT_LIMIT: usize = 5;

/// One quota: what it counts, where Service Quotas keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quota {
    /// What it limits, plural (`VPCs`).
    pub what: &'static str,
    service: &'static str,
    code: &'static str,
}

/// VPCs per region.
pub(super) const VPCS: Quota = Quota {
    what: "VPCs",
    service: "vpc",
    code: "L-F678F1CE",
};

/// Elastic IPs per region.
pub(super) const ELASTIC_IPS: Quota = Quota {
    what: "Elastic IPs",
    service: "ec2",
    code: "L-0263D0A3",
};

/// What a quota allows and how much of it is used.
#[derive(Debug)]
pub(super) struct Room {
    pub quota: Quota,
    pub limit: usize,
    pub used: usize,
    /// Why the limit is AWS's default rather than the account's, when it is.
    pub assumed: Option<String>,
}

impl Room {
    /// A summary for the plan: `1 of 5 VPCs`.
    pub(super) fn summary(&self) -> String {
        let assumed = match &self.assumed {
            Some(_) => " (AWS's default assumed)",
            None => "",
        };
        format!(
            "{} of {} {}{assumed}",
            self.used, self.limit, self.quota.what
        )
    }

    /// The problem when `needed` more do not fit, naming what to do.
    pub(super) fn problem(&self, needed: usize, region: &str) -> Option<String> {
        if self.used + needed <= self.limit {
            return None;
        }
        let Quota {
            what,
            service,
            code,
        } = self.quota;
        let assumed = match &self.assumed {
            Some(why) => format!(
                " (Service Quotas did not answer: {why}; AWS's default of {DEFAULT_LIMIT} assumed)"
            ),
            None => String::new(),
        };
        Some(format!(
            "`{region}` has {} of its {} {what}{assumed} and this run needs {needed} more: release unused {what}, or ask for more (Service Quotas `{service}` `{code}`) before the run; resume an earlier run instead of starting a new one",
            self.used, self.limit
        ))
    }
}

/// The room left in `quota` in `region`, `used` being what exists now.
pub(super) async fn room(cloud: &Cloud, region: &str, quota: Quota, used: usize) -> Room {
    let answer = cloud
        .service_quotas(region)
        .get_service_quota()
        .service_code(quota.service)
        .quota_code(quota.code)
        .send()
        .await
        .cloud("GetServiceQuota", Some(quota.code.to_string()));
    let value = answer.map(|answer| answer.quota().and_then(|quota| quota.value()));
    let (limit, assumed) = match value {
        Ok(Some(value)) if value >= 0.0 => (value as usize, None),
        Ok(_) => (DEFAULT_LIMIT, Some("no value".to_string())),
        Err(error) => (DEFAULT_LIMIT, Some(error.to_string())),
    };
    Room {
        quota,
        limit,
        used,
        assumed,
    }
}

/// What the region holds now: every VPC (the default VPC included) and Elastic IP, and
/// how many of each this run's step made already (a resume needs only the rest).
#[derive(Debug, Default)]
pub(super) struct Usage {
    pub vpcs: usize,
    pub addresses: usize,
    pub our_vpcs: usize,
    pub our_addresses: usize,
}

/// Count the region's VPCs and Elastic IPs; `owner` (run id, step id): whose are ours.
pub(super) async fn usage(
    client: &Client,
    owner: Option<(&str, &str)>,
) -> Result<Usage, CloudError> {
    let ours = |tags: &[Tag]| {
        let value = |key: &str| {
            tags.iter()
                .find(|tag| tag.key() == Some(key))
                .and_then(Tag::value)
        };
        owner.is_some_and(|(run, step)| {
            value(TAG_RUN_ID) == Some(run) && value(TAG_STEP) == Some(step)
        })
    };
    let mut usage = Usage::default();
    let mut pages = client.describe_vpcs().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeVpcs", None)?;
        usage.vpcs += page.vpcs().len();
        usage.our_vpcs += page.vpcs().iter().filter(|vpc| ours(vpc.tags())).count();
    }
    let addresses = client
        .describe_addresses()
        .send()
        .await
        .cloud("DescribeAddresses", None)?;
    usage.addresses = addresses.addresses().len();
    usage.our_addresses = addresses
        .addresses()
        .iter()
        .filter(|address| ours(address.tags()))
        .count();
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_quota_is_a_problem_naming_the_quota_code() {
        let room = Room {
            quota: VPCS,
            limit: 5,
            used: 5,
            assumed: None,
        };
        assert_eq!(room.problem(0, "r"), None);
        let problem = room.problem(1, "r").unwrap_or_default();
        assert!(problem.contains("`L-F678F1CE`"), "{problem}");
        let assumed = Room {
            assumed: Some("AccessDenied".into()),
            ..room
        };
        let problem = assumed.problem(1, "r").unwrap_or_default();
        assert!(problem.contains("AWS's default of 5 assumed"), "{problem}");
        assert_eq!(assumed.summary(), "5 of 5 VPCs (AWS's default assumed)");
    }
}
