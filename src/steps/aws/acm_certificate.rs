//! `aws.acm.certificate`: the TLS certificate the new load balancer serves (review B4).
//! Users reach `https://PUBLIC_HOST`, so after the cutover the load balancer must present a
//! certificate for that name. ACM certificates are regional and cannot be copied: the one
//! production used is lost with its region, and the target region needs its own, requested
//! or imported there and validated before the outage. This kind creates nothing; it checks,
//! when planning and again when it runs, with `DescribeCertificate` in the target region:
//!
//! 1. the ARN names a certificate in the target region, and it exists;
//! 2. its status is `ISSUED` (not pending validation, failed, revoked or expired);
//! 3. it has not expired (`NotAfter` is in the future);
//! 4. it covers the public name: exactly, or through a wildcard one label deep.
//!
//! Anything else is a plan problem that says what to do, so the run stops before it builds
//! anything. Its outputs (`arn`, `domains`, `not_after`) are known when planning.

use async_trait::async_trait;
use aws_sdk_acm::types::{CertificateDetail, CertificateStatus};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::interface;
use crate::steps::{
    Action, CERTIFICATE_HINT, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem,
};

use super::required;

static SPEC: KindSpec = KindSpec {
    kind: "aws.acm.certificate",
    summary: "check that an ACM certificate in the target region is issued, unexpired and covers the public name",
    parameters: &[
        required(
            "arn",
            "the ACM certificate's ARN, in the target region (certificates are regional and cannot be copied)",
        ),
        required(
            "host",
            "the public name users reach; the certificate must cover it (exactly or by a wildcard)",
        ),
    ],
    outputs: &["arn", "domains", "not_after"],
};

/// The `aws.acm.certificate` step kind.
pub(crate) struct AwsAcmCertificate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    arn: String,
    host: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    arn: String,
    /// Every name the certificate covers (its domain name and subject alternative names).
    domains: Vec<String>,
    /// When it expires (RFC 3339).
    not_after: String,
}

/// Why the certificate cannot serve the public name in the target region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unusable {
    #[error(
        "no TLS certificate is given: users reach `https://{host}`, and the new load balancer needs an ACM certificate for it in {region}"
    )]
    Missing { host: String, region: String },
    #[error("`{arn}` is not an ACM certificate ARN (`arn:aws:acm:REGION:ACCOUNT:certificate/ID`)")]
    Malformed { arn: String },
    #[error(
        "certificate `{arn}` is in {region}, not in the target region {target} (ACM certificates are regional and cannot be copied)"
    )]
    OtherRegion {
        arn: String,
        region: String,
        target: String,
    },
    #[error("certificate `{arn}` does not exist in {region}")]
    NotFound { arn: String, region: String },
    #[error("certificate `{arn}` is `{status}`, not `ISSUED`")]
    NotIssued { arn: String, status: String },
    #[error("certificate `{arn}` expired at {not_after}")]
    Expired { arn: String, not_after: String },
    #[error("certificate `{arn}` does not cover `{host}` (it covers {})", covered(.domains))]
    WrongName {
        arn: String,
        host: String,
        domains: Vec<String>,
    },
}

fn covered(domains: &[String]) -> String {
    if domains.is_empty() {
        return "no name".to_string();
    }
    let quoted: Vec<String> = domains.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

/// The region an ACM certificate ARN names, or why it is not one.
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("acm"), Some(region), Some(_account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!region.is_empty() && rest.starts_with("certificate/")).then_some(region)
}

/// A DNS name compared as DNS compares it: case-insensitive, without the root's dot.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a certificate for `domains` is valid for `host`: an exact name, or a wildcard
/// `*.REST` whose `*` stands for exactly one label (as TLS clients match it).
fn covers(domains: &[String], host: &str) -> bool {
    let host = normal(host);
    domains.iter().any(|domain| {
        let domain = normal(domain);
        match domain.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(label, parent)| !label.is_empty() && parent == rest),
            None => domain == host,
        }
    })
}

/// The names a certificate covers: its domain name, then the other alternative names.
fn domains(detail: &CertificateDetail) -> Vec<String> {
    let mut names: Vec<String> = detail
        .domain_name()
        .map(str::to_string)
        .into_iter()
        .collect();
    for name in detail.subject_alternative_names() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Check the certificate `params` names in `region` as of `now`: its outputs, or why it
/// cannot serve the public name.
async fn inspect(
    client: &aws_sdk_acm::Client,
    params: &Params,
    region: &str,
    now: Timestamp,
) -> Result<Result<Outputs, Unusable>, CloudError> {
    let arn = params.arn.trim().to_string();
    if arn.is_empty() {
        return Ok(Err(Unusable::Missing {
            host: params.host.clone(),
            region: region.to_string(),
        }));
    }
    match arn_region(&arn) {
        None => return Ok(Err(Unusable::Malformed { arn })),
        Some(found) if found != region => {
            return Ok(Err(Unusable::OtherRegion {
                region: found.to_string(),
                target: region.to_string(),
                arn,
            }));
        }
        Some(_) => {}
    }
    let answer = client
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .cloud("DescribeCertificate", Some(arn.clone()));
    let detail = match answer {
        Ok(answer) => answer.certificate().cloned(),
        Err(error) if error.is_not_found() => None,
        Err(error) => return Err(error),
    };
    let Some(detail) = detail else {
        return Ok(Err(Unusable::NotFound {
            arn,
            region: region.to_string(),
        }));
    };
    let not_after = detail
        .not_after()
        .and_then(|time| Timestamp::from_second(time.secs()).ok());
    let not_after_text = not_after.map_or_else(String::new, |time| time.to_string());
    match detail.status() {
        Some(CertificateStatus::Issued) => {}
        other => {
            let status = other
                .map_or("unknown", CertificateStatus::as_str)
                .to_string();
            if status == "EXPIRED" {
                return Ok(Err(Unusable::Expired {
                    arn,
                    not_after: not_after_text,
                }));
            }
            return Ok(Err(Unusable::NotIssued { arn, status }));
        }
    }
    if not_after.is_some_and(|time| time <= now) {
        return Ok(Err(Unusable::Expired {
            arn,
            not_after: not_after_text,
        }));
    }
    let domains = domains(&detail);
    if !covers(&domains, &params.host) {
        return Ok(Err(Unusable::WrongName {
            arn,
            host: normal(&params.host),
            domains,
        }));
    }
    Ok(Ok(Outputs {
        arn,
        domains,
        not_after: not_after_text,
    }))
}

#[async_trait]
impl Step for AwsAcmCertificate {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = crate::steps::params(value)?;
        let region = &context.target_region;
        let client = context.cloud.acm(region);
        let host = normal(&params.host);
        match inspect(&client, &params, region, Timestamp::now()).await? {
            Ok(outputs) => {
                let mut plan = StepPlan::new(
                    Action::Adopt,
                    format!("serve `https://{host}` with an issued certificate"),
                )
                .detail("certificate", outputs.arn.clone())
                .detail("covers", outputs.domains.join(", "))
                .detail("expires", outputs.not_after.clone());
                plan.outputs = interface::outputs(&outputs)?;
                Ok(plan)
            }
            Err(unusable) => {
                let mut plan = StepPlan::new(
                    Action::Unknown,
                    format!("no usable certificate for `https://{host}`"),
                );
                plan.problems.push(StepProblem::Certificate {
                    message: unusable.to_string(),
                });
                Ok(plan)
            }
        }
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let region = &context.target_region;
        let client = context.cloud.acm(region);
        match inspect(&client, &params, region, Timestamp::now()).await? {
            Ok(outputs) => interface::outputs(&outputs),
            Err(unusable) => Err(StepError::Refused {
                message: unusable.to_string(),
                hint: format!("{CERTIFICATE_HINT}; then start a new run"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &json!({
                "arn": "arn:aws:acm:ap-southeast-1:123456789012:certificate/abc",
                "host": "shop.example-shop.com",
            }),
        );
    }

    #[test]
    fn a_certificate_covers_its_names_and_one_label_under_a_wildcard() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let wildcard = names(&["*.example-shop.com"]);
        assert!(covers(&wildcard, "shop.example-shop.com"));
        assert!(covers(&wildcard, "SHOP.Example-Shop.com."));
        assert!(
            !covers(&wildcard, "example-shop.com"),
            "the apex is not under the wildcard"
        );
        assert!(
            !covers(&wildcard, "a.shop.example-shop.com"),
            "one label only"
        );
        let exact = names(&["example-shop.com", "www.example-shop.com"]);
        assert!(!covers(&exact, "shop.example-shop.com"));
        assert!(covers(
            &names(&["shop.example-shop.com"]),
            "shop.example-shop.com."
        ));
        assert!(!covers(&[], "shop.example-shop.com"));
    }

    #[test]
    fn the_region_comes_from_the_arn() {
        assert_eq!(
            arn_region("arn:aws:acm:ap-southeast-1:123456789012:certificate/0a1b"),
            Some("ap-southeast-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:acm:cn-north-1:123456789012:certificate/0a1b"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(arn_region("0a1b"), None);
        assert_eq!(arn_region("arn:aws:acm::1:certificate/x"), None);
    }

    #[test]
    fn each_problem_names_the_certificate_and_what_is_wrong() {
        let wrong = Unusable::WrongName {
            arn: "arn:x".into(),
            host: "shop.example-shop.com".into(),
            domains: vec!["example-shop.com".into()],
        };
        assert_eq!(
            wrong.to_string(),
            "certificate `arn:x` does not cover `shop.example-shop.com` (it covers `example-shop.com`)"
        );
        let elsewhere = Unusable::OtherRegion {
            arn: "arn:x".into(),
            region: "ap-southeast-2".into(),
            target: "ap-southeast-1".into(),
        };
        assert!(elsewhere.to_string().contains("cannot be copied"));
    }
}
