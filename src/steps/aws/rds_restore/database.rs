//! What a restore makes, by what the production database is: a DB instance from a DB
//! snapshot, or an Aurora cluster plus its writer instance from a DB cluster snapshot.
//! [`Database`] holds every difference between the two (describe, restore, wait, set the
//! password), so the step itself never asks which one it has. Every resource — the DB
//! subnet group, the instance, the cluster, the writer — goes through the ownership
//! protocol by its deterministic name. The waits end at once on a failure state, with what
//! to do about it (review D7); right after this attempt's own restore, a database RDS does
//! not show yet is waited for a short while (eventual consistency, review D3).

use std::time::{Duration, Instant};

use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudResultExt};
use crate::secret::Secret;
use crate::steps::context::{Poll, Wait};
use crate::steps::{StepContext, StepError};

use super::super::ownership::{Ensured, Kind, Ownership, ensure};
use super::super::tags::{Existing, Marks};
use super::Params;
use super::snapshot::Snapshot;

/// How long a restore usually takes to become `available`: from 20 minutes to hours, with the snapshot's size; past runs of the stack say better.
const RESTORE_TYPICAL: Duration = Duration::from_secs(25 * 60);
/// How long RDS usually takes to apply a new master password.
const PASSWORD_TYPICAL: Duration = Duration::from_secs(60);

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

/// States a restore does not come back from (RDS's DB instance status table).
const FAILED: &[&str] = &[
    "failed",
    "restore-error",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-option-group",
    "incompatible-credentials",
    "incompatible-network",
    "insufficient-capacity",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "storage-full",
    "deleting",
    "deleted",
];

/// How long a database this attempt just restored may be missing from `Describe*`
/// answers before that means it is gone (RDS's API is eventually consistent).
const VISIBILITY_GRACE: Duration = Duration::from_secs(120);

/// What to do about a database in the failure state `status`.
fn failure_hint(status: &str) -> &'static str {
    match status {
        "insufficient-capacity" => {
            "RDS has no capacity for this instance class in the subnets' Availability Zones: choose another `instance_class`: delete the database, then `rebuild resume --input db_instance_class=…` (or delete it and `rebuild resume` later)"
        }
        "restore-error" | "incompatible-restore" => {
            "the restore failed (the database's RDS events say why): delete the database, then `rebuild resume` to restore again, or copy another snapshot into the target region"
        }
        "incompatible-parameters" => {
            "the parameter group does not fit this instance class or engine version (memory settings, say): fix the group or `parameter_group`, delete the database, then `rebuild resume`"
        }
        "incompatible-option-group" => {
            "the option group does not fit this engine version: fix `option_group`, delete the database, then `rebuild resume`"
        }
        "incompatible-credentials" => {
            "RDS cannot use the credentials the database refers to: check the master user's secret, delete the database, then `rebuild resume`"
        }
        "inaccessible-encryption-credentials"
        | "inaccessible-encryption-credentials-recoverable" => {
            "RDS cannot use the snapshot's KMS key: make a key in the target region usable (enabled, with a grant for RDS), delete the database, then `rebuild resume`"
        }
        "incompatible-network" => {
            "the subnets cannot hold the database (free addresses, Availability Zones): fix the network, delete the database, then `rebuild resume`"
        }
        _ => {
            "inspect the database in the RDS console; delete it if it is broken, then `rebuild resume`"
        }
    }
}

/// The failure of `resource` in state `status`.
fn failed(resource: &str, status: String) -> StepError {
    StepError::Failed {
        resource: resource.to_string(),
        hint: failure_hint(&status).to_string(),
        reason: "RDS stopped the database in a failure state; waiting longer would not help"
            .to_string(),
        status,
    }
}

/// What a restore made: the instance that serves the database (the writer, for a
/// cluster), and when this attempt created it (`None`: adopted).
pub(super) struct Restored {
    pub instance: String,
    pub created: Option<Instant>,
}

impl Restored {
    /// Whether a database missing from `Describe*` may simply not be visible yet.
    fn maybe_invisible(&self) -> bool {
        self.created
            .is_some_and(|created| created.elapsed() < VISIBILITY_GRACE)
    }
}

/// The RDS client, the step, and the tags everything it creates carries.
pub(super) struct Rds<'a> {
    pub client: &'a Client,
    pub context: &'a StepContext,
    pub tags: Vec<Tag>,
}

/// A restore: into `id`, from `snapshot`, on `subnet_group`, as `params` say.
pub(super) struct Restore<'a> {
    pub id: &'a str,
    /// What the step found by that name before it chose the snapshot (the instance, or
    /// the Aurora cluster): what the restore adopts, not looked up again.
    pub found: Option<Existing<Option<Endpoint>>>,
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

    /// Restore (or adopt) it: the instance that serves it (the writer, for a cluster).
    pub(super) async fn restore(
        self,
        rds: &Rds<'_>,
        restore: &Restore<'_>,
    ) -> Result<Restored, StepError> {
        match self {
            Self::Instance => rds.instance(restore).await,
            Self::Cluster => {
                let cluster = rds.cluster(restore).await?;
                rds.context.checkpoint("after-cluster")?;
                let writer = rds.writer(restore).await?;
                Ok(Restored {
                    instance: writer.instance,
                    created: writer.created.or(cluster.created),
                })
            }
        }
    }

    /// Wait until `id` (served by `restored`) is available with an endpoint.
    pub(super) async fn wait(
        self,
        rds: &Rds<'_>,
        id: &str,
        restored: &Restored,
    ) -> Result<Endpoint, StepError> {
        let what = format!("database `{id}` to become available");
        rds.context
            .wait_for(
                Wait::new("db-available", what).typically(RESTORE_TYPICAL),
                || async {
                    let Some((status, endpoint)) =
                        self.status(rds.client, id, &restored.instance).await?
                    else {
                        return if restored.maybe_invisible() {
                            Ok(Poll::Pending("restored, not visible yet".into()))
                        } else {
                            Err(failed(id, "deleted".into()))
                        };
                    };
                    match (status.as_str(), endpoint) {
                        ("available", Some(endpoint)) => Ok(Poll::Ready(endpoint)),
                        ("available", None) => Ok(Poll::Pending(
                            "available, endpoint not published yet".into(),
                        )),
                        (state, _) if FAILED.contains(&state) => Err(failed(id, status)),
                        _ => Ok(Poll::Pending(status)),
                    }
                },
            )
            .await
    }

    /// The status that decides the wait (a cluster's, then its writer's) and the endpoint;
    /// `None` when RDS does not show the database (or the writer).
    async fn status(
        self,
        client: &Client,
        id: &str,
        instance: &str,
    ) -> Result<Option<(String, Option<Endpoint>)>, StepError> {
        let Some(found) = self.describe(client, id).await? else {
            return Ok(None);
        };
        if self == Self::Instance || found.status != "available" {
            return Ok(Some((found.status, found.resource)));
        }
        let Some(writer) = describe_instance(client, instance).await? else {
            return Ok(None);
        };
        Ok(Some((writer.status, found.resource)))
    }

    /// Wait until RDS has applied a new master password: the status is `available` again
    /// and no password change is pending (until then the old password may still be the
    /// one that works).
    pub(super) async fn wait_for_password(
        self,
        rds: &Rds<'_>,
        id: &str,
        instance: &str,
    ) -> Result<(), StepError> {
        let what = format!("the new master password of `{id}` to be applied");
        rds.context
            .wait_for(
                Wait::new("password-applied", what).typically(PASSWORD_TYPICAL),
                || async {
                    let (status, pending, _) =
                        self.password_status(rds.client, id, instance).await?;
                    match status.as_str() {
                        "available" if !pending => Ok(Poll::Ready(())),
                        "available" => Ok(Poll::Pending("password change pending".into())),
                        state if FAILED.contains(&state) => Err(failed(id, status)),
                        _ => Ok(Poll::Pending(status)),
                    }
                },
            )
            .await
    }

    /// The status, whether a password change is pending (`PendingModifiedValues`), and
    /// the master user secret RDS keeps, if it manages the password ((ARN, status)): one
    /// describe.
    async fn password_status(
        self,
        client: &Client,
        id: &str,
        instance: &str,
    ) -> Result<(String, bool, Option<(String, String)>), StepError> {
        let gone = || failed(id, "deleted".into());
        let (status, pending, secret) = match self {
            Self::Instance => {
                let answer = client
                    .describe_db_instances()
                    .db_instance_identifier(instance)
                    .send()
                    .await
                    .cloud("DescribeDBInstances", Some(instance.to_string()))?;
                let found = answer.db_instances().first().ok_or_else(gone)?;
                let pending = found
                    .pending_modified_values()
                    .is_some_and(|pending| pending.master_user_password().is_some());
                let status = found.db_instance_status().unwrap_or("unknown").to_string();
                (status, pending, found.master_user_secret().cloned())
            }
            Self::Cluster => {
                let answer = client
                    .describe_db_clusters()
                    .db_cluster_identifier(id)
                    .send()
                    .await
                    .cloud("DescribeDBClusters", Some(id.to_string()))?;
                let found = answer.db_clusters().first().ok_or_else(gone)?;
                let pending = found
                    .pending_modified_values()
                    .is_some_and(|pending| pending.master_user_password().is_some());
                let status = found.status().unwrap_or("unknown").to_string();
                (status, pending, found.master_user_secret().cloned())
            }
        };
        Ok((
            status,
            pending,
            secret.and_then(|secret| secret_of(&secret)),
        ))
    }

    /// Have RDS manage the master password (`ManageMasterUserPassword`): RDS sets a new
    /// one and keeps it in the target region's Secrets Manager, where the deploy reads it
    /// (review B3: the source region's secrets are gone with it). Waits until the secret is
    /// active and the database available; returns the secret's ARN. A database whose
    /// password RDS manages already (an earlier attempt's) is left as it is.
    pub(super) async fn manage_password(
        self,
        rds: &Rds<'_>,
        id: &str,
        instance: &str,
    ) -> Result<String, StepError> {
        if self
            .managed_secret(rds.client, id, instance)
            .await?
            .is_none()
        {
            match self {
                Self::Instance => {
                    rds.client
                        .modify_db_instance()
                        .db_instance_identifier(instance)
                        .manage_master_user_password(true)
                        .apply_immediately(true)
                        .send()
                        .await
                        .cloud("ModifyDBInstance", Some(instance.to_string()))?;
                }
                Self::Cluster => {
                    rds.client
                        .modify_db_cluster()
                        .db_cluster_identifier(id)
                        .manage_master_user_password(true)
                        .apply_immediately(true)
                        .send()
                        .await
                        .cloud("ModifyDBCluster", Some(id.to_string()))?;
                }
            }
        }
        let what = format!("the managed master password of `{id}` to be in place");
        rds.context
            .wait_for(
                Wait::new("managed-password", what).typically(PASSWORD_TYPICAL),
                || async {
                    let (status, pending, secret) =
                        self.password_status(rds.client, id, instance).await?;
                    match (status.as_str(), secret) {
                        ("available", Some((arn, state))) if !pending && state == "active" => {
                            Ok(Poll::Ready(arn))
                        }
                        (state, _) if FAILED.contains(&state) => Err(failed(id, status)),
                        (_, Some((_, state))) => {
                            Ok(Poll::Pending(format!("{status}, secret {state}")))
                        }
                        _ => Ok(Poll::Pending(status)),
                    }
                },
            )
            .await
    }

    /// The master user secret RDS keeps, if it manages the password: (ARN, status).
    async fn managed_secret(
        self,
        client: &Client,
        id: &str,
        instance: &str,
    ) -> Result<Option<(String, String)>, StepError> {
        let secret = match self {
            Self::Instance => {
                let answer = client
                    .describe_db_instances()
                    .db_instance_identifier(instance)
                    .send()
                    .await
                    .cloud("DescribeDBInstances", Some(instance.to_string()))?;
                let found = answer.db_instances().first();
                found.and_then(|found| found.master_user_secret().cloned())
            }
            Self::Cluster => {
                let answer = client
                    .describe_db_clusters()
                    .db_cluster_identifier(id)
                    .send()
                    .await
                    .cloud("DescribeDBClusters", Some(id.to_string()))?;
                let found = answer.db_clusters().first();
                found.and_then(|found| found.master_user_secret().cloned())
            }
        };
        Ok(secret.and_then(|secret| secret_of(&secret)))
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

/// A master user secret's (ARN, status), when RDS names its ARN.
fn secret_of(secret: &aws_sdk_rds::types::MasterUserSecret) -> Option<(String, String)> {
    let arn = secret.secret_arn()?.to_string();
    let status = secret.secret_status().unwrap_or("active").to_string();
    Some((arn, status))
}

/// The DB instance `id` as RDS describes it, if it exists.
pub(super) async fn find_instance(
    client: &Client,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbInstance>, CloudError> {
    let answer = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .cloud("DescribeDBInstances", Some(id.to_string()));
    match answer {
        Err(error) if error.is_not_found() => Ok(None),
        answer => Ok(answer?.db_instances().first().cloned()),
    }
}

async fn describe_instance(
    client: &Client,
    id: &str,
) -> Result<Option<Existing<Option<Endpoint>>>, CloudError> {
    let found = find_instance(client, id).await?;
    Ok(found.as_ref().map(|instance| Existing {
        id: id.to_string(),
        status: instance
            .db_instance_status()
            .unwrap_or("unknown")
            .to_string(),
        tags: Marks::rds(instance.tag_list()),
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
        tags: Marks::rds(cluster.tag_list()),
        resource: cluster
            .endpoint()
            .map(|address| (address.to_string(), cluster.port().unwrap_or(5432))),
    }))
}

impl Rds<'_> {
    /// Whose a resource found by name is.
    fn ownership<T>(&self, found: Option<Existing<T>>) -> Ownership<Existing<T>> {
        Ownership::named(found, &self.context.owner)
    }

    /// The DB subnet group `ID-subnets`, if it exists, and whose it is: one that exists is
    /// ours only if its tags (`ListTagsForResource`) name this stack. Read-only: the step
    /// asks it together with the database and the snapshots.
    pub(super) async fn find_subnet_group(
        &self,
        id: &str,
    ) -> Result<Ownership<Existing<()>>, StepError> {
        let name = format!("{id}-subnets");
        let answer = self
            .client
            .describe_db_subnet_groups()
            .db_subnet_group_name(&name)
            .send()
            .await
            .cloud("DescribeDBSubnetGroups", Some(name.clone()));
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
            .cloud("ListTagsForResource", Some(name.clone()))?;
        Ok(self.ownership(Some(Existing {
            id: name,
            status,
            tags: Marks::rds(tags.tag_list()),
            resource: (),
        })))
    }

    /// The DB subnet group `ID-subnets` on `subnets` (adopted as `found` found it, or
    /// made); its name.
    pub(super) async fn subnet_group(
        &self,
        id: &str,
        subnets: &[String],
        found: Ownership<Existing<()>>,
    ) -> Result<String, StepError> {
        let name = format!("{id}-subnets");
        let name = name.as_str();
        let find = || async move { Ok(found) };
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

    /// The DB instance, restored from a DB snapshot (by its ARN when another account
    /// shared it).
    async fn instance(&self, restore: &Restore<'_>) -> Result<Restored, StepError> {
        let (id, params) = (restore.id, restore.params);
        let find = || async move { Ok(self.ownership(restore.found.clone())) };
        let create = || async move {
            self.client
                .restore_db_instance_from_db_snapshot()
                .db_instance_identifier(id)
                .db_snapshot_identifier(restore.snapshot.restore_name())
                .db_instance_class(&params.instance_class)
                .db_subnet_group_name(restore.subnet_group)
                .set_vpc_security_group_ids(Some(params.security_group_ids.clone()))
                .multi_az(params.multi_az)
                .publicly_accessible(false)
                .set_port(params.port)
                .set_db_parameter_group_name(params.parameter_group().map(str::to_string))
                .set_option_group_name(params.option_group().map(str::to_string))
                .deletion_protection(params.deletion_protection)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("RestoreDBInstanceFromDBSnapshot", Some(id.to_string()))?;
            Ok(id.to_string())
        };
        restored(ensure(self.context, INSTANCE, find, create).await?)
    }

    /// The Aurora cluster, restored from a DB cluster snapshot.
    async fn cluster(&self, restore: &Restore<'_>) -> Result<Restored, StepError> {
        let (id, params) = (restore.id, restore.params);
        let find = || async move { Ok(self.ownership(restore.found.clone())) };
        let create = || async move {
            self.client
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(id)
                .snapshot_identifier(restore.snapshot.restore_name())
                .engine(&restore.snapshot.engine)
                .db_subnet_group_name(restore.subnet_group)
                .set_vpc_security_group_ids(Some(params.security_group_ids.clone()))
                .set_port(params.port)
                .set_db_cluster_parameter_group_name(params.parameter_group().map(str::to_string))
                .set_option_group_name(params.option_group().map(str::to_string))
                .deletion_protection(params.deletion_protection)
                .set_tags(Some(self.tags.clone()))
                .send()
                .await
                .cloud("RestoreDBClusterFromSnapshot", Some(id.to_string()))?;
            Ok(id.to_string())
        };
        restored(ensure(self.context, CLUSTER, find, create).await?)
    }

    /// The cluster's writer instance `ID-writer`.
    async fn writer(&self, restore: &Restore<'_>) -> Result<Restored, StepError> {
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
        restored(ensure(self.context, INSTANCE, find, create).await?)
    }
}

/// What [`ensure`] did, as a [`Restored`]: created now, or adopted.
fn restored<T>(ensured: Ensured<T>) -> Result<Restored, StepError> {
    let created = ensured.adopted.is_none().then(Instant::now);
    Ok(Restored {
        instance: ensured.id,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_state_ends_the_wait_and_capacity_suggests_another_class() {
        for status in [
            "restore-error",
            "incompatible-option-group",
            "incompatible-credentials",
            "insufficient-capacity",
            "inaccessible-encryption-credentials-recoverable",
        ] {
            assert!(FAILED.contains(&status), "{status}");
        }
        let error = failed("db", "insufficient-capacity".into());
        assert_eq!(
            error.to_string(),
            "`db` is `insufficient-capacity`: RDS stopped the database in a failure state; waiting longer would not help"
        );
        assert!(
            error.hint().unwrap().contains("another `instance_class`"),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn only_a_fresh_restore_may_be_invisible() {
        let fresh = Restored {
            instance: "db".into(),
            created: Some(Instant::now()),
        };
        assert!(fresh.maybe_invisible());
        let adopted = Restored {
            instance: "db".into(),
            created: None,
        };
        assert!(!adopted.maybe_invisible());
    }
}
