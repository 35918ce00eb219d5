//! HTTP clients for smoke checks, built the way a check asks: a time limit per request,
//! extra trusted CA certificates (a private CA), and the URL's host pinned to given
//! addresses (curl's `--resolve`: the request keeps the URL's name for SNI, certificate
//! verification and `Host`, but connects where it is told). Also the look-up of the
//! addresses to pin: a hosts-format file first when one is given (testbeds), then DNS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::CloudError;

/// How to build one smoke check's client.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// The time limit of one request.
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust besides the public ones.
    pub ca_file: Option<PathBuf>,
    /// Connect to these addresses for this host name instead of resolving it.
    pub pin: Option<(String, Vec<SocketAddr>)>,
}

/// A client for `settings`.
pub(super) fn client(settings: &HttpSettings) -> Result<reqwest::Client, CloudError> {
    let failure = |message: String| CloudError::local("http client", None, message);
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(concat!("rebuild/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            failure(format!(
                "cannot read the CA file `{}`: {error}",
                path.display()
            ))
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            failure(format!(
                "the CA file `{}` is not PEM: {error}",
                path.display()
            ))
        })?;
        if certificates.is_empty() {
            return Err(failure(format!(
                "the CA file `{}` holds no certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((host, addresses)) = &settings.pin {
        builder = builder.resolve_to_addrs(host, addresses);
    }
    builder.build().map_err(|error| failure(error.to_string()))
}

/// The addresses of `host` (port `port`): from `hosts_file` when it names the host (a
/// missing file names nothing), else from the system's resolver. An error says why there
/// are none, as a client would see it.
pub(super) async fn resolve(
    host: &str,
    port: u16,
    hosts_file: Option<&std::path::Path>,
) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_end_matches('.');
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    if let Some(path) = hosts_file {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
        };
        let found = from_hosts(&text, host, port);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addresses) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(format!("`{host}` has no address"))
            } else {
                Ok(addresses)
            }
        }
        Err(error) => Err(format!("cannot resolve `{host}`: {error}")),
    }
}

/// The addresses a hosts-format text (`ADDRESS NAME [ALIAS…]`, `#` comments) gives `host`.
fn from_hosts(text: &str, host: &str, port: u16) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(Ok(address)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|name| name.trim_end_matches('.').eq_ignore_ascii_case(host)) {
            found.push(SocketAddr::new(address, port));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_file_gives_each_name_its_addresses() {
        let text = "# published\n127.0.0.1 lb-1.elb.test other\n\n::1 LB-1.elb.test.\nnot-an-ip lb-1.elb.test\n";
        let found = from_hosts(text, "lb-1.elb.test", 8443);
        assert_eq!(
            found,
            vec![
                "127.0.0.1:8443".parse::<SocketAddr>().unwrap(),
                "[::1]:8443".parse().unwrap()
            ]
        );
        assert!(from_hosts(text, "lb-2.elb.test", 443).is_empty());
    }

    #[tokio::test]
    async fn an_address_needs_no_look_up_and_a_missing_file_names_nothing() {
        let found = resolve("127.0.0.7", 80, None).await.unwrap();
        assert_eq!(found, vec!["127.0.0.7:80".parse::<SocketAddr>().unwrap()]);
        let missing = std::path::Path::new("/nonexistent/hosts");
        let error = resolve("lb-9.elb.test", 80, Some(missing))
            .await
            .unwrap_err();
        assert!(error.contains("lb-9.elb.test"), "{error}");
    }
}
