//! The `git.fetch` fixture: two repositories with tags (the Kubernetes config and the
//! application), served by `git daemon` and behind the GitHub REST stand-in that requires
//! a token; playbooks of two `git.fetch` steps; the binary run against them with a state
//! directory of its own; and reading back what a step fetched.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::git::{GitDaemon, GitRepos, Repo, checkout_head};
use crate::support::github::GitHub;
use crate::support::test::{Outcome, Test};

pub(super) const TOKEN: &str = "ghp_T3stT0kenThatMustNeverBePrinted0001";

/// The fixture: two repositories with tags, served by git daemon and the API stand-in.
pub(super) struct Bed {
    pub(super) repos: GitRepos,
    pub(super) daemon: GitDaemon,
    pub(super) github: GitHub,
    pub(super) config: Repo,
    pub(super) app: Repo,
    /// Commits of the config repository: `v1.0.0`, `v1.2.0`, then an untagged one.
    pub(super) config_commits: [String; 3],
    /// Commits of the app repository (see [`Bed::new`] for its tags).
    pub(super) app_commits: [String; 4],
    pub(super) state: tempfile::TempDir,
    pub(super) dir: tempfile::TempDir,
}

impl Bed {
    pub(super) fn new() -> Self {
        let repos = GitRepos::new();
        let config = repos.create("acme/shop-config");
        let config_commits = [
            config.rev_parse("main"),
            config.commit("deploy.yaml", "replicas: 3\nimage: shop:1.2.0\n"),
            config.commit("deploy.yaml", "replicas: 5\nimage: shop:1.3.0-dev\n"),
        ];
        config.tag("v1.0.0", &config_commits[0]);
        config.tag("v1.2.0", &config_commits[1]);

        let app = repos.create("acme/shop");
        let app_commits = [
            app.rev_parse("main"),
            app.commit("VERSION", "2.1.0\n"),
            app.commit("VERSION", "2.10.0\n"),
            app.commit("VERSION", "2.11.0-rc1\n"),
        ];
        app.annotated_tag("v2.0.0", &app_commits[0]);
        app.tag("v2.1.0", &app_commits[1]);
        app.tag("v2.9.3", &app_commits[1]);
        app.annotated_tag("v2.10.0", &app_commits[2]);
        app.tag("v2.11.0-rc1", &app_commits[3]);
        app.tag("nightly", &app_commits[3]);

        let daemon = GitDaemon::start(&repos.root());
        let github = GitHub::start(&repos.root(), &daemon.url);
        github.require_token(Some(TOKEN));
        github.set_latest_release("acme/shop-config", Some("v1.0.0"));
        github.set_latest_release("acme/shop", Some("v2.1.0"));
        Self {
            repos,
            daemon,
            github,
            config,
            app,
            config_commits,
            app_commits,
            state: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A playbook with the `config` and `app` steps; `config` and `app` are extra `with:`
    /// lines (`key: value`) for each.
    pub(super) fn playbook(&self, config: &[&str], app: &[&str]) -> PathBuf {
        self.playbook_with_api(&self.github.url, config, app)
    }

    pub(super) fn playbook_with_api(&self, api: &str, config: &[&str], app: &[&str]) -> PathBuf {
        let lines = |extra: &[&str]| {
            extra
                .iter()
                .map(|line| format!("      {line}\n"))
                .collect::<String>()
        };
        let text = format!(
            "version: 1
name: git-sources
source_region: ap-southeast-2
default_target: ap-southeast-1
inputs:
  github_token:
    secret: true
    env: TEST_GITHUB_TOKEN
steps:
  - id: config
    kind: git.fetch
    with:
      repo: acme/shop-config
      api_url: {api}
      token: ${{inputs.github_token}}
{}  - id: app
    kind: git.fetch
    with:
      repo: acme/shop
      api_url: {api}
      token: ${{inputs.github_token}}
{}",
            lines(config),
            lines(app)
        );
        let path = self.dir.path().join("playbook.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The binary with this bed's state directory, the token in `TEST_GITHUB_TOKEN`, no
    /// `GITHUB_TOKEN`, and an AWS endpoint nobody listens on.
    pub(super) fn test(&self) -> Test {
        Test::new()
            .aws("http://127.0.0.1:9")
            .state_dir(self.state.path())
            .env("TEST_GITHUB_TOKEN", TOKEN)
            .env_remove("GITHUB_TOKEN")
            .current_dir(self.dir.path())
    }

    /// `rebuild --target ap-southeast-1 --yes --playbook PLAYBOOK`, still to be run.
    pub(super) fn rebuild_test(&self, playbook: &Path) -> Test {
        self.test()
            .args(["--target", "ap-southeast-1", "--yes"])
            .playbook(playbook)
    }

    /// `rebuild --target ap-southeast-1 --yes --playbook PLAYBOOK`.
    pub(super) fn rebuild(&self, playbook: &Path) -> Outcome {
        self.rebuild_test(playbook).run()
    }

    /// The run killed at `failpoint` (asserted).
    pub(super) fn rebuild_killed_at(&self, playbook: &Path, failpoint: &str) {
        self.rebuild_test(playbook)
            .failpoint(failpoint)
            .run()
            .killed(failpoint);
    }

    /// `rebuild resume --yes`.
    pub(super) fn resume(&self) -> Outcome {
        self.test().args(["resume", "--yes"]).run()
    }

    pub(super) fn plan(&self, playbook: &Path) -> Outcome {
        self.test()
            .args(["plan", "--target", "ap-southeast-1"])
            .playbook(playbook)
            .run()
    }

    pub(super) fn status(&self) -> Value {
        self.test()
            .args(["status", "--output", "json"])
            .run()
            .success()
            .stdout_json()
    }

    pub(super) fn outputs(&self, step: &str) -> Value {
        let status = self.status();
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|candidate| candidate["id"] == step)
            .unwrap_or_else(|| panic!("no step {step} in {status}"))["outputs"]
            .clone()
    }

    /// The outputs of `step`, asserted: each `(output, value)` of `expected`, and the
    /// checkout they name at `commit`, detached, in the state directory.
    #[track_caller]
    pub(super) fn assert_fetched(
        &self,
        step: &str,
        commit: &str,
        expected: &[(&str, &str)],
    ) -> Value {
        let outputs = self.outputs(step);
        for (output, value) in expected {
            assert_eq!(outputs[output], *value, "`{output}` of `{step}`: {outputs}");
        }
        assert_eq!(outputs["commit"], commit, "{outputs}");
        let path = PathBuf::from(outputs["path"].as_str().unwrap());
        assert!(path.is_absolute(), "{outputs}");
        assert!(
            path.starts_with(self.state.path().canonicalize().unwrap())
                || path.starts_with(self.state.path()),
            "{outputs}"
        );
        let (head, detached) = checkout_head(&path);
        assert_eq!(head, commit, "HEAD of {}", path.display());
        assert!(detached, "HEAD of {} is not detached", path.display());
        outputs
    }

    /// Every journal line of every run.
    pub(super) fn journals(&self) -> String {
        let mut all = String::new();
        let Ok(runs) = std::fs::read_dir(self.state.path().join("runs")) else {
            return all;
        };
        for run in runs {
            let path = run.unwrap().path().join("journal.jsonl");
            all.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        all
    }

    /// Whether any folder named `name` exists under the state directory.
    pub(super) fn has_folder(&self, name: &str) -> bool {
        fn walk(dir: &Path, name: &str) -> bool {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|entry| {
                    let path = entry.path();
                    path.is_dir() && (entry.file_name() == name || walk(&path, name))
                })
        }
        walk(self.state.path(), name)
    }

    /// The folder of `step`'s checkout in the bed's only run.
    pub(super) fn run_checkout(&self, step: &str, directory: &str) -> PathBuf {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.state.path().join("runs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        let dir = runs[0].join(step).join(directory);
        assert!(dir.join(".git").is_dir(), "{}", dir.display());
        dir
    }

    /// The token is nowhere: not printed, journaled, or shown by `status`.
    #[track_caller]
    pub(super) fn assert_no_token(&self, output: &Outcome) {
        output.never_shows(TOKEN);
        assert!(!self.journals().contains(TOKEN), "token journaled");
        self.test().arg("status").run().never_shows(TOKEN);
        assert!(
            !self.status().to_string().contains(TOKEN),
            "token in status json"
        );
    }
}
