//! The Kubernetes control plane's processes: certificates and keys made with the `openssl`
//! CLI, then etcd, kube-apiserver and kube-controller-manager (1.20.2, built from Debian's
//! packages by `.ci/setup-kubernetes`) on free loopback ports, each with a watchdog, until
//! the controller-manager has given the `default` namespace its service-account token.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::Api;

/// Directory holding `kube-apiserver`, `kube-controller-manager` and `etcd`:
/// `$REBUILD_KUBE_BIN`, else `${REBUILD_CACHE:-$HOME/.cache/rebuild}/kubernetes/bin`.
fn kube_bin_dir() -> PathBuf {
    if let Some(path) = std::env::var_os("REBUILD_KUBE_BIN") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("REBUILD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/rebuild")
        });
    cache.join("kubernetes/bin")
}

/// The running control plane: its processes (etcd first), how to reach the apiserver, a
/// kubeconfig, and the temporary folder holding certificates, logs and etcd's data.
pub(super) struct ControlPlane {
    pub processes: Vec<Process>,
    pub api: Api,
    pub kubeconfig: PathBuf,
    _folder: tempfile::TempDir,
    /// etcd's data, in memory when the machine has a memory file system.
    _etcd_data: tempfile::TempDir,
}

/// One child process with its watchdog. The watchdog is a `sh` blocked reading a pipe whose
/// write end only this process holds: when the test process dies the pipe reaches EOF and
/// the watchdog SIGKILLs the child.
pub(super) struct Process {
    name: &'static str,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Process {
        let stdout = std::fs::File::create(log)
            .unwrap_or_else(|error| panic!("create {}: {error}", log.display()));
        let stderr = stdout.try_clone().expect("clone log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {name}: {error}"));
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
        Process {
            name,
            child,
            watchdog,
            log: log.to_path_buf(),
        }
    }

    pub(super) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub(super) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(super) fn stop(&mut self) {
        // The watchdog first, so it can never signal a recycled pid.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to pick a free port");
    listener
        .local_addr()
        .expect("local_addr of probe listener")
        .port()
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
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
        .map(|status| status.success())
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

fn spawn_etcd(bin: &Path, dir: &Path, data_dir: &Path) -> (Process, String) {
    let mut last_log = String::new();
    for attempt in 0..5 {
        let (client, peer) = (free_port(), free_port());
        let data = data_dir.join(format!("etcd-data-{attempt}"));
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(bin.join("etcd"));
        command
            .arg("--name=testbed")
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
        let mut process = Process::spawn("etcd", &mut command, &dir.join("etcd.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if process.exited() {
                last_log = process.log_text();
                break;
            }
            let ok = Command::new("curl")
                .args(["-sf", "--max-time", "2"])
                .arg(format!("{client_url}/health"))
                .output()
                .map(|output| {
                    output.status.success()
                        && String::from_utf8_lossy(&output.stdout).contains("true")
                })
                .unwrap_or(false);
            // Healthy and still running: the answer was ours, not another test's etcd that
            // took the port (ours would have exited failing to bind it).
            if ok && !process.exited() {
                return (process, client_url);
            }
            if Instant::now() > deadline {
                let log = process.log_text();
                process.stop();
                panic!("etcd not healthy after 30 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("etcd exited early 5 times; last log:\n{last_log}");
}

fn spawn_apiserver(
    bin: &Path,
    dir: &Path,
    etcd: &str,
    api: &mut Api,
    webhook: Option<&str>,
) -> (Process, u16) {
    let mut last_log = String::new();
    let file = |name: &str| dir.join(name).display().to_string();
    for _attempt in 0..5 {
        let port = free_port();
        let mut command = Command::new(bin.join("kube-apiserver"));
        command
            .arg(format!("--etcd-servers={etcd}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", file("certs")))
            .arg(format!("--tls-cert-file={}", file("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", file("apiserver.key")))
            .arg(format!("--client-ca-file={}", file("ca.crt")))
            .arg(format!("--token-auth-file={}", file("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", file("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                file("sa.key")
            ))
            .arg("--api-audiences=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            // 127.0.0.1 may not be an Endpoints address: do not reconcile `kubernetes`.
            .arg("--endpoint-reconciler-type=none")
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg("--v=1")
            .current_dir(dir);
        if let Some(config) = webhook {
            // EKS's way: bearer tokens the static file does not know go to the authenticator.
            command
                .arg(format!(
                    "--authentication-token-webhook-config-file={config}"
                ))
                .arg("--authentication-token-webhook-version=v1beta1")
                .arg("--authentication-token-webhook-cache-ttl=10s");
        }
        let mut process = Process::spawn(
            "kube-apiserver",
            &mut command,
            &dir.join("kube-apiserver.log"),
        );
        api.server = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if process.exited() {
                last_log = process.log_text();
                break;
            }
            if let Ok((200, _)) = api.request("GET", "/readyz", None, None, Duration::from_secs(2))
            {
                return (process, port);
            }
            if Instant::now() > deadline {
                let log = process.log_text();
                process.stop();
                panic!("kube-apiserver not ready after 60 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("kube-apiserver exited early 5 times; last log:\n{last_log}");
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until the
    /// apiserver answers `/readyz` and the controller-manager has given the `default`
    /// namespace its service-account token. Takes a few seconds. With `webhook` (a
    /// TokenReview URL), tokens other than the harness's go to it (EKS's authenticator).
    pub(super) fn start(webhook: Option<&str>) -> Self {
        let bin = kube_bin_dir();
        for exe in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            assert!(
                bin.join(exe).is_file(),
                "{} not found: run `bash .ci/setup-kubernetes` (or set REBUILD_KUBE_BIN)",
                bin.join(exe).display()
            );
        }
        let folder = tempfile::Builder::new()
            .prefix("kube-testbed-")
            .tempdir()
            .expect("tempdir for the Kubernetes testbed");
        let dir = folder.path().to_path_buf();
        make_certs(&dir);

        let token = format!(
            "rebuild-test-{:016x}{:08x}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(0),
            std::process::id()
        );
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{token},rebuild-admin,rebuild-admin,\"system:masters\"\n"),
        )
        .expect("write tokens.csv");

        let mut processes = Vec::new();
        // etcd's data in memory (`/dev/shm`) where there is one: EKS's etcd writes to fast
        // disks, and the testbed's API server should not wait for this machine's shared
        // disk to sync each write (etcd 3.4 has no flag to skip syncing).
        let etcd_data = tempfile::Builder::new()
            .prefix("kube-testbed-etcd-")
            .tempdir_in("/dev/shm")
            .or_else(|_| {
                tempfile::Builder::new()
                    .prefix("kube-testbed-etcd-")
                    .tempdir_in(&dir)
            })
            .expect("a folder for etcd's data");
        let (etcd, etcd_endpoint) = spawn_etcd(&bin, &dir, etcd_data.path());
        processes.push(etcd);

        let mut api = Api::new(token.clone(), dir.join("ca.crt"));
        let webhook = webhook.map(|url| write_webhook_config(&dir, url));
        let (apiserver, _port) =
            spawn_apiserver(&bin, &dir, &etcd_endpoint, &mut api, webhook.as_deref());
        processes.push(apiserver);

        let kubeconfig = write_kubeconfig(&dir, &api.server, &token);
        processes.push(spawn_controller_manager(&bin, &dir, &kubeconfig));
        let mut control_plane = Self {
            processes,
            api,
            kubeconfig,
            _folder: folder,
            _etcd_data: etcd_data,
        };
        control_plane.wait_for_the_default_token();
        control_plane
    }

    /// The controller-manager works once the `default` service account has its token.
    fn wait_for_the_default_token(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = self.api.request(
                "GET",
                "/api/v1/namespaces/default/serviceaccounts/default",
                None,
                None,
                Duration::from_secs(5),
            ) && serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|account| {
                    account["secrets"]
                        .as_array()
                        .map(|secrets| !secrets.is_empty())
                })
                .unwrap_or(false)
            {
                return;
            }
            if self.processes.iter_mut().any(Process::exited) || Instant::now() > deadline {
                panic!(
                    "kube-controller-manager did not create the default service account token; logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last 20 KB of each component's log, for debugging.
    pub(super) fn logs(&self) -> String {
        let mut out = String::new();
        for process in &self.processes {
            let text = process.log_text();
            let mut start = text.len().saturating_sub(20_000);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            out.push_str(&format!(
                "===== {} ({}) =====\n{}\n",
                process.name,
                process.log.display(),
                &text[start..]
            ));
        }
        out
    }

    /// Stop every process: controller-manager, then apiserver, then etcd.
    pub(super) fn stop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            process.stop();
        }
    }
}

/// A kubeconfig for the cluster admin (server, embedded CA data, token; context namespace
/// `default`) in `dir`.
fn write_kubeconfig(dir: &Path, server: &str, token: &str) -> PathBuf {
    let ca_pem = std::fs::read(dir.join("ca.crt")).expect("read ca.crt");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: testbed\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
             users:\n\
             - name: rebuild-admin\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: testbed\n  context:\n    cluster: testbed\n    user: rebuild-admin\n    namespace: default\n\
             current-context: testbed\n",
            base64::engine::general_purpose::STANDARD.encode(&ca_pem)
        ),
    )
    .expect("write kubeconfig");
    kubeconfig
}

/// The token webhook's configuration (kubeconfig format) naming `url`, in `dir`; its path.
fn write_webhook_config(dir: &Path, url: &str) -> String {
    let path = dir.join("authenticator.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: eks-authenticator\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: apiserver\n  user: {{}}\n\
             contexts:\n\
             - name: webhook\n  context:\n    cluster: eks-authenticator\n    user: apiserver\n\
             current-context: webhook\n"
        ),
    )
    .expect("write the authenticator's webhook configuration");
    path.display().to_string()
}

fn spawn_controller_manager(bin: &Path, dir: &Path, kubeconfig: &Path) -> Process {
    let mut command = Command::new(bin.join("kube-controller-manager"));
    command
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
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
        .current_dir(dir);
    Process::spawn(
        "kube-controller-manager",
        &mut command,
        &dir.join("kube-controller-manager.log"),
    )
}
