//! A Route 53 record set as `dns.cutover` journals it: every field of a
//! `ResourceRecordSet` (type, TTL, values, alias target, set identifier and the routing
//! policy's fields), written in Route 53's own JSON shape — the one `aws route53
//! change-resource-record-sets` takes — so a journaled set can be put back exactly, and a
//! `DELETE` can name it exactly (Route 53 refuses a `DELETE` that does not repeat the set).
//! Conversions to and from the SDK's type, and how a set reads in a plan.

use aws_sdk_route53::error::BuildError;
use aws_sdk_route53::types::{
    self as sdk, ResourceRecordSetFailover, ResourceRecordSetRegion, RrType,
};
use serde::{Deserialize, Serialize};

/// One record set, as Route 53 holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RecordSet {
    /// The fully qualified name.
    pub name: String,
    /// `A`, `CNAME`, …
    #[serde(rename = "Type")]
    pub kind: String,
    /// Routing policies only: which of the sets of this name and type it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// Weighted routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Latency routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Geolocation routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_location: Option<GeoLocation>,
    /// Failover routing: `PRIMARY` or `SECONDARY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    /// Multivalue answer routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_value_answer: Option<bool>,
    /// Seconds; none for an alias.
    #[serde(default, rename = "TTL", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The values; none for an alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_records: Vec<ResourceRecord>,
    /// Alias records: what they alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<AliasTarget>,
    /// The health check it answers by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
    /// The traffic policy instance that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy_instance_id: Option<String>,
    /// IP-based routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_routing_config: Option<CidrRoutingConfig>,
    /// Geoproximity routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_proximity_location: Option<GeoProximityLocation>,
}

/// One value of a record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ResourceRecord {
    /// The value.
    pub value: String,
}

/// What an alias record answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AliasTarget {
    /// The target's hosted zone (a load balancer's `CanonicalHostedZoneId`).
    pub hosted_zone_id: String,
    /// The target's name.
    #[serde(rename = "DNSName")]
    pub dns_name: String,
    /// Whether Route 53 answers by the target's health.
    pub evaluate_target_health: bool,
}

/// Geolocation routing's location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GeoLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    continent_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subdivision_code: Option<String>,
}

/// IP-based routing's location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CidrRoutingConfig {
    collection_id: String,
    location_name: String,
}

/// Geoproximity routing's location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GeoProximityLocation {
    #[serde(default, rename = "AWSRegion", skip_serializing_if = "Option::is_none")]
    aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local_zone_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    coordinates: Option<Coordinates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bias: Option<i32>,
}

/// A point on Earth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Coordinates {
    latitude: String,
    longitude: String,
}

/// A DNS name as Route 53 compares them: lower case, with the final `.`.
pub(super) fn normal_name(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

impl RecordSet {
    /// A set of this name and type with nothing else yet.
    pub(super) fn new(name: &str, kind: &str) -> Self {
        Self {
            name: name.to_string(),
            kind: kind.to_string(),
            set_identifier: None,
            weight: None,
            region: None,
            geo_location: None,
            failover: None,
            multi_value_answer: None,
            ttl: None,
            resource_records: Vec::new(),
            alias_target: None,
            health_check_id: None,
            traffic_policy_instance_id: None,
            cidr_routing_config: None,
            geo_proximity_location: None,
        }
    }

    /// Whether it carries a routing policy (a set identifier): it is one of several sets of
    /// its name and type.
    pub(super) fn is_routed(&self) -> bool {
        self.set_identifier.is_some()
    }

    /// The values, in order.
    pub(super) fn values(&self) -> Vec<String> {
        self.resource_records
            .iter()
            .map(|record| record.value.clone())
            .collect()
    }

    /// Whether it answers like `other`: same name, type, TTL, values (in any order), alias
    /// target (names compared as DNS names) and routing fields.
    pub(super) fn answers_like(&self, other: &Self) -> bool {
        self.comparable() == other.comparable()
    }

    fn comparable(&self) -> Self {
        let mut set = self.clone();
        set.name = normal_name(&set.name);
        set.resource_records.sort_by(|a, b| a.value.cmp(&b.value));
        if let Some(target) = &mut set.alias_target {
            target.dns_name = normal_name(&target.dns_name);
        }
        set
    }

    /// What it answers: its values, or its alias target; for a set with a routing policy,
    /// its identifier and policy first.
    pub(super) fn answer(&self) -> String {
        let answer = match &self.alias_target {
            Some(target) => format!(
                "alias to {} (zone {})",
                target.dns_name, target.hosted_zone_id
            ),
            None => self.values().join(", "),
        };
        match &self.set_identifier {
            Some(id) => format!("`{id}` ({}) {answer}", self.routing_policy()),
            None => answer,
        }
    }

    /// How it reads in a plan: [`RecordSet::answer`] and the TTL (an alias has none of its
    /// own).
    pub(super) fn describe(&self) -> String {
        match self.ttl {
            Some(ttl) => format!("{} (TTL {ttl} s)", self.answer()),
            None => self.answer(),
        }
    }

    /// The routing policy's name and its setting (`failover PRIMARY`, `weight 10`, …).
    fn routing_policy(&self) -> String {
        if let Some(role) = &self.failover {
            format!("failover {role}")
        } else if let Some(weight) = self.weight {
            format!("weight {weight}")
        } else if let Some(region) = &self.region {
            format!("latency {region}")
        } else if self.geo_location.is_some() {
            "geolocation".to_string()
        } else if self.multi_value_answer.is_some() {
            "multivalue answer".to_string()
        } else if self.cidr_routing_config.is_some() {
            "IP-based".to_string()
        } else if self.geo_proximity_location.is_some() {
            "geoproximity".to_string()
        } else {
            "routing policy".to_string()
        }
    }

    /// The set as the SDK writes it in a change.
    pub(super) fn to_sdk(&self) -> Result<sdk::ResourceRecordSet, BuildError> {
        let records = self
            .resource_records
            .iter()
            .map(|record| sdk::ResourceRecord::builder().value(&record.value).build());
        let records = records.collect::<Result<Vec<_>, _>>()?;
        let alias = match &self.alias_target {
            Some(target) => Some(
                sdk::AliasTarget::builder()
                    .hosted_zone_id(&target.hosted_zone_id)
                    .dns_name(&target.dns_name)
                    .evaluate_target_health(target.evaluate_target_health)
                    .build()?,
            ),
            None => None,
        };
        let cidr = match &self.cidr_routing_config {
            Some(config) => Some(
                sdk::CidrRoutingConfig::builder()
                    .collection_id(&config.collection_id)
                    .location_name(&config.location_name)
                    .build()?,
            ),
            None => None,
        };
        let proximity = match &self.geo_proximity_location {
            Some(location) => Some(location.to_sdk()?),
            None => None,
        };
        sdk::ResourceRecordSet::builder()
            .name(&self.name)
            .r#type(RrType::from(self.kind.as_str()))
            .set_set_identifier(self.set_identifier.clone())
            .set_weight(self.weight)
            .set_region(self.region.as_deref().map(ResourceRecordSetRegion::from))
            .set_geo_location(self.geo_location.as_ref().map(|location| {
                sdk::GeoLocation::builder()
                    .set_continent_code(location.continent_code.clone())
                    .set_country_code(location.country_code.clone())
                    .set_subdivision_code(location.subdivision_code.clone())
                    .build()
            }))
            .set_failover(
                self.failover
                    .as_deref()
                    .map(ResourceRecordSetFailover::from),
            )
            .set_multi_value_answer(self.multi_value_answer)
            .set_ttl(self.ttl)
            .set_resource_records((!records.is_empty()).then_some(records))
            .set_alias_target(alias)
            .set_health_check_id(self.health_check_id.clone())
            .set_traffic_policy_instance_id(self.traffic_policy_instance_id.clone())
            .set_cidr_routing_config(cidr)
            .set_geo_proximity_location(proximity)
            .build()
    }
}

impl GeoProximityLocation {
    fn to_sdk(&self) -> Result<sdk::GeoProximityLocation, BuildError> {
        let coordinates = match &self.coordinates {
            Some(point) => Some(
                sdk::Coordinates::builder()
                    .latitude(&point.latitude)
                    .longitude(&point.longitude)
                    .build()?,
            ),
            None => None,
        };
        Ok(sdk::GeoProximityLocation::builder()
            .set_aws_region(self.aws_region.clone())
            .set_local_zone_group(self.local_zone_group.clone())
            .set_coordinates(coordinates)
            .set_bias(self.bias)
            .build())
    }
}

impl From<&sdk::ResourceRecordSet> for RecordSet {
    fn from(set: &sdk::ResourceRecordSet) -> Self {
        let text = |value: Option<&str>| value.map(str::to_string);
        Self {
            name: set.name().to_string(),
            kind: set.r#type().as_str().to_string(),
            set_identifier: text(set.set_identifier()),
            weight: set.weight(),
            region: set.region().map(|region| region.as_str().to_string()),
            geo_location: set.geo_location().map(|location| GeoLocation {
                continent_code: text(location.continent_code()),
                country_code: text(location.country_code()),
                subdivision_code: text(location.subdivision_code()),
            }),
            failover: set.failover().map(|role| role.as_str().to_string()),
            multi_value_answer: set.multi_value_answer(),
            ttl: set.ttl(),
            resource_records: set
                .resource_records()
                .iter()
                .map(|record| ResourceRecord {
                    value: record.value().to_string(),
                })
                .collect(),
            alias_target: set.alias_target().map(|target| AliasTarget {
                hosted_zone_id: target.hosted_zone_id().to_string(),
                dns_name: target.dns_name().to_string(),
                evaluate_target_health: target.evaluate_target_health(),
            }),
            health_check_id: text(set.health_check_id()),
            traffic_policy_instance_id: text(set.traffic_policy_instance_id()),
            cidr_routing_config: set.cidr_routing_config().map(|config| CidrRoutingConfig {
                collection_id: config.collection_id().to_string(),
                location_name: config.location_name().to_string(),
            }),
            geo_proximity_location: set.geo_proximity_location().map(|location| {
                GeoProximityLocation {
                    aws_region: text(location.aws_region()),
                    local_zone_group: text(location.local_zone_group()),
                    coordinates: location.coordinates().map(|point| Coordinates {
                        latitude: point.latitude().to_string(),
                        longitude: point.longitude().to_string(),
                    }),
                    bias: location.bias(),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_field_survives_the_journal_and_the_sdk() {
        let journaled = json!({
            "Name": "api.shop.example.com.",
            "Type": "A",
            "SetIdentifier": "primary",
            "Failover": "PRIMARY",
            "Weight": 10,
            "Region": "ap-southeast-2",
            "GeoLocation": {"ContinentCode": "OC"},
            "MultiValueAnswer": true,
            "TTL": 300,
            "ResourceRecords": [{"Value": "192.0.2.1"}, {"Value": "192.0.2.2"}],
            "HealthCheckId": "hc-1",
            "CidrRoutingConfig": {"CollectionId": "c-1", "LocationName": "office"},
            "GeoProximityLocation": {"AWSRegion": "ap-southeast-2", "Bias": 5,
                                     "Coordinates": {"Latitude": "-33.87", "Longitude": "151.21"}},
        });
        let set: RecordSet = serde_json::from_value(journaled.clone()).unwrap();
        assert_eq!(serde_json::to_value(&set).unwrap(), journaled);
        let back = RecordSet::from(&set.to_sdk().unwrap());
        assert_eq!(back, set);

        let alias = json!({
            "Name": "shop.example.com.",
            "Type": "A",
            "AliasTarget": {"HostedZoneId": "Z1GM3OXH4ZPM65",
                            "DNSName": "shop-web-1234.ap-southeast-2.elb.amazonaws.com.",
                            "EvaluateTargetHealth": true},
        });
        let set: RecordSet = serde_json::from_value(alias.clone()).unwrap();
        assert_eq!(serde_json::to_value(&set).unwrap(), alias);
        assert_eq!(RecordSet::from(&set.to_sdk().unwrap()), set);
        assert_eq!(
            set.describe(),
            "alias to shop-web-1234.ap-southeast-2.elb.amazonaws.com. (zone Z1GM3OXH4ZPM65)"
        );
    }

    #[test]
    fn sets_answer_alike_whatever_the_order_of_values_and_the_case_of_names() {
        let set = |name: &str, values: &[&str]| RecordSet {
            ttl: Some(60),
            resource_records: values
                .iter()
                .map(|value| ResourceRecord {
                    value: (*value).to_string(),
                })
                .collect(),
            ..RecordSet::new(name, "A")
        };
        let one = set("API.shop.example.com", &["192.0.2.1", "192.0.2.2"]);
        assert!(one.answers_like(&set("api.shop.example.com.", &["192.0.2.2", "192.0.2.1"])));
        assert!(!one.answers_like(&set("api.shop.example.com.", &["192.0.2.1"])));
        assert_eq!(one.describe(), "192.0.2.1, 192.0.2.2 (TTL 60 s)");
    }
}
