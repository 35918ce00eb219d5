//! STS as EKS's authenticator (aws-iam-authenticator) uses it: an EKS bearer token
//! (`k8s-aws-v1.` + a base64url presigned `GetCallerIdentity` URL) is read and checked
//! ([`PresignedCall::parse`]), its signature verified as STS verifies it
//! ([`PresignedCall::verify`], with the secret of its access key), and the caller asked of
//! moto's STS ([`caller_arn`]). Moto checks no signature and reads the access key only
//! from an `Authorization` header, so the replay carries the presigned URL's credential
//! there; everything else is the URL's own query.
//!
//! Checks, as aws-iam-authenticator makes them: an STS host, `Action=GetCallerIdentity`,
//! `x-k8s-aws-id` among the signed headers, `X-Amz-Expires` between 0 and 900, and
//! `X-Amz-Date` at most [`MAX_AGE`] old (STS honours such a URL for 15 minutes whatever its
//! `X-Amz-Expires` says; the CLI writes 60). The signature covers `x-k8s-aws-id: <cluster>`,
//! so a token made for another cluster does not verify.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use sha2::{Digest, Sha256};

use super::aws_wire::{percent_decode, xml_text};

/// How old a token may be (EKS: 15 minutes).
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The prefix of every EKS token.
const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// A token's presigned `GetCallerIdentity` call, read.
#[derive(Debug, Clone)]
pub struct PresignedCall {
    /// The URL's host, e.g. `sts.ap-southeast-1.amazonaws.com`.
    pub host: String,
    /// The query's parameters, decoded, in the URL's order.
    pub query: Vec<(String, String)>,
    /// The access key of `X-Amz-Credential`.
    pub access_key: String,
    /// The credential scope's date, region and service.
    pub scope: (String, String, String),
    /// `X-Amz-Date`, as written (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// `X-Amz-SignedHeaders`, split.
    pub signed_headers: Vec<String>,
    /// `X-Amz-Signature`.
    pub signature: String,
}

impl PresignedCall {
    /// Read and check a bearer token at `now`: why it is refused, else the call it holds.
    pub fn parse(token: &str, now: SystemTime, max_age: Duration) -> Result<Self, String> {
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or("not an EKS token (no `k8s-aws-v1.` prefix)")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body.trim_end_matches('='))
            .map_err(|error| format!("the token is not base64url: {error}"))?;
        let url = String::from_utf8(bytes).map_err(|_| "the token is not a URL")?;
        let rest = url
            .strip_prefix("https://")
            .ok_or("the presigned URL is not https")?;
        let (host, path_and_query) = rest.split_once('/').ok_or("the URL has no path")?;
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        if !path.is_empty() {
            return Err(format!("unexpected path `/{path}`"));
        }
        let sts_host = host == "sts.amazonaws.com"
            || (host.starts_with("sts.")
                && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")));
        if !sts_host {
            return Err(format!("unexpected hostname `{host}` in the presigned URL"));
        }
        let query: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        let get = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        if get("Action").as_deref() != Some("GetCallerIdentity") {
            return Err("the presigned URL is not a GetCallerIdentity call".into());
        }
        if get("X-Amz-Algorithm").as_deref() != Some("AWS4-HMAC-SHA256") {
            return Err("the presigned URL is not signed with SigV4".into());
        }
        let signed_headers: Vec<String> = get("X-Amz-SignedHeaders")
            .unwrap_or_default()
            .split(';')
            .map(str::to_string)
            .collect();
        if !signed_headers.iter().any(|header| header == "x-k8s-aws-id") {
            return Err("client did not sign the x-k8s-aws-id header in the pre-signed URL".into());
        }
        let expires: i64 = get("X-Amz-Expires")
            .and_then(|value| value.parse().ok())
            .ok_or("no X-Amz-Expires in the pre-signed URL")?;
        if !(0..=900).contains(&expires) {
            return Err(format!(
                "invalid X-Amz-Expires {expires} in the pre-signed URL"
            ));
        }
        let amz_date = get("X-Amz-Date").ok_or("no X-Amz-Date in the pre-signed URL")?;
        let signed_at =
            jiff::Timestamp::strptime("%Y%m%dT%H%M%S%#z", amz_date.replace('Z', "+0000"))
                .map_err(|error| format!("bad X-Amz-Date `{amz_date}`: {error}"))?;
        let now = jiff::Timestamp::try_from(now).map_err(|error| error.to_string())?;
        let age = now.duration_since(signed_at);
        if age > jiff::SignedDuration::try_from(max_age).map_err(|error| error.to_string())? {
            return Err(format!(
                "X-Amz-Date parameter is expired ({} minute expiration) {amz_date}",
                max_age.as_secs() / 60
            ));
        }
        if age < -jiff::SignedDuration::from_mins(5) {
            return Err(format!("X-Amz-Date {amz_date} is in the future"));
        }
        let credential = get("X-Amz-Credential").ok_or("no X-Amz-Credential")?;
        let fields: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = fields[..] else {
            return Err(format!("bad X-Amz-Credential `{credential}`"));
        };
        if service != "sts" {
            return Err(format!("the URL is signed for `{service}`, not STS"));
        }
        Ok(Self {
            host: host.to_string(),
            access_key: access_key.to_string(),
            scope: (date.to_string(), region.to_string(), service.to_string()),
            amz_date,
            signed_headers,
            signature: get("X-Amz-Signature").ok_or("no X-Amz-Signature")?,
            query,
        })
    }

    /// Whether the signature is the one `secret` makes for this URL sent with the header
    /// `x-k8s-aws-id: cluster` (what STS checks when the authenticator replays it).
    pub fn verify(&self, secret: &str, cluster: &str) -> bool {
        let mut headers = Vec::new();
        for name in &self.signed_headers {
            let value = match name.as_str() {
                "host" => self.host.as_str(),
                "x-k8s-aws-id" => cluster,
                _ => return false,
            };
            headers.push(format!("{name}:{value}\n"));
        }
        let mut query: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(key, _)| key != "X-Amz-Signature")
            .map(|(key, value)| (uri_encode(key), uri_encode(value)))
            .collect();
        query.sort();
        let canonical_query: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let canonical_request = format!(
            "GET\n/\n{}\n{}\n{}\n{}",
            canonical_query.join("&"),
            headers.concat(),
            self.signed_headers.join(";"),
            hex(&Sha256::digest(b""))
        );
        let (date, region, service) = &self.scope;
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{date}/{region}/{service}/aws4_request\n{}",
            self.amz_date,
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        for part in [region.as_str(), service.as_str(), "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        hex(&hmac(&key, string_to_sign.as_bytes())) == self.signature
    }

    /// The URL's query with the signature and the credential carried in an
    /// `Authorization` header instead (moto reads the access key only there): what
    /// [`caller_arn`] sends.
    fn replay(&self) -> (String, String) {
        let (date, region, service) = &self.scope;
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={}",
            self.access_key,
            self.signed_headers.join(";"),
            self.signature
        );
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(key, value)| format!("{}={}", uri_encode(key), uri_encode(value)))
            .collect();
        (query.join("&"), authorization)
    }
}

/// Who sent `call`, as moto's STS answers the replayed `GetCallerIdentity`: the caller's ARN.
pub async fn replayed_caller(
    client: &Client<HttpConnector, Full<Bytes>>,
    moto: &str,
    call: &PresignedCall,
) -> Result<String, String> {
    let (query, authorization) = call.replay();
    let request = hyper::Request::get(format!("{moto}/?{query}"))
        .header(hyper::header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::new()))
        .map_err(|error| error.to_string())?;
    send(client, request).await
}

/// Who holds `access_key`, as moto's STS answers `GetCallerIdentity` for it in `region`.
pub async fn caller_arn(
    client: &Client<HttpConnector, Full<Bytes>>,
    moto: &str,
    access_key: &str,
    region: &str,
) -> Result<String, String> {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/20260101/{region}/sts/aws4_request, SignedHeaders=host, Signature=0"
    );
    let request = hyper::Request::post(format!("{moto}/"))
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(hyper::header::AUTHORIZATION, authorization)
        .body(Full::new(Bytes::from_static(
            b"Action=GetCallerIdentity&Version=2011-06-15",
        )))
        .map_err(|error| error.to_string())?;
    send(client, request).await
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<String, String> {
    let response = client
        .request(request)
        .await
        .map_err(|error| format!("STS: {error}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("STS: {error}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(format!("STS answered {status}: {text}"));
    }
    xml_text(&text, "Arn").ok_or_else(|| format!("STS answered no Arn: {text}"))
}

/// The access key of a SigV4 `Authorization` header.
pub fn access_key_of(authorization: &str) -> Option<&str> {
    let at = authorization.find("Credential=")? + "Credential=".len();
    authorization[at..].split('/').next()
}

/// The IAM principal behind a caller ARN, as EKS matches access entries: an assumed-role
/// session `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` is the role
/// `arn:aws:iam::ACCOUNT:role/ROLE`; any other ARN is itself.
pub fn canonical_arn(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [scheme, partition, "sts", "", account, resource] = parts[..]
        && let Some(rest) = resource.strip_prefix("assumed-role/")
        && let Some((role, _session)) = rest.rsplit_once('/')
    {
        return format!("{scheme}:{partition}:iam::{account}:role/{role}");
    }
    arn.to_string()
}

/// SigV4's URI encoding: everything but unreserved characters as `%XX`.
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|key| key ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}
