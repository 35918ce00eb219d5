//! The images a deploy pulls, checked before anything is applied: references in an ECR
//! registry read apart (pure: the registry's region, the repository, a tag or digest), and
//! looked up in the target region's ECR. A missing image would only crash-loop, so the plan
//! makes it a problem and the step refuses to start. Each image is looked up in the
//! registry of the account its host names (review D18: a shared tools account's registry
//! is not the caller's own); images outside ECR cannot be checked, and the plan says so.

use crate::cloud::{CloudError, CloudResultExt};

/// An image reference in an ECR registry: (account registry host's region, repository,
/// tag or digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EcrImage {
    /// The account in the registry host: the registry's id.
    pub(super) account: String,
    /// The region in the registry host.
    pub(super) region: String,
    /// Repository name.
    pub(super) repository: String,
    /// `tag` or `sha256:...` digest.
    pub(super) reference: ImageReference,
}

/// How an image is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ImageReference {
    /// `:tag` (default `latest`).
    Tag(String),
    /// `@sha256:...`.
    Digest(String),
}

/// Parse `ACCOUNT.dkr.ecr.REGION.amazonaws.com/repo[:tag|@digest]`; `None` for other registries.
pub(super) fn parse_ecr(image: &str) -> Option<EcrImage> {
    let (host, rest) = image.split_once('/')?;
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 6 || parts[1] != "dkr" || parts[2] != "ecr" {
        return None;
    }
    let account = parts[0].to_string();
    let region = parts[3].to_string();
    let (repository, reference) = if let Some((repository, digest)) = rest.split_once('@') {
        (repository, ImageReference::Digest(digest.to_string()))
    } else {
        match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => {
                (repository, ImageReference::Tag(tag.to_string()))
            }
            _ => (rest, ImageReference::Tag("latest".to_string())),
        }
    };
    Some(EcrImage {
        account,
        region,
        repository: repository.to_string(),
        reference,
    })
}

/// How many images are looked up at once: a deploy's images are checked in groups of this
/// many, well within ECR's rate of `DescribeImages` (the SDK retries a throttled call).
const LOOKUPS_AT_ONCE: usize = 8;

/// Images (in the target region's ECR) that are missing there, in the order of `images`.
pub(super) async fn missing(
    ecr: &aws_sdk_ecr::Client,
    region: &str,
    images: &[String],
) -> Result<Vec<String>, CloudError> {
    let mut missing = Vec::new();
    for chunk in images.chunks(LOOKUPS_AT_ONCE) {
        let mut lookups = Vec::with_capacity(chunk.len());
        for image in chunk {
            lookups.push(missing_one(ecr, region, image));
        }
        for answer in futures_util::future::join_all(lookups).await {
            missing.extend(answer?);
        }
    }
    Ok(missing)
}

/// `image` as the list of missing images names it, if it is missing from the target
/// region's ECR; `None` when it is there or is not in ECR.
async fn missing_one(
    ecr: &aws_sdk_ecr::Client,
    region: &str,
    image: &str,
) -> Result<Option<String>, CloudError> {
    let Some(EcrImage {
        account,
        region: image_region,
        repository,
        reference,
    }) = parse_ecr(image)
    else {
        return Ok(None);
    };
    if image_region != region {
        return Ok(Some(format!(
            "{image} (not in the target region's registry)"
        )));
    }
    let id = match &reference {
        ImageReference::Tag(tag) => aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(tag)
            .build(),
        ImageReference::Digest(digest) => aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest)
            .build(),
    };
    match ecr
        .describe_images()
        .registry_id(&account)
        .repository_name(&repository)
        .image_ids(id)
        .send()
        .await
        .cloud("DescribeImages", Some(image.to_string()))
    {
        Ok(answer) if !answer.image_details().is_empty() => Ok(None),
        Ok(_) => Ok(Some(image.to_string())),
        Err(error)
            if error.is("ImageNotFoundException") || error.is("RepositoryNotFoundException") =>
        {
            Ok(Some(image.to_string()))
        }
        Err(error) => Err(error),
    }
}

/// The images outside ECR, which cannot be checked.
pub(super) fn unchecked(images: &[String]) -> Vec<String> {
    let outside = images.iter().filter(|image| parse_ecr(image).is_none());
    outside.cloned().collect()
}

/// What is missing, said once for the plan and the step.
pub(super) fn missing_message(missing: &[String], region: &str) -> String {
    format!(
        "{} image(s) missing from the registry in `{region}`: {}",
        missing.len(),
        missing.join(", ")
    )
}

/// What to do about missing images.
pub(super) const MISSING_HINT: &str = "replicate the images to the target region's ECR (or fix the `images` rewrite), then run again; deploying them would only crash-loop";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ecr_references() {
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/shop/api:v1.2"),
            Some(EcrImage {
                account: "1".into(),
                region: "ap-southeast-1".into(),
                repository: "shop/api".into(),
                reference: ImageReference::Tag("v1.2".into())
            })
        );
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/api@sha256:abc")
                .unwrap()
                .reference,
            ImageReference::Digest("sha256:abc".into())
        );
        assert_eq!(
            parse_ecr("1.dkr.ecr.ap-southeast-1.amazonaws.com/api")
                .unwrap()
                .reference,
            ImageReference::Tag("latest".into())
        );
        assert_eq!(parse_ecr("docker.io/library/nginx:1"), None);
        assert_eq!(
            unchecked(&[
                "docker.io/library/nginx:1".into(),
                "1.dkr.ecr.ap-southeast-1.amazonaws.com/api".into()
            ]),
            ["docker.io/library/nginx:1"]
        );
    }

    #[test]
    fn the_message_counts_and_names_the_missing_images() {
        assert_eq!(
            missing_message(&["a:1".into(), "b:2".into()], "ap-southeast-1"),
            "2 image(s) missing from the registry in `ap-southeast-1`: a:1, b:2"
        );
    }
}
