//! Smoke tests of the Kubernetes testbed (`support::kube`): a real kube-apiserver,
//! controller-manager and etcd, plus the kubelet stand-in. Needs `bash .ci/setup-kubernetes`.

use std::time::{Duration, Instant};

use crate::support::kube::{KubeTestbed, KubeletMode};

const NS: &str = "smoke";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: smoke
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        ports:
        - containerPort: 8080
          protocol: TCP
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: smoke
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
    protocol: TCP
";

const JOB: &str = "\
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: smoke
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.example/app:1
        command: [\"/app\", \"migrate\"]
";

fn create_namespace(bed: &KubeTestbed) {
    let namespace = bed.apply(
        &format!("/api/v1/namespaces/{NS}"),
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
    );
    assert_eq!(namespace["metadata"]["name"], NS);
}

fn deployment_available(bed: &KubeTestbed, replicas: u64) -> Option<serde_json::Value> {
    let deployment = bed.get_json(&format!("/apis/apps/v1/namespaces/{NS}/deployments/web"))?;
    let status = &deployment["status"];
    let available = status["availableReplicas"].as_u64() == Some(replicas)
        && status["updatedReplicas"].as_u64() == Some(replicas)
        && status["observedGeneration"] == deployment["metadata"]["generation"]
        && status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition["type"] == "Available" && condition["status"] == "True")
        });
    available.then_some(deployment)
}

#[test]
fn deployment_service_and_job_roll_out_on_a_real_apiserver() {
    let started = Instant::now();
    let bed = KubeTestbed::start();
    eprintln!("testbed up in {:?} at {}", started.elapsed(), bed.server);
    assert!(bed.server.starts_with("https://127.0.0.1:"));
    assert!(bed.kubeconfig.is_file() && bed.ca_file.is_file());

    // Without the token the apiserver does not let anyone in.
    let unauthorised = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&bed.ca_file)
        .arg(format!("{}/api/v1/namespaces", bed.server))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&unauthorised.stdout), "403");
    // With it, it does (server certificate verified against `ca_file`).
    let (status, _) = bed.request("GET", "/api/v1/namespaces", None, None);
    assert_eq!(status, 200);

    let version = bed.get_json("/version").unwrap();
    assert_eq!(version["minor"], "20", "{version}");

    create_namespace(&bed);
    let applied = Instant::now();
    let deployment = bed.apply(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
        DEPLOYMENT,
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    let managers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|field| field["manager"].as_str())
        .collect();
    assert!(managers.contains(&"rebuild"), "{managers:?}");
    // Applying the same manifest again is a no-op (server-side apply is idempotent).
    let again = bed.apply(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
        DEPLOYMENT,
    );
    assert_eq!(
        again["metadata"]["generation"],
        deployment["metadata"]["generation"]
    );

    let service = bed.apply(&format!("/api/v1/namespaces/{NS}/services/web"), SERVICE);
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap();
    assert!(cluster_ip.starts_with("10.96."), "{service}");

    let deployment = bed.wait_for("Deployment web available", Duration::from_secs(60), || {
        deployment_available(&bed, 2)
    });
    eprintln!("deployment available {:?} after apply", applied.elapsed());
    assert_eq!(deployment["status"]["readyReplicas"], 2);
    let pods = bed
        .get_json(&format!(
            "/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dweb"
        ))
        .unwrap();
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            "registry.example/app:1"
        );
    }

    // A new image rolls unauthorised: old pods go, new ones become ready.
    let updated = Instant::now();
    bed.apply(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
        &DEPLOYMENT.replace("app:1", "app:2"),
    );
    bed.wait_for("rollout of app:2", Duration::from_secs(60), || {
        let deployment = deployment_available(&bed, 2)?;
        let pods = bed
            .get_json(&format!(
                "/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dweb"
            ))
            .unwrap();
        let items = pods["items"].as_array().unwrap();
        (items.len() == 2
            && items
                .iter()
                .all(|pod| pod["spec"]["containers"][0]["image"] == "registry.example/app:2"))
        .then_some(deployment)
    });
    eprintln!("rollout of app:2 took {:?}", updated.elapsed());

    let job_applied = Instant::now();
    bed.apply(&format!("/apis/batch/v1/namespaces/{NS}/jobs/migrate"), JOB);
    let job = bed.wait_for("Job migrate complete", Duration::from_secs(60), || {
        let job = bed.get_json(&format!("/apis/batch/v1/namespaces/{NS}/jobs/migrate"))?;
        let complete = job["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions.iter().any(|condition| {
                    condition["type"] == "Complete" && condition["status"] == "True"
                })
            });
        complete.then_some(job)
    });
    assert_eq!(job["status"]["succeeded"], 1);
    eprintln!("job completed {:?} after apply", job_applied.elapsed());
}

#[test]
fn never_ready_pods_keep_a_rollout_unavailable_until_the_mode_changes() {
    let bed = KubeTestbed::start_with(KubeletMode::NeverReady);
    assert_eq!(bed.kubelet_mode(), KubeletMode::NeverReady);
    create_namespace(&bed);
    bed.apply(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
        DEPLOYMENT,
    );
    // The pods exist and run, but are never ready.
    bed.wait_for("two Running pods", Duration::from_secs(60), || {
        let pods = bed
            .get_json(&format!(
                "/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dweb"
            ))
            .unwrap();
        let items = pods["items"].as_array().unwrap().clone();
        (items.len() == 2 && items.iter().all(|pod| pod["status"]["phase"] == "Running"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(deployment_available(&bed, 2).is_none());
    let deployment = bed
        .get_json(&format!("/apis/apps/v1/namespaces/{NS}/deployments/web"))
        .unwrap();
    assert!(
        deployment["status"]["availableReplicas"]
            .as_u64()
            .unwrap_or(0)
            == 0,
        "{deployment}"
    );

    bed.set_kubelet_mode(KubeletMode::Ready);
    bed.wait_for("Deployment web available", Duration::from_secs(60), || {
        deployment_available(&bed, 2)
    });
}
