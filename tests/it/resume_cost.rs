//! What a resume costs before it does new work: the default playbook on the whole testbed,
//! killed at its last mutating AWS call (the DNS cutover, before its Route 53 change), then
//! `rebuild resume --yes`. The completed steps must cost nothing in the cloud: no call of
//! theirs is made again, mutating or not; only the identity check and the cutover's own
//! reads and change are.

use crate::support::proxy::is_mutating;
use crate::support::stack::Stack;

/// The operation with Route 53's zone and change ids left out.
fn without_ids(operation: &str) -> String {
    let mut parts: Vec<&str> = operation.split('/').collect();
    for index in 1..parts.len() {
        if matches!(parts[index - 1], "hostedzone" | "change") {
            parts[index] = "ID";
        }
    }
    parts.join("/")
}

#[test]
fn a_resume_after_a_kill_at_the_cutover_calls_aws_only_for_the_cutover() {
    let stack = Stack::start();
    stack
        .rebuild_test()
        .failpoint("dns/before-change")
        .run()
        .killed("dns/before-change");
    let proxy = stack.world.proxy();
    proxy.reset_counts();

    stack.resume().success();

    let calls = proxy.calls();
    let services: Vec<&str> = calls.iter().map(|call| call.service.as_str()).collect();
    assert!(
        services
            .iter()
            .all(|service| matches!(*service, "sts" | "route53")),
        "a completed step called AWS again: {:#?}",
        calls
    );
    let mutating: Vec<String> = calls
        .iter()
        .filter(|call| is_mutating(&call.operation))
        .map(|call| without_ids(&call.operation))
        .collect();
    assert_eq!(
        mutating,
        ["POST /2013-04-01/hostedzone/ID/rrset"],
        "only the cutover's change, once"
    );
    // Before the change: who the run acts as, then the cutover's plan and its apply each
    // find the zone and read the record they replace.
    let change = calls
        .iter()
        .position(|call| is_mutating(&call.operation))
        .unwrap();
    let before: Vec<String> = calls[..change]
        .iter()
        .map(|call| without_ids(&call.operation))
        .collect();
    assert_eq!(
        before,
        [
            "GetCallerIdentity",
            "GET /2013-04-01/hostedzonesbyname",
            "GET /2013-04-01/hostedzone/ID/rrset",
            "GET /2013-04-01/hostedzonesbyname",
            "GET /2013-04-01/hostedzone/ID/rrset",
        ]
    );
    assert_eq!(stack.world.status()["state"], "succeeded");
}
