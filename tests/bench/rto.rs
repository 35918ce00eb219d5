//! Section `rto`: the time of a whole rebuild against the lower bound of the playbook's
//! graph. The default playbook runs on the whole testbed (`support::stack`) with the
//! cloud's durations scaled down — EKS control plane 12 min, node group 3 min, NAT gateway
//! 2 min, RDS restore 25 min, each deploy wave that starts Pods 1 min; one simulated minute
//! is a second (a tenth with `--quick`) — and default settings: no poll interval or other
//! tuning is passed. Printed: wall time, the critical path under the same durations (and
//! the ratio), the sum of all durations (what a one-at-a-time runner pays) and wall/sum,
//! how late each wait noticed that its resource was ready, the API calls each step made
//! (and per minute of its wait), and the process's peak resident memory.
//!
//! A first run, not measured, is the rehearsal a team runs before it needs the tool: its
//! journal is in the state, so the measured runs know how long each wait took before. The
//! measured runs then each start from a fresh cloud and a fresh cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::Options;
use crate::figures::{median, median_secs};
use crate::support::playbooks::{default_playbook, infrastructure_playbook};
use crate::support::seed::{block_on, sdk_config};
use crate::support::stack::Stack;
use crate::support::test::use_binary;
use crate::support::world::TARGET;

/// The cloud's durations, in simulated minutes.
struct Durations {
    nat: u32,
    eks: u32,
    nodegroup: u32,
    rds: u32,
    /// Each deploy wave that starts Pods (`migrate`, `backend`, `frontend`: the `config`
    /// wave starts none).
    wave: u32,
}

const REALISTIC: Durations = Durations {
    nat: 2,
    eks: 12,
    nodegroup: 3,
    rds: 25,
    wave: 1,
};

/// The default playbook's waves that start Pods.
const POD_WAVES: u32 = 3;

/// Latency the proxy adds to every AWS call.
const CALL_LATENCY: Duration = Duration::from_millis(5);

/// How long a step of the default playbook takes in the cloud, in simulated minutes.
fn simulated_minutes(step: &rebuild::playbook::StepSpec, durations: &Durations) -> u32 {
    let nat_gateways = match step.param("nat_gateways").map(|value| &value.value) {
        Some(rebuild::playbook::ParamValue::Integer(count)) => *count,
        _ => 0,
    };
    match step.kind.value.as_str() {
        "aws.network" if nat_gateways > 0 => durations.nat,
        "aws.network.egress" => durations.nat,
        "aws.eks.cluster" => durations.eks,
        "aws.eks.nodegroup" => durations.nodegroup,
        "aws.rds.restore" => durations.rds,
        "k8s.apply" => POD_WAVES * durations.wave,
        _ => 0,
    }
}

/// How long a step's resources take one after the other, in simulated minutes: what a
/// runner that makes one resource at a time pays (each NAT gateway in turn).
fn one_at_a_time_minutes(step: &rebuild::playbook::StepSpec, durations: &Durations) -> u32 {
    let gateways = match step.param("nat_gateways").map(|value| &value.value) {
        Some(rebuild::playbook::ParamValue::Integer(count)) => u32::try_from(*count).unwrap_or(1),
        _ => 1,
    };
    match step.kind.value.as_str() {
        "aws.network" | "aws.network.egress" => simulated_minutes(step, durations) * gateways,
        _ => simulated_minutes(step, durations),
    }
}

/// What one measured run gave.
struct Figures {
    wall: Duration,
    /// From the start to the first step's start: the plan.
    plan: Duration,
    /// How long the testbed took to roll the deploy's waves out, added up.
    waves_rolled_out: Duration,
    /// Where the testbed's waves spent their time beyond their Pods' startup.
    testbed_waves: TestbedWaves,
    /// Step id -> (duration from `status`, API calls from the debug log).
    steps: BTreeMap<String, (Duration, usize)>,
    /// What was waited for -> how late the tool noticed it ready.
    late: Vec<(String, Duration)>,
    /// `step/wait` -> (how long, checks made), from the journal's `step_waited` records.
    waits: BTreeMap<String, (Duration, u64)>,
    /// Step id -> (how long its plan took, API calls it made), from the debug log.
    planned: BTreeMap<String, (Duration, usize)>,
    /// The chain of steps the wall time waited on, from the first to the last to end.
    chain: Chain,
    peak_rss_kib: u64,
}

/// The steps the wall time waited on: each after the need that ended last (the first after
/// the plan), with the time between that need's end and its start, then the time from the
/// last step's end to the process's exit.
#[derive(Default)]
struct Chain {
    /// (step id, from what it waited for to its start, its own time), first step first.
    steps: Vec<(String, Duration, Duration)>,
    /// From the last step's end to the process's exit.
    exit: Duration,
}

/// The chain of `status`'s steps that the wall time waited on, the process having been
/// started at `spawned` and having run for `wall`.
fn chain(
    playbook: &rebuild::playbook::Playbook,
    status: &Value,
    spawned: jiff::Timestamp,
    wall: Duration,
) -> Chain {
    let time = |step: &Value, field: &str| -> Option<jiff::Timestamp> {
        step[field].as_str()?.parse().ok()
    };
    let times: BTreeMap<String, (jiff::Timestamp, jiff::Timestamp)> = status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| {
            Some((
                step["id"].as_str()?.to_string(),
                (time(step, "started")?, time(step, "ended")?),
            ))
        })
        .collect();
    let between = |from: jiff::Timestamp, to: jiff::Timestamp| {
        Duration::try_from(to.duration_since(from)).unwrap_or_default()
    };
    let Some((last, (_, ended))) = times.iter().max_by_key(|(_, (_, ended))| *ended) else {
        return Chain::default();
    };
    let exit = wall.saturating_sub(between(spawned, *ended));
    let mut steps = Vec::new();
    let mut cursor = Some(last.clone());
    while let Some(id) = cursor {
        let (started, ended) = times[&id];
        let waited_on = playbook.step(&id).and_then(|step| {
            step.needs
                .iter()
                .filter_map(|need| Some((need.value.clone(), times.get(&need.value)?.1)))
                .max_by_key(|(_, ended)| *ended)
        });
        let since = waited_on.as_ref().map_or(spawned, |(_, ended)| *ended);
        steps.push((id, between(since, started), between(started, ended)));
        cursor = waited_on.map(|(need, _)| need);
    }
    steps.reverse();
    Chain { steps, exit }
}

/// Make moto build the backends a rebuild in `region` calls, as a read-only call to each
/// would. Moto builds a region's backend of a service on its first call (EC2's loads its
/// catalogues: a quarter of a second), where AWS has them ready: the benchmark calls this
/// before it measures, so a measured run does not pay moto's start-up.
pub fn warm_up(endpoint: &str, region: &str) {
    block_on(async {
        let config = sdk_config(endpoint, region).await;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let rds = aws_sdk_rds::Client::new(&config);
        let eks = aws_sdk_eks::Client::new(&config);
        let acm = aws_sdk_acm::Client::new(&config);
        let ecr = aws_sdk_ecr::Client::new(&config);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let quotas = aws_sdk_servicequotas::Client::new(&config);
        let sts = aws_sdk_sts::Client::new(&config);
        let (zones, instances, clusters, certificates, repositories, listed, services, caller) = tokio::join!(
            ec2.describe_availability_zones().send(),
            rds.describe_db_instances().send(),
            eks.list_clusters().send(),
            acm.list_certificates().send(),
            ecr.describe_repositories().send(),
            secrets.list_secrets().send(),
            quotas.list_services().send(),
            sts.get_caller_identity().send(),
        );
        zones.expect("DescribeAvailabilityZones");
        instances.expect("DescribeDBInstances");
        clusters.expect("ListClusters");
        certificates.expect("ListCertificates");
        repositories.expect("DescribeRepositories");
        listed.expect("ListSecrets");
        caller.expect("GetCallerIdentity");
        // Not every moto answers this one; it is asked only to build the backend.
        let _ = services;
    });
}

fn scaled(minute: Duration, minutes: u32) -> Duration {
    minute * minutes
}

/// The testbed with the cloud's durations, and the rebuild's command line.
fn stack_with(minute: Duration, durations: &Durations) -> Stack {
    let stack = Stack::start();
    // AWS has every service ready; moto builds each on its first call.
    warm_up(&stack.world.moto.endpoint, TARGET);
    let proxy = stack.world.proxy();
    proxy.set_latency(CALL_LATENCY);
    proxy.hold_ec2_nat_pending(scaled(minute, durations.nat));
    proxy.hold_eks_status(scaled(minute, durations.eks));
    proxy.hold_eks_nodegroup_status(scaled(minute, durations.nodegroup));
    proxy.hold_rds_status(scaled(minute, durations.rds));
    stack.kube.set_pod_startup(scaled(minute, durations.wave));
    // Not simulated: a new load balancer's name resolves at once (on AWS it takes a
    // minute or two, while the last wave rolls out and DNS is cut over).
    stack
        .kube
        .configure_load_balancers(|settings| settings.publish_after = Duration::ZERO);
    stack
}

/// `rebuild --target ap-southeast-1 --yes` in `state` — with default settings (the
/// testbed's quick polls removed) unless `quick_polls` — and its wall time.
fn rebuild(stack: &Stack, variant: &Variant, quick_polls: bool) -> (Duration, jiff::Timestamp) {
    let mut args = vec![
        "--target".to_string(),
        TARGET.to_string(),
        "--yes".to_string(),
        "--playbook".to_string(),
        variant.playbook.display().to_string(),
    ];
    for input in stack.inputs() {
        args.extend(["--input".to_string(), input]);
    }
    let mut run = stack
        .test()
        .args(args)
        .state_dir(variant.state.path())
        .args(&variant.args);
    if !quick_polls {
        run = run.env_remove("REBUILD_POLL_INTERVAL_MS");
    }
    let (started, at) = (Instant::now(), jiff::Timestamp::now());
    let outcome = run.run();
    let wall = started.elapsed();
    outcome.success();
    (wall, at)
}

/// The newest run's folder in `state`.
fn newest_run(state: &Path) -> std::path::PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(state.join("runs"))
        .expect("the state has runs")
        .map(|entry| entry.expect("a run").path())
        .collect();
    runs.sort_by_key(|path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    runs.pop().expect("a run")
}

/// Step id -> API calls it made: the debug log's SDK lines of each attempt's span.
fn calls_per_step(log: &str) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for line in log.lines() {
        // The SDK's orchestrator logs each attempt of each operation.
        if !line.contains("beginning attempt #") {
            continue;
        }
        let step = line
            .split("step{id=")
            .nth(1)
            .and_then(|rest| rest.split([' ', '}']).next())
            .unwrap_or("(plan)");
        *calls.entry(step.to_string()).or_default() += 1;
    }
    calls
}

/// Step id -> (how long its kind took to plan it, API calls it made then), from the debug
/// log's `plan{step=…}` spans.
fn plan_per_step(log: &str) -> BTreeMap<String, (Duration, usize)> {
    let mut planned: BTreeMap<String, (Duration, usize)> = BTreeMap::new();
    for line in log.lines() {
        let Some(step) = line
            .split("plan{step=")
            .nth(1)
            .and_then(|rest| rest.split([' ', '}']).next())
        else {
            continue;
        };
        let entry = planned.entry(step.to_string()).or_default();
        if line.contains("beginning attempt #") {
            entry.1 += 1;
        } else if let Some(ms) = line
            .split("took_ms=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        {
            entry.0 = Duration::from_millis(ms);
        }
    }
    planned
}

/// `step/wait` -> (how long, checks made), from a journal's `step_waited` records.
fn waits(journal: &str) -> BTreeMap<String, (Duration, u64)> {
    journal
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["record"]["event"]["type"] == "step_waited")
        .map(|line| {
            let event = &line["record"]["event"];
            let key = format!(
                "{}/{}",
                event["step"].as_str().unwrap_or(""),
                event["wait"].as_str().unwrap_or("")
            );
            let took = Duration::from_millis(event["waited_ms"].as_u64().unwrap_or(0));
            (key, (took, event["polls"].as_u64().unwrap_or(0)))
        })
        .collect()
}

fn peak_rss_kib(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("peak_rss_kib=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Step id -> how long it ran, from `rebuild status`.
fn step_durations(status: &Value) -> BTreeMap<String, Duration> {
    let time = |step: &Value, field: &str| -> Option<jiff::Timestamp> {
        step[field].as_str()?.parse().ok()
    };
    status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| {
            let took = time(step, "ended")?.duration_since(time(step, "started")?);
            Some((
                step["id"].as_str()?.to_string(),
                Duration::try_from(took).unwrap_or_default(),
            ))
        })
        .collect()
}

/// How late each deploy wave was noticed — from the last of its Pods turning Ready to the
/// end of the step's wait for it (journaled as `step_waited`) — and how long the testbed
/// took to roll the waves out, added up (from each wait's first check, right after the
/// wave was applied, to its last Pod turning Ready).
fn wave_lateness(
    stack: &Stack,
    run: &Path,
    startup: Duration,
) -> (Vec<(String, Duration)>, Duration, TestbedWaves) {
    let ready = stack.kube.pods_ready();
    let seen = stack.kube.pods_seen();
    let mut testbed = TestbedWaves::default();
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default();
    let mut late = Vec::new();
    let mut rolled_out = Duration::ZERO;
    for (wave, pods) in [
        ("migrate", "shop/shop-migrate"),
        ("backend", "shop/shop-worker"),
        ("frontend", "shop/shop-web"),
    ] {
        let of_wave = |pod: &String| {
            pod.starts_with(pods) || (wave == "backend" && pod.starts_with("shop/shop-api"))
        };
        let all_ready = ready
            .iter()
            .filter(|(pod, _)| of_wave(pod))
            .map(|(_, at)| *at)
            .max();
        let first_seen = seen
            .iter()
            .filter(|(pod, _)| of_wave(pod))
            .map(|(_, at)| *at)
            .min();
        // The stand-in's own delay: how long after its startup each Pod turned Ready.
        let stand_in = ready
            .iter()
            .filter(|(pod, _)| of_wave(pod))
            .filter_map(|(pod, at)| {
                let seen = seen.get(pod)?;
                at.duration_since(*seen + startup).ok()
            })
            .max()
            .unwrap_or_default();
        let noticed = journal.lines().find_map(|line| {
            let line: Value = serde_json::from_str(line).ok()?;
            let record = &line["record"];
            let event = &record["event"];
            (event["type"] == "step_waited"
                && event["wait"].as_str() == Some(&format!("wave:{wave}")))
            .then(|| {
                let at = record["at"].as_str()?.parse::<jiff::Timestamp>().ok()?;
                let waited = Duration::from_millis(event["waited_ms"].as_u64()?);
                Some((at, waited))
            })
            .flatten()
        });
        if let (Some(ready), Some((noticed, waited))) = (all_ready, noticed) {
            let ready = jiff::Timestamp::try_from(ready).expect("a time after 1970");
            let by = Duration::try_from(noticed.duration_since(ready)).unwrap_or_default();
            late.push((format!("wave {wave}"), by));
            rolled_out += waited.saturating_sub(by);
            let began = noticed - jiff::SignedDuration::try_from(waited).unwrap_or_default();
            if let Some(first_seen) = first_seen {
                let first_seen = jiff::Timestamp::try_from(first_seen).expect("a time after 1970");
                testbed.to_first_pod +=
                    Duration::try_from(first_seen.duration_since(began)).unwrap_or_default();
            }
            testbed.stand_in += stand_in;
        }
    }
    (late, rolled_out, testbed)
}

/// Where the testbed's waves spent their time beyond their Pods' startup, added up over
/// the waves.
#[derive(Default, Clone, Copy)]
struct TestbedWaves {
    /// From the wave's wait's first check to the stand-in first seeing one of its Pods (the
    /// controller manager making them, and the stand-in's pace).
    to_first_pod: Duration,
    /// From the end of a Pod's startup to the stand-in making it Ready (its checks and the
    /// status update), the wave's slowest Pod.
    stand_in: Duration,
}

/// One measured run on a fresh testbed, with the rehearsal's journal in `state`.
fn measured_run(minute: Duration, variant: &Variant) -> Figures {
    let state = variant.state.path();
    let playbook = rebuild::playbook::load(
        &variant.playbook,
        &rebuild::steps::StepKinds::builtin().specs(),
    )
    .expect("the variant's playbook loads");
    let stack = stack_with(minute, &REALISTIC);
    let (wall, spawned) = rebuild(&stack, variant, false);
    let run = newest_run(state);
    let log = std::fs::read_to_string(run.join("debug.log")).unwrap_or_default();
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default();
    let status = stack
        .test()
        .state_dir(state)
        .args(["status", "--output", "json"])
        .run()
        .success()
        .stdout_json();
    let first_step = status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| step["started"].as_str()?.parse::<jiff::Timestamp>().ok())
        .min()
        .unwrap_or(spawned);
    let plan = Duration::try_from(first_step.duration_since(spawned)).unwrap_or_default();
    let calls = calls_per_step(&log);
    let steps = step_durations(&status)
        .into_iter()
        .map(|(id, took)| {
            let made = calls.get(&id).copied().unwrap_or(0);
            (id, (took, made))
        })
        .collect();
    let mut late: Vec<(String, Duration)> = stack
        .world
        .proxy()
        .notices()
        .into_iter()
        .map(|notice| {
            let what = match notice.resource.as_str() {
                eks if eks.contains("/node-groups/") => "node group",
                eks if eks.starts_with("eks ") => "cluster",
                nat if nat.starts_with("nat gateway") => "NAT gateways",
                _ => "database",
            };
            (what.to_string(), notice.late())
        })
        .collect();
    let (waves_late, waves_rolled_out, testbed_waves) =
        wave_lateness(&stack, &run, scaled(minute, REALISTIC.wave));
    late.extend(waves_late);
    Figures {
        wall,
        plan,
        waves_rolled_out,
        testbed_waves,
        steps,
        late,
        waits: waits(&journal),
        planned: plan_per_step(&log),
        chain: chain(&playbook, &status, spawned, wall),
        peak_rss_kib: peak_rss_kib(&log),
    }
}

/// Run the section.
pub fn run(options: &Options) {
    let minute = options.minute();
    // The whole default playbook, or its infrastructure half (`--infrastructure`).
    let this_playbook = if options.infrastructure {
        infrastructure_playbook()
    } else {
        default_playbook()
    };
    let playbook = rebuild::playbook::load(
        &this_playbook,
        &rebuild::steps::StepKinds::builtin().specs(),
    )
    .expect("the default playbook loads");
    let path = rebuild::plan::critical_path(&playbook, |step| {
        scaled(minute, simulated_minutes(step, &REALISTIC))
    });
    println!(
        "rto: {}, 1 simulated minute = {:.1} s (NAT {} min, EKS {} min, node group {} min, RDS restore {} min, {} deploy waves of {} min); {} ms per AWS call",
        if options.infrastructure {
            "the default playbook's infrastructure half"
        } else {
            "the default playbook"
        },
        minute.as_secs_f64(),
        REALISTIC.nat,
        REALISTIC.eks,
        REALISTIC.nodegroup,
        REALISTIC.rds,
        POD_WAVES,
        REALISTIC.wave,
        CALL_LATENCY.as_millis()
    );
    println!(
        "  critical path {:.1} s: {}",
        path.length.as_secs_f64(),
        path.steps.join(" → ")
    );
    let sum: Duration = playbook
        .steps
        .iter()
        .map(|step| scaled(minute, one_at_a_time_minutes(step, &REALISTIC)))
        .sum();
    println!(
        "  sum of durations {:.1} s (one resource at a time; one step at a time: {:.1} s)",
        sum.as_secs_f64(),
        path.sum.as_secs_f64()
    );

    // Each variant: a build and its arguments, with its own state (and rehearsal).
    let mut variants = vec![Variant::new(
        "this build, default settings",
        None,
        this_playbook.clone(),
        &[],
    )];
    if let Some(baseline) = &options.baseline {
        let playbook = options
            .baseline_playbook
            .clone()
            .unwrap_or_else(default_playbook);
        variants.push(Variant::new(
            &format!("baseline build, default settings, {}", playbook.display()),
            Some(baseline.clone()),
            playbook,
            &[],
        ));
    }
    if !options.quick {
        variants.push(Variant::new(
            "this build, --parallelism 1",
            None,
            this_playbook.clone(),
            &["--parallelism", "1"],
        ));
    }
    for variant in &variants {
        // The rehearsal, with the testbed's quick polls: its journal stays in the state
        // the measured runs use, so they know how long each wait took.
        use_binary(variant.binary.clone());
        let stack = stack_with(minute, &REALISTIC);
        rebuild(&stack, variant, true);
    }
    let mut figures: Vec<Vec<Figures>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..options.runs {
        for (variant, runs) in variants.iter().zip(&mut figures) {
            use_binary(variant.binary.clone());
            runs.push(measured_run(minute, variant));
        }
    }
    use_binary(None);
    for (variant, runs) in variants.iter().zip(&figures) {
        // Its playbook's graph (a baseline's may differ).
        let playbook = rebuild::playbook::load(
            &variant.playbook,
            &rebuild::steps::StepKinds::builtin().specs(),
        )
        .expect("the variant's playbook loads");
        let path = rebuild::plan::critical_path(&playbook, |step| {
            scaled(minute, simulated_minutes(step, &REALISTIC))
        });
        let path = rebuild::plan::CriticalPath { sum, ..path };
        if variant.playbook != this_playbook {
            println!(
                "  ({} has the critical path {:.1} s: {})",
                variant.playbook.display(),
                path.length.as_secs_f64(),
                path.steps.join(" → ")
            );
        }
        report(&variant.label, runs, &path, minute);
        // The same bound with the deploy as long as the testbed took to roll its waves out
        // (the kubelet stand-in starts Pods a little after their second).
        let rolled_out = median(
            &runs
                .iter()
                .map(|run| run.waves_rolled_out)
                .collect::<Vec<_>>(),
        );
        if !rolled_out.is_zero() {
            let measured = rebuild::plan::critical_path(&playbook, |step| {
                if step.kind.value == "k8s.apply" {
                    rolled_out
                } else {
                    scaled(minute, simulated_minutes(step, &REALISTIC))
                }
            });
            let wall = median_secs(&runs.iter().map(|run| run.wall).collect::<Vec<_>>());
            println!(
                "    with the waves as long as the testbed took ({:.2} s): critical path {:.2} s, wall/critical path {:.3}",
                rolled_out.as_secs_f64(),
                measured.length.as_secs_f64(),
                wall / measured.length.as_secs_f64()
            );
            let to_first_pod = median_secs(
                &runs
                    .iter()
                    .map(|run| run.testbed_waves.to_first_pod)
                    .collect::<Vec<_>>(),
            );
            let stand_in = median_secs(
                &runs
                    .iter()
                    .map(|run| run.testbed_waves.stand_in)
                    .collect::<Vec<_>>(),
            );
            println!(
                "    the testbed's waves beyond their Pods' startup, added up: {to_first_pod:.2} s until the stand-in saw a wave's first Pod, {stand_in:.2} s from a startup's end to Ready"
            );
        }
    }
    if figures.len() > 1 && options.baseline.is_some() {
        let wall =
            |runs: &[Figures]| median_secs(&runs.iter().map(|run| run.wall).collect::<Vec<_>>());
        println!(
            "  this build / baseline: wall {:.3}",
            wall(&figures[0]) / wall(&figures[1])
        );
    }
    if options.keep {
        for variant in variants {
            let kept = variant.state.keep();
            println!("  {}: runs kept in {}", variant.label, kept.display());
        }
    }
}

/// A build of `rebuild` and the arguments it is measured with.
struct Variant {
    label: String,
    binary: Option<std::path::PathBuf>,
    playbook: std::path::PathBuf,
    args: Vec<&'static str>,
    /// Its state: the rehearsal's journal, then the measured runs'.
    state: tempfile::TempDir,
}

impl Variant {
    fn new(
        label: &str,
        binary: Option<std::path::PathBuf>,
        playbook: std::path::PathBuf,
        args: &[&'static str],
    ) -> Self {
        Self {
            label: label.to_string(),
            binary,
            playbook,
            args: args.to_vec(),
            state: tempfile::tempdir().expect("a state directory"),
        }
    }
}

/// The medians, in seconds and calls, of a (time, API calls) figure of the runs.
fn time_and_calls<'a>(
    runs: &'a [Figures],
    figure: impl Fn(&'a Figures) -> Option<&'a (Duration, usize)>,
) -> (f64, usize) {
    let figures: Vec<&(Duration, usize)> = runs.iter().filter_map(figure).collect();
    let took: Vec<Duration> = figures.iter().map(|figure| figure.0).collect();
    let calls: Vec<usize> = figures.iter().map(|figure| figure.1).collect();
    (median_secs(&took), median(&calls))
}

fn report(label: &str, runs: &[Figures], path: &rebuild::plan::CriticalPath, minute: Duration) {
    let walls: Vec<Duration> = runs.iter().map(|run| run.wall).collect();
    let wall = median_secs(&walls);
    let plan = median_secs(&runs.iter().map(|run| run.plan).collect::<Vec<_>>());
    println!(
        "  {label}: wall {wall:.2} s (median of {}; the plan before the first step {plan:.2} s), wall/critical path {:.3}, wall/sum {:.3}, peak RSS {:.1} MB",
        runs.len(),
        wall / path.length.as_secs_f64().max(f64::EPSILON),
        wall / path.sum.as_secs_f64().max(f64::EPSILON),
        median(&runs.iter().map(|run| run.peak_rss_kib).collect::<Vec<_>>()) as f64 / 1024.0
    );
    let mut late: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for run in runs {
        for (what, by) in &run.late {
            late.entry(what.as_str()).or_default().push(*by);
        }
    }
    let shown: Vec<String> = late
        .iter()
        .map(|(what, by)| format!("{what} {:.2} s", median_secs(by)))
        .collect();
    println!("    noticed late by (median): {}", shown.join(", "));
    let planned: Vec<String> = runs[0]
        .planned
        .keys()
        .map(|id| {
            let (took, calls) = time_and_calls(runs, |run| run.planned.get(id));
            format!("{id} {:.0} ms/{calls}", took * 1000.0)
        })
        .collect();
    if !planned.is_empty() {
        println!(
            "    plan of each step (median; time, API calls): {}",
            planned.join(", ")
        );
    }
    // The chain of the first run, each figure the median over the runs with that chain.
    let same: Vec<&Figures> = runs
        .iter()
        .filter(|run| {
            run.chain.steps.iter().map(|(id, ..)| id).eq(runs[0]
                .chain
                .steps
                .iter()
                .map(|(id, ..)| id))
        })
        .collect();
    let mut shown = Vec::new();
    for (at, (id, ..)) in runs[0].chain.steps.iter().enumerate() {
        let gap = median_secs(
            &same
                .iter()
                .map(|run| run.chain.steps[at].1)
                .collect::<Vec<_>>(),
        );
        let took = median_secs(
            &same
                .iter()
                .map(|run| run.chain.steps[at].2)
                .collect::<Vec<_>>(),
        );
        let before = if at == 0 { "from the start" } else { "then" };
        shown.push(format!("{before} {gap:.2} s, {id} {took:.2} s"));
    }
    let exit = median_secs(&same.iter().map(|run| run.chain.exit).collect::<Vec<_>>());
    println!(
        "    where the wall time went (median of the {} runs with this chain): {}, exit {exit:.2} s",
        same.len(),
        shown.join(", ")
    );
    let mut ids: Vec<&String> = runs[0].steps.keys().collect();
    ids.sort_by_key(|id| std::cmp::Reverse(runs[0].steps[*id].0));
    for id in ids {
        let (took, calls) = time_and_calls(runs, |run| run.steps.get(id));
        println!(
            "    {id:<16} {took:>7.2} s {calls:>5} API calls{}",
            if took >= 1.0 {
                format!(", {:.1} per second", calls as f64 / took)
            } else {
                String::new()
            }
        );
    }
    let mut waits: BTreeMap<&str, Vec<(Duration, u64)>> = BTreeMap::new();
    for run in runs {
        for (key, wait) in &run.waits {
            waits.entry(key.as_str()).or_default().push(*wait);
        }
    }
    if !waits.is_empty() {
        println!("    waits (median): checks, and checks per simulated minute of wait");
    }
    for (key, observed) in waits {
        let took = median_secs(&observed.iter().map(|(took, _)| *took).collect::<Vec<_>>());
        let checks = median(
            &observed
                .iter()
                .map(|(_, checks)| *checks)
                .collect::<Vec<_>>(),
        );
        let minutes = took / minute.as_secs_f64();
        println!(
            "      {key:<32} {took:>7.2} s {checks:>4} checks, {:.1} per minute",
            checks as f64 / minutes.max(1.0)
        );
    }
}
