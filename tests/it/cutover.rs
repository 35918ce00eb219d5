//! `dns.cutover` against moto's Route 53 (previous values journaled, records UPSERTed) and
//! `http.check` against a local HTTP server (passing, and failing with each check named).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::support::route53;
use crate::support::seed::{block_on, sdk_config};
use crate::support::world::{TARGET, World, step};

/// A tiny HTTP server: `/healthz` answers 200 `ok shop`, anything else 503.
fn serve_http() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 2048];
            let read = stream.read(&mut buffer).unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..read]);
            let (status, body) = if request.starts_with("GET /healthz ") {
                ("200 OK", "ok shop")
            } else {
                ("503 Service Unavailable", "down")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

fn playbook(dir: &Path, base_url: &str, health_path: &str) -> PathBuf {
    let text = format!(
        r#"name: cutover
source_region: ap-southeast-2
default_target: ap-southeast-1
steps:
  - id: dns
    kind: dns.cutover
    with:
      zone: shop.example.com
      records:
        - {{name: api.shop.example.com, type: CNAME, values: [api.ap-southeast-1.shop.example.com], ttl: 30}}
  - id: smoke
    kind: http.check
    needs: [dns]
    with:
      attempts: 2
      interval: 1s
      checks:
        - {{name: api-health, url: "{base_url}{health_path}", status: 200, body_contains: shop}}
"#
    );
    let path = dir.join("cutover.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn records(endpoint: &str, zone: &str) -> Vec<(String, String, Vec<String>)> {
    records_of_types(endpoint, zone, &["CNAME"])
}

/// The zone's record sets of these types: `(name, type, values)`.
fn records_of_types(
    endpoint: &str,
    zone: &str,
    types: &[&str],
) -> Vec<(String, String, Vec<String>)> {
    block_on(async {
        let route53 = aws_sdk_route53::Client::new(&sdk_config(endpoint, "us-east-1").await);
        let sets = route53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        sets.resource_record_sets()
            .iter()
            .filter(|set| types.contains(&set.r#type().as_str()))
            .map(|set| {
                (
                    set.name().to_string(),
                    set.r#type().as_str().to_string(),
                    set.resource_records()
                        .iter()
                        .map(|record| record.value().to_string())
                        .collect(),
                )
            })
            .collect()
    })
}

fn seed_zone(endpoint: &str) -> String {
    crate::support::seed::seed_zone(
        endpoint,
        "shop.example.com.",
        "api.shop.example.com.",
        "api.ap-southeast-2.shop.example.com",
    )
}

#[test]
fn dns_is_cut_over_with_the_old_values_journaled_and_smoke_checks_pass() {
    let world = World::new();
    let zone = seed_zone(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(dir.path(), &serve_http(), "/healthz");

    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&playbook)
        .run()
        .success()
        .output_contains("CNAME api.shop.example.com.: api.ap-southeast-2.shop.example.com → api.ap-southeast-1.shop.example.com");

    world.rebuild_with(&playbook).success();
    assert_eq!(
        records(&world.moto.endpoint, &zone),
        vec![(
            "api.shop.example.com.".to_string(),
            "CNAME".to_string(),
            vec!["api.ap-southeast-1.shop.example.com".to_string()]
        )]
    );
    let status = world.status();
    let dns = step(&status, "dns");
    assert_eq!(
        dns["pinned"]["previous"][0]["values"][0],
        "api.ap-southeast-2.shop.example.com"
    );
    assert_eq!(
        dns["outputs"]["records"][0]["previous"][0],
        "api.ap-southeast-2.shop.example.com"
    );
    let smoke = step(&status, "smoke");
    assert_eq!(smoke["outputs"]["results"]["api-health"]["passed"], true);
}

#[test]
fn a_failing_smoke_check_fails_the_run_naming_the_check() {
    let world = World::new();
    seed_zone(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(dir.path(), &serve_http(), "/broken");
    world
        .rebuild_with(&playbook)
        .code(1)
        .stderr_contains("1 of 1 smoke check(s) failed: `api-health`")
        .stderr_contains("HTTP 503, expected 200");
    let status = world.status();
    assert_eq!(step(&status, "smoke")["state"], "failed");
    assert_eq!(step(&status, "dns")["state"], "succeeded");
}

/// Every record set named `name` (any type): `(type, values)`.
fn sets_named(endpoint: &str, zone: &str, name: &str) -> Vec<(String, Vec<String>)> {
    records_of_types(endpoint, zone, &["A", "AAAA", "CNAME"])
        .into_iter()
        .filter(|(found, _, _)| found == name)
        .map(|(_, kind, values)| (kind, values))
        .collect()
}

#[test]
fn a_record_that_changes_type_replaces_the_old_one_in_one_change() {
    let world = World::new();
    let zone = seed_zone(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dir.path().join("retype.yaml");
    std::fs::write(
        &playbook,
        r#"name: retype
source_region: ap-southeast-2
default_target: ap-southeast-1
steps:
  - id: dns
    kind: dns.cutover
    with:
      zone: shop.example.com
      records:
        - {name: api.shop.example.com, type: A, values: [203.0.113.7], ttl: 30}
"#,
    )
    .unwrap();
    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&playbook)
        .run()
        .success()
        .output_contains(
            "A api.shop.example.com.: CNAME api.ap-southeast-2.shop.example.com (replaced) → 203.0.113.7",
        );

    world.rebuild_with(&playbook).success();
    // The CNAME is gone (a name with a CNAME can hold nothing else), the A record is there.
    assert_eq!(
        sets_named(&world.moto.endpoint, &zone, "api.shop.example.com."),
        vec![("A".to_string(), vec!["203.0.113.7".to_string()])]
    );
    let status = world.status();
    let dns = step(&status, "dns");
    assert_eq!(dns["pinned"]["previous"][0]["type"], "CNAME");
    assert_eq!(
        dns["outputs"]["records"][0]["previous"][0],
        "api.ap-southeast-2.shop.example.com"
    );
    assert_eq!(dns["outputs"]["records"][0]["previous_type"], "CNAME");

    // Run again (a new run): already pointing there, so nothing is asked or deleted.
    world.rebuild_with(&playbook).success();
    assert_eq!(
        sets_named(&world.moto.endpoint, &zone, "api.shop.example.com."),
        vec![("A".to_string(), vec!["203.0.113.7".to_string()])]
    );
}

/// The code of a refused change batch (`None` when it was accepted).
fn refused(outcome: Result<(), aws_sdk_route53::Error>) -> Option<String> {
    use aws_sdk_route53::error::ProvideErrorMetadata;
    outcome
        .err()
        .map(|error| error.code().unwrap_or("(none)").to_string())
}

#[test]
fn the_testbed_refuses_change_batches_that_route53_refuses() {
    use aws_sdk_route53::types::ChangeAction::{Create, Delete, Upsert};

    let world = World::new();
    let moto = &world.moto.endpoint;
    let zone = route53::create_zone(moto, "shop.example.com.", false);
    let api = route53::simple("api.shop.example.com.", "CNAME", 300, &["old.example.net"]);
    let status_a = route53::failover(
        "status.shop.example.com.",
        "primary",
        "PRIMARY",
        60,
        "192.0.2.1",
    );
    let old_lb = "shop-web-1234.ap-southeast-2.elb.amazonaws.com.";
    let www = route53::alias(
        "www.shop.example.com.",
        old_lb,
        route53::ELB_ZONE_AP_SOUTHEAST_2,
        true,
    );
    route53::put(moto, &zone, vec![api.clone(), status_a, www]);
    // A private twin of the zone: Route 53 lists both under the name, as moto does.
    let private = route53::create_zone(moto, "shop.example.com.", true);
    assert_eq!(
        route53::zones_named(moto, "shop.example.com."),
        vec![(zone.clone(), false), (private, true)]
    );
    // Moto remembers every value it saw: change the CNAME, so a DELETE of the old value is
    // one moto lets through.
    let api_now = route53::simple("api.shop.example.com.", "CNAME", 300, &["now.example.net"]);
    route53::put(moto, &zone, vec![api_now.clone()]);

    let cases = [
        ("a DELETE repeating old values", vec![(Delete, api.clone())]),
        (
            "a DELETE with another TTL",
            vec![(
                Delete,
                route53::simple("api.shop.example.com.", "CNAME", 60, &["now.example.net"]),
            )],
        ),
        (
            "an A record next to the CNAME",
            vec![(
                Upsert,
                route53::simple("api.shop.example.com.", "A", 60, &["192.0.2.7"]),
            )],
        ),
        (
            "a CNAME at the zone apex",
            vec![(
                Upsert,
                route53::simple("shop.example.com.", "CNAME", 60, &["lb.example.net"]),
            )],
        ),
        (
            "a simple record next to failover records of its type",
            vec![(
                Upsert,
                route53::simple("status.shop.example.com.", "A", 60, &["192.0.2.9"]),
            )],
        ),
        (
            "a DELETE of the alias with another EvaluateTargetHealth",
            vec![(
                Delete,
                route53::alias(
                    "www.shop.example.com.",
                    old_lb,
                    route53::ELB_ZONE_AP_SOUTHEAST_2,
                    false,
                ),
            )],
        ),
        (
            "a CREATE of a record that exists",
            vec![(Create, api_now.clone())],
        ),
    ];
    let proxy = world.endpoint().to_string();
    for (case, changes) in &cases {
        let outcome = block_on(route53::change(&proxy, &zone, changes.clone()));
        assert_eq!(
            refused(outcome),
            Some("InvalidChangeBatch".to_string()),
            "{case}"
        );
    }
    // What Route 53 accepts passes: the exact DELETE and a new record in one batch.
    let replace = vec![
        (Delete, api_now.clone()),
        (
            Upsert,
            route53::simple("api.shop.example.com.", "A", 60, &["192.0.2.7"]),
        ),
    ];
    assert_eq!(
        refused(block_on(route53::change(&proxy, &zone, replace))),
        None
    );
    let api_sets = route53::sets_named(moto, &zone, "api.shop.example.com.");
    assert_eq!(api_sets.len(), 1, "{api_sets:?}");
    assert_eq!(api_sets[0].r#type().as_str(), "A");
    assert_eq!(
        route53::record_sets(moto, &zone).len(),
        5,
        "NS, SOA, api, status, www"
    );

    // Moto alone takes a stale DELETE (the gap these rules close).
    let stale = route53::simple("api.shop.example.com.", "A", 60, &["192.0.2.8"]);
    route53::put(moto, &zone, vec![stale]);
    world.proxy().set_lenient(true);
    let old_a = route53::simple("api.shop.example.com.", "A", 60, &["192.0.2.7"]);
    assert_eq!(
        refused(block_on(route53::change(
            &proxy,
            &zone,
            vec![(Delete, old_a)]
        ))),
        None
    );
}
