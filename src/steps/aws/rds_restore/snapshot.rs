//! Which snapshot to restore: the newest `available` one of the production database that
//! exists *in the target region* (manual snapshots and cross-region copies alike), and
//! whether its age breaks the RPO limit. A copy's age counts from its original's time
//! (instances only: the API gives cluster snapshot copies no original time).

use std::time::Duration;

use aws_sdk_rds::Client;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::playbook::duration;

use super::database::Database;

/// A snapshot that can be restored, with the time its data is from. Pinned in the journal
/// as it is (the field names are the journal's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Snapshot {
    /// Its identifier.
    pub id: String,
    /// What it restores into.
    pub source: Database,
    /// The engine it was taken from.
    pub engine: String,
    /// When the data was captured (the original snapshot's time for a cross-region copy).
    pub taken: Timestamp,
    /// The port the database had.
    pub port: Option<i32>,
    /// When this run chose it: the data lost is what was written between `taken` and then.
    #[serde(default)]
    pub chosen: Option<Timestamp>,
}

impl Snapshot {
    /// How old its data is at `now`.
    pub(super) fn age(&self, now: Timestamp) -> Duration {
        let seconds = now
            .as_second()
            .saturating_sub(self.taken.as_second())
            .max(0);
        Duration::from_secs(seconds as u64)
    }
}

/// What to do when no snapshot exists in the target region.
pub(super) const NO_SNAPSHOT_HINT: &str = "copy a snapshot into the target region (or check `source_db_instance`/`source_db_cluster`), then run again; snapshots left only in the failed region cannot be restored";

/// The newest available snapshot of the production database `name` in the client's
/// region (ties broken by id).
pub(super) async fn newest(
    client: &Client,
    database: Database,
    name: &str,
) -> Result<Option<Snapshot>, CloudError> {
    let found = match database {
        Database::Instance => instance_snapshots(client, name).await?,
        Database::Cluster => cluster_snapshots(client, name).await?,
    };
    Ok(found
        .into_iter()
        .max_by_key(|snapshot| (snapshot.taken, snapshot.id.clone())))
}

async fn instance_snapshots(client: &Client, name: &str) -> Result<Vec<Snapshot>, CloudError> {
    let mut found = Vec::new();
    let mut pages = client.describe_db_snapshots().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeDBSnapshots", Some(name.to_string()))?;
        let usable = page.db_snapshots().iter().filter(|snapshot| {
            snapshot.db_instance_identifier() == Some(name)
                && snapshot.status() == Some("available")
        });
        found.extend(usable.filter_map(|snapshot| {
            Some(Snapshot {
                id: snapshot.db_snapshot_identifier()?.to_string(),
                source: Database::Instance,
                engine: snapshot.engine().unwrap_or("postgres").to_string(),
                taken: timestamp(snapshot.original_snapshot_create_time())
                    .or_else(|| timestamp(snapshot.snapshot_create_time()))?,
                port: snapshot.port(),
                chosen: None,
            })
        }));
    }
    Ok(found)
}

async fn cluster_snapshots(client: &Client, name: &str) -> Result<Vec<Snapshot>, CloudError> {
    let mut found = Vec::new();
    let mut pages = client
        .describe_db_cluster_snapshots()
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeDBClusterSnapshots", Some(name.to_string()))?;
        let usable = page.db_cluster_snapshots().iter().filter(|snapshot| {
            snapshot.db_cluster_identifier() == Some(name) && snapshot.status() == Some("available")
        });
        found.extend(usable.filter_map(|snapshot| {
            Some(Snapshot {
                id: snapshot.db_cluster_snapshot_identifier()?.to_string(),
                source: Database::Cluster,
                engine: snapshot.engine().unwrap_or("aurora-postgresql").to_string(),
                taken: timestamp(snapshot.snapshot_create_time())?,
                port: snapshot.port(),
                chosen: None,
            })
        }));
    }
    Ok(found)
}

fn timestamp(value: Option<&aws_smithy_types::DateTime>) -> Option<Timestamp> {
    value.and_then(|time| Timestamp::new(time.secs(), time.subsec_nanos() as i32).ok())
}

/// A time as the plan and progress show it.
pub(super) fn render_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The snapshot checked against the RPO limit: the problem, naming the snapshot and its
/// age, when it is older.
pub(super) fn rpo_problem(
    snapshot: &Snapshot,
    limit: Option<Duration>,
    now: Timestamp,
    region: &str,
) -> Option<String> {
    let limit = limit?;
    let age = snapshot.age(now);
    (age > limit).then(|| {
        format!(
            "the newest snapshot in `{region}`, `{}` (taken {}), is {} old: older than the RPO limit of {}",
            snapshot.id,
            render_time(snapshot.taken),
            duration::render(age),
            duration::render(limit)
        )
    })
}

/// The refusal when no snapshot of `name` exists in `region`.
pub(super) fn no_snapshot_message(database: Database, name: &str, region: &str) -> String {
    let what = match database {
        Database::Instance => "DB snapshot",
        Database::Cluster => "DB cluster snapshot",
    };
    format!("no available {what} of `{name}` exists in `{region}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(hours_ago: i64, now: Timestamp) -> Snapshot {
        Snapshot {
            id: "prod-db-snap-2-copy".into(),
            source: Database::Instance,
            engine: "postgres".into(),
            taken: now - jiff::SignedDuration::from_hours(hours_ago),
            port: Some(5432),
            chosen: None,
        }
    }

    #[test]
    fn rpo_guard_names_snapshot_and_age() {
        let now = Timestamp::now();
        let limit = Some(Duration::from_secs(24 * 3600));
        assert_eq!(
            rpo_problem(&snapshot(3, now), limit, now, "ap-southeast-1"),
            None
        );
        let problem = rpo_problem(&snapshot(30, now), limit, now, "ap-southeast-1").unwrap();
        assert!(problem.contains("`prod-db-snap-2-copy`"), "{problem}");
        assert!(problem.contains("1d06h old"), "{problem}");
        assert!(
            problem.contains("24h") || problem.contains("1d00h"),
            "{problem}"
        );
        assert_eq!(
            rpo_problem(&snapshot(30, now), None, now, "ap-southeast-1"),
            None
        );
    }

    #[test]
    fn the_pinned_form_is_the_journals() {
        let now = Timestamp::from_second(1_740_794_400).unwrap();
        let value = serde_json::to_value(snapshot(2, now)).unwrap();
        assert_eq!(value["source"], "instance");
        assert_eq!(value["taken"], "2025-03-01T00:00:00Z");
        let read: Snapshot = serde_json::from_value(serde_json::json!({
            "id": "s", "source": "cluster", "engine": "aurora-postgresql",
            "taken": "2025-03-01T00:00:00Z", "port": null
        }))
        .unwrap();
        assert_eq!((read.source, read.chosen), (Database::Cluster, None));
    }
}
