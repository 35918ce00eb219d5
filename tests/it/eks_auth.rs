//! EKS access is per principal (review D4; testbed rule "access is per principal"): on the
//! testbed as EKS is (`Stack::start_with_eks_authentication`), `DescribeCluster` reports
//! the real API server, the tool's own kubeconfig runs `rebuild eks-token`, and the API
//! server's authenticator lets in only the cluster's creator and the principals with an
//! admin access entry. A colleague resuming the run with other credentials is refused
//! unless the playbook's `cluster_admins` named their role. The first tests check the
//! authenticator's token rules without any server.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use rebuild::cloud::eks_token;

use crate::e2e::{assert_success, assert_the_stack_is_rebuilt};
use crate::support::kube::KubeTestbed;
use crate::support::seed::{DR_REGION, colleague};
use crate::support::stack::Stack;
use crate::support::sts::{MAX_AGE, PresignedCall, canonical_arn};
use crate::support::world::step;

/// Who the harness's static `testing` credentials are to moto's STS.
const CREATOR: &str = "arn:aws:sts::123456789012:user/moto";

fn credentials(key: &str, secret: &str) -> Credentials {
    Credentials::new(key, secret, Some("session".into()), None, "test")
}

#[test]
fn the_authenticator_verifies_the_tools_tokens_as_sts_does() {
    let now = SystemTime::now();
    let token = eks_token::token(&credentials("AKIA1", "s3cret"), DR_REGION, "prod", now).unwrap();
    let call = PresignedCall::parse(&token, now, MAX_AGE).unwrap();
    assert_eq!(call.access_key, "AKIA1");
    assert_eq!(call.host, "sts.ap-southeast-1.amazonaws.com");
    assert!(call.verify("s3cret", "prod"), "{call:?}");
    // Signed for another cluster, or by someone else: STS's signature check fails.
    assert!(!call.verify("s3cret", "other"));
    assert!(!call.verify("guess", "prod"));
    // Older than 15 minutes: refused, whatever X-Amz-Expires says.
    let later = now + MAX_AGE + Duration::from_secs(1);
    let expired = PresignedCall::parse(&token, later, MAX_AGE).unwrap_err();
    assert!(expired.contains("expired"), "{expired}");
    let refused = PresignedCall::parse("Bearer abc", now, MAX_AGE).unwrap_err();
    assert!(refused.contains("k8s-aws-v1."), "{refused}");
}

#[test]
fn an_assumed_role_session_is_its_role() {
    assert_eq!(
        canonical_arn("arn:aws:sts::123456789012:assumed-role/oncall/alice"),
        "arn:aws:iam::123456789012:role/oncall"
    );
    assert_eq!(canonical_arn(CREATOR), CREATOR);
    assert_eq!(
        canonical_arn("arn:aws:iam::123456789012:user/bob"),
        "arn:aws:iam::123456789012:user/bob"
    );
}

/// The API server's status for `GET /api` with `token`.
fn api_status(kube: &KubeTestbed, token: &str) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&kube.ca_file)
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/api", kube.server))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A token `rebuild eks-token` makes for `cluster` with the harness's credentials.
fn tool_token(stack: &Stack, cluster: &str) -> String {
    let output = stack
        .test()
        .args(["eks-token", "--cluster", cluster, "--region", DR_REGION])
        .run();
    output.success();
    output.stdout_json()["status"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (a) The cluster's creator deploys through what the tool itself generates: the cluster
/// step's kubeconfig (endpoint and CA from `DescribeCluster`) and EKS tokens, admitted by
/// the authenticator as the creator. A token for another cluster, or too old, is refused.
#[test]
fn the_creator_deploys_through_the_generated_kubeconfig_and_eks_tokens() {
    let stack = Stack::start_with_eks_authentication();
    let output = stack.rebuild();
    assert_success(&stack, &output);
    assert_the_stack_is_rebuilt(&stack);

    let status = stack.world.status();
    let cluster = step(&status, "cluster");
    let name = cluster["outputs"]["cluster_name"].as_str().unwrap();
    let kubeconfig = cluster["outputs"]["kubeconfig"].as_str().unwrap();
    assert!(
        kubeconfig.starts_with(&stack.world.state.path().display().to_string()),
        "the deploy used the generated kubeconfig: {kubeconfig}"
    );
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    assert!(text.contains(&stack.kube.server), "{text}");
    assert!(text.contains("\"eks-token\""), "{text}");
    let access = stack
        .world
        .proxy()
        .cluster_access()
        .get(DR_REGION, name)
        .unwrap();
    assert_eq!(access.creator.as_deref(), Some(CREATOR));
    let authenticator = stack.kube.authenticator().unwrap();
    let decisions = authenticator.decisions();
    assert!(!decisions.is_empty(), "no EKS token reached the API server");
    for decision in &decisions {
        assert!(decision.admitted, "{decisions:?}");
        assert_eq!(decision.principal.as_deref(), Some(CREATOR));
    }

    assert_eq!(api_status(&stack.kube, &tool_token(&stack, name)), "200");
    assert_eq!(api_status(&stack.kube, &tool_token(&stack, "other")), "401");
    authenticator.set_max_age(Duration::from_secs(1));
    // A token is signed to the second and the API server caches reviews by token: a later
    // second makes a token it has not seen.
    std::thread::sleep(Duration::from_millis(1100));
    let token = tool_token(&stack, name);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api_status(&stack.kube, &token), "401");
    let last = authenticator.decisions().pop().unwrap();
    assert!(last.reason.contains("expired"), "{last:?}");
}

/// (b) A run started by one principal and resumed by a colleague whose role is neither the
/// creator nor in `cluster_admins`: the cluster refuses the colleague (401), the deploy
/// fails with what happened and what to grant (exit 1), and the journal stays valid — the
/// creator resumes it to the end. On the old testbed (a static admin token for everyone)
/// the colleague's resume succeeded.
#[test]
fn a_colleague_without_an_access_entry_is_refused_and_the_run_stays_resumable() {
    let stack = Stack::start_with_eks_authentication();
    let oncall = colleague(&stack.world.moto.endpoint, "oncall");
    let authenticator = stack.kube.authenticator().unwrap();
    authenticator.know_credentials(&oncall.access_key, &oncall.secret);
    stack
        .rebuild_test()
        .failpoint("cluster/succeeded")
        .run()
        .killed("cluster/succeeded");

    let refused = oncall.acting(stack.test()).args(["resume", "--yes"]).run();
    refused
        .code(1)
        .stderr_contains("the cluster refused the caller's credentials (HTTP 401)")
        .stderr_contains("`cluster_admins`")
        .stderr_contains("AmazonEKSClusterAdminPolicy");
    let status = stack.world.status();
    assert_eq!(step(&status, "deploy")["state"], "failed", "{status:#}");
    assert!(
        stack.deployment("shop-api").is_null(),
        "nothing was deployed"
    );
    let decisions = authenticator.decisions();
    assert!(
        decisions
            .iter()
            .any(
                |decision| decision.principal.as_deref() == Some(oncall.role_arn.as_str())
                    && !decision.admitted
            ),
        "{decisions:?}"
    );

    let output = stack.resume();
    assert_success(&stack, &output);
    assert_the_stack_is_rebuilt(&stack);
}

/// (c) With the colleague's role in `cluster_admins` from the first run, their resume
/// deploys: the access entry admits them.
#[test]
fn a_colleague_in_cluster_admins_resumes_the_run() {
    let stack = Stack::start_with_eks_authentication();
    let oncall = colleague(&stack.world.moto.endpoint, "oncall");
    let authenticator = stack.kube.authenticator().unwrap();
    authenticator.know_credentials(&oncall.access_key, &oncall.secret);
    let mut inputs = stack.inputs();
    inputs.push(format!("cluster_admins={}", oncall.role_arn));
    stack
        .test()
        .args(stack.args_with(&["--target", DR_REGION, "--yes"], &inputs))
        .failpoint("cluster/succeeded")
        .run()
        .killed("cluster/succeeded");

    let output = oncall.acting(stack.test()).args(["resume", "--yes"]).run();
    assert_success(&stack, &output);
    assert_the_stack_is_rebuilt(&stack);
    let decisions = authenticator.decisions();
    assert!(!decisions.is_empty(), "no EKS token reached the API server");
    for decision in &decisions {
        assert!(decision.admitted, "{decisions:?}");
        assert_eq!(
            decision.principal.as_deref(),
            Some(oncall.role_arn.as_str())
        );
    }
}
