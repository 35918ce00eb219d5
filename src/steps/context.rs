//! What a step gets to work with: the run's facts ([`RunFacts`], shared and read-only),
//! its own identity and pins, cloud clients, its local folders, and the only ways it may
//! leave traces — the journal (pins, resources, waits) and progress events. It also owns
//! safe points (cancellation and failpoints) and polling waits. Everything here comes from
//! `runtime/`, `journal/`, `cloud/` and `workspace`: never from the executor or `report/`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::cloud::Cloud;
use crate::journal::requests::{Answers, NoAnswers};
use crate::journal::{
    Actor, Event, Journal, Request, ResourceAction, Values, Verdict, WaitHistory,
};
use crate::runtime::{
    AlwaysYes, Backoff, Cancel, Confirmer, Owner, Pace, QuestionClock, ReportEvent, Reporter,
    RunFacts,
};
use crate::workspace::Workspace;

use super::StepError;

pub use crate::runtime::{TAG_NAME, TAG_RUN_ID, TAG_STACK, TAG_STEP};

/// Read-only context for planning one step.
#[derive(Clone)]
pub struct PlanContext {
    /// The run being resumed, if any.
    pub run_id: Option<String>,
    /// Whose resources the step finds and adopts (the stack's).
    pub owner: Owner,
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
    pub plan_cache: Option<PathBuf>,
}

impl PlanContext {
    /// The context for planning step `step_id` of the run `facts` describes.
    pub fn new(
        facts: &RunFacts,
        step_id: &str,
        pins: Values,
        cloud: Arc<Cloud>,
        plan_cache: Option<PathBuf>,
    ) -> Self {
        Self {
            run_id: facts.run_id.clone(),
            owner: facts.owner(),
            step_id: step_id.to_string(),
            source_region: facts.source_region.clone(),
            target_region: facts.target_region.clone(),
            rpo_limit: facts.rpo_limit,
            accept_rpo: facts.accept_rpo,
            pins,
            cloud,
            plan_cache,
        }
    }
}

/// What every step of one run shares: clients, the journal, where progress goes, the stop
/// signal, who answers questions, how waits poll and the local workspace. Built once per
/// run by the executor's caller.
#[derive(Clone)]
pub struct StepServices {
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    /// The run's journal.
    pub journal: Arc<Journal>,
    /// Where progress goes.
    pub reporter: Arc<dyn Reporter>,
    /// The stop signal.
    pub cancel: Cancel,
    /// Who answers a step's questions (the DNS cutover's).
    pub confirmer: Arc<dyn Confirmer>,
    /// How waits poll: the interval they back off from when nothing is known of them, and
    /// the ceiling of every delay.
    pub poll: Backoff,
    /// How long this stack's waits took in past runs (what waits pace by).
    pub history: Arc<WaitHistory>,
    /// The run's local folders.
    pub workspace: Workspace,
    /// The answers given to the run's gates (read through the state store).
    pub answers: Arc<dyn Answers>,
}

impl StepServices {
    /// Services that answer every question yes.
    pub fn new(
        cloud: Arc<Cloud>,
        journal: Arc<Journal>,
        reporter: Arc<dyn Reporter>,
        workspace: Workspace,
    ) -> Self {
        Self {
            cloud,
            journal,
            reporter,
            cancel: Cancel::default(),
            confirmer: Arc::new(AlwaysYes),
            poll: Backoff::default(),
            history: Arc::default(),
            workspace,
            answers: Arc::new(NoAnswers),
        }
    }
}

/// Everything a step's `apply` may use.
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// Whose resources the step finds and adopts (the stack's).
    pub owner: Owner,
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
    /// Cloud clients.
    pub cloud: Arc<Cloud>,
    facts: Arc<RunFacts>,
    services: StepServices,
    planned: Values,
    pins: Mutex<Values>,
    questions: Arc<QuestionClock>,
    /// Wait key -> when an earlier attempt of this run began it (see [`Self::continuing`]).
    waits_begun: BTreeMap<String, jiff::Timestamp>,
}

/// A wait for the cloud, as [`StepContext::wait_for`] polls it.
#[derive(Debug, Clone)]
pub struct Wait {
    /// Which wait of the step: a key stable across runs (no ids or names in it), under
    /// which its duration is journaled and looked up in later runs, e.g. `cluster-active`.
    pub key: String,
    /// What it waits for, for people: `cluster `shop` to be ACTIVE`.
    pub what: String,
    /// How long it typically takes on AWS, when no past run of the stack says.
    pub typical: Option<Duration>,
}

impl Wait {
    /// Wait `key` for `what`, with no typical duration (polls back off from the run's
    /// interval until a past run gives one).
    pub fn new(key: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            what: what.into(),
            typical: None,
        }
    }

    /// With its typical duration on AWS.
    pub fn typically(mut self, typical: Duration) -> Self {
        self.typical = Some(typical);
        self
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
    /// A context for one attempt of step `step_id`: the run's facts, the run's services,
    /// the outputs its plan already knew (`planned`) and the pins of earlier attempts.
    pub fn new(
        facts: Arc<RunFacts>,
        step_id: &str,
        services: StepServices,
        planned: Values,
        pins: Values,
    ) -> Self {
        Self {
            run_id: facts.run_id.clone().unwrap_or_default(),
            owner: facts.owner(),
            step_id: step_id.to_string(),
            source_region: facts.source_region.clone(),
            target_region: facts.target_region.clone(),
            rpo_limit: facts.rpo_limit,
            accept_rpo: facts.accept_rpo,
            cloud: services.cloud.clone(),
            facts,
            services,
            planned,
            pins: Mutex::new(pins),
            questions: Arc::default(),
            waits_begun: BTreeMap::new(),
        }
    }

    /// This attempt follows one that was stopped in the middle of these waits (wait key ->
    /// when it began them): the resources kept on being made meanwhile, so each wait goes
    /// on pacing its checks from when it first began, not from now (a restore 20 minutes
    /// in is checked as one 5 minutes from its end, not as one just started).
    #[must_use]
    pub fn continuing(mut self, waits_begun: BTreeMap<String, jiff::Timestamp>) -> Self {
        self.waits_begun = waits_begun;
        self
    }

    /// The time this attempt has spent waiting for answers (not counted against the
    /// step's `timeout`).
    pub fn question_clock(&self) -> Arc<QuestionClock> {
        self.questions.clone()
    }

    /// Outputs the plan already knew for this step (e.g. a commit and its checkout).
    pub fn planned(&self) -> &Values {
        &self.planned
    }

    /// The step's own local folder (checkouts, kubeconfigs): created by the step when it
    /// needs it, never durable state.
    pub fn step_dir(&self) -> PathBuf {
        self.services.workspace.step_dir(&self.step_id)
    }

    /// Where plans keep local files such as checkouts of the commits they resolved (see
    /// [`PlanContext::plan_cache`]).
    pub fn plan_cache(&self) -> Option<&Path> {
        self.services.workspace.plan_cache()
    }

    /// This program, for commands written into files (a kubeconfig's token command).
    pub fn program(&self) -> &Path {
        self.services.workspace.program()
    }

    /// Ask before a change that needs its own consent. A "no" refuses the step (nothing
    /// changed; `rebuild resume` asks again); a stop signal while waiting interrupts it.
    pub async fn confirm(&self, question: String) -> Result<(), StepError> {
        self.checkpoint("confirm")?;
        let confirmer = self.services.confirmer.clone();
        let asked = question.clone();
        let asking = self.questions.ask();
        let answer = tokio::task::spawn_blocking(move || confirmer.ask(&asked));
        let yes = tokio::select! {
            answer = answer => answer.unwrap_or(false),
            () = self.services.cancel.cancelled() => return Err(StepError::Interrupted),
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

    /// Journal that this gate waits for an answer to round `round` of its question (status
    /// shows it waiting, with the message), and report it.
    pub fn approval_requested(
        &self,
        round: u32,
        message: &str,
        approvers: &[String],
        deadline: jiff::Timestamp,
        on_timeout: Verdict,
    ) -> Result<(), StepError> {
        self.services.journal.append(Event::ApprovalRequested {
            step: self.step_id.clone(),
            round,
            message: message.to_string(),
            approvers: approvers.to_vec(),
            deadline,
            on_timeout,
        })?;
        self.services.reporter.report(ReportEvent::StepWaiting {
            step: self.step_id.clone(),
            waiting_for: format!(
                "approval: {message} (`rebuild approve {run} --step {step}` or `rebuild reject {run} --step {step}`; {default} at {deadline})",
                run = self.run_id,
                step = self.step_id,
                default = on_timeout.as_str(),
                deadline = deadline.strftime("%H:%M:%S UTC"),
            ),
        });
        Ok(())
    }

    /// The answers given to the run's gates so far.
    pub fn answers(&self) -> Result<Vec<Request>, StepError> {
        Ok(self.services.answers.answers()?)
    }

    /// Journal how this gate's round `round` was decided (`by` `None`: its timeout), and
    /// report it.
    pub fn approval_decided(
        &self,
        round: u32,
        verdict: Verdict,
        by: Option<Actor>,
        reason: Option<String>,
    ) -> Result<(), StepError> {
        let who = by
            .as_ref()
            .map_or_else(|| "its timeout".to_string(), |by| format!("{by}"));
        self.services.journal.append(Event::ApprovalDecided {
            step: self.step_id.clone(),
            round,
            verdict,
            by,
            reason,
        })?;
        self.progress(format!("{} by {who}", verdict.past_tense()));
        Ok(())
    }

    /// Tags for a resource named `name` within this step: the playbook's tags, `Name`,
    /// `rebuild:run-id`, `rebuild:step` and `rebuild:name`.
    pub fn tags_for(&self, name: &str) -> Vec<(String, String)> {
        self.facts.tags_for(&self.step_id, name)
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
        self.services.journal.append(Event::StepPinned {
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
    pub fn resource(
        &self,
        resource_type: &str,
        id: &str,
        action: ResourceAction,
    ) -> Result<(), StepError> {
        self.services.journal.append(Event::StepResource {
            step: self.step_id.clone(),
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            action,
        })?;
        self.progress(format!("{} {resource_type} {id}", action.as_str()));
        Ok(())
    }

    /// Tell the user something (never the journal).
    pub fn progress(&self, message: impl Into<String>) {
        self.services.reporter.report(ReportEvent::StepProgress {
            step: self.step_id.clone(),
            message: message.into(),
        });
    }

    /// A safe point: stop here if the run is stopping; die here if a test armed the
    /// failpoint `<step>/<name>`.
    pub fn checkpoint(&self, name: &str) -> Result<(), StepError> {
        crate::failpoint::hit(&format!("{}/{}", self.step_id, name));
        if self.services.cancel.is_cancelled() {
            return Err(StepError::Interrupted);
        }
        Ok(())
    }

    /// How waits poll (the run's interval): steps that pace their own retries scale from it.
    pub fn poll(&self) -> Backoff {
        self.services.poll
    }

    /// Pause for `duration`; a stop signal cuts the pause short and interrupts the step.
    pub async fn sleep(&self, duration: Duration) -> Result<(), StepError> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.services.cancel.cancelled() => Err(StepError::Interrupted),
        }
    }

    /// Poll `check` until it is ready, paced by how long `wait` is expected to take (this
    /// stack's past runs of the step, else the kind's typical duration; see [`Pace`]). The
    /// wait is journaled when it begins (so status shows a step waiting, not just started)
    /// and when it ends, with how long it took and how many checks it made (what later
    /// runs pace by). Cancellation is honoured between checks; the step's timeout is
    /// enforced by the executor around `apply`.
    pub async fn wait_for<T, F, Fut>(&self, wait: Wait, mut check: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>, StepError>>,
    {
        self.wait_watching(wait, &Notify::new(), |_| check()).await
    }

    /// [`wait_for`](Self::wait_for), also checking at once whenever `changed` is notified
    /// (a watch saw what is waited for change): `check` is told whether its pace came
    /// round ([`Wake::Paced`], also the first check) or a change woke it
    /// ([`Wake::Changed`]), so it can judge from what the watch saw without asking again.
    /// The pace goes on as for any wait: a watch that breaks or misses a change leaves a
    /// wait that still ends, only later. Notifications are not lost between checks (a
    /// change while a check runs wakes the next pause at once).
    pub async fn wait_watching<T, F, Fut>(
        &self,
        wait: Wait,
        changed: &Notify,
        mut check: F,
    ) -> Result<T, StepError>
    where
        F: FnMut(Wake) -> Fut,
        Fut: Future<Output = Result<Poll<T>, StepError>>,
    {
        let expected = self
            .services
            .history
            .expected(&self.step_id, &wait.key)
            .or(wait.typical);
        let pace = Pace::new(expected, self.services.poll);
        // The runtime's clock, as the pauses between checks are measured by it; a wait an
        // earlier attempt began counts the time since then (by the journal's clock).
        let started = tokio::time::Instant::now();
        let began_before = self.waits_begun.get(&wait.key);
        let before = began_before
            .and_then(|began| {
                Duration::try_from(jiff::Timestamp::now().duration_since(*began)).ok()
            })
            .unwrap_or_default();
        let elapsed = || started.elapsed() + before;
        let mut journaled = false;
        let mut checks = 0u32;
        let mut last_status = String::new();
        let mut wake = Wake::Paced;
        loop {
            // What later runs read as the wait's cost: the checks that asked the cloud.
            if wake == Wake::Paced {
                checks += 1;
            }
            match check(wake).await? {
                Poll::Ready(value) => {
                    // Also when a wait begun before is over at its first check here: what
                    // it took is what later runs pace by.
                    if journaled || began_before.is_some() {
                        let waited = elapsed();
                        self.services.journal.append(Event::StepWaited {
                            step: self.step_id.clone(),
                            wait: wait.key.clone(),
                            waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                            polls: checks,
                        })?;
                    }
                    return Ok(value);
                }
                Poll::Pending(status) => {
                    if !journaled {
                        self.services.journal.append(Event::StepWaiting {
                            step: self.step_id.clone(),
                            waiting_for: wait.what.clone(),
                            wait: Some(wait.key.clone()),
                        })?;
                        self.services.reporter.report(ReportEvent::StepWaiting {
                            step: self.step_id.clone(),
                            waiting_for: wait.what.clone(),
                        });
                        journaled = true;
                    }
                    if status != last_status {
                        self.progress(format!("{}: {status}", wait.what));
                        last_status = status;
                    }
                    self.checkpoint("waiting")?;
                }
            }
            let delay = pace.delay(elapsed(), checks);
            wake = tokio::select! {
                () = tokio::time::sleep(delay) => Wake::Paced,
                () = changed.notified() => Wake::Changed,
                () = self.services.cancel.cancelled() => return Err(StepError::Interrupted),
            };
        }
    }
}

/// Why a watched wait checks (see [`StepContext::wait_watching`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Its pace came round (or it is the first check): ask the cloud.
    Paced,
    /// A watch saw a change: judge from what it saw.
    Changed,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::journal::store::{self, MemorySink};
    use crate::runtime::SilentReporter;
    use crate::stack::Stack;

    /// A step context whose services journal into `sink` and pace waits by `history`.
    fn context(sink: &MemorySink, history: WaitHistory) -> StepContext {
        let journal = Arc::new(Journal::with_sink(
            Path::new("mem"),
            Box::new(sink.clone()),
            1,
        ));
        let mut services = StepServices::new(
            Arc::new(Cloud::from_config(aws_types::SdkConfig::builder().build())),
            journal,
            Arc::new(SilentReporter),
            Workspace::new(std::env::temp_dir(), None, "rebuild".into()),
        );
        services.history = Arc::new(history);
        let facts = RunFacts {
            run_id: Some("r1".into()),
            playbook_name: "t".into(),
            stack: "t@ap-southeast-1".into(),
            owned_by: crate::stack::OwnedBy::Stack,
            source_region: "ap-southeast-2".into(),
            target_region: "ap-southeast-1".into(),
            rpo_limit: None,
            accept_rpo: false,
            tags: Default::default(),
        };
        StepContext::new(
            Arc::new(facts),
            "cluster",
            services,
            Values::new(),
            Values::new(),
        )
    }

    /// Wait for a resource that is ready `ready` after the first check; how long the wait
    /// took (virtual time) and what it journaled.
    async fn wait(context: &StepContext, ready: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        let wait = Wait::new("cluster-active", "the cluster").typically(Duration::from_secs(720));
        context
            .wait_for(wait, || async move {
                Ok(if started.elapsed() >= ready {
                    Poll::Ready(())
                } else {
                    Poll::Pending("CREATING".into())
                })
            })
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        started.elapsed()
    }

    /// The history of a stack whose earlier run's cluster took `took`.
    fn history(took: Duration) -> WaitHistory {
        let sink = MemorySink::default();
        let journal = Journal::with_sink(Path::new("mem"), Box::new(sink.clone()), 1);
        let mut start = Event::test_start("r0", "t");
        if let Event::RunStarted { stack, .. } = &mut start {
            *stack = Some("t@ap-southeast-1".into());
        }
        for event in [
            start,
            Event::StepWaited {
                step: "cluster".into(),
                wait: "cluster-active".into(),
                waited_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                polls: 9,
            },
        ] {
            journal
                .append(event)
                .unwrap_or_else(|error| panic!("{error}"));
        }
        let records = store::parse(Path::new("mem"), &sink.text())
            .unwrap_or_else(|error| panic!("{error}"))
            .records;
        let state = crate::journal::state::fold(&records).unwrap_or_else(|error| panic!("{error}"));
        WaitHistory::of([&state], &Stack::journaled("t@ap-southeast-1"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_wait_paces_from_when_its_first_attempt_began_it() {
        // A 12-minute cluster, its wait begun 700 s ago by a process that was killed: it is
        // ready 20 s into this attempt's wait.
        let began = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(700);
        let sink = MemorySink::default();
        let resumed = context(&sink, WaitHistory::default())
            .continuing(BTreeMap::from([("cluster-active".to_string(), began)]));
        let took = wait(&resumed, Duration::from_secs(20)).await;
        // Near its expected end, checks come every 3.6 s (a two-hundredth of 12 minutes).
        assert!(took <= Duration::from_secs(28), "{took:?}");
        let records = store::parse(Path::new("mem"), &sink.text())
            .unwrap_or_else(|error| panic!("{error}"))
            .records;
        let waited = records.iter().find_map(|record| match &record.event {
            Event::StepWaited { waited_ms, .. } => Some(*waited_ms),
            _ => None,
        });
        // What it took from its first check, the killed attempt's included.
        assert!(waited.is_some_and(|ms| ms >= 720_000), "{waited:?}");
        // The same wait begun now is paced as one just started: its next check comes an
        // eighth of 12 minutes later, held to the run's ceiling of a minute (±10 %).
        let fresh = wait(
            &context(&MemorySink::default(), WaitHistory::default()),
            Duration::from_secs(20),
        )
        .await;
        assert!(fresh >= Duration::from_secs(50), "{fresh:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watched_wait_ends_when_the_change_comes_and_counts_only_the_checks_that_asked() {
        // A 12-minute cluster that a watch sees ready 20 s in: noticed then, not at the
        // pace's next check (an eighth of 12 minutes, held to the run's ceiling of a minute).
        let sink = MemorySink::default();
        let context = context(&sink, WaitHistory::default());
        let changed = Arc::new(Notify::new());
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watch = tokio::spawn({
            let (changed, ready) = (changed.clone(), ready.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                ready.store(true, std::sync::atomic::Ordering::SeqCst);
                changed.notify_one();
            }
        });
        let started = tokio::time::Instant::now();
        let wakes = Mutex::new(Vec::new());
        let wait = Wait::new("cluster-active", "the cluster").typically(Duration::from_secs(720));
        context
            .wait_watching(wait, &changed, |wake| {
                wakes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(wake);
                let ready = ready.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    Ok(if ready {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("CREATING".into())
                    })
                }
            })
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        watch.await.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        let wakes = wakes
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(wakes, [Wake::Paced, Wake::Changed]);
        let records = store::parse(Path::new("mem"), &sink.text())
            .unwrap_or_else(|error| panic!("{error}"))
            .records;
        let polls = records.iter().find_map(|record| match &record.event {
            Event::StepWaited { polls, .. } => Some(*polls),
            _ => None,
        });
        // The check the watch woke asked nothing of the cloud.
        assert_eq!(polls, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_paces_by_the_stacks_past_run_and_journals_what_it_took() {
        // The earlier run's cluster took 3 s: this one (also 3 s) is noticed at once.
        let sink = MemorySink::default();
        let took = wait(
            &context(&sink, history(Duration::from_secs(3))),
            Duration::from_secs(3),
        )
        .await;
        assert!(
            took >= Duration::from_secs(3) && took <= Duration::from_millis(3_100),
            "{took:?}"
        );
        let records = store::parse(Path::new("mem"), &sink.text())
            .unwrap_or_else(|error| panic!("{error}"))
            .records;
        let waited: Vec<(String, u64, u32)> = records
            .iter()
            .filter_map(|record| match &record.event {
                Event::StepWaited {
                    wait,
                    waited_ms,
                    polls,
                    ..
                } => Some((wait.clone(), *waited_ms, *polls)),
                _ => None,
            })
            .collect();
        assert_eq!(waited.len(), 1, "{waited:?}");
        assert_eq!(waited[0].0, "cluster-active");
        assert!((3_000..=3_100).contains(&waited[0].1), "{waited:?}");
        assert!(waited[0].2 <= 16, "{waited:?}");

        // Without history, the kind's 12 minutes: the first pause is the run's ceiling.
        let sink = MemorySink::default();
        let took = wait(
            &context(&sink, WaitHistory::default()),
            Duration::from_secs(3),
        )
        .await;
        assert!(took >= Duration::from_secs(50), "{took:?}");

        // Ready at the first check: nothing journaled (an adopted resource).
        let sink = MemorySink::default();
        wait(&context(&sink, WaitHistory::default()), Duration::ZERO).await;
        assert!(!sink.text().contains("step_waited"), "{}", sink.text());
    }
}
