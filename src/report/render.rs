//! Rendering plans, run status and run lists as text for people and as JSON for machines.

use std::fmt::Write;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::journal::{ChangeKind, Outcome, RunState, StepStatus, Values};
use crate::playbook::{Playbook, duration};

/// Output keys whose values are never shown (an ARN or id names a secret, it is not one:
/// `master_user_secret_arn` is shown).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("_arn") || key.ends_with("_id") {
        return false;
    }
    ["password", "secret", "token", "private_key"]
        .iter()
        .any(|word| key.contains(word))
}

/// Outputs with secret-looking values replaced.
pub fn redact(values: &Values) -> Values {
    values
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(key) {
                json!("<redacted>")
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

fn show_value(value: &Value) -> String {
    match value {
        // Certificates and the like: the text view shows their start; `--output json` all.
        Value::String(text) if text.chars().count() > 120 => {
            let start: String = text.chars().take(48).collect();
            format!(
                "{start}… ({} characters; `--output json` shows all)",
                text.chars().count()
            )
        }
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(show_value).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// What state a run is in, in one word.
pub fn run_state_word(state: &RunState, running: bool) -> &'static str {
    match state.outcome {
        Some(Outcome::Succeeded) => "succeeded",
        Some(Outcome::Failed) => "failed",
        Some(Outcome::Interrupted) => "interrupted",
        None if running => "running",
        None if state.marked_for_resume => "marked for resume",
        None => "crashed",
    }
}

fn step_seconds(step: &crate::journal::state::StepState, now: Timestamp) -> Option<f64> {
    let start = step.last_started?;
    let end = step.ended.unwrap_or(now);
    Some(end.duration_since(start).as_secs_f64().max(0.0))
}

/// The command that resumes a run whose state is at `state_dir` (a local directory, or
/// the `s3://` location of shared state).
pub fn resume_command(run_id: &str, state_dir: &str) -> String {
    format!("rebuild resume {run_id}{}", state_dir_option(state_dir))
}

/// ` --state s3://…` for shared state, ` --state-dir DIR` (quoted for a shell when it must
/// be) for another local directory, or nothing for the default.
pub fn state_dir_option(state_dir: &str) -> String {
    if state_dir.starts_with("s3://") {
        return format!(" --state {state_dir}");
    }
    if state_dir == ".rebuild" {
        return String::new();
    }
    let needs_quotes = state_dir
        .chars()
        .any(|c| c.is_whitespace() || "'\"$`\\".contains(c));
    let shown = if needs_quotes {
        format!("'{}'", state_dir.replace('\'', "'\\''"))
    } else {
        state_dir.to_string()
    };
    format!(" --state-dir {shown}")
}

/// A run's status as JSON.
pub fn status_json(
    state: &RunState,
    playbook: Option<&Playbook>,
    running: bool,
    state_dir: &str,
) -> Value {
    let now = Timestamp::now();
    // The playbook's steps in its order, then any the journal knows that it no longer has
    // (removed by a `--replan`, or by an edit): what they made still exists.
    let mut order: Vec<String> = match playbook {
        Some(playbook) => playbook
            .steps
            .iter()
            .map(|step| step.id.value.clone())
            .collect(),
        None => Vec::new(),
    };
    for id in state.steps.keys() {
        if !order.contains(id) {
            order.push(id.clone());
        }
    }
    let steps: Vec<Value> = order
        .iter()
        .map(|id| {
            let kind = playbook
                .and_then(|p| p.step(id))
                .map(|s| s.kind.value.clone())
                .unwrap_or_default();
            match state.step(id) {
                Some(step) => json!({
                    "id": id,
                    "kind": kind,
                    "state": step.status,
                    "attempts": step.attempts,
                    "duration_seconds": step_seconds(step, now),
                    "started": step.first_started.map(|t| t.to_string()),
                    "ended": step.ended.map(|t| t.to_string()),
                    "waiting_for": step.waiting_for,
                    "outputs": redact(&step.outputs),
                    "pinned": redact(&step.pins),
                    "resources": step.resources.iter().map(|(t, i, a)| json!({"type": t, "id": i, "action": a})).collect::<Vec<_>>(),
                    "last_error": step.last_error,
                    "approval": step.approval.as_ref().map(|approval| approval_json(approval, &state.header.run_id, id, state_dir)),
                    "skipped": step.skipped,
                    "retry_requested": step.retry_requested,
                }),
                None => json!({"id": id, "kind": kind, "state": StepStatus::Pending, "attempts": 0}),
            }
        })
        .collect();
    let word = run_state_word(state, running);
    json!({
        "run_id": state.header.run_id,
        "playbook": state.header.playbook_name,
        "playbook_path": state.header.playbook_path,
        "stack": state.header.stack.as_str(),
        "source_region": state.header.source_region,
        "target_region": state.header.target_region,
        "state": word,
        "started": state.started.to_string(),
        "updated": state.updated.to_string(),
        "resumes": state.resumes,
        "inputs": redact(&state.header.inputs),
        "changes": changes_json(state),
        "activity": state.activity,
        "steps": steps,
        "resume_command": (word != "succeeded" && word != "running").then(|| resume_command(&state.header.run_id, state_dir)),
    })
}

/// A gate's question as JSON: what it asks, until when, and, while it waits, the exact
/// commands that answer it.
fn approval_json(
    approval: &crate::journal::state::Approval,
    run_id: &str,
    step: &str,
    state_dir: &str,
) -> Value {
    let mut value = serde_json::to_value(approval).unwrap_or_else(|_| json!({}));
    if approval.is_open() {
        let suffix = state_dir_option(state_dir);
        value["approve_command"] = json!(format!("rebuild approve {run_id} --step {step}{suffix}"));
        value["reject_command"] = json!(format!(
            "rebuild reject {run_id} --step {step} --reason TEXT{suffix}"
        ));
    }
    value
}

/// An operator's mark in one line: `by USER@HOST at TIME (REASON)`.
fn mark_text(mark: &Value) -> String {
    let at = mark["at"]
        .as_str()
        .and_then(|at| at.parse::<Timestamp>().ok())
        .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let by = format!(
        "{}@{}",
        mark["by"]["user"].as_str().unwrap_or_default(),
        mark["by"]["host"].as_str().unwrap_or_default()
    );
    match mark["reason"].as_str() {
        Some(reason) => format!("by {by} at {at}: {reason}"),
        None => format!("by {by} at {at}"),
    }
}

/// A gate's question and answer as status lines.
fn approval_text(out: &mut String, approval: &Value) {
    let deadline = approval["deadline"]
        .as_str()
        .and_then(|at| at.parse::<Timestamp>().ok())
        .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let default = approval["on_timeout"].as_str().unwrap_or_default();
    let decision = &approval["decision"];
    if decision.is_object() {
        let verdict = match decision["verdict"].as_str() {
            Some("approve") => "approved",
            _ => "rejected",
        };
        let how = if decision["by"].is_object() {
            mark_text(decision)
        } else {
            format!("by its timeout ({default} at {deadline})")
        };
        let _ = writeln!(out, "      {verdict} {how}");
        return;
    }
    let _ = writeln!(
        out,
        "      waiting for approval: {}",
        approval["message"].as_str().unwrap_or_default()
    );
    if let Some(approvers) = approval["approvers"]
        .as_array()
        .filter(|list| !list.is_empty())
    {
        let names: Vec<&str> = approvers.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "      approvers: {}", names.join(", "));
    }
    let _ = writeln!(out, "      without an answer: {default} at {deadline}");
    let _ = writeln!(
        out,
        "      approve: {}",
        approval["approve_command"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "      reject:  {}",
        approval["reject_command"].as_str().unwrap_or_default()
    );
}

/// What resumes changed mid-run, as JSON (input values hidden like the inputs).
fn changes_json(state: &RunState) -> Value {
    let mut changes = serde_json::to_value(&state.changes).unwrap_or_else(|_| json!([]));
    for (change, journaled) in changes
        .as_array_mut()
        .into_iter()
        .flatten()
        .zip(&state.changes)
    {
        if let ChangeKind::InputChanged { name, .. } = &journaled.kind
            && is_secret_key(name)
        {
            change["from"] = json!("<redacted>");
            change["to"] = json!("<redacted>");
        }
    }
    changes
}

/// One change a resume made, in one line.
fn change_text(change: &Value) -> String {
    let names = |key: &str| {
        let names: Vec<String> = change[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|name| format!("`{name}`"))
            .collect();
        (!names.is_empty()).then(|| format!("{key} {}", names.join(", ")))
    };
    match change["type"].as_str() {
        Some("input_changed") => format!(
            "input `{}` changed: {} → {}",
            change["name"].as_str().unwrap_or_default(),
            change["from"],
            change["to"]
        ),
        Some("playbook_replanned") => {
            let what: Vec<String> = ["changed", "added", "removed", "settings"]
                .iter()
                .filter_map(|key| names(key))
                .collect();
            let digest = |key: &str| {
                let digest = change[key].as_str().unwrap_or_default();
                digest.get(..12).unwrap_or(digest).to_string()
            };
            format!(
                "playbook replanned ({} → {}): {}",
                digest("previous_digest"),
                digest("playbook_digest"),
                if what.is_empty() {
                    "no step changed".to_string()
                } else {
                    what.join("; ")
                }
            )
        }
        _ => change.to_string(),
    }
}

/// A run's status as text.
pub fn status_text(
    state: &RunState,
    playbook: Option<&Playbook>,
    running: bool,
    state_dir: &str,
) -> String {
    let value = status_json(state, playbook, running, state_dir);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {}: {}\n  playbook {} ({} → {}), stack {}, started {}, last update {}",
        state.header.run_id,
        run_state_word(state, running),
        state.header.playbook_name,
        state.header.source_region,
        state.header.target_region,
        state.header.stack,
        state.started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        state.updated.strftime("%H:%M:%S UTC"),
    );
    let _ = writeln!(out, "\n  who:");
    for activity in &state.activity {
        let by = activity
            .by
            .as_ref()
            .map_or_else(|| "(not recorded)".to_string(), ToString::to_string);
        let detail = match (&activity.detail, activity.action) {
            (Some(holder), "unlocked") => format!(" (held by {holder})"),
            (Some(detail), _) => format!(": {detail}"),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            out,
            "    {}  {} by {by}{detail}",
            activity.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            activity.action
        );
    }
    if let Some(changes) = value["changes"].as_array().filter(|list| !list.is_empty()) {
        let _ = writeln!(out, "\n  changed while resuming:");
        for change in changes {
            let at = change["at"]
                .as_str()
                .and_then(|at| at.parse::<Timestamp>().ok())
                .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            let _ = writeln!(out, "    {at}  {}", change_text(change));
        }
    }
    let _ = writeln!(
        out,
        "\n  {:<16} {:<18} {:<12} {:>8} {:>9}",
        "STEP", "KIND", "STATE", "ATTEMPTS", "DURATION"
    );
    for step in value["steps"].as_array().into_iter().flatten() {
        let seconds = step["duration_seconds"].as_f64();
        let shown = seconds
            .map(|s| duration::render(std::time::Duration::from_secs_f64(s)))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<16} {:<18} {:<12} {:>8} {:>9}",
            step["id"].as_str().unwrap_or_default(),
            step["kind"].as_str().unwrap_or_default(),
            step["state"].as_str().unwrap_or_default(),
            step["attempts"],
            shown
        );
        if step["approval"].is_object() {
            approval_text(&mut out, &step["approval"]);
        } else if let Some(waiting) = step["waiting_for"].as_str() {
            let _ = writeln!(out, "      waiting for {waiting}");
        }
        if step["skipped"].is_object() {
            let _ = writeln!(out, "      skipped {}", mark_text(&step["skipped"]));
        }
        if step["retry_requested"].is_object() {
            let _ = writeln!(
                out,
                "      runs again on resume (marked {})",
                mark_text(&step["retry_requested"])
            );
        }
        if let Some(error) = step["last_error"].as_str() {
            let _ = writeln!(out, "      last error: {error}");
        }
        if let Some(outputs) = step["outputs"].as_object() {
            for (key, value) in outputs {
                let _ = writeln!(out, "      {key} = {}", show_value(value));
            }
        }
    }
    if let Some(command) = value["resume_command"].as_str() {
        let _ = writeln!(out, "\n  resume with: {command}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_outputs_are_redacted() {
        let values = Values::from([
            ("endpoint".to_string(), json!("db.example")),
            ("master_password".to_string(), json!("hunter2")),
            ("api_token".to_string(), json!("t")),
        ]);
        let shown = redact(&values);
        assert_eq!(shown["endpoint"], json!("db.example"));
        assert_eq!(shown["master_password"], json!("<redacted>"));
        assert_eq!(shown["api_token"], json!("<redacted>"));
    }

    #[test]
    fn the_arn_or_id_of_a_secret_is_shown() {
        assert!(!is_secret_key("master_user_secret_arn"));
        assert!(!is_secret_key("secret_id"));
        assert!(is_secret_key("master_password"));
        assert!(is_secret_key("secret_value"));
    }

    #[test]
    fn long_values_are_shortened_in_text_only() {
        let long = "x".repeat(500);
        let shown = show_value(&json!(long));
        assert!(
            shown.starts_with(&"x".repeat(48)) && shown.contains("(500 characters"),
            "{shown}"
        );
        assert_eq!(show_value(&json!(["a", "b"])), "a, b");
    }

    #[test]
    fn steps_the_playbook_no_longer_has_are_still_shown_and_so_are_changes() {
        use crate::journal::{Event, Record, record::SCHEMA_VERSION, state};
        use crate::playbook::{self, KindSpec};
        const KINDS: &[KindSpec] = &[KindSpec {
            kind: "test.noop",
            summary: "",
            parameters: &[],
            outputs: &[],
        }];
        let playbook = playbook::from_str(
            std::path::Path::new("t.yaml"),
            "name: t\nsource_region: ap-southeast-2\nsteps:\n  - {id: kept, kind: test.noop}\n",
            KINDS,
        )
        .unwrap();
        let record = |seq, event| Record {
            v: SCHEMA_VERSION,
            seq,
            at: Timestamp::UNIX_EPOCH,
            event,
        };
        let records = vec![
            record(1, Event::test_start("r1", "t")),
            record(
                2,
                Event::StepFailed {
                    step: "removed".into(),
                    attempt: 1,
                    error: "boom".into(),
                    retryable: false,
                    will_retry: false,
                },
            ),
            record(
                3,
                Event::InputChanged {
                    name: "class".into(),
                    from: json!("db.m1.small"),
                    to: json!("db.m7g.large"),
                },
            ),
            record(
                4,
                Event::InputChanged {
                    name: "api_token".into(),
                    from: json!("old"),
                    to: json!("new"),
                },
            ),
        ];
        let state = state::fold(&records).unwrap();
        let value = status_json(&state, Some(&playbook), false, ".rebuild");
        let ids: Vec<&str> = value["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|step| step["id"].as_str())
            .collect();
        assert_eq!(ids, vec!["kept", "removed"]);
        assert_eq!(value["changes"][0]["type"], "input_changed");
        assert_eq!(value["changes"][0]["to"], "db.m7g.large");
        assert_eq!(
            value["changes"][1]["to"], "<redacted>",
            "shown like the inputs"
        );
        let text = status_text(&state, Some(&playbook), false, ".rebuild");
        assert!(
            text.contains(
                "changed while resuming:\n    1970-01-01 00:00:00 UTC  input `class` changed: \"db.m1.small\" → \"db.m7g.large\""
            ),
            "{text}"
        );
    }

    #[test]
    fn resume_command_names_a_non_default_state_dir() {
        assert_eq!(resume_command("r1", ".rebuild"), "rebuild resume r1");
        assert_eq!(
            resume_command("r1", "/srv/dr"),
            "rebuild resume r1 --state-dir /srv/dr"
        );
        assert_eq!(
            resume_command("r1", "/my dr"),
            "rebuild resume r1 --state-dir '/my dr'"
        );
        assert_eq!(
            resume_command("r1", "s3://team-state/dr"),
            "rebuild resume r1 --state s3://team-state/dr"
        );
    }
}
