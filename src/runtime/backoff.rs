//! Exponential backoff with jitter: the one formula behind the executor's retries and the
//! steps' polls. Jitter (±25 %) spreads pollers that started together apart.

use std::time::Duration;

/// Delays that start at `initial` and double up to `max`, each with ±25 % jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    /// How waits poll by default: 5 s, doubling up to a minute.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Polling that starts at `initial` and slows to twelve times that, at most a minute.
    pub fn polling(initial: Duration) -> Self {
        Self {
            initial,
            max: initial
                .saturating_mul(12)
                .min(Duration::from_secs(60))
                .max(initial),
        }
    }

    /// Retries after `initial`, doubling for at most ten attempts.
    pub fn retries(initial: Duration) -> Self {
        Self {
            initial,
            max: initial.saturating_mul(1024),
        }
    }

    /// The delay before try number `index` (0-based): exponential with ±25 % jitter.
    pub fn delay(&self, index: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(index.min(16)));
        let capped = base.min(self.max);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        capped.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delays_grow_with_jitter_up_to_the_cap() {
        let settings = Backoff {
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

    #[test]
    fn retries_double_for_ten_attempts_then_stay() {
        let retries = Backoff::retries(Duration::from_secs(1));
        for index in 0..14 {
            let base = Duration::from_secs(1 << index.min(10));
            let delay = retries.delay(index);
            assert!(
                delay >= base.mul_f64(0.75) && delay <= base.mul_f64(1.25),
                "retry {index}: {delay:?}"
            );
        }
    }

    #[test]
    fn polling_slows_to_twelve_times_at_most_a_minute() {
        assert_eq!(
            Backoff::polling(Duration::from_secs(1)).max,
            Duration::from_secs(12)
        );
        assert_eq!(
            Backoff::polling(Duration::from_secs(10)).max,
            Duration::from_secs(60)
        );
        assert_eq!(
            Backoff::polling(Duration::from_secs(90)).max,
            Duration::from_secs(90)
        );
    }
}
