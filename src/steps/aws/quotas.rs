//! Service Quotas, as the plan reads them: what a quota allows (`GetServiceQuota`), set
//! against what the region (or zone) already uses, and the problem when what the run will
//! make does not fit. A never-used recovery region usually sits at AWS's defaults, and a
//! second run instead of a resume doubles what is used (review D15). When Service Quotas
//! cannot answer (no permission, no value), AWS's default for the quota is assumed, and
//! said. What each step counts lives with the step: the network's VPCs, Elastic IPs and
//! NAT gateways (`network/quotas.rs`), the node group's vCPUs (`eks_nodegroup/vcpus.rs`).

use crate::cloud::{Cloud, CloudResultExt};

/// One quota: what it counts, where Service Quotas keeps it, AWS's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quota {
    /// What it limits, plural (`VPCs`).
    pub what: &'static str,
    /// The Service Quotas service code (`vpc`, `ec2`).
    pub service: &'static str,
    /// The quota code (`L-F678F1CE`).
    pub code: &'static str,
    /// AWS's default value, assumed when Service Quotas cannot answer.
    pub default: usize,
    /// What frees room, in the imperative (`release unused Elastic IPs`).
    pub remedy: &'static str,
}

/// What a quota allows in one place (a region, a zone) and how much of it is used.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Room {
    pub quota: Quota,
    pub limit: usize,
    pub used: usize,
    /// Why the limit is AWS's default rather than the account's, when it is.
    pub assumed: Option<String>,
}

impl Room {
    /// The same limit, with `used` counted somewhere else (another zone).
    pub(super) fn with_used(&self, used: usize) -> Room {
        Room {
            used,
            ..self.clone()
        }
    }

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

    /// Whether `needed` more fit.
    pub(super) fn fits(&self, needed: usize) -> bool {
        self.used.saturating_add(needed) <= self.limit
    }

    /// The problem when `needed` more do not fit in `place` (a region or a zone), naming
    /// what to do.
    pub(super) fn problem(&self, needed: usize, place: &str) -> Option<String> {
        if self.fits(needed) {
            return None;
        }
        let Quota {
            what,
            service,
            code,
            default,
            remedy,
        } = self.quota;
        let assumed = match &self.assumed {
            Some(why) => format!(
                " (Service Quotas did not answer: {why}; AWS's default of {default} assumed)"
            ),
            None => String::new(),
        };
        Some(format!(
            "`{place}` has {} of its {} {what}{assumed} and this run needs {needed} more: {remedy}, or ask for more (Service Quotas `{service}` `{code}`) before the run; resume an earlier run instead of starting a new one",
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
        Ok(_) => (quota.default, Some("no value".to_string())),
        Err(error) => (quota.default, Some(error.to_string())),
    };
    Room {
        quota,
        limit,
        used,
        assumed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINGS: Quota = Quota {
        what: "things",
        service: "svc",
        code: "L-TEST",
        default: 5,
        remedy: "release unused things",
    };

    #[test]
    fn a_full_quota_is_a_problem_naming_the_quota_code_and_the_remedy() {
        let room = Room {
            quota: THINGS,
            limit: 5,
            used: 5,
            assumed: None,
        };
        assert_eq!(room.problem(0, "r"), None);
        let problem = room.problem(1, "r").unwrap_or_default();
        assert!(problem.contains("`r` has 5 of its 5 things"), "{problem}");
        assert!(
            problem.contains("release unused things, or ask"),
            "{problem}"
        );
        assert!(problem.contains("`svc` `L-TEST`"), "{problem}");
        let assumed = Room {
            assumed: Some("AccessDenied".into()),
            ..room
        };
        let problem = assumed.problem(1, "r").unwrap_or_default();
        assert!(problem.contains("AWS's default of 5 assumed"), "{problem}");
        assert_eq!(assumed.summary(), "5 of 5 things (AWS's default assumed)");
    }

    #[test]
    fn room_is_the_limit_less_what_is_used() {
        let room = Room {
            quota: THINGS,
            limit: 32,
            used: 20,
            assumed: None,
        };
        assert!(room.fits(12));
        assert!(!room.fits(13));
        assert!(room.with_used(0).fits(32));
        assert!(!room.with_used(usize::MAX).fits(1), "no overflow");
    }
}
