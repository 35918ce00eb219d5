//! The S3 calls the state store makes, synchronous through the [`Bridge`]: create an object
//! only if it does not exist (`PutObject` with `If-None-Match: *`), read, list and delete.
//! Failures are [`CloudError`]s (status and code classified, never read from the text).

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;

use super::bridge::Bridge;
use crate::cloud::{CloudError, CloudResultExt};

/// How many reads run at once when a journal is read.
const PARALLEL_READS: usize = 16;

/// What a conditional create found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// The object was written.
    Written,
    /// An object of that key exists (S3 answered 412 Precondition Failed).
    Exists,
}

/// One bucket, reached through the bridge.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    client: aws_sdk_s3::Client,
    name: String,
    bridge: Arc<Bridge>,
}

/// The bridge stopped: an error like any other failed call.
fn stopped(operation: &str, key: &str) -> CloudError {
    CloudError::local(
        operation,
        Some(key.to_string()),
        "the state store's I/O thread stopped",
    )
}

impl Bucket {
    /// `name`, reached with `client` (made for the bucket's region) on `bridge`.
    pub(crate) fn new(client: aws_sdk_s3::Client, name: &str, bridge: Arc<Bridge>) -> Self {
        Self {
            client,
            name: name.to_string(),
            bridge,
        }
    }

    /// The bucket's region constraint (`GetBucketLocation`), as S3 answers it.
    pub(crate) fn location(
        bridge: &Bridge,
        client: aws_sdk_s3::Client,
        name: &str,
    ) -> Result<Option<String>, CloudError> {
        let bucket = name.to_string();
        bridge
            .run(async move {
                let answer = client
                    .get_bucket_location()
                    .bucket(&bucket)
                    .send()
                    .await
                    .cloud("GetBucketLocation", Some(bucket))?;
                Ok(answer
                    .location_constraint()
                    .map(|constraint| constraint.as_str().to_string()))
            })
            .map_err(|_| stopped("GetBucketLocation", name))?
    }

    /// Create `key` holding `body` unless it exists.
    pub(crate) fn create(&self, key: &str, body: Vec<u8>) -> Result<Created, CloudError> {
        let (client, bucket, owned) = (self.client.clone(), self.name.clone(), key.to_string());
        self.bridge
            .run(async move {
                let written = client
                    .put_object()
                    .bucket(bucket)
                    .key(&owned)
                    .if_none_match("*")
                    .content_type("application/json")
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .cloud("PutObject", Some(owned));
                match written {
                    Ok(_) => Ok(Created::Written),
                    Err(error) if error.status == Some(412) => Ok(Created::Exists),
                    Err(error) => Err(error),
                }
            })
            .map_err(|_| stopped("PutObject", key))?
    }

    /// The bytes of `key`, or `None` when there is no such object.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        let (client, bucket, owned) = (self.client.clone(), self.name.clone(), key.to_string());
        self.bridge
            .run(read(client, bucket, owned))
            .map_err(|_| stopped("GetObject", key))?
    }

    /// The bytes of each of `keys`, in order (`None` for one that vanished meanwhile),
    /// read a few at a time.
    pub(crate) fn get_all(&self, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, CloudError> {
        let (client, bucket) = (self.client.clone(), self.name.clone());
        self.bridge
            .run(async move {
                let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_READS));
                let reads: Vec<_> = keys
                    .into_iter()
                    .map(|key| {
                        let (client, bucket, limit) =
                            (client.clone(), bucket.clone(), limit.clone());
                        tokio::spawn(async move {
                            let _permit = limit.acquire_owned().await;
                            read(client, bucket, key).await
                        })
                    })
                    .collect();
                let mut bodies = Vec::with_capacity(reads.len());
                for read in reads {
                    let body = read.await.map_err(|_| {
                        CloudError::local("GetObject", None, "a read of the journal stopped")
                    })??;
                    bodies.push(body);
                }
                Ok(bodies)
            })
            .map_err(|_| stopped("GetObject", &self.name))?
    }

    /// Keys under `prefix`, and with `delimiter` the common prefixes one level down.
    pub(crate) fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), CloudError> {
        let (client, bucket) = (self.client.clone(), self.name.clone());
        let (owned, delimiter) = (prefix.to_string(), delimiter.map(str::to_string));
        self.bridge
            .run(async move {
                let mut keys = Vec::new();
                let mut prefixes = Vec::new();
                let mut token = None;
                loop {
                    let page = client
                        .list_objects_v2()
                        .bucket(&bucket)
                        .prefix(&owned)
                        .set_delimiter(delimiter.clone())
                        .set_continuation_token(token.take())
                        .send()
                        .await
                        .cloud("ListObjectsV2", Some(owned.clone()))?;
                    keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|object| object.key())
                            .map(str::to_string),
                    );
                    prefixes.extend(
                        page.common_prefixes()
                            .iter()
                            .filter_map(|common| common.prefix())
                            .map(str::to_string),
                    );
                    match page.next_continuation_token() {
                        Some(next) if page.is_truncated() == Some(true) => {
                            token = Some(next.to_string())
                        }
                        _ => break,
                    }
                }
                Ok((keys, prefixes))
            })
            .map_err(|_| stopped("ListObjectsV2", prefix))?
    }

    /// Delete `key` (no error when it is gone already).
    pub(crate) fn delete(&self, key: &str) -> Result<(), CloudError> {
        let (client, bucket, owned) = (self.client.clone(), self.name.clone(), key.to_string());
        self.bridge
            .run(async move {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(&owned)
                    .send()
                    .await
                    .cloud("DeleteObject", Some(owned))
                    .map(|_| ())
            })
            .map_err(|_| stopped("DeleteObject", key))?
    }
}

async fn read(
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
) -> Result<Option<Vec<u8>>, CloudError> {
    let answer = client
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .cloud("GetObject", Some(key.clone()));
    let object = match answer {
        Ok(object) => object,
        Err(error) if error.status == Some(404) => return Ok(None),
        Err(error) => return Err(error),
    };
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|error| CloudError::local("GetObject", Some(key), error.to_string()))?;
    Ok(Some(bytes.into_bytes().to_vec()))
}
