//! Executor tests with injected step kinds and an in-memory journal: no cloud is contacted.
//! Time is paused, so waits and backoffs run instantly and deterministically.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::Executor;
use crate::cloud::{Cloud, CloudError};
use crate::journal::store::{self, MemorySink};
use crate::journal::{Event, Journal, Outcome, RunState, StepStatus, Values, state};
use crate::playbook::{self, KindSpec, ParamSpec, Playbook};
use crate::runtime::{AlwaysYes, Backoff, Cancel, SilentReporter};
use crate::secret::{Redactor, Secret};
use crate::steps::context::{Poll, Wait};
use crate::steps::{
    Action, PlanContext, Step, StepContext, StepError, StepKinds, StepPlan, StepServices,
};

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "value",
    required: false,
    help: "",
}];

static OK: KindSpec = KindSpec {
    kind: "test.ok",
    summary: "",
    parameters: PARAMS,
    outputs: &["value"],
};
static FLAKY: KindSpec = KindSpec {
    kind: "test.flaky",
    summary: "",
    parameters: PARAMS,
    outputs: &["value"],
};
static BROKEN: KindSpec = KindSpec {
    kind: "test.broken",
    summary: "",
    parameters: PARAMS,
    outputs: &["value"],
};
static HANG: KindSpec = KindSpec {
    kind: "test.hang",
    summary: "",
    parameters: PARAMS,
    outputs: &["value"],
};

#[derive(Default)]
struct Counters {
    calls: AtomicU32,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

/// A configurable fake step kind; outputs echo its `value` parameter.
struct Fake {
    spec: &'static KindSpec,
    /// How many calls fail before one succeeds (`u32::MAX`: always).
    failures: u32,
    retryable: bool,
    counters: Arc<Counters>,
}

#[async_trait]
impl Step for Fake {
    fn spec(&self) -> &'static KindSpec {
        self.spec
    }

    async fn plan(&self, _: &PlanContext, _: &serde_json::Value) -> Result<StepPlan, StepError> {
        Ok(StepPlan::new(Action::Create, "fake"))
    }

    async fn apply(
        &self,
        context: &StepContext,
        params: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let call = self.counters.calls.fetch_add(1, Ordering::SeqCst);
        let active = self.counters.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.counters.max_active.fetch_max(active, Ordering::SeqCst);
        let value = params
            .get("value")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let result = self.behave(context, call, value).await;
        self.counters.active.fetch_sub(1, Ordering::SeqCst);
        result?;
        Ok(Values::from([(
            "value".to_string(),
            params.get("value").cloned().unwrap_or(json!(null)),
        )]))
    }
}

impl Fake {
    async fn behave(&self, context: &StepContext, call: u32, value: &str) -> Result<(), StepError> {
        if self.spec.kind == "test.hang" {
            return context
                .wait_for(Wait::new("never", "something that never comes"), || async {
                    Ok(Poll::<()>::Pending("pending".into()))
                })
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if call < self.failures {
            return Err(StepError::Cloud(CloudError {
                operation: "CreateThing".into(),
                resource: Some("thing-1".into()),
                code: Some(
                    if self.retryable {
                        "Throttling"
                    } else {
                        "InvalidParameterValue"
                    }
                    .into(),
                ),
                message: format!("nope: {value}"),
                status: Some(400),
                retryable: self.retryable,
                missing_credentials: false,
            }));
        }
        Ok(())
    }
}

struct Harness {
    kinds: StepKinds,
    counters: Vec<(&'static str, Arc<Counters>)>,
    keep_going: bool,
}

impl Harness {
    fn new(flaky_failures: u32, broken_retryable: bool) -> Self {
        let mut counters = Vec::new();
        let mut kinds: Vec<Arc<dyn Step>> = Vec::new();
        for (spec, failures, retryable) in [
            (&OK, 0, false),
            (&FLAKY, flaky_failures, true),
            (&BROKEN, u32::MAX, broken_retryable),
            (&HANG, 0, false),
        ] {
            let shared = Arc::new(Counters::default());
            counters.push((spec.kind, shared.clone()));
            kinds.push(Arc::new(Fake {
                spec,
                failures,
                retryable,
                counters: shared,
            }));
        }
        Self {
            kinds: StepKinds::new(kinds),
            counters,
            keep_going: false,
        }
    }

    fn counters(&self, kind: &str) -> &Counters {
        &self
            .counters
            .iter()
            .find(|(name, _)| *name == kind)
            .unwrap()
            .1
    }

    fn playbook(&self, steps: &str) -> Playbook {
        let text = format!("name: t\nsource_region: ap-southeast-2\nsteps:\n{steps}");
        playbook::from_str(Path::new("t.yaml"), &text, &self.kinds.specs()).unwrap()
    }

    /// Run `playbook` after the journal text `earlier` (a new run when empty); returns the
    /// result and the state folded from everything journaled.
    async fn run(
        &self,
        playbook: Playbook,
        parallelism: usize,
        cancel: Cancel,
        earlier: &str,
    ) -> (super::RunResult, RunState) {
        let sink = MemorySink::default();
        let loaded = store::parse(Path::new("mem"), earlier).unwrap();
        let next = loaded.records.len() as u64 + 1;
        let journal = Arc::new(
            Journal::with_sink(Path::new("mem"), Box::new(sink.clone()), next)
                .redacting(Redactor::new([Secret::new("hunter2")])),
        );
        // Replay earlier lines so the final fold sees the whole run.
        let mut records = loaded.records;
        if records.is_empty() {
            records.push(journal.append(header()).unwrap());
        }
        let state = state::fold(&records).unwrap();
        let plan = crate::plan::skeleton(
            &playbook,
            "ap-southeast-1",
            &crate::stack::Stack::default_for("t", "ap-southeast-1"),
            Some(&state),
            &crate::plan::amend::Requested::default(),
        );
        let facts = crate::runtime::RunFacts {
            run_id: Some("r1".into()),
            playbook_name: playbook.name.clone(),
            stack: "t@ap-southeast-1".into(),
            owned_by: crate::stack::OwnedBy::Stack,
            source_region: playbook.source_region.value.clone(),
            target_region: "ap-southeast-1".into(),
            rpo_limit: playbook.rpo_limit,
            accept_rpo: false,
            tags: playbook.tags.clone(),
        };
        let services = StepServices {
            cloud: Arc::new(Cloud::from_config(aws_types::SdkConfig::builder().build())),
            journal,
            reporter: Arc::new(SilentReporter),
            cancel,
            confirmer: Arc::new(AlwaysYes),
            poll: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(5),
            },
            history: Arc::default(),
            workspace: crate::workspace::Workspace::new(
                std::env::temp_dir(),
                None,
                "rebuild".into(),
            ),
            answers: Arc::new(crate::journal::requests::NoAnswers),
        };
        let executor = Executor::new(
            Arc::new(facts),
            services,
            Arc::new(self.kinds.clone()),
            Values::new(),
            Redactor::new([Secret::new("hunter2")]),
            parallelism,
        )
        .keep_going(self.keep_going);
        let result = executor.run(&plan).await;
        let all = format!("{earlier}{}", sink.text());
        let records = store::parse(Path::new("mem"), &all).unwrap().records;
        (result, state::fold(&records).unwrap())
    }
}

fn header() -> Event {
    Event::test_start("r1", "t")
}

fn status(state: &RunState, id: &str) -> Option<StepStatus> {
    state.step(id).map(|step| step.status)
}

const FOUR_INDEPENDENT: &str = "  - {id: a, kind: test.ok}\n  - {id: b, kind: test.ok}\n  - {id: c, kind: test.ok}\n  - {id: d, kind: test.ok}\n";

#[tokio::test(start_paused = true)]
async fn ready_steps_run_concurrently_up_to_the_parallelism_limit() {
    for (limit, expected) in [(1, 1), (2, 2), (8, 4)] {
        let harness = Harness::new(0, false);
        let (result, state) = harness
            .run(
                harness.playbook(FOUR_INDEPENDENT),
                limit,
                Cancel::default(),
                "",
            )
            .await;
        assert_eq!(result.outcome, Outcome::Succeeded);
        assert_eq!(
            harness
                .counters("test.ok")
                .max_active
                .load(Ordering::SeqCst),
            expected,
            "limit {limit}"
        );
        assert!(
            ["a", "b", "c", "d"]
                .iter()
                .all(|id| status(&state, id) == Some(StepStatus::Succeeded))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn needs_order_the_steps_and_outputs_flow_into_parameters() {
    let harness = Harness::new(0, false);
    let playbook = harness.playbook(
        "  - {id: second, kind: test.ok, needs: [first], with: {value: 'got-${steps.first.value}'}}\n  - {id: first, kind: test.ok, with: {value: one}}\n",
    );
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(
        harness
            .counters("test.ok")
            .max_active
            .load(Ordering::SeqCst),
        1
    );
    assert_eq!(
        state.step("second").unwrap().outputs["value"],
        json!("got-one")
    );
    let first = state.step("first").unwrap();
    let second = state.step("second").unwrap();
    assert!(first.ended.unwrap() <= second.first_started.unwrap());
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_within_the_policy() {
    let harness = Harness::new(2, false);
    let playbook =
        harness.playbook("  - {id: a, kind: test.flaky, retry: {attempts: 3, backoff: 5s}}\n");
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(state.step("a").unwrap().attempts, 3);

    let harness = Harness::new(5, false);
    let playbook =
        harness.playbook("  - {id: a, kind: test.flaky, retry: {attempts: 3, backoff: 5s}}\n");
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(
        state.step("a").unwrap().attempts,
        3,
        "gives up after the policy's attempts"
    );
    assert!(
        result.failures[0]
            .message
            .contains("`CreateThing` on `thing-1` failed (Throttling, HTTP 400)")
    );
}

#[tokio::test(start_paused = true)]
async fn errors_the_cloud_does_not_mark_retryable_are_not_retried() {
    let harness = Harness::new(0, false);
    let playbook = harness.playbook(
        "  - {id: a, kind: test.broken, retry: 5}\n  - {id: after, kind: test.ok, needs: [a]}\n",
    );
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(
        harness.counters("test.broken").calls.load(Ordering::SeqCst),
        1
    );
    assert_eq!(status(&state, "a"), Some(StepStatus::Failed));
    assert_eq!(
        status(&state, "after"),
        None,
        "nothing new is scheduled after a failure"
    );
    assert_eq!(result.failures[0].step, "a");
}

#[tokio::test(start_paused = true)]
async fn a_failure_stops_running_steps_at_their_next_safe_point() {
    let harness = Harness::new(0, false);
    let playbook = harness.playbook(
        "  - {id: waits, kind: test.hang}\n  - {id: fails, kind: test.broken, retry: 1}\n",
    );
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(status(&state, "fails"), Some(StepStatus::Failed));
    assert_eq!(status(&state, "waits"), Some(StepStatus::Interrupted));
    assert!(
        state
            .step("waits")
            .unwrap()
            .last_error
            .as_deref()
            .unwrap()
            .contains("step `fails` failed")
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_fails_with_the_timeout() {
    let harness = Harness::new(0, false);
    let playbook = harness.playbook("  - {id: slow, kind: test.hang, timeout: 90s, retry: 2}\n");
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(
        state.step("slow").unwrap().attempts,
        2,
        "a timeout counts as retryable"
    );
    assert_eq!(result.failures[0].message, "timed out after 1m30s");
}

#[tokio::test(start_paused = true)]
async fn a_signal_interrupts_the_run_and_journals_it() {
    let harness = Harness::new(0, false);
    let cancel = Cancel::default();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        stopper.cancel("interrupted by SIGTERM");
    });
    let playbook = harness.playbook(
        "  - {id: waits, kind: test.hang}\n  - {id: later, kind: test.ok, needs: [waits]}\n",
    );
    let (result, state) = harness.run(playbook, 4, cancel, "").await;
    assert_eq!(result.outcome, Outcome::Interrupted);
    assert_eq!(state.outcome, Some(Outcome::Interrupted));
    assert_eq!(status(&state, "waits"), Some(StepStatus::Interrupted));
    assert_eq!(status(&state, "later"), None);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_skips_succeeded_steps_and_reuses_their_outputs() {
    let harness = Harness::new(0, false);
    let steps = "  - {id: first, kind: test.ok, with: {value: fresh}}\n  - {id: second, kind: test.ok, needs: [first], with: {value: '${steps.first.value}'}}\n";
    // A journal where `first` succeeded (with output `pinned`) and `second` was in flight.
    let sink = MemorySink::default();
    let journal = Journal::with_sink(Path::new("mem"), Box::new(sink.clone()), 1);
    journal.append(header()).unwrap();
    journal
        .append(Event::StepStarted {
            step: "first".into(),
            attempt: 1,
        })
        .unwrap();
    journal
        .append(Event::StepSucceeded {
            step: "first".into(),
            attempt: 1,
            outputs: Values::from([("value".into(), json!("pinned"))]),
        })
        .unwrap();
    journal
        .append(Event::StepStarted {
            step: "second".into(),
            attempt: 1,
        })
        .unwrap();
    let (result, state) = harness
        .run(harness.playbook(steps), 4, Cancel::default(), &sink.text())
        .await;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(
        harness.counters("test.ok").calls.load(Ordering::SeqCst),
        1,
        "only `second` ran"
    );
    assert_eq!(
        state.step("second").unwrap().attempts,
        2,
        "the in-flight attempt counts"
    );
    assert_eq!(
        state.step("second").unwrap().outputs["value"],
        json!("pinned")
    );
}

#[tokio::test(start_paused = true)]
async fn secret_values_never_reach_the_journal_or_the_error() {
    let harness = Harness::new(0, false);
    let playbook = harness
        .playbook("  - {id: leaky, kind: test.broken, retry: 1, with: {value: 'pw=hunter2'}}\n");
    let (result, state) = harness.run(playbook, 4, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result.failures[0].message.contains("pw=<redacted>"),
        "{}",
        result.failures[0].message
    );
    let journaled = state.step("leaky").unwrap().last_error.clone().unwrap();
    assert!(
        !journaled.contains("hunter2") && journaled.contains("<redacted>"),
        "{journaled}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_spent_waiting_for_an_answer_does_not_count_against_the_timeout() {
    use crate::runtime::QuestionClock;
    let limit = Duration::from_secs(90);
    // Asks, waits ten minutes for the answer, then works for `work`.
    let asking_then_working = |clock: Arc<QuestionClock>, work: Duration| async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let asking = clock.ask();
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(asking);
        tokio::time::sleep(work).await;
        Ok(Values::from([("done".to_string(), json!(true))]))
    };

    let clock = Arc::new(QuestionClock::default());
    let within = super::timeout::within(
        limit,
        &clock,
        asking_then_working(clock.clone(), Duration::from_secs(60)),
    );
    let outputs = within.await.expect("20 s + 60 s of work fit in 90 s");
    assert_eq!(outputs["done"], true);
    assert_eq!(clock.waited(), Duration::from_secs(600));
    assert!(!clock.asking());

    // The work around the question still counts: 20 s + 80 s is past 90 s.
    let clock = Arc::new(QuestionClock::default());
    let started = tokio::time::Instant::now();
    let within = super::timeout::within(
        limit,
        &clock,
        asking_then_working(clock.clone(), Duration::from_secs(80)),
    );
    assert!(matches!(within.await, Err(StepError::Timeout(l)) if l == limit));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(690),
        "timed out at 20 + 600 + 70 s"
    );

    // Without a question it is a plain timeout.
    let clock = QuestionClock::default();
    let started = tokio::time::Instant::now();
    let within = super::timeout::within(limit, &clock, async {
        tokio::time::sleep(Duration::from_secs(100)).await;
        Ok(Values::new())
    });
    assert!(matches!(within.await, Err(StepError::Timeout(_))));
    assert_eq!(started.elapsed(), limit);
}

#[tokio::test(start_paused = true)]
async fn with_keep_going_a_failure_holds_back_only_its_dependants() {
    let mut harness = Harness::new(0, false);
    harness.keep_going = true;
    let playbook = harness.playbook(
        "  - {id: fails, kind: test.broken}\n  - {id: after, kind: test.ok, needs: [fails]}\n  - {id: slow, kind: test.ok}\n  - {id: later, kind: test.ok, needs: [slow]}\n  - {id: also, kind: test.broken, needs: [slow]}\n",
    );
    let (result, state) = harness.run(playbook, 1, Cancel::default(), "").await;
    assert_eq!(result.outcome, Outcome::Failed);
    let failed: Vec<&str> = result.failures.iter().map(|f| f.step.as_str()).collect();
    assert_eq!(failed, ["fails", "also"], "every failed step is listed");
    assert_eq!(status(&state, "slow"), Some(StepStatus::Succeeded));
    assert_eq!(status(&state, "later"), Some(StepStatus::Succeeded));
    assert_eq!(status(&state, "after"), None, "a dependant never starts");
    assert_eq!(state.outcome, Some(Outcome::Failed));
}

#[tokio::test(start_paused = true)]
async fn a_skipped_step_is_passed_with_its_given_outputs_and_a_retried_one_runs_again() {
    let harness = Harness::new(0, false);
    let playbook = harness.playbook(
        "  - {id: broken, kind: test.broken}\n  - {id: uses, kind: test.ok, needs: [broken], with: {value: '${steps.broken.value}'}}\n  - {id: smoke, kind: test.ok, with: {value: s}}\n",
    );
    let (_, _) = harness
        .run(playbook.clone(), 4, Cancel::default(), "")
        .await;
    // The journal of a run whose `broken` failed and `smoke` succeeded, then marked.
    let by = crate::journal::Actor {
        user: "ana".into(),
        host: "h".into(),
        ..crate::journal::Actor::default()
    };
    let earlier: String = [
        header(),
        Event::StepStarted {
            step: "broken".into(),
            attempt: 1,
        },
        Event::StepFailed {
            step: "broken".into(),
            attempt: 1,
            error: "boom".into(),
            retryable: false,
            will_retry: false,
        },
        Event::StepStarted {
            step: "smoke".into(),
            attempt: 1,
        },
        Event::StepSucceeded {
            step: "smoke".into(),
            attempt: 1,
            outputs: Values::new(),
        },
        Event::RunFinished {
            outcome: Outcome::Failed,
        },
        Event::StepSkipped {
            step: "broken".into(),
            by: by.clone(),
            reason: None,
            outputs: Values::from([("value".to_string(), json!("given"))]),
        },
        Event::StepRetryRequested {
            step: "smoke".into(),
            by,
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(index, event)| {
        let record = crate::journal::Record {
            v: crate::journal::record::SCHEMA_VERSION,
            seq: index as u64 + 1,
            at: jiff::Timestamp::UNIX_EPOCH,
            event,
        };
        format!("{}\n", crate::journal::record::encode(&record).unwrap())
    })
    .collect();
    let harness = Harness::new(0, false);
    let (result, state) = harness.run(playbook, 4, Cancel::default(), &earlier).await;
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(
        harness.counters("test.broken").calls.load(Ordering::SeqCst),
        0
    );
    assert_eq!(status(&state, "broken"), Some(StepStatus::Skipped));
    assert_eq!(state.step("uses").unwrap().outputs["value"], json!("given"));
    let smoke = state.step("smoke").unwrap();
    assert_eq!(
        (smoke.status, smoke.attempts),
        (StepStatus::Succeeded, 2),
        "attempt N+1"
    );
}
