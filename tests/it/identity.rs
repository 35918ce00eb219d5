//! Who did what (issue 9, item 6): every start, resume and unlock is journaled with the local
//! user and host and the AWS identity the tool acted as, and shown by `status` and `runs`; a
//! playbook's `account_id`, and the account a run started in, refuse a run whose credentials
//! act in another account, in its plan, before any mutating call (counted at the proxy).

use serde_json::Value;

use crate::support::playbooks::{infrastructure_playbook, infrastructure_playbook_with};
use crate::support::seed::{block_on, sdk_config};
use crate::support::world::World;

/// moto's default account and user: what the harness's static credentials act as.
const ACCOUNT: &str = "123456789012";
const ARN: &str = "arn:aws:sts::123456789012:user/moto";

/// Credentials of a session in AWS account `account` (a role there assumed with the
/// harness's credentials): access key, secret, session token.
fn another_account(endpoint: &str, account: &str) -> (String, String, String) {
    block_on(async {
        let config = sdk_config(endpoint, "us-east-1").await;
        let session = aws_sdk_sts::Client::new(&config)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/on-call"))
            .role_session_name("elsewhere")
            .send()
            .await
            .expect("AssumeRole into another account");
        let credentials = session.credentials().expect("credentials");
        (
            credentials.access_key_id().to_string(),
            credentials.secret_access_key().to_string(),
            credentials.session_token().to_string(),
        )
    })
}

fn activity(status: &Value) -> Vec<(String, Value)> {
    status["activity"]
        .as_array()
        .expect("status lists who did what")
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap().to_string(),
                entry["by"].clone(),
            )
        })
        .collect()
}

#[test]
fn starts_resumes_and_unlocks_are_journaled_with_who_and_shown() {
    let world = World::new();
    world
        .rebuild_test(&infrastructure_playbook())
        .env("USER", "alice")
        .failpoint("network/after-subnets")
        .run()
        .killed("network/after-subnets");
    let status = world.status();
    let started = activity(&status);
    assert_eq!(started.len(), 1, "{started:?}");
    let (action, by) = &started[0];
    assert_eq!(action, "started");
    assert_eq!(by["user"], "alice");
    assert_eq!(by["aws_arn"], ARN);
    assert_eq!(by["aws_account"], ACCOUNT);
    assert!(!by["host"].as_str().unwrap().is_empty());

    // The killed run left its lock: a colleague breaks it, then resumes.
    world
        .test()
        .args(["unlock", "--target", "ap-southeast-1"])
        .env("USER", "bob")
        .run()
        .success();
    world
        .test()
        .args(["resume", "--yes"])
        .env("USER", "bob")
        .run()
        .success();
    let status = world.status();
    let all = activity(&status);
    let actions: Vec<&str> = all.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(actions, ["started", "unlocked", "resumed"], "{all:?}");
    assert_eq!(all[1].1["user"], "bob");
    assert_eq!(all[2].1["user"], "bob");
    assert_eq!(all[2].1["aws_account"], ACCOUNT);
    let unlocked = &status["activity"][1]["detail"];
    assert!(
        unlocked.as_str().unwrap().contains("pid"),
        "the broken lock's holder is named: {unlocked}"
    );

    let text = world.run(&["status"]).success().stdout().to_string();
    assert!(text.contains(" started by alice@"), "{text}");
    assert!(
        text.contains(&format!(" as {ARN} (account {ACCOUNT})")),
        "{text}"
    );
    assert!(text.contains(" resumed by bob@"), "{text}");
    assert!(text.contains(" unlocked by bob@"), "{text}");
    let runs = world
        .run(&["runs", "--output", "json"])
        .success()
        .stdout_json();
    assert_eq!(runs[0]["started_by"]["user"], "alice");
    let runs = world.run(&["runs"]).success().stdout().to_string();
    assert!(
        runs.lines().nth(1).unwrap_or_default().contains(" alice@"),
        "{runs}"
    );
}

#[test]
fn a_run_in_another_account_than_the_playbooks_is_refused_before_any_change() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let name = "name: region-rebuild\n";
    let elsewhere = infrastructure_playbook_with(
        dir.path(),
        &[(name, "name: region-rebuild\naccount_id: \"999999999999\"\n")],
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&elsewhere)
        .code(4)
        .stderr_contains(&format!(
            "the credentials act as {ARN} in AWS account {ACCOUNT}, but the playbook's `account_id` ("
        ))
        .stderr_contains(") names account 999999999999")
        .stderr_contains("hint: sign in to the account named above");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    assert!(world.journal_files().is_empty(), "nothing started");

    // Not 12 digits: the playbook is refused where it says so.
    let typo = infrastructure_playbook_with(
        dir.path(),
        &[(name, "name: region-rebuild\naccount_id: 12345\n")],
    );
    world
        .rebuild_with(&typo)
        .code(2)
        .stderr_contains("`account_id` must be 12 digits, found `12345`");

    // The account it names: the plan goes on (killed as soon as the run starts).
    let home = infrastructure_playbook_with(
        dir.path(),
        &[(
            name,
            &format!("name: region-rebuild\naccount_id: \"{ACCOUNT}\"\n"),
        )],
    );
    world
        .rebuild_test(&home)
        .failpoint("run/after-start")
        .run()
        .killed("run/after-start");
}

#[test]
fn a_resume_with_another_accounts_credentials_is_refused() {
    let world = World::new();
    world.rebuild_killed_at("network/after-subnets");
    let (key, secret, token) = another_account(&world.moto.endpoint, "111111111111");
    world.proxy().reset_counts();
    world
        .test()
        .args(["resume", "--yes"])
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env("AWS_SESSION_TOKEN", &token)
        .run()
        .code(4)
        .stderr_contains("in AWS account 111111111111, but run `")
        .stderr_contains("` started in account 123456789012");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    let status = world.status();
    assert_eq!(
        activity(&status).len(),
        1,
        "the refused resume journaled nothing"
    );
}

/// Every run writes a debug log next to its journal: the AWS SDK's lines for every call
/// (the plan's too) and every progress event, never a secret input nor a request signature.
#[test]
fn every_run_writes_a_debug_log_with_every_aws_call_and_no_secret() {
    let world = World::new();
    let password = "Debug-Log-Must-Not-Show-This-42";
    world
        .rebuild_test(&crate::support::playbooks::password_playbook())
        .env("REBUILD_DB_MASTER_PASSWORD", password)
        .run()
        .success();
    let journal = world.journal_files().pop().unwrap();
    let log = journal.with_file_name("debug.log");
    let text = std::fs::read_to_string(&log)
        .unwrap_or_else(|error| panic!("no debug log at {}: {error}", log.display()));
    for call in [
        "GetCallerIdentity",
        "DescribeDBSnapshots",
        "CreateVpc",
        "RestoreDBInstanceFromDBSnapshot",
        "ModifyDBInstance",
    ] {
        assert!(
            text.contains(call),
            "{call} not in the debug log:\n{}",
            &text[..text.len().min(3000)]
        );
    }
    assert!(
        text.contains("rebuild::progress"),
        "progress events are logged"
    );
    assert!(
        !text.contains(password),
        "the secret input is in the debug log"
    );
    assert!(
        !text.to_ascii_lowercase().contains("signature="),
        "a request signature is in the debug log"
    );

    // `-vv` shows the same on stderr; without it, stderr has none of it.
    let plan = |verbose: &[&str]| {
        world
            .test()
            .args(["plan", "--target", crate::support::world::TARGET])
            .args(verbose)
            .playbook(&infrastructure_playbook())
            .run()
    };
    let loud = plan(&["-vv"]);
    loud.success()
        .stderr_contains("STS.GetCallerIdentity")
        .stderr_contains("DEBUG");
    let quiet = plan(&[]);
    assert!(
        !quiet.success().stderr().contains("DEBUG"),
        "{}",
        quiet.stderr()
    );
}
