//! `http.check`: smoke checks after a rebuild — each URL must answer the expected status
//! (and contain a text, if given) within a number of attempts. Every check is reported on
//! its own; the step fails naming each check that did not pass and what it last saw.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec, duration};

use super::{Action, PlanContext, Step, StepContext, StepError, StepPlan, params};

static SPEC: KindSpec = KindSpec {
    kind: "http.check",
    summary: "smoke checks: URLs must answer the expected status (and body text), with retries",
    parameters: &[
        ParamSpec {
            name: "checks",
            required: true,
            help: "`[{name, url, status (default 200), body_contains}]`",
        },
        ParamSpec {
            name: "attempts",
            required: false,
            help: "tries per check (default 10)",
        },
        ParamSpec {
            name: "interval",
            required: false,
            help: "pause between tries (default 5s)",
        },
        ParamSpec {
            name: "request_timeout",
            required: false,
            help: "time limit of one request (default 10s)",
        },
    ],
    outputs: &["results"],
};

/// The `http.check` step kind.
pub struct HttpCheck;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    checks: Vec<Check>,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    request_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    name: String,
    url: Option<String>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default)]
    body_contains: Option<String>,
}

fn default_attempts() -> u32 {
    10
}
fn default_status() -> u16 {
    200
}

fn parse_duration(text: &Option<String>, default: u64, name: &str) -> Result<Duration, StepError> {
    match text {
        Some(text) => {
            duration::parse(text).map_err(|error| StepError::Params(format!("`{name}`: {error}")))
        }
        None => Ok(Duration::from_secs(default)),
    }
}

/// One try: `Ok` when it passes, else what was seen.
async fn try_once(client: &reqwest::Client, check: &Check, url: &str) -> Result<u16, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("no answer: {error}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status != check.status {
        return Err(format!("HTTP {status}, expected {}", check.status));
    }
    if let Some(text) = &check.body_contains
        && !body.contains(text.as_str())
    {
        return Err(format!("HTTP {status} but the body lacks `{text}`"));
    }
    Ok(status)
}

#[async_trait]
impl Step for HttpCheck {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        _context: &PlanContext,
        params_value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = params(params_value)?;
        let mut plan = StepPlan::new(
            Action::Create,
            format!("{} smoke check(s)", params.checks.len()),
        );
        for check in &params.checks {
            let url = check
                .url
                .clone()
                .unwrap_or_else(|| "(known after apply)".into());
            plan = plan.detail(check.name.clone(), format!("GET {url} → {}", check.status));
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        params_value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = params(params_value)?;
        let interval = parse_duration(&params.interval, 5, "interval")?;
        let client = context.cloud.http(parse_duration(
            &params.request_timeout,
            10,
            "request_timeout",
        )?)?;
        let mut results = serde_json::Map::new();
        let mut failures = Vec::new();
        for check in &params.checks {
            let url = check
                .url
                .clone()
                .ok_or_else(|| StepError::Params(format!("check `{}` has no `url`", check.name)))?;
            let mut last = String::new();
            let mut passed = None;
            for attempt in 1..=params.attempts.max(1) {
                match try_once(&client, check, &url).await {
                    Ok(status) => {
                        passed = Some((status, attempt));
                        break;
                    }
                    Err(seen) => last = seen,
                }
                context.checkpoint("between-tries")?;
                if attempt < params.attempts {
                    tokio::time::sleep(interval).await;
                }
            }
            match passed {
                Some((status, attempt)) => {
                    context.progress(format!(
                        "check `{}` passed (HTTP {status}, try {attempt})",
                        check.name
                    ));
                    results.insert(
                        check.name.clone(),
                        json!({"url": url, "passed": true, "status": status, "tries": attempt}),
                    );
                }
                None => {
                    context.progress(format!("check `{}` FAILED: {last}", check.name));
                    results.insert(
                        check.name.clone(),
                        json!({"url": url, "passed": false, "last": last}),
                    );
                    failures.push(format!("`{}` ({url}): {last}", check.name));
                }
            }
        }
        if !failures.is_empty() {
            return Err(StepError::Refused {
                message: format!(
                    "{} of {} smoke check(s) failed: {}",
                    failures.len(),
                    params.checks.len(),
                    failures.join("; ")
                ),
                hint: "look at the service behind each URL; `rebuild resume` runs the checks again"
                    .into(),
            });
        }
        Ok(Values::from([(
            "results".to_string(),
            serde_json::Value::Object(results),
        )]))
    }
}
