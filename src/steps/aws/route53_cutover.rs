//! `dns.cutover`: point the service's DNS records at the rebuilt region — an UPSERT per
//! record in a Route 53 hosted zone — in this order: the values the records have now are
//! pinned in the journal (so the change can be reverted by hand from `rebuild status`);
//! the change batch is built (a record that changes type replaces the old set in the same
//! batch); the change has its own confirmation gate: unless the run was started with
//! `--yes`, the step asks on the terminal, showing every record's old and new values,
//! before it submits anything (the plan shows them too); then it is submitted and waited
//! for until `INSYNC`.

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::context::Poll;
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::required;
use crate::steps::interface::read_pins;

static SPEC: KindSpec = KindSpec {
    kind: "dns.cutover",
    summary: "UPSERT DNS records in Route 53 to the new endpoints, journaling the old values",
    parameters: &[
        required("zone", "hosted zone name (e.g. `shop.example.com.`) or id"),
        required(
            "records",
            "`[{name, type (CNAME, A, ...), values: [..], ttl (default 60)}]`",
        ),
    ],
    outputs: &["zone_id", "records", "change_id"],
};

/// The `dns.cutover` step kind.
pub(crate) struct DnsCutover;

/// The parameters; the records may come from an earlier step (see [`Phase`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    zone: String,
    records: P::Later<Vec<Record>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    #[serde(rename = "type", default = "cname")]
    kind: String,
    #[serde(default)]
    values: Vec<Option<String>>,
    #[serde(default = "default_ttl")]
    ttl: i64,
}

fn cname() -> String {
    "CNAME".to_string()
}
fn default_ttl() -> i64 {
    60
}

/// A record as it is now (or empty values when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    values: Vec<String>,
    ttl: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    zone_id: String,
    records: Vec<RecordOutput>,
    change_id: String,
}

/// A record as the outputs show it: what it is now, and what it was.
#[derive(Debug, Serialize, Deserialize)]
struct RecordOutput {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    values: Vec<Option<String>>,
    previous: Vec<String>,
    previous_type: String,
}

/// What the journal pins, so a resume keeps the values from before the first attempt.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    previous: Option<Vec<Previous>>,
}

impl Pins {
    const PREVIOUS: &str = "previous";
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The hosted zone's id, from an id or a name; `None` when no zone has that name.
async fn zone_id(client: &Client, zone: &str) -> Result<Option<String>, CloudError> {
    if zone.starts_with('Z') && !zone.contains('.') {
        return Ok(Some(zone.to_string()));
    }
    let wanted = fqdn(zone);
    let answer = client
        .list_hosted_zones_by_name()
        .dns_name(&wanted)
        .send()
        .await
        .cloud("ListHostedZonesByName", Some(wanted.clone()))?;
    Ok(answer
        .hosted_zones()
        .iter()
        .find(|found| found.name() == wanted)
        .map(|found| found.id().trim_start_matches("/hostedzone/").to_string()))
}

/// Whether a record set of type `existing` must go for one of type `wanted` at the same
/// name: a CNAME cannot share its name with an address record, nor they with it.
fn conflicts(wanted: &str, existing: &str) -> bool {
    wanted != existing
        && ((wanted == "CNAME" && matches!(existing, "A" | "AAAA"))
            || (existing == "CNAME" && matches!(wanted, "A" | "AAAA")))
}

/// The record sets at `record`'s name that answer for it now: the one of its type, and any
/// that a change to its type must replace (see [`conflicts`]).
async fn sets_at(
    client: &Client,
    zone: &str,
    record: &Record,
) -> Result<Vec<ResourceRecordSet>, CloudError> {
    let name = fqdn(&record.name);
    let answer = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&name)
        .max_items(20)
        .send()
        .await
        .cloud("ListResourceRecordSets", Some(name.clone()))?;
    Ok(answer
        .resource_record_sets()
        .iter()
        .filter(|set| fqdn(set.name()) == name)
        .filter(|set| {
            let kind = set.r#type().as_str();
            kind == record.kind || conflicts(&record.kind, kind)
        })
        .cloned()
        .collect())
}

/// What answers for `record` now: the set of its type, else one it would replace (a CNAME
/// where an A record is wanted), else nothing (empty values).
async fn current(client: &Client, zone: &str, record: &Record) -> Result<Previous, CloudError> {
    let sets = sets_at(client, zone, record).await?;
    let found = sets
        .iter()
        .find(|set| set.r#type().as_str() == record.kind)
        .or_else(|| sets.first());
    let values = found.map(|set| {
        let records = set.resource_records().iter();
        records.map(|r| r.value().to_string()).collect()
    });
    Ok(Previous {
        name: fqdn(&record.name),
        kind: found.map_or_else(
            || record.kind.clone(),
            |set| set.r#type().as_str().to_string(),
        ),
        values: values.unwrap_or_default(),
        ttl: found.and_then(ResourceRecordSet::ttl),
    })
}

fn wanted_values(record: &Record) -> Result<Vec<String>, StepError> {
    let values: Vec<String> = record.values.iter().flatten().cloned().collect();
    if values.is_empty() || values.len() != record.values.len() {
        return Err(StepError::Params(format!(
            "record `{}` needs `values` (all known)",
            record.name
        )));
    }
    Ok(values)
}

/// An SDK builder's refusal (a required field missing): a failure on this side.
fn unbuilt(error: aws_sdk_route53::error::BuildError) -> StepError {
    CloudError::local("ChangeResourceRecordSets", None, error.to_string()).into()
}

#[async_trait]
impl Step for DnsCutover {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        let Some(records) = params.records.filter(|records| !records.is_empty()) else {
            return Ok(StepPlan::new(
                Action::Unknown,
                "the records' values come from steps that have not run yet",
            ));
        };
        let client = context.cloud.route53();
        let Some(zone) = zone_id(&client, &params.zone).await? else {
            let mut plan = StepPlan::new(Action::Unknown, "hosted zone not found");
            let problem = format!("hosted zone `{}` does not exist", params.zone);
            plan.problems.push(StepProblem::from(problem));
            return Ok(plan);
        };
        let summary = format!("UPSERT {} record(s) in `{}`", records.len(), params.zone);
        let mut plan = StepPlan::new(Action::Create, summary);
        for record in &records {
            let before = current(&client, &zone, record).await?;
            let mut after: Vec<String> = record
                .values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "(known after apply)".into()))
                .collect();
            if after.is_empty() {
                after.push("(known after apply)".into());
            }
            let before = if before.values.is_empty() {
                "(none)".to_string()
            } else if before.kind != record.kind {
                // Only when the type is known: a type from a later step plans as the default.
                format!("{} {} (replaced)", before.kind, before.values.join(", "))
            } else {
                before.values.join(", ")
            };
            plan = plan.detail(
                format!("{} {}", record.kind, fqdn(&record.name)),
                format!("{before} → {}", after.join(", ")),
            );
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let client = context.cloud.route53();
        let zone = zone_id(&client, &params.zone).await?.ok_or_else(|| StepError::Refused {
            message: format!("hosted zone `{}` does not exist", params.zone),
            hint: "check `zone` in the playbook (Route 53 is global, so the zone should still exist)".into(),
        })?;
        let previous = pin_previous(context, &client, &zone, &params.records).await?;
        let batch = change_batch(context, &client, &zone, &params.records).await?;
        confirm(context, &client, &zone, &params.records).await?;
        context.checkpoint("before-change")?;
        let change_id = submit(context, &client, &zone, &params.zone, batch).await?;
        let records = params.records.into_iter().zip(previous);
        let records = records.map(|(record, before)| RecordOutput {
            name: fqdn(&record.name),
            kind: record.kind,
            values: record.values,
            previous: before.values,
            previous_type: before.kind,
        });
        interface::outputs(&Outputs {
            zone_id: zone,
            records: records.collect(),
            change_id,
        })
    }
}

/// The records' values before the change: pinned by an earlier attempt, or read and pinned
/// now.
async fn pin_previous(
    context: &StepContext,
    client: &Client,
    zone: &str,
    records: &[Record],
) -> Result<Vec<Previous>, StepError> {
    let pins: Pins =
        read_pins(&context.pins()).map_err(|error| StepError::Params(error.to_string()))?;
    if let Some(previous) = pins.previous {
        return Ok(previous);
    }
    let mut previous = Vec::new();
    for record in records {
        previous.push(current(client, zone, record).await?);
    }
    context.pin(Pins::PREVIOUS, serde_json::json!(previous))?;
    Ok(previous)
}

/// One batch, applied by Route 53 all or nothing: an UPSERT per record, preceded by the
/// deletion of a set of another type that it replaces (CNAME ↔ A/AAAA).
async fn change_batch(
    context: &StepContext,
    client: &Client,
    zone: &str,
    records: &[Record],
) -> Result<ChangeBatch, StepError> {
    let mut changes = Vec::new();
    for record in records {
        let values = values_of(&wanted_values(record)?)?;
        let set = ResourceRecordSet::builder()
            .name(fqdn(&record.name))
            .r#type(RrType::from(record.kind.as_str()))
            .ttl(record.ttl)
            .set_resource_records(Some(values))
            .build()
            .map_err(unbuilt)?;
        for existing in sets_at(client, zone, record).await? {
            if conflicts(&record.kind, existing.r#type().as_str()) {
                changes.push(change(ChangeAction::Delete, existing)?);
            }
        }
        changes.push(change(ChangeAction::Upsert, set)?);
    }
    ChangeBatch::builder()
        .comment(format!(
            "rebuild run {} step {}",
            context.run_id, context.step_id
        ))
        .set_changes(Some(changes))
        .build()
        .map_err(unbuilt)
}

fn values_of(values: &[String]) -> Result<Vec<ResourceRecord>, StepError> {
    let records = values
        .iter()
        .map(|value| ResourceRecord::builder().value(value).build());
    records.collect::<Result<_, _>>().map_err(unbuilt)
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, StepError> {
    let change = Change::builder().action(action).resource_record_set(set);
    change.build().map_err(unbuilt)
}

/// The gate: DNS moves real users, so it is asked about on its own when the run was not
/// started with `--yes` — unless the records already point there (a resume).
async fn confirm(
    context: &StepContext,
    client: &Client,
    zone: &str,
    records: &[Record],
) -> Result<(), StepError> {
    let mut moves = Vec::new();
    for record in records {
        let now = current(client, zone, record).await?;
        let wanted = wanted_values(record)?;
        if now.kind == record.kind && now.values == wanted {
            continue;
        }
        let was = if now.values.is_empty() {
            "nothing".to_string()
        } else {
            now.values.join(", ")
        };
        let was = if now.kind == record.kind {
            was
        } else {
            format!("{} {was}", now.kind)
        };
        moves.push(format!(
            "{} {} → {} (now {was})",
            record.kind,
            fqdn(&record.name),
            wanted.join(", ")
        ));
    }
    if moves.is_empty() {
        return Ok(());
    }
    context
        .confirm(format!("Cut DNS over: {}?", moves.join("; ")))
        .await
}

/// Submit the batch and wait until Route 53 says `INSYNC`; the change's id.
async fn submit(
    context: &StepContext,
    client: &Client,
    zone: &str,
    zone_name: &str,
    batch: ChangeBatch,
) -> Result<String, StepError> {
    let answer = client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .cloud("ChangeResourceRecordSets", Some(zone_name.to_string()))?;
    let change = answer.change_info().map(|info| info.id().to_string());
    let change = change.unwrap_or_default();
    context.progress(format!("submitted DNS change {change}"));
    context
        .wait_for("the DNS change to be INSYNC", || async {
            let status = client
                .get_change()
                .id(&change)
                .send()
                .await
                .cloud("GetChange", Some(change.clone()))?;
            match status.change_info().map(|info| info.status()) {
                Some(ChangeStatus::Insync) => Ok(Poll::Ready(())),
                other => Ok(Poll::Pending(
                    other.map(|s| s.as_str().to_string()).unwrap_or_default(),
                )),
            }
        })
        .await?;
    Ok(change)
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
                "zone": "shop.example.com.",
                "records": [{"name": "api", "type": "A", "values": ["192.0.2.1"], "ttl": 60}],
            }),
        );
        assert_eq!(interface::field_names::<Pins>(), [Pins::PREVIOUS]);
        let planned: Params<Planning> = serde_json::from_value(json!({"zone": "z"})).unwrap();
        assert_eq!(planned.records, None);
    }

    #[test]
    fn a_cname_and_an_address_record_replace_each_other() {
        assert!(conflicts("CNAME", "A"));
        assert!(conflicts("AAAA", "CNAME"));
        assert!(!conflicts("A", "AAAA"));
        assert!(!conflicts("CNAME", "CNAME"));
        assert!(!conflicts("CNAME", "TXT"));
    }

    #[test]
    fn names_are_fully_qualified() {
        assert_eq!(fqdn("api.shop.example.com"), "api.shop.example.com.");
        assert_eq!(fqdn("api.shop.example.com."), "api.shop.example.com.");
    }
}
