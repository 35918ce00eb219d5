//! Rendering plans, run status and run lists as text for people and as JSON for machines.

use std::fmt::Write;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::journal::{Outcome, RunState, StepStatus, Values};
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
    if state_dir.starts_with("s3://") {
        format!("rebuild resume {run_id} --state {state_dir}")
    } else if state_dir == ".rebuild" {
        format!("rebuild resume {run_id}")
    } else {
        let needs_quotes = state_dir
            .chars()
            .any(|c| c.is_whitespace() || "'\"$`\\".contains(c));
        let shown = if needs_quotes {
            format!("'{}'", state_dir.replace('\'', "'\\''"))
        } else {
            state_dir.to_string()
        };
        format!("rebuild resume {run_id} --state-dir {shown}")
    }
}

/// A run's status as JSON.
pub fn status_json(
    state: &RunState,
    playbook: Option<&Playbook>,
    running: bool,
    state_dir: &str,
) -> Value {
    let now = Timestamp::now();
    let order: Vec<String> = match playbook {
        Some(playbook) => playbook
            .steps
            .iter()
            .map(|step| step.id.value.clone())
            .collect(),
        None => state.steps.keys().cloned().collect(),
    };
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
        "steps": steps,
        "resume_command": (word != "succeeded" && word != "running").then(|| resume_command(&state.header.run_id, state_dir)),
    })
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
        if let Some(waiting) = step["waiting_for"].as_str() {
            let _ = writeln!(out, "      waiting for {waiting}");
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
