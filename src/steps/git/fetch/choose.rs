//! Choosing a tag (pure): semantic versions read from tag names, `*`/`?` globs, the newest
//! matching tag, the stand-in for `latest_release` on a mirror, and the "tag not found; did
//! you mean …" messages with near misses and the newest tags.

use super::StepError;
use super::parameters::Selector;

/// A semantic version read from a tag: optional `v`, `MAJOR.MINOR.PATCH`, optional
/// `-prerelease` and `+build`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    /// Releases sort after their pre-releases.
    release: bool,
    pre: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Identifier {
    Numeric(u64),
    Text(String),
}

impl Version {
    fn parse(tag: &str) -> Option<Self> {
        let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
        let text = text.split_once('+').map_or(text, |(version, _)| version);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        };
        let mut parts = core.split('.');
        let (major, minor, patch) = (
            number(parts.next()?)?,
            number(parts.next()?)?,
            number(parts.next()?)?,
        );
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() {
                        None
                    } else if let Some(n) = number(id) {
                        Some(Identifier::Numeric(n))
                    } else {
                        Some(Identifier::Text(id.to_string()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Self {
            major,
            minor,
            patch,
            release: pre.is_empty(),
            pre,
        })
    }
}

/// Sort key for "newest": versions above other tags, releases above pre-releases, then
/// semantic version order; tags that are not versions compare by name.
fn newness(tag: &str) -> (bool, bool, Option<Version>, String) {
    let version = Version::parse(tag);
    (
        version.is_some(),
        version.as_ref().is_some_and(|v| v.release),
        version,
        tag.to_string(),
    )
}

/// Tags newest first.
fn newest_first<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut tags: Vec<&str> = tags.into_iter().collect();
    tags.sort_by_cached_key(|tag| std::cmp::Reverse(newness(tag)));
    tags.dedup();
    tags
}

/// `*` matches any run of characters (`/` included), `?` one character.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The newest tag matching `pattern`.
pub(super) fn newest_matching<'a>(
    pattern: &str,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    newest_first(tags.into_iter().filter(|tag| glob_matches(pattern, tag)))
        .first()
        .copied()
}

/// What `latest_release` means without the API: the newest tag that is a release version.
fn newest_release_version<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    newest_first(
        tags.into_iter()
            .filter(|tag| Version::parse(tag).is_some_and(|version| version.release)),
    )
    .first()
    .copied()
}

/// "tag `X` not found in `REPO`; did you mean `Y`? (newest tags: …)".
pub(super) fn tag_not_found(tag: &str, repo: &str, where_: &str, tags: &[String]) -> String {
    // Near misses: the same version with or without `v` (or another case) first, else tags
    // a couple of edits away.
    let bare = |t: &str| t.trim_start_matches(['v', 'V']).to_ascii_lowercase();
    let mut close: Vec<(usize, &str)> = newest_first(tags.iter().map(String::as_str))
        .into_iter()
        .filter_map(|candidate| {
            let distance = if bare(candidate) == bare(tag) {
                0
            } else {
                crate::playbook::edit_distance(candidate, tag)
            };
            (distance == 0 || (tag.len() >= 3 && distance <= 2)).then_some((distance, candidate))
        })
        .collect();
    close.sort_by_key(|(distance, _)| *distance);
    if close.first().is_some_and(|(distance, _)| *distance == 0) {
        close.retain(|(distance, _)| *distance == 0);
    }
    let mut message = format!("tag `{tag}` not found in `{repo}`{where_}");
    if !close.is_empty() {
        let list: Vec<String> = close
            .iter()
            .take(3)
            .map(|(_, t)| format!("`{t}`"))
            .collect();
        message.push_str(&format!("; did you mean {}?", list.join(" or ")));
    }
    message.push_str(&newest_tags_note(tags));
    message
}

pub(super) fn newest_tags_note(tags: &[String]) -> String {
    if tags.is_empty() {
        return " (it has no tags)".to_string();
    }
    let newest = newest_first(tags.iter().map(String::as_str));
    let shown: Vec<&str> = newest.iter().take(5).copied().collect();
    let more = if newest.len() > shown.len() {
        format!(", … {} in all", newest.len())
    } else {
        String::new()
    };
    format!(" (newest tags: {}{more})", shown.join(", "))
}

pub(super) const PATTERN_HINT: &str =
    "check `tag_pattern:` (`*` matches any run of characters, `?` one character)";

pub(super) const TAG_HINT: &str = "check the tag in the playbook (or the input it comes from); `git ls-remote --tags URL` lists what exists";

/// A refusal found while choosing: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) message: String,
    pub(super) hint: String,
}

impl From<Refusal> for StepError {
    fn from(refusal: Refusal) -> Self {
        StepError::Refused {
            message: refusal.message,
            hint: refusal.hint,
        }
    }
}

/// Choose the tag on a mirror's listed refs (`refs/tags/NAME` → object id, peeled where the
/// mirror says). Returns the tag, the id listed for it, and whether `latest_release` was
/// approximated.
pub(super) fn choose_on_mirror(
    selector: &Selector,
    repo: &str,
    mirror: &str,
    refs: &[(String, String)],
) -> Result<(String, String, bool), Refusal> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (name, oid) in refs {
        let Some(tag) = name.strip_prefix("refs/tags/") else {
            continue;
        };
        match tag.strip_suffix("^{}") {
            Some(peeled) => match tags.iter_mut().find(|(known, _)| known == peeled) {
                Some(entry) => entry.1 = oid.clone(),
                None => tags.push((peeled.to_string(), oid.clone())),
            },
            None => match tags.iter().any(|(known, _)| known == tag) {
                true => {}
                false => tags.push((tag.to_string(), oid.clone())),
            },
        }
    }
    let (tag, approximated) = choose_tag(selector, repo, mirror, &tags)?;
    let object = tags
        .iter()
        .find(|(name, _)| *name == tag)
        .map(|(_, oid)| oid.clone())
        .unwrap_or_default();
    Ok((tag, object, approximated))
}

/// Choose the tag among `tags` (name → anything) for `selector`, on a mirror.
pub(super) fn choose_tag<T>(
    selector: &Selector,
    repo: &str,
    mirror: &str,
    tags: &[(String, T)],
) -> Result<(String, bool), Refusal> {
    let names: Vec<String> = tags.iter().map(|(name, _)| name.clone()).collect();
    let where_ = format!(" (mirror `{mirror}`)");
    match selector {
        Selector::Tag(tag) if names.contains(tag) => Ok((tag.clone(), false)),
        Selector::Tag(tag) => Err(Refusal {
            message: tag_not_found(tag, repo, &where_, &names),
            hint: TAG_HINT.to_string(),
        }),
        Selector::Pattern(pattern) => newest_matching(pattern, names.iter().map(String::as_str))
            .map(|tag| (tag.to_string(), false))
            .ok_or_else(|| Refusal {
                message: format!(
                    "no tag in `{repo}`{where_} matches `{pattern}`{}",
                    newest_tags_note(&names)
                ),
                hint: PATTERN_HINT.to_string(),
            }),
        Selector::LatestRelease => newest_release_version(names.iter().map(String::as_str))
            .map(|tag| (tag.to_string(), true))
            .ok_or_else(|| Refusal {
                message: format!(
                    "the latest release of `{repo}` needs the GitHub API, and the mirror `{mirror}` has no release version tag (`vMAJOR.MINOR.PATCH`) to stand in{}",
                    newest_tags_note(&names)
                ),
                hint: "run again when GitHub answers, or use `tag:` for this run".to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_by_semantic_version_with_releases_above_pre_releases() {
        let version = |tag| Version::parse(tag).unwrap();
        assert!(version("v1.10.0") > version("v1.9.3"));
        assert!(version("1.0.0") > version("v1.0.0-rc.1"));
        assert!(version("v1.0.0-rc.10") > version("v1.0.0-rc.2"));
        assert!(version("v1.0.0-rc.1") > version("v1.0.0-alpha"));
        assert_eq!(version("v1.2.3+build.7"), version("V1.2.3"));
        for not_a_version in ["1.2", "v1.2.3.4", "v1.x.0", "latest", "v1.2.3-", "v01a.2.3"] {
            assert_eq!(Version::parse(not_a_version), None, "{not_a_version}");
        }
    }

    #[test]
    fn the_newest_matching_tag_is_the_highest_release_version() {
        let tags = [
            "v1.2.0",
            "v1.10.0",
            "v1.9.3",
            "v1.11.0-rc1",
            "v2.0.0",
            "release-notes",
        ];
        assert_eq!(newest_matching("v1.*", tags), Some("v1.10.0"));
        assert_eq!(newest_matching("v*", tags), Some("v2.0.0"));
        assert_eq!(newest_matching("release-*", tags), Some("release-notes"));
        assert_eq!(newest_matching("v3.*", tags), None);
        // Only pre-releases match: the highest of them.
        assert_eq!(
            newest_matching("v3.*", ["v3.0.0-rc1", "v3.0.0-rc2"]),
            Some("v3.0.0-rc2")
        );
        // Tags that are not versions fall back to byte order.
        assert_eq!(
            newest_matching("build-*", ["build-7", "build-10"]),
            Some("build-7")
        );
        assert_eq!(
            newest_release_version(["v2.0.0-rc1", "v1.4.0", "nightly"]),
            Some("v1.4.0")
        );
    }

    #[test]
    fn globs_match_stars_and_question_marks_only() {
        assert!(glob_matches("*", "anything/at/all"));
        assert!(glob_matches("v1.*", "v1.2.3"));
        assert!(!glob_matches("v1.*", "v10.2.3"));
        assert!(glob_matches("release/*", "release/2025-01"));
        assert!(glob_matches("v?.?.?", "v1.2.3"));
        assert!(!glob_matches("v?.?.?", "v1.20.3"));
        assert!(glob_matches("*-rc*", "v1.0.0-rc2"));
        assert!(!glob_matches("v[12].*", "v1.0.0"), "no character classes");
    }

    #[test]
    fn a_missing_tag_names_near_misses_and_the_newest_tags() {
        let tags: Vec<String> = ["v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0", "v2.1.0", "nightly"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            tag_not_found("1.2.0", "acme/app", "", &tags),
            "tag `1.2.0` not found in `acme/app`; did you mean `v1.2.0`? (newest tags: v2.1.0, v2.0.0, v1.10.0, v1.2.0, v1.0.0, … 6 in all)"
        );
        let message = tag_not_found("v2.1.1", "acme/app", "", &tags);
        assert!(message.contains("did you mean `v2.1.0`"), "{message}");
        assert_eq!(
            tag_not_found("v9.9.9", "acme/app", " (mirror `/m.bundle`)", &[]),
            "tag `v9.9.9` not found in `acme/app` (mirror `/m.bundle`) (it has no tags)"
        );
    }

    #[test]
    fn a_mirror_listing_prefers_peeled_tags() {
        let refs: Vec<(String, String)> = [
            ("HEAD", "c3"),
            ("refs/heads/main", "c3"),
            ("refs/tags/v1.0.0", "t1"),
            ("refs/tags/v1.0.0^{}", "c1"),
            ("refs/tags/v1.1.0", "c2"),
            ("refs/tags/v2.0.0-rc1", "c3"),
        ]
        .map(|(name, oid)| (name.to_string(), oid.to_string()))
        .to_vec();
        let tag = Selector::Tag("v1.0.0".into());
        assert_eq!(
            choose_on_mirror(&tag, "a/b", "m", &refs).unwrap(),
            ("v1.0.0".to_string(), "c1".to_string(), false)
        );
        assert_eq!(
            choose_on_mirror(&Selector::LatestRelease, "a/b", "m", &refs).unwrap(),
            ("v1.1.0".to_string(), "c2".to_string(), true)
        );
        let missing = choose_on_mirror(&Selector::Tag("v3".into()), "a/b", "m", &refs).unwrap_err();
        assert!(missing.message.contains("(mirror `m`)"), "{missing:?}");
    }
}
