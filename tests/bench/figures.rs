//! Figures the sections share: medians, and the peak resident memory of a child process.

use std::time::Duration;

/// The median (the upper one of an even count).
pub fn median<T: Ord + Copy>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// The median of durations, in seconds.
pub fn median_secs(values: &[Duration]) -> f64 {
    median(values).as_secs_f64()
}
