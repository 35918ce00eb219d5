//! `dns.cutover`: point the service's DNS records at the rebuilt region, in one Route 53
//! change batch in the public hosted zone, in this order: the zone is chosen ([`zone`]:
//! private zones of the same name are left alone, and several public ones are the
//! operator's choice); the record sets that answer for each record now are read whole
//! ([`record_set`]: type, TTL, values, alias target, routing fields) and pinned in the
//! journal, so the change can be reverted exactly by hand from `rebuild status`; records
//! with a routing policy, a CNAME at the zone apex and a CNAME next to other records stop
//! the plan; the batch is built (each answering set that differs from the new one deleted
//! exactly as Route 53 holds it, then the new one UPSERTed); the change has its own
//! confirmation gate: unless the run was started with `--yes`, the step asks on the
//! terminal, showing every record's old (with its TTL: resolvers may keep the old answer that
//! long) and new answer, before it submits anything (the plan shows them too); then it is
//! submitted and waited for until `INSYNC`.

mod record_set;
mod zone;

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ChangeStatus};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::KindSpec;
use crate::steps::context::{Poll, Wait};
use crate::steps::interface::{self, Applying, Phase, Planning, read_pins};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use self::record_set::{AliasTarget, RecordSet, ResourceRecord, normal_name};
use self::zone::{Found, Zone};
use super::{optional, required};

/// How long Route 53 usually takes to apply a change on all its servers (`INSYNC`, within about a minute).
const INSYNC_TYPICAL: Duration = Duration::from_secs(60);

static SPEC: KindSpec = KindSpec {
    kind: "dns.cutover",
    summary: "UPSERT DNS records in a Route 53 public hosted zone to the new endpoints, journaling the old record sets whole",
    parameters: &[
        required("zone", "hosted zone name (e.g. `shop.example.com.`) or id"),
        optional(
            "zone_id",
            "the public hosted zone's id, when several public zones have the name",
        ),
        required(
            "records",
            "`[{name, type (CNAME, A, ...), values: [..] or alias: {dns_name, hosted_zone_id, evaluate_target_health}, ttl (default 60)}]`",
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
    #[serde(default)]
    zone_id: Option<String>,
    records: P::Later<Vec<Record>>,
}

/// One record to set: simple (`values`, `ttl`) or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    /// Not given: `A` for an alias, else `CNAME`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    values: Vec<Option<String>>,
    #[serde(default)]
    alias: Option<Alias>,
    #[serde(default = "default_ttl")]
    ttl: i64,
}

/// An alias record's target: a load balancer (`dns_name`, and its `CanonicalHostedZoneId`
/// as `hosted_zone_id`), a CloudFront distribution, another record of the zone, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Alias {
    #[serde(default)]
    dns_name: Option<String>,
    #[serde(default)]
    hosted_zone_id: Option<String>,
    #[serde(default)]
    evaluate_target_health: bool,
}

fn default_ttl() -> i64 {
    60
}

/// What answered for a record before the change. `sets` holds the record sets whole (absent
/// in journals written before they were kept: then `values` and `ttl` are all there is, and
/// an alias shows as empty `values`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    values: Vec<String>,
    ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sets: Option<Vec<RecordSet>>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<Alias>,
    previous: Vec<String>,
    previous_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_sets: Option<Vec<RecordSet>>,
}

/// What the journal pins, so a resume keeps the record sets from before the first attempt.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    previous: Option<Vec<Previous>>,
}

impl Pins {
    const PREVIOUS: &str = "previous";
}

impl Record {
    /// The record's fully qualified name.
    fn fqdn(&self) -> String {
        normal_name(&self.name)
    }

    /// The type: as given, else `A` for an alias and `CNAME` otherwise.
    fn kind(&self) -> String {
        match (&self.kind, &self.alias) {
            (Some(kind), _) => kind.clone(),
            (None, Some(_)) => "A".to_string(),
            (None, None) => "CNAME".to_string(),
        }
    }

    /// What is wrong with it in `zone` that planning can see (every part known or not).
    fn problems(&self, zone: &str) -> Vec<String> {
        let name = self.fqdn();
        let mut problems = Vec::new();
        if name != zone && !name.ends_with(&format!(".{zone}")) {
            problems.push(format!(
                "record `{name}` is not in the hosted zone `{zone}`"
            ));
        }
        if self.alias.is_some() && !self.values.is_empty() {
            problems.push(format!(
                "record `{name}`: give `values` or `alias`, not both"
            ));
        }
        if name == zone && self.kind() == "CNAME" {
            problems.push(format!(
                "record `{name}` is the zone apex, where DNS allows no CNAME{}: give it `alias: {{dns_name, hosted_zone_id}}` (an A record aliasing the load balancer, with the load balancer's canonical hosted zone id)",
                if self.kind.is_none() { " (the type when not given, or not known yet)" } else { "" }
            ));
        }
        problems
    }

    /// The record set it asks for (when applying: every part known).
    fn wanted(&self) -> Result<RecordSet, StepError> {
        let name = self.fqdn();
        let missing = |what: &str| StepError::Params(format!("record `{name}` needs {what}"));
        let mut set = RecordSet::new(&name, &self.kind());
        if let Some(alias) = &self.alias {
            if !self.values.is_empty() {
                return Err(missing("`values` or `alias`, not both"));
            }
            let (Some(dns_name), Some(zone)) = (&alias.dns_name, &alias.hosted_zone_id) else {
                return Err(missing("`alias.dns_name` and `alias.hosted_zone_id`"));
            };
            set.alias_target = Some(AliasTarget {
                hosted_zone_id: zone.clone(),
                dns_name: normal_name(dns_name),
                evaluate_target_health: alias.evaluate_target_health,
            });
            return Ok(set);
        }
        let values: Vec<String> = self.values.iter().flatten().cloned().collect();
        if values.is_empty() || values.len() != self.values.len() {
            return Err(missing("`values` (all known) or `alias`"));
        }
        set.ttl = Some(self.ttl);
        set.resource_records = values
            .into_iter()
            .map(|value| ResourceRecord { value })
            .collect();
        Ok(set)
    }

    /// The new answer as the plan shows it, parts not known yet marked.
    fn after(&self) -> String {
        let later = || "(known after apply)".to_string();
        if let Some(alias) = &self.alias {
            return format!(
                "alias to {} (zone {})",
                alias.dns_name.as_deref().map_or_else(later, normal_name),
                alias.hosted_zone_id.clone().unwrap_or_else(later)
            );
        }
        let after: Vec<String> = self
            .values
            .iter()
            .map(|value| value.clone().unwrap_or_else(later))
            .collect();
        if after.is_empty() {
            later()
        } else {
            after.join(", ")
        }
    }
}

/// Whether a record set of type `existing` must go for one of type `wanted` at the same
/// name: a CNAME shares its name with no other record, so an address record replaces it
/// and a CNAME replaces address records (other types next to a wanted CNAME stop the plan:
/// see [`blocking`]).
fn conflicts(wanted: &str, existing: &str) -> bool {
    wanted != existing
        && (existing == "CNAME" || (wanted == "CNAME" && matches!(existing, "A" | "AAAA")))
}

/// Record sets that a wanted CNAME could not sit next to and that the step will not delete
/// (TXT, MX, …: they are not an address of the service).
fn blocking<'a>(kind: &str, sets: &'a [RecordSet]) -> Vec<&'a RecordSet> {
    if kind != "CNAME" {
        return Vec::new();
    }
    let answering = |set: &&RecordSet| set.kind == kind || conflicts(kind, &set.kind);
    sets.iter().filter(|set| !answering(set)).collect()
}

/// Every record set named `name` in the zone (a name's sets are listed together, in pages).
async fn sets_named(client: &Client, zone: &str, name: &str) -> Result<Vec<RecordSet>, CloudError> {
    let mut sets = Vec::new();
    let mut next = Some((name.to_string(), None, None));
    while let Some((start, kind, identifier)) = next.take() {
        let answer = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(start)
            .set_start_record_type(kind)
            .set_start_record_identifier(identifier)
            .send()
            .await
            .cloud("ListResourceRecordSets", Some(name.to_string()))?;
        let listed = answer.resource_record_sets().iter();
        sets.extend(
            listed
                .filter(|set| normal_name(set.name()) == name)
                .map(RecordSet::from),
        );
        if answer.is_truncated()
            && let Some(start) = answer.next_record_name()
            && normal_name(start) == name
        {
            next = Some((
                start.to_string(),
                answer.next_record_type().cloned(),
                answer.next_record_identifier().map(str::to_string),
            ));
        }
    }
    Ok(sets)
}

/// What the zone holds at a record's name: the sets that answer for it now (its type, and
/// those its type replaces) and the others.
struct AtName {
    answering: Vec<RecordSet>,
    others: Vec<RecordSet>,
}

async fn at_name(client: &Client, zone: &str, record: &Record) -> Result<AtName, CloudError> {
    let kind = record.kind();
    let (answering, others) = sets_named(client, zone, &record.fqdn())
        .await?
        .into_iter()
        .partition(|set| set.kind == kind || conflicts(&kind, &set.kind));
    Ok(AtName { answering, others })
}

impl AtName {
    /// Why the step cannot replace what is there, if it cannot: routing-policy sets (one
    /// simple record cannot stand next to them, and deleting them would drop the policy),
    /// or records a CNAME could not sit next to.
    fn problem(&self, record: &Record) -> Option<String> {
        let name = record.fqdn();
        let routed: Vec<String> = self
            .answering
            .iter()
            .filter(|set| set.is_routed())
            .map(|set| format!("{} {}", set.kind, set.describe()))
            .collect();
        if !routed.is_empty() {
            return Some(format!(
                "`{name}` has records with a routing policy ({}): `dns.cutover` writes one simple record and does not replace them; point them at the new region in Route 53 (or delete them), then plan again",
                routed.join("; ")
            ));
        }
        let blocking: Vec<String> = blocking(&record.kind(), &self.others)
            .iter()
            .map(|set| set.kind.clone())
            .collect();
        if !blocking.is_empty() {
            return Some(format!(
                "`{name}` holds {} records, and a CNAME shares its name with no other record: give the record type `A` (an `alias`) instead",
                blocking.join(", ")
            ));
        }
        None
    }

    /// How the old answer reads in the plan: `(none)`, or each set (its type too when the
    /// record changes type).
    fn before(&self, kind: &str) -> String {
        if self.answering.is_empty() {
            return "(none)".to_string();
        }
        let sets: Vec<String> = self
            .answering
            .iter()
            .map(|set| {
                if set.kind == kind {
                    set.describe()
                } else {
                    format!("{} {}, replaced", set.kind, set.describe())
                }
            })
            .collect();
        sets.join("; ")
    }
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
        let client = context.cloud.route53(&context.target_region);
        let zone = match zone::find(&client, &params.zone, params.zone_id.as_deref()).await? {
            Found::Zone(zone) => zone,
            Found::Problem(problem) => {
                let mut plan = StepPlan::new(Action::Unknown, "no hosted zone to change");
                plan.problems.push(StepProblem::from(problem));
                return Ok(plan);
            }
        };
        let summary = format!(
            "UPSERT {} record(s) in hosted zone `{}` (`{}`, public)",
            records.len(),
            zone.id,
            zone.name
        );
        let mut plan = StepPlan::new(Action::Create, summary);
        if !zone.private_twins.is_empty() {
            plan = plan.detail(
                "private zones of that name (left alone)",
                zone.private_twins.join(", "),
            );
        }
        for record in &records {
            let kind = record.kind();
            let found = at_name(&client, &zone.id, record).await?;
            let problems = record
                .problems(&zone.name)
                .into_iter()
                .chain(found.problem(record));
            plan.problems.extend(problems.map(StepProblem::from));
            plan = plan.detail(
                format!("{kind} {}", record.fqdn()),
                format!("{} → {}", found.before(&kind), record.after()),
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
        let client = context.cloud.route53(&context.target_region);
        let zone = match zone::find(&client, &params.zone, params.zone_id.as_deref()).await? {
            Found::Zone(zone) => zone,
            Found::Problem(message) => {
                return Err(StepError::Refused {
                    message,
                    hint: "check `zone` and `zone_id` in the playbook (Route 53 is global, so the zone should still exist)".into(),
                });
            }
        };
        let mut wanted = Vec::new();
        let mut now = Vec::new();
        for record in &params.records {
            if let Some(problem) = record.problems(&zone.name).into_iter().next() {
                return Err(StepError::Params(problem));
            }
            wanted.push(record.wanted()?);
            let found = at_name(&client, &zone.id, record).await?;
            if let Some(message) = found.problem(record) {
                return Err(StepError::Refused {
                    message,
                    hint:
                        "nothing was changed by this step; `rebuild resume` reads the records again"
                            .into(),
                });
            }
            now.push(found.answering);
        }
        let previous = pin_previous(context, &params.records, &now)?;
        let batch = change_batch(context, &wanted, &now)?;
        confirm(context, &params.records, &wanted, &now).await?;
        context.checkpoint("before-change")?;
        let change_id = submit(context, &client, &zone, batch).await?;
        let records = params.records.into_iter().zip(previous);
        let records = records.map(|(record, before)| RecordOutput {
            name: record.fqdn(),
            kind: record.kind(),
            values: record.values,
            alias: record.alias,
            previous: before.values,
            previous_type: before.kind,
            previous_sets: before.sets,
        });
        interface::outputs(&Outputs {
            zone_id: zone.id,
            records: records.collect(),
            change_id,
        })
    }
}

impl Previous {
    /// What answered for `record`: `sets` whole, and the one of its type (else the first)
    /// summed up as before.
    fn of(record: &Record, sets: &[RecordSet]) -> Self {
        let kind = record.kind();
        let main = sets
            .iter()
            .find(|set| set.kind == kind)
            .or_else(|| sets.first());
        Self {
            name: record.fqdn(),
            kind: main.map_or(kind, |set| set.kind.clone()),
            values: main.map(RecordSet::values).unwrap_or_default(),
            ttl: main.and_then(|set| set.ttl),
            sets: Some(sets.to_vec()),
        }
    }
}

/// The record sets before the change: pinned by an earlier attempt (kept as they are, in
/// whichever shape that attempt wrote), or the ones read now, pinned.
fn pin_previous(
    context: &StepContext,
    records: &[Record],
    now: &[Vec<RecordSet>],
) -> Result<Vec<Previous>, StepError> {
    let pins: Pins = read_pins(&context.pins()).map_err(|error| {
        StepError::Params(format!(
            "the journal's `previous` pin of this step cannot be read: {error}"
        ))
    })?;
    if let Some(previous) = pins.previous {
        return Ok(previous);
    }
    let previous: Vec<Previous> = records
        .iter()
        .zip(now)
        .map(|(record, sets)| Previous::of(record, sets))
        .collect();
    context.pin(Pins::PREVIOUS, serde_json::json!(previous))?;
    Ok(previous)
}

/// One batch, applied by Route 53 all or nothing: per record, a `DELETE` of each set that
/// answers for it now and differs from the new one — exactly as Route 53 holds it, as a
/// `DELETE` must be — then an `UPSERT` of the new one.
fn change_batch(
    context: &StepContext,
    wanted: &[RecordSet],
    now: &[Vec<RecordSet>],
) -> Result<ChangeBatch, StepError> {
    let mut changes = Vec::new();
    for (set, existing) in wanted.iter().zip(now) {
        for old in existing.iter().filter(|old| !old.answers_like(set)) {
            changes.push(change(ChangeAction::Delete, old)?);
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

fn change(action: ChangeAction, set: &RecordSet) -> Result<Change, StepError> {
    let change = Change::builder()
        .action(action)
        .resource_record_set(set.to_sdk().map_err(unbuilt)?);
    change.build().map_err(unbuilt)
}

/// The gate: DNS moves real users, so it is asked about on its own when the run was not
/// started with `--yes` — unless the records already answer as wanted (a resume). The old
/// answer is shown with its TTL: resolvers may keep giving it that long after the change.
async fn confirm(
    context: &StepContext,
    records: &[Record],
    wanted: &[RecordSet],
    now: &[Vec<RecordSet>],
) -> Result<(), StepError> {
    let mut moves = Vec::new();
    for ((record, set), existing) in records.iter().zip(wanted).zip(now) {
        if let [only] = existing.as_slice()
            && only.answers_like(set)
        {
            continue;
        }
        let was: Vec<String> = existing
            .iter()
            .map(|old| {
                let answer = if old.kind == set.kind {
                    old.answer()
                } else {
                    format!("{} {}", old.kind, old.answer())
                };
                match old.ttl {
                    Some(ttl) => format!("{answer}, TTL {ttl} s"),
                    None => answer,
                }
            })
            .collect();
        let was = if was.is_empty() {
            "nothing".to_string()
        } else {
            was.join("; ")
        };
        moves.push(format!(
            "{} {} → {} (now {was})",
            set.kind,
            record.fqdn(),
            set.answer()
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
    zone: &Zone,
    batch: ChangeBatch,
) -> Result<String, StepError> {
    let answer = client
        .change_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .change_batch(batch)
        .send()
        .await
        .cloud("ChangeResourceRecordSets", Some(zone.name.clone()))?;
    let change = answer.change_info().map(|info| info.id().to_string());
    let change = change.unwrap_or_default();
    context.progress(format!("submitted DNS change {change}"));
    context
        .wait_for(
            Wait::new("change-insync", "the DNS change to be INSYNC").typically(INSYNC_TYPICAL),
            || async {
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
            },
        )
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
                "zone_id": "Z0123456789",
                "records": [{"name": "api", "type": "A", "values": ["192.0.2.1"], "ttl": 60}],
            }),
        );
        assert_eq!(interface::field_names::<Pins>(), [Pins::PREVIOUS]);
        let planned: Params<Planning> = serde_json::from_value(json!({"zone": "z"})).unwrap();
        assert_eq!(planned.records, None);
    }

    #[test]
    fn a_cname_replaces_address_records_and_anything_replaces_a_cname() {
        assert!(conflicts("CNAME", "A"));
        assert!(conflicts("AAAA", "CNAME"));
        assert!(conflicts("TXT", "CNAME"));
        assert!(!conflicts("A", "AAAA"));
        assert!(!conflicts("CNAME", "CNAME"));
        assert!(!conflicts("CNAME", "TXT"));
    }

    fn record(value: serde_json::Value) -> Record {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_cname_at_the_apex_and_a_name_outside_the_zone_are_plan_problems() {
        let zone = "shop.example.com.";
        let apex = record(json!({"name": "shop.example.com", "values": ["lb.example.net"]}));
        assert!(apex.problems(zone)[0].contains("zone apex, where DNS allows no CNAME"));
        let alias = record(json!({"name": "shop.example.com",
            "alias": {"dns_name": "lb.example.net", "hosted_zone_id": "Z1LMS91P8CMLE5"}}));
        assert_eq!(alias.kind(), "A");
        assert_eq!(alias.problems(zone), Vec::<String>::new());
        let outside = record(json!({"name": "api.example.org", "values": ["x"]}));
        assert!(outside.problems(zone)[0].contains("not in the hosted zone"));
        let both = record(json!({"name": "api.shop.example.com", "values": ["x"],
            "alias": {"dns_name": "lb.example.net", "hosted_zone_id": "Z1"}}));
        assert!(both.problems(zone)[0].contains("not both"));
    }

    #[test]
    fn an_alias_record_asks_for_an_alias_set_without_a_ttl() {
        let alias = record(json!({"name": "Shop.example.com",
            "alias": {"dns_name": "LB.example.net", "hosted_zone_id": "Z1LMS91P8CMLE5",
                      "evaluate_target_health": true}}));
        let set = alias.wanted().unwrap();
        assert_eq!(
            serde_json::to_value(&set).unwrap(),
            json!({"Name": "shop.example.com.", "Type": "A", "AliasTarget":
                {"HostedZoneId": "Z1LMS91P8CMLE5", "DNSName": "lb.example.net.",
                 "EvaluateTargetHealth": true}})
        );
        let unknown = record(json!({"name": "api.shop.example.com", "values": [null]}));
        assert!(unknown.wanted().is_err());
        assert_eq!(unknown.after(), "(known after apply)");
    }

    #[test]
    fn old_journals_previous_pins_still_read() {
        // Written before the record sets were kept whole.
        let old = json!({"previous": [{"name": "api.shop.example.com.", "type": "CNAME",
            "values": ["api.ap-southeast-2.shop.example.com"], "ttl": 300}]});
        let values: Values = old.as_object().unwrap().clone().into_iter().collect();
        let pins: Pins = read_pins(&values).unwrap();
        let previous = pins.previous.unwrap();
        assert_eq!(previous[0].sets, None);
        assert_eq!(previous[0].values, ["api.ap-southeast-2.shop.example.com"]);
    }
}
