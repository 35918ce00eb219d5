//! `gate.approval`: the run stops at this step until someone approves or rejects it
//! (`rebuild approve`, `rebuild reject`, from any process that reaches the run's state), or
//! its `timeout` passes and its `default` is taken. In order, `apply`:
//!
//! 1. takes up the open question of an earlier attempt (same round, same deadline: pinned
//!    as `approval`), or asks anew — round *n + 1* once round *n* was decided, so a gate
//!    run again (after a rejection, or by `rebuild retry`) needs a new answer — and
//!    journals `approval_requested` (status shows the gate waiting, with its message);
//! 2. reads the answers to the run's gates through the state store until one for this
//!    round comes from an allowed approver, or the deadline passes ([`decide`], pure);
//! 3. journals `approval_decided` (who, or the timeout), pins `decided_round`, and
//!    succeeds on approval or fails with [`StepError::Rejected`].
//!
//! The gate never asks the terminal and `--yes` does not answer it: a gate exists to stop
//! automation.

use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::journal::{Actor, Request, Values, Verdict};
use crate::playbook::{KindSpec, ParamSpec, duration};
use crate::steps::interface;
use crate::steps::{Action, PlanContext, Step, StepContext, StepError, StepPlan};

static SPEC: KindSpec = KindSpec {
    kind: "gate.approval",
    summary: "stop the run until someone approves or rejects it (`rebuild approve` / `rebuild reject`), or the timeout takes the default",
    parameters: &[
        ParamSpec {
            name: "message",
            required: true,
            help: "what approvers are shown (in `rebuild status` and the progress display)",
        },
        ParamSpec {
            name: "timeout",
            required: true,
            help: "how long to wait for an answer, e.g. `30m`; measured from the first time the gate asks, kept across resumes",
        },
        ParamSpec {
            name: "default",
            required: true,
            help: "`approve` or `reject`: the decision taken when the timeout passes",
        },
        ParamSpec {
            name: "approvers",
            required: false,
            help: "user names allowed to answer (default: anyone who can reach the state); others are refused",
        },
    ],
    outputs: &["decision", "decided_by", "round"],
};

/// The `gate.approval` step kind.
pub(crate) struct GateApproval;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    message: String,
    #[serde(deserialize_with = "duration::optional")]
    timeout: Option<Duration>,
    default: Verdict,
    #[serde(default)]
    approvers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    /// `approve` (a rejection fails the step).
    decision: Verdict,
    /// `USER@HOST`, or `timeout` when the default was taken.
    decided_by: String,
    /// Which time the gate asked.
    round: u32,
}

/// The question pinned when it is asked, so a resume waits on the same one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Asked {
    round: u32,
    deadline: Timestamp,
}

/// The gate's pins.
#[derive(Debug, Default, Deserialize)]
struct Pins {
    approval: Option<Asked>,
    decided_round: Option<u32>,
}

/// How a round was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decided {
    /// Approve or reject.
    pub(crate) verdict: Verdict,
    /// Who (`None`: the timeout took the default).
    pub(crate) by: Option<Actor>,
    /// Why, when given.
    pub(crate) reason: Option<String>,
}

/// What the gate decides now: the first answer to round `round` of gate `step` from an
/// allowed approver (anyone when `approvers` is empty), else the default once `now` has
/// reached `deadline`, else nothing yet.
pub(crate) fn decide(
    answers: &[Request],
    step: &str,
    round: u32,
    approvers: &[String],
    now: Timestamp,
    deadline: Timestamp,
    on_timeout: Verdict,
) -> Option<Decided> {
    let answered = answers.iter().find(|answer| {
        answer.step == step
            && answer.round == round
            && (approvers.is_empty() || approvers.contains(&answer.by.user))
    });
    match answered {
        Some(answer) => Some(Decided {
            verdict: answer.verdict,
            by: Some(answer.by.clone()),
            reason: answer.reason.clone(),
        }),
        None if now >= deadline => Some(Decided {
            verdict: on_timeout,
            by: None,
            reason: Some("no answer before the timeout; the gate's default was taken".into()),
        }),
        None => None,
    }
}

/// The question to wait on: the open one pinned by an earlier attempt, or a new round.
fn question(pins: &Pins, timeout: Duration, now: Timestamp) -> (Asked, bool) {
    match pins.approval {
        Some(asked) if pins.decided_round != Some(asked.round) => (asked, false),
        earlier => {
            let wait = SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
            let asked = Asked {
                round: earlier.map_or(1, |asked| asked.round + 1),
                deadline: now.checked_add(wait).unwrap_or(Timestamp::MAX),
            };
            (asked, true)
        }
    }
}

#[async_trait]
impl Step for GateApproval {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn plan(
        &self,
        _context: &PlanContext,
        value: &serde_json::Value,
    ) -> Result<StepPlan, StepError> {
        let params: Params = crate::steps::params(value)?;
        let timeout = params.timeout.map_or("-".to_string(), duration::render);
        let mut plan = StepPlan::new(
            Action::Create,
            format!("waits for approval: {}", params.message),
        )
        .detail(
            "on timeout",
            format!("{} after {timeout}", params.default.as_str()),
        );
        if !params.approvers.is_empty() {
            plan = plan.detail("approvers", params.approvers.join(", "));
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        context: &StepContext,
        value: &serde_json::Value,
    ) -> Result<Values, StepError> {
        let params: Params = crate::steps::params(value)?;
        let timeout = params
            .timeout
            .ok_or_else(|| StepError::Params("`timeout` is required".into()))?;
        let pins: Pins = interface::read_pins(&context.pins())
            .map_err(|error| StepError::Params(format!("pins: {error}")))?;
        let (asked, new) = question(&pins, timeout, Timestamp::now());
        if new {
            let pinned = serde_json::to_value(asked)
                .map_err(|error| StepError::Params(error.to_string()))?;
            context.pin("approval", pinned)?;
        }
        context.approval_requested(
            asked.round,
            &params.message,
            &params.approvers,
            asked.deadline,
            params.default,
        )?;
        let decided = loop {
            context.checkpoint("waiting")?;
            let answers = context.answers()?;
            let now = Timestamp::now();
            let step = &context.step_id;
            if let Some(decided) = decide(
                &answers,
                step,
                asked.round,
                &params.approvers,
                now,
                asked.deadline,
                params.default,
            ) {
                break decided;
            }
            let left = asked.deadline.duration_since(now).unsigned_abs();
            context.sleep(context.poll().initial.min(left)).await?;
        };
        context.approval_decided(
            asked.round,
            decided.verdict,
            decided.by.clone(),
            decided.reason.clone(),
        )?;
        context.pin("decided_round", serde_json::json!(asked.round))?;
        let decided_by = decided
            .by
            .as_ref()
            .map_or_else(|| "timeout".to_string(), Actor::to_string);
        match decided.verdict {
            Verdict::Approve => interface::outputs(&Outputs {
                decision: Verdict::Approve,
                decided_by,
                round: asked.round,
            }),
            Verdict::Reject => Err(StepError::Rejected {
                by: decided.by,
                reason: decided.reason,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(step: &str, round: u32, user: &str, verdict: Verdict) -> Request {
        Request {
            at: Timestamp::UNIX_EPOCH,
            step: step.into(),
            round,
            verdict,
            by: Actor {
                user: user.into(),
                host: "laptop".into(),
                ..Actor::default()
            },
            reason: None,
        }
    }

    #[test]
    fn the_interface_matches_the_table() {
        interface::check::<Params, Outputs>(
            &SPEC,
            &serde_json::json!({
                "message": "cut DNS over?",
                "timeout": "30m",
                "default": "reject",
                "approvers": ["ana"],
            }),
        );
    }

    #[test]
    fn the_first_answer_to_this_round_from_an_approver_decides() {
        let deadline = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(60);
        let now = Timestamp::UNIX_EPOCH;
        let answers = [
            answer("other", 1, "ana", Verdict::Reject),
            answer("gate", 1, "mallory", Verdict::Approve),
            answer("gate", 2, "ana", Verdict::Reject),
            answer("gate", 1, "ana", Verdict::Reject),
            answer("gate", 1, "bo", Verdict::Approve),
        ];
        let approvers = ["ana".to_string(), "bo".to_string()];
        let decided = decide(
            &answers,
            "gate",
            1,
            &approvers,
            now,
            deadline,
            Verdict::Approve,
        );
        assert_eq!(
            decided.map(|d| (d.verdict, d.by.unwrap().user)),
            Some((Verdict::Reject, "ana".into()))
        );
        let anyone = decide(&answers, "gate", 1, &[], now, deadline, Verdict::Reject);
        assert_eq!(anyone.unwrap().by.unwrap().user, "mallory");
        assert_eq!(
            decide(&answers, "gate", 3, &[], now, deadline, Verdict::Reject),
            None
        );
    }

    #[test]
    fn the_deadline_takes_the_default_without_an_actor() {
        let deadline = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(60);
        for default in [Verdict::Approve, Verdict::Reject] {
            let decided = decide(&[], "gate", 1, &[], deadline, deadline, default).unwrap();
            assert_eq!((decided.verdict, decided.by), (default, None));
        }
    }

    #[test]
    fn an_open_question_is_taken_up_and_a_decided_one_asks_anew() {
        let now = Timestamp::UNIX_EPOCH;
        let timeout = Duration::from_secs(600);
        let (first, new) = question(&Pins::default(), timeout, now);
        assert!(new);
        assert_eq!(first.round, 1);
        assert_eq!(first.deadline, now + SignedDuration::from_secs(600));
        let open = Pins {
            approval: Some(first),
            decided_round: None,
        };
        let later = now + SignedDuration::from_secs(300);
        assert_eq!(
            question(&open, timeout, later),
            (first, false),
            "same deadline after a resume"
        );
        let decided = Pins {
            approval: Some(first),
            decided_round: Some(1),
        };
        let (again, new) = question(&decided, timeout, later);
        assert!(new);
        assert_eq!(again.round, 2);
    }

    #[test]
    fn default_must_be_approve_or_reject() {
        let refused = crate::steps::params::<Params>(&serde_json::json!({
            "message": "m", "timeout": "1m", "default": "maybe"
        }));
        assert!(refused.is_err());
    }
}
