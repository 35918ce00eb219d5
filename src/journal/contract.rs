//! The contract every [`StateStore`] keeps, as one check run on each implementation: the
//! file and memory stores in unit tests, the S3 store against the testbed's S3 in the
//! integration tests (which is why it is public, and hidden from the documentation).
#![expect(
    clippy::unwrap_used,
    reason = "a test's check stops at the first surprise, with a message"
)]

use super::{Event, LoadRunError, Request, StateStore, Values};

/// A `run_started` record's event for `run_id`.
pub fn header(run_id: &str) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        playbook_path: "t.yaml".into(),
        playbook_name: "t".into(),
        playbook_digest: "d".into(),
        source_region: "ap-southeast-2".into(),
        target_region: "ap-southeast-1".into(),
        stack: None,
        owned_by: crate::stack::OwnedBy::journaled_before_stacks(),
        playbook_parts: None,
        inputs: Values::new(),
        accept_rpo: false,
        host: "h".into(),
        tool_version: "0".into(),
        by: None,
    }
}

/// The contract every store keeps, checked on each implementation.
pub fn keeps_the_contract(store: &dyn StateStore) {
    assert!(store.runs().is_empty() && store.latest().is_none());
    let journal = store.create_run("20260101-000000-aaaa").unwrap();
    journal.append(header("20260101-000000-aaaa")).unwrap();
    assert!(
        store.create_run("20260101-000000-aaaa").is_err(),
        "a run is created once"
    );
    let (loaded, state) = store.load_run("20260101-000000-aaaa").unwrap();
    assert_eq!(state.header.run_id, "20260101-000000-aaaa");
    let reopened = store.reopen_run("20260101-000000-aaaa", &loaded).unwrap();
    reopened
        .append(Event::StepStarted {
            step: "a".into(),
            attempt: 1,
        })
        .unwrap();
    let (_, state) = store.load_run("20260101-000000-aaaa").unwrap();
    assert_eq!(state.step("a").map(|step| step.attempts), Some(1));
    store
        .create_run("20260102-000000-bbbb")
        .unwrap()
        .append(header("20260102-000000-bbbb"))
        .unwrap();
    assert_eq!(
        store.run_ids(),
        vec!["20260101-000000-aaaa", "20260102-000000-bbbb"]
    );
    assert_eq!(store.latest().as_deref(), Some("20260102-000000-bbbb"));
    assert_eq!(
        store.latest_unfinished().as_deref(),
        Some("20260102-000000-bbbb")
    );
    assert!(matches!(
        store.load_run("nope"),
        Err(LoadRunError::NotFound(_))
    ));

    let held = store
        .lock("ap-southeast-1", "20260101-000000-aaaa")
        .unwrap();
    assert!(store.lock_is_held("ap-southeast-1"));
    assert!(store.is_running("20260101-000000-aaaa", "ap-southeast-1"));
    let refused = store.lock("ap-southeast-1", "other").unwrap_err();
    assert!(
        refused
            .holder()
            .is_some_and(|holder| holder.run_id == "20260101-000000-aaaa"),
        "{refused}"
    );
    assert!(
        store.unlock("ap-southeast-1").is_err(),
        "a live holder is never unlocked"
    );
    assert_eq!(store.locked_targets(), vec!["ap-southeast-1"]);
    drop(held);
    assert!(!store.lock_is_held("ap-southeast-1"));
    let again = store.lock("ap-southeast-1", "other").unwrap();
    assert_eq!(again.holder.run_id, "other");

    // Answers to gates: a stream of their own, beside a journal held open for append.
    assert!(store.requests("20260101-000000-aaaa").unwrap().is_empty());
    let answer = |step: &str| Request {
        at: jiff::Timestamp::UNIX_EPOCH,
        step: step.into(),
        round: 1,
        verdict: crate::journal::Verdict::Approve,
        by: crate::journal::Actor {
            user: "ana".into(),
            host: "laptop".into(),
            ..crate::journal::Actor::default()
        },
        reason: None,
    };
    store
        .append_request("20260101-000000-aaaa", &answer("gate"))
        .unwrap();
    reopened
        .append(Event::StepStarted {
            step: "b".into(),
            attempt: 1,
        })
        .unwrap();
    store
        .append_request("20260101-000000-aaaa", &answer("other"))
        .unwrap();
    let steps: Vec<String> = store
        .requests("20260101-000000-aaaa")
        .unwrap()
        .into_iter()
        .map(|request| request.step)
        .collect();
    assert_eq!(steps, ["gate", "other"]);
    let (_, state) = store.load_run("20260101-000000-aaaa").unwrap();
    assert_eq!(state.step("b").map(|step| step.attempts), Some(1));
    assert!(store.append_request("nope", &answer("gate")).is_err());
}
