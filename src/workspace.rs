//! The local scratch workspace of a run: where steps keep files that only this machine
//! needs (git checkouts, kubeconfigs) and where plans keep checkouts of the commits they
//! resolved. It is never durable state: journals and locks live in the state store.

use std::path::{Path, PathBuf};

/// Local folders a run may write, and the program itself (kubeconfigs call it back for
/// tokens).
#[derive(Debug, Clone)]
pub struct Workspace {
    run_dir: PathBuf,
    plan_cache: Option<PathBuf>,
    program: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `run_dir` (absolute, so paths in outputs work from anywhere),
    /// with the plan cache at `plan_cache` (`None`: plans keep nothing; absolute too).
    pub fn new(run_dir: PathBuf, plan_cache: Option<PathBuf>, program: PathBuf) -> Self {
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        let run_dir = absolute(run_dir);
        let plan_cache = plan_cache.map(absolute);
        Self {
            run_dir,
            plan_cache,
            program,
        }
    }

    /// The workspace of run `run_id` under `root` (the local state directory by default):
    /// `runs/<run-id>/<step>/` for steps' files, `cache/` for plans' checkouts.
    pub fn for_run(root: &Path, run_id: &str, program: PathBuf) -> Self {
        Self::new(
            root.join("runs").join(run_id),
            Some(Self::plan_cache_under(root)),
            program,
        )
    }

    /// Where plans under `root` keep their checkouts.
    pub fn plan_cache_under(root: &Path) -> PathBuf {
        root.join("cache")
    }

    /// The run's own folder.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The folder of one step (created by the step when it needs it).
    pub fn step_dir(&self, step: &str) -> PathBuf {
        self.run_dir.join(step)
    }

    /// Where plans keep local files shared between runs (`None`: nowhere).
    pub fn plan_cache(&self) -> Option<&Path> {
        self.plan_cache.as_deref()
    }

    /// This program, for commands written into files (a kubeconfig's token command).
    pub fn program(&self) -> &Path {
        &self.program
    }
}
