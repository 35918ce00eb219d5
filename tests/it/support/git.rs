//! Real git for tests, through the `git` CLI: bare repositories under a temporary folder
//! (commits, lightweight and annotated tags, tags moved with `git tag -f`), `git bundle`
//! files, and a `git daemon` serving the folder over `git://` on a free loopback port.
//!
//! The daemon runs under a small shell that kills it when its stdin closes: dropping
//! [`GitDaemon`] closes it, and so does the death of the test process (even by SIGKILL), so
//! no daemon outlives its test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `git` command isolated from the user's and the system's configuration.
pub fn git() -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Rebuild Test")
        .env("GIT_AUTHOR_EMAIL", "test@rebuild.invalid")
        .env("GIT_COMMITTER_NAME", "Rebuild Test")
        .env("GIT_COMMITTER_EMAIL", "test@rebuild.invalid")
        .stdin(Stdio::null());
    command
}

/// Run `git ARGS` in `dir`, panicking with its output on failure; stdout, trimmed.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = git()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run git {args:?}: {error}"));
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Run `git ARGS` in `dir` and return its output whatever the outcome.
pub fn try_git(dir: &Path, args: &[&str]) -> Output {
    git()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run git {args:?}: {error}"))
}

/// A folder of bare repositories, `ROOT/OWNER/NAME.git`, with working clones beside them.
pub struct GitRepos {
    dir: tempfile::TempDir,
}

impl GitRepos {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder for repositories"),
        }
    }

    /// Where the bare repositories live (the daemon's base path).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("served")
    }

    /// A new repository `owner/name` with one commit on `main`.
    pub fn create(&self, full_name: &str) -> Repo {
        let bare = self.root().join(format!("{full_name}.git"));
        std::fs::create_dir_all(&bare).expect("create the bare repository's folder");
        run_git(
            &bare,
            &["init", "--bare", "--quiet", "--initial-branch=main"],
        );
        let work = self.dir.path().join("work").join(full_name);
        std::fs::create_dir_all(&work).expect("create the working clone's folder");
        run_git(&work, &["init", "--quiet", "--initial-branch=main"]);
        run_git(&work, &["remote", "add", "origin", &bare.to_string_lossy()]);
        let repo = Repo {
            name: full_name.to_string(),
            bare,
            work,
        };
        repo.commit("README.md", &format!("# {full_name}\n"));
        repo
    }

    /// A mirror of `repo` under `ROOT/mirrors/OWNER/NAME.git` (same objects and refs now;
    /// later changes to `repo` are not copied).
    pub fn mirror(&self, repo: &Repo) -> PathBuf {
        let path = self
            .root()
            .join("mirrors")
            .join(format!("{}.git", repo.name));
        std::fs::create_dir_all(path.parent().expect("a mirror has a parent folder"))
            .expect("create the mirror's folder");
        run_git(
            self.dir.path(),
            &[
                "clone",
                "--quiet",
                "--mirror",
                &repo.bare.to_string_lossy(),
                &path.to_string_lossy(),
            ],
        );
        path
    }

    /// A `git bundle` of every ref of `repo`, in this folder.
    pub fn bundle(&self, repo: &Repo) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{}.bundle", repo.name.replace('/', "-")));
        run_git(
            &repo.bare,
            &[
                "bundle",
                "create",
                "--quiet",
                &path.to_string_lossy(),
                "--all",
            ],
        );
        path
    }
}

/// One repository: the bare one that is served, and a working clone to make commits in.
pub struct Repo {
    /// `owner/name`.
    pub name: String,
    /// The served bare repository.
    pub bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    /// Commit `content` to `file` on `main` and publish it; the new commit's SHA.
    pub fn commit(&self, file: &str, content: &str) -> String {
        std::fs::write(self.work.join(file), content).expect("write a file to commit");
        run_git(&self.work, &["add", "--all"]);
        run_git(
            &self.work,
            &["commit", "--quiet", "-m", &format!("update {file}")],
        );
        run_git(&self.work, &["push", "--quiet", "origin", "main"]);
        self.rev_parse("main")
    }

    /// Commit several files (paths may hold folders) on `main` in one commit and publish it;
    /// the new commit's SHA.
    pub fn commit_files(&self, files: &[(String, String)], message: &str) -> String {
        for (file, content) in files {
            let path = self.work.join(file);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))
                .expect("create a folder to commit");
            std::fs::write(path, content).expect("write a file to commit");
        }
        run_git(&self.work, &["add", "--all"]);
        run_git(&self.work, &["commit", "--quiet", "-m", message]);
        run_git(&self.work, &["push", "--quiet", "origin", "main"]);
        self.rev_parse("main")
    }

    /// A lightweight tag at `commit`, published.
    pub fn tag(&self, name: &str, commit: &str) {
        run_git(&self.bare, &["tag", name, commit]);
    }

    /// An annotated tag at `commit`, published; the tag object's SHA.
    pub fn annotated_tag(&self, name: &str, commit: &str) -> String {
        run_git(
            &self.bare,
            &[
                "tag",
                "--annotate",
                "-m",
                &format!("release {name}"),
                name,
                commit,
            ],
        );
        self.rev_parse(&format!("refs/tags/{name}"))
    }

    /// Move the tag `name` to `commit` (`git tag -f`).
    pub fn move_tag(&self, name: &str, commit: &str) {
        run_git(&self.bare, &["tag", "--force", name, commit]);
    }

    /// The object `rev` names in the served repository.
    pub fn rev_parse(&self, rev: &str) -> String {
        run_git(&self.bare, &["rev-parse", "--verify", rev])
    }

    /// The commit `rev` names (tags peeled).
    pub fn commit_of(&self, rev: &str) -> String {
        self.rev_parse(&format!("{rev}^{{commit}}"))
    }
}

/// The checked-out commit of a working folder, and whether HEAD is detached.
pub fn checkout_head(dir: &Path) -> (String, bool) {
    let head = run_git(dir, &["rev-parse", "HEAD"]);
    let detached = !try_git(dir, &["symbolic-ref", "--quiet", "HEAD"])
        .status
        .success();
    (head, detached)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0 to pick a free port")
        .local_addr()
        .expect("the probe's address")
        .port()
}

/// Kill the daemon when stdin closes (the test dropped it or died).
const WATCHDOG: &str = r#"git daemon "$@" & daemon=$!
cat > /dev/null
kill "$daemon" 2>/dev/null
wait "$daemon" 2>/dev/null
exit 0"#;

/// Whether `port` answers a git protocol request the way `git daemon` does (an `ERR`
/// packet for a repository that does not exist): not just anything listening there, such
/// as another test's server that took the port.
fn answers_like_git_daemon(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "git-upload-pack /rebuild-readiness-probe.git\0host=127.0.0.1\0";
    let packet = format!("{:04x}{request}", request.len() + 4);
    if stream.write_all(packet.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.len() > 4 && answer[4..].starts_with(b"ERR ")
}

/// `git daemon` serving a folder of bare repositories over `git://127.0.0.1:PORT/`.
pub struct GitDaemon {
    /// `git://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    _log_dir: tempfile::TempDir,
}

impl GitDaemon {
    /// Serve `base` (every repository under it, `--export-all`) and wait until it listens.
    pub fn start(base: &Path) -> Self {
        let log_dir = tempfile::tempdir().expect("a temporary folder for the daemon's log");
        let log = log_dir.path().join("git-daemon.log");
        for _ in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("create the daemon's log");
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(WATCHDOG)
                .arg("sh")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", base.display()))
                .arg("--export-all")
                .arg("--reuseaddr")
                .arg("--informative-errors")
                .arg(base)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .spawn()
                .expect("start git daemon");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if answers_like_git_daemon(port) {
                    let stdin = child.stdin.take();
                    return Self {
                        url: format!("git://127.0.0.1:{port}"),
                        port,
                        child: Some(child),
                        stdin,
                        _log_dir: log_dir,
                    };
                }
                if child.try_wait().expect("poll git daemon").is_some() || Instant::now() > deadline
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "git daemon did not start; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `git://127.0.0.1:PORT/PATH`.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Stop serving: connections are refused from now on.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().expect("poll git daemon").is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "git daemon still listens");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
