//! The kubelet stand-in: there is no scheduler and no kubelet, so a thread moves the Pods
//! the controllers create along through the `status` subresource (Running and Ready, or
//! Running and never Ready, Job Pods Succeeded), and stands in for a cloud's load balancer
//! controller by giving every Service of type `LoadBalancer` the hostname `localhost`.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    let t = Duration::from_secs(10);
    let Ok((200, body)) = api.request("GET", "/api/v1/services", None, None, t) else {
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
        let (Some(ns), Some(name)) = (
            service["metadata"]["namespace"].as_str(),
            service["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}}});
        let _ = api.request(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/services/{name}/status"),
            Some("application/merge-patch+json"),
            Some(patch.to_string().as_bytes()),
            t,
        );
    }
}

fn kubelet_pass(api: &Api, mode: KubeletMode, ip_counter: &AtomicU32, stop: &AtomicBool) {
    let t = Duration::from_secs(10);
    let Ok((200, body)) = api.request("GET", "/api/v1/pods", None, None, t) else {
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
        let (Some(ns), Some(name)) = (
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let url = format!("/api/v1/namespaces/{ns}/pods/{name}");
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // What a kubelet does once the containers are gone.
            let _ = api.request(
                "DELETE",
                &url,
                Some("application/json"),
                Some(br#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}"#),
                t,
            );
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        let ready = pod["status"]["conditions"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .unwrap_or(false);
        let is_job = pod["metadata"]["ownerReferences"]
            .as_array()
            .map(|os| os.iter().any(|o| o["kind"] == "Job"))
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
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let state = if target == "Succeeded" {
                            serde_json::json!({"terminated": {
                                "exitCode": 0, "reason": "Completed",
                                "startedAt": now, "finishedAt": now}})
                        } else {
                            serde_json::json!({"running": {"startedAt": now}})
                        };
                        serde_json::json!({
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": format!("docker-pullable://{}", c["image"].as_str().unwrap_or("")),
                            "containerID": format!("containerd://{ns}-{name}"),
                            "ready": containers_ready,
                            "started": target == "Running",
                            "restartCount": 0,
                            "state": state,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let flag = |b: bool| if b { "True" } else { "False" };
        let cond = |t: &str, s: bool| {
            let mut c =
                serde_json::json!({"type": t, "status": flag(s), "lastTransitionTime": now});
            if !s {
                c["reason"] = if target == "Succeeded" {
                    "PodCompleted".into()
                } else {
                    "ContainersNotReady".into()
                };
            }
            c
        };
        let conditions = vec![
            cond("Initialized", true),
            cond("Ready", containers_ready),
            cond("ContainersReady", containers_ready),
            cond("PodScheduled", true),
        ];
        let existing_ip = pod["status"]["podIP"].as_str().map(str::to_string);
        let ip = existing_ip.unwrap_or_else(|| {
            let n = ip_counter.fetch_add(1, Ordering::SeqCst);
            format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2)
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
            t,
        );
    }
}

/// Now, as RFC 3339 UTC with second precision (what Kubernetes timestamps look like).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}
