//! `dns.cutover` against moto's Route 53 (previous values journaled, records UPSERTed) and
//! `http.check` against a local HTTP server (passing, and failing with each check named).

use std::path::{Path, PathBuf};

use crate::support::route53;
use crate::support::seed::{block_on, sdk_config};
use crate::support::world::{TARGET, World, step};

/// A tiny HTTP server: `/healthz` answers 200 `ok shop`, anything else 503.
fn serve_http() -> String {
    crate::support::http::serve("/healthz", "ok shop")
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
        .output_contains("CNAME api.shop.example.com.: api.ap-southeast-2.shop.example.com (TTL 300 s) → api.ap-southeast-1.shop.example.com");

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
            "A api.shop.example.com.: CNAME api.ap-southeast-2.shop.example.com (TTL 300 s), replaced → 203.0.113.7",
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

/// A playbook of one `dns.cutover` step: `with` is the step's parameters (YAML, indented
/// for the step's `with:`).
fn dns_playbook(dir: &Path, with: &str) -> PathBuf {
    let text = format!(
        "name: dns\nsource_region: ap-southeast-2\ndefault_target: ap-southeast-1\nsteps:\n  - id: dns\n    kind: dns.cutover\n    with:\n{with}"
    );
    let path = dir.join("dns.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const API: &str = "api.shop.example.com.";
const OLD_API: &str = "api.ap-southeast-2.shop.example.com";
const NEW_API: &str = "api.ap-southeast-1.shop.example.com";
const OLD_LB: &str = "shop-web-1234.ap-southeast-2.elb.amazonaws.com.";
const NEW_LB: &str = "shop-web-5678.ap-southeast-1.elb.amazonaws.com.";

fn cname_api_with(zone_lines: &str) -> String {
    format!(
        "      zone: shop.example.com\n{zone_lines}      records:\n        - {{name: api.shop.example.com, type: CNAME, values: [{NEW_API}], ttl: 60}}\n"
    )
}

/// Review B8: with split-horizon DNS, the private twin (listed first here) is not the zone
/// users resolve; it stays as it was.
#[test]
fn a_private_zone_of_the_same_name_is_left_alone() {
    let world = World::new();
    let moto = &world.moto.endpoint;
    let private = route53::create_zone(moto, "shop.example.com.", true);
    let internal = route53::simple(API, "CNAME", 300, &["api.internal.ap-southeast-2.example"]);
    route53::put(moto, &private, vec![internal.clone()]);
    let public = seed_zone(moto);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path(), &cname_api_with(""));

    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&playbook)
        .run()
        .success()
        .output_contains(&format!(
            "in hosted zone `{public}` (`shop.example.com.`, public)"
        ))
        .output_contains(&format!(
            "private zones of that name (left alone): {private}"
        ));
    world.rebuild_with(&playbook).success();
    assert_eq!(
        sets_named(moto, &public, API),
        vec![("CNAME".to_string(), vec![NEW_API.to_string()])]
    );
    assert_eq!(route53::sets_named(moto, &private, API), vec![internal]);
    assert_eq!(
        step(&world.status(), "dns")["outputs"]["zone_id"],
        public.as_str()
    );
}

/// Review B8: two public zones of one name: the plan does not guess; `zone_id` chooses.
#[test]
fn several_public_zones_of_the_name_stop_the_plan_until_zone_id_chooses() {
    let world = World::new();
    let moto = &world.moto.endpoint;
    let first = seed_zone(moto);
    let second = seed_zone(moto);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path(), &cname_api_with(""));
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains(&format!(
            "2 public hosted zones are named `shop.example.com.` (`{first}`, `{second}`): set `zone_id`"
        ));
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());

    let chosen = dns_playbook(
        dir.path(),
        &cname_api_with(&format!("      zone_id: {second}\n")),
    );
    world.rebuild_with(&chosen).success();
    let old = vec![("CNAME".to_string(), vec![OLD_API.to_string()])];
    let new = vec![("CNAME".to_string(), vec![NEW_API.to_string()])];
    assert_eq!(sets_named(moto, &first, API), old);
    assert_eq!(sets_named(moto, &second, API), new);
}

/// Review B9: the apex holds an alias A record to the lost region's load balancer; the
/// cutover aliases the new one (a CNAME is impossible there) and journals the old alias whole.
#[test]
fn an_apex_alias_is_replaced_by_an_alias_and_journaled_whole() {
    let world = World::new();
    let moto = &world.moto.endpoint;
    let zone = route53::create_zone(moto, "shop.example.com.", false);
    let old = route53::alias(
        "shop.example.com.",
        OLD_LB,
        route53::ELB_ZONE_AP_SOUTHEAST_2,
        true,
    );
    route53::put(moto, &zone, vec![old]);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(
        dir.path(),
        &format!(
            "      zone: shop.example.com\n      records:\n        - name: shop.example.com\n          alias: {{dns_name: {NEW_LB}, hosted_zone_id: {}, evaluate_target_health: true}}\n",
            route53::ELB_ZONE_AP_SOUTHEAST_1
        ),
    );
    world
        .test()
        .args(["plan", "--target", TARGET])
        .playbook(&playbook)
        .run()
        .success()
        .output_contains(&format!(
            "A shop.example.com.: alias to {OLD_LB} (zone Z1GM3OXH4ZPM65) → alias to {NEW_LB} (zone Z1LMS91P8CMLE5)"
        ));
    world.rebuild_with(&playbook).success();
    let now = route53::sets_named(moto, &zone, "shop.example.com.");
    let a: Vec<_> = now
        .iter()
        .filter(|set| set.r#type().as_str() == "A")
        .collect();
    assert_eq!(a.len(), 1, "{now:?}");
    let target = a[0].alias_target().unwrap();
    assert_eq!(
        (
            target.dns_name(),
            target.hosted_zone_id(),
            target.evaluate_target_health()
        ),
        (NEW_LB, route53::ELB_ZONE_AP_SOUTHEAST_1, true)
    );
    let status = world.status();
    let dns = step(&status, "dns");
    assert_eq!(
        dns["pinned"]["previous"][0]["sets"],
        serde_json::json!([{"Name": "shop.example.com.", "Type": "A", "AliasTarget": {
            "HostedZoneId": "Z1GM3OXH4ZPM65", "DNSName": OLD_LB, "EvaluateTargetHealth": true}}])
    );
    assert_eq!(
        dns["outputs"]["records"][0]["previous_sets"],
        dns["pinned"]["previous"][0]["sets"]
    );
}

/// Review B9: DNS allows no CNAME at the zone apex: a plan problem, before any change.
#[test]
fn a_cname_at_the_zone_apex_is_a_plan_problem() {
    let world = World::new();
    seed_zone(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(
        dir.path(),
        &format!(
            "      zone: shop.example.com\n      records:\n        - {{name: shop.example.com, type: CNAME, values: [{NEW_LB}]}}\n"
        ),
    );
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("record `shop.example.com.` is the zone apex, where DNS allows no CNAME")
        .stderr_contains("alias: {dns_name, hosted_zone_id}");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
}

/// Review B9: failover records at the name: the plan names them and nothing changes (the
/// old code deleted both and wrote one simple record, dropping the failover).
#[test]
fn routing_policy_records_at_the_name_stop_the_plan_naming_them() {
    let world = World::new();
    let moto = &world.moto.endpoint;
    let zone = route53::create_zone(moto, "shop.example.com.", false);
    let routed = vec![
        route53::failover(API, "sydney", "PRIMARY", 60, "192.0.2.10"),
        route53::failover(API, "singapore", "SECONDARY", 60, "198.51.100.10"),
    ];
    route53::put(moto, &zone, routed.clone());
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path(), &cname_api_with(""));
    world.proxy().reset_counts();
    world
        .rebuild_with(&playbook)
        .code(4)
        .stderr_contains("`api.shop.example.com.` has records with a routing policy (A `sydney` (failover PRIMARY) 192.0.2.10 (TTL 60 s); A `singapore` (failover SECONDARY) 198.51.100.10 (TTL 60 s))");
    assert_eq!(world.proxy().mutating_operations(), Vec::<String>::new());
    let mut now = route53::sets_named(moto, &zone, API);
    now.sort_by(|a, b| b.set_identifier().cmp(&a.set_identifier()));
    assert_eq!(now, routed);
}

/// Review C4: the old record's TTL is in the plan and in the question: resolvers may keep
/// the old answer that long after the change.
#[test]
fn the_dns_question_shows_the_old_ttl() {
    let world = World::new();
    let zone = seed_zone(&world.moto.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(dir.path(), &cname_api_with(""));
    world
        .test()
        .args(["--target", TARGET])
        .playbook(&playbook)
        .on_a_terminal()
        .stdin("y\nn\n")
        .run()
        .code(1)
        .stdout_contains(&format!("CNAME {API}: {OLD_API} (TTL 300 s) → {NEW_API}"))
        .stdout_contains(&format!(
            "Cut DNS over: CNAME {API} → {NEW_API} (now {OLD_API}, TTL 300 s)? [y/N]"
        ));
    assert_eq!(
        sets_named(&world.moto.endpoint, &zone, API),
        vec![("CNAME".to_string(), vec![OLD_API.to_string()])]
    );
}

/// Review B9 and "what we cannot test here" item 8: the journaled `previous` puts every
/// case back exactly — an alias at the apex, a simple CNAME with its TTL, an alias replaced
/// by a CNAME — while the private twin and failover records elsewhere were never touched.
#[test]
fn the_journaled_previous_restores_every_record_exactly() {
    use aws_sdk_route53::types::ChangeAction;

    let world = World::new();
    let moto = &world.moto.endpoint;
    let private = route53::create_zone(moto, "shop.example.com.", true);
    route53::put(
        moto,
        &private,
        vec![route53::simple(
            API,
            "CNAME",
            300,
            &["api.internal.example"],
        )],
    );
    let zone = route53::create_zone(moto, "shop.example.com.", false);
    route53::put(
        moto,
        &zone,
        vec![
            route53::alias(
                "shop.example.com.",
                OLD_LB,
                route53::ELB_ZONE_AP_SOUTHEAST_2,
                true,
            ),
            route53::simple(API, "CNAME", 300, &[OLD_API]),
            route53::alias(
                "www.shop.example.com.",
                OLD_LB,
                route53::ELB_ZONE_AP_SOUTHEAST_2,
                false,
            ),
            route53::failover(
                "status.shop.example.com.",
                "sydney",
                "PRIMARY",
                60,
                "192.0.2.10",
            ),
            route53::failover(
                "status.shop.example.com.",
                "singapore",
                "SECONDARY",
                60,
                "198.51.100.10",
            ),
        ],
    );
    let before = route53::record_sets(moto, &zone);
    let private_before = route53::record_sets(moto, &private);
    let dir = tempfile::tempdir().unwrap();
    let playbook = dns_playbook(
        dir.path(),
        &format!(
            "      zone: shop.example.com\n      records:\n        - name: shop.example.com\n          alias: {{dns_name: {NEW_LB}, hosted_zone_id: {}}}\n        - {{name: api.shop.example.com, values: [{NEW_API}]}}\n        - {{name: www.shop.example.com, values: [{NEW_LB}], ttl: 30}}\n",
            route53::ELB_ZONE_AP_SOUTHEAST_1
        ),
    );
    world.rebuild_with(&playbook).success();
    assert_ne!(route53::record_sets(moto, &zone), before);

    // The revert the runbook describes: per record, delete what the cutover wrote and
    // create every journaled set, in one batch, through Route 53's rules.
    let status = world.status();
    let dns = step(&status, "dns");
    let mut changes = Vec::new();
    for (record, previous) in dns["outputs"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .zip(dns["pinned"]["previous"].as_array().unwrap())
    {
        let name = record["name"].as_str().unwrap();
        let written = route53::sets_named(moto, &zone, name);
        for set in written
            .into_iter()
            .filter(|set| set.r#type().as_str() == record["type"])
        {
            changes.push((ChangeAction::Delete, set));
        }
        for set in previous["sets"].as_array().unwrap() {
            changes.push((ChangeAction::Create, route53::from_journal(set)));
        }
    }
    block_on(route53::change(world.endpoint(), &zone, changes)).unwrap();
    assert_eq!(route53::record_sets(moto, &zone), before);
    assert_eq!(route53::record_sets(moto, &private), private_before);
}
