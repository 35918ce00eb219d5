//! One test's world for end-to-end runs against AWS: a seeded moto, optionally the fault
//! proxy in front of it, and a state directory; the binary pointed at them (through
//! [`World::test`]), and reading a run's state back with `rebuild status`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::moto::Moto;
use super::playbooks::infrastructure_playbook;
use super::proxy::Proxy;
use super::seed::seed_production;
use super::test::{Outcome, Running, Test};

/// The region every test rebuilds in.
pub const TARGET: &str = "ap-southeast-1";

/// One test's world: moto (seeded), optionally a proxy, a state directory.
pub struct World {
    /// The AWS stand-in.
    pub moto: Moto,
    /// The fault proxy in front of moto, when the world has one.
    pub proxy: Option<Proxy>,
    /// The binary's state directory.
    pub state: tempfile::TempDir,
}

impl World {
    /// Moto seeded with production (see [`seed_production`]), behind the proxy, whose
    /// strict rules (what AWS refuses and moto accepts) are on.
    pub fn new() -> Self {
        let moto = Moto::start();
        seed_production(&moto.endpoint);
        let proxy = Proxy::start(&moto.endpoint);
        Self {
            moto,
            proxy: Some(proxy),
            state: tempfile::tempdir().expect("a temporary state directory"),
        }
    }

    /// [`World::new`]: every world has the fault proxy in front of moto.
    pub fn with_proxy() -> Self {
        Self::new()
    }

    /// The proxy (panics when the world has none).
    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("this world has a proxy")
    }

    /// The endpoint the binary talks to: the proxy when there is one, else moto.
    pub fn endpoint(&self) -> &str {
        self.proxy
            .as_ref()
            .map_or(&self.moto.endpoint, |proxy| &proxy.endpoint)
    }

    /// The binary talking to this world, with its state directory and quick polls.
    pub fn test(&self) -> Test {
        Test::new()
            .aws(self.endpoint())
            .state_dir(self.state.path())
            .env("REBUILD_POLL_INTERVAL_MS", "50")
    }

    /// `rebuild ARGS`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.test().args(args).run()
    }

    /// `rebuild --target TARGET --yes` with a playbook, still to be run.
    pub fn rebuild_test(&self, playbook: &Path) -> Test {
        self.test()
            .args(["--target", TARGET, "--yes"])
            .playbook(playbook)
    }

    /// `rebuild --target TARGET --yes --playbook PLAYBOOK`.
    pub fn rebuild_with(&self, playbook: &Path) -> Outcome {
        self.rebuild_test(playbook).run()
    }

    /// `rebuild --target TARGET --yes` with the default playbook's infrastructure half.
    pub fn rebuild(&self) -> Outcome {
        self.rebuild_with(&infrastructure_playbook())
    }

    /// [`World::rebuild`] in the background.
    pub fn spawn_rebuild(&self) -> Running {
        self.rebuild_test(&infrastructure_playbook()).spawn()
    }

    /// [`World::rebuild`] killed at `failpoint` (asserted).
    pub fn rebuild_killed_at(&self, failpoint: &str) -> Outcome {
        let outcome = self
            .rebuild_test(&infrastructure_playbook())
            .failpoint(failpoint)
            .run();
        outcome.killed(failpoint);
        outcome
    }

    /// `rebuild status --output json` (asserted to succeed).
    pub fn status(&self) -> Value {
        self.run(&["status", "--output", "json"])
            .success()
            .stdout_json()
    }

    /// Poll `rebuild status` until `check` holds (a condition, not a guessed sleep).
    pub fn wait_until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let outcome = self.run(&["status", "--output", "json"]);
            if outcome.exit_code() == 0 {
                let status = outcome.stdout_json();
                if check(&status) {
                    return status;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `rebuild resume --yes`, asserted to succeed and leave the run `succeeded`; the status.
    pub fn resume_to_completion(&self) -> Value {
        self.run(&["resume", "--yes"]).success();
        let status = self.status();
        assert_eq!(status["state"], "succeeded", "{status}");
        status
    }

    /// The journal file of every run in the state directory.
    pub fn journal_files(&self) -> Vec<PathBuf> {
        let runs = self.state.path().join("runs");
        let Ok(entries) = std::fs::read_dir(runs) else {
            return Vec::new();
        };
        entries
            .map(|entry| {
                entry
                    .expect("a readable runs folder")
                    .path()
                    .join("journal.jsonl")
            })
            .collect()
    }

    /// Assert that `secret` is in no journal.
    #[track_caller]
    pub fn assert_never_journaled(&self, secret: &str) {
        for journal in self.journal_files() {
            let text = std::fs::read_to_string(&journal).expect("a readable journal");
            assert!(
                !text.contains(secret),
                "{secret:?} journaled in {}",
                journal.display()
            );
        }
    }
}

/// The step `id` in a `rebuild status --output json` value.
#[track_caller]
pub fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .expect("a status lists its steps")
        .iter()
        .find(|step| step["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {status}"))
}
