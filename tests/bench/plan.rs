//! Section `plan`: what reading and planning a large playbook costs. A generated playbook
//! of 500 steps deploys 480 services in 20 waves: each wave is 24 `k8s.apply` steps (one
//! service each, needing the two services of the wave before that it calls, and using one
//! of their outputs) and an `http.check` of the wave's services, which the next wave
//! needs. Figures: `rebuild validate` and `rebuild plan` (against the testbed: the only
//! AWS call is the caller's identity, so the figures are the tool's own work), each with
//! its time and peak memory; and the crate's pure layers in this process — parse and
//! validate (`playbook::from_str`), `plan::waves`, `plan::skeleton` for a new run and for
//! a resume with half the steps done — with their time and the heap they took.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rebuild::journal::{Event, PlaybookParts, Record, RunState, Values, record, state};
use rebuild::plan::amend::Requested;
use rebuild::playbook::{self, Playbook};
use rebuild::stack::Stack;
use rebuild::steps::StepKinds;

use crate::Options;
use crate::figures::{Figure, in_process, measure, print_medians};
use crate::support::test::Test;
use crate::support::world::{TARGET, World};

/// Waves of services, and services per wave (plus one smoke check per wave).
const WAVES: usize = 20;
const SERVICES: usize = 24;

/// The manifest every service step renders (a Deployment and its Service).
const MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: "{{ service }}"
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: "{{ service }}"}
  template:
    metadata:
      labels: {app: "{{ service }}"}
    spec:
      containers:
        - name: app
          image: "registry.example.com/shop/{{ service }}:{{ image_tag }}"
          ports:
            - {containerPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata:
  name: "{{ service }}"
  namespace: shop
spec:
  selector: {app: "{{ service }}"}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;

fn service(wave: usize, index: usize) -> String {
    format!("svc-{wave:02}-{index:02}")
}

fn smoke(wave: usize) -> String {
    format!("smoke-{wave:02}")
}

/// The playbook's text: `WAVES × (SERVICES + 1)` steps.
pub fn playbook_text(manifests: &Path) -> String {
    let mut text = format!(
        "version: 1\nname: many-services\ndescription: {} services deployed in {WAVES} waves\n\
         source_region: ap-southeast-2\ndefault_target: ap-southeast-1\n\
         inputs:\n  kubeconfig:\n    default: /nonexistent/kubeconfig\n  \
         manifests:\n    default: {}\n  image_tag:\n    default: v1.0.0\nsteps:\n",
        WAVES * SERVICES,
        manifests.display()
    );
    for wave in 1..=WAVES {
        for index in 1..=SERVICES {
            let id = service(wave, index);
            let (needs, upstream) = if wave == 1 {
                (String::new(), String::new())
            } else {
                let calls = service(wave - 1, index);
                let also = service(wave - 1, index % SERVICES + 1);
                (
                    format!("    needs: [{}, {calls}, {also}]\n", smoke(wave - 1)),
                    format!("        upstream_objects: ${{steps.{calls}.objects}}\n"),
                )
            };
            let _ = write!(
                text,
                "  - id: {id}\n    kind: k8s.apply\n{needs}    timeout: 15m\n    \
                 retry: {{ attempts: 3, backoff: 10s }}\n    with:\n      \
                 kubeconfig: ${{inputs.kubeconfig}}\n      sources: [\"${{inputs.manifests}}\"]\n      \
                 verify_images: false\n      namespace: shop\n      values:\n        \
                 service: {id}\n        image_tag: ${{inputs.image_tag}}\n{upstream}      \
                 waves:\n        - {{ name: {id}, paths: [service.yaml], timeout: 5m }}\n"
            );
        }
        let ids: Vec<String> = (1..=SERVICES).map(|index| service(wave, index)).collect();
        let _ = write!(
            text,
            "  - id: {}\n    kind: http.check\n    needs: [{}]\n    timeout: 5m\n    with:\n      \
             attempts: 6\n      interval: 5s\n      checks:\n",
            smoke(wave),
            ids.join(", ")
        );
        for id in &ids {
            let _ = writeln!(
                text,
                "        - {{ name: {id}, url: \"http://{id}.shop.svc.cluster.local/healthz\" }}"
            );
        }
    }
    text
}

/// The journal of a run of `playbook` in which the first half of the steps succeeded.
fn half_done(playbook: &Playbook) -> RunState {
    let at = jiff::Timestamp::now();
    let mut records = vec![Record {
        v: record::SCHEMA_VERSION,
        seq: 1,
        at,
        event: Event::RunStarted {
            run_id: "20260101-000000-0001".into(),
            playbook_path: playbook.path.display().to_string(),
            playbook_name: playbook.name.clone(),
            playbook_digest: playbook.digest.clone(),
            source_region: playbook.source_region.value.clone(),
            target_region: TARGET.into(),
            stack: None,
            owned_by: rebuild::stack::OwnedBy::Stack,
            playbook_parts: Some(PlaybookParts {
                steps: playbook.step_digests(),
                settings: playbook.settings_digests(),
            }),
            inputs: Values::new(),
            accept_rpo: false,
            host: "bench".into(),
            tool_version: "0".into(),
            by: None,
        },
    }];
    for step in &playbook.steps[..playbook.steps.len() / 2] {
        let step = step.id.value.clone();
        for event in [
            Event::StepStarted {
                step: step.clone(),
                attempt: 1,
            },
            Event::StepSucceeded {
                step,
                attempt: 1,
                outputs: Values::from([("objects".to_string(), serde_json::json!(2))]),
            },
        ] {
            let seq = records.len() as u64 + 1;
            records.push(Record {
                v: record::SCHEMA_VERSION,
                seq,
                at,
                event,
            });
        }
    }
    state::fold(&records).expect("the journal folds")
}

/// One round of every measurement: (name, time, peak KiB) each.
fn one_round(file: &Path, text: &str, world: &World) -> Vec<Figure> {
    let mut figures = Vec::new();
    let kinds = StepKinds::builtin().specs();
    let (parsed, time, peak) = in_process(|| playbook::from_str(file, text, &kinds));
    let playbook = parsed.unwrap_or_else(|problems| panic!("{problems}"));
    assert_eq!(playbook.steps.len(), WAVES * (SERVICES + 1));
    figures.push(("parse and validate (in-process)", time, peak));
    let (waves, time, peak) = in_process(|| rebuild::plan::waves(&playbook));
    assert_eq!(waves.len(), WAVES * 2);
    figures.push(("plan::waves (in-process)", time, peak));
    let stack = Stack::default_for(&playbook.name, TARGET);
    let requested = Requested::default();
    let (plan, time, peak) =
        in_process(|| rebuild::plan::skeleton(&playbook, TARGET, &stack, None, &requested));
    assert!(plan.is_runnable());
    figures.push(("plan::skeleton, new run (in-process)", time, peak));
    let resumed = half_done(&playbook);
    let (plan, time, peak) = in_process(|| {
        rebuild::plan::skeleton(&playbook, TARGET, &stack, Some(&resumed), &requested)
    });
    assert!(plan.is_runnable(), "{:?}", plan.problems);
    figures.push(("plan::skeleton, resume half done (in-process)", time, peak));

    let validate = measure(Test::new().arg("validate").arg(file).command());
    let validate = validate.success();
    figures.push(("rebuild validate", validate.elapsed, validate.peak_kib));
    let plan = world
        .test()
        .args(["plan", "--target", TARGET, "--playbook"])
        .arg(file)
        .command();
    let plan = measure(plan).success();
    assert!(plan.stdout.contains("smoke-20"), "{}", plan.stdout);
    figures.push(("rebuild plan (testbed)", plan.elapsed, plan.peak_kib));
    figures
}

/// Run the section.
pub fn run(options: &Options) {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let manifests = folder.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("the manifests' folder");
    std::fs::write(manifests.join("service.yaml"), MANIFEST).expect("the manifest");
    let file: PathBuf = folder.path().join("many-services.yaml");
    let text = playbook_text(&manifests);
    std::fs::write(&file, &text).expect("the playbook");
    let world = World::new();
    let rounds: Vec<_> = (0..options.runs)
        .map(|_| one_round(&file, &text, &world))
        .collect();
    println!(
        "plan: a playbook of {} steps ({} services in {WAVES} waves, {} lines; target < 200 ms)",
        WAVES * (SERVICES + 1),
        WAVES * SERVICES,
        text.lines().count()
    );
    print_medians("plan", &rounds);
}
