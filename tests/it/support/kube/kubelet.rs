//! The kubelet stand-in: there is no scheduler and no kubelet, so a thread moves the Pods
//! the controllers create along through the `status` subresource (Running and Ready, or
//! Running and never Ready, Job Pods Succeeded), and stands in for a cloud's load balancer
//! controller by giving every Service of type `LoadBalancer` the hostname `localhost`.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use super::{Api, KubeletMode};

/// Every ~300 ms until `stop`: lists all Pods and moves them along as a kubelet would.
pub(super) fn run(api: &Api, mode: &AtomicU8, stop: &AtomicBool) {
    let ip_counter = AtomicU32::new(2);
    while !stop.load(Ordering::SeqCst) {
        let mode = KubeletMode::from_u8(mode.load(Ordering::SeqCst));
        kubelet_pass(api, mode, &ip_counter, stop);
        load_balancer_pass(api);
        for _ in 0..3 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What a cloud's load balancer controller does: every Service of type `LoadBalancer`
/// without an address gets a hostname, as AWS's load balancers do — `localhost`, where
/// [`KubeTestbed::serve_application`] listens in for the load balancer.
fn load_balancer_pass(api: &Api) {
    let timeout = Duration::from_secs(10);
    let Ok((200, body)) = api.request("GET", "/api/v1/services", None, None, timeout) else {
        return;
    };
    let Ok(list) = serde_json::from_str::<serde_json::Value>(&body) else {
        return;
    };
    for service in list["items"].as_array().into_iter().flatten() {
        if service["spec"]["type"] != "LoadBalancer"
            || service["status"]["loadBalancer"]["ingress"].is_array()
        {
            continue;
        }
        let (Some(namespace), Some(name)) = (
            service["metadata"]["namespace"].as_str(),
            service["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}}});
        let _ = api.request(
            "PATCH",
            &format!("/api/v1/namespaces/{namespace}/services/{name}/status"),
            Some("application/merge-patch+json"),
            Some(patch.to_string().as_bytes()),
            timeout,
        );
    }
}

fn kubelet_pass(api: &Api, mode: KubeletMode, ip_counter: &AtomicU32, stop: &AtomicBool) {
    let timeout = Duration::from_secs(10);
    let Ok((200, body)) = api.request("GET", "/api/v1/pods", None, None, timeout) else {
        return;
    };
    let Ok(list) = serde_json::from_str::<serde_json::Value>(&body) else {
        return;
    };
    let Some(items) = list["items"].as_array() else {
        return;
    };
    for pod in items {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let (Some(namespace), Some(name)) = (
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let url = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // What a kubelet does once the containers are gone.
            let _ = api.request(
                "DELETE",
                &url,
                Some("application/json"),
                Some(br#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}"#),
                timeout,
            );
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        let ready = pod["status"]["conditions"]
            .as_array()
            .map(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
            })
            .unwrap_or(false);
        let is_job = pod["metadata"]["ownerReferences"]
            .as_array()
            .map(|owners| owners.iter().any(|owner| owner["kind"] == "Job"))
            .unwrap_or(false)
            || !pod["metadata"]["labels"]["job-name"].is_null();
        let target = match (mode, is_job, phase) {
            (_, _, "Succeeded" | "Failed") => None,
            (KubeletMode::Ready, true, _) => Some("Succeeded"),
            (KubeletMode::Ready, false, "Running") if ready => None,
            (KubeletMode::Ready, false, _) => Some("Running"),
            (KubeletMode::NeverReady, _, "Pending") => Some("Running"),
            _ => None,
        };
        let Some(target) = target else {
            continue;
        };
        let now = rfc3339_now();
        let containers_ready = mode == KubeletMode::Ready && target == "Running";
        let statuses: Vec<serde_json::Value> = pod["spec"]["containers"]
            .as_array()
            .map(|containers| {
                containers
                    .iter()
                    .map(|container| {
                        let state = if target == "Succeeded" {
                            serde_json::json!({"terminated": {
                                "exitCode": 0, "reason": "Completed",
                                "startedAt": now, "finishedAt": now}})
                        } else {
                            serde_json::json!({"running": {"startedAt": now}})
                        };
                        serde_json::json!({
                            "name": container["name"],
                            "image": container["image"],
                            "imageID": format!("docker-pullable://{}", container["image"].as_str().unwrap_or("")),
                            "containerID": format!("containerd://{namespace}-{name}"),
                            "ready": containers_ready,
                            "started": target == "Running",
                            "restartCount": 0,
                            "state": state,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let flag = |value: bool| if value { "True" } else { "False" };
        let condition = |kind: &str, holds: bool| {
            let mut condition =
                serde_json::json!({"type": kind, "status": flag(holds), "lastTransitionTime": now});
            if !holds {
                condition["reason"] = if target == "Succeeded" {
                    "PodCompleted".into()
                } else {
                    "ContainersNotReady".into()
                };
            }
            condition
        };
        let conditions = vec![
            condition("Initialized", true),
            condition("Ready", containers_ready),
            condition("ContainersReady", containers_ready),
            condition("PodScheduled", true),
        ];
        let existing_ip = pod["status"]["podIP"].as_str().map(str::to_string);
        let ip = existing_ip.unwrap_or_else(|| {
            let number = ip_counter.fetch_add(1, Ordering::SeqCst);
            format!("10.244.{}.{}", (number / 250) % 250, number % 250 + 2)
        });
        let patch = serde_json::json!({"status": {
            "phase": target,
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": pod["status"]["startTime"].as_str().unwrap_or(&now),
        }});
        let _ = api.request(
            "PATCH",
            &format!("{url}/status"),
            Some("application/merge-patch+json"),
            Some(patch.to_string().as_bytes()),
            timeout,
        );
    }
}

/// Now, as RFC 3339 UTC with second precision (what Kubernetes timestamps look like).
fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
