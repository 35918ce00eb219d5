//! The Secrets the application needs in the new cluster (review B3), made before the first
//! wave, every attempt (server-side apply, so a re-run changes nothing unless a value
//! did). A rebuilt cluster is empty: whatever synced the application's credentials into
//! the lost cluster is gone with it, and a Secrets Manager secret of the lost region cannot
//! be read. So each Secret comes from a source in the target region:
//!
//! - `from_aws_secret`: a Secrets Manager secret *in the target region* (the restored
//!   database's RDS-managed master secret, or a secret replicated there ahead of time),
//!   whose JSON fields `keys` maps to the Secret's keys;
//! - `data`: values given to the step (e.g. a secret input), never journaled.
//!
//! Values are [`Secret`]s: they are never printed, journaled or kept in the plan.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret as KubeSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;

use crate::cloud::{CloudResultExt, kubernetes};
use crate::secret::Secret;
use crate::steps::{PlanContext, StepContext, StepError, StepProblem};

/// One Secret to make, as the playbook gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretSource {
    /// The Secret's name.
    name: String,
    /// Its namespace (default: the step's).
    #[serde(default)]
    namespace: Option<String>,
    /// A Secrets Manager secret (name or ARN) in the target region.
    #[serde(default)]
    from_aws_secret: Option<String>,
    /// The Secret's keys, each from a field of the AWS secret's JSON value.
    #[serde(default)]
    keys: BTreeMap<String, String>,
    /// The Secret's keys with their values, given directly.
    #[serde(default)]
    data: Option<BTreeMap<String, Secret>>,
}

/// Where a Secret's values come from, once known.
enum Source<'a> {
    Aws {
        id: &'a str,
        keys: &'a BTreeMap<String, String>,
    },
    Given(&'a BTreeMap<String, Secret>),
    /// Not known yet (planning: from a step that has not run).
    Later,
}

const REGIONAL_HINT: &str = "Secrets Manager secrets are regional: replicate the secret to the target region ahead of time (Secrets Manager → Replicate secret), or take the restored database's managed secret (`${steps.database.master_user_secret_arn}`)";

impl SecretSource {
    fn namespace<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }

    fn source(&self) -> Result<Source<'_>, String> {
        match (&self.from_aws_secret, &self.data) {
            (Some(_), Some(_)) => Err(format!(
                "secret `{}`: give either `from_aws_secret` or `data`, not both",
                self.name
            )),
            (Some(id), None) if self.keys.is_empty() => Err(format!(
                "secret `{}`: `from_aws_secret` `{id}` needs `keys` (Secret key: field of the AWS secret's JSON)",
                self.name
            )),
            (Some(id), None) => Ok(Source::Aws {
                id,
                keys: &self.keys,
            }),
            (None, Some(data)) => Ok(Source::Given(data)),
            (None, None) => Ok(Source::Later),
        }
    }

    /// How the plan shows it.
    fn describe(&self, namespace: &str) -> String {
        let target = format!("{}/{}", self.namespace(namespace), self.name);
        match self.source() {
            Ok(Source::Aws { id, keys }) => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(key, field)| format!("{key}←{field}"))
                    .collect();
                format!("{target} from Secrets Manager `{id}` ({})", keys.join(", "))
            }
            Ok(Source::Given(data)) => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                format!("{target} from given values ({})", keys.join(", "))
            }
            Ok(Source::Later) => format!("{target} from a source known after apply"),
            Err(message) => message,
        }
    }
}

/// What the plan says of the Secrets: one detail line, and a problem for each source that
/// is wrong or missing from the target region.
pub(super) async fn plan(
    context: &PlanContext,
    secrets: &[SecretSource],
    namespace: &str,
) -> Result<(Option<String>, Vec<StepProblem>), StepError> {
    if secrets.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut problems = Vec::new();
    let region = &context.target_region;
    for secret in secrets {
        match secret.source() {
            Err(message) => problems.push(StepProblem::from(message)),
            Ok(Source::Aws { id, .. }) => {
                let client = context.cloud.secrets_manager(region);
                let answer = client
                    .describe_secret()
                    .secret_id(id)
                    .send()
                    .await
                    .cloud("DescribeSecret", Some(id.to_string()));
                match answer {
                    Err(error) if error.is_not_found() => {
                        problems.push(StepProblem::from(format!(
                            "secret `{}`: Secrets Manager has no secret `{id}` in `{region}`; {REGIONAL_HINT}",
                            secret.name
                        )));
                    }
                    answer => {
                        answer?;
                    }
                }
            }
            Ok(Source::Given(_) | Source::Later) => {}
        }
    }
    let shown: Vec<String> = secrets
        .iter()
        .map(|secret| secret.describe(namespace))
        .collect();
    Ok((Some(shown.join("; ")), problems))
}

/// Make every Secret in the cluster (and its namespace, which the first wave may be the one
/// to declare). Returns how many it applied.
pub(super) async fn apply(
    context: &StepContext,
    client: &kube::Client,
    secrets: &[SecretSource],
    values: Vec<BTreeMap<String, Secret>>,
    namespace: &str,
) -> Result<usize, StepError> {
    for (secret, data) in secrets.iter().zip(values) {
        let namespace = secret.namespace(namespace);
        ensure_namespace(client, namespace).await?;
        let object = KubeSecret {
            metadata: ObjectMeta {
                name: Some(secret.name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "rebuild".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_string()),
            string_data: Some(
                data.iter()
                    .map(|(key, value)| (key.clone(), value.expose().to_string()))
                    .collect(),
            ),
            ..KubeSecret::default()
        };
        let label = format!("Secret/{namespace}/{}", secret.name);
        Api::<KubeSecret>::namespaced(client.clone(), namespace)
            .patch(
                &secret.name,
                &PatchParams::apply("rebuild").force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|error| kubernetes::error(error, "server-side apply", &label))?;
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        context.progress(format!(
            "secret `{namespace}/{}`: {}",
            secret.name,
            keys.join(", ")
        ));
    }
    Ok(secrets.len())
}

/// Every Secret's values, from their sources, all read at once (in the order of
/// `secrets`).
pub(super) async fn read(
    context: &StepContext,
    secrets: &[SecretSource],
) -> Result<Vec<BTreeMap<String, Secret>>, StepError> {
    let mut reads = Vec::with_capacity(secrets.len());
    for secret in secrets {
        reads.push(values(context, secret));
    }
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

/// The Secret's values, from its source.
async fn values(
    context: &StepContext,
    secret: &SecretSource,
) -> Result<BTreeMap<String, Secret>, StepError> {
    match secret.source().map_err(StepError::Params)? {
        Source::Given(data) => Ok(data.clone()),
        Source::Later => Err(StepError::Params(format!(
            "secret `{}` needs `from_aws_secret` or `data`",
            secret.name
        ))),
        Source::Aws { id, keys } => {
            let region = &context.target_region;
            let answer = context
                .cloud
                .secrets_manager(region)
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .cloud("GetSecretValue", Some(id.to_string()));
            let answer = match answer {
                Err(error) if error.is_not_found() => {
                    return Err(StepError::Refused {
                        message: format!(
                            "secret `{}`: Secrets Manager has no secret `{id}` in `{region}`",
                            secret.name
                        ),
                        hint: REGIONAL_HINT.to_string(),
                    });
                }
                answer => answer?,
            };
            let text = Secret::new(answer.secret_string().unwrap_or_default());
            fields(&secret.name, id, &text, keys)
        }
    }
}

/// The Secret's keys from the JSON fields of the AWS secret's value `text` (a field that is
/// missing is named, never a value).
fn fields(
    name: &str,
    id: &str,
    text: &Secret,
    keys: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Secret>, StepError> {
    let refused = |message: String| StepError::Refused {
        message,
        hint: "map each Secret key to a field the AWS secret has (`keys: {DB_PASSWORD: password}`)"
            .to_string(),
    };
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text.expose())
        .map_err(|_| {
            refused(format!(
                "secret `{name}`: the value of `{id}` is not a JSON object"
            ))
        })?;
    let mut data = BTreeMap::new();
    for (key, field) in keys {
        let value = match json.get(field) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            Some(serde_json::Value::Bool(flag)) => flag.to_string(),
            _ => {
                let mut has: Vec<&str> = json.keys().map(String::as_str).collect();
                has.sort_unstable();
                return Err(refused(format!(
                    "secret `{name}`: `{id}` has no text field `{field}` for `{key}` (its fields: {})",
                    has.join(", ")
                )));
            }
        };
        data.insert(key.clone(), Secret::new(value));
    }
    Ok(data)
}

/// Make the namespace if it is not there (server-side apply, no other fields claimed).
async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<(), StepError> {
    let object = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("rebuild").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|error| {
            kubernetes::error(error, "server-side apply", &format!("Namespace/{name}"))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(value: serde_json::Value) -> SecretSource {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn fields_of_the_aws_secret_become_the_secret_keys() {
        let keys = BTreeMap::from([
            ("DB_USER".to_string(), "username".to_string()),
            ("DB_PASSWORD".to_string(), "password".to_string()),
        ]);
        let text = Secret::new(r#"{"username":"app","password":"s3cret","port":5432}"#);
        let data = fields("shop-db", "arn:x", &text, &keys).unwrap();
        assert_eq!(data["DB_USER"].expose(), "app");
        assert_eq!(data["DB_PASSWORD"].expose(), "s3cret");
    }

    #[test]
    fn a_missing_field_is_named_without_any_value() {
        let keys = BTreeMap::from([("DB_PASSWORD".to_string(), "pass".to_string())]);
        let text = Secret::new(r#"{"username":"app","password":"s3cret"}"#);
        let error = fields("shop-db", "arn:x", &text, &keys).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("no text field `pass`"), "{message}");
        assert!(message.contains("password, username"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        let not_json = fields("shop-db", "arn:x", &Secret::new("s3cret"), &keys).unwrap_err();
        assert!(!not_json.to_string().contains("s3cret"));
    }

    #[test]
    fn a_secret_has_one_source() {
        let both = source(serde_json::json!({
            "name": "a", "from_aws_secret": "x", "keys": {"K": "k"}, "data": {"K": "v"}
        }));
        assert!(both.source().is_err());
        let no_keys = source(serde_json::json!({"name": "a", "from_aws_secret": "x"}));
        assert!(no_keys.source().is_err());
        let later = source(serde_json::json!({"name": "a", "keys": {"K": "k"}}));
        assert!(matches!(later.source(), Ok(Source::Later)));
        assert_eq!(
            later.describe("shop"),
            "shop/a from a source known after apply"
        );
        let given = source(serde_json::json!({"name": "a", "namespace": "n", "data": {"K": "v"}}));
        assert_eq!(given.describe("shop"), "n/a from given values (K)");
    }
}
