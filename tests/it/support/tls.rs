//! A test certificate authority made with the `openssl` CLI, and server certificates it
//! signs for given names: what a private CA is to a client, and what a certificate imported
//! into ACM is to a load balancer (the stand-in serves it; the binary trusts the CA through
//! `--input tls_ca_file=…`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in a temporary folder (removed on drop).
pub struct TestCa {
    folder: tempfile::TempDir,
    /// The CA's certificate (PEM): what a client trusts.
    pub ca_file: PathBuf,
}

/// A server certificate the CA signed, and its key (PEM).
#[derive(Clone, Debug)]
pub struct ServerCertificate {
    /// The certificate (PEM).
    pub certificate: Vec<u8>,
    /// The CA's certificate, the chain a server sends after its own (PEM).
    pub chain: Vec<u8>,
    /// The private key (PEM, PKCS #8).
    pub key: Vec<u8>,
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run the `openssl` CLI");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// A new CA (EC P-256, ten years).
    pub fn new() -> Self {
        let folder = tempfile::tempdir().expect("a folder for the test CA");
        openssl(
            folder.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=rebuild-test-load-balancer-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ],
        );
        let ca_file = folder.path().join("ca.crt");
        Self { folder, ca_file }
    }

    /// A server certificate for `names` (the first is its common name), valid for a year.
    pub fn server_certificate(&self, names: &[&str]) -> ServerCertificate {
        let dir = self.folder.path();
        let stem = format!("server-{}", fastrand::u64(..));
        let (key, csr, certificate, extensions) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.crt"),
            format!("{stem}.ext"),
        );
        let subject = format!("/CN={}", names[0]);
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        let alternative: Vec<String> = names.iter().map(|name| format!("DNS:{name}")).collect();
        std::fs::write(
            dir.join(&extensions),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                alternative.join(",")
            ),
        )
        .expect("write the certificate's extensions");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &certificate,
                "-days",
                "365",
                "-extfile",
                &extensions,
            ],
        );
        let read = |name: &str| std::fs::read(dir.join(name)).expect("read what openssl wrote");
        ServerCertificate {
            certificate: read(&certificate),
            chain: read("ca.crt"),
            key: read(&key),
        }
    }
}

/// Imports `certificate` into ACM (moto at `endpoint`) in `region`, as an operator does
/// before an outage: an imported certificate is `ISSUED`. Returns its ARN.
pub fn import_into_acm(endpoint: &str, region: &str, certificate: &ServerCertificate) -> String {
    super::seed::block_on(async {
        let acm = aws_sdk_acm::Client::new(&super::seed::sdk_config(endpoint, region).await);
        let imported = acm
            .import_certificate()
            .certificate(aws_sdk_acm::primitives::Blob::new(
                certificate.certificate.clone(),
            ))
            .private_key(aws_sdk_acm::primitives::Blob::new(certificate.key.clone()))
            .certificate_chain(aws_sdk_acm::primitives::Blob::new(
                certificate.chain.clone(),
            ))
            .send()
            .await
            .expect("ACM imports the certificate");
        imported
            .certificate_arn()
            .expect("ACM answers the ARN")
            .to_string()
    })
}

/// Requests a certificate for `name` from ACM in `region`: it waits for validation
/// (`PENDING_VALIDATION`). Returns its ARN.
pub fn request_from_acm(endpoint: &str, region: &str, name: &str) -> String {
    super::seed::block_on(async {
        let acm = aws_sdk_acm::Client::new(&super::seed::sdk_config(endpoint, region).await);
        let requested = acm
            .request_certificate()
            .domain_name(name)
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            .send()
            .await
            .expect("ACM takes the request");
        requested
            .certificate_arn()
            .expect("ACM answers the ARN")
            .to_string()
    })
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
