//! Smoke tests of the Kubernetes testbed (`support::kube`): a real kube-apiserver,
//! controller-manager and etcd, plus the kubelet stand-in, and the load balancer stand-in's
//! rules (only the Service's ports; TLS only with the certificate annotation; a name that
//! resolves late). Needs `bash .ci/setup-kubernetes`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::kube::{
    KubeTestbed, KubeletMode, SSL_CERT, SSL_PORTS, ServedCertificate, load_balancer_hostname,
};
use crate::support::tls::{TestCa, free_port};

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

#[test]
fn pods_take_their_startup_time_and_their_readiness_is_recorded() {
    let bed = KubeTestbed::start();
    let startup = Duration::from_secs(2);
    bed.set_pod_startup(startup);
    create_namespace(&bed);
    let applied = std::time::SystemTime::now();
    bed.apply(
        &format!("/apis/apps/v1/namespaces/{NS}/deployments/web"),
        DEPLOYMENT,
    );
    bed.wait_for("Deployment web available", Duration::from_secs(60), || {
        deployment_available(&bed, 2)
    });
    let ready = bed.pods_ready();
    let seen = bed.pods_seen();
    assert_eq!(ready.len(), 2, "{ready:?}");
    for (pod, at) in ready {
        assert!(pod.starts_with("smoke/web-"), "{pod}");
        let after = at.duration_since(applied).unwrap();
        assert!(after >= startup, "{pod} ready {after:?} after the apply");
        // Its startup counts from when the stand-in first saw it.
        let first_seen = seen[&pod];
        assert!(first_seen >= applied, "{pod} seen before the apply");
        let started = at.duration_since(first_seen).unwrap();
        assert!(
            started >= startup,
            "{pod} ready {started:?} after it was seen"
        );
    }
}

// ---- The load balancer stand-in, as strict as AWS (review B4, D13; testbed item 9). ----

/// A `LoadBalancer` Service `web` with an `http` and an `https` port, and `annotations`
/// (YAML lines, indented for `metadata.annotations`; empty: none).
fn load_balancer_service(http: u16, https: u16, annotations: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {NS}\n{annotations}\
         spec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports:\n  \
         - {{name: http, port: {http}, targetPort: 8080, protocol: TCP}}\n  \
         - {{name: https, port: {https}, targetPort: 8080, protocol: TCP}}\n"
    )
}

/// What `curl` gets from `url` (the HTTP status, or its error), trusting `ca` and
/// connecting `shop.example-shop.com` to 127.0.0.1.
fn fetch(url: &str, ca: &Path) -> Result<u16, String> {
    let port = url.rsplit(':').next().unwrap_or_default();
    let port = port.split('/').next().unwrap_or_default();
    let output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg(url)
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match code.parse::<u16>() {
        Ok(status) if status > 0 => Ok(status),
        _ => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    }
}

const HOST: &str = "shop.example-shop.com";
const ARN: &str = "arn:aws:acm:ap-southeast-1:123456789012:certificate/testbed";

/// A testbed whose ACM holds a certificate for [`HOST`] under [`ARN`], signed by `ca`.
fn testbed_with_certificate(ca: &TestCa) -> KubeTestbed {
    let bed = KubeTestbed::start();
    let certificate = ca.server_certificate(&[HOST]);
    bed.configure_load_balancers(|settings| {
        let mut chain = certificate.certificate.clone();
        chain.extend_from_slice(&certificate.chain);
        let served = ServedCertificate {
            chain,
            key: certificate.key.clone(),
        };
        settings.certificates.insert(ARN.to_string(), served);
    });
    create_namespace(&bed);
    bed
}

fn hostname_of(bed: &KubeTestbed, name: &str) -> Option<String> {
    let service = bed.get_json(&format!("/api/v1/namespaces/{NS}/services/{name}"))?;
    service["status"]["loadBalancer"]["ingress"][0]["hostname"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn the_load_balancer_listens_only_on_the_service_ports_and_its_name_resolves_late() {
    let ca = TestCa::new();
    let bed = testbed_with_certificate(&ca);
    bed.configure_load_balancers(|settings| settings.publish_after = Duration::from_secs(4));
    let (http, https, undeclared) = (free_port(), free_port(), free_port());
    bed.apply(
        &format!("/api/v1/namespaces/{NS}/services/web"),
        &load_balancer_service(http, https, ""),
    );
    let hostname = bed.wait_for(
        "the load balancer's hostname",
        Duration::from_secs(30),
        || hostname_of(&bed, "web"),
    );
    assert_eq!(hostname, load_balancer_hostname(NS, "web"));
    // Given at once, but not resolvable yet: no real resolver knows the name, and the
    // stand-in publishes it only later.
    let hosts = bed.load_balancer_hosts_file();
    let published = || {
        std::fs::read_to_string(&hosts)
            .unwrap_or_default()
            .contains(&format!("127.0.0.1 {hostname}\n"))
    };
    assert!(!published(), "the name resolves at once");
    let given = Instant::now();
    bed.wait_for("the name to be published", Duration::from_secs(30), || {
        published().then_some(())
    });
    assert!(
        given.elapsed() >= Duration::from_secs(3),
        "published too early"
    );

    // The Service's ports answer (no application yet: 503); any other port refuses.
    let answer = bed.wait_for("the HTTP listener", Duration::from_secs(30), || {
        fetch(&format!("http://{HOST}:{http}/healthz"), &ca.ca_file).ok()
    });
    assert_eq!(answer, 503);
    assert_eq!(
        fetch(&format!("http://{HOST}:{https}/healthz"), &ca.ca_file),
        Ok(503)
    );
    let refused = fetch(&format!("http://{HOST}:{undeclared}/healthz"), &ca.ca_file);
    assert!(
        refused.is_err(),
        "a port the Service lacks answered: {refused:?}"
    );
}

#[test]
fn the_load_balancer_speaks_tls_only_on_the_ports_its_certificate_annotation_names() {
    let ca = TestCa::new();
    let bed = testbed_with_certificate(&ca);
    let (http, https) = (free_port(), free_port());
    let path = format!("/api/v1/namespaces/{NS}/services/web");
    let annotations = format!("    {SSL_CERT}: \"{ARN}\"\n    {SSL_PORTS}: https\n");
    bed.apply(&path, &load_balancer_service(http, https, &annotations));
    // HTTPS on the named port, with the certificate for the public name (verified against
    // the test CA, with the public name as SNI); plain HTTP on the other.
    let secure = bed.wait_for("the HTTPS listener", Duration::from_secs(30), || {
        fetch(&format!("https://{HOST}:{https}/healthz"), &ca.ca_file).ok()
    });
    assert_eq!(secure, 503);
    assert_eq!(
        fetch(&format!("http://{HOST}:{http}/healthz"), &ca.ca_file),
        Ok(503)
    );
    assert!(fetch(&format!("https://{HOST}:{http}/healthz"), &ca.ca_file).is_err());
    assert!(
        fetch(&format!("http://{HOST}:{https}/healthz"), &ca.ca_file).is_err(),
        "the HTTPS port answered plain HTTP"
    );

    // Without the annotation, there is no TLS anywhere.
    bed.apply(&path, &load_balancer_service(http, https, ""));
    bed.wait_for("the plain listener", Duration::from_secs(30), || {
        fetch(&format!("http://{HOST}:{https}/healthz"), &ca.ca_file).ok()
    });
    let refused = fetch(&format!("https://{HOST}:{https}/healthz"), &ca.ca_file);
    assert!(refused.is_err(), "TLS without a certificate: {refused:?}");

    // A certificate ACM does not hold makes no load balancer at all.
    let unknown = format!("    {SSL_CERT}: \"{ARN}-unknown\"\n");
    let other = load_balancer_service(free_port(), free_port(), &unknown)
        .replace("name: web\n", "name: unknown\n");
    bed.apply(&format!("/api/v1/namespaces/{NS}/services/unknown"), &other);
    let later =
        load_balancer_service(free_port(), free_port(), "").replace("name: web\n", "name: later\n");
    bed.apply(&format!("/api/v1/namespaces/{NS}/services/later"), &later);
    bed.wait_for(
        "a later Service's hostname",
        Duration::from_secs(30),
        || hostname_of(&bed, "later"),
    );
    assert_eq!(hostname_of(&bed, "unknown"), None);
}
