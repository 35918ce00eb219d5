//! Which snapshot to restore: the newest `available` one of the production database that
//! exists *in the target region* — automated, manual (cross-region copies alike), made by
//! AWS Backup, or shared by another account (a backup account) — and whether its age
//! breaks the RPO limit. `DescribeDBSnapshots` lists the first two kinds by default, the
//! shared ones only with `IncludeShared` and AWS Backup's only with
//! `SnapshotType=awsbackup`, so instances are listed twice, each time filtered by the
//! source instance on the server (`db-instance-id`), never by scanning the region. A
//! copy's age counts from its original's time (instances only: the API gives cluster
//! snapshot copies no original time). A shared snapshot is restored by its ARN, the only
//! name RDS accepts for it.

use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::types::Filter;
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
    /// The engine's version (absent in pins of older runs).
    #[serde(default)]
    pub engine_version: Option<String>,
    /// `manual`, `automated`, `awsbackup` or `shared` (absent in pins of older runs).
    #[serde(default)]
    pub snapshot_type: Option<String>,
    /// Its ARN, which names the account that owns it.
    #[serde(default)]
    pub arn: Option<String>,
    /// When this run chose it: the data lost is what was written between `taken` and then.
    #[serde(default)]
    pub chosen: Option<Timestamp>,
    /// The KMS key it is encrypted with (`None`: not encrypted, or pins of older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

impl Snapshot {
    /// The name a restore gives: the ARN for a snapshot another account shared (RDS
    /// accepts nothing else for it), else the identifier.
    pub(super) fn restore_name(&self) -> &str {
        match (self.snapshot_type.as_deref(), &self.arn) {
            (Some("shared"), Some(arn)) => arn,
            _ => &self.id,
        }
    }

    /// The account that owns it, from its ARN.
    pub(super) fn owner(&self) -> Option<&str> {
        self.arn.as_deref()?.split(':').nth(4)
    }

    /// What the plan says of it: its type and owner, e.g. `shared, account 210987654321`.
    pub(super) fn origin(&self) -> String {
        let kind = self.snapshot_type.as_deref().unwrap_or("unknown type");
        match self.owner() {
            Some(owner) => format!("{kind}, account {owner}"),
            None => kind.to_string(),
        }
    }

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

/// `name`'s snapshots of every kind: the default listing plus shared ones, and AWS
/// Backup's, both asked at once; both filtered by the instance on the server.
async fn instance_snapshots(client: &Client, name: &str) -> Result<Vec<Snapshot>, CloudError> {
    let (mut found, backups) = tokio::try_join!(
        instance_listing(client, name, false),
        instance_listing(client, name, true)
    )?;
    found.extend(backups);
    Ok(found)
}

/// One listing of `name`'s instance snapshots: AWS Backup's, or the default one with shared
/// snapshots.
async fn instance_listing(
    client: &Client,
    name: &str,
    aws_backup: bool,
) -> Result<Vec<Snapshot>, CloudError> {
    let mut found = Vec::new();
    let filter = Filter::builder()
        .name("db-instance-id")
        .values(name)
        .build();
    let request = client.describe_db_snapshots().filters(filter);
    let request = if aws_backup {
        request.snapshot_type("awsbackup")
    } else {
        request.include_shared(true)
    };
    let mut pages = request.into_paginator().send();
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
                engine_version: snapshot.engine_version().map(str::to_string),
                snapshot_type: snapshot.snapshot_type().map(str::to_string),
                arn: snapshot.db_snapshot_arn().map(str::to_string),
                chosen: None,
                kms_key_id: encryption_key(snapshot.encrypted(), snapshot.kms_key_id()),
            })
        }));
    }
    Ok(found)
}

async fn cluster_snapshots(client: &Client, name: &str) -> Result<Vec<Snapshot>, CloudError> {
    let mut found = Vec::new();
    let filter = Filter::builder().name("db-cluster-id").values(name).build();
    let mut pages = client
        .describe_db_cluster_snapshots()
        .filters(filter)
        .include_shared(true)
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
                engine_version: snapshot.engine_version().map(str::to_string),
                snapshot_type: snapshot.snapshot_type().map(str::to_string),
                arn: snapshot.db_cluster_snapshot_arn().map(str::to_string),
                chosen: None,
                kms_key_id: encryption_key(snapshot.storage_encrypted(), snapshot.kms_key_id()),
            })
        }));
    }
    Ok(found)
}

/// The key of an encrypted snapshot.
fn encryption_key(encrypted: Option<bool>, key: Option<&str>) -> Option<String> {
    key.filter(|key| encrypted == Some(true) && !key.is_empty())
        .map(str::to_string)
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
            engine_version: Some("16.8".into()),
            snapshot_type: Some("manual".into()),
            arn: Some(
                "arn:aws:rds:ap-southeast-1:123456789012:snapshot:prod-db-snap-2-copy".into(),
            ),
            chosen: None,
            kms_key_id: None,
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
        assert_eq!((read.engine_version, read.arn), (None, None));
    }

    #[test]
    fn a_shared_snapshot_is_restored_by_its_arn_and_shows_its_owner() {
        let now = Timestamp::now();
        let own = snapshot(1, now);
        assert_eq!(own.restore_name(), "prod-db-snap-2-copy");
        assert_eq!(own.origin(), "manual, account 123456789012");
        let arn = "arn:aws:rds:ap-southeast-1:210987654321:snapshot:prod-db-vault";
        let shared = Snapshot {
            id: arn.into(),
            snapshot_type: Some("shared".into()),
            arn: Some(arn.into()),
            ..own
        };
        assert_eq!(shared.restore_name(), arn);
        assert_eq!(shared.origin(), "shared, account 210987654321");
    }
}
