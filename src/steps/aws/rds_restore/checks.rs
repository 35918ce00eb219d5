//! What RDS would refuse, found in the plan instead of hours into the run (review D2, D6):
//! whether it still restores the snapshot's engine version (`DescribeDBEngineVersions`
//! lists only the versions it offers), whether it offers the instance class for that
//! version, as Multi-AZ when asked (`DescribeOrderableDBInstanceOptions`), and whether
//! the parameter and option groups named exist in the target region. Each finding is a
//! plan problem naming what to do; read-only calls only.

use aws_sdk_rds::Client;

use crate::cloud::{CloudError, CloudResultExt};
use crate::steps::StepProblem;

use super::database::Database;
use super::snapshot::Snapshot;

/// How many offered classes a problem lists.
const LISTED_CLASSES: usize = 12;

/// What the restore asks RDS for, as far as the plan knows it.
pub(super) struct Wanted<'a> {
    /// The region restored into.
    pub region: &'a str,
    /// What the production database is.
    pub database: Database,
    /// The instance class (of the writer, for Aurora), when known at plan time.
    pub class: Option<&'a str>,
    /// Multi-AZ (instances only).
    pub multi_az: bool,
    /// The DB (or DB cluster) parameter group, when one is named.
    pub parameter_group: Option<&'a str>,
    /// The option group, when one is named.
    pub option_group: Option<&'a str>,
}

/// The problems RDS would raise restoring `snapshot` as `wanted` says. The engine, the
/// class and the groups are asked about at once.
pub(super) async fn problems(
    client: &Client,
    snapshot: Option<&Snapshot>,
    wanted: &Wanted<'_>,
) -> Result<Vec<StepProblem>, CloudError> {
    let offering = async {
        match snapshot.and_then(|snapshot| Some((snapshot, snapshot.engine_version.as_deref()?))) {
            Some((snapshot, version)) => offering_problem(client, snapshot, version, wanted).await,
            None => Ok(None),
        }
    };
    let parameter_group = async {
        let Some(group) = wanted.parameter_group else {
            return Ok(None);
        };
        if parameter_group_exists(client, wanted.database, group).await? {
            return Ok(None);
        }
        let what = match wanted.database {
            Database::Instance => "DB parameter group",
            Database::Cluster => "DB cluster parameter group",
        };
        Ok(Some(StepProblem::from(format!(
            "{what} `{group}` does not exist in `{}`; create it there with production's settings, or leave `parameter_group` empty for the engine's default",
            wanted.region
        ))))
    };
    let option_group = async {
        let Some(group) = wanted.option_group else {
            return Ok(None);
        };
        if option_group_exists(client, group).await? {
            return Ok(None);
        }
        Ok(Some(StepProblem::from(format!(
            "option group `{group}` does not exist in `{}`; create it there with production's options, or leave `option_group` empty for the default",
            wanted.region
        ))))
    };
    let (offering, parameter_group, option_group) =
        tokio::try_join!(offering, parameter_group, option_group)?;
    Ok([offering, parameter_group, option_group]
        .into_iter()
        .flatten()
        .collect())
}

/// Whether RDS restores `snapshot`'s engine `version`, and offers the class for it (both
/// asked at once).
async fn offering_problem(
    client: &Client,
    snapshot: &Snapshot,
    version: &str,
    wanted: &Wanted<'_>,
) -> Result<Option<StepProblem>, CloudError> {
    let engine = snapshot.engine.as_str();
    let region = wanted.region;
    let versions = async {
        client
            .describe_db_engine_versions()
            .engine(engine)
            .engine_version(version)
            .send()
            .await
            .cloud("DescribeDBEngineVersions", Some(snapshot.id.clone()))
    };
    let options = async {
        match wanted.class {
            Some(class) => orderable(client, engine, version, Some(class)).await,
            None => Ok(Vec::new()),
        }
    };
    let (versions, options) = tokio::try_join!(versions, options)?;
    if versions.db_engine_versions().is_empty() {
        return Ok(Some(StepProblem::from(format!(
            "snapshot `{}` is {engine} {version}, which RDS no longer restores in `{region}`; upgrade the snapshot's engine version (`aws rds modify-db-snapshot --engine-version`) or copy a snapshot taken after an upgrade, then run again",
            snapshot.id
        ))));
    }
    let Some(class) = wanted.class else {
        return Ok(None);
    };
    let multi_az = wanted.multi_az && wanted.database == Database::Instance;
    if !options.is_empty() && (!multi_az || options.iter().any(|(_, capable)| *capable)) {
        return Ok(None);
    }
    let mut offered: Vec<String> = orderable(client, engine, version, None)
        .await?
        .into_iter()
        .filter(|(_, capable)| *capable || !multi_az)
        .map(|(class, _)| class)
        .collect();
    offered.sort();
    offered.dedup();
    let listed = if offered.is_empty() {
        "none".to_string()
    } else if offered.len() > LISTED_CLASSES {
        format!("{}, …", offered[..LISTED_CLASSES].join(", "))
    } else {
        offered.join(", ")
    };
    let problem = if options.is_empty() {
        format!(
            "`{class}` is not offered for {engine} {version} in `{region}`; choose another `instance_class` (offered: {listed})"
        )
    } else {
        format!(
            "`{class}` is not offered as Multi-AZ for {engine} {version} in `{region}`; choose another `instance_class` (Multi-AZ: {listed}) or set `multi_az: false`"
        )
    };
    Ok(Some(StepProblem::from(problem)))
}

/// The (class, Multi-AZ capable) options RDS offers for `engine` `version` (and `class`).
async fn orderable(
    client: &Client,
    engine: &str,
    version: &str,
    class: Option<&str>,
) -> Result<Vec<(String, bool)>, CloudError> {
    let mut found = Vec::new();
    let mut pages = client
        .describe_orderable_db_instance_options()
        .engine(engine)
        .engine_version(version)
        .set_db_instance_class(class.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.cloud("DescribeOrderableDBInstanceOptions", None)?;
        found.extend(
            page.orderable_db_instance_options()
                .iter()
                .filter_map(|option| {
                    Some((
                        option.db_instance_class()?.to_string(),
                        option.multi_az_capable().unwrap_or(false),
                    ))
                }),
        );
    }
    Ok(found)
}

async fn parameter_group_exists(
    client: &Client,
    database: Database,
    group: &str,
) -> Result<bool, CloudError> {
    let found = match database {
        Database::Instance => client
            .describe_db_parameter_groups()
            .db_parameter_group_name(group)
            .send()
            .await
            .cloud("DescribeDBParameterGroups", Some(group.to_string()))
            .map(|answer| !answer.db_parameter_groups().is_empty()),
        Database::Cluster => client
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(group)
            .send()
            .await
            .cloud("DescribeDBClusterParameterGroups", Some(group.to_string()))
            .map(|answer| !answer.db_cluster_parameter_groups().is_empty()),
    };
    match found {
        Err(error) if error.is("DBParameterGroupNotFound") => Ok(false),
        found => found,
    }
}

async fn option_group_exists(client: &Client, group: &str) -> Result<bool, CloudError> {
    let found = client
        .describe_option_groups()
        .option_group_name(group)
        .send()
        .await
        .cloud("DescribeOptionGroups", Some(group.to_string()));
    match found {
        Err(error) if error.is("OptionGroupNotFoundFault") => Ok(false),
        found => Ok(!found?.option_groups_list().is_empty()),
    }
}

/// The instance class of DB instance `id`, if it exists.
pub(super) async fn instance_class(
    client: &Client,
    id: &str,
) -> Result<Option<String>, CloudError> {
    let instance = super::database::find_instance(client, id).await?;
    Ok(instance.and_then(|instance| instance.db_instance_class().map(str::to_string)))
}
