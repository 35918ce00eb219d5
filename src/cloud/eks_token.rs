//! EKS bearer tokens, made the way `aws eks get-token` makes them — without the AWS CLI: a
//! presigned STS `GetCallerIdentity` URL whose signature covers the header `x-k8s-aws-id`
//! (the cluster name), base64url-encoded (no padding) behind `k8s-aws-v1.`. The API server's
//! authenticator replays the URL to STS to learn who is calling. Tokens live 15 minutes;
//! the URL itself says 60 seconds, as the CLI's does.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;

/// The prefix of every EKS token.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// The token for `cluster` in `region`, signed with `credentials` at `time`.
pub fn token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, String> {
    // The region's own STS endpoint, in its partition's domain (China's is `.com.cn`).
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let host = format!("sts.{region}.{domain}");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|error| format!("cannot build the STS request: {error}"))?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|error| format!("cannot sign the STS request: {error}"))?
        .into();
    let (_, query) = sign(request, &params)
        .map_err(|error| format!("cannot sign the STS request: {error}"))?
        .into_parts()
        .0
        .into_parts();
    let mut presigned = url;
    for (name, value) in query {
        presigned.push('&');
        presigned.push_str(name);
        presigned.push('=');
        presigned.push_str(&encode(&value));
    }
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

/// Percent-encode a query value (SigV4's unreserved set).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(token: &str) -> String {
        let body = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_covering_the_cluster_header() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let token = token(&credentials, "ap-southeast-1", "prod", time).unwrap();
        assert!(!token.contains('='), "no padding");
        let url = decode(&token);
        assert!(url.starts_with("https://sts.ap-southeast-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"), "{url}");
        assert!(url.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"), "{url}");
        assert!(
            url.contains(
                "X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Fap-southeast-1%2Fsts%2Faws4_request"
            ),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Security-Token=session"), "{url}");
        assert!(!url.contains("secret"), "the secret key never appears");
        let signature = url
            .split("X-Amz-Signature=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(signature.len(), 64);
        // Same inputs, same token; another cluster, another signature.
        assert_eq!(
            super::token(&credentials, "ap-southeast-1", "prod", time).unwrap(),
            token
        );
        assert_ne!(
            super::token(&credentials, "ap-southeast-1", "other", time).unwrap(),
            token
        );
        // China's STS endpoints are in its own partition's domain.
        let china = decode(&super::token(&credentials, "cn-north-1", "prod", time).unwrap());
        assert!(
            china.starts_with("https://sts.cn-north-1.amazonaws.com.cn/?"),
            "{china}"
        );
    }
}
