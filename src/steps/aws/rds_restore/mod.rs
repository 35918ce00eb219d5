//! `aws.rds.restore`: restore the newest database snapshot *available in the target region*
//! (automated, manual and cross-region copies, AWS Backup's, and those another account
//! shared; instance snapshots or Aurora cluster snapshots) into a new database, in this
//! order: choose the snapshot, refusing before any change when none exists or it is older
//! than the RPO limit (unless `--accept-rpo`), and pin it so a resume never drifts to a
//! newer one; the DB subnet group on the given private subnets; the restore (an instance,
//! or an Aurora cluster and its writer); the wait for `available`, ended at once by a
//! failure state; and a master password, when given (never journaled or printed), waited
//! for until RDS has applied it. The plan checks what RDS would refuse (`checks`) and that
//! the key of an encrypted snapshot is usable in the target region (`key`).

mod checks;
mod database;
mod key;
mod snapshot;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::Client;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::journal::Values;
use crate::playbook::{KindSpec, duration};
use crate::runtime::Owner;
use crate::secret::Secret;
use crate::steps::interface::{self, Applying, Phase, Planning};
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan, StepProblem};

use super::ownership::Ownership;
use super::tags::rds_tags;
use super::{optional, required};
use crate::steps::interface::read_pins;
use database::{Database, Rds, Restore};
use snapshot::{NO_SNAPSHOT_HINT, Snapshot, no_snapshot_message, render_time, rpo_problem};

static SPEC: KindSpec = KindSpec {
    kind: "aws.rds.restore",
    summary: "restore the newest snapshot available in the target region into a new database",
    parameters: &[
        optional(
            "source_db_instance",
            "production DB instance whose snapshots to restore (instance engines)",
        ),
        optional(
            "source_db_cluster",
            "production Aurora cluster whose cluster snapshots to restore",
        ),
        optional(
            "db_identifier",
            "name of the restored database (default `<step>-<run-id>`)",
        ),
        required("instance_class", "DB instance class, e.g. `db.r6g.large`"),
        required(
            "subnet_ids",
            "private subnets for the DB subnet group (from the network step)",
        ),
        required(
            "security_group_ids",
            "VPC security groups (from the network step)",
        ),
        optional("multi_az", "Multi-AZ deployment (default true)"),
        optional(
            "parameter_group",
            "DB (or cluster) parameter group in the target region (default: the engine's)",
        ),
        optional(
            "option_group",
            "option group in the target region (default: the engine's default)",
        ),
        optional(
            "port",
            "port the database listens on (default: the snapshot's)",
        ),
        optional(
            "master_password",
            "new master password; reference a secret input, never a literal",
        ),
        optional(
            "manage_master_password",
            "have RDS set a new master password and keep it in the target region's Secrets Manager (output `master_user_secret_arn`, for the deploy's Secret); not with `master_password`",
        ),
        optional(
            "rpo_limit",
            "override the playbook's `rpo_limit` for this database",
        ),
        optional(
            "deletion_protection",
            "protect the restored database from deletion (default false)",
        ),
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
        "master_user_secret_arn",
    ],
};

const MASTER_PASSWORD_TWICE: &str = "give either `master_password` or `manage_master_password`, not both: RDS refuses a password it is asked to manage";

/// The `aws.rds.restore` step kind.
pub(crate) struct AwsRdsRestore;

/// The parameters; the class, subnets and groups may come from earlier steps (see
/// [`Phase`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Params<P: Phase = Applying> {
    #[serde(default)]
    source_db_instance: Option<String>,
    #[serde(default)]
    source_db_cluster: Option<String>,
    #[serde(default)]
    db_identifier: Option<String>,
    instance_class: P::Later<String>,
    subnet_ids: P::Later<Vec<String>>,
    security_group_ids: P::Later<Vec<String>>,
    #[serde(default = "interface::yes")]
    multi_az: bool,
    #[serde(default)]
    parameter_group: Option<String>,
    #[serde(default)]
    option_group: Option<String>,
    #[serde(default)]
    port: Option<i32>,
    #[serde(default)]
    master_password: Option<Secret>,
    #[serde(default)]
    manage_master_password: bool,
    #[serde(default, deserialize_with = "duration::optional")]
    rpo_limit: Option<Duration>,
    #[serde(default)]
    deletion_protection: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    endpoint: String,
    port: i32,
    db_identifier: String,
    engine: String,
    snapshot_id: String,
    snapshot_time: String,
    rpo_seconds: u64,
    subnet_group: String,
    /// The Secrets Manager secret (target region) holding the master credentials, when RDS
    /// manages them.
    master_user_secret_arn: Option<String>,
}

/// What the journal pins, so a resume restores the same snapshot.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pins {
    snapshot: Option<Snapshot>,
}

impl Pins {
    const SNAPSHOT: &str = "snapshot";
}

impl<P: Phase> Params<P> {
    fn source(&self) -> Result<(Database, &str), StepError> {
        match (&self.source_db_instance, &self.source_db_cluster) {
            (Some(instance), None) => Ok((Database::Instance, instance)),
            (None, Some(cluster)) => Ok((Database::Cluster, cluster)),
            _ => Err(StepError::Params(
                "give exactly one of `source_db_instance` and `source_db_cluster`".to_string(),
            )),
        }
    }

    /// The parameter group named, if any (empty: none).
    fn parameter_group(&self) -> Option<&str> {
        self.parameter_group
            .as_deref()
            .filter(|name| !name.is_empty())
    }

    /// The option group named, if any (empty: none).
    fn option_group(&self) -> Option<&str> {
        self.option_group.as_deref().filter(|name| !name.is_empty())
    }

    /// The restored database's name: given, or `<step>-<stack>` (see
    /// [`Owner::resource_name`]); lowercased.
    fn database_id(&self, step: &str, owner: &Owner) -> String {
        let id = self.db_identifier.clone();
        id.unwrap_or_else(|| owner.resource_name(step))
            .to_lowercase()
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
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params<Planning> = crate::steps::params(value)?;
        let (database, name) = params.source()?;
        let limit = params.rpo_limit.or(context.rpo_limit);
        let client = context.cloud.rds(&context.target_region);
        let now = Timestamp::now();
        let mut problems = Vec::new();
        let pins: Pins = read_pins(&context.pins).unwrap_or_default();
        let pinned = pins.snapshot.is_some();
        // The database and the snapshots are looked up at once.
        let ((action, summary), newest) = tokio::try_join!(
            plan_database(context, &client, database, &params, &mut problems),
            async {
                Ok(match pins.snapshot {
                    Some(_) => None,
                    None => Some(snapshot::newest(&client, database, name).await?),
                })
            },
        )?;
        let adopting = action == Action::Adopt;
        let snapshot = match (pins.snapshot, newest) {
            (Some(snapshot), _) => Some(snapshot),
            (None, found) => {
                let found = found.flatten();
                // An adopted database keeps its data: no snapshot is restored, so neither
                // a missing one nor its age stops the run.
                if !adopting {
                    problems.extend(snapshot_problem(
                        context,
                        found.as_ref(),
                        database,
                        name,
                        now,
                        limit,
                    ));
                }
                found
            }
        };
        if action == Action::Create {
            let wanted = checks::Wanted {
                region: &context.target_region,
                database,
                class: params.instance_class.as_deref(),
                multi_az: params.multi_az,
                parameter_group: params.parameter_group(),
                option_group: params.option_group(),
            };
            // What RDS would refuse and whether the snapshot's key is usable, at once.
            let kms = context.cloud.kms(&context.target_region);
            let key = async {
                match &snapshot {
                    Some(snapshot) => key::problem(&kms, snapshot, &context.target_region).await,
                    None => Ok(None),
                }
            };
            let (refused, key) =
                tokio::try_join!(checks::problems(&client, snapshot.as_ref(), &wanted), key)?;
            problems.extend(refused);
            problems.extend(key);
        }
        let mut plan = StepPlan::new(action, summary)
            .detail("source", format!("{name} ({})", database.label()));
        if adopting && !pinned {
            plan = plan.detail(
                "data",
                "kept: the database is adopted as it is, no snapshot is restored again",
            );
            let id = params.database_id(&context.step_id, &context.owner);
            if let (Database::Instance, Some(wanted)) = (database, &params.instance_class)
                && let Some(class) = checks::instance_class(&client, &id).await?
                && class != *wanted
            {
                plan = plan.detail(
                    "warning",
                    format!(
                        "`{id}` is a {class}, the playbook asks for {wanted}: an adopted database is not changed in place; change it with `aws rds modify-db-instance --region {} --db-instance-identifier {id} --db-instance-class {wanted} --apply-immediately` (a short outage), or restore another copy with `--stack NAME`",
                        context.target_region
                    ),
                );
            }
        } else if let Some(snapshot) = &snapshot {
            plan = plan
                .detail("snapshot", snapshot.id.clone())
                .detail("snapshot type", snapshot.origin());
            if let Some(version) = &snapshot.engine_version {
                plan = plan.detail("engine", format!("{} {version}", snapshot.engine));
            }
            plan = plan
                .detail("snapshot taken", render_time(snapshot.taken))
                .detail("rpo (snapshot age)", duration::render(snapshot.age(now)));
        }
        if let Some(limit) = limit {
            plan = plan.detail("rpo limit", duration::render(limit));
        }
        if let Some(class) = &params.instance_class {
            plan = plan.detail("instance class", class.clone());
        }
        if let Some(group) = params.parameter_group() {
            plan = plan.detail("parameter group", group);
        }
        if let Some(group) = params.option_group() {
            plan = plan.detail("option group", group);
        }
        let given = params
            .master_password
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        if params.manage_master_password {
            plan = plan.detail(
                "master password",
                "new, managed by RDS in the target region's Secrets Manager",
            );
            if given {
                problems.push(StepProblem::from(MASTER_PASSWORD_TWICE));
            }
        }
        plan.problems = problems;
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let (database, name) = params.source()?;
        if params.subnet_ids.is_empty() {
            let problem = "`subnet_ids` must list the private subnets";
            return Err(StepError::Params(problem.into()));
        }
        let client = context.cloud.rds(&context.target_region);
        let id = params.database_id(&context.step_id, &context.owner);
        let rds = Rds {
            client: &client,
            context,
            tags: rds_tags(context, "database"),
        };
        // The database, the snapshots and the subnet group are looked up at once. A
        // database the stack has already (made by an earlier run) keeps its data: its age
        // is not the snapshot's, so the RPO limit does not stop adopting it.
        let (found, candidate, subnet_group) = tokio::try_join!(
            async { Ok(database.describe(&client, &id).await?) },
            candidate(context, &client, database, name),
            rds.find_subnet_group(&id),
        )?;
        let adopting = matches!(
            Ownership::named(found.clone(), &context.owner),
            Ownership::Ours(_)
        );
        let limit = params.rpo_limit.or(context.rpo_limit).filter(|_| !adopting);
        let snapshot = choose_snapshot(context, candidate, database, name, limit)?;
        context.checkpoint("after-pin")?;
        // Nothing is made before the snapshot has passed the RPO check.
        let subnet_group = rds
            .subnet_group(&id, &params.subnet_ids, subnet_group)
            .await?;
        context.checkpoint("after-subnet-group")?;
        let restore = Restore {
            id: &id,
            found,
            subnet_group: &subnet_group,
            snapshot: &snapshot,
            params: &params,
        };
        let restored = database.restore(&rds, &restore).await?;
        context.checkpoint("after-restore")?;
        let (endpoint, port) = database.wait(&rds, &id, &restored).await?;
        context.checkpoint("after-available")?;
        let given = params.master_password.as_ref().filter(|p| !p.is_empty());
        if given.is_some() && params.manage_master_password {
            return Err(StepError::Params(MASTER_PASSWORD_TWICE.into()));
        }
        let master_user_secret_arn = if params.manage_master_password {
            let arn = database
                .manage_password(&rds, &id, &restored.instance)
                .await?;
            context.progress(format!("master password managed by RDS in {arn}"));
            Some(arn)
        } else {
            None
        };
        if let Some(password) = given {
            database
                .set_password(&client, &id, &restored.instance, password)
                .await?;
            database
                .wait_for_password(&rds, &id, &restored.instance)
                .await?;
            context.progress("master password set");
        }
        let age = snapshot.age(snapshot.chosen.unwrap_or_else(Timestamp::now));
        interface::outputs(&Outputs {
            endpoint,
            port,
            db_identifier: id,
            engine: snapshot.engine,
            snapshot_id: snapshot.id,
            snapshot_time: snapshot.taken.to_string(),
            rpo_seconds: age.as_secs(),
            subnet_group,
            master_user_secret_arn,
        })
    }
}

/// What stops the plan about the snapshot found: none, or one older than the RPO limit.
fn snapshot_problem(
    context: &PlanContext,
    found: Option<&Snapshot>,
    database: Database,
    name: &str,
    now: Timestamp,
    limit: Option<Duration>,
) -> Option<StepProblem> {
    let region = &context.target_region;
    match found {
        None => Some(StepProblem::from(format!(
            "{}; {NO_SNAPSHOT_HINT}",
            no_snapshot_message(database, name, region)
        ))),
        Some(_) if context.accept_rpo => None,
        Some(snapshot) => {
            rpo_problem(snapshot, limit, now, region).map(|problem| StepProblem::RpoExceeded {
                message: format!("{problem}; pass `--accept-rpo` to restore it anyway"),
            })
        }
    }
}

/// What the plan says of the database itself: adopt it (the stack's, made by this run or
/// an earlier one), create it, or a conflict with a stranger of that name.
async fn plan_database(
    context: &PlanContext,
    client: &Client,
    database: Database,
    params: &Params<Planning>,
    problems: &mut Vec<StepProblem>,
) -> Result<(Action, String), StepError> {
    let id = params.database_id(&context.step_id, &context.owner);
    let found = database.describe(client, &id).await?;
    Ok(match Ownership::named(found, &context.owner) {
        Ownership::Ours(found) => (
            Action::Adopt,
            format!("adopt database `{id}` ({})", found.status),
        ),
        Ownership::Stranger(_) => {
            problems.push(StepProblem::from(format!(
                "database `{id}` already exists in `{}` and does not belong to {}",
                context.target_region,
                context.owner.describe()
            )));
            (Action::Unknown, format!("`{id}` exists already"))
        }
        Ownership::Absent => (Action::Create, format!("restore into new database `{id}`")),
    })
}

/// The snapshot an earlier attempt pinned, or the newest one found now.
enum Candidate {
    Pinned(Snapshot),
    Newest(Option<Snapshot>),
}

/// Look up the snapshot to restore, unless an earlier attempt pinned it.
async fn candidate(
    context: &StepContext,
    client: &Client,
    database: Database,
    name: &str,
) -> Result<Candidate, StepError> {
    let pins: Pins = read_pins(&context.pins())
        .map_err(|error| StepError::Params(format!("pinned snapshot unreadable: {error}")))?;
    Ok(match pins.snapshot {
        Some(snapshot) => Candidate::Pinned(snapshot),
        None => Candidate::Newest(snapshot::newest(client, database, name).await?),
    })
}

/// The snapshot: pinned by an earlier attempt, or the newest one, checked against the RPO
/// limit before anything is created, then pinned.
fn choose_snapshot(
    context: &StepContext,
    candidate: Candidate,
    database: Database,
    name: &str,
    limit: Option<Duration>,
) -> Result<Snapshot, StepError> {
    let newest = match candidate {
        Candidate::Pinned(snapshot) => return Ok(snapshot),
        Candidate::Newest(newest) => newest,
    };
    let region = &context.target_region;
    let snapshot = newest.ok_or_else(|| StepError::Refused {
        message: no_snapshot_message(database, name, region),
        hint: NO_SNAPSHOT_HINT.to_string(),
    })?;
    if !context.accept_rpo
        && let Some(problem) = rpo_problem(&snapshot, limit, Timestamp::now(), region)
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
    let value =
        serde_json::to_value(&snapshot).map_err(|error| StepError::Params(error.to_string()))?;
    context.pin(Pins::SNAPSHOT, value)?;
    context.progress(format!(
        "restoring snapshot {} taken {} ({} ago)",
        snapshot.id,
        render_time(snapshot.taken),
        duration::render(snapshot.age(Timestamp::now()))
    ));
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> serde_json::Value {
        json!({
            "source_db_instance": "prod-db",
            "source_db_cluster": "prod-aurora",
            "db_identifier": "restored",
            "instance_class": "db.t3.medium",
            "subnet_ids": ["subnet-1", "subnet-2"],
            "security_group_ids": ["sg-1"],
            "multi_az": false,
            "parameter_group": "pg",
            "option_group": "og",
            "port": 5433,
            "master_password": "hunter2",
            "manage_master_password": false,
            "rpo_limit": "12h",
            "deletion_protection": true,
        })
    }

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(&SPEC, &sample());
        assert_eq!(interface::field_names::<Pins>(), [Pins::SNAPSHOT]);
    }

    #[test]
    fn planning_reads_what_earlier_steps_have_not_given_yet() {
        let params: Params<Planning> =
            serde_json::from_value(json!({"source_db_instance": "prod-db"})).unwrap();
        assert_eq!(params.instance_class, None);
        assert_eq!(params.subnet_ids, None);
        let params: Params = serde_json::from_value(sample()).unwrap();
        assert_eq!(params.rpo_limit, Some(Duration::from_secs(12 * 3600)));
    }

    #[test]
    fn exactly_one_source() {
        let mut params: Params<Planning> =
            serde_json::from_value(json!({"instance_class": "db.t3.medium"})).unwrap();
        assert!(params.source().is_err());
        params.source_db_instance = Some("prod-db".into());
        assert_eq!(params.source().unwrap(), (Database::Instance, "prod-db"));
        params.source_db_cluster = Some("prod-aurora".into());
        assert!(params.source().is_err());
    }

    #[test]
    fn empty_groups_are_none() {
        let params: Params<Planning> = serde_json::from_value(json!({
            "source_db_instance": "prod-db", "parameter_group": "", "option_group": "og"
        }))
        .unwrap();
        assert_eq!(params.parameter_group(), None);
        assert_eq!(params.option_group(), Some("og"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let params: Params = serde_json::from_value(sample()).unwrap();
        assert!(!format!("{params:?}").contains("hunter2"));
        assert_eq!(params.master_password.unwrap().expose(), "hunter2");
    }
}
