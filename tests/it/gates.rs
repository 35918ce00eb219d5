//! Gates and operator marks (issue 9, item 4), on playbooks of cheap steps — `http.check`
//! against a local HTTP server and `gate.approval` — which make no AWS call: a gate answered
//! from a second process (`rebuild approve`, `rebuild reject`) or by its timeout; a step
//! that fails for good skipped and the resume completing; a succeeded step marked to run
//! again; `--keep-going` letting an independent branch finish.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::test::Test;

/// A tiny HTTP server: `/ok` answers 200 `ok`, anything else 503.
fn serve_http() -> String {
    crate::support::http::serve("/ok", "ok")
}

/// One `http.check` step of `path` on `server` (one try), after `needs`.
fn check(id: &str, needs: &[&str], server: &str, path: &str, name: &str) -> String {
    format!(
        "  - id: {id}\n    kind: http.check\n    needs: [{}]\n    with:\n      attempts: 1\n      checks:\n        - {{name: \"{name}\", url: \"{server}{path}\"}}\n",
        needs.join(", ")
    )
}

/// A gate after `before`.
fn gate(timeout: &str, default: &str) -> String {
    format!(
        "  - id: gate\n    kind: gate.approval\n    needs: [before]\n    with:\n      message: cut traffic over to the new region?\n      timeout: {timeout}\n      default: {default}\n"
    )
}

fn write_playbook(dir: &Path, steps: &[String]) -> PathBuf {
    let text = format!(
        "name: gates\nsource_region: ap-southeast-2\ndefault_target: ap-southeast-1\nsteps:\n{}",
        steps.concat()
    );
    let path = dir.join("gates.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `before` → `gate` → `after` (whose check is named after who decided the gate).
fn gated_playbook(dir: &Path, server: &str, timeout: &str, default: &str) -> PathBuf {
    write_playbook(
        dir,
        &[
            check("before", &[], server, "/ok", "before"),
            gate(timeout, default),
            check(
                "after",
                &["gate"],
                server,
                "/ok",
                "after ${steps.gate.decided_by}",
            ),
        ],
    )
}

fn rebuild(state: &Path) -> Test {
    Test::new()
        .state_dir(state)
        .env("REBUILD_POLL_INTERVAL_MS", "100")
        .env("USER", "ana")
}

fn start(state: &Path, playbook: &Path) -> Test {
    rebuild(state).playbook(playbook).args(["--yes"])
}

fn status(state: &Path) -> Value {
    rebuild(state)
        .args(["status", "--output", "json"])
        .run()
        .success()
        .stdout_json()
}

fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {status:#}"))
}

/// Wait until `rebuild status` shows the gate waiting for approval.
fn wait_for_the_gate(state: &Path) -> Value {
    let started = Instant::now();
    loop {
        if state.join("runs").exists() {
            let shown = status(state);
            if step(&shown, "gate")["approval"]["deadline"].is_string()
                && step(&shown, "gate")["state"] == "waiting"
            {
                return shown;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gate never waited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gate_waits_until_another_process_approves_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let playbook = gated_playbook(dir.path(), &serve_http(), "10m", "reject");
    let running = start(&state, &playbook).spawn();

    let shown = wait_for_the_gate(&state);
    let run_id = shown["run_id"].as_str().unwrap().to_string();
    assert_eq!(shown["state"], "running");
    let approval = &step(&shown, "gate")["approval"];
    assert_eq!(approval["message"], "cut traffic over to the new region?");
    let text = rebuild(&state).args(["status"]).run();
    text.success()
        .stdout_contains("waiting for approval: cut traffic over to the new region?")
        .stdout_contains("without an answer: reject at")
        .stdout_contains(&format!(
            "approve: rebuild approve {run_id} --step gate --state-dir {}",
            state.display()
        ))
        .stdout_contains(&format!("reject:  rebuild reject {run_id} --step gate"));
    assert_eq!(step(&shown, "after")["state"], "pending");

    rebuild(&state)
        .args(["approve", "--reason", "checked with the incident lead"])
        .run()
        .success()
        .stderr_contains(&format!("approved gate `gate` of run {run_id} as ana@"))
        .stderr_contains("the run takes it up at its next look");
    running.wait().success();

    let shown = status(&state);
    assert_eq!(shown["state"], "succeeded");
    let gate = step(&shown, "gate");
    assert_eq!(gate["state"], "succeeded");
    assert_eq!(gate["approval"]["decision"]["verdict"], "approve");
    assert_eq!(gate["approval"]["decision"]["by"]["user"], "ana");
    assert_eq!(
        gate["approval"]["decision"]["reason"],
        "checked with the incident lead"
    );
    assert!(
        gate["outputs"]["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("ana@")
    );
    assert_eq!(step(&shown, "after")["state"], "succeeded");
    rebuild(&state)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("approved by ana@");
    // Nothing waits any more: a second answer is refused.
    rebuild(&state)
        .args(["approve", &run_id])
        .run()
        .code(2)
        .stderr_contains("no gate of run")
        .stderr_contains("hint:");
}

#[test]
fn a_rejected_gate_fails_the_run_with_the_reason_and_a_skip_needs_the_outputs_others_use() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let playbook = gated_playbook(dir.path(), &serve_http(), "10m", "approve");
    let running = start(&state, &playbook).spawn();
    let shown = wait_for_the_gate(&state);
    let run_id = shown["run_id"].as_str().unwrap().to_string();

    // Only an approver may answer when the gate names them; this one names none.
    rebuild(&state)
        .args(["reject", "--step", "before"])
        .run()
        .code(2)
        .stderr_contains("step `before` of run")
        .stderr_contains("gates waiting: `gate`");
    // The run's process holds the run: it cannot be marked meanwhile.
    rebuild(&state)
        .args(["skip", "--step", "gate", "--output-value", "decided_by=x"])
        .run()
        .code(3);
    rebuild(&state)
        .args(["reject", "--reason", "not during the sale"])
        .run()
        .success();
    running
        .wait()
        .code(1)
        .stderr_contains("rejected by ana@")
        .stderr_contains("not during the sale")
        .stderr_contains("rebuild skip --step");

    let shown = status(&state);
    assert_eq!(shown["state"], "failed");
    let gate = step(&shown, "gate");
    assert_eq!(gate["state"], "failed");
    assert_eq!(gate["approval"]["decision"]["verdict"], "reject");
    assert_eq!(
        gate["approval"]["decision"]["reason"],
        "not during the sale"
    );
    assert_eq!(step(&shown, "after")["state"], "pending");
    rebuild(&state)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("rejected by ana@")
        .stdout_contains(": not during the sale");

    // `after` uses the gate's `decided_by`: skipping the gate needs it.
    rebuild(&state)
        .args(["skip", &run_id, "--step", "gate"])
        .run()
        .code(2)
        .stderr_contains("later steps use outputs of step `gate` that were not given: `decided_by` (used by `after`)")
        .stderr_contains("--output-value decided_by=VALUE");
    rebuild(&state)
        .args([
            "skip",
            &run_id,
            "--step",
            "gate",
            "--output-value",
            "decided_by=the-phone-call",
        ])
        .args(["--reason", "approved on the bridge call"])
        .run()
        .success()
        .stderr_contains("is marked skipped");
    let shown = status(&state);
    assert_eq!(step(&shown, "gate")["state"], "skipped");
    assert_eq!(
        step(&shown, "gate")["skipped"]["reason"],
        "approved on the bridge call"
    );
    rebuild(&state)
        .args(["resume", &run_id, "--yes"])
        .run()
        .success();
    let shown = status(&state);
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(step(&shown, "gate")["state"], "skipped");
    let after = step(&shown, "after");
    assert_eq!(after["state"], "succeeded");
    assert!(
        after["outputs"]["results"]
            .to_string()
            .contains("after the-phone-call"),
        "{after:#}"
    );
}

#[test]
fn a_gate_nobody_answers_takes_its_default_at_the_timeout() {
    let server = serve_http();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("approve");
    let playbook = gated_playbook(dir.path(), &server, "1s", "approve");
    start(&state, &playbook).run().success();
    let shown = status(&state);
    let gate = step(&shown, "gate");
    assert_eq!(gate["approval"]["decision"]["verdict"], "approve");
    assert!(gate["approval"]["decision"]["by"].is_null());
    assert_eq!(gate["outputs"]["decided_by"], "timeout");
    rebuild(&state)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("approved by its timeout (approve at");

    let state = dir.path().join("reject");
    let playbook = gated_playbook(dir.path(), &server, "1s", "reject");
    start(&state, &playbook)
        .run()
        .code(1)
        .stderr_contains("rejected by its timeout");
    let shown = status(&state);
    assert_eq!(
        step(&shown, "gate")["approval"]["decision"]["verdict"],
        "reject"
    );
    assert_eq!(step(&shown, "after")["state"], "pending");
}

#[test]
fn a_step_that_fails_for_good_is_skipped_and_a_succeeded_one_runs_again() {
    let server = serve_http();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let playbook = write_playbook(
        dir.path(),
        &[
            check("smoke", &[], &server, "/ok", "smoke"),
            check("legacy", &["smoke"], &server, "/gone", "legacy"),
            check("final", &["legacy"], &server, "/ok", "final"),
        ],
    );
    start(&state, &playbook)
        .run()
        .code(1)
        .stderr_contains("step `legacy`");
    let run_id = status(&state)["run_id"].as_str().unwrap().to_string();

    // Only a step that has not succeeded is skipped; only a finished one is retried.
    rebuild(&state)
        .args(["skip", "--step", "smoke"])
        .run()
        .code(2)
        .stderr_contains("step `smoke` is `succeeded`")
        .stderr_contains("rebuild retry --step smoke");
    rebuild(&state)
        .args(["retry", "--step", "legacy"])
        .run()
        .code(2)
        .stderr_contains("step `legacy` is `failed`");
    rebuild(&state)
        .args(["skip", "--step", "nope"])
        .run()
        .code(2)
        .stderr_contains("has no step `nope`")
        .stderr_contains("its steps: `smoke`, `legacy`, `final`");

    rebuild(&state)
        .args(["skip", "--step", "legacy", "--reason", "retired endpoint"])
        .run()
        .success();
    let shown = status(&state);
    assert_eq!(step(&shown, "legacy")["state"], "skipped");
    assert_eq!(step(&shown, "legacy")["skipped"]["by"]["user"], "ana");
    rebuild(&state)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("skipped by ana@")
        .stdout_contains(": retired endpoint");
    rebuild(&state)
        .args(["resume", "--yes"])
        .run()
        .success()
        .stderr_contains("skipped by ana@");
    let shown = status(&state);
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(step(&shown, "final")["state"], "succeeded");
    assert_eq!(step(&shown, "legacy")["attempts"], 1, "not run again");

    rebuild(&state)
        .args(["retry", &run_id, "--step", "smoke"])
        .run()
        .success()
        .stderr_contains("runs again on the next resume");
    let shown = status(&state);
    assert_eq!(shown["state"], "marked for resume");
    assert_eq!(step(&shown, "smoke")["state"], "pending");
    assert_eq!(
        step(&shown, "smoke")["retry_requested"]["by"]["user"],
        "ana"
    );
    rebuild(&state)
        .args(["status"])
        .run()
        .success()
        .stdout_contains("runs again on resume (marked by ana@");
    rebuild(&state).args(["resume", "--yes"]).run().success();
    let shown = status(&state);
    assert_eq!(shown["state"], "succeeded");
    let smoke = step(&shown, "smoke");
    assert_eq!(
        (smoke["state"].as_str(), smoke["attempts"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    assert_eq!(
        step(&shown, "final")["attempts"],
        1,
        "dependants are not run again"
    );
    let journal =
        std::fs::read_to_string(state.join("runs").join(&run_id).join("journal.jsonl")).unwrap();
    assert!(journal.contains(r#""type":"step_started","step":"smoke","attempt":2"#));
    assert!(journal.contains(r#""type":"step_retry_requested","step":"smoke""#));
}

#[test]
fn keep_going_finishes_the_independent_branch_and_lists_the_failed_step() {
    let server = serve_http();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let playbook = write_playbook(
        dir.path(),
        &[
            check("down", &[], &server, "/down", "down"),
            check("after-down", &["down"], &server, "/ok", "after-down"),
            check("up", &[], &server, "/ok", "up"),
            check("after-up", &["up"], &server, "/ok", "after-up"),
        ],
    );
    start(&state, &playbook)
        .args(["--keep-going", "--parallelism", "1"])
        .run()
        .code(1)
        .stderr_contains("failed at step(s) `down`");
    let shown = status(&state);
    assert_eq!(shown["state"], "failed");
    assert_eq!(step(&shown, "down")["state"], "failed");
    assert_eq!(step(&shown, "up")["state"], "succeeded");
    assert_eq!(step(&shown, "after-up")["state"], "succeeded");
    assert_eq!(step(&shown, "after-down")["state"], "pending");

    // Without it, the first failure stops the run.
    let state = dir.path().join("stops");
    start(&state, &playbook)
        .args(["--parallelism", "1"])
        .run()
        .code(1);
    let shown = status(&state);
    assert_eq!(step(&shown, "after-up")["state"], "pending");
}
