//! What a restore makes, by what the production database is: a DB instance from a DB
//! snapshot, or an Aurora cluster plus its writer instance from a DB cluster snapshot.
//! [`Database`] holds every difference between the two (describe, restore, wait, set the
//! password), so the step itself never asks which one it has. Every resource — the DB
//! subnet group, the instance, the cluster, the writer — goes through the ownership
//! protocol by its deterministic name.

use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::secret::Secret;
use crate::steps::context::Poll;
use crate::steps::{StepContext, StepError};

use super::super::ownership::{Kind, Ownership, ensure};
use super::super::tags::{Existing, rds_run_id};
use super::Params;
use super::snapshot::Snapshot;

/// What the production database is (pinned with the snapshot as its `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Database {
    /// A DB instance, restored from a DB snapshot.
    Instance,
    /// An Aurora cluster, restored from a DB cluster snapshot with one writer instance.
    Cluster,
}

/// Where a database answers: address and port.
pub(super) type Endpoint = (String, i32);

const CONFLICT_HINT: &str =
    "choose another `db_identifier`, or delete or rename the existing database if it is a leftover";
const SUBNET_GROUP: Kind = Kind {
    journal: "db-subnet-group",
    conflict_hint: CONFLICT_HINT,
};
const INSTANCE: Kind = Kind {
    journal: "db-instance",
    conflict_hint: CONFLICT_HINT,
};
const CLUSTER: Kind = Kind {
    journal: "db-cluster",
    conflict_hint: CONFLICT_HINT,
};

/// States a restore does not come back from.
const FAILED: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "inaccessible-encryption-credentials",
    "storage-full",
    "deleting",
    "deleted",
];

/// The RDS client, the step, and the tags everything it creates carries.
pub(super) struct Rds<'a> {
    pub client: &'a Client,
    pub context: &'a StepContext,
    pub tags: Vec<Tag>,
}

/// A restore: into `id`, from `snapshot`, on `subnet_group`, as `params` say.
pub(super) struct Restore<'a> {
    pub id: &'a str,
    pub subnet_group: &'a str,
    pub snapshot: &'a Snapshot,
    pub params: &'a Params,
}

impl Database {
    /// How the plan names it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Cluster => "Aurora cluster",
        }
    }

    /// The database `id`, if it exists.
    pub(super) async fn describe(
        self,
        client: &Client,
        id: &str,
    ) -> Result<Option<Existing<Option<Endpoint>>>, CloudError> {
        match self {
            Self::Instance => describe_instance(client, id).await,
            Self::Cluster => describe_cluster(client, id).await,
        }
    }

    /// Restore (or adopt) it; the instance that serves it (the writer, for a cluster).
    pub(super) async fn restore(
        self,
        rds: &Rds<'_>,
        restore: &Restore<'_>,
    ) -> Result<String, StepError> {
        match self {
            Self::Instance => rds.instance(restore).await,
            Self::Cluster => {
                rds.cluster(restore).await?;
                rds.context.checkpoint("after-cluster")?;
                rds.writer(restore).await
            }
        }
    }

    /// Wait until `id` (served by `instance`) is available with an endpoint.
    pub(super) async fn wait(
        self,
        rds: &Rds<'_>,
        id: &str,
        instance: &str,
    ) -> Result<Endpoint, StepError> {
        let what = format!("database `{id}` to become available");
        rds.context
            .wait_for(&what, || async {
                let (status, endpoint) = self.status(rds.client, id, instance).await?;
                match (status.as_str(), endpoint) {
                    ("available", Some(endpoint)) => Ok(Poll::Ready(endpoint)),
                    ("available", None) => Ok(Poll::Pending(
                        "available, endpoint not published yet".into(),
                    )),
                    (failed, _) if FAILED.contains(&failed) => Err(StepError::BadState {
                        resource: id.to_string(),
                        status,
                    }),
                    _ => Ok(Poll::Pending(status)),
                }
            })
            .await
    }

    /// The status that decides the wait (a cluster's, then its writer's) and the endpoint.
    async fn status(
        self,
        client: &Client,
        id: &str,
        instance: &str,
    ) -> Result<(String, Option<Endpoint>), StepError> {
        let deleted = |resource: &str| StepError::BadState {
            resource: resource.to_string(),
            status: "deleted".into(),
        };
        let found = self
            .describe(client, id)
            .await?
            .ok_or_else(|| deleted(id))?;
        if self == Self::Instance || found.status != "available" {
            return Ok((found.status, found.resource));
        }
        let writer = describe_instance(client, instance).await?;
        let status = writer.map_or_else(|| "deleted".into(), |writer| writer.status);
        Ok((status, found.resource))
    }

    /// Set a new master password, applied at once (never journaled or printed).
    pub(super) async fn set_password(
        self,
        client: &Client,
        id: &str,
        instance: &str,
        password: &Secret,
    ) -> Result<(), StepError> {
        match self {
            Self::Instance => {
                client
                    .modify_db_instance()
                    .db_instance_identifier(instance)
                    .master_user_password(password.expose())
                    .apply_immediately(true)
                    .send()
                    .await
                    .cloud("ModifyDBInstance", Some(instance.to_string()))?;
            }
            Self::Cluster => {
                client
                    .modify_db_cluster()
                    .db_cluster_identifier(id)
                    .master_user_password(password.expose())
                    .apply_immediately(true)
                    .send()
                    .await
                    .cloud("ModifyDBCluster", Some(id.to_string()))?;
            }
        }
        Ok(())
    }
}

async fn describe_instance(
    client: &Client,
    id: &str,
) -> Result<Option<Existing<Option<Endpoint>>>, CloudError> {
    let answer = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .cloud("DescribeDBInstances", Some(id.to_string()));
    let answer = match answer {
        Err(error) if error.is_not_found() => return Ok(None),
        answer => answer?,
    };
    Ok(answer.db_instances().first().map(|instance| Existing {
        id: id.to_string(),
        status: instance
            .db_instance_status()
            .unwrap_or("unknown")
            .to_string(),
        run_id: rds_run_id(instance.tag_list()),
        resource: instance.endpoint().and_then(|endpoint| {
            Some((
                endpoint.address()?.to_string(),
                endpoint.port().unwrap_or(5432),
            ))
        }),
    }))
}

async fn describe_cluster(
    client: &Client,
    id: &str,
) -> Result<Option<Existing<Option<Endpoint>>>, CloudError> {
    let answer = client
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .cloud("DescribeDBClusters", Some(id.to_string()));
    let answer = match answer {
        Err(error) if error.is_not_found() => return Ok(None),
        answer => answer?,
    };
    Ok(answer.db_clusters().first().map(|cluster| Existing {
        id: id.to_string(),
        status: cluster.status().unwrap_or("unknown").to_string(),
        run_id: rds_run_id(cluster.tag_list()),
        resource: cluster
            .endpoint()
            .map(|address| (address.to_string(), cluster.port().unwrap_or(5432))),
    }))
}

impl Rds<'_> {
    /// Whose a resource found by name is.
    fn ownership<T>(&self, found: Option<Existing<T>>) -> Ownership<Existing<T>> {
        Ownership::named(found, Some(&self.context.run_id))
    }

    /// The DB subnet group `ID-subnets` on `subnets`; its name. One that exists is ours
    /// only if its tags (`ListTagsForResource`) name this run.
    pub(super) async fn subnet_group(
        &self,
        id: &str,
        subnets: &[String],
    ) -> Result<String, StepError> {
        let name = format!("{id}-subnets");
        let name = name.as_str();
        let find = || async move {
            let answer = self
                .client
                .describe_db_subnet_groups()
                .db_subnet_group_name(name)
                .send()
                .await
                .cloud("DescribeDBSubnetGroups", Some(name.to_string()));
            let found = match answer {
                Err(error) if error.is_not_found() => None,
                answer => answer?.db_subnet_groups().first().and_then(|group| {
                    let status = group.subnet_group_status().unwrap_or("unknown");
                    Some((group.db_subnet_group_arn()?.to_string(), status.to_string()))
                }),
            };
            let Some((arn, status)) = found else {
                return Ok(Ownership::Absent);
            };
            let tags = self
                .client
                .list_tags_for_resource()
                .resource_name(&arn)
                .send()
                .await
                .cloud("ListTagsForResource", Some(name.to_string()))?;
            Ok(self.ownership(Some(Existing {
                id: name.to_string(),
                status,
                run_id: rds_run_id(tags.tag_list()),
                resource: (),
            })))
        };
        let create = || async move {
            let context = self.context;
            self.client
                .create_db_subnet_group()
                .db_subnet_group_name(name)
                .db_subnet_group_description(format!(
                    "rebuild run {} step {}",
                    context.run_id, context.step_id
                ))
                .set_subnet_ids(Some(subnets.to_vec()))
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("CreateDBSubnetGroup", Some(name.to_string()))?;
            Ok(name.to_string())
        };
        Ok(ensure(self.context, SUBNET_GROUP, find, create).await?.id)
    }

    /// The DB instance, restored from a DB snapshot.
    async fn instance(&self, restore: &Restore<'_>) -> Result<String, StepError> {
        let (id, params) = (restore.id, restore.params);
        let find = || async move { Ok(self.ownership(describe_instance(self.client, id).await?)) };
        let create = || async move {
            self.client
                .restore_db_instance_from_db_snapshot()
                .db_instance_identifier(id)
                .db_snapshot_identifier(&restore.snapshot.id)
                .db_instance_class(&params.instance_class)
                .db_subnet_group_name(restore.subnet_group)
                .set_vpc_security_group_ids(Some(params.security_group_ids.clone()))
                .multi_az(params.multi_az)
                .publicly_accessible(false)
                .set_port(params.port)
                .set_db_parameter_group_name(params.parameter_group.clone())
                .deletion_protection(params.deletion_protection)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("RestoreDBInstanceFromDBSnapshot", Some(id.to_string()))?;
            Ok(id.to_string())
        };
        Ok(ensure(self.context, INSTANCE, find, create).await?.id)
    }

    /// The Aurora cluster, restored from a DB cluster snapshot.
    async fn cluster(&self, restore: &Restore<'_>) -> Result<String, StepError> {
        let (id, params) = (restore.id, restore.params);
        let find = || async move { Ok(self.ownership(describe_cluster(self.client, id).await?)) };
        let create = || async move {
            self.client
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(id)
                .snapshot_identifier(&restore.snapshot.id)
                .engine(&restore.snapshot.engine)
                .db_subnet_group_name(restore.subnet_group)
                .set_vpc_security_group_ids(Some(params.security_group_ids.clone()))
                .set_port(params.port)
                .set_db_cluster_parameter_group_name(params.parameter_group.clone())
                .deletion_protection(params.deletion_protection)
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("RestoreDBClusterFromSnapshot", Some(id.to_string()))?;
            Ok(id.to_string())
        };
        Ok(ensure(self.context, CLUSTER, find, create).await?.id)
    }

    /// The cluster's writer instance `ID-writer`.
    async fn writer(&self, restore: &Restore<'_>) -> Result<String, StepError> {
        let writer = format!("{}-writer", restore.id);
        let writer = writer.as_str();
        let find =
            || async move { Ok(self.ownership(describe_instance(self.client, writer).await?)) };
        let create = || async move {
            self.client
                .create_db_instance()
                .db_instance_identifier(writer)
                .db_cluster_identifier(restore.id)
                .db_instance_class(&restore.params.instance_class)
                .engine(&restore.snapshot.engine)
                .publicly_accessible(false)
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("CreateDBInstance", Some(writer.to_string()))?;
            Ok(writer.to_string())
        };
        Ok(ensure(self.context, INSTANCE, find, create).await?.id)
    }
}
