//! Route 53 as strict as AWS.
//!
//! Moto applies a `ChangeResourceRecordSets` batch almost without checking it. Route 53
//! validates the whole batch against the zone's record sets and refuses it, all or nothing,
//! with `InvalidChangeBatch` (HTTP 400, the messages in brackets), when a change
//! (`ChangeResourceRecordSets` API reference: "To delete a resource record set, you must
//! specify all the same values that you specified when you created it"; Route 53 developer
//! guide, "Choosing between alias and non-alias records": no CNAME at the zone apex, a CNAME
//! cannot share its name with other records):
//!
//! - `DELETE`s a record set that does not exist, or repeats it with other values (TTL,
//!   values, alias target, routing fields): moto accepts any values it ever saw for the name
//!   and type, and deletes by `SetIdentifier` alone across names;
//! - `CREATE`s one that exists;
//! - leaves a CNAME at the zone apex, a CNAME next to other records of the same name, or a
//!   record next to a CNAME of its name;
//! - leaves a simple record set (no `SetIdentifier`) next to routing-policy sets (failover,
//!   weighted, latency, …) of the same name and type, or the other way round.
//!
//! The rules read the zone (name and record sets) from moto, apply the batch's changes in
//! order to a copy, and answer with every problem found, as Route 53 does.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::super::aws_wire::{XmlElement, parse_xml};
use super::super::proxy::Upstream;
use super::xml_error;

/// AWS's answer to a request the strict rules decide, if they decide it.
pub(super) async fn answer(
    operation: &str,
    body: &[u8],
    upstream: &Upstream<'_>,
) -> Option<Response<Full<Bytes>>> {
    let zone_id = operation
        .strip_prefix("POST /2013-04-01/hostedzone/")?
        .strip_suffix("/rrset")?;
    let request = parse_xml(std::str::from_utf8(body).ok()?)?;
    let changes: Vec<(String, RecordSet)> = request
        .child("ChangeBatch")?
        .child("Changes")?
        .children_named("Change")
        .filter_map(|change| {
            let action = change.text_of("Action")?.to_string();
            Some((action, RecordSet::read(change.child("ResourceRecordSet")?)))
        })
        .collect();
    let zone = parse_xml(&text(
        upstream
            .get(&format!("/2013-04-01/hostedzone/{zone_id}"))
            .await?,
    ))?;
    let apex = normal_name(zone.child("HostedZone")?.text_of("Name")?);
    let listing = parse_xml(&text(
        upstream
            .get(&format!("/2013-04-01/hostedzone/{zone_id}/rrset"))
            .await?,
    ))?;
    let sets = listing
        .child("ResourceRecordSets")?
        .children_named("ResourceRecordSet")
        .map(RecordSet::read)
        .collect();
    let problems = problems(&apex, sets, &changes);
    if problems.is_empty() {
        return None;
    }
    Some(xml_error(
        StatusCode::BAD_REQUEST,
        "InvalidChangeBatch",
        &format!("[{}]", problems.join(", ")),
    ))
}

fn text(bytes: Bytes) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A DNS name as Route 53 compares them: lower case, fully qualified.
fn normal_name(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// One record set: what identifies it, and every other field flattened to text (values
/// sorted, alias DNS names compared as names), so "the same values" is an equality.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordSet {
    name: String,
    kind: String,
    set_identifier: Option<String>,
    fields: Vec<(String, String)>,
}

impl RecordSet {
    fn read(element: &XmlElement) -> Self {
        let mut fields = Vec::new();
        for child in &element.children {
            match child.name.as_str() {
                "Name" | "Type" | "SetIdentifier" => {}
                "ResourceRecords" => {
                    let mut values: Vec<&str> = child
                        .children_named("ResourceRecord")
                        .filter_map(|record| record.text_of("Value"))
                        .collect();
                    values.sort_unstable();
                    fields.push(("ResourceRecords".to_string(), values.join("\n")));
                }
                _ => flatten(child, "", &mut fields),
            }
        }
        fields.sort();
        Self {
            name: normal_name(element.text_of("Name").unwrap_or_default()),
            kind: element.text_of("Type").unwrap_or_default().to_string(),
            set_identifier: element.text_of("SetIdentifier").map(str::to_string),
            fields,
        }
    }

    fn same_key(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.set_identifier == other.set_identifier
    }

    /// `[name='…', type='…']` (with the set identifier when there is one), as Route 53 names
    /// a record set in its messages.
    fn key(&self) -> String {
        match &self.set_identifier {
            Some(id) => format!(
                "[name='{}', type='{}', set-identifier='{id}']",
                self.name, self.kind
            ),
            None => format!("[name='{}', type='{}']", self.name, self.kind),
        }
    }
}

fn flatten(element: &XmlElement, prefix: &str, fields: &mut Vec<(String, String)>) {
    let path = format!("{prefix}{}", element.name);
    if element.children.is_empty() {
        let value = if element.name == "DNSName" {
            normal_name(element.text.trim())
        } else {
            element.text.trim().to_string()
        };
        fields.push((path, value));
    } else {
        for child in &element.children {
            flatten(child, &format!("{path}."), fields);
        }
    }
}

/// What Route 53 says about `changes` applied in order to a zone holding `sets`.
fn problems(apex: &str, mut sets: Vec<RecordSet>, changes: &[(String, RecordSet)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (action, set) in changes {
        let existing = sets.iter().position(|held| held.same_key(set));
        match (action.as_str(), existing) {
            ("DELETE", None) => problems.push(format!(
                "Tried to delete resource record set {} but it was not found",
                set.key()
            )),
            ("DELETE", Some(index)) if sets[index] != *set => problems.push(format!(
                "Tried to delete resource record set {} but the values provided do not match the current values",
                set.key()
            )),
            ("DELETE", Some(index)) => {
                sets.remove(index);
            }
            ("CREATE", Some(_)) => problems.push(format!(
                "Tried to create resource record set {} but it already exists",
                set.key()
            )),
            ("CREATE" | "UPSERT", existing) => {
                if let Some(index) = existing {
                    sets.remove(index);
                }
                match conflict(apex, &sets, set) {
                    Some(problem) => problems.push(problem),
                    None => sets.push(set.clone()),
                }
            }
            _ => {}
        }
    }
    problems
}

/// Why `set` cannot join `sets` (which hold no set of its key), if it cannot.
fn conflict(apex: &str, sets: &[RecordSet], set: &RecordSet) -> Option<String> {
    let zone = apex;
    let name = &set.name;
    let kind = &set.kind;
    let others: Vec<&RecordSet> = sets.iter().filter(|held| held.name == *name).collect();
    if kind == "CNAME" && name == apex {
        return Some(format!(
            "RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {zone}"
        ));
    }
    if kind == "CNAME" && others.iter().any(|held| held.kind != "CNAME") {
        return Some(format!(
            "RRSet of type CNAME with DNS name {name} is not permitted as it conflicts with other records with the same DNS name in zone {zone}"
        ));
    }
    if kind != "CNAME" && others.iter().any(|held| held.kind == "CNAME") {
        return Some(format!(
            "RRSet of type {kind} with DNS name {name} is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone {zone}"
        ));
    }
    let same_type = others.iter().filter(|held| held.kind == *kind);
    let routed = |held: &&&RecordSet| held.set_identifier.is_some();
    match &set.set_identifier {
        None if same_type.clone().any(|held| routed(&held)) => Some(format!(
            "RRSet with DNS name {name}, type {kind} cannot be created as other RRsets exist with the same name and type"
        )),
        Some(id) if same_type.clone().any(|held| !routed(&held)) => Some(format!(
            "RRSet with DNS name {name}, type {kind}, SetIdentifier \"{id}\" cannot be created because a non-routing-policy RRSet exists with the same name and type"
        )),
        _ => None,
    }
}
