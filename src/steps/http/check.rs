//! `http.check`: smoke checks after a rebuild — each URL must answer the expected status
//! (and contain a text, if given) within a number of tries, with a pause between two tries
//! that a stopping run cuts short. Every check is reported on its own; the step fails
//! naming each check that did not pass and what it last saw.
//!
//! A check with `connect_to` tests what users will hit before DNS says so (review D13):
//! the request goes to the URL as written (its name for TLS's SNI, the certificate check
//! and `Host`), but connects to the addresses of `connect_to` (e.g. the new load balancer),
//! looked up again on every try, since a new load balancer's name takes a while to resolve.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cloud::http::HttpSettings;
use crate::journal::Values;
use crate::playbook::{KindSpec, ParamSpec, duration};
use crate::steps::interface;
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan};

static SPEC: KindSpec = KindSpec {
    kind: "http.check",
    summary: "smoke checks: URLs must answer the expected status (and body text), with retries",
    parameters: &[
        ParamSpec {
            name: "checks",
            required: true,
            help: "`[{name, url, status (default 200), body_contains, connect_to}]`; `connect_to`: connect to this host's addresses instead of the URL's, keeping the URL's name for TLS and `Host` (like curl's `--resolve`)",
        },
        ParamSpec {
            name: "attempts",
            required: false,
            help: "tries per check (default 10)",
        },
        ParamSpec {
            name: "interval",
            required: false,
            help: "the longest pause between tries: 1s after the first, doubling up to it (default 5s)",
        },
        ParamSpec {
            name: "request_timeout",
            required: false,
            help: "time limit of one request (default 10s)",
        },
        ParamSpec {
            name: "ca_file",
            required: false,
            help: "PEM file of CA certificates to trust besides the public ones (a private CA; empty: none)",
        },
        ParamSpec {
            name: "hosts_file",
            required: false,
            help: "hosts-format file consulted before DNS to find `connect_to` addresses (testbeds; empty: none)",
        },
    ],
    outputs: &["results"],
};

/// The `http.check` step kind.
pub(crate) struct HttpCheck;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    checks: Vec<Check>,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default, deserialize_with = "duration::optional")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::optional")]
    request_timeout: Option<Duration>,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    hosts_file: Option<String>,
}

/// A path parameter; empty is none.
fn path(value: Option<&String>) -> Option<PathBuf> {
    value
        .map(|text| text.trim())
        .filter(|text| !text.is_empty())
        .map(PathBuf::from)
}

/// One check. Its `url` may come from a step that has not run when planning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    name: String,
    url: Option<String>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default)]
    connect_to: Option<String>,
}

impl Check {
    /// Where to connect instead of the URL's host; empty is none.
    fn connect_to(&self) -> Option<&str> {
        self.connect_to
            .as_deref()
            .map(str::trim)
            .filter(|host| !host.is_empty())
    }
}

fn default_attempts() -> u32 {
    10
}
fn default_status() -> u16 {
    200
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    /// Each check's [`CheckResult`], by name, in the playbook's order.
    results: serde_json::Map<String, serde_json::Value>,
}

/// How one check went: passed (its status and the try it passed on), or not (what the
/// last try saw).
#[derive(Debug, Serialize)]
struct CheckResult {
    url: String,
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<String>,
}

/// How each try of a check gets its client.
struct Clients<'a> {
    context: &'a StepContext,
    settings: HttpSettings,
    /// The client of checks without `connect_to`.
    shared: reqwest::Client,
    hosts_file: Option<PathBuf>,
}

impl Clients<'_> {
    /// The client for one try of `check` on `url`: pinned to `connect_to`'s addresses as
    /// they resolve now, or the shared one.
    async fn for_try(&self, check: &Check, url: &str) -> Result<reqwest::Client, String> {
        let Some(target) = check.connect_to() else {
            return Ok(self.shared.clone());
        };
        let parsed = reqwest::Url::parse(url).map_err(|error| format!("bad url: {error}"))?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(format!("`{url}` names no host to pin to `{target}`"));
        };
        let cloud = &self.context.cloud;
        let addresses = cloud
            .resolve(target, port, self.hosts_file.as_deref())
            .await
            .map_err(|error| format!("no answer: {error}"))?;
        let settings = HttpSettings {
            pin: Some((host.to_string(), addresses)),
            ..self.settings.clone()
        };
        cloud.http(&settings).map_err(|error| error.to_string())
    }
}

/// One try: `Ok` when it passes, else what was seen.
async fn try_once(clients: &Clients<'_>, check: &Check, url: &str) -> Result<u16, String> {
    let client = clients.for_try(check, url).await?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("no answer: {}", chain(&error)))?;
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

/// An error with its causes (a TLS failure hides under "error sending request").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}

/// The pause after failed try `attempt` (from 1): a second at first, doubling up to
/// `interval` — a new load balancer's name often resolves seconds after the first try, and
/// is noticed then rather than a whole `interval` later.
fn pause_after(attempt: u32, interval: Duration) -> Duration {
    FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
        .min(interval)
}

/// The first pause between tries (shorter only when `interval` is).
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Try `check` up to `attempts` times (at least once), pausing between tries (see
/// [`pause_after`]); the status and try it passed on, or what the last try saw.
async fn run_check(
    context: &StepContext,
    clients: &Clients<'_>,
    check: &Check,
    url: &str,
    attempts: u32,
    interval: Duration,
) -> Result<Result<(u16, u32), String>, StepError> {
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match try_once(clients, check, url).await {
            Ok(status) => return Ok(Ok((status, attempt))),
            Err(seen) => last = seen,
        }
        context.checkpoint("between-tries")?;
        if attempt < attempts {
            context.sleep(pause_after(attempt, interval)).await?;
        }
    }
    Ok(Err(last))
}

#[async_trait]
impl Step for HttpCheck {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        _context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = crate::steps::params(value)?;
        let summary = format!("{} smoke check(s)", params.checks.len());
        let mut plan = StepPlan::new(Action::Create, summary);
        for check in &params.checks {
            let url = check.url.as_deref().unwrap_or("(known after apply)");
            let via = check
                .connect_to()
                .map(|target| format!(" via {target}"))
                .unwrap_or_default();
            plan = plan.detail(
                check.name.clone(),
                format!("GET {url}{via} → {}", check.status),
            );
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let interval = params.interval.unwrap_or(DEFAULT_INTERVAL);
        let settings = HttpSettings {
            timeout: params.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            ca_file: path(params.ca_file.as_ref()),
            pin: None,
        };
        let clients = Clients {
            context,
            shared: context.cloud.http(&settings)?,
            settings,
            hosts_file: path(params.hosts_file.as_ref()),
        };
        let mut results = serde_json::Map::new();
        let mut failures = Vec::new();
        for check in &params.checks {
            let url = check
                .url
                .clone()
                .ok_or_else(|| StepError::Params(format!("check `{}` has no `url`", check.name)))?;
            let outcome =
                run_check(context, &clients, check, &url, params.attempts, interval).await?;
            let result = match outcome {
                Ok((status, tries)) => {
                    let name = &check.name;
                    context.progress(format!(
                        "check `{name}` passed (HTTP {status}, try {tries})"
                    ));
                    CheckResult {
                        url,
                        passed: true,
                        status: Some(status),
                        tries: Some(tries),
                        last: None,
                    }
                }
                Err(last) => {
                    context.progress(format!("check `{}` FAILED: {last}", check.name));
                    failures.push(format!("`{}` ({url}): {last}", check.name));
                    CheckResult {
                        url,
                        passed: false,
                        status: None,
                        tries: None,
                        last: Some(last),
                    }
                }
            };
            let result = serde_json::to_value(result)
                .map_err(|error| StepError::Params(format!("cannot record outputs: {error}")))?;
            results.insert(check.name.clone(), result);
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
        interface::outputs(&Outputs { results })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pauses_start_at_a_second_and_double_up_to_the_interval() {
        let pauses: Vec<u64> = (1..=6)
            .map(|attempt| pause_after(attempt, Duration::from_secs(10)).as_secs())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 10, 10]);
        let short = Duration::from_millis(300);
        assert_eq!(pause_after(1, short), short);
        assert_eq!(
            pause_after(40, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn the_table_matches_the_typed_interface() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &json!({
                "checks": [{"name": "web", "url": "https://x/healthz", "status": 200, "connect_to": "lb"}],
                "attempts": 3,
                "interval": "1s",
                "request_timeout": "2s",
                "ca_file": "ca.pem",
                "hosts_file": "hosts",
            }),
        );
    }

    #[test]
    fn a_result_shows_what_its_outcome_has() {
        let passed = CheckResult {
            url: "u".into(),
            passed: true,
            status: Some(200),
            tries: Some(2),
            last: None,
        };
        assert_eq!(
            serde_json::to_string(&passed).unwrap(),
            r#"{"url":"u","passed":true,"status":200,"tries":2}"#
        );
        let failed = CheckResult {
            url: "u".into(),
            passed: false,
            status: None,
            tries: None,
            last: Some("HTTP 503, expected 200".into()),
        };
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"url":"u","passed":false,"last":"HTTP 503, expected 200"}"#
        );
    }
}
