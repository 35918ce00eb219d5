//! `dns.cutover` against moto's Route 53 (previous values journaled, records UPSERTed) and
//! `http.check` against a local HTTP server (passing, and failing with each check named).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

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
