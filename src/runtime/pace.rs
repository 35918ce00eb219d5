//! When a wait looks again. A wait that knows how long its resource usually takes (the
//! kind's typical duration, or what the stack's past runs journaled) looks rarely at first,
//! then more and more often as the expected end comes near, and keeps looking often for a
//! while after it: the cloud is noticed ready within about 0.5 % of the expected duration,
//! with fifteen to eighteen checks per wait — or about one a minute for waits so long that
//! their delays reach the run's ceiling of a minute. A wait that knows nothing polls with
//! exponential backoff. Every delay is kept between a floor and the run's ceiling,
//! with ±10 % jitter so that waits started together spread apart. Pure.

use std::time::Duration;

use super::Backoff;

/// The shortest delay between two checks of one wait.
pub const POLL_FLOOR: Duration = Duration::from_millis(100);

/// What share of the expected duration the checks just before the expected end are apart:
/// a 25-minute restore is checked every 7.5 s as its expected end comes, a 3-minute node
/// group every 0.9 s.
const RESOLUTION: u32 = 200;

/// The same, once the expected end has passed (plus an eighth of the overrun): a resource
/// ready just after its expected end — the usual case — is noticed within a two-hundredth.
const LATE_RESOLUTION: u32 = 200;

/// How one wait polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// How long the wait is expected to take, if known.
    pub expected: Option<Duration>,
    /// The run's polling: its `max` is the ceiling of every delay; without an expectation
    /// it is the backoff used.
    pub poll: Backoff,
}

impl Pace {
    /// A wait that expects to take `expected` (or knows nothing), in a run polling `poll`.
    pub fn new(expected: Option<Duration>, poll: Backoff) -> Self {
        Self { expected, poll }
    }

    /// The delay before the next check, `elapsed` after the first and after `checks`
    /// checks, without jitter.
    pub fn base_delay(&self, elapsed: Duration, checks: u32) -> Duration {
        let Some(expected) = self.expected else {
            return self
                .poll
                .initial
                .saturating_mul(2u32.saturating_pow(checks.saturating_sub(1).min(16)))
                .min(self.poll.max);
        };
        let resolution = expected / RESOLUTION;
        let delay = if elapsed < expected / 2 {
            // Early: nothing is expected yet.
            expected / 8
        } else if elapsed < expected {
            // Closing in: halve the distance to the expected end each time.
            ((expected - elapsed) / 2).max(resolution)
        } else {
            // Late: often at first, less as the overrun grows.
            expected / LATE_RESOLUTION + (elapsed - expected) / 8
        };
        let ceiling = self.poll.max.max(POLL_FLOOR);
        delay.clamp(POLL_FLOOR.min(ceiling), ceiling)
    }

    /// The delay before the next check, with ±10 % jitter.
    pub fn delay(&self, elapsed: Duration, checks: u32) -> Duration {
        self.base_delay(elapsed, checks)
            .mul_f64(0.9 + fastrand::f64() * 0.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN_DEFAULT: Backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };

    /// Check times of a wait whose resource is ready at `ready`: (checks made, when the
    /// ready one came).
    fn simulate(pace: Pace, ready: Duration) -> (u32, Duration) {
        let mut elapsed = Duration::ZERO;
        let mut checks = 1;
        while elapsed < ready {
            elapsed += pace.base_delay(elapsed, checks);
            checks += 1;
        }
        (checks, elapsed)
    }

    #[test]
    fn a_wait_that_ends_when_expected_is_noticed_within_half_a_percent_in_at_most_eighteen_checks()
    {
        for minutes in [1, 2, 3, 12, 25] {
            let expected = Duration::from_secs(60 * minutes);
            let pace = Pace::new(Some(expected), RUN_DEFAULT);
            let (checks, noticed) = simulate(pace, expected);
            let late = noticed - expected;
            assert!(
                late <= (expected / 200).max(POLL_FLOOR),
                "{minutes} min: {late:?} late"
            );
            // At most eighteen checks; a wait so long that its delays reach the run's
            // ceiling of a minute checks about once a minute.
            let budget = 18.max(u32::try_from(minutes).unwrap_or(u32::MAX) + 5);
            assert!(checks <= budget, "{minutes} min: {checks} checks");
        }
        // Scaled down (a benchmark's minute of a second): the same shape.
        let expected = Duration::from_secs(25);
        let (checks, noticed) = simulate(Pace::new(Some(expected), RUN_DEFAULT), expected);
        assert!(
            noticed - expected <= Duration::from_millis(250),
            "{noticed:?}"
        );
        assert!(checks <= 16, "{checks}");
    }

    #[test]
    fn early_and_late_ends_are_noticed_within_bounds() {
        let expected = Duration::from_secs(12 * 60);
        let pace = Pace::new(Some(expected), RUN_DEFAULT);
        // Twice as fast as expected: within an eighth of the expectation.
        let ready = expected / 2;
        let (_, noticed) = simulate(pace, ready);
        assert!(noticed - ready <= expected / 8, "{:?}", noticed - ready);
        // Just over: within the resolution.
        let ready = expected + expected / 1000;
        let (_, noticed) = simulate(pace, ready);
        assert!(noticed - ready <= expected / 200, "{:?}", noticed - ready);
        // Twenty per cent over: within the resolution plus an eighth of the overrun.
        let ready = expected + expected / 5;
        let (checks, noticed) = simulate(pace, ready);
        assert!(
            noticed - ready <= expected / 200 + expected / 40,
            "{:?}",
            noticed - ready
        );
        assert!(checks <= 34, "{checks}");
    }

    #[test]
    fn delays_stay_between_the_floor_and_the_run_ceiling() {
        let tiny = Pace::new(Some(Duration::from_millis(200)), RUN_DEFAULT);
        assert_eq!(tiny.base_delay(Duration::ZERO, 1), POLL_FLOOR);
        let huge = Pace::new(Some(Duration::from_secs(3 * 3600)), RUN_DEFAULT);
        assert_eq!(huge.base_delay(Duration::ZERO, 1), Duration::from_secs(60));
        let hours_late = huge.base_delay(Duration::from_secs(9 * 3600), 500);
        assert_eq!(hours_late, Duration::from_secs(60));
        // A testbed's quick polls cap every delay.
        let quick = Backoff::polling(Duration::from_millis(50));
        let pace = Pace::new(Some(Duration::from_secs(12 * 60)), quick);
        assert_eq!(
            pace.base_delay(Duration::ZERO, 1),
            Duration::from_millis(600)
        );
        for _ in 0..100 {
            let delay = pace.delay(Duration::ZERO, 1);
            assert!(
                delay >= Duration::from_millis(540) && delay <= Duration::from_millis(660),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn without_an_expectation_polls_back_off_from_the_run_interval() {
        let pace = Pace::new(None, RUN_DEFAULT);
        let delays: Vec<u64> = (1..=6)
            .map(|checks| pace.base_delay(Duration::ZERO, checks).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
    }
}
