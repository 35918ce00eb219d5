//! A real Kubernetes control plane for the tests: etcd, kube-apiserver and
//! kube-controller-manager (1.20.2, built from Debian's packages by `.ci/setup-kubernetes`),
//! on free loopback ports, plus a "kubelet stand-in" thread.
//!
//! There is no scheduler and no kubelet: the controller-manager creates ReplicaSets, Pods and
//! Job Pods, and the stand-in marks Pods Running/Ready (or Job Pods Succeeded) through the
//! `status` subresource, so Deployments become Available and Jobs complete. With
//! [`KubeletMode::NeverReady`] Pods go Running but never Ready, so rollouts never finish.
//!
//! Everything the control plane needs (CA, serving certificate, service-account keys, a static
//! `system:masters` token, a kubeconfig) is generated with the `openssl` CLI in a temporary
//! directory; the HTTP calls of the stand-in and of [`KubeTestbed::request`] go through `curl`.
//! Child processes are killed on drop and, through a watchdog per child, also when the test
//! process dies (even by SIGKILL).
//!
//! Kubernetes 1.20 limits: no policy/v1, autoscaling/v2, batch/v1 CronJob,
//! discovery.k8s.io/v1, /openapi/v3; server-side apply of a Service needs `protocol:` on
//! each port.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the kubelet stand-in does with the Pods the controllers create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeletMode {
    /// Pods become Running with every container ready; Job Pods become Succeeded.
    Ready,
    /// Pods become Running but never Ready (like a failing readiness probe); Job Pods stay
    /// Running. Rollouts and Jobs never complete.
    NeverReady,
    /// The stand-in does nothing: Pods stay Pending.
    Off,
}

impl KubeletMode {
    fn to_u8(self) -> u8 {
        match self {
            KubeletMode::Ready => 0,
            KubeletMode::NeverReady => 1,
            KubeletMode::Off => 2,
        }
    }

    fn from_u8(v: u8) -> KubeletMode {
        match v {
            0 => KubeletMode::Ready,
            1 => KubeletMode::NeverReady,
            _ => KubeletMode::Off,
        }
    }
}

/// A running control plane, stopped (every child killed and reaped) on drop.
pub struct KubeTestbed {
    /// `https://127.0.0.1:PORT` of kube-apiserver.
    pub server: String,
    /// Bearer token of a user in group `system:masters` (cluster admin).
    pub token: String,
    /// PEM file of the CA that signed the apiserver's serving certificate.
    pub ca_file: PathBuf,
    /// A kubeconfig (server, embedded CA data, token; context namespace `default`).
    pub kubeconfig: PathBuf,
    /// The loopback port of kube-apiserver.
    pub port: u16,
    /// `http://127.0.0.1:PORT` of etcd (client URL).
    pub etcd_endpoint: String,
    /// The testbed's temporary directory (certificates, logs, etcd data).
    pub dir: PathBuf,
    procs: Vec<Proc>,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    kubelet: Option<JoinHandle<()>>,
    _tmp: tempfile::TempDir,
}

/// Directory holding `kube-apiserver`, `kube-controller-manager` and `etcd`:
/// `$REBUILD_KUBE_BIN`, else `${REBUILD_CACHE:-$HOME/.cache/rebuild}/kubernetes/bin`.
pub fn kube_bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("REBUILD_KUBE_BIN") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("REBUILD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/rebuild")
        });
    cache.join("kubernetes/bin")
}

/// One child process with its watchdog. The watchdog is a `sh` blocked reading a pipe whose
/// write end only this process holds: when the test process dies the pipe reaches EOF and
/// the watchdog SIGKILLs the child.
struct Proc {
    name: &'static str,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
        let out =
            std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg("read -r _; kill -KILL \"$1\" 2>/dev/null")
            .arg("kube-testbed-watchdog")
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Proc {
            name,
            child,
            watchdog,
            log: log.to_path_buf(),
        }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        // The watchdog first, so it can never signal a recycled pid.
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to pick a free port");
    l.local_addr().expect("local_addr of probe listener").port()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `openssl` in `dir` with whitespace-separated `args`.
fn openssl(dir: &Path, args: &str, what: &str) {
    run(
        Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace()),
        what,
    );
}

/// CA, apiserver serving certificate (127.0.0.1, localhost, the in-cluster names and the
/// first service IP) and the service-account RSA key pair.
fn make_certs(dir: &Path) {
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the `openssl` CLI is needed by the Kubernetes testbed (apt-get install openssl)"
    );
    openssl(
        dir,
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout ca.key -out ca.crt -days 3650 -subj /CN=rebuild-test-ca \
         -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "openssl: CA",
    );
    openssl(
        dir,
        "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver",
        "openssl: apiserver key",
    );
    std::fs::write(
        dir.join("apiserver.ext"),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,\
         DNS:kubernetes.default,DNS:kubernetes.default.svc,\
         DNS:kubernetes.default.svc.cluster.local\n",
    )
    .expect("write apiserver.ext");
    openssl(
        dir,
        "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
         -out apiserver.crt -days 3650 -extfile apiserver.ext",
        "openssl: sign apiserver certificate",
    );
    openssl(
        dir,
        "genrsa -out sa.key 2048",
        "openssl: service-account key",
    );
    openssl(
        dir,
        "rsa -in sa.key -pubout -out sa.pub",
        "openssl: service-account public key",
    );
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

/// Everything needed to talk to the apiserver with `curl`.
#[derive(Clone)]
struct Api {
    server: String,
    token: String,
    ca_file: PathBuf,
}

impl Api {
    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time"])
            .arg(timeout.as_secs().max(1).to_string())
            .arg("--cacert")
            .arg(&self.ca_file)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .args(["-H", "Accept: application/json", "-X", method])
            .args(["-o", "-", "-w", "\n%{http_code}"]);
        if let Some(ct) = content_type {
            cmd.arg("-H").arg(format!("Content-Type: {ct}"));
        }
        if body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("{}{path}", self.server))
            .stdin(if body.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(b), Some(mut stdin)) = (body, child.stdin.take()) {
            stdin.write_all(b)?;
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let status: u16 = code.trim().parse().unwrap_or(0);
        if !out.status.success() || status == 0 {
            return Err(std::io::Error::other(format!(
                "curl {method} {path}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok((status, body.to_string()))
    }
}

fn spawn_etcd(bin: &Path, dir: &Path) -> (Proc, String) {
    let mut last_log = String::new();
    for attempt in 0..5 {
        let (client, peer) = (free_port(), free_port());
        let data = dir.join(format!("etcd-data-{attempt}"));
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin.join("etcd"));
        cmd.arg("--name=testbed")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=testbed={peer_url}"))
            .arg("--initial-cluster-state=new")
            .args(["--logger=zap", "--log-outputs=stderr"])
            .args([
                "--snapshot-count=100000",
                "--quota-backend-bytes=1073741824",
            ])
            .current_dir(dir);
        let mut p = Proc::spawn("etcd", &mut cmd, &dir.join("etcd.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if p.exited() {
                last_log = p.log_text();
                break;
            }
            let ok = Command::new("curl")
                .args(["-sf", "--max-time", "2"])
                .arg(format!("{client_url}/health"))
                .output()
                .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("true"))
                .unwrap_or(false);
            // Healthy and still running: the answer was ours, not another test's etcd that
            // took the port (ours would have exited failing to bind it).
            if ok && !p.exited() {
                return (p, client_url);
            }
            if Instant::now() > deadline {
                let log = p.log_text();
                p.stop();
                panic!("etcd not healthy after 30 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("etcd exited early 5 times; last log:\n{last_log}");
}

fn spawn_apiserver(bin: &Path, dir: &Path, etcd: &str, api: &mut Api) -> (Proc, u16) {
    let mut last_log = String::new();
    let p = |name: &str| dir.join(name).display().to_string();
    for _attempt in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(bin.join("kube-apiserver"));
        cmd.arg(format!("--etcd-servers={etcd}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", p("certs")))
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--token-auth-file={}", p("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--api-audiences=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            // 127.0.0.1 may not be an Endpoints address: do not reconcile `kubernetes`.
            .arg("--endpoint-reconciler-type=none")
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg("--v=1")
            .current_dir(dir);
        let mut proc = Proc::spawn("kube-apiserver", &mut cmd, &dir.join("kube-apiserver.log"));
        api.server = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if proc.exited() {
                last_log = proc.log_text();
                break;
            }
            if let Ok((200, _)) = api.request("GET", "/readyz", None, None, Duration::from_secs(2))
            {
                return (proc, port);
            }
            if Instant::now() > deadline {
                let log = proc.log_text();
                proc.stop();
                panic!("kube-apiserver not ready after 60 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("kube-apiserver exited early 5 times; last log:\n{last_log}");
}

impl KubeTestbed {
    /// Starts a control plane whose kubelet stand-in makes Pods Ready (see
    /// [`KubeletMode::Ready`]).
    pub fn start() -> KubeTestbed {
        KubeTestbed::start_with(KubeletMode::Ready)
    }

    /// Starts etcd, kube-apiserver and kube-controller-manager, waits until the apiserver
    /// answers `/readyz` and the controller-manager has given the `default` namespace its
    /// service account, and starts the kubelet stand-in in `mode`. Takes a few seconds.
    pub fn start_with(mode: KubeletMode) -> KubeTestbed {
        let bin = kube_bin_dir();
        for exe in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            assert!(
                bin.join(exe).is_file(),
                "{} not found: run `bash .ci/setup-kubernetes` (or set REBUILD_KUBE_BIN)",
                bin.join(exe).display()
            );
        }
        let tmp = tempfile::Builder::new()
            .prefix("kube-testbed-")
            .tempdir()
            .expect("tempdir for the Kubernetes testbed");
        let dir = tmp.path().to_path_buf();
        make_certs(&dir);

        let token = format!(
            "rebuild-test-{:016x}{:08x}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            std::process::id()
        );
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{token},rebuild-admin,rebuild-admin,\"system:masters\"\n"),
        )
        .expect("write tokens.csv");

        let mut procs = Vec::new();
        let (etcd, etcd_endpoint) = spawn_etcd(&bin, &dir);
        procs.push(etcd);

        let mut api = Api {
            server: String::new(),
            token: token.clone(),
            ca_file: dir.join("ca.crt"),
        };
        let (apiserver, port) = spawn_apiserver(&bin, &dir, &etcd_endpoint, &mut api);
        procs.push(apiserver);

        let ca_pem = std::fs::read(dir.join("ca.crt")).expect("read ca.crt");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\n\
                 kind: Config\n\
                 clusters:\n\
                 - name: testbed\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
                 users:\n\
                 - name: rebuild-admin\n  user:\n    token: {token}\n\
                 contexts:\n\
                 - name: testbed\n  context:\n    cluster: testbed\n    user: rebuild-admin\n    namespace: default\n\
                 current-context: testbed\n",
                api.server,
                base64(&ca_pem)
            ),
        )
        .expect("write kubeconfig");

        let mut cmd = Command::new(bin.join("kube-controller-manager"));
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--leader-elect=false")
            .arg(format!(
                "--service-account-private-key-file={}",
                dir.join("sa.key").display()
            ))
            .arg(format!("--root-ca-file={}", dir.join("ca.crt").display()))
            .arg("--use-service-account-credentials=false")
            // No HTTP(S) endpoints of its own: parallel testbeds must not fight over ports.
            .args(["--port=0", "--secure-port=0"])
            .arg("--profiling=false")
            .arg("--v=1")
            .current_dir(&dir);
        procs.push(Proc::spawn(
            "kube-controller-manager",
            &mut cmd,
            &dir.join("kube-controller-manager.log"),
        ));

        let mode = Arc::new(AtomicU8::new(mode.to_u8()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut bed = KubeTestbed {
            server: api.server.clone(),
            token,
            ca_file: dir.join("ca.crt"),
            kubeconfig,
            port,
            etcd_endpoint,
            dir,
            procs,
            mode: mode.clone(),
            stop: stop.clone(),
            kubelet: None,
            _tmp: tmp,
        };

        // The controller-manager works once the `default` service account has its token.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = api.request(
                "GET",
                "/api/v1/namespaces/default/serviceaccounts/default",
                None,
                None,
                Duration::from_secs(5),
            ) && serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["secrets"].as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
            {
                break;
            }
            if bed.procs.iter_mut().any(Proc::exited) || Instant::now() > deadline {
                panic!(
                    "kube-controller-manager did not create the default service account token; logs:\n{}",
                    bed.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        bed.kubelet = Some(
            std::thread::Builder::new()
                .name("kubelet-stand-in".into())
                .spawn(move || kubelet_loop(&api, &mode, &stop))
                .expect("spawn kubelet stand-in thread"),
        );
        bed
    }

    /// Changes what the kubelet stand-in does from now on (e.g. `NeverReady` then `Ready`
    /// to let a stuck rollout recover).
    /// Listen on a free loopback port in for the load balancer in front of `namespace`'s
    /// application (see [`ApplicationListener`]).
    pub fn serve_application(&self, namespace: &str) -> ApplicationListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let api = self.api();
        let namespace = namespace.to_string();
        let handle = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    let _ = std::io::BufRead::read_line(&mut reader, &mut request_line);
                    loop {
                        let mut header = String::new();
                        match std::io::BufRead::read_line(&mut reader, &mut header) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if header.trim().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                    let (status, body) = if path == "/healthz" {
                        application_health(&api, &namespace)
                    } else {
                        (404, "not found".to_string())
                    };
                    let reason = match status {
                        200 => "OK",
                        404 => "Not Found",
                        _ => "Service Unavailable",
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        ApplicationListener {
            port,
            stop,
            handle: Some(handle),
        }
    }

    pub fn set_kubelet_mode(&self, mode: KubeletMode) {
        self.mode.store(mode.to_u8(), Ordering::SeqCst);
    }

    /// The kubelet stand-in's current mode.
    pub fn kubelet_mode(&self) -> KubeletMode {
        KubeletMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// One HTTP call to the apiserver with the admin token (via `curl`): `path` starts with
    /// `/`, e.g. `/apis/apps/v1/namespaces/ns/deployments/web`. Returns the status and body.
    /// Panics if the request cannot be made at all.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        self.api()
            .request(method, path, content_type, body, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` as JSON; `None` on 404, panics on any other non-200 answer.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = self.request("GET", path, None, None);
        match status {
            200 => Some(serde_json::from_str(&body).expect("apiserver answered JSON")),
            404 => None,
            _ => panic!("GET {path}: {status} {body}"),
        }
    }

    /// Server-side apply of one object (YAML or JSON) at `path` (the object's own URL,
    /// e.g. `/api/v1/namespaces/ns/services/web`) with `fieldManager=rebuild&force=true`.
    /// Returns the applied object; panics unless the apiserver answers 200 or 201.
    pub fn apply(&self, path: &str, manifest: &str) -> serde_json::Value {
        let (status, body) = self.request(
            "PATCH",
            &format!("{path}?fieldManager=rebuild&force=true"),
            Some("application/apply-patch+yaml"),
            Some(manifest.as_bytes()),
        );
        assert!(
            status == 200 || status == 201,
            "server-side apply of {path}: {status} {body}"
        );
        serde_json::from_str(&body).expect("apiserver answered JSON")
    }

    /// Polls `check` every 200 ms until it returns `Some`, panicking with `what` and the
    /// control plane's logs after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; testbed logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Process ids of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.procs.iter().map(|p| (p.name, p.child.id())).collect()
    }

    /// The last 20 KB of each component's log, for debugging.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let text = p.log_text();
            let mut start = text.len().saturating_sub(20_000);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            out.push_str(&format!(
                "===== {} ({}) =====\n{}\n",
                p.name,
                p.log.display(),
                &text[start..]
            ));
        }
        out
    }

    fn api(&self) -> Api {
        Api {
            server: self.server.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}

impl Drop for KubeTestbed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.kubelet.take() {
            let _ = h.join();
        }
        // Controller-manager, then apiserver, then etcd.
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
    }
}

/// Every ~300 ms until `stop`: lists all Pods and moves them along as a kubelet would.
fn kubelet_loop(api: &Api, mode: &AtomicU8, stop: &AtomicBool) {
    let ip_counter = AtomicU32::new(2);
    while !stop.load(Ordering::SeqCst) {
        let m = KubeletMode::from_u8(mode.load(Ordering::SeqCst));
        if m != KubeletMode::Off {
            kubelet_pass(api, m, &ip_counter, stop);
            load_balancer_pass(api);
        }
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

/// The application behind the load balancer, as far as smoke checks can tell: `GET
/// /healthz` answers 200 with every Deployment of the namespace and its image when all of
/// them are Available in the real API server, else 503.
pub struct ApplicationListener {
    /// The loopback port it listens on.
    pub port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ApplicationListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn application_health(api: &Api, namespace: &str) -> (u16, String) {
    let t = Duration::from_secs(10);
    let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments");
    let Ok((200, body)) = api.request("GET", &path, None, None, t) else {
        return (503, "the API server did not answer".to_string());
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut deployments = serde_json::Map::new();
    let mut healthy = true;
    for item in list["items"].as_array().into_iter().flatten() {
        let wanted = item["spec"]["replicas"].as_u64().unwrap_or(1);
        let available = item["status"]["availableReplicas"].as_u64().unwrap_or(0);
        healthy &= available >= wanted;
        deployments.insert(
            item["metadata"]["name"].as_str().unwrap_or("?").to_string(),
            item["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
        );
    }
    healthy &= !deployments.is_empty();
    let body = serde_json::json!({"healthy": healthy, "deployments": deployments}).to_string();
    (if healthy { 200 } else { 503 }, body)
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
