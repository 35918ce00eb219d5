//! `aws.rds.restore`: restore the newest database snapshot *available in the target region*
//! (manual snapshots and cross-region copies; instance snapshots or Aurora cluster
//! snapshots), refusing before any change when none exists or it is older than the RPO
//! limit (unless `--accept-rpo`). Creates the DB subnet group on the given private subnets,
//! restores (instance, or Aurora cluster + writer instance), waits for `available`. The
//! chosen snapshot is pinned in the journal so a resume never drifts to a newer one. A
//! master password, when given, is applied and never journaled or printed.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cloud::{CloudError, CloudResultExt};
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec, duration};

use super::context::{Poll, TAG_RUN_ID};
use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem, params};

static SPEC: KindSpec = KindSpec {
    kind: "aws.rds.restore",
    summary: "restore the newest snapshot available in the target region into a new database",
    parameters: &[
        ParamSpec {
            name: "source_db_instance",
            required: false,
            help: "production DB instance whose snapshots to restore (instance engines)",
        },
        ParamSpec {
            name: "source_db_cluster",
            required: false,
            help: "production Aurora cluster whose cluster snapshots to restore",
        },
        ParamSpec {
            name: "db_identifier",
            required: false,
            help: "name of the restored database (default `<step>-<run-id>`)",
        },
        ParamSpec {
            name: "instance_class",
            required: true,
            help: "DB instance class, e.g. `db.r6g.large`",
        },
        ParamSpec {
            name: "subnet_ids",
            required: true,
            help: "private subnets for the DB subnet group (from the network step)",
        },
        ParamSpec {
            name: "security_group_ids",
            required: true,
            help: "VPC security groups (from the network step)",
        },
        ParamSpec {
            name: "multi_az",
            required: false,
            help: "Multi-AZ deployment (default true)",
        },
        ParamSpec {
            name: "parameter_group",
            required: false,
            help: "DB (or cluster) parameter group name",
        },
        ParamSpec {
            name: "port",
            required: false,
            help: "port the database listens on (default: the snapshot's)",
        },
        ParamSpec {
            name: "master_password",
            required: false,
            help: "new master password; reference a secret input, never a literal",
        },
        ParamSpec {
            name: "rpo_limit",
            required: false,
            help: "override the playbook's `rpo_limit` for this database",
        },
        ParamSpec {
            name: "deletion_protection",
            required: false,
            help: "protect the restored database from deletion (default false)",
        },
    ],
    outputs: &[
        "endpoint",
        "port",
        "db_identifier",
        "engine",
        "snapshot_id",
        "snapshot_time",
        "rpo_seconds",
        "subnet_group",
    ],
};

/// The `aws.rds.restore` step kind.
pub struct AwsRdsRestore;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    source_db_instance: Option<String>,
    #[serde(default)]
    source_db_cluster: Option<String>,
    #[serde(default)]
    db_identifier: Option<String>,
    instance_class: Option<String>,
    #[serde(default)]
    subnet_ids: Option<Vec<String>>,
    #[serde(default)]
    security_group_ids: Option<Vec<String>>,
    #[serde(default = "yes")]
    multi_az: bool,
    #[serde(default)]
    parameter_group: Option<String>,
    #[serde(default)]
    port: Option<i32>,
    #[serde(default)]
    master_password: Option<String>,
    #[serde(default)]
    rpo_limit: Option<String>,
    #[serde(default)]
    deletion_protection: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for Params {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Params")
            .field("source_db_instance", &self.source_db_instance)
            .field("source_db_cluster", &self.source_db_cluster)
            .field(
                "master_password",
                &self.master_password.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Which production database to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    Instance,
    Cluster,
}

impl Params {
    fn source(&self) -> Result<(Source, &str), StepError> {
        match (&self.source_db_instance, &self.source_db_cluster) {
            (Some(instance), None) => Ok((Source::Instance, instance)),
            (None, Some(cluster)) => Ok((Source::Cluster, cluster)),
            _ => Err(StepError::Params(
                "give exactly one of `source_db_instance` and `source_db_cluster`".to_string(),
            )),
        }
    }

    fn rpo_limit(&self, playbook: Option<Duration>) -> Result<Option<Duration>, StepError> {
        match &self.rpo_limit {
            Some(text) => duration::parse(text)
                .map(Some)
                .map_err(|error| StepError::Params(format!("`rpo_limit`: {error}"))),
            None => Ok(playbook),
        }
    }
}

/// A snapshot that can be restored, with the time its data is from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Snapshot {
    id: String,
    source: Source,
    engine: String,
    /// When the data was captured (the original snapshot's time for a cross-region copy).
    taken: Timestamp,
    port: Option<i32>,
    /// When this run chose it: the data lost is what was written between `taken` and then.
    #[serde(default)]
    chosen: Option<Timestamp>,
}

impl Snapshot {
    fn age(&self, now: Timestamp) -> Duration {
        let seconds = now
            .as_second()
            .saturating_sub(self.taken.as_second())
            .max(0);
        Duration::from_secs(seconds as u64)
    }
}

fn timestamp(value: Option<&aws_smithy_types::DateTime>) -> Option<Timestamp> {
    value.and_then(|time| Timestamp::new(time.secs(), time.subsec_nanos() as i32).ok())
}

/// The newest available snapshot of `source` in the client's region.
async fn newest_snapshot(
    client: &Client,
    source: Source,
    name: &str,
) -> Result<Option<Snapshot>, CloudError> {
    let mut found = Vec::new();
    match source {
        Source::Instance => {
            let mut pages = client.describe_db_snapshots().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.cloud("DescribeDBSnapshots", Some(name.to_string()))?;
                for snapshot in page.db_snapshots() {
                    if snapshot.db_instance_identifier() != Some(name)
                        || snapshot.status() != Some("available")
                    {
                        continue;
                    }
                    let taken = timestamp(snapshot.original_snapshot_create_time())
                        .or_else(|| timestamp(snapshot.snapshot_create_time()));
                    if let (Some(id), Some(taken)) = (snapshot.db_snapshot_identifier(), taken) {
                        found.push(Snapshot {
                            id: id.to_string(),
                            source,
                            engine: snapshot.engine().unwrap_or("postgres").to_string(),
                            taken,
                            port: snapshot.port(),
                            chosen: None,
                        });
                    }
                }
            }
        }
        Source::Cluster => {
            let mut pages = client
                .describe_db_cluster_snapshots()
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.cloud("DescribeDBClusterSnapshots", Some(name.to_string()))?;
                for snapshot in page.db_cluster_snapshots() {
                    if snapshot.db_cluster_identifier() != Some(name)
                        || snapshot.status() != Some("available")
                    {
                        continue;
                    }
                    if let (Some(id), Some(taken)) = (
                        snapshot.db_cluster_snapshot_identifier(),
                        timestamp(snapshot.snapshot_create_time()),
                    ) {
                        found.push(Snapshot {
                            id: id.to_string(),
                            source,
                            engine: snapshot.engine().unwrap_or("aurora-postgresql").to_string(),
                            taken,
                            port: snapshot.port(),
                            chosen: None,
                        });
                    }
                }
            }
        }
    }
    Ok(found
        .into_iter()
        .max_by_key(|snapshot| (snapshot.taken, snapshot.id.clone())))
}

fn render_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Check the snapshot against the RPO limit; the message names the snapshot and its age.
fn rpo_problem(
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

fn no_snapshot_message(source: Source, name: &str, region: &str) -> String {
    let what = match source {
        Source::Instance => "DB snapshot",
        Source::Cluster => "DB cluster snapshot",
    };
    format!("no available {what} of `{name}` exists in `{region}`")
}

const NO_SNAPSHOT_HINT: &str = "copy a snapshot into the target region (or check `source_db_instance`/`source_db_cluster`), then run again; snapshots left only in the failed region cannot be restored";

/// An existing DB instance's status, tags and endpoint.
struct Existing {
    status: String,
    run_id: Option<String>,
    endpoint: Option<(String, i32)>,
}

async fn describe_instance(client: &Client, id: &str) -> Result<Option<Existing>, CloudError> {
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .cloud("DescribeDBInstances", Some(id.to_string()))
    {
        Ok(answer) => Ok(answer.db_instances().first().map(|instance| Existing {
            status: instance
                .db_instance_status()
                .unwrap_or("unknown")
                .to_string(),
            run_id: instance
                .tag_list()
                .iter()
                .find(|tag| tag.key() == Some(TAG_RUN_ID))
                .and_then(|tag| tag.value().map(str::to_string)),
            endpoint: instance.endpoint().and_then(|endpoint| {
                Some((
                    endpoint.address()?.to_string(),
                    endpoint.port().unwrap_or(5432),
                ))
            }),
        })),
        Err(error) if error.is("DBInstanceNotFound") || error.is("DBInstanceNotFoundFault") => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

async fn describe_cluster(client: &Client, id: &str) -> Result<Option<Existing>, CloudError> {
    match client
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .cloud("DescribeDBClusters", Some(id.to_string()))
    {
        Ok(answer) => Ok(answer.db_clusters().first().map(|cluster| Existing {
            status: cluster.status().unwrap_or("unknown").to_string(),
            run_id: cluster
                .tag_list()
                .iter()
                .find(|tag| tag.key() == Some(TAG_RUN_ID))
                .and_then(|tag| tag.value().map(str::to_string)),
            endpoint: cluster
                .endpoint()
                .map(|address| (address.to_string(), cluster.port().unwrap_or(5432))),
        })),
        Err(error) if error.is("DBClusterNotFoundFault") || error.is("DBClusterNotFound") => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn database_id(params: &Params, step: &str, run_id: &str) -> String {
    params
        .db_identifier
        .clone()
        .unwrap_or_else(|| format!("{step}-{run_id}"))
        .to_lowercase()
}

fn conflict(resource: &str) -> StepError {
    StepError::Conflict {
        resource: resource.to_string(),
        hint: "choose another `db_identifier`, or delete or rename the existing database if it is a leftover".to_string(),
    }
}

#[async_trait]
impl Step for AwsRdsRestore {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        let (source, name) = params.source()?;
        let limit = params.rpo_limit(context.rpo_limit)?;
        let client = context.cloud.rds(&context.target_region);
        let now = Timestamp::now();
        let mut problems = Vec::new();
        let pinned: Option<Snapshot> = context
            .pins
            .get("snapshot")
            .and_then(|value| serde_json::from_value(value.clone()).ok());
        let snapshot = match pinned {
            Some(snapshot) => Some(snapshot),
            None => {
                let found = newest_snapshot(&client, source, name).await?;
                match &found {
                    None => problems.push(StepProblem::from(format!(
                        "{}; {NO_SNAPSHOT_HINT}",
                        no_snapshot_message(source, name, &context.target_region)
                    ))),
                    Some(snapshot) if !context.accept_rpo => {
                        if let Some(problem) =
                            rpo_problem(snapshot, limit, now, &context.target_region)
                        {
                            problems.push(StepProblem::RpoExceeded {
                                message: format!(
                                    "{problem}; pass `--accept-rpo` to restore it anyway"
                                ),
                            });
                        }
                    }
                    Some(_) => {}
                }
                found
            }
        };
        let (action, summary) = match (&context.run_id, &params.db_identifier) {
            (Some(run_id), _) | (None, Some(run_id)) => {
                let id = database_id(&params, &context.step_id, run_id);
                let existing = match source {
                    Source::Instance => describe_instance(&client, &id).await?,
                    Source::Cluster => describe_cluster(&client, &id).await?,
                };
                match existing {
                    Some(found)
                        if found.run_id.as_deref() == context.run_id.as_deref()
                            && context.run_id.is_some() =>
                    {
                        (
                            Action::Adopt,
                            format!("adopt database `{id}` ({})", found.status),
                        )
                    }
                    Some(_) => {
                        problems.push(StepProblem::from(format!("database `{id}` already exists in `{}` and was not created by this run", context.target_region)));
                        (Action::Unknown, format!("`{id}` exists already"))
                    }
                    None => (Action::Create, format!("restore into new database `{id}`")),
                }
            }
            (None, None) => (
                Action::Create,
                format!("restore into new database `{}-<run-id>`", context.step_id),
            ),
        };
        let mut plan = StepPlan::new(action, summary).detail(
            "source",
            format!(
                "{name} ({})",
                if source == Source::Instance {
                    "instance"
                } else {
                    "Aurora cluster"
                }
            ),
        );
        if let Some(snapshot) = &snapshot {
            plan = plan
                .detail("snapshot", snapshot.id.clone())
                .detail("snapshot taken", render_time(snapshot.taken))
                .detail("rpo (snapshot age)", duration::render(snapshot.age(now)));
        }
        if let Some(limit) = limit {
            plan = plan.detail("rpo limit", duration::render(limit));
        }
        if let Some(class) = &params.instance_class {
            plan = plan.detail("instance class", class.clone());
        }
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let (source, name) = params.source()?;
        let limit = params.rpo_limit(context.rpo_limit)?;
        let client = context.cloud.rds(&context.target_region);
        let class = params
            .instance_class
            .clone()
            .ok_or_else(|| StepError::Params("`instance_class` is required".into()))?;
        let subnets = params
            .subnet_ids
            .clone()
            .filter(|subnets| !subnets.is_empty())
            .ok_or_else(|| {
                StepError::Params("`subnet_ids` must list the private subnets".into())
            })?;
        let groups = params.security_group_ids.clone().unwrap_or_default();

        // 1. The snapshot: pinned by an earlier attempt, or the newest one, checked against
        //    the RPO limit before anything is created.
        let snapshot: Snapshot = match context.pinned("snapshot") {
            Some(value) => serde_json::from_value(value).map_err(|error| {
                StepError::Params(format!("pinned snapshot unreadable: {error}"))
            })?,
            None => {
                let snapshot = newest_snapshot(&client, source, name)
                    .await?
                    .ok_or_else(|| StepError::Refused {
                        message: no_snapshot_message(source, name, &context.target_region),
                        hint: NO_SNAPSHOT_HINT.to_string(),
                    })?;
                if !context.accept_rpo
                    && let Some(problem) =
                        rpo_problem(&snapshot, limit, Timestamp::now(), &context.target_region)
                {
                    return Err(StepError::Refused {
                            message: problem,
                            hint: "restore it anyway with `--accept-rpo`, or copy a newer snapshot into the target region first".to_string(),
                        });
                }
                let snapshot = Snapshot {
                    chosen: Some(Timestamp::now()),
                    ..snapshot
                };
                let value = serde_json::to_value(&snapshot)
                    .map_err(|error| StepError::Params(error.to_string()))?;
                context.pin("snapshot", value)?;
                context.progress(format!(
                    "restoring snapshot {} taken {} ({} ago)",
                    snapshot.id,
                    render_time(snapshot.taken),
                    duration::render(snapshot.age(Timestamp::now()))
                ));
                snapshot
            }
        };
        context.checkpoint("after-pin")?;

        let id = database_id(&params, &context.step_id, &context.run_id);
        let tags: Vec<Tag> = context
            .tags_for("database")
            .into_iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect();

        // 2. The DB subnet group on the private subnets.
        let subnet_group = format!("{id}-subnets");
        let exists = match client
            .describe_db_subnet_groups()
            .db_subnet_group_name(&subnet_group)
            .send()
            .await
            .cloud("DescribeDBSubnetGroups", Some(subnet_group.clone()))
        {
            Ok(answer) => answer
                .db_subnet_groups()
                .first()
                .and_then(|group| group.db_subnet_group_arn().map(str::to_string)),
            Err(error)
                if error.is("DBSubnetGroupNotFoundFault") || error.is("DBSubnetGroupNotFound") =>
            {
                None
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(arn) = exists {
            let tags = client
                .list_tags_for_resource()
                .resource_name(&arn)
                .send()
                .await
                .cloud("ListTagsForResource", Some(subnet_group.clone()))?;
            let ours = tags.tag_list().iter().any(|tag| {
                tag.key() == Some(TAG_RUN_ID) && tag.value() == Some(context.run_id.as_str())
            });
            if !ours {
                return Err(conflict(&subnet_group));
            }
            context.resource("db-subnet-group", &subnet_group, false)?;
        } else {
            client
                .create_db_subnet_group()
                .db_subnet_group_name(&subnet_group)
                .db_subnet_group_description(format!(
                    "rebuild run {} step {}",
                    context.run_id, context.step_id
                ))
                .set_subnet_ids(Some(subnets))
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .cloud("CreateDBSubnetGroup", Some(subnet_group.clone()))?;
            context.resource("db-subnet-group", &subnet_group, true)?;
        }
        context.checkpoint("after-subnet-group")?;

        // 3. The database itself.
        let instance_id = match source {
            Source::Instance => {
                match describe_instance(&client, &id).await? {
                    Some(found) if found.run_id.as_deref() == Some(context.run_id.as_str()) => {
                        context.resource("db-instance", &id, false)?;
                    }
                    Some(_) => return Err(conflict(&id)),
                    None => {
                        client
                            .restore_db_instance_from_db_snapshot()
                            .db_instance_identifier(&id)
                            .db_snapshot_identifier(&snapshot.id)
                            .db_instance_class(&class)
                            .db_subnet_group_name(&subnet_group)
                            .set_vpc_security_group_ids(Some(groups.clone()))
                            .multi_az(params.multi_az)
                            .publicly_accessible(false)
                            .set_port(params.port)
                            .set_db_parameter_group_name(params.parameter_group.clone())
                            .deletion_protection(params.deletion_protection)
                            .copy_tags_to_snapshot(true)
                            .set_tags(Some(tags.clone()))
                            .send()
                            .await
                            .cloud("RestoreDBInstanceFromDBSnapshot", Some(id.clone()))?;
                        context.resource("db-instance", &id, true)?;
                    }
                }
                id.clone()
            }
            Source::Cluster => {
                match describe_cluster(&client, &id).await? {
                    Some(found) if found.run_id.as_deref() == Some(context.run_id.as_str()) => {
                        context.resource("db-cluster", &id, false)?;
                    }
                    Some(_) => return Err(conflict(&id)),
                    None => {
                        client
                            .restore_db_cluster_from_snapshot()
                            .db_cluster_identifier(&id)
                            .snapshot_identifier(&snapshot.id)
                            .engine(&snapshot.engine)
                            .db_subnet_group_name(&subnet_group)
                            .set_vpc_security_group_ids(Some(groups.clone()))
                            .set_port(params.port)
                            .set_db_cluster_parameter_group_name(params.parameter_group.clone())
                            .deletion_protection(params.deletion_protection)
                            .set_tags(Some(tags.clone()))
                            .send()
                            .await
                            .cloud("RestoreDBClusterFromSnapshot", Some(id.clone()))?;
                        context.resource("db-cluster", &id, true)?;
                    }
                }
                context.checkpoint("after-cluster")?;
                let writer = format!("{id}-writer");
                match describe_instance(&client, &writer).await? {
                    Some(found) if found.run_id.as_deref() == Some(context.run_id.as_str()) => {
                        context.resource("db-instance", &writer, false)?;
                    }
                    Some(_) => return Err(conflict(&writer)),
                    None => {
                        client
                            .create_db_instance()
                            .db_instance_identifier(&writer)
                            .db_cluster_identifier(&id)
                            .db_instance_class(&class)
                            .engine(&snapshot.engine)
                            .publicly_accessible(false)
                            .set_tags(Some(tags.clone()))
                            .send()
                            .await
                            .cloud("CreateDBInstance", Some(writer.clone()))?;
                        context.resource("db-instance", &writer, true)?;
                    }
                }
                writer
            }
        };
        context.checkpoint("after-restore")?;

        // 4. Wait until it serves.
        let what = format!("database `{id}` to become available");
        let endpoint = context
            .wait_for(&what, || async {
                let (status, endpoint) = match source {
                    Source::Instance => {
                        let found = describe_instance(&client, &instance_id).await?;
                        let found = found.ok_or_else(|| StepError::BadState {
                            resource: instance_id.clone(),
                            status: "deleted".into(),
                        })?;
                        (found.status, found.endpoint)
                    }
                    Source::Cluster => {
                        let cluster = describe_cluster(&client, &id).await?;
                        let cluster = cluster.ok_or_else(|| StepError::BadState {
                            resource: id.clone(),
                            status: "deleted".into(),
                        })?;
                        let writer = describe_instance(&client, &instance_id).await?;
                        let writer_status =
                            writer.map(|w| w.status).unwrap_or_else(|| "deleted".into());
                        let status = if cluster.status == "available" {
                            writer_status
                        } else {
                            cluster.status
                        };
                        (status, cluster.endpoint)
                    }
                };
                match status.as_str() {
                    "available" => match endpoint {
                        Some(endpoint) => Ok(Poll::Ready(endpoint)),
                        None => Ok(Poll::Pending(
                            "available, endpoint not published yet".into(),
                        )),
                    },
                    "failed"
                    | "incompatible-restore"
                    | "incompatible-parameters"
                    | "incompatible-network"
                    | "inaccessible-encryption-credentials"
                    | "storage-full"
                    | "deleting"
                    | "deleted" => Err(StepError::BadState {
                        resource: id.clone(),
                        status,
                    }),
                    _ => Ok(Poll::Pending(status)),
                }
            })
            .await?;
        context.checkpoint("after-available")?;

        // 5. A new master password, if one is given (never journaled or printed).
        if let Some(password) = params.master_password.as_deref().filter(|p| !p.is_empty()) {
            match source {
                Source::Instance => {
                    client
                        .modify_db_instance()
                        .db_instance_identifier(&instance_id)
                        .master_user_password(password)
                        .apply_immediately(true)
                        .send()
                        .await
                        .cloud("ModifyDBInstance", Some(instance_id.clone()))?;
                }
                Source::Cluster => {
                    client
                        .modify_db_cluster()
                        .db_cluster_identifier(&id)
                        .master_user_password(password)
                        .apply_immediately(true)
                        .send()
                        .await
                        .cloud("ModifyDBCluster", Some(id.clone()))?;
                }
            }
            context.progress("master password set");
        }

        let age = snapshot.age(snapshot.chosen.unwrap_or_else(Timestamp::now));
        Ok(Values::from([
            ("endpoint".to_string(), json!(endpoint.0)),
            ("port".to_string(), json!(endpoint.1)),
            ("db_identifier".to_string(), json!(id)),
            ("engine".to_string(), json!(snapshot.engine)),
            ("snapshot_id".to_string(), json!(snapshot.id)),
            (
                "snapshot_time".to_string(),
                json!(snapshot.taken.to_string()),
            ),
            ("rpo_seconds".to_string(), json!(age.as_secs())),
            ("subnet_group".to_string(), json!(subnet_group)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(hours_ago: i64, now: Timestamp) -> Snapshot {
        Snapshot {
            id: "prod-db-snap-2-copy".into(),
            source: Source::Instance,
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
    fn exactly_one_source() {
        let mut params: Params =
            serde_json::from_value(json!({"instance_class": "db.t3.medium"})).unwrap();
        assert!(params.source().is_err());
        params.source_db_instance = Some("prod-db".into());
        assert_eq!(params.source().unwrap(), (Source::Instance, "prod-db"));
        params.source_db_cluster = Some("prod-aurora".into());
        assert!(params.source().is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let params: Params = serde_json::from_value(json!({"master_password": "hunter2"})).unwrap();
        assert!(!format!("{params:?}").contains("hunter2"));
    }
}
