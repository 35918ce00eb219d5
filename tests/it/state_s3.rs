//! State in S3 for teams (issue 9, item 3): the S3 store keeps the state-store contract
//! against the testbed's S3; two writers never both write a journal record; two processes
//! with their own working directories and scratch folders race over one bucket for one
//! target and exactly one proceeds, the other naming the holder; a run killed on one
//! machine is resumed from another after `rebuild unlock`; and a bucket in the source
//! region, a bad URL or a missing bucket are refused before anything happens (exit 2).
//!
//! Everything the runner, resume and lock tests prove for the local directory runs on S3
//! too (`on_both_backends!` in `rebuild.rs` and `stack.rs`).

use std::sync::{Arc, Barrier};

use rebuild::cloud::Cloud;
use rebuild::journal::contract::{header, keeps_the_contract};
use rebuild::journal::{Event, S3Store, StateStore};
use rebuild::state_url::StateUrl;
use serde_json::Value;

use crate::support::inventory::{ONE_RUN, inventory};
use crate::support::moto::Moto;
use crate::support::playbooks::{infrastructure_playbook, infrastructure_playbook_with};
use crate::support::proxy::Proxy;
use crate::support::seed::{block_on, sdk_config};
use crate::support::world::{
    Backend, STATE_BUCKET, STATE_REGION, STATE_URL, TARGET, World, state_bucket, step,
};

const RUN: &str = "20260101-000000-aaaa";

/// A moto with the state bucket, behind the proxy (which makes conditional creates atomic).
fn bucket_bed() -> (Moto, Proxy) {
    let moto = Moto::start();
    state_bucket(&moto.endpoint, STATE_BUCKET, STATE_REGION);
    let proxy = Proxy::start(&moto.endpoint);
    (moto, proxy)
}

/// An S3 store at `url`, opened as the binary opens it (through the cloud layer).
fn open(endpoint: &str, url: &str) -> S3Store {
    let cloud = Cloud::from_config(block_on(sdk_config(endpoint, TARGET)));
    S3Store::open(
        StateUrl::parse(url).unwrap(),
        &cloud.default_region(),
        |region| cloud.state_bucket(region),
    )
    .unwrap()
}

fn started(step: &str) -> Event {
    Event::StepStarted {
        step: step.into(),
        attempt: 1,
    }
}

#[test]
fn the_s3_store_keeps_the_state_store_contract() {
    let (_moto, proxy) = bucket_bed();
    let store = open(&proxy.endpoint, "s3://team-rebuild-state/contract");
    assert_eq!(store.bucket_region(), STATE_REGION);
    assert_eq!(store.location(), "s3://team-rebuild-state/contract");
    keeps_the_contract(&store);
    // Nothing outside its prefix.
    let other = open(&proxy.endpoint, "s3://team-rebuild-state/elsewhere");
    assert!(other.run_ids().is_empty());
}

#[test]
fn two_writers_never_both_write_record_n() {
    let (_moto, proxy) = bucket_bed();
    let first = open(&proxy.endpoint, STATE_URL);
    first.create_run(RUN).unwrap().append(header(RUN)).unwrap();
    let (loaded, _) = first.load_run(RUN).unwrap();

    // Eight processes' worth of stores, each reopening the run at the same place and
    // appending record 2 at the same moment: exactly one wins.
    let writers = 8;
    let barrier = Arc::new(Barrier::new(writers));
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let endpoint = proxy.endpoint.clone();
            let barrier = barrier.clone();
            let store = open(&endpoint, STATE_URL);
            let journal = store.reopen_run(RUN, &loaded).unwrap();
            std::thread::spawn(move || {
                barrier.wait();
                journal
                    .append(started(&format!("writer-{writer}")))
                    .map_err(|error| error.to_string())
            })
        })
        .collect();
    let outcomes: Vec<_> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let won: Vec<_> = outcomes.iter().filter(|outcome| outcome.is_ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    for lost in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert!(lost.contains("record 2 exists already"), "{lost}");
        assert!(lost.contains("another process is writing"), "{lost}");
    }
    let (loaded, state) = first.load_run(RUN).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(state.steps.len(), 1, "one writer's record, whole");
}

#[test]
fn a_missing_or_damaged_last_record_is_dropped_and_cut_before_appending() {
    let (_moto, proxy) = bucket_bed();
    let store = open(&proxy.endpoint, STATE_URL);
    let journal = store.create_run(RUN).unwrap();
    journal.append(header(RUN)).unwrap();
    journal.append(started("a")).unwrap();
    journal.append(started("b")).unwrap();
    drop(journal);
    // Record 3 replaced by half of itself, and a stray record 5 after a missing 4.
    block_on(async {
        let s3 = crate::support::seed::s3_client(&proxy.endpoint, STATE_REGION).await;
        let key = |number: u64| format!("dr/shop/runs/{RUN}/journal/{number:012}.json");
        s3.put_object()
            .bucket(STATE_BUCKET)
            .key(key(3))
            .body(b"{\"crc\":\"0000".to_vec().into())
            .send()
            .await
            .unwrap();
        let (loaded, _) = store.load_run(RUN).unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert!(
            loaded.dropped_tail.is_some(),
            "the damaged last record is dropped"
        );

        let reopened = store.reopen_run(RUN, &loaded).unwrap();
        reopened.append(started("c")).unwrap();
        let (loaded, state) = store.load_run(RUN).unwrap();
        assert!(loaded.dropped_tail.is_none());
        assert_eq!(loaded.records.len(), 3);
        assert!(state.step("c").is_some() && state.step("b").is_none());

        s3.put_object()
            .bucket(STATE_BUCKET)
            .key(key(5))
            .body(b"stray".to_vec().into())
            .send()
            .await
            .unwrap();
        let (loaded, _) = store.load_run(RUN).unwrap();
        assert_eq!(loaded.records.len(), 3, "a record after a gap is the tail");
        assert!(loaded.dropped_tail.is_some());
        store
            .reopen_run(RUN, &loaded)
            .unwrap()
            .append(started("d"))
            .unwrap();
        let (loaded, _) = store.load_run(RUN).unwrap();
        assert_eq!(
            (loaded.records.len(), loaded.dropped_tail.is_none()),
            (4, true)
        );
    });
}

/// The lock object of `target` in the worlds' bucket, as JSON.
fn lock_holder(world: &World) -> Value {
    block_on(async {
        let s3 = crate::support::seed::s3_client(&world.moto.endpoint, STATE_REGION).await;
        let object = s3
            .get_object()
            .bucket(STATE_BUCKET)
            .key(format!("dr/shop/locks/{TARGET}.lock"))
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap()
    })
}

#[test]
fn two_machines_sharing_a_bucket_race_for_one_target_and_exactly_one_proceeds() {
    let world = World::on(Backend::S3);
    // Held until released below: the winner must still be running when the loser is judged.
    world
        .proxy()
        .hold_rds_status(std::time::Duration::from_secs(600));
    let machines = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut running: Vec<_> = machines
        .iter()
        .map(|machine| {
            world
                .rebuild_test(&infrastructure_playbook())
                .state_dir(machine.path())
                .current_dir(machine.path())
                .spawn()
        })
        .collect();
    let status = world.wait_until("the database wait", |status| {
        step(status, "database")["state"] == "waiting"
    });
    let run_id = status["run_id"].as_str().unwrap().to_string();
    let holder = lock_holder(&world);
    assert_eq!(holder["run_id"], run_id.as_str());
    let winner_pid = holder["pid"].as_u64().unwrap();
    let loser_at = running
        .iter()
        .position(|process| u64::from(process.pid()) != winner_pid)
        .unwrap();
    let loser = running.remove(loser_at);
    let winner = running.remove(0);
    assert_eq!(u64::from(winner.pid()), winner_pid);

    let user = holder["user"].as_str().unwrap().to_string();
    let since = holder["since"].as_str().unwrap()[..10].to_string();
    loser
        .wait()
        .code(3)
        .stderr_contains(&format!(
            "the lock for `{TARGET}` in `{STATE_URL}` is held by run `{run_id}` by `{user}` on host `"
        ))
        .stderr_contains(&format!("(pid {winner_pid}, since {since}"))
        .stderr_contains("never judged dead by its pid");

    world.proxy().clear();
    winner.wait().success();
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
    assert_eq!(world.journals().len(), 1, "the loser journaled nothing");
    assert!(!world.lock_exists(TARGET), "released by the winner");
}

#[test]
fn a_run_killed_on_one_machine_is_resumed_from_another_after_unlock() {
    let world = World::on(Backend::S3);
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The first machine finds the bucket in its playbook's `state:`.
    let playbook = infrastructure_playbook_with(
        first.path(),
        &[(
            "name: region-rebuild\n",
            &format!("name: region-rebuild\nstate: {STATE_URL}\n"),
        )],
    );
    world
        .test()
        .env_remove("REBUILD_STATE")
        .args(["--target", TARGET, "--yes"])
        .playbook(&playbook)
        .state_dir(first.path())
        .current_dir(first.path())
        .failpoint("network/after-subnets")
        .run()
        .killed("network/after-subnets");
    assert!(
        !first.path().join("locks").exists(),
        "no lock on the first machine's disk"
    );

    // The second machine names the bucket with `--state`.
    let on_second = |args: &[&str]| {
        world
            .test()
            .env_remove("REBUILD_STATE")
            .args(args)
            .args(["--state", STATE_URL])
            .state_dir(second.path())
            .current_dir(second.path())
            .run()
    };
    let listed = on_second(&["runs", "--output", "json"])
        .success()
        .stdout_json();
    let run_id = listed[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["state"], "running", "its lock is still there");
    on_second(&["resume", "--yes"])
        .code(3)
        .stderr_contains(&format!("is held by run `{run_id}`"))
        .stderr_contains("never judged dead by its pid")
        .stderr_contains(&format!(
            "`rebuild unlock --target {TARGET} --state {STATE_URL}`, then `rebuild resume {run_id} --state {STATE_URL}`"
        ));
    on_second(&["unlock", "--target", TARGET])
        .success()
        .stderr_contains(&format!(
            "broke the lock for `{TARGET}` held by run `{run_id}`"
        ))
        .stderr_contains("could not be checked");
    on_second(&["resume", "--yes"]).success();
    let status = on_second(&["status", "--output", "json"])
        .success()
        .stdout_json();
    assert_eq!(status["state"], "succeeded");
    assert_eq!(step(&status, "network")["attempts"], 2);
    assert_eq!(inventory(&world.moto.endpoint), ONE_RUN);
}

#[test]
fn a_state_bucket_in_the_source_region_is_refused_before_anything_happens() {
    let world = World::new();
    state_bucket(&world.moto.endpoint, "prod-side-state", "ap-southeast-2");
    world.proxy().reset_counts();
    world
        .rebuild_test(&infrastructure_playbook())
        .args(["--state", "s3://prod-side-state/dr"])
        .run()
        .code(2)
        .stderr_contains(
            "error: the state bucket `s3://prod-side-state/dr` is in `ap-southeast-2`, the playbook's source region",
        )
        .stderr_contains("hint: the state must outlive the region that failed");
    assert_eq!(world.cloud_operations(), Vec::<String>::new());
    assert!(world.proxy().mutating_operations().is_empty());
    assert_eq!(inventory(&world.moto.endpoint).vpcs, 0);
}

#[test]
fn a_bad_state_url_or_a_missing_bucket_is_a_usage_error() {
    let world = World::new();
    world
        .rebuild_test(&infrastructure_playbook())
        .args(["--state", "/srv/rebuild-state"])
        .run()
        .code(2)
        .stderr_contains(
            "`--state /srv/rebuild-state`: only `s3://BUCKET/PREFIX` is supported here",
        )
        .stderr_contains("hint: write `--state s3://BUCKET/PREFIX`");
    world
        .run(&["runs", "--state", "s3://Team_State/x"])
        .code(2)
        .stderr_contains("`Team_State` is not an S3 bucket name");
    world
        .rebuild_test(&infrastructure_playbook())
        .args(["--state", "s3://no-such-state-bucket/dr"])
        .run()
        .code(2)
        .stderr_contains("the state bucket `no-such-state-bucket` does not exist");
    let dir = tempfile::tempdir().unwrap();
    let playbook = infrastructure_playbook_with(
        dir.path(),
        &[(
            "name: region-rebuild\n",
            "name: region-rebuild\nstate: s3://Team_State\n",
        )],
    );
    world
        .run(&["validate", playbook.to_str().unwrap()])
        .code(2)
        .stderr_contains("`state: s3://Team_State`: `Team_State` is not an S3 bucket name");
}
