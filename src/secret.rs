//! Secrets as a type. A [`Secret`] prints, debugs and serialises as `<redacted>`; its value
//! is reached only through [`Secret::expose`], so showing one is always a deliberate act
//! (uv's `DisplaySafeUrl`). The [`Redactor`] is built once per run from every secret it
//! knows and scrubs text that crosses into the reporter or the journal (cloud and serde
//! errors can quote a value verbatim). A [`DisplaySafeUrl`] is a URL that shows itself
//! without the credentials in its user part.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The marker shown in place of a secret, everywhere.
pub const REDACTED: &str = "<redacted>";

/// A secret value (a password, a token). Never shown, never journaled.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only where it is used (an API call, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an unset secret input).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Replaces every known secret value in text with `<redacted>`. Built once per run and
/// shared (cloning is cheap).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<[Secret]>,
}

impl Redactor {
    /// A redactor for these secrets (empty ones are ignored: they would match everywhere).
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        Self {
            secrets: secrets
                .into_iter()
                .filter(|secret| !secret.is_empty())
                .collect(),
        }
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.expose(), REDACTED)
        })
    }

    /// `value` with every secret scrubbed from every string in it (a journal record or a
    /// progress event, at the boundary where it leaves the run). Values that do not
    /// round-trip through JSON are returned as they are.
    pub fn scrub_data<T: Serialize + DeserializeOwned>(&self, value: T) -> T {
        if self.secrets.is_empty() {
            return value;
        }
        let Ok(mut data) = serde_json::to_value(&value) else {
            return value;
        };
        if !self.scrub_strings(&mut data) {
            return value;
        }
        serde_json::from_value(data).unwrap_or(value)
    }

    /// Scrub every string in `data`; whether anything changed.
    fn scrub_strings(&self, data: &mut serde_json::Value) -> bool {
        match data {
            serde_json::Value::String(text) => {
                let scrubbed = self.scrub(text);
                let changed = scrubbed != *text;
                *text = scrubbed;
                changed
            }
            serde_json::Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.scrub_strings(item);
                }
                changed
            }
            serde_json::Value::Object(map) => {
                let mut changed = false;
                for item in map.values_mut() {
                    changed |= self.scrub_strings(item);
                }
                changed
            }
            _ => false,
        }
    }
}

/// A URL, or a local path standing in for one (a git mirror, a bundle file), whose
/// `Display` and `Debug` hide the credentials in its user part:
/// `https://user:token@host/x` shows as `https://<redacted>@host/x` (uv's
/// `DisplaySafeUrl`). The whole text is reached only through [`DisplaySafeUrl::expose`];
/// [`DisplaySafeUrl::credentials`] gives the hidden part as a [`Secret`], for a [`Redactor`]
/// over messages written by others (a library's, a server's).
#[derive(Clone, PartialEq, Eq)]
pub struct DisplaySafeUrl(String);

impl DisplaySafeUrl {
    /// Wrap a URL or path.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The whole text, credentials included: only where it is used (a request, a fetch).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The user part (`user:password`, as written), when the URL has one.
    pub fn credentials(&self) -> Option<Secret> {
        self.split().map(|(_, user, _)| Secret::new(user))
    }

    /// `(scheme://, user part, the rest after @)` of a URL with a user part.
    fn split(&self) -> Option<(&str, &str, &str)> {
        let scheme_end = self.0.find("://")? + 3;
        let rest = &self.0[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let at = rest[..authority_end].rfind('@')?;
        Some((&self.0[..scheme_end], &rest[..at], &rest[at + 1..]))
    }
}

impl fmt::Display for DisplaySafeUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.split() {
            Some((scheme, _, rest)) => write!(formatter, "{scheme}{REDACTED}@{rest}"),
            None => formatter.write_str(&self.0),
        }
    }
}

impl fmt::Debug for DisplaySafeUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), formatter)
    }
}

impl<'de> Deserialize<'de> for DisplaySafeUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_itself() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(secret.expose(), "hunter2");
        let parsed: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(parsed, secret);
    }

    #[test]
    fn the_redactor_scrubs_every_string_of_a_record() {
        let redactor = Redactor::new([Secret::new("hunter2")]);
        let record = serde_json::json!({"a": ["x hunter2", 3], "b": {"c": "hunter2"}, "d": true});
        let scrubbed = redactor.scrub_data(record);
        assert_eq!(
            scrubbed,
            serde_json::json!({"a": ["x <redacted>", 3], "b": {"c": "<redacted>"}, "d": true})
        );
    }

    #[test]
    fn the_redactor_scrubs_every_secret_and_ignores_empty_ones() {
        let redactor = Redactor::new([Secret::new("pw1"), Secret::new(""), Secret::new("tok")]);
        assert_eq!(
            redactor.scrub("a pw1 b tok c"),
            "a <redacted> b <redacted> c"
        );
        assert_eq!(redactor.scrub("nothing"), "nothing");
    }

    #[test]
    fn a_url_hides_its_credentials_and_nothing_else() {
        let url = DisplaySafeUrl::new("https://x-access-token:ghp_secret@github.com/acme/app.git");
        assert_eq!(
            url.to_string(),
            "https://<redacted>@github.com/acme/app.git"
        );
        assert!(!format!("{url:?}").contains("ghp_secret"));
        assert_eq!(
            url.credentials().map(|user| user.expose().to_string()),
            Some("x-access-token:ghp_secret".to_string())
        );
        assert_eq!(
            url.expose(),
            "https://x-access-token:ghp_secret@github.com/acme/app.git"
        );
        for plain in [
            "https://github.com/acme/app.git",
            "git://127.0.0.1:9418/a@b.git",
            "/srv/mirror.bundle",
        ] {
            let url = DisplaySafeUrl::new(plain);
            assert_eq!(url.to_string(), plain);
            assert_eq!(url.credentials(), None);
        }
    }
}
