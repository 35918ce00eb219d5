//! Where a checkout's objects come from, in the order to try: the place the commit was
//! resolved on first (the repository's host, else the mirror), then the other one, and
//! before both the plan's own checkout of the commit when it has one. The token goes to the
//! repository's own host only, as the credentials of an HTTP(S) URL.

use std::path::{Path, PathBuf};

use super::parameters::{Params, TOKEN_USER};
use super::resolve::{Resolved, Source};
use crate::secret::{DisplaySafeUrl, Secret};

/// What an origin is.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// A git URL or a repository path (may carry credentials).
    Url(DisplaySafeUrl),
    /// A `git bundle` file.
    Bundle(PathBuf),
}

/// A place to fetch from, with how messages name it (`GitHub`, `the mirror`, ...).
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) kind: Kind,
    pub(super) label: &'static str,
}

/// How the mirror is named in messages.
const MIRROR: &str = "the mirror";

impl Origin {
    /// A git URL or repository path.
    pub(super) fn url(url: DisplaySafeUrl, label: &'static str) -> Self {
        Self {
            kind: Kind::Url(url),
            label,
        }
    }

    /// The mirror: a `git bundle` file (a path, or `file://` URL, of a file), else a git
    /// URL or repository path.
    pub(super) fn mirror(mirror: &DisplaySafeUrl) -> Self {
        let text = mirror.expose();
        let path = Path::new(text.strip_prefix("file://").unwrap_or(text));
        let kind = if path.is_file() {
            Kind::Bundle(path.to_path_buf())
        } else {
            Kind::Url(mirror.clone())
        };
        Self {
            kind,
            label: MIRROR,
        }
    }

    pub(super) fn is_mirror(&self) -> bool {
        self.label == MIRROR
    }

    /// The name of the remote its branches are kept under.
    pub(super) fn remote_name(&self) -> &'static str {
        if self.is_mirror() { "mirror" } else { "origin" }
    }
}

/// Shown with credentials hidden.
impl std::fmt::Display for Origin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Url(url) => url.fmt(formatter),
            Kind::Bundle(path) => path.display().fmt(formatter),
        }
    }
}

/// The places to fetch `resolved` from, in the order to try (see the module's paragraph).
/// `planned` is the plan's checkout of the commit, when it has one from the same source.
pub(super) fn origins(
    params: &Params,
    token: Option<&Secret>,
    resolved: &Resolved,
    planned: Option<&Path>,
) -> Vec<Origin> {
    let primary_url = params.primary_url(resolved.clone_url.as_deref());
    let primary = Origin::url(
        with_credentials(primary_url, token, params.git_host().as_deref()),
        "GitHub",
    );
    let mut origins = vec![primary];
    if let Some(mirror) = &params.mirror {
        match resolved.source {
            Source::Mirror => origins.insert(0, Origin::mirror(mirror)),
            Source::GitHub => origins.push(Origin::mirror(mirror)),
        }
    }
    if let Some(planned) = planned {
        let copy = DisplaySafeUrl::new(planned.display().to_string());
        origins.insert(0, Origin::url(copy, "the plan's checkout"));
    }
    origins
}

/// `url` with the token as HTTP credentials when it goes to the repository's own host over
/// HTTP(S) and carries none yet; any other URL (a mirror, another host) gets no token.
fn with_credentials(
    url: DisplaySafeUrl,
    token: Option<&Secret>,
    git_host: Option<&str>,
) -> DisplaySafeUrl {
    let (Some(token), Some(git_host)) = (token, git_host) else {
        return url;
    };
    match reqwest::Url::parse(url.expose()) {
        Ok(mut parsed)
            if matches!(parsed.scheme(), "http" | "https")
                && parsed.username().is_empty()
                && parsed.host_str() == Some(git_host) =>
        {
            let _ = parsed.set_username(TOKEN_USER);
            let _ = parsed.set_password(Some(token.expose()));
            DisplaySafeUrl::new(parsed.to_string())
        }
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: serde_json::Value) -> Params {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_token_goes_only_to_the_repository_host() {
        let token = Secret::new("ghp_1");
        let host = Some("github.com");
        let add = |url: &str, token| {
            with_credentials(DisplaySafeUrl::new(url), token, host)
                .expose()
                .to_string()
        };
        assert_eq!(
            add("https://github.com/acme/app.git", Some(&token)),
            "https://x-access-token:ghp_1@github.com/acme/app.git"
        );
        for elsewhere in [
            "https://gitlab.example/acme/app.git",
            "git://github.com/acme/app.git",
            "https://me:mine@github.com/acme/app.git",
            "/srv/mirror.git",
        ] {
            assert_eq!(add(elsewhere, Some(&token)), elsewhere);
        }
        assert_eq!(
            add("https://github.com/a/b.git", None),
            "https://github.com/a/b.git"
        );
    }

    #[test]
    fn the_origin_list_starts_where_the_commit_was_resolved() {
        let given = params(json!({"repo": "acme/app", "mirror": "git://mirror/app.git"}));
        let resolved = |source| Resolved {
            reference: "v1".into(),
            source,
            clone_url: None,
            commit: "abc".into(),
        };
        let labels = |origins: Vec<Origin>| -> Vec<String> {
            origins
                .iter()
                .map(|origin| format!("{}: {origin}", origin.label))
                .collect()
        };
        assert_eq!(
            labels(origins(&given, None, &resolved(Source::GitHub), None)),
            [
                "GitHub: https://github.com/acme/app.git",
                "the mirror: git://mirror/app.git"
            ]
        );
        assert_eq!(
            labels(origins(
                &given,
                Some(&Secret::new("ghp_1")),
                &resolved(Source::Mirror),
                Some(Path::new("/cache/abc"))
            )),
            [
                "the plan's checkout: /cache/abc",
                "the mirror: git://mirror/app.git",
                "GitHub: https://<redacted>@github.com/acme/app.git"
            ]
        );
    }
}
