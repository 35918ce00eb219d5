//! Commands: the second phase of argument handling (flags → configuration, touching the
//! environment and files) and the glue that wires playbook, plan, journal, executor and
//! reporter together for each subcommand.

mod inspect;
mod run;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{Cli, Command, DEFAULT_PLAYBOOK, GlobalArgs, Output};
use crate::error::Error;
use crate::journal::Values;
use crate::playbook::{self, LoadError, Playbook, region};
use crate::report::{JsonReporter, LineReporter, Reporter, progress::ProgressReporter};
use crate::steps;

/// Run the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<(), Error> {
    let global = cli.global;
    match cli.command {
        None if cli.run.dry_run => run::plan(&global, &cli.run).await,
        None => run::start(&global, &cli.run).await,
        Some(Command::Plan(args)) => run::plan(&global, &args).await,
        Some(Command::Resume {
            run_id,
            yes,
            parallelism,
            inputs,
        }) => run::resume(&global, run_id, yes, parallelism, &inputs).await,
        Some(Command::Status { run_id }) => inspect::status(&global, run_id),
        Some(Command::Runs) => inspect::runs(&global),
        Some(Command::Validate { playbook }) => inspect::validate(&global, playbook),
        Some(Command::Unlock { target }) => inspect::unlock(&global, target),
        Some(Command::EksToken { cluster, region }) => inspect::eks_token(&cluster, &region).await,
    }
}

/// Load a playbook, turning problems into the exit-2 error.
pub(crate) fn load_playbook(path: Option<&Path>) -> Result<Playbook, Error> {
    let path: PathBuf = path.map_or_else(|| PathBuf::from(DEFAULT_PLAYBOOK), Path::to_path_buf);
    let mut playbook =
        playbook::load(&path, &steps::Kinds::builtin().specs()).map_err(|error| match error {
            LoadError::Invalid(problems) => Error::Playbook { problems },
            LoadError::Read { .. } => Error::PlaybookRead(error.to_string()),
        })?;
    // The journal pins an absolute path, so `resume` works from any directory.
    if let Ok(absolute) = std::fs::canonicalize(&playbook.path) {
        playbook.path = absolute;
    }
    Ok(playbook)
}

/// The target region: `--target`, else the playbook's `default_target`; never the source.
pub(crate) fn target_region(playbook: &Playbook, target: Option<&str>) -> Result<String, Error> {
    let target = match target {
        Some(target) => target.to_string(),
        None => playbook
            .default_target
            .as_ref()
            .map(|target| target.value.clone())
            .ok_or_else(|| {
                Error::usage(
                    "no target region given",
                    Some("pass `--target REGION`, e.g. `--target ap-southeast-1`".into()),
                )
            })?,
    };
    if !region::is_valid(&target) {
        return Err(Error::usage(
            format!("`{target}` is not an AWS region name"),
            Some("write it like `ap-southeast-1`".into()),
        ));
    }
    if target == playbook.source_region.value {
        return Err(Error::usage(
            format!("the target region `{target}` is the playbook's source region"),
            Some("a rebuild must go to another region than the one that failed".into()),
        ));
    }
    Ok(target)
}

/// Marker written in place of a secret input.
pub(crate) const REDACTED: &str = "<redacted>";

/// Parse `NAME=VALUE` pairs.
pub(crate) fn parse_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.trim().to_string(), value.to_string()))
                .ok_or_else(|| {
                    Error::usage(
                        format!("`--input {pair}` is not NAME=VALUE"),
                        Some(
                            "write it as `--input NAME=VALUE`, e.g. `--input db_multi_az=false`"
                                .into(),
                        ),
                    )
                })
        })
        .collect()
}

/// The input a `--kubeconfig` sets.
pub(crate) const EXISTING_KUBECONFIG: &str = "existing_kubeconfig";

/// The inputs given on the command line: `--input NAME=VALUE`s, and `--kubeconfig PATH` as
/// the playbook's `existing_kubeconfig` input (absolute, so a resume from elsewhere works).
pub(crate) fn given_inputs(
    playbook: &crate::playbook::Playbook,
    args: &crate::cli::RunArgs,
) -> Result<BTreeMap<String, String>, Error> {
    let mut given = parse_pairs(&args.inputs)?;
    if let Some(path) = &args.kubeconfig {
        if !playbook
            .inputs
            .iter()
            .any(|input| input.name.value == EXISTING_KUBECONFIG)
        {
            return Err(Error::usage(
                format!(
                    "`--kubeconfig` needs an input `{EXISTING_KUBECONFIG}` in playbook `{}`, and it has none",
                    playbook.name
                ),
                Some(format!(
                    "add an input `{EXISTING_KUBECONFIG}` and pass it to the cluster step's `existing_kubeconfig` (see the default playbook)"
                )),
            ));
        }
        if !path.is_file() {
            return Err(Error::usage(
                format!("`--kubeconfig {}`: no such file", path.display()),
                Some("give the kubeconfig of the running cluster".to_string()),
            ));
        }
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        given.insert(
            EXISTING_KUBECONFIG.to_string(),
            absolute.display().to_string(),
        );
    }
    Ok(given)
}

/// Turn a value given as text (`--input`, environment) into the type of the input's
/// default: `true`/`false` for a boolean default, a number for a numeric one, else text.
fn typed(
    name: &str,
    text: &str,
    default: Option<&serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let wrong = |what: &str| {
        Error::usage(
            format!("input `{name}` must be {what}, not `{text}`"),
            Some(format!(
                "its default is `{}`",
                default.map(ToString::to_string).unwrap_or_default()
            )),
        )
    };
    match default {
        Some(serde_json::Value::Bool(_)) => match text.trim() {
            "true" => Ok(serde_json::Value::Bool(true)),
            "false" => Ok(serde_json::Value::Bool(false)),
            _ => Err(wrong("`true` or `false`")),
        },
        Some(serde_json::Value::Number(_)) => text
            .trim()
            .parse::<i64>()
            .map(serde_json::Value::from)
            .or_else(|_| text.trim().parse::<f64>().map(serde_json::Value::from))
            .map_err(|_| wrong("a number")),
        _ => Ok(serde_json::Value::String(text.to_string())),
    }
}

/// Input values for a run. A new run takes `--input`, else the input's `env` variable, else
/// its default. A resumed run keeps the journaled values (they are pinned); only secrets,
/// which are never journaled, are read again — and one that was set when the run started
/// must be set again. Returns (values with secrets, values safe to journal).
pub(crate) fn resolve_inputs(
    playbook: &Playbook,
    given: &BTreeMap<String, String>,
    journaled: Option<&Values>,
) -> Result<(Values, Values), Error> {
    for name in given.keys() {
        if playbook.input(name).is_none() {
            return Err(Error::usage(
                format!("`--input {name}=...`: the playbook declares no input `{name}`"),
                Some(format!(
                    "declared inputs: {}",
                    playbook
                        .inputs
                        .iter()
                        .map(|i| i.name.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ));
        }
    }
    let mut values = Values::new();
    let mut safe = Values::new();
    for input in &playbook.inputs {
        let name = &input.name.value;
        let pinned = journaled.and_then(|values| values.get(name));
        let from_env = input
            .env
            .as_ref()
            .and_then(|variable| std::env::var(variable).ok());
        let given_text = given.get(name).cloned().or(from_env);
        let value = match (pinned, input.secret) {
            (Some(pinned), false) => {
                if let Some(text) = given.get(name) {
                    let wanted = typed(name, text, input.default.as_ref())?;
                    if &wanted != pinned {
                        return Err(Error::usage(
                            format!(
                                "input `{name}` is pinned to `{pinned}` by this run; it cannot change on resume"
                            ),
                            Some("start a new run to use another value".into()),
                        ));
                    }
                }
                Some(pinned.clone())
            }
            (Some(marker), true) => match given_text {
                Some(text) => Some(serde_json::Value::String(text)),
                None if marker == REDACTED => {
                    let how = input
                        .env
                        .as_ref()
                        .map(|v| format!("set `{v}` or pass"))
                        .unwrap_or_else(|| "pass".into());
                    return Err(Error::usage(
                        format!(
                            "secret input `{name}` was set when the run started, and secrets are never journaled"
                        ),
                        Some(format!("{how} `--input {name}=...` again, then resume")),
                    ));
                }
                None => None,
            },
            (None, _) => match given_text {
                Some(text) => Some(typed(name, &text, input.default.as_ref())?),
                None => input.default.clone(),
            },
        };
        match value {
            Some(value) => {
                safe.insert(
                    name.clone(),
                    if input.secret {
                        serde_json::json!(REDACTED)
                    } else {
                        value.clone()
                    },
                );
                values.insert(name.clone(), value);
            }
            None if input.secret => {
                values.insert(name.clone(), serde_json::Value::Null);
                safe.insert(name.clone(), serde_json::Value::Null);
            }
            None => {
                let from = input
                    .env
                    .as_ref()
                    .map(|v| format!(" or set `{v}`"))
                    .unwrap_or_default();
                return Err(Error::usage(
                    format!("input `{name}` has no value"),
                    Some(format!("pass `--input {name}=VALUE`{from}")),
                ));
            }
        }
    }
    Ok((values, safe))
}

/// The secret values among `values`, for scrubbing error messages.
pub(crate) fn secret_values(playbook: &Playbook, values: &Values) -> Vec<String> {
    playbook
        .inputs
        .iter()
        .filter(|input| input.secret)
        .filter_map(|input| values.get(&input.name.value)?.as_str().map(str::to_string))
        .filter(|secret| !secret.is_empty())
        .collect()
}

/// The reporter for a run: JSON lines, progress bars on a terminal, or plain lines.
pub(crate) fn reporter(global: &GlobalArgs) -> Arc<dyn Reporter> {
    if global.output == Output::Json {
        Arc::new(JsonReporter::default())
    } else if std::io::stderr().is_terminal() {
        Arc::new(ProgressReporter::new())
    } else {
        Arc::new(LineReporter::default())
    }
}
