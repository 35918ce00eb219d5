//! The bridge from the state store's synchronous seam ([`StateStore`](super::StateStore),
//! [`Sink`](crate::journal::store::Sink)) to the asynchronous S3 client: one small thread of
//! its own running a current-thread tokio runtime, to which each call is sent; the caller
//! blocks on a standard channel until the answer comes back.
//!
//! Why a thread of its own rather than `block_in_place` + `Handle::block_on` on the
//! caller's runtime: `block_in_place` panics on a current-thread runtime (and inside some
//! nested `block_on`s), and blocking the caller's runtime on work that needs that same
//! runtime is a deadlock. Here the work never needs the caller's runtime: the S3 client
//! is used on this thread only (its connection pool and its identity cache are its own,
//! see `cloud::Cloud::state_bucket`), so a caller may block anywhere — on a worker of the
//! multi-thread runtime, on a current-thread runtime, in `Drop`, outside any runtime —
//! and the call still completes. The wait is bounded by the client's timeouts, like an
//! fsync is bounded by the disk.

use std::future::Future;
use std::pin::Pin;

/// A unit of work for the bridge's runtime.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The bridge's runtime thread stopped (it could not start, or a call panicked).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the state store's I/O thread stopped")]
pub(crate) struct Stopped;

/// A thread running a current-thread runtime that carries out futures for synchronous
/// callers. It ends when the bridge is dropped.
#[derive(Debug)]
pub(crate) struct Bridge {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl Bridge {
    /// Start the thread and its runtime.
    pub(crate) fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (jobs, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("rebuild-state-io".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = receiver.recv().await {
                        // Concurrently: a slow call does not hold up the next caller.
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(Self { jobs })
    }

    /// Carry out `future` on the bridge's runtime and wait for its output.
    pub(crate) fn run<F, T>(&self, future: F) -> Result<T, Stopped>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::pin(async move {
            let _ = answer.send(future.await);
        });
        self.jobs.send(job).map_err(|_| Stopped)?;
        // A job that panicked drops its sender: the wait ends with `Stopped`.
        answered.recv().map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer_after_a_sleep() -> u32 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        42
    }

    #[test]
    fn works_outside_any_runtime() {
        let bridge = Bridge::start().unwrap();
        assert_eq!(bridge.run(answer_after_a_sleep()).unwrap(), 42);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_blocking_on_it_neither_deadlocks_nor_panics() {
        let bridge = Bridge::start().unwrap();
        assert_eq!(bridge.run(answer_after_a_sleep()).unwrap(), 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_on_every_worker_at_once_all_get_their_answer() {
        let bridge = std::sync::Arc::new(Bridge::start().unwrap());
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let bridge = bridge.clone();
                tokio::spawn(async move { bridge.run(answer_after_a_sleep()) })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 42);
        }
    }

    #[test]
    fn a_panicking_call_is_an_error_not_a_panic_here() {
        let bridge = Bridge::start().unwrap();
        let outcome = bridge.run(async {
            if std::hint::black_box(true) {
                panic!("inside the bridge");
            }
        });
        assert!(outcome.is_err());
        assert_eq!(bridge.run(async { 7 }).unwrap(), 7, "the bridge lives on");
    }
}
