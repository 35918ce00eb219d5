//! Where shared state lives when it is not the local directory: `s3://BUCKET/PREFIX`, from
//! `--state` or the playbook's `state:`. Parsing and checking the URL is pure; the store
//! that uses it is `journal::s3`.

use std::fmt;

/// A state location in S3: a bucket and a key prefix (no leading or trailing `/`; empty for
/// the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix every object of the state is under.
    pub prefix: String,
}

/// Why a state URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateUrlError {
    /// Not an `s3://` URL.
    #[error("only `s3://BUCKET/PREFIX` is supported here (a local directory is `--state-dir`)")]
    NotS3,
    /// No bucket after `s3://`.
    #[error("it names no bucket")]
    NoBucket,
    /// A bucket name S3 does not allow.
    #[error(
        "`{0}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `.` and `-`, \
         starting and ending with a letter or digit)"
    )]
    BadBucket(String),
    /// A prefix with an empty, `.` or `..` segment, or a character that makes keys
    /// ambiguous.
    #[error("the prefix `{0}` has an empty, `.` or `..` segment, or a control character")]
    BadPrefix(String),
}

impl StateUrl {
    /// Parse `s3://BUCKET` or `s3://BUCKET/PREFIX` (a trailing `/` is ignored).
    pub fn parse(text: &str) -> Result<Self, StateUrlError> {
        let rest = text
            .trim()
            .strip_prefix("s3://")
            .ok_or(StateUrlError::NotS3)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StateUrlError::NoBucket);
        }
        if !is_bucket_name(bucket) {
            return Err(StateUrlError::BadBucket(bucket.to_string()));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        let bad_segment = prefix
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
        if (!prefix.is_empty() && bad_segment) || prefix.chars().any(char::is_control) {
            return Err(StateUrlError::BadPrefix(prefix.to_string()));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The key of `path` (relative, `/`-separated) under the prefix.
    pub fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

impl fmt::Display for StateUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(formatter, "s3://{}", self.bucket)
        } else {
            write!(formatter, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// S3's rules for general purpose bucket names.
fn is_bucket_name(name: &str) -> bool {
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && allowed
        && ends(name.chars().next())
        && ends(name.chars().last())
        && !name.contains("..")
}

/// The region a `GetBucketLocation` answer names: no constraint is `us-east-1`, and the
/// legacy `EU` is `eu-west-1` (as S3 documents).
pub fn bucket_region(location_constraint: Option<&str>) -> String {
    match location_constraint {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(region) => region.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let url = StateUrl::parse("s3://team-dr-state/rebuild/shop/").unwrap();
        assert_eq!(url.bucket, "team-dr-state");
        assert_eq!(url.prefix, "rebuild/shop");
        assert_eq!(url.to_string(), "s3://team-dr-state/rebuild/shop");
        assert_eq!(url.key("locks/x.lock"), "rebuild/shop/locks/x.lock");

        let root = StateUrl::parse("s3://team-dr-state").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.key("runs/"), "runs/");
        assert_eq!(StateUrl::parse("s3://team-dr-state/").unwrap(), root);
    }

    #[test]
    fn refuses_what_is_not_a_bucket_url() {
        assert_eq!(StateUrl::parse("/srv/state"), Err(StateUrlError::NotS3));
        assert_eq!(StateUrl::parse("S3://b/p"), Err(StateUrlError::NotS3));
        assert_eq!(StateUrl::parse("s3://"), Err(StateUrlError::NoBucket));
        assert_eq!(
            StateUrl::parse("s3:///prefix"),
            Err(StateUrlError::NoBucket)
        );
        for bucket in ["ab", "Team", "team_state", "-team", "team-", "a..b"] {
            assert_eq!(
                StateUrl::parse(&format!("s3://{bucket}/p")),
                Err(StateUrlError::BadBucket(bucket.to_string())),
                "{bucket}"
            );
        }
        for prefix in ["a//b", "a/../b", "./a", "a\nb"] {
            assert!(
                matches!(
                    StateUrl::parse(&format!("s3://bucket/{prefix}")),
                    Err(StateUrlError::BadPrefix(_))
                ),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn the_bucket_region_follows_s3_conventions() {
        assert_eq!(bucket_region(None), "us-east-1");
        assert_eq!(bucket_region(Some("")), "us-east-1");
        assert_eq!(bucket_region(Some("EU")), "eu-west-1");
        assert_eq!(bucket_region(Some("us-west-2")), "us-west-2");
    }
}
