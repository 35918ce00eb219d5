//! The load balancer a deploy ends with: the `LoadBalancer` Service the step names
//! (`NAMESPACE/NAME`, read here), waited for after the last wave until the cloud gives it
//! an address (a hostname on AWS, an IP on some clouds), and the DNS record type that
//! points at that address (for `dns.cutover`).

use std::time::Duration;

use kube::api::Api;
use serde::{Deserialize, Deserializer};

use crate::cloud::kubernetes;
use crate::playbook::duration;
use crate::steps::context::{Poll, Wait};
use crate::steps::{StepContext, StepError};

/// How long a Service usually waits for its cloud load balancer's address.
const LOAD_BALANCER_TYPICAL: Duration = Duration::from_secs(60);

/// A Service, named `NAMESPACE/NAME` in the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Service {
    pub(super) namespace: String,
    pub(super) name: String,
}

impl std::fmt::Display for Service {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.namespace, self.name)
    }
}

/// `load_balancer`: `NAMESPACE/NAME`; empty is none.
pub(super) fn service<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Service>, D::Error> {
    let text: Option<String> = Deserialize::deserialize(deserializer)?;
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    match text.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(Some(Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })),
        _ => Err(serde::de::Error::custom(format!(
            "`load_balancer` is `{text}`; give the Service as `NAMESPACE/NAME`, e.g. `shop/shop-web`"
        ))),
    }
}

/// The DNS record type that points at a load balancer's address.
pub(super) fn record_type(address: &str) -> &'static str {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "A",
        Ok(std::net::IpAddr::V6(_)) => "AAAA",
        Err(_) => "CNAME",
    }
}

/// Wait until `service`'s load balancer has an address, within `limit`, and return it.
pub(super) async fn wait(
    context: &StepContext,
    client: &kube::Client,
    service: &Service,
    limit: Duration,
) -> Result<String, StepError> {
    let Service { namespace, name } = service;
    let label = format!("Service/{name} in `{namespace}`");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), namespace);
    let what = format!("the load balancer of `{service}`");
    let waiting = context.wait_for(Wait::new("load-balancer", what).typically(LOAD_BALANCER_TYPICAL), || async {
        let found = services
            .get_opt(name)
            .await
            .map_err(|error| kubernetes::error(error, "get", &label))?;
        let Some(found) = found else {
            return Err(StepError::Refused {
                message: format!("{label} does not exist, so it has no load balancer"),
                hint: "check `load_balancer` against the manifests' Services, then `rebuild resume`".to_string(),
            });
        };
        let kind = found
            .spec
            .as_ref()
            .and_then(|spec| spec.type_.clone())
            .unwrap_or_default();
        if kind != "LoadBalancer" {
            return Err(StepError::Refused {
                message: format!("{label} is of type `{kind}`, not `LoadBalancer`"),
                hint: "point `load_balancer` at the Service of type LoadBalancer, then `rebuild resume`".to_string(),
            });
        }
        let address = found
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|balancer| balancer.ingress.as_ref())
            .and_then(|ingress| ingress.first())
            .and_then(|first| first.hostname.clone().or_else(|| first.ip.clone()));
        Ok(match address {
            Some(address) => Poll::Ready(address),
            None => Poll::Pending("no address yet".to_string()),
        })
    });
    match tokio::time::timeout(limit, waiting).await {
        Ok(result) => result,
        Err(_) => Err(StepError::Refused {
            message: format!(
                "{label} got no load balancer address within {}",
                duration::render(limit)
            ),
            hint: "check the cloud's load balancer controller (`kubectl describe service`, its events); then `rebuild resume` (the waves are not applied again)".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_follow_the_address() {
        assert_eq!(
            record_type("a1b2.elb.ap-southeast-1.amazonaws.com"),
            "CNAME"
        );
        assert_eq!(record_type("203.0.113.7"), "A");
        assert_eq!(record_type("2001:db8::7"), "AAAA");
    }
}
