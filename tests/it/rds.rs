//! RDS as it really is (review D7, D8, B7, C5, D6, D2): the testbed refuses what RDS
//! refuses (versions and classes it does not offer, unknown groups), plays RDS's status
//! sequences (`backing-up`, `resetting-master-credentials`, failure states) and shows
//! snapshots moto cannot (AWS Backup, shared by another account); and `aws.rds.restore`
//! checks all of it in the plan, stops at once on a failure state, waits for the password
//! change, rides out eventual consistency, and finds every kind of snapshot.

use std::time::{Duration, Instant};

use aws_sdk_rds::error::ProvideErrorMetadata;

use crate::support::moto::Moto;
use crate::support::playbooks::{
    infrastructure_playbook, infrastructure_playbook_with, password_playbook,
};
use crate::support::proxy::{Fault, Proxy};
use crate::support::seed::{
    CURRENT_POSTGRES, DR_REGION, PROD_REGION, block_on, rds_client, sdk_config, seed_production,
};
use crate::support::strict::rds::{CannedKind, CannedSnapshot, Orderable};
use crate::support::world::{TARGET, World, step};

/// Restore `snapshot` into `id` as `class` through `rds`: the error code, if refused.
async fn restore(
    rds: &aws_sdk_rds::Client,
    id: &str,
    snapshot: &str,
    class: &str,
) -> Result<(), Option<String>> {
    rds.restore_db_instance_from_db_snapshot()
        .db_instance_identifier(id)
        .db_snapshot_identifier(snapshot)
        .db_instance_class(class)
        .send()
        .await
        .map(|_| ())
        .map_err(|error| error.code().map(str::to_string))
}

/// `legacy-db` at moto's default Postgres (9.3.3) in production, snapshotted, and the
/// snapshot copied into the target region as `legacy-snap-copy`.
async fn seed_legacy(endpoint: &str) {
    let prod = rds_client(endpoint, PROD_REGION).await;
    prod.create_db_instance()
        .db_instance_identifier("legacy-db")
        .engine("postgres")
        .db_instance_class("db.t3.medium")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password("legacy-password")
        .send()
        .await
        .unwrap();
    let snapshot = prod
        .create_db_snapshot()
        .db_instance_identifier("legacy-db")
        .db_snapshot_identifier("legacy-snap")
        .send()
        .await
        .unwrap();
    let arn = snapshot.db_snapshot().unwrap().db_snapshot_arn().unwrap();
    rds_client(endpoint, DR_REGION)
        .await
        .copy_db_snapshot()
        .source_db_snapshot_identifier(arn)
        .target_db_snapshot_identifier("legacy-snap-copy")
        .send()
        .await
        .unwrap();
}

#[test]
fn the_testbed_refuses_the_versions_classes_and_groups_rds_refuses() {
    let moto = Moto::start();
    seed_production(&moto.endpoint);
    block_on(seed_legacy(&moto.endpoint));
    let proxy = Proxy::start(&moto.endpoint);
    block_on(async {
        let rds = rds_client(&proxy.endpoint, DR_REGION).await;
        let options = rds
            .describe_orderable_db_instance_options()
            .engine("postgres")
            .engine_version(CURRENT_POSTGRES)
            .send()
            .await
            .unwrap();
        let large = options
            .orderable_db_instance_options()
            .iter()
            .find(|option| option.db_instance_class() == Some("db.r6g.large"))
            .expect("db.r6g.large is orderable");
        assert_eq!(large.multi_az_capable(), Some(true));
        let versions = |version: &'static str| {
            let rds = rds.clone();
            async move {
                rds.describe_db_engine_versions()
                    .engine("postgres")
                    .engine_version(version)
                    .send()
                    .await
                    .unwrap()
                    .db_engine_versions()
                    .len()
            }
        };
        assert_eq!(versions(CURRENT_POSTGRES).await, 1);
        assert_eq!(versions("9.3.3").await, 0, "moto's default is not offered");

        // A class RDS does not offer for the version, and a version it no longer restores.
        let refused = restore(&rds, "a", "prod-db-snap-2-copy", "db.m1.small").await;
        assert_eq!(refused, Err(Some("InvalidParameterCombination".into())));
        let refused = restore(&rds, "b", "legacy-snap-copy", "db.t3.medium").await;
        assert_eq!(refused, Err(Some("InvalidParameterCombination".into())));

        let group = rds
            .describe_db_parameter_groups()
            .db_parameter_group_name("no-such-group")
            .send()
            .await
            .unwrap_err();
        assert_eq!(group.code(), Some("DBParameterGroupNotFound"));
        let default = rds
            .describe_db_parameter_groups()
            .db_parameter_group_name("default.postgres16")
            .send()
            .await
            .unwrap();
        assert_eq!(default.db_parameter_groups().len(), 1);
        let options = rds
            .describe_option_groups()
            .option_group_name("no-such-options")
            .send()
            .await
            .unwrap_err();
        assert_eq!(options.code(), Some("OptionGroupNotFoundFault"));

        assert_eq!(
            restore(&rds, "c", "prod-db-snap-2-copy", "db.t3.medium").await,
            Ok(())
        );
        let asked = proxy.requests("RestoreDBInstanceFromDBSnapshot");
        assert_eq!(asked.len(), 3);
        assert!(asked[2].contains(&("DBInstanceClass".into(), "db.t3.medium".into())));

        // Multi-AZ only where the table says the class is capable of it.
        let mut table = Orderable::table();
        for row in &mut table {
            row.multi_az = row.class != "db.t3.medium";
        }
        proxy.set_rds_orderable(table);
        let refused = rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier("d")
            .db_snapshot_identifier("prod-db-snap-2-copy")
            .db_instance_class("db.t3.medium")
            .multi_az(true)
            .send()
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("InvalidParameterCombination"));
    });
}

/// The statuses `id` goes through until `done` says stop (each once, in order).
async fn statuses(
    rds: &aws_sdk_rds::Client,
    id: &str,
    done: impl Fn(&str, bool) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let answer = rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        let answer = match answer {
            Err(error) if error.code() == Some("DBInstanceNotFound") => {
                if seen.last().map(String::as_str) != Some("not-found") {
                    seen.push("not-found".into());
                }
                assert!(Instant::now() < deadline, "{id} never visible: {seen:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            answer => answer.unwrap(),
        };
        let instance = &answer.db_instances()[0];
        let status = instance.db_instance_status().unwrap().to_string();
        let pending = instance
            .pending_modified_values()
            .is_some_and(|pending| pending.master_user_password().is_some());
        let shown = if pending {
            format!("{status}+password")
        } else {
            status.clone()
        };
        if seen.last() != Some(&shown) {
            seen.push(shown);
        }
        if done(&status, pending) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{id} stuck at {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_testbed_plays_rds_status_sequences() {
    let moto = Moto::start();
    seed_production(&moto.endpoint);
    let proxy = Proxy::start(&moto.endpoint);
    proxy.hold_rds_status(Duration::from_millis(600));
    proxy.hold_rds_backing_up(Duration::from_millis(600));
    proxy.hold_rds_password_reset(Duration::from_millis(600));
    block_on(async {
        let rds = rds_client(&proxy.endpoint, DR_REGION).await;
        restore(&rds, "restored", "prod-db-snap-2-copy", "db.t3.medium")
            .await
            .unwrap();
        let seen = statuses(&rds, "restored", |status, _| status == "available").await;
        assert_eq!(seen, ["creating", "backing-up", "available"]);

        rds.modify_db_instance()
            .db_instance_identifier("restored")
            .master_user_password("new-password")
            .apply_immediately(true)
            .send()
            .await
            .unwrap();
        let seen = statuses(&rds, "restored", |status, pending| {
            status == "available" && !pending
        })
        .await;
        assert_eq!(seen, ["resetting-master-credentials+password", "available"]);

        // A failure state on demand, which the instance never leaves.
        proxy.rds_instances_fail_with(Some("restore-error"));
        restore(&rds, "broken", "prod-db-snap-2-copy", "db.t3.medium")
            .await
            .unwrap();
        let seen = statuses(&rds, "broken", |status, _| status == "restore-error").await;
        assert_eq!(seen, ["creating", "backing-up", "restore-error"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            statuses(&rds, "broken", |_, _| true).await,
            ["restore-error"]
        );

        // Not visible right after the restore, then visible.
        proxy.rds_instances_fail_with(None);
        proxy.hide_new_rds_instances(Duration::from_millis(500));
        restore(&rds, "late", "prod-db-snap-2-copy", "db.t3.medium")
            .await
            .unwrap();
        let hidden = rds
            .describe_db_instances()
            .db_instance_identifier("late")
            .send()
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Some("DBInstanceNotFound"));
        let seen = statuses(&rds, "late", |status, _| status == "available").await;
        assert_eq!(
            seen.first().map(String::as_str),
            Some("not-found"),
            "{seen:?}"
        );
        assert_eq!(
            seen.last().map(String::as_str),
            Some("available"),
            "{seen:?}"
        );

        // Capacity refused on the call itself.
        proxy.fail(
            "RestoreDBInstanceFromDBSnapshot",
            1,
            Fault::Refused {
                code: "InsufficientDBInstanceCapacity",
                message: "Insufficient capacity",
            },
        );
        let refused = restore(&rds, "full", "prod-db-snap-2-copy", "db.t3.medium").await;
        assert_eq!(refused, Err(Some("InsufficientDBInstanceCapacity".into())));
    });
}

/// An AWS Backup snapshot of `prod-db` in the target region, taken now (newer than the
/// seeded copies).
fn aws_backup_snapshot() -> CannedSnapshot {
    CannedSnapshot {
        kind: CannedKind::AwsBackup,
        region: DR_REGION.into(),
        instance: "prod-db".into(),
        name: "awsbackup:job-1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718".into(),
        taken: jiff::Timestamp::now(),
        engine_version: CURRENT_POSTGRES.into(),
        stands_for: "prod-db-snap-2-copy".into(),
        kms_key_id: None,
    }
}

/// A manual snapshot of `prod-db` shared by the backup account, taken now.
fn shared_snapshot() -> CannedSnapshot {
    CannedSnapshot {
        kind: CannedKind::Shared {
            owner: "210987654321".into(),
        },
        name: "prod-db-vault-copy".into(),
        ..aws_backup_snapshot()
    }
}

#[test]
fn the_testbed_shows_aws_backup_and_shared_snapshots() {
    let moto = Moto::start();
    seed_production(&moto.endpoint);
    let proxy = Proxy::start(&moto.endpoint);
    proxy.add_rds_snapshot(aws_backup_snapshot());
    proxy.add_rds_snapshot(shared_snapshot());
    block_on(async {
        let rds = rds_client(&proxy.endpoint, DR_REGION).await;
        let listed = |kind: Option<&'static str>, shared: bool, instance: &'static str| {
            let rds = rds.clone();
            async move {
                let filter = aws_sdk_rds::types::Filter::builder()
                    .name("db-instance-id")
                    .values(instance)
                    .build();
                let answer = rds
                    .describe_db_snapshots()
                    .set_snapshot_type(kind.map(str::to_string))
                    .include_shared(shared)
                    .filters(filter)
                    .send()
                    .await
                    .unwrap();
                let mut found: Vec<(String, String)> = answer
                    .db_snapshots()
                    .iter()
                    .map(|snapshot| {
                        (
                            snapshot.db_snapshot_identifier().unwrap().to_string(),
                            snapshot.snapshot_type().unwrap().to_string(),
                        )
                    })
                    .collect();
                found.sort();
                found
            }
        };
        assert_eq!(
            listed(Some("awsbackup"), false, "prod-db").await,
            [(aws_backup_snapshot().name, "awsbackup".to_string())]
        );
        assert_eq!(listed(Some("awsbackup"), false, "other-db").await, []);
        let shared_arn = shared_snapshot().arn();
        assert_eq!(
            shared_arn,
            "arn:aws:rds:ap-southeast-1:210987654321:snapshot:prod-db-vault-copy"
        );
        assert_eq!(
            listed(None, true, "prod-db").await,
            [
                (shared_arn.clone(), "shared".to_string()),
                ("prod-db-snap-1-copy".to_string(), "manual".to_string()),
                ("prod-db-snap-2-copy".to_string(), "manual".to_string()),
            ]
        );
        assert_eq!(listed(None, false, "prod-db").await.len(), 2);

        // A shared snapshot is restored by its ARN only, as on AWS.
        assert_eq!(
            restore(&rds, "from-shared", &shared_arn, "db.t3.medium").await,
            Ok(())
        );
    });
}

/// A copy of the infrastructure playbook whose database step fails fast: a short timeout
/// and no retries, so a wait that never ends shows as a timeout, not a hang.
fn fail_fast_playbook(dir: &std::path::Path) -> std::path::PathBuf {
    infrastructure_playbook_with(
        dir,
        &[(
            "timeout: 3h\n    retry: { attempts: 3, backoff: 30s }",
            "timeout: 20s\n    retry: { attempts: 1, backoff: 1s }",
        )],
    )
}

#[test]
fn a_snapshot_of_an_engine_version_rds_no_longer_restores_stops_the_plan() {
    let world = World::new();
    block_on(seed_legacy(&world.moto.endpoint));
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "source_db_instance: prod-db",
            "source_db_instance: legacy-db",
        )],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .output_contains("`legacy-snap-copy` is postgres 9.3.3")
        .output_contains("upgrade the snapshot's engine version");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

#[test]
fn an_instance_class_rds_does_not_offer_stops_the_plan() {
    let world = World::new();
    world.proxy().reset_counts();
    world
        .rebuild_test(&infrastructure_playbook())
        .args(["--input", "db_instance_class=db.m1.small"])
        .run()
        .code(4)
        .output_contains("`db.m1.small` is not offered for postgres 16.8 in `ap-southeast-1`")
        .output_contains("db.r6g.large");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    // Offered, but not as Multi-AZ (the default playbook asks for Multi-AZ).
    let mut table = Orderable::table();
    for row in &mut table {
        if row.class == "db.r6g.large" {
            row.multi_az = false;
        }
    }
    world.proxy().set_rds_orderable(table);
    world
        .rebuild()
        .code(4)
        .output_contains("`db.r6g.large` is not offered as Multi-AZ for postgres 16.8");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

#[test]
fn parameter_and_option_groups_must_exist_in_the_target_and_the_parameter_group_is_applied() {
    let world = World::new();
    let playbook = infrastructure_playbook();
    let with_groups = |test: crate::support::test::Test| {
        test.args([
            "--input",
            "db_parameter_group=shop-postgres16",
            "--input",
            "db_option_group=shop-options",
        ])
    };
    world.proxy().reset_counts();
    with_groups(world.rebuild_test(&playbook))
        .run()
        .code(4)
        .output_contains("DB parameter group `shop-postgres16` does not exist in `ap-southeast-1`")
        .output_contains("option group `shop-options` does not exist in `ap-southeast-1`");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    block_on(async {
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        rds.create_db_parameter_group()
            .db_parameter_group_name("shop-postgres16")
            .db_parameter_group_family("postgres16")
            .description("production's parameters")
            .send()
            .await
            .unwrap();
    });
    // Moto creates postgres option groups only up to major version 13, so the restore
    // that succeeds names only the parameter group.
    world
        .rebuild_test(&playbook)
        .args(["--input", "db_parameter_group=shop-postgres16"])
        .run()
        .success()
        .output_contains("shop-postgres16");
    let restores = world.proxy().requests("RestoreDBInstanceFromDBSnapshot");
    assert_eq!(restores.len(), 1);
    assert!(
        restores[0].contains(&("DBParameterGroupName".into(), "shop-postgres16".into())),
        "{restores:?}"
    );
}

#[test]
fn a_failure_state_ends_the_wait_at_once_with_the_state_and_a_hint() {
    let world = World::new();
    world.proxy().hold_rds_status(Duration::from_millis(300));
    world.proxy().rds_instances_fail_with(Some("restore-error"));
    let dir = tempfile::tempdir().unwrap();
    let playbook = fail_fast_playbook(dir.path());
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains("is `restore-error`")
        .stderr_contains("restore failed");
    let status = world.status();
    assert_eq!(step(&status, "database")["state"], "failed", "{status}");
    assert_eq!(step(&status, "database")["attempts"], 1, "{status}");
}

#[test]
fn insufficient_capacity_suggests_another_instance_class() {
    // As a state the restored instance ends in…
    let world = World::new();
    world
        .proxy()
        .rds_instances_fail_with(Some("insufficient-capacity"));
    let dir = tempfile::tempdir().unwrap();
    let playbook = fail_fast_playbook(dir.path());
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains("is `insufficient-capacity`")
        .stderr_contains("another `instance_class`");

    // …and as the restore call's answer.
    let world = World::new();
    world.proxy().fail(
        "RestoreDBInstanceFromDBSnapshot",
        1,
        Fault::Refused {
            code: "InsufficientDBInstanceCapacity",
            message: "Cannot create a database instance because there is insufficient capacity",
        },
    );
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains("InsufficientDBInstanceCapacity")
        .stderr_contains("another `instance_class`");
}

#[test]
fn the_endpoint_is_given_only_once_the_new_password_is_in_place() {
    let world = World::new();
    let reset = Duration::from_secs(2);
    world.proxy().hold_rds_password_reset(reset);
    world
        .rebuild_test(&password_playbook())
        .env("REBUILD_DB_MASTER_PASSWORD", "a-new-password")
        .run()
        .success();
    let status = world.status();
    let ended: jiff::Timestamp = step(&status, "database")["ended"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let modified = world
        .proxy()
        .calls()
        .into_iter()
        .find(|call| call.operation == "ModifyDBInstance")
        .expect("the password was changed");
    let modified = jiff::Timestamp::try_from(modified.at).unwrap();
    assert!(
        ended >= modified + jiff::SignedDuration::try_from(reset).unwrap(),
        "the step ended at {ended}, before the reset begun at {modified} was over"
    );
    world.assert_never_journaled("a-new-password");
}

#[test]
fn a_restored_instance_not_yet_visible_is_waited_for() {
    let world = World::new();
    world.proxy().hide_new_rds_instances(Duration::from_secs(2));
    world.rebuild().success();
    let status = world.status();
    assert_eq!(step(&status, "database")["attempts"], 1, "{status}");
    assert_eq!(world.proxy().count("RestoreDBInstanceFromDBSnapshot"), 1);
}

/// Every `DescribeDBSnapshots` the run made was filtered by the source instance (C5).
fn assert_filtered_by_instance(world: &World) {
    let requests = world.proxy().requests("DescribeDBSnapshots");
    assert!(!requests.is_empty());
    for request in &requests {
        let filtered = request
            .iter()
            .any(|(key, value)| key.ends_with(".Name") && value == "db-instance-id")
            && request
                .iter()
                .any(|(key, value)| key.contains(".Values.") && value == "prod-db");
        assert!(filtered, "unfiltered: {request:?}");
    }
}

#[test]
fn the_newest_snapshot_may_be_an_aws_backup_one() {
    let world = World::new();
    world.proxy().add_rds_snapshot(aws_backup_snapshot());
    world
        .rebuild()
        .success()
        .output_contains("awsbackup:job-1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718")
        .output_contains("awsbackup, account 123456789012");
    let status = world.status();
    assert_eq!(
        step(&status, "database")["outputs"]["snapshot_id"],
        "awsbackup:job-1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718"
    );
    assert_filtered_by_instance(&world);
}

#[test]
fn the_newest_snapshot_may_be_shared_by_another_account_and_is_restored_by_arn() {
    let world = World::new();
    let shared = shared_snapshot();
    world.proxy().add_rds_snapshot(shared.clone());
    world
        .rebuild()
        .success()
        .output_contains("shared, account 210987654321");
    let restores = world.proxy().requests("RestoreDBInstanceFromDBSnapshot");
    assert_eq!(restores.len(), 1);
    assert!(
        restores[0]
            .iter()
            .any(|(key, value)| key == "DBSnapshotIdentifier" && *value == shared.arn()),
        "{restores:?}"
    );
    assert_filtered_by_instance(&world);
}

/// A KMS key in the target region, made in moto: its ARN and id (moto's `DisableKey` and
/// `ScheduleKeyDeletion` take only the id).
async fn kms_key(endpoint: &str) -> (String, String) {
    let kms = aws_sdk_kms::Client::new(&sdk_config(endpoint, DR_REGION).await);
    let created = kms
        .create_key()
        .description("rds snapshots in the recovery region")
        .send()
        .await
        .unwrap();
    let key = created.key_metadata().unwrap();
    (key.arn().unwrap().to_string(), key.key_id().to_string())
}

/// An encrypted snapshot restores only with its key usable in the target region (review
/// D2): the plan asks KMS. Enabled: the plan is clean; disabled or scheduled for deletion:
/// exit 4 naming the snapshot, the key and what to do, before anything is made.
#[test]
fn an_encrypted_snapshot_needs_its_key_enabled_in_the_target_region() {
    let world = World::new();
    let (key, id) = block_on(async {
        let (key, id) = kms_key(&world.moto.endpoint).await;
        let rds = rds_client(&world.moto.endpoint, DR_REGION).await;
        rds.copy_db_snapshot()
            .source_db_snapshot_identifier("prod-db-snap-2-copy")
            .target_db_snapshot_identifier("prod-db-snap-3-encrypted")
            .kms_key_id(&key)
            .send()
            .await
            .unwrap();
        (key, id)
    });
    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&infrastructure_playbook())
        .run()
        .success()
        .stdout_contains("snapshot: prod-db-snap-3-encrypted");
    assert!(world.proxy().count("DescribeKey") > 0, "the plan asked KMS");

    let kms = |endpoint: String| async move {
        aws_sdk_kms::Client::new(&sdk_config(&endpoint, DR_REGION).await)
    };
    block_on(async {
        let kms = kms(world.moto.endpoint.clone()).await;
        kms.disable_key().key_id(&id).send().await.unwrap();
    });
    world.proxy().reset_counts();
    world
        .rebuild()
        .code(4)
        .output_contains(&format!(
            "the snapshot `prod-db-snap-3-encrypted` is encrypted with `{key}`, which is Disabled in `ap-southeast-1`"
        ))
        .output_contains("aws kms enable-key");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    block_on(async {
        let kms = kms(world.moto.endpoint.clone()).await;
        kms.schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
    });
    world
        .rebuild()
        .code(4)
        .output_contains("which is PendingDeletion in `ap-southeast-1`")
        .output_contains("cancel-key-deletion");
}

/// A snapshot whose key is not in the target region (deleted, or of another region, as a
/// backup account's snapshot can be) stops the plan with the copy to make; a caller KMS
/// refuses gets the permissions to ask for.
#[test]
fn an_encrypted_snapshot_whose_key_is_missing_or_hidden_stops_the_plan() {
    let world = World::new();
    let missing =
        format!("arn:aws:kms:{DR_REGION}:123456789012:key/0b7e1c2d-0000-4000-8000-000000000000");
    world.proxy().add_rds_snapshot(CannedSnapshot {
        kms_key_id: Some(missing.clone()),
        ..aws_backup_snapshot()
    });
    world.proxy().reset_counts();
    world
        .rebuild()
        .code(4)
        .output_contains(&format!(
            "encrypted with `{missing}`, which is not found in `ap-southeast-1`: copy the snapshot with a key of `ap-southeast-1`"
        ));
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    world.proxy().fail(
        "DescribeKey",
        10,
        Fault::Refused {
            code: "AccessDeniedException",
            message: "User is not authorized to perform: kms:DescribeKey",
        },
    );
    world
        .rebuild()
        .code(4)
        .output_contains("which the caller may not describe in `ap-southeast-1`")
        .output_contains("`kms:DescribeKey`");
}
