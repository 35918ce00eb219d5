//! The rebuild drill on the local testbed (`bash .ci/drill` runs this): the whole stand-in
//! world of `support::stack` — moto seeded with a production in ap-southeast-2, the shop's
//! repositories behind a GitHub stand-in, a real kube-apiserver — and then exactly what an
//! on-call engineer runs, with its output shown as they would see it:
//!
//!     rebuild plan --target ap-southeast-1
//!     rebuild --target ap-southeast-1 --yes
//!     rebuild status
//!
//! Ignored by the normal test run (`cargo test --test it drill:: -- --ignored --nocapture
//! --test-threads 1`); the drill fails if any command fails or the rebuilt application
//! does not answer its smoke check.

use crate::support::stack::{
    APP_REPO, CONFIG_RELEASE, CONFIG_REPO, OLD_TARGET, PUBLIC_HOST, RELEASE, Stack, TARGET_REGISTRY,
};
use crate::support::world::TARGET;

/// Print the command line as on-call would type it, then run it with its output shown.
fn show_and_run(stack: &Stack, args: &[String]) -> i32 {
    let shown: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg.clone()
            }
        })
        .collect();
    println!("\n== rebuild {}\n", shown.join(" "));
    stack
        .test()
        .args(args)
        .env("REBUILD_POLL_INTERVAL_MS", "200")
        .run_shown()
}

#[test]
#[ignore = "the drill: run with `bash .ci/drill`"]
fn drill() {
    println!("starting the testbed: moto (AWS), git daemon + GitHub stand-in, kube-apiserver ...");
    let stack = Stack::start();
    println!(
        "  AWS (moto):       {}\n  GitHub API:       {}\n  git:              {}\n  Kubernetes API:   {}\n  state directory:  {}",
        stack.world.moto.endpoint,
        stack.github.url,
        stack.daemon.url,
        stack.kube.server,
        stack.world.state.path().display()
    );
    println!(
        "production: `prod-db` snapshots (two copied to {TARGET}), releases {CONFIG_REPO}@{CONFIG_RELEASE} and {APP_REPO}@{RELEASE}, images replicated to {TARGET_REGISTRY}, DNS {PUBLIC_HOST} → {OLD_TARGET}"
    );

    let plan = show_and_run(&stack, &stack.args(&["plan", "--target", TARGET]));
    assert_eq!(plan, 0, "the plan failed");
    let run = show_and_run(&stack, &stack.args(&["--target", TARGET, "--yes"]));
    assert_eq!(run, 0, "the rebuild failed");
    let status = show_and_run(&stack, &["status".to_string()]);
    assert_eq!(status, 0, "status failed");

    let (kind, values) = stack.public_record();
    let web = stack.deployment("shop-web");
    println!(
        "\ndrill finished: DNS {PUBLIC_HOST} is now {kind} {}; shop-web runs {} ({} available)",
        values.join(", "),
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        web["status"]["availableReplicas"]
    );
    assert_eq!(
        values,
        vec![crate::support::kube::load_balancer_hostname(
            "shop", "shop-web"
        )]
    );
}
