//! Route 53 as production has it, seeded and read through the SDK: public and private
//! hosted zones of the same name (split-horizon DNS), simple records, alias records to a
//! load balancer, and records with a routing policy (`SetIdentifier`: failover, weighted).
//!
//! Route 53 is global: every client talks to `us-east-1`. A private zone is attached to a
//! VPC of the lost region, as AWS requires (`CreateHostedZone` with `VPC` and
//! `HostedZoneConfig.PrivateZone`).

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, HostedZoneConfig, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, RrType, Vpc, VpcRegion,
};

use super::seed::{PROD_REGION, block_on, ec2_client, sdk_config};

/// The Route 53 hosted zone id of Application and Classic Load Balancers in ap-southeast-2
/// (the load balancer's `CanonicalHostedZoneId`; AWS General Reference, Elastic Load
/// Balancing endpoints): what an alias record to the lost region's load balancer names.
pub const ELB_ZONE_AP_SOUTHEAST_2: &str = "Z1GM3OXH4ZPM65";
/// The same for ap-southeast-1, the region rebuilt in.
pub const ELB_ZONE_AP_SOUTHEAST_1: &str = "Z1LMS91P8CMLE5";

/// A Route 53 client for `endpoint` (moto, or the proxy to be held to AWS's rules).
pub async fn client(endpoint: &str) -> Client {
    Client::new(&sdk_config(endpoint, "us-east-1").await)
}

/// Creates a hosted zone `name`, public or private (attached to a new VPC in the lost
/// region); its id without `/hostedzone/`.
pub fn create_zone(endpoint: &str, name: &str, private: bool) -> String {
    block_on(async {
        let route53 = client(endpoint).await;
        let reference = format!("{name}-{}", fastrand::u64(..));
        let mut request = route53
            .create_hosted_zone()
            .name(name)
            .caller_reference(reference);
        if private {
            let ec2 = ec2_client(endpoint, PROD_REGION).await;
            let vpc = ec2
                .create_vpc()
                .cidr_block("10.20.0.0/16")
                .send()
                .await
                .expect("a VPC for the private zone");
            let vpc_id = vpc
                .vpc()
                .and_then(|vpc| vpc.vpc_id())
                .expect("the VPC's id");
            request = request
                .vpc(
                    Vpc::builder()
                        .vpc_id(vpc_id)
                        .vpc_region(VpcRegion::from(PROD_REGION))
                        .build(),
                )
                .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build());
        }
        let zone = request.send().await.expect("create the hosted zone");
        zone.hosted_zone()
            .expect("the created zone")
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string()
    })
}

/// A simple record set.
pub fn simple(name: &str, kind: &str, ttl: i64, values: &[&str]) -> ResourceRecordSet {
    let records = values.iter().map(|value| {
        ResourceRecord::builder()
            .value(*value)
            .build()
            .expect("a record")
    });
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(kind))
        .ttl(ttl)
        .set_resource_records(Some(records.collect()))
        .build()
        .expect("a record set")
}

/// An alias A record set to a load balancer (`dns_name` in the zone `elb_zone`).
pub fn alias(name: &str, dns_name: &str, elb_zone: &str, evaluate: bool) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .dns_name(dns_name)
                .hosted_zone_id(elb_zone)
                .evaluate_target_health(evaluate)
                .build()
                .expect("an alias target"),
        )
        .build()
        .expect("an alias record set")
}

/// A failover A record set (`PRIMARY` or `SECONDARY`) identified by `id`.
pub fn failover(name: &str, id: &str, role: &str, ttl: i64, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .set_identifier(id)
        .failover(ResourceRecordSetFailover::from(role))
        .ttl(ttl)
        .resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .expect("a record"),
        )
        .build()
        .expect("a failover record set")
}

/// Submits one change batch of `changes` to the zone through `endpoint`.
pub async fn change(
    endpoint: &str,
    zone: &str,
    changes: Vec<(ChangeAction, ResourceRecordSet)>,
) -> Result<(), aws_sdk_route53::Error> {
    let changes = changes.into_iter().map(|(action, set)| {
        Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .expect("a change")
    });
    let batch = ChangeBatch::builder()
        .set_changes(Some(changes.collect()))
        .build()
        .expect("a change batch");
    client(endpoint)
        .await
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .map(|_| ())
        .map_err(aws_sdk_route53::Error::from)
}

/// Creates (UPSERTs) `sets` in the zone, straight in moto.
pub fn put(endpoint: &str, zone: &str, sets: Vec<ResourceRecordSet>) {
    let changes = sets.into_iter().map(|set| (ChangeAction::Upsert, set));
    block_on(change(endpoint, zone, changes.collect())).expect("seed the record sets");
}

/// Every record set of the zone, as Route 53 lists them.
pub fn record_sets(endpoint: &str, zone: &str) -> Vec<ResourceRecordSet> {
    block_on(async {
        client(endpoint)
            .await
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .expect("list the record sets")
            .resource_record_sets()
            .to_vec()
    })
}

/// The record sets named `name` (fully qualified) of the zone.
pub fn sets_named(endpoint: &str, zone: &str, name: &str) -> Vec<ResourceRecordSet> {
    let sets = record_sets(endpoint, zone).into_iter();
    sets.filter(|set| set.name() == name).collect()
}

/// The ids and privacy of the zones `ListHostedZonesByName` returns for `name`.
pub fn zones_named(endpoint: &str, name: &str) -> Vec<(String, bool)> {
    block_on(async {
        let answer = client(endpoint)
            .await
            .list_hosted_zones_by_name()
            .dns_name(name)
            .send()
            .await
            .expect("list the hosted zones");
        answer
            .hosted_zones()
            .iter()
            .filter(|zone| zone.name() == name)
            .map(|zone| {
                let id = zone.id().trim_start_matches("/hostedzone/").to_string();
                (
                    id,
                    zone.config().is_some_and(|config| config.private_zone()),
                )
            })
            .collect()
    })
}

/// A record set from the journaled shape of `dns.cutover`'s `previous` (Route 53's own
/// `ResourceRecordSet` as `aws route53 change-resource-record-sets` takes it), read
/// independently of the code under test.
pub fn from_journal(set: &serde_json::Value) -> ResourceRecordSet {
    let text = |key: &str| set.get(key).and_then(serde_json::Value::as_str);
    let mut builder = ResourceRecordSet::builder()
        .name(text("Name").expect("Name"))
        .r#type(RrType::from(text("Type").expect("Type")))
        .set_ttl(set.get("TTL").and_then(serde_json::Value::as_i64))
        .set_set_identifier(text("SetIdentifier").map(str::to_string))
        .set_weight(set.get("Weight").and_then(serde_json::Value::as_i64))
        .set_failover(text("Failover").map(ResourceRecordSetFailover::from))
        .set_health_check_id(text("HealthCheckId").map(str::to_string));
    if let Some(records) = set
        .get("ResourceRecords")
        .and_then(serde_json::Value::as_array)
    {
        for record in records {
            let value = record["Value"].as_str().expect("Value");
            builder =
                builder.resource_records(ResourceRecord::builder().value(value).build().unwrap());
        }
    }
    if let Some(target) = set.get("AliasTarget") {
        builder = builder.alias_target(
            AliasTarget::builder()
                .dns_name(target["DNSName"].as_str().expect("DNSName"))
                .hosted_zone_id(target["HostedZoneId"].as_str().expect("HostedZoneId"))
                .evaluate_target_health(
                    target["EvaluateTargetHealth"]
                        .as_bool()
                        .expect("EvaluateTargetHealth"),
                )
                .build()
                .expect("an alias target"),
        );
    }
    builder.build().expect("a record set")
}
