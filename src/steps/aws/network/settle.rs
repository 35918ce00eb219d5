//! Living with EC2's eventual consistency (EC2 API reference, "Eventual consistency"): right
//! after a create, a call naming the new id may answer `Invalid…ID.NotFound`, and a
//! describe filtered by tags may not list the new resource yet. [`Settle`] remembers the
//! ids this attempt created and retries a call that names one of them while EC2 says it
//! does not exist (with backoff, for up to [`NOT_FOUND_BUDGET`]); and on an attempt that
//! follows an earlier one, it looks again after a short grace before anything the lookup
//! missed is created, once per attempt (an earlier attempt's resources are all older than
//! the grace by then).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cloud::CloudError;
use crate::runtime::Backoff;
use crate::steps::{StepContext, StepError};

/// How long a call naming a new id is retried while EC2 says the id does not exist.
pub(super) const NOT_FOUND_BUDGET: Duration = Duration::from_secs(120);

/// What this attempt knows about the ids it created.
pub(super) struct Settle {
    /// Ids created by this attempt.
    fresh: Mutex<HashSet<String>>,
    /// This attempt follows an earlier one (of this process or of a killed one): what that
    /// attempt created may not be listed yet.
    follows_earlier: bool,
    /// The grace was waited for already in this attempt.
    graced: AtomicBool,
    /// Retries of a call that named a new id.
    backoff: Backoff,
    /// How long a lookup waits before looking again on an attempt that follows another.
    grace: Duration,
}

impl Settle {
    /// For an attempt (`follows_earlier`: an earlier attempt of the step ran); paced from
    /// the run's poll interval (`poll`, 5 s by default): retries from a fifth of it, a
    /// grace of twice it.
    pub(super) fn new(follows_earlier: bool, poll: Backoff) -> Self {
        let first = (poll.initial / 5).max(Duration::from_millis(1));
        Self {
            fresh: Mutex::new(HashSet::new()),
            follows_earlier,
            graced: AtomicBool::new(false),
            backoff: Backoff::polling(first),
            grace: poll.initial.saturating_mul(2),
        }
    }

    /// This attempt created `id`.
    pub(super) fn created(&self, id: &str) {
        self.fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_string());
    }

    /// Whether this attempt created `id`: then nothing but this attempt has changed it (a
    /// new route table has only its local route and no associations, a new security group
    /// no inbound rules), and what is to be added to it needs no look first.
    pub(super) fn is_fresh(&self, id: &str) -> bool {
        self.fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    /// Whether `error` says that one of `names` that this attempt created does not exist.
    fn unsettled(&self, error: &CloudError, names: &[&str]) -> bool {
        let Some(prefix) = error.code.as_deref().and_then(id_prefix) else {
            return false;
        };
        names
            .iter()
            .any(|name| name.starts_with(prefix) && self.is_fresh(name))
    }

    /// Run `call`, which names the ids `names`; while it fails because one of them that
    /// this attempt created is not known yet, wait and run it again, for up to
    /// [`NOT_FOUND_BUDGET`].
    pub(super) async fn call<T, F, Fut>(
        &self,
        context: &StepContext,
        names: &[&str],
        mut call: F,
    ) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let started = Instant::now();
        let mut index = 0;
        loop {
            match call().await {
                Err(error)
                    if self.unsettled(&error, names) && started.elapsed() < NOT_FOUND_BUDGET =>
                {
                    if index == 0 {
                        context
                            .progress(format!("{error}: new, not known to EC2 yet; trying again"));
                    }
                    context.sleep(self.backoff.delay(index)).await?;
                    index += 1;
                }
                answer => return Ok(answer?),
            }
        }
    }

    /// Before creating what a lookup did not find: on an attempt that follows an earlier
    /// one, wait the grace once (then look again: `true`); otherwise `false` at once.
    pub(super) async fn grace(&self, context: &StepContext) -> Result<bool, StepError> {
        if !self.follows_earlier || self.graced.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        context.progress(format!(
            "not found by its tags: looking again in {:?}, in case an earlier attempt made it moments ago",
            self.grace
        ));
        context.sleep(self.grace).await?;
        Ok(true)
    }
}

/// The id prefix an EC2 "does not exist" error code is about.
fn id_prefix(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidVpcID.NotFound" => "vpc-",
        "InvalidSubnetID.NotFound" => "subnet-",
        "InvalidInternetGatewayID.NotFound" => "igw-",
        "InvalidRouteTableID.NotFound" => "rtb-",
        "InvalidAllocationID.NotFound" => "eipalloc-",
        "InvalidGroup.NotFound" | "InvalidGroupId.NotFound" => "sg-",
        "InvalidNatGatewayID.NotFound" | "NatGatewayNotFound" => "nat-",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> CloudError {
        CloudError {
            code: Some(code.to_string()),
            ..CloudError::local("Call", None, "no")
        }
    }

    #[test]
    fn only_a_new_id_of_the_kind_the_error_names_is_waited_for() {
        let settle = Settle::new(false, Backoff::default());
        settle.created("vpc-1");
        settle.created("sg-1");
        assert!(settle.unsettled(&error("InvalidVpcID.NotFound"), &["vpc-1"]));
        assert!(settle.unsettled(&error("InvalidGroup.NotFound"), &["sg-0", "sg-1"]));
        assert!(!settle.unsettled(&error("InvalidVpcID.NotFound"), &["vpc-2"]));
        assert!(!settle.unsettled(&error("InvalidSubnetID.NotFound"), &["vpc-1"]));
        assert!(!settle.unsettled(&error("VpcLimitExceeded"), &["vpc-1"]));
        assert!(!settle.unsettled(&CloudError::local("Call", None, "no"), &["vpc-1"]));
    }

    #[test]
    fn the_pace_scales_from_the_poll_interval() {
        let settle = Settle::new(true, Backoff::polling(Duration::from_secs(5)));
        assert_eq!(settle.backoff.initial, Duration::from_secs(1));
        assert_eq!(settle.grace, Duration::from_secs(10));
    }
}
