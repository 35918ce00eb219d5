//! The one way to run the `rebuild` binary in a test (just's `Test`): a builder that
//! collects arguments, environment, working folder and standard input, runs the binary
//! (or starts it in the background, or runs it under a pseudo-terminal), and returns an
//! [`Outcome`] whose assertion helpers panic with everything the binary printed.
//!
//! A bare `Test::new()` has no AWS configuration, no state directory, no failpoints and an
//! empty standard input, and runs in the crate's folder; [`Test::aws`] points it at an AWS
//! endpoint with static test credentials. `World`, `Stack` and the git bed start from it.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::screen::{COLUMNS, ROWS, Screen};

/// The path of the binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_rebuild");

/// Another build of the binary that [`Test::new`] runs instead of [`BINARY`] while set
/// (the benchmark's baseline, measured side by side with this build).
static BINARY_OVERRIDE: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Run `binary` (another build of `rebuild`) instead of this build's, or this build's
/// again with `None`.
#[allow(
    dead_code,
    reason = "the benchmark's: the integration tests run this build only"
)]
pub fn use_binary(binary: Option<std::path::PathBuf>) {
    *BINARY_OVERRIDE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = binary;
}

fn binary() -> std::path::PathBuf {
    BINARY_OVERRIDE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| BINARY.into())
}

/// A run of the binary being put together.
#[must_use = "a test does nothing until `run` or `spawn`"]
pub struct Test {
    command: Command,
    stdin: Option<String>,
    terminal: bool,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// The binary with no arguments, in the crate's folder, with an empty standard input,
    /// and none of the environment that steers it (`REBUILD_STATE_DIR`, `REBUILD_STATE`,
    /// `REBUILD_FAILPOINTS`) inherited.
    pub fn new() -> Self {
        let mut command = Command::new(binary());
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("REBUILD_STATE_DIR")
            .env_remove("REBUILD_STATE")
            .env_remove("REBUILD_FAILPOINTS");
        Self {
            command,
            stdin: None,
            terminal: false,
        }
    }

    /// Talk to AWS at `endpoint` (moto or a proxy) with static test credentials and no
    /// ambient AWS configuration.
    pub fn aws(self, endpoint: &str) -> Self {
        self.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_REGION")
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// `--playbook PATH`.
    pub fn playbook(self, path: &Path) -> Self {
        self.arg("--playbook").arg(path)
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// An environment variable removed.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// The state directory (`REBUILD_STATE_DIR`).
    pub fn state_dir(self, path: &Path) -> Self {
        self.env("REBUILD_STATE_DIR", path)
    }

    /// Kill the binary with SIGKILL at a failpoint (`REBUILD_FAILPOINTS`).
    pub fn failpoint(self, failpoint: &str) -> Self {
        self.env("REBUILD_FAILPOINTS", failpoint)
    }

    /// Run in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// What the binary reads on its standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// Run under a pseudo-terminal (`script` from util-linux), so the binary sees a
    /// terminal; what [`Test::stdin`] gives is typed into it. The terminal's output (stdout
    /// and stderr together) is the outcome's stdout.
    pub fn on_a_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Start on a pseudo-terminal whose output a virtual screen renders, to type answers
    /// as its questions appear (see [`Screen`]).
    pub fn on_a_screen(mut self) -> Screen {
        self.terminal = true;
        let (mut command, _) = self.into_command();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        Screen::watch(child)
    }

    /// Run to the end.
    pub fn run(self) -> Outcome {
        let (mut command, stdin) = self.into_command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = start(command, stdin.as_deref());
        Outcome::new(
            child
                .wait_with_output()
                .expect("wait for the rebuild binary"),
        )
    }

    /// Start in the background, output captured.
    pub fn spawn(self) -> Running {
        let (mut command, stdin) = self.into_command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running {
            child: start(command, stdin.as_deref()),
        }
    }

    /// The process it would start (not on a terminal), for a caller that runs it its own
    /// way (the benchmarks measure its memory).
    #[allow(
        dead_code,
        reason = "only the benchmarks use it, and they compile this module too"
    )]
    pub fn command(self) -> Command {
        assert!(!self.terminal, "a terminal run is started by `script`");
        self.command
    }

    /// Run to the end with stdout and stderr shown as they come (the drill); the exit code.
    pub fn run_shown(self) -> i32 {
        let (mut command, stdin) = self.into_command();
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        let child = start(command, stdin.as_deref());
        let output = child
            .wait_with_output()
            .expect("wait for the rebuild binary");
        output.status.code().unwrap_or(-1)
    }

    /// The command to start: the binary, or `script` running it on a pseudo-terminal.
    fn into_command(self) -> (Command, Option<String>) {
        if !self.terminal {
            return (self.command, self.stdin);
        }
        let quoted: Vec<String> = self
            .command
            .get_args()
            .map(|arg| format!("'{}'", arg.to_string_lossy()))
            .collect();
        // The terminal has a known size, the one the virtual screen renders.
        let command_line = format!(
            "stty rows {ROWS} cols {COLUMNS}; exec {} {}",
            binary().display(),
            quoted.join(" ")
        );
        let mut script = Command::new("script");
        script.args(["-qfec", &command_line, "/dev/null"]);
        for (key, value) in self.command.get_envs() {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
        }
        if let Some(dir) = self.command.get_current_dir() {
            script.current_dir(dir);
        }
        // Typed input waits in the terminal until the program reads it.
        (script, Some(self.stdin.unwrap_or_default()))
    }
}

/// Start `command`, writing `stdin` to it (or giving it an empty one).
fn start(mut command: Command, stdin: Option<&str>) -> Child {
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        pipe.write_all(text.as_bytes())
            .expect("write the binary's stdin");
    }
    child
}

/// The binary running in the background.
pub struct Running {
    child: Child,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for it to end.
    pub fn wait(self) -> Outcome {
        Outcome::new(
            self.child
                .wait_with_output()
                .expect("wait for the rebuild binary"),
        )
    }
}

/// How a run ended and what it printed. Assertion helpers return `&Self` to chain.
pub struct Outcome {
    output: Output,
    stdout: String,
    stderr: String,
}

impl Outcome {
    pub(super) fn new(output: Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        Self {
            output,
            stdout,
            stderr,
        }
    }

    /// The exit code; `-1` when a signal ended it.
    pub fn exit_code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Standard output.
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// Standard error.
    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Everything: exit status, stdout and stderr, for messages and for checks that do not
    /// care where a line went.
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status, self.stdout, self.stderr
        )
    }

    /// Assert the exit code.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.exit_code(), code, "{}", self.text());
        self
    }

    /// Assert exit code 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        self.code(0)
    }

    /// Assert that SIGKILL ended it, at `failpoint`.
    #[track_caller]
    pub fn killed(&self, failpoint: &str) -> &Self {
        assert_eq!(
            self.output.status.signal(),
            Some(9),
            "expected SIGKILL at `{failpoint}`: {}",
            self.text()
        );
        self
    }

    /// Assert that stdout holds `expected`.
    #[track_caller]
    pub fn stdout_contains(&self, expected: &str) -> &Self {
        assert!(
            self.stdout.contains(expected),
            "stdout lacks {expected:?}: {}",
            self.text()
        );
        self
    }

    /// Assert that stderr holds `expected`.
    #[track_caller]
    pub fn stderr_contains(&self, expected: &str) -> &Self {
        assert!(
            self.stderr.contains(expected),
            "stderr lacks {expected:?}: {}",
            self.text()
        );
        self
    }

    /// Assert that neither stdout nor stderr holds `unexpected`.
    #[track_caller]
    pub fn output_lacks(&self, unexpected: &str) -> &Self {
        assert!(
            !self.text().contains(unexpected),
            "the output holds {unexpected:?}: {}",
            self.text()
        );
        self
    }

    /// Assert that stdout or stderr holds `expected`.
    #[track_caller]
    pub fn output_contains(&self, expected: &str) -> &Self {
        assert!(
            self.text().contains(expected),
            "the output lacks {expected:?}: {}",
            self.text()
        );
        self
    }

    /// Assert that `secret` is printed nowhere.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.text().contains(secret),
            "{secret:?} was printed: {}",
            self.text()
        );
        self
    }

    /// Stdout as one JSON value.
    #[track_caller]
    pub fn stdout_json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.text()))
    }

    /// Stdout as one JSON value per line.
    #[track_caller]
    pub fn stdout_json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not JSON: {line}: {error}"))
            })
            .collect()
    }
}
