//! Commands that only read: `status`, `runs`, `validate`, and `unlock` (which only breaks a
//! lock on purpose).

use std::path::PathBuf;

use serde_json::json;

use crate::cli::{GlobalArgs, Output};
use crate::error::Error;
use crate::journal::lock::{Holder, Unlocked};
use crate::journal::{Actor, Event, LoadRunError, StateStore};
use crate::report::render;
use crate::usage::UsageError;

use super::config::{load_playbook, who};
use super::{state_store, torn_note};

pub(super) async fn status(global: &GlobalArgs, run_id: Option<String>) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let run_id = run_id
        .or_else(|| store.latest())
        .ok_or_else(|| Error::from(LoadRunError::NotFound("(latest)".into())))?;
    let (loaded, state) = store.load_run(&run_id)?;
    let playbook = load_playbook(Some(PathBuf::from(&state.header.playbook_path).as_path())).ok();
    let running = store.is_running(&run_id, &state.header.target_region);
    let shown_dir = store.location();
    match global.output {
        Output::Json => {
            let mut value = render::status_json(&state, playbook.as_ref(), running, &shown_dir);
            if let Some(tail) = &loaded.dropped_tail {
                value["dropped_torn_record"] = json!(tail.to_string());
            }
            println!("{value}");
        }
        Output::Text => {
            print!(
                "{}",
                render::status_text(&state, playbook.as_ref(), running, &shown_dir)
            );
            if let Some(note) = torn_note(&loaded, "ignored") {
                eprintln!("{note}");
            }
        }
    }
    Ok(())
}

pub(super) async fn runs(global: &GlobalArgs) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let entries = store.runs();
    let mut rows = Vec::new();
    for entry in &entries {
        match &entry.state {
            Ok(state) => {
                let running = store.is_running(&entry.run_id, &state.header.target_region);
                let done = state
                    .steps
                    .values()
                    .filter(|s| s.status == crate::journal::StepStatus::Succeeded)
                    .count();
                rows.push(json!({
                    "run_id": entry.run_id,
                    "state": render::run_state_word(state, running),
                    "playbook": state.header.playbook_name,
                    "stack": state.header.stack.as_str(),
                    "source_region": state.header.source_region,
                    "target_region": state.header.target_region,
                    "started": state.started.to_string(),
                    "updated": state.updated.to_string(),
                    "steps_succeeded": done,
                    "started_by": state.activity.first().and_then(|first| first.by.clone()),
                }));
            }
            Err(error) => {
                rows.push(json!({"run_id": entry.run_id, "state": "unreadable", "error": error}))
            }
        }
    }
    match global.output {
        Output::Json => println!("{}", json!(rows)),
        Output::Text if rows.is_empty() => eprintln!("no runs in `{}`", store.location()),
        Output::Text => {
            println!(
                "{:<24} {:<12} {:<32} {:<16} {:<22} {:>5}  BY",
                "RUN", "STATE", "STACK", "TARGET", "STARTED", "DONE"
            );
            for row in rows {
                let by = &row["started_by"];
                let by = match (by["user"].as_str(), by["host"].as_str()) {
                    (Some(user), Some(host)) => format!("{user}@{host}"),
                    _ => "-".to_string(),
                };
                println!(
                    "{:<24} {:<12} {:<32} {:<16} {:<22} {:>5}  {by}",
                    row["run_id"].as_str().unwrap_or_default(),
                    row["state"].as_str().unwrap_or_default(),
                    row["stack"].as_str().unwrap_or("-"),
                    row["target_region"].as_str().unwrap_or("-"),
                    row["started"]
                        .as_str()
                        .map(|s| s.get(..19).unwrap_or(s))
                        .unwrap_or("-"),
                    row["steps_succeeded"],
                );
            }
        }
    }
    Ok(())
}

pub(super) fn validate(global: &GlobalArgs, playbook: Option<PathBuf>) -> Result<(), Error> {
    let playbook = load_playbook(playbook.as_deref())?;
    match global.output {
        Output::Json => println!(
            "{}",
            json!({"valid": true, "playbook": playbook.name, "path": playbook.path, "steps": playbook.steps.len(), "digest": playbook.digest})
        ),
        Output::Text => println!(
            "{}: playbook `{}` is valid ({} steps)",
            playbook.path.display(),
            playbook.name,
            playbook.steps.len()
        ),
    }
    Ok(())
}

/// `rebuild unlock`: break stale locks, and journal who broke each in its holder's run.
pub(super) async fn unlock(global: &GlobalArgs, target: Option<String>) -> Result<(), Error> {
    let store = state_store(global, None).await?;
    let targets: Vec<String> = match target {
        Some(target) if !crate::playbook::region::is_valid(&target) => {
            return Err(UsageError::NotARegion {
                region: target,
                unlock: true,
            }
            .into());
        }
        Some(target) => vec![target],
        None => store.locked_targets(),
    };
    if targets.is_empty() {
        eprintln!("no locks in `{}`", store.location());
    }
    for target in targets {
        match store.unlock(&target)? {
            Unlocked::NotLocked => eprintln!("`{target}` is not locked"),
            Unlocked::Removed(Some(holder)) => {
                eprintln!("broke the lock for `{target}` held by {holder}");
                let by = who(&target).await;
                if let Err(error) = journal_unlock(store.as_ref(), &holder, by) {
                    eprintln!(
                        "warning: could not note the broken lock in run `{}`'s journal: {error}",
                        holder.run_id
                    );
                }
            }
            Unlocked::Removed(None) => {
                eprintln!("broke the lock for `{target}` (holder unreadable)")
            }
            Unlocked::Unverified(holder) => eprintln!(
                "broke the lock for `{target}` held by {holder}\n\
                 note: whether that process still runs could not be checked (a lock in S3 is \
                 never judged dead by its pid: its host cannot be checked from here); make \
                 sure it is stopped on `{host}` before resuming: `rebuild resume {run_id} --state {location}`",
                host = holder.host,
                run_id = holder.run_id,
                location = store.location(),
            ),
        }
    }
    Ok(())
}

/// Note in the holder's run that its lock was broken, and by whom (its process is gone, so
/// nothing else appends to that journal).
fn journal_unlock(store: &dyn StateStore, holder: &Holder, by: Actor) -> Result<(), Error> {
    let (loaded, _) = store.load_run(&holder.run_id)?;
    let journal = store.reopen_run(&holder.run_id, &loaded)?;
    journal.append(Event::LockBroken {
        by,
        holder: holder.to_string(),
    })?;
    Ok(())
}

/// `rebuild eks-token`: an ExecCredential for kubectl and client libraries.
pub(super) async fn eks_token(cluster: &str, region: &str) -> Result<(), Error> {
    let cloud = crate::cloud::Cloud::from_env().await;
    let token = cloud
        .eks_token(region, cluster)
        .await
        .map_err(|error| UsageError::EksToken(error.to_string()))?;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(14);
    println!(
        "{}",
        json!({
            "kind": "ExecCredential",
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "spec": {},
            "status": {"expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "token": token},
        })
    );
    Ok(())
}
