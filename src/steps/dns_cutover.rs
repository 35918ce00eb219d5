//! `dns.cutover`: point the service's DNS records at the rebuilt region — an UPSERT per
//! record in a Route 53 hosted zone. The values the records had before are pinned in the
//! journal first (so the change can be reverted by hand from `rebuild status`), then the
//! change is submitted and waited for until `INSYNC`. The change has its own confirmation
//! gate: unless the run was started with `--yes`, the step asks on the terminal, showing
//! every record's old and new values, before it submits anything (the plan shows them too).

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec};

use super::context::Poll;
use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params};

static SPEC: KindSpec = KindSpec {
    kind: "dns.cutover",
    summary: "UPSERT DNS records in Route 53 to the new endpoints, journaling the old values",
    parameters: &[
        ParamSpec {
            name: "zone",
            required: true,
            help: "hosted zone name (e.g. `shop.example.com.`) or id",
        },
        ParamSpec {
            name: "records",
            required: true,
            help: "`[{name, type (CNAME, A, ...), values: [..], ttl (default 60)}]`",
        },
    ],
    outputs: &["zone_id", "records", "change_id"],
};

/// The `dns.cutover` step kind.
pub struct DnsCutover;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    zone: String,
    #[serde(default)]
    records: Vec<Record>,
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

/// A record as it is now (or `None` values when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    values: Vec<String>,
    ttl: Option<i64>,
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

async fn zone_id(
    client: &aws_sdk_route53::Client,
    zone: &str,
) -> Result<Option<String>, CloudError> {
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
    client: &aws_sdk_route53::Client,
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
async fn current(
    client: &aws_sdk_route53::Client,
    zone: &str,
    record: &Record,
) -> Result<Previous, CloudError> {
    let sets = sets_at(client, zone, record).await?;
    let found = sets
        .iter()
        .find(|set| set.r#type().as_str() == record.kind)
        .or_else(|| sets.first());
    Ok(Previous {
        name: fqdn(&record.name),
        kind: found.map_or_else(
            || record.kind.clone(),
            |set| set.r#type().as_str().to_string(),
        ),
        values: found
            .map(|set| {
                set.resource_records()
                    .iter()
                    .map(|r| r.value().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        ttl: found.and_then(|set| set.ttl()),
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

#[async_trait]
impl Step for DnsCutover {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        if params.records.is_empty() {
            return Ok(StepPlan::new(
                Action::Unknown,
                "the records' values come from steps that have not run yet",
            ));
        }
        let client = context.cloud.route53();
        let Some(zone) = zone_id(&client, &params.zone).await? else {
            let mut plan = StepPlan::new(Action::Unknown, "hosted zone not found");
            plan.problems.push(StepProblem::from(format!(
                "hosted zone `{}` does not exist",
                params.zone
            )));
            return Ok(plan);
        };
        let mut plan = StepPlan::new(
            Action::Create,
            format!(
                "UPSERT {} record(s) in `{}`",
                params.records.len(),
                params.zone
            ),
        );
        for record in &params.records {
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
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let client = context.cloud.route53();
        let zone = zone_id(&client, &params.zone).await?.ok_or_else(|| StepError::Refused {
            message: format!("hosted zone `{}` does not exist", params.zone),
            hint: "check `zone` in the playbook (Route 53 is global, so the zone should still exist)".into(),
        })?;
        // Old values first, pinned: a resume keeps the values from before the first attempt.
        let previous: Vec<Previous> = match context.pinned("previous") {
            Some(value) => serde_json::from_value(value)
                .map_err(|error| StepError::Params(error.to_string()))?,
            None => {
                let mut previous = Vec::new();
                for record in &params.records {
                    previous.push(current(&client, &zone, record).await?);
                }
                context.pin("previous", json!(previous))?;
                previous
            }
        };
        let mut changes = Vec::new();
        for record in &params.records {
            let values = wanted_values(record)?;
            let set = ResourceRecordSet::builder()
                .name(fqdn(&record.name))
                .r#type(RrType::from(record.kind.as_str()))
                .ttl(record.ttl)
                .set_resource_records(Some(
                    values
                        .iter()
                        .map(|value| ResourceRecord::builder().value(value).build())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|error| StepError::Params(error.to_string()))?,
                ))
                .build()
                .map_err(|error| StepError::Params(error.to_string()))?;
            // A change of type (CNAME ↔ A/AAAA) deletes what is there in the same batch:
            // Route 53 applies a batch all or nothing.
            for existing in sets_at(&client, &zone, record).await? {
                if conflicts(&record.kind, existing.r#type().as_str()) {
                    changes.push(
                        Change::builder()
                            .action(ChangeAction::Delete)
                            .resource_record_set(existing)
                            .build()
                            .map_err(|error| StepError::Params(error.to_string()))?,
                    );
                }
            }
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(set)
                    .build()
                    .map_err(|error| StepError::Params(error.to_string()))?,
            );
        }
        let batch = ChangeBatch::builder()
            .comment(format!(
                "rebuild run {} step {}",
                context.run_id, context.step_id
            ))
            .set_changes(Some(changes))
            .build()
            .map_err(|error| StepError::Params(error.to_string()))?;
        // The gate: DNS moves real users, so it is asked about on its own when the run was
        // not started with `--yes` — unless the records already point there (a resume).
        let mut moves = Vec::new();
        for record in &params.records {
            let now = current(&client, &zone, record).await?;
            let wanted = wanted_values(record)?;
            if now.kind != record.kind || now.values != wanted {
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
        }
        if !moves.is_empty() {
            context
                .confirm(format!("Cut DNS over: {}?", moves.join("; ")))
                .await?;
        }
        context.checkpoint("before-change")?;
        let answer = client
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(batch)
            .send()
            .await
            .cloud("ChangeResourceRecordSets", Some(params.zone.clone()))?;
        let change = answer
            .change_info()
            .map(|info| info.id().to_string())
            .unwrap_or_default();
        context.progress(format!("submitted DNS change {change}"));
        let change_id = change.clone();
        context
            .wait_for("the DNS change to be INSYNC", || async {
                let status = client
                    .get_change()
                    .id(&change_id)
                    .send()
                    .await
                    .cloud("GetChange", Some(change_id.clone()))?;
                match status.change_info().map(|info| info.status()) {
                    Some(ChangeStatus::Insync) => Ok(Poll::Ready(())),
                    other => Ok(Poll::Pending(
                        other.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    )),
                }
            })
            .await?;
        let records: Vec<serde_json::Value> = params
            .records
            .iter()
            .zip(&previous)
            .map(|(record, before)| {
                json!({"name": fqdn(&record.name), "type": record.kind, "values": record.values, "previous": before.values, "previous_type": before.kind})
            })
            .collect();
        Ok(Values::from([
            ("zone_id".to_string(), json!(zone)),
            ("records".to_string(), json!(records)),
            ("change_id".to_string(), json!(change)),
        ]))
    }
}
