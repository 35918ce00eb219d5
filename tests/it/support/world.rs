//! One test's world for end-to-end runs against AWS: a seeded moto, optionally the fault
//! proxy in front of it, and a state directory — plus, on the [`Backend::S3`] backend, a
//! state bucket in a third region; the binary pointed at them (through [`World::test`]),
//! and reading a run's state back with `rebuild status`.
//!
//! [`on_both_backends!`](crate::on_both_backends) runs one test body once with each
//! backend, so everything proven for the local directory is proven for S3.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::moto::Moto;
use super::playbooks::infrastructure_playbook;
use super::proxy::Proxy;
use super::seed::{block_on, s3_client, seed_production};
use super::test::{Outcome, Running, Test};

/// The region every test rebuilds in.
pub const TARGET: &str = "ap-southeast-1";

/// The region of the state bucket: neither the source nor the target.
pub const STATE_REGION: &str = "us-west-2";
/// The state bucket of [`Backend::S3`] worlds.
pub const STATE_BUCKET: &str = "team-rebuild-state";
/// The state location of [`Backend::S3`] worlds.
pub const STATE_URL: &str = "s3://team-rebuild-state/dr/shop";

/// Where a world's runs keep their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local state directory (the default).
    LocalDir,
    /// [`STATE_URL`], a bucket in [`STATE_REGION`] (`REBUILD_STATE`); the state directory
    /// then holds only scratch files.
    S3,
}

/// Runs a test body once with local state and once with state in S3:
/// `on_both_backends! { fn name(backend) { let world = World::on(backend); … } }` makes
/// the tests `name::local_dir` and `name::s3`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$attribute:meta])* fn $name:ident($backend:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports, reason = "the body uses what its module imports")]
            use super::*;
            use $crate::support::world::Backend;

            fn body($backend: Backend) $body

            $(#[$attribute])*
            #[test]
            fn local_dir() {
                body(Backend::LocalDir)
            }

            $(#[$attribute])*
            #[test]
            fn s3() {
                body(Backend::S3)
            }
        }
    };
}

/// One test's world: moto (seeded), optionally a proxy, a state directory, and where the
/// runs keep their state.
pub struct World {
    /// The AWS stand-in.
    pub moto: Moto,
    /// The fault proxy in front of moto, when the world has one.
    pub proxy: Option<Proxy>,
    /// The binary's state directory (only scratch files on [`Backend::S3`]).
    pub state: tempfile::TempDir,
    /// Where the runs keep their state.
    pub backend: Backend,
}

impl World {
    /// Moto seeded with production (see [`seed_production`]), behind the proxy, whose
    /// strict rules (what AWS refuses and moto accepts) are on; local state.
    pub fn new() -> Self {
        Self::on(Backend::LocalDir)
    }

    /// [`World::new`] with its state on `backend` (for S3, the bucket is made, versioned,
    /// in [`STATE_REGION`]).
    pub fn on(backend: Backend) -> Self {
        let moto = Moto::start();
        seed_production(&moto.endpoint);
        if backend == Backend::S3 {
            state_bucket(&moto.endpoint, STATE_BUCKET, STATE_REGION);
        }
        let proxy = Proxy::start(&moto.endpoint);
        Self {
            moto,
            proxy: Some(proxy),
            state: tempfile::tempdir().expect("a temporary state directory"),
            backend,
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

    /// The binary talking to this world, with its state (directory, or bucket) and quick
    /// polls.
    pub fn test(&self) -> Test {
        let test = Test::new()
            .aws(self.endpoint())
            .state_dir(self.state.path())
            .env("REBUILD_POLL_INTERVAL_MS", "50");
        match self.backend {
            Backend::LocalDir => test,
            Backend::S3 => test.env("REBUILD_STATE", STATE_URL),
        }
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

    /// [`World::rebuild`] killed at `failpoint` (asserted). A lock in S3 outlives its
    /// killed holder (it is never judged dead by its pid), so on [`Backend::S3`] it is then
    /// broken on purpose, as the runbook says (see [`World::unlock_after_a_crash`]).
    pub fn rebuild_killed_at(&self, failpoint: &str) -> Outcome {
        let outcome = self
            .rebuild_test(&infrastructure_playbook())
            .failpoint(failpoint)
            .run();
        outcome.killed(failpoint);
        self.unlock_after_a_crash();
        outcome
    }

    /// On [`Backend::S3`]: the killed run's lock is still there and refuses a resume,
    /// naming its holder and `rebuild unlock`; `rebuild unlock` breaks it, warning that
    /// its process could not be checked. Nothing to do for local state (a dead holder's
    /// lock is taken over).
    pub fn unlock_after_a_crash(&self) {
        if self.backend == Backend::LocalDir {
            return;
        }
        assert!(
            self.lock_exists(TARGET),
            "a killed run leaves its lock in S3"
        );
        self.run(&["resume", "--yes"])
            .code(3)
            .stderr_contains("never judged dead by its pid")
            .stderr_contains(&format!(
                "rebuild unlock --target {TARGET} --state {STATE_URL}"
            ));
        self.run(&["unlock", "--target", TARGET])
            .success()
            .stderr_contains("broke the lock for `ap-southeast-1` held by run `")
            .stderr_contains("could not be checked");
        assert!(!self.lock_exists(TARGET));
    }

    /// Every operation the proxy saw but those on the state bucket (S3), in order.
    pub fn cloud_operations(&self) -> Vec<String> {
        self.proxy()
            .calls()
            .into_iter()
            .filter(|call| call.service != "s3")
            .map(|call| call.operation)
            .collect()
    }

    /// Whether the lock of `target` exists (a file, or an object in the bucket).
    pub fn lock_exists(&self, target: &str) -> bool {
        match self.backend {
            Backend::LocalDir => self
                .state
                .path()
                .join(format!("locks/{target}.lock"))
                .exists(),
            Backend::S3 => block_on(async {
                let s3 = s3_client(&self.moto.endpoint, STATE_REGION).await;
                s3.head_object()
                    .bucket(STATE_BUCKET)
                    .key(format!("dr/shop/locks/{target}.lock"))
                    .send()
                    .await
                    .is_ok()
            }),
        }
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

    /// The journal of every run, as text (a file's lines, or the run's record objects in
    /// order), oldest run first.
    pub fn journals(&self) -> Vec<String> {
        match self.backend {
            Backend::LocalDir => {
                let mut files = self.journal_files();
                files.sort();
                files
                    .iter()
                    .map(|file| std::fs::read_to_string(file).expect("a readable journal"))
                    .collect()
            }
            Backend::S3 => block_on(async {
                let s3 = s3_client(&self.moto.endpoint, STATE_REGION).await;
                let mut runs: Vec<String> = Vec::new();
                for key in bucket_keys(&s3, "dr/shop/runs/").await {
                    let run = key
                        .split('/')
                        .nth(3)
                        .expect("runs/ID/journal/N")
                        .to_string();
                    if !runs.contains(&run) {
                        runs.push(run);
                    }
                }
                runs.sort();
                let mut journals = Vec::new();
                for run in runs {
                    let mut text = String::new();
                    for key in bucket_keys(&s3, &format!("dr/shop/runs/{run}/journal/")).await {
                        text.push_str(&object_text(&s3, &key).await);
                    }
                    journals.push(text);
                }
                journals
            }),
        }
    }

    /// Replace the newest run's last journal record with what `damage` makes of it (a
    /// local journal's last line, or the last record object), as a crash or a damaged
    /// write would leave it.
    pub fn damage_last_record(&self, damage: impl FnOnce(&[u8]) -> Vec<u8>) {
        match self.backend {
            Backend::LocalDir => {
                let mut files = self.journal_files();
                files.sort();
                let journal = files.pop().expect("a journal");
                let bytes = std::fs::read(&journal).expect("a readable journal");
                let end = bytes.len() - 1;
                let start = bytes[..end]
                    .iter()
                    .rposition(|byte| *byte == b'\n')
                    .map_or(0, |newline| newline + 1);
                let mut damaged = bytes[..start].to_vec();
                damaged.extend(damage(&bytes[start..]));
                std::fs::write(&journal, damaged).expect("write the journal");
            }
            Backend::S3 => block_on(async {
                let s3 = s3_client(&self.moto.endpoint, STATE_REGION).await;
                let last = bucket_keys(&s3, "dr/shop/runs/")
                    .await
                    .into_iter()
                    .max()
                    .expect("a journal record");
                let damaged = damage(object_text(&s3, &last).await.as_bytes());
                s3.put_object()
                    .bucket(STATE_BUCKET)
                    .key(&last)
                    .body(damaged.into())
                    .send()
                    .await
                    .expect("overwrite the record");
            }),
        }
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
        for journal in self.journals() {
            assert!(
                !journal.contains(secret),
                "{secret:?} journaled in {journal}"
            );
        }
    }
}

/// Make `bucket` in `region`, versioned (as the runbook asks of a state bucket).
pub fn state_bucket(endpoint: &str, bucket: &str, region: &str) {
    block_on(async {
        let s3 = s3_client(endpoint, region).await;
        let mut create = s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(region.into())
                    .build(),
            );
        }
        create.send().await.expect("create the state bucket");
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("turn versioning on");
    });
}

/// Every key under `prefix` of the state bucket, sorted.
async fn bucket_keys(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(STATE_BUCKET)
        .prefix(prefix)
        .send()
        .await
        .expect("list the state bucket");
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// An object of the state bucket, as text.
async fn object_text(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let object = s3
        .get_object()
        .bucket(STATE_BUCKET)
        .key(key)
        .send()
        .await
        .expect("read a state object");
    let bytes = object.body.collect().await.expect("its body").into_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
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
