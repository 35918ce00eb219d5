//! `aws.acm.certificate` against moto's ACM (review B4): the certificate users will be
//! served must be in the target region, issued, unexpired and for the public name, and
//! anything else stops the plan (exit 4) with what to do, before anything is built.

use std::path::{Path, PathBuf};

use crate::support::seed::{DR_REGION, PROD_REGION};
use crate::support::tls::{TestCa, import_into_acm, request_from_acm};
use crate::support::world::{TARGET, World};

const HOST: &str = "shop.example-shop.com";

fn playbook(dir: &Path) -> PathBuf {
    let path = dir.join("certificate.yaml");
    std::fs::write(
        &path,
        format!(
            "name: certificate\nsource_region: {PROD_REGION}\ninputs:\n  arn: \"\"\nsteps:\n  \
             - id: certificate\n    kind: aws.acm.certificate\n    with: {{arn: \"${{inputs.arn}}\", host: {HOST}}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn an_issued_certificate_of_the_target_region_for_the_public_name_passes_the_plan() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let wildcard = ca.server_certificate(&["*.example-shop.com"]);
    let arn = import_into_acm(&world.moto.endpoint, DR_REGION, &wildcard);
    world
        .test()
        .args(["plan", "--target", TARGET, "--input", &format!("arn={arn}")])
        .playbook(&playbook(dir.path()))
        .run()
        .success()
        .stdout_contains(&format!("certificate: {arn}"))
        .stdout_contains("covers: *.example-shop.com")
        .stdout_contains("No problems found.");
}

#[test]
fn a_certificate_that_cannot_serve_the_public_name_in_the_target_region_stops_the_plan() {
    let world = World::new();
    let dir = tempfile::tempdir().unwrap();
    let playbook = playbook(dir.path());
    let ca = TestCa::new();
    let endpoint = &world.moto.endpoint;
    let right = ca.server_certificate(&[HOST]);
    let in_source = import_into_acm(endpoint, PROD_REGION, &right);
    let other_name = import_into_acm(
        endpoint,
        DR_REGION,
        &ca.server_certificate(&["www.example-shop.com", "example-shop.com"]),
    );
    let pending = request_from_acm(endpoint, DR_REGION, HOST);
    let missing = in_source.replace(PROD_REGION, DR_REGION);
    let cases = [
        (String::new(), "no TLS certificate is given".to_string()),
        (
            in_source.clone(),
            format!(
                "certificate `{in_source}` is in {PROD_REGION}, not in the target region {DR_REGION}"
            ),
        ),
        (
            missing.clone(),
            format!("certificate `{missing}` does not exist in {DR_REGION}"),
        ),
        (
            other_name.clone(),
            format!("certificate `{other_name}` does not cover `{HOST}`"),
        ),
        (
            pending.clone(),
            format!("certificate `{pending}` is `PENDING_VALIDATION`, not `ISSUED`"),
        ),
    ];
    for (arn, problem) in cases {
        world
            .test()
            .args(["plan", "--target", TARGET, "--input", &format!("arn={arn}")])
            .playbook(&playbook)
            .run()
            .code(4)
            .output_contains(&problem)
            .output_contains("request and validate (or import) a certificate for the public name in the target region");
    }
}
