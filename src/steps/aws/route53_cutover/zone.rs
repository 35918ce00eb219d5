//! Which hosted zone `dns.cutover` changes. `ListHostedZonesByName` returns public *and*
//! private zones: with split-horizon DNS a private zone of the same name (attached to the
//! lost region's VPCs) sits next to the public one, and changing it would move nobody. So
//! private zones are skipped (`Config.PrivateZone`); when several public zones have the
//! name, the choice is the operator's (`zone_id`), never the first one listed.

use aws_sdk_route53::Client;

use crate::cloud::{CloudError, CloudResultExt};

use super::record_set::normal_name;

/// The zone chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Zone {
    /// Its id, without `/hostedzone/`.
    pub id: String,
    /// Its name, fully qualified.
    pub name: String,
    /// The ids of private zones of the same name, left alone.
    pub private_twins: Vec<String>,
}

/// The zone, or why there is none to change (a plan problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// The public zone to change.
    Zone(Zone),
    /// What is wrong, and what to do.
    Problem(String),
}

/// Whether `zone` is a hosted zone id rather than a name.
fn is_id(zone: &str) -> bool {
    zone.starts_with('Z') && !zone.contains('.')
}

/// The zone named `zone` (or with the id `zone_id`, or `zone` when it is an id).
pub(super) async fn find(
    client: &Client,
    zone: &str,
    zone_id: Option<&str>,
) -> Result<Found, CloudError> {
    match zone_id.or_else(|| is_id(zone).then_some(zone)) {
        Some(id) => by_id(client, zone, id).await,
        None => by_name(client, zone).await,
    }
}

async fn by_id(client: &Client, zone: &str, id: &str) -> Result<Found, CloudError> {
    let id = id.trim_start_matches("/hostedzone/");
    let answer = match client
        .get_hosted_zone()
        .id(id)
        .send()
        .await
        .cloud("GetHostedZone", Some(id.to_string()))
    {
        Ok(answer) => answer,
        Err(error) if error.is("NoSuchHostedZone") => {
            return Ok(Found::Problem(format!("hosted zone `{id}` does not exist")));
        }
        Err(error) => return Err(error),
    };
    let Some(found) = answer.hosted_zone() else {
        return Err(CloudError::missing_field("GetHostedZone", "HostedZone"));
    };
    let name = normal_name(found.name());
    if found.config().is_some_and(|config| config.private_zone()) {
        return Ok(Found::Problem(format!(
            "hosted zone `{id}` (`{name}`) is private: users' DNS never reads it; give the id of the public zone"
        )));
    }
    if !is_id(zone) && normal_name(zone) != name {
        return Ok(Found::Problem(format!(
            "`zone_id` `{id}` is the hosted zone `{name}`, not `{}`",
            normal_name(zone)
        )));
    }
    Ok(Found::Zone(Zone {
        id: id.to_string(),
        name,
        private_twins: Vec::new(),
    }))
}

async fn by_name(client: &Client, zone: &str) -> Result<Found, CloudError> {
    let wanted = normal_name(zone);
    let mut public = Vec::new();
    let mut private = Vec::new();
    let mut next: Option<(String, Option<String>)> = Some((wanted.clone(), None));
    while let Some((name, id)) = next.take() {
        let answer = client
            .list_hosted_zones_by_name()
            .dns_name(&name)
            .set_hosted_zone_id(id)
            .send()
            .await
            .cloud("ListHostedZonesByName", Some(wanted.clone()))?;
        for found in answer.hosted_zones() {
            if normal_name(found.name()) != wanted {
                continue;
            }
            let id = found.id().trim_start_matches("/hostedzone/").to_string();
            if found.config().is_some_and(|config| config.private_zone()) {
                private.push(id);
            } else {
                public.push(id);
            }
        }
        // Zones are listed by name: the next page can hold more of this name only if it
        // starts at this name.
        if answer.is_truncated()
            && let Some(name) = answer.next_dns_name()
            && normal_name(name) == wanted
        {
            next = Some((
                name.to_string(),
                answer.next_hosted_zone_id().map(str::to_string),
            ));
        }
    }
    Ok(match public.as_slice() {
        [id] => Found::Zone(Zone {
            id: id.clone(),
            name: wanted,
            private_twins: private,
        }),
        [] if private.is_empty() => {
            Found::Problem(format!("hosted zone `{wanted}` does not exist"))
        }
        [] => Found::Problem(format!(
            "no public hosted zone is named `{wanted}`, only private ones ({}), which users' DNS never reads",
            ids(&private)
        )),
        several => Found::Problem(format!(
            "{} public hosted zones are named `{wanted}` ({}): set `zone_id` to the one the domain is delegated to (its name servers are the domain's NS records at the registrar)",
            several.len(),
            ids(several)
        )),
    })
}

fn ids(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    quoted.join(", ")
}
