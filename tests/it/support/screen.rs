//! What a person at a terminal sees: the binary runs on a pseudo-terminal (`script`, as
//! [`Test::on_a_terminal`] does) while a virtual screen (`vt100`) renders its output,
//! carriage returns, cursor movements and line clears included, so a test can wait for a
//! question to be on the screen, check that nothing draws over it, and only then type.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::process::{Child, ChildStdin, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::test::Outcome;

/// The terminal's size, set on the pseudo-terminal and on the virtual screen alike: wide
/// enough that the DNS question fits on one row.
pub const ROWS: u16 = 40;
/// See [`ROWS`].
pub const COLUMNS: u16 = 250;

/// How long a question must stay whole on the screen before it is answered: several ticks
/// of the progress display (its overall bar ticks every 500 ms).
const HOLDS_STILL_FOR: Duration = Duration::from_millis(1500);

/// The binary running on a pseudo-terminal, its output rendered on a virtual screen.
pub struct Screen {
    child: Child,
    keyboard: Option<ChildStdin>,
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Screen {
    /// Render what `child` (`script`, stdin and stdout piped) prints.
    pub(super) fn watch(mut child: Child) -> Self {
        let keyboard = child.stdin.take().expect("a piped stdin");
        let mut output = child.stdout.take().expect("a piped stdout");
        let size = |value| NonZeroU16::new(value).expect("a screen has a size");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(size(ROWS), size(COLUMNS), 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (parser, raw) = (parser.clone(), raw.clone());
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = output.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    parser.lock().unwrap().process(&buffer[..read]);
                    raw.lock().unwrap().extend_from_slice(&buffer[..read]);
                }
            })
        };
        Self {
            child,
            keyboard: Some(keyboard),
            parser,
            raw,
            reader: Some(reader),
        }
    }

    /// The rows on the screen now, trailing blanks trimmed.
    pub fn rows(&self) -> Vec<String> {
        let parser = self.parser.lock().unwrap();
        parser
            .screen()
            .rows(0, COLUMNS)
            .map(|row| row.trim_end().to_string())
            .collect()
    }

    /// Wait until `question [y/N]` is a whole row of the screen (nothing drawn over it or
    /// after it), check that it stays so while the progress display would tick, then type
    /// `answer` and Enter.
    #[track_caller]
    pub fn answer(&mut self, question: &str, answer: &str) {
        let line = format!("{question} [y/N]");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.shows(&line) {
            assert!(
                Instant::now() < deadline && self.child.try_wait().unwrap().is_none(),
                "the question {line:?} never stood whole on a row of the screen:\n{}",
                self.show()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(HOLDS_STILL_FOR);
        assert!(
            self.shows(&line),
            "the question {line:?} was drawn over before it was answered:\n{}",
            self.show()
        );
        let keyboard = self.keyboard.as_mut().expect("the keyboard is open");
        keyboard
            .write_all(format!("{answer}\n").as_bytes())
            .expect("type the answer");
        keyboard.flush().expect("type the answer");
    }

    /// Type `keys` as they are (no Enter): `"\x03"` is Ctrl-C, which the terminal turns
    /// into SIGINT for the binary.
    pub fn type_keys(&mut self, keys: &str) {
        let keyboard = self.keyboard.as_mut().expect("the keyboard is open");
        keyboard.write_all(keys.as_bytes()).expect("type keys");
        keyboard.flush().expect("type keys");
    }

    /// Wait until a row of the screen contains `text`.
    #[track_caller]
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.rows().iter().any(|row| row.contains(text)) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared on the screen:\n{}",
                self.show()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the binary to end by itself, the keyboard still open (nothing typed, no
    /// end of input), within `limit`; then its outcome as [`Screen::finish`] gives it.
    #[track_caller]
    pub fn ends_within(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let screen = self.show();
                let _ = self.child.kill();
                panic!("the binary did not end within {limit:?} without an answer:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.finish()
    }

    /// Whether `line` is a whole row of the screen now.
    fn shows(&self, line: &str) -> bool {
        self.rows().iter().any(|row| row == line)
    }

    /// The screen now, framed, for failure messages.
    pub fn show(&self) -> String {
        let rows = self.rows();
        let mut text = String::from("--- screen\n");
        for row in &rows {
            text.push_str(row);
            text.push('\n');
        }
        text.push_str("--- end of screen");
        text
    }

    /// Wait for the binary to end: its terminal output is the outcome's stdout.
    pub fn finish(mut self) -> Outcome {
        drop(self.keyboard.take());
        let status = self.child.wait().expect("wait for the rebuild binary");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the screen reader ends");
        }
        let stdout = std::mem::take(&mut *self.raw.lock().unwrap());
        Outcome::new(Output {
            status,
            stdout,
            stderr: Vec::new(),
        })
    }
}
