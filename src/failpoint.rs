//! Test-only failpoints: named places where the process can be made to die with SIGKILL,
//! so tests place crashes deterministically instead of guessing with sleeps.
//!
//! `REBUILD_FAILPOINTS=network/after-subnets` kills the process the first time that point is
//! reached; `name@N` kills at the N-th time. Several points are separated by commas. Unset
//! (the normal case) costs one environment lookup per process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const VARIABLE: &str = "REBUILD_FAILPOINTS";

fn armed() -> &'static HashMap<String, u32> {
    static ARMED: OnceLock<HashMap<String, u32>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(VARIABLE)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('@') {
                Some((name, count)) => (name.to_string(), count.parse().unwrap_or(1)),
                None => (item.to_string(), 1),
            })
            .collect()
    })
}

/// Die here with SIGKILL if the failpoint `name` is armed and its count is reached.
pub fn hit(name: &str) {
    let Some(target) = armed().get(name) else {
        return;
    };
    static SEEN: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = seen.entry(name.to_string()).or_insert(0);
    *count += 1;
    if *count >= *target {
        #[expect(
            clippy::print_stderr,
            reason = "a test's crash point says where it killed the process"
        )]
        {
            eprintln!("failpoint `{name}` reached: killing this process (SIGKILL)");
        }
        kill_self();
    }
}

#[expect(unsafe_code, reason = "raise(SIGKILL) has no safe wrapper in std")]
fn kill_self() -> ! {
    // SAFETY: raise only sends a signal to this process; SIGKILL cannot be caught.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    std::process::abort()
}
