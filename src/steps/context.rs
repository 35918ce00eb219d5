//! What a step gets to work with: its identity, the run's regions and tags, cloud clients,
//! and the only ways it may leave traces — the journal (pins, resources, waits) and the
//! reporter. It also owns safe points (cancellation and failpoints) and polling waits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cloud::Cloud;
use crate::executor::Cancel;
use crate::journal::{Event, Journal, Values};
use crate::report::{ReportEvent, Reporter};

use super::StepError;

/// Tag keys every resource carries.
pub const TAG_RUN_ID: &str = "rebuild:run-id";
/// Tag key naming the step that created a resource.
pub const TAG_STEP: &str = "rebuild:step";
/// Tag key naming the resource's role inside its step (e.g. `public-a`).
pub const TAG_NAME: &str = "rebuild:name";

/// How waits poll: the first interval, doubling (with jitter) up to the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// First delay between polls.
    pub initial: Duration,
    /// Largest delay between polls.
    pub max: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

impl PollSettings {
    /// The delay before poll number `index` (0-based): exponential with ±25% jitter.
    pub fn delay(&self, index: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(index.min(16)));
        let capped = base.min(self.max);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        capped.mul_f64(jitter)
    }
}

/// Asks the person running `rebuild` before a change that needs its own consent (the DNS
/// cutover moves real users). Steps never print: they ask through [`StepContext::confirm`].
pub trait Confirmer: Send + Sync {
    /// The answer to `question`: `true` is yes. May block (it runs off the runtime).
    fn ask(&self, question: &str) -> bool;
}

/// Says yes without asking: `--yes`, and runs that have nobody to ask.
#[derive(Debug, Default)]
pub struct Confirmed;

impl Confirmer for Confirmed {
    fn ask(&self, _question: &str) -> bool {
        true
    }
}

/// Read-only context for planning.
#[derive(Clone)]
pub struct PlanContext {
    /// The run being resumed, if any.
    pub run_id: Option<String>,
    /// The step's id.
    pub step_id: String,
    /// Region that failed.
    pub source_region: String,
    /// Region being rebuilt in.
    pub target_region: String,
    /// The playbook's RPO limit.
    pub rpo_limit: Option<Duration>,
    /// `--accept-rpo` given.
    pub accept_rpo: bool,
    /// Values the journal pinned for this step (on resume).
    pub pins: Values,
    /// Cloud clients (use only read-only calls).
    pub cloud: Arc<Cloud>,
    /// Where planning may keep local files (e.g. a checkout of the commit a source step
    /// resolved, so later steps can be planned from it). Never the cloud. `None`: nowhere.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Everything a step's `apply` may use.
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// The step's id.
    pub step_id: String,
    /// Region that failed.
    pub source_region: String,
    /// Region being rebuilt in.
    pub target_region: String,
    /// The playbook's RPO limit.
    pub rpo_limit: Option<Duration>,
    /// `--accept-rpo` given.
    pub accept_rpo: bool,
    /// Playbook tags.
    pub tags: BTreeMap<String, String>,
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    /// How waits poll.
    pub poll: PollSettings,
    /// The run's folder in the state directory: where a step may keep files (checkouts,
    /// kubeconfigs), under a sub-folder named after its step id.
    pub run_dir: std::path::PathBuf,
    pins: Mutex<Values>,
    journal: Arc<Journal>,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
    confirmer: Arc<dyn Confirmer>,
    questions: Arc<QuestionClock>,
}

/// How long a step has waited for answers to its questions ([`StepContext::confirm`]):
/// that time is not counted against its `timeout` (a person reading the question is not
/// the step being slow).
#[derive(Debug, Default)]
pub struct QuestionClock {
    /// When the current question was asked (`None`: none open), and the time spent on
    /// questions answered before.
    state: Mutex<(Option<tokio::time::Instant>, Duration)>,
}

impl QuestionClock {
    /// Whether a question is waiting for its answer now.
    pub fn asking(&self) -> bool {
        self.state
            .lock()
            .map(|state| state.0.is_some())
            .unwrap_or(false)
    }

    /// Time spent waiting for answers so far (the open question included).
    pub fn waited(&self) -> Duration {
        self.state
            .lock()
            .map(|state| state.1 + state.0.map_or(Duration::ZERO, |asked| asked.elapsed()))
            .unwrap_or(Duration::ZERO)
    }

    /// A question is asked: its wait starts.
    pub(crate) fn ask(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0.get_or_insert_with(tokio::time::Instant::now);
        }
    }

    /// The open question is answered (or abandoned): its wait ends.
    pub(crate) fn answered(&self) {
        if let Ok(mut state) = self.state.lock()
            && let Some(asked) = state.0.take()
        {
            state.1 += asked.elapsed();
        }
    }
}

/// Stops the question clock however the wait ends (answer, stop, or the step dropped).
struct Asking<'a>(&'a QuestionClock);

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.0.answered();
    }
}

/// What a poll found.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done, with a value.
    Ready(T),
    /// Not yet; the text says where it stands (e.g. `creating`).
    Pending(String),
}

impl StepContext {
    /// A context for one attempt of one step.
    #[expect(
        clippy::too_many_arguments,
        reason = "built in one place, by the executor"
    )]
    pub fn new(
        run_id: String,
        step_id: String,
        regions: (String, String),
        rpo: (Option<Duration>, bool),
        tags: BTreeMap<String, String>,
        cloud: Arc<Cloud>,
        poll: PollSettings,
        run_dir: std::path::PathBuf,
        pins: Values,
        journal: Arc<Journal>,
        reporter: Arc<dyn Reporter>,
        cancel: Cancel,
    ) -> Self {
        Self {
            run_id,
            step_id,
            source_region: regions.0,
            target_region: regions.1,
            rpo_limit: rpo.0,
            accept_rpo: rpo.1,
            tags,
            cloud,
            poll,
            run_dir,
            pins: Mutex::new(pins),
            journal,
            reporter,
            cancel,
            confirmer: Arc::new(Confirmed),
            questions: Arc::default(),
        }
    }

    /// The time this attempt has spent waiting for answers (not counted against the
    /// step's `timeout`).
    pub fn question_clock(&self) -> Arc<QuestionClock> {
        self.questions.clone()
    }

    /// The state directory's cache (beside `runs/`), where plans keep local files such as
    /// checkouts of the commits they resolved (see [`PlanContext::cache_dir`]).
    pub fn cache_dir(&self) -> Option<std::path::PathBuf> {
        let runs = self.run_dir.parent()?;
        Some(runs.parent()?.join("cache"))
    }

    /// Ask with `confirmer` when [`StepContext::confirm`] is called (default: yes).
    #[must_use]
    pub fn with_confirmer(mut self, confirmer: Arc<dyn Confirmer>) -> Self {
        self.confirmer = confirmer;
        self
    }

    /// Ask before a change that needs its own consent. A "no" refuses the step (nothing
    /// changed; `rebuild resume` asks again); a stop signal while waiting interrupts it.
    pub async fn confirm(&self, question: String) -> Result<(), StepError> {
        self.checkpoint("confirm")?;
        let confirmer = self.confirmer.clone();
        let asked = question.clone();
        self.questions.ask();
        let asking = Asking(&self.questions);
        let answer = tokio::task::spawn_blocking(move || confirmer.ask(&asked));
        let yes = tokio::select! {
            answer = answer => answer.unwrap_or(false),
            () = self.cancel.cancelled() => return Err(StepError::Interrupted),
        };
        drop(asking);
        if yes {
            self.progress(format!("confirmed: {question}"));
            Ok(())
        } else {
            Err(StepError::Refused {
                message: format!("not confirmed: {question}"),
                hint: "nothing was changed by this step; `rebuild resume` asks again (`--yes` does not ask)".to_string(),
            })
        }
    }

    /// Tags for a resource named `name` within this step: the playbook's tags, `Name`,
    /// `rebuild:run-id`, `rebuild:step` and `rebuild:name`.
    pub fn tags_for(&self, name: &str) -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        tags.push((
            "Name".into(),
            format!("{}-{}-{}", self.step_id, name, self.run_id),
        ));
        tags.push((TAG_RUN_ID.into(), self.run_id.clone()));
        tags.push((TAG_STEP.into(), self.step_id.clone()));
        tags.push((TAG_NAME.into(), name.into()));
        tags
    }

    /// A value pinned by an earlier attempt of this step.
    pub fn pinned(&self, key: &str) -> Option<serde_json::Value> {
        self.pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    /// Every value pinned so far.
    pub fn pins(&self) -> Values {
        self.pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Pin a value: journaled (durably) so a resume reuses it instead of looking again.
    pub fn pin(&self, key: &str, value: serde_json::Value) -> Result<(), StepError> {
        self.journal.append(Event::StepPinned {
            step: self.step_id.clone(),
            key: key.to_string(),
            value: value.clone(),
        })?;
        self.pins
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key.to_string(), value);
        Ok(())
    }

    /// Record that a resource was created or adopted.
    pub fn resource(&self, resource_type: &str, id: &str, created: bool) -> Result<(), StepError> {
        let action = if created { "created" } else { "adopted" };
        self.journal.append(Event::StepResource {
            step: self.step_id.clone(),
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            action: action.to_string(),
        })?;
        self.progress(format!("{action} {resource_type} {id}"));
        Ok(())
    }

    /// Tell the user something (never the journal).
    pub fn progress(&self, message: impl Into<String>) {
        self.reporter.report(ReportEvent::StepProgress {
            step: self.step_id.clone(),
            message: message.into(),
        });
    }

    /// A safe point: stop here if the run is stopping; die here if a test armed the
    /// failpoint `<step>/<name>`.
    pub fn checkpoint(&self, name: &str) -> Result<(), StepError> {
        crate::failpoint::hit(&format!("{}/{}", self.step_id, name));
        if self.cancel.is_cancelled() {
            return Err(StepError::Interrupted);
        }
        Ok(())
    }

    /// Poll `check` with backoff and jitter until it is ready. The wait is journaled (so
    /// status shows a step waiting, not just started), and cancellation is honoured
    /// between polls. The step's timeout is enforced by the executor around `apply`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>, StepError>>,
    {
        let mut journaled = false;
        let mut index = 0u32;
        let mut last_status = String::new();
        loop {
            match check().await? {
                Poll::Ready(value) => return Ok(value),
                Poll::Pending(status) => {
                    if !journaled {
                        self.journal.append(Event::StepWaiting {
                            step: self.step_id.clone(),
                            waiting_for: what.to_string(),
                        })?;
                        self.reporter.report(ReportEvent::StepWaiting {
                            step: self.step_id.clone(),
                            waiting_for: what.to_string(),
                        });
                        journaled = true;
                    }
                    if status != last_status {
                        self.progress(format!("{what}: {status}"));
                        last_status = status;
                    }
                    self.checkpoint("waiting")?;
                }
            }
            let delay = self.poll.delay(index);
            index += 1;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => return Err(StepError::Interrupted),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delays_grow_with_jitter_up_to_the_cap() {
        let settings = PollSettings {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        for index in 0..12 {
            let base = Duration::from_secs(5 * 2u64.pow(index)).min(Duration::from_secs(60));
            for _ in 0..50 {
                let delay = settings.delay(index);
                assert!(
                    delay >= base.mul_f64(0.75) && delay <= base.mul_f64(1.25),
                    "poll {index}: {delay:?}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..50).map(|_| settings.delay(3).as_millis()).collect();
        assert!(spread.len() > 10, "jitter spreads concurrent pollers apart");
    }
}
