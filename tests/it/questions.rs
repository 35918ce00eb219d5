//! Questions on a terminal stand on their own line, with no progress bar drawn over them
//! (issue 9, item 5): the run's confirmation, `rebuild resume`'s, and the DNS cutover's
//! question asked while steps run. The binary runs on a pseudo-terminal and a virtual
//! screen renders what a person would see; each answer is typed only once its question has
//! stood whole on the screen through several ticks of the progress display.

use std::path::Path;

use crate::support::seed::seed_zone;
use crate::support::world::{TARGET, World, step};

const API: &str = "api.shop.example.com.";
const OLD_API: &str = "api.ap-southeast-2.shop.example.com";
const NEW_API: &str = "api.ap-southeast-1.shop.example.com";

/// One step, the DNS cutover of `API` to `NEW_API`: a question asked while the progress
/// display runs.
fn dns_playbook(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "name: dns\nsource_region: ap-southeast-2\nsteps:\n  - id: dns\n    kind: dns.cutover\n    with:\n      zone: shop.example.com\n      records:\n        - {{name: api.shop.example.com, type: CNAME, values: [{NEW_API}], ttl: 60}}\n"
    );
    let path = dir.join("dns.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn regression_issue_9_questions_are_not_drawn_over_by_the_progress_display() {
    let world = World::new();
    seed_zone(&world.moto.endpoint, "shop.example.com.", API, OLD_API);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path());
    let dns_question = format!("Cut DNS over: CNAME {API} → {NEW_API} (now {OLD_API}, TTL 300 s)?");

    // Yes to the run, no to the DNS change: the step is refused, nothing changed.
    let mut screen = world
        .test()
        .args(["--target", TARGET])
        .playbook(&playbook)
        .on_a_screen();
    screen.answer("Rebuild `dns` in ap-southeast-1 now?", "y");
    screen.answer(&dns_question, "n");
    screen
        .finish()
        .code(1)
        .stdout_contains(&format!("not confirmed: {dns_question}"));
    let status = world.status();
    assert_eq!(step(&status, "dns")["state"], "failed");
    let run_id = status["run_id"].as_str().unwrap().to_string();

    // `rebuild resume` asks before it continues, and the DNS question comes again.
    let mut screen = world.test().arg("resume").on_a_screen();
    screen.answer(&format!("Resume run {run_id} in {TARGET}?"), "y");
    screen.answer(&dns_question, "y");
    screen.finish().success();
    assert_eq!(step(&world.status(), "dns")["state"], "succeeded");
}

/// Ctrl-C while the DNS question waits: the notice shows at once, below the question, the
/// run stops at its safe point without an answer being typed, and the process ends (exit
/// 130) with the step interrupted and resumable.
#[test]
fn ctrl_c_while_a_question_waits_stops_the_run_without_an_answer() {
    let world = World::new();
    seed_zone(&world.moto.endpoint, "shop.example.com.", API, OLD_API);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path());
    let dns_question = format!("Cut DNS over: CNAME {API} → {NEW_API} (now {OLD_API}, TTL 300 s)?");

    let mut screen = world
        .test()
        .args(["--target", TARGET])
        .playbook(&playbook)
        .on_a_screen();
    screen.answer("Rebuild `dns` in ap-southeast-1 now?", "y");
    screen.wait_for(&format!("{dns_question} [y/N]"));
    screen.type_keys("\x03");
    screen.wait_for("SIGINT received: stopping at the next safe point");
    screen
        .ends_within(std::time::Duration::from_secs(30))
        .code(130);
    let status = world.status();
    assert_ne!(step(&status, "dns")["state"], "succeeded", "{status:#}");
    assert_ne!(status["state"], "succeeded", "{status:#}");
}
